//! The training run's per-epoch logs: `RUN/metrics.csv` (CONTRACTS 3, one row per epoch
//! and split) and `RUN/val_ranking.csv` (validation AP, AUROC and prevalence per lesion and
//! epoch; `NaN` where undefined). Columns are found by name, so added columns are fine;
//! a missing column, a bad number or a short row is an error naming the file and line.

use std::path::Path;

use fovea_metrics::{MetricsCsvRow, NUM_CLASSES};

use crate::csv::Table;
use crate::error::Result;
use crate::fsio::read_text;

/// Lower-case lesion suffixes of the CSV columns, in lesion order.
pub const SUFFIXES: [&str; NUM_CLASSES] = ["ma", "he", "ex", "se"];

/// One row of `val_ranking.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct RankingRow {
    /// Epoch (1-based, as in metrics.csv).
    pub epoch: usize,
    /// Validation average precision per lesion.
    pub ap: [f64; NUM_CLASSES],
    /// Validation AUROC per lesion (`NaN` where only one label value is present).
    pub auroc: [f64; NUM_CLASSES],
    /// Fraction of positive validation patches per lesion (a random scorer's AP).
    pub prevalence: [f64; NUM_CLASSES],
}

/// `name_ma, name_he, name_ex, name_se`.
fn per_lesion(name: &str) -> [String; NUM_CLASSES] {
    SUFFIXES.map(|s| format!("{name}_{s}"))
}

/// Indices of the four per-lesion columns `name_*`.
fn lesion_columns(t: &Table, name: &str) -> Result<[usize; NUM_CLASSES]> {
    let n = per_lesion(name);
    t.columns([&n[0], &n[1], &n[2], &n[3]].map(String::as_str))
}

/// Four floats of a row.
fn floats(t: &Table, line: usize, f: &[String], cols: [usize; 4]) -> Result<[f64; 4]> {
    Ok([
        t.float(line, f, cols[0])?,
        t.float(line, f, cols[1])?,
        t.float(line, f, cols[2])?,
        t.float(line, f, cols[3])?,
    ])
}

/// Parses the text of a `metrics.csv` read from `path`.
pub fn parse_metrics_csv(path: &Path, text: &str) -> Result<Vec<MetricsCsvRow>> {
    let t = Table::parse(path, text)?;
    let [epoch, split, loss, micro, macro_, hamming, subset] = t.columns([
        "epoch",
        "split",
        "loss",
        "micro_f1",
        "macro_f1",
        "hamming",
        "subset_acc",
    ])?;
    let (f1, precision, recall) = (
        lesion_columns(&t, "f1")?,
        lesion_columns(&t, "precision")?,
        lesion_columns(&t, "recall")?,
    );
    t.rows
        .iter()
        .map(|(line, f)| {
            let line = *line;
            Ok(MetricsCsvRow {
                epoch: t.uint(line, f, epoch)? as usize,
                split: f[split].trim().to_string(),
                loss: t.float(line, f, loss)?,
                micro_f1: t.float(line, f, micro)?,
                macro_f1: t.float(line, f, macro_)?,
                hamming: t.float(line, f, hamming)?,
                subset_acc: t.float(line, f, subset)?,
                f1: floats(&t, line, f, f1)?,
                precision: floats(&t, line, f, precision)?,
                recall: floats(&t, line, f, recall)?,
            })
        })
        .collect()
}

/// Reads `metrics.csv`.
pub fn read_metrics_csv(path: &Path) -> Result<Vec<MetricsCsvRow>> {
    parse_metrics_csv(path, &read_text(path)?)
}

/// Parses the text of a `val_ranking.csv` read from `path`.
pub fn parse_val_ranking(path: &Path, text: &str) -> Result<Vec<RankingRow>> {
    let t = Table::parse(path, text)?;
    let [epoch] = t.columns(["epoch"])?;
    let (ap, auroc, prevalence) = (
        lesion_columns(&t, "ap")?,
        lesion_columns(&t, "auroc")?,
        lesion_columns(&t, "prevalence")?,
    );
    t.rows
        .iter()
        .map(|(line, f)| {
            let line = *line;
            Ok(RankingRow {
                epoch: t.uint(line, f, epoch)? as usize,
                ap: floats(&t, line, f, ap)?,
                auroc: floats(&t, line, f, auroc)?,
                prevalence: floats(&t, line, f, prevalence)?,
            })
        })
        .collect()
}

/// Reads `val_ranking.csv`.
pub fn read_val_ranking(path: &Path) -> Result<Vec<RankingRow>> {
    parse_val_ranking(path, &read_text(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fovea_metrics::METRICS_CSV_HEADER;

    #[test]
    fn reads_rows_by_column_name() {
        let text = format!(
            "{METRICS_CSV_HEADER},extra\n1,train,0.5,0.1,0.2,0.3,0.4,1,2,3,4,5,6,7,8,9,10,11,12,x\n"
        );
        let rows = parse_metrics_csv(Path::new("m.csv"), &text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].epoch, rows[0].split.as_str()), (1, "train"));
        assert_eq!(rows[0].macro_f1, 0.2);
        assert_eq!(rows[0].recall, [9.0, 10.0, 11.0, 12.0]);
    }

    #[test]
    fn malformed_metrics_name_file_line_and_column() {
        let p = Path::new("/run/metrics.csv");
        let text = format!("{METRICS_CSV_HEADER}\n1,val,abc,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n");
        let e = parse_metrics_csv(p, &text).unwrap_err().to_string();
        assert_eq!(e, "/run/metrics.csv: line 2: loss: \"abc\" is not a number");
        let e = parse_metrics_csv(p, "epoch,split\n1,val\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/run/metrics.csv: no column 'loss' in the header");
    }

    #[test]
    fn ranking_accepts_nan() {
        let text = "epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,\
prevalence_ma,prevalence_he,prevalence_ex,prevalence_se\n\
2,0.1,0.2,0.3,0.4,NaN,0.6,0.7,0.8,0.01,0.02,0.03,0.04\n";
        let r = parse_val_ranking(Path::new("v.csv"), text).unwrap();
        assert_eq!(r[0].epoch, 2);
        assert!(r[0].auroc[0].is_nan());
        assert_eq!(r[0].prevalence[3], 0.04);
    }
}
