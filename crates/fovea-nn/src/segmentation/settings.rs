//! The segmentation model's settings: the `[segmentation]` table of the training settings
//! (`--config FILE`), with the tiles it trains on (`[segmentation.tiles]`, fovea-loader's
//! [`TileSettings`]), its loss (`[segmentation.loss]`), how whole photographs are mapped
//! (`[segmentation.infer]`) and how much validation is done. Recorded resolved in
//! `RUN/config.toml`.

use std::path::PathBuf;

use fovea_loader::tiles::TileSettings;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// augmentation, cache bytes. A setting the table does not give takes its CPU-sized
    /// default ([`cpu_tiles`]). Its `seed` is the run's and its `enhance` and `fov` the
    /// store's (`extract.toml`), set when the run starts.
    #[serde(deserialize_with = "tiles_over_cpu_defaults")]
    pub tiles: TileSettings,
    /// BCE or focal per pixel plus soft Dice per lesion.
    pub loss: SegLossSettings,
    /// Whole-photograph inference (validation, and `predict` later).
    pub infer: InferSettings,
    /// Validation photographs scored after every epoch, the first ones of the validation
    /// split in id order; 0 = all. Validation maps every pixel of each at full resolution
    /// (21-26 s per 4288 x 2848 photograph with the small encoder on 2 cores, README
    /// "Lesion segmentation"), so the default, 2, keeps it a small part of an epoch.
    pub val_images: usize,
}

/// The tiles' CPU-sized defaults: fovea-loader's [`TileSettings`] (full resolution,
/// lesion-aware draws, augmentation) with 128-pixel tiles, 8 per batch, 512 per epoch, a
/// 1 GiB cache and one worker.
pub fn cpu_tiles() -> TileSettings {
    TileSettings {
        side: 128,
        batch_size: 8,
        tiles_per_epoch: 512,
        cache_bytes: 1 << 30,
        workers: 1,
        ..TileSettings::default()
    }
}

/// A `[segmentation.tiles]` table over [`cpu_tiles`]: what it gives (nested tables key by
/// key) replaces the default, the rest stays (unknown keys are still refused).
fn tiles_over_cpu_defaults<'de, D: Deserializer<'de>>(d: D) -> Result<TileSettings, D::Error> {
    let given = toml::Table::deserialize(d)?;
    let mut base = match toml::Value::try_from(cpu_tiles()).map_err(D::Error::custom)? {
        toml::Value::Table(t) => t,
        _ => return Err(D::Error::custom("tile settings are not a table")),
    };
    merge(&mut base, given);
    toml::Value::Table(base)
        .try_into()
        .map_err(D::Error::custom)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Default for SegSettings {
    /// CPU-sized: the small encoder, [`cpu_tiles`], 2 validation photographs.
    fn default() -> Self {
        SegSettings {
            encoder: SegEncoder::Small,
            dataset: None,
            tiles: cpu_tiles(),
            loss: SegLossSettings::default(),
            infer: InferSettings::default(),
            val_images: 2,
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
    fn a_partial_tiles_table_keeps_the_cpu_defaults() {
        let s: SegSettings =
            toml::from_str("[tiles]\nside = 64\n[tiles.augment]\nhue = 0.0\n").unwrap();
        let cpu = cpu_tiles();
        assert_eq!(s.tiles.side, 64);
        assert_eq!(
            (
                s.tiles.batch_size,
                s.tiles.tiles_per_epoch,
                s.tiles.cache_bytes
            ),
            (cpu.batch_size, cpu.tiles_per_epoch, cpu.cache_bytes)
        );
        assert_eq!(s.tiles.augment.hue, 0.0);
        assert_eq!(s.tiles.augment.rotation_deg, cpu.augment.rotation_deg);
        assert_eq!(
            toml::from_str::<SegSettings>("val_images = 1")
                .unwrap()
                .tiles,
            cpu
        );
        let e = toml::from_str::<SegSettings>("[tiles]\nsidee = 64\n").unwrap_err();
        assert!(e.to_string().contains("sidee"), "{e}");
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
