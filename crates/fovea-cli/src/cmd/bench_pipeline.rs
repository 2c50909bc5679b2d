//! `fovea bench pipeline`: the input pipeline alone (memory-mapped reads, augmentation,
//! batching) in samples/s, to compare with `fovea bench train`'s rate: the loader must
//! outrun the training step by a margin or the model waits on it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use fovea_data::Split;
use fovea_loader::{bench_pipeline, AugmentSettings, BenchSettings};
use fovea_store::Store;

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// The patch store to read.
    #[arg(long)]
    store: PathBuf,
    /// Samples per batch, at least 1 (0 is refused).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Loader worker threads, at least 1 (0 is refused).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Samples to time (whole batches; epochs repeat as needed), at least 1 (0 is refused).
    #[arg(long, default_value_t = 2048)]
    samples: usize,
    /// The split whose non-black patches are read.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Split::Train)]
    split: Split,
    /// Normalisation only, no random flips, rotation or colour jitter.
    #[arg(long)]
    no_augment: bool,
    /// Seed of the shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: PipelineArgs) -> Result<()> {
    let split = a.split;
    anyhow::ensure!(
        a.batch_size > 0 && a.workers > 0 && a.samples > 0,
        "--batch-size, --workers and --samples must be at least 1"
    );
    let store = Arc::new(Store::open(&a.store)?);
    let settings = BenchSettings {
        batch_size: a.batch_size,
        workers: a.workers,
        samples: a.samples,
        split,
        augment: AugmentSettings {
            enabled: !a.no_augment,
            ..Default::default()
        },
        seed: a.seed,
    };
    let r = bench_pipeline(store, &settings)
        .with_context(|| format!("benchmarking the input pipeline on {}", a.store.display()))?;
    println!(
        "pipeline {} split {split}, P={}, batch {} x {} workers, augment {}: {} samples in {} \
         batches, {:.3} s (first batch after {:.3} s)",
        a.store.display(),
        r.patch_size,
        r.batch_size,
        r.workers,
        if r.augment { "on" } else { "off" },
        r.samples,
        r.batches,
        r.seconds,
        r.first_batch_s
    );
    println!(
        "augment_only_samples_per_s {:.1}  (one thread, no batching)",
        r.augment_only_samples_per_s
    );
    println!("samples_per_s {:.1}", r.samples_per_s);
    Ok(())
}
