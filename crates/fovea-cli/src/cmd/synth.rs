//! `fovea synth`: a synthetic manifest dataset.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fovea_data::synth::{generate, SynthSettings};
use fovea_store::output::{prepare_output, OutputKind};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (gets manifest.csv, images/, masks/).
    #[arg(long)]
    out: PathBuf,
    /// Number of photographs, at least 1 (0 is refused).
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Photograph size, WIDTHxHEIGHT.
    #[arg(long, default_value = "768x512", value_name = "WxH")]
    size: String,
    /// Replace an existing synthetic dataset in --out (only a folder holding manifest.csv;
    /// anything else is refused).
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (w, h) = a
        .size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)))
        .with_context(|| format!("--size '{}' is not WIDTHxHEIGHT", a.size))?;
    prepare_output(&a.out, OutputKind::Dataset, a.force, &[])?;
    let settings = SynthSettings {
        images: a.images,
        seed: a.seed,
        width: w,
        height: h,
    };
    let t = std::time::Instant::now();
    let summary = generate(&a.out, &settings)?;
    println!(
        "wrote {} synthetic photographs ({w}x{h}) to {} in {:.1}s; lesion pixels [MA, HE, EX, SE]: {:?}",
        summary.images,
        a.out.display(),
        t.elapsed().as_secs_f64(),
        summary.lesion_pixels
    );
    Ok(())
}
