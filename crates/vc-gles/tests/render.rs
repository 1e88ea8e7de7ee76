//! Rendering behaviour of `Gles11`: clear, coverage and fill rule, culling, depth,
//! textures, perspective correctness, the hello_triangle cube, determinism and
//! robustness against malformed input.

mod common;

use vc_gles::{AttribArray, AttribType, Gles11, Image, Indices, Surface, VertexArrays, gl};

const BG: [u8; 4] = [38, 64, 89, 255];

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(size: u32, data: &[u8]) -> AttribArray<'_> {
    AttribArray {
        size,
        ty: AttribType::Float,
        normalized: false,
        stride: 0,
        data,
    }
}

/// A context whose object coordinates are GL window coordinates (y up, pixels).
fn window_ctx(w: u32, h: u32) -> Gles11 {
    let mut ctx = Gles11::new();
    ctx.set_parallel(false);
    ctx.viewport(0, 0, w as i32, h as i32);
    ctx.matrix_mode(gl::GL_PROJECTION);
    ctx.orthof(0.0, w as f32, 0.0, h as f32, -1.0, 1.0);
    ctx.matrix_mode(gl::GL_MODELVIEW);
    ctx
}

fn draw_xy(ctx: &mut Gles11, mode: u32, xy: &[f32], target: &mut Surface) {
    let bytes = f32_bytes(xy);
    let arrays = VertexArrays {
        position: Some(floats(2, &bytes)),
        ..Default::default()
    };
    let count = (xy.len() / 2) as u32;
    ctx.draw(mode, Indices::Range { first: 0, count }, &arrays, target);
}

fn count_not(img: &Image, px: [u8; 4]) -> usize {
    let p = u32::from_le_bytes(px);
    img.pixels.iter().filter(|&&q| q != p).count()
}

fn tri_area(p: &[f32]) -> f32 {
    ((p[2] - p[0]) * (p[5] - p[1]) - (p[4] - p[0]) * (p[3] - p[1])).abs() / 2.0
}

/// Deterministic xorshift for the randomised tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

// ---------------------------------------------------------------- clear

#[test]
fn clear_fills_exactly_the_clear_colour() {
    let mut ctx = Gles11::new();
    let mut s = Surface::new(37, 23, true);
    ctx.clear_color(0.15, 0.25, 0.35, 1.0);
    ctx.clear_depthf(0.5);
    ctx.clear(gl::GL_COLOR_BUFFER_BIT | gl::GL_DEPTH_BUFFER_BIT, &mut s);
    assert!(s.color.pixels.iter().all(|&p| p.to_le_bytes() == BG));
    assert!(s.depth.as_ref().unwrap().iter().all(|&d| d == 0.5));
    // Scissored clear: window rect (x 2..5, y 1..3) = image rows 20..22.
    ctx.clear_color(1.0, 0.0, 0.0, 1.0);
    ctx.enable(gl::GL_SCISSOR_TEST);
    ctx.scissor(2, 1, 3, 2);
    ctx.clear(gl::GL_COLOR_BUFFER_BIT, &mut s);
    assert_eq!(count_not(&s.color, BG), 6);
    assert_eq!(s.color.get(2, 21), [255, 0, 0, 255]);
    assert_eq!(s.color.get(4, 20), [255, 0, 0, 255]);
    assert_eq!(s.color.get(2, 22), BG);
    // Out-of-range clear values are clamped; bad bits are an error.
    ctx.disable(gl::GL_SCISSOR_TEST);
    ctx.clear_color(2.0, -1.0, f32::NAN, 0.5);
    ctx.clear(gl::GL_COLOR_BUFFER_BIT, &mut s);
    assert_eq!(s.color.get(0, 0), [255, 0, 0, 128]);
    ctx.clear(0x8000_0000, &mut s);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
}

// ---------------------------------------------------------------- coverage

#[test]
fn single_triangle_coverage_matches_area() {
    let (w, h) = (256, 256);
    for tri in [
        [10.3f32, 20.7, 200.1, 50.2, 90.5, 230.9],
        [0.0, 0.0, 256.0, 0.0, 0.0, 256.0],
        [128.25, 3.5, 250.75, 240.125, 7.0, 199.0],
    ] {
        let mut ctx = window_ctx(w, h);
        let mut s = Surface::new(w, h, false);
        ctx.draw_for_test(&tri, &mut s);
        let covered = count_not(&s.color, [0; 4]) as f32;
        let area = tri_area(&tri);
        assert!(
            (covered - area).abs() / area < 0.01,
            "covered {covered} vs area {area}"
        );
        // Both windings cover the same pixels (no culling enabled).
        let rev = [tri[0], tri[1], tri[4], tri[5], tri[2], tri[3]];
        let mut s2 = Surface::new(w, h, false);
        ctx.draw_for_test(&rev, &mut s2);
        assert_eq!(s.color, s2.color);
    }
}

trait DrawForTest {
    fn draw_for_test(&mut self, xy: &[f32], s: &mut Surface);
}
impl DrawForTest for Gles11 {
    fn draw_for_test(&mut self, xy: &[f32], s: &mut Surface) {
        draw_xy(self, gl::GL_TRIANGLES, xy, s);
        assert_eq!(self.get_error(), gl::GL_NO_ERROR);
    }
}

/// Additive blending of 0.25 per hit: 64 = one hit, 128 = two.
fn additive_ctx(w: u32, h: u32) -> Gles11 {
    let mut ctx = window_ctx(w, h);
    ctx.enable(gl::GL_BLEND);
    ctx.blend_func(gl::GL_ONE, gl::GL_ONE);
    ctx.color4f(0.25, 0.25, 0.25, 0.25);
    ctx
}

#[test]
fn shared_edges_are_drawn_exactly_once() {
    // Two triangles sharing a slanted edge.
    let (w, h) = (128, 128);
    let mut ctx = additive_ctx(w, h);
    let mut s = Surface::new(w, h, false);
    let quad = [
        10.5f32, 10.25, 110.0, 20.0, 30.0, 100.5, //
        110.0, 20.0, 120.75, 117.0, 30.0, 100.5,
    ];
    ctx.draw_for_test(&quad, &mut s);
    let hits: Vec<u8> = s.color.pixels.iter().map(|p| p.to_le_bytes()[0]).collect();
    assert!(
        hits.iter().all(|&v| v == 0 || v == 64),
        "a pixel was drawn twice"
    );
    let area = tri_area(&quad[..6]) + tri_area(&quad[6..]);
    let covered = hits.iter().filter(|&&v| v == 64).count() as f32;
    assert!((covered - area).abs() / area < 0.01);

    // A jittered 8×8 grid mesh (strips) covering the whole surface: every pixel exactly once.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 8;
    let mut grid = vec![[0.0f32; 2]; (n + 1) * (n + 1)];
    for j in 0..=n {
        for i in 0..=n {
            let mut x = i as f32 * w as f32 / n as f32;
            let mut y = j as f32 * h as f32 / n as f32;
            if i > 0 && i < n {
                x += (rng.unit() - 0.5) * 10.0;
            }
            if j > 0 && j < n {
                y += (rng.unit() - 0.5) * 10.0;
            }
            // Some vertices exactly on pixel centres and pixel corners.
            if (i + j) % 5 == 0 {
                x = x.round() + 0.5;
            } else if (i + j) % 7 == 0 {
                y = y.round();
            }
            if i == 0 || i == n {
                x = (i * w as usize / n) as f32;
            }
            if j == 0 || j == n {
                y = (j * h as usize / n) as f32;
            }
            grid[j * (n + 1) + i] = [x, y];
        }
    }
    let mut s = Surface::new(w, h, false);
    for j in 0..n {
        let mut strip = Vec::new();
        for i in 0..=n {
            strip.extend_from_slice(&grid[j * (n + 1) + i]);
            strip.extend_from_slice(&grid[(j + 1) * (n + 1) + i]);
        }
        draw_xy(&mut ctx, gl::GL_TRIANGLE_STRIP, &strip, &mut s);
    }
    for (k, p) in s.color.pixels.iter().enumerate() {
        let v = p.to_le_bytes()[0];
        assert_eq!(
            v,
            64,
            "pixel ({}, {}) hit {} times",
            k % 128,
            k / 128,
            v / 64
        );
    }

    // A fan around a centre vertex, likewise.
    let mut s = Surface::new(w, h, false);
    let mut fan = vec![63.3f32, 64.7];
    let ring = [
        [0.0, 0.0],
        [50.0, 0.0],
        [128.0, 0.0],
        [128.0, 70.0],
        [128.0, 128.0],
        [40.0, 128.0],
        [0.0, 128.0],
        [0.0, 60.0],
        [0.0, 0.0],
    ];
    for p in ring {
        fan.extend_from_slice(&p);
    }
    draw_xy(&mut ctx, gl::GL_TRIANGLE_FAN, &fan, &mut s);
    assert!(s.color.pixels.iter().all(|p| p.to_le_bytes()[0] == 64));
}

#[test]
fn viewport_y_flip_and_offset() {
    let mut ctx = Gles11::new();
    let mut s = Surface::new(40, 30, false);
    // Full-viewport quad in NDC, viewport = window x 10..20, y 0..10 (bottom-left).
    ctx.viewport(10, 0, 10, 10);
    let quad = [-1.0f32, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0];
    draw_xy(&mut ctx, gl::GL_TRIANGLE_STRIP, &quad, &mut s);
    assert_eq!(count_not(&s.color, [0; 4]), 100);
    assert_eq!(s.color.get(10, 29), [255; 4]); // bottom row of the image
    assert_eq!(s.color.get(19, 20), [255; 4]);
    assert_eq!(s.color.get(10, 19), [0; 4]);
    assert_eq!(s.color.get(9, 29), [0; 4]);
    // A triangle in the upper half of NDC lands in the top rows.
    let mut s = Surface::new(40, 30, false);
    ctx.viewport(0, 0, 40, 30);
    draw_xy(
        &mut ctx,
        gl::GL_TRIANGLES,
        &[-1.0, 0.5, 1.0, 0.5, 0.0, 1.0],
        &mut s,
    );
    let rows: Vec<u32> = (0..30)
        .filter(|&y| (0..40).any(|x| s.color.get(x, y) != [0; 4]))
        .collect();
    assert_eq!(rows.first(), Some(&0));
    assert!(*rows.last().unwrap() < 8);
}

#[test]
fn culling_and_winding() {
    let (w, h) = (64, 64);
    let ccw = [5.0f32, 5.0, 60.0, 5.0, 30.0, 60.0];
    let cw = [5.0f32, 5.0, 30.0, 60.0, 60.0, 5.0];
    let drawn = |ctx: &mut Gles11, xy: &[f32]| {
        let mut s = Surface::new(w, h, false);
        draw_xy(ctx, gl::GL_TRIANGLES, xy, &mut s);
        count_not(&s.color, [0; 4]) > 0
    };
    let mut ctx = window_ctx(w, h);
    assert!(drawn(&mut ctx, &cw));
    ctx.enable(gl::GL_CULL_FACE);
    assert!(drawn(&mut ctx, &ccw));
    assert!(!drawn(&mut ctx, &cw), "CW triangle must be culled");
    ctx.front_face(gl::GL_CW);
    assert!(drawn(&mut ctx, &cw));
    assert!(!drawn(&mut ctx, &ccw));
    ctx.front_face(gl::GL_CCW);
    ctx.cull_face(gl::GL_FRONT);
    assert!(!drawn(&mut ctx, &ccw));
    assert!(drawn(&mut ctx, &cw));
    ctx.cull_face(gl::GL_FRONT_AND_BACK);
    assert!(!drawn(&mut ctx, &ccw) && !drawn(&mut ctx, &cw));
    ctx.cull_face(0x1234);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);

    // A strip of 6 vertices laid out CCW: all 4 triangles survive back-face culling.
    ctx.cull_face(gl::GL_BACK);
    let strip = [
        0.0f32, 0.0, 0.0, 64.0, 20.0, 0.0, 20.0, 64.0, 64.0, 0.0, 64.0, 64.0,
    ];
    // (v0, v1, v2) = (0,0), (0,64), (20,0) is clockwise; make it CCW by mirroring x.
    let strip: Vec<f32> = strip.chunks(2).flat_map(|p| [64.0 - p[0], p[1]]).collect();
    let mut s = Surface::new(w, h, false);
    draw_xy(&mut ctx, gl::GL_TRIANGLE_STRIP, &strip, &mut s);
    assert_eq!(count_not(&s.color, [0; 4]), 64 * 64);
}

#[test]
fn depth_test() {
    let (w, h) = (32, 32);
    let mut ctx = Gles11::new();
    ctx.set_parallel(false);
    let quad_at = |z: f32| -> Vec<u8> {
        f32_bytes(&[
            -1.0, -1.0, z, 1.0, -1.0, z, -1.0, 1.0, z, 1.0, 1.0, z, //
        ])
    };
    let draw = |ctx: &mut Gles11, z: f32, rgb: [f32; 3], s: &mut Surface| {
        let b = quad_at(z);
        ctx.color4f(rgb[0], rgb[1], rgb[2], 1.0);
        let arrays = VertexArrays {
            position: Some(floats(3, &b)),
            ..Default::default()
        };
        ctx.draw(
            gl::GL_TRIANGLE_STRIP,
            Indices::Range { first: 0, count: 4 },
            &arrays,
            s,
        );
    };
    let mut s = Surface::new(w, h, true);
    ctx.enable(gl::GL_DEPTH_TEST);
    ctx.clear(gl::GL_COLOR_BUFFER_BIT | gl::GL_DEPTH_BUFFER_BIT, &mut s);
    draw(&mut ctx, -0.5, [1.0, 0.0, 0.0], &mut s); // near (NDC z −0.5 → depth 0.25)
    draw(&mut ctx, 0.5, [0.0, 1.0, 0.0], &mut s); // far: rejected
    assert_eq!(s.color.get(16, 16), [255, 0, 0, 255]);
    assert!((s.depth.as_ref().unwrap()[0] - 0.25).abs() < 1e-6);
    ctx.depth_func(gl::GL_GREATER);
    draw(&mut ctx, 0.5, [0.0, 1.0, 0.0], &mut s);
    assert_eq!(s.color.get(16, 16), [0, 255, 0, 255]);
    // depth_mask(false): passes but does not write.
    ctx.depth_func(gl::GL_LESS);
    ctx.depth_mask(false);
    draw(&mut ctx, 0.0, [0.0, 0.0, 1.0], &mut s);
    assert_eq!(s.color.get(16, 16), [0, 0, 255, 255]);
    assert!((s.depth.as_ref().unwrap()[0] - 0.75).abs() < 1e-6);
    // Without DEPTH_TEST the last draw wins.
    ctx.depth_mask(true);
    ctx.disable(gl::GL_DEPTH_TEST);
    draw(&mut ctx, 0.9, [1.0, 1.0, 0.0], &mut s);
    assert_eq!(s.color.get(16, 16), [255, 255, 0, 255]);
    // A surface without depth ignores the test.
    ctx.enable(gl::GL_DEPTH_TEST);
    let mut nd = Surface::new(w, h, false);
    draw(&mut ctx, -0.5, [1.0, 0.0, 0.0], &mut nd);
    draw(&mut ctx, 0.5, [0.0, 1.0, 0.0], &mut nd);
    assert_eq!(nd.color.get(16, 16), [0, 255, 0, 255]);
    // Interpenetrating triangles: depth decides per pixel.
    let mut s = Surface::new(w, h, true);
    ctx.clear(gl::GL_DEPTH_BUFFER_BIT, &mut s);
    let slope = |ctx: &mut Gles11, zl: f32, zr: f32, rgb: [f32; 3], s: &mut Surface| {
        let b = f32_bytes(&[-1.0, -1.0, zl, 1.0, -1.0, zr, -1.0, 1.0, zl, 1.0, 1.0, zr]);
        ctx.color4f(rgb[0], rgb[1], rgb[2], 1.0);
        let arrays = VertexArrays {
            position: Some(floats(3, &b)),
            ..Default::default()
        };
        ctx.draw(
            gl::GL_TRIANGLE_STRIP,
            Indices::Range { first: 0, count: 4 },
            &arrays,
            s,
        );
    };
    slope(&mut ctx, -0.9, 0.9, [1.0, 0.0, 0.0], &mut s);
    slope(&mut ctx, 0.9, -0.9, [0.0, 0.0, 1.0], &mut s);
    assert_eq!(s.color.get(2, 16), [255, 0, 0, 255]);
    assert_eq!(s.color.get(29, 16), [0, 0, 255, 255]);
}

// ---------------------------------------------------------------- textures

/// Draws a textured quad covering window rect (x0,y0)-(x1,y1) with texcoords 0..smax.
fn textured_quad(ctx: &mut Gles11, s: &mut Surface, rect: [f32; 4], smax: f32) {
    let [x0, y0, x1, y1] = rect;
    let pos = f32_bytes(&[x0, y0, x1, y0, x0, y1, x1, y1]);
    let tc = f32_bytes(&[0.0, 0.0, smax, 0.0, 0.0, smax, smax, smax]);
    let arrays = VertexArrays {
        position: Some(floats(2, &pos)),
        texcoord: Some(floats(2, &tc)),
        ..Default::default()
    };
    ctx.draw(
        gl::GL_TRIANGLE_STRIP,
        Indices::Range { first: 0, count: 4 },
        &arrays,
        s,
    );
}

fn texture_ctx(w: u32, h: u32, filter: u32) -> Gles11 {
    let mut ctx = window_ctx(w, h);
    ctx.bind_texture(gl::GL_TEXTURE_2D, 7);
    ctx.tex_parameteri(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MIN_FILTER, filter as i32);
    ctx.tex_parameteri(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MAG_FILTER, filter as i32);
    ctx.enable(gl::GL_TEXTURE_2D);
    ctx
}

#[test]
fn texture_nearest_linear_and_wrap() {
    // 2×2 RGBA: row 0 (t≈0, bottom of the quad in window space) red, green; row 1 blue, white.
    let texels: [u8; 16] = [
        255, 0, 0, 255, 0, 255, 0, 255, //
        0, 0, 255, 255, 255, 255, 255, 255,
    ];
    let mut ctx = texture_ctx(64, 64, gl::GL_NEAREST);
    ctx.tex_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        gl::GL_RGBA,
        2,
        2,
        0,
        gl::GL_RGBA,
        gl::GL_UNSIGNED_BYTE,
        4,
        Some(&texels),
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    let mut s = Surface::new(64, 64, false);
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 1.0);
    // Window y up → image row 63 is t≈0.
    assert_eq!(s.color.get(5, 60), [255, 0, 0, 255]);
    assert_eq!(s.color.get(60, 60), [0, 255, 0, 255]);
    assert_eq!(s.color.get(5, 5), [0, 0, 255, 255]);
    assert_eq!(s.color.get(60, 5), [255, 255, 255, 255]);
    assert_eq!(s.color.get(31, 32), [255, 0, 0, 255]);
    assert_eq!(s.color.get(32, 32), [0, 255, 0, 255]);

    // REPEAT: texcoords 0..2 tile the texture twice.
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 2.0);
    assert_eq!(s.color.get(5, 60), [255, 0, 0, 255]);
    assert_eq!(s.color.get(37, 60), [255, 0, 0, 255]);
    assert_eq!(s.color.get(21, 60), [0, 255, 0, 255]);
    // CLAMP_TO_EDGE: beyond 1 repeats the edge texel.
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_WRAP_S,
        gl::GL_CLAMP_TO_EDGE as i32,
    );
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 2.0);
    assert_eq!(s.color.get(37, 60), [0, 255, 0, 255]);
    assert_eq!(s.color.get(62, 60), [0, 255, 0, 255]);

    // LINEAR with clamping: corners are pure, the centre is the average of all four.
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_WRAP_T,
        gl::GL_CLAMP_TO_EDGE as i32,
    );
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_MAG_FILTER,
        gl::GL_LINEAR as i32,
    );
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_MIN_FILTER,
        gl::GL_LINEAR as i32,
    );
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 1.0);
    assert_eq!(s.color.get(0, 63), [255, 0, 0, 255]);
    assert_eq!(s.color.get(63, 0), [255, 255, 255, 255]);
    let c = s.color.get(32, 32);
    // Sample point (32.5/64, 31.5/64) → nearly the 4-texel mean (127.5, 127.5, 127.5).
    for (ch, want) in c.iter().zip([128u8, 128, 128]) {
        assert!((i32::from(*ch) - i32::from(want)).abs() <= 8, "{c:?}");
    }
    // Halfway between red and green along the bottom row.
    let mid = s.color.get(32, 63);
    assert!((i32::from(mid[0]) - 128).abs() <= 8 && (i32::from(mid[1]) - 128).abs() <= 8);
    assert!(mid[2] < 5);

    // Env modes: MODULATE with a colour, REPLACE ignores it.
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_MAG_FILTER,
        gl::GL_NEAREST as i32,
    );
    ctx.color4f(0.5, 1.0, 1.0, 1.0);
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 1.0);
    assert_eq!(s.color.get(60, 5), [128, 255, 255, 255]);
    ctx.tex_envi(
        gl::GL_TEXTURE_ENV,
        gl::GL_TEXTURE_ENV_MODE,
        gl::GL_REPLACE as i32,
    );
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 1.0);
    assert_eq!(s.color.get(60, 5), [255, 255, 255, 255]);
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    // Incomplete texture (default min filter needs mipmaps): texturing is off.
    ctx.tex_parameteri(
        gl::GL_TEXTURE_2D,
        gl::GL_TEXTURE_MIN_FILTER,
        gl::GL_NEAREST_MIPMAP_LINEAR as i32,
    );
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 64.0, 64.0], 1.0);
    assert_eq!(s.color.get(60, 5), [128, 255, 255, 255]);
}

#[test]
fn rgb_and_565_uploads_with_alignment_and_odd_width() {
    // 3×3 RGB, unpack alignment 4: rows of 9 bytes padded to 12 with junk.
    let colour = |i: u32, j: u32| {
        [
            (i * 80 + 10) as u8,
            (j * 90 + 5) as u8,
            (i * 7 + j * 31) as u8,
        ]
    };
    let mut rgb = Vec::new();
    for j in 0..3 {
        for i in 0..3 {
            rgb.extend_from_slice(&colour(i, j));
        }
        if j < 2 {
            rgb.extend_from_slice(&[0xEE; 3]);
        }
    }
    assert_eq!(rgb.len(), 12 * 2 + 9);
    let mut ctx = texture_ctx(30, 30, gl::GL_NEAREST);
    let upload = |ctx: &mut Gles11, data: &[u8]| {
        ctx.tex_image_2d(
            gl::GL_TEXTURE_2D,
            0,
            gl::GL_RGB,
            3,
            3,
            0,
            gl::GL_RGB,
            gl::GL_UNSIGNED_BYTE,
            4,
            Some(data),
        );
    };
    upload(&mut ctx, &rgb);
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    let mut s = Surface::new(30, 30, false);
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 30.0, 30.0], 1.0);
    for j in 0..3 {
        for i in 0..3 {
            let c = colour(i, j);
            // Texel (i, j) covers window x 10i..10i+10, y 10j..; image row = 29 − y.
            assert_eq!(
                s.color.get(10 * i + 5, 29 - (10 * j + 5)),
                [c[0], c[1], c[2], 255],
                "texel {i},{j}"
            );
        }
    }
    // One byte short: GL_INVALID_OPERATION, texture unchanged.
    upload(&mut ctx, &rgb[..rgb.len() - 1]);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);

    // 3×2 RGB565, alignment 4: rows of 6 bytes padded to 8.
    let px565 = [
        0xF800u16,
        0x07E0,
        0x001F,
        0xFFFF,
        0x0000,
        (16 << 11) | (32 << 5) | 16,
    ];
    let mut data = Vec::new();
    for (k, p) in px565.iter().enumerate() {
        data.extend_from_slice(&p.to_le_bytes());
        if k == 2 {
            data.extend_from_slice(&[0xAB, 0xCD]);
        }
    }
    ctx.tex_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        gl::GL_RGB,
        3,
        2,
        0,
        gl::GL_RGB,
        gl::GL_UNSIGNED_SHORT_5_6_5,
        4,
        Some(&data),
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 30.0, 30.0], 1.0);
    let want = [
        [255, 0, 0, 255],
        [0, 255, 0, 255],
        [0, 0, 255, 255],
        [255, 255, 255, 255],
        [0, 0, 0, 255],
        [132, 130, 132, 255],
    ];
    for (k, w) in want.iter().enumerate() {
        let (i, j) = (k as u32 % 3, k as u32 / 3);
        assert_eq!(
            s.color.get(10 * i + 5, 29 - (15 * j + 7)),
            *w,
            "565 texel {k}"
        );
    }
    // TexSubImage2D with a different type than the level: GL_INVALID_OPERATION.
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        0,
        0,
        1,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        &[1, 2, 3],
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        2,
        1,
        1,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_SHORT_5_6_5,
        4,
        &[0, 0xF8],
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    textured_quad(&mut ctx, &mut s, [0.0, 0.0, 30.0, 30.0], 1.0);
    assert_eq!(s.color.get(25, 29 - 22), [255, 0, 0, 255]);
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        2,
        1,
        2,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_SHORT_5_6_5,
        4,
        &[0; 4],
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
}

#[test]
fn perspective_correct_texturing() {
    // A 4×4 texture of 16 distinct colours on a floor quad receding from z=−2 to z=−30.
    let mut tex = Vec::new();
    for k in 0..16u8 {
        tex.extend_from_slice(&[k * 16, 255 - k * 16, (k % 4) * 60, 255]);
    }
    let (w, h) = (200u32, 200u32);
    let mut ctx = Gles11::new();
    ctx.set_parallel(false);
    ctx.viewport(0, 0, w as i32, h as i32);
    ctx.matrix_mode(gl::GL_PROJECTION);
    ctx.frustumf(-1.0, 1.0, -1.0, 1.0, 1.0, 100.0);
    ctx.matrix_mode(gl::GL_MODELVIEW);
    ctx.bind_texture(gl::GL_TEXTURE_2D, 1);
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
        gl::GL_RGBA,
        4,
        4,
        0,
        gl::GL_RGBA,
        gl::GL_UNSIGNED_BYTE,
        4,
        Some(&tex),
    );
    ctx.enable(gl::GL_TEXTURE_2D);
    // Quad corners (x, y, z) and their texcoords; y = −1 floor, slightly rotated.
    let corners = [
        [-1.5f32, -1.0, -2.0],
        [1.5, -1.0, -2.0],
        [-1.5, -1.0, -30.0],
        [1.5, -1.0, -30.0],
    ];
    let st = [[0.0f32, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let pos: Vec<f32> = corners.iter().flatten().copied().collect();
    let tcs: Vec<f32> = st.iter().flatten().copied().collect();
    let (pb, tb) = (f32_bytes(&pos), f32_bytes(&tcs));
    let arrays = VertexArrays {
        position: Some(floats(3, &pb)),
        texcoord: Some(floats(2, &tb)),
        ..Default::default()
    };
    let mut s = Surface::new(w, h, false);
    ctx.draw(
        gl::GL_TRIANGLE_STRIP,
        Indices::Range { first: 0, count: 4 },
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    let proj = ctx.matrix(gl::GL_PROJECTION).unwrap();
    let to_pixel = |p: [f32; 3]| {
        let c = proj.mul_vec4(vc_gles::Vec4::new(p[0], p[1], p[2], 1.0));
        let (x, y) = (c.x / c.w, c.y / c.w);
        (
            (x + 1.0) * 0.5 * w as f32,
            h as f32 - (y + 1.0) * 0.5 * h as f32,
        )
    };
    let lerp3 = |a: [f32; 3], b: [f32; 3], t: f32| [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t);
    // Check the texel centres of several texels, including the quad's centre region.
    for (si, ti) in [(1u32, 2u32), (2, 1), (1, 1), (2, 2), (0, 3), (3, 0)] {
        let (sc, tc) = ((si as f32 + 0.5) / 4.0, (ti as f32 + 0.5) / 4.0);
        // Point on the quad with texcoord (sc, tc): bilinear in object space.
        let a = lerp3(corners[0], corners[1], sc);
        let b = lerp3(corners[2], corners[3], sc);
        let p = lerp3(a, b, tc);
        let (px, py) = to_pixel(p);
        let got = s.color.get(px as u32, py as u32);
        let k = (ti * 4 + si) as usize;
        assert_eq!(
            &got[..],
            &tex[k * 4..k * 4 + 4],
            "texel ({si},{ti}) at ({px},{py})"
        );
    }
    // The check discriminates: affine (screen-space) interpolation along the receding
    // edge would put the texcoord-0.625 point elsewhere. The screen-space midpoint of the
    // quad's left edge has t = 0.5 affinely but much less than 0.5 in perspective.
    let (x0, y0) = to_pixel(lerp3(corners[0], corners[1], 0.375));
    let (x1, y1) = to_pixel(lerp3(corners[2], corners[3], 0.375));
    let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let got = s.color.get(mx as u32, my as u32);
    let texel_t2 = &tex[(2 * 4 + 1) * 4..(2 * 4 + 1) * 4 + 4];
    assert_ne!(
        &got[..],
        texel_t2,
        "affine interpolation would give texel row 2 here"
    );
    let texel_t0 = &tex[4..8];
    assert_eq!(
        &got[..],
        texel_t0,
        "perspective puts the screen midpoint in texel row 0"
    );
}

// ---------------------------------------------------------------- the cube

struct Stats {
    coverage: usize,
    bbox: [u32; 4],
}

fn stats(img: &Image) -> Stats {
    let mut bbox = [u32::MAX, u32::MAX, 0, 0];
    let mut coverage = 0;
    for y in 0..img.height {
        for x in 0..img.width {
            if img.get(x, y) != BG {
                coverage += 1;
                bbox = [
                    bbox[0].min(x),
                    bbox[1].min(y),
                    bbox[2].max(x),
                    bbox[3].max(y),
                ];
            }
        }
    }
    Stats { coverage, bbox }
}

fn near(c: [u8; 4], base: [u8; 3], tol: i32) -> bool {
    (0..3).all(|i| (i32::from(c[i]) - i32::from(base[i])).abs() <= tol)
}

/// Majority colour check over a 5×5 neighbourhood (robust against the checker edges).
fn region_is(img: &Image, x: u32, y: u32, base: [u8; 3]) -> bool {
    let mut hits = 0;
    for dy in 0..5 {
        for dx in 0..5 {
            if near(img.get(x + dx - 2, y + dy - 2), base, 20) {
                hits += 1;
            }
        }
    }
    hits >= 20
}

#[test]
fn hello_triangle_frame1_640x480() {
    let (w, h) = (640, 480);
    let mut cube = common::Cube::new(w, h);
    let mut s = Surface::new(w, h, false);
    cube.render(1, &mut s);
    assert_eq!(cube.ctx.get_error(), gl::GL_NO_ERROR);
    if let Ok(dir) = std::env::var("VC_GLES_DUMP_DIR") {
        s.color
            .write_png(std::path::Path::new(&dir).join("vc-gles-frame1.png"))
            .unwrap();
    }
    let img = &s.color;
    for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
        assert_eq!(img.get(x, y), BG, "corner ({x},{y})");
    }
    // Face centroids from spec §2.5: Lucca slot lower right, Djenné left, Gaudí upper middle.
    assert!(
        region_is(img, 394, 331, common::LUCCA),
        "{:?}",
        img.get(394, 331)
    );
    assert!(
        region_is(img, 188, 296, common::DJENNE),
        "{:?}",
        img.get(188, 296)
    );
    assert!(
        region_is(img, 319, 139, common::GAUDI),
        "{:?}",
        img.get(319, 139)
    );
    let st = stats(img);
    let frac = st.coverage as f64 / f64::from(w * h);
    assert!((frac - 0.471).abs() <= 0.015, "coverage {frac}");
    let want = [96, 11, 580, 479];
    for (got, want) in st.bbox.iter().zip(want) {
        assert!((i64::from(*got) - want).abs() <= 3, "bbox {:?}", st.bbox);
    }
    // Only the three expected textures appear (no back face leaks a fourth): every
    // non-background pixel is near one of the three palettes or the pale marker.
    let foreign = img
        .pixels
        .iter()
        .map(|p| p.to_le_bytes())
        .filter(|&c| c != BG)
        .filter(|&c| {
            ![
                common::LUCCA,
                common::DJENNE,
                common::GAUDI,
                [240, 240, 240],
            ]
            .iter()
            .any(|&b| near(c, b, 13))
        })
        .count();
    assert_eq!(foreign, 0);
}

#[test]
fn hello_triangle_frame1_1920x1080() {
    let (w, h) = (1920, 1080);
    let mut cube = common::Cube::new(w, h);
    let mut s = Surface::new(w, h, false);
    cube.render(1, &mut s);
    let st = stats(&s.color);
    let frac = st.coverage as f64 / f64::from(w * h);
    // Spec §2.5: bounding box x 455..1546, y 25..1079, coverage ≈ 35 %.
    assert!((frac - 0.35).abs() <= 0.015, "coverage {frac}");
    for (got, want) in st.bbox.iter().zip([455, 25, 1546, 1079]) {
        assert!((i64::from(*got) - want).abs() <= 3, "bbox {:?}", st.bbox);
    }
    assert!(region_is(&s.color, 960, 540, common::GAUDI));
}

#[test]
fn parallel_equals_serial_and_period_720() {
    let (w, h) = (320, 240);
    let mut a = common::Cube::new(w, h);
    let mut b = common::Cube::new(w, h);
    a.ctx.set_parallel(true);
    b.ctx.set_parallel(false);
    let (mut sa, mut sb) = (Surface::new(w, h, false), Surface::new(w, h, false));
    for frame in [1, 180, 360, 720] {
        a.render(frame, &mut sa);
        b.render(frame, &mut sb);
        assert_eq!(sa.color.pixels, sb.color.pixels, "frame {frame}");
        if let Ok(dir) = std::env::var("VC_GLES_DUMP_DIR") {
            let name = format!("vc-gles-frame{frame}-320x240.png");
            sa.color
                .write_png(std::path::Path::new(&dir).join(name))
                .unwrap();
        }
    }
    // Frame k + 720 ≈ frame k (angles accumulate in f32, so allow a few pixels).
    a.render(1, &mut sa);
    b.render(721, &mut sb);
    let diff = sa
        .color
        .pixels
        .iter()
        .zip(&sb.color.pixels)
        .filter(|(p, q)| p != q)
        .count();
    assert!(diff < (w * h / 200) as usize, "{diff} pixels differ");

    // A random triangle soup with depth and blending: parallel == serial.
    let mut rng = Rng(12345);
    let n = 600;
    let pos: Vec<f32> = (0..n * 3 * 3).map(|_| rng.unit() * 2.4 - 1.2).collect();
    let col: Vec<f32> = (0..n * 3 * 4).map(|_| rng.unit()).collect();
    let (pb, cb) = (f32_bytes(&pos), f32_bytes(&col));
    let arrays = VertexArrays {
        position: Some(floats(3, &pb)),
        color: Some(floats(4, &cb)),
        ..Default::default()
    };
    let mut outs = Vec::new();
    for parallel in [true, false] {
        let mut ctx = Gles11::new();
        ctx.set_parallel(parallel);
        ctx.enable(gl::GL_DEPTH_TEST);
        ctx.enable(gl::GL_BLEND);
        ctx.blend_func(gl::GL_SRC_ALPHA, gl::GL_ONE_MINUS_SRC_ALPHA);
        let mut s = Surface::new(300, 200, true);
        ctx.clear(gl::GL_DEPTH_BUFFER_BIT | gl::GL_COLOR_BUFFER_BIT, &mut s);
        ctx.draw(
            gl::GL_TRIANGLES,
            Indices::Range {
                first: 0,
                count: (n * 3) as u32,
            },
            &arrays,
            &mut s,
        );
        assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
        outs.push(s);
    }
    assert!(count_not(&outs[0].color, [0; 4]) > 1000);
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn near_plane_clipping() {
    // A floor that passes under and behind the eye: only the in-front part is drawn,
    // filling the lower half of the screen.
    let (w, h) = (64, 64);
    let mut ctx = Gles11::new();
    ctx.matrix_mode(gl::GL_PROJECTION);
    ctx.frustumf(-1.0, 1.0, -1.0, 1.0, 1.0, 1000.0);
    ctx.matrix_mode(gl::GL_MODELVIEW);
    ctx.enable(gl::GL_CULL_FACE);
    let floor = f32_bytes(&[
        -500.0, -1.0, 50.0, 500.0, -1.0, 50.0, -500.0, -1.0, -500.0, 500.0, -1.0, -500.0,
    ]);
    let arrays = VertexArrays {
        position: Some(floats(3, &floor)),
        ..Default::default()
    };
    let mut s = Surface::new(w, h, false);
    ctx.draw(
        gl::GL_TRIANGLE_STRIP,
        Indices::Range { first: 0, count: 4 },
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    for x in 0..w {
        assert_eq!(s.color.get(x, h - 1), [255; 4]);
        assert_eq!(s.color.get(x, h / 2 + 2), [255; 4]);
        assert_eq!(s.color.get(x, h / 2 - 2), [0; 4]);
    }
    // A triangle with a vertex exactly at the eye (w = 0) does not panic.
    let tri = f32_bytes(&[0.0, 0.0, 0.0, 1.0, -1.0, -5.0, -1.0, -1.0, -5.0]);
    let arrays = VertexArrays {
        position: Some(floats(3, &tri)),
        ..Default::default()
    };
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::Range { first: 0, count: 3 },
        &arrays,
        &mut s,
    );
}

// ---------------------------------------------------------------- robustness

#[test]
fn malformed_input_sets_errors_and_never_panics() {
    let mut ctx = Gles11::new();
    let mut s = Surface::new(16, 16, true);
    let pos = f32_bytes(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    let arrays = VertexArrays {
        position: Some(floats(2, &pos)),
        ..Default::default()
    };
    // Short arrays / out-of-range indices.
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::Range { first: 0, count: 4 },
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.draw(gl::GL_TRIANGLES, Indices::U16(&[0, 1, 3]), &arrays, &mut s);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::Range {
            first: u32::MAX,
            count: u32::MAX,
        },
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::U32(&[0, 1, u32::MAX]),
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    // Bad enums and sizes.
    ctx.draw(7, Indices::Range { first: 0, count: 3 }, &arrays, &mut s);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    let bad = VertexArrays {
        position: Some(AttribArray {
            size: 5,
            ..floats(2, &pos)
        }),
        ..Default::default()
    };
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::Range { first: 0, count: 3 },
        &bad,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.draw(
        gl::GL_POINTS,
        Indices::Range { first: 0, count: 3 },
        &arrays,
        &mut s,
    );
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
    ctx.enable(0xFFFF);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    ctx.matrix_mode(0);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    ctx.viewport(0, 0, -1, 5);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.frustumf(-1.0, 1.0, -1.0, 1.0, 0.0, 10.0);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.tex_envi(
        gl::GL_TEXTURE_ENV,
        gl::GL_TEXTURE_ENV_MODE,
        gl::GL_COMBINE as i32,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    // Matrix stacks.
    ctx.matrix_mode(gl::GL_PROJECTION);
    ctx.pop_matrix();
    assert_eq!(ctx.get_error(), gl::GL_STACK_UNDERFLOW);
    for _ in 0..10 {
        ctx.push_matrix();
    }
    assert_eq!(ctx.get_error(), gl::GL_STACK_OVERFLOW);
    ctx.matrix_mode(gl::GL_MODELVIEW);
    for _ in 0..15 {
        ctx.push_matrix();
    }
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR, "modelview depth ≥ 16");
    // The first error sticks until read.
    ctx.cull_face(0);
    ctx.viewport(0, 0, -1, -1);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);

    // Textures: huge sizes, bad formats, short data.
    let tex =
        |ctx: &mut Gles11, w: u32, h: u32, f: u32, t: u32, align: u32, data: Option<&[u8]>| {
            ctx.tex_image_2d(gl::GL_TEXTURE_2D, 0, f, w, h, 0, f, t, align, data);
            ctx.get_error()
        };
    assert_eq!(
        tex(
            &mut ctx,
            u32::MAX,
            u32::MAX,
            gl::GL_RGB,
            gl::GL_UNSIGNED_BYTE,
            4,
            None
        ),
        gl::GL_INVALID_VALUE
    );
    assert_eq!(
        tex(&mut ctx, 4096, 1, gl::GL_RGB, gl::GL_UNSIGNED_BYTE, 4, None),
        gl::GL_INVALID_VALUE
    );
    assert_eq!(
        tex(&mut ctx, 2, 2, 0x1234, gl::GL_UNSIGNED_BYTE, 4, None),
        gl::GL_INVALID_ENUM
    );
    assert_eq!(
        tex(
            &mut ctx,
            2,
            2,
            gl::GL_RGBA,
            gl::GL_UNSIGNED_SHORT_5_6_5,
            4,
            None
        ),
        gl::GL_INVALID_OPERATION
    );
    assert_eq!(
        tex(&mut ctx, 2, 2, gl::GL_RGB, gl::GL_UNSIGNED_BYTE, 3, None),
        gl::GL_INVALID_VALUE
    );
    assert_eq!(
        tex(
            &mut ctx,
            2,
            2,
            gl::GL_RGB,
            gl::GL_UNSIGNED_BYTE,
            4,
            Some(&[0; 13])
        ),
        gl::GL_INVALID_OPERATION
    );
    assert_eq!(
        tex(
            &mut ctx,
            2,
            2,
            gl::GL_RGB,
            gl::GL_UNSIGNED_BYTE,
            4,
            Some(&[0; 14])
        ),
        gl::GL_NO_ERROR
    );
    ctx.tex_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        gl::GL_RGBA,
        2,
        2,
        0,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        None,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.tex_image_2d(
        gl::GL_TEXTURE_2D,
        99,
        gl::GL_RGB,
        2,
        2,
        0,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        None,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        -1,
        0,
        1,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        &[0; 3],
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        1,
        1,
        u32::MAX,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        &[0; 3],
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    ctx.bind_texture(gl::GL_TEXTURE_2D, 55);
    ctx.tex_sub_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        0,
        0,
        1,
        1,
        gl::GL_RGB,
        gl::GL_UNSIGNED_BYTE,
        4,
        &[0; 3],
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.delete_textures(&[55, 0, 12345]);
    assert_eq!(ctx.bound_texture(), 0);
    assert!(!ctx.is_texture(55));
    ctx.bind_texture(0x8513 /* GL_TEXTURE_CUBE_MAP */, 1);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_ENUM);
    assert!(ctx.gen_textures(-1).is_empty());
    assert_eq!(ctx.get_error(), gl::GL_INVALID_VALUE);
    assert!(ctx.gen_textures(i32::MAX).is_empty());
    assert_eq!(ctx.get_error(), gl::GL_OUT_OF_MEMORY);

    // Inconsistent surfaces are refused.
    let mut broken = Surface {
        color: Image {
            width: 100,
            height: 100,
            pixels: vec![0; 10],
        },
        depth: Some(vec![0.0; 3]),
    };
    ctx.clear(gl::GL_COLOR_BUFFER_BIT, &mut broken);
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
    ctx.draw(
        gl::GL_TRIANGLES,
        Indices::Range { first: 0, count: 3 },
        &arrays,
        &mut broken,
    );
    assert_eq!(ctx.get_error(), gl::GL_INVALID_OPERATION);
}

#[test]
fn random_calls_never_panic() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut ctx = Gles11::new();
    let mut s = Surface::new(48, 40, true);
    let enums = [
        0u32,
        1,
        4,
        5,
        6,
        7,
        0x1400,
        0x1406,
        0x140C,
        0x0DE1,
        0x0B44,
        0x0B71,
        0x0C11,
        0x0BE2,
        0x1700,
        0x1701,
        0x1702,
        0x1907,
        0x1908,
        0x8363,
        0x2600,
        0x2601,
        0x2703,
        0x2800,
        0x2801,
        0x2802,
        0x2803,
        0x2901,
        0x812F,
        0x2100,
        0x1E01,
        0x0404,
        0x0405,
        0x0900,
        0x0901,
        0x0203,
        0x0302,
        0x0303,
        0xFFFF_FFFF,
    ];
    let floats_pool = [
        0.0f32,
        1.0,
        -1.0,
        0.5,
        1e30,
        -1e30,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-30,
        100.0,
    ];
    for _ in 0..3000 {
        let e = |r: &mut Rng| enums[(r.next() % enums.len() as u64) as usize];
        let f = |r: &mut Rng| {
            if r.next() % 2 == 0 {
                floats_pool[(r.next() % floats_pool.len() as u64) as usize]
            } else {
                r.unit() * 4.0 - 2.0
            }
        };
        match rng.next() % 16 {
            0 => {
                let (a, b) = (e(&mut rng), e(&mut rng));
                ctx.enable(a);
                ctx.disable(b);
            }
            1 => ctx.matrix_mode(e(&mut rng)),
            2 => ctx.rotatef(f(&mut rng), f(&mut rng), f(&mut rng), f(&mut rng)),
            3 => ctx.frustumf(
                f(&mut rng),
                f(&mut rng),
                f(&mut rng),
                f(&mut rng),
                f(&mut rng),
                f(&mut rng),
            ),
            4 => ctx.load_identity(),
            5 => ctx.viewport(
                rng.next() as i32 % 100,
                rng.next() as i32 % 100,
                (rng.next() % 20000) as i32 - 10,
                (rng.next() % 20000) as i32 - 10,
            ),
            6 => {
                let (t, p, v) = (e(&mut rng), e(&mut rng), e(&mut rng));
                ctx.tex_parameteri(t, p, v as i32);
            }
            7 => {
                let (w, h) = ((rng.next() % 9) as u32, (rng.next() % 9) as u32);
                let len = (rng.next() % 300) as usize;
                let data = vec![0x5A; len];
                let (fmt, ty) = (e(&mut rng), e(&mut rng));
                let align = (rng.next() % 9) as u32;
                ctx.tex_image_2d(
                    gl::GL_TEXTURE_2D,
                    (rng.next() % 3) as i32,
                    fmt,
                    w,
                    h,
                    0,
                    fmt,
                    ty,
                    align,
                    Some(&data),
                );
            }
            8 => ctx.bind_texture(gl::GL_TEXTURE_2D, (rng.next() % 4) as u32),
            9 => ctx.push_matrix(),
            10 => ctx.pop_matrix(),
            11 => ctx.scissor(
                rng.next() as i32 % 60,
                rng.next() as i32 % 60,
                (rng.next() % 60) as i32,
                (rng.next() % 60) as i32,
            ),
            12 => ctx.clear(rng.next() as u32 & 0x4500, &mut s),
            _ => {
                // A draw with random arrays, some short, some huge values.
                let n = (rng.next() % 30) as usize;
                let bytes: Vec<u8> = (0..n * 16).map(|_| rng.next() as u8).collect();
                let fl: Vec<u8> = f32_bytes(&(0..n * 4).map(|_| f(&mut rng)).collect::<Vec<_>>());
                let pick = |r: &mut Rng| -> Option<AttribArray<'_>> {
                    let ty = [
                        AttribType::Byte,
                        AttribType::UnsignedByte,
                        AttribType::Short,
                        AttribType::UnsignedShort,
                        AttribType::Fixed,
                        AttribType::Float,
                    ][(r.next() % 6) as usize];
                    (r.next() % 4 != 0).then(|| AttribArray {
                        size: (r.next() % 6) as u32,
                        ty,
                        normalized: r.next() % 2 == 0,
                        stride: [0, 3, 8, 16, u32::MAX][(r.next() % 5) as usize],
                        data: if ty == AttribType::Float { &fl } else { &bytes },
                    })
                };
                let arrays = VertexArrays {
                    position: pick(&mut rng),
                    color: pick(&mut rng),
                    normal: pick(&mut rng),
                    texcoord: pick(&mut rng),
                };
                let idx: Vec<u16> = (0..n).map(|_| (rng.next() % 40) as u16).collect();
                let mode = (rng.next() % 8) as u32;
                let indices = if rng.next() % 2 == 0 {
                    Indices::U16(&idx)
                } else {
                    Indices::Range {
                        first: (rng.next() % 5) as u32,
                        count: (rng.next() % 40) as u32,
                    }
                };
                ctx.draw(mode, indices, &arrays, &mut s);
            }
        }
        let _ = ctx.get_error();
    }
}
