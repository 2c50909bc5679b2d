//! Section "Dataset composition": the patch store's `stats.json` (all patches and per
//! split: images, patches, black, healthy, lesion, label sums) and the lesion
//! co-occurrence over non-black patches.

use fovea_metrics::LESIONS;
use fovea_store::stats::Composition;

use super::Context;
use crate::page::{count, esc, table, Section};

const ID: &str = "dataset";
const TITLE: &str = "Dataset composition";

fn row(name: &str, c: &Composition) -> Vec<String> {
    let mut r = vec![
        esc(name),
        count(c.images),
        count(c.patches),
        count(c.black),
        count(c.usable()),
        count(c.healthy - c.black.min(c.healthy)),
        count(c.lesion),
    ];
    r.extend(c.label_sums.iter().map(|&n| count(n)));
    r
}

pub fn section(ctx: &Context) -> Section {
    let Some(store) = &ctx.store else {
        return Section::absent(ID, TITLE, ctx.store_hint.clone());
    };
    let st = &store.stats;
    let mut rows = vec![row("all", &st.all)];
    for (split, c) in &st.splits {
        rows.push(row(&split.to_string(), c));
    }
    let head = [
        "split", "images", "patches", "black", "usable", "healthy", "lesion", "MA", "HE", "EX",
        "SE",
    ];
    let mut body = format!(
        "<p class=\"note\">Patch store <code>{}</code>: {}&times;{} patches at stride {}. \
<em>Black</em> patches (mostly outside the field of view, no lesion) are kept in the store \
but never trained on or evaluated; <em>usable</em> = patches &minus; black; <em>healthy</em> \
counts usable patches with no label; MA&ndash;SE are label sums over usable patches.</p>",
        esc(&store.dir.display().to_string()),
        store.settings.patch_size,
        store.settings.patch_size,
        store.settings.stride
    );
    body += &table("composition", &head, &rows);
    body += "<h3>Lesion co-occurrence</h3><p class=\"note\">Usable patches labelled with both lesions (the diagonal repeats the label sums).</p>";
    let co: Vec<Vec<String>> = LESIONS
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut r = vec![format!("<b>{l}</b>")];
            r.extend(st.all.cooccurrence[i].iter().map(|&n| count(n)));
            r
        })
        .collect();
    body += &table("cooccurrence", &["", "MA", "HE", "EX", "SE"], &co);
    Section::shown(ID, TITLE, body)
}
