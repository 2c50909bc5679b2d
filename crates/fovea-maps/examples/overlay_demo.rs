//! Draws `overlay.png` for the first photograph of a manifest dataset (e.g. one written by
//! `fovea synth`), with a stand-in for the network: each 64 x 64 window (stride 32) scores
//! `1 - exp(-lesion pixels in the window / k)` from the masks. The scores then go through
//! the real pipeline: Hann blending at cell 8, field-of-view masking, regions, overlay.
//!
//! `cargo run -p fovea-maps --example overlay_demo -- DATASET OUT.png [MAX_WIDTH]`

use std::error::Error;
use std::path::Path;

use fovea_data::fov::{fov_grid, FovSettings};
use fovea_data::{count_in_rect, read_mask, read_rgb};
use fovea_maps::{blend, overlay, regions, write_png_atomic, WindowGrid, WindowWeight};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dataset), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: overlay_demo DATASET OUT.png [MAX_WIDTH]".into());
    };
    let max_width: u32 = args.get(2).map_or(Ok(1024), |s| s.parse())?;
    let dir = Path::new(dataset);
    let manifest = std::fs::read_to_string(dir.join("manifest.csv"))?;
    let row: Vec<&str> = manifest
        .lines()
        .nth(1)
        .ok_or("manifest.csv has no photograph")?
        .split(',')
        .collect();
    let rgb = read_rgb(&dir.join(row[1]))?;
    let (w, h) = rgb.dimensions();
    let mut masks = Vec::new();
    for k in 0..4 {
        masks.push(match row.get(2 + k) {
            Some(p) if !p.is_empty() => read_mask(&dir.join(p))?,
            _ => image::GrayImage::new(w, h),
        });
    }
    let grid = WindowGrid::new(w, h, 64, 32)?;
    let scale = [3.0, 40.0, 40.0, 60.0];
    let scores: Vec<[f32; 4]> = (0..grid.len())
        .map(|k| {
            let (x, y) = grid.origin(k / grid.cols, k % grid.cols);
            std::array::from_fn(|c| {
                let n = count_in_rect(&masks[c], x, y, 64, 64) as f32;
                1.0 - (-n / scale[c]).exp()
            })
        })
        .collect();
    let mut map = blend(&grid, &scores, 8, WindowWeight::Hann)?;
    map.zero_outside(&fov_grid(&rgb, &FovSettings::default()))?;
    let thresholds = [0.5; 4];
    for r in regions(&map, thresholds) {
        println!(
            "{} at ({}, {}) {}x{} peak {:.2}",
            r.lesion, r.x, r.y, r.width, r.height, r.peak
        );
    }
    write_png_atomic(&overlay(&rgb, &map, thresholds, max_width), out)?;
    println!("wrote {out}");
    Ok(())
}
