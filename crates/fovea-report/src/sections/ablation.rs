//! Section "Ablation": the rows of a free-form CSV table (`--ablation FILE`), one row per
//! variant, shown as they are.

use super::Context;
use crate::error::{ReportError, Result};
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
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| ReportError::malformed(path, e);
    let head: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    if head.iter().all(String::is_empty) {
        return Err(ReportError::malformed(path, "empty file: no header line"));
    }
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(esc).collect()))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let body = format!(
        "<p class=\"note\">{} row{} of <code>{}</code>.</p>{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        esc(&path.display().to_string()),
        table("ablation", &head, &rows)
    );
    Ok(Section::shown(ID, TITLE, body))
}
