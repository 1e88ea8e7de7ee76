//! GLSL ES shader and program objects of a GLES 2.0 context, and the binding of a linked
//! program and its uniform values to the renderer's programmable pipeline.
//!
//! Compilation and linking are [`vc_glsl`]'s; this module keeps the GL object model:
//! attach/detach, deferred deletion, the statuses and info logs the getters report, and
//! uniform storage with the type rules of GL ES 2.0 §2.10.4.

use std::sync::Arc;

use vc_gles::program::{
    MAX_VERTEX_ATTRIBS, QuadIn, QuadOut, ShaderFault, ShaderProgram, ShaderTextures,
};

use super::gl::glenum::{INVALID_OPERATION, INVALID_VALUE};

/// `GL_VERTEX_SHADER`, `GL_FRAGMENT_SHADER`.
pub(super) const VERTEX_SHADER: u32 = 0x8b31;
pub(super) const FRAGMENT_SHADER: u32 = 0x8b30;

/// A shader object.
pub(super) struct ShaderObject {
    pub kind: u32,
    pub source: Vec<u8>,
    pub compiled: Option<Arc<vc_glsl::Shader>>,
    pub compile_status: bool,
    pub log: String,
    /// `glDeleteShader` while attached: deleted when detached.
    pub delete_pending: bool,
}

impl ShaderObject {
    pub fn new(kind: u32) -> Self {
        Self {
            kind,
            source: Vec::new(),
            compiled: None,
            compile_status: false,
            log: String::new(),
            delete_pending: false,
        }
    }

    /// `glCompileShader`.
    pub fn compile(&mut self) {
        let stage = if self.kind == VERTEX_SHADER {
            vc_glsl::Stage::Vertex
        } else {
            vc_glsl::Stage::Fragment
        };
        let source = String::from_utf8_lossy(&self.source);
        let result = vc_glsl::compile(stage, &source);
        self.compile_status = result.ok;
        self.log = result.log;
        self.compiled = result.shader;
    }
}

/// A program object.
#[derive(Default)]
pub(super) struct ProgramObject {
    pub attached: Vec<u32>,
    /// `glBindAttribLocation` pairs, used at the next link.
    pub bindings: Vec<(String, u32)>,
    pub linked: Option<Arc<vc_glsl::Program>>,
    /// Uniform values of the linked program (words, see [`vc_glsl::Program::uniform_slot`]).
    pub uniforms: Vec<u32>,
    pub link_status: bool,
    pub validate_status: bool,
    pub log: String,
    /// `glDeleteProgram` while current: deleted when no longer in use.
    pub delete_pending: bool,
}

impl ProgramObject {
    /// `glLinkProgram` with the given compiled shaders (in attach order).
    pub fn link(&mut self, shaders: &[(u32, Option<Arc<vc_glsl::Shader>>)]) {
        let find = |kind: u32| {
            shaders
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, s)| s.clone())
        };
        let (vertex, fragment) = (find(VERTEX_SHADER), find(FRAGMENT_SHADER));
        let (vs, fs) = match (vertex, fragment) {
            (Some(Some(v)), Some(Some(f))) => (v, f),
            (None, _) | (_, None) => {
                return self
                    .fail("ERROR: a program needs a vertex and a fragment shader attached\n");
            }
            _ => return self.fail("ERROR: an attached shader is not compiled\n"),
        };
        let result = vc_glsl::link(&vs, &fs, &self.bindings);
        self.link_status = result.ok;
        self.log = result.log;
        self.linked = result.program;
        self.uniforms = match &self.linked {
            Some(p) => vec![0; p.uniform_storage_len()],
            None => Vec::new(),
        };
    }

    fn fail(&mut self, log: &str) {
        self.link_status = false;
        self.log = log.to_owned();
        self.linked = None;
        self.uniforms.clear();
    }

    /// `glUniform{1,2,3,4}{f,i}[v]` and `glUniformMatrix{2,3,4}fv`: `values` holds `count`
    /// elements of `components` words each (floats as bits when `float`). Returns the GL
    /// error, if any.
    pub fn set_uniform(
        &mut self,
        location: i32,
        kind: UniformCall,
        count: u32,
        values: &[u32],
    ) -> Result<(), u32> {
        if location == -1 {
            return Ok(());
        }
        let program = self.linked.as_ref().ok_or(INVALID_OPERATION)?;
        let slot = program.uniform_slot(location).ok_or(INVALID_OPERATION)?;
        let ty = slot.ty;
        let per = ty.components();
        let accepts = match kind {
            UniformCall::Float(n) => float_type(ty, n) || bool_type(ty, n),
            UniformCall::Int(n) => {
                int_type(ty, n) || bool_type(ty, n) || (n == 1 && is_sampler(ty))
            }
            UniformCall::Matrix(n) => matrix_type(ty, n),
        };
        if !accepts {
            return Err(INVALID_OPERATION);
        }
        let is_array = program
            .uniforms()
            .iter()
            .any(|u| u.size > 1 && (u.location..u.location + u.size as i32).contains(&location));
        if count > 1 && !is_array {
            return Err(INVALID_OPERATION);
        }
        let count = count.min(slot.remaining) as usize;
        if is_sampler(ty)
            && values
                .iter()
                .take(count)
                .any(|&v| v as i32 as u32 >= vc_gles::program::MAX_TEXTURE_UNITS as u32)
        {
            return Err(INVALID_VALUE);
        }
        for e in 0..count {
            let src = values.get(e * per..(e + 1) * per).ok_or(INVALID_VALUE)?;
            let at = slot.offset + e * per;
            let Some(dst) = self.uniforms.get_mut(at..at + per) else {
                return Err(INVALID_OPERATION);
            };
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = match (kind, bool_type(ty, per_scalar(ty))) {
                    // Booleans store 0 or 1 whatever the call's type.
                    (UniformCall::Float(_), true) => u32::from(f32::from_bits(v) != 0.0),
                    (UniformCall::Int(_), true) => u32::from(v != 0),
                    _ => v,
                };
            }
        }
        Ok(())
    }
}

/// The shape of a `glUniform*` call: `Float(n)`/`Int(n)` for `n` components, `Matrix(n)`
/// for n×n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UniformCall {
    Float(usize),
    Int(usize),
    Matrix(usize),
}

impl UniformCall {
    /// Words per element.
    pub fn words(self) -> usize {
        match self {
            UniformCall::Float(n) | UniformCall::Int(n) => n,
            UniformCall::Matrix(n) => n * n,
        }
    }
}

use vc_glsl::Type as T;

fn float_type(ty: T, n: usize) -> bool {
    matches!(
        (ty, n),
        (T::Float, 1) | (T::Vec2, 2) | (T::Vec3, 3) | (T::Vec4, 4)
    )
}

fn int_type(ty: T, n: usize) -> bool {
    matches!(
        (ty, n),
        (T::Int, 1) | (T::IVec2, 2) | (T::IVec3, 3) | (T::IVec4, 4)
    )
}

fn bool_type(ty: T, n: usize) -> bool {
    matches!(
        (ty, n),
        (T::Bool, 1) | (T::BVec2, 2) | (T::BVec3, 3) | (T::BVec4, 4)
    )
}

fn matrix_type(ty: T, n: usize) -> bool {
    matches!((ty, n), (T::Mat2, 2) | (T::Mat3, 3) | (T::Mat4, 4))
}

fn is_sampler(ty: T) -> bool {
    matches!(ty, T::Sampler2D | T::SamplerCube)
}

/// Scalar components of a vector type (1 for others).
fn per_scalar(ty: T) -> usize {
    match ty {
        T::Vec2 | T::IVec2 | T::BVec2 => 2,
        T::Vec3 | T::IVec3 | T::BVec3 => 3,
        T::Vec4 | T::IVec4 | T::BVec4 => 4,
        _ => 1,
    }
}

/// A linked GLSL ES program with its uniform values, as the renderer's programmable
/// pipeline runs it (what a GLES 2.0 draw binds).
pub struct BoundProgram<'a> {
    /// The program.
    pub program: &'a vc_glsl::Program,
    /// Its uniform storage (see [`vc_glsl::Program::uniform_slot`]).
    pub uniforms: &'a [u32],
}

/// The renderer's textures, as the shader executor asks for them.
struct Lookup<'a>(&'a dyn ShaderTextures);

impl vc_glsl::Textures for Lookup<'_> {
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4] {
        self.0.sample(unit, cube, coord, lod)
    }
}

fn fault(e: vc_glsl::ExecError) -> ShaderFault {
    ShaderFault(e.to_string())
}

impl ShaderProgram for BoundProgram<'_> {
    fn varying_count(&self) -> usize {
        self.program.varying_count()
    }

    fn run_vertex(
        &self,
        textures: &dyn ShaderTextures,
        attribs: &[[f32; 4]; MAX_VERTEX_ATTRIBS],
        position: &mut [f32; 4],
        varyings: &mut [f32],
        budget: &mut u64,
    ) -> Result<(), ShaderFault> {
        let mut out = vc_glsl::VertexOutput {
            position: [0.0; 4],
            point_size: 1.0,
            varyings: vec![0.0; self.program.varying_count() * 4],
        };
        let mut steps = vc_glsl::Budget { remaining: *budget };
        let result = self.program.run_vertex(
            self.uniforms,
            &Lookup(textures),
            attribs,
            &mut out,
            &mut steps,
        );
        *budget = steps.remaining;
        result.map_err(fault)?;
        *position = out.position;
        for (d, s) in varyings.iter_mut().zip(&out.varyings) {
            *d = *s;
        }
        Ok(())
    }

    fn run_fragment_quad(
        &self,
        textures: &dyn ShaderTextures,
        input: &QuadIn<'_>,
        out: &mut QuadOut,
        budget: &mut u64,
    ) -> Result<(), ShaderFault> {
        let quad = vc_glsl::QuadInput {
            frag_coord: input.frag_coord,
            front_facing: input.front_facing,
            point_coord: [[0.5; 2]; 4],
            varyings: input.varyings,
            mask: input.mask,
        };
        let mut result = vc_glsl::QuadOutput {
            color: [[0.0; 4]; 4],
            discarded: 0,
        };
        let mut steps = vc_glsl::Budget { remaining: *budget };
        let r = self.program.run_fragment_quad(
            self.uniforms,
            &Lookup(textures),
            &quad,
            &mut result,
            &mut steps,
        );
        *budget = steps.remaining;
        r.map_err(fault)?;
        out.color = result.color;
        out.discarded = result.discarded;
        Ok(())
    }
}
