//! hello_triangle2 (OpenGL ES 2.0) through the recording mock: the KHRN traffic up to the
//! first swap must be the real client's, message for message (`data/hello_triangle2_to_first_swap.txt`,
//! transcribed from the reference trace of the Pi's demo; only the shader sources, which are
//! this project's own, differ in length), and every later frame the same few messages.

mod common;

use common::{Cmd, Item, scene_of};
use khronos::PidSource;
use khronos::hello_triangle2::{Fractals, OFFSET};

const EXPECTED: &str = include_str!("data/hello_triangle2_to_first_swap.txt");

/// Whether argument `k` of command `id` is a float (printed as such).
fn is_float(id: u32, k: usize) -> bool {
    match id {
        0x7007 => true,           // glClearColor
        0x2035..=0x2038 => k > 0, // glUniformNf: location, values
        0x7032 => k == 2,         // glTexParameterf: target, pname, param
        _ => false,
    }
}

/// One line per message, payload and command: `MSG len`, `PAYLOAD len`, `BULK len`, and
/// `id args…` (floats with `f`, a draw's cache info after `|`).
fn listing(items: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Msg { len, cmds } => {
                out.push(format!("MSG {len}"));
                out.extend(cmds.iter().map(command_line));
            }
            Item::Payload(p) => out.push(format!("PAYLOAD {}", p.len())),
            Item::Bulk(b) => out.push(format!("BULK {}", b.len())),
        }
    }
    out
}

fn command_line(c: &Cmd) -> String {
    let mut line = format!("{:04x}", c.id);
    for (k, &a) in c.args.iter().enumerate() {
        if is_float(c.id, k) {
            line.push_str(&format!(" f{}", f32::from_bits(a)));
        } else {
            line.push_str(&format!(" {a}"));
        }
    }
    if c.id == 0x7018 {
        let send_any = u32::from_le_bytes(c.inline[..4].try_into().unwrap());
        line.push_str(&format!(" | {send_any}"));
    }
    line
}

fn expected() -> Vec<String> {
    EXPECTED
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim_end().to_owned())
        .collect()
}

fn to_first_swap() -> (common::Scene, Fractals) {
    let s = scene_of(PidSource::ClientId, 2);
    let mut f = Fractals::new(640, 480);
    f.setup(&s.gl).unwrap();
    f.frame(&s.gl, OFFSET).unwrap();
    s.display
        .swap_buffers_timeout(&s.surface, std::time::Duration::ZERO)
        .unwrap();
    (s, f)
}

#[test]
fn the_traffic_to_the_first_swap_is_the_real_clients() {
    let (s, _) = to_first_swap();
    let got = listing(&s.mock.log());
    let want = expected();
    // The whole listing, to diff against the expected one when they differ.
    let dump =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hello_triangle2_listing.txt");
    std::fs::write(&dump, got.join("\n") + "\n").unwrap();
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {n} differs (whole listing: {})", dump.display());
    }
    assert_eq!(got.len(), want.len(), "listing:\n{}", got.join("\n"));
}

#[test]
fn the_scene_got_the_servers_names_and_locations() {
    let (_, f) = to_first_swap();
    assert_eq!((f.julia.0, f.mandelbrot.0), (4, 5));
    assert_eq!(f.julia.1.vertex, 0);
    assert_eq!(
        (
            f.julia.1.color,
            f.julia.1.scale,
            f.julia.1.offset,
            f.julia.1.tex,
            f.julia.1.centre
        ),
        (0, 1, 2, 3, 4)
    );
    assert_eq!((f.buffer, f.texture, f.framebuffer), (1, 1, 1));
}

#[test]
fn a_later_frame_is_the_same_messages_with_no_uploads() {
    let (s, f) = to_first_swap();
    let before = s.mock.log().len();
    f.frame(&s.gl, OFFSET).unwrap();
    let frame: Vec<Item> = s.mock.log()[before..].to_vec();
    assert!(
        frame.iter().all(|i| matches!(i, Item::Msg { .. })),
        "a frame sends no payloads: {:?}",
        listing(&frame)
    );
    let draws: Vec<&Cmd> = frame
        .iter()
        .flat_map(|i| match i {
            Item::Msg { cmds, .. } => cmds.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .filter(|c| c.id == 0x7018)
        .collect();
    assert_eq!(draws.len(), 1);
    // Sourced from the vertex buffer: no vertex-cache entries.
    assert_eq!(draws[0].args, [6, 4, 0, 0]);
    assert_eq!(draws[0].inline, 0u32.to_le_bytes());
}
