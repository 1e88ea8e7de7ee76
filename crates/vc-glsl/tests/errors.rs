//! Compile and link errors: log text, line numbers and error counts.

mod common;

use common::*;
use vc_glsl::*;

fn fs_error(src: &str) -> String {
    compile_error(Stage::Fragment, src)
}

#[test]
fn log_format_and_count() {
    let log = fs_error(
        "precision mediump float;\nvoid main() {\n  gl_FragColor = vec4(x);\n  float y = 1;\n}\n",
    );
    assert_eq!(
        log,
        "ERROR: 0:3: 'x' : undeclared identifier\n\
         ERROR: 0:4: '=' : cannot convert from 'int' to 'float'\n\
         ERROR: 2 compilation errors.  No code generated.\n"
    );
}

#[test]
fn success_has_empty_log() {
    let c = compile(
        Stage::Fragment,
        "precision mediump float; void main() { gl_FragColor = vec4(1.0); }",
    );
    assert!(c.ok);
    assert_eq!(c.log, "");
    assert_eq!(c.shader.expect("compiled").stage(), Stage::Fragment);
}

#[test]
fn syntax_error_reports_the_token_and_line() {
    let log = fs_error(
        "precision mediump float;\nvoid main() {\n  float x = 1.0\n  gl_FragColor = vec4(x);\n}\n",
    );
    assert!(
        log.starts_with("ERROR: 0:4: 'gl_FragColor' : syntax error"),
        "{log}"
    );
    assert!(log.ends_with("ERROR: 1 compilation errors.  No code generated.\n"));
}

#[test]
fn type_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "float x = vec2(1.0) + vec3(1.0);",
            "'+' : wrong operand types: no operation '+' exists that takes a left-hand operand of type 'vec2' and a right operand of type 'vec3'",
        ),
        ("float x = 1.0 + 1;", "'+' : wrong operand types"),
        ("bool b = 1.0 < 2;", "'<' : wrong operand types"),
        (
            "vec3 v = vec3(1.0); v.xx = vec2(1.0);",
            "l-value swizzle with repeated components",
        ),
        (
            "vec2 v; v.z = 1.0;",
            "'z' : vector field selection out of range",
        ),
        (
            "vec2 v; v.xg = vec2(1.0);",
            "'xg' : illegal vector field selection (mixed sets)",
        ),
        ("float a[2]; a[2] = 1.0;", "'[' : index 2 out of range"),
        (
            "float x = 1.0; x[0] = 1.0;",
            "'[' : left of '[' is not of type array, matrix, or vector",
        ),
        (
            "vec4 v = vec4(1.0, 2.0);",
            "not enough data provided for construction",
        ),
        (
            "vec2 v = vec2(1.0, 2.0, 3.0, vec2(1.0));",
            "too many arguments",
        ),
        ("if (1.0) {}", "boolean expression expected, found 'float'"),
        ("break;", "'break' : statement only allowed in loops"),
        (
            "gl_FragCoord = vec4(1.0);",
            "l-value required (can't modify an input)",
        ),
        (
            "const float c = 1.0; c = 2.0;",
            "l-value required (can't modify a const)",
        ),
        (
            "float f = sin(1.0, 2.0);",
            "'sin' : no matching overloaded function found",
        ),
        (
            "float f = nope(1.0);",
            "'nope' : no matching overloaded function found",
        ),
        ("float x; float x;", "'x' : redefinition"),
        (
            "float gl_x;",
            "'gl_x' : identifiers starting with \"gl_\" are reserved",
        ),
        ("int i = 1; i = -true;", "'-' : wrong operand type"),
        ("float a[2]; float b[2]; a = b;", "arrays can't be assigned"),
        (
            "gl_FragColor = vec4(1.0); gl_FragData[0] = vec4(1.0);",
            "can't use both gl_FragColor and gl_FragData",
        ),
        (
            "float u; const float k = u;",
            "assigning non-constant to 'const'",
        ),
        (
            "int n = 2; float a[n];",
            "array size must be a constant integer expression",
        ),
        ("sampler2D s;", "samplers must be uniform"),
    ];
    for (body, want) in cases {
        let log = fs_error(&format!(
            "precision mediump float;\nvoid main() {{\n{body}\n}}"
        ));
        assert!(
            log.contains(&format!("ERROR: 0:3: {want}")) || log.contains(want),
            "{body}\n{log}"
        );
        assert!(log.contains("0:3:"), "{body}: line number\n{log}");
    }
}

#[test]
fn missing_float_precision_in_fragment_shaders() {
    let log = fs_error("void main() {\n  float x = 1.0;\n  gl_FragColor = vec4(x);\n}");
    assert!(
        log.contains("ERROR: 0:2: 'x' : no precision specified for (float)"),
        "{log}"
    );
    // A qualifier on the declaration or a default precision fixes it; vertex shaders have one.
    assert!(
        compile(
            Stage::Fragment,
            "void main() { mediump float x = 1.0; gl_FragColor = vec4(x); }"
        )
        .ok
    );
    assert!(
        compile(
            Stage::Vertex,
            "void main() { float x = 1.0; gl_Position = vec4(x); }"
        )
        .ok
    );
}

#[test]
fn stage_restrictions() {
    let log = compile_error(
        Stage::Vertex,
        "void main() {\n discard;\n gl_Position = vec4(1.0);\n}",
    );
    assert!(
        log.contains("ERROR: 0:2: 'discard' : only allowed in fragment shaders"),
        "{log}"
    );
    let log = fs_error("precision mediump float;\nattribute vec4 a;\nvoid main() {}");
    assert!(log.contains("ERROR: 0:2: 'attribute'"), "{log}");
    let log = fs_error("precision mediump float;\nvarying vec4 v;\nvoid main() { v = vec4(1.0); }");
    assert!(
        log.contains("can't modify a varying in a fragment shader"),
        "{log}"
    );
    let log = compile_error(
        Stage::Vertex,
        "attribute vec4 a;\nvoid main() { a = vec4(1.0); gl_Position = a; }",
    );
    assert!(
        log.contains("ERROR: 0:2: 'assign' : l-value required (can't modify an attribute)"),
        "{log}"
    );
}

#[test]
fn recursion_is_reported() {
    let log = compile_error(
        Stage::Vertex,
        "float b(float x);\nfloat a(float x) { return b(x); }\nfloat b(float x) { return a(x); }\nvoid main() { gl_Position = vec4(a(1.0)); }",
    );
    assert!(
        log.contains("recursive function calls are not allowed"),
        "{log}"
    );
    let log = compile_error(
        Stage::Vertex,
        "float f(float x) {\n return f(x);\n}\nvoid main() { gl_Position = vec4(1.0); }",
    );
    assert!(
        log.contains("ERROR: 0:1: 'f' : recursive function calls are not allowed"),
        "{log}"
    );
}

#[test]
fn function_declaration_errors() {
    let log = compile_error(
        Stage::Vertex,
        "float f(float x);\nint f(float x) { return 1; }\nvoid main() {}",
    );
    assert!(
        log.contains("ERROR: 0:2: 'f' : function return type doesn't match its prototype"),
        "{log}"
    );
    let log = compile_error(Stage::Vertex, "void f() {}\nvoid f() {}\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:2: 'f' : function already has a body"),
        "{log}"
    );
    let log = compile_error(Stage::Vertex, "float f() {\n return;\n}\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:2: 'return' : non-void function must return a value"),
        "{log}"
    );
    let log = compile_error(
        Stage::Vertex,
        "float f() { return 1.0; }\nvoid main() { f() = 2.0; }",
    );
    assert!(
        log.contains("ERROR: 0:2: 'assign' : l-value required"),
        "{log}"
    );
    let log = compile_error(
        Stage::Vertex,
        "void f(out float x) { x = 1.0; }\nvoid main() { f(2.0); }",
    );
    assert!(
        log.contains("ERROR: 0:2: 'f' : l-value required for an out parameter"),
        "{log}"
    );
    let log = compile_error(
        Stage::Vertex,
        "float g();\nvoid main() { gl_Position = vec4(g()); }",
    );
    assert!(log.contains("'g' : function has no body"), "{log}");
    let log = compile_error(
        Stage::Vertex,
        "float sin(float x) { return x; }\nvoid main() {}",
    );
    assert!(
        log.contains("ERROR: 0:1: 'sin' : can't redefine or overload a built-in function"),
        "{log}"
    );
}

#[test]
fn preprocessor_errors() {
    let log = fs_error("precision mediump float;\n#error custom message here\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:2: '#error' : custom message here"),
        "{log}"
    );
    let log = fs_error("precision mediump float;\nvoid main() {}\n#version 100");
    assert!(
        log.contains("ERROR: 0:3: '#version' : #version must occur before any other statement"),
        "{log}"
    );
    let log = fs_error("#version 300\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: '300' : version number not supported"),
        "{log}"
    );
    let log = fs_error("#if 1\nvoid main() {}");
    assert!(log.contains("missing #endif"), "{log}");
    let log = fs_error("#endif\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: '#endif' : #endif without #if"),
        "{log}"
    );
    let log = fs_error("#if FOO\n#endif\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: 'FOO' : undefined identifier in #if expression"),
        "{log}"
    );
    let log = fs_error("#define GL_FOO 1\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: 'GL_FOO' : names beginning with \"GL_\" can't be defined"),
        "{log}"
    );
    let log = fs_error("#define F(a) a\nvoid main() { float x = F(1.0, 2.0); }");
    assert!(
        log.contains("ERROR: 0:2: 'F' : wrong number of macro arguments"),
        "{log}"
    );
    let log = fs_error("#extension GL_OES_foo : require\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: 'GL_OES_foo' : extension not supported"),
        "{log}"
    );
    let log = fs_error("#bogus\nvoid main() {}");
    assert!(
        log.contains("ERROR: 0:1: 'bogus' : invalid directive"),
        "{log}"
    );
    let log =
        fs_error("precision mediump float;\n#line 100\nvoid main() { gl_FragColor = vec4(q); }");
    assert!(
        log.contains("ERROR: 0:100: 'q' : undeclared identifier"),
        "{log}"
    );
    let log =
        fs_error("precision mediump float;\n#line 10 3\nvoid main() { gl_FragColor = vec4(q); }");
    assert!(
        log.contains("ERROR: 3:10: 'q' : undeclared identifier"),
        "{log}"
    );
    let log = fs_error("void main() { float x = 1.0 @ 2.0; }");
    assert!(log.contains("'@' : invalid character"), "{log}");
    let log = fs_error("void main() { int x = 1 % 2; }");
    assert!(log.contains("'%' : reserved operator"), "{log}");
    let log = fs_error("void main() { int switch = 1; }");
    assert!(log.contains("'switch' : reserved keyword"), "{log}");
    let log = fs_error("void main() { int x = 99999999999; }");
    assert!(
        log.contains("'99999999999' : integer constant overflow"),
        "{log}"
    );
}

#[test]
fn main_requirements() {
    let log = compile_error(Stage::Vertex, "int main() { return 1; }");
    assert!(log.contains("main() must return void"), "{log}");
}

const FS: &str =
    "precision mediump float; varying vec2 t; void main() { gl_FragColor = vec4(t, 0.0, 1.0); }";

fn link_log(vs: &str, fs: &str, bindings: &[(String, u32)]) -> String {
    let v = shader(Stage::Vertex, vs);
    let f = shader(Stage::Fragment, fs);
    let l = link(&v, &f, bindings);
    assert!(!l.ok && l.program.is_none(), "expected a link error");
    l.log
}

#[test]
fn link_errors() {
    let log = link_log("void main() { gl_Position = vec4(0.0); }", FS, &[]);
    assert!(
        log.contains(
            "varying 't' is read by the fragment shader but not declared in the vertex shader"
        ),
        "{log}"
    );
    let log = link_log(
        "varying vec3 t; void main() { gl_Position = vec4(0.0); t = vec3(1.0); }",
        FS,
        &[],
    );
    assert!(
        log.contains(
            "varying 't' has type 'vec3' in the vertex shader and 'vec2' in the fragment shader"
        ),
        "{log}"
    );
    let log = link_log("varying vec2 t; void main() { t = vec2(1.0); }", FS, &[]);
    assert!(
        log.contains("vertex shader does not write gl_Position"),
        "{log}"
    );
    let log = link_log(
        "void helper() {}",
        "precision mediump float; void main() {}",
        &[],
    );
    assert!(log.contains("vertex shader has no main()"), "{log}");
    let log = link_log(
        "uniform vec4 u; void main() { gl_Position = u; }",
        "precision mediump float; uniform vec3 u; void main() { gl_FragColor = vec4(u, 1.0); }",
        &[],
    );
    assert!(log.contains("uniform 'u' has different types"), "{log}");
    let many: String = (0..9).map(|i| format!("attribute vec4 a{i};")).collect();
    let sum: String = (0..9).map(|i| format!(" + a{i}")).collect();
    let log = link_log(
        &format!("{many} void main() {{ gl_Position = vec4(0.0){sum}; }}"),
        "precision mediump float; void main() {}",
        &[],
    );
    assert!(log.contains("too many vertex attributes"), "{log}");
    let vars: String = (0..9).map(|i| format!("varying vec4 v{i};")).collect();
    let vsum: String = (0..9).map(|i| format!(" + v{i}")).collect();
    let fs = format!(
        "precision mediump float; {vars} void main() {{ gl_FragColor = vec4(0.0){vsum}; }}"
    );
    let vs_w: String = (0..9).map(|i| format!(" v{i} = vec4(1.0);")).collect();
    let log = link_log(
        &format!("{vars} void main() {{ gl_Position = vec4(0.0);{vs_w} }}"),
        &fs,
        &[],
    );
    assert!(
        log.contains("too many varyings (9 vectors, limit 8)"),
        "{log}"
    );
    let log = link_log(
        "attribute vec4 a; attribute mat2 m; void main() { gl_Position = a + vec4(m[0], m[1]); }",
        "precision mediump float; void main() {}",
        &[("a".into(), 3), ("m".into(), 2)],
    );
    assert!(
        log.contains("attribute 'm' bound to location 2, already in use"),
        "{log}"
    );
    let log = link_log(
        "uniform vec4 big[129]; uniform int i; void main() { gl_Position = big[i]; }",
        "precision mediump float; void main() {}",
        &[],
    );
    assert!(
        log.contains("too many vertex uniform vectors (130, limit 128)"),
        "{log}"
    );
    let v = shader(Stage::Vertex, "void main() { gl_Position = vec4(0.0); }");
    assert!(!link(&v, &v, &[]).ok, "two vertex shaders don't link");
}

#[test]
fn unused_fragment_varying_need_not_exist_in_the_vertex_shader() {
    let p = program(
        "void main() { gl_Position = vec4(0.0); }",
        "precision mediump float; varying vec2 t; void main() { gl_FragColor = vec4(1.0); }",
    );
    assert_eq!(p.varying_count(), 0);
}
