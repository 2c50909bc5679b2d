//! `fovea-torch`: the deep-learning commands of `fovea` (training, evaluation, lesion
//! maps, model benchmarks). It links libtorch; the `fovea` launcher checks that libtorch
//! can be loaded before handing these commands over, so users see a clear message rather
//! than a loader error. Run through `fovea`, e.g. `fovea bench train`. Its flags, log
//! subscriber (so training's warnings are shown), error line and exit codes are those of
//! `fovea`, from `fovea_cli_common`.

mod maps_cmd;
mod seg_bench;
mod train_cmd;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use fovea_cli_common::{finish, init_logging, GlobalArgs};
use fovea_nn::device::{set_threads, DeviceChoice};
use fovea_nn::models::ModelKind;

#[derive(Parser)]
#[command(
    name = "fovea",
    bin_name = "fovea",
    version,
    about = "Fovea's deep-learning commands (libtorch)"
)]
struct Cli {
    /// `-v` and `--threads N` (CPU threads for libtorch; default: libtorch's choice, all
    /// cores).
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a lesion classifier on a patch store, or (`--task segmentation`) a pixel-level
    /// segmentation model on the photographs and masks of its dataset.
    Train(train_cmd::TrainArgs),
    /// Evaluate a run's best model on a split of a patch store.
    Eval(train_cmd::EvalArgs),
    /// Lesion maps of photographs: heatmaps, overlays, regions.
    Predict(maps_cmd::PredictArgs),
    /// Pixel-level AUPR / AUROC of a run's maps against a dataset's masks.
    #[command(name = "eval-maps")]
    EvalMaps(maps_cmd::EvalMapsArgs),
    /// Train and test every whole-image-context variant on the same split, seeds and
    /// epochs: ablation.csv and ablation.md.
    Ablate(train_cmd::AblateArgs),
    /// A run's model as TorchScript, for PyTorch / LibTorch without Fovea.
    Export(maps_cmd::ExportArgs),
    /// Model throughput benchmarks.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Training steps (forward, backward, Adam update) on random data; ends with the line
    /// `samples_per_s <X>`.
    Train(BenchArgs),
    /// Forward passes (evaluation mode) on random data; ends with `samples_per_s <X>`.
    Infer(BenchArgs),
    /// Lesion maps of one photograph: dense against window-by-window, agreement, memory.
    Maps(maps_cmd::BenchMapsArgs),
    /// Whole-image encoders, forward and backward: ResNet-18 trunk and Swin-T at the
    /// encoder's input size; ends with `resnet18_samples_per_s X` and
    /// `swin_t_samples_per_s Y`.
    Encoders(EncoderBenchArgs),
    /// Segmentation U-Net training steps (BCE + soft Dice, Adam) on random tiles, against
    /// `bench/seg_train_reference.py`; prints `parameters N`, ends with `samples_per_s X`.
    #[command(name = "seg-train")]
    SegTrain(seg_bench::SegTrainArgs),
    /// One whole photograph through the segmentation U-Net's forward pass, tile by tile:
    /// time and peak resident memory; ends with `seconds X`.
    #[command(name = "seg-map")]
    SegMap(seg_bench::SegMapArgs),
}

#[derive(clap::Args)]
struct EncoderBenchArgs {
    /// Input side in pixels (the global encoder's `context.input_size`).
    #[arg(long, default_value_t = 256)]
    size: i64,
    /// Batch size.
    #[arg(long, default_value_t = 4)]
    batch_size: i64,
    /// Timed steps (after 2 warm-up steps); the median is reported.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
}

fn bench_encoders(a: EncoderBenchArgs) -> Result<()> {
    use fovea_nn::context::EncoderKind;
    let device = a.device.resolve().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        a.batch_size > 0 && a.size >= 32 && a.steps > 0,
        "--batch-size, --size (>= 32) and --steps must be positive"
    );
    for kind in [EncoderKind::Resnet18, EncoderKind::SwinT] {
        let t = fovea_nn::bench::encoder_steps(kind, a.size, a.batch_size, a.steps, 2, device);
        println!(
            "encoder {} {}x{} batch {} on {device:?}, {} threads: median forward+backward {:.4} s over {} steps",
            kind.as_str(),
            a.size,
            a.size,
            a.batch_size,
            tch::get_num_threads(),
            t.median_step_s,
            t.steps
        );
        println!(
            "{}_samples_per_s {:.3}",
            kind.as_str().replace('-', "_"),
            t.samples_per_s
        );
    }
    Ok(())
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Model: resnet18 or cnn.
    #[arg(long, value_enum, default_value_t = ModelKind::Resnet18)]
    model: ModelKind,
    /// Input side in pixels.
    #[arg(long, default_value_t = 128)]
    size: i64,
    /// Batch size [default: 32 for train, 64 for infer].
    #[arg(long)]
    batch_size: Option<i64>,
    /// Timed steps (after 3 warm-up steps); the median is reported.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Model and input laid out channels-last (NHWC), as training does by default on the
    /// CPU (`channels_last` in the training settings).
    #[arg(long)]
    channels_last: bool,
}

fn bench(b: Bench) -> Result<()> {
    let (train, a) = match b {
        Bench::Train(a) => (true, a),
        Bench::Infer(a) => (false, a),
        Bench::Maps(a) => return maps_cmd::bench_maps(a),
        Bench::Encoders(a) => return bench_encoders(a),
        Bench::SegTrain(a) => return seg_bench::seg_train(a),
        Bench::SegMap(a) => return seg_bench::seg_map(a),
    };
    let kind = a.model;
    let device = a.device.resolve().map_err(anyhow::Error::msg)?;
    let batch = a.batch_size.unwrap_or(if train { 32 } else { 64 });
    anyhow::ensure!(
        batch > 0 && a.size >= 32 && a.steps > 0,
        "--batch-size, --size (>= 32) and --steps must be positive"
    );
    let t = if train {
        fovea_nn::bench::train_steps(kind, a.size, batch, a.steps, 3, device, a.channels_last)
    } else {
        fovea_nn::bench::infer_steps(kind, a.size, batch, a.steps, 3, device, a.channels_last)
    };
    println!(
        "{} {} {}x{}{} batch {batch} on {device:?}, {} threads: median step {:.4} s over {} steps",
        if train { "train" } else { "infer" },
        kind.as_str(),
        a.size,
        a.size,
        if a.channels_last {
            " channels-last"
        } else {
            ""
        },
        tch::get_num_threads(),
        t.median_step_s,
        t.steps
    );
    println!("samples_per_s {:.2}", t.samples_per_s);
    Ok(())
}

fn main() -> ExitCode {
    // Before libtorch allocates anything (fovea_nn::malloc: fewer page faults per step).
    fovea_nn::malloc::tune();
    let cli = Cli::parse();
    init_logging("fovea-torch", &cli.global);
    let threads = cli.global.threads;
    if let Some(n) = threads {
        set_threads(n);
    }
    let result = match cli.command {
        Command::Bench(b) => bench(b),
        Command::Train(a) => train_cmd::train(a, threads),
        Command::Eval(a) => train_cmd::eval(a),
        Command::Ablate(a) => train_cmd::ablate(a, threads),
        Command::Predict(a) => maps_cmd::predict(a),
        Command::EvalMaps(a) => maps_cmd::eval_maps_cmd(a),
        Command::Export(a) => maps_cmd::export(a),
    };
    finish(result)
}
