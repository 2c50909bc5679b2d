//! `fovea extract`: dataset -> patch store. Settings resolve as defaults < `--config` TOML
//! < flags, and are validated before any work starts.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use fovea_cli_common::Interrupted;
use fovea_data::{Dataset, Split};
use fovea_store::output::{prepare_output, OutputKind};
use fovea_store::{extract, ExtractSettings, StoreError};

use crate::progress::{interrupt_flag, Bar};

#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder: IDRiD's download layout ('A. Segmentation/') or a folder with
    /// manifest.csv (id,image,ma,he,ex,se[,split]).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Output store folder (patches.npy, index.csv, stats.json, extract.toml).
    #[arg(long)]
    out: PathBuf,
    /// TOML settings file (same keys as a store's extract.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace an existing patch store at --out (only a folder recognised as one: index.csv
    /// with stats.json or extract.toml; anything else is refused).
    #[arg(long)]
    force: bool,
    /// Patch side P in pixels, 8 to 2048 (0 is refused) [default: 128].
    #[arg(long, value_name = "P")]
    patch_size: Option<u32>,
    /// Grid stride S in pixels, 1 to 8192 (0 is refused) [default: 128].
    #[arg(long, value_name = "S")]
    stride: Option<u32>,
    /// A lesion labels a patch when at least K of its pixels lie in the label region; K is
    /// at least 1 (0 is refused) [default: 1, the report's rule].
    #[arg(long, value_name = "K")]
    min_lesion_px: Option<u32>,
    /// Only lesion pixels in the central CxC of the patch count; 0 = whole patch [default: 0].
    #[arg(long, value_name = "C")]
    label_region: Option<u32>,
    /// A patch is black (never trained on) when less than this fraction of it lies in the
    /// field of view and it holds no lesion pixel; in [0, 1], 0 = no patch is black
    /// [default: 0.5].
    #[arg(long, value_name = "F")]
    black_threshold: Option<f32>,
    /// Field of view: mean red value above which a 4x4 cell is retina, in [0, 255]; 0 = any
    /// cell with some red is retina [default: 20].
    #[arg(long, value_name = "V")]
    fov_red_threshold: Option<f32>,
    /// Transform each photograph before cutting patches: none, or local-contrast (Graham's
    /// preprocessing: minus the local mean colour of the retina, x4, on grey; makes small
    /// red dots and exudates stand out under any illumination). Recorded in the store, and
    /// applied by `fovea predict` to new photographs for models trained on it
    /// [default: none].
    #[arg(long, value_name = "KIND")]
    enhance: Option<fovea_data::Enhance>,
    /// No grid patches (only lesion-centred ones).
    #[arg(long)]
    no_grid: bool,
    /// Lesion-centred patches per connected lesion component; 0 = none [default: 0].
    #[arg(long, value_name = "N")]
    lesion_per_component: Option<u32>,
    /// At most N lesion-centred patches per lesion type per image; 0 = patches on one
    /// component per lesion type [default: 64].
    #[arg(long, value_name = "N")]
    lesion_max_per_image: Option<u32>,
    /// Random shift of lesion-centred patches, up to N pixels; 0 = exactly centred
    /// [default: 16].
    #[arg(long, value_name = "N")]
    lesion_jitter: Option<u32>,
    /// Ignore lesion components smaller than N pixels; 0 = keep every component, as 1
    /// [default: 1].
    #[arg(long, value_name = "N")]
    lesion_min_area: Option<u32>,
    /// Master seed (jitter, sampling, and the split unless --split-seed) [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Seed of the image-level split [default: --seed].
    #[arg(long)]
    split_seed: Option<u64>,
    /// Train / val / test fractions for a dataset without a split, e.g. 0.7,0.15,0.15
    /// [default: 0.7,0.15,0.15].
    #[arg(long, value_name = "T,V,T")]
    split_fractions: Option<String>,
    /// CSV with columns id and split (or official_split, as IDRiD's lesion_pixels.csv)
    /// fixing each image's split; val is carved out of train when it names none.
    #[arg(long, value_name = "FILE")]
    split_file: Option<PathBuf>,
    /// Only images of these splits (comma-separated: train,val,test).
    #[arg(long, value_enum, ignore_case = true, value_delimiter = ',')]
    select_split: Vec<Split>,
    /// Only these image ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    images: Vec<String>,
    /// At most N images (in id order, after the other selections); 0 = all [default: 0].
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// Resolves defaults < config file < flags.
pub fn resolve(a: &Args) -> Result<ExtractSettings> {
    let mut s = match &a.config {
        Some(p) => ExtractSettings::from_toml_file(p)?,
        None => ExtractSettings::default(),
    };
    if let Some(d) = &a.dataset {
        s.dataset = Some(d.clone());
    }
    macro_rules! set {
        ($flag:expr => $field:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v;
            }
        };
    }
    set!(a.patch_size => s.patch_size);
    set!(a.stride => s.stride);
    set!(a.min_lesion_px => s.label.min_lesion_px);
    set!(a.label_region => s.label.region);
    set!(a.black_threshold => s.black.fov_threshold);
    set!(a.fov_red_threshold => s.fov.red_threshold);
    set!(a.enhance => s.enhance);
    set!(a.lesion_per_component => s.lesion_centred.per_component);
    set!(a.lesion_max_per_image => s.lesion_centred.max_per_image);
    set!(a.lesion_jitter => s.lesion_centred.jitter);
    set!(a.lesion_min_area => s.lesion_centred.min_area);
    set!(a.seed => s.seed);
    set!(a.limit => s.select.limit);
    if a.no_grid {
        s.grid = false;
    }
    if a.split_seed.is_some() {
        s.split.seed = a.split_seed;
    }
    if let Some(f) = &a.split_file {
        s.split.file = Some(f.clone());
    }
    if let Some(fr) = &a.split_fractions {
        let v: Vec<f64> = fr
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .ok()
            .filter(|v: &Vec<f64>| v.len() == 3)
            .with_context(|| {
                format!("--split-fractions '{fr}' is not three numbers like 0.7,0.15,0.15")
            })?;
        (s.split.train, s.split.val, s.split.test) = (v[0], v[1], v[2]);
    }
    if !a.select_split.is_empty() {
        s.select.splits = a.select_split.clone();
    }
    if !a.images.is_empty() {
        s.select.ids = a.images.clone();
    }
    s.validate()?;
    Ok(s)
}

pub fn run(a: Args) -> Result<()> {
    let settings = resolve(&a)?;
    let dir = settings
        .dataset
        .clone()
        .context("no dataset: give --dataset DIR (or `dataset` in the --config file)")?;
    // Before any work: --out may replace only a Fovea store, and never what is read.
    let mut inputs: Vec<&std::path::Path> = vec![&dir];
    inputs.extend(a.config.as_deref());
    inputs.extend(settings.split.file.as_deref());
    prepare_output(&a.out, OutputKind::Store, a.force, &inputs)?;
    let dataset = Dataset::open(&dir)?;
    println!(
        "{}: {} photographs ({:?} layout)",
        dir.display(),
        dataset.records.len(),
        dataset.layout
    );
    let cancel = interrupt_flag();
    let bar = Bar::new("images");
    let t = std::time::Instant::now();
    let outcome = extract(&dataset, &settings, &a.out, a.force, &bar, &cancel)
        .map_err(|e| match e {
            StoreError::Interrupted => anyhow::Error::new(Interrupted::new()),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("extracting {} into {}", dir.display(), a.out.display()))?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Interrupted::new().into());
    }
    let st = &outcome.stats.all;
    println!(
        "wrote {} patches ({} black, {} with lesions) from {} photographs to {} in {:.1}s",
        st.patches,
        st.black,
        st.lesion,
        st.images,
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    print!("{}", outcome.stats.describe());
    Ok(())
}
