//! Semantic analysis and lowering to [`crate::ir`] in one pass.
//!
//! Each expression is type-checked and turned into scalar register code at once.
//! Constant operands are folded with the executor's own lane functions, so constant
//! expressions (array sizes, `const` initialisers) need no separate evaluator and give
//! the same bits as run time.
//!
//! User functions are inlined at every call (GLSL ES forbids recursion, so inlining
//! always terminates). Every function body is first checked once where it is defined
//! ("check mode": calls are typed but not inlined, the code is dropped); `main` is
//! then lowered again with inlining ("emit mode"). Errors are only reported in check
//! mode so an error in a function called twice is logged once.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::Stage;
use crate::ast::{self, *};
use crate::diag::Diags;
use crate::ir::{self, Inst, Op1, Op2, Reg, TexKind};
use crate::types::{Sc, StructTy, Ty};

/// Registers numbered from here are constants until [`finish`] places them.
const CONST_BIT: u32 = 1 << 31;
/// Instructions a program may lower to (inlining can grow code exponentially).
const MAX_CODE: usize = 1 << 20;
/// Scalar components one variable may have.
const MAX_TYPE_SLOTS: u32 = 1 << 18;
/// Nesting of struct types.
const MAX_STRUCT_DEPTH: u32 = 32;
/// Nesting of IR blocks after inlining.
const MAX_NEST: u32 = 512;
/// Registers a program may use.
const MAX_REGS: u32 = 1 << 20;

/// An interface variable (attribute or varying) living in registers.
#[derive(Clone, Debug)]
pub struct IfaceVar {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// First register.
    pub base: Reg,
    /// Statically used (reachable from `main`, or any use for fragment varyings).
    pub used: bool,
    /// Declaration line.
    #[allow(dead_code)]
    pub line: u32,
}

/// A uniform variable; its words are addressed relative to a base set at link time.
#[derive(Clone, Debug)]
pub struct UniVar {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Reachable from `main`.
    pub used: bool,
}

/// Registers of the built-in variables (`None` when the stage lacks them).
#[derive(Clone, Debug, Default)]
pub struct Builtins {
    /// `gl_Position`
    pub position: Reg,
    /// `gl_PointSize`
    pub point_size: Reg,
    /// `gl_FragCoord`
    pub frag_coord: Reg,
    /// `gl_FrontFacing`
    pub front_facing: Reg,
    /// `gl_FragColor`
    pub frag_color: Reg,
    /// `gl_FragData[0]`
    pub frag_data: Reg,
    /// `gl_PointCoord`
    pub point_coord: Reg,
}

/// The lowered shader.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// Code of `main` (global initialisers first).
    pub code: Vec<Inst>,
    /// Register count.
    pub nregs: u32,
    /// Constant registers and their word.
    pub consts: Vec<(Reg, u32)>,
    /// Attributes in declaration order.
    pub attributes: Vec<IfaceVar>,
    /// Varyings in declaration order.
    pub varyings: Vec<IfaceVar>,
    /// Uniforms in declaration order (the `var` of `LoadU`).
    pub uniforms: Vec<UniVar>,
    /// Built-in variable registers.
    pub builtins: Builtins,
    /// `gl_Position` is written somewhere reachable.
    pub writes_position: bool,
    /// `gl_FragData` is used (otherwise `gl_FragColor` is the output).
    pub uses_frag_data: bool,
    /// A `main` was defined.
    pub has_main: bool,
}

/// Where one scalar component lives.
#[derive(Clone, Copy, Debug)]
enum Comp {
    R(Reg),
    /// Register `base + off[lane]` within a region of `len`.
    Dyn {
        base: Reg,
        len: u32,
        off: Reg,
    },
    U {
        var: u16,
        off: u32,
        boolean: bool,
    },
    UDyn {
        var: u16,
        base_off: u32,
        len: u32,
        off: Reg,
        boolean: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BuiltinVar {
    Position,
    FragColor,
    FragData,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VarKind {
    Local,
    Attribute(usize),
    Uniform(usize),
    Varying(usize),
    Builtin(BuiltinVar),
}

#[derive(Debug)]
struct Var {
    ty: Ty,
    comps: Vec<Comp>,
    kind: VarKind,
    /// Why it can't be written, if it can't.
    readonly: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Place {
    ty: Ty,
    comps: Vec<Comp>,
    readonly: Option<&'static str>,
    /// Components are one region in order (dynamic indexing needs it).
    contiguous: bool,
    kind: Option<VarKind>,
}

/// An rvalue.
#[derive(Clone, Debug)]
struct Val {
    ty: Ty,
    regs: Vec<Reg>,
}

#[derive(Default)]
struct Scope {
    vars: HashMap<String, Rc<Var>>,
    structs: HashMap<String, Arc<StructTy>>,
    /// Default float precision declared in this scope.
    float_precision: bool,
    int_precision: bool,
}

struct Sig {
    name: String,
    params: Vec<(ParamQual, Ty)>,
    ret: Ty,
    def: Option<Rc<Function>>,
    line: u32,
}

struct RetCtx {
    ty: Ty,
    regs: Vec<Reg>,
}

type R<T> = Result<T, ()>;

struct L<'d> {
    stage: Stage,
    diags: &'d mut Diags,
    /// Emit mode (inline calls, no diagnostics).
    emit: bool,
    next_reg: u32,
    max_reg: u32,
    consts: HashMap<u32, Reg>,
    const_words: Vec<u32>,
    blocks: Vec<Vec<Inst>>,
    code_size: usize,
    too_big: bool,
    scopes: Vec<Scope>,
    sigs: Vec<Sig>,
    by_name: HashMap<String, Vec<usize>>,
    calls: HashMap<usize, HashSet<usize>>,
    current_fn: Option<usize>,
    inline_stack: Vec<usize>,
    rets: Vec<RetCtx>,
    loops: u32,
    global_init: Vec<Inst>,
    attributes: Vec<IfaceVar>,
    varyings: Vec<IfaceVar>,
    uniforms: Vec<UniVar>,
    builtins: Builtins,
    writes_position: bool,
    uses_frag_data: bool,
    uses_frag_color: bool,
    struct_ids: usize,
    emit_error: Option<(u32, String, String)>,
    nest: u32,
}

fn is_builtin_fn(name: &str) -> bool {
    matches!(
        name,
        "radians"
            | "degrees"
            | "sin"
            | "cos"
            | "tan"
            | "asin"
            | "acos"
            | "atan"
            | "pow"
            | "exp"
            | "log"
            | "exp2"
            | "log2"
            | "sqrt"
            | "inversesqrt"
            | "abs"
            | "sign"
            | "floor"
            | "ceil"
            | "fract"
            | "mod"
            | "min"
            | "max"
            | "clamp"
            | "mix"
            | "step"
            | "smoothstep"
            | "length"
            | "distance"
            | "dot"
            | "cross"
            | "normalize"
            | "faceforward"
            | "reflect"
            | "refract"
            | "matrixCompMult"
            | "lessThan"
            | "lessThanEqual"
            | "greaterThan"
            | "greaterThanEqual"
            | "equal"
            | "notEqual"
            | "any"
            | "all"
            | "not"
            | "texture2D"
            | "texture2DProj"
            | "texture2DLod"
            | "texture2DProjLod"
            | "textureCube"
            | "textureCubeLod"
    )
}

/// Has side effects (assignment, ++/--, user calls): such operands of `&&`, `||` and
/// `?:` must only run for the lanes that select them.
fn side_effects(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Assign(..) => true,
        ExprKind::Unary(UnOp::PreInc | UnOp::PreDec | UnOp::PostInc | UnOp::PostDec, _) => true,
        ExprKind::Call(name, args) => !is_builtin_fn(name) || args.iter().any(side_effects),
        k => k.children().into_iter().any(side_effects),
    }
}

/// Checks and lowers a parsed shader.
pub fn lower(stage: Stage, unit: Vec<External>, diags: &mut Diags) -> Option<Lowered> {
    let mut l = L {
        stage,
        diags,
        emit: false,
        next_reg: 0,
        max_reg: 0,
        consts: HashMap::new(),
        const_words: Vec::new(),
        blocks: vec![Vec::new()],
        code_size: 0,
        too_big: false,
        scopes: vec![Scope::default()],
        sigs: Vec::new(),
        by_name: HashMap::new(),
        calls: HashMap::new(),
        current_fn: None,
        inline_stack: Vec::new(),
        rets: Vec::new(),
        loops: 0,
        global_init: Vec::new(),
        attributes: Vec::new(),
        varyings: Vec::new(),
        uniforms: Vec::new(),
        builtins: Builtins::default(),
        writes_position: false,
        uses_frag_data: false,
        uses_frag_color: false,
        struct_ids: 0,
        emit_error: None,
        nest: 0,
    };
    l.declare_builtins();
    for ext in unit {
        match ext {
            External::Function(f) => l.function(f),
            External::Stmt(s) => {
                l.global_stmt(&s);
            }
        }
    }
    l.check_recursion();
    if l.diags.error_count() > 0 {
        return None;
    }
    let main = l.by_name.get("main").and_then(|v| {
        v.iter()
            .copied()
            .find(|&i| l.sigs[i].params.is_empty() && l.sigs[i].def.is_some())
    });
    let mut code = std::mem::take(&mut l.global_init);
    if let Some(m) = main {
        if l.sigs[m].ret != Ty::Void {
            let line = l.sigs[m].line;
            l.diags.error(line, "main", "main() must return void");
            return None;
        }
        l.emit = true;
        l.blocks = vec![Vec::new()];
        let body = l.sigs[m].def.clone().expect("checked above");
        l.inline_stack.push(m);
        let saved = l.scopes.split_off(2);
        l.scopes.push(Scope::default());
        l.rets.push(RetCtx {
            ty: Ty::Void,
            regs: Vec::new(),
        });
        l.blocks.push(Vec::new());
        for s in body.body.as_deref().unwrap_or(&[]) {
            l.stmt(s);
        }
        let b = l.blocks.pop().unwrap_or_default();
        l.emit_inst(Inst::Func(b));
        l.rets.pop();
        l.scopes.truncate(2);
        l.scopes.extend(saved);
        code.extend(l.blocks.pop().unwrap_or_default());
    } else if l.by_name.contains_key("main") {
        l.diags
            .error(0, "main", "main() must be declared as void main()");
    }
    if l.too_big {
        l.diags.error(0, "", "program too large after inlining");
    }
    if let Some((line, tok, msg)) = l.emit_error.take() {
        l.diags
            .error(line, &tok, format!("internal compiler error: {msg}"));
    }
    if l.diags.error_count() > 0 {
        return None;
    }
    Some(finish(l, code, main.is_some()))
}

/// Places the constant registers after the variables and returns the result.
fn finish(l: L, mut code: Vec<Inst>, has_main: bool) -> Lowered {
    let nvars = l.max_reg.max(l.next_reg);
    let map = |r: Reg| {
        if r & CONST_BIT != 0 {
            nvars + (r & !CONST_BIT)
        } else {
            r
        }
    };
    map_regs(&mut code, &map);
    let consts = l
        .const_words
        .iter()
        .enumerate()
        .map(|(i, w)| (nvars + i as u32, *w))
        .collect();
    Lowered {
        code,
        nregs: nvars + l.const_words.len() as u32,
        consts,
        attributes: l.attributes,
        varyings: l.varyings,
        uniforms: l.uniforms,
        builtins: l.builtins,
        writes_position: l.writes_position,
        uses_frag_data: l.uses_frag_data,
        has_main,
    }
}

fn map_regs(code: &mut [Inst], m: &impl Fn(Reg) -> Reg) {
    for i in code {
        match i {
            Inst::U(_, d, a) => {
                *d = m(*d);
                *a = m(*a);
            }
            Inst::B(_, d, a, b) => {
                *d = m(*d);
                *a = m(*a);
                *b = m(*b);
            }
            Inst::Sel(d, c, a, b) => {
                *d = m(*d);
                *c = m(*c);
                *a = m(*a);
                *b = m(*b);
            }
            Inst::LoadU { dst, .. } => *dst = m(*dst),
            Inst::LoadUIdx { dst, idx, .. } => {
                *dst = m(*dst);
                *idx = m(*idx);
            }
            Inst::LoadIdx { dst, base, idx, .. } => {
                *dst = m(*dst);
                *base = m(*base);
                *idx = m(*idx);
            }
            Inst::StoreIdx { base, idx, src, .. } => {
                *base = m(*base);
                *idx = m(*idx);
                *src = m(*src);
            }
            Inst::Tex {
                dst,
                unit,
                coord,
                extra,
                ..
            } => {
                for d in dst.iter_mut() {
                    *d = m(*d);
                }
                *unit = m(*unit);
                for c in coord.iter_mut() {
                    *c = m(*c);
                }
                if let Some(e) = extra {
                    *e = m(*e);
                }
            }
            Inst::If { cond, then, els } => {
                *cond = m(*cond);
                map_regs(then, m);
                map_regs(els, m);
            }
            Inst::Loop { body, step } => {
                map_regs(body, m);
                map_regs(step, m);
            }
            Inst::Func(b) => map_regs(b, m),
            Inst::Break | Inst::Continue | Inst::Return | Inst::Discard => {}
        }
    }
}

const SWIZZLE_SETS: [&str; 3] = ["xyzw", "rgba", "stpq"];

impl L<'_> {
    // ---- diagnostics and emission -------------------------------------------------

    fn err<T>(&mut self, line: u32, tok: &str, msg: impl Into<String>) -> R<T> {
        if !self.emit {
            self.diags.error(line, tok, msg);
        } else if self.emit_error.is_none() {
            // Check mode accepted this code, so emit mode must too; keep the first
            // disagreement visible instead of silently dropping a statement.
            self.emit_error = Some((line, tok.to_string(), msg.into()));
        }
        Err(())
    }

    fn emit_inst(&mut self, i: Inst) {
        self.code_size += 1;
        if self.code_size > MAX_CODE {
            self.too_big = true;
            return;
        }
        if let Some(b) = self.blocks.last_mut() {
            b.push(i);
        }
    }

    fn fresh(&mut self, n: u32) -> Reg {
        let r = self.next_reg;
        self.next_reg = self.next_reg.saturating_add(n);
        if self.next_reg > MAX_REGS {
            self.too_big = true;
            self.next_reg = MAX_REGS;
        }
        self.max_reg = self.max_reg.max(self.next_reg);
        r
    }

    fn konst(&mut self, w: u32) -> Reg {
        if let Some(r) = self.consts.get(&w) {
            return *r;
        }
        let r = CONST_BIT | self.const_words.len() as u32;
        self.const_words.push(w);
        self.consts.insert(w, r);
        r
    }

    fn kf(&mut self, v: f32) -> Reg {
        self.konst(v.to_bits())
    }

    fn ki(&mut self, v: i32) -> Reg {
        self.konst(v as u32)
    }

    fn const_of(&self, r: Reg) -> Option<u32> {
        (r & CONST_BIT != 0).then(|| self.const_words[(r & !CONST_BIT) as usize])
    }

    fn u1(&mut self, op: Op1, a: Reg) -> Reg {
        if let Some(x) = self.const_of(a) {
            return self.konst(ir::eval1(op, x));
        }
        let d = self.fresh(1);
        self.emit_inst(Inst::U(op, d, a));
        d
    }

    fn b2(&mut self, op: Op2, a: Reg, b: Reg) -> Reg {
        if let (Some(x), Some(y)) = (self.const_of(a), self.const_of(b)) {
            return self.konst(ir::eval2(op, x, y));
        }
        let d = self.fresh(1);
        self.emit_inst(Inst::B(op, d, a, b));
        d
    }

    fn sel(&mut self, c: Reg, a: Reg, b: Reg) -> Reg {
        if let Some(x) = self.const_of(c) {
            return if x != 0 { a } else { b };
        }
        let d = self.fresh(1);
        self.emit_inst(Inst::Sel(d, c, a, b));
        d
    }

    fn mov(&mut self, d: Reg, s: Reg) {
        self.emit_inst(Inst::U(Op1::Mov, d, s));
    }

    fn is_const(&self, v: &Val) -> bool {
        v.regs.iter().all(|r| r & CONST_BIT != 0)
    }

    /// Lowers code into a separate block and returns it.
    fn block(&mut self, f: impl FnOnce(&mut Self)) -> Vec<Inst> {
        // The executor recurses on nested blocks; inlining can stack nestings, so the
        // total is bounded here, not only per function by the parser.
        self.nest += 1;
        if self.nest > MAX_NEST {
            self.too_big = true;
        }
        self.blocks.push(Vec::new());
        f(self);
        self.nest -= 1;
        self.blocks.pop().unwrap_or_default()
    }

    // ---- scopes and declarations -----------------------------------------------------

    fn lookup(&self, name: &str) -> Option<Rc<Var>> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.vars.get(name).cloned())
    }

    fn lookup_struct(&self, name: &str) -> Option<Arc<StructTy>> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.structs.get(name).cloned())
    }

    fn declare(&mut self, name: &str, line: u32, var: Var) {
        if name.starts_with("gl_") && !matches!(var.kind, VarKind::Builtin(_)) {
            let _ = self.err::<()>(line, name, "identifiers starting with \"gl_\" are reserved");
            return;
        }
        let scope = self.scopes.last_mut().expect("global scope");
        if scope.vars.contains_key(name) || scope.structs.contains_key(name) {
            let _ = self.err::<()>(line, name, "redefinition");
            return;
        }
        // A function parameter scope and the body share names in GLSL.
        scope.vars.insert(name.to_string(), Rc::new(var));
    }

    fn builtin_var(&mut self, name: &str, ty: Ty, kind: BuiltinVar, readonly: bool) -> Reg {
        let base = self.fresh(ty.slots());
        let comps = (0..ty.slots()).map(|i| Comp::R(base + i)).collect();
        let var = Var {
            ty,
            comps,
            kind: VarKind::Builtin(kind),
            readonly: readonly.then_some("can't modify an input"),
        };
        self.scopes[0].vars.insert(name.to_string(), Rc::new(var));
        base
    }

    fn builtin_const(&mut self, name: &str, v: i32) {
        let r = self.ki(v);
        self.scopes[0].vars.insert(
            name.to_string(),
            Rc::new(Var {
                ty: Ty::Int,
                comps: vec![Comp::R(r)],
                kind: VarKind::Local,
                readonly: Some("can't modify a const"),
            }),
        );
    }

    fn declare_builtins(&mut self) {
        use BuiltinVar::*;
        match self.stage {
            Stage::Vertex => {
                self.builtins.position =
                    self.builtin_var("gl_Position", Ty::Vec(4), Position, false);
                self.builtins.point_size =
                    self.builtin_var("gl_PointSize", Ty::Float, Other, false);
            }
            Stage::Fragment => {
                self.builtins.frag_coord =
                    self.builtin_var("gl_FragCoord", Ty::Vec(4), Other, true);
                self.builtins.front_facing =
                    self.builtin_var("gl_FrontFacing", Ty::Bool, Other, true);
                self.builtins.point_coord =
                    self.builtin_var("gl_PointCoord", Ty::Vec(2), Other, true);
                self.builtins.frag_color =
                    self.builtin_var("gl_FragColor", Ty::Vec(4), FragColor, false);
                self.builtins.frag_data = self.builtin_var(
                    "gl_FragData",
                    Ty::Array(Box::new(Ty::Vec(4)), 1),
                    FragData,
                    false,
                );
            }
        }
        for (n, v) in [
            ("gl_MaxVertexAttribs", crate::MAX_VERTEX_ATTRIBS),
            (
                "gl_MaxVertexUniformVectors",
                crate::MAX_VERTEX_UNIFORM_VECTORS,
            ),
            ("gl_MaxVaryingVectors", crate::MAX_VARYING_VECTORS),
            (
                "gl_MaxVertexTextureImageUnits",
                crate::MAX_TEXTURE_IMAGE_UNITS,
            ),
            (
                "gl_MaxCombinedTextureImageUnits",
                crate::MAX_TEXTURE_IMAGE_UNITS,
            ),
            ("gl_MaxTextureImageUnits", crate::MAX_TEXTURE_IMAGE_UNITS),
            (
                "gl_MaxFragmentUniformVectors",
                crate::MAX_FRAGMENT_UNIFORM_VECTORS,
            ),
            ("gl_MaxDrawBuffers", 1),
        ] {
            self.builtin_const(n, v as i32);
        }
        // Vertex shaders have default precisions for float and int; fragment shaders
        // have one for int only (§4.5.3).
        self.scopes[0].int_precision = true;
        self.scopes[0].float_precision = self.stage == Stage::Vertex;
        self.scopes.push(Scope::default());
    }

    fn float_precision_known(&self) -> bool {
        self.scopes.iter().any(|s| s.float_precision)
    }

    fn check_precision(&mut self, spec: &TypeSpec, ty: &Ty, line: u32, name: &str) {
        if spec.precision.is_none() && ty.has_float() && !self.float_precision_known() {
            let _ = self.err::<()>(
                line,
                name,
                format!("no precision specified for ({})", ty.name()),
            );
        }
    }

    /// Resolves a type specifier (declaring an inline struct).
    fn resolve_type(&mut self, spec: &TypeSpec) -> R<Ty> {
        Ok(match &spec.base {
            TypeBase::Basic(b) => match b {
                Basic::Void => Ty::Void,
                Basic::Float => Ty::Float,
                Basic::Int => Ty::Int,
                Basic::Bool => Ty::Bool,
                Basic::Vec(n) => Ty::Vec(*n),
                Basic::IVec(n) => Ty::IVec(*n),
                Basic::BVec(n) => Ty::BVec(*n),
                Basic::Mat(n) => Ty::Mat(*n),
                Basic::Sampler2D => Ty::Sampler(false),
                Basic::SamplerCube => Ty::Sampler(true),
            },
            TypeBase::Named(n) => match self.lookup_struct(n) {
                Some(s) => Ty::Struct(s),
                None => return self.err(spec.line, n, "undeclared type"),
            },
            TypeBase::Struct(def) => Ty::Struct(self.struct_def(def)?),
        })
    }

    fn struct_def(&mut self, def: &StructDef) -> R<Arc<StructTy>> {
        let mut fields: Vec<(String, Ty)> = Vec::new();
        for (spec, name, array, line) in &def.fields {
            if matches!(spec.base, TypeBase::Struct(_)) {
                return self.err(*line, name, "embedded struct definitions are not allowed");
            }
            let mut ty = self.resolve_type(spec)?;
            if ty == Ty::Void {
                return self.err(*line, name, "illegal use of type 'void'");
            }
            if ty.has_sampler() {
                return self.err(*line, name, "samplers can't be struct members");
            }
            if let Some(a) = array {
                let n = self.array_size(a)?;
                ty = Ty::Array(Box::new(ty), n);
                if self.too_large(&ty, *line).is_err() {
                    return Err(());
                }
            }
            if self.stage == Stage::Fragment {
                self.check_precision(spec, &ty, *line, name);
            }
            if fields.iter().any(|f| f.0 == *name) {
                return self.err(*line, name, "duplicate field name in structure");
            }
            fields.push((name.clone(), ty));
        }
        let depth = 1 + fields.iter().map(|f| struct_depth(&f.1)).max().unwrap_or(0);
        if depth > MAX_STRUCT_DEPTH {
            return self.err(def.line, "struct", "structures nested too deeply");
        }
        let st = Ty::Struct(Arc::new(StructTy {
            id: 0,
            name: String::new(),
            fields: fields.clone(),
            depth,
        }));
        self.too_large(&st, def.line)?;
        self.struct_ids += 1;
        let s = Arc::new(StructTy {
            depth,
            id: self.struct_ids,
            name: def
                .name
                .clone()
                .unwrap_or_else(|| format!("__anon{}", self.struct_ids)),
            fields,
        });
        if let Some(n) = &def.name {
            if n.starts_with("gl_") {
                return self.err(
                    def.line,
                    n,
                    "identifiers starting with \"gl_\" are reserved",
                );
            }
            let scope = self.scopes.last_mut().expect("scope");
            if scope.structs.contains_key(n) || scope.vars.contains_key(n) {
                return self.err(def.line, n, "redefinition");
            }
            scope.structs.insert(n.clone(), s.clone());
        }
        Ok(s)
    }

    /// Types are flattened into registers and uniform words; bound their size (and,
    /// for structs, their nesting, as type walks recurse).
    fn too_large(&mut self, t: &Ty, line: u32) -> R<()> {
        if t.slots() > MAX_TYPE_SLOTS {
            return self.err(line, "", "type too large");
        }
        Ok(())
    }

    fn array_size(&mut self, e: &Expr) -> R<u32> {
        let v = self.rv(e)?;
        if v.ty != Ty::Int || !self.is_const(&v) {
            return self.err(
                e.line,
                "",
                "array size must be a constant integer expression",
            );
        }
        let n = self.const_of(v.regs[0]).unwrap_or(0) as i32;
        if n <= 0 {
            return self.err(e.line, "", "array size must be a positive integer");
        }
        if n > 65536 {
            return self.err(e.line, "", "array size too large");
        }
        Ok(n as u32)
    }

    fn global_stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Decl(d) => self.decl(d, true),
            Stmt::Precision(..) | Stmt::Invariant(..) | Stmt::Empty => self.stmt(s),
            _ => {
                let _ = self.err::<()>(0, "", "syntax error");
            }
        }
    }

    fn decl(&mut self, d: &Decl, global: bool) {
        let Ok(base_ty) = self.resolve_type(&d.ty) else {
            return;
        };
        if d.vars.is_empty() {
            if !matches!(d.ty.base, TypeBase::Struct(_)) {
                let _ = self.err::<()>(d.line, "", "declaration does not declare anything");
            }
            return;
        }
        for v in &d.vars {
            let mut ty = base_ty.clone();
            if let Some(a) = &v.array {
                let Ok(n) = self.array_size(a) else { continue };
                if d.storage == Storage::Const {
                    let _ = self.err::<()>(v.line, &v.name, "arrays can't be const");
                    continue;
                }
                ty = Ty::Array(Box::new(ty), n);
                if self.too_large(&ty, v.line).is_err() {
                    continue;
                }
            }
            let _ = self.declarator(d, v, ty, global);
        }
    }

    fn declarator(&mut self, d: &Decl, v: &Declarator, ty: Ty, global: bool) -> R<()> {
        let line = v.line;
        let name = v.name.as_str();
        if ty == Ty::Void {
            return self.err(line, name, "illegal use of type 'void'");
        }
        if self.stage == Stage::Fragment && d.storage != Storage::Attribute {
            self.check_precision(&d.ty, &ty, line, name);
        }
        if ty.has_sampler() && d.storage != Storage::Uniform {
            return self.err(line, name, "samplers must be uniform");
        }
        if v.init.is_some()
            && matches!(
                d.storage,
                Storage::Attribute | Storage::Uniform | Storage::Varying
            )
        {
            return self.err(line, name, "cannot initialize this type of qualifier");
        }
        if v.array.is_some() && v.init.is_some() {
            return self.err(line, name, "arrays can't have initializers");
        }
        match d.storage {
            Storage::Attribute => {
                if self.stage != Stage::Vertex {
                    return self.err(
                        line,
                        "attribute",
                        "attributes are only allowed in vertex shaders",
                    );
                }
                if !matches!(ty, Ty::Float | Ty::Vec(_) | Ty::Mat(_)) {
                    return self.err(line, name, "attributes must be float, vec or mat");
                }
                let base = self.fresh(ty.slots());
                let idx = self.attributes.len();
                self.attributes.push(IfaceVar {
                    name: name.into(),
                    ty: ty.clone(),
                    base,
                    used: false,
                    line,
                });
                let comps = (0..ty.slots()).map(|i| Comp::R(base + i)).collect();
                self.declare(
                    name,
                    line,
                    Var {
                        ty,
                        comps,
                        kind: VarKind::Attribute(idx),
                        readonly: Some("can't modify an attribute"),
                    },
                );
            }
            Storage::Varying => {
                let elem = match &ty {
                    Ty::Array(e, _) => e.as_ref(),
                    t => t,
                };
                if !matches!(elem, Ty::Float | Ty::Vec(_) | Ty::Mat(_)) {
                    return self.err(
                        line,
                        name,
                        "varyings must be float, vec or mat (or arrays of them)",
                    );
                }
                let base = self.fresh(ty.slots());
                let idx = self.varyings.len();
                self.varyings.push(IfaceVar {
                    name: name.into(),
                    ty: ty.clone(),
                    base,
                    used: false,
                    line,
                });
                let comps = (0..ty.slots()).map(|i| Comp::R(base + i)).collect();
                let readonly = (self.stage == Stage::Fragment)
                    .then_some("can't modify a varying in a fragment shader");
                self.declare(
                    name,
                    line,
                    Var {
                        ty,
                        comps,
                        kind: VarKind::Varying(idx),
                        readonly,
                    },
                );
            }
            Storage::Uniform => {
                let idx = self.uniforms.len();
                if idx >= u16::MAX as usize {
                    return self.err(line, name, "too many uniforms");
                }
                let mut comps = Vec::new();
                uniform_comps(&ty, idx as u16, &mut 0, &mut comps);
                self.uniforms.push(UniVar {
                    name: name.into(),
                    ty: ty.clone(),
                    used: false,
                });
                self.declare(
                    name,
                    line,
                    Var {
                        ty,
                        comps,
                        kind: VarKind::Uniform(idx),
                        readonly: Some("can't modify a uniform"),
                    },
                );
            }
            Storage::Const => {
                let Some(init) = &v.init else {
                    return self.err(
                        line,
                        name,
                        "variables with qualifier 'const' must be initialized",
                    );
                };
                let val = self.rv(init)?;
                if val.ty != ty {
                    return self.err(
                        line,
                        "=",
                        format!("cannot convert from '{}' to '{}'", val.ty.name(), ty.name()),
                    );
                }
                if !self.is_const(&val) {
                    return self.err(line, "=", "assigning non-constant to 'const'");
                }
                let comps = val.regs.iter().map(|r| Comp::R(*r)).collect();
                self.declare(
                    name,
                    line,
                    Var {
                        ty,
                        comps,
                        kind: VarKind::Local,
                        readonly: Some("can't modify a const"),
                    },
                );
            }
            Storage::None => {
                let base = self.fresh(ty.slots());
                let comps: Vec<Comp> = (0..ty.slots()).map(|i| Comp::R(base + i)).collect();
                // The name is declared even when the initialiser is wrong, so later uses
                // don't cascade into "undeclared identifier" errors.
                let init = v
                    .init
                    .as_ref()
                    .map(|init| self.init_local(init, &ty, base, global, line));
                self.declare(
                    name,
                    line,
                    Var {
                        ty,
                        comps,
                        kind: VarKind::Local,
                        readonly: None,
                    },
                );
                if let Some(r) = init {
                    r?;
                }
            }
        }
        Ok(())
    }

    fn init_local(&mut self, init: &Expr, ty: &Ty, base: Reg, global: bool, line: u32) -> R<()> {
        let val = self.rv(init)?;
        if val.ty != *ty {
            return self.err(
                line,
                "=",
                format!("cannot convert from '{}' to '{}'", val.ty.name(), ty.name()),
            );
        }
        if global && !self.is_const(&val) {
            return self.err(
                line,
                "=",
                "global initializers must be constant expressions",
            );
        }
        for (i, r) in val.regs.iter().enumerate() {
            if global {
                self.global_init
                    .push(Inst::U(Op1::Mov, base + i as u32, *r));
            } else {
                self.mov(base + i as u32, *r);
            }
        }
        Ok(())
    }

    // ---- functions -------------------------------------------------------------------

    fn function(&mut self, f: Function) {
        let line = f.line;
        let Ok(ret) = self.resolve_type(&f.ret) else {
            return;
        };
        if ret.has_array() {
            let _ = self.err::<()>(line, &f.name, "functions can't return arrays");
            return;
        }
        if self.stage == Stage::Fragment && ret != Ty::Void {
            self.check_precision(&f.ret, &ret, line, &f.name);
        }
        let mut params = Vec::new();
        for p in &f.params {
            let Ok(mut t) = self.resolve_type(&p.ty) else {
                return;
            };
            if t == Ty::Void {
                let _ = self.err::<()>(line, "void", "illegal use of type 'void'");
                return;
            }
            if let Some(a) = &p.array {
                let Ok(n) = self.array_size(a) else { return };
                t = Ty::Array(Box::new(t), n);
                if self.too_large(&t, line).is_err() {
                    return;
                }
            }
            if self.stage == Stage::Fragment {
                self.check_precision(&p.ty, &t, line, p.name.as_deref().unwrap_or(""));
            }
            if t.has_sampler() && p.qual != ParamQual::In {
                let _ = self.err::<()>(line, "out", "samplers can't be out parameters");
                return;
            }
            params.push((p.qual, t));
        }
        if is_builtin_fn(&f.name) || f.name.starts_with("gl_") {
            let _ = self.err::<()>(
                line,
                &f.name,
                "can't redefine or overload a built-in function",
            );
            return;
        }
        if self.lookup(&f.name).is_some() || self.lookup_struct(&f.name).is_some() {
            let _ = self.err::<()>(line, &f.name, "redefinition");
            return;
        }
        let existing = self.by_name.get(&f.name).and_then(|v| {
            v.iter().copied().find(|&i| {
                self.sigs[i]
                    .params
                    .iter()
                    .map(|p| &p.1)
                    .eq(params.iter().map(|p| &p.1))
            })
        });
        let idx = match existing {
            Some(i) => {
                if self.sigs[i].ret != ret {
                    let _ = self.err::<()>(
                        line,
                        &f.name,
                        "function return type doesn't match its prototype",
                    );
                    return;
                }
                if self.sigs[i]
                    .params
                    .iter()
                    .map(|p| p.0)
                    .ne(params.iter().map(|p| p.0))
                {
                    let _ = self.err::<()>(
                        line,
                        &f.name,
                        "parameter qualifiers don't match the prototype",
                    );
                    return;
                }
                if f.body.is_some() && self.sigs[i].def.is_some() {
                    let _ = self.err::<()>(line, &f.name, "function already has a body");
                    return;
                }
                i
            }
            None => {
                self.sigs.push(Sig {
                    name: f.name.clone(),
                    params: params.clone(),
                    ret: ret.clone(),
                    def: None,
                    line,
                });
                let i = self.sigs.len() - 1;
                self.by_name.entry(f.name.clone()).or_default().push(i);
                i
            }
        };
        if f.body.is_none() {
            return;
        }
        let f = Rc::new(f);
        self.sigs[idx].def = Some(f.clone());
        self.sigs[idx].line = line;
        // Check mode: lower into scratch code, then reclaim the registers.
        let saved_reg = self.next_reg;
        self.current_fn = Some(idx);
        self.blocks.push(Vec::new());
        self.scopes.push(Scope::default());
        for (p, (q, t)) in f.params.iter().zip(&params) {
            let base = self.fresh(t.slots());
            if let Some(n) = &p.name {
                let readonly =
                    (p.is_const && *q == ParamQual::In).then_some("can't modify a const");
                let comps = (0..t.slots()).map(|i| Comp::R(base + i)).collect();
                self.declare(
                    n,
                    line,
                    Var {
                        ty: t.clone(),
                        comps,
                        kind: VarKind::Local,
                        readonly,
                    },
                );
            }
        }
        self.rets.push(RetCtx {
            ty: ret.clone(),
            regs: Vec::new(),
        });
        for s in f.body.as_deref().unwrap_or(&[]) {
            self.stmt(s);
        }
        self.rets.pop();
        self.scopes.pop();
        self.blocks.pop();
        self.current_fn = None;
        self.next_reg = saved_reg;
    }

    fn check_recursion(&mut self) {
        // Depth-first search for a cycle in the static call graph.
        let n = self.sigs.len();
        let mut state = vec![0u8; n];
        let mut reported = false;
        for start in 0..n {
            if state[start] != 0 || reported {
                continue;
            }
            let mut stack = vec![(
                start,
                self.calls
                    .get(&start)
                    .map(|s| s.iter().copied().collect::<Vec<_>>())
                    .unwrap_or_default(),
            )];
            state[start] = 1;
            while let Some((node, succ)) = stack.last_mut() {
                let node = *node;
                if let Some(next) = succ.pop() {
                    if state[next] == 1 {
                        let (line, name) = (self.sigs[next].line, self.sigs[next].name.clone());
                        self.diags
                            .error(line, &name, "recursive function calls are not allowed");
                        reported = true;
                        break;
                    }
                    if state[next] == 0 {
                        state[next] = 1;
                        let s = self
                            .calls
                            .get(&next)
                            .map(|s| s.iter().copied().collect())
                            .unwrap_or_default();
                        stack.push((next, s));
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn call_user(&mut self, name: &str, args: &[Expr], line: u32) -> R<Val> {
        // Arguments are evaluated once, in order; out arguments as places.
        let cands = self.by_name.get(name).cloned().unwrap_or_default();
        let mut vals = Vec::new();
        let mut types = Vec::new();
        for a in args {
            let p = self.place_of(a)?;
            types.push(p.ty.clone());
            vals.push(p);
        }
        let Some(idx) = cands
            .iter()
            .copied()
            .find(|&i| self.sigs[i].params.iter().map(|p| &p.1).eq(types.iter()))
        else {
            let tys: Vec<String> = types.iter().map(|t| t.name()).collect();
            return self.err(
                line,
                name,
                format!(
                    "no matching overloaded function found (arguments: {})",
                    tys.join(", ")
                ),
            );
        };
        let params = self.sigs[idx].params.clone();
        let ret = self.sigs[idx].ret.clone();
        for ((q, _), p) in params.iter().zip(&vals) {
            if *q != ParamQual::In {
                if let Some(why) = p.readonly {
                    return self.err(
                        line,
                        name,
                        format!("l-value required for an out parameter ({why})"),
                    );
                }
            }
        }
        if let Some(cur) = self.current_fn {
            self.calls.entry(cur).or_default().insert(idx);
        }
        // Copy the inputs into fresh parameter registers.
        let mut param_regs = Vec::new();
        for ((q, t), p) in params.iter().zip(&vals) {
            let base = self.fresh(t.slots());
            if *q != ParamQual::Out {
                let v = self.load(p);
                for (i, r) in v.regs.iter().enumerate() {
                    self.mov(base + i as u32, *r);
                }
            }
            param_regs.push(base);
        }
        let result = self.fresh(ret.slots());
        let result_regs: Vec<Reg> = (0..ret.slots()).map(|i| result + i).collect();
        if self.emit {
            if self.inline_stack.contains(&idx) || self.inline_stack.len() > 64 {
                self.too_big = true;
                return Err(());
            }
            let Some(def) = self.sigs[idx].def.clone() else {
                self.diags.error(line, name, "function has no body");
                return Err(());
            };
            self.inline_stack.push(idx);
            let saved = self.scopes.split_off(2);
            let saved_loops = std::mem::replace(&mut self.loops, 0);
            self.scopes.push(Scope::default());
            for (p, ((_, t), base)) in def.params.iter().zip(params.iter().zip(&param_regs)) {
                if let Some(n) = &p.name {
                    let comps = (0..t.slots()).map(|i| Comp::R(base + i)).collect();
                    self.scopes.last_mut().expect("scope").vars.insert(
                        n.clone(),
                        Rc::new(Var {
                            ty: t.clone(),
                            comps,
                            kind: VarKind::Local,
                            readonly: None,
                        }),
                    );
                }
            }
            self.rets.push(RetCtx {
                ty: ret.clone(),
                regs: result_regs.clone(),
            });
            let body = self.block(|l| {
                for s in def.body.as_deref().unwrap_or(&[]) {
                    l.stmt(s);
                }
            });
            self.emit_inst(Inst::Func(body));
            self.rets.pop();
            self.scopes.truncate(2);
            self.scopes.extend(saved);
            self.loops = saved_loops;
            self.inline_stack.pop();
        } else if self.sigs[idx].def.is_none()
            && !self.sigs.iter().any(|s| s.name == name && s.def.is_some())
        {
            // Reported at the end if still missing: definitions may follow.
        }
        // Copy out parameters back.
        for ((q, t), (p, base)) in params.iter().zip(vals.iter().zip(&param_regs)) {
            if *q != ParamQual::In {
                let v = Val {
                    ty: t.clone(),
                    regs: (0..t.slots()).map(|i| base + i).collect(),
                };
                self.store(p, &v);
            }
        }
        Ok(Val {
            ty: ret,
            regs: result_regs,
        })
    }

    // ---- statements ------------------------------------------------------------------

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Block(v) => {
                self.scopes.push(Scope::default());
                for s in v {
                    self.stmt(s);
                }
                self.scopes.pop();
            }
            Stmt::Decl(d) => self.decl(d, false),
            Stmt::Expr(e) => {
                let _ = self.rv(e);
            }
            Stmt::If(c, a, b) => {
                let Ok(cv) = self.cond(c) else { return };
                let then = self.block(|l| l.scoped(a));
                let els = self.block(|l| {
                    if let Some(b) = b {
                        l.scoped(b)
                    }
                });
                match self.const_of(cv) {
                    Some(x) => {
                        let code = if x != 0 { then } else { els };
                        for i in code {
                            self.emit_inst(i);
                        }
                    }
                    None => self.emit_inst(Inst::If {
                        cond: cv,
                        then,
                        els,
                    }),
                }
            }
            Stmt::For {
                init,
                cond,
                step,
                body,
                ..
            } => {
                self.scopes.push(Scope::default());
                if let Some(i) = init {
                    self.stmt(i);
                }
                self.lower_loop(cond.as_ref(), step.as_ref(), body, false);
                self.scopes.pop();
            }
            Stmt::While(c, body) => self.lower_loop(Some(c), None, body, false),
            Stmt::DoWhile(body, c) => self.lower_loop(Some(c), None, body, true),
            Stmt::Break(line) | Stmt::Continue(line) => {
                if self.loops == 0 {
                    let t = if matches!(s, Stmt::Break(_)) {
                        "break"
                    } else {
                        "continue"
                    };
                    let _ = self.err::<()>(*line, t, "statement only allowed in loops");
                    return;
                }
                self.emit_inst(if matches!(s, Stmt::Break(_)) {
                    Inst::Break
                } else {
                    Inst::Continue
                });
            }
            Stmt::Discard(line) => {
                if self.stage != Stage::Fragment {
                    let _ = self.err::<()>(*line, "discard", "only allowed in fragment shaders");
                    return;
                }
                self.emit_inst(Inst::Discard);
            }
            Stmt::Return(e, line) => {
                let Some(ret) = self.rets.last() else { return };
                let (ty, regs) = (ret.ty.clone(), ret.regs.clone());
                match e {
                    None if ty != Ty::Void => {
                        let _ = self.err::<()>(
                            *line,
                            "return",
                            "non-void function must return a value",
                        );
                        return;
                    }
                    None => {}
                    Some(e) => {
                        let Ok(v) = self.rv(e) else { return };
                        if v.ty != ty {
                            let _ = self.err::<()>(*line, "return", format!("function return is not matching type ('{}' returned, '{}' expected)", v.ty.name(), ty.name()));
                            return;
                        }
                        for (d, s) in regs.iter().zip(&v.regs) {
                            self.mov(*d, *s);
                        }
                    }
                }
                self.emit_inst(Inst::Return);
            }
            Stmt::Empty => {}
            Stmt::Precision(_, b, line) => match b {
                Basic::Float => self.scopes.last_mut().expect("scope").float_precision = true,
                Basic::Int => self.scopes.last_mut().expect("scope").int_precision = true,
                Basic::Sampler2D | Basic::SamplerCube => {}
                _ => {
                    let _ = self.err::<()>(
                        *line,
                        "precision",
                        "precision statements apply to float, int and sampler types only",
                    );
                }
            },
            Stmt::Invariant(names, line) => {
                for n in names {
                    let ok = match self.lookup(n) {
                        Some(v) => {
                            matches!(
                                v.kind,
                                VarKind::Varying(_) | VarKind::Builtin(BuiltinVar::Position)
                            ) || n == "gl_PointSize"
                                || (self.stage == Stage::Fragment
                                    && matches!(n.as_str(), "gl_FragCoord" | "gl_PointCoord"))
                        }
                        None => false,
                    };
                    if !ok {
                        let _ = self.err::<()>(
                            *line,
                            n,
                            "only output variables can be declared invariant",
                        );
                    }
                }
            }
        }
    }

    fn scoped(&mut self, s: &Stmt) {
        self.scopes.push(Scope::default());
        self.stmt(s);
        self.scopes.pop();
    }

    fn cond(&mut self, c: &Expr) -> R<Reg> {
        let v = self.rv(c)?;
        if v.ty != Ty::Bool {
            return self.err(
                c.line,
                "",
                format!("boolean expression expected, found '{}'", v.ty.name()),
            );
        }
        Ok(v.regs[0])
    }

    fn lower_loop(
        &mut self,
        cond: Option<&Expr>,
        step: Option<&Expr>,
        body: &Stmt,
        do_while: bool,
    ) {
        self.loops += 1;
        let test = |l: &mut Self| {
            if let Some(c) = cond {
                if let Ok(r) = l.cond(c) {
                    let nc = l.u1(Op1::Not, r);
                    match l.const_of(nc) {
                        Some(0) => {}
                        Some(_) => l.emit_inst(Inst::Break),
                        None => l.emit_inst(Inst::If {
                            cond: nc,
                            then: vec![Inst::Break],
                            els: vec![],
                        }),
                    }
                }
            }
        };
        let body_code = self.block(|l| {
            if !do_while {
                test(l);
            }
            l.scoped(body);
        });
        let step_code = self.block(|l| {
            if let Some(s) = step {
                let _ = l.rv(s);
            }
            if do_while {
                test(l);
            }
        });
        self.loops -= 1;
        self.emit_inst(Inst::Loop {
            body: body_code,
            step: step_code,
        });
    }

    // ---- places ----------------------------------------------------------------------

    fn var_place(&mut self, name: &str, line: u32) -> R<Place> {
        let Some(v) = self.lookup(name) else {
            if self.lookup_struct(name).is_some() {
                return self.err(line, name, "type name used as a variable");
            }
            return self.err(line, name, "undeclared identifier");
        };
        match v.kind {
            VarKind::Attribute(i) if self.emit => self.attributes[i].used = true,
            VarKind::Uniform(i) if self.emit => self.uniforms[i].used = true,
            VarKind::Varying(i) if self.emit || self.stage == Stage::Fragment => {
                self.varyings[i].used = true
            }
            VarKind::Builtin(BuiltinVar::FragData) => self.uses_frag_data = true,
            VarKind::Builtin(BuiltinVar::FragColor) => self.uses_frag_color = true,
            _ => {}
        }
        if self.uses_frag_data && self.uses_frag_color {
            self.uses_frag_color = false;
            return self.err(line, name, "can't use both gl_FragColor and gl_FragData");
        }
        Ok(Place {
            ty: v.ty.clone(),
            comps: v.comps.clone(),
            readonly: v.readonly,
            contiguous: true,
            kind: Some(v.kind),
        })
    }

    /// The place an expression designates; rvalues become read-only temporaries.
    fn place_of(&mut self, e: &Expr) -> R<Place> {
        match &e.kind {
            ExprKind::Ident(n) => self.var_place(n, e.line),
            ExprKind::Index(b, i) => {
                let p = self.place_of(b)?;
                self.index(p, i, e.line)
            }
            ExprKind::Field(b, f) => {
                let p = self.place_of(b)?;
                self.field(p, f, e.line)
            }
            _ => {
                let v = self.rv(e)?;
                Ok(Place {
                    ty: v.ty,
                    comps: v.regs.iter().map(|r| Comp::R(*r)).collect(),
                    readonly: Some("l-value required"),
                    contiguous: false,
                    kind: None,
                })
            }
        }
    }

    fn index(&mut self, mut p: Place, ie: &Expr, line: u32) -> R<Place> {
        let (elem, n) = match &p.ty {
            Ty::Array(e, n) => ((**e).clone(), *n),
            Ty::Vec(n) => (Ty::Float, *n as u32),
            Ty::IVec(n) => (Ty::Int, *n as u32),
            Ty::BVec(n) => (Ty::Bool, *n as u32),
            Ty::Mat(n) => (Ty::Vec(*n), *n as u32),
            t => {
                let t = t.name();
                return self.err(
                    line,
                    "[",
                    format!("left of '[' is not of type array, matrix, or vector (it is '{t}')"),
                );
            }
        };
        let iv = self.rv(ie)?;
        if iv.ty != Ty::Int {
            return self.err(line, "[", "integer expression required for an index");
        }
        let s = elem.slots();
        if let Some(k) = self.const_of(iv.regs[0]) {
            let k = k as i32;
            if k < 0 || k as u32 >= n {
                return self.err(line, "[", format!("index {k} out of range"));
            }
            let k = k as u32;
            p.comps = p.comps[(k * s) as usize..((k + 1) * s) as usize].to_vec();
            p.ty = elem;
            return Ok(p);
        }
        if !p.contiguous {
            // Materialise so the components form one register region.
            let v = self.load(&p);
            let base = self.fresh(v.regs.len() as u32);
            for (i, r) in v.regs.iter().enumerate() {
                self.mov(base + i as u32, *r);
            }
            p.comps = (0..v.regs.len() as u32)
                .map(|i| Comp::R(base + i))
                .collect();
        }
        let s_reg = self.ki(s as i32);
        let scaled = self.b2(Op2::IMul, iv.regs[0], s_reg);
        let mut comps = Vec::new();
        let region = p.comps.len() as u32;
        for j in 0..s {
            let jr = self.ki(j as i32);
            let c = match p.comps[0] {
                Comp::R(r0) => {
                    let off = self.b2(Op2::IAdd, scaled, jr);
                    Comp::Dyn {
                        base: r0,
                        len: region,
                        off,
                    }
                }
                Comp::Dyn { base, len, off } => {
                    let o = self.b2(Op2::IAdd, off, scaled);
                    let o = self.b2(Op2::IAdd, o, jr);
                    Comp::Dyn { base, len, off: o }
                }
                Comp::U { var, off, boolean } => {
                    let o = self.b2(Op2::IAdd, scaled, jr);
                    Comp::UDyn {
                        var,
                        base_off: off,
                        len: region,
                        off: o,
                        boolean,
                    }
                }
                Comp::UDyn {
                    var,
                    base_off,
                    len,
                    off,
                    boolean,
                } => {
                    let o = self.b2(Op2::IAdd, off, scaled);
                    let o = self.b2(Op2::IAdd, o, jr);
                    Comp::UDyn {
                        var,
                        base_off,
                        len,
                        off: o,
                        boolean,
                    }
                }
            };
            comps.push(c);
        }
        p.comps = comps;
        p.ty = elem;
        Ok(p)
    }

    fn field(&mut self, mut p: Place, f: &str, line: u32) -> R<Place> {
        if let Ty::Struct(s) = &p.ty {
            let mut off = 0u32;
            for (n, t) in &s.fields {
                if n == f {
                    p.comps = p.comps[off as usize..(off + t.slots()) as usize].to_vec();
                    p.ty = t.clone();
                    return Ok(p);
                }
                off += t.slots();
            }
            let sname = s.name.clone();
            return self.err(line, f, format!("no such field in structure '{sname}'"));
        }
        let (Some(sc), Some(n)) = (p.ty.sc(), p.ty.vec_len()) else {
            let t = p.ty.name();
            return self.err(
                line,
                f,
                format!("field selection requires a structure or vector on the left ('{t}')"),
            );
        };
        if n == 1 {
            return self.err(line, f, "scalars can't be swizzled");
        }
        let Some(set) = SWIZZLE_SETS
            .iter()
            .find(|s| f.chars().next().is_some_and(|c| s.contains(c)))
        else {
            return self.err(line, f, "illegal vector field selection");
        };
        let mut idx = Vec::new();
        for c in f.chars() {
            match set.find(c) {
                Some(i) if (i as u8) < n => idx.push(i),
                Some(_) => return self.err(line, f, "vector field selection out of range"),
                None => return self.err(line, f, "illegal vector field selection (mixed sets)"),
            }
        }
        if idx.len() > 4 {
            return self.err(
                line,
                f,
                "illegal vector field selection (too many components)",
            );
        }
        let dup = idx.iter().enumerate().any(|(i, a)| idx[..i].contains(a));
        if dup && p.readonly.is_none() {
            p.readonly = Some("l-value swizzle with repeated components");
        }
        p.contiguous = p.contiguous && idx.windows(2).all(|w| w[1] == w[0] + 1);
        p.comps = idx.iter().map(|i| p.comps[*i]).collect();
        p.ty = Ty::vector(sc, idx.len() as u8);
        Ok(p)
    }

    fn load(&mut self, p: &Place) -> Val {
        let mut regs = Vec::with_capacity(p.comps.len());
        for c in &p.comps {
            let r = match *c {
                Comp::R(r) => r,
                Comp::Dyn { base, len, off } => {
                    let d = self.fresh(1);
                    self.emit_inst(Inst::LoadIdx {
                        dst: d,
                        base,
                        len,
                        idx: off,
                    });
                    d
                }
                Comp::U { var, off, boolean } => {
                    let d = self.fresh(1);
                    self.emit_inst(Inst::LoadU {
                        dst: d,
                        var,
                        off,
                        boolean,
                    });
                    d
                }
                Comp::UDyn {
                    var,
                    base_off,
                    len,
                    off,
                    boolean,
                } => {
                    let d = self.fresh(1);
                    self.emit_inst(Inst::LoadUIdx {
                        dst: d,
                        var,
                        base_off,
                        len,
                        idx: off,
                        boolean,
                    });
                    d
                }
            };
            regs.push(r);
        }
        Val {
            ty: p.ty.clone(),
            regs,
        }
    }

    fn store(&mut self, p: &Place, v: &Val) {
        if p.kind == Some(VarKind::Builtin(BuiltinVar::Position)) && self.emit {
            self.writes_position = true;
        }
        // A swizzled self-assignment (`v.xy = v.yx`) must read before it writes.
        let dests: HashSet<Reg> = p
            .comps
            .iter()
            .filter_map(|c| if let Comp::R(r) = c { Some(*r) } else { None })
            .collect();
        let src: Vec<Reg> = if v.regs.iter().any(|r| dests.contains(r)) {
            v.regs
                .iter()
                .map(|r| {
                    let t = self.fresh(1);
                    self.mov(t, *r);
                    t
                })
                .collect()
        } else {
            v.regs.clone()
        };
        for (c, s) in p.comps.iter().zip(src) {
            match *c {
                Comp::R(r) => {
                    if r != s {
                        self.mov(r, s)
                    }
                }
                Comp::Dyn { base, len, off } => self.emit_inst(Inst::StoreIdx {
                    base,
                    len,
                    idx: off,
                    src: s,
                }),
                Comp::U { .. } | Comp::UDyn { .. } => {}
            }
        }
    }

    // ---- expressions -----------------------------------------------------------------

    fn rv(&mut self, e: &Expr) -> R<Val> {
        if self.too_big {
            // Stop walking (an exponential inlining would otherwise keep recursing).
            return Err(());
        }
        let line = e.line;
        match &e.kind {
            ExprKind::Int(v) => Ok(Val {
                ty: Ty::Int,
                regs: vec![self.ki(*v)],
            }),
            ExprKind::Float(v) => Ok(Val {
                ty: Ty::Float,
                regs: vec![self.kf(*v)],
            }),
            ExprKind::Bool(v) => Ok(Val {
                ty: Ty::Bool,
                regs: vec![self.konst(*v as u32)],
            }),
            ExprKind::Ident(_) | ExprKind::Index(..) | ExprKind::Field(..) => {
                let p = self.place_of(e)?;
                if p.ty.has_sampler() && !matches!(p.ty, Ty::Sampler(_)) {
                    return self.err(
                        line,
                        "",
                        "samplers can only be used as texture function arguments",
                    );
                }
                Ok(self.load(&p))
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, line),
            ExprKind::Assign(op, a, b) => self.assign(*op, a, b, line),
            ExprKind::Unary(op, a) => self.unary(*op, a, line),
            ExprKind::Ternary(c, a, b) => self.ternary(c, a, b, line),
            ExprKind::Construct(b, args) => {
                let ty = self.resolve_type(&TypeSpec {
                    base: TypeBase::Basic(*b),
                    precision: None,
                    line,
                })?;
                self.construct(ty, args, line)
            }
            ExprKind::Call(name, args) => {
                if let Some(s) = self.lookup_struct(name) {
                    return self.construct(Ty::Struct(s), args, line);
                }
                if self.by_name.contains_key(name.as_str()) {
                    return self.call_user(name, args, line);
                }
                if is_builtin_fn(name) {
                    let mut vals = Vec::new();
                    for a in args {
                        vals.push(self.rv(a)?);
                    }
                    return self.builtin(name, vals, line);
                }
                if self.lookup(name).is_some() {
                    return self.err(line, name, "not a function");
                }
                self.err(line, name, "no matching overloaded function found")
            }
        }
    }

    fn op_error<T>(&mut self, line: u32, op: &str, a: &Ty, b: &Ty) -> R<T> {
        self.err(
            line,
            op,
            format!(
                "wrong operand types: no operation '{op}' exists that takes a left-hand operand of type '{}' and a right operand of type '{}' (or there is no acceptable conversion)",
                a.name(),
                b.name()
            ),
        )
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, line: u32) -> R<Val> {
        let sym = match op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Xor => "^^",
            BinOp::Comma => ",",
        };
        if op == BinOp::Comma {
            self.rv(a)?;
            return self.rv(b);
        }
        if matches!(op, BinOp::And | BinOp::Or) && side_effects(b) {
            // Short-circuit: the right operand only runs where it decides the result.
            let x = self.rv(a)?;
            if x.ty != Ty::Bool {
                return self.op_error(line, sym, &x.ty, &Ty::Bool);
            }
            let res = self.fresh(1);
            self.mov(res, x.regs[0]);
            let run_when = if op == BinOp::And {
                x.regs[0]
            } else {
                self.u1(Op1::Not, x.regs[0])
            };
            let mut bad = None;
            let code = self.block(|l| match l.rv(b) {
                Ok(y) if y.ty == Ty::Bool => l.mov(res, y.regs[0]),
                Ok(y) => bad = Some(y.ty),
                Err(()) => bad = Some(Ty::Void),
            });
            if let Some(t) = bad {
                if t == Ty::Void {
                    return Err(());
                }
                return self.op_error(line, sym, &Ty::Bool, &t);
            }
            self.emit_inst(Inst::If {
                cond: run_when,
                then: code,
                els: vec![],
            });
            return Ok(Val {
                ty: Ty::Bool,
                regs: vec![res],
            });
        }
        let x = self.rv(a)?;
        let y = self.rv(b)?;
        self.binop_vals(op, sym, x, y, line)
    }

    fn binop_vals(&mut self, op: BinOp, sym: &str, x: Val, y: Val, line: u32) -> R<Val> {
        match op {
            BinOp::And | BinOp::Or | BinOp::Xor => {
                if x.ty != Ty::Bool || y.ty != Ty::Bool {
                    return self.op_error(line, sym, &x.ty, &y.ty);
                }
                let o = match op {
                    BinOp::And => Op2::And,
                    BinOp::Or => Op2::Or,
                    _ => Op2::Xor,
                };
                let r = self.b2(o, x.regs[0], y.regs[0]);
                Ok(Val {
                    ty: Ty::Bool,
                    regs: vec![r],
                })
            }
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let ok = x.ty == y.ty && matches!(x.ty, Ty::Float | Ty::Int);
                if !ok {
                    return self.op_error(line, sym, &x.ty, &y.ty);
                }
                let f = x.ty == Ty::Float;
                let (o, swap) = match op {
                    BinOp::Lt => (if f { Op2::FLt } else { Op2::ILt }, false),
                    BinOp::Le => (if f { Op2::FLe } else { Op2::ILe }, false),
                    BinOp::Gt => (if f { Op2::FLt } else { Op2::ILt }, true),
                    _ => (if f { Op2::FLe } else { Op2::ILe }, true),
                };
                let (p, q) = if swap {
                    (y.regs[0], x.regs[0])
                } else {
                    (x.regs[0], y.regs[0])
                };
                let r = self.b2(o, p, q);
                Ok(Val {
                    ty: Ty::Bool,
                    regs: vec![r],
                })
            }
            BinOp::Eq | BinOp::Ne => {
                if x.ty != y.ty || x.ty.has_sampler() || x.ty.has_array() || x.ty == Ty::Void {
                    return self.op_error(line, sym, &x.ty, &y.ty);
                }
                let kinds = leaf_kinds(&x.ty);
                let mut acc: Option<Reg> = None;
                for ((a, b), k) in x.regs.iter().zip(&y.regs).zip(kinds) {
                    let e = self.b2(if k == Sc::F { Op2::FEq } else { Op2::IEq }, *a, *b);
                    acc = Some(match acc {
                        None => e,
                        Some(p) => self.b2(Op2::And, p, e),
                    });
                }
                let mut r = acc.unwrap_or_else(|| self.konst(1));
                if op == BinOp::Ne {
                    r = self.u1(Op1::Not, r);
                }
                Ok(Val {
                    ty: Ty::Bool,
                    regs: vec![r],
                })
            }
            _ => self.arith(op, sym, x, y, line),
        }
    }

    fn arith(&mut self, op: BinOp, sym: &str, x: Val, y: Val, line: u32) -> R<Val> {
        let (Some(sa), Some(sb)) = (x.ty.sc(), y.ty.sc()) else {
            return self.op_error(line, sym, &x.ty, &y.ty);
        };
        if sa != sb || sa == Sc::B {
            return self.op_error(line, sym, &x.ty, &y.ty);
        }
        let f = sa == Sc::F;
        let o = match (op, f) {
            (BinOp::Add, true) => Op2::FAdd,
            (BinOp::Sub, true) => Op2::FSub,
            (BinOp::Mul, true) => Op2::FMul,
            (BinOp::Div, true) => Op2::FDiv,
            (BinOp::Add, false) => Op2::IAdd,
            (BinOp::Sub, false) => Op2::ISub,
            (BinOp::Mul, false) => Op2::IMul,
            _ => Op2::IDiv,
        };
        // Linear-algebra products.
        if op == BinOp::Mul {
            match (&x.ty, &y.ty) {
                (Ty::Mat(n), Ty::Mat(m)) if n == m => {
                    let n = *n as usize;
                    let mut regs = Vec::new();
                    for c in 0..n {
                        for r in 0..n {
                            let mut acc = None;
                            for k in 0..n {
                                let p = self.b2(Op2::FMul, x.regs[k * n + r], y.regs[c * n + k]);
                                acc = Some(match acc {
                                    None => p,
                                    Some(a) => self.b2(Op2::FAdd, a, p),
                                });
                            }
                            regs.push(acc.expect("n >= 2"));
                        }
                    }
                    return Ok(Val {
                        ty: x.ty.clone(),
                        regs,
                    });
                }
                (Ty::Mat(n), Ty::Vec(m)) if n == m => {
                    let n = *n as usize;
                    let mut regs = Vec::new();
                    for r in 0..n {
                        let mut acc = None;
                        for k in 0..n {
                            let p = self.b2(Op2::FMul, x.regs[k * n + r], y.regs[k]);
                            acc = Some(match acc {
                                None => p,
                                Some(a) => self.b2(Op2::FAdd, a, p),
                            });
                        }
                        regs.push(acc.expect("n >= 2"));
                    }
                    return Ok(Val {
                        ty: y.ty.clone(),
                        regs,
                    });
                }
                (Ty::Vec(m), Ty::Mat(n)) if n == m => {
                    let n = *n as usize;
                    let mut regs = Vec::new();
                    for c in 0..n {
                        let mut acc = None;
                        for k in 0..n {
                            let p = self.b2(Op2::FMul, x.regs[k], y.regs[c * n + k]);
                            acc = Some(match acc {
                                None => p,
                                Some(a) => self.b2(Op2::FAdd, a, p),
                            });
                        }
                        regs.push(acc.expect("n >= 2"));
                    }
                    return Ok(Val {
                        ty: x.ty.clone(),
                        regs,
                    });
                }
                _ => {}
            }
        }
        let xs = x.ty.is_scalar();
        let ys = y.ty.is_scalar();
        let ty = if x.ty == y.ty {
            x.ty.clone()
        } else if xs {
            y.ty.clone()
        } else if ys {
            x.ty.clone()
        } else {
            return self.op_error(line, sym, &x.ty, &y.ty);
        };
        let n = ty.slots() as usize;
        let regs = (0..n)
            .map(|i| {
                let a = if xs { x.regs[0] } else { x.regs[i] };
                let b = if ys { y.regs[0] } else { y.regs[i] };
                self.b2(o, a, b)
            })
            .collect();
        Ok(Val { ty, regs })
    }

    fn assign(&mut self, op: Option<BinOp>, a: &Expr, b: &Expr, line: u32) -> R<Val> {
        let p = self.place_of(a)?;
        let y = self.rv(b)?;
        if let Some(why) = p.readonly {
            return self.err(line, "assign", format!("l-value required ({why})"));
        }
        if matches!(p.ty, Ty::Array(..)) {
            return self.err(line, "assign", "arrays can't be assigned");
        }
        let v = match op {
            None => y,
            Some(o) => {
                let sym = match o {
                    BinOp::Add => "+=",
                    BinOp::Sub => "-=",
                    BinOp::Mul => "*=",
                    _ => "/=",
                };
                let x = self.load(&p);
                let r = self.arith(o, sym, x, y, line)?;
                if r.ty != p.ty {
                    let t = p.ty.clone();
                    return self.op_error(line, sym, &t, &r.ty);
                }
                r
            }
        };
        if v.ty != p.ty {
            return self.err(
                line,
                "=",
                format!("cannot convert from '{}' to '{}'", v.ty.name(), p.ty.name()),
            );
        }
        self.store(&p, &v);
        Ok(self.load(&p))
    }

    fn unary(&mut self, op: UnOp, a: &Expr, line: u32) -> R<Val> {
        match op {
            UnOp::Plus | UnOp::Neg => {
                let v = self.rv(a)?;
                let Some(sc) = v.ty.sc().filter(|s| *s != Sc::B) else {
                    return self.err(line, "-", format!("wrong operand type: no operation '-' exists that takes an operand of type '{}'", v.ty.name()));
                };
                if op == UnOp::Plus {
                    return Ok(v);
                }
                let o = if sc == Sc::F { Op1::FNeg } else { Op1::INeg };
                let regs = v.regs.iter().map(|r| self.u1(o, *r)).collect();
                Ok(Val { ty: v.ty, regs })
            }
            UnOp::Not => {
                let v = self.rv(a)?;
                if v.ty != Ty::Bool {
                    return self.err(line, "!", format!("wrong operand type: no operation '!' exists that takes an operand of type '{}'", v.ty.name()));
                }
                let r = self.u1(Op1::Not, v.regs[0]);
                Ok(Val {
                    ty: Ty::Bool,
                    regs: vec![r],
                })
            }
            _ => {
                let sym = if matches!(op, UnOp::PreInc | UnOp::PostInc) {
                    "++"
                } else {
                    "--"
                };
                let p = self.place_of(a)?;
                if let Some(why) = p.readonly {
                    return self.err(line, sym, format!("l-value required ({why})"));
                }
                let Some(sc) = p.ty.sc().filter(|s| *s != Sc::B) else {
                    return self.err(line, sym, format!("wrong operand type: no operation '{sym}' exists that takes an operand of type '{}'", p.ty.name()));
                };
                let old = self.load(&p);
                // The old value must survive the store for postfix forms.
                let old_copy: Vec<Reg> = old
                    .regs
                    .iter()
                    .map(|r| {
                        let t = self.fresh(1);
                        self.mov(t, *r);
                        t
                    })
                    .collect();
                let one = if sc == Sc::F {
                    self.kf(1.0)
                } else {
                    self.ki(1)
                };
                let o = match (sc == Sc::F, sym == "++") {
                    (true, true) => Op2::FAdd,
                    (true, false) => Op2::FSub,
                    (false, true) => Op2::IAdd,
                    (false, false) => Op2::ISub,
                };
                let regs = old_copy.iter().map(|r| self.b2(o, *r, one)).collect();
                let new = Val {
                    ty: p.ty.clone(),
                    regs,
                };
                self.store(&p, &new);
                if matches!(op, UnOp::PostInc | UnOp::PostDec) {
                    Ok(Val {
                        ty: p.ty.clone(),
                        regs: old_copy,
                    })
                } else {
                    Ok(new)
                }
            }
        }
    }

    fn ternary(&mut self, c: &Expr, a: &Expr, b: &Expr, line: u32) -> R<Val> {
        let cr = self.cond(c)?;
        if !side_effects(a) && !side_effects(b) {
            let x = self.rv(a)?;
            let y = self.rv(b)?;
            if x.ty != y.ty || x.ty.has_array() {
                return self.err(
                    line,
                    "?:",
                    format!(
                        "true and false expressions must have the same type ('{}' vs '{}')",
                        x.ty.name(),
                        y.ty.name()
                    ),
                );
            }
            let regs = x
                .regs
                .iter()
                .zip(&y.regs)
                .map(|(p, q)| self.sel(cr, *p, *q))
                .collect();
            return Ok(Val { ty: x.ty, regs });
        }
        let mut tys = (None, None);
        let mut res: Vec<Reg> = Vec::new();
        let then = self.block(|l| {
            if let Ok(x) = l.rv(a) {
                let base = l.fresh(x.regs.len() as u32);
                for (i, r) in x.regs.iter().enumerate() {
                    l.mov(base + i as u32, *r);
                }
                res = (0..x.regs.len() as u32).map(|i| base + i).collect();
                tys.0 = Some(x.ty);
            }
        });
        let mut res2 = res.clone();
        let els = self.block(|l| {
            if let Ok(y) = l.rv(b) {
                if res2.len() == y.regs.len() {
                    for (d, r) in res2.iter().zip(&y.regs) {
                        l.mov(*d, *r);
                    }
                } else {
                    res2.clear();
                }
                tys.1 = Some(y.ty);
            }
        });
        let (Some(tx), Some(ty)) = tys else {
            return Err(());
        };
        if tx != ty {
            return self.err(
                line,
                "?:",
                format!(
                    "true and false expressions must have the same type ('{}' vs '{}')",
                    tx.name(),
                    ty.name()
                ),
            );
        }
        match self.const_of(cr) {
            Some(x) => {
                for i in if x != 0 { then } else { els } {
                    self.emit_inst(i);
                }
            }
            None => self.emit_inst(Inst::If {
                cond: cr,
                then,
                els,
            }),
        }
        Ok(Val { ty: tx, regs: res })
    }

    // ---- constructors ----------------------------------------------------------------

    fn convert(&mut self, r: Reg, from: Sc, to: Sc) -> Reg {
        match (from, to) {
            (a, b) if a == b => r,
            (Sc::F, Sc::I) => self.u1(Op1::F2I, r),
            (Sc::F, Sc::B) => self.u1(Op1::F2B, r),
            (Sc::I, Sc::F) | (Sc::B, Sc::F) => self.u1(Op1::I2F, r),
            (Sc::I, Sc::B) => self.u1(Op1::I2B, r),
            _ => r, // bool to int: already 0/1
        }
    }

    fn construct(&mut self, ty: Ty, args: &[Expr], line: u32) -> R<Val> {
        let tname = ty.name();
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.rv(a)?);
        }
        if vals.is_empty() {
            return self.err(line, &tname, "constructor does not have any arguments");
        }
        if let Ty::Struct(s) = &ty {
            if vals.len() != s.fields.len() {
                return self.err(
                    line,
                    &tname,
                    "wrong number of arguments to structure constructor",
                );
            }
            let mut regs = Vec::new();
            for (v, (fname, ft)) in vals.iter().zip(&s.fields) {
                if v.ty != *ft {
                    return self.err(
                        line,
                        &tname,
                        format!(
                            "cannot convert '{}' to member '{fname}' of type '{}'",
                            v.ty.name(),
                            ft.name()
                        ),
                    );
                }
                regs.extend(&v.regs);
            }
            return Ok(Val { ty, regs });
        }
        let Some(tsc) = ty.sc() else {
            return self.err(line, &tname, "cannot construct this type");
        };
        for v in &vals {
            if v.ty.sc().is_none() {
                return self.err(
                    line,
                    &tname,
                    format!("cannot construct from '{}'", v.ty.name()),
                );
            }
        }
        let total = ty.slots() as usize;
        // matN(scalar): diagonal; matN(matM): overlap copied, identity elsewhere.
        if let Ty::Mat(n) = ty {
            let n = n as usize;
            if vals.len() == 1 && vals[0].ty.is_scalar() {
                let s = self.convert(vals[0].regs[0], vals[0].ty.sc().expect("checked"), Sc::F);
                let z = self.kf(0.0);
                let regs = (0..total)
                    .map(|i| if i % (n + 1) == 0 { s } else { z })
                    .collect();
                return Ok(Val { ty, regs });
            }
            if let (1, Ty::Mat(m)) = (vals.len(), &vals[0].ty) {
                let m = *m as usize;
                let (z, o) = (self.kf(0.0), self.kf(1.0));
                let mut regs = Vec::new();
                for c in 0..n {
                    for r in 0..n {
                        regs.push(if c < m && r < m {
                            vals[0].regs[c * m + r]
                        } else if c == r {
                            o
                        } else {
                            z
                        });
                    }
                }
                return Ok(Val { ty, regs });
            }
            if vals.iter().any(|v| matches!(v.ty, Ty::Mat(_))) {
                return self.err(
                    line,
                    &tname,
                    "cannot construct a matrix from a matrix and other arguments",
                );
            }
        }
        if vals.len() == 1 && vals[0].ty.is_scalar() {
            let s = self.convert(vals[0].regs[0], vals[0].ty.sc().expect("checked"), tsc);
            return Ok(Val {
                ty,
                regs: vec![s; total],
            });
        }
        let mut regs = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            if regs.len() >= total {
                return self.err(line, &tname, "too many arguments");
            }
            let _ = i;
            let from = v.ty.sc().expect("checked");
            for r in &v.regs {
                if regs.len() < total {
                    let c = self.convert(*r, from, tsc);
                    regs.push(c);
                }
            }
        }
        if regs.len() < total {
            return self.err(line, &tname, "not enough data provided for construction");
        }
        Ok(Val { ty, regs })
    }

    // ---- built-in functions ----------------------------------------------------------

    fn no_match<T>(&mut self, line: u32, name: &str, args: &[Val]) -> R<T> {
        let tys: Vec<String> = args.iter().map(|v| v.ty.name()).collect();
        self.err(
            line,
            name,
            format!(
                "no matching overloaded function found (arguments: {})",
                tys.join(", ")
            ),
        )
    }

    fn map1(&mut self, v: &Val, f: impl Fn(&mut Self, Reg) -> Reg) -> Val {
        let regs = v.regs.iter().map(|r| f(self, *r)).collect();
        Val {
            ty: v.ty.clone(),
            regs,
        }
    }

    fn dot(&mut self, a: &[Reg], b: &[Reg]) -> Reg {
        let mut acc = self.b2(Op2::FMul, a[0], b[0]);
        for i in 1..a.len() {
            let p = self.b2(Op2::FMul, a[i], b[i]);
            acc = self.b2(Op2::FAdd, acc, p);
        }
        acc
    }

    fn builtin(&mut self, name: &str, a: Vec<Val>, line: u32) -> R<Val> {
        let is_gen = |t: &Ty| matches!(t, Ty::Float | Ty::Vec(_));
        let n = a.len();
        // genType f(genType)
        let unary = match name {
            "sin" => Some(Op1::Sin),
            "cos" => Some(Op1::Cos),
            "tan" => Some(Op1::Tan),
            "asin" => Some(Op1::Asin),
            "acos" => Some(Op1::Acos),
            "atan" if n == 1 => Some(Op1::Atan),
            "exp" => Some(Op1::Exp),
            "log" => Some(Op1::Log),
            "exp2" => Some(Op1::Exp2),
            "log2" => Some(Op1::Log2),
            "sqrt" => Some(Op1::Sqrt),
            "inversesqrt" => Some(Op1::InvSqrt),
            "abs" => Some(Op1::FAbs),
            "sign" => Some(Op1::FSign),
            "floor" => Some(Op1::Floor),
            "ceil" => Some(Op1::Ceil),
            "fract" => Some(Op1::Fract),
            _ => None,
        };
        if let Some(op) = unary {
            if n != 1 || !is_gen(&a[0].ty) {
                return self.no_match(line, name, &a);
            }
            return Ok(self.map1(&a[0], |l, r| l.u1(op, r)));
        }
        match name {
            "radians" | "degrees" => {
                if n != 1 || !is_gen(&a[0].ty) {
                    return self.no_match(line, name, &a);
                }
                let k = if name == "radians" {
                    std::f32::consts::PI / 180.0
                } else {
                    180.0 / std::f32::consts::PI
                };
                let kr = self.kf(k);
                Ok(self.map1(&a[0], |l, r| l.b2(Op2::FMul, r, kr)))
            }
            "atan" | "pow" | "mod" | "min" | "max" | "step" => {
                if n != 2 || !is_gen(&a[0].ty) || !is_gen(&a[1].ty) {
                    return self.no_match(line, name, &a);
                }
                let op = match name {
                    "atan" => Op2::Atan2,
                    "pow" => Op2::Pow,
                    "mod" => Op2::FMod,
                    "min" => Op2::FMin,
                    "max" => Op2::FMax,
                    _ => Op2::Step,
                };
                // mod/min/max take (genType, float); step takes (float, genType).
                let ok = a[0].ty == a[1].ty
                    || (matches!(name, "mod" | "min" | "max") && a[1].ty == Ty::Float)
                    || (name == "step" && a[0].ty == Ty::Float);
                if !ok {
                    return self.no_match(line, name, &a);
                }
                let ty = if a[0].ty == Ty::Float {
                    a[1].ty.clone()
                } else {
                    a[0].ty.clone()
                };
                let regs = (0..ty.slots() as usize)
                    .map(|i| {
                        let x = a[0].regs[i.min(a[0].regs.len() - 1)];
                        let y = a[1].regs[i.min(a[1].regs.len() - 1)];
                        self.b2(op, x, y)
                    })
                    .collect();
                Ok(Val { ty, regs })
            }
            "clamp" | "mix" | "smoothstep" => {
                if n != 3 || !a.iter().all(|v| is_gen(&v.ty)) {
                    return self.no_match(line, name, &a);
                }
                let ok = match name {
                    "clamp" => {
                        a[0].ty == a[1].ty && a[1].ty == a[2].ty
                            || (a[1].ty == Ty::Float && a[2].ty == Ty::Float)
                    }
                    "mix" => a[0].ty == a[1].ty && (a[2].ty == a[0].ty || a[2].ty == Ty::Float),
                    _ => a[0].ty == a[1].ty && (a[1].ty == a[2].ty || a[0].ty == Ty::Float),
                };
                if !ok {
                    return self.no_match(line, name, &a);
                }
                let ty = if name == "smoothstep" {
                    a[2].ty.clone()
                } else {
                    a[0].ty.clone()
                };
                let pick = |v: &Val, i: usize| v.regs[i.min(v.regs.len() - 1)];
                let mut regs = Vec::new();
                for i in 0..ty.slots() as usize {
                    let (x, y, z) = (pick(&a[0], i), pick(&a[1], i), pick(&a[2], i));
                    let r = match name {
                        "clamp" => {
                            let t = self.b2(Op2::FMax, x, y);
                            self.b2(Op2::FMin, t, z)
                        }
                        "mix" => {
                            let d = self.b2(Op2::FSub, y, x);
                            let m = self.b2(Op2::FMul, d, z);
                            self.b2(Op2::FAdd, x, m)
                        }
                        _ => {
                            let (zero, one, two, three) =
                                (self.kf(0.0), self.kf(1.0), self.kf(2.0), self.kf(3.0));
                            let num = self.b2(Op2::FSub, z, x);
                            let den = self.b2(Op2::FSub, y, x);
                            let t = self.b2(Op2::FDiv, num, den);
                            let t = self.b2(Op2::FMax, t, zero);
                            let t = self.b2(Op2::FMin, t, one);
                            let tt = self.b2(Op2::FMul, t, t);
                            let t2 = self.b2(Op2::FMul, two, t);
                            let s = self.b2(Op2::FSub, three, t2);
                            self.b2(Op2::FMul, tt, s)
                        }
                    };
                    regs.push(r);
                }
                Ok(Val { ty, regs })
            }
            "length" => {
                if n != 1 || !is_gen(&a[0].ty) {
                    return self.no_match(line, name, &a);
                }
                let d = self.dot(&a[0].regs, &a[0].regs);
                Ok(Val {
                    ty: Ty::Float,
                    regs: vec![self.u1(Op1::Sqrt, d)],
                })
            }
            "distance" | "dot" => {
                if n != 2 || !is_gen(&a[0].ty) || a[0].ty != a[1].ty {
                    return self.no_match(line, name, &a);
                }
                if name == "dot" {
                    return Ok(Val {
                        ty: Ty::Float,
                        regs: vec![self.dot(&a[0].regs, &a[1].regs)],
                    });
                }
                let diff: Vec<Reg> = a[0]
                    .regs
                    .iter()
                    .zip(&a[1].regs)
                    .map(|(x, y)| self.b2(Op2::FSub, *x, *y))
                    .collect();
                let d = self.dot(&diff, &diff);
                Ok(Val {
                    ty: Ty::Float,
                    regs: vec![self.u1(Op1::Sqrt, d)],
                })
            }
            "cross" => {
                if n != 2 || a[0].ty != Ty::Vec(3) || a[1].ty != Ty::Vec(3) {
                    return self.no_match(line, name, &a);
                }
                let (x, y) = (&a[0].regs, &a[1].regs);
                let mut regs = Vec::new();
                for (i, j) in [(1, 2), (2, 0), (0, 1)] {
                    let p = self.b2(Op2::FMul, x[i], y[j]);
                    let q = self.b2(Op2::FMul, y[i], x[j]);
                    regs.push(self.b2(Op2::FSub, p, q));
                }
                Ok(Val {
                    ty: Ty::Vec(3),
                    regs,
                })
            }
            "normalize" => {
                if n != 1 || !is_gen(&a[0].ty) {
                    return self.no_match(line, name, &a);
                }
                let d = self.dot(&a[0].regs, &a[0].regs);
                let inv = self.u1(Op1::InvSqrt, d);
                Ok(self.map1(&a[0], |l, r| l.b2(Op2::FMul, r, inv)))
            }
            "faceforward" => {
                if n != 3 || !is_gen(&a[0].ty) || a[0].ty != a[1].ty || a[1].ty != a[2].ty {
                    return self.no_match(line, name, &a);
                }
                let d = self.dot(&a[2].regs, &a[1].regs);
                let z = self.kf(0.0);
                let c = self.b2(Op2::FLt, d, z);
                let regs = a[0]
                    .regs
                    .iter()
                    .map(|r| {
                        let neg = self.u1(Op1::FNeg, *r);
                        self.sel(c, *r, neg)
                    })
                    .collect();
                Ok(Val {
                    ty: a[0].ty.clone(),
                    regs,
                })
            }
            "reflect" => {
                if n != 2 || !is_gen(&a[0].ty) || a[0].ty != a[1].ty {
                    return self.no_match(line, name, &a);
                }
                let d = self.dot(&a[1].regs, &a[0].regs);
                let two = self.kf(2.0);
                let d2 = self.b2(Op2::FMul, two, d);
                let regs = a[0]
                    .regs
                    .iter()
                    .zip(&a[1].regs)
                    .map(|(i, nn)| {
                        let t = self.b2(Op2::FMul, d2, *nn);
                        self.b2(Op2::FSub, *i, t)
                    })
                    .collect();
                Ok(Val {
                    ty: a[0].ty.clone(),
                    regs,
                })
            }
            "refract" => {
                if n != 3 || !is_gen(&a[0].ty) || a[0].ty != a[1].ty || a[2].ty != Ty::Float {
                    return self.no_match(line, name, &a);
                }
                let eta = a[2].regs[0];
                let d = self.dot(&a[1].regs, &a[0].regs);
                let one = self.kf(1.0);
                let zero = self.kf(0.0);
                let dd = self.b2(Op2::FMul, d, d);
                let omd = self.b2(Op2::FSub, one, dd);
                let ee = self.b2(Op2::FMul, eta, eta);
                let t = self.b2(Op2::FMul, ee, omd);
                let k = self.b2(Op2::FSub, one, t);
                let neg = self.b2(Op2::FLt, k, zero);
                let sk = self.u1(Op1::Sqrt, k);
                let ed = self.b2(Op2::FMul, eta, d);
                let f = self.b2(Op2::FAdd, ed, sk);
                let regs = a[0]
                    .regs
                    .iter()
                    .zip(&a[1].regs)
                    .map(|(i, nn)| {
                        let p = self.b2(Op2::FMul, eta, *i);
                        let q = self.b2(Op2::FMul, f, *nn);
                        let r = self.b2(Op2::FSub, p, q);
                        self.sel(neg, zero, r)
                    })
                    .collect();
                Ok(Val {
                    ty: a[0].ty.clone(),
                    regs,
                })
            }
            "matrixCompMult" => {
                if n != 2 || !matches!(a[0].ty, Ty::Mat(_)) || a[0].ty != a[1].ty {
                    return self.no_match(line, name, &a);
                }
                let regs = a[0]
                    .regs
                    .iter()
                    .zip(&a[1].regs)
                    .map(|(x, y)| self.b2(Op2::FMul, *x, *y))
                    .collect();
                Ok(Val {
                    ty: a[0].ty.clone(),
                    regs,
                })
            }
            "lessThan" | "lessThanEqual" | "greaterThan" | "greaterThanEqual" | "equal"
            | "notEqual" => {
                let cmp_ok = |t: &Ty| match t {
                    Ty::Vec(_) | Ty::IVec(_) => true,
                    Ty::BVec(_) => matches!(name, "equal" | "notEqual"),
                    _ => false,
                };
                if n != 2 || a[0].ty != a[1].ty || !cmp_ok(&a[0].ty) {
                    return self.no_match(line, name, &a);
                }
                let f = a[0].ty.sc() == Some(Sc::F);
                let (op, swap, neg) = match name {
                    "lessThan" => (if f { Op2::FLt } else { Op2::ILt }, false, false),
                    "lessThanEqual" => (if f { Op2::FLe } else { Op2::ILe }, false, false),
                    "greaterThan" => (if f { Op2::FLt } else { Op2::ILt }, true, false),
                    "greaterThanEqual" => (if f { Op2::FLe } else { Op2::ILe }, true, false),
                    "equal" => (if f { Op2::FEq } else { Op2::IEq }, false, false),
                    _ => (if f { Op2::FNe } else { Op2::INe }, false, false),
                };
                let _ = neg;
                let regs = a[0]
                    .regs
                    .iter()
                    .zip(&a[1].regs)
                    .map(|(x, y)| {
                        if swap {
                            self.b2(op, *y, *x)
                        } else {
                            self.b2(op, *x, *y)
                        }
                    })
                    .collect();
                Ok(Val {
                    ty: Ty::BVec(a[0].regs.len() as u8),
                    regs,
                })
            }
            "any" | "all" | "not" => {
                if n != 1 || !matches!(a[0].ty, Ty::BVec(_)) {
                    return self.no_match(line, name, &a);
                }
                if name == "not" {
                    return Ok(self.map1(&a[0], |l, r| l.u1(Op1::Not, r)));
                }
                let op = if name == "any" { Op2::Or } else { Op2::And };
                let mut acc = a[0].regs[0];
                for r in &a[0].regs[1..] {
                    acc = self.b2(op, acc, *r);
                }
                Ok(Val {
                    ty: Ty::Bool,
                    regs: vec![acc],
                })
            }
            _ => self.texture(name, a, line),
        }
    }

    fn texture(&mut self, name: &str, a: Vec<Val>, line: u32) -> R<Val> {
        let n = a.len();
        let (cube, proj, lod) = match name {
            "texture2D" => (false, false, false),
            "texture2DProj" => (false, true, false),
            "texture2DLod" => (false, false, true),
            "texture2DProjLod" => (false, true, true),
            "textureCube" => (true, false, false),
            _ => (true, false, true),
        };
        if n < 2 || a[0].ty != Ty::Sampler(cube) {
            return self.no_match(line, name, &a);
        }
        let coord_ok = match (cube, proj) {
            (true, _) => a[1].ty == Ty::Vec(3),
            (false, false) => a[1].ty == Ty::Vec(2),
            (false, true) => matches!(a[1].ty, Ty::Vec(3) | Ty::Vec(4)),
        };
        if !coord_ok {
            return self.no_match(line, name, &a);
        }
        // Lod variants take the LOD; the others take an optional bias in fragment shaders.
        let extra_ok = if lod {
            n == 3 && a[2].ty == Ty::Float
        } else {
            n == 2 || (n == 3 && a[2].ty == Ty::Float && self.stage == Stage::Fragment)
        };
        if !extra_ok || n > 3 {
            return self.no_match(line, name, &a);
        }
        if lod && self.stage == Stage::Fragment {
            return self.err(
                line,
                name,
                "the Lod texture functions are only available in vertex shaders",
            );
        }
        let c = &a[1].regs;
        let coord = if proj {
            let q = *c.last().expect("vec3/vec4");
            let s = self.b2(Op2::FDiv, c[0], q);
            let t = self.b2(Op2::FDiv, c[1], q);
            [s, t, s]
        } else if cube {
            [c[0], c[1], c[2]]
        } else {
            [c[0], c[1], c[1]]
        };
        let dst = self.fresh(4);
        self.emit_inst(Inst::Tex {
            dst: [dst, dst + 1, dst + 2, dst + 3],
            cube,
            kind: if lod { TexKind::Lod } else { TexKind::Implicit },
            unit: a[0].regs[0],
            coord,
            extra: a.get(2).map(|v| v.regs[0]),
        });
        Ok(Val {
            ty: Ty::Vec(4),
            regs: (0..4).map(|i| dst + i).collect(),
        })
    }
}

fn struct_depth(t: &Ty) -> u32 {
    match t {
        Ty::Struct(s) => s.depth,
        Ty::Array(e, _) => struct_depth(e),
        _ => 0,
    }
}

/// Scalar kind of each slot of a type (struct equality compares floats as floats).
fn leaf_kinds(t: &Ty) -> Vec<Sc> {
    match t {
        Ty::Struct(s) => s.fields.iter().flat_map(|f| leaf_kinds(&f.1)).collect(),
        Ty::Array(e, n) => (0..*n).flat_map(|_| leaf_kinds(e)).collect(),
        t => vec![t.sc().unwrap_or(Sc::I); t.slots() as usize],
    }
}

/// Components of a uniform variable: word `off` onwards, one per slot.
fn uniform_comps(t: &Ty, var: u16, off: &mut u32, out: &mut Vec<Comp>) {
    match t {
        Ty::Struct(s) => {
            for f in &s.fields {
                uniform_comps(&f.1, var, off, out);
            }
        }
        Ty::Array(e, n) => {
            for _ in 0..*n {
                uniform_comps(e, var, off, out);
            }
        }
        t => {
            let boolean = t.sc() == Some(Sc::B);
            for _ in 0..t.slots() {
                out.push(Comp::U {
                    var,
                    off: *off,
                    boolean,
                });
                *off += 1;
            }
        }
    }
}

#[allow(dead_code)]
fn _unused(_: ast::Storage) {}
