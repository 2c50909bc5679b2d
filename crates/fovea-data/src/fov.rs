//! The field of view (FOV): the retina's disc in a fundus photograph, as opposed to the
//! black surround outside the camera's aperture.
//!
//! Method (simple and robust to the dim rim of real photographs):
//! 1. average the red channel (the brightest channel of a fundus photograph) over
//!    `block` x `block` cells, which removes JPEG noise in the surround;
//! 2. cells brighter than `red_threshold` are candidate retina;
//! 3. the surround is the set of dark cells connected to the photograph's border (flood
//!    fill); everything else is FOV, so dark lesions, vessels or a dark macula inside the
//!    retina never make holes in it;
//! 4. the cell mask is expanded back to full resolution.
//!
//! The flood fill is hand-written (a few lines over a cell grid); imageproc has no
//! border-connected fill.

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// Settings of the FOV detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FovSettings {
    /// A cell whose mean red value exceeds this is candidate retina (0-255).
    pub red_threshold: f32,
    /// Cell size in pixels for averaging (1 = per pixel).
    pub block: u32,
}

impl Default for FovSettings {
    fn default() -> Self {
        FovSettings {
            red_threshold: 20.0,
            block: 4,
        }
    }
}

/// Computes the FOV mask of a photograph: 1 inside the retina, 0 in the surround.
pub fn field_of_view(rgb: &RgbImage, settings: &FovSettings) -> GrayImage {
    let (w, h) = rgb.dimensions();
    let block = settings.block.max(1);
    let (cw, ch) = (w.div_ceil(block) as usize, h.div_ceil(block) as usize);
    if w == 0 || h == 0 {
        return GrayImage::new(w, h);
    }
    // 1. Sum of red per cell, then mean.
    let mut sums = vec![0u32; cw * ch];
    let mut counts = vec![0u32; cw * ch];
    let raw = rgb.as_raw();
    for y in 0..h as usize {
        let row = &raw[y * w as usize * 3..(y + 1) * w as usize * 3];
        let cy = y / block as usize;
        let srow = &mut sums[cy * cw..(cy + 1) * cw];
        let crow = &mut counts[cy * cw..(cy + 1) * cw];
        for (x, px) in row.chunks_exact(3).enumerate() {
            let cx = x / block as usize;
            srow[cx] += px[0] as u32;
            crow[cx] += 1;
        }
    }
    // 2. Candidate retina cells.
    let bright: Vec<bool> = sums
        .iter()
        .zip(&counts)
        .map(|(&s, &c)| s as f32 > settings.red_threshold * c as f32)
        .collect();
    // 3. Surround: dark cells 4-connected to the border.
    let mut surround = vec![false; cw * ch];
    let mut stack: Vec<usize> = Vec::new();
    let push = |i: usize, surround: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if !bright[i] && !surround[i] {
            surround[i] = true;
            stack.push(i);
        }
    };
    for cx in 0..cw {
        push(cx, &mut surround, &mut stack);
        push((ch - 1) * cw + cx, &mut surround, &mut stack);
    }
    for cy in 0..ch {
        push(cy * cw, &mut surround, &mut stack);
        push(cy * cw + cw - 1, &mut surround, &mut stack);
    }
    while let Some(i) = stack.pop() {
        let (cx, cy) = (i % cw, i / cw);
        if cx > 0 {
            push(i - 1, &mut surround, &mut stack);
        }
        if cx + 1 < cw {
            push(i + 1, &mut surround, &mut stack);
        }
        if cy > 0 {
            push(i - cw, &mut surround, &mut stack);
        }
        if cy + 1 < ch {
            push(i + cw, &mut surround, &mut stack);
        }
    }
    // 4. Expand to full resolution.
    let mut out = GrayImage::new(w, h);
    let buf: &mut [u8] = &mut out;
    for y in 0..h as usize {
        let cy = y / block as usize;
        let row = &mut buf[y * w as usize..(y + 1) * w as usize];
        for (x, v) in row.iter_mut().enumerate() {
            *v = u8::from(!surround[cy * cw + x / block as usize]);
        }
    }
    out
}

/// Number of FOV pixels in the rectangle `[x, x+w) x [y, y+h)` (clipped to the mask).
pub fn count_in_rect(mask: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> u64 {
    let (mw, mh) = mask.dimensions();
    let (x1, y1) = ((x.saturating_add(w)).min(mw), (y.saturating_add(h)).min(mh));
    if x >= x1 || y >= y1 {
        return 0;
    }
    let raw = mask.as_raw();
    let mut n = 0u64;
    for yy in y..y1 {
        let start = yy as usize * mw as usize;
        let row = &raw[start + x as usize..start + x1 as usize];
        n += row.iter().map(|&v| u64::from(v != 0)).sum::<u64>();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn disc(w: u32, h: u32, r: f32, level: u8) -> RgbImage {
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        RgbImage::from_fn(w, h, |x, y| {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            if d < r {
                Rgb([level, 60, 30])
            } else {
                Rgb([3, 2, 1])
            }
        })
    }

    #[test]
    fn disc_is_found_and_surround_is_not() {
        let img = disc(64, 48, 20.0, 180);
        let fov = field_of_view(
            &img,
            &FovSettings {
                block: 1,
                ..Default::default()
            },
        );
        assert_eq!(fov.get_pixel(32, 24).0[0], 1);
        assert_eq!(fov.get_pixel(0, 0).0[0], 0);
        assert_eq!(fov.get_pixel(63, 47).0[0], 0);
        let n = count_in_rect(&fov, 0, 0, 64, 48) as f32;
        let area = std::f32::consts::PI * 20.0 * 20.0;
        assert!((n - area).abs() / area < 0.05, "{n} vs {area}");
    }

    #[test]
    fn dark_lesion_inside_the_retina_is_not_a_hole() {
        let mut img = disc(64, 48, 20.0, 180);
        for y in 20..28 {
            for x in 28..36 {
                img.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
        let fov = field_of_view(
            &img,
            &FovSettings {
                block: 1,
                ..Default::default()
            },
        );
        assert_eq!(fov.get_pixel(32, 24).0[0], 1);
    }

    #[test]
    fn dim_rim_counts_as_retina() {
        // A rim at red 35 (dim edge of a real photograph) is above the default threshold.
        let img = RgbImage::from_fn(40, 40, |x, _| {
            if x < 8 {
                Rgb([2, 2, 2])
            } else if x < 12 {
                Rgb([35, 10, 5])
            } else {
                Rgb([170, 80, 40])
            }
        });
        let fov = field_of_view(&img, &FovSettings::default());
        assert_eq!(count_in_rect(&fov, 0, 0, 8, 40), 0);
        assert_eq!(count_in_rect(&fov, 8, 0, 32, 40), 32 * 40);
    }

    #[test]
    fn count_in_rect_clips() {
        let mut m = GrayImage::new(4, 4);
        for (i, p) in m.pixels_mut().enumerate() {
            p.0[0] = (i % 2) as u8;
        }
        assert_eq!(count_in_rect(&m, 0, 0, 4, 4), 8);
        assert_eq!(count_in_rect(&m, 2, 2, 10, 10), 2);
        assert_eq!(count_in_rect(&m, 5, 5, 1, 1), 0);
    }
}
