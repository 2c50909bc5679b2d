//! Tiled whole-photograph inference of a segmentation model, with overlap blending, in
//! bounded memory: the probabilities `[4, H, W]` (MA, HE, EX, SE) of every pixel of a
//! photograph at its full resolution, 0 outside its field of view.
//!
//! Steps ([`infer_photograph`]):
//! 1. the photograph is prepared as training prepared it (`fovea_loader::tiles::prepare`):
//!    field of view found on the photograph as decoded, enhancement (e.g. local contrast)
//!    at full resolution, then resized to the model's scale with a triangle filter;
//! 2. ([`blend_tiles`]) the prepared photograph is cut into tiles of `tile` x `tile` pixels
//!    (`min(tile, W)` x `min(tile, H)` for a smaller photograph: one tile of its own size,
//!    nothing padded; the U-Net pads to its stride itself) whose starts along each axis are
//!    0, `tile - overlap`, ... and the last flush with the far edge, so neighbours share at
//!    least `overlap` pixels. Tiles go through the model `batch` at a time (ImageNet
//!    normalised, as training normalises tiles); each tile's sigmoid probabilities are
//!    added with a weight `w(x) w(y)`, `w(i) = min(1, (i + 1) / (overlap + 1), (L - i) /
//!    (overlap + 1))` for position i of L along the axis (falling off towards the tile's
//!    edges, never 0), and the sums divided by the summed weights. A model whose output
//!    at a pixel does not depend on the tile (a constant or pointwise model) therefore
//!    gives the same map as one pass over the whole photograph, seams included;
//! 3. at a scale below 1, the map is resized back to the photograph's size (bilinear,
//!    one lesion at a time), and pixels outside the field of view are set to 0.
//!
//! Memory: never the whole photograph through the network at once; the blended sums
//! `[4, h, w]` and weights `[h, w]` (f32, at the model's scale), one batch of tiles, and
//! the output `[4, H, W]` f32 (195 MB for a 4288 x 2848 photograph).

use fovea_data::{fov_grid, Enhance, FovSettings, NUM_LESIONS};
use fovea_loader::{IMAGENET_MEAN, IMAGENET_STD};
use image::imageops::{resize, FilterType};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use super::settings::InferSettings;
use crate::amp::Amp;
use crate::error::{NnError, Result};
use crate::models::unet::UNet;

/// How a photograph is made ready for the model: what training did to its photographs
/// (recorded in `model.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resolution the model works at (1 = the photograph's own pixels).
    pub scale: f32,
    /// Enhancement applied at full resolution before scaling.
    #[serde(default)]
    pub enhance: Enhance,
    /// Field-of-view detection (the map is 0 outside it).
    #[serde(default)]
    pub fov: FovSettings,
}

impl Preprocess {
    /// The size of a `w x h` photograph at the model's scale (what tiles are cut from).
    pub fn scaled_size(&self, w: u32, h: u32) -> (u32, u32) {
        (
            fovea_loader::tiles::prepare::scaled(w, self.scale),
            fovea_loader::tiles::prepare::scaled(h, self.scale),
        )
    }
}

/// A photograph's lesion probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct SegMap {
    pub width: u32,
    pub height: u32,
    /// `[4, H, W]`, lesion-major then row-major: `probs[(c * H + y) * W + x]`, in [0, 1],
    /// 0 outside the field of view.
    pub probs: Vec<f32>,
    /// `[H, W]`, 255 inside the field of view.
    pub fov: GrayImage,
}

impl SegMap {
    /// The `[H, W]` plane of lesion `c`.
    pub fn lesion(&self, c: usize) -> &[f32] {
        let n = self.width as usize * self.height as usize;
        &self.probs[c * n..(c + 1) * n]
    }
}

/// The photograph as the model sees it (enhanced, scaled) and its full-resolution field
/// of view.
pub fn prepare_photograph(rgb: &RgbImage, p: &Preprocess) -> (RgbImage, GrayImage) {
    let fov = fov_grid(rgb, &p.fov);
    let enhanced = match p.enhance {
        Enhance::None => None,
        e => Some(e.apply(rgb, &fov)),
    };
    let src = enhanced.as_ref().unwrap_or(rgb);
    let (w, h) = rgb.dimensions();
    let (sw, sh) = p.scaled_size(w, h);
    let scaled = if (sw, sh) == (w, h) {
        enhanced.unwrap_or_else(|| rgb.clone())
    } else {
        resize(src, sw, sh, FilterType::Triangle)
    };
    (scaled, fov.to_mask())
}

/// Tile starts along an axis of `n` pixels: 0, `tile - overlap`, ..., the last at
/// `n - tile` (one start, 0, when `n <= tile`).
pub fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let step = (tile - overlap).max(1);
    let mut v: Vec<usize> = (0..)
        .map(|k| k * step)
        .take_while(|&s| s + tile < n)
        .collect();
    v.push(n - tile);
    v
}

/// The blending weight of position `i` of `len` along an axis (see the module doc).
pub fn edge_weight(i: usize, len: usize, overlap: usize) -> f32 {
    let r = (overlap + 1) as f32;
    ((i + 1) as f32 / r).min((len - i) as f32 / r).min(1.0)
}

/// Probabilities `[4, h, w]` of the prepared photograph `rgb` (`w x h`), tile by tile
/// (module doc, step 2). `forward` maps a CPU batch `[N, 3, th, tw]` (ImageNet-normalised)
/// to logits `[N, 4, th, tw]` on any device.
pub fn blend_tiles(
    rgb: &RgbImage,
    s: &InferSettings,
    forward: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    blend_tiles_where(rgb, s, forward, &|_, _, _, _| true, &mut |_, _| {})
}

/// [`blend_tiles`] over the tiles `keep(x0, y0, tw, th)` accepts only; pixels no kept
/// tile covers are 0 (so a tile that holds no field-of-view pixel can be skipped: every
/// pixel inside the field of view lies in kept tiles only, and its value is what
/// [`blend_tiles`] gives). `progress(done, total)` after each batch, counted in tiles.
pub fn blend_tiles_where(
    rgb: &RgbImage,
    s: &InferSettings,
    forward: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    keep: &dyn Fn(usize, usize, usize, usize) -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let (tw, th) = ((s.tile as usize).min(w), (s.tile as usize).min(h));
    let overlap = s.overlap as usize;
    let wx: Vec<f32> = (0..tw).map(|i| edge_weight(i, tw, overlap)).collect();
    let wy: Vec<f32> = (0..th).map(|i| edge_weight(i, th, overlap)).collect();
    let mut acc = vec![0f32; NUM_LESIONS * w * h];
    let mut wsum = vec![0f32; w * h];
    let tiles: Vec<(usize, usize)> = tile_starts(h, th, overlap)
        .into_iter()
        .flat_map(|y| tile_starts(w, tw, overlap).into_iter().map(move |x| (x, y)))
        .filter(|&(x, y)| keep(x, y, tw, th))
        .collect();
    let (lut, raw) = (normalise_lut(), rgb.as_raw());
    let mut done = 0;
    progress(0, tiles.len());
    for chunk in tiles.chunks(s.batch.max(1)) {
        let mut input = vec![0f32; chunk.len() * 3 * th * tw];
        for (k, &(x0, y0)) in chunk.iter().enumerate() {
            let dst = &mut input[k * 3 * th * tw..(k + 1) * 3 * th * tw];
            for y in 0..th {
                let row = &raw[((y0 + y) * w + x0) * 3..][..tw * 3];
                for (c, table) in lut.iter().enumerate() {
                    let out = &mut dst[(c * th + y) * tw..][..tw];
                    for (o, px) in out.iter_mut().zip(row.chunks_exact(3)) {
                        *o = table[px[c] as usize];
                    }
                }
            }
        }
        let x = Tensor::from_slice(&input).view([chunk.len() as i64, 3, th as i64, tw as i64]);
        let logits = forward(&x)?;
        let want = [chunk.len() as i64, NUM_LESIONS as i64, th as i64, tw as i64];
        if logits.size() != want {
            return Err(NnError::internal(format!(
                "segmentation forward gave {:?}, expected {want:?}",
                logits.size()
            )));
        }
        let probs = logits.sigmoid().to_kind(Kind::Float).to_device(Device::Cpu);
        let probs: Vec<f32> = Vec::try_from(probs.contiguous().view([-1]))?;
        for (k, &(x0, y0)) in chunk.iter().enumerate() {
            let tile = &probs[k * NUM_LESIONS * th * tw..(k + 1) * NUM_LESIONS * th * tw];
            for (y, &wyy) in wy.iter().enumerate() {
                let o = (y0 + y) * w + x0;
                for (d, &wxx) in wsum[o..o + tw].iter_mut().zip(&wx) {
                    *d += wyy * wxx;
                }
                for c in 0..NUM_LESIONS {
                    let dst = &mut acc[c * w * h + o..][..tw];
                    let src = &tile[(c * th + y) * tw..][..tw];
                    for ((d, &p), &wxx) in dst.iter_mut().zip(src).zip(&wx) {
                        *d += wyy * wxx * p;
                    }
                }
            }
        }
        done += chunk.len();
        progress(done, tiles.len());
    }
    for plane in acc.chunks_exact_mut(w * h) {
        for (v, &s) in plane.iter_mut().zip(&wsum) {
            // A pixel no kept tile covers has no weight: 0.
            *v = if s > 0.0 { *v / s } else { 0.0 };
        }
    }
    Ok(acc)
}

/// `(v / 255 - mean[c]) / std[c]` for every channel and byte (training's normalisation).
fn normalise_lut() -> [[f32; 256]; 3] {
    std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) * (1.0 / IMAGENET_STD[c]))
    })
}

/// The lesion probabilities of a photograph at its full resolution (module doc).
pub fn infer_photograph(
    rgb: &RgbImage,
    prep: &Preprocess,
    s: &InferSettings,
    forward: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SegMap> {
    let (width, height) = rgb.dimensions();
    let (scaled, fov) = prepare_photograph(rgb, prep);
    // Tiles without a field-of-view pixel are not run (their pixels are 0 in the end).
    let (sx, sy) = (
        width as f64 / scaled.width() as f64,
        height as f64 / scaled.height() as f64,
    );
    let keep = |x0: usize, y0: usize, tw: usize, th: usize| {
        let (fx0, fy0) = ((x0 as f64 * sx) as usize, (y0 as f64 * sy) as usize);
        let fx1 = (((x0 + tw) as f64 * sx).ceil() as usize).min(width as usize);
        let fy1 = (((y0 + th) as f64 * sy).ceil() as usize).min(height as usize);
        let raw = fov.as_raw();
        (fy0..fy1).any(|y| {
            raw[y * width as usize + fx0..y * width as usize + fx1]
                .iter()
                .any(|&v| v != 0)
        })
    };
    let mut probs = blend_tiles_where(&scaled, s, forward, &keep, progress)?;
    if scaled.dimensions() != (width, height) {
        probs = upsample(&probs, scaled.dimensions(), (width, height))?;
    }
    let n = width as usize * height as usize;
    for plane in probs.chunks_exact_mut(n) {
        for (v, &f) in plane.iter_mut().zip(fov.as_raw()) {
            if f == 0 {
                *v = 0.0;
            }
        }
    }
    Ok(SegMap {
        width,
        height,
        probs,
        fov,
    })
}

/// Bilinear resize of `[4, h, w]` maps to `[4, H, W]`, one lesion at a time.
fn upsample(probs: &[f32], (w, h): (u32, u32), (ow, oh): (u32, u32)) -> Result<Vec<f32>> {
    let n = w as usize * h as usize;
    let mut out = Vec::with_capacity(NUM_LESIONS * ow as usize * oh as usize);
    for plane in probs.chunks_exact(n) {
        let t = Tensor::from_slice(plane).view([1, 1, h as i64, w as i64]);
        let up = t
            .upsample_bilinear2d([oh as i64, ow as i64], false, None, None)
            .clamp(0.0, 1.0);
        out.extend(Vec::<f32>::try_from(up.view([-1]))?);
    }
    Ok(out)
}

/// A U-Net's forward pass for [`infer_photograph`]: on `device`, in evaluation mode, no
/// gradients, CUDA autocast under `amp`, input laid out channels-last when
/// `channels_last`.
pub struct UNetPass<'a> {
    pub net: &'a UNet,
    pub device: Device,
    pub amp: Amp,
    pub channels_last: bool,
}

impl UNetPass<'_> {
    /// [`infer_photograph`] through this pass.
    pub fn map(
        &self,
        rgb: &RgbImage,
        prep: &Preprocess,
        s: &InferSettings,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SegMap> {
        tch::no_grad(|| {
            let mut forward = |x: &Tensor| -> Result<Tensor> {
                let mut x = x.to_device(self.device);
                if self.channels_last {
                    x = crate::layout::channels_last(&x);
                }
                Ok(crate::amp::forward(self.amp, || {
                    self.net.forward_t(&x, false)
                }))
            };
            infer_photograph(rgb, prep, s, &mut forward, progress)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn photo(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 7 + y * 3) as u8,
                ((x * 13) ^ (y * 5)) as u8,
                ((x + y) * 11) as u8,
            ])
        })
    }

    /// A pointwise model: logits = the normalised red, green, blue and red channels.
    /// A `w x h` photograph black left of column `black` (no retina), bright red on the
    /// right, and a preprocessing that finds its field of view pixel by pixel.
    fn half_black(w: u32, h: u32, black: u32) -> (RgbImage, Preprocess) {
        let rgb = RgbImage::from_fn(w, h, |x, y| {
            if x < black {
                Rgb([0, 0, 0])
            } else {
                Rgb([200, (x * 5) as u8, (y * 3) as u8])
            }
        });
        let prep = Preprocess {
            scale: 1.0,
            enhance: Enhance::None,
            fov: FovSettings {
                red_threshold: 20.0,
                block: 1,
            },
        };
        (rgb, prep)
    }

    fn pointwise(x: &Tensor) -> Result<Tensor> {
        Ok(Tensor::cat(&[x.shallow_clone(), x.narrow(1, 0, 1)], 1) * 0.7)
    }

    #[test]
    fn starts_cover_the_axis_with_the_overlap() {
        assert_eq!(tile_starts(100, 128, 16), vec![0]);
        assert_eq!(tile_starts(128, 128, 16), vec![0]);
        assert_eq!(tile_starts(300, 128, 28), vec![0, 100, 172]);
        for (n, t, o) in [(1000, 128, 32), (129, 128, 0), (517, 64, 63)] {
            let s = tile_starts(n, t, o);
            assert_eq!(s[0], 0);
            assert_eq!(*s.last().unwrap() + t, n);
            assert!(s.windows(2).all(|p| p[1] > p[0] && p[0] + t >= p[1] + o));
        }
        assert!(edge_weight(0, 64, 8) > 0.0 && edge_weight(63, 64, 8) > 0.0);
        assert_eq!(edge_weight(32, 64, 8), 1.0);
    }

    #[test]
    fn pointwise_and_constant_models_come_through_the_seams_unchanged() {
        let rgb = photo(150, 97);
        let whole = InferSettings {
            tile: 512,
            overlap: 0,
            batch: 1,
        };
        let reference = blend_tiles(&rgb, &whole, &mut pointwise).unwrap();
        let tiled = InferSettings {
            tile: 40,
            overlap: 12,
            batch: 3,
        };
        let got = blend_tiles(&rgb, &tiled, &mut pointwise).unwrap();
        assert_eq!(got.len(), 4 * 150 * 97);
        let worst = got
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest difference across seams {worst}");
        // A constant model gives its probability everywhere.
        let mut constant = |x: &Tensor| -> Result<Tensor> {
            let s = x.size();
            Ok(Tensor::full(
                [s[0], 4, s[2], s[3]],
                0.3,
                (Kind::Float, Device::Cpu),
            ))
        };
        let c = blend_tiles(&rgb, &tiled, &mut constant).unwrap();
        let p = 1.0 / (1.0 + (-0.3f32).exp());
        assert!(c.iter().all(|v| (v - p).abs() < 1e-6));
    }

    #[test]
    fn a_tile_dependent_model_is_blended_between_its_tiles() {
        // Logit = the tile's left edge in pixels / 100: in an overlap the result lies
        // between the two tiles' values, elsewhere it is the tile's own.
        let rgb = photo(100, 20);
        let s = InferSettings {
            tile: 60,
            overlap: 20,
            batch: 1,
        };
        let mut calls = 0;
        let mut by_tile = |x: &Tensor| -> Result<Tensor> {
            let sz = x.size();
            let v = [0.0, 0.4][calls];
            calls += 1;
            Ok(Tensor::full(
                [sz[0], 4, sz[2], sz[3]],
                v,
                (Kind::Float, Device::Cpu),
            ))
        };
        let got = blend_tiles(&rgb, &s, &mut by_tile).unwrap();
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        assert!((got[5] - sig(0.0)).abs() < 1e-6);
        assert!((got[95] - sig(0.4)).abs() < 1e-6);
        let mid = got[50];
        assert!(mid > sig(0.0) + 1e-4 && mid < sig(0.4) - 1e-4, "{mid}");
    }

    #[test]
    fn a_photograph_smaller_than_a_tile_is_mapped_whole_and_masked_to_the_fov() {
        // Black on the left (no retina), bright red on the right.
        let (rgb, prep) = half_black(37, 23, 10);
        let mut shapes = Vec::new();
        let mut f = |x: &Tensor| -> Result<Tensor> {
            shapes.push(x.size());
            pointwise(x)
        };
        let m = infer_photograph(
            &rgb,
            &prep,
            &InferSettings::default(),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(shapes, vec![vec![1, 3, 23, 37]]);
        assert_eq!((m.width, m.height, m.probs.len()), (37, 23, 4 * 37 * 23));
        for c in 0..4 {
            assert_eq!(m.lesion(c)[0], 0.0, "outside the field of view");
        }
        assert!(m.lesion(0)[36] > 0.0);
    }

    #[test]
    fn tiles_outside_the_field_of_view_are_skipped_and_nothing_inside_changes() {
        // Black left third (no retina): 10 of 33 columns of 16-pixel tiles hold no retina.
        let (rgb, prep) = half_black(120, 40, 40);
        let s = InferSettings {
            tile: 16,
            overlap: 4,
            batch: 3,
        };
        let all = tile_starts(120, 16, 4).len() * tile_starts(40, 16, 4).len();
        let (mut calls, mut seen) = (0, Vec::new());
        let mut f = |x: &Tensor| -> Result<Tensor> {
            calls += x.size()[0] as usize;
            pointwise(x)
        };
        let m = infer_photograph(&rgb, &prep, &s, &mut f, &mut |d, t| seen.push((d, t))).unwrap();
        assert!(calls < all, "{calls} of {all} tiles run");
        assert_eq!(seen.first(), Some(&(0, calls)));
        assert_eq!(seen.last(), Some(&(calls, calls)));
        // Inside the field of view, the map is the one of every tile blended.
        let every = blend_tiles(&rgb, &s, &mut pointwise).unwrap();
        for c in 0..4 {
            for (k, (&v, &f)) in m.lesion(c).iter().zip(m.fov.as_raw()).enumerate() {
                if f == 0 {
                    assert_eq!(v, 0.0);
                } else {
                    assert_eq!(v, every[c * 120 * 40 + k], "lesion {c} pixel {k}");
                }
            }
        }
    }

    #[test]
    fn a_scaled_model_maps_at_full_resolution() {
        let rgb = photo(90, 61);
        let prep = Preprocess {
            scale: 0.5,
            enhance: Enhance::None,
            fov: FovSettings::default(),
        };
        let mut seen = Vec::new();
        let mut f = |x: &Tensor| -> Result<Tensor> {
            seen.push(x.size());
            pointwise(x)
        };
        let m = infer_photograph(
            &rgb,
            &prep,
            &InferSettings::default(),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(seen, vec![vec![1, 3, 31, 45]]);
        assert_eq!(m.probs.len(), 4 * 90 * 61);
        assert!(m.probs.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
