//! Rows of `metrics.csv` of a training run (CONTRACTS 3): one row per epoch and split,
//! columns [`METRICS_CSV_HEADER`]. [`MetricsCsvRow`] is (de)serialised with serde for the
//! csv crate, one column per field, in header order; the run-folder crate (`fovea-run`)
//! reads and writes whole files of it.
//!
//! Numbers are written with Rust's shortest round-trip formatting (`0.5`, `1`,
//! `0.6666666666666666`, what `Display` prints; the csv crate's own float formatting would
//! print `1.0`), so a row parses back to the same values; a non-finite loss is written
//! `NaN` / `inf` / `-inf`, which pandas and numpy read as floats. The split name is quoted
//! RFC-4180 style only if it holds a comma, a quote or a line break.

use serde::{Deserialize, Serialize, Serializer};

use crate::f1::MultiLabelMetrics;
use crate::NUM_CLASSES;

/// Header of `metrics.csv`, without line terminator.
pub const METRICS_CSV_HEADER: &str = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,\
f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,\
recall_ma,recall_he,recall_ex,recall_se";

/// Serialises a number as `Display` prints it (shortest round trip; `NaN`, `inf`), for
/// `#[serde(serialize_with = "...")]` on the float columns of Fovea's CSV files.
pub fn shortest<T: std::fmt::Display, S: Serializer>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Record", from = "Record")]
pub struct MetricsCsvRow {
    /// Epoch number, as the training loop counts it.
    pub epoch: usize,
    /// Split name (`train`, `val`, `test`).
    pub split: String,
    /// Mean loss over the split.
    pub loss: f64,
    /// Micro F1.
    pub micro_f1: f64,
    /// Macro F1.
    pub macro_f1: f64,
    /// Hamming loss.
    pub hamming: f64,
    /// Subset accuracy.
    pub subset_acc: f64,
    /// Per-class F1, lesion order.
    pub f1: [f64; NUM_CLASSES],
    /// Per-class precision, lesion order.
    pub precision: [f64; NUM_CLASSES],
    /// Per-class recall, lesion order.
    pub recall: [f64; NUM_CLASSES],
}

/// The flat wire form of [`MetricsCsvRow`]: field names are the column names.
#[derive(Serialize, Deserialize)]
struct Record {
    epoch: usize,
    split: String,
    #[serde(serialize_with = "shortest")]
    loss: f64,
    #[serde(serialize_with = "shortest")]
    micro_f1: f64,
    #[serde(serialize_with = "shortest")]
    macro_f1: f64,
    #[serde(serialize_with = "shortest")]
    hamming: f64,
    #[serde(serialize_with = "shortest")]
    subset_acc: f64,
    #[serde(serialize_with = "shortest")]
    f1_ma: f64,
    #[serde(serialize_with = "shortest")]
    f1_he: f64,
    #[serde(serialize_with = "shortest")]
    f1_ex: f64,
    #[serde(serialize_with = "shortest")]
    f1_se: f64,
    #[serde(serialize_with = "shortest")]
    precision_ma: f64,
    #[serde(serialize_with = "shortest")]
    precision_he: f64,
    #[serde(serialize_with = "shortest")]
    precision_ex: f64,
    #[serde(serialize_with = "shortest")]
    precision_se: f64,
    #[serde(serialize_with = "shortest")]
    recall_ma: f64,
    #[serde(serialize_with = "shortest")]
    recall_he: f64,
    #[serde(serialize_with = "shortest")]
    recall_ex: f64,
    #[serde(serialize_with = "shortest")]
    recall_se: f64,
}

impl From<MetricsCsvRow> for Record {
    fn from(r: MetricsCsvRow) -> Record {
        let [f1_ma, f1_he, f1_ex, f1_se] = r.f1;
        let [precision_ma, precision_he, precision_ex, precision_se] = r.precision;
        let [recall_ma, recall_he, recall_ex, recall_se] = r.recall;
        Record {
            epoch: r.epoch,
            split: r.split,
            loss: r.loss,
            micro_f1: r.micro_f1,
            macro_f1: r.macro_f1,
            hamming: r.hamming,
            subset_acc: r.subset_acc,
            f1_ma,
            f1_he,
            f1_ex,
            f1_se,
            precision_ma,
            precision_he,
            precision_ex,
            precision_se,
            recall_ma,
            recall_he,
            recall_ex,
            recall_se,
        }
    }
}

impl From<Record> for MetricsCsvRow {
    fn from(r: Record) -> MetricsCsvRow {
        MetricsCsvRow {
            epoch: r.epoch,
            split: r.split,
            loss: r.loss,
            micro_f1: r.micro_f1,
            macro_f1: r.macro_f1,
            hamming: r.hamming,
            subset_acc: r.subset_acc,
            f1: [r.f1_ma, r.f1_he, r.f1_ex, r.f1_se],
            precision: [
                r.precision_ma,
                r.precision_he,
                r.precision_ex,
                r.precision_se,
            ],
            recall: [r.recall_ma, r.recall_he, r.recall_ex, r.recall_se],
        }
    }
}

impl MetricsCsvRow {
    /// A row from thresholded metrics (whichever thresholds the caller used for them).
    pub fn new(epoch: usize, split: impl Into<String>, loss: f64, m: &MultiLabelMetrics) -> Self {
        MetricsCsvRow {
            epoch,
            split: split.into(),
            loss,
            micro_f1: m.micro_f1,
            macro_f1: m.macro_f1,
            hamming: m.hamming,
            subset_acc: m.subset_acc,
            f1: m.f1,
            precision: m.precision,
            recall: m.recall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::f1::multilabel_metrics;

    #[test]
    fn header_is_the_contract() {
        let cols: Vec<&str> = METRICS_CSV_HEADER.split(',').collect();
        assert_eq!(cols.len(), 19);
        // Copied from CONTRACTS.md section 3.
        let contract = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,recall_ma,recall_he,recall_ex,recall_se";
        assert_eq!(METRICS_CSV_HEADER, contract);
    }

    #[test]
    fn from_metrics() {
        let truth = [[1, 0, 1, 0], [0, 1, 1, 0]];
        let probs = [[0.9, 0.2, 0.5, 0.1], [0.6, 0.8, 0.4, 0.0]];
        let m = multilabel_metrics(&truth, &probs, [0.5; 4]).unwrap();
        let r = MetricsCsvRow::new(1, "train", 0.7, &m);
        assert_eq!(r.f1, m.f1);
        assert_eq!(r.recall, m.recall);
        assert_eq!(r.micro_f1, m.micro_f1);
    }
}
