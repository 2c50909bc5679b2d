//! A streaming, fixed-memory estimator of pixel-level average precision and AUROC, for
//! lesion maps scored per pixel over many full-size photographs (billions of pixels, far
//! too many to sort).
//!
//! Scores are binned into `bins` equal bins over [0, 1] (default [`DEFAULT_BINS`] =
//! 10 000): bin `i` holds scores in `[i / bins, (i + 1) / bins)`, the last bin also holds
//! 1.0; scores below 0 or above 1 (infinities included) are clamped into the first / last
//! bin. Two `u64` counters per bin count positive and negative pixels. Histograms of
//! separate images (or threads) are combined with [`ScoreHistogram::merge`]; the result
//! does not depend on the order of `add` / `merge` calls.
//!
//! **The estimator** is exactly scikit-learn's metric on the *quantised* scores, i.e. with
//! every score replaced by its bin centre `(i + 0.5) / bins`: each non-empty bin is one tie
//! group, and walking the bins from the highest down,
//! - AP = `sum_n (R_n - R_{n-1}) * P_n` (as [`crate::ranking`]), 0.0 with no positive;
//! - AUROC = the trapezoid area over the bins' ROC points (ties within a bin get half
//!   credit), `None` unless both positives and negatives were seen.
//!
//! Quantisation only merges scores closer than `1 / bins`, so with the default bins the
//! estimate is typically within ~1e-3 of the exact value (tested on random scores); when
//! the scores already are bin centres it equals the exact value.
//!
//! Truth is a mask: any nonzero value is a positive (CONTRACTS 1: any nonzero pixel is
//! lesion). A NaN score is an error and leaves the histogram unchanged.

use crate::error::{MetricsError, Result};
use crate::ranking::{ap_from_groups, auroc_from_groups, TieGroup};

/// Default number of bins over [0, 1].
pub const DEFAULT_BINS: usize = 10_000;

/// Histogram of scores of positive and negative pixels (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreHistogram {
    pos: Vec<u64>,
    neg: Vec<u64>,
}

impl Default for ScoreHistogram {
    /// An empty histogram with [`DEFAULT_BINS`] bins.
    fn default() -> Self {
        ScoreHistogram {
            pos: vec![0; DEFAULT_BINS],
            neg: vec![0; DEFAULT_BINS],
        }
    }
}

impl ScoreHistogram {
    /// An empty histogram with `bins` bins over [0, 1]. Errors if `bins == 0`.
    pub fn new(bins: usize) -> Result<ScoreHistogram> {
        if bins == 0 {
            return Err(MetricsError::ZeroBins);
        }
        Ok(ScoreHistogram {
            pos: vec![0; bins],
            neg: vec![0; bins],
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.pos.len()
    }

    /// The bin of a (non-NaN) score: `floor(score * bins)`, clamped to `0..bins`.
    pub fn bin_of(&self, score: f32) -> usize {
        let x = f64::from(score) * self.bins() as f64;
        if x <= 0.0 {
            0
        } else {
            // `as` saturates for huge values; the `min` keeps 1.0 (and above) in the last bin.
            (x as usize).min(self.bins() - 1)
        }
    }

    /// The centre `(i + 0.5) / bins` of bin `i`: the value a score is quantised to.
    pub fn bin_centre(&self, i: usize) -> f64 {
        (i as f64 + 0.5) / self.bins() as f64
    }

    /// Adds pixels: `scores[k]` with truth `truth[k]` (nonzero = positive).
    ///
    /// Errors (leaving the histogram unchanged): lengths differ, a NaN score.
    pub fn add(&mut self, scores: &[f32], truth: &[u8]) -> Result<()> {
        if scores.len() != truth.len() {
            return Err(MetricsError::LengthMismatch {
                truth: truth.len(),
                scores: scores.len(),
            });
        }
        if let Some(index) = scores.iter().position(|s| s.is_nan()) {
            return Err(MetricsError::NanScore { index });
        }
        for (&s, &y) in scores.iter().zip(truth) {
            let b = self.bin_of(s);
            if y != 0 {
                self.pos[b] += 1;
            } else {
                self.neg[b] += 1;
            }
        }
        Ok(())
    }

    /// Adds `positives` positive and `negatives` negative pixels that all have `score`:
    /// the same as [`ScoreHistogram::add`] on that many copies of the score, without
    /// expanding them (a lesion map's cell stands for all the pixels it covers).
    ///
    /// Errors (leaving the histogram unchanged): a NaN score (reported at index 0).
    pub fn add_counts(&mut self, score: f32, positives: u64, negatives: u64) -> Result<()> {
        if score.is_nan() {
            return Err(MetricsError::NanScore { index: 0 });
        }
        let b = self.bin_of(score);
        self.pos[b] += positives;
        self.neg[b] += negatives;
        Ok(())
    }

    /// Adds `other`'s counts to `self`. Errors if the bin counts differ.
    pub fn merge(&mut self, other: &ScoreHistogram) -> Result<()> {
        if self.bins() != other.bins() {
            return Err(MetricsError::BinMismatch {
                left: self.bins(),
                right: other.bins(),
            });
        }
        for (a, b) in self.pos.iter_mut().zip(&other.pos) {
            *a += b;
        }
        for (a, b) in self.neg.iter_mut().zip(&other.neg) {
            *a += b;
        }
        Ok(())
    }

    /// Number of positive pixels added.
    pub fn positives(&self) -> u64 {
        self.pos.iter().sum()
    }

    /// Number of negative pixels added.
    pub fn negatives(&self) -> u64 {
        self.neg.iter().sum()
    }

    /// Positive and negative counts of bin `i` (panics if `i >= bins`, like indexing).
    pub fn bin_counts(&self, i: usize) -> (u64, u64) {
        (self.pos[i], self.neg[i])
    }

    /// Bins from the highest score down, as tie groups.
    fn groups(&self) -> impl Iterator<Item = TieGroup> + Clone + '_ {
        self.pos
            .iter()
            .zip(&self.neg)
            .rev()
            .map(|(&pos, &neg)| TieGroup { pos, neg })
    }

    /// Average precision of the quantised scores; 0.0 when no positive was added.
    pub fn average_precision(&self) -> f64 {
        ap_from_groups(self.groups())
    }

    /// AUROC of the quantised scores; `None` unless both positives and negatives were added.
    pub fn auroc(&self) -> Option<f64> {
        auroc_from_groups(self.groups())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::{average_precision, roc_auc};

    /// Deterministic pseudo-random numbers (SplitMix64) for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn binning_and_clamping() {
        let h = ScoreHistogram::new(10).unwrap();
        assert_eq!(h.bin_of(0.0), 0);
        assert_eq!(h.bin_of(-0.0), 0);
        assert_eq!(h.bin_of(-3.0), 0);
        assert_eq!(h.bin_of(f32::NEG_INFINITY), 0);
        assert_eq!(h.bin_of(0.05), 0);
        assert_eq!(h.bin_of(0.15), 1);
        assert_eq!(h.bin_of(0.99), 9);
        assert_eq!(h.bin_of(1.0), 9);
        assert_eq!(h.bin_of(7.0), 9);
        assert_eq!(h.bin_of(f32::INFINITY), 9);
        assert_eq!(h.bin_centre(0), 0.05);
        assert_eq!(h.bin_centre(9), 0.95);
        assert!(matches!(
            ScoreHistogram::new(0),
            Err(MetricsError::ZeroBins)
        ));
        assert_eq!(ScoreHistogram::default().bins(), DEFAULT_BINS);
    }

    #[test]
    fn counts_masks_as_nonzero() {
        let mut h = ScoreHistogram::new(4).unwrap();
        h.add(&[0.1, 0.3, 0.6, 0.9], &[0, 255, 1, 0]).unwrap();
        assert_eq!((h.positives(), h.negatives()), (2, 2));
        assert_eq!(h.bin_counts(1), (1, 0));
        assert_eq!(h.bin_counts(3), (0, 1));
    }

    #[test]
    fn errors_leave_it_unchanged() {
        let mut h = ScoreHistogram::new(4).unwrap();
        h.add(&[0.1], &[1]).unwrap();
        let before = h.clone();
        assert!(matches!(
            h.add(&[0.2, f32::NAN], &[1, 0]),
            Err(MetricsError::NanScore { index: 1 })
        ));
        assert!(matches!(
            h.add(&[0.2], &[1, 0]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert_eq!(h, before);
        let other = ScoreHistogram::new(5).unwrap();
        assert!(matches!(
            h.merge(&other),
            Err(MetricsError::BinMismatch { left: 4, right: 5 })
        ));
        assert_eq!(h, before);
    }

    #[test]
    fn empty_and_one_sided() {
        let mut h = ScoreHistogram::new(100).unwrap();
        assert_eq!(h.average_precision(), 0.0);
        assert_eq!(h.auroc(), None);
        h.add(&[0.2, 0.7], &[0, 0]).unwrap();
        assert_eq!(h.average_precision(), 0.0);
        assert_eq!(h.auroc(), None);
        let mut h = ScoreHistogram::new(100).unwrap();
        h.add(&[0.2, 0.7], &[1, 1]).unwrap();
        assert_eq!(h.average_precision(), 1.0);
        assert_eq!(h.auroc(), None);
    }

    #[test]
    fn add_counts_equals_adding_copies() {
        let mut expanded = ScoreHistogram::new(50).unwrap();
        let mut counted = ScoreHistogram::new(50).unwrap();
        for (score, pos, neg) in [
            (0.31f32, 3u64, 5u64),
            (0.9, 0, 2),
            (0.31, 1, 0),
            (1.0, 4, 4),
        ] {
            let scores = vec![score; (pos + neg) as usize];
            let truth: Vec<u8> = (0..pos + neg).map(|k| u8::from(k < pos)).collect();
            expanded.add(&scores, &truth).unwrap();
            counted.add_counts(score, pos, neg).unwrap();
        }
        assert_eq!(counted, expanded);
        let before = counted.clone();
        assert!(matches!(
            counted.add_counts(f32::NAN, 1, 1),
            Err(MetricsError::NanScore { index: 0 })
        ));
        assert_eq!(counted, before);
    }

    #[test]
    fn merge_equals_adding_everything() {
        let mut rng = Rng(1);
        let scores: Vec<f32> = (0..3000).map(|_| rng.unit() as f32).collect();
        let truth: Vec<u8> = scores
            .iter()
            .map(|&s| u8::from(rng.unit() < f64::from(s)))
            .collect();
        let mut whole = ScoreHistogram::new(1000).unwrap();
        whole.add(&scores, &truth).unwrap();
        let mut parts = ScoreHistogram::new(1000).unwrap();
        for (s, t) in scores.chunks(700).zip(truth.chunks(700)).rev() {
            let mut h = ScoreHistogram::new(1000).unwrap();
            h.add(s, t).unwrap();
            parts.merge(&h).unwrap();
        }
        assert_eq!(parts, whole);
    }

    #[test]
    fn equals_exact_on_bin_centres() {
        let mut rng = Rng(2);
        for bins in [10, 97, DEFAULT_BINS] {
            for n in [1usize, 2, 5, 50, 400] {
                let h0 = ScoreHistogram::new(bins).unwrap();
                let scores: Vec<f32> = (0..n)
                    .map(|_| h0.bin_centre((rng.next() % bins as u64) as usize) as f32)
                    .collect();
                let truth: Vec<u8> = (0..n).map(|_| (rng.next() % 2) as u8).collect();
                let mut h = h0.clone();
                h.add(&scores, &truth).unwrap();
                // Bin centres land in their own bin.
                for &s in &scores {
                    assert_eq!(h.bin_centre(h.bin_of(s)) as f32, s);
                }
                assert_eq!(
                    h.average_precision(),
                    average_precision(&truth, &scores).unwrap()
                );
                assert_eq!(h.auroc(), roc_auc(&truth, &scores).unwrap());
            }
        }
    }

    #[test]
    fn close_to_exact_on_random_scores() {
        let mut rng = Rng(3);
        for trial in 0..5 {
            let n = 20_000;
            let scores: Vec<f32> = (0..n).map(|_| rng.unit() as f32).collect();
            // Informative but noisy labels, prevalence varying per trial.
            let truth: Vec<u8> = scores
                .iter()
                .map(|&s| u8::from(rng.unit() < f64::from(s).powi(trial + 1)))
                .collect();
            let mut h = ScoreHistogram::default();
            h.add(&scores, &truth).unwrap();
            let ap = average_precision(&truth, &scores).unwrap();
            let auc = roc_auc(&truth, &scores).unwrap().unwrap();
            assert!((h.average_precision() - ap).abs() < 1e-3, "trial {trial}");
            assert!((h.auroc().unwrap() - auc).abs() < 1e-3, "trial {trial}");
        }
    }
}
