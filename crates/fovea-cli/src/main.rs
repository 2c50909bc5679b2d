//! `fovea`: from colour fundus photographs with lesion masks to patch stores, trained
//! lesion detectors and lesion maps. This binary only parses, validates and calls the
//! library crates; it owns the progress bars. The glue it shares with `fovea-torch` (global
//! flags, log subscriber, Ctrl-C, error line, exit codes) is `fovea_cli_common`.

mod cmd;
mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

use fovea_cli::torch;

use clap::{Parser, Subcommand};
use fovea_cli_common::{finish, init_logging, GlobalArgs, EXIT_USAGE};

/// Fovea: diabetic-retinopathy lesion detection (MA, HE, EX, SE) from fundus photographs.
#[derive(Parser)]
#[command(name = "fovea", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate synthetic fundus-like photographs with lesion masks (a manifest dataset).
    Synth(cmd::synth::Args),
    /// Extract labelled patches from a dataset into a patch store.
    Extract(cmd::extract::Args),
    /// Print a patch store's composition (per split, with lesion co-occurrence).
    Stats(cmd::stats::Args),
    /// Build a balanced training subset (list of patch ids) from a patch store.
    Balance(cmd::balance::Args),
    /// Train a lesion classifier on a patch store, or (`--task segmentation`) a pixel-level
    /// segmentation model on its dataset's photographs and masks (`fovea train --help`).
    #[command(disable_help_flag = true)]
    Train(Passthrough),
    /// Evaluate a trained run on a split of a patch store (`fovea eval --help`).
    #[command(disable_help_flag = true)]
    Eval(Passthrough),
    /// Lesion maps of photographs with a trained run: heatmaps, overlays, regions
    /// (`fovea predict --help`).
    #[command(disable_help_flag = true)]
    Predict(Passthrough),
    /// Pixel-level AUPR / AUROC of a run's lesion maps against a dataset's masks, the
    /// IDRiD challenge's measure (`fovea eval-maps --help`).
    #[command(name = "eval-maps", disable_help_flag = true)]
    EvalMaps(Passthrough),
    /// Train and test every whole-image-context variant (patch, concat, cross-attention,
    /// attention-pool) on the same split, seeds and epochs (`fovea ablate --help`).
    #[command(disable_help_flag = true)]
    Ablate(Passthrough),
    /// Export a run's model as TorchScript for PyTorch / LibTorch (`fovea export --help`).
    #[command(disable_help_flag = true)]
    Export(Passthrough),
    /// Write report.html, one self-contained page about a run (plots and patches embedded).
    Report(cmd::report::Args),
    /// Benchmarks that print their ratio to a reference measured in the same run.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
}

/// Arguments handed unchanged to `fovea-torch`, the binary that links libtorch.
#[derive(clap::Args)]
pub struct Passthrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

impl Passthrough {
    /// `fovea-torch [-v...] [--threads N] NAME... ARGS...`: the global flags given to
    /// `fovea` go along.
    pub fn hand_over(self, global: &GlobalArgs, names: &[&str]) -> anyhow::Result<()> {
        let mut args: Vec<OsString> = global.forward();
        args.extend(names.iter().map(OsString::from));
        args.extend(self.args);
        anyhow::bail!(torch::hand_over(args))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = cli.global;
    init_logging("fovea", &global);
    if let Some(n) = global.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: --threads {n}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let result = match cli.command {
        Command::Synth(a) => cmd::synth::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Balance(a) => cmd::balance::run(a),
        Command::Train(p) => p.hand_over(&global, &["train"]),
        Command::Eval(p) => p.hand_over(&global, &["eval"]),
        Command::Predict(p) => p.hand_over(&global, &["predict"]),
        Command::EvalMaps(p) => p.hand_over(&global, &["eval-maps"]),
        Command::Export(p) => p.hand_over(&global, &["export"]),
        Command::Ablate(p) => p.hand_over(&global, &["ablate"]),
        Command::Report(a) => cmd::report::run(a),
        Command::Bench(b) => cmd::bench::run(b, &global),
    };
    finish(result)
}
