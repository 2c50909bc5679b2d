//! The loader crate's error type: messages name the setting, the patch or the file.

use std::path::PathBuf;

use fovea_data::Split;

pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

fn in_file(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Store(#[from] fovea_store::StoreError),
    #[error(transparent)]
    Data(#[from] fovea_data::DataError),
    /// A photograph cannot give tiles (too small for a tile, ...).
    #[error("image '{image}': {reason}")]
    Image { image: String, reason: String },
    /// The image-level split does not match the dataset.
    #[error("split: {reason}")]
    SplitMap { reason: String },
    /// A setting is out of range or inconsistent.
    #[error("invalid setting {name}: {reason}")]
    Setting { name: String, reason: String },
    /// A subset names a patch that may not be used for this split.
    #[error("{}subset patch {patch} {reason}", in_file(.origin))]
    Subset {
        patch: u64,
        reason: String,
        origin: Option<PathBuf>,
    },
    /// A patch could not be read from the store, or may not be loaded.
    #[error("{}: patch {patch}: {reason}", .store.display())]
    Patch {
        store: PathBuf,
        patch: u64,
        reason: String,
    },
    /// Nothing to sample from.
    #[error("no usable patch in split '{split}': {reason}")]
    Empty { split: Split, reason: String },
    /// Resuming past the end of an epoch.
    #[error("cannot start at batch {start}: an epoch has only {batches} batches")]
    Resume { start: usize, batches: usize },
    /// A worker thread panicked while preparing a batch.
    #[error("a loader worker panicked while preparing batch {batch}: {message}")]
    Worker { batch: usize, message: String },
}

impl LoaderError {
    pub fn setting(name: &str, reason: impl std::fmt::Display) -> Self {
        LoaderError::Setting {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}
