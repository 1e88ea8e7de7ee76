//! The hello_triangle cube scene (spec §2.3), shared by the tests and the benchmark.
//!
//! Geometry, texture coordinates, matrices and animation are those of
//! `hello_pi/hello_triangle/triangle.c`; the three photographs are replaced by
//! procedural 128×128 RGB textures of distinct, nearly flat colours.

#![allow(dead_code)]

use vc_gles::{AttribArray, AttribType, Gles11, Indices, Surface, VertexArrays, gl};

/// `quadx` of cube_texture_and_coords.h: 6 faces × 4 vertices × (x, y, z) GLbyte.
pub const QUADX: [i8; 72] = [
    // FRONT
    -10, -10, 10, 10, -10, 10, -10, 10, 10, 10, 10, 10, //
    // BACK
    -10, -10, -10, -10, 10, -10, 10, -10, -10, 10, 10, -10, //
    // LEFT
    -10, -10, 10, -10, 10, 10, -10, -10, -10, -10, 10, -10, //
    // RIGHT
    10, -10, -10, 10, 10, -10, 10, -10, 10, 10, 10, 10, //
    // TOP
    -10, 10, 10, 10, 10, 10, -10, 10, -10, 10, 10, -10, //
    // BOTTOM
    -10, -10, 10, -10, -10, -10, 10, -10, 10, 10, -10, -10,
];

/// `texCoords`: every face uses (0,0), (0,1), (1,0), (1,1).
pub fn tex_coords() -> Vec<u8> {
    let face = [0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    (0..6)
        .flat_map(|_| face)
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Base colours of the three procedural textures (Lucca, Djenné, Gaudí slots).
pub const LUCCA: [u8; 3] = [200, 70, 60];
/// Djenné slot: green.
pub const DJENNE: [u8; 3] = [70, 170, 80];
/// Gaudí slot: blue.
pub const GAUDI: [u8; 3] = [60, 110, 210];

/// A 128×128 RGB texture: `base` with a ±12 checker of 16-texel blocks and a pale
/// 24×24 marker near texel (8, 8) that shows the orientation.
pub fn texture(base: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 * 128 * 3);
    for y in 0..128u32 {
        for x in 0..128u32 {
            let marker = (8..32).contains(&x) && (8..32).contains(&y);
            let checker = ((x / 16) + (y / 16)) % 2 == 0;
            for c in base {
                let v = if marker {
                    240
                } else if checker {
                    c.saturating_add(12)
                } else {
                    c.saturating_sub(12)
                };
                out.push(v);
            }
        }
    }
    out
}

/// Rotation angles `(ax, ay, az)` of frame `k` (k ≥ 1), computed the way triangle.c's
/// `inc_and_wrap_angle` does, in f32.
pub fn angles(frame: u32) -> (f32, f32, f32) {
    fn inc_wrap(a: f32, inc: f32) -> f32 {
        let a = a + inc;
        if a >= 360.0 {
            a - 360.0
        } else if a <= 0.0 {
            a + 360.0
        } else {
            a
        }
    }
    let (mut ax, mut ay, mut az) = (45.0f32, 30.0f32, 0.0f32);
    for _ in 0..frame {
        ax = inc_wrap(ax, 0.5);
        ay = inc_wrap(ay, 0.5);
        az = inc_wrap(az, 0.0);
    }
    (ax, ay, az)
}

/// A context set up as hello_triangle's `init_ogl`/`init_model_proj`/`init_textures`.
pub struct Cube {
    pub ctx: Gles11,
    pub tex: Vec<u32>,
    pub tex_coords: Vec<u8>,
    pub positions: Vec<u8>,
}

impl Cube {
    pub fn new(width: u32, height: u32) -> Self {
        let mut ctx = Gles11::new();
        ctx.clear_color(0.15, 0.25, 0.35, 1.0);
        ctx.enable(gl::GL_CULL_FACE);
        ctx.matrix_mode(gl::GL_MODELVIEW);
        ctx.hint(gl::GL_PERSPECTIVE_CORRECTION_HINT, gl::GL_NICEST);
        ctx.viewport(0, 0, width as i32, height as i32);
        ctx.matrix_mode(gl::GL_PROJECTION);
        ctx.load_identity();
        let hht = (45.0f32 / 2.0 / 180.0 * std::f32::consts::PI).tan();
        let hwd = hht * width as f32 / height as f32;
        ctx.frustumf(-hwd, hwd, -hht, hht, 1.0, 500.0);
        ctx.matrix_mode(gl::GL_MODELVIEW);
        ctx.load_identity();
        ctx.translatef(0.0, 0.0, -50.0);
        let tex = ctx.gen_textures(6);
        let images = [texture(LUCCA), texture(DJENNE), texture(GAUDI)];
        for (i, &name) in tex.iter().enumerate() {
            ctx.bind_texture(gl::GL_TEXTURE_2D, name);
            // As the KHRN client sends it: allocate, then TexSubImage2D with the pixels.
            ctx.tex_image_2d(
                gl::GL_TEXTURE_2D,
                0,
                gl::GL_RGB,
                128,
                128,
                0,
                gl::GL_RGB,
                gl::GL_UNSIGNED_BYTE,
                4,
                None,
            );
            ctx.tex_sub_image_2d(
                gl::GL_TEXTURE_2D,
                0,
                0,
                0,
                128,
                128,
                gl::GL_RGB,
                gl::GL_UNSIGNED_BYTE,
                4,
                &images[i / 2],
            );
            let nearest = gl::GL_NEAREST as f32;
            ctx.tex_parameterf(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MIN_FILTER, nearest);
            ctx.tex_parameterf(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MAG_FILTER, nearest);
        }
        ctx.enable(gl::GL_TEXTURE_2D);
        assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
        Cube {
            ctx,
            tex,
            tex_coords: tex_coords(),
            positions: QUADX.iter().map(|&v| v as u8).collect(),
        }
    }

    /// `update_model` + `redraw_scene` for frame `k`.
    pub fn render(&mut self, frame: u32, target: &mut Surface) {
        let (ax, ay, az) = angles(frame);
        let ctx = &mut self.ctx;
        ctx.load_identity();
        ctx.translatef(0.0, 0.0, -40.0);
        ctx.rotatef(ax, 1.0, 0.0, 0.0);
        ctx.rotatef(ay, 0.0, 1.0, 0.0);
        ctx.rotatef(az, 0.0, 0.0, 1.0);
        ctx.clear(gl::GL_COLOR_BUFFER_BIT, target);
        let arrays = VertexArrays {
            position: Some(AttribArray {
                size: 3,
                ty: AttribType::Byte,
                normalized: false,
                stride: 0,
                data: &self.positions,
            }),
            texcoord: Some(AttribArray {
                size: 2,
                ty: AttribType::Float,
                normalized: false,
                stride: 0,
                data: &self.tex_coords,
            }),
            ..Default::default()
        };
        let extra: [(f32, f32, f32, f32); 6] = [
            (270.0, 0.0, 0.0, 1.0),
            (90.0, 0.0, 0.0, 1.0),
            (90.0, 1.0, 0.0, 0.0),
            (90.0, 1.0, 0.0, 0.0),
            (270.0, 0.0, 1.0, 0.0),
            (90.0, 0.0, 1.0, 0.0),
        ];
        for (f, (a, x, y, z)) in extra.into_iter().enumerate() {
            ctx.bind_texture(gl::GL_TEXTURE_2D, self.tex[f]);
            ctx.rotatef(a, x, y, z);
            let first = 4 * f as u32;
            ctx.draw(
                gl::GL_TRIANGLE_STRIP,
                Indices::Range { first, count: 4 },
                &arrays,
                target,
            );
        }
    }
}
