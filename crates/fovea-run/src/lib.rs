//! The folders Fovea writes and reads, as types (CONTRACTS 3-5): every file name of a
//! training run, an evaluation and a lesion-map folder is a method here, and the CSV
//! tables among them are rows read and written with the csv crate and serde. Training,
//! evaluation, maps, the report and the CLI all go through these, so a name is spelled
//! once. No libtorch, no image codec: paths, rows and atomic writes only.
//!
//! | module | concern |
//! |---|---|
//! | [`dirs`] | [`RunDir`], [`ModelDir`], [`CheckpointDir`], [`EvalDir`], [`MapsDir`], [`MapDir`], [`AblationDir`]: the file names |
//! | [`rows`] | [`RankingRow`] (`val_ranking.csv`), [`PredictionRow`] (`predictions.csv`); [`MetricsCsvRow`] (`metrics.csv`) comes from `fovea-metrics` |
//! | [`table`] | reading and writing a CSV file of rows, errors that name the file, line and column |
//! | [`error`] | [`RunError`] |

pub mod dirs;
pub mod error;
pub mod rows;
pub mod table;

pub use dirs::{AblationDir, CheckpointDir, EvalDir, MapDir, MapsDir, ModelDir, RunDir};
pub use error::{Result, RunError};
pub use fovea_metrics::{MetricsCsvRow, METRICS_CSV_HEADER};
pub use rows::{PredictionRow, RankingRow, PREDICTIONS_CSV_HEADER, VAL_RANKING_CSV_HEADER};
pub use table::{parse_lines, read_csv, to_line, write_csv};
