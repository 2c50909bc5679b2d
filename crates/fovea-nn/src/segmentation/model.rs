//! A segmentation run's best model (`RUN/model/`): `model.safetensors`, `model.toml`
//! ([`SegModelInfo`], `task = "segmentation"` and everything whole-photograph inference
//! needs) and `thresholds.json`; loading it ([`load_seg_model`]), and telling the two
//! kinds of run apart: a command given a run of the other task gets an error naming the
//! run and its task ([`check_task`], which the patch classifier's loader calls too).

use std::path::{Path, PathBuf};

use fovea_run::ModelDir;
use serde::{Deserialize, Serialize};
use tch::{nn, Device};

use super::infer::Preprocess;
use super::settings::{InferSettings, TrainTask};
use crate::checkpoint::load_vars;
use crate::error::{NnError, Result};
use crate::models::unet::{SegEncoder, UNet, SEG_CLASSES};

/// `RUN/model/model.toml` of a segmentation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegModelInfo {
    /// Always `"segmentation"` (a classifier's model.toml has no `task`).
    pub task: TrainTask,
    pub encoder: SegEncoder,
    /// Output channels: 4 (MA, HE, EX, SE).
    pub num_classes: usize,
    /// Input normalisation (ImageNet's).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The side of the training tiles (pixels at `preprocess.scale`).
    pub tile_side: u32,
    /// Scale, enhancement and field of view, as training prepared its photographs.
    pub preprocess: Preprocess,
    /// Whole-photograph inference: tile, overlap, batch (validation used these).
    pub infer: InferSettings,
    /// The epoch (1-based) the weights come from, its mean validation pixel AUPR and the
    /// AUPR per lesion.
    pub epoch: usize,
    pub val_mean_aupr: f64,
    pub val_aupr: [f64; 4],
}

/// A segmentation run's best model, loaded.
pub struct SegModel {
    pub vs: nn::VarStore,
    pub net: UNet,
    pub info: SegModelInfo,
    /// `RUN/model/`.
    pub dir: PathBuf,
}

/// The task a `model.toml` (text `text`, at `path`) declares: `task = "segmentation"`, or
/// the classifier (no `task`, the patch classifier's files), and an error naming the run
/// and its task when it is not `want`.
pub fn check_task(path: &Path, text: &str, want: TrainTask) -> Result<()> {
    let task = task_of(path, text)?;
    if task == want {
        return Ok(());
    }
    let run = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(path)
        .to_path_buf();
    Err(NnError::WrongTask {
        run,
        task: task.describe(),
        wanted: want.describe(),
    })
}

/// The task of the run `run`, from its `model/model.toml` (a classifier's has no `task`).
pub fn run_task(run: &Path) -> Result<TrainTask> {
    let path = fovea_run::RunDir::new(run).model().info();
    let text = std::fs::read_to_string(&path).map_err(|e| NnError::io(&path, e))?;
    task_of(&path, &text)
}

/// The task a `model.toml` (text `text`, at `path`) declares.
fn task_of(path: &Path, text: &str) -> Result<TrainTask> {
    let value: toml::Table = toml::from_str(text).map_err(|e| NnError::malformed(path, e))?;
    match value.get("task") {
        None => Ok(TrainTask::Classifier),
        Some(v) => v
            .clone()
            .try_into::<TrainTask>()
            .map_err(|e| NnError::malformed(path, format!("task: {e}"))),
    }
}

/// Reads `model.toml` of a segmentation model folder.
pub fn read_seg_model_info(dir: &ModelDir) -> Result<SegModelInfo> {
    let p = dir.info();
    let text = std::fs::read_to_string(&p).map_err(|e| NnError::io(&p, e))?;
    check_task(&p, &text, TrainTask::Segmentation)?;
    let info: SegModelInfo = toml::from_str(&text).map_err(|e| NnError::malformed(&p, e))?;
    if info.num_classes != SEG_CLASSES as usize {
        return Err(NnError::malformed(
            &p,
            format!(
                "num_classes = {}, Fovea's models have 4 (MA, HE, EX, SE)",
                info.num_classes
            ),
        ));
    }
    Ok(info)
}

/// Writes `model.toml`.
pub fn write_seg_model_info(dir: &ModelDir, info: &SegModelInfo) -> Result<()> {
    let text =
        toml::to_string_pretty(info).map_err(|e| NnError::internal(format!("model.toml: {e}")))?;
    crate::checkpoint::write_file_atomic(&dir.info(), &text)
}

/// Loads a segmentation run's best model (`RUN/model/`) onto `device`; a patch
/// classifier's run is refused naming it ([`NnError::WrongTask`]).
pub fn load_seg_model(run: &Path, device: Device) -> Result<SegModel> {
    let dir = fovea_run::RunDir::new(run).model();
    let info = read_seg_model_info(&dir)?;
    let mut vs = nn::VarStore::new(device);
    let net = UNet::new(&vs.root(), info.encoder);
    load_vars(&mut vs, &dir.weights())?;
    crate::finite::check_finite_weights(&vs, &dir.weights())?;
    Ok(SegModel {
        vs,
        net,
        info,
        dir: dir.path().to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_is_read_from_model_toml() {
        let p = Path::new("/runs/seg/model/model.toml");
        check_task(p, "model = \"cnn\"", TrainTask::Classifier).unwrap();
        check_task(p, "task = \"segmentation\"", TrainTask::Segmentation).unwrap();
        let e = check_task(p, "task = \"segmentation\"", TrainTask::Classifier).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/runs/seg") && msg.contains("segmentation"),
            "{msg}"
        );
        let e = check_task(p, "model = \"cnn\"", TrainTask::Segmentation).unwrap_err();
        assert!(e.to_string().contains("patch-classifier run (model"), "{e}");
        assert!(check_task(p, "task = \"gan\"", TrainTask::Classifier).is_err());
        assert!(check_task(p, "task = [", TrainTask::Classifier).is_err());
    }
}
