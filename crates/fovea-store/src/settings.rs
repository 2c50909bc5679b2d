//! Extraction settings: one TOML schema (`--config FILE`, and `extract.toml` in every
//! store), overridden by command-line flags, validated once before any work starts.

use std::path::{Path, PathBuf};

use fovea_data::{Enhance, FovSettings};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Everything that decides a patch store's content. Stored resolved in `extract.toml`,
/// enough to re-run the extraction bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractSettings {
    /// Dataset folder (CONTRACTS 1). `--dataset` overrides it.
    pub dataset: Option<PathBuf>,
    /// Patch side P in pixels.
    pub patch_size: u32,
    /// Grid stride S in pixels (S < P overlaps, S > P skips).
    pub stride: u32,
    /// Master seed: lesion-centred jitter and sampling, and the default split seed.
    pub seed: u64,
    /// Whether to emit grid patches.
    pub grid: bool,
    pub label: LabelSettings,
    pub black: BlackSettings,
    pub fov: FovSettings,
    /// Transform of each photograph before patches are cut (`none` or `local-contrast`).
    pub enhance: Enhance,
    pub lesion_centred: LesionCentredSettings,
    pub split: SplitSettings,
    pub select: SelectSettings,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        ExtractSettings {
            dataset: None,
            patch_size: 128,
            stride: 128,
            seed: 0,
            grid: true,
            label: LabelSettings::default(),
            black: BlackSettings::default(),
            fov: FovSettings::default(),
            enhance: Enhance::None,
            lesion_centred: LesionCentredSettings::default(),
            split: SplitSettings::default(),
            select: SelectSettings::default(),
        }
    }
}

/// The labelling rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelSettings {
    /// A lesion labels a patch when at least this many of its pixels lie in the label
    /// region (the report's rule: 1).
    pub min_lesion_px: u32,
    /// Side C of the centred label region; 0 = the whole patch.
    pub region: u32,
}

impl Default for LabelSettings {
    fn default() -> Self {
        LabelSettings {
            min_lesion_px: 1,
            region: 0,
        }
    }
}

/// What counts as a black (uninformative background) patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlackSettings {
    /// A patch with less than this fraction inside the field of view, and no lesion pixel,
    /// is black.
    pub fov_threshold: f32,
}

impl Default for BlackSettings {
    fn default() -> Self {
        BlackSettings { fov_threshold: 0.5 }
    }
}

/// Lesion-centred patches (the report's "polygon approach"): centred on connected
/// components of each lesion mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LesionCentredSettings {
    /// Patches per connected component; 0 = no lesion-centred patches.
    pub per_component: u32,
    /// At most this many lesion-centred patches per lesion type per image (components are
    /// sampled, seeded, when there are more).
    pub max_per_image: u32,
    /// Random shift of the patch centre, up to this many pixels in x and y; clamped so a
    /// component that fits in the patch stays wholly inside it.
    pub jitter: u32,
    /// Components smaller than this many pixels are ignored.
    pub min_area: u32,
}

impl Default for LesionCentredSettings {
    fn default() -> Self {
        LesionCentredSettings {
            per_component: 0,
            max_per_image: 64,
            jitter: 16,
            min_area: 1,
        }
    }
}

/// How images are split into train / val / test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSettings {
    /// Seed of the image-level split; `None` = the master seed.
    pub seed: Option<u64>,
    /// Fractions used when the dataset gives no split.
    pub train: f64,
    pub val: f64,
    pub test: f64,
    /// A CSV with columns `id` and `split` (or `official_split`, as IDRiD's
    /// `lesion_pixels.csv`) that fixes each image's split; `val` is carved out of `train`
    /// when it names no `val` image.
    pub file: Option<PathBuf>,
}

impl Default for SplitSettings {
    fn default() -> Self {
        SplitSettings {
            seed: None,
            train: 0.70,
            val: 0.15,
            test: 0.15,
            file: None,
        }
    }
}

/// Which images to extract.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectSettings {
    /// Only images of these splits (empty = all).
    pub splits: Vec<fovea_data::Split>,
    /// Only these image ids (empty = all).
    pub ids: Vec<String>,
    /// At most this many images (after the other filters, in id order; 0 = all).
    pub limit: usize,
}

impl ExtractSettings {
    /// Reads a TOML settings file; unknown keys are errors naming the file.
    pub fn from_toml_file(path: &Path) -> Result<ExtractSettings> {
        let text = crate::store::read_text(path)?;
        toml::from_str(&text).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// TOML text of these settings.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The seed of the image-level split.
    pub fn split_seed(&self) -> u64 {
        self.split.seed.unwrap_or(self.seed)
    }

    /// The label region side (resolving 0 to the whole patch).
    pub fn label_region(&self) -> u32 {
        if self.label.region == 0 {
            self.patch_size
        } else {
            self.label.region
        }
    }

    /// Checks every setting; called once before any work starts.
    pub fn validate(&self) -> Result<()> {
        let p = self.patch_size;
        if !(8..=2048).contains(&p) {
            return Err(StoreError::setting(
                "patch_size",
                format!("{p} is not in 8..=2048"),
            ));
        }
        if self.stride == 0 || self.stride > 8192 {
            return Err(StoreError::setting(
                "stride",
                format!("{} is not in 1..=8192", self.stride),
            ));
        }
        if self.label.region > p {
            return Err(StoreError::setting(
                "label.region",
                format!("{} is larger than the patch size {p}", self.label.region),
            ));
        }
        if self.label.min_lesion_px == 0 {
            return Err(StoreError::setting(
                "label.min_lesion_px",
                "must be at least 1",
            ));
        }
        let t = self.black.fov_threshold;
        if !(0.0..=1.0).contains(&t) {
            return Err(StoreError::setting(
                "black.fov_threshold",
                format!("{t} is not in [0, 1]"),
            ));
        }
        if !(self.fov.red_threshold.is_finite() && (0.0..=255.0).contains(&self.fov.red_threshold))
        {
            return Err(StoreError::setting(
                "fov.red_threshold",
                "must be in [0, 255]",
            ));
        }
        if self.fov.block == 0 || self.fov.block > 256 {
            return Err(StoreError::setting("fov.block", "must be in 1..=256"));
        }
        let s = &self.split;
        for (name, v) in [
            ("split.train", s.train),
            ("split.val", s.val),
            ("split.test", s.test),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(StoreError::setting(name, format!("{v} is not in [0, 1]")));
            }
        }
        let sum = s.train + s.val + s.test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(StoreError::setting(
                "split",
                format!("train + val + test must be 1, got {sum}"),
            ));
        }
        if s.train <= 0.0 {
            return Err(StoreError::setting("split.train", "must be above 0"));
        }
        if !self.grid && self.lesion_centred.per_component == 0 {
            return Err(StoreError::setting(
                "grid",
                "no patches would be extracted: enable grid patches or lesion-centred patches",
            ));
        }
        if self.lesion_centred.per_component > 64 {
            return Err(StoreError::setting(
                "lesion_centred.per_component",
                "must be at most 64",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_extraction_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cpu-extract.toml");
        let s = ExtractSettings::from_toml_file(&path).unwrap();
        s.validate().unwrap();
        assert_eq!((s.patch_size, s.stride), (64, 64));
        assert_eq!(s.enhance, Enhance::LocalContrast);
    }

    #[test]
    fn defaults_are_the_reports_and_valid() {
        let s = ExtractSettings::default();
        s.validate().unwrap();
        assert_eq!(
            (s.patch_size, s.stride, s.label.min_lesion_px),
            (128, 128, 1)
        );
        assert_eq!(s.label_region(), 128);
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let mut s = ExtractSettings {
            patch_size: 64,
            ..Default::default()
        };
        s.lesion_centred.per_component = 2;
        s.split.file = Some(PathBuf::from("splits.csv"));
        let back: ExtractSettings = toml::from_str(&s.to_toml()).unwrap();
        assert_eq!(back, s);
        let partial: ExtractSettings =
            toml::from_str("stride = 32\n[label]\nregion = 16\n").unwrap();
        assert_eq!(
            (partial.stride, partial.label.region, partial.patch_size),
            (32, 16, 128)
        );
        let err = toml::from_str::<ExtractSettings>("strid = 32\n").unwrap_err();
        assert!(err.to_string().contains("strid"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        type Edit = Box<dyn Fn(&mut ExtractSettings)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|s| s.patch_size = 4), "patch_size"),
            (Box::new(|s| s.stride = 0), "stride"),
            (Box::new(|s| s.label.region = 500), "label.region"),
            (
                Box::new(|s| s.black.fov_threshold = 1.5),
                "black.fov_threshold",
            ),
            (Box::new(|s| s.split.val = 0.5), "split"),
            (Box::new(|s| s.grid = false), "grid"),
        ];
        for (f, name) in cases {
            let mut s = ExtractSettings::default();
            f(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e} should name {name}");
        }
    }
}
