//! `fovea predict`, `fovea eval-maps`, `fovea export` and `fovea bench maps`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use fovea_data::Split;
use fovea_maps::WindowWeight;
use fovea_nn::device::DeviceChoice;
use fovea_nn::maps::{
    eval_maps, image_id_of, map_photograph, write_maps, MapMode, MapSettings, MapsObserver,
    RunModel,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Settings shared by `predict` and `eval-maps`.
#[derive(clap::Args, Clone)]
pub struct MapArgs {
    /// Window stride in pixels; windows are the run's patch size. Dense mode needs a
    /// multiple of the model's feature stride [default: the feature stride, 32 for
    /// resnet18, 16 for cnn].
    #[arg(long, value_name = "N")]
    stride: Option<u32>,
    /// Heatmap cell side in pixels: heatmap.npy is (4, ceil(H/cell), ceil(W/cell)).
    #[arg(long, default_value_t = 8, value_name = "N")]
    cell: u32,
    /// How overlapping windows are blended: hann, gaussian[:SIGMA] or flat.
    #[arg(long, default_value = "hann")]
    blend: String,
    /// Classify every window alone instead of reading windows off a shared feature map
    /// (slower; the reference the dense maps are checked against).
    #[arg(long)]
    windowed: bool,
    /// Dense mode: windows per tile side, counted on the model's feature stride (bounds
    /// memory for any photograph size; 24 was the fastest on a 2-core CPU, 12-160 tried).
    #[arg(long, default_value_t = 24)]
    tile: u32,
    /// Dense mode: pixels of context around each tile.
    #[arg(long, default_value_t = 32)]
    halo: u32,
    /// Overlay width in pixels (0 = the photograph's own).
    #[arg(long, default_value_t = 1600)]
    overlay_width: u32,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl MapArgs {
    fn settings(&self) -> Result<MapSettings> {
        let weight: WindowWeight = self
            .blend
            .parse()
            .map_err(|e| anyhow::anyhow!("--blend '{}': {e}", self.blend))?;
        anyhow::ensure!(self.cell > 0, "--cell must be positive");
        Ok(MapSettings {
            stride: self.stride.unwrap_or(0),
            cell: self.cell,
            weight,
            mode: if self.windowed {
                MapMode::Windowed
            } else {
                MapMode::Dense
            },
            tile: self.tile.max(1),
            halo: self.halo,
            overlay_width: self.overlay_width,
            ..Default::default()
        })
    }

    fn load(&self, run: &std::path::Path) -> Result<RunModel> {
        let device = DeviceChoice::parse(&self.device)
            .with_context(|| format!("--device '{}' is not cpu, cuda or auto", self.device))?
            .resolve()
            .map_err(anyhow::Error::msg)?;
        RunModel::load(run, device).map_err(anyhow::Error::msg)
    }
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
    /// Output folder: MAPS/<image_id>/{heatmap.npy, overlay.png, summary.json}.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    maps: MapArgs,
}

/// Maps every photograph; a photograph that cannot be read or mapped is reported and the
/// others are still processed (exit status non-zero at the end).
pub fn predict(a: PredictArgs) -> Result<()> {
    let s = a.maps.settings()?;
    let rm = a.maps.load(&a.run)?;
    let mut failed = Vec::new();
    let bar = tile_bar();
    for (k, path) in a.images.iter().enumerate() {
        let id = image_id_of(path);
        bar.set_message(format!("[{}/{}] {id}", k + 1, a.images.len()));
        let result = (|| -> Result<f64> {
            let rgb = fovea_data::read_rgb(path).map_err(anyhow::Error::msg)?;
            let m = map_photograph(&rm, &rgb, &id, path, &s, &mut |d, t| {
                bar.set_length(t as u64);
                bar.set_position(d as u64);
            })
            .map_err(anyhow::Error::msg)?;
            write_maps(&a.out.join(&id), &m, &rgb, rm.thresholds, s.overlay_width)
                .map_err(anyhow::Error::msg)?;
            let p = &m.summary.image_probability;
            bar.suspend(|| {
                println!(
                    "{id}: {}x{} in {:.1}s | P(MA) {:.2} P(HE) {:.2} P(EX) {:.2} P(SE) {:.2} | {} regions",
                    m.summary.width,
                    m.summary.height,
                    m.summary.seconds,
                    p["MA"],
                    p["HE"],
                    p["EX"],
                    p["SE"],
                    m.summary.regions.len()
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
    let rm = a.maps.load(&a.run)?;
    let console = EvalConsole { bar: tile_bar() };
    let m = eval_maps(
        &rm,
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
        "pixel-level scores over {} images ({} pixels), every pixel its cell's value:",
        m.images, m.pixels
    );
    println!(
        "{:<8}{:>10}{:>10}{:>16}{:>14}{:>14}",
        "lesion", "AUPR", "AUROC", "challenge best", "image AUROC", "image F1"
    );
    for (i, name) in ["MA", "HE", "EX", "SE"].iter().enumerate() {
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
    /// Output TorchScript file (e.g. model.pt).
    #[arg(long)]
    out: PathBuf,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let rm = RunModel::load(&a.run, tch::Device::Cpu).map_err(anyhow::Error::msg)?;
    let n = fovea_nn::export::export_torchscript(&rm, &a.out).map_err(anyhow::Error::msg)?;
    println!(
        "wrote {} ({} bytes): input float32 [N, 3, {p}, {p}] RGB in [0, 1], output logits [N, 4] (MA, HE, EX, SE); sigmoid gives probabilities",
        a.out.display(),
        n,
        p = rm.info.patch_size
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
    let rm = a.maps.load(&a.run)?;
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
fn peak_rss_mib() -> f64 {
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
