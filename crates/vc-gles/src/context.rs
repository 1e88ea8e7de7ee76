//! The GL ES 1.1 context: state, validation and error flag (stages 1–2 of the pipeline:
//! vertex fetch and transform, then primitive assembly).

use std::collections::{BTreeSet, HashMap};

use crate::arrays::{Indices, VertexArrays};
use crate::gl;
use crate::image::Surface;
use crate::math::{Mat4, Vec4};
use crate::raster::{self, ClipVertex, DepthState, MAX_RENDER_DIM, MAX_VIEWPORT_DIMS, Pipeline};
use crate::texture::{self, Level, MAX_TEXTURE_LEVELS, MAX_TEXTURE_SIZE, Texture};

/// Depth of the modelview matrix stack (`GL_MAX_MODELVIEW_STACK_DEPTH`).
pub const MAX_MODELVIEW_STACK_DEPTH: usize = 32;
/// Depth of the projection matrix stack (`GL_MAX_PROJECTION_STACK_DEPTH`).
pub const MAX_PROJECTION_STACK_DEPTH: usize = 4;
/// Depth of the texture matrix stack (`GL_MAX_TEXTURE_STACK_DEPTH`).
pub const MAX_TEXTURE_STACK_DEPTH: usize = 4;
/// `GL_FUNC_ADD`, `GL_FUNC_SUBTRACT`, `GL_FUNC_REVERSE_SUBTRACT` (GLES2/gl2.h).
pub(crate) const FUNC_ADD: u32 = 0x8006;
pub(crate) const FUNC_SUBTRACT: u32 = 0x800a;
pub(crate) const FUNC_REVERSE_SUBTRACT: u32 = 0x800b;
/// Total texel memory (bytes, after expansion to RGBA8) a context may hold; uploads
/// beyond it fail with `GL_OUT_OF_MEMORY`.
pub const TEXTURE_MEMORY_BUDGET: usize = 256 << 20;
/// Most names one `glGenTextures` call hands out; more is `GL_OUT_OF_MEMORY`.
pub const MAX_GEN_TEXTURES: usize = 1 << 16;

/// Capabilities that are accepted by `glEnable` but have no effect here.
const INERT_CAPS: &[u32] = &[
    gl::GL_DITHER,
    gl::GL_LIGHTING,
    gl::GL_FOG,
    gl::GL_NORMALIZE,
    gl::GL_RESCALE_NORMAL,
    gl::GL_COLOR_MATERIAL,
    gl::GL_POLYGON_OFFSET_FILL,
    gl::GL_MULTISAMPLE,
    gl::GL_SAMPLE_ALPHA_TO_COVERAGE,
    gl::GL_SAMPLE_ALPHA_TO_ONE,
    gl::GL_SAMPLE_COVERAGE,
    gl::GL_COLOR_LOGIC_OP,
    gl::GL_STENCIL_TEST,
    gl::GL_POINT_SMOOTH,
    gl::GL_LINE_SMOOTH,
    gl::GL_POINT_SPRITE_OES,
];

fn is_known_cap(cap: u32) -> bool {
    matches!(
        cap,
        gl::GL_TEXTURE_2D
            | gl::GL_CULL_FACE
            | gl::GL_DEPTH_TEST
            | gl::GL_SCISSOR_TEST
            | gl::GL_BLEND
            | gl::GL_ALPHA_TEST
    ) || INERT_CAPS.contains(&cap)
        || (gl::GL_LIGHT0..gl::GL_LIGHT0 + 8).contains(&cap)
        || (gl::GL_CLIP_PLANE0..gl::GL_CLIP_PLANE0 + 6).contains(&cap)
}

/// The wrap modes of GL ES 1.1 and 2.0 (`GL_MIRRORED_REPEAT` is 2.0's).
fn wrap_mode(p: u32) -> bool {
    matches!(
        p,
        gl::GL_REPEAT | gl::GL_CLAMP_TO_EDGE | crate::texture::GL_MIRRORED_REPEAT
    )
}

fn is_compare_func(f: u32) -> bool {
    (gl::GL_NEVER..=gl::GL_ALWAYS).contains(&f)
}

/// An OpenGL ES 1.1 (Common profile) context for one client context on the VideoCore.
///
/// All entry points follow GL error semantics: invalid arguments record the first
/// error in a sticky flag (read and cleared by [`Gles11::get_error`]) and the call has
/// no other effect. Nothing panics on client input.
///
/// The viewport and scissor box default to the whole target surface until
/// [`Gles11::viewport`] / [`Gles11::scissor`] are called (GL sets them on the first
/// `eglMakeCurrent`).
#[derive(Debug)]
pub struct Gles11 {
    error: u32,
    pub(crate) clear_color: [f32; 4],
    pub(crate) clear_depth: f32,
    caps: BTreeSet<u32>,
    pub(crate) viewport: Option<[i32; 4]>,
    pub(crate) scissor: Option<[i32; 4]>,
    pub(crate) cull_mode: u32,
    pub(crate) front_face: u32,
    pub(crate) depth_func: u32,
    pub(crate) depth_mask: bool,
    pub(crate) depth_range: [f32; 2],
    pub(crate) color_mask: [bool; 4],
    pub(crate) blend_func: (u32, u32),
    /// Alpha factors of `glBlendFuncSeparate` (`glBlendFunc` sets both pairs).
    pub(crate) blend_alpha: (u32, u32),
    /// `glBlendEquationSeparate`: (colour, alpha).
    pub(crate) blend_equation: (u32, u32),
    pub(crate) blend_color: [f32; 4],
    alpha_func: (u32, f32),
    shade_model: u32,
    matrix_mode: u32,
    modelview: Vec<Mat4>,
    projection: Vec<Mat4>,
    texture_matrix: Vec<Mat4>,
    color: [f32; 4],
    texcoord: [f32; 4],
    normal: [f32; 3],
    env_mode: u32,
    env_color: [f32; 4],
    pub(crate) default_texture: Texture,
    pub(crate) textures: HashMap<u32, Texture>,
    bound_texture: u32,
    next_texture_name: u32,
    texture_bytes: usize,
    pub(crate) parallel: bool,
}

impl Default for Gles11 {
    fn default() -> Self {
        Self::new()
    }
}

impl Gles11 {
    /// A context in the initial GL ES 1.1 state (dither enabled, everything else off,
    /// identity matrices, colour (1,1,1,1), `GL_MODULATE`, CCW front faces, back-face
    /// culling mode, `GL_LESS`). Rendering is parallel (see [`Gles11::set_parallel`]).
    pub fn new() -> Self {
        let mut caps = BTreeSet::new();
        caps.insert(gl::GL_DITHER);
        Self {
            error: gl::GL_NO_ERROR,
            clear_color: [0.0; 4],
            clear_depth: 1.0,
            caps,
            viewport: None,
            scissor: None,
            cull_mode: gl::GL_BACK,
            front_face: gl::GL_CCW,
            depth_func: gl::GL_LESS,
            depth_mask: true,
            depth_range: [0.0, 1.0],
            color_mask: [true; 4],
            blend_func: (gl::GL_ONE, gl::GL_ZERO),
            blend_alpha: (gl::GL_ONE, gl::GL_ZERO),
            blend_equation: (FUNC_ADD, FUNC_ADD),
            blend_color: [0.0; 4],
            alpha_func: (gl::GL_ALWAYS, 0.0),
            shade_model: gl::GL_SMOOTH,
            matrix_mode: gl::GL_MODELVIEW,
            modelview: vec![Mat4::IDENTITY],
            projection: vec![Mat4::IDENTITY],
            texture_matrix: vec![Mat4::IDENTITY],
            color: [1.0; 4],
            texcoord: [0.0, 0.0, 0.0, 1.0],
            normal: [0.0, 0.0, 1.0],
            env_mode: gl::GL_MODULATE,
            env_color: [0.0; 4],
            default_texture: Texture::default(),
            textures: HashMap::new(),
            bound_texture: 0,
            next_texture_name: 1,
            texture_bytes: 0,
            parallel: true,
        }
    }

    pub(crate) fn set_error(&mut self, code: u32) {
        if self.error == gl::GL_NO_ERROR {
            self.error = code;
        }
    }

    /// `glGetError`: returns the recorded error and clears it.
    pub fn get_error(&mut self) -> u32 {
        std::mem::replace(&mut self.error, gl::GL_NO_ERROR)
    }

    /// `glGetError` as a `Result`: `Ok(())` or the recorded [`gl::GlError`] (cleared).
    ///
    /// # Errors
    /// The error recorded since the last call, if any.
    pub fn take_error(&mut self) -> Result<(), gl::GlError> {
        gl::GlError::check(self.get_error())
    }

    /// Chooses between rayon-parallel (default) and single-threaded rendering. Both give
    /// bit-identical pictures.
    pub fn set_parallel(&mut self, parallel: bool) {
        self.parallel = parallel;
    }

    /// Whether rendering uses the rayon thread pool.
    pub fn is_parallel(&self) -> bool {
        self.parallel
    }

    // ------------------------------------------------------------ clear & simple state

    /// `glClearColor` (values are clamped to `[0, 1]`).
    pub fn clear_color(&mut self, r: f32, g: f32, b: f32, a: f32) {
        self.clear_color = [r, g, b, a].map(|c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) });
    }

    /// `glClearDepthf` (clamped to `[0, 1]`).
    pub fn clear_depthf(&mut self, d: f32) {
        self.clear_depth = if d.is_nan() { 0.0 } else { d.clamp(0.0, 1.0) };
    }

    /// `glClear`: fills the colour and/or depth buffer of `target`, honouring the scissor
    /// test, the colour mask and the depth mask. Channels are converted to 8 bits by
    /// rounding to nearest (`round(c · 255)`), so (0.15, 0.25, 0.35) gives (38, 64, 89).
    /// Unknown mask bits: `GL_INVALID_VALUE`.
    pub fn clear(&mut self, mask: u32, target: &mut Surface) {
        let known = gl::GL_COLOR_BUFFER_BIT | gl::GL_DEPTH_BUFFER_BIT | gl::GL_STENCIL_BUFFER_BIT;
        if mask & !known != 0 {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        if !target.color.is_consistent() {
            return self.set_error(gl::GL_INVALID_OPERATION);
        }
        let (w, h) = (target.color.width, target.color.height);
        let Some(rect) = self.raster_rect(w, h, None) else {
            return;
        };
        let width = w as usize;
        let [x0, y0, x1, y1] = rect.map(|v| v as usize);
        let full = x0 == 0 && y0 == 0 && x1 == width && y1 == h as usize;
        if mask & gl::GL_COLOR_BUFFER_BIT != 0 && self.color_mask.iter().any(|&m| m) {
            let value = raster::pack(self.clear_color);
            let keep_mask = u32::from_le_bytes(self.color_mask.map(|m| if m { 0 } else { 0xFF }));
            let put = |p: &mut u32| *p = (*p & keep_mask) | (value & !keep_mask);
            if full && keep_mask == 0 {
                fill(&mut target.color.pixels, value, self.parallel);
            } else {
                for row in target.color.pixels.chunks_mut(width).take(y1).skip(y0) {
                    row.get_mut(x0..x1).into_iter().flatten().for_each(put);
                }
            }
        }
        if mask & gl::GL_DEPTH_BUFFER_BIT != 0 && self.depth_mask {
            let n = target.color.pixels.len();
            if let Some(d) = target.depth.as_mut().filter(|d| d.len() == n) {
                if full {
                    return fill(d, self.clear_depth, self.parallel);
                }
                for row in d.chunks_mut(width).take(y1).skip(y0) {
                    if let Some(s) = row.get_mut(x0..x1) {
                        s.fill(self.clear_depth);
                    }
                }
            }
        }
    }

    /// `glEnable`. Unknown capabilities: `GL_INVALID_ENUM`. Lighting, fog and the other
    /// capabilities listed in the crate docs are accepted but have no effect.
    pub fn enable(&mut self, cap: u32) {
        if !is_known_cap(cap) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        self.caps.insert(cap);
    }

    /// `glDisable`. Unknown capabilities: `GL_INVALID_ENUM`.
    pub fn disable(&mut self, cap: u32) {
        if !is_known_cap(cap) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        self.caps.remove(&cap);
    }

    /// `glIsEnabled` (unknown capabilities read as `false`; no error can be recorded
    /// through `&self`).
    pub fn is_enabled(&self, cap: u32) -> bool {
        self.caps.contains(&cap)
    }

    /// `glHint`: validated and ignored (interpolation is always perspective-correct).
    pub fn hint(&mut self, target: u32, mode: u32) {
        let t = matches!(
            target,
            gl::GL_PERSPECTIVE_CORRECTION_HINT
                | gl::GL_POINT_SMOOTH_HINT
                | gl::GL_LINE_SMOOTH_HINT
                | gl::GL_FOG_HINT
                | gl::GL_GENERATE_MIPMAP_HINT
        );
        let m = matches!(mode, gl::GL_FASTEST | gl::GL_NICEST | gl::GL_DONT_CARE);
        if !t || !m {
            self.set_error(gl::GL_INVALID_ENUM);
        }
    }

    /// `glViewport` in GL window coordinates (origin bottom-left). Negative sizes:
    /// `GL_INVALID_VALUE`; sizes above `GL_MAX_VIEWPORT_DIMS` (8192) are clamped.
    pub fn viewport(&mut self, x: i32, y: i32, w: i32, h: i32) {
        if w < 0 || h < 0 {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        self.viewport = Some([x, y, w.min(MAX_VIEWPORT_DIMS), h.min(MAX_VIEWPORT_DIMS)]);
    }

    /// `glScissor` in GL window coordinates. Negative sizes: `GL_INVALID_VALUE`.
    pub fn scissor(&mut self, x: i32, y: i32, w: i32, h: i32) {
        if w < 0 || h < 0 {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        self.scissor = Some([x, y, w, h]);
    }

    /// The current viewport `x, y, w, h`, if one was set.
    pub fn viewport_rect(&self) -> Option<[i32; 4]> {
        self.viewport
    }

    /// `glCullFace` (`GL_FRONT`, `GL_BACK`, `GL_FRONT_AND_BACK`).
    pub fn cull_face(&mut self, mode: u32) {
        match mode {
            gl::GL_FRONT | gl::GL_BACK | gl::GL_FRONT_AND_BACK => self.cull_mode = mode,
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    /// `glFrontFace` (`GL_CW`, `GL_CCW`).
    pub fn front_face(&mut self, mode: u32) {
        match mode {
            gl::GL_CW | gl::GL_CCW => self.front_face = mode,
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    /// `glDepthFunc`.
    pub fn depth_func(&mut self, func: u32) {
        if is_compare_func(func) {
            self.depth_func = func;
        } else {
            self.set_error(gl::GL_INVALID_ENUM);
        }
    }

    /// `glDepthMask`.
    pub fn depth_mask(&mut self, flag: bool) {
        self.depth_mask = flag;
    }

    /// `glDepthRangef` (clamped to `[0, 1]`).
    pub fn depth_rangef(&mut self, near: f32, far: f32) {
        let c = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        self.depth_range = [c(near), c(far)];
    }

    /// `glColorMask`.
    pub fn color_mask(&mut self, r: bool, g: bool, b: bool, a: bool) {
        self.color_mask = [r, g, b, a];
    }

    /// `glBlendFunc` (used when `GL_BLEND` is enabled). `GL_SRC_ALPHA_SATURATE` is only
    /// valid as the source factor.
    pub fn blend_func(&mut self, sfactor: u32, dfactor: u32) {
        let ok = |f: u32| matches!(f, gl::GL_ZERO | gl::GL_ONE) || (0x0300..=0x0307).contains(&f);
        if !(ok(sfactor) || sfactor == gl::GL_SRC_ALPHA_SATURATE) || !ok(dfactor) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        self.blend_func = (sfactor, dfactor);
        self.blend_alpha = (sfactor, dfactor);
    }

    /// `glBlendFuncSeparate` (GL ES 2.0: the constant-colour factors too;
    /// `GL_SRC_ALPHA_SATURATE` only as a source factor).
    pub fn blend_func_separate(&mut self, src_rgb: u32, dst_rgb: u32, src_a: u32, dst_a: u32) {
        let ok = |f: u32| {
            matches!(f, gl::GL_ZERO | gl::GL_ONE)
                || (0x0300..=0x0307).contains(&f)
                || (0x8001..=0x8004).contains(&f)
        };
        let src_ok = |f: u32| ok(f) || f == gl::GL_SRC_ALPHA_SATURATE;
        if !src_ok(src_rgb) || !src_ok(src_a) || !ok(dst_rgb) || !ok(dst_a) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        self.blend_func = (src_rgb, dst_rgb);
        self.blend_alpha = (src_a, dst_a);
    }

    /// `glBlendEquationSeparate`: `GL_FUNC_ADD`, `GL_FUNC_SUBTRACT`, `GL_FUNC_REVERSE_SUBTRACT`.
    pub fn blend_equation_separate(&mut self, rgb: u32, alpha: u32) {
        let ok = |e: u32| matches!(e, FUNC_ADD | FUNC_SUBTRACT | FUNC_REVERSE_SUBTRACT);
        if !ok(rgb) || !ok(alpha) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        self.blend_equation = (rgb, alpha);
    }

    /// `glBlendColor` (clamped to `[0, 1]`).
    pub fn blend_color(&mut self, r: f32, g: f32, b: f32, a: f32) {
        self.blend_color = [r, g, b, a].map(|c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) });
    }

    /// `glAlphaFunc` (used when `GL_ALPHA_TEST` is enabled; `reference` clamped to `[0, 1]`).
    pub fn alpha_func(&mut self, func: u32, reference: f32) {
        if !is_compare_func(func) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        let r = if reference.is_nan() {
            0.0
        } else {
            reference.clamp(0.0, 1.0)
        };
        self.alpha_func = (func, r);
    }

    /// `glShadeModel`: `GL_SMOOTH` (default) or `GL_FLAT` (each triangle takes the colour
    /// of its last vertex, the GL provoking vertex).
    pub fn shade_model(&mut self, mode: u32) {
        match mode {
            gl::GL_FLAT | gl::GL_SMOOTH => self.shade_model = mode,
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    // ------------------------------------------------------------ matrices

    fn stack_mut(&mut self) -> &mut Vec<Mat4> {
        match self.matrix_mode {
            gl::GL_PROJECTION => &mut self.projection,
            gl::GL_TEXTURE => &mut self.texture_matrix,
            _ => &mut self.modelview,
        }
    }

    fn top_mut(&mut self) -> &mut Mat4 {
        let s = self.stack_mut();
        if s.is_empty() {
            s.push(Mat4::IDENTITY);
        }
        let last = s.len() - 1;
        &mut s[last]
    }

    fn mult(&mut self, m: &Mat4) {
        let top = self.top_mut();
        *top = top.mul(m);
    }

    /// `glMatrixMode` (`GL_MODELVIEW`, `GL_PROJECTION`, `GL_TEXTURE`).
    pub fn matrix_mode(&mut self, mode: u32) {
        match mode {
            gl::GL_MODELVIEW | gl::GL_PROJECTION | gl::GL_TEXTURE => self.matrix_mode = mode,
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    /// The top of the stack for `mode` (`None` for an unknown mode).
    pub fn matrix(&self, mode: u32) -> Option<Mat4> {
        let s = match mode {
            gl::GL_MODELVIEW => &self.modelview,
            gl::GL_PROJECTION => &self.projection,
            gl::GL_TEXTURE => &self.texture_matrix,
            _ => return None,
        };
        s.last().copied()
    }

    /// `glLoadIdentity`.
    pub fn load_identity(&mut self) {
        *self.top_mut() = Mat4::IDENTITY;
    }

    /// `glLoadMatrixf` (column-major).
    pub fn load_matrixf(&mut self, m: &[f32; 16]) {
        *self.top_mut() = Mat4::from_cols_array(m);
    }

    /// `glMultMatrixf`: current = current · m.
    pub fn mult_matrixf(&mut self, m: &[f32; 16]) {
        self.mult(&Mat4::from_cols_array(m));
    }

    /// `glPushMatrix`; `GL_STACK_OVERFLOW` when the stack is full.
    pub fn push_matrix(&mut self) {
        let max = match self.matrix_mode {
            gl::GL_PROJECTION => MAX_PROJECTION_STACK_DEPTH,
            gl::GL_TEXTURE => MAX_TEXTURE_STACK_DEPTH,
            _ => MAX_MODELVIEW_STACK_DEPTH,
        };
        let top = *self.top_mut();
        let s = self.stack_mut();
        if s.len() >= max {
            return self.set_error(gl::GL_STACK_OVERFLOW);
        }
        s.push(top);
    }

    /// `glPopMatrix`; `GL_STACK_UNDERFLOW` at depth 1.
    pub fn pop_matrix(&mut self) {
        let s = self.stack_mut();
        if s.len() <= 1 {
            return self.set_error(gl::GL_STACK_UNDERFLOW);
        }
        s.pop();
    }

    /// `glFrustumf`; `GL_INVALID_VALUE` if `n <= 0`, `f <= 0`, `l == r`, `b == t` or `n == f`.
    pub fn frustumf(&mut self, l: f32, r: f32, b: f32, t: f32, n: f32, f: f32) {
        if n <= 0.0 || f <= 0.0 || l == r || b == t || n == f || n.is_nan() || f.is_nan() {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        self.mult(&Mat4::frustum(l, r, b, t, n, f));
    }

    /// `glOrthof`; `GL_INVALID_VALUE` if `l == r`, `b == t` or `n == f`.
    pub fn orthof(&mut self, l: f32, r: f32, b: f32, t: f32, n: f32, f: f32) {
        if l == r || b == t || n == f {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        self.mult(&Mat4::ortho(l, r, b, t, n, f));
    }

    /// `glTranslatef`.
    pub fn translatef(&mut self, x: f32, y: f32, z: f32) {
        self.mult(&Mat4::translate(x, y, z));
    }

    /// `glRotatef` (degrees, counter-clockwise about the normalised axis).
    pub fn rotatef(&mut self, angle_deg: f32, x: f32, y: f32, z: f32) {
        self.mult(&Mat4::rotate(angle_deg, x, y, z));
    }

    /// `glScalef`.
    pub fn scalef(&mut self, x: f32, y: f32, z: f32) {
        self.mult(&Mat4::scale(x, y, z));
    }

    // ------------------------------------------------------------ current attributes

    /// `glColor4f`: the colour used when no colour array is enabled.
    pub fn color4f(&mut self, r: f32, g: f32, b: f32, a: f32) {
        self.color = [r, g, b, a];
    }

    /// `glMultiTexCoord4f` for unit 0 (`target` must be `GL_TEXTURE0` = 0x84C0): the
    /// texture coordinate used when no texcoord array is enabled.
    pub fn multi_tex_coord4f(&mut self, target: u32, s: f32, t: f32, r: f32, q: f32) {
        const GL_TEXTURE0: u32 = 0x84C0;
        if !(GL_TEXTURE0..GL_TEXTURE0 + 32).contains(&target) {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        if target == GL_TEXTURE0 {
            self.texcoord = [s, t, r, q];
        }
    }

    /// `glNormal3f`: stored (there is no lighting).
    pub fn normal3f(&mut self, x: f32, y: f32, z: f32) {
        self.normal = [x, y, z];
    }

    /// The current colour (`GL_CURRENT_COLOR`).
    pub fn current_color(&self) -> [f32; 4] {
        self.color
    }

    /// The current normal (`GL_CURRENT_NORMAL`).
    pub fn current_normal(&self) -> [f32; 3] {
        self.normal
    }

    // ------------------------------------------------------------ textures

    /// `glTexEnvi(GL_TEXTURE_ENV, GL_TEXTURE_ENV_MODE, mode)` with mode `GL_MODULATE`,
    /// `GL_REPLACE`, `GL_DECAL`, `GL_BLEND` or `GL_ADD` (`GL_COMBINE` is not implemented
    /// and gives `GL_INVALID_ENUM`).
    pub fn tex_envi(&mut self, target: u32, pname: u32, param: i32) {
        if target != gl::GL_TEXTURE_ENV || pname != gl::GL_TEXTURE_ENV_MODE {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        match param as u32 {
            m @ (gl::GL_MODULATE | gl::GL_REPLACE | gl::GL_DECAL | gl::GL_BLEND | gl::GL_ADD) => {
                self.env_mode = m;
            }
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    /// `glTexEnvf`: as [`Gles11::tex_envi`] with the value converted to an enum.
    pub fn tex_envf(&mut self, target: u32, pname: u32, param: f32) {
        self.tex_envi(target, pname, param as i32);
    }

    /// `glTexEnvfv`: `GL_TEXTURE_ENV_COLOR` (4 values, clamped) or `GL_TEXTURE_ENV_MODE`.
    pub fn tex_envfv(&mut self, target: u32, pname: u32, params: &[f32]) {
        if target != gl::GL_TEXTURE_ENV {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        match (pname, params) {
            (gl::GL_TEXTURE_ENV_COLOR, [r, g, b, a, ..]) => {
                self.env_color =
                    [*r, *g, *b, *a].map(|c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) });
            }
            (gl::GL_TEXTURE_ENV_MODE, [m, ..]) => self.tex_envi(target, pname, *m as i32),
            (gl::GL_TEXTURE_ENV_COLOR | gl::GL_TEXTURE_ENV_MODE, _) => {
                self.set_error(gl::GL_INVALID_VALUE);
            }
            _ => self.set_error(gl::GL_INVALID_ENUM),
        }
    }

    /// `glGenTextures`: `n` unused names (`GL_INVALID_VALUE` if `n < 0`). Names become
    /// objects when first bound.
    pub fn gen_textures(&mut self, n: i32) -> Vec<u32> {
        if n < 0 {
            self.set_error(gl::GL_INVALID_VALUE);
            return Vec::new();
        }
        if n as usize > MAX_GEN_TEXTURES {
            self.set_error(gl::GL_OUT_OF_MEMORY);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n as usize);
        // Terminates: at most MAX_GEN_TEXTURES + live names are ever skipped, far below 2^32.
        while out.len() < n as usize {
            let name = self.next_texture_name;
            self.next_texture_name = self.next_texture_name.checked_add(1).unwrap_or(1);
            if !self.textures.contains_key(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// `glIsTexture`: true for a name that is a texture object.
    pub fn is_texture(&self, name: u32) -> bool {
        name != 0 && self.textures.contains_key(&name)
    }

    /// The currently bound texture name of `GL_TEXTURE_2D`.
    pub fn bound_texture(&self) -> u32 {
        self.bound_texture
    }

    /// `glBindTexture(GL_TEXTURE_2D, name)`: 0 is the default texture; an unknown name
    /// creates a texture object. Other targets: `GL_INVALID_ENUM`.
    pub fn bind_texture(&mut self, target: u32, name: u32) {
        if target != gl::GL_TEXTURE_2D {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        if name != 0 {
            self.textures.entry(name).or_default();
        }
        self.bound_texture = name;
    }

    /// `glDeleteTextures`: deletes the objects (0 and unknown names are ignored); a bound
    /// texture reverts the binding to 0.
    pub fn delete_textures(&mut self, names: &[u32]) {
        for &n in names {
            if n == 0 {
                continue;
            }
            if let Some(t) = self.textures.remove(&n) {
                self.texture_bytes = self.texture_bytes.saturating_sub(t.bytes());
            }
            if self.bound_texture == n {
                self.bound_texture = 0;
            }
        }
    }

    fn bound_mut(&mut self) -> &mut Texture {
        let name = self.bound_texture;
        if name == 0 {
            return &mut self.default_texture;
        }
        self.textures.entry(name).or_default()
    }

    /// Texture object `name` (0: the default texture).
    pub(crate) fn texture(&self, name: u32) -> Option<&Texture> {
        match name {
            0 => Some(&self.default_texture),
            n => self.textures.get(&n),
        }
    }

    pub(crate) fn texture_mut(&mut self, name: u32) -> Option<&mut Texture> {
        match name {
            0 => Some(&mut self.default_texture),
            n => self.textures.get_mut(&n),
        }
    }

    fn bound(&self) -> &Texture {
        self.textures
            .get(&self.bound_texture)
            .unwrap_or(&self.default_texture)
    }

    /// `glTexImage2D` for `GL_TEXTURE_2D`.
    ///
    /// Formats: `GL_RGB`/`GL_UNSIGNED_BYTE`, `GL_RGBA`/`GL_UNSIGNED_BYTE`,
    /// `GL_RGB`/`GL_UNSIGNED_SHORT_5_6_5`, `GL_RGBA`/`GL_UNSIGNED_SHORT_4_4_4_4` and
    /// `_5_5_5_1`, and `GL_LUMINANCE`, `GL_ALPHA`, `GL_LUMINANCE_ALPHA` bytes; 16-bit
    /// pixels are little-endian. Rows are read in memory order (row 0 = `t ≈ 0`), each
    /// padded to `unpack_alignment` (1, 2, 4 or 8). Non-power-of-two sizes are accepted
    /// (as with OES_texture_npot). `pixels = None` allocates zeroed texels.
    ///
    /// # Errors
    /// `GL_INVALID_ENUM` (target, format, type), `GL_INVALID_VALUE` (level out of range,
    /// size above 2048, border ≠ 0, bad alignment), `GL_INVALID_OPERATION` (internal
    /// format ≠ format, type not valid for the format, `pixels` shorter than the rows
    /// need), `GL_OUT_OF_MEMORY` (context texture budget exhausted).
    #[allow(clippy::too_many_arguments)]
    pub fn tex_image_2d(
        &mut self,
        target: u32,
        level: i32,
        internal_format: u32,
        width: u32,
        height: u32,
        border: i32,
        format: u32,
        ty: u32,
        unpack_alignment: u32,
        pixels: Option<&[u8]>,
    ) {
        if target != gl::GL_TEXTURE_2D {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        let bpp = match texture::pixel_size(format, ty) {
            Ok(b) => b,
            Err(e) => return self.set_error(e),
        };
        if level < 0 || level as usize >= MAX_TEXTURE_LEVELS {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        let max = MAX_TEXTURE_SIZE >> level;
        if width > max || height > max || border != 0 || !matches!(unpack_alignment, 1 | 2 | 4 | 8)
        {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        if internal_format != format {
            return self.set_error(gl::GL_INVALID_OPERATION);
        }
        let (pitch, need) = texture::layout(width, height, bpp, unpack_alignment);
        if pixels.is_some_and(|p| (p.len() as u64) < need) {
            return self.set_error(gl::GL_INVALID_OPERATION);
        }
        let count = width as usize * height as usize;
        let level = level as usize;
        let old = self
            .bound()
            .levels
            .get(level)
            .and_then(|l| l.as_ref())
            .map_or(0, Level::bytes);
        let new_total = self.texture_bytes - old.min(self.texture_bytes) + count * 4;
        if new_total > TEXTURE_MEMORY_BUDGET {
            return self.set_error(gl::GL_OUT_OF_MEMORY);
        }
        let mut texels = Vec::new();
        if texels.try_reserve_exact(count).is_err() {
            return self.set_error(gl::GL_OUT_OF_MEMORY);
        }
        texels.resize(count, 0u32);
        if let Some(src) = pixels {
            texture::unpack_into(
                &mut texels,
                width,
                0,
                0,
                width,
                height,
                format,
                ty,
                bpp,
                pitch,
                src,
            );
        }
        self.texture_bytes = new_total;
        let tex = self.bound_mut();
        if tex.levels.len() <= level {
            tex.levels.resize(level + 1, None);
        }
        tex.levels[level] = Some(Level {
            width,
            height,
            format,
            ty,
            texels,
        });
    }

    /// `glTexSubImage2D`: replaces a rectangle of an existing level.
    ///
    /// # Errors
    /// `GL_INVALID_ENUM` (target, format, type), `GL_INVALID_VALUE` (level, negative
    /// offsets, rectangle outside the level, bad alignment), `GL_INVALID_OPERATION` (level
    /// not defined, format/type differ from the level's, `pixels` too short).
    #[allow(clippy::too_many_arguments)]
    pub fn tex_sub_image_2d(
        &mut self,
        target: u32,
        level: i32,
        xoffset: i32,
        yoffset: i32,
        width: u32,
        height: u32,
        format: u32,
        ty: u32,
        unpack_alignment: u32,
        pixels: &[u8],
    ) {
        if target != gl::GL_TEXTURE_2D {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        let bpp = match texture::pixel_size(format, ty) {
            Ok(b) => b,
            Err(e) => return self.set_error(e),
        };
        if level < 0
            || level as usize >= MAX_TEXTURE_LEVELS
            || !matches!(unpack_alignment, 1 | 2 | 4 | 8)
        {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        if xoffset < 0 || yoffset < 0 {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        let (x0, y0) = (xoffset as u32, yoffset as u32);
        let (pitch, need) = texture::layout(width, height, bpp, unpack_alignment);
        let err = match self.bound().levels.get(level as usize) {
            Some(Some(l)) => {
                if u64::from(x0) + u64::from(width) > u64::from(l.width)
                    || u64::from(y0) + u64::from(height) > u64::from(l.height)
                {
                    Some(gl::GL_INVALID_VALUE)
                } else if l.format != format || l.ty != ty || (pixels.len() as u64) < need {
                    Some(gl::GL_INVALID_OPERATION)
                } else {
                    None
                }
            }
            _ => Some(gl::GL_INVALID_OPERATION),
        };
        if let Some(e) = err {
            return self.set_error(e);
        }
        if let Some(Some(l)) = self.bound_mut().levels.get_mut(level as usize) {
            let lw = l.width;
            texture::unpack_into(
                &mut l.texels,
                lw,
                x0,
                y0,
                width,
                height,
                format,
                ty,
                bpp,
                pitch,
                pixels,
            );
        }
    }

    /// `glTexParameteri` on the bound `GL_TEXTURE_2D`: `GL_TEXTURE_MIN_FILTER` (any of the
    /// six filters), `GL_TEXTURE_MAG_FILTER` (`GL_NEAREST`, `GL_LINEAR`),
    /// `GL_TEXTURE_WRAP_S/T` (`GL_REPEAT`, `GL_CLAMP_TO_EDGE`), `GL_GENERATE_MIPMAP`.
    pub fn tex_parameteri(&mut self, target: u32, pname: u32, param: i32) {
        if target != gl::GL_TEXTURE_2D {
            return self.set_error(gl::GL_INVALID_ENUM);
        }
        let p = param as u32;
        let tex = self.bound_mut();
        let ok = match pname {
            gl::GL_TEXTURE_MIN_FILTER
                if matches!(p, gl::GL_NEAREST | gl::GL_LINEAR)
                    || (gl::GL_NEAREST_MIPMAP_NEAREST..=gl::GL_LINEAR_MIPMAP_LINEAR)
                        .contains(&p) =>
            {
                tex.min_filter = p;
                true
            }
            gl::GL_TEXTURE_MAG_FILTER if matches!(p, gl::GL_NEAREST | gl::GL_LINEAR) => {
                tex.mag_filter = p;
                true
            }
            gl::GL_TEXTURE_WRAP_S if wrap_mode(p) => {
                tex.wrap_s = p;
                true
            }
            gl::GL_TEXTURE_WRAP_T if wrap_mode(p) => {
                tex.wrap_t = p;
                true
            }
            gl::GL_GENERATE_MIPMAP if matches!(p, 0 | 1) => {
                tex.generate_mipmap = p == 1;
                true
            }
            _ => false,
        };
        if !ok {
            self.set_error(gl::GL_INVALID_ENUM);
        }
    }

    /// `glTexParameterf`: as [`Gles11::tex_parameteri`] with the value converted to an enum.
    pub fn tex_parameterf(&mut self, target: u32, pname: u32, param: f32) {
        self.tex_parameteri(target, pname, param as i32);
    }

    // ------------------------------------------------------------ drawing

    /// Raster rectangle `x0, y0, x1, y1` in image coordinates (y down): surface ∩
    /// scissor (if enabled) ∩ `viewport` (if given), limited to
    /// [`MAX_RENDER_DIM`]; `None` when empty.
    pub(crate) fn raster_rect(
        &self,
        w: u32,
        h: u32,
        viewport: Option<[i32; 4]>,
    ) -> Option<[i32; 4]> {
        let (w, h) = (w.min(MAX_RENDER_DIM) as i64, h.min(MAX_RENDER_DIM) as i64);
        let full_h = h;
        let mut r = [0i64, 0, w, h];
        let mut clip = |x: i32, y: i32, rw: i32, rh: i32| {
            // Window rect (y up) → image rect (y down).
            let (x0, x1) = (i64::from(x), i64::from(x) + i64::from(rw));
            let (y0, y1) = (
                full_h - (i64::from(y) + i64::from(rh)),
                full_h - i64::from(y),
            );
            r = [r[0].max(x0), r[1].max(y0), r[2].min(x1), r[3].min(y1)];
        };
        if let Some([x, y, vw, vh]) = viewport {
            clip(x, y, vw, vh);
        }
        if self.is_enabled(gl::GL_SCISSOR_TEST) {
            if let Some([x, y, sw, sh]) = self.scissor {
                clip(x, y, sw, sh);
            }
        }
        (r[0] < r[2] && r[1] < r[3]).then(|| r.map(|v| v as i32))
    }

    /// `glDrawArrays` (`Indices::Range`) / `glDrawElements` (`Indices::U8/U16/U32`).
    ///
    /// Triangles, strips (GL alternate winding) and fans are rasterised; points and lines
    /// are accepted and ignored. Nothing is drawn without a position array.
    ///
    /// # Errors
    /// `GL_INVALID_ENUM` (mode), `GL_INVALID_VALUE` (an array size outside `1..=4`),
    /// `GL_INVALID_OPERATION` (a referenced vertex lies beyond an array's data, or the
    /// target's colour buffer is inconsistent); nothing is drawn then.
    pub fn draw(
        &mut self,
        mode: u32,
        indices: Indices<'_>,
        arrays: &VertexArrays<'_>,
        target: &mut Surface,
    ) {
        match mode {
            gl::GL_TRIANGLES | gl::GL_TRIANGLE_STRIP | gl::GL_TRIANGLE_FAN => {}
            gl::GL_POINTS | gl::GL_LINES | gl::GL_LINE_LOOP | gl::GL_LINE_STRIP => return,
            _ => return self.set_error(gl::GL_INVALID_ENUM),
        }
        if arrays.iter().any(|a| !(1..=4).contains(&a.size)) {
            return self.set_error(gl::GL_INVALID_VALUE);
        }
        let Some(max_index) = indices.max_index() else {
            return;
        };
        if arrays.iter().any(|a| !a.covers(max_index)) {
            return self.set_error(gl::GL_INVALID_OPERATION);
        }
        if !target.color.is_consistent() {
            return self.set_error(gl::GL_INVALID_OPERATION);
        }
        let Some(position) = arrays.position.as_ref() else {
            return;
        };
        let n = indices.len();
        if n < 3 {
            return;
        }
        // Without glViewport the viewport is the whole surface (as after eglMakeCurrent).
        let viewport = self.viewport.unwrap_or([
            0,
            0,
            target.color.width.min(MAX_VIEWPORT_DIMS as u32) as i32,
            target.color.height.min(MAX_VIEWPORT_DIMS as u32) as i32,
        ]);
        let Some(rect) = self.raster_rect(target.color.width, target.color.height, Some(viewport))
        else {
            return;
        };
        let [vx, vy, vw, vh] = viewport;

        // Stage 1–2: fetch and transform every submitted vertex (arrays were bounds-checked
        // against `max_index` above, so fetches cannot fail).
        let mvp = self
            .projection
            .last()
            .copied()
            .unwrap_or_default()
            .mul(&self.modelview.last().copied().unwrap_or_default());
        let texm = self.texture_matrix.last().copied().unwrap_or_default();
        let sampler = if self.is_enabled(gl::GL_TEXTURE_2D) {
            self.bound().sampler()
        } else {
            None
        };
        let mut verts = Vec::new();
        if verts.try_reserve_exact(n).is_err() {
            return self.set_error(gl::GL_OUT_OF_MEMORY);
        }
        let mut unit_q = true;
        for k in 0..n {
            let i = indices.get(k);
            let mut p = [0.0, 0.0, 0.0, 1.0];
            position.fetch(i, &mut p);
            let pos = mvp.mul_vec4(Vec4::new(p[0], p[1], p[2], p[3])).to_array();
            let mut col = self.color;
            if let Some(c) = &arrays.color {
                col = [0.0, 0.0, 0.0, 1.0];
                c.fetch(i, &mut col);
            }
            let mut tc = self.texcoord;
            if let Some(t) = &arrays.texcoord {
                tc = [0.0, 0.0, 0.0, 1.0];
                t.fetch(i, &mut tc);
            }
            if sampler.is_some() && !texm.is_identity() {
                tc = texm
                    .mul_vec4(Vec4::new(tc[0], tc[1], tc[2], tc[3]))
                    .to_array();
            }
            unit_q &= tc[3] == 1.0;
            verts.push(ClipVertex {
                pos,
                col,
                tex: [tc[0], tc[1], tc[3]],
            });
        }

        // Primitive assembly.
        let tri_count = match mode {
            gl::GL_TRIANGLES => n / 3,
            _ => n - 2,
        };
        let mut tris = Vec::new();
        if tris.try_reserve_exact(tri_count).is_err() {
            return self.set_error(gl::GL_OUT_OF_MEMORY);
        }
        for k in 0..tri_count as u32 {
            tris.push(match mode {
                gl::GL_TRIANGLES => [3 * k, 3 * k + 1, 3 * k + 2],
                // GL strip rule: odd triangles swap their first two vertices so that every
                // triangle keeps the winding of the first one.
                gl::GL_TRIANGLE_STRIP if k % 2 == 1 => [k + 1, k, k + 2],
                gl::GL_TRIANGLE_STRIP => [k, k + 1, k + 2],
                _ => [0, k + 1, k + 2],
            });
        }

        // Flat shading: give every triangle private vertices carrying the provoking
        // (last) vertex's colour.
        if self.shade_model == gl::GL_FLAT && arrays.color.is_some() {
            let mut flat = Vec::new();
            if flat.try_reserve_exact(tris.len() * 3).is_err() {
                return self.set_error(gl::GL_OUT_OF_MEMORY);
            }
            for (k, t) in tris.iter_mut().enumerate() {
                let col = verts.get(t[2] as usize).map_or([0.0; 4], |v| v.col);
                for &i in t.iter() {
                    let mut v = verts.get(i as usize).copied().unwrap_or_default();
                    v.col = col;
                    flat.push(v);
                }
                let b = 3 * k as u32;
                *t = [b, b + 1, b + 2];
            }
            verts = flat;
        }

        let cull = self.is_enabled(gl::GL_CULL_FACE);
        let depth = (self.is_enabled(gl::GL_DEPTH_TEST) && target.depth_buffer().is_some())
            .then_some(DepthState {
                func: self.depth_func,
                write: self.depth_mask,
            });
        let pipeline = Pipeline {
            viewport: [vx as f32, vy as f32, vw as f32, vh as f32],
            depth_range: self.depth_range,
            surface_h: target.color.height as f32,
            rect,
            cull_front: cull && matches!(self.cull_mode, gl::GL_FRONT | gl::GL_FRONT_AND_BACK),
            cull_back: cull && matches!(self.cull_mode, gl::GL_BACK | gl::GL_FRONT_AND_BACK),
            front_ccw: self.front_face == gl::GL_CCW,
            depth,
            sampler,
            env_mode: self.env_mode,
            env_color: self.env_color,
            blend: self.is_enabled(gl::GL_BLEND).then_some(self.blend_func),
            alpha_test: self
                .is_enabled(gl::GL_ALPHA_TEST)
                .then_some(self.alpha_func)
                .filter(|(f, _)| *f != gl::GL_ALWAYS),
            color_mask: self.color_mask,
            varying_color: arrays.color.is_some(),
            const_color: self
                .color
                .map(|c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) }),
            unit_q,
            parallel: self.parallel,
        };
        pipeline.draw(&verts, &tris, target);
    }
}

/// `buf.fill(value)`, split over the rayon pool when `parallel` (a full-screen clear is
/// a memory-bound 8 MB at 1080p: two cores fill it faster than one).
fn fill<T: Copy + Send + Sync>(buf: &mut [T], value: T, parallel: bool) {
    const CHUNK: usize = 1 << 16;
    if parallel && buf.len() > CHUNK {
        use rayon::prelude::*;
        buf.par_chunks_mut(CHUNK).for_each(|c| c.fill(value));
    } else {
        buf.fill(value);
    }
}
