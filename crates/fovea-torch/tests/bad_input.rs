//! What Fovea's deep-learning commands promise under bad input: each test is one case of
//! issue 15, run as a user runs the command, and names the case it holds.

mod training {
    //! `train` and `ablate`: a resumed run continues the same run on the same data or is
    //! refused, and a refused training leaves nothing that blocks the retry.

    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use fovea_testkit::Synth;

    fn bin() -> Command {
        Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
    }

    /// The fixture: six 384x256 photographs, 32-pixel patches.
    fn synth(seed: u64) -> Synth {
        Synth::new(6, seed).size(384, 256)
    }

    /// `fovea-torch train --store STORE --out RUN` with the small CNN on the CPU, `extra`
    /// appended.
    fn train(store: &Path, run: &Path, extra: &[&str]) -> Output {
        bin()
            .arg("train")
            .arg("--store")
            .arg(store)
            .arg("--out")
            .arg(run)
            .args(["--model", "cnn", "--batch-size", "16", "--device", "cpu"])
            .args(extra)
            .output()
            .unwrap()
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// A store under `dir` and a run of one finished epoch trained on it.
    fn trained_run(dir: &Path) -> (PathBuf, PathBuf) {
        let store = synth(0).store(dir);
        let run = dir.join("run");
        let o = train(&store, &run, &["--epochs", "1"]);
        assert!(o.status.success(), "{}", stderr(&o));
        (store, run)
    }

    /// Case 9: a store re-extracted at the same path is other data; resuming on it is
    /// refused, naming the identity recorded and the one found.
    #[test]
    fn resume_refuses_a_store_re_extracted_at_the_same_path() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let (store, run) = trained_run(tmp.path());
        std::fs::remove_dir_all(&store).unwrap();
        std::fs::remove_dir_all(tmp.path().join("data")).unwrap();
        let again = synth(7).store(tmp.path());
        assert_eq!(again, store);
        let o = train(&store, &run, &["--epochs", "2", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("training data changed"), "{err}");
        assert_eq!(err.matches("index.csv sha256").count(), 2, "{err}");
    }

    /// Case 10: `--resume` may change only the number of epochs; another setting is
    /// refused, naming it, and config.toml keeps the run's own.
    #[test]
    fn resume_refuses_other_settings_naming_the_one_that_differs() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let (store, run) = trained_run(tmp.path());
        let config = std::fs::read(run.join("config.toml")).unwrap();
        let o = train(&store, &run, &["--epochs", "2", "--lr", "0.5", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("lr differs"), "{err}");
        assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), config);
    }

    /// Case 11: `--resume` on an `--out` that holds no run is refused; nothing is created.
    #[test]
    fn resume_refuses_a_folder_without_a_run() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let store = synth(0).store(tmp.path());
        let run = tmp.path().join("nowhere");
        let o = train(&store, &run, &["--epochs", "1", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("no config.toml"), "{err}");
        assert!(!run.join("config.toml").exists());
    }

    /// Case 11: `--resume` on a run whose checkpoints are gone is refused, naming them,
    /// and metrics.csv is not rewritten.
    #[test]
    fn resume_refuses_a_run_without_a_checkpoint() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let (store, run) = trained_run(tmp.path());
        std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
        let metrics = std::fs::read(run.join("metrics.csv")).unwrap();
        let o = train(&store, &run, &["--epochs", "2", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("no whole checkpoint"), "{err}");
        assert_eq!(std::fs::read(run.join("metrics.csv")).unwrap(), metrics);
    }

    /// Case 4: `--resume` on a run whose best model is broken fails naming it.
    #[test]
    fn resume_refuses_a_run_whose_best_model_is_broken() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let (store, run) = trained_run(tmp.path());
        std::fs::write(run.join("model").join("model.toml"), b"kind = ").unwrap();
        let o = train(&store, &run, &["--epochs", "2", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("is broken"), "{err}");
        assert!(err.contains("model"), "{err}");
    }

    /// Case 17: `ablate --epochs 0` is refused, as `train --epochs 0` is.
    #[test]
    fn ablate_refuses_zero_epochs() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let store = synth(0).store(tmp.path());
        let o = bin()
            .arg("ablate")
            .arg("--store")
            .arg(&store)
            .arg("--out")
            .arg(tmp.path().join("abl"))
            .args(["--epochs", "0", "--variants", "patch", "--device", "cpu"])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("epochs"), "{err}");
    }

    /// Case 21: a training refused at validation (here a missing `--pretrained` file)
    /// leaves no `RUN/config.toml`, so the retry is not blocked.
    #[test]
    fn refused_training_leaves_no_config() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let store = synth(0).store(tmp.path());
        let run = tmp.path().join("run");
        let missing = tmp.path().join("missing.safetensors");
        let o = train(
            &store,
            &run,
            &["--epochs", "1", "--pretrained", missing.to_str().unwrap()],
        );
        assert!(!o.status.success(), "{}", stderr(&o));
        assert!(!run.join("config.toml").exists());
    }

    /// Keeps the store's rows but clears every lesion label of its training split.
    fn clear_training_lesions(store: &Path) {
        let index = store.join("index.csv");
        let text = std::fs::read_to_string(&index).unwrap();
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
            if i > 0 && f[2] == "train" {
                for v in &mut f[7..15] {
                    *v = "0".into();
                }
            }
            out.push_str(&f.join(","));
            out.push('\n');
        }
        std::fs::write(&index, out).unwrap();
    }

    /// Cases 22 and 21: a store whose training split has no lesion patch is refused
    /// saying so, and leaves no `RUN/config.toml`.
    #[test]
    fn training_split_without_lesions_is_named() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let store = synth(0).store(tmp.path());
        clear_training_lesions(&store);
        let run = tmp.path().join("run");
        let o = train(&store, &run, &["--epochs", "1"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("training split has no lesion patch"), "{err}");
        assert!(!run.join("config.toml").exists());
    }
}
