//! `thresholds.json` of a training run (CONTRACTS 3): `{"MA": t, "HE": t, "EX": t, "SE": t}`,
//! the per-class thresholds tuned on the validation split.
//!
//! Reading is strict about what it needs and lenient about the rest: each of the four keys
//! must be present with a number in [0, 1] (an integer such as `1` is fine), otherwise the
//! result is [`MetricsError::Json`] (or [`MetricsError::InvalidThreshold`],
//! [`MetricsError::ThresholdOutOfRange`], naming the lesion), never a panic; [`read`]
//! names the file as well. Unknown extra keys are ignored, so a later version may add
//! some.
//!
//! [`read`]: ThresholdsFile::read

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::NUM_CLASSES;

/// The contents of `thresholds.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdsFile {
    /// Microaneurysms.
    #[serde(rename = "MA")]
    pub ma: f64,
    /// Haemorrhages.
    #[serde(rename = "HE")]
    pub he: f64,
    /// Hard exudates.
    #[serde(rename = "EX")]
    pub ex: f64,
    /// Soft exudates.
    #[serde(rename = "SE")]
    pub se: f64,
}

impl From<[f64; NUM_CLASSES]> for ThresholdsFile {
    fn from([ma, he, ex, se]: [f64; NUM_CLASSES]) -> Self {
        ThresholdsFile { ma, he, ex, se }
    }
}

impl From<ThresholdsFile> for [f64; NUM_CLASSES] {
    fn from(t: ThresholdsFile) -> Self {
        t.to_array()
    }
}

impl ThresholdsFile {
    /// The thresholds in lesion order MA, HE, EX, SE.
    pub fn to_array(&self) -> [f64; NUM_CLASSES] {
        [self.ma, self.he, self.ex, self.se]
    }

    /// Errors unless all four thresholds are finite and in [0, 1].
    fn check(&self) -> Result<()> {
        for (c, t) in self.to_array().into_iter().enumerate() {
            if !t.is_finite() {
                return Err(MetricsError::InvalidThreshold { value: t }.in_class(c));
            }
            if !(0.0..=1.0).contains(&t) {
                return Err(MetricsError::ThresholdOutOfRange { value: t }.in_class(c));
            }
        }
        Ok(())
    }

    /// Parses a `thresholds.json` document.
    pub fn from_json_str(s: &str) -> Result<ThresholdsFile> {
        let json = |source| MetricsError::Json {
            what: "thresholds.json",
            source,
        };
        // Through a map first: the derived impl would also accept a JSON array.
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(s).map_err(json)?;
        let t: ThresholdsFile = serde_json::from_value(map.into()).map_err(json)?;
        t.check()?;
        Ok(t)
    }

    /// Pretty-printed JSON (no trailing newline). Errors on a non-finite threshold, which
    /// JSON cannot hold, and on one outside [0, 1].
    pub fn to_json_string(&self) -> Result<String> {
        self.check()?;
        Ok(serde_json::to_string_pretty(self).expect("four finite numbers always serialise"))
    }

    /// Writes the document plus a newline to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_json_string()? + "\n";
        fovea_data::write_atomic(path, text.as_bytes()).map_err(MetricsError::from)
    }

    /// Reads and parses `path`; errors about its contents name it.
    pub fn read(path: &Path) -> Result<ThresholdsFile> {
        let s = std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ThresholdsFile::from_json_str(&s).map_err(|e| MetricsError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_contract_shape() {
        let t = ThresholdsFile::from([0.5, 0.25, f64::from(0.7f32), 1.0]);
        let s = t.to_json_string().unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 4);
        let pos: Vec<usize> = ["\"MA\"", "\"HE\"", "\"EX\"", "\"SE\""]
            .iter()
            .map(|k| s.find(k).unwrap())
            .collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "keys in lesion order: {s}"
        );
        assert_eq!(v["HE"], 0.25);
        // Exact round trip, f32-derived thresholds included.
        assert_eq!(ThresholdsFile::from_json_str(&s).unwrap(), t);
        assert_eq!(<[f64; 4]>::from(t), [0.5, 0.25, f64::from(0.7f32), 1.0]);
    }

    #[test]
    fn reads_integers_and_ignores_extra_keys() {
        let t = ThresholdsFile::from_json_str(
            r#"{"SE": 1, "EX": 0, "HE": 0.5, "MA": 0.25, "note": "x"}"#,
        )
        .unwrap();
        assert_eq!(t.to_array(), [0.25, 0.5, 0.0, 1.0]);
    }

    #[test]
    fn malformed_files_are_errors() {
        let bad = [
            "",
            "not json",
            "[0.5, 0.5, 0.5, 0.5]",
            r#"{"MA": 0.5, "HE": 0.5, "EX": 0.5}"#,
            r#"{"MA": 0.5, "HE": 0.5, "EX": 0.5, "SE": "0.5"}"#,
            r#"{"MA": 0.5, "HE": 0.5, "EX": 0.5, "SE": null}"#,
            r#"{"ma": 0.5, "he": 0.5, "ex": 0.5, "se": 0.5}"#,
            r#"{"MA": 0.5, "HE": 0.5, "EX": 0.5, "SE": 1e999}"#,
            r#"{"MA": 0.5, "HE": 0.5, "EX": 0.5, "SE": 0.5"#,
        ];
        for s in bad {
            let e = ThresholdsFile::from_json_str(s).expect_err(s);
            assert!(
                e.to_string().starts_with("malformed thresholds.json: "),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn non_finite_thresholds_are_not_written() {
        let t = ThresholdsFile::from([0.5, f64::NAN, 0.5, 0.5]);
        let e = t.to_json_string().unwrap_err();
        assert!(e.to_string().starts_with("HE: threshold NaN"));
    }

    #[test]
    fn thresholds_outside_0_1_are_refused_naming_lesion_and_value() {
        let e = ThresholdsFile::from_json_str(r#"{"MA": 7, "HE": 0.5, "EX": 0.5, "SE": 0.5}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "MA: threshold 7 is outside [0, 1]");
        let e = ThresholdsFile::from_json_str(r#"{"MA": 0, "HE": -1, "EX": 0.5, "SE": 1}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "HE: threshold -1 is outside [0, 1]");
        let e = ThresholdsFile::from([0.5, 0.5, 1.0 + 1e-9, 0.5])
            .to_json_string()
            .unwrap_err();
        assert!(e.to_string().starts_with("EX: threshold 1.0000"), "{e}");
        // Both ends are probabilities.
        assert!(
            ThresholdsFile::from_json_str(r#"{"MA": 0, "HE": 1, "EX": 0.0, "SE": 1.0}"#).is_ok()
        );
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = std::env::temp_dir().join(format!("fovea-metrics-thr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("thresholds.json");
        let t = ThresholdsFile::from([0.1, 0.2, 0.3, 0.4]);
        t.write(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
        assert_eq!(ThresholdsFile::read(&path).unwrap(), t);
        std::fs::write(&path, "{").unwrap();
        assert!(ThresholdsFile::read(&path).is_err());
        std::fs::write(&path, r#"{"MA": 0.5, "HE": -1, "EX": 0.5, "SE": 0.5}"#).unwrap();
        let e = ThresholdsFile::read(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: HE: threshold -1 is outside [0, 1]", path.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            ThresholdsFile::read(&path),
            Err(MetricsError::Io { .. })
        ));
    }
}
