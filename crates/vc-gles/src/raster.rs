//! Stages 3–7 of the pipeline: clipping, triangle setup, tile binning, rasterisation and
//! per-fragment operations. See the crate documentation for the overview.
//!
//! # Invariants
//! * Window coordinates handed to the fixed-point setup are bounded: clipping keeps
//!   `|x/w|, |y/w| <= GUARD_BAND`, the viewport is at most [`MAX_VIEWPORT_DIMS`] and a
//!   viewport that misses the surface draws nothing, so every snapped coordinate is below
//!   2^26 sub-pixels and the `i64` edge equations cannot overflow.
//! * Each pixel belongs to exactly one tile and each tile walks its triangles in
//!   submission order, so the parallel result equals the serial one bit for bit.

use rayon::prelude::*;

use crate::gl;
use crate::image::Surface;
use crate::texture::{LANES, Sampler};

/// Tile edge in pixels; triangles are binned per 64×64 tile.
pub const TILE: u32 = 64;
/// Sub-pixel precision of the rasteriser: vertices are snapped to 1/256 pixel.
pub const SUBPIXEL_BITS: u32 = 8;
pub(crate) const SUB: f64 = (1u32 << SUBPIXEL_BITS) as f64;
pub(crate) const HALF: i64 = 1 << (SUBPIXEL_BITS - 1);
/// `GL_MAX_VIEWPORT_DIMS`: larger viewports are clamped to this.
pub const MAX_VIEWPORT_DIMS: i32 = 8192;
/// Rendering touches at most this many columns and rows of a surface.
pub const MAX_RENDER_DIM: u32 = 16384;
/// Guard band in NDC units: x and y are clipped at `±GUARD_BAND · w`, far outside the
/// viewport, so that the usual case needs no x/y clipping (pixels outside the viewport
/// are rejected by the scissor-like raster rectangle instead).
pub(crate) const GUARD_BAND: f32 = 32.0;
/// Triangle count above which setup runs in parallel as well.
const PARALLEL_SETUP_MIN: usize = 256;

/// A vertex after the modelview-projection transform.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClipVertex {
    /// Clip-space position.
    pub pos: [f32; 4],
    /// RGBA colour in `[0, 1]` (not clamped yet).
    pub col: [f32; 4],
    /// Texture coordinate `(s, t, q)` after the texture matrix (`r` is unused in 2D).
    pub tex: [f32; 3],
}

/// Depth-test state of a draw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DepthState {
    pub func: u32,
    pub write: bool,
}

/// The fixed state a draw runs with (a snapshot of the context).
#[derive(Clone, Debug)]
pub(crate) struct Pipeline<'a> {
    /// Viewport `x, y, w, h` in GL window coordinates (y up).
    pub viewport: [f32; 4],
    pub depth_range: [f32; 2],
    /// Surface height, for the y flip.
    pub surface_h: f32,
    /// Raster rectangle `x0, y0, x1, y1` (exclusive) in image coordinates (y down):
    /// surface ∩ viewport ∩ scissor.
    pub rect: [i32; 4],
    pub cull_front: bool,
    pub cull_back: bool,
    pub front_ccw: bool,
    pub depth: Option<DepthState>,
    pub sampler: Option<Sampler<'a>>,
    pub env_mode: u32,
    pub env_color: [f32; 4],
    pub blend: Option<(u32, u32)>,
    pub alpha_test: Option<(u32, f32)>,
    pub color_mask: [bool; 4],
    /// True when the colour differs between vertices (a colour array is enabled).
    pub varying_color: bool,
    /// The colour of every vertex when `varying_color` is false.
    pub const_color: [f32; 4],
    /// True when `q == 1` for every vertex (no projective texturing).
    pub unit_q: bool,
    pub parallel: bool,
}

/// `value(px, py) = c + dx · (px − ox) + dy · (py − oy)` over pixel centres.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Plane {
    pub c: f32,
    pub dx: f32,
    pub dy: f32,
}

impl Plane {
    #[inline]
    pub(crate) fn at(&self, fx: f32, fy: f32) -> f32 {
        self.c + self.dx * fx + self.dy * fy
    }
}

/// A set-up triangle, ready for any tile.
#[derive(Clone, Debug)]
struct Tri {
    /// Edge equations `A·x + B·y + C` over sub-pixel coordinates of pixel centres;
    /// the fill-rule bias is folded into `C`; a sample is inside when all three are ≥ 0.
    edges: [[i64; 3]; 3],
    /// Pixel bounding box `x0, y0, x1, y1` (exclusive), already within the raster rectangle.
    bbox: [i32; 4],
    ox: f32,
    oy: f32,
    z: Plane,
    inv_w: Plane,
    col: [Plane; 4],
    tex: [Plane; 3],
    minify: bool,
}

/// A vertex after perspective division and the viewport transform (image space, y down).
#[derive(Clone, Copy, Debug, Default)]
struct ScreenVertex {
    x: f64,
    y: f64,
    z: f32,
    inv_w: f32,
    /// Colour divided by w.
    col: [f32; 4],
    /// `(s, t, q)` divided by w.
    tex: [f32; 3],
    /// `s/q, t/q`, for the level-of-detail estimate.
    st: [f32; 2],
}

// ---------------------------------------------------------------- clipping

/// Up to 3 + 6 vertices (one per clip plane).
struct Poly {
    v: [ClipVertex; 12],
    n: usize,
}

#[inline]
fn plane_dist(v: &ClipVertex, plane: usize) -> f32 {
    let [x, y, z, w] = v.pos;
    match plane {
        0 => z + w, // near
        1 => w - z, // far
        2 => GUARD_BAND * w - x,
        3 => GUARD_BAND * w + x,
        4 => GUARD_BAND * w - y,
        _ => GUARD_BAND * w + y,
    }
}

fn lerp_vertex(a: &ClipVertex, b: &ClipVertex, t: f32) -> ClipVertex {
    let mut out = *a;
    for i in 0..4 {
        out.pos[i] = a.pos[i] + (b.pos[i] - a.pos[i]) * t;
        out.col[i] = a.col[i] + (b.col[i] - a.col[i]) * t;
    }
    for i in 0..3 {
        out.tex[i] = a.tex[i] + (b.tex[i] - a.tex[i]) * t;
    }
    out
}

/// Sutherland–Hodgman against near, far and the guard band, in homogeneous space.
/// Intersections are always computed from the inside vertex towards the outside one,
/// so two triangles sharing an edge get bit-identical new vertices.
fn clip_triangle(tri: &[ClipVertex; 3], out: &mut Poly) {
    let mut a = Poly {
        v: [ClipVertex::default(); 12],
        n: 3,
    };
    a.v[..3].copy_from_slice(tri);
    let mut mask_any = 0u32;
    let mut mask_all = 0x3Fu32;
    for v in tri {
        let mut m = 0u32;
        for p in 0..6 {
            if plane_dist(v, p) < 0.0 {
                m |= 1 << p;
            }
        }
        mask_any |= m;
        mask_all &= m;
    }
    out.n = 0;
    if mask_all != 0 {
        return; // entirely outside one plane
    }
    if mask_any == 0 {
        out.v[..3].copy_from_slice(tri);
        out.n = 3;
        return;
    }
    let mut b = Poly {
        v: [ClipVertex::default(); 12],
        n: 0,
    };
    for p in 0..6 {
        if mask_any & (1 << p) == 0 {
            continue;
        }
        b.n = 0;
        for i in 0..a.n {
            let cur = a.v[i];
            let nxt = a.v[(i + 1) % a.n];
            let (dc, dn) = (plane_dist(&cur, p), plane_dist(&nxt, p));
            if dc >= 0.0 {
                b.v[b.n] = cur;
                b.n += 1;
                if dn < 0.0 {
                    b.v[b.n] = lerp_vertex(&cur, &nxt, dc / (dc - dn));
                    b.n += 1;
                }
            } else if dn >= 0.0 {
                b.v[b.n] = lerp_vertex(&nxt, &cur, dn / (dn - dc));
                b.n += 1;
            }
            if b.n + 2 > b.v.len() {
                break; // cannot happen for a triangle and 6 planes; keeps indexing safe
            }
        }
        std::mem::swap(&mut a, &mut b);
        if a.n < 3 {
            return;
        }
    }
    out.v[..a.n].copy_from_slice(&a.v[..a.n]);
    out.n = a.n;
}

// ---------------------------------------------------------------- setup

impl Pipeline<'_> {
    fn project(&self, v: &ClipVertex) -> Option<ScreenVertex> {
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
        let q = if v.tex[2] == 0.0 {
            f32::MIN_POSITIVE
        } else {
            v.tex[2]
        };
        Some(ScreenVertex {
            x: wx,
            y: f64::from(self.surface_h) - wy,
            z: dn + (df - dn) * (nz + 1.0) * 0.5,
            inv_w,
            col: v.col.map(|c| c * inv_w),
            tex: v.tex.map(|t| t * inv_w),
            st: [v.tex[0] / q, v.tex[1] / q],
        })
    }

    /// Clips, projects, culls and sets up one triangle (possibly several after clipping).
    fn setup(&self, tri: &[ClipVertex; 3], out: &mut Vec<Tri>) {
        if tri.iter().any(|v| v.pos.iter().any(|c| !c.is_finite())) {
            return;
        }
        let mut poly = Poly {
            v: [ClipVertex::default(); 12],
            n: 0,
        };
        clip_triangle(tri, &mut poly);
        if poly.n < 3 {
            return;
        }
        let mut sv = [ScreenVertex::default(); 12];
        for (dst, v) in sv.iter_mut().zip(&poly.v[..poly.n]) {
            match self.project(v) {
                Some(s) => *dst = s,
                None => return,
            }
        }
        let sv = &sv[..poly.n];
        // Facing from the signed area of the whole clipped polygon in GL window
        // coordinates (y up): image y is flipped, hence the minus sign.
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
            if let Some(t) = self.setup_one(&sv[0], &sv[i], &sv[i + 1]) {
                out.push(t);
            }
        }
    }

    fn setup_one(&self, a: &ScreenVertex, b: &ScreenVertex, c: &ScreenVertex) -> Option<Tri> {
        let snap = |v: &ScreenVertex| ((v.x * SUB).round() as i64, (v.y * SUB).round() as i64);
        let (mut v, mut p) = ([*a, *b, *c], [snap(a), snap(b), snap(c)]);
        let area2 = |p: &[(i64, i64); 3]| {
            (p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[1].1 - p[0].1) * (p[2].0 - p[0].0)
        };
        let mut ar = area2(&p);
        if ar == 0 {
            return None;
        }
        if ar < 0 {
            v.swap(1, 2);
            p.swap(1, 2);
            ar = -ar;
        }
        let (edges, bbox) = edges_and_bbox(&p, self.rect)?;
        // Attribute planes over the snapped positions, in pixels.
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
        let z = plane(v[0].z, v[1].z, v[2].z);
        let inv_w = plane(v[0].inv_w, v[1].inv_w, v[2].inv_w);
        let col = std::array::from_fn(|i| plane(v[0].col[i], v[1].col[i], v[2].col[i]));
        let tex = std::array::from_fn(|i| plane(v[0].tex[i], v[1].tex[i], v[2].tex[i]));
        // Level of detail, once per triangle: minification when the triangle covers more
        // texels than pixels.
        let minify = self.sampler.as_ref().is_some_and(|s| {
            let (s1, t1) = (v[1].st[0] - v[0].st[0], v[1].st[1] - v[0].st[1]);
            let (s2, t2) = (v[2].st[0] - v[0].st[0], v[2].st[1] - v[0].st[1]);
            let tex_area =
                f64::from((s1 * t2 - s2 * t1).abs()) * f64::from(s.width) * f64::from(s.height);
            let px_area = ar as f64 / (SUB * SUB);
            tex_area > px_area
        });
        Some(Tri {
            edges,
            bbox,
            ox: x0 as f32,
            oy: y0 as f32,
            z,
            inv_w,
            col,
            tex,
            minify,
        })
    }
}

/// The edge functions of a counter-clockwise (y down) triangle with snapped sub-pixel
/// vertices `p` — edge i runs from p[i] to p[i+1], the fill-rule bias folded into C so
/// that a pixel centre is inside when all three are ≥ 0 — and its pixel bounding box
/// within `rect`; `None` when that box is empty. Both pipelines set up triangles with it.
pub(crate) fn edges_and_bbox(
    p: &[(i64, i64); 3],
    rect: [i32; 4],
) -> Option<([[i64; 3]; 3], [i32; 4])> {
    let mut edges = [[0i64; 3]; 3];
    for (i, edge) in edges.iter_mut().enumerate() {
        let (s, e) = (p[i], p[(i + 1) % 3]);
        let ea = -(e.1 - s.1);
        let eb = e.0 - s.0;
        let mut ec = -(ea * s.0 + eb * s.1);
        // Top-left rule (y down): a top edge is horizontal going +x, a left edge goes up.
        let top_left = (ea == 0 && eb > 0) || ea > 0;
        if !top_left {
            ec -= 1;
        }
        *edge = [ea, eb, ec];
    }
    let sub = 1i64 << SUBPIXEL_BITS;
    let (minx, maxx) = (p.iter().map(|q| q.0).min()?, p.iter().map(|q| q.0).max()?);
    let (miny, maxy) = (p.iter().map(|q| q.1).min()?, p.iter().map(|q| q.1).max()?);
    // Pixels k whose centre k·sub + HALF lies in [min, max]: from ⌊(min − HALF)/sub⌋
    // (conservative) to ⌊(max − HALF)/sub⌋ inclusive.
    let lo = |m: i64| (m - HALF).div_euclid(sub) as i32;
    let hi = |m: i64| ((m - HALF).div_euclid(sub) + 1) as i32;
    let bbox = [
        lo(minx).max(rect[0]),
        lo(miny).max(rect[1]),
        hi(maxx).min(rect[2]),
        hi(maxy).min(rect[3]),
    ];
    (bbox[0] < bbox[2] && bbox[1] < bbox[3]).then_some((edges, bbox))
}

// ---------------------------------------------------------------- fragments

#[inline]
pub(crate) fn compare(func: u32, a: f32, b: f32) -> bool {
    match func {
        gl::GL_NEVER => false,
        gl::GL_LESS => a < b,
        gl::GL_EQUAL => a == b,
        gl::GL_LEQUAL => a <= b,
        gl::GL_GREATER => a > b,
        gl::GL_NOTEQUAL => a != b,
        gl::GL_GEQUAL => a >= b,
        _ => true,
    }
}

/// Texture environment (GL ES 1.1 table 3.15/3.16). `cf`, `ct`, `cc` in `[0, 1]`.
#[inline]
fn tex_env(mode: u32, fmt: u32, cf: [f32; 4], ct: [f32; 4], cc: [f32; 4]) -> [f32; 4] {
    let has_rgb = fmt != gl::GL_ALPHA;
    let has_a = matches!(fmt, gl::GL_RGBA | gl::GL_ALPHA | gl::GL_LUMINANCE_ALPHA);
    let mut o = cf;
    match mode {
        gl::GL_REPLACE => {
            if has_rgb {
                o[..3].copy_from_slice(&ct[..3]);
            }
            if has_a {
                o[3] = ct[3];
            }
        }
        gl::GL_DECAL => {
            if fmt == gl::GL_RGB {
                o[..3].copy_from_slice(&ct[..3]);
            } else if fmt == gl::GL_RGBA {
                for i in 0..3 {
                    o[i] = cf[i] * (1.0 - ct[3]) + ct[i] * ct[3];
                }
            }
        }
        gl::GL_BLEND => {
            if has_rgb {
                for i in 0..3 {
                    o[i] = cf[i] * (1.0 - ct[i]) + cc[i] * ct[i];
                }
            }
            if has_a {
                o[3] = cf[3] * ct[3];
            }
        }
        gl::GL_ADD => {
            if has_rgb {
                for i in 0..3 {
                    o[i] = (cf[i] + ct[i]).min(1.0);
                }
            }
            if has_a {
                o[3] = cf[3] * ct[3];
            }
        }
        _ => {
            // GL_MODULATE
            if has_rgb {
                for i in 0..3 {
                    o[i] = cf[i] * ct[i];
                }
            }
            if has_a {
                o[3] = cf[3] * ct[3];
            }
        }
    }
    o
}

#[inline]
pub(crate) fn blend_factor(f: u32, s: [f32; 4], d: [f32; 4]) -> [f32; 4] {
    match f {
        gl::GL_ZERO => [0.0; 4],
        gl::GL_SRC_COLOR => s,
        gl::GL_ONE_MINUS_SRC_COLOR => s.map(|c| 1.0 - c),
        gl::GL_SRC_ALPHA => [s[3]; 4],
        gl::GL_ONE_MINUS_SRC_ALPHA => [1.0 - s[3]; 4],
        gl::GL_DST_ALPHA => [d[3]; 4],
        gl::GL_ONE_MINUS_DST_ALPHA => [1.0 - d[3]; 4],
        gl::GL_DST_COLOR => d,
        gl::GL_ONE_MINUS_DST_COLOR => d.map(|c| 1.0 - c),
        gl::GL_SRC_ALPHA_SATURATE => {
            let f = s[3].min(1.0 - d[3]);
            [f, f, f, 1.0]
        }
        _ => [1.0; 4], // GL_ONE
    }
}

/// Rounds `[0, 1]` channels to 8 bits (round to nearest; NaN → 0).
#[inline]
pub(crate) fn to_u8(c: f32) -> u8 {
    (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

#[inline]
pub(crate) fn pack(c: [f32; 4]) -> u32 {
    u32::from_le_bytes([to_u8(c[0]), to_u8(c[1]), to_u8(c[2]), to_u8(c[3])])
}

pub(crate) const INV255: f32 = 1.0 / 255.0;

/// The pixels `k` in `0..n` of a row (pixel centres `x = cx0 + k·sub`, `y = cy`) where every
/// edge function `A·x + B·y + C` is ≥ 0, as `lo..hi`; `None` if there are none. Exact: the
/// same pixels as testing each one.
pub(crate) fn covered_span(
    edges: &[[i64; 3]; 3],
    cx0: i64,
    cy: i64,
    sub: i64,
    n: i64,
) -> Option<(i64, i64)> {
    let (mut lo, mut hi) = (0i64, n);
    for &[a, b, c] in edges {
        let e0 = a * cx0 + b * cy + c;
        let step = a * sub;
        if step > 0 {
            // Increasing along the row: inside from the first k with e0 + k·step ≥ 0.
            if e0 < 0 {
                lo = lo.max((-e0 + step - 1) / step);
            }
        } else if step < 0 {
            // Decreasing: inside up to the last k with e0 + k·step ≥ 0.
            if e0 < 0 {
                return None;
            }
            hi = hi.min(e0 / -step + 1);
        } else if e0 < 0 {
            return None;
        }
    }
    (lo < hi).then_some((lo, hi))
}

impl Pipeline<'_> {
    /// The texel passes through unchanged (white colour, MODULATE/REPLACE, no blending).
    fn passthrough(&self) -> bool {
        self.sampler.is_some()
            && !self.varying_color
            && self.const_color == [1.0; 4]
            && matches!(self.env_mode, gl::GL_MODULATE | gl::GL_REPLACE)
            && self.sampler.is_some_and(|s| s.format != gl::GL_ALPHA)
            && self.blend.is_none()
            && self.alpha_test.is_none()
            && self.color_mask == [true; 4]
    }

    /// Rasterises `tri` over `rect` (inside this band), writing into the band's rows.
    #[allow(clippy::too_many_arguments)]
    fn raster(
        &self,
        tri: &Tri,
        rect: [i32; 4],
        color: &mut [u32],
        mut depth: Option<&mut [f32]>,
        band_y0: i32,
        width: usize,
        passthrough: bool,
    ) {
        if let Some(sampler) = self.nearest_copy(tri, passthrough, depth.is_some()) {
            return self.raster_nearest_copy(tri, sampler, rect, color, band_y0, width);
        }
        let sub = 1i64 << SUBPIXEL_BITS;
        let cx0 = i64::from(rect[0]) * sub + HALF;
        for py in rect[1]..rect[3] {
            let cy = i64::from(py) * sub + HALF;
            let mut e = tri.edges.map(|[a, b, c]| a * cx0 + b * cy + c);
            let step = tri.edges.map(|[a, _, _]| a * sub);
            let row = (py - band_y0) as usize * width;
            let fy = py as f32 + 0.5 - tri.oy;
            for px in rect[0]..rect[2] {
                if (e[0] | e[1] | e[2]) >= 0 {
                    let idx = row + px as usize;
                    let fx = px as f32 + 0.5 - tri.ox;
                    self.fragment(tri, fx, fy, idx, color, depth.as_deref_mut(), passthrough);
                }
                e[0] += step[0];
                e[1] += step[1];
                e[2] += step[2];
            }
        }
    }

    /// The sampler, when every fragment of `tri` is just its nearest texel: a passthrough
    /// draw (see [`Pipeline::passthrough`]) with nearest filtering and no depth test.
    fn nearest_copy(&self, tri: &Tri, passthrough: bool, has_depth: bool) -> Option<&Sampler<'_>> {
        let s = self.sampler.as_ref()?;
        let linear = if tri.minify {
            s.min_linear
        } else {
            s.mag_linear
        };
        (passthrough && !linear && (self.depth.is_none() || !has_depth)).then_some(s)
    }

    /// [`Pipeline::raster`] for a [`Pipeline::nearest_copy`] draw: each row's covered span
    /// is solved from the edge equations (no test per pixel), and its pixels are shaded
    /// [`LANES`] at a time with the same arithmetic as [`Pipeline::fragment`], so the
    /// result is the same bit for bit.
    fn raster_nearest_copy(
        &self,
        tri: &Tri,
        s: &Sampler<'_>,
        rect: [i32; 4],
        color: &mut [u32],
        band_y0: i32,
        width: usize,
    ) {
        let sub = 1i64 << SUBPIXEL_BITS;
        let cx0 = i64::from(rect[0]) * sub + HALF;
        let n = i64::from(rect[2] - rect[0]);
        let q_plane = if self.unit_q { tri.inv_w } else { tri.tex[2] };
        let [sp, tp, _] = tri.tex;
        for py in rect[1]..rect[3] {
            let cy = i64::from(py) * sub + HALF;
            let Some((lo, hi)) = covered_span(&tri.edges, cx0, cy, sub, n) else {
                continue;
            };
            let fy = py as f32 + 0.5 - tri.oy;
            let row = (py - band_y0) as usize * width;
            let (x0, x1) = (rect[0] + lo as i32, rect[0] + hi as i32);
            let mut px = x0;
            while px < x1 {
                let m = ((x1 - px) as usize).min(LANES);
                let fx: [f32; LANES] =
                    std::array::from_fn(|l| (px + l as i32) as f32 + 0.5 - tri.ox);
                let q = fx.map(|fx| q_plane.at(fx, fy));
                let ss = std::array::from_fn(|l| sp.at(fx[l], fy) / q[l]);
                let tt = std::array::from_fn(|l| tp.at(fx[l], fy) / q[l]);
                let out = s.nearest_lanes(&ss, &tt);
                let start = row + px as usize;
                if let Some(dst) = color.get_mut(start..start + m) {
                    dst.copy_from_slice(&out[..m]);
                }
                px += m as i32;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fragment(
        &self,
        tri: &Tri,
        fx: f32,
        fy: f32,
        idx: usize,
        color: &mut [u32],
        depth: Option<&mut [f32]>,
        passthrough: bool,
    ) {
        let Some(dst) = color.get(idx).copied() else {
            return;
        };
        let mut zslot = None;
        if let (Some(ds), Some(d)) = (self.depth, depth) {
            let z = tri.z.at(fx, fy).clamp(0.0, 1.0);
            let Some(stored) = d.get_mut(idx) else {
                return;
            };
            if self.alpha_test.is_none() {
                if !compare(ds.func, z, *stored) {
                    return;
                }
                if ds.write {
                    *stored = z;
                }
            } else {
                zslot = Some((ds, z, stored));
            }
        }
        let inv_w = tri.inv_w.at(fx, fy);
        let mut texel = None;
        if let Some(s) = self.sampler.as_ref() {
            let q = if self.unit_q {
                inv_w
            } else {
                tri.tex[2].at(fx, fy)
            };
            let (ss, tt) = (tri.tex[0].at(fx, fy) / q, tri.tex[1].at(fx, fy) / q);
            let linear = if tri.minify {
                s.min_linear
            } else {
                s.mag_linear
            };
            if passthrough && !linear {
                // White × texel = texel (RGB/luminance texels carry alpha 255).
                color[idx] = s.nearest(ss, tt);
                return;
            }
            texel = Some((s.format, s.sample(ss, tt, tri.minify)));
        }
        let mut c = if self.varying_color {
            let w = 1.0 / inv_w;
            std::array::from_fn(|i| (tri.col[i].at(fx, fy) * w).clamp(0.0, 1.0))
        } else {
            self.const_color
        };
        if let Some((format, t)) = texel {
            c = tex_env(
                self.env_mode,
                format,
                c,
                t.map(|v| v * INV255),
                self.env_color,
            );
        }
        if let Some((func, reference)) = self.alpha_test {
            if !compare(func, c[3], reference) {
                return;
            }
            if let Some((ds, z, stored)) = zslot {
                if !compare(ds.func, z, *stored) {
                    return;
                }
                if ds.write {
                    *stored = z;
                }
            }
        }
        let d = dst.to_le_bytes().map(|v| f32::from(v) * INV255);
        if let Some((sf, df)) = self.blend {
            let (fs, fd) = (blend_factor(sf, c, d), blend_factor(df, c, d));
            for i in 0..4 {
                c[i] = (c[i] * fs[i] + d[i] * fd[i]).clamp(0.0, 1.0);
            }
        }
        for i in 0..4 {
            if !self.color_mask[i] {
                c[i] = d[i];
            }
        }
        color[idx] = pack(c);
    }

    /// Sets up, bins and rasterises `tris` (indices into `verts`) into `target`.
    pub(crate) fn draw(&self, verts: &[ClipVertex], tris: &[[u32; 3]], target: &mut Surface) {
        let fetch = |t: &[u32; 3]| -> Option<[ClipVertex; 3]> {
            Some([
                *verts.get(t[0] as usize)?,
                *verts.get(t[1] as usize)?,
                *verts.get(t[2] as usize)?,
            ])
        };
        let setup: Vec<Tri> = if self.parallel && tris.len() >= PARALLEL_SETUP_MIN {
            tris.par_iter()
                .flat_map_iter(|t| {
                    let mut out = Vec::new();
                    if let Some(v) = fetch(t) {
                        self.setup(&v, &mut out);
                    }
                    out
                })
                .collect()
        } else {
            let mut out = Vec::new();
            for t in tris {
                if let Some(v) = fetch(t) {
                    self.setup(&v, &mut out);
                }
            }
            out
        };
        if setup.is_empty() {
            return;
        }
        self.raster_all(&setup, target);
    }

    fn raster_all(&self, tris: &[Tri], target: &mut Surface) {
        let width = target.color.width as usize;
        let height = target.color.height;
        let ntx = target.color.width.min(MAX_RENDER_DIM).div_ceil(TILE) as usize;
        let nty = height.min(MAX_RENDER_DIM).div_ceil(TILE) as usize;
        let mut bins: Vec<Vec<u32>> = vec![Vec::new(); ntx * nty];
        let tile = TILE as i32;
        let sub = 1i64 << SUBPIXEL_BITS;
        for (ti, tri) in tris.iter().enumerate() {
            let [x0, y0, x1, y1] = tri.bbox;
            for ty in (y0 / tile)..=((y1 - 1) / tile) {
                for tx in (x0 / tile)..=((x1 - 1) / tile) {
                    // Reject tiles that lie wholly outside one edge (test the corner of the
                    // tile's pixel-centre rectangle where that edge function is largest).
                    let (px0, px1) = (tx * tile, tx * tile + tile - 1);
                    let (py0, py1) = (ty * tile, ty * tile + tile - 1);
                    let outside = tri.edges.iter().any(|&[a, b, c]| {
                        let x = i64::from(if a > 0 { px1 } else { px0 }) * sub + HALF;
                        let y = i64::from(if b > 0 { py1 } else { py0 }) * sub + HALF;
                        a * x + b * y + c < 0
                    });
                    if !outside {
                        if let Some(bin) = bins.get_mut(ty as usize * ntx + tx as usize) {
                            bin.push(ti as u32);
                        }
                    }
                }
            }
        }
        let passthrough = self.passthrough();
        let band_len = width * TILE as usize;
        let depth_ok = target.depth_buffer().is_some();
        let color_bands = target.color.pixels.chunks_mut(band_len);
        let depth_bands: Vec<Option<&mut [f32]>> = match target.depth.as_mut() {
            Some(d) if depth_ok => d.chunks_mut(band_len).map(Some).collect(),
            _ => Vec::new(),
        };
        let mut depth_iter = depth_bands.into_iter();
        let mut jobs = Vec::with_capacity(nty);
        for (by, cb) in color_bands.enumerate().take(nty) {
            let db = depth_iter.next().flatten();
            if bins[by * ntx..(by + 1) * ntx].iter().any(|b| !b.is_empty()) {
                jobs.push((by, cb, db));
            }
        }
        let run = |(by, cb, mut db): (usize, &mut [u32], Option<&mut [f32]>)| {
            let band_y0 = by as i32 * tile;
            for tx in 0..ntx {
                let trect = [
                    tx as i32 * tile,
                    band_y0,
                    (tx as i32 + 1) * tile,
                    band_y0 + tile,
                ];
                for &ti in &bins[by * ntx + tx] {
                    let Some(tri) = tris.get(ti as usize) else {
                        continue;
                    };
                    let r = [
                        trect[0].max(tri.bbox[0]),
                        trect[1].max(tri.bbox[1]),
                        trect[2].min(tri.bbox[2]),
                        trect[3].min(tri.bbox[3]),
                    ];
                    if r[0] < r[2] && r[1] < r[3] {
                        self.raster(tri, r, cb, db.as_deref_mut(), band_y0, width, passthrough);
                    }
                }
            }
        };
        if self.parallel {
            jobs.into_par_iter().for_each(run);
        } else {
            jobs.into_iter().for_each(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_span_is_exactly_the_pixels_that_pass_every_edge_test() {
        let sub = 1i64 << SUBPIXEL_BITS;
        let mut v = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |range: i64| {
            v ^= v << 13;
            v ^= v >> 7;
            v ^= v << 17;
            (v % (2 * range as u64 + 1)) as i64 - range
        };
        for _ in 0..20_000 {
            let edges: [[i64; 3]; 3] =
                std::array::from_fn(|_| [next(300), next(300), next(2_000_000)]);
            let (cx0, cy, n) = (
                next(5_000) * sub + HALF,
                next(5_000) * sub + HALF,
                1 + next(40).abs(),
            );
            let want: Vec<i64> = (0..n)
                .filter(|k| {
                    edges
                        .iter()
                        .all(|[a, b, c]| a * (cx0 + k * sub) + b * cy + c >= 0)
                })
                .collect();
            let got: Vec<i64> = covered_span(&edges, cx0, cy, sub, n)
                .map_or(Vec::new(), |(lo, hi)| (lo..hi).collect());
            assert_eq!(got, want, "edges {edges:?} cx0 {cx0} cy {cy} n {n}");
        }
    }

    #[test]
    fn clipping_against_near_plane_keeps_w_positive() {
        let mk = |x: f32, y: f32, z: f32, w: f32| ClipVertex {
            pos: [x, y, z, w],
            ..Default::default()
        };
        let tri = [
            mk(0.0, 0.0, 0.5, 1.0),
            mk(1.0, 0.0, -3.0, -1.0),
            mk(0.0, 1.0, 0.5, 1.0),
        ];
        let mut out = Poly {
            v: [ClipVertex::default(); 12],
            n: 0,
        };
        clip_triangle(&tri, &mut out);
        assert_eq!(out.n, 4);
        for v in &out.v[..out.n] {
            assert!(v.pos[3] > 0.0);
            assert!(v.pos[2] + v.pos[3] >= -1e-6);
        }
        // Entirely behind the eye: nothing.
        let tri = [
            mk(0.0, 0.0, 2.0, -1.0),
            mk(1.0, 0.0, 2.0, -1.0),
            mk(0.0, 1.0, 2.0, -1.0),
        ];
        clip_triangle(&tri, &mut out);
        assert_eq!(out.n, 0);
    }

    #[test]
    fn env_modes() {
        let cf = [0.5, 0.5, 0.5, 0.5];
        let ct = [1.0, 0.0, 0.5, 0.25];
        assert_eq!(
            tex_env(gl::GL_MODULATE, gl::GL_RGBA, cf, ct, [0.0; 4]),
            [0.5, 0.0, 0.25, 0.125]
        );
        assert_eq!(
            tex_env(gl::GL_MODULATE, gl::GL_RGB, cf, ct, [0.0; 4]),
            [0.5, 0.0, 0.25, 0.5]
        );
        assert_eq!(
            tex_env(gl::GL_REPLACE, gl::GL_RGB, cf, ct, [0.0; 4]),
            [1.0, 0.0, 0.5, 0.5]
        );
        assert_eq!(
            tex_env(gl::GL_REPLACE, gl::GL_ALPHA, cf, ct, [0.0; 4]),
            [0.5, 0.5, 0.5, 0.25]
        );
        assert_eq!(to_u8(0.15), 38);
        assert_eq!(to_u8(0.25), 64);
        assert_eq!(to_u8(0.35), 89);
        assert_eq!(to_u8(f32::NAN), 0);
    }
}
