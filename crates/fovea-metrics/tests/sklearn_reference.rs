//! fovea-metrics against scikit-learn.
//!
//! Every expected value below was printed by `tests/reference.py` (scikit-learn 1.9.1,
//! numpy 2.4.6); the Python that produced each group is quoted above it. The fixtures are
//! the script's `Y_A`/`P_A` and `Y_B`/`P_B`, float32 scores on both sides. Values agree to
//! 1e-12 (the summation order differs from numpy's, so the last bit may differ);
//! thresholds agree exactly.

use fovea_metrics::{
    average_precision, build_metrics_report, multilabel_metrics, per_class_average_precision,
    per_class_roc_auc, roc_auc, tune_thresholds, MultiLabelMetrics, ThresholdedMetrics,
};

const TOL: f64 = 1e-12;

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOL,
        "{what}: got {got}, sklearn {want}"
    );
}

fn close4(got: [f64; 4], want: [f64; 4], what: &str) {
    for c in 0..4 {
        close(got[c], want[c], &format!("{what}[{c}]"));
    }
}

fn close_opt4(got: [Option<f64>; 4], want: [Option<f64>; 4], what: &str) {
    for c in 0..4 {
        match (got[c], want[c]) {
            (Some(g), Some(w)) => close(g, w, &format!("{what}[{c}]")),
            (None, None) => {}
            _ => panic!("{what}[{c}]: got {:?}, sklearn {:?}", got[c], want[c]),
        }
    }
}

/// The `M` block printed by `reference.py`'s `print_block`.
struct Expected {
    micro_f1: f64,
    macro_f1: f64,
    hamming: f64,
    subset_acc: f64,
    f1: [f64; 4],
    precision: [f64; 4],
    recall: [f64; 4],
    thresholds: [f64; 4],
}

fn check_block(got: &ThresholdedMetrics, want: &Expected, what: &str) {
    close(got.micro_f1, want.micro_f1, &format!("{what} micro_f1"));
    close(got.macro_f1, want.macro_f1, &format!("{what} macro_f1"));
    close(got.hamming, want.hamming, &format!("{what} hamming"));
    close(
        got.subset_acc,
        want.subset_acc,
        &format!("{what} subset_acc"),
    );
    close4(got.f1, want.f1, &format!("{what} f1"));
    close4(got.precision, want.precision, &format!("{what} precision"));
    close4(got.recall, want.recall, &format!("{what} recall"));
    assert_eq!(got.thresholds, want.thresholds, "{what} thresholds");
}

fn check_metrics(got: &MultiLabelMetrics, want: &Expected, what: &str) {
    check_block(&ThresholdedMetrics::from(got), want, what);
}

/// `Y_A`, `P_A` of reference.py: MA mixed with tied scores, HE all negative, EX all
/// positive, SE perfectly ranked.
fn fixture_a() -> (Vec<[u8; 4]>, Vec<[f32; 4]>) {
    let y = vec![
        [1, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 1, 1],
        [0, 0, 1, 0],
    ];
    let p = vec![
        [0.9, 0.1, 0.8, 0.95],
        [0.6, 0.2, 0.3, 0.10],
        [0.6, 0.7, 0.6, 0.85],
        [0.4, 0.4, 0.5, 0.40],
        [0.4, 0.55, 0.45, 0.05],
        [0.4, 0.05, 0.9, 0.70],
        [0.2, 0.3, 0.2, 0.30],
        [0.6, 0.5, 0.7, 0.20],
        [0.1, 0.6, 0.55, 0.60],
        [0.6, 0.15, 0.1, 0.45],
    ];
    (y, p)
}

/// `Y_B`, `P_B` of reference.py: 24 samples, one-decimal scores (ties everywhere).
fn fixture_b() -> (Vec<[u8; 4]>, Vec<[f32; 4]>) {
    let y = vec![
        [0, 0, 0, 0],
        [0, 0, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 1],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
    ];
    let p = vec![
        [0.0, 0.3, 0.0, 0.1],
        [0.7, 0.5, 0.6, 0.4],
        [0.6, 0.5, 0.4, 0.5],
        [0.5, 0.7, 0.5, 0.6],
        [0.1, 0.7, 0.0, 0.5],
        [0.9, 0.4, 0.3, 0.9],
        [0.3, 0.4, 0.6, 0.4],
        [0.5, 0.2, 0.1, 0.3],
        [0.4, 0.5, 0.7, 0.4],
        [0.2, 0.5, 0.7, 0.3],
        [1.0, 0.4, 0.4, 0.6],
        [0.5, 0.4, 0.6, 0.6],
        [0.3, 0.6, 0.0, 0.3],
        [0.7, 1.0, 0.2, 0.6],
        [0.5, 0.8, 0.4, 0.7],
        [0.2, 0.3, 0.1, 0.0],
        [0.1, 0.9, 0.6, 0.4],
        [0.4, 0.6, 0.4, 0.5],
        [0.2, 0.7, 0.6, 0.4],
        [0.4, 0.1, 0.0, 0.3],
        [0.8, 0.6, 0.5, 0.1],
        [0.6, 0.6, 0.6, 0.4],
        [0.6, 0.3, 0.3, 0.0],
        [0.2, 0.2, 0.1, 0.4],
    ];
    (y, p)
}

// Python (reference.py, `thresholded(Y_A, P_A, [0.5] * 4)`):
//     yhat = (p >= np.asarray(t, dtype=np.float64)[None, :]).astype(np.uint8)
//     f1_score(y, yhat, average="micro")      # 0.7027027027027027
//     f1_score(y, yhat, average="macro")      # 0.6041666666666666
//     hamming_loss(y, yhat)                   # 0.275
//     accuracy_score(y, yhat)                 # 0.3 (subset accuracy)
//     f1_score(y, yhat, average=None)         # [0.6666666666666666, 0.0, 0.75, 1.0]
//     precision_score(y, yhat, average=None)  # [0.6, 0.0, 1.0, 1.0]
//     recall_score(y, yhat, average=None)     # [0.75, 0.0, 0.6, 1.0]
// (zero_division left at its default "warn": HE's ill-defined precision, recall and F1
// are 0.0.)
#[test]
fn fixture_a_at_half() {
    let (y, p) = fixture_a();
    let m = multilabel_metrics(&y, &p, [0.5; 4]).unwrap();
    check_metrics(
        &m,
        &Expected {
            micro_f1: 0.7027027027027027,
            macro_f1: 0.6041666666666666,
            hamming: 0.275,
            subset_acc: 0.3,
            f1: [0.6666666666666666, 0.0, 0.75, 1.0],
            precision: [0.6, 0.0, 1.0, 1.0],
            recall: [0.75, 0.0, 0.6, 1.0],
            thresholds: [0.5, 0.5, 0.5, 0.5],
        },
        "A fixed_0.5",
    );
    assert_eq!(m.support, [4, 0, 10, 4]);
}

// Python (reference.py, `tune(Y_A, P_A)`: brute force over the candidates with sklearn's
// f1_score, ties -> closest to 0.5 then lower, no positive -> 0.5):
//     cands = sorted(set(pc.astype(np.float64).tolist()) | {0.5})
//     f = f1_score(yc, (pc >= t).astype(np.uint8)); key = (-f, abs(t - 0.5), t)
//     # -> [0.5, 0.5, 0.10000000149011612, 0.5]
// then `thresholded(Y_A, P_A, tuned)`:
//     micro 0.8292682926829268, macro 0.6666666666666666, hamming 0.175, subset 0.4,
//     f1 [0.6666666666666666, 0.0, 1.0, 1.0], precision [0.6, 0.0, 1.0, 1.0],
//     recall [0.75, 0.0, 1.0, 1.0]
// (MA: 0.5 and 0.6 predict the same, so the tie goes to 0.5; HE has no positive and keeps
// 0.5; EX, all positive, takes its lowest score, 0.1f32.)
#[test]
fn fixture_a_tuned() {
    let (y, p) = fixture_a();
    let t = tune_thresholds(&y, &p).unwrap();
    assert_eq!(t, [0.5, 0.5, 0.10000000149011612, 0.5]);
    let m = multilabel_metrics(&y, &p, t).unwrap();
    check_metrics(
        &m,
        &Expected {
            micro_f1: 0.8292682926829268,
            macro_f1: 0.6666666666666666,
            hamming: 0.175,
            subset_acc: 0.4,
            f1: [0.6666666666666666, 0.0, 1.0, 1.0],
            precision: [0.6, 0.0, 1.0, 1.0],
            recall: [0.75, 0.0, 1.0, 1.0],
            thresholds: [0.5, 0.5, 0.10000000149011612, 0.5],
        },
        "A tuned",
    );
}

// Python (reference.py, `ranking(Y_A, P_A)`):
//     roc_auc_score(yc, pc)            # MA 0.7916666666666666, SE 1.0;
//                                      # HE, EX: only one class -> nan (warning) -> None
//     average_precision_score(yc, pc)  # [0.675, 0.0, 1.0, 1.0]
//                                      # (HE has no positive: 0.0 with a warning)
#[test]
fn fixture_a_ranking() {
    let (y, p) = fixture_a();
    close_opt4(
        per_class_roc_auc(&y, &p).unwrap(),
        [Some(0.7916666666666666), None, None, Some(1.0)],
        "A auroc",
    );
    close4(
        per_class_average_precision(&y, &p).unwrap(),
        [0.675, 0.0, 1.0, 1.0],
        "A average_precision",
    );
}

// Python (reference.py, `thresholded(Y_B, P_B, [0.5] * 4)`):
//     micro 0.5, macro 0.4508430166324903, hamming 0.3541666666666667,
//     subset 0.16666666666666666,
//     f1 [0.5263157894736842, 0.6666666666666666, 0.42857142857142855, 0.18181818181818182]
//     precision [0.4166666666666667, 0.5714285714285714, 0.3, 0.1111111111111111]
//     recall [0.7142857142857143, 0.8, 0.75, 0.5]
#[test]
fn fixture_b_at_half() {
    let (y, p) = fixture_b();
    let m = multilabel_metrics(&y, &p, [0.5; 4]).unwrap();
    check_metrics(&m, &expected_b_fixed(), "B fixed_0.5");
    assert_eq!(m.support, [7, 10, 4, 2]);
}

fn expected_b_fixed() -> Expected {
    Expected {
        micro_f1: 0.5,
        macro_f1: 0.4508430166324903,
        hamming: 0.3541666666666667,
        subset_acc: 0.16666666666666666,
        f1: [
            0.5263157894736842,
            0.6666666666666666,
            0.42857142857142855,
            0.18181818181818182,
        ],
        precision: [
            0.4166666666666667,
            0.5714285714285714,
            0.3,
            0.1111111111111111,
        ],
        recall: [0.7142857142857143, 0.8, 0.75, 0.5],
        thresholds: [0.5, 0.5, 0.5, 0.5],
    }
}

// Python (reference.py, `tune(Y_B, P_B)`, then `thresholded(Y_B, P_B, tuned)`):
//     tuned = [0.699999988079071, 0.5, 0.6000000238418579, 0.8999999761581421]
//     micro 0.6274509803921569, macro 0.625, hamming 0.19791666666666666,
//     subset 0.4583333333333333,
//     f1 [0.6666666666666666, 0.6666666666666666, 0.5, 0.6666666666666666]
//     precision [0.8, 0.5714285714285714, 0.375, 1.0]
//     recall [0.5714285714285714, 0.8, 0.75, 0.5]
#[test]
fn fixture_b_tuned() {
    let (y, p) = fixture_b();
    let t = tune_thresholds(&y, &p).unwrap();
    assert_eq!(t, expected_b_tuned().thresholds);
    assert_eq!(
        t,
        [f64::from(0.7f32), 0.5, f64::from(0.6f32), f64::from(0.9f32)]
    );
    let m = multilabel_metrics(&y, &p, t).unwrap();
    check_metrics(&m, &expected_b_tuned(), "B tuned");
}

fn expected_b_tuned() -> Expected {
    Expected {
        micro_f1: 0.6274509803921569,
        macro_f1: 0.625,
        hamming: 0.19791666666666666,
        subset_acc: 0.4583333333333333,
        f1: [
            0.6666666666666666,
            0.6666666666666666,
            0.5,
            0.6666666666666666,
        ],
        precision: [0.8, 0.5714285714285714, 0.375, 1.0],
        recall: [0.5714285714285714, 0.8, 0.75, 0.5],
        thresholds: [
            0.699999988079071,
            0.5,
            0.6000000238418579,
            0.8999999761581421,
        ],
    }
}

// Python (reference.py, `ranking(Y_B, P_B)`):
//     roc_auc_score: [0.8025210084033614, 0.7250000000000001, 0.725, 0.75]
//     average_precision_score: [0.7183473389355741, 0.6857142857142857, 0.34375, 0.5625]
const B_AUROC: [Option<f64>; 4] = [
    Some(0.8025210084033614),
    Some(0.7250000000000001),
    Some(0.725),
    Some(0.75),
];
const B_AP: [f64; 4] = [0.7183473389355741, 0.6857142857142857, 0.34375, 0.5625];

#[test]
fn fixture_b_ranking() {
    let (y, p) = fixture_b();
    close_opt4(per_class_roc_auc(&y, &p).unwrap(), B_AUROC, "B auroc");
    close4(
        per_class_average_precision(&y, &p).unwrap(),
        B_AP,
        "B average_precision",
    );
}

// The whole metrics.json of fixture B with the tuned thresholds equals the pieces above
// (reference.py's `print_fixture("B", Y_B, P_B)`).
#[test]
fn fixture_b_metrics_json() {
    let (y, p) = fixture_b();
    let t = tune_thresholds(&y, &p).unwrap();
    let r = build_metrics_report(&y, &p, t).unwrap();
    check_block(&r.fixed, &expected_b_fixed(), "B report fixed_0.5");
    check_block(&r.tuned, &expected_b_tuned(), "B report tuned");
    close_opt4(r.auroc, B_AUROC, "B report auroc");
    close4(r.average_precision, B_AP, "B report average_precision");
}

// Python (reference.py, `print_binary()`):
//     y, s = np.array(y, dtype=np.uint8), np.array(s, dtype=np.float32)
//     roc_auc_score(y, s)  (None where only one class is present)
//     average_precision_score(y, s)
//   ties:     y [0,0,1,1,0,1,1,0], s [0.5,0.5,0.5,0.2,0.2,0.8,0.8,0.1]
//             -> auroc 0.78125, ap 0.7928571428571428
//   all_tied: y [1,0,1,0,0], s [0.3]*5         -> auroc 0.5, ap 0.4
//   no_pos:   y [0,0,0,0], s [0.1,0.4,0.35,0.8] -> auroc None, ap 0.0
//   all_pos:  y [1,1,1], s [0.2,0.9,0.2]        -> auroc None, ap 1.0
//   reversed: y [1,1,0,0,0], s [0.1,...,0.5]    -> auroc 0.0, ap 0.325
//   one_pos:  y [0,0,1,0,0,0], s [0.9,0.7,0.6,0.6,0.2,0.1] -> auroc 0.5, ap 0.25
#[test]
fn binary_ranking_cases() {
    type Case = (
        &'static str,
        &'static [u8],
        &'static [f32],
        Option<f64>,
        f64,
    );
    let cases: [Case; 6] = [
        (
            "ties",
            &[0, 0, 1, 1, 0, 1, 1, 0],
            &[0.5, 0.5, 0.5, 0.2, 0.2, 0.8, 0.8, 0.1],
            Some(0.78125),
            0.7928571428571428,
        ),
        ("all_tied", &[1, 0, 1, 0, 0], &[0.3; 5], Some(0.5), 0.4),
        ("no_pos", &[0, 0, 0, 0], &[0.1, 0.4, 0.35, 0.8], None, 0.0),
        ("all_pos", &[1, 1, 1], &[0.2, 0.9, 0.2], None, 1.0),
        (
            "reversed",
            &[1, 1, 0, 0, 0],
            &[0.1, 0.2, 0.3, 0.4, 0.5],
            Some(0.0),
            0.325,
        ),
        (
            "one_pos",
            &[0, 0, 1, 0, 0, 0],
            &[0.9, 0.7, 0.6, 0.6, 0.2, 0.1],
            Some(0.5),
            0.25,
        ),
    ];
    for (name, y, s, auroc, ap) in cases {
        match (roc_auc(y, s).unwrap(), auroc) {
            (Some(g), Some(w)) => close(g, w, &format!("{name} auroc")),
            (None, None) => {}
            (g, w) => panic!("{name} auroc: got {g:?}, sklearn {w:?}"),
        }
        close(average_precision(y, s).unwrap(), ap, &format!("{name} ap"));
    }
}
