//! Section "Settings": `RUN/config.toml` as a table of dotted keys, and the tuned
//! thresholds.

use fovea_metrics::LESIONS;

use super::Context;
use crate::page::{esc, num, table, Section};

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
    let rows: Vec<Vec<String>> = cfg
        .entries
        .iter()
        .map(|(k, v)| vec![esc(k), esc(v)])
        .collect();
    let mut body = format!(
        "<p class=\"note\">Every resolved setting of the run, from <code>{}</code>.</p>",
        esc(&fovea_run::RunDir::new(&ctx.run)
            .config()
            .display()
            .to_string())
    );
    body += &table("settings", &["setting", "value"], &rows);
    if let Some((t, from)) = &ctx.thresholds {
        body += &format!(
            "<h3>Tuned thresholds</h3><p class=\"note\">Per lesion, tuned on the validation split (from <code>{}</code>); a patch is predicted positive when its probability is at least the threshold.</p>",
            esc(&from.display().to_string())
        );
        let row: Vec<String> = t.iter().map(|v| num(*v, 3)).collect();
        body += &table("thresholds", &LESIONS, &[row]);
    }
    Section::shown(ID, TITLE, body)
}
