//! Batches of one epoch, in order, prepared ahead by worker threads.
//!
//! The epoch's patch list comes from the [`Sampler`]; batch b holds positions
//! `b*B .. min((b+1)*B, n)` of it (the short last batch is dropped with `drop_last`). The
//! sample at position q is augmented with the random stream (seed, epoch, q)
//! ([`crate::rng::sample_rng`]), so a batch's bytes depend on neither the number of
//! workers nor the batch an epoch started at: starting at batch k gives exactly batches
//! k.. of an uninterrupted epoch.
//!
//! Worker threads prepare batches ahead, at most `queue` of them, and hand them out in
//! order ([`crate::workers`]); with `workers = 0` batches are built on the consumer's
//! thread.

use std::sync::Arc;

use fovea_data::{Split, NUM_LESIONS};
use fovea_store::Store;
use serde::{Deserialize, Serialize};

use crate::augment::{augment, to_tensor_layout, AugmentSettings};
use crate::error::{LoaderError, Result};
use crate::rng::sample_rng;
use crate::sampler::Sampler;
use crate::workers::OrderedBatches;

/// One batch, as plain buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[size, 3, P, P]`, ImageNet-normalised RGB, C order.
    pub images: Vec<f32>,
    /// `[size, 4]`, 0/1 labels MA, HE, EX, SE.
    pub labels: Vec<f32>,
    /// `[size]`, the store's patch ids.
    pub patches: Vec<u64>,
    /// Number of samples (B, or fewer for the last batch of an epoch).
    pub size: usize,
    /// Patch side P.
    pub patch_size: usize,
    /// This batch's number within its epoch.
    pub index: usize,
}

/// How batches are made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderSettings {
    /// Samples per batch B.
    pub batch_size: usize,
    /// Worker threads; 0 = build batches on the consumer's thread.
    pub workers: usize,
    /// Batches prepared ahead at most.
    pub queue: usize,
    /// Drop the last batch of an epoch when it is short.
    pub drop_last: bool,
    /// Seed of the augmentation streams.
    pub seed: u64,
    pub augment: AugmentSettings,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            batch_size: 32,
            workers: 2,
            queue: 4,
            drop_last: false,
            seed: 0,
            augment: AugmentSettings::default(),
        }
    }
}

impl LoaderSettings {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(LoaderError::setting("batch_size", "must be at least 1"));
        }
        if self.queue == 0 {
            return Err(LoaderError::setting("queue", "must be at least 1"));
        }
        if self.workers > 256 {
            return Err(LoaderError::setting(
                "workers",
                format!("{} is more than 256", self.workers),
            ));
        }
        self.augment.validate()
    }
}

/// Batches of a store's patches, epoch by epoch.
pub struct Loader {
    store: Arc<Store>,
    sampler: Sampler,
    settings: LoaderSettings,
}

impl Loader {
    /// A loader over `store`, visiting what `sampler` draws.
    pub fn new(store: Arc<Store>, sampler: Sampler, settings: LoaderSettings) -> Result<Loader> {
        settings.validate()?;
        Ok(Loader {
            store,
            sampler,
            settings,
        })
    }

    /// Evaluation: every non-black patch of `split` in index order, no augmentation, the
    /// last short batch kept.
    pub fn eval(
        store: Arc<Store>,
        split: Split,
        batch_size: usize,
        workers: usize,
    ) -> Result<Loader> {
        let sampler = Sampler::in_order(&store.rows, split)?;
        Loader::eval_with(store, sampler, batch_size, workers)
    }

    /// Evaluation of the patches `sampler` visits (e.g. a seeded sample of a split).
    pub fn eval_with(
        store: Arc<Store>,
        sampler: Sampler,
        batch_size: usize,
        workers: usize,
    ) -> Result<Loader> {
        let settings = LoaderSettings {
            batch_size,
            workers,
            drop_last: false,
            augment: AugmentSettings::off(),
            ..Default::default()
        };
        Loader::new(store, sampler, settings)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    pub fn settings(&self) -> &LoaderSettings {
        &self.settings
    }

    /// Patch side P.
    pub fn patch_size(&self) -> usize {
        self.store.patches.patch_size()
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.sampler.len(), self.settings.batch_size);
        if self.settings.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Samples per epoch (without those of a dropped last batch).
    pub fn samples_per_epoch(&self) -> usize {
        let (n, b) = (self.sampler.len(), self.settings.batch_size);
        if self.settings.drop_last {
            n / b * b
        } else {
            n
        }
    }

    /// The batches of epoch `epoch` from batch `start` on, in order.
    pub fn epoch(&self, epoch: u64, start: usize) -> Result<EpochBatches> {
        let batches = self.batches_per_epoch();
        if start > batches {
            return Err(LoaderError::Resume { start, batches });
        }
        let job = Arc::new(Job {
            store: self.store.clone(),
            order: self.sampler.epoch(epoch),
            epoch,
            batch_size: self.settings.batch_size,
            augment: self
                .settings
                .augment
                .enabled
                .then(|| self.settings.augment.clone()),
            seed: self.settings.seed,
        });
        let make = {
            let job = job.clone();
            Arc::new(move |index| job.build(index))
        };
        Ok(EpochBatches {
            job,
            batches: OrderedBatches::new(
                make,
                start,
                batches,
                self.settings.workers,
                self.settings.queue,
                "fovea-loader",
            ),
        })
    }
}

/// What every worker of one epoch shares.
struct Job {
    store: Arc<Store>,
    order: Vec<u64>,
    epoch: u64,
    batch_size: usize,
    augment: Option<AugmentSettings>,
    seed: u64,
}

impl Job {
    fn build(&self, index: usize) -> Result<Batch> {
        let first = index * self.batch_size;
        let last = (first + self.batch_size).min(self.order.len());
        build_batch(
            &self.store,
            &self.order[first..last],
            index,
            first as u64,
            self.epoch,
            self.seed,
            self.augment.as_ref(),
        )
    }
}

/// Builds one batch from `ids`, the epoch's positions `first_position..`: each sample is
/// augmented with the stream (seed, epoch, position) when `augment` is given, else laid
/// out for evaluation. A black patch or one the store cannot give is an error.
pub fn build_batch(
    store: &Store,
    ids: &[u64],
    index: usize,
    first_position: u64,
    epoch: u64,
    seed: u64,
    augment_settings: Option<&AugmentSettings>,
) -> Result<Batch> {
    let p = store.patches.patch_size();
    let one = 3 * p * p;
    let size = ids.len();
    let mut images = vec![0.0f32; size * one]; // [size, 3, P, P]
    let mut labels = Vec::with_capacity(size * NUM_LESIONS); // [size, 4]
    for (i, (&id, out)) in ids
        .iter()
        .zip(images.chunks_exact_mut(one.max(1)))
        .enumerate()
    {
        let err = |reason: &str| LoaderError::Patch {
            store: store.dir.clone(),
            patch: id,
            reason: reason.to_string(),
        };
        let row = store
            .rows
            .get(id as usize)
            .ok_or_else(|| err("not in the store's index"))?;
        if row.black {
            return Err(err("is black: black patches are never used"));
        }
        let src = store
            .patches
            .patch(id as usize)
            .ok_or_else(|| err("not in patches.npy"))?;
        match augment_settings {
            Some(s) => {
                let mut rng = sample_rng(seed, epoch, first_position + i as u64);
                augment(src, p, &mut rng, s, out);
            }
            None => to_tensor_layout(src, p, out),
        }
        labels.extend(row.labels.iter().map(|&l| l as f32));
    }
    Ok(Batch {
        images,
        labels,
        patches: ids.to_vec(),
        size,
        patch_size: p,
        index,
    })
}

/// The batches of one epoch from a start batch on, in order. Iteration stops after the
/// first error. Dropping it stops the workers.
pub struct EpochBatches {
    job: Arc<Job>,
    batches: OrderedBatches<Batch>,
}

impl EpochBatches {
    /// The number of the batch the next call yields.
    pub fn next_index(&self) -> usize {
        self.batches.next_index()
    }

    /// The patch ids of the whole epoch, in visiting order.
    pub fn order(&self) -> &[u64] {
        &self.job.order
    }
}

impl Iterator for EpochBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        self.batches.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.batches.size_hint()
    }
}
