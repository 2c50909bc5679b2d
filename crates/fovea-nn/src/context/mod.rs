//! Whole-image context: a global encoder of the downscaled photograph fused with the patch
//! classifier's features.
//!
//! Variants (`context.fusion`, one training command):
//! - `patch`: the patch classifier alone (the baseline);
//! - `concat`: late fusion, the photograph's pooled vector (and the patch's position)
//!   concatenated with the patch feature before the classifier;
//! - `cross-attention`: the patch feature plus its position queries the photograph's
//!   feature-map tokens (multi-head attention), the result added back before the classifier;
//! - `attention-pool`: gated-attention pooling over the patches of a photograph for
//!   image-level lesion presence, trained jointly with the patch head (a bag of patches of
//!   one training photograph per step).
//!
//! Any variant can add a supervised contrastive term on the patch embeddings
//! (`context.contrastive_weight`).
//!
//! The global encoder (ResNet-18 trunk, `global.*` variables) sees the field of view's
//! bounding square, downscaled to `input_size`. Frozen (the default), its features are
//! computed once per photograph and cached on disk, keyed by the photograph and a hash of
//! the encoder's weights and input settings ([`global`]).

pub mod attention;
pub mod contrastive;
pub mod global;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::models::resnet::RESNET18_FEATURES;
use crate::models::{Classifier, ModelKind, Pool};

pub use attention::{ConcatHead, CrossAttention, GatedAttentionMil, Projection};
pub use contrastive::supervised_contrastive;
pub use global::{BatchContext, Frame, GlobalContext, GlobalEncoder};

/// How patch and photograph are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

    pub fn parse(s: &str) -> Option<Fusion> {
        Fusion::ALL.into_iter().find(|f| f.as_str() == s)
    }

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
pub enum EncoderKind {
    #[default]
    Resnet18,
    /// Swin-T in torchvision's `swin_t` layout ([`crate::models::swin`]).
    SwinT,
}

impl EncoderKind {
    pub fn parse(s: &str) -> Option<EncoderKind> {
        match s {
            "resnet18" => Some(EncoderKind::Resnet18),
            "swin-t" => Some(EncoderKind::SwinT),
            _ => None,
        }
    }
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
    pub fn validate(&self) -> Result<(), String> {
        let bad = |name: &str, why: String| Err(format!("invalid setting context.{name}: {why}"));
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

/// Hidden width of the gated-attention branches.
const MIL_HIDDEN: i64 = 128;

/// The patch classifier with its context parts: what training, evaluation and maps run.
#[derive(Debug)]
pub struct FoveaModel {
    pub trunk: Classifier,
    pub spec: ContextSpec,
    pub encoder: Option<GlobalEncoder>,
    pub concat: Option<ConcatHead>,
    pub cross: Option<CrossAttention>,
    pub mil: Option<GatedAttentionMil>,
    pub projection: Option<Projection>,
    /// Whether the weights are laid out channels-last ([`FoveaModel::use_channels_last`]);
    /// patches are then re-laid the same way before the trunk.
    pub channels_last: bool,
}

impl FoveaModel {
    /// Builds every part under `root` (randomly initialised): the trunk at the root (its
    /// torchvision names), the global encoder under `global`, fusion heads under
    /// `fusion`, attention pooling under `mil`, the contrastive projection under `proj`.
    pub fn new(root: &nn::Path, kind: ModelKind, pool: Pool, spec: &ContextSpec) -> FoveaModel {
        let trunk = Classifier::new(root, kind, 4).with_pool(pool);
        let c = trunk.feature_dim();
        let encoder = spec
            .fusion
            .needs_global()
            .then(|| GlobalEncoder::new(&(root / "global"), spec.encoder));
        let g = spec.encoder.dim();
        let concat =
            (spec.fusion == Fusion::Concat).then(|| ConcatHead::new(&(root / "fusion"), g, 4));
        let cross = (spec.fusion == Fusion::CrossAttention)
            .then(|| CrossAttention::new(&(root / "fusion"), c, g, spec.dim, spec.heads));
        let mil = (spec.fusion == Fusion::AttentionPool)
            .then(|| GatedAttentionMil::new(&(root / "mil"), c, MIL_HIDDEN, 4));
        let projection = spec
            .projection_dim
            .map(|d| Projection::new(&(root / "proj"), c, d));
        FoveaModel {
            trunk,
            spec: spec.clone(),
            encoder,
            concat,
            cross,
            mil,
            projection,
            channels_last: false,
        }
    }

    /// Lays the model's convolution weights out channels-last (NHWC), and its input with
    /// them: on the CPU, libtorch's convolutions train ResNet-18 about 14 % faster and
    /// infer about 25 % faster that way (`fovea bench train --channels-last`). Values are
    /// unchanged; call it before creating the optimiser, whose moments follow the layout.
    pub fn use_channels_last(&mut self, vs: &nn::VarStore) {
        crate::layout::vars_channels_last(vs);
        self.channels_last = true;
    }

    pub fn fusion(&self) -> Fusion {
        self.spec.fusion
    }

    /// Whether logits depend on the photograph (a [`BatchContext`] is needed).
    pub fn needs_context(&self) -> bool {
        self.spec.fusion.needs_global()
    }

    /// Pooled patch features `[B, C]`.
    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        if self.channels_last && !crate::layout::is_channels_last(xs) {
            self.trunk
                .features(&crate::layout::channels_last(xs), train)
        } else {
            self.trunk.features(xs, train)
        }
    }

    /// Logits `[B, 4]` of pooled patch features `[B, C]` in their photographs' context.
    pub fn head(&self, feat: &Tensor, ctx: Option<&BatchContext>) -> Result<Tensor, String> {
        let fc = self.trunk.fc();
        match (self.spec.fusion, ctx) {
            (Fusion::Patch | Fusion::AttentionPool, _) => Ok(feat.apply(fc)),
            (Fusion::Concat, Some(c)) => {
                let head = self.concat.as_ref().ok_or("internal: no concat head")?;
                let g = c.pooled.index_select(0, &c.which);
                Ok(feat.apply(fc) + head.forward(&g, &c.pos))
            }
            (Fusion::CrossAttention, Some(c)) => {
                let ca = self.cross.as_ref().ok_or("internal: no cross-attention")?;
                let kv = ca.keys_values(&c.tokens, &c.token_pos);
                let (o, _) = ca.forward(feat, &c.pos, &kv, &c.mask, &c.which);
                Ok((feat + o).apply(fc))
            }
            (f, None) => Err(format!(
                "fusion \"{f}\" needs the photograph's global features, and none were given"
            )),
        }
    }

    /// Logits `[B, 4]` and pooled features `[B, C]` of patches `xs`.
    pub fn forward(
        &self,
        xs: &Tensor,
        ctx: Option<&BatchContext>,
        train: bool,
    ) -> Result<(Tensor, Tensor), String> {
        let f = self.features(xs, train);
        Ok((self.head(&f, ctx)?, f))
    }

    /// Image-level logits `[4]` of a bag of patch features `[N, C]` (attention pooling).
    pub fn bag_logits(&self, feat: &Tensor) -> Option<(Tensor, Tensor)> {
        self.mil.as_ref().map(|m| m.forward(feat, None))
    }

    /// The contrastive term of a batch (zero without a projection head).
    pub fn contrastive(&self, feat: &Tensor, labels: &Tensor, temperature: f64) -> Option<Tensor> {
        self.projection
            .as_ref()
            .map(|p| supervised_contrastive(&p.forward(feat), labels, temperature))
    }

    /// Freezes the global encoder (`requires_grad` off for `global.*`) when asked, and
    /// its unused classifier always.
    pub fn freeze_encoder(vs: &nn::VarStore, all: bool) {
        for (name, mut t) in vs.variables() {
            if name.starts_with("global.fc.") || (all && name.starts_with("global.")) {
                let _ = t.requires_grad_(false);
            }
        }
    }
}

/// Mean binary cross-entropy of bag logits `[4]` against bag labels `[4]`.
pub fn bag_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(
        &labels.to_kind(Kind::Float),
        None,
        None,
        tch::Reduction::Mean,
    )
}

impl Module for FoveaModel {
    /// Patch logits without context (patch and attention-pool variants).
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.features(xs, false).apply(self.trunk.fc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn fusion_names_round_trip_and_settings_validate() {
        for f in Fusion::ALL {
            assert_eq!(Fusion::parse(f.as_str()), Some(f));
        }
        let s = ContextSettings::default();
        s.validate().unwrap();
        let bad = ContextSettings {
            input_size: 100,
            ..s.clone()
        };
        assert!(bad.validate().unwrap_err().contains("context.input_size"));
        let bad = ContextSettings {
            dim: 130,
            ..s.clone()
        };
        assert!(bad.validate().unwrap_err().contains("context.dim"));
        let text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<ContextSettings>(&text).unwrap(), s);
        assert_eq!(
            toml::from_str::<ContextSettings>("fusion = \"cross-attention\"")
                .unwrap()
                .fusion,
            Fusion::CrossAttention
        );
    }

    #[test]
    fn every_variant_gives_four_logits() {
        for fusion in Fusion::ALL {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let spec = ContextSpec {
                fusion,
                input_size: 64,
                projection_dim: Some(8),
                ..Default::default()
            };
            let m = FoveaModel::new(&vs.root(), ModelKind::Cnn, Pool::Max, &spec);
            let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
            let ctx = m.encoder.as_ref().map(|e| {
                let img = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
                let (pooled, tokens) = e.encode(&img, false);
                let t = tokens.size()[1];
                BatchContext {
                    pooled,
                    tokens,
                    mask: Tensor::ones([2, t], (Kind::Bool, Device::Cpu)),
                    token_pos: attention::grid_positions(2, 2),
                    which: Tensor::from_slice(&[0i64, 1, 1]),
                    pos: Tensor::rand([3, 2], (Kind::Float, Device::Cpu)),
                }
            });
            let (logits, f) = m.forward(&x, ctx.as_ref(), false).unwrap();
            assert_eq!(logits.size(), vec![3, 4], "{fusion}");
            assert_eq!(f.size(), vec![3, 128]);
            assert_eq!(m.bag_logits(&f).is_some(), fusion == Fusion::AttentionPool);
            let y = Tensor::from_slice(&[1f32, 0., 0., 0., 1., 0., 0., 0., 0., 0., 1., 0.])
                .view([3, 4]);
            assert!(m
                .contrastive(&f, &y, 0.1)
                .unwrap()
                .double_value(&[])
                .is_finite());
            if fusion.needs_global() {
                assert!(m.head(&f, None).unwrap_err().contains("global features"));
            }
        }
    }
}
