//! A GLSL ES 1.00 compiler and executor for the software VideoCore's GLES 2.0 renderer.
//!
//! [`compile`] runs the preprocessor, the parser and the type checker, lowering each
//! shader to a register IR ([`ir`]) whose values are four lanes wide: a fragment
//! shader invocation shades a whole 2×2 quad, so texture LOD can be taken from the
//! quad's coordinate differences as GPUs do. [`link`] matches varyings, assigns
//! attribute and uniform locations and lays out uniform storage. A [`Program`] runs
//! vertices ([`Program::run_vertex`]) and quads ([`Program::run_fragment_quad`]).
//!
//! Two engines run the IR: an interpreter ([`exec`]) and, where Cranelift supports
//! the host and the program has at most 50 000 instructions, native code compiled at
//! link time (4-lane SIMD, one quad per call). Both give the same bits and spend the
//! same [`Budget`]; [`Program::run_fragment_quad_with`] picks one explicitly
//! ([`Engine`]), the plain entry points use native code when there is some.
//! Julia-set quad (16 iterations, one texture lookup): about 2.5 µs interpreted,
//! 0.65 µs native (`benches/shade.rs`).
//!
//! # Limits
//!
//! Hostile sources must not exhaust memory or the stack: sources over 1 MiB are
//! refused, nesting of blocks, parentheses and expression trees stops at 256, macro
//! expansion and inlined code are bounded, and every execution consumes a [`Budget`]
//! so `for(;;){}` ends with [`ExecError::BudgetExhausted`]. Errors are reported in the
//! info log, never by panicking.
//!
//! # Numerics
//!
//! Precision qualifiers are checked, then ignored: everything computes in `f32`.
//! Integer division by zero yields 0; out-of-range dynamic indices are clamped.

pub mod ast;
pub mod diag;
pub mod exec;
pub mod ir;
mod jit;
mod link;
mod lower;
pub mod parse;
pub mod pp;
pub mod types;

use std::sync::Arc;

pub use link::link;

/// Shader stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Vertex shader.
    Vertex,
    /// Fragment shader.
    Fragment,
}

/// `GL_MAX_VERTEX_ATTRIBS`
pub const MAX_VERTEX_ATTRIBS: usize = 8;
/// `GL_MAX_VARYING_VECTORS`
pub const MAX_VARYING_VECTORS: usize = 8;
/// `GL_MAX_VERTEX_UNIFORM_VECTORS`
pub const MAX_VERTEX_UNIFORM_VECTORS: usize = 128;
/// `GL_MAX_FRAGMENT_UNIFORM_VECTORS`
pub const MAX_FRAGMENT_UNIFORM_VECTORS: usize = 64;
/// `GL_MAX_TEXTURE_IMAGE_UNITS`
pub const MAX_TEXTURE_IMAGE_UNITS: usize = 8;
/// Largest accepted source, in bytes.
pub const MAX_SOURCE_LEN: usize = 1 << 20;

/// Result of [`compile`].
#[derive(Debug)]
pub struct Compiled {
    /// Compilation succeeded.
    pub ok: bool,
    /// Info log (may be empty on success).
    pub log: String,
    /// The shader, when `ok`.
    pub shader: Option<Arc<Shader>>,
}

/// A compiled shader: its stage and checked, lowered code.
#[derive(Debug)]
pub struct Shader {
    stage: Stage,
    low: lower::Lowered,
}

impl Shader {
    /// The shader's stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
}

/// Compiles one shader. Never panics; `log` is the info log (may be empty on success).
pub fn compile(stage: Stage, source: &str) -> Compiled {
    let mut diags = diag::Diags::default();
    if source.len() > MAX_SOURCE_LEN {
        diags.error(0, "", "shader source too long (limit 1 MiB)");
        return failed(&diags);
    }
    let toks = pp::preprocess(source, stage == Stage::Fragment, &mut diags);
    if diags.error_count() > 0 {
        return failed(&diags);
    }
    let Some(unit) = parse::parse(toks, &mut diags) else {
        return failed(&diags);
    };
    if diags.error_count() > 0 {
        return failed(&diags);
    }
    match lower::lower(stage, unit, &mut diags) {
        Some(low) if diags.error_count() == 0 => Compiled {
            ok: true,
            log: diags.compile_log(),
            shader: Some(Arc::new(Shader { stage, low })),
        },
        _ => failed(&diags),
    }
}

fn failed(diags: &diag::Diags) -> Compiled {
    Compiled {
        ok: false,
        log: diags.compile_log(),
        shader: None,
    }
}

/// Result of [`link`].
#[derive(Debug)]
pub struct Linked {
    /// Linking succeeded.
    pub ok: bool,
    /// Link log.
    pub log: String,
    /// The program, when `ok`.
    pub program: Option<Arc<Program>>,
}

/// Type of an active attribute or uniform, as `glGetActiveUniform` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Type {
    Float,
    Vec2,
    Vec3,
    Vec4,
    Int,
    IVec2,
    IVec3,
    IVec4,
    Bool,
    BVec2,
    BVec3,
    BVec4,
    Mat2,
    Mat3,
    Mat4,
    Sampler2D,
    SamplerCube,
}

impl Type {
    /// The GL enum (`GL_FLOAT` 0x1406, `GL_FLOAT_VEC2` 0x8B50, …, `GL_SAMPLER_CUBE` 0x8B60).
    pub fn gl_enum(self) -> u32 {
        match self {
            Type::Float => 0x1406,
            Type::Vec2 => 0x8B50,
            Type::Vec3 => 0x8B51,
            Type::Vec4 => 0x8B52,
            Type::Int => 0x1404,
            Type::IVec2 => 0x8B53,
            Type::IVec3 => 0x8B54,
            Type::IVec4 => 0x8B55,
            Type::Bool => 0x8B56,
            Type::BVec2 => 0x8B57,
            Type::BVec3 => 0x8B58,
            Type::BVec4 => 0x8B59,
            Type::Mat2 => 0x8B5A,
            Type::Mat3 => 0x8B5B,
            Type::Mat4 => 0x8B5C,
            Type::Sampler2D => 0x8B5E,
            Type::SamplerCube => 0x8B60,
        }
    }

    /// Words one element occupies in uniform storage (`mat4` = 16).
    pub fn components(self) -> usize {
        match self {
            Type::Float | Type::Int | Type::Bool | Type::Sampler2D | Type::SamplerCube => 1,
            Type::Vec2 | Type::IVec2 | Type::BVec2 => 2,
            Type::Vec3 | Type::IVec3 | Type::BVec3 => 3,
            Type::Vec4 | Type::IVec4 | Type::BVec4 | Type::Mat2 => 4,
            Type::Mat3 => 9,
            Type::Mat4 => 16,
        }
    }

    /// Scalar kind: float (false) or int/bool/sampler bits (true).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Type::Int
                | Type::IVec2
                | Type::IVec3
                | Type::IVec4
                | Type::Bool
                | Type::BVec2
                | Type::BVec3
                | Type::BVec4
                | Type::Sampler2D
                | Type::SamplerCube
        )
    }
}

/// An active attribute or uniform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveVariable {
    /// Name; arrays as `"a[0]"`, struct members as `"s.f"`.
    pub name: String,
    /// Element type.
    pub ty: Type,
    /// Array length, 1 if not an array.
    pub size: u32,
    /// Location of element 0.
    pub location: i32,
}

/// What a uniform location addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformSlot {
    /// Element type.
    pub ty: Type,
    /// Word index into uniform storage.
    pub offset: usize,
    /// Array elements from this location to the end, ≥ 1.
    pub remaining: u32,
}

/// Texture sampling, implemented by the renderer.
pub trait Textures {
    /// Samples texture unit `unit` at `coord` (s,t for 2D; direction for cube) with level of detail `lod`,
    /// returning RGBA in \[0,1\]. Called by shaders for texture2D/textureCube etc.
    ///
    /// For implicit-LOD lookups in fragment shaders `lod` is log2 of the largest
    /// coordinate derivative across the quad *in normalised coordinates* plus any
    /// bias; the implementation adds log2 of the texture size. It may be `-inf` when
    /// the coordinates do not vary. Vertex shaders pass 0 or the explicit LOD.
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4];
}

/// Textures that are all opaque black, for shaders that sample nothing.
pub struct NoTextures;

impl Textures for NoTextures {
    fn sample(&self, _unit: u32, _cube: bool, _coord: [f32; 3], _lod: f32) -> [f32; 4] {
        [0.0, 0.0, 0.0, 1.0]
    }
}

/// Execution budget in steps (IR instructions and loop iterations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Steps left.
    pub remaining: u64,
}

/// Execution failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// The step budget ran out (for example an endless loop).
    #[error("shader step budget exhausted")]
    BudgetExhausted,
    /// An input slice is shorter than the program needs.
    #[error("{0} input too short")]
    InputTooShort(&'static str),
}

/// Outputs of one vertex.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VertexOutput {
    /// `gl_Position`.
    pub position: [f32; 4],
    /// `gl_PointSize`.
    pub point_size: f32,
    /// Varyings, `varying_count() * 4` long, index `v * 4 + component`.
    pub varyings: Vec<f32>,
}

/// Inputs of one 2×2 fragment quad.
#[derive(Clone, Copy, Debug)]
pub struct QuadInput<'a> {
    /// Per lane x, y, z, 1/w.
    pub frag_coord: [[f32; 4]; 4],
    /// The primitive is front facing.
    pub front_facing: bool,
    /// Per lane `gl_PointCoord`.
    pub point_coord: [[f32; 2]; 4],
    /// Varyings, SoA: `(v * 4 + component) * 4 + lane`.
    pub varyings: &'a [f32],
    /// Bit `l`: lane `l` is covered.
    pub mask: u8,
}

/// Outputs of one quad.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuadOutput {
    /// `gl_FragColor` (or `gl_FragData[0]`) per lane.
    pub color: [[f32; 4]; 4],
    /// Bit per lane: the lane executed `discard`.
    pub discarded: u8,
}

pub use link::{Engine, Program};
