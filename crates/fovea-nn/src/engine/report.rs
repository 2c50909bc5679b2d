//! What the engine tells whoever runs the training: progress callbacks
//! ([`TrainObserver`]) and the report of each epoch ([`EpochReport`]), whose
//! model-family part is an [`EpochDetail`]. The CLI draws bars, prints lines and the
//! training curves from these.

use std::path::PathBuf;

use fovea_metrics::MultiLabelMetrics;

/// What an epoch produced, for the console and for curves.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// The run folder (its `metrics.csv` and `val_ranking.csv` are up to date).
    pub run: PathBuf,
    /// This epoch (1-based) and the run's number of epochs.
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// The validation metric the best model is chosen by.
    pub metric: f64,
    /// Whether this epoch's model became the best (saved to `RUN/model/`).
    pub improved: bool,
    pub seconds: f64,
    pub lr: f64,
    /// The model family's own figures.
    pub detail: EpochDetail,
}

/// A model family's figures of an epoch: one variant per family.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EpochDetail {
    /// The patch classifier (every fusion variant).
    Patches(PatchEpoch),
    /// The segmentation model.
    Segmentation(crate::segmentation::SegEpoch),
}

/// The patch classifier's figures of an epoch.
#[derive(Clone, Debug)]
pub struct PatchEpoch {
    /// Training and validation metrics at 0.5.
    pub train: MultiLabelMetrics,
    pub val: MultiLabelMetrics,
    /// Validation average precision, AUROC and prevalence per lesion.
    pub val_ap: [f64; 4],
    pub val_auroc: [f64; 4],
    pub val_prevalence: [f64; 4],
}

/// Callbacks from the training loop (the CLI draws bars and prints lines).
pub trait TrainObserver {
    fn epoch_start(&self, _epoch: usize, _batches: usize, _samples: usize) {}
    fn batch_done(&self, _samples: usize, _loss: f64) {}
    /// After the epoch's files (tables, best model, checkpoint) are written.
    fn epoch_end(&self, _report: &EpochReport) {}
    fn message(&self, _text: &str) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}
