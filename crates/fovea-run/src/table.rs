//! Reading and writing a whole CSV table of rows with the csv crate and serde.
//!
//! Writing: the header given, then one serialised row per line (`\n` line ends), into a
//! temporary file renamed over the target ([`fovea_data::fsio`]). Reading: columns are
//! found by name, so added columns are ignored and a reordered file still reads; blank
//! lines are skipped and fields trimmed. A missing column, a field that is not what its
//! column needs, or a row with a different number of fields than the header is an error
//! naming the file, the line (1-based, the header is line 1) and the column.

use std::path::Path;

use csv::{DeserializeErrorKind, StringRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, RunError};

/// Writes `header` then `rows` to `path` atomically (the folder must exist).
pub fn write_csv<T: Serialize>(path: &Path, header: &str, rows: &[T]) -> Result<()> {
    fovea_data::fsio::write_atomic_with(path, |w| {
        w.write_all(header.as_bytes())?;
        w.write_all(b"\n")?;
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(w);
        for row in rows {
            csv.serialize(row)?;
        }
        csv.flush()
    })?;
    Ok(())
}

/// One row as [`write_csv`] writes it, without the line end (for a table kept as lines,
/// e.g. in a training checkpoint's `state.json`).
pub fn to_line<T: Serialize>(row: &T) -> std::result::Result<String, csv::Error> {
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    csv.serialize(row)?;
    let bytes = csv.into_inner().map_err(|e| e.into_error())?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// Rows kept as lines (made by [`to_line`]) under `header`; `path` is the file they were
/// read from, named in errors.
pub fn parse_lines<T: DeserializeOwned>(
    path: &Path,
    header: &str,
    lines: &[String],
) -> Result<Vec<T>> {
    let mut text = String::from(header);
    for l in lines {
        text.push('\n');
        text += l;
    }
    text.push('\n');
    parse_csv(path, text.as_bytes())
}

/// Reads every row of the CSV file at `path`.
pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read(path).map_err(|e| fovea_data::FileError::new(path, e))?;
    parse_csv(path, &text)
}

/// Parses the bytes of a CSV file read from `path` (named in errors).
pub fn parse_csv<T: DeserializeOwned>(path: &Path, text: &[u8]) -> Result<Vec<T>> {
    let bad = |reason: String| RunError::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let header = reader.headers().map_err(|e| bad(csv_reason(&e)))?.clone();
    if header.iter().all(str::is_empty) {
        return Err(bad("empty file: no header line".into()));
    }
    let mut rows = Vec::new();
    let mut record = StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(bad(csv_reason(&e))),
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = record
            .deserialize(Some(&header))
            .map_err(|e| bad(field_reason(&e, &header, &record, line)))?;
        rows.push(row);
    }
    Ok(rows)
}

/// The reason of a reading error (unequal row lengths, bad UTF-8), with its line.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} fields, but the header has {expected_len}",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        _ => match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        },
    }
}

/// The reason a row did not deserialise: the line, the column and what it needs.
fn field_reason(e: &csv::Error, header: &StringRecord, record: &StringRecord, line: u64) -> String {
    let csv::ErrorKind::Deserialize { err, .. } = e.kind() else {
        return format!("line {line}: {e}");
    };
    let field = err.field().map(|i| i as usize);
    let column = field.and_then(|i| header.get(i)).unwrap_or("?");
    let value = field.and_then(|i| record.get(i)).unwrap_or("");
    match err.kind() {
        DeserializeErrorKind::ParseFloat(_) => {
            format!("line {line}: {column}: {value:?} is not a number")
        }
        DeserializeErrorKind::ParseInt(_) => {
            format!("line {line}: {column}: {value:?} is not a non-negative integer")
        }
        DeserializeErrorKind::Message(m) if m.starts_with("missing field") => {
            let name = m.trim_start_matches("missing field ").trim_matches('`');
            format!("no column '{name}' in the header")
        }
        DeserializeErrorKind::Message(m) => format!("line {line}: {m}"),
        _ => format!("line {line}: {column}: {}", err.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{PredictionRow, RankingRow, PREDICTIONS_CSV_HEADER};
    use fovea_metrics::{MetricsCsvRow, METRICS_CSV_HEADER};

    fn metrics_row() -> MetricsCsvRow {
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
            recall: [0.6, 0.7, 0.8, f64::NAN],
        }
    }

    #[test]
    fn metrics_file_is_byte_for_byte_the_old_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let r = metrics_row();
        write_csv(&p, METRICS_CSV_HEADER, &[r.clone(), r.clone()]).unwrap();
        // What the hand-joined writer produced: header, then `Display` of every number.
        let line =
            "3,val,0.125,0.6666666666666666,0.5,0.25,0,1,0,0.5,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,NaN";
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{METRICS_CSV_HEADER}\n{line}\n{line}\n")
        );
        assert_eq!(to_line(&r).unwrap(), line);
        let back: Vec<MetricsCsvRow> = read_csv(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].micro_f1, 2.0 / 3.0);
        assert!(back[1].recall[3].is_nan());
    }

    #[test]
    fn columns_by_name_extra_columns_and_blank_lines() {
        let text = format!(
            "{METRICS_CSV_HEADER},extra\n\n1,train,0.5,0.1,0.2,0.3,0.4,1,2,3,4,5,6,7,8,9,10,11,12,x\n"
        );
        let rows: Vec<MetricsCsvRow> = parse_csv(Path::new("m.csv"), text.as_bytes()).unwrap();
        assert_eq!((rows[0].epoch, rows[0].split.as_str()), (1, "train"));
        assert_eq!(rows[0].recall, [9.0, 10.0, 11.0, 12.0]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let p = Path::new("/run/metrics.csv");
        let text = format!("{METRICS_CSV_HEADER}\n1,val,abc,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n");
        let e = parse_csv::<MetricsCsvRow>(p, text.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/run/metrics.csv: line 2: loss: \"abc\" is not a number"
        );
        let e = parse_csv::<MetricsCsvRow>(p, b"epoch,split\n1,val\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/run/metrics.csv: no column 'loss' in the header"
        );
        let e = parse_csv::<MetricsCsvRow>(p, b"").unwrap_err();
        assert!(
            e.to_string().starts_with("/run/metrics.csv: empty file"),
            "{e}"
        );
        let text = format!("{METRICS_CSV_HEADER}\n1,val\n");
        let e = parse_csv::<MetricsCsvRow>(p, text.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/run/metrics.csv: line 2: 2 fields, but the header has 19"
        );
        let e = parse_csv::<MetricsCsvRow>(p, b"epoch,split,loss\n-1,val,0\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: epoch: \"-1\" is not a non-negative integer"),
            "{e}"
        );
    }

    #[test]
    fn ranking_accepts_nan_and_round_trips() {
        let text = "epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,\
prevalence_ma,prevalence_he,prevalence_ex,prevalence_se\n\
2,0.1,0.2,0.3,0.4,NaN,0.6,0.7,0.8,0.01,0.02,0.03,0.04\n";
        let r: Vec<RankingRow> = parse_csv(Path::new("v.csv"), text.as_bytes()).unwrap();
        assert_eq!(r[0].epoch, 2);
        assert!(r[0].auroc[0].is_nan());
        assert_eq!(r[0].prevalence[3], 0.04);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.csv");
        write_csv(&p, crate::VAL_RANKING_CSV_HEADER, &r).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }

    #[test]
    fn predictions_check_labels_and_probabilities() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("predictions.csv");
        let rows = [
            PredictionRow {
                patch: 3,
                image_id: "img1".into(),
                truth: [1, 0, 0, 1],
                probs: [0.9, 0.1, 0.2, 0.75],
            },
            PredictionRow {
                patch: 7,
                image_id: "img2".into(),
                truth: [0, 0, 1, 0],
                probs: [0.0, 1.0, 0.5, 1e-7],
            },
        ];
        write_csv(&p, PREDICTIONS_CSV_HEADER, &rows).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{PREDICTIONS_CSV_HEADER}\n3,img1,1,0,0,1,0.9,0.1,0.2,0.75\n7,img2,0,0,1,0,0,1,0.5,0.0000001\n")
        );
        assert_eq!(read_csv::<PredictionRow>(&p).unwrap(), rows);
        let head = format!("{PREDICTIONS_CSV_HEADER}\n");
        let path = Path::new("/e/predictions.csv");
        let e = parse_csv::<PredictionRow>(path, format!("{head}3,i,2,0,0,0,0,0,0,0\n").as_bytes())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/e/predictions.csv: line 2: ma: 2 is not a label 0 or 1"
        );
        let e =
            parse_csv::<PredictionRow>(path, format!("{head}3,i,0,0,0,0,0,NaN,0,0\n").as_bytes())
                .unwrap_err();
        assert!(
            e.to_string().contains("p_he: NaN is not a probability"),
            "{e}"
        );
    }

    #[test]
    fn lines_round_trip_to_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![metrics_row(), metrics_row()];
        let lines: Vec<String> = rows.iter().map(|r| to_line(r).unwrap()).collect();
        assert!(lines
            .iter()
            .all(|l| !l.contains('\n') && l.starts_with("3,val,")));
        let back: Vec<MetricsCsvRow> =
            parse_lines(Path::new("state.json"), METRICS_CSV_HEADER, &lines).unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_csv(&a, METRICS_CSV_HEADER, &rows).unwrap();
        write_csv(&b, METRICS_CSV_HEADER, &back).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut bad = lines.clone();
        bad[1] = "3,val,x".into();
        let e = parse_lines::<MetricsCsvRow>(Path::new("state.json"), METRICS_CSV_HEADER, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("state.json: line 3"), "{e}");
    }

    /// Issue 15 case 14 for `predictions.csv`: an image id with a comma or a quote is
    /// quoted (pandas reads it back) and reads back the same.
    #[test]
    fn prediction_ids_with_commas_and_quotes_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("predictions.csv");
        let row = PredictionRow {
            patch: 1,
            image_id: "eye,left \"b\"".into(),
            truth: [0, 1, 0, 0],
            probs: [0.5, 0.25, 0.0, 1.0],
        };
        write_csv(&p, PREDICTIONS_CSV_HEADER, std::slice::from_ref(&row)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.ends_with("\n1,\"eye,left \"\"b\"\"\",0,1,0,0,0.5,0.25,0,1\n"),
            "{text}"
        );
        assert_eq!(read_csv::<PredictionRow>(&p).unwrap(), vec![row]);
    }

    /// A non-finite loss and a split name with a comma and quotes survive a table kept
    /// as lines; a line too short, a bad number or an open quote is an error.
    #[test]
    fn odd_values_round_trip_and_bad_lines_are_errors() {
        let mut r = metrics_row();
        r.loss = f64::INFINITY;
        r.split = "a,\"b\"".into();
        let line = to_line(&r).unwrap();
        assert!(line.starts_with("3,\"a,\"\"b\"\"\",inf,"), "{line}");
        let back: Vec<MetricsCsvRow> = parse_lines(
            Path::new("s.json"),
            METRICS_CSV_HEADER,
            std::slice::from_ref(&line),
        )
        .unwrap();
        assert_eq!(
            (back[0].loss, back[0].split.as_str()),
            (f64::INFINITY, "a,\"b\"")
        );
        let good = to_line(&metrics_row()).unwrap();
        for bad in [
            "3,val,0.1".to_string(),
            good.replacen("3,", "x,", 1),
            good.replacen("0.125", "abc", 1),
            good.replacen("val", "\"val", 1),
        ] {
            let e = parse_lines::<MetricsCsvRow>(
                Path::new("s.json"),
                METRICS_CSV_HEADER,
                std::slice::from_ref(&bad),
            );
            assert!(e.is_err(), "{bad}");
        }
    }
}
