//! Texture objects: upload (format conversion, unpack alignment) and sampling.
//!
//! Every level is stored expanded to RGBA8 (`u32`, same packing as [`crate::Image`]);
//! the base format is kept for the texture environment and for `glTexSubImage2D`
//! format checks. Texel `(i, j)` is byte row `j` of the upload, so row 0 is `t ≈ 0`.

use crate::gl;

/// `GL_MAX_TEXTURE_SIZE` of this implementation (as VC4).
pub const MAX_TEXTURE_SIZE: u32 = 2048;
/// Number of mipmap levels for [`MAX_TEXTURE_SIZE`] (`log2(2048) + 1`).
pub const MAX_TEXTURE_LEVELS: usize = 12;

/// One mipmap level.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    pub width: u32,
    pub height: u32,
    /// Base format (`GL_RGB`, `GL_RGBA`, `GL_LUMINANCE`, `GL_ALPHA`, `GL_LUMINANCE_ALPHA`).
    pub format: u32,
    /// Upload type, kept for glTexSubImage2D checks.
    pub ty: u32,
    pub texels: Vec<u32>,
}

impl Level {
    pub fn bytes(&self) -> usize {
        self.texels.len() * 4
    }
}

/// A texture object (`GL_TEXTURE_2D` only).
#[derive(Clone, Debug)]
pub(crate) struct Texture {
    pub levels: Vec<Option<Level>>,
    pub min_filter: u32,
    pub mag_filter: u32,
    pub wrap_s: u32,
    pub wrap_t: u32,
    pub generate_mipmap: bool,
}

impl Default for Texture {
    fn default() -> Self {
        Self {
            levels: Vec::new(),
            min_filter: gl::GL_NEAREST_MIPMAP_LINEAR,
            mag_filter: gl::GL_LINEAR,
            wrap_s: gl::GL_REPEAT,
            wrap_t: gl::GL_REPEAT,
            generate_mipmap: false,
        }
    }
}

/// Bytes per pixel of a valid (format, type) pair, `Err(gl error)` otherwise.
pub(crate) fn pixel_size(format: u32, ty: u32) -> Result<u32, u32> {
    let known_format = matches!(
        format,
        gl::GL_RGB | gl::GL_RGBA | gl::GL_LUMINANCE | gl::GL_ALPHA | gl::GL_LUMINANCE_ALPHA
    );
    if !known_format {
        return Err(gl::GL_INVALID_ENUM);
    }
    match ty {
        gl::GL_UNSIGNED_BYTE => Ok(match format {
            gl::GL_RGB => 3,
            gl::GL_RGBA => 4,
            gl::GL_LUMINANCE_ALPHA => 2,
            _ => 1,
        }),
        gl::GL_UNSIGNED_SHORT_5_6_5 if format == gl::GL_RGB => Ok(2),
        gl::GL_UNSIGNED_SHORT_4_4_4_4 | gl::GL_UNSIGNED_SHORT_5_5_5_1 if format == gl::GL_RGBA => {
            Ok(2)
        }
        gl::GL_UNSIGNED_SHORT_5_6_5
        | gl::GL_UNSIGNED_SHORT_4_4_4_4
        | gl::GL_UNSIGNED_SHORT_5_5_5_1 => Err(gl::GL_INVALID_OPERATION),
        _ => Err(gl::GL_INVALID_ENUM),
    }
}

/// Row pitch of client pixel data and the minimum length for `height` rows, both in bytes.
pub(crate) fn layout(width: u32, height: u32, bpp: u32, align: u32) -> (u64, u64) {
    let row = u64::from(width) * u64::from(bpp);
    let align = u64::from(align.max(1));
    let pitch = row.div_ceil(align) * align;
    let need = if width == 0 || height == 0 {
        0
    } else {
        pitch * (u64::from(height) - 1) + row
    };
    (pitch, need)
}

/// Expands a `b / (2^bits - 1)` channel to 8 bits with rounding.
#[inline]
fn expand(v: u16, bits: u32) -> u8 {
    let max = (1u32 << bits) - 1;
    ((u32::from(v) * 255 + max / 2) / max) as u8
}

/// Converts one client pixel to RGBA8. `px.len()` equals [`pixel_size`].
fn convert(format: u32, ty: u32, px: &[u8]) -> [u8; 4] {
    match (format, ty) {
        (gl::GL_RGB, gl::GL_UNSIGNED_BYTE) => [px[0], px[1], px[2], 255],
        (gl::GL_RGBA, gl::GL_UNSIGNED_BYTE) => [px[0], px[1], px[2], px[3]],
        (gl::GL_LUMINANCE, _) => [px[0], px[0], px[0], 255],
        (gl::GL_ALPHA, _) => [0, 0, 0, px[0]],
        (gl::GL_LUMINANCE_ALPHA, _) => [px[0], px[0], px[0], px[1]],
        (_, gl::GL_UNSIGNED_SHORT_5_6_5) => {
            let v = u16::from_le_bytes([px[0], px[1]]);
            [
                expand(v >> 11, 5),
                expand((v >> 5) & 0x3F, 6),
                expand(v & 0x1F, 5),
                255,
            ]
        }
        (_, gl::GL_UNSIGNED_SHORT_4_4_4_4) => {
            let v = u16::from_le_bytes([px[0], px[1]]);
            [
                expand(v >> 12, 4),
                expand((v >> 8) & 0xF, 4),
                expand((v >> 4) & 0xF, 4),
                expand(v & 0xF, 4),
            ]
        }
        (_, gl::GL_UNSIGNED_SHORT_5_5_5_1) => {
            let v = u16::from_le_bytes([px[0], px[1]]);
            [
                expand(v >> 11, 5),
                expand((v >> 6) & 0x1F, 5),
                expand((v >> 1) & 0x1F, 5),
                if v & 1 != 0 { 255 } else { 0 },
            ]
        }
        _ => [0, 0, 0, 255],
    }
}

/// Writes `width × height` client pixels into `dst` (a level `dst_w` texels wide) at
/// `(x0, y0)`. The caller validated that `src` is long enough and the rectangle fits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn unpack_into(
    dst: &mut [u32],
    dst_w: u32,
    x0: u32,
    y0: u32,
    width: u32,
    height: u32,
    format: u32,
    ty: u32,
    bpp: u32,
    pitch: u64,
    src: &[u8],
) {
    let bpp = bpp as usize;
    for j in 0..height as usize {
        let row_start = pitch as usize * j;
        let Some(row) = src.get(row_start..row_start + width as usize * bpp) else {
            return;
        };
        let d0 = (y0 as usize + j) * dst_w as usize + x0 as usize;
        let Some(drow) = dst.get_mut(d0..d0 + width as usize) else {
            return;
        };
        for (d, px) in drow.iter_mut().zip(row.chunks_exact(bpp)) {
            *d = u32::from_le_bytes(convert(format, ty, px));
        }
    }
}

/// A resolved, ready-to-sample view of a complete texture's level 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampler<'a> {
    pub texels: &'a [u32],
    pub width: u32,
    pub height: u32,
    pub format: u32,
    pub min_linear: bool,
    pub mag_linear: bool,
    pub repeat_s: bool,
    pub repeat_t: bool,
    /// `GL_MIRRORED_REPEAT` (GL ES 2.0) on s / t.
    pub mirror_s: bool,
    pub mirror_t: bool,
}

impl Texture {
    /// True when the texture can be sampled (GL ES 1.1 §3.7.10 completeness). When the
    /// minification filter uses mipmaps every level down to 1×1 must be present with
    /// halved sizes and the same format.
    pub fn is_complete(&self) -> bool {
        let Some(Some(base)) = self.levels.first() else {
            return false;
        };
        if base.width == 0 || base.height == 0 {
            return false;
        }
        let mipmapped = !matches!(self.min_filter, gl::GL_NEAREST | gl::GL_LINEAR);
        if !mipmapped {
            return true;
        }
        let (mut w, mut h) = (base.width, base.height);
        let mut level = 0;
        loop {
            match self.levels.get(level) {
                Some(Some(l)) if l.width == w && l.height == h && l.format == base.format => {}
                _ => return false,
            }
            if w == 1 && h == 1 {
                return true;
            }
            w = (w / 2).max(1);
            h = (h / 2).max(1);
            level += 1;
        }
    }

    /// A sampler for level 0, or `None` if the texture is incomplete (GL then behaves as
    /// if texturing were disabled). Mipmapped minification filters sample level 0 with
    /// their base (`NEAREST`/`LINEAR`) filter: there is no LOD selection between levels.
    pub fn sampler(&self) -> Option<Sampler<'_>> {
        if !self.is_complete() {
            return None;
        }
        let base = self.levels.first()?.as_ref()?;
        Some(Sampler {
            texels: &base.texels,
            width: base.width,
            height: base.height,
            format: base.format,
            min_linear: matches!(
                self.min_filter,
                gl::GL_LINEAR | gl::GL_LINEAR_MIPMAP_NEAREST | gl::GL_LINEAR_MIPMAP_LINEAR
            ),
            mag_linear: self.mag_filter == gl::GL_LINEAR,
            repeat_s: self.wrap_s == gl::GL_REPEAT,
            repeat_t: self.wrap_t == gl::GL_REPEAT,
            mirror_s: self.wrap_s == GL_MIRRORED_REPEAT,
            mirror_t: self.wrap_t == GL_MIRRORED_REPEAT,
        })
    }

    /// Bytes held by all levels.
    pub fn bytes(&self) -> usize {
        self.levels.iter().flatten().map(Level::bytes).sum()
    }
}

/// `GL_MIRRORED_REPEAT` (GLES2/gl2.h).
pub(crate) const GL_MIRRORED_REPEAT: u32 = 0x8370;

/// Index `i` of a mirrored-repeat axis of `n` texels: 0..n−1, then n−1..0, and so on.
fn mirror(i: i32, n: u32) -> usize {
    let period = 2 * i64::from(n);
    let m = i64::from(i).rem_euclid(period);
    (if m >= i64::from(n) { period - 1 - m } else { m }) as usize
}

#[inline]
fn wrap(i: i32, n: u32, repeat: bool) -> usize {
    if (i as u32) < n {
        // Inside the texture already (coordinates in [0, 1)): no wrapping, no division.
        i as usize
    } else if repeat && n.is_power_of_two() {
        // Two's complement: `i & (n − 1)` is `i mod n` for negative `i` too, without the
        // division of `rem_euclid` (most textures are powers of two).
        (i & (n as i32 - 1)) as usize
    } else if repeat {
        i.rem_euclid(n as i32) as usize
    } else {
        i.clamp(0, n as i32 - 1) as usize
    }
}

/// `x.floor() as i32` (saturating, NaN to 0) without a call to `floorf`: the truncation,
/// one less where it rounded up (negative non-integers).
#[inline]
pub(crate) fn floor_i32(x: f32) -> i32 {
    let t = x as i32;
    t.saturating_sub(i32::from(t as f32 > x))
}

/// Texels looked up together by [`Sampler::nearest_lanes`].
pub(crate) const LANES: usize = 8;

/// `|x|` below this: [`floor_lanes`] is exact.
const FAST_FLOOR_LIMIT: f32 = 4_194_304.0; // 2^22

/// `x.floor() as i32` for each lane, all `|x| < 2^22`, in operations the compiler turns
/// into vector instructions: adding 1.5·2^23 rounds to the nearest integer, which sits in
/// the low mantissa bits; one less where that rounded up.
#[inline]
fn floor_lanes(x: &[f32; LANES]) -> [i32; LANES] {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    std::array::from_fn(|l| {
        let r = (x[l] + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
        r - i32::from(r as f32 > x[l])
    })
}

/// Wraps lane indices into `0..n` the way [`wrap`] does, for the modes that need no
/// division; `None` for a repeating size that is not a power of two.
#[inline]
fn wrap_lanes(i: [i32; LANES], n: u32, repeat: bool) -> Option<[usize; LANES]> {
    if repeat {
        let mask = n.is_power_of_two().then(|| n as i32 - 1)?;
        Some(i.map(|v| (v & mask) as usize))
    } else {
        let hi = n as i32 - 1;
        Some(i.map(|v| v.clamp(0, hi) as usize))
    }
}

impl Sampler<'_> {
    #[inline]
    fn wrap_s(&self, i: i32) -> usize {
        if self.mirror_s {
            mirror(i, self.width)
        } else {
            wrap(i, self.width, self.repeat_s)
        }
    }

    #[inline]
    fn wrap_t(&self, j: i32) -> usize {
        if self.mirror_t {
            mirror(j, self.height)
        } else {
            wrap(j, self.height, self.repeat_t)
        }
    }

    /// Nearest texel at `(s, t)`, packed RGBA8.
    #[inline]
    pub fn nearest(&self, s: f32, t: f32) -> u32 {
        // `as i32` saturates and maps NaN to 0, so any float is safe.
        let i = self.wrap_s(floor_i32(s * self.width as f32));
        let j = self.wrap_t(floor_i32(t * self.height as f32));
        self.texels
            .get(j * self.width as usize + i)
            .copied()
            .unwrap_or(0)
    }

    /// [`Sampler::nearest`] of each lane, the same texels, computed together.
    #[inline]
    pub fn nearest_lanes(&self, s: &[f32; LANES], t: &[f32; LANES]) -> [u32; LANES] {
        let (wf, hf) = (self.width as f32, self.height as f32);
        let x: [f32; LANES] = std::array::from_fn(|l| s[l] * wf);
        let y: [f32; LANES] = std::array::from_fn(|l| t[l] * hf);
        // NaN fails the comparison, so it takes the scalar path too.
        let fast = x
            .iter()
            .chain(&y)
            .fold(true, |ok, v| ok & (v.abs() < FAST_FLOOR_LIMIT));
        let wrapped = fast
            .then(|| {
                let i = wrap_lanes(floor_lanes(&x), self.width, self.repeat_s)?;
                let j = wrap_lanes(floor_lanes(&y), self.height, self.repeat_t)?;
                Some((i, j))
            })
            .flatten();
        let Some((i, j)) = wrapped else {
            return std::array::from_fn(|l| self.nearest(s[l], t[l]));
        };
        let w = self.width as usize;
        std::array::from_fn(|l| self.texels.get(j[l] * w + i[l]).copied().unwrap_or(0))
    }

    /// Bilinear sample at `(s, t)`, channels in `[0, 255]`.
    #[inline]
    pub fn linear(&self, s: f32, t: f32) -> [f32; 4] {
        let u = s * self.width as f32 - 0.5;
        let v = t * self.height as f32 - 0.5;
        let (uf, vf) = (u.floor(), v.floor());
        let (a, b) = (u - uf, v - vf);
        let (i0, j0) = (uf as i32, vf as i32);
        let i = [self.wrap_s(i0), self.wrap_s(i0.saturating_add(1))];
        let j = [self.wrap_t(j0), self.wrap_t(j0.saturating_add(1))];
        let w = self.width as usize;
        let fetch = |x: usize, y: usize| {
            self.texels
                .get(y * w + x)
                .map_or([0u8; 4], |p| p.to_le_bytes())
        };
        let (t00, t10, t01, t11) = (
            fetch(i[0], j[0]),
            fetch(i[1], j[0]),
            fetch(i[0], j[1]),
            fetch(i[1], j[1]),
        );
        let mut out = [0.0f32; 4];
        for (c, o) in out.iter_mut().enumerate() {
            let top = f32::from(t00[c]) * (1.0 - a) + f32::from(t10[c]) * a;
            let bot = f32::from(t01[c]) * (1.0 - a) + f32::from(t11[c]) * a;
            *o = top * (1.0 - b) + bot * b;
        }
        out
    }

    /// Sample with the filter for minification (`minify`) or magnification, channels in
    /// `[0, 255]`.
    #[inline]
    pub fn sample(&self, s: f32, t: f32, minify: bool) -> [f32; 4] {
        let linear = if minify {
            self.min_linear
        } else {
            self.mag_linear
        };
        if linear {
            self.linear(s, t)
        } else {
            self.nearest(s, t).to_le_bytes().map(f32::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_honours_alignment() {
        // 3 RGB pixels = 9 bytes, padded to 12 with alignment 4; last row unpadded.
        assert_eq!(layout(3, 2, 3, 4), (12, 21));
        assert_eq!(layout(3, 2, 3, 1), (9, 18));
        assert_eq!(layout(5, 3, 2, 8), (16, 42));
        assert_eq!(layout(0, 3, 2, 8).1, 0);
    }

    #[test]
    fn format_type_validation() {
        assert_eq!(pixel_size(gl::GL_RGB, gl::GL_UNSIGNED_BYTE), Ok(3));
        assert_eq!(pixel_size(gl::GL_RGB, gl::GL_UNSIGNED_SHORT_5_6_5), Ok(2));
        assert_eq!(
            pixel_size(gl::GL_RGBA, gl::GL_UNSIGNED_SHORT_5_6_5),
            Err(gl::GL_INVALID_OPERATION)
        );
        assert_eq!(
            pixel_size(0x1234, gl::GL_UNSIGNED_BYTE),
            Err(gl::GL_INVALID_ENUM)
        );
        assert_eq!(
            pixel_size(gl::GL_RGB, gl::GL_FLOAT),
            Err(gl::GL_INVALID_ENUM)
        );
    }

    #[test]
    fn rgb565_expansion() {
        let white = 0xFFFFu16.to_le_bytes();
        assert_eq!(
            convert(gl::GL_RGB, gl::GL_UNSIGNED_SHORT_5_6_5, &white),
            [255; 4]
        );
        let red = 0xF800u16.to_le_bytes();
        assert_eq!(
            convert(gl::GL_RGB, gl::GL_UNSIGNED_SHORT_5_6_5, &red),
            [255, 0, 0, 255]
        );
        // 16/31 → 131.6 → 132; 32/63 → 129.5 → 130 (round half up).
        let mid = ((16u16 << 11) | (32 << 5) | 16).to_le_bytes();
        assert_eq!(
            convert(gl::GL_RGB, gl::GL_UNSIGNED_SHORT_5_6_5, &mid),
            [132, 130, 132, 255]
        );
    }

    #[test]
    fn completeness_rules() {
        let mut t = Texture::default();
        assert!(!t.is_complete());
        t.levels.push(Some(Level {
            width: 2,
            height: 2,
            format: gl::GL_RGB,
            ty: gl::GL_UNSIGNED_BYTE,
            texels: vec![0; 4],
        }));
        // Default min filter needs mipmaps.
        assert!(!t.is_complete());
        t.min_filter = gl::GL_NEAREST;
        assert!(t.is_complete());
        t.min_filter = gl::GL_LINEAR_MIPMAP_LINEAR;
        t.levels.push(Some(Level {
            width: 1,
            height: 1,
            format: gl::GL_RGB,
            ty: gl::GL_UNSIGNED_BYTE,
            texels: vec![0; 1],
        }));
        assert!(t.is_complete());
    }

    #[test]
    fn floor_i32_is_floor_as_i32_for_every_kind_of_float() {
        let cases = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            1.5,
            -1.5,
            127.99,
            -127.99,
            1e-30,
            -1e-30,
            16777215.0,
            -16777215.5,
            2147483520.0,
            -2147483904.0,
            3e9,
            -3e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for x in cases {
            assert_eq!(floor_i32(x), x.floor() as i32, "{x}");
        }
        let mut v = 0x1234_5678u32;
        for _ in 0..100_000 {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            let x = f32::from_bits(v);
            assert_eq!(floor_i32(x), x.floor() as i32, "{x} ({v:#x})");
        }
    }

    #[test]
    fn power_of_two_wrap_equals_rem_euclid() {
        for n in [1u32, 2, 64, 128, 1 << 20] {
            for i in [
                -1_000_000i32,
                -129,
                -128,
                -1,
                0,
                1,
                127,
                128,
                1_000_001,
                i32::MIN,
                i32::MAX,
            ] {
                assert_eq!(
                    wrap(i, n, true),
                    i.rem_euclid(n as i32) as usize,
                    "{i} mod {n}"
                );
            }
        }
    }

    #[test]
    fn nearest_lanes_are_nearest_of_each_lane() {
        let texels: Vec<u32> = (0..16 * 8 * 3).collect();
        let mut v = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            v ^= v << 13;
            v ^= v >> 7;
            v ^= v << 17;
            v
        };
        for (w, h) in [(16, 8), (48, 8), (16, 24), (1, 1)] {
            for (rs, rt) in [(true, true), (false, false), (true, false)] {
                let s = Sampler {
                    texels: &texels[..(w * h) as usize],
                    width: w,
                    height: h,
                    format: gl::GL_RGBA,
                    min_linear: false,
                    mag_linear: false,
                    repeat_s: rs,
                    repeat_t: rt,
                    mirror_s: false,
                    mirror_t: false,
                };
                for round in 0..2_000 {
                    let scale = [1.0f32, 40.0, 1e6, 1e12][round % 4];
                    let mut lane = || {
                        let r = next();
                        match r % 23 {
                            0 => f32::NAN,
                            1 => f32::INFINITY,
                            2 => -0.0,
                            3 => (r >> 8) as f32 / 8.0 / w as f32 - 64.0,
                            _ => {
                                ((r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
                            }
                        }
                    };
                    let ss: [f32; LANES] = std::array::from_fn(|_| lane());
                    let tt: [f32; LANES] = std::array::from_fn(|_| lane());
                    let want: [u32; LANES] = std::array::from_fn(|l| s.nearest(ss[l], tt[l]));
                    assert_eq!(s.nearest_lanes(&ss, &tt), want, "{ss:?} {tt:?}");
                }
            }
        }
    }

    #[test]
    fn wrap_modes() {
        let texels = [1u32, 2, 3, 4];
        let mut s = Sampler {
            texels: &texels,
            width: 4,
            height: 1,
            format: gl::GL_RGBA,
            min_linear: false,
            mag_linear: false,
            repeat_s: true,
            repeat_t: true,
            mirror_s: false,
            mirror_t: false,
        };
        assert_eq!(s.nearest(0.1, 0.5), 1);
        assert_eq!(s.nearest(1.1, 0.5), 1);
        assert_eq!(s.nearest(-0.1, 0.5), 4);
        assert_eq!(s.nearest(f32::NAN, f32::INFINITY), 1);
        s.repeat_s = false;
        assert_eq!(s.nearest(1.1, 0.5), 4);
        assert_eq!(s.nearest(-5.0, 0.5), 1);
        s.mirror_s = true;
        // 4 texels mirrored: 1 2 3 4 | 4 3 2 1 | 1 2 …
        assert_eq!(s.nearest(1.1, 0.5), 4);
        assert_eq!(s.nearest(1.6, 0.5), 2);
        assert_eq!(s.nearest(-0.1, 0.5), 1);
        assert_eq!(s.nearest(-0.9, 0.5), 4);
        assert_eq!(s.nearest(2.1, 0.5), 1);
    }
}
