//! Section "Lesion maps": pixel-level AUPR per lesion (`EVAL/pixel_metrics.json`) beside
//! the IDRiD challenge's best published, and a card per photograph of `MAPS` (overlay
//! thumbnail, size, regions, image-level probabilities, pixel AUPR). The notes say how the
//! pixels were scored: a classifier's heatmap cells, or a segmentation run's own
//! full-resolution probabilities.

use fovea_metrics::LESIONS;

use super::Context;
use crate::error::Result;
use crate::maps::{read_maps, MapEntry, OVERLAY_THUMB};
use crate::page::{esc, missing, num, opt, png_img, table, Section};
use crate::pixel_metrics::{PixelMetrics, IDRID_BEST_AUPR};

const ID: &str = "maps";
const TITLE: &str = "Lesion maps";

fn pixel_table(pm: &PixelMetrics) -> String {
    let rows: Vec<Vec<String>> = LESIONS
        .iter()
        .enumerate()
        .map(|(c, l)| {
            vec![
                format!("<b>{l}</b>"),
                opt(pm.aupr[c], 3),
                num(IDRID_BEST_AUPR[c], 3),
                opt(pm.auroc[c], 3),
            ]
        })
        .collect();
    table(
        "pixel",
        &["lesion", "pixel AUPR", "IDRiD best AUPR", "pixel AUROC"],
        &rows,
    )
}

fn card(m: &MapEntry, pm: Option<&PixelMetrics>) -> String {
    let mut facts = format!(
        "<b>{}</b><br>{}&times;{} px",
        esc(&m.image_id),
        m.size.0,
        m.size.1
    );
    if let Some(s) = m.stride {
        facts += &format!(", stride {s}");
    }
    if let Some(n) = m.regions {
        let by: Vec<String> = LESIONS
            .iter()
            .zip(m.regions_by_lesion)
            .filter(|(_, k)| *k > 0)
            .map(|(l, k)| format!("{l} {k}"))
            .collect();
        facts += &format!(
            "<br>{n} detected region{}{}",
            if n == 1 { "" } else { "s" },
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        );
    }
    let aupr = pm.and_then(|p| p.per_image.get(&m.image_id));
    if m.image_probability.is_some() || aupr.is_some() {
        let mut rows = Vec::new();
        if let Some(p) = m.image_probability {
            let mut r = vec!["image prob.".to_string()];
            r.extend(p.iter().map(|v| num(*v, 2)));
            rows.push(r);
        }
        if let Some(a) = aupr {
            let mut r = vec!["pixel AUPR".to_string()];
            r.extend(a.iter().map(|v| opt(*v, 2)));
            rows.push(r);
        }
        facts += &table("mapfacts", &["", "MA", "HE", "EX", "SE"], &rows);
    }
    format!(
        "<figure>{}<figcaption>{facts}</figcaption></figure>",
        png_img(&m.overlay_png, &format!("lesion map of {}", m.image_id), "")
    )
}

pub fn section(ctx: &Context) -> Result<Section> {
    let pm = ctx.pixel.as_ref();
    if ctx.maps.is_none() && pm.is_none() {
        return Ok(Section::absent(
            ID,
            TITLE,
            format!(
                "No lesion maps given: run `fovea predict --run {} IMAGE... --out MAPS` and pass `--maps MAPS`; `fovea eval-maps --run {} --dataset DIR --split test --out {}` adds the pixel-level AUPR.",
                ctx.run.display(),
                ctx.run.display(),
                ctx.eval_arg()
            ),
        ));
    }
    let seg = ctx.segmentation();
    let mut body = String::new();
    body += "<h3>Pixel-level AUPR</h3>";
    match pm {
        Some(pm) => {
            // A segmentation run's eval-maps scores its full-resolution output, a
            // classifier's its heatmap cells: the sentences say which.
            body += if seg {
                "<p class=\"note\">Area under the precision-recall curve over all pixels of the test photographs, each pixel scored with the model's own full-resolution probability (the IDRiD challenge's measure), beside the best AUPR published in the challenge.</p>"
            } else {
                "<p class=\"note\">Area under the precision-recall curve over all pixels of the test photographs, each pixel taking its heatmap cell's value (the IDRiD challenge's measure), beside the best AUPR published in the challenge.</p>"
            };
            body += &pixel_table(pm);
            if let Some(il) = &pm.image_level {
                body += &format!(
                    "<h3>Image-level presence</h3><p class=\"note\">Whether a photograph has the lesion, scored by its image-level probability (the highest {} probability in the field of view).</p>",
                    if seg { "pixel" } else { "window" }
                );
                let rows: Vec<Vec<String>> = LESIONS
                    .iter()
                    .enumerate()
                    .map(|(c, l)| {
                        vec![
                            format!("<b>{l}</b>"),
                            opt(il.positives[c], 0),
                            opt(il.auroc[c], 3),
                            opt(il.ap[c], 3),
                            opt(il.f1[c], 3),
                        ]
                    })
                    .collect();
                body += &table(
                    "imagelevel",
                    &["lesion", "photographs with it", "AUROC", "AP", "F1 at threshold"],
                    &rows,
                );
            }
        }
        None => {
            body += &missing(&format!(
                "No pixel_metrics.json: `fovea eval-maps --run {} --dataset DIR --split test --out {}` writes it.",
                ctx.run.display(),
                ctx.eval_arg()
            ))
        }
    }
    body += "<h3>Photographs</h3>";
    match &ctx.maps {
        Some(dir) => {
            let maps = read_maps(dir, OVERLAY_THUMB)?;
            if maps.is_empty() {
                body += &missing(&format!(
                    "{} holds no map folder (IMAGE_ID/overlay.png with summary.json): `fovea predict --run {} IMAGE... --out {}` writes them.",
                    dir.display(),
                    ctx.run.display(),
                    dir.display()
                ));
            } else {
                body += &format!(
                    "<p class=\"note\">{} photograph{} of <code>{}</code>.</p><div class=\"maps\">",
                    maps.len(),
                    if maps.len() == 1 { "" } else { "s" },
                    esc(&dir.display().to_string())
                );
                for m in &maps {
                    body += &card(m, pm);
                }
                body += "</div>";
            }
        }
        None => {
            body += &missing(&format!(
                "No lesion maps given: run `fovea predict --run {} IMAGE... --out MAPS` and pass `--maps MAPS`.",
                ctx.run.display()
            ))
        }
    }
    Ok(Section::shown(ID, TITLE, body))
}
