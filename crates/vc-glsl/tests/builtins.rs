//! Every GLSL ES 1.00 built-in function, evaluated both at run time (operands from
//! uniforms) and by constant folding (literal operands), against Rust.

mod common;

use common::*;
use vc_glsl::*;

const A: [f32; 4] = [0.5, -1.25, 2.0, 3.7];
const B: [f32; 4] = [0.25, 4.0, -0.5, 1.5];

/// Evaluates float expressions of uniforms `a` and `b` (vec4) at run time.
fn eval(exprs: &[&str]) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in exprs.chunks(4) {
        let mut e: Vec<String> = chunk.iter().map(|s| format!("float({s})")).collect();
        e.resize(4, "0.0".into());
        let fs = format!(
            "precision highp float; uniform vec4 a; uniform vec4 b;\nvoid main() {{ gl_FragColor = vec4({}); }}",
            e.join(", ")
        );
        let p = program(PLAIN_VS, &fs);
        let mut u = Uniforms::new(&p);
        if p.uniform_location("a") >= 0 {
            u.f("a", &A);
        }
        if p.uniform_location("b") >= 0 {
            u.f("b", &B);
        }
        let c = quad_at(&p, &u, &Probe, 0.0, 0.0, &[]).color;
        for lane in 1..4 {
            assert_eq!(
                c[lane], c[0],
                "uniform inputs give the same value in every lane"
            );
        }
        out.extend_from_slice(&c[0][..chunk.len()]);
    }
    out
}

/// The same expressions with `a`/`b` replaced by constant vectors (folded at compile time).
fn eval_const(exprs: &[&str]) -> Vec<f32> {
    // Replaces the identifiers `a` and `b` (whole words only).
    let subst = |s: &str| {
        let mut out = String::new();
        let mut word = String::new();
        for ch in s.chars().chain(std::iter::once(' ')) {
            if ch.is_ascii_alphanumeric() || ch == '_' {
                word.push(ch);
                continue;
            }
            match word.as_str() {
                "a" => out.push_str("vec4(0.5, -1.25, 2.0, 3.7)"),
                "b" => out.push_str("vec4(0.25, 4.0, -0.5, 1.5)"),
                w => out.push_str(w),
            }
            word.clear();
            out.push(ch);
        }
        out
    };
    let mut out = Vec::new();
    for e in exprs {
        let fs = format!(
            "precision highp float;\nconst float k = float({});\nvoid main() {{ gl_FragColor = vec4(k); }}",
            subst(e)
        );
        let p = program(PLAIN_VS, &fs);
        let u = Uniforms::new(&p);
        out.push(quad_at(&p, &u, &Probe, 0.0, 0.0, &[]).color[0][0]);
    }
    out
}

fn check(cases: &[(&str, f32)], tol: f32) {
    let exprs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let got = eval(&exprs);
    for ((e, want), g) in cases.iter().zip(&got) {
        assert!(close(*g, *want, tol), "{e}: got {g}, want {want}");
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn angle_and_trigonometry() {
    let (x, y) = (A[0], A[1]);
    check(
        &[
            ("radians(a.z)", A[2] * (std::f32::consts::PI / 180.0)),
            ("degrees(a.x)", x * (180.0 / std::f32::consts::PI)),
            ("sin(a.x)", x.sin()),
            ("cos(a.y)", y.cos()),
            ("tan(a.x)", x.tan()),
            ("asin(a.x)", x.asin()),
            ("acos(a.x)", x.acos()),
            ("atan(a.y)", y.atan()),
            ("atan(a.x, a.y)", x.atan2(y)),
            ("atan(b.z, b.y)", B[2].atan2(B[1])),
        ],
        0.0,
    );
}

#[test]
fn exponential() {
    check(
        &[
            ("pow(b.y, a.x)", 4.0f32.powf(0.5)),
            ("exp(a.y)", (-1.25f32).exp()),
            ("log(b.y)", 4.0f32.ln()),
            ("exp2(a.w)", 3.7f32.exp2()),
            ("log2(a.w)", 3.7f32.log2()),
            ("sqrt(b.y)", 2.0),
            ("inversesqrt(b.y)", 0.5),
            ("inversesqrt(a.w)", 1.0 / 3.7f32.sqrt()),
        ],
        0.0,
    );
}

#[test]
fn common_functions() {
    check(
        &[
            ("abs(a.y)", 1.25),
            ("sign(a.y)", -1.0),
            ("sign(a.x)", 1.0),
            ("sign(a.x - a.x)", 0.0),
            ("floor(a.w)", 3.0),
            ("floor(a.y)", -2.0),
            ("ceil(a.y)", -1.0),
            ("fract(a.y)", 0.75),
            ("mod(a.w, b.w)", 3.7 - 1.5 * (3.7f32 / 1.5).floor()),
            ("mod(a.y, b.w)", -1.25 - 1.5 * (-1.25f32 / 1.5).floor()),
            ("mod(a, 1.5).w", 3.7 - 1.5 * (3.7f32 / 1.5).floor()),
            ("min(a.x, b.x)", 0.25),
            ("min(a, 1.0).w", 1.0),
            ("max(a.y, b.z)", -0.5),
            ("max(a, 1.0).x", 1.0),
            ("clamp(a.w, b.z, b.w)", 1.5),
            ("clamp(a.y, b.z, b.w)", -0.5),
            ("clamp(a, 0.0, 1.0).y", 0.0),
            ("clamp(a, b, b + 1.0).x", 0.5),
            ("mix(a.x, a.z, 0.25)", 0.5 + (2.0 - 0.5) * 0.25),
            ("mix(a, b, b.x).y", -1.25 + (4.0 + 1.25) * 0.25),
            ("mix(a, b, b).z", 2.0 + (-0.5 - 2.0) * -0.5),
            ("step(a.x, b.x)", 0.0),
            ("step(b.x, a.x)", 1.0),
            ("step(1.0, a).w", 1.0),
            ("step(a, b).y", 1.0),
            (
                "smoothstep(0.0, 1.0, 0.25 + a.x - a.x)",
                0.25 * 0.25 * (3.0 - 0.5),
            ),
            ("smoothstep(0.0, 1.0, a).x", 0.5),
            ("smoothstep(0.0, 1.0, a).w", 1.0),
            ("smoothstep(a, a + 1.0, b).x", 0.0),
        ],
        1e-6,
    );
}

#[test]
fn geometric() {
    let n3 = {
        let l = dot(&A[..3], &A[..3]);
        let inv = 1.0 / l.sqrt();
        [A[0] * inv, A[1] * inv, A[2] * inv]
    };
    let d = dot(&B[..3], &A[..3]);
    let refl: Vec<f32> = (0..3)
        .map(|i| A[i] - 2.0 * dot(&B[..3], &A[..3]) * B[i])
        .collect();
    let (i, nn) = ([0.6f32, -0.8], [0.0f32, 1.0]);
    let eta = 0.5f32;
    let dn = dot(&nn, &i);
    let k = 1.0 - eta * eta * (1.0 - dn * dn);
    let refr: Vec<f32> = (0..2)
        .map(|c| eta * i[c] - (eta * dn + k.sqrt()) * nn[c])
        .collect();
    check(
        &[
            ("length(a.xyz)", dot(&A[..3], &A[..3]).sqrt()),
            ("length(a.y)", 1.25),
            (
                "distance(a.xy, b.xy)",
                ((0.25f32).powi(2) + 5.25f32.powi(2)).sqrt(),
            ),
            ("dot(a, b)", dot(&A, &B)),
            ("dot(a.xy, b.xy)", dot(&A[..2], &B[..2])),
            ("cross(a.xyz, b.xyz).x", A[1] * B[2] - B[1] * A[2]),
            ("cross(a.xyz, b.xyz).y", A[2] * B[0] - B[2] * A[0]),
            ("cross(a.xyz, b.xyz).z", A[0] * B[1] - B[0] * A[1]),
            ("normalize(a.xyz).x", n3[0]),
            ("normalize(a.xyz).z", n3[2]),
            (
                "faceforward(a.xyz, b.xyz, a.xyz).x",
                if d < 0.0 { A[0] } else { -A[0] },
            ),
            ("faceforward(a.xy, -a.xy, a.xy).y", A[1]),
            ("reflect(a.xyz, b.xyz).x", refl[0]),
            ("reflect(a.xyz, b.xyz).z", refl[2]),
            (
                "refract(vec2(0.6, -0.8) + a.x - a.x, vec2(0.0, 1.0), 0.5).x",
                refr[0],
            ),
            (
                "refract(vec2(0.6, -0.8) + a.x - a.x, vec2(0.0, 1.0), 0.5).y",
                refr[1],
            ),
            (
                "refract(vec2(1.0, 0.0), vec2(0.0, 1.0) + a.x - a.x, 2.0).x",
                0.0,
            ),
        ],
        1e-6,
    );
}

#[test]
fn matrix_and_relational() {
    check(
        &[
            ("matrixCompMult(mat2(a), mat2(b))[1][0]", A[2] * B[2]),
            ("matrixCompMult(mat3(a.x), mat3(b.y))[1][1]", A[0] * B[1]),
            ("vec4(lessThan(a, b)).x", 0.0),
            ("vec4(lessThan(a, b)).y", 1.0),
            ("vec4(lessThanEqual(a, a)).z", 1.0),
            ("vec4(greaterThan(a, b)).w", 1.0),
            ("vec4(greaterThanEqual(a, b)).y", 0.0),
            ("vec2(equal(a.xy, vec2(0.5, 1.0))).x", 1.0),
            ("vec2(notEqual(a.xy, vec2(0.5, 1.0))).y", 1.0),
            ("vec3(equal(ivec3(a.xyz), ivec3(0, -1, 2))).y", 1.0),
            ("vec2(equal(bvec2(a.xy), bvec2(true, false))).y", 0.0),
            ("float(any(lessThan(a, b)))", 1.0),
            ("float(all(lessThan(a, b)))", 0.0),
            ("float(all(not(lessThan(a, a))))", 1.0),
            ("float(any(bvec3(false, a.x < 0.0, false)))", 0.0),
        ],
        0.0,
    );
}

#[test]
fn constant_folding_matches_run_time() {
    let exprs = [
        "sin(a.x)",
        "pow(b.y, a.x)",
        "exp(a.y)",
        "log2(a.w)",
        "mod(a.w, b.w)",
        "smoothstep(0.0, 1.0, a).x",
        "length(a.xyz)",
        "normalize(a.xyz).y",
        "cross(a.xyz, b.xyz).z",
        "dot(a, b)",
        "clamp(a.w, b.z, b.w)",
        "mix(a, b, b.x).y",
        "atan(a.x, a.y)",
        "inversesqrt(a.w)",
        "fract(a.y)",
        "reflect(a.xyz, b.xyz).x",
    ];
    let run = eval(&exprs);
    let folded = eval_const(&exprs);
    for ((e, r), f) in exprs.iter().zip(&run).zip(&folded) {
        assert_eq!(r.to_bits(), f.to_bits(), "{e}: run time {r}, folded {f}");
    }
}

#[test]
fn wrong_argument_types_are_errors() {
    for (call, name) in [
        ("sin(1)", "sin"),
        ("dot(vec2(1.0), vec3(1.0))", "dot"),
        ("cross(vec2(1.0), vec2(1.0))", "cross"),
        ("mix(vec2(1.0), vec3(1.0), 0.5).x", "mix"),
        ("any(vec2(1.0))", "any"),
        ("lessThan(1.0, 2.0)", "lessThan"),
        (
            "matrixCompMult(mat2(1.0), mat3(1.0))[0][0]",
            "matrixCompMult",
        ),
        ("step(vec2(1.0), 1.0).x", "step"),
    ] {
        let fs = format!("precision mediump float;\nvoid main() {{\n float x = float({call});\n}}");
        let log = compile_error(Stage::Fragment, &fs);
        assert!(
            log.contains(&format!(
                "ERROR: 0:3: '{name}' : no matching overloaded function found"
            )),
            "{call}: {log}"
        );
    }
}

/// Records each lookup so tests can check coordinates, units and LOD.
/// (unit, cube, coordinates, lod) of one lookup.
type Lookup = (u32, bool, [f32; 3], f32);

struct Recorder(std::sync::Mutex<Vec<Lookup>>);

impl Textures for Recorder {
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4] {
        self.0
            .lock()
            .expect("not poisoned")
            .push((unit, cube, coord, lod));
        [coord[0], coord[1], coord[2], lod]
    }
}

#[test]
fn texture_functions_in_fragment_shaders() {
    let fs = "precision mediump float;
uniform sampler2D t; uniform samplerCube c; varying vec2 uv; uniform int which;
void main() {
    if (which == 0) gl_FragColor = texture2D(t, uv);
    else if (which == 1) gl_FragColor = texture2D(t, uv, 1.5);
    else if (which == 2) gl_FragColor = texture2DProj(t, vec3(uv, 2.0));
    else if (which == 3) gl_FragColor = texture2DProj(t, vec4(uv, 7.0, 4.0), -1.0);
    else if (which == 4) gl_FragColor = textureCube(c, vec3(uv, 1.0));
    else gl_FragColor = textureCube(c, vec3(uv, 1.0), 2.0);
}";
    let vs = "attribute vec4 p; varying vec2 uv; void main() { gl_Position = p; uv = p.xy; }";
    let p = program(vs, fs);
    // u = 0.1 + 0.01*dx + 0.03*dy, v = 0.5 + 0.02*dx: d/dx = (0.01, 0.02), d/dy = (0.03, 0).
    let mut var = vec![0.0f32; 16];
    for lane in 0..4 {
        let (dx, dy) = ((lane & 1) as f32, (lane >> 1) as f32);
        var[lane] = 0.1 + 0.01 * dx + 0.03 * dy;
        var[4 + lane] = 0.5 + 0.02 * dx;
    }
    let rho = |a: [f32; 2], b: [f32; 2]| {
        ((a[0] * a[0] + a[1] * a[1]).sqrt()).max((b[0] * b[0] + b[1] * b[1]).sqrt())
    };
    let uvx = |l: usize| [var[l], var[4 + l]];
    let d =
        |l: usize, m: usize, f: &dyn Fn(usize) -> [f32; 2]| [f(m)[0] - f(l)[0], f(m)[1] - f(l)[1]];
    let base_lod = rho(d(0, 1, &uvx), d(0, 2, &uvx)).log2();
    for which in 0..6 {
        let rec = Recorder(Default::default());
        let mut u = Uniforms::new(&p);
        u.i("which", &[which]).i("t", &[2]).i("c", &[5]);
        let out = quad_at(&p, &u, &rec, 0.0, 0.0, &var);
        let calls = rec.0.into_inner().expect("not poisoned");
        assert_eq!(calls.len(), 4, "one lookup per lane");
        for (lane, (unit, cube, coord, lod)) in calls.iter().enumerate() {
            let (s, t) = (var[lane], var[4 + lane]);
            match which {
                0 | 1 => {
                    assert_eq!((*unit, *cube), (2, false));
                    assert_eq!([coord[0], coord[1]], [s, t]);
                    let want = base_lod + if which == 1 { 1.5 } else { 0.0 };
                    assert!(close(*lod, want, 1e-5), "lod {lod} want {want}");
                }
                2 => {
                    assert_eq!([coord[0], coord[1]], [s / 2.0, t / 2.0]);
                    let f = |l: usize| [var[l] / 2.0, var[4 + l] / 2.0];
                    assert!(close(*lod, rho(d(0, 1, &f), d(0, 2, &f)).log2(), 1e-5));
                }
                3 => assert_eq!([coord[0], coord[1]], [s / 4.0, t / 4.0]),
                _ => {
                    assert_eq!((*unit, *cube), (5, true));
                    assert_eq!(*coord, [s, t, 1.0]);
                    let extra = if which == 5 { 2.0 } else { 0.0 };
                    assert!(close(*lod, base_lod + extra, 1e-5));
                }
            }
            assert_eq!(out.color[lane][3], *lod);
        }
    }
}

#[test]
fn texture_lod_functions_in_vertex_shaders() {
    let vs = "attribute vec4 p; uniform sampler2D t; uniform samplerCube c; varying vec4 r; varying vec4 q;
void main() {
    gl_Position = p;
    r = texture2DLod(t, p.xy, 3.0) + texture2DProjLod(t, vec3(p.xy, 2.0), 1.0) * 0.0;
    q = textureCubeLod(c, p.xyz, 2.5) + texture2D(t, p.xy) * 0.0 + textureCube(c, p.xyz) * 0.0 + texture2DProj(t, p) * 0.0;
}";
    let fs = "precision mediump float; varying vec4 r; varying vec4 q; void main() { gl_FragColor = r + q; }";
    let p = program(vs, fs);
    let mut u = Uniforms::new(&p);
    u.i("t", &[1]).i("c", &[2]);
    let rec = Recorder(Default::default());
    let mut attribs = [[0.0f32; 4]; MAX_VERTEX_ATTRIBS];
    attribs[p.attribute_location("p") as usize] = [0.25, 0.75, -1.0, 2.0];
    let mut out = VertexOutput::default();
    p.run_vertex(&u.words, &rec, &attribs, &mut out, &mut budget())
        .expect("runs");
    assert_eq!(&out.varyings[..4], &[0.25, 0.75, 0.0, 3.0]);
    assert_eq!(&out.varyings[4..], &[0.25, 0.75, -1.0, 2.5]);
    let calls = rec.0.into_inner().expect("not poisoned");
    assert_eq!(calls.len(), 6, "vertex lookups run once, not per lane");
    assert_eq!(calls[1], (1, false, [0.125, 0.375, 0.0], 1.0));
    assert!(
        calls.iter().filter(|c| c.3 == 0.0).count() == 3,
        "implicit LOD is 0 in vertex shaders"
    );
}

#[test]
fn lod_variants_rejected_in_fragment_and_bias_in_vertex() {
    let log = compile_error(
        Stage::Fragment,
        "precision mediump float; uniform sampler2D t;\nvoid main() { gl_FragColor = texture2DLod(t, vec2(0.0), 1.0); }",
    );
    assert!(log.contains("0:2: 'texture2DLod'"), "{log}");
    let log = compile_error(
        Stage::Vertex,
        "uniform sampler2D t;\nvoid main() { gl_Position = texture2D(t, vec2(0.0), 1.0); }",
    );
    assert!(
        log.contains("0:2: 'texture2D' : no matching overloaded function"),
        "{log}"
    );
}
