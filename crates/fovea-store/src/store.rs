//! Opening a patch store and checking that it is whole: the four files present, the index
//! and the array agreeing on the number and size of patches. A store is renamed into place
//! only when complete, so a folder that fails these checks was damaged after the fact.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::index::{read_index, PatchRow};
use crate::npy::NpyPatches;
use crate::settings::ExtractSettings;
use crate::stats::StoreStats;

/// An opened patch store (CONTRACTS 2).
pub struct Store {
    pub dir: PathBuf,
    pub rows: Vec<PatchRow>,
    pub patches: NpyPatches,
    pub settings: ExtractSettings,
    pub stats: StoreStats,
}

impl Store {
    /// Opens and checks the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.is_dir() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let partial = dir.with_file_name(format!(".{name}.partial"));
            let reason = if partial.exists() {
                "no patch store here: an extraction into it was interrupted; run it again"
            } else {
                "no patch store here (run `fovea extract` first)"
            };
            return Err(StoreError::corrupt(dir, reason));
        }
        for f in ["patches.npy", "index.csv", "stats.json", "extract.toml"] {
            let path = dir.join(f);
            if let Some(what) = fovea_data::io::not_regular(&path) {
                return Err(StoreError::corrupt(&path, what));
            }
            if !path.is_file() {
                return Err(StoreError::corrupt(
                    dir,
                    format!("not a whole patch store: {f} is missing"),
                ));
            }
        }
        let settings = ExtractSettings::from_toml_file(&dir.join("extract.toml"))?;
        let stats_path = dir.join("stats.json");
        let text = read_text(&stats_path)?;
        let stats: StoreStats =
            serde_json::from_str(&text).map_err(|e| StoreError::corrupt(&stats_path, e))?;
        let rows = read_index(&dir.join("index.csv"))?;
        let npy_path = dir.join("patches.npy");
        let patches = NpyPatches::open(&npy_path)?;
        if patches.len() != rows.len() {
            return Err(StoreError::corrupt(
                &npy_path,
                format!(
                    "holds {} patches but index.csv lists {}",
                    patches.len(),
                    rows.len()
                ),
            ));
        }
        let p = settings.patch_size;
        if !rows.is_empty() && patches.patch_size() != p as usize {
            return Err(StoreError::corrupt(
                &npy_path,
                format!(
                    "patches are {0}x{0} but extract.toml says {p}",
                    patches.patch_size()
                ),
            ));
        }
        if let Some(r) = rows.iter().find(|r| r.size != p) {
            return Err(StoreError::corrupt(
                dir.join("index.csv"),
                format!(
                    "patch {} has size {} but the store's patch size is {p}",
                    r.patch, r.size
                ),
            ));
        }
        if stats.all.patches != rows.len() as u64 {
            return Err(StoreError::corrupt(
                &stats_path,
                format!(
                    "counts {} patches but index.csv lists {}",
                    stats.all.patches,
                    rows.len()
                ),
            ));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            rows,
            patches,
            settings,
            stats,
        })
    }
}

/// Reads a whole text file, refusing anything that is not a regular file (a directory, a
/// FIFO) by name.
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    fovea_data::io::open_regular(path)?
        .read_to_string(&mut text)
        .map_err(|e| StoreError::io(path, e))?;
    Ok(text)
}

/// Opens a CSV file for reading (a regular file only).
pub fn csv_reader(
    builder: &mut csv::ReaderBuilder,
    path: &Path,
) -> Result<csv::Reader<std::fs::File>> {
    Ok(builder.from_reader(fovea_data::io::open_regular(path)?))
}

/// Writes `bytes` to `path` atomically ([`fovea_data::write_atomic`]: a uniquely named
/// temporary file beside it, synced, then renamed), with this crate's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fovea_data::write_atomic(path, bytes)?)
}
