//! Section "Settings": `RUN/config.toml` as a table of dotted keys, and the tuned
//! thresholds. A segmentation run's table leaves out the classifier-only settings its
//! config.toml also holds (unused by the U-Net, they would only mislead).

use fovea_metrics::LESIONS;

use super::Context;
use crate::page::{esc, num, table, Section};
use crate::run_config::is_classifier_only;

const ID: &str = "settings";
const TITLE: &str = "Settings";

pub fn section(ctx: &Context) -> Section {
    let Some(cfg) = &ctx.config else {
        return Section::absent(
            ID,
            TITLE,
            format!(
                "No config.toml in {}: `fovea train --store STORE --out {}` writes every resolved setting there.",
                ctx.run.display(),
                ctx.run.display()
            ),
        );
    };
    let seg = cfg.is_segmentation();
    let rows: Vec<Vec<String>> = cfg
        .entries
        .iter()
        .filter(|(k, _)| !(seg && is_classifier_only(k)))
        .map(|(k, v)| vec![esc(k), esc(v)])
        .collect();
    let config = esc(&fovea_run::RunDir::new(&ctx.run)
        .config()
        .display()
        .to_string());
    let mut body = if seg {
        format!(
            "<p class=\"note\">The resolved settings of this segmentation run, from <code>{config}</code>; the classifier-only settings written there too (<code>model</code>, <code>pool</code>, <code>batch_size</code>, <code>augment.*</code>, <code>context.*</code>, <code>data.*</code>, <code>loss.*</code>) are not used by the U-Net and not shown.</p>"
        )
    } else {
        format!(
            "<p class=\"note\">Every resolved setting of the run, from <code>{config}</code>.</p>"
        )
    };
    body += &table("settings", &["setting", "value"], &rows);
    if let Some((t, from)) = &ctx.thresholds {
        let (tuned, unit) = if seg {
            (
                "tuned on the validation photographs for the highest pixel F1",
                "a pixel",
            )
        } else {
            ("tuned on the validation split", "a patch")
        };
        body += &format!(
            "<h3>Tuned thresholds</h3><p class=\"note\">Per lesion, {tuned} (from <code>{}</code>); {unit} is predicted positive when its probability is at least the threshold.</p>",
            esc(&from.display().to_string())
        );
        let row: Vec<String> = t.iter().map(|v| num(*v, 3)).collect();
        body += &table("thresholds", &LESIONS, &[row]);
    }
    Section::shown(ID, TITLE, body)
}
