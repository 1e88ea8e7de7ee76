//! A recording stand-in for the VideoCore's KHRN service: it decodes every message the client
//! sends and answers like the firmware (contexts 0x100, surfaces 0x200, texture names from 1,
//! cache grows TRUE).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::VecDeque;
use std::sync::Mutex;

use khronos::{Channel, RpcTransport, TransportError};

/// One decoded command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub id: u32,
    pub args: Vec<u32>,
    pub inline: Vec<u8>,
}

/// One item the client put on KHRN.
#[derive(Clone, Debug)]
pub enum Item {
    /// A merged message, decoded.
    Msg { len: usize, cmds: Vec<Cmd> },
    /// A payload sent as a message (≤ 2032 bytes).
    Payload(Vec<u8>),
    /// A bulk transmit.
    Bulk(Vec<u8>),
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
}

/// Argument words after the id, for every command the client may send.
fn arg_count(id: u32) -> usize {
    match id {
        0x4008 => 8,
        0x4001 | 0x4002 => 2,
        0x4000 => 14,
        0x400a => 6,
        0x4004 | 0x4005 => 1,
        0x400c => 2,
        0x6000 => 0,
        0x7007 => 4,
        0x7006 | 0x701a | 0x7016 | 0x7010 | 0x701d => 1,
        0x7027 => 2,
        0x7035 | 0x7030 => 4,
        0x7003 => 2,
        0x701f => 1,
        0x7012 => 2,
        0x7031 | 0x7034 => 10,
        0x7032 | 0x7033 => 3,
        0x7022 | 0x701c | 0x701b | 0x703b => 0,
        0x7117 => 7,
        0x7119 => 3,
        0x7018 => 4,
        0x7037 | 0x7038 => 1,
        0x703a => 2,
        0x103f => 1,
        0x1036 | 0x104d | 0x104c | 0x1037 | 0x1040 => 0,
        0x100f | 0x1043 => 6,
        0x105f | 0x1051 => 3,
        0x104e | 0x1064 => 4,
        // OpenGL ES 2.0, buffers and framebuffers
        0x7001 | 0x7013 | 0x7014 | 0x7008 | 0x710b => 1,
        0x701e | 0x710a | 0x7104 => 1,
        0x7002 | 0x7108 | 0x7102 => 2,
        0x7004 | 0x7005 | 0x700b | 0x708d | 0x7105 | 0x710d => 4,
        0x7011 | 0x7109 | 0x7103 => 2,
        0x710c => 5,
        0x200c | 0x200a | 0x200e | 0x2010 | 0x202c | 0x204a | 0x204b => 1,
        0x200b => 0,
        0x2001 | 0x2011 | 0x2017 | 0x2026 => 2,
        0x2030 => 4,
        0x2035 | 0x203a => 2,
        0x2036 | 0x203b => 3,
        0x2037 | 0x203c => 4,
        0x2038 | 0x203d => 5,
        _ => panic!("client sent unknown command 0x{id:04x}"),
    }
}

/// Decode one merged message. Panics on anything malformed.
pub fn decode(msg: &[u8]) -> Vec<Cmd> {
    assert_eq!(
        msg.len() % 4,
        0,
        "message length {} is not whole words",
        msg.len()
    );
    assert!(
        msg.len() <= 4080,
        "message of {} bytes exceeds the merge buffer",
        msg.len()
    );
    let mut cmds = Vec::new();
    let mut i = 0;
    let words = msg.len() / 4;
    while i < words {
        let id = word(msg, i);
        let n = arg_count(id);
        assert!(i + 1 + n <= words, "command 0x{id:04x} truncated");
        let args: Vec<u32> = (0..n).map(|k| word(msg, i + 1 + k)).collect();
        i += 1 + n;
        let inline_len = match id {
            0x7018 => {
                if word(msg, i) == 1 {
                    84
                } else {
                    4
                }
            }
            0x703a => (args[1] as usize).div_ceil(4) * 4,
            0x1037 | 0x1040 => 64,
            _ => 0,
        };
        let inline = msg[4 * i..4 * i + inline_len].to_vec();
        i += inline_len / 4;
        cmds.push(Cmd { id, args, inline });
    }
    assert_eq!(
        cmds.first().map(|c| c.id),
        Some(0x4008),
        "message does not start with a make-current record"
    );
    cmds
}

#[derive(Default)]
struct State {
    log: Vec<Item>,
    replies: VecDeque<Vec<u8>>,
    bulk_out: VecDeque<Vec<u8>>,
    payloads: VecDeque<usize>,
    next_texture: u32,
    client_id_calls: usize,
    /// GLES 2.0 objects: shader and program names from 1.
    next_object: u32,
    /// Strings of a glShaderSource still to come (each a 4-byte length, then the string).
    shader_strings: usize,
    /// Whether the next shader payload is a length word (else the string).
    shader_length_next: bool,
    /// Location queries whose name is still to come.
    location_queries: usize,
}

/// The uniform and attribute locations the mock hands out, by name (as the firmware numbers
/// hello_triangle2's: attribute `vertex` 0; uniforms in declaration order).
fn location(name: &[u8]) -> u32 {
    match name {
        b"vertex\0" | b"color\0" => 0,
        b"scale\0" => 1,
        b"offset\0" => 2,
        b"tex\0" => 3,
        b"centre\0" => 4,
        _ => u32::MAX,
    }
}

/// The mock VideoCore.
pub struct Mock {
    client_id: u32,
    state: Mutex<State>,
}

fn le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

impl Mock {
    pub fn new(client_id: u32) -> Mock {
        Mock {
            client_id,
            state: Mutex::new(State {
                next_texture: 1,
                next_object: 1,
                ..State::default()
            }),
        }
    }

    /// Everything sent so far.
    pub fn log(&self) -> Vec<Item> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn client_id_calls(&self) -> usize {
        self.state.lock().unwrap().client_id_calls
    }

    fn serve(st: &mut State, cmds: &[Cmd]) {
        for c in cmds {
            let a = &c.args;
            match c.id {
                0x4001 | 0x4002 => st.replies.push_back(le(&[0x100])),
                0x4000 => st.replies.push_back(le(&[12, a[2], a[3], 0x200])),
                0x701f => {
                    let n = a[0];
                    st.replies.push_back(le(&[4 * n]));
                    let names: Vec<u32> = (0..n).map(|k| st.next_texture + k).collect();
                    st.next_texture += n;
                    if 4 * n as usize <= 2032 {
                        st.replies.push_back(le(&names));
                    } else {
                        st.bulk_out.push_back(le(&names));
                    }
                }
                0x7031 | 0x7034 | 0x7012 => {
                    let len = *a.last().unwrap();
                    if len != 0xffff_ffff && len > 0 {
                        st.payloads.push_back(len as usize);
                    }
                    if c.id == 0x7031 {
                        st.replies.push_back(le(&[1]));
                    }
                }
                // glGenBuffers/Framebuffers/Renderbuffers: names from 1, each kind on its own.
                0x701e | 0x710a | 0x7104 => {
                    let n = a[0];
                    st.replies.push_back(le(&[4 * n]));
                    st.replies.push_back(le(&(1..=n).collect::<Vec<u32>>()));
                }
                0x7004 | 0x7005 | 0x7011 | 0x7109 | 0x7103 => {
                    let len = *a.last().unwrap();
                    if len != 0xffff_ffff && len > 0 {
                        st.payloads.push_back(len as usize);
                    }
                }
                0x200c | 0x200b => {
                    st.replies.push_back(le(&[st.next_object]));
                    st.next_object += 1;
                }
                0x2017 | 0x2026 => {
                    st.payloads.push_back(a[1] as usize);
                    st.location_queries += 1;
                }
                0x2030 => {
                    assert_eq!(a[3], 0, "the scenes send no length arrays");
                    st.shader_strings = a[1] as usize;
                    if st.shader_strings > 0 {
                        st.payloads.push_back(4);
                        st.shader_length_next = true;
                    }
                }
                0x710b => st.replies.push_back(le(&[0x8cd5])),
                0x703b => st.replies.push_back(le(&[1])),
                0x7022 | 0x701b | 0x4004 | 0x6000 => st.replies.push_back(le(&[0])),
                _ => {}
            }
        }
    }
}

impl Mock {
    /// What a payload that just arrived makes the mock expect or answer next: a shader
    /// string after its length word, the next length after a string; a location for a name.
    fn after_payload(st: &mut State, data: &[u8]) {
        if st.shader_strings > 0 {
            if st.shader_length_next {
                let len = u32::from_le_bytes(data.try_into().unwrap()) as usize;
                st.payloads.push_front(len);
                st.shader_length_next = false;
            } else {
                st.shader_strings -= 1;
                if st.shader_strings > 0 {
                    st.payloads.push_back(4);
                    st.shader_length_next = true;
                }
            }
        } else if st.location_queries > 0 {
            st.location_queries -= 1;
            st.replies.push_back(le(&[location(data)]));
        }
    }
}

impl RpcTransport for Mock {
    fn send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        assert_eq!(channel, Channel::Khrn);
        let mut st = self.state.lock().unwrap();
        if let Some(len) = st.payloads.pop_front() {
            assert!(len <= 2032, "a {len}-byte payload must be a bulk transfer");
            assert_eq!(
                data.len(),
                len,
                "payload length differs from the announced len"
            );
            st.log.push(Item::Payload(data.to_vec()));
            Mock::after_payload(&mut st, data);
            return Ok(());
        }
        let cmds = decode(data);
        assert!(
            cmds.len() > 1,
            "the client sent a message holding only its make-current record"
        );
        Mock::serve(&mut st, &cmds);
        st.log.push(Item::Msg {
            len: data.len(),
            cmds,
        });
        Ok(())
    }

    fn recv(&self, channel: Channel) -> Result<Vec<u8>, TransportError> {
        self.state
            .lock()
            .unwrap()
            .replies
            .pop_front()
            .ok_or(TransportError::Closed(channel))
    }

    fn bulk_send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        let mut st = self.state.lock().unwrap();
        let len = st
            .payloads
            .pop_front()
            .ok_or(TransportError::Closed(channel))?;
        assert!(
            len > 2032,
            "a {len}-byte payload must be a message, not a bulk transfer"
        );
        assert_eq!(data.len(), len);
        st.log.push(Item::Bulk(data.to_vec()));
        Mock::after_payload(&mut st, data);
        Ok(())
    }

    fn bulk_recv(&self, channel: Channel, len: usize) -> Result<Vec<u8>, TransportError> {
        let data = self
            .state
            .lock()
            .unwrap()
            .bulk_out
            .pop_front()
            .ok_or(TransportError::Closed(channel))?;
        assert_eq!(data.len(), len);
        Ok(data)
    }

    fn client_id(&self, _channel: Channel) -> Result<u32, TransportError> {
        self.state.lock().unwrap().client_id_calls += 1;
        Ok(self.client_id)
    }
}

/// A hello_triangle client against a fresh mock: display, config 7, GLES 1.1 context,
/// 640×480 window surface on element 19, made current.
pub struct Scene {
    pub mock: std::sync::Arc<Mock>,
    pub client: std::sync::Arc<khronos::Client>,
    pub display: khronos::egl::Display,
    pub surface: khronos::egl::Surface,
    pub gl: khronos::gles::Gl,
}

pub const CLIENT_ID: u32 = 13723;

pub fn scene(pid_source: khronos::PidSource) -> Scene {
    scene_of(pid_source, 1)
}

/// As [`scene`], with an OpenGL ES `version` (1 or 2) context.
pub fn scene_of(pid_source: khronos::PidSource, version: u32) -> Scene {
    use khronos::egl;
    let mock = std::sync::Arc::new(Mock::new(CLIENT_ID));
    let client = khronos::Client::new(mock.clone(), pid_source);
    let display = egl::get_display(&client);
    display.initialize().unwrap();
    let configs = display
        .choose_config(&[
            egl::RED_SIZE,
            8,
            egl::GREEN_SIZE,
            8,
            egl::BLUE_SIZE,
            8,
            egl::ALPHA_SIZE,
            8,
            egl::SURFACE_TYPE,
            egl::WINDOW_BIT,
            egl::NONE,
        ])
        .unwrap();
    assert_eq!(configs[0].id(), 7);
    let ctx = display.create_context(&configs[0], version).unwrap();
    let window = egl::NativeWindow {
        element: 19,
        width: 640,
        height: 480,
    };
    let surface = display.create_window_surface(&configs[0], &window).unwrap();
    display
        .make_current(Some(&surface), Some(&surface), Some(&ctx))
        .unwrap();
    let gl = khronos::gles::Gl::new(&client);
    Scene {
        mock,
        client,
        display,
        surface,
        gl,
    }
}
