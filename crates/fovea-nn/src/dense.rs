//! Dense inference over a whole photograph: the patch classifier's probabilities for every
//! window of side P on a grid of stride S, for lesion maps.
//!
//! Two ways to get them:
//! - [`dense_window_probs`] (the default) runs the convolutional trunk once over large
//!   tiles of the photograph and reads every window's output off the feature map: a
//!   window of P pixels whose origin is on the trunk's stride (32 px for ResNet-18) covers
//!   exactly P/32 x P/32 feature cells, and its logits are `fc(mean of those cells)`, as the
//!   classifier computes them for the window alone ([`Classifier::window_logits`]). With
//!   P=64 and S=32 every pixel is seen by four windows, and the shared trunk is computed
//!   once rather than four times (sixteen times for P=128).
//! - [`windowed_probs`] crops every window and classifies it alone, in batches: the
//!   reference the dense result is checked against.
//!
//! The two differ only in what the convolutions see at a window's edge: alone, a window
//! sees zero padding; in the dense pass it sees the photograph around it (within the
//! tile's `halo`). Tiles bound memory for any photograph size: each is its windows' pixels
//! plus a `halo` of context on every side, aligned to the trunk's stride so that tiling
//! does not move a window's cells.
//!
//! Grid (as `fovea_maps::WindowGrid`): origins `(c*S, r*S)`,
//! `cols = ceil((max(W, P) - P) / S) + 1`, likewise rows; pixels past the photograph's
//! right and bottom edges are black (the colour of the surround outside the field of view).
//! Windows with no pixel in the field of view are not computed and get probability 0.

use crate::layout::channels_last;
use fovea_data::fov::FovGrid;
use fovea_maps::WindowGrid;
use image::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::context::{FoveaModel, GlobalContext};
use crate::error::{NnError, Result};

/// How windows are laid out and computed.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSettings {
    /// Window side P in pixels (the model's patch size).
    pub patch: u32,
    /// Window stride S in pixels; for the dense pass a multiple of the trunk's stride.
    pub stride: u32,
    /// Dense pass: windows per tile side, counted on the trunk's stride.
    pub tile: u32,
    /// Dense pass: pixels of context around a tile (rounded up to the trunk's stride).
    pub halo: u32,
    /// Window-by-window pass: windows per batch.
    pub batch: usize,
    /// ImageNet normalisation recorded with the model.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Probabilities of every window of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowProbs {
    /// The photograph's window grid.
    pub grid: WindowGrid,
    /// `rows * cols`, row-major: sigmoid probabilities (0 for windows not computed).
    pub probs: Vec<[f32; 4]>,
    /// Whether the window has a pixel in the field of view (and so was computed).
    pub computed: Vec<bool>,
}

impl WindowProbs {
    /// Per lesion, the highest probability of a computed window (0 when none was).
    pub fn max_probs(&self) -> [f32; 4] {
        let mut m = [0f32; 4];
        for (p, _) in self.probs.iter().zip(&self.computed).filter(|(_, &c)| c) {
            for c in 0..4 {
                m[c] = m[c].max(p[c]);
            }
        }
        m
    }
}

/// Errors of the dense pass ([`NnError`]).
pub type DenseResult<T> = Result<T>;

impl WindowProbs {
    /// Nothing computed yet, on the photograph's window grid (`fovea_maps::WindowGrid`,
    /// which also checks the sizes).
    fn empty(rgb: &RgbImage, s: &DenseSettings) -> DenseResult<WindowProbs> {
        let grid = WindowGrid::new(rgb.width(), rgb.height(), s.patch, s.stride)?;
        Ok(WindowProbs {
            probs: vec![[0.0; 4]; grid.len()],
            computed: vec![false; grid.len()],
            grid,
        })
    }
}

/// A normalised `[1, 3, h, w]` crop of `rgb` with top-left `(x0, y0)` (which may lie
/// outside the photograph: those pixels are black).
fn crop_tensor(rgb: &RgbImage, x0: i64, y0: i64, w: i64, h: i64, s: &DenseSettings) -> Tensor {
    let (iw, ih) = (rgb.width() as i64, rgb.height() as i64);
    let plane = (w * h) as usize;
    let mut buf = vec![0f32; 3 * plane];
    let black: [f32; 3] = std::array::from_fn(|c| -s.mean[c] / s.std[c]);
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * s.std[c]));
    let raw = rgb.as_raw();
    for y in 0..h {
        let sy = y0 + y;
        let row = (y * w) as usize;
        for x in 0..w {
            let sx = x0 + x;
            let i = row + x as usize;
            if sy < 0 || sy >= ih || sx < 0 || sx >= iw {
                for c in 0..3 {
                    buf[c * plane + i] = black[c];
                }
            } else {
                let p = ((sy * iw + sx) * 3) as usize;
                for c in 0..3 {
                    buf[c * plane + i] = raw[p + c] as f32 * scale[c] + black[c];
                }
            }
        }
    }
    Tensor::from_slice(&buf).view([1, 3, h, w])
}

fn has_fov(fov: Option<&FovGrid>, x: u32, y: u32, w: u32, h: u32) -> bool {
    fov.is_none_or(|f| f.count_in_rect(x, y, w, h) > 0)
}

fn probs_of(logits: &Tensor) -> DenseResult<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        logits
            .sigmoid()
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]),
    )?)
}

/// Logits of window features `[N, C]` centred at `centres` (pixels) of the photograph
/// whose global features are `global`.
fn fused_logits(
    model: &FoveaModel,
    global: Option<&GlobalContext>,
    feats: &Tensor,
    centres: &[(f32, f32)],
    device: Device,
) -> DenseResult<Tensor> {
    let g = global.ok_or_else(|| NnError::MissingContext {
        fusion: model.fusion().to_string(),
    })?;
    let ctx = g.batch(model, &vec![0; centres.len()], centres, device, false)?;
    model.head(feats, Some(&ctx))
}

/// Window probabilities from the trunk run once per tile (see the module doc).
/// `progress` is called with (tiles done, tiles).
pub fn dense_window_probs(
    model: &FoveaModel,
    global: Option<&GlobalContext>,
    rgb: &RgbImage,
    fov: Option<&FovGrid>,
    s: &DenseSettings,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> DenseResult<WindowProbs> {
    let mut out = WindowProbs::empty(rgb, s)?;
    let (rows, cols) = (out.grid.rows, out.grid.cols);
    let fs = model.trunk.feature_stride();
    if s.patch % fs != 0 || s.stride % fs != 0 {
        return Err(NnError::Usage(format!(
            "dense maps need the window size ({}) and stride ({}) to be multiples of the model's feature stride ({fs}); use the window-by-window mode otherwise",
            s.patch, s.stride
        )));
    }
    let k = (s.patch / fs) as i64;
    let step = (s.stride / fs) as usize; // feature cells between grid windows
    let halo = s.halo.div_ceil(fs) * fs;
    // Dense windows on the feature stride: q = 0..qr (rows), 0..qc (cols).
    let (qr, qc) = ((rows - 1) * step + 1, (cols - 1) * step + 1);
    let tile = s.tile.max(1) as usize;
    let (tr, tc) = (qr.div_ceil(tile), qc.div_ceil(tile));
    let (pw, ph) = (
        ((qc - 1) as u32 * fs + s.patch) as i64,
        ((qr - 1) as u32 * fs + s.patch) as i64,
    );
    let fs64 = fs as i64;
    tch::no_grad(|| -> DenseResult<()> {
        for ti in 0..tr {
            for tj in 0..tc {
                progress(ti * tc + tj, tr * tc);
                let (q0r, q1r) = (ti * tile, ((ti + 1) * tile).min(qr));
                let (q0c, q1c) = (tj * tile, ((tj + 1) * tile).min(qc));
                // The tile's windows' pixels.
                let (x0, y0) = (q0c as i64 * fs64, q0r as i64 * fs64);
                let (x1, y1) = (
                    (q1c - 1) as i64 * fs64 + s.patch as i64,
                    (q1r - 1) as i64 * fs64 + s.patch as i64,
                );
                // Skip the tile unless one of its grid windows is in the field of view.
                let any = (q0r..q1r).filter(|q| q % step == 0).any(|qy| {
                    (q0c..q1c)
                        .filter(|q| q % step == 0)
                        .any(|qx| has_fov(fov, qx as u32 * fs, qy as u32 * fs, s.patch, s.patch))
                });
                if !any {
                    continue;
                }
                // With context, clipped to the padded photograph.
                let (cx0, cy0) = ((x0 - halo as i64).max(0), (y0 - halo as i64).max(0));
                let (cx1, cy1) = ((x1 + halo as i64).min(pw), (y1 + halo as i64).min(ph));
                // Channels-last input (crate::layout): the dense pass of the shallow CNN over
                // a 4288x2848 photograph ran about 30 % faster (10.1-11.4 s against
                // 14.6-16.3 s, `fovea bench maps`).
                let input = channels_last(
                    &crop_tensor(rgb, cx0, cy0, cx1 - cx0, cy1 - cy0, s).to_device(device),
                );
                let fm = model.trunk.feature_map(&input, false);
                let logits = if model.needs_context() {
                    // Window features, then the fused head with each window's centre.
                    let wf = model.trunk.window_features(&fm, k);
                    let (_, c, lh, lw) = wf.size4()?;
                    let feats = wf.permute([0, 2, 3, 1]).reshape([lh * lw, c]);
                    let half = s.patch as f32 / 2.0;
                    let mut centres = Vec::with_capacity((lh * lw) as usize);
                    for t in 0..lh {
                        for u in 0..lw {
                            centres.push((
                                (cx0 + u * fs64) as f32 + half,
                                (cy0 + t * fs64) as f32 + half,
                            ));
                        }
                    }
                    let logits = fused_logits(model, global, &feats, &centres, device)?;
                    logits
                        .view([lh, lw, 4])
                        .permute([2, 0, 1])
                        .unsqueeze(0)
                        .contiguous()
                } else {
                    model.trunk.window_logits(&fm, k)
                };
                // logits[0, :, t, u] is the window with origin (cx0 + u*fs, cy0 + t*fs).
                let (_, _, lh, lw) = logits.size4()?;
                let p = probs_of(&logits)?; // [4][lh][lw]
                let plane = (lh * lw) as usize;
                for qy in (q0r..q1r).filter(|q| q % step == 0) {
                    let t = qy as i64 - cy0 / fs64;
                    for qx in (q0c..q1c).filter(|q| q % step == 0) {
                        let u = qx as i64 - cx0 / fs64;
                        if !(0..lh).contains(&t) || !(0..lw).contains(&u) {
                            return Err(NnError::internal(format!(
                                "window ({qy}, {qx}) outside the tile's output {lh}x{lw}"
                            )));
                        }
                        let (wx, wy) = (qx as u32 * fs, qy as u32 * fs);
                        if !has_fov(fov, wx, wy, s.patch, s.patch) {
                            continue;
                        }
                        let g = (qy / step) * cols + qx / step;
                        let at = (t * lw + u) as usize;
                        out.probs[g] = std::array::from_fn(|c| p[c * plane + at]);
                        out.computed[g] = true;
                    }
                }
            }
        }
        progress(tr * tc, tr * tc);
        Ok(())
    })?;
    Ok(out)
}

/// Window probabilities, each window cropped and classified alone (the reference).
pub fn windowed_probs(
    model: &FoveaModel,
    global: Option<&GlobalContext>,
    rgb: &RgbImage,
    fov: Option<&FovGrid>,
    s: &DenseSettings,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> DenseResult<WindowProbs> {
    let mut out = WindowProbs::empty(rgb, s)?;
    let (rows, cols) = (out.grid.rows, out.grid.cols);
    let todo: Vec<usize> = (0..rows * cols)
        .filter(|&g| {
            let (r, c) = (g / cols, g % cols);
            has_fov(
                fov,
                c as u32 * s.stride,
                r as u32 * s.stride,
                s.patch,
                s.patch,
            )
        })
        .collect();
    let p = s.patch as i64;
    tch::no_grad(|| -> DenseResult<()> {
        for (b, chunk) in todo.chunks(s.batch.max(1)).enumerate() {
            progress(b * s.batch.max(1), todo.len());
            let crops: Vec<Tensor> = chunk
                .iter()
                .map(|&g| {
                    let (r, c) = ((g / cols) as i64, (g % cols) as i64);
                    crop_tensor(rgb, c * s.stride as i64, r * s.stride as i64, p, p, s)
                })
                .collect();
            let x = channels_last(&Tensor::cat(&crops, 0).to_device(device));
            let feats = model.features(&x, false);
            let pr = if model.needs_context() {
                let half = s.patch as f32 / 2.0;
                let centres: Vec<(f32, f32)> = chunk
                    .iter()
                    .map(|&g| {
                        let (r, c) = ((g / cols) as u32, (g % cols) as u32);
                        ((c * s.stride) as f32 + half, (r * s.stride) as f32 + half)
                    })
                    .collect();
                probs_of(&fused_logits(model, global, &feats, &centres, device)?)?
            } else {
                probs_of(&feats.apply(model.trunk.fc()))?
            }; // [B, 4]
            for (i, &g) in chunk.iter().enumerate() {
                out.probs[g] = std::array::from_fn(|c| pr[i * 4 + c]);
                out.computed[g] = true;
            }
        }
        progress(todo.len(), todo.len());
        Ok(())
    })?;
    Ok(out)
}

/// Agreement of two window-probability sets over the windows both computed: mean and
/// largest absolute difference, and Pearson correlation, per lesion.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    pub windows: usize,
    pub mean_abs_diff: [f64; 4],
    pub max_abs_diff: [f64; 4],
    pub correlation: [f64; 4],
}

pub fn agreement(a: &WindowProbs, b: &WindowProbs) -> DenseResult<Agreement> {
    if a.probs.len() != b.probs.len() {
        return Err(NnError::Usage(format!(
            "grids differ: {} and {} windows",
            a.probs.len(),
            b.probs.len()
        )));
    }
    let both: Vec<usize> = (0..a.probs.len())
        .filter(|&i| a.computed[i] && b.computed[i])
        .collect();
    let n = both.len().max(1) as f64;
    let mut r = Agreement {
        windows: both.len(),
        mean_abs_diff: [0.0; 4],
        max_abs_diff: [0.0; 4],
        correlation: [f64::NAN; 4],
    };
    for c in 0..4 {
        let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &i in &both {
            let (x, y) = (a.probs[i][c] as f64, b.probs[i][c] as f64);
            let d = (x - y).abs();
            r.mean_abs_diff[c] += d / n;
            r.max_abs_diff[c] = r.max_abs_diff[c].max(d);
            sa += x;
            sb += y;
            saa += x * x;
            sbb += y * y;
            sab += x * y;
        }
        let cov = sab / n - (sa / n) * (sb / n);
        let va = saa / n - (sa / n).powi(2);
        let vb = sbb / n - (sb / n).powi(2);
        if va > 0.0 && vb > 0.0 {
            r.correlation[c] = cov / (va * vb).sqrt();
        }
    }
    Ok(r)
}
