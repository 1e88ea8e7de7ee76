//! `vchiq bench render`, second part: the hello_triangle2 scene (the Julia fragment shader
//! over the Mandelbrot texture) at 1920×1080, renderer alone and through the whole stack,
//! beside the same shaders on Mesa llvmpipe (OpenGL ES 2.0) in the same run.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use khronos::hello_triangle2::{
    COLOR, JULIA_SHADER_SOURCE, MANDELBROT_SHADER_SOURCE, OFFSET, QUAD, SCALE, VERTEX_SHADER_SOURCE,
};
use vc_gles::program::{GenericAttribs, MAX_TEXTURE_UNITS};
use vc_gles::{AttribArray, AttribType, Gles11, Indices, Surface, gl};

use crate::hello::{BENCH_HEIGHT, BENCH_WIDTH, Scene, WARMUP, agreement, run_mesa, whole_stack};

/// The GLES 2.0 baseline program, written for this project.
const BASELINE2_C: &str = include_str!("../bench_render2.c");

pub(crate) fn run(frames: u32) -> Result<()> {
    let (w, h) = (BENCH_WIDTH, BENCH_HEIGHT);
    let size = format!("{w}x{h}");
    let mesa = mesa2(frames);
    if let Ok(m) = &mesa {
        eprintln!(
            "baseline: {} through EGL surfaceless (OpenGL ES 2.0, the same three shaders, FBO, glReadPixels per frame)",
            m.renderer
        );
    }
    let line = |name: &str, fps: f64| match &mesa {
        Ok(m) => super::figure(&format!("render fractal {name} {size}"), fps, m.fps, "fps"),
        Err(_) => println!("render fractal {name} {size}: {} fps", super::fmt(fps)),
    };
    let (alone, frame1) = renderer_alone(frames)?;
    line("renderer alone", alone);
    if let Some(theirs) = mesa.as_ref().ok().and_then(|m| m.frame1.as_ref()) {
        eprintln!(
            "same scene: frame 1 of vc-gles and of the baseline agree on {:.2}% of pixels (within ±2 per channel)",
            agreement(&frame1, theirs)
        );
    }
    line("whole stack", whole_stack(frames, Scene::Fractals)?);
    if let Err(reason) = &mesa {
        println!("render fractal mesa llvmpipe {size}: baseline skipped ({reason})");
    }
    Ok(())
}

/// Compiles and links `vs` + `fs` as the VideoCore does.
fn program(vs: &str, fs: &str) -> Result<std::sync::Arc<vc_glsl::Program>> {
    let compile = |stage, src: &str| {
        let c = vc_glsl::compile(stage, src);
        c.shader.context(c.log)
    };
    let v = compile(vc_glsl::Stage::Vertex, vs).context("vertex shader")?;
    let f = compile(vc_glsl::Stage::Fragment, fs).context("fragment shader")?;
    let l = vc_glsl::link(&v, &f, &[]);
    l.program.context(l.log)
}

/// Sets float uniform `name` of `p` in `storage`.
fn set(p: &vc_glsl::Program, storage: &mut [u32], name: &str, values: &[f32]) -> Result<()> {
    let slot = p
        .uniform_slot(p.uniform_location(name))
        .with_context(|| format!("uniform {name}"))?;
    for (d, v) in storage[slot.offset..].iter_mut().zip(values) {
        *d = v.to_bits();
    }
    Ok(())
}

/// The scene drawn by vc-glsl + vc-gles directly, as the KHRN server does for the client's
/// calls: frames per second of the Julia pass and frame 1's pixels.
fn renderer_alone(frames: u32) -> Result<(f64, Vec<[u8; 4]>)> {
    let (w, h) = (BENCH_WIDTH, BENCH_HEIGHT);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mandelbrot = program(VERTEX_SHADER_SOURCE, MANDELBROT_SHADER_SOURCE)?;
    let julia = program(VERTEX_SHADER_SOURCE, JULIA_SHADER_SOURCE)?;
    let mut mu = vec![0u32; mandelbrot.uniform_storage_len()];
    set(&mandelbrot, &mut mu, "scale", &[SCALE, SCALE])?;
    set(&mandelbrot, &mut mu, "centre", &[cx, cy])?;
    let mut ju = vec![0u32; julia.uniform_storage_len()];
    set(&julia, &mut ju, "color", &COLOR)?;
    set(&julia, &mut ju, "scale", &[SCALE, SCALE])?;
    set(&julia, &mut ju, "offset", &[OFFSET.0, OFFSET.1])?;
    set(&julia, &mut ju, "centre", &[cx, cy])?;

    let mut ctx = Gles11::new();
    let tex = ctx.gen_textures(1)[0];
    ctx.bind_texture(gl::GL_TEXTURE_2D, tex);
    ctx.tex_image_2d(
        gl::GL_TEXTURE_2D,
        0,
        gl::GL_RGB,
        w,
        h,
        0,
        gl::GL_RGB,
        gl::GL_UNSIGNED_SHORT_5_6_5,
        4,
        None,
    );
    for pname in [gl::GL_TEXTURE_MIN_FILTER, gl::GL_TEXTURE_MAG_FILTER] {
        ctx.tex_parameterf(gl::GL_TEXTURE_2D, pname, gl::GL_NEAREST as f32);
    }
    ctx.viewport(0, 0, w as i32, h as i32);
    let quad: Vec<u8> = QUAD.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut attribs = GenericAttribs::default();
    let vertex = |p: &vc_glsl::Program| p.attribute_location("vertex");
    for p in [&mandelbrot, &julia] {
        let Ok(slot) = usize::try_from(vertex(p)) else {
            bail!("no attribute vertex");
        };
        attribs.arrays[slot] = Some(AttribArray {
            size: 4,
            ty: AttribType::Float,
            normalized: false,
            stride: 16,
            data: &quad,
        });
    }
    let fan = || Indices::Range { first: 0, count: 4 };
    let units: [u32; MAX_TEXTURE_UNITS] = std::array::from_fn(|i| if i == 0 { tex } else { 0 });
    let m = videocore::khrn::BoundProgram {
        program: &mandelbrot,
        uniforms: &mu,
    };
    ctx.render_to_texture(tex, |ctx, s| {
        ctx.draw_program(gl::GL_TRIANGLE_FAN, fan(), &attribs, &m, &units, s)
    })
    .context("the texture")?
    .map_err(|f| anyhow::anyhow!("the Mandelbrot pass stopped: {f}"))?;

    let j = videocore::khrn::BoundProgram {
        program: &julia,
        uniforms: &ju,
    };
    let mut target = Surface::new(w, h, false);
    ctx.clear_color(0.0, 1.0, 1.0, 1.0);
    let frame = |ctx: &mut Gles11, target: &mut Surface| -> Result<()> {
        ctx.clear(gl::GL_COLOR_BUFFER_BIT, target);
        ctx.draw_program(gl::GL_TRIANGLE_FAN, fan(), &attribs, &j, &units, target)
            .map_err(|f| anyhow::anyhow!("the Julia pass stopped: {f}"))?;
        Ok(())
    };
    frame(&mut ctx, &mut target)?;
    let frame1: Vec<[u8; 4]> = target
        .color
        .pixels
        .iter()
        .map(|p| p.to_le_bytes())
        .collect();
    for _ in 1..WARMUP {
        frame(&mut ctx, &mut target)?;
    }
    let t0 = Instant::now();
    for _ in 0..frames {
        frame(&mut ctx, &mut target)?;
    }
    Ok((f64::from(frames) / t0.elapsed().as_secs_f64(), frame1))
}

/// The same scene on Mesa (OpenGL ES 2.0); the error is the reason it was skipped.
fn mesa2(frames: u32) -> std::result::Result<crate::hello::Mesa, String> {
    let dir = std::env::temp_dir().join(format!("vchiq-bench-mesa2-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut files = Vec::new();
        for (name, src) in [
            ("vertex.glsl", VERTEX_SHADER_SOURCE),
            ("mandelbrot.glsl", MANDELBROT_SHADER_SOURCE),
            ("julia.glsl", JULIA_SHADER_SOURCE),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, src).map_err(|e| format!("writing {}: {e}", path.display()))?;
            files.push(path.display().to_string());
        }
        let mut args = vec![
            BENCH_WIDTH.to_string(),
            BENCH_HEIGHT.to_string(),
            frames.to_string(),
        ];
        args.extend(files);
        args.extend([SCALE, OFFSET.0, OFFSET.1].map(|v| v.to_string()));
        args.extend(COLOR.map(|v| v.to_string()));
        run_mesa(&dir, "bench_render2", BASELINE2_C, &["-lGLESv2"], &args)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
