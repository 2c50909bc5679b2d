//! Section "Training curves": the plots of [`crate::curves`] drawn inline as SVG from
//! `RUN/metrics.csv` and `RUN/val_ranking.csv`, with the best validation epoch. A
//! segmentation run logs the same columns over pixels and keeps the model of the best
//! mean pixel AUPR (the `ap_*` of val_ranking.csv), so its text says so and names that
//! epoch.

use fovea_metrics::MetricsCsvRow;
use fovea_run::{RankingRow, RunDir};

use super::Context;
use crate::chart::SIZE;
use crate::curves::training_charts_for;
use crate::error::Result;
use crate::page::{esc, num, svg_figure, Section};

const ID: &str = "training";
const TITLE: &str = "Training curves";

/// The epoch of the highest mean of the four validation AUPRs (the first among ties, as
/// the training keeps it), with that mean; rows whose mean is not finite are skipped.
pub fn best_mean_ap(ranking: &[RankingRow]) -> Option<(usize, f64)> {
    ranking
        .iter()
        .map(|r| (r.epoch, r.ap.iter().sum::<f64>() / r.ap.len() as f64))
        .filter(|(_, m)| m.is_finite())
        .fold(None, |b, (e, m)| match b {
            Some((be, bm)) if bm >= m => Some((be, bm)),
            _ => Some((e, m)),
        })
}

pub fn section(ctx: &Context) -> Result<Section> {
    let run = RunDir::new(&ctx.run);
    let metrics = run.metrics_csv();
    if !metrics.is_file() {
        return Ok(Section::absent(
            ID,
            TITLE,
            format!(
                "No metrics.csv in {}: `fovea train --store STORE --out {}` writes it after every epoch.",
                ctx.run.display(),
                ctx.run.display()
            ),
        ));
    }
    let rows = run.read_metrics()?;
    let ranking = if run.val_ranking_csv().is_file() {
        Some(run.read_val_ranking()?)
    } else {
        None
    };
    let seg = ctx.segmentation();
    let charts = training_charts_for(&rows, ranking.as_deref(), ctx.task());
    if charts.is_empty() {
        return Ok(Section::absent(
            ID,
            TITLE,
            format!("{} has no epoch yet.", metrics.display()),
        ));
    }
    let mut body = String::new();
    let best = rows
        .iter()
        .filter(|r| r.split == "val" && r.macro_f1.is_finite())
        .fold(None::<&MetricsCsvRow>, |b, r| match b {
            Some(b) if b.macro_f1 >= r.macro_f1 => Some(b),
            _ => Some(r),
        });
    let epochs = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    body += &format!(
        "<p class=\"note\">{epochs} epoch{} logged in <code>{}</code>",
        if epochs == 1 { "" } else { "s" },
        esc(&metrics.display().to_string())
    );
    if seg {
        if let Some((epoch, mean)) = ranking.as_deref().and_then(best_mean_ap) {
            body += &format!(
                "; best validation mean pixel AUPR {} at epoch {epoch} (the model kept)",
                num(mean, 3)
            );
        }
        if let Some(b) = best {
            body += &format!(
                "; best validation pixel macro F1 {} at epoch {}",
                num(b.macro_f1, 3),
                b.epoch
            );
        }
        body += ". Every figure here is over pixels: loss and F1 at threshold 0.5 over the pixels of the training tiles (train) and over every pixel of the validation photographs (validation), and the validation AP curve is the pixel AUPR per lesion; dashed lines are the training split, solid the validation split.</p><div class=\"plots\">";
    } else {
        if let Some(b) = best {
            body += &format!(
                "; best validation macro F1 {} at epoch {}",
                num(b.macro_f1, 3),
                b.epoch
            );
        }
        body += ". F1 here is at threshold 0.5; dashed lines are the training split, solid the validation split.</p><div class=\"plots\">";
    }
    for nc in &charts {
        body += &svg_figure(&nc.chart.svg(SIZE)?, &format!("plots/{}.svg", nc.name));
    }
    body += "</div>";
    if ranking.is_none() {
        body += if seg {
            "<p class=\"note\">No val_ranking.csv in the run, so no validation pixel AUPR plot and no best mean pixel AUPR.</p>"
        } else {
            "<p class=\"note\">No val_ranking.csv in the run, so no validation AP plot.</p>"
        };
    }
    Ok(Section::shown(ID, TITLE, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, ap: [f64; 4]) -> RankingRow {
        RankingRow {
            epoch,
            ap,
            auroc: [0.5; 4],
            prevalence: [0.1; 4],
        }
    }

    #[test]
    fn best_mean_ap_skips_nan_and_keeps_the_first_of_ties() {
        assert_eq!(best_mean_ap(&[]), None);
        let rows = [
            row(1, [0.1, 0.2, 0.3, 0.4]),
            row(2, [0.4, 0.4, 0.4, 0.4]),
            row(3, [1.0, 1.0, 1.0, f64::NAN]),
            row(4, [0.4, 0.4, 0.4, 0.4]),
            row(5, [0.2, 0.2, 0.2, 0.2]),
        ];
        let (epoch, mean) = best_mean_ap(&rows).unwrap();
        assert_eq!(epoch, 2);
        assert!((mean - 0.4).abs() < 1e-12, "{mean}");
        assert_eq!(best_mean_ap(&[row(7, [f64::NAN; 4])]), None);
    }
}
