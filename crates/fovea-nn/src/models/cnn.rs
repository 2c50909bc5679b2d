//! The report's "shallow custom CNN": a small, fast baseline. Four blocks of 3x3
//! convolution, batch normalisation, ReLU and 2x2 max pooling (32, 64, 128, 128 channels),
//! global average pooling, dropout and a linear head.

use super::Pool;
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub struct ShallowCnn {
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc: nn::Linear,
    /// Global pooling before `fc`.
    pub pool: Pool,
}

/// Width of the pooled feature vector.
pub const CNN_FEATURES: i64 = 128;

impl ShallowCnn {
    pub fn new(vs: &nn::Path, num_classes: i64) -> Self {
        let widths = [(3, 32), (32, 64), (64, 128), (128, CNN_FEATURES)];
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| {
                let cfg = nn::ConvConfig {
                    padding: 1,
                    bias: false,
                    ..Default::default()
                };
                let bn = nn::BatchNormConfig {
                    ws_init: nn::Init::Const(1.0),
                    ..Default::default()
                };
                (
                    nn::conv2d(vs / format!("conv{i}"), c_in, c_out, 3, cfg),
                    nn::batch_norm2d(vs / format!("bn{i}"), c_out, bn),
                )
            })
            .collect();
        ShallowCnn {
            blocks,
            fc: nn::linear(vs / "fc", CNN_FEATURES, num_classes, Default::default()),
            pool: Pool::Avg,
        }
    }

    /// Pooled features: `[B, 3, H, W]` -> `[B, 128]`.
    /// The last feature map: `[B, 3, H, W]` -> `[B, 128, H/16, W/16]`.
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.shallow_clone();
        for (c, b) in &self.blocks {
            ys = ys.apply(c).apply_t(b, train).relu().max_pool2d_default(2);
        }
        ys
    }

    /// The `fc` layer.
    pub fn fc(&self) -> &nn::Linear {
        &self.fc
    }

    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        self.pool
            .global(&self.feature_map(xs, train))
            .dropout(0.2, train)
    }
}

impl ModuleT for ShallowCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features(xs, train).apply(&self.fc)
    }
}
