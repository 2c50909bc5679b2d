//! The folders of CONTRACTS 3-5 and their file names. Each type wraps the folder's path and
//! has one method per file; the methods that read or write a CSV table or a JSON document
//! of the folder sit beside them, so callers never spell a file name.
//!
//! ```text
//! RUN/  config.toml metrics.csv val_ranking.csv thresholds.json report.html global_cache/
//!       model/{model.toml,model.safetensors,thresholds.json}
//!       checkpoints/epoch-NNNN/{model.safetensors,optimizer.safetensors,state.json}
//!       plots/NAME.{png,svg}
//! EVAL/ predictions.csv metrics.json pixel_metrics.json
//! MAPS/ <image_id>/{heatmap.npy,overlay.png,summary.json}
//! ABLATION/ ablation.csv ablation.md global_cache/ runs/<name>/{test/,ablation_row.json}
//! ```

use std::path::{Path, PathBuf};

use fovea_metrics::{MetricsCsvRow, MetricsReport, ThresholdsFile, METRICS_CSV_HEADER};

use crate::error::Result;
use crate::rows::{PredictionRow, RankingRow, PREDICTIONS_CSV_HEADER, VAL_RANKING_CSV_HEADER};
use crate::table::{read_csv, write_csv};

/// Implements `new`, `path` and `AsRef<Path>` for a folder type.
macro_rules! folder {
    ($t:ident) => {
        impl $t {
            /// The folder at `path` (nothing is read or created).
            pub fn new(path: impl Into<PathBuf>) -> $t {
                $t { path: path.into() }
            }

            /// The folder itself.
            pub fn path(&self) -> &Path {
                &self.path
            }
        }

        impl AsRef<Path> for $t {
            fn as_ref(&self) -> &Path {
                &self.path
            }
        }
    };
}

/// A training run folder (`fovea train --out RUN`, CONTRACTS 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}
folder!(RunDir);

impl RunDir {
    /// `RUN/config.toml`: every resolved setting, including seeds.
    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    /// `RUN/metrics.csv`: a row per epoch and split ([`MetricsCsvRow`]).
    pub fn metrics_csv(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }

    /// `RUN/val_ranking.csv`: validation AP, AUROC and prevalence per epoch ([`RankingRow`]).
    pub fn val_ranking_csv(&self) -> PathBuf {
        self.path.join("val_ranking.csv")
    }

    /// `RUN/thresholds.json`: per-lesion thresholds tuned on validation.
    pub fn thresholds(&self) -> PathBuf {
        self.path.join("thresholds.json")
    }

    /// `RUN/report.html`, where `fovea report` writes by default.
    pub fn report_html(&self) -> PathBuf {
        self.path.join("report.html")
    }

    /// `RUN/model/`: the best model, loadable with nothing else.
    pub fn model(&self) -> ModelDir {
        ModelDir::new(self.path.join("model"))
    }

    /// `RUN/checkpoints/`: what `--resume` continues from.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// `RUN/checkpoints/epoch-NNNN/`: the checkpoint after `epoch` (1-based).
    pub fn checkpoint(&self, epoch: usize) -> CheckpointDir {
        CheckpointDir::new(self.checkpoints().join(format!("epoch-{epoch:04}")))
    }

    /// The epoch of a checkpoint folder's name (`epoch-0003` is 3), if it is one.
    pub fn checkpoint_epoch(name: &str) -> Option<usize> {
        name.strip_prefix("epoch-")?.parse().ok()
    }

    /// `RUN/global_cache/`: the run's cached whole-image features (unless the settings name
    /// another cache folder).
    pub fn global_cache(&self) -> PathBuf {
        self.path.join(GLOBAL_CACHE)
    }

    /// `RUN/plots/`: training curves and PR/ROC plots.
    pub fn plots(&self) -> PathBuf {
        self.path.join("plots")
    }

    /// `RUN/plots/NAME.EXT` (`loss`, `png`).
    pub fn plot(&self, name: &str, ext: &str) -> PathBuf {
        self.plots().join(format!("{name}.{ext}"))
    }

    /// Writes `metrics.csv` (header, then `rows`), atomically.
    pub fn write_metrics(&self, rows: &[MetricsCsvRow]) -> Result<()> {
        write_csv(&self.metrics_csv(), METRICS_CSV_HEADER, rows)
    }

    /// Reads `metrics.csv` (columns by name; added columns are ignored).
    pub fn read_metrics(&self) -> Result<Vec<MetricsCsvRow>> {
        read_csv(&self.metrics_csv())
    }

    /// Writes `val_ranking.csv`, atomically.
    pub fn write_val_ranking(&self, rows: &[RankingRow]) -> Result<()> {
        write_csv(&self.val_ranking_csv(), VAL_RANKING_CSV_HEADER, rows)
    }

    /// Reads `val_ranking.csv`.
    pub fn read_val_ranking(&self) -> Result<Vec<RankingRow>> {
        read_csv(&self.val_ranking_csv())
    }

    /// Reads `thresholds.json`.
    pub fn read_thresholds(&self) -> Result<ThresholdsFile> {
        Ok(ThresholdsFile::read(&self.thresholds())?)
    }
}

/// The best model of a run (`RUN/model/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDir {
    path: PathBuf,
}
folder!(ModelDir);

impl ModelDir {
    /// `model.toml`: architecture, patch size, normalisation, context, enhancement.
    pub fn info(&self) -> PathBuf {
        self.path.join("model.toml")
    }

    /// `model.safetensors`: the weights.
    pub fn weights(&self) -> PathBuf {
        self.path.join(WEIGHTS)
    }

    /// `thresholds.json`: the thresholds tuned with these weights.
    pub fn thresholds(&self) -> PathBuf {
        self.path.join("thresholds.json")
    }
}

/// File name of the weights in a model or checkpoint folder.
const WEIGHTS: &str = "model.safetensors";

/// One checkpoint (`RUN/checkpoints/epoch-NNNN/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointDir {
    path: PathBuf,
}
folder!(CheckpointDir);

impl CheckpointDir {
    /// `model.safetensors`: the weights after the epoch.
    pub fn weights(&self) -> PathBuf {
        self.path.join(WEIGHTS)
    }

    /// `optimizer.safetensors`: the optimiser's moments.
    pub fn optimizer(&self) -> PathBuf {
        self.path.join("optimizer.safetensors")
    }

    /// `state.json`: the loop's state; written last, its presence marks the checkpoint whole.
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }
}

/// An evaluation folder (`fovea eval --out EVAL`, `fovea eval-maps --out EVAL`, CONTRACTS 4-5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalDir {
    path: PathBuf,
}
folder!(EvalDir);

impl EvalDir {
    /// `EVAL/predictions.csv`: truth and probabilities per non-black patch ([`PredictionRow`]).
    pub fn predictions_csv(&self) -> PathBuf {
        self.path.join("predictions.csv")
    }

    /// `EVAL/metrics.json`: at 0.5 and at the tuned thresholds, AUROC and AP per lesion.
    pub fn metrics_json(&self) -> PathBuf {
        self.path.join("metrics.json")
    }

    /// `EVAL/pixel_metrics.json`: pixel-level AUPR / AUROC of the lesion maps.
    pub fn pixel_metrics_json(&self) -> PathBuf {
        self.path.join("pixel_metrics.json")
    }

    /// Writes `predictions.csv`, atomically.
    pub fn write_predictions(&self, rows: &[PredictionRow]) -> Result<()> {
        write_csv(&self.predictions_csv(), PREDICTIONS_CSV_HEADER, rows)
    }

    /// Reads `predictions.csv`.
    pub fn read_predictions(&self) -> Result<Vec<PredictionRow>> {
        read_csv(&self.predictions_csv())
    }

    /// Writes `metrics.json` (pretty-printed, no trailing newline), atomically.
    pub fn write_metrics(&self, report: &MetricsReport) -> Result<()> {
        let path = self.metrics_json();
        fovea_data::write_atomic(&path, report.to_json_string().as_bytes())?;
        Ok(())
    }

    /// Reads `metrics.json`.
    pub fn read_metrics(&self) -> Result<MetricsReport> {
        Ok(MetricsReport::read(&self.metrics_json())?)
    }
}

/// A lesion-map folder (`fovea predict --out MAPS`, CONTRACTS 5): one [`MapDir`] per photograph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsDir {
    path: PathBuf,
}
folder!(MapsDir);

impl MapsDir {
    /// `MAPS/<image_id>/`.
    pub fn image(&self, image_id: &str) -> MapDir {
        MapDir::new(self.path.join(image_id))
    }

    /// The photographs' folders that hold a `summary.json`, by name. An unreadable `MAPS`
    /// is an error naming it.
    pub fn images(&self) -> Result<Vec<MapDir>> {
        let rd =
            std::fs::read_dir(&self.path).map_err(|e| fovea_data::FileError::new(&self.path, e))?;
        let mut dirs: Vec<MapDir> = rd
            .flatten()
            .map(|e| MapDir::new(e.path()))
            .filter(|d| d.summary().is_file())
            .collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(dirs)
    }
}

/// The maps of one photograph (`MAPS/<image_id>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDir {
    path: PathBuf,
}
folder!(MapDir);

impl MapDir {
    /// `heatmap.npy`: float32 `(4, h, w)` probabilities.
    pub fn heatmap(&self) -> PathBuf {
        self.path.join("heatmap.npy")
    }

    /// `overlay.png`: the photograph with the four maps drawn over it.
    pub fn overlay(&self) -> PathBuf {
        self.path.join("overlay.png")
    }

    /// `summary.json`: stride, size, image-level probabilities, regions.
    pub fn summary(&self) -> PathBuf {
        self.path.join("summary.json")
    }
}

/// An ablation folder (`fovea ablate --out DIR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AblationDir {
    path: PathBuf,
}
folder!(AblationDir);

impl AblationDir {
    /// `DIR/ablation.csv`: one row per variant and seed.
    pub fn table_csv(&self) -> PathBuf {
        self.path.join("ablation.csv")
    }

    /// `DIR/ablation.md`: the same table in Markdown with means.
    pub fn table_md(&self) -> PathBuf {
        self.path.join("ablation.md")
    }

    /// `DIR/global_cache/`: global features shared by the runs.
    pub fn global_cache(&self) -> PathBuf {
        self.path.join(GLOBAL_CACHE)
    }

    /// `DIR/runs/`.
    pub fn runs(&self) -> PathBuf {
        self.path.join(RUNS)
    }

    /// `DIR/runs/NAME/`: one variant and seed's run folder.
    pub fn run(&self, name: &str) -> RunDir {
        RunDir::new(self.runs().join(name))
    }

    /// `RUN/test/`: a run's test evaluation inside an ablation.
    pub fn run_test(run: &RunDir) -> EvalDir {
        EvalDir::new(run.path().join("test"))
    }

    /// `RUN/ablation_row.json`: a run's finished row.
    pub fn run_row(run: &RunDir) -> PathBuf {
        run.path().join("ablation_row.json")
    }

    /// The ablation folder that holds `run` (`DIR/runs/NAME`), if it is one of its runs.
    pub fn of_run(run: &Path) -> Option<AblationDir> {
        let runs = run.parent()?;
        if runs.file_name()? != RUNS {
            return None;
        }
        Some(AblationDir::new(runs.parent()?))
    }
}

/// Name of a folder of cached whole-image features.
const GLOBAL_CACHE: &str = "global_cache";

/// Name of the runs' folder of an ablation.
const RUNS: &str = "runs";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contract() {
        let run = RunDir::new("/r");
        assert_eq!(run.config(), Path::new("/r/config.toml"));
        assert_eq!(run.metrics_csv(), Path::new("/r/metrics.csv"));
        assert_eq!(run.val_ranking_csv(), Path::new("/r/val_ranking.csv"));
        assert_eq!(run.thresholds(), Path::new("/r/thresholds.json"));
        assert_eq!(
            run.model().weights(),
            Path::new("/r/model/model.safetensors")
        );
        assert_eq!(run.model().info(), Path::new("/r/model/model.toml"));
        assert_eq!(
            run.model().thresholds(),
            Path::new("/r/model/thresholds.json")
        );
        let ck = run.checkpoint(3);
        assert_eq!(ck.path(), Path::new("/r/checkpoints/epoch-0003"));
        assert_eq!(
            ck.state(),
            Path::new("/r/checkpoints/epoch-0003/state.json")
        );
        assert_eq!(RunDir::checkpoint_epoch("epoch-0003"), Some(3));
        assert_eq!(RunDir::checkpoint_epoch("epoch-x"), None);
        assert_eq!(run.plot("loss", "svg"), Path::new("/r/plots/loss.svg"));
        let e = EvalDir::new("/e");
        assert_eq!(e.predictions_csv(), Path::new("/e/predictions.csv"));
        assert_eq!(e.metrics_json(), Path::new("/e/metrics.json"));
        assert_eq!(e.pixel_metrics_json(), Path::new("/e/pixel_metrics.json"));
        let m = MapsDir::new("/m").image("IDRiD_01");
        assert_eq!(m.heatmap(), Path::new("/m/IDRiD_01/heatmap.npy"));
        assert_eq!(m.overlay(), Path::new("/m/IDRiD_01/overlay.png"));
        assert_eq!(m.summary(), Path::new("/m/IDRiD_01/summary.json"));
    }

    #[test]
    fn ablation_runs_know_their_table() {
        let a = AblationDir::new("/a");
        let run = a.run("patch-seed1");
        assert_eq!(AblationDir::of_run(run.path()), Some(a.clone()));
        assert_eq!(a.table_csv(), Path::new("/a/ablation.csv"));
        assert_eq!(AblationDir::of_run(Path::new("/x/patch-seed1")), None);
        assert_eq!(
            AblationDir::run_test(&run).path(),
            Path::new("/a/runs/patch-seed1/test")
        );
    }

    #[test]
    fn maps_lists_the_folders_with_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let maps = MapsDir::new(dir.path());
        for id in ["b", "a", "c"] {
            std::fs::create_dir_all(maps.image(id).path()).unwrap();
        }
        std::fs::write(maps.image("b").summary(), "{}").unwrap();
        std::fs::write(maps.image("a").summary(), "{}").unwrap();
        let ids: Vec<_> = maps
            .images()
            .unwrap()
            .iter()
            .map(|d| d.path().file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(MapsDir::new(dir.path().join("none")).images().is_err());
    }
}
