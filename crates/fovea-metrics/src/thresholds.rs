//! Per-class decision-threshold tuning on a validation split.
//!
//! For each class independently the threshold is the candidate that maximises that
//! class's F1 (predict positive when `p as f64 >= t`, F1 as in [`crate::f1`]):
//!
//! - **Candidates**: the distinct predicted probabilities of that class (widened exactly
//!   from f32 to f64) plus 0.5. Any other threshold predicts the same as the smallest
//!   candidate at or above it (or predicts nothing, which has F1 0), so no better one exists.
//! - **Ties** (equal F1, compared exactly as fractions): the candidate closest to 0.5; if
//!   two are equally close (0.5 - d and 0.5 + d), the lower one.
//! - **No positive** in the class (or no samples): F1 is 0 at every threshold and the
//!   class keeps [`DEFAULT_THRESHOLD`] = 0.5.
//!
//! It is a single sorted sweep per class, O(n log n).

use crate::confusion::{check_binary, check_multilabel, column};
use crate::error::Result;
use crate::NUM_CLASSES;

/// The threshold used before tuning, and kept by classes without validation positives.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// A candidate threshold with its F1 as the exact fraction `num / den`.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    threshold: f64,
    num: u64,
    den: u64,
}

impl Candidate {
    /// `F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (tp + fp + P)` with `P` the positives.
    fn new(threshold: f64, tp: u64, fp: u64, positives: u64) -> Candidate {
        Candidate {
            threshold,
            num: 2 * tp,
            den: tp + fp + positives,
        }
    }

    /// Whether `self` beats `other` under the tuning rule (see the module docs).
    fn beats(&self, other: &Candidate) -> bool {
        // den > 0 always: positives > 0 when a candidate is built.
        let lhs = u128::from(self.num) * u128::from(other.den);
        let rhs = u128::from(other.num) * u128::from(self.den);
        if lhs != rhs {
            return lhs > rhs;
        }
        let (ds, do_) = (
            (self.threshold - DEFAULT_THRESHOLD).abs(),
            (other.threshold - DEFAULT_THRESHOLD).abs(),
        );
        if ds != do_ {
            return ds < do_;
        }
        self.threshold < other.threshold
    }
}

/// The F1-maximising threshold of one binary column (see the module docs).
///
/// Errors: lengths differ, a label not 0/1, a NaN score.
pub fn tune_threshold(truth: &[u8], scores: &[f32]) -> Result<f64> {
    check_binary(truth, scores)?;
    let positives = truth.iter().filter(|&&y| y == 1).count() as u64;
    if positives == 0 {
        return Ok(DEFAULT_THRESHOLD);
    }
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .map(|&s| f64::from(s))
        .zip(truth.iter().map(|&y| y == 1))
        .collect();
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));

    // The fixed candidate 0.5.
    let (tp, fp) = pairs.iter().filter(|(s, _)| *s >= DEFAULT_THRESHOLD).fold(
        (0u64, 0u64),
        |(tp, fp), &(_, y)| if y { (tp + 1, fp) } else { (tp, fp + 1) },
    );
    let mut best = Candidate::new(DEFAULT_THRESHOLD, tp, fp, positives);

    // Every distinct score, from the highest down: the cumulative counts after a whole
    // tie group are the counts of `p >= that score`.
    let (mut tp, mut fp) = (0u64, 0u64);
    for (i, &(s, y)) in pairs.iter().enumerate() {
        if y {
            tp += 1;
        } else {
            fp += 1;
        }
        let group_ends = pairs.get(i + 1).is_none_or(|next| next.0 != s);
        if group_ends {
            let cand = Candidate::new(s, tp, fp, positives);
            if cand.beats(&best) {
                best = cand;
            }
        }
    }
    Ok(best.threshold)
}

/// Tunes the four per-class thresholds on validation truth and probabilities, in lesion
/// order. Errors: lengths differ, a label not 0/1, a NaN probability (named by lesion).
pub fn tune_thresholds(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
) -> Result<[f64; NUM_CLASSES]> {
    check_multilabel(truth, probs)?;
    let [ma, he, ex, se]: [Result<f64>; NUM_CLASSES] = std::array::from_fn(|c| {
        tune_threshold(&column(truth, c), &column(probs, c)).map_err(|e| e.in_class(c))
    });
    Ok([ma?, he?, ex?, se?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MetricsError;
    use crate::ratios::f1_from_counts;

    /// F1 of one column at threshold `t`, by brute force.
    fn f1_at(truth: &[u8], scores: &[f32], t: f64) -> f64 {
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (&y, &s) in truth.iter().zip(scores) {
            match (y == 1, f64::from(s) >= t) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        f1_from_counts(tp, fp, fn_)
    }

    #[test]
    fn picks_the_best_f1() {
        // Positives 0.9, 0.35, 0.32; negatives 0.3, 0.2, 0.1: only `>= 0.32` is perfect.
        let y = [1, 1, 0, 1, 0, 0];
        let s = [0.9f32, 0.35, 0.3, 0.32, 0.2, 0.1];
        let t = tune_threshold(&y, &s).unwrap();
        assert_eq!(t, f64::from(0.32f32));
        assert_eq!(f1_at(&y, &s, t), 1.0);
    }

    #[test]
    fn ties_go_to_the_candidate_closest_to_half() {
        // 0.8 (+), 0.2 (-): thresholds 0.5 and 0.8 both give F1 1; 0.5 is closer.
        assert_eq!(tune_threshold(&[1, 0], &[0.8, 0.2]).unwrap(), 0.5);
        // 0.25 (+), 0.1 (-): 0.25 is the only perfect candidate (0.5 predicts nothing).
        assert_eq!(
            tune_threshold(&[1, 0], &[0.25, 0.1]).unwrap(),
            f64::from(0.25f32)
        );
        // 0.75 and 0.25 both give F1 2/3 (tp 1 fp 0 fn 1 vs tp 2 fp 2 fn 0), and 0.5
        // predicts as 0.75 does: 0.5 wins.
        let y = [1, 1, 0, 0];
        let s = [0.75f32, 0.25, 0.25, 0.25];
        assert_eq!(f1_at(&y, &s, 0.75), f1_at(&y, &s, 0.25));
        assert_eq!(tune_threshold(&y, &s).unwrap(), 0.5);
    }

    #[test]
    fn equal_distance_ties_go_to_the_lower_threshold() {
        // 0.75 (+), 0.6 (-), 0.25 {+, -}, 0.1 (-). F1: 0.75 -> 2/3, 0.6 and 0.5 -> 1/2,
        // 0.25 -> 4/6, 0.1 -> 4/7. 0.75 and 0.25 tie, equally far from 0.5: 0.25 wins.
        let y = [1, 0, 1, 0, 0];
        let s = [0.75f32, 0.6, 0.25, 0.25, 0.1];
        assert_eq!(f1_at(&y, &s, 0.75), f1_at(&y, &s, 0.25));
        assert!(f1_at(&y, &s, 0.5) < f1_at(&y, &s, 0.25));
        assert_eq!(tune_threshold(&y, &s).unwrap(), 0.25);
    }

    #[test]
    fn no_positive_keeps_default() {
        assert_eq!(tune_threshold(&[0, 0, 0], &[0.9, 0.1, 0.6]).unwrap(), 0.5);
        assert_eq!(tune_threshold(&[], &[]).unwrap(), 0.5);
        assert_eq!(tune_thresholds(&[], &[]).unwrap(), [0.5; 4]);
    }

    #[test]
    fn all_positive_takes_the_lowest_score() {
        assert_eq!(
            tune_threshold(&[1, 1, 1], &[0.9, 0.05, 0.6]).unwrap(),
            f64::from(0.05f32)
        );
    }

    #[test]
    fn never_worse_than_any_candidate() {
        let y = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0];
        let s = [
            0.9f32, 0.8, 0.8, 0.6, 0.55, 0.5, 0.4, 0.4, 0.3, 0.2, 0.2, 0.1,
        ];
        let t = tune_threshold(&y, &s).unwrap();
        let best = f1_at(&y, &s, t);
        for &c in s.iter() {
            assert!(best >= f1_at(&y, &s, f64::from(c)));
        }
        assert!(best >= f1_at(&y, &s, 0.5));
    }

    #[test]
    fn per_class_and_errors() {
        let truth = [[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]];
        let probs = [
            [0.9, 0.9, 0.3, 0.2],
            [0.1, 0.2, 0.2, 0.9],
            [0.7, 0.3, 0.25, 0.5],
        ];
        let t = tune_thresholds(&truth, &probs).unwrap();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[1], 0.5);
        assert_eq!(t[2], f64::from(0.2f32));
        assert_eq!(t[3], 0.5);
        let e = tune_thresholds(&truth, &probs[..2]).unwrap_err();
        assert!(matches!(e, MetricsError::LengthMismatch { .. }));
        let e = tune_thresholds(&[[0, 0, 0, 1]], &[[0.0, 0.0, 0.0, f32::NAN]]).unwrap_err();
        assert_eq!(e.to_string(), "SE: score at index 0 is NaN");
    }
}
