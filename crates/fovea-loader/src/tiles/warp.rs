//! Cutting one tile out of a prepared photograph, photograph and labels through the same
//! geometry: flips, a rotation by a multiple of 90 degrees and a small-angle rotation, all
//! about the tile's centre, in one resampling pass.
//!
//! For output pixel (u, v) of a tile of side S whose window's top-left corner in the
//! photograph is (x0, y0), with c = (S - 1) / 2 and d = (u - c, v - c), the source point
//! is (x0 + c + fx (cos t dx - sin t dy), y0 + c + fy (sin t dx + cos t dy)), t = 90 q + a
//! degrees (counter-clockwise as displayed, y down) and fx, fy = -1 for a horizontal,
//! vertical flip: the convention of [`crate::augment`].
//!
//! - When a = 0 the map is a permutation of the window's pixels (computed in integers):
//!   photograph, masks and field of view are copied exactly.
//! - Otherwise the photograph is interpolated bilinearly and the labels (masks, field of
//!   view) take the nearest pixel, so they stay 0/1. The rotation reads the whole
//!   photograph, so the corners of a rotated tile are the photograph's own pixels; only
//!   points outside the photograph are black (photograph) and 0 (labels).

use super::prepare::Prepared;

/// Where a tile is cut and how it is turned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// Top-left corner of the (unturned) window in the photograph.
    pub x0: i64,
    pub y0: i64,
    /// Tile side S.
    pub side: usize,
    pub hflip: bool,
    pub vflip: bool,
    /// Quarter turns q (0..4), counter-clockwise as displayed.
    pub quarter: u8,
    /// Small-angle rotation a, degrees, counter-clockwise as displayed.
    pub angle_deg: f32,
}

impl Geometry {
    /// `(cos, sin)` of the total angle; exact for quarter turns alone.
    fn cos_sin(&self) -> (f64, f64) {
        let (qc, qs) = match self.quarter % 4 {
            0 => (1.0, 0.0),
            1 => (0.0, 1.0),
            2 => (-1.0, 0.0),
            _ => (0.0, -1.0),
        };
        if self.angle_deg == 0.0 {
            return (qc, qs);
        }
        let (s, c) = (self.angle_deg as f64).to_radians().sin_cos();
        (qc * c - qs * s, qs * c + qc * s)
    }

    /// The source point of output pixel (u, v), in photograph pixels.
    pub fn source(&self, u: usize, v: usize) -> (f64, f64) {
        let c = (self.side as f64 - 1.0) / 2.0;
        let (dx, dy) = (u as f64 - c, v as f64 - c);
        let (cos, sin) = self.cos_sin();
        let fx = if self.hflip { -1.0 } else { 1.0 };
        let fy = if self.vflip { -1.0 } else { 1.0 };
        (
            self.x0 as f64 + c + fx * (cos * dx - sin * dy),
            self.y0 as f64 + c + fy * (sin * dx + cos * dy),
        )
    }
}

/// Cuts the tile `g` of `image`: `unit` receives `[3, S, S]` RGB values in [0, 1] (CHW),
/// `labels` `[S, S]` packed label bytes.
pub fn cut(image: &Prepared, g: &Geometry, unit: &mut [f32], labels: &mut [u8]) {
    let s = g.side;
    assert_eq!(unit.len(), 3 * s * s, "output is not 3x{s}x{s}");
    assert_eq!(labels.len(), s * s, "labels are not {s}x{s}");
    if g.angle_deg == 0.0 {
        cut_exact(image, g, unit, labels)
    } else {
        cut_resampled(image, g, unit, labels)
    }
}

/// Quarter turns and flips: each output pixel is one source pixel, found in integers
/// (2 * source = 2 * x0 + (S - 1) + (+-1) * (2u - (S - 1)) or the same with v).
fn cut_exact(image: &Prepared, g: &Geometry, unit: &mut [f32], labels: &mut [u8]) {
    let s = g.side as i64;
    let (w, h) = (image.width as i64, image.height as i64);
    let (cos, sin) = match g.quarter % 4 {
        0 => (1, 0),
        1 => (0, 1),
        2 => (-1, 0),
        _ => (0, -1),
    };
    let fx = if g.hflip { -1 } else { 1 };
    let fy = if g.vflip { -1 } else { 1 };
    let ss = (s * s) as usize;
    let (r, gb) = unit.split_at_mut(ss);
    let (gr, b) = gb.split_at_mut(ss);
    for v in 0..s {
        let dy = 2 * v - (s - 1);
        for u in 0..s {
            let dx = 2 * u - (s - 1);
            let x = (2 * g.x0 + (s - 1) + fx * (cos * dx - sin * dy)) / 2;
            let y = (2 * g.y0 + (s - 1) + fy * (sin * dx + cos * dy)) / 2;
            let o = (v * s + u) as usize;
            if x < 0 || y < 0 || x >= w || y >= h {
                (r[o], gr[o], b[o], labels[o]) = (0.0, 0.0, 0.0, 0);
                continue;
            }
            let k = (y * w + x) as usize;
            let px = &image.rgb[3 * k..3 * k + 3];
            r[o] = px[0] as f32 / 255.0;
            gr[o] = px[1] as f32 / 255.0;
            b[o] = px[2] as f32 / 255.0;
            labels[o] = image.labels[k];
        }
    }
}

/// Any angle: bilinear photograph (black outside), nearest labels (0 outside).
fn cut_resampled(image: &Prepared, g: &Geometry, unit: &mut [f32], labels: &mut [u8]) {
    let s = g.side;
    let (w, h) = (image.width as i64, image.height as i64);
    let ss = s * s;
    let (r, gb) = unit.split_at_mut(ss);
    let (gr, b) = gb.split_at_mut(ss);
    let byte = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            image.rgb[3 * (y * w + x) as usize + c] as f32
        }
    };
    for v in 0..s {
        for u in 0..s {
            let (sx, sy) = g.source(u, v);
            let o = v * s + u;
            let (nx, ny) = (sx.round() as i64, sy.round() as i64);
            labels[o] = if nx < 0 || ny < 0 || nx >= w || ny >= h {
                0
            } else {
                image.labels[(ny * w + nx) as usize]
            };
            let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
            let (ax, ay) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
            for (c, plane) in [&mut *r, &mut *gr, &mut *b].into_iter().enumerate() {
                let top = byte(x0, y0, c) * (1.0 - ax) + byte(x0 + 1, y0, c) * ax;
                let bottom = byte(x0, y0 + 1, c) * (1.0 - ax) + byte(x0 + 1, y0 + 1, c) * ax;
                plane[o] = (top * (1.0 - ay) + bottom * ay) / 255.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 8x8 photograph whose pixel (x, y) has R = 10 y + x, G = 100, B = 200, label byte
    /// = 10 y + x as well.
    fn image() -> Prepared {
        let (w, h) = (8u32, 8u32);
        let mut rgb = Vec::new();
        let mut labels = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend([(10 * y + x) as u8, 100, 200]);
                labels.push((10 * y + x) as u8);
            }
        }
        Prepared {
            id: "t".into(),
            width: w,
            height: h,
            rgb,
            labels,
        }
    }

    fn geometry(x0: i64, y0: i64, side: usize) -> Geometry {
        Geometry {
            x0,
            y0,
            side,
            hflip: false,
            vflip: false,
            quarter: 0,
            angle_deg: 0.0,
        }
    }

    fn run(g: &Geometry) -> (Vec<f32>, Vec<u8>) {
        let mut unit = vec![0.0; 3 * g.side * g.side];
        let mut labels = vec![0; g.side * g.side];
        cut(&image(), g, &mut unit, &mut labels);
        (unit, labels)
    }

    #[test]
    fn plain_window_is_a_crop() {
        let (unit, labels) = run(&geometry(1, 2, 3));
        // Rows y = 2..5, columns x = 1..4.
        assert_eq!(labels, [21, 22, 23, 31, 32, 33, 41, 42, 43]);
        assert_eq!(unit[0], 21.0 / 255.0);
        assert_eq!(unit[9], 100.0 / 255.0);
        assert_eq!(unit[18 + 8], 200.0 / 255.0);
    }

    #[test]
    fn flips_and_quarter_turns_by_hand() {
        let base = geometry(0, 0, 3); // labels 0 1 2 / 10 11 12 / 20 21 22
        let h = run(&Geometry {
            hflip: true,
            ..base
        })
        .1;
        assert_eq!(h, [2, 1, 0, 12, 11, 10, 22, 21, 20]);
        let v = run(&Geometry {
            vflip: true,
            ..base
        })
        .1;
        assert_eq!(v, [20, 21, 22, 10, 11, 12, 0, 1, 2]);
        // A quarter turn counter-clockwise (numpy rot90): B[y, x] = A[x, S-1-y].
        let q = run(&Geometry { quarter: 1, ..base }).1;
        assert_eq!(q, [2, 12, 22, 1, 11, 21, 0, 10, 20]);
        let half = run(&Geometry { quarter: 2, ..base }).1;
        let both = run(&Geometry {
            hflip: true,
            vflip: true,
            ..base
        })
        .1;
        assert_eq!(half, both);
        // Even sides too: 2x2 at (4, 3): 34 35 / 44 45.
        let q = run(&Geometry {
            quarter: 3,
            ..geometry(4, 3, 2)
        })
        .1;
        assert_eq!(q, [44, 34, 45, 35]); // clockwise: B[y, x] = A[S-1-x, y]
    }

    #[test]
    fn photograph_and_labels_move_together() {
        for quarter in 0..4 {
            for (hflip, vflip) in [(false, false), (true, false), (false, true), (true, true)] {
                for angle_deg in [0.0f32, 7.0, -12.0] {
                    let g = Geometry {
                        hflip,
                        vflip,
                        quarter,
                        angle_deg,
                        ..geometry(2, 2, 4)
                    };
                    let (unit, labels) = run(&g);
                    for (o, &l) in labels.iter().enumerate() {
                        // Red is 10 y + x, the label byte too; bilinear red is exactly
                        // 10 sy + sx and the nearest pixel is within half a pixel of it.
                        let red = unit[o] * 255.0;
                        if angle_deg == 0.0 {
                            assert_eq!(red, l as f32, "{g:?} at {o}");
                        } else {
                            assert!((red - l as f32).abs() <= 5.5 + 1e-3, "{g:?} at {o}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn outside_the_photograph_is_black_and_unlabelled() {
        let (unit, labels) = run(&geometry(-1, -1, 2));
        assert_eq!(labels, [0, 0, 0, 0]);
        assert_eq!(&unit[..4], &[0.0, 0.0, 0.0, 0.0]);
        let (unit, labels) = run(&Geometry {
            angle_deg: 30.0,
            ..geometry(-10, -10, 2)
        });
        assert!(labels.iter().all(|&l| l == 0) && unit.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn small_rotation_by_zero_matches_the_exact_path() {
        let g = Geometry {
            hflip: true,
            quarter: 3,
            ..geometry(1, 0, 4)
        };
        let exact = run(&g);
        let mut unit = vec![0.0; 48];
        let mut labels = vec![0; 16];
        cut_resampled(&image(), &g, &mut unit, &mut labels);
        assert_eq!(labels, exact.1);
        for (a, b) in unit.iter().zip(&exact.0) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
