//! Multi-label classification metrics at per-class thresholds: micro / macro / per-class
//! F1, per-class precision and recall, Hamming loss and subset accuracy.
//!
//! Definitions (scikit-learn's, for a multi-label indicator matrix):
//! - per class: precision `tp / (tp + fp)`, recall `tp / (tp + fn)`,
//!   F1 `2 tp / (2 tp + fp + fn)`;
//! - micro F1: the F1 formula on the counts summed over the four classes;
//! - macro F1: the unweighted mean of the four per-class F1 values (a class with no
//!   positives and no positive predictions counts as 0.0 in the mean, as in scikit-learn);
//! - Hamming loss: wrong label cells / (samples x 4);
//! - subset accuracy: fraction of samples whose four labels are all right.
//!
//! **Zero division**: a ratio whose denominator is 0 is 0.0, which is scikit-learn's
//! default (`zero_division="warn"`: it warns and returns 0.0). So precision is 0.0 when
//! nothing is predicted positive, recall is 0.0 when the class has no positives, and F1
//! is 0.0 when `tp + fp + fn == 0` (and whenever `tp == 0`).

use serde::{Deserialize, Serialize};

use crate::confusion::{multilabel_confusion, ClassCounts, MultiLabelConfusion};
use crate::error::{MetricsError, Result};
use crate::ratios::ratio;
pub use crate::ratios::{f1_from_counts, precision_from_counts, recall_from_counts};
use crate::NUM_CLASSES;

/// All thresholded metrics of one multi-label prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelMetrics {
    /// F1 of the counts pooled over the four classes.
    pub micro_f1: f64,
    /// Mean of the four per-class F1 values.
    pub macro_f1: f64,
    /// Fraction of wrong label cells.
    pub hamming: f64,
    /// Fraction of samples with all four labels right.
    pub subset_acc: f64,
    /// Per-class F1.
    pub f1: [f64; NUM_CLASSES],
    /// Per-class precision.
    pub precision: [f64; NUM_CLASSES],
    /// Per-class recall.
    pub recall: [f64; NUM_CLASSES],
    /// The thresholds used (predict positive when `p >= t`).
    pub thresholds: [f64; NUM_CLASSES],
    /// Per-class number of positive samples.
    pub support: [u64; NUM_CLASSES],
    /// Per-class TP/FP/FN/TN.
    pub counts: [ClassCounts; NUM_CLASSES],
    /// Number of samples.
    pub samples: u64,
}

impl MultiLabelMetrics {
    /// Metrics from confusion counts. Errors with [`MetricsError::Empty`] when no sample
    /// was counted (Hamming loss and subset accuracy are undefined).
    pub fn from_confusion(
        conf: &MultiLabelConfusion,
        thresholds: [f64; NUM_CLASSES],
    ) -> Result<MultiLabelMetrics> {
        if conf.samples == 0 {
            return Err(MetricsError::Empty);
        }
        let per = |f: fn(&ClassCounts) -> f64| -> [f64; NUM_CLASSES] {
            std::array::from_fn(|c| f(&conf.classes[c]))
        };
        let f1 = per(ClassCounts::f1);
        let (tp, fp, fn_) = conf.classes.iter().fold((0, 0, 0), |(tp, fp, fn_), c| {
            (tp + c.tp, fp + c.fp, fn_ + c.fn_)
        });
        Ok(MultiLabelMetrics {
            micro_f1: f1_from_counts(tp, fp, fn_),
            macro_f1: f1.iter().sum::<f64>() / NUM_CLASSES as f64,
            hamming: ratio(conf.wrong_cells(), conf.samples * NUM_CLASSES as u64),
            subset_acc: ratio(conf.exact_matches, conf.samples),
            f1,
            precision: per(ClassCounts::precision),
            recall: per(ClassCounts::recall),
            thresholds,
            support: std::array::from_fn(|c| conf.classes[c].support()),
            counts: conf.classes,
            samples: conf.samples,
        })
    }
}

/// Computes every thresholded metric of `probs` against `truth` at per-class `thresholds`
/// (predict positive when `p as f64 >= t`).
///
/// Errors: lengths differ, no samples, a label not 0/1, a NaN probability or threshold.
pub fn multilabel_metrics(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
    thresholds: [f64; NUM_CLASSES],
) -> Result<MultiLabelMetrics> {
    let conf = multilabel_confusion(truth, probs, thresholds)?;
    MultiLabelMetrics::from_confusion(&conf, thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // MA: tp 1 fp 1 fn 1; HE: tp 2; EX: tp 1 fn 1; SE: fp 1 (no positives).
        let truth = [[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]];
        let probs = [
            [0.9, 0.2, 0.5, 0.1],
            [0.6, 0.8, 0.4, 0.0],
            [0.1, 0.7, 0.0, 0.99],
        ];
        let m = multilabel_metrics(&truth, &probs, [0.5; 4]).unwrap();
        assert_eq!(m.f1, [0.5, 1.0, 2.0 / 3.0, 0.0]);
        assert_eq!(m.precision, [0.5, 1.0, 1.0, 0.0]);
        assert_eq!(m.recall, [0.5, 1.0, 0.5, 0.0]);
        assert_eq!(m.support, [2, 2, 2, 0]);
        // pooled: tp 4, fp 2, fn 2 -> 8 / 12
        assert_eq!(m.micro_f1, 8.0 / 12.0);
        assert_eq!(m.macro_f1, (0.5 + 1.0 + 2.0 / 3.0) / 4.0);
        assert_eq!(m.hamming, 4.0 / 12.0);
        assert_eq!(m.subset_acc, 1.0 / 3.0);
        assert_eq!(m.samples, 3);
        assert_eq!(m.thresholds, [0.5; 4]);
    }

    #[test]
    fn perfect_and_all_wrong() {
        let truth = [[1, 0, 1, 0], [0, 1, 0, 1]];
        let good = [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]];
        let m = multilabel_metrics(&truth, &good, [0.5; 4]).unwrap();
        assert_eq!(
            (m.micro_f1, m.macro_f1, m.hamming, m.subset_acc),
            (1.0, 1.0, 0.0, 1.0)
        );
        let bad = [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]];
        let m = multilabel_metrics(&truth, &bad, [0.5; 4]).unwrap();
        assert_eq!(
            (m.micro_f1, m.macro_f1, m.hamming, m.subset_acc),
            (0.0, 0.0, 1.0, 0.0)
        );
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(
            multilabel_metrics(&[], &[], [0.5; 4]),
            Err(MetricsError::Empty)
        ));
    }
}
