//! `report.html`: one self-contained page about a run (settings, dataset composition,
//! training curves, test metrics, PR and ROC curves, patch galleries, lesion maps,
//! ablation), images embedded (PNG as `data:` URIs, plots as inline SVG), inline CSS, no
//! script and no link to the network. [`write_report`] reads every input once, builds the
//! sections and writes the page atomically.
//!
//! Absent inputs are not errors: their section says which command would produce them. An
//! input that is there but malformed is an error naming the file, and so is a folder
//! given explicitly (`--eval`, `--maps`, `--store`, `--ablation`) that does not exist.

use std::path::{Path, PathBuf};

use fovea_metrics::{MetricsReport, ThresholdsFile};
use fovea_run::{AblationDir, EvalDir, RunDir};
use fovea_store::Store;

use crate::error::{ReportError, Result};
use crate::fsio::{read_optional, write_atomic};
use crate::page::page;
use crate::pixel_metrics::PixelMetrics;
use crate::predictions::Predictions;
use crate::run_config::read_run_config;
use crate::sections::{build, Context};

/// What the report is made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportInputs {
    /// The training run folder (`fovea train --out RUN`).
    pub run: PathBuf,
    /// An evaluation folder (`fovea eval --out EVAL`): metrics.json, predictions.csv,
    /// pixel_metrics.json.
    pub eval: Option<PathBuf>,
    /// A lesion-map folder (`fovea predict --out MAPS`).
    pub maps: Option<PathBuf>,
    /// The patch store; default: the one named by `store` in `RUN/config.toml`.
    pub store: Option<PathBuf>,
    /// A CSV table of ablation results, shown as it is.
    pub ablation: Option<PathBuf>,
}

impl ReportInputs {
    /// Inputs with only the run folder.
    pub fn new(run: impl Into<PathBuf>) -> ReportInputs {
        ReportInputs {
            run: run.into(),
            ..ReportInputs::default()
        }
    }
}

/// Whether a section could be drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionStatus {
    /// Anchor in the page.
    pub id: &'static str,
    pub title: &'static str,
    /// False when its input was absent.
    pub shown: bool,
    /// When not shown: the command that would produce its input.
    pub hint: Option<String>,
}

/// What [`write_report`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportSummary {
    /// The page.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// The sections in page order.
    pub sections: Vec<SectionStatus>,
}

/// An error unless `p` is a folder.
fn require_dir(p: &Path, what: &str) -> Result<()> {
    if p.is_dir() {
        Ok(())
    } else {
        Err(ReportError::Missing {
            path: p.to_path_buf(),
            reason: format!("no {what} folder here"),
        })
    }
}

/// Reads every input of the report.
fn load(inputs: &ReportInputs) -> Result<Context> {
    let run = inputs.run.clone();
    if !run.is_dir() {
        return Err(ReportError::Missing {
            path: run,
            reason: "no run folder here (`fovea train --out RUN` makes one)".into(),
        });
    }
    let run_dir = RunDir::new(&run);
    let config_path = run_dir.config();
    let config = if config_path.is_file() {
        Some(read_run_config(&config_path)?)
    } else {
        None
    };

    let (store, store_hint) = match (&inputs.store, config.as_ref().and_then(|c| c.resolved_store(&run))) {
        (Some(s), _) => (Some(Store::open(s)?), String::new()),
        (None, Some(s)) if s.is_dir() => (Some(Store::open(&s)?), String::new()),
        (None, Some(s)) => (
            None,
            format!(
                "The patch store named in {}, {}, is not there: pass `--store STORE`.",
                config_path.display(),
                s.display()
            ),
        ),
        (None, None) => (
            None,
            "No patch store: the run's config.toml names none; pass `--store STORE` (made by `fovea extract --dataset DIR --out STORE`).".into(),
        ),
    };

    let (mut metrics, mut predictions, mut pixel) = (None, None, None);
    if let Some(e) = &inputs.eval {
        require_dir(e, "evaluation")?;
        let eval = EvalDir::new(e);
        let p = eval.metrics_json();
        if let Some(text) = read_optional(&p)? {
            metrics = Some(
                MetricsReport::from_json_str(&text)
                    .map_err(|err| ReportError::malformed(&p, err))?,
            );
        }
        let p = eval.predictions_csv();
        if p.is_file() {
            predictions = Some(Predictions::read(&p)?);
        }
        let p = eval.pixel_metrics_json();
        if p.is_file() {
            pixel = Some(PixelMetrics::read(&p)?);
        }
    }

    let t_path = run_dir.thresholds();
    let thresholds = match read_optional(&t_path)? {
        Some(text) => {
            let t = ThresholdsFile::from_json_str(&text)
                .map_err(|err| ReportError::malformed(&t_path, err))?;
            Some((t.to_array(), t_path))
        }
        None => match (&metrics, &inputs.eval) {
            (Some(m), Some(e)) => Some((m.tuned.thresholds, EvalDir::new(e).metrics_json())),
            _ => None,
        },
    };

    if let Some(m) = &inputs.maps {
        require_dir(m, "lesion-map")?;
    }
    if let Some(a) = &inputs.ablation {
        if !a.is_file() {
            return Err(ReportError::Missing {
                path: a.clone(),
                reason: "no ablation table here".into(),
            });
        }
    }
    Ok(Context {
        run,
        config,
        store,
        store_hint,
        eval: inputs.eval.clone(),
        metrics,
        predictions,
        thresholds,
        pixel,
        maps: inputs.maps.clone(),
        ablation: inputs
            .ablation
            .clone()
            .or_else(|| ablation_beside(&inputs.run)),
    })
}

/// The run's name: its folder's name.
fn run_name(run: &Path) -> String {
    let abs = std::fs::canonicalize(run).unwrap_or_else(|_| run.to_path_buf());
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.display().to_string())
}

/// Writes the report of `inputs` to `out` (atomically; its folder is created).
pub fn write_report(inputs: &ReportInputs, out: &Path) -> Result<ReportSummary> {
    let ctx = load(inputs)?;
    let sections = build(&ctx)?;
    let mut facts: Vec<(&str, String)> = vec![("run", ctx.run.display().to_string())];
    if let Some(cfg) = &ctx.config {
        let epochs = cfg
            .get("epochs")
            .map_or(String::new(), |e| format!(", {e} epochs"));
        if cfg.is_segmentation() {
            // A segmentation run's config.toml still holds the classifier's `model`,
            // unused: the model is the U-Net with the encoder of `[segmentation]`.
            let encoder = cfg
                .get("segmentation.encoder")
                .map_or(String::new(), |e| format!(" ({e} encoder)"));
            facts.push((
                "model",
                format!("U-Net{encoder}, pixel-level segmentation{epochs}"),
            ));
        } else if let Some(m) = cfg.get("model") {
            facts.push(("model", format!("{m}{epochs}")));
        }
    }
    if let Some(s) = &ctx.store {
        facts.push(("store", s.dir.display().to_string()));
    }
    if let Some(e) = &ctx.eval {
        facts.push(("evaluation", e.display().to_string()));
    }
    if let Some(m) = &ctx.maps {
        facts.push(("lesion maps", m.display().to_string()));
    }
    let title = format!("Fovea report: {}", run_name(&ctx.run));
    let html = page(&title, &facts, &sections);
    write_atomic(out, html.as_bytes())?;
    Ok(ReportSummary {
        path: out.to_path_buf(),
        bytes: html.len(),
        sections: sections
            .into_iter()
            .map(|s| SectionStatus {
                id: s.id,
                title: s.title,
                shown: s.shown,
                hint: s.hint,
            })
            .collect(),
    })
}

/// A run of `fovea ablate` (`DIR/runs/<variant>-seed<S>`) shows its ablation's table
/// (`DIR/ablation.csv`) without being told.
fn ablation_beside(run: &Path) -> Option<PathBuf> {
    let table = AblationDir::of_run(run)?.table_csv();
    table.is_file().then_some(table)
}
