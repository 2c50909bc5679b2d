//! `RUN/config.toml` (CONTRACTS 3: every resolved training setting): read as a generic
//! TOML table, flattened to `section.key = value` rows for the report, with the patch
//! store it names (key `store`), the report's default store, and the kind of model the
//! run trained (key `task`).

use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};
use crate::fsio::read_text;

/// What a run trained (`task` in its config.toml, `fovea train --task`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunTask {
    /// The patch classifier: no `task` key, `task = "classifier"`, or a value this report
    /// does not know (its wording stays the classifier's, as before `task` existed).
    #[default]
    Classifier,
    /// The pixel-level U-Net (`task = "segmentation"`): its metrics.csv, val_ranking.csv
    /// and thresholds.json are over pixels, and the classifier-only settings in its
    /// config.toml are not used.
    Segmentation,
}

/// Top-level keys of config.toml that only a patch classifier uses; a segmentation run
/// writes them too (the settings are one resolved struct) but ignores them.
pub const CLASSIFIER_ONLY_KEYS: [&str; 3] = ["model", "pool", "batch_size"];

/// Tables of config.toml that only a patch classifier uses.
pub const CLASSIFIER_ONLY_TABLES: [&str; 4] = ["augment", "context", "data", "loss"];

/// Whether the dotted key `key` is a classifier-only setting (`model`, `loss.gamma`, but
/// not `segmentation.loss.pixel`).
pub fn is_classifier_only(key: &str) -> bool {
    let top = key.split('.').next().unwrap_or(key);
    if top == key {
        CLASSIFIER_ONLY_KEYS.contains(&key)
    } else {
        CLASSIFIER_ONLY_TABLES.contains(&top)
    }
}

/// The settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// `(dotted key, value)`, top-level keys first, then each table's, sorted by key.
    pub entries: Vec<(String, String)>,
    /// The `store` key, when it is a string.
    pub store: Option<PathBuf>,
    /// The `task` key.
    pub task: RunTask,
}

/// Parses the text of a `config.toml` read from `path`. A syntax error is an error
/// naming the file and the line.
pub fn parse_run_config(path: &Path, text: &str) -> Result<RunConfig> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(l) => ReportError::malformed(path, format!("line {l}: {msg}")),
            None => ReportError::malformed(path, msg),
        }
    })?;
    let mut entries = Vec::new();
    flatten("", &table, &mut entries);
    let store = table
        .get("store")
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    let task = match table.get("task").and_then(|v| v.as_str()) {
        Some("segmentation") => RunTask::Segmentation,
        _ => RunTask::Classifier,
    };
    Ok(RunConfig {
        entries,
        store,
        task,
    })
}

/// Reads `config.toml`.
pub fn read_run_config(path: &Path) -> Result<RunConfig> {
    parse_run_config(path, &read_text(path)?)
}

/// Scalars and arrays of `table` under `prefix`, then its sub-tables.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    for (k, v) in table {
        match v {
            toml::Value::Table(_) => {}
            toml::Value::String(s) => out.push((key(k), s.clone())),
            other => out.push((key(k), other.to_string())),
        }
    }
    for (k, v) in table {
        if let toml::Value::Table(t) = v {
            flatten(&key(k), t, out);
        }
    }
}

impl RunConfig {
    /// The value of the dotted key `key`, as shown in the settings table.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.0 == key)
            .map(|e| e.1.as_str())
    }

    /// Whether the run trained the pixel-level segmentation model.
    pub fn is_segmentation(&self) -> bool {
        self.task == RunTask::Segmentation
    }

    /// The store this run was trained on, resolved: as written if that exists (relative
    /// to the working folder), else relative to the run folder; `None` when the key is
    /// absent.
    pub fn resolved_store(&self, run: &Path) -> Option<PathBuf> {
        let s = self.store.as_ref()?;
        if s.is_absolute() || s.exists() {
            Some(s.clone())
        } else if run.join(s).exists() {
            Some(run.join(s))
        } else {
            Some(s.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_in_order() {
        let c = parse_run_config(
            Path::new("c.toml"),
            "store = \"/s\"\nepochs = 3\n[optim]\nlr = 0.001\n[data]\nx = [1, 2]\n",
        )
        .unwrap();
        assert_eq!(c.store.as_deref(), Some(Path::new("/s")));
        let keys: Vec<&str> = c.entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(keys, ["epochs", "store", "data.x", "optim.lr"]);
        assert_eq!(c.entries[1].1, "/s");
        assert_eq!(c.entries[3].1, "0.001");
    }

    #[test]
    fn task_is_read_and_defaults_to_the_classifier() {
        let p = Path::new("c.toml");
        let seg = parse_run_config(
            p,
            "task = \"segmentation\"\nmodel = \"cnn\"\n[segmentation]\nencoder = \"resnet34\"\n",
        )
        .unwrap();
        assert_eq!(seg.task, RunTask::Segmentation);
        assert!(seg.is_segmentation());
        assert_eq!(seg.get("segmentation.encoder"), Some("resnet34"));
        assert_eq!(seg.get("encoder"), None);
        for text in [
            "epochs = 1\n",
            "task = \"classifier\"\n",
            "task = \"something-else\"\n",
            "task = 1\n",
            "[segmentation]\ntask = \"segmentation\"\n",
        ] {
            let c = parse_run_config(p, text).unwrap();
            assert_eq!(c.task, RunTask::Classifier, "{text}");
        }
    }

    #[test]
    fn classifier_only_keys() {
        for k in [
            "model",
            "pool",
            "batch_size",
            "loss.kind",
            "augment.flip",
            "context.scale",
            "data.workers",
        ] {
            assert!(is_classifier_only(k), "{k}");
        }
        for k in [
            "amp",
            "epochs",
            "store",
            "task",
            "optim.lr",
            "segmentation.encoder",
            "segmentation.loss.pixel",
            "segmentation.tiles.batch_size",
            "models",
            "loss_weight",
        ] {
            assert!(!is_classifier_only(k), "{k}");
        }
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse_run_config(Path::new("/r/config.toml"), "a = 1\nb = = 2\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/r/config.toml: line 2: "), "{s}");
        assert!(!s.contains('\n'));
    }
}
