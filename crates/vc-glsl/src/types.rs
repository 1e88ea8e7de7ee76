//! Checked GLSL types.

use std::sync::Arc;

use crate::Type;

/// A struct type; identity is its `id` (two declarations are two types).
#[derive(Debug)]
pub struct StructTy {
    /// Unique id within the shader.
    pub id: usize,
    /// Name (or a generated one for anonymous structs).
    pub name: String,
    /// Members.
    pub fields: Vec<(String, Ty)>,
    /// Struct nesting depth (1 for a struct of basic types).
    pub depth: u32,
}

/// A checked type.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Ty {
    Void,
    Float,
    Int,
    Bool,
    Vec(u8),
    IVec(u8),
    BVec(u8),
    Mat(u8),
    /// `true` for `samplerCube`.
    Sampler(bool),
    Struct(Arc<StructTy>),
    Array(Box<Ty>, u32),
}

impl PartialEq for Ty {
    fn eq(&self, o: &Ty) -> bool {
        use Ty::*;
        match (self, o) {
            (Void, Void) | (Float, Float) | (Int, Int) | (Bool, Bool) => true,
            (Vec(a), Vec(b)) | (IVec(a), IVec(b)) | (BVec(a), BVec(b)) | (Mat(a), Mat(b)) => a == b,
            (Sampler(a), Sampler(b)) => a == b,
            (Struct(a), Struct(b)) => a.id == b.id,
            (Array(a, n), Array(b, m)) => n == m && a == b,
            _ => false,
        }
    }
}

/// Scalar kind of a numeric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sc {
    /// float
    F,
    /// int
    I,
    /// bool
    B,
}

impl Ty {
    /// Scalar or vector of `n` components of kind `s`.
    pub fn vector(s: Sc, n: u8) -> Ty {
        match (s, n) {
            (Sc::F, 1) => Ty::Float,
            (Sc::I, 1) => Ty::Int,
            (Sc::B, 1) => Ty::Bool,
            (Sc::F, n) => Ty::Vec(n),
            (Sc::I, n) => Ty::IVec(n),
            (Sc::B, n) => Ty::BVec(n),
        }
    }

    /// Component kind of scalars, vectors and matrices.
    pub fn sc(&self) -> Option<Sc> {
        match self {
            Ty::Float | Ty::Vec(_) | Ty::Mat(_) => Some(Sc::F),
            Ty::Int | Ty::IVec(_) => Some(Sc::I),
            Ty::Bool | Ty::BVec(_) => Some(Sc::B),
            _ => None,
        }
    }

    /// Component count of a scalar (1) or vector; `None` otherwise.
    pub fn vec_len(&self) -> Option<u8> {
        match self {
            Ty::Float | Ty::Int | Ty::Bool => Some(1),
            Ty::Vec(n) | Ty::IVec(n) | Ty::BVec(n) => Some(*n),
            _ => None,
        }
    }

    /// Is a scalar.
    pub fn is_scalar(&self) -> bool {
        self.vec_len() == Some(1)
    }

    /// Scalar registers (and uniform words) the type occupies.
    pub fn slots(&self) -> u32 {
        match self {
            Ty::Void => 0,
            Ty::Float | Ty::Int | Ty::Bool | Ty::Sampler(_) => 1,
            Ty::Vec(n) | Ty::IVec(n) | Ty::BVec(n) => *n as u32,
            Ty::Mat(n) => (*n as u32) * (*n as u32),
            Ty::Struct(s) => s.fields.iter().map(|f| f.1.slots()).sum(),
            Ty::Array(e, n) => e.slots().saturating_mul(*n),
        }
    }

    /// Contains a sampler anywhere.
    pub fn has_sampler(&self) -> bool {
        match self {
            Ty::Sampler(_) => true,
            Ty::Struct(s) => s.fields.iter().any(|f| f.1.has_sampler()),
            Ty::Array(e, _) => e.has_sampler(),
            _ => false,
        }
    }

    /// Contains an array anywhere.
    pub fn has_array(&self) -> bool {
        match self {
            Ty::Array(..) => true,
            Ty::Struct(s) => s.fields.iter().any(|f| f.1.has_array()),
            _ => false,
        }
    }

    /// Uses floats (needs a precision in fragment shaders).
    pub fn has_float(&self) -> bool {
        match self {
            Ty::Float | Ty::Vec(_) | Ty::Mat(_) => true,
            Ty::Array(e, _) => e.has_float(),
            _ => false,
        }
    }

    /// The GLSL spelling.
    pub fn name(&self) -> String {
        match self {
            Ty::Void => "void".into(),
            Ty::Float => "float".into(),
            Ty::Int => "int".into(),
            Ty::Bool => "bool".into(),
            Ty::Vec(n) => format!("vec{n}"),
            Ty::IVec(n) => format!("ivec{n}"),
            Ty::BVec(n) => format!("bvec{n}"),
            Ty::Mat(n) => format!("mat{n}"),
            Ty::Sampler(false) => "sampler2D".into(),
            Ty::Sampler(true) => "samplerCube".into(),
            Ty::Struct(s) => s.name.clone(),
            Ty::Array(e, n) => format!("{}[{n}]", e.name()),
        }
    }

    /// The API type of a non-aggregate.
    pub fn api(&self) -> Option<Type> {
        Some(match self {
            Ty::Float => Type::Float,
            Ty::Vec(2) => Type::Vec2,
            Ty::Vec(3) => Type::Vec3,
            Ty::Vec(4) => Type::Vec4,
            Ty::Int => Type::Int,
            Ty::IVec(2) => Type::IVec2,
            Ty::IVec(3) => Type::IVec3,
            Ty::IVec(4) => Type::IVec4,
            Ty::Bool => Type::Bool,
            Ty::BVec(2) => Type::BVec2,
            Ty::BVec(3) => Type::BVec3,
            Ty::BVec(4) => Type::BVec4,
            Ty::Mat(2) => Type::Mat2,
            Ty::Mat(3) => Type::Mat3,
            Ty::Mat(4) => Type::Mat4,
            Ty::Sampler(false) => Type::Sampler2D,
            Ty::Sampler(true) => Type::SamplerCube,
            _ => return None,
        })
    }
}
