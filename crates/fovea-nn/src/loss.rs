//! Multi-label losses over the four lesion logits: BCE-with-logits and sigmoid focal loss
//! (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017), with the report's
//! per-class inverse-frequency weights.
//!
//! The report put "per-class inverse-frequency weights (normalized) into the focal loss".
//! Two readings, both available (`class_weighting`):
//! - `multiply` (default): each class's loss term is multiplied by its weight, the weights
//!   normalised to mean 1. Rare lesions count more, positives and negatives alike.
//! - `focal-alpha`: the weights, normalised to sum 1, are the focal alpha of each class.
//!   Alpha weighs positives and 1 - alpha negatives, so for the common lesions (alpha about
//!   0.1) negatives outweigh positives 9 to 1 and the model collapses to [0,0,0,0] (seen in
//!   a PyTorch reproduction of the report). Kept for reproducing that result.
//!
//! The inverse frequency of class c is 1 / (positives of c in the training set).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

/// Which loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    Bce,
    Focal,
}

/// How the per-class inverse-frequency weights enter the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// No per-class weights.
    None,
    /// Each class's term times its weight (weights of mean 1). Default.
    Multiply,
    /// Weights (summing to 1) used as per-class focal alpha (the literal reading; collapses).
    FocalAlpha,
}

/// Loss settings (the `[loss]` table of a training config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSettings {
    pub kind: LossKind,
    /// Focal loss focusing parameter gamma.
    pub gamma: f64,
    /// A focal alpha for every class (positives weighted alpha, negatives 1 - alpha);
    /// `None` = no alpha term. Ignored with `class_weighting = "focal-alpha"`.
    pub alpha: Option<f64>,
    pub class_weighting: ClassWeighting,
    /// Multiply each class's positive term by (negatives / positives) of that class in the
    /// training set, as BCE's `pos_weight`.
    pub pos_weight: bool,
}

impl Default for LossSettings {
    fn default() -> Self {
        LossSettings {
            kind: LossKind::Focal,
            gamma: 2.0,
            alpha: None,
            class_weighting: ClassWeighting::Multiply,
            pos_weight: false,
        }
    }
}

/// Inverse-frequency class weights from positive counts, normalised to mean 1 (classes
/// without positives get weight 0 before normalisation and are left out of the mean... they
/// get the mean weight 1 so they still learn "absent").
pub fn inverse_frequency(counts: &[u64; 4]) -> [f64; 4] {
    let inv: Vec<f64> = counts
        .iter()
        .map(|&c| if c > 0 { 1.0 / c as f64 } else { 0.0 })
        .collect();
    let present: Vec<f64> = inv.iter().copied().filter(|&v| v > 0.0).collect();
    let mean = if present.is_empty() {
        1.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    let mut w = [1.0; 4];
    for i in 0..4 {
        if inv[i] > 0.0 {
            w[i] = inv[i] / mean;
        }
    }
    w
}

/// A configured loss, with its weights as tensors on the training device.
#[derive(Debug)]
pub struct Loss {
    settings: LossSettings,
    /// `[4]`: per-class multipliers (mean 1), or None.
    class_mult: Option<Tensor>,
    /// `[4]`: per-class focal alpha, or None.
    alpha: Option<Tensor>,
    /// `[4]`: BCE pos_weight, or None.
    pos_weight: Option<Tensor>,
}

impl Loss {
    /// `positives[c]`: positive labels of class c in the training set of `total` samples.
    pub fn new(settings: &LossSettings, positives: &[u64; 4], total: u64, device: Device) -> Loss {
        let w = inverse_frequency(positives);
        let t = |v: &[f64]| {
            Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()).to_device(device)
        };
        let (class_mult, alpha) = match settings.class_weighting {
            ClassWeighting::None => (None, settings.alpha.map(|a| t(&[a; 4]))),
            ClassWeighting::Multiply => (Some(t(&w)), settings.alpha.map(|a| t(&[a; 4]))),
            ClassWeighting::FocalAlpha => {
                let s: f64 = w.iter().sum();
                (None, Some(t(&w.map(|x| x / s))))
            }
        };
        let pos_weight = settings.pos_weight.then(|| {
            t(&positives.map(|p| {
                if p > 0 {
                    (total.saturating_sub(p)) as f64 / p as f64
                } else {
                    1.0
                }
            }))
        });
        Loss {
            settings: settings.clone(),
            class_mult,
            alpha,
            pos_weight,
        }
    }

    /// Mean loss over `[B, 4]` logits and 0/1 targets.
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        let ce = logits.binary_cross_entropy_with_logits::<Tensor>(
            targets,
            None,
            self.pos_weight.as_ref().map(|t| t.shallow_clone()),
            Reduction::None,
        );
        let mut loss = match self.settings.kind {
            LossKind::Bce => ce,
            LossKind::Focal => {
                let p = logits.sigmoid();
                let p_t = &p * targets + (1.0 - &p) * (1.0 - targets);
                let one_minus: Tensor = 1.0 - p_t;
                ce * one_minus.pow_tensor_scalar(self.settings.gamma)
            }
        };
        if let Some(a) = &self.alpha {
            if self.settings.kind == LossKind::Focal
                || self.settings.class_weighting == ClassWeighting::FocalAlpha
            {
                let alpha_t = a * targets + (1.0 - a) * (1.0 - targets);
                loss = alpha_t * loss;
            }
        }
        if let Some(m) = &self.class_mult {
            loss *= m;
        }
        loss.mean(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    fn fixed() -> (Tensor, Tensor) {
        let logits =
            Tensor::from_slice(&[2.0f32, -1.0, 0.5, -3.0, -0.5, 1.5, -2.0, 0.0]).view([2, 4]);
        let targets = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]).view([2, 4]);
        (logits, targets)
    }

    #[test]
    fn focal_matches_torchvision() {
        // import torch; from torchvision.ops import sigmoid_focal_loss
        // x = torch.tensor([[2., -1., .5, -3.], [-.5, 1.5, -2., 0.]])
        // y = torch.tensor([[1., 0., 1., 1.], [0., 1., 0., 0.]])
        // sigmoid_focal_loss(x, y, alpha=-1, gamma=2, reduction="mean")    -> 0.38846034
        // sigmoid_focal_loss(x, y, alpha=0.25, gamma=2, reduction="mean")  -> 0.11369769
        // (torch 2.13.0, torchvision 0.28.0)
        let (x, y) = fixed();
        let s = LossSettings {
            class_weighting: ClassWeighting::None,
            ..Default::default()
        };
        close(
            Loss::new(&s, &[1; 4], 2, Device::Cpu)
                .forward(&x, &y)
                .double_value(&[]),
            0.38846034,
            1e-6,
        );
        let s = LossSettings {
            alpha: Some(0.25),
            class_weighting: ClassWeighting::None,
            ..Default::default()
        };
        close(
            Loss::new(&s, &[1; 4], 2, Device::Cpu)
                .forward(&x, &y)
                .double_value(&[]),
            0.11369769,
            1e-6,
        );
    }

    #[test]
    fn bce_matches_torch() {
        // import torch.nn.functional as F  (x, y as above)
        // F.binary_cross_entropy_with_logits(x, y)                                   -> 0.68230242
        // F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor([1., 3., .5, 2.]))
        //                                                                             -> 1.08409929
        let (x, y) = fixed();
        let s = LossSettings {
            kind: LossKind::Bce,
            class_weighting: ClassWeighting::None,
            ..Default::default()
        };
        close(
            Loss::new(&s, &[1; 4], 2, Device::Cpu)
                .forward(&x, &y)
                .double_value(&[]),
            0.68230242,
            1e-6,
        );
        // pos_weight = negatives / positives: 12 samples with 6, 3, 8, 4 positives.
        let s = LossSettings {
            pos_weight: true,
            ..s
        };
        close(
            Loss::new(&s, &[6, 3, 8, 4], 12, Device::Cpu)
                .forward(&x, &y)
                .double_value(&[]),
            1.08409929,
            1e-6,
        );
    }

    #[test]
    fn weights_favour_rare_positives() {
        // MA common (1000 positives), SE rare (10): a positive SE patch with logit 0 must
        // pull harder than a positive MA patch with logit 0.
        let counts = [1000, 500, 800, 10];
        let w = inverse_frequency(&counts);
        close(w.iter().sum::<f64>() / 4.0, 1.0, 1e-12);
        assert!(w[3] > w[1] && w[1] > w[2] && w[2] > w[0]);
        let grad_of = |s: &LossSettings| {
            let x = Tensor::zeros([1, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
            let y = Tensor::ones([1, 4], (Kind::Float, Device::Cpu));
            Loss::new(s, &counts, 2000, Device::Cpu)
                .forward(&x, &y)
                .backward();
            Vec::<f32>::try_from(x.grad().view([-1])).unwrap()
        };
        let g = grad_of(&LossSettings::default());
        assert!(g[3].abs() > 10.0 * g[0].abs(), "{g:?}");
        // The literal reading (alpha summing to 1) weighs positives of common classes below
        // their negatives: alpha_MA < 0.5.
        let lit = LossSettings {
            class_weighting: ClassWeighting::FocalAlpha,
            ..Default::default()
        };
        let l = Loss::new(&lit, &counts, 2000, Device::Cpu);
        let a = Vec::<f32>::try_from(l.alpha.as_ref().unwrap()).unwrap();
        assert!(
            a[0] < 0.01 && (a.iter().sum::<f32>() - 1.0).abs() < 1e-6,
            "{a:?}"
        );
    }
}
