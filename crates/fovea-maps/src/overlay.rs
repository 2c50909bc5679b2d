//! `overlay.png`: the photograph with its four lesion maps drawn over it.
//!
//! The photograph is downscaled (aspect kept, triangle filter) to at most `max_width`
//! pixels wide. Each output pixel looks up its cell in the heatmap; where a lesion's value
//! reaches its threshold, the lesion's colour is blended over the photograph with an
//! opacity from [`MIN_ALPHA`] at the threshold to [`MAX_ALPHA`] at probability 1 (so the
//! photograph stays visible), SE first and MA last (the smallest lesions on top); a 1-px
//! outline in the full colour marks the edge of each thresholded region; the legend
//! ([`crate::legend`]) is drawn in the top-left corner. Below threshold nothing is drawn.

use std::path::Path;

use image::imageops::{resize, FilterType};
use image::{ImageFormat, RgbImage};

use crate::error::{MapsError, Result};
use crate::heatmap::{Heatmap, NUM_LESIONS};
use crate::legend::draw_legend;
use fovea_data::OVERLAY_COLOURS;

/// Opacity of a lesion's colour where its probability equals its threshold.
pub const MIN_ALPHA: f32 = 0.25;
/// Opacity of a lesion's colour at probability 1.
pub const MAX_ALPHA: f32 = 0.6;

/// Output size for a `w` x `h` photograph at most `max_width` wide (0 = no limit).
fn output_size(w: u32, h: u32, max_width: u32) -> (u32, u32) {
    if max_width == 0 || w <= max_width {
        (w, h)
    } else {
        let oh = (u64::from(h) * u64::from(max_width) + u64::from(w) / 2) / u64::from(w);
        (max_width, (oh as u32).max(1))
    }
}

/// For each output coordinate along an axis of `out` pixels, the heatmap cell holding the
/// corresponding photograph pixel (photograph axis of length `len`, `cells` cells).
fn cell_lookup(out: u32, len: u32, cell: u32, cells: usize) -> Vec<usize> {
    (0..out)
        .map(|o| {
            let p = ((f64::from(o) + 0.5) * f64::from(len) / f64::from(out)) as u32;
            ((p.min(len - 1) / cell) as usize).min(cells - 1)
        })
        .collect()
}

/// Opacity of a lesion's colour at value `v` for threshold `t` (`None` below threshold).
fn alpha(v: f32, t: f64) -> Option<f32> {
    let v = f64::from(v);
    if v.is_nan() || t.is_nan() || v < t {
        return None;
    }
    let above = if t < 1.0 {
        ((v - t) / (1.0 - t)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * above as f32)
}

/// Draws the overlay (see the module docs). `rgb` should be the photograph `map` was made
/// for; a photograph of another size is stretched onto the map.
pub fn overlay(
    rgb: &image::RgbImage,
    map: &Heatmap,
    thresholds: [f64; NUM_LESIONS],
    max_width: u32,
) -> image::RgbImage {
    let (ow, oh) = output_size(rgb.width(), rgb.height(), max_width);
    let mut out = if (ow, oh) == rgb.dimensions() {
        rgb.clone()
    } else {
        resize(rgb, ow, oh, FilterType::Triangle)
    };
    if ow == 0 || oh == 0 {
        return out;
    }
    let cols = cell_lookup(ow, map.width, map.cell, map.w);
    let rows = cell_lookup(oh, map.height, map.cell, map.h);
    let (owu, ohu) = (ow as usize, oh as usize);
    let mut inside = vec![false; owu * ohu];
    for c in (0..NUM_LESIONS).rev() {
        let values = map.lesion(c);
        let colour = OVERLAY_COLOURS[c].map(f32::from);
        for (y, &i) in rows.iter().enumerate() {
            for (x, &j) in cols.iter().enumerate() {
                let a = alpha(values[i * map.w + j], thresholds[c]);
                inside[y * owu + x] = a.is_some();
                if let Some(a) = a {
                    let p = out.get_pixel_mut(x as u32, y as u32);
                    for (v, col) in p.0.iter_mut().zip(colour) {
                        *v = (f32::from(*v) * (1.0 - a) + col * a).round() as u8;
                    }
                }
            }
        }
        // Outline: region pixels with a 4-neighbour outside the region (or the image).
        let is_in = |x: usize, y: usize| inside[y * owu + x];
        for y in 0..ohu {
            for x in 0..owu {
                if !is_in(x, y) {
                    continue;
                }
                let edge = x == 0
                    || y == 0
                    || x + 1 == owu
                    || y + 1 == ohu
                    || !is_in(x - 1, y)
                    || !is_in(x + 1, y)
                    || !is_in(x, y - 1)
                    || !is_in(x, y + 1);
                if edge {
                    out.get_pixel_mut(x as u32, y as u32).0 = OVERLAY_COLOURS[c];
                }
            }
        }
    }
    draw_legend(&mut out, thresholds);
    out
}

/// Writes `img` as PNG atomically (temporary file in the same folder, then renamed).
pub fn write_png_atomic(img: &image::RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .map_err(|source| MapsError::Image {
            path: path.to_path_buf(),
            source,
        })?;
    fovea_data::write_atomic(path, bytes.get_ref())?;
    Ok(())
}

/// The photograph downscaled as [`overlay`] does, without anything drawn on it.
pub fn downscale(rgb: &RgbImage, max_width: u32) -> RgbImage {
    let (ow, oh) = output_size(rgb.width(), rgb.height(), max_width);
    if (ow, oh) == rgb.dimensions() {
        rgb.clone()
    } else {
        resize(rgb, ow, oh, FilterType::Triangle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn photo() -> RgbImage {
        RgbImage::from_fn(400, 300, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 200) as u8])
        })
    }

    #[test]
    fn sizes() {
        assert_eq!(output_size(4288, 2848, 1024), (1024, 680));
        assert_eq!(output_size(400, 300, 1024), (400, 300));
        assert_eq!(output_size(400, 300, 0), (400, 300));
        assert_eq!(output_size(3000, 1, 10), (10, 1));
        assert_eq!(cell_lookup(4, 8, 2, 4), vec![0, 1, 2, 3]);
        assert_eq!(cell_lookup(2, 7, 3, 3), vec![0, 1]);
    }

    #[test]
    fn draws_lesions_and_keeps_the_rest() {
        let rgb = photo();
        // Cell 10: 40 x 30 cells. HE at 0.9 in cells rows 20..25, cols 25..35 (pixels
        // x 250..350, y 200..250); MA at 0.3, below its threshold, everywhere.
        let mut m = Heatmap::new(400, 300, 10).unwrap();
        m.lesion_mut(0).iter_mut().for_each(|v| *v = 0.3);
        for i in 20..25 {
            for j in 25..35 {
                *m.at_mut(1, i, j) = 0.9;
            }
        }
        let t = [0.5; 4];
        let out = overlay(&rgb, &m, t, 200);
        assert_eq!(out.dimensions(), (200, 150));
        let base = downscale(&rgb, 200);
        // Outside the region and the legend: the downscaled photograph, exactly.
        for (x, y) in [(199, 149), (100, 120), (150, 90), (124, 110), (175, 125)] {
            assert_eq!(out.get_pixel(x, y), base.get_pixel(x, y), "({x}, {y})");
        }
        // Inside (output x 125..175, y 100..125): pulled toward magenta, not replaced.
        let (p, b) = (out.get_pixel(150, 112).0, base.get_pixel(150, 112).0);
        let magenta = OVERLAY_COLOURS[1];
        for k in 0..3 {
            let (pd, bd) = (
                (i32::from(p[k]) - i32::from(magenta[k])).abs(),
                (i32::from(b[k]) - i32::from(magenta[k])).abs(),
            );
            assert!(pd < bd || bd == 0, "channel {k}: {p:?} vs photo {b:?}");
        }
        assert_ne!(p, magenta);
        // Outline in full colour.
        assert_eq!(out.get_pixel(125, 112).0, magenta);
        assert_eq!(out.get_pixel(150, 100).0, magenta);
        assert_eq!(out.get_pixel(174, 124).0, magenta);
        // Legend: swatches present in the top-left corner.
        let mut found = [false; 4];
        for y in 0..100 {
            for x in 0..100 {
                for (c, f) in found.iter_mut().enumerate() {
                    *f |= out.get_pixel(x, y).0 == OVERLAY_COLOURS[c];
                }
            }
        }
        assert_eq!(found, [true; 4]);
    }

    #[test]
    fn opacity_grows_above_threshold() {
        assert_eq!(alpha(0.49, 0.5), None);
        assert_eq!(alpha(0.5, 0.5), Some(MIN_ALPHA));
        assert_eq!(alpha(1.0, 0.5), Some(MAX_ALPHA));
        assert!(alpha(0.75, 0.5).unwrap() > MIN_ALPHA);
        assert_eq!(alpha(1.0, 1.0), Some(MAX_ALPHA));
        assert_eq!(alpha(0.9, f64::NAN), None);
    }

    #[test]
    fn png_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overlay.png");
        let img = photo();
        write_png_atomic(&img, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_png_atomic(&img, dir.path().join("no/such/dir.png")).unwrap_err();
        assert!(e.to_string().contains("no/such/dir.png"), "{e}");
    }
}
