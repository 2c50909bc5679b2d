//! Whole-image context: a global encoder of the downscaled photograph fused with the patch
//! classifier's features.
//!
//! Variants (`context.fusion`, one training command):
//! - `patch`: the patch classifier alone (the baseline);
//! - `concat`: late fusion, the photograph's pooled vector (and the patch's position)
//!   concatenated with the patch feature before the classifier;
//! - `cross-attention`: the patch feature plus its position queries the photograph's
//!   feature-map tokens (multi-head attention), the result added back before the classifier;
//! - `attention-pool`: gated-attention pooling over the patches of a photograph for
//!   image-level lesion presence, trained jointly with the patch head (a bag of patches of
//!   one training photograph per step).
//!
//! Any variant can add a supervised contrastive term on the patch embeddings
//! (`context.contrastive_weight`).
//!
//! The global encoder (ResNet-18 trunk, `global.*` variables) sees the field of view's
//! bounding square, downscaled to `input_size`. Frozen (the default), its features are
//! computed once per photograph and cached on disk, keyed by the photograph and a hash of
//! the encoder's weights and input settings ([`global`]).
//!
//! Files: [`spec`] (settings and what a model records), [`model`] ([`FoveaModel`]),
//! [`encoder`] (the global encoder and its frame), [`global`] (per-photograph features
//! and their cache), [`attention`] (the fusion heads), [`contrastive`].

pub mod attention;
pub mod contrastive;
pub mod encoder;
pub mod global;
pub mod model;
pub mod spec;

pub use attention::{ConcatHead, CrossAttention, GatedAttentionMil, Projection};
pub use contrastive::supervised_contrastive;
pub use encoder::{BatchContext, Frame, GlobalEncoder};
pub use global::GlobalContext;
pub use model::{bag_loss, FoveaModel};
pub use spec::{ContextSettings, ContextSpec, EncoderKind, Fusion};
