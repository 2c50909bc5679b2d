//! What Fovea promises under bad input, data side: one test per promise, each citing its
//! case in issue 15 ("Nothing lost, nothing silently wrong"). The libtorch side (train,
//! eval, predict, export) has its own list in `crates/fovea-torch/tests/bad_input.rs`.
//!
//! Fixtures as in the issue: `fovea synth --images 6 --seed 0 --size 384x256`, then
//! `fovea extract --patch-size 32 --stride 32`, in a temporary folder per test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use fovea_store::index::read_index;

fn fovea() -> Command {
    let mut c = Command::cargo_bin("fovea").unwrap();
    c.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        // A command that would block (on a FIFO) fails the test instead of hanging it.
        .timeout(Duration::from_secs(60));
    c
}

/// Runs a command expected to succeed; returns (stdout, stderr).
fn ok(c: &mut Command) -> (String, String) {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

/// Runs a command expected to fail; returns its `error: ...` line.
fn fails(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = err.lines().rev().find(|l| l.starts_with("error: "));
    line.unwrap_or_else(|| panic!("no error line in: {err}"))
        .to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `fovea synth --out DIR --images N --seed 0 --size WxH`.
fn synth(dir: &Path, images: usize, size: &str) {
    let n = images.to_string();
    ok(fovea()
        .args(["synth", "--out", p(dir), "--images", &n, "--seed", "0"])
        .args(["--size", size]));
}

/// The fixtures: `syn` (6 photographs, 384x256) in `tmp`.
fn syn(tmp: &Path) -> PathBuf {
    let data = tmp.join("syn");
    synth(&data, 6, "384x256");
    data
}

/// `fovea extract --dataset DATA --out STORE --patch-size 32 --stride 32 [EXTRA...]`.
fn extract(data: &Path, store: &Path) -> Command {
    let mut c = fovea();
    c.args(["extract", "--dataset", p(data), "--out", p(store)])
        .args(["--patch-size", "32", "--stride", "32"]);
    c
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The manifest's lines (header first).
fn manifest_lines(data: &Path) -> Vec<String> {
    std::fs::read_to_string(data.join("manifest.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_manifest(data: &Path, lines: &[String]) {
    std::fs::write(data.join("manifest.csv"), lines.join("\n") + "\n").unwrap();
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------
// Nothing lost

/// Case 1: `extract --force` into a folder of the user's deleted it.
#[test]
fn extract_force_never_deletes_a_folder_that_is_not_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let user = tmp.path().join("userdir");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("t.txt"), "thesis").unwrap();
    for force in [true, false] {
        let mut c = extract(&data, &user);
        if force {
            c.arg("--force");
        }
        let e = fails(&mut c);
        assert!(
            e.contains("userdir is not a Fovea patch store (no index.csv)")
                && e.contains("--force only replaces Fovea's own outputs"),
            "{e}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(user.join("t.txt")).unwrap(),
        "thesis"
    );
    // A Fovea store is replaced with --force, and only with it.
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let e = fails(&mut extract(&data, &store));
    assert!(
        e.contains("store already exists: use --force to replace it"),
        "{e}"
    );
    ok(extract(&data, &store).arg("--force"));
}

/// Case 1: `--out` equal to the dataset, or a folder containing it, deleted the dataset.
#[test]
fn extract_never_writes_over_or_around_its_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let before = snapshot(&data);
    for out in [data.clone(), tmp.path().to_path_buf(), data.join("store")] {
        let e = fails(extract(&data, &out).arg("--force"));
        assert!(
            e.contains("one of the command's inputs")
                || e.contains("contains the input")
                || e.contains("lies inside the input"),
            "{}: {e}",
            out.display()
        );
    }
    assert_eq!(snapshot(&data), before, "the dataset was changed");
}

/// Case 2: `balance store --out store/index.csv` destroyed the store's index.
#[test]
fn balance_never_writes_inside_the_store_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let before = snapshot(&store);
    for out in [
        store.join("index.csv"),
        store.join("subset.csv"),
        store.clone(),
    ] {
        for force in [None, Some("--force")] {
            let e = fails(
                fovea()
                    .args(["balance", p(&store), "--out", p(&out)])
                    .args(force),
            );
            assert!(
                e.contains("lies inside the input") || e.contains("one of the command's inputs"),
                "{e}"
            );
        }
    }
    assert_eq!(snapshot(&store), before, "the store was changed");
    ok(fovea().args(["stats", p(&store)]));
}

/// Case 2: `report --run run --out run/metrics.csv` destroyed the run's metrics.
#[test]
fn report_never_writes_over_a_file_of_the_run_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let header = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,recall_ma,recall_he,recall_ex,recall_se";
    let row = |s: &str| {
        format!("1,{s},0.3,0.2,0.1,0.05,0.8,0.1,0.2,0.3,0.4,0.1,0.2,0.3,0.4,0.1,0.2,0.3,0.4")
    };
    let metrics = format!("{header}\n{}\n{}\n", row("train"), row("val"));
    std::fs::write(run.join("metrics.csv"), &metrics).unwrap();
    for force in [None, Some("--force")] {
        let e = fails(
            fovea()
                .args([
                    "report",
                    "--run",
                    p(&run),
                    "--out",
                    p(&run.join("metrics.csv")),
                ])
                .args(force),
        );
        assert!(e.contains("lies inside the input"), "{e}");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        metrics
    );
    // Its own page in the run is fine, and is then replaced only with --force.
    ok(fovea().args(["report", "--run", p(&run)]));
    let e = fails(fovea().args(["report", "--run", p(&run)]));
    assert!(e.contains("report.html already exists: use --force"), "{e}");
    ok(fovea().args(["report", "--run", p(&run), "--force"]));
}

/// Case 5: balance overwrote an existing output silently while extract refused: one rule.
#[test]
fn balance_replaces_an_existing_subset_only_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let subset = tmp.path().join("subset.csv");
    let args = ["balance", p(&store), "--out", p(&subset)];
    ok(fovea().args(args));
    let first = std::fs::read(&subset).unwrap();
    let e = fails(fovea().args(args).args(["--seed", "7"]));
    assert!(
        e.contains("subset.csv already exists: use --force to replace it"),
        "{e}"
    );
    assert_eq!(std::fs::read(&subset).unwrap(), first);
    ok(fovea().args(args).args(["--seed", "7", "--force"]));
    // --force replaces a subset, not a user's file.
    let notes = tmp.path().join("notes.csv");
    std::fs::write(&notes, "my,notes\n").unwrap();
    let e = fails(fovea().args(["balance", p(&store), "--out", p(&notes), "--force"]));
    assert!(e.contains("is not a Fovea subset CSV"), "{e}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my,notes\n");
}

// ---------------------------------------------------------------------------------------
// No hang

/// Case 7: a directory or FIFO given as photograph or mask was reported as "does not
/// exist"; a FIFO photograph made the reader block forever (predict hung).
#[test]
fn a_photograph_or_mask_that_is_not_a_regular_file_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let lines = manifest_lines(&data);
    std::fs::create_dir(data.join("images/dir.jpg")).unwrap();
    mkfifo(&data.join("masks/fifo.png"));
    let mut bad = lines.clone();
    let cells: Vec<&str> = lines[1].split(',').collect();
    bad[1] = format!("{},images/dir.jpg,{}", cells[0], cells[2..].join(","));
    write_manifest(&data, &bad);
    let e = fails(&mut extract(&data, &tmp.path().join("s1")));
    assert!(e.contains("images/dir.jpg is a directory"), "{e}");
    bad[1] = format!(
        "{},{},masks/fifo.png,{}",
        cells[0],
        cells[1],
        cells[3..].join(",")
    );
    write_manifest(&data, &bad);
    let e = fails(&mut extract(&data, &tmp.path().join("s2")));
    assert!(e.contains("masks/fifo.png is not a regular file"), "{e}");
    // The readers themselves (predict reads photographs with read_rgb) never block.
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = data.join("masks/fifo.png");
    std::thread::spawn(move || {
        let rgb = fovea_data::read_rgb(&fifo)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let mask = fovea_data::read_mask(&fifo)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = tx.send((rgb, mask));
    });
    let (rgb, mask) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("reading a FIFO blocked");
    for r in [rgb, mask] {
        assert!(r.unwrap_err().contains("fifo.png: is not a regular file"));
    }
    let e = fovea_data::read_rgb(&data.join("images/dir.jpg")).unwrap_err();
    assert!(e.to_string().ends_with("dir.jpg: is a directory"), "{e}");
}

/// Case 7: a manifest, settings file or split file that is a directory or a FIFO.
#[test]
fn a_manifest_or_settings_file_that_is_not_a_regular_file_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let fifo = tmp.path().join("settings.toml");
    mkfifo(&fifo);
    let dir = tmp.path().join("a-folder.toml");
    std::fs::create_dir(&dir).unwrap();
    for (flag, path, what) in [
        ("--config", &fifo, "is not a regular file"),
        ("--config", &dir, "is a directory"),
        ("--split-file", &fifo, "is not a regular file"),
        ("--split-file", &dir, "is a directory"),
    ] {
        let e = fails(extract(&data, &tmp.path().join("store")).args([flag, p(path)]));
        assert!(
            e.contains(&format!("{}: {what}", path.display())),
            "{flag}: {e}"
        );
    }
    // A manifest.csv that is a folder is named, not taken for "no dataset here".
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("manifest.csv")).unwrap();
    let e = fails(&mut extract(&other, &tmp.path().join("store")));
    assert!(e.contains("manifest.csv: is a directory"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Nothing silently wrong

/// Case 8: a Fortran-ordered patches.npy with the same values was read in the wrong order.
#[test]
fn a_fortran_ordered_patches_npy_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let npy = store.join("patches.npy");
    let bytes = std::fs::read(&npy).unwrap();
    let header_len = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let (n, side) = (read_index(&store.join("index.csv")).unwrap().len(), 32usize);
    let c_order = &bytes[header_len..];
    assert_eq!(c_order.len(), n * side * side * 3);
    // The same values, column-major: element (a, i, j, k) at a + n*(i + side*(j + side*k)).
    let mut f_order = vec![0u8; c_order.len()];
    for (c, &v) in c_order.iter().enumerate() {
        let (k, rest) = (c % 3, c / 3);
        let (j, rest) = (rest % side, rest / side);
        let (i, a) = (rest % side, rest / side);
        f_order[a + n * (i + side * (j + side * k))] = v;
    }
    let dict =
        format!("{{'descr': '|u1', 'fortran_order': True, 'shape': ({n}, {side}, {side}, 3), }}");
    let mut header = format!("{dict:<width$}", width = header_len - 11).into_bytes();
    header.push(b'\n');
    let mut out = bytes[..10].to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&f_order);
    std::fs::write(&npy, out).unwrap();
    let e = fails(fovea().args(["stats", p(&store)]));
    assert!(
        e.contains("patches.npy") && e.contains("Fortran-ordered"),
        "{e}"
    );
}

/// Case 12: a photograph smaller than the patch gave 0 patches, its lesions vanished.
#[test]
fn a_photograph_smaller_than_the_patch_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let tiny = tmp.path().join("tiny");
    synth(&tiny, 1, "64x64");
    let mut lines = manifest_lines(&data);
    let row = &manifest_lines(&tiny)[1];
    let cells: Vec<String> = row
        .split(',')
        .enumerate()
        .map(|(k, c)| match (k, c) {
            (0, _) => "tiny".to_string(),
            (_, "") => String::new(),
            (_, c) => p(&tiny.join(c)).to_string(),
        })
        .collect();
    lines.push(cells.join(","));
    write_manifest(&data, &lines);
    let store = tmp.path().join("store");
    let e = fails(
        fovea()
            .args(["extract", "--dataset", p(&data), "--out", p(&store)])
            .args(["--patch-size", "96", "--stride", "96"]),
    );
    assert!(
        e.contains("photograph 'tiny' is 64x64, smaller than the 96x96 patch")
            && e.contains("its lesions would be lost"),
        "{e}"
    );
    assert!(!store.exists());
}

/// Case 13: a palette PNG mask whose index 0 is white marked the whole photograph.
#[test]
fn a_palette_png_mask_marks_lesion_by_nonzero_index_whatever_its_colours() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let mut lines = manifest_lines(&data);
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    cells[2] = "masks/palette.png".into();
    lines[1] = cells.join(",");
    write_manifest(&data, &lines);
    let (id, ma) = (&cells[0], data.join(&cells[2]));
    // 384x256, palette [white, black]: index 1 (black) on a 4x4 block only.
    let mut index = vec![0u8; 384 * 256];
    for y in 100..104 {
        for x in 200..204 {
            index[y * 384 + x] = 1;
        }
    }
    std::fs::write(
        &ma,
        palette_png(384, 256, &[255, 255, 255, 0, 0, 0], &index),
    )
    .unwrap();
    let mask = fovea_data::read_mask(&ma).unwrap();
    assert_eq!(mask.iter().map(|&v| v as usize).sum::<usize>(), 16);
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let rows = read_index(&store.join("index.csv")).unwrap();
    let ma_px: u32 = rows
        .iter()
        .filter(|r| &r.image_id == id)
        .map(|r| r.px[0])
        .sum();
    assert_eq!(ma_px, 16, "grid patches tile the photograph: 16 MA pixels");
    // A mask that marks more than half of its photograph is warned about.
    std::fs::write(
        &ma,
        palette_png(384, 256, &[0, 0, 0, 255, 0, 0], &vec![1; 384 * 256]),
    )
    .unwrap();
    let (_, err) = ok(extract(&data, &store).arg("--force"));
    assert!(
        err.contains(&format!(
            "mask {} marks 100% of its photograph as lesion",
            ma.display()
        )),
        "{err}"
    );
}

/// An 8-bit palette PNG.
fn palette_png(w: u32, h: u32, palette: &[u8], index: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut buf, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette.to_vec());
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(index).unwrap();
    }
    buf
}

/// Case 14: an id containing a comma was written unquoted and the store could not be read.
#[test]
fn an_image_id_with_a_comma_is_quoted_in_index_csv_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let mut lines = manifest_lines(&data);
    let rest = lines[1].split_once(',').unwrap().1.to_string();
    lines[1] = format!("\"eye, left\",{rest}");
    write_manifest(&data, &lines);
    let store = tmp.path().join("store");
    ok(&mut extract(&data, &store));
    let text = std::fs::read_to_string(store.join("index.csv")).unwrap();
    assert!(text.contains(",\"eye, left\","), "not quoted");
    let rows = read_index(&store.join("index.csv")).unwrap();
    assert!(rows.iter().any(|r| r.image_id == "eye, left"));
    ok(fovea().args(["stats", p(&store)]));
    ok(fovea().args([
        "balance",
        p(&store),
        "--out",
        p(&tmp.path().join("subset.csv")),
    ]));
}

/// Case 15: the same photograph under two ids could land in train and in test.
#[test]
fn the_same_photograph_under_several_ids_stays_in_one_split() {
    let tmp = tempfile::tempdir().unwrap();
    let data = syn(tmp.path());
    let mut lines = manifest_lines(&data);
    let cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    // Five byte-identical copies of the first photograph under new ids (with its masks).
    for k in 0..5 {
        let copy = format!("images/copy{k}.jpg");
        std::fs::copy(data.join(&cells[1]), data.join(&copy)).unwrap();
        lines.push(format!("dup{k},{copy},{}", cells[2..].join(",")));
    }
    write_manifest(&data, &lines);
    let store = tmp.path().join("store");
    let (_, err) = ok(&mut extract(&data, &store));
    let rows = read_index(&store.join("index.csv")).unwrap();
    let splits: std::collections::BTreeSet<_> = rows
        .iter()
        .filter(|r| r.image_id == cells[0] || r.image_id.starts_with("dup"))
        .map(|r| r.split)
        .collect();
    assert_eq!(
        splits.len(),
        1,
        "identical photographs in several splits: {splits:?}"
    );
    assert!(
        err.contains("are the same photograph") && err.contains("kept together"),
        "{err}"
    );
}

/// Case 16: in IDRiD's layout, a mask with another extension, a suffix or in another
/// lesion's folder was silently ignored.
#[test]
fn every_unused_file_in_idrid_ground_truth_folders_is_named() {
    // Copied into a temporary folder at test time (never into the repository).
    let Some(src) = fovea_data::testdata::idrid_original_layout() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("idrid");
    copy_tree(&src, &root);
    let gt = root.join("A. Segmentation/2. All Segmentation Groundtruths/a. Training Set");
    let he = gt.join("2. Haemorrhages");
    let planted = [
        he.join("IDRiD_03_HE.png"),
        he.join("IDRiD_03_HE (1).tif"),
        gt.join("1. Microaneurysms/IDRiD_43_HE.tif"),
        gt.join("notes.txt"),
    ];
    std::fs::rename(he.join("IDRiD_03_HE.tif"), &planted[0]).unwrap();
    std::fs::copy(&planted[0], &planted[1]).unwrap();
    std::fs::copy(&planted[0], &planted[2]).unwrap();
    std::fs::write(&planted[3], "x").unwrap();
    let ds = fovea_data::Dataset::open(&root).unwrap();
    let ignored: Vec<&PathBuf> = ds.ignored.iter().map(|(path, _)| path).collect();
    for f in &planted {
        assert!(
            ignored.contains(&f),
            "{} not reported: {:?}",
            f.display(),
            ds.ignored
        );
    }
    assert_eq!(ignored.len(), planted.len(), "{:?}", ds.ignored);
    let why = |f: &Path| &ds.ignored.iter().find(|(p, _)| p == f).unwrap().1;
    assert!(why(&planted[0]).contains("not a .tif mask"));
    assert!(why(&planted[2]).contains("does not end in _MA"));
    // The masks that are used are unchanged: IDRiD_03 has no HE mask now.
    let r03 = ds.records.iter().find(|r| r.id == "IDRiD_03").unwrap();
    assert!(r03.masks[1].is_none() && r03.masks[0].is_some());
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `--help` said nothing of what 0 means where 0 is accepted (`--limit 0`, `--stride 0`).
#[test]
fn help_says_what_zero_means_for_every_number_a_data_command_takes() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["extract"],
            &[
                "--patch-size",
                "--stride",
                "--min-lesion-px",
                "--label-region",
                "--black-threshold",
                "--fov-red-threshold",
                "--lesion-per-component",
                "--lesion-max-per-image",
                "--lesion-jitter",
                "--lesion-min-area",
                "--limit",
            ],
        ),
        (&["balance"], &["--healthy-ratio", "--target-factor"]),
        (&["synth"], &["--images"]),
    ];
    for (cmd, flags) in cases {
        let (help, _) = ok(fovea().args(cmd).arg("--help"));
        for flag in flags {
            let at = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{flag}"));
            let end = help[at + 2..]
                .find("\n  -")
                .map_or(help.len(), |e| at + 2 + e);
            let text = help[at..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                text.contains("0 =") || text.contains("0 is refused"),
                "{cmd:?} {flag}: {text}"
            );
        }
    }
}
