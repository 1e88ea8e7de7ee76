//! The intermediate representation: scalar register code over 4-lane values.
//!
//! Every GLSL value is flattened into scalar registers (a `vec4` is four, a `mat3`
//! nine, column-major). A register holds one 32-bit word per lane of a 2×2 quad:
//! `f32` bits, `i32`, or a bool as 0/1. Control flow stays structured (`If`, `Loop`,
//! `Func`) so the executor can run divergent lanes under an active-lane mask, the way
//! a SIMD GPU does, instead of following per-lane jumps.

/// A register index.
pub type Reg = u32;

/// One-operand lane operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op1 {
    Mov,
    FNeg,
    FAbs,
    FSign,
    Floor,
    Ceil,
    Fract,
    Sqrt,
    InvSqrt,
    Exp,
    Log,
    Exp2,
    Log2,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    INeg,
    /// Bool not (0/1).
    Not,
    I2F,
    /// Truncating, saturating float to int.
    F2I,
    /// Non-zero float to bool.
    F2B,
    /// Non-zero int to bool.
    I2B,
}

/// Two-operand lane operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op2 {
    FAdd,
    FSub,
    FMul,
    FDiv,
    /// `x - y * floor(x / y)` (GLSL `mod`).
    FMod,
    FMin,
    FMax,
    Pow,
    /// `atan(y, x)`.
    Atan2,
    /// `step(edge, x)`: 0 if x < edge else 1.
    Step,
    FLt,
    FLe,
    FEq,
    FNe,
    IAdd,
    ISub,
    IMul,
    /// Division by zero gives 0 (undefined in GLSL; must not trap here).
    IDiv,
    ILt,
    ILe,
    IEq,
    INe,
    And,
    Or,
    Xor,
}

/// Texture lookup flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TexKind {
    /// Implicit LOD from quad derivatives (fragment) or 0 (vertex); `extra` is a bias.
    Implicit,
    /// `extra` is the explicit LOD.
    Lod,
}

/// An instruction.
#[derive(Clone, Debug)]
pub enum Inst {
    /// `d = op a`
    U(Op1, Reg, Reg),
    /// `d = a op b`
    B(Op2, Reg, Reg, Reg),
    /// `d = c ? a : b`
    Sel(Reg, Reg, Reg, Reg),
    /// `d = uniform[base(var) + off]`, normalised to 0/1 when `boolean`.
    LoadU {
        /// Destination.
        dst: Reg,
        /// Uniform variable index in the shader.
        var: u16,
        /// Word offset inside the variable.
        off: u32,
        /// Bool uniform (any non-zero is true).
        boolean: bool,
    },
    /// `d = uniform[base(var) + base_off + clamp(idx, 0, len-1)]`
    LoadUIdx {
        /// Destination.
        dst: Reg,
        /// Uniform variable index.
        var: u16,
        /// Region start inside the variable.
        base_off: u32,
        /// Region length in words.
        len: u32,
        /// Per-lane offset register (int).
        idx: Reg,
        /// Bool uniform.
        boolean: bool,
    },
    /// `d = R[base + clamp(idx, 0, len-1)]` per lane.
    LoadIdx {
        /// Destination.
        dst: Reg,
        /// First register of the region.
        base: Reg,
        /// Region length.
        len: u32,
        /// Per-lane offset register.
        idx: Reg,
    },
    /// `R[base + clamp(idx, 0, len-1)] = src` per active lane.
    StoreIdx {
        /// First register of the region.
        base: Reg,
        /// Region length.
        len: u32,
        /// Per-lane offset register.
        idx: Reg,
        /// Value.
        src: Reg,
    },
    /// Texture lookup.
    Tex {
        /// RGBA destination registers.
        dst: [Reg; 4],
        /// Cube map lookup.
        cube: bool,
        /// LOD kind.
        kind: TexKind,
        /// Register holding the texture unit.
        unit: Reg,
        /// Coordinates (s, t, unused) or a direction.
        coord: [Reg; 3],
        /// Bias or LOD.
        extra: Option<Reg>,
    },
    /// Runs `then` for lanes where `cond` is true, `els` for the others.
    If {
        /// Bool register.
        cond: Reg,
        /// Then-branch.
        then: Vec<Inst>,
        /// Else-branch.
        els: Vec<Inst>,
    },
    /// Loops until every lane has left; `step` runs after each iteration (also for
    /// lanes that did `continue`).
    Loop {
        /// Body.
        body: Vec<Inst>,
        /// Continuation code (the `for` increment, the `do-while` test).
        step: Vec<Inst>,
    },
    /// Active lanes leave the innermost loop.
    Break,
    /// Active lanes skip to the loop's step.
    Continue,
    /// Active lanes leave the innermost `Func`.
    Return,
    /// Active lanes are discarded (fragment).
    Discard,
    /// An inlined function body, the target of `Return`.
    Func(Vec<Inst>),
}

fn f(x: u32) -> f32 {
    f32::from_bits(x)
}

fn fb(x: f32) -> u32 {
    x.to_bits()
}

fn b(x: bool) -> u32 {
    x as u32
}

/// Evaluates a one-operand op on one lane word.
#[inline(always)]
pub fn eval1(op: Op1, a: u32) -> u32 {
    let x = f(a);
    let i = a as i32;
    match op {
        Op1::Mov => a,
        Op1::FNeg => fb(-x),
        Op1::FAbs => fb(x.abs()),
        Op1::FSign => fb(if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }),
        Op1::Floor => fb(x.floor()),
        Op1::Ceil => fb(x.ceil()),
        Op1::Fract => fb(x - x.floor()),
        Op1::Sqrt => fb(x.sqrt()),
        Op1::InvSqrt => fb(1.0 / x.sqrt()),
        Op1::Exp => fb(x.exp()),
        Op1::Log => fb(x.ln()),
        Op1::Exp2 => fb(x.exp2()),
        Op1::Log2 => fb(x.log2()),
        Op1::Sin => fb(x.sin()),
        Op1::Cos => fb(x.cos()),
        Op1::Tan => fb(x.tan()),
        Op1::Asin => fb(x.asin()),
        Op1::Acos => fb(x.acos()),
        Op1::Atan => fb(x.atan()),
        Op1::INeg => i.wrapping_neg() as u32,
        Op1::Not => b(a == 0),
        Op1::I2F => fb(i as f32),
        Op1::F2I => (x as i32) as u32,
        Op1::F2B => b(x != 0.0),
        Op1::I2B => b(a != 0),
    }
}

/// Evaluates a two-operand op on one lane word.
#[inline(always)]
pub fn eval2(op: Op2, a: u32, c: u32) -> u32 {
    let (x, y) = (f(a), f(c));
    let (i, j) = (a as i32, c as i32);
    match op {
        Op2::FAdd => fb(x + y),
        Op2::FSub => fb(x - y),
        Op2::FMul => fb(x * y),
        Op2::FDiv => fb(x / y),
        Op2::FMod => fb(x - y * (x / y).floor()),
        Op2::FMin => fb(if y < x { y } else { x }),
        Op2::FMax => fb(if x < y { y } else { x }),
        Op2::Pow => fb(x.powf(y)),
        Op2::Atan2 => fb(x.atan2(y)),
        Op2::Step => fb(if y < x { 0.0 } else { 1.0 }),
        Op2::FLt => b(x < y),
        Op2::FLe => b(x <= y),
        Op2::FEq => b(x == y),
        Op2::FNe => b(x != y),
        Op2::IAdd => i.wrapping_add(j) as u32,
        Op2::ISub => i.wrapping_sub(j) as u32,
        Op2::IMul => i.wrapping_mul(j) as u32,
        Op2::IDiv => {
            if j == 0 {
                0
            } else {
                i.wrapping_div(j) as u32
            }
        }
        Op2::ILt => b(i < j),
        Op2::ILe => b(i <= j),
        Op2::IEq => b(i == j),
        Op2::INe => b(i != j),
        Op2::And => b(a != 0 && c != 0),
        Op2::Or => b(a != 0 || c != 0),
        Op2::Xor => b((a != 0) != (c != 0)),
    }
}

// The lane versions dispatch once per instruction, then run a loop the compiler
// specialises per op (the op is a constant inside each arm), with `eval1`/`eval2`
// remaining the single definition of each operation.
macro_rules! lanes1 {
    ($op:expr, $a:expr, [$($v:ident),*]) => {
        match $op {
            $(Op1::$v => $a.map(|x| eval1(Op1::$v, x)),)*
        }
    };
}

macro_rules! lanes2 {
    ($op:expr, $a:expr, $b:expr, [$($v:ident),*]) => {
        match $op {
            $(Op2::$v => std::array::from_fn(|l| eval2(Op2::$v, $a[l], $b[l])),)*
        }
    };
}

/// [`eval1`] on four lanes.
pub fn eval1_lanes(op: Op1, a: [u32; 4]) -> [u32; 4] {
    lanes1!(
        op,
        a,
        [
            Mov, FNeg, FAbs, FSign, Floor, Ceil, Fract, Sqrt, InvSqrt, Exp, Log, Exp2, Log2, Sin,
            Cos, Tan, Asin, Acos, Atan, INeg, Not, I2F, F2I, F2B, I2B
        ]
    )
}

/// [`eval2`] on four lanes.
pub fn eval2_lanes(op: Op2, a: [u32; 4], b: [u32; 4]) -> [u32; 4] {
    lanes2!(
        op,
        a,
        b,
        [
            FAdd, FSub, FMul, FDiv, FMod, FMin, FMax, Pow, Atan2, Step, FLt, FLe, FEq, FNe, IAdd,
            ISub, IMul, IDiv, ILt, ILe, IEq, INe, And, Or, Xor
        ]
    )
}

/// Counts instructions, nested ones included.
pub fn count(code: &[Inst]) -> usize {
    code.iter()
        .map(|i| {
            1 + match i {
                Inst::If { then, els, .. } => count(then) + count(els),
                Inst::Loop { body, step } => count(body) + count(step),
                Inst::Func(b) => count(b),
                _ => 0,
            }
        })
        .sum()
}
