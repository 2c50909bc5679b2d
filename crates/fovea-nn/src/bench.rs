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
