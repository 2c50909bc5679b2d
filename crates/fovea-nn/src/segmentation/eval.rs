//! `fovea eval --run SEGRUN --store STORE`: the report's patch metrics from a segmentation
//! model, so that the patch classifier and the U-Net are compared on the same patches with
//! the same F1 / precision / recall / Hamming / subset accuracy / AP (issue 16, point 6).
//!
//! Each photograph of the split that has a non-black patch is mapped whole at full
//! resolution ([`super::infer::UNetPass`], as validation maps it); a patch's score per
//! lesion is the maximum of the pixel probabilities inside its label region
//! ([`fovea_maps::patch_scores`], [`fovea_maps::Pooling::Max`]): CONTRACTS 2 makes a patch
//! positive when one lesion pixel lies in it, so the most lesion-like pixel is the patch's
//! evidence. The thresholds of the "tuned" metrics are the run's `thresholds.json` (tuned
//! on validation pixels, not patches). The files are those of a classifier's evaluation:
//! `predictions.csv` and `metrics.json` (CONTRACTS 4).

use std::collections::BTreeMap;
use std::path::Path;

use fovea_data::{Dataset, Split};
use fovea_maps::{patch_scores, PatchRect, Pooling};
use fovea_metrics::{build_metrics_report, MetricsReport};
use fovea_run::{EvalDir, PredictionRow, RunDir};
use fovea_store::{PatchRow, Store};
use tch::Device;

use super::infer::UNetPass;
use super::model::load_seg_model;
use crate::amp::Amp;
use crate::error::{NnError, Result};

/// Evaluates the best model of the segmentation run `run` on the non-black patches of
/// `split` of `store_dir`, writing `predictions.csv` and `metrics.json` into `out`;
/// `progress(done, total, image_id)` after each photograph.
pub fn evaluate_patches(
    run: &Path,
    store_dir: &Path,
    split: Split,
    out: &Path,
    device: Device,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<MetricsReport> {
    let m = load_seg_model(run, device)?;
    let store = Store::open(store_dir)?;
    if store.settings.enhance != m.info.preprocess.enhance {
        return Err(NnError::input(
            store_dir,
            format!(
                "patches were cut with enhance = \"{}\" but the model of {} was trained on \"{}\"",
                store.settings.enhance.name(),
                run.display(),
                m.info.preprocess.enhance.name()
            ),
        ));
    }
    let thresholds = RunDir::new(run).read_thresholds()?.to_array();
    let dataset_dir = store.settings.dataset.clone().ok_or_else(|| {
        NnError::input(
            store_dir,
            "the store does not say which dataset it came from",
        )
    })?;
    let dataset = Dataset::open(&dataset_dir)?;
    let images: BTreeMap<&str, &Path> = dataset
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.image.as_path()))
        .collect();
    let mut by_image: BTreeMap<&str, Vec<&PatchRow>> = BTreeMap::new();
    for r in store.rows.iter().filter(|r| r.split == split && !r.black) {
        by_image.entry(r.image_id.as_str()).or_default().push(r);
    }
    if by_image.is_empty() {
        return Err(NnError::input(
            store_dir,
            format!("split '{split}' has no non-black patch"),
        ));
    }
    let region = store.settings.label_region();
    let mut rows = Vec::new();
    let total = by_image.len();
    for (k, (id, patches)) in by_image.iter().enumerate() {
        let image = images.get(id).ok_or_else(|| {
            NnError::input(
                &dataset_dir,
                format!("the store's photograph '{id}' is not in the dataset"),
            )
        })?;
        let rgb = fovea_data::read_rgb(image)?;
        let map = UNetPass {
            net: &m.net,
            device,
            amp: Amp::Off,
            channels_last: false,
        }
        .map(&rgb, &m.info.preprocess, &m.info.infer, &mut |_, _| {})?;
        let shape = (4, map.height as usize, map.width as usize);
        let probs = ndarray::ArrayView3::from_shape(shape, &map.probs)
            .map_err(|e| NnError::internal(format!("segmentation map of {id}: {e}")))?;
        let rects: Vec<PatchRect> = patches
            .iter()
            .map(|r| {
                PatchRect {
                    x: r.x,
                    y: r.y,
                    size: r.size,
                }
                .label_region(region)
            })
            .collect();
        let scores = patch_scores(probs, &rects, Pooling::Max)?;
        for (r, s) in patches.iter().zip(scores.outer_iter()) {
            rows.push(PredictionRow {
                patch: r.patch,
                image_id: r.image_id.clone(),
                truth: r.labels,
                probs: std::array::from_fn(|c| s[c]),
            });
        }
        progress(k + 1, total, id);
    }
    rows.sort_by_key(|r| r.patch);
    let truth: Vec<[u8; 4]> = rows.iter().map(|r| r.truth).collect();
    let probs: Vec<[f32; 4]> = rows.iter().map(|r| r.probs).collect();
    let report = build_metrics_report(&truth, &probs, thresholds)?;
    std::fs::create_dir_all(out).map_err(|e| NnError::io(out, e))?;
    let out = EvalDir::new(out);
    out.write_predictions(&rows)?;
    out.write_metrics(&report)?;
    Ok(report)
}
