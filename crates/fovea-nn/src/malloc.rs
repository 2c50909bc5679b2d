//! glibc malloc settings for libtorch's CPU tensors.
//!
//! libtorch allocates every CPU tensor with `posix_memalign` and frees it when its last
//! reference goes, so a training step allocates and frees hundreds of megabytes of
//! activations and gradients (the U-Net at 256x256, batch 4: tensors of 4-34 MB). With
//! glibc's defaults, blocks above the (dynamic) mmap threshold are mapped and unmapped on
//! every allocation, and freed memory at the top of the heap above the trim threshold is
//! given back to the kernel; either way the next step touches fresh pages, each one a page
//! fault and a page the kernel zeroes. `fovea bench seg-train` counted 713,000 minor page
//! faults in 7 steps with the defaults and 194,000 with the settings below (bench/README.md
//! "Segmentation"). PyTorch's own CPU tuning guide recommends the same cure (an allocator
//! that keeps memory: jemalloc, tcmalloc).
//!
//! Hand-written because the crates that replace the allocator (jemallocator, mimalloc)
//! replace Rust's, not the one libtorch's C++ calls; `mallopt` is the documented switch.

/// glibc's `mmap` threshold cap on 64-bit (`DEFAULT_MMAP_THRESHOLD_MAX`): blocks up to it
/// come from the heap and are reused.
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Freed memory at the top of the heap is kept up to this much.
pub const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra memory requested from the kernel when the heap grows.
pub const TOP_PAD: i32 = 256 << 20;

/// Environment variables by which a user tunes glibc malloc himself, or turns this off
/// (`FOVEA_MALLOC=glibc`, glibc's defaults; used by the benchmarks' comparisons).
pub const USER_SETTINGS: [&str; 5] = [
    "FOVEA_MALLOC",
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
];

/// Applies [`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`] and [`TOP_PAD`] to glibc malloc unless
/// one of the user's own settings (`FOVEA_MALLOC`, `GLIBC_TUNABLES`, `MALLOC_*_`) is in
/// the environment; call it first thing in `main`. Returns whether it did. Elsewhere than
/// Linux with glibc it does nothing.
pub fn tune() -> bool {
    if USER_SETTINGS.iter().any(|v| std::env::var_os(v).is_some()) {
        return false;
    }
    tune_glibc()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_glibc() -> bool {
    // SAFETY: mallopt only changes allocator parameters; it returns 0 for a value it
    // refuses, in which case that parameter keeps glibc's default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_glibc() -> bool {
    false
}
