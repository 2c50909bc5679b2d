//! PNG encoding of RGB pixel buffers (plots, patches) and thumbnails of PNG files (lesion
//! map overlays), with the `image` crate.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{ImageFormat, RgbImage};

use crate::error::{ReportError, Result};

/// PNG bytes of a `width` x `height` RGB buffer (row-major, 3 bytes a pixel).
pub fn encode_rgb(what: &str, rgb: Vec<u8>, width: u32, height: u32) -> Result<Vec<u8>> {
    let img = RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| ReportError::image(what, format!("buffer is not {width}x{height} RGB")))?;
    encode(what, &img)
}

/// PNG bytes of an image.
pub fn encode(what: &str, img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| ReportError::image(what, e))?;
    Ok(out.into_inner())
}

/// `img` shrunk (never enlarged) so that neither side exceeds `max_side`.
pub fn shrink(img: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.max(h) <= max_side || w == 0 || h == 0 {
        return img;
    }
    let scale = f64::from(max_side) / f64::from(w.max(h));
    let nw = ((f64::from(w) * scale).round() as u32).max(1);
    let nh = ((f64::from(h) * scale).round() as u32).max(1);
    image::imageops::resize(&img, nw, nh, FilterType::Triangle)
}

/// PNG bytes of the PNG file at `path`, shrunk to at most `max_side` pixels a side, and
/// the original size.
pub fn thumbnail(path: &Path, max_side: u32) -> Result<(Vec<u8>, (u32, u32))> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, e))?;
    let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .map_err(|e| ReportError::malformed(path, format!("not a readable PNG: {e}")))?
        .to_rgb8();
    let size = img.dimensions();
    let small = shrink(img, max_side);
    Ok((encode(&path.display().to_string(), &small)?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_shrinks() {
        let png = encode_rgb("t", vec![200; 40 * 20 * 3], 40, 20).unwrap();
        let back = image::load_from_memory(&png).unwrap();
        assert_eq!((back.width(), back.height()), (40, 20));
        assert!(encode_rgb("t", vec![0; 5], 4, 4).is_err());
        let small = shrink(back.to_rgb8(), 10);
        assert_eq!(small.dimensions(), (10, 5));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.png");
        std::fs::write(&p, &png).unwrap();
        let (thumb, size) = thumbnail(&p, 16).unwrap();
        assert_eq!(size, (40, 20));
        assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 16);
        std::fs::write(&p, b"not a png").unwrap();
        assert!(thumbnail(&p, 16).unwrap_err().to_string().contains("o.png"));
    }
}
