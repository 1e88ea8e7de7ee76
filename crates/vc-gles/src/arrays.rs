//! Vertex arrays and index lists as the draw call receives them (stage 1: vertex fetch).

use crate::gl;

/// Component type of a vertex attribute array (`glVertexPointer` & co. `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttribType {
    /// `GL_BYTE`: signed 8-bit.
    Byte,
    /// `GL_UNSIGNED_BYTE`: unsigned 8-bit.
    UnsignedByte,
    /// `GL_SHORT`: signed 16-bit, little-endian.
    Short,
    /// `GL_UNSIGNED_SHORT`: unsigned 16-bit, little-endian.
    UnsignedShort,
    /// `GL_FIXED`: signed 16.16 fixed point, little-endian.
    Fixed,
    /// `GL_FLOAT`: IEEE-754 single, little-endian.
    Float,
}

impl AttribType {
    /// Size of one component in bytes.
    pub const fn size(self) -> u32 {
        match self {
            AttribType::Byte | AttribType::UnsignedByte => 1,
            AttribType::Short | AttribType::UnsignedShort => 2,
            AttribType::Fixed | AttribType::Float => 4,
        }
    }

    /// The GL enum of this type.
    pub const fn to_gl(self) -> u32 {
        match self {
            AttribType::Byte => gl::GL_BYTE,
            AttribType::UnsignedByte => gl::GL_UNSIGNED_BYTE,
            AttribType::Short => gl::GL_SHORT,
            AttribType::UnsignedShort => gl::GL_UNSIGNED_SHORT,
            AttribType::Fixed => gl::GL_FIXED,
            AttribType::Float => gl::GL_FLOAT,
        }
    }
}

impl TryFrom<u32> for AttribType {
    /// The rejected value; callers report it as `GL_INVALID_ENUM`.
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            gl::GL_BYTE => AttribType::Byte,
            gl::GL_UNSIGNED_BYTE => AttribType::UnsignedByte,
            gl::GL_SHORT => AttribType::Short,
            gl::GL_UNSIGNED_SHORT => AttribType::UnsignedShort,
            gl::GL_FIXED => AttribType::Fixed,
            gl::GL_FLOAT => AttribType::Float,
            other => return Err(other),
        })
    }
}

/// One client vertex array, already copied to the server (e.g. from the KHRN vertex cache).
#[derive(Clone, Copy, Debug)]
pub struct AttribArray<'a> {
    /// Components per vertex, `1..=4` (others: `GL_INVALID_VALUE` at draw time).
    pub size: u32,
    /// Component type.
    pub ty: AttribType,
    /// Map integers to `[0, 1]` / `[-1, 1]` (GL ES 1.1 rule `(2c + 1) / (2^b - 1)` for signed
    /// types). Ignored for `Fixed` and `Float`.
    pub normalized: bool,
    /// Byte distance between consecutive vertices; 0 means tightly packed.
    pub stride: u32,
    /// The bytes; vertex 0 starts at `data[0]`.
    pub data: &'a [u8],
}

impl AttribArray<'_> {
    /// Effective stride in bytes.
    pub fn effective_stride(&self) -> u64 {
        if self.stride == 0 {
            u64::from(self.size) * u64::from(self.ty.size())
        } else {
            u64::from(self.stride)
        }
    }

    /// True when vertex `index` can be fetched entirely from `data`.
    pub fn covers(&self, index: u64) -> bool {
        let need = index
            .checked_mul(self.effective_stride())
            .and_then(|o| o.checked_add(u64::from(self.size) * u64::from(self.ty.size())));
        need.is_some_and(|n| n <= self.data.len() as u64)
    }

    /// Reads vertex `index` into `out[..size]` (components past `size` are left alone).
    /// Returns `false`, leaving `out` untouched, if the vertex is not inside `data`.
    pub fn fetch(&self, index: u32, out: &mut [f32; 4]) -> bool {
        if !self.covers(u64::from(index)) || self.size > 4 {
            return false;
        }
        // `covers` proved the offset fits in `data.len()`, hence in usize.
        let base = (u64::from(index) * self.effective_stride()) as usize;
        let cs = self.ty.size() as usize;
        for (c, o) in out.iter_mut().enumerate().take(self.size as usize) {
            let at = base + c * cs;
            let Some(b) = self.data.get(at..at + cs) else {
                return false;
            };
            *o = decode(self.ty, self.normalized, b);
        }
        true
    }
}

fn decode(ty: AttribType, norm: bool, b: &[u8]) -> f32 {
    match ty {
        AttribType::Byte => {
            let v = f32::from(b[0] as i8);
            if norm { (2.0 * v + 1.0) / 255.0 } else { v }
        }
        AttribType::UnsignedByte => {
            let v = f32::from(b[0]);
            if norm { v / 255.0 } else { v }
        }
        AttribType::Short => {
            let v = f32::from(i16::from_le_bytes([b[0], b[1]]));
            if norm { (2.0 * v + 1.0) / 65535.0 } else { v }
        }
        AttribType::UnsignedShort => {
            let v = f32::from(u16::from_le_bytes([b[0], b[1]]));
            if norm { v / 65535.0 } else { v }
        }
        AttribType::Fixed => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 65536.0,
        AttribType::Float => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    }
}

/// The enabled client arrays of a draw call; `None` = array disabled (the current
/// colour / texture coordinate is used instead; without positions nothing is drawn).
#[derive(Clone, Copy, Debug, Default)]
pub struct VertexArrays<'a> {
    /// `GL_VERTEX_ARRAY` (`glVertexPointer`, sizes 2..=4 in GL; 1 is tolerated here).
    pub position: Option<AttribArray<'a>>,
    /// `GL_COLOR_ARRAY` (`glColorPointer`).
    pub color: Option<AttribArray<'a>>,
    /// `GL_NORMAL_ARRAY` (`glNormalPointer`; accepted, unused: no lighting).
    pub normal: Option<AttribArray<'a>>,
    /// `GL_TEXTURE_COORD_ARRAY` of texture unit 0 (`glTexCoordPointer`).
    pub texcoord: Option<AttribArray<'a>>,
}

impl VertexArrays<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &AttribArray<'_>> {
        [&self.position, &self.color, &self.normal, &self.texcoord]
            .into_iter()
            .flatten()
    }
}

/// Which vertices a draw call uses.
#[derive(Clone, Copy, Debug)]
pub enum Indices<'a> {
    /// `glDrawArrays(mode, first, count)`.
    Range {
        /// First vertex.
        first: u32,
        /// Number of vertices.
        count: u32,
    },
    /// `glDrawElements` with `GL_UNSIGNED_BYTE` indices.
    U8(&'a [u8]),
    /// `glDrawElements` with `GL_UNSIGNED_SHORT` indices.
    U16(&'a [u16]),
    /// `glDrawElements` with `GL_UNSIGNED_INT` indices (OES_element_index_uint).
    U32(&'a [u32]),
}

impl Indices<'_> {
    /// Number of vertices the call submits.
    pub fn len(&self) -> usize {
        match self {
            Indices::Range { count, .. } => *count as usize,
            Indices::U8(s) => s.len(),
            Indices::U16(s) => s.len(),
            Indices::U32(s) => s.len(),
        }
    }

    /// True when no vertex is submitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k`-th vertex index (for `k < len()`).
    pub(crate) fn get(&self, k: usize) -> u32 {
        match self {
            // k < count, and `first + count - 1` was checked to fit by `max_index`.
            Indices::Range { first, .. } => first.wrapping_add(k as u32),
            Indices::U8(s) => s.get(k).map_or(0, |&v| u32::from(v)),
            Indices::U16(s) => s.get(k).map_or(0, |&v| u32::from(v)),
            Indices::U32(s) => s.get(k).copied().unwrap_or(0),
        }
    }

    /// Largest index used, as u64 so that `first + count - 1` cannot overflow;
    /// `None` when empty.
    pub(crate) fn max_index(&self) -> Option<u64> {
        match self {
            Indices::Range { first, count } => {
                (*count > 0).then(|| u64::from(*first) + u64::from(*count) - 1)
            }
            Indices::U8(s) => s.iter().max().map(|&v| u64::from(v)),
            Indices::U16(s) => s.iter().max().map(|&v| u64::from(v)),
            Indices::U32(s) => s.iter().max().map(|&v| u64::from(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_all_types() {
        let mut out = [0.0, 0.0, 0.0, 1.0];
        let a = AttribArray {
            size: 3,
            ty: AttribType::Byte,
            normalized: false,
            stride: 0,
            data: &[0xF6, 10, 0x80],
        };
        assert!(a.fetch(0, &mut out));
        assert_eq!(out, [-10.0, 10.0, -128.0, 1.0]);
        assert!(!a.fetch(1, &mut out));

        let fixed = 0x0001_8000i32.to_le_bytes(); // 1.5
        let a = AttribArray {
            size: 1,
            ty: AttribType::Fixed,
            normalized: true,
            stride: 8,
            data: &[
                0, 0, 0, 0, 0, 0, 0, 0, fixed[0], fixed[1], fixed[2], fixed[3],
            ],
        };
        assert!(a.fetch(1, &mut out));
        assert_eq!(out[0], 1.5);

        let a = AttribArray {
            size: 2,
            ty: AttribType::UnsignedByte,
            normalized: true,
            stride: 0,
            data: &[255, 0],
        };
        assert!(a.fetch(0, &mut out));
        assert_eq!(&out[..2], &[1.0, 0.0]);
        let a = AttribArray {
            size: 1,
            ty: AttribType::Short,
            normalized: true,
            stride: 0,
            data: &0x7FFFi16.to_le_bytes(),
        };
        assert!(a.fetch(0, &mut out));
        assert_eq!(out[0], 1.0);
        assert_eq!(AttribType::try_from(0x1406), Ok(AttribType::Float));
        assert_eq!(AttribType::try_from(0x1405), Err(0x1405));
    }

    #[test]
    fn huge_strides_do_not_overflow() {
        let a = AttribArray {
            size: 4,
            ty: AttribType::Float,
            normalized: false,
            stride: u32::MAX,
            data: &[0; 16],
        };
        assert!(a.covers(0));
        assert!(!a.covers(u64::from(u32::MAX)));
        let mut out = [0.0; 4];
        assert!(!a.fetch(u32::MAX, &mut out));
        let r = Indices::Range {
            first: u32::MAX,
            count: u32::MAX,
        };
        assert_eq!(r.max_index(), Some(2 * u64::from(u32::MAX) - 1));
    }
}
