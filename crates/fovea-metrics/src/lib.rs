//! Metrics for Fovea's multi-label lesion classifier and its lesion maps.
//!
//! Every multi-label function works on the four lesions in the fixed order
//! [`LESIONS`] = MA, HE, EX, SE: truth is `&[[u8; 4]]` (0/1 per lesion), probabilities are
//! `&[[f32; 4]]` (sigmoid outputs), thresholds are `[f64; 4]` and a sample is predicted
//! positive for a lesion when `p as f64 >= t`.
//!
//! | module | concern |
//! |---|---|
//! | [`confusion`] | TP/FP/FN/TN counts per class, input validation |
//! | [`ratios`] | precision / recall / F1 from counts (zero division is 0.0) |
//! | [`f1`] | F1 / precision / recall / Hamming / subset accuracy at thresholds |
//! | [`ranking`] | exact per-class AUROC and average precision (scikit-learn's definitions) |
//! | [`thresholds`] | per-class threshold tuning on a validation split |
//! | [`report`] | `metrics.json` (CONTRACTS 4) |
//! | [`thresholds_file`] | `thresholds.json` (CONTRACTS 3) |
//! | [`csv_row`] | `metrics.csv` rows (CONTRACTS 3) |
//! | [`histogram`] | streaming, binned pixel-level AP / AUROC for lesion maps |
//!
//! The definitions (zero-division rules, tie handling, undefined cases) follow
//! scikit-learn's defaults and are checked against it in `tests/sklearn_reference.rs`,
//! whose values `tests/reference.py` produces. No function here panics on bad input
//! (NaN scores, labels other than 0/1, mismatched lengths, malformed files): they return
//! [`MetricsError`].

pub mod confusion;
pub mod csv_row;
pub mod error;
pub mod f1;
pub mod histogram;
pub mod ranking;
pub mod ratios;
pub mod report;
pub mod thresholds;
pub mod thresholds_file;

pub use confusion::{multilabel_confusion, ClassCounts, MultiLabelConfusion};
pub use csv_row::{shortest, MetricsCsvRow, METRICS_CSV_HEADER};
pub use error::{MetricsError, Result};
pub use f1::{
    f1_from_counts, multilabel_metrics, precision_from_counts, recall_from_counts,
    MultiLabelMetrics,
};
pub use histogram::{ScoreHistogram, DEFAULT_BINS};
pub use ranking::{average_precision, per_class_average_precision, per_class_roc_auc, roc_auc};
pub use report::{build_metrics_report, MetricsReport, ThresholdedMetrics};
pub use thresholds::{tune_threshold, tune_thresholds, DEFAULT_THRESHOLD};
pub use thresholds_file::ThresholdsFile;

/// Number of lesion classes ([`fovea_data::NUM_LESIONS`]).
pub const NUM_CLASSES: usize = fovea_data::NUM_LESIONS;

/// Lesion codes in Fovea's fixed order, MA, HE, EX, SE ([`fovea_data::LESION_CODES`]).
pub const LESIONS: [&str; NUM_CLASSES] = fovea_data::LESION_CODES;
