//! The report's "shallow custom CNN": a small, fast baseline. Four blocks of 3x3
//! convolution, batch normalisation, ReLU and 2x2 max pooling (32, 64, 128, 128 channels),
//! global average pooling, dropout and a linear head.

use super::pool::Pool;
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

    /// The last feature map: `[B, 3, H, W]` -> `[B, 128, H/16, W/16]`.
    ///
    /// In evaluation each block runs as one convolution with the batch normalisation
    /// folded into its weights and bias, then max pooling, then ReLU in place: the same
    /// values (ReLU is monotonic, so it commutes with the maximum) with two fewer passes
    /// over the largest activations, which dominate dense maps of whole photographs.
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.shallow_clone();
        for (c, b) in &self.blocks {
            ys = if train {
                ys.apply(c).apply_t(b, train).relu().max_pool2d_default(2)
            } else {
                let (w, bias) = fold_batch_norm(c, b);
                let mut y = ys
                    .conv2d(&w, Some(&bias), [1, 1], [1, 1], [1, 1], 1)
                    .max_pool2d_default(2);
                let _ = y.relu_();
                y
            };
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

/// Weights and bias of a bias-free convolution followed by batch normalisation in
/// evaluation mode (running statistics, eps 1e-5 as built above).
fn fold_batch_norm(c: &nn::Conv2D, b: &nn::BatchNorm) -> (Tensor, Tensor) {
    let scale = match &b.ws {
        Some(g) => g / (&b.running_var + 1e-5).sqrt(),
        None => (&b.running_var + 1e-5).sqrt().reciprocal(),
    };
    let mut bias = -(&b.running_mean * &scale);
    if let Some(beta) = &b.bs {
        bias += beta;
    }
    if let Some(cb) = &c.bs {
        bias += cb * &scale;
    }
    (&c.ws * scale.view([-1, 1, 1, 1]), bias)
}

impl ModuleT for ShallowCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features(xs, train).apply(&self.fc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The folded evaluation path gives what convolution, batch normalisation with running
    /// statistics, ReLU and max pooling give one after the other.
    #[test]
    fn folded_evaluation_equals_the_layers_in_turn() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = ShallowCnn::new(&vs.root(), 4);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                let r = Tensor::rand(t.size(), (Kind::Float, Device::Cpu));
                if name.ends_with("running_var") {
                    t.copy_(&(r + 0.5));
                } else if name.ends_with("running_mean") || name.contains("bn") {
                    t.copy_(&(r - 0.5));
                }
            }
        });
        let x = Tensor::randn([2, 3, 48, 64], (Kind::Float, Device::Cpu));
        let mut want = x.shallow_clone();
        for (c, b) in &m.blocks {
            want = want.apply(c).apply_t(b, false).relu().max_pool2d_default(2);
        }
        let got = tch::no_grad(|| m.feature_map(&x, false));
        assert_eq!(got.size(), vec![2, 128, 3, 4]);
        let d = (got - want).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{d}");
    }
}
