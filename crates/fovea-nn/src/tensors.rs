//! Named tensors from weight files (`.safetensors`, or a torch pickle `.pth`/`.pt`/`.bin`):
//! the one reader behind checkpoints, ImageNet weights and the global-feature cache. It
//! depends on nothing else in the crate.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;

use crate::error::{NnError, Result};

/// Reads named tensors from `.safetensors`, or a torch pickle (`.pth`, `.pt`, `.bin`).
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(NnError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let list = match ext {
        "safetensors" => Tensor::read_safetensors(path),
        "pth" | "pt" | "bin" => Tensor::loadz_multi(path),
        _ => {
            return Err(NnError::malformed(
                path,
                "expected a .safetensors, .pth or .pt file",
            ))
        }
    };
    // libtorch may throw on a malformed file: catch that too, as an error.
    let list = list.map_err(|e| {
        NnError::malformed(
            path,
            format!("cannot read tensors: {}", first_line(&e.to_string())),
        )
    })?;
    Ok(list.into_iter().collect())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
