//! The client against the software VideoCore's KHRN server, in process: frame 1 of
//! hello_triangle is rendered by the real server and the swap's KHAN post comes back.
//!
//! The server crates are dev-dependencies (see Cargo.toml).

use std::time::Duration;

use khronos::PidSource;

mod harness;
use harness::start;

#[test]
fn frame_one_renders_through_the_real_server() {
    let (w, h) = (640, 480);
    let r = start(PidSource::ClientId, w, h);
    r.cube.frame(&r.gl, 1).unwrap();
    r.display.swap_buffers(&r.surface).unwrap();
    assert_eq!(r.gl.get_error().unwrap(), 0);

    let khan = r.lb.take_khan();
    assert_eq!(khan.len(), 1, "one KHAN post per swap");
    let before = r.client.semaphore_count(4242, 0, r.surface.handle());
    r.client.khan_message(&khan[0]);
    assert_eq!(
        r.client.semaphore_count(4242, 0, r.surface.handle()),
        before.map(|c| c + 1)
    );

    let st = r.lb.state.lock().unwrap();
    let (window, px) = st.1.presented.as_ref().expect("the swap presented a frame");
    assert_eq!(*window, 19);
    let at = |x: u32, y: u32| px[(y * w + x) as usize];
    for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
        let [r, g, b, _] = at(x, y);
        for (got, want) in [(r, 38), (g, 64), (b, 89)] {
            assert!(
                got.abs_diff(want) <= 1,
                "corner ({x},{y}) is {:?}, expected (38,64,89)",
                at(x, y)
            );
        }
    }
    let background =
        |p: [u8; 4]| p[0].abs_diff(38) <= 1 && p[1].abs_diff(64) <= 1 && p[2].abs_diff(89) <= 1;
    assert!(!background(at(w / 2, h / 2)), "the cube covers the centre");
    let covered = px.iter().filter(|p| !background(**p)).count() as f64 / px.len() as f64;
    assert!(
        (0.40..0.55).contains(&covered),
        "cube covers {:.1}% (reference 47.1%)",
        covered * 100.0
    );
}

#[test]
fn legacy_pid_freezes_in_the_fourth_swap() {
    let r = start(PidSource::LegacyGetpid, 64, 48);
    for k in 1..=4 {
        r.cube.frame(&r.gl, k).unwrap();
        let freed = r
            .display
            .swap_buffers_timeout(&r.surface, Duration::from_millis(50))
            .unwrap();
        for m in r.lb.take_khan() {
            r.client.khan_message(&m);
        }
        assert_eq!(freed, k <= 3, "swap {k}");
    }
    assert_eq!(
        r.lb.state.lock().unwrap().1.lost_posts,
        4,
        "No KHAN handle found for the getpid() pid"
    );
}
