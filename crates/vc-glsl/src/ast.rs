//! Syntax tree produced by the parser. Every node carries its source line for the log.

/// Built-in type names (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basic {
    /// `void`
    Void,
    /// `float`
    Float,
    /// `int`
    Int,
    /// `bool`
    Bool,
    /// `vecN`
    Vec(u8),
    /// `ivecN`
    IVec(u8),
    /// `bvecN`
    BVec(u8),
    /// `matN`
    Mat(u8),
    /// `sampler2D`
    Sampler2D,
    /// `samplerCube`
    SamplerCube,
}

impl Basic {
    /// The keyword's type, if it names one.
    pub fn from_keyword(s: &str) -> Option<Basic> {
        Some(match s {
            "void" => Basic::Void,
            "float" => Basic::Float,
            "int" => Basic::Int,
            "bool" => Basic::Bool,
            "vec2" => Basic::Vec(2),
            "vec3" => Basic::Vec(3),
            "vec4" => Basic::Vec(4),
            "ivec2" => Basic::IVec(2),
            "ivec3" => Basic::IVec(3),
            "ivec4" => Basic::IVec(4),
            "bvec2" => Basic::BVec(2),
            "bvec3" => Basic::BVec(3),
            "bvec4" => Basic::BVec(4),
            "mat2" => Basic::Mat(2),
            "mat3" => Basic::Mat(3),
            "mat4" => Basic::Mat(4),
            "sampler2D" => Basic::Sampler2D,
            "samplerCube" => Basic::SamplerCube,
            _ => return None,
        })
    }
}

/// Precision qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `lowp`
    Low,
    /// `mediump`
    Medium,
    /// `highp`
    High,
}

/// A struct definition as written.
#[derive(Clone, Debug)]
pub struct StructDef {
    /// Name, if any.
    pub name: Option<String>,
    /// Members: type, name, optional array size.
    pub fields: Vec<(TypeSpec, String, Option<Expr>, u32)>,
    /// Line.
    pub line: u32,
}

/// The base of a type specifier.
#[derive(Clone, Debug)]
pub enum TypeBase {
    /// A keyword type.
    Basic(Basic),
    /// A struct type name.
    Named(String),
    /// An inline struct definition.
    Struct(Box<StructDef>),
}

/// A type specifier with optional precision.
#[derive(Clone, Debug)]
pub struct TypeSpec {
    /// Base type.
    pub base: TypeBase,
    /// Precision qualifier written.
    pub precision: Option<Precision>,
    /// Line.
    pub line: u32,
}

/// Storage qualifier of a declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// none
    None,
    /// `const`
    Const,
    /// `attribute`
    Attribute,
    /// `uniform`
    Uniform,
    /// `varying`
    Varying,
}

/// Parameter qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamQual {
    /// `in` or nothing
    In,
    /// `out`
    Out,
    /// `inout`
    InOut,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Xor,
    Comma,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
    PreInc,
    PreDec,
    PostInc,
    PostDec,
}

/// Expression node.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Line of its main token.
    pub line: u32,
    /// Height of the tree below and including this node.
    pub depth: u32,
}

/// Expression kinds.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum ExprKind {
    Ident(String),
    Int(i32),
    Float(f32),
    Bool(bool),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a = b` or `a op= b`.
    Assign(Option<BinOp>, Box<Expr>, Box<Expr>),
    Unary(UnOp, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Field(Box<Expr>, String),
    /// A function call by name (user function, built-in or struct constructor).
    Call(String, Vec<Expr>),
    /// A constructor of a built-in type.
    Construct(Basic, Vec<Expr>),
}

/// One declarator of a declaration.
#[derive(Clone, Debug)]
pub struct Declarator {
    /// Name.
    pub name: String,
    /// Array size.
    pub array: Option<Expr>,
    /// Initialiser.
    pub init: Option<Expr>,
    /// Line.
    pub line: u32,
}

/// A variable declaration statement.
#[derive(Clone, Debug)]
pub struct Decl {
    /// Storage qualifier.
    pub storage: Storage,
    /// `invariant` written.
    pub invariant: bool,
    /// Type.
    pub ty: TypeSpec,
    /// Declarators (may be empty for a bare struct definition).
    pub vars: Vec<Declarator>,
    /// Line.
    pub line: u32,
}

/// Statement node.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Stmt {
    Block(Vec<Stmt>),
    Decl(Decl),
    Expr(Expr),
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    For {
        init: Option<Box<Stmt>>,
        cond: Option<Expr>,
        step: Option<Expr>,
        body: Box<Stmt>,
        line: u32,
    },
    While(Expr, Box<Stmt>),
    DoWhile(Box<Stmt>, Expr),
    Break(u32),
    Continue(u32),
    Return(Option<Expr>, u32),
    Discard(u32),
    Empty,
    /// `precision p type;`
    Precision(Precision, Basic, u32),
    /// `invariant name, ...;`
    Invariant(Vec<String>, u32),
}

/// A function parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Direction.
    pub qual: ParamQual,
    /// `const` written.
    pub is_const: bool,
    /// Type.
    pub ty: TypeSpec,
    /// Name (optional in prototypes).
    pub name: Option<String>,
    /// Array size.
    pub array: Option<Expr>,
}

/// A function prototype or definition.
#[derive(Clone, Debug)]
pub struct Function {
    /// Return type.
    pub ret: TypeSpec,
    /// Name.
    pub name: String,
    /// Parameters.
    pub params: Vec<Param>,
    /// Body, `None` for a prototype.
    pub body: Option<Vec<Stmt>>,
    /// Line.
    pub line: u32,
}

/// A top-level item.
#[derive(Clone, Debug)]
pub enum External {
    /// Function prototype or definition.
    Function(Function),
    /// Any statement allowed at global scope (declaration, precision, invariant).
    Stmt(Stmt),
}

impl ExprKind {
    /// Direct sub-expressions.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            ExprKind::Ident(_) | ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) => {
                vec![]
            }
            ExprKind::Binary(_, a, b) | ExprKind::Assign(_, a, b) | ExprKind::Index(a, b) => {
                vec![a, b]
            }
            ExprKind::Unary(_, a) | ExprKind::Field(a, _) => vec![a],
            ExprKind::Ternary(a, b, c) => vec![a, b, c],
            ExprKind::Call(_, v) | ExprKind::Construct(_, v) => v.iter().collect(),
        }
    }
}
