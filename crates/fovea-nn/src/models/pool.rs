//! Global pooling of a feature map before the classifier, and the same pooling over
//! sliding windows of cells (dense lesion maps).

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How the last feature map is pooled into one vector before `fc`. torchvision's
/// ResNet-18 averages; global max pooling keeps the signal of a lesion of a few pixels that
/// averaging over the whole patch dilutes (on the IDRiD sample at P=64 it learned hard
/// exudates about twice as fast; bench/README.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Pool {
    #[default]
    Avg,
    Max,
}

impl Pool {
    /// `[B, C, h, w]` -> `[B, C]`.
    pub fn global(self, fm: &Tensor) -> Tensor {
        match self {
            Pool::Avg => fm.adaptive_avg_pool2d([1, 1]).flatten(1, -1),
            Pool::Max => fm.adaptive_max_pool2d([1, 1]).0.flatten(1, -1),
        }
    }

    /// Every `k` x `k` block of cells, stride 1: `[B, C, h, w]` -> `[B, C, h-k+1, w-k+1]`.
    pub fn sliding(self, fm: &Tensor, k: i64) -> Tensor {
        match self {
            Pool::Avg => fm.avg_pool2d([k, k], [1, 1], [0, 0], false, true, None::<i64>),
            Pool::Max => fm.max_pool2d([k, k], [1, 1], [0, 0], [1, 1], false),
        }
    }
}
