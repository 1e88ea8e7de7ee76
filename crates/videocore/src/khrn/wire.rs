//! Little-endian word reader over one KHRN message.
//!
//! Every read is bounds checked against the message and reports the command being
//! decoded, so a truncated command becomes [`KhrnError::Truncated`] instead of a panic.

use super::KhrnError;

/// A cursor over the 32-bit words of a merged message.
pub(super) struct Words<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Words<'a> {
    /// A reader positioned at the start of `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte has been consumed.
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes left to read.
    pub(super) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next word, as part of command `id`.
    pub(super) fn u32(&mut self, id: u32) -> Result<u32, KhrnError> {
        let bytes = self.bytes(4, id)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// The next word reinterpreted as a signed integer.
    pub(super) fn i32(&mut self, id: u32) -> Result<i32, KhrnError> {
        self.u32(id).map(|w| w as i32)
    }

    /// The next word as the bit pattern of an IEEE-754 float (`RPC_FLOAT`).
    pub(super) fn f32(&mut self, id: u32) -> Result<f32, KhrnError> {
        self.u32(id).map(f32::from_bits)
    }

    /// The next word as a 16.16 fixed-point value (`RPC_FIXED`), converted to float.
    pub(super) fn fixed(&mut self, id: u32) -> Result<f32, KhrnError> {
        self.i32(id).map(fixed_to_f32)
    }

    /// The next `N` words.
    pub(super) fn array<const N: usize>(&mut self, id: u32) -> Result<[u32; N], KhrnError> {
        let mut out = [0u32; N];
        for w in &mut out {
            *w = self.u32(id)?;
        }
        Ok(out)
    }

    /// The next `N` words as floats.
    pub(super) fn floats<const N: usize>(&mut self, id: u32) -> Result<[f32; N], KhrnError> {
        Ok(self.array::<N>(id)?.map(f32::from_bits))
    }

    /// The next `N` words as 16.16 fixed-point values converted to float.
    pub(super) fn fixeds<const N: usize>(&mut self, id: u32) -> Result<[f32; N], KhrnError> {
        Ok(self.array::<N>(id)?.map(|w| fixed_to_f32(w as i32)))
    }

    /// The next `len` bytes.
    pub(super) fn bytes(&mut self, len: usize, id: u32) -> Result<&'a [u8], KhrnError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.data.len())
            .ok_or(KhrnError::Truncated {
                id,
                offset: self.pos,
            })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// `len` bytes of in-line (IN_CTRL) data followed by padding to a multiple of 4.
    pub(super) fn inline(&mut self, len: u32, id: u32) -> Result<&'a [u8], KhrnError> {
        let padded = (u64::from(len) + 3) & !3;
        if padded > self.remaining() as u64 {
            return Err(KhrnError::Truncated {
                id,
                offset: self.pos,
            });
        }
        let data = self.bytes(len as usize, id)?;
        self.pos += (padded - u64::from(len)) as usize;
        Ok(data)
    }
}

/// 16.16 fixed point to float.
pub(super) fn fixed_to_f32(v: i32) -> f32 {
    v as f32 / 65536.0
}

/// Little-endian words to bytes.
pub(super) fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Bytes (length a multiple of 4 is not required; a short tail is ignored) to words.
pub(super) fn bytes_to_words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khrn_words_reads_and_reports_truncation() {
        let data = words_to_bytes(&[1, 0x3f80_0000, 0x0001_0000]);
        let mut r = Words::new(&data);
        assert_eq!(r.u32(7).unwrap(), 1);
        assert_eq!(r.f32(7).unwrap(), 1.0);
        assert_eq!(r.fixed(7).unwrap(), 1.0);
        assert!(r.is_empty());
        assert!(matches!(
            r.u32(0x7007),
            Err(KhrnError::Truncated {
                id: 0x7007,
                offset: 12
            })
        ));
    }

    #[test]
    fn khrn_inline_data_is_padded() {
        let data = [1u8, 2, 3, 0xee, 9, 0, 0, 0];
        let mut r = Words::new(&data);
        assert_eq!(r.inline(3, 1).unwrap(), &[1, 2, 3]);
        assert_eq!(r.u32(1).unwrap(), 9);
        let mut r = Words::new(&data);
        assert!(r.inline(u32::MAX, 1).is_err());
        assert!(r.inline(9, 1).is_err());
    }
}
