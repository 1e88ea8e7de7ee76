//! Server-side objects: contexts, surfaces, name spaces and pending payloads.

use std::collections::{BTreeMap, BTreeSet};

/// Attribute slots tracked per context (GL 1.1: position, colour, normal, 4 texcoord
/// units, point size, matrix weight, matrix index; GL 2.0 uses 0–7).
pub(super) const MAX_ATTRIBS: usize = 10;
/// Cache grows answered TRUE (64 bytes after the first, 2 MiB after the 16th).
pub(super) const MAX_CACHE_GROWS: u32 = 16;
/// Live names recorded per name space; names past this are handed out but not tracked.
pub(super) const MAX_NAMES: usize = 1 << 16;
/// Texture units of the GL 1.1 renderer.
pub(super) const TEXTURE_UNITS: usize = vc_gles::program::MAX_TEXTURE_UNITS;

/// The client API of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// OpenGL ES 1.1: executed by the software renderer.
    Gles11,
    /// OpenGL ES 2.0: GLSL ES programs on the programmable pipeline.
    Gles20,
}

/// One vertex attribute as set by `GLINTATTRIBPOINTER` / `GLINTATTRIBENABLE`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Attrib {
    pub enabled: bool,
    pub size: u32,
    pub ty: u32,
    pub normalized: bool,
    pub stride: u32,
    /// Client pointer (cache draws) or offset into `buffer`.
    pub pointer: u32,
    /// `GL_ARRAY_BUFFER` binding when the pointer was set (0 = client memory).
    pub buffer: u32,
}

/// A set of object names handed out by the server (`glGen*`: 1, 2, 3, …).
#[derive(Debug, Default)]
pub(super) struct Names {
    live: BTreeSet<u32>,
    last: u32,
}

impl Names {
    /// `n` fresh names, skipping any in use.
    pub fn generate(&mut self, n: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            self.last = self.last.wrapping_add(1);
            if self.last == 0 || self.live.contains(&self.last) {
                continue;
            }
            self.insert(self.last);
            out.push(self.last);
        }
        out
    }

    /// Record `name` as in use (binding an ungenerated name creates it in GL).
    pub fn insert(&mut self, name: u32) {
        if name != 0 && self.live.len() < MAX_NAMES {
            self.live.insert(name);
        }
    }

    pub fn remove(&mut self, name: u32) -> bool {
        self.live.remove(&name)
    }

    pub fn contains(&self, name: u32) -> bool {
        self.live.contains(&name)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }
}

/// A GL 2.0 shader or program object.
pub(super) enum Object20 {
    Shader(super::glsl::ShaderObject),
    Program(super::glsl::ProgramObject),
}

/// One rendering context.
pub(super) struct Context {
    pub api: Api,
    pub gl: vc_gles::Gles11,
    /// First error recorded by the server itself (not the renderer), 0 if none.
    pub error: u32,
    pub attribs: [Attrib; MAX_ATTRIBS],
    pub cache: Vec<u8>,
    pub cache_grows: u32,
    pub textures: Names,
    pub active_unit: usize,
    pub bound_textures: [u32; TEXTURE_UNITS],
    pub buffer_names: Names,
    pub buffers: BTreeMap<u32, Vec<u8>>,
    pub buffer_bytes: usize,
    pub array_buffer: u32,
    pub element_buffer: u32,
    pub framebuffers: Names,
    pub framebuffer: u32,
    /// Texture attached as `GL_COLOR_ATTACHMENT0` of each framebuffer object.
    pub color_attachments: BTreeMap<u32, u32>,
    pub renderbuffers: Names,
    pub objects: BTreeMap<u32, Object20>,
    pub next_object: u32,
    /// `glUseProgram`'s program (0: none).
    pub current_program: u32,
    /// `glVertexAttrib*` values by location.
    pub current_attribs: [[f32; 4]; vc_gles::program::MAX_VERTEX_ATTRIBS],
}

impl Context {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            gl: vc_gles::Gles11::new(),
            error: 0,
            attribs: [Attrib::default(); MAX_ATTRIBS],
            cache: Vec::new(),
            cache_grows: 0,
            textures: Names::default(),
            active_unit: 0,
            bound_textures: [0; TEXTURE_UNITS],
            buffer_names: Names::default(),
            buffers: BTreeMap::new(),
            buffer_bytes: 0,
            array_buffer: 0,
            element_buffer: 0,
            framebuffers: Names::default(),
            framebuffer: 0,
            color_attachments: BTreeMap::new(),
            renderbuffers: Names::default(),
            objects: BTreeMap::new(),
            next_object: 0,
            current_program: 0,
            current_attribs: [[0.0, 0.0, 0.0, 1.0]; vc_gles::program::MAX_VERTEX_ATTRIBS],
        }
    }

    /// Record a server-side GL error (the first one sticks until read, as in GL).
    pub fn set_error(&mut self, error: u32) {
        if self.error == 0 {
            self.error = error;
        }
    }

    /// `glGetError`: the server's own error first, then the renderer's.
    pub fn take_error(&mut self) -> u32 {
        let own = std::mem::take(&mut self.error);
        let renderer = self.gl.get_error();
        if own == 0 { renderer } else { own }
    }

    /// `GLINTCACHEGROW`: double the cache (64 bytes after the first grow).
    pub fn grow_cache(&mut self) -> bool {
        if self.cache_grows >= MAX_CACHE_GROWS {
            return false;
        }
        self.cache_grows += 1;
        self.cache.resize(32usize << self.cache_grows, 0);
        true
    }

    /// The texture bound to the active unit.
    pub fn bound_texture(&self) -> u32 {
        self.bound_textures[self.active_unit]
    }

    /// Forget a deleted texture's bindings.
    pub fn forget_texture(&mut self, name: u32) {
        for bound in &mut self.bound_textures {
            if *bound == name {
                *bound = 0;
            }
        }
    }
}

/// One EGL surface (window, pbuffer or pixmap) with its colour buffers.
pub(super) struct EglSurface {
    pub width: u32,
    pub height: u32,
    pub depth: bool,
    pub buffers: Vec<vc_gles::Surface>,
    /// Index of the buffer being rendered.
    pub back: usize,
    /// Index of the buffer most recently presented.
    pub presented: Option<usize>,
    /// Dispmanx element of the latest swap and the server-wide swap number it had.
    pub presented_to: Option<(u32, u64)>,
    /// KHAN semaphore name (`0xffffffff`: none).
    pub sem: u32,
    /// Native window handle given at creation (the swap carries the current one).
    pub window: u32,
}

impl EglSurface {
    /// Pixel memory of a surface of this shape.
    pub fn bytes_for(width: u32, height: u32, buffers: usize, depth: bool) -> usize {
        let per_buffer = width as usize * height as usize * if depth { 8 } else { 4 };
        per_buffer * buffers
    }

    pub fn new(
        width: u32,
        height: u32,
        buffers: usize,
        depth: bool,
        sem: u32,
        window: u32,
    ) -> Self {
        Self {
            width,
            height,
            depth,
            buffers: (0..buffers)
                .map(|_| vc_gles::Surface::new(width, height, depth))
                .collect(),
            back: 0,
            presented: None,
            presented_to: None,
            sem,
            window,
        }
    }

    pub fn bytes(&self) -> usize {
        Self::bytes_for(self.width, self.height, self.buffers.len(), self.depth)
    }

    pub fn back_mut(&mut self) -> &mut vc_gles::Surface {
        &mut self.buffers[self.back]
    }

    pub fn presented_image(&self) -> Option<&vc_gles::Image> {
        self.presented.map(|i| &self.buffers[i].color)
    }
}

/// Arguments of `glTexImage2D` / `glTexSubImage2D` as sent on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) struct TexArgs {
    pub target: u32,
    pub level: i32,
    pub internal_format: u32,
    pub xoffset: i32,
    pub yoffset: i32,
    pub width: i32,
    pub height: i32,
    pub border: i32,
    pub format: u32,
    pub ty: u32,
    pub align: u32,
}

/// Which name space a `glDelete*` payload refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameKind {
    Textures,
    Buffers,
    Framebuffers,
    Renderbuffers,
}

/// Which location query a GL 2.0 name payload answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocationKind {
    Attrib,
    Uniform,
}

/// Progress through the multi-payload framing of `glShaderSource`.
#[derive(Debug, Clone)]
pub(super) struct ShaderSource {
    pub shader: u32,
    pub count: u32,
    /// The caller's length array, once received (`has_lengths`).
    pub lengths: Option<Vec<i32>>,
    /// String being received.
    pub index: u32,
    /// Source gathered so far.
    pub source: Vec<u8>,
}

/// What to do with a payload once it arrives.
#[derive(Debug, Clone)]
pub(super) enum PayloadAction {
    TexImage(TexArgs),
    TexSubImage(TexArgs),
    Delete { kind: NameKind, n: u32 },
    BufferData { target: u32, size: u32 },
    BufferSubData { target: u32, offset: u32 },
    Location { kind: LocationKind, program: u32 },
    BindAttribLocation { program: u32, index: u32 },
    ShaderLengths(ShaderSource),
    ShaderStringLength(ShaderSource),
    ShaderString(ShaderSource),
}

impl PayloadAction {
    /// The `_RES` answer owed if the payload cannot be used (IN_BULK_RES commands only).
    pub fn failure_reply(&self) -> Option<u32> {
        match self {
            PayloadAction::TexImage(_) => Some(0),
            PayloadAction::Location { .. } => Some(u32::MAX),
            _ => None,
        }
    }
}

/// A payload announced by the last command of a message.
#[derive(Debug)]
pub(super) struct Pending {
    pub id: u32,
    pub len: u32,
    pub bulk: bool,
    pub action: PayloadAction,
}
