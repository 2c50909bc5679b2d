//! Exact per-class ranking metrics: AUROC and average precision (AP), as scikit-learn's
//! `roc_auc_score` and `average_precision_score` compute them for a binary column.
//!
//! Scores are sorted in descending order (O(n log n)) and equal scores form one *tie
//! group*: a threshold sits between distinct score values only, so tied samples are
//! predicted positive together. Walking the groups in descending order, with `TP_n`, `FP_n`
//! the cumulative counts after group `n`, `P` / `N` the totals, `R_n = TP_n / P` and
//! `P_n = TP_n / (TP_n + FP_n)`:
//!
//! - **AP** = `sum_n (R_n - R_{n-1}) * P_n` with `R_0 = 0` (no interpolation; a tie group
//!   contributes once, with the precision of the whole group). With no positive at all,
//!   scikit-learn (1.9.1, checked) warns and returns 0.0, and so does this crate. With no
//!   negative, AP is 1.0.
//! - **AUROC** = the trapezoid area under the ROC points `(FP_n / N, TP_n / P)` starting at
//!   `(0, 0)`: a tie group with both labels contributes a diagonal segment, i.e. half
//!   credit for the tied pairs. It is computed in exact integer arithmetic
//!   (`sum_n FP_group * (2 TP_{n-1} + TP_group) / (2 P N)`) and rounded once, so it can
//!   differ from scikit-learn's floating-point trapezoid in the last bit. When only one
//!   label value is present AUROC is undefined: scikit-learn warns and returns NaN; this
//!   crate returns `None` (serialised as JSON `null`).
//!
//! NaN scores are an error ([`MetricsError::NanScore`]), not a panic; infinite scores
//! rank normally. `-0.0` and `0.0` are one tie group. Labels must be 0 or 1.

use crate::confusion::{check_binary, check_multilabel, column};
use crate::error::{MetricsError, Result};
use crate::NUM_CLASSES;

/// Positives and negatives sharing one score value (or one histogram bin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TieGroup {
    pub pos: u64,
    pub neg: u64,
}

/// AP from tie groups in descending score order (see the module docs). Empty groups are
/// harmless. 0.0 when there is no positive.
pub(crate) fn ap_from_groups<I>(groups: I) -> f64
where
    I: Iterator<Item = TieGroup> + Clone,
{
    let total_pos: u64 = groups.clone().map(|g| g.pos).sum();
    if total_pos == 0 {
        return 0.0;
    }
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut prev_recall, mut ap) = (0.0f64, 0.0f64);
    for g in groups {
        tp += g.pos;
        fp += g.neg;
        if g.pos > 0 {
            let recall = tp as f64 / total_pos as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
    }
    ap
}

/// AUROC from tie groups in descending score order (see the module docs); `None` when
/// positives or negatives are absent.
pub(crate) fn auroc_from_groups<I>(groups: I) -> Option<f64>
where
    I: Iterator<Item = TieGroup> + Clone,
{
    let (total_pos, total_neg) = groups
        .clone()
        .fold((0u64, 0u64), |(p, n), g| (p + g.pos, n + g.neg));
    if total_pos == 0 || total_neg == 0 {
        return None;
    }
    // Twice the area in units of one (1/N x 1/P) cell, exact.
    let mut tp_before = 0u128;
    let mut area2 = 0u128;
    for g in groups {
        area2 += u128::from(g.neg) * (2 * tp_before + u128::from(g.pos));
        tp_before += u128::from(g.pos);
    }
    let cells2 = 2 * u128::from(total_pos) * u128::from(total_neg);
    Some(area2 as f64 / cells2 as f64)
}

/// Sorts a validated binary column by descending score and groups equal scores.
fn tie_groups(truth: &[u8], scores: &[f32]) -> Result<Vec<TieGroup>> {
    check_binary(truth, scores)?;
    if truth.is_empty() {
        return Err(MetricsError::Empty);
    }
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .copied()
        .zip(truth.iter().map(|&y| y == 1))
        .collect();
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut groups: Vec<TieGroup> = Vec::new();
    let mut last: Option<f32> = None;
    for (s, y) in pairs {
        if last != Some(s) {
            groups.push(TieGroup::default());
            last = Some(s);
        }
        let g = groups.last_mut().expect("a group was just pushed");
        if y {
            g.pos += 1;
        } else {
            g.neg += 1;
        }
    }
    Ok(groups)
}

/// Average precision of one binary column (scikit-learn's `average_precision_score`).
///
/// Errors: lengths differ, empty input, a label not 0/1, a NaN score.
/// No positive -> `Ok(0.0)`.
pub fn average_precision(truth: &[u8], scores: &[f32]) -> Result<f64> {
    let groups = tie_groups(truth, scores)?;
    Ok(ap_from_groups(groups.iter().copied()))
}

/// Area under the ROC curve of one binary column (scikit-learn's `roc_auc_score`).
///
/// Errors: lengths differ, empty input, a label not 0/1, a NaN score.
/// Only one label value present -> `Ok(None)`.
pub fn roc_auc(truth: &[u8], scores: &[f32]) -> Result<Option<f64>> {
    let groups = tie_groups(truth, scores)?;
    Ok(auroc_from_groups(groups.iter().copied()))
}

/// Runs a binary metric on each lesion column.
fn per_class<T>(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
    metric: fn(&[u8], &[f32]) -> Result<T>,
) -> Result<[T; NUM_CLASSES]> {
    check_multilabel(truth, probs)?;
    if truth.is_empty() {
        return Err(MetricsError::Empty);
    }
    let [ma, he, ex, se]: [Result<T>; NUM_CLASSES] = std::array::from_fn(|c| {
        metric(&column(truth, c), &column(probs, c)).map_err(|e| e.in_class(c))
    });
    Ok([ma?, he?, ex?, se?])
}

/// Per-class average precision, in lesion order. Errors as [`average_precision`].
pub fn per_class_average_precision(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
) -> Result<[f64; NUM_CLASSES]> {
    per_class(truth, probs, average_precision)
}

/// Per-class AUROC, in lesion order; `None` for a class with only one label value.
/// Errors as [`roc_auc`].
pub fn per_class_roc_auc(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
) -> Result<[Option<f64>; NUM_CLASSES]> {
    per_class(truth, probs, roc_auc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_with_ties() {
        // Descending: 0.8 {+,+}, 0.5 {+,-,-}, 0.2 {+,-}, 0.1 {-}; P = 4, N = 4.
        let y = [0, 0, 1, 1, 0, 1, 1, 0];
        let s = [0.5, 0.5, 0.5, 0.2, 0.2, 0.8, 0.8, 0.1];
        // AP = 0.5 * 1 + 0.25 * 3/5 + 0.25 * 4/7
        let ap = average_precision(&y, &s).unwrap();
        assert!((ap - (0.5 + 0.25 * 0.6 + 0.25 * 4.0 / 7.0)).abs() < 1e-15);
        // AUROC pairs: 16, correct 12, ties (0.5: 1x2, 0.2: 1x1) 3 halves -> 12.5/16
        assert_eq!(roc_auc(&y, &s).unwrap(), Some(12.5 / 16.0));
    }

    #[test]
    fn perfect_worst_and_all_tied() {
        let y = [1, 1, 0, 0];
        assert_eq!(roc_auc(&y, &[0.9, 0.8, 0.2, 0.1]).unwrap(), Some(1.0));
        assert_eq!(average_precision(&y, &[0.9, 0.8, 0.2, 0.1]).unwrap(), 1.0);
        assert_eq!(roc_auc(&y, &[0.1, 0.2, 0.8, 0.9]).unwrap(), Some(0.0));
        assert_eq!(roc_auc(&y, &[0.3; 4]).unwrap(), Some(0.5));
        assert_eq!(average_precision(&y, &[0.3; 4]).unwrap(), 0.5);
    }

    #[test]
    fn one_label_value() {
        assert_eq!(roc_auc(&[0, 0, 0], &[0.1, 0.5, 0.9]).unwrap(), None);
        assert_eq!(roc_auc(&[1, 1], &[0.1, 0.5]).unwrap(), None);
        assert_eq!(
            average_precision(&[0, 0, 0], &[0.1, 0.5, 0.9]).unwrap(),
            0.0
        );
        assert_eq!(average_precision(&[1, 1], &[0.1, 0.5]).unwrap(), 1.0);
    }

    #[test]
    fn signed_zero_and_infinities() {
        // -0.0 and 0.0 tie; infinities rank at the ends.
        let y = [1, 0, 1, 0];
        let s = [-0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY];
        // +inf {+}, 0 {+,-}, -inf {-}: pairs 4, correct 1+1+1 = 3, tie 1 half -> 3.5/4
        assert_eq!(roc_auc(&y, &s).unwrap(), Some(3.5 / 4.0));
    }

    #[test]
    fn errors_not_panics() {
        assert!(matches!(
            average_precision(&[], &[]),
            Err(MetricsError::Empty)
        ));
        assert!(matches!(roc_auc(&[], &[]), Err(MetricsError::Empty)));
        assert!(matches!(
            roc_auc(&[0, 1], &[f32::NAN, 0.2]),
            Err(MetricsError::NanScore { index: 0 })
        ));
        assert!(matches!(
            average_precision(&[0, 1], &[0.5]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        let e = per_class_roc_auc(&[[0, 1, 0, 1]], &[[0.1, 0.2, f32::NAN, 0.4]]).unwrap_err();
        assert_eq!(e.to_string(), "EX: score at index 0 is NaN");
        assert!(matches!(
            per_class_average_precision(&[], &[]),
            Err(MetricsError::Empty)
        ));
    }

    #[test]
    fn per_class_columns_are_independent() {
        let truth = [[1, 0, 1, 1], [0, 0, 1, 0], [1, 0, 1, 0]];
        let probs = [
            [0.9, 0.1, 0.3, 0.2],
            [0.5, 0.2, 0.2, 0.9],
            [0.7, 0.3, 0.1, 0.5],
        ];
        let auroc = per_class_roc_auc(&truth, &probs).unwrap();
        assert_eq!(auroc, [Some(1.0), None, None, Some(0.0)]);
        let ap = per_class_average_precision(&truth, &probs).unwrap();
        assert_eq!(ap[0], 1.0);
        assert_eq!(ap[1], 0.0);
        assert_eq!(ap[2], 1.0);
        assert!((ap[3] - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn large_counts_do_not_overflow_auroc() {
        let big = 3_000_000_000u64;
        let groups = [
            TieGroup { pos: big, neg: big },
            TieGroup { pos: 0, neg: big },
        ];
        let auc = auroc_from_groups(groups.iter().copied()).unwrap();
        // first group: half credit on big*big pairs; second: full credit on big*big pairs
        assert!((auc - 0.75).abs() < 1e-15);
    }
}
