//! Adam (Kingma & Ba, 2015) as `torch.optim.Adam`: L2 weight decay added to the gradient
//! (or decoupled, as AdamW), bias-corrected moments.
//!
//! Written out with tch's tensor operations because tch's optimisers keep their moment
//! estimates inside libtorch where they cannot be saved: `--resume` must restore them to
//! continue a run exactly as if it had not stopped.

use tch::{nn, Tensor};

/// Adam's state: one first and second moment per trainable variable, and the step count.
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) instead of L2 in the gradient.
    pub decoupled: bool,
    pub step: i64,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Adam over every trainable variable of `vs`, in name order.
    pub fn new(vs: &nn::VarStore, lr: f64, weight_decay: f64, decoupled: bool) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            step: 0,
            params,
            m,
            v,
        }
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update from the current gradients:
    /// `g = grad + wd p` (L2; AdamW instead scales `p` by `1 - lr wd`),
    /// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    /// `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
    ///
    /// Eight in-place or fused operations and three temporaries per variable (as
    /// `torch.optim.Adam`'s own loop: `lerp_`, `addcdiv_`): these run over all 11 M
    /// parameters of ResNet-18 at every step and are memory-bound, so every extra pass and
    /// freshly allocated temporary (page faults) shows in the step time.
    pub fn step(&mut self) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        let step_size = self.lr / bc1;
        // p.addcdiv_(m, d) adds m / d, so d = -(sqrt(v) / sqrt(bc2) + eps) / step_size
        // (tch's addcdiv_ has no `value` argument).
        let d_scale = -1.0 / (bc2.sqrt() * step_size);
        let d_shift = -self.eps / step_size;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let g = if self.weight_decay != 0.0 && !self.decoupled {
                    let mut g = p.g_mul_scalar(self.weight_decay);
                    let _ = g.g_add_(&grad);
                    g
                } else {
                    grad
                };
                if self.weight_decay != 0.0 && self.decoupled {
                    let _ = p.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                }
                let _ = self.m[i].lerp_(&g, 1.0 - b1);
                let _ = self.v[i].lerp_(&(&g * &g), 1.0 - b2);
                let mut d = self.v[i].sqrt();
                let _ = d.g_mul_scalar_(d_scale).g_add_scalar_(d_shift);
                let _ = p.addcdiv_(&self.m[i], &d);
            }
        });
    }

    /// The moment tensors by name, for checkpoints: `m.NAME`, `v.NAME`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            // Contiguous for safetensors (moments of channels-last weights are not).
            out.push((format!("m.{name}"), crate::layout::contiguous(&self.m[i])));
            out.push((format!("v.{name}"), crate::layout::contiguous(&self.v[i])));
        }
        out
    }

    /// Restores moments saved by [`Adam::state`]; every one must be present with its shape.
    pub fn load_state(
        &mut self,
        named: &std::collections::HashMap<String, Tensor>,
        step: i64,
        path: &std::path::Path,
    ) -> crate::error::Result<()> {
        use crate::error::NnError;
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (prefix, dst) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let src = named.get(&key).ok_or_else(|| {
                    NnError::weights(path, format!("optimizer state lacks '{key}'"))
                })?;
                if src.size() != p.size() {
                    return Err(NnError::weights(
                        path,
                        format!(
                            "optimizer state '{key}' has shape {:?}, expected {:?}",
                            src.size(),
                            p.size()
                        ),
                    ));
                }
                tch::no_grad(|| dst.copy_(src));
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn matches_torch_adam_with_l2() {
        // import torch
        // p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
        // opt = torch.optim.Adam([p], lr=0.1, weight_decay=0.01)
        // for _ in range(3):
        //     opt.zero_grad(); (p ** 2 * torch.tensor([1., 2., 3.])).sum().backward(); opt.step()
        // p.tolist() -> [0.7015862464904785, -1.7006233930587769, 2.7003815174102783]
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs
            .root()
            .var_copy("p", &Tensor::from_slice(&[1.0f32, -2.0, 3.0]));
        let mut opt = Adam::new(&vs, 0.1, 0.01, false);
        let c = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        for _ in 0..3 {
            opt.zero_grad();
            (p.pow_tensor_scalar(2) * &c).sum(Kind::Float).backward();
            opt.step();
        }
        let got = Vec::<f32>::try_from(&p).unwrap();
        let want = [0.701_586_2f32, -1.700_623_4, 2.700_381_5];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
