//! Section "Test metrics": `EVAL/metrics.json` (CONTRACTS 4) as a per-lesion table of
//! precision, recall and F1 at 0.5 and at the tuned thresholds, with AP and AUROC, and a
//! table of the aggregate metrics. A segmentation run's patches are scored from its maps,
//! which the section says.

use fovea_metrics::{ThresholdedMetrics, LESIONS};

use super::Context;
use crate::page::{cell, esc, num, opt, table, Section};

const ID: &str = "metrics";
const TITLE: &str = "Test metrics";

pub fn section(ctx: &Context) -> Section {
    let Some(m) = &ctx.metrics else {
        let hint = match &ctx.eval {
            None => format!(
                "No evaluation given: run `{}` and pass `--eval {}`.",
                ctx.eval_command(),
                ctx.eval_arg()
            ),
            Some(e) => format!(
                "No metrics.json in {}: `{}` writes it.",
                e.display(),
                ctx.eval_command()
            ),
        };
        return Section::absent(ID, TITLE, hint);
    };
    let mut body = String::new();
    if let Some(e) = &ctx.eval {
        body += &format!(
            "<p class=\"note\">From <code>{}</code>. <em>0.5</em>: every lesion at threshold 0.5; <em>tuned</em>: the per-lesion thresholds tuned on the validation split. AP and AUROC do not depend on a threshold.</p>",
            esc(&fovea_run::EvalDir::new(e).metrics_json().display().to_string())
        );
    }
    if ctx.segmentation() {
        // eval of a segmentation run writes the classifier's files from the U-Net's maps.
        body += "<p class=\"note\">This segmentation run scores each patch by the highest pixel probability inside it (inside its label region when the store labels a centred square), with its pixel thresholds as the tuned ones, so these figures compare with a patch classifier's on the same patches.</p>";
    }
    body += "<table class=\"metrics\"><thead><tr class=\"group\"><th></th><th colspan=\"4\">threshold 0.5</th><th colspan=\"4\">tuned thresholds</th><th colspan=\"2\">ranking</th></tr><tr><th>lesion</th>";
    for h in [
        "threshold",
        "precision",
        "recall",
        "F1",
        "threshold",
        "precision",
        "recall",
        "F1",
        "AP",
        "AUROC",
    ] {
        body += &format!("<th class=\"num\">{h}</th>");
    }
    body += "</tr></thead><tbody>";
    let block = |t: &ThresholdedMetrics, c: usize| {
        [
            num(t.thresholds[c], 3),
            num(t.precision[c], 3),
            num(t.recall[c], 3),
            format!("<b>{}</b>", num(t.f1[c], 3)),
        ]
    };
    for (c, l) in LESIONS.iter().enumerate() {
        body += &format!("<tr><th>{l}</th>");
        for v in block(&m.fixed, c)
            .into_iter()
            .chain(block(&m.tuned, c))
            .chain([num(m.average_precision[c], 3), opt(m.auroc[c], 3)])
        {
            body += &cell("td", &v);
        }
        body += "</tr>";
    }
    body += "</tbody></table>";
    body += "<h3>All lesions together</h3>";
    let agg = |name: &str, f: fn(&ThresholdedMetrics) -> f64| {
        vec![esc(name), num(f(&m.fixed), 3), num(f(&m.tuned), 3)]
    };
    let rows = vec![
        agg("micro F1", |t| t.micro_f1),
        agg("macro F1", |t| t.macro_f1),
        agg("Hamming loss", |t| t.hamming),
        agg("subset accuracy", |t| t.subset_acc),
    ];
    body += &table("aggregate", &["metric", "threshold 0.5", "tuned"], &rows);
    Section::shown(ID, TITLE, body)
}
