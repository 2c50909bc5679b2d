//! Whole-image context on synthetic photographs: every fusion variant trains, reruns to
//! the same weights, resumes, evaluates and maps; the global features are cached once and
//! reused; dense maps of a fused model equal window-by-window classification.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use fovea_data::{read_rgb, Dataset, Split};
use fovea_nn::checkpoint::ModelInfo;
use fovea_nn::context::{ContextSpec, FoveaModel, Fusion, GlobalContext};
use fovea_nn::dense::{dense_window_probs, windowed_probs, DenseSettings};
use fovea_nn::device::DeviceChoice;
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::maps::RunModel;
use fovea_nn::models::{ModelKind, Pool};
use fovea_nn::settings::{Balance, TrainSettings};
use fovea_nn::tensors::read_tensors;
use fovea_nn::train::{train, Quiet, TrainObserver};
use fovea_nn::NnError;
use fovea_testkit::runs::same_weights;
use fovea_testkit::{serial, Synth};
use tch::{nn, Device, Kind, Tensor};

fn store(dir: &Path) -> PathBuf {
    Synth::new(4, 5).store(dir)
}

fn settings(store: &Path, fusion: Fusion, epochs: usize, cache: &Path) -> TrainSettings {
    let mut s = TrainSettings {
        store: Some(store.to_path_buf()),
        model: ModelKind::Cnn,
        pool: Pool::Max,
        epochs,
        batch_size: 16,
        device: DeviceChoice::Cpu,
        threads: 1,
        patience: 0,
        ..Default::default()
    };
    s.data.balance = Balance::None;
    s.data.workers = 1;
    s.context.fusion = fusion;
    s.context.input_size = 64;
    s.context.bag_size = 8;
    s.context.contrastive_weight = 0.2;
    s.context.cache_dir = Some(cache.to_path_buf());
    s
}

/// Collects the training loop's messages.
#[derive(Default)]
struct Messages(std::sync::Mutex<Vec<String>>);
impl TrainObserver for Messages {
    fn message(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
}

#[test]
fn every_variant_trains_reruns_identically_and_evaluates() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path());
    let cache = tmp.path().join("cache");
    for fusion in Fusion::ALL {
        let s = settings(&st, fusion, 2, &cache);
        let (a, b) = (
            tmp.path().join(format!("{fusion}-a")),
            tmp.path().join(format!("{fusion}-b")),
        );
        let msgs = Messages::default();
        train(&s, &a, false, &msgs, &AtomicBool::new(false)).unwrap();
        train(&s, &b, false, &Quiet, &AtomicBool::new(false)).unwrap();
        assert!(
            same_weights(
                &fovea_run::RunDir::new(&a).checkpoint(2).weights(),
                &fovea_run::RunDir::new(&b).checkpoint(2).weights()
            ),
            "{fusion}: same seed, other weights"
        );
        let names: Vec<String> = read_tensors(&a.join("model/model.safetensors"))
            .unwrap()
            .into_keys()
            .collect();
        let has = |p: &str| names.iter().any(|n| n.starts_with(p));
        assert_eq!(has("global."), fusion.needs_global(), "{fusion}");
        assert_eq!(has("mil."), fusion == Fusion::AttentionPool, "{fusion}");
        assert!(
            has("proj."),
            "{fusion}: the contrastive projection is saved"
        );
        let info: ModelInfo =
            toml::from_str(&std::fs::read_to_string(a.join("model/model.toml")).unwrap()).unwrap();
        assert_eq!(info.context.fusion, fusion);
        if fusion.needs_global() {
            // Four photographs computed once, then read from the cache by the rerun.
            let m = msgs.0.lock().unwrap().join("\n");
            assert!(m.contains("global features of 4 photographs"), "{m}");
        }
        let r = fovea_nn::eval::evaluate(&a, &st, Split::Test, &a.join("eval"), Device::Cpu, 32)
            .unwrap();
        assert!(r.tuned.macro_f1.is_finite());
        assert!(a.join("eval/metrics.json").exists());
        // Image-level presence: truth is "any patch positive"; the score is the highest
        // patch probability of predictions.csv, except for attention pooling's own head.
        let stx = std::sync::Arc::new(fovea_store::Store::open(&st).unwrap());
        let (ids, truth, scores) =
            fovea_nn::eval::image_presence(&a, &stx, Split::Test, Device::Cpu, 7).unwrap();
        assert!(!ids.is_empty());
        let csv = std::fs::read_to_string(a.join("eval/predictions.csv")).unwrap();
        for (k, id) in ids.iter().enumerate() {
            let rows: Vec<Vec<f32>> = csv
                .lines()
                .skip(1)
                .map(|l| l.split(',').collect::<Vec<_>>())
                .filter(|c| c[1] == id)
                .map(|c| c[2..10].iter().map(|v| v.parse().unwrap()).collect())
                .collect();
            for c in 0..4 {
                let t = rows.iter().any(|r| r[c] == 1.0) as u8;
                assert_eq!(truth[k][c], t, "{fusion} {id}");
                let m = rows.iter().map(|r| r[4 + c]).fold(0f32, f32::max);
                if fusion == Fusion::AttentionPool {
                    assert!((0.0..=1.0).contains(&scores[k][c]));
                } else {
                    assert!(
                        (scores[k][c] - m).abs() < 1e-5,
                        "{fusion} {id}: {} vs {m}",
                        scores[k][c]
                    );
                }
            }
        }
    }
    // Without the photographs, evaluation reads the cached global features; with neither,
    // it names the photograph it lacks.
    let data = tmp.path().join("data");
    let away = tmp.path().join("data-away");
    std::fs::rename(&data, &away).unwrap();
    let run = tmp.path().join("cross-attention-a");
    fovea_nn::eval::evaluate(&run, &st, Split::Test, &run.join("eval2"), Device::Cpu, 32).unwrap();
    let preds = |d: &str| std::fs::read_to_string(run.join(d).join("predictions.csv")).unwrap();
    assert_eq!(preds("eval2"), preds("eval"));
    let key = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let gone = std::fs::read_dir(&key)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(&gone).unwrap();
    let e = fovea_nn::eval::evaluate(&run, &st, Split::Test, &run.join("eval4"), Device::Cpu, 32)
        .unwrap_err();
    assert!(matches!(e, NnError::MissingFeatures { .. }), "{e}");
    std::fs::rename(&away, &data).unwrap();
    // The frozen encoder of every global variant with this seed has the same weights: one
    // cache folder, four entries (three after the removal above).
    let dirs: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_eq!(std::fs::read_dir(dirs[0].path()).unwrap().count(), 3);
}

#[test]
fn a_resumed_fused_run_equals_an_uninterrupted_one() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path());
    let cache = tmp.path().join("cache");
    let full = tmp.path().join("full");
    train(
        &settings(&st, Fusion::CrossAttention, 2, &cache),
        &full,
        false,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap();
    // One epoch, then "resume" with the same settings asking for two.
    let cut = tmp.path().join("cut");
    let s1 = settings(&st, Fusion::CrossAttention, 1, &cache);
    train(&s1, &cut, false, &Quiet, &AtomicBool::new(false)).unwrap();
    let mut cfg = std::fs::read_to_string(cut.join("config.toml")).unwrap();
    cfg = cfg.replace("epochs = 1", "epochs = 2");
    std::fs::write(cut.join("config.toml"), cfg).unwrap();
    let s2 = settings(&st, Fusion::CrossAttention, 2, &cache);
    train(&s2, &cut, true, &Quiet, &AtomicBool::new(false)).unwrap();
    assert!(same_weights(
        &fovea_run::RunDir::new(&full).checkpoint(2).weights(),
        &fovea_run::RunDir::new(&cut).checkpoint(2).weights()
    ));
    // A resume that changes the fusion variant is refused.
    let other = settings(&st, Fusion::Concat, 3, &cache);
    let e = train(&other, &cut, true, &Quiet, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(e, NnError::ResumeMismatch { .. }), "{e}");
}

/// A run model of `fusion` with random fusion weights (the cross-attention's output
/// projection starts at zero, which would hide any difference).
fn fused_model(fusion: Fusion) -> RunModel {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ContextSpec {
        fusion,
        input_size: 64,
        ..Default::default()
    };
    let model = FoveaModel::new(&vs.root(), ModelKind::Cnn, Pool::Avg, &spec);
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.starts_with("fusion.") {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.2));
            }
        }
    });
    RunModel {
        run: PathBuf::from("memory"),
        vs,
        model,
        info: ModelInfo {
            model: ModelKind::Cnn,
            pool: Pool::Avg,
            patch_size: 64,
            num_classes: 4,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            epoch: 1,
            val_macro_f1: 0.0,
            context: spec,
            enhance: Default::default(),
        },
        thresholds: [0.5; 4],
        device: Device::Cpu,
    }
}

#[test]
fn fused_dense_maps_equal_window_by_window_classification() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let data = Synth::new(1, 2).dataset(tmp.path());
    let rgb = read_rgb(&fovea_testkit::first_photograph(&data)).unwrap();
    for fusion in [Fusion::Concat, Fusion::CrossAttention] {
        let rm = fused_model(fusion);
        let g = GlobalContext::photograph(&rm.model, &rgb, Device::Cpu).unwrap();
        // A 64x64 photograph is one window: both paths see the same pixels.
        let crop = image::imageops::crop_imm(&rgb, 96, 64, 64, 64).to_image();
        let s = DenseSettings {
            patch: 64,
            stride: 16,
            tile: 48,
            halo: 32,
            batch: 16,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        };
        let gc = GlobalContext::photograph(&rm.model, &crop, Device::Cpu).unwrap();
        let d = dense_window_probs(
            &rm.model,
            Some(&gc),
            &crop,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        let w = windowed_probs(
            &rm.model,
            Some(&gc),
            &crop,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        for c in 0..4 {
            assert!(
                (d.probs[0][c] - w.probs[0][c]).abs() < 1e-5,
                "{fusion} lesion {c}: dense {} windowed {}",
                d.probs[0][c],
                w.probs[0][c]
            );
        }
        // The whole photograph: the context changes the output, and the model refuses to
        // run without it.
        let full = windowed_probs(
            &rm.model,
            Some(&g),
            &rgb,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        let x = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let f = rm.model.features(&x, false);
        assert!(rm.model.head(&f, None).is_err());
        assert!(full.probs.iter().any(|p| p.iter().all(|v| v.is_finite())));
        let e = windowed_probs(
            &rm.model,
            None,
            &crop,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(e, NnError::MissingContext { .. }), "{e}");
    }
}

#[test]
fn swin_t_as_the_global_encoder_trains_evaluates_and_maps() {
    let _turn = serial();
    let tmp = fovea_testkit::tempdir().unwrap();
    let st = store(tmp.path());
    let cache = tmp.path().join("cache");
    for fusion in [Fusion::Concat, Fusion::CrossAttention] {
        let mut s = settings(&st, fusion, 1, &cache);
        s.context.encoder = fovea_nn::context::EncoderKind::SwinT;
        let run = tmp.path().join(format!("swin-{fusion}"));
        train(&s, &run, false, &Quiet, &AtomicBool::new(false)).unwrap();
        let names: Vec<String> = read_tensors(&run.join("model/model.safetensors"))
            .unwrap()
            .into_keys()
            .collect();
        assert!(names
            .iter()
            .any(|n| n == "global.features.5.3.attn.qkv.weight"));
        let r =
            fovea_nn::eval::evaluate(&run, &st, Split::Test, &run.join("eval"), Device::Cpu, 32)
                .unwrap();
        assert!(r.tuned.macro_f1.is_finite());
        let rm = RunModel::load(&run, Device::Cpu).unwrap();
        assert_eq!(
            rm.info.context.encoder,
            fovea_nn::context::EncoderKind::SwinT
        );
        let rgb =
            read_rgb(&Dataset::open(&tmp.path().join("data")).unwrap().records[0].image).unwrap();
        let g = GlobalContext::photograph(&rm.model, &rgb, Device::Cpu).unwrap();
        // 64-pixel input: 2 x 2 tokens of 768 values.
        assert_eq!(g.tokens.as_ref().unwrap().size(), vec![1, 4, 768]);
        let maps = fovea_nn::maps::map_photograph(
            &rm,
            &rgb,
            "x",
            Path::new("x.png"),
            &fovea_nn::maps::MapSettings::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(maps.windows.computed.iter().any(|&c| c));
    }
}
