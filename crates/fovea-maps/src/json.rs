//! The JSON files of a map folder (`summary.json`, `pixel_metrics.json`): written pretty
//! and atomically, read with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{MapsError, Result};

/// Writes `value` as pretty JSON to `path` (temporary file, then rename).
pub fn write_json_atomic<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|source| MapsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    json.push(b'\n');
    fovea_data::write_atomic(path, &json)?;
    Ok(())
}

/// Reads a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| MapsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| MapsError::Json {
        path: path.to_path_buf(),
        source,
    })
}
