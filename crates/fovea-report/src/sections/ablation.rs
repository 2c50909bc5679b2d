//! Section "Ablation": the rows of a free-form CSV table (`--ablation FILE`), one row per
//! variant, shown as they are.

use super::Context;
use crate::csv::Table;
use crate::error::Result;
use crate::fsio::read_text;
use crate::page::{esc, table, Section};

const ID: &str = "ablation";
const TITLE: &str = "Ablation";

pub fn section(ctx: &Context) -> Result<Section> {
    let Some(path) = &ctx.ablation else {
        return Ok(Section::absent(
            ID,
            TITLE,
            format!(
                "No ablation table given: `{}` shows a CSV with one row per variant.",
                ctx.report_with("--ablation FILE")
            ),
        ));
    };
    let t = Table::parse(path, &read_text(path)?)?;
    let head: Vec<&str> = t.header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|(_, f)| f.iter().map(|c| esc(c.trim())).collect())
        .collect();
    let body = format!(
        "<p class=\"note\">{} row{} of <code>{}</code>.</p>{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        esc(&path.display().to_string()),
        table("ablation", &head, &rows)
    );
    Ok(Section::shown(ID, TITLE, body))
}
