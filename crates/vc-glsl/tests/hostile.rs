//! Hostile sources: each ends in an error or `BudgetExhausted`, quickly, without a
//! panic or a stack overflow. Deep inputs run on a spawned thread (default 2 MiB stack).

mod common;

use std::time::{Duration, Instant};

use common::*;
use vc_glsl::*;

/// Compiles on a default-stack thread and returns the result, failing on panic or slowness.
fn compile_on_thread(stage: Stage, src: String) -> Compiled {
    let start = Instant::now();
    let c = std::thread::spawn(move || compile(stage, &src))
        .join()
        .expect("compile must not panic");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "compile took {:?}",
        start.elapsed()
    );
    c
}

fn fails_with(stage: Stage, src: String, needle: &str) {
    let c = compile_on_thread(stage, src);
    assert!(!c.ok, "expected failure");
    assert!(
        c.log.contains(needle),
        "log lacks {needle:?}:\n{}",
        &c.log[..c.log.len().min(2000)]
    );
}

#[test]
fn ten_megabyte_source() {
    let src = format!("void main() {{}}\n{}", " ".repeat(10 << 20));
    fails_with(Stage::Vertex, src, "shader source too long (limit 1 MiB)");
}

#[test]
fn hundred_thousand_nested_parens() {
    let src = format!(
        "void main() {{ gl_Position = vec4({}1.0{}); }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "nesting too deep");
}

#[test]
fn deep_blocks_and_long_chains() {
    let src = format!("void main() {{ {} }}", "{".repeat(100_000));
    fails_with(Stage::Vertex, src, "nesting too deep");
    let src = format!(
        "void main() {{ float a = 1.0; gl_Position = vec4(a{}); }}",
        " + a".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "nesting too deep");
    let src = format!(
        "void main() {{ float a = 1.0; gl_Position = vec4({}a); }}",
        "-".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "nesting too deep");
    let src = format!(
        "void main() {{ vec4 a = vec4(1.0); gl_Position = a{}; }}",
        ".xyzw".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "nesting too deep");
    let src = format!(
        "void main() {{ if (true) {} }}",
        "if (true) ".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "nesting too deep");
    let src = format!(
        "#if {}1{}\n#endif\nvoid main() {{}}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    fails_with(Stage::Vertex, src, "expression nested too deeply");
    // Deep #if nesting is a plain counter, not recursion: it just works.
    let src = format!(
        "{}void main() {{ gl_Position = vec4(1.0); }}\n{}",
        "#if 1\n".repeat(50_000),
        "#endif\n".repeat(50_000)
    );
    assert!(compile_on_thread(Stage::Vertex, src).ok);
}

#[test]
fn macro_bombs() {
    // Self reference stops at once.
    let c = compile_on_thread(Stage::Vertex, "#define A A A\nvoid main() { A; }".into());
    assert!(!c.ok && c.log.contains("'A' : syntax error"), "{}", c.log);
    // Doubling chain: 2^40 tokens.
    let mut src = String::from("#define M0 x x\n");
    for i in 1..=40 {
        src += &format!("#define M{i} M{} M{}\n", i - 1, i - 1);
    }
    src += "void main() { M40; }";
    fails_with(Stage::Vertex, src, "macro expansion too large");
    // Function-like growth through arguments.
    let mut src = String::from("#define F0(x) x x\n");
    for i in 1..=40 {
        src += &format!("#define F{i}(x) F{}(F{}(x))\n", i - 1, i - 1);
    }
    src += "void main() { F40(y); }";
    fails_with(Stage::Vertex, src, "macro expansion");
    // Deep but linear chain.
    let mut src = String::new();
    for i in 1..=5000 {
        src += &format!("#define N{i} N{}\n", i - 1);
    }
    src += "void main() { N5000; }";
    fails_with(Stage::Vertex, src, "macro expansion nested too deeply");
    // Many errors: the log stays short.
    let src = "void main() { ".to_string() + &"x; ".repeat(200_000) + "}";
    let c = compile_on_thread(Stage::Vertex, src);
    assert!(
        !c.ok && c.log.lines().count() <= 101,
        "{} lines",
        c.log.lines().count()
    );
    assert!(
        c.log
            .ends_with("ERROR: 200000 compilation errors.  No code generated.\n")
    );
}

#[test]
fn exponential_inlining_and_huge_arrays() {
    let mut src = String::from("float f0(float x) { return x * 2.0; }\n");
    for i in 1..=40 {
        src += &format!(
            "float f{i}(float x) {{ return f{}(x) + f{}(x + 1.0); }}\n",
            i - 1,
            i - 1
        );
    }
    src += "void main() { gl_Position = vec4(f40(1.0)); }";
    fails_with(Stage::Vertex, src, "program too large");
    let decls: String = (0..40).map(|i| format!("float a{i}[65536];")).collect();
    let src = format!("{decls} void main() {{ gl_Position = vec4(a0[0]); }}");
    fails_with(Stage::Vertex, src, "program too large");
    fails_with(
        Stage::Vertex,
        "float a[100000]; void main() {}".into(),
        "array size too large",
    );
}

fn run_fragment(body: &str, budget: u64) -> Result<(), ExecError> {
    let fs = format!("precision mediump float;\nuniform float k;\nvoid main() {{\n{body}\n}}");
    let p = program(PLAIN_VS, &fs);
    let u = vec![0u32; p.uniform_storage_len()];
    let input = QuadInput {
        frag_coord: [[0.0; 4]; 4],
        front_facing: true,
        point_coord: [[0.0; 2]; 4],
        varyings: &[],
        mask: 0xf,
    };
    let mut out = QuadOutput::default();
    let mut b = Budget { remaining: budget };
    let start = Instant::now();
    let r = p.run_fragment_quad(&u, &NoTextures, &input, &mut out, &mut b);
    assert!(start.elapsed() < Duration::from_secs(10));
    r
}

#[test]
fn endless_loops_exhaust_the_budget() {
    for body in [
        "for (;;) {}",
        "while (true) {}",
        "do {} while (true);",
        "for (int i = 0; i < 10; i--) { gl_FragColor += vec4(1.0); }",
        "float x = 0.0; while (x < 1.0) { x += k; }",
        "for (int i = 0; i < 2; i++) { i = 0; continue; }",
        "for (;;) { for (;;) { break; } }",
    ] {
        assert_eq!(
            run_fragment(body, 1_000_000),
            Err(ExecError::BudgetExhausted),
            "{body}"
        );
    }
    let vs = "attribute vec4 p; void main() { for (;;) { gl_Position = p; } }";
    let p = program(vs, "precision mediump float; void main() {}");
    let mut b = Budget { remaining: 10_000 };
    let r = p.run_vertex(
        &[],
        &NoTextures,
        &[[0.0; 4]; MAX_VERTEX_ATTRIBS],
        &mut VertexOutput::default(),
        &mut b,
    );
    assert_eq!(r, Err(ExecError::BudgetExhausted));
    assert_eq!(b.remaining, 0);
}

#[test]
fn budget_is_spent_and_sufficient_budgets_succeed() {
    assert_eq!(
        run_fragment(
            "for (int i = 0; i < 100; i++) { gl_FragColor += vec4(1.0); }",
            1_000_000
        ),
        Ok(())
    );
    assert_eq!(
        run_fragment(
            "for (int i = 0; i < 100; i++) { gl_FragColor += vec4(1.0); }",
            50
        ),
        Err(ExecError::BudgetExhausted)
    );
}

#[test]
fn garbage_sources_never_panic() {
    // A simple deterministic generator of token soup.
    let toks = [
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        ";",
        ",",
        ".",
        "=",
        "+",
        "-",
        "*",
        "/",
        "<",
        "&&",
        "?",
        ":",
        "float",
        "vec4",
        "mat3",
        "struct",
        "S",
        "x",
        "y",
        "main",
        "void",
        "if",
        "else",
        "for",
        "while",
        "return",
        "1",
        "2.5",
        "#define",
        "#if",
        "#endif",
        "\n",
        "uniform",
        "varying",
        "attribute",
        "gl_FragColor",
        "texture2D",
        "int",
        "bool",
        "true",
        "++",
        "--",
        "discard",
        "break",
        "const",
        "inout",
        "precision",
        "highp",
        "xyzw",
        "#",
        "defined",
    ];
    let mut state = 0x2545f491u32;
    for _ in 0..3000 {
        let mut src = String::new();
        let n = (state % 60) as usize + 1;
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            src += toks[state as usize % toks.len()];
            src += " ";
        }
        for stage in [Stage::Vertex, Stage::Fragment] {
            let c = compile(stage, &src);
            if c.ok {
                assert!(c.shader.is_some());
            } else {
                assert!(c.log.contains("compilation errors"), "{src}\n{}", c.log);
            }
        }
    }
}

#[test]
fn deep_and_huge_types() {
    let mut src = String::from("struct S0 { float a; };\n");
    for i in 1..20_000 {
        src += &format!("struct S{i} {{ S{} a; }};\n", i - 1);
    }
    src += "void main() { gl_Position = vec4(1.0); }";
    fails_with(Stage::Vertex, src, "structures nested too deeply");
    let src = "struct A { mat4 m[60000]; }; uniform A a[60000]; void main() { gl_Position = a[0].m[0][0]; }";
    fails_with(Stage::Vertex, src.into(), "type too large");
    let src =
        "struct A { mat4 m[4000]; }; void f(A x[100]) {} void main() { gl_Position = vec4(1.0); }";
    fails_with(Stage::Vertex, src.into(), "type too large");
}
