//! Golden frames of hello_triangle through the whole client/server path, in process:
//! khronos client → KHRN merged messages → `videocore::khrn::KhrnServer` → `vc-gles`.
//!
//! The cube is rendered at 640×480 at frames 1, 180, 360 and 720 (and 721, which must equal
//! frame 1: the animation has a period of 720 frames) and compared with
//! `tests/golden/frame-NNNN.png`, reference images this renderer produced and a human checked
//! against the frames of the real demo (see `tests/golden/README.md`). Rendering rules may
//! change slightly (rounding, fill rule), so the comparison has a tolerance: at least
//! [`MIN_WITHIN`] of the pixels within ±[`CHANNEL_TOLERANCE`] on every channel.
//!
//! Independently of the golden images, each frame is checked analytically against the
//! scene's geometry (spec §2.3–2.5): the background colour at the corners, the set of
//! visible faces, and the generated textures' texels at points projected from the model
//! matrices (the faces' centres and four points around them), plus a whole-frame ray cast.
//!
//! Regenerate the images (then look at them!) with
//! `VCHIQ_UPDATE_GOLDEN=1 cargo test -p khronos --test golden`.

use std::path::PathBuf;

use khronos::PidSource;
use khronos::hello_triangle::{
    FACE_ROTATIONS, TEXTURE_SIZE, frustum_half_extents, model_angles, textures,
};

mod harness;
use harness::{CLIENT_ID, start};

const W: u32 = 640;
const H: u32 = 480;
/// The frames with a golden image.
const GOLDEN_FRAMES: [u32; 4] = [1, 180, 360, 720];
/// A pixel matches when no channel differs by more than this.
const CHANNEL_TOLERANCE: u8 = 2;
/// The share of pixels that must match.
const MIN_WITHIN: f64 = 0.995;
/// `glClearColor(0.15, 0.25, 0.35)` in 8 bits.
const BACKGROUND: [u8; 3] = [38, 64, 89];

type Frame = Vec<[u8; 4]>;

// ------------------------------------------------------------------ the scene, analytically

/// A 4×4 matrix, row-major, column-vector convention (as GL's math, in f64).
#[derive(Clone, Copy, Debug)]
struct M([[f64; 4]; 4]);

impl M {
    fn identity() -> M {
        let mut m = [[0.0; 4]; 4];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        M(m)
    }

    fn mul(&self, o: &M) -> M {
        let mut r = [[0.0; 4]; 4];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..4).map(|k| self.0[i][k] * o.0[k][j]).sum();
            }
        }
        M(r)
    }

    fn apply(&self, v: [f64; 4]) -> [f64; 4] {
        let mut r = [0.0; 4];
        for (i, out) in r.iter_mut().enumerate() {
            *out = (0..4).map(|k| self.0[i][k] * v[k]).sum();
        }
        r
    }

    fn translate(x: f64, y: f64, z: f64) -> M {
        let mut m = M::identity();
        m.0[0][3] = x;
        m.0[1][3] = y;
        m.0[2][3] = z;
        m
    }

    /// `glRotate` (angle in degrees about a unit axis).
    fn rotate(angle: f64, x: f64, y: f64, z: f64) -> M {
        let (s, c) = angle.to_radians().sin_cos();
        let t = 1.0 - c;
        M([
            [x * x * t + c, x * y * t - z * s, x * z * t + y * s, 0.0],
            [y * x * t + z * s, y * y * t + c, y * z * t - x * s, 0.0],
            [z * x * t - y * s, z * y * t + x * s, z * z * t + c, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }
}

/// `quadx` (spec §2.3): face f is the strip of vertices 4f..4f+3 with texture coordinates
/// (0,0), (0,1), (1,0), (1,1).
const QUADX: [[f64; 3]; 24] = [
    [-10., -10., 10.],
    [10., -10., 10.],
    [-10., 10., 10.],
    [10., 10., 10.],
    [-10., -10., -10.],
    [-10., 10., -10.],
    [10., -10., -10.],
    [10., 10., -10.],
    [-10., -10., 10.],
    [-10., 10., 10.],
    [-10., -10., -10.],
    [-10., 10., -10.],
    [10., -10., -10.],
    [10., 10., -10.],
    [10., -10., 10.],
    [10., 10., 10.],
    [-10., 10., 10.],
    [10., 10., 10.],
    [-10., 10., -10.],
    [10., 10., -10.],
    [-10., -10., 10.],
    [-10., -10., -10.],
    [10., -10., 10.],
    [10., -10., -10.],
];

/// One face of frame k in eye space: `P(s, t) = o + s·u + t·v`.
#[derive(Clone, Copy, Debug)]
struct Face {
    index: usize,
    o: [f64; 3],
    u: [f64; 3],
    v: [f64; 3],
    /// Front-facing (CCW in window coordinates), i.e. not culled.
    front: bool,
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// The scene of frame k: the modelview of every face (`T(0,0,-40)·Rx·Ry·Rz·E_0·…·E_f`)
/// applied to its quad, and the projection.
struct Scene {
    faces: Vec<Face>,
    hwd: f64,
    hht: f64,
}

impl Scene {
    fn new(k: u32) -> Scene {
        let (ax, ay, az) = model_angles(k);
        let mut m = M::translate(0.0, 0.0, -40.0)
            .mul(&M::rotate(f64::from(ax), 1.0, 0.0, 0.0))
            .mul(&M::rotate(f64::from(ay), 0.0, 1.0, 0.0))
            .mul(&M::rotate(f64::from(az), 0.0, 0.0, 1.0));
        let (hwd, hht) = frustum_half_extents(W, H);
        let (hwd, hht) = (f64::from(hwd), f64::from(hht));
        let mut faces = Vec::new();
        for (f, &(angle, x, y, z)) in FACE_ROTATIONS.iter().enumerate() {
            m = m.mul(&M::rotate(
                f64::from(angle),
                f64::from(x),
                f64::from(y),
                f64::from(z),
            ));
            let eye = |p: [f64; 3]| {
                let e = m.apply([p[0], p[1], p[2], 1.0]);
                [e[0], e[1], e[2]]
            };
            let q: Vec<[f64; 3]> = (0..4).map(|i| eye(QUADX[4 * f + i])).collect();
            let (o, u, v) = (q[0], sub(q[2], q[0]), sub(q[1], q[0]));
            // Facing from the window-space winding of the first triangle v0 v1 v2.
            let win: Vec<(f64, f64)> = q[..3]
                .iter()
                .map(|p| {
                    let w = -p[2];
                    (p[0] / (w * hwd), p[1] / (w * hht))
                })
                .collect();
            let area = (win[1].0 - win[0].0) * (win[2].1 - win[0].1)
                - (win[2].0 - win[0].0) * (win[1].1 - win[0].1);
            // Cross-check with geometry: front ⇔ the camera (eye origin) is on the outside.
            let outward = cross(sub(q[1], q[0]), sub(q[2], q[0]));
            let sees_outside = dot(outward, q[0]) < 0.0;
            assert_eq!(area > 0.0, sees_outside, "frame {k} face {f}: facing");
            faces.push(Face {
                index: f,
                o,
                u,
                v,
                front: area > 0.0,
            });
        }
        Scene { faces, hwd, hht }
    }

    /// Window position (pixels, origin top-left) of eye-space point p.
    fn project(&self, p: [f64; 3]) -> (f64, f64) {
        let w = -p[2];
        let (nx, ny) = (p[0] / (w * self.hwd), p[1] / (w * self.hht));
        (
            (nx + 1.0) / 2.0 * f64::from(W),
            f64::from(H) - (ny + 1.0) / 2.0 * f64::from(H),
        )
    }

    /// The front face the ray through window point (x, y) hits, with its (s, t).
    fn hit(&self, x: f64, y: f64) -> Option<(usize, f64, f64)> {
        let nx = 2.0 * x / f64::from(W) - 1.0;
        let ny = 2.0 * (f64::from(H) - y) / f64::from(H) - 1.0;
        let d = [nx * self.hwd, ny * self.hht, -1.0];
        self.faces.iter().filter(|f| f.front).find_map(|f| {
            // λ·d − s·u − t·v = o (Cramer's rule).
            let cols = [d, f.u.map(|c| -c), f.v.map(|c| -c)];
            let det3 = |a: [f64; 3], b: [f64; 3], c: [f64; 3]| dot(a, cross(b, c));
            let det = det3(cols[0], cols[1], cols[2]);
            if det.abs() < 1e-12 {
                return None;
            }
            let lambda = det3(f.o, cols[1], cols[2]) / det;
            let s = det3(cols[0], f.o, cols[2]) / det;
            let t = det3(cols[0], cols[1], f.o) / det;
            ((0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&t) && lambda > 0.0)
                .then_some((f.index, s, t))
        })
    }
}

/// The generated textures; face f shows image f / 2.
struct Texels([Vec<u8>; 3]);

impl Texels {
    /// The NEAREST texel of face f at (s, t), and whether it is unambiguous (the sample point
    /// at least `margin` texels from a texel edge).
    fn at(&self, face: usize, s: f64, t: f64, margin: f64) -> ([u8; 3], bool) {
        let n = TEXTURE_SIZE as f64;
        let (fs, ft) = (s * n, t * n);
        let clear = |v: f64| {
            let fr = v - v.floor();
            fr.min(1.0 - fr) >= margin
        };
        let i = (fs.floor() as usize).min(TEXTURE_SIZE - 1);
        let j = (ft.floor() as usize).min(TEXTURE_SIZE - 1);
        let img = &self.0[face / 2];
        let at = 3 * (j * TEXTURE_SIZE + i);
        ([img[at], img[at + 1], img[at + 2]], clear(fs) && clear(ft))
    }
}

fn close(a: [u8; 4], b: [u8; 3]) -> bool {
    (0..3).all(|c| a[c].abs_diff(b[c]) <= CHANNEL_TOLERANCE)
}

/// Analytic checks of frame k; returns a one-line summary.
fn check_analytically(k: u32, px: &Frame, texels: &Texels) -> String {
    let at = |x: u32, y: u32| px[(y * W + x) as usize];
    let scene = Scene::new(k);

    // Background at the four corners (the cube never reaches them).
    for (x, y) in [(0, 0), (W - 1, 0), (0, H - 1), (W - 1, H - 1)] {
        assert!(
            close(at(x, y), BACKGROUND),
            "frame {k}: corner ({x},{y}) is {:?}, expected {BACKGROUND:?}",
            at(x, y)
        );
    }

    // A convex cube seen from outside shows exactly three faces.
    let visible: Vec<usize> = scene
        .faces
        .iter()
        .filter(|f| f.front)
        .map(|f| f.index)
        .collect();
    assert_eq!(visible.len(), 3, "frame {k}: visible faces {visible:?}");

    // Texels at the projected face centres and at four points around each.
    let mut samples = 0;
    for f in scene.faces.iter().filter(|f| f.front) {
        for (s, t) in [(0.5, 0.5), (0.3, 0.3), (0.3, 0.7), (0.7, 0.3), (0.7, 0.7)] {
            let p = [0, 1, 2].map(|c| f.o[c] + s * f.u[c] + t * f.v[c]);
            let (x, y) = scene.project(p);
            // The pixel containing the point, or a neighbour whose centre samples a texel
            // unambiguously.
            let candidates = (-1i32..=1).flat_map(|dy| (-1i32..=1).map(move |dx| (dx, dy)));
            let mut checked = false;
            for (dx, dy) in std::iter::once((0, 0)).chain(candidates) {
                let (pxl, pyl) = (x.floor() as i32 + dx, y.floor() as i32 + dy);
                let (cx, cy) = (f64::from(pxl) + 0.5, f64::from(pyl) + 0.5);
                let Some((face, hs, ht)) = scene.hit(cx, cy) else {
                    continue;
                };
                assert_eq!(
                    face, f.index,
                    "frame {k}: ray at ({cx},{cy}) hits face {face}"
                );
                let (want, clear) = texels.at(face, hs, ht, 0.1);
                if !clear {
                    continue;
                }
                let got = at(pxl as u32, pyl as u32);
                assert!(
                    close(got, want),
                    "frame {k}: face {} at texcoord ({s},{t}) → pixel ({pxl},{pyl}) is {got:?}, \
                     texture (image {}) has {want:?}",
                    f.index,
                    f.index / 2
                );
                checked = true;
                break;
            }
            assert!(
                checked,
                "frame {k}: no unambiguous pixel near face {} ({s},{t})",
                f.index
            );
            samples += 1;
        }
    }

    // A ray cast of the whole frame: every pixel whose analytic colour is unambiguous (a
    // texel sampled ≥ 0.1 texel from its edges and ≥ 1 px inside the silhouette and face
    // edges, or background ≥ 1 px outside the cube) must have that colour.
    let (mut checked, mut wrong, mut covered) = (0usize, 0usize, 0usize);
    for y in 0..H {
        for x in 0..W {
            let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let centre = scene.hit(cx, cy);
            covered += usize::from(centre.is_some());
            let ring = [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)]
                .map(|(dx, dy)| scene.hit(cx + dx, cy + dy).map(|h| h.0));
            let want = match centre {
                None if ring.iter().all(Option::is_none) => Some(BACKGROUND),
                Some((face, s, t)) if ring.iter().all(|r| *r == Some(face)) => {
                    let (c, clear) = texels.at(face, s, t, 0.1);
                    clear.then_some(c)
                }
                _ => None,
            };
            if let Some(want) = want {
                checked += 1;
                wrong += usize::from(!close(at(x, y), want));
            }
        }
    }
    let rendered = px.iter().filter(|p| !close(**p, BACKGROUND)).count();
    assert!(
        checked > (W * H) as usize * 3 / 4,
        "frame {k}: only {checked} pixels checked"
    );
    assert!(
        wrong * 1000 <= checked,
        "frame {k}: {wrong} of {checked} unambiguous pixels differ from the ray cast"
    );
    // The coverage agrees with the geometry (background-coloured texels aside).
    let diff = rendered.abs_diff(covered) as f64 / covered as f64;
    assert!(
        diff < 0.01,
        "frame {k}: {rendered} non-background pixels, ray cast covers {covered}"
    );
    format!(
        "faces {visible:?} visible, {samples} centre samples ok, ray cast: {wrong}/{checked} differ, coverage {:.1}%",
        100.0 * covered as f64 / f64::from(W * H)
    )
}

// ------------------------------------------------------------------ golden images

fn golden_path(k: u32) -> PathBuf {
    harness::golden::path(&format!("frame-{k:04}.png"))
}

// ------------------------------------------------------------------ the test

#[test]
fn golden_frames_through_the_khrn_server() {
    let r = start(PidSource::ClientId, W, H);
    let texels = Texels(textures());
    let mut frames = Vec::new();
    for (n, k) in GOLDEN_FRAMES.into_iter().chain([721]).enumerate() {
        let sem_before = r.client.semaphore_count(CLIENT_ID, 0, r.surface.handle());
        r.cube.frame(&r.gl, k).unwrap();
        r.display.swap_buffers(&r.surface).unwrap();
        assert_eq!(r.gl.get_error().unwrap(), 0, "frame {k}: GL error");

        // Exactly one KHAN post per swap, addressed to this client and its surface.
        let khan = r.lb.take_khan();
        assert_eq!(khan.len(), 1, "frame {k}: one KHAN post per swap");
        let words: Vec<u32> = khan[0]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(
            words[1..],
            [CLIENT_ID, 0, r.surface.handle()],
            "frame {k}: KHAN post"
        );
        r.client.khan_message(&khan[0]);
        assert_eq!(
            r.client.semaphore_count(CLIENT_ID, 0, r.surface.handle()),
            sem_before,
            "frame {k}: the post gives back the buffer the swap took"
        );
        {
            let st = r.lb.state.lock().unwrap();
            assert_eq!(st.1.presents, n + 1, "frame {k}: one present per swap");
            assert_eq!(st.1.lost_posts, 0);
        }
        let (element, px) = r.lb.presented().expect("the swap presented a frame");
        assert_eq!(element, harness::ELEMENT);
        frames.push((k, px));
    }
    assert_eq!(r.client.stats().khan_posts, frames.len() as u64);

    // Frame 1 as the spec describes the real demo's (§2.5): the "front" (Lucca), "left"
    // (Djenné) and "bottom" (Gaudí) strips visible, 47.1% covered, bounding box
    // x 96..580, y 11..479.
    let visible: Vec<usize> = Scene::new(1)
        .faces
        .iter()
        .filter(|f| f.front)
        .map(|f| f.index)
        .collect();
    assert_eq!(visible, [0, 2, 5], "frame 1: visible faces");
    let f1 = &frames[0].1;
    let cube: Vec<(u32, u32)> = (0..H)
        .flat_map(|y| (0..W).map(move |x| (x, y)))
        .filter(|&(x, y)| !close(f1[(y * W + x) as usize], BACKGROUND))
        .collect();
    let coverage = cube.len() as f64 / f64::from(W * H);
    assert!(
        (coverage - 0.471).abs() < 0.005,
        "frame 1: coverage {coverage}"
    );
    let bbox = |f: fn(&(u32, u32)) -> u32| {
        let v: Vec<u32> = cube.iter().map(f).collect();
        (*v.iter().min().unwrap(), *v.iter().max().unwrap())
    };
    let ((x0, x1), (y0, y1)) = (bbox(|p| p.0), bbox(|p| p.1));
    assert!(
        x0.abs_diff(96) <= 2 && x1.abs_diff(580) <= 2 && y0.abs_diff(11) <= 2 && y1 == 479,
        "frame 1: bounding box x {x0}..{x1}, y {y0}..{y1}"
    );

    let mut report = Vec::new();
    for (k, px) in &frames {
        let summary = check_analytically(*k, px, &texels);
        report.push(format!("frame {k}: {summary}"));
    }

    // The animation's period is 720 frames, and rendering is deterministic.
    let (f1, f721) = (&frames[0].1, &frames[4].1);
    assert!(f1 == f721, "frame 721 differs from frame 1");

    let mut worst_share = 1.0f64;
    for (k, px) in frames.iter().filter(|(k, _)| GOLDEN_FRAMES.contains(k)) {
        let path = golden_path(*k);
        if harness::golden::updating() {
            harness::golden::write_png(&path, W, H, px);
            report.push(format!("frame {k}: wrote {}", path.display()));
            continue;
        }
        let (share, worst, outside) = harness::golden::compare(
            px,
            &harness::golden::read_png(&path, W, H),
            CHANNEL_TOLERANCE,
        );
        worst_share = worst_share.min(share);
        report.push(format!(
            "frame {k}: {:.3}% of pixels within ±{CHANNEL_TOLERANCE} of the golden image \
             ({outside} outside), largest channel difference {worst}",
            100.0 * share
        ));
        assert!(
            share >= MIN_WITHIN,
            "frame {k}: only {:.3}% of pixels within ±{CHANNEL_TOLERANCE} of {} \
             (need {:.1}%; largest difference {worst}); if the change is intended, regenerate \
             with VCHIQ_UPDATE_GOLDEN=1 and check the images by eye",
            100.0 * share,
            path.display(),
            100.0 * MIN_WITHIN
        );
    }
    report.push(format!(
        "worst frame: {:.3}% within tolerance",
        100.0 * worst_share
    ));
    println!("{}", report.join("\n"));
}
