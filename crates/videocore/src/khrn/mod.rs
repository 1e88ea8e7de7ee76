//! The Khronos RPC server (services KHRN, KHHN and KHAN), transport independent.
//!
//! The Pi's EGL/GLES client library does not run OpenGL itself: it serialises every call
//! into 32-bit words and ships them to the VideoCore, which executes them. This module is
//! the VideoCore end of that RPC for one client process. Its host (the VCHIQ glue) feeds it
//! whatever arrives on the client's KHRN and KHHN services and carries out what it asks:
//! replies, bulk transfers, KHAN notifications and dispmanx presentation
//! ([`KhrnHost`]). Rendering is done by the software GLES 1.1 renderer in [`vc_gles`].
//!
//! # The RPC model
//!
//! * **Merge buffer.** Each client thread appends calls that need no answer to a 4080-byte
//!   buffer and sends it as one VCHIQ message only when it must (a reply is awaited, a
//!   payload follows, the buffer is full, or on `glFlush`/`eglSwapBuffers`). One message
//!   therefore holds many commands; [`KhrnServer::handle_message`] walks them in order.
//!   Each command is its id word followed by its argument words; the id alone determines
//!   how many words (and how many in-line bytes) follow, so an id the server does not know
//!   ends the walk: it is logged (`khrn: unknown command 0x…`) and the rest of the message
//!   is dropped.
//! * **Make-current records.** Every message begins with `EGLINTMAKECURRENT`
//!   `[pid_lo, pid_hi, gltype, gl_ctx, gl_draw, gl_read, vg_ctx, vg_surf]` and the record
//!   may also appear mid-message. It sets, for the following commands on that service,
//!   the pid the caller claims (its `GET_CLIENT_ID` value, used to route KHAN posts), the
//!   current context and the draw surface. No other per-message state exists.
//! * **Encoding classes and reply discipline.** Plain calls get no answer. `_RES` calls get
//!   exactly one 4-byte message. `_OUT_CTRL` calls get one message `[len, data]`.
//!   `_OUT_BULK` calls get `[len]` and then, if `len > 0`, the data as a second message
//!   (`len ≤ 2032`) or as a bulk transfer the client has queued a receive for (larger).
//!   `_IN_CTRL` calls carry their bytes in line, padded to 4, with the length implied by
//!   the arguments. `_IN_BULK(_RES)` calls end with a length word; unless it is 0 or
//!   `0xffffffff` (NULL) the payload is the very next item on the same service: a message
//!   of exactly `len` bytes if `len ≤ 2032`, otherwise a bulk transmit (the server asks the
//!   host to queue a receive with [`KhrnHost::expect_bulk_from_client`] and gets the data
//!   through [`KhrnServer::bulk_payload`]). The `_RES` answer of an `IN_BULK_RES` call is
//!   sent after its payload is consumed. A command announcing a payload is always the last
//!   of its message. The client asserts on reply sizes, so one missing or extra reply
//!   desynchronises it for good: every known command replies exactly as its class says,
//!   even when it fails (GL errors are recorded for `glGetError` instead).
//! * **Vertex cache.** Client-memory vertex and index arrays are shipped through a
//!   per-context byte cache that mirrors the client's buddy allocator: `GLINTCACHEGROW`
//!   doubles it (64 bytes after the first grow, up to 16 grows = 2 MiB; a 17th is refused),
//!   `GLINTCACHEDATA` writes bytes at an absolute offset, and `GLINTDRAWELEMENTS` names,
//!   per attribute slot, the cache offset that stands for the client pointer (vertex `k` at
//!   `offset + k·stride`). GL 1.1 slots: 0 position, 1 colour, 2 normal, 3 texcoord unit 0.
//!   Offsets are checked; an out-of-range draw records a GL error and is skipped.
//! * **KHAN and swaps.** Window surfaces have 1–3 buffers and a semaphore name chosen by
//!   the client (its `EGLSurface` handle). `EGLINTSWAPBUFFERS` presents the back buffer
//!   through the dispmanx element named in the swap ([`KhrnHost::present`]), rotates the
//!   buffers, and posts the buffer semaphore back: a 16-byte KHAN message
//!   `[1 /*POST*/, pid_lo, pid_hi, sem]` for the pid of the current make-current record
//!   ([`KhrnHost::post_khan`]). The client blocks in its fourth swap without these posts.
//!
//! # Limits
//!
//! * Surfaces are at most 2048×2048 (as EGL), at most 3 buffers, at most
//!   [`MAX_SURFACES`] per client and [`MAX_SURFACE_BYTES`] of pixel memory in total.
//!   Contexts are capped at [`MAX_CONTEXTS`]; textures at [`MAX_TEXTURE_DIM`] and the
//!   renderer's per-context texture budget; buffer objects at [`MAX_BUFFER_BYTES`] per
//!   context; payloads at [`MAX_PAYLOAD`] bytes; `glGen*` at 262144 names per call (the
//!   client's 1 MiB batch).
//! * OpenGL ES 2.0 contexts are framed faithfully (ids, classes, payloads, object names,
//!   attribute/uniform locations) but render nothing except window clears: there is no
//!   GLSL implementation. OpenVG is not implemented.
//! * State the renderer has no notion of (fog, polygon offset, line width, clip planes,
//!   stencil, sample coverage, pixel store, renderbuffer storage) is accepted and ignored.
//!   Texture units 1–3 keep their bindings and uploads, but only unit 0 is sampled.
//! * Context sharing (`share_ctx`) is ignored: every context has its own names.
//! * Read-backs (`glReadPixels`, `glGet*v`, info logs), OpenVG, EGL images and syncs are
//!   not implemented: their ids are unknown to the server (logged, message dropped).

pub mod ids;

mod draw;
mod egl;
mod gl;
mod gl20;
mod glsl;
mod query;
pub use glsl::BoundProgram;
mod state;
mod wire;

#[cfg(test)]
mod tests;

use state::{Context, EglSurface, Pending};
use std::collections::BTreeMap;
use wire::Words;

/// Largest payload sent as a VCHIQ message rather than a bulk (`KHDISPATCH_CTRL_THRESHOLD`).
pub const CTRL_THRESHOLD: usize = 2032;
/// Largest payload (either direction) the server accepts or produces, in bytes.
pub const MAX_PAYLOAD: u32 = 16 << 20;
/// Most contexts one client may hold at once.
pub const MAX_CONTEXTS: usize = 16;
/// Most surfaces one client may hold at once.
pub const MAX_SURFACES: usize = 32;
/// Pixel memory (colour and depth, all buffers) one client's surfaces may use.
pub const MAX_SURFACE_BYTES: usize = 256 << 20;
/// Largest surface width or height (`EGL_CONFIG_MAX_WIDTH/HEIGHT`).
pub const MAX_SURFACE_DIM: u32 = 2048;
/// Largest texture width or height.
pub const MAX_TEXTURE_DIM: u32 = 2048;
/// Buffer-object memory one context may use.
pub const MAX_BUFFER_BYTES: usize = 64 << 20;

/// The service a message arrived on (and its answer goes back on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `KHRN`: the normal-priority RPC service.
    Khrn,
    /// `KHHN`: the high-priority RPC service.
    Khhn,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Khrn => 0,
            Channel::Khhn => 1,
        }
    }
}

/// What the server needs from the transport and display that host it.
pub trait KhrnHost {
    /// Send one message back on `channel`. Replies are produced in request order.
    fn reply(&mut self, channel: Channel, data: &[u8]);
    /// Send an OUT_BULK payload larger than 2032 bytes as a bulk transfer (the client has
    /// queued a bulk receive for it).
    fn bulk_to_client(&mut self, channel: Channel, data: Vec<u8>);
    /// The next payload on `channel` (larger than 2032 bytes) arrives as a bulk transmit of
    /// `len` bytes: queue a bulk receive and hand the data to [`KhrnServer::bulk_payload`].
    fn expect_bulk_from_client(&mut self, channel: Channel, len: u32);
    /// Send `[command, pid_lo, pid_hi, sem]` on the KHAN service registered for `pid`.
    fn post_khan(&mut self, pid: u64, command: u32, sem: u32);
    /// Show this completed buffer in dispmanx element `window`.
    fn present(&mut self, window: u32, image: &vc_gles::Image);
    /// The display size, in pixels.
    fn display_size(&self) -> (u32, u32);
    /// Write a line to the VideoCore log (`vcdbg log msg`).
    fn log(&mut self, text: &str);
}

/// A malformed KHRN stream. Commands before the fault have been executed and answered.
#[derive(Debug, thiserror::Error)]
pub enum KhrnError {
    /// A bulk transfer arrived while a message payload (or nothing) was expected.
    #[error("unexpected bulk of {len} bytes on {channel:?}: no bulk payload was announced")]
    BulkNotAnnounced {
        /// Service the bulk arrived on.
        channel: Channel,
        /// Its length.
        len: usize,
    },
    /// The message is empty and no payload was pending.
    #[error("empty message on {channel:?}")]
    EmptyMessage {
        /// Service the message arrived on.
        channel: Channel,
    },
    /// A command message arrived while a bulk payload was still expected.
    #[error("message on {channel:?} while a {len}-byte bulk payload for {name} was pending")]
    MessageWhileBulkPending {
        /// Service the message arrived on.
        channel: Channel,
        /// Announced bulk length.
        len: u32,
        /// Command that announced it.
        name: &'static str,
    },
    /// The message length is not a multiple of 4.
    #[error("message of {len} bytes on {channel:?} is not a whole number of words")]
    Misaligned {
        /// Service the message arrived on.
        channel: Channel,
        /// Its length.
        len: usize,
    },
    /// A payload's length differs from the length its command announced.
    #[error("payload for {name} on {channel:?} is {got} bytes, {expected} were announced")]
    PayloadLength {
        /// Service the payload arrived on.
        channel: Channel,
        /// Command that announced it.
        name: &'static str,
        /// Announced length.
        expected: u32,
        /// Received length.
        got: usize,
    },
    /// A command announced a payload larger than [`MAX_PAYLOAD`].
    #[error("{name} announced a payload of {len} bytes (limit {MAX_PAYLOAD})")]
    PayloadTooLarge {
        /// Command that announced it.
        name: &'static str,
        /// Announced length.
        len: u32,
    },
    /// Words follow a command that announced a payload (it must be last in its message).
    #[error("{trailing} bytes follow {name}, which announced a payload and must end its message")]
    TrailingAfterPayload {
        /// Command that announced the payload.
        name: &'static str,
        /// Bytes dropped.
        trailing: usize,
    },
    /// A command's arguments or in-line data run past the end of its message.
    #[error("command {id:#x} ({}) truncated at byte {offset}", ids::command_name(*id))]
    Truncated {
        /// Command id.
        id: u32,
        /// Offset of the read that failed.
        offset: usize,
    },
}

/// Result of the KHRN entry points.
pub type Result<T, E = KhrnError> = std::result::Result<T, E>;

/// Counters describing what one client's server has done (for logs, tests and monitors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KhrnStats {
    /// Messages received (command messages and message payloads).
    pub messages: u64,
    /// Commands executed (including make-current records).
    pub commands: u64,
    /// Payloads consumed (messages and bulks).
    pub payloads: u64,
    /// Reply messages sent (bulk transfers to the client not included).
    pub replies: u64,
    /// Draw calls executed by the renderer.
    pub draws: u64,
    /// `EGLINTSWAPBUFFERS` commands that presented a buffer.
    pub swaps: u64,
    /// KHAN posts requested from the host.
    pub khan_posts: u64,
    /// Commands with an id the server does not know.
    pub unknown_commands: u64,
    /// Live contexts.
    pub contexts: u64,
    /// Live surfaces.
    pub surfaces: u64,
    /// Live texture names (all contexts).
    pub textures: u64,
}

/// The current-state record set by `EGLINTMAKECURRENT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Current {
    pid: u64,
    context: u32,
    draw: u32,
}

/// Per-service state: the last make-current record and any payload still to come.
#[derive(Default)]
struct ChannelState {
    current: Current,
    pending: Option<Pending>,
}

/// What the command walk does after one command.
enum Flow {
    /// Go on with the next command.
    Continue,
    /// The command announced a payload: it must be the last one in the message.
    AwaitPayload,
    /// The id is unknown: the rest of the message cannot be framed.
    Unknown,
}

/// The KHRN server of one client process (both its KHRN and KHHN services feed it).
pub struct KhrnServer {
    client_id: u32,
    channels: [ChannelState; 2],
    contexts: BTreeMap<u32, Context>,
    surfaces: BTreeMap<u32, EglSurface>,
    next_context: u32,
    next_surface: u32,
    surface_bytes: usize,
    stats: KhrnStats,
}

impl KhrnServer {
    /// A server for the client whose VCHIQ client id (global pid) is `client_id`.
    pub fn new(client_id: u32) -> Self {
        Self {
            client_id,
            channels: Default::default(),
            contexts: BTreeMap::new(),
            surfaces: BTreeMap::new(),
            next_context: 0x100,
            next_surface: 0x200,
            surface_bytes: 0,
            stats: KhrnStats::default(),
        }
    }

    /// The client id this server was created for.
    pub fn client_id(&self) -> u32 {
        self.client_id
    }

    /// Handle one message that arrived on `channel`: a merged command message, or the
    /// payload a previous command announced.
    ///
    /// # Errors
    ///
    /// [`KhrnError`] if the message is malformed; commands before the fault were executed.
    pub fn handle_message(
        &mut self,
        channel: Channel,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        self.stats.messages += 1;
        let state = &mut self.channels[channel.index()];
        if let Some(pending) = state.pending.take() {
            if pending.bulk {
                let (len, name) = (pending.len, ids::command_name(pending.id));
                // Keep waiting for the bulk: a misordered message must not eat it.
                state.pending = Some(pending);
                return Err(KhrnError::MessageWhileBulkPending { channel, len, name });
            }
            return self.complete_payload(channel, pending, data, host);
        }
        if data.is_empty() {
            return Err(KhrnError::EmptyMessage { channel });
        }
        if data.len() % 4 != 0 {
            return Err(KhrnError::Misaligned {
                channel,
                len: data.len(),
            });
        }
        self.run_commands(channel, data, host)
    }

    /// Handle a bulk transfer received on `channel` (announced earlier through
    /// [`KhrnHost::expect_bulk_from_client`]).
    ///
    /// # Errors
    ///
    /// [`KhrnError::BulkNotAnnounced`] if no bulk was expected, or
    /// [`KhrnError::PayloadLength`] if its size differs from the announced one.
    pub fn bulk_payload(
        &mut self,
        channel: Channel,
        data: Vec<u8>,
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        let state = &mut self.channels[channel.index()];
        match state.pending.take() {
            Some(pending) if pending.bulk => self.complete_payload(channel, pending, &data, host),
            other => {
                state.pending = other;
                Err(KhrnError::BulkNotAnnounced {
                    channel,
                    len: data.len(),
                })
            }
        }
    }

    /// Counters, with live object counts.
    pub fn stats(&self) -> KhrnStats {
        KhrnStats {
            contexts: self.contexts.len() as u64,
            surfaces: self.surfaces.len() as u64,
            textures: self
                .contexts
                .values()
                .map(|c| c.textures.len() as u64)
                .sum(),
            ..self.stats
        }
    }

    /// The buffer most recently presented from `surface`, if it has been swapped.
    pub fn surface_image(&self, surface: u32) -> Option<&vc_gles::Image> {
        self.surfaces.get(&surface)?.presented_image()
    }

    /// The buffer most recently presented to dispmanx element `window` by any of this
    /// client's surfaces.
    pub fn window_image(&self, window: u32) -> Option<&vc_gles::Image> {
        self.surfaces
            .values()
            .filter_map(|s| match s.presented_to {
                Some((w, seq)) if w == window => Some((seq, s)),
                _ => None,
            })
            .max_by_key(|&(seq, _)| seq)
            .and_then(|(_, s)| s.presented_image())
    }

    /// Whether a payload (message or bulk) is still expected on `channel`.
    pub fn payload_pending(&self, channel: Channel) -> bool {
        self.channels[channel.index()].pending.is_some()
    }

    fn run_commands(
        &mut self,
        channel: Channel,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        let mut words = Words::new(data);
        while !words.is_empty() {
            let id = words.u32(0)?;
            match self.dispatch(channel, id, &mut words, host)? {
                Flow::Continue => self.stats.commands += 1,
                Flow::AwaitPayload => {
                    self.stats.commands += 1;
                    if !words.is_empty() {
                        return Err(KhrnError::TrailingAfterPayload {
                            name: ids::command_name(id),
                            trailing: words.remaining(),
                        });
                    }
                }
                Flow::Unknown => {
                    self.stats.unknown_commands += 1;
                    host.log(&format!(
                        "khrn: unknown command {id:#06x} ({}); dropping {} bytes of the message",
                        ids::command_name(id),
                        words.remaining()
                    ));
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        channel: Channel,
        id: u32,
        words: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id & ids::BASE_MASK {
            ids::EGLBASE | ids::KHRNMISC => self.egl_command(channel, id, words, host),
            ids::GLBASE | ids::GLBASE_11 => match self.gl_command(channel, id, words, host)? {
                Flow::Unknown => self.query_command(channel, id, words, host),
                flow => Ok(flow),
            },
            ids::GLBASE_20 => self.gl20_command(channel, id, words, host),
            _ => Ok(Flow::Unknown),
        }
    }

    // ----- replies -------------------------------------------------------------------

    /// A `_RES` answer: exactly one 4-byte message.
    fn reply_u32(&mut self, host: &mut dyn KhrnHost, channel: Channel, value: u32) {
        self.stats.replies += 1;
        host.reply(channel, &value.to_le_bytes());
    }

    /// An `_OUT_CTRL` answer of bytes (`GLboolean`s): one message `[len, data]`.
    fn reply_out_ctrl_bytes(&mut self, host: &mut dyn KhrnHost, channel: Channel, data: &[u8]) {
        let mut msg = Vec::with_capacity(4 + data.len());
        msg.extend_from_slice(&(data.len() as u32).to_le_bytes());
        msg.extend_from_slice(data);
        self.stats.replies += 1;
        host.reply(channel, &msg);
    }

    /// An `_OUT_CTRL` answer: one message `[len, data]`.
    fn reply_out_ctrl(&mut self, host: &mut dyn KhrnHost, channel: Channel, words: &[u32]) {
        let mut msg = Vec::with_capacity(4 + 4 * words.len());
        msg.extend_from_slice(&((4 * words.len()) as u32).to_le_bytes());
        msg.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        self.stats.replies += 1;
        host.reply(channel, &msg);
    }

    /// An `_OUT_BULK` answer: `[len]`, then the data as a message (≤ 2032) or a bulk.
    fn reply_out_bulk(&mut self, host: &mut dyn KhrnHost, channel: Channel, data: Vec<u8>) {
        self.stats.replies += 1;
        host.reply(channel, &(data.len() as u32).to_le_bytes());
        if data.is_empty() {
            return;
        }
        if data.len() <= CTRL_THRESHOLD {
            self.stats.replies += 1;
            host.reply(channel, &data);
        } else {
            host.bulk_to_client(channel, data);
        }
    }

    // ----- payloads ------------------------------------------------------------------

    /// Record that the next item on `channel` is a `len`-byte payload for `id`.
    ///
    /// Must be called with `0 < len < 0xffffffff`; callers handle NULL and empty payloads.
    fn expect_payload(
        &mut self,
        channel: Channel,
        id: u32,
        len: u32,
        action: state::PayloadAction,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        if len > MAX_PAYLOAD {
            return Err(KhrnError::PayloadTooLarge {
                name: ids::command_name(id),
                len,
            });
        }
        let bulk = len as usize > CTRL_THRESHOLD;
        if bulk {
            host.expect_bulk_from_client(channel, len);
        }
        self.channels[channel.index()].pending = Some(Pending {
            id,
            len,
            bulk,
            action,
        });
        Ok(Flow::AwaitPayload)
    }

    fn complete_payload(
        &mut self,
        channel: Channel,
        pending: Pending,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        if data.len() != pending.len as usize {
            // The announced command cannot be completed; an IN_BULK_RES caller still
            // waits for its answer, so give it the failure value to stay in step.
            if let Some(value) = pending.action.failure_reply() {
                self.reply_u32(host, channel, value);
            }
            return Err(KhrnError::PayloadLength {
                channel,
                name: ids::command_name(pending.id),
                expected: pending.len,
                got: data.len(),
            });
        }
        self.stats.payloads += 1;
        self.execute_payload(channel, pending, data, host)
    }

    // ----- lookups -------------------------------------------------------------------

    fn current(&self, channel: Channel) -> Current {
        self.channels[channel.index()].current
    }
}
