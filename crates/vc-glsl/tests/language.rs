//! Language constructs, executed per lane with divergent control flow. In each shader
//! `lane` (0..4) is derived from gl_FragCoord so the four lanes of a quad disagree.

mod common;

use common::*;
use vc_glsl::*;

/// Runs `body` (after `int lane = ...;`) and returns every lane's gl_FragColor.
fn lanes(decls: &str, body: &str) -> [[f32; 4]; 4] {
    let fs = format!(
        "precision highp float;\n{decls}\nvoid main() {{\n int lane = int(gl_FragCoord.x) + 2 * int(gl_FragCoord.y);\n float fl = float(lane);\n{body}\n}}\n"
    );
    let p = program(PLAIN_VS, &fs);
    let u = Uniforms::new(&p);
    quad_at(&p, &u, &Probe, 0.0, 0.0, &[]).color
}

fn per_lane(decls: &str, body: &str, f: impl Fn(usize) -> [f32; 4]) {
    let got = lanes(decls, body);
    for (l, g) in got.iter().enumerate() {
        assert_close4(*g, f(l), 1e-6);
    }
}

#[test]
fn divergent_if_else() {
    per_lane(
        "",
        "if (lane == 0) gl_FragColor = vec4(1.0); else if (lane < 3) { gl_FragColor = vec4(2.0); } else gl_FragColor = vec4(fl);",
        |l| [[1.0; 4], [2.0; 4], [2.0; 4], [3.0; 4]][l],
    );
}

#[test]
fn loops_with_per_lane_trip_counts_break_and_continue() {
    per_lane(
        "",
        "float s = 0.0; float odd = 0.0;
         for (int i = 0; i < 10; i++) {
             if (i > lane * 2) break;
             if (i == 1 || i == 3) continue;
             s += float(i);
         }
         int k = 0;
         while (k < lane) { k++; odd += 2.0; }
         int d = 0;
         do { d += 3; } while (d < lane);
         gl_FragColor = vec4(s, odd, float(d), 0.0);",
        |l| {
            let s: i32 = (0..10)
                .take_while(|i| *i <= l as i32 * 2)
                .filter(|i| *i != 1 && *i != 3)
                .sum();
            let d = if l == 0 { 3 } else { (l as i32 + 2) / 3 * 3 };
            [s as f32, 2.0 * l as f32, d as f32, 0.0]
        },
    );
}

#[test]
fn nested_loops_and_early_return_from_functions() {
    per_lane(
        "float f(int n) {
             float acc = 0.0;
             for (int i = 0; i < 4; i++) {
                 for (int j = 0; j < 4; j++) {
                     if (j > i) break;
                     if (i + j == n) return acc + 100.0;
                     acc += 1.0;
                 }
             }
             return acc;
         }",
        "gl_FragColor = vec4(f(lane), f(lane + 4), f(99), 0.0);",
        |l| {
            let f = |n: i32| {
                let mut acc = 0.0;
                for i in 0..4 {
                    for j in 0..4 {
                        if j > i {
                            break;
                        }
                        if i + j == n {
                            return acc + 100.0;
                        }
                        acc += 1.0;
                    }
                }
                acc
            };
            [f(l as i32), f(l as i32 + 4), f(99), 0.0]
        },
    );
}

#[test]
fn return_in_main_and_discard() {
    let fs = "precision mediump float;
void main() {
    int lane = int(gl_FragCoord.x) + 2 * int(gl_FragCoord.y);
    gl_FragColor = vec4(1.0);
    if (lane == 1) discard;
    if (lane == 2) return;
    gl_FragColor = vec4(5.0);
    for (int i = 0; i < 3; i++) { if (lane == 3 && i == 1) discard; }
    gl_FragColor = vec4(7.0);
}";
    let p = program(PLAIN_VS, fs);
    let out = quad_at(&p, &Uniforms::new(&p), &Probe, 0.0, 0.0, &[]);
    assert_eq!(out.discarded, 0b1010);
    assert_eq!(out.color[0], [7.0; 4]);
    assert_eq!(out.color[2], [1.0; 4]);
}

#[test]
fn parameters_in_out_inout_and_overloading() {
    per_lane(
        "void split(in float x, out float whole, inout float acc) { whole = floor(x); acc += x - whole; x = 0.0; }
         float g(float x) { return x * 2.0; }
         float g(vec2 v) { return v.x + v.y; }
         int g(int i) { return i * 3; }
         void swap(inout vec2 v) { v = v.yx; }",
        "float w; float acc = 1.0; float x = fl + 0.25;
         split(x, w, acc);
         vec2 v = vec2(fl, 10.0); swap(v);
         gl_FragColor = vec4(w, acc + x, g(fl) + g(vec2(1.0, fl)) + float(g(lane)), v.x + v.y * 100.0);",
        |l| {
            let fl = l as f32;
            [fl, 1.25 + fl + 0.25, fl * 2.0 + 1.0 + fl + (l * 3) as f32, 10.0 + fl * 100.0]
        },
    );
}

#[test]
fn prototypes_before_definitions() {
    per_lane(
        "float later(float x);\nfloat early(float x) { return later(x) + 1.0; }\nfloat later(float x) { return x * x; }",
        "gl_FragColor = vec4(early(fl));",
        |l| [(l * l) as f32 + 1.0; 4],
    );
}

#[test]
fn structs_arrays_and_dynamic_indexing() {
    per_lane(
        "struct Light { vec3 dir; float power[2]; };
         struct Scene { Light l[2]; int n; };
         float total(Scene s) { return s.l[0].power[1] + s.l[1].power[0]; }",
        "Scene s;
         s.n = 2;
         float p[2]; p[0] = 1.0; p[1] = 2.0;
         s.l[0] = Light(vec3(1.0, 0.0, 0.0), p);
         s.l[1] = s.l[0];
         s.l[1].power[lane - lane / 2 * 2] = 10.0 + fl;
         vec4 arr[4];
         for (int i = 0; i < 4; i++) arr[i] = vec4(float(i));
         arr[lane].y = 50.0;
         arr[3 - lane].zw = vec2(7.0, 8.0);
         mat3 m = mat3(1.0);
         m[lane - lane / 3 * 3][1] = 4.0;
         vec4 v = vec4(0.0, 1.0, 2.0, 3.0);
         gl_FragColor = vec4(total(s), arr[lane].y + arr[lane].z * 100.0, m[1][1] + m[0][1] * 10.0, v[3 - lane]);",
        |l| {
            let mut power1 = [1.0f32, 2.0];
            power1[l % 2] = 10.0 + l as f32;
            let total = 2.0 + power1[0];
            let mut arr: Vec<[f32; 4]> = (0..4).map(|i| [i as f32; 4]).collect();
            arr[l][1] = 50.0;
            arr[3 - l][2] = 7.0;
            arr[3 - l][3] = 8.0;
            let mut m = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            m[l % 3][1] = 4.0;
            [total, arr[l][1] + arr[l][2] * 100.0, m[1][1] + m[0][1] * 10.0, (3 - l) as f32]
        },
    );
}

#[test]
fn struct_equality_and_assignment() {
    per_lane(
        "struct P { vec2 a; int b; bool c; };",
        "P x = P(vec2(fl, 1.0), lane, true);
         P y = x;
         y.a.y = 1.0;
         bool same = x == y;
         y.b += 1;
         gl_FragColor = vec4(float(same), float(x != y), float(y.b), float(y.c));",
        |l| [1.0, 1.0, l as f32 + 1.0, 1.0],
    );
}

#[test]
fn swizzles_read_and_write() {
    per_lane(
        "",
        "vec4 v = vec4(1.0, 2.0, 3.0, 4.0);
         v.wx = v.xw;
         vec3 c = v.rgb;
         vec2 t = v.st + v.pq;
         v.yz = vec2(fl, -fl);
         vec4 r = vec4(c.zyx.x, t.y, v.y, v.z) + v.xxxx * 0.0 + vec4(c.bbbb.w * 0.0);
         gl_FragColor = r;",
        |l| [3.0, 2.0 + 1.0, l as f32, -(l as f32)],
    );
}

#[test]
fn constructors() {
    per_lane(
        "",
        "vec4 a = vec4(vec2(1.0, 2.0), 3, 4.0 * 1.0 + 0.0 * fl);
         ivec3 b = ivec3(vec3(1.9, -1.9, fl));
         bvec2 c = bvec2(0.0, 2);
         mat2 m = mat2(1.0, 2.0, 3.0, 4.0);
         mat3 big = mat3(m);
         mat2 small = mat2(mat3(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0));
         mat2 d = mat2(fl);
         vec3 fromm = vec3(m);
         float s = float(b.z) + float(true);
         gl_FragColor = vec4(a.z + a.w * 10.0, float(b.x * 10 + b.y), float(c.x) + float(c.y) * 2.0, 0.0)
             + vec4(0.0, 0.0, 0.0, big[2][2] + big[0][1] * 10.0 + big[2][0] * 100.0 + small[1][0] * 1000.0 + d[1][1] * 10000.0
             + fromm.z * 100000.0 + s * 1000000.0);",
        |l| {
            let fl = l as f32;
            [3.0 + 40.0, (10 - 1) as f32, 2.0, 1.0 + 20.0 + 0.0 + 4000.0 + fl * 10000.0 + 300000.0 + (fl + 1.0) * 1000000.0]
        },
    );
}

#[test]
fn matrix_arithmetic() {
    per_lane(
        "uniform mat2 unused;",
        "mat2 a = mat2(1.0, 2.0, 3.0, 4.0);
         mat2 b = mat2(fl, 1.0, 0.0, 2.0);
         mat2 p = a * b;
         vec2 mv = a * vec2(1.0, fl);
         vec2 vm = vec2(1.0, fl) * a;
         mat2 s = a + b * 2.0 - a / 2.0;
         mat2 q = a; q *= b;
         vec2 w = vec2(1.0, 1.0); w *= a;
         gl_FragColor = vec4(p[0][0] + p[1][1] * 10.0 + q[0][1] * 100.0, mv.x + mv.y * 100.0, vm.x + vm.y * 100.0 + w.y * 10000.0, s[1][0] + s[0][0] * 10.0);",
        |l| {
            let fl = l as f32;
            // Column-major: a = [[1,2],[3,4]] columns; b = [[fl,1],[0,2]].
            let a = [[1.0f32, 2.0], [3.0, 4.0]];
            let b = [[fl, 1.0], [0.0, 2.0]];
            let mul = |x: [[f32; 2]; 2], y: [[f32; 2]; 2]| {
                let mut r = [[0.0f32; 2]; 2];
                for c in 0..2 {
                    for row in 0..2 {
                        r[c][row] = x[0][row] * y[c][0] + x[1][row] * y[c][1];
                    }
                }
                r
            };
            let p = mul(a, b);
            let mv = [a[0][0] + a[1][0] * fl, a[0][1] + a[1][1] * fl];
            let vm = [a[0][0] + fl * a[0][1], a[1][0] + fl * a[1][1]];
            let w1 = a[1][0] + a[1][1];
            let s10 = a[1][0] + b[1][0] * 2.0 - a[1][0] / 2.0;
            let s00 = a[0][0] + b[0][0] * 2.0 - a[0][0] / 2.0;
            [p[0][0] + p[1][1] * 10.0 + p[0][1] * 100.0, mv[0] + mv[1] * 100.0, vm[0] + vm[1] * 100.0 + w1 * 10000.0, s10 + s00 * 10.0]
        },
    );
}

#[test]
fn operators_increments_ternary_and_short_circuit() {
    per_lane(
        "int calls = 0;
         bool bump() { calls++; return true; }",
        "int i = lane;
         int a = i++;
         int b = ++i;
         int c = i--;
         float f = 1.5; f -= 0.5; f *= 4.0; f /= 2.0;
         bool t = lane > 1 && bump();
         bool u = lane > 1 || bump();
         float tern = lane == 2 ? 20.0 : (lane == 3 ? 30.0 : -1.0);
         int side = 0;
         float sel = lane > 0 ? float(side += 5) : float(side -= 1);
         int q = 7 / 2 + (-7) / 2 * 10 + lane / 0 * 0;
         bool x = (lane == 1) ^^ (lane == 3);
         float comma = (f += 1.0, f * 2.0);
         gl_FragColor = vec4(float(a + b * 10 + c * 100 + calls * 1000), f + tern * 10.0, sel + float(side) * 100.0, float(q) + float(x) * 100.0 + comma * 1000.0);",
        |l| {
            let li = l as i32;
            let (a, b, c) = (li, li + 2, li + 2);
            let calls = if l > 1 { 1 } else { 0 } + if l > 1 { 0 } else { 1 };
            let f = 2.0f32 + 1.0;
            let tern = [-1.0f32, -1.0, 20.0, 30.0][l];
            let (sel, side) = if l > 0 { (5.0f32, 5.0f32) } else { (-1.0, -1.0) };
            let q = 3 + (-3) * 10;
            let x = (l == 1) ^ (l == 3);
            [(a + b * 10 + c * 100 + calls * 1000) as f32, f + tern * 10.0, sel + side * 100.0, q as f32 + x as u8 as f32 * 100.0 + f * 2.0 * 1000.0]
        },
    );
}

#[test]
fn consts_globals_and_precision() {
    per_lane(
        "const int N = 3;
         const vec2 K = vec2(float(N) * 2.0, 1.0);
         float table[N + 1];
         uniform lowp vec4 unused_u;
         highp float g = 4.0;
         precision lowp int;",
        "mediump float m = K.x + g;
         for (int i = 0; i < N + 1; i++) table[i] = float(i * i);
         g += 1.0;
         gl_FragColor = vec4(m, table[lane], g, float(gl_MaxVertexAttribs + gl_MaxDrawBuffers));",
        |l| [10.0, (l * l) as f32, 5.0, 9.0],
    );
}

#[test]
fn preprocessor_features() {
    per_lane(
        "#define SQ(x) ((x) * (x))
         #define TWO 2
         #define ADD(a, b) (a + b)
         #if defined(GL_ES) && GL_ES == 1 && __VERSION__ == 100 && GL_FRAGMENT_PRECISION_HIGH
         #define OK 1.0
         #else
         #define OK -1.0
         #endif
         #ifdef TWO
         #undef TWO
         #define TWO 3
         #endif
         #ifndef NOPE
         #  if TWO > 2 || 1 / 0
         #  elif 1
         #    error not reached
         #  endif
         #endif
         #pragma optimize(on)
         #extension all : disable",
        "gl_FragColor = vec4(SQ(fl + 1.0), float(TWO), ADD(OK, SQ(2.0)), float(__LINE__));",
        |l| [(l as f32 + 1.0) * (l as f32 + 1.0), 3.0, 5.0, 25.0],
    );
}

#[test]
fn version_line_and_comments() {
    let fs = "/* leading comment */ // line comment
#version 100
precision mediump float;
#line 50
void main() { gl_FragColor = vec4(float(__LINE__)); /* multi
line */ }";
    let p = program(PLAIN_VS, fs);
    let out = quad_at(&p, &Uniforms::new(&p), &Probe, 0.0, 0.0, &[]);
    assert_eq!(out.color[0], [50.0; 4]);
}

#[test]
fn frag_data_front_facing_point_coord_and_varyings() {
    let vs = "attribute vec4 p; varying vec3 v; varying mat2 m; varying float arr[2];
void main() { gl_Position = p; v = p.xyz * 2.0; m = mat2(p); arr[0] = 1.0; arr[1] = p.w; gl_PointSize = 3.0; }";
    let fs = "precision mediump float; varying vec3 v; varying mat2 m; varying float arr[2];
void main() { gl_FragData[0] = vec4(v.x + m[1][1] + arr[1], float(gl_FrontFacing), gl_PointCoord); }";
    let p = program(vs, fs);
    assert_eq!(p.varying_count(), 1 + 2 + 2);
    let mut attribs = [[0.0f32; 4]; MAX_VERTEX_ATTRIBS];
    attribs[0] = [1.0, 2.0, 3.0, 4.0];
    let mut vo = VertexOutput::default();
    let u = Uniforms::new(&p);
    p.run_vertex(&u.words, &NoTextures, &attribs, &mut vo, &mut budget())
        .expect("runs");
    assert_eq!(vo.point_size, 3.0);
    assert_eq!(vo.varyings.len(), 5 * 4);
    assert_eq!(&vo.varyings[0..4], &[2.0, 4.0, 6.0, 0.0]);
    assert_eq!(
        &vo.varyings[4..12],
        &[1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]
    );
    assert_eq!(
        &vo.varyings[12..20],
        &[1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]
    );
    // Broadcast the vertex to all lanes in SoA form.
    let mut soa = vec![0.0f32; 5 * 16];
    for (i, x) in vo.varyings.iter().enumerate() {
        for lane in 0..4 {
            soa[i * 4 + lane] = *x + lane as f32;
        }
    }
    let input = QuadInput {
        frag_coord: [[0.5, 0.5, 0.0, 1.0]; 4],
        front_facing: false,
        point_coord: [[0.25, 0.75]; 4],
        varyings: &soa,
        mask: 0xf,
    };
    let mut out = QuadOutput::default();
    p.run_fragment_quad(&u.words, &NoTextures, &input, &mut out, &mut budget())
        .expect("runs");
    for lane in 0..4 {
        let lf = lane as f32;
        assert_eq!(
            out.color[lane],
            [2.0 + lf + 4.0 + lf + 4.0 + lf, 0.0, 0.25, 0.75]
        );
    }
    let short = QuadInput {
        varyings: &soa[..10],
        ..input
    };
    assert_eq!(
        p.run_fragment_quad(&u.words, &NoTextures, &short, &mut out, &mut budget()),
        Err(ExecError::InputTooShort("varyings"))
    );
}
