//! Evaluation of a trained run on a split of a patch store (CONTRACTS 4):
//! `predictions.csv` (truth and sigmoid probabilities per non-black patch) and
//! `metrics.json` (at 0.5 and at the run's tuned thresholds, with AUROC and AP per lesion),
//! everything in the latter computable from the former and `thresholds.json`.

use std::path::Path;
use std::sync::Arc;

use fovea_data::Split;
use fovea_metrics::{build_metrics_report, MetricsReport};
use fovea_run::{EvalDir, PredictionRow, RunDir};
use fovea_store::Store;
use tch::{Device, Tensor};

use crate::error::{NnError, Result};
use crate::inference::{load_run_model, patches_tensor, predict_split, run_store_context};

/// Evaluates the best model of `run` on `split` of `store_dir`, writing into `out`.
pub fn evaluate(
    run: &Path,
    store_dir: &Path,
    split: Split,
    out: &Path,
    device: Device,
    batch_size: usize,
) -> Result<MetricsReport> {
    let (vs, mut model, info, _) = load_run_model(run, device)?;
    let store = Arc::new(Store::open(store_dir)?);
    if store.settings.enhance != info.enhance {
        return Err(NnError::input(
            store_dir,
            format!(
                "patches were cut with enhance = \"{}\" but the model of {} was trained on \"{}\" (re-extract the store with `--enhance {}`)",
                store.settings.enhance.name(),
                run.display(),
                info.enhance.name(),
                info.enhance.name()
            ),
        ));
    }
    let gctx = run_store_context(run, &model, &vs, &store, device)?;
    model.use_channels_last(&vs);
    if store.settings.patch_size as usize != info.patch_size {
        let (sp, mp) = (store.settings.patch_size, info.patch_size);
        return Err(NnError::input(
            store_dir,
            format!(
                "patches are {sp}x{sp} but the model of {} was trained on {mp}x{mp}",
                run.display()
            ),
        ));
    }
    let thresholds = RunDir::new(run).read_thresholds()?.to_array();
    let (ids, truth, probs, _) = predict_split(
        &model,
        gctx.as_ref(),
        &store,
        split,
        None,
        batch_size,
        2,
        device,
        None,
    )?;
    if ids.is_empty() {
        return Err(NnError::input(
            store_dir,
            format!("split '{split}' has no non-black patch"),
        ));
    }
    let report = build_metrics_report(&truth, &probs, thresholds)?;
    std::fs::create_dir_all(out).map_err(|e| NnError::io(out, e))?;
    let rows: Vec<PredictionRow> = ids
        .iter()
        .zip(&truth)
        .zip(&probs)
        .map(|((&patch, &truth), &probs)| PredictionRow {
            patch,
            image_id: store.rows[patch as usize].image_id.clone(),
            truth,
            probs,
        })
        .collect();
    let out = EvalDir::new(out);
    out.write_predictions(&rows)?;
    out.write_metrics(&report)?;
    Ok(report)
}

/// Image-level lesion presence on `split`: per photograph, whether any of its non-black
/// patches has the lesion (truth), and the model's score for it. The attention-pool
/// variant scores with its gated-attention head over all the photograph's non-black
/// patches (what it was trained for); every other variant with its highest patch
/// probability. Returns (image ids, truth, scores) in id order.
pub type ImagePresence = (Vec<String>, Vec<[u8; 4]>, Vec<[f32; 4]>);

pub fn image_presence(
    run: &Path,
    store: &Arc<Store>,
    split: Split,
    device: Device,
    batch_size: usize,
) -> Result<ImagePresence> {
    let (vs, model, _, _) = load_run_model(run, device)?;
    let gctx = run_store_context(run, &model, &vs, store, device)?;
    let mut by: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for r in store.rows.iter().filter(|r| r.split == split && !r.black) {
        by.entry(r.image_id.as_str()).or_default().push(r.patch);
    }
    let (mut ids, mut truth, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for (image, patches) in &by {
            let mut t = [0u8; 4];
            let mut feats = Vec::new();
            let mut best = [0f32; 4];
            for chunk in patches.chunks(batch_size.max(1)) {
                let (x, any) = patches_tensor(store, chunk, device)?;
                for (v, a) in t.iter_mut().zip(any) {
                    *v = (*v).max(a);
                }
                let f = model.features(&x, false);
                if model.mil.is_some() {
                    feats.push(f);
                } else {
                    let ctx = match &gctx {
                        Some(g) => {
                            Some(g.batch_of_rows(&model, &store.rows, chunk, device, false)?)
                        }
                        None => None,
                    };
                    let pr = model.head(&f, ctx.as_ref())?.sigmoid().amax([0], false);
                    let pr: Vec<f32> =
                        Vec::try_from(pr.to_kind(tch::Kind::Float).to_device(Device::Cpu))?;
                    for c in 0..4 {
                        best[c] = best[c].max(pr[c]);
                    }
                }
            }
            if !feats.is_empty() {
                let all = Tensor::cat(&feats, 0);
                let (logits, _) = model
                    .bag_logits(&all)
                    .ok_or_else(|| NnError::internal("no attention pooling"))?;
                let pr: Vec<f32> = Vec::try_from(
                    logits
                        .sigmoid()
                        .to_kind(tch::Kind::Float)
                        .to_device(Device::Cpu),
                )?;
                best = std::array::from_fn(|c| pr[c]);
            }
            ids.push(image.to_string());
            truth.push(t);
            scores.push(best);
        }
        Ok(())
    })?;
    Ok((ids, truth, scores))
}
