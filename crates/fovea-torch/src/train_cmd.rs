//! `fovea train`, `fovea eval` and `fovea ablate`: flags to settings, the console
//! observer of training (progress bar, epoch lines, and the run's training curves drawn
//! after every epoch), and exit code 130 for a training interrupted by Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use fovea_data::Split;
use fovea_nn::context::{EncoderKind, Fusion};
use fovea_nn::device::DeviceChoice;
use fovea_nn::engine::EpochDetail;
use fovea_nn::models::unet::SegEncoder;
use fovea_nn::models::ModelKind;
use fovea_nn::segmentation::TrainTask;
use fovea_nn::settings::{Balance, TrainSettings};
use fovea_nn::train::{epoch_lines, ranking_line, EpochReport, TrainObserver};
use fovea_nn::NnError;
use indicatif::{ProgressBar, ProgressStyle};

/// `--task`: which model family `fovea train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// The multi-label patch classifier on the store's patches.
    Classifier,
    /// The U-Net on tiles of the photographs and masks of the store's dataset, with the
    /// store's split.
    Segmentation,
}

impl From<TaskArg> for TrainTask {
    fn from(t: TaskArg) -> TrainTask {
        match t {
            TaskArg::Classifier => TrainTask::Classifier,
            TaskArg::Segmentation => TrainTask::Segmentation,
        }
    }
}

/// `--model`: a patch classifier's architecture, or with `--task segmentation` the
/// U-Net's encoder (one flag, two families, so one list of names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    Resnet18,
    Cnn,
    Small,
    Resnet34,
}

impl ModelArg {
    /// The patch classifier's architecture.
    fn classifier(self) -> Result<ModelKind> {
        match self {
            ModelArg::Resnet18 => Ok(ModelKind::Resnet18),
            ModelArg::Cnn => Ok(ModelKind::Cnn),
            ModelArg::Small | ModelArg::Resnet34 => anyhow::bail!(
                "--model {}: a segmentation encoder; a patch classifier is resnet18 or cnn (or give --task segmentation)",
                self.name()
            ),
        }
    }

    /// The segmentation U-Net's encoder.
    fn segmentation(self) -> Result<SegEncoder> {
        match self {
            ModelArg::Small => Ok(SegEncoder::Small),
            ModelArg::Resnet18 => Ok(SegEncoder::Resnet18),
            ModelArg::Resnet34 => Ok(SegEncoder::Resnet34),
            ModelArg::Cnn => anyhow::bail!(
                "--model cnn: a patch classifier; the segmentation encoders are small, resnet18 and resnet34"
            ),
        }
    }

    /// The flag's spelling of the value.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Model family [default: classifier, or the config's `task`].
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// The patch store (from `fovea extract`); a segmentation run reads the photographs
    /// and masks of the dataset it was extracted from, with its split.
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
    /// resnet18 (torchvision layout) or cnn (the report's shallow baseline) [default:
    /// resnet18]; with --task segmentation the U-Net's encoder: small (CPU-sized),
    /// resnet18 or resnet34 [default: small].
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// Mixed precision on CUDA: off or fp16 (autocast, dynamic loss scaling) [default: off].
    #[arg(long, value_enum)]
    amp: Option<fovea_nn::amp::Amp>,
    /// Lay weights and input out channels-last (NHWC): same values, faster CPU
    /// convolutions (ResNet-18 training 3-9 % faster here) [default: true].
    #[arg(long, value_name = "BOOL")]
    channels_last: Option<bool>,
    /// Global pooling before the classifier: avg (torchvision's) or max (keeps the signal
    /// of lesions of a few pixels) [default: avg].
    #[arg(long, value_enum)]
    pool: Option<fovea_nn::models::Pool>,
    /// torchvision ResNet-18 ImageNet weights (.pth/.pt/.safetensors); fc is replaced. With
    /// --task segmentation: ResNet-18/34 weights for the encoder.
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    /// Epochs [default: 20].
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size [default: 32; segmentation: tiles per batch, 8].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate [default: 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of initialisation, sampling and augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// none, report (drop black, undersample lesions, 2x healthy) or weighted [default: report].
    #[arg(long, value_enum)]
    balance: Option<Balance>,
    /// A subset file from `fovea balance` to train on.
    #[arg(long, value_name = "FILE")]
    subset: Option<PathBuf>,
    /// Samples per epoch (0 = the whole pool) [default: 0; segmentation: tiles per epoch,
    /// at least 1, 256].
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
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
    #[command(flatten)]
    context: ContextArgs,
}

/// Whole-image context flags (training and ablation); the TOML table is `[context]`.
#[derive(clap::Args, Clone)]
pub struct ContextArgs {
    /// How patch and photograph are combined: patch (the patch classifier alone), concat
    /// (the photograph's pooled vector and the patch's position before the classifier),
    /// cross-attention (the patch queries the photograph's feature-map tokens) or
    /// attention-pool (gated-attention pooling over a photograph's patches for image-level
    /// presence, trained jointly) [default: patch].
    #[arg(long, value_enum)]
    fusion: Option<Fusion>,
    /// Whole-image encoder: resnet18 or swin-t (torchvision's swin_t layout) [default: resnet18].
    #[arg(long, value_name = "NAME", value_enum)]
    global_encoder: Option<EncoderKind>,
    /// Side the field of view is downscaled to for the global encoder, a multiple of 32
    /// [default: 512].
    #[arg(long, value_name = "PX")]
    global_size: Option<u32>,
    /// ImageNet weights for the global encoder, in torchvision's names (resnet18 or swin_t).
    #[arg(long, value_name = "FILE")]
    global_pretrained: Option<PathBuf>,
    /// Train the global encoder too (default: frozen, its features cached).
    #[arg(long)]
    train_global: bool,
    /// Photographs for the global encoder [default: the store's dataset].
    #[arg(long, value_name = "DIR")]
    dataset: Option<PathBuf>,
    /// Weight of the supervised contrastive term on patch embeddings (0 = off) [default: 0].
    #[arg(long, value_name = "W")]
    contrastive: Option<f64>,
}

impl ContextArgs {
    pub fn apply(&self, s: &mut TrainSettings) -> Result<()> {
        let c = &mut s.context;
        if let Some(f) = self.fusion {
            c.fusion = f;
        }
        if let Some(e) = self.global_encoder {
            c.encoder = e;
        }
        if let Some(v) = self.global_size {
            c.input_size = v;
        }
        if let Some(v) = &self.global_pretrained {
            c.pretrained = Some(v.clone());
        }
        if self.train_global {
            c.frozen = false;
        }
        if let Some(v) = &self.dataset {
            c.dataset = Some(v.clone());
        }
        if let Some(v) = self.contrastive {
            c.contrastive_weight = v;
        }
        Ok(())
    }
}

fn resolve(a: &TrainArgs, threads: Option<usize>) -> Result<TrainSettings> {
    let mut s = match &a.config {
        Some(p) => TrainSettings::from_toml_file(p).map_err(anyhow::Error::msg)?,
        None => TrainSettings::default(),
    };
    if let Some(v) = &a.store {
        s.store = Some(v.clone());
    }
    if let Some(t) = a.task {
        s.task = t.into();
    }
    if s.task == TrainTask::Segmentation {
        return resolve_segmentation(a, threads, s);
    }
    if let Some(m) = a.model {
        s.model = m.classifier()?;
    }
    if let Some(m) = a.amp {
        s.amp = m;
    }
    if let Some(v) = a.channels_last {
        s.channels_last = v;
    }
    if let Some(p) = a.pool {
        s.pool = p;
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
    if let Some(b) = a.balance {
        s.data.balance = b;
    }
    if let Some(v) = &a.subset {
        s.data.subset = Some(v.clone());
    }
    if let Some(d) = a.device {
        s.device = d;
    }
    a.context.apply(&mut s)?;
    s.validate().map_err(anyhow::Error::msg)?;
    Ok(s)
}

/// The flags of a segmentation run: `--model` is the encoder, `--batch-size` and
/// `--epoch-size` the tiles per batch and per epoch; the patch-pool flags are refused.
fn resolve_segmentation(
    a: &TrainArgs,
    threads: Option<usize>,
    mut s: TrainSettings,
) -> Result<TrainSettings> {
    for (given, flag) in [
        (a.balance.is_some(), "--balance"),
        (a.subset.is_some(), "--subset"),
        (a.val_size.is_some(), "--val-size"),
        (a.pool.is_some(), "--pool"),
        (a.context.fusion.is_some(), "--fusion"),
    ] {
        anyhow::ensure!(
            !given,
            "{flag} is a patch-classifier setting; --task segmentation does not use it"
        );
    }
    let seg = s.segmentation.get_or_insert_with(Default::default);
    if let Some(m) = a.model {
        seg.encoder = m.segmentation()?;
    }
    if let Some(v) = a.batch_size {
        seg.tiles.batch_size = v;
    }
    if let Some(v) = a.epoch_size {
        seg.tiles.tiles_per_epoch = v;
    }
    if let Some(m) = a.amp {
        s.amp = m;
    }
    if let Some(v) = a.channels_last {
        s.channels_last = v;
    }
    macro_rules! set {
        ($flag:expr => $field:expr) => {
            if let Some(v) = $flag {
                $field = v;
            }
        };
    }
    s.pretrained = a.pretrained.clone().or(s.pretrained);
    set!(a.epochs => s.epochs);
    set!(a.lr => s.optim.lr);
    set!(a.seed => s.seed);
    set!(a.patience => s.patience);
    set!(threads => s.threads);
    if let Some(d) = a.device {
        s.device = d;
    }
    Ok(s)
}

pub struct Console {
    pub bar: ProgressBar,
}

impl Console {
    pub fn new() -> Console {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} samples ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Console { bar }
    }
}

/// Ctrl-C: the first asks training to stop after the batch, the second quits.
pub fn cancel_flag() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if c.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupting after this batch (Ctrl-C again to quit now)");
    });
    cancel
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
        match &r.detail {
            EpochDetail::Segmentation(d) => print!(
                "{}",
                fovea_nn::segmentation::epoch_lines(r.epoch, r.epochs, r.train_loss, r.val_loss, d)
            ),
            EpochDetail::Patches(d) => {
                print!(
                    "{}",
                    epoch_lines("TRAIN", r.epoch, r.epochs, r.train_loss, &d.train)
                );
                print!(
                    "{}",
                    epoch_lines("VAL", r.epoch, r.epochs, r.val_loss, &d.val)
                );
                println!("{}", ranking_line(d));
            }
            _ => println!(
                "Epoch {}/{} | train loss {:.4} | val loss {:.4} | metric {:.4}",
                r.epoch, r.epochs, r.train_loss, r.val_loss, r.metric
            ),
        }
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
        // Curves of loss, macro F1, per-class F1 and validation AP (PNG and SVG) from the
        // run's tables; a plot that fails costs a warning, not the run.
        if let Err(e) = fovea_report::write_training_curves(&r.run) {
            println!("warning: training curves not drawn: {e}");
        }
    }
    fn message(&self, text: &str) {
        self.bar.suspend(|| println!("{text}"));
    }
}

pub fn train(a: TrainArgs, threads: Option<usize>) -> Result<()> {
    let settings = resolve(&a, threads)?;
    let cancel = cancel_flag();
    let (console, task) = (Console::new(), settings.task);
    let state = match task {
        TrainTask::Classifier => {
            fovea_nn::train::train(&settings, &a.out, a.resume, &console, &cancel)
        }
        TrainTask::Segmentation => {
            fovea_nn::segmentation::train(&settings, &a.out, a.resume, &console, &cancel)
        }
    }
    .map_err(exit_if_interrupted)?;
    println!(
        "done: {} epochs in {:.0}s; best validation {} {:.4} at epoch {}; run in {}",
        state.epochs_done,
        state.seconds,
        match task {
            TrainTask::Classifier => "macro F1",
            TrainTask::Segmentation => "mean pixel AUPR",
        },
        state.best_metric,
        state.best_epoch,
        a.out.display()
    );
    Ok(())
}

/// The error of a training run for `main`; a run interrupted by Ctrl-C prints its line
/// and exits 130 here, as the shell's convention for SIGINT.
fn exit_if_interrupted(e: NnError) -> anyhow::Error {
    if let NnError::Interrupted { .. } = e {
        eprintln!("error: {e}");
        std::process::exit(130);
    }
    anyhow::Error::msg(e)
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
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Output folder (predictions.csv, metrics.json).
    #[arg(long)]
    out: PathBuf,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Write into an existing evaluation folder at --out (only one made by `fovea eval` or
    /// `fovea eval-maps`), replacing its predictions.csv and metrics.json.
    #[arg(long)]
    force: bool,
    /// Batch size, at least 1.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let split = a.split;
    let device = a.device.resolve().map_err(anyhow::Error::msg)?;
    fovea_store::output::prepare_output(
        &a.out,
        fovea_store::output::OutputKind::Eval,
        // `fovea eval-maps` may have written this folder first (CONTRACTS 4-5).
        a.force || fovea_store::output::adds_to_eval(&a.out, &["predictions.csv", "metrics.json"]),
        &[&a.run, &a.store],
    )?;
    let task = fovea_nn::segmentation::model::run_task(&a.run).map_err(anyhow::Error::msg)?;
    let r = if task == TrainTask::Segmentation {
        // Photographs mapped whole, patches scored by their most lesion-like pixel.
        let mut progress = |done: usize, total: usize, id: &str| {
            eprintln!("mapped {id} ({done}/{total})");
        };
        fovea_nn::segmentation::eval::evaluate_patches(
            &a.run,
            &a.store,
            split,
            &a.out,
            device,
            &mut progress,
        )
    } else {
        fovea_nn::eval::evaluate(
            &a.run,
            &a.store,
            split,
            &a.out,
            device,
            a.batch_size as usize,
        )
    }
    .map_err(anyhow::Error::msg)?;
    println!(
        "{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "lesion", "F1@0.5", "P@0.5", "R@0.5", "F1@tuned", "AUROC", "AP"
    );
    for (i, name) in fovea_data::LESION_CODES.iter().enumerate() {
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

#[derive(clap::Args)]
pub struct AblateArgs {
    /// The patch store (split by image; its test split is where variants are compared).
    #[arg(long)]
    store: PathBuf,
    /// Output folder: runs/<variant>-seed<S>/, global_cache/, ablation.csv, ablation.md.
    #[arg(long)]
    out: PathBuf,
    /// Comma-separated fusion variants.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "patch,concat,cross-attention,attention-pool"
    )]
    variants: Vec<Fusion>,
    /// Epochs of every run.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Comma-separated global encoders (resnet18, swin-t) for the variants that read one
    /// (concat, cross-attention) [default: --global-encoder's].
    #[arg(long, value_enum, value_delimiter = ',')]
    encoders: Option<Vec<EncoderKind>>,
    /// Comma-separated seeds; each variant is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    seeds: Vec<u64>,
    /// TOML training settings shared by every run (see configs/); the flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Samples per epoch (0 = the whole pool).
    #[arg(long)]
    epoch_size: Option<usize>,
    /// Validation patches scored after each epoch (0 = all).
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    /// cpu, cuda or auto [default: auto].
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
    #[command(flatten)]
    context: ContextArgs,
}

pub fn ablate(a: AblateArgs, threads: Option<usize>) -> Result<()> {
    let mut s = match &a.config {
        Some(p) => TrainSettings::from_toml_file(p).map_err(anyhow::Error::msg)?,
        None => TrainSettings::default(),
    };
    s.store = Some(a.store.clone());
    if let Some(v) = a.epoch_size {
        s.data.epoch_size = v;
    }
    if let Some(v) = a.val_size {
        s.data.val_size = v;
    }
    if let Some(v) = threads {
        s.threads = v;
    }
    if let Some(d) = a.device {
        s.device = d;
    }
    a.context.apply(&mut s)?;
    anyhow::ensure!(a.epochs > 0, "--epochs must be at least 1");
    s.epochs = a.epochs;
    s.validate().map_err(anyhow::Error::msg)?;
    let variants = a.variants.clone();
    let seeds = a.seeds.clone();
    let encoders = a
        .encoders
        .clone()
        .unwrap_or_else(|| vec![s.context.encoder]);
    let device = s.device.resolve().map_err(anyhow::Error::msg)?;
    let settings = fovea_nn::ablation::AblationSettings {
        base: s,
        variants,
        encoders,
        seeds,
        epochs: a.epochs,
    };
    let cancel = cancel_flag();
    let rows = fovea_nn::ablation::ablate(&settings, &a.out, device, &Console::new(), &cancel)
        .map_err(exit_if_interrupted)?;
    println!(
        "{:<17}{:>9}{:>6}{:>10}{:>8}{:>8}{:>8}{:>8}{:>9}",
        "variant", "encoder", "seed", "macro F1", "AP MA", "AP HE", "AP EX", "AP SE", "train s"
    );
    for r in &rows {
        println!(
            "{:<17}{:>9}{:>6}{:>10.3}{:>8.3}{:>8.3}{:>8.3}{:>8.3}{:>9.0}",
            r.variant.as_str(),
            r.encoder,
            r.seed,
            r.macro_f1,
            r.ap[0],
            r.ap[1],
            r.ap[2],
            r.ap[3],
            r.train_seconds
        );
    }
    println!(
        "wrote {0}/ablation.csv and {0}/ablation.md (`fovea report --ablation {0}/ablation.csv` shows it)",
        a.out.display()
    );
    Ok(())
}
