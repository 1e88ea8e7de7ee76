//! The dispmanx compositor: paints element images onto a display (spec §4.2).
//!
//! Elements are painted from the lowest layer up (equal layers keep their order in the
//! slice), each scaled from its source rectangle to its destination rectangle with
//! nearest-neighbour sampling at pixel centres, then blended with the alpha mode in
//! `alpha_flags`. The display stays opaque (alpha 255). Rows are composed in parallel;
//! the result does not depend on the thread count.
//!
//! Not modelled: element transforms (flips/rotations), clamp/colour keys, protection,
//! YUV resources.

use rayon::prelude::*;

use crate::image::{Image, pack_rgba};

/// `DISPMANX_FLAGS_ALPHA_FROM_SOURCE`: per-pixel alpha from the source image.
pub const DISPMANX_FLAGS_ALPHA_FROM_SOURCE: u32 = 0;
/// `DISPMANX_FLAGS_ALPHA_FIXED_ALL_PIXELS`: every pixel uses `opacity`.
pub const DISPMANX_FLAGS_ALPHA_FIXED_ALL_PIXELS: u32 = 1;
/// `DISPMANX_FLAGS_ALPHA_FIXED_NON_ZERO`: `opacity` for pixels whose RGB is non-zero,
/// fully transparent otherwise.
pub const DISPMANX_FLAGS_ALPHA_FIXED_NON_ZERO: u32 = 2;
/// `DISPMANX_FLAGS_ALPHA_FIXED_EXCEED_0X07`: `opacity` for pixels whose source alpha
/// exceeds 7, fully transparent otherwise.
pub const DISPMANX_FLAGS_ALPHA_FIXED_EXCEED_0X07: u32 = 3;
/// `DISPMANX_FLAGS_ALPHA_PREMULT`: the source colour is premultiplied by its alpha.
pub const DISPMANX_FLAGS_ALPHA_PREMULT: u32 = 1 << 16;
/// `DISPMANX_FLAGS_ALPHA_MIX`: multiply the per-pixel alpha by `opacity`.
pub const DISPMANX_FLAGS_ALPHA_MIX: u32 = 1 << 17;
/// `DISPMANX_FLAGS_ALPHA_DISCARD_LOWER_LAYERS`: a hint; accepted, no effect.
pub const DISPMANX_FLAGS_ALPHA_DISCARD_LOWER_LAYERS: u32 = 1 << 18;

/// A rectangle as dispmanx sends it (`VC_RECT_T`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width (non-positive: empty).
    pub width: i32,
    /// Height (non-positive: empty).
    pub height: i32,
}

impl Rect {
    /// Builds a rectangle.
    pub const fn new(x: i32, y: i32, width: i32, height: i32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }
}

/// One dispmanx element, as `ElementAdd` / `ElementChangeAttributes` describe it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Element {
    /// Stacking layer; lower layers are painted first.
    pub layer: i32,
    /// Destination rectangle in display pixels (may extend past the display: clipped).
    pub dest: Rect,
    /// Source rectangle in 16.16 fixed-point image pixels, as dispmanx sends it. A
    /// non-positive width or height selects the whole image; the rectangle is clamped to
    /// the image.
    pub src: Rect,
    /// Fixed alpha used by the `FIXED_*` modes and `MIX`.
    pub opacity: u8,
    /// `DISPMANX_FLAGS_ALPHA_*`: the mode in the low 16 bits plus the `PREMULT`/`MIX` bits.
    pub alpha_flags: u32,
}

/// One element prepared for painting.
struct Prepared<'a> {
    image: &'a Image,
    /// Destination columns `x0..x1` and rows `y0..y1`, clipped to the display.
    x0: usize,
    x1: usize,
    y0: i64,
    y1: i64,
    /// Source column for each destination column in `x0..x1`.
    cols: Vec<u32>,
    dest_y: i64,
    dest_h: i64,
    src_y: i64,
    src_h: i64,
    opacity: u32,
    flags: u32,
}

/// Source pixel index for destination offset `d` in a destination of `dn` pixels mapping
/// from `s0` over `sn` (both 16.16), clamped to `0..limit`.
fn map_coord(d: i64, dn: i64, s0: i64, sn: i64, limit: u32) -> u32 {
    // Centre of destination pixel d, mapped into the source: s0 + (d + 0.5) · sn / dn.
    // i128: (2d + 1) · sn can reach 2^64 for extreme rectangles.
    let (d, dn, s0, sn) = (
        i128::from(d),
        i128::from(dn).max(1),
        i128::from(s0),
        i128::from(sn),
    );
    let s = s0 + ((2 * d + 1) * sn) / (2 * dn);
    (s >> 16).clamp(0, i128::from(limit) - 1) as u32
}

fn prepare<'a>(e: &Element, image: &'a Image, dw: u32, dh: u32) -> Option<Prepared<'a>> {
    if !image.is_consistent() || image.width == 0 || image.height == 0 {
        return None;
    }
    let d = e.dest;
    if d.width <= 0 || d.height <= 0 {
        return None;
    }
    let (dx, dy, dwid, dhei) = (
        i64::from(d.x),
        i64::from(d.y),
        i64::from(d.width),
        i64::from(d.height),
    );
    let x0 = dx.max(0);
    let x1 = (dx + dwid).min(i64::from(dw));
    let y0 = dy.max(0);
    let y1 = (dy + dhei).min(i64::from(dh));
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let (sx, sy, sw, sh) = if e.src.width <= 0 || e.src.height <= 0 {
        (
            0,
            0,
            i64::from(image.width) << 16,
            i64::from(image.height) << 16,
        )
    } else {
        (
            i64::from(e.src.x),
            i64::from(e.src.y),
            i64::from(e.src.width),
            i64::from(e.src.height),
        )
    };
    let cols = (x0..x1)
        .map(|x| map_coord(x - dx, dwid, sx, sw, image.width))
        .collect();
    Some(Prepared {
        image,
        x0: x0 as usize,
        x1: x1 as usize,
        y0,
        y1,
        cols,
        dest_y: dy,
        dest_h: dhei,
        src_y: sy,
        src_h: sh,
        opacity: u32::from(e.opacity),
        flags: e.alpha_flags,
    })
}

#[inline]
fn mix(s: u32, d: u32, a: u32) -> u32 {
    (s * a + d * (255 - a) + 127) / 255
}

impl Prepared<'_> {
    fn paint_row(&self, y: i64, row: &mut [u32]) {
        if y < self.y0 || y >= self.y1 {
            return;
        }
        let sy = map_coord(
            y - self.dest_y,
            self.dest_h,
            self.src_y,
            self.src_h,
            self.image.height,
        ) as usize;
        let w = self.image.width as usize;
        let Some(src_row) = self.image.pixels.get(sy * w..sy * w + w) else {
            return;
        };
        let Some(dst) = row.get_mut(self.x0..self.x1) else {
            return;
        };
        let mode = self.flags & 0xFFFF;
        let premult = self.flags & DISPMANX_FLAGS_ALPHA_PREMULT != 0;
        let mixed = self.flags & DISPMANX_FLAGS_ALPHA_MIX != 0;
        for (d, &sx) in dst.iter_mut().zip(&self.cols) {
            let s = src_row.get(sx as usize).copied().unwrap_or(0).to_le_bytes();
            let sa = u32::from(s[3]);
            let mut a = match mode {
                DISPMANX_FLAGS_ALPHA_FIXED_ALL_PIXELS => self.opacity,
                DISPMANX_FLAGS_ALPHA_FIXED_NON_ZERO if s[..3] != [0, 0, 0] => self.opacity,
                DISPMANX_FLAGS_ALPHA_FIXED_EXCEED_0X07 if sa > 7 => self.opacity,
                DISPMANX_FLAGS_ALPHA_FIXED_NON_ZERO | DISPMANX_FLAGS_ALPHA_FIXED_EXCEED_0X07 => 0,
                _ => sa,
            };
            if mixed {
                let other = if mode == DISPMANX_FLAGS_ALPHA_FROM_SOURCE {
                    self.opacity
                } else {
                    sa
                };
                a = (a * other + 127) / 255;
            }
            let mut rgb = [u32::from(s[0]), u32::from(s[1]), u32::from(s[2])];
            if premult && sa > 0 {
                // Back to straight alpha, then blend like any other source.
                rgb = rgb.map(|c| (c * 255 / sa).min(255));
            }
            if a == 255 {
                *d = pack_rgba([rgb[0] as u8, rgb[1] as u8, rgb[2] as u8, 255]);
            } else if a > 0 {
                let o = d.to_le_bytes();
                *d = pack_rgba([
                    mix(rgb[0], u32::from(o[0]), a) as u8,
                    mix(rgb[1], u32::from(o[1]), a) as u8,
                    mix(rgb[2], u32::from(o[2]), a) as u8,
                    255,
                ]);
            }
        }
    }
}

/// Composes `elements` onto `display` over an opaque `background` colour.
///
/// Elements are painted in ascending `layer` order (ties keep slice order), scaled from
/// `src` to `dest` (nearest neighbour) and clipped to the display. Elements with an
/// empty destination, an empty or inconsistent image, or entirely off-screen are
/// skipped; an inconsistent display is left untouched. Never panics.
pub fn compose(display: &mut Image, background: [u8; 3], elements: &[(&Element, &Image)]) {
    if !display.is_consistent() || display.width == 0 {
        return;
    }
    let mut order: Vec<&(&Element, &Image)> = elements.iter().collect();
    order.sort_by_key(|(e, _)| e.layer);
    let prepared: Vec<Prepared<'_>> = order
        .iter()
        .filter_map(|(e, img)| prepare(e, img, display.width, display.height))
        .collect();
    let bg = pack_rgba([background[0], background[1], background[2], 255]);
    let width = display.width as usize;
    display
        .pixels
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(y, row)| {
            row.fill(bg);
            for p in &prepared {
                p.paint_row(y as i64, row);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, c: [u8; 4]) -> Image {
        let mut i = Image::new(w, h);
        i.fill(c);
        i
    }

    fn element(layer: i32, dest: Rect, img: &Image) -> Element {
        Element {
            layer,
            dest,
            src: Rect::new(0, 0, (img.width << 16) as i32, (img.height << 16) as i32),
            opacity: 255,
            alpha_flags: DISPMANX_FLAGS_ALPHA_FROM_SOURCE,
        }
    }

    #[test]
    fn background_and_full_screen_element() {
        let mut d = Image::new(8, 6);
        let src = solid(8, 6, [1, 2, 3, 255]);
        // hello_triangle: opacity 0 with FROM_SOURCE is still opaque.
        let mut e = element(0, Rect::new(0, 0, 8, 6), &src);
        e.opacity = 0;
        compose(&mut d, [9, 9, 9], &[(&e, &src)]);
        assert!(d.pixels.iter().all(|&p| p == pack_rgba([1, 2, 3, 255])));
        compose(&mut d, [9, 8, 7], &[]);
        assert_eq!(d.get(3, 3), [9, 8, 7, 255]);
    }

    #[test]
    fn scaling_nearest() {
        // A 2×2 source (four colours) scaled onto a 4×4 destination at (2, 1).
        let mut src = Image::new(2, 2);
        src.set(0, 0, [255, 0, 0, 255]);
        src.set(1, 0, [0, 255, 0, 255]);
        src.set(0, 1, [0, 0, 255, 255]);
        src.set(1, 1, [255, 255, 255, 255]);
        let mut d = Image::new(8, 8);
        let e = element(0, Rect::new(2, 1, 4, 4), &src);
        compose(&mut d, [0, 0, 0], &[(&e, &src)]);
        assert_eq!(d.get(2, 1), [255, 0, 0, 255]);
        assert_eq!(d.get(3, 2), [255, 0, 0, 255]);
        assert_eq!(d.get(4, 1), [0, 255, 0, 255]);
        assert_eq!(d.get(5, 2), [0, 255, 0, 255]);
        assert_eq!(d.get(2, 3), [0, 0, 255, 255]);
        assert_eq!(d.get(5, 4), [255, 255, 255, 255]);
        assert_eq!(d.get(1, 1), [0, 0, 0, 255]);
        assert_eq!(d.get(6, 1), [0, 0, 0, 255]);
        assert_eq!(d.get(2, 5), [0, 0, 0, 255]);
        // Downscaling a sub-rectangle: source pixel (1, 1) only.
        let mut e2 = e;
        e2.src = Rect::new(1 << 16, 1 << 16, 1 << 16, 1 << 16);
        e2.dest = Rect::new(0, 0, 8, 8);
        compose(&mut d, [0, 0, 0], &[(&e2, &src)]);
        assert!(d.pixels.iter().all(|&p| p == pack_rgba([255; 4])));
    }

    #[test]
    fn layer_order_and_ties() {
        let red = solid(1, 1, [255, 0, 0, 255]);
        let blue = solid(1, 1, [0, 0, 255, 255]);
        let mut d = Image::new(4, 4);
        let top = element(5, Rect::new(0, 0, 2, 2), &red);
        let bottom = element(-1, Rect::new(0, 0, 4, 4), &blue);
        // Given top first: order must come from the layers, not the slice.
        compose(&mut d, [0, 0, 0], &[(&top, &red), (&bottom, &blue)]);
        assert_eq!(d.get(0, 0), [255, 0, 0, 255]);
        assert_eq!(d.get(3, 3), [0, 0, 255, 255]);
        // Equal layers: slice order.
        let a = element(1, Rect::new(0, 0, 4, 4), &red);
        let b = element(1, Rect::new(0, 0, 4, 4), &blue);
        compose(&mut d, [0, 0, 0], &[(&a, &red), (&b, &blue)]);
        assert_eq!(d.get(1, 1), [0, 0, 255, 255]);
    }

    #[test]
    fn clipping_and_odd_rects() {
        let red = solid(3, 3, [255, 0, 0, 255]);
        let mut d = Image::new(4, 4);
        let e = element(0, Rect::new(-2, 2, 4, 10), &red);
        compose(&mut d, [0, 0, 0], &[(&e, &red)]);
        assert_eq!(d.get(0, 2), [255, 0, 0, 255]);
        assert_eq!(d.get(1, 3), [255, 0, 0, 255]);
        assert_eq!(d.get(2, 2), [0, 0, 0, 255]);
        assert_eq!(d.get(0, 1), [0, 0, 0, 255]);
        // Odd rectangles: nothing panics, nothing is painted.
        let empty = Image::new(0, 0);
        let broken = Image {
            width: 5,
            height: 5,
            pixels: vec![],
        };
        let odd = [
            Rect::new(i32::MIN, i32::MIN, i32::MAX, i32::MAX),
            Rect::new(i32::MAX, i32::MAX, i32::MAX, i32::MAX),
            Rect::new(0, 0, -5, 3),
            Rect::new(0, 0, 0, 0),
            Rect::new(100, 100, 1, 1),
        ];
        for r in odd {
            for src in [
                Rect::new(i32::MIN, i32::MAX, i32::MAX, -1),
                Rect::new(0, 0, 0, 0),
            ] {
                let mut e = element(0, r, &red);
                e.src = src;
                let mut d = Image::new(4, 4);
                compose(
                    &mut d,
                    [0, 0, 0],
                    &[(&e, &red), (&e, &empty), (&e, &broken)],
                );
            }
        }
        // A huge source rectangle is clamped to the image.
        let mut e = element(0, Rect::new(0, 0, 4, 4), &red);
        e.src = Rect::new(i32::MIN, i32::MIN, i32::MAX, i32::MAX);
        compose(&mut d, [0, 0, 0], &[(&e, &red)]);
        assert!(d.pixels.iter().all(|&p| p == pack_rgba([255, 0, 0, 255])));
    }

    #[test]
    fn alpha_modes() {
        let half = solid(1, 1, [200, 100, 0, 128]);
        let mut d = Image::new(2, 1);
        let mut e = element(0, Rect::new(0, 0, 2, 1), &half);
        // FROM_SOURCE: alpha 128 over background (0, 0, 100).
        compose(&mut d, [0, 0, 100], &[(&e, &half)]);
        assert_eq!(d.get(0, 0), [100, 50, 50, 255]);
        // FIXED_ALL_PIXELS: opacity, source alpha ignored.
        e.alpha_flags = DISPMANX_FLAGS_ALPHA_FIXED_ALL_PIXELS;
        e.opacity = 255;
        compose(&mut d, [0, 0, 100], &[(&e, &half)]);
        assert_eq!(d.get(0, 0), [200, 100, 0, 255]);
        e.opacity = 0;
        compose(&mut d, [0, 0, 100], &[(&e, &half)]);
        assert_eq!(d.get(0, 0), [0, 0, 100, 255]);
        e.opacity = 64;
        compose(&mut d, [0, 0, 100], &[(&e, &half)]);
        // 200·64/255 = 50.2; 100·64/255 = 25.1; 100·191/255 = 74.9.
        assert_eq!(d.get(1, 0), [50, 25, 75, 255]);
        // MIX: source alpha × opacity.
        e.alpha_flags = DISPMANX_FLAGS_ALPHA_FROM_SOURCE | DISPMANX_FLAGS_ALPHA_MIX;
        e.opacity = 128;
        compose(&mut d, [0, 0, 0], &[(&e, &half)]);
        assert_eq!(d.get(0, 0), [50, 25, 0, 255]);
    }
}
