//! Pictures of a run: training curves (PNG and SVG), PR and ROC curves, patch galleries,
//! and `report.html`, one self-contained page (images embedded) that opens with no network.
//!
//! No libtorch: everything here reads the files of CONTRACTS 2-5 (patch store, run folder,
//! evaluation folder, lesion maps). Plots are drawn with plotters, text rasterised from the
//! bundled DejaVu Sans (`fovea_maps::FONT`), so no system font is needed.
//!
//! | module | concern |
//! |---|---|
//! | [`curves`] | `RUN/plots/*.{png,svg}` from `metrics.csv` / `val_ranking.csv` |
//! | [`pr_roc`] | PR and ROC curves per lesion from `predictions.csv` |
//! | [`gallery`] | true / false positive and false negative patches per lesion |
//! | [`html`] | `report.html` |
//! | [`chart`] | one line-chart description drawn to PNG or SVG |
//! | [`predictions`], [`run_config`], [`pixel_metrics`], [`maps`] | reading the inputs (the run's CSV tables through `fovea-run`) |
//! | [`raster`], [`font`], [`glyph_backend`], [`fsio`] | PNG coding, the font and text in bitmaps, reading text and atomic writes |
//! | [`page`], [`sections`] | HTML building blocks and the report's sections |
//! | [`error`] | [`ReportError`] |

pub mod chart;
pub mod curves;
pub mod error;
pub mod font;
pub mod fsio;
pub mod gallery;
pub mod glyph_backend;
pub mod html;
pub mod maps;
pub mod page;
pub mod pixel_metrics;
pub mod pr_roc;
pub mod predictions;
pub mod raster;
pub mod run_config;
pub mod sections;

pub use chart::Plot;
pub use curves::write_training_curves;
pub use error::{ReportError, Result};
pub use html::{write_report, ReportInputs, ReportSummary, SectionStatus};
pub use pr_roc::{pr_roc_plots, write_pr_roc, PrRocPlots};
