//! Precision, recall and F1 from confusion counts, with scikit-learn's zero-division rule:
//! a ratio whose denominator is 0 is 0.0. The lowest module of the crate: [`crate::confusion`]
//! and [`crate::f1`] both build on it, and it imports neither.

/// `num / den`, or 0.0 when `den == 0` (scikit-learn's default zero-division value).
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Precision `tp / (tp + fp)`, 0.0 when `tp + fp == 0`.
pub fn precision_from_counts(tp: u64, fp: u64) -> f64 {
    ratio(tp, tp + fp)
}

/// Recall `tp / (tp + fn)`, 0.0 when `tp + fn == 0`.
pub fn recall_from_counts(tp: u64, fn_: u64) -> f64 {
    ratio(tp, tp + fn_)
}

/// F1 `2 tp / (2 tp + fp + fn)`, 0.0 when `tp + fp + fn == 0`.
pub fn f1_from_counts(tp: u64, fp: u64, fn_: u64) -> f64 {
    ratio(2 * tp, 2 * tp + fp + fn_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_division_is_zero() {
        assert_eq!(precision_from_counts(0, 0), 0.0);
        assert_eq!(recall_from_counts(0, 0), 0.0);
        assert_eq!(f1_from_counts(0, 0, 0), 0.0);
        assert_eq!(f1_from_counts(0, 3, 2), 0.0);
        assert_eq!(f1_from_counts(2, 1, 1), 4.0 / 6.0);
        assert_eq!(precision_from_counts(3, 1), 0.75);
        assert_eq!(recall_from_counts(1, 3), 0.25);
        assert_eq!(ratio(1, 0), 0.0);
    }
}
