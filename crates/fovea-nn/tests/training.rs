//! Training end to end on tiny synthetic stores: a small model overfits a small store,
//! reruns are identical, an interrupted run resumed equals an uninterrupted one, and the
//! evaluation files agree with each other (CONTRACTS 3 and 4).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use fovea_data::Split;
use fovea_loader::AugmentSettings;
use fovea_metrics::{build_metrics_report, MetricsReport, ThresholdsFile, METRICS_CSV_HEADER};
use fovea_nn::device::DeviceChoice;
use fovea_nn::models::ModelKind;
use fovea_nn::settings::{Balance, TrainSettings};
use fovea_nn::train::{train, Quiet};
use fovea_nn::NnError;
use fovea_testkit::runs::{same_weights, StopAt};
use fovea_testkit::{serial, Synth};
use tch::Device;

fn store(dir: &Path, images: usize, seed: u64) -> PathBuf {
    Synth::new(images, seed).store(dir)
}

fn settings(store: &Path, epochs: usize) -> TrainSettings {
    let mut s = TrainSettings {
        store: Some(store.to_path_buf()),
        model: ModelKind::Cnn,
        epochs,
        batch_size: 16,
        device: DeviceChoice::Cpu,
        threads: 1,
        patience: 0,
        ..Default::default()
    };
    s.data.balance = Balance::None;
    s.data.workers = 1;
    s
}

#[test]
fn a_small_model_overfits_a_small_store() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path(), 3, 11);
    let mut s = settings(&st, 40);
    s.augment = AugmentSettings::off();
    s.optim.lr = 3e-3;
    s.loss.kind = fovea_nn::loss::LossKind::Bce;
    let run = tmp.path().join("run");
    train(&s, &run, false, &Quiet, &AtomicBool::new(false)).unwrap();
    // Evaluate the last epoch's weights on the training split itself.
    let store = std::sync::Arc::new(fovea_store::Store::open(&st).unwrap());
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let model = fovea_nn::context::FoveaModel::new(
        &vs.root(),
        ModelKind::Cnn,
        fovea_nn::models::Pool::Avg,
        &Default::default(),
    );
    fovea_nn::checkpoint::load_vars(
        &mut vs,
        &fovea_run::RunDir::new(&run).checkpoint(40).weights(),
    )
    .unwrap();
    let (_, truth, probs, _) = fovea_nn::inference::predict_split(
        &model,
        None,
        &store,
        Split::Train,
        None,
        64,
        1,
        Device::Cpu,
        None,
    )
    .unwrap();
    let m = fovea_metrics::multilabel_metrics(&truth, &probs, [0.5; 4]).unwrap();
    assert!(
        m.micro_f1 > 0.9,
        "train micro F1 after overfitting: {}",
        m.micro_f1
    );
}

#[test]
fn reruns_are_identical() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path(), 3, 2);
    let s = settings(&st, 2);
    for name in ["a", "b"] {
        train(
            &s,
            &tmp.path().join(name),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap();
    }
    let read = |n: &str, f: &str| std::fs::read_to_string(tmp.path().join(n).join(f)).unwrap();
    assert_eq!(read("a", "metrics.csv"), read("b", "metrics.csv"));
    assert!(read("a", "metrics.csv").starts_with(METRICS_CSV_HEADER));
    assert!(same_weights(
        &fovea_run::RunDir::new(tmp.path().join("a"))
            .checkpoint(2)
            .weights(),
        &fovea_run::RunDir::new(tmp.path().join("b"))
            .checkpoint(2)
            .weights()
    ));
    // Another seed, another run.
    let mut s2 = s.clone();
    s2.seed = 5;
    train(
        &s2,
        &tmp.path().join("c"),
        false,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_ne!(read("a", "metrics.csv"), read("c", "metrics.csv"));
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path(), 3, 4);
    let s = settings(&st, 3);
    let full = tmp.path().join("full");
    train(&s, &full, false, &Quiet, &AtomicBool::new(false)).unwrap();
    let cut = tmp.path().join("cut");
    let cancel = AtomicBool::new(false);
    let obs = StopAt::new(3, 1, &cancel);
    let e = train(&s, &cut, false, &obs, &cancel).unwrap_err();
    assert!(matches!(e, NnError::Interrupted { epoch: 3 }), "{e}");
    assert!(!fovea_run::RunDir::new(&cut).checkpoint(3).path().exists());
    // Starting again without --resume refuses to overwrite the run.
    assert!(matches!(
        train(&s, &cut, false, &Quiet, &AtomicBool::new(false)),
        Err(NnError::RunExists { .. })
    ));
    let state = train(&s, &cut, true, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(state.epochs_done, 3);
    assert!(same_weights(
        &fovea_run::RunDir::new(&full).checkpoint(3).weights(),
        &fovea_run::RunDir::new(&cut).checkpoint(3).weights()
    ));
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&full, "metrics.csv"), read(&cut, "metrics.csv"));
    assert_eq!(
        read(&full, "thresholds.json"),
        read(&cut, "thresholds.json")
    );
    // A half-written checkpoint (no state.json) is never taken for a whole one.
    std::fs::create_dir_all(fovea_run::RunDir::new(&cut).checkpoint(9).path()).unwrap();
    assert_eq!(fovea_nn::checkpoint::latest_checkpoint(&cut).unwrap().0, 3);
}

#[test]
fn evaluation_files_agree_with_each_other() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path(), 4, 8);
    let run = tmp.path().join("run");
    train(
        &settings(&st, 1),
        &run,
        false,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    for f in [
        "config.toml",
        "metrics.csv",
        "thresholds.json",
        "model/model.safetensors",
        "model/model.toml",
        "val_ranking.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // Curves are drawn by whoever runs the training (the CLI), not by the engine.
    assert!(!run.join("plots").exists());
    let out = tmp.path().join("eval");
    fovea_nn::eval::evaluate(&run, &st, Split::Test, &out, Device::Cpu, 32).unwrap();
    // Recompute metrics.json from predictions.csv and thresholds.json alone.
    let mut rdr = csv::Reader::from_path(out.join("predictions.csv")).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        ["patch", "image_id", "ma", "he", "ex", "se", "p_ma", "p_he", "p_ex", "p_se"]
    );
    let (mut truth, mut probs) = (Vec::new(), Vec::new());
    for r in rdr.records() {
        let r = r.unwrap();
        truth.push(std::array::from_fn(|i| r[2 + i].parse::<u8>().unwrap()));
        probs.push(std::array::from_fn(|i| r[6 + i].parse::<f32>().unwrap()));
    }
    let store = fovea_store::Store::open(&st).unwrap();
    let expected_rows = store
        .rows
        .iter()
        .filter(|r| r.split == Split::Test && !r.black)
        .count();
    assert_eq!(truth.len(), expected_rows);
    let th = ThresholdsFile::read(&run.join("thresholds.json"))
        .unwrap()
        .to_array();
    let again = build_metrics_report(&truth, &probs, th).unwrap();
    let written = MetricsReport::read(&out.join("metrics.json")).unwrap();
    assert_eq!(again.to_json_string(), written.to_json_string());
}
