//! Where the pid comes from, and the KHAN semaphore path (spec §5.6, §5.7).

mod common;

use std::time::Duration;

use common::{CLIENT_ID, Item, scene};
use khronos::PidSource;
use khronos::gles::consts::COLOR_BUFFER_BIT;

fn mc_pids(log: &[Item]) -> Vec<(u32, u32)> {
    log.iter()
        .filter_map(|i| match i {
            Item::Msg { cmds, .. } => Some(cmds),
            _ => None,
        })
        .flatten()
        .filter(|c| c.id == 0x4008)
        .map(|c| (c.args[0], c.args[1]))
        .collect()
}

fn khan(command: u32, pid: u64, name: u32) -> Vec<u8> {
    [command, pid as u32, (pid >> 32) as u32, name]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

const SHORT: Duration = Duration::from_millis(50);

#[test]
fn client_id_goes_into_make_current_records() {
    let s = scene(PidSource::ClientId);
    s.gl.clear(COLOR_BUFFER_BIT).unwrap();
    s.gl.flush().unwrap();
    let pids = mc_pids(&s.mock.log());
    assert!(pids.len() >= 3);
    assert!(pids.iter().all(|&p| p == (CLIENT_ID, 0)), "{pids:?}");
    assert_eq!(s.client.pid(), u64::from(CLIENT_ID));
    assert_eq!(
        s.client.semaphore_count(CLIENT_ID, 0, s.surface.handle()),
        Some(3)
    );
}

#[test]
fn legacy_getpid_reproduces_the_2016_bug() {
    let getpid = std::process::id();
    assert_ne!(getpid, CLIENT_ID, "pick another client id for this test");
    let s = scene(PidSource::LegacyGetpid);
    s.gl.clear(COLOR_BUFFER_BIT).unwrap();
    s.gl.flush().unwrap();
    let pids = mc_pids(&s.mock.log());
    assert!(pids.iter().all(|&p| p == (getpid, 0)), "{pids:?}");
    assert_eq!(s.client.pid(), u64::from(getpid));
    // The surface semaphore is named with getpid() too; the VideoCore never posts to it.
    assert_eq!(
        s.client.semaphore_count(getpid, 0, s.surface.handle()),
        Some(3)
    );
    assert_eq!(s.mock.client_id_calls(), 0);
}

#[test]
fn without_posts_the_fourth_swap_blocks() {
    let s = scene(PidSource::ClientId);
    for n in 1..=3 {
        assert!(
            s.display.swap_buffers_timeout(&s.surface, SHORT).unwrap(),
            "swap {n}"
        );
    }
    assert!(
        !s.display.swap_buffers_timeout(&s.surface, SHORT).unwrap(),
        "swap 4 must block"
    );
    assert_eq!(s.client.stats().swaps, 4);
}

#[test]
fn khan_posts_release_the_surface_semaphore() {
    let s = scene(PidSource::ClientId);
    let sem = s.surface.handle();
    for _ in 0..3 {
        s.display.swap_buffers(&s.surface).unwrap();
    }
    // A post from another process is dropped.
    s.client.khan_message(&khan(1, 24, sem));
    assert!(!s.display.swap_buffers_timeout(&s.surface, SHORT).unwrap());
    // A short message is dropped too.
    s.client.khan_message(&[1, 0, 0, 0]);
    assert_eq!(s.client.stats().khan_dropped, 2);

    // The VideoCore's post for this process frees a buffer; a swap blocked on it wakes up.
    let client = s.client.clone();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        client.khan_message(&khan(1, u64::from(CLIENT_ID), sem));
    });
    assert!(
        s.display
            .swap_buffers_timeout(&s.surface, Duration::from_secs(10))
            .unwrap()
    );
    poster.join().unwrap();
    let st = s.client.stats();
    assert_eq!((st.khan_posts, st.khan_dropped, st.swaps), (1, 2, 5));

    // Steady state: one post per swap keeps the pipeline going.
    for _ in 0..10 {
        s.client.khan_message(&khan(1, u64::from(CLIENT_ID), sem));
        assert!(s.display.swap_buffers_timeout(&s.surface, SHORT).unwrap());
    }
}

#[test]
fn khan_wait_takes_a_count() {
    let s = scene(PidSource::ClientId);
    let sem = s.surface.handle();
    s.client.khan_message(&khan(0, u64::from(CLIENT_ID), sem));
    assert_eq!(s.client.semaphore_count(CLIENT_ID, 0, sem), Some(2));
    s.client.khan_message(&khan(2, u64::from(CLIENT_ID), sem)); // DESTROY: ignored
    assert_eq!(s.client.semaphore_count(CLIENT_ID, 0, sem), Some(2));
}

#[test]
fn destroy_and_terminate_follow_the_exit_path() {
    let s = scene(PidSource::ClientId);
    let before = s.mock.log().len();
    s.display.destroy_surface(s.surface).unwrap();
    assert_eq!(
        s.mock.log().len(),
        before,
        "a current surface is destroyed only when released"
    );
    s.display.make_current(None, None, None).unwrap();
    s.display.terminate().unwrap();
    let ids: Vec<u32> = s.mock.log()[before..]
        .iter()
        .flat_map(|i| match i {
            Item::Msg { cmds, .. } => cmds.iter().map(|c| c.id).collect(),
            _ => Vec::new(),
        })
        .filter(|&id| id != 0x4008)
        .collect();
    assert_eq!(ids, [0x400c, 0x4004, 0x4005, 0x6000]);
    assert!(s.display.swap_buffers(&s.surface).is_err());
}
