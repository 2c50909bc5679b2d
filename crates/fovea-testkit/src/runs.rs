//! Run folders for tests of inference, maps and export: `RUN/model/` holding a seeded,
//! untrained model (what `eval`, `predict` and `export` read) and `RUN/thresholds.json`;
//! comparing the weights of two runs; and an observer that interrupts a training.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fovea_nn::checkpoint::{save_vars, ModelInfo};
use fovea_nn::engine::TrainObserver;
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::models::{Classifier, ModelKind, Pool};
use fovea_nn::tensors::read_tensors;
use tch::{nn, Device};

/// What an untrained run holds.
#[derive(Clone, Debug)]
pub struct UntrainedRun {
    pub kind: ModelKind,
    pub pool: Pool,
    /// Patch side the model says it was trained on.
    pub patch: usize,
    /// Seed of libtorch's generator for the initialisation.
    pub seed: i64,
    pub thresholds: [f64; 4],
}

impl UntrainedRun {
    /// A `kind` model with `pool`, for `patch`-pixel patches; seed 7, thresholds 0.5.
    pub fn new(kind: ModelKind, pool: Pool, patch: usize) -> UntrainedRun {
        UntrainedRun {
            kind,
            pool,
            patch,
            seed: 7,
            thresholds: [0.5; 4],
        }
    }

    /// Another initialisation seed.
    pub fn seed(mut self, seed: i64) -> UntrainedRun {
        self.seed = seed;
        self
    }

    /// The `ModelInfo` written to `model.toml`.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            model: self.kind,
            pool: self.pool,
            patch_size: self.patch,
            num_classes: 4,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            epoch: 1,
            val_macro_f1: 0.0,
            context: Default::default(),
            enhance: Default::default(),
        }
    }

    /// Writes the run to `dir/run`; returns that folder. Seeds libtorch's generator:
    /// hold [`crate::serial`] around it where tests run in parallel.
    pub fn write(&self, dir: &Path) -> PathBuf {
        tch::manual_seed(self.seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Classifier::new(&vs.root(), self.kind, 4).with_pool(self.pool);
        let run = dir.join("run");
        let model_dir = run.join("model");
        std::fs::create_dir_all(&model_dir).expect("run folder");
        save_vars(&vs, &model_dir.join("model.safetensors")).expect("model.safetensors");
        std::fs::write(
            model_dir.join("model.toml"),
            toml::to_string(&self.info()).expect("model.toml"),
        )
        .expect("model.toml");
        crate::write_thresholds(&run, self.thresholds);
        run
    }
}

/// Whether two weight files hold the same tensors, bit for bit.
pub fn same_weights(a: &Path, b: &Path) -> bool {
    let (ta, tb) = (
        read_tensors(a).expect("weights a"),
        read_tensors(b).expect("weights b"),
    );
    ta.len() == tb.len()
        && ta
            .iter()
            .all(|(n, t)| tb.get(n).is_some_and(|u| t.equal(u)))
}

/// A training observer that sets `cancel` (as Ctrl-C does) after `after` batches of epoch
/// `epoch` (1-based): the engine then stops with `NnError::Interrupted`.
pub struct StopAt<'a> {
    epoch: usize,
    after: usize,
    current: AtomicUsize,
    seen: AtomicUsize,
    cancel: &'a AtomicBool,
}

impl<'a> StopAt<'a> {
    /// Stops epoch `epoch` after `after` batches through `cancel`.
    pub fn new(epoch: usize, after: usize, cancel: &'a AtomicBool) -> StopAt<'a> {
        StopAt {
            epoch,
            after,
            current: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
            cancel,
        }
    }
}

impl TrainObserver for StopAt<'_> {
    fn epoch_start(&self, epoch: usize, _b: usize, _s: usize) {
        self.current.store(epoch, Ordering::SeqCst);
        self.seen.store(0, Ordering::SeqCst);
    }
    fn batch_done(&self, _s: usize, _l: f64) {
        if self.current.load(Ordering::SeqCst) == self.epoch
            && self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
        {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}
