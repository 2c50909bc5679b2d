//! `fovea report`: one self-contained `report.html` about a run, and optionally its
//! training-curve plots.

use std::path::{Path, PathBuf};

use anyhow::Result;
use fovea_report::{write_pr_roc, write_report, write_training_curves, ReportInputs};
use fovea_run::{EvalDir, RunDir};
use fovea_store::output::{prepare_output, resolve, OutputKind};

#[derive(clap::Args)]
pub struct Args {
    /// Training run folder (`fovea train --out RUN`): config.toml, metrics.csv,
    /// val_ranking.csv and thresholds.json are read from it.
    #[arg(long, value_name = "RUN")]
    run: PathBuf,
    /// Evaluation folder (`fovea eval --out EVAL`): metrics.json, predictions.csv and
    /// pixel_metrics.json give the metric tables, PR/ROC curves, patch galleries and
    /// pixel AUPR. Default: none (those sections say how to make them).
    #[arg(long, value_name = "EVAL")]
    eval: Option<PathBuf>,
    /// Lesion-map folder (`fovea predict --out MAPS`): one card per photograph with its
    /// overlay. Default: none.
    #[arg(long, value_name = "MAPS")]
    maps: Option<PathBuf>,
    /// Patch store, for the dataset composition and the patch galleries. Default: the
    /// store named by `store` in RUN/config.toml.
    #[arg(long, value_name = "STORE")]
    store: Option<PathBuf>,
    /// CSV table of ablation results (a header, one row per variant), shown as it is.
    /// Default: none.
    #[arg(long, value_name = "FILE")]
    ablation: Option<PathBuf>,
    /// Output file. Default: RUN/report.html (the only file it may write inside RUN or
    /// another input).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing page at --out (only an HTML page; anything else is refused).
    #[arg(long)]
    force: bool,
    /// Also (re)write the plots as files: the training curves as
    /// RUN/plots/{loss,macro_f1,per_class_f1,val_ap}.{png,svg} and, with --eval, the test
    /// split's RUN/plots/{pr,roc}.{png,svg}. Default: off (the page embeds its own copies).
    #[arg(long)]
    plots: bool,
}

pub fn run(a: Args) -> Result<()> {
    let run = RunDir::new(&a.run);
    let own = run.report_html();
    let out = a.out.clone().unwrap_or_else(|| own.clone());
    // The page may replace RUN/report.html, its own file, and nothing that it reads.
    let is_own = resolve(&out)? == resolve(&own)?;
    let mut inputs: Vec<&Path> = Vec::new();
    if !is_own {
        inputs.push(&a.run);
    }
    inputs.extend(a.eval.as_deref());
    inputs.extend(a.maps.as_deref());
    inputs.extend(a.store.as_deref());
    inputs.extend(a.ablation.as_deref());
    prepare_output(&out, OutputKind::Report, a.force, &inputs)?;
    if a.plots {
        let mut written = write_training_curves(&a.run)?;
        if let Some(eval) = &a.eval {
            let predictions = EvalDir::new(eval).predictions_csv();
            written.extend(write_pr_roc(&predictions, &run.plots())?);
        }
        for p in written {
            println!("wrote {}", p.display());
        }
    }
    let inputs = ReportInputs {
        run: a.run,
        eval: a.eval,
        maps: a.maps,
        store: a.store,
        ablation: a.ablation,
    };
    let summary = write_report(&inputs, &out)?;
    for s in summary.sections.iter().filter(|s| !s.shown) {
        println!("  no input for '{}'", s.title);
    }
    println!("wrote {}", summary.path.display());
    Ok(())
}
