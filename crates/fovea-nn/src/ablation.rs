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

use crate::checkpoint::{latest_checkpoint, read_state, write_file_atomic};
use crate::context::Fusion;
use crate::eval::evaluate;
use crate::settings::TrainSettings;
use crate::train::{train, TrainObserver, TrainResult};

/// Header of `ablation.csv`.
pub const ABLATION_CSV_HEADER: &str = "variant,encoder,seed,epochs,macro_f1,f1_ma,f1_he,f1_ex,f1_se,ap_ma,ap_he,ap_ex,ap_se,macro_ap,train_seconds";

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
    pub train_seconds: f64,
}

impl AblationRow {
    pub fn macro_ap(&self) -> f64 {
        self.ap.iter().sum::<f64>() / 4.0
    }

    fn csv_line(&self) -> String {
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
        cols.push(format!("{:.1}", self.train_seconds));
        cols.join(",")
    }
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct AblationSettings {
    /// Everything but the variant, seed and epochs (from `--config` and flags).
    pub base: TrainSettings,
    pub variants: Vec<Fusion>,
    pub seeds: Vec<u64>,
    pub epochs: usize,
}

/// The run folder of a variant and seed.
pub fn run_dir(out: &Path, variant: Fusion, seed: u64) -> PathBuf {
    out.join("runs").join(format!("{variant}-seed{seed}"))
}

/// Trains and evaluates every missing (variant, seed) into `out`; returns all rows, in
/// variant then seed order.
pub fn ablate(
    a: &AblationSettings,
    out: &Path,
    device: Device,
    observer: &dyn TrainObserver,
    cancel: &AtomicBool,
) -> TrainResult<Vec<AblationRow>> {
    if a.variants.is_empty() || a.seeds.is_empty() {
        return Err("ablate: give at least one variant and one seed".into());
    }
    let store = a
        .base
        .store
        .clone()
        .ok_or("no patch store: give --store STORE")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut rows = Vec::new();
    for &variant in &a.variants {
        for &seed in &a.seeds {
            let run = run_dir(out, variant, seed);
            let row_file = run.join("ablation_row.json");
            if let Some(row) = read_row(&row_file) {
                observer.message(&format!("{variant} seed {seed}: done before, kept"));
                rows.push(row);
                continue;
            }
            let mut s = a.base.clone();
            s.seed = seed;
            s.epochs = a.epochs;
            s.context.fusion = variant;
            if s.context.cache_dir.is_none() {
                s.context.cache_dir = Some(out.join("global_cache"));
            }
            if !variant.needs_global() {
                s.context.pretrained = None;
            }
            observer.message(&format!("== {variant}, seed {seed} -> {}", run.display()));
            let resume = run.join("config.toml").exists();
            let state = train(&s, &run, resume, observer, cancel)?;
            let seconds = latest_checkpoint(&run)
                .and_then(|(_, d)| read_state(&d).ok())
                .map(|st| st.seconds)
                .unwrap_or(state.seconds);
            let report = evaluate(
                &run,
                &store,
                Split::Test,
                &run.join("test"),
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
                train_seconds: seconds,
            };
            write_file_atomic(
                &row_file,
                &serde_json::to_string_pretty(&row).map_err(|e| e.to_string())?,
            )?;
            rows.push(row);
            write_tables(out, &rows)?;
        }
    }
    write_tables(out, &rows)?;
    Ok(rows)
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
pub fn write_tables(out: &Path, rows: &[AblationRow]) -> TrainResult<()> {
    let mut csv = String::from(ABLATION_CSV_HEADER);
    csv.push('\n');
    for r in rows {
        csv += &r.csv_line();
        csv.push('\n');
    }
    write_file_atomic(&out.join("ablation.csv"), &csv)?;
    let mut md = String::from("# Ablation: whole-image context\n\n");
    md += "Test split; F1 at the per-lesion thresholds tuned on validation; AP = average precision.\n\n";
    md += "| variant | encoder | seed | epochs | macro F1 | F1 MA | F1 HE | F1 EX | F1 SE | AP MA | AP HE | AP EX | AP SE | train s |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let _ = write!(
            md,
            "| {} | {} | {} | {} | {:.3} |",
            r.variant, r.encoder, r.seed, r.epochs, r.macro_f1
        );
        for v in r.f1.iter().chain(&r.ap) {
            let _ = write!(md, " {v:.3} |");
        }
        let _ = writeln!(md, " {:.0} |", r.train_seconds);
    }
    md += "\n## Mean ± standard deviation over seeds\n\n";
    md += "| variant | runs | macro F1 | AP MA | AP HE | AP EX | AP SE | macro AP | train s |\n";
    md += "|---|---|---|---|---|---|---|---|---|\n";
    let mut variants: Vec<Fusion> = Vec::new();
    for r in rows {
        if !variants.contains(&r.variant) {
            variants.push(r.variant);
        }
    }
    for v in variants {
        let of: Vec<&AblationRow> = rows.iter().filter(|r| r.variant == v).collect();
        let col = |f: &dyn Fn(&AblationRow) -> f64| {
            let (m, s) = mean_sd(&of.iter().map(|r| f(r)).collect::<Vec<_>>());
            format!("{m:.3} ± {s:.3}")
        };
        let _ = write!(md, "| {v} | {} | {} |", of.len(), col(&|r| r.macro_f1));
        for c in 0..4 {
            let _ = write!(md, " {} |", col(&|r| r.ap[c]));
        }
        let _ = writeln!(
            md,
            " {} | {} |",
            col(&|r| r.macro_ap()),
            col(&|r| r.train_seconds)
        );
    }
    write_file_atomic(&out.join("ablation.md"), &md)
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
        assert!(lines[1].ends_with(",0.2500,12.0"));
        let md = std::fs::read_to_string(dir.path().join("ablation.md")).unwrap();
        // Patch: mean 0.3, sample sd of (0.2, 0.4) = 0.141.
        assert!(md.contains("| patch | 2 | 0.300 ± 0.141 |"), "{md}");
        assert!(md.contains("| concat | 1 | 0.300 ± 0.000 |"), "{md}");
    }
}
