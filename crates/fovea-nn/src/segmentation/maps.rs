//! Lesion maps of whole photographs from a segmentation run (`fovea predict` and
//! `fovea eval-maps`, CONTRACTS 5): the U-Net's probabilities of every pixel at the
//! photograph's full resolution ([`super::infer::UNetPass`], tiled with overlap
//! blending, tiles without a field-of-view pixel skipped), then
//! - `heatmap.npy` at the cell side asked for (`--cell`), each cell the highest
//!   probability of its pixels, so that a microaneurysm a few pixels wide keeps its peak
//!   at any cell side; with `--cell 1` it is the model's output itself;
//! - regions (connected cells at or above the run's tuned thresholds) on that heatmap,
//!   lesion counts, and the image-level probability of each lesion: the highest pixel
//!   probability inside the field of view (a lesion is present when a region is);
//! - for `eval-maps`, pixels scored from the full-resolution output whatever the cell
//!   ([`crate::maps::Mapped::full`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use fovea_maps::{by_lesion, lesion_counts, presence, regions, Heatmap, MapSummary};
use fovea_run::RunDir;
use image::RgbImage;
use tch::Device;

use super::infer::UNetPass;
use super::model::{load_seg_model, SegModel};
use crate::amp::Amp;
use crate::error::Result;
use crate::maps::{MapSettings, Mapped, Mapper};

/// A segmentation run's best model with what maps need.
pub struct SegMapper {
    pub run: PathBuf,
    pub model: SegModel,
    pub thresholds: [f64; 4],
    pub device: Device,
    /// Variables and tiles laid out channels-last (on the CPU: about 30 % faster for the
    /// small U-Net on a 2-core Xeon, bench/README.md).
    pub channels_last: bool,
}

impl SegMapper {
    /// Loads `RUN/model/` and `RUN/thresholds.json`; a patch classifier's run is refused
    /// naming it.
    pub fn load(run: &Path, device: Device) -> Result<SegMapper> {
        let model = load_seg_model(run, device)?;
        let thresholds = RunDir::new(run).read_thresholds()?.to_array();
        let channels_last = device == Device::Cpu;
        if channels_last {
            crate::layout::vars_channels_last(&model.vs);
        }
        Ok(SegMapper {
            run: run.to_path_buf(),
            model,
            thresholds,
            device,
            channels_last,
        })
    }
}

impl Mapper for SegMapper {
    fn run(&self) -> &Path {
        &self.run
    }

    fn thresholds(&self) -> [f64; 4] {
        self.thresholds
    }

    fn full_resolution(&self) -> bool {
        true
    }

    fn map(
        &self,
        rgb: &RgbImage,
        image_id: &str,
        image: &Path,
        s: &MapSettings,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Mapped> {
        let t0 = Instant::now();
        let info = &self.model.info;
        // Float16 autocast on a GPU (as seg-gpu.toml trains), float32 on the CPU.
        let amp = if self.device.is_cuda() {
            Amp::Fp16
        } else {
            Amp::Off
        };
        let seg = UNetPass {
            net: &self.model.net,
            device: self.device,
            amp,
            channels_last: self.channels_last,
        }
        .map(rgb, &info.preprocess, &info.infer, progress)?;
        let (width, height) = (seg.width, seg.height);
        let full = Heatmap::from_data(width, height, 1, seg.probs)?;
        let probs: [f32; 4] =
            std::array::from_fn(|c| full.lesion(c).iter().fold(0f32, |a, &v| a.max(v)));
        let (heatmap, full) = if s.cell == 1 {
            (full, None)
        } else {
            (full.max_pooled(s.cell)?, Some(full))
        };
        let regions = regions(&heatmap, self.thresholds);
        let tile = (info.infer.tile as f64 / f64::from(info.preprocess.scale)).round() as u32;
        let summary = MapSummary {
            image_id: image_id.to_string(),
            image: image.display().to_string(),
            width,
            height,
            stride: s.cell,
            window_stride: 1,
            patch_size: tile,
            window_weight: None,
            model: self.run.display().to_string(),
            thresholds: by_lesion(self.thresholds),
            image_probability: by_lesion(probs.map(f64::from)),
            present: presence(probs, self.thresholds),
            lesion_counts: lesion_counts(&regions),
            regions,
            seconds: t0.elapsed().as_secs_f64(),
        };
        Ok(Mapped {
            heatmap,
            summary,
            full,
        })
    }
}
