//! `RUN/config.toml` (CONTRACTS 3: every resolved training setting): read as a generic
//! TOML table, flattened to `section.key = value` rows for the report, with the patch
//! store it names (key `store`), the report's default store.

use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};
use crate::fsio::read_text;

/// The settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// `(dotted key, value)`, top-level keys first, then each table's, sorted by key.
    pub entries: Vec<(String, String)>,
    /// The `store` key, when it is a string.
    pub store: Option<PathBuf>,
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
    Ok(RunConfig { entries, store })
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
    fn syntax_errors_name_file_and_line() {
        let e = parse_run_config(Path::new("/r/config.toml"), "a = 1\nb = = 2\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/r/config.toml: line 2: "), "{s}");
        assert!(!s.contains('\n'));
    }
}
