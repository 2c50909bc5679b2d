//! `EVAL/predictions.csv` (CONTRACTS 4): `patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se`,
//! one row per non-black patch of the evaluated split. Labels must be 0 or 1 and
//! probabilities finite numbers in [0, 1]; anything else is an error naming the file and
//! the line. The rows are [`fovea_run::PredictionRow`]s, what `fovea eval` writes; here
//! they are held as columns.

use std::path::{Path, PathBuf};

use fovea_metrics::NUM_CLASSES;
use fovea_run::table::parse_csv;
use fovea_run::PredictionRow;

use crate::error::{ReportError, Result};

/// The columns of `predictions.csv`, row by row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Predictions {
    /// The file they were read from.
    pub path: PathBuf,
    /// Store patch id of each row.
    pub patch: Vec<u64>,
    /// Photograph of each row.
    pub image_id: Vec<String>,
    /// Truth labels (0/1), lesion order.
    pub truth: Vec<[u8; NUM_CLASSES]>,
    /// Sigmoid probabilities, lesion order.
    pub probs: Vec<[f32; NUM_CLASSES]>,
}

impl Predictions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.patch.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.patch.is_empty()
    }

    /// The rows of a `predictions.csv` read from `path` ([`PredictionRow`], which checks
    /// labels and probabilities), as columns. No row at all is an error.
    pub fn from_rows(path: &Path, rows: Vec<PredictionRow>) -> Result<Predictions> {
        if rows.is_empty() {
            return Err(ReportError::malformed(path, "no prediction rows"));
        }
        let mut out = Predictions {
            path: path.to_path_buf(),
            ..Predictions::default()
        };
        for r in rows {
            out.patch.push(r.patch);
            out.image_id.push(r.image_id);
            out.truth.push(r.truth);
            out.probs.push(r.probs);
        }
        Ok(out)
    }

    /// Parses the text of a `predictions.csv` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Predictions> {
        Predictions::from_rows(path, parse_csv(path, text.as_bytes())?)
    }

    /// Reads `predictions.csv`.
    pub fn read(path: &Path) -> Result<Predictions> {
        Predictions::from_rows(path, fovea_run::read_csv(path)?)
    }

    /// Column `c` of the truth labels.
    pub fn truth_column(&self, c: usize) -> Vec<u8> {
        self.truth.iter().map(|r| r[c]).collect()
    }

    /// Column `c` of the probabilities.
    pub fn prob_column(&self, c: usize) -> Vec<f32> {
        self.probs.iter().map(|r| r[c]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se\n";

    #[test]
    fn parses_rows() {
        let text = format!("{HEAD}3,img1,1,0,0,1,0.9,0.1,0.2,0.75\n7,img2,0,0,1,0,0,1,0.5,0\n");
        let p = Predictions::parse(Path::new("p.csv"), &text).unwrap();
        assert_eq!(p.patch, [3, 7]);
        assert_eq!(p.image_id[1], "img2");
        assert_eq!(p.truth[0], [1, 0, 0, 1]);
        assert_eq!(p.probs[0][3], 0.75);
        assert_eq!(p.truth_column(2), [0, 1]);
    }

    #[test]
    fn bad_values_name_line_and_column() {
        let path = Path::new("/e/predictions.csv");
        let e = Predictions::parse(path, &format!("{HEAD}3,i,2,0,0,0,0,0,0,0\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/e/predictions.csv: line 2: ma: 2 is not a label 0 or 1"
        );
        let e = Predictions::parse(path, &format!("{HEAD}3,i,0,0,0,0,0,NaN,0,0\n")).unwrap_err();
        assert!(
            e.to_string().contains("p_he: NaN is not a probability"),
            "{e}"
        );
        let e = Predictions::parse(path, HEAD).unwrap_err();
        assert!(e.to_string().ends_with("no prediction rows"));
    }
}
