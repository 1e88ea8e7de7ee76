//! KHRN server tests: the hello_triangle and hello_triangle2 message sequences (transcribed
//! from the decoded wire traces), reply discipline per class, and malformed input.

use super::ids::*;
use super::*;

// ----- test host --------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Reply(Channel, Vec<u8>),
    BulkToClient(Channel, usize),
    ExpectBulk(Channel, u32),
    Khan {
        pid: u64,
        command: u32,
        sem: u32,
    },
    Present {
        window: u32,
        width: u32,
        height: u32,
    },
}

#[derive(Default)]
struct MockHost {
    events: Vec<Event>,
    logs: Vec<String>,
    last_image: Option<vc_gles::Image>,
}

impl KhrnHost for MockHost {
    fn reply(&mut self, channel: Channel, data: &[u8]) {
        self.events.push(Event::Reply(channel, data.to_vec()));
    }
    fn bulk_to_client(&mut self, channel: Channel, data: Vec<u8>) {
        self.events.push(Event::BulkToClient(channel, data.len()));
    }
    fn expect_bulk_from_client(&mut self, channel: Channel, len: u32) {
        self.events.push(Event::ExpectBulk(channel, len));
    }
    fn post_khan(&mut self, pid: u64, command: u32, sem: u32) {
        self.events.push(Event::Khan { pid, command, sem });
    }
    fn present(&mut self, window: u32, image: &vc_gles::Image) {
        self.events.push(Event::Present {
            window,
            width: image.width,
            height: image.height,
        });
        self.last_image = Some(image.clone());
    }
    fn display_size(&self) -> (u32, u32) {
        (640, 480)
    }
    fn log(&mut self, text: &str) {
        self.logs.push(text.to_owned());
    }
}

impl MockHost {
    fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn reply(words: &[u32]) -> Event {
    Event::Reply(Channel::Khrn, wire::words_to_bytes(words))
}

// ----- message encoder --------------------------------------------------------------------

/// Builds a merged message the way the client's merge buffer does.
#[derive(Default, Clone)]
struct Msg(Vec<u8>);

impl Msg {
    /// A message starting with a make-current record.
    fn mc(pid: u32, gltype: u32, context: u32, surface: u32) -> Self {
        Msg::default().cmd(
            EGLINTMAKECURRENT,
            &[pid, 0, gltype, context, surface, surface, 0, 0],
        )
    }

    fn cmd(mut self, id: u32, args: &[u32]) -> Self {
        self.0.extend_from_slice(&id.to_le_bytes());
        for a in args {
            self.0.extend_from_slice(&a.to_le_bytes());
        }
        self
    }

    fn cmdf(self, id: u32, args: &[f32]) -> Self {
        let words: Vec<u32> = args.iter().map(|f| f.to_bits()).collect();
        self.cmd(id, &words)
    }

    /// In-line bytes, padded with stale (non-zero) bytes as the real client does.
    fn inline(mut self, data: &[u8]) -> Self {
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0xee);
        }
        self
    }

    fn cache_data(self, offset: u32, data: &[u8]) -> Self {
        self.cmd(GLINTCACHEDATA, &[offset, data.len() as u32])
            .inline(data)
    }

    /// `glDrawArrays(TRIANGLE_STRIP, first, 4)` with positions and texcoords cached.
    fn draw_strip(self, first: u32, position: u32, texcoord: u32) -> Self {
        let mut info = vec![1u32];
        for slot in 0..10 {
            match slot {
                0 => info.extend([position, 1]),
                3 => info.extend([texcoord, 1]),
                _ => info.extend([u32::MAX, 0]),
            }
        }
        self.cmd(GLINTDRAWELEMENTS, &[5, 4, 0, first])
            .cmd_words(&info)
    }

    fn cmd_words(mut self, words: &[u32]) -> Self {
        for w in words {
            self.0.extend_from_slice(&w.to_le_bytes());
        }
        self
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

fn send(server: &mut KhrnServer, host: &mut MockHost, msg: &Msg) {
    server
        .handle_message(Channel::Khrn, &msg.0, host)
        .expect("well-formed message");
}

// ----- hello_triangle data (spec §2.3, §2.4) ------------------------------------------------

const PID: u32 = 13723;
const CTX: u32 = 0x100;
const SURF: u32 = 0x200;
const WINDOW: u32 = 19;
const TEXTURE_2D: u32 = 0x0de1;

/// `quadx`: 24 vertices × 3 `GLbyte`.
fn quadx() -> Vec<u8> {
    let faces: [[[i8; 3]; 4]; 6] = [
        [[-10, -10, 10], [10, -10, 10], [-10, 10, 10], [10, 10, 10]],
        [
            [-10, -10, -10],
            [-10, 10, -10],
            [10, -10, -10],
            [10, 10, -10],
        ],
        [
            [-10, -10, 10],
            [-10, 10, 10],
            [-10, -10, -10],
            [-10, 10, -10],
        ],
        [[10, -10, -10], [10, 10, -10], [10, -10, 10], [10, 10, 10]],
        [[-10, 10, 10], [10, 10, 10], [-10, 10, -10], [10, 10, -10]],
        [
            [-10, -10, 10],
            [-10, -10, -10],
            [10, -10, 10],
            [10, -10, -10],
        ],
    ];
    let mut out: Vec<u8> = faces.iter().flatten().flatten().map(|&v| v as u8).collect();
    // The client uploads align16 bytes from the pointer: 8 bytes past the array for the
    // last face (whatever follows it in memory).
    out.resize(80, 0);
    out
}

/// `texCoords`: 24 × 2 floats, (0,0), (0,1), (1,0), (1,1) per face.
fn tex_coords() -> Vec<u8> {
    let face = [[0f32, 0.], [0., 1.], [1., 0.], [1., 1.]];
    (0..6)
        .flat_map(|_| face.iter().flatten().flat_map(|f| f.to_le_bytes()))
        .collect()
}

/// Flat stand-ins for the photographs: Lucca (textures 1, 2), Djenné (3, 4), Gaudí (5, 6).
const LUCCA: [u8; 3] = [200, 30, 30];
const DJENNE: [u8; 3] = [30, 200, 30];
const GAUDI: [u8; 3] = [30, 30, 200];

fn texture_rgb(name: u32) -> [u8; 3] {
    match name {
        1 | 2 => LUCCA,
        3 | 4 => DJENNE,
        _ => GAUDI,
    }
}

fn texture_pixels(name: u32) -> Vec<u8> {
    texture_rgb(name).repeat(128 * 128)
}

const BACKGROUND: [u8; 3] = [38, 64, 89];

fn pixel(image: &vc_gles::Image, x: u32, y: u32) -> [u8; 4] {
    image.pixels[(y * image.width + x) as usize].to_le_bytes()
}

fn assert_rgb_near(got: [u8; 4], want: [u8; 3], tolerance: u8, what: &str) {
    let close = (0..3).all(|i| got[i].abs_diff(want[i]) <= tolerance);
    assert!(close, "{what}: got {got:?}, want {want:?}");
}

/// The per-face part of a frame: bind, extra rotation, draw (cache hits after frame 1).
/// (texture, rotation (angle, x, y, z), first vertex, position offset, texcoord offset)
const FACES: [(u32, [f32; 4], u32, u32, u32); 6] = [
    (1, [270., 0., 0., 1.], 0, 40, 168),
    (2, [90., 0., 0., 1.], 4, 296, 424),
    (3, [90., 1., 0., 0.], 8, 552, 808),
    (4, [90., 1., 0., 0.], 12, 552, 1064),
    (5, [270., 0., 1., 0.], 16, 680, 1320),
    (6, [90., 0., 1., 0.], 20, 1576, 1832),
];

fn mc() -> Msg {
    Msg::mc(PID, 1, CTX, SURF)
}

/// Replays hello_triangle's KHRN traffic up to and including the first swap, checking
/// every reply, and returns the server and host.
fn hello_triangle_to_first_swap() -> (KhrnServer, MockHost) {
    let mut server = KhrnServer::new(PID);
    let mut host = MockHost::default();

    // eglCreateContext
    let m = Msg::mc(PID, 0, 0, 0).cmd(EGLINTCREATEGLES11, &[0, 0]);
    assert_eq!(m.len(), 48);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[CTX])]);

    // eglCreateWindowSurface
    let m = Msg::mc(PID, 0, 0, 0).cmd(
        EGLINTCREATESURFACE,
        &[WINDOW, 3, 640, 480, 0x9428, !0, !0, !0, 0, 0, 0, 0, 1, 0],
    );
    assert_eq!(m.len(), 96);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[12, 640, 480, SURF])]);

    // Set-up calls, flushed by glGenTextures(6).
    let m = mc()
        .cmdf(GLCLEARCOLOR, &[0.15, 0.25, 0.35, 1.0])
        .cmd(GLENABLE, &[0x0b44])
        .cmd(GLMATRIXMODE_11, &[0x1700])
        .cmd(GLHINT, &[0x0c50, 0x1102])
        .cmd(GLVIEWPORT, &[0, 0, 640, 480])
        .cmd(GLMATRIXMODE_11, &[0x1701])
        .cmd(GLLOADIDENTITY_11, &[])
        .cmdf(
            GLFRUSTUMF_11,
            &[-0.552285, 0.552285, -0.414214, 0.414214, 1.0, 500.0],
        )
        .cmd(GLINTATTRIBENABLE, &[1, 0, 1])
        .cmd(GLINTATTRIBPOINTER, &[1, 0, 3, 0x1400, 0, 0, 0x565b_f2a0])
        .cmd(GLMATRIXMODE_11, &[0x1700])
        .cmd(GLLOADIDENTITY_11, &[])
        .cmdf(GLTRANSLATEF_11, &[0.0, 0.0, -50.0])
        .cmd(GLGENTEXTURES, &[6]);
    assert_eq!(m.len(), 228);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[24]), reply(&[1, 2, 3, 4, 5, 6])]);

    // Six textures: bind + TexImage2D(NULL) → [1]; TexSubImage2D + 49152-byte bulk.
    for name in 1..=6u32 {
        let mut m = mc();
        if name > 1 {
            m = m
                .cmd(GLTEXPARAMETERF, &[TEXTURE_2D, 0x2801, 9728f32.to_bits()])
                .cmd(GLTEXPARAMETERF, &[TEXTURE_2D, 0x2800, 9728f32.to_bits()]);
        }
        let m = m.cmd(GLBINDTEXTURE, &[TEXTURE_2D, name]).cmd(
            GLTEXIMAGE2D,
            &[TEXTURE_2D, 0, 0x1907, 128, 128, 0, 0x1907, 0x1401, 4, !0],
        );
        assert_eq!(m.len(), if name == 1 { 92 } else { 124 });
        send(&mut server, &mut host, &m);
        assert_eq!(host.take(), [reply(&[1])], "TexImage2D of texture {name}");

        let m = mc().cmd(
            GLTEXSUBIMAGE2D,
            &[TEXTURE_2D, 0, 0, 0, 128, 128, 0x1907, 0x1401, 4, 49152],
        );
        assert_eq!(m.len(), 80);
        send(&mut server, &mut host, &m);
        assert_eq!(host.take(), [Event::ExpectBulk(Channel::Khrn, 49152)]);
        assert!(server.payload_pending(Channel::Khrn));
        server
            .bulk_payload(Channel::Khrn, texture_pixels(name), &mut host)
            .unwrap();
        assert_eq!(host.take(), []);
        assert!(!server.payload_pending(Channel::Khrn));
    }

    let (pos, tc) = (quadx(), tex_coords());
    // Frame 1 up to the first draw's cache growth.
    let mut m = mc()
        .cmd(GLTEXPARAMETERF, &[TEXTURE_2D, 0x2801, 9728f32.to_bits()])
        .cmd(GLTEXPARAMETERF, &[TEXTURE_2D, 0x2800, 9728f32.to_bits()])
        .cmd(GLINTATTRIBPOINTER, &[1, 3, 2, 0x1406, 0, 0, 0x565b_f1e0])
        .cmd(GLINTATTRIBENABLE, &[1, 3, 1])
        .cmd(GLENABLE, &[TEXTURE_2D])
        .cmd(GLLOADIDENTITY_11, &[])
        .cmdf(GLTRANSLATEF_11, &[0.0, 0.0, -40.0])
        .cmdf(GLROTATEF_11, &[45.5, 1.0, 0.0, 0.0])
        .cmdf(GLROTATEF_11, &[30.5, 0.0, 1.0, 0.0])
        .cmdf(GLROTATEF_11, &[360.0, 0.0, 0.0, 1.0])
        .cmd(GLCLEAR, &[0x4000])
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 1])
        .cmdf(GLROTATEF_11, &FACES[0].1)
        .cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 248);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc()
        .cmd(GLINTCACHECREATE, &[0])
        .cache_data(40, &pos[..16])
        .cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 76);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc().cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 40);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc()
        .cmd(GLINTCACHECREATE, &[128])
        .cache_data(168, &tc[..32])
        .draw_strip(0, 40, 168)
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 2])
        .cmdf(GLROTATEF_11, &FACES[1].1)
        .cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 228);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc()
        .cmd(GLINTCACHECREATE, &[256])
        .cache_data(296, &pos[..32])
        .cmd(GLINTCACHECREATE, &[384])
        .cache_data(424, &tc[..64])
        .draw_strip(4, 296, 424)
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 3])
        .cmdf(GLROTATEF_11, &FACES[2].1)
        .cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 312);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc()
        .cmd(GLINTCACHECREATE, &[512])
        .cache_data(552, &pos[..48])
        .cmd(GLINTCACHECREATE, &[768])
        .cache_data(808, &tc[..96])
        .draw_strip(8, 552, 808)
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 4])
        .cmdf(GLROTATEF_11, &FACES[3].1)
        .cmd(GLINTCACHEGROW, &[]);
    assert_eq!(m.len(), 360);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1])]);

    m = mc()
        .cmd(GLINTCACHECREATE, &[1024])
        .cache_data(1064, &tc[..128])
        .draw_strip(12, 552, 1064)
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 5])
        .cmdf(GLROTATEF_11, &FACES[4].1)
        .cmd(GLINTCACHECREATE, &[640])
        .cache_data(680, &pos[..64])
        .cmd(GLINTCACHECREATE, &[1280])
        .cache_data(1320, &tc[..160])
        .draw_strip(16, 680, 1320)
        .cmd(GLBINDTEXTURE, &[TEXTURE_2D, 6])
        .cmdf(GLROTATEF_11, &FACES[5].1)
        .cmd(GLINTCACHECREATE, &[1536])
        .cache_data(1576, &pos[..80])
        .cmd(GLINTCACHECREATE, &[1792])
        .cache_data(1832, &tc[..192])
        .draw_strip(20, 1576, 1832)
        .cmd(EGLINTSWAPBUFFERS, &[SURF, 640, 480, WINDOW, 0, 0]);
    assert_eq!(m.len(), 1164);
    send(&mut server, &mut host, &m);
    assert_eq!(
        host.take(),
        [
            Event::Present {
                window: WINDOW,
                width: 640,
                height: 480
            },
            Event::Khan {
                pid: u64::from(PID),
                command: 1,
                sem: 1
            },
        ]
    );
    assert!(
        host.logs.is_empty(),
        "unexpected log lines: {:?}",
        host.logs
    );
    (server, host)
}

/// Frame `k ≥ 2` of hello_triangle: one message, MC + 25 commands, all cache hits.
fn frame_message(ax: f32, ay: f32, az: f32) -> Msg {
    let mut m = mc()
        .cmd(GLLOADIDENTITY_11, &[])
        .cmdf(GLTRANSLATEF_11, &[0.0, 0.0, -40.0])
        .cmdf(GLROTATEF_11, &[ax, 1.0, 0.0, 0.0])
        .cmdf(GLROTATEF_11, &[ay, 0.0, 1.0, 0.0])
        .cmdf(GLROTATEF_11, &[az, 0.0, 0.0, 1.0])
        .cmd(GLCLEAR, &[0x4000]);
    for (texture, rotation, first, position, texcoord) in FACES {
        m = m
            .cmd(GLBINDTEXTURE, &[TEXTURE_2D, texture])
            .cmdf(GLROTATEF_11, &rotation)
            .draw_strip(first, position, texcoord);
    }
    m.cmd(EGLINTSWAPBUFFERS, &[SURF, 640, 480, WINDOW, 0, 0])
}

fn assert_cube_frame(image: &vc_gles::Image) {
    assert_eq!((image.width, image.height), (640, 480));
    for (x, y) in [(0, 0), (639, 0), (0, 479), (639, 479), (5, 240), (634, 240)] {
        assert_rgb_near(
            pixel(image, x, y),
            BACKGROUND,
            1,
            &format!("background at ({x},{y})"),
        );
    }
    let centre = pixel(image, 320, 240);
    assert!(
        (0..3).any(|i| centre[i].abs_diff(BACKGROUND[i]) > 8),
        "centre is background: {centre:?}"
    );
}

// ----- the hello_triangle tests -----------------------------------------------------------

#[test]
fn khrn_hello_triangle_first_frame() {
    let (server, host) = hello_triangle_to_first_swap();
    let image = host.last_image.as_ref().expect("a frame was presented");
    assert_cube_frame(image);
    // Face centroids of the reference render (spec §2.5).
    assert_rgb_near(pixel(image, 394, 331), LUCCA, 2, "front face (Lucca)");
    assert_rgb_near(pixel(image, 188, 296), DJENNE, 2, "left face (Djenné)");
    assert_rgb_near(
        pixel(image, 319, 139),
        GAUDI,
        2,
        "bottom strip, upper middle (Gaudí)",
    );
    assert_eq!(server.surface_image(SURF), Some(image));
    assert_eq!(server.window_image(WINDOW), Some(image));
    assert_eq!(server.window_image(WINDOW + 1), None);

    let stats = server.stats();
    assert_eq!(stats.swaps, 1);
    assert_eq!(stats.khan_posts, 1);
    assert_eq!(stats.draws, 6);
    assert_eq!(stats.contexts, 1);
    assert_eq!(stats.surfaces, 1);
    assert_eq!(stats.textures, 6);
    assert_eq!(stats.unknown_commands, 0);
    assert_eq!(stats.payloads, 6);
}

#[test]
fn khrn_hello_triangle_second_frame_is_one_message() {
    let (mut server, mut host) = hello_triangle_to_first_swap();
    let first = host.last_image.clone().unwrap();
    let m = frame_message(46.0, 31.0, 0.0);
    assert_eq!(m.len(), 968);
    send(&mut server, &mut host, &m);
    assert_eq!(
        host.take(),
        [
            Event::Present {
                window: WINDOW,
                width: 640,
                height: 480
            },
            Event::Khan {
                pid: u64::from(PID),
                command: 1,
                sem: 1
            },
        ]
    );
    let second = host.last_image.clone().unwrap();
    assert_cube_frame(&second);
    assert_ne!(first, second, "the cube turned by half a degree");
    assert_eq!(server.surface_image(SURF), Some(&second));
    assert_eq!(server.stats().draws, 12);

    // Frames 3 and 4 rotate through the remaining buffers; every swap posts once.
    send(&mut server, &mut host, &frame_message(46.5, 31.5, 360.0));
    send(&mut server, &mut host, &frame_message(47.0, 32.0, 0.0));
    let posts = host
        .take()
        .into_iter()
        .filter(|e| matches!(e, Event::Khan { .. }))
        .count();
    assert_eq!(posts, 2);
    assert_eq!(server.stats().swaps, 4);
}

// ----- hello_triangle2 (GLES 2.0): reply discipline, compiled shaders ------------------------

const T2_VERTEX: &str = "attribute vec4 vertex;
varying vec2 tcoord;
void main(void) { gl_Position = vertex; tcoord = vertex.xy * 0.5 + 0.5; }
";
const T2_JULIA: &str = "precision mediump float;
uniform vec4 color;
uniform vec2 scale;
uniform vec2 offset;
uniform sampler2D tex;
uniform vec2 centre;
varying vec2 tcoord;
void main(void) {
    vec2 z = (gl_FragCoord.xy - centre) * scale + (offset - centre) * scale;
    gl_FragColor = mix(texture2D(tex, tcoord), color, clamp(dot(z, z), 0.0, 1.0));
}
";
const T2_MANDELBROT: &str = "precision mediump float;
uniform vec2 scale;
uniform vec2 offset;
uniform vec2 centre;
varying vec2 tcoord;
void main(void) {
    vec2 c = (offset - centre) * scale;
    gl_FragColor = vec4(0.0, 1.0, 0.0, 1.0) + vec4(c * 0.0, 0.0, 0.0);
}
";

#[test]
fn khrn_hello_triangle2_reply_discipline() {
    const PID2: u32 = 16829;
    let mut server = KhrnServer::new(PID2);
    let mut host = MockHost::default();
    let mc2 = || Msg::mc(PID2, 2, CTX, SURF);
    let mut exchange = |server: &mut KhrnServer, m: Msg, payloads: &[&[u8]]| {
        send(server, &mut host, &m);
        for p in payloads {
            server.handle_message(Channel::Khrn, p, &mut host).unwrap();
        }
        host.take()
    };
    let get_error = |m: Msg| m.cmd(GLGETERROR, &[]);

    let m = Msg::mc(PID2, 0, 0, 0).cmd(EGLINTCREATEGLES20, &[0, 1]);
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[CTX])]);
    let m = Msg::mc(PID2, 0, 0, 0).cmd(
        EGLINTCREATESURFACE,
        &[WINDOW, 3, 640, 480, 0x9428, !0, !0, !0, 0, 0, 0, 0, 1, 0],
    );
    assert_eq!(
        exchange(&mut server, m, &[]),
        [reply(&[12, 640, 480, SURF])]
    );
    assert_eq!(exchange(&mut server, get_error(mc2()), &[]), [reply(&[0])]);
    let m = get_error(
        mc2()
            .cmdf(GLCLEARCOLOR, &[0.15, 0.25, 0.35, 1.0])
            .cmd(GLCLEAR, &[0x4000]),
    );
    assert_eq!(m.len(), 68);
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[0])]);

    // Three shaders: create (R), source (len + string payloads), compile + check.
    let sources: [(u32, &str); 3] = [
        (0x8b31, T2_VERTEX),
        (0x8b30, T2_JULIA),
        (0x8b30, T2_MANDELBROT),
    ];
    for (i, (kind, text)) in sources.into_iter().enumerate() {
        let shader = i as u32 + 1;
        let m = mc2().cmd(GLCREATESHADER_20, &[kind]);
        assert_eq!(exchange(&mut server, m, &[]), [reply(&[shader])]);
        let text = [text.as_bytes(), b"\0"].concat();
        let len = text.len();
        let m = mc2().cmd(GLSHADERSOURCE_20, &[shader, 1, len as u32 + 12, 0]);
        assert_eq!(m.len(), 56);
        let len_word = (len as u32).to_le_bytes();
        assert_eq!(exchange(&mut server, m, &[&len_word, &text]), []);
        assert!(!server.payload_pending(Channel::Khrn));
        let m = get_error(
            mc2()
                .cmd(GLCOMPILESHADER_20, &[shader])
                .cmd(GLGETSHADERIV_20, &[shader, 0x8b81]),
        );
        assert_eq!(
            exchange(&mut server, m, &[]),
            [reply(&[4, 1]), reply(&[0])],
            "shader {shader} compiles"
        );
    }

    // Programs and locations: every uniform the shaders use is active, each at its own
    // location.
    for (program, shader, uniforms) in [
        (4, 2, &["color", "scale", "offset", "tex", "centre"][..]),
        (5, 3, &["scale", "offset", "centre"][..]),
    ] {
        let m = mc2().cmd(GLCREATEPROGRAM_20, &[]);
        assert_eq!(exchange(&mut server, m, &[]), [reply(&[program])]);
        let m = get_error(
            mc2()
                .cmd(GLATTACHSHADER_20, &[program, 1])
                .cmd(GLATTACHSHADER_20, &[program, shader])
                .cmd(GLLINKPROGRAM_20, &[program])
                .cmd(GLGETPROGRAMIV_20, &[program, 0x8b82]),
        );
        assert_eq!(exchange(&mut server, m, &[]), [reply(&[4, 1]), reply(&[0])]);
        let m = mc2().cmd(GLGETATTRIBLOCATION_20, &[program, 7]);
        assert_eq!(exchange(&mut server, m, &[b"vertex\0"]), [reply(&[0])]);
        let mut seen = Vec::new();
        for &name in uniforms {
            let bytes = [name.as_bytes(), b"\0"].concat();
            let m = mc2().cmd(GLGETUNIFORMLOCATION_20, &[program, bytes.len() as u32]);
            let got = exchange(&mut server, m, &[&bytes]);
            let [Event::Reply(_, data)] = got.as_slice() else {
                panic!("{name}: {got:?}");
            };
            let location = i32::from_le_bytes(data[..4].try_into().unwrap());
            assert!(
                location >= 0 && !seen.contains(&location),
                "{name}: {location}"
            );
            seen.push(location);
        }
        let m = mc2().cmd(GLGETUNIFORMLOCATION_20, &[program, 8]);
        assert_eq!(
            exchange(&mut server, m, &[b"missing\0"]),
            [reply(&[u32::MAX])]
        );
    }

    // Objects named by the server.
    let m = mc2()
        .cmdf(GLCLEARCOLOR, &[0.0, 1.0, 1.0, 1.0])
        .cmd(GLGENBUFFERS, &[1]);
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[4]), reply(&[1])]);
    let m = mc2().cmd(GLGENTEXTURES, &[1]);
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[4]), reply(&[1])]);
    let m = get_error(mc2().cmd(GLBINDTEXTURE, &[TEXTURE_2D, 1]));
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[0])]);
    let m = mc2().cmd(
        GLTEXIMAGE2D,
        &[TEXTURE_2D, 0, 0x1907, 640, 480, 0, 0x1907, 0x8363, 4, !0],
    );
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[1])]);
    let m = mc2().cmd(GLGENFRAMEBUFFERS, &[1]);
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[4]), reply(&[1])]);
    let m = get_error(
        mc2()
            .cmd(GLBINDFRAMEBUFFER, &[0x8d40, 1])
            .cmd(GLFRAMEBUFFERTEXTURE2D, &[0x8d40, 0x8ce0, TEXTURE_2D, 1, 0])
            .cmd(GLBINDFRAMEBUFFER, &[0x8d40, 0])
            .cmd(GLVIEWPORT, &[0, 0, 640, 480]),
    );
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[0])]);

    // A VBO: BufferData(NULL) + BufferSubData with a 64-byte message payload.
    let quad: Vec<u8> = [
        -1f32, -1., 1., 1., 1., -1., 1., 1., 1., 1., 1., 1., -1., 1., 1., 1.,
    ]
    .iter()
    .flat_map(|f| f.to_le_bytes())
    .collect();
    let m = mc2()
        .cmd(GLBINDBUFFER, &[0x8892, 1])
        .cmd(GLBUFFERDATA, &[0x8892, 64, 0x88e4, !0])
        .cmd(GLBUFFERSUBDATA, &[0x8892, 0, 64, 64]);
    assert_eq!(m.len(), 88);
    assert_eq!(exchange(&mut server, m, &[&quad]), []);

    let m = get_error(
        mc2()
            .cmd(GLINTATTRIBPOINTER, &[2, 0, 4, 0x1406, 0, 16, 0])
            .cmd(GLINTATTRIBENABLE, &[2, 0, 1])
            .cmd(GLBINDFRAMEBUFFER, &[0x8d40, 1])
            .cmd(GLUSEPROGRAM_20, &[5])
            .cmd(GLINTDRAWELEMENTS, &[6, 4, 0, 0, 0]),
    );
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[0])]);
    // The program drew green into the RGB565 texture: read it back through the FBO.
    let m = mc2().cmd(GLREADPIXELS, &[0, 0, 2, 1, 0x1908, 0x1401, 4]);
    assert_eq!(
        exchange(&mut server, m, &[]),
        [reply(&[8]), reply(&[0xff00ff00, 0xff00ff00])]
    );
    assert_eq!(exchange(&mut server, mc2().cmd(GLFLUSH, &[]), &[]), []);
    assert_eq!(
        exchange(&mut server, mc2().cmd(GLFINISH, &[]), &[]),
        [reply(&[0])]
    );

    // Back to the window: clear cyan, swap, one KHAN post for pid 16829.
    let m = get_error(
        mc2()
            .cmd(GLBINDFRAMEBUFFER, &[0x8d40, 0])
            .cmd(GLCLEAR, &[0x4100]),
    );
    assert_eq!(exchange(&mut server, m, &[]), [reply(&[0])]);
    let m = mc2().cmd(EGLINTSWAPBUFFERS, &[SURF, 640, 480, WINDOW, 0, 0]);
    assert_eq!(m.len(), 64);
    assert_eq!(
        exchange(&mut server, m, &[]),
        [
            Event::Present {
                window: WINDOW,
                width: 640,
                height: 480
            },
            Event::Khan {
                pid: u64::from(PID2),
                command: 1,
                sem: 1
            },
        ]
    );
    let image = server.surface_image(SURF).unwrap();
    assert_eq!(pixel(image, 10, 10), [0, 255, 255, 255]);
    assert_eq!(server.stats().unknown_commands, 0);
}

// ----- reply discipline per class ---------------------------------------------------------

/// A server with a GLES 1.1 context 0x100 and a 64×64 window surface 0x200 (sem 7).
fn small_setup() -> (KhrnServer, MockHost) {
    let mut server = KhrnServer::new(42);
    let mut host = MockHost::default();
    send(
        &mut server,
        &mut host,
        &Msg::mc(42, 0, 0, 0).cmd(EGLINTCREATEGLES11, &[0, 0]).cmd(
            EGLINTCREATESURFACE,
            &[5, 2, 64, 64, 0x9428, 0xf2c, !0, !0, 0, 0, 24, 0, 7, 0],
        ),
    );
    assert_eq!(host.take(), [reply(&[CTX]), reply(&[12, 64, 64, SURF])]);
    (server, host)
}

fn mc42() -> Msg {
    Msg::mc(42, 1, CTX, SURF)
}

#[test]
fn khrn_res_class_replies_once_each() {
    let (mut server, mut host) = small_setup();
    let mut m = mc42()
        .cmd(GLGETERROR, &[])
        .cmd(GLFINISH, &[])
        .cmd(GLISENABLED, &[0x0b44])
        .cmd(GLENABLE, &[0x0b44])
        .cmd(GLISENABLED, &[0x0b44])
        .cmd(GLINTFINDMAX, &[0, 0x1403, 0]);
    for _ in 0..17 {
        m = m.cmd(GLINTCACHEGROW, &[]);
    }
    let m = m
        .cmd(EGLINTDESTROYSURFACE, &[0x999])
        .cmd(KHRNMISCTRYUNLOAD, &[]);
    send(&mut server, &mut host, &m);
    let mut want = vec![
        reply(&[0]),
        reply(&[0]),
        reply(&[0]),
        reply(&[1]),
        reply(&[0]),
    ];
    want.extend(std::iter::repeat_n(reply(&[1]), 16));
    want.push(reply(&[0])); // the 17th grow is refused
    want.extend([reply(&[0]), reply(&[0])]);
    assert_eq!(host.take(), want);
    // No current context: RES calls still answer.
    send(
        &mut server,
        &mut host,
        &Msg::mc(42, 0, 0, 0)
            .cmd(GLGETERROR, &[])
            .cmd(GLINTCACHEGROW, &[]),
    );
    assert_eq!(host.take(), [reply(&[0]), reply(&[0])]);
}

#[test]
fn khrn_out_bulk_small_large_and_empty() {
    let (mut server, mut host) = small_setup();
    send(&mut server, &mut host, &mc42().cmd(GLGENTEXTURES, &[3]));
    assert_eq!(host.take(), [reply(&[12]), reply(&[1, 2, 3])]);
    send(&mut server, &mut host, &mc42().cmd(GLGENTEXTURES, &[508]));
    assert_eq!(host.take().len(), 2, "2032 bytes still travel as a message");
    send(&mut server, &mut host, &mc42().cmd(GLGENTEXTURES, &[509]));
    assert_eq!(
        host.take(),
        [reply(&[2036]), Event::BulkToClient(Channel::Khrn, 2036)]
    );
    send(&mut server, &mut host, &mc42().cmd(GLGENTEXTURES, &[0]));
    assert_eq!(host.take(), [reply(&[0])]);
    send(
        &mut server,
        &mut host,
        &mc42().cmd(GLGENTEXTURES, &[-1i32 as u32]),
    );
    assert_eq!(host.take(), [reply(&[0])]);
    send(&mut server, &mut host, &mc42().cmd(GLGETERROR, &[]));
    assert_eq!(host.take(), [reply(&[0x501])]);
}

#[test]
fn khrn_in_bulk_message_bulk_and_null() {
    let (mut server, mut host) = small_setup();
    // NULL and empty payloads: nothing follows, the next message is commands again.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(
            GLTEXSUBIMAGE2D,
            &[TEXTURE_2D, 0, 0, 0, 1, 1, 0x1908, 0x1401, 4, !0],
        ),
    );
    assert!(!server.payload_pending(Channel::Khrn));
    send(
        &mut server,
        &mut host,
        &mc42().cmd(GLDELETETEXTURES, &[0, 0]),
    );
    assert!(!server.payload_pending(Channel::Khrn));
    assert_eq!(host.take(), []);

    // ≤ 2032 bytes: the next message on the same channel is the payload.
    send(&mut server, &mut host, &mc42().cmd(GLGENTEXTURES, &[2]));
    host.take();
    send(
        &mut server,
        &mut host,
        &mc42().cmd(GLDELETETEXTURES, &[2, 8]),
    );
    assert!(server.payload_pending(Channel::Khrn));
    assert!(!server.payload_pending(Channel::Khhn));
    server
        .handle_message(Channel::Khrn, &wire::words_to_bytes(&[1, 2]), &mut host)
        .unwrap();
    assert_eq!(server.stats().textures, 0);
    assert_eq!(host.take(), []);

    // The IBR answer comes after the payload: 32×16 RGBA = 2048 bytes → bulk.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(GLBINDTEXTURE, &[TEXTURE_2D, 9]),
    );
    let tex = |w: u32, h: u32, len: u32| {
        mc42().cmd(
            GLTEXIMAGE2D,
            &[TEXTURE_2D, 0, 0x1908, w, h, 0, 0x1908, 0x1401, 4, len],
        )
    };
    send(&mut server, &mut host, &tex(32, 16, 2048));
    assert_eq!(host.take(), [Event::ExpectBulk(Channel::Khrn, 2048)]);
    server
        .bulk_payload(Channel::Khrn, vec![0x80; 2048], &mut host)
        .unwrap();
    assert_eq!(host.take(), [reply(&[1])]);
    // 127×4 RGBA = 2032 bytes → still a message.
    send(&mut server, &mut host, &tex(127, 4, 2032));
    assert_eq!(host.take(), []);
    server
        .handle_message(Channel::Khrn, &[0x40; 2032], &mut host)
        .unwrap();
    assert_eq!(host.take(), [reply(&[1])]);
    // Same on KHHN: payload and answer stay on KHHN.
    server
        .handle_message(Channel::Khhn, &tex(2, 2, 16).0, &mut host)
        .unwrap();
    server
        .handle_message(Channel::Khhn, &[1; 16], &mut host)
        .unwrap();
    assert_eq!(
        host.take(),
        [Event::Reply(Channel::Khhn, 1u32.to_le_bytes().to_vec())]
    );
    send(&mut server, &mut host, &mc42().cmd(GLGETERROR, &[]));
    assert_eq!(host.take(), [reply(&[0])]);
}

#[test]
fn khrn_swap_posts_khan_unless_single_buffered() {
    let (mut server, mut host) = small_setup();
    let swap = mc42().cmd(EGLINTSWAPBUFFERS, &[SURF, 64, 64, 5, 0, 0]);
    for _ in 0..4 {
        send(&mut server, &mut host, &swap);
        assert_eq!(
            host.take(),
            [
                Event::Present {
                    window: 5,
                    width: 64,
                    height: 64
                },
                Event::Khan {
                    pid: 42,
                    command: 1,
                    sem: 7
                }
            ]
        );
    }
    // A single-buffered surface has no semaphore (sem = ~0): present, no post.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(
            EGLINTCREATESURFACE,
            &[6, 1, 8, 8, 0x9428, !0, !0, !0, 0, 0, 0, 0, !0, 0],
        ),
    );
    assert_eq!(host.take(), [reply(&[12, 8, 8, 0x201])]);
    send(
        &mut server,
        &mut host,
        &Msg::mc(42, 1, CTX, 0x201)
            .cmd(GLCLEAR, &[0x4000])
            .cmd(EGLINTSWAPBUFFERS, &[0x201, 8, 8, 6, 1, 0]),
    );
    assert_eq!(
        host.take(),
        [Event::Present {
            window: 6,
            width: 8,
            height: 8
        }]
    );
    // The pid comes from the make-current record, not from the server's client id.
    send(
        &mut server,
        &mut host,
        &Msg::mc(24, 1, CTX, SURF).cmd(EGLINTSWAPBUFFERS, &[SURF, 64, 64, 5, 0, 0]),
    );
    assert!(host.take().contains(&Event::Khan {
        pid: 24,
        command: 1,
        sem: 7
    }));
    // Unknown surface: logged, nothing presented.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(EGLINTSWAPBUFFERS, &[0x777, 64, 64, 5, 0, 0]),
    );
    assert_eq!(host.take(), []);
    assert_eq!(host.logs.len(), 1);
}

#[test]
fn khrn_surface_limits() {
    let (mut server, mut host) = small_setup();
    for (w, h, buffers) in [(2049, 10, 3), (10, 0, 3), (10, 10, 0), (10, 10, 4)] {
        send(
            &mut server,
            &mut host,
            &mc42().cmd(
                EGLINTCREATESURFACE,
                &[1, buffers, w, h, 0x9428, !0, !0, !0, 0, 0, 0, 0, 1, 0],
            ),
        );
        assert_eq!(host.take(), [reply(&[12, w, h, 0])]);
    }
    send(
        &mut server,
        &mut host,
        &mc42().cmd(
            EGLINTCREATESURFACE,
            &[1, 3, 2048, 2048, 0x9428, !0, !0, !0, 0, 0, 0, 0, 1, 0],
        ),
    );
    assert_eq!(host.take(), [reply(&[12, 2048, 2048, 0x201])]);
    send(
        &mut server,
        &mut host,
        &mc42().cmd(EGLINTDESTROYSURFACE, &[0x201]),
    );
    assert_eq!(host.take(), [reply(&[0])]);
    assert_eq!(server.stats().surfaces, 1);
}

#[test]
fn khrn_out_of_range_draw_sets_gl_error() {
    let (mut server, mut host) = small_setup();
    let m = mc42()
        .cmd(GLINTCACHEGROW, &[])
        .cmd(GLINTATTRIBENABLE, &[1, 0, 1])
        .cmd(GLINTATTRIBPOINTER, &[1, 0, 3, 0x1406, 0, 0, 0x1000])
        // 3 vertices × 12 bytes at offset 40 exceed the 64-byte cache.
        .cmd(GLINTDRAWELEMENTS, &[4, 3, 0, 0, 1, 40, 1])
        .cmd_words(&[!0, 0].repeat(9))
        .cmd(GLGETERROR, &[])
        .cache_data(60, &[0; 8])
        .cmd(GLGETERROR, &[]);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[1]), reply(&[0x502]), reply(&[0x501])]);
    assert_eq!(server.stats().draws, 0);
}

#[test]
fn khrn_draw_elements_with_cached_indices() {
    let (mut server, mut host) = small_setup();
    let positions: Vec<u8> = [[-1f32, -1.], [3., -1.], [-1., 3.]]
        .iter()
        .flatten()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let m = mc42()
        .cmdf(GLCLEARCOLOR, &[0.0, 0.0, 0.0, 1.0])
        .cmd(GLCLEAR, &[0x4000])
        .cmdf(GLINTCOLOR_11, &[1.0, 0.5, 0.0, 1.0])
        .cmd(GLINTCACHEGROW, &[])
        .cache_data(0, &positions)
        .cache_data(32, &[2, 1, 0, 0])
        .cmd(GLINTATTRIBENABLE, &[1, 0, 1])
        .cmd(GLINTATTRIBPOINTER, &[1, 0, 2, 0x1406, 0, 8, 0x1000])
        .cmd(GLINTDRAWELEMENTS, &[4, 3, 0x1401, 32, 1, 0, 1])
        .cmd_words(&[!0, 0].repeat(9))
        .cmd(GLINTFINDMAX, &[3, 0x1401, 32])
        .cmd(GLGETERROR, &[])
        .cmd(EGLINTSWAPBUFFERS, &[SURF, 64, 64, 5, 0, 0]);
    send(&mut server, &mut host, &m);
    let events = host.take();
    assert_eq!(events[..3], [reply(&[1]), reply(&[2]), reply(&[0])]);
    let image = server.surface_image(SURF).unwrap();
    assert_rgb_near(
        pixel(image, 32, 32),
        [255, 128, 0],
        1,
        "triangle covering the surface",
    );
    assert_eq!(server.stats().draws, 1);
}

#[test]
fn khrn_interleaved_texcoords_from_cache() {
    // A 2×2 texture on a full-surface strip whose position and texcoord arrays share one
    // interleaved cache entry (the texcoord offset points inside the position data).
    let (mut server, mut host) = small_setup();
    let texels: [[u8; 4]; 4] = [
        [255, 0, 0, 255],
        [0, 255, 0, 255],
        [0, 0, 255, 255],
        [255, 255, 0, 255],
    ];
    let vertices: Vec<u8> = [
        [-1f32, -1., 0., 0.],
        [1., -1., 1., 0.],
        [-1., 1., 0., 1.],
        [1., 1., 1., 1.],
    ]
    .iter()
    .flatten()
    .flat_map(|f| f.to_le_bytes())
    .collect();
    let m = mc42().cmd(GLBINDTEXTURE, &[TEXTURE_2D, 3]).cmd(
        GLTEXIMAGE2D,
        &[TEXTURE_2D, 0, 0x1908, 2, 2, 0, 0x1908, 0x1401, 4, 16],
    );
    send(&mut server, &mut host, &m);
    server
        .handle_message(Channel::Khrn, &texels.concat(), &mut host)
        .unwrap();
    assert_eq!(host.take(), [reply(&[1])]);
    let mut info = vec![1u32];
    for slot in 0..10 {
        match slot {
            0 => info.extend([48, 1]),
            3 => info.extend([56, 0]),
            _ => info.extend([!0, 0]),
        }
    }
    let m = mc42()
        .cmd(GLTEXPARAMETERI, &[TEXTURE_2D, 0x2801, 0x2600])
        .cmd(GLTEXPARAMETERI, &[TEXTURE_2D, 0x2800, 0x2600])
        .cmd(GLENABLE, &[TEXTURE_2D])
        .cmd(GLINTCACHEGROW, &[])
        .cmd(GLINTCACHEGROW, &[])
        .cmd(GLINTCACHECREATE, &[8])
        .cache_data(48, &vertices)
        .cmd(GLINTATTRIBENABLE, &[1, 0, 1])
        .cmd(GLINTATTRIBPOINTER, &[1, 0, 2, 0x1406, 0, 16, 0x2000])
        .cmd(GLINTATTRIBENABLE, &[1, 3, 1])
        .cmd(GLINTATTRIBPOINTER, &[1, 3, 2, 0x1406, 0, 16, 0x2008])
        .cmd(GLINTDRAWELEMENTS, &[5, 4, 0, 0])
        .cmd_words(&info)
        .cmd(GLGETERROR, &[])
        .cmd(EGLINTSWAPBUFFERS, &[SURF, 64, 64, 5, 0, 0]);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take()[..3], [reply(&[1]), reply(&[1]), reply(&[0])]);
    let image = server.surface_image(SURF).unwrap();
    // Texture row 0 (t = 0) is at the bottom of the window (image row 63).
    assert_eq!(pixel(image, 16, 48), texels[0], "bottom left");
    assert_eq!(pixel(image, 48, 48), texels[1], "bottom right");
    assert_eq!(pixel(image, 16, 16), texels[2], "top left");
    assert_eq!(pixel(image, 48, 16), texels[3], "top right");
}

#[test]
fn khrn_server_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<KhrnServer>();
    assert_send::<KhrnError>();
}

// ----- malformed input --------------------------------------------------------------------

#[test]
fn khrn_malformed_streams_are_errors() {
    let (mut server, mut host) = small_setup();
    let ch = Channel::Khrn;
    assert!(matches!(
        server.bulk_payload(ch, vec![0; 4000], &mut host),
        Err(KhrnError::BulkNotAnnounced { .. })
    ));
    assert!(matches!(
        server.handle_message(ch, &[], &mut host),
        Err(KhrnError::EmptyMessage { .. })
    ));
    assert!(matches!(
        server.handle_message(ch, &[8, 0x40, 0, 0, 1], &mut host),
        Err(KhrnError::Misaligned { .. })
    ));
    // Truncated: the complete commands before it still run (and reply).
    let mut m = mc42().cmd(GLGETERROR, &[]).cmd(GLVIEWPORT, &[0, 0]);
    let err = server.handle_message(ch, &m.0, &mut host).unwrap_err();
    assert!(
        matches!(err, KhrnError::Truncated { id: GLVIEWPORT, .. }),
        "{err}"
    );
    assert_eq!(host.take(), [reply(&[0])]);
    // In-line data longer than the message.
    m = mc42().cmd(GLINTCACHEDATA, &[0, 4000]);
    assert!(server.handle_message(ch, &m.0, &mut host).is_err());
    // A payload must end its message.
    m = mc42().cmd(GLDELETETEXTURES, &[1, 4]).cmd(GLGETERROR, &[]);
    assert!(matches!(
        server.handle_message(ch, &m.0, &mut host),
        Err(KhrnError::TrailingAfterPayload { .. })
    ));
    // …and the payload is still expected; a wrong size is refused.
    assert!(matches!(
        server.handle_message(ch, &[0; 8], &mut host),
        Err(KhrnError::PayloadLength {
            expected: 4,
            got: 8,
            ..
        })
    ));
    // An IBR payload of the wrong size still gets its (failure) answer.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(
            GLTEXIMAGE2D,
            &[TEXTURE_2D, 0, 0x1908, 2, 2, 0, 0x1908, 0x1401, 4, 16],
        ),
    );
    assert!(server.handle_message(ch, &[0; 12], &mut host).is_err());
    assert_eq!(host.take(), [reply(&[0])]);
    // A message while a bulk is pending is refused and the bulk is still awaited.
    send(
        &mut server,
        &mut host,
        &mc42().cmd(
            GLTEXSUBIMAGE2D,
            &[TEXTURE_2D, 0, 0, 0, 64, 64, 0x1908, 0x1401, 4, 16384],
        ),
    );
    assert_eq!(host.take(), [Event::ExpectBulk(ch, 16384)]);
    assert!(matches!(
        server.handle_message(ch, &mc42().cmd(GLGETERROR, &[]).0, &mut host),
        Err(KhrnError::MessageWhileBulkPending { len: 16384, .. })
    ));
    server.bulk_payload(ch, vec![0; 16384], &mut host).unwrap();
    // Absurd payload announcements are refused without asking the host for a bulk.
    assert!(matches!(
        server.handle_message(
            ch,
            &mc42().cmd(GLDELETETEXTURES, &[1, 0x7fff_ffff]).0,
            &mut host
        ),
        Err(KhrnError::PayloadTooLarge { .. })
    ));
    assert!(!server.payload_pending(ch));
    assert_eq!(host.take(), []);
    // Errors render with their command names.
    let text = KhrnError::Truncated {
        id: GLVIEWPORT,
        offset: 44,
    }
    .to_string();
    assert!(text.contains("GLVIEWPORT"), "{text}");
}

#[test]
fn khrn_unknown_command_drops_rest_of_message() {
    let (mut server, mut host) = small_setup();
    let m = mc42()
        .cmd(GLGETERROR, &[])
        .cmd(0x7777, &[1, 2, 3])
        .cmd(GLGETERROR, &[]);
    send(&mut server, &mut host, &m);
    assert_eq!(host.take(), [reply(&[0])]);
    assert_eq!(host.logs.len(), 1);
    assert!(
        host.logs[0].starts_with("khrn: unknown command 0x7777"),
        "{}",
        host.logs[0]
    );
    assert_eq!(server.stats().unknown_commands, 1);
    // The next message is framed normally.
    send(&mut server, &mut host, &mc42().cmd(GLGETERROR, &[]));
    assert_eq!(host.take(), [reply(&[0])]);
}

/// xorshift64*: a small deterministic generator for the malformed-input loops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// An argument word biased towards values that reach deep into the commands.
    fn arg(&mut self) -> u32 {
        const INTERESTING: [u32; 16] = [
            0, 1, 2, 3, 4, 5, 16, 64, CTX, SURF, 0x0de1, 0x1401, 0x1406, 0x1908, 0x4000, !0,
        ];
        match self.below(4) {
            0 => self.next() as u32,
            1 => self.below(256) as u32,
            _ => INTERESTING[self.below(INTERESTING.len())],
        }
    }
}

#[test]
fn khrn_random_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut server, mut host) = small_setup();
    for round in 0..3000 {
        let ch = if rng.below(8) == 0 {
            Channel::Khhn
        } else {
            Channel::Khrn
        };
        let _ = match rng.below(6) {
            // Raw random bytes (any length, any alignment).
            0 => {
                let len = rng.below(96);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                server.handle_message(ch, &bytes, &mut host)
            }
            // A bulk nobody asked for (or one that was asked for).
            1 => {
                let len = rng.below(5000);
                server.bulk_payload(ch, vec![0x5a; len], &mut host)
            }
            // Known commands with random arguments.
            _ => {
                let mut m = mc42();
                for _ in 0..1 + rng.below(6) {
                    let (id, _) = ids::ALL[rng.below(ids::ALL.len())];
                    let args: Vec<u32> = (0..rng.below(20)).map(|_| rng.arg()).collect();
                    m = m.cmd(id, &args);
                }
                if rng.below(3) == 0 {
                    let cut = rng.below(m.len() + 1) & !3;
                    m.0.truncate(cut);
                }
                server.handle_message(ch, &m.0, &mut host)
            }
        };
        host.events.clear();
        if round % 500 == 499 {
            // The server stays usable: a plain request (once any payload is consumed)
            // is answered exactly once.
            server.channels = Default::default();
            send(&mut server, &mut host, &mc42().cmd(GLFINISH, &[]));
            assert_eq!(host.take(), [reply(&[0])]);
        }
    }
    let stats = server.stats();
    assert!(stats.contexts <= MAX_CONTEXTS as u64);
    assert!(stats.surfaces <= MAX_SURFACES as u64);
}

#[test]
fn khrn_truncated_trace_messages_never_panic() {
    // Every prefix of every message of the first frame, fed to a fresh set-up server.
    let (pos, tc) = (quadx(), tex_coords());
    let frame = frame_message(46.0, 31.0, 0.0);
    let caching = mc()
        .cmd(GLINTCACHEGROW, &[])
        .cmd(GLINTCACHECREATE, &[0])
        .cache_data(40, &pos[..16])
        .cache_data(168, &tc[..32])
        .draw_strip(0, 40, 168);
    for msg in [frame, caching] {
        for cut in 0..=msg.len() {
            let mut server = KhrnServer::new(PID);
            let mut host = MockHost::default();
            let setup = Msg::mc(PID, 0, 0, 0).cmd(EGLINTCREATEGLES11, &[0, 0]).cmd(
                EGLINTCREATESURFACE,
                &[WINDOW, 3, 32, 32, 0x9428, !0, !0, !0, 0, 0, 0, 0, 1, 0],
            );
            send(&mut server, &mut host, &setup);
            let _ = server.handle_message(Channel::Khrn, &msg.0[..cut], &mut host);
            // Whatever happened, a well-formed request is still answered exactly once.
            host.events.clear();
            let _ = server.handle_message(Channel::Khrn, &mc().cmd(GLGETERROR, &[]).0, &mut host);
            assert!(host.events.len() <= 1);
        }
    }
}

// ----- GLES 2.0: errors and hostile shaders -------------------------------------------------

/// A server with a GLES 2.0 context and a 32×32 window surface; returns a closure-free
/// helper set: (server, host, make-current message builder).
fn gles2_setup() -> (KhrnServer, MockHost) {
    let mut server = KhrnServer::new(42);
    let mut host = MockHost::default();
    send(
        &mut server,
        &mut host,
        &Msg::mc(42, 0, 0, 0).cmd(EGLINTCREATEGLES20, &[0, 1]).cmd(
            EGLINTCREATESURFACE,
            &[5, 2, 32, 32, 0x9428, !0, !0, !0, 0, 0, 0, 0, 7, 0],
        ),
    );
    assert_eq!(host.take(), [reply(&[CTX]), reply(&[12, 32, 32, SURF])]);
    (server, host)
}

fn mc2_42() -> Msg {
    Msg::mc(42, 2, CTX, SURF)
}

/// Creates a shader of `kind` with `source` (one string, length computed) and compiles it.
fn shader(server: &mut KhrnServer, host: &mut MockHost, kind: u32, source: &str) -> u32 {
    send(server, host, &mc2_42().cmd(GLCREATESHADER_20, &[kind]));
    let events = host.take();
    let [Event::Reply(_, r)] = events.as_slice() else {
        panic!("{events:?}")
    };
    let name = u32::from_le_bytes(r[..4].try_into().unwrap());
    let text = [source.as_bytes(), b"\0"].concat();
    send(
        server,
        host,
        &mc2_42().cmd(GLSHADERSOURCE_20, &[name, 1, text.len() as u32 + 12, 0]),
    );
    for p in [&(text.len() as u32).to_le_bytes()[..], &text] {
        server.handle_message(Channel::Khrn, p, host).unwrap();
    }
    send(server, host, &mc2_42().cmd(GLCOMPILESHADER_20, &[name]));
    name
}

#[test]
fn gles2_compile_errors_are_reported_in_the_status_and_the_log_not_as_gl_errors() {
    let (mut server, mut host) = gles2_setup();
    let bad = shader(
        &mut server,
        &mut host,
        0x8b30,
        "void main() { gl_FragColor = vec3(1.0); }",
    );
    send(
        &mut server,
        &mut host,
        &mc2_42()
            .cmd(GLGETSHADERIV_20, &[bad, 0x8b81])
            .cmd(GLGETSHADERINFOLOG_20, &[bad, 1000])
            .cmd(GLGETERROR, &[]),
    );
    let events = host.take();
    assert_eq!(events[0], reply(&[4, 0]), "COMPILE_STATUS false");
    let Event::Reply(_, log) = &events[3] else {
        panic!("{events:?}")
    };
    let text = String::from_utf8_lossy(log);
    assert!(text.contains("ERROR: 0:1:"), "{text}");
    assert_eq!(events[4], reply(&[0]), "a failed compile is not a GL error");

    // Wrong object kinds and unknown names are GL errors.
    send(
        &mut server,
        &mut host,
        &mc2_42().cmd(GLCREATEPROGRAM_20, &[]),
    );
    let program = host.take().len() as u32; // one reply
    assert_eq!(program, 1);
    for (cmd, args, want) in [
        (GLCOMPILESHADER_20, vec![999], 0x0501), // unknown name: INVALID_VALUE
        (GLCOMPILESHADER_20, vec![2], 0x0502),   // a program: INVALID_OPERATION
        (GLUSEPROGRAM_20, vec![2], 0x0502),      // not linked
        (GLUNIFORM1F_20, vec![0, 0], 0x0502),    // no current program
        (GLCREATESHADER_20, vec![0x1234], 0x0500), // INVALID_ENUM (and name 0)
    ] {
        send(
            &mut server,
            &mut host,
            &mc2_42().cmd(cmd, &args).cmd(GLGETERROR, &[]),
        );
        let events = host.take();
        assert_eq!(
            events.last(),
            Some(&reply(&[want])),
            "{cmd:#x} {args:?}: {events:?}"
        );
    }
}

#[test]
fn gles2_a_shader_that_never_ends_stops_its_draw_and_the_server_keeps_serving() {
    let (mut server, mut host) = gles2_setup();
    let vs = shader(
        &mut server,
        &mut host,
        0x8b31,
        "attribute vec4 vertex; void main() { gl_Position = vertex; }",
    );
    let fs = shader(
        &mut server,
        &mut host,
        0x8b30,
        "precision mediump float; uniform float k; void main() { float x = 0.0; \
         for (int i = 0; i < 1; i += 0) { x += k; } gl_FragColor = vec4(x); }",
    );
    send(
        &mut server,
        &mut host,
        &mc2_42().cmd(GLCREATEPROGRAM_20, &[]),
    );
    let program = 3;
    assert_eq!(host.take(), [reply(&[program])]);
    let quad: Vec<u32> = [
        -1f32, -1., 0., 1., 1., -1., 0., 1., 1., 1., 0., 1., -1., 1., 0., 1.,
    ]
    .iter()
    .map(|f| f.to_bits())
    .collect();
    send(
        &mut server,
        &mut host,
        &mc2_42()
            .cmd(GLATTACHSHADER_20, &[program, vs])
            .cmd(GLATTACHSHADER_20, &[program, fs])
            .cmd(GLLINKPROGRAM_20, &[program])
            .cmd(GLGETPROGRAMIV_20, &[program, 0x8b82])
            .cmd(GLUSEPROGRAM_20, &[program])
            .cmd(GLINTCACHEGROW, &[])
            .cmd(GLINTCACHEDATA, &[[0, 64].as_slice(), &quad].concat())
            .cmd(GLINTATTRIBPOINTER, &[2, 0, 4, 0x1406, 0, 16, 0])
            .cmd(GLINTATTRIBENABLE, &[2, 0, 1]),
    );
    let events = host.take();
    assert_eq!(events[0], reply(&[4, 1]), "links: {events:?}");
    // The draw: the first quad runs out of its steps; the draw stops with a log line.
    let mut cache = [!0u32; 20];
    cache[0] = 0;
    cache[1] = 0;
    let mut args = vec![6, 4, 0, 0, 1];
    args.extend_from_slice(&cache);
    send(
        &mut server,
        &mut host,
        &mc2_42().cmd(GLINTDRAWELEMENTS, &args).cmd(GLGETERROR, &[]),
    );
    assert_eq!(host.take(), [reply(&[0])]);
    assert!(
        host.logs
            .iter()
            .any(|l| l.contains("draw stopped") && l.contains("budget")),
        "{:?}",
        host.logs
    );
    // And it still answers.
    send(&mut server, &mut host, &mc2_42().cmd(GLFINISH, &[]));
    assert_eq!(host.take(), [reply(&[0])]);
}

#[test]
fn gl_state_queries_answer_every_call() {
    let (mut server, mut host) = gles2_setup();
    send(
        &mut server,
        &mut host,
        &mc2_42()
            .cmd(GLVIEWPORT, &[1, 2, 30, 31])
            .cmd(GLGETINTEGERV, &[0x0ba2]) // VIEWPORT
            .cmd(GLGETINTEGERV, &[0x0d33]) // MAX_TEXTURE_SIZE
            .cmd(GLGETINTEGERV, &[0x8869]) // MAX_VERTEX_ATTRIBS
            .cmd(GLENABLE, &[0x0be2]) // BLEND
            .cmd(GLGETBOOLEANV, &[0x0be2])
            .cmdf(GLCLEARCOLOR, &[0.5, 0.25, 0.0, 1.0])
            .cmd(GLGETFLOATV, &[0x0c22]) // COLOR_CLEAR_VALUE
            .cmd(GLGETINTEGERV, &[0xdead])
            .cmd(GLGETERROR, &[])
            .cmd(GLISFRAMEBUFFER, &[7])
            .cmd(GLGETBUFFERPARAMETERIV, &[0x8892, 0x8764]),
    );
    let f = |v: f32| v.to_bits();
    assert_eq!(
        host.take(),
        [
            reply(&[16, 1, 2, 30, 31]),
            reply(&[4, 2048]),
            reply(&[4, 8]),
            Event::Reply(Channel::Khrn, vec![1, 0, 0, 0, 1]),
            reply(&[16, f(0.5), f(0.25), f(0.0), f(1.0)]),
            reply(&[0]),
            reply(&[0x0500]),
            reply(&[0]),
            reply(&[4, 0]),
        ]
    );
    assert_eq!(server.stats().unknown_commands, 0);
}
