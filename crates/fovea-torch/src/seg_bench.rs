//! `fovea bench seg-train` and `fovea bench seg-map`: the segmentation U-Net's training
//! step on random data (against `bench/seg_train_reference.py`, see `bench/seg.sh`) and
//! its tiled forward pass over one whole photograph (time and peak resident memory).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use fovea_nn::device::DeviceChoice;
use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use fovea_nn::models::unet::{SegEncoder, UNet};
use tch::nn;
use tch::{Device, Kind, Tensor};

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
    /// Encoder: small, resnet18 or resnet34 (randomly initialised: the architecture sets
    /// the time, not the weights).
    #[arg(long, value_enum, default_value_t = SegEncoder::Small)]
    model: SegEncoder,
    /// The photograph to map; without it a random photograph of --size.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Size of the random photograph, WxH.
    #[arg(long, default_value = "4288x2848")]
    size: String,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512)]
    tile: i64,
    /// Model and tiles laid out channels-last (NHWC).
    #[arg(long)]
    channels_last: bool,
}

/// `fovea bench seg-train`: prints the parameter count and ends with `samples_per_s X`.
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
fn normalised(rgb: &image::RgbImage) -> Tensor {
    let (w, h) = (rgb.width() as i64, rgb.height() as i64);
    let x = Tensor::from_slice(rgb.as_raw())
        .view([h, w, 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        / 255.0;
    let mean = Tensor::from_slice(&IMAGENET_MEAN).view([3, 1, 1]);
    let std = Tensor::from_slice(&IMAGENET_STD).view([3, 1, 1]);
    ((x - mean) / std).contiguous()
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("--size '{s}' is not WxH"))?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    anyhow::ensure!(w > 0 && h > 0, "--size '{s}': both sides must be positive");
    Ok((w, h))
}

/// `fovea bench seg-map`: one photograph through the U-Net's forward pass, tile by tile
/// (`fovea_nn::bench::seg_map_tiled`), on the CPU; prints the time of each part and the
/// peak resident memory, and ends with `seconds X` (normalisation + tiles).
pub fn seg_map(a: SegMapArgs) -> Result<()> {
    let enc = a.model;
    anyhow::ensure!(a.tile > 0, "--tile must be positive");
    let t0 = Instant::now();
    let rgb = match &a.image {
        Some(p) => fovea_data::read_rgb(p).map_err(anyhow::Error::msg)?,
        None => {
            let (w, h) = parse_size(&a.size)?;
            let mut img = image::RgbImage::new(w, h);
            for (i, px) in img.pixels_mut().enumerate() {
                let v = (i as u32).wrapping_mul(2_654_435_761) >> 8;
                *px = image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8]);
            }
            img
        }
    };
    let decode_s = t0.elapsed().as_secs_f64();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = UNet::new(&vs.root(), enc);
    if a.channels_last {
        fovea_nn::layout::vars_channels_last(&vs);
    }
    // Warm-up (allocator, kernels): one tile.
    let warm = Tensor::randn([3, a.tile, a.tile], (Kind::Float, Device::Cpu));
    let _ = fovea_nn::bench::seg_map_tiled(&model, &warm, a.tile, a.channels_last);
    let t1 = Instant::now();
    let x = normalised(&rgb);
    let norm_s = t1.elapsed().as_secs_f64();
    let probs = fovea_nn::bench::seg_map_tiled(&model, &x, a.tile, a.channels_last);
    let total_s = t1.elapsed().as_secs_f64();
    let (h, w) = (rgb.height() as i64, rgb.width() as i64);
    let tiles = fovea_nn::bench::tile_starts(h, a.tile).len()
        * fovea_nn::bench::tile_starts(w, a.tile).len();
    println!(
        "seg-map unet-{} {w}x{h} photograph{}, {tiles} tiles of {t}x{t}{}, {} threads: \
         {} {decode_s:.2} s, normalisation {norm_s:.2} s, tiles {:.2} s",
        enc.as_str(),
        a.image
            .as_ref()
            .map(|p| format!(" {}", p.display()))
            .unwrap_or_else(|| " (random)".into()),
        if a.channels_last {
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
        total_s - norm_s,
        t = a.tile,
    );
    println!(
        "probabilities [4, {h}, {w}], mean {:.4}",
        probs.mean(Kind::Float).double_value(&[])
    );
    println!("peak_rss_mib {:.0}", crate::maps_cmd::peak_rss_mib());
    println!("seconds {total_s:.3}");
    Ok(())
}
