//! Lesion maps from a run (CONTRACTS 5): dense windows read off a shared feature map
//! against window-by-window classification, tiling, the files of `predict`, pixel-level
//! scoring with `eval_maps`, and the TorchScript export.

use std::path::{Path, PathBuf};

use fovea_data::{read_rgb, Dataset, Split};
use fovea_maps::{Heatmap, MapSummary, PixelMetrics};
use fovea_nn::checkpoint::ModelInfo;
use fovea_nn::dense::{agreement, dense_window_probs, windowed_probs, DenseSettings};
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::maps::{
    eval_maps, map_photograph, write_maps, MapMode, MapSettings, MapsObserver, RunModel,
};
use fovea_nn::models::{ModelKind, Pool};
use fovea_testkit::runs::UntrainedRun;
use fovea_testkit::{serial, Synth};
use image::RgbImage;
use tch::Device;

/// A run folder holding a seeded, untrained model (what `predict` reads: model/ and
/// thresholds.json).
fn make_run(dir: &Path, kind: ModelKind, pool: Pool, patch: usize) -> PathBuf {
    UntrainedRun::new(kind, pool, patch).write(dir)
}

fn synth(dir: &Path, images: usize, w: u32, h: u32) -> PathBuf {
    Synth::new(images, 3).size(w, h).dataset(dir)
}

fn photo(data: &Path) -> (RgbImage, PathBuf) {
    let ds = Dataset::open(data).unwrap();
    let p = ds.records[0].image.clone();
    (read_rgb(&p).unwrap(), p)
}

fn dense_settings(rm: &RunModel, stride: u32, tile: u32, halo: u32) -> DenseSettings {
    DenseSettings {
        patch: rm.info.patch_size as u32,
        stride,
        tile,
        halo,
        batch: 16,
        mean: rm.info.mean,
        std: rm.info.std,
    }
}

#[test]
fn one_window_dense_equals_classifying_the_window() {
    let _g = serial();
    for (kind, pool) in [
        (ModelKind::Cnn, Pool::Avg),
        (ModelKind::Cnn, Pool::Max),
        (ModelKind::Resnet18, Pool::Avg),
        (ModelKind::Resnet18, Pool::Max),
    ] {
        let dir = fovea_testkit::tempdir().unwrap();
        let rm = RunModel::load(&make_run(dir.path(), kind, pool, 64), Device::Cpu).unwrap();
        let data = synth(dir.path(), 1, 256, 192);
        let (rgb, _) = photo(&data);
        // A 64x64 photograph is exactly one window: both paths see the same pixels.
        let crop = image::imageops::crop_imm(&rgb, 96, 64, 64, 64).to_image();
        let s = dense_settings(&rm, 32, 48, 32);
        let d = dense_window_probs(
            &rm.model,
            None,
            &crop,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        let w = windowed_probs(
            &rm.model,
            None,
            &crop,
            None,
            &s,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((d.grid.rows, d.grid.cols), (1, 1));
        for c in 0..4 {
            assert!(
                (d.probs[0][c] - w.probs[0][c]).abs() < 1e-5,
                "{kind:?} {pool:?} lesion {c}: dense {} windowed {}",
                d.probs[0][c],
                w.probs[0][c]
            );
        }
    }
}

#[test]
fn tiles_with_enough_context_equal_one_pass() {
    // The shallow CNN sees 46 pixels around a cell: with a 64-pixel halo, small tiles give
    // what one pass over the whole photograph gives.
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let rm = RunModel::load(
        &make_run(dir.path(), ModelKind::Cnn, Pool::Max, 64),
        Device::Cpu,
    )
    .unwrap();
    let data = synth(dir.path(), 1, 320, 240);
    let (rgb, _) = photo(&data);
    let whole = dense_window_probs(
        &rm.model,
        None,
        &rgb,
        None,
        &dense_settings(&rm, 32, 1000, 0),
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let mut tiles_seen = 0;
    let tiled = dense_window_probs(
        &rm.model,
        None,
        &rgb,
        None,
        &dense_settings(&rm, 32, 3, 64),
        Device::Cpu,
        &mut |_, t| tiles_seen = t,
    )
    .unwrap();
    assert!(tiles_seen > 4, "{tiles_seen} tiles");
    assert_eq!((whole.grid.rows, whole.grid.cols), (7, 9)); // ceil((240-64)/32)+1, ceil((320-64)/32)+1
    let a = agreement(&whole, &tiled).unwrap();
    assert_eq!(a.windows, 63);
    for c in 0..4 {
        assert!(a.max_abs_diff[c] < 1e-4, "{a:?}");
    }
}

#[test]
fn dense_windows_agree_with_window_by_window() {
    // The only difference: alone, a window's border sees zero padding; in the dense pass it
    // sees its neighbours. The two must agree closely, and much better than a one-window
    // misalignment would.
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let rm = RunModel::load(
        &make_run(dir.path(), ModelKind::Cnn, Pool::Avg, 64),
        Device::Cpu,
    )
    .unwrap();
    let data = synth(dir.path(), 1, 384, 288);
    let (rgb, _) = photo(&data);
    let s = dense_settings(&rm, 32, 48, 32);
    let fov = fovea_data::fov_grid(&rgb, &Default::default());
    let d = dense_window_probs(
        &rm.model,
        None,
        &rgb,
        Some(&fov),
        &s,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let w = windowed_probs(
        &rm.model,
        None,
        &rgb,
        Some(&fov),
        &s,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(d.computed, w.computed);
    let a = agreement(&d, &w).unwrap();
    // Shift the windowed result by one column: what a misaligned feature map would give.
    let mut shifted = w.clone();
    for r in 0..w.grid.rows {
        for c in 1..w.grid.cols {
            shifted.probs[r * w.grid.cols + c] = w.probs[r * w.grid.cols + c - 1];
            shifted.computed[r * w.grid.cols + c] = w.computed[r * w.grid.cols + c - 1];
        }
    }
    let b = agreement(&d, &shifted).unwrap();
    eprintln!("aligned {a:?}\nshifted {b:?}");
    for c in 0..4 {
        assert!(a.correlation[c] > 0.9, "lesion {c}: {a:?}");
        assert!(
            a.mean_abs_diff[c] < b.mean_abs_diff[c],
            "lesion {c}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn a_run_trained_on_an_enhanced_store_maps_enhanced_photographs() {
    // model.toml records the store's enhancement; the maps of a photograph are then those
    // of the enhanced photograph under the same weights without it.
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let run = make_run(dir.path(), ModelKind::Cnn, Pool::Max, 32);
    let plain = RunModel::load(&run, Device::Cpu).unwrap();
    let toml_path = run.join("model/model.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let mut info: ModelInfo = toml::from_str(&text).unwrap();
    assert_eq!(info.enhance, fovea_data::Enhance::None);
    info.enhance = fovea_data::Enhance::LocalContrast;
    std::fs::write(&toml_path, toml::to_string(&info).unwrap()).unwrap();
    let enhanced = RunModel::load(&run, Device::Cpu).unwrap();
    let data = synth(dir.path(), 1, 256, 192);
    let (rgb, _) = photo(&data);
    let fov = fovea_data::fov_grid(&rgb, &Default::default());
    let s = MapSettings::default();
    let by_run = enhanced
        .windows(&rgb, Some(&fov), &s, MapMode::Dense, &mut |_, _| {})
        .unwrap();
    let pre = fovea_data::contrast::local_contrast(&rgb, &fov);
    let by_hand = plain
        .windows(&pre, Some(&fov), &s, MapMode::Dense, &mut |_, _| {})
        .unwrap();
    let raw = plain
        .windows(&rgb, Some(&fov), &s, MapMode::Dense, &mut |_, _| {})
        .unwrap();
    assert_eq!(by_run.probs, by_hand.probs);
    assert_ne!(by_run.probs, raw.probs);
}

#[test]
fn predict_writes_the_contract_files() {
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let rm = RunModel::load(
        &make_run(dir.path(), ModelKind::Cnn, Pool::Max, 64),
        Device::Cpu,
    )
    .unwrap();
    let data = synth(dir.path(), 1, 300, 200);
    let (rgb, path) = photo(&data);
    let s = MapSettings {
        cell: 4,
        overlay_width: 200,
        ..Default::default()
    };
    let m = map_photograph(&rm, &rgb, "img", &path, &s, &mut |_, _| {}).unwrap();
    let out = dir.path().join("maps").join("img");
    write_maps(
        &out,
        &m.heatmap,
        &m.summary,
        &rgb,
        rm.thresholds,
        s.overlay_width,
    )
    .unwrap();
    // heatmap.npy: (4, ceil(200/4), ceil(300/4)) float32 in [0, 1], 0 outside the FOV.
    let hm = Heatmap::read_npy(out.join("heatmap.npy"), 300, 200, 4).unwrap();
    assert_eq!((hm.h, hm.w), (50, 75));
    assert!(hm.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let fov = fovea_data::field_of_view(&rgb, &Default::default());
    let corner = hm.pixel_value(0, 0, 0);
    assert_eq!(fov.get_pixel(0, 0)[0], 0);
    assert_eq!(corner, 0.0);
    assert!(hm.data.iter().any(|&v| v > 0.0));
    let sum = MapSummary::read(out.join("summary.json")).unwrap();
    assert_eq!((sum.width, sum.height, sum.stride), (300, 200, 4));
    assert_eq!((sum.window_stride, sum.patch_size), (16, 64)); // the CNN's feature stride
    assert_eq!(sum.image_probability.len(), 4);
    let ov = image::open(out.join("overlay.png")).unwrap();
    assert_eq!(ov.width(), 200);
    // The window-by-window mode gives the same files' shapes.
    let w = map_photograph(
        &rm,
        &rgb,
        "img",
        &path,
        &MapSettings {
            mode: MapMode::Windowed,
            ..s.clone()
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((w.heatmap.h, w.heatmap.w), (50, 75));
}

#[test]
fn dense_refuses_a_stride_off_the_feature_grid() {
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let rm = RunModel::load(
        &make_run(dir.path(), ModelKind::Resnet18, Pool::Avg, 64),
        Device::Cpu,
    )
    .unwrap();
    let rgb = RgbImage::new(128, 128);
    let err = dense_window_probs(
        &rm.model,
        None,
        &rgb,
        None,
        &dense_settings(&rm, 24, 48, 32),
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, fovea_nn::NnError::Usage(m) if m.contains("multiples of the model's feature stride (32)")),
        "{err}"
    );
    // The window-by-window mode takes any stride.
    let w = windowed_probs(
        &rm.model,
        None,
        &rgb,
        None,
        &dense_settings(&rm, 24, 48, 32),
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((w.grid.rows, w.grid.cols), (4, 4)); // ceil(64/24)+1
}

struct NoMapsProgress;
impl MapsObserver for NoMapsProgress {}

#[test]
fn eval_maps_scores_the_split_pixel_by_pixel() {
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    let run = make_run(dir.path(), ModelKind::Cnn, Pool::Max, 32);
    let rm = RunModel::load(&run, Device::Cpu).unwrap();
    let data = synth(dir.path(), 6, 160, 128);
    // No patch store behind this run: the dataset's own split (a synthetic manifest has
    // none), so name the test images through a manifest split column.
    let manifest = data.join("manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut out = format!("{header},split\n");
    for (i, l) in lines.enumerate() {
        out += &format!("{l},{}\n", if i < 2 { "test" } else { "train" });
    }
    std::fs::write(&manifest, out).unwrap();
    let eval = dir.path().join("eval");
    let m = eval_maps(
        &rm,
        &data,
        Split::Test,
        &eval,
        None,
        &MapSettings {
            cell: 2,
            ..Default::default()
        },
        &NoMapsProgress,
    )
    .unwrap();
    assert_eq!(m.images, 2);
    assert_eq!(m.pixels, 2 * 160 * 128);
    let back = PixelMetrics::read(eval.join("pixel_metrics.json")).unwrap();
    assert_eq!(back.aupr, m.aupr);
    for c in 0..4 {
        assert!((0.0..=1.0).contains(&m.aupr[c]));
    }
    assert!(eval
        .join("maps")
        .join(&m.per_image[0].image_id)
        .join("summary.json")
        .exists());
    // Scoring the maps just written gives the same numbers.
    let again = eval_maps(
        &rm,
        &data,
        Split::Test,
        &dir.path().join("eval2"),
        Some(&eval.join("maps")),
        &MapSettings::default(),
        &NoMapsProgress,
    )
    .unwrap();
    assert_eq!(again.aupr, m.aupr);
    assert_eq!(again.auroc, m.auroc);
}

#[test]
fn exported_torchscript_matches_the_run_model() {
    use tch::nn::ModuleT;
    let _g = serial();
    let dir = fovea_testkit::tempdir().unwrap();
    for (kind, pool) in [
        (ModelKind::Resnet18, Pool::Avg),
        (ModelKind::Cnn, Pool::Max),
    ] {
        let rm = RunModel::load(&make_run(dir.path(), kind, pool, 64), Device::Cpu).unwrap();
        let file = dir.path().join(format!("{kind:?}.pt"));
        let bytes = fovea_nn::export::export_torchscript(&rm, &file).unwrap();
        assert!(bytes > 10_000);
        let module = tch::CModule::load(&file).unwrap();
        let x = tch::Tensor::rand([3, 3, 64, 64], (tch::Kind::Float, Device::Cpu));
        let got = module.forward_ts(&[&x]).unwrap();
        let mean = tch::Tensor::from_slice(&IMAGENET_MEAN).view([1, 3, 1, 1]);
        let std = tch::Tensor::from_slice(&IMAGENET_STD).view([1, 3, 1, 1]);
        let want = tch::no_grad(|| rm.model.forward_t(&((&x - &mean) / &std), false));
        let diff = (got - want).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{kind:?}: max difference {diff}");
    }
}
