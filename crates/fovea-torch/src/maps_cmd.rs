//! `fovea predict`, `fovea eval-maps`, `fovea export` and `fovea bench maps`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use fovea_data::Split;
use fovea_maps::WindowWeight;
use fovea_nn::device::DeviceChoice;
use fovea_nn::maps::{
    eval_maps, image_id_of, load_mapper, map_photograph, write_maps, MapMode, MapSettings, Mapper,
    MapsObserver, RunModel,
};
use fovea_store::output::{adds_to_eval, prepare_output, OutputKind};
use indicatif::{ProgressBar, ProgressStyle};

/// Settings shared by `predict` and `eval-maps`.
#[derive(clap::Args, Clone)]
pub struct MapArgs {
    /// Window stride in pixels; windows are the run's patch size. Dense mode needs a
    /// multiple of the model's feature stride (0 = that default) [default: the feature
    /// stride, 32 for resnet18, 16 for cnn].
    #[arg(long, value_name = "N")]
    stride: Option<u32>,
    /// Heatmap cell side in pixels, at least 1: heatmap.npy is (4, ceil(H/cell),
    /// ceil(W/cell)); a cell as large as the photograph gives a 1x1 map.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cell: u32,
    /// How overlapping windows are blended: hann, gaussian[:SIGMA] or flat.
    #[arg(long, default_value = "hann")]
    blend: WindowWeight,
    /// Classify every window alone instead of reading windows off a shared feature map
    /// (slower; the reference the dense maps are checked against).
    #[arg(long)]
    windowed: bool,
    /// Dense mode: windows per tile side, at least 1, counted on the model's feature
    /// stride (bounds memory for any photograph size; 24 was the fastest on a 2-core CPU,
    /// 12-160 tried).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    tile: u32,
    /// Dense mode: pixels of context around each tile (0 = none: windows at a tile's
    /// border see zero padding there).
    #[arg(long, default_value_t = 32)]
    halo: u32,
    /// Overlay width in pixels (0 = the photograph's own).
    #[arg(long, default_value_t = 1600)]
    overlay_width: u32,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

impl MapArgs {
    fn settings(&self) -> Result<MapSettings> {
        let weight = self.blend;
        Ok(MapSettings {
            stride: self.stride.unwrap_or(0),
            cell: self.cell,
            weight,
            mode: if self.windowed {
                MapMode::Windowed
            } else {
                MapMode::Dense
            },
            tile: self.tile,
            halo: self.halo,
            overlay_width: self.overlay_width,
            ..Default::default()
        })
    }

    /// The run's model, either kind (a segmentation run's U-Net, or the classifier).
    fn load(&self, run: &std::path::Path) -> Result<Box<dyn Mapper>> {
        let device = self.device.resolve().map_err(anyhow::Error::msg)?;
        load_mapper(run, device).map_err(anyhow::Error::msg)
    }

    /// The patch classifier of a run (`bench maps`).
    fn load_classifier(&self, run: &std::path::Path) -> Result<RunModel> {
        let device = self.device.resolve().map_err(anyhow::Error::msg)?;
        RunModel::load(run, device).map_err(anyhow::Error::msg)
    }
}

/// Refuses, before any model is loaded, inputs that cannot be photographs: a directory, or
/// anything that is not a regular file (a FIFO would block the reader forever, a device
/// would be read without end). Every such input is named. A path that does not exist
/// passes here: `predict` reports it with the photographs that fail to decode.
fn check_input_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let mut bad = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => bad.push(format!("{}: is a directory", p.display())),
            Ok(m) if !m.is_file() => bad.push(format!(
                "{}: is not a regular file (a FIFO, socket or device)",
                p.display()
            )),
            _ => {}
        }
    }
    anyhow::ensure!(
        bad.is_empty(),
        "{}; expected photographs (JPEG, PNG, TIFF files)",
        bad.join("; ")
    );
    Ok(())
}

/// The folder name under MAPS/ of each photograph, unique: its file name without extension;
/// photographs sharing one are named by their path from the folder they have in common,
/// `/` written `_` (`a/eye.jpg b/eye.jpg` -> `a_eye`, `b_eye`), with the extension added
/// where only it differs (`eye.jpg eye.png` -> `eye_jpg`, `eye_png`). The same file given
/// twice, or names that still collide, are refused naming the photographs.
fn map_folder_names(paths: &[PathBuf]) -> Result<Vec<String>> {
    let abs: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)))
        .collect::<std::io::Result<_>>()
        .context("resolving the photographs' paths")?;
    let mut names: Vec<String> = paths.iter().map(|p| image_id_of(p)).collect();
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (k, n) in names.iter().enumerate() {
        by_name.entry(n.clone()).or_default().push(k);
    }
    for group in by_name.values().filter(|g| g.len() > 1) {
        for (x, &a) in group.iter().enumerate() {
            if let Some(&b) = group[..x].iter().find(|&&b| abs[b] == abs[a]) {
                anyhow::bail!(
                    "{} and {} are the same photograph given twice",
                    paths[b].display(),
                    paths[a].display()
                );
            }
        }
        let parents: Vec<Vec<String>> = group
            .iter()
            .map(|&k| {
                abs[k]
                    .parent()
                    .map(|d| d.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let common = (0..)
            .take_while(|&i| parents.iter().all(|p| i < p.len() && p[i] == parents[0][i]))
            .count();
        for (&k, parent) in group.iter().zip(&parents) {
            let mut parts: Vec<String> = parent[common..].to_vec();
            parts.push(image_id_of(&paths[k]));
            names[k] = parts.join("_");
        }
        let renamed: Vec<String> = group.iter().map(|&k| names[k].clone()).collect();
        for (&k, n) in group.iter().zip(&renamed) {
            if renamed.iter().filter(|m| *m == n).count() > 1 {
                let ext = paths[k]
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                names[k] = format!("{n}_{ext}");
            }
        }
    }
    for (a, n) in names.iter().enumerate() {
        if let Some(b) = names[..a].iter().position(|m| m == n) {
            anyhow::bail!(
                "{} and {} would both write their maps to MAPS/{n}/: rename one, or map them with separate --out folders",
                paths[b].display(),
                paths[a].display()
            );
        }
    }
    Ok(names)
}

/// `.NAME.TAG` beside `path`.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{tag}"))
}

/// Puts the folder `tmp` at `out`, replacing what is there (checked by `prepare_output`).
fn replace_dir(tmp: &Path, out: &Path) -> Result<()> {
    let old = sibling(out, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| old.display().to_string())?;
    }
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| out.display().to_string())?;
    }
    std::fs::rename(tmp, out).with_context(|| out.display().to_string())?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| old.display().to_string())?;
    }
    Ok(())
}

fn tile_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A run folder from `fovea train` (its best model and tuned thresholds are used).
    #[arg(long)]
    run: PathBuf,
    /// Photographs (JPEG, PNG, TIFF).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Output folder: MAPS/<image_id>/{heatmap.npy, overlay.png, summary.json}, where
    /// image_id is the file name without extension; photographs sharing a name are told
    /// apart by their folders (a/eye.jpg, b/eye.jpg -> MAPS/a_eye/, MAPS/b_eye/), or by
    /// their extension (eye.jpg, eye.png -> MAPS/eye_jpg/, MAPS/eye_png/).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing map folder at --out (only one made by `fovea predict`).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    maps: MapArgs,
}

/// Maps every photograph; a photograph that cannot be read or mapped is reported and the
/// others are still processed (exit status non-zero at the end).
pub fn predict(a: PredictArgs) -> Result<()> {
    let s = a.maps.settings()?;
    check_input_files(a.images.iter().map(PathBuf::as_path))?;
    let names = map_folder_names(&a.images)?;
    let mut inputs: Vec<&Path> = vec![&a.run];
    inputs.extend(a.images.iter().map(PathBuf::as_path));
    prepare_output(&a.out, OutputKind::Maps, a.force, &inputs)?;
    for (path, id) in a.images.iter().zip(&names) {
        if *id != image_id_of(path) {
            println!(
                "{}: another photograph has its name, its maps go to {}",
                path.display(),
                a.out.join(id).display()
            );
        }
    }
    let rm = a.maps.load(&a.run)?;
    // Written into a hidden sibling, swapped into place at the end: an existing map folder
    // (--force) is replaced whole, and an interrupted run leaves no half-written one.
    let out = fovea_store::output::resolve(&a.out)?;
    let tmp = sibling(&out, "partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    let mut failed = Vec::new();
    let bar = tile_bar();
    for (k, (path, id)) in a.images.iter().zip(&names).enumerate() {
        let id = id.clone();
        bar.set_message(format!("[{}/{}] {id}", k + 1, a.images.len()));
        let result = (|| -> Result<f64> {
            let rgb = fovea_data::read_rgb(path).map_err(anyhow::Error::msg)?;
            let m = rm
                .map(&rgb, &id, path, &s, &mut |d, t| {
                    bar.set_length(t as u64);
                    bar.set_position(d as u64);
                })
                .map_err(anyhow::Error::msg)?;
            write_maps(
                &tmp.join(&id),
                &m.heatmap,
                &m.summary,
                &rgb,
                rm.thresholds(),
                s.overlay_width,
            )
            .map_err(anyhow::Error::msg)?;
            let p = &m.summary.image_probability;
            let probs: Vec<String> = fovea_data::LESION_CODES
                .iter()
                .map(|c| format!("P({c}) {:.2}", p[*c]))
                .collect();
            bar.suspend(|| {
                let counts: Vec<String> = fovea_data::LESION_CODES
                    .iter()
                    .map(|c| format!("{c} {}", m.summary.lesion_counts.get(*c).unwrap_or(&0)))
                    .collect();
                println!(
                    "{id}: {}x{} in {:.1}s | {} | {} regions ({})",
                    m.summary.width,
                    m.summary.height,
                    m.summary.seconds,
                    probs.join(" "),
                    m.summary.regions.len(),
                    counts.join(", ")
                )
            });
            Ok(m.summary.seconds)
        })();
        if let Err(e) = result {
            bar.suspend(|| eprintln!("error: {}: {e:#}", path.display()));
            failed.push(path.display().to_string());
        }
    }
    bar.finish_and_clear();
    if failed.len() < a.images.len() {
        replace_dir(&tmp, &out)?;
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    println!(
        "wrote maps of {} photograph(s) to {}",
        a.images.len() - failed.len(),
        a.out.display()
    );
    anyhow::ensure!(
        failed.is_empty(),
        "{} of {} photographs failed: {}",
        failed.len(),
        a.images.len(),
        failed.join(", ")
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalMapsArgs {
    /// A run folder from `fovea train`.
    #[arg(long)]
    run: PathBuf,
    /// The dataset holding the photographs and their masks.
    #[arg(long)]
    dataset: PathBuf,
    /// The split scored (its images are taken from the run's patch store when it exists).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Split::Test)]
    split: Split,
    /// Output folder: pixel_metrics.json and maps/<image_id>/.
    #[arg(long)]
    out: PathBuf,
    /// Score the heatmaps already in MAPS/<image_id>/ (from `fovea predict`) where present.
    #[arg(long, value_name = "MAPS")]
    maps_dir: Option<PathBuf>,
    /// Write into an existing evaluation folder at --out (only one made by `fovea eval` or
    /// `fovea eval-maps`), replacing its pixel_metrics.json and maps.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    maps: MapArgs,
}

struct EvalConsole {
    bar: ProgressBar,
}

impl MapsObserver for EvalConsole {
    fn image_start(&self, k: usize, n: usize, id: &str) {
        self.bar.set_message(format!("[{}/{n}] {id}", k + 1));
    }
    fn tile(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }
    fn image_done(&self, id: &str, seconds: f64) {
        self.bar.suspend(|| println!("{id}: {seconds:.1}s"));
    }
}

/// The IDRiD challenge's best published pixel AUPR (segmentation sub-challenge).
const CHALLENGE_BEST: [f64; 4] = [0.50, 0.68, 0.885, 0.70];

pub fn eval_maps_cmd(a: EvalMapsArgs) -> Result<()> {
    let split = a.split;
    let s = a.maps.settings()?;
    // Every photograph and mask is checked before the model is loaded (eval_maps opens
    // the dataset again: a cheap listing).
    let ds = fovea_data::Dataset::open(&a.dataset)?;
    check_input_files(ds.records.iter().flat_map(|r| {
        std::iter::once(r.image.as_path()).chain(r.masks.iter().flatten().map(PathBuf::as_path))
    }))?;
    if let Some(m) = &a.maps_dir {
        anyhow::ensure!(
            m.is_dir(),
            "--maps-dir {}: is not a folder of maps from `fovea predict`",
            m.display()
        );
    }
    let mut inputs: Vec<&Path> = vec![&a.run, &a.dataset];
    inputs.extend(a.maps_dir.as_deref());
    // eval-maps adds pixel_metrics.json and maps/ to an evaluation folder `fovea eval`
    // may have written (CONTRACTS 4-5); its own files need --force to be replaced.
    let force = a.force || adds_to_eval(&a.out, &["pixel_metrics.json", "maps"]);
    prepare_output(&a.out, OutputKind::Eval, force, &inputs)?;
    let rm = a.maps.load(&a.run)?;
    let console = EvalConsole { bar: tile_bar() };
    let m = eval_maps(
        rm.as_ref(),
        &a.dataset,
        split,
        &a.out,
        a.maps_dir.as_deref(),
        &s,
        &console,
    )
    .map_err(anyhow::Error::msg)?;
    console.bar.finish_and_clear();
    println!(
        "pixel-level scores over {} images ({} pixels), {}:",
        m.images,
        m.pixels,
        if rm.full_resolution() {
            "every pixel the model's own probability (full resolution)"
        } else {
            "every pixel its cell's value"
        }
    );
    println!(
        "{:<8}{:>10}{:>10}{:>16}{:>14}{:>14}",
        "lesion", "AUPR", "AUROC", "challenge best", "image AUROC", "image F1"
    );
    for (i, name) in fovea_data::LESION_CODES.iter().enumerate() {
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        println!(
            "{name:<8}{:>10.3}{:>10}{:>16.3}{:>14}{:>14.3}",
            m.aupr[i],
            fmt(m.auroc[i]),
            CHALLENGE_BEST[i],
            fmt(m.image_level.auroc[i]),
            m.image_level.f1[i]
        );
    }
    println!("wrote {}/pixel_metrics.json and maps/", a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A run folder from `fovea train`.
    #[arg(long)]
    run: PathBuf,
    /// Output TorchScript file (e.g. model.pt), outside the run; what its input must be
    /// is written beside it, in OUT.json (e.g. model.pt.json).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing exported model at --out (and its OUT.json).
    #[arg(long)]
    force: bool,
}

/// Refuses to replace, even with --force, a file that is not an export: the model must be
/// a TorchScript archive (a zip file), its description a JSON file written by export.
fn check_replaced_export(out: &Path, json: &Path) -> Result<()> {
    use std::io::Read;
    let start = |p: &Path| {
        let mut b = Vec::new();
        if let Ok(f) = std::fs::File::open(p) {
            let _ = f.take(64).read_to_end(&mut b);
        }
        b
    };
    if out.exists() {
        anyhow::ensure!(
            start(out).starts_with(b"PK\x03\x04"),
            "{} is not an exported model (a TorchScript archive): --force only replaces Fovea's own outputs",
            out.display()
        );
    }
    if json.exists() {
        let ours = std::fs::read_to_string(json)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                v["format"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("TorchScript"))
            });
        anyhow::ensure!(
            ours,
            "{} is not the description of an exported model: --force only replaces Fovea's own outputs",
            json.display()
        );
    }
    Ok(())
}

/// `OUT.json` beside an exported model: `model.pt` -> `model.pt.json`.
pub fn export_description_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

/// What a user of the exported module must feed it, in words: the enhancement (applied to
/// the whole photograph, so it cannot be part of a per-patch module) is the user's job.
fn expected_input(rm: &RunModel) -> String {
    let p = rm.info.patch_size;
    match rm.info.enhance {
        fovea_data::Enhance::None => format!(
            "float32 [N, 3, {p}, {p}] RGB in [0, 1] (patches of the photograph as it is)"
        ),
        e => format!(
            "float32 [N, 3, {p}, {p}] RGB in [0, 1] cut from the photograph AFTER its {} enhancement, which the module does not do (the run's store was extracted with it; plain patches give wrong probabilities)",
            e.name()
        ),
    }
}

/// The description written to `OUT.json`: input layout, size, range, normalisation,
/// enhancement, output, and the run's tuned thresholds.
fn export_description(rm: &RunModel, out: &Path) -> serde_json::Value {
    let p = rm.info.patch_size;
    let enhancement = match rm.info.enhance {
        fovea_data::Enhance::None => serde_json::json!({
            "name": "none",
            "applied_by": "nobody: patches of the photograph as it is",
        }),
        fovea_data::Enhance::LocalContrast => serde_json::json!({
            "name": "local-contrast",
            "applied_by": "the caller, to the whole photograph, before patches are cut (it needs the retina's radius, so it is not part of the module)",
            "formula": "out = clamp(4 * (I - G_sigma * I) + 128, 0, 255) inside the field of view (G_sigma * I: Gaussian mean over the field of view only), black outside; sigma = the retina's radius / 30",
            "reference": "fovea_data::contrast::local_contrast (Graham's preprocessing)",
        }),
    };
    serde_json::json!({
        "format": "TorchScript (traced), torch.jit.load",
        "file": out.file_name().map(|n| n.to_string_lossy().into_owned()),
        "run": rm.run.display().to_string(),
        "model": rm.info.model.as_str(),
        "input": {
            "dtype": "float32",
            "shape": ["N", 3, p, p],
            "layout": "NCHW",
            "channels": "RGB",
            "range": [0.0, 1.0],
            "patch_size": p,
            "enhancement": enhancement,
            "normalisation": {
                "mean": rm.info.mean,
                "std": rm.info.std,
                "inside_the_module": true,
            },
        },
        "output": {
            "shape": ["N", 4],
            "kind": "logits",
            "lesions": fovea_data::LESION_CODES,
            "probabilities": "sigmoid(logits)",
        },
        "thresholds": fovea_maps::by_lesion(rm.thresholds),
    })
}

pub fn export(a: ExportArgs) -> Result<()> {
    let json_path = export_description_path(&a.out);
    for out in [&a.out, &json_path] {
        prepare_output(out, OutputKind::File, a.force, &[&a.run])?;
    }
    check_replaced_export(&a.out, &json_path)?;
    if let Ok(fovea_nn::segmentation::TrainTask::Segmentation) =
        fovea_nn::segmentation::model::run_task(&a.run)
    {
        return export_segmentation(&a, &json_path);
    }
    let rm = RunModel::load(&a.run, tch::Device::Cpu).map_err(anyhow::Error::msg)?;
    let n = fovea_nn::export::export_torchscript(&rm, &a.out).map_err(anyhow::Error::msg)?;
    let mut json = serde_json::to_vec_pretty(&export_description(&rm, &a.out))?;
    json.push(b'\n');
    fovea_store::store::write_atomic(&json_path, &json)?;
    println!(
        "wrote {} ({} bytes) and {}: input {}, normalisation inside; output logits [N, 4] (MA, HE, EX, SE); sigmoid gives probabilities",
        a.out.display(),
        n,
        json_path.display(),
        expected_input(&rm)
    );
    Ok(())
}

/// `fovea export` of a segmentation run: the traced U-Net, `[N, 3, H, W]` RGB in [0, 1]
/// (normalisation inside) -> probabilities `[N, 4, H, W]`, H and W multiples of the
/// encoder's stride.
fn export_segmentation(a: &ExportArgs, json_path: &Path) -> Result<()> {
    let m = fovea_nn::segmentation::load_seg_model(&a.run, tch::Device::Cpu)
        .map_err(anyhow::Error::msg)?;
    let thresholds = fovea_run::RunDir::new(&a.run)
        .read_thresholds()
        .map_err(anyhow::Error::msg)?
        .to_array();
    let info = &m.info;
    let n = fovea_nn::export::export_unet(&m.net, &m.vs, Some((info.mean, info.std)), &a.out)
        .map_err(anyhow::Error::msg)?;
    let stride = info.encoder.stride();
    let enhancement = match info.preprocess.enhance {
        fovea_data::Enhance::None => serde_json::json!({
            "name": "none",
            "applied_by": "nobody: the photograph as it is",
        }),
        fovea_data::Enhance::LocalContrast => serde_json::json!({
            "name": "local-contrast",
            "applied_by": "the caller, to the whole photograph at full resolution, before scaling and tiling (it needs the retina's radius, so it is not part of the module)",
            "formula": "out = clamp(4 * (I - G_sigma * I) + 128, 0, 255) inside the field of view (G_sigma * I: Gaussian mean over the field of view only), black outside; sigma = the retina's radius / 30",
            "reference": "fovea_data::contrast::local_contrast (Graham's preprocessing)",
        }),
    };
    let desc = serde_json::json!({
        "format": "TorchScript (traced), torch.jit.load",
        "file": a.out.file_name().map(|n| n.to_string_lossy().into_owned()),
        "run": a.run.display().to_string(),
        "task": "segmentation",
        "model": format!("unet-{}", info.encoder.as_str()),
        "input": {
            "dtype": "float32",
            "shape": ["N", 3, "H", "W"],
            "layout": "NCHW",
            "channels": "RGB",
            "range": [0.0, 1.0],
            "sides_multiple_of": stride,
            "scale": info.preprocess.scale,
            "tile": info.infer.tile,
            "overlap": info.infer.overlap,
            "enhancement": enhancement,
            "normalisation": {
                "mean": info.mean,
                "std": info.std,
                "inside_the_module": true,
            },
        },
        "output": {
            "shape": ["N", 4, "H", "W"],
            "kind": "probabilities",
            "lesions": fovea_data::LESION_CODES,
        },
        "thresholds": fovea_maps::by_lesion(thresholds),
    });
    let mut json = serde_json::to_vec_pretty(&desc)?;
    json.push(b'\n');
    fovea_store::store::write_atomic(json_path, &json)?;
    println!(
        "wrote {} ({} bytes) and {}: input float32 [N, 3, H, W] RGB in [0, 1] (H, W multiples of {stride}{}), normalisation inside; output probabilities [N, 4, H, W] (MA, HE, EX, SE)",
        a.out.display(),
        n,
        json_path.display(),
        match info.preprocess.enhance {
            fovea_data::Enhance::None => String::new(),
            e => format!(", the photograph after its {} enhancement", e.name()),
        }
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchMapsArgs {
    /// A run folder (its model maps the photograph).
    #[arg(long)]
    run: PathBuf,
    /// The photograph to map.
    #[arg(long)]
    image: PathBuf,
    /// Also run the window-by-window reference at the same stride and compare.
    #[arg(long)]
    no_reference: bool,
    #[command(flatten)]
    maps: MapArgs,
}

/// Times dense maps of one photograph against window-by-window inference at the same
/// stride, reports their agreement and peak memory.
pub fn bench_maps(a: BenchMapsArgs) -> Result<()> {
    let s = a.maps.settings()?;
    let rm = a.maps.load_classifier(&a.run)?;
    let rgb = fovea_data::read_rgb(&a.image).map_err(anyhow::Error::msg)?;
    let fov = fovea_data::fov_grid(&rgb, &s.fov);
    let id = image_id_of(&a.image);
    // Warm-up (allocator, kernels) on a small crop.
    let small = image::imageops::crop_imm(&rgb, 0, 0, rgb.width().min(512), rgb.height().min(512))
        .to_image();
    let _ = rm.windows(&small, None, &s, MapMode::Dense, &mut |_, _| {});
    let t0 = Instant::now();
    let m =
        map_photograph(&rm, &rgb, &id, &a.image, &s, &mut |_, _| {}).map_err(anyhow::Error::msg)?;
    let dense_s = t0.elapsed().as_secs_f64();
    println!(
        "dense: {}x{} photograph, windows {}x{} px every {} px ({} of {} in the field of view), heatmap cell {}: {dense_s:.2} s (including blending, field of view, regions)",
        rgb.width(),
        rgb.height(),
        m.windows.grid.patch,
        m.windows.grid.patch,
        m.windows.grid.stride,
        m.windows.computed.iter().filter(|&&c| c).count(),
        m.windows.computed.len(),
        s.cell
    );
    if !a.no_reference {
        let t1 = Instant::now();
        let w = rm
            .windows(&rgb, Some(&fov), &s, MapMode::Windowed, &mut |_, _| {})
            .map_err(anyhow::Error::msg)?;
        let win_s = t1.elapsed().as_secs_f64();
        let ag = fovea_nn::dense::agreement(&m.windows, &w).map_err(anyhow::Error::msg)?;
        println!("window-by-window: {win_s:.2} s (window probabilities only)");
        println!("speed-up {:.2}x", win_s / dense_s);
        println!(
            "agreement over {} windows: mean |dense - windowed| {:?}, max {:?}, correlation {:?} (MA, HE, EX, SE)",
            ag.windows,
            ag.mean_abs_diff.map(|v| (v * 1e4).round() / 1e4),
            ag.max_abs_diff.map(|v| (v * 1e3).round() / 1e3),
            ag.correlation.map(|v| (v * 1e4).round() / 1e4)
        );
    }
    println!("peak_rss_mib {:.0}", peak_rss_mib());
    println!("seconds_per_photograph {dense_s:.3}");
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), MiB; 0 where unknown.
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, files: &[&str]) -> Result<Vec<String>> {
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        for p in &paths {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        map_folder_names(&paths)
    }

    #[test]
    fn folder_names_are_unique_and_say_where_they_come_from() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        assert_eq!(
            names(d, &["x/IDRiD_01.jpg", "y/IDRiD_02.jpg"]).unwrap(),
            ["IDRiD_01", "IDRiD_02"]
        );
        assert_eq!(
            names(d, &["a/eye.jpg", "b/eye.jpg", "c.jpg"]).unwrap(),
            ["a_eye", "b_eye", "c"]
        );
        assert_eq!(
            names(d, &["p/q/a/eye.jpg", "p/r/eye.jpg"]).unwrap(),
            ["q_a_eye", "r_eye"]
        );
        assert_eq!(
            names(d, &["s/eye.jpg", "s/eye.png"]).unwrap(),
            ["eye_jpg", "eye_png"]
        );
        assert_eq!(
            names(d, &["u/a/eye.jpg", "u/a/eye.png", "u/b/eye.jpg"]).unwrap(),
            ["a_eye_jpg", "a_eye_png", "b_eye"]
        );
        // The same file twice, by two spellings.
        let e = names(d, &["a/eye.jpg", "a/../a/eye.jpg"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("given twice"), "{e}");
        // A rename that meets another photograph's own name.
        let e = names(d, &["v/a/eye.jpg", "v/b/eye.jpg", "w/a_eye.jpg"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MAPS/a_eye/"), "{e}");
    }

    #[test]
    fn directories_and_fifos_are_named() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("f.jpg");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = check_input_files([t.path(), fifo.as_path(), Path::new("/no/such.jpg")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{}: is a directory", t.path().display())),
            "{e}"
        );
        assert!(e.contains("f.jpg: is not a regular file"), "{e}");
        assert!(!e.contains("such.jpg"), "{e}");
    }
}
