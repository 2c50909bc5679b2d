//! The patch classifiers: ResNet-18 (torchvision layout) and a shallow CNN baseline, each
//! with four logits (MA, HE, EX, SE).

pub mod cnn;
pub mod resnet;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub use cnn::ShallowCnn;
pub use resnet::ResNet18;

/// Which architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Resnet18,
    Cnn,
}

impl ModelKind {
    pub fn parse(s: &str) -> Option<ModelKind> {
        match s {
            "resnet18" => Some(ModelKind::Resnet18),
            "cnn" => Some(ModelKind::Cnn),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Resnet18 => "resnet18",
            ModelKind::Cnn => "cnn",
        }
    }
}

/// A patch classifier: `[B, 3, P, P]` (ImageNet-normalised) -> logits `[B, 4]`.
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
}

impl ModuleT for Classifier {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Classifier::Resnet18(m) => m.forward_t(xs, train),
            Classifier::Cnn(m) => m.forward_t(xs, train),
        }
    }
}
