//! The segmentation U-Net: output shapes for any side, torchvision's parameter names under
//! `encoder.`, gradients down to the first convolution, determinism, pretrained loading.

use std::collections::BTreeMap;

use fovea_nn::models::unet::{SegEncoder, UNet, SEG_CLASSES};
use fovea_nn::pretrained::load_pretrained_under;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// libtorch's generator is global: tests that build models run one at a time, so
/// `same_seed_same_model` sees no other test's draws between its two builds.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn build(kind: SegEncoder) -> (nn::VarStore, UNet) {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = UNet::new(&vs.root(), kind);
    (vs, m)
}

/// torchvision's trunk tensors (`tests/data/torchvision_<name>_trunk.txt`): name -> shape.
fn torchvision_trunk(name: &str) -> BTreeMap<String, Vec<i64>> {
    let path = format!(
        "{}/tests/data/torchvision_{name}_trunk.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (n, s) = l.split_once(' ').unwrap();
            (
                n.to_string(),
                s.split('x').map(|d| d.parse().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn output_is_four_logits_at_the_input_resolution() {
    let _serial = serial();
    for kind in [SegEncoder::Small, SegEncoder::Resnet18] {
        let (_vs, m) = build(kind);
        for (h, w) in [(64, 64), (33, 47), (1, 1), (17, 96), (100, 31)] {
            let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.size(), [2, SEG_CLASSES, h, w], "{kind:?} {h}x{w}");
            assert!(y.isfinite().all().int64_value(&[]) == 1);
        }
    }
    let (_vs, m) = build(SegEncoder::Resnet34);
    let x = Tensor::randn([1, 3, 45, 70], (Kind::Float, Device::Cpu));
    assert_eq!(
        tch::no_grad(|| m.forward_t(&x, false)).size(),
        [1, 4, 45, 70]
    );
}

#[test]
fn padding_does_not_change_a_multiple_of_the_stride() {
    let _serial = serial();
    // A 32x32 input is not padded; a 31x31 one is padded to 32x32 with zeros, so its
    // output equals that of the 32x32 input whose last row and column are zero.
    let (_vs, m) = build(SegEncoder::Small);
    tch::manual_seed(1);
    let x = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let _ = x.narrow(2, 31, 1).fill_(0.0);
    let _ = x.narrow(3, 31, 1).fill_(0.0);
    let full = tch::no_grad(|| m.forward_t(&x, false));
    let cut = tch::no_grad(|| m.forward_t(&x.narrow(2, 0, 31).narrow(3, 0, 31), false));
    let want = full.narrow(2, 0, 31).narrow(3, 0, 31);
    let d = (cut - want).abs().max().double_value(&[]);
    assert!(d < 1e-5, "{d}");
}

#[test]
fn resnet_encoders_use_torchvision_names() {
    let _serial = serial();
    for (kind, name, count) in [
        (SegEncoder::Resnet18, "resnet18", 100),
        (SegEncoder::Resnet34, "resnet34", 180),
    ] {
        let (vs, _m) = build(kind);
        let ours: BTreeMap<String, Vec<i64>> = vs
            .variables()
            .into_iter()
            .filter_map(|(n, t)| {
                n.strip_prefix("encoder.")
                    .map(|r| (r.to_string(), t.size()))
            })
            .collect();
        let theirs = torchvision_trunk(name);
        // torchvision's state_dict has 122 (218) tensors: minus fc.weight, fc.bias and one
        // num_batches_tracked per batch norm (20, 36), which tch does not keep.
        assert_eq!(theirs.len(), count, "{name} reference file");
        assert_eq!(ours, theirs, "{name}");
        for probe in [
            "encoder.layer4.1.bn2.running_var",
            "encoder.layer2.0.downsample.0.weight",
        ] {
            assert!(vs.variables().contains_key(probe), "{probe}");
        }
    }
    let (vs, _m) = build(SegEncoder::Resnet34);
    assert_eq!(
        vs.variables()["encoder.layer3.5.conv2.weight"].size(),
        [256, 256, 3, 3]
    );
}

#[test]
fn torchvision_weights_load_into_the_encoder() {
    let _serial = serial();
    // A torchvision-named state dict (fc and num_batches_tracked included, as saved).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resnet18.safetensors");
    let mut tensors: Vec<(String, Tensor)> = torchvision_trunk("resnet18")
        .into_iter()
        .map(|(n, s)| {
            (
                n,
                Tensor::full(s.as_slice(), 0.5, (Kind::Float, Device::Cpu)),
            )
        })
        .collect();
    tensors.push((
        "fc.weight".into(),
        Tensor::zeros([1000, 512], (Kind::Float, Device::Cpu)),
    ));
    tensors.push(("bn1.num_batches_tracked".into(), Tensor::from(3i64)));
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, &file).unwrap();
    let (mut vs, _m) = build(SegEncoder::Resnet18);
    let n = load_pretrained_under(&mut vs, "encoder.", &file).unwrap();
    assert_eq!(n, 100);
    let v = vs.variables();
    assert_eq!(
        v["encoder.layer4.1.bn2.running_var"]
            .mean(Kind::Float)
            .double_value(&[]),
        0.5
    );
    // The decoder is left as built.
    assert_ne!(
        v["decoder.0.conv1.weight"].abs().max().double_value(&[]),
        0.5
    );
}

#[test]
fn gradients_reach_the_first_encoder_convolution() {
    let _serial = serial();
    for (kind, first) in [
        (SegEncoder::Small, "encoder.stage0.conv1.weight"),
        (SegEncoder::Resnet18, "encoder.conv1.weight"),
    ] {
        tch::manual_seed(2);
        let (vs, m) = build(kind);
        let x = Tensor::randn([2, 3, 40, 40], (Kind::Float, Device::Cpu));
        let t = Tensor::rand([2, 4, 40, 40], (Kind::Float, Device::Cpu))
            .lt(0.1)
            .to_kind(Kind::Float);
        let loss = m
            .forward_t(&x, true)
            .binary_cross_entropy_with_logits::<Tensor>(&t, None, None, tch::Reduction::Mean);
        loss.backward();
        let vars = vs.variables();
        let g = vars[first].grad();
        assert!(g.defined(), "{kind:?}");
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{kind:?}");
        assert!(
            vars["head.bias"]
                .grad()
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0
        );
    }
}

#[test]
fn a_few_steps_fit_a_fixed_batch() {
    let _serial = serial();
    tch::manual_seed(3);
    let (vs, m) = build(SegEncoder::Small);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    // The target is where the first channel is high: learnable from the input.
    let t = x
        .narrow(1, 0, 1)
        .gt(1.0)
        .to_kind(Kind::Float)
        .repeat([1, 4, 1, 1]);
    let loss = |m: &UNet| {
        m.forward_t(&x, true)
            .binary_cross_entropy_with_logits::<Tensor>(&t, None, None, tch::Reduction::Mean)
    };
    let first = loss(&m).double_value(&[]);
    for _ in 0..15 {
        opt.backward_step(&loss(&m));
    }
    let last = loss(&m).double_value(&[]);
    assert!(last < 0.5 * first, "{first} -> {last}");
}

#[test]
fn same_seed_same_model() {
    let _serial = serial();
    let run = || {
        tch::manual_seed(7);
        let (vs, m) = build(SegEncoder::Small);
        let x = Tensor::randn([1, 3, 24, 20], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| m.forward_t(&x, false));
        (vs.variables()["decoder.3.conv2.weight"].copy(), y)
    };
    let (w1, y1) = run();
    let (w2, y2) = run();
    assert!(w1.equal(&w2) && y1.equal(&y2));
    tch::manual_seed(8);
    let (vs, _m) = build(SegEncoder::Small);
    assert!(!vs.variables()["decoder.3.conv2.weight"].equal(&w1));
}

#[test]
fn the_head_starts_at_the_prior() {
    let _serial = serial();
    // Bias -ln(99): with the encoder's output about zero-mean, sigmoid near 1 %.
    let (vs, _m) = build(SegEncoder::Small);
    let b = vs.variables()["head.bias"].copy();
    let want = -(99.0f64).ln();
    assert!((b - want).abs().max().double_value(&[]) < 1e-6);
    assert!(SegEncoder::Resnet34.pretrainable() && !SegEncoder::Small.pretrainable());
    assert_eq!(
        serde_json::from_str::<SegEncoder>("\"resnet34\"").unwrap(),
        SegEncoder::Resnet34
    );
    assert_eq!(SegEncoder::default(), SegEncoder::Small);
}

/// The deterministic weights of tests/unet_reference.py.
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

#[test]
fn small_unet_matches_the_pytorch_benchmark_model() {
    let _serial = serial();
    // Values printed by tests/unet_reference.py (PyTorch 2.13, the model of
    // bench/seg_train_reference.py): shape [2, 4, 48, 32], sum 112.97930908203125,
    // first y[0, 0, 0, :4], last y[1, 3, -1, -3:].
    let (vs, m) = build(SegEncoder::Small);
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            t.copy_(&fill(&name, &t.size()));
        }
    });
    let x = (Tensor::arange(2 * 3 * 48 * 32, (Kind::Double, Device::Cpu)) * 0.001)
        .sin()
        .to_kind(Kind::Float)
        .reshape([2, 3, 48, 32]);
    let y = tch::no_grad(|| m.forward_t(&x, false));
    assert_eq!(y.size(), [2, 4, 48, 32]);
    let sum = y.sum(Kind::Double).double_value(&[]);
    assert!((sum - 112.97930908203125).abs() < 1e-3, "{sum}");
    let first: Vec<f32> = Vec::try_from(&y.get(0).get(0).get(0).narrow(0, 0, 4)).unwrap();
    let want = [
        0.005075393710285425,
        0.005390651989728212,
        0.005389637313783169,
        0.0053896368481218815,
    ];
    for (a, b) in first.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{first:?}");
    }
    let last: Vec<f32> = Vec::try_from(&y.get(1).get(3).get(47).narrow(0, 29, 3)).unwrap();
    let want = [
        0.013778154738247395,
        0.013778950087726116,
        0.013505005277693272,
    ];
    for (a, b) in last.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{last:?}");
    }
}
