//! Linking: varying matching, attribute and uniform locations, uniform storage
//! layout, and running the linked stages.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::exec::Exec;
use crate::ir::{Inst, Reg};
use crate::jit::Jit;
use crate::lower::{Builtins, Lowered};
use crate::types::Ty;
use crate::{
    ActiveVariable, Budget, ExecError, Linked, MAX_FRAGMENT_UNIFORM_VECTORS, MAX_VARYING_VECTORS,
    MAX_VERTEX_ATTRIBS, MAX_VERTEX_UNIFORM_VECTORS, QuadInput, QuadOutput, Shader, Stage, Textures,
    Type, UniformSlot, VertexOutput,
};

/// One linked stage.
#[derive(Debug)]
struct StageCode {
    code: Vec<Inst>,
    /// Initial register file (constants in place).
    template: Vec<[u32; 4]>,
    /// Storage word of each of the stage's uniform variables (`u32::MAX` if inactive).
    ubase: Vec<u32>,
    builtins: Builtins,
    /// Native code, when the host is supported and the program small enough.
    jit: Option<Jit>,
}

impl StageCode {
    fn new(low: &Lowered, ubase: Vec<u32>, use_jit: bool) -> Self {
        // One extra register: scratch for the JIT's call-backs.
        let mut template = vec![[0u32; 4]; low.nregs as usize + 1];
        for (r, w) in &low.consts {
            template[*r as usize] = [*w; 4];
        }
        let jit = if use_jit {
            crate::jit::compile(&low.code, low.nregs, &ubase)
        } else {
            None
        };
        StageCode {
            code: low.code.clone(),
            template,
            ubase,
            builtins: low.builtins.clone(),
            jit,
        }
    }

    /// Runs the stage on `regs` with the JIT or the interpreter.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        regs: &mut [[u32; 4]],
        uniforms: &[u32],
        storage_len: usize,
        textures: &dyn Textures,
        budget: &mut Budget,
        fragment: bool,
        engine: Engine,
    ) -> Result<u8, ExecError> {
        match (&self.jit, engine) {
            (Some(jit), Engine::Auto | Engine::Jit) => {
                // The generated code reads uniforms unchecked: pad short storage with zeros.
                let padded;
                let uniforms = if uniforms.len() < storage_len {
                    let mut v = uniforms.to_vec();
                    v.resize(storage_len, 0);
                    padded = v;
                    &padded[..]
                } else {
                    uniforms
                };
                let (ok, discarded) =
                    jit.run(regs, uniforms, textures, fragment, &mut budget.remaining);
                if !ok {
                    return Err(ExecError::BudgetExhausted);
                }
                Ok(discarded)
            }
            _ => {
                let mut ex = Exec::new(regs, uniforms, &self.ubase, textures, budget, fragment);
                ex.run(&self.code, 0xf)?;
                Ok(ex.discarded & 0xf)
            }
        }
    }
}

/// Which executor runs a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Native code when available, else the interpreter.
    Auto,
    /// Always the interpreter.
    Interpreter,
    /// Native code when available (as `Auto`; for tests that compare the two).
    Jit,
}

/// A varying passed from the vertex to the fragment stage.
#[derive(Debug)]
struct VaryingLink {
    vs_base: Reg,
    fs_base: Reg,
    /// First vec4 slot.
    slot: u32,
    /// vec4 slots (array elements × matrix columns).
    slots: u32,
    /// Components used per slot.
    rows: u32,
}

/// An attribute's registers.
#[derive(Debug)]
struct AttribLink {
    location: u32,
    base: Reg,
    cols: u32,
    rows: u32,
}

/// A linked program. `Send + Sync`: runs share it read-only.
#[derive(Debug)]
pub struct Program {
    vs: StageCode,
    fs: StageCode,
    attributes: Vec<ActiveVariable>,
    attrib_links: Vec<AttribLink>,
    uniforms: Vec<ActiveVariable>,
    /// Indexed by location.
    slots: Vec<UniformSlot>,
    storage_len: usize,
    varyings: Vec<VaryingLink>,
    varying_count: usize,
    fs_uses_frag_data: bool,
}

fn link_error(log: &mut String, msg: &str) {
    let _ = writeln!(log, "ERROR: Link: {msg}");
}

/// Structural type equality across shaders (struct identities differ per shader).
fn same_type(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Struct(x), Ty::Struct(y)) => {
            x.name == y.name
                && x.fields.len() == y.fields.len()
                && x.fields
                    .iter()
                    .zip(&y.fields)
                    .all(|(f, g)| f.0 == g.0 && same_type(&f.1, &g.1))
        }
        (Ty::Array(x, n), Ty::Array(y, m)) => n == m && same_type(x, y),
        _ => a == b,
    }
}

/// Flattens a uniform into (name, type, array size, word offset) leaves.
fn leaves(ty: &Ty, name: String, off: &mut usize, out: &mut Vec<(String, Type, u32, usize)>) {
    match ty {
        Ty::Struct(s) => {
            for (f, t) in &s.fields {
                leaves(t, format!("{name}.{f}"), off, out);
            }
        }
        Ty::Array(e, n) => match &**e {
            Ty::Struct(_) => {
                for i in 0..*n {
                    leaves(e, format!("{name}[{i}]"), off, out);
                }
            }
            t => {
                let api = t.api().expect("arrays of basic types");
                out.push((format!("{name}[0]"), api, *n, *off));
                *off += t.slots() as usize * *n as usize;
            }
        },
        t => {
            let api = t.api().expect("basic type");
            out.push((name, api, 1, *off));
            *off += t.slots() as usize;
        }
    }
}

/// vec4 registers a uniform needs without packing (a mat3 is three, a float one).
fn uniform_vectors(t: &Ty) -> usize {
    match t {
        Ty::Struct(s) => s.fields.iter().map(|f| uniform_vectors(&f.1)).sum(),
        Ty::Array(e, n) => uniform_vectors(e) * *n as usize,
        Ty::Mat(n) => *n as usize,
        _ => 1,
    }
}

/// Links a vertex and a fragment shader. `bindings`: glBindAttribLocation pairs.
pub fn link(vertex: &Shader, fragment: &Shader, bindings: &[(String, u32)]) -> Linked {
    let mut log = String::new();
    let fail = |log: String| Linked {
        ok: false,
        log,
        program: None,
    };
    if vertex.stage != Stage::Vertex || fragment.stage != Stage::Fragment {
        link_error(&mut log, "a vertex and a fragment shader are required");
        return fail(log);
    }
    let (v, f) = (&vertex.low, &fragment.low);
    if !v.has_main {
        link_error(&mut log, "vertex shader has no main()");
    }
    if !f.has_main {
        link_error(&mut log, "fragment shader has no main()");
    }
    if v.has_main && !v.writes_position {
        link_error(&mut log, "vertex shader does not write gl_Position");
    }

    // Varyings: every fragment varying that is used must come from the vertex shader.
    let mut varyings = Vec::new();
    let mut slot = 0u32;
    for fv in &f.varyings {
        let Some(vv) = v.varyings.iter().find(|x| x.name == fv.name) else {
            if fv.used {
                link_error(
                    &mut log,
                    &format!(
                        "varying '{}' is read by the fragment shader but not declared in the vertex shader",
                        fv.name
                    ),
                );
            }
            continue;
        };
        if !same_type(&vv.ty, &fv.ty) {
            link_error(
                &mut log,
                &format!(
                    "varying '{}' has type '{}' in the vertex shader and '{}' in the fragment shader",
                    fv.name,
                    vv.ty.name(),
                    fv.ty.name()
                ),
            );
            continue;
        }
        if !fv.used {
            continue;
        }
        let (elems, elem) = match &fv.ty {
            Ty::Array(e, n) => (*n, &**e),
            t => (1, t),
        };
        let (cols, rows) = match elem {
            Ty::Mat(n) => (*n as u32, *n as u32),
            t => (1, t.slots()),
        };
        varyings.push(VaryingLink {
            vs_base: vv.base,
            fs_base: fv.base,
            slot,
            slots: elems * cols,
            rows,
        });
        slot += elems * cols;
    }
    if slot as usize > MAX_VARYING_VECTORS {
        link_error(
            &mut log,
            &format!("too many varyings ({slot} vectors, limit {MAX_VARYING_VECTORS})"),
        );
    }

    // Attributes: explicit bindings first, then the rest in declaration order.
    let mut used = [false; MAX_VERTEX_ATTRIBS];
    let mut attributes = Vec::new();
    let mut attrib_links = Vec::new();
    let active: Vec<_> = v.attributes.iter().filter(|a| a.used).collect();
    let mut placed: Vec<Option<u32>> = vec![None; active.len()];
    for (i, a) in active.iter().enumerate() {
        let cols = if let Ty::Mat(n) = a.ty { n as u32 } else { 1 };
        if let Some((_, loc)) = bindings.iter().rev().find(|(n, _)| *n == a.name) {
            let end = *loc as usize + cols as usize;
            if end > MAX_VERTEX_ATTRIBS {
                link_error(
                    &mut log,
                    &format!(
                        "attribute '{}' bound to location {loc}, out of range",
                        a.name
                    ),
                );
                continue;
            }
            if used[*loc as usize..end].iter().any(|u| *u) {
                link_error(
                    &mut log,
                    &format!(
                        "attribute '{}' bound to location {loc}, already in use",
                        a.name
                    ),
                );
                continue;
            }
            used[*loc as usize..end].iter_mut().for_each(|u| *u = true);
            placed[i] = Some(*loc);
        }
    }
    for (i, a) in active.iter().enumerate() {
        let cols = if let Ty::Mat(n) = a.ty { n as usize } else { 1 };
        if placed[i].is_none() && !bindings.iter().any(|(n, _)| *n == a.name) {
            let loc = (0..=MAX_VERTEX_ATTRIBS.saturating_sub(cols))
                .find(|&l| used[l..l + cols].iter().all(|u| !*u));
            match loc {
                Some(l) => {
                    used[l..l + cols].iter_mut().for_each(|u| *u = true);
                    placed[i] = Some(l as u32);
                }
                None => link_error(
                    &mut log,
                    &format!("too many vertex attributes (limit {MAX_VERTEX_ATTRIBS})"),
                ),
            }
        }
        if let Some(loc) = placed[i] {
            let rows = if let Ty::Mat(n) = a.ty {
                n as u32
            } else {
                a.ty.slots()
            };
            attributes.push(ActiveVariable {
                name: a.name.clone(),
                ty: a.ty.api().expect("attribute types are basic"),
                size: 1,
                location: loc as i32,
            });
            attrib_links.push(AttribLink {
                location: loc,
                base: a.base,
                cols: cols as u32,
                rows,
            });
        }
    }

    // Uniforms: one storage block, each variable laid out once even if both stages use it.
    let mut storage_len = 0usize;
    let mut by_name: HashMap<String, (Ty, usize)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (stage, other) in [(v, f), (f, v)] {
        for u in &stage.uniforms {
            if let Some(o) = other.uniforms.iter().find(|o| o.name == u.name) {
                if !same_type(&o.ty, &u.ty) && std::ptr::eq(stage, v) {
                    link_error(
                        &mut log,
                        &format!(
                            "uniform '{}' has different types in the vertex and fragment shaders",
                            u.name
                        ),
                    );
                }
            }
            let active = u.used || other.uniforms.iter().any(|o| o.name == u.name && o.used);
            if active && !by_name.contains_key(&u.name) {
                by_name.insert(u.name.clone(), (u.ty.clone(), storage_len));
                order.push(u.name.clone());
                storage_len += u.ty.slots() as usize;
            }
        }
    }
    for (stage, limit, what) in [
        (v, MAX_VERTEX_UNIFORM_VECTORS, "vertex"),
        (f, MAX_FRAGMENT_UNIFORM_VECTORS, "fragment"),
    ] {
        let n: usize = stage
            .uniforms
            .iter()
            .filter(|u| u.used)
            .map(|u| uniform_vectors(&u.ty))
            .sum();
        if n > limit {
            link_error(
                &mut log,
                &format!("too many {what} uniform vectors ({n}, limit {limit})"),
            );
        }
    }
    let mut uniforms = Vec::new();
    let mut slots = Vec::new();
    for name in &order {
        let (ty, base) = &by_name[name];
        let mut off = *base;
        let mut ls = Vec::new();
        leaves(ty, name.clone(), &mut off, &mut ls);
        for (n, t, size, offset) in ls {
            let location = slots.len() as i32;
            for i in 0..size {
                slots.push(UniformSlot {
                    ty: t,
                    offset: offset + (i as usize) * t.components(),
                    remaining: size - i,
                });
            }
            uniforms.push(ActiveVariable {
                name: n,
                ty: t,
                size,
                location,
            });
        }
    }
    if !log.is_empty() {
        return fail(log);
    }
    let ubase = |low: &Lowered| -> Vec<u32> {
        low.uniforms
            .iter()
            .map(|u| by_name.get(&u.name).map(|x| x.1 as u32).unwrap_or(u32::MAX))
            .collect()
    };
    let program = Program {
        vs: StageCode::new(v, ubase(v), true),
        fs: StageCode::new(f, ubase(f), true),
        attributes,
        attrib_links,
        uniforms,
        slots,
        storage_len,
        varying_count: slot as usize,
        varyings,
        fs_uses_frag_data: f.uses_frag_data,
    };
    Linked {
        ok: true,
        log,
        program: Some(Arc::new(program)),
    }
}

thread_local! {
    /// Register file reused across calls on a thread (no allocation per quad).
    static REGS: std::cell::RefCell<Vec<[u32; 4]>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a register file initialised from `template`.
fn with_regs<R>(template: &[[u32; 4]], f: impl FnOnce(&mut Vec<[u32; 4]>) -> R) -> R {
    REGS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut regs) => {
            regs.clear();
            regs.extend_from_slice(template);
            f(&mut regs)
        }
        // Re-entered (a texture callback running a shader): use a fresh file.
        Err(_) => f(&mut template.to_vec()),
    })
}

/// Splits `"a[3]"` into `("a", Some(3))`.
fn split_index(name: &str) -> Option<(&str, Option<u32>)> {
    match name.strip_suffix(']') {
        None => Some((name, None)),
        Some(s) => {
            let open = s.rfind('[')?;
            let idx = s[open + 1..].parse().ok()?;
            Some((&s[..open], Some(idx)))
        }
    }
}

impl Program {
    /// Active attributes; `location` < [`MAX_VERTEX_ATTRIBS`].
    pub fn attributes(&self) -> &[ActiveVariable] {
        &self.attributes
    }

    /// Active uniforms; element `i` of an array is at `location + i`.
    pub fn uniforms(&self) -> &[ActiveVariable] {
        &self.uniforms
    }

    /// Location of an active attribute, -1 if none.
    pub fn attribute_location(&self, name: &str) -> i32 {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map_or(-1, |a| a.location)
    }

    /// Location of a uniform: accepts `"a"`, `"a[0]"`, `"a[2]"`, `"s.f"`; -1 if none.
    pub fn uniform_location(&self, name: &str) -> i32 {
        let Some((base, idx)) = split_index(name) else {
            return -1;
        };
        for u in &self.uniforms {
            let (ubase, _) = split_index(&u.name).unwrap_or((&u.name, None));
            let is_array = u.name.ends_with("[0]");
            if u.name == name {
                return u.location;
            }
            if ubase == base && is_array {
                let i = idx.unwrap_or(0);
                if i < u.size {
                    return u.location + i as i32;
                }
            }
        }
        -1
    }

    /// What a location addresses.
    pub fn uniform_slot(&self, location: i32) -> Option<UniformSlot> {
        usize::try_from(location)
            .ok()
            .and_then(|l| self.slots.get(l))
            .copied()
    }

    /// Words of uniform storage. Floats are `f32::to_bits`; ints, bools and samplers
    /// (the texture unit) are `i32` bits.
    pub fn uniform_storage_len(&self) -> usize {
        self.storage_len
    }

    /// vec4 slots passed from vertex to fragment.
    pub fn varying_count(&self) -> usize {
        self.varying_count
    }

    /// Sampler uniforms: (location, type), one per array element.
    pub fn samplers(&self) -> Vec<(i32, Type)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.ty, Type::Sampler2D | Type::SamplerCube))
            .map(|(i, s)| (i as i32, s.ty))
            .collect()
    }

    /// Runs the vertex shader for one vertex. `attribs[loc]` = current value of
    /// attribute `loc` (x,y,z,w). Writes `gl_Position` to `out.position`,
    /// `gl_PointSize` to `out.point_size`, varyings to `out.varyings`
    /// (len `varying_count()*4`, index `v*4 + component`).
    ///
    /// # Errors
    ///
    /// [`ExecError::BudgetExhausted`] when the budget runs out.
    pub fn run_vertex(
        &self,
        uniforms: &[u32],
        textures: &dyn Textures,
        attribs: &[[f32; 4]; MAX_VERTEX_ATTRIBS],
        out: &mut VertexOutput,
        budget: &mut Budget,
    ) -> Result<(), ExecError> {
        self.run_vertex_with(Engine::Auto, uniforms, textures, attribs, out, budget)
    }

    /// Native code is available for both stages.
    pub fn has_jit(&self) -> bool {
        self.vs.jit.is_some() && self.fs.jit.is_some()
    }

    /// [`Program::run_vertex`] on a chosen engine.
    ///
    /// # Errors
    ///
    /// As [`Program::run_vertex`].
    pub fn run_vertex_with(
        &self,
        engine: Engine,
        uniforms: &[u32],
        textures: &dyn Textures,
        attribs: &[[f32; 4]; MAX_VERTEX_ATTRIBS],
        out: &mut VertexOutput,
        budget: &mut Budget,
    ) -> Result<(), ExecError> {
        with_regs(&self.vs.template, |regs| {
            for a in &self.attrib_links {
                for c in 0..a.cols {
                    let v = attribs[(a.location + c) as usize % MAX_VERTEX_ATTRIBS];
                    for r in 0..a.rows {
                        if let Some(reg) = regs.get_mut((a.base + c * a.rows + r) as usize) {
                            *reg = [v[r as usize].to_bits(); 4];
                        }
                    }
                }
            }
            // All lanes hold the same vertex; lane 0 is read back.
            let _ = self.vs.run(
                regs,
                uniforms,
                self.storage_len,
                textures,
                budget,
                false,
                engine,
            )?;
            let b = &self.vs.builtins;
            let rd = |r: Reg| f32::from_bits(regs.get(r as usize).map_or(0, |w| w[0]));
            out.position = std::array::from_fn(|i| rd(b.position + i as u32));
            out.point_size = rd(b.point_size);
            out.varyings.clear();
            out.varyings.resize(self.varying_count * 4, 0.0);
            for v in &self.varyings {
                for s in 0..v.slots {
                    for r in 0..v.rows {
                        out.varyings[((v.slot + s) * 4 + r) as usize] =
                            rd(v.vs_base + s * v.rows + r);
                    }
                }
            }
            Ok(())
        })
    }

    /// Shades one 2×2 quad: lanes 0..4 = (x,y),(x+1,y),(x,y+1),(x+1,y+1).
    /// `input.varyings`: SoA, len `varying_count()*16`, index `(v*4 + component)*4 + lane`.
    /// Uncovered lanes still run (helpers for texture LOD) but their output is to be
    /// ignored. Writes `out.color[lane]` and `out.discarded`.
    ///
    /// # Errors
    ///
    /// [`ExecError::BudgetExhausted`] when the budget runs out;
    /// [`ExecError::InputTooShort`] if `input.varyings` is shorter than needed.
    pub fn run_fragment_quad(
        &self,
        uniforms: &[u32],
        textures: &dyn Textures,
        input: &QuadInput,
        out: &mut QuadOutput,
        budget: &mut Budget,
    ) -> Result<(), ExecError> {
        self.run_fragment_quad_with(Engine::Auto, uniforms, textures, input, out, budget)
    }

    /// [`Program::run_fragment_quad`] on a chosen engine.
    ///
    /// # Errors
    ///
    /// As [`Program::run_fragment_quad`].
    pub fn run_fragment_quad_with(
        &self,
        engine: Engine,
        uniforms: &[u32],
        textures: &dyn Textures,
        input: &QuadInput,
        out: &mut QuadOutput,
        budget: &mut Budget,
    ) -> Result<(), ExecError> {
        if input.varyings.len() < self.varying_count * 16 {
            return Err(ExecError::InputTooShort("varyings"));
        }
        with_regs(&self.fs.template, |regs| {
            let b = &self.fs.builtins;
            let mut put = |r: Reg, v: [u32; 4]| {
                if let Some(d) = regs.get_mut(r as usize) {
                    *d = v;
                }
            };
            for c in 0..4 {
                put(
                    b.frag_coord + c,
                    std::array::from_fn(|l| input.frag_coord[l][c as usize].to_bits()),
                );
            }
            for c in 0..2 {
                put(
                    b.point_coord + c,
                    std::array::from_fn(|l| input.point_coord[l][c as usize].to_bits()),
                );
            }
            put(b.front_facing, [input.front_facing as u32; 4]);
            for v in &self.varyings {
                for s in 0..v.slots {
                    for r in 0..v.rows {
                        let base = (((v.slot + s) * 4 + r) * 4) as usize;
                        put(
                            v.fs_base + s * v.rows + r,
                            std::array::from_fn(|l| input.varyings[base + l].to_bits()),
                        );
                    }
                }
            }
            let discarded = self.fs.run(
                regs,
                uniforms,
                self.storage_len,
                textures,
                budget,
                true,
                engine,
            )?;
            let src = if self.fs_uses_frag_data {
                b.frag_data
            } else {
                b.frag_color
            };
            for l in 0..4 {
                for c in 0..4 {
                    out.color[l][c] =
                        f32::from_bits(regs.get((src + c as u32) as usize).map_or(0, |w| w[l]));
                }
            }
            out.discarded = discarded;
            Ok(())
        })
    }
}
