//! Commands common to OpenGL ES 1.1 and 2.0, and the OpenGL ES 1.1-only commands.

use super::state::{
    Api, Attrib, Context, NameKind, PayloadAction, Pending, TEXTURE_UNITS, TexArgs,
};
use super::wire::{Words, bytes_to_words, words_to_bytes};
use super::{
    Channel, Flow, KhrnError, KhrnHost, KhrnServer, MAX_BUFFER_BYTES, MAX_TEXTURE_DIM, ids,
};

/// GL enum values used by the server itself (`GLES/gl.h`).
pub(super) mod glenum {
    pub const NO_ERROR: u32 = 0;
    pub const INVALID_ENUM: u32 = 0x0500;
    pub const INVALID_VALUE: u32 = 0x0501;
    pub const INVALID_OPERATION: u32 = 0x0502;
    pub const OUT_OF_MEMORY: u32 = 0x0505;
    pub const BYTE: u32 = 0x1400;
    pub const UNSIGNED_BYTE: u32 = 0x1401;
    pub const SHORT: u32 = 0x1402;
    pub const UNSIGNED_SHORT: u32 = 0x1403;
    pub const UNSIGNED_INT: u32 = 0x1405;
    pub const FLOAT: u32 = 0x1406;
    pub const FIXED: u32 = 0x140c;
    pub const ALPHA: u32 = 0x1906;
    pub const RGB: u32 = 0x1907;
    pub const RGBA: u32 = 0x1908;
    pub const LUMINANCE: u32 = 0x1909;
    pub const LUMINANCE_ALPHA: u32 = 0x190a;
    pub const UNSIGNED_SHORT_4_4_4_4: u32 = 0x8033;
    pub const UNSIGNED_SHORT_5_5_5_1: u32 = 0x8034;
    pub const UNSIGNED_SHORT_5_6_5: u32 = 0x8363;
    pub const TEXTURE_2D: u32 = 0x0de1;
    pub const TEXTURE0: u32 = 0x84c0;
    pub const ARRAY_BUFFER: u32 = 0x8892;
    pub const ELEMENT_ARRAY_BUFFER: u32 = 0x8893;
    pub const FRAMEBUFFER_COMPLETE: u32 = 0x8cd5;
    pub const COLOR_ATTACHMENT0: u32 = 0x8ce0;
    pub const DEPTH_ATTACHMENT: u32 = 0x8d00;
    pub const STENCIL_ATTACHMENT: u32 = 0x8d20;
    pub const TEXTURE_ENV_COLOR: u32 = 0x2201;
}

use glenum::*;

/// Most names one `glGen*` hands out: the client batches at its 1 MiB workspace.
const MAX_GEN_NAMES: usize = (1 << 20) / 4;

/// Bytes per pixel of an upload `format`/`type` pair, if GLES supports it.
pub(super) fn bytes_per_pixel(format: u32, ty: u32) -> Option<u32> {
    Some(match (format, ty) {
        (RGBA, UNSIGNED_BYTE) => 4,
        (RGB, UNSIGNED_BYTE) => 3,
        (RGBA, UNSIGNED_SHORT_4_4_4_4 | UNSIGNED_SHORT_5_5_5_1) | (RGB, UNSIGNED_SHORT_5_6_5) => 2,
        (LUMINANCE_ALPHA, UNSIGNED_BYTE) => 2,
        (LUMINANCE | ALPHA, UNSIGNED_BYTE) => 1,
        _ => return None,
    })
}

/// Minimum bytes of a `width`×`height` upload with rows padded to `align`.
fn upload_bytes(width: u32, height: u32, bpp: u32, align: u32) -> u64 {
    if width == 0 || height == 0 {
        return 0;
    }
    let align = u64::from(align.clamp(1, 8));
    let row = u64::from(width) * u64::from(bpp);
    let pitch = row.div_ceil(align) * align;
    pitch * (u64::from(height) - 1) + row
}

impl KhrnServer {
    /// The current context, if any.
    pub(super) fn context_mut(&mut self, channel: Channel) -> Option<&mut Context> {
        let id = self.current(channel).context;
        self.contexts.get_mut(&id)
    }

    /// The current context if it is an OpenGL ES 1.1 one (rendering state goes there).
    fn gl11(&mut self, channel: Channel) -> Option<&mut Context> {
        self.context_mut(channel).filter(|c| c.api == Api::Gles11)
    }

    pub(super) fn gl_command(
        &mut self,
        channel: Channel,
        id: u32,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id {
            // ----- clears, viewport, scissor (both APIs) -----
            ids::GLCLEARCOLOR | ids::GLCLEARCOLORX_11 => {
                let [r, g, b, a] = if id == ids::GLCLEARCOLOR {
                    w.floats::<4>(id)?
                } else {
                    w.fixeds::<4>(id)?
                };
                if let Some(c) = self.context_mut(channel) {
                    c.gl.clear_color(r, g, b, a);
                }
            }
            ids::GLCLEARDEPTHF | ids::GLCLEARDEPTHX_11 => {
                let depth = if id == ids::GLCLEARDEPTHF {
                    w.f32(id)?
                } else {
                    w.fixed(id)?
                };
                if let Some(c) = self.context_mut(channel) {
                    c.gl.clear_depthf(depth);
                }
            }
            ids::GLCLEAR => {
                let mask = w.u32(id)?;
                self.clear(channel, mask);
            }
            ids::GLVIEWPORT | ids::GLSCISSOR => {
                let [x, y, width, height] = w.array::<4>(id)?.map(|v| v as i32);
                if let Some(c) = self.context_mut(channel) {
                    if width < 0 || height < 0 {
                        c.set_error(INVALID_VALUE);
                    } else if id == ids::GLVIEWPORT {
                        c.gl.viewport(x, y, width, height);
                    } else {
                        c.gl.scissor(x, y, width, height);
                    }
                }
            }
            ids::GLENABLE | ids::GLDISABLE => {
                let cap = w.u32(id)?;
                let enable = id == ids::GLENABLE;
                if let Some(c) = self.context_mut(channel) {
                    set_capability(c, cap, enable);
                }
            }
            // ----- fixed-function state (GLES 1.1 renderer) -----
            ids::GLCULLFACE => {
                let mode = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.cull_face(mode);
                }
            }
            ids::GLFRONTFACE => {
                let mode = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.front_face(mode);
                }
            }
            ids::GLDEPTHFUNC => {
                let func = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.depth_func(func);
                }
            }
            ids::GLDEPTHMASK => {
                let flag = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.depth_mask(flag != 0);
                }
            }
            ids::GLHINT => {
                let [target, mode] = w.array::<2>(id)?;
                if let Some(c) = self.gl11(channel) {
                    c.gl.hint(target, mode);
                }
            }
            ids::GLMATRIXMODE_11 => {
                let mode = w.u32(id)?;
                if let Some(c) = self.gl11(channel) {
                    c.gl.matrix_mode(mode);
                }
            }
            ids::GLLOADIDENTITY_11 => {
                if let Some(c) = self.gl11(channel) {
                    c.gl.load_identity();
                }
            }
            ids::GLPUSHMATRIX_11 => {
                if let Some(c) = self.gl11(channel) {
                    c.gl.push_matrix();
                }
            }
            ids::GLPOPMATRIX_11 => {
                if let Some(c) = self.gl11(channel) {
                    c.gl.pop_matrix();
                }
            }
            ids::GLLOADMATRIXF_11
            | ids::GLLOADMATRIXX_11
            | ids::GLMULTMATRIXF_11
            | ids::GLMULTMATRIXX_11 => {
                let data = w.inline(64, id)?;
                let fixed = matches!(id, ids::GLLOADMATRIXX_11 | ids::GLMULTMATRIXX_11);
                let mut m = [0f32; 16];
                for (out, word) in m.iter_mut().zip(bytes_to_words(data)) {
                    *out = if fixed {
                        super::wire::fixed_to_f32(word as i32)
                    } else {
                        f32::from_bits(word)
                    };
                }
                if let Some(c) = self.gl11(channel) {
                    if matches!(id, ids::GLLOADMATRIXF_11 | ids::GLLOADMATRIXX_11) {
                        c.gl.load_matrixf(&m);
                    } else {
                        c.gl.mult_matrixf(&m);
                    }
                }
            }
            ids::GLFRUSTUMF_11 | ids::GLFRUSTUMX_11 | ids::GLORTHOF_11 | ids::GLORTHOX_11 => {
                let [l, r, b, t, n, f] = if matches!(id, ids::GLFRUSTUMF_11 | ids::GLORTHOF_11) {
                    w.floats::<6>(id)?
                } else {
                    w.fixeds::<6>(id)?
                };
                if let Some(c) = self.gl11(channel) {
                    if matches!(id, ids::GLFRUSTUMF_11 | ids::GLFRUSTUMX_11) {
                        c.gl.frustumf(l, r, b, t, n, f);
                    } else {
                        c.gl.orthof(l, r, b, t, n, f);
                    }
                }
            }
            ids::GLTRANSLATEF_11 | ids::GLTRANSLATEX_11 | ids::GLSCALEF_11 | ids::GLSCALEX_11 => {
                let [x, y, z] = if matches!(id, ids::GLTRANSLATEF_11 | ids::GLSCALEF_11) {
                    w.floats::<3>(id)?
                } else {
                    w.fixeds::<3>(id)?
                };
                if let Some(c) = self.gl11(channel) {
                    if matches!(id, ids::GLTRANSLATEF_11 | ids::GLTRANSLATEX_11) {
                        c.gl.translatef(x, y, z);
                    } else {
                        c.gl.scalef(x, y, z);
                    }
                }
            }
            ids::GLROTATEF_11 | ids::GLROTATEX_11 => {
                let [angle, x, y, z] = if id == ids::GLROTATEF_11 {
                    w.floats::<4>(id)?
                } else {
                    w.fixeds::<4>(id)?
                };
                if let Some(c) = self.gl11(channel) {
                    c.gl.rotatef(angle, x, y, z);
                }
            }
            ids::GLINTCOLOR_11 => {
                let [r, g, b, a] = w.floats::<4>(id)?;
                if let Some(c) = self.gl11(channel) {
                    c.gl.color4f(r, g, b, a);
                }
            }
            ids::GLTEXENVF_11 | ids::GLTEXENVI_11 | ids::GLTEXENVX_11 => {
                let [target, pname, param] = w.array::<3>(id)?;
                if let Some(c) = self.gl11_unit0(channel) {
                    match id {
                        ids::GLTEXENVF_11 => c.gl.tex_envf(target, pname, f32::from_bits(param)),
                        // Scalar parameters are enums: the fixed form carries the value.
                        _ => c.gl.tex_envi(target, pname, param as i32),
                    }
                }
            }
            ids::GLTEXENVFV_11 | ids::GLTEXENVIV_11 | ids::GLTEXENVXV_11 => {
                let [target, pname] = w.array::<2>(id)?;
                let params = w.inline(16, id)?;
                let color = pname == TEXTURE_ENV_COLOR;
                let values: Vec<f32> = bytes_to_words(params)
                    .map(|v| match id {
                        ids::GLTEXENVFV_11 => f32::from_bits(v),
                        ids::GLTEXENVXV_11 if color => super::wire::fixed_to_f32(v as i32),
                        // Integer colours map [-2^31, 2^31-1] to [-1, 1].
                        ids::GLTEXENVIV_11 if color => v as i32 as f32 / i32::MAX as f32,
                        _ => v as i32 as f32,
                    })
                    .collect();
                if let Some(c) = self.gl11_unit0(channel) {
                    c.gl.tex_envfv(target, pname, &values);
                }
            }
            ids::GLSHADEMODEL_11 => {
                let mode = w.u32(id)?;
                if let Some(c) = self.gl11(channel) {
                    c.gl.shade_model(mode);
                }
            }
            ids::GLALPHAFUNC_11 | ids::GLALPHAFUNCX_11 => {
                let func = w.u32(id)?;
                let reference = if id == ids::GLALPHAFUNC_11 {
                    w.f32(id)?
                } else {
                    w.fixed(id)?
                };
                if let Some(c) = self.gl11(channel) {
                    c.gl.alpha_func(func, reference);
                }
            }
            ids::GLDEPTHRANGEF | ids::GLDEPTHRANGEX_11 => {
                let [near, far] = if id == ids::GLDEPTHRANGEF {
                    w.floats::<2>(id)?
                } else {
                    w.fixeds::<2>(id)?
                };
                if let Some(c) = self.context_mut(channel) {
                    c.gl.depth_rangef(near, far);
                }
            }
            ids::GLCOLORMASK => {
                let [r, g, b, a] = w.array::<4>(id)?.map(|v| v != 0);
                if let Some(c) = self.context_mut(channel) {
                    c.gl.color_mask(r, g, b, a);
                }
            }
            ids::GLBLENDFUNCSEPARATE => {
                // `glBlendFunc(s, d)` travels as `(s, d, s, d)`.
                let [src_rgb, dst_rgb, src_alpha, dst_alpha] = w.array::<4>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    if c.api == Api::Gles11 {
                        c.gl.blend_func(src_rgb, dst_rgb);
                    } else {
                        c.gl.blend_func_separate(src_rgb, dst_rgb, src_alpha, dst_alpha);
                    }
                }
            }
            // ----- accepted, no renderer equivalent -----
            ids::GLCLEARSTENCIL
            | ids::GLLINEWIDTH
            | ids::GLGENERATEMIPMAP
            | ids::GLCLIENTACTIVETEXTURE_11
            | ids::GLLINEWIDTHX_11 => {
                w.u32(id)?;
            }
            ids::GLPOLYGONOFFSET
            | ids::GLSAMPLECOVERAGE
            | ids::GLPIXELSTOREI
            | ids::GLFOGF_11
            | ids::GLFOGX_11
            | ids::GLPOLYGONOFFSETX_11 => {
                w.array::<2>(id)?;
            }
            ids::GLCLIPPLANEF_11 | ids::GLCLIPPLANEX_11 | ids::GLFOGFV_11 | ids::GLFOGXV_11 => {
                w.u32(id)?;
                w.inline(16, id)?;
            }
            ids::GLRENDERBUFFERSTORAGE | ids::GLFRAMEBUFFERRENDERBUFFER => {
                w.array::<4>(id)?;
            }
            ids::GLFRAMEBUFFERTEXTURE2D => {
                let [_target, attachment, textarget, texture, level] = w.array::<5>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    attach_texture(c, attachment, textarget, texture, level as i32);
                }
            }
            // ----- textures -----
            ids::GLACTIVETEXTURE => {
                let texture = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match texture.checked_sub(TEXTURE0).map(|u| u as usize) {
                        Some(unit) if unit < TEXTURE_UNITS => c.active_unit = unit,
                        _ => c.set_error(INVALID_ENUM),
                    }
                }
            }
            ids::GLBINDTEXTURE => {
                let [target, name] = w.array::<2>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    if target != TEXTURE_2D {
                        c.set_error(INVALID_ENUM);
                    } else {
                        c.textures.insert(name);
                        let unit = c.active_unit;
                        c.bound_textures[unit] = name;
                        if unit == 0 {
                            c.gl.bind_texture(target, name);
                        }
                    }
                }
            }
            ids::GLGENTEXTURES
            | ids::GLGENBUFFERS
            | ids::GLGENFRAMEBUFFERS
            | ids::GLGENRENDERBUFFERS => {
                let n = w.i32(id)?;
                let names = self.generate_names(channel, id, n);
                self.reply_out_bulk(host, channel, words_to_bytes(&names));
            }
            ids::GLDELETETEXTURES
            | ids::GLDELETEBUFFERS
            | ids::GLDELETEFRAMEBUFFERS
            | ids::GLDELETERENDERBUFFERS => {
                let [n, len] = w.array::<2>(id)?;
                let kind = match id {
                    ids::GLDELETETEXTURES => NameKind::Textures,
                    ids::GLDELETEBUFFERS => NameKind::Buffers,
                    ids::GLDELETEFRAMEBUFFERS => NameKind::Framebuffers,
                    _ => NameKind::Renderbuffers,
                };
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    return self.expect_payload(
                        channel,
                        id,
                        len,
                        PayloadAction::Delete { kind, n },
                        host,
                    );
                }
            }
            ids::GLTEXIMAGE2D => {
                let a = w.array::<10>(id)?;
                let args = TexArgs {
                    target: a[0],
                    level: a[1] as i32,
                    internal_format: a[2],
                    xoffset: 0,
                    yoffset: 0,
                    width: a[3] as i32,
                    height: a[4] as i32,
                    border: a[5] as i32,
                    format: a[6],
                    ty: a[7],
                    align: a[8],
                };
                let len = a[9];
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    return self.expect_payload(
                        channel,
                        id,
                        len,
                        PayloadAction::TexImage(args),
                        host,
                    );
                }
                let ok = self.tex_image(channel, &args, None);
                self.reply_u32(host, channel, u32::from(ok));
            }
            ids::GLTEXSUBIMAGE2D => {
                let a = w.array::<10>(id)?;
                let args = TexArgs {
                    target: a[0],
                    level: a[1] as i32,
                    internal_format: 0,
                    xoffset: a[2] as i32,
                    yoffset: a[3] as i32,
                    width: a[4] as i32,
                    height: a[5] as i32,
                    border: 0,
                    format: a[6],
                    ty: a[7],
                    align: a[8],
                };
                let len = a[9];
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    return self.expect_payload(
                        channel,
                        id,
                        len,
                        PayloadAction::TexSubImage(args),
                        host,
                    );
                }
            }
            ids::GLTEXPARAMETERF | ids::GLTEXPARAMETERI | ids::GLTEXPARAMETERX_11 => {
                let [target, pname, param] = w.array::<3>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    with_unit_texture(c, |gl| match id {
                        ids::GLTEXPARAMETERF => {
                            gl.tex_parameterf(target, pname, f32::from_bits(param))
                        }
                        _ => gl.tex_parameteri(target, pname, param as i32),
                    });
                }
            }
            ids::GLTEXPARAMETERFV | ids::GLTEXPARAMETERIV => {
                let [target, pname, first, _, _, _] = w.array::<6>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    with_unit_texture(c, |gl| match id {
                        ids::GLTEXPARAMETERFV => {
                            gl.tex_parameterf(target, pname, f32::from_bits(first))
                        }
                        _ => gl.tex_parameteri(target, pname, first as i32),
                    });
                }
            }
            // ----- buffers and framebuffers -----
            ids::GLBINDBUFFER => {
                let [target, buffer] = w.array::<2>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match target {
                        ARRAY_BUFFER => c.array_buffer = buffer,
                        ELEMENT_ARRAY_BUFFER => c.element_buffer = buffer,
                        _ => c.set_error(INVALID_ENUM),
                    }
                    c.buffer_names.insert(buffer);
                }
            }
            ids::GLBUFFERDATA => {
                let [target, size, _usage, len] = w.array::<4>(id)?;
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    return self.expect_payload(
                        channel,
                        id,
                        len,
                        PayloadAction::BufferData { target, size },
                        host,
                    );
                }
                self.buffer_data(channel, target, size, None);
            }
            ids::GLBUFFERSUBDATA => {
                let [target, offset, _size, len] = w.array::<4>(id)?;
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    return self.expect_payload(
                        channel,
                        id,
                        len,
                        PayloadAction::BufferSubData { target, offset },
                        host,
                    );
                }
            }
            ids::GLBINDFRAMEBUFFER | ids::GLBINDRENDERBUFFER => {
                let [_target, name] = w.array::<2>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    if id == ids::GLBINDFRAMEBUFFER {
                        c.framebuffers.insert(name);
                        c.framebuffer = name;
                    } else {
                        c.renderbuffers.insert(name);
                    }
                }
            }
            ids::GLCHECKFRAMEBUFFERSTATUS => {
                w.u32(id)?;
                self.reply_u32(host, channel, FRAMEBUFFER_COMPLETE);
            }
            // ----- queries and synchronisation -----
            ids::GLGETERROR => {
                let error = self
                    .context_mut(channel)
                    .map_or(NO_ERROR, Context::take_error);
                self.reply_u32(host, channel, error);
            }
            ids::GLFINISH => self.reply_u32(host, channel, 0),
            ids::GLFLUSH => {}
            ids::GLISENABLED => {
                let cap = w.u32(id)?;
                let enabled = self
                    .context_mut(channel)
                    .is_some_and(|c| c.gl.is_enabled(cap));
                self.reply_u32(host, channel, u32::from(enabled));
            }
            ids::GLISTEXTURE | ids::GLISBUFFER => {
                let name = w.u32(id)?;
                let known = self.context_mut(channel).is_some_and(|c| {
                    if id == ids::GLISTEXTURE {
                        c.textures.contains(name)
                    } else {
                        c.buffer_names.contains(name)
                    }
                });
                self.reply_u32(host, channel, u32::from(known));
            }
            // ----- vertex arrays and the vertex cache -----
            ids::GLINTATTRIBPOINTER => {
                let [_api, index, size, ty, normalized, stride, pointer] = w.array::<7>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    let buffer = c.array_buffer;
                    match c.attribs.get_mut(index as usize) {
                        Some(a) => {
                            *a = Attrib {
                                enabled: a.enabled,
                                size,
                                ty,
                                normalized: normalized != 0,
                                stride,
                                pointer,
                                buffer,
                            }
                        }
                        None => c.set_error(INVALID_VALUE),
                    }
                }
            }
            ids::GLINTATTRIB => {
                let [api, index] = w.array::<2>(id)?;
                let value = w.floats::<4>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match c.current_attribs.get_mut(index as usize) {
                        Some(v) if api == 2 => *v = value,
                        Some(_) => {}
                        None => c.set_error(INVALID_VALUE),
                    }
                }
            }
            ids::GLREADPIXELS => {
                let [x, y, width, height, format, ty, align] = w.array::<7>(id)?;
                let data = self.read_pixels(
                    channel,
                    [x, y, width, height].map(|v| v as i32),
                    format,
                    ty,
                    align,
                );
                self.reply_out_bulk(host, channel, data);
            }
            ids::GLINTATTRIBENABLE => {
                let [_api, index, enabled] = w.array::<3>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match c.attribs.get_mut(index as usize) {
                        Some(a) => a.enabled = enabled != 0,
                        None => c.set_error(INVALID_VALUE),
                    }
                }
            }
            ids::GLINTCACHEGROW => {
                let grown = self.context_mut(channel).is_some_and(Context::grow_cache);
                self.reply_u32(host, channel, u32::from(grown));
            }
            ids::GLINTCACHECREATE | ids::GLINTCACHEDELETE => {
                // The hardware keeps an interlock per entry; the software cache needs none.
                w.u32(id)?;
            }
            ids::GLINTCACHEDATA => {
                let [offset, length] = w.array::<2>(id)?;
                let data = w.inline(length, id)?;
                if let Some(c) = self.context_mut(channel) {
                    let range = (offset as usize)
                        .checked_add(data.len())
                        .filter(|&end| end <= c.cache.len())
                        .map(|end| offset as usize..end);
                    match range {
                        Some(range) => c.cache[range].copy_from_slice(data),
                        None => c.set_error(INVALID_VALUE),
                    }
                }
            }
            ids::GLINTFINDMAX => {
                let [count, ty, offset] = w.array::<3>(id)?;
                let max = self
                    .context_mut(channel)
                    .and_then(|c| super::draw::find_max(c, count, ty, offset))
                    .unwrap_or(0);
                self.reply_u32(host, channel, max);
            }
            ids::GLINTDRAWELEMENTS => self.draw_elements(channel, w, host)?,
            _ => return Ok(Flow::Unknown),
        }
        Ok(Flow::Continue)
    }

    /// Run a delivered payload.
    pub(super) fn execute_payload(
        &mut self,
        channel: Channel,
        pending: Pending,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        match pending.action {
            PayloadAction::TexImage(args) => {
                let ok = self.tex_image(channel, &args, Some(data));
                self.reply_u32(host, channel, u32::from(ok));
            }
            PayloadAction::TexSubImage(args) => self.tex_sub_image(channel, &args, data),
            PayloadAction::Delete { kind, n } => {
                let names: Vec<u32> = bytes_to_words(data).take(n as usize).collect();
                if let Some(c) = self.context_mut(channel) {
                    delete_names(c, kind, &names);
                }
            }
            PayloadAction::BufferData { target, size } => {
                self.buffer_data(channel, target, size, Some(data));
            }
            PayloadAction::BufferSubData { target, offset } => {
                self.buffer_sub_data(channel, target, offset, data);
            }
            PayloadAction::Location { kind, program } => {
                let location = self.location(channel, kind, program, data);
                self.reply_u32(host, channel, location as u32);
            }
            PayloadAction::BindAttribLocation { program, index } => {
                self.bind_attrib_location(channel, program, index, data);
            }
            PayloadAction::ShaderLengths(state) => {
                self.shader_lengths(channel, state, data, host)?
            }
            PayloadAction::ShaderStringLength(state) => {
                self.shader_string_length(channel, state, data, host)?;
            }
            PayloadAction::ShaderString(state) => self.shader_string(channel, state, data, host)?,
        }
        Ok(())
    }

    fn clear(&mut self, channel: Channel, mask: u32) {
        let current = self.current(channel);
        let Some(c) = self.contexts.get_mut(&current.context) else {
            return;
        };
        if c.framebuffer != 0 {
            // A framebuffer object: its colour texture is the target (renderbuffer
            // attachments are not rendered).
            if let Some(&texture) = c.color_attachments.get(&c.framebuffer) {
                c.gl.render_to_texture(texture, |gl, s| gl.clear(mask, s));
            }
            return;
        }
        if let Some(surface) = self.surfaces.get_mut(&current.draw) {
            c.gl.clear(mask, surface.back_mut());
        }
    }

    /// `glReadPixels`: `GL_RGBA`/`GL_UNSIGNED_BYTE` rows from the bottom up, each padded
    /// to `align`; pixels outside the colour buffer read as zero. Other formats get
    /// `GL_INVALID_OPERATION` and no data.
    fn read_pixels(
        &mut self,
        channel: Channel,
        rect: [i32; 4],
        format: u32,
        ty: u32,
        align: u32,
    ) -> Vec<u8> {
        let current = self.current(channel);
        let Some(c) = self.contexts.get_mut(&current.context) else {
            return Vec::new();
        };
        let [x, y, w, h] = rect;
        if w < 0 || h < 0 {
            c.set_error(INVALID_VALUE);
            return Vec::new();
        }
        if (format, ty) != (RGBA, UNSIGNED_BYTE) {
            c.set_error(INVALID_OPERATION);
            return Vec::new();
        }
        let align = u64::from(align.clamp(1, 8));
        let pitch = (u64::from(w as u32) * 4).div_ceil(align) * align;
        let len = pitch * u64::from(h as u32);
        if len > u64::from(super::MAX_PAYLOAD) {
            c.set_error(INVALID_VALUE);
            return Vec::new();
        }
        let mut out = vec![0u8; len as usize];
        // Rows of the source in GL order (row 0 = bottom).
        let mut copy = |img: &vc_gles::Image| {
            for j in 0..h {
                let gy = y as i64 + i64::from(j);
                if gy < 0 || gy >= i64::from(img.height) {
                    continue;
                }
                let row = (i64::from(img.height) - 1 - gy) as u32;
                for i in 0..w {
                    let gx = x as i64 + i64::from(i);
                    if gx < 0 || gx >= i64::from(img.width) {
                        continue;
                    }
                    let at = (u64::from(j as u32) * pitch) as usize + i as usize * 4;
                    out[at..at + 4].copy_from_slice(&img.get(gx as u32, row));
                }
            }
        };
        if c.framebuffer != 0 {
            if let Some(&texture) = c.color_attachments.get(&c.framebuffer) {
                // render_to_texture hands the texels over as an image (top row first).
                c.gl.render_to_texture(texture, |_, s| copy(&s.color));
            }
        } else if let Some(surface) = self.surfaces.get(&current.draw) {
            copy(&surface.buffers[surface.back].color);
        }
        out
    }

    /// The current GLES 1.1 context if texture unit 0 is active (the renderer's unit).
    fn gl11_unit0(&mut self, channel: Channel) -> Option<&mut Context> {
        self.gl11(channel).filter(|c| c.active_unit == 0)
    }

    /// `glGen*`: server-chosen names (none if `n` is negative or absurd).
    fn generate_names(&mut self, channel: Channel, id: u32, n: i32) -> Vec<u32> {
        let Some(c) = self.context_mut(channel) else {
            return Vec::new();
        };
        let Ok(n) = usize::try_from(n) else {
            c.set_error(INVALID_VALUE);
            return Vec::new();
        };
        if n > MAX_GEN_NAMES {
            c.set_error(OUT_OF_MEMORY);
            return Vec::new();
        }
        match id {
            ids::GLGENTEXTURES => c.textures.generate(n),
            ids::GLGENBUFFERS => c.buffer_names.generate(n),
            ids::GLGENFRAMEBUFFERS => c.framebuffers.generate(n),
            _ => c.renderbuffers.generate(n),
        }
    }

    /// `glTexImage2D`; returns the `_RES` answer (true: the client may send pixels).
    fn tex_image(&mut self, channel: Channel, args: &TexArgs, pixels: Option<&[u8]>) -> bool {
        let Some(c) = self.context_mut(channel) else {
            return false;
        };
        let (Ok(width), Ok(height)) = (u32::try_from(args.width), u32::try_from(args.height))
        else {
            c.set_error(INVALID_VALUE);
            return false;
        };
        if width > MAX_TEXTURE_DIM || height > MAX_TEXTURE_DIM || !(0..=11).contains(&args.level) {
            c.set_error(INVALID_VALUE);
            return false;
        }
        let Some(bpp) = bytes_per_pixel(args.format, args.ty) else {
            c.set_error(INVALID_ENUM);
            return false;
        };
        if pixels.is_some_and(|p| (p.len() as u64) < upload_bytes(width, height, bpp, args.align)) {
            c.set_error(INVALID_VALUE);
            return false;
        }
        with_unit_texture(c, |gl| {
            gl.tex_image_2d(
                args.target,
                args.level,
                args.internal_format,
                width,
                height,
                args.border,
                args.format,
                args.ty,
                args.align,
                pixels,
            );
        });
        true
    }

    fn tex_sub_image(&mut self, channel: Channel, args: &TexArgs, pixels: &[u8]) {
        let Some(c) = self.context_mut(channel) else {
            return;
        };
        let (Ok(width), Ok(height)) = (u32::try_from(args.width), u32::try_from(args.height))
        else {
            c.set_error(INVALID_VALUE);
            return;
        };
        let Some(bpp) = bytes_per_pixel(args.format, args.ty) else {
            c.set_error(INVALID_ENUM);
            return;
        };
        if width > MAX_TEXTURE_DIM
            || height > MAX_TEXTURE_DIM
            || (pixels.len() as u64) < upload_bytes(width, height, bpp, args.align)
        {
            c.set_error(INVALID_VALUE);
            return;
        }
        with_unit_texture(c, |gl| {
            gl.tex_sub_image_2d(
                args.target,
                args.level,
                args.xoffset,
                args.yoffset,
                width,
                height,
                args.format,
                args.ty,
                args.align,
                pixels,
            );
        });
    }

    fn buffer_data(&mut self, channel: Channel, target: u32, size: u32, data: Option<&[u8]>) {
        let Some(c) = self.context_mut(channel) else {
            return;
        };
        let name = match target {
            ARRAY_BUFFER => c.array_buffer,
            ELEMENT_ARRAY_BUFFER => c.element_buffer,
            _ => return c.set_error(INVALID_ENUM),
        };
        if name == 0 {
            return c.set_error(INVALID_OPERATION);
        }
        let old = c.buffers.get(&name).map_or(0, Vec::len);
        let size = size as usize;
        if c.buffer_bytes - old + size > MAX_BUFFER_BYTES {
            return c.set_error(OUT_OF_MEMORY);
        }
        let mut contents = vec![0u8; size];
        if let Some(data) = data {
            let n = data.len().min(size);
            contents[..n].copy_from_slice(&data[..n]);
        }
        c.buffer_bytes = c.buffer_bytes - old + size;
        c.buffers.insert(name, contents);
    }

    fn buffer_sub_data(&mut self, channel: Channel, target: u32, offset: u32, data: &[u8]) {
        let Some(c) = self.context_mut(channel) else {
            return;
        };
        let name = match target {
            ARRAY_BUFFER => c.array_buffer,
            ELEMENT_ARRAY_BUFFER => c.element_buffer,
            _ => return c.set_error(INVALID_ENUM),
        };
        let Some(buffer) = c.buffers.get_mut(&name) else {
            return c.set_error(INVALID_OPERATION);
        };
        let offset = offset as usize;
        match offset
            .checked_add(data.len())
            .filter(|&end| end <= buffer.len())
        {
            Some(end) => buffer[offset..end].copy_from_slice(data),
            None => c.set_error(INVALID_VALUE),
        }
    }
}

/// `glEnable`/`glDisable` for either API.
fn set_capability(c: &mut Context, cap: u32, enable: bool) {
    match c.api {
        Api::Gles11 if cap == TEXTURE_2D && c.active_unit != 0 => {}
        Api::Gles11 => {
            if enable {
                c.gl.enable(cap);
            } else {
                c.gl.disable(cap);
            }
        }
        // GL_TEXTURE_2D is not a GLES 2.0 capability (shaders choose their textures).
        Api::Gles20 if cap == TEXTURE_2D => c.set_error(INVALID_ENUM),
        Api::Gles20 => {
            if enable {
                c.gl.enable(cap);
            } else {
                c.gl.disable(cap);
            }
        }
    }
}

/// Run `f` with the renderer's texture binding set to the active unit's texture (the
/// renderer has a single unit; other units' textures are still created and filled).
fn with_unit_texture(c: &mut Context, f: impl FnOnce(&mut vc_gles::Gles11)) {
    if c.active_unit == 0 {
        f(&mut c.gl);
        return;
    }
    let (unit_texture, unit0_texture) = (c.bound_texture(), c.bound_textures[0]);
    c.gl.bind_texture(TEXTURE_2D, unit_texture);
    f(&mut c.gl);
    c.gl.bind_texture(TEXTURE_2D, unit0_texture);
}

fn delete_names(c: &mut Context, kind: NameKind, names: &[u32]) {
    match kind {
        NameKind::Textures => {
            for &name in names {
                c.textures.remove(name);
                c.forget_texture(name);
            }
            c.gl.delete_textures(names);
        }
        NameKind::Buffers => {
            for &name in names {
                c.buffer_names.remove(name);
                if let Some(b) = c.buffers.remove(&name) {
                    c.buffer_bytes -= b.len();
                }
                if c.array_buffer == name {
                    c.array_buffer = 0;
                }
                if c.element_buffer == name {
                    c.element_buffer = 0;
                }
            }
        }
        NameKind::Framebuffers => {
            for &name in names {
                c.framebuffers.remove(name);
                c.color_attachments.remove(&name);
                if c.framebuffer == name {
                    c.framebuffer = 0;
                }
            }
        }
        NameKind::Renderbuffers => {
            for &name in names {
                c.renderbuffers.remove(name);
            }
        }
    }
}

/// `glFramebufferTexture2D` on the bound framebuffer object.
fn attach_texture(c: &mut Context, attachment: u32, textarget: u32, texture: u32, level: i32) {
    if c.framebuffer == 0 {
        return c.set_error(INVALID_OPERATION);
    }
    match attachment {
        COLOR_ATTACHMENT0 if texture == 0 => {
            c.color_attachments.remove(&c.framebuffer);
        }
        COLOR_ATTACHMENT0 if textarget != TEXTURE_2D || level != 0 => c.set_error(INVALID_VALUE),
        COLOR_ATTACHMENT0 => {
            c.color_attachments.insert(c.framebuffer, texture);
        }
        // Depth and stencil attachments are accepted and not rendered.
        DEPTH_ATTACHMENT | STENCIL_ATTACHMENT => {}
        _ => c.set_error(INVALID_ENUM),
    }
}
