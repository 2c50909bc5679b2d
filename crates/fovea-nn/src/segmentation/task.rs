//! [`SegmentationTask`]: the U-Net as a model family of the training engine. Batches are
//! tiles of the training photographs with their masks and field of view
//! (`fovea_loader::tiles`); a step is the forward pass under `amp` and the segmentation
//! loss over the tiles' field of view; after every epoch the validation photographs are
//! mapped whole ([`super::infer`]) and scored pixel by pixel ([`super::validate`]); the
//! best model is the one of highest mean pixel AUPR.

use std::path::Path;
use std::sync::Arc;

use fovea_data::{load_sample, ImageRecord, NUM_LESIONS};
use fovea_loader::tiles::{DatasetSource, SampleSource, TileBatch, TileLoader, TileSampler};
use fovea_metrics::{MetricsCsvRow, ThresholdsFile, METRICS_CSV_HEADER};
use fovea_run::{ModelDir, RankingRow, RunDir, VAL_RANKING_CSV_HEADER};
use tch::nn::ModuleT;
use tch::{nn, Device, Kind, Tensor};

use super::infer::{Preprocess, UNetPass};
use super::model::{load_seg_model, write_seg_model_info, SegModelInfo};
use super::settings::{SegSettings, TrainTask};
use super::validate::{metrics_from_counts, PixelTally};
use super::SegEpoch;
use crate::amp::Amp;
use crate::checkpoint::save_vars;
use crate::checkpoint::write_file_atomic;
use crate::engine::{EpochDetail, EpochOutcome, StepAt, StepOutput, Task, TrainObserver};
use crate::error::{NnError, Result};
use crate::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::models::unet::UNet;
use crate::seg_loss::seg_loss;
use crate::settings::TrainSettings;

/// The segmentation model being trained: its network, its data and what the current
/// epoch has recorded.
pub struct SegmentationTask {
    seg: SegSettings,
    amp: Amp,
    channels_last: bool,
    net: UNet,
    device: Device,
    loader: TileLoader,
    /// The validation photographs mapped after every epoch.
    val_records: Vec<ImageRecord>,
    prep: Preprocess,
    data_id: String,
    /// This epoch's training pixels at 0.5: `[tp, fp, fn, tn]` per lesion, pixels with
    /// all four right, pixels.
    counts: [[u64; 4]; NUM_LESIONS],
    exact: u64,
    pixels: u64,
    /// The last validation.
    tally: Option<PixelTally>,
    /// The thresholds of the best model, once one is kept.
    thresholds: Option<[f64; NUM_LESIONS]>,
}

impl SegmentationTask {
    /// The U-Net built in `vs` (ImageNet weights in its encoder when `settings.pretrained`),
    /// the tile loader over `train` and the validation photographs `val`. `settings` is
    /// resolved ([`super::resolve`]).
    pub fn new(
        settings: &TrainSettings,
        train: DatasetSource,
        val: DatasetSource,
        data_id: String,
        vs: &mut nn::VarStore,
        observer: &dyn TrainObserver,
    ) -> Result<SegmentationTask> {
        let seg = settings
            .segmentation
            .clone()
            .ok_or_else(|| NnError::internal("segmentation settings not resolved"))?;
        let net = UNet::new(&vs.root(), seg.encoder);
        if let Some(w) = &settings.pretrained {
            let n = crate::pretrained::load_pretrained_under(vs, "encoder.", w)?;
            observer.message(&format!("encoder: loaded {n} tensors from {}", w.display()));
        }
        if settings.channels_last {
            crate::layout::vars_channels_last(vs);
        }
        let n_train = train.len();
        let t0 = std::time::Instant::now();
        let sampler = TileSampler::new(Arc::new(train), seg.tiles.clone())?;
        let p = sampler.probabilities();
        observer.message(&format!(
            "training photographs: {n_train} indexed in {:.1} s; tile draws [MA, HE, EX, SE, FOV] = [{:.2}, {:.2}, {:.2}, {:.2}, {:.2}]",
            t0.elapsed().as_secs_f64(),
            p[0], p[1], p[2], p[3], p[4]
        ));
        let mut val_records = val.records().to_vec();
        if seg.val_images > 0 {
            val_records.truncate(seg.val_images);
        }
        let loader = TileLoader::new(Arc::new(sampler));
        observer.message(&format!(
            "{} tiles of {side}x{side} per epoch in {} batches; validation on {} photographs",
            seg.tiles.tiles_per_epoch,
            loader.batches_per_epoch(),
            val_records.len(),
            side = seg.tiles.side,
        ));
        let prep = Preprocess {
            scale: seg.tiles.scale,
            enhance: seg.tiles.enhance,
            fov: seg.tiles.fov.clone(),
        };
        Ok(SegmentationTask {
            amp: settings.amp,
            channels_last: settings.channels_last,
            net,
            device: vs.device(),
            loader,
            val_records,
            prep,
            data_id,
            counts: [[0; 4]; NUM_LESIONS],
            exact: 0,
            pixels: 0,
            tally: None,
            thresholds: None,
            seg,
        })
    }

    /// Maps and scores every validation photograph.
    fn validate(&self) -> Result<PixelTally> {
        let mut tally = PixelTally::new()?;
        for r in &self.val_records {
            let sample = load_sample(r)?;
            let map = UNetPass {
                net: &self.net,
                device: self.device,
                amp: self.amp,
                channels_last: self.channels_last,
            }
            .map(&sample.rgb, &self.prep, &self.seg.infer, &mut |_, _| {})?;
            tally.add(&sample.id, &map, &sample.masks, &self.seg.loss)?;
        }
        Ok(tally)
    }

    /// Adds a batch's pixels at 0.5 to the epoch's training counts.
    fn count(&mut self, logits: &Tensor, masks: &Tensor) {
        let (pred, truth) = (logits.ge(0.0), masks.ne(0));
        let dims = [0i64, 2, 3];
        let sum = |t: Tensor| t.sum_dim_intlist(&dims[..], false, Kind::Int64);
        let tp = sum(pred.logical_and(&truth));
        let fp = sum(pred.logical_and(&truth.logical_not()));
        let fn_ = sum(pred.logical_not().logical_and(&truth));
        let tn = sum(pred.logical_not().logical_and(&truth.logical_not()));
        let exact = pred
            .ne_tensor(&truth)
            .sum_dim_intlist(&[1i64][..], false, Kind::Int64)
            .eq(0)
            .sum(Kind::Int64)
            .view([1]);
        let all = Tensor::cat(&[tp, fp, fn_, tn, exact], 0).to_device(Device::Cpu);
        let v: Vec<i64> = Vec::try_from(all).unwrap_or_default();
        if v.len() != 4 * NUM_LESIONS + 1 {
            return;
        }
        for c in 0..NUM_LESIONS {
            for k in 0..4 {
                self.counts[c][k] += v[k * NUM_LESIONS + c] as u64;
            }
        }
        self.exact += v[4 * NUM_LESIONS] as u64;
        let s = masks.size();
        self.pixels += (s[0] * s[2] * s[3]) as u64;
    }
}

impl Task for SegmentationTask {
    type Batch = TileBatch;
    type MetricsRow = MetricsCsvRow;
    type RankingRow = RankingRow;

    fn metric_name(&self) -> &'static str {
        "validation mean pixel AUPR"
    }

    fn metrics_header(&self) -> &'static str {
        METRICS_CSV_HEADER
    }

    fn ranking_header(&self) -> &'static str {
        VAL_RANKING_CSV_HEADER
    }

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn samples_per_epoch(&self) -> usize {
        self.seg.tiles.tiles_per_epoch
    }

    fn epoch_batches(&self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<TileBatch>>>> {
        let batches = self.loader.epoch(epoch as u64, 0)?;
        Ok(Box::new(batches.map(|b| b.map_err(NnError::from))))
    }

    fn train_step(&mut self, b: TileBatch, _at: StepAt, amp: Amp) -> Result<StepOutput> {
        let (n, s) = (b.size as i64, b.side as i64);
        let mut x = Tensor::from_slice(&b.images)
            .view([n, 3, s, s])
            .to_device(self.device);
        if self.channels_last {
            x = crate::layout::channels_last(&x);
        }
        let y = Tensor::from_slice(&b.masks)
            .view([n, NUM_LESIONS as i64, s, s])
            .to_device(self.device);
        let v = Tensor::from_slice(&b.fov)
            .view([n, 1, s, s])
            .to_device(self.device);
        let net = &self.net;
        let logits = crate::amp::try_forward(amp, || Ok(net.forward_t(&x, true)))?;
        let loss = seg_loss(&logits, &y, Some(&v), &self.seg.loss);
        let reported = loss.total.double_value(&[]);
        tch::no_grad(|| self.count(&logits.detach(), &y));
        Ok(StepOutput {
            loss: loss.total,
            reported,
            samples: b.size,
        })
    }

    fn end_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
    ) -> Result<EpochOutcome<MetricsCsvRow, RankingRow>> {
        let train = metrics_from_counts(&self.counts, self.exact, self.pixels)?;
        (self.counts, self.exact, self.pixels) = ([[0; 4]; NUM_LESIONS], 0, 0);
        let t0 = std::time::Instant::now();
        let tally = self.validate()?;
        let val = tally.metrics()?;
        let aupr = tally.aupr();
        let ranking = RankingRow {
            epoch: epoch + 1,
            ap: aupr,
            auroc: tally.auroc(),
            prevalence: tally.prevalence(),
        };
        let metrics = [
            MetricsCsvRow::new(epoch + 1, "train", train_loss, &train),
            MetricsCsvRow::new(epoch + 1, "val", tally.loss(), &val),
        ];
        let detail = SegEpoch {
            train,
            val,
            val_aupr: aupr,
            val_auroc: ranking.auroc,
            val_prevalence: ranking.prevalence,
            val_images: tally.images,
            val_seconds: t0.elapsed().as_secs_f64(),
        };
        let val_loss = tally.loss();
        self.tally = Some(tally);
        Ok(EpochOutcome {
            metric: aupr.iter().sum::<f64>() / NUM_LESIONS as f64,
            val_loss,
            metrics_rows: metrics.to_vec(),
            ranking_row: ranking,
            detail: EpochDetail::Segmentation(detail),
        })
    }

    /// `model.safetensors`, `model.toml` ([`SegModelInfo`]) and `thresholds.json` (max
    /// pixel F1 on this validation).
    fn write_best(
        &mut self,
        vs: &nn::VarStore,
        dir: &Path,
        epoch: usize,
        metric: f64,
    ) -> Result<()> {
        let tally = self
            .tally
            .as_ref()
            .ok_or_else(|| NnError::internal("no validation before the best model"))?;
        let thresholds = tally.thresholds();
        self.thresholds = Some(thresholds);
        let dir = ModelDir::new(dir);
        save_vars(vs, &dir.weights())?;
        let info = SegModelInfo {
            task: TrainTask::Segmentation,
            encoder: self.seg.encoder,
            num_classes: NUM_LESIONS,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            tile_side: self.seg.tiles.side,
            preprocess: self.prep.clone(),
            infer: self.seg.infer.clone(),
            epoch: epoch + 1,
            val_mean_aupr: metric,
            val_aupr: tally.aupr(),
        };
        write_seg_model_info(&dir, &info)?;
        write_file_atomic(
            &dir.thresholds(),
            &ThresholdsFile::from(thresholds).to_json_string()?,
        )
    }

    /// `RUN/thresholds.json`, the best model's.
    fn write_best_extras(&self, run: &Path) -> Result<()> {
        let t = self
            .thresholds
            .ok_or_else(|| NnError::internal("no thresholds tuned"))?;
        write_file_atomic(
            &RunDir::new(run).thresholds(),
            &ThresholdsFile::from(t).to_json_string()?,
        )
    }

    /// `RUN/model/` loads as a segmentation model and both `thresholds.json` read.
    fn check_best(&self, run: &Path) -> Result<()> {
        let rd = RunDir::new(run);
        let broken = |path: &Path, e: NnError| NnError::BrokenModel {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let dir = rd.model();
        load_seg_model(run, Device::Cpu).map_err(|e| broken(dir.path(), e))?;
        for t in [dir.thresholds(), rd.thresholds()] {
            ThresholdsFile::read(&t).map_err(|e| broken(&t, e.into()))?;
        }
        Ok(())
    }

    fn data_id(&self) -> Result<Option<String>> {
        Ok(Some(self.data_id.clone()))
    }
}
