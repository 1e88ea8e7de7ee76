//! OpenGL ES 1.1 calls, encoded as the real client encodes them.
//!
//! Calls go to the current context (see [`egl::Display::make_current`](crate::egl::Display::make_current));
//! with no current OpenGL ES 1.1 context they do nothing, like the real client. Misuse that
//! the client itself detects (a bad enum for a client-side array, a negative count, pixels
//! shorter than the image) sets the context's GL error, as GL does; every method returns
//! `Err` only when the VideoCore could not be reached or answered nonsense.
//!
//! Client-side vertex arrays are [`ClientArray`]s: a byte slice that stays valid while it is
//! bound (a `'static` slice or shared bytes). Its address is what `GLINTATTRIBPOINTER`
//! carries (truncated to 32 bits, like the real client); its bytes reach the server through
//! the vertex cache at draw time.

use std::sync::Arc;

use crate::Client;
use crate::cache::{CacheKey, MAX_ENTRY_DATA, VertexCache};
use crate::error::{Error, Result};
use crate::ids;
use crate::rpc::{Rpc, pad4};

/// GL enum values used by this API.
pub mod consts {
    #![allow(missing_docs)] // standard OpenGL ES 1.1 enum names
    pub const NO_ERROR: u32 = 0;
    pub const INVALID_ENUM: u32 = 0x0500;
    pub const INVALID_VALUE: u32 = 0x0501;
    pub const INVALID_OPERATION: u32 = 0x0502;
    pub const OUT_OF_MEMORY: u32 = 0x0505;
    pub const POINTS: u32 = 0;
    pub const LINES: u32 = 1;
    pub const LINE_LOOP: u32 = 2;
    pub const LINE_STRIP: u32 = 3;
    pub const TRIANGLES: u32 = 4;
    pub const TRIANGLE_STRIP: u32 = 5;
    pub const TRIANGLE_FAN: u32 = 6;
    pub const DEPTH_BUFFER_BIT: u32 = 0x0100;
    pub const COLOR_BUFFER_BIT: u32 = 0x4000;
    pub const FRONT: u32 = 0x0404;
    pub const BACK: u32 = 0x0405;
    pub const CW: u32 = 0x0900;
    pub const CCW: u32 = 0x0901;
    pub const CULL_FACE: u32 = 0x0B44;
    pub const DEPTH_TEST: u32 = 0x0B71;
    pub const BLEND: u32 = 0x0BE2;
    pub const SCISSOR_TEST: u32 = 0x0C11;
    pub const PERSPECTIVE_CORRECTION_HINT: u32 = 0x0C50;
    pub const TEXTURE_2D: u32 = 0x0DE1;
    pub const DONT_CARE: u32 = 0x1100;
    pub const FASTEST: u32 = 0x1101;
    pub const NICEST: u32 = 0x1102;
    pub const BYTE: u32 = 0x1400;
    pub const UNSIGNED_BYTE: u32 = 0x1401;
    pub const SHORT: u32 = 0x1402;
    pub const UNSIGNED_SHORT: u32 = 0x1403;
    pub const FLOAT: u32 = 0x1406;
    pub const FIXED: u32 = 0x140C;
    pub const MODELVIEW: u32 = 0x1700;
    pub const PROJECTION: u32 = 0x1701;
    pub const TEXTURE: u32 = 0x1702;
    pub const ALPHA: u32 = 0x1906;
    pub const RGB: u32 = 0x1907;
    pub const RGBA: u32 = 0x1908;
    pub const LUMINANCE: u32 = 0x1909;
    pub const LUMINANCE_ALPHA: u32 = 0x190A;
    pub const NEAREST: u32 = 0x2600;
    pub const LINEAR: u32 = 0x2601;
    pub const TEXTURE_MAG_FILTER: u32 = 0x2800;
    pub const TEXTURE_MIN_FILTER: u32 = 0x2801;
    pub const TEXTURE_WRAP_S: u32 = 0x2802;
    pub const TEXTURE_WRAP_T: u32 = 0x2803;
    pub const REPEAT: u32 = 0x2901;
    pub const CLAMP_TO_EDGE: u32 = 0x812F;
    pub const UNSIGNED_SHORT_4_4_4_4: u32 = 0x8033;
    pub const UNSIGNED_SHORT_5_5_5_1: u32 = 0x8034;
    pub const UNSIGNED_SHORT_5_6_5: u32 = 0x8363;
    pub const VERTEX_ARRAY: u32 = 0x8074;
    pub const NORMAL_ARRAY: u32 = 0x8075;
    pub const COLOR_ARRAY: u32 = 0x8076;
    pub const TEXTURE_COORD_ARRAY: u32 = 0x8078;
    pub const WEIGHT_ARRAY_OES: u32 = 0x86AD;
    pub const MATRIX_INDEX_ARRAY_OES: u32 = 0x8844;
    pub const POINT_SIZE_ARRAY_OES: u32 = 0x8B9C;
}
use consts::*;

/// Number of GL 1.1 attribute slots (0 position, 1 colour, 2 normal, 3–6 texcoord units,
/// 7 point size, 8 matrix weight, 9 matrix index).
const ATTRIB_SLOTS: usize = 10;
/// Large client buffers are split into commands of at most this many bytes
/// (`KHDISPATCH_WORKSPACE_SIZE`).
const WORKSPACE: usize = 1 << 20;
/// glPixelStorei is not offered, so the unpack alignment stays at GL's default.
const UNPACK_ALIGNMENT: u32 = 4;

/// Client memory holding a vertex or index array.
#[derive(Clone, Debug)]
pub struct ClientArray(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
}

impl ClientArray {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// The client address (what `GLINTATTRIBPOINTER` carries, truncated to 32 bits).
    fn addr(&self) -> usize {
        self.bytes().as_ptr() as usize
    }
}

impl From<&'static [u8]> for ClientArray {
    fn from(s: &'static [u8]) -> ClientArray {
        ClientArray(Repr::Static(s))
    }
}

impl<const N: usize> From<&'static [u8; N]> for ClientArray {
    fn from(s: &'static [u8; N]) -> ClientArray {
        ClientArray(Repr::Static(s))
    }
}

impl From<Arc<[u8]>> for ClientArray {
    fn from(s: Arc<[u8]>) -> ClientArray {
        ClientArray(Repr::Shared(s))
    }
}

impl From<Vec<u8>> for ClientArray {
    fn from(v: Vec<u8>) -> ClientArray {
        ClientArray(Repr::Shared(v.into()))
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Attrib {
    pub(crate) enabled: bool,
    pub(crate) size: u32,
    pub(crate) ty: u32,
    pub(crate) stride: u32,
    /// Client memory (uploaded through the vertex cache at draw time), or `None`.
    pub(crate) array: Option<ClientArray>,
    /// The buffer object the attribute is sourced from (0: client memory): the server reads
    /// it there, nothing is uploaded.
    pub(crate) buffer: u32,
}

/// Per-context GL client state: the attribute arrays, the error flag, the bound array
/// buffer and the vertex-cache mirror.
#[derive(Default)]
pub(crate) struct GlState {
    pub(crate) attribs: [Attrib; ATTRIB_SLOTS],
    pub(crate) error: u32,
    /// `GL_ARRAY_BUFFER_BINDING`: what a new attribute pointer is an offset into.
    pub(crate) array_buffer: u32,
    cache: VertexCache,
}

impl GlState {
    pub(crate) fn set_error(&mut self, e: u32) {
        if self.error == NO_ERROR {
            self.error = e;
        }
    }
}

/// The contexts a call applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// Both OpenGL ES 1.1 and 2.0 (`glClear`, textures, buffers, draws, ...).
    Any,
    /// OpenGL ES 1.1 only (matrices, the fixed-function arrays, ...).
    Gles11,
    /// OpenGL ES 2.0 only (shaders, programs, uniforms, generic attributes, ...).
    Gles20,
}

impl Api {
    /// Whether a context of `gltype` (1 or 2, as in make-current records) takes the call.
    fn admits(self, gltype: u32) -> bool {
        match self {
            Api::Any => gltype == 1 || gltype == 2,
            Api::Gles11 => gltype == 1,
            Api::Gles20 => gltype == 2,
        }
    }
}

pub(crate) fn type_size(ty: u32) -> Option<u32> {
    match ty {
        BYTE | UNSIGNED_BYTE => Some(1),
        SHORT | UNSIGNED_SHORT => Some(2),
        FLOAT | FIXED => Some(4),
        _ => None,
    }
}

fn bytes_per_pixel(format: u32, ty: u32) -> Option<u32> {
    match (format, ty) {
        (RGBA, UNSIGNED_BYTE) => Some(4),
        (RGB, UNSIGNED_BYTE) => Some(3),
        (LUMINANCE_ALPHA, UNSIGNED_BYTE) => Some(2),
        (LUMINANCE | ALPHA, UNSIGNED_BYTE) => Some(1),
        (RGB, UNSIGNED_SHORT_5_6_5) | (RGBA, UNSIGNED_SHORT_4_4_4_4 | UNSIGNED_SHORT_5_5_5_1) => {
            Some(2)
        }
        _ => None,
    }
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

fn matrix_bytes(m: &[f32; 16]) -> Vec<u8> {
    m.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `bytes[..len]`, zero-padded when the range runs past the array (the real client reads
/// whatever memory follows).
fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut v = bytes[..len.min(bytes.len())].to_vec();
    v.resize(len, 0);
    v
}

/// OpenGL ES 1.1 bound to a [`Client`] (one rendering thread).
#[derive(Clone)]
pub struct Gl {
    client: Arc<Client>,
}

impl Gl {
    /// GL calls through `client`.
    pub fn new(client: &Arc<Client>) -> Gl {
        Gl {
            client: Arc::clone(client),
        }
    }

    /// Run `f` on the current context if it is of an API that `api` admits; do nothing
    /// otherwise (the real client ignores a GL call without a current context, and an
    /// OpenGL ES 1.1-only call on a 2.0 context or the reverse).
    pub(crate) fn with_api<R: Default>(
        &self,
        api: Api,
        f: impl FnOnce(&mut Rpc, &mut GlState) -> Result<R>,
    ) -> Result<R> {
        let mut st = self.client.lock();
        let st = &mut *st;
        match st.egl.current_gl() {
            Some((gltype, gl)) if api.admits(gltype) => f(&mut st.rpc, gl),
            _ => Ok(R::default()),
        }
    }

    /// A call of both APIs.
    fn with<R: Default>(&self, f: impl FnOnce(&mut Rpc, &mut GlState) -> Result<R>) -> Result<R> {
        self.with_api(Api::Any, f)
    }

    /// An OpenGL ES 1.1-only call.
    fn with11<R: Default>(&self, f: impl FnOnce(&mut Rpc, &mut GlState) -> Result<R>) -> Result<R> {
        self.with_api(Api::Gles11, f)
    }

    fn plain(&self, id: u32, args: &[u32]) -> Result<()> {
        self.with(|rpc, _| rpc.call(id, args))
    }

    fn plain11(&self, id: u32, args: &[u32]) -> Result<()> {
        self.with11(|rpc, _| rpc.call(id, args))
    }

    /// `glClearColor`.
    pub fn clear_color(&self, r: f32, g: f32, b: f32, a: f32) -> Result<()> {
        self.plain(ids::GLCLEARCOLOR, &[f(r), f(g), f(b), f(a)])
    }

    /// `glClear`.
    pub fn clear(&self, mask: u32) -> Result<()> {
        self.plain(ids::GLCLEAR, &[mask])
    }

    /// `glEnable`.
    pub fn enable(&self, cap: u32) -> Result<()> {
        self.plain(ids::GLENABLE, &[cap])
    }

    /// `glDisable`.
    pub fn disable(&self, cap: u32) -> Result<()> {
        self.plain(ids::GLDISABLE, &[cap])
    }

    /// `glHint`.
    pub fn hint(&self, target: u32, mode: u32) -> Result<()> {
        self.plain(ids::GLHINT, &[target, mode])
    }

    /// `glViewport`.
    pub fn viewport(&self, x: i32, y: i32, width: i32, height: i32) -> Result<()> {
        self.plain(
            ids::GLVIEWPORT,
            &[x as u32, y as u32, width as u32, height as u32],
        )
    }

    /// `glScissor`.
    pub fn scissor(&self, x: i32, y: i32, width: i32, height: i32) -> Result<()> {
        self.plain(
            ids::GLSCISSOR,
            &[x as u32, y as u32, width as u32, height as u32],
        )
    }

    /// `glCullFace`.
    pub fn cull_face(&self, mode: u32) -> Result<()> {
        self.plain(ids::GLCULLFACE, &[mode])
    }

    /// `glFrontFace`.
    pub fn front_face(&self, mode: u32) -> Result<()> {
        self.plain(ids::GLFRONTFACE, &[mode])
    }

    /// `glMatrixMode`.
    pub fn matrix_mode(&self, mode: u32) -> Result<()> {
        self.plain11(ids::GLMATRIXMODE_11, &[mode])
    }

    /// `glLoadIdentity`.
    pub fn load_identity(&self) -> Result<()> {
        self.plain11(ids::GLLOADIDENTITY_11, &[])
    }

    /// `glLoadMatrixf` (column-major); the 64 bytes travel inline.
    pub fn load_matrixf(&self, m: &[f32; 16]) -> Result<()> {
        self.with11(|rpc, _| rpc.call_in_ctrl(ids::GLLOADMATRIXF_11, &[], &matrix_bytes(m)))
    }

    /// `glMultMatrixf` (column-major); the 64 bytes travel inline.
    pub fn mult_matrixf(&self, m: &[f32; 16]) -> Result<()> {
        self.with11(|rpc, _| rpc.call_in_ctrl(ids::GLMULTMATRIXF_11, &[], &matrix_bytes(m)))
    }

    /// `glPushMatrix`.
    pub fn push_matrix(&self) -> Result<()> {
        self.plain11(ids::GLPUSHMATRIX_11, &[])
    }

    /// `glPopMatrix`.
    pub fn pop_matrix(&self) -> Result<()> {
        self.plain11(ids::GLPOPMATRIX_11, &[])
    }

    /// `glFrustumf`.
    pub fn frustumf(&self, l: f32, r: f32, b: f32, t: f32, n: f32, fa: f32) -> Result<()> {
        self.plain11(ids::GLFRUSTUMF_11, &[f(l), f(r), f(b), f(t), f(n), f(fa)])
    }

    /// `glOrthof`.
    pub fn orthof(&self, l: f32, r: f32, b: f32, t: f32, n: f32, fa: f32) -> Result<()> {
        self.plain11(ids::GLORTHOF_11, &[f(l), f(r), f(b), f(t), f(n), f(fa)])
    }

    /// `glTranslatef`.
    pub fn translatef(&self, x: f32, y: f32, z: f32) -> Result<()> {
        self.plain11(ids::GLTRANSLATEF_11, &[f(x), f(y), f(z)])
    }

    /// `glRotatef` (degrees).
    pub fn rotatef(&self, angle: f32, x: f32, y: f32, z: f32) -> Result<()> {
        self.plain11(ids::GLROTATEF_11, &[f(angle), f(x), f(y), f(z)])
    }

    /// `glScalef`.
    pub fn scalef(&self, x: f32, y: f32, z: f32) -> Result<()> {
        self.plain11(ids::GLSCALEF_11, &[f(x), f(y), f(z)])
    }

    /// `glColor4f`: the current colour, clamped to 0..1, sent as `GLINTCOLOR_11`.
    pub fn color4f(&self, r: f32, g: f32, b: f32, a: f32) -> Result<()> {
        let c = |v: f32| f(v.clamp(0.0, 1.0));
        self.plain11(ids::GLINTCOLOR_11, &[c(r), c(g), c(b), c(a)])
    }

    /// `glGenTextures` (OUT_BULK): the names the VideoCore chose.
    pub fn gen_textures(&self, n: i32) -> Result<Vec<u32>> {
        self.gen_names(ids::GLGENTEXTURES, n)
    }

    /// `glGenBuffers`, `glGenTextures`, `glGenFramebuffers`, `glGenRenderbuffers`
    /// (OUT_BULK `[n]` → `[4n]` + the names).
    pub(crate) fn gen_names(&self, id: u32, n: i32) -> Result<Vec<u32>> {
        self.with(|rpc, gl| {
            let Ok(n) = usize::try_from(n) else {
                gl.set_error(INVALID_VALUE);
                return Ok(Vec::new());
            };
            let mut names = Vec::with_capacity(n);
            while names.len() < n {
                let batch = (n - names.len()).min(WORKSPACE / 4);
                let data = rpc.call_out_bulk(id, &[batch as u32])?;
                if data.len() != 4 * batch {
                    return Err(Error::Reply {
                        command: id,
                        expected: "4 bytes per name",
                        got: data.len(),
                    });
                }
                names.extend(
                    data.chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            Ok(names)
        })
    }

    /// `glDeleteTextures` (IN_BULK): `[n, len]` then the names as a payload.
    pub fn delete_textures(&self, textures: &[u32]) -> Result<()> {
        self.delete_names(ids::GLDELETETEXTURES, textures)
    }

    /// `glDelete{Textures,Buffers,Framebuffers,Renderbuffers}` (IN_BULK).
    pub(crate) fn delete_names(&self, id: u32, names: &[u32]) -> Result<()> {
        self.with(|rpc, _| {
            for batch in names.chunks(WORKSPACE / 4) {
                let bytes: Vec<u8> = batch.iter().flat_map(|t| t.to_le_bytes()).collect();
                rpc.call_in_bulk(id, &[batch.len() as u32], Some(&bytes))?;
            }
            Ok(())
        })
    }

    /// `glBindTexture`.
    pub fn bind_texture(&self, target: u32, texture: u32) -> Result<()> {
        self.plain(ids::GLBINDTEXTURE, &[target, texture])
    }

    /// `glTexImage2D`: `GLTEXIMAGE2D(…, align, len = NULL)` and its reply; if the VideoCore
    /// said yes and there are pixels, they follow as `GLTEXSUBIMAGE2D` batches with payloads
    /// (≤ 2032 bytes as messages, larger as bulk transfers).
    #[allow(clippy::too_many_arguments)] // mirrors the GL signature
    pub fn tex_image_2d(
        &self,
        target: u32,
        level: i32,
        internal_format: u32,
        width: i32,
        height: i32,
        border: i32,
        format: u32,
        ty: u32,
        pixels: Option<&[u8]>,
    ) -> Result<()> {
        self.with(|rpc, gl| {
            let Some(pitch) = check_image(gl, width, height, format, ty, pixels) else {
                return Ok(());
            };
            let ok = rpc.call_in_bulk_res(
                ids::GLTEXIMAGE2D,
                &[
                    target,
                    level as u32,
                    internal_format,
                    width as u32,
                    height as u32,
                    border as u32,
                    format,
                    ty,
                    UNPACK_ALIGNMENT,
                ],
                None,
            )?;
            match pixels {
                Some(p) if ok != 0 => sub_image(
                    rpc,
                    target,
                    level,
                    (0, 0),
                    (width, height),
                    format,
                    ty,
                    pitch,
                    p,
                ),
                _ => Ok(()),
            }
        })
    }

    /// `glTexSubImage2D` (IN_BULK), in batches of at most 1 MiB of rows.
    #[allow(clippy::too_many_arguments)] // mirrors the GL signature
    pub fn tex_sub_image_2d(
        &self,
        target: u32,
        level: i32,
        xoffset: i32,
        yoffset: i32,
        width: i32,
        height: i32,
        format: u32,
        ty: u32,
        pixels: &[u8],
    ) -> Result<()> {
        self.with(|rpc, gl| {
            let Some(pitch) = check_image(gl, width, height, format, ty, Some(pixels)) else {
                return Ok(());
            };
            sub_image(
                rpc,
                target,
                level,
                (xoffset, yoffset),
                (width, height),
                format,
                ty,
                pitch,
                pixels,
            )
        })
    }

    /// `glTexParameterf` (the parameter travels as float bits).
    pub fn tex_parameterf(&self, target: u32, pname: u32, param: f32) -> Result<()> {
        self.plain(ids::GLTEXPARAMETERF, &[target, pname, f(param)])
    }

    /// `glTexParameteri`.
    pub fn tex_parameteri(&self, target: u32, pname: u32, param: i32) -> Result<()> {
        self.plain(ids::GLTEXPARAMETERI, &[target, pname, param as u32])
    }

    fn client_state(&self, array: u32, enabled: bool) -> Result<()> {
        self.with11(|rpc, gl| {
            let Some(slot) = slot_of(array) else {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            };
            gl.attribs[slot].enabled = enabled;
            rpc.call(
                ids::GLINTATTRIBENABLE,
                &[ids::ATTRIB_API_GL11, slot as u32, u32::from(enabled)],
            )
        })
    }

    /// `glEnableClientState`, sent as `GLINTATTRIBENABLE(1, slot, 1)`.
    pub fn enable_client_state(&self, array: u32) -> Result<()> {
        self.client_state(array, true)
    }

    /// `glDisableClientState`, sent as `GLINTATTRIBENABLE(1, slot, 0)`.
    pub fn disable_client_state(&self, array: u32) -> Result<()> {
        self.client_state(array, false)
    }

    fn pointer(
        &self,
        slot: usize,
        size: i32,
        ty: u32,
        stride: i32,
        array: ClientArray,
        ok: impl Fn(u32, u32) -> bool,
    ) -> Result<()> {
        self.with11(|rpc, gl| {
            let (Ok(size), Ok(stride)) = (u32::try_from(size), u32::try_from(stride)) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            if !ok(size, ty) {
                gl.set_error(if type_size(ty).is_none() {
                    INVALID_ENUM
                } else {
                    INVALID_VALUE
                });
                return Ok(());
            }
            let ptr = array.addr() as u32;
            let a = &mut gl.attribs[slot];
            a.size = size;
            a.ty = ty;
            a.stride = stride;
            a.array = Some(array);
            a.buffer = 0;
            let normalized = u32::from(slot == 1 && ty == UNSIGNED_BYTE);
            rpc.call(
                ids::GLINTATTRIBPOINTER,
                &[
                    ids::ATTRIB_API_GL11,
                    slot as u32,
                    size,
                    ty,
                    normalized,
                    stride,
                    ptr,
                ],
            )
        })
    }

    /// `glVertexPointer`, sent as `GLINTATTRIBPOINTER(1, 0, size, type, 0, stride, ptr)`.
    pub fn vertex_pointer(
        &self,
        size: i32,
        ty: u32,
        stride: i32,
        array: impl Into<ClientArray>,
    ) -> Result<()> {
        self.pointer(0, size, ty, stride, array.into(), |s, t| {
            (2..=4).contains(&s) && matches!(t, BYTE | SHORT | FIXED | FLOAT)
        })
    }

    /// `glColorPointer` (slot 1; unsigned bytes are normalised).
    pub fn color_pointer(
        &self,
        size: i32,
        ty: u32,
        stride: i32,
        array: impl Into<ClientArray>,
    ) -> Result<()> {
        self.pointer(1, size, ty, stride, array.into(), |s, t| {
            s == 4 && matches!(t, UNSIGNED_BYTE | FIXED | FLOAT)
        })
    }

    /// `glTexCoordPointer` for texture unit 0 (slot 3).
    pub fn tex_coord_pointer(
        &self,
        size: i32,
        ty: u32,
        stride: i32,
        array: impl Into<ClientArray>,
    ) -> Result<()> {
        self.pointer(3, size, ty, stride, array.into(), |s, t| {
            (2..=4).contains(&s) && matches!(t, BYTE | SHORT | FIXED | FLOAT)
        })
    }

    /// `glDrawArrays`: ships the enabled client arrays through the vertex cache, then
    /// `GLINTDRAWELEMENTS(mode, count, 0, first)` with the cache info.
    pub fn draw_arrays(&self, mode: u32, first: i32, count: i32) -> Result<()> {
        self.with(|rpc, gl| {
            if mode > TRIANGLE_FAN {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let (Ok(first), Ok(count)) = (u32::try_from(first), u32::try_from(count)) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            if count == 0 {
                return Ok(());
            }
            let Some(max_index) = first.checked_add(count - 1) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            let Some(info) = upload_attribs(rpc, gl, max_index, &mut Vec::new())? else {
                gl.set_error(OUT_OF_MEMORY);
                return Ok(());
            };
            rpc.call_in_ctrl(ids::GLINTDRAWELEMENTS, &[mode, count, 0, first], &info)
        })
    }

    /// `glDrawElements` with client-memory indices (`UNSIGNED_BYTE` or `UNSIGNED_SHORT`):
    /// the indices become a cache entry too, and `indices_offset` is its data offset.
    pub fn draw_elements(
        &self,
        mode: u32,
        count: i32,
        ty: u32,
        indices: impl Into<ClientArray>,
    ) -> Result<()> {
        let indices = indices.into();
        self.with(|rpc, gl| {
            if mode > TRIANGLE_FAN || !matches!(ty, UNSIGNED_BYTE | UNSIGNED_SHORT) {
                gl.set_error(INVALID_ENUM);
                return Ok(());
            }
            let Ok(count) = usize::try_from(count) else {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            };
            let tsize = if ty == UNSIGNED_BYTE { 1 } else { 2 };
            let bytes = indices.bytes();
            if count == 0 {
                return Ok(());
            }
            if bytes.len() < count * tsize {
                gl.set_error(INVALID_VALUE);
                return Ok(());
            }
            let idx = &bytes[..count * tsize];
            let max_index = if tsize == 1 {
                idx.iter().copied().map(u32::from).max()
            } else {
                idx.chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                    .max()
            }
            .unwrap_or(0);
            let len = (count * tsize).next_multiple_of(16);
            if len > MAX_ENTRY_DATA as usize {
                gl.set_error(OUT_OF_MEMORY);
                return Ok(());
            }
            let key = CacheKey {
                addr: indices.addr(),
                len: len as u32,
            };
            let data = padded(bytes, len);
            let Some(offset) = gl.cache.upload(rpc, key, &data, &[])? else {
                gl.set_error(OUT_OF_MEMORY);
                return Ok(());
            };
            let Some(info) = upload_attribs(rpc, gl, max_index, &mut vec![key])? else {
                gl.set_error(OUT_OF_MEMORY);
                return Ok(());
            };
            rpc.call_in_ctrl(
                ids::GLINTDRAWELEMENTS,
                &[mode, count as u32, ty, offset],
                &info,
            )
        })
    }

    /// `glFlush`: `GLFLUSH` and an immediate flush of the merge buffer.
    pub fn flush(&self) -> Result<()> {
        self.with(|rpc, _| {
            rpc.call(ids::GLFLUSH, &[])?;
            rpc.flush()
        })
    }

    /// `glFinish`: a round trip (`GLFINISH`, RES).
    pub fn finish(&self) -> Result<()> {
        self.with(|rpc, _| rpc.call_res(ids::GLFINISH, &[]).map(|_| ()))
    }

    /// `glGetError`: an error the client detected itself, else the server's (`GLGETERROR`).
    pub fn get_error(&self) -> Result<u32> {
        self.with(|rpc, gl| {
            if gl.error != NO_ERROR {
                return Ok(std::mem::replace(&mut gl.error, NO_ERROR));
            }
            rpc.call_res(ids::GLGETERROR, &[])
        })
    }
}

/// The attribute slot of a client-state array (texture coordinates: unit 0).
fn slot_of(array: u32) -> Option<usize> {
    Some(match array {
        VERTEX_ARRAY => 0,
        COLOR_ARRAY => 1,
        NORMAL_ARRAY => 2,
        TEXTURE_COORD_ARRAY => 3,
        POINT_SIZE_ARRAY_OES => 7,
        WEIGHT_ARRAY_OES => 8,
        MATRIX_INDEX_ARRAY_OES => 9,
        _ => return None,
    })
}

/// Validate an image; `Some(pitch)` if it may be sent.
fn check_image(
    gl: &mut GlState,
    width: i32,
    height: i32,
    format: u32,
    ty: u32,
    pixels: Option<&[u8]>,
) -> Option<u32> {
    let Some(bpp) = bytes_per_pixel(format, ty) else {
        gl.set_error(INVALID_ENUM);
        return None;
    };
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        gl.set_error(INVALID_VALUE);
        return None;
    };
    let row = u64::from(w) * u64::from(bpp);
    let pitch = row.next_multiple_of(u64::from(UNPACK_ALIGNMENT));
    let need = if h == 0 {
        0
    } else {
        pitch * u64::from(h - 1) + row
    };
    if pitch > u64::from(u32::MAX) || pixels.is_some_and(|p| (p.len() as u64) < need) {
        gl.set_error(INVALID_VALUE);
        return None;
    }
    Some(pitch as u32)
}

#[allow(clippy::too_many_arguments)]
fn sub_image(
    rpc: &mut Rpc,
    target: u32,
    level: i32,
    (x, y): (i32, i32),
    (width, height): (i32, i32),
    format: u32,
    ty: u32,
    pitch: u32,
    pixels: &[u8],
) -> Result<()> {
    let pitch = pitch as usize;
    let height = height as usize;
    if pitch == 0 || height == 0 {
        return Ok(());
    }
    let rows_per_batch = (WORKSPACE / pitch).max(1);
    let mut row = 0;
    while row < height {
        let rows = rows_per_batch.min(height - row);
        let start = row * pitch;
        let data = padded(&pixels[start.min(pixels.len())..], rows * pitch);
        rpc.call_in_bulk(
            ids::GLTEXSUBIMAGE2D,
            &[
                target,
                level as u32,
                x as u32,
                (y + row as i32) as u32,
                width as u32,
                rows as u32,
                format,
                ty,
                UNPACK_ALIGNMENT,
            ],
            Some(&data),
        )?;
        row += rows;
    }
    Ok(())
}

/// Put every enabled client array into the cache and build the draw's cache info:
/// `send_any` and, if any array came from client memory, ten `{cache_offset, has_interlock}`
/// pairs (`0xffffffff` for attributes not sourced from the cache). `None`: out of memory.
fn upload_attribs(
    rpc: &mut Rpc,
    gl: &mut GlState,
    max_index: u32,
    pinned: &mut Vec<CacheKey>,
) -> Result<Option<Vec<u8>>> {
    let attribs = gl.attribs.clone();
    let mut words = vec![0u32];
    let mut any = false;
    for a in &attribs {
        let (Some(array), true, 0) = (&a.array, a.enabled, a.buffer) else {
            words.extend([0xffff_ffff, 0]);
            continue;
        };
        let elem = u64::from(a.size) * u64::from(type_size(a.ty).unwrap_or(4));
        let stride = if a.stride == 0 {
            elem
        } else {
            u64::from(a.stride)
        };
        let len = (elem + u64::from(max_index) * stride).next_multiple_of(16);
        let Some(len) = u32::try_from(len).ok().filter(|&l| l <= MAX_ENTRY_DATA) else {
            return Ok(None);
        };
        let key = CacheKey {
            addr: array.addr(),
            len,
        };
        let data = padded(array.bytes(), len as usize);
        match gl.cache.upload(rpc, key, &data, pinned)? {
            Some(offset) => {
                words.extend([offset, 1]);
                pinned.push(key);
                any = true;
            }
            None => return Ok(None),
        }
    }
    if !any {
        words.truncate(1);
    }
    words[0] = u32::from(any);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    debug_assert_eq!(bytes.len(), pad4(bytes.len()));
    Ok(Some(bytes))
}
