//! `fovea stats`: a store's composition.

use std::path::PathBuf;

use anyhow::Result;
use fovea_store::stats::StoreStats;
use fovea_store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// The patch store.
    store: PathBuf,
    /// Print JSON (the counts of stats.json, recomputed from index.csv) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = Store::open(&a.store)?;
    let stats = StoreStats::from_rows(
        &store.rows,
        store.stats.all.images as usize,
        &store.settings,
    );
    if a.json {
        println!("{}", stats.to_json());
    } else {
        println!(
            "Patch store {} (P={}, stride {})",
            a.store.display(),
            store.settings.patch_size,
            store.settings.stride
        );
        print!("{}", stats.describe());
    }
    Ok(())
}
