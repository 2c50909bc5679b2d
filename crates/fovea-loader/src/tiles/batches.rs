//! Batches of tiles, one epoch at a time, prepared ahead by worker threads.
//!
//! Batch b of an epoch holds tiles `b*B .. min((b+1)*B, n)` (n = `tiles_per_epoch`; the
//! last batch may be short). A tile depends only on (seed, epoch, index), so batches are
//! the same whatever the number of workers and wherever an epoch is started. Workers claim
//! batch numbers in order; at most `queue` batches are prepared but not yet taken (the
//! same ticket scheme as [`crate::loader`]). With `workers = 0` batches are built on the
//! consumer's thread.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use fovea_data::NUM_LESIONS;

use super::{TileInfo, TileSampler};
use crate::error::{LoaderError, Result};

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
        let pool = (s.workers > 0 && start < end)
            .then(|| Pool::start(self.sampler.clone(), epoch, start, end, s.workers, s.queue));
        Ok(TileBatches {
            sampler: self.sampler.clone(),
            epoch,
            next: start,
            end,
            failed: false,
            pool,
        })
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

/// Worker threads preparing one epoch's batches.
struct Pool {
    results: Receiver<(usize, Result<TileBatch>)>,
    /// `None` once stopping: dropping the only sender wakes every waiting worker.
    tickets: Option<Sender<()>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    ready: HashMap<usize, Result<TileBatch>>,
}

impl Pool {
    fn start(
        sampler: Arc<TileSampler>,
        epoch: u64,
        start: usize,
        end: usize,
        workers: usize,
        queue: usize,
    ) -> Pool {
        let (ticket_tx, ticket_rx) = bounded::<()>(queue);
        for _ in 0..queue {
            ticket_tx.send(()).expect("receiver alive");
        }
        let (result_tx, results) = unbounded();
        let next = Arc::new(AtomicUsize::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..workers.min(end - start))
            .map(|w| {
                let (sampler, next, stop) = (sampler.clone(), next.clone(), stop.clone());
                let (tickets, results) = (ticket_rx.clone(), result_tx.clone());
                std::thread::Builder::new()
                    .name(format!("fovea-tiles-{w}"))
                    .spawn(move || loop {
                        if tickets.recv().is_err() || stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= end {
                            return;
                        }
                        let batch =
                            catch_unwind(AssertUnwindSafe(|| build(&sampler, epoch, index)))
                                .unwrap_or_else(|e| {
                                    let message = e
                                        .downcast_ref::<&str>()
                                        .map(|s| s.to_string())
                                        .or_else(|| e.downcast_ref::<String>().cloned())
                                        .unwrap_or_default();
                                    Err(LoaderError::Worker {
                                        batch: index,
                                        message,
                                    })
                                });
                        if results.send((index, batch)).is_err() {
                            return;
                        }
                    })
                    .expect("spawning a tile thread")
            })
            .collect();
        Pool {
            results,
            tickets: Some(ticket_tx),
            stop,
            threads,
            ready: HashMap::new(),
        }
    }

    fn take(&mut self, index: usize) -> Result<TileBatch> {
        loop {
            if let Some(b) = self.ready.remove(&index) {
                if let Some(t) = &self.tickets {
                    let _ = t.send(());
                }
                return b;
            }
            match self.results.recv() {
                Ok((i, b)) => {
                    self.ready.insert(i, b);
                }
                Err(_) => {
                    return Err(LoaderError::Worker {
                        batch: index,
                        message: "every worker stopped before preparing it".into(),
                    })
                }
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tickets = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The batches of one epoch from a start batch on, in order; stops after the first
/// error. Dropping it stops the workers.
pub struct TileBatches {
    sampler: Arc<TileSampler>,
    epoch: u64,
    next: usize,
    end: usize,
    failed: bool,
    pool: Option<Pool>,
}

impl Iterator for TileBatches {
    type Item = Result<TileBatch>;

    fn next(&mut self) -> Option<Result<TileBatch>> {
        if self.failed || self.next >= self.end {
            self.pool = None;
            return None;
        }
        let index = self.next;
        self.next += 1;
        let batch = match &mut self.pool {
            Some(pool) => pool.take(index),
            None => build(&self.sampler, self.epoch, index),
        };
        self.failed = batch.is_err();
        Some(batch)
    }
}
