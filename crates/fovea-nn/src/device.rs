//! Choosing the device (`cpu`, `cuda`, `auto`) and the number of CPU threads.

use serde::{Deserialize, Serialize};
use tch::Device;

/// `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when a GPU is visible, else CPU.
    #[default]
    Auto,
}

impl DeviceChoice {
    pub fn parse(s: &str) -> Option<DeviceChoice> {
        match s {
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" | "gpu" => Some(DeviceChoice::Cuda),
            "auto" => Some(DeviceChoice::Auto),
            _ => None,
        }
    }

    /// The tch device; `cuda` without a GPU is an error.
    pub fn resolve(self) -> Result<Device, String> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => {
                if tch::Cuda::is_available() {
                    Ok(Device::Cuda(0))
                } else {
                    Err("--device cuda: no CUDA GPU is visible to libtorch".into())
                }
            }
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        }
    }
}

/// Sets libtorch's intra-op threads (0 = leave libtorch's default).
pub fn set_threads(n: usize) {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
}
