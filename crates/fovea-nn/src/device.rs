//! Choosing the device (`cpu`, `cuda`, `auto`) and the number of CPU threads.

use serde::{Deserialize, Serialize};
use tch::Device;

/// `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    Cpu,
    #[cfg_attr(feature = "clap", value(alias = "gpu"))]
    Cuda,
    /// CUDA when a GPU is visible, else CPU.
    #[default]
    Auto,
}

impl DeviceChoice {
    /// The tch device; `cuda` without a GPU is an error.
    pub fn resolve(self) -> crate::error::Result<Device> {
        use crate::error::NnError;
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => {
                load_cuda_backend().map_err(|e| NnError::Device(format!("--device cuda: {e}")))?;
                if tch::Cuda::is_available() {
                    Ok(Device::Cuda(0))
                } else {
                    Err(NnError::Device("--device cuda: no CUDA GPU is visible to libtorch (is the NVIDIA driver loaded?)".into()))
                }
            }
            DeviceChoice::Auto => {
                if load_cuda_backend().is_ok() {
                    Ok(Device::cuda_if_available())
                } else {
                    Ok(Device::Cpu)
                }
            }
        }
    }
}

/// Loads libtorch's CUDA backend (`libtorch_cuda.so`) once.
///
/// Nothing in Fovea calls into that library directly, so the linker's `--as-needed` drops
/// it from the binary's dependencies (tch-rs issue #980) and libtorch would see no GPU.
/// Loading it here, only when a GPU is asked for, registers its CUDA hooks and keeps CPU
/// runs from loading the CUDA libraries at all. `dlopen` searches the binary's RUNPATH
/// (libtorch's folder) and `LD_LIBRARY_PATH`. A CPU-only libtorch has no such library:
/// an error then.
pub fn load_cuda_backend() -> crate::error::Result<()> {
    // The outcome is kept as text: the error of the first attempt is returned again.
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            // SAFETY: dlopen with a constant C string; the handle is kept for the life of
            // the process (never dlclose'd).
            let handle = unsafe {
                libc::dlopen(
                    c"libtorch_cuda.so".as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_GLOBAL,
                )
            };
            if handle.is_null() {
                // SAFETY: dlerror returns a thread-local message or null.
                let msg = unsafe {
                    let e = libc::dlerror();
                    if e.is_null() {
                        "unknown error".to_string()
                    } else {
                        std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                    }
                };
                Err(format!(
                    "libtorch's CUDA backend could not be loaded: {msg}"
                ))
            } else {
                Ok(())
            }
        })
        .clone()
        .map_err(crate::error::NnError::Device)
}

/// Sets libtorch's intra-op threads (0 = leave libtorch's default).
pub fn set_threads(n: usize) {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_backend_loads_from_the_wheel_and_auto_falls_back_to_the_cpu() {
        // The PyTorch wheel Fovea uses is the CUDA build: libtorch_cuda.so sits beside
        // libtorch_cpu.so and must load through the binary's RUNPATH even without a GPU.
        let lib = option_env!("FOVEA_LIBTORCH_LIB").map(std::path::PathBuf::from);
        if lib.is_some_and(|d| d.join("libtorch_cuda.so").exists()) {
            load_cuda_backend().unwrap();
        }
        let d = DeviceChoice::Auto.resolve().unwrap();
        assert_eq!(d == Device::Cpu, !tch::Cuda::is_available());
    }
}
