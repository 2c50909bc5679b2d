//! Fovea's data layer without any deep-learning runtime: the four lesion types, reading
//! lesion-segmentation datasets (IDRiD's download layout and manifest CSVs), decoding
//! photographs and lesion masks with their traps handled, the field-of-view mask, and the
//! synthetic fundus generator used by the quick start and the fast tests. It also holds
//! the vocabulary every other crate shares: the one lesion list with its colours
//! ([`lesion`]), atomic file output ([`fsio`]) and stable content hashes for cache keys
//! ([`hash`]).
//!
//! Coordinates are pixels of the original photograph, x to the right, y down. Lesion order
//! is always MA, HE, EX, SE.

pub mod contrast;
pub mod dataset;
pub mod error;
pub mod fov;
pub mod fsio;
pub mod hash;
pub mod io;
pub mod lesion;
pub mod mask_count;
pub mod synth;

pub use contrast::Enhance;
pub use dataset::{Dataset, ImageRecord, Layout, Split};
pub use error::{DataError, Result};
pub use fov::{count_in_rect, field_of_view, fov_grid, FovGrid, FovSettings};
pub use fsio::{write_atomic, FileError};
pub use io::{load_sample, read_mask, read_rgb, Mask, Sample};
pub use lesion::{
    Lesion, CHART_COLOURS, LESIONS, LESION_CODES, LESION_COLUMNS, LESION_NAMES, NUM_LESIONS,
    OVERLAY_COLOURS,
};
pub use mask_count::MaskBlocks;
pub mod testdata;
