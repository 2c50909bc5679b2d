//! `EVAL/pixel_metrics.json` of `fovea eval-maps` (CONTRACTS 5): pixel-level AUPR (the
//! IDRiD challenge's measure) and AUROC per lesion over all pixels of a split, and AUPR per
//! photograph: `{"lesions": ["MA","HE","EX","SE"], "aupr": [4], "auroc": [4 or null],
//! "per_image": [{"image_id": .., "aupr": [4, null allowed], ..}], ..}`. Unknown fields are
//! ignored; a lesion list in another order, or arrays not of length 4, are errors.

use std::collections::BTreeMap;
use std::path::Path;

use fovea_metrics::{LESIONS, NUM_CLASSES};
use serde::Deserialize;

use crate::error::{ReportError, Result};
use crate::fsio::read_text;

/// The best pixel AUPR published in the IDRiD challenge (sub-challenge 1), per lesion.
pub const IDRID_BEST_AUPR: [f64; NUM_CLASSES] = [0.50, 0.68, 0.885, 0.70];

#[derive(Deserialize)]
struct Raw {
    lesions: Option<Vec<String>>,
    aupr: Vec<Option<f64>>,
    auroc: Option<Vec<Option<f64>>>,
    #[serde(default)]
    per_image: Vec<RawImage>,
    image_level: Option<RawImageLevel>,
}

#[derive(Deserialize)]
struct RawImageLevel {
    auroc: Option<Vec<Option<f64>>>,
    ap: Option<Vec<Option<f64>>>,
    f1: Option<Vec<Option<f64>>>,
    positives: Option<Vec<Option<f64>>>,
}

#[derive(Deserialize)]
struct RawImage {
    image_id: String,
    aupr: Vec<Option<f64>>,
}

/// The contents of `pixel_metrics.json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PixelMetrics {
    /// Pixel AUPR per lesion over the split (`None` where undefined).
    pub aupr: [Option<f64>; NUM_CLASSES],
    /// Pixel AUROC per lesion (`None` where undefined or absent).
    pub auroc: [Option<f64>; NUM_CLASSES],
    /// AUPR per lesion of each photograph.
    pub per_image: BTreeMap<String, [Option<f64>; NUM_CLASSES]>,
    /// Image-level presence metrics (field `image_level`), when written.
    pub image_level: Option<ImageLevel>,
}

/// How well the image-level probability (the highest window score of a classifier, the
/// highest pixel probability of a segmentation run) tells photographs with a lesion from
/// those without, per lesion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageLevel {
    pub auroc: [Option<f64>; NUM_CLASSES],
    pub ap: [Option<f64>; NUM_CLASSES],
    pub f1: [Option<f64>; NUM_CLASSES],
    /// Photographs with the lesion.
    pub positives: [Option<f64>; NUM_CLASSES],
}

/// Four values, or an error naming the field.
fn four(path: &Path, what: &str, v: Vec<Option<f64>>) -> Result<[Option<f64>; NUM_CLASSES]> {
    let n = v.len();
    <[Option<f64>; NUM_CLASSES]>::try_from(v).map_err(|_| {
        ReportError::malformed(
            path,
            format!("{what} has {n} values, expected 4 (MA, HE, EX, SE)"),
        )
    })
}

impl PixelMetrics {
    /// Parses the text of a `pixel_metrics.json` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<PixelMetrics> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| ReportError::malformed(path, format!("not pixel metrics: {e}")))?;
        if let Some(l) = &raw.lesions {
            if l.iter().map(String::as_str).ne(LESIONS) {
                return Err(ReportError::malformed(
                    path,
                    format!("lesions {l:?} are not [\"MA\", \"HE\", \"EX\", \"SE\"]"),
                ));
            }
        }
        let mut per_image = BTreeMap::new();
        for im in raw.per_image {
            let what = format!("per_image {}: aupr", im.image_id);
            per_image.insert(im.image_id, four(path, &what, im.aupr)?);
        }
        let opt4 = |what: &str, v: Option<Vec<Option<f64>>>| match v {
            Some(v) => four(path, what, v),
            None => Ok([None; NUM_CLASSES]),
        };
        let image_level = match raw.image_level {
            Some(l) => Some(ImageLevel {
                auroc: opt4("image_level.auroc", l.auroc)?,
                ap: opt4("image_level.ap", l.ap)?,
                f1: opt4("image_level.f1", l.f1)?,
                positives: opt4("image_level.positives", l.positives)?,
            }),
            None => None,
        };
        Ok(PixelMetrics {
            image_level,
            aupr: four(path, "aupr", raw.aupr)?,
            auroc: match raw.auroc {
                Some(a) => four(path, "auroc", a)?,
                None => [None; NUM_CLASSES],
            },
            per_image,
        })
    }

    /// Reads `pixel_metrics.json`.
    pub fn read(path: &Path) -> Result<PixelMetrics> {
        PixelMetrics::parse(path, &read_text(path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_shape() {
        let text = r#"{"lesions": ["MA","HE","EX","SE"], "aupr": [0.1, 0.2, 0.3, null],
            "auroc": [0.9, null, 0.8, 0.7], "bins": 1000,
            "per_image": [{"image_id": "IDRiD_55", "aupr": [0.5, null, 0.25, 0], "pixels": 3}],
            "image_level": {"auroc": [0.5, null, 1, 0.75], "ap": [1, 0, 1, 0.5], "f1": [1, 0, 1, 0],
                            "threshold": [0.5, 0.5, 0.5, 0.5], "positives": [2, 0, 3, 1]}}"#;
        let m = PixelMetrics::parse(Path::new("p.json"), text).unwrap();
        assert_eq!(m.aupr, [Some(0.1), Some(0.2), Some(0.3), None]);
        assert_eq!(m.auroc[1], None);
        assert_eq!(m.per_image["IDRiD_55"][2], Some(0.25));
        let il = m.image_level.unwrap();
        assert_eq!(
            (il.auroc[1], il.ap[0], il.positives[2]),
            (None, Some(1.0), Some(3.0))
        );
    }

    #[test]
    fn malformed_is_an_error_naming_the_file() {
        let p = Path::new("/e/pixel_metrics.json");
        for bad in [
            "",
            "{}",
            r#"{"aupr": [1, 2, 3]}"#,
            r#"{"lesions": ["HE","MA","EX","SE"], "aupr": [1, 2, 3, 4]}"#,
        ] {
            let e = PixelMetrics::parse(p, bad).unwrap_err().to_string();
            assert!(e.starts_with("/e/pixel_metrics.json: "), "{bad}: {e}");
        }
    }
}
