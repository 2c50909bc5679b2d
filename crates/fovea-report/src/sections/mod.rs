//! The sections of `report.html`, one module each, all built from one [`Context`]: the
//! inputs of the report, read once. A section whose input is absent says which command
//! would produce it.

pub mod ablation;
pub mod dataset;
pub mod gallery;
pub mod maps;
pub mod metrics;
pub mod ranking;
pub mod settings;
pub mod training;

use std::path::{Path, PathBuf};

use fovea_metrics::{MetricsReport, NUM_CLASSES};
use fovea_store::Store;

use crate::error::Result;
use crate::page::Section;
use crate::pixel_metrics::PixelMetrics;
use crate::predictions::Predictions;
use crate::run_config::{RunConfig, RunTask};

/// Everything the sections draw on.
pub struct Context {
    /// The run folder.
    pub run: PathBuf,
    /// `RUN/config.toml`, when present.
    pub config: Option<RunConfig>,
    /// The patch store, when one was given or named by the config and is there.
    pub store: Option<Store>,
    /// Why there is no store (plain text with `code` in backquotes).
    pub store_hint: String,
    /// The evaluation folder, when given.
    pub eval: Option<PathBuf>,
    /// `EVAL/metrics.json`.
    pub metrics: Option<MetricsReport>,
    /// `EVAL/predictions.csv`.
    pub predictions: Option<Predictions>,
    /// Tuned thresholds and the file they came from.
    pub thresholds: Option<([f64; NUM_CLASSES], PathBuf)>,
    /// `EVAL/pixel_metrics.json`.
    pub pixel: Option<PixelMetrics>,
    /// The lesion-map folder, when given.
    pub maps: Option<PathBuf>,
    /// The ablation table, when given.
    pub ablation: Option<PathBuf>,
}

impl Context {
    /// What the run trained, from its config.toml; a run without one reads as a
    /// classifier (as every run did before `task` existed).
    pub fn task(&self) -> RunTask {
        self.config.as_ref().map_or(RunTask::Classifier, |c| c.task)
    }

    /// Whether the run trained the pixel-level segmentation model.
    pub fn segmentation(&self) -> bool {
        self.task() == RunTask::Segmentation
    }

    /// How to refer to the store in a command line.
    pub fn store_arg(&self) -> String {
        match &self.store {
            Some(s) => s.dir.display().to_string(),
            None => "STORE".into(),
        }
    }

    /// How to refer to the evaluation folder in a command line.
    pub fn eval_arg(&self) -> String {
        match &self.eval {
            Some(e) => e.display().to_string(),
            None => self.run.join("eval").display().to_string(),
        }
    }

    /// The command that evaluates the run.
    pub fn eval_command(&self) -> String {
        format!(
            "fovea eval --run {} --store {} --split test --out {}",
            self.run.display(),
            self.store_arg(),
            self.eval_arg()
        )
    }

    /// The report command with `flag` added.
    pub fn report_with(&self, flag: &str) -> String {
        format!("fovea report --run {} {flag}", self.run.display())
    }
}

/// Path shown shortened to its last two components.
pub fn short(p: &Path) -> String {
    let parts: Vec<_> = p.components().collect();
    let tail = &parts[parts.len().saturating_sub(2)..];
    tail.iter()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// All sections in page order.
pub fn build(ctx: &Context) -> Result<Vec<Section>> {
    Ok(vec![
        settings::section(ctx),
        dataset::section(ctx),
        training::section(ctx)?,
        metrics::section(ctx),
        ranking::section(ctx)?,
        gallery::section(ctx)?,
        maps::section(ctx)?,
        ablation::section(ctx)?,
    ])
}
