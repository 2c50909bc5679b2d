//! The overlay's legend: a semi-opaque dark panel in the top-left corner with, per lesion,
//! a swatch of its colour, its code and name, and the threshold it is drawn from. Text is
//! set in the embedded [`crate::FONT`], sized from the image width. Codes, names and
//! colours are the lesion list of `fovea_data::lesion`.

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use fovea_data::{LESION_CODES, LESION_NAMES, NUM_LESIONS, OVERLAY_COLOURS};

/// How much of the photograph shows through the legend panel.
const PANEL_SHOW_THROUGH: f32 = 0.3;

/// Where the legend was drawn, for tests: the panel and each swatch `(x, y, side)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegendLayout {
    /// Panel `(x, y, width, height)`.
    pub panel: (u32, u32, u32, u32),
    /// Swatch top-left corner and side, per lesion.
    pub swatches: [(u32, u32, u32); NUM_LESIONS],
}

/// The legend's lines: `MA microaneurysms  p ≥ 0.50`.
fn lines(thresholds: [f64; NUM_LESIONS]) -> [String; NUM_LESIONS] {
    std::array::from_fn(|c| {
        format!(
            "{} {}   p \u{2265} {:.2}",
            LESION_CODES[c], LESION_NAMES[c], thresholds[c]
        )
    })
}

/// Draws the legend onto `img` and returns where. Draws nothing (and returns `None`) if the
/// embedded font cannot be parsed, which would be a build defect, not a data problem.
pub fn draw_legend(img: &mut RgbImage, thresholds: [f64; NUM_LESIONS]) -> Option<LegendLayout> {
    let font = FontRef::try_from_slice(crate::FONT).ok()?;
    let (w, h) = img.dimensions();
    // Text height 1/64 of the width (16 px on a 1024 px overlay), within 11..40 px.
    let px = (w as f32 / 64.0).clamp(11.0, 40.0);
    let scale = PxScale::from(px);
    let margin = (px * 0.6).round() as u32;
    let line_h = (px * 1.45).round() as u32;
    let swatch = (px * 0.9).round() as u32;
    let texts = lines(thresholds);
    let text_w = texts
        .iter()
        .map(|t| text_size(scale, &font, t).0)
        .max()
        .unwrap_or(0);
    let (x0, y0) = (margin, margin);
    let pw = (margin + swatch + margin / 2 + text_w + margin).min(w.saturating_sub(x0));
    let ph = (margin + line_h * NUM_LESIONS as u32 + margin / 2).min(h.saturating_sub(y0));
    // Darken the panel so the text reads over any part of the photograph.
    for y in y0..y0 + ph {
        for x in x0..x0 + pw {
            let p = img.get_pixel_mut(x, y);
            for v in &mut p.0 {
                *v = (f32::from(*v) * PANEL_SHOW_THROUGH).round() as u8;
            }
        }
    }
    let mut swatches = [(0, 0, 0); NUM_LESIONS];
    for (c, text) in texts.iter().enumerate() {
        let ly = y0 + margin + line_h * c as u32;
        let sx = x0 + margin;
        let sy = ly + (line_h.saturating_sub(swatch)) / 2;
        draw_filled_rect_mut(
            img,
            Rect::at(sx as i32, sy as i32).of_size(swatch.max(1), swatch.max(1)),
            Rgb(OVERLAY_COLOURS[c]),
        );
        swatches[c] = (sx, sy, swatch);
        let tx = sx + swatch + margin / 2;
        let ty = ly + (line_h.saturating_sub(px.round() as u32)) / 2;
        draw_text_mut(
            img,
            Rgb([240, 240, 240]),
            tx as i32,
            ty as i32,
            scale,
            &font,
            text,
        );
    }
    Some(LegendLayout {
        panel: (x0, y0, pw, ph),
        swatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_parses_and_legend_is_drawn() {
        assert!(FontRef::try_from_slice(crate::FONT).is_ok());
        let mut img = RgbImage::from_pixel(800, 600, Rgb([200, 100, 50]));
        let l = draw_legend(&mut img, [0.5, 0.25, 0.75, 0.5]).unwrap();
        let (px, py, pw, ph) = l.panel;
        assert!(
            pw > 100 && ph > 40 && px + pw < 800 && py + ph < 600,
            "{l:?}"
        );
        for (c, &(sx, sy, s)) in l.swatches.iter().enumerate() {
            assert_eq!(img.get_pixel(sx + s / 2, sy + s / 2).0, OVERLAY_COLOURS[c]);
        }
        // The panel is darkened; text pixels are light.
        assert_eq!(img.get_pixel(px + 1, py + 1).0, [60, 30, 15]);
        let light = (px..px + pw)
            .flat_map(|x| (py..py + ph).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v > 200))
            .count();
        assert!(light > 100, "{light} text pixels");
        assert_eq!(img.get_pixel(799, 599).0, [200, 100, 50]);
        assert_eq!(lines([0.5; 4])[1], "HE haemorrhages   p \u{2265} 0.50");
    }

    #[test]
    fn tiny_images_do_not_panic() {
        for (w, h) in [(1, 1), (5, 3), (30, 10)] {
            let mut img = RgbImage::new(w, h);
            draw_legend(&mut img, [0.5; 4]);
        }
    }
}
