//! Detected regions: the 8-connected components of the cells at or above a lesion's
//! threshold, with their bounding box in photograph pixels, area and scores.
//!
//! Components come from imageproc's `connected_components` over a cell-resolution mask
//! framed by one background cell on every side; this file only measures them. The frame
//! works around imageproc 0.25's union-find, sized one label short: a mask whose every
//! cell is its own component (a 1x1 heatmap above its threshold: `--cell` at least the
//! photograph's size, or a negative threshold) panicked there. With the frame the labels
//! (at most the `w * h` inner cells) always stay below the framed image's size.
//!
//! Any threshold is taken as it is: a NaN one selects no cell, a negative one every cell.

use image::{GrayImage, Luma};
use imageproc::region_labelling::{connected_components, Connectivity};
use serde::{Deserialize, Serialize};

use crate::heatmap::{Heatmap, NUM_LESIONS};

/// One detected region of one lesion type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Lesion code: `MA`, `HE`, `EX` or `SE`.
    pub lesion: String,
    /// Bounding box in photograph pixels (left, top, width, height), cells clipped at the
    /// photograph's border.
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Number of photograph pixels in the region's cells.
    pub area_px: u64,
    /// Highest cell value.
    pub peak: f32,
    /// Mean cell value, weighted by the cells' pixel areas.
    pub mean: f32,
}

/// Running measurements of one component, in cell units.
struct Acc {
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
    area: u64,
    peak: f32,
    sum: f64,
}

/// Component labels (0 = below the threshold) of the `w` x `h` cells `values` (row-major)
/// at or above `t`, 8-connected, row-major like `values`. The mask handed to imageproc is
/// framed by one background cell on every side (see the module docs).
fn framed_labels(values: &[f32], w: usize, h: usize, t: f64) -> Vec<u32> {
    let above = |x: usize, y: usize| {
        (1..=w).contains(&x) && (1..=h).contains(&y) && f64::from(values[(y - 1) * w + x - 1]) >= t
    };
    let mask = GrayImage::from_fn(w as u32 + 2, h as u32 + 2, |x, y| {
        Luma([u8::from(above(x as usize, y as usize))])
    });
    let labels = connected_components(&mask, Connectivity::Eight, Luma([0u8]));
    (0..h)
        .flat_map(|i| (0..w).map(move |j| (i, j)))
        .map(|(i, j)| labels.get_pixel(j as u32 + 1, i as u32 + 1)[0])
        .collect()
}

/// Regions of every lesion: components of cells with `value as f64 >= thresholds[c]`,
/// sorted by lesion (MA, HE, EX, SE), then by peak (highest first), then top to bottom.
pub fn regions(map: &Heatmap, thresholds: [f64; NUM_LESIONS]) -> Vec<Region> {
    let mut out = Vec::new();
    for (c, &t) in thresholds.iter().enumerate() {
        let values = map.lesion(c);
        let labels = framed_labels(values, map.w, map.h, t);
        let mut accs: Vec<Option<Acc>> = Vec::new();
        for (k, &label) in labels.iter().enumerate() {
            if label == 0 {
                continue;
            }
            let (i, j) = (k / map.w, k % map.w);
            let (_, _, cw, ch) = map.cell_rect(i, j);
            let px = u64::from(cw) * u64::from(ch);
            let v = values[k];
            let idx = label as usize - 1;
            if idx >= accs.len() {
                accs.resize_with(idx + 1, || None);
            }
            let a = accs[idx].get_or_insert(Acc {
                i0: i,
                i1: i,
                j0: j,
                j1: j,
                area: 0,
                peak: v,
                sum: 0.0,
            });
            a.i0 = a.i0.min(i);
            a.i1 = a.i1.max(i);
            a.j0 = a.j0.min(j);
            a.j1 = a.j1.max(j);
            a.area += px;
            a.peak = a.peak.max(v);
            a.sum += f64::from(v) * px as f64;
        }
        let mut found: Vec<Region> = accs
            .into_iter()
            .flatten()
            .map(|a| {
                let (x, y, _, _) = map.cell_rect(a.i0, a.j0);
                let (x1, y1, w1, h1) = map.cell_rect(a.i1, a.j1);
                Region {
                    lesion: fovea_metrics::LESIONS[c].to_string(),
                    x,
                    y,
                    width: x1 + w1 - x,
                    height: y1 + h1 - y,
                    area_px: a.area,
                    peak: a.peak,
                    mean: (a.sum / a.area as f64) as f32,
                }
            })
            .collect();
        found.sort_by(|a, b| {
            b.peak
                .total_cmp(&a.peak)
                .then(a.y.cmp(&b.y))
                .then(a.x.cmp(&b.x))
        });
        out.extend(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_map() {
        // 10x7 photograph, cell 3: 3 rows (3, 3, 1 px) x 4 columns (3, 3, 3, 1 px).
        let mut m = Heatmap::new(10, 7, 3).unwrap();
        // MA: a diagonal pair (one 8-connected region) and a lone corner cell.
        *m.at_mut(0, 0, 0) = 0.6;
        *m.at_mut(0, 1, 1) = 0.8;
        *m.at_mut(0, 2, 3) = 0.9;
        // HE: below threshold everywhere but one cell exactly at it.
        *m.at_mut(1, 1, 2) = 0.5;
        *m.at_mut(1, 0, 2) = 0.49;
        // EX: everything at 1.
        m.lesion_mut(2).iter_mut().for_each(|v| *v = 1.0);
        let r = regions(&m, [0.5, 0.5, 0.5, 0.5]);
        let want = vec![
            Region {
                lesion: "MA".into(),
                x: 9,
                y: 6,
                width: 1,
                height: 1,
                area_px: 1,
                peak: 0.9,
                mean: 0.9,
            },
            Region {
                lesion: "MA".into(),
                x: 0,
                y: 0,
                width: 6,
                height: 6,
                area_px: 18,
                peak: 0.8,
                mean: 0.7,
            },
            Region {
                lesion: "HE".into(),
                x: 6,
                y: 3,
                width: 3,
                height: 3,
                area_px: 9,
                peak: 0.5,
                mean: 0.5,
            },
            Region {
                lesion: "EX".into(),
                x: 0,
                y: 0,
                width: 10,
                height: 7,
                area_px: 70,
                peak: 1.0,
                mean: 1.0,
            },
        ];
        assert_eq!(r.len(), want.len());
        for (g, w) in r.iter().zip(&want) {
            assert_eq!(
                (&g.lesion, g.x, g.y, g.width, g.height, g.area_px, g.peak),
                (&w.lesion, w.x, w.y, w.width, w.height, w.area_px, w.peak)
            );
            assert!((g.mean - w.mean).abs() < 1e-6, "{g:?}");
        }
        let json = serde_json::to_string(&r[0]).unwrap();
        assert_eq!(
            json,
            r#"{"lesion":"MA","x":9,"y":6,"width":1,"height":1,"area_px":1,"peak":0.9,"mean":0.9}"#
        );
        // A threshold above every value finds nothing.
        assert!(regions(&m, [2.0; 4]).is_empty());
    }

    #[test]
    fn one_cell_heatmaps_above_any_threshold() {
        // `--cell 384` on a 384x256 photograph: one cell, above its threshold.
        let mut m = Heatmap::new(384, 256, 384).unwrap();
        assert_eq!((m.h, m.w), (1, 1));
        m.data.iter_mut().for_each(|v| *v = 0.7);
        let r = regions(&m, [0.5, 0.5, 0.9, 0.5]);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!((r[0].x, r[0].y, r[0].width, r[0].height), (0, 0, 384, 256));
        assert_eq!(r[0].area_px, 384 * 256);
        // An 8x8 photograph at cell 8 with a negative threshold: every lesion, one region.
        let m = Heatmap::new(8, 8, 8).unwrap();
        assert_eq!(regions(&m, [-0.1; 4]).len(), 4);
        // A NaN threshold selects nothing.
        assert!(regions(&m, [f64::NAN; 4]).is_empty());
    }

    /// Cells at or above `t` of lesion `c`, by brute force.
    fn cells_above(m: &Heatmap, c: usize, t: f64) -> u64 {
        let mut px = 0;
        for i in 0..m.h {
            for j in 0..m.w {
                if f64::from(m.at(c, i, j)) >= t {
                    let (_, _, w, h) = m.cell_rect(i, j);
                    px += u64::from(w) * u64::from(h);
                }
            }
        }
        px
    }

    proptest::proptest! {
        /// Any photograph size, any cell (larger than the photograph too), any values and
        /// thresholds (negative, above 1, NaN): no panic, boxes inside the photograph, and
        /// the regions of a lesion cover exactly its cells at or above the threshold.
        #[test]
        fn any_heatmap_any_threshold(
            width in 1u32..40,
            height in 1u32..40,
            cell in 1u32..64,
            seed in proptest::collection::vec(-0.5f32..1.5, 1..64),
            thresholds in proptest::array::uniform4(proptest::prop_oneof![
                -2.0f64..3.0,
                proptest::strategy::Just(f64::NAN),
                proptest::strategy::Just(0.0),
                proptest::strategy::Just(1.0),
            ]),
        ) {
            let mut m = Heatmap::new(width, height, cell).unwrap();
            for (k, v) in m.data.iter_mut().enumerate() {
                *v = seed[k % seed.len()];
            }
            let r = regions(&m, thresholds);
            for g in &r {
                proptest::prop_assert!(g.width >= 1 && g.height >= 1);
                proptest::prop_assert!(g.x + g.width <= width && g.y + g.height <= height);
            }
            for (c, &t) in thresholds.iter().enumerate() {
                let area: u64 = r
                    .iter()
                    .filter(|g| g.lesion == fovea_metrics::LESIONS[c])
                    .map(|g| g.area_px)
                    .sum();
                proptest::prop_assert_eq!(area, cells_above(&m, c, t));
            }
        }
    }
}
