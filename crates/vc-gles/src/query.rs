//! `glGet*` of the state a context holds (OpenGL ES 2.0 tables 6.2–6.21 and their ES 1.1
//! counterparts). The caller converts a value to the type of its call.

use crate::context::Gles11;
use crate::gl;
use crate::raster::{MAX_VIEWPORT_DIMS, SUBPIXEL_BITS};
use crate::texture::MAX_TEXTURE_SIZE;

/// A state value in the type GL defines it with.
#[derive(Debug, Clone, PartialEq)]
pub enum StateValue {
    /// Integers (sizes, counts, enums, names).
    Int(Vec<i32>),
    /// Floats that `glGetIntegerv` maps from `[−1, 1]` to the whole integer range
    /// (colours, depth values).
    Normalized(Vec<f32>),
    /// Other floats.
    Float(Vec<f32>),
    /// Booleans.
    Bool(Vec<bool>),
}

// pnames (GLES2/gl2.h).
const VIEWPORT: u32 = 0x0ba2;
const SCISSOR_BOX: u32 = 0x0c10;
const DEPTH_RANGE: u32 = 0x0b70;
const COLOR_CLEAR_VALUE: u32 = 0x0c22;
const DEPTH_CLEAR_VALUE: u32 = 0x0b73;
const COLOR_WRITEMASK: u32 = 0x0c23;
const DEPTH_WRITEMASK: u32 = 0x0b72;
const DEPTH_FUNC: u32 = 0x0b74;
const CULL_FACE_MODE: u32 = 0x0b45;
const FRONT_FACE: u32 = 0x0b46;
const BLEND_DST_RGB: u32 = 0x80c8;
const BLEND_SRC_RGB: u32 = 0x80c9;
const BLEND_DST_ALPHA: u32 = 0x80ca;
const BLEND_SRC_ALPHA: u32 = 0x80cb;
const BLEND_EQUATION_RGB: u32 = 0x8009;
const BLEND_EQUATION_ALPHA: u32 = 0x883d;
const BLEND_COLOR: u32 = 0x8005;
const MAX_TEXTURE_SIZE_PNAME: u32 = 0x0d33;
const MAX_VIEWPORT_DIMS_PNAME: u32 = 0x0d3a;
const SUBPIXEL_BITS_PNAME: u32 = 0x0d50;
const RED_BITS: u32 = 0x0d52;
const ALPHA_BITS: u32 = 0x0d55;
const DEPTH_BITS: u32 = 0x0d56;
const STENCIL_BITS: u32 = 0x0d57;
const CAPABILITIES: [u32; 9] = [
    gl::GL_CULL_FACE,
    gl::GL_BLEND,
    gl::GL_DEPTH_TEST,
    gl::GL_SCISSOR_TEST,
    gl::GL_DITHER,
    0x0b90, // GL_STENCIL_TEST
    0x8037, // GL_POLYGON_OFFSET_FILL
    0x809e, // GL_SAMPLE_ALPHA_TO_COVERAGE
    0x80a0, // GL_SAMPLE_COVERAGE
];

impl Gles11 {
    /// The value of `pname` for a target of `width`×`height` with or without a depth
    /// buffer, or `None` if this context does not hold that state.
    pub fn state(&self, pname: u32, width: u32, height: u32, depth: bool) -> Option<StateValue> {
        use StateValue::*;
        let whole = [0, 0, width as i32, height as i32];
        Some(match pname {
            VIEWPORT => Int(self.viewport.unwrap_or(whole).to_vec()),
            SCISSOR_BOX => Int(self.scissor.unwrap_or(whole).to_vec()),
            DEPTH_RANGE => Normalized(self.depth_range.to_vec()),
            COLOR_CLEAR_VALUE => Normalized(self.clear_color.to_vec()),
            DEPTH_CLEAR_VALUE => Normalized(vec![self.clear_depth]),
            COLOR_WRITEMASK => Bool(self.color_mask.to_vec()),
            DEPTH_WRITEMASK => Bool(vec![self.depth_mask]),
            DEPTH_FUNC => Int(vec![self.depth_func as i32]),
            CULL_FACE_MODE => Int(vec![self.cull_mode as i32]),
            FRONT_FACE => Int(vec![self.front_face as i32]),
            BLEND_SRC_RGB => Int(vec![self.blend_func.0 as i32]),
            BLEND_DST_RGB => Int(vec![self.blend_func.1 as i32]),
            BLEND_SRC_ALPHA => Int(vec![self.blend_alpha.0 as i32]),
            BLEND_DST_ALPHA => Int(vec![self.blend_alpha.1 as i32]),
            BLEND_EQUATION_RGB => Int(vec![self.blend_equation.0 as i32]),
            BLEND_EQUATION_ALPHA => Int(vec![self.blend_equation.1 as i32]),
            BLEND_COLOR => Normalized(self.blend_color.to_vec()),
            MAX_TEXTURE_SIZE_PNAME => Int(vec![MAX_TEXTURE_SIZE as i32]),
            MAX_VIEWPORT_DIMS_PNAME => Int(vec![MAX_VIEWPORT_DIMS; 2]),
            SUBPIXEL_BITS_PNAME => Int(vec![SUBPIXEL_BITS as i32]),
            RED_BITS..=ALPHA_BITS => Int(vec![8]),
            DEPTH_BITS => Int(vec![if depth { 24 } else { 0 }]),
            STENCIL_BITS => Int(vec![0]),
            cap if CAPABILITIES.contains(&cap) => Bool(vec![self.is_enabled(cap)]),
            _ => return None,
        })
    }

    /// `glGetTexParameter` of the bound texture.
    pub fn texture_parameter(&self, pname: u32) -> Option<u32> {
        let t = self.texture(self.bound_texture())?;
        Some(match pname {
            gl::GL_TEXTURE_MIN_FILTER => t.min_filter,
            gl::GL_TEXTURE_MAG_FILTER => t.mag_filter,
            gl::GL_TEXTURE_WRAP_S => t.wrap_s,
            gl::GL_TEXTURE_WRAP_T => t.wrap_t,
            gl::GL_GENERATE_MIPMAP => u32::from(t.generate_mipmap),
            _ => return None,
        })
    }
}

impl StateValue {
    /// As `glGetIntegerv` returns it.
    pub fn to_ints(&self) -> Vec<i32> {
        match self {
            StateValue::Int(v) => v.clone(),
            StateValue::Normalized(v) => v
                .iter()
                .map(|&f| (f64::from(f.clamp(-1.0, 1.0)) * f64::from(i32::MAX)).round() as i32)
                .collect(),
            StateValue::Float(v) => v.iter().map(|f| f.round() as i32).collect(),
            StateValue::Bool(v) => v.iter().map(|&b| i32::from(b)).collect(),
        }
    }

    /// As `glGetFloatv` returns it.
    pub fn to_floats(&self) -> Vec<f32> {
        match self {
            StateValue::Int(v) => v.iter().map(|&i| i as f32).collect(),
            StateValue::Normalized(v) | StateValue::Float(v) => v.clone(),
            StateValue::Bool(v) => v.iter().map(|&b| f32::from(u8::from(b))).collect(),
        }
    }

    /// As `glGetBooleanv` returns it (non-zero is true).
    pub fn to_bools(&self) -> Vec<bool> {
        match self {
            StateValue::Int(v) => v.iter().map(|&i| i != 0).collect(),
            StateValue::Normalized(v) | StateValue::Float(v) => {
                v.iter().map(|&f| f != 0.0).collect()
            }
            StateValue::Bool(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_back_what_was_set_in_each_type() {
        let mut ctx = Gles11::new();
        ctx.viewport(1, 2, 30, 40);
        ctx.clear_color(1.0, 0.0, 0.5, 1.0);
        ctx.enable(gl::GL_BLEND);
        assert_eq!(
            ctx.state(VIEWPORT, 64, 64, false),
            Some(StateValue::Int(vec![1, 2, 30, 40]))
        );
        assert_eq!(
            ctx.state(SCISSOR_BOX, 64, 32, false).unwrap().to_ints(),
            [0, 0, 64, 32]
        );
        let clear = ctx.state(COLOR_CLEAR_VALUE, 1, 1, false).unwrap();
        assert_eq!(clear.to_floats(), [1.0, 0.0, 0.5, 1.0]);
        assert_eq!(clear.to_ints()[0], i32::MAX);
        assert_eq!(
            ctx.state(gl::GL_BLEND, 1, 1, false).unwrap().to_bools(),
            [true]
        );
        assert_eq!(
            ctx.state(gl::GL_CULL_FACE, 1, 1, false).unwrap().to_ints(),
            [0]
        );
        assert_eq!(ctx.state(DEPTH_BITS, 1, 1, true).unwrap().to_ints(), [24]);
        assert_eq!(ctx.state(0xdead, 1, 1, false), None);
        assert_eq!(
            ctx.texture_parameter(gl::GL_TEXTURE_WRAP_S),
            Some(gl::GL_REPEAT)
        );
    }
}
