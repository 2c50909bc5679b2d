//! ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) with
//! torchvision's layout and parameter names (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, ..., `fc`), so torchvision's ImageNet weights load by name.
//!
//! Written out here rather than taken from `tch::vision::resnet` because the whole-image
//! context models need the trunk's feature map and pooled vector, which tch's version does
//! not expose; the layers themselves are tch's.

use super::pool::Pool;
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub(crate) fn conv(
    vs: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    padding: i64,
) -> nn::Conv2D {
    // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), no bias.
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(vs, c_in, c_out, k, cfg)
}

pub(crate) fn bn(vs: nn::Path, c: i64) -> nn::BatchNorm {
    // torchvision: weight 1, bias 0.
    let cfg = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    nn::batch_norm2d(vs, c, cfg)
}

/// A basic residual block: two 3x3 convolutions with a shortcut.
#[derive(Debug)]
pub(crate) struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    pub(crate) fn new(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            (
                conv(vs / "downsample" / "0", c_in, c_out, 1, stride, 0),
                bn(vs / "downsample" / "1", c_out),
            )
        });
        BasicBlock {
            conv1: conv(vs / "conv1", c_in, c_out, 3, stride, 1),
            bn1: bn(vs / "bn1", c_out),
            conv2: conv(vs / "conv2", c_out, c_out, 3, 1, 1),
            bn2: bn(vs / "bn2", c_out),
            downsample,
        }
    }

    /// In-place ReLUs and residual addition, as torchvision (`ReLU(inplace=True)`,
    /// `out += identity`): no fresh activation-sized tensors for them (batch norm's backward
    /// needs its input, not its output, so overwriting the output is safe).
    pub(crate) fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.apply(&self.conv1).apply_t(&self.bn1, train);
        let _ = ys.relu_();
        let mut ys = ys.apply(&self.conv2).apply_t(&self.bn2, train);
        match &self.downsample {
            Some((c, b)) => ys += xs.apply(c).apply_t(b, train),
            None => ys += xs,
        }
        let _ = ys.relu_();
        ys
    }
}

/// ResNet-18 with a `num_classes`-way linear head.
#[derive(Debug)]
pub struct ResNet18 {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<BasicBlock>>,
    fc: nn::Linear,
    /// Global pooling before `fc` (torchvision: average).
    pub pool: Pool,
}

/// Width of the pooled feature vector.
pub const RESNET18_FEATURES: i64 = 512;

impl ResNet18 {
    pub fn new(vs: &nn::Path, num_classes: i64) -> Self {
        let widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)];
        let layers = widths
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out, stride))| {
                let lp = vs / format!("layer{}", i + 1);
                vec![
                    BasicBlock::new(&(&lp / "0"), c_in, c_out, stride),
                    BasicBlock::new(&(&lp / "1"), c_out, c_out, 1),
                ]
            })
            .collect();
        ResNet18 {
            conv1: conv(vs / "conv1", 3, 64, 7, 2, 3),
            bn1: bn(vs / "bn1", 64),
            layers,
            fc: nn::linear(
                vs / "fc",
                RESNET18_FEATURES,
                num_classes,
                Default::default(),
            ),
            pool: Pool::Avg,
        }
    }

    /// The trunk's last feature map: `[B, 3, H, W]` -> `[B, 512, H/32, W/32]`.
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.apply(&self.conv1).apply_t(&self.bn1, train);
        let _ = ys.relu_();
        let mut ys = ys.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for layer in &self.layers {
            for block in layer {
                ys = block.forward_t(&ys, train);
            }
        }
        ys
    }

    /// The classification head over a feature map: `[B, 512, h, w]` -> logits
    /// `[B, num_classes]` (global average pooling, then `fc`).
    pub fn head(&self, fm: &Tensor) -> Tensor {
        self.pool.global(fm).apply(&self.fc)
    }

    /// The `fc` layer.
    pub fn fc(&self) -> &nn::Linear {
        &self.fc
    }

    /// Pooled features: `[B, 3, H, W]` -> `[B, 512]`.
    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        self.pool.global(&self.feature_map(xs, train))
    }
}

impl ModuleT for ResNet18 {
    /// `[B, 3, H, W]` -> logits `[B, num_classes]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features(xs, train).apply(&self.fc)
    }
}
