//! Attribute and uniform locations, uniform storage layout and the values shaders read.

mod common;

use common::*;
use vc_glsl::*;

#[test]
fn attribute_locations_honour_bindings_then_fill_in_order() {
    let vs = "attribute vec4 a; attribute mat3 m; attribute vec2 b; attribute float unused; attribute float c;
void main() { gl_Position = a + vec4(m[2], b.x) + vec4(c); }";
    let fs = "precision mediump float; void main() {}";
    let v = shader(Stage::Vertex, vs);
    let f = shader(Stage::Fragment, fs);
    let p = link(&v, &f, &[("b".into(), 0), ("nothere".into(), 5)])
        .program
        .expect("links");
    let attrs = p.attributes();
    let names: Vec<(&str, i32, Type)> = attrs
        .iter()
        .map(|a| (a.name.as_str(), a.location, a.ty))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a", 1, Type::Vec4),
            ("m", 2, Type::Mat3),
            ("b", 0, Type::Vec2),
            ("c", 5, Type::Float)
        ]
    );
    assert_eq!(
        p.attribute_location("unused"),
        -1,
        "inactive attributes get no location"
    );
    assert_eq!(p.attribute_location("m"), 2);
    // The matrix takes locations 2, 3, 4, one column each.
    let mut attribs = [[0.0f32; 4]; MAX_VERTEX_ATTRIBS];
    attribs[0] = [10.0, 20.0, 0.0, 1.0];
    attribs[1] = [1.0, 2.0, 3.0, 4.0];
    attribs[4] = [100.0, 200.0, 300.0, 0.0];
    attribs[5] = [0.5, 0.0, 0.0, 1.0];
    let mut out = VertexOutput::default();
    p.run_vertex(&[], &NoTextures, &attribs, &mut out, &mut budget())
        .expect("runs");
    assert_eq!(out.position, [101.5, 202.5, 303.5, 14.5]);
}

#[test]
fn uniform_locations_slots_and_storage() {
    let vs = "struct S { float f; vec2 arr[2]; };
uniform mat4 mvp; uniform S s; uniform S sa[2]; uniform vec3 v3[3]; uniform bool flag; uniform int unused;
attribute vec4 p;
void main() { gl_Position = mvp * p + vec4(s.f + s.arr[1].y + sa[1].arr[0].x + v3[2].z + float(flag)); }";
    let fs = "precision mediump float; uniform vec3 v3[3]; uniform samplerCube cube; uniform sampler2D tex[2];
void main() { gl_FragColor = textureCube(cube, v3[0]) + texture2D(tex[1], v3[1].xy); }";
    let p = program(vs, fs);
    let u: Vec<(String, Type, u32, i32)> = p
        .uniforms()
        .iter()
        .map(|a| (a.name.clone(), a.ty, a.size, a.location))
        .collect();
    assert_eq!(
        u,
        vec![
            ("mvp".into(), Type::Mat4, 1, 0),
            ("s.f".into(), Type::Float, 1, 1),
            ("s.arr[0]".into(), Type::Vec2, 2, 2),
            ("sa[0].f".into(), Type::Float, 1, 4),
            ("sa[0].arr[0]".into(), Type::Vec2, 2, 5),
            ("sa[1].f".into(), Type::Float, 1, 7),
            ("sa[1].arr[0]".into(), Type::Vec2, 2, 8),
            ("v3[0]".into(), Type::Vec3, 3, 10),
            ("flag".into(), Type::Bool, 1, 13),
            ("cube".into(), Type::SamplerCube, 1, 14),
            ("tex[0]".into(), Type::Sampler2D, 2, 15),
        ]
    );
    assert_eq!(p.uniform_location("unused"), -1);
    assert_eq!(p.uniform_location("s.arr"), 2);
    assert_eq!(p.uniform_location("s.arr[1]"), 3);
    assert_eq!(p.uniform_location("sa[1].arr[1]"), 9);
    assert_eq!(p.uniform_location("v3[2]"), 12);
    assert_eq!(p.uniform_location("v3[3]"), -1);
    assert_eq!(p.uniform_location("tex"), 15);
    assert_eq!(p.uniform_location("mvp[0]"), -1);
    assert_eq!(p.uniform_location("s"), -1);
    assert_eq!(
        p.uniform_slot(0),
        Some(UniformSlot {
            ty: Type::Mat4,
            offset: 0,
            remaining: 1
        })
    );
    assert_eq!(
        p.uniform_slot(3),
        Some(UniformSlot {
            ty: Type::Vec2,
            offset: 19,
            remaining: 1
        })
    );
    assert_eq!(
        p.uniform_slot(11),
        Some(UniformSlot {
            ty: Type::Vec3,
            offset: 16 + 5 + 10 + 3,
            remaining: 2
        })
    );
    assert_eq!(
        p.uniform_slot(16),
        Some(UniformSlot {
            ty: Type::Sampler2D,
            offset: 16 + 5 + 10 + 9 + 1 + 1 + 1,
            remaining: 1
        })
    );
    assert_eq!(p.uniform_slot(17), None);
    assert_eq!(p.uniform_slot(-1), None);
    assert_eq!(p.uniform_storage_len(), 16 + 5 + 10 + 9 + 1 + 1 + 2);
    assert_eq!(
        p.samplers(),
        vec![
            (14, Type::SamplerCube),
            (15, Type::Sampler2D),
            (16, Type::Sampler2D)
        ]
    );
    assert_eq!(Type::Mat4.components(), 16);
    assert_eq!(Type::Mat3.gl_enum(), 0x8B5B);
    assert_eq!(Type::SamplerCube.gl_enum(), 0x8B60);
    assert_eq!(Type::Float.gl_enum(), 0x1406);

    // Values: mvp = 2·identity, s.f = 1, s.arr[1].y = 2, sa[1].arr[0].x = 4, v3[2].z = 8, flag = 7 (true).
    let mut st = Uniforms::new(&p);
    st.f(
        "mvp",
        &[
            2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0,
        ],
    );
    st.f("s.f", &[1.0])
        .f("s.arr[1]", &[0.0, 2.0])
        .f("sa[1].arr[0]", &[4.0, 0.0])
        .f("v3[2]", &[0.0, 0.0, 8.0]);
    st.i("flag", &[7]);
    let mut attribs = [[0.0f32; 4]; MAX_VERTEX_ATTRIBS];
    attribs[0] = [1.0, 1.0, 1.0, 1.0];
    let mut out = VertexOutput::default();
    p.run_vertex(&st.words, &NoTextures, &attribs, &mut out, &mut budget())
        .expect("runs");
    assert_eq!(out.position, [18.0; 4]);
    // Short uniform storage reads zeros instead of failing.
    p.run_vertex(&[], &NoTextures, &attribs, &mut out, &mut budget())
        .expect("runs");
    assert_eq!(out.position, [0.0; 4]);
}

#[test]
fn dynamically_indexed_uniform_arrays() {
    let fs = "precision mediump float; uniform vec4 pal[4]; uniform int base;
void main() { int lane = int(gl_FragCoord.x) + 2 * int(gl_FragCoord.y); gl_FragColor = pal[lane] + vec4(pal[base + lane - lane].w); }";
    let p = program(PLAIN_VS, fs);
    let mut u = Uniforms::new(&p);
    for i in 0..4 {
        u.f(
            &format!("pal[{i}]"),
            &[i as f32, 10.0 * i as f32, 0.0, 100.0 * i as f32],
        );
    }
    u.i("base", &[2]);
    let out = quad_at(&p, &u, &Probe, 0.0, 0.0, &[]);
    for l in 0..4 {
        let f = l as f32;
        assert_eq!(
            out.color[l],
            [f + 200.0, 10.0 * f + 200.0, 200.0, 100.0 * f + 200.0]
        );
    }
}

#[test]
fn programs_are_send_and_sync_and_shareable() {
    fn check<T: Send + Sync>() {}
    check::<Program>();
    check::<Shader>();
    let p = program(
        PLAIN_VS,
        "precision mediump float; void main() { gl_FragColor = gl_FragCoord; }",
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                let u = Uniforms::new(&p);
                quad_at(&p, &u, &NoTextures, t as f32 * 2.0, 0.0, &[]).color[0][0]
            })
        })
        .collect();
    let xs: Vec<f32> = handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    assert_eq!(xs, vec![0.5, 2.5, 4.5, 6.5]);
}
