//! The `fovea-torch` commands as a user runs them: `predict` maps every photograph it can
//! and names the ones it cannot; `export` writes a TorchScript file.

use std::path::{Path, PathBuf};
use std::process::Command;

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_metrics::ThresholdsFile;
use fovea_nn::checkpoint::{save_vars, ModelInfo};
use fovea_nn::models::{Classifier, ModelKind, Pool};
use fovea_nn::train::{IMAGENET_MEAN, IMAGENET_STD};
use tch::{nn, Device};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
}

/// A run folder with a seeded, untrained shallow CNN (what `predict` and `export` read).
fn make_run(dir: &Path) -> PathBuf {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let _m = Classifier::new(&vs.root(), ModelKind::Cnn, 4).with_pool(Pool::Max);
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("model")).unwrap();
    save_vars(&vs, &run.join("model/model.safetensors")).unwrap();
    let info = ModelInfo {
        model: ModelKind::Cnn,
        pool: Pool::Max,
        patch_size: 64,
        num_classes: 4,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        epoch: 1,
        val_macro_f1: 0.0,
    };
    std::fs::write(
        run.join("model/model.toml"),
        toml::to_string(&info).unwrap(),
    )
    .unwrap();
    ThresholdsFile::from([0.5; 4])
        .write(&run.join("thresholds.json"))
        .unwrap();
    run
}

#[test]
fn predict_maps_the_good_photographs_and_names_the_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path());
    let data = tmp.path().join("data");
    generate(
        &data,
        &SynthSettings {
            images: 2,
            seed: 1,
            width: 256,
            height: 192,
        },
    )
    .unwrap();
    let ds = Dataset::open(&data).unwrap();
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a JPEG").unwrap();
    let missing = tmp.path().join("missing.png");
    let maps = tmp.path().join("maps");
    let out = bin()
        .args(["predict", "--run"])
        .arg(&run)
        .arg(&ds.records[0].image)
        .arg(&bad)
        .arg(&missing)
        .arg(&ds.records[1].image)
        .args(["--device", "cpu", "--overlay-width", "128", "--out"])
        .arg(&maps)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    assert!(stderr.contains("missing.png"), "{stderr}");
    assert!(stderr.contains("2 of 4 photographs failed"), "{stderr}");
    assert!(stdout.contains("wrote maps of 2 photograph(s)"), "{stdout}");
    for rec in &ds.records {
        for f in ["heatmap.npy", "overlay.png", "summary.json"] {
            assert!(maps.join(&rec.id).join(f).is_file(), "{}/{f}", rec.id);
        }
    }
    assert!(!maps.join("broken").exists());
}

#[test]
fn export_writes_a_torchscript_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path());
    let file = tmp.path().join("out").join("model.pt");
    let out = bin()
        .args(["export", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = tch::CModule::load(&file).unwrap();
    let y = m
        .forward_ts(&[tch::Tensor::rand(
            [2, 3, 64, 64],
            (tch::Kind::Float, Device::Cpu),
        )])
        .unwrap();
    assert_eq!(y.size(), vec![2, 4]);
    // A run folder without a model: one line naming it.
    let out = bin()
        .args(["export", "--run"])
        .arg(tmp.path())
        .arg("--out")
        .arg(tmp.path().join("x.pt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("model.toml"), "{err}");
}
