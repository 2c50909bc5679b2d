//! Precision-recall and ROC curves per lesion from `EVAL/predictions.csv`, with each
//! lesion's AP / AUROC in the legend. The areas come from `fovea_metrics`
//! (`average_precision`, `roc_auc`), the same functions that wrote `metrics.json`, so the
//! numbers agree with it; the curves are drawn through the same tie groups (equal scores
//! move together), the PR curve as the step function whose area is the AP. Curves with
//! many points are thinned to steps of at least 1/500 of the axes before drawing.

use std::path::{Path, PathBuf};

use fovea_metrics::{average_precision, roc_auc, LESIONS, NUM_CLASSES};

use crate::chart::{Axis, LineChart, Plot, Series, LESION_COLOURS, NEUTRAL, SIZE};
use crate::error::{ReportError, Result};
use crate::fsio::write_atomic;
use crate::predictions::Predictions;

/// Ranking curves and areas of one lesion.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionCurves {
    /// MA, HE, EX or SE.
    pub lesion: &'static str,
    /// Average precision (scikit-learn's; 0 with no positive).
    pub ap: f64,
    /// AUROC, `None` when only one label value is present.
    pub auroc: Option<f64>,
    /// Positives / rows.
    pub prevalence: f64,
    /// Positive rows.
    pub positives: usize,
    /// (recall, precision) points of the PR step curve; empty with no positive.
    pub pr: Vec<(f64, f64)>,
    /// (false-positive rate, true-positive rate) points from (0, 0) to (1, 1); empty when
    /// AUROC is undefined.
    pub roc: Vec<(f64, f64)>,
}

/// Curves of one binary column. Errors as `fovea_metrics` (empty input, a NaN score,
/// a label not 0/1).
pub fn lesion_curves(
    lesion: &'static str,
    truth: &[u8],
    scores: &[f32],
) -> fovea_metrics::Result<LesionCurves> {
    let ap = average_precision(truth, scores)?;
    let auroc = roc_auc(truth, scores)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = truth.iter().filter(|&&t| t == 1).count();
    let neg = truth.len() - pos;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut pr = Vec::new();
    let mut roc = vec![(0.0, 0.0)];
    let mut prev_recall = 0.0;
    let mut i = 0;
    while i < order.len() {
        // One tie group.
        let s = scores[order[i]];
        let tp_before = tp;
        while i < order.len() && scores[order[i]] == s {
            if truth[order[i]] == 1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        if pos > 0 && tp > tp_before {
            let recall = tp as f64 / pos as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            pr.push((prev_recall, precision));
            pr.push((recall, precision));
            prev_recall = recall;
        }
        if pos > 0 && neg > 0 {
            roc.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
        }
    }
    if auroc.is_none() {
        roc.clear();
    }
    Ok(LesionCurves {
        lesion,
        ap,
        auroc,
        prevalence: pos as f64 / truth.len().max(1) as f64,
        positives: pos,
        pr: thin(pr),
        roc: thin(roc),
    })
}

/// Drops points closer than 1/500 of the unit square to the last point kept (keeping the
/// first and the last), so that an SVG of 100,000 rows stays small.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    const STEP: f64 = 1.0 / 500.0;
    if points.len() <= 1000 {
        return points;
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(1000);
    for (k, &p) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(&q) => (p.0 - q.0).abs() >= STEP || (p.1 - q.1).abs() >= STEP,
        };
        if keep || k + 1 == points.len() {
            out.push(p);
        }
    }
    out
}

/// Curves of the four lesions of a predictions file.
pub fn prediction_curves(p: &Predictions) -> Result<Vec<LesionCurves>> {
    (0..NUM_CLASSES)
        .map(|c| {
            lesion_curves(LESIONS[c], &p.truth_column(c), &p.prob_column(c))
                .map_err(|e| ReportError::malformed(&p.path, format!("{}: {e}", LESIONS[c])))
        })
        .collect()
}

/// The PR chart of the lesions: one curve each (AP in the legend) and each lesion's
/// prevalence, a random scorer's precision, dotted.
pub fn pr_chart(curves: &[LesionCurves]) -> LineChart {
    let mut series = Vec::new();
    for (c, lc) in curves.iter().enumerate() {
        let color = LESION_COLOURS[c % LESION_COLOURS.len()];
        let label = if lc.positives == 0 {
            format!("{}  no positive", lc.lesion)
        } else {
            format!("{}  AP {:.3}", lc.lesion, lc.ap)
        };
        series.push(
            Series::new("", color, vec![(0.0, lc.prevalence), (1.0, lc.prevalence)])
                .dotted()
                .unlabelled()
                .width(1),
        );
        series.push(Series::new(label, color, lc.pr.clone()));
    }
    series.push(Series::new("prevalence", NEUTRAL, vec![]).dotted().width(1));
    LineChart {
        title: "Precision-recall per lesion".into(),
        x: Axis::unit("recall"),
        y: Axis::unit("precision"),
        series,
    }
}

/// The ROC chart of the lesions: one curve each (AUROC in the legend) and the diagonal
/// of a random scorer.
pub fn roc_chart(curves: &[LesionCurves]) -> LineChart {
    let mut series = vec![Series::new("random", NEUTRAL, vec![(0.0, 0.0), (1.0, 1.0)])
        .dotted()
        .width(1)];
    for (c, lc) in curves.iter().enumerate() {
        let color = LESION_COLOURS[c % LESION_COLOURS.len()];
        let label = match lc.auroc {
            Some(a) => format!("{}  AUROC {a:.3}", lc.lesion),
            None => format!("{}  AUROC undefined", lc.lesion),
        };
        series.push(Series::new(label, color, lc.roc.clone()));
    }
    LineChart {
        title: "ROC per lesion".into(),
        x: Axis::unit("false-positive rate"),
        y: Axis::unit("true-positive rate"),
        series,
    }
}

/// PR and ROC plots of a predictions file, with the curves they were drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct PrRocPlots {
    pub curves: Vec<LesionCurves>,
    pub pr: Plot,
    pub roc: Plot,
}

/// Reads `predictions.csv` and draws its PR and ROC charts (PNG bytes and SVG text).
pub fn pr_roc_plots(predictions: &Path) -> Result<PrRocPlots> {
    plots_of(&Predictions::read(predictions)?)
}

/// PR and ROC plots of predictions already read.
pub fn plots_of(p: &Predictions) -> Result<PrRocPlots> {
    let curves = prediction_curves(p)?;
    Ok(PrRocPlots {
        pr: pr_chart(&curves).plot(SIZE)?,
        roc: roc_chart(&curves).plot(SIZE)?,
        curves,
    })
}

/// Reads `predictions.csv` and writes `DIR/pr.{png,svg}` and `DIR/roc.{png,svg}`
/// atomically; returns the files written.
pub fn write_pr_roc(predictions: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let plots = pr_roc_plots(predictions)?;
    let mut written = Vec::new();
    for (name, plot) in [("pr", &plots.pr), ("roc", &plots.roc)] {
        let png = dir.join(format!("{name}.png"));
        write_atomic(&png, &plot.png)?;
        let svg = dir.join(format!("{name}.svg"));
        write_atomic(&svg, plot.svg.as_bytes())?;
        written.extend([png, svg]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_agree_with_the_metrics_crate() {
        // Descending: 0.9 +, 0.8 -, 0.8 +, 0.3 -, 0.1 +.
        let truth = [1, 0, 1, 0, 1];
        let scores = [0.9, 0.8, 0.8, 0.3, 0.1];
        let c = lesion_curves("MA", &truth, &scores).unwrap();
        assert_eq!(c.ap, average_precision(&truth, &scores).unwrap());
        // The PR step curve's area is the AP.
        let area: f64 = c.pr.chunks(2).map(|s| (s[1].0 - s[0].0) * s[0].1).sum();
        assert!((area - c.ap).abs() < 1e-12, "{area} vs {}", c.ap);
        // Trapezoids under the ROC points give the AUROC.
        let auc: f64 = c
            .roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((auc - c.auroc.unwrap()).abs() < 1e-12);
        assert_eq!(c.roc.last().copied(), Some((1.0, 1.0)));
        assert_eq!(c.positives, 3);
        assert!((c.prevalence - 0.6).abs() < 1e-12);
    }

    #[test]
    fn single_class_columns_have_no_roc() {
        let c = lesion_curves("SE", &[0, 0, 0], &[0.2, 0.5, 0.1]).unwrap();
        assert_eq!((c.ap, c.auroc, c.positives), (0.0, None, 0));
        assert!(c.pr.is_empty() && c.roc.is_empty());
        assert!(lesion_curves("SE", &[], &[]).is_err());
    }

    #[test]
    fn thinning_keeps_ends_and_shape() {
        let pts: Vec<(f64, f64)> = (0..=100_000).map(|i| (i as f64 / 1e5, 1.0)).collect();
        let t = thin(pts);
        assert!(t.len() <= 600, "{}", t.len());
        assert_eq!(t.first().copied(), Some((0.0, 1.0)));
        assert_eq!(t.last().copied(), Some((1.0, 1.0)));
    }
}
