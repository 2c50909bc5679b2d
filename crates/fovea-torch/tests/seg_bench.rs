//! `fovea bench seg-train` and `fovea bench seg-map` as `bench/seg.sh` runs them: the lines
//! the script reads (`parameters`, `samples_per_s`, `peak_rss_mib`, `seconds`), and
//! a side that is not a multiple of the encoder's stride refused.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fovea-torch"))
        .args(["--threads", "1", "bench"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `bench seg-map` with its arguments written as one string.
fn seg_map(args: &str) -> (bool, String) {
    let mut all = vec!["seg-map"];
    all.extend(args.split_whitespace());
    bench(&all)
}

/// The number after `key` on its line.
fn field(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no '{key}' line in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn seg_train_prints_the_parameters_and_the_rate() {
    let (ok, text) = bench(&[
        "seg-train",
        "--model",
        "small",
        "--size",
        "32",
        "--batch-size",
        "1",
        "--steps",
        "1",
    ]);
    assert!(ok, "{text}");
    // The count bench/seg_train_reference.py prints for the same model.
    assert_eq!(field(&text, "parameters"), 1_964_148.0);
    assert!(field(&text, "samples_per_s") > 0.0);
    let (ok, text) = bench(&["seg-train", "--model", "resnet18", "--size", "48"]);
    assert!(!ok && text.contains("multiple of 32"), "{text}");
    let (ok, text) = bench(&["seg-train", "--model", "vgg"]);
    assert!(!ok && text.contains("'vgg'"), "{text}");
}

#[test]
fn seg_map_times_a_photograph_in_tiles() {
    let (ok, text) = seg_map("--size 80x48 --tile 32 --overlap 8");
    assert!(ok, "{text}");
    // 3 x 2 tiles (the last column and row moved back to the border); the random
    // photograph is retina everywhere, so none is skipped.
    assert!(
        text.contains("80x48 photograph (random), 6 of 6 tiles of 32x32 at scale 1 (overlap 8;"),
        "{text}"
    );
    assert!(
        text.contains("enhancement local-contrast, channels-last"),
        "{text}"
    );
    assert!(field(&text, "peak_rss_mib") > 0.0);
    assert!(field(&text, "seconds") > 0.0);
    let (ok, text) =
        seg_map("--size 80x48 --tile 32 --overlap 0 --enhance none --channels-last false");
    assert!(ok, "{text}");
    assert!(text.contains("enhancement none, 1 threads"), "{text}");
    assert!(!text.contains("channels-last"), "{text}");
    // At scale 0.5 the tiles are cut from a 80x48 picture of the 160x96 photograph.
    let (ok, text) = seg_map("--size 160x96 --tile 32 --overlap 8 --scale 0.5");
    assert!(ok, "{text}");
    assert!(
        text.contains("160x96 photograph (random), 6 of 6 tiles of 32x32 at scale 0.5"),
        "{text}"
    );
    let (ok, text) = seg_map("--size 80x48 --scale 0");
    assert!(!ok && text.contains("--scale must be in (0, 1]"), "{text}");
    let (ok, text) = seg_map("--size 80 --tile 32");
    assert!(!ok && text.contains("WxH"), "{text}");
    let (ok, text) = seg_map("--size 80x48 --tile 32");
    assert!(
        !ok && text.contains("--overlap must be less than --tile"),
        "{text}"
    );
}
