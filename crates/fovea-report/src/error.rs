//! The one error type of this crate. Every variant renders as one line that names the file
//! (or the picture) and what is wrong with it, so the CLI can print it as its reason.

use std::path::{Path, PathBuf};

/// `Result` with [`ReportError`].
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Everything that can go wrong while drawing plots or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading or writing a file or folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input file is malformed (bad CSV row, bad JSON, bad TOML, inconsistent values).
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (row and column where known).
        reason: String,
    },
    /// An input that the report cannot do without is missing.
    #[error("{}: {reason}", path.display())]
    Missing {
        /// The file or folder expected.
        path: PathBuf,
        /// What is missing and how to make it.
        reason: String,
    },
    /// The patch store could not be opened (its message names the file).
    #[error(transparent)]
    Store(#[from] fovea_store::StoreError),
    /// A file of the run, evaluation or map folder is unreadable or malformed (its message
    /// names the file, and for a CSV table the line and column).
    #[error(transparent)]
    Run(#[from] fovea_run::RunError),
    /// Plotting failed.
    #[error("drawing {what}: {reason}")]
    Plot {
        /// Which picture.
        what: String,
        /// The drawing backend's message.
        reason: String,
    },
    /// Encoding or decoding a PNG failed.
    #[error("{what}: {reason}")]
    Image {
        /// Which picture.
        what: String,
        /// The codec's message.
        reason: String,
    },
    /// The bundled font (DejaVu Sans) could not be parsed.
    #[error("the bundled font (fovea_maps::FONT) is not a usable TrueType font")]
    Font,
}

impl From<fovea_data::FileError> for ReportError {
    fn from(e: fovea_data::FileError) -> Self {
        ReportError::io(e.path, e.source)
    }
}

impl ReportError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-file error about `path`.
    pub fn malformed(path: &Path, reason: impl std::fmt::Display) -> Self {
        ReportError::Malformed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A plotting error about the picture `what`.
    pub fn plot(what: &str, reason: impl std::fmt::Display) -> Self {
        ReportError::Plot {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A PNG codec error about the picture `what`.
    pub fn image(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        ReportError::Image {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_on_one_line() {
        let e = ReportError::malformed(Path::new("/r/metrics.csv"), "row 3: loss: \"x\"");
        assert_eq!(e.to_string(), "/r/metrics.csv: row 3: loss: \"x\"");
        let e = ReportError::io(
            "/r/config.toml",
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        );
        assert_eq!(e.to_string(), "/r/config.toml: not found");
    }
}
