//! Pixel-level scores of the validation photographs, streamed photograph by photograph
//! (nothing kept per pixel): per lesion a [`ScoreHistogram`] over every pixel of every
//! photograph (the IDRiD protocol's pixel AUPR, the estimator `eval-maps` uses), the
//! confusion counts at 0.5 over all pixels (each pixel a sample with four labels, for
//! `metrics.csv`), and the validation loss.
//!
//! The validation loss is the training loss's formula on the photograph's probabilities
//! (clamped to [1e-7, 1 - 1e-7]) over its field of view: the mean per-pixel term plus the
//! soft Dice term of the whole photograph, averaged over the photographs.
//!
//! Thresholds ([`tune_from_histogram`]): per lesion, the histogram bin edge `i / bins`
//! that maximises the pixel F1 of `p >= t` (the highest among ties); 0.5 for a lesion with
//! no pixel.

use fovea_data::io::Mask;
use fovea_data::NUM_LESIONS;
use fovea_metrics::{
    f1_from_counts, ClassCounts, MultiLabelConfusion, MultiLabelMetrics, ScoreHistogram,
    DEFAULT_BINS,
};

use super::infer::SegMap;
use crate::error::{NnError, Result};
use crate::seg_loss::{PixelLoss, SegLossSettings};

/// What the validation photographs add up to.
#[derive(Clone, Debug)]
pub struct PixelTally {
    pub hist: [ScoreHistogram; NUM_LESIONS],
    pub confusion: MultiLabelConfusion,
    loss_sum: f64,
    pub images: usize,
}

impl PixelTally {
    pub fn new() -> Result<PixelTally> {
        let h = ScoreHistogram::new(DEFAULT_BINS)?;
        Ok(PixelTally {
            hist: std::array::from_fn(|_| h.clone()),
            confusion: MultiLabelConfusion::default(),
            loss_sum: 0.0,
            images: 0,
        })
    }

    /// Adds one photograph's map against its masks (same size, any nonzero pixel is
    /// lesion).
    pub fn add(
        &mut self,
        id: &str,
        map: &SegMap,
        masks: &[Mask; NUM_LESIONS],
        loss: &SegLossSettings,
    ) -> Result<()> {
        for m in masks {
            if m.dimensions() != (map.width, map.height) {
                return Err(NnError::internal(format!(
                    "a mask of {id} is {}x{}, its photograph {}x{}",
                    m.width(),
                    m.height(),
                    map.width,
                    map.height
                )));
            }
        }
        for (c, mask) in masks.iter().enumerate() {
            self.hist[c].add(map.lesion(c), mask.as_raw())?;
        }
        let n = map.width as usize * map.height as usize;
        let planes: [&[f32]; NUM_LESIONS] = std::array::from_fn(|c| map.lesion(c));
        let raws: [&[u8]; NUM_LESIONS] = std::array::from_fn(|c| masks[c].as_raw().as_slice());
        let fov = map.fov.as_raw();
        let mut pixel_sum = 0.0f64;
        let mut counted = 0u64;
        let mut dice = [[0.0f64; 3]; NUM_LESIONS]; // sum p t, sum p, sum t
        for k in 0..n {
            let mut exact = true;
            let inside = fov[k] != 0;
            counted += inside as u64;
            for c in 0..NUM_LESIONS {
                let (p, t) = (planes[c][k], raws[c][k] != 0);
                let cc = &mut self.confusion.classes[c];
                match (p >= 0.5, t) {
                    (true, true) => cc.tp += 1,
                    (true, false) => cc.fp += 1,
                    (false, true) => cc.fn_ += 1,
                    (false, false) => cc.tn += 1,
                }
                exact &= (p >= 0.5) == t;
                if inside {
                    let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
                    pixel_sum += pixel_term(p, t, c, loss);
                    let tf = t as u8 as f64;
                    dice[c][0] += p * tf;
                    dice[c][1] += p;
                    dice[c][2] += tf;
                }
            }
            self.confusion.exact_matches += exact as u64;
        }
        self.confusion.samples += n as u64;
        let pixel = pixel_sum / (counted as f64 * NUM_LESIONS as f64).max(1.0);
        let s = loss.dice_smooth;
        let dice_term = dice
            .iter()
            .map(|[pt, p, t]| 1.0 - (2.0 * pt + s) / (p + t + s))
            .sum::<f64>()
            / NUM_LESIONS as f64;
        self.loss_sum += loss.pixel_weight * pixel + loss.dice_weight * dice_term;
        self.images += 1;
        Ok(())
    }

    /// Mean loss over the photographs.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.images.max(1) as f64
    }

    /// Metrics at 0.5 over every pixel.
    pub fn metrics(&self) -> Result<MultiLabelMetrics> {
        MultiLabelMetrics::from_confusion(&self.confusion, [0.5; NUM_LESIONS])
            .map_err(NnError::Validation)
    }

    /// Pixel AUPR per lesion (0 for a lesion with no pixel).
    pub fn aupr(&self) -> [f64; NUM_LESIONS] {
        std::array::from_fn(|c| self.hist[c].average_precision())
    }

    /// Pixel AUROC per lesion (NaN without both kinds of pixel).
    pub fn auroc(&self) -> [f64; NUM_LESIONS] {
        std::array::from_fn(|c| self.hist[c].auroc().unwrap_or(f64::NAN))
    }

    /// Fraction of lesion pixels per lesion.
    pub fn prevalence(&self) -> [f64; NUM_LESIONS] {
        std::array::from_fn(|c| {
            let h = &self.hist[c];
            h.positives() as f64 / (h.positives() + h.negatives()).max(1) as f64
        })
    }

    /// Thresholds of maximal pixel F1 per lesion.
    pub fn thresholds(&self) -> [f64; NUM_LESIONS] {
        std::array::from_fn(|c| tune_from_histogram(&self.hist[c]))
    }
}

/// The per-pixel loss term of probability `p` (clamped) with truth `t`, lesion `c`, as
/// `seg_loss` computes it.
fn pixel_term(p: f64, t: bool, c: usize, s: &SegLossSettings) -> f64 {
    let ce = if t { -p.ln() } else { -(1.0 - p).ln() };
    match s.pixel {
        PixelLoss::Bce => {
            if t {
                ce * s.pos_weight[c]
            } else {
                ce
            }
        }
        PixelLoss::Focal => {
            let p_t = if t { p } else { 1.0 - p };
            let a_t = match s.alpha {
                None => 1.0,
                Some(a) if t => a,
                Some(a) => 1.0 - a,
            };
            a_t * (1.0 - p_t).powf(s.gamma) * ce
        }
    }
}

/// The threshold `i / bins` of maximal F1 of `p >= t` (see the module doc).
pub fn tune_from_histogram(h: &ScoreHistogram) -> f64 {
    let (pos, bins) = (h.positives(), h.bins());
    if pos == 0 {
        return 0.5;
    }
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut best, mut best_t) = (-1.0, 0.5);
    for i in (0..bins).rev() {
        let (p, n) = h.bin_counts(i);
        tp += p;
        fp += n;
        let f1 = f1_from_counts(tp, fp, pos - tp);
        if f1 > best {
            best = f1;
            best_t = i as f64 / bins as f64;
        }
    }
    best_t
}

/// Metrics at 0.5 from per-lesion counts `[tp, fp, fn, tn]` and the pixels whose four
/// labels were all right (training tiles).
pub fn metrics_from_counts(
    counts: &[[u64; 4]; NUM_LESIONS],
    exact: u64,
    samples: u64,
) -> Result<MultiLabelMetrics> {
    let conf = MultiLabelConfusion {
        classes: std::array::from_fn(|c| {
            let [tp, fp, fn_, tn] = counts[c];
            ClassCounts { tp, fp, fn_, tn }
        }),
        samples,
        exact_matches: exact,
    };
    MultiLabelMetrics::from_confusion(&conf, [0.5; NUM_LESIONS]).map_err(NnError::Validation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    fn map(probs: Vec<f32>, w: u32, h: u32) -> SegMap {
        SegMap {
            width: w,
            height: h,
            probs,
            fov: GrayImage::from_pixel(w, h, image::Luma([255])),
        }
    }

    #[test]
    fn a_perfect_map_scores_one_and_its_thresholds_separate() {
        // 2x2 photograph; MA at pixel 0, EX at pixels 1 and 2; no HE, no SE.
        let mut masks: [Mask; 4] = std::array::from_fn(|_| GrayImage::new(2, 2));
        masks[0].as_mut()[0] = 1;
        masks[2].as_mut()[1] = 255;
        masks[2].as_mut()[2] = 1;
        let mut probs = vec![0.1f32; 16];
        probs[0] = 0.9;
        probs[8 + 1] = 0.7;
        probs[8 + 2] = 0.6;
        let mut t = PixelTally::new().unwrap();
        t.add("x", &map(probs, 2, 2), &masks, &SegLossSettings::default())
            .unwrap();
        assert_eq!(t.aupr(), [1.0, 0.0, 1.0, 0.0]);
        let m = t.metrics().unwrap();
        assert_eq!(m.samples, 4);
        assert_eq!(m.f1[0], 1.0);
        assert_eq!((m.hamming, m.subset_acc), (0.0, 1.0));
        let th = t.thresholds();
        assert!(th[0] > 0.1 && th[0] <= 0.9, "{th:?}");
        assert!(th[2] > 0.1 && th[2] <= 0.6, "{th:?}");
        assert_eq!(th[1], 0.5);
        assert_eq!(t.prevalence(), [0.25, 0.0, 0.5, 0.0]);
        assert!(t.loss() > 0.0 && t.loss().is_finite());
    }

    #[test]
    fn the_pixel_term_agrees_with_seg_loss() {
        use tch::Tensor;
        let s = SegLossSettings {
            pos_weight: [3.0, 1.0, 1.0, 1.0],
            dice_weight: 0.0,
            ..Default::default()
        };
        let logits = Tensor::from_slice(&[0.3f64, -1.2, 2.0, 0.0]).view([1, 4, 1, 1]);
        let truth = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 0.0]).view([1, 4, 1, 1]);
        let want = crate::seg_loss::seg_loss(&logits, &truth, None, &s)
            .pixel
            .double_value(&[]);
        let p: Vec<f64> = Vec::try_from(logits.sigmoid().view([-1])).unwrap();
        let got = (0..4)
            .map(|c| pixel_term(p[c], [true, false, true, false][c], c, &s))
            .sum::<f64>()
            / 4.0;
        assert!((got - want).abs() < 1e-9, "{got} {want}");
    }
}
