//! What a fused model is (`[context]` of the training settings, [`ContextSettings`]) and
//! what its saved model records ([`ContextSpec`]): the fusion variant and the global
//! encoder's architecture and sizes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::models::resnet::RESNET18_FEATURES;

/// How patch and photograph are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Fusion {
    #[default]
    Patch,
    Concat,
    CrossAttention,
    AttentionPool,
}

impl Fusion {
    pub const ALL: [Fusion; 4] = [
        Fusion::Patch,
        Fusion::Concat,
        Fusion::CrossAttention,
        Fusion::AttentionPool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fusion::Patch => "patch",
            Fusion::Concat => "concat",
            Fusion::CrossAttention => "cross-attention",
            Fusion::AttentionPool => "attention-pool",
        }
    }

    /// Whether the variant reads the global encoder's features.
    pub fn needs_global(self) -> bool {
        matches!(self, Fusion::Concat | Fusion::CrossAttention)
    }
}

impl std::fmt::Display for Fusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole-image encoder's architecture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EncoderKind {
    #[default]
    Resnet18,
    /// Swin-T in torchvision's `swin_t` layout ([`crate::models::swin`]).
    SwinT,
}

impl EncoderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EncoderKind::Resnet18 => "resnet18",
            EncoderKind::SwinT => "swin-t",
        }
    }

    /// Width of a token and of the pooled vector.
    pub fn dim(self) -> i64 {
        match self {
            EncoderKind::Resnet18 => RESNET18_FEATURES,
            EncoderKind::SwinT => crate::models::swin::SWIN_T_DIM,
        }
    }
}

/// `[context]` of the training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextSettings {
    /// "patch", "concat", "cross-attention" or "attention-pool".
    pub fusion: Fusion,
    /// Global encoder architecture: "resnet18" or "swin-t".
    pub encoder: EncoderKind,
    /// Side of the square the field of view is downscaled to for the global encoder
    /// (a multiple of 32).
    pub input_size: u32,
    /// Keep the global encoder's weights fixed (its features are then cached).
    pub frozen: bool,
    /// ImageNet weights for the global encoder in torchvision's names (`resnet18` or
    /// `swin_t` state dict, `.pth`/`.pt`/`.safetensors`).
    pub pretrained: Option<PathBuf>,
    /// Where cached global features go (default `RUN/global_cache`).
    pub cache_dir: Option<PathBuf>,
    /// The photographs (default: the dataset the store was extracted from).
    pub dataset: Option<PathBuf>,
    /// Cross-attention width and heads.
    pub dim: i64,
    pub heads: i64,
    /// Attention pooling: patches per bag (one training photograph per step) and the
    /// weight of the image-level loss.
    pub bag_size: usize,
    pub bag_weight: f64,
    /// Weight of the supervised contrastive term (0 = off), its temperature and the
    /// projection's width.
    pub contrastive_weight: f64,
    pub temperature: f64,
    pub projection_dim: i64,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            fusion: Fusion::Patch,
            encoder: EncoderKind::Resnet18,
            input_size: 512,
            frozen: true,
            pretrained: None,
            cache_dir: None,
            dataset: None,
            dim: 128,
            heads: 4,
            bag_size: 48,
            bag_weight: 0.5,
            contrastive_weight: 0.0,
            temperature: 0.1,
            projection_dim: 128,
        }
    }
}

impl ContextSettings {
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, why: String| Err(NnError::setting(&format!("context.{name}"), why));
        if self.input_size < 64 || self.input_size > 2048 || self.input_size % 32 != 0 {
            return bad(
                "input_size",
                format!("{} must be a multiple of 32 in 64..=2048", self.input_size),
            );
        }
        if self.dim <= 0 || self.heads <= 0 || self.dim % self.heads != 0 {
            return bad(
                "dim",
                format!(
                    "{} must be a positive multiple of heads ({})",
                    self.dim, self.heads
                ),
            );
        }
        if self.bag_size < 2 {
            return bad("bag_size", format!("{} must be at least 2", self.bag_size));
        }
        if !(self.bag_weight.is_finite() && self.bag_weight >= 0.0) {
            return bad("bag_weight", format!("{} must be >= 0", self.bag_weight));
        }
        if !(self.contrastive_weight.is_finite() && self.contrastive_weight >= 0.0) {
            return bad(
                "contrastive_weight",
                format!("{} must be >= 0", self.contrastive_weight),
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", format!("{} must be > 0", self.temperature));
        }
        if self.projection_dim <= 0 {
            return bad("projection_dim", "must be positive".into());
        }
        if self.pretrained.is_some() && !self.fusion.needs_global() {
            return bad(
                "pretrained",
                format!("fusion \"{}\" has no global encoder", self.fusion),
            );
        }
        Ok(())
    }

    /// What a saved model needs to be rebuilt.
    pub fn spec(&self) -> ContextSpec {
        ContextSpec {
            fusion: self.fusion,
            encoder: self.encoder,
            input_size: self.input_size,
            dim: self.dim,
            heads: self.heads,
            projection_dim: (self.contrastive_weight > 0.0).then_some(self.projection_dim),
        }
    }
}

/// Recorded in `model.toml`: the architecture beyond the patch classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    pub fusion: Fusion,
    pub encoder: EncoderKind,
    pub input_size: u32,
    pub dim: i64,
    pub heads: i64,
    pub projection_dim: Option<i64>,
}

impl Default for ContextSpec {
    fn default() -> Self {
        ContextSettings::default().spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_names_round_trip_and_settings_validate() {
        // The settings' spelling (serde) is the name Fovea prints (and clap's ValueEnum
        // derives the same kebab-case names).
        for f in Fusion::ALL {
            let quoted = format!("\"{}\"", f.as_str());
            assert_eq!(serde_json::to_string(&f).unwrap(), quoted);
            assert_eq!(serde_json::from_str::<Fusion>(&quoted).unwrap(), f);
        }
        let s = ContextSettings::default();
        s.validate().unwrap();
        let bad = ContextSettings {
            input_size: 100,
            ..s.clone()
        };
        assert!(matches!(
            bad.validate().unwrap_err(),
            NnError::Setting { name, .. } if name == "context.input_size"
        ));
        let bad = ContextSettings {
            dim: 130,
            ..s.clone()
        };
        assert!(matches!(
            bad.validate().unwrap_err(),
            NnError::Setting { name, .. } if name == "context.dim"
        ));
        let text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<ContextSettings>(&text).unwrap(), s);
        assert_eq!(
            toml::from_str::<ContextSettings>("fusion = \"cross-attention\"")
                .unwrap()
                .fusion,
            Fusion::CrossAttention
        );
    }
}
