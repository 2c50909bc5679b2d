//! `patches.npy`: numpy `.npy` v1.0, dtype `|u1`, C order, shape `(N, P, P, 3)`.
//!
//! Writing is streamed: N is not known until the last photograph is done, so a header of
//! fixed length is written first and rewritten with the final shape at the end. ndarray-npy
//! writes only arrays whose shape is known up front, so this small writer is hand-written
//! (the format: magic, version, little-endian header length, a Python dict literal padded
//! with spaces to a multiple of 64 bytes, then the raw bytes). Reading goes through
//! ndarray-npy's memory-mapped view, which checks the header.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

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
/// Patches are staged in page-aligned buffers of [`STAGE_BYTES`]; a full buffer goes to
/// an I/O thread that writes it at its offset while the next one fills, so copying and
/// writing overlap. (One thread: ext4 serialises writes that extend a file under its inode
/// lock, so a second one only waited on the first: measured, 1.9 % of the extraction's CPU
/// time spinning on that lock, and no faster writes.)
/// Blocks of [`ALIGN`] bytes that are all zero (the black surround of the photographs
/// gives many: 16% of the IDRiD sample's store at P = 128) are not written: the file
/// keeps a hole there, which reads back as zeros (a sparse file, as `cp --sparse` makes).
/// Where the file system allows it (Linux, ext4, xfs...), the file is opened with
/// `O_DIRECT`: the disk reads the staged bytes directly, with no copy into the page cache.
/// Writing a 2.2 GB store through the page cache cost more CPU than cropping the patches
/// (the kernel's copy, page allocation and writeback), and the final `fsync` then waited
/// for most of the store; direct writes proceed at the disk's speed while the photographs
/// are decoded. The last partial block and the final header, which direct I/O cannot write
/// (it needs whole, aligned blocks), are written through the page cache after `O_DIRECT`
/// is cleared, then the file is synced.
///
/// Where `O_DIRECT` is refused (tmpfs, other systems), writes go through the page cache
/// and every [`WRITEBACK_BYTES`] the kernel is asked to start writing them out
/// (`sync_file_range`), so the disk works during the extraction rather than all at once
/// in the final `fsync`. Both calls go through libc: no maintained crate wraps them.
pub struct NpyPatchWriter {
    path: PathBuf,
    file: Arc<File>,
    /// Whether writes still go direct (cleared for good by the first refusal).
    direct: Arc<AtomicBool>,
    /// The buffer being filled; its stage is `cur[start..start + STAGE_BYTES]`.
    cur: Stage,
    /// Bytes staged in `cur`.
    staged: usize,
    /// File offset of `cur`'s first byte (a multiple of [`ALIGN`] while `direct`).
    offset: u64,
    /// Buffers back from the I/O thread.
    free: Vec<Stage>,
    /// Buffers allocated so far (at most [`STAGES`]).
    allocated: usize,
    in_flight: usize,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    worker: Option<std::thread::JoinHandle<()>>,
    patch: u32,
    count: u64,
}

/// Bytes appended between two writeback requests (page-cache mode).
pub const WRITEBACK_BYTES: usize = 64 << 20;
/// Size of one staging buffer, a multiple of [`ALIGN`].
pub const STAGE_BYTES: usize = 8 << 20;
/// Staging buffers: one filling, the others queued or being written.
const STAGES: usize = 6;
/// Alignment of direct writes (memory address, file offset and length).
const ALIGN: usize = 4096;

/// A staging buffer: an allocation with an aligned window of [`STAGE_BYTES`].
struct Stage {
    buf: Vec<u8>,
    start: usize,
}

impl Stage {
    fn new() -> Self {
        let buf = vec![0u8; STAGE_BYTES + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Stage { buf, start }
    }
    fn bytes(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + STAGE_BYTES]
    }
}

/// A buffer to write at a file offset.
struct Job {
    stage: Stage,
    len: usize,
    offset: u64,
}

/// A written buffer back from an I/O thread.
struct Done {
    stage: Stage,
    result: std::io::Result<()>,
}

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

/// Creates (truncating) `path` for direct I/O, or `None` where the system refuses it.
fn create_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// Clears `O_DIRECT` on an open file, so unaligned writes go through the page cache.
fn clear_direct(file: &File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a valid descriptor with F_GETFL / F_SETFL and an int flag set
        // touches no memory.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// Writes `bytes` at `offset`. A file system may accept `O_DIRECT` at open and refuse the
/// writes: then `O_DIRECT` is cleared, `direct` set false, and the write goes through the
/// page cache.
fn write_at(file: &File, direct: &AtomicBool, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let was_direct = direct.load(Ordering::SeqCst);
    match file.write_all_at(bytes, offset) {
        Err(e) if was_direct && e.raw_os_error() == Some(libc::EINVAL) => {
            clear_direct(file)?;
            direct.store(false, Ordering::SeqCst);
            file.write_all_at(bytes, offset)
        }
        r => r,
    }
}

/// Whether a block is all zero (64 bytes at a time, which the compiler vectorises).
fn is_zero(block: &[u8]) -> bool {
    block
        .chunks(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Writes `bytes` at `offset` (a multiple of [`ALIGN`]) except its all-zero [`ALIGN`]
/// blocks, which the file keeps as holes; returns the bytes actually written.
fn write_sparse(
    file: &File,
    direct: &AtomicBool,
    bytes: &[u8],
    offset: u64,
) -> std::io::Result<usize> {
    let mut written = 0;
    let mut run_start: Option<usize> = None;
    for (i, block) in bytes.chunks(ALIGN).enumerate() {
        let at = i * ALIGN;
        match (is_zero(block), run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(s)) => {
                write_at(file, direct, &bytes[s..at], offset + s as u64)?;
                written += at - s;
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        write_at(file, direct, &bytes[s..], offset + s as u64)?;
        written += bytes.len() - s;
    }
    Ok(written)
}

/// The I/O thread: writes each job and hands its buffer back.
fn io_worker(
    file: Arc<File>,
    direct: Arc<AtomicBool>,
    jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
) {
    let mut since_writeback = 0usize;
    for job in jobs {
        let result = write_sparse(&file, &direct, job.stage.bytes(job.len), job.offset);
        if let Ok(n) = result {
            if !direct.load(Ordering::SeqCst) {
                since_writeback += n;
                if since_writeback >= WRITEBACK_BYTES {
                    start_writeback(&file);
                    since_writeback = 0;
                }
            }
        }
        let reply = Done {
            stage: job.stage,
            result: result.map(|_| ()),
        };
        if done.send(reply).is_err() {
            break;
        }
    }
}

impl NpyPatchWriter {
    /// Creates `path` (truncating) for patches of side `patch`.
    pub fn create(path: &Path, patch: u32) -> Result<Self> {
        let (file, direct) = match create_direct(path) {
            Some(f) => (f, true),
            None => (
                File::create(path).map_err(|e| StoreError::io(path, e))?,
                false,
            ),
        };
        let file = Arc::new(file);
        let direct = Arc::new(AtomicBool::new(direct));
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        let worker = {
            let (file, direct) = (Arc::clone(&file), Arc::clone(&direct));
            std::thread::Builder::new()
                .name("npy-writer".into())
                .spawn(move || io_worker(file, direct, job_rx, done_tx))
                .map_err(|e| StoreError::io(path, e))?
        };
        let mut w = NpyPatchWriter {
            path: path.to_path_buf(),
            file,
            direct,
            cur: Stage::new(),
            staged: 0,
            offset: 0,
            free: Vec::new(),
            allocated: 1,
            in_flight: 0,
            jobs: Some(jobs),
            done,
            worker: Some(worker),
            patch,
            count: 0,
        };
        // The header is staged like the patches and rewritten with the final shape.
        w.push(&header(0, patch))?;
        Ok(w)
    }

    /// Whether the file is (still) written with direct I/O.
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::SeqCst)
    }

    /// Takes one written buffer back from the I/O thread (waiting for it).
    fn reclaim(&mut self) -> Result<()> {
        let d = self
            .done
            .recv()
            .map_err(|_| StoreError::corrupt(&self.path, "the writer thread stopped"))?;
        self.in_flight -= 1;
        self.free.push(d.stage);
        d.result.map_err(|e| StoreError::io(&self.path, e))
    }

    /// Sends the first `len` bytes of the current buffer to be written, and takes a fresh
    /// buffer.
    fn submit(&mut self, len: usize) -> Result<()> {
        let next = match self.free.pop() {
            Some(s) => s,
            None if self.allocated < STAGES => {
                self.allocated += 1;
                Stage::new()
            }
            None => {
                self.reclaim()?;
                self.free.pop().expect("a buffer was just reclaimed")
            }
        };
        let stage = std::mem::replace(&mut self.cur, next);
        let job = Job {
            stage,
            len,
            offset: self.offset,
        };
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| StoreError::corrupt(&self.path, "the writer thread stopped"))?;
        self.in_flight += 1;
        self.offset += len as u64;
        Ok(())
    }

    /// Stages bytes, handing the buffer to the I/O thread each time it fills.
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let n = (STAGE_BYTES - self.staged).min(bytes.len());
            let at = self.staged;
            self.cur.bytes_mut()[at..at + n].copy_from_slice(&bytes[..n]);
            self.staged += n;
            bytes = &bytes[n..];
            if self.staged == STAGE_BYTES {
                self.submit(STAGE_BYTES)?;
                self.staged = 0;
            }
        }
        Ok(())
    }

    /// Appends whole patches: `data.len()` must be a multiple of P*P*3.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        let one = (self.patch as usize).pow(2) * 3;
        if !data.len().is_multiple_of(one) {
            return Err(StoreError::corrupt(&self.path, "partial patch appended"));
        }
        self.push(data)?;
        self.count += (data.len() / one) as u64;
        Ok(())
    }

    /// Appends the P x P patches of an RGB image (HWC, `width` pixels per row) whose
    /// top-left corners are `corners`, cropping them straight into the staging buffer.
    pub fn append_crops(&mut self, rgb: &[u8], width: u32, corners: &[(u32, u32)]) -> Result<()> {
        let (p, row_bytes) = (self.patch as usize, width as usize * 3);
        for &(x, y) in corners {
            let first = y as usize * row_bytes + x as usize * 3;
            let end = first + (p - 1) * row_bytes + p * 3;
            if x as usize + p > width as usize || end > rgb.len() {
                return Err(StoreError::corrupt(
                    &self.path,
                    format!("patch at ({x}, {y}) is outside its photograph"),
                ));
            }
            for r in 0..p {
                let src = first + r * row_bytes;
                self.push(&rgb[src..src + p * 3])?;
            }
            self.count += 1;
        }
        Ok(())
    }

    /// Number of patches written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes what is staged and the final header, and syncs the file.
    pub fn finish(mut self) -> Result<u64> {
        // Whole blocks still go direct; the tail goes through the page cache below.
        let whole = if self.is_direct() {
            self.staged / ALIGN * ALIGN
        } else {
            self.staged
        };
        let tail = self.cur.bytes(self.staged)[whole..].to_vec();
        if whole > 0 {
            self.submit(whole)?;
        }
        self.staged = 0;
        // Wait for every buffer, then stop the I/O thread.
        while self.in_flight > 0 {
            self.reclaim()?;
        }
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            w.join()
                .map_err(|_| StoreError::corrupt(&self.path, "the writer thread panicked"))?;
        }
        let io = |e| StoreError::io(&self.path, e);
        if self.is_direct() {
            clear_direct(&self.file).map_err(io)?;
            self.direct.store(false, Ordering::SeqCst);
        }
        let buffered = AtomicBool::new(false);
        write_at(&self.file, &buffered, &tail, self.offset).map_err(io)?;
        write_at(&self.file, &buffered, &header(self.count, self.patch), 0).map_err(io)?;
        // Zero blocks at the end were left as holes: the file must still reach its end.
        self.file
            .set_len(self.offset + tail.len() as u64)
            .map_err(io)?;
        self.file.sync_all().map_err(io)?;
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
    /// Maps `path` and checks it holds a `|u1` C-order array of shape (N, P, P, 3): another
    /// dtype, Fortran order or another shape is an error naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = fovea_data::io::open_regular(path)?;
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
        let (shape, len, c_order) = {
            let v = me.view()?;
            (v.shape().to_vec(), v.len(), v.is_standard_layout())
        };
        // ndarray-npy maps a Fortran-ordered file too (with reversed strides), but patches
        // are read as raw C-order bytes: the same values in Fortran order would be read
        // scrambled. (The dtype is checked by `view_npy`: only `u1` maps to u8.)
        if !c_order {
            return Err(StoreError::corrupt(
                path,
                "is Fortran-ordered (fortran_order: True); a patch store holds a C-order \
                 array (numpy.ascontiguousarray gives one)",
            ));
        }
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
    fn many_staging_buffers_and_crops_read_back_exactly() {
        // More than STAGES buffers of patches, crossing buffer boundaries mid-patch, with an
        // unaligned tail: the file must hold every byte in order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patches.npy");
        let p = 20u32;
        let (w, h) = (333u32, 61u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let corners: Vec<(u32, u32)> = (0..=h - p)
            .flat_map(|y| (0..=w - p).map(move |x| (x, y)))
            .collect();
        let one = (p * p * 3) as usize;
        let rounds = (STAGES * STAGE_BYTES) / (corners.len() * one) + 2;
        let mut writer = NpyPatchWriter::create(&path, p).unwrap();
        for _ in 0..rounds {
            writer.append_crops(&rgb, w, &corners).unwrap();
        }
        writer.append(&vec![9u8; one]).unwrap();
        assert!(writer
            .append_crops(&rgb, w, &[(w - p + 1, 0)])
            .unwrap_err()
            .to_string()
            .contains("outside"));
        let n = writer.finish().unwrap();
        assert_eq!(n as usize, rounds * corners.len() + 1);
        let m = NpyPatches::open(&path).unwrap();
        assert_eq!(m.len(), n as usize);
        assert!(m.len() * one > STAGES * STAGE_BYTES);
        let crop = |(x, y): (u32, u32)| -> Vec<u8> {
            let mut v = Vec::new();
            for r in 0..p {
                let s = (((y + r) * w + x) * 3) as usize;
                v.extend_from_slice(&rgb[s..s + one / p as usize]);
            }
            v
        };
        for k in [
            0,
            1,
            corners.len() - 1,
            corners.len(),
            m.len() / 2,
            m.len() - 2,
        ] {
            assert_eq!(
                m.patch(k).unwrap(),
                &crop(corners[k % corners.len()])[..],
                "patch {k}"
            );
        }
        assert_eq!(m.patch(m.len() - 1).unwrap(), &vec![9u8; one][..]);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(len, HEADER_LEN + m.len() * one);
    }

    #[test]
    fn zero_blocks_become_holes_that_read_back_as_zeros() {
        // Patches of zeros and of data in turn, over several staging buffers, ending with
        // whole zero blocks (the file must still reach its full length) and a zero tail.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patches.npy");
        let p = 64u32;
        let one = (p * p * 3) as usize;
        let data: Vec<u8> = (0..one).map(|i| (i % 253) as u8 + 1).collect();
        let zeros = vec![0u8; one];
        let n = 3 * STAGE_BYTES / one + 7;
        let mut w = NpyPatchWriter::create(&path, p).unwrap();
        for k in 0..n {
            w.append(if k % 3 == 1 { &data } else { &zeros }).unwrap();
        }
        for _ in 0..4 {
            w.append(&zeros).unwrap();
        }
        assert_eq!(w.finish().unwrap() as usize, n + 4);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(len, HEADER_LEN + (n + 4) * one);
        let m = NpyPatches::open(&path).unwrap();
        for k in 0..n + 4 {
            let want = if k < n && k % 3 == 1 { &data } else { &zeros };
            assert_eq!(m.patch(k).unwrap(), &want[..], "patch {k}");
        }
        // Where the file system keeps holes (ext4, xfs, tmpfs...), the zero blocks took no
        // space; this is what makes the store faster to write, not what makes it right.
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        eprintln!("{len} bytes, {allocated} allocated");
    }

    #[test]
    fn is_zero_checks_every_byte() {
        assert!(is_zero(&[0u8; 4096]));
        assert!(is_zero(&[]));
        for at in [0, 63, 64, 1000, 4095] {
            let mut b = vec![0u8; 4096];
            b[at] = 1;
            assert!(!is_zero(&b), "byte {at}");
        }
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
