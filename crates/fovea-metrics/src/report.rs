//! `metrics.json` of `fovea eval` (CONTRACTS 4):
//!
//! ```json
//! {"fixed_0.5": M, "tuned": M, "auroc": [4], "average_precision": [4]}
//! ```
//!
//! with `M = {"micro_f1", "macro_f1", "hamming", "subset_acc", "f1": [4], "precision": [4],
//! "recall": [4], "thresholds": [4]}`, arrays in lesion order MA, HE, EX, SE. `fixed_0.5`
//! uses 0.5 for every class, `tuned` the thresholds of `thresholds.json`. An undefined
//! AUROC (a class with only one label value in the split) is `null`; AP of a class with no
//! positive is 0.0 (see [`crate::ranking`]). Everything in the file is computable from
//! `predictions.csv` and `thresholds.json` alone, which [`build_metrics_report`] does.
//!
//! Readers ignore unknown fields, so a later version may add fields without breaking them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::f1::{multilabel_metrics, MultiLabelMetrics};
use crate::ranking::{per_class_average_precision, per_class_roc_auc};
use crate::thresholds::DEFAULT_THRESHOLD;
use crate::NUM_CLASSES;

/// The `M` block of `metrics.json`: thresholded metrics at the listed thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdedMetrics {
    /// F1 of the counts pooled over the four classes.
    pub micro_f1: f64,
    /// Mean of the per-class F1 values.
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
    /// Per-class thresholds (predict positive when `p >= t`).
    pub thresholds: [f64; NUM_CLASSES],
}

impl From<&MultiLabelMetrics> for ThresholdedMetrics {
    fn from(m: &MultiLabelMetrics) -> Self {
        ThresholdedMetrics {
            micro_f1: m.micro_f1,
            macro_f1: m.macro_f1,
            hamming: m.hamming,
            subset_acc: m.subset_acc,
            f1: m.f1,
            precision: m.precision,
            recall: m.recall,
            thresholds: m.thresholds,
        }
    }
}

/// The whole `metrics.json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Metrics at threshold 0.5 for every class (JSON key `fixed_0.5`).
    #[serde(rename = "fixed_0.5")]
    pub fixed: ThresholdedMetrics,
    /// Metrics at the tuned per-class thresholds.
    pub tuned: ThresholdedMetrics,
    /// Per-class AUROC; `None` (`null`) where only one label value is present.
    pub auroc: [Option<f64>; NUM_CLASSES],
    /// Per-class average precision.
    pub average_precision: [f64; NUM_CLASSES],
}

/// Builds `metrics.json` from truth, sigmoid probabilities and the tuned thresholds (those
/// of `thresholds.json`).
///
/// Errors: lengths differ, no samples, a label not 0/1, a NaN probability or threshold.
pub fn build_metrics_report(
    truth: &[[u8; NUM_CLASSES]],
    probs: &[[f32; NUM_CLASSES]],
    tuned: [f64; NUM_CLASSES],
) -> Result<MetricsReport> {
    let fixed = multilabel_metrics(truth, probs, [DEFAULT_THRESHOLD; NUM_CLASSES])?;
    let tuned = multilabel_metrics(truth, probs, tuned)?;
    Ok(MetricsReport {
        fixed: (&fixed).into(),
        tuned: (&tuned).into(),
        auroc: per_class_roc_auc(truth, probs)?,
        average_precision: per_class_average_precision(truth, probs)?,
    })
}

impl MetricsReport {
    /// Pretty-printed JSON (no trailing newline).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain numbers and arrays always serialise")
    }

    /// Parses a `metrics.json` document.
    pub fn from_json_str(s: &str) -> Result<MetricsReport> {
        let json = |source| MetricsError::Json {
            what: "metrics.json",
            source,
        };
        // Through a map first: the derived impl would also accept a JSON array.
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(s).map_err(json)?;
        serde_json::from_value(map.into()).map_err(json)
    }

    /// Writes the pretty-printed document plus a newline to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_json_string() + "\n";
        fovea_data::write_atomic(path, text.as_bytes()).map_err(MetricsError::from)
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<MetricsReport> {
        let s = std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        MetricsReport::from_json_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (Vec<[u8; 4]>, Vec<[f32; 4]>) {
        let truth = vec![[1, 0, 1, 1], [0, 0, 1, 0], [1, 0, 1, 0], [0, 0, 1, 1]];
        let probs = vec![
            [0.9, 0.6, 0.8, 0.7],
            [0.6, 0.1, 0.3, 0.2],
            [0.4, 0.2, 0.6, 0.1],
            [0.1, 0.3, 0.9, 0.8],
        ];
        (truth, probs)
    }

    #[test]
    fn json_has_exactly_the_contract_keys() {
        let (truth, probs) = example();
        let r = build_metrics_report(&truth, &probs, [0.4, 0.5, 0.3, 0.5]).unwrap();
        let text = r.to_json_string();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Keys present, nothing else, in the contract's order in the text.
        let in_order = |obj: &serde_json::Value, keys: &[&str]| {
            assert_eq!(obj.as_object().unwrap().len(), keys.len());
            let pos: Vec<usize> = keys
                .iter()
                .map(|k| {
                    text.find(&format!("\"{k}\""))
                        .unwrap_or_else(|| panic!("{k} missing"))
                })
                .collect();
            assert!(
                pos.windows(2).all(|w| w[0] < w[1]),
                "{keys:?} out of order in {text}"
            );
        };
        in_order(&v, &["fixed_0.5", "tuned", "auroc", "average_precision"]);
        let m_keys = [
            "micro_f1",
            "macro_f1",
            "hamming",
            "subset_acc",
            "f1",
            "precision",
            "recall",
            "thresholds",
        ];
        in_order(&v["fixed_0.5"], &m_keys);
        for block in ["fixed_0.5", "tuned"] {
            assert_eq!(v[block].as_object().unwrap().len(), m_keys.len());
            for k in ["f1", "precision", "recall", "thresholds"] {
                assert_eq!(v[block][k].as_array().unwrap().len(), 4);
            }
        }
        assert_eq!(
            v["fixed_0.5"]["thresholds"],
            serde_json::json!([0.5, 0.5, 0.5, 0.5])
        );
        assert_eq!(
            v["tuned"]["thresholds"],
            serde_json::json!([0.4, 0.5, 0.3, 0.5])
        );
        // HE has no positive, EX no negative: AUROC null, AP 0 and 1.
        assert_eq!(v["auroc"][1], serde_json::Value::Null);
        assert_eq!(v["auroc"][2], serde_json::Value::Null);
        assert_eq!(v["average_precision"][1], 0.0);
        assert_eq!(v["average_precision"][2], 1.0);
    }

    #[test]
    fn report_matches_its_parts() {
        let (truth, probs) = example();
        let tuned = [0.4, 0.5, 0.3, 0.5];
        let r = build_metrics_report(&truth, &probs, tuned).unwrap();
        let m = multilabel_metrics(&truth, &probs, tuned).unwrap();
        assert_eq!(r.tuned, ThresholdedMetrics::from(&m));
        let m = multilabel_metrics(&truth, &probs, [0.5; 4]).unwrap();
        assert_eq!(r.fixed, ThresholdedMetrics::from(&m));
        assert_eq!(r.auroc, per_class_roc_auc(&truth, &probs).unwrap());
        // MA: 0.9 (+), 0.6 (-), 0.4 (+), 0.1 (-) -> 3 of 4 pairs right.
        assert_eq!(r.auroc[0], Some(0.75));
        assert_eq!(r.auroc[3], Some(1.0));
    }

    #[test]
    fn round_trips_through_a_file() {
        let (truth, probs) = example();
        let r = build_metrics_report(&truth, &probs, [0.5; 4]).unwrap();
        let dir = std::env::temp_dir().join(format!("fovea-metrics-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.json");
        r.write(&path).unwrap();
        assert_eq!(MetricsReport::read(&path).unwrap(), r);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_or_missing_is_an_error() {
        assert!(matches!(
            MetricsReport::from_json_str("{\"tuned\": 1}"),
            Err(MetricsError::Json { .. })
        ));
        assert!(MetricsReport::from_json_str("[]").is_err());
        assert!(MetricsReport::from_json_str("").is_err());
        let e = MetricsReport::read(Path::new("/nonexistent/fovea/metrics.json")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/fovea/metrics.json: "));
    }

    #[test]
    fn build_errors() {
        assert!(matches!(
            build_metrics_report(&[], &[], [0.5; 4]),
            Err(MetricsError::Empty)
        ));
        let (truth, probs) = example();
        assert!(build_metrics_report(&truth, &probs, [f64::NAN; 4]).is_err());
    }
}
