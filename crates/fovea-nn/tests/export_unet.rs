//! TorchScript export of the segmentation U-Net: the saved module, loaded back with
//! `tch::CModule`, gives the model's own probabilities at sizes other than the one it was
//! traced at, with and without the ImageNet normalisation.

use fovea_nn::export::{export_unet, trace_unet};
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::models::unet::{SegEncoder, UNet};
use tch::nn::{self, ModuleT};
use tch::{CModule, Device, Kind, Tensor};

fn build(kind: SegEncoder, seed: i64) -> (nn::VarStore, UNet) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = UNet::new(&vs.root(), kind);
    (vs, m)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn exported_unet_matches_the_model_at_two_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, sizes) in [
        (SegEncoder::Small, [(1, 16, 16), (3, 48, 80)]),
        (SegEncoder::Resnet18, [(1, 64, 96), (2, 32, 160)]),
    ] {
        let (vs, m) = build(kind, 7);
        let file = dir.path().join(format!("sub/{}.pt", kind.as_str()));
        let bytes = export_unet(&m, &vs, None, &file).unwrap();
        assert!(bytes > 0 && file.is_file());
        let module = CModule::load(&file).unwrap();
        for (n, h, w) in sizes {
            let x = Tensor::randn([n, 3, h, w], (Kind::Float, Device::Cpu));
            let want = tch::no_grad(|| m.forward_t(&x, false).sigmoid());
            let got = tch::no_grad(|| module.forward_ts(&[&x]).unwrap());
            assert_eq!(got.size(), [n, 4, h, w], "{kind:?} {h}x{w}");
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "{kind:?} {n}x{h}x{w}: max difference {d}");
            // Probabilities, not logits.
            assert!(got.ge(0.0).all().int64_value(&[]) == 1);
            assert!(got.le(1.0).all().int64_value(&[]) == 1);
        }
        // No temporary file left beside the module.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| n.to_string_lossy().ends_with(".pt")),
            "{names:?}"
        );
    }
}

#[test]
fn normalisation_is_part_of_the_module_when_given() {
    let (vs, m) = build(SegEncoder::Small, 3);
    let module = trace_unet(&m, &vs, Some((IMAGENET_MEAN, IMAGENET_STD))).unwrap();
    let x = Tensor::rand([2, 3, 64, 32], (Kind::Float, Device::Cpu));
    let mean = Tensor::from_slice(&IMAGENET_MEAN).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&IMAGENET_STD).view([1, 3, 1, 1]);
    let want = tch::no_grad(|| m.forward_t(&((&x - mean) / std), false).sigmoid());
    let got = tch::no_grad(|| module.forward_ts(&[&x]).unwrap());
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-5, "max difference {d}");
    // Without it the module sees the raw input: a different answer.
    let raw = tch::no_grad(|| m.forward_t(&x, false).sigmoid());
    assert!(max_abs_diff(&got, &raw) > 1e-3);
}
