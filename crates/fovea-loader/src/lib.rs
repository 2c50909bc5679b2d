//! Fovea's training input pipeline, without any deep-learning runtime: it turns patches of
//! a memory-mapped patch store (CONTRACTS 2) into plain `f32` buffers, `[B, 3, P, P]`
//! images (ImageNet-normalised, CHW) and `[B, 4]` labels (MA, HE, EX, SE), that the
//! training crate wraps into tensors.
//!
//! - [`augment`]: per-sample augmentation (flips, any-angle rotation with a reflected
//!   border, colour jitter) and normalisation; it holds the workspace's one ImageNet
//!   normalisation, [`IMAGENET_MEAN`] and [`IMAGENET_STD`], which models record and the
//!   whole-image encoders apply too;
//! - [`sampler`]: which patches an epoch visits and in what order (all, a report-balanced
//!   subset, or weighted draws with replacement), seeded per epoch;
//! - [`loader`]: batches prepared ahead by worker threads, identical whatever the number
//!   of threads, resumable at any batch;
//! - [`bench`]: the pipeline's throughput alone;
//! - [`tiles`]: tiles of photographs and their lesion masks for a segmentation model,
//!   drawn with lesion-aware probability (not yet used by training: issue 16);
//! - [`rng`]: how every random stream is seeded;
//! - `workers` (private): the worker threads and in-order hand-out that both loaders share.

pub mod augment;
pub mod bench;
pub mod error;
pub mod loader;
pub mod rng;
pub mod sampler;
pub mod tiles;
mod workers;

pub use augment::{
    augment, to_tensor_layout, AugmentParams, AugmentSettings, IMAGENET_MEAN, IMAGENET_STD,
};
pub use bench::{bench_pipeline, BenchReport, BenchSettings};
pub use error::{LoaderError, Result};
pub use loader::{Batch, EpochBatches, Loader, LoaderSettings};
pub use sampler::{Order, Sampler, Selection};
