//! A photograph made ready for cutting tiles, as the cache holds it: field of view found,
//! enhancement applied, resized to the tile scale, and its four masks and field of view
//! packed into one byte per pixel; plus the compact index of lesion pixels that the
//! lesion-aware draws pick from.
//!
//! Order of operations: field of view on the photograph as decoded; enhancement (e.g.
//! local contrast) on the full-resolution photograph; then, when the scale is not 1, the
//! photograph is resized with a triangle (bilinear) filter and the masks and field of view
//! by nearest neighbour (pixel centres), so they stay 0/1. Prediction must do the same.
//!
//! Memory: 3 bytes (RGB) + 1 byte (labels) per pixel: 49 MB for a 4288 x 2848 photograph
//! at scale 1.

use fovea_data::{fov_grid, Enhance, Sample, NUM_LESIONS};
use image::imageops::{resize, FilterType};
use image::RgbImage;

use super::cache::Weigh;
use super::settings::TileSettings;

/// Bit of the field of view in a packed label byte (bit l, l < 4, is lesion l).
pub const FOV_BIT: u8 = 1 << NUM_LESIONS;

/// One photograph, ready for cutting tiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub id: String,
    pub width: u32,
    pub height: u32,
    /// `[H, W, 3]` RGB bytes (enhanced and scaled as the settings say).
    pub rgb: Vec<u8>,
    /// `[H, W]`: bit l (0..4) set where lesion l is present, [`FOV_BIT`] inside the field
    /// of view.
    pub labels: Vec<u8>,
}

impl Weigh for Prepared {
    fn bytes(&self) -> u64 {
        (self.rgb.len() + self.labels.len()) as u64
    }
}

/// The side after scaling: `round(side * scale)`, at least 1.
pub fn scaled(side: u32, scale: f32) -> u32 {
    if scale == 1.0 {
        side
    } else {
        ((side as f64 * scale as f64).round() as u32).max(1)
    }
}

/// Prepares a decoded sample (see the module doc).
pub fn prepare(sample: Sample, settings: &TileSettings) -> Prepared {
    let Sample { id, rgb, masks } = sample;
    let (w, h) = rgb.dimensions();
    let fov = fov_grid(&rgb, &settings.fov);
    let rgb = match settings.enhance {
        Enhance::None => rgb,
        e => e.apply(&rgb, &fov),
    };
    let fov = fov.to_mask();
    // Packed at full resolution, then resized by nearest neighbour.
    let mut labels = vec![0u8; (w as usize) * (h as usize)];
    for (l, mask) in masks.iter().enumerate() {
        for (v, &m) in labels.iter_mut().zip(mask.as_raw()) {
            *v |= ((m != 0) as u8) << l;
        }
    }
    for (v, &m) in labels.iter_mut().zip(fov.as_raw()) {
        *v |= if m != 0 { FOV_BIT } else { 0 };
    }
    let (sw, sh) = (scaled(w, settings.scale), scaled(h, settings.scale));
    if (sw, sh) == (w, h) {
        return Prepared {
            id,
            width: w,
            height: h,
            rgb: rgb.into_raw(),
            labels,
        };
    }
    let rgb: RgbImage = resize(&rgb, sw, sh, FilterType::Triangle);
    Prepared {
        id,
        width: sw,
        height: sh,
        rgb: rgb.into_raw(),
        labels: nearest(&labels, (w, h), (sw, sh)),
    }
}

/// Nearest-neighbour resize of a one-byte-per-pixel image: output pixel (x, y) takes the
/// source pixel holding its centre.
fn nearest(src: &[u8], (w, h): (u32, u32), (sw, sh): (u32, u32)) -> Vec<u8> {
    let at =
        |o: u32, n: u32, sn: u32| (((o as f64 + 0.5) * n as f64 / sn as f64) as u32).min(n - 1);
    let xs: Vec<usize> = (0..sw).map(|x| at(x, w, sw) as usize).collect();
    let mut out = Vec::with_capacity(sw as usize * sh as usize);
    for y in 0..sh {
        let row = &src[at(y, h, sh) as usize * w as usize..][..w as usize];
        out.extend(xs.iter().map(|&x| row[x]));
    }
    out
}

/// Where the lesions of one prepared photograph are, for the draws.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LesionIndex {
    pub width: u32,
    pub height: u32,
    /// Lesion pixels per lesion, `(x, y)`, every k-th in raster order so that at most
    /// `max_points` are kept (k = ceil(count / max_points)).
    pub points: [Vec<(u16, u16)>; NUM_LESIONS],
    /// All lesion pixels per lesion (before thinning).
    pub pixels: [u64; NUM_LESIONS],
    /// Pixels inside the field of view.
    pub fov_pixels: u64,
}

impl LesionIndex {
    /// Indexes `image`. Coordinates fit `u16` because photographs are at most 65535 wide.
    pub fn new(image: &Prepared, max_points: usize) -> LesionIndex {
        let mut pixels = [0u64; NUM_LESIONS];
        let mut fov_pixels = 0;
        for &v in &image.labels {
            for (l, n) in pixels.iter_mut().enumerate() {
                *n += ((v >> l) & 1) as u64;
            }
            fov_pixels += (v & FOV_BIT != 0) as u64;
        }
        let step = pixels.map(|n| n.div_ceil(max_points.max(1) as u64).max(1));
        let mut seen = [0u64; NUM_LESIONS];
        let mut points: [Vec<(u16, u16)>; NUM_LESIONS] = Default::default();
        let w = image.width as usize;
        for (i, &v) in image.labels.iter().enumerate() {
            if v & !FOV_BIT == 0 {
                continue;
            }
            for l in 0..NUM_LESIONS {
                if (v >> l) & 1 == 1 {
                    if seen[l] % step[l] == 0 {
                        points[l].push(((i % w) as u16, (i / w) as u16));
                    }
                    seen[l] += 1;
                }
            }
        }
        LesionIndex {
            width: image.width,
            height: image.height,
            points,
            pixels,
            fov_pixels,
        }
    }

    /// Bytes held by the point lists.
    pub fn bytes(&self) -> usize {
        self.points.iter().map(|p| p.capacity() * 4).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    fn sample(w: u32, h: u32) -> Sample {
        let rgb = RgbImage::from_pixel(w, h, image::Rgb([120, 60, 30]));
        let mut masks: [GrayImage; NUM_LESIONS] = Default::default();
        for m in masks.iter_mut() {
            *m = GrayImage::new(w, h);
        }
        Sample {
            id: "a".into(),
            rgb,
            masks,
        }
    }

    #[test]
    fn labels_are_packed_and_indexed() {
        let mut s = sample(8, 6);
        s.masks[0].put_pixel(3, 2, image::Luma([1]));
        s.masks[3].put_pixel(7, 5, image::Luma([255]));
        s.masks[3].put_pixel(0, 0, image::Luma([1]));
        let settings = TileSettings {
            fov: fovea_data::FovSettings {
                block: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let p = prepare(s, &settings);
        assert_eq!((p.width, p.height, p.rgb.len()), (8, 6, 8 * 6 * 3));
        assert_eq!(p.labels[2 * 8 + 3], 1 | FOV_BIT);
        assert_eq!(p.labels[5 * 8 + 7], 8 | FOV_BIT);
        assert_eq!(p.labels[1], FOV_BIT);
        let idx = LesionIndex::new(&p, 100);
        assert_eq!(idx.points[0], vec![(3, 2)]);
        assert_eq!(idx.points[3], vec![(0, 0), (7, 5)]);
        assert!(idx.points[1].is_empty() && idx.points[2].is_empty());
        assert_eq!(idx.pixels, [1, 0, 0, 2]);
        assert_eq!(idx.fov_pixels, 48);
        // Thinned to every second pixel.
        let idx = LesionIndex::new(&p, 1);
        assert_eq!(idx.points[3], vec![(0, 0)]);
    }

    #[test]
    fn scaling_keeps_masks_binary_and_aligned() {
        let mut s = sample(8, 8);
        for y in 4..8 {
            for x in 0..4 {
                s.masks[1].put_pixel(x, y, image::Luma([1]));
            }
        }
        let settings = TileSettings {
            scale: 0.5,
            ..Default::default()
        };
        let p = prepare(s, &settings);
        assert_eq!((p.width, p.height), (4, 4));
        for y in 0..4 {
            for x in 0..4 {
                let he = p.labels[y * 4 + x] & 2 != 0;
                assert_eq!(he, x < 2 && y >= 2, "({x}, {y})");
            }
        }
        assert_eq!(scaled(4288, 0.5), 2144);
        assert_eq!(scaled(3, 0.1), 1);
    }
}
