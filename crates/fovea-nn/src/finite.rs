//! A loaded model's weights must be finite numbers: a diverged training (or a damaged file)
//! can leave NaN or infinite values in `model.safetensors`, which would otherwise surface
//! far from their cause (`MA: score at index 0 is NaN` in `eval`, a window error in
//! `predict`, a silently broken export). [`check_finite_weights`] is called where a run's
//! model is loaded and names the file and the first broken tensor.

use std::path::{Path, PathBuf};

use tch::nn;

/// A tensor of a weights file holds NaN or infinite values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: tensor '{tensor}' holds {count} of {total} values that are NaN or infinite: the weights are broken (a training that diverged, or a damaged file); retrain, or use an earlier checkpoint", path.display())]
pub struct NonFiniteWeights {
    /// The weights file the variables were loaded from.
    pub path: PathBuf,
    /// The first tensor (by name) with a non-finite value.
    pub tensor: String,
    /// Non-finite values in it, and its size.
    pub count: i64,
    pub total: i64,
}

/// Errors, naming `path` (where the variables of `vs` were loaded from) and the first
/// tensor by name, when any variable holds a NaN or an infinity.
pub fn check_finite_weights(vs: &nn::VarStore, path: &Path) -> Result<(), NonFiniteWeights> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, v) in vars {
        if !v.is_floating_point() {
            continue;
        }
        let bad = tch::no_grad(|| v.isfinite().logical_not().sum(tch::Kind::Int64));
        let count = i64::try_from(bad).unwrap_or(0);
        if count > 0 {
            return Err(NonFiniteWeights {
                path: path.to_path_buf(),
                tensor: name,
                count,
                total: v.numel() as i64,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Tensor};

    #[test]
    fn names_the_file_and_the_first_broken_tensor() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _a = root.var("a", &[3], nn::Init::Const(0.5));
        let mut b = root.var("b", &[2, 2], nn::Init::Const(1.0));
        let _c = root.var("c", &[4], nn::Init::Const(f64::INFINITY));
        let path = Path::new("/runs/r/model/model.safetensors");
        let e = check_finite_weights(&vs, path).unwrap_err();
        assert_eq!((e.tensor.as_str(), e.count, e.total), ("c", 4, 4));
        let nan = Tensor::from_slice(&[1.0f32, f32::NAN, 2.0, f32::NAN]).view([2, 2]);
        tch::no_grad(|| b.copy_(&nan));
        let e = check_finite_weights(&vs, path).unwrap_err();
        assert_eq!((e.tensor.as_str(), e.count, e.total), ("b", 2, 4));
        assert!(
            e.to_string()
                .starts_with("/runs/r/model/model.safetensors: tensor 'b' holds 2 of 4 values"),
            "{e}"
        );
    }

    #[test]
    fn finite_weights_pass() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = vs.root().var("w", &[5, 5], nn::Init::Const(-3.0));
        assert!(check_finite_weights(&vs, Path::new("m.safetensors")).is_ok());
    }
}
