//! Atomic output, the one implementation of the workspace: every file Fovea writes appears
//! whole or not at all. A file is written into a uniquely named temporary file in the
//! target's own folder (tempfile's `NamedTempFile`, so two writers never share a temporary
//! name), synced, then renamed over the target; a folder is filled under a unique temporary
//! name beside the target, then swapped in. Temporary files get the permissions
//! `File::create` would give (0666 less the umask), not tempfile's private 0600.
//!
//! Errors are [`FileError`]s, which name the file concerned; each crate's error type
//! converts them into its own `Io { path, source }` variant.

use std::fs::{File, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile, TempDir};

/// An I/O error and the file or folder it concerns (`PATH: error`).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> FileError {
        FileError {
            path: path.into(),
            source,
        }
    }
}

/// The folder of `path` (`.` for a bare file name) and its file name.
fn split(path: &Path) -> Result<(&Path, String), FileError> {
    let name = path.file_name().ok_or_else(|| {
        FileError::new(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// A temporary file beside `path`, named `.NAME.XXXXXX.tmp`.
fn temp_beside(path: &Path) -> Result<NamedTempFile, FileError> {
    let (dir, name) = split(path)?;
    Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| FileError::new(path, e))
}

/// Syncs a folder's entry list (best effort: some file systems refuse it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Renames the synced temporary file over `path`.
fn persist(tmp: NamedTempFile, path: &Path) -> Result<(), FileError> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| FileError::new(path, e))?;
    tmp.persist(path)
        .map_err(|e| FileError::new(path, e.error))?;
    sync_dir(split(path)?.0);
    Ok(())
}

/// Writes `bytes` to `path` atomically. The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically through a buffered writer (for CSV writers and encoders).
/// The folder must exist; if `write` fails, `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FileError> {
    let mut tmp = temp_beside(path)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(|e| FileError::new(path, e))?;
        w.flush().map_err(|e| FileError::new(path, e))?;
    }
    persist(tmp, path)
}

/// Writes `path` atomically with a writer that takes a file name (safetensors, TorchScript):
/// `fill` writes the temporary path it is given, which then replaces `path`.
pub fn write_atomic_via<E: From<FileError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temp_beside(path)?;
    fill(tmp.path())?;
    // `fill` may have replaced the file rather than written into it: sync what is there now.
    File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| FileError::new(path, e))?;
    tmp.persist(path)
        .map_err(|e| FileError::new(path, e.error))?;
    sync_dir(split(path)?.0);
    Ok(())
}

/// Replaces the folder `dir` atomically: `fill` writes a fresh temporary folder beside it,
/// which then takes `dir`'s place (the old `dir`, if any, is removed). If `fill` fails,
/// `dir` is left as it was.
pub fn replace_dir_atomic<E: From<FileError>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let (parent, name) = split(dir)?;
    let fresh = temp_dir_beside(parent, &name, "partial", dir)?;
    fill(fresh.path())?;
    let fresh = fresh.keep();
    if dir.exists() {
        let old = temp_dir_beside(parent, &name, "old", dir)?.keep();
        // rename(2) replaces an empty folder.
        std::fs::rename(dir, &old).map_err(|e| FileError::new(dir, e))?;
        std::fs::rename(&fresh, dir).map_err(|e| FileError::new(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&fresh, dir).map_err(|e| FileError::new(dir, e))?;
    }
    sync_dir(parent);
    Ok(())
}

/// An empty folder `.NAME.XXXXXX.KIND` in `parent` (removed on drop unless kept).
fn temp_dir_beside(
    parent: &Path,
    name: &str,
    kind: &str,
    target: &Path,
) -> Result<TempDir, FileError> {
    Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(&format!(".{kind}"))
        .permissions(Permissions::from_mode(0o777))
        .tempdir_in(parent)
        .map_err(|e| FileError::new(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["a.json"]);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "readable by others as File::create makes it"
        );
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), format!("{}: disk on fire", p.display()));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["m.csv"]);
    }

    #[test]
    fn errors_name_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/folder/x.txt");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
    }

    #[test]
    fn two_writers_use_different_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        let a = temp_beside(&p).unwrap();
        let b = temp_beside(&p).unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path().parent(), Some(dir.path()));
    }

    #[test]
    fn via_a_path_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.pt");
        write_atomic_via::<FileError>(&p, |tmp| {
            std::fs::write(tmp, b"weights").map_err(|e| FileError::new(tmp, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"weights");
        let e = write_atomic_via::<FileError>(&p, |tmp| {
            Err(FileError::new(tmp, std::io::Error::other("no")))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"weights");
        assert_eq!(names(dir.path()), ["model.pt"]);
    }

    #[test]
    fn folders_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        replace_dir_atomic::<FileError>(&model, |d| {
            write_atomic(&d.join("a"), b"1")?;
            write_atomic(&d.join("b"), b"2")
        })
        .unwrap();
        assert_eq!(names(&model), ["a", "b"]);
        let e = replace_dir_atomic::<FileError>(&model, |d| {
            write_atomic(&d.join("c"), b"3")?;
            Err(FileError::new(d, std::io::Error::other("failed")))
        });
        assert!(e.is_err());
        assert_eq!(names(&model), ["a", "b"]);
        replace_dir_atomic::<FileError>(&model, |d| write_atomic(&d.join("c"), b"3")).unwrap();
        assert_eq!(names(&model), ["c"]);
        assert_eq!(names(dir.path()), ["model"]);
    }
}
