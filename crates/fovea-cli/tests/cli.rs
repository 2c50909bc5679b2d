//! The `fovea` command line end to end: synth -> extract -> stats -> balance on a few small
//! synthetic photographs, and the one-line errors a user sees for bad input.

use std::path::Path;

use assert_cmd::Command;

fn fovea() -> Command {
    let mut c = Command::cargo_bin("fovea").unwrap();
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command expected to fail; returns its stderr, checked to be one line.
fn error(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line reason, got: {err}");
    err
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn synth_extract_stats_balance() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    stdout(fovea().args([
        "synth",
        "--out",
        p(&data),
        "--images",
        "6",
        "--seed",
        "3",
        "--size",
        "384x256",
    ]));
    assert!(data.join("manifest.csv").is_file());
    let out = stdout(fovea().args([
        "extract",
        "--dataset",
        p(&data),
        "--out",
        p(&store),
        "--patch-size",
        "32",
        "--stride",
        "32",
        "--min-lesion-px",
        "1",
        "--lesion-per-component",
        "1",
    ]));
    assert!(
        out.contains("Healthy patches:") && out.contains("of those 'black':"),
        "{out}"
    );
    for f in ["patches.npy", "index.csv", "stats.json", "extract.toml"] {
        assert!(store.join(f).is_file(), "{f} missing");
    }
    // stats --json agrees with stats.json's counts.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(fovea().args(["stats", p(&store), "--json"]))).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("stats.json")).unwrap()).unwrap();
    for k in [
        "patches",
        "images",
        "healthy",
        "black",
        "lesion",
        "label_sums",
    ] {
        assert_eq!(json[k], file[k], "{k}");
    }
    assert_eq!(json["images"], 6);
    let text = stdout(fovea().args(["stats", p(&store)]));
    assert!(
        text.contains("Split 'train'")
            && text.contains("Label sums:")
            && text.contains("Co-occurrence")
    );

    // Report balancing: only non-black train patches; 2x as many healthy as lesion ones.
    let subset = tmp.path().join("subset.csv");
    let out = stdout(fovea().args([
        "balance",
        p(&store),
        "--policy",
        "report",
        "--healthy-ratio",
        "2",
        "--seed",
        "1",
        "--out",
        p(&subset),
    ]));
    assert!(
        out.contains("Before balancing") && out.contains("After balancing"),
        "{out}"
    );
    let index = std::fs::read_to_string(store.join("index.csv")).unwrap();
    let rows: Vec<Vec<&str>> = index
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let ids: Vec<usize> = std::fs::read_to_string(&subset)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(!ids.is_empty());
    let (mut lesion, mut healthy) = (0, 0);
    for &i in &ids {
        let r = &rows[i];
        assert_eq!(r[2], "train");
        assert_eq!(r[16], "0", "black patch {i} in the subset");
        if r[7..11].contains(&"1") {
            lesion += 1
        } else {
            healthy += 1
        }
    }
    let available = rows
        .iter()
        .filter(|r| r[2] == "train" && r[16] == "0" && !r[7..11].contains(&"1"))
        .count();
    assert_eq!(
        healthy,
        (2 * lesion).min(available),
        "{healthy} healthy, {lesion} lesion"
    );
    // Same seed, same subset.
    let again = tmp.path().join("again.csv");
    stdout(fovea().args(["balance", p(&store), "--seed", "1", "--out", p(&again)]));
    assert_eq!(
        std::fs::read(&subset).unwrap(),
        std::fs::read(&again).unwrap()
    );
    // Weighted sampling keeps every non-black train patch.
    let w = tmp.path().join("weights.csv");
    stdout(fovea().args(["balance", p(&store), "--policy", "weighted", "--out", p(&w)]));
    let n_usable = rows
        .iter()
        .filter(|r| r[2] == "train" && r[16] == "0")
        .count();
    assert_eq!(
        std::fs::read_to_string(&w).unwrap().lines().count() - 1,
        n_usable
    );
}

#[test]
fn bad_input_gives_a_one_line_reason_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let e = error(fovea().args([
        "extract",
        "--dataset",
        p(&missing),
        "--out",
        p(&tmp.path().join("s")),
    ]));
    assert!(e.contains("nowhere"), "{e}");
    let e = error(fovea().args(["synth", "--out", p(&tmp.path().join("d")), "--size", "big"]));
    assert!(e.contains("--size"), "{e}");
    // A manifest row pointing nowhere.
    let d = tmp.path().join("broken");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("manifest.csv"),
        "id,image,ma,he,ex,se\nA,a.jpg,,,,\n",
    )
    .unwrap();
    let e = error(fovea().args([
        "extract",
        "--dataset",
        p(&d),
        "--out",
        p(&tmp.path().join("s")),
    ]));
    assert!(e.contains("manifest.csv") && e.contains("a.jpg"), "{e}");
    // A config file with a typo.
    let cfg = tmp.path().join("x.toml");
    std::fs::write(&cfg, "patch_sise = 64\n").unwrap();
    let e = error(fovea().args([
        "extract",
        "--dataset",
        p(&d),
        "--out",
        p(&tmp.path().join("s")),
        "--config",
        p(&cfg),
    ]));
    assert!(e.contains("x.toml") && e.contains("patch_sise"), "{e}");
    // An invalid setting.
    let e = error(fovea().args([
        "extract",
        "--dataset",
        p(&d),
        "--out",
        p(&tmp.path().join("s")),
        "--black-threshold",
        "2",
    ]));
    assert!(e.contains("black.fov_threshold"), "{e}");
    // Not a store.
    let e = error(fovea().args(["stats", p(&missing)]));
    assert!(e.contains("nowhere") && e.contains("fovea extract"), "{e}");
}

#[test]
fn existing_store_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    stdout(fovea().args([
        "synth",
        "--out",
        p(&data),
        "--images",
        "2",
        "--size",
        "128x96",
    ]));
    let args = [
        "extract",
        "--dataset",
        p(&data),
        "--out",
        p(&store),
        "--patch-size",
        "32",
        "--stride",
        "32",
    ];
    stdout(fovea().args(args));
    let e = error(fovea().args(args));
    assert!(e.contains("--force"), "{e}");
    stdout(fovea().args(args).arg("--force"));
}

#[test]
fn help_explains_settings_with_defaults() {
    let h = stdout(fovea().args(["extract", "--help"]));
    for s in [
        "--patch-size",
        "--stride",
        "--min-lesion-px",
        "--label-region",
        "--black-threshold",
        "[default: 128]",
        "--lesion-per-component",
        "--split-file",
    ] {
        assert!(h.contains(s), "extract --help lacks {s}");
    }
}

#[test]
fn report_writes_one_page_or_fails_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let header = "epoch,split,loss,micro_f1,macro_f1,hamming,subset_acc,f1_ma,f1_he,f1_ex,f1_se,precision_ma,precision_he,precision_ex,precision_se,recall_ma,recall_he,recall_ex,recall_se";
    let row = |split: &str| {
        format!("1,{split},0.3,0.2,0.1,0.05,0.8,0.1,0.2,0.3,0.4,0.1,0.2,0.3,0.4,0.1,0.2,0.3,0.4")
    };
    std::fs::write(
        run.join("metrics.csv"),
        format!("{header}\n{}\n{}\n", row("train"), row("val")),
    )
    .unwrap();
    let out = stdout(fovea().args(["report", "--run", p(&run), "--plots"]));
    let page = run.join("report.html");
    assert!(
        out.trim_end()
            .ends_with(&format!("wrote {}", page.display())),
        "{out}"
    );
    assert!(out.contains("no input for 'Test metrics'"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("Training curves"));
    assert!(run.join("plots/loss.png").is_file() && run.join("plots/per_class_f1.svg").is_file());

    let elsewhere = tmp.path().join("pages/r.html");
    stdout(fovea().args(["report", "--run", p(&run), "--out", p(&elsewhere)]));
    assert!(elsewhere.is_file());

    std::fs::write(run.join("metrics.csv"), format!("{header}\n1,val,x\n")).unwrap();
    // RUN/report.html exists now: replacing it takes --force.
    let e = error(fovea().args(["report", "--run", p(&run), "--force"]));
    assert!(e.contains("metrics.csv") && e.contains("line 2"), "{e}");
    let e = error(fovea().args(["report", "--run", p(&tmp.path().join("none"))]));
    assert!(e.contains("no run folder"), "{e}");
    let e = error(fovea().args([
        "report",
        "--run",
        p(&run),
        "--eval",
        p(&tmp.path().join("none")),
        "--force",
    ]));
    assert!(e.contains("no evaluation folder"), "{e}");

    let h = stdout(fovea().args(["report", "--help"]));
    for s in [
        "--run",
        "--eval",
        "--maps",
        "--store",
        "--ablation",
        "--out",
        "--plots",
        "RUN/report.html",
        "RUN/config.toml",
    ] {
        assert!(h.contains(s), "report --help lacks {s}");
    }
}
