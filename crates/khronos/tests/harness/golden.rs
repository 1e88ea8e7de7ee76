//! Golden images: where they live, how they are written and compared.

use std::path::PathBuf;

/// `tests/golden/NAME`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// True when the images are being regenerated (`VCHIQ_UPDATE_GOLDEN=1`).
pub fn updating() -> bool {
    std::env::var_os("VCHIQ_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Writes a `w`×`h` frame (RGBA, top row first) as an RGB PNG.
pub fn write_png(path: &PathBuf, w: u32, h: u32, px: &[[u8; 4]]) {
    let rgb: Vec<u8> = px.iter().flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out).unwrap();
}

/// Reads a `w`×`h` golden image's RGB pixels.
pub fn read_png(path: &PathBuf, w: u32, h: u32) -> Vec<[u8; 3]> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with VCHIQ_UPDATE_GOLDEN=1 cargo test -p khronos",
            path.display()
        )
    });
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w, h), "{}", path.display());
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{}: not an RGB image", path.display());
    buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}

/// Compares with the golden image: (share within `tolerance` on every channel, worst
/// channel difference, pixels outside the tolerance).
pub fn compare(px: &[[u8; 4]], golden: &[[u8; 3]], tolerance: u8) -> (f64, u8, usize) {
    assert_eq!(px.len(), golden.len());
    let mut worst = 0u8;
    let mut outside = 0usize;
    for (p, g) in px.iter().zip(golden) {
        let d = (0..3).map(|c| p[c].abs_diff(g[c])).max().unwrap_or(0);
        worst = worst.max(d);
        outside += usize::from(d > tolerance);
    }
    (1.0 - outside as f64 / px.len() as f64, worst, outside)
}
