//! The networks: the patch classifiers, ResNet-18 (torchvision layout, [`resnet`]) and a
//! shallow CNN baseline ([`cnn`]), each with four logits (MA, HE, EX, SE) over a global
//! pooling ([`Pool`]); Swin-T ([`swin`]), used only as a whole-image encoder; and the
//! segmentation U-Net ([`unet`]), four logits per pixel over a ResNet-18/34 or small
//! encoder.

pub mod cnn;
pub mod pool;
pub mod resnet;
pub mod swin;
pub mod unet;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub use cnn::ShallowCnn;
pub use pool::Pool;
pub use resnet::ResNet18;

/// Which architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ModelKind {
    Resnet18,
    Cnn,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Resnet18 => "resnet18",
            ModelKind::Cnn => "cnn",
        }
    }
}

/// A patch classifier: `[B, 3, P, P]` (ImageNet-normalised) -> logits `[B, 4]`.
/// One per process: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Classifier {
    Resnet18(ResNet18),
    Cnn(ShallowCnn),
}

impl Classifier {
    /// Builds the model's variables under `vs` (randomly initialised).
    pub fn new(vs: &nn::Path, kind: ModelKind, num_classes: i64) -> Classifier {
        match kind {
            ModelKind::Resnet18 => Classifier::Resnet18(ResNet18::new(vs, num_classes)),
            ModelKind::Cnn => Classifier::Cnn(ShallowCnn::new(vs, num_classes)),
        }
    }

    /// The same model with another global pooling (parameter-free: weights unchanged).
    pub fn with_pool(mut self, pool: Pool) -> Classifier {
        match &mut self {
            Classifier::Resnet18(m) => m.pool = pool,
            Classifier::Cnn(m) => m.pool = pool,
        }
        self
    }

    pub fn pool(&self) -> Pool {
        match self {
            Classifier::Resnet18(m) => m.pool,
            Classifier::Cnn(m) => m.pool,
        }
    }
}

impl Classifier {
    /// Pixels per cell of the trunk's last feature map (the trunk's total stride).
    pub fn feature_stride(&self) -> u32 {
        match self {
            Classifier::Resnet18(_) => 32,
            Classifier::Cnn(_) => 16,
        }
    }

    /// The trunk's last feature map, `[B, 3, H, W]` -> `[B, C, H/stride, W/stride]`.
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Classifier::Resnet18(m) => m.feature_map(xs, train),
            Classifier::Cnn(m) => m.feature_map(xs, train),
        }
    }

    /// The classifier layer.
    pub fn fc(&self) -> &nn::Linear {
        match self {
            Classifier::Resnet18(m) => m.fc(),
            Classifier::Cnn(m) => m.fc(),
        }
    }

    /// Width of the pooled feature vector.
    pub fn feature_dim(&self) -> i64 {
        match self {
            Classifier::Resnet18(_) => resnet::RESNET18_FEATURES,
            Classifier::Cnn(_) => cnn::CNN_FEATURES,
        }
    }

    /// Pooled features `[B, C]` (what `fc` reads).
    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Classifier::Resnet18(m) => m.features(xs, train),
            Classifier::Cnn(m) => m.features(xs, train),
        }
    }

    /// Every `k` x `k` window of cells of a feature map pooled: `[B, C, h, w]` ->
    /// `[B, C, h-k+1, w-k+1]`.
    pub fn window_features(&self, fm: &Tensor, k: i64) -> Tensor {
        self.pool().sliding(fm, k)
    }

    /// Window logits read off a feature map: every `k` x `k` block of cells (a window of
    /// `k * stride` pixels), stride one cell, pooled and passed through `fc`, as
    /// the classifier does for one window: `[B, C, h, w]` -> `[B, classes, h-k+1, w-k+1]`.
    pub fn window_logits(&self, fm: &Tensor, k: i64) -> Tensor {
        let fc = self.fc();
        let pooled = self.window_features(fm, k);
        // [B, C, h', w'] -> [B, h', w', C] x [C, classes] -> [B, classes, h', w']
        let mut out = pooled.permute([0, 2, 3, 1]).matmul(&fc.ws.tr());
        if let Some(b) = &fc.bs {
            out += b;
        }
        out.permute([0, 3, 1, 2]).contiguous()
    }
}

impl ModuleT for Classifier {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Classifier::Resnet18(m) => m.forward_t(xs, train),
            Classifier::Cnn(m) => m.forward_t(xs, train),
        }
    }
}
