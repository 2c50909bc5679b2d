//! ImageNet's input normalisation, which every model of the crate is trained with (the
//! loader applies it to patches, the global encoder to photographs) and which is recorded
//! with each model. One definition, the loader's, re-exported here as a leaf module of
//! this crate so that training, inference and the global encoder import it without a
//! cycle.

pub use fovea_loader::augment::{IMAGENET_MEAN, IMAGENET_STD};
