//! Section "Precision-recall and ROC": the curves of [`crate::pr_roc`] from
//! `EVAL/predictions.csv`, inline SVG, with a table of AP, AUROC and prevalence.

use super::Context;
use crate::chart::SIZE;
use crate::error::Result;
use crate::page::{count, esc, num, opt, svg_figure, table, Section};
use crate::pr_roc::{pr_chart, prediction_curves, roc_chart};

const ID: &str = "ranking";
const TITLE: &str = "Precision-recall and ROC curves";

/// The hint when predictions.csv is absent.
pub fn predictions_hint(ctx: &Context) -> String {
    match &ctx.eval {
        None => format!(
            "No evaluation given: run `{}` and pass `--eval {}`.",
            ctx.eval_command(),
            ctx.eval_arg()
        ),
        Some(e) => format!(
            "No predictions.csv in {}: `{}` writes it.",
            e.display(),
            ctx.eval_command()
        ),
    }
}

pub fn section(ctx: &Context) -> Result<Section> {
    let Some(p) = &ctx.predictions else {
        return Ok(Section::absent(ID, TITLE, predictions_hint(ctx)));
    };
    let curves = prediction_curves(p)?;
    let mut body = format!(
        "<p class=\"note\">{} patches of <code>{}</code>. Dotted horizontal lines: each lesion's prevalence, the precision of a random scorer; the dotted diagonal: a random scorer's ROC.</p><div class=\"plots\">",
        count(p.len() as u64),
        esc(&p.path.display().to_string())
    );
    body += &svg_figure(&pr_chart(&curves).svg(SIZE)?, "precision-recall");
    body += &svg_figure(&roc_chart(&curves).svg(SIZE)?, "ROC");
    body += "</div>";
    let rows: Vec<Vec<String>> = curves
        .iter()
        .map(|c| {
            vec![
                format!("<b>{}</b>", c.lesion),
                count(c.positives as u64),
                format!("{}%", num(100.0 * c.prevalence, 2)),
                num(c.ap, 3),
                opt(c.auroc, 3),
            ]
        })
        .collect();
    body += &table(
        "ranking",
        &["lesion", "positives", "prevalence", "AP", "AUROC"],
        &rows,
    );
    Ok(Section::shown(ID, TITLE, body))
}
