//! Run folders: the best model (`RUN/model/`), per-epoch checkpoints for `--resume`
//! (`RUN/checkpoints/epoch-NNNN/`), all written into a temporary folder and renamed, so a
//! half-written model or checkpoint is never taken for a whole one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

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
    /// `metrics.csv` lines so far (without the header).
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

/// Header of `RUN/val_ranking.csv`.
pub const VAL_RANKING_HEADER: &str =
    "epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,prevalence_ma,prevalence_he,prevalence_ex,prevalence_se";

/// Writes a folder atomically: `fill` writes into `DIR.partial`, which is then renamed.
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| NnError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = dir.with_file_name(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| NnError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| NnError::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Writes text to a file atomically (temporary file, synced, then rename): the store
/// crate's [`fovea_store::store::write_atomic`].
pub fn write_file_atomic(path: &Path, text: &str) -> Result<()> {
    Ok(fovea_store::store::write_atomic(path, text.as_bytes())?)
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

/// The folder of the checkpoint after epoch `epoch` (1-based).
pub fn checkpoint_dir(run: &Path, epoch: usize) -> PathBuf {
    run.join("checkpoints").join(format!("epoch-{epoch:04}"))
}

/// The newest whole checkpoint of a run (a folder with its `state.json`), if any.
pub fn latest_checkpoint(run: &Path) -> Option<(usize, PathBuf)> {
    let dir = run.join("checkpoints");
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_prefix("epoch-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().join("state.json").is_file() && best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, entry.path()));
        }
    }
    best
}

/// Removes checkpoints older than the newest `keep`.
pub fn prune_checkpoints(run: &Path, keep: usize) {
    let dir = run.join("checkpoints");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut epochs: Vec<usize> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("epoch-")
                .and_then(|n| n.parse().ok())
        })
        .collect();
    epochs.sort_unstable();
    let n = epochs.len();
    for &e in epochs.iter().take(n.saturating_sub(keep.max(1))) {
        let _ = std::fs::remove_dir_all(checkpoint_dir(run, e));
    }
}

/// Reads `state.json`.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| NnError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| NnError::malformed(&p, e))
}

/// Reads `model.toml` of a model folder.
pub fn read_model_info(model_dir: &Path) -> Result<ModelInfo> {
    let p = model_dir.join("model.toml");
    let text = std::fs::read_to_string(&p).map_err(|e| NnError::io(&p, e))?;
    crate::segmentation::model::check_task(&p, &text, crate::segmentation::TrainTask::Classifier)?;
    toml::from_str(&text).map_err(|e| NnError::malformed(&p, e))
}
