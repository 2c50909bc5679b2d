//! Fovea's deep-learning layer on libtorch (tch-rs): the patch classifiers (ResNet-18 in
//! torchvision's layout, a shallow CNN), losses (BCE, focal with per-class weights), Adam
//! with savable state, and throughput benchmarks.

pub mod ablation;
pub mod amp;
pub mod bench;
pub mod checkpoint;
pub mod context;
pub mod dense;
pub mod device;
pub mod eval;
pub mod export;
pub mod finite;
pub mod layout;
pub mod loss;
pub mod maps;
pub mod models;
pub mod optim;
pub mod pretrained;
pub mod seg_loss;
pub mod settings;
pub mod train;
