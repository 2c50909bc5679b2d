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

use crate::error::{MetricsError, Result};
use crate::f1::MultiLabelMetrics;
use crate::NUM_CLASSES;

/// Header of `metrics.csv`, without line terminator.
pub const METRICS_CSV_HEADER: &str = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,\
f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,\
recall_ma,recall_he,recall_ex,recall_se";

/// Number of columns of [`METRICS_CSV_HEADER`].
const COLUMNS: usize = 19;

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

    /// The row as one CSV line in header order, without line terminator.
    pub fn to_csv_line(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        // Serialising numbers and a string into memory cannot fail.
        let _ = w.serialize(self);
        let bytes = w.into_inner().unwrap_or_default();
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if s.ends_with('\n') {
            s.pop();
        }
        s
    }

    /// Parses a line as [`Self::to_csv_line`] writes it (a trailing `\r`/`\n` and extra
    /// trailing columns are ignored). Errors on too few columns (an unterminated quote
    /// swallows the rest of the line) or a bad number; quoting is read as the csv crate
    /// reads it (leniently: `"a"b` is `ab`).
    pub fn parse_csv_line(line: &str) -> Result<MetricsCsvRow> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line.as_bytes());
        let mut record = csv::StringRecord::new();
        match r.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Err(csv_err("0 columns, expected 19".into())),
            Err(e) => return Err(csv_err(e.to_string())),
        }
        if record.len() < COLUMNS {
            return Err(csv_err(format!(
                "{} columns, expected {COLUMNS}",
                record.len()
            )));
        }
        record.trim();
        record.deserialize(None).map_err(|e| {
            let csv::ErrorKind::Deserialize { err, .. } = e.kind() else {
                return csv_err(e.to_string());
            };
            let field = err.field().map(|i| i as usize);
            let col = field
                .and_then(|i| METRICS_CSV_HEADER.split(',').nth(i))
                .unwrap_or("?");
            let value = field.and_then(|i| record.get(i)).unwrap_or("");
            let expected = match err.kind() {
                csv::DeserializeErrorKind::ParseInt(_) => "an integer",
                _ => "a number",
            };
            csv_err(format!("{col}: {value:?} is not {expected}"))
        })
    }
}

fn csv_err(reason: String) -> MetricsError {
    MetricsError::Csv { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::f1::multilabel_metrics;

    fn row() -> MetricsCsvRow {
        MetricsCsvRow {
            epoch: 3,
            split: "val".into(),
            loss: 0.125,
            micro_f1: 2.0 / 3.0,
            macro_f1: 0.5,
            hamming: 0.25,
            subset_acc: 0.0,
            f1: [1.0, 0.0, 0.5, 0.1],
            precision: [0.2, 0.3, 0.4, 0.5],
            recall: [0.6, 0.7, 0.8, 0.9],
        }
    }

    #[test]
    fn header_is_the_contract() {
        let cols: Vec<&str> = METRICS_CSV_HEADER.split(',').collect();
        assert_eq!(cols.len(), COLUMNS);
        // Copied from CONTRACTS.md section 3.
        let contract = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,recall_ma,recall_he,recall_ex,recall_se";
        assert_eq!(METRICS_CSV_HEADER, contract);
    }

    #[test]
    fn line_layout_and_round_trip() {
        let r = row();
        let line = r.to_csv_line();
        assert_eq!(
            line,
            "3,val,0.125,0.6666666666666666,0.5,0.25,0,1,0,0.5,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
        );
        assert_eq!(line.split(',').count(), COLUMNS);
        assert_eq!(MetricsCsvRow::parse_csv_line(&line).unwrap(), r);
        assert_eq!(
            MetricsCsvRow::parse_csv_line(&(line.clone() + "\r\n")).unwrap(),
            r
        );
        assert_eq!(
            MetricsCsvRow::parse_csv_line(&(line + ",extra")).unwrap(),
            r
        );
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
        assert!(r.to_csv_line().starts_with("1,train,0.7,"));
    }

    #[test]
    fn non_finite_loss_and_odd_split_names() {
        let mut r = row();
        r.loss = f64::NAN;
        r.split = "a,\"b\"".into();
        let line = r.to_csv_line();
        assert!(line.starts_with("3,\"a,\"\"b\"\"\",NaN,"));
        let back = MetricsCsvRow::parse_csv_line(&line).unwrap();
        assert!(back.loss.is_nan());
        assert_eq!(back.split, r.split);
        r.loss = f64::INFINITY;
        assert_eq!(
            MetricsCsvRow::parse_csv_line(&r.to_csv_line())
                .unwrap()
                .loss,
            f64::INFINITY
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        let good = row().to_csv_line();
        let bad = [
            String::new(),
            "3,val,0.1".to_string(),
            good.replacen("3,", "x,", 1),
            good.replacen("0.125", "abc", 1),
            good.replacen("val", "\"val", 1),
        ];
        for line in bad {
            let e = MetricsCsvRow::parse_csv_line(&line).unwrap_err();
            assert!(
                e.to_string().starts_with("malformed metrics.csv row: "),
                "{line}: {e}"
            );
        }
    }
}
