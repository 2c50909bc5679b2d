//! Evaluation of a trained run on a split of a patch store (CONTRACTS 4):
//! `predictions.csv` (truth and sigmoid probabilities per non-black patch) and
//! `metrics.json` (at 0.5 and at the run's tuned thresholds, with AUROC and AP per lesion),
//! everything in the latter computable from the former and `thresholds.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use fovea_data::Split;
use fovea_metrics::{build_metrics_report, MetricsReport, ThresholdsFile};
use fovea_store::Store;
use tch::Device;

use crate::checkpoint::write_file_atomic;
use crate::train::{load_run_model, predict_split, run_store_context, TrainResult};

/// Evaluates the best model of `run` on `split` of `store_dir`, writing into `out`.
pub fn evaluate(
    run: &Path,
    store_dir: &Path,
    split: Split,
    out: &Path,
    device: Device,
    batch_size: usize,
) -> TrainResult<MetricsReport> {
    let (vs, model, info, _) = load_run_model(run, device)?;
    let store = Arc::new(Store::open(store_dir).map_err(|e| e.to_string())?);
    let gctx = run_store_context(run, &model, &vs, &store, device)?;
    if store.settings.patch_size as usize != info.patch_size {
        let (sp, mp) = (store.settings.patch_size, info.patch_size);
        return Err(format!(
            "{}: patches are {sp}x{sp} but the model of {} was trained on {mp}x{mp}",
            store_dir.display(),
            run.display()
        ));
    }
    let thresholds = ThresholdsFile::read(&run.join("thresholds.json"))
        .map_err(|e| e.to_string())?
        .to_array();
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
        return Err(format!(
            "{}: split '{split}' has no non-black patch",
            store_dir.display()
        ));
    }
    let report = build_metrics_report(&truth, &probs, thresholds).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut csv = String::from("patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se\n");
    for ((id, t), p) in ids.iter().zip(&truth).zip(&probs) {
        let row = &store.rows[*id as usize];
        let _ = writeln!(
            csv,
            "{id},{},{},{},{},{},{},{},{},{}",
            row.image_id, t[0], t[1], t[2], t[3], p[0], p[1], p[2], p[3]
        );
    }
    write_file_atomic(&out.join("predictions.csv"), &csv)?;
    write_file_atomic(&out.join("metrics.json"), &report.to_json_string())?;
    Ok(report)
}
