//! The `fovea-torch` commands as a user runs them: `predict` maps every photograph it can
//! and names the ones it cannot; `export` writes a TorchScript file; `ablate` trains and
//! tests every fusion variant into one table and does not redo finished runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use fovea_data::Dataset;
use fovea_nn::models::{ModelKind, Pool};
use fovea_testkit::runs::UntrainedRun;
use fovea_testkit::Synth;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
}

/// A run folder with a seeded, untrained shallow CNN (what `predict` and `export` read).
fn make_run(dir: &Path) -> PathBuf {
    UntrainedRun::new(ModelKind::Cnn, Pool::Max, 64)
        .seed(3)
        .write(dir)
}

#[test]
fn predict_maps_the_good_photographs_and_names_the_bad_ones() {
    let tmp = fovea_testkit::tempdir().unwrap();
    let run = make_run(tmp.path());
    let data = Synth::new(2, 1).dataset(tmp.path());
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
    let tmp = fovea_testkit::tempdir().unwrap();
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
            (tch::Kind::Float, tch::Device::Cpu),
        )])
        .unwrap();
    assert_eq!(y.size(), vec![2, 4]);
    // A run folder without a model: one line naming it.
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir_all(&empty).unwrap();
    let out = bin()
        .args(["export", "--run"])
        .arg(&empty)
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
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(4, 6).store(tmp.path());
    let data = tmp.path().join("data");
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
    // The console observer draws every run's training curves after each epoch.
    for f in [
        "loss.png",
        "loss.svg",
        "macro_f1.png",
        "per_class_f1.svg",
        "val_ap.png",
    ] {
        let p = out.join("runs/patch-seed1/plots").join(f);
        assert!(p.is_file(), "{} missing", p.display());
    }
    let png = image::open(out.join("runs/patch-seed1/plots/per_class_f1.png")).unwrap();
    assert!(png.width() >= 400 && png.height() >= 200);
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

#[test]
fn train_stopped_by_ctrl_c_exits_130_and_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(4, 2).store(tmp.path());
    let run = tmp.path().join("run");
    let train = |extra: &[&str]| {
        let mut c = bin();
        c.args(["--threads", "1", "train", "--store"])
            .arg(&store)
            .arg("--out")
            .arg(&run)
            .args(["--model", "cnn", "--epochs", "500", "--batch-size", "4"])
            .args(["--device", "cpu"])
            .args(extra);
        c
    };
    let mut child = train(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once training has started (the Ctrl-C handler is in place), send SIGINT.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.starts_with("training pool")));
    assert!(started, "training did not start");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted during epoch"), "{stderr}");
    // Resuming is refused with another seed, naming the run's own settings file.
    let other = train(&["--resume", "--seed", "9"]).output().unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("config.toml"));
}

/// Every enum flag is a clap `ValueEnum` with the TOML settings' spellings: a wrong value
/// is a usage error (exit 2) that names the flag and the values it takes, before anything
/// is read; the values and aliases the settings take are accepted.
#[test]
fn enum_flags_name_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cases: [(&[&str], &str); 7] = [
        (
            &["train", "--model", "resnet50"],
            "[possible values: resnet18, cnn, small, resnet34]",
        ),
        (&["train", "--pool", "mean"], "[possible values: avg, max]"),
        (&["train", "--amp", "bf16"], "[possible values: off, fp16]"),
        (
            &["train", "--balance", "equal"],
            "[possible values: none, report, weighted]",
        ),
        (
            &["train", "--device", "tpu"],
            "[possible values: cpu, cuda, auto]",
        ),
        (
            &["train", "--fusion", "sum"],
            "[possible values: patch, concat, cross-attention, attention-pool]",
        ),
        (
            &["ablate", "--encoders", "resnet18,vit"],
            "[possible values: resnet18, swin-t]",
        ),
    ];
    let run = |args: &[&str]| {
        let o = bin()
            .args(args)
            .args(["--store", "nowhere", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (args, values) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "invalid value '{}'",
                args[2].split(',').next_back().unwrap()
            )),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
        assert!(stderr.contains(values), "{args:?}: {stderr}");
    }
    // Accepted spellings (aliases included) get past parsing: the error is the missing store.
    for args in [
        &[
            "train",
            "--amp",
            "none",
            "--device",
            "gpu",
            "--fusion",
            "cross-attention",
        ][..],
        &[
            "ablate",
            "--encoders",
            "resnet18,swin-t",
            "--variants",
            "patch,attention-pool",
        ][..],
    ] {
        let (code, stderr) = run(args);
        assert_ne!(code, Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("invalid value"), "{args:?}: {stderr}");
    }
}
