//! The programmable pipeline of OpenGL ES 2.0: generic vertex attributes through a vertex
//! shader, clipping, perspective-correct varyings, and a fragment shader run on 2×2 quads.
//!
//! The renderer does not know GLSL: a program is anything that implements
//! [`ShaderProgram`] (the VideoCore binds its compiled GLSL programs with their uniform
//! values to it). Fragments are shaded a quad at a time so that the program can estimate
//! texture level of detail from its neighbours and work on four lanes at once. Every draw
//! has a step budget ([`DRAW_BUDGET`]), shared by all the threads shading it: a shader
//! that loops for ever ends the draw with a [`ShaderFault`] instead of hanging.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

use crate::arrays::{AttribArray, Indices};
use crate::context::Gles11;
use crate::gl;
use crate::image::{Image, Surface};
use crate::raster::{
    GUARD_BAND, HALF, INV255, MAX_VIEWPORT_DIMS, Plane, SUB, SUBPIXEL_BITS, TILE, blend_factor,
    compare, covered_span, edges_and_bbox, pack,
};
use crate::texture::Sampler;

/// `GL_MAX_VERTEX_ATTRIBS`.
pub const MAX_VERTEX_ATTRIBS: usize = 8;
/// `GL_MAX_TEXTURE_IMAGE_UNITS` (and combined units).
pub const MAX_TEXTURE_UNITS: usize = 8;
/// `GL_MAX_VARYING_VECTORS`.
pub const MAX_VARYING_VECTORS: usize = 8;
const MAX_VARYING_FLOATS: usize = MAX_VARYING_VECTORS * 4;
/// Shader steps one draw may take in all (vertex and fragment shaders together). The
/// hello_triangle2 Julia set at 1920×1080 needs well under a tenth of it.
pub const DRAW_BUDGET: u64 = 8_000_000_000;
/// Steps granted to one quad (or one vertex) at a time out of the draw's budget.
const GRANT: u64 = 1 << 24;

/// A shader stopped before it finished (its step budget ran out, or it faulted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShaderFault(pub String);

/// Texture lookups for shaders: the textures bound to the draw's units.
pub trait ShaderTextures: Sync {
    /// RGBA in `[0, 1]` of unit `unit` at `coord` (`s, t` for 2D; a direction for cube
    /// maps). `lod` is log2 of the largest screen derivative of the coordinate in
    /// normalised units (0 in vertex shaders); the texture adds log2 of its size.
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4];
}

/// The inputs of one 2×2 quad; lanes are `(x, y), (x+1, y), (x, y+1), (x+1, y+1)` in
/// image order.
#[derive(Debug)]
pub struct QuadIn<'a> {
    /// `gl_FragCoord` per lane: window x, y (origin bottom left), depth, 1/w.
    pub frag_coord: [[f32; 4]; 4],
    /// `gl_FrontFacing`.
    pub front_facing: bool,
    /// Varyings, lane-minor: index `(v·4 + component)·4 + lane`.
    pub varyings: &'a [f32],
    /// Bit `l` set: lane `l` is covered (the others are helpers; their colour is unused).
    pub mask: u8,
}

/// The outputs of one quad.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuadOut {
    /// `gl_FragColor` (or `gl_FragData[0]`) per lane.
    pub color: [[f32; 4]; 4],
    /// Bit `l` set: lane `l` executed `discard`.
    pub discarded: u8,
}

/// A linked program with its uniform values, ready to run.
pub trait ShaderProgram: Sync {
    /// vec4 varyings passed from the vertex to the fragment shader (at most
    /// [`MAX_VARYING_VECTORS`]).
    fn varying_count(&self) -> usize;
    /// Runs the vertex shader on one vertex: `attribs[i]` is attribute location `i`;
    /// writes `gl_Position` and the varyings (`v·4 + component`). `budget`: steps left,
    /// decreased by the steps taken.
    fn run_vertex(
        &self,
        textures: &dyn ShaderTextures,
        attribs: &[[f32; 4]; MAX_VERTEX_ATTRIBS],
        position: &mut [f32; 4],
        varyings: &mut [f32],
        budget: &mut u64,
    ) -> Result<(), ShaderFault>;
    /// Runs the fragment shader on one quad.
    fn run_fragment_quad(
        &self,
        textures: &dyn ShaderTextures,
        input: &QuadIn<'_>,
        out: &mut QuadOut,
        budget: &mut u64,
    ) -> Result<(), ShaderFault>;
}

/// The generic vertex attributes of a draw: an enabled array, or the current value
/// (`glVertexAttrib*`, default `(0, 0, 0, 1)`).
#[derive(Debug, Clone, Copy)]
pub struct GenericAttribs<'a> {
    /// Enabled arrays by location.
    pub arrays: [Option<AttribArray<'a>>; MAX_VERTEX_ATTRIBS],
    /// Current values by location.
    pub current: [[f32; 4]; MAX_VERTEX_ATTRIBS],
}

impl Default for GenericAttribs<'_> {
    fn default() -> Self {
        Self {
            arrays: [None; MAX_VERTEX_ATTRIBS],
            current: [[0.0, 0.0, 0.0, 1.0]; MAX_VERTEX_ATTRIBS],
        }
    }
}

/// What a draw did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrawStats {
    /// Triangles rasterised (after clipping and culling).
    pub triangles: usize,
    /// Quads shaded.
    pub quads: u64,
}

/// Textures bound to the units of a draw.
struct UnitTextures<'a> {
    units: [Option<Sampler<'a>>; MAX_TEXTURE_UNITS],
    /// log2 of each unit's larger side (the level-of-detail offset).
    log2_size: [f32; MAX_TEXTURE_UNITS],
}

impl<'a> UnitTextures<'a> {
    fn new(units: [Option<Sampler<'a>>; MAX_TEXTURE_UNITS]) -> Self {
        let log2_size = std::array::from_fn(|i| {
            units[i]
                .as_ref()
                .map_or(0.0, |s| (s.width.max(s.height) as f32).log2())
        });
        Self { units, log2_size }
    }
}

impl ShaderTextures for UnitTextures<'_> {
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4] {
        // Incomplete textures (and cube maps, not implemented) read as opaque black,
        // as GL ES 2.0 §3.8.2 specifies for incomplete ones.
        let Some(s) = self.units.get(unit as usize).and_then(Option::as_ref) else {
            return [0.0, 0.0, 0.0, 1.0];
        };
        if cube {
            return [0.0, 0.0, 0.0, 1.0];
        }
        let rho = lod + self.log2_size[unit as usize];
        s.sample(coord[0], coord[1], rho > 0.0).map(|c| c * INV255)
    }
}

/// A vertex after the vertex shader.
#[derive(Clone, Copy)]
struct ShadedVertex {
    pos: [f32; 4],
    var: [f32; MAX_VARYING_FLOATS],
}

impl Default for ShadedVertex {
    fn default() -> Self {
        Self {
            pos: [0.0; 4],
            var: [0.0; MAX_VARYING_FLOATS],
        }
    }
}

/// A set-up triangle.
struct Tri {
    edges: [[i64; 3]; 3],
    bbox: [i32; 4],
    ox: f32,
    oy: f32,
    z: Plane,
    inv_w: Plane,
    /// Varyings divided by w, `v·4 + component`.
    var: Vec<Plane>,
    front: bool,
}

/// GL ES 2.0 blending: separate colour and alpha factors and equations, a constant colour.
#[derive(Debug, Clone, Copy)]
struct Blend {
    rgb: (u32, u32),
    alpha: (u32, u32),
    equation: (u32, u32),
    color: [f32; 4],
}

impl Blend {
    #[inline]
    fn factor(&self, f: u32, s: [f32; 4], d: [f32; 4]) -> [f32; 4] {
        let c = self.color;
        match f {
            0x8001 => c,                  // CONSTANT_COLOR
            0x8002 => c.map(|v| 1.0 - v), // ONE_MINUS_CONSTANT_COLOR
            0x8003 => [c[3]; 4],          // CONSTANT_ALPHA
            0x8004 => [1.0 - c[3]; 4],    // ONE_MINUS_CONSTANT_ALPHA
            _ => blend_factor(f, s, d),
        }
    }

    #[inline]
    fn apply(&self, s: [f32; 4], d: [f32; 4]) -> [f32; 4] {
        let (fs, fd) = (self.factor(self.rgb.0, s, d), self.factor(self.rgb.1, s, d));
        let (fsa, fda) = (
            self.factor(self.alpha.0, s, d),
            self.factor(self.alpha.1, s, d),
        );
        std::array::from_fn(|i| {
            let (a, b, eq) = if i < 3 {
                (s[i] * fs[i], d[i] * fd[i], self.equation.0)
            } else {
                (s[3] * fsa[3], d[3] * fda[3], self.equation.1)
            };
            match eq {
                crate::context::FUNC_SUBTRACT => a - b,
                crate::context::FUNC_REVERSE_SUBTRACT => b - a,
                _ => a + b,
            }
        })
    }
}

/// The state one draw runs with.
struct Stage<'a> {
    viewport: [f32; 4],
    depth_range: [f32; 2],
    surface_h: f32,
    rect: [i32; 4],
    cull_front: bool,
    cull_back: bool,
    front_ccw: bool,
    depth: Option<(u32, bool)>,
    blend: Option<Blend>,
    color_mask: [bool; 4],
    nvar: usize,
    program: &'a dyn ShaderProgram,
    textures: &'a UnitTextures<'a>,
    parallel: bool,
}

/// The draw's shared step budget.
struct Budget {
    left: AtomicU64,
    fault: AtomicBool,
}

impl Budget {
    /// Up to [`GRANT`] steps for the next unit of work; 0 when the draw is over budget.
    fn grant(&self) -> u64 {
        let mut cur = self.left.load(Ordering::Relaxed);
        loop {
            let take = cur.min(GRANT);
            if take == 0 {
                return 0;
            }
            match self.left.compare_exchange_weak(
                cur,
                cur - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => cur = now,
            }
        }
    }

    fn give_back(&self, steps: u64) {
        self.left.fetch_add(steps, Ordering::Relaxed);
    }

    /// Runs `f` with a fresh grant; false (and the draw marked faulted) if it fails.
    fn run(&self, f: impl FnOnce(&mut u64) -> Result<(), ShaderFault>) -> Result<(), ShaderFault> {
        if self.fault.load(Ordering::Relaxed) {
            return Err(ShaderFault("the draw was stopped".into()));
        }
        let mut steps = self.grant();
        if steps == 0 {
            self.fault.store(true, Ordering::Relaxed);
            return Err(ShaderFault(format!(
                "the draw exceeded its budget of {DRAW_BUDGET} shader steps"
            )));
        }
        let result = f(&mut steps);
        self.give_back(steps);
        if result.is_err() {
            self.fault.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// One shading thread's share of the draw's budget: steps are taken from the shared
/// counter a batch at a time (not per quad, which two threads would contend on) and
/// what is left goes back when the thread is done.
struct LocalBudget<'a> {
    shared: &'a Budget,
    steps: u64,
}

impl<'a> LocalBudget<'a> {
    fn new(shared: &'a Budget) -> Self {
        Self { shared, steps: 0 }
    }

    /// Runs one quad with at least [`GRANT`] steps (unless the draw's budget is nearly
    /// spent), marking the draw faulted if it fails.
    fn run(
        &mut self,
        f: impl FnOnce(&mut u64) -> Result<(), ShaderFault>,
    ) -> Result<(), ShaderFault> {
        if self.shared.fault.load(Ordering::Relaxed) {
            return Err(ShaderFault("the draw was stopped".into()));
        }
        while self.steps < GRANT {
            let more = self.shared.grant();
            if more == 0 {
                break;
            }
            self.steps += more;
        }
        if self.steps == 0 {
            self.shared.fault.store(true, Ordering::Relaxed);
            return Err(ShaderFault(format!(
                "the draw exceeded its budget of {DRAW_BUDGET} shader steps"
            )));
        }
        let result = f(&mut self.steps);
        if result.is_err() {
            self.shared.fault.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl Drop for LocalBudget<'_> {
    fn drop(&mut self) {
        self.shared.give_back(self.steps);
    }
}

#[inline]
fn plane_dist(v: &ShadedVertex, plane: usize) -> f32 {
    let [x, y, z, w] = v.pos;
    match plane {
        0 => z + w,
        1 => w - z,
        2 => GUARD_BAND * w - x,
        3 => GUARD_BAND * w + x,
        4 => GUARD_BAND * w - y,
        _ => GUARD_BAND * w + y,
    }
}

fn lerp(a: &ShadedVertex, b: &ShadedVertex, t: f32, nvar: usize) -> ShadedVertex {
    let mut out = *a;
    for i in 0..4 {
        out.pos[i] = a.pos[i] + (b.pos[i] - a.pos[i]) * t;
    }
    for i in 0..nvar * 4 {
        out.var[i] = a.var[i] + (b.var[i] - a.var[i]) * t;
    }
    out
}

/// Sutherland–Hodgman against near, far and the guard band (intersections computed from
/// the inside vertex, so shared edges get identical new vertices).
fn clip(tri: [ShadedVertex; 3], nvar: usize) -> Vec<ShadedVertex> {
    let mut mask_any = 0u32;
    let mut mask_all = 0x3f;
    for v in &tri {
        let m = (0..6).fold(0, |m, p| m | (u32::from(plane_dist(v, p) < 0.0) << p));
        mask_any |= m;
        mask_all &= m;
    }
    if mask_all != 0 {
        return Vec::new();
    }
    let mut poly = tri.to_vec();
    for p in (0..6).filter(|p| mask_any & (1 << p) != 0) {
        let mut next = Vec::with_capacity(poly.len() + 1);
        for i in 0..poly.len() {
            let (cur, nxt) = (&poly[i], &poly[(i + 1) % poly.len()]);
            let (dc, dn) = (plane_dist(cur, p), plane_dist(nxt, p));
            if dc >= 0.0 {
                next.push(*cur);
                if dn < 0.0 {
                    next.push(lerp(cur, nxt, dc / (dc - dn), nvar));
                }
            } else if dn >= 0.0 {
                next.push(lerp(nxt, cur, dn / (dn - dc), nvar));
            }
        }
        poly = next;
        if poly.len() < 3 {
            return Vec::new();
        }
    }
    poly
}

/// A vertex in image space (y down), attributes divided by w.
#[derive(Clone, Copy)]
struct Projected {
    x: f64,
    y: f64,
    z: f32,
    inv_w: f32,
    var: [f32; MAX_VARYING_FLOATS],
}

impl Stage<'_> {
    fn project(&self, v: &ShadedVertex) -> Option<Projected> {
        let [x, y, z, w] = v.pos;
        let inv_w = 1.0 / w;
        if !inv_w.is_finite() || inv_w <= 0.0 {
            return None;
        }
        let lim = GUARD_BAND + 1.0;
        let (nx, ny, nz) = (
            (x * inv_w).clamp(-lim, lim),
            (y * inv_w).clamp(-lim, lim),
            (z * inv_w).clamp(-1.0, 1.0),
        );
        let [vx, vy, vw, vh] = self.viewport;
        let wx = f64::from(nx + 1.0) * f64::from(vw) * 0.5 + f64::from(vx);
        let wy = f64::from(ny + 1.0) * f64::from(vh) * 0.5 + f64::from(vy);
        let [dn, df] = self.depth_range;
        let mut var = [0.0; MAX_VARYING_FLOATS];
        for (o, i) in var.iter_mut().zip(&v.var).take(self.nvar * 4) {
            *o = i * inv_w;
        }
        Some(Projected {
            x: wx,
            y: f64::from(self.surface_h) - wy,
            z: dn + (df - dn) * (nz + 1.0) * 0.5,
            inv_w,
            var,
        })
    }

    fn setup(&self, tri: [ShadedVertex; 3], out: &mut Vec<Tri>) {
        if tri.iter().any(|v| v.pos.iter().any(|c| !c.is_finite())) {
            return;
        }
        let poly = clip(tri, self.nvar);
        if poly.len() < 3 {
            return;
        }
        let Some(sv) = poly
            .iter()
            .map(|v| self.project(v))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let mut area = 0.0f64;
        for i in 0..sv.len() {
            let (a, b) = (&sv[i], &sv[(i + 1) % sv.len()]);
            area += a.x * b.y - b.x * a.y;
        }
        let area_window = -area;
        if area_window == 0.0 || !area_window.is_finite() {
            return;
        }
        let front = (area_window > 0.0) == self.front_ccw;
        if (front && self.cull_front) || (!front && self.cull_back) {
            return;
        }
        for i in 1..sv.len() - 1 {
            if let Some(t) = self.setup_one([&sv[0], &sv[i], &sv[i + 1]], front) {
                out.push(t);
            }
        }
    }

    fn setup_one(&self, v: [&Projected; 3], front: bool) -> Option<Tri> {
        let snap = |v: &Projected| ((v.x * SUB).round() as i64, (v.y * SUB).round() as i64);
        let (mut v, mut p) = (v, v.map(snap));
        let area2 = |p: &[(i64, i64); 3]| {
            (p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[1].1 - p[0].1) * (p[2].0 - p[0].0)
        };
        let ar = area2(&p);
        if ar == 0 {
            return None;
        }
        if ar < 0 {
            v.swap(1, 2);
            p.swap(1, 2);
        }
        let (edges, bbox) = edges_and_bbox(&p, self.rect)?;
        let (x0, y0) = (p[0].0 as f64 / SUB, p[0].1 as f64 / SUB);
        let (x1, y1) = (p[1].0 as f64 / SUB - x0, p[1].1 as f64 / SUB - y0);
        let (x2, y2) = (p[2].0 as f64 / SUB - x0, p[2].1 as f64 / SUB - y0);
        let det = x1 * y2 - x2 * y1;
        let plane = |f0: f32, f1: f32, f2: f32| {
            let (d1, d2) = (f64::from(f1) - f64::from(f0), f64::from(f2) - f64::from(f0));
            Plane {
                c: f0,
                dx: ((d1 * y2 - d2 * y1) / det) as f32,
                dy: ((d2 * x1 - d1 * x2) / det) as f32,
            }
        };
        Some(Tri {
            edges,
            bbox,
            ox: x0 as f32,
            oy: y0 as f32,
            z: plane(v[0].z, v[1].z, v[2].z),
            inv_w: plane(v[0].inv_w, v[1].inv_w, v[2].inv_w),
            var: (0..self.nvar * 4)
                .map(|i| plane(v[0].var[i], v[1].var[i], v[2].var[i]))
                .collect(),
            front,
        })
    }

    /// Shades `tri` over the rows `y0..y1` of a band starting at image row `band_y0`.
    #[allow(clippy::too_many_arguments)]
    fn raster(
        &self,
        tri: &Tri,
        band_y0: i32,
        band_y1: i32,
        color: &mut [u32],
        mut depth: Option<&mut [f32]>,
        width: usize,
        budget: &mut LocalBudget<'_>,
        quads: &mut u64,
    ) -> Result<(), ShaderFault> {
        let sub = 1i64 << SUBPIXEL_BITS;
        let (ry0, ry1) = (tri.bbox[1].max(band_y0), tri.bbox[3].min(band_y1));
        // Quads are aligned to even pixels so that neighbouring triangles' quads line up.
        let qy0 = ry0 & !1;
        let nv = self.nvar * 4;
        let mut varyings = vec![0.0f32; nv * 4];
        let mut qy = qy0;
        while qy < ry1 {
            // The covered pixels of both rows, solved from the edge equations (exact, see
            // `covered_span`), clipped to the bounding box and the band.
            let (x0, n) = (i64::from(tri.bbox[0]), i64::from(tri.bbox[2] - tri.bbox[0]));
            let span = |py: i32| -> (i32, i32) {
                if py < ry0 || py >= ry1 {
                    return (0, 0);
                }
                let cy = i64::from(py) * sub + HALF;
                covered_span(&tri.edges, x0 * sub + HALF, cy, sub, n)
                    .map_or((0, 0), |(lo, hi)| ((x0 + lo) as i32, (x0 + hi) as i32))
            };
            let rows = [span(qy), span(qy + 1)];
            let (row_lo, row_hi) = (
                rows.iter().filter(|r| r.0 < r.1).map(|r| r.0).min(),
                rows.iter().filter(|r| r.0 < r.1).map(|r| r.1).max(),
            );
            let (Some(row_lo), Some(row_hi)) = (row_lo, row_hi) else {
                qy += 2;
                continue;
            };
            let mut qx = row_lo & !1;
            while qx < row_hi {
                let lanes = [(qx, qy), (qx + 1, qy), (qx, qy + 1), (qx + 1, qy + 1)];
                let mut mask = 0u8;
                for (l, &(px, py)) in lanes.iter().enumerate() {
                    let (lo, hi) = rows[(py - qy) as usize];
                    if px >= lo && px < hi {
                        mask |= 1 << l;
                    }
                }
                if mask != 0 {
                    *quads += 1;
                    let mut frag_coord = [[0.0f32; 4]; 4];
                    for (l, &(px, py)) in lanes.iter().enumerate() {
                        let (fx, fy) = (px as f32 + 0.5 - tri.ox, py as f32 + 0.5 - tri.oy);
                        let inv_w = tri.inv_w.at(fx, fy);
                        let w = 1.0 / inv_w;
                        for (k, pl) in tri.var.iter().enumerate() {
                            varyings[k * 4 + l] = pl.at(fx, fy) * w;
                        }
                        frag_coord[l] = [
                            px as f32 + 0.5,
                            self.surface_h - (py as f32 + 0.5),
                            tri.z.at(fx, fy).clamp(0.0, 1.0),
                            inv_w,
                        ];
                    }
                    let input = QuadIn {
                        frag_coord,
                        front_facing: tri.front,
                        varyings: &varyings,
                        mask,
                    };
                    let mut out = QuadOut::default();
                    budget.run(|steps| {
                        self.program
                            .run_fragment_quad(self.textures, &input, &mut out, steps)
                    })?;
                    for (l, &(px, py)) in lanes.iter().enumerate() {
                        if mask & (1 << l) == 0 || out.discarded & (1 << l) != 0 {
                            continue;
                        }
                        let at = (py - band_y0) as usize * width + px as usize;
                        if let (Some((func, write)), Some(d)) = (self.depth, depth.as_deref_mut()) {
                            let z = frag_coord[l][2];
                            match d.get_mut(at) {
                                Some(dz) if compare(func, z, *dz) => {
                                    if write {
                                        *dz = z;
                                    }
                                }
                                _ => continue,
                            }
                        }
                        if let Some(dst) = color.get_mut(at) {
                            *dst = self.output(out.color[l], *dst);
                        }
                    }
                }
                qx += 2;
            }
            qy += 2;
        }
        Ok(())
    }

    /// Blending and the colour mask for one fragment over `dst`.
    #[inline]
    fn output(&self, src: [f32; 4], dst: u32) -> u32 {
        let s = src.map(|c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) });
        let mut c = s;
        let d = dst.to_le_bytes().map(|b| f32::from(b) * INV255);
        if let Some(b) = &self.blend {
            c = b.apply(s, d);
        }
        let packed = pack(c);
        if self.color_mask == [true; 4] {
            return packed;
        }
        let keep = u32::from_le_bytes(self.color_mask.map(|m| if m { 0 } else { 0xff }));
        (dst & keep) | (packed & !keep)
    }
}

impl Gles11 {
    /// `glDrawArrays` / `glDrawElements` on an OpenGL ES 2.0 context: `program` shades
    /// the vertices and fragments; `units[i]` names the texture bound to unit `i` (0: none).
    /// Viewport, scissor, culling, depth test, blending and colour mask come from this
    /// context, as for [`Gles11::draw`].
    ///
    /// # Errors
    /// GL errors are recorded as by [`Gles11::draw`]; `Err` means a shader stopped (step
    /// budget or fault): the pixels shaded before it stay, as on a GPU reset.
    pub fn draw_program(
        &mut self,
        mode: u32,
        indices: Indices<'_>,
        attribs: &GenericAttribs<'_>,
        program: &dyn ShaderProgram,
        units: &[u32; MAX_TEXTURE_UNITS],
        target: &mut Surface,
    ) -> Result<DrawStats, ShaderFault> {
        let mut stats = DrawStats::default();
        match mode {
            gl::GL_TRIANGLES | gl::GL_TRIANGLE_STRIP | gl::GL_TRIANGLE_FAN => {}
            gl::GL_POINTS | gl::GL_LINES | gl::GL_LINE_LOOP | gl::GL_LINE_STRIP => {
                return Ok(stats);
            }
            _ => {
                self.set_error(gl::GL_INVALID_ENUM);
                return Ok(stats);
            }
        }
        let arrays = attribs.arrays.iter().flatten();
        if arrays.clone().any(|a| !(1..=4).contains(&a.size)) {
            self.set_error(gl::GL_INVALID_VALUE);
            return Ok(stats);
        }
        let Some(max_index) = indices.max_index() else {
            return Ok(stats);
        };
        if arrays.clone().any(|a| !a.covers(max_index)) || !target.color.is_consistent() {
            self.set_error(gl::GL_INVALID_OPERATION);
            return Ok(stats);
        }
        let n = indices.len();
        let nvar = program.varying_count().min(MAX_VARYING_VECTORS);
        if n < 3 {
            return Ok(stats);
        }
        let viewport = self.viewport_or(target);
        let Some(rect) = self.raster_rect(target.color.width, target.color.height, Some(viewport))
        else {
            return Ok(stats);
        };
        let textures = UnitTextures::new(std::array::from_fn(|i| match units[i] {
            0 => None,
            name => self.texture(name).and_then(|t| t.sampler()),
        }));
        let budget = Budget {
            left: AtomicU64::new(DRAW_BUDGET),
            fault: AtomicBool::new(false),
        };

        // Vertex shading, once per index position (arrays were bounds-checked above).
        let mut verts = Vec::new();
        if verts.try_reserve_exact(n).is_err() {
            self.set_error(gl::GL_OUT_OF_MEMORY);
            return Ok(stats);
        }
        for k in 0..n {
            let i = indices.get(k);
            let mut input = attribs.current;
            for (slot, a) in input.iter_mut().zip(&attribs.arrays) {
                if let Some(a) = a {
                    *slot = [0.0, 0.0, 0.0, 1.0];
                    a.fetch(i, slot);
                }
            }
            let mut v = ShadedVertex::default();
            budget.run(|steps| {
                program.run_vertex(&textures, &input, &mut v.pos, &mut v.var[..nvar * 4], steps)
            })?;
            verts.push(v);
        }

        let tri_count = match mode {
            gl::GL_TRIANGLES => n / 3,
            _ => n - 2,
        };
        let cull = self.is_enabled(gl::GL_CULL_FACE);
        let depth = (self.is_enabled(gl::GL_DEPTH_TEST) && target.depth_buffer().is_some())
            .then_some((self.depth_func, self.depth_mask));
        let stage = Stage {
            viewport: viewport.map(|v| v as f32),
            depth_range: self.depth_range,
            surface_h: target.color.height as f32,
            rect,
            cull_front: cull && matches!(self.cull_mode, gl::GL_FRONT | gl::GL_FRONT_AND_BACK),
            cull_back: cull && matches!(self.cull_mode, gl::GL_BACK | gl::GL_FRONT_AND_BACK),
            front_ccw: self.front_face == gl::GL_CCW,
            depth,
            blend: self.is_enabled(gl::GL_BLEND).then_some(Blend {
                rgb: self.blend_func,
                alpha: self.blend_alpha,
                equation: self.blend_equation,
                color: self.blend_color,
            }),
            color_mask: self.color_mask,
            nvar,
            program,
            textures: &textures,
            parallel: self.parallel,
        };
        let mut tris = Vec::new();
        for k in 0..tri_count {
            let idx = match mode {
                gl::GL_TRIANGLES => [3 * k, 3 * k + 1, 3 * k + 2],
                gl::GL_TRIANGLE_STRIP if k % 2 == 1 => [k + 1, k, k + 2],
                gl::GL_TRIANGLE_STRIP => [k, k + 1, k + 2],
                _ => [0, k + 1, k + 2],
            };
            stage.setup(idx.map(|i| verts[i]), &mut tris);
        }
        stats.triangles = tris.len();
        stats.quads = stage.rasterise(&tris, target, &budget)?;
        Ok(stats)
    }

    /// Renders into texture `name`'s level 0 as a colour attachment: `f` gets a surface
    /// holding the texels (GL window order: texel row 0 is the bottom row) and the texels
    /// it leaves are stored back, rounded to the level's storage precision (5:6:5 for
    /// `GL_UNSIGNED_SHORT_5_6_5`). `None` if the texture has no level 0.
    pub fn render_to_texture<R>(
        &mut self,
        name: u32,
        f: impl FnOnce(&mut Self, &mut Surface) -> R,
    ) -> Option<R> {
        let level = self.texture_mut(name)?.levels.first_mut()?.take()?;
        let (w, h) = (level.width, level.height);
        let mut surface = Surface {
            color: Image {
                width: w,
                height: h,
                pixels: flip_rows(&level.texels, w as usize),
            },
            depth: None,
        };
        let result = f(self, &mut surface);
        let mut texels = flip_rows(&surface.color.pixels, w as usize);
        if level.ty == gl::GL_UNSIGNED_SHORT_5_6_5 {
            texels.iter_mut().for_each(|t| *t = round_565(*t));
        }
        let mut level = level;
        level.texels = texels;
        if let Some(slot) = self.texture_mut(name).and_then(|t| t.levels.first_mut()) {
            *slot = Some(level);
        }
        Some(result)
    }
}

/// The rows of a `width`-wide image in reverse order.
fn flip_rows(px: &[u32], width: usize) -> Vec<u32> {
    if width == 0 {
        return px.to_vec();
    }
    px.rchunks(width).flatten().copied().collect()
}

/// An RGBA8 texel as a 5:6:5 texture stores it (alpha 1).
fn round_565(t: u32) -> u32 {
    let [r, g, b, _] = t.to_le_bytes();
    let q = |c: u8, bits: u32| {
        let max = (1u32 << bits) - 1;
        let v = (u32::from(c) * max + 127) / 255;
        ((v * 255 + max / 2) / max) as u8
    };
    u32::from_le_bytes([q(r, 5), q(g, 6), q(b, 5), 255])
}

impl Stage<'_> {
    /// Bins the triangles into bands of [`TILE`] rows and shades the bands (in parallel).
    fn rasterise(
        &self,
        tris: &[Tri],
        target: &mut Surface,
        budget: &Budget,
    ) -> Result<u64, ShaderFault> {
        let width = target.color.width as usize;
        let height = target.color.height as i32;
        let band_rows = TILE as i32;
        let band_len = width * TILE as usize;
        let has_depth = target.depth_buffer().is_some();
        let depth_bands: Vec<Option<&mut [f32]>> = match target.depth.as_mut() {
            Some(d) if has_depth => d.chunks_mut(band_len).map(Some).collect(),
            _ => Vec::new(),
        };
        let mut depth_iter = depth_bands.into_iter();
        let mut jobs = Vec::new();
        for (by, cb) in target.color.pixels.chunks_mut(band_len).enumerate() {
            let db = depth_iter.next().flatten();
            let (y0, y1) = (by as i32 * band_rows, (by as i32 + 1) * band_rows);
            if y0 >= height.min(self.rect[3]) {
                break;
            }
            let hit: Vec<&Tri> = tris
                .iter()
                .filter(|t| t.bbox[1] < y1 && t.bbox[3] > y0)
                .collect();
            if !hit.is_empty() {
                jobs.push((y0, y1, cb, db, hit));
            }
        }
        let run =
            |(y0, y1, cb, mut db, hit): (i32, i32, &mut [u32], Option<&mut [f32]>, Vec<&Tri>)| {
                let mut quads = 0u64;
                let mut local = LocalBudget::new(budget);
                for tri in hit {
                    self.raster(
                        tri,
                        y0,
                        y1,
                        cb,
                        db.as_deref_mut(),
                        width,
                        &mut local,
                        &mut quads,
                    )?;
                }
                Ok::<u64, ShaderFault>(quads)
            };
        if self.parallel {
            jobs.into_par_iter()
                .map(run)
                .try_reduce(|| 0, |a, b| Ok(a + b))
        } else {
            jobs.into_iter()
                .map(run)
                .try_fold(0, |a, b| b.map(|b| a + b))
        }
    }
}

impl Gles11 {
    /// The viewport, or the whole target before any `glViewport`.
    fn viewport_or(&self, target: &Surface) -> [i32; 4] {
        self.viewport.unwrap_or([
            0,
            0,
            target.color.width.min(MAX_VIEWPORT_DIMS as u32) as i32,
            target.color.height.min(MAX_VIEWPORT_DIMS as u32) as i32,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrays::AttribType;

    /// Attribute 0 is the position, attribute 1 a colour passed as varying 0; the fragment
    /// colour is `colour` (or `gl_FragCoord / size` with `coords`), lanes left of
    /// `discard_below_x` discard, and `spin` burns steps without end.
    #[derive(Default)]
    struct TestProgram {
        coords: Option<[f32; 2]>,
        discard_below_x: f32,
        spin: bool,
        texture_unit: Option<u32>,
    }

    impl ShaderProgram for TestProgram {
        fn varying_count(&self) -> usize {
            1
        }
        fn run_vertex(
            &self,
            _: &dyn ShaderTextures,
            attribs: &[[f32; 4]; MAX_VERTEX_ATTRIBS],
            position: &mut [f32; 4],
            varyings: &mut [f32],
            budget: &mut u64,
        ) -> Result<(), ShaderFault> {
            *budget -= 1;
            *position = attribs[0];
            varyings[..4].copy_from_slice(&attribs[1]);
            Ok(())
        }
        fn run_fragment_quad(
            &self,
            textures: &dyn ShaderTextures,
            input: &QuadIn<'_>,
            out: &mut QuadOut,
            budget: &mut u64,
        ) -> Result<(), ShaderFault> {
            if self.spin {
                // What a compiled `for (;;) {}` does: count down, then fail.
                *budget = 0;
                return Err(ShaderFault("budget".into()));
            }
            for l in 0..4 {
                let v = |c: usize| input.varyings[c * 4 + l];
                let fc = input.frag_coord[l];
                out.color[l] = match (self.coords, self.texture_unit) {
                    (_, Some(unit)) => textures.sample(unit, false, [v(0), v(1), 0.0], -10.0),
                    (Some([w, h]), None) => [fc[0] / w, fc[1] / h, 0.0, 1.0],
                    (None, None) => [v(0), v(1), v(2), v(3)],
                };
                if fc[0] < self.discard_below_x {
                    out.discarded |= 1 << l;
                }
            }
            Ok(())
        }
    }

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|f| f.to_le_bytes()).collect()
    }

    fn array(data: &[u8], size: u32) -> AttribArray<'_> {
        AttribArray {
            size,
            ty: AttribType::Float,
            normalized: false,
            stride: 0,
            data,
        }
    }

    const QUAD: [f32; 16] = [
        -1.0, -1.0, 0.0, 1.0, 1.0, -1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, -1.0, 1.0, 0.0, 1.0,
    ];

    fn draw_quad(
        ctx: &mut Gles11,
        program: &TestProgram,
        colors: &[f32; 16],
        target: &mut Surface,
    ) -> Result<DrawStats, ShaderFault> {
        let (pos, col) = (floats(&QUAD), floats(colors));
        let mut attribs = GenericAttribs::default();
        attribs.arrays[0] = Some(array(&pos, 4));
        attribs.arrays[1] = Some(array(&col, 4));
        ctx.draw_program(
            gl::GL_TRIANGLE_FAN,
            Indices::Range { first: 0, count: 4 },
            &attribs,
            program,
            &[0; MAX_TEXTURE_UNITS],
            target,
        )
    }

    const RED: [f32; 16] = [
        1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0,
    ];

    #[test]
    fn a_full_screen_fan_covers_every_pixel_once_in_window_orientation() {
        for parallel in [true, false] {
            let mut ctx = Gles11::new();
            ctx.set_parallel(parallel);
            let mut target = Surface::new(100, 70, false);
            let stats = draw_quad(&mut ctx, &TestProgram::default(), &RED, &mut target).unwrap();
            assert_eq!(stats.triangles, 2);
            assert!(
                target
                    .color
                    .pixels
                    .iter()
                    .all(|&p| p == pack([1.0, 0.0, 0.0, 1.0]))
            );
            // gl_FragCoord: origin at the bottom left, pixel centres at .5.
            let program = TestProgram {
                coords: Some([100.0, 70.0]),
                ..Default::default()
            };
            draw_quad(&mut ctx, &program, &RED, &mut target).unwrap();
            assert_eq!(
                target.color.get(0, 69),
                [to(0.5 / 100.0), to(0.5 / 70.0), 0, 255]
            );
            assert_eq!(
                target.color.get(99, 0),
                [to(99.5 / 100.0), to(69.5 / 70.0), 0, 255]
            );
            assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
        }
    }

    fn to(c: f32) -> u8 {
        crate::raster::to_u8(c)
    }

    #[test]
    fn varyings_are_interpolated_with_perspective() {
        // One triangle whose right vertex is twice as far (w = 2, coordinates scaled so
        // it lands at the same place): the varying is linear in 1/w, not in screen x.
        let pos = floats(&[
            -1.0, -1.0, 0.0, 1.0, 2.0, -2.0, 0.0, 2.0, -1.0, 1.0, 0.0, 1.0,
        ]);
        let col = floats(&[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let mut attribs = GenericAttribs::default();
        attribs.arrays[0] = Some(array(&pos, 4));
        attribs.arrays[1] = Some(array(&col, 4));
        let mut ctx = Gles11::new();
        let mut target = Surface::new(64, 64, false);
        ctx.draw_program(
            gl::GL_TRIANGLES,
            Indices::Range { first: 0, count: 3 },
            &attribs,
            &TestProgram::default(),
            &[0; MAX_TEXTURE_UNITS],
            &mut target,
        )
        .unwrap();
        // Along the bottom row, at screen fraction f the perspective-correct value is
        // (f/2) / ((1 − f) + f/2).
        let (x, y) = (31u32, 63u32);
        let f = (x as f32 + 0.5) / 64.0;
        let want = (f / 2.0) / ((1.0 - f) + f / 2.0);
        let got = f32::from(target.color.get(x, y)[0]) / 255.0;
        assert!((got - want).abs() < 0.02, "got {got}, want {want}");
        assert!((got - f).abs() > 0.1, "screen-linear interpolation");
    }

    #[test]
    fn discarded_fragments_leave_the_target_alone() {
        let mut ctx = Gles11::new();
        let mut target = Surface::new(40, 8, false);
        let program = TestProgram {
            discard_below_x: 20.0,
            ..Default::default()
        };
        draw_quad(&mut ctx, &program, &RED, &mut target).unwrap();
        assert_eq!(target.color.get(19, 4), [0, 0, 0, 0]);
        assert_eq!(target.color.get(20, 4), [255, 0, 0, 255]);
    }

    #[test]
    fn a_shader_that_never_ends_stops_the_draw_at_its_budget() {
        let mut ctx = Gles11::new();
        let mut target = Surface::new(16, 16, false);
        let program = TestProgram {
            spin: true,
            ..Default::default()
        };
        let err = draw_quad(&mut ctx, &program, &RED, &mut target).unwrap_err();
        assert!(err.0.contains("budget"), "{err}");
        // The context is still usable.
        draw_quad(&mut ctx, &TestProgram::default(), &RED, &mut target).unwrap();
        assert_eq!(target.color.get(8, 8), [255, 0, 0, 255]);
    }

    #[test]
    fn depth_test_keeps_the_nearer_fragment() {
        let mut ctx = Gles11::new();
        ctx.enable(gl::GL_DEPTH_TEST);
        let mut target = Surface::new(8, 8, true);
        let near: Vec<f32> = QUAD
            .chunks(4)
            .flat_map(|v| [v[0], v[1], -0.5, 1.0])
            .collect();
        let far: Vec<f32> = QUAD
            .chunks(4)
            .flat_map(|v| [v[0], v[1], 0.5, 1.0])
            .collect();
        let green = [0.0, 1.0, 0.0, 1.0].repeat(4);
        for (p, c) in [(&near, &RED[..]), (&far, &green[..])] {
            let (pos, col) = (floats(p), floats(c));
            let mut attribs = GenericAttribs::default();
            attribs.arrays[0] = Some(array(&pos, 4));
            attribs.arrays[1] = Some(array(&col, 4));
            ctx.draw_program(
                gl::GL_TRIANGLE_FAN,
                Indices::Range { first: 0, count: 4 },
                &attribs,
                &TestProgram::default(),
                &[0; MAX_TEXTURE_UNITS],
                &mut target,
            )
            .unwrap();
        }
        assert_eq!(target.color.get(4, 4), [255, 0, 0, 255]);
    }

    #[test]
    fn rendering_into_a_565_texture_rounds_and_keeps_window_row_order_then_samples_back() {
        let mut ctx = Gles11::new();
        let name = ctx.gen_textures(1)[0];
        ctx.bind_texture(gl::GL_TEXTURE_2D, name);
        ctx.tex_parameteri(
            gl::GL_TEXTURE_2D,
            gl::GL_TEXTURE_MIN_FILTER,
            gl::GL_NEAREST as i32,
        );
        ctx.tex_parameteri(
            gl::GL_TEXTURE_2D,
            gl::GL_TEXTURE_MAG_FILTER,
            gl::GL_NEAREST as i32,
        );
        ctx.tex_image_2d(
            gl::GL_TEXTURE_2D,
            0,
            gl::GL_RGB,
            4,
            4,
            0,
            gl::GL_RGB,
            gl::GL_UNSIGNED_SHORT_5_6_5,
            4,
            None,
        );
        assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
        let program = TestProgram {
            coords: Some([4.0, 4.0]),
            ..Default::default()
        };
        ctx.render_to_texture(name, |ctx, surface| {
            ctx.viewport(0, 0, 4, 4);
            draw_quad(ctx, &program, &RED, surface).unwrap();
        })
        .unwrap();
        // Texel row 0 is the window's bottom row (gl_FragCoord.y = 0.5), rounded to 5:6:5.
        let t = ctx.texture(name).unwrap().levels[0]
            .as_ref()
            .unwrap()
            .texels[0];
        let [r, g, b, a] = t.to_le_bytes();
        assert_eq!(
            (r, b, a),
            (
                round_565(pack([0.125, 0.0, 0.0, 1.0])).to_le_bytes()[0],
                0,
                255
            )
        );
        assert_eq!(g, round_565(pack([0.0, 0.125, 0.0, 1.0])).to_le_bytes()[1]);
        assert_ne!(r, to(0.125), "stored at 8 bits, not 5");
        // Sample it back through a texture unit: varying 0 carries (s, t).
        let st: [f32; 16] = [
            0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
        ];
        let (pos, col) = (floats(&QUAD), floats(&st));
        let mut attribs = GenericAttribs::default();
        attribs.arrays[0] = Some(array(&pos, 4));
        attribs.arrays[1] = Some(array(&col, 4));
        let mut units = [0; MAX_TEXTURE_UNITS];
        units[2] = name;
        let mut screen = Surface::new(4, 4, false);
        ctx.viewport(0, 0, 4, 4);
        let program = TestProgram {
            texture_unit: Some(2),
            ..Default::default()
        };
        ctx.draw_program(
            gl::GL_TRIANGLE_FAN,
            Indices::Range { first: 0, count: 4 },
            &attribs,
            &program,
            &units,
            &mut screen,
        )
        .unwrap();
        // The bottom-left screen pixel shows texel (0, 0).
        assert_eq!(screen.color.get(0, 3), t.to_le_bytes());
    }

    #[test]
    fn blending_uses_separate_factors_equations_and_the_constant_colour() {
        let b = Blend {
            rgb: (gl::GL_SRC_ALPHA, gl::GL_ONE_MINUS_SRC_ALPHA),
            alpha: (gl::GL_ONE, gl::GL_ZERO),
            equation: (crate::context::FUNC_ADD, crate::context::FUNC_ADD),
            color: [0.0; 4],
        };
        let out = b.apply([1.0, 0.0, 0.0, 0.25], [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(out, [0.25, 0.0, 0.75, 0.25]);
        let b = Blend {
            rgb: (0x8001, gl::GL_ONE),
            alpha: (gl::GL_ONE, gl::GL_ONE),
            equation: (
                crate::context::FUNC_REVERSE_SUBTRACT,
                crate::context::FUNC_SUBTRACT,
            ),
            color: [0.5, 0.5, 0.5, 0.5],
        };
        let out = b.apply([1.0, 1.0, 1.0, 0.25], [0.75, 0.5, 0.25, 1.0]);
        assert_eq!(out, [0.25, 0.0, -0.25, -0.75]);
    }

    #[test]
    fn incomplete_textures_sample_opaque_black() {
        let ctx = Gles11::new();
        let textures = UnitTextures::new(std::array::from_fn(|_| {
            ctx.texture(0).and_then(|t| t.sampler())
        }));
        assert_eq!(
            textures.sample(0, false, [0.5, 0.5, 0.0], 0.0),
            [0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(
            textures.sample(99, false, [0.5, 0.5, 0.0], 0.0),
            [0.0, 0.0, 0.0, 1.0]
        );
    }
}
