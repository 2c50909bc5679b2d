//! Lesion maps for whole photographs, without libtorch: blending the scores of
//! overlapping windows into per-lesion heatmaps, regions, overlays, and pixel-level
//! scoring against masks (the IDRiD challenge's AUPR). The network that produces window
//! scores lives in `fovea-nn`.

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans.LICENSE`): the one font used to
/// write text into images (overlay legends, plots), so no system font is needed.
pub static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
