//! GCMD: the general command service behind `vcgencmd`.
//!
//! # Wire format
//!
//! Service fourcc `GCMD` (0x47434d44), VCHI, version 1/1, one request in flight.
//!
//! * **Request**: one message holding an ASCII command line and its terminating NUL.
//!   `vcgencmd` joins its arguments with single spaces and appends a trailing space
//!   (`"measure_temp \0"`); `bcm_host_init` sends `"set_vll_dir /sd/vlls\0"`. Bytes after
//!   the first NUL are ignored; a missing NUL is tolerated.
//! * **Response**: one message: an `i32` status (little-endian, always 0 here, as the
//!   client ignores it) followed by the reply text **and its NUL**. The text is cut to
//!   [`MAX_REPLY_TEXT`] bytes so the message fits VCHIQ's 4088-byte limit.
//!
//! # Commands
//!
//! The command line is split on whitespace; the first word selects the command. See
//! [`COMMANDS`] for the list (also what `vcgencmd commands` prints). Output formats follow
//! the real firmware (`temp=42.8'C`, `frequency(48)=1200000000`, `volt=1.2000V`,
//! `arm=948M`, …). Errors use the current firmware's texts:
//!
//! * unknown command: `error=2 error_msg="Command not registered"`. Old firmware said
//!   `error=1`; the current firmware (and this engine) uses 2. `vcgencmd` only prints its
//!   extra "Use 'vcgencmd commands'" hint for the old `error=1` text.
//! * missing or invalid arguments: `error=2 error_msg="Invalid arguments"`.
//!
//! # What is emulated
//!
//! Everything: there is no sensor, PLL or OTP. Values come from [`BoardInfo`] (a
//! Pi 3-class board by default). The temperature is a slow, deterministic function of
//! the emulated uptime that stays within 40–50 °C ([`emulated_temp_decidegrees`]);
//! clocks are the configured frequencies, with the current firmware's clock ids; no
//! throttling ever happens; no video codec is enabled (the software VideoCore has none).
//! `version` says plainly that this is the vchiq software VideoCore.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::vclog::VcLog;

/// Longest reply text (without the NUL): 4088-byte VCHIQ message − 4-byte status − NUL.
pub const MAX_REPLY_TEXT: usize = 4083;

/// Reply to a command the engine does not implement (current firmware's wording).
pub const ERR_NOT_REGISTERED: &str = "error=2 error_msg=\"Command not registered\"";
/// Reply to a command with missing or unusable arguments.
pub const ERR_INVALID_ARGS: &str = "error=2 error_msg=\"Invalid arguments\"";

/// The commands this engine implements, in the order `vcgencmd commands` lists them.
pub const COMMANDS: &[&str] = &[
    "vcos",
    "version",
    "commands",
    "set_vll_dir",
    "set_backlight",
    "set_logging",
    "get_lcd_info",
    "cache_flush",
    "otp_dump",
    "codec_enabled",
    "get_camera",
    "get_mem",
    "measure_clock",
    "measure_volts",
    "get_throttled",
    "measure_temp",
    "get_config",
    "display_power",
    "dispmanx_list",
];

/// Fixed build stamp of the emulated firmware (first line of `version`).
const BUILD_STAMP: &str = "Jan  1 2025 00:00:00";

/// Firmware clock names and ids as current firmware prints them in
/// `frequency(<id>)=<hz>`. Ids of pre-2020 firmware were 3 lower for arm (45), isp (42),
/// v3d (43) and emmc (47); emmc 50 is inferred from that shift.
const CLOCKS: &[(&str, u32)] = &[
    ("arm", 48),
    ("core", 1),
    ("h264", 28),
    ("isp", 45),
    ("v3d", 46),
    ("uart", 22),
    ("pwm", 25),
    ("emmc", 50),
    ("pixel", 29),
    ("vec", 10),
    ("hdmi", 9),
    ("dpi", 4),
];

/// VideoCore log categories reported by `vcos log status` (emulated: the software
/// VideoCore's own subsystems).
const LOG_CATEGORIES: &[&str] = &[
    "vchiq",
    "gencmd",
    "dispmanx",
    "tvservice",
    "cecservice",
    "khrn",
    "egl",
    "gles",
];

/// vcos log levels, in increasing verbosity.
const LOG_LEVELS: &[&str] = &["uninit", "never", "error", "warn", "info", "trace"];

/// Static description of the emulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardInfo {
    /// Display size in pixels (width, height).
    pub display: (u32, u32),
    /// Memory given to the ARM, MiB.
    pub arm_mem_mb: u32,
    /// Memory given to the GPU, MiB.
    pub gpu_mem_mb: u32,
    /// Total SDRAM, MiB.
    pub total_mem_mb: u32,
    /// ARM clock, MHz.
    pub arm_freq_mhz: u32,
    /// VPU core clock, MHz.
    pub core_freq_mhz: u32,
    /// V3D, H264 and ISP clocks, MHz.
    pub gpu_freq_mhz: u32,
    /// SDRAM clock, MHz.
    pub sdram_freq_mhz: u32,
    /// Core voltage in 100 µV units (12000 = 1.2000 V).
    pub core_volt_100uv: u32,
    /// Board revision code (as in `/proc/cpuinfo`, OTP row 30).
    pub revision: u32,
    /// Board serial number (OTP row 28).
    pub serial: u32,
}

impl Default for BoardInfo {
    /// An emulated Pi 3-class board (BCM2837, 1 GiB, 1200 MHz) driving a 1080p display.
    fn default() -> Self {
        Self {
            display: (1920, 1080),
            arm_mem_mb: 948,
            gpu_mem_mb: 76,
            total_mem_mb: 1024,
            arm_freq_mhz: 1200,
            core_freq_mhz: 400,
            gpu_freq_mhz: 300,
            sdram_freq_mhz: 450,
            core_volt_100uv: 12000,
            revision: 0x00a0_2082,
            serial: 0x5c0f_7a11,
        }
    }
}

/// Produces the text of `dispmanx_list` (supplied by whoever owns the display).
pub type DispmanxLister = Arc<dyn Fn() -> String + Send + Sync>;

/// The GCMD engine (see the [module docs](self)).
pub struct GenCmd {
    board: BoardInfo,
    log: VcLog,
    log_levels: Vec<&'static str>,
    display_power: bool,
    dispmanx_list: Option<DispmanxLister>,
}

impl std::fmt::Debug for GenCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenCmd")
            .field("board", &self.board)
            .field("display_power", &self.display_power)
            .finish_non_exhaustive()
    }
}

/// Emulated SoC temperature in tenths of a degree Celsius after `uptime_ms`.
///
/// Starts at 42.0 °C and warms by 0.1 °C every 30 s up to 48.0 °C (after 30 minutes),
/// then wobbles between 47.8 and 48.3 °C by 0.1 °C a minute. Always within 40–50 °C and
/// constant for 30 s at a time, so repeated `measure_temp` calls give the same answer.
pub fn emulated_temp_decidegrees(uptime_ms: u64) -> u32 {
    let step = uptime_ms / 30_000;
    if step < 60 {
        // 0..60, so the cast is lossless.
        420 + step as u32
    } else {
        let phase = ((step - 60) / 2 + 2) % 10;
        // Triangle wave 0,1,2,3,4,5,4,3,2,1 (phase < 10, lossless).
        let tri = if phase <= 5 { phase } else { 10 - phase } as u32;
        478 + tri
    }
}

impl GenCmd {
    /// Creates the engine for `board`, logging to `log` (a shared [`VcLog`] handle).
    pub fn new(board: BoardInfo, log: VcLog) -> Self {
        Self {
            board,
            log,
            log_levels: vec!["warn"; LOG_CATEGORIES.len()],
            display_power: true,
            dispmanx_list: None,
        }
    }

    /// The board being emulated.
    pub fn board(&self) -> &BoardInfo {
        &self.board
    }

    /// Installs the source of the `dispmanx_list` text (one line per element).
    pub fn set_dispmanx_lister(&mut self, lister: DispmanxLister) {
        self.dispmanx_list = Some(lister);
    }

    /// Handles one GCMD request message and returns the response message:
    /// `i32` status 0 (LE), reply text, NUL.
    pub fn handle(&mut self, request: &[u8]) -> Vec<u8> {
        let end = request
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(request.len());
        let line = String::from_utf8_lossy(&request[..end]);
        let mut text = self.execute(&line);
        truncate_at_char(&mut text, MAX_REPLY_TEXT);
        let mut out = Vec::with_capacity(4 + text.len() + 1);
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.push(0);
        out
    }

    /// Executes one command line and returns the reply text (no NUL, not truncated).
    pub fn execute(&mut self, command_line: &str) -> String {
        let words: Vec<&str> = command_line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return ERR_NOT_REGISTERED.to_string();
        };
        match cmd {
            "vcos" => self.vcos(args),
            "version" => self.version(),
            "commands" => format!("commands=\"{}\"", COMMANDS.join(", ")),
            "set_vll_dir" | "set_backlight" | "set_logging" | "cache_flush" => String::new(),
            "get_lcd_info" => {
                let (w, h) = self.board.display;
                format!("{w} {h} 24")
            }
            "otp_dump" => self.otp_dump(),
            "codec_enabled" => match args.first() {
                Some(codec) => format!("{codec}=disabled"),
                None => ERR_INVALID_ARGS.to_string(),
            },
            "get_camera" => "supported=0 detected=0".to_string(),
            "get_mem" => self.get_mem(args),
            "measure_clock" => self.measure_clock(args),
            "measure_volts" => self.measure_volts(args),
            "get_throttled" => "throttled=0x0".to_string(),
            "measure_temp" => {
                let t = emulated_temp_decidegrees(self.log.uptime_ms());
                format!("temp={}.{}'C", t / 10, t % 10)
            }
            "get_config" => self.get_config(args),
            "display_power" => self.display_power_cmd(args),
            "dispmanx_list" => self.dispmanx_list.as_ref().map(|f| f()).unwrap_or_default(),
            other => {
                let mut name = other.to_string();
                truncate_at_char(&mut name, 64);
                self.log
                    .log(format!("gencmd: command not registered: '{name}'"));
                ERR_NOT_REGISTERED.to_string()
            }
        }
    }

    fn version(&self) -> String {
        format!(
            "{BUILD_STAMP} \nCopyright (c) 2025 the vchiq project (software VideoCore, emulated firmware)\n\
             version vchiq-videocore-{} (software VideoCore) (release)",
            env!("CARGO_PKG_VERSION")
        )
    }

    fn vcos(&mut self, args: &[&str]) -> String {
        match args {
            ["version", ..] => format!(
                "{BUILD_STAMP}\nCopyright (c) 2025 the vchiq project (software VideoCore)\n\
                 version vchiq-videocore-{}\nhost vchiq",
                env!("CARGO_PKG_VERSION")
            ),
            ["log", "status"] => {
                let width = LOG_CATEGORIES.iter().map(|c| c.len()).max().unwrap_or(0);
                let mut out = String::new();
                for (i, (cat, level)) in LOG_CATEGORIES.iter().zip(&self.log_levels).enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    let _ = write!(out, "{cat:<width$} - {level}");
                }
                out
            }
            ["log", "status", cat, ..] => match category_index(cat) {
                Some(i) => format!("{} - {}", LOG_CATEGORIES[i], self.log_levels[i]),
                None => format!("Unrecognized logging category: '{cat}'"),
            },
            ["log", "set", cat, level, ..] => {
                let Some(i) = category_index(cat) else {
                    return format!("Unrecognized logging category: '{cat}'");
                };
                let Some(lvl) = LOG_LEVELS.iter().find(|l| **l == *level) else {
                    return format!("Unrecognized logging level: '{level}'");
                };
                self.log_levels[i] = *lvl;
                format!("Category {} level set to {lvl}", LOG_CATEGORIES[i])
            }
            ["log", ..] => "Usage: log status [category] | log set category level".to_string(),
            _ => "Usage: vcos version | vcos log status [category] | vcos log set category level"
                .to_string(),
        }
    }

    fn otp_dump(&self) -> String {
        let mut out = String::new();
        for row in 8..=64u32 {
            let value = match row {
                28 => self.board.serial,
                29 => !self.board.serial,
                30 => self.board.revision,
                _ => 0,
            };
            if row > 8 {
                out.push('\n');
            }
            let _ = write!(out, "{row:02}:{value:08x}");
        }
        out
    }

    fn get_mem(&self, args: &[&str]) -> String {
        match args.first() {
            Some(&"arm") => format!("arm={}M", self.board.arm_mem_mb),
            Some(&"gpu") => format!("gpu={}M", self.board.gpu_mem_mb),
            _ => ERR_INVALID_ARGS.to_string(),
        }
    }

    fn pixel_clock_hz(&self) -> u64 {
        match self.board.display {
            (1920, 1080) => 148_500_000,
            (1280, 720) => 74_250_000,
            (640, 480) => 25_175_000,
            // Approximate: active area plus ~25 % blanking at 60 Hz.
            (w, h) => u64::from(w) * u64::from(h) * 60 * 5 / 4,
        }
    }

    fn measure_clock(&self, args: &[&str]) -> String {
        let Some(name) = args.first() else {
            return ERR_INVALID_ARGS.to_string();
        };
        let Some(&(_, id)) = CLOCKS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            return "frequency(0)=0".to_string();
        };
        let mhz = |m: u32| u64::from(m) * 1_000_000;
        let b = &self.board;
        let hz = match id {
            48 => mhz(b.arm_freq_mhz),
            1 => mhz(b.core_freq_mhz),
            28 | 45 | 46 => mhz(b.gpu_freq_mhz),
            22 => 48_000_000,
            50 => 250_000_000,
            29 => self.pixel_clock_hz(),
            9 => 163_683_000,
            _ => 0, // pwm, vec, dpi: not running
        };
        format!("frequency({id})={hz}")
    }

    fn measure_volts(&self, args: &[&str]) -> String {
        let v = match args.first().copied().unwrap_or("core") {
            "core" => self.board.core_volt_100uv,
            "sdram_c" | "sdram_i" => 12000,
            "sdram_p" => 12250,
            _ => return ERR_INVALID_ARGS.to_string(),
        };
        format!("volt={}.{:04}V", v / 10_000, v % 10_000)
    }

    fn config_ints(&self) -> Vec<(&'static str, u32)> {
        let b = &self.board;
        // Sorted by name, as the firmware prints them.
        vec![
            ("arm_freq", b.arm_freq_mhz),
            ("core_freq", b.core_freq_mhz),
            ("framebuffer_height", b.display.1),
            ("framebuffer_width", b.display.0),
            ("gpu_freq", b.gpu_freq_mhz),
            ("gpu_mem", b.gpu_mem_mb),
            ("hdmi_force_hotplug", 1),
            ("sdram_freq", b.sdram_freq_mhz),
            ("total_mem", b.total_mem_mb),
        ]
    }

    fn config_strs(&self) -> Vec<(&'static str, &'static str)> {
        vec![("device_tree", "-")]
    }

    fn get_config(&self, args: &[&str]) -> String {
        let Some(&name) = args.first() else {
            return ERR_INVALID_ARGS.to_string();
        };
        match name {
            "int" => self
                .config_ints()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            "str" => self
                .config_strs()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                if let Some((k, v)) = self.config_ints().into_iter().find(|(k, _)| *k == name) {
                    format!("{k}={v}")
                } else if let Some((k, v)) =
                    self.config_strs().into_iter().find(|(k, _)| *k == name)
                {
                    format!("{k}={v}")
                } else {
                    format!("{name}=0")
                }
            }
        }
    }

    fn display_power_cmd(&mut self, args: &[&str]) -> String {
        match args.first().map(|a| a.parse::<i64>()) {
            None | Some(Ok(-1)) => {}
            Some(Ok(0)) => self.display_power = false,
            Some(Ok(1)) => self.display_power = true,
            Some(_) => return ERR_INVALID_ARGS.to_string(),
        }
        format!("display_power={}", u8::from(self.display_power))
    }
}

fn category_index(name: &str) -> Option<usize> {
    LOG_CATEGORIES.iter().position(|c| *c == name)
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gencmd() -> GenCmd {
        GenCmd::new(BoardInfo::default(), VcLog::new())
    }

    fn reply_text(reply: &[u8]) -> &str {
        assert!(reply.len() >= 5);
        assert_eq!(&reply[..4], &[0, 0, 0, 0]);
        assert_eq!(reply.last(), Some(&0));
        std::str::from_utf8(&reply[4..reply.len() - 1]).expect("utf8")
    }

    #[test]
    fn set_vll_dir_exact_bytes() {
        let mut g = gencmd();
        assert_eq!(g.handle(b"set_vll_dir /sd/vlls\0"), vec![0, 0, 0, 0, 0]);
    }

    #[test]
    fn trailing_space_and_missing_nul_tolerated() {
        let mut g = gencmd();
        assert_eq!(reply_text(&g.handle(b"get_throttled \0")), "throttled=0x0");
        assert_eq!(reply_text(&g.handle(b"get_throttled")), "throttled=0x0");
        assert_eq!(
            reply_text(&g.handle(b"get_throttled\0garbage")),
            "throttled=0x0"
        );
    }

    #[test]
    fn unknown_and_empty_commands() {
        let log = VcLog::new();
        let mut g = GenCmd::new(BoardInfo::default(), log.clone());
        assert_eq!(
            g.execute("frobnicate 1 2"),
            "error=2 error_msg=\"Command not registered\""
        );
        assert_eq!(reply_text(&g.handle(b"nope \0")), ERR_NOT_REGISTERED);
        assert_eq!(g.execute(""), ERR_NOT_REGISTERED);
        assert_eq!(g.execute("   "), ERR_NOT_REGISTERED);
        assert!(
            log.render()
                .contains("command not registered: 'frobnicate'")
        );
    }

    #[test]
    fn measure_temp_format_range_and_stability() {
        let mut g = gencmd();
        let a = g.execute("measure_temp");
        let b = g.execute("measure_temp ");
        assert_eq!(a, b);
        let v: f64 = a
            .strip_prefix("temp=")
            .and_then(|s| s.strip_suffix("'C"))
            .and_then(|s| s.parse().ok())
            .expect("format");
        assert!((40.0..=50.0).contains(&v), "{v}");
        let mut prev = emulated_temp_decidegrees(0);
        for ms in (0..48 * 3600 * 1000u64).step_by(15_000) {
            let t = emulated_temp_decidegrees(ms);
            assert!((400..=500).contains(&t), "{t} at {ms}");
            assert!(t.abs_diff(prev) <= 2, "jump {prev} -> {t} at {ms}");
            prev = t;
        }
        assert_eq!(
            emulated_temp_decidegrees(0),
            emulated_temp_decidegrees(29_999)
        );
    }

    #[test]
    fn measure_clock_all() {
        let mut g = gencmd();
        let expect = [
            ("arm", "frequency(48)=1200000000"),
            ("core", "frequency(1)=400000000"),
            ("h264", "frequency(28)=300000000"),
            ("isp", "frequency(45)=300000000"),
            ("v3d", "frequency(46)=300000000"),
            ("uart", "frequency(22)=48000000"),
            ("pwm", "frequency(25)=0"),
            ("emmc", "frequency(50)=250000000"),
            ("pixel", "frequency(29)=148500000"),
            ("vec", "frequency(10)=0"),
            ("hdmi", "frequency(9)=163683000"),
            ("dpi", "frequency(4)=0"),
            ("cpu", "frequency(0)=0"),
        ];
        for (clk, want) in expect {
            assert_eq!(g.execute(&format!("measure_clock {clk} ")), want, "{clk}");
        }
        assert_eq!(g.execute("measure_clock"), ERR_INVALID_ARGS);
    }

    #[test]
    fn measure_volts_all() {
        let mut g = gencmd();
        assert_eq!(g.execute("measure_volts"), "volt=1.2000V");
        assert_eq!(g.execute("measure_volts core"), "volt=1.2000V");
        assert_eq!(g.execute("measure_volts sdram_c"), "volt=1.2000V");
        assert_eq!(g.execute("measure_volts sdram_i"), "volt=1.2000V");
        assert_eq!(g.execute("measure_volts sdram_p"), "volt=1.2250V");
        assert_eq!(g.execute("measure_volts bogus"), ERR_INVALID_ARGS);
    }

    #[test]
    fn get_mem_and_simple_commands() {
        let mut g = gencmd();
        assert_eq!(g.execute("get_mem arm"), "arm=948M");
        assert_eq!(g.execute("get_mem gpu"), "gpu=76M");
        assert_eq!(g.execute("get_mem"), ERR_INVALID_ARGS);
        assert_eq!(g.execute("get_throttled"), "throttled=0x0");
        assert_eq!(g.execute("get_camera"), "supported=0 detected=0");
        assert_eq!(g.execute("codec_enabled H264"), "H264=disabled");
        assert_eq!(g.execute("codec_enabled"), ERR_INVALID_ARGS);
        assert_eq!(g.execute("get_lcd_info"), "1920 1080 24");
        assert_eq!(g.execute("set_vll_dir /sd/vlls"), "");
        assert_eq!(g.execute("cache_flush"), "");
        assert_eq!(g.execute("dispmanx_list"), "");
    }

    #[test]
    fn display_power_state() {
        let mut g = gencmd();
        assert_eq!(g.execute("display_power"), "display_power=1");
        assert_eq!(g.execute("display_power 0"), "display_power=0");
        assert_eq!(g.execute("display_power -1"), "display_power=0");
        assert_eq!(g.execute("display_power 1 2"), "display_power=1");
        assert_eq!(g.execute("display_power x"), ERR_INVALID_ARGS);
    }

    #[test]
    fn version_texts() {
        let mut g = gencmd();
        let v = g.execute("version");
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(' '));
        assert!(lines[1].starts_with("Copyright (c)"));
        assert!(lines[2].starts_with("version "));
        assert!(v.contains("vchiq"));
        assert!(v.contains("software VideoCore"));
        let vv = g.execute("vcos version");
        let lines: Vec<&str> = vv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("version "));
        assert!(lines[3].starts_with("host "));
    }

    #[test]
    fn get_config_forms() {
        let mut g = gencmd();
        assert_eq!(g.execute("get_config arm_freq"), "arm_freq=1200");
        assert_eq!(g.execute("get_config core_freq"), "core_freq=400");
        assert_eq!(g.execute("get_config device_tree"), "device_tree=-");
        assert_eq!(g.execute("get_config hdmi_mode"), "hdmi_mode=0");
        assert_eq!(g.execute("get_config"), ERR_INVALID_ARGS);
        let ints = g.execute("get_config int");
        let names: Vec<&str> = ints
            .lines()
            .map(|l| l.split('=').next().unwrap_or(""))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(ints.lines().any(|l| l == "arm_freq=1200"));
        assert!(ints.lines().any(|l| l == "total_mem=1024"));
        assert!(ints.lines().all(|l| {
            l.split_once('=')
                .is_some_and(|(_, v)| v.parse::<u32>().is_ok())
        }));
        assert_eq!(g.execute("get_config str"), "device_tree=-");
    }

    #[test]
    fn commands_lists_every_implemented_command() {
        let mut g = gencmd();
        let c = g.execute("commands");
        let inner = c
            .strip_prefix("commands=\"")
            .and_then(|s| s.strip_suffix('"'))
            .expect("format");
        let listed: Vec<&str> = inner.split(", ").collect();
        assert_eq!(listed, COMMANDS);
        for cmd in COMMANDS {
            assert_ne!(g.execute(cmd), ERR_NOT_REGISTERED, "{cmd}");
        }
    }

    #[test]
    fn vcos_log_status_and_set() {
        let mut g = gencmd();
        let status = g.execute("vcos log status");
        let width = LOG_CATEGORIES.iter().map(|c| c.len()).max().unwrap_or(0);
        let lines: Vec<&str> = status.lines().collect();
        assert_eq!(lines.len(), LOG_CATEGORIES.len());
        for (line, cat) in lines.iter().zip(LOG_CATEGORIES) {
            assert_eq!(*line, format!("{cat:<width$} - warn"));
        }
        assert_eq!(g.execute("vcos log status khrn"), "khrn - warn");
        assert_eq!(
            g.execute("vcos log status nosuch"),
            "Unrecognized logging category: 'nosuch'"
        );
        assert_eq!(
            g.execute("vcos log set khrn trace"),
            "Category khrn level set to trace"
        );
        assert_eq!(g.execute("vcos log status khrn"), "khrn - trace");
        assert_eq!(
            g.execute("vcos log set nosuch info"),
            "Unrecognized logging category: 'nosuch'"
        );
        assert_eq!(
            g.execute("vcos log set khrn loud"),
            "Unrecognized logging level: 'loud'"
        );
        assert!(g.execute("vcos").starts_with("Usage:"));
    }

    #[test]
    fn otp_dump_rows() {
        let mut g = gencmd();
        let d = g.execute("otp_dump");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 57);
        assert_eq!(lines[0], "08:00000000");
        assert_eq!(lines[22], "30:00a02082");
        assert_eq!(lines[56], "64:00000000");
        for l in lines {
            let (row, val) = l.split_once(':').expect("colon");
            assert_eq!(row.len(), 2);
            assert_eq!(val.len(), 8);
            assert!(u32::from_str_radix(val, 16).is_ok());
        }
    }

    #[test]
    fn dispmanx_list_provider() {
        let mut g = gencmd();
        g.set_dispmanx_lister(Arc::new(|| "display:0 elements:1".to_string()));
        assert_eq!(g.execute("dispmanx_list"), "display:0 elements:1");
    }

    #[test]
    fn reply_is_bounded() {
        let mut g = gencmd();
        g.set_dispmanx_lister(Arc::new(|| "é".repeat(5000)));
        let r = g.handle(b"dispmanx_list\0");
        assert!(r.len() <= 4 + MAX_REPLY_TEXT + 1);
        assert!(std::str::from_utf8(&r[4..r.len() - 1]).is_ok());
        let long = format!("{}\0", "x".repeat(10_000));
        let r = g.handle(long.as_bytes());
        assert_eq!(reply_text(&r), ERR_NOT_REGISTERED);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut g = gencmd();
        let mut rng = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 64) as usize;
            let mut buf = Vec::with_capacity(len);
            let mut x = rng;
            for _ in 0..len {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                // Bias towards spaces and letters so real command words appear sometimes.
                buf.push(match (x >> 56) % 4 {
                    0 => b' ',
                    1 => {
                        b"vcos log status set measure_clock arm get_config"
                            [((x >> 40) % 47) as usize]
                    }
                    _ => (x >> 32) as u8,
                });
            }
            let r = g.handle(&buf);
            assert!(r.len() >= 5 && r.len() <= 4 + MAX_REPLY_TEXT + 1);
            assert_eq!(r.last(), Some(&0));
        }
    }
}
