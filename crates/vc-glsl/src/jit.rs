//! Native code for the IR through Cranelift: one function per stage that shades a
//! 2×2 quad with 4-lane SIMD (`I32X4`/`F32X4`) values.
//!
//! The generated code mirrors [`crate::exec`] step for step so results are
//! bit-identical: registers stay in the same register file in memory, every write is
//! blended under the active-lane mask, structured control flow uses the same mask
//! bookkeeping, and operations whose results would depend on a vector math library
//! (`sin`, `pow`, integer division, …) call back into the very functions the
//! interpreter uses. Blocks and loop iterations consume the same [`crate::Budget`]
//! steps as in the interpreter.
//!
//! This is the crate's only unsafe module: it calls generated code and the generated
//! code calls back through raw pointers.
#![allow(unsafe_code)]

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, I32, I32X4, I64};
use cranelift_codegen::ir::{
    AbiParam, Endianness, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

use crate::Textures;
use crate::exec::tex_lookup;
use crate::ir::{self, Inst, Op1, Op2, Reg, TexKind};

/// Programs larger than this stay interpreted (compile time grows with size).
const MAX_JIT_INSTS: usize = 50_000;

/// What the generated code reads and writes. Layout shared with the code generator.
#[repr(C)]
pub struct Ctx {
    /// Register file (`nregs + 1` entries; the last is scratch for call-backs).
    pub regs: *mut [u32; 4],
    /// Uniform storage, at least the program's storage length.
    pub uniforms: *const u32,
    /// Budget in and out.
    pub budget: u64,
    /// Discarded lanes out (bit per lane).
    pub discarded: u32,
    /// The [`Host`] for call-backs.
    pub host: *const Host<'static>,
}

const CTX_REGS: i32 = 0;
const CTX_UNIFORMS: i32 = 8;
const CTX_BUDGET: i32 = 16;
const CTX_DISCARDED: i32 = 24;

/// Call-back state.
pub struct Host<'a> {
    /// Texture sampler.
    pub textures: &'a dyn Textures,
    /// Fragment stage.
    pub fragment: bool,
    /// Register count (the register file length minus scratch).
    pub nregs: usize,
    /// Texture lookups of the program, indexed by the code.
    pub tex: &'a [TexDesc],
}

/// A texture instruction, for the call-back.
#[derive(Clone, Debug)]
pub struct TexDesc {
    dst: [Reg; 4],
    cube: bool,
    kind: TexKind,
    unit: Reg,
    coord: [Reg; 3],
    extra: Option<Reg>,
}

type EntryFn = unsafe extern "C" fn(*mut Ctx) -> u32;

/// A compiled stage.
pub struct Jit {
    module: Option<JITModule>,
    entry: EntryFn,
    tex: Vec<TexDesc>,
    nregs: usize,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("nregs", &self.nregs)
            .finish_non_exhaustive()
    }
}

// SAFETY: after `finalize_definitions` the module's code memory is immutable and only
// read (executed); nothing in `Jit` is mutated after construction, so sharing and
// sending it between threads is sound.
unsafe impl Send for Jit {}
// SAFETY: as above; concurrent calls only read the code and their own `Ctx`.
unsafe impl Sync for Jit {}

impl Drop for Jit {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `Jit` owns the only handle to the code; once it is dropped no
            // `entry` call can be running or start again.
            unsafe { m.free_memory() };
        }
    }
}

impl Jit {
    /// Runs the code on `regs` (`nregs + 1` long). Returns `false` if the budget ran out.
    pub fn run(
        &self,
        regs: &mut [[u32; 4]],
        uniforms: &[u32],
        textures: &dyn Textures,
        fragment: bool,
        budget: &mut u64,
    ) -> (bool, u8) {
        assert!(
            regs.len() > self.nregs,
            "register file includes the scratch register"
        );
        let host = Host {
            textures,
            fragment,
            nregs: self.nregs,
            tex: &self.tex,
        };
        let mut ctx = Ctx {
            regs: regs.as_mut_ptr(),
            uniforms: uniforms.as_ptr(),
            budget: *budget,
            discarded: 0,
            // The lifetime is erased for the FFI boundary; `host` outlives the call.
            host: (&host as *const Host<'_>).cast(),
        };
        // SAFETY: `entry` was generated for this register file size and uniform
        // storage length (the caller pads `uniforms`), reads and writes only
        // `regs[..=nregs]`, `uniforms[..len]` and `ctx`, and calls back only
        // `math_cb`/`tex_cb` with pointers into those.
        let status = unsafe { (self.entry)(&mut ctx) };
        *budget = ctx.budget;
        (status == 0, (ctx.discarded & 0xf) as u8)
    }
}

fn op1_code(op: Op1) -> u32 {
    op as u32
}

fn op2_code(op: Op2) -> u32 {
    0x100 | op as u32
}

const OP1S: [Op1; 25] = [
    Op1::Mov,
    Op1::FNeg,
    Op1::FAbs,
    Op1::FSign,
    Op1::Floor,
    Op1::Ceil,
    Op1::Fract,
    Op1::Sqrt,
    Op1::InvSqrt,
    Op1::Exp,
    Op1::Log,
    Op1::Exp2,
    Op1::Log2,
    Op1::Sin,
    Op1::Cos,
    Op1::Tan,
    Op1::Asin,
    Op1::Acos,
    Op1::Atan,
    Op1::INeg,
    Op1::Not,
    Op1::I2F,
    Op1::F2I,
    Op1::F2B,
    Op1::I2B,
];

const OP2S: [Op2; 25] = [
    Op2::FAdd,
    Op2::FSub,
    Op2::FMul,
    Op2::FDiv,
    Op2::FMod,
    Op2::FMin,
    Op2::FMax,
    Op2::Pow,
    Op2::Atan2,
    Op2::Step,
    Op2::FLt,
    Op2::FLe,
    Op2::FEq,
    Op2::FNe,
    Op2::IAdd,
    Op2::ISub,
    Op2::IMul,
    Op2::IDiv,
    Op2::ILt,
    Op2::ILe,
    Op2::IEq,
    Op2::INe,
    Op2::And,
    Op2::Or,
    Op2::Xor,
];

/// Lane-wise call-back for operations without an exact vector instruction.
extern "C" fn math_cb(op: u32, out: *mut [u32; 4], a: *const [u32; 4], b: *const [u32; 4]) {
    // SAFETY: the generated code passes pointers to registers of the live register
    // file (16-byte entries, possibly unaligned for u32x4 but aligned for u32).
    let (a, b) = unsafe { (*a, *b) };
    let r: [u32; 4] = if op & 0x100 == 0 {
        let o = OP1S[(op as usize).min(OP1S.len() - 1)];
        a.map(|x| ir::eval1(o, x))
    } else {
        let o = OP2S[((op & 0xff) as usize).min(OP2S.len() - 1)];
        std::array::from_fn(|l| ir::eval2(o, a[l], b[l]))
    };
    // SAFETY: `out` is the scratch register of the same register file.
    unsafe { *out = r };
}

/// Texture call-back: the same lookup the interpreter performs.
extern "C" fn tex_cb(ctx: *mut Ctx, index: u32, mask: u32) {
    // SAFETY: `ctx` is the live context of the running call; its `host` and `regs`
    // point at the `Host` and register file set up in `Jit::run`, valid for the call.
    let (host, regs) = unsafe {
        let c = &*ctx;
        let host = &*c.host;
        (host, std::slice::from_raw_parts_mut(c.regs, host.nregs + 1))
    };
    if let Some(d) = host.tex.get(index as usize) {
        tex_lookup(
            regs,
            host.textures,
            host.fragment,
            &d.dst,
            d.cube,
            d.kind,
            d.unit,
            &d.coord,
            d.extra,
            mask as u8,
        );
    }
}

/// Compiles a stage; `None` if the host is unsupported or the program too large.
pub fn compile(code: &[Inst], nregs: u32, ubase: &[u32]) -> Option<Jit> {
    if ir::count(code) > MAX_JIT_INSTS {
        return None;
    }
    let mut flags = settings::builder();
    flags.set("use_colocated_libcalls", "false").ok()?;
    flags.set("is_pic", "false").ok()?;
    flags.set("opt_level", "speed").ok()?;
    let isa = cranelift_native::builder()
        .ok()?
        .finish(settings::Flags::new(flags))
        .ok()?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let ptr = module.target_config().pointer_type();
    if ptr != I64 {
        return None;
    }
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I32));
    let id = module
        .declare_function("shade", Linkage::Local, &sig)
        .ok()?;
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let call_conv = module.target_config().default_call_conv;
    let mut fctx = FunctionBuilderContext::new();
    let mut tex = Vec::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let mut math_sig = Signature::new(call_conv);
        for _ in 0..4 {
            math_sig.params.push(AbiParam::new(I64));
        }
        let math_sig = b.import_signature(math_sig);
        let mut tex_sig = Signature::new(call_conv);
        for _ in 0..3 {
            tex_sig.params.push(AbiParam::new(I64));
        }
        let tex_sig = b.import_signature(tex_sig);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctxp = b.block_params(entry)[0];
        let fl = MemFlagsData::new().with_notrap();
        let regs = b.ins().load(I64, fl, ctxp, CTX_REGS);
        let uni = b.ins().load(I64, fl, ctxp, CTX_UNIFORMS);
        let budget = b.declare_var(I64);
        let b0 = b.ins().load(I64, fl, ctxp, CTX_BUDGET);
        b.def_var(budget, b0);
        let zero_s = b.ins().iconst(I32, 0);
        let zero = b.ins().splat(I32X4, zero_s);
        let ones_s = b.ins().iconst(I32, u32::MAX as i64);
        let ones = b.ins().splat(I32X4, ones_s);
        let mask = b.declare_var(I32X4);
        b.def_var(mask, ones);
        let discarded = b.declare_var(I32X4);
        b.def_var(discarded, zero);
        let ret0 = b.declare_var(I32X4);
        b.def_var(ret0, zero);
        let err = b.create_block();
        let mut g = Gen {
            b,
            regs,
            uni,
            ctxp,
            budget,
            mask,
            discarded,
            zero,
            err,
            loops: Vec::new(),
            rets: vec![ret0],
            ubase,
            scratch: nregs,
            math_sig,
            tex_sig,
            tex: &mut tex,
        };
        g.block(code);
        // Normal exit: budget and discard mask back to the context.
        let bud = g.b.use_var(g.budget);
        g.b.ins().store(fl, bud, g.ctxp, CTX_BUDGET);
        let d = g.b.use_var(g.discarded);
        let bits = g.b.ins().vhigh_bits(I32, d);
        g.b.ins().store(fl, bits, g.ctxp, CTX_DISCARDED);
        let ok = g.b.ins().iconst(I32, 0);
        g.b.ins().return_(&[ok]);
        // Budget exhausted.
        g.b.switch_to_block(g.err);
        let z = g.b.ins().iconst(I64, 0);
        g.b.ins().store(fl, z, g.ctxp, CTX_BUDGET);
        let one = g.b.ins().iconst(I32, 1);
        g.b.ins().return_(&[one]);
        g.b.seal_all_blocks();
        let cfg = module.target_config();
        g.b.finalize(cfg);
    }
    module.define_function(id, &mut ctx).ok()?;
    module.clear_context(&mut ctx);
    module.finalize_definitions().ok()?;
    let p = module.get_finalized_function(id);
    // SAFETY: `p` is the finalized code of a function with exactly this signature
    // (one pointer argument, an i32 result, the platform's default call convention).
    let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(p) };
    Some(Jit {
        module: Some(module),
        entry,
        tex,
        nregs: nregs as usize,
    })
}

struct Gen<'a, 'f> {
    b: FunctionBuilder<'f>,
    regs: Value,
    uni: Value,
    ctxp: Value,
    budget: Variable,
    mask: Variable,
    discarded: Variable,
    zero: Value,
    err: cranelift_codegen::ir::Block,
    /// Break masks of the enclosing loops.
    loops: Vec<Variable>,
    /// Return masks of the enclosing functions.
    rets: Vec<Variable>,
    ubase: &'a [u32],
    scratch: Reg,
    math_sig: cranelift_codegen::ir::SigRef,
    tex_sig: cranelift_codegen::ir::SigRef,
    tex: &'a mut Vec<TexDesc>,
}

fn fl() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Gen<'_, '_> {
    fn ld(&mut self, r: Reg) -> Value {
        self.b.ins().load(I32X4, fl(), self.regs, (r as i32) * 16)
    }

    fn ldf(&mut self, r: Reg) -> Value {
        self.b.ins().load(F32X4, fl(), self.regs, (r as i32) * 16)
    }

    fn as_ints(&mut self, v: Value) -> Value {
        self.b.ins().bitcast(I32X4, le(), v)
    }

    fn splat_i(&mut self, x: i32) -> Value {
        // Narrow immediates are given zero-extended.
        let s = self.b.ins().iconst(I32, x as u32 as i64);
        self.b.ins().splat(I32X4, s)
    }

    /// Blends `v` into register `d` under the active mask.
    fn write(&mut self, d: Reg, v: Value) {
        let old = self.ld(d);
        let m = self.b.use_var(self.mask);
        let n = self.b.ins().bitselect(m, v, old);
        self.b.ins().store(fl(), n, self.regs, (d as i32) * 16);
    }

    /// Lane mask (-1/0) to bool words (1/0).
    fn bool_words(&mut self, m: Value) -> Value {
        let one = self.splat_i(1);
        self.b.ins().band(m, one)
    }

    fn nonzero(&mut self, v: Value) -> Value {
        self.b.ins().icmp(IntCC::NotEqual, v, self.zero)
    }

    fn charge(&mut self, n: u64) {
        let bud = self.b.use_var(self.budget);
        let nv = self.b.ins().iconst(I64, n as i64);
        let short = self.b.ins().icmp(IntCC::UnsignedLessThan, bud, nv);
        let cont = self.b.create_block();
        self.b.ins().brif(short, self.err, &[], cont, &[]);
        self.b.switch_to_block(cont);
        let left = self.b.ins().isub(bud, nv);
        self.b.def_var(self.budget, left);
    }

    fn reg_addr(&mut self, r: Reg) -> Value {
        self.b.ins().iadd_imm_s(self.regs, (r as i64) * 16)
    }

    fn call_math(&mut self, code: u32, d: Reg, a: Reg, b: Reg) {
        let f = self
            .b
            .ins()
            .iconst(I64, math_cb as *const () as usize as i64);
        let op = self.b.ins().iconst(I64, code as i64);
        let out = self.reg_addr(self.scratch);
        let pa = self.reg_addr(a);
        let pb = self.reg_addr(b);
        self.b
            .ins()
            .call_indirect(self.math_sig, f, &[op, out, pa, pb]);
        let v = self.ld(self.scratch);
        self.write(d, v);
    }

    /// Runs `f` only when some lane of `m` is set (the interpreter skips such blocks).
    fn if_any(&mut self, m: Value, f: impl FnOnce(&mut Self)) {
        let any = self.b.ins().vany_true(m);
        let body = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(any, body, &[], join, &[]);
        self.b.switch_to_block(body);
        f(self);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
    }

    fn block(&mut self, code: &[Inst]) {
        self.charge(code.len() as u64);
        for inst in code {
            if !self.inst(inst) {
                // Everything after a break/continue/return/discard runs with no lanes.
                break;
            }
        }
    }

    fn clear_mask(&mut self) {
        self.b.def_var(self.mask, self.zero);
    }

    /// Emits one instruction; `false` when the rest of the block is unreachable.
    fn inst(&mut self, inst: &Inst) -> bool {
        match inst {
            Inst::U(op, d, a) => self.op1(*op, *d, *a),
            Inst::B(op, d, a, c) => self.op2(*op, *d, *a, *c),
            Inst::Sel(d, c, a, x) => {
                let cv = self.ld(*c);
                let cm = self.nonzero(cv);
                let (av, xv) = (self.ld(*a), self.ld(*x));
                let v = self.b.ins().bitselect(cm, av, xv);
                self.write(*d, v);
            }
            Inst::LoadU {
                dst,
                var,
                off,
                boolean,
            } => {
                let v = match self.ubase.get(*var as usize).copied() {
                    Some(base) if base != u32::MAX => {
                        let w = self
                            .b
                            .ins()
                            .load(I32, fl(), self.uni, ((base + off) * 4) as i32);
                        let w = if *boolean { self.bool_scalar(w) } else { w };
                        self.b.ins().splat(I32X4, w)
                    }
                    _ => self.zero,
                };
                self.write(*dst, v);
            }
            Inst::LoadUIdx {
                dst,
                var,
                base_off,
                len,
                idx,
                boolean,
            } => {
                let v = match self.ubase.get(*var as usize).copied() {
                    Some(base) if base != u32::MAX => {
                        let iv = self.ld(*idx);
                        let mut v = self.zero;
                        for l in 0..4u8 {
                            let i = self.clamped_lane(iv, l, *len);
                            let i = self.b.ins().imul_imm_s(i, 4);
                            let a = self.b.ins().iadd(self.uni, i);
                            let w = self
                                .b
                                .ins()
                                .load(I32, fl(), a, ((base + base_off) * 4) as i32);
                            let w = if *boolean { self.bool_scalar(w) } else { w };
                            v = self.b.ins().insertlane(v, w, l);
                        }
                        v
                    }
                    _ => self.zero,
                };
                self.write(*dst, v);
            }
            Inst::LoadIdx {
                dst,
                base,
                len,
                idx,
            } => {
                let iv = self.ld(*idx);
                let mut v = self.zero;
                for l in 0..4u8 {
                    let i = self.clamped_lane(iv, l, *len);
                    let i = self.b.ins().imul_imm_s(i, 16);
                    let a = self.b.ins().iadd(self.regs, i);
                    let w = self
                        .b
                        .ins()
                        .load(I32, fl(), a, (*base as i32) * 16 + l as i32 * 4);
                    v = self.b.ins().insertlane(v, w, l);
                }
                self.write(*dst, v);
            }
            Inst::StoreIdx {
                base,
                len,
                idx,
                src,
            } => {
                let iv = self.ld(*idx);
                let sv = self.ld(*src);
                let m = self.b.use_var(self.mask);
                for l in 0..4u8 {
                    let i = self.clamped_lane(iv, l, *len);
                    let i = self.b.ins().imul_imm_s(i, 16);
                    let a = self.b.ins().iadd(self.regs, i);
                    let off = (*base as i32) * 16 + l as i32 * 4;
                    let old = self.b.ins().load(I32, fl(), a, off);
                    let s = self.b.ins().extractlane(sv, l);
                    let ml = self.b.ins().extractlane(m, l);
                    let n = self.b.ins().select(ml, s, old);
                    self.b.ins().store(fl(), n, a, off);
                }
            }
            Inst::Tex {
                dst,
                cube,
                kind,
                unit,
                coord,
                extra,
            } => {
                let index = self.tex.len();
                self.tex.push(TexDesc {
                    dst: *dst,
                    cube: *cube,
                    kind: *kind,
                    unit: *unit,
                    coord: *coord,
                    extra: *extra,
                });
                let f = self
                    .b
                    .ins()
                    .iconst(I64, tex_cb as *const () as usize as i64);
                let i = self.b.ins().iconst(I64, index as i64);
                let m = self.b.use_var(self.mask);
                let bits = self.b.ins().vhigh_bits(I32, m);
                let bits = self.b.ins().uextend(I64, bits);
                self.b
                    .ins()
                    .call_indirect(self.tex_sig, f, &[self.ctxp, i, bits]);
            }
            Inst::If { cond, then, els } => {
                let c = self.ld(*cond);
                let cm = self.nonzero(c);
                let m = self.b.use_var(self.mask);
                let mt = self.b.ins().band(m, cm);
                let me = self.b.ins().band_not(m, cm);
                let out_t = self.b.declare_var(I32X4);
                self.b.def_var(out_t, self.zero);
                self.if_any(mt, |g| {
                    g.b.def_var(g.mask, mt);
                    g.block(then);
                    let r = g.b.use_var(g.mask);
                    g.b.def_var(out_t, r);
                });
                let out_e = self.b.declare_var(I32X4);
                self.b.def_var(out_e, me);
                if !els.is_empty() {
                    self.b.def_var(out_e, self.zero);
                    self.if_any(me, |g| {
                        g.b.def_var(g.mask, me);
                        g.block(els);
                        let r = g.b.use_var(g.mask);
                        g.b.def_var(out_e, r);
                    });
                }
                let (t, e) = (self.b.use_var(out_t), self.b.use_var(out_e));
                let m = self.b.ins().bor(t, e);
                self.b.def_var(self.mask, m);
            }
            Inst::Loop { body, step } => {
                // The interpreter skips instructions once no lane is active; a loop
                // or function entered with none would spend budget it does not.
                let m = self.b.use_var(self.mask);
                self.if_any(m, |g| g.emit_loop(body, step));
            }
            Inst::Break => {
                let brk = *self.loops.last().expect("break inside a loop");
                let (b0, m) = (self.b.use_var(brk), self.b.use_var(self.mask));
                let n = self.b.ins().bor(b0, m);
                self.b.def_var(brk, n);
                self.clear_mask();
                return false;
            }
            Inst::Continue => {
                self.clear_mask();
                return false;
            }
            Inst::Return => {
                let r = *self.rets.last().expect("function scope");
                let (r0, m) = (self.b.use_var(r), self.b.use_var(self.mask));
                let n = self.b.ins().bor(r0, m);
                self.b.def_var(r, n);
                self.clear_mask();
                return false;
            }
            Inst::Discard => {
                let (d0, m) = (self.b.use_var(self.discarded), self.b.use_var(self.mask));
                let n = self.b.ins().bor(d0, m);
                self.b.def_var(self.discarded, n);
                self.clear_mask();
                return false;
            }
            Inst::Func(body) => {
                let entry = self.b.use_var(self.mask);
                self.if_any(entry, |g| {
                    let r = g.b.declare_var(I32X4);
                    g.b.def_var(r, g.zero);
                    g.rets.push(r);
                    g.block(body);
                    g.rets.pop();
                    let d = g.b.use_var(g.discarded);
                    let m = g.b.ins().band_not(entry, d);
                    g.b.def_var(g.mask, m);
                });
            }
        }
        true
    }

    fn emit_loop(&mut self, body: &[Inst], step: &[Inst]) {
        let entry = self.b.use_var(self.mask);
        let brk = self.b.declare_var(I32X4);
        self.b.def_var(brk, self.zero);
        let m_var = self.b.declare_var(I32X4);
        self.b.def_var(m_var, entry);
        let header = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        self.loops.push(brk);
        self.charge(1);
        let m = self.b.use_var(m_var);
        self.b.def_var(self.mask, m);
        self.block(body);
        // Lanes that broke, returned or were discarded leave; `continue` lanes stay.
        let m = self.b.use_var(m_var);
        let bk = self.b.use_var(brk);
        let m = self.b.ins().band_not(m, bk);
        let rt = self.b.use_var(*self.rets.last().expect("function scope"));
        let m = self.b.ins().band_not(m, rt);
        let d = self.b.use_var(self.discarded);
        let m = self.b.ins().band_not(m, d);
        self.b.def_var(m_var, m);
        let any = self.b.ins().vany_true(m);
        let cont = self.b.create_block();
        self.b.ins().brif(any, cont, &[], exit, &[]);
        self.b.switch_to_block(cont);
        if !step.is_empty() {
            self.b.def_var(self.mask, m);
            self.block(step);
            let m = self.b.use_var(m_var);
            let bk = self.b.use_var(brk);
            let m = self.b.ins().band_not(m, bk);
            self.b.def_var(m_var, m);
            let any = self.b.ins().vany_true(m);
            self.b.ins().brif(any, header, &[], exit, &[]);
        } else {
            self.b.ins().jump(header, &[]);
        }
        self.loops.pop();
        self.b.switch_to_block(exit);
        let rt = self.b.use_var(*self.rets.last().expect("function scope"));
        let m = self.b.ins().band_not(entry, rt);
        let d = self.b.use_var(self.discarded);
        let m = self.b.ins().band_not(m, d);
        self.b.def_var(self.mask, m);
    }

    fn bool_scalar(&mut self, w: Value) -> Value {
        let c = self.b.ins().icmp_imm_s(IntCC::NotEqual, w, 0);
        self.b.ins().uextend(I32, c)
    }

    /// Lane `l` of an index vector clamped to `0..len`, as a 64-bit value.
    fn clamped_lane(&mut self, iv: Value, l: u8, len: u32) -> Value {
        let i = self.b.ins().extractlane(iv, l);
        let lo = self.b.ins().iconst(I32, 0);
        let hi = self.b.ins().iconst(I32, len.saturating_sub(1) as i64);
        let i = self.b.ins().smax(i, lo);
        let i = self.b.ins().smin(i, hi);
        self.b.ins().sextend(I64, i)
    }

    fn fconst(&mut self, x: f32) -> Value {
        self.splat_i(x.to_bits() as i32)
    }

    fn op1(&mut self, op: Op1, d: Reg, a: Reg) {
        let v = match op {
            Op1::Mov => self.ld(a),
            Op1::FNeg
            | Op1::FAbs
            | Op1::Floor
            | Op1::Ceil
            | Op1::Fract
            | Op1::Sqrt
            | Op1::InvSqrt => {
                let x = self.ldf(a);
                let r = match op {
                    Op1::FNeg => self.b.ins().fneg(x),
                    Op1::FAbs => self.b.ins().fabs(x),
                    Op1::Floor => self.b.ins().floor(x),
                    Op1::Ceil => self.b.ins().ceil(x),
                    Op1::Fract => {
                        let f = self.b.ins().floor(x);
                        self.b.ins().fsub(x, f)
                    }
                    Op1::Sqrt => self.b.ins().sqrt(x),
                    _ => {
                        let s = self.b.ins().sqrt(x);
                        let one = self.fconst(1.0);
                        let one = self.b.ins().bitcast(F32X4, le(), one);
                        self.b.ins().fdiv(one, s)
                    }
                };
                self.as_ints(r)
            }
            Op1::FSign => {
                let x = self.ldf(a);
                let zf = self.b.ins().bitcast(F32X4, le(), self.zero);
                let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zf);
                let lt = self.b.ins().fcmp(FloatCC::LessThan, x, zf);
                let (p, n) = (self.fconst(1.0), self.fconst(-1.0));
                let neg = self.b.ins().bitselect(lt, n, self.zero);
                self.b.ins().bitselect(gt, p, neg)
            }
            Op1::INeg => {
                let x = self.ld(a);
                self.b.ins().ineg(x)
            }
            Op1::Not => {
                let x = self.ld(a);
                let z = self.b.ins().icmp(IntCC::Equal, x, self.zero);
                self.bool_words(z)
            }
            Op1::I2F => {
                let x = self.ld(a);
                let f = self.b.ins().fcvt_from_sint(F32X4, x);
                self.as_ints(f)
            }
            Op1::F2I => {
                let x = self.ldf(a);
                self.b.ins().fcvt_to_sint_sat(I32X4, x)
            }
            Op1::F2B => {
                let x = self.ldf(a);
                let zf = self.b.ins().bitcast(F32X4, le(), self.zero);
                let c = self.b.ins().fcmp(FloatCC::NotEqual, x, zf);
                self.bool_words(c)
            }
            Op1::I2B => {
                let x = self.ld(a);
                let c = self.nonzero(x);
                self.bool_words(c)
            }
            _ => {
                self.call_math(op1_code(op), d, a, a);
                return;
            }
        };
        self.write(d, v);
    }

    fn op2(&mut self, op: Op2, d: Reg, a: Reg, c: Reg) {
        let v = match op {
            Op2::FAdd | Op2::FSub | Op2::FMul | Op2::FDiv | Op2::FMod => {
                let (x, y) = (self.ldf(a), self.ldf(c));
                let r = match op {
                    Op2::FAdd => self.b.ins().fadd(x, y),
                    Op2::FSub => self.b.ins().fsub(x, y),
                    Op2::FMul => self.b.ins().fmul(x, y),
                    Op2::FDiv => self.b.ins().fdiv(x, y),
                    _ => {
                        let q = self.b.ins().fdiv(x, y);
                        let f = self.b.ins().floor(q);
                        let p = self.b.ins().fmul(y, f);
                        self.b.ins().fsub(x, p)
                    }
                };
                self.as_ints(r)
            }
            Op2::FMin | Op2::FMax | Op2::Step => {
                let (x, y) = (self.ldf(a), self.ldf(c));
                let (xi, yi) = (self.ld(a), self.ld(c));
                match op {
                    Op2::FMin => {
                        let lt = self.b.ins().fcmp(FloatCC::LessThan, y, x);
                        self.b.ins().bitselect(lt, yi, xi)
                    }
                    Op2::FMax => {
                        let lt = self.b.ins().fcmp(FloatCC::LessThan, x, y);
                        self.b.ins().bitselect(lt, yi, xi)
                    }
                    _ => {
                        let lt = self.b.ins().fcmp(FloatCC::LessThan, y, x);
                        let one = self.fconst(1.0);
                        self.b.ins().bitselect(lt, self.zero, one)
                    }
                }
            }
            Op2::FLt | Op2::FLe | Op2::FEq | Op2::FNe => {
                let (x, y) = (self.ldf(a), self.ldf(c));
                let cc = match op {
                    Op2::FLt => FloatCC::LessThan,
                    Op2::FLe => FloatCC::LessThanOrEqual,
                    Op2::FEq => FloatCC::Equal,
                    _ => FloatCC::NotEqual,
                };
                let m = self.b.ins().fcmp(cc, x, y);
                self.bool_words(m)
            }
            Op2::IAdd | Op2::ISub | Op2::IMul => {
                let (x, y) = (self.ld(a), self.ld(c));
                match op {
                    Op2::IAdd => self.b.ins().iadd(x, y),
                    Op2::ISub => self.b.ins().isub(x, y),
                    _ => self.b.ins().imul(x, y),
                }
            }
            Op2::ILt | Op2::ILe | Op2::IEq | Op2::INe => {
                let (x, y) = (self.ld(a), self.ld(c));
                let cc = match op {
                    Op2::ILt => IntCC::SignedLessThan,
                    Op2::ILe => IntCC::SignedLessThanOrEqual,
                    Op2::IEq => IntCC::Equal,
                    _ => IntCC::NotEqual,
                };
                let m = self.b.ins().icmp(cc, x, y);
                self.bool_words(m)
            }
            Op2::And | Op2::Or | Op2::Xor => {
                let (x, y) = (self.ld(a), self.ld(c));
                let (p, q) = (self.nonzero(x), self.nonzero(y));
                let m = match op {
                    Op2::And => self.b.ins().band(p, q),
                    Op2::Or => self.b.ins().bor(p, q),
                    _ => self.b.ins().bxor(p, q),
                };
                self.bool_words(m)
            }
            Op2::Pow | Op2::Atan2 | Op2::IDiv => {
                self.call_math(op2_code(op), d, a, c);
                return;
            }
        };
        self.write(d, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_back_tables_follow_the_enum_order() {
        for (i, op) in OP1S.iter().enumerate() {
            assert_eq!(op1_code(*op), i as u32);
        }
        for (i, op) in OP2S.iter().enumerate() {
            assert_eq!(op2_code(*op), 0x100 | i as u32);
        }
    }
}
