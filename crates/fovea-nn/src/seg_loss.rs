//! The segmentation model's loss, for lesions covering 0.01-1 % of the pixels: a per-pixel
//! term (BCE with a per-lesion `pos_weight`, or sigmoid focal loss, Lin et al. ICCV 2017)
//! plus a soft Dice term per lesion (Milletari et al., V-Net, 3DV 2016), with weights
//! configurable, over the pixels a validity mask keeps (e.g. the field of view).
//!
//! For logits x and 0/1 targets t `[N, 4, H, W]`, p = sigmoid(x), a validity mask v
//! (`[N, 1, H, W]` or `[N, 4, H, W]`, 1 = counted; all ones when absent):
//! - BCE: `l = -(w_c t log p + (1 - t) log(1 - p))`, w_c the lesion's `pos_weight`
//!   (PyTorch's `binary_cross_entropy_with_logits`);
//! - focal: `l = a_t (1 - p_t)^gamma bce`, p_t = p where t = 1 else 1 - p, a_t = alpha
//!   where t = 1 else 1 - alpha, or 1 without alpha (torchvision's `sigmoid_focal_loss`;
//!   `pos_weight` is not used);
//! - pixel term: `sum(l v) / sum(v)`, v broadcast to `[N, 4, H, W]` (the mean over the
//!   counted pixels and lesions; 0 where nothing is counted);
//! - Dice of lesion c over the whole batch: `D_c = (2 sum(p t v) + s) / (sum(p v) +
//!   sum(t v) + s)`, s = `dice_smooth`; summed over the batch rather than per tile because
//!   most tiles hold no SE or no MA at all, where a per-tile Dice is 0 or 1 whatever the
//!   model does;
//! - total: `pixel_weight * pixel + dice_weight * mean_c (1 - D_c)`.
//!
//! The segmentation model's training step ([`crate::segmentation`]) uses it; its
//! validation computes the same formula from probabilities.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// The per-pixel term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PixelLoss {
    #[default]
    Bce,
    Focal,
}

/// The segmentation loss's settings (a `[seg_loss]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegLossSettings {
    pub pixel: PixelLoss,
    /// BCE's weight of the positive term per lesion (MA, HE, EX, SE); 1 = unweighted.
    pub pos_weight: [f64; 4],
    /// Focal focusing parameter.
    pub gamma: f64,
    /// Focal alpha (positives alpha, negatives 1 - alpha); absent = no alpha term.
    pub alpha: Option<f64>,
    /// Weight of the per-pixel term.
    pub pixel_weight: f64,
    /// Weight of the Dice term.
    pub dice_weight: f64,
    /// Dice smoothing s.
    pub dice_smooth: f64,
}

impl Default for SegLossSettings {
    fn default() -> Self {
        SegLossSettings {
            pixel: PixelLoss::Bce,
            pos_weight: [1.0; 4],
            gamma: 2.0,
            alpha: None,
            pixel_weight: 1.0,
            dice_weight: 1.0,
            dice_smooth: 1.0,
        }
    }
}

impl SegLossSettings {
    /// Checks every value's range; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !self.pos_weight.iter().all(|&w| w.is_finite() && w > 0.0) {
            return Err(format!(
                "seg_loss.pos_weight: {:?} must all be > 0",
                self.pos_weight
            ));
        }
        if !finite_nonneg(self.gamma) {
            return Err(format!("seg_loss.gamma: {} must be >= 0", self.gamma));
        }
        if let Some(a) = self.alpha {
            if !(0.0..=1.0).contains(&a) {
                return Err(format!("seg_loss.alpha: {a} is not in 0..=1"));
            }
        }
        for (name, v) in [
            ("seg_loss.pixel_weight", self.pixel_weight),
            ("seg_loss.dice_weight", self.dice_weight),
            ("seg_loss.dice_smooth", self.dice_smooth),
        ] {
            if !finite_nonneg(v) {
                return Err(format!("{name}: {v} must be >= 0"));
            }
        }
        if self.pixel_weight + self.dice_weight <= 0.0 {
            return Err("seg_loss: pixel_weight and dice_weight are both 0".into());
        }
        Ok(())
    }
}

/// The loss and its parts (scalars, and the Dice per lesion `[4]`).
#[derive(Debug)]
pub struct SegLoss {
    pub total: Tensor,
    pub pixel: Tensor,
    /// `mean_c (1 - D_c)`.
    pub dice: Tensor,
    /// `D_c`, `[4]`.
    pub dice_per_lesion: Tensor,
}

/// The loss of `logits` against `targets` (`[N, 4, H, W]`, targets 0/1 of any kind),
/// counting the pixels where `valid` (`[N, 1, H, W]` or `[N, 4, H, W]`, 0/1) is 1.
pub fn seg_loss(
    logits: &Tensor,
    targets: &Tensor,
    valid: Option<&Tensor>,
    s: &SegLossSettings,
) -> SegLoss {
    let kind = logits.kind();
    let t = targets.to_kind(kind);
    // Without a mask no pixel is multiplied by 1: the same values, fewer passes.
    let v = valid.map(|v| v.to_kind(kind).expand_as(logits));
    let masked = |x: &Tensor| match &v {
        Some(v) => x * v,
        None => x.shallow_clone(),
    };
    let channels = logits.size()[1];
    let bce = |pos_weight: Option<&Tensor>| {
        logits.binary_cross_entropy_with_logits(&t, None::<&Tensor>, pos_weight, Reduction::None)
    };
    let per_pixel = match s.pixel {
        // A pos_weight of ones is left out: the same values (its log weight is exactly 1),
        // fewer passes, and the kernel PyTorch runs without one.
        PixelLoss::Bce if s.pos_weight[..channels as usize].iter().all(|&w| w == 1.0) => bce(None),
        PixelLoss::Bce => {
            let pw = Tensor::from_slice(&s.pos_weight[..channels as usize])
                .to_kind(kind)
                .to_device(logits.device())
                .view([channels, 1, 1]);
            bce(Some(&pw))
        }
        PixelLoss::Focal => {
            let ce = bce(None);
            let p_t: Tensor = ce.neg().exp();
            let mut l = (p_t.neg() + 1.0).pow_tensor_scalar(s.gamma) * &ce;
            if let Some(a) = s.alpha {
                l *= &t * a + (1.0f64 - &t) * (1.0 - a);
            }
            l
        }
    };
    let counted = match &v {
        Some(v) => v.sum(Kind::Float).to_kind(kind),
        None => Tensor::from(logits.numel() as f64)
            .to_kind(kind)
            .to_device(logits.device()),
    };
    let pixel = masked(&per_pixel).sum(kind) / counted.clamp_min(1.0);
    let p = logits.sigmoid();
    let dims = [0i64, 2, 3];
    let pv = masked(&p);
    let inter = (&pv * &t).sum_dim_intlist(&dims[..], false, kind);
    let denom = pv.sum_dim_intlist(&dims[..], false, kind)
        + masked(&t).sum_dim_intlist(&dims[..], false, kind);
    let dice_per_lesion = (inter * 2.0 + s.dice_smooth) / (denom + s.dice_smooth);
    let dice = (1.0f64 - &dice_per_lesion).mean(kind);
    let total = &pixel * s.pixel_weight + &dice * s.dice_weight;
    SegLoss {
        total,
        pixel,
        dice,
        dice_per_lesion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t4(v: &[f64], n: i64, h: i64, w: i64) -> Tensor {
        Tensor::from_slice(v).view([n, 4, h, w])
    }

    fn val(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    /// Logits 0 everywhere (p = 1/2), one MA pixel of four: every pixel costs ln 2, and
    /// D_MA = (2 * 0.5 + 1) / (4 * 0.5 + 1 + 1) = 1/2, the others (0 + 1) / (2 + 0 + 1).
    #[test]
    fn hand_computed_at_one_half() {
        let x = Tensor::zeros([1, 4, 2, 2], (Kind::Double, Device::Cpu));
        let mut t = vec![0.0; 16];
        t[0] = 1.0;
        let t = t4(&t, 1, 2, 2);
        let l = seg_loss(&x, &t, None, &SegLossSettings::default());
        let ln2 = std::f64::consts::LN_2;
        assert!((val(&l.pixel) - ln2).abs() < 1e-12);
        let d: Vec<f64> = Vec::try_from(&l.dice_per_lesion).unwrap();
        for (got, want) in d.iter().zip([0.5, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]) {
            assert!((got - want).abs() < 1e-12, "{d:?}");
        }
        let dice = (0.5 + 3.0 * (2.0 / 3.0)) / 4.0;
        assert!((val(&l.dice) - dice).abs() < 1e-12);
        assert!((val(&l.total) - (ln2 + dice)).abs() < 1e-12);
        // Focal, gamma 2, no alpha: (1 - 1/2)^2 ln 2; alpha 0.25 weighs the one positive
        // by 0.25 and the 15 negatives by 0.75.
        let focal = SegLossSettings {
            pixel: PixelLoss::Focal,
            ..Default::default()
        };
        let l = seg_loss(&x, &t, None, &focal);
        assert!((val(&l.pixel) - ln2 / 4.0).abs() < 1e-12);
        let alpha = SegLossSettings {
            alpha: Some(0.25),
            ..focal
        };
        let l = seg_loss(&x, &t, None, &alpha);
        let want = ln2 / 4.0 * (0.25 + 15.0 * 0.75) / 16.0;
        assert!((val(&l.pixel) - want).abs() < 1e-12);
    }

    /// The 1x4x2x2 case of the PyTorch snippet below, with a validity mask and pos_weight.
    fn case() -> (Tensor, Tensor, Tensor) {
        let l3 = 3f64.ln();
        #[rustfmt::skip]
        let x = t4(&[
            0.0, l3, -l3, 2.0,
            1.0, -1.0, 0.5, -2.0,
            -3.0, 3.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ], 1, 2, 2);
        #[rustfmt::skip]
        let t = t4(&[
            1.0, 0.0, 0.0, 1.0,
            0.0, 0.0, 1.0, 0.0,
            0.0, 1.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ], 1, 2, 2);
        let v = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0]).view([1, 1, 2, 2]);
        (x, t, v)
    }

    /// Expected values by PyTorch 2.13 / torchvision 0.29 (float64):
    /// ```python
    /// l3 = math.log(3.0)
    /// x = torch.tensor([[[[0., l3], [-l3, 2.]], [[1., -1.], [.5, -2.]],
    ///                    [[-3., 3.], [0., 0.]], [[0., 0.], [0., 0.]]]], dtype=torch.float64)
    /// t = torch.tensor([[[[1, 0], [0, 1]], [[0, 0], [1, 0]],
    ///                    [[0, 1], [1, 0]], [[0, 0], [0, 0]]]], dtype=torch.float64)
    /// v = torch.tensor([[[[1, 1], [1, 0]]]], dtype=torch.float64).expand_as(x)
    /// pw = torch.tensor([2., 1., 3., 1.], dtype=torch.float64).view(4, 1, 1)
    /// bce = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
    /// pixel = (bce * v).sum() / v.sum()                                # 0.7928419702968963
    /// p = torch.sigmoid(x)
    /// dice = (2 * (p*t*v).sum((0,2,3)) + 1) / ((p*v).sum((0,2,3)) + (t*v).sum((0,2,3)) + 1)
    /// # [0.5714285714285714, 0.6197222541788738, 0.8678107230321925, 0.4]
    /// (1 - dice).mean()                                                # 0.3852596128400906
    /// fl = torchvision.ops.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none")
    /// (fl * v).sum() / v.sum()                                         # 0.13627201200186298
    /// torchvision.ops.sigmoid_focal_loss(x, t, alpha=-1, gamma=1.5, reduction="mean")
    /// #                                                                  0.2273646212554283
    /// ```
    #[test]
    fn matches_pytorch() {
        let (x, t, v) = case();
        let s = SegLossSettings {
            pos_weight: [2.0, 1.0, 3.0, 1.0],
            ..Default::default()
        };
        let l = seg_loss(&x, &t, Some(&v), &s);
        assert!((val(&l.pixel) - 0.7928419702968963).abs() < 1e-12);
        let d: Vec<f64> = Vec::try_from(&l.dice_per_lesion).unwrap();
        let want = [
            0.5714285714285714,
            0.6197222541788738,
            0.8678107230321925,
            0.4,
        ];
        for (a, b) in d.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{d:?}");
        }
        assert!((val(&l.dice) - 0.3852596128400906).abs() < 1e-12);
        assert!((val(&l.total) - (0.7928419702968963 + 0.3852596128400906)).abs() < 1e-12);
        let focal = SegLossSettings {
            pixel: PixelLoss::Focal,
            alpha: Some(0.25),
            ..Default::default()
        };
        let l = seg_loss(&x, &t, Some(&v), &focal);
        assert!((val(&l.pixel) - 0.13627201200186298).abs() < 1e-12);
        let focal = SegLossSettings {
            pixel: PixelLoss::Focal,
            gamma: 1.5,
            ..Default::default()
        };
        let l = seg_loss(&x, &t, None, &focal);
        assert!((val(&l.pixel) - 0.2273646212554283).abs() < 1e-12);
    }

    #[test]
    fn ignored_pixels_count_for_nothing() {
        // Changing logits or targets where v = 0 changes nothing; weights scale the parts.
        let (x, t, v) = case();
        let s = SegLossSettings::default();
        let a = seg_loss(&x, &t, Some(&v), &s);
        let x2 = x.copy();
        let _ = x2.narrow(2, 1, 1).narrow(3, 1, 1).fill_(7.0);
        let t2 = t.copy();
        let _ = t2.narrow(2, 1, 1).narrow(3, 1, 1).fill_(1.0);
        let b = seg_loss(&x2, &t2, Some(&v), &s);
        assert!(a.total.allclose(&b.total, 0.0, 1e-12, false));
        let only_dice = SegLossSettings {
            pixel_weight: 0.0,
            dice_weight: 2.0,
            ..s
        };
        let c = seg_loss(&x, &t, Some(&v), &only_dice);
        assert!((val(&c.total) - 2.0 * val(&a.dice)).abs() < 1e-12);
        // Nothing counted: pixel term 0, Dice 1 per lesion (s / s).
        let none = v.zeros_like();
        let d = seg_loss(&x, &t, Some(&none), &SegLossSettings::default());
        assert_eq!((val(&d.pixel), val(&d.dice)), (0.0, 0.0));
    }

    #[test]
    fn no_mask_is_exactly_an_all_ones_mask() {
        let x = Tensor::randn([3, 4, 17, 9], (Kind::Float, Device::Cpu));
        let t = Tensor::rand([3, 4, 17, 9], (Kind::Float, Device::Cpu)).lt(0.1);
        let ones = Tensor::ones([3, 1, 17, 9], (Kind::Float, Device::Cpu));
        for s in [
            SegLossSettings::default(),
            SegLossSettings {
                pixel: PixelLoss::Focal,
                ..Default::default()
            },
        ] {
            let a = seg_loss(&x, &t, None, &s);
            let b = seg_loss(&x, &t, Some(&ones), &s);
            assert_eq!(val(&a.pixel), val(&b.pixel));
            assert!(a.dice_per_lesion.equal(&b.dice_per_lesion));
            assert_eq!(val(&a.total), val(&b.total));
        }
    }

    #[test]
    fn gradients_flow_in_float() {
        let x = Tensor::randn([2, 4, 3, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let t = Tensor::rand([2, 4, 3, 5], (Kind::Float, Device::Cpu)).lt(0.2);
        let fov = Tensor::ones([2, 1, 3, 5], (Kind::Uint8, Device::Cpu));
        let l = seg_loss(&x, &t, Some(&fov), &SegLossSettings::default());
        assert_eq!(l.total.kind(), Kind::Float);
        l.total.backward();
        assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn settings_are_validated() {
        assert!(SegLossSettings::default().validate().is_ok());
        let bad = [
            SegLossSettings {
                pos_weight: [1.0, 0.0, 1.0, 1.0],
                ..Default::default()
            },
            SegLossSettings {
                alpha: Some(1.5),
                ..Default::default()
            },
            SegLossSettings {
                pixel_weight: 0.0,
                dice_weight: 0.0,
                ..Default::default()
            },
            SegLossSettings {
                gamma: f64::NAN,
                ..Default::default()
            },
        ];
        for b in bad {
            assert!(b.validate().unwrap_err().starts_with("seg_loss"), "{b:?}");
        }
        let parsed: SegLossSettings = toml::from_str("pixel = \"focal\"\nalpha = 0.25").unwrap();
        assert_eq!((parsed.pixel, parsed.alpha), (PixelLoss::Focal, Some(0.25)));
        assert!(toml::from_str::<SegLossSettings>("pixels = \"bce\"").is_err());
    }
}
