//! Small patch stores for the tests, built once per test binary from the synthetic
//! dataset generator.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_store::{ExtractSettings, Store};

/// Generates `images` synthetic photographs and extracts a store with patches of side `p`.
pub fn build_store(root: &Path, images: usize, width: u32, height: u32, p: u32) -> PathBuf {
    let data = root.join("data");
    generate(
        &data,
        &SynthSettings {
            images,
            seed: 0,
            width,
            height,
        },
    )
    .unwrap();
    let out = root.join("store");
    fovea_store::extract(
        &Dataset::open(&data).unwrap(),
        &ExtractSettings {
            patch_size: p,
            stride: p,
            ..Default::default()
        },
        &out,
        false,
        &fovea_store::extract::NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    out
}

#[allow(dead_code)] // not every test binary uses it
/// A store of 32x32 patches over 3 photographs of 256x192, shared by a test binary.
pub fn small_store() -> Arc<Store> {
    static STORE: OnceLock<(tempfile::TempDir, Arc<Store>)> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = build_store(dir.path(), 3, 256, 192, 32);
            let store = Arc::new(Store::open(&path).unwrap());
            (dir, store)
        })
        .1
        .clone()
}
