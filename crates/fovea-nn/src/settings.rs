//! Training settings: one TOML schema (`--config FILE`, `configs/*.toml`), overridden by
//! flags, validated once, and written resolved to `RUN/config.toml`.

use std::path::{Path, PathBuf};

use fovea_loader::AugmentSettings;
use serde::{Deserialize, Serialize};

use crate::amp::Amp;
use crate::context::ContextSettings;
use crate::device::DeviceChoice;
use crate::error::{NnError, Result};
use crate::loss::LossSettings;
use crate::models::{ModelKind, Pool};
use crate::segmentation::{SegSettings, TrainTask};

/// Everything that decides a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// The patch store (`--store`).
    pub store: Option<PathBuf>,
    pub model: ModelKind,
    /// Global pooling before the classifier: "avg" (torchvision) or "max" (keeps the
    /// signal of small lesions).
    pub pool: Pool,
    /// Mixed precision on CUDA: "off" or "fp16" (autocast with dynamic loss scaling).
    pub amp: Amp,
    /// torchvision ResNet-18 weights (`.pth`, `.pt` or `.safetensors`) to start from; the
    /// fc layer is replaced.
    pub pretrained: Option<PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Seed of initialisation, sampling, augmentation and dropout.
    pub seed: u64,
    pub device: DeviceChoice,
    /// libtorch CPU threads (0 = all cores).
    pub threads: usize,
    /// Lay the model's weights and input out channels-last (NHWC): same values, faster
    /// convolutions on the CPU (ResNet-18 training 3-9 % faster here, bench/README.md).
    pub channels_last: bool,
    pub optim: OptimSettings,
    pub loss: LossSettings,
    pub augment: AugmentSettings,
    pub data: DataSettings,
    /// Stop when validation macro F1 has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Whole-image context: global encoder, fusion variant, contrastive term.
    pub context: ContextSettings,
    /// The model family: the patch classifier or the segmentation model (`--task`).
    pub task: TrainTask,
    /// The segmentation model's settings (`task = "segmentation"`; absent = defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<SegSettings>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            pool: Pool::Avg,
            amp: Amp::Off,
            store: None,
            model: ModelKind::Resnet18,
            pretrained: None,
            epochs: 20,
            batch_size: 32,
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            channels_last: true,
            optim: OptimSettings::default(),
            loss: LossSettings::default(),
            augment: AugmentSettings::default(),
            data: DataSettings::default(),
            patience: 5,
            context: ContextSettings::default(),
            task: TrainTask::Classifier,
            segmentation: None,
        }
    }
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    /// Cosine decay from `lr` to `min_lr` over the run.
    Cosine,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSettings {
    pub lr: f64,
    /// L2 penalty added to the gradient, as torch's Adam (the report: 1e-5).
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) instead.
    pub adamw: bool,
    pub schedule: Schedule,
    pub min_lr: f64,
}

impl Default for OptimSettings {
    fn default() -> Self {
        OptimSettings {
            lr: 1e-3,
            weight_decay: 1e-5,
            adamw: false,
            schedule: Schedule::Constant,
            min_lr: 1e-5,
        }
    }
}

impl OptimSettings {
    /// Learning rate of `epoch` (0-based) of `epochs`.
    pub fn lr_at(&self, epoch: usize, epochs: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let t = if epochs <= 1 {
                    0.0
                } else {
                    epoch as f64 / (epochs - 1) as f64
                };
                self.min_lr
                    + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// How the training set is drawn from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Balance {
    /// Every non-black training patch, once per epoch.
    None,
    /// The report's rework (`fovea balance --policy report`), computed at the start.
    Report,
    /// Weighted sampling with replacement by inverse label frequency.
    Weighted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    pub balance: Balance,
    /// A subset file from `fovea balance` (CSV patch,weight); overrides `balance`'s own
    /// computation (its weights are used with `balance = "weighted"`).
    pub subset: Option<PathBuf>,
    /// Report policy: healthy patches per lesion patch.
    pub healthy_ratio: f64,
    /// Report policy: keep a commoner lesion's patches up to this multiple of the rarest.
    pub target_factor: f64,
    /// Samples per epoch (weighted sampling draws this many; the others visit at most this
    /// many, a seeded selection); 0 = the whole pool.
    pub epoch_size: usize,
    /// Validation patches scored after each epoch: a seeded sample of the validation split
    /// stratified by label combination (prevalences kept); 0 = every non-black patch.
    pub val_size: usize,
    /// Input-pipeline worker threads.
    pub workers: usize,
    pub eval_batch_size: usize,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            balance: Balance::Report,
            subset: None,
            healthy_ratio: 2.0,
            target_factor: 1.0,
            epoch_size: 0,
            val_size: 0,
            workers: 2,
            eval_batch_size: 64,
        }
    }
}

impl TrainSettings {
    pub fn from_toml_file(path: &Path) -> Result<TrainSettings> {
        let text = std::fs::read_to_string(path).map_err(|e| NnError::io(path, e))?;
        toml::from_str(&text).map_err(|e| NnError::malformed(path, e))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every setting; the message names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, why: String| Err(NnError::setting(name, why));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return bad(
                "batch_size",
                format!("{} is not in 1..=4096", self.batch_size),
            );
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0 && o.lr < 10.0) {
            return bad("optim.lr", format!("{} is not in (0, 10)", o.lr));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return bad(
                "optim.weight_decay",
                format!("{} must be >= 0", o.weight_decay),
            );
        }
        if !(o.min_lr.is_finite() && o.min_lr >= 0.0 && o.min_lr <= o.lr) {
            return bad("optim.min_lr", format!("{} must be in [0, lr]", o.min_lr));
        }
        let l = &self.loss;
        if !(l.gamma.is_finite() && l.gamma >= 0.0) {
            return bad("loss.gamma", format!("{} must be >= 0", l.gamma));
        }
        if let Some(a) = l.alpha {
            if !(0.0..=1.0).contains(&a) {
                return bad("loss.alpha", format!("{a} is not in [0, 1]"));
            }
        }
        let d = &self.data;
        if !(d.healthy_ratio.is_finite() && d.healthy_ratio >= 0.0) {
            return bad(
                "data.healthy_ratio",
                format!("{} must be >= 0", d.healthy_ratio),
            );
        }
        if d.target_factor.is_nan() || d.target_factor < 1.0 {
            return bad(
                "data.target_factor",
                format!("{} must be >= 1", d.target_factor),
            );
        }
        if d.eval_batch_size == 0 {
            return bad("data.eval_batch_size", "must be at least 1".into());
        }
        if self.pretrained.is_some() && self.model != ModelKind::Resnet18 {
            return bad(
                "pretrained",
                "ImageNet weights exist only for model = \"resnet18\"".into(),
            );
        }
        self.context.validate()?;
        Ok(self.augment.validate()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_training_configs_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for name in ["report.toml", "cpu.toml", "ablation-cpu.toml"] {
            let s = TrainSettings::from_toml_file(&dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let cpu = TrainSettings::from_toml_file(&dir.join("cpu.toml")).unwrap();
        assert_eq!((cpu.model, cpu.pool), (ModelKind::Cnn, Pool::Max));
    }

    #[test]
    fn defaults_follow_the_report_and_round_trip() {
        let s = TrainSettings::default();
        s.validate().unwrap();
        assert_eq!(
            (s.optim.weight_decay, s.batch_size, s.epochs),
            (1e-5, 32, 20)
        );
        let back: TrainSettings = toml::from_str(&s.to_toml()).unwrap();
        assert_eq!(back, s);
        assert!(toml::from_str::<TrainSettings>("epochz = 3")
            .unwrap_err()
            .to_string()
            .contains("epochz"));
    }

    #[test]
    fn cosine_schedule_ends_at_min_lr() {
        let o = OptimSettings {
            schedule: Schedule::Cosine,
            lr: 1e-3,
            min_lr: 1e-5,
            ..Default::default()
        };
        assert!((o.lr_at(0, 10) - 1e-3).abs() < 1e-12);
        assert!((o.lr_at(9, 10) - 1e-5).abs() < 1e-12);
        assert!(o.lr_at(5, 10) < 1e-3 && o.lr_at(5, 10) > 1e-5);
    }

    #[test]
    fn bad_settings_name_themselves() {
        let mut s = TrainSettings {
            epochs: 0,
            ..Default::default()
        };
        let names = |s: &TrainSettings, want: &str| matches!(s.validate(), Err(NnError::Setting { name, .. }) if name == want);
        assert!(names(&s, "epochs"));
        s.epochs = 1;
        s.optim.lr = -1.0;
        assert!(names(&s, "optim.lr"));
        s.optim.lr = 1e-3;
        s.model = ModelKind::Cnn;
        s.pretrained = Some("w.pth".into());
        assert!(names(&s, "pretrained"));
        s.pretrained = None;
        s.augment.rotation_deg = 400.0;
        assert!(matches!(
            s.validate(),
            Err(NnError::Loader(fovea_loader::LoaderError::Setting { .. }))
        ));
    }
}
