//! Time to shade one 2×2 quad with a Julia-set fragment shader (16 iterations with
//! `break`, a texture lookup): the interpreter, and the JIT when built.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vc_glsl::{Budget, Engine, QuadInput, QuadOutput, Stage, Textures, compile, link};

const VS: &str = "attribute vec4 vertex; varying vec2 tcoord;
void main() { gl_Position = vertex; tcoord = vertex.xy * 0.5 + 0.5; }";

const JULIA: &str = "precision mediump float;
uniform vec4 color; uniform float scale; uniform vec2 centre; uniform vec2 offset;
uniform sampler2D tex; varying vec2 tcoord;
void main() {
    vec2 z = (gl_FragCoord.xy - centre) * scale;
    float n = 0.0;
    for (int i = 0; i < 16; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + offset;
        if (dot(z, z) > 16.0) break;
        n += 1.0;
    }
    gl_FragColor = mix(texture2D(tex, tcoord), color, n / 16.0);
}";

struct Flat;
impl Textures for Flat {
    fn sample(&self, _unit: u32, _cube: bool, c: [f32; 3], _lod: f32) -> [f32; 4] {
        [c[0], c[1], 0.5, 1.0]
    }
}

fn julia(c: &mut Criterion) {
    let v = compile(Stage::Vertex, VS)
        .shader
        .expect("vertex shader compiles");
    let f = compile(Stage::Fragment, JULIA)
        .shader
        .expect("fragment shader compiles");
    let p = link(&v, &f, &[]).program.expect("links");
    let mut u = vec![0u32; p.uniform_storage_len()];
    let mut put = |name: &str, vals: &[f32]| {
        let s = p
            .uniform_slot(p.uniform_location(name))
            .expect("uniform exists");
        for (i, x) in vals.iter().enumerate() {
            u[s.offset + i] = x.to_bits();
        }
    };
    put("color", &[0.5, 0.5, 0.8, 1.0]);
    put("scale", &[0.003]);
    put("centre", &[400.0, 240.0]);
    put("offset", &[-0.4, 0.6]);
    let varyings = vec![0.5f32; p.varying_count() * 16];
    let mut group = c.benchmark_group("julia_quad");
    group.throughput(Throughput::Elements(1));
    // A row of quads through the set: a mix of early and late escapes.
    for (name, engine) in [("interpreter", Engine::Interpreter), ("jit", Engine::Jit)] {
        if engine == Engine::Jit && !p.has_jit() {
            continue;
        }
        group.bench_function(name, |b| {
            let mut x = 0.0f32;
            b.iter(|| {
                x = (x + 2.0) % 800.0;
                let fc = std::array::from_fn(|l| {
                    [x + 0.5 + (l & 1) as f32, 240.5 + (l >> 1) as f32, 0.5, 1.0]
                });
                let input = QuadInput {
                    frag_coord: fc,
                    front_facing: true,
                    point_coord: [[0.0; 2]; 4],
                    varyings: &varyings,
                    mask: 0xf,
                };
                let mut out = QuadOutput::default();
                let mut budget = Budget { remaining: 1 << 20 };
                p.run_fragment_quad_with(engine, &u, &Flat, &input, &mut out, &mut budget)
                    .expect("runs");
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, julia);
criterion_main!(benches);
