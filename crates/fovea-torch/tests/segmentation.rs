//! `fovea train --task segmentation` as a user runs it, on a tiny synthetic dataset: the
//! run's files (CONTRACTS 3), `fovea eval` scoring the store's patches from the model's
//! pixel maps, `predict`, `eval-maps` and `export` of the run, a classifier-only command
//! refusing the run by name, Ctrl-C (exit 130) then
//! `--resume`, and a photograph smaller than a tile named in the error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fovea_metrics::{ThresholdsFile, METRICS_CSV_HEADER};
use fovea_run::VAL_RANKING_CSV_HEADER;
use fovea_testkit::Synth;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
}

/// Settings small enough for a test: 32-pixel tiles, 8 per epoch, 64-pixel inference
/// tiles.
fn config(dir: &Path) -> PathBuf {
    let p = dir.join("seg.toml");
    std::fs::write(
        &p,
        "[segmentation.tiles]\nside = 32\nbatch_size = 4\ntiles_per_epoch = 8\nworkers = 1\n\
         [segmentation.infer]\ntile = 64\noverlap = 16\n",
    )
    .unwrap();
    p
}

fn train(store: &Path, run: &Path, cfg: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args([
        "--threads",
        "1",
        "train",
        "--task",
        "segmentation",
        "--store",
    ])
    .arg(store)
    .arg("--out")
    .arg(run)
    .arg("--config")
    .arg(cfg)
    .args(["--device", "cpu"])
    .args(extra);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_segmentation_run_writes_the_run_files_and_classifier_commands_refuse_it() {
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(5, 4).store(tmp.path());
    let run = tmp.path().join("run");
    let o = train(&store, &run, &config(tmp.path()), &["--epochs", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("pixel AUPR") && out.contains("done: 2 epochs"),
        "{out}"
    );
    let read = |f: &str| std::fs::read_to_string(run.join(f)).unwrap();
    let cfg = read("config.toml");
    assert!(cfg.contains("task = \"segmentation\"") && cfg.contains("[segmentation.tiles]"));
    let metrics = read("metrics.csv");
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines[0], METRICS_CSV_HEADER);
    assert_eq!(lines.len(), 5, "{metrics}");
    assert!(lines[1].starts_with("1,train,") && lines[2].starts_with("1,val,"));
    let ranking = read("val_ranking.csv");
    assert_eq!(ranking.lines().next(), Some(VAL_RANKING_CSV_HEADER));
    assert_eq!(ranking.lines().count(), 3);
    for t in ["thresholds.json", "model/thresholds.json"] {
        let th = ThresholdsFile::read(&run.join(t)).unwrap().to_array();
        assert!(th.iter().all(|v| (0.0..=1.0).contains(v)), "{t}: {th:?}");
    }
    assert!(read("model/model.toml").contains("task = \"segmentation\""));
    assert!(run.join("model/model.safetensors").is_file());
    assert!(run.join("checkpoints/epoch-0002/state.json").is_file());
    // `fovea eval` scores the store's test patches from the model's pixel maps: one row per
    // non-black test patch, each lesion's score the maximum of the map inside the patch.
    let eval_dir = tmp.path().join("eval");
    let e = bin()
        .args(["eval", "--run"])
        .arg(&run)
        .arg("--store")
        .arg(&store)
        .arg("--out")
        .arg(&eval_dir)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let preds = fovea_run::EvalDir::new(&eval_dir)
        .read_predictions()
        .unwrap();
    let st = fovea_store::Store::open(&store).unwrap();
    let test: Vec<&fovea_store::PatchRow> = st
        .rows
        .iter()
        .filter(|r| r.split == fovea_data::Split::Test && !r.black)
        .collect();
    assert_eq!(preds.len(), test.len());
    assert!(!preds.is_empty());
    let m = fovea_nn::segmentation::model::load_seg_model(&run, tch::Device::Cpu).unwrap();
    let ds = fovea_data::Dataset::open(st.settings.dataset.as_ref().unwrap()).unwrap();
    let first = &preds[0];
    let row = test.iter().find(|r| r.patch == first.patch).unwrap();
    assert_eq!(first.truth, row.labels);
    let rec = ds.records.iter().find(|r| r.id == row.image_id).unwrap();
    let rgb = fovea_data::read_rgb(&rec.image).unwrap();
    let map = reference_map(&m, &rgb);
    let (w, h) = (map.width as usize, map.height as usize);
    for c in 0..4 {
        let mut best = 0f32;
        for y in row.y as usize..(row.y + row.size) as usize {
            for x in row.x as usize..(row.x + row.size) as usize {
                best = best.max(map.probs[(c * h + y) * w + x]);
            }
        }
        assert_eq!(first.probs[c], best, "lesion {c}");
    }
    assert!(eval_dir.join("metrics.json").is_file());
    // A command that reads only patch classifiers names the run and its task.
    let photo = fovea_testkit::first_photograph(st.settings.dataset.as_ref().unwrap());
    let e = bin()
        .args(["bench", "maps", "--run"])
        .arg(&run)
        .arg("--image")
        .arg(&photo)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    let msg = stderr(&e);
    assert!(
        msg.contains(&run.display().to_string()) && msg.contains("is a segmentation run"),
        "{msg}"
    );
    // Resuming it as a classifier is refused, naming the setting.
    let c = bin()
        .args(["--threads", "1", "train", "--resume", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&run)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(!c.status.success());
    assert!(stderr(&c).contains("config.toml"), "{}", stderr(&c));
}

fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The model's map of `rgb` as validation makes it (NCHW, float32, on the CPU).
fn reference_map(
    m: &fovea_nn::segmentation::SegModel,
    rgb: &image::RgbImage,
) -> fovea_nn::segmentation::SegMap {
    fovea_nn::segmentation::infer::UNetPass {
        net: &m.net,
        device: tch::Device::Cpu,
        amp: fovea_nn::amp::Amp::Off,
        channels_last: false,
    }
    .map(rgb, &m.info.preprocess, &m.info.infer, &mut |_, _| {})
    .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `predict`, `eval-maps` and `export` of a segmentation run (issue 16, point 5): maps at
/// full resolution with `--cell 1` (the model's own output), max-pooled cells otherwise,
/// lesion counts in summary.json, pixels scored at full resolution whatever the cell (so
/// pixel_metrics.json is recomputed from `--cell 1` heatmaps), and a TorchScript module
/// that gives the model's probabilities.
#[test]
fn predict_eval_maps_and_export_work_for_a_segmentation_run() {
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(5, 4).store(tmp.path());
    let run = tmp.path().join("run");
    run_ok(&mut train(
        &store,
        &run,
        &config(tmp.path()),
        &["--epochs", "1"],
    ));
    let st = fovea_store::Store::open(&store).unwrap();
    let data = st.settings.dataset.clone().unwrap();
    let ds = fovea_data::Dataset::open(&data).unwrap();
    let photos: Vec<PathBuf> = ds.records.iter().take(2).map(|r| r.image.clone()).collect();
    let predict = |out: &Path, cell: &str| {
        run_ok(
            bin()
                .args(["predict", "--run"])
                .arg(&run)
                .args(&photos)
                .arg("--out")
                .arg(out)
                .args(["--cell", cell, "--device", "cpu"]),
        )
    };
    let (full_dir, coarse_dir) = (tmp.path().join("full"), tmp.path().join("coarse"));
    let said = predict(&full_dir, "1");
    assert!(said.contains("regions (MA "), "{said}");
    predict(&coarse_dir, "8");
    let m = fovea_nn::segmentation::model::load_seg_model(&run, tch::Device::Cpu).unwrap();
    for (photo, rec) in photos.iter().zip(&ds.records) {
        let rgb = fovea_data::read_rgb(photo).unwrap();
        let (w, h) = rgb.dimensions();
        let sum = read_json(&full_dir.join(&rec.id).join("summary.json"));
        assert_eq!(sum["stride"], 1);
        assert!(sum.get("window_weight").is_none(), "{sum}");
        let counts = sum["lesion_counts"].as_object().unwrap();
        assert_eq!(counts.len(), 4);
        let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total as usize, sum["regions"].as_array().unwrap().len());
        assert!(full_dir.join(&rec.id).join("overlay.png").is_file());
        // --cell 1: heatmap.npy is the model's full-resolution output.
        let full =
            fovea_maps::Heatmap::read_npy(full_dir.join(&rec.id).join("heatmap.npy"), w, h, 1)
                .unwrap();
        let reference = reference_map(&m, &rgb);
        let worst = max_abs_diff(&full.data, &reference.probs);
        assert!(worst < 1e-4, "{}: largest difference {worst}", rec.id);
        // Image-level probability: the highest pixel probability.
        for (c, code) in fovea_data::LESION_CODES.iter().enumerate() {
            let top = full.lesion(c).iter().fold(0f32, |a, &v| a.max(v));
            let said = sum["image_probability"][*code].as_f64().unwrap();
            assert!((said - f64::from(top)).abs() < 1e-6, "{code}: {said} {top}");
        }
        // --cell 8: each cell the maximum of its pixels.
        let coarse =
            fovea_maps::Heatmap::read_npy(coarse_dir.join(&rec.id).join("heatmap.npy"), w, h, 8)
                .unwrap();
        let pooled = full.max_pooled(8).unwrap();
        let worst = max_abs_diff(&coarse.data, &pooled.data);
        assert!(worst < 1e-5, "{}: cell 8 against pooled: {worst}", rec.id);
    }
    // eval-maps at the default cell scores every pixel at full resolution: the same AUPR
    // as scoring the --cell 1 heatmaps of predict (--maps-dir).
    let split_ids: Vec<String> = ds
        .records
        .iter()
        .filter(|r| {
            st.rows
                .iter()
                .any(|p| p.image_id == r.id && p.split == fovea_data::Split::Test)
        })
        .map(|r| r.id.clone())
        .collect();
    assert!(!split_ids.is_empty());
    let test_photos: Vec<PathBuf> = ds
        .records
        .iter()
        .filter(|r| split_ids.contains(&r.id))
        .map(|r| r.image.clone())
        .collect();
    let test_maps = tmp.path().join("test-maps");
    run_ok(
        bin()
            .args(["predict", "--run"])
            .arg(&run)
            .args(&test_photos)
            .arg("--out")
            .arg(&test_maps)
            .args(["--cell", "1", "--device", "cpu"]),
    );
    let eval_maps = |out: &Path, extra: &[&str]| {
        run_ok(
            bin()
                .args(["eval-maps", "--run"])
                .arg(&run)
                .arg("--dataset")
                .arg(&data)
                .arg("--out")
                .arg(out)
                .args(["--device", "cpu"])
                .args(extra),
        )
    };
    let said = eval_maps(&tmp.path().join("eval-a"), &[]);
    assert!(said.contains("full resolution"), "{said}");
    let maps_dir = test_maps.display().to_string();
    eval_maps(&tmp.path().join("eval-b"), &["--maps-dir", &maps_dir]);
    let a = fovea_maps::PixelMetrics::read(tmp.path().join("eval-a/pixel_metrics.json")).unwrap();
    let b = fovea_maps::PixelMetrics::read(tmp.path().join("eval-b/pixel_metrics.json")).unwrap();
    assert_eq!(a.images, split_ids.len());
    assert_eq!((a.pixels, a.positive_pixels), (b.pixels, b.positive_pixels));
    for c in 0..4 {
        assert!(
            (a.aupr[c] - b.aupr[c]).abs() < 1e-3,
            "{c}: {:?} {:?}",
            a.aupr,
            b.aupr
        );
    }
    let sum = read_json(
        &tmp.path()
            .join("eval-a/maps")
            .join(&split_ids[0])
            .join("summary.json"),
    );
    assert_eq!(sum["stride"], 8);
    // export: TorchScript [N, 3, H, W] RGB in [0, 1] -> probabilities [N, 4, H, W].
    let pt = tmp.path().join("unet.pt");
    let said = run_ok(
        bin()
            .args(["export", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&pt),
    );
    assert!(said.contains("[N, 4, H, W]"), "{said}");
    let desc = read_json(&tmp.path().join("unet.pt.json"));
    assert_eq!(desc["task"], "segmentation");
    assert_eq!(desc["output"]["kind"], "probabilities");
    let module = tch::CModule::load(&pt).unwrap();
    let x = tch::Tensor::rand([1, 3, 48, 80], (tch::Kind::Float, tch::Device::Cpu));
    let got = tch::no_grad(|| module.forward_ts(&[&x])).unwrap();
    let mean = tch::Tensor::from_slice(&m.info.mean).view([1, 3, 1, 1]);
    let std = tch::Tensor::from_slice(&m.info.std).view([1, 3, 1, 1]);
    let want = tch::no_grad(|| {
        use tch::nn::ModuleT;
        m.net.forward_t(&((&x - mean) / std), false).sigmoid()
    });
    assert_eq!(got.size(), [1, 4, 48, 80]);
    let diff = f64::try_from((got - want).abs().max()).unwrap();
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn segmentation_stopped_by_ctrl_c_exits_130_and_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(5, 4).store(tmp.path());
    let run = tmp.path().join("run");
    let cfg = config(tmp.path());
    let mut child = train(&store, &run, &cfg, &["--epochs", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.contains("tiles of 32x32 per epoch")));
    assert!(started, "training did not start");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted during epoch"));
    // --resume finishes the run (only --epochs, threads and workers may change: the tiles
    // are the same whatever the number of workers).
    let more_workers = tmp.path().join("workers.toml");
    std::fs::write(
        &more_workers,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("workers = 1", "workers = 2"),
    )
    .unwrap();
    let o = train(&store, &run, &more_workers, &["--epochs", "1", "--resume"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run.join("model/model.toml").is_file());
}

#[test]
fn a_photograph_smaller_than_a_tile_is_named() {
    let tmp = fovea_testkit::tempdir().unwrap();
    let store = Synth::new(5, 4).size(96, 80).store(tmp.path());
    let cfg = tmp.path().join("big.toml");
    std::fs::write(&cfg, "[segmentation.tiles]\nside = 128\n").unwrap();
    let o = train(&store, &tmp.path().join("run"), &cfg, &["--epochs", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let msg = stderr(&o);
    assert!(
        msg.contains("96x80") && msg.contains("smaller than a tile of 128x128"),
        "{msg}"
    );
    assert!(!tmp.path().join("run").join("config.toml").exists());
}

#[test]
fn segmentation_flags_are_checked() {
    let tmp = fovea_testkit::tempdir().unwrap();
    let cfg = config(tmp.path());
    let store = tmp.path().join("no-store");
    for (extra, want) in [
        (
            &["--model", "cnn"][..],
            "the segmentation encoders are small, resnet18 and resnet34",
        ),
        (
            &["--balance", "none"][..],
            "--balance is a patch-classifier setting",
        ),
        (
            &["--pretrained", "w.pth"][..],
            "fit the resnet18 and resnet34 encoders, not \"small\"",
        ),
    ] {
        let o = train(&store, &tmp.path().join("run"), &cfg, extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    let o = bin()
        .args(["train", "--task", "segmentations", "--out", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("segmentation"), "{}", stderr(&o));
}
