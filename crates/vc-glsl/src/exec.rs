//! The IR interpreter: runs structured code on a 2×2 quad with an active-lane mask.
//!
//! Divergence is handled as on SIMD hardware: both sides of an `If` run, each under
//! its own mask; a loop repeats while any lane is still in it. `Break`, `Continue`,
//! `Return` and `Discard` clear lanes from the current mask and record them where
//! the enclosing construct will look (loop break mask, function return mask, the
//! discard mask), so lanes rejoin exactly where GLSL says they continue.

use crate::ir::{self, Inst, Reg, TexKind};
use crate::{Budget, ExecError, Textures};

/// Execution state of one invocation (a quad, or a vertex in lane 0).
pub struct Exec<'a> {
    /// Register file, one word per lane.
    pub regs: &'a mut [[u32; 4]],
    /// Uniform storage.
    pub uniforms: &'a [u32],
    /// Storage word of each uniform variable of this stage.
    pub ubase: &'a [u32],
    /// Texture sampler.
    pub textures: &'a dyn Textures,
    /// Step budget.
    pub budget: &'a mut Budget,
    /// Fragment stage (implicit LOD from the quad).
    pub fragment: bool,
    breaks: Vec<u8>,
    rets: Vec<u8>,
    /// Lanes that executed `discard`.
    pub discarded: u8,
}

#[inline]
fn f(x: u32) -> f32 {
    f32::from_bits(x)
}

impl<'a> Exec<'a> {
    /// Creates a state over an initialised register file.
    pub fn new(
        regs: &'a mut [[u32; 4]],
        uniforms: &'a [u32],
        ubase: &'a [u32],
        textures: &'a dyn Textures,
        budget: &'a mut Budget,
        fragment: bool,
    ) -> Self {
        Exec {
            regs,
            uniforms,
            ubase,
            textures,
            budget,
            fragment,
            breaks: Vec::new(),
            rets: vec![0],
            discarded: 0,
        }
    }

    #[inline]
    fn get(&self, r: Reg) -> [u32; 4] {
        self.regs.get(r as usize).copied().unwrap_or_default()
    }

    #[inline]
    fn set(&mut self, r: Reg, v: [u32; 4], mask: u8) {
        let Some(d) = self.regs.get_mut(r as usize) else {
            return;
        };
        if mask == 0xf {
            *d = v;
        } else {
            for (l, w) in v.iter().enumerate() {
                if mask & (1 << l) != 0 {
                    d[l] = *w;
                }
            }
        }
    }

    fn charge(&mut self, n: u64) -> Result<(), ExecError> {
        if self.budget.remaining < n {
            self.budget.remaining = 0;
            return Err(ExecError::BudgetExhausted);
        }
        self.budget.remaining -= n;
        Ok(())
    }

    fn uniform(&self, var: u16, off: u32, boolean: bool) -> u32 {
        let base = self.ubase.get(var as usize).copied().unwrap_or(u32::MAX);
        let w = base
            .checked_add(off)
            .and_then(|i| self.uniforms.get(i as usize))
            .copied()
            .unwrap_or(0);
        if boolean { (w != 0) as u32 } else { w }
    }

    /// Runs `code` for the lanes in `mask`; returns the lanes that fall through its end.
    pub fn run(&mut self, code: &[Inst], mut mask: u8) -> Result<u8, ExecError> {
        self.charge(code.len() as u64)?;
        for inst in code {
            if mask == 0 {
                break;
            }
            match inst {
                Inst::U(op, d, a) => {
                    let v = ir::eval1_lanes(*op, self.get(*a));
                    self.set(*d, v, mask);
                }
                Inst::B(op, d, a, b) => {
                    let v = ir::eval2_lanes(*op, self.get(*a), self.get(*b));
                    self.set(*d, v, mask);
                }
                Inst::Sel(d, c, a, b) => {
                    let (c, a, b) = (self.get(*c), self.get(*a), self.get(*b));
                    let v = std::array::from_fn(|l| if c[l] != 0 { a[l] } else { b[l] });
                    self.set(*d, v, mask);
                }
                Inst::LoadU {
                    dst,
                    var,
                    off,
                    boolean,
                } => {
                    let w = self.uniform(*var, *off, *boolean);
                    self.set(*dst, [w; 4], mask);
                }
                Inst::LoadUIdx {
                    dst,
                    var,
                    base_off,
                    len,
                    idx,
                    boolean,
                } => {
                    let i = self.get(*idx);
                    let v = std::array::from_fn(|l| {
                        let k = (i[l] as i32).clamp(0, *len as i32 - 1) as u32;
                        self.uniform(*var, base_off + k, *boolean)
                    });
                    self.set(*dst, v, mask);
                }
                Inst::LoadIdx {
                    dst,
                    base,
                    len,
                    idx,
                } => {
                    let i = self.get(*idx);
                    let v = std::array::from_fn(|l| {
                        let k = (i[l] as i32).clamp(0, *len as i32 - 1) as u32;
                        self.get(base + k)[l]
                    });
                    self.set(*dst, v, mask);
                }
                Inst::StoreIdx {
                    base,
                    len,
                    idx,
                    src,
                } => {
                    let (i, s) = (self.get(*idx), self.get(*src));
                    for l in 0..4 {
                        if mask & (1 << l) != 0 {
                            let k = (i[l] as i32).clamp(0, *len as i32 - 1) as u32;
                            if let Some(d) = self.regs.get_mut((base + k) as usize) {
                                d[l] = s[l];
                            }
                        }
                    }
                }
                Inst::Tex {
                    dst,
                    cube,
                    kind,
                    unit,
                    coord,
                    extra,
                } => self.tex(dst, *cube, *kind, *unit, coord, *extra, mask),
                Inst::If { cond, then, els } => {
                    let c = self.get(*cond);
                    let mut t = 0u8;
                    for (l, w) in c.iter().enumerate() {
                        if *w != 0 {
                            t |= 1 << l;
                        }
                    }
                    let mt = mask & t;
                    let me = mask & !t;
                    let ot = if mt != 0 { self.run(then, mt)? } else { 0 };
                    let oe = if me != 0 && !els.is_empty() {
                        self.run(els, me)?
                    } else {
                        me
                    };
                    mask = ot | oe;
                }
                Inst::Loop { body, step } => {
                    self.breaks.push(0);
                    let mut m = mask;
                    loop {
                        self.charge(1)?;
                        self.run(body, m)?;
                        m &= !self.breaks.last().copied().unwrap_or(0)
                            & !self.rets.last().copied().unwrap_or(0)
                            & !self.discarded;
                        if m == 0 {
                            break;
                        }
                        if !step.is_empty() {
                            self.run(step, m)?;
                            m &= !self.breaks.last().copied().unwrap_or(0);
                            if m == 0 {
                                break;
                            }
                        }
                    }
                    self.breaks.pop();
                    mask &= !self.rets.last().copied().unwrap_or(0) & !self.discarded;
                }
                Inst::Break => {
                    if let Some(b) = self.breaks.last_mut() {
                        *b |= mask;
                    }
                    mask = 0;
                }
                Inst::Continue => mask = 0,
                Inst::Return => {
                    if let Some(r) = self.rets.last_mut() {
                        *r |= mask;
                    }
                    mask = 0;
                }
                Inst::Discard => {
                    self.discarded |= mask;
                    mask = 0;
                }
                Inst::Func(body) => {
                    self.rets.push(0);
                    self.run(body, mask)?;
                    self.rets.pop();
                    mask &= !self.discarded;
                }
            }
        }
        Ok(mask)
    }

    #[allow(clippy::too_many_arguments)]
    fn tex(
        &mut self,
        dst: &[Reg; 4],
        cube: bool,
        kind: TexKind,
        unit: Reg,
        coord: &[Reg; 3],
        extra: Option<Reg>,
        mask: u8,
    ) {
        tex_lookup(
            self.regs,
            self.textures,
            self.fragment,
            dst,
            cube,
            kind,
            unit,
            coord,
            extra,
            mask,
        );
    }
}

/// A texture instruction on a register file (shared with the JIT's call-back).
#[allow(clippy::too_many_arguments)]
pub fn tex_lookup(
    regs: &mut [[u32; 4]],
    textures: &dyn Textures,
    fragment: bool,
    dst: &[Reg; 4],
    cube: bool,
    kind: TexKind,
    unit: Reg,
    coord: &[Reg; 3],
    extra: Option<Reg>,
    mask: u8,
) {
    let get = |r: Reg| regs.get(r as usize).copied().unwrap_or_default();
    let c: [[u32; 4]; 3] = [get(coord[0]), get(coord[1]), get(coord[2])];
    let units = get(unit);
    let e = extra.map(get);
    let lod = lod_for(fragment, cube, kind, &c, e);
    let mut out = [[0u32; 4]; 4];
    // A vertex runs in all four lanes with the same inputs: sample once.
    let lanes = if fragment { 4 } else { 1 };
    for l in 0..lanes {
        if mask & (1 << l) == 0 {
            continue;
        }
        let p = [f(c[0][l]), f(c[1][l]), if cube { f(c[2][l]) } else { 0.0 }];
        let rgba = textures.sample(units[l], cube, p, lod[l]);
        for k in 0..4 {
            out[k][l] = rgba[k].to_bits();
        }
    }
    if !fragment {
        for o in &mut out {
            *o = [o[0]; 4];
        }
    }
    for k in 0..4 {
        if let Some(d) = regs.get_mut(dst[k] as usize) {
            for l in 0..4 {
                if mask & (1 << l) != 0 {
                    d[l] = out[k][l];
                }
            }
        }
    }
}

/// Per-lane LOD. Fragment implicit LOD is log2 of the longer of the quad's
/// coordinate differences (lane 1 − lane 0, lane 2 − lane 0) in normalised units,
/// plus the bias; the [`Textures`] implementation adds log2(size).
pub fn lod_for(
    fragment: bool,
    cube: bool,
    kind: TexKind,
    c: &[[u32; 4]; 3],
    extra: Option<[u32; 4]>,
) -> [f32; 4] {
    match kind {
        TexKind::Lod => extra.map(|e| e.map(f)).unwrap_or([0.0; 4]),
        TexKind::Implicit if !fragment => [0.0; 4],
        TexKind::Implicit => {
            let n = if cube { 3 } else { 2 };
            let (mut dx, mut dy) = (0.0f32, 0.0f32);
            for comp in c.iter().take(n) {
                let a = f(comp[1]) - f(comp[0]);
                let b = f(comp[2]) - f(comp[0]);
                dx += a * a;
                dy += b * b;
            }
            let rho = dx.sqrt().max(dy.sqrt());
            let base = rho.log2();
            let bias = extra.map(|e| e.map(f)).unwrap_or([0.0; 4]);
            bias.map(|b| base + b)
        }
    }
}
