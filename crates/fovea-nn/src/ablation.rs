//! `fovea ablate`: every fusion variant trained on the same store, split, seeds and epochs,
//! each evaluated on the test split, in one table.
//!
//! Layout of `DIR`:
//! - `runs/<variant>-seed<S>/`: an ordinary run folder per variant and seed (resumable;
//!   its test evaluation in `test/`, and `ablation_row.json` once both are done);
//! - `global_cache/`: global features shared by every run whose encoder has the same
//!   weights;
//! - `ablation.csv`, `ablation.md`: rewritten after every finished run, so an interrupted
//!   ablation shows what it has, and a second call only trains what is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use fovea_data::Split;
use serde::{Deserialize, Serialize};
use tch::Device;

use fovea_run::{AblationDir, RunDir};

use crate::checkpoint::{latest_checkpoint, read_state, write_file_atomic};
use crate::context::{EncoderKind, Fusion};
use crate::error::{NnError, Result};
use crate::eval::evaluate;
use crate::settings::TrainSettings;
use crate::train::{train, TrainObserver};

/// Header of `ablation.csv`.
pub const ABLATION_CSV_HEADER: &str = "variant,encoder,seed,epochs,macro_f1,f1_ma,f1_he,f1_ex,f1_se,ap_ma,ap_he,ap_ex,ap_se,macro_ap,image_ap_ma,image_ap_he,image_ap_ex,image_ap_se,train_seconds";

/// One variant and seed, on the test split (F1 at the thresholds tuned on validation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    pub variant: Fusion,
    pub encoder: String,
    pub seed: u64,
    pub epochs: usize,
    pub macro_f1: f64,
    pub f1: [f64; 4],
    pub ap: [f64; 4],
    /// Image-level presence AP over the test photographs ([`crate::eval::image_presence`]),
    /// per lesion; `None` for a lesion that every or no test photograph has. The whole
    /// field is absent in rows written before it existed (and is then computed).
    #[serde(default)]
    pub image_ap: Option<[Option<f64>; 4]>,
    pub train_seconds: f64,
}

impl AblationRow {
    pub fn macro_ap(&self) -> f64 {
        self.ap.iter().sum::<f64>() / 4.0
    }

    /// Mean image-level AP over the lesions that have one (NaN if none).
    pub fn image_macro_ap(&self) -> f64 {
        let v: Vec<f64> = self
            .image_ap
            .unwrap_or([None; 4])
            .iter()
            .flatten()
            .copied()
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    /// The row's fields in `ablation.csv` (4 decimals, seconds to 0.1, `NaN` for no image
    /// AP), written by the csv crate.
    fn csv_record(&self) -> Vec<String> {
        let f = |v: f64| format!("{v:.4}");
        let mut cols = vec![
            self.variant.to_string(),
            self.encoder.clone(),
            self.seed.to_string(),
            self.epochs.to_string(),
            f(self.macro_f1),
        ];
        cols.extend(self.f1.iter().map(|&v| f(v)));
        cols.extend(self.ap.iter().map(|&v| f(v)));
        cols.push(f(self.macro_ap()));
        let image = self.image_ap.unwrap_or([None; 4]);
        cols.extend(
            image
                .iter()
                .map(|v| v.map(f).unwrap_or_else(|| "NaN".into())),
        );
        cols.push(format!("{:.1}", self.train_seconds));
        cols
    }
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct AblationSettings {
    /// Everything but the variant, seed and epochs (from `--config` and flags).
    pub base: TrainSettings,
    pub variants: Vec<Fusion>,
    /// Global encoders tried with every variant that reads one (concat, cross-attention).
    pub encoders: Vec<EncoderKind>,
    pub seeds: Vec<u64>,
    pub epochs: usize,
}

/// The run folder of a variant, encoder and seed: `runs/<variant>-seed<S>` (ResNet-18 or
/// no encoder), `runs/<variant>-<encoder>-seed<S>` for another encoder.
pub fn run_dir(out: &Path, variant: Fusion, encoder: EncoderKind, seed: u64) -> PathBuf {
    let name = if !variant.needs_global() || encoder == EncoderKind::Resnet18 {
        format!("{variant}-seed{seed}")
    } else {
        format!("{variant}-{}-seed{seed}", encoder.as_str())
    };
    AblationDir::new(out).run(&name).path().to_path_buf()
}

/// Trains and evaluates every missing (variant, seed) into `out`; returns all rows, in
/// variant then seed order.
pub fn ablate(
    a: &AblationSettings,
    out: &Path,
    device: Device,
    observer: &dyn TrainObserver,
    cancel: &AtomicBool,
) -> Result<Vec<AblationRow>> {
    if a.epochs == 0 {
        return Err(NnError::setting("epochs", "must be at least 1"));
    }
    if a.variants.is_empty() || a.seeds.is_empty() {
        return Err(NnError::Usage(
            "ablate: give at least one variant and one seed".into(),
        ));
    }
    let store = a
        .base
        .store
        .clone()
        .ok_or_else(|| NnError::Usage("no patch store: give --store STORE".into()))?;
    std::fs::create_dir_all(out).map_err(|e| NnError::io(out, e))?;
    let mut rows = Vec::new();
    let encoders = if a.encoders.is_empty() {
        vec![a.base.context.encoder]
    } else {
        a.encoders.clone()
    };
    let mut plan = Vec::new();
    for &variant in &a.variants {
        let encs = if variant.needs_global() {
            encoders.clone()
        } else {
            vec![encoders[0]]
        };
        for encoder in encs {
            for &seed in &a.seeds {
                plan.push((variant, encoder, seed));
            }
        }
    }
    for (variant, encoder, seed) in plan {
        let run = run_dir(out, variant, encoder, seed);
        let run_folder = RunDir::new(&run);
        let row_file = AblationDir::run_row(&run_folder);
        if let Some(mut row) = read_row(&row_file) {
            if row.image_ap.is_none() {
                // A row from before image-level scoring: add it.
                row.image_ap = Some(image_ap(&run, &store, device)?);
                write_file_atomic(&row_file, &to_json(&row)?)?;
            }
            observer.message(&format!(
                "{variant} ({}) seed {seed}: done before, kept",
                row.encoder
            ));
            rows.push(row);
            continue;
        }
        let mut s = a.base.clone();
        s.seed = seed;
        s.epochs = a.epochs;
        s.context.fusion = variant;
        s.context.encoder = encoder;
        if s.context.cache_dir.is_none() {
            s.context.cache_dir = Some(AblationDir::new(out).global_cache());
        }
        if !variant.needs_global() || encoder != encoders[0] {
            // Weights given are the first encoder's; they fit no other.
            s.context.pretrained = None;
        }
        observer.message(&format!(
            "== {variant}{}, seed {seed} -> {}",
            if variant.needs_global() {
                format!(" ({})", encoder.as_str())
            } else {
                String::new()
            },
            run.display()
        ));
        let resume = run_folder.config().exists();
        let state = train(&s, &run, resume, observer, cancel)?;
        let seconds = latest_checkpoint(&run)
            .and_then(|(_, d)| read_state(&d).ok())
            .map(|st| st.seconds)
            .unwrap_or(state.seconds);
        let report = evaluate(
            &run,
            &store,
            Split::Test,
            AblationDir::run_test(&run_folder).path(),
            device,
            s.data.eval_batch_size,
        )?;
        let row = AblationRow {
            variant,
            encoder: if variant.needs_global() {
                s.context.encoder.as_str().to_string()
            } else {
                "-".into()
            },
            seed,
            epochs: state.epochs_done,
            macro_f1: report.tuned.macro_f1,
            f1: report.tuned.f1,
            ap: report.average_precision,
            image_ap: Some(image_ap(&run, &store, device)?),
            train_seconds: seconds,
        };
        write_file_atomic(&row_file, &to_json(&row)?)?;
        rows.push(row);
        write_tables(out, &rows)?;
    }
    write_tables(out, &rows)?;
    Ok(rows)
}

/// Image-level presence AP per lesion on the test photographs (`None` where every or no
/// photograph has the lesion).
fn image_ap(run: &Path, store: &Path, device: Device) -> Result<[Option<f64>; 4]> {
    let st = std::sync::Arc::new(fovea_store::Store::open(store)?);
    let (_, truth, scores) = crate::eval::image_presence(run, &st, Split::Test, device, 256)?;
    let mut out = [None; 4];
    for (c, o) in out.iter_mut().enumerate() {
        let t: Vec<u8> = truth.iter().map(|r| r[c]).collect();
        let s: Vec<f32> = scores.iter().map(|r| r[c]).collect();
        let pos = t.iter().filter(|&&v| v == 1).count();
        if pos > 0 && pos < t.len() {
            *o = Some(fovea_metrics::average_precision(&t, &s)?);
        }
    }
    Ok(out)
}

/// A row as `ablation_row.json` holds it.
fn to_json(row: &AblationRow) -> Result<String> {
    serde_json::to_string_pretty(row).map_err(|e| NnError::internal(format!("ablation row: {e}")))
}

fn read_row(path: &Path) -> Option<AblationRow> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// `ablation.csv` (one row per variant and seed) and `ablation.md` (the same, then the
/// mean ± standard deviation over seeds per variant).
pub fn write_tables(out: &Path, rows: &[AblationRow]) -> Result<()> {
    let dir = AblationDir::new(out);
    let records: Vec<Vec<String>> = rows.iter().map(AblationRow::csv_record).collect();
    fovea_run::write_csv(&dir.table_csv(), ABLATION_CSV_HEADER, &records)?;
    let mut md = String::from("# Ablation: whole-image context\n\n");
    md += "Test split; F1 at the per-lesion thresholds tuned on validation; AP = average precision.\n\n";
    md += "Image AP: presence of the lesion in a test photograph, scored by the attention-pool head (attention-pool) or the highest patch probability (the others); n/a where every or no test photograph has the lesion.\n\n";
    md += "| variant | encoder | seed | epochs | macro F1 | F1 MA | F1 HE | F1 EX | F1 SE | AP MA | AP HE | AP EX | AP SE | image AP MA | image AP HE | image AP EX | image AP SE | train s |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let _ = write!(
            md,
            "| {} | {} | {} | {} | {:.3} |",
            r.variant, r.encoder, r.seed, r.epochs, r.macro_f1
        );
        for v in r.f1.iter().chain(&r.ap) {
            let _ = write!(md, " {v:.3} |");
        }
        for v in r.image_ap.unwrap_or([None; 4]) {
            let _ = match v {
                Some(v) => write!(md, " {v:.3} |"),
                None => write!(md, " n/a |"),
            };
        }
        let _ = writeln!(md, " {:.0} |", r.train_seconds);
    }
    md += "\n## Mean ± standard deviation over seeds\n\n";
    md += "| variant | encoder | runs | macro F1 | AP MA | AP HE | AP EX | AP SE | macro AP | image AP (mean of lesions) | train s |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    let mut variants: Vec<(Fusion, &str)> = Vec::new();
    for r in rows {
        if !variants.contains(&(r.variant, r.encoder.as_str())) {
            variants.push((r.variant, r.encoder.as_str()));
        }
    }
    for (v, enc) in variants {
        let of: Vec<&AblationRow> = rows
            .iter()
            .filter(|r| r.variant == v && r.encoder == enc)
            .collect();
        let stat =
            |f: &dyn Fn(&AblationRow) -> f64| mean_sd(&of.iter().map(|r| f(r)).collect::<Vec<_>>());
        let col = |f: &dyn Fn(&AblationRow) -> f64| {
            let (m, s) = stat(f);
            format!("{m:.3} ± {s:.3}")
        };
        let _ = write!(
            md,
            "| {v} | {enc} | {} | {} |",
            of.len(),
            col(&|r| r.macro_f1)
        );
        for c in 0..4 {
            let _ = write!(md, " {} |", col(&|r| r.ap[c]));
        }
        let _ = writeln!(
            md,
            " {} | {} | {} |",
            col(&|r| r.macro_ap()),
            col(&|r| r.image_macro_ap()),
            {
                // Seconds as whole numbers, like the per-run table above.
                let (m, s) = stat(&|r| r.train_seconds);
                format!("{m:.0} ± {s:.0}")
            }
        );
    }
    write_file_atomic(&dir.table_md(), &md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: Fusion, seed: u64, f: f64) -> AblationRow {
        AblationRow {
            variant,
            encoder: "resnet18".into(),
            seed,
            epochs: 2,
            macro_f1: f,
            f1: [f; 4],
            ap: [0.1, 0.2, 0.3, 0.4],
            image_ap: Some([Some(0.5), None, Some(1.0), Some(0.25)]),
            train_seconds: 12.0,
        }
    }

    #[test]
    fn tables_have_one_row_per_run_and_a_summary_per_variant() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row(Fusion::Patch, 1, 0.2),
            row(Fusion::Patch, 2, 0.4),
            row(Fusion::Concat, 1, 0.3),
        ];
        write_tables(dir.path(), &rows).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("ablation.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], ABLATION_CSV_HEADER);
        assert_eq!(lines.len(), 4);
        let n = ABLATION_CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == n));
        assert!(lines[1].starts_with("patch,resnet18,1,2,0.2000,"));
        assert!(
            lines[1].ends_with(",0.2500,0.5000,NaN,1.0000,0.2500,12.0"),
            "{}",
            lines[1]
        );
        let md = std::fs::read_to_string(dir.path().join("ablation.md")).unwrap();
        // Patch: mean 0.3, sample sd of (0.2, 0.4) = 0.141.
        assert!(
            md.contains("| patch | resnet18 | 2 | 0.300 ± 0.141 |"),
            "{md}"
        );
        assert!(
            md.contains("| concat | resnet18 | 1 | 0.300 ± 0.000 |"),
            "{md}"
        );
        // Training seconds in whole numbers in both tables.
        assert!(md.contains(" 12 |\n"), "{md}");
        assert!(md.contains(" 12 ± 0 |\n"), "{md}");
    }
}
