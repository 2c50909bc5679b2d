//! The segmentation model's settings: the `[segmentation]` table of the training settings
//! (`--config FILE`), with the tiles it trains on (`[segmentation.tiles]`, fovea-loader's
//! [`TileSettings`]), its loss (`[segmentation.loss]`), how whole photographs are mapped
//! (`[segmentation.infer]`) and how much validation is done. Recorded resolved in
//! `RUN/config.toml`.

use std::path::PathBuf;

use fovea_loader::tiles::TileSettings;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::models::unet::SegEncoder;
use crate::seg_loss::SegLossSettings;

/// Which model family `fovea train` trains (`task` in the settings, `--task`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainTask {
    /// The patch classifier on a patch store (`crate::train`).
    #[default]
    Classifier,
    /// The U-Net on the photographs and masks of the store's dataset
    /// (`crate::segmentation`).
    Segmentation,
}

impl TrainTask {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainTask::Classifier => "classifier",
            TrainTask::Segmentation => "segmentation",
        }
    }

    /// The family's name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            TrainTask::Classifier => "patch-classifier",
            TrainTask::Segmentation => "segmentation",
        }
    }
}

/// Whole-photograph inference ([`super::infer`]): tiles of `tile` pixels (of the photograph
/// at the model's scale) overlapping by `overlap`, blended with weights that fall off
/// towards the tile edges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferSettings {
    /// Tile side in pixels (a smaller photograph is mapped in one tile of its own size).
    pub tile: u32,
    /// Pixels shared by neighbouring tiles; less than `tile`.
    pub overlap: u32,
    /// Tiles per forward pass.
    pub batch: usize,
}

impl Default for InferSettings {
    fn default() -> Self {
        InferSettings {
            tile: 512,
            overlap: 64,
            batch: 1,
        }
    }
}

impl InferSettings {
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(16..=8192).contains(&self.tile) {
            return Err(NnError::setting(
                &format!("{prefix}.tile"),
                format!("{} is not in 16..=8192", self.tile),
            ));
        }
        if self.overlap >= self.tile {
            return Err(NnError::setting(
                &format!("{prefix}.overlap"),
                format!("{} must be less than tile ({})", self.overlap, self.tile),
            ));
        }
        if self.batch == 0 {
            return Err(NnError::setting(
                &format!("{prefix}.batch"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The `[segmentation]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegSettings {
    /// The U-Net's encoder (`--model` with `--task segmentation`): `small` (CPU-sized),
    /// `resnet18` or `resnet34` (torchvision's names; `--pretrained` loads ImageNet weights).
    pub encoder: SegEncoder,
    /// The photographs and masks (default: the dataset the store was extracted from; the
    /// split is always the store's).
    pub dataset: Option<PathBuf>,
    /// Training tiles: side, scale, batch size, tiles per epoch, lesion draw weights,
    /// augmentation, cache bytes (defaults: fovea-loader's [`TileSettings`]: 256-pixel
    /// tiles at full resolution, 8 per batch, 2048 per epoch, 1 GiB cache). Its `seed` is
    /// the run's and its `enhance` and `fov` the store's (`extract.toml`), set when the
    /// run starts.
    pub tiles: TileSettings,
    /// BCE or focal per pixel plus soft Dice per lesion.
    pub loss: SegLossSettings,
    /// Whole-photograph inference (validation, and `predict` later).
    pub infer: InferSettings,
    /// Validation photographs scored after every epoch, the first ones of the validation
    /// split in id order; 0 = all. Validation maps every pixel of each at full resolution.
    pub val_images: usize,
}

impl Default for SegSettings {
    /// The CPU-sized small encoder; the tiles' own defaults.
    fn default() -> Self {
        SegSettings {
            encoder: SegEncoder::Small,
            dataset: None,
            tiles: TileSettings::default(),
            loss: SegLossSettings::default(),
            infer: InferSettings::default(),
            val_images: 0,
        }
    }
}

impl SegSettings {
    /// Checks every setting; the message names it.
    pub fn validate(&self) -> Result<()> {
        self.tiles.validate()?;
        self.loss
            .validate()
            .map_err(|e| NnError::setting("segmentation.loss", e))?;
        self.infer.validate("segmentation.infer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let s = SegSettings::default();
        s.validate().unwrap();
        let back: SegSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let bad: SegSettings = toml::from_str("[infer]\ntile = 64\noverlap = 64").unwrap();
        assert!(
            matches!(bad.validate(), Err(NnError::Setting { name, .. }) if name == "segmentation.infer.overlap")
        );
        assert!(toml::from_str::<SegSettings>("encoderr = \"small\"").is_err());
    }

    #[test]
    fn shipped_segmentation_configs_parse_and_validate() {
        use crate::settings::TrainSettings;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for name in ["seg-cpu.toml", "seg-gpu.toml"] {
            let s = TrainSettings::from_toml_file(&dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.task, TrainTask::Segmentation, "{name}");
            let seg = s.segmentation.clone().expect("a [segmentation] table");
            seg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
