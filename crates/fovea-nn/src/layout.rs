//! Channels-last (NHWC) memory layout for CPU convolutions.
//!
//! libtorch's CPU convolutions (oneDNN) run faster on channels-last tensors and keep that
//! layout through a network whose input and convolution weights are channels-last. tch has
//! no memory-format argument, so the layout is made by a permuted copy: the values and the
//! logical `[N, C, H, W]` shape are unchanged, only the strides differ.

use tch::nn;
use tch::Tensor;

/// The same `[N, C, H, W]` values laid out channels-last (NHWC strides).
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-d tensor is laid out channels-last.
pub fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4
        && stride[1] == 1
        && stride[3] == size[1]
        && stride[0] == size[1] * size[2] * size[3]
}

/// Re-lays every 4-d variable of `vs` (the convolution weights) channels-last, in place:
/// the variables keep their names, values and gradients' bookkeeping.
pub fn vars_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let cl = channels_last(&v);
                v.set_data(&cl);
            }
        }
    });
}

/// A contiguous (NCHW) copy where `x` is not contiguous, for writers that need one.
pub fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.shallow_clone()
    } else {
        x.contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn channels_last_keeps_values_and_changes_strides() {
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
        let y = channels_last(&x);
        assert_eq!(y.size(), x.size());
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        assert!(is_channels_last(&y) && !is_channels_last(&x));
        assert!(y.equal(&x));
        assert!(contiguous(&y).is_contiguous());
    }

    #[test]
    fn model_variables_become_channels_last_with_the_same_outputs() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = crate::models::Classifier::new(&vs.root(), crate::models::ModelKind::Cnn, 4);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        use tch::nn::ModuleT;
        let before = model.forward_t(&x, false);
        vars_channels_last(&vs);
        let convs: Vec<Tensor> = vs
            .variables()
            .into_values()
            .filter(|v| v.dim() == 4)
            .collect();
        assert!(!convs.is_empty() && convs.iter().all(is_channels_last));
        let after = model.forward_t(&channels_last(&x), false);
        assert!(before.allclose(&after, 1e-4, 1e-5, false));
    }
}
