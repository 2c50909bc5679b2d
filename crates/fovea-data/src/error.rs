//! The data layer's error type: every message names the file and the problem.

use std::path::PathBuf;

/// Result alias for the data layer.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a dataset, a photograph or a mask.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path given as a file is a directory, a FIFO, a socket or a device.
    #[error("{}: {what}", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    /// A photograph or mask could not be decoded (unreadable, truncated, unsupported).
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    /// A mask's size differs from its photograph's.
    #[error(
        "mask {} is {mask_w}x{mask_h} but its photograph {} is {image_w}x{image_h}",
        mask.display(),
        image.display()
    )]
    SizeMismatch {
        mask: PathBuf,
        mask_w: u32,
        mask_h: u32,
        image: PathBuf,
        image_w: u32,
        image_h: u32,
    },
    /// A manifest is malformed (missing column, bad row, duplicate id, bad split name).
    #[error("{}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    /// A path named by a manifest row does not exist or is not a regular file.
    #[error("{}, row for '{id}': {column} file {} {problem}", manifest.display(), target.display())]
    MissingFile {
        manifest: PathBuf,
        id: String,
        column: String,
        target: PathBuf,
        /// "does not exist", "is a directory" or "is not a regular file".
        problem: &'static str,
    },
    /// A folder holds neither IDRiD's download layout nor a manifest.
    #[error(
        "{}: not a dataset: expected 'manifest.csv' (columns id,image,ma,he,ex,se) or IDRiD's \
         'A. Segmentation/' download layout",
        path.display()
    )]
    UnknownLayout { path: PathBuf },
    /// Anything else about a dataset folder (empty, inconsistent).
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl From<crate::fsio::FileError> for DataError {
    fn from(e: crate::fsio::FileError) -> Self {
        DataError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl DataError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A decoding failure of `path`.
    pub fn decode(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        DataError::Decode {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
