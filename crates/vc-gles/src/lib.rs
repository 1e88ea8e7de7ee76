//! A software OpenGL ES 1.1 (Common profile, fixed function) renderer and a
//! dispmanx-style compositor for the software VideoCore.
//!
//! The KHRN server decodes the client's command stream and calls [`Gles11`] methods
//! one for one (`glEnable` → [`Gles11::enable`], `glDrawArrays` → [`Gles11::draw`] with
//! [`Indices::Range`], …), passing the [`Surface`] of the current EGL window surface.
//! On `eglSwapBuffers` the finished colour buffer goes to [`compose::compose`], which
//! paints the display from the dispmanx element stack (spec §4.2).
//!
//! # Pipeline
//!
//! 1. **Vertex fetch** ([`AttribArray`]): every submitted vertex is read from the
//!    client arrays (`BYTE`, `UNSIGNED_BYTE`, `SHORT`, `UNSIGNED_SHORT`, `FIXED` 16.16
//!    and `FLOAT`, little-endian, optionally normalised). The largest index is checked
//!    against every enabled array *before* anything is fetched, so an out-of-range
//!    draw is a `GL_INVALID_OPERATION` that draws nothing.
//! 2. **Transform**: position × (projection · modelview); texture coordinates ×
//!    texture matrix. Then primitive assembly: triangles, strips (odd triangles swap
//!    their first two vertices, as GL specifies, so all keep the same winding) and fans.
//! 3. **Clip** in homogeneous space (Sutherland–Hodgman) against the near and far
//!    planes and a guard band at `±32·w` in x and y; afterwards `w > 0` for every vertex.
//!    Pixels outside the viewport are removed by the raster rectangle, not by clipping.
//! 4. **Setup**: perspective division, viewport transform with the y flip (GL window
//!    row 0 is the bottom row; [`Image`] row 0 is the top), facing from the signed area
//!    of the clipped polygon in window coordinates (`glFrontFace`, `glCullFace`),
//!    snapping to 1/256 pixel, integer edge equations with the **top-left fill rule**
//!    (pixel centres exactly on an edge belong to the triangle whose edge is a top or
//!    left edge, so triangles sharing an edge cover each pixel once), and plane
//!    equations of `1/w`, `colour/w`, `(s, t, q)/w` and window `z`.
//! 5. **Tile binning**: the target is cut into 64×64 tiles; each triangle is appended
//!    to the list of every tile its bounding box touches and no edge rejects.
//! 6. **Raster**: bands of tiles (64 rows) are processed in parallel with rayon (or
//!    serially, see [`Gles11::set_parallel`]); inside a tile triangles run in
//!    submission order. Each pixel belongs to one tile only, so parallel and serial
//!    rendering give identical bytes.
//! 7. **Fragments**: perspective-correct colour and texture coordinates (divide by the
//!    interpolated `1/w`), texture sampling (`NEAREST`/`LINEAR`, `REPEAT`/
//!    `CLAMP_TO_EDGE`), texture environment (`MODULATE`, `REPLACE`, `DECAL`, `BLEND`,
//!    `ADD`), alpha test, depth test (only when the surface has a depth buffer),
//!    blending (`glBlendFunc` factors), colour mask; channels are rounded to nearest
//!    8-bit values.
//!
//! # Limits
//!
//! * No lighting, fog, user clip planes, stencil, polygon offset, logic ops, multisampling
//!   or `GL_COMBINE`; those enables/hints are accepted and have no effect.
//! * Points and lines are accepted and not drawn.
//! * One texture unit; only level 0 is sampled (mipmapped filters use their base filter
//!   after the GL completeness check); minification vs magnification is decided once per
//!   triangle from its texel-to-pixel area ratio. `GL_GENERATE_MIPMAP` is stored only.
//! * Textures up to 2048×2048 (NPOT allowed), 256 MiB per context
//!   ([`context::TEXTURE_MEMORY_BUDGET`]); viewports up to 8192; rendering reaches the
//!   first 16384 columns and rows of a surface.
//! * Rendering is immediate: every [`Gles11::draw`] rasterises before returning.
//!
//! # Example
//!
//! ```
//! use vc_gles::{gl, AttribArray, AttribType, Gles11, Indices, Surface, VertexArrays};
//!
//! let mut ctx = Gles11::new();
//! let mut target = Surface::new(64, 64, false);
//! ctx.clear_color(0.15, 0.25, 0.35, 1.0);
//! ctx.clear(gl::GL_COLOR_BUFFER_BIT, &mut target);
//! let tri: [i8; 6] = [-1, -1, 1, -1, 0, 1];
//! let bytes: Vec<u8> = tri.iter().map(|&v| v as u8).collect();
//! let arrays = VertexArrays {
//!     position: Some(AttribArray {
//!         size: 2, ty: AttribType::Byte, normalized: false, stride: 0, data: &bytes,
//!     }),
//!     ..Default::default()
//! };
//! ctx.draw(gl::GL_TRIANGLES, Indices::Range { first: 0, count: 3 }, &arrays, &mut target);
//! assert_eq!(ctx.get_error(), gl::GL_NO_ERROR);
//! assert_eq!(target.color.get(32, 40), [255, 255, 255, 255]);
//! assert_eq!(target.color.get(0, 0), [38, 64, 89, 255]);
//! ```

pub mod arrays;
pub mod compose;
pub mod context;
pub mod gl;
pub mod image;
pub mod math;
pub mod program;
pub mod query;
mod raster;
mod texture;

pub use arrays::{AttribArray, AttribType, Indices, VertexArrays};
pub use compose::{Element, Rect, compose};
pub use context::Gles11;
pub use image::{Image, Surface};
pub use math::{Mat4, Vec4};
pub use program::{
    DrawStats, GenericAttribs, QuadIn, QuadOut, ShaderFault, ShaderProgram, ShaderTextures,
};
pub use query::StateValue;
pub use raster::{MAX_RENDER_DIM, MAX_VIEWPORT_DIMS, SUBPIXEL_BITS, TILE};
pub use texture::{MAX_TEXTURE_LEVELS, MAX_TEXTURE_SIZE};
