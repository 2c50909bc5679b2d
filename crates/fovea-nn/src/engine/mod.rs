//! The training engine: one loop for every model family, in the shape of burn's `Learner`
//! (a model family provides its training step and its validation; the engine owns
//! everything around them).
//!
//! The engine owns: the epochs and their seeds (libtorch's generator is re-seeded from
//! the run's seed before every epoch), polling the cancel flag between batches
//! ([`NnError::Interrupted`]), the optimiser (Adam) and its learning-rate schedule,
//! mixed precision (CUDA autocast is the task's forward; the [`GradScaler`] is here),
//! detection of a non-finite loss ([`NnError::NonFiniteLoss`]), early stopping on the
//! task's validation metric, the run folder's `metrics.csv` and `val_ranking.csv`, the
//! best model (`RUN/model/`, written atomically with what the task puts in it), the
//! per-epoch checkpoints (`RUN/checkpoints/epoch-NNNN/`: weights, optimiser moments,
//! `state.json`) and `--resume` from them, to the same result as an uninterrupted run,
//! and progress through a [`TrainObserver`].
//!
//! A model family is a [`Task`]: its own batches (patches, tiles, anything), its training
//! step (forward pass and loss), its validation (the metric the best model is chosen by,
//! its rows of `metrics.csv` / `val_ranking.csv` as serde types, the console report), and
//! what its best model folder holds. The patch classifier with its fused context variants is
//! [`crate::train::PatchClassifier`].
//!
//! # Adding a model family
//!
//! 1. Write a type that implements [`Task`] in its own module (e.g. `segmentation.rs`),
//!    built from the training settings with its model's variables in the engine's
//!    `VarStore`: `Batch` is whatever its data pipeline yields (for a segmentation model,
//!    tiles of photographs with their pixel masks); `train_step` runs the forward pass
//!    (inside [`crate::amp::try_forward`]) and returns the loss with every term;
//!    `end_epoch` validates (for a segmentation model, pixel AUPR over the validation
//!    photographs) and returns an [`EpochOutcome`] whose `metric` the engine maximises,
//!    with its rows (`MetricsRow` / `RankingRow`: serde types the engine writes with the
//!    csv crate under the task's headers);
//!    `write_best` writes `model.toml` and whatever else inference needs next to the
//!    weights.
//! 2. Add its console report as a variant of [`EpochDetail`] (the CLI's observer prints
//!    it).
//! 3. Compose its `train` like [`crate::train::train`]: [`check_run`], a seeded
//!    [`Learner`], the task built in the learner's `VarStore`, [`write_config`],
//!    [`Learner::resume`], [`Task::start`], [`Learner::fit`].
//!
//! Nothing in this module knows about patches, stores or the four lesion labels.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::{nn, Device, Tensor};

use crate::amp::{Amp, GradScaler};
use fovea_run::{CheckpointDir, RunDir};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::{
    latest_checkpoint, load_vars, prune_checkpoints, read_state, save_vars, write_dir_atomic,
    write_file_atomic, TrainState,
};
use crate::error::{NnError, Result};
use crate::optim::Adam;
use crate::settings::TrainSettings;
use crate::tensors::read_tensors;

mod report;

pub use report::{EpochDetail, EpochReport, PatchEpoch, Quiet, TrainObserver};

/// A seed for a purpose `a` and an index `b` (e.g. an epoch), derived from the run's seed
/// (splitmix64's finaliser): 1 = initialisation, 2 = epoch `b`, 3 = the validation sample.
pub fn derive_seed(seed: u64, a: u64, b: u64) -> i64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Where a training step is: epoch and batch, both 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepAt {
    pub epoch: usize,
    pub batch: usize,
}

/// What a training step returns to the engine.
pub struct StepOutput {
    /// The loss to minimise, every term included: what `backward` runs on.
    pub loss: Tensor,
    /// The task's main loss of the batch (a mean over its samples), as `metrics.csv`
    /// reports it.
    pub reported: f64,
    /// Samples in the batch.
    pub samples: usize,
}

/// What an epoch's validation found; `M` and `R` are the task's rows of `metrics.csv`
/// and `val_ranking.csv`.
pub struct EpochOutcome<M, R> {
    /// The validation metric the best model is chosen by (higher is better).
    pub metric: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// This epoch's rows of `metrics.csv`.
    pub metrics_rows: Vec<M>,
    /// This epoch's row of `val_ranking.csv`.
    pub ranking_row: R,
    /// The console report.
    pub detail: EpochDetail,
}

/// A model family the engine trains. See the module documentation for how to add one.
pub trait Task {
    /// A training batch as the task's data pipeline yields it.
    type Batch: 'static;
    /// A row of `metrics.csv` and of `val_ranking.csv` (written with the csv crate under
    /// [`Task::metrics_header`] / [`Task::ranking_header`], kept in checkpoints as lines).
    type MetricsRow: Serialize + DeserializeOwned;
    type RankingRow: Serialize + DeserializeOwned;

    /// The validation metric, for messages ("validation macro F1").
    fn metric_name(&self) -> &'static str;
    /// Header lines of `metrics.csv` and `val_ranking.csv`.
    fn metrics_header(&self) -> &'static str;
    fn ranking_header(&self) -> &'static str;

    /// Called once before the first epoch, when the weights are final (after a resume
    /// restored them): caches computed from the weights are built here (`run` is the run
    /// folder).
    fn start(
        &mut self,
        _vs: &nn::VarStore,
        _run: &Path,
        _observer: &dyn TrainObserver,
    ) -> Result<()> {
        Ok(())
    }

    /// Batches and samples per epoch (for progress).
    fn batches_per_epoch(&self) -> usize;
    fn samples_per_epoch(&self) -> usize;

    /// The training batches of `epoch` (0-based): the same for the same seed and epoch,
    /// whether or not the run was resumed. The iterator owns what it needs (the task is
    /// borrowed mutably by the steps while it runs).
    fn epoch_batches(&self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>>>>;

    /// The forward pass and loss of one batch, in training mode, under `amp`; the task
    /// records what its training metrics need. The engine runs `backward` and the
    /// optimiser.
    fn train_step(&mut self, batch: Self::Batch, at: StepAt, amp: Amp) -> Result<StepOutput>;

    /// After the training batches of `epoch`: the training metrics of what
    /// [`Task::train_step`] recorded (mean loss `train_loss`), then validation.
    fn end_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
    ) -> Result<EpochOutcome<Self::MetricsRow, Self::RankingRow>>;

    /// Writes a new best model (the weights `vs` after `epoch`, 0-based, whose validation
    /// metric is `metric`) into `dir`, a temporary folder the engine renames to
    /// `RUN/model/`.
    fn write_best(
        &mut self,
        vs: &nn::VarStore,
        dir: &Path,
        epoch: usize,
        metric: f64,
    ) -> Result<()>;

    /// Files of the run folder itself that go with a new best model (the classifier:
    /// `RUN/thresholds.json`).
    fn write_best_extras(&self, _run: &Path) -> Result<()> {
        Ok(())
    }

    /// On `--resume` of a run that has kept a best model: checks that what
    /// [`Task::write_best`] and [`Task::write_best_extras`] wrote is whole
    /// ([`NnError::BrokenModel`] names what is not).
    fn check_best(&self, _run: &Path) -> Result<()> {
        Ok(())
    }

    /// An identity of the training data (e.g. a hash of the store's index), recorded in
    /// every checkpoint: `--resume` refuses data whose identity changed.
    fn data_id(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Checks the run folder before training, writing nothing; returns the newest checkpoint
/// to resume from, if asked.
///
/// Without `resume`, a folder that holds a run is an error; with it, the run's own
/// settings must name the same store, seed, model and fusion.
pub fn check_run(
    run: &Path,
    resume: bool,
    settings: &TrainSettings,
) -> Result<Option<(usize, PathBuf)>> {
    let start = if resume { latest_checkpoint(run) } else { None };
    let saved = RunDir::new(run).config();
    if !resume && saved.exists() {
        return Err(NnError::RunExists {
            run: run.to_path_buf(),
        });
    }
    if !resume {
        return Ok(None);
    }
    if !saved.exists() {
        return Err(NnError::NothingToResume {
            run: run.to_path_buf(),
            reason: "no run here (no config.toml); train without --resume to start one".into(),
        });
    }
    if start.is_none() && RunDir::new(run).metrics_csv().exists() {
        // Epochs were recorded, but no checkpoint is whole: starting over would rewrite them.
        return Err(NnError::NothingToResume {
            run: run.to_path_buf(),
            reason: "metrics.csv records epochs but no whole checkpoint is left in checkpoints/ (epoch-NNNN/ with its state.json)".into(),
        });
    }
    let prev = TrainSettings::from_toml_file(&saved)?;
    if let Some(setting) = differing_setting(&prev, settings) {
        return Err(NnError::ResumeMismatch {
            config: saved,
            setting,
        });
    }
    Ok(start)
}

/// The first setting (TOML path) in which `b` differs from the run's `a`, apart from what
/// may change on `--resume`: the number of epochs, and the threads and loader workers that
/// run them (the patch loader's `data.workers`, the segmentation tiles'
/// `segmentation.tiles.workers`: both give the same batches whatever their number). Stores
/// are compared as absolute paths.
fn differing_setting(a: &TrainSettings, b: &TrainSettings) -> Option<String> {
    let norm = |s: &TrainSettings| {
        let mut s = s.clone();
        s.epochs = 0;
        s.threads = 0;
        s.data.workers = 0;
        if let Some(seg) = s.segmentation.as_mut() {
            seg.tiles.workers = 0;
        }
        s.store = s.store.map(|p| p.canonicalize().unwrap_or(p));
        toml::Value::try_from(&s).ok()
    };
    first_difference(&norm(a)?, &norm(b)?, "")
}

fn first_difference(a: &toml::Value, b: &toml::Value, path: &str) -> Option<String> {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &p),
                    _ => Some(p),
                }
            })
        }
        _ => (a != b).then(|| path.to_string()),
    }
}

/// Creates the run folder and writes the resolved settings into it (`RUN/config.toml`,
/// the store as an absolute path). Called once the task has accepted the settings, so a
/// run refused before training leaves no folder that would block a corrected retry.
pub fn write_config(run: &Path, settings: &TrainSettings, store_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(run).map_err(|e| NnError::io(run, e))?;
    let mut resolved = settings.clone();
    resolved.store = Some(
        store_dir
            .canonicalize()
            .unwrap_or_else(|_| store_dir.to_path_buf()),
    );
    write_file_atomic(&RunDir::new(run).config(), &resolved.to_toml())
}

/// The engine of one run: the variables, the optimiser, where training stands, and the
/// run folder.
pub struct Learner {
    pub run: PathBuf,
    pub vs: nn::VarStore,
    pub state: TrainState,
    settings: TrainSettings,
    opt: Option<Adam>,
    /// Where the table rows of [`TrainState`] were read from (named in errors).
    rows_from: PathBuf,
}

impl Learner {
    /// An empty `VarStore` on `device` with libtorch's generator seeded for the model's
    /// initialisation: build the task's model in [`Learner::vs`] next.
    pub fn new(run: &Path, settings: &TrainSettings, device: Device) -> Learner {
        tch::manual_seed(derive_seed(settings.seed, 1, 0));
        Learner {
            run: run.to_path_buf(),
            vs: nn::VarStore::new(device),
            state: TrainState {
                best_metric: -1.0,
                ..Default::default()
            },
            settings: settings.clone(),
            opt: None,
            rows_from: RunDir::new(run).metrics_csv(),
        }
    }

    /// The optimiser over the trainable variables, created on first use: after the task
    /// has built (and frozen, and laid out) its model.
    fn optimiser(&mut self) -> &mut Adam {
        let (vs, o) = (&self.vs, &self.settings.optim);
        self.opt
            .get_or_insert_with(|| Adam::new(vs, o.lr, o.weight_decay, o.adamw))
    }

    /// Restores weights, optimiser moments and progress from the checkpoint `dir` (after
    /// `epoch` epochs).
    pub fn resume<T: Task>(
        &mut self,
        task: &T,
        epoch: usize,
        dir: &Path,
        observer: &dyn TrainObserver,
    ) -> Result<()> {
        self.optimiser();
        let ckpt = CheckpointDir::new(dir);
        load_vars(&mut self.vs, &ckpt.weights())?;
        let opt_file = ckpt.optimizer();
        let named = read_tensors(&opt_file)?;
        self.state = read_state(dir)?;
        self.rows_from = ckpt.state();
        if let (Some(was), Some(now)) = (&self.state.data_id, task.data_id()?) {
            if *was != now {
                return Err(NnError::DataChanged {
                    run: self.run.clone(),
                    what: format!("recorded {was}, now {now}"),
                });
            }
        }
        if self.state.best_epoch > 0 {
            task.check_best(&self.run)?;
        }
        let step = self.state.optimizer_step;
        self.optimiser().load_state(&named, step, &opt_file)?;
        observer.message(&format!(
            "resuming after epoch {epoch} from {}",
            dir.display()
        ));
        Ok(())
    }

    /// Trains `task` from where the run stands to the last epoch (or early stopping);
    /// returns where it ended.
    pub fn fit<T: Task>(
        &mut self,
        task: &mut T,
        observer: &dyn TrainObserver,
        cancel: &AtomicBool,
    ) -> Result<TrainState> {
        self.optimiser();
        self.state.data_id = task.data_id()?;
        let params = self.vs.trainable_variables();
        let mut scaler = self.state.scaler.clone().unwrap_or_default();
        let (epochs, patience) = (self.settings.epochs, self.settings.patience);
        for epoch in self.state.epochs_done..epochs {
            if patience > 0 && self.state.epochs_without_improvement >= patience {
                observer.message(&format!(
                    "early stopping: no better {} for {patience} epochs",
                    task.metric_name()
                ));
                break;
            }
            let t0 = Instant::now();
            let lr = self.settings.optim.lr_at(epoch, epochs);
            self.optimiser().lr = lr;
            tch::manual_seed(derive_seed(self.settings.seed, 2, epoch as u64));
            observer.epoch_start(
                epoch + 1,
                task.batches_per_epoch(),
                task.samples_per_epoch(),
            );
            let train_loss =
                self.train_epoch(task, epoch, &params, &mut scaler, observer, cancel)?;
            let outcome = task.end_epoch(epoch, train_loss)?;
            let improved = self.keep_best(task, epoch, &outcome)?;
            self.state.epochs_done = epoch + 1;
            self.state.optimizer_step = self.optimiser().step;
            self.state.scaler = (self.settings.amp != Amp::Off).then(|| scaler.clone());
            self.state.seconds += t0.elapsed().as_secs_f64();
            self.write_tables(task, &outcome)?;
            self.write_checkpoint(epoch)?;
            observer.epoch_end(&EpochReport {
                run: self.run.clone(),
                epoch: epoch + 1,
                epochs,
                train_loss,
                val_loss: outcome.val_loss,
                metric: outcome.metric,
                improved,
                seconds: t0.elapsed().as_secs_f64(),
                lr,
                detail: outcome.detail,
            });
        }
        Ok(self.state.clone())
    }

    /// One epoch of training steps; returns the mean reported loss.
    fn train_epoch<T: Task>(
        &mut self,
        task: &mut T,
        epoch: usize,
        params: &[Tensor],
        scaler: &mut GradScaler,
        observer: &dyn TrainObserver,
        cancel: &AtomicBool,
    ) -> Result<f64> {
        let amp = self.settings.amp;
        let (mut loss_sum, mut n) = (0.0, 0usize);
        let opt = self
            .opt
            .as_mut()
            .ok_or_else(|| NnError::internal("no optimiser"))?;
        for (k, batch) in task.epoch_batches(epoch)?.enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(NnError::Interrupted { epoch: epoch + 1 });
            }
            let batch = batch?;
            opt.zero_grad();
            let out = task.train_step(batch, StepAt { epoch, batch: k }, amp)?;
            let total = out.loss.double_value(&[]);
            if !out.reported.is_finite() || !total.is_finite() {
                return Err(NnError::NonFiniteLoss {
                    epoch: epoch + 1,
                    batch: k + 1,
                    value: total,
                    last_checkpoint: latest_checkpoint(&self.run).map(|(_, d)| d),
                });
            }
            if amp == Amp::Off {
                out.loss.backward();
                opt.step();
            } else {
                scaler.scale_loss(&out.loss).backward();
                let finite = scaler.unscale(params);
                if finite {
                    opt.step();
                }
                scaler.update(finite);
            }
            loss_sum += out.reported * out.samples as f64;
            n += out.samples;
            observer.batch_done(out.samples, out.reported);
        }
        Ok(loss_sum / n.max(1) as f64)
    }

    /// Keeps the model of `epoch` as the best if its metric beats the best so far;
    /// returns whether it did.
    fn keep_best<T: Task>(
        &mut self,
        task: &mut T,
        epoch: usize,
        o: &EpochOutcome<T::MetricsRow, T::RankingRow>,
    ) -> Result<bool> {
        let improved = o.metric > self.state.best_metric;
        if improved {
            self.state.best_metric = o.metric;
            self.state.best_epoch = epoch + 1;
            self.state.epochs_without_improvement = 0;
            let vs = &self.vs;
            write_dir_atomic(RunDir::new(&self.run).model().path(), |d| {
                task.write_best(vs, d, epoch, o.metric)
            })?;
            task.write_best_extras(&self.run)?;
        } else {
            self.state.epochs_without_improvement += 1;
        }
        Ok(improved)
    }

    /// Appends the epoch's rows and rewrites `val_ranking.csv` and `metrics.csv` with
    /// the csv crate. The rows so far live in the state (checkpointed) as lines; they are
    /// read back as the task's rows, so a damaged `state.json` is an error, not a table.
    fn write_tables<T: Task>(
        &mut self,
        task: &T,
        o: &EpochOutcome<T::MetricsRow, T::RankingRow>,
    ) -> Result<()> {
        for r in &o.metrics_rows {
            self.state.metrics_lines.push(table_line(r)?);
        }
        self.state.ranking_lines.push(table_line(&o.ranking_row)?);
        let run = RunDir::new(&self.run);
        let origin = self.rows_from.clone();
        let (mh, rh) = (task.metrics_header(), task.ranking_header());
        let metrics: Vec<T::MetricsRow> =
            fovea_run::parse_lines(&origin, mh, &self.state.metrics_lines)?;
        let ranking: Vec<T::RankingRow> =
            fovea_run::parse_lines(&origin, rh, &self.state.ranking_lines)?;
        fovea_run::write_csv(&run.val_ranking_csv(), rh, &ranking)?;
        fovea_run::write_csv(&run.metrics_csv(), mh, &metrics)?;
        Ok(())
    }

    /// The checkpoint after `epoch` (0-based): weights, optimiser moments, and
    /// `state.json` written last (its presence marks the checkpoint whole); older ones
    /// beyond the newest two are removed.
    fn write_checkpoint(&mut self, epoch: usize) -> Result<()> {
        let st = self.state.clone();
        let (vs, opt) = (&self.vs, self.opt.as_ref());
        let opt = opt.ok_or_else(|| NnError::internal("no optimiser"))?;
        let run = RunDir::new(&self.run);
        write_dir_atomic(run.checkpoint(epoch + 1).path(), |d| {
            let d = CheckpointDir::new(d);
            save_vars(vs, &d.weights())?;
            let opt_state = opt.state();
            let refs: Vec<(&str, &Tensor)> =
                opt_state.iter().map(|(k, t)| (k.as_str(), t)).collect();
            let file = d.optimizer();
            Tensor::write_safetensors(&refs, &file)
                .map_err(|source| NnError::TensorIo { path: file, source })?;
            let p = d.state();
            let text = serde_json::to_string_pretty(&st)
                .map_err(|e| NnError::internal(format!("state.json: {e}")))?;
            std::fs::write(&p, text).map_err(|e| NnError::io(&p, e))
        })?;
        prune_checkpoints(&self.run, 2);
        Ok(())
    }
}

/// A table row as one CSV line.
fn table_line<S: Serialize>(row: &S) -> Result<String> {
    fovea_run::to_line(row).map_err(|e| NnError::internal(format!("a table row: {e}")))
}
