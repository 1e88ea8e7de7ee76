//! The hello_triangle2 programs (our own Mandelbrot and Julia shaders) compile, link
//! and give the colours computed here in Rust with the same f32 arithmetic.

mod common;

use common::*;
use vc_glsl::*;

const VS: &str = "
attribute vec4 vertex;
varying vec2 tcoord;
void main(void)
{
    gl_Position = vertex;
    tcoord = vertex.xy * 0.5 + 0.5;
}
";

const MANDELBROT: &str = "
precision mediump float;
uniform vec4 color;
uniform vec2 scale;
uniform vec2 centre;
varying vec2 tcoord;
void main(void)
{
    vec2 c = (gl_FragCoord.xy - centre) * scale;
    vec2 z = c;
    float n = 0.0;
    for (int i = 0; i < 16; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 4.0) break;
        n += 1.0;
    }
    float t = n / 16.0;
    gl_FragColor = vec4(color.rgb * t, 1.0);
}
";

const JULIA: &str = "
precision mediump float;
uniform vec4 color;
uniform float scale;
uniform vec2 centre;
uniform vec2 offset;
uniform sampler2D tex;
varying vec2 tcoord;
void main(void)
{
    vec2 z = (gl_FragCoord.xy - centre) * scale;
    vec2 c = offset;
    float n = 0.0;
    for (int i = 0; i < 16; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 16.0)
            break;
        n += 1.0;
    }
    vec4 under = texture2D(tex, tcoord);
    gl_FragColor = mix(under, color, n / 16.0);
}
";

fn escape(mut zx: f32, mut zy: f32, cx: f32, cy: f32, limit: f32) -> f32 {
    let mut n = 0.0f32;
    for _ in 0..16 {
        let nx = zx * zx - zy * zy + cx;
        let ny = 2.0 * zx * zy + cy;
        zx = nx;
        zy = ny;
        if zx * zx + zy * zy > limit {
            break;
        }
        n += 1.0;
    }
    n
}

/// Texture of constant grey, recording nothing.
struct Grey;
impl Textures for Grey {
    fn sample(&self, unit: u32, _cube: bool, _coord: [f32; 3], _lod: f32) -> [f32; 4] {
        assert_eq!(unit, 3);
        [0.25, 0.25, 0.25, 1.0]
    }
}

#[test]
fn mandelbrot_pixels() {
    let p = program(VS, MANDELBROT);
    assert_eq!(p.attribute_location("vertex"), 0);
    assert_eq!(
        p.varying_count(),
        0,
        "tcoord is unused by this fragment shader"
    );
    let mut u = Uniforms::new(&p);
    let (sx, sy, cx, cy) = (0.003f32, 0.004f32, 960.0f32, 540.0f32);
    u.f("color", &[1.0, 0.5, 0.25, 1.0])
        .f("scale", &[sx, sy])
        .f("centre", &[cx, cy]);
    for (x, y) in [
        (960.0, 540.0),
        (0.0, 0.0),
        (1200.0, 700.0),
        (700.0, 300.0),
        (1000.0, 600.0),
    ] {
        let out = quad_at(&p, &u, &NoTextures, x, y, &[]);
        for lane in 0..4 {
            let px = x + 0.5 + (lane & 1) as f32;
            let py = y + 0.5 + (lane >> 1) as f32;
            let c0 = (px - cx) * sx;
            let c1 = (py - cy) * sy;
            let t = escape(c0, c1, c0, c1, 4.0) / 16.0;
            assert_eq!(
                out.color[lane],
                [t, 0.5 * t, 0.25 * t, 1.0],
                "pixel {px},{py}"
            );
        }
    }
}

#[test]
fn julia_pixels() {
    let p = program(VS, JULIA);
    assert_eq!(p.varying_count(), 1);
    let mut u = Uniforms::new(&p);
    u.f("color", &[0.5, 0.5, 0.8, 1.0])
        .f("scale", &[0.003])
        .f("centre", &[400.0, 240.0])
        .f("offset", &[-0.4, 0.6]);
    u.i("tex", &[3]);
    let s = p.samplers();
    assert_eq!(s, vec![(p.uniform_location("tex"), Type::Sampler2D)]);
    let varyings = vec![0.5f32; 16];
    for (x, y) in [(400.0, 240.0), (10.0, 10.0), (300.0, 200.0), (500.0, 260.0)] {
        let out = quad_at(&p, &u, &Grey, x, y, &varyings);
        for lane in 0..4 {
            let px = x + 0.5 + (lane & 1) as f32;
            let py = y + 0.5 + (lane >> 1) as f32;
            let n = escape((px - 400.0) * 0.003, (py - 240.0) * 0.003, -0.4, 0.6, 16.0);
            let a = n / 16.0;
            let want: [f32; 4] = std::array::from_fn(|i| {
                let under = [0.25, 0.25, 0.25, 1.0][i];
                let col = [0.5, 0.5, 0.8, 1.0][i];
                under + (col - under) * a
            });
            assert_eq!(out.color[lane], want, "pixel {px},{py}");
        }
    }
}

#[test]
fn vertex_shader_outputs() {
    let p = program(VS, JULIA);
    let u = Uniforms::new(&p);
    let mut attribs = [[0.0f32, 0.0, 0.0, 1.0]; MAX_VERTEX_ATTRIBS];
    attribs[0] = [-1.0, 1.0, 1.0, 1.0];
    let mut out = VertexOutput::default();
    p.run_vertex(&u.words, &NoTextures, &attribs, &mut out, &mut budget())
        .expect("runs");
    assert_eq!(out.position, [-1.0, 1.0, 1.0, 1.0]);
    assert_eq!(out.varyings, vec![0.0, 1.0, 0.0, 0.0]);
}
