//! Fixtures shared by Fovea's integration tests (a dev-dependency only, never published):
//! synthetic datasets and patch stores ([`Synth`]), a lock for tests that use libtorch's
//! process-wide generator ([`serial`]), temporary folders, and, with the `nn` feature,
//! run folders holding a seeded untrained model ([`runs`]).
//!
//! The data fixtures need no libtorch. The run builders need `fovea-nn`, which itself
//! uses this kit in its integration tests: a dev-dependency cycle that Cargo allows (the
//! integration tests and the kit link the same `fovea-nn` library); `fovea-nn`'s unit
//! tests must not use the kit, whose `fovea-nn` is not the unit-test build of the crate.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_store::extract::NoProgress;
use fovea_store::{extract, ExtractSettings};

#[cfg(feature = "nn")]
pub mod runs;

pub use tempfile::{tempdir, TempDir};

static SERIAL: Mutex<()> = Mutex::new(());

/// libtorch's random generator and thread count are process-wide: tests that seed it and
/// train take turns through this lock, or their random draws interleave.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A synthetic dataset (`fovea synth`) and the patch store cut from it.
#[derive(Clone, Debug)]
pub struct Synth {
    pub images: usize,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    /// Patch side and stride of the store.
    pub patch: u32,
    pub stride: u32,
}

impl Default for Synth {
    /// Four 256x192 photographs, seed 0, 32-pixel patches on a 32-pixel grid.
    fn default() -> Self {
        Synth {
            images: 4,
            seed: 0,
            width: 256,
            height: 192,
            patch: 32,
            stride: 32,
        }
    }
}

impl Synth {
    /// `images` photographs drawn with `seed`, otherwise the defaults.
    pub fn new(images: usize, seed: u64) -> Synth {
        Synth {
            images,
            seed,
            ..Default::default()
        }
    }

    /// Photographs of `width` x `height` pixels.
    pub fn size(mut self, width: u32, height: u32) -> Synth {
        (self.width, self.height) = (width, height);
        self
    }

    /// The dataset, written to `dir/data`; returns that folder.
    pub fn dataset(&self, dir: &Path) -> PathBuf {
        let data = dir.join("data");
        generate(
            &data,
            &SynthSettings {
                images: self.images,
                seed: self.seed,
                width: self.width,
                height: self.height,
            },
        )
        .expect("synthetic dataset");
        data
    }

    /// The dataset (`dir/data`) and its patch store (`dir/store`); returns the store.
    pub fn store(&self, dir: &Path) -> PathBuf {
        let data = self.dataset(dir);
        let out = dir.join("store");
        let s = ExtractSettings {
            patch_size: self.patch,
            stride: self.stride,
            ..Default::default()
        };
        extract(
            &Dataset::open(&data).expect("synthetic dataset opens"),
            &s,
            &out,
            false,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .expect("patch store");
        out
    }
}

/// The first photograph of a dataset folder: its path.
pub fn first_photograph(data: &Path) -> PathBuf {
    Dataset::open(data).expect("dataset opens").records[0]
        .image
        .clone()
}

/// Writes `RUN/thresholds.json`.
pub fn write_thresholds(run: &Path, thresholds: [f64; 4]) {
    fovea_metrics::ThresholdsFile::from(thresholds)
        .write(&run.join("thresholds.json"))
        .expect("thresholds.json");
}
