//! `GLINTDRAWELEMENTS`: vertex data from the vertex cache (or buffer objects) to the
//! renderer.
//!
//! Every offset and length is checked against the cache or buffer it points into before
//! a slice is taken; a draw that would read outside records a GL error and is skipped.

use super::gl::glenum::*;
use super::glsl::BoundProgram;
use super::state::Object20;
use super::state::{Api, Attrib, Context, MAX_ATTRIBS};
use super::wire::Words;
use super::{Channel, KhrnError, KhrnHost, KhrnServer, ids};
use std::collections::BTreeMap;
use vc_gles::{AttribArray, AttribType, GenericAttribs, Indices, VertexArrays};

/// "Not in the cache" marker of a `GLXX_CACHE_INFO_T` entry.
const NOT_CACHED: u32 = 0xffff_ffff;
/// GL 1.1 attribute slots the renderer consumes.
const SLOT_POSITION: usize = 0;
const SLOT_COLOR: usize = 1;
const SLOT_NORMAL: usize = 2;
const SLOT_TEXCOORD0: usize = 3;

/// Index data copied out of the cache or an element buffer.
enum OwnedIndices {
    Range { first: u32, count: u32 },
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl OwnedIndices {
    fn max_index(&self) -> Option<u64> {
        match self {
            OwnedIndices::Range { first, count } => count
                .checked_sub(1)
                .map(|last| u64::from(*first) + u64::from(last)),
            OwnedIndices::U8(v) => v.iter().max().map(|&i| u64::from(i)),
            OwnedIndices::U16(v) => v.iter().max().map(|&i| u64::from(i)),
            OwnedIndices::U32(v) => v.iter().max().map(|&i| u64::from(i)),
        }
    }

    fn as_indices(&self) -> Indices<'_> {
        match self {
            OwnedIndices::Range { first, count } => Indices::Range {
                first: *first,
                count: *count,
            },
            OwnedIndices::U8(v) => Indices::U8(v),
            OwnedIndices::U16(v) => Indices::U16(v),
            OwnedIndices::U32(v) => Indices::U32(v),
        }
    }
}

impl KhrnServer {
    /// Decode `[mode, count, type, indices_offset]` + cache info and draw.
    pub(super) fn draw_elements(
        &mut self,
        channel: Channel,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        let id = ids::GLINTDRAWELEMENTS;
        let [mode, count, ty, indices_offset] = w.array::<4>(id)?;
        let send_any = w.u32(id)?;
        let mut cache_offsets = [NOT_CACHED; MAX_ATTRIBS];
        if send_any != 0 {
            for slot in &mut cache_offsets {
                let [offset, _has_interlock] = w.array::<2>(id)?;
                *slot = offset;
            }
        }
        let current = self.current(channel);
        let Some(c) = self.contexts.get_mut(&current.context) else {
            return Ok(());
        };
        let call = DrawCall {
            mode,
            count,
            ty,
            indices_offset,
            cache_offsets,
        };
        if c.api == Api::Gles20 {
            let surface = self.surfaces.get_mut(&current.draw).map(|s| s.back_mut());
            match draw20(c, &call, surface) {
                Ok(Some(fault)) => {
                    host.log(&format!(
                        "khrn: draw stopped (pid {}): {fault}",
                        current.pid
                    ));
                    self.stats.draws += 1;
                }
                Ok(None) => self.stats.draws += 1,
                Err(error) => c.set_error(error),
            }
            return Ok(());
        }
        let Some(surface) = self.surfaces.get_mut(&current.draw) else {
            return Ok(());
        };
        match draw(c, &call, surface.back_mut()) {
            Ok(true) => self.stats.draws += 1,
            Ok(false) => {}
            Err(error) => c.set_error(error),
        }
        Ok(())
    }
}

struct DrawCall {
    mode: u32,
    count: u32,
    ty: u32,
    indices_offset: u32,
    cache_offsets: [u32; MAX_ATTRIBS],
}

/// Execute one draw; `Ok(false)` if there was nothing to draw, `Err(gl_error)` if the
/// call is invalid or reads out of bounds.
fn draw(c: &mut Context, call: &DrawCall, target: &mut vc_gles::Surface) -> Result<bool, u32> {
    if (call.count as i32) < 0 || (call.ty == 0 && (call.indices_offset as i32) < 0) {
        return Err(INVALID_VALUE);
    }
    if call.count == 0 || !c.attribs[SLOT_POSITION].enabled {
        return Ok(false);
    }
    let indices = if call.ty == 0 {
        OwnedIndices::Range {
            first: call.indices_offset,
            count: call.count,
        }
    } else {
        let source = index_source(c);
        read_indices(source, call.ty, call.indices_offset, call.count)?
    };
    let Some(max_index) = indices.max_index() else {
        return Ok(false);
    };
    let Context {
        gl,
        attribs,
        cache,
        buffers,
        ..
    } = c;
    let arrays = VertexArrays {
        position: attrib_array(attribs, SLOT_POSITION, call, cache, buffers, max_index)?,
        color: attrib_array(attribs, SLOT_COLOR, call, cache, buffers, max_index)?,
        normal: attrib_array(attribs, SLOT_NORMAL, call, cache, buffers, max_index)?,
        texcoord: attrib_array(attribs, SLOT_TEXCOORD0, call, cache, buffers, max_index)?,
    };
    gl.draw(call.mode, indices.as_indices(), &arrays, target);
    Ok(true)
}

/// A GLES 2.0 draw with the current program into the bound framebuffer object's texture
/// or `surface`. `Ok(Some(reason))`: a shader stopped the draw part-way.
fn draw20(
    c: &mut Context,
    call: &DrawCall,
    surface: Option<&mut vc_gles::Surface>,
) -> Result<Option<String>, u32> {
    if (call.count as i32) < 0 || (call.ty == 0 && (call.indices_offset as i32) < 0) {
        return Err(INVALID_VALUE);
    }
    let program = c.current_program;
    let linked = match c.objects.get(&program) {
        Some(Object20::Program(p)) if program != 0 => p.linked.clone(),
        // GL ES 2.0: drawing without a program is undefined; draw nothing.
        _ => return Ok(None),
    };
    let Some(linked) = linked else {
        return Ok(None);
    };
    if call.count == 0 {
        return Ok(None);
    }
    let indices = if call.ty == 0 {
        OwnedIndices::Range {
            first: call.indices_offset,
            count: call.count,
        }
    } else {
        read_indices(index_source(c), call.ty, call.indices_offset, call.count)?
    };
    let Some(max_index) = indices.max_index() else {
        return Ok(None);
    };
    let Context {
        gl,
        attribs,
        cache,
        buffers,
        objects,
        current_attribs,
        bound_textures,
        framebuffer,
        color_attachments,
        ..
    } = c;
    let mut generic = GenericAttribs {
        current: *current_attribs,
        ..Default::default()
    };
    for (slot, out) in generic.arrays.iter_mut().enumerate() {
        *out = attrib_array(attribs, slot, call, cache, buffers, max_index)?;
    }
    let uniforms = match objects.get(&program) {
        Some(Object20::Program(p)) => p.uniforms.as_slice(),
        _ => &[],
    };
    let bound = BoundProgram {
        program: &linked,
        uniforms,
    };
    let units = *bound_textures;
    let mode = call.mode;
    let run = |gl: &mut vc_gles::Gles11, target: &mut vc_gles::Surface| {
        gl.draw_program(mode, indices.as_indices(), &generic, &bound, &units, target)
    };
    let result = if *framebuffer != 0 {
        match color_attachments.get(framebuffer) {
            Some(&texture) => gl.render_to_texture(texture, run),
            None => None,
        }
    } else {
        surface.map(|s| run(gl, s))
    };
    Ok(result.and_then(|r| r.err()).map(|fault| fault.0))
}

/// Where element indices live: the bound element buffer, else the vertex cache.
fn index_source(c: &Context) -> &[u8] {
    if c.element_buffer != 0 {
        c.buffers.get(&c.element_buffer).map_or(&[], Vec::as_slice)
    } else {
        &c.cache
    }
}

fn read_indices(source: &[u8], ty: u32, offset: u32, count: u32) -> Result<OwnedIndices, u32> {
    let size = match ty {
        UNSIGNED_BYTE => 1,
        UNSIGNED_SHORT => 2,
        UNSIGNED_INT => 4,
        _ => return Err(INVALID_ENUM),
    };
    let start = offset as usize;
    let bytes = (count as usize)
        .checked_mul(size)
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= source.len())
        .map(|end| &source[start..end])
        .ok_or(INVALID_OPERATION)?;
    Ok(match size {
        1 => OwnedIndices::U8(bytes.to_vec()),
        2 => OwnedIndices::U16(
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        _ => OwnedIndices::U32(
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    })
}

/// `GLINTFINDMAX`: the largest of `count` indices at `offset` of the bound element buffer
/// (or the cache when none is bound).
pub(super) fn find_max(c: &Context, count: u32, ty: u32, offset: u32) -> Option<u32> {
    let indices = read_indices(index_source(c), ty, offset, count).ok()?;
    indices.max_index().map(|m| m as u32)
}

fn attrib_type(ty: u32) -> Option<(AttribType, u64)> {
    Some(match ty {
        BYTE => (AttribType::Byte, 1),
        UNSIGNED_BYTE => (AttribType::UnsignedByte, 1),
        SHORT => (AttribType::Short, 2),
        UNSIGNED_SHORT => (AttribType::UnsignedShort, 2),
        FIXED => (AttribType::Fixed, 4),
        FLOAT => (AttribType::Float, 4),
        _ => return None,
    })
}

/// The checked byte range of one enabled attribute, covering vertices `0..=max_index`.
fn attrib_array<'a>(
    attribs: &[Attrib; MAX_ATTRIBS],
    slot: usize,
    call: &DrawCall,
    cache: &'a [u8],
    buffers: &'a BTreeMap<u32, Vec<u8>>,
    max_index: u64,
) -> Result<Option<AttribArray<'a>>, u32> {
    let a = &attribs[slot];
    if !a.enabled {
        return Ok(None);
    }
    let (ty, type_size) = attrib_type(a.ty).ok_or(INVALID_ENUM)?;
    if !(1..=4).contains(&a.size) {
        return Err(INVALID_VALUE);
    }
    let element = u64::from(a.size) * type_size;
    let stride = if a.stride == 0 {
        element
    } else {
        u64::from(a.stride)
    };
    let (source, offset): (&[u8], u32) = if call.cache_offsets[slot] != NOT_CACHED {
        (cache, call.cache_offsets[slot])
    } else if a.buffer != 0 {
        let buffer = buffers.get(&a.buffer).ok_or(INVALID_OPERATION)?;
        (buffer, a.pointer)
    } else {
        // Client memory that was not shipped: nothing to read.
        return Err(INVALID_OPERATION);
    };
    let start = u64::from(offset);
    let end = start + max_index * stride + element;
    if end > source.len() as u64 {
        return Err(INVALID_OPERATION);
    }
    Ok(Some(AttribArray {
        size: a.size as _,
        ty,
        normalized: a.normalized,
        stride: stride as _,
        data: &source[start as usize..end as usize],
    }))
}
