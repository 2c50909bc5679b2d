//! What Fovea promises under bad input (issue 15): one test per promise, named after it,
//! each citing the issue's case number. Every command runs as a user runs it, through the
//! binary, so that a panic, an abort inside libtorch or a hang is a failure and not a
//! crashed test harness.

/// `predict`, `eval-maps`, `export` and `eval`: lesion maps, exported models, run folders.
mod maps_and_export {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use fovea_data::synth::{generate, SynthSettings};
    use fovea_data::{Dataset, Enhance};
    use fovea_nn::checkpoint::{save_vars, ModelInfo};
    use fovea_nn::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
    use fovea_nn::models::{Classifier, ModelKind, Pool};
    use tch::{nn, Device};

    /// Patch side of the runs made here.
    const P: usize = 64;

    fn bin() -> Command {
        Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
    }

    /// Runs `cmd`, killing it (and failing the test) if it runs past `limit`: a hang is a
    /// failure, not a stuck test suite.
    fn run_within(cmd: &mut Command, limit: Duration) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} still ran after {limit:?} (killed): it hangs");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: std::fs::read(&o).unwrap(),
            stderr: std::fs::read(&e).unwrap(),
        }
    }

    fn exec(cmd: &mut Command) -> Output {
        run_within(cmd, Duration::from_secs(300))
    }

    fn text(out: &Output) -> String {
        format!(
            "status {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn succeeds(out: &Output) {
        assert!(out.status.success(), "{}", text(out));
    }

    /// A refusal: exit status 1 (not a panic's 101, not a signal), and an error line that
    /// holds every one of `needles`.
    fn refused(out: &Output, needles: &[&str]) {
        assert_eq!(out.status.code(), Some(1), "{}", text(out));
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rev()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line: {}", text(out)));
        for n in needles {
            assert!(line.contains(n), "{n:?} not in {line:?}\n{}", text(out));
        }
    }

    /// A run folder holding a seeded, untrained shallow CNN (what `predict`, `eval` and
    /// `export` read), its patch size P and thresholds `t`.
    fn make_run_with(dir: &Path, enhance: Enhance, t: [f64; 4]) -> PathBuf {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = Classifier::new(&vs.root(), ModelKind::Cnn, 4).with_pool(Pool::Max);
        let run = dir.join("run");
        std::fs::create_dir_all(run.join("model")).unwrap();
        save_vars(&vs, &run.join("model/model.safetensors")).unwrap();
        let info = ModelInfo {
            model: ModelKind::Cnn,
            pool: Pool::Max,
            patch_size: P,
            num_classes: 4,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            epoch: 1,
            val_macro_f1: 0.0,
            context: Default::default(),
            enhance,
        };
        std::fs::write(
            run.join("model/model.toml"),
            toml::to_string(&info).unwrap(),
        )
        .unwrap();
        // Written by hand: the file may hold what ThresholdsFile refuses to write.
        std::fs::write(
            run.join("thresholds.json"),
            format!(
                "{{\"MA\": {}, \"HE\": {}, \"EX\": {}, \"SE\": {}}}\n",
                t[0], t[1], t[2], t[3]
            ),
        )
        .unwrap();
        run
    }

    fn make_run(dir: &Path) -> PathBuf {
        make_run_with(dir, Enhance::None, [0.5; 4])
    }

    /// A synthetic dataset of `n` photographs of `w` x `h`, every image in split `test`
    /// (so `eval-maps --split test` scores them all).
    fn dataset(dir: &Path, n: usize, w: u32, h: u32) -> (PathBuf, Vec<PathBuf>) {
        let data = dir.join("data");
        generate(
            &data,
            &SynthSettings {
                images: n,
                seed: 1,
                width: w,
                height: h,
            },
        )
        .unwrap();
        let manifest = data.join("manifest.csv");
        let csv = std::fs::read_to_string(&manifest).unwrap();
        let with_split: String = csv
            .lines()
            .enumerate()
            .map(|(k, l)| format!("{l},{}\n", if k == 0 { "split" } else { "test" }))
            .collect();
        std::fs::write(&manifest, with_split).unwrap();
        let images = Dataset::open(&data)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.image)
            .collect();
        (data, images)
    }

    /// A patch store of P x P patches from 6 synthetic photographs; the split evaluated.
    fn store(dir: &Path) -> (PathBuf, &'static str) {
        let data = dir.join("store-data");
        generate(
            &data,
            &SynthSettings {
                images: 6,
                seed: 0,
                width: 256,
                height: 192,
            },
        )
        .unwrap();
        let store = dir.join("store");
        fovea_store::extract(
            &Dataset::open(&data).unwrap(),
            &fovea_store::ExtractSettings {
                patch_size: P as u32,
                stride: P as u32,
                ..Default::default()
            },
            &store,
            false,
            &fovea_store::extract::NoProgress,
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
        let s = fovea_store::Store::open(&store).unwrap();
        let has = |split| s.rows.iter().any(|r| r.split == split && !r.black);
        let split = if has(fovea_data::Split::Test) {
            "test"
        } else {
            assert!(has(fovea_data::Split::Val));
            "val"
        };
        (store, split)
    }

    fn predict(run: &Path, images: &[&Path], out: &Path, extra: &[&str]) -> Output {
        run_cmd_predict(run, images, out, extra, Duration::from_secs(300))
    }

    fn run_cmd_predict(
        run: &Path,
        images: &[&Path],
        out: &Path,
        extra: &[&str],
        limit: Duration,
    ) -> Output {
        let mut c = bin();
        c.args([
            "predict",
            "--device",
            "cpu",
            "--overlay-width",
            "64",
            "--run",
        ])
        .arg(run)
        .args(images)
        .arg("--out")
        .arg(out)
        .args(extra);
        run_within(&mut c, limit)
    }

    fn export(run: &Path, out: &Path, extra: &[&str]) -> Output {
        exec(
            bin()
                .args(["export", "--run"])
                .arg(run)
                .arg("--out")
                .arg(out)
                .args(extra),
        )
    }

    fn eval(run: &Path, store: &Path, split: &str, out: &Path, extra: &[&str]) -> Output {
        exec(
            bin()
                .args(["eval", "--device", "cpu", "--run"])
                .arg(run)
                .arg("--store")
                .arg(store)
                .args(["--split", split, "--out"])
                .arg(out)
                .args(extra),
        )
    }

    fn eval_maps(run: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
        exec(
            bin()
                .args([
                    "eval-maps",
                    "--device",
                    "cpu",
                    "--overlay-width",
                    "64",
                    "--split",
                    "test",
                    "--run",
                ])
                .arg(run)
                .arg("--dataset")
                .arg(data)
                .arg("--out")
                .arg(out)
                .args(extra),
        )
    }

    fn summary(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
    }

    // Case 6: `--cell` at least the photograph's size gave a 1x1 heatmap, whose region
    // search panicked in imageproc's union-find; so did an 8x8 photograph (one cell at the
    // default `--cell 8`) above its threshold.
    #[test]
    fn predict_and_eval_maps_never_panic_whatever_the_cell_size() {
        let tmp = tempfile::tempdir().unwrap();
        // Thresholds 0: every cell is at or above its threshold.
        let run = make_run_with(tmp.path(), Enhance::None, [0.0; 4]);
        let (data, images) = dataset(tmp.path(), 2, 384, 256);
        let maps = tmp.path().join("maps");
        succeeds(&predict(&run, &[&images[0]], &maps, &["--cell", "384"]));
        let s = summary(&maps.join("SYN_0001"));
        assert_eq!(s["stride"], 384);
        let regions = s["regions"].as_array().unwrap();
        assert_eq!(regions.len(), 4, "one region per lesion: {s}");
        assert_eq!(
            (regions[0]["width"].as_u64(), regions[0]["height"].as_u64()),
            (Some(384), Some(256))
        );
        // Larger still, as `--cell 4288` on IDRiD.
        succeeds(&predict(
            &run,
            &[&images[1]],
            &tmp.path().join("maps2"),
            &["--cell", "4288"],
        ));
        // An 8x8 photograph at the default cell.
        let tiny = tmp.path().join("tiny.png");
        image::RgbImage::from_pixel(8, 8, image::Rgb([150, 60, 30]))
            .save(&tiny)
            .unwrap();
        let tiny_maps = tmp.path().join("tiny-maps");
        succeeds(&predict(&run, &[&tiny], &tiny_maps, &[]));
        assert_eq!(summary(&tiny_maps.join("tiny"))["width"], 8);
        // eval-maps maps the same way.
        succeeds(&eval_maps(
            &run,
            &data,
            &tmp.path().join("eval"),
            &["--cell", "384"],
        ));
        assert!(tmp.path().join("eval/pixel_metrics.json").is_file());
    }

    // Case 3: `predict a/eye.jpg b/eye.jpg` wrote one folder, the second photograph's
    // maps over the first's.
    #[test]
    fn predict_never_overwrites_a_photograph_with_the_same_name() {
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        let (_, images) = dataset(tmp.path(), 2, 256, 192);
        let (a, b) = (tmp.path().join("a/eye.jpg"), tmp.path().join("b/eye.jpg"));
        for (src, dst) in [(&images[0], &a), (&images[1], &b)] {
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(src, dst).unwrap();
        }
        let maps = tmp.path().join("maps");
        let out = predict(&run, &[&a, &b], &maps, &[]);
        succeeds(&out);
        for (dir, photo) in [("a_eye", &a), ("b_eye", &b)] {
            let s = summary(&maps.join(dir));
            assert_eq!(s["image"], photo.display().to_string(), "{dir}");
            assert_eq!(s["image_id"], dir);
            assert!(maps.join(dir).join("heatmap.npy").is_file());
        }
        assert!(!maps.join("eye").exists());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("a_eye"),
            "{}",
            text(&out)
        );
        // The same photograph twice is refused, naming it.
        let out = predict(&run, &[&a, &a], &tmp.path().join("twice"), &[]);
        refused(&out, &["given twice", "eye.jpg"]);
    }

    // Case 7 (predict side): a FIFO given as a photograph hung `predict`; a directory was
    // reported as something else. Both are refused before the model is loaded.
    #[test]
    fn predict_and_eval_maps_refuse_what_is_not_a_regular_file_without_hanging() {
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        let (_, images) = dataset(tmp.path(), 1, 256, 192);
        let fifo = tmp.path().join("x.jpg");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let maps = tmp.path().join("maps");
        let limit = Duration::from_secs(60);
        let out = run_cmd_predict(&run, &[&images[0], &fifo], &maps, &[], limit);
        refused(&out, &["x.jpg", "is not a regular file"]);
        let folder = tmp.path().join("photos.jpg");
        std::fs::create_dir_all(&folder).unwrap();
        let out = run_cmd_predict(&run, &[&folder, &images[0]], &maps, &[], limit);
        refused(&out, &["photos.jpg", "is a directory"]);
        // Checked before the model is loaded: a run that does not exist is not reached.
        let nowhere = tmp.path().join("no-run");
        let out = run_cmd_predict(&nowhere, &[&fifo], &maps, &[], limit);
        refused(&out, &["x.jpg", "is not a regular file"]);
        assert!(!maps.join("SYN_0001").exists(), "nothing mapped");

        // eval-maps: a dataset whose photograph is a FIFO, and one whose mask is a folder.
        let data = tmp.path().join("fifo-data");
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::fs::write(
            data.join("manifest.csv"),
            "id,image,ma,he,ex,se,split\nE1,images/E1.jpg,,,,,test\n",
        )
        .unwrap();
        let made = Command::new("mkfifo")
            .arg(data.join("images/E1.jpg"))
            .status()
            .unwrap();
        assert!(made.success());
        let mut c = bin();
        c.args(["eval-maps", "--device", "cpu", "--split", "test", "--run"])
            .arg(&nowhere)
            .arg("--dataset")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("eval"));
        // Refused without a hang and before the (missing) run is read, naming the file and
        // what it is (fovea-data's Dataset::open checks every path a manifest names).
        let out = run_within(&mut c, limit);
        refused(&out, &["E1.jpg", "is not a regular file"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("no-run"), "{}", text(&out));
    }

    // Case 2 (export side): `export --out run/model/model.safetensors` overwrote the
    // model it was exporting.
    #[test]
    fn export_never_writes_into_the_run_it_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        let weights = run.join("model/model.safetensors");
        let before = std::fs::read(&weights).unwrap();
        for force in [&[][..], &["--force"][..]] {
            let out = export(&run, &weights, force);
            refused(&out, &["model.safetensors", "inside the input"]);
            let out = export(&run, &run.join("model.pt"), force);
            refused(&out, &["model.pt", "inside the input"]);
        }
        assert_eq!(
            std::fs::read(&weights).unwrap(),
            before,
            "the model is intact"
        );
        assert!(!run.join("model.pt").exists());
    }

    /// Asserts that `dir/t.txt` still holds "thesis".
    fn thesis_intact(dir: &Path) {
        assert_eq!(
            std::fs::read_to_string(dir.join("t.txt")).unwrap(),
            "thesis"
        );
    }

    // Case 5: eval, predict and export overwrote an existing output silently. Now one
    // rule: refused without --force; --force replaces only that command's own output.
    #[test]
    fn eval_predict_and_export_refuse_an_existing_output_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        let (_, images) = dataset(tmp.path(), 2, 256, 192);
        let user = tmp.path().join("userdir");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("t.txt"), "thesis").unwrap();

        // predict: MAPS/
        let maps = tmp.path().join("maps");
        succeeds(&predict(&run, &[&images[0]], &maps, &[]));
        refused(
            &predict(&run, &[&images[1]], &maps, &[]),
            &["maps", "--force"],
        );
        assert!(!maps.join("SYN_0002").exists());
        succeeds(&predict(&run, &[&images[1]], &maps, &["--force"]));
        assert!(maps.join("SYN_0002/summary.json").is_file());
        assert!(
            !maps.join("SYN_0001").exists(),
            "--force replaces the whole folder"
        );
        refused(
            &predict(&run, &[&images[0]], &user, &["--force"]),
            &["userdir", "is not a Fovea lesion-map folder"],
        );
        thesis_intact(&user);

        // export: a file
        let file = tmp.path().join("m.pt");
        succeeds(&export(&run, &file, &[]));
        refused(&export(&run, &file, &[]), &["m.pt", "--force"]);
        succeeds(&export(&run, &file, &["--force"]));
        let txt = user.join("t.txt");
        refused(
            &export(&run, &txt, &["--force"]),
            &["t.txt", "not an exported model"],
        );
        thesis_intact(&user);

        // eval: EVAL/
        let (store, split) = store(tmp.path());
        let ev = tmp.path().join("ev");
        succeeds(&eval(&run, &store, split, &ev, &[]));
        let metrics = std::fs::read(ev.join("metrics.json")).unwrap();
        refused(&eval(&run, &store, split, &ev, &[]), &["ev", "--force"]);
        succeeds(&eval(&run, &store, split, &ev, &["--force"]));
        assert_eq!(std::fs::read(ev.join("metrics.json")).unwrap(), metrics);
        refused(
            &eval(&run, &store, split, &user, &["--force"]),
            &["userdir", "is not a Fovea evaluation folder"],
        );
        thesis_intact(&user);
        // An output inside an input is refused, --force or not.
        refused(
            &eval(&run, &store, split, &store.join("ev"), &["--force"]),
            &["inside the input"],
        );
    }

    // Case 20: NaN weights gave `MA: score at index 0 is NaN` in eval, a window error in
    // predict, and a successful export.
    #[test]
    fn eval_predict_and_export_refuse_nan_weights_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        let weights = run.join("model/model.safetensors");
        let mut named = tch::Tensor::read_safetensors(&weights).unwrap();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let k = named
            .iter()
            .position(|(n, t)| n.ends_with("weight") && t.kind() == tch::Kind::Float)
            .unwrap();
        let mut first = named[k].1.view([-1]).narrow(0, 0, 1);
        let _ = first.fill_(f64::NAN);
        let refs: Vec<(&str, &tch::Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        tch::Tensor::write_safetensors(&refs, &weights).unwrap();
        let broken = named[k].0.clone();
        let want = ["model.safetensors", broken.as_str(), "NaN or infinite"];
        let (_, images) = dataset(tmp.path(), 1, 256, 192);
        refused(
            &predict(&run, &[&images[0]], &tmp.path().join("maps"), &[]),
            &want,
        );
        refused(&export(&run, &tmp.path().join("m.pt"), &[]), &want);
        assert!(!tmp.path().join("m.pt").exists());
        let (store, split) = store(tmp.path());
        refused(
            &eval(&run, &store, split, &tmp.path().join("ev"), &[]),
            &want,
        );
    }

    // Case 18: thresholds outside [0, 1] in thresholds.json (MA 7, HE -1) were accepted.
    #[test]
    fn eval_predict_and_export_refuse_thresholds_outside_0_1_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, images) = dataset(tmp.path(), 1, 256, 192);
        let (store, split) = store(tmp.path());
        for (t, want) in [
            ([7.0, 0.5, 0.5, 0.5], "MA: threshold 7 is outside [0, 1]"),
            ([0.5, -1.0, 0.5, 0.5], "HE: threshold -1 is outside [0, 1]"),
        ] {
            let run = make_run_with(tmp.path(), Enhance::None, t);
            let file = run.join("thresholds.json").display().to_string();
            let needles = [file.as_str(), want];
            refused(
                &predict(&run, &[&images[0]], &tmp.path().join("maps"), &[]),
                &needles,
            );
            refused(&export(&run, &tmp.path().join("m.pt"), &[]), &needles);
            refused(
                &eval(&run, &store, split, &tmp.path().join("ev"), &[]),
                &needles,
            );
            assert!(!tmp.path().join("maps").exists() && !tmp.path().join("ev").exists());
        }
    }

    // Case 19: an export of a run trained on a local-contrast store said "RGB in [0, 1]"
    // and nothing else: a user feeding plain patches got wrong probabilities.
    #[test]
    fn export_states_the_input_the_model_expects_in_its_message_and_beside_the_model() {
        let tmp = tempfile::tempdir().unwrap();
        for (enhance, name) in [
            (Enhance::LocalContrast, "local-contrast"),
            (Enhance::None, "none"),
        ] {
            let dir = tmp.path().join(name);
            let run = make_run_with(&dir, enhance, [0.5; 4]);
            let file = dir.join("model.pt");
            let out = export(&run, &file, &[]);
            succeeds(&out);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("model.pt.json"), "{stdout}");
            assert_eq!(
                stdout.contains("AFTER its local-contrast enhancement"),
                enhance == Enhance::LocalContrast,
                "{stdout}"
            );
            let d: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("model.pt.json")).unwrap())
                    .unwrap();
            assert_eq!(d["input"]["enhancement"]["name"], name, "{d}");
            assert_eq!(d["input"]["shape"], serde_json::json!(["N", 3, P, P]));
            assert_eq!(d["input"]["layout"], "NCHW");
            assert_eq!(d["input"]["range"], serde_json::json!([0.0, 1.0]));
            assert_eq!(d["input"]["normalisation"]["inside_the_module"], true);
            assert_eq!(
                d["output"]["lesions"],
                serde_json::json!(["MA", "HE", "EX", "SE"])
            );
            assert_eq!(d["thresholds"]["SE"], 0.5);
        }
    }

    /// The Python of PyTorch's venv made by scripts/env.sh, where there is one.
    fn torch_python() -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let version = std::fs::read_to_string(root.join("TORCH_VERSION")).ok()?;
        let cache = std::env::var_os("FOVEA_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/fovea")))?;
        let py = cache
            .join(format!("torch-{}", version.trim()))
            .join("bin/python");
        py.is_file().then_some(py)
    }

    /// The README's Python block of the `fovea export` section.
    fn readme_python() -> String {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let section = &readme[readme.find("### `fovea export").unwrap()..];
        let start = section.find("```python\n").unwrap() + "```python\n".len();
        section[start..start + section[start..].find("```").unwrap()].to_string()
    }

    // Case 19: the exported file loads in plain PyTorch as the README shows, and its
    // ONNX line works where the README says what it needs (`onnx`).
    #[test]
    fn exported_model_runs_in_pytorch_as_the_readme_shows() {
        let Some(py) = torch_python() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI: PyTorch's venv (scripts/env.sh) is missing"
            );
            eprintln!("skipped: no PyTorch venv (source scripts/env.sh once to make it)");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let run = make_run(tmp.path());
        succeeds(&export(&run, &tmp.path().join("model.pt"), &[]));
        let has_onnx = Command::new(&py)
            .args(["-c", "import onnx"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let block = readme_python();
        assert!(block.contains("torch.jit.load(\"model.pt\")"), "{block}");
        let script: String = block
            .lines()
            .filter(|l| has_onnx || !l.contains("onnx"))
            .map(|l| format!("{l}\n"))
            .collect();
        let script = format!(
            "{script}assert tuple(probs.shape) == (8, 4), probs.shape\nassert bool(((probs >= 0) & (probs <= 1)).all())\n"
        );
        let out = exec(
            Command::new(&py)
                .args(["-c", &script])
                .current_dir(tmp.path()),
        );
        succeeds(&out);
        if has_onnx {
            assert!(tmp.path().join("model.onnx").is_file());
        } else {
            eprintln!(
                "ONNX line not run: `onnx` is not installed in {}",
                py.display()
            );
        }
    }

    // --help says what 0 means wherever 0 is accepted; where 0 means nothing it is refused.
    #[test]
    fn help_says_what_0_means_and_0_is_refused_where_it_means_nothing() {
        for cmd in ["predict", "eval-maps"] {
            let out = exec(bin().args([cmd, "--help"]));
            let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            for want in [
                "(0 = that default)",
                "(0 = none:",
                "(0 = the photograph's own)",
            ] {
                assert!(help.contains(want), "{cmd} --help lacks {want:?}: {help}");
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let (_, images) = dataset(tmp.path(), 1, 256, 192);
        for flag in ["--tile", "--cell"] {
            let out = predict(
                &tmp.path().join("run"),
                &[&images[0]],
                &tmp.path().join("m"),
                &[flag, "0"],
            );
            assert_eq!(out.status.code(), Some(2), "{flag} 0: {}", text(&out));
            assert!(String::from_utf8_lossy(&out.stderr).contains(flag));
        }
        let out = exec(bin().args(["eval", "--help"]));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("at least 1"), "{help}");
    }

    /// Deterministic bytes (xorshift) for the broken files below.
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    // Readers of a run's model folder (model.safetensors, model.toml, thresholds.json):
    // truncated, random or mutated files give one error line naming the file, never a
    // panic or an abort inside libtorch.
    #[test]
    fn broken_model_files_give_an_error_naming_the_file_never_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, images) = dataset(tmp.path(), 1, 256, 192);
        let good = make_run(tmp.path());
        let weights = std::fs::read(good.join("model/model.safetensors")).unwrap();
        let header = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize + 8;
        // (file, contents, whether it must be refused): a mutated file may still be a
        // valid one, but never a crash.
        let mut cases: Vec<(&str, Vec<u8>, bool)> = Vec::new();
        let st = "model/model.safetensors";
        for n in [0, 7, 8, 100, header - 1, header + 5, weights.len() - 1] {
            cases.push((st, weights[..n].to_vec(), true));
        }
        for seed in 1..4 {
            cases.push((st, noise(weights.len(), seed), true));
            let mut m = weights.clone();
            for (k, b) in noise(6, seed).into_iter().enumerate() {
                let pos = 8 + (seed as usize * 131 + k * 977) % (header - 8);
                m[pos] = b;
            }
            cases.push((st, m, false));
            // A header length far past the file.
            let mut m = weights.clone();
            m[..8].copy_from_slice(&(u64::MAX / seed).to_le_bytes());
            cases.push((st, m, true));
        }
        let toml_text = std::fs::read(good.join("model/model.toml")).unwrap();
        for n in [0, 10, toml_text.len() / 2] {
            cases.push(("model/model.toml", toml_text[..n].to_vec(), true));
        }
        cases.push(("model/model.toml", noise(300, 9), true));
        let negative =
            String::from_utf8_lossy(&toml_text).replace("patch_size = 64", "patch_size = -3");
        assert!(negative.contains("-3"));
        cases.push(("model/model.toml", negative.into_bytes(), true));
        for n in [0, 5] {
            cases.push((
                "thresholds.json",
                b"{\"MA\": 0.5, \"HE\""[..n].to_vec(),
                true,
            ));
        }
        cases.push(("thresholds.json", noise(50, 4), true));
        for (k, (file, bytes, must_fail)) in cases.iter().enumerate() {
            let dir = tmp.path().join(format!("case{k}"));
            let run = make_run(&dir);
            std::fs::write(run.join(file), bytes).unwrap();
            let name = Path::new(file).file_name().unwrap().to_str().unwrap();
            let out = if k % 2 == 0 {
                predict(&run, &[&images[0]], &dir.join("maps"), &[])
            } else {
                export(&run, &dir.join("m.pt"), &[])
            };
            if !must_fail && out.status.success() {
                continue;
            }
            assert_eq!(
                out.status.code(),
                Some(1),
                "case {k} ({file}): {}",
                text(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(name), "case {k} ({file}): {}", text(&out));
        }
    }
}

mod training {
    //! `train` and `ablate`: a resumed run continues the same run on the same data or is
    //! refused, and a refused training leaves nothing that blocks the retry.

    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use fovea_testkit::Synth;

    fn bin() -> Command {
        Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
    }

    /// The issue's fixture: six 384x256 photographs, 32-pixel patches.
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
        let config = std::fs::read(run.join("config.toml")).unwrap();
        let o = train(&store, &run, &["--epochs", "2", "--resume"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("training data changed"), "{err}");
        assert_eq!(err.matches("index.csv sha256").count(), 2, "{err}");
        // The refused resume leaves the run's settings as they were.
        assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), config);
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
    /// saying so, whatever the balancing, and leaves no `RUN/config.toml`.
    #[test]
    fn training_split_without_lesions_is_named() {
        let tmp = fovea_testkit::tempdir().unwrap();
        let store = synth(0).store(tmp.path());
        clear_training_lesions(&store);
        for (balance, why) in [
            ("report", "nothing to train on"),
            ("weighted", "no label occurs"),
            ("none", "healthy patches alone"),
        ] {
            let run = tmp.path().join(format!("run-{balance}"));
            let o = train(&store, &run, &["--epochs", "1", "--balance", balance]);
            let err = stderr(&o);
            assert!(!o.status.success(), "{balance}: {err}");
            assert!(
                err.contains("training split has no lesion patch"),
                "{balance}: {err}"
            );
            assert!(err.contains(why), "{balance}: {err}");
            assert!(!run.join("config.toml").exists(), "{balance}");
        }
    }
}
