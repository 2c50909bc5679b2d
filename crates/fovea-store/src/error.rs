//! The store crate's error type: messages name the file, the row or the setting.

use std::path::PathBuf;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Data(#[from] fovea_data::DataError),
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
    /// The output exists and `--force` was not given.
    #[error("{} already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
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
