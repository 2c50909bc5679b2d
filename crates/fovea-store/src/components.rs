//! Connected components of a lesion mask (8-connectivity), with the bounding box, area and
//! a centre pixel of each: what lesion-centred patches are centred on.

use image::{GrayImage, Luma};
use imageproc::region_labelling::{connected_components, Connectivity};

use crate::geometry::PixelBox;

/// One connected lesion region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub bbox: PixelBox,
    /// Number of pixels.
    pub area: u32,
    /// The component's pixel nearest to its centroid (always a lesion pixel).
    pub centre: (u32, u32),
}

/// Components of `mask` (nonzero = lesion) in label order (first pixel in row-major
/// order), with at least `min_area` pixels.
pub fn components(mask: &GrayImage, min_area: u32) -> Vec<Component> {
    let labels = connected_components(mask, Connectivity::Eight, Luma([0u8]));
    let (w, _) = mask.dimensions();
    struct Acc {
        bbox: PixelBox,
        area: u64,
        sx: u64,
        sy: u64,
    }
    let mut acc: Vec<Option<Acc>> = Vec::new();
    for (i, l) in labels.as_raw().iter().enumerate() {
        if *l == 0 {
            continue;
        }
        let (x, y) = ((i % w as usize) as u32, (i / w as usize) as u32);
        let k = *l as usize - 1;
        if k >= acc.len() {
            acc.resize_with(k + 1, || None);
        }
        let a = acc[k].get_or_insert(Acc {
            bbox: PixelBox {
                x0: x,
                y0: y,
                x1: x,
                y1: y,
            },
            area: 0,
            sx: 0,
            sy: 0,
        });
        a.bbox.x0 = a.bbox.x0.min(x);
        a.bbox.x1 = a.bbox.x1.max(x);
        a.bbox.y1 = a.bbox.y1.max(y);
        a.area += 1;
        a.sx += x as u64;
        a.sy += y as u64;
    }
    let mut out = Vec::new();
    for (k, a) in acc.iter().enumerate() {
        let Some(a) = a else { continue };
        if a.area < min_area as u64 {
            continue;
        }
        let (cx, cy) = (a.sx as f64 / a.area as f64, a.sy as f64 / a.area as f64);
        // Nearest pixel of this component to its centroid, searched inside its box.
        let mut best = (a.bbox.x0, a.bbox.y0);
        let mut best_d = f64::INFINITY;
        for y in a.bbox.y0..=a.bbox.y1 {
            for x in a.bbox.x0..=a.bbox.x1 {
                if labels.get_pixel(x, y).0[0] as usize == k + 1 {
                    let d = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                    if d < best_d {
                        best_d = d;
                        best = (x, y);
                    }
                }
            }
        }
        out.push(Component {
            bbox: a.bbox,
            area: a.area as u32,
            centre: best,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_blobs_and_a_diagonal() {
        // 1 1 0 0 0
        // 1 0 0 0 1
        // 0 0 0 1 0   <- (3,2) touches (4,1) diagonally: one component
        // 0 0 0 0 0
        let rows = ["11000", "10001", "00010", "00000"];
        let mut m = GrayImage::new(5, 4);
        for (y, r) in rows.iter().enumerate() {
            for (x, c) in r.chars().enumerate() {
                m.put_pixel(x as u32, y as u32, Luma([u8::from(c == '1')]));
            }
        }
        let c = components(&m, 1);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].bbox,
            PixelBox {
                x0: 0,
                y0: 0,
                x1: 1,
                y1: 1
            }
        );
        assert_eq!(c[0].area, 3);
        assert_eq!(
            c[1].bbox,
            PixelBox {
                x0: 3,
                y0: 1,
                x1: 4,
                y1: 2
            }
        );
        assert_eq!(c[1].area, 2);
        assert!(components(&m, 3).len() == 1);
        for comp in &c {
            let (x, y) = comp.centre;
            assert_eq!(m.get_pixel(x, y).0[0], 1);
        }
    }
}
