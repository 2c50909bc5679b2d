//! The error type of the deep-learning layer: every message is one line that names the
//! file, the setting or the step concerned, as the CLI prints it.
//!
//! Errors of the crates below (data, store, loader, metrics, maps) and libtorch's are
//! wrapped as they are (`#[from]`, same message); the variants of this crate say what went
//! wrong in training, evaluation, weights and run folders. [`NnError::Interrupted`] is the
//! Ctrl-C of a training run (the CLI exits 130 on it).

use std::path::{Path, PathBuf};

/// `Result` with [`NnError`].
pub type Result<T, E = NnError> = std::result::Result<T, E>;

/// Everything that can go wrong in training, evaluation, lesion maps and export.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error(transparent)]
    Data(#[from] fovea_data::DataError),
    #[error(transparent)]
    Store(#[from] fovea_store::StoreError),
    #[error(transparent)]
    Loader(#[from] fovea_loader::LoaderError),
    #[error(transparent)]
    Metrics(#[from] fovea_metrics::MetricsError),
    #[error(transparent)]
    Maps(#[from] fovea_maps::MapsError),
    #[error(transparent)]
    Run(#[from] fovea_run::RunError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A loaded model's weights hold NaN or infinite values.
    #[error(transparent)]
    NonFiniteWeights(#[from] crate::finite::NonFiniteWeights),
    /// A file or folder could not be read, written, created or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// libtorch could not write or read the tensor file `path`.
    #[error("{}: {source}", path.display())]
    TensorIo {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    /// A file Fovea reads (settings, `model.toml`, `state.json`, a tensor file) is
    /// malformed: it cannot be parsed, or holds the wrong things.
    #[error("{}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    /// A weight file does not fit the model (a tensor missing or of another shape, not
    /// the architecture's weights).
    #[error("{}: {reason}", path.display())]
    Weights { path: PathBuf, reason: String },
    /// A setting is out of range or inconsistent; `name` is its TOML path.
    #[error("invalid setting {name}: {reason}")]
    Setting { name: String, reason: String },
    /// The settings or flags ask for something that cannot be done (no store given, fp16
    /// on the CPU, no CUDA device, ...).
    #[error("{0}")]
    Usage(String),
    /// The device asked for cannot be used (no CUDA backend or GPU).
    #[error("{0}")]
    Device(String),
    /// An input (store, dataset, split) does not suit the run or the model it is used
    /// with; `path` is that input.
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
    /// `fovea train` without `--resume` into a folder that already holds a run.
    #[error("{} already holds a run: use --resume to continue it, or another --out", run.display())]
    RunExists { run: PathBuf },
    /// `--resume` with settings that differ from the run's own (`config` is its file):
    /// `setting` names the first that differs; only the number of epochs (and the
    /// threads and loader workers that run them) may change.
    #[error(
        "--resume: {} was trained with other settings ({setting} differs; only --epochs, --threads and the loader's workers may change)",
        config.display()
    )]
    ResumeMismatch { config: PathBuf, setting: String },
    /// `--resume` on a folder that holds no run to continue.
    #[error("--resume: {}: {reason}", run.display())]
    NothingToResume { run: PathBuf, reason: String },
    /// `--resume` on training data that changed since the run began (e.g. a store
    /// re-extracted at the same path).
    #[error(
        "--resume: the training data changed since {} began ({what}): continuing would mix two datasets; train into another --out",
        run.display()
    )]
    DataChanged { run: PathBuf, what: String },
    /// `--resume` on a run whose best model so far is broken.
    #[error(
        "--resume: {} is broken ({reason}): the best model so far cannot be kept; restore it or train into another --out",
        path.display()
    )]
    BrokenModel { path: PathBuf, reason: String },
    /// Training stopped by the user (Ctrl-C) during `epoch` (1-based).
    #[error(
        "interrupted during epoch {epoch}; `--resume` continues after the last completed epoch"
    )]
    Interrupted { epoch: usize },
    /// The training loss (or one of its terms) became NaN or infinite at `epoch` and
    /// `batch` (both 1-based).
    #[error(
        "the loss became {value} at epoch {epoch} batch {batch}: training stopped (try a lower optim.lr); last good checkpoint: {}",
        last_checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none yet".into())
    )]
    NonFiniteLoss {
        epoch: usize,
        batch: usize,
        value: f64,
        last_checkpoint: Option<PathBuf>,
    },
    /// A fused model was run without the photographs' global features it reads.
    #[error("fusion \"{fusion}\" needs the photograph's global features, and none were given")]
    MissingContext { fusion: String },
    /// A photograph's global features are neither cached nor computable.
    #[error(
        "photograph {id}: its global features are not in the cache{} and the photograph is not available",
        cache.as_ref().map(|d| format!(" ({})", d.display())).unwrap_or_default()
    )]
    MissingFeatures { id: String, cache: Option<PathBuf> },
    /// A patch's photograph is not among those whose global features were computed.
    #[error("no global features for photograph {id}")]
    NoFeatures { id: String },
    /// The photographs the whole-image context needs could not be opened.
    #[error("whole-image context needs the photographs: {0}")]
    Photographs(#[source] fovea_data::DataError),
    /// The validation split's metrics could not be computed.
    #[error("validation split: {0}")]
    Validation(#[source] fovea_metrics::MetricsError),
    /// What a model cannot do (e.g. export of a fused variant); `path` is its run.
    #[error("{}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// A run of the other model family (`task` in its `model/model.toml`).
    #[error("{} is a {task} run (model/model.toml): this command needs a {wanted} run", run.display())]
    WrongTask {
        run: PathBuf,
        task: &'static str,
        wanted: &'static str,
    },
    /// A bug: a state the code should never reach.
    #[error("internal: {0}")]
    Internal(String),
}

impl NnError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> NnError {
        NnError::Io {
            path: path.into(),
            source,
        }
    }

    /// `path` is malformed: `reason`.
    pub fn malformed(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> NnError {
        NnError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// The weights of `path` do not fit: `reason`.
    pub fn weights(path: &Path, reason: impl std::fmt::Display) -> NnError {
        NnError::Weights {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The setting `name` is invalid: `reason`.
    pub fn setting(name: &str, reason: impl std::fmt::Display) -> NnError {
        NnError::Setting {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The input `path` does not suit: `reason`.
    pub fn input(path: &Path, reason: impl std::fmt::Display) -> NnError {
        NnError::Input {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A bug.
    pub fn internal(what: impl std::fmt::Display) -> NnError {
        NnError::Internal(what.to_string())
    }
}

impl From<fovea_data::FileError> for NnError {
    fn from(e: fovea_data::FileError) -> Self {
        NnError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_step_and_the_file() {
        let e = NnError::Interrupted { epoch: 3 };
        assert_eq!(
            e.to_string(),
            "interrupted during epoch 3; `--resume` continues after the last completed epoch"
        );
        let e = NnError::NonFiniteLoss {
            epoch: 2,
            batch: 7,
            value: f64::NAN,
            last_checkpoint: None,
        };
        assert_eq!(
            e.to_string(),
            "the loss became NaN at epoch 2 batch 7: training stopped (try a lower optim.lr); last good checkpoint: none yet"
        );
        let e = NnError::io(
            "/x/model.toml",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(e.to_string(), "/x/model.toml: gone");
        let e = NnError::MissingFeatures {
            id: "a".into(),
            cache: Some("/c".into()),
        };
        assert!(e.to_string().contains("(/c)"), "{e}");
    }
}
