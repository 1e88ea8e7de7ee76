//! DISP/UPDH: the dispmanx display manager, emulated.
//!
//! # Wire format
//!
//! A DISP request is one message: a command word followed by parameter words (all
//! little-endian `u32`). Bit 31 of the command word ([`defs::NO_REPLY`]) means "do not
//! reply". Every request *without* that bit gets exactly one reply on DISP: a 4-byte
//! word (a handle, `0` meaning failure, or a status, `0` OK / `-1` error), except
//! `DisplayGetInfo`, whose reply is 20 bytes `{i32 response, width, height, transform,
//! input_format}`. Requests with the bit set never get a reply, whatever happens.
//!
//! Asynchronous notifications go out on UPDH: the update handle after an
//! `UpdateSubmit` with `has_callback`, and (when the glue implements it) a word `0`
//! per vsync after `VsyncCallback` enabled them ([`Dispmanx::vsync_enabled`]).
//!
//! Two commands are followed by a *blocking bulk transfer* on the DISP service:
//! `BulkWrite` (27, client → VC: resource pixels) and `SetPalette` (31); and one by a
//! bulk the other way, `BulkRead` (28, VC → client). [`DispOutcome::bulk_in`] tells the
//! glue to receive `len` bytes and pass them to [`Dispmanx::bulk_data`] (even when the
//! target resource is unknown: the client transmits regardless and must not block);
//! [`DispOutcome::bulk_out`] carries the bytes to transmit.
//!
//! # Model
//!
//! * **Handles**: one counter, starting at `0x10`, hands out display, update, element and
//!   resource handles (never 0, never one in use) — the reference trace shows
//!   `0x10, 0x11, 0x12, 0x13` for open, open, update, element.
//! * **Displays**: devices 0 (main) and 2 (HDMI0) both name the one emulated screen of
//!   [`Dispmanx::size`]. `DisplayOpen` of any other device fails (handle 0).
//! * **Updates** are transactions: element add/remove/change and `DisplaySetBackground`
//!   are queued on the update and take effect when it is submitted (`UpdateSubmit`,
//!   `UpdateSubmitSync`); until then the display is unchanged. A newly added element
//!   gets its handle at once but is invisible until its update is submitted.
//! * **Elements** remember layer, destination rectangle, source rectangle (16.16 fixed
//!   point), source (a resource, or the image an EGL window surface presented into it
//!   with [`Dispmanx::set_element_image`]), opacity and alpha flags. The transform,
//!   clamp and protection words are accepted and ignored.
//! * **Resources** (`ResourceCreate`) hold an image of type RGB565 (`VC_IMAGE_RGB565` =
//!   1), RGB888 (`VC_IMAGE_RGB888` = 5, bytes R,G,B) or RGBA32 (`VC_IMAGE_RGBA32` = 15,
//!   bytes R,G,B,A); other types are refused (handle 0). Pixel data is exchanged with the
//!   VideoCore row pitch `align_up(width, 16) × bytes_per_pixel` (a bulk whose length is
//!   a multiple of the tight pitch `width × bpp` but not of that pitch is read tightly).
//! * **Compositing** ([`Dispmanx::compose`]) scans the committed elements of the screen
//!   out into the framebuffer over the background colour (black unless
//!   `DisplaySetBackground`), using `vc_gles::compose`.
//!
//! Everything arriving from the client is bounds-checked; unknown handles and truncated
//! requests produce the failure reply of the command (or nothing for no-reply
//! commands) and never a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use vc_gles::Image;
use vc_gles::compose::{Element as ComposeElement, Rect, compose as compose_elements};

/// Constants of the dispmanx protocol (`vc_vchi_dispmanx_common.h`, `vc_image_types.h`,
/// `vc_dispmanx_types.h`).
pub mod defs {
    /// `DISPMANX_NO_REPLY_MASK`: bit 31 of the command word.
    pub const NO_REPLY: u32 = 0x8000_0000;

    /// EDispmanResourceCreate
    pub const RESOURCE_CREATE: u32 = 3;
    /// EDispmanResourceDelete
    pub const RESOURCE_DELETE: u32 = 5;
    /// EDispmanResourceGetImage
    pub const RESOURCE_GET_IMAGE: u32 = 7;
    /// EDispmanDisplayOpen
    pub const DISPLAY_OPEN: u32 = 8;
    /// EDispmanDisplayOpenMode
    pub const DISPLAY_OPEN_MODE: u32 = 9;
    /// EDispmanDisplayOpenOffscreen
    pub const DISPLAY_OPEN_OFFSCREEN: u32 = 10;
    /// EDispmanDisplayReconfigure
    pub const DISPLAY_RECONFIGURE: u32 = 11;
    /// EDispmanDisplaySetDestination
    pub const DISPLAY_SET_DESTINATION: u32 = 12;
    /// EDispmanDisplaySetBackground
    pub const DISPLAY_SET_BACKGROUND: u32 = 13;
    /// EDispmanDisplayGetInfo
    pub const DISPLAY_GET_INFO: u32 = 14;
    /// EDispmanDisplayClose
    pub const DISPLAY_CLOSE: u32 = 15;
    /// EDispmanUpdateStart
    pub const UPDATE_START: u32 = 16;
    /// EDispmanUpdateSubmit
    pub const UPDATE_SUBMIT: u32 = 17;
    /// EDispmanUpdateSubmitSync
    pub const UPDATE_SUBMIT_SYNC: u32 = 18;
    /// EDispmanElementAdd
    pub const ELEMENT_ADD: u32 = 19;
    /// EDispmanElementModified
    pub const ELEMENT_MODIFIED: u32 = 20;
    /// EDispmanElementRemove
    pub const ELEMENT_REMOVE: u32 = 21;
    /// EDispmanElementChangeSource
    pub const ELEMENT_CHANGE_SOURCE: u32 = 22;
    /// EDispmanElementChangeLayer
    pub const ELEMENT_CHANGE_LAYER: u32 = 23;
    /// EDispmanElementChangeAttributes
    pub const ELEMENT_CHANGE_ATTRIBUTES: u32 = 24;
    /// EDispmanResourceFill
    pub const RESOURCE_FILL: u32 = 25;
    /// EDispmanQueryImageFormats
    pub const QUERY_IMAGE_FORMATS: u32 = 26;
    /// EDispmanBulkWrite
    pub const BULK_WRITE: u32 = 27;
    /// EDispmanBulkRead
    pub const BULK_READ: u32 = 28;
    /// EDispmanDisplayOrientation
    pub const DISPLAY_ORIENTATION: u32 = 29;
    /// EDispmanSnapshot
    pub const SNAPSHOT: u32 = 30;
    /// EDispmanSetPalette
    pub const SET_PALETTE: u32 = 31;
    /// EDispmanVsyncCallback
    pub const VSYNC_CALLBACK: u32 = 32;

    /// Parameter words of ElementAdd (message = 4 + 26 × 4 = 108 bytes).
    pub const ELEMENT_ADD_WORDS: usize = 26;
    /// Size of the DisplayGetInfo reply.
    pub const GET_INFO_REPLY_SIZE: usize = 20;

    /// `VC_IMAGE_RGB565`
    pub const VC_IMAGE_RGB565: u32 = 1;
    /// `VC_IMAGE_RGB888`
    pub const VC_IMAGE_RGB888: u32 = 5;
    /// `VC_IMAGE_RGBA32`
    pub const VC_IMAGE_RGBA32: u32 = 15;

    /// `ELEMENT_CHANGE_LAYER` (ElementChangeAttributes flags)
    pub const CHANGE_LAYER: u32 = 1 << 0;
    /// `ELEMENT_CHANGE_OPACITY`
    pub const CHANGE_OPACITY: u32 = 1 << 1;
    /// `ELEMENT_CHANGE_DEST_RECT`
    pub const CHANGE_DEST_RECT: u32 = 1 << 2;
    /// `ELEMENT_CHANGE_SRC_RECT`
    pub const CHANGE_SRC_RECT: u32 = 1 << 3;
}

use defs::*;

/// First handle handed out (as the reference trace shows).
const FIRST_HANDLE: u32 = 0x10;
/// Most open display handles.
const MAX_DISPLAYS: usize = 64;
/// Most updates started and not yet submitted.
const MAX_UPDATES: usize = 64;
/// Most operations queued on one update.
const MAX_OPS_PER_UPDATE: usize = 4096;
/// Most elements.
const MAX_ELEMENTS: usize = 1024;
/// Most resources.
const MAX_RESOURCES: usize = 1024;
/// Largest resource side, pixels.
const MAX_RESOURCE_SIDE: u32 = 4096;
/// Largest total resource pixels kept at once (256 MiB of RGBA).
const MAX_RESOURCE_PIXELS_TOTAL: u64 = 64 * 1024 * 1024;
/// Largest display side, pixels (larger daemon options are clamped).
const MAX_DISPLAY_SIDE: u32 = 4096;
/// Largest BulkRead answered with real bytes.
const MAX_BULK_READ: usize = 64 * 1024 * 1024;

/// Errors decoding or executing a DISP request (variants sorted) (logged; the client sees the command's
/// failure reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispmanxError {
    /// A limit of the emulation was reached.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// A parameter word is missing.
    #[error("command {cmd} needs parameter word {index}, request has {words}")]
    MissingParameter {
        /// Command number.
        cmd: u32,
        /// Index of the missing parameter.
        index: usize,
        /// Parameter words present.
        words: usize,
    },
    /// The request is shorter than a command word.
    #[error("request of {0} bytes has no command word")]
    Truncated(usize),
    /// The command is not implemented.
    #[error("unknown dispmanx command {0}")]
    UnknownCommand(u32),
    /// A handle names no live object of the expected kind.
    #[error("unknown {kind} handle 0x{handle:x}")]
    UnknownHandle {
        /// What kind of object was expected.
        kind: &'static str,
        /// The handle received.
        handle: u32,
    },
    /// The parameters are outside what the emulation supports.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Result of dispmanx request handling.
pub type Result<T> = std::result::Result<T, DispmanxError>;

/// Where the bytes of a bulk transfer that follows a request go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkTarget {
    /// `BulkWrite`: pixel rows for a resource.
    Resource {
        /// Resource handle.
        handle: u32,
        /// First destination row.
        dest_y: u32,
        /// Pixel format of the data (`VC_IMAGE_*`).
        src_type: u32,
    },
    /// Data to receive and drop (palettes, unknown resources).
    Discard,
}

/// What the glue must do after a DISP request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispOutcome {
    /// Reply message on DISP.
    pub reply: Option<Vec<u8>>,
    /// Message on UPDH (an `UpdateSubmit` callback: the update handle).
    pub updh: Option<Vec<u8>>,
    /// A blocking bulk transmit of `len` bytes from the client follows; receive it and
    /// call [`Dispmanx::bulk_data`] with the target.
    pub bulk_in: Option<(u32, BulkTarget)>,
    /// Bytes to send to the client's pending bulk receive (`BulkRead`).
    pub bulk_out: Option<Vec<u8>>,
    /// An update was applied: the display content may have changed.
    pub presented: bool,
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispStats {
    /// Updates applied.
    pub updates: u64,
    /// Elements currently alive (committed or pending).
    pub elements: usize,
    /// Frames composed into the framebuffer.
    pub frames_composed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attrs {
    layer: i32,
    dest: Rect,
    src: Rect,
    opacity: u8,
    alpha_flags: u32,
}

#[derive(Debug, Clone)]
enum Source {
    None,
    Resource(u32),
    Image(Image),
}

#[derive(Debug, Clone)]
struct ElementState {
    screen: u32,
    committed: bool,
    attrs: Attrs,
    source: Source,
}

#[derive(Debug, Clone)]
struct Resource {
    image_type: u32,
    image: Image,
}

#[derive(Debug, Clone)]
enum Op {
    Add(u32),
    Remove(u32),
    Modified(u32),
    ChangeSource(u32, u32),
    ChangeLayer(u32, i32),
    ChangeAttributes {
        element: u32,
        flags: u32,
        layer: i32,
        opacity: u32,
        dest: Option<Rect>,
        src: Option<Rect>,
    },
    SetBackground([u8; 3]),
}

/// The DISP engine (see the [module docs](self)).
#[derive(Debug)]
pub struct Dispmanx {
    width: u32,
    height: u32,
    next_handle: u32,
    /// Open display handles → screen (device) number.
    displays: BTreeMap<u32, u32>,
    updates: BTreeMap<u32, Vec<Op>>,
    elements: BTreeMap<u32, ElementState>,
    resources: BTreeMap<u32, Resource>,
    resource_pixels: u64,
    background: [u8; 3],
    framebuffer: Image,
    vsync: bool,
    stats: DispStats,
}

fn le_words(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn handle_reply(h: u32) -> Option<Vec<u8>> {
    Some(h.to_le_bytes().to_vec())
}

fn status_reply(ok: bool) -> Option<Vec<u8>> {
    Some((if ok { 0i32 } else { -1 }).to_le_bytes().to_vec())
}

fn bytes_per_pixel(image_type: u32) -> Option<usize> {
    match image_type {
        VC_IMAGE_RGB565 => Some(2),
        VC_IMAGE_RGB888 => Some(3),
        VC_IMAGE_RGBA32 => Some(4),
        _ => None,
    }
}

/// The VideoCore row pitch of a `width`-pixel resource: width padded to 16 pixels.
fn vc_pitch(width: u32, bpp: usize) -> usize {
    (width as usize).div_ceil(16) * 16 * bpp
}

fn decode_pixel(image_type: u32, px: &[u8]) -> u32 {
    let rgba = match (image_type, px) {
        (VC_IMAGE_RGB565, [lo, hi, ..]) => {
            let v = u16::from_le_bytes([*lo, *hi]);
            let r = ((v >> 11) & 0x1f) as u8;
            let g = ((v >> 5) & 0x3f) as u8;
            let b = (v & 0x1f) as u8;
            [
                (r << 3) | (r >> 2),
                (g << 2) | (g >> 4),
                (b << 3) | (b >> 2),
                255,
            ]
        }
        (VC_IMAGE_RGB888, [r, g, b, ..]) => [*r, *g, *b, 255],
        (VC_IMAGE_RGBA32, [r, g, b, a, ..]) => [*r, *g, *b, *a],
        _ => [0, 0, 0, 0],
    };
    u32::from_le_bytes(rgba)
}

fn encode_pixel(image_type: u32, p: u32, out: &mut Vec<u8>) {
    let [r, g, b, a] = p.to_le_bytes();
    match image_type {
        VC_IMAGE_RGB565 => {
            let v = (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3);
            out.extend_from_slice(&v.to_le_bytes());
        }
        VC_IMAGE_RGB888 => out.extend_from_slice(&[r, g, b]),
        _ => out.extend_from_slice(&[r, g, b, a]),
    }
}

/// Reads an `i32` rectangle from four words.
fn rect(w: &[u32]) -> Rect {
    Rect {
        x: w[0] as i32,
        y: w[1] as i32,
        width: w[2] as i32,
        height: w[3] as i32,
    }
}

/// Nearest-neighbour copy of `src` into `dst` (used for snapshots of another size).
fn scale_into(src: &Image, dst: &mut Image) {
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (dst.width as usize, dst.height as usize);
    if sw == 0 || sh == 0 || src.pixels.len() < sw * sh || dst.pixels.len() < dw * dh {
        return;
    }
    for y in 0..dh {
        let sy = y * sh / dh;
        for x in 0..dw {
            let sx = x * sw / dw;
            dst.pixels[y * dw + x] = src.pixels[sy * sw + sx];
        }
    }
}

struct Params {
    cmd: u32,
    words: Vec<u32>,
}

impl Params {
    fn get(&self, index: usize) -> Result<u32> {
        self.words
            .get(index)
            .copied()
            .ok_or(DispmanxError::MissingParameter {
                cmd: self.cmd,
                index,
                words: self.words.len(),
            })
    }
}

impl Dispmanx {
    /// An emulated screen of `width`×`height` (each side clamped to 1..=4096).
    pub fn new(width: u32, height: u32) -> Self {
        let width = width.clamp(1, MAX_DISPLAY_SIDE);
        let height = height.clamp(1, MAX_DISPLAY_SIDE);
        let mut framebuffer = Image::new(width, height);
        // Opaque black until something is composed.
        framebuffer.pixels.fill(u32::from_le_bytes([0, 0, 0, 255]));
        Self {
            width,
            height,
            next_handle: FIRST_HANDLE,
            displays: BTreeMap::new(),
            updates: BTreeMap::new(),
            elements: BTreeMap::new(),
            resources: BTreeMap::new(),
            resource_pixels: 0,
            background: [0, 0, 0],
            framebuffer,
            vsync: false,
            stats: DispStats::default(),
        }
    }

    /// The screen size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The last composed frame.
    pub fn framebuffer(&self) -> &Image {
        &self.framebuffer
    }

    /// Diagnostic counters.
    pub fn stats(&self) -> DispStats {
        DispStats {
            elements: self.elements.len(),
            ..self.stats
        }
    }

    /// True while a client has asked for vsync callbacks (a word 0 on UPDH per frame).
    pub fn vsync_enabled(&self) -> bool {
        self.vsync
    }

    fn in_use(&self, h: u32) -> bool {
        self.displays.contains_key(&h)
            || self.updates.contains_key(&h)
            || self.elements.contains_key(&h)
            || self.resources.contains_key(&h)
    }

    fn alloc_handle(&mut self) -> u32 {
        // Live objects are bounded (well below 2^32), so this terminates quickly.
        loop {
            let h = self.next_handle;
            self.next_handle = match h.wrapping_add(1) {
                0 => FIRST_HANDLE,
                n => n,
            };
            if h != 0 && !self.in_use(h) {
                return h;
            }
        }
    }

    /// Handles one DISP request.
    pub fn handle(&mut self, request: &[u8]) -> DispOutcome {
        if request.len() < 4 {
            tracing::debug!("{}", DispmanxError::Truncated(request.len()));
            return DispOutcome::default();
        }
        let word0 = u32::from_le_bytes([request[0], request[1], request[2], request[3]]);
        let wants_reply = word0 & NO_REPLY == 0;
        let cmd = word0 & !NO_REPLY;
        let p = Params {
            cmd,
            words: request[4..]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        };
        let mut out = DispOutcome::default();
        let result = self.execute(&p, &mut out);
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(cmd, "dispmanx: {e}");
                failure_reply(cmd)
            }
        };
        if wants_reply {
            out.reply = Some(reply);
        }
        out
    }

    /// Executes a decoded request; returns the reply it would get. Side outputs (bulk,
    /// UPDH) are written to `out` even when the reply is suppressed.
    fn execute(&mut self, p: &Params, out: &mut DispOutcome) -> Result<Vec<u8>> {
        let reply = match p.cmd {
            RESOURCE_CREATE => {
                handle_reply(self.resource_create(p.get(0)?, p.get(1)?, p.get(2)?)?)
            }
            RESOURCE_DELETE => {
                let h = p.get(0)?;
                let r = self
                    .resources
                    .remove(&h)
                    .ok_or(DispmanxError::UnknownHandle {
                        kind: "resource",
                        handle: h,
                    })?;
                self.resource_pixels -= u64::from(r.image.width) * u64::from(r.image.height);
                status_reply(true)
            }
            DISPLAY_OPEN => handle_reply(self.display_open(p.get(0)?)?),
            DISPLAY_OPEN_MODE => handle_reply(self.display_open(p.get(0)?)?),
            DISPLAY_GET_INFO => {
                let h = p.get(0)?;
                self.display(h)?;
                Some(le_words(&[0, self.width, self.height, 0, 0]))
            }
            DISPLAY_CLOSE => {
                let h = p.get(0)?;
                self.displays
                    .remove(&h)
                    .ok_or(DispmanxError::UnknownHandle {
                        kind: "display",
                        handle: h,
                    })?;
                status_reply(true)
            }
            DISPLAY_RECONFIGURE | DISPLAY_SET_DESTINATION | DISPLAY_ORIENTATION => {
                self.display(p.get(0)?)?;
                status_reply(true)
            }
            DISPLAY_SET_BACKGROUND => {
                let (u, d) = (p.get(0)?, p.get(1)?);
                self.display(d)?;
                let rgb = [p.get(2)? as u8, p.get(3)? as u8, p.get(4)? as u8];
                self.queue(u, Op::SetBackground(rgb))?;
                status_reply(true)
            }
            UPDATE_START => {
                if self.updates.len() >= MAX_UPDATES {
                    return Err(DispmanxError::Limit("pending updates"));
                }
                let h = self.alloc_handle();
                self.updates.insert(h, Vec::new());
                handle_reply(h)
            }
            UPDATE_SUBMIT => {
                let u = p.get(0)?;
                let has_callback = p.words.get(1).copied().unwrap_or(0) != 0;
                self.submit(u)?;
                out.presented = true;
                if has_callback {
                    out.updh = Some(u.to_le_bytes().to_vec());
                }
                status_reply(true)
            }
            UPDATE_SUBMIT_SYNC => {
                self.submit(p.get(0)?)?;
                out.presented = true;
                status_reply(true)
            }
            ELEMENT_ADD => handle_reply(self.element_add(p)?),
            ELEMENT_MODIFIED => {
                let e = self.element_op_target(p)?;
                self.queue(p.get(0)?, Op::Modified(e))?;
                status_reply(true)
            }
            ELEMENT_REMOVE => {
                let e = self.element_op_target(p)?;
                self.queue(p.get(0)?, Op::Remove(e))?;
                status_reply(true)
            }
            ELEMENT_CHANGE_SOURCE => {
                let e = self.element_op_target(p)?;
                self.queue(p.get(0)?, Op::ChangeSource(e, p.get(2)?))?;
                status_reply(true)
            }
            ELEMENT_CHANGE_LAYER => {
                let e = self.element_op_target(p)?;
                self.queue(p.get(0)?, Op::ChangeLayer(e, p.get(2)? as i32))?;
                status_reply(true)
            }
            ELEMENT_CHANGE_ATTRIBUTES => {
                let e = self.element_op_target(p)?;
                let flags = p.get(2)?;
                let rect_at = |i: usize| p.words.get(i..i + 4).map(rect);
                let op = Op::ChangeAttributes {
                    element: e,
                    flags,
                    layer: p.words.get(3).copied().unwrap_or(0) as i32,
                    opacity: p.words.get(4).copied().unwrap_or(255),
                    dest: (flags & CHANGE_DEST_RECT != 0)
                        .then(|| rect_at(7))
                        .flatten(),
                    src: (flags & CHANGE_SRC_RECT != 0)
                        .then(|| rect_at(11))
                        .flatten(),
                };
                self.queue(p.get(0)?, op)?;
                status_reply(true)
            }
            QUERY_IMAGE_FORMATS => handle_reply(
                (1 << VC_IMAGE_RGB565) | (1 << VC_IMAGE_RGB888) | (1 << VC_IMAGE_RGBA32),
            ),
            BULK_WRITE => {
                // The client transmits the bulk whatever we think of the request.
                let len = p.words.get(2).copied().unwrap_or(0);
                let target = match (p.get(0), p.get(1), p.get(3)) {
                    (Ok(handle), Ok(dest_y), Ok(src_type))
                        if self.resources.contains_key(&handle) =>
                    {
                        BulkTarget::Resource {
                            handle,
                            dest_y,
                            src_type,
                        }
                    }
                    _ => BulkTarget::Discard,
                };
                out.bulk_in = Some((len, target));
                status_reply(target != BulkTarget::Discard)
            }
            BULK_READ => {
                let len = (p.words.get(2).copied().unwrap_or(0) as usize).min(MAX_BULK_READ);
                let data = match (p.get(0), p.get(1)) {
                    (Ok(h), Ok(y)) => self.read_resource(h, y, len),
                    _ => None,
                };
                let ok = data.is_some();
                out.bulk_out = Some(data.unwrap_or_else(|| vec![0; len]));
                status_reply(ok)
            }
            SET_PALETTE => {
                out.bulk_in = Some((p.words.get(2).copied().unwrap_or(0), BulkTarget::Discard));
                status_reply(true)
            }
            SNAPSHOT => {
                let (d, r) = (p.get(0)?, p.get(1)?);
                self.display(d)?;
                if !self.resources.contains_key(&r) {
                    return Err(DispmanxError::UnknownHandle {
                        kind: "resource",
                        handle: r,
                    });
                }
                self.compose();
                if let Some(res) = self.resources.get_mut(&r) {
                    scale_into(&self.framebuffer, &mut res.image);
                }
                status_reply(true)
            }
            VSYNC_CALLBACK => {
                self.display(p.get(0)?)?;
                self.vsync = p.words.get(2).copied().unwrap_or(0) != 0;
                status_reply(true)
            }
            RESOURCE_GET_IMAGE | DISPLAY_OPEN_OFFSCREEN | RESOURCE_FILL => {
                return Err(DispmanxError::Unsupported("command"));
            }
            other => return Err(DispmanxError::UnknownCommand(other)),
        };
        Ok(reply.unwrap_or_default())
    }

    fn display(&self, h: u32) -> Result<u32> {
        self.displays
            .get(&h)
            .copied()
            .ok_or(DispmanxError::UnknownHandle {
                kind: "display",
                handle: h,
            })
    }

    fn display_open(&mut self, device: u32) -> Result<u32> {
        if device != 0 && device != 2 {
            return Err(DispmanxError::Unsupported("display device"));
        }
        if self.displays.len() >= MAX_DISPLAYS {
            return Err(DispmanxError::Limit("open displays"));
        }
        let h = self.alloc_handle();
        // Both device numbers name the one emulated screen, numbered 0.
        self.displays.insert(h, 0);
        Ok(h)
    }

    fn queue(&mut self, update: u32, op: Op) -> Result<()> {
        let ops = self
            .updates
            .get_mut(&update)
            .ok_or(DispmanxError::UnknownHandle {
                kind: "update",
                handle: update,
            })?;
        if ops.len() >= MAX_OPS_PER_UPDATE {
            return Err(DispmanxError::Limit("operations per update"));
        }
        ops.push(op);
        Ok(())
    }

    fn element_op_target(&self, p: &Params) -> Result<u32> {
        let e = p.get(1)?;
        if self.elements.contains_key(&e) {
            Ok(e)
        } else {
            Err(DispmanxError::UnknownHandle {
                kind: "element",
                handle: e,
            })
        }
    }

    fn element_add(&mut self, p: &Params) -> Result<u32> {
        if p.words.len() < ELEMENT_ADD_WORDS {
            return Err(DispmanxError::MissingParameter {
                cmd: p.cmd,
                index: p.words.len(),
                words: p.words.len(),
            });
        }
        let w = &p.words;
        let (update, display) = (w[0], w[1]);
        if !self.updates.contains_key(&update) {
            return Err(DispmanxError::UnknownHandle {
                kind: "update",
                handle: update,
            });
        }
        let screen = self.display(display)?;
        if self.elements.len() >= MAX_ELEMENTS {
            return Err(DispmanxError::Limit("elements"));
        }
        let resource = w[7];
        let alpha_flags = w[13];
        // Passed through: the compositor ignores it for plain FROM_SOURCE alpha
        // (hello_triangle sends 0 there) and applies it for the FIXED and MIX modes.
        let opacity = w[14].min(255) as u8;
        let attrs = Attrs {
            layer: w[2] as i32,
            dest: rect(&w[3..7]),
            src: rect(&w[8..12]),
            opacity,
            alpha_flags,
        };
        let h = self.alloc_handle();
        self.elements.insert(
            h,
            ElementState {
                screen,
                committed: false,
                attrs,
                source: if resource == 0 {
                    Source::None
                } else {
                    Source::Resource(resource)
                },
            },
        );
        if let Err(e) = self.queue(update, Op::Add(h)) {
            self.elements.remove(&h);
            return Err(e);
        }
        Ok(h)
    }

    fn resource_create(&mut self, image_type: u32, width: u32, height: u32) -> Result<u32> {
        if bytes_per_pixel(image_type).is_none() {
            return Err(DispmanxError::Unsupported("resource image type"));
        }
        if width == 0 || height == 0 || width > MAX_RESOURCE_SIDE || height > MAX_RESOURCE_SIDE {
            return Err(DispmanxError::Unsupported("resource size"));
        }
        let pixels = u64::from(width) * u64::from(height);
        if self.resources.len() >= MAX_RESOURCES
            || self.resource_pixels + pixels > MAX_RESOURCE_PIXELS_TOTAL
        {
            return Err(DispmanxError::Limit("resources"));
        }
        let h = self.alloc_handle();
        self.resource_pixels += pixels;
        self.resources.insert(
            h,
            Resource {
                image_type,
                image: Image::new(width, height),
            },
        );
        Ok(h)
    }

    fn read_resource(&self, handle: u32, y: u32, len: usize) -> Option<Vec<u8>> {
        let r = self.resources.get(&handle)?;
        let bpp = bytes_per_pixel(r.image_type)?;
        let pitch = vc_pitch(r.image.width, bpp);
        let w = r.image.width as usize;
        let mut out = Vec::with_capacity(len);
        let mut row = y as usize;
        while out.len() < len && row < r.image.height as usize {
            let start = out.len();
            for x in 0..w {
                let p = r.image.pixels.get(row * w + x).copied().unwrap_or(0);
                encode_pixel(r.image_type, p, &mut out);
            }
            out.resize(start + pitch, 0);
            row += 1;
        }
        out.resize(len, 0);
        Some(out)
    }

    /// Delivers the bytes of a bulk announced by [`DispOutcome::bulk_in`].
    pub fn bulk_data(&mut self, target: BulkTarget, data: &[u8]) {
        let BulkTarget::Resource {
            handle,
            dest_y,
            src_type,
        } = target
        else {
            return;
        };
        let Some(r) = self.resources.get_mut(&handle) else {
            return;
        };
        let ty = if bytes_per_pixel(src_type).is_some() {
            src_type
        } else {
            r.image_type
        };
        let Some(bpp) = bytes_per_pixel(ty) else {
            return;
        };
        let w = r.image.width as usize;
        let tight = w * bpp;
        let padded = vc_pitch(r.image.width, bpp);
        let pitch = if data.len() % padded != 0 && data.len() % tight == 0 {
            tight
        } else {
            padded
        };
        let height = r.image.height as usize;
        for (i, row) in data.chunks(pitch).enumerate() {
            let y = dest_y as usize + i;
            if y >= height {
                break;
            }
            for (x, px) in row.chunks_exact(bpp).take(w).enumerate() {
                if let Some(dst) = r.image.pixels.get_mut(y * w + x) {
                    *dst = decode_pixel(ty, px);
                }
            }
        }
    }

    fn submit(&mut self, update: u32) -> Result<()> {
        let ops = self
            .updates
            .remove(&update)
            .ok_or(DispmanxError::UnknownHandle {
                kind: "update",
                handle: update,
            })?;
        for op in ops {
            self.apply(op);
        }
        self.stats.updates += 1;
        Ok(())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Add(e) => {
                if let Some(el) = self.elements.get_mut(&e) {
                    el.committed = true;
                }
            }
            Op::Remove(e) => {
                self.elements.remove(&e);
            }
            Op::Modified(e) => tracing::trace!(element = e, "dispmanx: element modified"),
            Op::ChangeSource(e, r) => {
                if let Some(el) = self.elements.get_mut(&e) {
                    el.source = if r == 0 {
                        Source::None
                    } else {
                        Source::Resource(r)
                    };
                }
            }
            Op::ChangeLayer(e, layer) => {
                if let Some(el) = self.elements.get_mut(&e) {
                    el.attrs.layer = layer;
                }
            }
            Op::ChangeAttributes {
                element,
                flags,
                layer,
                opacity,
                dest,
                src,
            } => {
                if let Some(el) = self.elements.get_mut(&element) {
                    if flags & CHANGE_LAYER != 0 {
                        el.attrs.layer = layer;
                    }
                    if flags & CHANGE_OPACITY != 0 {
                        el.attrs.opacity = opacity.min(255) as u8;
                    }
                    if let Some(d) = dest {
                        el.attrs.dest = d;
                    }
                    if let Some(s) = src {
                        el.attrs.src = s;
                    }
                }
            }
            Op::SetBackground(rgb) => self.background = rgb,
        }
    }

    /// Presents `image` as the content of `element` (an EGL window surface bound to it
    /// swapped). Takes effect at once. Returns false if there is no such element or the
    /// image is malformed.
    pub fn set_element_image(&mut self, element: u32, image: &Image) -> bool {
        // Each swap presents a frame of the same size: copy into the element's previous
        // frame rather than allocating (and page-faulting in) a new one per swap.
        if let Some(Source::Image(old)) = self.elements.get_mut(&element).map(|el| &mut el.source) {
            if (old.width, old.height) == (image.width, image.height)
                && old.pixels.len() == image.pixels.len()
            {
                old.pixels.copy_from_slice(&image.pixels);
                return true;
            }
        }
        self.set_element_image_owned(element, image.clone())
    }

    /// Like [`Dispmanx::set_element_image`], taking the image by value (no copy).
    pub fn set_element_image_owned(&mut self, element: u32, image: Image) -> bool {
        let consistent =
            image.pixels.len() as u64 == u64::from(image.width) * u64::from(image.height);
        match self.elements.get_mut(&element) {
            Some(el) if consistent => {
                el.source = Source::Image(image);
                true
            }
            _ => false,
        }
    }

    /// Composes the committed elements of screen 0, in layer order, over the background
    /// into the framebuffer and returns it.
    pub fn compose(&mut self) -> &Image {
        let mut list: Vec<(ComposeElement, &Image)> = Vec::new();
        for el in self.elements.values() {
            if !el.committed || el.screen != 0 {
                continue;
            }
            let img = match &el.source {
                Source::None => continue,
                Source::Image(img) if img.width > 0 && img.height > 0 => img,
                Source::Image(_) => continue,
                Source::Resource(r) => match self.resources.get(r) {
                    Some(res) => &res.image,
                    None => continue,
                },
            };
            list.push((
                ComposeElement {
                    layer: el.attrs.layer,
                    dest: el.attrs.dest,
                    src: el.attrs.src,
                    opacity: el.attrs.opacity,
                    alpha_flags: el.attrs.alpha_flags,
                },
                img,
            ));
        }
        // Stable: equal layers keep creation (handle) order.
        list.sort_by_key(|(e, _)| e.layer);
        let refs: Vec<(&ComposeElement, &Image)> = list.iter().map(|(e, i)| (e, *i)).collect();
        compose_elements(&mut self.framebuffer, self.background, &refs);
        self.stats.frames_composed += 1;
        &self.framebuffer
    }

    /// A `dispmanx_list`-style description: one line per committed element.
    pub fn list_text(&self) -> String {
        let mut out = String::new();
        for (h, el) in &self.elements {
            if !el.committed {
                continue;
            }
            let a = &el.attrs;
            let src = match &el.source {
                Source::None => "none".to_string(),
                Source::Resource(r) => format!("resource:0x{r:x}"),
                Source::Image(i) => format!("egl:{}x{}", i.width, i.height),
            };
            let _ = writeln!(
                out,
                "display:{} element:0x{h:x} layer:{} src:{},{},{},{} dst:{},{},{},{} source:{src}",
                el.screen,
                a.layer,
                a.src.x >> 16,
                a.src.y >> 16,
                a.src.width >> 16,
                a.src.height >> 16,
                a.dest.x,
                a.dest.y,
                a.dest.width,
                a.dest.height,
            );
        }
        out
    }
}

/// The reply a command gets when it fails.
fn failure_reply(cmd: u32) -> Vec<u8> {
    match cmd {
        DISPLAY_GET_INFO => le_words(&[u32::MAX, 0, 0, 0, 0]),
        // Handle-returning commands: 0 = no handle.
        RESOURCE_CREATE
        | DISPLAY_OPEN
        | DISPLAY_OPEN_MODE
        | DISPLAY_OPEN_OFFSCREEN
        | UPDATE_START
        | ELEMENT_ADD
        | RESOURCE_GET_IMAGE
        | QUERY_IMAGE_FORMATS => vec![0; 4],
        _ => vec![0xff; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[u32]) -> Vec<u8> {
        le_words(words)
    }

    fn word(reply: &Option<Vec<u8>>) -> u32 {
        let r = reply.as_ref().expect("reply");
        assert_eq!(r.len(), 4);
        u32::from_le_bytes([r[0], r[1], r[2], r[3]])
    }

    fn element_add(u: u32, d: u32, layer: i32, dest: [u32; 4], res: u32, src: [u32; 4]) -> Vec<u8> {
        let mut w = vec![ELEMENT_ADD, u, d, layer as u32];
        w.extend_from_slice(&dest);
        w.push(res);
        w.extend_from_slice(&src);
        w.extend_from_slice(&[0; 14]);
        assert_eq!(w.len(), 27);
        req(&w)
    }

    /// Opens a display and returns its handle.
    fn open(d: &mut Dispmanx) -> u32 {
        word(&d.handle(&req(&[DISPLAY_OPEN, 0])).reply)
    }

    fn px(img: &Image, x: u32, y: u32) -> [u8; 4] {
        img.pixels[(y * img.width + x) as usize].to_le_bytes()
    }

    #[test]
    fn hello_triangle_sequence_exact() {
        let mut d = Dispmanx::new(640, 480);
        // graphics_get_display_size: open, get info, close (no reply).
        let r = d.handle(&req(&[8, 0]));
        assert_eq!(r.reply, Some(vec![0x10, 0, 0, 0]));
        let r = d.handle(&req(&[0xe, 0x10]));
        assert_eq!(r.reply, Some(req(&[0, 0x280, 0x1e0, 0, 0])));
        assert_eq!(r.reply.as_ref().map(Vec::len), Some(GET_INFO_REPLY_SIZE));
        let r = d.handle(&req(&[0x8000_000f, 0x10]));
        assert_eq!(r, DispOutcome::default());
        // vc_dispmanx_display_open, update_start.
        assert_eq!(d.handle(&req(&[8, 0])).reply, Some(vec![0x11, 0, 0, 0]));
        assert_eq!(d.handle(&req(&[0x10, 0])).reply, Some(vec![0x12, 0, 0, 0]));
        // element_add: the exact 108-byte message of the trace.
        let add = req(&[
            0x13, 0x12, 0x11, 0, 0, 0, 0x280, 0x1e0, 0, 0, 0, 0x280_0000, 0x1e0_0000, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(add.len(), 108);
        let r = d.handle(&add);
        assert_eq!(r.reply, Some(vec![0x13, 0, 0, 0]));
        assert!(!r.presented);
        // submit_sync.
        let r = d.handle(&req(&[0x12, 0x12]));
        assert_eq!(r.reply, Some(vec![0, 0, 0, 0]));
        assert!(r.presented);
        assert_eq!(r.updh, None);
        let s = d.stats();
        assert_eq!((s.updates, s.elements), (1, 1));
        // The window surface presents into element 0x13.
        let mut img = Image::new(640, 480);
        img.pixels.fill(u32::from_le_bytes([38, 64, 89, 255]));
        assert!(d.set_element_image(0x13, &img));
        assert!(!d.set_element_image(0x99, &img));
        let fb = d.compose();
        assert_eq!(px(fb, 0, 0), [38, 64, 89, 255]);
        assert_eq!(px(fb, 639, 479), [38, 64, 89, 255]);
        assert_eq!(d.stats().frames_composed, 1);
        assert!(d.list_text().contains("element:0x13"));
    }

    #[test]
    fn compose_scales_small_image_to_display() {
        let mut d = Dispmanx::new(8, 8);
        let disp = open(&mut d);
        let u = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        let e = word(
            &d.handle(&element_add(
                u,
                disp,
                0,
                [0, 0, 8, 8],
                0,
                [0, 0, 2 << 16, 2 << 16],
            ))
            .reply,
        );
        assert_ne!(e, 0);
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u]));
        // 2×2 image: red, green / blue, white.
        let mut img = Image::new(2, 2);
        img.pixels = vec![
            u32::from_le_bytes([255, 0, 0, 255]),
            u32::from_le_bytes([0, 255, 0, 255]),
            u32::from_le_bytes([0, 0, 255, 255]),
            u32::from_le_bytes([255, 255, 255, 255]),
        ];
        assert!(d.set_element_image(e, &img));
        let fb = d.compose().clone();
        assert_eq!((fb.width, fb.height), (8, 8));
        assert_eq!(px(&fb, 1, 1), [255, 0, 0, 255]);
        assert_eq!(px(&fb, 6, 1), [0, 255, 0, 255]);
        assert_eq!(px(&fb, 1, 6), [0, 0, 255, 255]);
        assert_eq!(px(&fb, 6, 6), [255, 255, 255, 255]);
        assert_eq!(d.framebuffer(), &fb);
        assert_eq!(d.size(), (8, 8));
    }

    #[test]
    fn changes_invisible_until_submit() {
        let mut d = Dispmanx::new(4, 4);
        let disp = open(&mut d);
        // A resource filled red through BulkWrite.
        let res = word(
            &d.handle(&req(&[RESOURCE_CREATE, VC_IMAGE_RGBA32, 4, 4]))
                .reply,
        );
        assert_ne!(res, 0);
        let out = d.handle(&req(&[
            BULK_WRITE | NO_REPLY,
            res,
            0,
            4 * 16 * 4,
            VC_IMAGE_RGBA32,
        ]));
        let (len, target) = out.bulk_in.expect("bulk follows");
        assert_eq!(out.reply, None);
        let pitch = vc_pitch(4, 4);
        assert_eq!(pitch, 64);
        let mut data = Vec::new();
        for _ in 0..4 {
            let mut row: Vec<u8> = [255u8, 0, 0, 255].repeat(4);
            row.resize(pitch, 0);
            data.extend(row);
        }
        assert_eq!(data.len(), len as usize);
        d.bulk_data(target, &data);

        let u = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        let e = word(
            &d.handle(&element_add(
                u,
                disp,
                1,
                [0, 0, 4, 4],
                res,
                [0, 0, 4 << 16, 4 << 16],
            ))
            .reply,
        );
        assert_eq!(px(d.compose(), 0, 0), [0, 0, 0, 255], "not yet submitted");
        d.handle(&req(&[
            DISPLAY_SET_BACKGROUND | NO_REPLY,
            u,
            disp,
            0,
            0,
            200,
        ]));
        assert_eq!(px(d.compose(), 0, 0), [0, 0, 0, 255]);
        let out = d.handle(&req(&[UPDATE_SUBMIT | NO_REPLY, u, 1]));
        assert_eq!(out.reply, None);
        assert_eq!(out.updh, Some(u.to_le_bytes().to_vec()));
        assert!(out.presented);
        assert_eq!(px(d.compose(), 2, 2), [255, 0, 0, 255]);

        // Move the element to the left half: invisible until the second submit.
        let u2 = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        d.handle(&req(&[
            ELEMENT_CHANGE_ATTRIBUTES | NO_REPLY,
            u2,
            e,
            CHANGE_DEST_RECT,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            4,
        ]));
        assert_eq!(px(d.compose(), 3, 0), [255, 0, 0, 255]);
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u2]));
        let fb = d.compose();
        assert_eq!(px(fb, 0, 0), [255, 0, 0, 255]);
        assert_eq!(px(fb, 3, 0), [0, 0, 200, 255], "background shows");

        // Remove: invisible until submit.
        let u3 = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        d.handle(&req(&[ELEMENT_REMOVE | NO_REPLY, u3, e]));
        assert_eq!(px(d.compose(), 0, 0), [255, 0, 0, 255]);
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u3]));
        assert_eq!(px(d.compose(), 0, 0), [0, 0, 200, 255]);
        assert_eq!(d.stats().elements, 0);
        assert!(!d.set_element_image(e, &Image::new(1, 1)));
    }

    #[test]
    fn layers_order_and_change_layer() {
        let mut d = Dispmanx::new(2, 2);
        let disp = open(&mut d);
        let u = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        let full = [0, 0, 2, 2];
        let src = [0, 0, 1 << 16, 1 << 16];
        let a = word(&d.handle(&element_add(u, disp, 5, full, 0, src)).reply);
        let b = word(&d.handle(&element_add(u, disp, 1, full, 0, src)).reply);
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u]));
        let solid = |c: [u8; 4]| Image {
            width: 1,
            height: 1,
            pixels: vec![u32::from_le_bytes(c)],
        };
        assert!(d.set_element_image(a, &solid([255, 0, 0, 255])));
        assert!(d.set_element_image(b, &solid([0, 255, 0, 255])));
        assert_eq!(px(d.compose(), 0, 0), [255, 0, 0, 255], "layer 5 on top");
        let u = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        d.handle(&req(&[ELEMENT_CHANGE_LAYER | NO_REPLY, u, b, 9]));
        assert_eq!(px(d.compose(), 0, 0), [255, 0, 0, 255]);
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u]));
        assert_eq!(px(d.compose(), 0, 0), [0, 255, 0, 255], "b raised");
    }

    #[test]
    fn resources_formats_read_back_and_snapshot() {
        let mut d = Dispmanx::new(4, 2);
        let disp = open(&mut d);
        // Unsupported type and absurd sizes are refused.
        assert_eq!(word(&d.handle(&req(&[RESOURCE_CREATE, 3, 4, 4])).reply), 0);
        assert_eq!(word(&d.handle(&req(&[RESOURCE_CREATE, 15, 0, 4])).reply), 0);
        assert_eq!(
            word(
                &d.handle(&req(&[RESOURCE_CREATE, 15, 100_000, 100_000]))
                    .reply
            ),
            0
        );
        let fmts = word(&d.handle(&req(&[QUERY_IMAGE_FORMATS])).reply);
        assert_eq!(fmts, (1 << 1) | (1 << 5) | (1 << 15));

        // RGB565 round trip through BulkWrite / BulkRead (tight pitch accepted).
        let r = word(
            &d.handle(&req(&[RESOURCE_CREATE, VC_IMAGE_RGB565, 2, 1]))
                .reply,
        );
        let out = d.handle(&req(&[BULK_WRITE | NO_REPLY, r, 0, 4, VC_IMAGE_RGB565]));
        let (_, t) = out.bulk_in.expect("bulk");
        d.bulk_data(t, &[0x00, 0xf8, 0xe0, 0x07]); // pure red, pure green
        let out = d.handle(&req(&[BULK_READ | NO_REPLY, r, 0, 32]));
        let data = out.bulk_out.expect("bulk out");
        assert_eq!(data.len(), 32);
        assert_eq!(&data[..4], &[0x00, 0xf8, 0xe0, 0x07]);

        // RGB888 write is expanded with opaque alpha.
        let r8 = word(
            &d.handle(&req(&[RESOURCE_CREATE, VC_IMAGE_RGB888, 1, 1]))
                .reply,
        );
        let (_, t) = d
            .handle(&req(&[BULK_WRITE | NO_REPLY, r8, 0, 48, VC_IMAGE_RGB888]))
            .bulk_in
            .expect("bulk");
        d.bulk_data(t, &[1, 2, 3]);
        let back = d.handle(&req(&[BULK_READ | NO_REPLY, r8, 0, 3])).bulk_out;
        assert_eq!(back, Some(vec![1, 2, 3]));

        // Snapshot into an RGBA32 resource of half the size.
        let u = word(&d.handle(&req(&[UPDATE_START, 0])).reply);
        d.handle(&req(&[DISPLAY_SET_BACKGROUND | NO_REPLY, u, disp, 9, 8, 7]));
        d.handle(&req(&[UPDATE_SUBMIT_SYNC, u]));
        let snap = word(
            &d.handle(&req(&[RESOURCE_CREATE, VC_IMAGE_RGBA32, 2, 1]))
                .reply,
        );
        let st = word(&d.handle(&req(&[SNAPSHOT, disp, snap, 0])).reply);
        assert_eq!(st, 0);
        let bytes = d
            .handle(&req(&[BULK_READ | NO_REPLY, snap, 0, 8]))
            .bulk_out
            .expect("bulk");
        assert_eq!(bytes, vec![9, 8, 7, 255, 9, 8, 7, 255]);
        assert_eq!(
            word(&d.handle(&req(&[SNAPSHOT, disp, 0x999, 0])).reply),
            u32::MAX
        );

        // Delete.
        assert_eq!(word(&d.handle(&req(&[RESOURCE_DELETE, snap])).reply), 0);
        assert_eq!(
            word(&d.handle(&req(&[RESOURCE_DELETE, snap])).reply),
            u32::MAX
        );
    }

    #[test]
    fn unknown_handles_and_bulk_to_unknown_resource() {
        let mut d = Dispmanx::new(16, 16);
        let r = d.handle(&req(&[DISPLAY_GET_INFO, 0x77]));
        assert_eq!(r.reply, Some(req(&[u32::MAX, 0, 0, 0, 0])));
        assert_eq!(word(&d.handle(&req(&[DISPLAY_OPEN, 5])).reply), 0);
        assert_eq!(
            word(&d.handle(&req(&[UPDATE_SUBMIT_SYNC, 0x55])).reply),
            u32::MAX
        );
        assert_eq!(
            word(&d.handle(&element_add(1, 2, 0, [0; 4], 0, [0; 4])).reply),
            0
        );
        assert_eq!(word(&d.handle(&req(&[99])).reply), u32::MAX);
        assert_eq!(d.handle(&req(&[99 | NO_REPLY])).reply, None);
        // The bulk must still be drained.
        let out = d.handle(&req(&[BULK_WRITE | NO_REPLY, 0x1234, 0, 100, 15]));
        assert_eq!(out.bulk_in, Some((100, BulkTarget::Discard)));
        d.bulk_data(BulkTarget::Discard, &[0; 100]);
        let out = d.handle(&req(&[BULK_READ | NO_REPLY, 0x1234, 0, 12]));
        assert_eq!(out.bulk_out, Some(vec![0; 12]));
        // Update submit with callback on an unknown update: no callback.
        let out = d.handle(&req(&[UPDATE_SUBMIT | NO_REPLY, 0x4444, 1]));
        assert_eq!(out, DispOutcome::default());
        // Vsync toggling.
        let disp = open(&mut d);
        d.handle(&req(&[VSYNC_CALLBACK | NO_REPLY, disp, 0, 1]));
        assert!(d.vsync_enabled());
        d.handle(&req(&[VSYNC_CALLBACK | NO_REPLY, disp, 0, 0]));
        assert!(!d.vsync_enabled());
    }

    #[test]
    fn handles_unique_and_nonzero() {
        let mut d = Dispmanx::new(16, 16);
        d.next_handle = u32::MAX - 1;
        let a = open(&mut d);
        let b = open(&mut d);
        let c = open(&mut d);
        assert_eq!(a, u32::MAX - 1);
        assert_eq!(b, u32::MAX);
        assert_eq!(c, FIRST_HANDLE);
        // Limits: pending updates.
        let mut got = 0;
        for _ in 0..(MAX_UPDATES + 5) {
            if word(&d.handle(&req(&[UPDATE_START, 0])).reply) != 0 {
                got += 1;
            }
        }
        assert_eq!(got, MAX_UPDATES);
    }

    #[test]
    fn random_requests_never_panic() {
        let mut d = Dispmanx::new(32, 24);
        let mut rng = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for i in 0..20_000 {
            let r = next();
            let nwords = (r % 30) as usize;
            let mut words: Vec<u32> = Vec::with_capacity(nwords + 1);
            let cmd = ((r >> 8) % 34) as u32 | if (r >> 20) & 3 == 0 { NO_REPLY } else { 0 };
            words.push(cmd);
            for _ in 0..nwords {
                let v = next();
                // Mostly small numbers and live-looking handles.
                words.push(match v % 4 {
                    0 => (v >> 8) as u32 & 0xf_ffff,
                    1 => FIRST_HANDLE + ((v >> 8) % 64) as u32,
                    _ => ((v >> 8) % 64) as u32,
                });
            }
            let mut bytes = req(&words);
            if r & 0x1f == 0 {
                bytes.truncate((r >> 32) as usize % (bytes.len() + 1));
            }
            let out = d.handle(&bytes);
            let wants = bytes.len() >= 4 && cmd & NO_REPLY == 0;
            assert_eq!(out.reply.is_some(), wants, "request {words:x?}");
            if let Some(reply) = &out.reply {
                let expect = if cmd & !NO_REPLY == DISPLAY_GET_INFO {
                    20
                } else {
                    4
                };
                assert_eq!(reply.len(), expect);
            }
            if let Some((len, target)) = out.bulk_in {
                let data: Vec<u8> = (0..(len.min(4096))).map(|b| b as u8).collect();
                d.bulk_data(target, &data);
            }
            if let Some(e) = d.elements.keys().next().copied().filter(|_| i % 7 == 0) {
                let img = Image::new((r % 5) as u32, (r % 3) as u32);
                d.set_element_image(e, &img);
            }
            if i % 500 == 0 {
                d.compose();
            }
        }
        d.compose();
    }
}
