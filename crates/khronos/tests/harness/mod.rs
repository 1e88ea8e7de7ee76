//! An in-process loopback to the software VideoCore's KHRN server: the khronos client's
//! messages go straight to `videocore::khrn::KhrnServer`, which renders with `vc-gles`; the
//! server's KHAN posts and presented frames are collected for the tests to inspect.

#![allow(dead_code)] // each test binary uses a different part

#[allow(dead_code)] // not every test binary compares golden images
pub mod golden;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use khronos::egl::{self, NativeWindow};
use khronos::gles::Gl;
use khronos::hello_triangle::Cube;
use khronos::{Channel, Client, PidSource, RpcTransport, TransportError};
use videocore::khrn::{self, KhrnHost, KhrnServer};

/// The client id the loopback attests (what GET_CLIENT_ID returns).
pub const CLIENT_ID: u32 = 4242;

/// The dispmanx element the window surface presents into.
pub const ELEMENT: u32 = 19;

/// The VideoCore side: replies, bulk data, KHAN posts and the presented frames.
#[derive(Default)]
pub struct Host {
    pub replies: VecDeque<Vec<u8>>,
    pub bulk_out: VecDeque<Vec<u8>>,
    /// KHAN messages for the registered client (the only KHAN service there is).
    pub khan: Vec<Vec<u8>>,
    /// Posts the VideoCore could not route ("No KHAN handle found for pid …").
    pub lost_posts: usize,
    /// The last presented frame: element and RGBA pixels, rows top to bottom.
    pub presented: Option<(u32, Vec<[u8; 4]>)>,
    /// Frames presented so far.
    pub presents: usize,
    pub client_id: u32,
    pub size: (u32, u32),
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
        self.presents += 1;
    }
    fn display_size(&self) -> (u32, u32) {
        self.size
    }
    fn log(&mut self, text: &str) {
        eprintln!("videocore: {text}");
    }
}

/// The transport: every call runs the server synchronously under one lock.
pub struct Loopback {
    pub state: Mutex<(KhrnServer, Host)>,
}

impl Loopback {
    pub fn new(client_id: u32, size: (u32, u32)) -> Arc<Loopback> {
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

    /// The KHAN messages posted since the last call.
    pub fn take_khan(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state.lock().unwrap().1.khan)
    }

    /// The last presented frame (element, RGBA pixels).
    pub fn presented(&self) -> Option<(u32, Vec<[u8; 4]>)> {
        self.state.lock().unwrap().1.presented.clone()
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

/// A hello_triangle client set up through `Cube::setup`, current on a `w`×`h` window.
pub struct Run {
    pub lb: Arc<Loopback>,
    pub client: Arc<Client>,
    pub display: egl::Display,
    pub surface: egl::Surface,
    pub gl: Gl,
    pub cube: Cube,
}

/// A GLES 2.0 client current on a `w`×`h` window, before any GL call.
#[allow(dead_code)] // each test binary uses one of the start functions
pub struct Run2 {
    pub lb: Arc<Loopback>,
    pub client: Arc<Client>,
    pub display: egl::Display,
    pub surface: egl::Surface,
    pub gl: Gl,
}

/// Connects a client over the loopback with an OpenGL ES 2.0 context (hello_triangle2).
#[allow(dead_code)]
pub fn start2(w: u32, h: u32) -> Run2 {
    let (lb, client, display, surface) = connect(PidSource::ClientId, w, h, 2);
    let gl = Gl::new(&client);
    Run2 {
        lb,
        client,
        display,
        surface,
        gl,
    }
}

fn connect(
    pid_source: PidSource,
    w: u32,
    h: u32,
    version: u32,
) -> (Arc<Loopback>, Arc<Client>, egl::Display, egl::Surface) {
    let lb = Loopback::new(CLIENT_ID, (w, h));
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
    let ctx = display.create_context(&config, version).unwrap();
    let surface = display
        .create_window_surface(
            &config,
            &NativeWindow {
                element: ELEMENT,
                width: w,
                height: h,
            },
        )
        .unwrap();
    display
        .make_current(Some(&surface), Some(&surface), Some(&ctx))
        .unwrap();
    (lb, client, display, surface)
}

/// Connects a client over the loopback and runs the demo's set-up (spec §2.2 steps 3–20).
#[allow(dead_code)]
pub fn start(pid_source: PidSource, w: u32, h: u32) -> Run {
    let (lb, client, display, surface) = connect(pid_source, w, h, 1);
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
