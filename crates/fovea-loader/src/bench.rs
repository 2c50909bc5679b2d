//! The input pipeline's throughput alone (memory-mapped reads, augmentation, batching), in
//! samples per second, for `fovea bench`: it must outrun the training step by a margin,
//! or the accelerator waits on the CPUs.
//!
//! The first pass over the store may read from disk; later ones from the page cache. Run
//! enough samples to cover a few batches per worker.

use std::sync::Arc;
use std::time::Instant;

use fovea_data::Split;
use fovea_store::Store;
use serde::{Deserialize, Serialize};

use crate::augment::{augment, AugmentSettings};
use crate::error::{LoaderError, Result};
use crate::loader::{Loader, LoaderSettings};
use crate::rng::sample_rng;
use crate::sampler::{Order, Sampler, Selection};

/// What to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchSettings {
    pub batch_size: usize,
    pub workers: usize,
    /// Samples to time (whole batches, epochs repeated as needed).
    pub samples: usize,
    /// The split whose non-black patches are read.
    pub split: Split,
    pub augment: AugmentSettings,
    pub seed: u64,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings {
            batch_size: 32,
            workers: 2,
            samples: 2048,
            split: Split::Train,
            augment: AugmentSettings::default(),
            seed: 0,
        }
    }
}

/// Measured throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub patch_size: usize,
    pub batch_size: usize,
    pub workers: usize,
    pub augment: bool,
    /// Samples and batches delivered while timing.
    pub samples: usize,
    pub batches: usize,
    pub seconds: f64,
    /// The whole pipeline, as the training loop sees it.
    pub samples_per_s: f64,
    /// Seconds until the first batch arrived (thread start and queue fill).
    pub first_batch_s: f64,
    /// Augmentation (or layout) alone, on one thread, no batching.
    pub augment_only_samples_per_s: f64,
}

/// Times the pipeline over `store`'s non-black patches of `settings.split`.
pub fn bench_pipeline(store: Arc<Store>, settings: &BenchSettings) -> Result<BenchReport> {
    if settings.samples == 0 {
        return Err(LoaderError::setting("samples", "must be at least 1"));
    }
    let sampler = Sampler::new(
        &store.rows,
        settings.split,
        Selection::All,
        Order::Shuffled,
        settings.seed,
    )?;
    let p = store.patches.patch_size();

    // Augmentation alone, one thread.
    let n_aug = settings.samples.min(512);
    let ids = sampler.epoch(0);
    let mut out = vec![0.0f32; 3 * p * p]; // [3, P, P]
    let t = Instant::now();
    for q in 0..n_aug {
        let id = ids[q % ids.len()];
        let src = store
            .patches
            .patch(id as usize)
            .ok_or_else(|| LoaderError::Patch {
                store: store.dir.clone(),
                patch: id,
                reason: "not in patches.npy".into(),
            })?;
        if settings.augment.enabled {
            augment(
                src,
                p,
                &mut sample_rng(0, 0, q as u64),
                &settings.augment,
                &mut out,
            );
        } else {
            crate::augment::to_tensor_layout(src, p, &mut out);
        }
    }
    let augment_only_samples_per_s = n_aug as f64 / t.elapsed().as_secs_f64().max(1e-9);

    let loader = Loader::new(
        store,
        sampler,
        LoaderSettings {
            batch_size: settings.batch_size,
            workers: settings.workers,
            drop_last: false,
            seed: settings.seed,
            augment: settings.augment.clone(),
            ..Default::default()
        },
    )?;
    let t = Instant::now();
    let mut first_batch_s = None;
    let (mut samples, mut batches) = (0usize, 0usize);
    let mut epoch = 0u64;
    'outer: loop {
        for batch in loader.epoch(epoch, 0)? {
            let batch = batch?;
            first_batch_s.get_or_insert_with(|| t.elapsed().as_secs_f64());
            samples += batch.size;
            batches += 1;
            if samples >= settings.samples {
                break 'outer; // dropping the epoch stops its workers
            }
        }
        epoch += 1;
    }
    let seconds = t.elapsed().as_secs_f64();
    Ok(BenchReport {
        patch_size: p,
        batch_size: settings.batch_size,
        workers: settings.workers,
        augment: settings.augment.enabled,
        samples,
        batches,
        seconds,
        samples_per_s: samples as f64 / seconds.max(1e-9),
        first_batch_s: first_batch_s.unwrap_or(seconds),
        augment_only_samples_per_s,
    })
}
