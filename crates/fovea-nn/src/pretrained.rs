//! Starting from torchvision's ImageNet ResNet-18 weights, read from a file the user has
//! (`.pth`/`.pt` as saved by `torch.save(model.state_dict())`, or `.safetensors`). Every
//! trunk tensor must be present with its shape; the fc layer (1000 ImageNet classes) is
//! replaced by the model's own 4-way head; `num_batches_tracked` counters are ignored.

use std::path::Path;

use tch::nn;

use crate::checkpoint::read_tensors;

/// Loads the trunk of `vs` from `path`; returns the number of tensors loaded.
pub fn load_pretrained(vs: &mut nn::VarStore, path: &Path) -> Result<usize, String> {
    load_pretrained_under(vs, "", path)
}

/// Loads the ResNet-18 trunk whose variables are named `prefix` + torchvision's names
/// (`""` for the patch classifier, `"global."` for the whole-image encoder).
pub fn load_pretrained_under(
    vs: &mut nn::VarStore,
    prefix: &str,
    path: &Path,
) -> Result<usize, String> {
    let mut named = read_tensors(path)?;
    // Weights saved from nn.DataParallel carry a "module." prefix.
    if named.keys().all(|k| k.starts_with("module.")) {
        named = named
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("module.").to_string(), v))
            .collect();
    }
    let mut vars = vs.variables();
    let trunk = |k: &str| {
        k.strip_prefix(prefix).is_some_and(|r| {
            r.starts_with("conv1.") || r.starts_with("bn1.") || r.starts_with("layer")
        })
    };
    let mut names: Vec<String> = vars.keys().filter(|k| trunk(k)).cloned().collect();
    names.sort();
    if names.is_empty() {
        return Err(format!(
            "{}: this model has no ResNet-18 trunk under '{prefix}' to load it into",
            path.display()
        ));
    }
    let file_name = |n: &str| n[prefix.len()..].to_string();
    let missing: Vec<String> = names
        .iter()
        .map(|n| file_name(n))
        .filter(|n| !named.contains_key(n))
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
        return Err(format!(
            "{}: not torchvision ResNet-18 weights: {} tensor(s) missing, e.g. {}",
            path.display(),
            missing.len(),
            list.join(", ")
        ));
    }
    for name in &names {
        let (src, dst) = (
            &named[&file_name(name)],
            vars.get_mut(name).expect("listed"),
        );
        if src.size() != dst.size() {
            return Err(format!(
                "{}: tensor '{name}' has shape {:?}, ResNet-18 needs {:?}",
                path.display(),
                src.size(),
                dst.size()
            ));
        }
        tch::no_grad(|| dst.copy_(&src.to_kind(dst.kind()).to_device(dst.device())));
    }
    Ok(names.len())
}
