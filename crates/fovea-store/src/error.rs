//! The store crate's error type: messages name the file, the row or the setting.

use std::path::PathBuf;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Data(#[from] fovea_data::DataError),
    /// An output path that a command may not write (see [`crate::output`]).
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of range or inconsistent.
    #[error("invalid setting {name}: {reason}")]
    Setting { name: String, reason: String },
    /// A settings file could not be parsed.
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    /// A store file is malformed, incomplete or inconsistent with the others.
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// A dataset file that cannot be used as it is (a photograph smaller than the patch).
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    /// The run was interrupted by the user.
    #[error("interrupted")]
    Interrupted,
}

impl From<fovea_data::FileError> for StoreError {
    fn from(e: fovea_data::FileError) -> Self {
        StoreError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
    pub fn setting(name: &str, reason: impl std::fmt::Display) -> Self {
        StoreError::Setting {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}
