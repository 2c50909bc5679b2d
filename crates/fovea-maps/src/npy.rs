//! `heatmap.npy` (CONTRACTS 5): numpy `.npy`, dtype `<f4`, C order, shape `(4, h, w)`.
//!
//! Writing goes through ndarray-npy into memory, then [`fovea_data::write_atomic`]
//! (a temporary file in the same folder, renamed), so a reader never sees half a file.
//!
//! Reading is defensive because the file may be anything: its size is checked against the
//! expected shape before it is read, the header's declared length is checked against the
//! file before ndarray-npy parses the header (it allocates what the header claims), and the
//! data is decoded from little-endian bytes without any alignment requirement. Shape,
//! dtype, order, length, and every value (finite, in [0, 1]) are checked; every problem is
//! a [`MapsError::Npy`] naming the file.

use std::path::Path;

use ndarray::ArrayView3;
use ndarray_npy::npy::header::Header;
use ndarray_npy::WriteNpyExt;

use crate::error::{MapsError, Result};
use crate::heatmap::{cell_shape, Heatmap, NUM_LESIONS};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Most header bytes a file may have beyond its data (v1 headers are at most 64 KiB).
const MAX_HEADER: u64 = 65_536 + 12;

impl Heatmap {
    /// Writes the heatmap as float32 `(4, h, w)` C-order `.npy`, atomically.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let view =
            ArrayView3::from_shape((NUM_LESIONS, self.h, self.w), &self.data).map_err(|e| {
                MapsError::npy(path, format!("heatmap data does not fit its shape: {e}"))
            })?;
        let mut bytes = Vec::with_capacity(self.data.len() * 4 + 128);
        view.write_npy(&mut bytes)
            .map_err(|e| MapsError::npy(path, format!("cannot encode: {e}")))?;
        fovea_data::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Reads a heatmap written by [`Heatmap::write_npy`] for a `width` x `height`
    /// photograph with cells of side `cell`. Errors (naming the file) if it is not an
    /// `.npy`, is truncated, has another dtype, order or shape, or holds a value that is not
    /// a finite number in [0, 1].
    pub fn read_npy(path: impl AsRef<Path>, width: u32, height: u32, cell: u32) -> Result<Heatmap> {
        let path = path.as_ref();
        let (h, w) = cell_shape(width, height, cell)?;
        let want_bytes = (NUM_LESIONS * h * w * 4) as u64;
        let io = |e| MapsError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > want_bytes + MAX_HEADER {
            return Err(MapsError::npy(
                path,
                format!(
                    "{size} bytes is too large for a (4, {h}, {w}) float32 heatmap of a \
                     {width}x{height} photograph at cell {cell}"
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let data = parse(&bytes, h, w).map_err(|reason| {
            MapsError::npy(
                path,
                format!("{reason} (expected a (4, {h}, {w}) float32 heatmap of a {width}x{height} photograph at cell {cell})"),
            )
        })?;
        Heatmap::from_data(width, height, cell, data)
    }
}

/// Decodes a `(4, h, w)` `<f4` C-order `.npy` from `bytes`; the error says what is wrong.
fn parse(bytes: &[u8], h: usize, w: usize) -> std::result::Result<Vec<f32>, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file".into());
    }
    // The header's declared length, checked before ndarray-npy allocates it.
    let (start, len) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        2 | 3 => return Err("truncated .npy header".into()),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if start + len > bytes.len() {
        return Err("truncated .npy header".into());
    }
    let mut reader = bytes;
    let header =
        Header::from_reader(&mut reader).map_err(|e| format!("malformed .npy header: {e}"))?;
    match header.type_descriptor.as_string() {
        Some(d) if d == "<f4" => {}
        _ => {
            return Err(format!(
                "dtype {:?} is not little-endian float32 ('<f4')",
                header.type_descriptor
            ))
        }
    }
    if header.layout.is_fortran() {
        return Err("Fortran-ordered array (expected C order)".into());
    }
    if header.shape != [NUM_LESIONS, h, w] {
        return Err(format!("shape {:?}", header.shape));
    }
    let want = NUM_LESIONS * h * w * 4;
    if reader.len() != want {
        let what = if reader.len() < want {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(format!("{what}: {} data bytes", reader.len()));
    }
    let data: Vec<f32> = reader
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(k) = data.iter().position(|v| !(0.0..=1.0).contains(v)) {
        let (c, rest) = (k / (h * w), k % (h * w));
        return Err(format!(
            "{} value {} at cell ({}, {}) is not a probability in [0, 1]",
            fovea_data::LESION_CODES[c],
            data[k],
            rest / w,
            rest % w
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;
    use proptest::prelude::*;

    fn sample() -> Heatmap {
        let mut m = Heatmap::new(10, 7, 3).unwrap();
        for (k, v) in m.data.iter_mut().enumerate() {
            *v = k as f32 / 64.0;
        }
        m
    }

    fn err(path: &Path, w: u32, h: u32, cell: u32) -> String {
        Heatmap::read_npy(path, w, h, cell).unwrap_err().to_string()
    }

    #[test]
    fn round_trip_and_shape_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heatmap.npy");
        let m = sample();
        m.write_npy(&path).unwrap();
        assert_eq!(Heatmap::read_npy(&path, 10, 7, 3).unwrap(), m);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // numpy's view of it: header dict as numpy writes it.
        let bytes = std::fs::read(&path).unwrap();
        let head = String::from_utf8_lossy(&bytes[10..80]);
        assert!(head.contains("'descr': '<f4'"), "{head}");
        assert!(head.contains("'shape': (4, 3, 4)"), "{head}");

        let e = err(&path, 10, 7, 2);
        assert!(
            e.starts_with(&format!("{}: shape [4, 3, 4]", path.display())),
            "{e}"
        );
        assert!(
            e.contains("(4, 4, 5) float32 heatmap of a 10x7 photograph at cell 2"),
            "{e}"
        );
        let e = err(&dir.path().join("missing.npy"), 10, 7, 3);
        assert!(e.contains("missing.npy"), "{e}");
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, b"hello world, not numpy").unwrap();
        assert!(err(&path, 10, 7, 3).contains("not an .npy file"));

        let f64s = ndarray::Array3::<f64>::zeros((4, 3, 4));
        ndarray_npy::write_npy(&path, &f64s).unwrap();
        let e = err(&path, 10, 7, 3);
        assert!(e.contains("dtype") && e.contains("'<f4'"), "{e}");

        let fortran = ndarray::Array3::<f32>::zeros((4, 3, 4).f());
        ndarray_npy::write_npy(&path, &fortran).unwrap();
        assert!(err(&path, 10, 7, 3).contains("Fortran"));

        let two_d = ndarray::Array2::<f32>::zeros((3, 4));
        ndarray_npy::write_npy(&path, &two_d).unwrap();
        assert!(err(&path, 10, 7, 3).contains("shape [3, 4]"));

        let mut m = sample();
        m.data[3 * 4 + 5] = 1.5;
        m.write_npy(&path).unwrap();
        let e = err(&path, 10, 7, 3);
        assert!(
            e.contains("HE value 1.5 at cell (1, 1) is not a probability"),
            "{e}"
        );
        m.data[3 * 4 + 5] = f32::NAN;
        m.write_npy(&path).unwrap();
        assert!(err(&path, 10, 7, 3).contains("HE value NaN"));

        let mut bytes = Vec::new();
        sample().write_npy(&path).unwrap();
        bytes.extend(std::fs::read(&path).unwrap());
        bytes.extend([0, 0, 0, 0]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(err(&path, 10, 7, 3).contains("trailing bytes"));

        // A header claiming a huge length is refused before anything is allocated.
        let mut huge = b"\x93NUMPY\x02\x00".to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        assert!(err(&path, 10, 7, 3).contains("truncated .npy header"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heatmap.npy");
        sample().write_npy(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for n in 0..bytes.len() {
            std::fs::write(&path, &bytes[..n]).unwrap();
            let e = err(&path, 10, 7, 3);
            assert!(e.starts_with(&path.display().to_string()), "{n}: {e}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            keep_magic in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.npy");
            let mut b = bytes.clone();
            if keep_magic && b.len() >= 8 {
                b[..8].copy_from_slice(b"\x93NUMPY\x01\x00");
            }
            std::fs::write(&path, &b).unwrap();
            prop_assert!(Heatmap::read_npy(&path, 10, 7, 3).is_err());
        }

        #[test]
        fn corrupted_valid_files_never_panic(pos in 0usize..300, byte in any::<u8>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.npy");
            sample().write_npy(&path).unwrap();
            let mut b = std::fs::read(&path).unwrap();
            let k = pos % b.len();
            b[k] = byte;
            std::fs::write(&path, &b).unwrap();
            let _ = Heatmap::read_npy(&path, 10, 7, 3);
        }
    }
}
