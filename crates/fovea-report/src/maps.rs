//! The lesion maps of `fovea predict` (CONTRACTS 5) as the report shows them: every
//! `MAPS/<image_id>/` folder holding `overlay.png` and `summary.json` gives a thumbnail of
//! the overlay and the facts of its summary (size, stride, regions by lesion, image-level
//! probabilities). `summary.json` is read leniently (only fields the report shows, each
//! optional) but must be a JSON object; a folder without both files is skipped.

use std::path::{Path, PathBuf};

use fovea_metrics::{LESIONS, NUM_CLASSES};
use fovea_run::{MapDir, MapsDir};
use serde_json::Value;

use crate::error::{ReportError, Result};
use crate::fsio::read_text;
use crate::raster::thumbnail;

/// Largest side of an overlay thumbnail in pixels.
pub const OVERLAY_THUMB: u32 = 480;

/// What the report shows of one photograph's lesion map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    /// `image_id` of the summary, else the folder name.
    pub image_id: String,
    /// The folder.
    pub dir: PathBuf,
    /// Photograph size (width, height) from the summary, else the overlay's.
    pub size: (u64, u64),
    /// Heatmap cell size in pixels.
    pub stride: Option<u64>,
    /// Detected regions, when the summary lists them.
    pub regions: Option<usize>,
    /// Regions per lesion, for regions that name their lesion.
    pub regions_by_lesion: [usize; NUM_CLASSES],
    /// Image-level lesion probabilities.
    pub image_probability: Option<[f64; NUM_CLASSES]>,
    /// PNG bytes of the shrunk overlay.
    pub overlay_png: Vec<u8>,
}

/// The lesion (0..4) a region names in `lesion`, `type` or `kind`, as a code or an index.
fn region_lesion(r: &Value) -> Option<usize> {
    let v = ["lesion", "type", "kind"].iter().find_map(|k| r.get(*k))?;
    match v {
        Value::String(s) => LESIONS.iter().position(|l| l.eq_ignore_ascii_case(s)),
        Value::Number(n) => n.as_u64().map(|i| i as usize).filter(|&i| i < NUM_CLASSES),
        _ => None,
    }
}

/// Four probabilities from an array or an object keyed by lesion code.
fn probabilities(v: &Value) -> Option<[f64; NUM_CLASSES]> {
    let get = |c: usize| match v {
        Value::Array(a) => a.get(c)?.as_f64(),
        Value::Object(o) => o.get(LESIONS[c])?.as_f64(),
        _ => None,
    };
    Some([get(0)?, get(1)?, get(2)?, get(3)?])
}

/// Reads one map folder (which holds both files).
fn read_entry(dir: &Path, thumb: u32) -> Result<MapEntry> {
    let map = MapDir::new(dir);
    let summary_path = map.summary();
    let summary: Value = serde_json::from_str(&read_text(&summary_path)?)
        .map_err(|e| ReportError::malformed(&summary_path, format!("not JSON: {e}")))?;
    if !summary.is_object() {
        return Err(ReportError::malformed(&summary_path, "not a JSON object"));
    }
    let (overlay_png, overlay_size) = thumbnail(&map.overlay(), thumb)?;
    let num = |k: &str| summary.get(k).and_then(Value::as_u64);
    let regions = summary.get("regions").and_then(Value::as_array);
    let mut by_lesion = [0usize; NUM_CLASSES];
    for c in regions.into_iter().flatten().filter_map(region_lesion) {
        by_lesion[c] += 1;
    }
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(MapEntry {
        image_id: summary
            .get("image_id")
            .and_then(Value::as_str)
            .map_or(folder, str::to_string),
        dir: dir.to_path_buf(),
        size: match (num("width"), num("height")) {
            (Some(w), Some(h)) => (w, h),
            _ => (u64::from(overlay_size.0), u64::from(overlay_size.1)),
        },
        stride: num("stride"),
        regions: regions.map(Vec::len),
        regions_by_lesion: by_lesion,
        image_probability: summary.get("image_probability").and_then(probabilities),
        overlay_png,
    })
}

/// The map folders of `maps`, sorted by folder name, overlays shrunk to at most `thumb`
/// pixels a side. Errors: `maps` unreadable, a malformed summary or overlay.
pub fn read_maps(maps: &Path, thumb: u32) -> Result<Vec<MapEntry>> {
    MapsDir::new(maps)
        .images()?
        .iter()
        .filter(|d| d.overlay().is_file())
        .map(|d| read_entry(d.path(), thumb))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_summaries_leniently() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("img1");
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let png = crate::raster::encode_rgb("t", vec![90; 64 * 32 * 3], 64, 32).unwrap();
        std::fs::write(one.join("overlay.png"), png).unwrap();
        std::fs::write(
            one.join("summary.json"),
            r#"{"stride": 4, "regions": [{"lesion": "EX"}, {"lesion": "MA"}, {"lesion": 2}, {}],
                "image_probability": {"MA": 0.1, "HE": 0.2, "EX": 0.9, "SE": 0.0}}"#,
        )
        .unwrap();
        let maps = read_maps(dir.path(), 16).unwrap();
        assert_eq!(maps.len(), 1);
        let m = &maps[0];
        assert_eq!(
            (m.image_id.as_str(), m.size, m.stride),
            ("img1", (64, 32), Some(4))
        );
        assert_eq!((m.regions, m.regions_by_lesion), (Some(4), [1, 0, 2, 0]));
        assert_eq!(m.image_probability, Some([0.1, 0.2, 0.9, 0.0]));
        assert_eq!(image::load_from_memory(&m.overlay_png).unwrap().width(), 16);
        std::fs::write(one.join("summary.json"), "[1]").unwrap();
        let e = read_maps(dir.path(), 16).unwrap_err().to_string();
        assert!(e.contains("summary.json: not a JSON object"), "{e}");
    }
}
