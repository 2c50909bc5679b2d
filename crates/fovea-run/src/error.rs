//! The error type of the run-folder contract: every message names the file, and for a
//! CSV table the line (1-based, the header is line 1) and the column.

use std::path::PathBuf;

/// `Result` with [`RunError`].
pub type Result<T, E = RunError> = std::result::Result<T, E>;

/// What can go wrong reading or writing a run's files.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV table is malformed (no header, a missing column, a bad field, a short row).
    #[error("{}: {reason}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        reason: String,
    },
    /// A JSON document of the run (thresholds.json, metrics.json) is malformed or unreadable.
    #[error(transparent)]
    Metrics(#[from] fovea_metrics::MetricsError),
}

impl From<fovea_data::FileError> for RunError {
    fn from(e: fovea_data::FileError) -> Self {
        RunError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
