//! Blending the scores of overlapping windows into a [`Heatmap`].
//!
//! Each cell's value is the weighted mean of the scores of every window that contains the
//! cell's centre pixel, the weight of a window being `f(dx) * f(dy)` where (dx, dy) is the
//! centre's offset inside the window (0..P) and `f` is the [`WindowWeight`] profile:
//! - Hann: `f(t) = sin^2(pi (t + 0.5) / P)`, largest at the window's centre and never 0
//!   inside it, so the border pixels that only one window covers keep that window's score;
//! - Gaussian: `f(t) = exp(-(t + 0.5 - P/2)^2 / (2 (sigma P)^2))`, `sigma` a fraction of P;
//! - Flat: `f(t) = 1`, the plain mean.
//!
//! Because the weight is separable, the mean is computed axis by axis: first, per window
//! row, the x-weighted sums of its windows for every cell column, then the y-weighted sums
//! of those per cell row. A 4288 x 2848 photograph with P = 64, S = 32 and cell 8 (about
//! 12k windows, 190k cells) takes a few milliseconds. Nothing here is per pixel.
//!
//! Written by hand: the image crates blend overlapping tiles only as full-resolution
//! images (and not with per-window scores), which is thousands of times more work.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MapsError, Result};
use crate::grid::WindowGrid;
use crate::heatmap::{cell_shape, Heatmap, NUM_LESIONS};

/// How much a window's score counts at each offset inside it (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum WindowWeight {
    /// `sin^2(pi (t + 0.5) / P)` (the default).
    #[default]
    Hann,
    /// A Gaussian centred on the window; `sigma` as a fraction of the window side.
    Gaussian {
        /// Standard deviation as a fraction of P (e.g. 0.25).
        sigma: f32,
    },
    /// Every offset counts the same.
    Flat,
}

impl WindowWeight {
    /// The profile `f(t)` at offset `t` (0..P) inside a window of side `patch`.
    pub fn profile(self, t: u32, patch: u32) -> f64 {
        let p = f64::from(patch);
        let u = f64::from(t) + 0.5;
        match self {
            WindowWeight::Hann => (std::f64::consts::PI * u / p).sin().powi(2),
            WindowWeight::Gaussian { sigma } => {
                let s = f64::from(sigma) * p;
                (-(u - p / 2.0).powi(2) / (2.0 * s * s)).exp()
            }
            WindowWeight::Flat => 1.0,
        }
    }

    /// Errors if the settings make no sense (a Gaussian sigma that is not positive).
    pub fn validate(self) -> Result<()> {
        match self {
            WindowWeight::Gaussian { sigma } if !(sigma.is_finite() && sigma > 0.0) => {
                Err(MapsError::setting(
                    "window weight",
                    format!("gaussian sigma {sigma} must be a positive fraction of the patch"),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for WindowWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowWeight::Hann => f.write_str("hann"),
            WindowWeight::Gaussian { sigma } => write!(f, "gaussian:{sigma}"),
            WindowWeight::Flat => f.write_str("flat"),
        }
    }
}

impl FromStr for WindowWeight {
    type Err = MapsError;

    /// Parses `hann`, `flat`, `gaussian` (sigma 0.25) or `gaussian:SIGMA`.
    fn from_str(s: &str) -> Result<WindowWeight> {
        let w = match s.trim().to_ascii_lowercase().as_str() {
            "hann" => WindowWeight::Hann,
            "flat" => WindowWeight::Flat,
            "gaussian" => WindowWeight::Gaussian { sigma: 0.25 },
            other => match other.strip_prefix("gaussian:").map(str::parse::<f32>) {
                Some(Ok(sigma)) => WindowWeight::Gaussian { sigma },
                _ => {
                    return Err(MapsError::setting(
                        "window weight",
                        format!("{s:?} (expected hann, flat, gaussian or gaussian:SIGMA)"),
                    ))
                }
            },
        };
        w.validate()?;
        Ok(w)
    }
}

/// For each cell along one axis: the windows containing its centre with their weights
/// normalised to sum 1, as a compressed list (`starts[k]..starts[k + 1]` indexes
/// `entries`).
struct AxisWeights {
    starts: Vec<usize>,
    entries: Vec<(usize, f64)>,
}

fn axis_weights(
    grid: &WindowGrid,
    len: u32,
    cell: u32,
    cells: usize,
    windows: usize,
    weight: WindowWeight,
) -> AxisWeights {
    let mut out = AxisWeights {
        starts: Vec::with_capacity(cells + 1),
        entries: Vec::new(),
    };
    for k in 0..cells {
        let start = k as u32 * cell;
        let centre = start + cell.min(len - start) / 2;
        out.starts.push(out.entries.len());
        let first = out.entries.len();
        out.entries.extend(
            grid.covering(centre, windows)
                .map(|(win, t)| (win, weight.profile(t, grid.patch))),
        );
        let entries = &mut out.entries[first..];
        let mut sum: f64 = entries.iter().map(|e| e.1).sum();
        // A very narrow Gaussian can underflow to (nearly) 0 at a window's edge: tiny
        // weights lose precision, so fall back to the plain mean there.
        if !(1e-200..=f64::MAX).contains(&sum) {
            entries.iter_mut().for_each(|e| e.1 = 1.0);
            sum = entries.len() as f64;
        }
        entries.iter_mut().for_each(|e| e.1 /= sum);
    }
    out.starts.push(out.entries.len());
    out
}

/// Blends one score per window (`scores[r * cols + c]`, lesions MA, HE, EX, SE) into a
/// heatmap with cells of side `cell` (see the module docs).
///
/// Errors: `scores.len() != grid.len()`, a non-finite score, `cell == 0`, an invalid
/// weight. Every value lies between the smallest and largest score.
pub fn blend(
    grid: &WindowGrid,
    scores: &[[f32; NUM_LESIONS]],
    cell: u32,
    weight: WindowWeight,
) -> Result<Heatmap> {
    if scores.len() != grid.len() {
        return Err(MapsError::ScoreCount {
            expected: grid.len(),
            got: scores.len(),
            rows: grid.rows,
            cols: grid.cols,
        });
    }
    for (window, s) in scores.iter().enumerate() {
        if let Some(c) = s.iter().position(|v| !v.is_finite()) {
            return Err(MapsError::NonFiniteScore {
                window,
                lesion: fovea_data::LESION_CODES[c],
                value: s[c],
            });
        }
    }
    weight.validate()?;
    let (h, w) = cell_shape(grid.width, grid.height, cell)?;
    let ax = axis_weights(grid, grid.width, cell, w, grid.cols, weight);
    let ay = axis_weights(grid, grid.height, cell, h, grid.rows, weight);

    // Pass 1: per window row r and cell column j, the x-weighted sum of the row's scores.
    let mut rowsum = vec![[0f64; NUM_LESIONS]; grid.rows * w];
    for r in 0..grid.rows {
        let row = &scores[r * grid.cols..(r + 1) * grid.cols];
        for j in 0..w {
            let acc = &mut rowsum[r * w + j];
            for &(c, f) in &ax.entries[ax.starts[j]..ax.starts[j + 1]] {
                for l in 0..NUM_LESIONS {
                    acc[l] += f * f64::from(row[c][l]);
                }
            }
        }
    }
    // Pass 2: per cell, the y-weighted sum of pass 1 over window rows (weights sum to 1).
    let mut map = Heatmap::new(grid.width, grid.height, cell)?;
    let n = h * w;
    let mut acc = vec![[0f64; NUM_LESIONS]; w];
    for i in 0..h {
        acc.iter_mut().for_each(|a| *a = [0.0; NUM_LESIONS]);
        for &(r, f) in &ay.entries[ay.starts[i]..ay.starts[i + 1]] {
            for (a, s) in acc.iter_mut().zip(&rowsum[r * w..(r + 1) * w]) {
                for l in 0..NUM_LESIONS {
                    a[l] += f * s[l];
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            for (l, v) in a.iter().enumerate() {
                map.data[l * n + i * w + j] = *v as f32;
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn flat_means_by_hand() {
        // 4x4 photograph, P = 2, S = 1, cell 1: 3x3 windows, window (r, c) scores 3r + c
        // (times l + 1 for lesion l). The windows covering coordinate 0..4 along an axis
        // are {0}, {0, 1}, {1, 2}, {2}, so the mean of r is m = [0, 0.5, 1.5, 2] and the
        // value at (x, y) is 3 m[y] + m[x].
        let g = WindowGrid::new(4, 4, 2, 1).unwrap();
        let scores: Vec<[f32; 4]> = (0..9)
            .map(|k| {
                let s = (3 * (k / 3) + k % 3) as f32;
                [s, 2.0 * s, 3.0 * s, 4.0 * s]
            })
            .collect();
        let want = [
            [0.0, 0.5, 1.5, 2.0],
            [1.5, 2.0, 3.0, 3.5],
            [4.5, 5.0, 6.0, 6.5],
            [6.0, 6.5, 7.5, 8.0],
        ];
        let flat = blend(&g, &scores, 1, WindowWeight::Flat).unwrap();
        // Hann with P = 2 has f = [0.5, 0.5]: the same means.
        let hann = blend(&g, &scores, 1, WindowWeight::Hann).unwrap();
        assert!((WindowWeight::Hann.profile(0, 2) - 0.5).abs() < 1e-15);
        assert!((WindowWeight::Hann.profile(1, 2) - 0.5).abs() < 1e-15);
        for m in [&flat, &hann] {
            assert_eq!((m.h, m.w, m.cell), (4, 4, 1));
            for l in 0..4 {
                for (i, row) in want.iter().enumerate() {
                    for (j, w) in row.iter().enumerate() {
                        let v = w * (l + 1) as f64;
                        assert!(close(m.at(l, i, j), v), "l{l} ({i},{j}) {}", m.at(l, i, j));
                    }
                }
            }
        }
    }

    #[test]
    fn hann_weights_by_hand() {
        // Width 6, P = 4, S = 2: windows at x = 0 and x = 2. Pixel 2 is at offset 2 in the
        // first (f = sin^2(2.5 pi / 4) = 0.853553) and 0 in the second (f = sin^2(0.5 pi /
        // 4) = 0.146447); the weights sum to 1. Scores 0 and 1 give 0.146447.
        let g = WindowGrid::new(6, 1, 4, 2).unwrap();
        assert_eq!((g.rows, g.cols), (1, 2));
        let m = blend(&g, &[[0.0; 4], [1.0; 4]], 1, WindowWeight::Hann).unwrap();
        assert!(close(m.at(0, 0, 2), 0.146_446_609_4));
        // Pixel 3: offsets 3 (f = 0.146447) and 1 (f = 0.853553).
        assert!(close(m.at(0, 0, 3), 0.853_553_390_6));
        assert_eq!(m.at(0, 0, 0), 0.0); // only the first window
        assert_eq!(m.at(0, 0, 5), 1.0); // only the second
                                        // Gaussian, sigma 0.25 (s = 1): offsets 2 and 0 -> exp(-0.125), exp(-1.125).
        let m = blend(
            &g,
            &[[0.0; 4], [1.0; 4]],
            1,
            WindowWeight::Gaussian { sigma: 0.25 },
        )
        .unwrap();
        let (a, b) = ((-0.125f64).exp(), (-1.125f64).exp());
        assert!(close(m.at(0, 0, 2), b / (a + b)));
    }

    #[test]
    fn cells_use_their_centre_pixel() {
        // Width 7, cell 3: centres at x = 1, 4, 6. P = 2, S = 1: windows 0..=5.
        let g = WindowGrid::new(7, 1, 2, 1).unwrap();
        let scores: Vec<[f32; 4]> = (0..6).map(|c| [c as f32; 4]).collect();
        let m = blend(&g, &scores, 3, WindowWeight::Flat).unwrap();
        assert_eq!((m.h, m.w), (1, 3));
        // x = 1: windows 0, 1; x = 4: windows 3, 4; x = 6: window 5 only.
        assert_eq!(m.lesion(0), &[0.5, 3.5, 5.0]);
    }

    #[test]
    fn one_window_gives_a_constant_map() {
        let g = WindowGrid::new(30, 20, 64, 32).unwrap();
        assert_eq!(g.len(), 1);
        for weight in [
            WindowWeight::Hann,
            WindowWeight::Flat,
            WindowWeight::Gaussian { sigma: 0.01 },
        ] {
            let m = blend(&g, &[[0.1, 0.2, 0.3, 0.4]], 4, weight).unwrap();
            assert_eq!((m.h, m.w), (5, 8));
            for l in 0..4 {
                assert!(m.lesion(l).iter().all(|&v| v == [0.1, 0.2, 0.3, 0.4][l]));
            }
        }
    }

    #[test]
    fn errors() {
        let g = WindowGrid::new(4, 4, 2, 1).unwrap();
        let e = blend(&g, &[[0.0; 4]; 8], 1, WindowWeight::Hann).unwrap_err();
        assert_eq!(
            e.to_string(),
            "8 window scores for a 3 x 3 window grid (9 windows expected)"
        );
        let mut s = vec![[0.0; 4]; 9];
        s[4][1] = f32::NAN;
        let e = blend(&g, &s, 1, WindowWeight::Hann).unwrap_err();
        assert_eq!(
            e.to_string(),
            "window 4 (HE): score NaN is not a finite number"
        );
        assert!(blend(&g, &[[0.0; 4]; 9], 0, WindowWeight::Hann).is_err());
        assert!(blend(&g, &[[0.0; 4]; 9], 1, WindowWeight::Gaussian { sigma: 0.0 }).is_err());
    }

    #[test]
    fn weight_names() {
        assert_eq!(
            serde_json::to_string(&WindowWeight::Hann).unwrap(),
            "\"hann\""
        );
        assert_eq!(
            serde_json::to_string(&WindowWeight::Flat).unwrap(),
            "\"flat\""
        );
        let g: WindowWeight = serde_json::from_str("{\"gaussian\":{\"sigma\":0.3}}").unwrap();
        assert_eq!(g, WindowWeight::Gaussian { sigma: 0.3 });
        assert_eq!(WindowWeight::default(), WindowWeight::Hann);
        for s in ["hann", "flat", "gaussian:0.3"] {
            assert_eq!(s.parse::<WindowWeight>().unwrap().to_string(), s);
        }
        assert_eq!(
            "gaussian".parse::<WindowWeight>().unwrap(),
            WindowWeight::Gaussian { sigma: 0.25 }
        );
        assert!("box".parse::<WindowWeight>().is_err());
        assert!("gaussian:-1".parse::<WindowWeight>().is_err());
    }

    #[test]
    fn full_size_photograph() {
        let g = WindowGrid::new(4288, 2848, 64, 32).unwrap();
        let scores: Vec<[f32; 4]> = (0..g.len())
            .map(|k| [(k % 7) as f32 / 7.0, 0.5, 0.0, 1.0])
            .collect();
        let m = blend(&g, &scores, 8, WindowWeight::Hann).unwrap();
        assert_eq!((m.h, m.w), (356, 536));
        assert!(m.lesion(1).iter().all(|&v| (v - 0.5).abs() < 1e-6));
    }

    proptest! {
        #[test]
        fn values_lie_between_the_scores(
            width in 1u32..60, height in 1u32..60, patch in 1u32..20, stride_frac in 0.0f64..1.0,
            cell in 1u32..9, kind in 0usize..3, seed in any::<u64>(),
        ) {
            let stride = 1 + ((patch - 1) as f64 * stride_frac) as u32;
            let g = WindowGrid::new(width, height, patch, stride).unwrap();
            let mut x = seed;
            let scores: Vec<[f32; 4]> = (0..g.len()).map(|_| std::array::from_fn(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 40) as f32 / (1u64 << 24) as f32
            })).collect();
            let weight = [WindowWeight::Hann, WindowWeight::Flat,
                          WindowWeight::Gaussian { sigma: 0.2 }][kind];
            let m = blend(&g, &scores, cell, weight).unwrap();
            prop_assert_eq!(m.h, height.div_ceil(cell) as usize);
            prop_assert_eq!(m.w, width.div_ceil(cell) as usize);
            for l in 0..4 {
                let lo = scores.iter().map(|s| s[l]).fold(f32::INFINITY, f32::min);
                let hi = scores.iter().map(|s| s[l]).fold(f32::NEG_INFINITY, f32::max);
                for &v in m.lesion(l) {
                    prop_assert!(lo <= v && v <= hi, "{} not in [{}, {}]", v, lo, hi);
                }
            }
        }
    }
}
