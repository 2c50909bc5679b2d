//! Confusion counts of a multi-label prediction at per-class thresholds, and the input
//! checks every metric of this crate shares.
//!
//! A sample is predicted positive for class `c` when `probs[i][c] as f64 >= thresholds[c]`
//! (the f32 probability is widened exactly to f64 before the comparison, so a threshold
//! equal to a probability, as [`crate::tune_thresholds`] returns, includes that sample).

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::ratios::{f1_from_counts, precision_from_counts, recall_from_counts};
use crate::NUM_CLASSES;

/// True/false positive/negative counts of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Truth 1, predicted 1.
    pub tp: u64,
    /// Truth 0, predicted 1.
    pub fp: u64,
    /// Truth 1, predicted 0.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Truth 0, predicted 0.
    pub tn: u64,
}

impl ClassCounts {
    /// Number of samples whose truth is positive (`tp + fn`), scikit-learn's `support`.
    pub fn support(&self) -> u64 {
        self.tp + self.fn_
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// Precision `tp / (tp + fp)`; 0.0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        precision_from_counts(self.tp, self.fp)
    }

    /// Recall `tp / (tp + fn)`; 0.0 when the class has no positives.
    pub fn recall(&self) -> f64 {
        recall_from_counts(self.tp, self.fn_)
    }

    /// F1 `2 tp / (2 tp + fp + fn)`; 0.0 when `tp + fp + fn == 0`.
    pub fn f1(&self) -> f64 {
        f1_from_counts(self.tp, self.fp, self.fn_)
    }

    /// Adds one (truth, prediction) pair.
    fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
}

/// Confusion counts of all four classes plus the row-level counts that Hamming loss and
/// subset accuracy need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MultiLabelConfusion {
    /// Per-class counts, in lesion order.
    pub classes: [ClassCounts; NUM_CLASSES],
    /// Number of samples (rows).
    pub samples: u64,
    /// Rows whose four predicted labels all equal the truth.
    pub exact_matches: u64,
}

impl MultiLabelConfusion {
    /// Label cells predicted wrongly (`fp + fn` over all classes).
    pub fn wrong_cells(&self) -> u64 {
        self.classes.iter().map(|c| c.fp + c.fn_).sum()
    }
}

/// Counts TP/FP/FN/TN per class at `thresholds` (predict positive when `p >= t`).
///
/// Errors: lengths differ, a label is not 0/1, a probability or a threshold is NaN.
/// Empty input gives all-zero counts.
pub fn multilabel_confusion(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
    thresholds: [f64; NUM_CLASSES],
) -> Result<MultiLabelConfusion> {
    check_multilabel(truth, probs)?;
    check_thresholds(thresholds)?;
    let mut out = MultiLabelConfusion::default();
    for (y, p) in truth.iter().zip(probs) {
        let mut exact = true;
        for c in 0..NUM_CLASSES {
            let t = y[c] == 1;
            let pred = f64::from(p[c]) >= thresholds[c];
            out.classes[c].add(t, pred);
            exact &= t == pred;
        }
        out.samples += 1;
        out.exact_matches += u64::from(exact);
    }
    Ok(out)
}

/// Checks a multi-label input: equal lengths, labels 0/1, no NaN probability.
pub(crate) fn check_multilabel(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
) -> Result<()> {
    if truth.len() != probs.len() {
        return Err(MetricsError::LengthMismatch {
            truth: truth.len(),
            scores: probs.len(),
        });
    }
    for (index, (y, p)) in truth.iter().zip(probs).enumerate() {
        for c in 0..NUM_CLASSES {
            if y[c] > 1 {
                return Err(MetricsError::InvalidLabel { index, value: y[c] }.in_class(c));
            }
            if p[c].is_nan() {
                return Err(MetricsError::NanScore { index }.in_class(c));
            }
        }
    }
    Ok(())
}

/// Checks one binary column: equal lengths, labels 0/1, no NaN score.
pub(crate) fn check_binary(truth: &[u8], scores: &[f32]) -> Result<()> {
    if truth.len() != scores.len() {
        return Err(MetricsError::LengthMismatch {
            truth: truth.len(),
            scores: scores.len(),
        });
    }
    for (index, (&y, &s)) in truth.iter().zip(scores).enumerate() {
        if y > 1 {
            return Err(MetricsError::InvalidLabel { index, value: y });
        }
        if s.is_nan() {
            return Err(MetricsError::NanScore { index });
        }
    }
    Ok(())
}

/// Rejects NaN thresholds (an infinite threshold is allowed: +inf predicts nothing).
pub(crate) fn check_thresholds(thresholds: [f64; NUM_CLASSES]) -> Result<()> {
    for (c, &t) in thresholds.iter().enumerate() {
        if t.is_nan() {
            return Err(MetricsError::InvalidThreshold { value: t }.in_class(c));
        }
    }
    Ok(())
}

/// Column `c` of a multi-label input.
pub(crate) fn column<T: Copy>(rows: &[[T; NUM_CLASSES]], c: usize) -> Vec<T> {
    rows.iter().map(|r| r[c]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_cell_and_exact_rows() {
        let truth = [[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]];
        let probs = [
            [0.9, 0.2, 0.5, 0.1],  // all right (0.5 >= 0.5 is positive)
            [0.6, 0.8, 0.4, 0.0],  // MA fp, EX fn
            [0.1, 0.7, 0.0, 0.99], // MA fn, SE fp
        ];
        let m = multilabel_confusion(&truth, &probs, [0.5; 4]).unwrap();
        assert_eq!(m.samples, 3);
        assert_eq!(m.exact_matches, 1);
        assert_eq!(
            m.classes[0],
            ClassCounts {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 0
            }
        );
        assert_eq!(
            m.classes[1],
            ClassCounts {
                tp: 2,
                fp: 0,
                fn_: 0,
                tn: 1
            }
        );
        assert_eq!(
            m.classes[2],
            ClassCounts {
                tp: 1,
                fp: 0,
                fn_: 1,
                tn: 1
            }
        );
        assert_eq!(
            m.classes[3],
            ClassCounts {
                tp: 0,
                fp: 1,
                fn_: 0,
                tn: 2
            }
        );
        assert_eq!(m.wrong_cells(), 4);
        assert_eq!(m.classes[0].support(), 2);
        assert!(m.classes.iter().all(|c| c.total() == 3));
    }

    #[test]
    fn threshold_compares_the_widened_probability() {
        // 0.7f32 is 0.699999988..., so the f64 threshold 0.7 excludes it and the f64 value
        // of 0.7f32 includes it.
        let truth = [[1, 1, 1, 1]];
        let probs = [[0.7f32; 4]];
        let m = multilabel_confusion(&truth, &probs, [0.7, f64::from(0.7f32), 0.0, f64::INFINITY])
            .unwrap();
        assert_eq!(m.classes[0].tp, 0);
        assert_eq!(m.classes[1].tp, 1);
        assert_eq!(m.classes[2].tp, 1);
        assert_eq!(m.classes[3].tp, 0);
    }

    #[test]
    fn empty_input_gives_zero_counts() {
        let m = multilabel_confusion(&[], &[], [0.5; 4]).unwrap();
        assert_eq!(m, MultiLabelConfusion::default());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = multilabel_confusion(&[[0; 4]], &[], [0.5; 4]).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::LengthMismatch {
                truth: 1,
                scores: 0
            }
        ));
        let e = multilabel_confusion(&[[0, 0, 2, 0]], &[[0.1; 4]], [0.5; 4]).unwrap_err();
        assert_eq!(e.to_string(), "EX: label 2 at index 0 is neither 0 nor 1");
        let e =
            multilabel_confusion(&[[0; 4]], &[[0.1, f32::NAN, 0.1, 0.1]], [0.5; 4]).unwrap_err();
        assert_eq!(e.to_string(), "HE: score at index 0 is NaN");
        let e =
            multilabel_confusion(&[[0; 4]], &[[0.1; 4]], [0.5, 0.5, 0.5, f64::NAN]).unwrap_err();
        assert!(e.to_string().starts_with("SE: threshold NaN"));
    }

    #[test]
    fn binary_checks() {
        assert!(check_binary(&[0, 1], &[0.1, 0.2]).is_ok());
        assert!(matches!(
            check_binary(&[0, 1], &[0.1]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            check_binary(&[0, 1], &[0.1, f32::NAN]),
            Err(MetricsError::NanScore { index: 1 })
        ));
        assert!(matches!(
            check_binary(&[3, 1], &[0.1, 0.2]),
            Err(MetricsError::InvalidLabel { index: 0, value: 3 })
        ));
    }

    #[test]
    fn counts_serialise_fn_as_fn() {
        let c = ClassCounts {
            tp: 1,
            fp: 2,
            fn_: 3,
            tn: 4,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, r#"{"tp":1,"fp":2,"fn":3,"tn":4}"#);
        assert_eq!(serde_json::from_str::<ClassCounts>(&s).unwrap(), c);
    }
}
