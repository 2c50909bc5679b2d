//! [`Heatmap`]: the four lesion probability maps of one photograph at cell resolution
//! (CONTRACTS 5).
//!
//! Cell (i, j) covers the photograph's pixels y in `[i*cell, (i+1)*cell)`, x in
//! `[j*cell, (j+1)*cell)` (clipped at the right and bottom border), so there are
//! `h = ceil(height / cell)` rows and `w = ceil(width / cell)` columns; `cell = 1` is full
//! resolution. A cell is represented by its centre pixel
//! `(j*cell + min(cell, width - j*cell) / 2, i*cell + min(cell, height - i*cell) / 2)`.

use fovea_data::fov::FovGrid;

use crate::error::{MapsError, Result};

/// Number of lesion maps in a heatmap (MA, HE, EX, SE): [`fovea_data::NUM_LESIONS`].
pub use fovea_data::NUM_LESIONS;

/// Per-lesion maps of one photograph; `data` is `[4][h][w]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Photograph width in pixels.
    pub width: u32,
    /// Photograph height in pixels.
    pub height: u32,
    /// Cell side in pixels (CONTRACTS 5's `stride`).
    pub cell: u32,
    /// Cell rows: `ceil(height / cell)`.
    pub h: usize,
    /// Cell columns: `ceil(width / cell)`.
    pub w: usize,
    /// Values, lesion-major then row-major: `data[(c * h + i) * w + j]`.
    pub data: Vec<f32>,
}

/// `(h, w)` of a heatmap, checking the sizes.
pub(crate) fn cell_shape(width: u32, height: u32, cell: u32) -> Result<(usize, usize)> {
    if width == 0 || height == 0 {
        return Err(MapsError::setting(
            "heatmap",
            format!("photograph size {width}x{height} is empty"),
        ));
    }
    if cell == 0 {
        return Err(MapsError::setting(
            "cell size",
            "a heatmap cell must be at least 1 pixel",
        ));
    }
    let (h, w) = (
        height.div_ceil(cell) as usize,
        width.div_ceil(cell) as usize,
    );
    // The byte size of the four float32 maps must be a number (a summary.json may claim
    // any size).
    if h.checked_mul(w)
        .and_then(|n| n.checked_mul(NUM_LESIONS * 4))
        .is_none_or(|n| u64::try_from(n).is_err())
    {
        return Err(MapsError::setting(
            "heatmap",
            format!("a {width}x{height} photograph at cell {cell} is too large a heatmap"),
        ));
    }
    Ok((h, w))
}

/// Centre of the cell starting at `start` along an axis of length `len`.
fn centre(start: u32, cell: u32, len: u32) -> u32 {
    start + cell.min(len - start) / 2
}

impl Heatmap {
    /// An all-zero heatmap for a `width` x `height` photograph. Errors on a zero size.
    pub fn new(width: u32, height: u32, cell: u32) -> Result<Heatmap> {
        let (h, w) = cell_shape(width, height, cell)?;
        Ok(Heatmap {
            width,
            height,
            cell,
            h,
            w,
            data: vec![0.0; NUM_LESIONS * h * w],
        })
    }

    /// A heatmap with the given values (`[4][h][w]`, row-major). Errors on a zero size or
    /// a data length other than `4 * h * w`.
    pub fn from_data(width: u32, height: u32, cell: u32, data: Vec<f32>) -> Result<Heatmap> {
        let (h, w) = cell_shape(width, height, cell)?;
        if data.len() != NUM_LESIONS * h * w {
            return Err(MapsError::DataLength {
                got: data.len(),
                expected: NUM_LESIONS * h * w,
                h,
                w,
            });
        }
        Ok(Heatmap {
            width,
            height,
            cell,
            h,
            w,
            data,
        })
    }

    /// This full-resolution map (`cell` 1) at cell side `cell`, each cell the highest value
    /// of its pixels (so a lesion a few pixels wide keeps its peak, and a region exists at
    /// any cell side wherever one exists at full resolution). `cell` 1 gives a copy.
    /// Errors on a heatmap whose cell is not 1, or a zero `cell`.
    pub fn max_pooled(&self, cell: u32) -> Result<Heatmap> {
        if self.cell != 1 {
            return Err(MapsError::setting(
                "heatmap",
                format!(
                    "max pooling needs a full-resolution map, not cell {}",
                    self.cell
                ),
            ));
        }
        let mut out = Heatmap::new(self.width, self.height, cell)?;
        out.data.fill(f32::NEG_INFINITY);
        let (w, h, cs) = (self.w, self.h, cell as usize);
        for c in 0..NUM_LESIONS {
            let src = &self.data[c * w * h..(c + 1) * w * h];
            let dst = &mut out.data[c * out.h * out.w..(c + 1) * out.h * out.w];
            for (y, row) in src.chunks_exact(w).enumerate() {
                let cells = &mut dst[(y / cs) * out.w..(y / cs + 1) * out.w];
                for (m, px) in cells.iter_mut().zip(row.chunks(cs)) {
                    *m = px.iter().fold(*m, |a, &v| a.max(v));
                }
            }
        }
        Ok(out)
    }

    /// Value of lesion `lesion` (0..4) at cell (i, j). Panics out of range, like indexing.
    pub fn at(&self, lesion: usize, i: usize, j: usize) -> f32 {
        assert!(lesion < NUM_LESIONS && i < self.h && j < self.w);
        self.data[(lesion * self.h + i) * self.w + j]
    }

    /// Mutable value of lesion `lesion` at cell (i, j). Panics out of range.
    pub fn at_mut(&mut self, lesion: usize, i: usize, j: usize) -> &mut f32 {
        assert!(lesion < NUM_LESIONS && i < self.h && j < self.w);
        &mut self.data[(lesion * self.h + i) * self.w + j]
    }

    /// The `h * w` values of lesion `c`, row-major. Panics if `c >= 4`.
    pub fn lesion(&self, c: usize) -> &[f32] {
        let n = self.h * self.w;
        &self.data[c * n..(c + 1) * n]
    }

    /// Mutable values of lesion `c`. Panics if `c >= 4`.
    pub fn lesion_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.h * self.w;
        &mut self.data[c * n..(c + 1) * n]
    }

    /// Value of lesion `c` at pixel (x, y): the value of the cell holding it. Panics if
    /// the pixel lies outside the photograph.
    pub fn pixel_value(&self, c: usize, x: u32, y: u32) -> f32 {
        assert!(x < self.width && y < self.height);
        self.at(c, (y / self.cell) as usize, (x / self.cell) as usize)
    }

    /// Centre pixel `(x, y)` of cell (i, j).
    pub fn cell_centre(&self, i: usize, j: usize) -> (u32, u32) {
        let c = self.cell;
        (
            centre(j as u32 * c, c, self.width),
            centre(i as u32 * c, c, self.height),
        )
    }

    /// Pixel rectangle `(x, y, width, height)` of cell (i, j), clipped to the photograph.
    pub fn cell_rect(&self, i: usize, j: usize) -> (u32, u32, u32, u32) {
        let c = self.cell;
        let (x, y) = (j as u32 * c, i as u32 * c);
        (x, y, c.min(self.width - x), c.min(self.height - y))
    }

    /// Sets to 0 every cell whose centre pixel lies outside the field of view.
    ///
    /// Errors if `fov` is not for a photograph of this heatmap's size.
    pub fn zero_outside(&mut self, fov: &FovGrid) -> Result<()> {
        if (fov.width, fov.height) != (self.width, self.height) {
            return Err(MapsError::SizeMismatch {
                what: "the field of view".into(),
                got_w: fov.width,
                got_h: fov.height,
                want_w: self.width,
                want_h: self.height,
            });
        }
        let b = fov.block.max(1);
        let n = self.h * self.w;
        for i in 0..self.h {
            for j in 0..self.w {
                let (x, y) = self.cell_centre(i, j);
                let k = (y / b) as usize * fov.cols + (x / b) as usize;
                if fov.cells.get(k).copied().unwrap_or(0) == 0 {
                    for c in 0..NUM_LESIONS {
                        self.data[c * n + i * self.w + j] = 0.0;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pooling_keeps_each_cells_peak() {
        // 5 x 3 pixels, values x + 10 y (+ 100 per lesion), one spike.
        let mut data: Vec<f32> = (0..NUM_LESIONS * 15)
            .map(|k| ((k / 15) * 100 + (k % 15 / 5) * 10 + k % 5) as f32)
            .collect();
        data[15 + 5] = 999.0; // HE, pixel (0, 1)
        let full = Heatmap::from_data(5, 3, 1, data).unwrap();
        let m = full.max_pooled(2).unwrap();
        assert_eq!((m.h, m.w), (2, 3));
        assert_eq!(m.lesion(0), &[11.0, 13.0, 14.0, 21.0, 23.0, 24.0]);
        assert_eq!(m.lesion(1), &[999.0, 113.0, 114.0, 121.0, 123.0, 124.0]);
        assert_eq!(full.max_pooled(1).unwrap(), full);
        let one = full.max_pooled(64).unwrap();
        assert_eq!(one.data, vec![24.0, 999.0, 224.0, 324.0]);
        // Every pixel's value is at most its cell's.
        for c in 0..NUM_LESIONS {
            for y in 0..3 {
                for x in 0..5 {
                    assert!(full.pixel_value(c, x, y) <= m.pixel_value(c, x, y));
                }
            }
        }
        assert!(m.max_pooled(2).is_err());
        assert!(full.max_pooled(0).is_err());
    }

    #[test]
    fn shape_and_indexing() {
        let mut m = Heatmap::new(10, 7, 3).unwrap();
        assert_eq!((m.h, m.w), (3, 4));
        assert_eq!(m.data.len(), 4 * 3 * 4);
        *m.at_mut(2, 1, 3) = 0.5;
        assert_eq!(m.at(2, 1, 3), 0.5);
        assert_eq!(m.lesion(2)[4 + 3], 0.5);
        assert_eq!(m.pixel_value(2, 9, 3), 0.5);
        assert_eq!(m.pixel_value(2, 9, 6), 0.0);
        assert_eq!(m.cell_rect(2, 3), (9, 6, 1, 1));
        assert_eq!(m.cell_centre(2, 3), (9, 6));
        assert_eq!(m.cell_centre(0, 0), (1, 1));
        assert_eq!(m.cell_centre(1, 2), (7, 4));
        let full = Heatmap::new(4288, 2848, 8).unwrap();
        assert_eq!((full.h, full.w), (356, 536));
        assert!(Heatmap::new(0, 7, 3).is_err());
        assert!(Heatmap::new(5, 7, 0).is_err());
        let e = Heatmap::from_data(10, 7, 3, vec![0.0; 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "heatmap data has 5 values, expected 4 x 3 x 4 = 48"
        );
    }

    #[test]
    fn zero_outside_uses_cell_centres() {
        // FOV block 2 over 6x4: left column of blocks is surround.
        let fov = FovGrid {
            width: 6,
            height: 4,
            block: 2,
            cols: 3,
            rows: 2,
            cells: vec![0, 1, 1, 0, 1, 1],
        };
        let mut m = Heatmap::from_data(6, 4, 1, vec![1.0; 4 * 24]).unwrap();
        m.zero_outside(&fov).unwrap();
        for c in 0..4 {
            for y in 0..4 {
                for x in 0..6 {
                    let want = if x < 2 { 0.0 } else { 1.0 };
                    assert_eq!(m.pixel_value(c, x, y), want);
                }
            }
        }
        // Cell 3: centres at x = 1 (out) and x = 4 (in).
        let mut m = Heatmap::from_data(6, 4, 3, vec![1.0; 4 * 4]).unwrap();
        m.zero_outside(&fov).unwrap();
        assert_eq!(m.lesion(0), &[0.0, 1.0, 0.0, 1.0]);
        let mut small = Heatmap::new(5, 4, 1).unwrap();
        let e = small.zero_outside(&fov).unwrap_err().to_string();
        assert!(e.contains("the field of view is 6x4"), "{e}");
    }
}
