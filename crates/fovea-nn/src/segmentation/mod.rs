//! The pixel-level lesion segmentation model as a model family of the training engine
//! (`fovea train --task segmentation`): a U-Net ([`crate::models::unet`]) trained on tiles
//! of the photographs and masks of the dataset a patch store was extracted from, with the
//! store's image split, so the patch classifier and the segmentation model share one
//! split.
//!
//! | module | concern |
//! |---|---|
//! | [`settings`] | the `[segmentation]` settings, [`TrainTask`] |
//! | [`task`] | [`SegmentationTask`], the engine's [`crate::engine::Task`] |
//! | [`infer`] | tiled whole-photograph inference with overlap blending |
//! | [`maps`] | `predict` / `eval-maps` of a segmentation run ([`crate::maps::Mapper`]) |
//! | [`eval`] | the store's patches scored from the pixel maps (`fovea eval`) |
//! | [`validate`] | pixel AUPR, metrics at 0.5, loss and thresholds of the validation photographs |
//! | [`model`] | `RUN/model/` of a segmentation run, and refusing a run of the other task |
//!
//! Files of a run (CONTRACTS 3, the classifier's names): `config.toml` (with the
//! resolved `[segmentation]` table and `task = "segmentation"`), `metrics.csv` (its
//! columns at 0.5, over the pixels of the training tiles for `train`, over every pixel of
//! the validation photographs for `val`), `val_ranking.csv` (`ap_*` = pixel AUPR,
//! `auroc_*` = pixel AUROC, `prevalence_*` = fraction of lesion pixels),
//! `thresholds.json` (max pixel F1 on validation), `model/`, `checkpoints/`.

pub mod eval;
pub mod infer;
pub mod maps;
pub mod model;
pub mod settings;
pub mod task;
pub mod validate;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fovea_data::{Dataset, Split, NUM_LESIONS};
use fovea_loader::tiles::{store_splits, DatasetSource};
use fovea_metrics::MultiLabelMetrics;
use fovea_store::{ExtractSettings, Store};

use crate::amp::Amp;
use crate::checkpoint::TrainState;
use crate::engine::{check_run, write_config, Learner, Task, TrainObserver};
use crate::error::{NnError, Result};
use crate::settings::TrainSettings;

pub use infer::{infer_photograph, Preprocess, SegMap, UNetPass};
pub use model::{load_seg_model, SegModel, SegModelInfo};
pub use settings::{InferSettings, SegSettings, TrainTask};
pub use task::SegmentationTask;

/// The segmentation model's figures of an epoch (the console's report).
#[derive(Clone, Debug)]
pub struct SegEpoch {
    /// Training tiles' pixels and validation photographs' pixels at 0.5.
    pub train: MultiLabelMetrics,
    pub val: MultiLabelMetrics,
    /// Validation pixel AUPR, AUROC (NaN without both kinds of pixel) and prevalence per
    /// lesion.
    pub val_aupr: [f64; NUM_LESIONS],
    pub val_auroc: [f64; NUM_LESIONS],
    pub val_prevalence: [f64; NUM_LESIONS],
    /// Validation photographs scored and the seconds it took.
    pub val_images: usize,
    pub val_seconds: f64,
}

/// The settings of a segmentation run, resolved against its store's `extract.toml`:
/// `task`, the `[segmentation]` table (defaults when absent), the tiles' seed (the run's)
/// and enhancement and field of view (the store's). Checks them; without a store, only
/// checks them.
pub fn resolve(settings: &TrainSettings, store: Option<&ExtractSettings>) -> Result<TrainSettings> {
    let mut s = settings.clone();
    s.task = TrainTask::Segmentation;
    let seed = s.seed;
    let seg = s.segmentation.get_or_insert_with(SegSettings::default);
    seg.tiles.seed = seed;
    if let Some(store) = store {
        seg.tiles.enhance = store.enhance;
        seg.tiles.fov = store.fov.clone();
    }
    seg.validate()?;
    if s.pretrained.is_some() && !seg.encoder.pretrainable() {
        return Err(NnError::setting(
            "pretrained",
            format!(
                "ImageNet weights fit the resnet18 and resnet34 encoders, not \"{}\"",
                seg.encoder.as_str()
            ),
        ));
    }
    // The classifier's own checks, with its model setting out of the way.
    let mut general = s.clone();
    general.pretrained = None;
    general.validate()?;
    Ok(s)
}

/// Trains the segmentation model per `settings` into `run` (see the module doc); with
/// `resume`, continues from the newest checkpoint there. `cancel` is polled between
/// batches.
pub fn train(
    settings: &TrainSettings,
    run: &Path,
    resume: bool,
    observer: &dyn TrainObserver,
    cancel: &AtomicBool,
) -> Result<TrainState> {
    resolve(settings, None)?;
    let store_dir = settings
        .store
        .clone()
        .ok_or_else(|| NnError::Usage("no patch store: give --store STORE".into()))?;
    let store = Store::open(&store_dir)?;
    let settings = resolve(settings, Some(&store.settings))?;
    let device = settings.device.resolve()?;
    if settings.amp != Amp::Off && device == tch::Device::Cpu {
        return Err(NnError::Usage(
            "amp = \"fp16\" is CUDA autocast: it needs --device cuda (or auto with a GPU)".into(),
        ));
    }
    crate::device::set_threads(settings.threads);
    let seg = settings.segmentation.as_ref().expect("resolved");
    let data_dir = seg
        .dataset
        .clone()
        .or_else(|| store.settings.dataset.clone())
        .ok_or_else(|| {
            NnError::input(
                &store_dir,
                "the store does not say which dataset it came from; give the photographs with segmentation.dataset",
            )
        })?;
    let dataset = Dataset::open(&data_dir)?;
    let splits = store_splits(&store.rows)?;
    let train_src = DatasetSource::new(&dataset, &splits, Split::Train)?;
    let val_src = DatasetSource::new(&dataset, &splits, Split::Val)?;
    let data_id = data_identity(&data_dir, &splits);
    let start = check_run(run, resume, &settings)?;
    let mut learner = Learner::new(run, &settings, device);
    let mut task = SegmentationTask::new(
        &settings,
        train_src,
        val_src,
        data_id,
        &mut learner.vs,
        observer,
    )?;
    if let Some((epoch, dir)) = &start {
        learner.resume(&task, *epoch, dir, observer)?;
    }
    write_config(run, &settings, &store_dir)?;
    task.start(&learner.vs, run, observer)?;
    learner.fit(&mut task, observer, cancel)
}

/// The dataset folder and the SHA-256 of the image split (`id,split` lines in id order):
/// `--resume` refuses a run whose photographs or split changed.
fn data_identity(dataset: &Path, splits: &std::collections::HashMap<String, Split>) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<(&String, &Split)> = splits.iter().collect();
    ids.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (id, s) in ids {
        h.update(format!("{id},{s}\n").as_bytes());
    }
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let dir = dataset
        .canonicalize()
        .unwrap_or_else(|_| dataset.to_path_buf());
    format!("dataset {}, split sha256 {hash}", dir.display())
}

/// The console lines of an epoch: training and validation at 0.5, then pixel AUPR beside
/// prevalence per lesion.
pub fn epoch_lines(
    epoch: usize,
    epochs: usize,
    train_loss: f64,
    val_loss: f64,
    d: &SegEpoch,
) -> String {
    let mut s = String::new();
    for (tag, loss, m) in [("TRAIN", train_loss, &d.train), ("VAL", val_loss, &d.val)] {
        s += &format!(
            "[{tag}] Epoch {epoch}/{epochs} | Loss: {loss:.4} | pixel F1: {:.4} (micro {:.4}) | Hamming: {:.5}\n",
            m.macro_f1, m.micro_f1, m.hamming
        );
    }
    s += "    pixel AUPR (prevalence):";
    for (i, name) in fovea_data::LESION_CODES.iter().enumerate() {
        s += &format!(" {name} {:.3} ({:.4})", d.val_aupr[i], d.val_prevalence[i]);
    }
    s += &format!(
        " | mean {:.3}; {} photographs in {:.0} s\n",
        d.val_aupr.iter().sum::<f64>() / NUM_LESIONS as f64,
        d.val_images,
        d.val_seconds
    );
    s
}
