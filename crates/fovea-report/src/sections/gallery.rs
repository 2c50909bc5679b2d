//! Section "Patch galleries": per lesion, the true positives, false positives and false
//! negatives of [`crate::gallery`], each thumbnail captioned with its score, photograph
//! and patch id.

use super::{ranking::predictions_hint, Context};
use crate::error::Result;
use crate::gallery::{galleries, Outcome, GALLERY_SIZE};
use crate::page::{count, esc, num, png_img, Section};

const ID: &str = "gallery";
const TITLE: &str = "Patch galleries";

fn class(o: Outcome) -> &'static str {
    match o {
        Outcome::TruePositive => "tp",
        Outcome::FalsePositive => "fp",
        Outcome::FalseNegative => "fn",
    }
}

pub fn section(ctx: &Context) -> Result<Section> {
    let Some(p) = &ctx.predictions else {
        return Ok(Section::absent(ID, TITLE, predictions_hint(ctx)));
    };
    let Some(store) = &ctx.store else {
        return Ok(Section::absent(ID, TITLE, ctx.store_hint.clone()));
    };
    let Some((thresholds, from)) = &ctx.thresholds else {
        return Ok(Section::absent(
            ID,
            TITLE,
            format!(
                "No tuned thresholds: neither {} nor the evaluation's metrics.json is there (`fovea train` writes thresholds.json).",
                fovea_run::RunDir::new(&ctx.run).thresholds().display()
            ),
        ));
    };
    let pixelated = store.patches.patch_size() < 96;
    let mut body = format!(
        "<p class=\"note\">Test patches at the tuned thresholds (from <code>{}</code>), up to {GALLERY_SIZE} of each kind. Captions: the lesion's probability, the photograph and the patch id in the store. Borders: green true positive, red false positive, orange false negative.</p>",
        esc(&from.display().to_string())
    );
    for g in galleries(p, *thresholds, store, GALLERY_SIZE)? {
        body += &format!(
            "<h3>{} <span class=\"note\">threshold {}</span></h3>",
            g.lesion,
            num(g.threshold, 3)
        );
        for (outcome, total, thumbs) in &g.groups {
            body += &format!(
                "<h4>{} &mdash; {} of {}, {}</h4>",
                outcome.title(),
                thumbs.len(),
                count(*total as u64),
                outcome.which()
            );
            if thumbs.is_empty() {
                body += "<p class=\"note\">none</p>";
                continue;
            }
            body += &format!("<div class=\"thumbs {}\">", class(*outcome));
            for t in thumbs {
                let alt = format!("{} {} patch {}", g.lesion, t.image_id, t.patch);
                let img_class = if pixelated { "px" } else { "" };
                body += &format!(
                    "<figure>{}<figcaption><b>{}</b><br>{}<br>#{}</figcaption></figure>",
                    png_img(&t.png, &alt, img_class),
                    num(f64::from(t.score), 3),
                    esc(&t.image_id),
                    t.patch
                );
            }
            body += "</div>";
        }
    }
    Ok(Section::shown(ID, TITLE, body))
}
