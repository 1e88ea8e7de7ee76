//! The JIT and the interpreter agree bit for bit (within one ulp allowed) on every
//! shader of a corpus covering the language and the built-ins, on random inputs.

mod common;

use common::*;
use vc_glsl::*;

const VS: &str = "
attribute vec4 pos; attribute vec3 nrm; attribute mat2 m2;
uniform mat4 mvp; uniform vec4 lights[3]; uniform int nl; uniform sampler2D vt;
varying vec4 va; varying vec2 vb; varying float vc[2];
float shade(vec3 n, vec3 l) { return max(dot(normalize(n), normalize(l)), 0.0); }
void main() {
    gl_Position = mvp * pos;
    float s = 0.0;
    for (int i = 0; i < 3; i++) { if (i >= nl) break; s += shade(nrm, lights[i].xyz) * lights[i].w; }
    va = vec4(s, m2 * pos.xy, length(nrm)) + texture2DLod(vt, pos.xy, 1.0);
    vb = pos.zw / (abs(pos.x) + 1.0);
    vc[0] = mod(pos.x, 0.3); vc[1] = atan(pos.y, pos.z);
    gl_PointSize = exp2(pos.w);
}";

const HEADER: &str = "precision highp float;
uniform vec4 u0; uniform vec4 u1; uniform int ui; uniform bool ub; uniform mat3 um; uniform vec2 arr[4];
uniform sampler2D t2; uniform samplerCube tc;
varying vec4 va; varying vec2 vb; varying float vc[2];
";

const BODIES: &[&str] = &[
    // Julia set with break.
    "vec2 z = (gl_FragCoord.xy - u0.xy) * 0.01; float n = 0.0;
     for (int i = 0; i < 16; i++) { z = vec2(z.x*z.x - z.y*z.y, 2.0*z.x*z.y) + u1.xy; if (dot(z, z) > 4.0) break; n += 1.0; }
     gl_FragColor = mix(texture2D(t2, vb), u1, n / 16.0);",
    // Transcendentals and common functions.
    "vec4 a = va * 3.0 - 1.0;
     gl_FragColor = vec4(sin(a.x) + cos(a.y) * tan(a.z), asin(clamp(a.w, -1.0, 1.0)) + acos(clamp(a.x, -1.0, 1.0)),
                         atan(a.y) + atan(a.z, a.w) + pow(abs(a.x), a.y), exp(a.z) + log(abs(a.w) + 0.1) + exp2(a.x) + log2(abs(a.y) + 1.0));",
    "vec4 a = va * 10.0 - 5.0;
     gl_FragColor = sqrt(abs(a)) + inversesqrt(abs(a) + 0.5) + sign(a) + floor(a) + ceil(a) * 2.0 + fract(a) * 3.0
                  + mod(a, 1.7) + mod(a, u0) + min(a, u1) + max(a, 0.5) + clamp(a, -1.0, u0.x) + mix(a, u1, vb.x)
                  + step(u0, a) + smoothstep(-1.0, 2.0, a) + radians(a) + degrees(a) * 0.01;",
    "vec3 n = normalize(va.xyz - 0.5); vec3 i = normalize(u0.xyz - 0.5);
     gl_FragColor = vec4(length(va), distance(va.xy, u1.xy), dot(va, u1), 0.0) + vec4(cross(n, i), 1.0)
                  + vec4(faceforward(n, i, u1.xyz), 0.0) + vec4(reflect(i, n), 0.0) + vec4(refract(i, n, vb.x + 0.5), 1.0);",
    // Relational and boolean built-ins; int arithmetic.
    "bvec4 lt = lessThan(va, u0); bvec4 ge = greaterThanEqual(va, u1);
     ivec4 iv = ivec4(va * 20.0) - ivec4(10);
     ivec4 q = iv / (ivec4(3) + ivec4(lt)) + iv * ivec4(2) - ivec4(ui);
     gl_FragColor = vec4(lt) + vec4(ge) * 2.0 + vec4(notEqual(iv, ivec4(0))) * 4.0 + vec4(equal(lt, ge)) * 8.0
                  + vec4(any(lt), all(ge), any(not(lt)), ub) * 16.0 + vec4(q) + vec4(lessThanEqual(iv, q)) + vec4(greaterThan(q, iv));",
    // Divergent control flow, discard, return, continue.
    "int lane = int(gl_FragCoord.x) - int(gl_FragCoord.y) * 3;
     float acc = 0.0;
     for (int i = 0; i < 12; i++) {
         if (i - lane > 7) break;
         if (mod(float(i), 3.0) == 1.0) continue;
         acc += va.x * float(i);
         int j = 0;
         while (j < i) { j += 2; acc -= 0.1; }
         do { acc *= 1.01; } while (acc > 100.0 && acc < 50.0);
     }
     if (va.y > 0.8) discard;
     if (va.z > 0.7) { gl_FragColor = vec4(acc); return; }
     gl_FragColor = vec4(acc, float(lane), va.y < 0.5 ? 1.0 : -1.0, 0.0);",
    // Dynamic indexing of uniforms, locals and matrices; swizzle writes.
    "int k = int(va.x * 4.0);
     vec2 a = arr[k] + arr[ui - ui];
     float loc[5]; for (int i = 0; i < 5; i++) loc[i] = float(i) * va.y;
     loc[k] += 10.0;
     mat3 m = um; m[k - k / 3 * 3] = va.xyz;
     vec4 v = va; v.zx = a; v[k] = loc[k + 1];
     gl_FragColor = v + vec4(m * vb.xyy, loc[4 - k]) + vec4(um[k - k / 3 * 3], 1.0);",
    // Functions with in/out/inout, structs, matrices.
    "struct S { vec3 p; float w; mat2 r; };
     vec4 dummy;",
    // Textures of all kinds with implicit derivatives.
    "gl_FragColor = texture2D(t2, vb) + texture2D(t2, va.xy, va.z) + texture2DProj(t2, va.xyz) + texture2DProj(t2, va, 0.5)
                  + textureCube(tc, va.xyz - 0.5) + textureCube(tc, va.zyx, -1.0) + vec4(gl_FrontFacing) + vec4(gl_PointCoord, vc[0], vc[1]);",
    // Matrices.
    "mat2 a = mat2(va); mat3 b = mat3(va.xyz, vb, 1.0, u0.xyz); mat4 c = mat4(um);
     mat4 d = c * mat4(b) + mat4(1.0) * u0.x; d *= 0.5; d[1] = d[1] - u1;
     vec4 r = d * va + va * d; r.xy += a * vb + vb * a; r.xyz += matrixCompMult(b, um) * vb.yxx;
     mat2 small = mat2(d); mat3 mid = mat3(c) / 2.0;
     gl_FragColor = r + vec4(small[0], mid[2].xy) - vec4(-b[0], 1.0);",
];

const FUNCTIONS: &str = "
struct S { vec3 p; float w; };
void split(in float x, out float whole, inout float acc) { whole = floor(x); acc += x - whole; }
S make(vec3 p, float w) { S s; s.p = p; s.w = w; return s; }
float pick(S s, int i) { if (i == 0) return s.p.x; else if (i == 1) return s.p.y; return s.w; }
vec2 f(vec2 v) { return v * 2.0; }
vec2 f(float x) { return vec2(x, -x); }
";

const FUNCTION_BODY: &str = "float w; float acc = va.x; split(va.y * 10.0, w, acc);
     S s = make(va.xyz, va.w); S t = s; t.p.y += 1.0;
     float p = pick(s, int(vb.x * 3.0)) + pick(t, 1);
     gl_FragColor = vec4(w, acc, p, float(s == t)) + vec4(f(vb), f(va.x));";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 100_000) as f32 / 100_000.0
    }
}

struct Tex;

impl Textures for Tex {
    fn sample(&self, unit: u32, cube: bool, c: [f32; 3], lod: f32) -> [f32; 4] {
        [
            c[0].fract(),
            c[1] * 0.5,
            c[2] + unit as f32,
            if cube { 1.0 } else { lod.max(-8.0) },
        ]
    }
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
        || (a.is_nan() && b.is_nan())
        || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
}

fn random_uniforms(p: &Program, rng: &mut Rng) -> Vec<u32> {
    let mut u = vec![0u32; p.uniform_storage_len()];
    for v in p.uniforms() {
        for e in 0..v.size {
            let slot = p.uniform_slot(v.location + e as i32).expect("location");
            for c in 0..v.ty.components() {
                u[slot.offset + c] = match v.ty {
                    Type::Int => rng.next() % 5,
                    Type::Bool => rng.next() % 2,
                    Type::Sampler2D | Type::SamplerCube => rng.next() % 4,
                    _ => (rng.unit() * 2.0 - 0.5).to_bits(),
                };
            }
        }
    }
    u
}

fn check_fragment(fs: &str, rounds: usize) {
    let p = program(VS, fs);
    assert!(
        p.has_jit(),
        "the corpus must compile to native code on this host"
    );
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..rounds {
        let u = random_uniforms(&p, &mut rng);
        let varyings: Vec<f32> = (0..p.varying_count() * 16).map(|_| rng.unit()).collect();
        let (x, y) = ((rng.next() % 400) as f32, (rng.next() % 300) as f32);
        let fc = std::array::from_fn(|l| {
            [
                x + 0.5 + (l & 1) as f32,
                y + 0.5 + (l >> 1) as f32,
                rng.unit(),
                1.0,
            ]
        });
        let input = QuadInput {
            frag_coord: fc,
            front_facing: rng.next() % 2 == 0,
            point_coord: std::array::from_fn(|_| [rng.unit(), rng.unit()]),
            varyings: &varyings,
            mask: 0xf,
        };
        let (mut a, mut b) = (QuadOutput::default(), QuadOutput::default());
        let (mut ba, mut bb) = (budget(), budget());
        let ra = p.run_fragment_quad_with(Engine::Interpreter, &u, &Tex, &input, &mut a, &mut ba);
        let rb = p.run_fragment_quad_with(Engine::Jit, &u, &Tex, &input, &mut b, &mut bb);
        assert_eq!(ra, rb);
        assert_eq!(ba, bb, "both engines spend the same budget");
        assert_eq!(a.discarded, b.discarded);
        for l in 0..4 {
            for c in 0..4 {
                assert!(
                    same(a.color[l][c], b.color[l][c]),
                    "{fs}\nlane {l} comp {c}: {:?} vs {:?}",
                    a.color,
                    b.color
                );
            }
        }
    }
}

#[test]
fn fragment_corpus() {
    for body in BODIES {
        check_fragment(
            &format!("{HEADER}void main() {{\n{body}\n gl_FragColor += vec4(0.0);\n}}"),
            200,
        );
    }
    check_fragment(
        &format!("{HEADER}{FUNCTIONS}void main() {{\n{FUNCTION_BODY}\n}}"),
        200,
    );
}

#[test]
fn vertex_shader_agrees() {
    let p = program(
        VS,
        &format!("{HEADER}void main() {{ gl_FragColor = va + vec4(vb, vc[0], vc[1]); }}"),
    );
    assert!(p.has_jit());
    let mut rng = Rng(42);
    for _ in 0..500 {
        let u = random_uniforms(&p, &mut rng);
        let attribs: [[f32; 4]; MAX_VERTEX_ATTRIBS] =
            std::array::from_fn(|_| std::array::from_fn(|_| rng.unit() * 4.0 - 2.0));
        let (mut a, mut b) = (VertexOutput::default(), VertexOutput::default());
        let (mut ba, mut bb) = (budget(), budget());
        p.run_vertex_with(Engine::Interpreter, &u, &Tex, &attribs, &mut a, &mut ba)
            .expect("runs");
        p.run_vertex_with(Engine::Jit, &u, &Tex, &attribs, &mut b, &mut bb)
            .expect("runs");
        assert_eq!(ba, bb);
        for (x, y) in a
            .position
            .iter()
            .chain(&a.varyings)
            .chain([&a.point_size])
            .zip(b.position.iter().chain(&b.varyings).chain([&b.point_size]))
        {
            assert!(same(*x, *y), "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn jit_stops_endless_loops() {
    let p = program(
        PLAIN_VS,
        "precision mediump float; uniform float k; void main() { float x = 0.0; while (x < 1.0) { x += k; } gl_FragColor = vec4(x); }",
    );
    assert!(p.has_jit());
    let input = QuadInput {
        frag_coord: [[0.0; 4]; 4],
        front_facing: true,
        point_coord: [[0.0; 2]; 4],
        varyings: &[],
        mask: 0xf,
    };
    let mut b = Budget { remaining: 100_000 };
    let r = p.run_fragment_quad_with(
        Engine::Jit,
        &[0],
        &NoTextures,
        &input,
        &mut QuadOutput::default(),
        &mut b,
    );
    assert_eq!(r, Err(ExecError::BudgetExhausted));
    assert_eq!(b.remaining, 0);
    // Short uniform storage is padded with zeros for the native code, as the interpreter reads zeros.
    let mut b = Budget { remaining: 100_000 };
    let r = p.run_fragment_quad_with(
        Engine::Jit,
        &[],
        &NoTextures,
        &input,
        &mut QuadOutput::default(),
        &mut b,
    );
    assert_eq!(r, Err(ExecError::BudgetExhausted));
}
