//! Mixed precision on CUDA (`amp = "fp16"`): the forward pass runs under libtorch's
//! autocast (convolutions and matrix products in float16, reductions and the loss in
//! float32), and a dynamic loss scaler keeps small float16 gradients from vanishing, as
//! `torch.cuda.amp.GradScaler`: the loss is multiplied by `scale` before `backward`, the
//! gradients divided by it before the optimiser step; a step whose gradients hold an
//! infinity or NaN is skipped and the scale halved; after `growth_interval` good steps in
//! a row the scale doubles.
//!
//! Written out because tch has autocast but no gradient scaler. tch's `autocast` turns on
//! libtorch's CUDA autocast with its default type, float16; bfloat16 would need
//! `at::autocast::set_autocast_dtype`, which tch does not expose.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// `amp` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Amp {
    /// Float32 throughout.
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "none"))]
    Off,
    /// CUDA autocast to float16 with dynamic loss scaling.
    Fp16,
}

impl Amp {}

/// Dynamic loss scale; saved in checkpoints so `--resume` continues with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradScaler {
    pub scale: f64,
    /// Good steps in a row since the scale last changed.
    pub good_steps: u32,
    pub growth_interval: u32,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler {
            scale: 65536.0,
            good_steps: 0,
            growth_interval: 2000,
        }
    }
}

impl GradScaler {
    /// The loss to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divides the gradients of `params` by the scale; returns whether all are finite.
    pub fn unscale(&self, params: &[Tensor]) -> bool {
        let inv = 1.0 / self.scale;
        let mut finite = true;
        tch::no_grad(|| {
            for p in params {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = g.g_mul_scalar_(inv);
                if finite {
                    let bad = g.isfinite().logical_not().any().int64_value(&[]);
                    finite = bad == 0;
                }
            }
        });
        finite
    }

    /// After a step: halve on overflow, double after `growth_interval` good steps.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale * 0.5).max(1.0);
            self.good_steps = 0;
        }
    }
}

/// Runs `f` under CUDA autocast when `amp` asks for it; the result is float32.
pub fn forward<F: FnOnce() -> Tensor>(amp: Amp, f: F) -> Tensor {
    match amp {
        Amp::Off => f(),
        Amp::Fp16 => tch::autocast(true, f).to_kind(Kind::Float),
    }
}

/// [`forward`] for a pass that can fail: its error is returned as it is (never turned
/// into a value).
pub fn try_forward<F>(amp: Amp, f: F) -> crate::error::Result<Tensor>
where
    F: FnOnce() -> crate::error::Result<Tensor>,
{
    match amp {
        Amp::Off => f(),
        Amp::Fp16 => tch::autocast(true, f).map(|t| t.to_kind(Kind::Float)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn scaler_unscales_skips_overflow_and_grows() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut s = GradScaler {
            scale: 8.0,
            good_steps: 0,
            growth_interval: 2,
        };
        // d/dp sum(3 p) * 8 = 24 per element; unscaled 3.
        s.scale_loss(&(&p * 3.0).sum(Kind::Float)).backward();
        assert!(s.unscale(std::slice::from_ref(&p)));
        assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), vec![3.0, 3.0]);
        s.update(true);
        assert_eq!((s.scale, s.good_steps), (8.0, 1));
        s.update(true);
        assert_eq!((s.scale, s.good_steps), (16.0, 0));
        // An infinite gradient: not finite, scale halves.
        let q = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        s.scale_loss(&(&q * f64::INFINITY).sum(Kind::Float))
            .backward();
        assert!(!s.unscale(std::slice::from_ref(&q)));
        s.update(false);
        assert_eq!((s.scale, s.good_steps), (8.0, 0));
    }

    #[test]
    fn amp_off_is_the_plain_forward() {
        let x = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        let y = forward(Amp::Off, || &x * 2.0);
        assert_eq!(y.kind(), Kind::Float);
        assert_eq!(serde_json::from_str::<Amp>("\"fp16\"").unwrap(), Amp::Fp16);
        assert!(serde_json::from_str::<Amp>("\"bf16\"").is_err());
    }
}
