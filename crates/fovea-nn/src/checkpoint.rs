//! Run folders: the best model (`RUN/model/`), per-epoch checkpoints for `--resume`
//! (`RUN/checkpoints/epoch-NNNN/`), all written into a temporary folder and renamed, so a
//! half-written model or checkpoint is never taken for a whole one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use fovea_run::{CheckpointDir, ModelDir, RunDir};

use crate::error::{NnError, Result};
use crate::models::{ModelKind, Pool};

/// `RUN/model/model.toml`: what `eval` and `predict` need to rebuild the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    pub model: ModelKind,
    /// Global pooling before the classifier (older runs: average).
    #[serde(default)]
    pub pool: Pool,
    /// Patch side the model was trained on.
    pub patch_size: usize,
    pub num_classes: usize,
    /// Input normalisation (ImageNet's).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The epoch (1-based) this model comes from, and its validation macro F1 at 0.5.
    pub epoch: usize,
    pub val_macro_f1: f64,
    /// Whole-image context parts (older runs: the patch classifier alone).
    #[serde(default)]
    pub context: crate::context::ContextSpec,
    /// The transform the training store applied to photographs before cutting patches;
    /// `fovea predict` applies it to new photographs (older runs: none).
    #[serde(default)]
    pub enhance: fovea_data::Enhance,
}

/// `state.json` of a checkpoint: where training stands after a completed epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// The best validation metric so far (the task's: the patch classifier's macro F1 at
    /// 0.5); the file's name for it predates other model families.
    #[serde(rename = "best_macro_f1")]
    pub best_metric: f64,
    pub best_epoch: usize,
    pub epochs_without_improvement: usize,
    pub optimizer_step: i64,
    /// `metrics.csv` rows so far, as the csv crate writes them (without the header); the
    /// engine reads them back as the task's rows.
    pub metrics_lines: Vec<String>,
    /// Seconds spent training so far.
    pub seconds: f64,
    /// `val_ranking.csv` lines so far (validation AP and AUROC per lesion by epoch).
    #[serde(default)]
    pub ranking_lines: Vec<String>,
    /// The loss scale of mixed-precision training (`amp = "fp16"`).
    #[serde(default)]
    pub scaler: Option<crate::amp::GradScaler>,
    /// The task's identity of its training data ([`crate::engine::Task::data_id`]; the
    /// patch classifier: its store's patch size and the SHA-256 of its `index.csv`);
    /// `--resume` refuses data that changed. Absent in runs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_id: Option<String>,
}

/// Writes a folder atomically ([`fovea_data::fsio::replace_dir_atomic`]): `fill` writes
/// a fresh temporary folder beside `dir` (its parents are created), which then replaces it.
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| NnError::io(parent, e))?;
    }
    fovea_data::fsio::replace_dir_atomic(dir, fill)
}

/// Writes text to a file atomically ([`fovea_data::fsio::write_atomic`]).
pub fn write_file_atomic(path: &Path, text: &str) -> Result<()> {
    Ok(fovea_data::fsio::write_atomic(path, text.as_bytes())?)
}

/// Saves the variables of `vs` as safetensors.
pub fn save_vars(vs: &nn::VarStore, path: &Path) -> Result<()> {
    // Written from contiguous copies: channels-last weights (crate::layout) are not, and
    // safetensors holds plain row-major data.
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, crate::layout::contiguous(&v)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(k, t)| (k.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).map_err(|source| NnError::TensorIo {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads every variable of `vs` from `path`, checking names and shapes; a missing or
/// mis-shaped tensor is an error naming it and the file.
pub fn load_vars(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    let named: HashMap<String, Tensor> = crate::tensors::read_tensors(path)?;
    let mut vars = vs.variables();
    let mut names: Vec<String> = vars.keys().cloned().collect();
    names.sort();
    for name in names {
        let dst = vars.get_mut(&name).expect("listed above");
        let src = named
            .get(&name)
            .ok_or_else(|| NnError::weights(path, format!("tensor '{name}' is missing")))?;
        if src.size() != dst.size() {
            return Err(NnError::weights(
                path,
                format!(
                    "tensor '{name}' has shape {:?}, the model needs {:?}",
                    src.size(),
                    dst.size()
                ),
            ));
        }
        tch::no_grad(|| dst.copy_(&src.to_kind(dst.kind()).to_device(dst.device())));
    }
    Ok(())
}

/// The newest whole checkpoint of a run (a folder with its `state.json`), if any.
pub fn latest_checkpoint(run: &Path) -> Option<(usize, PathBuf)> {
    let run = RunDir::new(run);
    checkpoint_epochs(&run)
        .into_iter()
        .rev()
        .map(|n| (n, run.checkpoint(n)))
        .find(|(_, c)| c.state().is_file())
        .map(|(n, c)| (n, c.path().to_path_buf()))
}

/// The epochs of the checkpoint folders of `run`, ascending (whole or not).
fn checkpoint_epochs(run: &RunDir) -> Vec<usize> {
    let Ok(rd) = std::fs::read_dir(run.checkpoints()) else {
        return Vec::new();
    };
    let mut epochs: Vec<usize> = rd
        .flatten()
        .filter_map(|e| RunDir::checkpoint_epoch(&e.file_name().to_string_lossy()))
        .collect();
    epochs.sort_unstable();
    epochs
}

/// Removes checkpoints older than the newest `keep`.
pub fn prune_checkpoints(run: &Path, keep: usize) {
    let run = RunDir::new(run);
    let epochs = checkpoint_epochs(&run);
    let n = epochs.len();
    for &e in epochs.iter().take(n.saturating_sub(keep.max(1))) {
        let _ = std::fs::remove_dir_all(run.checkpoint(e).path());
    }
}

/// Reads `state.json`.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = CheckpointDir::new(dir).state();
    let text = std::fs::read_to_string(&p).map_err(|e| NnError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| NnError::malformed(&p, e))
}

/// Reads `model.toml` of a model folder.
pub fn read_model_info(model_dir: &Path) -> Result<ModelInfo> {
    let p = ModelDir::new(model_dir).info();
    let text = std::fs::read_to_string(&p).map_err(|e| NnError::io(&p, e))?;
    crate::segmentation::model::check_task(&p, &text, crate::segmentation::TrainTask::Classifier)?;
    toml::from_str(&text).map_err(|e| NnError::malformed(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> TrainState {
        TrainState {
            epochs_done: 3,
            best_metric: 0.25,
            best_epoch: 2,
            epochs_without_improvement: 1,
            optimizer_step: 42,
            metrics_lines: vec!["1,train,0.5,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0".into()],
            seconds: 1.5,
            ranking_lines: vec!["1,0.1,0.2,0.3,0.4,0.5,0.5,0.5,0.5,0.1,0.1,0.1,0.1".into()],
            scaler: None,
            data_id: Some("patch size 32, index.csv sha256 00".into()),
        }
    }

    /// Writes `bytes` as a checkpoint's `state.json` and reads it back.
    fn read_bytes(bytes: &[u8]) -> Result<TrainState> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(CheckpointDir::new(dir.path()).state(), bytes).unwrap();
        read_state(dir.path())
    }

    #[test]
    fn state_round_trips_and_older_files_read() {
        let s = state();
        let text = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(read_bytes(text.as_bytes()).unwrap(), s);
        // Written before `ranking_lines`, `scaler` and `data_id` existed.
        let old = r#"{"epochs_done":1,"best_macro_f1":0.1,"best_epoch":1,
            "epochs_without_improvement":0,"optimizer_step":7,"metrics_lines":[],"seconds":2.0}"#;
        let o = read_bytes(old.as_bytes()).unwrap();
        assert_eq!((o.epochs_done, o.data_id.clone()), (1, None));
        let e = read_bytes(b"{\"epochs_done\": -1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("state.json"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random bytes in `state.json`: an error naming the file, never a panic.
        #[test]
        fn random_state_json_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = read_bytes(&bytes) {
                prop_assert!(e.to_string().contains("state.json"), "{}", e);
            }
        }

        /// A whole `state.json` cut short or with one byte changed: read or refused with
        /// the file named, never a panic.
        #[test]
        fn mutated_state_json_is_an_error_not_a_panic(cut in 0usize..400, at in 0usize..400, byte in any::<u8>()) {
            let mut text = serde_json::to_vec_pretty(&state()).unwrap();
            let at = at % text.len();
            text[at] = byte;
            text.truncate(cut.min(text.len()));
            if let Err(e) = read_bytes(&text) {
                prop_assert!(e.to_string().contains("state.json"), "{}", e);
            }
        }
    }
}
