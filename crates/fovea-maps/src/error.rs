//! The error type of the lesion-map crate. Every message is one line and names what it is
//! about: the file, the shape, the window or the lesion.

use std::path::PathBuf;

/// `Result` with [`MapsError`].
pub type Result<T, E = MapsError> = std::result::Result<T, E>;

/// Everything that can go wrong when blending, reading, writing or scoring lesion maps.
#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    /// A window grid, blend or heatmap setting is out of range.
    #[error("invalid {what}: {reason}")]
    Setting {
        /// Which setting (e.g. `window grid`, `cell size`).
        what: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The number of window scores differs from the grid's number of windows.
    #[error("{got} window scores for a {rows} x {cols} window grid ({expected} windows expected)")]
    ScoreCount {
        /// Windows in the grid (`rows * cols`).
        expected: usize,
        /// Scores given.
        got: usize,
        /// Grid rows.
        rows: usize,
        /// Grid columns.
        cols: usize,
    },
    /// A window score is NaN or infinite.
    #[error("window {window} ({lesion}): score {value} is not a finite number")]
    NonFiniteScore {
        /// Window index (row-major).
        window: usize,
        /// Lesion code.
        lesion: &'static str,
        /// The score.
        value: f32,
    },
    /// A heatmap cell or an image-level probability is NaN or infinite.
    #[error("{image_id}: {lesion} {what} {value} is not a finite number")]
    NonFiniteValue {
        /// The image.
        image_id: String,
        /// Lesion code.
        lesion: &'static str,
        /// Which value, e.g. `cell (3, 4)` or `image probability`.
        what: String,
        /// The value.
        value: f32,
    },
    /// Two things that must have the same size do not.
    #[error("{what} is {got_w}x{got_h} but the lesion map is for a {want_w}x{want_h} photograph")]
    SizeMismatch {
        /// What was checked (e.g. `HE mask of IDRiD_03`).
        what: String,
        /// Its width and height.
        got_w: u32,
        got_h: u32,
        /// The photograph's width and height.
        want_w: u32,
        want_h: u32,
    },
    /// Heatmap data whose length does not match its shape.
    #[error("heatmap data has {got} values, expected 4 x {h} x {w} = {expected}")]
    DataLength {
        /// Values given.
        got: usize,
        /// `4 * h * w`.
        expected: usize,
        /// Cell rows.
        h: usize,
        /// Cell columns.
        w: usize,
    },
    /// A `.npy` heatmap is malformed or does not fit the photograph.
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON file (summary.json, pixel_metrics.json) is malformed.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
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
    /// Encoding an image failed.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A metric could not be computed (e.g. a NaN cell value).
    #[error(transparent)]
    Metrics(#[from] fovea_metrics::MetricsError),
}

impl From<fovea_data::FileError> for MapsError {
    /// Writing a file atomically failed ([`fovea_data::fsio`]).
    fn from(e: fovea_data::FileError) -> Self {
        MapsError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl MapsError {
    /// A [`MapsError::Setting`].
    pub(crate) fn setting(what: &'static str, reason: impl Into<String>) -> Self {
        MapsError::Setting {
            what,
            reason: reason.into(),
        }
    }

    /// A [`MapsError::Npy`].
    pub(crate) fn npy(path: &std::path::Path, reason: impl Into<String>) -> Self {
        MapsError::Npy {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
