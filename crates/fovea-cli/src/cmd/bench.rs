//! `fovea bench`: benchmarks that measure a reference in the same run and print the ratio.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use fovea_data::{load_sample, Dataset};
use fovea_store::extract::{plan, NoProgress};
use fovea_store::{extract, ExtractSettings};
use rayon::prelude::*;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Patch extraction against decoding alone: (a) time to only decode every photograph
    /// and mask, (b) time of the full extraction, (c) their ratio, and peak memory.
    Extract(ExtractArgs),
    /// Training steps of a model on random data, samples/s (`fovea bench train --help`).
    #[command(disable_help_flag = true)]
    Train(crate::Passthrough),
    /// Forward passes of a model on random data, samples/s (`fovea bench infer --help`).
    #[command(disable_help_flag = true)]
    Infer(crate::Passthrough),
    /// Lesion maps of one photograph: dense against window-by-window at the same stride,
    /// their agreement, peak memory (`fovea bench maps --help`).
    #[command(disable_help_flag = true)]
    Maps(crate::Passthrough),
    /// Whole-image encoders forward and backward: ResNet-18 trunk and Swin-T
    /// (`fovea bench encoders --help`; bench/encoders.sh adds PyTorch's in the same run).
    #[command(disable_help_flag = true)]
    Encoders(crate::Passthrough),
    /// Segmentation U-Net training steps on random tiles, samples/s (`fovea bench
    /// seg-train --help`; bench/seg.sh adds PyTorch's in the same run).
    #[command(name = "seg-train", disable_help_flag = true)]
    SegTrain(crate::Passthrough),
    /// One whole photograph through the segmentation U-Net, tile by tile: time and peak
    /// memory (`fovea bench seg-map --help`).
    #[command(name = "seg-map", disable_help_flag = true)]
    SegMap(crate::Passthrough),
    /// The input pipeline alone (memory-mapped reads, augmentation, batching), samples/s.
    Pipeline(super::bench_pipeline::PipelineArgs),
}

#[derive(clap::Args)]
pub struct ExtractArgs {
    /// Dataset folder.
    #[arg(long)]
    dataset: PathBuf,
    /// Patch side P, 8 to 2048 (0 is refused).
    #[arg(long, default_value_t = 128)]
    patch_size: u32,
    /// Grid stride S, 1 to 8192 (0 is refused).
    #[arg(long, default_value_t = 128)]
    stride: u32,
    /// Where to write the store (kept, for comparison with a reference; an existing patch
    /// store there is replaced, anything else refused); default: a temporary folder,
    /// removed at the end.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    ru.ru_maxrss as f64 / 1024.0
}

/// CPU time (user + system, all threads) of this process so far, in seconds: less
/// sensitive than wall time to other processes sharing the cores.
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn run(b: Bench, global: &fovea_cli_common::GlobalArgs) -> Result<()> {
    match b {
        Bench::Extract(a) => bench_extract(a),
        Bench::Train(p) => p.hand_over(global, &["bench", "train"]),
        Bench::Infer(p) => p.hand_over(global, &["bench", "infer"]),
        Bench::Maps(p) => p.hand_over(global, &["bench", "maps"]),
        Bench::Encoders(p) => p.hand_over(global, &["bench", "encoders"]),
        Bench::SegTrain(p) => p.hand_over(global, &["bench", "seg-train"]),
        Bench::SegMap(p) => p.hand_over(global, &["bench", "seg-map"]),
        Bench::Pipeline(a) => super::bench_pipeline::run(a),
    }
}

fn bench_extract(a: ExtractArgs) -> Result<()> {
    let settings = ExtractSettings {
        patch_size: a.patch_size,
        stride: a.stride,
        ..Default::default()
    };
    settings.validate()?;
    let dataset = Dataset::open(&a.dataset)?;
    let records: Vec<_> = plan(&dataset, &settings)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let threads = rayon::current_num_threads();
    println!(
        "dataset {} ({} photographs), P={} S={}, {threads} threads",
        a.dataset.display(),
        records.len(),
        a.patch_size,
        a.stride
    );

    // (a) Decoding only: every photograph and mask, all threads busy until the last one
    // (each decoded image is dropped at once, so memory stays bounded too).
    let cpu0 = cpu_s();
    let t = Instant::now();
    let sizes: Result<Vec<u64>> = records
        .par_iter()
        .map(|r| {
            let s = load_sample(r)?;
            Ok(s.rgb.as_raw().len() as u64
                + s.masks.iter().map(|m| m.as_raw().len() as u64).sum::<u64>())
        })
        .collect();
    let pixels: u64 = sizes?.iter().sum();
    let decode_s = t.elapsed().as_secs_f64();
    let decode_cpu_s = cpu_s() - cpu0;
    let decode_rss = peak_rss_mib();
    println!(
        "decode_s {decode_s:.3}  ({:.0} MB decoded, peak RSS {decode_rss:.0} MiB)",
        pixels as f64 / 1e6
    );

    // (b) Full extraction.
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).context("creating a temporary folder")?;
    let out = a.out.clone().unwrap_or_else(|| tmp.path().join("store"));
    let cpu0 = cpu_s();
    let t = Instant::now();
    let outcome = extract(
        &dataset,
        &settings,
        &out,
        true,
        &NoProgress,
        &AtomicBool::new(false),
    )?;
    let extract_s = t.elapsed().as_secs_f64();
    let extract_cpu_s = cpu_s() - cpu0;
    println!(
        "extract_s {extract_s:.3}  ({} patches, {} black)",
        outcome.stats.all.patches, outcome.stats.all.black
    );
    println!("peak_rss_mib {:.0}", peak_rss_mib());
    println!("decode_cpu_s {decode_cpu_s:.3}");
    println!("extract_cpu_s {extract_cpu_s:.3}");
    println!(
        "cpu_ratio_extract_to_decode {:.3}",
        extract_cpu_s / decode_cpu_s
    );
    println!("ratio_extract_to_decode {:.3}", extract_s / decode_s);

    // (c) The disk's floor: writing as many bytes as the store holds on disk (its
    // all-zero blocks are holes, not written) through the store's writer (direct I/O where
    // the file system allows it), with nothing to decode or crop.
    let npy_path = out.join("patches.npy");
    let meta = std::fs::metadata(&npy_path)
        .with_context(|| format!("{}: reading its size", npy_path.display()))?;
    let on_disk = allocated_bytes(&meta).min(meta.len());
    let floor_path = out.with_file_name(".write-floor.npy");
    let p = a.patch_size as usize;
    let one = p * p * 3;
    let filler = vec![0x5au8; one * 64];
    let t = Instant::now();
    let mut w = fovea_store::npy::NpyPatchWriter::create(&floor_path, a.patch_size)?;
    let direct = w.is_direct();
    let mut left = (on_disk as usize).div_ceil(one);
    while left > 0 {
        let n = left.min(64);
        w.append(&filler[..n * one])?;
        left -= n;
    }
    w.finish()?;
    let write_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&floor_path);
    println!(
        "write_s {write_s:.3}  ({:.0} MB: the store's {:.0} MB less its {:.1}% of all-zero blocks, \
         written alone; direct I/O: {})",
        on_disk as f64 / 1e6,
        meta.len() as f64 / 1e6,
        100.0 * (1.0 - on_disk as f64 / meta.len().max(1) as f64),
        if direct { "yes" } else { "no" }
    );
    Ok(())
}

/// Bytes a file takes on disk (holes excluded); its length where that is unknown.
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}
