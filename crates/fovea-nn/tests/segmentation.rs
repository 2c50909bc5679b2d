//! The segmentation model's training end to end on a tiny synthetic dataset (tiles of 32
//! pixels): reruns with one seed are identical and another seed differs, an interrupted
//! run resumed equals an uninterrupted one, and a run of either task is refused by the
//! other task's loader, naming it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use fovea_metrics::METRICS_CSV_HEADER;
use fovea_nn::device::DeviceChoice;
use fovea_nn::engine::Quiet;
use fovea_nn::models::{ModelKind, Pool};
use fovea_nn::segmentation::{load_seg_model, train, SegSettings, TrainTask};
use fovea_nn::settings::TrainSettings;
use fovea_nn::NnError;
use fovea_testkit::runs::{same_weights, StopAt, UntrainedRun};
use fovea_testkit::{serial, Synth};
use tch::Device;

fn store(dir: &Path) -> PathBuf {
    Synth::new(5, 3).store(dir)
}

fn settings(store: &Path, epochs: usize) -> TrainSettings {
    let mut seg = SegSettings::default();
    seg.tiles.side = 32;
    seg.tiles.batch_size = 4;
    seg.tiles.tiles_per_epoch = 12;
    seg.tiles.workers = 1;
    seg.infer.tile = 64;
    seg.infer.overlap = 16;
    TrainSettings {
        store: Some(store.to_path_buf()),
        task: TrainTask::Segmentation,
        segmentation: Some(seg),
        epochs,
        device: DeviceChoice::Cpu,
        threads: 1,
        patience: 0,
        ..Default::default()
    }
}

fn read(d: &Path, f: &str) -> String {
    std::fs::read_to_string(d.join(f)).unwrap()
}

#[test]
fn segmentation_reruns_are_identical_and_another_seed_differs() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path());
    let s = settings(&st, 1);
    let run = |name: &str, s: &TrainSettings| {
        let dir = tmp.path().join(name);
        train(s, &dir, false, &Quiet, &AtomicBool::new(false)).unwrap();
        dir
    };
    let (a, b) = (run("a", &s), run("b", &s));
    assert!(read(&a, "metrics.csv").starts_with(METRICS_CSV_HEADER));
    assert_eq!(read(&a, "metrics.csv"), read(&b, "metrics.csv"));
    assert_eq!(read(&a, "val_ranking.csv"), read(&b, "val_ranking.csv"));
    let weights = |d: &Path| d.join("model").join("model.safetensors");
    assert!(same_weights(&weights(&a), &weights(&b)));
    let mut s2 = s.clone();
    s2.seed = 7;
    let c = run("c", &s2);
    assert!(!same_weights(&weights(&a), &weights(&c)));
    // The run reads back as a segmentation model with its settings.
    let m = load_seg_model(&a, Device::Cpu).unwrap();
    assert_eq!(m.info.tile_side, 32);
    assert_eq!(m.info.infer.tile, 64);
    let cfg = TrainSettings::from_toml_file(&a.join("config.toml")).unwrap();
    assert_eq!(cfg.task, TrainTask::Segmentation);
    assert_eq!(cfg.segmentation.unwrap().tiles.side, 32);
}

#[test]
fn segmentation_resumed_run_equals_uninterrupted_run() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path());
    let s = settings(&st, 3);
    let full = tmp.path().join("full");
    train(&s, &full, false, &Quiet, &AtomicBool::new(false)).unwrap();
    let cut = tmp.path().join("cut");
    let cancel = AtomicBool::new(false);
    let obs = StopAt::new(3, 1, &cancel);
    let e = train(&s, &cut, false, &obs, &cancel).unwrap_err();
    assert!(matches!(e, NnError::Interrupted { epoch: 3 }), "{e}");
    assert!(!fovea_run::RunDir::new(&cut).checkpoint(3).path().exists());
    assert!(matches!(
        train(&s, &cut, false, &Quiet, &AtomicBool::new(false)),
        Err(NnError::RunExists { .. })
    ));
    // Another tile side is refused on --resume, naming the setting.
    let mut other = s.clone();
    other.segmentation.as_mut().unwrap().tiles.side = 48;
    let e = train(&other, &cut, true, &Quiet, &AtomicBool::new(false)).unwrap_err();
    assert!(e.to_string().contains("segmentation.tiles.side"), "{e}");
    let state = train(&s, &cut, true, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(state.epochs_done, 3);
    assert!(same_weights(
        &fovea_run::RunDir::new(&full).checkpoint(3).weights(),
        &fovea_run::RunDir::new(&cut).checkpoint(3).weights()
    ));
    for f in [
        "metrics.csv",
        "val_ranking.csv",
        "thresholds.json",
        "model/thresholds.json",
    ] {
        assert_eq!(read(&full, f), read(&cut, f), "{f}");
    }
}

#[test]
fn each_task_refuses_a_run_of_the_other_naming_it() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let classifier = UntrainedRun::new(ModelKind::Cnn, Pool::Avg, 32).write(tmp.path());
    let e = load_seg_model(&classifier, Device::Cpu).err().unwrap();
    assert!(matches!(e, NnError::WrongTask { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&classifier.display().to_string()) && msg.contains("patch-classifier run"),
        "{msg}"
    );
    let st = store(&tmp.path().join("data"));
    let seg = tmp.path().join("seg");
    train(
        &settings(&st, 1),
        &seg,
        false,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    let e = fovea_nn::inference::load_run_model(&seg, Device::Cpu)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains(&seg.display().to_string())
            && msg.contains("is a segmentation run")
            && msg.contains("needs a patch-classifier run"),
        "{msg}"
    );
}
