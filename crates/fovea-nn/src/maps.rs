//! Lesion maps of whole photographs from a trained run (CONTRACTS 5): window probabilities
//! ([`crate::dense`]), blended into per-lesion heatmaps ([`fovea_maps::blend`]), zeroed
//! outside the field of view, with regions at the run's tuned thresholds, an overlay and
//! `summary.json`; and their pixel-level scoring against masks (`eval-maps`).
//!
//! Both kinds of run map photographs through [`Mapper`]: the patch classifier
//! ([`RunModel`]) and the segmentation model
//! ([`crate::segmentation::maps::SegMapper`]); [`load_mapper`] picks by the run's task.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fovea_data::fov::{fov_grid, FovGrid, FovSettings};
use fovea_data::{Dataset, Split};
use fovea_maps::{
    blend, by_lesion, image_probability, lesion_counts, overlay, presence, regions,
    write_png_atomic, Heatmap, MapSummary, PixelMetrics, PixelScorer, WindowWeight,
};
use fovea_metrics::DEFAULT_BINS;
use fovea_run::RunDir;
use fovea_store::Store;
use image::RgbImage;
use tch::{nn, Device};

use crate::checkpoint::ModelInfo;
use crate::context::{FoveaModel, GlobalContext};
use crate::dense::{dense_window_probs, windowed_probs, DenseSettings, WindowProbs};
use crate::error::{NnError, Result};
use crate::inference::load_run_model;
use crate::settings::TrainSettings;

/// How windows are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapMode {
    /// The trunk once per tile, windows read off the feature map (fast).
    Dense,
    /// Every window cropped and classified alone (the reference).
    Windowed,
}

/// Settings of `fovea predict` / `fovea eval-maps`.
#[derive(Clone, Debug)]
pub struct MapSettings {
    /// Window stride in pixels; 0 = the model's feature stride (32 for ResNet-18).
    pub stride: u32,
    /// Heatmap cell side in pixels (CONTRACTS 5's `stride` in summary.json).
    pub cell: u32,
    pub weight: WindowWeight,
    pub mode: MapMode,
    /// Dense pass: windows per tile side (on the feature stride) and context pixels.
    pub tile: u32,
    pub halo: u32,
    /// Window-by-window pass: windows per batch.
    pub batch: usize,
    /// Overlay width in pixels (0 = the photograph's).
    pub overlay_width: u32,
    pub fov: FovSettings,
}

impl Default for MapSettings {
    fn default() -> Self {
        MapSettings {
            stride: 0,
            cell: 8,
            weight: WindowWeight::Hann,
            mode: MapMode::Dense,
            tile: 24,
            halo: 32,
            batch: 64,
            overlay_width: 1600,
            fov: FovSettings::default(),
        }
    }
}

/// A run's best model with what maps need.
pub struct RunModel {
    pub run: PathBuf,
    pub vs: nn::VarStore,
    pub model: FoveaModel,
    pub info: ModelInfo,
    pub thresholds: [f64; 4],
    pub device: Device,
}

impl RunModel {
    pub fn load(run: &Path, device: Device) -> Result<RunModel> {
        let (vs, mut model, info, _) = load_run_model(run, device)?;
        model.use_channels_last(&vs);
        let thresholds = RunDir::new(run).read_thresholds()?.to_array();
        Ok(RunModel {
            run: run.to_path_buf(),
            vs,
            model,
            info,
            thresholds,
            device,
        })
    }

    fn dense_settings(&self, s: &MapSettings) -> DenseSettings {
        DenseSettings {
            patch: self.info.patch_size as u32,
            stride: if s.stride == 0 {
                self.model.trunk.feature_stride()
            } else {
                s.stride
            },
            tile: s.tile,
            halo: s.halo,
            batch: s.batch,
            mean: self.info.mean,
            std: self.info.std,
        }
    }

    /// Window probabilities of a photograph in the chosen mode.
    pub fn windows(
        &self,
        rgb: &RgbImage,
        fov: Option<&FovGrid>,
        s: &MapSettings,
        mode: MapMode,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<WindowProbs> {
        let d = self.dense_settings(s);
        // Fused variants see the whole photograph through the global encoder.
        let g = if self.model.needs_context() {
            Some(GlobalContext::photograph(&self.model, rgb, self.device)?)
        } else {
            None
        };
        let g = g.as_ref();
        // The patch model sees photographs as its training store's patches were cut: after
        // the store's enhancement (the global encoder sees the photograph as it is).
        let enhanced;
        let rgb = match self.info.enhance {
            fovea_data::Enhance::None => rgb,
            e => {
                enhanced = match fov {
                    Some(f) => e.apply(rgb, f),
                    None => e.apply(rgb, &fov_grid(rgb, &s.fov)),
                };
                &enhanced
            }
        };
        match mode {
            MapMode::Dense => {
                dense_window_probs(&self.model, g, rgb, fov, &d, self.device, progress)
            }
            MapMode::Windowed => {
                windowed_probs(&self.model, g, rgb, fov, &d, self.device, progress)
            }
        }
    }
}

/// The maps of one photograph.
pub struct ImageMaps {
    pub heatmap: Heatmap,
    pub summary: MapSummary,
    pub windows: WindowProbs,
}

/// Maps one photograph (`image` is only recorded in the summary).
pub fn map_photograph(
    rm: &RunModel,
    rgb: &RgbImage,
    image_id: &str,
    image: &Path,
    s: &MapSettings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImageMaps> {
    let t0 = Instant::now();
    let fov = fov_grid(rgb, &s.fov);
    let windows = rm.windows(rgb, Some(&fov), s, s.mode, progress)?;
    let grid = &windows.grid;
    let mut heatmap = blend(grid, &windows.probs, s.cell, s.weight)?;
    heatmap.zero_outside(&fov)?;
    let probs = image_probability(grid, &windows.probs, Some(&fov))?;
    let regions = regions(&heatmap, rm.thresholds);
    let summary = MapSummary {
        image_id: image_id.to_string(),
        image: image.display().to_string(),
        width: rgb.width(),
        height: rgb.height(),
        stride: s.cell,
        window_stride: grid.stride,
        patch_size: grid.patch,
        window_weight: Some(s.weight),
        model: rm.run.display().to_string(),
        thresholds: by_lesion(rm.thresholds),
        image_probability: by_lesion(probs.map(|p| p as f64)),
        present: presence(probs, rm.thresholds),
        lesion_counts: lesion_counts(&regions),
        regions,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(ImageMaps {
        heatmap,
        summary,
        windows,
    })
}

/// Writes `dir/heatmap.npy`, `dir/overlay.png` and `dir/summary.json` (each atomically;
/// summary.json last, so its presence marks the folder whole).
pub fn write_maps(
    dir: &Path,
    heatmap: &Heatmap,
    summary: &MapSummary,
    rgb: &RgbImage,
    thresholds: [f64; 4],
    overlay_width: u32,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
    heatmap.write_npy(dir.join("heatmap.npy"))?;
    let ov = overlay(rgb, heatmap, thresholds, overlay_width);
    write_png_atomic(&ov, dir.join("overlay.png"))?;
    Ok(summary.write_atomic(dir.join("summary.json"))?)
}

/// One photograph's maps from any kind of run.
pub struct Mapped {
    /// At the cell side asked for (`MAPS/<id>/heatmap.npy`).
    pub heatmap: Heatmap,
    pub summary: MapSummary,
    /// A finer map than `heatmap` that `eval-maps` scores pixels from: a segmentation
    /// model's full-resolution output when the cell is larger than 1. `None`: `heatmap`
    /// itself is scored.
    pub full: Option<Heatmap>,
}

impl Mapped {
    /// The map pixels are scored from.
    pub fn scored(&self) -> &Heatmap {
        self.full.as_ref().unwrap_or(&self.heatmap)
    }
}

/// A trained run that maps photographs: `predict` and `eval-maps` take either kind.
pub trait Mapper {
    /// The run folder.
    fn run(&self) -> &Path;
    /// Per-lesion thresholds (tuned on validation) regions and presence are decided at.
    fn thresholds(&self) -> [f64; 4];
    /// Whether `eval-maps` scores pixels from a full-resolution map whatever the cell (a
    /// segmentation model), rather than each pixel taking its heatmap cell's value.
    fn full_resolution(&self) -> bool {
        false
    }
    /// Maps one photograph (`image` is only recorded in the summary); `progress(done,
    /// total)` as tiles are done.
    fn map(
        &self,
        rgb: &RgbImage,
        image_id: &str,
        image: &Path,
        s: &MapSettings,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Mapped>;
}

impl Mapper for RunModel {
    fn run(&self) -> &Path {
        &self.run
    }

    fn thresholds(&self) -> [f64; 4] {
        self.thresholds
    }

    fn map(
        &self,
        rgb: &RgbImage,
        image_id: &str,
        image: &Path,
        s: &MapSettings,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Mapped> {
        let m = map_photograph(self, rgb, image_id, image, s, progress)?;
        Ok(Mapped {
            heatmap: m.heatmap,
            summary: m.summary,
            full: None,
        })
    }
}

/// The run's best model as a [`Mapper`]: a segmentation run's U-Net
/// (`task = "segmentation"` in `model/model.toml`), otherwise the patch classifier (whose
/// loader names what is wrong with a run that is neither).
pub fn load_mapper(run: &Path, device: Device) -> Result<Box<dyn Mapper>> {
    match crate::segmentation::model::run_task(run) {
        Ok(crate::segmentation::TrainTask::Segmentation) => Ok(Box::new(
            crate::segmentation::maps::SegMapper::load(run, device)?,
        )),
        _ => Ok(Box::new(RunModel::load(run, device)?)),
    }
}

/// Image id of a photograph's path: its file name without extension.
pub fn image_id_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Callbacks of `eval-maps`.
pub trait MapsObserver {
    fn image_start(&self, _k: usize, _n: usize, _id: &str) {}
    fn tile(&self, _done: usize, _total: usize) {}
    fn image_done(&self, _id: &str, _seconds: f64) {}
}

/// The image ids of `split`: from the run's patch store (the split the model was trained
/// and validated with) when it can be opened, else from the dataset's own split.
fn split_images(run: &Path, dataset: &Dataset, split: Split) -> Result<BTreeSet<String>> {
    let cfg = RunDir::new(run).config();
    if let Ok(settings) = TrainSettings::from_toml_file(&cfg) {
        if let Some(store_dir) = settings.store {
            if let Ok(store) = Store::open(&store_dir) {
                return Ok(store
                    .rows
                    .iter()
                    .filter(|r| r.split == split)
                    .map(|r| r.image_id.clone())
                    .collect());
            }
        }
    }
    let ids: BTreeSet<String> = dataset
        .records
        .iter()
        .filter(|r| r.split == Some(split))
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        return Err(NnError::input(
            &dataset.root,
            format!("no image of split '{split}' (the run's patch store could not be opened and the dataset names no split)"),
        ));
    }
    Ok(ids)
}

/// Pixel-level scoring of a run's maps on the photographs of `split` of `dataset`
/// (CONTRACTS 5): writes `out/pixel_metrics.json` and each image's maps under
/// `out/maps/<image_id>/`. With `maps`, heatmaps already there (`MAPS/<id>/heatmap.npy`
/// with its summary.json) are scored instead of recomputed.
pub fn eval_maps(
    rm: &dyn Mapper,
    dataset_dir: &Path,
    split: Split,
    out: &Path,
    maps: Option<&Path>,
    s: &MapSettings,
    observer: &dyn MapsObserver,
) -> Result<PixelMetrics> {
    let dataset = Dataset::open(dataset_dir)?;
    let wanted = split_images(rm.run(), &dataset, split)?;
    let records: Vec<_> = dataset
        .records
        .iter()
        .filter(|r| wanted.contains(&r.id))
        .collect();
    if records.is_empty() {
        return Err(NnError::input(
            dataset_dir,
            format!(
                "none of the {} images of split '{split}' is in this dataset",
                wanted.len()
            ),
        ));
    }
    let mut scorer = PixelScorer::new(DEFAULT_BINS)?;
    let maps_out = out.join("maps");
    for (k, rec) in records.iter().enumerate() {
        observer.image_start(k, records.len(), &rec.id);
        let t0 = Instant::now();
        let sample = fovea_data::io::load_sample(rec)?;
        let given = maps
            .map(|m| m.join(&rec.id))
            .filter(|d| d.join("summary.json").exists());
        let (heatmap, probs) = match given {
            Some(dir) => {
                let sum = MapSummary::read(dir.join("summary.json"))?;
                let hm =
                    Heatmap::read_npy(dir.join("heatmap.npy"), sum.width, sum.height, sum.stride)?;
                (hm, sum.probabilities())
            }
            None => {
                let m = rm.map(&sample.rgb, &rec.id, &rec.image, s, &mut |d, t| {
                    observer.tile(d, t)
                })?;
                write_maps(
                    &maps_out.join(&rec.id),
                    &m.heatmap,
                    &m.summary,
                    &sample.rgb,
                    rm.thresholds(),
                    s.overlay_width,
                )?;
                let p = m.summary.probabilities();
                // A segmentation model's pixels are scored at full resolution.
                (m.full.unwrap_or(m.heatmap), p)
            }
        };
        scorer.add_image(&rec.id, &heatmap, &sample.masks, probs)?;
        observer.image_done(&rec.id, t0.elapsed().as_secs_f64());
    }
    let metrics = scorer.finish(rm.thresholds());
    std::fs::create_dir_all(out).map_err(|e| NnError::io(out, e))?;
    metrics.write_atomic(out.join("pixel_metrics.json"))?;
    Ok(metrics)
}
