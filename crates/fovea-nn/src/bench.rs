//! Throughput of training steps (forward, backward, Adam update) and of inference on random
//! data: what `fovea bench train` / `fovea bench infer` measure; the segmentation U-Net's
//! training step and its tiled forward pass over a whole photograph (`fovea bench
//! seg-train`, `fovea bench seg-map`).

use std::time::Instant;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::loss::{Loss, LossSettings};
use crate::models::unet::{SegEncoder, UNet};
use crate::models::{Classifier, ModelKind};
use crate::optim::Adam;
use crate::seg_loss::{seg_loss, SegLossSettings};

/// A throughput measurement.
#[derive(Clone, Debug)]
pub struct Throughput {
    /// Median seconds per step.
    pub median_step_s: f64,
    pub samples_per_s: f64,
    pub steps: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Runs `step` `warmup` times untimed, then `steps` times timed; the median step.
fn time_steps(
    steps: usize,
    warmup: usize,
    batch: i64,
    device: Device,
    mut step: impl FnMut(),
) -> Throughput {
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        sync(device);
        let t = Instant::now();
        step();
        sync(device);
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let m = median(times);
    Throughput {
        median_step_s: m,
        samples_per_s: batch as f64 / m,
        steps,
    }
}

/// A random `[batch, 3, size, size]` input on `vs`'s device; with `channels_last`, it and
/// `vs`'s convolution weights laid out NHWC ([`crate::layout`]).
fn random_input(vs: &nn::VarStore, batch: i64, size: i64, channels_last: bool) -> Tensor {
    let x = Tensor::randn([batch, 3, size, size], (Kind::Float, vs.device()));
    if channels_last {
        crate::layout::vars_channels_last(vs);
        crate::layout::channels_last(&x)
    } else {
        x
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Training steps of `kind` on `[batch, 3, size, size]` random inputs with random multi-hot
/// targets, focal loss and Adam (lr 1e-3, weight decay 1e-5): `warmup` steps, then the median
/// of `steps` timed steps. `channels_last`: model and input laid out NHWC
/// ([`crate::layout`]), as PyTorch's `model.to(memory_format=torch.channels_last)`.
pub fn train_steps(
    kind: ModelKind,
    size: i64,
    batch: i64,
    steps: usize,
    warmup: usize,
    device: Device,
    channels_last: bool,
) -> Throughput {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Classifier::new(&vs.root(), kind, 4);
    let loss = Loss::new(&LossSettings::default(), &[100, 100, 100, 20], 1000, device);
    let x = random_input(&vs, batch, size, channels_last);
    let mut opt = Adam::new(&vs, 1e-3, 1e-5, false);
    let y = Tensor::rand([batch, 4], (Kind::Float, device))
        .gt(0.7)
        .to_kind(Kind::Float);
    time_steps(steps, warmup, batch, device, || {
        opt.zero_grad();
        loss.forward(&model.forward_t(&x, true), &y).backward();
        opt.step();
    })
}

/// Forward passes (evaluation mode, no gradients) on `[batch, 3, size, size]` inputs.
pub fn infer_steps(
    kind: ModelKind,
    size: i64,
    batch: i64,
    steps: usize,
    warmup: usize,
    device: Device,
    channels_last: bool,
) -> Throughput {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Classifier::new(&vs.root(), kind, 4);
    let x = random_input(&vs, batch, size, channels_last);
    tch::no_grad(|| {
        time_steps(steps, warmup, batch, device, || {
            let _ = model.forward_t(&x, false).sigmoid();
        })
    })
}

/// Forward and backward passes of a whole-image encoder (training mode) on
/// `[batch, 3, size, size]` random inputs: the pooled features summed and differentiated,
/// gradients zeroed before each step (no optimiser update), as
/// `bench/encoders_reference.py` does with torchvision.
pub fn encoder_steps(
    kind: crate::context::EncoderKind,
    size: i64,
    batch: i64,
    steps: usize,
    warmup: usize,
    device: Device,
) -> Throughput {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let enc = crate::context::GlobalEncoder::new(&vs.root(), kind);
    let mut opt = Adam::new(&vs, 1e-3, 0.0, false);
    let x = Tensor::randn([batch, 3, size, size], (Kind::Float, device));
    time_steps(steps, warmup, batch, device, || {
        opt.zero_grad();
        let (pooled, _) = enc.encode(&x, true);
        pooled.sum(Kind::Float).backward();
    })
}

/// Trainable parameters of `vs` (PyTorch's `sum(p.numel() for p in model.parameters())`:
/// batch norm's running statistics are not counted).
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Training steps of the segmentation U-Net with `encoder` on `[batch, 3, size, size]`
/// random inputs and random 0/1 targets `[batch, 4, size, size]` at 1 % prevalence: the
/// default [`seg_loss`] (BCE + soft Dice, no validity mask), Adam (lr 1e-3, no weight
/// decay), `warmup` steps then the median of `steps`, as `bench/seg_train_reference.py`.
/// Returns the throughput and the model's trainable parameter count.
pub fn seg_train_steps(
    encoder: SegEncoder,
    size: i64,
    batch: i64,
    steps: usize,
    warmup: usize,
    device: Device,
    channels_last: bool,
) -> (Throughput, i64) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = UNet::new(&vs.root(), encoder);
    let x = random_input(&vs, batch, size, channels_last);
    let t = Tensor::rand([batch, 4, size, size], (Kind::Float, device))
        .lt(0.01)
        .to_kind(Kind::Float);
    let settings = SegLossSettings::default();
    let mut opt = Adam::new(&vs, 1e-3, 0.0, false);
    let params = parameter_count(&vs);
    let th = time_steps(steps, warmup, batch, device, || {
        opt.zero_grad();
        seg_loss(&model.forward_t(&x, true), &t, None, &settings)
            .total
            .backward();
        opt.step();
    });
    (th, params)
}

/// The top-left corners along one side of `n` pixels for tiles of `tile`: every `tile`
/// pixels, the last one moved back so that it ends at the border (one tile when `n <=
/// tile`).
pub fn tile_starts(n: i64, tile: i64) -> Vec<i64> {
    if n <= tile {
        return vec![0];
    }
    let mut v: Vec<i64> = (0..n - tile).step_by(tile as usize).collect();
    v.push(n - tile);
    v
}

/// Probabilities `[4, H, W]` of `model` (evaluation mode, no gradients) over an
/// ImageNet-normalised photograph `[3, H, W]`, one tile of `tile` x `tile` at a time
/// (corners from [`tile_starts`]; where two tiles overlap the later one's values stay):
/// the simplest tiling, for timing and memory only, without the blending of the real
/// inference. `channels_last`: each tile is laid out NHWC (the model's weights must be).
pub fn seg_map_tiled(model: &UNet, image: &Tensor, tile: i64, channels_last: bool) -> Tensor {
    let (h, w) = match image.size()[..] {
        [_, h, w] => (h, w),
        ref s => panic!("seg_map_tiled expects [3, H, W], got {s:?}"),
    };
    let out = Tensor::zeros([4, h, w], (Kind::Float, image.device()));
    tch::no_grad(|| {
        for &y in &tile_starts(h, tile) {
            let th = tile.min(h);
            for &x in &tile_starts(w, tile) {
                let tw = tile.min(w);
                let mut crop = image
                    .narrow(1, y, th)
                    .narrow(2, x, tw)
                    .unsqueeze(0)
                    .contiguous();
                if channels_last {
                    crop = crate::layout::channels_last(&crop);
                }
                let p = model.forward_t(&crop, false).sigmoid().squeeze_dim(0);
                let mut dst = out.narrow(1, y, th).narrow(2, x, tw);
                dst.copy_(&p);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_each_side_and_end_at_the_border() {
        assert_eq!(tile_starts(100, 100), vec![0]);
        assert_eq!(tile_starts(30, 100), vec![0]);
        assert_eq!(tile_starts(250, 100), vec![0, 100, 150]);
        assert_eq!(tile_starts(300, 100), vec![0, 100, 200]);
        assert_eq!(tile_starts(2848, 512), vec![0, 512, 1024, 1536, 2048, 2336]);
    }

    /// One tile as large as the photograph is exactly the forward pass; smaller tiles
    /// (laid out channels-last) still give a probability at every pixel.
    #[test]
    fn one_tile_equals_the_forward_pass() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = UNet::new(&vs.root(), SegEncoder::Small);
        let x = Tensor::randn([3, 48, 64], (Kind::Float, Device::Cpu));
        let whole = tch::no_grad(|| m.forward_t(&x.unsqueeze(0), false).sigmoid().squeeze_dim(0));
        let tiled = seg_map_tiled(&m, &x, 64, false);
        assert_eq!(tiled.size(), [4, 48, 64]);
        assert!(whole.allclose(&tiled, 1e-6, 1e-6, false));
        // Smaller tiles still fill every pixel with a probability.
        let t = seg_map_tiled(&m, &x, 32, true);
        assert_eq!(t.size(), [4, 48, 64]);
        assert!(t.gt(0.0).all().int64_value(&[]) == 1);
        assert!(t.lt(1.0).all().int64_value(&[]) == 1);
    }
}
