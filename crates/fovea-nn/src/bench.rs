//! Throughput of training steps (forward, backward, Adam update) and of inference on random
//! data: what `fovea bench train` / `fovea bench infer` measure.

use std::time::Instant;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::loss::{Loss, LossSettings};
use crate::models::{Classifier, ModelKind};
use crate::optim::Adam;

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
    let mut x = Tensor::randn([batch, 3, size, size], (Kind::Float, device));
    if channels_last {
        crate::layout::vars_channels_last(&vs);
        x = crate::layout::channels_last(&x);
    }
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
    let mut x = Tensor::randn([batch, 3, size, size], (Kind::Float, device));
    if channels_last {
        crate::layout::vars_channels_last(&vs);
        x = crate::layout::channels_last(&x);
    }
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
