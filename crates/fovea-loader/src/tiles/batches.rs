//! Batches of tiles, one epoch at a time, prepared ahead by worker threads.
//!
//! Batch b of an epoch holds tiles `b*B .. min((b+1)*B, n)` (n = `tiles_per_epoch`; the
//! last batch may be short). A tile depends only on (seed, epoch, index), so batches are
//! the same whatever the number of workers and wherever an epoch is started. Worker
//! threads prepare at most `queue` batches ahead and hand them out in order
//! ([`crate::workers`], as the patch loader); with `workers = 0` batches are built on the
//! consumer's thread.

use std::sync::Arc;

use fovea_data::NUM_LESIONS;

use super::{TileInfo, TileSampler};
use crate::error::{LoaderError, Result};
use crate::workers::OrderedBatches;

/// One batch of tiles, as plain buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct TileBatch {
    /// `[size, 3, S, S]`, ImageNet-normalised RGB.
    pub images: Vec<f32>,
    /// `[size, 4, S, S]`, 0/1, MA, HE, EX, SE.
    pub masks: Vec<u8>,
    /// `[size, 1, S, S]`, 1 inside the field of view.
    pub fov: Vec<u8>,
    pub info: Vec<TileInfo>,
    /// Tiles in the batch.
    pub size: usize,
    /// Tile side S.
    pub side: usize,
    /// The batch's number within its epoch.
    pub index: usize,
}

/// Batches of tiles, epoch by epoch.
#[derive(Clone)]
pub struct TileLoader {
    sampler: Arc<TileSampler>,
}

impl TileLoader {
    pub fn new(sampler: Arc<TileSampler>) -> TileLoader {
        TileLoader { sampler }
    }

    pub fn sampler(&self) -> &Arc<TileSampler> {
        &self.sampler
    }

    pub fn batches_per_epoch(&self) -> usize {
        let s = self.sampler.settings();
        s.tiles_per_epoch.div_ceil(s.batch_size)
    }

    /// Batch `index` of epoch `epoch`, built on this thread.
    pub fn batch(&self, epoch: u64, index: usize) -> Result<TileBatch> {
        build(&self.sampler, epoch, index)
    }

    /// The batches of epoch `epoch` from batch `start` on, in order.
    pub fn epoch(&self, epoch: u64, start: usize) -> Result<TileBatches> {
        let end = self.batches_per_epoch();
        if start > end {
            return Err(LoaderError::Resume {
                start,
                batches: end,
            });
        }
        let s = self.sampler.settings();
        let make = {
            let sampler = self.sampler.clone();
            Arc::new(move |index| build(&sampler, epoch, index))
        };
        Ok(TileBatches(OrderedBatches::new(
            make,
            start,
            end,
            s.workers,
            s.queue,
            "fovea-tiles",
        )))
    }
}

fn build(sampler: &TileSampler, epoch: u64, index: usize) -> Result<TileBatch> {
    let st = sampler.settings();
    let s = st.side as usize;
    let first = index * st.batch_size;
    let last = (first + st.batch_size).min(st.tiles_per_epoch);
    let size = last.saturating_sub(first);
    let mut batch = TileBatch {
        images: vec![0.0; size * 3 * s * s],
        masks: vec![0; size * NUM_LESIONS * s * s],
        fov: vec![0; size * s * s],
        info: Vec::with_capacity(size),
        size,
        side: s,
        index,
    };
    let parts = batch
        .images
        .chunks_exact_mut(3 * s * s)
        .zip(batch.masks.chunks_exact_mut(NUM_LESIONS * s * s))
        .zip(batch.fov.chunks_exact_mut(s * s));
    for (i, ((image, masks), fov)) in parts.enumerate() {
        let info = sampler.tile_into(epoch, (first + i) as u64, image, masks, fov)?;
        batch.info.push(info);
    }
    Ok(batch)
}

/// The batches of one epoch from a start batch on, in order; stops after the first
/// error. Dropping it stops the workers.
pub struct TileBatches(OrderedBatches<TileBatch>);

impl Iterator for TileBatches {
    type Item = Result<TileBatch>;

    fn next(&mut self) -> Option<Result<TileBatch>> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
