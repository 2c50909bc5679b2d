//! `fovea train` and `fovea eval`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use fovea_data::Split;
use fovea_nn::device::DeviceChoice;
use fovea_nn::models::ModelKind;
use fovea_nn::settings::{Balance, TrainSettings};
use fovea_nn::train::{epoch_lines, ranking_line, EpochReport, TrainObserver};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The patch store (from `fovea extract`).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Output run folder (config.toml, metrics.csv, thresholds.json, model/, checkpoints/).
    #[arg(long)]
    out: PathBuf,
    /// TOML settings (see configs/); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue an interrupted run in --out from its last completed epoch.
    #[arg(long)]
    resume: bool,
    /// resnet18 (torchvision layout) or cnn (the report's shallow baseline) [default: resnet18].
    #[arg(long)]
    model: Option<String>,
    /// Mixed precision on CUDA: off or fp16 (autocast, dynamic loss scaling) [default: off].
    #[arg(long)]
    amp: Option<String>,
    /// Global pooling before the classifier: avg (torchvision's) or max (keeps the signal
    /// of lesions of a few pixels) [default: avg].
    #[arg(long)]
    pool: Option<String>,
    /// torchvision ResNet-18 ImageNet weights (.pth/.pt/.safetensors); fc is replaced.
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    /// Epochs [default: 20].
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate [default: 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of initialisation, sampling and augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// none, report (drop black, undersample lesions, 2x healthy) or weighted [default: report].
    #[arg(long)]
    balance: Option<String>,
    /// A subset file from `fovea balance` to train on.
    #[arg(long, value_name = "FILE")]
    subset: Option<PathBuf>,
    /// Samples per epoch (0 = the whole pool) [default: 0].
    #[arg(long)]
    epoch_size: Option<usize>,
    /// Stop after this many epochs without a better validation macro F1 (0 = never) [default: 5].
    #[arg(long)]
    patience: Option<usize>,
    /// Validation patches scored after each epoch, a seeded sample stratified by label
    /// combination (0 = all non-black patches of the split) [default: 0].
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    /// cpu, cuda or auto [default: auto].
    #[arg(long)]
    device: Option<String>,
}

fn resolve(a: &TrainArgs, threads: Option<usize>) -> Result<TrainSettings> {
    let mut s = match &a.config {
        Some(p) => TrainSettings::from_toml_file(p).map_err(anyhow::Error::msg)?,
        None => TrainSettings::default(),
    };
    if let Some(v) = &a.store {
        s.store = Some(v.clone());
    }
    if let Some(m) = &a.model {
        s.model =
            ModelKind::parse(m).with_context(|| format!("--model '{m}' is not resnet18 or cnn"))?;
    }
    if let Some(m) = &a.amp {
        s.amp = fovea_nn::amp::Amp::parse(m)
            .with_context(|| format!("--amp '{m}' is not off or fp16"))?;
    }
    if let Some(p) = &a.pool {
        s.pool = fovea_nn::models::Pool::parse(p)
            .with_context(|| format!("--pool '{p}' is not avg or max"))?;
    }
    if let Some(v) = &a.pretrained {
        s.pretrained = Some(v.clone());
    }
    macro_rules! set {
        ($flag:expr => $field:expr) => {
            if let Some(v) = $flag {
                $field = v;
            }
        };
    }
    set!(a.epochs => s.epochs);
    set!(a.batch_size => s.batch_size);
    set!(a.lr => s.optim.lr);
    set!(a.seed => s.seed);
    set!(a.epoch_size => s.data.epoch_size);
    set!(a.patience => s.patience);
    set!(a.val_size => s.data.val_size);
    set!(threads => s.threads);
    if let Some(b) = &a.balance {
        s.data.balance = match b.as_str() {
            "none" => Balance::None,
            "report" => Balance::Report,
            "weighted" => Balance::Weighted,
            _ => anyhow::bail!("--balance '{b}' is not none, report or weighted"),
        };
    }
    if let Some(v) = &a.subset {
        s.data.subset = Some(v.clone());
    }
    if let Some(d) = &a.device {
        s.device = DeviceChoice::parse(d)
            .with_context(|| format!("--device '{d}' is not cpu, cuda or auto"))?;
    }
    s.validate().map_err(anyhow::Error::msg)?;
    Ok(s)
}

struct Console {
    bar: ProgressBar,
}

impl TrainObserver for Console {
    fn epoch_start(&self, epoch: usize, batches: usize, samples: usize) {
        self.bar.reset();
        self.bar.set_length(samples as u64);
        self.bar
            .set_message(format!("epoch {epoch} ({batches} batches)"));
    }
    fn batch_done(&self, samples: usize, _loss: f64) {
        self.bar.inc(samples as u64);
    }
    fn epoch_end(&self, r: &EpochReport) {
        self.bar.finish_and_clear();
        print!(
            "{}",
            epoch_lines("TRAIN", r.epoch, r.epochs, r.train_loss, &r.train)
        );
        print!(
            "{}",
            epoch_lines("VAL", r.epoch, r.epochs, r.val_loss, &r.val)
        );
        println!("{}", ranking_line(r));
        println!(
            "    {:.0}s, lr {:.2e}{}",
            r.seconds,
            r.lr,
            if r.improved {
                ", best so far: saved to model/"
            } else {
                ""
            }
        );
    }
    fn message(&self, text: &str) {
        self.bar.suspend(|| println!("{text}"));
    }
}

pub fn train(a: TrainArgs, threads: Option<usize>) -> Result<()> {
    let settings = resolve(&a, threads)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if c.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupting after this batch (Ctrl-C again to quit now)");
    });
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} samples ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let state = fovea_nn::train::train(&settings, &a.out, a.resume, &Console { bar }, &cancel)
        .map_err(anyhow::Error::msg)?;
    println!(
        "done: {} epochs in {:.0}s; best validation macro F1 {:.4} at epoch {}; run in {}",
        state.epochs_done,
        state.seconds,
        state.best_macro_f1,
        state.best_epoch,
        a.out.display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A run folder from `fovea train`.
    #[arg(long)]
    run: PathBuf,
    /// The patch store to evaluate on.
    #[arg(long)]
    store: PathBuf,
    /// val or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Output folder (predictions.csv, metrics.json).
    #[arg(long)]
    out: PathBuf,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let split = Split::parse(&a.split)
        .with_context(|| format!("--split '{}' is not train, val or test", a.split))?;
    let device = DeviceChoice::parse(&a.device)
        .with_context(|| format!("--device '{}' is not cpu, cuda or auto", a.device))?
        .resolve()
        .map_err(anyhow::Error::msg)?;
    let r = fovea_nn::eval::evaluate(&a.run, &a.store, split, &a.out, device, a.batch_size.max(1))
        .map_err(anyhow::Error::msg)?;
    println!(
        "{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "lesion", "F1@0.5", "P@0.5", "R@0.5", "F1@tuned", "AUROC", "AP"
    );
    for (i, name) in ["MA", "HE", "EX", "SE"].iter().enumerate() {
        let au = r.auroc[i]
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "{name:<10}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{au:>10}{:>10.3}",
            r.fixed.f1[i],
            r.fixed.precision[i],
            r.fixed.recall[i],
            r.tuned.f1[i],
            r.average_precision[i]
        );
    }
    println!(
        "micro F1 {:.3} | macro F1 {:.3} | Hamming {:.3} | subset acc {:.3} (at 0.5); macro F1 {:.3} at tuned thresholds",
        r.fixed.micro_f1, r.fixed.macro_f1, r.fixed.hamming, r.fixed.subset_acc, r.tuned.macro_f1
    );
    println!("wrote {}/predictions.csv and metrics.json", a.out.display());
    Ok(())
}
