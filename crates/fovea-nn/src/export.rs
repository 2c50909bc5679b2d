//! `fovea export`: a run's best model as a TorchScript module (traced) that runs in
//! PyTorch or LibTorch without Fovea. The module takes float32 `[N, 3, P, P]` RGB in
//! [0, 1] (the run's ImageNet normalisation is part of it) and returns logits `[N, 4]`
//! (MA, HE, EX, SE). In Python:
//!
//! ```text
//! m = torch.jit.load("model.pt"); probs = torch.sigmoid(m(x))
//! torch.onnx.export(m, torch.rand(1, 3, 64, 64), "model.onnx")
//! ```
//!
//! A segmentation U-Net ([`trace_unet`], [`export_unet`]) is traced with its sigmoid: float32
//! `[N, 3, H, W]` -> probabilities `[N, 4, H, W]` for any H, W that are multiples of the
//! encoder's stride (16 for `small`, 32 for the ResNets; the model's own padding of other
//! sides is not part of the module), ImageNet normalisation included when given.

use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{CModule, Device, Kind, Tensor};

use crate::error::{NnError, Result};
use crate::maps::RunModel;
use crate::models::unet::UNet;

/// The traced forward pass of `rm` (on the CPU), normalisation included.
pub fn trace(rm: &RunModel) -> Result<CModule> {
    if rm.model.needs_context() {
        return Err(NnError::Unsupported {
            path: rm.run.clone(),
            reason: format!(
                "fusion \"{}\" reads the whole photograph as well as the patch; export covers the patch-only and attention-pool models, whose patch head needs only the patch",
                rm.model.fusion()
            ),
        });
    }
    let p = rm.info.patch_size as i64;
    let mean = Tensor::from_slice(&rm.info.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&rm.info.std).view([1, 3, 1, 1]);
    let example = Tensor::rand([2, 3, p, p], (Kind::Float, Device::Cpu));
    // The tracer stores the weights as constants, which it refuses while they require
    // gradients: the model is only evaluated from here on.
    for (_, v) in rm.vs.variables() {
        let _ = v.set_requires_grad(false);
    }
    let mut forward = |inputs: &[Tensor]| {
        let x = (&inputs[0] - &mean) / &std;
        vec![rm.model.trunk.forward_t(&x, false)]
    };
    tch::no_grad(|| {
        CModule::create_by_tracing("FoveaClassifier", "forward", &[example], &mut forward)
    })
    .map_err(|e| NnError::Unsupported {
        path: rm.run.clone(),
        reason: format!("tracing the model: {e}"),
    })
}

/// Writes the TorchScript module to `out` atomically; returns its size in bytes.
pub fn export_torchscript(rm: &RunModel, out: &Path) -> Result<u64> {
    if rm.device != Device::Cpu {
        return Err(NnError::Usage(
            "export traces on the CPU: load the run with --device cpu".into(),
        ));
    }
    let module = trace(rm)?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
    fovea_data::fsio::write_atomic_via(out, |tmp| {
        module.save(tmp).map_err(|source| NnError::TensorIo {
            path: out.to_path_buf(),
            source,
        })
    })?;
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| NnError::io(out, e))
}

/// The traced forward pass of a segmentation U-Net (its variables in `vs`, on the CPU), in
/// evaluation mode, with the sigmoid: `[N, 3, H, W]` -> probabilities `[N, 4, H, W]`, for
/// any H, W multiples of `model.kind().stride()`. `normalise`: ImageNet-style `(mean,
/// std)` per channel, applied first, so that the module takes RGB in [0, 1]; `None`: the
/// module takes the model's input as is. Traced on a `[2, 3, 2s, 3s]` example (s the
/// stride); the weights stop requiring gradients.
pub fn trace_unet(
    model: &UNet,
    vs: &nn::VarStore,
    normalise: Option<([f32; 3], [f32; 3])>,
) -> Result<CModule> {
    if vs.device() != Device::Cpu {
        return Err(NnError::Usage(
            "export traces on the CPU: build the model with --device cpu".into(),
        ));
    }
    let s = model.kind().stride();
    let example = Tensor::rand([2, 3, 2 * s, 3 * s], (Kind::Float, Device::Cpu));
    for (_, v) in vs.variables() {
        let _ = v.set_requires_grad(false);
    }
    let norm = normalise.map(|(mean, std)| {
        (
            Tensor::from_slice(&mean).view([1, 3, 1, 1]),
            Tensor::from_slice(&std).view([1, 3, 1, 1]),
        )
    });
    let mut forward = |inputs: &[Tensor]| {
        let x = match &norm {
            Some((mean, std)) => (&inputs[0] - mean) / std,
            None => inputs[0].shallow_clone(),
        };
        vec![model.forward_t(&x, false).sigmoid()]
    };
    tch::no_grad(|| CModule::create_by_tracing("FoveaUNet", "forward", &[example], &mut forward))
        .map_err(|e| NnError::Internal(format!("tracing the U-Net: {e}")))
}

/// A [`NnError`] from [`fovea_data::fsio::write_atomic_via`].
struct Saving(NnError);

impl From<fovea_data::fsio::FileError> for Saving {
    fn from(e: fovea_data::fsio::FileError) -> Self {
        Saving(NnError::io(e.path, e.source))
    }
}

/// [`trace_unet`], written to `out` atomically (the folder is created); returns its size in
/// bytes.
pub fn export_unet(
    model: &UNet,
    vs: &nn::VarStore,
    normalise: Option<([f32; 3], [f32; 3])>,
    out: &Path,
) -> Result<u64> {
    let module = trace_unet(model, vs, normalise)?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
    fovea_data::fsio::write_atomic_via(out, |tmp| {
        module.save(tmp).map_err(|source| {
            Saving(NnError::TensorIo {
                path: out.to_path_buf(),
                source,
            })
        })
    })
    .map_err(|Saving(e)| e)?;
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| NnError::io(out, e))
}
