//! Training curves of a run, from `RUN/metrics.csv` (and `RUN/val_ranking.csv` when it
//! exists): loss, macro F1, F1 per lesion (train dashed, validation solid) and validation
//! AP per lesion beside its prevalence (dotted), each written as `RUN/plots/NAME.png` and
//! `RUN/plots/NAME.svg`. Whoever runs a training calls [`write_training_curves`] after
//! every epoch (`fovea train`'s console observer in fovea-torch; the training engine
//! itself draws nothing); one epoch already gives readable plots (every point has a dot).
//!
//! A segmentation run (`task = "segmentation"` in `RUN/config.toml`) logs the same columns
//! computed over pixels, and its validation AP is pixel AUPR: its titles say so.

use std::path::{Path, PathBuf};

use fovea_metrics::{MetricsCsvRow, LESIONS};
use fovea_run::{RankingRow, RunDir};

use crate::chart::{
    Axis, LineChart, Series, LESION_COLOURS, NEUTRAL, SIZE, TRAIN_COLOR, VAL_COLOR,
};
use crate::error::{ReportError, Result};
use crate::fsio::write_atomic;
use crate::run_config::{read_run_config, RunTask};

/// A chart with its file stem (`loss`, `macro_f1`, `per_class_f1`, `val_ap`).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedChart {
    pub name: &'static str,
    pub chart: LineChart,
}

/// (epoch, value) of the rows of one split.
fn by_epoch(
    rows: &[MetricsCsvRow],
    split: &str,
    f: impl Fn(&MetricsCsvRow) -> f64,
) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.split == split)
        .map(|r| (r.epoch as f64, f(r)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Largest finite y over the series.
fn y_max<'a>(series: impl IntoIterator<Item = &'a Series>) -> f64 {
    series
        .into_iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max)
}

/// A y axis for scores in [0, 1]: the whole range once values pass 0.6, else zoomed to
/// a nice bound above the largest value (at least 0.05).
fn score_axis(label: &str, max: f64) -> Axis {
    if max > 0.6 {
        Axis::unit(label)
    } else {
        Axis::zero_to(label, max.max(0.05))
    }
}

/// Train (dashed) and validation (solid) series of one metric.
fn split_pair(rows: &[MetricsCsvRow], f: impl Fn(&MetricsCsvRow) -> f64 + Copy) -> Vec<Series> {
    vec![
        Series::new("train", TRAIN_COLOR, by_epoch(rows, "train", f))
            .dashed()
            .with_markers(),
        Series::new("validation", VAL_COLOR, by_epoch(rows, "val", f)).with_markers(),
    ]
}

/// The charts of a patch classifier's training log: loss, macro F1, F1 per lesion, and
/// validation AP when `ranking` is given. Empty when `rows` is.
pub fn training_charts(rows: &[MetricsCsvRow], ranking: Option<&[RankingRow]>) -> Vec<NamedChart> {
    training_charts_for(rows, ranking, RunTask::Classifier)
}

/// Chart titles and the AP axis label, by what the run trained.
struct Titles {
    macro_f1: &'static str,
    per_class_f1: &'static str,
    val_ap: &'static str,
    ap_axis: &'static str,
}

impl Titles {
    fn of(task: RunTask) -> Titles {
        match task {
            RunTask::Classifier => Titles {
                macro_f1: "Macro F1 by epoch (threshold 0.5)",
                per_class_f1: "F1 per lesion by epoch (threshold 0.5)",
                val_ap: "Validation average precision per lesion",
                ap_axis: "average precision",
            },
            RunTask::Segmentation => Titles {
                macro_f1: "Pixel macro F1 by epoch (threshold 0.5)",
                per_class_f1: "Pixel F1 per lesion by epoch (threshold 0.5)",
                val_ap: "Validation pixel AUPR per lesion",
                ap_axis: "pixel AUPR",
            },
        }
    }
}

/// [`training_charts`] titled for a run of `task`: a segmentation run's F1 curves are
/// over pixels and its validation AP curve is pixel AUPR.
pub fn training_charts_for(
    rows: &[MetricsCsvRow],
    ranking: Option<&[RankingRow]>,
    task: RunTask,
) -> Vec<NamedChart> {
    let titles = Titles::of(task);
    if rows.is_empty() {
        return Vec::new();
    }
    let last = rows
        .iter()
        .map(|r| r.epoch)
        .chain(ranking.unwrap_or(&[]).iter().map(|r| r.epoch))
        .max()
        .unwrap_or(1);
    let epochs = || Axis::epochs("epoch", last);
    let mut out = Vec::new();

    let loss = split_pair(rows, |r| r.loss);
    out.push(NamedChart {
        name: "loss",
        chart: LineChart {
            title: "Loss by epoch".into(),
            x: epochs(),
            y: Axis::zero_to("mean loss", y_max(&loss)),
            series: loss,
        },
    });

    let macro_f1 = split_pair(rows, |r| r.macro_f1);
    out.push(NamedChart {
        name: "macro_f1",
        chart: LineChart {
            title: titles.macro_f1.into(),
            x: epochs(),
            y: score_axis("macro F1", y_max(&macro_f1)),
            series: macro_f1,
        },
    });

    let mut per_class = Vec::new();
    for (c, name) in LESIONS.iter().enumerate() {
        let color = LESION_COLOURS[c];
        per_class.push(
            Series::new(*name, color, by_epoch(rows, "train", |r| r.f1[c]))
                .dashed()
                .unlabelled(),
        );
        per_class
            .push(Series::new(*name, color, by_epoch(rows, "val", |r| r.f1[c])).with_markers());
    }
    per_class.push(Series::new("train", NEUTRAL, vec![]).dashed());
    per_class.push(Series::new("validation", NEUTRAL, vec![]));
    out.push(NamedChart {
        name: "per_class_f1",
        chart: LineChart {
            title: titles.per_class_f1.into(),
            x: epochs(),
            y: score_axis("F1", y_max(&per_class)),
            series: per_class,
        },
    });

    if let Some(ranking) = ranking.filter(|r| !r.is_empty()) {
        let mut rk: Vec<&RankingRow> = ranking.iter().collect();
        rk.sort_by_key(|r| r.epoch);
        let mut series = Vec::new();
        for (c, name) in LESIONS.iter().enumerate() {
            let color = LESION_COLOURS[c];
            let ap = rk.iter().map(|r| (r.epoch as f64, r.ap[c])).collect();
            let prev = rk
                .iter()
                .map(|r| (r.epoch as f64, r.prevalence[c]))
                .collect();
            series.push(Series::new(*name, color, ap).with_markers());
            series.push(Series::new(*name, color, prev).dotted().unlabelled());
        }
        series.push(Series::new("prevalence", NEUTRAL, vec![]).dotted());
        out.push(NamedChart {
            name: "val_ap",
            chart: LineChart {
                title: titles.val_ap.into(),
                x: epochs(),
                y: score_axis(titles.ap_axis, y_max(&series)),
                series,
            },
        });
    }
    out
}

/// Reads `RUN/metrics.csv` (and `RUN/val_ranking.csv` if present) and writes
/// `RUN/plots/{loss,macro_f1,per_class_f1[,val_ap]}.{png,svg}`, atomically; returns the
/// files written. Errors: no or a malformed metrics.csv (the message names the file and
/// line), a malformed val_ranking.csv or config.toml, an unwritable plots folder. A
/// metrics.csv with a header only writes nothing. The titles follow the `task` of
/// `RUN/config.toml` (a classifier's when there is none).
pub fn write_training_curves(run: &Path) -> Result<Vec<PathBuf>> {
    let run = RunDir::new(run);
    let metrics = run.metrics_csv();
    if !metrics.is_file() {
        return Err(ReportError::Missing {
            path: metrics,
            reason: "no training log here (`fovea train --out RUN` writes it)".into(),
        });
    }
    let rows = run.read_metrics()?;
    let ranking = if run.val_ranking_csv().is_file() {
        Some(run.read_val_ranking()?)
    } else {
        None
    };
    let config = run.config();
    let task = if config.is_file() {
        read_run_config(&config)?.task
    } else {
        RunTask::Classifier
    };
    let mut written = Vec::new();
    for nc in training_charts_for(&rows, ranking.as_deref(), task) {
        let png = run.plot(nc.name, "png");
        write_atomic(&png, &nc.chart.png(SIZE)?)?;
        written.push(png);
        let svg = run.plot(nc.name, "svg");
        write_atomic(&svg, nc.chart.svg(SIZE)?.as_bytes())?;
        written.push(svg);
    }
    Ok(written)
}
