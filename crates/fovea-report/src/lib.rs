//! Pictures of a run: training curves (PNG and SVG), PR and ROC curves, patch galleries,
//! and `report.html`, one self-contained page (images embedded) that opens with no network.
