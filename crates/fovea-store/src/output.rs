//! One rule for every command that writes: what may stand at its output path.
//!
//! [`prepare_output`] is called before any work starts, by every command with an `--out`:
//! - an output that is one of the command's inputs, contains one, or lies inside an input
//!   folder is refused (paths are compared canonicalized; an output that does not exist yet
//!   is placed by canonicalizing its nearest existing ancestor), so `--out` can never
//!   destroy what the command reads;
//! - an existing output (a file, or a folder that is not empty) that is recognised as a Fovea
//!   output of the same [`OutputKind`] (by its marker files) is refused without `force` and
//!   accepted with it; anything else that exists is refused, `force` or not, naming what
//!   was found: `--force` replaces Fovea's own outputs and nothing else. An empty folder is
//!   accepted for the folder kinds.
//!
//! This module never deletes anything: the callers write into a temporary sibling and
//! rename it into place once complete.

use std::path::{Component, Path, PathBuf};

/// What a command writes at its output path, and how an existing one is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A patch store folder: `index.csv` with `stats.json` or `extract.toml`.
    Store,
    /// A training run folder: `config.toml`.
    Run,
    /// An evaluation folder: `metrics.json`, `predictions.csv` or `pixel_metrics.json`.
    Eval,
    /// A lesion-map folder: every entry a per-image folder holding `summary.json`.
    Maps,
    /// A synthetic dataset folder: `manifest.csv`.
    Dataset,
    /// A balanced subset (CSV): a plain file whose first line starts with `patch`.
    Subset,
    /// A report page (HTML): a plain file that starts with `<!DOCTYPE html>`.
    Report,
    /// Any other single output file: a plain file.
    File,
}

impl OutputKind {
    /// "a Fovea patch store", ... for messages.
    pub fn describe(self) -> &'static str {
        match self {
            OutputKind::Store => "a Fovea patch store",
            OutputKind::Run => "a Fovea training run",
            OutputKind::Eval => "a Fovea evaluation folder",
            OutputKind::Maps => "a Fovea lesion-map folder",
            OutputKind::Dataset => "a Fovea synthetic dataset",
            OutputKind::Subset => "a Fovea subset CSV",
            OutputKind::Report => "a Fovea report page",
            OutputKind::File => "a file",
        }
    }

    /// Whether this kind is written as one file (else a folder).
    pub fn is_file(self) -> bool {
        matches!(
            self,
            OutputKind::Subset | OutputKind::Report | OutputKind::File
        )
    }

    /// `None` when the existing `path` is an output of this kind, else what is missing or
    /// wrong ("no index.csv").
    fn unrecognised(self, path: &Path) -> Option<String> {
        let has = |f: &str| path.join(f).is_file();
        if self.is_file() {
            if !path.is_file() {
                return Some("it is not a plain file".to_string());
            }
            let start = file_start(path);
            return match self {
                OutputKind::Subset if !start.starts_with(b"patch") => {
                    Some("its first line is not a subset header 'patch,weight'".into())
                }
                OutputKind::Report if !start.starts_with(b"<!DOCTYPE html>") => {
                    Some("it does not start with <!DOCTYPE html>".into())
                }
                _ => None,
            };
        }
        if !path.is_dir() {
            return Some("it is not a folder".to_string());
        }
        match self {
            OutputKind::Store if !has("index.csv") => Some("no index.csv".into()),
            OutputKind::Store if !has("stats.json") && !has("extract.toml") => {
                Some("no stats.json or extract.toml".into())
            }
            OutputKind::Run if !has("config.toml") => Some("no config.toml".into()),
            OutputKind::Eval
                if !has("metrics.json")
                    && !has("predictions.csv")
                    && !has("pixel_metrics.json") =>
            {
                Some("no metrics.json, predictions.csv or pixel_metrics.json".into())
            }
            OutputKind::Dataset if !has("manifest.csv") => Some("no manifest.csv".into()),
            OutputKind::Maps => maps_unrecognised(path),
            _ => None,
        }
    }
}

/// The first bytes of a file (empty if it cannot be read).
fn file_start(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(64).read_to_end(&mut buf);
    }
    buf
}

/// A map folder: every entry (hidden ones aside) is a folder holding `summary.json`.
fn maps_unrecognised(path: &Path) -> Option<String> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => return Some(format!("cannot list it ({e})")),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !entry.path().join("summary.json").is_file() {
            return Some(format!("'{name}' is not a map folder holding summary.json"));
        }
    }
    None
}

/// Why an output path was refused. Every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output is one of the command's inputs.
    #[error("{}: this is one of the command's inputs; choose another output", out.display())]
    IsInput { out: PathBuf },
    /// The output folder contains an input.
    #[error("{} contains the input {}; choose another output", out.display(), input.display())]
    ContainsInput { out: PathBuf, input: PathBuf },
    /// The output lies inside an input folder.
    #[error("{} lies inside the input {}; choose an output outside it", out.display(), input.display())]
    InsideInput { out: PathBuf, input: PathBuf },
    /// The output exists and `force` was not given.
    #[error("{} already exists: use --force to replace it", path.display())]
    Exists { path: PathBuf },
    /// `force` was given but what exists is not a Fovea output of this kind.
    #[error(
        "{} is not {what} ({found}): --force only replaces Fovea's own outputs",
        path.display()
    )]
    NotFovea {
        path: PathBuf,
        what: &'static str,
        found: String,
    },
    /// The path could not be examined.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `path` made absolute and canonical; for a path that does not exist yet, its nearest
/// existing ancestor canonicalized, followed by the rest (`..` resolved lexically).
pub fn resolve(path: &Path) -> Result<PathBuf, OutputError> {
    let io = |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let abs = std::path::absolute(path).map_err(io)?;
    let mut base = abs.as_path();
    let mut rest: Vec<Component> = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            let mut out = c;
            for comp in rest.iter().rev() {
                match comp {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Whether a command that adds its own files to an evaluation folder may do so without
/// `--force`: `fovea eval` writes `predictions.csv` and `metrics.json`, `fovea eval-maps`
/// writes `pixel_metrics.json` and `maps/`, and CONTRACTS 4-5 have both write into one
/// `EVAL`. True when `out` is a folder holding none of `own`; the caller passes it as
/// `force` to [`prepare_output`], which still refuses a folder that is not an evaluation
/// folder, so nothing but an evaluation's own files is ever replaced.
pub fn adds_to_eval(out: &Path, own: &[&str]) -> bool {
    out.is_dir() && !own.iter().any(|f| out.join(f).exists())
}

/// Checks that a command may write `out` (see the module doc); `inputs` are every file or
/// folder the command reads (ones that do not exist are ignored). Deletes nothing.
pub fn prepare_output(
    out: &Path,
    kind: OutputKind,
    force: bool,
    inputs: &[&Path],
) -> Result<(), OutputError> {
    let target = resolve(out)?;
    for input in inputs {
        let Ok(inp) = input.canonicalize() else {
            continue;
        };
        if target == inp {
            return Err(OutputError::IsInput {
                out: out.to_path_buf(),
            });
        }
        if inp.starts_with(&target) {
            return Err(OutputError::ContainsInput {
                out: out.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
        if target.starts_with(&inp) {
            return Err(OutputError::InsideInput {
                out: out.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    match std::fs::symlink_metadata(out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(OutputError::Io {
                path: out.to_path_buf(),
                source,
            })
        }
    }
    if !kind.is_file() && is_empty_dir(out)? {
        return Ok(());
    }
    match kind.unrecognised(out) {
        Some(found) => Err(OutputError::NotFovea {
            path: out.to_path_buf(),
            what: kind.describe(),
            found,
        }),
        None if force => Ok(()),
        None => Err(OutputError::Exists {
            path: out.to_path_buf(),
        }),
    }
}

/// Whether `path` is a folder with no entry.
fn is_empty_dir(path: &Path) -> Result<bool, OutputError> {
    if !path.is_dir() {
        return Ok(false);
    }
    let mut entries = std::fs::read_dir(path).map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(entries.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn store_at(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("index.csv"), "patch\n").unwrap();
        fs::write(dir.join("stats.json"), "{}").unwrap();
    }

    #[test]
    fn a_new_path_or_an_empty_folder_is_accepted() {
        let t = tempfile::tempdir().unwrap();
        prepare_output(&t.path().join("new/deeper"), OutputKind::Store, false, &[]).unwrap();
        prepare_output(t.path(), OutputKind::Run, false, &[]).unwrap();
        prepare_output(&t.path().join("s.csv"), OutputKind::Subset, false, &[]).unwrap();
    }

    #[test]
    fn an_existing_output_needs_force() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        store_at(&store);
        let e = prepare_output(&store, OutputKind::Store, false, &[]).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }), "{e}");
        assert!(
            e.to_string()
                .ends_with("store already exists: use --force to replace it"),
            "{e}"
        );
        prepare_output(&store, OutputKind::Store, true, &[]).unwrap();
        let file = t.path().join("subset.csv");
        fs::write(&file, "patch,weight\n").unwrap();
        let page = t.path().join("report.html");
        fs::write(&page, "<!DOCTYPE html>\n<html>").unwrap();
        prepare_output(&page, OutputKind::Report, true, &[]).unwrap();
        let e = prepare_output(&file, OutputKind::Subset, false, &[]).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }), "{e}");
        prepare_output(&file, OutputKind::Subset, true, &[]).unwrap();
    }

    #[test]
    fn force_replaces_only_fovea_outputs_of_the_same_kind() {
        let t = tempfile::tempdir().unwrap();
        let user = t.path().join("userdir");
        fs::create_dir(&user).unwrap();
        fs::write(user.join("t.txt"), "thesis").unwrap();
        for force in [false, true] {
            let e = prepare_output(&user, OutputKind::Store, force, &[]).unwrap_err();
            assert!(
                e.to_string().contains(
                    "userdir is not a Fovea patch store (no index.csv): --force only replaces"
                ),
                "{e}"
            );
        }
        fs::write(user.join("index.csv"), "x").unwrap();
        let e = prepare_output(&user, OutputKind::Store, true, &[]).unwrap_err();
        assert!(
            e.to_string().contains("no stats.json or extract.toml"),
            "{e}"
        );
        // A store is not a run, an evaluation, a map folder or a file.
        let store = t.path().join("store");
        store_at(&store);
        for kind in [
            OutputKind::Run,
            OutputKind::Eval,
            OutputKind::Maps,
            OutputKind::Dataset,
            OutputKind::File,
        ] {
            let e = prepare_output(&store, kind, true, &[]).unwrap_err();
            assert!(matches!(e, OutputError::NotFovea { .. }), "{kind:?}: {e}");
        }
        // A user's file is neither a subset nor a report page; a folder is not a file.
        let thesis = t.path().join("thesis.txt");
        fs::write(&thesis, "my thesis").unwrap();
        for kind in [OutputKind::Subset, OutputKind::Report] {
            let e = prepare_output(&thesis, kind, true, &[]).unwrap_err();
            assert!(matches!(e, OutputError::NotFovea { .. }), "{kind:?}: {e}");
        }
        prepare_output(&thesis, OutputKind::File, true, &[]).unwrap();
        let e = prepare_output(&user, OutputKind::File, true, &[]).unwrap_err();
        assert!(e.to_string().contains("(it is not a plain file)"), "{e}");
        // A file is not a folder output.
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        let e = prepare_output(&f, OutputKind::Store, true, &[]).unwrap_err();
        assert!(e.to_string().contains("(it is not a folder)"), "{e}");
    }

    #[test]
    fn each_kind_is_recognised_by_its_markers() {
        let t = tempfile::tempdir().unwrap();
        let mk = |name: &str, files: &[&str]| {
            let d = t.path().join(name);
            for f in files {
                let p = d.join(f);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, "x").unwrap();
            }
            d
        };
        let cases = [
            (mk("s1", &["index.csv", "extract.toml"]), OutputKind::Store),
            (mk("r", &["config.toml", "metrics.csv"]), OutputKind::Run),
            (mk("e1", &["metrics.json"]), OutputKind::Eval),
            (mk("e2", &["predictions.csv"]), OutputKind::Eval),
            (mk("e3", &["pixel_metrics.json"]), OutputKind::Eval),
            (
                mk("m", &["a/summary.json", "b/summary.json"]),
                OutputKind::Maps,
            ),
            (
                mk("d", &["manifest.csv", "images/x.png"]),
                OutputKind::Dataset,
            ),
        ];
        for (dir, kind) in &cases {
            prepare_output(dir, *kind, true, &[]).unwrap();
        }
        let m = mk("m2", &["a/summary.json", "notes.txt"]);
        let e = prepare_output(&m, OutputKind::Maps, true, &[]).unwrap_err();
        assert!(
            e.to_string().contains("'notes.txt' is not a map folder"),
            "{e}"
        );
    }

    #[test]
    fn an_output_that_is_contains_or_lies_inside_an_input_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        store_at(&store);
        let index = store.join("index.csv");
        // Is an input (also when spelled differently), even with force.
        let other = store.join("..").join("store").join("index.csv");
        for out in [&index, &other] {
            let e = prepare_output(out, OutputKind::Subset, true, &[&index]).unwrap_err();
            assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        }
        // Lies inside an input folder (existing or not).
        for out in [index.clone(), store.join("new/subset.csv")] {
            let e = prepare_output(&out, OutputKind::Subset, true, &[&store]).unwrap_err();
            assert!(matches!(e, OutputError::InsideInput { .. }), "{e}");
        }
        // Contains an input.
        let e = prepare_output(t.path(), OutputKind::Store, true, &[&store]).unwrap_err();
        assert!(matches!(e, OutputError::ContainsInput { .. }), "{e}");
        assert!(e.to_string().contains("contains the input"), "{e}");
        // A sibling is fine; a missing input is ignored.
        let missing = t.path().join("nowhere");
        prepare_output(
            &t.path().join("store2"),
            OutputKind::Store,
            false,
            &[&store, &missing],
        )
        .unwrap();
    }

    #[test]
    fn a_path_through_a_symlink_is_compared_by_what_it_names() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        store_at(&store);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        let e =
            prepare_output(&link.join("x.csv"), OutputKind::Subset, true, &[&store]).unwrap_err();
        assert!(matches!(e, OutputError::InsideInput { .. }), "{e}");
    }

    #[test]
    fn eval_and_eval_maps_share_one_folder_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let eval = tmp.path().join("eval");
        std::fs::create_dir(&eval).unwrap();
        std::fs::write(eval.join("metrics.json"), "{}").unwrap();
        std::fs::write(eval.join("predictions.csv"), "patch\n").unwrap();
        // eval-maps may add its files to eval's folder...
        assert!(adds_to_eval(&eval, &["pixel_metrics.json", "maps"]));
        prepare_output(&eval, OutputKind::Eval, true, &[]).unwrap();
        // ...but eval may not silently replace its own.
        assert!(!adds_to_eval(&eval, &["predictions.csv", "metrics.json"]));
        // A folder that is not an evaluation is still refused.
        let other = tmp.path().join("thesis");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("t.txt"), "thesis").unwrap();
        assert!(adds_to_eval(&other, &["pixel_metrics.json", "maps"]));
        assert!(prepare_output(&other, OutputKind::Eval, true, &[]).is_err());
    }
}
