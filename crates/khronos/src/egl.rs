//! EGL 1.4 for the VideoCore: displays, the client-side config table, contexts, window
//! surfaces, make-current and swap.
//!
//! Handles are small client-side numbers, as in the real client: the display is 1, contexts
//! and surfaces are numbered from 1 separately; the VideoCore's own ids (e.g. context `0x100`,
//! surface `0x200`) stay inside the client and appear only in make-current records and
//! commands. A window surface's client handle also names its KHAN semaphore.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gles::GlState;
use crate::ids;
use crate::rpc::McIds;
use crate::sem::Semaphore;
use crate::{Client, StatCounters};

/// `EGL_BUFFER_SIZE`.
pub const BUFFER_SIZE: i32 = 0x3020;
/// `EGL_ALPHA_SIZE`.
pub const ALPHA_SIZE: i32 = 0x3021;
/// `EGL_BLUE_SIZE`.
pub const BLUE_SIZE: i32 = 0x3022;
/// `EGL_GREEN_SIZE`.
pub const GREEN_SIZE: i32 = 0x3023;
/// `EGL_RED_SIZE`.
pub const RED_SIZE: i32 = 0x3024;
/// `EGL_DEPTH_SIZE`.
pub const DEPTH_SIZE: i32 = 0x3025;
/// `EGL_STENCIL_SIZE`.
pub const STENCIL_SIZE: i32 = 0x3026;
/// `EGL_CONFIG_CAVEAT`.
pub const CONFIG_CAVEAT: i32 = 0x3027;
/// `EGL_CONFIG_ID`.
pub const CONFIG_ID: i32 = 0x3028;
/// `EGL_SAMPLES`.
pub const SAMPLES: i32 = 0x3031;
/// `EGL_SAMPLE_BUFFERS`.
pub const SAMPLE_BUFFERS: i32 = 0x3032;
/// `EGL_SURFACE_TYPE`.
pub const SURFACE_TYPE: i32 = 0x3033;
/// `EGL_NONE`: terminates attribute lists.
pub const NONE: i32 = 0x3038;
/// `EGL_ALPHA_MASK_SIZE`.
pub const ALPHA_MASK_SIZE: i32 = 0x303e;
/// `EGL_RENDERABLE_TYPE`.
pub const RENDERABLE_TYPE: i32 = 0x3040;
/// `EGL_DONT_CARE`.
pub const DONT_CARE: i32 = -1;
/// `EGL_PBUFFER_BIT`.
pub const PBUFFER_BIT: i32 = 0x1;
/// `EGL_PIXMAP_BIT`.
pub const PIXMAP_BIT: i32 = 0x2;
/// `EGL_WINDOW_BIT`.
pub const WINDOW_BIT: i32 = 0x4;
/// `EGL_OPENGL_ES_BIT`.
pub const OPENGL_ES_BIT: i32 = 0x1;
/// `EGL_OPENVG_BIT`.
pub const OPENVG_BIT: i32 = 0x2;
/// `EGL_OPENGL_ES2_BIT`.
pub const OPENGL_ES2_BIT: i32 = 0x4;

/// `KHRN_IMAGE_FORMAT_T` values sent in `EGLINTCREATESURFACE`.
mod format {
    pub(super) const ABGR_8888_RSO: u32 = 0x9428;
    pub(super) const XBGR_8888_RSO: u32 = 0x8428;
    pub(super) const RGB_565_RSO: u32 = 0x1a418;
    pub(super) const DEPTH_32_TLBD: u32 = 0xf2c;
    pub(super) const DEPTH_COL_64_TLBD: u32 = 0xf34;
    pub(super) const COL_32_TLBD: u32 = 0xd42c;
    pub(super) const A_8_RSO: u32 = 0x1010;
    pub(super) const INVALID: u32 = 0xffff_ffff;
}

/// Window surfaces are triple-buffered unless `V3D_DOUBLE_BUFFER=1` (read at initialize).
const DEFAULT_BUFFERS: u32 = 3;
/// `EGL_CONFIG_MAX_WIDTH/HEIGHT`.
const MAX_WINDOW: u32 = 2048;

/// One entry of the client-side config table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    id: u32,
    red: u8,
    green: u8,
    blue: u8,
    alpha: u8,
    depth: u8,
    stencil: u8,
    samples: u8,
    mask: u8,
}

const fn cfg(
    id: u32,
    rgba: (u8, u8, u8, u8),
    depth: u8,
    stencil: u8,
    samples: u8,
    mask: u8,
) -> Config {
    Config {
        id,
        red: rgba.0,
        green: rgba.1,
        blue: rgba.2,
        alpha: rgba.3,
        depth,
        stencil,
        samples,
        mask,
    }
}

const RGBA: (u8, u8, u8, u8) = (8, 8, 8, 8);
const RGBX: (u8, u8, u8, u8) = (8, 8, 8, 0);
const R565: (u8, u8, u8, u8) = (5, 6, 5, 0);

/// The 28 configs. What the spec pins down: there are 28; config 7 is RGBA 8888 without
/// depth, stencil, multisampling or alpha mask; `{R8,G8,B8,A8,WINDOW}` matches 9 of them,
/// sorted 7, 25, 5, 3, 1, 15, 13, 11, 9. The rest of the table is a reconstruction that
/// satisfies those facts: RGBA/RGBX pairs over four depth/stencil choices, the same with 4×
/// multisampling, the 565 variants, and four alpha-mask (OpenVG) configs.
const CONFIGS: [Config; 28] = [
    cfg(1, RGBA, 24, 8, 0, 0),
    cfg(2, RGBX, 24, 8, 0, 0),
    cfg(3, RGBA, 24, 0, 0, 0),
    cfg(4, RGBX, 24, 0, 0, 0),
    cfg(5, RGBA, 16, 0, 0, 0),
    cfg(6, RGBX, 16, 0, 0, 0),
    cfg(7, RGBA, 0, 0, 0, 0),
    cfg(8, RGBX, 0, 0, 0, 0),
    cfg(9, RGBA, 24, 8, 4, 0),
    cfg(10, RGBX, 24, 8, 4, 0),
    cfg(11, RGBA, 24, 0, 4, 0),
    cfg(12, RGBX, 24, 0, 4, 0),
    cfg(13, RGBA, 16, 0, 4, 0),
    cfg(14, RGBX, 16, 0, 4, 0),
    cfg(15, RGBA, 0, 0, 4, 0),
    cfg(16, RGBX, 0, 0, 4, 0),
    cfg(17, R565, 24, 8, 0, 0),
    cfg(18, R565, 24, 0, 0, 0),
    cfg(19, R565, 16, 0, 0, 0),
    cfg(20, R565, 0, 0, 0, 0),
    cfg(21, R565, 24, 8, 4, 0),
    cfg(22, R565, 24, 0, 4, 0),
    cfg(23, R565, 16, 0, 4, 0),
    cfg(24, R565, 0, 0, 4, 0),
    cfg(25, RGBA, 0, 0, 0, 8),
    cfg(26, RGBX, 0, 0, 0, 8),
    cfg(27, R565, 0, 0, 0, 8),
    cfg(28, R565, 24, 8, 0, 8),
];

impl Config {
    /// `EGL_CONFIG_ID` (1-based).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// All configs of the table.
    pub fn all() -> &'static [Config] {
        &CONFIGS
    }

    /// The config with this id.
    pub fn by_id(id: u32) -> Option<Config> {
        CONFIGS.iter().copied().find(|c| c.id == id)
    }

    /// The value of an EGL config attribute, `None` for attributes this table does not know.
    pub fn attrib(&self, attribute: i32) -> Option<i32> {
        Some(match attribute {
            BUFFER_SIZE => i32::from(self.red + self.green + self.blue + self.alpha),
            RED_SIZE => i32::from(self.red),
            GREEN_SIZE => i32::from(self.green),
            BLUE_SIZE => i32::from(self.blue),
            ALPHA_SIZE => i32::from(self.alpha),
            DEPTH_SIZE => i32::from(self.depth),
            STENCIL_SIZE => i32::from(self.stencil),
            CONFIG_CAVEAT => NONE,
            CONFIG_ID => self.id as i32,
            SAMPLES => i32::from(self.samples),
            SAMPLE_BUFFERS => i32::from(self.samples > 0),
            SURFACE_TYPE => WINDOW_BIT | PIXMAP_BIT | PBUFFER_BIT,
            ALPHA_MASK_SIZE => i32::from(self.mask),
            RENDERABLE_TYPE => OPENGL_ES_BIT | OPENGL_ES2_BIT | OPENVG_BIT,
            _ => return None,
        })
    }

    fn colour_format(&self) -> u32 {
        match (self.red, self.alpha) {
            (8, 8) => format::ABGR_8888_RSO,
            (8, _) => format::XBGR_8888_RSO,
            _ => format::RGB_565_RSO,
        }
    }

    fn depth_format(&self) -> u32 {
        match (self.depth > 0 || self.stencil > 0, self.samples > 0) {
            (false, _) => format::INVALID,
            (true, false) => format::DEPTH_32_TLBD,
            (true, true) => format::DEPTH_COL_64_TLBD,
        }
    }

    fn mask_format(&self) -> u32 {
        if self.mask > 0 {
            format::A_8_RSO
        } else {
            format::INVALID
        }
    }

    fn multisample_format(&self) -> u32 {
        if self.samples > 0 {
            format::COL_32_TLBD
        } else {
            format::INVALID
        }
    }
}

/// A dispmanx window: the element the VideoCore presents into and its size
/// (`EGL_DISPMANX_WINDOW_T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeWindow {
    /// The dispmanx element handle.
    pub element: u32,
    /// Width in pixels (≤ 2048).
    pub width: u32,
    /// Height in pixels (≤ 2048).
    pub height: u32,
}

/// An EGL display (there is one: `EGL_DEFAULT_DISPLAY`, handle 1).
#[derive(Clone)]
pub struct Display {
    client: Arc<Client>,
}

/// A rendering context (client handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Context(u32);

impl Context {
    /// The client-side `EGLContext` value.
    pub fn handle(&self) -> u32 {
        self.0
    }
}

/// A window surface (client handle; also the name of its KHAN semaphore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Surface(u32);

impl Surface {
    /// The client-side `EGLSurface` value.
    pub fn handle(&self) -> u32 {
        self.0
    }
}

pub(crate) struct ContextEntry {
    server_id: u32,
    gltype: u32,
    destroy_pending: bool,
    pub(crate) gl: GlState,
}

struct SurfaceEntry {
    server_id: u32,
    window: NativeWindow,
    sem: Arc<Semaphore>,
    destroy_pending: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Current {
    ctx: u32,
    draw: u32,
    read: u32,
}

/// EGL objects of the process.
pub(crate) struct EglState {
    initialized: bool,
    buffers: u32,
    next_context: u32,
    next_surface: u32,
    contexts: HashMap<u32, ContextEntry>,
    surfaces: HashMap<u32, SurfaceEntry>,
    current: Option<Current>,
}

impl Default for EglState {
    fn default() -> EglState {
        EglState {
            initialized: false,
            buffers: DEFAULT_BUFFERS,
            next_context: 1,
            next_surface: 1,
            contexts: HashMap::new(),
            surfaces: HashMap::new(),
            current: None,
        }
    }
}

impl EglState {
    /// The current context's GL state and API (1: OpenGL ES 1.1, 2: OpenGL ES 2.0).
    pub(crate) fn current_gl(&mut self) -> Option<(u32, &mut GlState)> {
        let cur = self.current?;
        let ctx = self.contexts.get_mut(&cur.ctx)?;
        Some((ctx.gltype, &mut ctx.gl))
    }
}

/// `eglGetDisplay(EGL_DEFAULT_DISPLAY)`.
///
/// The real client attaches here (writes its first make-current record); this one attaches
/// at the first call that needs the VideoCore, which puts the same bytes on the wire.
pub fn get_display(client: &Arc<Client>) -> Display {
    Display {
        client: Arc::clone(client),
    }
}

impl Display {
    /// The client this display speaks through.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// `eglInitialize`: returns the EGL version `(1, 4)`. Reads `V3D_DOUBLE_BUFFER=1`
    /// (2-buffered window surfaces instead of 3), as the real client does.
    ///
    /// # Errors
    /// None today; kept fallible like `eglInitialize`.
    pub fn initialize(&self) -> Result<(u32, u32)> {
        let mut st = self.client.lock();
        st.egl.initialized = true;
        st.egl.buffers = match std::env::var("V3D_DOUBLE_BUFFER") {
            Ok(v) if v.trim() == "1" => 2,
            _ => DEFAULT_BUFFERS,
        };
        Ok((1, 4))
    }

    fn check_initialized(&self, st: &crate::State) -> Result<()> {
        if st.egl.initialized {
            Ok(())
        } else {
            Err(Error::NotInitialized)
        }
    }

    /// `eglChooseConfig`: `attribs` is an EGL attribute list (`[name, value, …]`, optionally
    /// ended by [`NONE`]). Matching and sorting follow EGL 1.4 §3.4.1. No traffic.
    ///
    /// # Errors
    /// [`Error::NotInitialized`], [`Error::BadAttribute`] for an unknown attribute or a
    /// dangling name.
    pub fn choose_config(&self, attribs: &[i32]) -> Result<Vec<Config>> {
        self.check_initialized(&self.client.lock())?;
        let mut wanted: Vec<(i32, i32)> =
            vec![(SURFACE_TYPE, WINDOW_BIT), (RENDERABLE_TYPE, OPENGL_ES_BIT)];
        let mut it = attribs.iter();
        while let Some(&name) = it.next() {
            if name == NONE {
                break;
            }
            let &value = it.next().ok_or(Error::BadAttribute { attribute: name })?;
            if Config::by_id(1).and_then(|c| c.attrib(name)).is_none() {
                return Err(Error::BadAttribute { attribute: name });
            }
            wanted.retain(|(n, _)| *n != name);
            wanted.push((name, value));
        }
        let by_id = wanted
            .iter()
            .find(|(n, v)| *n == CONFIG_ID && *v != DONT_CARE);
        let mut found: Vec<Config> = CONFIGS
            .iter()
            .copied()
            .filter(|c| match by_id {
                Some(&(_, id)) => c.id as i32 == id,
                None => wanted.iter().all(|&(n, v)| matches(c, n, v)),
            })
            .collect();
        let colour_bits = |c: &Config| -> i32 {
            [RED_SIZE, GREEN_SIZE, BLUE_SIZE, ALPHA_SIZE]
                .iter()
                .filter(|a| wanted.iter().any(|(n, v)| n == *a && *v > 0))
                .map(|a| c.attrib(*a).unwrap_or(0))
                .sum()
        };
        let key = |c: &Config| {
            let a = |n| c.attrib(n).unwrap_or(0);
            (
                -colour_bits(c),
                a(BUFFER_SIZE),
                a(SAMPLE_BUFFERS),
                a(SAMPLES),
                a(DEPTH_SIZE),
                a(STENCIL_SIZE),
                a(ALPHA_MASK_SIZE),
                c.id,
            )
        };
        found.sort_by_key(key);
        Ok(found)
    }

    /// `eglCreateContext(dpy, config, EGL_NO_CONTEXT, {EGL_CONTEXT_CLIENT_VERSION, version})`
    /// → `EGLINTCREATEGLES11(0, 0)` (version 1) or `EGLINTCREATEGLES20(0, 1)` (version 2),
    /// each answered with the server's context id.
    ///
    /// # Errors
    /// [`Error::BadConfig`] for an unknown config, [`Error::BadAttribute`] for a version other
    /// than 1 or 2, [`Error::ServerRefused`] if the VideoCore returned 0, transport errors.
    pub fn create_context(&self, config: &Config, version: u32) -> Result<Context> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        Config::by_id(config.id).ok_or(Error::BadConfig { config: config.id })?;
        let (id, args, gltype) = match version {
            1 => (ids::EGLINTCREATEGLES11, [0, 0], 1),
            2 => (ids::EGLINTCREATEGLES20, [0, 1], 2),
            _ => {
                return Err(Error::BadAttribute {
                    attribute: 0x3098, // EGL_CONTEXT_CLIENT_VERSION
                });
            }
        };
        let server_id = st.rpc.call_res(id, &args)?;
        if server_id == 0 {
            return Err(Error::ServerRefused { command: id });
        }
        let handle = st.egl.next_context;
        st.egl.next_context += 1;
        st.egl.contexts.insert(
            handle,
            ContextEntry {
                server_id,
                gltype,
                destroy_pending: false,
                gl: GlState::default(),
            },
        );
        Ok(Context(handle))
    }

    /// `eglCreateWindowSurface`: creates the local semaphore `(pid_lo, pid_hi, handle)` with
    /// one count per buffer, then `EGLINTCREATESURFACE(element, buffers, w, h, formats…,
    /// sem = handle, type = WINDOW)` → `[12, w, h, surface id]`.
    ///
    /// # Errors
    /// [`Error::BadNativeWindow`] for a zero element or a size outside 1..=2048,
    /// [`Error::BadConfig`], [`Error::Reply`]/[`Error::ServerRefused`] for a bad answer,
    /// transport errors.
    pub fn create_window_surface(&self, config: &Config, window: &NativeWindow) -> Result<Surface> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        let config = Config::by_id(config.id).ok_or(Error::BadConfig { config: config.id })?;
        let w = *window;
        if w.element == 0
            || !(1..=MAX_WINDOW).contains(&w.width)
            || !(1..=MAX_WINDOW).contains(&w.height)
        {
            return Err(Error::BadNativeWindow {
                element: w.element,
                width: w.width,
                height: w.height,
            });
        }
        let handle = st.egl.next_surface;
        let buffers = st.egl.buffers;
        let pid = self.client.shared().current_pid()?;
        let sem = self
            .client
            .shared()
            .sems
            .open((pid as u32, (pid >> 32) as u32, handle), buffers);
        let reply = st.rpc.call_out_ctrl(
            ids::EGLINTCREATESURFACE,
            &[
                w.element,
                buffers,
                w.width,
                w.height,
                config.colour_format(),
                config.depth_format(),
                config.mask_format(),
                config.multisample_format(),
                0, // largest_pbuffer
                0, // mipmap
                u32::from(config.depth),
                u32::from(config.stencil),
                handle, // sem
                0,      // type: WINDOW
            ],
        )?;
        let [_, _, server_id] = ids::words::<3>(&reply).ok_or(Error::Reply {
            command: ids::EGLINTCREATESURFACE,
            expected: "[12, width, height, surface]",
            got: reply.len() + 4,
        })?;
        if server_id == 0 {
            return Err(Error::ServerRefused {
                command: ids::EGLINTCREATESURFACE,
            });
        }
        st.egl.next_surface += 1;
        st.egl.surfaces.insert(
            handle,
            SurfaceEntry {
                server_id,
                window: w,
                sem,
                destroy_pending: false,
            },
        );
        Ok(Surface(handle))
    }

    /// `eglMakeCurrent(dpy, draw, read, ctx)`; all `None` releases the current context.
    ///
    /// Leaving a context sends `EGLINTFLUSH(1, 0)` and flushes. The new ids go into the
    /// pending make-current record (rewritten in place if it is alone in the buffer, else a
    /// new record is appended). Objects destroyed while current are destroyed now.
    ///
    /// # Errors
    /// [`Error::BadMatch`] for a context without surfaces or surfaces without a context,
    /// [`Error::BadContext`]/[`Error::BadSurface`] for unknown handles, transport errors.
    pub fn make_current(
        &self,
        draw: Option<&Surface>,
        read: Option<&Surface>,
        ctx: Option<&Context>,
    ) -> Result<()> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        let st = &mut *st;
        let new = match (ctx, draw, read) {
            (None, None, None) => None,
            (Some(c), Some(d), Some(r)) => Some(Current {
                ctx: c.0,
                draw: d.0,
                read: r.0,
            }),
            (None, _, _) => return Err(Error::BadMatch("surfaces given without a context")),
            (Some(_), _, _) => {
                return Err(Error::BadMatch(
                    "a context needs both a draw and a read surface",
                ));
            }
        };
        let ids = match new {
            None => McIds::default(),
            Some(cur) => {
                let c = st
                    .egl
                    .contexts
                    .get(&cur.ctx)
                    .filter(|c| !c.destroy_pending)
                    .ok_or(Error::BadContext { handle: cur.ctx })?;
                let live_surface = |h: u32| {
                    st.egl
                        .surfaces
                        .get(&h)
                        .filter(|s| !s.destroy_pending)
                        .map(|s| s.server_id)
                        .ok_or(Error::BadSurface { handle: h })
                };
                McIds {
                    gltype: c.gltype,
                    gl_ctx: c.server_id,
                    gl_draw: live_surface(cur.draw)?,
                    gl_read: live_surface(cur.read)?,
                }
            }
        };
        if st.egl.current == new {
            return Ok(());
        }
        if st.egl.current.is_some() {
            st.rpc.call(ids::EGLINTFLUSH, &[1, 0])?;
            st.rpc.flush()?;
        }
        st.egl.current = new;
        st.rpc.make_current(ids)?;
        reap(st)
    }

    /// `eglSwapBuffers`: `EGLINTSWAPBUFFERS(surface, w, h, element, 0, 0)`, an immediate
    /// flush, then wait on the surface's semaphore. Like the real client this blocks until
    /// the VideoCore's KHAN POST frees a buffer: without posts the 4th swap never returns.
    ///
    /// # Errors
    /// [`Error::BadSurface`], transport errors.
    pub fn swap_buffers(&self, surface: &Surface) -> Result<()> {
        self.send_swap(surface)?.wait();
        Ok(())
    }

    /// [`swap_buffers`](Display::swap_buffers) with a bound on the wait: `Ok(false)` if no
    /// buffer was freed within `timeout`. The swap itself has been sent either way; the
    /// abandoned wait leaves the surface one buffer "ahead", which only relaxes throttling.
    ///
    /// # Errors
    /// [`Error::BadSurface`], transport errors.
    pub fn swap_buffers_timeout(&self, surface: &Surface, timeout: Duration) -> Result<bool> {
        Ok(self.send_swap(surface)?.wait_timeout(timeout))
    }

    fn send_swap(&self, surface: &Surface) -> Result<Arc<Semaphore>> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        let st = &mut *st;
        let s = st
            .egl
            .surfaces
            .get(&surface.0)
            .filter(|s| !s.destroy_pending)
            .ok_or(Error::BadSurface { handle: surface.0 })?;
        let w = s.window;
        let sem = Arc::clone(&s.sem);
        st.rpc.call(
            ids::EGLINTSWAPBUFFERS,
            &[s.server_id, w.width, w.height, w.element, 0, 0],
        )?;
        st.rpc.flush()?;
        StatCounters::add(&self.client.shared().stats.swaps, 1);
        Ok(sem)
    }

    /// `eglDestroySurface`: `EGLINTDESTROYSURFACE(S)` (waits for its reply), deferred until
    /// the surface is no longer current.
    ///
    /// # Errors
    /// [`Error::BadSurface`], transport errors.
    pub fn destroy_surface(&self, surface: Surface) -> Result<()> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        let s = st
            .egl
            .surfaces
            .get_mut(&surface.0)
            .filter(|s| !s.destroy_pending)
            .ok_or(Error::BadSurface { handle: surface.0 })?;
        s.destroy_pending = true;
        reap(&mut st)
    }

    /// `eglDestroyContext`: `EGLINTDESTROYGL(C)` and a flush, deferred until the context is
    /// no longer current.
    ///
    /// # Errors
    /// [`Error::BadContext`], transport errors.
    pub fn destroy_context(&self, ctx: Context) -> Result<()> {
        let mut st = self.client.lock();
        self.check_initialized(&st)?;
        let c = st
            .egl
            .contexts
            .get_mut(&ctx.0)
            .filter(|c| !c.destroy_pending)
            .ok_or(Error::BadContext { handle: ctx.0 })?;
        c.destroy_pending = true;
        reap(&mut st)
    }

    /// `eglTerminate`: destroys every object (those still current when they are released),
    /// then `KHRNMISCTRYUNLOAD` (waits for its reply). The display can be initialized again.
    ///
    /// # Errors
    /// Transport errors.
    pub fn terminate(&self) -> Result<()> {
        let mut st = self.client.lock();
        if !st.egl.initialized {
            return Ok(());
        }
        for s in st.egl.surfaces.values_mut() {
            s.destroy_pending = true;
        }
        for c in st.egl.contexts.values_mut() {
            c.destroy_pending = true;
        }
        reap(&mut st)?;
        st.rpc.call_res(ids::KHRNMISCTRYUNLOAD, &[])?;
        st.egl.initialized = false;
        Ok(())
    }
}

/// Destroy objects marked for destruction that are not current.
fn reap(st: &mut crate::State) -> Result<()> {
    let cur = st.egl.current;
    let dead_surfaces: Vec<u32> = st
        .egl
        .surfaces
        .iter()
        .filter(|(h, s)| s.destroy_pending && cur.is_none_or(|c| c.draw != **h && c.read != **h))
        .map(|(h, _)| *h)
        .collect();
    for h in dead_surfaces {
        if let Some(s) = st.egl.surfaces.remove(&h) {
            st.rpc.call_res(ids::EGLINTDESTROYSURFACE, &[s.server_id])?;
        }
    }
    let dead_contexts: Vec<u32> = st
        .egl
        .contexts
        .iter()
        .filter(|(h, c)| c.destroy_pending && cur.is_none_or(|cur| cur.ctx != **h))
        .map(|(h, _)| *h)
        .collect();
    for h in dead_contexts {
        if let Some(c) = st.egl.contexts.remove(&h) {
            st.rpc.call(ids::EGLINTDESTROYGL, &[c.server_id])?;
            st.rpc.flush()?;
        }
    }
    Ok(())
}

/// EGL 1.4 matching: sizes are minimums, bit masks must all be present, `DONT_CARE` matches.
fn matches(c: &Config, name: i32, value: i32) -> bool {
    if value == DONT_CARE {
        return true;
    }
    let have = c.attrib(name).unwrap_or(0);
    match name {
        SURFACE_TYPE | RENDERABLE_TYPE => have & value == value,
        CONFIG_CAVEAT => have == value,
        CONFIG_ID => have == value,
        _ => have >= value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_order_matches_the_real_table() {
        struct Null;
        impl crate::RpcTransport for Null {
            fn send(
                &self,
                _: crate::Channel,
                _: &[u8],
            ) -> std::result::Result<(), crate::TransportError> {
                Ok(())
            }
            fn recv(
                &self,
                c: crate::Channel,
            ) -> std::result::Result<Vec<u8>, crate::TransportError> {
                Err(crate::TransportError::Closed(c))
            }
            fn bulk_send(
                &self,
                _: crate::Channel,
                _: &[u8],
            ) -> std::result::Result<(), crate::TransportError> {
                Ok(())
            }
            fn bulk_recv(
                &self,
                c: crate::Channel,
                _: usize,
            ) -> std::result::Result<Vec<u8>, crate::TransportError> {
                Err(crate::TransportError::Closed(c))
            }
            fn client_id(
                &self,
                _: crate::Channel,
            ) -> std::result::Result<u32, crate::TransportError> {
                Ok(1)
            }
        }
        let client = Client::new(Arc::new(Null), crate::PidSource::ClientId);
        let dpy = get_display(&client);
        dpy.initialize().unwrap();
        let found = dpy
            .choose_config(&[
                RED_SIZE,
                8,
                GREEN_SIZE,
                8,
                BLUE_SIZE,
                8,
                ALPHA_SIZE,
                8,
                SURFACE_TYPE,
                WINDOW_BIT,
                NONE,
            ])
            .unwrap();
        let ids: Vec<u32> = found.iter().map(Config::id).collect();
        assert_eq!(ids, [7, 25, 5, 3, 1, 15, 13, 11, 9]);
        assert_eq!(found[0].colour_format(), 0x9428);
        assert_eq!(found[0].depth_format(), 0xffff_ffff);
        assert!(matches!(
            dpy.choose_config(&[0x1234, 1]),
            Err(Error::BadAttribute { .. })
        ));
    }
}
