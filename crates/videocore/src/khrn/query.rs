//! `glGet*v`, `glGetTexParameter*`, `glGetBufferParameteriv`, `glIs{Frame,Render}buffer` and
//! the framebuffer-object queries: every query a client waits for gets its answer (an empty
//! one and `GL_INVALID_ENUM` for an unknown name), so no client blocks on a reply that
//! never comes.

use vc_gles::StateValue;
use vc_gles::program::{MAX_TEXTURE_UNITS, MAX_VARYING_VECTORS, MAX_VERTEX_ATTRIBS};

use super::gl::glenum::{ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER, INVALID_ENUM, RGBA, UNSIGNED_BYTE};
use super::state::Context;
use super::wire::Words;
use super::{Channel, Flow, KhrnError, KhrnHost, KhrnServer, ids};

/// How a `glGet*v` answers.
#[derive(Clone, Copy)]
enum As {
    Int,
    Float,
    Bool,
}

impl KhrnServer {
    pub(super) fn query_command(
        &mut self,
        channel: Channel,
        id: u32,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id {
            ids::GLGETINTEGERV | ids::GLGETFLOATV | ids::GLGETBOOLEANV => {
                let pname = w.u32(id)?;
                let want = match id {
                    ids::GLGETINTEGERV => As::Int,
                    ids::GLGETFLOATV => As::Float,
                    _ => As::Bool,
                };
                let value = self.state(channel, pname);
                if value.is_none() {
                    self.error(channel, INVALID_ENUM);
                }
                match (value, want) {
                    (Some(v), As::Int) => {
                        let words: Vec<u32> = v.to_ints().iter().map(|&i| i as u32).collect();
                        self.reply_out_ctrl(host, channel, &words);
                    }
                    (Some(v), As::Float) => {
                        let words: Vec<u32> = v.to_floats().iter().map(|f| f.to_bits()).collect();
                        self.reply_out_ctrl(host, channel, &words);
                    }
                    // GLboolean is one byte.
                    (Some(v), As::Bool) => {
                        let bytes: Vec<u8> = v.to_bools().iter().map(|&b| u8::from(b)).collect();
                        self.reply_out_ctrl_bytes(host, channel, &bytes);
                    }
                    (None, _) => self.reply_out_ctrl(host, channel, &[]),
                }
            }
            ids::GLGETTEXPARAMETERIV | ids::GLGETTEXPARAMETERFV => {
                let [_target, pname] = w.array::<2>(id)?;
                let value = self.context_mut(channel).and_then(|c| {
                    let unit = c.bound_texture();
                    let unit0 = c.bound_textures[0];
                    c.gl.bind_texture(vc_gles::gl::GL_TEXTURE_2D, unit);
                    let v = c.gl.texture_parameter(pname);
                    c.gl.bind_texture(vc_gles::gl::GL_TEXTURE_2D, unit0);
                    if v.is_none() {
                        c.set_error(INVALID_ENUM);
                    }
                    v
                });
                let word = |v: u32| {
                    if id == ids::GLGETTEXPARAMETERFV {
                        (v as f32).to_bits()
                    } else {
                        v
                    }
                };
                let words: Vec<u32> = value.map(word).into_iter().collect();
                self.reply_out_ctrl(host, channel, &words);
            }
            ids::GLGETBUFFERPARAMETERIV => {
                let [target, pname] = w.array::<2>(id)?;
                let value = self.context_mut(channel).and_then(|c| {
                    let v = buffer_parameter(c, target, pname);
                    if v.is_none() {
                        c.set_error(INVALID_ENUM);
                    }
                    v
                });
                let words: Vec<u32> = value.into_iter().collect();
                self.reply_out_ctrl(host, channel, &words);
            }
            ids::GLISFRAMEBUFFER | ids::GLISRENDERBUFFER => {
                let name = w.u32(id)?;
                let is = self.context_mut(channel).is_some_and(|c| {
                    if id == ids::GLISFRAMEBUFFER {
                        c.framebuffers.contains(name)
                    } else {
                        c.renderbuffers.contains(name)
                    }
                });
                self.reply_u32(host, channel, u32::from(is));
            }
            ids::GLGETRENDERBUFFERPARAMETERIV => {
                let [_target, pname] = w.array::<2>(id)?;
                // Renderbuffer storage is accepted and not kept: sizes read as 0.
                let known =
                    (0x8d42..=0x8d44).contains(&pname) || (0x8d50..=0x8d55).contains(&pname);
                if !known {
                    self.error(channel, INVALID_ENUM);
                }
                let words: Vec<u32> = known.then_some(0).into_iter().collect();
                self.reply_out_ctrl(host, channel, &words);
            }
            ids::GLGETFRAMEBUFFERATTACHMENTPARAMETERIV => {
                let [_target, attachment, pname] = w.array::<3>(id)?;
                let value = self.context_mut(channel).and_then(|c| {
                    attachment_parameter(c, attachment, pname)
                        .inspect_err(|&e| c.set_error(e))
                        .ok()
                });
                let words: Vec<u32> = value.into_iter().collect();
                self.reply_out_ctrl(host, channel, &words);
            }
            _ => return Ok(Flow::Unknown),
        }
        Ok(Flow::Continue)
    }

    fn error(&mut self, channel: Channel, e: u32) {
        if let Some(c) = self.context_mut(channel) {
            c.set_error(e);
        }
    }

    /// A state value: the server's own (bindings, limits) or the renderer's.
    fn state(&mut self, channel: Channel, pname: u32) -> Option<StateValue> {
        let current = self.current(channel);
        let (width, height, depth) = self
            .surfaces
            .get(&current.draw)
            .map_or((0, 0, false), |s| (s.width, s.height, s.depth));
        let c = self.contexts.get(&current.context)?;
        let int = |v: u32| Some(StateValue::Int(vec![v as i32]));
        match pname {
            0x8869 => int(MAX_VERTEX_ATTRIBS as u32),
            0x8dfb => int(vc_glsl::MAX_VERTEX_UNIFORM_VECTORS as u32),
            0x8dfd => int(vc_glsl::MAX_FRAGMENT_UNIFORM_VECTORS as u32),
            0x8dfc => int(MAX_VARYING_VECTORS as u32),
            0x8872 | 0x8b4d => int(MAX_TEXTURE_UNITS as u32),
            0x8b4c => int(0), // MAX_VERTEX_TEXTURE_IMAGE_UNITS
            0x84e2 => int(super::state::TEXTURE_UNITS as u32), // GL 1.1 MAX_TEXTURE_UNITS
            0x84e8 => int(vc_gles::MAX_TEXTURE_SIZE), // MAX_RENDERBUFFER_SIZE
            0x851c => int(0), // MAX_CUBE_MAP_TEXTURE_SIZE: none
            0x8b8d => int(c.current_program),
            0x8894 => int(c.array_buffer),
            0x8895 => int(c.element_buffer),
            0x8ca6 => int(c.framebuffer),
            0x8ca7 => int(0), // RENDERBUFFER_BINDING (not kept)
            0x8069 => int(c.bound_texture()),
            0x84e0 => int(0x84c0 + c.active_unit as u32),
            0x8b9a => int(UNSIGNED_BYTE), // IMPLEMENTATION_COLOR_READ_TYPE
            0x8b9b => int(RGBA),          // IMPLEMENTATION_COLOR_READ_FORMAT
            0x86a2 | 0x8df9 | 0x80a8 | 0x80a9 => int(0), // compressed/binary formats, samples
            0x8dfa => Some(StateValue::Bool(vec![true])), // SHADER_COMPILER
            0x0cf5 | 0x0d05 => int(4),    // UNPACK/PACK_ALIGNMENT
            0x8192 | 0x0c50 => int(0x1100), // hints: GL_DONT_CARE
            0x846d | 0x846e => Some(StateValue::Float(vec![1.0, 1.0])), // point/line ranges
            _ => c.gl.state(pname, width, height, depth),
        }
    }
}

fn buffer_parameter(c: &Context, target: u32, pname: u32) -> Option<u32> {
    let name = match target {
        ARRAY_BUFFER => c.array_buffer,
        ELEMENT_ARRAY_BUFFER => c.element_buffer,
        _ => return None,
    };
    match pname {
        0x8764 => Some(c.buffers.get(&name).map_or(0, |b| b.len() as u32)), // BUFFER_SIZE
        0x8765 => Some(0x88e4), // BUFFER_USAGE: not kept, reported as STATIC_DRAW
        _ => None,
    }
}

/// `glGetFramebufferAttachmentParameteriv` on the bound framebuffer object.
fn attachment_parameter(c: &Context, attachment: u32, pname: u32) -> Result<u32, u32> {
    use super::gl::glenum::{COLOR_ATTACHMENT0, INVALID_OPERATION};
    if c.framebuffer == 0 {
        return Err(INVALID_OPERATION);
    }
    let texture = match attachment {
        COLOR_ATTACHMENT0 => c.color_attachments.get(&c.framebuffer).copied(),
        0x8d00 | 0x8d20 => None, // depth, stencil: not kept
        _ => return Err(INVALID_ENUM),
    };
    match (pname, texture) {
        (0x8cd0, Some(_)) => Ok(0x1702),     // OBJECT_TYPE: TEXTURE
        (0x8cd0, None) => Ok(0),             // NONE
        (0x8cd1, Some(t)) => Ok(t),          // OBJECT_NAME
        (0x8cd2 | 0x8cd3, Some(_)) => Ok(0), // level, cube face
        _ => Err(INVALID_ENUM),
    }
}
