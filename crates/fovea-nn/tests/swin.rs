//! Swin-T against torchvision's `swin_t`, and loading its weight files.

use fovea_nn::models::swin::{load_swin_pretrained, relative_position_index, SwinT};
use fovea_nn::NnError;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The deterministic pseudo-random values of tests/swin_reference.py (float64, the same
/// libtorch operations in the same order).
fn noise(n: i64, salt: f64) -> Tensor {
    let t =
        ((Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.37 + 1.7 * salt).sin()) * 43758.5453;
    &t - t.floor() - 0.5
}

fn fill(name: &str, shape: &[i64]) -> Tensor {
    let v = noise(shape.iter().product(), name.len() as f64);
    let v = if name.contains("norm") || name.starts_with("features.0.2.") {
        if name.ends_with("weight") {
            v * 0.2 + 1.0
        } else {
            v * 0.1
        }
    } else if name.ends_with("relative_position_bias_table") {
        v * 2.0
    } else if name.ends_with("bias") {
        v * 0.1
    } else {
        let fan_in: i64 = shape[1..].iter().product();
        v * (2.0 * (3.0 / fan_in as f64).sqrt())
    };
    v.to_kind(Kind::Float).reshape(shape)
}

/// A state dict as `torch.save(torchvision.models.swin_t().state_dict())` names it: the
/// Swin-T tensors, the 1000-way head and the relative position index buffers.
fn torchvision_state() -> Vec<(String, Tensor)> {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = SwinT::new(&vs.root());
    let mut out: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n.clone(), fill(&n, &t.size())))
        .collect();
    let tables: Vec<String> = out
        .iter()
        .filter(|(n, _)| n.ends_with("relative_position_bias_table"))
        .map(|(n, _)| n.replace("relative_position_bias_table", "relative_position_index"))
        .collect();
    for n in tables {
        out.push((n, Tensor::from_slice(&relative_position_index(7))));
    }
    out.push(("head.weight".into(), fill("head.weight", &[1000, 768])));
    out.push(("head.bias".into(), fill("head.bias", &[1000])));
    out
}

fn write(path: &std::path::Path, tensors: &[(String, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).unwrap();
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() < tol,
            "{what}: got {got:?}, torchvision {want:?}"
        );
    }
}

#[test]
fn torchvision_swin_t_weights_give_torchvision_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swin_t.safetensors");
    let state = torchvision_state();
    assert_eq!(
        state.len(),
        185,
        "torchvision's swin_t state dict has 185 entries"
    );
    write(&file, &state);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = SwinT::new(&vs.root());
    let n = load_swin_pretrained(&mut vs, "", &file).unwrap();
    assert_eq!(
        n,
        185 - 12 - 2,
        "every tensor but the 12 index buffers and the head"
    );
    // Reference values printed by
    //   ~/.cache/fovea/torch-2.13.0/bin/python crates/fovea-nn/tests/swin_reference.py
    // (torch 2.13.0, torchvision 0.28.0):
    // 224x224: pooled sum 2.254087448120117 abs 1193.92578125
    //   pooled first [0.13421079516410828, 0.18920178711414337, 0.5026871562004089, 0.0903003066778183]
    //   pooled last [0.5740096569061279, -0.1457374393939972, 0.5644965171813965]
    //   token[1, -1, -1, :3] [-0.010910887271165848, 0.07484561949968338, 0.647283136844635]
    //   token[0, 0, 0, :3] [0.39559075236320496, 0.005027667619287968, 0.2657776474952698]
    // 96x160: pooled sum 1.0292034149169922 abs 1128.14013671875
    //   pooled first [0.024086646735668182, 0.002775335218757391, 1.286277413368225, 0.850938081741333]
    //   pooled last [0.9303250908851624, -0.1487240195274353, -0.11121460795402527]
    //   token[1, -1, -1, :3] [-0.32070425152778625, 0.04765091463923454, 0.06702087819576263]
    //   token[0, 0, 0, :3] [0.13767850399017334, 0.31073644757270813, 1.4689115285873413]
    struct Want {
        h: i64,
        w: i64,
        abs: f64,
        first: [f32; 4],
        last: [f32; 3],
        token_last: [f32; 3],
        token_first: [f32; 3],
    }
    let cases = [
        Want {
            h: 224,
            w: 224,
            abs: 1_193.925_781_25,
            first: [0.134_210_8, 0.189_201_8, 0.502_687_2, 0.090_300_3],
            last: [0.574_009_7, -0.145_737_4, 0.564_496_5],
            token_last: [-0.010_910_887, 0.074_845_62, 0.647_283_1],
            token_first: [0.395_590_75, 0.005_027_667_6, 0.265_777_65],
        },
        Want {
            h: 96,
            w: 160,
            abs: 1_128.140_136_718_75,
            first: [0.024_086_647, 0.002_775_335_2, 1.286_277_4, 0.850_938_1],
            last: [0.930_325_1, -0.148_724_02, -0.111_214_61],
            token_last: [-0.320_704_25, 0.047_650_915, 0.067_020_88],
            token_first: [0.137_678_5, 0.310_736_45, 1.468_911_5],
        },
    ];
    for c in cases {
        let x = (noise(2 * 3 * c.h * c.w, 3.0) * 4.0)
            .to_kind(Kind::Float)
            .view([2, 3, c.h, c.w]);
        let fm = tch::no_grad(|| model.stages_t(&x, false)).pop().unwrap();
        assert_eq!(fm.size(), vec![2, c.h / 32, c.w / 32, 768]);
        let pooled = model.forward(&x);
        let abs = pooled.abs().sum(Kind::Float).double_value(&[]);
        assert!((abs - c.abs).abs() < 0.05, "{}x{}: abs sum {abs}", c.h, c.w);
        let v = |t: Tensor| Vec::<f32>::try_from(t).unwrap();
        let what = format!("{}x{}", c.h, c.w);
        close(&v(pooled.get(0).narrow(0, 0, 4)), &c.first, 1e-3, &what);
        close(&v(pooled.get(1).narrow(0, 765, 3)), &c.last, 1e-3, &what);
        let (th, tw) = (c.h / 32 - 1, c.w / 32 - 1);
        close(
            &v(fm.get(1).get(th).get(tw).narrow(0, 0, 3)),
            &c.token_last,
            1e-3,
            &what,
        );
        close(
            &v(fm.get(0).get(0).get(0).narrow(0, 0, 3)),
            &c.token_first,
            1e-3,
            &what,
        );
    }
}

#[test]
fn bad_swin_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let load = |state: &[(String, Tensor)], name: &str| {
        let file = dir.path().join(name);
        write(&file, state);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let _ = SwinT::new(&vs.root());
        load_swin_pretrained(&mut vs, "", &file)
    };
    let mut missing = torchvision_state();
    missing.retain(|(n, _)| n != "features.5.3.attn.qkv.weight");
    let e = load(&missing, "missing.safetensors").unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { path, reason }
            if path.ends_with("missing.safetensors")
                && reason.contains("features.5.3.attn.qkv.weight")
                && reason.contains("1 tensor(s) missing")),
        "{e}"
    );
    let mut shaped = torchvision_state();
    for (n, t) in shaped.iter_mut() {
        if n == "features.2.reduction.weight" {
            *t = Tensor::zeros([192, 385], (Kind::Float, Device::Cpu));
        }
    }
    let e = load(&shaped, "shaped.safetensors").unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { reason, .. }
            if reason.contains("features.2.reduction.weight")
                && reason.contains("[192, 385]")
                && reason.contains("[192, 384]")),
        "{e}"
    );
    let mut index = torchvision_state();
    for (n, t) in index.iter_mut() {
        if n == "features.1.1.attn.relative_position_index" {
            *t = Tensor::zeros([49 * 49], (Kind::Int64, Device::Cpu));
        }
    }
    let e = load(&index, "index.safetensors").unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { reason, .. } if reason.contains("relative position index")),
        "{e}"
    );
    // A ResNet-18 file is not Swin-T weights.
    let resnet = vec![(
        "conv1.weight".to_string(),
        Tensor::zeros([64, 3, 7, 7], (Kind::Float, Device::Cpu)),
    )];
    let e = load(&resnet, "resnet.safetensors").unwrap_err();
    assert!(
        matches!(&e, NnError::Weights { reason, .. } if reason.contains("not torchvision swin_t weights")),
        "{e}"
    );
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a weight file").unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _ = SwinT::new(&vs.root());
    assert!(matches!(
        load_swin_pretrained(&mut vs, "", &junk),
        Err(NnError::Malformed { path, .. }) if path == junk
    ));
}
