//! `fovea balance`: a balanced training subset (patch ids and weights, CSV).

use std::path::PathBuf;

use anyhow::Result;
use fovea_data::Split;
use fovea_store::balance::{report_policy, weighted_policy, write_subset};
use fovea_store::output::{prepare_output, OutputKind};
use fovea_store::stats::Composition;
use fovea_store::Store;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Policy {
    /// The report's: drop black, undersample lesion patches toward the rarest lesion's
    /// count (keeping every patch of the rarest), healthy = ratio x lesion patches.
    Report,
    /// Every non-black patch, weighted by the inverse frequency of its rarest label
    /// (healthy counted as a class), weights of mean 1, for weighted sampling.
    Weighted,
}

#[derive(clap::Args)]
pub struct Args {
    /// The patch store.
    store: PathBuf,
    /// Balancing policy.
    #[arg(long, value_enum, default_value = "report")]
    policy: Policy,
    /// Healthy patches kept per lesion patch (report policy); 0 = no healthy patch.
    #[arg(long, default_value_t = 2.0)]
    healthy_ratio: f64,
    /// Keep patches of a commoner lesion while it has fewer than F x the rarest lesion's
    /// count (report policy; F >= 1, 1 = undersample to the rarest, 0 is refused; a large
    /// F keeps every lesion patch).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    target_factor: f64,
    /// Split to balance (val and test are evaluated on all their non-black patches).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Split::Train)]
    split: Split,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output CSV (patch,weight), outside the store.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing subset CSV at --out (only a file that starts with the subset
    /// header `patch`; anything else is refused).
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<()> {
    let split = a.split;
    prepare_output(&a.out, OutputKind::Subset, a.force, &[&a.store])?;
    let store = Store::open(&a.store)?;
    let subset = match a.policy {
        Policy::Report => {
            report_policy(&store.rows, split, a.healthy_ratio, a.target_factor, a.seed)?
        }
        Policy::Weighted => weighted_policy(&store.rows, split),
    };
    write_subset(&a.out, &subset)?;
    let before = Composition::of(store.rows.iter().filter(|r| r.split == split));
    let after = Composition::of(subset.patches.iter().map(|&p| &store.rows[p as usize]));
    println!("Before balancing (split '{split}'):");
    print!("{}", before.describe("  "));
    println!("After balancing ({} patches):", subset.patches.len());
    print!("{}", after.describe("  "));
    if matches!(a.policy, Policy::Weighted) {
        let max = subset.weights.iter().copied().fold(0.0, f64::max);
        let min = subset.weights.iter().copied().fold(f64::INFINITY, f64::min);
        println!("  Weights: min {min:.3}, max {max:.3}, mean 1");
    }
    println!("wrote {}", a.out.display());
    Ok(())
}
