//! OpenGL ES 2.0 calls, and the buffer-object and framebuffer-object calls both APIs share,
//! encoded as the real client encodes them (spec §6.1, §6.3).
//!
//! They are more methods of [`Gl`]: as in the real client, one GL library serves both
//! APIs and a call meant for the other API than the current context's does nothing.
//!
//! * Shaders and programs live on the VideoCore: `glCreateShader`/`glCreateProgram` are
//!   round trips for the name, `glShaderSource` ships every string as a payload of its own,
//!   `glGetAttribLocation`/`glGetUniformLocation` send the name (with its NUL) and wait for
//!   the location.
//! * Generic vertex attributes travel as `GLINTATTRIBPOINTER(2, index, …)` and
//!   `GLINTATTRIBENABLE(2, index, on)`. With a buffer bound to `GL_ARRAY_BUFFER` the pointer
//!   is an offset into it and the server reads the buffer (a draw then names no vertex-cache
//!   entry, `send_any = 0`); otherwise it is client memory, uploaded at draw time through the
//!   vertex cache as for OpenGL ES 1.1.
//! * `glBufferData` sends no data of its own: `GLBUFFERDATA(…, len = NULL)` sizes the
//!   buffer, and the bytes follow as `GLBUFFERSUBDATA(target, 0, size)` with a payload.

use crate::error::Result;
use crate::gles::consts::*;
use crate::gles::{Api, ClientArray, Gl, type_size};
use crate::ids;

/// GL enum values of the OpenGL ES 2.0 and buffer/framebuffer calls.
pub mod consts {
    #![allow(missing_docs)] // standard OpenGL ES 2.0 enum names
    pub const ARRAY_BUFFER: u32 = 0x8892;
    pub const ELEMENT_ARRAY_BUFFER: u32 = 0x8893;
    pub const STREAM_DRAW: u32 = 0x88E0;
    pub const STATIC_DRAW: u32 = 0x88E4;
    pub const DYNAMIC_DRAW: u32 = 0x88E8;
    pub const FRAGMENT_SHADER: u32 = 0x8B30;
    pub const VERTEX_SHADER: u32 = 0x8B31;
    pub const FRAMEBUFFER: u32 = 0x8D40;
    pub const RENDERBUFFER: u32 = 0x8D41;
    pub const COLOR_ATTACHMENT0: u32 = 0x8CE0;
    pub const DEPTH_ATTACHMENT: u32 = 0x8D00;
    pub const STENCIL_ATTACHMENT: u32 = 0x8D20;
    pub const FRAMEBUFFER_COMPLETE: u32 = 0x8CD5;
    pub const RGBA4: u32 = 0x8056;
    pub const RGB5_A1: u32 = 0x8057;
    pub const RGB565: u32 = 0x8D62;
    pub const DEPTH_COMPONENT16: u32 = 0x81A5;
    pub const STENCIL_INDEX8: u32 = 0x8D48;
    pub const TEXTURE0: u32 = 0x84C0;
    pub const MAX_VERTEX_ATTRIBS: u32 = 8;
    pub const STENCIL_BUFFER_BIT: u32 = 0x0400;
    pub const NEVER: u32 = 0x0200;
    pub const LESS: u32 = 0x0201;
    pub const LEQUAL: u32 = 0x0203;
    pub const ALWAYS: u32 = 0x0207;
    pub const ZERO: u32 = 0;
    pub const ONE: u32 = 1;
    pub const SRC_ALPHA: u32 = 0x0302;
    pub const ONE_MINUS_SRC_ALPHA: u32 = 0x0303;
}
use consts::*;

fn f(x: f32) -> u32 {
    x.to_bits()
}

/// `name` with its NUL, as the location queries send it.
fn with_nul(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

// ---------------------------------------------------------------------------------------
// Buffer objects, framebuffers and renderbuffers (both APIs)

impl Gl {
    /// `glGenBuffers` (OUT_BULK): the names the VideoCore chose.
    pub fn gen_buffers(&self, n: i32) -> Result<Vec<u32>> {
        self.gen_names(ids::GLGENBUFFERS, n)
    }

    /// `glDeleteBuffers` (IN_BULK). A deleted buffer is no longer bound or an attribute's
    /// source here either.
    pub fn delete_buffers(&self, buffers: &[u32]) -> Result<()> {
        self.with_api(Api::Any, |_, gl| {
            if buffers.contains(&gl.array_buffer) {
                gl.array_buffer = 0;
            }
            for a in gl.attribs.iter_mut() {
                if a.buffer != 0 && buffers.contains(&a.buffer) {
                    a.buffer = 0;
                }
            }
            Ok(())
        })?;
        self.delete_names(ids::GLDELETEBUFFERS, buffers)
    }

    /// `glBindBuffer`: `GL_ARRAY_BUFFER` is also remembered here (attribute pointers made
    /// while it is bound are offsets into it).
    pub fn bind_buffer(&self, target: u32, buffer: u32) -> Result<()> {
        self.with_api(Api::Any, |rpc, gl| {
            match target {
                ARRAY_BUFFER => gl.array_buffer = buffer,
                ELEMENT_ARRAY_BUFFER => {}
                _ => {
                    gl.set_error(INVALID_ENUM);
                    return Ok(());
                }
            }
            rpc.call(ids::GLBINDBUFFER, &[target, buffer])
        })
    }

    /// `glBufferData`: `GLBUFFERDATA(target, size, usage, NULL)`, then, with data, the bytes
    /// as `GLBUFFERSUBDATA(target, 0, size, len)` and a payload.
    pub fn buffer_data(&self, target: u32, data: BufferData<'_>, usage: u32) -> Result<()> {
        let size = data.size();
        self.with_api(Api::Any, |rpc, gl| {
            if !matches!(target, ARRAY_BUFFER | ELEMENT_ARRAY_BUFFER) {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            if !matches!(usage, STREAM_DRAW | STATIC_DRAW | DYNAMIC_DRAW) {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let Ok(size32) = u32::try_from(size) else {
                gl.set_error(OUT_OF_MEMORY);
                return Ok(());
            };
            rpc.call_in_bulk(ids::GLBUFFERDATA, &[target, size32, usage], None)?;
            match data {
                BufferData::Bytes(bytes) if !bytes.is_empty() => {
                    rpc.call_in_bulk(ids::GLBUFFERSUBDATA, &[target, 0, size32], Some(bytes))
                }
                _ => Ok(()),
            }
        })
    }

    /// `glBufferSubData` (IN_BULK).
    pub fn buffer_sub_data(&self, target: u32, offset: u32, bytes: &[u8]) -> Result<()> {
        self.with_api(Api::Any, |rpc, gl| {
            if !matches!(target, ARRAY_BUFFER | ELEMENT_ARRAY_BUFFER) {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let Ok(size) = u32::try_from(bytes.len()) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            rpc.call_in_bulk(ids::GLBUFFERSUBDATA, &[target, offset, size], Some(bytes))
        })
    }

    /// `glGenFramebuffers` (OUT_BULK).
    pub fn gen_framebuffers(&self, n: i32) -> Result<Vec<u32>> {
        self.gen_names(ids::GLGENFRAMEBUFFERS, n)
    }

    /// `glDeleteFramebuffers` (IN_BULK).
    pub fn delete_framebuffers(&self, framebuffers: &[u32]) -> Result<()> {
        self.delete_names(ids::GLDELETEFRAMEBUFFERS, framebuffers)
    }

    /// `glBindFramebuffer` (0: the window surface).
    pub fn bind_framebuffer(&self, target: u32, framebuffer: u32) -> Result<()> {
        self.checked(
            target == FRAMEBUFFER,
            ids::GLBINDFRAMEBUFFER,
            &[target, framebuffer],
        )
    }

    /// `glFramebufferTexture2D`.
    pub fn framebuffer_texture_2d(
        &self,
        target: u32,
        attachment: u32,
        textarget: u32,
        texture: u32,
        level: i32,
    ) -> Result<()> {
        self.checked(
            target == FRAMEBUFFER,
            ids::GLFRAMEBUFFERTEXTURE2D,
            &[target, attachment, textarget, texture, level as u32],
        )
    }

    /// `glCheckFramebufferStatus` (a round trip).
    pub fn check_framebuffer_status(&self, target: u32) -> Result<u32> {
        self.with_api(Api::Any, |rpc, gl| {
            if target != FRAMEBUFFER {
                gl.set_error(INVALID_ENUM);
                return Ok(0);
            }
            rpc.call_res(ids::GLCHECKFRAMEBUFFERSTATUS, &[target])
        })
    }

    /// `glGenRenderbuffers` (OUT_BULK).
    pub fn gen_renderbuffers(&self, n: i32) -> Result<Vec<u32>> {
        self.gen_names(ids::GLGENRENDERBUFFERS, n)
    }

    /// `glDeleteRenderbuffers` (IN_BULK).
    pub fn delete_renderbuffers(&self, renderbuffers: &[u32]) -> Result<()> {
        self.delete_names(ids::GLDELETERENDERBUFFERS, renderbuffers)
    }

    /// `glBindRenderbuffer`.
    pub fn bind_renderbuffer(&self, target: u32, renderbuffer: u32) -> Result<()> {
        self.checked(
            target == RENDERBUFFER,
            ids::GLBINDRENDERBUFFER,
            &[target, renderbuffer],
        )
    }

    /// `glRenderbufferStorage`.
    pub fn renderbuffer_storage(
        &self,
        target: u32,
        internal_format: u32,
        width: i32,
        height: i32,
    ) -> Result<()> {
        self.with_api(Api::Any, |rpc, gl| {
            if target != RENDERBUFFER {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            rpc.call(ids::GLRENDERBUFFERSTORAGE, &[target, internal_format, w, h])
        })
    }

    /// `glFramebufferRenderbuffer`.
    pub fn framebuffer_renderbuffer(
        &self,
        target: u32,
        attachment: u32,
        renderbuffer_target: u32,
        renderbuffer: u32,
    ) -> Result<()> {
        self.checked(
            target == FRAMEBUFFER && renderbuffer_target == RENDERBUFFER,
            ids::GLFRAMEBUFFERRENDERBUFFER,
            &[target, attachment, renderbuffer_target, renderbuffer],
        )
    }

    /// `glActiveTexture`.
    pub fn active_texture(&self, texture: u32) -> Result<()> {
        self.with_api(Api::Any, |rpc, _| {
            rpc.call(ids::GLACTIVETEXTURE, &[texture])
        })
    }

    /// `glDepthFunc`.
    pub fn depth_func(&self, func: u32) -> Result<()> {
        self.checked((NEVER..=ALWAYS).contains(&func), ids::GLDEPTHFUNC, &[func])
    }

    /// `glDepthMask`.
    pub fn depth_mask(&self, flag: bool) -> Result<()> {
        self.with_api(Api::Any, |rpc, _| {
            rpc.call(ids::GLDEPTHMASK, &[u32::from(flag)])
        })
    }

    /// `glColorMask`.
    pub fn color_mask(&self, r: bool, g: bool, b: bool, a: bool) -> Result<()> {
        self.with_api(Api::Any, |rpc, _| {
            rpc.call(ids::GLCOLORMASK, &[r, g, b, a].map(u32::from))
        })
    }

    /// `glClearDepthf`.
    pub fn clear_depthf(&self, depth: f32) -> Result<()> {
        self.with_api(Api::Any, |rpc, _| {
            rpc.call(ids::GLCLEARDEPTHF, &[f(depth.clamp(0.0, 1.0))])
        })
    }

    /// `glBlendFunc`, sent as the real client sends it: `GLBLENDFUNCSEPARATE` with the same
    /// factors for colour and alpha.
    pub fn blend_func(&self, sfactor: u32, dfactor: u32) -> Result<()> {
        self.with_api(Api::Any, |rpc, _| {
            rpc.call(
                ids::GLBLENDFUNCSEPARATE,
                &[sfactor, dfactor, sfactor, dfactor],
            )
        })
    }

    /// A plain call of both APIs, or `GL_INVALID_ENUM` (set here, nothing sent) when `ok`
    /// is false.
    fn checked(&self, ok: bool, id: u32, args: &[u32]) -> Result<()> {
        self.with_api(Api::Any, |rpc, gl| {
            if !ok {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            rpc.call(id, args)
        })
    }
}

/// What `glBufferData` fills a buffer with.
#[derive(Clone, Copy, Debug)]
pub enum BufferData<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// This many undefined bytes (a NULL `data` pointer).
    Uninitialized(usize),
}

impl BufferData<'_> {
    fn size(&self) -> usize {
        match self {
            BufferData::Bytes(b) => b.len(),
            BufferData::Uninitialized(n) => *n,
        }
    }
}

/// Where a generic vertex attribute's data is.
#[derive(Clone, Debug)]
pub enum AttribSource {
    /// An offset into the buffer bound to `GL_ARRAY_BUFFER` when the pointer is set.
    Offset(u32),
    /// Client memory, uploaded through the vertex cache at draw time.
    Client(ClientArray),
}

// ---------------------------------------------------------------------------------------
// OpenGL ES 2.0 only

impl Gl {
    /// `glCreateShader` (a round trip): the shader's name, 0 on a bad `ty`
    /// (`GL_INVALID_ENUM`).
    pub fn create_shader(&self, ty: u32) -> Result<u32> {
        self.with_api(Api::Gles20, |rpc, gl| {
            if !matches!(ty, VERTEX_SHADER | FRAGMENT_SHADER) {
                gl.set_error(INVALID_ENUM);
                return Ok(0);
            }
            rpc.call_res(ids::GLCREATESHADER_20, &[ty])
        })
    }

    /// `glShaderSource` with NUL-terminated strings (no length array), framed as the Linux
    /// client frames it (spec §6.3): `[shader, count, total, has_lengths = 0]`, then per
    /// string a 4-byte payload `len = strlen + 1` and the string with its NUL.
    pub fn shader_source(&self, shader: u32, strings: &[&str]) -> Result<()> {
        self.with_api(Api::Gles20, |rpc, _| {
            let count = strings.len() as u32;
            let bodies: Vec<Vec<u8>> = strings.iter().map(|s| with_nul(s)).collect();
            let lens: Vec<[u8; 4]> = bodies
                .iter()
                .map(|b| (b.len() as u32).to_le_bytes())
                .collect();
            // Informational: the size of the client's marshalled block (two words per
            // string, one more, and the strings with their NULs).
            let total = 8 * count + 4 + bodies.iter().map(|b| b.len() as u32).sum::<u32>();
            let mut payloads: Vec<&[u8]> = Vec::with_capacity(2 * bodies.len());
            for (len, body) in lens.iter().zip(&bodies) {
                payloads.push(len);
                payloads.push(body);
            }
            rpc.call_then_payloads(
                ids::GLSHADERSOURCE_20,
                &[shader, count, total, 0],
                &payloads,
            )
        })
    }

    /// `glCompileShader` (the status is the server's; query it with `glGetShaderiv`).
    pub fn compile_shader(&self, shader: u32) -> Result<()> {
        self.plain20(ids::GLCOMPILESHADER_20, &[shader])
    }

    /// `glDeleteShader`.
    pub fn delete_shader(&self, shader: u32) -> Result<()> {
        self.plain20(ids::GLDELETESHADER_20, &[shader])
    }

    /// `glCreateProgram` (a round trip).
    pub fn create_program(&self) -> Result<u32> {
        self.with_api(Api::Gles20, |rpc, _| {
            rpc.call_res(ids::GLCREATEPROGRAM_20, &[])
        })
    }

    /// `glDeleteProgram`.
    pub fn delete_program(&self, program: u32) -> Result<()> {
        self.plain20(ids::GLDELETEPROGRAM_20, &[program])
    }

    /// `glAttachShader`.
    pub fn attach_shader(&self, program: u32, shader: u32) -> Result<()> {
        self.plain20(ids::GLATTACHSHADER_20, &[program, shader])
    }

    /// `glDetachShader`.
    pub fn detach_shader(&self, program: u32, shader: u32) -> Result<()> {
        self.plain20(ids::GLDETACHSHADER_20, &[program, shader])
    }

    /// `glLinkProgram`.
    pub fn link_program(&self, program: u32) -> Result<()> {
        self.plain20(ids::GLLINKPROGRAM_20, &[program])
    }

    /// `glValidateProgram`.
    pub fn validate_program(&self, program: u32) -> Result<()> {
        self.plain20(ids::GLVALIDATEPROGRAM_20, &[program])
    }

    /// `glUseProgram`.
    pub fn use_program(&self, program: u32) -> Result<()> {
        self.plain20(ids::GLUSEPROGRAM_20, &[program])
    }

    /// `glGetAttribLocation` (a round trip): the location, −1 if the program has no such
    /// active attribute.
    pub fn get_attrib_location(&self, program: u32, name: &str) -> Result<i32> {
        self.location(ids::GLGETATTRIBLOCATION_20, program, name)
    }

    /// `glGetUniformLocation` (a round trip): the location, −1 if none.
    pub fn get_uniform_location(&self, program: u32, name: &str) -> Result<i32> {
        self.location(ids::GLGETUNIFORMLOCATION_20, program, name)
    }

    fn location(&self, id: u32, program: u32, name: &str) -> Result<i32> {
        self.with_api(Api::Gles20, |rpc, _| {
            rpc.call_in_bulk_res(id, &[program], Some(&with_nul(name)))
                .map(|w| Some(w as i32))
        })
        .map(|l| l.unwrap_or(-1))
    }

    /// `glUniform1f` … `glUniform4f`: `values` has 1 to 4 floats (more are ignored).
    pub fn uniform_f(&self, location: i32, values: &[f32]) -> Result<()> {
        const IDS: [u32; 4] = [
            ids::GLUNIFORM1F_20,
            ids::GLUNIFORM2F_20,
            ids::GLUNIFORM3F_20,
            ids::GLUNIFORM4F_20,
        ];
        let n = values.len().clamp(1, 4);
        let mut args = vec![location as u32];
        args.extend(values.iter().take(n).map(|&v| f(v)));
        args.resize(n + 1, 0);
        self.plain20(IDS[n - 1], &args)
    }

    /// `glUniform1i` … `glUniform4i` (samplers take `glUniform1i`).
    pub fn uniform_i(&self, location: i32, values: &[i32]) -> Result<()> {
        const IDS: [u32; 4] = [
            ids::GLUNIFORM1I_20,
            ids::GLUNIFORM2I_20,
            ids::GLUNIFORM3I_20,
            ids::GLUNIFORM4I_20,
        ];
        let n = values.len().clamp(1, 4);
        let mut args = vec![location as u32];
        args.extend(values.iter().take(n).map(|&v| v as u32));
        args.resize(n + 1, 0);
        self.plain20(IDS[n - 1], &args)
    }

    /// `glVertexAttribPointer`, sent as `GLINTATTRIBPOINTER(2, index, size, type,
    /// normalized, stride, pointer)`: `pointer` is the offset into the bound array buffer,
    /// or the client address (truncated to 32 bits).
    pub fn vertex_attrib_pointer(
        &self,
        index: u32,
        size: i32,
        ty: u32,
        normalized: bool,
        stride: i32,
        source: AttribSource,
    ) -> Result<()> {
        self.with_api(Api::Gles20, |rpc, gl| {
            if index >= MAX_VERTEX_ATTRIBS {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            }
            if type_size(ty).is_none() {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let (Ok(size), Ok(stride)) = (u32::try_from(size), u32::try_from(stride)) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            if !(1..=4).contains(&size) {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            }
            let buffer = gl.array_buffer;
            let a = &mut gl.attribs[index as usize];
            a.size = size;
            a.ty = ty;
            a.stride = stride;
            let pointer = match source {
                // An offset with no buffer bound would be a client address near 0: the
                // server would read nothing there, and neither does this client.
                AttribSource::Offset(offset) => {
                    a.array = None;
                    a.buffer = buffer;
                    offset
                }
                AttribSource::Client(array) => {
                    let addr = array.bytes().as_ptr() as usize as u32;
                    a.array = Some(array);
                    a.buffer = 0;
                    addr
                }
            };
            rpc.call(
                ids::GLINTATTRIBPOINTER,
                &[
                    ids::ATTRIB_API_GL20,
                    index,
                    size,
                    ty,
                    u32::from(normalized),
                    stride,
                    pointer,
                ],
            )
        })
    }

    /// `glEnableVertexAttribArray`, sent as `GLINTATTRIBENABLE(2, index, 1)`.
    pub fn enable_vertex_attrib_array(&self, index: u32) -> Result<()> {
        self.attrib_array(index, true)
    }

    /// `glDisableVertexAttribArray`, sent as `GLINTATTRIBENABLE(2, index, 0)`.
    pub fn disable_vertex_attrib_array(&self, index: u32) -> Result<()> {
        self.attrib_array(index, false)
    }

    fn attrib_array(&self, index: u32, enabled: bool) -> Result<()> {
        self.with_api(Api::Gles20, |rpc, gl| {
            if index >= MAX_VERTEX_ATTRIBS {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            }
            gl.attribs[index as usize].enabled = enabled;
            rpc.call(
                ids::GLINTATTRIBENABLE,
                &[ids::ATTRIB_API_GL20, index, u32::from(enabled)],
            )
        })
    }

    fn plain20(&self, id: u32, args: &[u32]) -> Result<()> {
        self.with_api(Api::Gles20, |rpc, _| rpc.call(id, args))
    }
}
