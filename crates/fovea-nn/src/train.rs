//! The training loop: epochs of seeded, augmented batches; validation after each epoch;
//! the best model by validation macro F1 (at 0.5) kept in `RUN/model/` with per-class
//! thresholds tuned on validation; a checkpoint per epoch that `--resume` continues from,
//! to the same result as an uninterrupted run; early stopping; NaN detection.
//!
//! Files (CONTRACTS 3): `config.toml`, `metrics.csv`, `thresholds.json`, `model/`,
//! `checkpoints/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use fovea_data::Split;
use fovea_loader::{Loader, LoaderSettings, Order, Sampler, Selection};
use fovea_metrics::{
    average_precision, multilabel_metrics, roc_auc, tune_thresholds, MetricsCsvRow,
    MultiLabelMetrics, ThresholdsFile, METRICS_CSV_HEADER,
};
use fovea_store::balance::{report_policy, stratified_sample, weighted_policy};
use fovea_store::{PatchRow, Store};
use rand::seq::IndexedRandom;
use rand::Rng;
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::amp::Amp;
use crate::checkpoint::{
    checkpoint_dir, latest_checkpoint, load_vars, prune_checkpoints, read_state, read_tensors,
    save_vars, write_dir_atomic, write_file_atomic, ModelInfo, TrainState, VAL_RANKING_HEADER,
};
use crate::context::{bag_loss, FoveaModel, GlobalContext};
use crate::loss::Loss;
use crate::optim::Adam;
use crate::pretrained::{load_pretrained, load_pretrained_under};
use crate::settings::{Balance, TrainSettings};

/// ImageNet normalisation (the loader applies it; recorded with the model).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What an epoch produced, for the console.
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub train: MultiLabelMetrics,
    pub val_loss: f64,
    pub val: MultiLabelMetrics,
    pub improved: bool,
    /// Validation average precision, AUROC and prevalence per lesion.
    pub val_ap: [f64; 4],
    pub val_auroc: [f64; 4],
    pub val_prevalence: [f64; 4],
    pub seconds: f64,
    pub lr: f64,
}

/// Callbacks from the training loop (the CLI draws bars and prints lines).
pub trait TrainObserver {
    fn epoch_start(&self, _epoch: usize, _batches: usize, _samples: usize) {}
    fn batch_done(&self, _samples: usize, _loss: f64) {}
    fn epoch_end(&self, _report: &EpochReport) {}
    fn message(&self, _text: &str) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// Errors of training and evaluation, as one-line messages.
pub type TrainResult<T> = Result<T, String>;

fn derive_seed(seed: u64, a: u64, b: u64) -> i64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// The training pool of the settings: which patches, drawn how.
fn training_sampler(store: &Store, s: &TrainSettings) -> TrainResult<Sampler> {
    let rows = &store.rows;
    let n = rows.len();
    let selection = match (&s.data.subset, s.data.balance) {
        (Some(p), Balance::Weighted) => {
            Selection::weighted_file(p, n, (s.data.epoch_size > 0).then_some(s.data.epoch_size))
                .map_err(|e| e.to_string())?
        }
        (Some(p), _) => Selection::subset_file(p, n).map_err(|e| e.to_string())?,
        (None, Balance::None) => Selection::All,
        (None, Balance::Report) => Selection::Subset {
            subset: report_policy(
                rows,
                Split::Train,
                s.data.healthy_ratio,
                s.data.target_factor,
                s.seed,
            )
            .map_err(|e| e.to_string())?,
            origin: None,
        },
        (None, Balance::Weighted) => Selection::Weighted {
            subset: weighted_policy(rows, Split::Train),
            epoch_size: (s.data.epoch_size > 0).then_some(s.data.epoch_size),
            origin: None,
        },
    };
    let limit = (s.data.epoch_size > 0).then_some(s.data.epoch_size);
    Ok(
        Sampler::new(rows, Split::Train, selection, Order::Shuffled, s.seed)
            .map_err(|e| e.to_string())?
            .with_epoch_limit(limit),
    )
}

/// The global context of a batch of store patches, for models that read it.
fn context_of(
    model: &FoveaModel,
    gctx: Option<&GlobalContext>,
    store: &Store,
    patches: &[u64],
    device: Device,
    train: bool,
) -> TrainResult<Option<crate::context::BatchContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    let g = gctx.ok_or_else(|| {
        format!(
            "fusion \"{}\" needs the photographs' global features",
            model.fusion()
        )
    })?;
    g.batch_of_rows(model, &store.rows, patches, device, train)
        .map(Some)
}

/// The photographs of a store's patches, found in `dataset` (default: the dataset the
/// store was extracted from): `(image id, path)` in id order.
pub fn store_photographs(
    store: &Store,
    dataset: Option<&Path>,
) -> TrainResult<Vec<(String, PathBuf)>> {
    let dir = dataset
        .map(Path::to_path_buf)
        .or_else(|| store.settings.dataset.clone())
        .ok_or_else(|| {
            format!(
                "{}: the store does not say which dataset it came from; give the photographs with context.dataset",
                store.dir.display()
            )
        })?;
    let ds = fovea_data::Dataset::open(&dir)
        .map_err(|e| format!("whole-image context needs the photographs: {e}"))?;
    let ids: std::collections::BTreeSet<&str> =
        store.rows.iter().map(|r| r.image_id.as_str()).collect();
    ids.into_iter()
        .map(|id| {
            ds.records
                .iter()
                .find(|r| r.id == id)
                .map(|r| (id.to_string(), r.image.clone()))
                .ok_or_else(|| {
                    format!(
                        "{}: photograph {id} of the store {} is not in this dataset",
                        dir.display(),
                        store.dir.display()
                    )
                })
        })
        .collect()
}

/// The global features of every photograph of the store, cached under `cache`.
pub fn store_context(
    model: &FoveaModel,
    vs: &nn::VarStore,
    store: &Store,
    settings: &crate::context::ContextSettings,
    cache: &Path,
    device: Device,
    observer: &dyn TrainObserver,
) -> TrainResult<Option<GlobalContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    // Without the photographs, a frozen encoder's cached features still serve.
    let images = match store_photographs(store, settings.dataset.as_deref()) {
        Ok(v) => v,
        Err(e) if settings.frozen => {
            observer.message(&format!("{e}; using the cached global features"));
            let ids: std::collections::BTreeSet<&str> =
                store.rows.iter().map(|r| r.image_id.as_str()).collect();
            ids.into_iter()
                .map(|id| (id.to_string(), PathBuf::new()))
                .collect()
        }
        Err(e) => return Err(e),
    };
    let t0 = Instant::now();
    let g = GlobalContext::build(
        model,
        vs,
        &images,
        settings.frozen,
        settings.frozen.then_some(cache),
        device,
        &mut |_, _| {},
    )?;
    observer.message(&format!(
        "global features of {} photographs ({} from the cache, {} computed) in {:.1} s",
        images.len(),
        g.cached,
        g.computed,
        t0.elapsed().as_secs_f64()
    ));
    Ok(Some(g))
}

/// The global features a trained run's model needs for the patches of `store` (none for
/// the patch-only and attention-pool variants), with the run's context settings
/// (`RUN/config.toml`) and cache (`RUN/global_cache` unless it set another).
pub fn run_store_context(
    run: &Path,
    model: &FoveaModel,
    vs: &nn::VarStore,
    store: &Store,
    device: Device,
) -> TrainResult<Option<GlobalContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    let cfg = run.join("config.toml");
    let settings = if cfg.exists() {
        TrainSettings::from_toml_file(&cfg)?.context
    } else {
        Default::default()
    };
    let cache = settings
        .cache_dir
        .clone()
        .unwrap_or_else(|| run.join("global_cache"));
    store_context(model, vs, store, &settings, &cache, device, &Quiet)
}

/// Attention pooling's bags: the non-black training patches of each training photograph.
struct Bags {
    images: Vec<Vec<u64>>,
    size: usize,
}

impl Bags {
    fn new(rows: &[PatchRow], size: usize) -> Bags {
        let mut by: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
        for r in rows.iter().filter(|r| r.split == Split::Train && !r.black) {
            by.entry(r.image_id.as_str()).or_default().push(r.patch);
        }
        Bags {
            images: by.into_values().collect(),
            size,
        }
    }

    /// The bag of step `step` of `epoch`: a seeded photograph and up to `size` of its
    /// patches.
    fn draw(&self, seed: u64, epoch: usize, step: usize) -> Vec<u64> {
        const BAGS: u64 = 0x6261_6773; // "bags"
        let mut rng = fovea_loader::rng::stream(seed, BAGS, epoch as u64, step as u64);
        let img = &self.images[rng.random_range(0..self.images.len())];
        let mut ids: Vec<u64> = img
            .choose_multiple(&mut rng, self.size.min(img.len()))
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Normalised patches `[N, 3, P, P]` of `ids` (no augmentation) and, per lesion, whether
/// any of them has it.
pub fn patches_tensor(
    store: &Store,
    ids: &[u64],
    device: Device,
) -> TrainResult<(Tensor, [u8; 4])> {
    let p = store.settings.patch_size as usize;
    let n = 3 * p * p;
    let mut buf = vec![0f32; ids.len() * n];
    let mut any = [0u8; 4];
    for (i, &id) in ids.iter().enumerate() {
        let src = store
            .patches
            .patch(id as usize)
            .ok_or_else(|| format!("{}: no patch {id}", store.dir.display()))?;
        fovea_loader::to_tensor_layout(src, p, &mut buf[i * n..(i + 1) * n]);
        for (c, l) in any.iter_mut().enumerate() {
            *l = (*l).max(store.rows[id as usize].labels[c]);
        }
    }
    let x = Tensor::from_slice(&buf)
        .view([ids.len() as i64, 3, p as i64, p as i64])
        .to_device(device);
    Ok((x, any))
}

/// A bag's patches and its label (any patch positive), as a `[4]` float tensor.
fn bag_batch(store: &Store, ids: &[u64], device: Device) -> TrainResult<(Tensor, Tensor)> {
    let (x, any) = patches_tensor(store, ids, device)?;
    let lab: Vec<f32> = any.iter().map(|&v| v as f32).collect();
    Ok((x, Tensor::from_slice(&lab).to_device(device)))
}

/// Patch ids, truth `[N][4]`, sigmoid probabilities `[N][4]` and mean loss.
pub type SplitPredictions = (Vec<u64>, Vec<[u8; 4]>, Vec<[f32; 4]>, f64);

/// Sigmoid probabilities `[N][4]`, truth, and mean loss of `model` over the non-black
/// patches of `split` (or only `patches` of it), in index order.
#[allow(clippy::too_many_arguments)]
pub fn predict_split(
    model: &FoveaModel,
    gctx: Option<&GlobalContext>,
    store: &Arc<Store>,
    split: Split,
    patches: Option<Vec<u64>>,
    batch_size: usize,
    workers: usize,
    device: Device,
    loss: Option<&Loss>,
) -> TrainResult<SplitPredictions> {
    let sampler = match patches {
        None => Sampler::in_order(&store.rows, split),
        Some(ids) => Sampler::new(
            &store.rows,
            split,
            Selection::Subset {
                subset: fovea_store::balance::Subset {
                    weights: vec![1.0; ids.len()],
                    patches: ids,
                },
                origin: None,
            },
            Order::Index,
            0,
        ),
    }
    .map_err(|e| e.to_string())?;
    let loader = Loader::eval_with(store.clone(), sampler, batch_size, workers)
        .map_err(|e| e.to_string())?;
    let p = loader.patch_size() as i64;
    let (mut ids, mut truth, mut probs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut loss_sum, mut n) = (0.0, 0usize);
    tch::no_grad(|| -> TrainResult<()> {
        for batch in loader.epoch(0, 0).map_err(|e| e.to_string())? {
            let b = batch.map_err(|e| e.to_string())?;
            let x = Tensor::from_slice(&b.images)
                .view([b.size as i64, 3, p, p])
                .to_device(device);
            let y = Tensor::from_slice(&b.labels)
                .view([b.size as i64, 4])
                .to_device(device);
            let ctx = context_of(model, gctx, store, &b.patches, device, false)?;
            let (logits, _) = model.forward(&x, ctx.as_ref(), false)?;
            if let Some(l) = loss {
                loss_sum += l.forward(&logits, &y).double_value(&[]) * b.size as f64;
            }
            n += b.size;
            let pr: Vec<f32> = Vec::try_from(logits.sigmoid().to_device(Device::Cpu).view([-1]))
                .map_err(|e: tch::TchError| e.to_string())?;
            for i in 0..b.size {
                ids.push(b.patches[i]);
                truth.push(std::array::from_fn(|c| b.labels[i * 4 + c] as u8));
                probs.push(std::array::from_fn(|c| pr[i * 4 + c]));
            }
        }
        Ok(())
    })?;
    Ok((
        ids,
        truth,
        probs,
        if n > 0 { loss_sum / n as f64 } else { f64::NAN },
    ))
}

/// Trains per `settings` into the run folder `run`. With `resume`, continues from the
/// newest checkpoint there. `cancel` is polled between batches.
pub fn train(
    settings: &TrainSettings,
    run: &Path,
    resume: bool,
    observer: &dyn TrainObserver,
    cancel: &AtomicBool,
) -> TrainResult<TrainState> {
    settings.validate()?;
    let store_dir = settings
        .store
        .clone()
        .ok_or("no patch store: give --store STORE")?;
    let device = settings.device.resolve()?;
    if settings.amp != Amp::Off && device == Device::Cpu {
        return Err(
            "amp = \"fp16\" is CUDA autocast: it needs --device cuda (or auto with a GPU)".into(),
        );
    }
    crate::device::set_threads(settings.threads);
    let store = Arc::new(Store::open(&store_dir).map_err(|e| e.to_string())?);
    let p = store.settings.patch_size as i64;

    let start = if resume { latest_checkpoint(run) } else { None };
    if !resume && run.join("config.toml").exists() {
        return Err(format!(
            "{} already holds a run: use --resume to continue it, or another --out",
            run.display()
        ));
    }
    if resume {
        // The resolved settings of the run win over anything given again.
        let saved = run.join("config.toml");
        if saved.exists() {
            let prev = TrainSettings::from_toml_file(&saved)?;
            if prev.store.as_ref().map(|p| p.canonicalize().ok())
                != settings.store.as_ref().map(|p| p.canonicalize().ok())
                || prev.seed != settings.seed
                || prev.model != settings.model
                || prev.context.fusion != settings.context.fusion
            {
                return Err(format!(
                    "--resume: {} was trained with other settings (store, seed or model differ)",
                    saved.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(run).map_err(|e| format!("{}: {e}", run.display()))?;
    let mut resolved = settings.clone();
    resolved.store = Some(store_dir.canonicalize().unwrap_or(store_dir.clone()));
    write_file_atomic(&run.join("config.toml"), &resolved.to_toml())?;

    // Model, initialised from the seed (and ImageNet weights when given).
    tch::manual_seed(derive_seed(settings.seed, 1, 0));
    let mut vs = nn::VarStore::new(device);
    let mut model = FoveaModel::new(
        &vs.root(),
        settings.model,
        settings.pool,
        &settings.context.spec(),
    );
    if let Some(w) = &settings.pretrained {
        let n = load_pretrained(&mut vs, w)?;
        observer.message(&format!("loaded {n} tensors from {}", w.display()));
    }
    if let Some(w) = &settings.context.pretrained {
        let n = match settings.context.encoder {
            crate::context::EncoderKind::Resnet18 => load_pretrained_under(&mut vs, "global.", w)?,
            crate::context::EncoderKind::SwinT => {
                crate::models::swin::load_swin_pretrained(&mut vs, "global.", w)?
            }
        };
        observer.message(&format!(
            "global encoder: loaded {n} tensors from {}",
            w.display()
        ));
    }
    FoveaModel::freeze_encoder(&vs, settings.context.frozen);
    if settings.channels_last {
        model.use_channels_last(&vs);
    }

    // Data.
    let sampler = training_sampler(&store, settings)?;
    let mut positives = [0u64; 4];
    for &id in sampler.pool() {
        for (c, pos) in positives.iter_mut().enumerate() {
            *pos += store.rows[id as usize].labels[c] as u64;
        }
    }
    let pool = sampler.pool().len() as u64;
    let val_patches = stratified_sample(
        &store.rows,
        Split::Val,
        settings.data.val_size,
        derive_seed(settings.seed, 3, 0) as u64,
    );
    if val_patches.is_empty() {
        return Err(format!(
            "{}: the validation split has no non-black patch (set one with `fovea extract --split-fractions`)",
            store_dir.display()
        ));
    }
    let loader_settings = LoaderSettings {
        batch_size: settings.batch_size,
        workers: settings.data.workers,
        seed: settings.seed,
        augment: settings.augment.clone(),
        ..Default::default()
    };
    let loader = Loader::new(store.clone(), sampler, loader_settings).map_err(|e| e.to_string())?;
    let loss = Loss::new(&settings.loss, &positives, pool, device);
    let mut opt = Adam::new(
        &vs,
        settings.optim.lr,
        settings.optim.weight_decay,
        settings.optim.adamw,
    );
    observer.message(&format!(
        "training pool: {pool} patches, positives [MA, HE, EX, SE] = {positives:?}; {} batches per epoch",
        loader.batches_per_epoch()
    ));

    // Resume.
    let mut state = TrainState {
        best_macro_f1: -1.0,
        ..Default::default()
    };
    if let Some((epoch, dir)) = &start {
        load_vars(&mut vs, &dir.join("model.safetensors"))?;
        let named = read_tensors(&dir.join("optimizer.safetensors"))?;
        state = read_state(dir)?;
        opt.load_state(&named, state.optimizer_step)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        observer.message(&format!(
            "resuming after epoch {epoch} from {}",
            dir.display()
        ));
    }

    // Global features (after a resume has restored the encoder's weights).
    let cache = settings
        .context
        .cache_dir
        .clone()
        .unwrap_or_else(|| run.join("global_cache"));
    let gctx = store_context(
        &model,
        &vs,
        &store,
        &settings.context,
        &cache,
        device,
        observer,
    )?;
    let bags = model
        .mil
        .is_some()
        .then(|| Bags::new(&store.rows, settings.context.bag_size))
        .filter(|b| !b.images.is_empty());
    let params = vs.trainable_variables();
    let mut scaler = state.scaler.clone().unwrap_or_default();
    let epochs = settings.epochs;
    for epoch in state.epochs_done..epochs {
        if settings.patience > 0 && state.epochs_without_improvement >= settings.patience {
            observer.message(&format!(
                "early stopping: no better validation macro F1 for {} epochs",
                settings.patience
            ));
            break;
        }
        let t0 = Instant::now();
        let lr = settings.optim.lr_at(epoch, epochs);
        opt.lr = lr;
        tch::manual_seed(derive_seed(settings.seed, 2, epoch as u64));
        observer.epoch_start(
            epoch + 1,
            loader.batches_per_epoch(),
            loader.samples_per_epoch(),
        );
        let (mut truth, mut probs) = (Vec::new(), Vec::new());
        let (mut loss_sum, mut n) = (0.0, 0usize);
        for (k, batch) in loader
            .epoch(epoch as u64, 0)
            .map_err(|e| e.to_string())?
            .enumerate()
        {
            if cancel.load(Ordering::Relaxed) {
                return Err(format!("interrupted during epoch {}; `--resume` continues after the last completed epoch", epoch + 1));
            }
            let b = batch.map_err(|e| e.to_string())?;
            let x = Tensor::from_slice(&b.images)
                .view([b.size as i64, 3, p, p])
                .to_device(device);
            let y = Tensor::from_slice(&b.labels)
                .view([b.size as i64, 4])
                .to_device(device);
            opt.zero_grad();
            let ctx = context_of(&model, gctx.as_ref(), &store, &b.patches, device, true)?;
            let mut feat = None;
            let logits = crate::amp::forward(settings.amp, || {
                let f = model.features(&x, true);
                let l = model.head(&f, ctx.as_ref());
                feat = Some(f);
                l.unwrap_or_else(|_| Tensor::full([1], f64::NAN, (Kind::Float, device)))
            });
            let feat = feat.ok_or("internal: no features")?;
            let patch_loss = loss.forward(&logits, &y);
            let lv = patch_loss.double_value(&[]);
            let mut l = patch_loss;
            if let Some(c) = model.contrastive(&feat, &y, settings.context.temperature) {
                l += c * settings.context.contrastive_weight;
            }
            if let Some(bags) = &bags {
                let (xb, yb) = bag_batch(&store, &bags.draw(settings.seed, epoch, k), device)?;
                let fb = crate::amp::forward(settings.amp, || model.features(&xb, true));
                if let Some((bl, _)) = model.bag_logits(&fb.to_kind(Kind::Float)) {
                    l += bag_loss(&bl, &yb) * settings.context.bag_weight;
                }
            }
            let total = l.double_value(&[]);
            if !lv.is_finite() || !total.is_finite() {
                let last = latest_checkpoint(run)
                    .map(|(_, d)| d.display().to_string())
                    .unwrap_or_else(|| "none yet".into());
                return Err(format!(
                    "the loss became {total} at epoch {} batch {}: training stopped (try a lower optim.lr); last good checkpoint: {last}",
                    epoch + 1,
                    k + 1
                ));
            }
            if settings.amp == Amp::Off {
                l.backward();
                opt.step();
            } else {
                scaler.scale_loss(&l).backward();
                let finite = scaler.unscale(&params);
                if finite {
                    opt.step();
                }
                scaler.update(finite);
            }
            loss_sum += lv * b.size as f64;
            n += b.size;
            let pr: Vec<f32> =
                Vec::try_from(logits.detach().sigmoid().to_device(Device::Cpu).view([-1]))
                    .map_err(|e: tch::TchError| e.to_string())?;
            for i in 0..b.size {
                truth.push(std::array::from_fn(|c| b.labels[i * 4 + c] as u8));
                probs.push(std::array::from_fn(|c| pr[i * 4 + c]));
            }
            observer.batch_done(b.size, lv);
        }
        let train_loss = loss_sum / n.max(1) as f64;
        let train_m = multilabel_metrics(&truth, &probs, [0.5; 4]).map_err(|e| e.to_string())?;
        let (_, vtruth, vprobs, val_loss) = predict_split(
            &model,
            gctx.as_ref(),
            &store,
            Split::Val,
            Some(val_patches.clone()),
            settings.data.eval_batch_size,
            settings.data.workers,
            device,
            Some(&loss),
        )?;
        let val_m = multilabel_metrics(&vtruth, &vprobs, [0.5; 4])
            .map_err(|e| format!("validation split: {e}"))?;
        let ranking = ranking_metrics(&vtruth, &vprobs)?;
        let improved = val_m.macro_f1 > state.best_macro_f1;
        if improved {
            state.best_macro_f1 = val_m.macro_f1;
            state.best_epoch = epoch + 1;
            state.epochs_without_improvement = 0;
            let thresholds = tune_thresholds(&vtruth, &vprobs).map_err(|e| e.to_string())?;
            let info = ModelInfo {
                model: settings.model,
                pool: settings.pool,
                patch_size: p as usize,
                num_classes: 4,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
                epoch: epoch + 1,
                val_macro_f1: val_m.macro_f1,
                context: settings.context.spec(),
                enhance: store.settings.enhance,
            };
            write_dir_atomic(&run.join("model"), |d| {
                save_vars(&vs, &d.join("model.safetensors"))?;
                std::fs::write(
                    d.join("model.toml"),
                    toml::to_string_pretty(&info).unwrap_or_default(),
                )
                .map_err(|e| format!("{}: {e}", d.display()))?;
                ThresholdsFile::from(thresholds)
                    .write(&d.join("thresholds.json"))
                    .map_err(|e| e.to_string())
            })?;
            let text = ThresholdsFile::from(thresholds)
                .to_json_string()
                .map_err(|e| e.to_string())?;
            write_file_atomic(&run.join("thresholds.json"), &text)?;
        } else {
            state.epochs_without_improvement += 1;
        }
        state.epochs_done = epoch + 1;
        state.optimizer_step = opt.step;
        state.scaler = (settings.amp != Amp::Off).then(|| scaler.clone());
        state.seconds += t0.elapsed().as_secs_f64();
        for (split, l, m) in [("train", train_loss, &train_m), ("val", val_loss, &val_m)] {
            state
                .metrics_lines
                .push(MetricsCsvRow::new(epoch + 1, split, l, m).to_csv_line());
        }
        state.ranking_lines.push(format!(
            "{},{}",
            epoch + 1,
            ranking
                .iter()
                .flatten()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
        let mut rank_csv = String::from(VAL_RANKING_HEADER);
        rank_csv.push('\n');
        for l in &state.ranking_lines {
            rank_csv += l;
            rank_csv.push('\n');
        }
        write_file_atomic(&run.join("val_ranking.csv"), &rank_csv)?;
        let mut csv = String::from(METRICS_CSV_HEADER);
        csv.push('\n');
        for l in &state.metrics_lines {
            csv += l;
            csv.push('\n');
        }
        write_file_atomic(&run.join("metrics.csv"), &csv)?;
        // Curves of loss, macro F1, per-class F1 and validation AP (PNG and SVG); a plot
        // that fails costs a warning, not the run.
        if let Err(e) = fovea_report::write_training_curves(run) {
            observer.message(&format!("warning: training curves not drawn: {e}"));
        }
        let st = state.clone();
        write_dir_atomic(&checkpoint_dir(run, epoch + 1), |d| {
            save_vars(&vs, &d.join("model.safetensors"))?;
            let opt_state = opt.state();
            let refs: Vec<(&str, &Tensor)> =
                opt_state.iter().map(|(k, t)| (k.as_str(), t)).collect();
            Tensor::write_safetensors(&refs, d.join("optimizer.safetensors"))
                .map_err(|e| format!("{}: {e}", d.display()))?;
            // Written last: its presence marks the checkpoint whole.
            std::fs::write(
                d.join("state.json"),
                serde_json::to_string_pretty(&st).unwrap_or_default(),
            )
            .map_err(|e| format!("{}: {e}", d.display()))
        })?;
        prune_checkpoints(run, 2);
        observer.epoch_end(&EpochReport {
            epoch: epoch + 1,
            epochs,
            train_loss,
            train: train_m,
            val_loss,
            val: val_m,
            improved,
            val_ap: ranking[0],
            val_auroc: ranking[1],
            val_prevalence: ranking[2],
            seconds: t0.elapsed().as_secs_f64(),
            lr,
        });
    }
    Ok(state)
}

/// Average precision, AUROC (NaN for a class with one value only) and prevalence per
/// lesion.
fn ranking_metrics(truth: &[[u8; 4]], probs: &[[f32; 4]]) -> TrainResult<[[f64; 4]; 3]> {
    let mut out = [[f64::NAN; 4]; 3];
    for c in 0..4 {
        let t: Vec<u8> = truth.iter().map(|r| r[c]).collect();
        let p: Vec<f32> = probs.iter().map(|r| r[c]).collect();
        out[0][c] = average_precision(&t, &p).map_err(|e| e.to_string())?;
        out[1][c] = roc_auc(&t, &p)
            .map_err(|e| e.to_string())?
            .unwrap_or(f64::NAN);
        out[2][c] = t.iter().map(|&v| v as f64).sum::<f64>() / t.len().max(1) as f64;
    }
    Ok(out)
}

/// The validation ranking line: AP beside prevalence (what a random scorer's AP would be).
pub fn ranking_line(r: &EpochReport) -> String {
    let mut s = String::from("    AP (prevalence):");
    for (i, name) in ["MA", "HE", "EX", "SE"].iter().enumerate() {
        s += &format!(" {name} {:.3} ({:.3})", r.val_ap[i], r.val_prevalence[i]);
    }
    s
}

/// The report's console lines for one split of an epoch.
pub fn epoch_lines(
    tag: &str,
    epoch: usize,
    epochs: usize,
    loss: f64,
    m: &MultiLabelMetrics,
) -> String {
    let mut s = format!(
        "[{tag}] Epoch {epoch}/{epochs} | Loss: {loss:.4} | F1: {:.4} (micro {:.4}) | Hamming: {:.4} | Subset Acc: {:.4}\n",
        m.macro_f1, m.micro_f1, m.hamming, m.subset_acc
    );
    for (i, name) in ["MA", "HE", "EX", "SE"].iter().enumerate() {
        s += &format!(
            "    {name}: F1 {:.3} | Precision {:.3} | Recall {:.3} | support {}\n",
            m.f1[i], m.precision[i], m.recall[i], m.support[i]
        );
    }
    s
}

/// Loads a run's best model (`RUN/model/`) onto `device`.
pub fn load_run_model(
    run: &Path,
    device: Device,
) -> TrainResult<(nn::VarStore, FoveaModel, ModelInfo, PathBuf)> {
    let dir = run.join("model");
    let info = crate::checkpoint::read_model_info(&dir)?;
    let mut vs = nn::VarStore::new(device);
    if info.num_classes != 4 {
        return Err(format!(
            "{}: num_classes = {}, Fovea's models have 4 (MA, HE, EX, SE)",
            dir.display(),
            info.num_classes
        ));
    }
    let model = FoveaModel::new(&vs.root(), info.model, info.pool, &info.context);
    load_vars(&mut vs, &dir.join("model.safetensors"))?;
    crate::finite::check_finite_weights(&vs, &dir.join("model.safetensors"))
        .map_err(|e| e.to_string())?;
    Ok((vs, model, info, dir))
}
