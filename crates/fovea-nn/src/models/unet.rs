//! A U-Net-style encoder-decoder for pixel-level lesion segmentation (Ronneberger et al.,
//! "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, with a
//! ResNet encoder as in segmentation_models_pytorch's `Unet`): `[N, 3, H, W]`
//! (ImageNet-normalised) -> logits `[N, 4, H, W]` (MA, HE, EX, SE; callers apply the
//! sigmoid), at the input's resolution.
//!
//! Encoders ([`SegEncoder`]):
//! - `resnet18`, `resnet34`: torchvision's ResNet trunk (no `fc`) under the `encoder.`
//!   prefix with torchvision's names below it (`encoder.conv1.weight`,
//!   `encoder.layer4.1.bn2.running_var`, ...), so
//!   `pretrained::load_pretrained_under(vs, "encoder.", file)` loads ImageNet weights.
//!   Skips at strides 2 (the stem, 64 channels), 4, 8, 16 (`layer1..3`), bottom at 32
//!   (`layer4`). Decoder widths 256, 128, 64, 32, 16; the last stage upsamples to full
//!   resolution without a skip.
//! - `small`: a CPU-sized plain U-Net encoder, five stages of two 3x3 convolution + batch
//!   norm + ReLU, 16, 32, 64, 128, 256 channels, 2x2 max pooling between them (stride 16).
//!   Decoder widths 128, 64, 32, 16, every stage with a skip, the first at full resolution.
//!
//! Decoder stage: nearest-neighbour 2x upsampling, concatenation with the skip, then two
//! 3x3 convolution + batch norm + ReLU. Head: a 1x1 convolution to 4 channels whose bias
//! starts at `-ln((1 - 0.01) / 0.01)` (a prior pixel probability of 1 %, Lin et al.'s
//! focal-loss initialisation), so training starts near the lesions' prevalence.
//!
//! Sides that are not a multiple of the total stride (32 for ResNets, 16 for `small`):
//! the input is zero-padded at the right and bottom (zero is the ImageNet mean colour after
//! normalisation) up to the next multiple, and the output cropped back to `H x W`.
//!
//! The ResNet blocks are written out here (as in `resnet.rs`, whose builders are private):
//! the same layers and initialisation as torchvision.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

// The ResNet encoders are torchvision's layers, built as the classifier builds them.
use super::resnet::{bn, conv, BasicBlock};

/// Output channels: MA, HE, EX, SE.
pub const SEG_CLASSES: i64 = 4;
/// Prior lesion probability of a pixel that sets the head's initial bias.
pub const PRIOR: f64 = 0.01;

/// Which encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SegEncoder {
    Resnet18,
    Resnet34,
    /// The CPU-sized default.
    #[default]
    Small,
}

impl SegEncoder {
    pub fn as_str(self) -> &'static str {
        match self {
            SegEncoder::Resnet18 => "resnet18",
            SegEncoder::Resnet34 => "resnet34",
            SegEncoder::Small => "small",
        }
    }

    /// Total stride: input sides are padded to a multiple of it.
    pub fn stride(self) -> i64 {
        match self {
            SegEncoder::Resnet18 | SegEncoder::Resnet34 => 32,
            SegEncoder::Small => 16,
        }
    }

    /// Whether torchvision's ImageNet weights fit this encoder (`encoder.` prefix).
    pub fn pretrainable(self) -> bool {
        self != SegEncoder::Small
    }
}

/// Two 3x3 convolution + batch norm + ReLU (`conv1`, `bn1`, `conv2`, `bn2`).
#[derive(Debug)]
struct DoubleConv {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
}

impl DoubleConv {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64) -> Self {
        DoubleConv {
            conv1: conv(vs / "conv1", c_in, c_out, 3, 1, 1),
            bn1: bn(vs / "bn1", c_out),
            conv2: conv(vs / "conv2", c_out, c_out, 3, 1, 1),
            bn2: bn(vs / "bn2", c_out),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.apply(&self.conv1).apply_t(&self.bn1, train);
        let _ = ys.relu_();
        let mut ys = ys.apply(&self.conv2).apply_t(&self.bn2, train);
        let _ = ys.relu_();
        ys
    }
}

/// The encoders, each giving its feature maps from the finest to the coarsest.
/// One per model: the size difference of the variants does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Encoder {
    ResNet {
        conv1: nn::Conv2D,
        bn1: nn::BatchNorm,
        layers: Vec<Vec<BasicBlock>>,
    },
    Small {
        stages: Vec<DoubleConv>,
    },
}

/// Channels of the small encoder's stages.
pub const SMALL_WIDTHS: [i64; 5] = [16, 32, 64, 128, 256];

impl Encoder {
    fn resnet(vs: &nn::Path, blocks: [usize; 4]) -> Encoder {
        let widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)];
        let layers = widths
            .iter()
            .zip(blocks)
            .enumerate()
            .map(|(i, (&(c_in, c_out, stride), n))| {
                let lp = vs / format!("layer{}", i + 1);
                (0..n)
                    .map(|b| {
                        let (c, s) = if b == 0 { (c_in, stride) } else { (c_out, 1) };
                        BasicBlock::new(&(&lp / b.to_string()), c, c_out, s)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Encoder::ResNet {
            conv1: conv(vs / "conv1", 3, 64, 7, 2, 3),
            bn1: bn(vs / "bn1", 64),
            layers,
        }
    }

    fn small(vs: &nn::Path) -> Encoder {
        let mut c_in = 3;
        let stages = SMALL_WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let s = DoubleConv::new(&(vs / format!("stage{i}")), c_in, c);
                c_in = c;
                s
            })
            .collect();
        Encoder::Small { stages }
    }

    /// `[N, 3, H, W]` -> feature maps, finest first. ResNet: strides 2, 4, 8, 16, 32
    /// (64, 64, 128, 256, 512 channels); small: strides 1, 2, 4, 8, 16.
    fn features(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        match self {
            Encoder::ResNet { conv1, bn1, layers } => {
                let mut stem = xs.apply(conv1).apply_t(bn1, train);
                let _ = stem.relu_();
                let mut ys = stem.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
                let mut out = vec![stem];
                for layer in layers {
                    for block in layer {
                        ys = block.forward_t(&ys, train);
                    }
                    out.push(ys.shallow_clone());
                }
                out
            }
            Encoder::Small { stages } => {
                let mut out: Vec<Tensor> = Vec::with_capacity(stages.len());
                for stage in stages {
                    let input = match out.last() {
                        None => xs.shallow_clone(),
                        Some(prev) => prev.max_pool2d_default(2),
                    };
                    out.push(stage.forward_t(&input, train));
                }
                out
            }
        }
    }
}

/// U-Net: encoder, decoder stages (coarsest first) and the 1x1 head.
#[derive(Debug)]
pub struct UNet {
    kind: SegEncoder,
    encoder: Encoder,
    /// Each stage: upsample, concatenate its skip (if any), two conv-bn-relu.
    decoder: Vec<(DoubleConv, Option<usize>)>,
    head: nn::Conv2D,
}

impl UNet {
    /// Builds the model's variables under `vs` (randomly initialised).
    pub fn new(vs: &nn::Path, kind: SegEncoder) -> UNet {
        let enc = vs / "encoder";
        let (encoder, channels, widths): (Encoder, Vec<i64>, Vec<i64>) = match kind {
            SegEncoder::Resnet18 => (
                Encoder::resnet(&enc, [2, 2, 2, 2]),
                vec![64, 64, 128, 256, 512],
                vec![256, 128, 64, 32, 16],
            ),
            SegEncoder::Resnet34 => (
                Encoder::resnet(&enc, [3, 4, 6, 3]),
                vec![64, 64, 128, 256, 512],
                vec![256, 128, 64, 32, 16],
            ),
            SegEncoder::Small => (
                Encoder::small(&enc),
                SMALL_WIDTHS.to_vec(),
                vec![128, 64, 32, 16],
            ),
        };
        // Stage i consumes skip feature (deepest - 1 - i) while there is one.
        let deepest = channels.len() - 1;
        let dec = vs / "decoder";
        let mut c_in = channels[deepest];
        let decoder = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let skip = (i < deepest).then(|| deepest - 1 - i);
                let c_skip = skip.map_or(0, |s| channels[s]);
                let stage = DoubleConv::new(&(&dec / i.to_string()), c_in + c_skip, w);
                c_in = w;
                (stage, skip)
            })
            .collect();
        let head_vs = vs / "head";
        let bias = -((1.0 - PRIOR) / PRIOR).ln();
        let head = nn::conv2d(
            head_vs,
            c_in,
            SEG_CLASSES,
            1,
            nn::ConvConfig {
                bs_init: nn::Init::Const(bias),
                ..Default::default()
            },
        );
        UNet {
            kind,
            encoder,
            decoder,
            head,
        }
    }

    pub fn kind(&self) -> SegEncoder {
        self.kind
    }
}

impl ModuleT for UNet {
    /// `[N, 3, H, W]` -> logits `[N, 4, H, W]` (any H, W >= 1; see the module doc).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (h, w) = match xs.size()[..] {
            [_, _, h, w] => (h, w),
            ref s => panic!("UNet expects [N, 3, H, W], got {s:?}"),
        };
        let stride = self.kind.stride();
        let (ph, pw) = (
            (h + stride - 1) / stride * stride - h,
            (w + stride - 1) / stride * stride - w,
        );
        let padded = if ph > 0 || pw > 0 {
            xs.constant_pad_nd([0, pw, 0, ph])
        } else {
            xs.shallow_clone()
        };
        let feats = self.encoder.features(&padded, train);
        let mut ys = feats.last().expect("encoder features").shallow_clone();
        for (stage, skip) in &self.decoder {
            // By scale factor, not output size: a traced module (`export::trace_unet`) then
            // keeps no input size and runs at any multiple of the stride.
            let up = ys.upsample_nearest2d_vec(None::<&[i64]>, &[2.0, 2.0][..]);
            let joined = match skip {
                Some(s) => Tensor::cat(&[up, feats[*s].shallow_clone()], 1),
                None => up,
            };
            ys = stage.forward_t(&joined, train);
        }
        let out = ys.apply(&self.head);
        if ph > 0 || pw > 0 {
            out.narrow(2, 0, h).narrow(3, 0, w)
        } else {
            out
        }
    }
}
