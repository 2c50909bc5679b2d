//! Handing deep-learning commands to `fovea-torch`, the binary that links libtorch.
//!
//! `fovea` itself does not link libtorch, so the data commands work without it and a
//! missing or mismatched libtorch gives a clear message instead of a loader error: before
//! handing over, `fovea` asks the dynamic loader which libraries `fovea-torch` would load
//! (`LD_TRACE_LOADED_OBJECTS=1`, what `ldd` does, without running it), checks that libtorch
//! is among them and that its PyTorch version is the pinned one, then `exec`s it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The PyTorch version libtorch must come from (`TORCH_VERSION` at the repository root,
/// matched to `tch = "=0.26.0"`).
pub const TORCH_VERSION: &str = include_str!("../../../TORCH_VERSION");

/// Where `fovea-torch` is: `$FOVEA_TORCH_BIN`, else beside the running `fovea`.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FOVEA_TORCH_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the fovea binary: {e}"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(dir.join("fovea-torch"))
}

/// What the loader reported for libtorch.
#[derive(Debug, PartialEq, Eq)]
pub enum LoaderReport {
    /// libtorch resolves to this file.
    Found(PathBuf),
    /// These libraries are not found.
    Missing(Vec<String>),
}

/// Parses `LD_TRACE_LOADED_OBJECTS` output (`name => path (addr)` or `name => not found`).
pub fn parse_trace(out: &str) -> LoaderReport {
    let missing: Vec<String> = out
        .lines()
        .filter(|l| l.contains("=> not found"))
        .map(|l| l.split("=>").next().unwrap_or("").trim().to_string())
        .collect();
    if !missing.is_empty() {
        return LoaderReport::Missing(missing);
    }
    for l in out.lines() {
        let l = l.trim();
        if l.starts_with("libtorch_cpu.so") {
            if let Some(path) = l
                .split("=>")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                return LoaderReport::Found(PathBuf::from(path));
            }
        }
    }
    LoaderReport::Missing(vec!["libtorch_cpu.so".into()])
}

/// Reads `__version__` from torch's `version.py` beside its `lib/` folder.
pub fn torch_version(libtorch_cpu: &Path) -> Option<String> {
    let py = libtorch_cpu.parent()?.parent()?.join("version.py");
    let text = std::fs::read_to_string(py).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| {
            v.trim()
                .trim_matches(['\'', '"'])
                .split('+')
                .next()
                .unwrap_or("")
                .to_string()
        })
}

/// Checks that `bin` exists and that its libtorch loads and is the pinned version.
pub fn preflight(bin: &Path) -> Result<PathBuf, String> {
    let hint = "run scripts/quickstart.sh (or `source scripts/env.sh && cargo build --release -p fovea-torch`)";
    if !bin.is_file() {
        return Err(format!(
            "{} not found: the deep-learning commands need it; {hint}",
            bin.display()
        ));
    }
    let out = Command::new(bin)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    match parse_trace(&String::from_utf8_lossy(&out.stdout)) {
        LoaderReport::Missing(libs) => Err(format!(
            "{} cannot load libtorch ({} not found): PyTorch {}'s libtorch was moved or removed; {hint}",
            bin.display(),
            libs.join(", "),
            TORCH_VERSION.trim()
        )),
        LoaderReport::Found(lib) => match torch_version(&lib) {
            Some(v) if v == TORCH_VERSION.trim() => Ok(lib),
            Some(v) => Err(format!(
                "libtorch at {} is PyTorch {v}, but fovea-torch needs PyTorch {}; {hint}",
                lib.display(),
                TORCH_VERSION.trim()
            )),
            None => Ok(lib), // A libtorch without version.py (a standalone libtorch): trust it.
        },
    }
}

/// Checks, then replaces this process with `fovea-torch ARGS...` (returns only on error).
pub fn hand_over(args: Vec<OsString>) -> String {
    use std::os::unix::process::CommandExt;
    let bin = match locate() {
        Ok(b) => b,
        Err(e) => return e,
    };
    if let Err(e) = preflight(&bin) {
        return e;
    }
    let err = Command::new(&bin).args(args).exec();
    format!("{}: {err}", bin.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_trace_is_parsed() {
        let ok = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibtorch_cpu.so => /opt/torch/lib/libtorch_cpu.so (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n";
        assert_eq!(
            parse_trace(ok),
            LoaderReport::Found(PathBuf::from("/opt/torch/lib/libtorch_cpu.so"))
        );
        let missing = "\tlibtorch_cpu.so => not found\n\tlibc10.so => not found\n";
        assert_eq!(
            parse_trace(missing),
            LoaderReport::Missing(vec!["libtorch_cpu.so".into(), "libc10.so".into()])
        );
        assert!(matches!(
            parse_trace("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n"),
            LoaderReport::Missing(_)
        ));
    }

    #[test]
    fn version_is_read_from_version_py() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("torch/lib")).unwrap();
        std::fs::write(
            dir.path().join("torch/version.py"),
            "from typing import Optional\n__version__ = '2.11.0+cu128'\n",
        )
        .unwrap();
        let lib = dir.path().join("torch/lib/libtorch_cpu.so");
        assert_eq!(torch_version(&lib).as_deref(), Some("2.11.0"));
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = preflight(Path::new("/nonexistent/fovea-torch")).unwrap_err();
        assert!(
            e.contains("/nonexistent/fovea-torch not found") && e.contains("quickstart"),
            "{e}"
        );
    }
}
