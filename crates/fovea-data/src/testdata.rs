//! Locating the real IDRiD sample for tests and benchmarks.
//!
//! The sample lives outside the project: `$FOVEA_DATA` if set, else `../shared/data`
//! relative to the workspace root. Tests that need it call [`idrid_sample`] or
//! [`idrid_original_layout`]: where the folder is absent they print why and skip (return
//! `None`), except under `CI=true`, where a missing folder is a failure.

use std::path::PathBuf;

/// The folder holding `idrid/` and `idrid-original-layout/`, if present.
pub fn data_root() -> Option<PathBuf> {
    let root = match std::env::var_os("FOVEA_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    root.is_dir().then_some(root)
}

fn locate(sub: &str) -> Option<PathBuf> {
    let found = data_root().map(|r| r.join(sub)).filter(|p| p.is_dir());
    if found.is_none() {
        let msg = format!(
            "IDRiD sample '{sub}' not found (set FOVEA_DATA or place shared/data beside the \
             project)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}: required under CI=true");
        }
        eprintln!("skipping: {msg}");
    }
    found
}

/// `shared/data/idrid` (62 photographs, PNG masks, `manifest.csv`, `lesion_pixels.csv`).
pub fn idrid_sample() -> Option<PathBuf> {
    locate("idrid")
}

/// `shared/data/idrid-original-layout` (3 photographs in IDRiD's download layout).
pub fn idrid_original_layout() -> Option<PathBuf> {
    locate("idrid-original-layout")
}
