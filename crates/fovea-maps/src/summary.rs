//! `summary.json` (CONTRACTS 5): what `fovea predict` found in one photograph, and the
//! image-level lesion probability it reports (the highest window probability inside the
//! field of view).

use std::collections::BTreeMap;
use std::path::Path;

use fovea_data::fov::FovGrid;
use serde::{Deserialize, Serialize};

use crate::blend::WindowWeight;
use crate::error::{MapsError, Result};
use crate::grid::WindowGrid;
use crate::heatmap::NUM_LESIONS;
use crate::json::{read_json, write_json_atomic};
use crate::regions::Region;

/// The summary of one photograph's lesion maps. Maps are keyed by lesion code
/// (`MA`, `HE`, `EX`, `SE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapSummary {
    /// Image identifier (the `MAPS/<image_id>/` folder name).
    pub image_id: String,
    /// Path of the photograph.
    pub image: String,
    /// Photograph width and height in pixels.
    pub width: u32,
    pub height: u32,
    /// Heatmap cell side in pixels (CONTRACTS 5's `stride`).
    pub stride: u32,
    /// Distance between window origins in pixels (1 for a segmentation model, which
    /// scores every pixel).
    pub window_stride: u32,
    /// Window side in pixels (a segmentation model: the side of its inference tiles, in
    /// the photograph's pixels).
    pub patch_size: u32,
    /// How overlapping windows were weighted; absent for a segmentation model, whose
    /// tiles are blended with a linear ramp over their overlap
    /// (`fovea_nn::segmentation::infer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_weight: Option<WindowWeight>,
    /// The model (run folder or checkpoint) that scored the windows.
    pub model: String,
    /// Per-lesion thresholds a region or presence is decided at.
    pub thresholds: BTreeMap<String, f64>,
    /// Per-lesion highest window probability inside the field of view.
    pub image_probability: BTreeMap<String, f64>,
    /// Per-lesion `image_probability >= threshold`.
    pub present: BTreeMap<String, bool>,
    /// Detected regions (see [`crate::regions`]).
    pub regions: Vec<Region>,
    /// Lesion counts: the number of `regions` of each lesion ([`lesion_counts`]; 0 for
    /// a lesion without one). Absent from summaries written before it (read as empty).
    #[serde(default)]
    pub lesion_counts: BTreeMap<String, usize>,
    /// Wall-clock seconds taken for this photograph.
    pub seconds: f64,
}

/// The four values keyed by lesion code.
pub fn by_lesion<T>(values: [T; NUM_LESIONS]) -> BTreeMap<String, T> {
    fovea_data::LESION_CODES
        .iter()
        .map(|l| l.to_string())
        .zip(values)
        .collect()
}

/// The number of regions of each lesion, keyed by lesion code (all four present).
pub fn lesion_counts(regions: &[Region]) -> BTreeMap<String, usize> {
    by_lesion(std::array::from_fn(|c| {
        let code = fovea_data::LESION_CODES[c];
        regions.iter().filter(|r| r.lesion == code).count()
    }))
}

/// `[image_probability[c] >= thresholds[c]]` keyed by lesion code.
pub fn presence(
    image_probability: [f32; NUM_LESIONS],
    thresholds: [f64; NUM_LESIONS],
) -> BTreeMap<String, bool> {
    by_lesion(std::array::from_fn(|c| {
        f64::from(image_probability[c]) >= thresholds[c]
    }))
}

/// Image-level probabilities: per lesion, the highest score of the windows that contain at
/// least one field-of-view pixel (all windows when `fov` is `None`, or when no window
/// touches the field of view). Errors as [`crate::blend::blend`] on the scores, or if
/// `fov` is for another size.
pub fn image_probability(
    grid: &WindowGrid,
    scores: &[[f32; NUM_LESIONS]],
    fov: Option<&FovGrid>,
) -> Result<[f32; NUM_LESIONS]> {
    if scores.len() != grid.len() {
        return Err(MapsError::ScoreCount {
            expected: grid.len(),
            got: scores.len(),
            rows: grid.rows,
            cols: grid.cols,
        });
    }
    if let Some(f) = fov {
        if (f.width, f.height) != (grid.width, grid.height) {
            return Err(MapsError::SizeMismatch {
                what: "the field of view".into(),
                got_w: f.width,
                got_h: f.height,
                want_w: grid.width,
                want_h: grid.height,
            });
        }
    }
    let mut best = [f32::NEG_INFINITY; NUM_LESIONS];
    let mut all = [f32::NEG_INFINITY; NUM_LESIONS];
    for (k, s) in scores.iter().enumerate() {
        if let Some(c) = s.iter().position(|v| !v.is_finite()) {
            return Err(MapsError::NonFiniteScore {
                window: k,
                lesion: fovea_data::LESION_CODES[c],
                value: s[c],
            });
        }
        let (x, y) = grid.origin(k / grid.cols, k % grid.cols);
        let in_fov = fov.is_none_or(|f| f.count_in_rect(x, y, grid.patch, grid.patch) > 0);
        for c in 0..NUM_LESIONS {
            all[c] = all[c].max(s[c]);
            if in_fov {
                best[c] = best[c].max(s[c]);
            }
        }
    }
    if best[0] == f32::NEG_INFINITY {
        best = all;
    }
    Ok(best)
}

impl MapSummary {
    /// `image_probability` in lesion order (MA, HE, EX, SE); 0 for a lesion it lacks.
    pub fn probabilities(&self) -> [f32; NUM_LESIONS] {
        std::array::from_fn(|c| {
            self.image_probability
                .get(fovea_data::LESION_CODES[c])
                .copied()
                .unwrap_or(0.0) as f32
        })
    }

    /// Writes the summary as pretty JSON, atomically.
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> Result<()> {
        write_json_atomic(self, path.as_ref())
    }

    /// Reads a summary; errors name the file.
    pub fn read(path: impl AsRef<Path>) -> Result<MapSummary> {
        read_json(path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MapSummary {
        let probs = [0.9f32, 0.2, 0.6, 0.05];
        let t = [0.5, 0.5, 0.7, 0.3];
        MapSummary {
            image_id: "IDRiD_55".into(),
            image: "/data/IDRiD_55.jpg".into(),
            width: 4288,
            height: 2848,
            stride: 8,
            window_stride: 32,
            patch_size: 64,
            window_weight: Some(WindowWeight::Hann),
            model: "runs/r18".into(),
            thresholds: by_lesion(t),
            image_probability: by_lesion(probs.map(f64::from)),
            present: presence(probs, t),
            regions: vec![Region {
                lesion: "MA".into(),
                x: 8,
                y: 16,
                width: 24,
                height: 8,
                area_px: 192,
                peak: 0.9,
                mean: 0.7,
            }],
            lesion_counts: BTreeMap::new(),
            seconds: 1.25,
        }
    }

    #[test]
    fn round_trip_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let mut s = sample();
        s.lesion_counts = lesion_counts(&s.regions);
        s.write_atomic(&path).unwrap();
        assert_eq!(MapSummary::read(&path).unwrap(), s);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["stride"], 8);
        assert_eq!(v["window_weight"], "hann");
        assert_eq!(v["present"]["MA"], true);
        assert_eq!(v["present"]["EX"], false);
        assert_eq!(v["thresholds"]["SE"], 0.3);
        assert_eq!(v["lesion_counts"]["MA"], 1);
        assert_eq!(s.probabilities(), [0.9, 0.2, 0.6, 0.05]);
        assert_eq!(v["lesion_counts"]["SE"], 0);
        // A segmentation model's summary has no window weight; an older summary has no
        // lesion counts: both read.
        let mut seg = s.clone();
        seg.window_weight = None;
        seg.write_atomic(&path).unwrap();
        assert_eq!(MapSummary::read(&path).unwrap(), seg);
        let mut old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(old.get("window_weight").is_none());
        old.as_object_mut().unwrap().remove("lesion_counts");
        std::fs::write(&path, old.to_string()).unwrap();
        assert!(MapSummary::read(&path).unwrap().lesion_counts.is_empty());
        let keys: Vec<&String> = v["image_probability"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, "{\"image_id\": 3}").unwrap();
        let e = MapSummary::read(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        let e = MapSummary::read(dir.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.json"), "{e}");
    }

    #[test]
    fn image_probability_ignores_windows_outside_the_fov() {
        // 8x4 photograph, P = 4, S = 4: two windows; only the right half is retina.
        let g = WindowGrid::new(8, 4, 4, 4).unwrap();
        let fov = FovGrid {
            width: 8,
            height: 4,
            block: 4,
            cols: 2,
            rows: 1,
            cells: vec![0, 1],
        };
        let scores = [[0.9, 0.1, 0.5, 0.0], [0.2, 0.3, 0.4, 0.0]];
        assert_eq!(
            image_probability(&g, &scores, Some(&fov)).unwrap(),
            [0.2, 0.3, 0.4, 0.0]
        );
        assert_eq!(
            image_probability(&g, &scores, None).unwrap(),
            [0.9, 0.3, 0.5, 0.0]
        );
        let dark = FovGrid {
            cells: vec![0, 0],
            ..fov.clone()
        };
        assert_eq!(
            image_probability(&g, &scores, Some(&dark)).unwrap(),
            [0.9, 0.3, 0.5, 0.0]
        );
        assert!(image_probability(&g, &scores[..1], None).is_err());
    }

    /// What `eval-maps --maps-dir` does with a map folder: summary.json, then heatmap.npy
    /// at the size and cell the summary claims.
    fn read_folder(dir: &Path) -> Result<crate::Heatmap> {
        let sum = MapSummary::read(dir.join("summary.json"))?;
        crate::Heatmap::read_npy(dir.join("heatmap.npy"), sum.width, sum.height, sum.stride)
    }

    #[test]
    fn absurd_sizes_in_a_summary_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        crate::Heatmap::new(10, 7, 3)
            .unwrap()
            .write_npy(dir.path().join("heatmap.npy"))
            .unwrap();
        for (w, h, cell) in [(u32::MAX, u32::MAX, 1), (0, 7, 3), (10, 7, 0), (10, 0, 1)] {
            let mut sum = sample();
            (sum.width, sum.height, sum.stride) = (w, h, cell);
            sum.write_atomic(dir.path().join("summary.json")).unwrap();
            let e = read_folder(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("heatmap") || e.contains("cell"),
                "{w}x{h}/{cell}: {e}"
            );
        }
    }

    proptest::proptest! {
        /// A summary.json with any byte changed, cut short, or with random numbers for its
        /// sizes: an error or a heatmap, never a panic.
        #[test]
        fn mutated_summaries_never_panic(
            pos in 0usize..2000,
            byte in proptest::num::u8::ANY,
            cut in proptest::option::of(0usize..2000),
            size in proptest::option::of((0u32..=u32::MAX, 0u32..=u32::MAX, 0u32..=u32::MAX)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut sum = sample();
            (sum.width, sum.height, sum.stride) = (10, 7, 3);
            if let Some((w, h, c)) = size {
                (sum.width, sum.height, sum.stride) = (w, h, c);
            }
            crate::Heatmap::new(10, 7, 3)
                .unwrap()
                .write_npy(dir.path().join("heatmap.npy"))
                .unwrap();
            let mut json = serde_json::to_vec_pretty(&sum).unwrap();
            let k = pos % json.len();
            json[k] = byte;
            if let Some(n) = cut {
                json.truncate(n % (json.len() + 1));
            }
            std::fs::write(dir.path().join("summary.json"), &json).unwrap();
            let _ = read_folder(dir.path());
        }
    }
}
