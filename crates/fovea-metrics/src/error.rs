//! The error type shared by every function of this crate.
//!
//! Errors render as one line (the CLI prints them as its one-line reason). Errors about
//! one column of a multi-label input are wrapped in [`MetricsError::Class`], which names
//! the lesion, e.g. `HE: score at index 3 is NaN`.

use std::path::PathBuf;

/// `Result` with [`MetricsError`].
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Everything that can go wrong when computing, reading or writing metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Truth and scores have different lengths.
    #[error("length mismatch: {truth} truth values but {scores} scores")]
    LengthMismatch {
        /// Number of truth rows / values.
        truth: usize,
        /// Number of score rows / values.
        scores: usize,
    },
    /// A metric was asked of no samples at all.
    #[error("no samples to compute metrics on")]
    Empty,
    /// A score (probability) is NaN.
    #[error("score at index {index} is NaN")]
    NanScore {
        /// Position of the offending score (row, for multi-label inputs).
        index: usize,
    },
    /// A truth label is neither 0 nor 1.
    #[error("label {value} at index {index} is neither 0 nor 1")]
    InvalidLabel {
        /// Position of the offending label (row, for multi-label inputs).
        index: usize,
        /// The label found.
        value: u8,
    },
    /// A threshold is NaN (or, in a file, not finite).
    #[error("threshold {value} is not a finite number")]
    InvalidThreshold {
        /// The threshold found.
        value: f64,
    },
    /// A threshold read from or written to `thresholds.json` lies outside [0, 1], where
    /// probabilities are (a sigmoid output is never above 1 nor below 0).
    #[error("threshold {value} is outside [0, 1]")]
    ThresholdOutOfRange {
        /// The threshold found.
        value: f64,
    },
    /// An error about the contents of a file, naming it.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        #[source]
        source: Box<MetricsError>,
    },
    /// An error about one lesion column of a multi-label input.
    #[error("{class}: {source}")]
    Class {
        /// Lesion name (MA, HE, EX or SE).
        class: &'static str,
        /// What went wrong in that column.
        #[source]
        source: Box<MetricsError>,
    },
    /// A histogram with no bins was requested.
    #[error("a score histogram needs at least one bin")]
    ZeroBins,
    /// Two histograms with different bin counts were merged.
    #[error("cannot merge score histograms with {left} and {right} bins")]
    BinMismatch {
        /// Bins of the histogram merged into.
        left: usize,
        /// Bins of the histogram merged from.
        right: usize,
    },
    /// A JSON document (thresholds.json, metrics.json) is malformed.
    #[error("malformed {what}: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<fovea_data::FileError> for MetricsError {
    fn from(e: fovea_data::FileError) -> Self {
        MetricsError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl MetricsError {
    /// Wraps `self` as an error about lesion column `class` (0..4).
    pub(crate) fn in_class(self, class: usize) -> MetricsError {
        MetricsError::Class {
            class: crate::LESIONS[class],
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_errors_name_the_lesion_on_one_line() {
        let e = MetricsError::NanScore { index: 3 }.in_class(1);
        assert_eq!(e.to_string(), "HE: score at index 3 is NaN");
        let e = MetricsError::InvalidLabel {
            index: 0,
            value: 255,
        }
        .in_class(3);
        assert_eq!(e.to_string(), "SE: label 255 at index 0 is neither 0 nor 1");
    }

    #[test]
    fn io_error_names_the_path() {
        let e = MetricsError::Io {
            path: PathBuf::from("/x/thresholds.json"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        assert_eq!(e.to_string(), "/x/thresholds.json: not found");
    }
}
