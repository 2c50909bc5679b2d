//! Section "Training curves": the plots of [`crate::curves`] drawn inline as SVG from
//! `RUN/metrics.csv` and `RUN/val_ranking.csv`, with the best validation epoch.

use fovea_metrics::MetricsCsvRow;
use fovea_run::RunDir;

use super::Context;
use crate::chart::SIZE;
use crate::curves::training_charts;
use crate::error::Result;
use crate::page::{esc, num, svg_figure, Section};

const ID: &str = "training";
const TITLE: &str = "Training curves";

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
    let charts = training_charts(&rows, ranking.as_deref());
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
    if let Some(b) = best {
        body += &format!(
            "; best validation macro F1 {} at epoch {}",
            num(b.macro_f1, 3),
            b.epoch
        );
    }
    body += ". F1 here is at threshold 0.5; dashed lines are the training split, solid the validation split.</p><div class=\"plots\">";
    for nc in &charts {
        body += &svg_figure(&nc.chart.svg(SIZE)?, &format!("plots/{}.svg", nc.name));
    }
    body += "</div>";
    if ranking.is_none() {
        body += "<p class=\"note\">No val_ranking.csv in the run, so no validation AP plot.</p>";
    }
    Ok(Section::shown(ID, TITLE, body))
}
