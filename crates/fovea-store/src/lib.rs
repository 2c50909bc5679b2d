//! Fovea's patch store and everything that builds or reads it, without any deep-learning
//! runtime: patch geometry (grid and lesion-centred), labelling, extraction into the store
//! of CONTRACTS 2 (`patches.npy`, `index.csv`, `stats.json`, `extract.toml`), image-level
//! splits without leakage, dataset composition, and balancing.

pub mod balance;
pub mod components;
pub mod error;
pub mod extract;
pub mod geometry;
pub mod index;
pub mod npy;
pub mod output;
pub mod settings;
pub mod split;
pub mod stats;
pub mod store;

pub use error::{Result, StoreError};
pub use extract::{extract, Progress};
pub use index::PatchRow;
pub use settings::ExtractSettings;
pub use store::Store;
