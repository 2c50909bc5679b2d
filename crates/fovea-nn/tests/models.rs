//! ResNet-18 against torchvision, and loading ImageNet-style weight files.

use std::collections::HashMap;

use fovea_nn::models::{Classifier, ModelKind, ResNet18};
use fovea_nn::pretrained::load_pretrained;
use fovea_nn::NnError;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// The deterministic weights of tests/resnet_reference.py.
fn fill(name: &str, shape: &[i64]) -> Tensor {
    let k: i64 = shape.iter().product();
    let mut v =
        (Tensor::arange(k, (Kind::Double, Device::Cpu)) * 0.01 + name.len() as f64).sin() * 0.05;
    if name.ends_with("running_var") {
        v = v.abs() * 2.0 + 1.0;
    }
    if name.ends_with("bias") {
        v = v.abs() + 0.05;
    }
    v.to_kind(Kind::Float).reshape(shape)
}

/// A torchvision-named ResNet-18 state dict (1000-way fc, num_batches_tracked included), as
/// `torch.save(torchvision.models.resnet18().state_dict())` would name it.
fn torchvision_state() -> Vec<(String, Tensor)> {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = ResNet18::new(&vs.root(), 1000);
    let mut out: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n.clone(), fill(&n, &t.size())))
        .collect();
    let bns: Vec<String> = out
        .iter()
        .filter(|(n, _)| n.ends_with("running_mean"))
        .map(|(n, _)| n.replace("running_mean", "num_batches_tracked"))
        .collect();
    for n in bns {
        out.push((n, Tensor::from(7i64)));
    }
    out
}

fn write(path: &std::path::Path, tensors: &[(String, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).unwrap();
}

#[test]
fn torchvision_weights_land_in_the_right_layers_and_match_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resnet18.safetensors");
    let state = torchvision_state();
    write(&file, &state);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = ResNet18::new(&vs.root(), 4);
    let fc_before = vs.variables()["fc.weight"].copy();
    let n = load_pretrained(&mut vs, &file).unwrap();
    assert_eq!(
        n, 100,
        "every trunk tensor (conv, bn weight/bias/running stats) is loaded"
    );
    let vars = vs.variables();
    let by_name: HashMap<_, _> = state.into_iter().collect();
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.bias",
    ] {
        assert!(vars[name].equal(&by_name[name]), "{name} differs");
    }
    assert!(
        vars["fc.weight"].equal(&fc_before),
        "fc must be left to the 4-way head"
    );
    assert_eq!(vars["fc.weight"].size(), vec![4, 512]);
    // Pooled features of a fixed input, as torchvision computes them:
    //   ~/.cache/fovea/torch-2.13.0/bin/python crates/fovea-nn/tests/resnet_reference.py
    //   sum 251.56202697753906
    //   first [0.2606704533100128, 0.2888624668121338, 0.2985665202140808, 0.26366615295410156, 0.30786609649658203]
    //   last [0.17979015409946442, 0.24257656931877136, 0.05464542657136917]
    let x = (Tensor::arange(2 * 3 * 64 * 64, (Kind::Double, Device::Cpu)) * 0.001)
        .sin()
        .to_kind(Kind::Float)
        .view([2, 3, 64, 64]);
    let f = tch::no_grad(|| model.features(&x, false));
    assert_eq!(f.size(), vec![2, 512]);
    let sum = f.sum(Kind::Float).double_value(&[]);
    assert!((sum - 251.56203).abs() < 2e-3, "{sum}");
    let first: Vec<f32> = Vec::try_from(f.get(0).narrow(0, 0, 5)).unwrap();
    for (a, b) in first
        .iter()
        .zip([0.26067045f32, 0.28886247, 0.29856652, 0.26366615, 0.3078661])
    {
        assert!((a - b).abs() < 1e-4, "{first:?}");
    }
    let last: Vec<f32> = Vec::try_from(f.get(1).narrow(0, 509, 3)).unwrap();
    for (a, b) in last.iter().zip([0.17979015f32, 0.24257657, 0.054645427]) {
        assert!((a - b).abs() < 1e-4, "{last:?}");
    }
}

#[test]
fn bad_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = torchvision_state();
    // Missing tensor.
    let missing = dir.path().join("missing.safetensors");
    write(
        &missing,
        &state
            .iter()
            .filter(|(n, _)| n != "layer3.1.conv2.weight")
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect::<Vec<_>>(),
    );
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _ = ResNet18::new(&vs.root(), 4);
    let e = load_pretrained(&mut vs, &missing).unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { path, reason }
            if path == &missing && reason.contains("layer3.1.conv2.weight")),
        "{e}"
    );
    // Mis-shaped tensor.
    for (n, t) in state.iter_mut() {
        if n == "conv1.weight" {
            *t = Tensor::zeros([64, 3, 3, 3], (Kind::Float, Device::Cpu));
        }
    }
    let shaped = dir.path().join("shaped.safetensors");
    write(&shaped, &state);
    let e = load_pretrained(&mut vs, &shaped).unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { path, reason }
            if path == &shaped && reason.contains("conv1.weight") && reason.contains("[64, 3, 3, 3]")),
        "{e}"
    );
    // Garbage and truncated files: errors, not panics.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a pickle at all").unwrap();
    assert!(matches!(
        load_pretrained(&mut vs, &junk),
        Err(NnError::Malformed { path, .. }) if path == junk
    ));
    let bytes = std::fs::read(&shaped).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load_pretrained(&mut vs, &cut),
        Err(NnError::Malformed { path, .. }) if path == cut
    ));
    let e = load_pretrained(&mut vs, &dir.path().join("none.pth")).unwrap_err();
    assert!(
        matches!(&e, NnError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
    assert!(e.to_string().contains("none.pth: no such file"), "{e}");
}

#[test]
fn both_models_give_four_logits() {
    for kind in [ModelKind::Resnet18, ModelKind::Cnn] {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Classifier::new(&vs.root(), kind, 4);
        let y = tch::no_grad(|| {
            m.forward_t(
                &Tensor::zeros([3, 3, 64, 64], (Kind::Float, Device::Cpu)),
                false,
            )
        });
        assert_eq!(y.size(), vec![3, 4], "{kind:?}");
    }
}
