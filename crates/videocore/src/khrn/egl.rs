//! EGL and driver-control commands: contexts, surfaces, make-current, swap.

use super::state::{Api, Context, EglSurface};
use super::wire::Words;
use super::{
    Channel, Current, Flow, KhrnError, KhrnHost, KhrnServer, MAX_CONTEXTS, MAX_SURFACE_BYTES,
    MAX_SURFACE_DIM, MAX_SURFACES, ids,
};

/// `KHRN_IMAGE_FORMAT_T` value meaning "no buffer" (`IMAGE_FORMAT_INVALID`).
const IMAGE_FORMAT_INVALID: u32 = 0xffff_ffff;
/// Most colour buffers a surface may have (triple buffering).
const MAX_BUFFERS: u32 = 3;

impl KhrnServer {
    pub(super) fn egl_command(
        &mut self,
        channel: Channel,
        id: u32,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id {
            ids::EGLINTMAKECURRENT => {
                // gltype and the read surface add nothing here: the context id implies
                // the API, and no command reads pixels back.
                let [
                    pid_lo,
                    pid_hi,
                    _gltype,
                    context,
                    draw,
                    _read,
                    _vg_ctx,
                    _vg_surf,
                ] = w.array::<8>(id)?;
                self.channels[channel.index()].current = Current {
                    pid: u64::from(pid_lo) | u64::from(pid_hi) << 32,
                    context,
                    draw,
                };
            }
            ids::EGLINTCREATEGLES11 | ids::EGLINTCREATEGLES20 => {
                let [_share_context, _share_type] = w.array::<2>(id)?;
                let api = if id == ids::EGLINTCREATEGLES11 {
                    Api::Gles11
                } else {
                    Api::Gles20
                };
                let context = self.create_context(api, host);
                self.reply_u32(host, channel, context);
            }
            ids::EGLINTCREATESURFACE => {
                let args = w.array::<14>(id)?;
                let (width, height, surface) = self.create_surface(&args, host);
                self.reply_out_ctrl(host, channel, &[width, height, surface]);
            }
            ids::EGLINTDESTROYSURFACE => {
                let surface = w.u32(id)?;
                if let Some(s) = self.surfaces.remove(&surface) {
                    self.surface_bytes -= s.bytes();
                }
                self.reply_u32(host, channel, 0);
            }
            ids::EGLINTDESTROYGL => {
                let context = w.u32(id)?;
                self.contexts.remove(&context);
            }
            ids::EGLINTSWAPBUFFERS => {
                let [surface, width, height, window, preserve, _position] = w.array::<6>(id)?;
                self.swap_buffers(
                    channel,
                    surface,
                    (width, height),
                    window,
                    preserve != 0,
                    host,
                );
            }
            ids::EGLINTFLUSH => {
                // Rendering is synchronous: nothing is ever left to flush.
                let [_flush_gl, _flush_vg] = w.array::<2>(id)?;
            }
            ids::KHRNMISCTRYUNLOAD => self.reply_u32(host, channel, 0),
            _ => return Ok(Flow::Unknown),
        }
        Ok(Flow::Continue)
    }

    /// `EGLINTCREATEGLES11/20`: a new context id (0 if the client has too many).
    fn create_context(&mut self, api: Api, host: &mut dyn KhrnHost) -> u32 {
        if self.contexts.len() >= MAX_CONTEXTS {
            host.log(&format!(
                "khrn: client {} exceeds {MAX_CONTEXTS} contexts",
                self.client_id
            ));
            return 0;
        }
        let id = fresh_id(&mut self.next_context, |id| self.contexts.contains_key(&id));
        self.contexts.insert(id, Context::new(api));
        id
    }

    /// `EGLINTCREATESURFACE`: returns (width, height, surface id or 0 on failure).
    fn create_surface(&mut self, args: &[u32; 14], host: &mut dyn KhrnHost) -> (u32, u32, u32) {
        let [
            window,
            buffers,
            width,
            height,
            color,
            depth,
            _mask,
            _multisample,
            _largest,
        ] = [
            args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8],
        ];
        let sem = args[12];
        let with_depth = depth != IMAGE_FORMAT_INVALID;
        let fail = |host: &mut dyn KhrnHost, why: &str| {
            host.log(&format!(
                "khrn: cannot create {width}x{height} surface (colour {color:#x}, {buffers} buffers): {why}"
            ));
            (width, height, 0)
        };
        if !(1..=MAX_SURFACE_DIM).contains(&width) || !(1..=MAX_SURFACE_DIM).contains(&height) {
            return fail(host, "bad size");
        }
        if !(1..=MAX_BUFFERS).contains(&buffers) {
            return fail(host, "bad buffer count");
        }
        if self.surfaces.len() >= MAX_SURFACES {
            return fail(host, "too many surfaces");
        }
        let bytes = EglSurface::bytes_for(width, height, buffers as usize, with_depth);
        if self.surface_bytes + bytes > MAX_SURFACE_BYTES {
            return fail(host, "out of surface memory");
        }
        let id = fresh_id(&mut self.next_surface, |id| self.surfaces.contains_key(&id));
        let surface = EglSurface::new(width, height, buffers as usize, with_depth, sem, window);
        self.surface_bytes += bytes;
        self.surfaces.insert(id, surface);
        (width, height, id)
    }

    /// `EGLINTSWAPBUFFERS`: present the back buffer, rotate, post the buffer semaphore.
    fn swap_buffers(
        &mut self,
        channel: Channel,
        surface_id: u32,
        size: (u32, u32),
        window: u32,
        preserve: bool,
        host: &mut dyn KhrnHost,
    ) {
        let pid = self.current(channel).pid;
        let Some(surface) = self.surfaces.get_mut(&surface_id) else {
            host.log(&format!(
                "khrn: swap of unknown surface {surface_id:#x} (pid {pid})"
            ));
            return;
        };
        let back = surface.back;
        host.present(window, &surface.buffers[back].color);
        surface.presented = Some(back);
        surface.presented_to = Some((window, self.stats.swaps));
        surface.back = (back + 1) % surface.buffers.len();
        if preserve && surface.back != back {
            let (done, next) = (surface.buffers[back].color.pixels.clone(), surface.back);
            surface.buffers[next].color.pixels = done;
        }
        let sem = surface.sem;
        let (width, height) = size;
        if (width, height) != (surface.width, surface.height) {
            self.resize_surface(surface_id, width, height, host);
        }
        self.stats.swaps += 1;
        if sem != u32::MAX {
            self.stats.khan_posts += 1;
            host.post_khan(pid, ids::ASYNC_COMMAND_POST, sem);
        }
    }

    /// The native window changed size: reallocate the surface's buffers (if allowed).
    fn resize_surface(
        &mut self,
        surface_id: u32,
        width: u32,
        height: u32,
        host: &mut dyn KhrnHost,
    ) {
        let Some(surface) = self.surfaces.get_mut(&surface_id) else {
            return;
        };
        let old = surface.bytes();
        let new = EglSurface::bytes_for(width, height, surface.buffers.len(), surface.depth);
        let valid =
            (1..=MAX_SURFACE_DIM).contains(&width) && (1..=MAX_SURFACE_DIM).contains(&height);
        if !valid || self.surface_bytes - old + new > MAX_SURFACE_BYTES {
            host.log(&format!(
                "khrn: cannot resize surface {surface_id:#x} to {width}x{height}"
            ));
            return;
        }
        let resized = EglSurface::new(
            width,
            height,
            surface.buffers.len(),
            surface.depth,
            surface.sem,
            surface.window,
        );
        *surface = resized;
        self.surface_bytes = self.surface_bytes - old + new;
    }
}

/// The next unused non-zero id from a counter.
fn fresh_id(next: &mut u32, in_use: impl Fn(u32) -> bool) -> u32 {
    loop {
        let id = *next;
        *next = next.wrapping_add(1);
        if id != 0 && !in_use(id) {
            return id;
        }
    }
}
