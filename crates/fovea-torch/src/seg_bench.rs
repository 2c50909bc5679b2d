//! `fovea bench seg-train` and `fovea bench seg-map`: the segmentation U-Net's training
//! step on random data (against `bench/seg_train_reference.py`, see `bench/seg.sh`) and
//! one whole photograph mapped as `fovea predict` maps it (time and peak resident memory).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use fovea_nn::device::DeviceChoice;
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::models::unet::{SegEncoder, UNet};
use tch::nn;
use tch::Device;

#[derive(clap::Args)]
pub struct SegTrainArgs {
    /// Encoder: small (the CPU-sized default), resnet18 or resnet34.
    #[arg(long, value_enum, default_value_t = SegEncoder::Small)]
    model: SegEncoder,
    /// Tile side in pixels (a multiple of the encoder's stride: 16 small, 32 ResNets).
    #[arg(long, default_value_t = 256)]
    size: i64,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch_size: i64,
    /// Timed steps (after 2 warm-up steps); the median is reported.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Model and input laid out channels-last (NHWC).
    #[arg(long)]
    channels_last: bool,
}

#[derive(clap::Args)]
pub struct SegMapArgs {
    /// A segmentation run: its model maps the photograph exactly as `fovea predict` does
    /// (then --model, --tile, --overlap, --enhance and --channels-last are the run's).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Encoder of a randomly initialised U-Net, without --run (the architecture sets the
    /// time, not the weights).
    #[arg(long, value_enum, default_value_t = SegEncoder::Small)]
    model: SegEncoder,
    /// The photograph to map; without it a random photograph of --size (whose field of
    /// view is the whole frame: no tile is skipped).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Size of the random photograph, WxH.
    #[arg(long, default_value = "4288x2848")]
    size: String,
    /// Tile side in pixels, without --run.
    #[arg(long, default_value_t = 512)]
    tile: u32,
    /// Pixels shared by neighbouring tiles, without --run.
    #[arg(long, default_value_t = 64)]
    overlap: u32,
    /// The model's scale, without --run: the photograph is resized by it before tiling and
    /// the map back to full resolution after (--tile and --overlap are at this scale).
    #[arg(long, default_value_t = 1.0)]
    scale: f32,
    /// Enhancement before tiling, without --run (configs/seg-cpu.toml's store uses
    /// local-contrast).
    #[arg(long, value_enum, default_value_t = fovea_data::Enhance::LocalContrast)]
    enhance: fovea_data::Enhance,
    /// Model and tiles laid out channels-last (NHWC), without --run (a run's model is
    /// channels-last on the CPU, as `fovea predict` does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    channels_last: bool,
    /// Heatmap cell side of the maps made from the probabilities.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    cell: u32,
}

pub fn seg_train(a: SegTrainArgs) -> Result<()> {
    let enc = a.model;
    let device = a.device.resolve().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        a.batch_size > 0 && a.steps > 0 && a.size > 0 && a.size % enc.stride() == 0,
        "--batch-size and --steps must be positive, --size a positive multiple of {} for {}",
        enc.stride(),
        enc.as_str()
    );
    let (t, params) = fovea_nn::bench::seg_train_steps(
        enc,
        a.size,
        a.batch_size,
        a.steps,
        2,
        device,
        a.channels_last,
    );
    println!(
        "seg-train unet-{} {}x{}{} batch {} on {device:?}, {} threads: median step {:.4} s over {} steps",
        enc.as_str(),
        a.size,
        a.size,
        if a.channels_last { " channels-last" } else { "" },
        a.batch_size,
        tch::get_num_threads(),
        t.median_step_s,
        t.steps
    );
    println!("parameters {params}");
    println!("samples_per_s {:.3}", t.samples_per_s);
    Ok(())
}

/// An RGB photograph as an ImageNet-normalised `[3, H, W]` float tensor.
fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("--size '{s}' is not WxH"))?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    anyhow::ensure!(w > 0 && h > 0, "--size '{s}': both sides must be positive");
    Ok((w, h))
}

/// One whole photograph mapped through the segmentation model as `fovea predict` maps it
/// ([`fovea_nn::maps::Mapper::map`]): field of view, enhancement, tiles with overlap
/// blending (tiles without a field-of-view pixel skipped), the heatmap at --cell, regions
/// and summary; on the CPU. Prints the time of decoding and of mapping, the tiles run,
/// and the peak resident memory; ends with `seconds X` (decoding + mapping).
pub fn seg_map(a: SegMapArgs) -> Result<()> {
    use fovea_nn::maps::{MapSettings, Mapper};
    use fovea_nn::segmentation::maps::SegMapper;
    use fovea_nn::segmentation::{InferSettings, Preprocess, SegModel, SegModelInfo, TrainTask};
    let t0 = Instant::now();
    let rgb = match &a.image {
        Some(p) => fovea_data::read_rgb(p).map_err(anyhow::Error::msg)?,
        None => {
            let (w, h) = parse_size(&a.size)?;
            let mut img = image::RgbImage::new(w, h);
            for (i, px) in img.pixels_mut().enumerate() {
                let v = (i as u32).wrapping_mul(2_654_435_761) >> 8;
                // Red above the field-of-view threshold everywhere: all of it is retina.
                *px = image::Rgb([64 + (v as u8 >> 2), (v >> 8) as u8, (v >> 16) as u8]);
            }
            img
        }
    };
    let decode_s = t0.elapsed().as_secs_f64();
    let mapper = match &a.run {
        Some(run) => SegMapper::load(run, Device::Cpu).map_err(anyhow::Error::msg)?,
        None => {
            anyhow::ensure!(
                a.overlap < a.tile,
                "--overlap must be less than --tile ({} >= {})",
                a.overlap,
                a.tile
            );
            anyhow::ensure!(
                a.scale > 0.0 && a.scale <= 1.0,
                "--scale must be in (0, 1], not {}",
                a.scale
            );
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = UNet::new(&vs.root(), a.model);
            if a.channels_last {
                fovea_nn::layout::vars_channels_last(&vs);
            }
            let info = SegModelInfo {
                task: TrainTask::Segmentation,
                encoder: a.model,
                num_classes: 4,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
                tile_side: a.tile,
                preprocess: Preprocess {
                    scale: a.scale,
                    enhance: a.enhance,
                    fov: Default::default(),
                },
                infer: InferSettings {
                    tile: a.tile,
                    overlap: a.overlap,
                    batch: 1,
                },
                epoch: 0,
                val_mean_aupr: 0.0,
                val_aupr: [0.0; 4],
            };
            SegMapper {
                run: PathBuf::from("(untrained)"),
                model: SegModel {
                    vs,
                    net,
                    info,
                    dir: PathBuf::new(),
                },
                thresholds: [0.5; 4],
                device: Device::Cpu,
                channels_last: a.channels_last,
            }
        }
    };
    let info = &mapper.model.info;
    let s = MapSettings {
        cell: a.cell,
        ..Default::default()
    };
    // Warm-up (allocator, kernels) on one tile's worth of the photograph.
    let side = info.infer.tile.min(rgb.width()).min(rgb.height());
    let crop = image::imageops::crop_imm(&rgb, 0, 0, side, side).to_image();
    let _ = mapper.map(&crop, "warm-up", Path::new("warm-up"), &s, &mut |_, _| {});
    let t1 = Instant::now();
    let mut tiles = 0;
    let m = mapper
        .map(&rgb, "bench", Path::new("bench"), &s, &mut |_, t| tiles = t)
        .map_err(anyhow::Error::msg)?;
    let map_s = t1.elapsed().as_secs_f64();
    let (w, h) = rgb.dimensions();
    // Tiles are cut from the photograph at the model's scale.
    let (sw, sh) = info.preprocess.scaled_size(w, h);
    let t = info.infer.tile as usize;
    let step = (info.infer.tile - info.infer.overlap) as usize;
    let along = |n: usize| {
        if n <= t {
            1
        } else {
            (n - t).div_ceil(step) + 1
        }
    };
    let all = along(sw as usize) * along(sh as usize);
    println!(
        "seg-map unet-{} {w}x{h} photograph{}, {tiles} of {all} tiles of {t}x{t} at scale {} (overlap {}; the others hold no field of view), enhancement {}{}, {} threads: {} {decode_s:.2} s, mapping {map_s:.2} s ({} regions)",
        info.encoder.as_str(),
        a.image
            .as_ref()
            .map(|p| format!(" {}", p.display()))
            .unwrap_or_else(|| " (random)".into()),
        info.preprocess.scale,
        info.infer.overlap,
        info.preprocess.enhance.name(),
        if mapper.channels_last {
            ", channels-last"
        } else {
            ""
        },
        tch::get_num_threads(),
        if a.image.is_some() {
            "decoding"
        } else {
            "making it"
        },
        m.summary.regions.len(),
    );
    println!("peak_rss_mib {:.0}", crate::maps_cmd::peak_rss_mib());
    println!("seconds {:.3}", decode_s + map_s);
    Ok(())
}
