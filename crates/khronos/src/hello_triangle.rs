//! The `hello_triangle` scene: a textured cube tumbling in front of a slate-blue background,
//! issuing exactly the GL calls of the Raspberry Pi demo (spec §2.2 steps 14–22).
//!
//! The demo's three photographs are not used: [`textures`] paints three 128×128 RGB pictures
//! procedurally in their spirit (an arcaded church façade under a blue sky, a mud-brick
//! mosque against a pale-peach sky, a roof of turquoise and orange tiles with green balls).

use std::f64::consts::PI;

use crate::error::Result;
use crate::gles::{Gl, consts::*};

/// Width and height of each texture.
pub const TEXTURE_SIZE: usize = 128;
/// Bytes of each texture (128 × 128 × RGB).
pub const TEXTURE_BYTES: usize = TEXTURE_SIZE * TEXTURE_SIZE * 3;

/// `quadx`: 24 vertices × 3 signed bytes; face f is the strip of vertices 4f..4f+3.
#[rustfmt::skip]
pub const QUADX: [i8; 72] = [
    // front (z = +10)
    -10, -10,  10,   10, -10,  10,  -10,  10,  10,   10,  10,  10,
    // back (z = -10)
    -10, -10, -10,  -10,  10, -10,   10, -10, -10,   10,  10, -10,
    // left (x = -10)
    -10, -10,  10,  -10,  10,  10,  -10, -10, -10,  -10,  10, -10,
    // right (x = +10)
     10, -10, -10,   10,  10, -10,   10, -10,  10,   10,  10,  10,
    // top (y = +10)
    -10,  10,  10,   10,  10,  10,  -10,  10, -10,   10,  10, -10,
    // bottom (y = -10)
    -10, -10,  10,  -10, -10, -10,   10, -10,  10,   10, -10, -10,
];

/// `texCoords`: (0,0), (0,1), (1,0), (1,1) for every face.
pub const TEX_COORDS: [f32; 48] = {
    let mut t = [0.0f32; 48];
    let mut v = 0;
    while v < 24 {
        let corner = v % 4;
        t[2 * v] = if corner >= 2 { 1.0 } else { 0.0 };
        t[2 * v + 1] = if corner % 2 == 1 { 1.0 } else { 0.0 };
        v += 1;
    }
    t
};

/// The vertex array as client memory (a `static`, so its address is stable like the C array).
static QUADX_BYTES: [u8; 72] = {
    let mut out = [0u8; 72];
    let mut i = 0;
    while i < 72 {
        out[i] = QUADX[i] as u8;
        i += 1;
    }
    out
};

/// The texture coordinates as client memory.
static TEX_COORD_BYTES: [u8; 192] = {
    let mut out = [0u8; 192];
    let mut i = 0;
    while i < 48 {
        let b = TEX_COORDS[i].to_le_bytes();
        out[4 * i] = b[0];
        out[4 * i + 1] = b[1];
        out[4 * i + 2] = b[2];
        out[4 * i + 3] = b[3];
        i += 1;
    }
    out
};

/// The per-face extra rotation `(angle, x, y, z)` applied cumulatively before drawing face f.
pub const FACE_ROTATIONS: [(f32, f32, f32, f32); 6] = [
    (270.0, 0.0, 0.0, 1.0),
    (90.0, 0.0, 0.0, 1.0),
    (90.0, 1.0, 0.0, 0.0),
    (90.0, 1.0, 0.0, 0.0),
    (270.0, 0.0, 1.0, 0.0),
    (90.0, 0.0, 1.0, 0.0),
];

/// Clear colour: RGB (0.15, 0.25, 0.35) → (38, 64, 89) in 8 bits.
pub const CLEAR_COLOUR: [f32; 4] = [0.15, 0.25, 0.35, 1.0];

/// The model angles `(ax, ay, az)` in degrees used by frame `k` (k = 1 is the first frame;
/// 0 is the reset state). `update_model` adds 0.5° to x and y each frame and wraps by −360
/// once ≥ 360; z has increment 0 and its wrap rule flips it between 360 (odd frames) and 0.
pub fn model_angles(k: u32) -> (f32, f32, f32) {
    let wrap = |start: f64| ((start + 0.5 * f64::from(k)) % 360.0) as f32;
    let az = if k % 2 == 1 { 360.0 } else { 0.0 };
    (wrap(45.0), wrap(30.0), az)
}

/// `(hwd, hht)`: the frustum's half width and half height at the near plane (z = 1) for a
/// 45° vertical field of view.
pub fn frustum_half_extents(width: u32, height: u32) -> (f32, f32) {
    let hht = (45.0 / 2.0 / 180.0 * PI).tan() as f32;
    let hwd = hht * width as f32 / height as f32;
    (hwd, hht)
}

/// The cube scene.
#[derive(Clone, Debug)]
pub struct Cube {
    width: u32,
    height: u32,
    images: [Vec<u8>; 3],
    tex: [u32; 6],
}

impl Cube {
    /// A cube for a `width` × `height` window with the generated [`textures`].
    pub fn new(width: u32, height: u32) -> Cube {
        Cube::with_textures(width, height, textures())
    }

    /// A cube with caller-supplied 128×128 RGB images (each must be [`TEXTURE_BYTES`] long).
    pub fn with_textures(width: u32, height: u32, images: [Vec<u8>; 3]) -> Cube {
        Cube {
            width,
            height,
            images,
            tex: [0; 6],
        }
    }

    /// The texture names the VideoCore gave (zero before [`setup`](Cube::setup)).
    pub fn texture_names(&self) -> [u32; 6] {
        self.tex
    }

    /// `init_ogl`'s GL part, `init_model_proj` and `init_textures` (spec §2.2 steps 14–20):
    /// state, projection, the vertex array, six textures (two per image) and the texture
    /// coordinate array.
    ///
    /// # Errors
    /// Transport or protocol errors.
    pub fn setup(&mut self, gl: &Gl) -> Result<()> {
        let [r, g, b, a] = CLEAR_COLOUR;
        gl.clear_color(r, g, b, a)?;
        gl.enable(CULL_FACE)?;
        gl.matrix_mode(MODELVIEW)?;

        gl.hint(PERSPECTIVE_CORRECTION_HINT, NICEST)?;
        gl.viewport(0, 0, self.width as i32, self.height as i32)?;
        gl.matrix_mode(PROJECTION)?;
        gl.load_identity()?;
        let (hwd, hht) = frustum_half_extents(self.width, self.height);
        gl.frustumf(-hwd, hwd, -hht, hht, 1.0, 500.0)?;
        gl.enable_client_state(VERTEX_ARRAY)?;
        gl.vertex_pointer(3, BYTE, 0, &QUADX_BYTES)?;

        gl.matrix_mode(MODELVIEW)?;
        gl.load_identity()?;
        gl.translatef(0.0, 0.0, -50.0)?;

        let names = gl.gen_textures(6)?;
        for (i, slot) in self.tex.iter_mut().enumerate() {
            *slot = names.get(i).copied().unwrap_or(0);
        }
        for (i, &name) in self.tex.iter().enumerate() {
            gl.bind_texture(TEXTURE_2D, name)?;
            let size = TEXTURE_SIZE as i32;
            gl.tex_image_2d(
                TEXTURE_2D,
                0,
                RGB,
                size,
                size,
                0,
                RGB,
                UNSIGNED_BYTE,
                Some(&self.images[i / 2]),
            )?;
            gl.tex_parameterf(TEXTURE_2D, TEXTURE_MIN_FILTER, NEAREST as f32)?;
            gl.tex_parameterf(TEXTURE_2D, TEXTURE_MAG_FILTER, NEAREST as f32)?;
        }
        gl.tex_coord_pointer(2, FLOAT, 0, &TEX_COORD_BYTES)?;
        gl.enable_client_state(TEXTURE_COORD_ARRAY)?;
        gl.enable(TEXTURE_2D)
    }

    /// Frame `k` (k ≥ 1): `update_model` and `redraw_scene` without the final
    /// `eglSwapBuffers`, which the caller issues
    /// ([`Display::swap_buffers`](crate::egl::Display::swap_buffers)).
    ///
    /// # Errors
    /// Transport or protocol errors.
    pub fn frame(&self, gl: &Gl, k: u32) -> Result<()> {
        let (ax, ay, az) = model_angles(k);
        gl.load_identity()?;
        gl.translatef(0.0, 0.0, -40.0)?;
        gl.rotatef(ax, 1.0, 0.0, 0.0)?;
        gl.rotatef(ay, 0.0, 1.0, 0.0)?;
        gl.rotatef(az, 0.0, 0.0, 1.0)?;

        gl.clear(COLOR_BUFFER_BIT)?;
        for (face, &(angle, x, y, z)) in FACE_ROTATIONS.iter().enumerate() {
            gl.bind_texture(TEXTURE_2D, self.tex[face])?;
            gl.rotatef(angle, x, y, z)?;
            gl.draw_arrays(TRIANGLE_STRIP, 4 * face as i32, 4)?;
        }
        Ok(())
    }
}

/// A small deterministic hash for texture grain.
fn hash(x: usize, y: usize, seed: u32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77) ^ seed;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h
}

/// Grain of ±`amp` levels.
fn grain(x: usize, y: usize, seed: u32, amp: i32) -> i32 {
    (hash(x, y, seed) % (2 * amp as u32 + 1)) as i32 - amp
}

fn shade((r, g, b): (i32, i32, i32), d: i32) -> [u8; 3] {
    let c = |v: i32| (v + d).clamp(0, 255) as u8;
    [c(r), c(g), c(b)]
}

fn lerp(a: (i32, i32, i32), b: (i32, i32, i32), t: f32) -> (i32, i32, i32) {
    let l = |p: i32, q: i32| p + ((q - p) as f32 * t) as i32;
    (l(a.0, b.0), l(a.1, b.1), l(a.2, b.2))
}

fn paint(f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
    let mut img = Vec::with_capacity(TEXTURE_BYTES);
    for y in 0..TEXTURE_SIZE {
        for x in 0..TEXTURE_SIZE {
            img.extend_from_slice(&f(x, y));
        }
    }
    img
}

/// Inside an arch opening whose sides run from `spring` down to `bottom`, centred on `cx`
/// with half-width `half` and a semicircular head.
fn in_arch(x: usize, y: usize, cx: f32, half: f32, spring: f32, bottom: f32) -> bool {
    let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
    if fy >= bottom {
        return false;
    }
    if fy >= spring {
        return (fx - cx).abs() < half;
    }
    (fx - cx).powi(2) + (fy - spring).powi(2) < half * half
}

/// An arcaded church façade under a blue sky.
fn facade() -> Vec<u8> {
    let stone = (206, 196, 176);
    let dark = (46, 42, 50);
    paint(|x, y| {
        let sky = lerp((92, 138, 204), (156, 190, 228), y as f32 / 40.0);
        if y < 20 || (!(6..=121).contains(&x) && y < 104) {
            return shade(sky, grain(x, y, 1, 3));
        }
        if y >= 122 {
            return shade((92, 86, 80), grain(x, y, 2, 10));
        }
        // Three tiers of arcades over a portal storey.
        let tiers: [(usize, usize, usize); 3] = [(26, 48, 7), (52, 72, 9), (76, 96, 11)];
        for &(top, bottom, n) in &tiers {
            if (top..bottom).contains(&y) {
                let w = 116.0 / n as f32;
                let c = ((x as f32 - 6.0) / w).floor().clamp(0.0, n as f32 - 1.0);
                let cx = 6.0 + w * (c + 0.5);
                let half = w * 0.32;
                if in_arch(x, y, cx, half, top as f32 + half + 2.0, bottom as f32 - 1.0) {
                    return shade(dark, grain(x, y, 3, 6));
                }
                if ((x as f32 - 6.0) % w) < 1.5 {
                    return shade((232, 228, 214), grain(x, y, 4, 4));
                }
            }
        }
        if y >= 100 {
            for cx in [30.0, 64.0, 98.0] {
                if in_arch(x, y, cx, 11.0, 110.0, 122.0) {
                    return shade((30, 28, 34), grain(x, y, 5, 4));
                }
            }
        }
        // Marble banding.
        let band = if (y / 3) % 4 == 0 { -34 } else { 0 };
        shade(stone, band + grain(x, y, 6, 9))
    })
}

/// A mud-brick mosque silhouette against a pale-peach sky.
fn mosque() -> Vec<u8> {
    let mud = (158, 104, 62);
    paint(|x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let sky = lerp((246, 214, 191), (236, 192, 166), fy / 80.0);
        if y >= 114 {
            return shade((188, 150, 112), grain(x, y, 7, 8));
        }
        let mut solid = y >= 62 || (y >= 55 && x % 8 >= 2 && x % 8 <= 4);
        let mut stick = false;
        let mut shadow = false;
        for (cx, top) in [(24.0f32, 26.0f32), (64.0, 16.0), (104.0, 26.0)] {
            let dx = fx + 0.5 - cx;
            let crown = top + dx * dx / 10.0;
            if dx.abs() < 10.0 && fy >= crown {
                solid = true;
                shadow = dx > 3.0;
                stick = (y as f32 - top) as usize % 8 == 4 && (x + 2) % 4 == 0;
            }
            if dx.abs() < 1.5 && fy >= top - 8.0 {
                solid = true;
            }
        }
        if !solid {
            return shade(sky, grain(x, y, 8, 2));
        }
        if stick {
            return [70, 50, 35];
        }
        if y >= 92
            && (in_arch(x, y, 44.0, 5.0, 100.0, 114.0) || in_arch(x, y, 84.0, 5.0, 100.0, 114.0))
        {
            return shade((52, 36, 26), grain(x, y, 9, 3));
        }
        shade(mud, grain(x, y, 10, 10) - if shadow { 26 } else { 0 })
    })
}

/// Turquoise and orange tiles with green balls under a blue sky.
fn tiles() -> Vec<u8> {
    let palette = [
        (40, 190, 186),
        (236, 130, 44),
        (30, 92, 172),
        (236, 234, 224),
        (240, 198, 60),
    ];
    let balls = [
        (30.0f32, 72.0f32, 12.0f32),
        (92.0, 64.0, 14.0),
        (62.0, 106.0, 10.0),
    ];
    paint(|x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        for (bx, by, r) in balls {
            let (dx, dy) = (fx - bx, fy - by);
            let d2 = dx * dx + dy * dy;
            if d2 < r * r {
                let light = 1.15 - 0.45 * (d2.sqrt() / r) - 0.25 * (dx + dy) / r;
                let g = |v: f32| (v * light).clamp(0.0, 255.0) as i32;
                return shade((g(58.0), g(168.0), g(70.0)), grain(x, y, 11, 4));
            }
        }
        let horizon = 34.0 + 6.0 * (fx / 10.0).sin();
        if fy < horizon {
            let sky = lerp((0, 129, 217), (96, 172, 232), fy / horizon);
            return shade(sky, grain(x, y, 12, 2));
        }
        let row = y / 10;
        let xs = x + (row % 2) * 5;
        if xs % 10 == 0 || y % 10 == 0 {
            return shade((204, 194, 172), grain(x, y, 13, 6));
        }
        let c = palette[(hash(xs / 10, row, 14) % palette.len() as u32) as usize];
        shade(c, grain(x, y, 15, 12))
    })
}

/// The three 128×128 RGB images (49152 bytes each), generated: an arcaded façade under a
/// blue sky, a mud-brick mosque against a pale-peach sky, and turquoise/orange tiles with
/// green balls. Deterministic.
pub fn textures() -> [Vec<u8>; 3] {
    [facade(), mosque(), tiles()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_the_demo_geometry() {
        assert_eq!(&QUADX_BYTES[..3], &[0xf6, 0xf6, 10]);
        assert_eq!(&TEX_COORD_BYTES[8..16], &[0, 0, 0, 0, 0, 0, 0x80, 0x3f]); // (0, 1)
        assert_eq!(&TEX_COORD_BYTES[16..20], &[0, 0, 0x80, 0x3f]); // (1, 0)
    }

    #[test]
    fn angles_follow_update_model() {
        assert_eq!(model_angles(1), (45.5, 30.5, 360.0));
        assert_eq!(model_angles(2), (46.0, 31.0, 0.0));
        assert_eq!(model_angles(630), (0.0, 345.0, 0.0));
        assert_eq!(model_angles(1 + 720), model_angles(1));
        let (hwd, hht) = frustum_half_extents(640, 480);
        assert!((hht - 0.414_214).abs() < 1e-6 && (hwd - 0.552_285).abs() < 1e-6);
    }
}
