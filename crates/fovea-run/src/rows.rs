//! Rows of the run's CSV tables besides `metrics.csv` (whose row, [`crate::MetricsCsvRow`],
//! lives in `fovea-metrics`): `val_ranking.csv` and `predictions.csv` (CONTRACTS 4). Each
//! row type keeps its lesion values as `[_; 4]` arrays in lesion order and (de)serialises
//! through a flat record whose field names are the columns. Numbers are written as
//! `Display` prints them (shortest round trip, `NaN`), as the files always were.

use fovea_metrics::shortest;
use serde::{Deserialize, Serialize};

/// Header of `val_ranking.csv`.
pub const VAL_RANKING_CSV_HEADER: &str = "epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,prevalence_ma,prevalence_he,prevalence_ex,prevalence_se";

/// Header of `predictions.csv` (CONTRACTS 4).
pub const PREDICTIONS_CSV_HEADER: &str = "patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se";

/// One row of `val_ranking.csv`: the validation split's ranking metrics after an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "RankingRecord", from = "RankingRecord")]
pub struct RankingRow {
    /// Epoch (1-based, as in metrics.csv).
    pub epoch: usize,
    /// Validation average precision per lesion.
    pub ap: [f64; 4],
    /// Validation AUROC per lesion (`NaN` where only one label value is present).
    pub auroc: [f64; 4],
    /// Fraction of positive validation patches per lesion (a random scorer's AP).
    pub prevalence: [f64; 4],
}

#[derive(Serialize, Deserialize)]
struct RankingRecord {
    epoch: usize,
    #[serde(serialize_with = "shortest")]
    ap_ma: f64,
    #[serde(serialize_with = "shortest")]
    ap_he: f64,
    #[serde(serialize_with = "shortest")]
    ap_ex: f64,
    #[serde(serialize_with = "shortest")]
    ap_se: f64,
    #[serde(serialize_with = "shortest")]
    auroc_ma: f64,
    #[serde(serialize_with = "shortest")]
    auroc_he: f64,
    #[serde(serialize_with = "shortest")]
    auroc_ex: f64,
    #[serde(serialize_with = "shortest")]
    auroc_se: f64,
    #[serde(serialize_with = "shortest")]
    prevalence_ma: f64,
    #[serde(serialize_with = "shortest")]
    prevalence_he: f64,
    #[serde(serialize_with = "shortest")]
    prevalence_ex: f64,
    #[serde(serialize_with = "shortest")]
    prevalence_se: f64,
}

impl From<RankingRow> for RankingRecord {
    fn from(r: RankingRow) -> RankingRecord {
        let [ap_ma, ap_he, ap_ex, ap_se] = r.ap;
        let [auroc_ma, auroc_he, auroc_ex, auroc_se] = r.auroc;
        let [prevalence_ma, prevalence_he, prevalence_ex, prevalence_se] = r.prevalence;
        RankingRecord {
            epoch: r.epoch,
            ap_ma,
            ap_he,
            ap_ex,
            ap_se,
            auroc_ma,
            auroc_he,
            auroc_ex,
            auroc_se,
            prevalence_ma,
            prevalence_he,
            prevalence_ex,
            prevalence_se,
        }
    }
}

impl From<RankingRecord> for RankingRow {
    fn from(r: RankingRecord) -> RankingRow {
        RankingRow {
            epoch: r.epoch,
            ap: [r.ap_ma, r.ap_he, r.ap_ex, r.ap_se],
            auroc: [r.auroc_ma, r.auroc_he, r.auroc_ex, r.auroc_se],
            prevalence: [
                r.prevalence_ma,
                r.prevalence_he,
                r.prevalence_ex,
                r.prevalence_se,
            ],
        }
    }
}

/// One row of `predictions.csv`: a non-black patch of the evaluated split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "PredictionRecord", try_from = "PredictionRecord")]
pub struct PredictionRow {
    /// Store patch id.
    pub patch: u64,
    /// The photograph it was cut from.
    pub image_id: String,
    /// Truth labels (0/1), lesion order.
    pub truth: [u8; 4],
    /// Sigmoid probabilities in [0, 1], lesion order.
    pub probs: [f32; 4],
}

#[derive(Serialize, Deserialize)]
struct PredictionRecord {
    patch: u64,
    image_id: String,
    ma: u8,
    he: u8,
    ex: u8,
    se: u8,
    #[serde(serialize_with = "shortest")]
    p_ma: f32,
    #[serde(serialize_with = "shortest")]
    p_he: f32,
    #[serde(serialize_with = "shortest")]
    p_ex: f32,
    #[serde(serialize_with = "shortest")]
    p_se: f32,
}

impl From<PredictionRow> for PredictionRecord {
    fn from(r: PredictionRow) -> PredictionRecord {
        let [ma, he, ex, se] = r.truth;
        let [p_ma, p_he, p_ex, p_se] = r.probs;
        PredictionRecord {
            patch: r.patch,
            image_id: r.image_id,
            ma,
            he,
            ex,
            se,
            p_ma,
            p_he,
            p_ex,
            p_se,
        }
    }
}

impl TryFrom<PredictionRecord> for PredictionRow {
    type Error = String;

    /// Labels must be 0 or 1, probabilities finite numbers in [0, 1].
    fn try_from(r: PredictionRecord) -> Result<PredictionRow, String> {
        let truth = [r.ma, r.he, r.ex, r.se];
        let probs = [r.p_ma, r.p_he, r.p_ex, r.p_se];
        for (c, &t) in truth.iter().enumerate() {
            if t > 1 {
                let col = fovea_data::LESION_COLUMNS[c];
                return Err(format!("{col}: {t} is not a label 0 or 1"));
            }
        }
        for (c, &p) in probs.iter().enumerate() {
            if !(0.0..=1.0).contains(&p) {
                let col = fovea_data::LESION_COLUMNS[c];
                return Err(format!("p_{col}: {p} is not a probability in [0, 1]"));
            }
        }
        Ok(PredictionRow {
            patch: r.patch,
            image_id: r.image_id,
            truth,
            probs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column names serde derives, as the csv crate writes them with `has_headers`.
    fn derived_header<T: Serialize>(row: &T) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines().next().unwrap().to_string()
    }

    #[test]
    fn headers_are_the_derived_field_names() {
        let r = RankingRow {
            epoch: 1,
            ap: [0.0; 4],
            auroc: [0.0; 4],
            prevalence: [0.0; 4],
        };
        assert_eq!(derived_header(&r), VAL_RANKING_CSV_HEADER);
        let p = PredictionRow {
            patch: 0,
            image_id: "a".into(),
            truth: [0; 4],
            probs: [0.0; 4],
        };
        assert_eq!(derived_header(&p), PREDICTIONS_CSV_HEADER);
        // Copied from CONTRACTS.md section 4.
        assert_eq!(
            PREDICTIONS_CSV_HEADER,
            "patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se"
        );
    }
}
