//! Reading the inputs and writing the outputs: text files whose absence is an answer
//! rather than an error, and atomic writes (a temporary file in the same folder, then a
//! rename, [`fovea_data::fsio`]), so a reader never sees half a plot or half a report.

use std::path::Path;

use crate::error::{ReportError, Result};

/// The text of `path`.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))
}

/// The text of `path`, or `None` when there is no file there.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReportError::io(path, e)),
    }
}

/// Writes `bytes` to `path` atomically, creating its folder first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    }
    fovea_data::write_atomic(path, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_none_and_writes_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.txt");
        assert!(read_optional(&p).unwrap().is_none());
        assert!(read_text(&p).unwrap_err().to_string().contains("b.txt"));
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("hello"));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("b.txt")]);
    }
}
