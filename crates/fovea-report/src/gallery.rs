//! Patch galleries per lesion: the most confident true positives, the highest-scored false
//! positives and the lowest-scored false negatives of an evaluation, at the tuned
//! thresholds (`RUN/thresholds.json`; predicted positive when `p >= t`, as in
//! `fovea_metrics`), with the patch pixels read from the patch store the predictions came
//! from. A prediction row whose patch is not in the store, or belongs to another
//! photograph there, is an error: the store is not the one that was evaluated.

use fovea_metrics::{LESIONS, NUM_CLASSES};
use fovea_store::Store;
use image::RgbImage;

use crate::error::{ReportError, Result};
use crate::predictions::Predictions;
use crate::raster::{encode, shrink};

/// Patches shown per lesion and kind by default.
pub const GALLERY_SIZE: usize = 12;

/// Largest side of a thumbnail in pixels (larger patches are shrunk).
pub const THUMB_MAX: u32 = 128;

/// Which cell of the confusion matrix a patch is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    TruePositive,
    FalsePositive,
    FalseNegative,
}

impl Outcome {
    /// The three kinds, in the order they are shown.
    pub const ALL: [Outcome; 3] = [
        Outcome::TruePositive,
        Outcome::FalsePositive,
        Outcome::FalseNegative,
    ];

    /// A heading.
    pub fn title(self) -> &'static str {
        match self {
            Outcome::TruePositive => "True positives",
            Outcome::FalsePositive => "False positives",
            Outcome::FalseNegative => "False negatives",
        }
    }

    /// Which ones are shown.
    pub fn which(self) -> &'static str {
        match self {
            Outcome::TruePositive => "most confident first",
            Outcome::FalsePositive => "highest score first",
            Outcome::FalseNegative => "lowest score first",
        }
    }
}

/// Rows of one outcome: how many there are and the ones chosen, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    pub outcome: Outcome,
    /// All rows with this outcome.
    pub total: usize,
    /// Row indices into the predictions, at most the gallery size.
    pub rows: Vec<usize>,
}

/// Picks up to `n` rows of each outcome for lesion `c` at threshold `t`: true positives
/// and false positives by descending score, false negatives by ascending score; ties by
/// patch id.
pub fn select(p: &Predictions, c: usize, t: f64, n: usize) -> [Picked; 3] {
    let mut groups: [Vec<usize>; 3] = Default::default();
    for (i, (truth, prob)) in p.truth.iter().zip(&p.probs).enumerate() {
        let predicted = f64::from(prob[c]) >= t;
        match (truth[c] == 1, predicted) {
            (true, true) => groups[0].push(i),
            (false, true) => groups[1].push(i),
            (true, false) => groups[2].push(i),
            (false, false) => {}
        }
    }
    let score = |i: usize| p.probs[i][c];
    let mut out = Outcome::ALL.map(|outcome| Picked {
        outcome,
        total: 0,
        rows: Vec::new(),
    });
    for (k, mut rows) in groups.into_iter().enumerate() {
        let ascending = Outcome::ALL[k] == Outcome::FalseNegative;
        rows.sort_by(|&a, &b| {
            let by_score = if ascending {
                score(a).total_cmp(&score(b))
            } else {
                score(b).total_cmp(&score(a))
            };
            by_score.then(p.patch[a].cmp(&p.patch[b]))
        });
        out[k].total = rows.len();
        rows.truncate(n);
        out[k].rows = rows;
    }
    out
}

/// One patch of a gallery.
#[derive(Clone, Debug, PartialEq)]
pub struct Thumb {
    pub patch: u64,
    pub image_id: String,
    /// The lesion's probability.
    pub score: f32,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// The galleries of one lesion.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionGallery {
    pub lesion: &'static str,
    pub threshold: f64,
    /// True positives, false positives, false negatives: (outcome, total, thumbnails).
    pub groups: Vec<(Outcome, usize, Vec<Thumb>)>,
}

/// PNG of patch `k` of the store.
fn patch_png(store: &Store, k: usize) -> Result<Vec<u8>> {
    let p = store.patches.patch_size() as u32;
    let bytes = store.patches.patch(k).ok_or_else(|| {
        ReportError::malformed(&store.dir.join("patches.npy"), format!("has no patch {k}"))
    })?;
    let img = RgbImage::from_raw(p, p, bytes.to_vec()).ok_or_else(|| {
        ReportError::malformed(
            &store.dir.join("patches.npy"),
            format!("patch {k} is short"),
        )
    })?;
    encode(&format!("patch {k}"), &shrink(img, THUMB_MAX))
}

/// Galleries of the four lesions at `thresholds`, up to `n` patches per outcome.
pub fn galleries(
    p: &Predictions,
    thresholds: [f64; NUM_CLASSES],
    store: &Store,
    n: usize,
) -> Result<Vec<LesionGallery>> {
    let mut out = Vec::new();
    for c in 0..NUM_CLASSES {
        let mut groups = Vec::new();
        for picked in select(p, c, thresholds[c], n) {
            let mut thumbs = Vec::new();
            for &row in &picked.rows {
                let patch = p.patch[row];
                let image_id = &p.image_id[row];
                let in_store = store.rows.get(patch as usize).ok_or_else(|| {
                    ReportError::malformed(
                        &p.path,
                        format!(
                            "patch {patch} is not in the store {} ({} patches): predictions of another store?",
                            store.dir.display(),
                            store.rows.len()
                        ),
                    )
                })?;
                if &in_store.image_id != image_id {
                    return Err(ReportError::malformed(
                        &p.path,
                        format!(
                            "patch {patch} is from {image_id} here but from {} in the store {}: predictions of another store?",
                            in_store.image_id,
                            store.dir.display()
                        ),
                    ));
                }
                thumbs.push(Thumb {
                    patch,
                    image_id: image_id.clone(),
                    score: p.probs[row][c],
                    png: patch_png(store, patch as usize)?,
                });
            }
            groups.push((picked.outcome, picked.total, thumbs));
        }
        out.push(LesionGallery {
            lesion: LESIONS[c],
            threshold: thresholds[c],
            groups,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn selection_orders_and_counts() {
        let probs = [0.9, 0.2, 0.7, 0.6, 0.05, 0.4, 0.95, 0.6];
        let truth = [1, 1, 0, 1, 1, 0, 0, 0];
        let p = Predictions {
            path: PathBuf::from("p.csv"),
            patch: (0..8).collect(),
            image_id: vec!["a".into(); 8],
            truth: truth.iter().map(|&t| [t, 0, 0, 0]).collect(),
            probs: probs.iter().map(|&s| [s, 0.0, 0.0, 0.0]).collect(),
        };
        let [tp, fp, fneg] = select(&p, 0, 0.6, 2);
        // Positive at 0.6: rows 0 (0.9), 3 (0.6) true; 6 (0.95), 2 (0.7), 7 (0.6) false.
        assert_eq!((tp.total, tp.rows.clone()), (2, vec![0, 3]));
        assert_eq!((fp.total, fp.rows.clone()), (3, vec![6, 2]));
        // Missed: 4 (0.05) then 1 (0.2).
        assert_eq!((fneg.total, fneg.rows), (2, vec![4, 1]));
    }
}
