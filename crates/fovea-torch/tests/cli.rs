//! The `fovea-torch` commands as a user runs them: `predict` maps every photograph it can
//! and names the ones it cannot; `export` writes a TorchScript file; `ablate` trains and
//! tests every fusion variant into one table and does not redo finished runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_loader::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_metrics::ThresholdsFile;
use fovea_nn::checkpoint::{save_vars, ModelInfo};
use fovea_nn::models::{Classifier, ModelKind, Pool};
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
        context: Default::default(),
        enhance: Default::default(),
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

#[test]
fn ablate_writes_one_row_per_variant_and_seed_and_keeps_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(
        &data,
        &SynthSettings {
            images: 4,
            seed: 6,
            width: 256,
            height: 192,
        },
    )
    .unwrap();
    let store = tmp.path().join("store");
    fovea_store::extract(
        &Dataset::open(&data).unwrap(),
        &fovea_store::ExtractSettings {
            patch_size: 32,
            stride: 32,
            ..Default::default()
        },
        &store,
        false,
        &fovea_store::extract::NoProgress,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap();
    let out = tmp.path().join("abl");
    let run = || {
        bin()
            .args(["--threads", "1", "ablate", "--store"])
            .arg(&store)
            .arg("--out")
            .arg(&out)
            .args([
                "--variants",
                "patch,cross-attention",
                "--encoders",
                "resnet18,swin-t",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--global-size",
                "64",
                "--device",
                "cpu",
            ])
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let csv = std::fs::read_to_string(out.join("ablation.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("variant,encoder,seed,epochs,macro_f1,"));
    assert!(lines[1].starts_with("patch,-,1,1,"), "{csv}");
    assert!(
        lines[2].starts_with("cross-attention,resnet18,1,1,"),
        "{csv}"
    );
    for l in &lines[1..] {
        let cols: Vec<&str> = l.split(',').collect();
        assert_eq!(cols.len(), lines[0].split(',').count());
        // Patch-level columns are numbers; image-level AP is NaN where every or no test
        // photograph has the lesion.
        let finite = |v: &&str| v.parse::<f64>().is_ok_and(f64::is_finite);
        assert!(cols[4..14].iter().all(finite) && finite(&cols[18]), "{l}");
        assert!(cols[14..18].iter().all(|v| v.parse::<f64>().is_ok()), "{l}");
    }
    let md = std::fs::read_to_string(out.join("ablation.md")).unwrap();
    assert!(md.contains("| cross-attention | swin-t | 1 |"), "{md}");
    // A second call keeps the finished runs.
    let second = run();
    assert!(second.status.success());
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(stdout.matches("done before, kept").count(), 3, "{stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("ablation.csv")).unwrap(),
        csv
    );
    // The fused run maps photographs; export refuses it with a reason.
    let fused = out.join("runs/cross-attention-seed1");
    let ds = Dataset::open(&data).unwrap();
    let maps = tmp.path().join("maps");
    let p = bin()
        .args([
            "predict",
            "--device",
            "cpu",
            "--overlay-width",
            "128",
            "--run",
        ])
        .arg(&fused)
        .arg("--out")
        .arg(&maps)
        .arg(&ds.records[0].image)
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert!(maps.join(&ds.records[0].id).join("summary.json").exists());
    let e = bin()
        .args(["export", "--run"])
        .arg(&fused)
        .arg("--out")
        .arg(tmp.path().join("x.pt"))
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("cross-attention"));
    // A variant that does not exist is named.
    let bad = bin()
        .args(["ablate", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(tmp.path().join("bad"))
        .args(["--variants", "patch,late"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'late'"));
}
