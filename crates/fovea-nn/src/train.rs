//! The patch classifier as a model family of the training engine ([`crate::engine`]),
//! with its fused whole-image-context variants (concat, cross-attention, attention
//! pooling over bags of a photograph's patches, a supervised contrastive term), and
//! [`train`], the `fovea train` of it.
//!
//! Batches are augmented store patches with their four labels (MA, HE, EX, SE); the loss
//! is the settings' BCE or focal loss plus the variant's terms; validation scores a seeded,
//! stratified sample of the validation split and the best model is kept by its macro F1
//! (at 0.5), with per-lesion thresholds tuned on it.
//!
//! Files (CONTRACTS 3): `config.toml`, `metrics.csv`, `val_ranking.csv`,
//! `thresholds.json`, `model/` (`model.safetensors`, `model.toml`, `thresholds.json`),
//! `checkpoints/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use fovea_data::Split;
use fovea_loader::{Loader, LoaderSettings, Order, Sampler, Selection};
use fovea_metrics::{
    average_precision, multilabel_metrics, roc_auc, tune_thresholds, MetricsCsvRow,
    MultiLabelMetrics, ThresholdsFile, METRICS_CSV_HEADER,
};
use fovea_run::{ModelDir, RankingRow, RunDir, VAL_RANKING_CSV_HEADER};
use fovea_store::balance::{report_policy, stratified_sample, weighted_policy};
use fovea_store::{PatchRow, Store};
use rand::seq::IndexedRandom;
use rand::Rng;
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::amp::Amp;
use crate::checkpoint::{save_vars, write_file_atomic, ModelInfo, TrainState};
use crate::context::{bag_loss, EncoderKind, FoveaModel, GlobalContext};
use crate::engine::{
    check_run, derive_seed, write_config, EpochDetail, EpochOutcome, Learner, StepAt, StepOutput,
    Task,
};
use crate::error::{NnError, Result};
use crate::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::inference::{context_of, patches_tensor, predict_split, store_context};
use crate::loss::Loss;
use crate::pretrained::{load_pretrained, load_pretrained_under};
use crate::settings::{Balance, TrainSettings};

pub use crate::engine::{EpochReport, PatchEpoch, Quiet, TrainObserver};

/// Trains the patch classifier per `settings` into the run folder `run`. With `resume`,
/// continues from the newest checkpoint there. `cancel` is polled between batches.
pub fn train(
    settings: &TrainSettings,
    run: &Path,
    resume: bool,
    observer: &dyn TrainObserver,
    cancel: &AtomicBool,
) -> Result<TrainState> {
    settings.validate()?;
    let store_dir = settings
        .store
        .clone()
        .ok_or_else(|| NnError::Usage("no patch store: give --store STORE".into()))?;
    let device = training_device(settings)?;
    let store = Arc::new(Store::open(&store_dir)?);
    let start = check_run(run, resume, settings)?;
    let mut learner = Learner::new(run, settings, device);
    let mut task = PatchClassifier::new(settings, store, &mut learner.vs, observer)?;
    // A resume refused by its checkpoint (other data, a broken model) leaves config.toml
    // as it was: the settings are written only once the run can go on.
    if let Some((epoch, dir)) = &start {
        learner.resume(&task, *epoch, dir, observer)?;
    }
    write_config(run, settings, &store_dir)?;
    task.start(&learner.vs, run, observer)?;
    learner.fit(&mut task, observer, cancel)
}

/// The device of the settings, with libtorch's CPU threads set; fp16 needs CUDA.
fn training_device(settings: &TrainSettings) -> Result<Device> {
    let device = settings.device.resolve()?;
    if settings.amp != Amp::Off && device == Device::Cpu {
        return Err(NnError::Usage(
            "amp = \"fp16\" is CUDA autocast: it needs --device cuda (or auto with a GPU)".into(),
        ));
    }
    crate::device::set_threads(settings.threads);
    Ok(device)
}

/// The patch classifier (any fusion variant) being trained: its model, its data and
/// what the current epoch has recorded.
pub struct PatchClassifier {
    settings: TrainSettings,
    store: Arc<Store>,
    model: FoveaModel,
    device: Device,
    loader: Loader,
    loss: Loss,
    /// The validation patches scored after every epoch.
    val_patches: Vec<u64>,
    /// The photographs' global features (fused variants), built by [`Task::start`].
    gctx: Option<GlobalContext>,
    /// Attention pooling's bags, built by [`Task::start`].
    bags: Option<Bags>,
    /// Truth and probabilities of this epoch's training batches.
    truth: Vec<[u8; 4]>,
    probs: Vec<[f32; 4]>,
    /// The last validation's truth and probabilities (thresholds are tuned on them).
    val: (Vec<[u8; 4]>, Vec<[f32; 4]>),
    /// The thresholds of the best model, once one is kept.
    thresholds: Option<[f64; 4]>,
}

impl PatchClassifier {
    /// The model, built in `vs` (libtorch's generator seeded by the [`Learner`]) and
    /// loaded with ImageNet weights when the settings give them, and the data: the
    /// training pool, loader and loss, and the validation sample.
    pub fn new(
        settings: &TrainSettings,
        store: Arc<Store>,
        vs: &mut nn::VarStore,
        observer: &dyn TrainObserver,
    ) -> Result<PatchClassifier> {
        let model = build_model(settings, vs, observer)?;
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
            return Err(NnError::input(
                &store.dir,
                "the validation split has no non-black patch (set one with `fovea extract --split-fractions`)",
            ));
        }
        let loader_settings = LoaderSettings {
            batch_size: settings.batch_size,
            workers: settings.data.workers,
            seed: settings.seed,
            augment: settings.augment.clone(),
            ..Default::default()
        };
        let loader = Loader::new(store.clone(), sampler, loader_settings)?;
        let device = vs.device();
        let loss = Loss::new(&settings.loss, &positives, pool, device);
        observer.message(&format!(
            "training pool: {pool} patches, positives [MA, HE, EX, SE] = {positives:?}; {} batches per epoch",
            loader.batches_per_epoch()
        ));
        Ok(PatchClassifier {
            settings: settings.clone(),
            store,
            model,
            device,
            loader,
            loss,
            val_patches,
            gctx: None,
            bags: None,
            truth: Vec::new(),
            probs: Vec::new(),
            val: (Vec::new(), Vec::new()),
            thresholds: None,
        })
    }
}

/// The model of the settings in `vs`, from the seed (and ImageNet weights when given),
/// its global encoder frozen as asked, laid out channels-last as asked.
fn build_model(
    settings: &TrainSettings,
    vs: &mut nn::VarStore,
    observer: &dyn TrainObserver,
) -> Result<FoveaModel> {
    let mut model = FoveaModel::new(
        &vs.root(),
        settings.model,
        settings.pool,
        &settings.context.spec(),
    );
    if let Some(w) = &settings.pretrained {
        let n = load_pretrained(vs, w)?;
        observer.message(&format!("loaded {n} tensors from {}", w.display()));
    }
    if let Some(w) = &settings.context.pretrained {
        let n = match settings.context.encoder {
            EncoderKind::Resnet18 => load_pretrained_under(vs, "global.", w)?,
            EncoderKind::SwinT => crate::models::swin::load_swin_pretrained(vs, "global.", w)?,
        };
        observer.message(&format!(
            "global encoder: loaded {n} tensors from {}",
            w.display()
        ));
    }
    FoveaModel::freeze_encoder(vs, settings.context.frozen);
    if settings.channels_last {
        model.use_channels_last(vs);
    }
    Ok(model)
}

impl Task for PatchClassifier {
    type Batch = fovea_loader::Batch;
    type MetricsRow = MetricsCsvRow;
    type RankingRow = RankingRow;

    fn metric_name(&self) -> &'static str {
        "validation macro F1"
    }

    fn metrics_header(&self) -> &'static str {
        METRICS_CSV_HEADER
    }

    fn ranking_header(&self) -> &'static str {
        VAL_RANKING_CSV_HEADER
    }

    /// Global features (after a resume has restored the encoder's weights) and bags.
    fn start(&mut self, vs: &nn::VarStore, run: &Path, observer: &dyn TrainObserver) -> Result<()> {
        let cache = self
            .settings
            .context
            .cache_dir
            .clone()
            .unwrap_or_else(|| RunDir::new(run).global_cache());
        self.gctx = store_context(
            &self.model,
            vs,
            &self.store,
            &self.settings.context,
            &cache,
            self.device,
            &|m: &str| observer.message(m),
        )?;
        self.bags = self
            .model
            .mil
            .is_some()
            .then(|| Bags::new(&self.store.rows, self.settings.context.bag_size))
            .filter(|b| !b.images.is_empty());
        Ok(())
    }

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn samples_per_epoch(&self) -> usize {
        self.loader.samples_per_epoch()
    }

    fn epoch_batches(&self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>>>> {
        let batches = self.loader.epoch(epoch as u64, 0)?;
        Ok(Box::new(batches.map(|b| b.map_err(NnError::from))))
    }

    fn train_step(&mut self, b: Self::Batch, at: StepAt, amp: Amp) -> Result<StepOutput> {
        let (device, p) = (self.device, self.store.settings.patch_size as i64);
        let x = Tensor::from_slice(&b.images)
            .view([b.size as i64, 3, p, p])
            .to_device(device);
        let y = Tensor::from_slice(&b.labels)
            .view([b.size as i64, 4])
            .to_device(device);
        let model = &self.model;
        let ctx = context_of(
            model,
            self.gctx.as_ref(),
            &self.store,
            &b.patches,
            device,
            true,
        )?;
        let mut feat = None;
        let logits = crate::amp::try_forward(amp, || {
            let f = model.features(&x, true);
            let l = model.head(&f, ctx.as_ref());
            feat = Some(f);
            l
        })?;
        let feat = feat.ok_or_else(|| NnError::internal("no features"))?;
        let patch_loss = self.loss.forward(&logits, &y);
        let reported = patch_loss.double_value(&[]);
        let mut l = patch_loss;
        let c = &self.settings.context;
        if let Some(t) = model.contrastive(&feat, &y, c.temperature) {
            l += t * c.contrastive_weight;
        }
        if let Some(bags) = &self.bags {
            let ids = bags.draw(self.settings.seed, at.epoch, at.batch);
            let (xb, yb) = bag_batch(&self.store, &ids, device)?;
            let fb = crate::amp::forward(amp, || model.features(&xb, true));
            if let Some((bl, _)) = model.bag_logits(&fb.to_kind(Kind::Float)) {
                l += bag_loss(&bl, &yb) * c.bag_weight;
            }
        }
        let pr: Vec<f32> =
            Vec::try_from(logits.detach().sigmoid().to_device(Device::Cpu).view([-1]))?;
        for i in 0..b.size {
            self.truth
                .push(std::array::from_fn(|c| b.labels[i * 4 + c] as u8));
            self.probs.push(std::array::from_fn(|c| pr[i * 4 + c]));
        }
        Ok(StepOutput {
            loss: l,
            reported,
            samples: b.size,
        })
    }

    fn end_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
    ) -> Result<EpochOutcome<MetricsCsvRow, RankingRow>> {
        let (truth, probs) = (
            std::mem::take(&mut self.truth),
            std::mem::take(&mut self.probs),
        );
        let train_m = multilabel_metrics(&truth, &probs, [0.5; 4])?;
        let (_, vtruth, vprobs, val_loss) = predict_split(
            &self.model,
            self.gctx.as_ref(),
            &self.store,
            Split::Val,
            Some(self.val_patches.clone()),
            self.settings.data.eval_batch_size,
            self.settings.data.workers,
            self.device,
            Some(&self.loss),
        )?;
        let val_m = multilabel_metrics(&vtruth, &vprobs, [0.5; 4]).map_err(NnError::Validation)?;
        let ranking = ranking_metrics(&vtruth, &vprobs)?;
        self.val = (vtruth, vprobs);
        let metrics_rows = [("train", train_loss, &train_m), ("val", val_loss, &val_m)]
            .into_iter()
            .map(|(split, l, m)| MetricsCsvRow::new(epoch + 1, split, l, m))
            .collect();
        let [ap, auroc, prevalence] = ranking;
        Ok(EpochOutcome {
            metric: val_m.macro_f1,
            val_loss,
            metrics_rows,
            ranking_row: RankingRow {
                epoch: epoch + 1,
                ap,
                auroc,
                prevalence,
            },
            detail: EpochDetail::Patches(PatchEpoch {
                train: train_m,
                val: val_m,
                val_ap: ranking[0],
                val_auroc: ranking[1],
                val_prevalence: ranking[2],
            }),
        })
    }

    /// `model.safetensors`, `model.toml` (what inference rebuilds the model from) and
    /// `thresholds.json`, tuned on this validation.
    fn write_best(
        &mut self,
        vs: &nn::VarStore,
        dir: &Path,
        epoch: usize,
        metric: f64,
    ) -> Result<()> {
        let thresholds = tune_thresholds(&self.val.0, &self.val.1)?;
        self.thresholds = Some(thresholds);
        let s = &self.settings;
        let info = ModelInfo {
            model: s.model,
            pool: s.pool,
            patch_size: self.store.settings.patch_size as usize,
            num_classes: 4,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            epoch: epoch + 1,
            val_macro_f1: metric,
            context: s.context.spec(),
            enhance: self.store.settings.enhance,
        };
        let dir = ModelDir::new(dir);
        save_vars(vs, &dir.weights())?;
        let text = toml::to_string_pretty(&info)
            .map_err(|e| NnError::internal(format!("model.toml: {e}")))?;
        write_file_atomic(&dir.info(), &text)?;
        Ok(ThresholdsFile::from(thresholds).write(&dir.thresholds())?)
    }

    /// `RUN/thresholds.json`, the best model's.
    fn write_best_extras(&self, run: &Path) -> Result<()> {
        let t = self
            .thresholds
            .ok_or_else(|| NnError::internal("no thresholds tuned"))?;
        let text = ThresholdsFile::from(t).to_json_string()?;
        write_file_atomic(&RunDir::new(run).thresholds(), &text)
    }

    /// `RUN/model/` loads as `eval` loads it (model.toml, every weight with its shape,
    /// thresholds.json), and `RUN/thresholds.json` reads.
    fn check_best(&self, run: &Path) -> Result<()> {
        let broken = |path: PathBuf, e: NnError| NnError::BrokenModel {
            path,
            reason: e.to_string(),
        };
        let run = RunDir::new(run);
        let dir = run.model();
        crate::inference::load_run_model(run.path(), Device::Cpu)
            .map_err(|e| broken(dir.path().to_path_buf(), e))?;
        for t in [dir.thresholds(), run.thresholds()] {
            ThresholdsFile::read(&t).map_err(|e| broken(t.clone(), e.into()))?;
        }
        Ok(())
    }

    /// The store's patch size and the SHA-256 of its `index.csv` (every patch's image,
    /// position, split and labels).
    fn data_id(&self) -> Result<Option<String>> {
        use sha2::{Digest, Sha256};
        let index = self.store.dir.join("index.csv");
        let bytes = std::fs::read(&index).map_err(|e| NnError::io(&index, e))?;
        let hash: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(format!(
            "patch size {}, index.csv sha256 {hash}",
            self.store.settings.patch_size
        )))
    }
}

/// The training pool of the settings: which patches, drawn how.
fn training_sampler(store: &Store, s: &TrainSettings) -> Result<Sampler> {
    let rows = &store.rows;
    let n = rows.len();
    if !rows
        .iter()
        .any(|r| r.split == Split::Train && !r.black && r.is_lesion())
    {
        let why = match s.data.balance {
            Balance::Report => "the report's balancing keeps healthy patches in proportion to lesion ones, so there is nothing to train on",
            Balance::Weighted => "weighted sampling draws by inverse label frequency, and no label occurs",
            Balance::None => "a detector trained on healthy patches alone learns nothing",
        };
        return Err(NnError::input(
            &store.dir,
            format!("the training split has no lesion patch (no MA, HE, EX or SE label): {why}"),
        ));
    }
    let selection = match (&s.data.subset, s.data.balance) {
        (Some(p), Balance::Weighted) => {
            Selection::weighted_file(p, n, (s.data.epoch_size > 0).then_some(s.data.epoch_size))?
        }
        (Some(p), _) => Selection::subset_file(p, n)?,
        (None, Balance::None) => Selection::All,
        (None, Balance::Report) => Selection::Subset {
            subset: report_policy(
                rows,
                Split::Train,
                s.data.healthy_ratio,
                s.data.target_factor,
                s.seed,
            )?,
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
        Sampler::new(rows, Split::Train, selection, Order::Shuffled, s.seed)?
            .with_epoch_limit(limit),
    )
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

/// A bag's patches and its label (any patch positive), as a `[4]` float tensor.
fn bag_batch(store: &Store, ids: &[u64], device: Device) -> Result<(Tensor, Tensor)> {
    let (x, any) = patches_tensor(store, ids, device)?;
    let lab: Vec<f32> = any.iter().map(|&v| v as f32).collect();
    Ok((x, Tensor::from_slice(&lab).to_device(device)))
}

/// Average precision, AUROC (NaN for a class with one value only) and prevalence per
/// lesion.
fn ranking_metrics(truth: &[[u8; 4]], probs: &[[f32; 4]]) -> Result<[[f64; 4]; 3]> {
    let mut out = [[f64::NAN; 4]; 3];
    for c in 0..4 {
        let t: Vec<u8> = truth.iter().map(|r| r[c]).collect();
        let p: Vec<f32> = probs.iter().map(|r| r[c]).collect();
        out[0][c] = average_precision(&t, &p)?;
        out[1][c] = roc_auc(&t, &p)?.unwrap_or(f64::NAN);
        out[2][c] = t.iter().map(|&v| v as f64).sum::<f64>() / t.len().max(1) as f64;
    }
    Ok(out)
}

/// The validation ranking line: AP beside prevalence (what a random scorer's AP would be).
pub fn ranking_line(r: &PatchEpoch) -> String {
    let mut s = String::from("    AP (prevalence):");
    for (i, name) in fovea_data::LESION_CODES.iter().enumerate() {
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
    for (i, name) in fovea_data::LESION_CODES.iter().enumerate() {
        s += &format!(
            "    {name}: F1 {:.3} | Precision {:.3} | Recall {:.3} | support {}\n",
            m.f1[i], m.precision[i], m.recall[i], m.support[i]
        );
    }
    s
}
