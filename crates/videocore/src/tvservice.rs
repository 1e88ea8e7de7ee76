//! TVSV/TVNT (the TV/HDMI service) and CECS/CECN (HDMI CEC), emulated.
//!
//! # Wire format
//!
//! A TVSV request is one message: a command word, then — if bit 31
//! ([`defs::HAS_DISPLAY_ID`]) is set — a display id word, then the command's parameter
//! words (all little-endian). Replies go back on TVSV; asynchronous notifications
//! (`[reason, param1, param2]`, 12 bytes) go out on TVNT.
//!
//! `bcm_host_init` always sends `GET_ATTACHED_DEVICES` (`[26]`) and, from its notify
//! thread, `GET_DISPLAY_STATE` (`[23]` or `[0x80000017, 2]`), and blocks until both are
//! answered, so those two replies are byte-exact with what the reference trace shows.
//!
//! Whether a command gets a reply, and its size, follows the client library: commands
//! the client sends with "has reply" get exactly one reply of the size it reads; the
//! fire-and-forget ones (OFF, SHOW_INFO, HDCP_SET_KEY/SRM, SET_SPD,
//! SET_DISPLAY_OPTIONS, TEST_MODE_START/STOP, SET_ATTACHED) get none. Unknown commands
//! and truncated requests get a 4-byte `-1` (the client treats a negative reply as an
//! error and gives up gracefully).
//!
//! | cmd | reply |
//! |---|---|
//! | 0 GET_STATE | 16 bytes: state, width, height, u16 frame_rate, u16 scan_mode |
//! | 1–3 HDMI_ON_* | `0` (and a TVNT `VC_HDMI_HDMI` notification) |
//! | 4 SDTV_ON | `-1` (no composite output) |
//! | 6 / 24 QUERY_SUPPORTED_MODES(_ACTUAL) | 12 bytes: 0 modes, preferred group, mode (no bulk follows) |
//! | 7 QUERY_MODE_SUPPORT | `1` for the current group/mode, else `0` |
//! | 8 QUERY_AUDIO_SUPPORT | `-1` (no audio sink) |
//! | 9 / 10 ENABLE / DISABLE_COPY_PROTECT | `-1` / `0` |
//! | 12 GET_AV_LATENCY | `0` |
//! | 19 DDC_READ | `-1` (so the client does not wait for EDID bulk data) |
//! | 21 SET_PROP | `0` |
//! | 22 GET_PROP | 16 bytes: 0, property, 0, 0 |
//! | 23 GET_DISPLAY_STATE | 52 bytes `TV_DISPLAY_STATE_T` |
//! | 25 GET_DEVICE_ID | 24 bytes: vendor\[4\], monitor name\[14\], 2 pad, serial |
//! | 26 GET_ATTACHED_DEVICES | 20 bytes: count 1, display numbers {2 = HDMI0} |
//!
//! # What is emulated
//!
//! One HDMI display (display id 2, HDMI0) is attached and powered on at the daemon's
//! display size, 60 Hz progressive. It reports CEA group 1 mode 16 whatever the size
//! (as the reference stand-in did: the mode number is informational for these clients),
//! and state `VC_HDMI_HDMI` (8). Power off/on and SET_ATTACHED change the reported state
//! and queue TVNT notifications ([`TvService::take_notification`]). There is no EDID,
//! no mode list, no audio and no HDCP. Other display ids report "unplugged".
//!
//! CEC ([`cec_handle`]): no demo sends CEC commands; the service accepts every message
//! and stays silent.

/// Constants of the TV service protocol (`vc_tvservice_defs.h`, `vc_hdmi.h`).
pub mod defs {
    /// Bit 31 of the command word: a display id word follows.
    pub const HAS_DISPLAY_ID: u32 = 0x8000_0000;

    /// VC_TV_GET_STATE
    pub const GET_STATE: u32 = 0;
    /// VC_TV_HDMI_ON_PREFERRED
    pub const HDMI_ON_PREFERRED: u32 = 1;
    /// VC_TV_HDMI_ON_BEST
    pub const HDMI_ON_BEST: u32 = 2;
    /// VC_TV_HDMI_ON_EXPLICIT
    pub const HDMI_ON_EXPLICIT: u32 = 3;
    /// VC_TV_SDTV_ON
    pub const SDTV_ON: u32 = 4;
    /// VC_TV_OFF
    pub const OFF: u32 = 5;
    /// VC_TV_QUERY_SUPPORTED_MODES
    pub const QUERY_SUPPORTED_MODES: u32 = 6;
    /// VC_TV_QUERY_MODE_SUPPORT
    pub const QUERY_MODE_SUPPORT: u32 = 7;
    /// VC_TV_QUERY_AUDIO_SUPPORT
    pub const QUERY_AUDIO_SUPPORT: u32 = 8;
    /// VC_TV_ENABLE_COPY_PROTECT
    pub const ENABLE_COPY_PROTECT: u32 = 9;
    /// VC_TV_DISABLE_COPY_PROTECT
    pub const DISABLE_COPY_PROTECT: u32 = 10;
    /// VC_TV_SHOW_INFO
    pub const SHOW_INFO: u32 = 11;
    /// VC_TV_GET_AV_LATENCY
    pub const GET_AV_LATENCY: u32 = 12;
    /// VC_TV_HDCP_SET_KEY
    pub const HDCP_SET_KEY: u32 = 13;
    /// VC_TV_HDCP_SET_SRM
    pub const HDCP_SET_SRM: u32 = 14;
    /// VC_TV_SET_SPD
    pub const SET_SPD: u32 = 15;
    /// VC_TV_SET_DISPLAY_OPTIONS
    pub const SET_DISPLAY_OPTIONS: u32 = 16;
    /// VC_TV_TEST_MODE_START
    pub const TEST_MODE_START: u32 = 17;
    /// VC_TV_TEST_MODE_STOP
    pub const TEST_MODE_STOP: u32 = 18;
    /// VC_TV_DDC_READ
    pub const DDC_READ: u32 = 19;
    /// VC_TV_SET_ATTACHED
    pub const SET_ATTACHED: u32 = 20;
    /// VC_TV_SET_PROP
    pub const SET_PROP: u32 = 21;
    /// VC_TV_GET_PROP
    pub const GET_PROP: u32 = 22;
    /// VC_TV_GET_DISPLAY_STATE
    pub const GET_DISPLAY_STATE: u32 = 23;
    /// VC_TV_QUERY_SUPPORTED_MODES_ACTUAL
    pub const QUERY_SUPPORTED_MODES_ACTUAL: u32 = 24;
    /// VC_TV_GET_DEVICE_ID
    pub const GET_DEVICE_ID: u32 = 25;
    /// VC_TV_GET_ATTACHED_DEVICES
    pub const GET_ATTACHED_DEVICES: u32 = 26;

    /// VC_HDMI_UNPLUGGED (state bit 0)
    pub const VC_HDMI_UNPLUGGED: u32 = 1 << 0;
    /// VC_HDMI_ATTACHED (state bit 1): plugged in, output off
    pub const VC_HDMI_ATTACHED: u32 = 1 << 1;
    /// VC_HDMI_DVI (state bit 2)
    pub const VC_HDMI_DVI: u32 = 1 << 2;
    /// VC_HDMI_HDMI (state bit 3): output on in HDMI mode
    pub const VC_HDMI_HDMI: u32 = 1 << 3;

    /// Display id of the first HDMI port.
    pub const DISPLAY_HDMI0: u32 = 2;
    /// HDMI_RES_GROUP_CEA
    pub const GROUP_CEA: u32 = 1;

    /// Size of `TV_DISPLAY_STATE_T`: u32 state + 48-byte HDMI state.
    pub const DISPLAY_STATE_SIZE: usize = 52;
    /// Size of `TV_ATTACHED_DEVICES_T`: i32 count + u8 display_number\[16\].
    pub const ATTACHED_DEVICES_SIZE: usize = 20;
    /// Size of `TV_GET_STATE_RESP_T`.
    pub const GET_STATE_SIZE: usize = 16;
    /// Size of `TV_QUERY_SUPPORTED_MODES_RESP_T`.
    pub const SUPPORTED_MODES_RESP_SIZE: usize = 12;
    /// Size of `TV_GET_PROP_PARAM_T`.
    pub const GET_PROP_SIZE: usize = 16;
    /// Size of `TV_DEVICE_ID_T`.
    pub const DEVICE_ID_SIZE: usize = 24;
    /// Size of a TVNT notification.
    pub const NOTIFY_SIZE: usize = 12;
}

use std::collections::VecDeque;

use defs::*;

/// Most TVNT notifications kept before the oldest are dropped.
const MAX_PENDING_NOTIFICATIONS: usize = 16;

/// The TVSV engine (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct TvService {
    width: u32,
    height: u32,
    group: u32,
    mode: u32,
    attached: bool,
    powered: bool,
    notifications: VecDeque<[u32; 3]>,
}

fn word(buf: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let b = buf.get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn status(v: i32) -> Option<Vec<u8>> {
    Some(v.to_le_bytes().to_vec())
}

impl TvService {
    /// An HDMI display of `width`×`height` at 60 Hz, attached and powered on.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            group: GROUP_CEA,
            mode: 16,
            attached: true,
            powered: true,
            notifications: VecDeque::new(),
        }
    }

    /// Reports `group`/`mode` instead of CEA mode 16.
    pub fn with_mode(mut self, group: u32, mode: u32) -> Self {
        self.group = group;
        self.mode = mode;
        self
    }

    /// The HDMI state bits currently reported.
    pub fn hdmi_state(&self) -> u32 {
        match (self.attached, self.powered) {
            (false, _) => VC_HDMI_UNPLUGGED,
            (true, false) => VC_HDMI_ATTACHED,
            (true, true) => VC_HDMI_HDMI,
        }
    }

    /// Takes the next pending TVNT notification (12 bytes: reason, param1, param2).
    pub fn take_notification(&mut self) -> Option<Vec<u8>> {
        self.notifications.pop_front().map(|n| words_to_bytes(&n))
    }

    fn notify(&mut self, reason: u32, p1: u32, p2: u32) {
        if self.notifications.len() >= MAX_PENDING_NOTIFICATIONS {
            self.notifications.pop_front();
        }
        self.notifications.push_back([reason, p1, p2]);
    }

    fn display_state(&self, display_id: u32) -> Vec<u8> {
        let on = display_id == DISPLAY_HDMI0 && self.attached && self.powered;
        let state = if display_id == DISPLAY_HDMI0 {
            self.hdmi_state()
        } else {
            VC_HDMI_UNPLUGGED
        };
        let mut w = [0u32; DISPLAY_STATE_SIZE / 4];
        w[0] = state; // TV_DISPLAY_STATE_T.state
        w[1] = state; // hdmi.state
        if on {
            w[2] = self.width;
            w[3] = self.height;
            w[4] = 60; // u16 frame_rate = 60, u16 scan_mode = 0 (progressive)
            w[5] = self.group;
            w[6] = self.mode;
            // w[7]: u16 pixel_rep, u16 aspect_ratio; w[8..12]: display options;
            // w[12]: u16 pixel_encoding, u16 format_3d — all zero.
        }
        words_to_bytes(&w)
    }

    fn get_state(&self) -> Vec<u8> {
        let on = self.attached && self.powered;
        let (w, h, rate) = if on {
            (self.width, self.height, 60)
        } else {
            (0, 0, 0)
        };
        words_to_bytes(&[self.hdmi_state(), w, h, rate])
    }

    fn power_on(&mut self, display_id: u32) -> Option<Vec<u8>> {
        if display_id != DISPLAY_HDMI0 || !self.attached {
            return status(-1);
        }
        self.powered = true;
        self.notify(VC_HDMI_HDMI, self.group, self.mode);
        status(0)
    }

    /// Handles one TVSV request; `None` means the command gets no reply.
    pub fn handle(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        let Some(cmd_word) = word(request, 0) else {
            return status(-1);
        };
        let (display_id, first_param) = if cmd_word & HAS_DISPLAY_ID != 0 {
            match word(request, 1) {
                Some(id) => (id, 2),
                // The display id is missing: still answer (or not) per the command.
                None => (u32::MAX, 2),
            }
        } else {
            (DISPLAY_HDMI0, 1)
        };
        let param = |i: usize| word(request, first_param + i);
        let cmd = cmd_word & !HAS_DISPLAY_ID;
        tracing::trace!(cmd, display_id, len = request.len(), "TVSV request");
        match cmd {
            GET_STATE => Some(self.get_state()),
            HDMI_ON_PREFERRED | HDMI_ON_BEST | HDMI_ON_EXPLICIT => self.power_on(display_id),
            SDTV_ON => status(-1),
            OFF => {
                if display_id == DISPLAY_HDMI0 && self.powered {
                    self.powered = false;
                    if self.attached {
                        self.notify(VC_HDMI_ATTACHED, 0, 0);
                    }
                }
                None
            }
            QUERY_SUPPORTED_MODES | QUERY_SUPPORTED_MODES_ACTUAL => {
                Some(words_to_bytes(&[0, self.group, self.mode]))
            }
            QUERY_MODE_SUPPORT => match (param(0), param(1)) {
                (Some(g), Some(m)) => status(i32::from(g == self.group && m == self.mode)),
                _ => status(-1),
            },
            QUERY_AUDIO_SUPPORT | ENABLE_COPY_PROTECT | DDC_READ => status(-1),
            DISABLE_COPY_PROTECT | GET_AV_LATENCY | SET_PROP => status(0),
            SHOW_INFO | HDCP_SET_KEY | HDCP_SET_SRM | SET_SPD | SET_DISPLAY_OPTIONS
            | TEST_MODE_START | TEST_MODE_STOP => None,
            SET_ATTACHED => {
                if display_id == DISPLAY_HDMI0 {
                    let attached = param(0).unwrap_or(0) != 0;
                    if attached != self.attached {
                        self.attached = attached;
                        let reason = if attached {
                            if self.powered {
                                VC_HDMI_HDMI
                            } else {
                                VC_HDMI_ATTACHED
                            }
                        } else {
                            VC_HDMI_UNPLUGGED
                        };
                        self.notify(reason, 0, 0);
                    }
                }
                None
            }
            GET_PROP => Some(words_to_bytes(&[0, param(0).unwrap_or(0), 0, 0])),
            GET_DISPLAY_STATE => Some(self.display_state(display_id)),
            GET_DEVICE_ID => {
                let mut out = Vec::with_capacity(DEVICE_ID_SIZE);
                out.extend_from_slice(b"VCQ\0");
                let mut name = [0u8; 14];
                name[..13].copy_from_slice(b"vchiq display");
                out.extend_from_slice(&name);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&1u32.to_le_bytes());
                Some(out)
            }
            GET_ATTACHED_DEVICES => {
                let mut out = vec![0u8; ATTACHED_DEVICES_SIZE];
                if self.attached {
                    out[..4].copy_from_slice(&1i32.to_le_bytes());
                    out[4] = DISPLAY_HDMI0 as u8;
                }
                Some(out)
            }
            _ => status(-1),
        }
    }
}

/// Handles one CECS request. No CEC bus is emulated and no client in scope sends CEC
/// commands, so every message is accepted silently (`None`).
pub fn cec_handle(request: &[u8]) -> Option<Vec<u8>> {
    tracing::trace!(len = request.len(), "CECS request ignored");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(b: &[u8]) -> Vec<u32> {
        assert_eq!(b.len() % 4, 0);
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn trace_get_attached_devices() {
        let mut tv = TvService::new(640, 480);
        let r = tv.handle(&[0x1a, 0, 0, 0]).expect("reply");
        assert_eq!(r.len(), 20);
        assert_eq!(
            r,
            [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn trace_get_display_state_with_id() {
        let mut tv = TvService::new(640, 480);
        let req = words_to_bytes(&[0x8000_0017, 2]);
        let r = tv.handle(&req).expect("reply");
        assert_eq!(r.len(), 52);
        assert_eq!(
            words(&r),
            [8, 8, 0x280, 0x1e0, 0x3c, 1, 0x10, 0, 0, 0, 0, 0, 0]
        );
        // The race variant without a display id gives the same answer.
        assert_eq!(tv.handle(&23u32.to_le_bytes()), Some(r));
    }

    #[test]
    fn display_state_other_display_unplugged() {
        let mut tv = TvService::new(1920, 1080);
        let r = tv
            .handle(&words_to_bytes(&[0x8000_0017, 0]))
            .expect("reply");
        assert_eq!(words(&r), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn get_state_16_bytes() {
        let mut tv = TvService::new(1920, 1080);
        let r = tv.handle(&[0, 0, 0, 0]).expect("reply");
        assert_eq!(words(&r), [8, 1920, 1080, 60]);
    }

    #[test]
    fn power_cycle_and_notifications() {
        let mut tv = TvService::new(1280, 720);
        assert_eq!(tv.take_notification(), None);
        assert_eq!(tv.handle(&OFF.to_le_bytes()), None);
        assert_eq!(tv.hdmi_state(), VC_HDMI_ATTACHED);
        assert_eq!(
            tv.take_notification().map(|n| words(&n)),
            Some(vec![VC_HDMI_ATTACHED, 0, 0])
        );
        let st = tv.handle(&23u32.to_le_bytes()).expect("reply");
        assert_eq!(words(&st)[..4], [2, 2, 0, 0]);
        let r = tv.handle(&words_to_bytes(&[HDMI_ON_PREFERRED, 0]));
        assert_eq!(r, Some(vec![0, 0, 0, 0]));
        assert_eq!(
            tv.take_notification().map(|n| words(&n)),
            Some(vec![VC_HDMI_HDMI, 1, 16])
        );
        let st = tv.handle(&23u32.to_le_bytes()).expect("reply");
        assert_eq!(words(&st)[..4], [8, 8, 1280, 720]);
        // Unplug: no reply, state unplugged, attached list empty.
        assert_eq!(tv.handle(&words_to_bytes(&[SET_ATTACHED, 0])), None);
        assert_eq!(tv.hdmi_state(), VC_HDMI_UNPLUGGED);
        let a = tv.handle(&26u32.to_le_bytes()).expect("reply");
        assert_eq!(a, vec![0; 20]);
        assert_eq!(tv.handle(&HDMI_ON_BEST.to_le_bytes()), Some(vec![0xff; 4]));
    }

    #[test]
    fn reply_sizes_per_command() {
        let mut tv = TvService::new(1920, 1080).with_mode(1, 16);
        let expect: &[(u32, Option<usize>)] = &[
            (GET_STATE, Some(16)),
            (HDMI_ON_PREFERRED, Some(4)),
            (HDMI_ON_BEST, Some(4)),
            (HDMI_ON_EXPLICIT, Some(4)),
            (SDTV_ON, Some(4)),
            (OFF, None),
            (QUERY_SUPPORTED_MODES, Some(12)),
            (QUERY_MODE_SUPPORT, Some(4)),
            (QUERY_AUDIO_SUPPORT, Some(4)),
            (ENABLE_COPY_PROTECT, Some(4)),
            (DISABLE_COPY_PROTECT, Some(4)),
            (SHOW_INFO, None),
            (GET_AV_LATENCY, Some(4)),
            (HDCP_SET_KEY, None),
            (HDCP_SET_SRM, None),
            (SET_SPD, None),
            (SET_DISPLAY_OPTIONS, None),
            (TEST_MODE_START, None),
            (TEST_MODE_STOP, None),
            (DDC_READ, Some(4)),
            (SET_ATTACHED, None),
            (SET_PROP, Some(4)),
            (GET_PROP, Some(16)),
            (GET_DISPLAY_STATE, Some(52)),
            (QUERY_SUPPORTED_MODES_ACTUAL, Some(12)),
            (GET_DEVICE_ID, Some(24)),
            (GET_ATTACHED_DEVICES, Some(20)),
            (27, Some(4)),
            (0x7fff_ffff, Some(4)),
        ];
        for &(cmd, size) in expect {
            let req = words_to_bytes(&[cmd | HAS_DISPLAY_ID, 2, 1, 16, 0, 0]);
            assert_eq!(tv.handle(&req).map(|r| r.len()), size, "cmd {cmd}");
        }
    }

    #[test]
    fn mode_support_and_supported_modes() {
        let mut tv = TvService::new(1920, 1080);
        let yes = tv.handle(&words_to_bytes(&[QUERY_MODE_SUPPORT, 1, 16]));
        assert_eq!(yes, Some(1i32.to_le_bytes().to_vec()));
        let no = tv.handle(&words_to_bytes(&[QUERY_MODE_SUPPORT, 2, 82]));
        assert_eq!(no, Some(0i32.to_le_bytes().to_vec()));
        let short = tv.handle(&words_to_bytes(&[QUERY_MODE_SUPPORT, 1]));
        assert_eq!(short, Some((-1i32).to_le_bytes().to_vec()));
        let m = tv
            .handle(&words_to_bytes(&[QUERY_SUPPORTED_MODES, 1]))
            .expect("reply");
        assert_eq!(words(&m), [0, 1, 16]);
    }

    #[test]
    fn truncated_requests_get_error() {
        let mut tv = TvService::new(640, 480);
        assert_eq!(tv.handle(&[]), Some(vec![0xff; 4]));
        assert_eq!(tv.handle(&[0x1a, 0]), Some(vec![0xff; 4]));
        // Display id flag without the id: state of "no such display".
        let r = tv.handle(&0x8000_0017u32.to_le_bytes()).expect("reply");
        assert_eq!(words(&r)[0], VC_HDMI_UNPLUGGED);
    }

    #[test]
    fn cec_is_silent() {
        assert_eq!(cec_handle(&[]), None);
        assert_eq!(cec_handle(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn random_requests_never_panic() {
        let mut tv = TvService::new(1920, 1080);
        let mut rng = 0xdead_beef_cafe_f00du64;
        for _ in 0..5000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 40) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|i| (rng.rotate_left(i as u32 * 8) & 0xff) as u8)
                .collect();
            if len >= 4 && rng & 1 == 0 {
                // Make the command word plausible half of the time.
                let cmd = ((rng >> 8) % 30) as u32 | (((rng >> 16) & 1) as u32) << 31;
                buf[..4].copy_from_slice(&cmd.to_le_bytes());
            }
            if let Some(r) = tv.handle(&buf) {
                assert!(!r.is_empty() && r.len() <= 52);
            }
            while tv.take_notification().is_some() {}
            assert!(cec_handle(&buf).is_none());
        }
    }
}
