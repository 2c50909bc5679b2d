//! `patches.npy`: numpy `.npy` v1.0, dtype `|u1`, C order, shape `(N, P, P, 3)`.
//!
//! Writing is streamed: N is not known until the last photograph is done, so a header of
//! fixed length is written first and rewritten with the final shape at the end. ndarray-npy
//! writes only arrays whose shape is known up front, so this small writer is hand-written
//! (the format: magic, version, little-endian header length, a Python dict literal padded
//! with spaces to a multiple of 64 bytes, then the raw bytes). Reading goes through
//! ndarray-npy's memory-mapped view, which checks the header.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ndarray::ArrayView4;
use ndarray_npy::ViewNpyExt;

use crate::error::{Result, StoreError};

/// Total header size we reserve (magic + version + length + dict), a multiple of 64; room
/// for any shape of four 20-digit numbers.
const HEADER_LEN: usize = 128;

fn header(n: u64, p: u32) -> Vec<u8> {
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n}, {p}, {p}, 3), }}");
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    while h.len() < HEADER_LEN - 1 {
        h.push(b' ');
    }
    h.push(b'\n');
    h
}

/// Streams patches of side P into a `.npy` file.
///
/// Every [`WRITEBACK_BYTES`] it asks the kernel to start writing what it has to disk
/// without waiting for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, through libc:
/// no maintained crate wraps it). The disk then works while the photographs are decoded,
/// rather than all at once in the final `fsync`, which would otherwise find the whole
/// store (2.2 GB for P = 128 on the IDRiD sample) still in the page cache: the kernel only
/// starts writing back by itself once dirty pages reach a tenth of the memory.
pub struct NpyPatchWriter {
    path: PathBuf,
    out: BufWriter<File>,
    patch: u32,
    count: u64,
    since_writeback: usize,
}

/// Bytes appended between two writeback requests.
pub const WRITEBACK_BYTES: usize = 64 << 20;

/// Starts writing back the file's dirty pages (not waiting); a no-op off Linux.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open file descriptor; offset 0 and length 0 mean the whole file.
        // Failure only means the kernel writes back later by itself, so it is ignored.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

impl NpyPatchWriter {
    /// Creates `path` (truncating) for patches of side `patch`.
    pub fn create(path: &Path, patch: u32) -> Result<Self> {
        let file = File::create(path).map_err(|e| StoreError::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 22, file);
        out.write_all(&header(0, patch))
            .map_err(|e| StoreError::io(path, e))?;
        Ok(NpyPatchWriter {
            path: path.to_path_buf(),
            out,
            patch,
            count: 0,
            since_writeback: 0,
        })
    }

    /// Appends whole patches: `data.len()` must be a multiple of P*P*3.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        let one = (self.patch as usize).pow(2) * 3;
        if !data.len().is_multiple_of(one) {
            return Err(StoreError::corrupt(&self.path, "partial patch appended"));
        }
        self.out
            .write_all(data)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.count += (data.len() / one) as u64;
        self.since_writeback += data.len();
        if self.since_writeback >= WRITEBACK_BYTES {
            self.out
                .flush()
                .map_err(|e| StoreError::io(&self.path, e))?;
            start_writeback(self.out.get_ref());
            self.since_writeback = 0;
        }
        Ok(())
    }

    /// Number of patches written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the final header, flushes and syncs the file.
    pub fn finish(mut self) -> Result<u64> {
        let io = |e| StoreError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| StoreError::io(&self.path, e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header(self.count, self.patch))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(self.count)
    }
}

/// A memory-mapped `patches.npy`.
pub struct NpyPatches {
    mmap: memmap2::Mmap,
    path: PathBuf,
    n: usize,
    p: usize,
    offset: usize,
}

impl NpyPatches {
    /// Maps `path` and checks it holds a `|u1` C-order array of shape (N, P, P, 3).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        // SAFETY: the store is written once and renamed into place; nothing modifies it
        // while it is mapped (a concurrent writer would replace the folder, not the file).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| StoreError::io(path, e))?;
        let mut me = NpyPatches {
            mmap,
            path: path.to_path_buf(),
            n: 0,
            p: 0,
            offset: 0,
        };
        let (shape, len) = {
            let v = me.view()?;
            (v.shape().to_vec(), v.len())
        };
        if shape[3] != 3 || shape[1] != shape[2] {
            return Err(StoreError::corrupt(
                path,
                format!("shape {shape:?} is not (N, P, P, 3)"),
            ));
        }
        me.n = shape[0];
        me.p = shape[1];
        me.offset = me.mmap.len() - len;
        Ok(me)
    }

    /// The array view, `[N, P, P, 3]`.
    pub fn view(&self) -> Result<ArrayView4<'_, u8>> {
        ArrayView4::<u8>::view_npy(&self.mmap[..]).map_err(|e| {
            StoreError::corrupt(&self.path, format!("not a (N, P, P, 3) uint8 .npy: {e}"))
        })
    }

    /// Number of patches.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Patch side P.
    pub fn patch_size(&self) -> usize {
        self.p
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw bytes of patch k (P*P*3, HWC RGB).
    pub fn patch(&self, k: usize) -> Option<&[u8]> {
        let one = self.p * self.p * 3;
        let start = self.offset + k * one;
        (k < self.n).then(|| &self.mmap[start..start + one])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_reads_back_with_ndarray_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("patches.npy");
        let mut w = NpyPatchWriter::create(&p, 2).unwrap();
        let a: Vec<u8> = (0..12).collect();
        let b: Vec<u8> = (100..124).collect();
        w.append(&a).unwrap();
        w.append(&b).unwrap();
        assert!(w.append(&[1, 2, 3]).is_err());
        assert_eq!(w.finish().unwrap(), 3);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 36);
        assert_eq!(HEADER_LEN % 64, 0);
        let arr: ndarray::Array4<u8> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(arr.shape(), &[3, 2, 2, 3]);
        assert_eq!(arr[[0, 1, 1, 2]], 11);
        assert_eq!(arr[[2, 1, 1, 2]], 123);
        let m = NpyPatches::open(&p).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.patch(1).unwrap(), &b[..12]);
        assert!(m.patch(3).is_none());
    }

    #[test]
    fn truncated_or_garbage_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("patches.npy");
        let mut w = NpyPatchWriter::create(&p, 4).unwrap();
        w.append(&[7u8; 96]).unwrap();
        w.finish().unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        let e = NpyPatches::open(&p).err().unwrap().to_string();
        assert!(e.contains("patches.npy"), "{e}");
        std::fs::write(&p, b"hello").unwrap();
        assert!(NpyPatches::open(&p).is_err());
    }
}
