//! hello_triangle2 drawn by the software VideoCore: the client's GLES 2.0 calls go to the
//! KHRN server in process, which compiles the GLSL ES shaders, renders the Mandelbrot set
//! into the RGB565 texture through the framebuffer object, then the Julia set over it on
//! screen. The frame is checked pixel by pixel against the same fractals computed here in
//! Rust (the shaders' arithmetic, in f32).

use khronos::hello_triangle2::{COLOR, Fractals, ITERATIONS, SCALE};

mod harness;
use harness::start2;

/// Escape count of `z ← z² + c` from `z0`, as the shaders loop (`limit` = |z|² bound).
fn escape(mut z: (f32, f32), c: (f32, f32), limit: f32) -> f32 {
    let mut n = 0.0;
    for _ in 0..ITERATIONS {
        z = (z.0 * z.0 - z.1 * z.1 + c.0, 2.0 * z.0 * z.1 + c.1);
        if z.0 * z.0 + z.1 * z.1 > limit {
            break;
        }
        n += 1.0;
    }
    n
}

/// The Mandelbrot shader's colour at window pixel `(x, y)` (GL orientation), stored 5:6:5.
fn mandelbrot(x: u32, y: u32, centre: (f32, f32)) -> [f32; 4] {
    let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
    let c = ((fx - centre.0) * SCALE - 0.5, (fy - centre.1) * SCALE);
    let t = escape((0.0, 0.0), c, 4.0) / ITERATIONS as f32;
    let rgb = if t >= 1.0 {
        [0.0, 0.0, 0.0]
    } else {
        [t, t * t, 0.5 * (1.0 - t)]
    };
    let q = |v: f32, bits: u32| {
        let max = ((1u32 << bits) - 1) as f32;
        (v * 255.0 + 0.5).floor().clamp(0.0, 255.0) * max / 255.0
    };
    let q = |v: f32, bits: u32| {
        let max = ((1u32 << bits) - 1) as f32;
        (q(v, bits) + 0.5).floor().min(max) / max
    };
    [q(rgb[0], 5), q(rgb[1], 6), q(rgb[2], 5), 1.0]
}

/// The Julia shader's colour at window pixel `(x, y)`.
fn julia(x: u32, y: u32, centre: (f32, f32), offset: (f32, f32)) -> [u8; 4] {
    let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
    let z = ((fx - centre.0) * SCALE, (fy - centre.1) * SCALE);
    let c = ((offset.0 - centre.0) * SCALE, (offset.1 - centre.1) * SCALE);
    let a = escape(z, c, 16.0) / ITERATIONS as f32;
    let under = mandelbrot(x, y, centre);
    std::array::from_fn(|i| {
        let v = under[i] + (COLOR[i] - under[i]) * a;
        (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
    })
}

#[test]
fn hello_triangle2_draws_the_julia_set_over_the_mandelbrot_texture() {
    let (w, h) = (320u32, 240u32);
    let r = start2(w, h);
    let mut scene = Fractals::new(w, h);
    scene
        .setup(&r.gl)
        .expect("set-up: shaders compile and link, no GL error");
    // The pointer where the Julia constant is c = (−0.8, 0.156): a connected set with
    // spirals, and the Mandelbrot picture around it.
    let centre = (w as f32 / 2.0, h as f32 / 2.0);
    let offset = (centre.0 - 0.8 / SCALE, centre.1 + 0.156 / SCALE);
    scene.frame(&r.gl, offset).unwrap();
    r.display.swap_buffers(&r.surface).unwrap();
    assert_eq!(r.lb.take_khan().len(), 1, "one KHAN post per swap");

    let (_, px) = r.lb.presented().expect("the swap presented a frame");
    let mut close = 0;
    let mut worst = (0u8, 0, 0);
    for y in 0..h {
        for x in 0..w {
            // Presented rows are top first; the shaders' y is GL's (bottom first).
            let got = px[((h - 1 - y) * w + x) as usize];
            let want = julia(x, y, centre, offset);
            let d = (0..3).map(|i| got[i].abs_diff(want[i])).max().unwrap_or(0);
            if d <= 3 {
                close += 1;
            }
            if d > worst.0 {
                worst = (d, x, y);
            }
        }
    }
    let share = close as f64 / (w * h) as f64;
    // Escape counts can differ by one where |z|² lands within rounding of the bound.
    assert!(
        share > 0.99,
        "{:.2}% of pixels match the fractals (worst: {} at {:?})",
        share * 100.0,
        worst.0,
        (worst.1, worst.2)
    );
    // Not a flat picture: the Julia set's colour and the Mandelbrot texture both show.
    let distinct: std::collections::BTreeSet<[u8; 4]> = px.iter().copied().collect();
    assert!(distinct.len() > 20, "{} colours", distinct.len());

    // And the golden image (this renderer's frame, checked by eye: see
    // tests/golden/README.md).
    let path = harness::golden::path("hello_triangle2-0001.png");
    if harness::golden::updating() {
        harness::golden::write_png(&path, w, h, &px);
        return;
    }
    let (share, worst, outside) =
        harness::golden::compare(&px, &harness::golden::read_png(&path, w, h), 2);
    assert!(
        share >= 0.995,
        "{:.3}% of pixels within ±2 of {} ({outside} outside, largest difference {worst})",
        100.0 * share,
        path.display()
    );
}
