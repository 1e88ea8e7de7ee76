//! The `hello_triangle2` scene (OpenGL ES 2.0): the Mandelbrot set drawn once by a fragment
//! shader into a texture through a framebuffer object, then, every frame, a Julia set drawn
//! on screen over that texture. It issues the GL calls of the Raspberry Pi demo in its order
//! (spec §2.6), with a `glGetError` check after nearly every call as the demo has; the
//! shaders are this project's own (same attribute and uniform names, same pictures).

use crate::error::{Error, Result};
use crate::gles::Gl;
use crate::gles::consts::*;
use crate::gles2::consts::*;
use crate::gles2::{AttribSource, BufferData};

/// The vertex shader both programs share: a full-screen quad, texture coordinates from its
/// position.
pub const VERTEX_SHADER_SOURCE: &str = "\
attribute vec4 vertex;
varying vec2 tcoord;
void main(void)
{
    gl_Position = vertex;
    tcoord = vertex.xy * 0.5 + 0.5;
}
";

/// Iterations of both fractals (the escape count colours a pixel).
pub const ITERATIONS: u32 = 16;

/// The Julia set for the constant at `offset` (the pointer on the Pi), blended over the
/// Mandelbrot picture in `tex`: the more iterations a pixel survives, the more of `color`.
pub const JULIA_SHADER_SOURCE: &str = "\
precision mediump float;
uniform vec4 color;
uniform vec2 scale;
uniform vec2 offset;
uniform sampler2D tex;
uniform vec2 centre;
varying vec2 tcoord;
void main(void)
{
    vec2 z = (gl_FragCoord.xy - centre) * scale;
    vec2 c = (offset - centre) * scale;
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

/// The Mandelbrot set around `centre`: red and green from the escape count, black inside.
pub const MANDELBROT_SHADER_SOURCE: &str = "\
precision mediump float;
uniform vec2 scale;
uniform vec2 offset;
uniform vec2 centre;
varying vec2 tcoord;
void main(void)
{
    vec2 c = (gl_FragCoord.xy - centre) * scale - vec2(0.5, 0.0);
    vec2 z = vec2(0.0, 0.0);
    float n = 0.0;
    for (int i = 0; i < 16; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 4.0)
            break;
        n += 1.0;
    }
    float t = n / 16.0;
    gl_FragColor = t >= 1.0 ? vec4(0.0, 0.0, 0.0, 1.0) : vec4(t, t * t, 0.5 * (1.0 - t), 1.0);
}
";

/// The full-screen quad: four `vec4` corners, counter-clockwise, for `GL_TRIANGLE_FAN`.
pub const QUAD: [f32; 16] = [
    -1.0, -1.0, 1.0, 1.0, //
    1.0, -1.0, 1.0, 1.0, //
    1.0, 1.0, 1.0, 1.0, //
    -1.0, 1.0, 1.0, 1.0,
];

/// The demo's pixels-to-plane scale (both axes).
pub const SCALE: f32 = 0.003;
/// The Julia constant's point before any pointer moves it (the demo's start).
pub const OFFSET: (f32, f32) = (800.0, 400.0);
/// The Julia overlay's colour.
pub const COLOR: [f32; 4] = [0.5, 0.5, 0.8, 1.0];

/// One program's uniform and attribute locations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// `vertex`.
    pub vertex: i32,
    /// `color` (−1 where the program has none).
    pub color: i32,
    /// `scale`.
    pub scale: i32,
    /// `offset`.
    pub offset: i32,
    /// `tex` (−1 where the program has none).
    pub tex: i32,
    /// `centre`.
    pub centre: i32,
}

/// The scene's GL objects.
#[derive(Debug, Default)]
pub struct Fractals {
    width: u32,
    height: u32,
    /// The Julia program (drawn every frame) and its locations.
    pub julia: (u32, Locations),
    /// The Mandelbrot program (drawn once, into the texture).
    pub mandelbrot: (u32, Locations),
    /// The vertex buffer holding [`QUAD`].
    pub buffer: u32,
    /// The RGB565 texture the Mandelbrot set is drawn into.
    pub texture: u32,
    /// The framebuffer object the texture is attached to.
    pub framebuffer: u32,
}

/// `glGetError` after `what`, as the demo's `check()`: any error stops the scene.
fn check(gl: &Gl, what: &'static str) -> Result<()> {
    match gl.get_error()? {
        NO_ERROR => Ok(()),
        code => Err(Error::Gl { call: what, code }),
    }
}

impl Fractals {
    /// The scene for a `width`×`height` window.
    pub fn new(width: u32, height: u32) -> Fractals {
        Fractals {
            width,
            height,
            ..Fractals::default()
        }
    }

    fn centre(&self) -> (f32, f32) {
        (self.width as f32 / 2.0, self.height as f32 / 2.0)
    }

    /// The demo's start (after `eglMakeCurrent`): clear, compile and link both programs,
    /// create the buffer, the texture and the framebuffer, then draw the Mandelbrot set
    /// into the texture.
    pub fn setup(&mut self, gl: &Gl) -> Result<()> {
        check(gl, "eglMakeCurrent")?;
        gl.clear_color(0.15, 0.25, 0.35, 1.0)?;
        gl.clear(COLOR_BUFFER_BIT)?;
        check(gl, "glClear")?;

        let vshader = compile(gl, VERTEX_SHADER, VERTEX_SHADER_SOURCE)?;
        let julia_fs = compile(gl, FRAGMENT_SHADER, JULIA_SHADER_SOURCE)?;
        let mandelbrot_fs = compile(gl, FRAGMENT_SHADER, MANDELBROT_SHADER_SOURCE)?;

        let julia = link(gl, vshader, julia_fs)?;
        let loc = Locations {
            vertex: gl.get_attrib_location(julia, "vertex")?,
            color: gl.get_uniform_location(julia, "color")?,
            scale: gl.get_uniform_location(julia, "scale")?,
            offset: gl.get_uniform_location(julia, "offset")?,
            tex: gl.get_uniform_location(julia, "tex")?,
            centre: gl.get_uniform_location(julia, "centre")?,
        };
        self.julia = (julia, loc);
        let mandelbrot = link(gl, vshader, mandelbrot_fs)?;
        let loc = Locations {
            vertex: gl.get_attrib_location(mandelbrot, "vertex")?,
            color: -1,
            scale: gl.get_uniform_location(mandelbrot, "scale")?,
            offset: gl.get_uniform_location(mandelbrot, "offset")?,
            tex: -1,
            centre: gl.get_uniform_location(mandelbrot, "centre")?,
        };
        self.mandelbrot = (mandelbrot, loc);
        check(gl, "glGetUniformLocation")?;

        gl.clear_color(0.0, 1.0, 1.0, 1.0)?;
        self.buffer = one(gl.gen_buffers(1)?, "glGenBuffers")?;
        check(gl, "glGenBuffers")?;
        self.texture = one(gl.gen_textures(1)?, "glGenTextures")?;
        check(gl, "glGenTextures")?;
        gl.bind_texture(TEXTURE_2D, self.texture)?;
        check(gl, "glBindTexture")?;
        let (w, h) = (self.width as i32, self.height as i32);
        gl.tex_image_2d(TEXTURE_2D, 0, RGB, w, h, 0, RGB, UNSIGNED_SHORT_5_6_5, None)?;
        check(gl, "glTexImage2D")?;
        gl.tex_parameterf(TEXTURE_2D, TEXTURE_MIN_FILTER, NEAREST as f32)?;
        gl.tex_parameterf(TEXTURE_2D, TEXTURE_MAG_FILTER, NEAREST as f32)?;
        check(gl, "glTexParameterf")?;
        self.framebuffer = one(gl.gen_framebuffers(1)?, "glGenFramebuffers")?;
        check(gl, "glGenFramebuffers")?;
        gl.bind_framebuffer(FRAMEBUFFER, self.framebuffer)?;
        check(gl, "glBindFramebuffer")?;
        gl.framebuffer_texture_2d(FRAMEBUFFER, COLOR_ATTACHMENT0, TEXTURE_2D, self.texture, 0)?;
        check(gl, "glFramebufferTexture2D")?;
        gl.bind_framebuffer(FRAMEBUFFER, 0)?;
        check(gl, "glBindFramebuffer")?;
        gl.viewport(0, 0, w, h)?;
        check(gl, "glViewport")?;

        let quad: Vec<u8> = QUAD.iter().flat_map(|v| v.to_le_bytes()).collect();
        gl.bind_buffer(ARRAY_BUFFER, self.buffer)?;
        gl.buffer_data(ARRAY_BUFFER, BufferData::Bytes(&quad), STATIC_DRAW)?;
        for program in [self.julia.1, self.mandelbrot.1] {
            let index = u32::try_from(program.vertex).map_err(|_| Error::Gl {
                call: "glGetAttribLocation(vertex)",
                code: INVALID_OPERATION,
            })?;
            gl.vertex_attrib_pointer(index, 4, FLOAT, false, 16, AttribSource::Offset(0))?;
            gl.enable_vertex_attrib_array(index)?;
        }
        check(gl, "glVertexAttribPointer")?;

        self.draw_mandelbrot_to_texture(gl)
    }

    /// The Mandelbrot set into the texture (once, at start).
    fn draw_mandelbrot_to_texture(&self, gl: &Gl) -> Result<()> {
        let (program, loc) = self.mandelbrot;
        let (cx, cy) = self.centre();
        gl.bind_framebuffer(FRAMEBUFFER, self.framebuffer)?;
        check(gl, "glBindFramebuffer")?;
        gl.bind_buffer(ARRAY_BUFFER, self.buffer)?;
        gl.use_program(program)?;
        check(gl, "glUseProgram")?;
        gl.uniform_f(loc.scale, &[SCALE, SCALE])?;
        gl.uniform_f(loc.centre, &[cx, cy])?;
        check(gl, "glUniform2f")?;
        gl.draw_arrays(TRIANGLE_FAN, 0, 4)?;
        check(gl, "glDrawArrays")?;
        gl.flush()?;
        gl.finish()?;
        check(gl, "glFinish")
    }

    /// One frame: the Julia set for `offset` over the texture, on screen. The demo keeps
    /// `offset` where the pointer is; [`OFFSET`] when it has none.
    pub fn frame(&self, gl: &Gl, offset: (f32, f32)) -> Result<()> {
        let (program, loc) = self.julia;
        let (cx, cy) = self.centre();
        gl.bind_framebuffer(FRAMEBUFFER, 0)?;
        gl.clear(COLOR_BUFFER_BIT | DEPTH_BUFFER_BIT)?;
        check(gl, "glClear")?;
        gl.bind_buffer(ARRAY_BUFFER, self.buffer)?;
        check(gl, "glBindBuffer")?;
        gl.use_program(program)?;
        check(gl, "glUseProgram")?;
        gl.bind_texture(TEXTURE_2D, self.texture)?;
        check(gl, "glBindTexture")?;
        gl.uniform_f(loc.color, &COLOR)?;
        gl.uniform_f(loc.scale, &[SCALE, SCALE])?;
        gl.uniform_f(loc.offset, &[offset.0, offset.1])?;
        gl.uniform_f(loc.centre, &[cx, cy])?;
        gl.uniform_i(loc.tex, &[0])?;
        check(gl, "glUniform")?;
        gl.draw_arrays(TRIANGLE_FAN, 0, 4)?;
        check(gl, "glDrawArrays")?;
        gl.bind_buffer(ARRAY_BUFFER, 0)?;
        gl.flush()?;
        gl.finish()?;
        check(gl, "glFinish")
    }
}

fn compile(gl: &Gl, ty: u32, source: &str) -> Result<u32> {
    let shader = gl.create_shader(ty)?;
    gl.shader_source(shader, &[source])?;
    gl.compile_shader(shader)?;
    check(gl, "glCompileShader")?;
    Ok(shader)
}

fn link(gl: &Gl, vshader: u32, fshader: u32) -> Result<u32> {
    let program = gl.create_program()?;
    gl.attach_shader(program, vshader)?;
    gl.attach_shader(program, fshader)?;
    gl.link_program(program)?;
    check(gl, "glLinkProgram")?;
    Ok(program)
}

fn one(names: Vec<u32>, call: &'static str) -> Result<u32> {
    names.first().copied().ok_or(Error::Gl {
        call,
        code: OUT_OF_MEMORY,
    })
}
