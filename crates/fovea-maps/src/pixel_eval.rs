//! Pixel-level scoring of lesion maps against masks, the IDRiD challenge's protocol:
//! per lesion, AUPR (step-wise average precision, as scikit-learn's
//! `average_precision_score`) and AUROC over every pixel of every image of a split, each
//! pixel taking the value of its heatmap cell. Written as `EVAL/pixel_metrics.json`.
//!
//! Streaming and exact up to quantisation: scores go into a
//! [`fovea_metrics::ScoreHistogram`] (`bins` bins over [0, 1]), and a cell adds all its
//! pixels at once, as (lesion pixels of the mask inside the cell, other pixels), so a
//! photograph is never expanded to full resolution. A per-image AUPR uses a coarser
//! histogram ([`PER_IMAGE_BINS`]). Image-level presence (truth: the mask has a lesion pixel;
//! score: the image-level probability) is scored exactly with
//! [`fovea_metrics::roc_auc`] / [`fovea_metrics::average_precision`] and F1 at the
//! thresholds.

use std::path::Path;

use fovea_data::io::Mask;
use fovea_metrics::{average_precision, f1_from_counts, roc_auc, ScoreHistogram, LESIONS};
use serde::{Deserialize, Serialize};

use crate::error::{MapsError, Result};
use crate::heatmap::{Heatmap, NUM_LESIONS};
use crate::json::{read_json, write_json_atomic};

/// Bins of the per-image histograms.
pub const PER_IMAGE_BINS: usize = 1000;

/// Pixel-level results of one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagePixelMetrics {
    pub image_id: String,
    /// Per-lesion AUPR over the image's pixels ([`PER_IMAGE_BINS`] bins); `None` when the
    /// image has no lesion pixel of that kind.
    pub aupr: [Option<f64>; NUM_LESIONS],
    /// The image-level probabilities given for it.
    pub image_probability: [f32; NUM_LESIONS],
    /// Whether its mask has any pixel of each lesion.
    pub present: [bool; NUM_LESIONS],
}

/// Image-level presence metrics over the images of the split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageLevelMetrics {
    /// AUROC of the image probabilities; `None` unless images with and without the lesion
    /// were seen.
    pub auroc: [Option<f64>; NUM_LESIONS],
    /// Average precision of the image probabilities (0 with no positive image).
    pub ap: [f64; NUM_LESIONS],
    /// F1 of `image_probability >= threshold`.
    pub f1: [f64; NUM_LESIONS],
    /// The thresholds F1 was computed at.
    pub threshold: [f64; NUM_LESIONS],
    /// Number of images whose mask has the lesion.
    pub positives: [u64; NUM_LESIONS],
}

/// `pixel_metrics.json` (CONTRACTS 5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PixelMetrics {
    /// `["MA", "HE", "EX", "SE"]`: the order of every array.
    pub lesions: Vec<String>,
    /// How AUPR and AUROC were estimated, in one sentence.
    pub estimator: String,
    /// Histogram bins over [0, 1].
    pub bins: usize,
    /// Images scored.
    pub images: usize,
    /// Pixels scored per lesion (every pixel of every image).
    pub pixels: u64,
    /// Lesion pixels per lesion.
    pub positive_pixels: [u64; NUM_LESIONS],
    /// Pixel-level AUPR per lesion (0 for a lesion with no pixel in any image).
    pub aupr: [f64; NUM_LESIONS],
    /// Pixel-level AUROC per lesion; `None` for a lesion with no pixel in any image.
    pub auroc: [Option<f64>; NUM_LESIONS],
    /// Image-level presence metrics.
    pub image_level: ImageLevelMetrics,
    /// One entry per image, in the order added.
    pub per_image: Vec<ImagePixelMetrics>,
}

/// Accumulates images; see the module docs.
#[derive(Clone, Debug)]
pub struct PixelScorer {
    hist: [ScoreHistogram; NUM_LESIONS],
    pixels: u64,
    images: Vec<ImagePixelMetrics>,
}

/// Lesion pixels of `mask` inside each cell of `map`, row-major over cells.
fn positives_per_cell(map: &Heatmap, mask: &Mask) -> Vec<u64> {
    let mut counts = vec![0u64; map.h * map.w];
    let (width, cell) = (map.width as usize, map.cell as usize);
    for (y, row) in mask.as_raw().chunks_exact(width).enumerate() {
        let cells = &mut counts[(y / cell) * map.w..(y / cell + 1) * map.w];
        for (n, px) in cells.iter_mut().zip(row.chunks(cell)) {
            *n += px.iter().filter(|&&v| v != 0).count() as u64;
        }
    }
    counts
}

impl PixelScorer {
    /// A scorer with `bins` histogram bins over [0, 1] (e.g.
    /// [`fovea_metrics::DEFAULT_BINS`]). Errors if `bins == 0`.
    pub fn new(bins: usize) -> Result<PixelScorer> {
        let h = ScoreHistogram::new(bins)?;
        Ok(PixelScorer {
            hist: std::array::from_fn(|_| h.clone()),
            pixels: 0,
            images: Vec::new(),
        })
    }

    /// Number of histogram bins.
    pub fn bins(&self) -> usize {
        self.hist[0].bins()
    }

    /// Scores one image: `map` against its four 0/1 masks (any nonzero pixel is lesion) of
    /// the photograph's size, with its image-level probabilities.
    ///
    /// Errors (leaving the scorer unchanged): a mask of another size, a non-finite cell
    /// value or image probability.
    pub fn add_image(
        &mut self,
        image_id: &str,
        map: &Heatmap,
        masks: &[Mask; NUM_LESIONS],
        image_probability: [f32; NUM_LESIONS],
    ) -> Result<()> {
        for (c, m) in masks.iter().enumerate() {
            if m.dimensions() != (map.width, map.height) {
                return Err(MapsError::SizeMismatch {
                    what: format!("{} mask of {image_id}", LESIONS[c]),
                    got_w: m.width(),
                    got_h: m.height(),
                    want_w: map.width,
                    want_h: map.height,
                });
            }
        }
        for c in 0..NUM_LESIONS {
            let bad = |what: String, value: f32| MapsError::NonFiniteValue {
                image_id: image_id.to_string(),
                lesion: LESIONS[c],
                what,
                value,
            };
            if !image_probability[c].is_finite() {
                return Err(bad("image probability".into(), image_probability[c]));
            }
            if let Some(k) = map.lesion(c).iter().position(|v| !v.is_finite()) {
                let what = format!("cell ({}, {})", k / map.w, k % map.w);
                return Err(bad(what, map.lesion(c)[k]));
            }
        }
        let empty = ScoreHistogram::new(self.bins())?;
        let mut local: [ScoreHistogram; NUM_LESIONS] = std::array::from_fn(|_| empty.clone());
        let mut aupr = [None; NUM_LESIONS];
        let mut present = [false; NUM_LESIONS];
        for c in 0..NUM_LESIONS {
            let counts = positives_per_cell(map, &masks[c]);
            let mut image = ScoreHistogram::new(PER_IMAGE_BINS)?;
            for (k, (&pos, &v)) in counts.iter().zip(map.lesion(c)).enumerate() {
                let (_, _, cw, ch) = map.cell_rect(k / map.w, k % map.w);
                let neg = u64::from(cw) * u64::from(ch) - pos;
                local[c].add_counts(v, pos, neg)?;
                image.add_counts(v, pos, neg)?;
            }
            present[c] = image.positives() > 0;
            aupr[c] = present[c].then(|| image.average_precision());
        }
        for (g, l) in self.hist.iter_mut().zip(&local) {
            g.merge(l)?;
        }
        self.pixels += u64::from(map.width) * u64::from(map.height);
        self.images.push(ImagePixelMetrics {
            image_id: image_id.to_string(),
            aupr,
            image_probability,
            present,
        });
        Ok(())
    }

    /// The metrics of everything added, image-level F1 at `thresholds`.
    pub fn finish(&self, thresholds: [f64; NUM_LESIONS]) -> PixelMetrics {
        let mut image_level = ImageLevelMetrics {
            auroc: [None; NUM_LESIONS],
            ap: [0.0; NUM_LESIONS],
            f1: [0.0; NUM_LESIONS],
            threshold: thresholds,
            positives: [0; NUM_LESIONS],
        };
        for (c, &threshold) in thresholds.iter().enumerate() {
            let truth: Vec<u8> = self.images.iter().map(|m| u8::from(m.present[c])).collect();
            let probs: Vec<f32> = self.images.iter().map(|m| m.image_probability[c]).collect();
            // Errors only on no images (probabilities were checked when added).
            image_level.auroc[c] = roc_auc(&truth, &probs).ok().flatten();
            image_level.ap[c] = average_precision(&truth, &probs).unwrap_or(0.0);
            let (mut tp, mut fp, mut fn_) = (0, 0, 0);
            for (&y, &p) in truth.iter().zip(&probs) {
                match (y != 0, f64::from(p) >= threshold) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    (false, false) => {}
                }
            }
            image_level.f1[c] = f1_from_counts(tp, fp, fn_);
            image_level.positives[c] = tp + fn_;
        }
        PixelMetrics {
            lesions: LESIONS.iter().map(|l| l.to_string()).collect(),
            estimator: format!(
                "step-wise average precision as scikit-learn's average_precision_score (and \
                 AUROC as roc_auc_score) over every pixel of every image, with scores \
                 quantised to {} equal bins over [0, 1]; each pixel takes its heatmap cell's \
                 value",
                self.bins()
            ),
            bins: self.bins(),
            images: self.images.len(),
            pixels: self.pixels,
            positive_pixels: std::array::from_fn(|c| self.hist[c].positives()),
            aupr: std::array::from_fn(|c| self.hist[c].average_precision()),
            auroc: std::array::from_fn(|c| self.hist[c].auroc()),
            image_level,
            per_image: self.images.clone(),
        }
    }
}

impl PixelMetrics {
    /// Writes `pixel_metrics.json` as pretty JSON, atomically.
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> Result<()> {
        write_json_atomic(self, path.as_ref())
    }

    /// Reads `pixel_metrics.json`; errors name the file.
    pub fn read(path: impl AsRef<Path>) -> Result<PixelMetrics> {
        read_json(path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    /// A heatmap from its cells (`maps[c][i][j]`) for a `w` x `h` photograph.
    fn map(w: u32, h: u32, cell: u32, maps: [&[&[f32]]; 4]) -> Heatmap {
        let data = maps
            .iter()
            .flat_map(|m| m.iter().flat_map(|row| row.iter().copied()))
            .collect();
        Heatmap::from_data(w, h, cell, data).unwrap()
    }

    /// Masks from pixel rows (`masks[c][y][x]`, 0/1).
    fn masks(w: u32, h: u32, masks: [&[&[u8]]; 4]) -> [Mask; 4] {
        masks.map(|m| GrayImage::from_fn(w, h, |x, y| image::Luma([m[y as usize][x as usize]])))
    }

    /// The fixture of the Python below: images A (5x3, cell 2), B (4x4, cell 1) and
    /// C (3x2, cell 3); SE has no pixel anywhere.
    fn fixture() -> Vec<(&'static str, Heatmap, [Mask; 4], [f32; 4])> {
        let z5: &[&[u8]] = &[&[0; 5], &[0; 5], &[0; 5]];
        let z4: &[&[u8]] = &[&[0; 4], &[0; 4], &[0; 4], &[0; 4]];
        let z3: &[&[u8]] = &[&[0; 3], &[0; 3]];
        let ex_row: &[f32] = &[0.2, 0.4, 0.6, 0.8];
        let se_row: &[f32] = &[0.25; 4];
        let a = (
            "A",
            map(
                5,
                3,
                2,
                [
                    &[&[0.1, 0.7, 0.3], &[0.9, 0.2, 0.55]],
                    &[&[0.6, 0.6, 0.2], &[0.1, 0.8, 0.3]],
                    &[&[0.0, 0.0, 0.0], &[0.0, 0.0, 0.0]],
                    &[&[0.3, 0.2, 0.1], &[0.5, 0.5, 0.5]],
                ],
            ),
            masks(
                5,
                3,
                [
                    &[&[0, 0, 1, 1, 0], &[0, 1, 1, 0, 0], &[1, 0, 0, 0, 1]],
                    &[&[1, 1, 0, 0, 0], &[1, 0, 0, 0, 0], &[0, 0, 1, 1, 0]],
                    z5,
                    z5,
                ],
            ),
            [0.8, 0.7, 0.1, 0.5],
        );
        let b = (
            "B",
            map(
                4,
                4,
                1,
                [
                    &[
                        &[0.05, 0.15, 0.25, 0.35],
                        &[0.45, 0.55, 0.65, 0.75],
                        &[0.85, 0.95, 0.7, 0.3],
                        &[0.1, 0.2, 0.9, 0.6],
                    ],
                    &[
                        &[0.12, 0.12, 0.5, 0.5],
                        &[0.12, 0.12, 0.5, 0.5],
                        &[0.33, 0.33, 0.33, 0.33],
                        &[0.0, 0.0, 1.0, 1.0],
                    ],
                    &[ex_row; 4],
                    &[se_row; 4],
                ],
            ),
            masks(
                4,
                4,
                [
                    &[&[0, 0, 0, 1], &[0, 1, 0, 1], &[1, 1, 0, 0], &[0, 0, 1, 0]],
                    z4,
                    &[&[0, 0, 1, 1], &[0, 0, 0, 1], &[0, 1, 0, 1], &[0, 0, 0, 0]],
                    z4,
                ],
            ),
            [0.95, 0.4, 0.85, 0.3],
        );
        let c = (
            "C",
            map(3, 2, 3, [&[&[0.4]], &[&[0.75]], &[&[0.9]], &[&[0.95]]]),
            masks(3, 2, [z3, &[&[0, 1, 1], &[0, 0, 0]], z3, z3]),
            [0.3, 0.9, 0.9, 0.2],
        );
        vec![a, b, c]
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-12,
            "{what}: got {got}, sklearn {want}"
        );
    }

    /// Expected values printed by this Python (scikit-learn 1.9.1, numpy 2.4.6), the
    /// fixture above written out pixel by pixel (`pixels` expands cells to pixels):
    ///
    /// ```python
    /// import warnings; warnings.simplefilter('ignore')  # ill-defined cases warn
    /// import numpy as np
    /// from sklearn.metrics import average_precision_score, roc_auc_score, f1_score
    /// # (width, height, cell, maps[4] as cell rows, masks[4] as pixel rows)
    /// A = (5, 3, 2,
    ///      [[[.1, .7, .3], [.9, .2, .55]], [[.6, .6, .2], [.1, .8, .3]],
    ///       [[0, 0, 0], [0, 0, 0]], [[.3, .2, .1], [.5, .5, .5]]],
    ///      [[[0,0,1,1,0],[0,1,1,0,0],[1,0,0,0,1]], [[1,1,0,0,0],[1,0,0,0,0],[0,0,1,1,0]],
    ///       [[0]*5]*3, [[0]*5]*3])
    /// B = (4, 4, 1,
    ///      [[[.05,.15,.25,.35],[.45,.55,.65,.75],[.85,.95,.7,.3],[.1,.2,.9,.6]],
    ///       [[.12,.12,.5,.5],[.12,.12,.5,.5],[.33,.33,.33,.33],[0,0,1,1]],
    ///       [[.2,.4,.6,.8]]*4, [[.25]*4]*4],
    ///      [[[0,0,0,1],[0,1,0,1],[1,1,0,0],[0,0,1,0]], [[0]*4]*4,
    ///       [[0,0,1,1],[0,0,0,1],[0,1,0,1],[0,0,0,0]], [[0]*4]*4])
    /// C = (3, 2, 3, [[[.4]], [[.75]], [[.9]], [[.95]]],
    ///      [[[0]*3]*2, [[0,1,1],[0,0,0]], [[0]*3]*2, [[0]*3]*2])
    /// PROB = np.array([[.8, .7, .1, .5], [.95, .4, .85, .3], [.3, .9, .9, .2]], np.float32)
    /// T = 0.5
    /// def pixels(img, c):
    ///     w, h, cell, maps, masks = img
    ///     m = np.array(maps[c], np.float32)
    ///     s = np.array([[m[y // cell, x // cell] for x in range(w)] for y in range(h)], np.float32)
    ///     return np.array(masks[c]).ravel(), s.ravel()
    /// for c in range(4):
    ///     ys, ss = zip(*(pixels(i, c) for i in (A, B, C)))
    ///     y, s = np.concatenate(ys), np.concatenate(ss)
    ///     auroc = roc_auc_score(y, s) if 0 < y.sum() < len(y) else None
    ///     ap = average_precision_score(y, s)
    ///     per = [average_precision_score(a, b) if a.sum() else None for a, b in zip(ys, ss)]
    ///     t = np.array([a.any() for a in ys], int)
    ///     p = PROB[:, c]
    ///     print(c, int(y.sum()), repr(ap), repr(auroc), per,
    ///           repr(roc_auc_score(t, p)) if 0 < t.sum() < 3 else None,
    ///           repr(average_precision_score(t, p)),
    ///           repr(f1_score(t, (p >= T).astype(int), zero_division=0.0)))
    /// ```
    /// printed
    /// ```text
    /// 0 12 0.7050065876152833 0.8233333333333333 [0.6023809523809525, 0.8708333333333333, None] 1.0 1.0 1.0
    /// 1 7 0.4238095238095238 0.8214285714285714 [0.7, None, 0.3333333333333333] 1.0 1.0 1.0
    /// 2 5 0.2926984126984127 0.753125 [None, 0.6333333333333333, None] 0.5 0.5 0.6666666666666666
    /// 3 0 0.0 None [None, None, None] None 0.0 0.0
    /// ```
    #[test]
    fn equals_sklearn_on_expanded_pixels() {
        let positives = [12, 7, 5, 0];
        let aupr = [
            0.7050065876152833,
            0.4238095238095238,
            0.2926984126984127,
            0.0,
        ];
        let auroc = [
            Some(0.8233333333333333),
            Some(0.8214285714285714),
            Some(0.753125),
            None,
        ];
        let per_image = [
            [Some(0.6023809523809525), Some(0.7), None, None],
            [
                Some(0.8708333333333333),
                None,
                Some(0.6333333333333333),
                None,
            ],
            [None, Some(0.3333333333333333), None, None],
        ];
        let image_auroc = [Some(1.0), Some(1.0), Some(0.5), None];
        let image_ap = [1.0, 1.0, 0.5, 0.0];
        let image_f1 = [1.0, 1.0, 0.6666666666666666, 0.0];

        // With the default bins (and with 1000), every fixture value has its own bin and
        // the order is kept, so the estimate equals scikit-learn's exact value.
        for bins in [fovea_metrics::DEFAULT_BINS, 1000] {
            let mut s = PixelScorer::new(bins).unwrap();
            for (id, m, k, p) in fixture() {
                s.add_image(id, &m, &k, p).unwrap();
            }
            let r = s.finish([0.5; 4]);
            assert_eq!(r.lesions, ["MA", "HE", "EX", "SE"]);
            assert_eq!((r.bins, r.images, r.pixels), (bins, 3, 15 + 16 + 6));
            assert_eq!(r.positive_pixels, positives);
            for c in 0..4 {
                close(r.aupr[c], aupr[c], &format!("aupr[{c}]"));
                match (r.auroc[c], auroc[c]) {
                    (Some(g), Some(w)) => close(g, w, &format!("auroc[{c}]")),
                    (g, w) => assert_eq!(g, w, "auroc[{c}]"),
                }
                for (k, img) in r.per_image.iter().enumerate() {
                    match (img.aupr[c], per_image[k][c]) {
                        (Some(g), Some(w)) => close(g, w, &format!("image {k} aupr[{c}]")),
                        (g, w) => assert_eq!(g, w, "image {k} aupr[{c}]"),
                    }
                    assert_eq!(img.present[c], per_image[k][c].is_some());
                }
                let il = &r.image_level;
                assert_eq!(il.auroc[c], image_auroc[c], "image auroc[{c}]");
                close(il.ap[c], image_ap[c], &format!("image ap[{c}]"));
                close(il.f1[c], image_f1[c], &format!("image f1[{c}]"));
            }
            assert_eq!(r.image_level.positives, [2, 2, 1, 0]);
            assert_eq!(r.image_level.threshold, [0.5; 4]);
            assert_eq!(r.per_image[2].image_id, "C");
            assert_eq!(r.per_image[1].image_probability, [0.95, 0.4, 0.85, 0.3]);
            assert!(r.estimator.contains(&format!("{bins} equal bins")));
        }
    }

    #[test]
    fn json_shape_and_round_trip() {
        let mut s = PixelScorer::new(100).unwrap();
        for (id, m, k, p) in fixture() {
            s.add_image(id, &m, &k, p).unwrap();
        }
        let r = s.finish([0.5; 4]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pixel_metrics.json");
        r.write_atomic(&path).unwrap();
        assert_eq!(PixelMetrics::read(&path).unwrap(), r);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for key in [
            "lesions",
            "estimator",
            "bins",
            "images",
            "pixels",
            "positive_pixels",
            "aupr",
            "auroc",
            "image_level",
            "per_image",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert!(v["auroc"][3].is_null());
        assert!(v["per_image"][0]["aupr"][2].is_null());
        assert_eq!(v["image_level"]["positives"][0], 2);
        std::fs::write(&path, "{}").unwrap();
        let e = PixelMetrics::read(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }

    #[test]
    fn errors_leave_the_scorer_unchanged() {
        assert!(PixelScorer::new(0).is_err());
        let mut s = PixelScorer::new(100).unwrap();
        let fx = fixture();
        let (_, m, k, p) = &fx[0];
        s.add_image("A", m, k, *p).unwrap();
        let before = s.finish([0.5; 4]);

        let mut wrong = k.clone();
        wrong[1] = GrayImage::new(5, 4);
        let e = s.add_image("A2", m, &wrong, *p).unwrap_err().to_string();
        assert_eq!(
            e,
            "HE mask of A2 is 5x4 but the lesion map is for a 5x3 photograph"
        );
        let e = s
            .add_image("A3", m, k, [0.1, f32::NAN, 0.1, 0.1])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "A3: HE image probability NaN is not a finite number");
        let mut nan = m.clone();
        *nan.at_mut(2, 1, 2) = f32::INFINITY;
        let e = s.add_image("A4", &nan, k, *p).unwrap_err().to_string();
        assert_eq!(e, "A4: EX cell (1, 2) inf is not a finite number");
        assert_eq!(s.finish([0.5; 4]), before);
    }

    #[test]
    fn no_images() {
        let r = PixelScorer::new(10).unwrap().finish([0.5; 4]);
        assert_eq!((r.images, r.pixels), (0, 0));
        assert_eq!(r.aupr, [0.0; 4]);
        assert_eq!(r.auroc, [None; 4]);
        assert_eq!(r.image_level.auroc, [None; 4]);
        assert_eq!(r.image_level.f1, [0.0; 4]);
    }
}
