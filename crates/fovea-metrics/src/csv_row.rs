//! Rows of `metrics.csv` of a training run (CONTRACTS 3): one row per epoch and split,
//! columns [`METRICS_CSV_HEADER`].
//!
//! Numbers are written with Rust's shortest round-trip formatting (`0.5`, `1`,
//! `0.6666666666666666`), so a row parses back to the same values; a non-finite loss is
//! written `NaN` / `inf` / `-inf`, which pandas and numpy read as floats. The split name is
//! quoted RFC-4180 style only if it holds a comma, a quote or a line break. Lines carry no
//! line terminator: the caller appends `\n`.

use crate::error::{MetricsError, Result};
use crate::f1::MultiLabelMetrics;
use crate::NUM_CLASSES;

/// Header of `metrics.csv`, without line terminator.
pub const METRICS_CSV_HEADER: &str = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,\
f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,\
recall_ma,recall_he,recall_ex,recall_se";

/// Number of columns of [`METRICS_CSV_HEADER`].
const COLUMNS: usize = 19;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
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
        let mut fields: Vec<String> = Vec::with_capacity(COLUMNS);
        fields.push(self.epoch.to_string());
        fields.push(quote(&self.split));
        for x in [
            self.loss,
            self.micro_f1,
            self.macro_f1,
            self.hamming,
            self.subset_acc,
        ] {
            fields.push(x.to_string());
        }
        for arr in [&self.f1, &self.precision, &self.recall] {
            fields.extend(arr.iter().map(f64::to_string));
        }
        fields.join(",")
    }

    /// Parses a line as [`Self::to_csv_line`] writes it (a trailing `\r`/`\n` and extra
    /// trailing columns are ignored). Errors on too few columns, a bad number or a bad
    /// quote.
    pub fn parse_csv_line(line: &str) -> Result<MetricsCsvRow> {
        let line = line.trim_end_matches(['\r', '\n']);
        let fields = split_fields(line)?;
        if fields.len() < COLUMNS {
            return Err(csv_err(format!(
                "{} columns, expected {COLUMNS}",
                fields.len()
            )));
        }
        let header: Vec<&str> = METRICS_CSV_HEADER.split(',').collect();
        let num = |i: usize| -> Result<f64> {
            fields[i]
                .trim()
                .parse::<f64>()
                .map_err(|_| csv_err(format!("{}: {:?} is not a number", header[i], fields[i])))
        };
        let arr = |start: usize| -> Result<[f64; NUM_CLASSES]> {
            Ok([
                num(start)?,
                num(start + 1)?,
                num(start + 2)?,
                num(start + 3)?,
            ])
        };
        let epoch = fields[0]
            .trim()
            .parse::<usize>()
            .map_err(|_| csv_err(format!("epoch: {:?} is not an integer", fields[0])))?;
        Ok(MetricsCsvRow {
            epoch,
            split: fields[1].clone(),
            loss: num(2)?,
            micro_f1: num(3)?,
            macro_f1: num(4)?,
            hamming: num(5)?,
            subset_acc: num(6)?,
            f1: arr(7)?,
            precision: arr(11)?,
            recall: arr(15)?,
        })
    }
}

fn csv_err(reason: String) -> MetricsError {
    MetricsError::Csv { reason }
}

/// Quotes a field if it holds a comma, a quote or a line break.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line into fields, undoing RFC-4180 quoting.
fn split_fields(line: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(ch) = chars.next() {
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err(csv_err("text after a closing quote".into()));
                    }
                }
            } else {
                field.push(ch);
            }
        } else if ch == ',' {
            fields.push(std::mem::take(&mut field));
            at_field_start = true;
            continue;
        } else if ch == '"' && at_field_start {
            quoted = true;
        } else if ch == '"' {
            return Err(csv_err("a quote inside an unquoted field".into()));
        } else {
            field.push(ch);
        }
        at_field_start = false;
    }
    if quoted {
        return Err(csv_err("unterminated quote".into()));
    }
    fields.push(field);
    Ok(fields)
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
            good.replacen("val", "\"val\"x", 1),
            good.replacen("val", "v\"al", 1),
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
