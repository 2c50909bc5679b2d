//! Batches of one epoch handed out in order, prepared ahead by worker threads: the part
//! shared by the patch loader ([`crate::loader`]) and the tile loader
//! ([`crate::tiles::batches`]), which differ only in how batch `b` is built.
//!
//! Workers claim batch numbers in order from a shared counter, each claim holding one of
//! `queue` tickets that the consumer hands back as it takes batches: at most `queue`
//! batches are ever prepared but not yet taken. The consumer puts finished batches back in
//! order. A panic while building a batch becomes [`LoaderError::Worker`] for that batch.
//! With `workers = 0` batches are built on the consumer's thread. Iteration stops after the
//! first error; dropping the iterator stops and joins the workers.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::error::{LoaderError, Result};

/// Builds batch `index` of the epoch; called from any worker thread.
pub(crate) type Build<T> = Arc<dyn Fn(usize) -> Result<T> + Send + Sync>;

/// Batches `start..end` of one epoch, in order.
pub(crate) struct OrderedBatches<T> {
    build: Build<T>,
    next: usize,
    end: usize,
    failed: bool,
    pool: Option<Pool<T>>,
}

impl<T: Send + 'static> OrderedBatches<T> {
    /// Batches `start..end` built by `build`, on `workers` threads named `name-N` (none:
    /// on the consumer's thread), at most `queue` ahead.
    pub(crate) fn new(
        build: Build<T>,
        start: usize,
        end: usize,
        workers: usize,
        queue: usize,
        name: &'static str,
    ) -> OrderedBatches<T> {
        let pool = (workers > 0 && start < end)
            .then(|| Pool::start(build.clone(), start, end, workers, queue, name));
        OrderedBatches {
            build,
            next: start,
            end,
            failed: false,
            pool,
        }
    }

    /// The number of the batch the next call yields.
    pub(crate) fn next_index(&self) -> usize {
        self.next
    }
}

impl<T: Send + 'static> Iterator for OrderedBatches<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed || self.next >= self.end {
            self.pool = None; // joins the workers
            return None;
        }
        let index = self.next;
        self.next += 1;
        let batch = match &mut self.pool {
            Some(pool) => pool.take(index),
            None => (self.build)(index),
        };
        self.failed = batch.is_err();
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.failed { 0 } else { self.end - self.next };
        (0, Some(n))
    }
}

/// Worker threads preparing one epoch's batches.
struct Pool<T> {
    results: Receiver<(usize, Result<T>)>,
    /// `None` once stopping: dropping the only sender wakes every waiting worker.
    tickets: Option<Sender<()>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    ready: HashMap<usize, Result<T>>,
}

impl<T: Send + 'static> Pool<T> {
    fn start(
        build: Build<T>,
        start: usize,
        end: usize,
        workers: usize,
        queue: usize,
        name: &'static str,
    ) -> Pool<T> {
        let (ticket_tx, ticket_rx) = bounded::<()>(queue);
        for _ in 0..queue {
            ticket_tx.send(()).expect("receiver alive");
        }
        let (result_tx, results) = unbounded();
        let next = Arc::new(AtomicUsize::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..workers.min(end - start))
            .map(|w| {
                let (build, next, stop) = (build.clone(), next.clone(), stop.clone());
                let (tickets, results) = (ticket_rx.clone(), result_tx.clone());
                std::thread::Builder::new()
                    .name(format!("{name}-{w}"))
                    .spawn(move || worker(&*build, &next, end, &stop, &tickets, &results))
                    .expect("spawning a loader thread")
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

    /// Batch `index`, waiting for it.
    fn take(&mut self, index: usize) -> Result<T> {
        loop {
            if let Some(b) = self.ready.remove(&index) {
                // A batch leaves the queue: one more may be prepared.
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

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Disconnect the tickets: a waiting worker wakes with an error (or a last ticket,
        // then sees `stop`) and leaves.
        self.tickets = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker<T>(
    build: &(dyn Fn(usize) -> Result<T> + Send + Sync),
    next: &AtomicUsize,
    end: usize,
    stop: &AtomicBool,
    tickets: &Receiver<()>,
    results: &Sender<(usize, Result<T>)>,
) {
    loop {
        if tickets.recv().is_err() || stop.load(Ordering::SeqCst) {
            return;
        }
        let index = next.fetch_add(1, Ordering::SeqCst);
        if index >= end {
            return;
        }
        let batch = catch_unwind(AssertUnwindSafe(|| build(index))).unwrap_or_else(|e| {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch i is i squared, built slower for low i so that workers finish out of order.
    fn squares(panic_at: Option<usize>) -> Build<usize> {
        Arc::new(move |i| {
            std::thread::sleep(std::time::Duration::from_millis(((7 - i % 8) * 2) as u64));
            if Some(i) == panic_at {
                panic!("batch {i} broke");
            }
            Ok(i * i)
        })
    }

    #[test]
    fn batches_come_in_order_whatever_the_workers() {
        for workers in [0, 1, 3] {
            let got: Vec<usize> = OrderedBatches::new(squares(None), 2, 12, workers, 2, "t")
                .map(|b| b.unwrap())
                .collect();
            assert_eq!(got, (2..12).map(|i| i * i).collect::<Vec<_>>(), "{workers}");
        }
    }

    #[test]
    fn a_panic_becomes_an_error_and_ends_the_iteration() {
        let mut it = OrderedBatches::new(squares(Some(4)), 0, 10, 3, 4, "t");
        assert_eq!(it.next_index(), 0);
        for i in 0..4 {
            assert_eq!(it.next().unwrap().unwrap(), i * i);
        }
        match it.next() {
            Some(Err(LoaderError::Worker { batch: 4, message })) => {
                assert!(message.contains("batch 4 broke"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(it.next().is_none());
        assert_eq!(it.size_hint(), (0, Some(0)));
    }
}
