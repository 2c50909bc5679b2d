//! Starting from torchvision's ImageNet ResNet-18 weights, read from a file the user has
//! (`.pth`/`.pt` as saved by `torch.save(model.state_dict())`, or `.safetensors`). Every
//! trunk tensor must be present with its shape; the fc layer (1000 ImageNet classes) is
//! replaced by the model's own 4-way head; `num_batches_tracked` counters are ignored.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Tensor};

use crate::error::{NnError, Result};
use crate::tensors::read_tensors;

/// Loads the trunk of `vs` from `path`; returns the number of tensors loaded.
pub fn load_pretrained(vs: &mut nn::VarStore, path: &Path) -> Result<usize> {
    load_pretrained_under(vs, "", path)
}

/// Loads the ResNet-18 trunk whose variables are named `prefix` + torchvision's names
/// (`""` for the patch classifier, `"global."` for the whole-image encoder).
pub fn load_pretrained_under(vs: &mut nn::VarStore, prefix: &str, path: &Path) -> Result<usize> {
    let named = read_state_dict(path)?;
    load_named(vs, prefix, path, &named, "ResNet-18", |r| {
        r.starts_with("conv1.") || r.starts_with("bn1.") || r.starts_with("layer")
    })
}

/// A weight file's tensors by name, without the "module." prefix of weights saved from
/// `nn.DataParallel`.
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    let named = read_tensors(path)?;
    if !named.is_empty() && named.keys().all(|k| k.starts_with("module.")) {
        return Ok(named
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("module.").to_string(), v))
            .collect());
    }
    Ok(named)
}

/// Copies into every variable of `vs` named `prefix` + a name that `wanted` accepts the
/// tensor of that name in `named` (read from `path`), after checking that all are there
/// with the variables' shapes; `model` names the architecture in errors. Returns the
/// number of tensors copied.
pub fn load_named(
    vs: &mut nn::VarStore,
    prefix: &str,
    path: &Path,
    named: &HashMap<String, Tensor>,
    model: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<usize> {
    let mut vars = vs.variables();
    let mut names: Vec<String> = vars
        .keys()
        .filter(|k| k.strip_prefix(prefix).is_some_and(&wanted))
        .cloned()
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(NnError::weights(
            path,
            format!("this model has no {model} under '{prefix}' to load it into"),
        ));
    }
    let file_name = |n: &str| n[prefix.len()..].to_string();
    let missing: Vec<String> = names
        .iter()
        .map(|n| file_name(n))
        .filter(|n| !named.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(NnError::weights(
            path,
            format!(
                "not torchvision {model} weights: {} tensor(s) missing, e.g. {}",
                missing.len(),
                missing[..missing.len().min(5)].join(", ")
            ),
        ));
    }
    for name in &names {
        let (src, dst) = (
            &named[&file_name(name)],
            vars.get_mut(name).expect("listed"),
        );
        if src.size() != dst.size() {
            return Err(NnError::weights(
                path,
                format!(
                    "tensor '{}' has shape {:?}, {model} needs {:?}",
                    file_name(name),
                    src.size(),
                    dst.size()
                ),
            ));
        }
        tch::no_grad(|| dst.copy_(&src.to_kind(dst.kind()).to_device(dst.device())));
    }
    Ok(names.len())
}
