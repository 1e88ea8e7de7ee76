//! The client against the software VideoCore's KHRN server, in process: frame 1 of
//! hello_triangle is rendered by the real server and the swap's KHAN post comes back.
//!
//! Requires `--features videocore-loopback` (see Cargo.toml).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use khronos::egl::{self, NativeWindow};
use khronos::gles::Gl;
use khronos::hello_triangle::Cube;
use khronos::{Channel, Client, PidSource, RpcTransport, TransportError};
use videocore::khrn::{self, KhrnHost, KhrnServer};

#[derive(Default)]
struct Host {
    replies: VecDeque<Vec<u8>>,
    bulk_out: VecDeque<Vec<u8>>,
    /// KHAN messages for the registered client (the only KHAN service there is).
    khan: Vec<Vec<u8>>,
    /// Posts the VideoCore could not route ("No KHAN handle found for pid …").
    lost_posts: usize,
    /// The last presented frame: element and RGBA pixels.
    presented: Option<(u32, Vec<[u8; 4]>)>,
    client_id: u32,
    size: (u32, u32),
}

impl KhrnHost for Host {
    fn reply(&mut self, _channel: khrn::Channel, data: &[u8]) {
        self.replies.push_back(data.to_vec());
    }
    fn bulk_to_client(&mut self, _channel: khrn::Channel, data: Vec<u8>) {
        self.bulk_out.push_back(data);
    }
    fn expect_bulk_from_client(&mut self, _channel: khrn::Channel, _len: u32) {}
    fn post_khan(&mut self, pid: u64, command: u32, sem: u32) {
        if pid == u64::from(self.client_id) {
            let words = [command, pid as u32, (pid >> 32) as u32, sem];
            self.khan
                .push(words.iter().flat_map(|w| w.to_le_bytes()).collect());
        } else {
            self.lost_posts += 1;
        }
    }
    fn present(&mut self, window: u32, image: &vc_gles::Image) {
        let (w, h) = self.size;
        let px = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| image.get(x, y))
            .collect();
        self.presented = Some((window, px));
    }
    fn display_size(&self) -> (u32, u32) {
        self.size
    }
    fn log(&mut self, text: &str) {
        eprintln!("videocore: {text}");
    }
}

struct Loopback {
    state: Mutex<(KhrnServer, Host)>,
}

impl Loopback {
    fn new(client_id: u32, size: (u32, u32)) -> Arc<Loopback> {
        Arc::new(Loopback {
            state: Mutex::new((
                KhrnServer::new(client_id),
                Host {
                    client_id,
                    size,
                    ..Host::default()
                },
            )),
        })
    }

    fn take_khan(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state.lock().unwrap().1.khan)
    }
}

fn ch(c: Channel) -> khrn::Channel {
    match c {
        Channel::Khrn => khrn::Channel::Khrn,
        Channel::Khhn => khrn::Channel::Khhn,
    }
}

impl RpcTransport for Loopback {
    fn send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        let mut st = self.state.lock().unwrap();
        let (server, host) = &mut *st;
        server
            .handle_message(ch(channel), data, host)
            .expect("the server rejected a message");
        Ok(())
    }
    fn recv(&self, channel: Channel) -> Result<Vec<u8>, TransportError> {
        self.state
            .lock()
            .unwrap()
            .1
            .replies
            .pop_front()
            .ok_or(TransportError::Closed(channel))
    }
    fn bulk_send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        let mut st = self.state.lock().unwrap();
        let (server, host) = &mut *st;
        server
            .bulk_payload(ch(channel), data.to_vec(), host)
            .expect("the server rejected a bulk");
        Ok(())
    }
    fn bulk_recv(&self, channel: Channel, len: usize) -> Result<Vec<u8>, TransportError> {
        let data = self
            .state
            .lock()
            .unwrap()
            .1
            .bulk_out
            .pop_front()
            .ok_or(TransportError::Closed(channel))?;
        assert_eq!(data.len(), len);
        Ok(data)
    }
    fn client_id(&self, _channel: Channel) -> Result<u32, TransportError> {
        Ok(self.state.lock().unwrap().1.client_id)
    }
}

struct Run {
    lb: Arc<Loopback>,
    client: Arc<Client>,
    display: egl::Display,
    surface: egl::Surface,
    gl: Gl,
    cube: Cube,
}

fn start(pid_source: PidSource, w: u32, h: u32) -> Run {
    let lb = Loopback::new(4242, (w, h));
    let client = Client::new(lb.clone(), pid_source);
    let display = egl::get_display(&client);
    display.initialize().unwrap();
    let config = display
        .choose_config(&[
            egl::RED_SIZE,
            8,
            egl::GREEN_SIZE,
            8,
            egl::BLUE_SIZE,
            8,
            egl::ALPHA_SIZE,
            8,
            egl::NONE,
        ])
        .unwrap()[0];
    let ctx = display.create_context(&config, 1).unwrap();
    let surface = display
        .create_window_surface(
            &config,
            &NativeWindow {
                element: 19,
                width: w,
                height: h,
            },
        )
        .unwrap();
    display
        .make_current(Some(&surface), Some(&surface), Some(&ctx))
        .unwrap();
    let gl = Gl::new(&client);
    let mut cube = Cube::new(w, h);
    cube.setup(&gl).unwrap();
    Run {
        lb,
        client,
        display,
        surface,
        gl,
        cube,
    }
}

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
