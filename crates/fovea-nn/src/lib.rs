//! Fovea's deep-learning layer on libtorch (tch-rs).
//!
//! - Models ([`models`]): the patch classifiers (ResNet-18 in torchvision's layout, a
//!   shallow CNN), Swin-T as a whole-image encoder, the segmentation U-Net; the patch
//!   classifier's whole-image context parts ([`context`]); ImageNet weights and their
//!   normalisation ([`pretrained`], [`tensors`], [`imagenet`]), channels-last layout
//!   ([`layout`]), checks that loaded weights are finite ([`finite`]).
//! - Training: the engine every model family shares ([`engine`]), the patch classifier as
//!   its first family ([`train`]), the pixel-level segmentation model
//!   ([`segmentation`]: training, tiled whole-photograph inference), losses ([`loss`];
//!   per-pixel and Dice for segmentation, [`seg_loss`]), Adam with savable state
//!   ([`optim`]), mixed precision ([`amp`]), settings ([`settings`]), the best model and
//!   checkpoints ([`checkpoint`]; their file names come from `fovea_run`'s run-folder
//!   contract).
//! - Using a trained run: loading it and predicting store splits ([`inference`]),
//!   `fovea eval` ([`eval`]), lesion maps of photographs ([`dense`], [`maps`]),
//!   TorchScript export ([`export`]), the whole-image-context ablation ([`ablation`]).
//! - Throughput benchmarks ([`bench`]), devices ([`device`]), errors ([`error`]), glibc
//!   malloc settings for libtorch's tensors ([`malloc`]).

pub mod ablation;
pub mod amp;
pub mod bench;
pub mod checkpoint;
pub mod context;
pub mod dense;
pub mod device;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod finite;
pub mod imagenet;
pub mod inference;
pub mod layout;
pub mod loss;
pub mod malloc;
pub mod maps;
pub mod models;
pub mod optim;
pub mod pretrained;
pub mod seg_loss;
pub mod segmentation;
pub mod settings;
pub mod tensors;
pub mod train;

pub use error::{NnError, Result};
