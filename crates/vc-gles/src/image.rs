//! RGBA8 images and render targets.

use std::io;
use std::path::Path;

/// Largest number of pixels [`Image::try_new`] and [`Surface::try_new`] accept
/// (8192 × 8192): larger requests are refused instead of attempting the allocation.
pub const MAX_IMAGE_PIXELS: u64 = 8192 * 8192;

/// Packs an RGBA quadruple into the in-memory pixel format of [`Image`].
#[inline]
pub const fn pack_rgba(c: [u8; 4]) -> u32 {
    u32::from_le_bytes(c)
}

/// Unpacks a pixel of [`Image`] into `[r, g, b, a]`.
#[inline]
pub const fn unpack_rgba(p: u32) -> [u8; 4] {
    p.to_le_bytes()
}

/// An RGBA8 picture: one `u32` per pixel whose little-endian bytes are `R, G, B, A`
/// (`u32::from_le_bytes([r, g, b, a])`), rows from the top of the picture down.
///
/// The fields are public; code in this crate tolerates an inconsistent `pixels.len()`
/// (reads outside the vector give transparent black, writes are dropped, and rendering
/// into a malformed image is refused with `GL_INVALID_OPERATION`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` pixels, row 0 = top row.
    pub pixels: Vec<u32>,
}

impl Image {
    /// A `width × height` image of transparent black.
    ///
    /// # Panics
    /// Like `vec!`, if the allocation is impossible; use [`Image::try_new`] for sizes
    /// that come from a client.
    pub fn new(width: u32, height: u32) -> Self {
        let n = width as usize * height as usize;
        Self {
            width,
            height,
            pixels: vec![0; n],
        }
    }

    /// Like [`Image::new`] but returns `None` above [`MAX_IMAGE_PIXELS`] pixels.
    pub fn try_new(width: u32, height: u32) -> Option<Self> {
        if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
            return None;
        }
        Some(Self::new(width, height))
    }

    /// Builds an image from `R, G, B, A` bytes, row 0 first; `None` if `bytes` is not
    /// exactly `width * height * 4` long or the size exceeds [`MAX_IMAGE_PIXELS`].
    pub fn from_rgba_bytes(width: u32, height: u32, bytes: &[u8]) -> Option<Self> {
        let n = u64::from(width) * u64::from(height);
        if n > MAX_IMAGE_PIXELS || bytes.len() as u64 != n * 4 {
            return None;
        }
        let pixels = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Self {
            width,
            height,
            pixels,
        })
    }

    /// True when `pixels.len() == width * height`.
    pub fn is_consistent(&self) -> bool {
        self.pixels.len() as u64 == u64::from(self.width) * u64::from(self.height)
    }

    /// Sets every pixel to `rgba`.
    pub fn fill(&mut self, rgba: [u8; 4]) {
        self.pixels.fill(pack_rgba(rgba));
    }

    fn index(&self, x: u32, y: u32) -> Option<usize> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = y as usize * self.width as usize + x as usize;
        (i < self.pixels.len()).then_some(i)
    }

    /// The pixel at column `x`, row `y` (row 0 = top); `[0, 0, 0, 0]` outside the image.
    pub fn get(&self, x: u32, y: u32) -> [u8; 4] {
        self.index(x, y)
            .map_or([0; 4], |i| unpack_rgba(self.pixels[i]))
    }

    /// Writes the pixel at column `x`, row `y`; ignored outside the image.
    pub fn set(&mut self, x: u32, y: u32, rgba: [u8; 4]) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i] = pack_rgba(rgba);
        }
    }

    /// The pixels as `R, G, B, A` bytes, row 0 (top) first.
    pub fn to_rgba_bytes(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    /// Encodes the image as an 8-bit RGBA PNG.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or inconsistent image, or whatever the encoder reports.
    pub fn try_encode_png(&self) -> io::Result<Vec<u8>> {
        if !self.is_consistent() || self.width == 0 || self.height == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "image is empty or pixels.len() != width * height",
            ));
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(io::Error::other)?;
            writer
                .write_image_data(&self.to_rgba_bytes())
                .map_err(io::Error::other)?;
            writer.finish().map_err(io::Error::other)?;
        }
        Ok(out)
    }

    /// Encodes the image as an 8-bit RGBA PNG; an empty vector if the image is empty or
    /// inconsistent (see [`Image::try_encode_png`] for the error).
    pub fn encode_png(&self) -> Vec<u8> {
        self.try_encode_png().unwrap_or_default()
    }

    /// Writes the image to `path` as an 8-bit RGBA PNG.
    ///
    /// # Errors
    /// As [`Image::try_encode_png`], plus file-system errors.
    pub fn write_png(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let bytes = self.try_encode_png()?;
        std::fs::write(path, bytes)
    }
}

/// A render target: a colour buffer and an optional depth buffer of the same size.
///
/// The depth buffer holds one `f32` in `[0, 1]` per pixel, in the same row order as
/// [`Surface::color`]. A depth vector of the wrong length is treated as absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Surface {
    /// The colour buffer (RGBA8, row 0 = top = GL window row `height - 1`).
    pub color: Image,
    /// The depth buffer, if the surface has one.
    pub depth: Option<Vec<f32>>,
}

impl Surface {
    /// A `width × height` surface (colour transparent black, depth 1.0).
    ///
    /// # Panics
    /// If the allocation is impossible; see [`Surface::try_new`].
    pub fn new(width: u32, height: u32, with_depth: bool) -> Self {
        let color = Image::new(width, height);
        let depth = with_depth.then(|| vec![1.0; color.pixels.len()]);
        Self { color, depth }
    }

    /// Like [`Surface::new`] but `None` above [`MAX_IMAGE_PIXELS`] pixels.
    pub fn try_new(width: u32, height: u32, with_depth: bool) -> Option<Self> {
        Image::try_new(width, height)?;
        Some(Self::new(width, height, with_depth))
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.color.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.color.height
    }

    /// The depth buffer if it exists and has one value per pixel.
    pub fn depth_buffer(&self) -> Option<&[f32]> {
        self.depth
            .as_deref()
            .filter(|d| d.len() == self.color.pixels.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_layout_is_rgba_memory_order() {
        let mut img = Image::new(3, 2);
        img.set(2, 1, [1, 2, 3, 4]);
        assert_eq!(img.pixels[5], u32::from_le_bytes([1, 2, 3, 4]));
        assert_eq!(img.get(2, 1), [1, 2, 3, 4]);
        assert_eq!(&img.to_rgba_bytes()[20..24], &[1, 2, 3, 4]);
        assert_eq!(img.get(3, 0), [0; 4]);
        img.set(9, 9, [9; 4]); // ignored
        let back = Image::from_rgba_bytes(3, 2, &img.to_rgba_bytes()).unwrap();
        assert_eq!(back, img);
        assert!(Image::from_rgba_bytes(3, 2, &[0; 5]).is_none());
    }

    #[test]
    fn malformed_images_do_not_panic() {
        let img = Image {
            width: 100,
            height: 100,
            pixels: vec![0; 3],
        };
        assert_eq!(img.get(50, 50), [0; 4]);
        assert!(img.encode_png().is_empty());
        assert!(Image::try_new(u32::MAX, u32::MAX).is_none());
        assert!(Image::new(0, 0).encode_png().is_empty());
    }

    #[test]
    fn png_round_trip_header() {
        let mut img = Image::new(4, 3);
        img.fill([10, 20, 30, 255]);
        let png = img.encode_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(&buf[..4], &[10, 20, 30, 255]);
    }
}
