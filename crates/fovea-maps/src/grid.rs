//! The grid of overlapping square windows a photograph is scored on.
//!
//! Windows are `patch` x `patch` squares whose origins are the multiples of `stride`:
//! window (r, c) has its top-left pixel at (c * stride, r * stride). There are
//! `cols = ceil((max(W, P) - P) / S) + 1` columns (likewise rows), the fewest that cover
//! every pixel, so the last column or row may reach past the right / bottom edge; the
//! inference side treats the pixels there as black padding. [`WindowGrid::padded_size`] is
//! the size of the photograph padded that way.

use crate::error::{MapsError, Result};

/// Windows of side `patch` at stride `stride` over a `width` x `height` photograph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowGrid {
    /// Photograph width in pixels.
    pub width: u32,
    /// Photograph height in pixels.
    pub height: u32,
    /// Window side in pixels.
    pub patch: u32,
    /// Distance between neighbouring window origins in pixels.
    pub stride: u32,
    /// Window rows.
    pub rows: usize,
    /// Window columns.
    pub cols: usize,
}

/// Windows needed along one axis of length `len`: `ceil((max(len, P) - P) / S) + 1`.
fn windows_along(len: u32, patch: u32, stride: u32) -> usize {
    (len.max(patch) - patch).div_ceil(stride) as usize + 1
}

impl WindowGrid {
    /// The grid for a `width` x `height` photograph.
    ///
    /// Errors: a zero size, or `stride > patch` (the windows would leave gaps).
    pub fn new(width: u32, height: u32, patch: u32, stride: u32) -> Result<WindowGrid> {
        if width == 0 || height == 0 {
            return Err(MapsError::setting(
                "window grid",
                format!("photograph size {width}x{height} is empty"),
            ));
        }
        if patch == 0 || stride == 0 {
            return Err(MapsError::setting(
                "window grid",
                format!("patch size {patch} and stride {stride} must both be at least 1"),
            ));
        }
        if stride > patch {
            return Err(MapsError::setting(
                "window grid",
                format!("stride {stride} exceeds patch size {patch}: windows would leave gaps"),
            ));
        }
        Ok(WindowGrid {
            width,
            height,
            patch,
            stride,
            rows: windows_along(height, patch, stride),
            cols: windows_along(width, patch, stride),
        })
    }

    /// Top-left pixel `(x, y)` of window (r, c).
    pub fn origin(&self, r: usize, c: usize) -> (u32, u32) {
        (c as u32 * self.stride, r as u32 * self.stride)
    }

    /// Number of windows (`rows * cols`).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Always false: a grid has at least one window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size `(width, height)` of the photograph padded (right and bottom) so that every
    /// window lies inside it: `((cols - 1) * S + P, (rows - 1) * S + P)`.
    pub fn padded_size(&self) -> (u32, u32) {
        (
            (self.cols as u32 - 1) * self.stride + self.patch,
            (self.rows as u32 - 1) * self.stride + self.patch,
        )
    }

    /// The windows (along one axis with `n` windows) containing coordinate `x`, as
    /// `(window index, offset of x inside it)`. Never empty for `x` inside the photograph.
    pub(crate) fn covering(&self, x: u32, n: usize) -> impl Iterator<Item = (usize, u32)> {
        let (p, s) = (self.patch, self.stride);
        let first = if x + 1 > p {
            (x + 1 - p).div_ceil(s)
        } else {
            0
        } as usize;
        let last = ((x / s) as usize).min(n - 1);
        (first..=last).map(move |k| (k, x - k as u32 * s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_formula() {
        let g = WindowGrid::new(4288, 2848, 64, 32).unwrap();
        assert_eq!((g.cols, g.rows), (133, 88));
        assert_eq!(g.len(), 133 * 88);
        assert_eq!(g.padded_size(), (4288, 2848));
        assert_eq!(g.origin(2, 3), (96, 64));

        let g = WindowGrid::new(65, 30, 64, 32).unwrap();
        assert_eq!((g.cols, g.rows), (2, 1));
        assert_eq!(g.padded_size(), (96, 64));

        let g = WindowGrid::new(4, 4, 2, 1).unwrap();
        assert_eq!((g.cols, g.rows), (3, 3));
        assert_eq!(g.padded_size(), (4, 4));

        let g = WindowGrid::new(10, 7, 4, 3).unwrap();
        assert_eq!((g.cols, g.rows), (3, 2));
        assert_eq!(g.padded_size(), (10, 7));
        assert!(!g.is_empty());
    }

    #[test]
    fn rejects_bad_settings() {
        for (w, h, p, s) in [(0, 5, 2, 1), (5, 0, 2, 1), (5, 5, 0, 1), (5, 5, 2, 0)] {
            assert!(WindowGrid::new(w, h, p, s).is_err(), "{w} {h} {p} {s}");
        }
        let e = WindowGrid::new(5, 5, 2, 3).unwrap_err().to_string();
        assert!(e.contains("stride 3 exceeds patch size 2"), "{e}");
    }

    #[test]
    fn every_pixel_is_covered_by_exactly_the_right_windows() {
        for (len, p, s) in [
            (4u32, 2u32, 1u32),
            (10, 4, 3),
            (7, 7, 7),
            (3, 8, 4),
            (100, 16, 5),
        ] {
            let g = WindowGrid::new(len, 1, p, s).unwrap();
            for x in 0..len {
                let got: Vec<(usize, u32)> = g.covering(x, g.cols).collect();
                let want: Vec<(usize, u32)> = (0..g.cols)
                    .filter(|&c| g.origin(0, c).0 <= x && x < g.origin(0, c).0 + p)
                    .map(|c| (c, x - g.origin(0, c).0))
                    .collect();
                assert!(!got.is_empty());
                assert_eq!(got, want, "len {len} p {p} s {s} x {x}");
            }
        }
    }
}
