//! OpenGL ES 1.1 enum values used by the renderer.
//!
//! Every value is defined in the Khronos header `GLES/gl.h` (OpenGL ES 1.1 Common profile)
//! under the same name; the names are kept as they are spelled in C so that the KHRN server
//! can match them against the wire protocol without a translation table.

// ---- Errors (gl.h "ErrorCode") ----
/// gl.h: `GL_NO_ERROR`.
pub const GL_NO_ERROR: u32 = 0;
/// gl.h: `GL_INVALID_ENUM`.
pub const GL_INVALID_ENUM: u32 = 0x0500;
/// gl.h: `GL_INVALID_VALUE`.
pub const GL_INVALID_VALUE: u32 = 0x0501;
/// gl.h: `GL_INVALID_OPERATION`.
pub const GL_INVALID_OPERATION: u32 = 0x0502;
/// gl.h: `GL_STACK_OVERFLOW`.
pub const GL_STACK_OVERFLOW: u32 = 0x0503;
/// gl.h: `GL_STACK_UNDERFLOW`.
pub const GL_STACK_UNDERFLOW: u32 = 0x0504;
/// gl.h: `GL_OUT_OF_MEMORY`.
pub const GL_OUT_OF_MEMORY: u32 = 0x0505;

// ---- Primitive modes ----
/// gl.h: `GL_POINTS` (accepted by `draw`, not rasterised).
pub const GL_POINTS: u32 = 0x0000;
/// gl.h: `GL_LINES` (accepted by `draw`, not rasterised).
pub const GL_LINES: u32 = 0x0001;
/// gl.h: `GL_LINE_LOOP` (accepted by `draw`, not rasterised).
pub const GL_LINE_LOOP: u32 = 0x0002;
/// gl.h: `GL_LINE_STRIP` (accepted by `draw`, not rasterised).
pub const GL_LINE_STRIP: u32 = 0x0003;
/// gl.h: `GL_TRIANGLES`.
pub const GL_TRIANGLES: u32 = 0x0004;
/// gl.h: `GL_TRIANGLE_STRIP`.
pub const GL_TRIANGLE_STRIP: u32 = 0x0005;
/// gl.h: `GL_TRIANGLE_FAN`.
pub const GL_TRIANGLE_FAN: u32 = 0x0006;

// ---- Data types ----
/// gl.h: `GL_BYTE`.
pub const GL_BYTE: u32 = 0x1400;
/// gl.h: `GL_UNSIGNED_BYTE`.
pub const GL_UNSIGNED_BYTE: u32 = 0x1401;
/// gl.h: `GL_SHORT`.
pub const GL_SHORT: u32 = 0x1402;
/// gl.h: `GL_UNSIGNED_SHORT`.
pub const GL_UNSIGNED_SHORT: u32 = 0x1403;
/// gl.h (OES_element_index_uint): `GL_UNSIGNED_INT`.
pub const GL_UNSIGNED_INT: u32 = 0x1405;
/// gl.h: `GL_FLOAT`.
pub const GL_FLOAT: u32 = 0x1406;
/// gl.h: `GL_FIXED` (signed 16.16 fixed point).
pub const GL_FIXED: u32 = 0x140C;

// ---- Clear mask bits ----
/// gl.h: `GL_DEPTH_BUFFER_BIT`.
pub const GL_DEPTH_BUFFER_BIT: u32 = 0x0100;
/// gl.h: `GL_STENCIL_BUFFER_BIT` (accepted; there is no stencil buffer).
pub const GL_STENCIL_BUFFER_BIT: u32 = 0x0400;
/// gl.h: `GL_COLOR_BUFFER_BIT`.
pub const GL_COLOR_BUFFER_BIT: u32 = 0x4000;

// ---- Capabilities (glEnable/glDisable) ----
/// gl.h: `GL_TEXTURE_2D`.
pub const GL_TEXTURE_2D: u32 = 0x0DE1;
/// gl.h: `GL_CULL_FACE`.
pub const GL_CULL_FACE: u32 = 0x0B44;
/// gl.h: `GL_DEPTH_TEST`.
pub const GL_DEPTH_TEST: u32 = 0x0B71;
/// gl.h: `GL_SCISSOR_TEST`.
pub const GL_SCISSOR_TEST: u32 = 0x0C11;
/// gl.h: `GL_BLEND`.
pub const GL_BLEND: u32 = 0x0BE2;
/// gl.h: `GL_ALPHA_TEST`.
pub const GL_ALPHA_TEST: u32 = 0x0BC0;
/// gl.h: `GL_DITHER` (accepted, no effect).
pub const GL_DITHER: u32 = 0x0BD0;
/// gl.h: `GL_LIGHTING` (accepted, not implemented).
pub const GL_LIGHTING: u32 = 0x0B50;
/// gl.h: `GL_LIGHT0`; `GL_LIGHT1..7` follow (accepted, not implemented).
pub const GL_LIGHT0: u32 = 0x4000;
/// gl.h: `GL_FOG` (accepted, not implemented).
pub const GL_FOG: u32 = 0x0B60;
/// gl.h: `GL_NORMALIZE` (accepted, no effect without lighting).
pub const GL_NORMALIZE: u32 = 0x0BA1;
/// gl.h: `GL_RESCALE_NORMAL` (accepted, no effect without lighting).
pub const GL_RESCALE_NORMAL: u32 = 0x803A;
/// gl.h: `GL_COLOR_MATERIAL` (accepted, no effect without lighting).
pub const GL_COLOR_MATERIAL: u32 = 0x0B57;
/// gl.h: `GL_POLYGON_OFFSET_FILL` (accepted, not implemented).
pub const GL_POLYGON_OFFSET_FILL: u32 = 0x8037;
/// gl.h: `GL_MULTISAMPLE` (accepted, no effect).
pub const GL_MULTISAMPLE: u32 = 0x809D;
/// gl.h: `GL_SAMPLE_ALPHA_TO_COVERAGE` (accepted, no effect).
pub const GL_SAMPLE_ALPHA_TO_COVERAGE: u32 = 0x809E;
/// gl.h: `GL_SAMPLE_ALPHA_TO_ONE` (accepted, no effect).
pub const GL_SAMPLE_ALPHA_TO_ONE: u32 = 0x809F;
/// gl.h: `GL_SAMPLE_COVERAGE` (accepted, no effect).
pub const GL_SAMPLE_COVERAGE: u32 = 0x80A0;
/// gl.h: `GL_COLOR_LOGIC_OP` (accepted, not implemented).
pub const GL_COLOR_LOGIC_OP: u32 = 0x0BF2;
/// gl.h: `GL_STENCIL_TEST` (accepted; there is no stencil buffer).
pub const GL_STENCIL_TEST: u32 = 0x0B90;
/// gl.h: `GL_POINT_SMOOTH` (accepted, no effect).
pub const GL_POINT_SMOOTH: u32 = 0x0B10;
/// gl.h: `GL_LINE_SMOOTH` (accepted, no effect).
pub const GL_LINE_SMOOTH: u32 = 0x0B20;
/// gl.h: `GL_CLIP_PLANE0`; `GL_CLIP_PLANE1..5` follow (accepted, not implemented).
pub const GL_CLIP_PLANE0: u32 = 0x3000;
/// glext.h (OES_point_sprite): `GL_POINT_SPRITE_OES` (accepted, no effect).
pub const GL_POINT_SPRITE_OES: u32 = 0x8861;

// ---- Client arrays (only named here: the KHRN server tracks them) ----
/// gl.h: `GL_VERTEX_ARRAY`.
pub const GL_VERTEX_ARRAY: u32 = 0x8074;
/// gl.h: `GL_NORMAL_ARRAY`.
pub const GL_NORMAL_ARRAY: u32 = 0x8075;
/// gl.h: `GL_COLOR_ARRAY`.
pub const GL_COLOR_ARRAY: u32 = 0x8076;
/// gl.h: `GL_TEXTURE_COORD_ARRAY`.
pub const GL_TEXTURE_COORD_ARRAY: u32 = 0x8078;

// ---- Matrix modes ----
/// gl.h: `GL_MODELVIEW`.
pub const GL_MODELVIEW: u32 = 0x1700;
/// gl.h: `GL_PROJECTION`.
pub const GL_PROJECTION: u32 = 0x1701;
/// gl.h: `GL_TEXTURE` (the texture matrix of unit 0).
pub const GL_TEXTURE: u32 = 0x1702;

// ---- Pixel formats and types ----
/// gl.h: `GL_ALPHA`.
pub const GL_ALPHA: u32 = 0x1906;
/// gl.h: `GL_RGB`.
pub const GL_RGB: u32 = 0x1907;
/// gl.h: `GL_RGBA`.
pub const GL_RGBA: u32 = 0x1908;
/// gl.h: `GL_LUMINANCE`.
pub const GL_LUMINANCE: u32 = 0x1909;
/// gl.h: `GL_LUMINANCE_ALPHA`.
pub const GL_LUMINANCE_ALPHA: u32 = 0x190A;
/// gl.h: `GL_UNSIGNED_SHORT_4_4_4_4`.
pub const GL_UNSIGNED_SHORT_4_4_4_4: u32 = 0x8033;
/// gl.h: `GL_UNSIGNED_SHORT_5_5_5_1`.
pub const GL_UNSIGNED_SHORT_5_5_5_1: u32 = 0x8034;
/// gl.h: `GL_UNSIGNED_SHORT_5_6_5`.
pub const GL_UNSIGNED_SHORT_5_6_5: u32 = 0x8363;

// ---- Texture parameters ----
/// gl.h: `GL_NEAREST`.
pub const GL_NEAREST: u32 = 0x2600;
/// gl.h: `GL_LINEAR`.
pub const GL_LINEAR: u32 = 0x2601;
/// gl.h: `GL_NEAREST_MIPMAP_NEAREST`.
pub const GL_NEAREST_MIPMAP_NEAREST: u32 = 0x2700;
/// gl.h: `GL_LINEAR_MIPMAP_NEAREST`.
pub const GL_LINEAR_MIPMAP_NEAREST: u32 = 0x2701;
/// gl.h: `GL_NEAREST_MIPMAP_LINEAR` (the default minification filter).
pub const GL_NEAREST_MIPMAP_LINEAR: u32 = 0x2702;
/// gl.h: `GL_LINEAR_MIPMAP_LINEAR`.
pub const GL_LINEAR_MIPMAP_LINEAR: u32 = 0x2703;
/// gl.h: `GL_TEXTURE_MAG_FILTER`.
pub const GL_TEXTURE_MAG_FILTER: u32 = 0x2800;
/// gl.h: `GL_TEXTURE_MIN_FILTER`.
pub const GL_TEXTURE_MIN_FILTER: u32 = 0x2801;
/// gl.h: `GL_TEXTURE_WRAP_S`.
pub const GL_TEXTURE_WRAP_S: u32 = 0x2802;
/// gl.h: `GL_TEXTURE_WRAP_T`.
pub const GL_TEXTURE_WRAP_T: u32 = 0x2803;
/// gl.h: `GL_GENERATE_MIPMAP` (accepted and stored; mipmaps are not generated).
pub const GL_GENERATE_MIPMAP: u32 = 0x8191;
/// gl.h: `GL_REPEAT`.
pub const GL_REPEAT: u32 = 0x2901;
/// gl.h: `GL_CLAMP_TO_EDGE`.
pub const GL_CLAMP_TO_EDGE: u32 = 0x812F;

// ---- Texture environment ----
/// gl.h: `GL_TEXTURE_ENV` (target of glTexEnv).
pub const GL_TEXTURE_ENV: u32 = 0x2300;
/// gl.h: `GL_TEXTURE_ENV_MODE`.
pub const GL_TEXTURE_ENV_MODE: u32 = 0x2200;
/// gl.h: `GL_TEXTURE_ENV_COLOR`.
pub const GL_TEXTURE_ENV_COLOR: u32 = 0x2201;
/// gl.h: `GL_MODULATE` (the default environment mode).
pub const GL_MODULATE: u32 = 0x2100;
/// gl.h: `GL_DECAL`.
pub const GL_DECAL: u32 = 0x2101;
/// gl.h: `GL_ADD`.
pub const GL_ADD: u32 = 0x0104;
/// gl.h: `GL_REPLACE`.
pub const GL_REPLACE: u32 = 0x1E01;
/// gl.h: `GL_COMBINE` (not implemented: rejected with `GL_INVALID_ENUM`).
pub const GL_COMBINE: u32 = 0x8570;

// ---- Faces and winding ----
/// gl.h: `GL_CW`.
pub const GL_CW: u32 = 0x0900;
/// gl.h: `GL_CCW` (the default front face).
pub const GL_CCW: u32 = 0x0901;
/// gl.h: `GL_FRONT`.
pub const GL_FRONT: u32 = 0x0404;
/// gl.h: `GL_BACK` (the default cull face).
pub const GL_BACK: u32 = 0x0405;
/// gl.h: `GL_FRONT_AND_BACK`.
pub const GL_FRONT_AND_BACK: u32 = 0x0408;

// ---- Comparison functions ----
/// gl.h: `GL_NEVER`.
pub const GL_NEVER: u32 = 0x0200;
/// gl.h: `GL_LESS` (the default depth function).
pub const GL_LESS: u32 = 0x0201;
/// gl.h: `GL_EQUAL`.
pub const GL_EQUAL: u32 = 0x0202;
/// gl.h: `GL_LEQUAL`.
pub const GL_LEQUAL: u32 = 0x0203;
/// gl.h: `GL_GREATER`.
pub const GL_GREATER: u32 = 0x0204;
/// gl.h: `GL_NOTEQUAL`.
pub const GL_NOTEQUAL: u32 = 0x0205;
/// gl.h: `GL_GEQUAL`.
pub const GL_GEQUAL: u32 = 0x0206;
/// gl.h: `GL_ALWAYS` (the default alpha function).
pub const GL_ALWAYS: u32 = 0x0207;

// ---- Blend factors ----
/// gl.h: `GL_ZERO`.
pub const GL_ZERO: u32 = 0;
/// gl.h: `GL_ONE`.
pub const GL_ONE: u32 = 1;
/// gl.h: `GL_SRC_COLOR`.
pub const GL_SRC_COLOR: u32 = 0x0300;
/// gl.h: `GL_ONE_MINUS_SRC_COLOR`.
pub const GL_ONE_MINUS_SRC_COLOR: u32 = 0x0301;
/// gl.h: `GL_SRC_ALPHA`.
pub const GL_SRC_ALPHA: u32 = 0x0302;
/// gl.h: `GL_ONE_MINUS_SRC_ALPHA`.
pub const GL_ONE_MINUS_SRC_ALPHA: u32 = 0x0303;
/// gl.h: `GL_DST_ALPHA`.
pub const GL_DST_ALPHA: u32 = 0x0304;
/// gl.h: `GL_ONE_MINUS_DST_ALPHA`.
pub const GL_ONE_MINUS_DST_ALPHA: u32 = 0x0305;
/// gl.h: `GL_DST_COLOR`.
pub const GL_DST_COLOR: u32 = 0x0306;
/// gl.h: `GL_ONE_MINUS_DST_COLOR`.
pub const GL_ONE_MINUS_DST_COLOR: u32 = 0x0307;
/// gl.h: `GL_SRC_ALPHA_SATURATE`.
pub const GL_SRC_ALPHA_SATURATE: u32 = 0x0308;

// ---- Hints ----
/// gl.h: `GL_PERSPECTIVE_CORRECTION_HINT` (interpolation is always perspective-correct).
pub const GL_PERSPECTIVE_CORRECTION_HINT: u32 = 0x0C50;
/// gl.h: `GL_POINT_SMOOTH_HINT`.
pub const GL_POINT_SMOOTH_HINT: u32 = 0x0C51;
/// gl.h: `GL_LINE_SMOOTH_HINT`.
pub const GL_LINE_SMOOTH_HINT: u32 = 0x0C52;
/// gl.h: `GL_FOG_HINT`.
pub const GL_FOG_HINT: u32 = 0x0C54;
/// gl.h: `GL_GENERATE_MIPMAP_HINT`.
pub const GL_GENERATE_MIPMAP_HINT: u32 = 0x8192;
/// gl.h: `GL_DONT_CARE`.
pub const GL_DONT_CARE: u32 = 0x1100;
/// gl.h: `GL_FASTEST`.
pub const GL_FASTEST: u32 = 0x1101;
/// gl.h: `GL_NICEST`.
pub const GL_NICEST: u32 = 0x1102;

// ---- Shading ----
/// gl.h: `GL_FLAT`.
pub const GL_FLAT: u32 = 0x1D00;
/// gl.h: `GL_SMOOTH` (the default shade model).
pub const GL_SMOOTH: u32 = 0x1D01;

/// Short name of a GL error code, for logs (`"GL_INVALID_ENUM"`); `"unknown"` otherwise.
pub fn error_str(code: u32) -> &'static str {
    match code {
        GL_NO_ERROR => "GL_NO_ERROR",
        GL_INVALID_ENUM => "GL_INVALID_ENUM",
        GL_INVALID_VALUE => "GL_INVALID_VALUE",
        GL_INVALID_OPERATION => "GL_INVALID_OPERATION",
        GL_STACK_OVERFLOW => "GL_STACK_OVERFLOW",
        GL_STACK_UNDERFLOW => "GL_STACK_UNDERFLOW",
        GL_OUT_OF_MEMORY => "GL_OUT_OF_MEMORY",
        _ => "unknown",
    }
}

/// A GL error code as a Rust error, for logs and `?` in the KHRN server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GlError {
    /// `GL_INVALID_ENUM`: an enum argument is out of range.
    #[error("GL_INVALID_ENUM")]
    InvalidEnum,
    /// `GL_INVALID_OPERATION`: the operation is not allowed in the current state.
    #[error("GL_INVALID_OPERATION")]
    InvalidOperation,
    /// `GL_INVALID_VALUE`: a numeric argument is out of range.
    #[error("GL_INVALID_VALUE")]
    InvalidValue,
    /// `GL_OUT_OF_MEMORY`: not enough memory to execute the command.
    #[error("GL_OUT_OF_MEMORY")]
    OutOfMemory,
    /// `GL_STACK_OVERFLOW`: a matrix stack push on a full stack.
    #[error("GL_STACK_OVERFLOW")]
    StackOverflow,
    /// `GL_STACK_UNDERFLOW`: a matrix stack pop at depth 1.
    #[error("GL_STACK_UNDERFLOW")]
    StackUnderflow,
    /// Any other non-zero code.
    #[error("unknown GL error 0x{0:04x}")]
    Unknown(u32),
}

impl GlError {
    /// `Ok(())` for `GL_NO_ERROR`, the matching variant otherwise.
    pub fn check(code: u32) -> Result<(), GlError> {
        Err(match code {
            GL_NO_ERROR => return Ok(()),
            GL_INVALID_ENUM => GlError::InvalidEnum,
            GL_INVALID_OPERATION => GlError::InvalidOperation,
            GL_INVALID_VALUE => GlError::InvalidValue,
            GL_OUT_OF_MEMORY => GlError::OutOfMemory,
            GL_STACK_OVERFLOW => GlError::StackOverflow,
            GL_STACK_UNDERFLOW => GlError::StackUnderflow,
            other => GlError::Unknown(other),
        })
    }

    /// The GL code of this error.
    pub fn code(self) -> u32 {
        match self {
            GlError::InvalidEnum => GL_INVALID_ENUM,
            GlError::InvalidOperation => GL_INVALID_OPERATION,
            GlError::InvalidValue => GL_INVALID_VALUE,
            GlError::OutOfMemory => GL_OUT_OF_MEMORY,
            GlError::StackOverflow => GL_STACK_OVERFLOW,
            GlError::StackUnderflow => GL_STACK_UNDERFLOW,
            GlError::Unknown(c) => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        assert_eq!(GlError::check(GL_NO_ERROR), Ok(()));
        for code in [0x500, 0x501, 0x502, 0x503, 0x504, 0x505, 0x9999] {
            let e = GlError::check(code).unwrap_err();
            assert_eq!(e.code(), code);
            if code != 0x9999 {
                assert_eq!(e.to_string(), error_str(code));
            }
        }
    }
}
