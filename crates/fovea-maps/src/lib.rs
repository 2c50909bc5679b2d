//! Lesion maps for whole photographs, without libtorch: blending the scores of
//! overlapping windows into per-lesion heatmaps, regions, overlays, and pixel-level
//! scoring against masks (the IDRiD challenge's AUPR). The network that produces window
//! scores lives in `fovea-nn`; files follow CONTRACTS 5.
//!
//! | module | concern |
//! |---|---|
//! | [`grid`] | the grid of overlapping windows a photograph is scored on |
//! | [`heatmap`] | the `(4, h, w)` cell maps, field-of-view masking |
//! | [`blend`] | window scores to a heatmap (Hann / Gaussian / flat weights) |
//! | [`npy`] | `heatmap.npy`, written atomically, read defensively |
//! | [`regions`] | thresholded connected regions with boxes and scores |
//! | [`legend`] | lesion colours and the overlay's legend |
//! | [`overlay`] | `overlay.png` |
//! | [`summary`] | `summary.json` and the image-level probability |
//! | [`json`] | JSON files written atomically, read with the file named in errors |
//! | [`pixel_eval`] | `pixel_metrics.json`: streaming pixel-level AUPR / AUROC |
//! | [`patch_scores`] | a store's patch scores pooled from pixel probabilities |
//!
//! Lesions are always in the order MA, HE, EX, SE.

pub mod blend;
pub mod error;
pub mod grid;
pub mod heatmap;
pub mod json;
pub mod legend;
pub mod npy;
pub mod overlay;
pub mod patch_scores;
pub mod pixel_eval;
pub mod regions;
pub mod summary;

pub use blend::{blend, WindowWeight};
pub use error::{MapsError, Result};
pub use grid::WindowGrid;
pub use heatmap::{Heatmap, NUM_LESIONS};
pub use overlay::{overlay, write_png_atomic};
pub use patch_scores::{patch_scores, PatchRect, Pooling};
pub use pixel_eval::{
    ImageLevelMetrics, ImagePixelMetrics, PixelMetrics, PixelScorer, PER_IMAGE_BINS,
};
pub use regions::{regions, Region};
pub use summary::{by_lesion, image_probability, lesion_counts, presence, MapSummary};

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans.LICENSE`): the one font used to
/// write text into images (overlay legends, plots), so no system font is needed.
pub static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
