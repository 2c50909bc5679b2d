//! Property tests (proptest) of fovea-metrics: ranges, symmetries and invariances, and
//! agreement of the fast implementations with brute-force definitions.

use fovea_metrics::{
    average_precision, multilabel_metrics, per_class_average_precision, per_class_roc_auc, roc_auc,
    tune_threshold, tune_thresholds, MetricsError, ScoreHistogram,
};
use proptest::prelude::*;

type Rows = (Vec<[u8; 4]>, Vec<[f32; 4]>);

/// A score on a coarse grid (k / 16, exact in f32): plenty of ties.
fn grid_score() -> impl Strategy<Value = f32> {
    (0u32..=16).prop_map(|k| k as f32 / 16.0)
}

/// A score that is either on the coarse grid or anywhere in [0, 1].
fn score() -> impl Strategy<Value = f32> {
    prop_oneof![grid_score(), 0.0f32..=1.0]
}

/// Multi-label truth and probabilities with `1..max` rows.
fn rows(max: usize) -> impl Strategy<Value = Rows> {
    prop::collection::vec(
        (
            prop::array::uniform4(0u8..2),
            prop::array::uniform4(score()),
        ),
        1..max,
    )
    .prop_map(|v| v.into_iter().unzip())
}

/// A binary column with `1..max` values.
fn column(max: usize) -> impl Strategy<Value = (Vec<u8>, Vec<f32>)> {
    prop::collection::vec((0u8..2, score()), 1..max).prop_map(|v| v.into_iter().unzip())
}

fn in_unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// AUROC by counting pairs (ties count 1/2), O(n^2).
fn auroc_brute(y: &[u8], s: &[f32]) -> Option<f64> {
    let (mut pairs, mut credit) = (0u64, 0u64);
    for i in 0..y.len() {
        for j in 0..y.len() {
            if y[i] == 1 && y[j] == 0 {
                pairs += 1;
                credit += if s[i] > s[j] {
                    2
                } else if s[i] == s[j] {
                    1
                } else {
                    0
                };
            }
        }
    }
    (pairs > 0).then(|| credit as f64 / (2 * pairs) as f64)
}

/// AP by its definition: over distinct thresholds t from high to low, (R(t) - R_prev) P(t).
fn ap_brute(y: &[u8], s: &[f32]) -> f64 {
    let positives = y.iter().filter(|&&v| v == 1).count();
    if positives == 0 {
        return 0.0;
    }
    let mut ts: Vec<f32> = s.to_vec();
    ts.sort_by(|a, b| b.total_cmp(a));
    ts.dedup();
    let (mut ap, mut prev_r) = (0.0, 0.0);
    for t in ts {
        let tp = y.iter().zip(s).filter(|(&v, &x)| v == 1 && x >= t).count();
        let pp = s.iter().filter(|&&x| x >= t).count();
        let r = tp as f64 / positives as f64;
        ap += (r - prev_r) * (tp as f64 / pp as f64);
        prev_r = r;
    }
    ap
}

/// F1 of one column at threshold t, by brute force.
fn f1_at(y: &[u8], s: &[f32], t: f64) -> f64 {
    let tp = y
        .iter()
        .zip(s)
        .filter(|(&v, &x)| v == 1 && f64::from(x) >= t)
        .count() as f64;
    let fp = y
        .iter()
        .zip(s)
        .filter(|(&v, &x)| v == 0 && f64::from(x) >= t)
        .count() as f64;
    let fn_ = y
        .iter()
        .zip(s)
        .filter(|(&v, &x)| v == 1 && f64::from(x) < t)
        .count() as f64;
    if tp + fp + fn_ == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

proptest! {
    #[test]
    fn metrics_are_in_unit_interval(
        (y, p) in rows(60),
        t in prop::array::uniform4(0.0f64..=1.0),
    ) {
        let m = multilabel_metrics(&y, &p, t).unwrap();
        for x in [m.micro_f1, m.macro_f1, m.hamming, m.subset_acc] {
            prop_assert!(in_unit(x));
        }
        for c in 0..4 {
            prop_assert!(in_unit(m.f1[c]) && in_unit(m.precision[c]) && in_unit(m.recall[c]));
        }
        // A row with a wrong cell is a wrong row: subset accuracy <= 1 - Hamming.
        prop_assert!(m.subset_acc <= 1.0 - m.hamming + 1e-12);
        for ap in per_class_average_precision(&y, &p).unwrap() {
            prop_assert!(in_unit(ap));
        }
        for auc in per_class_roc_auc(&y, &p).unwrap().into_iter().flatten() {
            prop_assert!(in_unit(auc));
        }
    }

    #[test]
    fn f1_is_symmetric_in_truth_and_prediction(
        v in prop::collection::vec((prop::array::uniform4(0u8..2), prop::array::uniform4(0u8..2)), 1..60),
    ) {
        // Binary predictions as probabilities 0/1 at threshold 0.5; swapping truth and
        // prediction swaps fp and fn: F1, Hamming and subset accuracy stay, precision and
        // recall trade places.
        let as_probs = |r: &[[u8; 4]]| -> Vec<[f32; 4]> {
            r.iter().map(|a| a.map(f32::from)).collect()
        };
        let (a, b): (Vec<[u8; 4]>, Vec<[u8; 4]>) = v.into_iter().unzip();
        let ab = multilabel_metrics(&a, &as_probs(&b), [0.5; 4]).unwrap();
        let ba = multilabel_metrics(&b, &as_probs(&a), [0.5; 4]).unwrap();
        prop_assert_eq!(ab.micro_f1, ba.micro_f1);
        prop_assert_eq!(ab.macro_f1, ba.macro_f1);
        prop_assert_eq!(ab.f1, ba.f1);
        prop_assert_eq!(ab.hamming, ba.hamming);
        prop_assert_eq!(ab.subset_acc, ba.subset_acc);
        prop_assert_eq!(ab.precision, ba.recall);
        prop_assert_eq!(ab.recall, ba.precision);
    }

    #[test]
    fn identical_classes_make_micro_equal_macro((y1, p1) in column(60), t in 0.0f64..=1.0) {
        let y: Vec<[u8; 4]> = y1.iter().map(|&v| [v; 4]).collect();
        let p: Vec<[f32; 4]> = p1.iter().map(|&s| [s; 4]).collect();
        let m = multilabel_metrics(&y, &p, [t; 4]).unwrap();
        prop_assert!((m.micro_f1 - m.macro_f1).abs() < 1e-12);
        prop_assert!((m.micro_f1 - m.f1[0]).abs() < 1e-12);
        prop_assert_eq!(m.micro_f1, f1_at(&y1, &p1, t));
    }

    #[test]
    fn invariant_under_row_and_class_permutation(
        (y, p) in rows(60),
        t in prop::array::uniform4(0.0f64..=1.0),
        k in 0usize..4,
    ) {
        let m = multilabel_metrics(&y, &p, t).unwrap();
        // Reverse the rows, rotate the classes (and thresholds) by k.
        let rot = |a: [f64; 4]| { let mut a = a; a.rotate_left(k); a };
        let y2: Vec<[u8; 4]> = y.iter().rev().map(|r| { let mut r = *r; r.rotate_left(k); r }).collect();
        let p2: Vec<[f32; 4]> = p.iter().rev().map(|r| { let mut r = *r; r.rotate_left(k); r }).collect();
        let m2 = multilabel_metrics(&y2, &p2, rot(t)).unwrap();
        prop_assert_eq!(m.micro_f1, m2.micro_f1);
        prop_assert!((m.macro_f1 - m2.macro_f1).abs() < 1e-12);
        prop_assert_eq!(m.hamming, m2.hamming);
        prop_assert_eq!(m.subset_acc, m2.subset_acc);
        prop_assert_eq!(rot(m.f1), m2.f1);
    }

    #[test]
    fn perfect_ranking_has_ap_and_auroc_one(
        v in prop::collection::vec((0u8..2, 0u32..1000), 1..80),
    ) {
        prop_assume!(v.iter().any(|&(y, _)| y == 1));
        // Positives in (0.5, 1], negatives in [0, 0.5).
        let y: Vec<u8> = v.iter().map(|&(y, _)| y).collect();
        let s: Vec<f32> = v
            .iter()
            .map(|&(y, k)| if y == 1 { 0.5 + (k + 1) as f32 / 2000.0 } else { k as f32 / 2000.0 })
            .collect();
        prop_assert_eq!(average_precision(&y, &s).unwrap(), 1.0);
        if y.contains(&0) {
            prop_assert_eq!(roc_auc(&y, &s).unwrap(), Some(1.0));
        }
    }

    #[test]
    fn auroc_of_flipped_scores_is_one_minus_auroc(
        v in prop::collection::vec((0u8..2, 0u32..=1024), 1..80),
    ) {
        // Scores k / 1024 are exact in f32, and so is 1 - score: ties are kept.
        let y: Vec<u8> = v.iter().map(|&(y, _)| y).collect();
        let s: Vec<f32> = v.iter().map(|&(_, k)| k as f32 / 1024.0).collect();
        let flipped: Vec<f32> = s.iter().map(|&x| 1.0 - x).collect();
        match (roc_auc(&y, &s).unwrap(), roc_auc(&y, &flipped).unwrap()) {
            (Some(a), Some(b)) => prop_assert!((a + b - 1.0).abs() < 1e-12),
            (None, None) => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn ranking_matches_brute_force((y, s) in column(60)) {
        let got = roc_auc(&y, &s).unwrap();
        match (got, auroc_brute(&y, &s)) {
            (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12),
            (None, None) => {}
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert!((average_precision(&y, &s).unwrap() - ap_brute(&y, &s)).abs() < 1e-12);
    }

    #[test]
    fn ranking_is_invariant_under_monotone_maps(
        v in prop::collection::vec((0u8..2, 0u32..=1024), 1..80),
    ) {
        // Only the order of the scores matters. Scores k / 1024 and their halves and
        // squares-plus-offset are all exact in f32 and keep order and ties.
        let y: Vec<u8> = v.iter().map(|&(y, _)| y).collect();
        let s: Vec<f32> = v.iter().map(|&(_, k)| k as f32 / 1024.0).collect();
        let halved: Vec<f32> = s.iter().map(|&x| x / 2.0).collect();
        let shifted: Vec<f32> = v.iter().map(|&(_, k)| 3.0 + (k * k) as f32).collect();
        for other in [&halved, &shifted] {
            prop_assert_eq!(roc_auc(&y, &s).unwrap(), roc_auc(&y, other).unwrap());
            prop_assert_eq!(average_precision(&y, &s).unwrap(), average_precision(&y, other).unwrap());
        }
    }

    #[test]
    fn tuned_threshold_is_a_best_candidate((y, s) in column(60)) {
        let t = tune_threshold(&y, &s).unwrap();
        let best = f1_at(&y, &s, t);
        prop_assert!(t == 0.5 || s.iter().any(|&x| f64::from(x) == t));
        prop_assert!(best >= f1_at(&y, &s, 0.5));
        for &x in &s {
            prop_assert!(best >= f1_at(&y, &s, f64::from(x)));
        }
        if !y.contains(&1) {
            prop_assert_eq!(t, 0.5);
        }
    }

    #[test]
    fn tuning_never_loses_to_half_on_validation((y, p) in rows(60)) {
        let t = tune_thresholds(&y, &p).unwrap();
        let tuned = multilabel_metrics(&y, &p, t).unwrap();
        let fixed = multilabel_metrics(&y, &p, [0.5; 4]).unwrap();
        for c in 0..4 {
            prop_assert!(tuned.f1[c] >= fixed.f1[c]);
        }
        prop_assert!(tuned.macro_f1 >= fixed.macro_f1 - 1e-12);
    }

    #[test]
    fn histogram_equals_exact_on_bin_centres(
        v in prop::collection::vec((0u8..2, 0usize..1000), 1..200),
        bins in prop_oneof![Just(1000usize), Just(10_000usize)],
    ) {
        let mut h = ScoreHistogram::new(bins).unwrap();
        let y: Vec<u8> = v.iter().map(|&(y, _)| y).collect();
        let s: Vec<f32> = v.iter().map(|&(_, k)| h.bin_centre(k * (bins / 1000)) as f32).collect();
        h.add(&s, &y).unwrap();
        prop_assert_eq!(h.average_precision(), average_precision(&y, &s).unwrap());
        prop_assert_eq!(h.auroc(), roc_auc(&y, &s).unwrap());
    }

    #[test]
    fn nan_is_an_error_not_a_panic((y, mut s) in column(30), i in any::<prop::sample::Index>()) {
        let k = i.index(s.len());
        s[k] = f32::NAN;
        let is_nan_err = |e: MetricsError| matches!(e, MetricsError::NanScore { index } if index == k);
        prop_assert!(is_nan_err(roc_auc(&y, &s).unwrap_err()));
        prop_assert!(is_nan_err(average_precision(&y, &s).unwrap_err()));
        prop_assert!(is_nan_err(tune_threshold(&y, &s).unwrap_err()));
        let mut h = ScoreHistogram::default();
        prop_assert!(is_nan_err(h.add(&s, &y).unwrap_err()));
    }
}
