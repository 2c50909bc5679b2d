//! The tile sampler's settings (a `[tiles]` table of a segmentation run's settings), with
//! their validation.

use fovea_data::{Enhance, FovSettings, NUM_LESIONS};
use serde::{Deserialize, Serialize};

use crate::augment::AugmentSettings;
use crate::error::{LoaderError, Result};

/// How tiles are drawn, augmented and batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TileSettings {
    /// Tile side S in pixels of the (scaled) photograph: tiles are `[3, S, S]`.
    pub side: u32,
    /// Resolution at which tiles are cut: 1 = the photograph's own pixels (microaneurysms
    /// are a few pixels wide), 0.5 = photographs and masks first resized to half their
    /// width and height. In (0, 1].
    pub scale: f32,
    /// Relative weight of drawing a tile around a pixel of each lesion (MA, HE, EX, SE).
    pub lesion_weights: [f32; NUM_LESIONS],
    /// Relative weight of drawing a tile centred on a random pixel of the field of view.
    pub fov_weight: f32,
    /// Lesion pixels kept per image and lesion for the draws (every k-th pixel in raster
    /// order when there are more): bounds the index at `4 * 4 * max_points` bytes per image.
    pub max_points: usize,
    /// Enhancement applied to the photograph before scaling (masks untouched).
    pub enhance: Enhance,
    /// Field-of-view detection (the mask returned with each tile, and the FOV draws).
    pub fov: FovSettings,
    /// Flips, small-angle rotation (`rotation_deg`) and colour jitter, as for patches.
    /// Rotation samples the whole photograph, so corners are real pixels, not reflections.
    pub augment: AugmentSettings,
    /// Random rotation by a multiple of 90 degrees (exact: no interpolation).
    pub rot90: bool,
    /// Bytes of decoded photographs and masks kept in memory (LRU); 0 = none kept.
    pub cache_bytes: u64,
    /// Tiles per epoch.
    pub tiles_per_epoch: usize,
    /// Locality of the draws, so a cache smaller than the dataset is still reused: the
    /// tiles of an epoch are taken in groups of `group_tiles`, and a group draws its images
    /// among `group_images` photographs chosen for that group (falling back to all the
    /// split's photographs when none of them holds the lesion drawn). 0 = no restriction.
    pub group_images: usize,
    /// Tiles per group (see `group_images`).
    pub group_tiles: usize,
    /// Tiles per batch.
    pub batch_size: usize,
    /// Worker threads preparing batches; 0 = on the consumer's thread.
    pub workers: usize,
    /// Batches prepared ahead at most.
    pub queue: usize,
    /// Seed of every draw: a tile depends only on (seed, epoch, index).
    pub seed: u64,
}

impl Default for TileSettings {
    fn default() -> Self {
        TileSettings {
            side: 256,
            scale: 1.0,
            lesion_weights: [0.2; NUM_LESIONS],
            fov_weight: 0.2,
            max_points: 2048,
            enhance: Enhance::None,
            fov: FovSettings::default(),
            augment: AugmentSettings {
                rotation_deg: 10.0,
                ..AugmentSettings::default()
            },
            rot90: true,
            cache_bytes: 1 << 30,
            tiles_per_epoch: 2048,
            group_images: 8,
            group_tiles: 256,
            batch_size: 8,
            workers: 2,
            queue: 2,
            seed: 0,
        }
    }
}

impl TileSettings {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, reason: String| Err(LoaderError::setting(name, reason));
        if !(4..=8192).contains(&self.side) {
            return bad("tiles.side", format!("{} is not in 4..=8192", self.side));
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 1.0) {
            return bad("tiles.scale", format!("{} is not in (0, 1]", self.scale));
        }
        let weights = self.lesion_weights.iter().chain([&self.fov_weight]);
        if weights.clone().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return bad(
                "tiles.lesion_weights",
                "every weight (and fov_weight) must be finite and >= 0".into(),
            );
        }
        if weights.sum::<f32>() <= 0.0 {
            return bad(
                "tiles.lesion_weights",
                "the lesion weights and fov_weight are all 0".into(),
            );
        }
        for (name, v) in [
            ("tiles.max_points", self.max_points),
            ("tiles.tiles_per_epoch", self.tiles_per_epoch),
            ("tiles.group_tiles", self.group_tiles),
            ("tiles.batch_size", self.batch_size),
            ("tiles.queue", self.queue),
        ] {
            if v == 0 {
                return bad(name, "must be at least 1".into());
            }
        }
        if self.workers > 256 {
            return bad(
                "tiles.workers",
                format!("{} is more than 256", self.workers),
            );
        }
        self.augment.validate()
    }

    /// The probabilities actually used, `[MA, HE, EX, SE, FOV]`: the weights with those of
    /// lesions absent from every photograph (`present[l]` false) set to 0, normalised to
    /// sum 1. `None` when nothing is left to draw.
    pub fn probabilities(&self, present: [bool; NUM_LESIONS]) -> Option<[f64; NUM_LESIONS + 1]> {
        let mut p = [0.0f64; NUM_LESIONS + 1];
        for l in 0..NUM_LESIONS {
            p[l] = if present[l] {
                self.lesion_weights[l] as f64
            } else {
                0.0
            };
        }
        p[NUM_LESIONS] = self.fov_weight as f64;
        let sum: f64 = p.iter().sum();
        (sum > 0.0).then(|| p.map(|v| v / sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_settings_strict() {
        let s = TileSettings::default();
        s.validate().unwrap();
        assert_eq!(s.scale, 1.0, "full resolution by default");
        let toml_like: TileSettings = serde_json::from_str(r#"{"side": 64}"#).unwrap();
        assert_eq!(toml_like.side, 64);
        assert!(serde_json::from_str::<TileSettings>(r#"{"sidee": 64}"#).is_err());
        for bad in [
            TileSettings {
                side: 2,
                ..s.clone()
            },
            TileSettings {
                scale: 0.0,
                ..s.clone()
            },
            TileSettings {
                scale: 1.5,
                ..s.clone()
            },
            TileSettings {
                lesion_weights: [0.0; 4],
                fov_weight: 0.0,
                ..s.clone()
            },
            TileSettings {
                lesion_weights: [-1.0, 0.0, 0.0, 0.0],
                ..s.clone()
            },
            TileSettings {
                batch_size: 0,
                ..s.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn probabilities_drop_absent_lesions() {
        let s = TileSettings {
            lesion_weights: [1.0, 1.0, 1.0, 2.0],
            fov_weight: 1.0,
            ..Default::default()
        };
        let p = s.probabilities([true; 4]).unwrap();
        assert_eq!(p, [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 2.0 / 6.0, 1.0 / 6.0]);
        let p = s.probabilities([true, false, true, false]).unwrap();
        assert_eq!(p, [1.0 / 3.0, 0.0, 1.0 / 3.0, 0.0, 1.0 / 3.0]);
        let only_se = TileSettings {
            lesion_weights: [0.0, 0.0, 0.0, 1.0],
            fov_weight: 0.0,
            ..Default::default()
        };
        assert_eq!(only_se.probabilities([true, true, true, false]), None);
    }
}
