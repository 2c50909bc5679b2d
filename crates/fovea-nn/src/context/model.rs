//! The patch classifier with its context parts ([`FoveaModel`]): the trunk, the global
//! encoder, the fusion heads, attention pooling and the contrastive projection, built from
//! a [`ContextSpec`].

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::attention::{ConcatHead, CrossAttention, GatedAttentionMil, Projection};
use super::contrastive::supervised_contrastive;
use super::encoder::{BatchContext, GlobalEncoder};
use super::spec::{ContextSpec, Fusion};
use crate::error::{NnError, Result};
use crate::models::{Classifier, ModelKind, Pool};

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
    /// them: on the CPU, libtorch's convolutions train ResNet-18 3-9 % faster and infer
    /// 19-27 % faster that way (bench/README.md) (`fovea bench train --channels-last`). Values are
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
    pub fn head(&self, feat: &Tensor, ctx: Option<&BatchContext>) -> Result<Tensor> {
        let fc = self.trunk.fc();
        match (self.spec.fusion, ctx) {
            (Fusion::Patch | Fusion::AttentionPool, _) => Ok(feat.apply(fc)),
            (Fusion::Concat, Some(c)) => {
                let head = self
                    .concat
                    .as_ref()
                    .ok_or_else(|| NnError::internal("no concat head"))?;
                let g = c.pooled.index_select(0, &c.which);
                Ok(feat.apply(fc) + head.forward(&g, &c.pos))
            }
            (Fusion::CrossAttention, Some(c)) => {
                let ca = self
                    .cross
                    .as_ref()
                    .ok_or_else(|| NnError::internal("no cross-attention"))?;
                let kv = ca.keys_values(&c.tokens, &c.token_pos);
                let (o, _) = ca.forward(feat, &c.pos, &kv, &c.mask, &c.which);
                Ok((feat + o).apply(fc))
            }
            (f, None) => Err(NnError::MissingContext {
                fusion: f.to_string(),
            }),
        }
    }

    /// Logits `[B, 4]` and pooled features `[B, C]` of patches `xs`.
    pub fn forward(
        &self,
        xs: &Tensor,
        ctx: Option<&BatchContext>,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
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
    use crate::context::attention;
    use tch::Device;

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
                assert!(matches!(
                    m.head(&f, None).unwrap_err(),
                    NnError::MissingContext { .. }
                ));
            }
        }
    }
}
