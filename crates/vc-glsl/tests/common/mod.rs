//! Helpers shared by the integration tests: compile, link, set uniforms, run quads.
#![allow(dead_code)]

use std::sync::Arc;

use vc_glsl::*;

/// A pass-through vertex shader declaring `n` vec4 varyings `v0..`.
pub const PLAIN_VS: &str = "attribute vec4 pos; void main() { gl_Position = pos; }";

/// Compiles or panics with the log.
pub fn shader(stage: Stage, src: &str) -> Arc<Shader> {
    let c = compile(stage, src);
    assert!(c.ok, "compile failed:\n{}\n--- source ---\n{src}", c.log);
    c.shader.expect("ok implies a shader")
}

/// Compiles and links or panics with the log.
pub fn program(vs: &str, fs: &str) -> Arc<Program> {
    let v = shader(Stage::Vertex, vs);
    let f = shader(Stage::Fragment, fs);
    let l = link(&v, &f, &[]);
    assert!(l.ok, "link failed:\n{}", l.log);
    l.program.expect("ok implies a program")
}

/// The compile log of a source expected to fail.
pub fn compile_error(stage: Stage, src: &str) -> String {
    let c = compile(stage, src);
    assert!(!c.ok, "expected a compile error for:\n{src}");
    assert!(c.shader.is_none());
    c.log
}

/// Uniform storage with setters by name.
pub struct Uniforms {
    pub words: Vec<u32>,
    prog: Arc<Program>,
}

impl Uniforms {
    pub fn new(prog: &Arc<Program>) -> Self {
        Uniforms {
            words: vec![0; prog.uniform_storage_len()],
            prog: prog.clone(),
        }
    }

    pub fn f(&mut self, name: &str, v: &[f32]) -> &mut Self {
        let loc = self.prog.uniform_location(name);
        let slot = self
            .prog
            .uniform_slot(loc)
            .unwrap_or_else(|| panic!("no uniform {name}"));
        for (i, x) in v.iter().enumerate() {
            self.words[slot.offset + i] = x.to_bits();
        }
        self
    }

    pub fn i(&mut self, name: &str, v: &[i32]) -> &mut Self {
        let loc = self.prog.uniform_location(name);
        let slot = self
            .prog
            .uniform_slot(loc)
            .unwrap_or_else(|| panic!("no uniform {name}"));
        for (i, x) in v.iter().enumerate() {
            self.words[slot.offset + i] = *x as u32;
        }
        self
    }
}

/// A texture returning a colour made from its inputs, to check coordinates and LOD.
pub struct Probe;

impl Textures for Probe {
    fn sample(&self, unit: u32, cube: bool, coord: [f32; 3], lod: f32) -> [f32; 4] {
        [
            coord[0],
            coord[1],
            if cube { coord[2] } else { unit as f32 },
            lod,
        ]
    }
}

pub fn budget() -> Budget {
    Budget {
        remaining: 10_000_000,
    }
}

/// Runs a quad at pixel (x, y) with the given SoA varyings.
pub fn quad_at(
    prog: &Program,
    u: &Uniforms,
    tex: &dyn Textures,
    x: f32,
    y: f32,
    varyings: &[f32],
) -> QuadOutput {
    let fc = [
        [x + 0.5, y + 0.5, 0.5, 1.0],
        [x + 1.5, y + 0.5, 0.5, 1.0],
        [x + 0.5, y + 1.5, 0.5, 1.0],
        [x + 1.5, y + 1.5, 0.5, 1.0],
    ];
    let input = QuadInput {
        frag_coord: fc,
        front_facing: true,
        point_coord: [[0.0; 2]; 4],
        varyings,
        mask: 0xf,
    };
    let mut out = QuadOutput::default();
    prog.run_fragment_quad(&u.words, tex, &input, &mut out, &mut budget())
        .expect("runs");
    assert_engines_agree(prog, &u.words, &input);
    out
}

/// Every shader the tests run is also checked: the JIT and the interpreter agree
/// (with the `Probe` texture, so recording textures of a test see one run only).
pub fn assert_engines_agree(prog: &Program, uniforms: &[u32], input: &QuadInput) {
    if !prog.has_jit() {
        return;
    }
    let (mut a, mut b) = (QuadOutput::default(), QuadOutput::default());
    let (mut ba, mut bb) = (budget(), budget());
    let ra = prog.run_fragment_quad_with(
        Engine::Interpreter,
        uniforms,
        &Probe,
        input,
        &mut a,
        &mut ba,
    );
    let rb = prog.run_fragment_quad_with(Engine::Jit, uniforms, &Probe, input, &mut b, &mut bb);
    assert_eq!(ra, rb);
    assert_eq!(ba, bb, "both engines spend the same budget");
    assert_eq!(a.discarded, b.discarded);
    for l in 0..4 {
        for c in 0..4 {
            let (x, y) = (a.color[l][c], b.color[l][c]);
            let ulps = (x.to_bits() as i64 - y.to_bits() as i64).abs();
            assert!(
                ulps <= 1 || (x.is_nan() && y.is_nan()),
                "interpreter {:?} vs JIT {:?}",
                a.color,
                b.color
            );
        }
    }
}

/// Runs a fragment shader body that writes gl_FragColor and returns lane 0's colour.
/// `decls` go before main; uniforms are left zero.
pub fn eval_fs(decls: &str, body: &str) -> [f32; 4] {
    let fs = format!("precision highp float;\n{decls}\nvoid main() {{\n{body}\n}}\n");
    let p = program(PLAIN_VS, &fs);
    let u = Uniforms::new(&p);
    quad_at(&p, &u, &Probe, 0.0, 0.0, &[]).color[0]
}

/// Asserts two floats agree to a relative tolerance.
pub fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan())
}

pub fn assert_close4(got: [f32; 4], want: [f32; 4], tol: f32) {
    for i in 0..4 {
        assert!(
            close(got[i], want[i], tol),
            "component {i}: got {got:?}, want {want:?}"
        );
    }
}
