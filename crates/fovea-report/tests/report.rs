//! The report end to end on a tiny synthetic run: a real patch store (4 synthetic
//! photographs, 32-pixel patches), a hand-written training log, predictions and
//! `metrics.json` computed from them, lesion maps and pixel metrics. The page is parsed
//! with a real HTML parser: every image is an embedded PNG that decodes, nothing points at
//! the network, the sections are there, and the metric table holds metrics.json's numbers.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_metrics::{build_metrics_report, MetricsReport, LESIONS, METRICS_CSV_HEADER};
use fovea_report::{pr_roc_plots, write_report, write_training_curves, ReportInputs};
use fovea_store::extract::NoProgress;
use fovea_store::{extract, ExtractSettings, Store};
use scraper::{ElementRef, Html, Selector};

const THRESHOLDS: [f64; 4] = [0.45, 0.5, 0.55, 0.4];

/// A patch store of 4 synthetic photographs.
fn make_store(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    generate(
        &data,
        &SynthSettings {
            images: 4,
            seed: 1,
            width: 256,
            height: 192,
        },
    )
    .unwrap();
    let mut s = ExtractSettings {
        patch_size: 32,
        stride: 32,
        ..ExtractSettings::default()
    };
    s.lesion_centred.per_component = 1;
    (s.split.train, s.split.val, s.split.test) = (0.5, 0.25, 0.25);
    let store = dir.join("store");
    extract(
        &Dataset::open(&data).unwrap(),
        &s,
        &store,
        false,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    store
}

/// A metrics.csv line.
fn metrics_line(epoch: usize, split: &str, loss: f64, base: f64) -> String {
    let f1 = [base, base * 0.5, base * 1.2, base * 0.3];
    let cols: Vec<String> = [loss, base, base * 0.9, 0.1, 0.6]
        .into_iter()
        .chain(f1)
        .chain(f1.map(|v| v * 0.9))
        .chain(f1.map(|v| v * 1.1))
        .map(|v| v.to_string())
        .collect();
    format!("{epoch},{split},{}", cols.join(","))
}

/// A run folder: config.toml naming `store`, 3 epochs of metrics.csv and val_ranking.csv,
/// thresholds.json.
fn make_run(dir: &Path, store: &Path, epochs: usize) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("config.toml"),
        format!(
            "store = \"{}\"\nmodel = \"cnn\"\nepochs = {epochs}\nseed = 0\n\n[optim]\nlr = 0.001\nschedule = \"cosine\"\n",
            store.display()
        ),
    )
    .unwrap();
    write_logs(&run, epochs);
    run
}

/// metrics.csv, val_ranking.csv and thresholds.json of `epochs` epochs in `run`.
fn write_logs(run: &Path, epochs: usize) {
    let mut csv = format!("{METRICS_CSV_HEADER}\n");
    let mut rank = String::from("epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,prevalence_ma,prevalence_he,prevalence_ex,prevalence_se\n");
    for e in 1..=epochs {
        let t = e as f64 / epochs as f64;
        csv += &(metrics_line(e, "train", 0.4 / e as f64, 0.3 + 0.4 * t) + "\n");
        csv += &(metrics_line(e, "val", 0.45 / e as f64, 0.25 + 0.3 * t) + "\n");
        let se_auroc = if e == 1 {
            "NaN".to_string()
        } else {
            "0.7".into()
        };
        rank += &format!(
            "{e},{},{},{},{},0.8,0.7,0.9,{se_auroc},0.05,0.04,0.08,0.01\n",
            0.2 + 0.1 * t,
            0.3 * t,
            0.5 + 0.2 * t,
            0.05
        );
    }
    std::fs::write(run.join("metrics.csv"), csv).unwrap();
    std::fs::write(run.join("val_ranking.csv"), rank).unwrap();
    std::fs::write(
        run.join("thresholds.json"),
        format!(
            "{{\"MA\": {}, \"HE\": {}, \"EX\": {}, \"SE\": {}}}\n",
            THRESHOLDS[0], THRESHOLDS[1], THRESHOLDS[2], THRESHOLDS[3]
        ),
    )
    .unwrap();
}

/// An evaluation folder: predictions.csv for the store's non-black patches (scores that
/// follow the labels, with noise), metrics.json computed from them, pixel_metrics.json.
fn make_eval(dir: &Path, store: &Path) -> (PathBuf, MetricsReport) {
    let st = Store::open(store).unwrap();
    let eval = dir.join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    let mut csv = String::from("patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se\n");
    let (mut truth, mut probs) = (Vec::new(), Vec::new());
    for r in st.rows.iter().filter(|r| !r.black) {
        let p: [f32; 4] = std::array::from_fn(|c| {
            let noise = ((r.patch * 7919 + c as u64 * 104_729) % 1000) as f32 / 1000.0;
            (0.1 + 0.45 * f32::from(r.labels[c]) + 0.45 * noise).min(1.0)
        });
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.patch,
            r.image_id,
            r.labels[0],
            r.labels[1],
            r.labels[2],
            r.labels[3],
            p[0],
            p[1],
            p[2],
            p[3]
        );
        truth.push(r.labels);
        probs.push(p);
    }
    std::fs::write(eval.join("predictions.csv"), csv).unwrap();
    let report = build_metrics_report(&truth, &probs, THRESHOLDS).unwrap();
    report.write(&eval.join("metrics.json")).unwrap();
    let first = &st.rows[0].image_id;
    std::fs::write(
        eval.join("pixel_metrics.json"),
        format!(
            r#"{{"lesions": ["MA","HE","EX","SE"], "aupr": [0.21, 0.43, 0.654, null], "auroc": [0.9, 0.8, null, 0.7],
                "per_image": [{{"image_id": "{first}", "aupr": [0.1, null, 0.3, 0.4]}}],
                "image_level": {{"auroc": [0.5, null, 1, 0.75], "ap": [1, 0, 1, 0.5], "f1": [1, 0, 1, 0], "positives": [2, 0, 3, 1]}}}}"#
        ),
    )
    .unwrap();
    (eval, report)
}

/// A lesion-map folder with one photograph (and one folder that is not a map).
fn make_maps(dir: &Path, image_id: &str) -> PathBuf {
    let maps = dir.join("maps");
    let one = maps.join(image_id);
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(maps.join("not-a-map")).unwrap();
    let img = image::RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 90]));
    img.save(one.join("overlay.png")).unwrap();
    std::fs::write(
        one.join("summary.json"),
        format!(
            r#"{{"image_id": "{image_id}", "width": 256, "height": 192, "stride": 8,
                "regions": [{{"lesion": "EX", "score": 0.9, "bbox": [1, 2, 3, 4]}}, {{"lesion": "MA", "score": 0.7}}],
                "image_probability": [0.2, 0.1, 0.95, 0.05]}}"#
        ),
    )
    .unwrap();
    maps
}

/// Phrases only a segmentation run's report has.
const SEGMENTATION_WORDING: [&str; 10] = [
    "U-Net",
    "pixel-level segmentation",
    "classifier-only settings",
    "a pixel is predicted positive",
    "best validation mean pixel AUPR",
    "over the pixels of the training tiles",
    "Validation pixel AUPR per lesion",
    "model's own full-resolution probability",
    "highest pixel probability in the field of view",
    "highest pixel probability inside it",
];

/// Phrases of a classifier's report (with a thresholds file, a training log and pixel
/// metrics with image-level presence) that a segmentation run's must not have.
const CLASSIFIER_WORDING: [&str; 6] = [
    "Every resolved setting of the run",
    "a patch is predicted positive",
    "; best validation macro F1 ",
    "Validation average precision per lesion",
    "each pixel taking its heatmap cell's value",
    "highest window probability in the field of view",
];

/// The value of fact `key` in the page's header.
fn header_fact(doc: &Html, key: &str) -> Option<String> {
    let dts: Vec<String> = doc.select(&sel("header dt")).map(text).collect();
    let dds: Vec<String> = doc.select(&sel("header dd")).map(text).collect();
    dts.iter().position(|k| k == key).map(|i| dds[i].clone())
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn text(e: ElementRef) -> String {
    e.text().collect::<String>().trim().to_string()
}

/// The checks every page passes: embedded PNGs that decode, no network reference, no
/// script. Returns the number of images.
fn check_self_contained(doc: &Html) -> usize {
    let mut images = 0;
    for img in doc.select(&sel("img")) {
        let src = img.value().attr("src").expect("an img without src");
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| {
                panic!(
                    "img src is not an embedded PNG: {}",
                    &src[..40.min(src.len())]
                )
            });
        let png = STANDARD.decode(b64).expect("base64");
        image::load_from_memory_with_format(&png, image::ImageFormat::Png).expect("a valid PNG");
        images += 1;
    }
    for e in doc.select(&sel("*")) {
        for (name, value) in e.value().attrs() {
            if matches!(name, "src" | "href" | "xlink:href" | "action" | "poster") {
                assert!(
                    !value.starts_with("http://")
                        && !value.starts_with("https://")
                        && !value.starts_with("//"),
                    "network reference {name}={value}"
                );
            }
        }
    }
    assert_eq!(doc.select(&sel("script")).count(), 0);
    assert_eq!(doc.select(&sel("link")).count(), 0);
    assert_eq!(doc.select(&sel("iframe")).count(), 0);
    images
}

#[test]
fn full_report_is_self_contained_and_holds_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let run = make_run(tmp.path(), &store, 3);
    let (eval, metrics) = make_eval(tmp.path(), &store);
    let first_image = Store::open(&store).unwrap().rows[0].image_id.clone();
    let maps = make_maps(tmp.path(), &first_image);
    let ablation = tmp.path().join("ablation.csv");
    std::fs::write(
        &ablation,
        "variant,macro_f1,note\nbaseline,0.412,\"focal, gamma 2\"\nno augment,0.377,\n",
    )
    .unwrap();
    let inputs = ReportInputs {
        run: run.clone(),
        eval: Some(eval),
        maps: Some(maps),
        store: None, // from config.toml
        ablation: Some(ablation),
    };
    let out = tmp.path().join("out/report.html");
    let summary = write_report(&inputs, &out).unwrap();
    assert_eq!(summary.path, out);
    assert!(
        summary.sections.iter().all(|s| s.shown),
        "{:?}",
        summary.sections
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(summary.bytes, html.len());
    let doc = Html::parse_document(&html);

    // Self-contained: 4 lesions x 3 kinds of up to 12 patches, and the map overlay.
    let images = check_self_contained(&doc);
    assert!(images > 12, "only {images} images");
    assert_eq!(doc.select(&sel(".maps img")).count(), 1);
    // Inline plots: 4 training curves, PR and ROC.
    assert_eq!(doc.select(&sel("figure.plot svg")).count(), 6);

    let headings: Vec<String> = doc.select(&sel("section > h2")).map(text).collect();
    assert_eq!(
        headings,
        [
            "Settings",
            "Dataset composition",
            "Training curves",
            "Test metrics",
            "Precision-recall and ROC curves",
            "Patch galleries",
            "Lesion maps",
            "Ablation"
        ]
    );
    // The table of contents links to each section.
    let toc: Vec<&str> = doc
        .select(&sel("nav.toc a"))
        .filter_map(|a| a.value().attr("href"))
        .collect();
    assert_eq!(toc.len(), 8);
    for href in toc {
        let id = href.trim_start_matches('#');
        assert_eq!(
            doc.select(&sel(&format!("section#{id}"))).count(),
            1,
            "{href}"
        );
    }
    assert!(text(doc.select(&sel("header h1")).next().unwrap()).ends_with("run"));

    // The metric table: one row per lesion, metrics.json's numbers to 3 decimals.
    let rows: Vec<ElementRef> = doc.select(&sel("table.metrics tbody tr")).collect();
    assert_eq!(rows.len(), 4);
    let f = |v: f64| format!("{v:.3}");
    for (c, row) in rows.iter().enumerate() {
        assert_eq!(text(row.select(&sel("th")).next().unwrap()), LESIONS[c]);
        let cells: Vec<String> = row.select(&sel("td")).map(text).collect();
        let (a, t) = (&metrics.fixed, &metrics.tuned);
        let want = vec![
            f(a.thresholds[c]),
            f(a.precision[c]),
            f(a.recall[c]),
            f(a.f1[c]),
            f(t.thresholds[c]),
            f(t.precision[c]),
            f(t.recall[c]),
            f(t.f1[c]),
            f(metrics.average_precision[c]),
            metrics.auroc[c].map_or("\u{2013}".to_string(), f),
        ];
        assert_eq!(cells, want, "{}", LESIONS[c]);
    }
    let agg: Vec<Vec<String>> = doc
        .select(&sel("table.aggregate tbody tr"))
        .map(|r| r.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(
        agg[1],
        [
            "macro F1",
            &f(metrics.fixed.macro_f1),
            &f(metrics.tuned.macro_f1)
        ]
    );

    // Settings, dataset, maps, ablation.
    let settings = text(doc.select(&sel("table.settings")).next().unwrap());
    assert!(
        settings.contains("optim.lr") && settings.contains("0.001"),
        "{settings}"
    );
    let st = Store::open(&store).unwrap();
    let comp: Vec<String> = doc
        .select(&sel("table.composition tbody tr"))
        .next()
        .unwrap()
        .select(&sel("td"))
        .map(text)
        .collect();
    assert_eq!(comp[0], "all");
    let n = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    assert_eq!(n(&comp[2]), st.stats.all.patches);
    assert_eq!(n(&comp[3]), st.stats.all.black);
    assert_eq!(n(&comp[10]), st.stats.all.label_sums[3]);
    let pixel: Vec<Vec<String>> = doc
        .select(&sel("table.pixel tbody tr"))
        .map(|r| r.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(pixel[2], ["EX", "0.654", "0.885", "\u{2013}"]);
    let card = text(doc.select(&sel(".maps figcaption")).next().unwrap());
    assert!(
        card.contains(&first_image) && card.contains("2 detected regions (MA 1, EX 1)"),
        "{card}"
    );
    let abl: Vec<Vec<String>> = doc
        .select(&sel("table.ablation tbody tr"))
        .map(|r| r.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(abl[0], ["baseline", "0.412", "focal, gamma 2"]);

    // Gallery captions: score, photograph, patch id.
    let caption = text(doc.select(&sel(".thumbs figcaption")).next().unwrap());
    assert!(
        caption.contains('#') && st.rows.iter().any(|r| caption.contains(&r.image_id)),
        "{caption}"
    );

    // A classifier's wording, none of a segmentation run's.
    assert_eq!(header_fact(&doc, "model").as_deref(), Some("cnn, 3 epochs"));
    for want in CLASSIFIER_WORDING {
        assert!(html.contains(want), "missing {want:?}");
    }
    for unwanted in SEGMENTATION_WORDING {
        assert!(
            !html.contains(unwanted),
            "a classifier report says {unwanted:?}"
        );
    }
}

#[test]
fn absent_inputs_say_which_command_makes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("bare");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("metrics.csv"),
        format!(
            "{METRICS_CSV_HEADER}\n{}\n",
            metrics_line(1, "train", 0.3, 0.2)
        ),
    )
    .unwrap();
    let out = run.join("report.html");
    let summary = write_report(&ReportInputs::new(&run), &out).unwrap();
    let shown: Vec<&str> = summary
        .sections
        .iter()
        .filter(|s| s.shown)
        .map(|s| s.id)
        .collect();
    assert_eq!(shown, ["training"]);
    let hint = |id: &str| {
        summary
            .sections
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.hint.clone())
            .unwrap()
    };
    assert!(hint("metrics").contains("fovea eval --run"));
    assert!(hint("maps").contains("fovea predict"));
    assert!(hint("dataset").contains("--store"));
    assert!(hint("settings").contains("fovea train"));
    assert!(hint("ablation").contains("--ablation"));
    let doc = Html::parse_document(&std::fs::read_to_string(&out).unwrap());
    check_self_contained(&doc);
    assert_eq!(doc.select(&sel("p.missing")).count(), 7);
    assert_eq!(doc.select(&sel("figure.plot svg")).count(), 3);
}

#[test]
fn malformed_inputs_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let bad = format!(
        "{METRICS_CSV_HEADER}\n{}\n1,val,0.5,0.1\n",
        metrics_line(1, "train", 0.3, 0.2)
    );
    std::fs::write(run.join("metrics.csv"), bad).unwrap();
    let out = tmp.path().join("report.html");
    let e = write_report(&ReportInputs::new(&run), &out)
        .unwrap_err()
        .to_string();
    let metrics = run.join("metrics.csv").display().to_string();
    assert!(e.starts_with(&metrics) && e.contains("line 3"), "{e}");
    assert!(!out.exists());
    let e = write_training_curves(&run).unwrap_err().to_string();
    assert!(e.starts_with(&metrics), "{e}");
    std::fs::write(
        run.join("metrics.csv"),
        format!("{METRICS_CSV_HEADER}\n1,val,zero,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n"),
    )
    .unwrap();
    let e = write_report(&ReportInputs::new(&run), &out)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("{metrics}: line 2: loss: \"zero\" is not a number")
    );

    // Other malformed inputs, and folders given that are not there.
    std::fs::write(run.join("metrics.csv"), format!("{METRICS_CSV_HEADER}\n")).unwrap();
    std::fs::write(run.join("thresholds.json"), "{\"MA\": 1}").unwrap();
    let e = write_report(&ReportInputs::new(&run), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("thresholds.json"), "{e}");
    std::fs::remove_file(run.join("thresholds.json")).unwrap();
    std::fs::write(run.join("config.toml"), "epochs = = 3\n").unwrap();
    let e = write_report(&ReportInputs::new(&run), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.toml: line 1"), "{e}");
    std::fs::remove_file(run.join("config.toml")).unwrap();
    let eval = tmp.path().join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    std::fs::write(eval.join("metrics.json"), "{\"tuned\": 1}").unwrap();
    let inputs = ReportInputs {
        eval: Some(eval.clone()),
        ..ReportInputs::new(&run)
    };
    let e = write_report(&inputs, &out).unwrap_err().to_string();
    assert!(
        e.starts_with(&eval.join("metrics.json").display().to_string()),
        "{e}"
    );
    let inputs = ReportInputs {
        maps: Some(tmp.path().join("nowhere")),
        ..ReportInputs::new(&run)
    };
    let e = write_report(&inputs, &out).unwrap_err().to_string();
    assert!(
        e.contains("nowhere") && e.contains("no lesion-map folder"),
        "{e}"
    );
    let e = write_report(&ReportInputs::new(tmp.path().join("norun")), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("norun: no run folder"), "{e}");
}

#[test]
fn predictions_of_another_store_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let run = make_run(tmp.path(), &store, 1);
    let eval = tmp.path().join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    std::fs::write(
        eval.join("predictions.csv"),
        "patch,image_id,ma,he,ex,se,p_ma,p_he,p_ex,p_se\n0,someone_else,1,0,0,0,0.9,0.1,0.1,0.1\n",
    )
    .unwrap();
    let inputs = ReportInputs {
        eval: Some(eval.clone()),
        ..ReportInputs::new(&run)
    };
    let e = write_report(&inputs, &tmp.path().join("r.html"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&eval.join("predictions.csv").display().to_string())
            && e.contains("another store"),
        "{e}"
    );
}

#[test]
fn training_curves_are_written_as_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), Path::new("/nowhere/store"), 5);
    let files = write_training_curves(&run).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "loss.png",
            "loss.svg",
            "macro_f1.png",
            "macro_f1.svg",
            "per_class_f1.png",
            "per_class_f1.svg",
            "val_ap.png",
            "val_ap.svg"
        ]
    );
    for f in &files {
        assert_eq!(f.parent().unwrap(), run.join("plots"));
        if f.extension().unwrap() == "png" {
            let img = image::open(f).unwrap();
            assert_eq!((img.width(), img.height()), (960, 540), "{}", f.display());
        } else {
            let svg = std::fs::read_to_string(f).unwrap();
            let doc = Html::parse_fragment(&svg);
            let root = doc.select(&sel("svg")).next().expect("an svg element");
            assert_eq!(root.value().attr("width"), Some("960"));
            assert_eq!(root.value().attr("height"), Some("540"));
            assert!(doc.select(&sel("text")).count() > 10, "{}", f.display());
        }
    }
    // The plots folder holds nothing else (no temporary files left).
    assert_eq!(std::fs::read_dir(run.join("plots")).unwrap().count(), 8);

    // One epoch and no val_ranking.csv: three plots.
    let one = tempfile::tempdir().unwrap();
    let run = make_run(one.path(), Path::new("/nowhere/store"), 1);
    std::fs::remove_file(run.join("val_ranking.csv")).unwrap();
    assert_eq!(write_training_curves(&run).unwrap().len(), 6);
    assert!(write_training_curves(&one.path().join("nothing")).is_err());
}

#[test]
fn pr_roc_legends_agree_with_metrics_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let (eval, metrics) = make_eval(tmp.path(), &store);
    let plots = pr_roc_plots(&eval.join("predictions.csv")).unwrap();
    for (c, curve) in plots.curves.iter().enumerate() {
        assert_eq!(curve.lesion, LESIONS[c]);
        assert_eq!(curve.ap, metrics.average_precision[c]);
        assert_eq!(curve.auroc, metrics.auroc[c]);
        if curve.positives > 0 {
            let label = format!("{}  AP {:.3}", LESIONS[c], metrics.average_precision[c]);
            assert!(plots.pr.svg.contains(&label), "{label}");
        }
    }
    for png in [&plots.pr.png, &plots.roc.png] {
        let img = image::load_from_memory(png).unwrap();
        assert_eq!((img.width(), img.height()), (960, 540));
    }
}

#[test]
fn a_run_of_an_ablation_shows_the_ablation_table_untold() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let made = make_run(tmp.path(), &store, 2);
    let abl = tmp.path().join("abl");
    std::fs::create_dir_all(abl.join("runs")).unwrap();
    let run = abl.join("runs/patch-seed1");
    std::fs::rename(&made, &run).unwrap();
    std::fs::write(
        abl.join("ablation.csv"),
        "variant,encoder,seed,macro_f1,image_ap_se\npatch,-,1,0.100,NaN\nconcat,resnet18,1,0.120,0.5\n",
    )
    .unwrap();
    let out = tmp.path().join("report.html");
    let summary = write_report(&ReportInputs::new(&run), &out).unwrap();
    assert!(summary
        .sections
        .iter()
        .any(|s| s.id == "ablation" && s.shown));
    let doc = Html::parse_document(&std::fs::read_to_string(&out).unwrap());
    let rows: Vec<Vec<String>> = doc
        .select(&sel("table.ablation tbody tr"))
        .map(|r| r.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(rows[1], ["concat", "resnet18", "1", "0.120", "0.5"]);
    // A run elsewhere does not pick up a stray table.
    let lone = tmp.path().join("lone");
    std::fs::rename(&run, &lone).unwrap();
    let summary = write_report(&ReportInputs::new(&lone), &out).unwrap();
    assert!(summary
        .sections
        .iter()
        .any(|s| s.id == "ablation" && !s.shown));
}

/// A segmentation run's config.toml as `fovea train --task segmentation` writes it: every
/// resolved setting, the classifier's unused ones included.
fn seg_config(store: &Path, epochs: usize) -> String {
    format!(
        r#"store = "{}"
model = "resnet18"
pool = "avg"
amp = "off"
epochs = {epochs}
batch_size = 64
seed = 0
device = "cpu"
threads = 2
channels_last = false
patience = 0
task = "segmentation"

[optim]
lr = 0.001
schedule = "cosine"

[loss]
kind = "focal"
gamma = 2.0

[augment]
flip = true

[data]
balance = "none"
workers = 1

[context]
scale = 0

[segmentation]
encoder = "small"
val_images = 3

[segmentation.tiles]
side = 256
batch_size = 4

[segmentation.loss]
pixel = "bce"
dice_weight = 1.0

[segmentation.infer]
tile = 512
overlap = 64
"#,
        store.display()
    )
}

/// A segmentation run of 4 epochs: config.toml, the logs of [`write_logs`] (macro F1
/// best at epoch 4) and a val_ranking.csv whose mean pixel AUPR is best at epoch 2 (mean
/// 0.45), lower at 1 and 3, and not finite at 4.
fn make_seg_run(dir: &Path, store: &Path) -> PathBuf {
    let run = dir.join("segrun");
    std::fs::create_dir_all(&run).unwrap();
    write_logs(&run, 4);
    std::fs::write(run.join("config.toml"), seg_config(store, 4)).unwrap();
    std::fs::write(
        run.join("val_ranking.csv"),
        "epoch,ap_ma,ap_he,ap_ex,ap_se,auroc_ma,auroc_he,auroc_ex,auroc_se,prevalence_ma,prevalence_he,prevalence_ex,prevalence_se\n\
         1,0.1,0.2,0.3,0.4,0.9,0.9,0.9,0.9,0.001,0.002,0.01,0.003\n\
         2,0.3,0.4,0.5,0.6,0.9,0.9,0.9,0.9,0.001,0.002,0.01,0.003\n\
         3,0.2,0.3,0.5,0.4,0.9,0.9,0.9,0.9,0.001,0.002,0.01,0.003\n\
         4,0.9,0.9,0.9,NaN,0.9,0.9,0.9,NaN,0.001,0.002,0.01,0\n",
    )
    .unwrap();
    run
}

/// The `p.note` paragraphs of section `id`, joined.
fn notes(doc: &Html, id: &str) -> String {
    doc.select(&sel(&format!("section#{id} p.note")))
        .map(text)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn a_segmentation_run_is_reported_over_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let run = make_seg_run(tmp.path(), &store);
    let (eval, _) = make_eval(tmp.path(), &store);
    let inputs = ReportInputs {
        eval: Some(eval),
        ..ReportInputs::new(&run)
    };
    let out = tmp.path().join("seg.html");
    let summary = write_report(&inputs, &out).unwrap();
    for id in ["settings", "training", "metrics", "maps"] {
        assert!(
            summary.sections.iter().any(|s| s.id == id && s.shown),
            "{id}: {:?}",
            summary.sections
        );
    }
    let html = std::fs::read_to_string(&out).unwrap();
    let doc = Html::parse_document(&html);
    check_self_contained(&doc);

    // Header: the U-Net and its encoder, not the classifier's unused `model`.
    assert_eq!(
        header_fact(&doc, "model").as_deref(),
        Some("U-Net (small encoder), pixel-level segmentation, 4 epochs")
    );

    // Settings: the common and segmentation keys, none of the classifier-only ones.
    let keys: Vec<String> = doc
        .select(&sel("table.settings tbody tr td:first-child"))
        .map(text)
        .collect();
    assert_eq!(
        keys,
        [
            "amp",
            "channels_last",
            "device",
            "epochs",
            "patience",
            "seed",
            "store",
            "task",
            "threads",
            "optim.lr",
            "optim.schedule",
            "segmentation.encoder",
            "segmentation.val_images",
            "segmentation.infer.overlap",
            "segmentation.infer.tile",
            "segmentation.loss.dice_weight",
            "segmentation.loss.pixel",
            "segmentation.tiles.batch_size",
            "segmentation.tiles.side",
        ]
    );
    let settings = notes(&doc, "settings");
    assert!(
        settings.contains("classifier-only settings")
            && settings.contains("are not used by the U-Net and not shown"),
        "{settings}"
    );
    assert!(
        settings.contains(
            "a pixel is predicted positive when its probability is at least the threshold"
        ) && !settings.contains("a patch is predicted"),
        "{settings}"
    );

    // Training: over pixels, best mean pixel AUPR at epoch 2 (not macro F1's epoch 4, not
    // the epoch of a NaN mean).
    let training = notes(&doc, "training");
    for want in [
        "best validation mean pixel AUPR 0.450 at epoch 2 (the model kept)",
        "best validation pixel macro F1 0.495 at epoch 4",
        "F1 at threshold 0.5 over the pixels of the training tiles (train) and over every pixel of the validation photographs (validation)",
        "the validation AP curve is the pixel AUPR per lesion",
    ] {
        assert!(training.contains(want), "missing {want:?} in {training}");
    }
    let svgs = doc
        .select(&sel("section#training figure.plot svg"))
        .map(|e| e.html())
        .collect::<String>();
    assert!(svgs.contains("Validation pixel AUPR per lesion"));
    assert!(svgs.contains("Pixel macro F1 by epoch (threshold 0.5)"));
    assert!(!svgs.contains("Validation average precision per lesion"));

    // Pixel level: the model's own probabilities, the highest pixel for the photograph.
    let maps = notes(&doc, "maps");
    assert!(
        maps.contains("each pixel scored with the model's own full-resolution probability")
            && maps.contains("the highest pixel probability in the field of view"),
        "{maps}"
    );
    assert!(
        !maps.contains("heatmap cell") && !maps.contains("window"),
        "{maps}"
    );

    // Test metrics: how the patches were scored.
    let metrics = notes(&doc, "metrics");
    assert!(
        metrics.contains("scores each patch by the highest pixel probability inside it")
            && metrics.contains("compare with a patch classifier's on the same patches"),
        "{metrics}"
    );

    for unwanted in CLASSIFIER_WORDING {
        assert!(
            !html.contains(unwanted),
            "a segmentation report says {unwanted:?}"
        );
    }
    for want in SEGMENTATION_WORDING {
        assert!(html.contains(want), "missing {want:?}");
    }

    // The training's own plots are titled the same way.
    write_training_curves(&run).unwrap();
    let val_ap = std::fs::read_to_string(run.join("plots/val_ap.svg")).unwrap();
    assert!(val_ap.contains("Validation pixel AUPR per lesion"));
}

#[test]
fn a_run_that_says_task_classifier_reads_as_a_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let store = make_store(tmp.path());
    let run = make_seg_run(tmp.path(), &store);
    let (eval, _) = make_eval(tmp.path(), &store);
    let config = seg_config(&store, 4).replace("task = \"segmentation\"", "task = \"classifier\"");
    std::fs::write(run.join("config.toml"), config).unwrap();
    let inputs = ReportInputs {
        eval: Some(eval),
        ..ReportInputs::new(&run)
    };
    let out = tmp.path().join("cls.html");
    write_report(&inputs, &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    let doc = Html::parse_document(&html);
    assert_eq!(
        header_fact(&doc, "model").as_deref(),
        Some("resnet18, 4 epochs")
    );
    let keys: Vec<String> = doc
        .select(&sel("table.settings tbody tr td:first-child"))
        .map(text)
        .collect();
    for k in [
        "model",
        "pool",
        "batch_size",
        "loss.kind",
        "augment.flip",
        "data.workers",
        "context.scale",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }
    for want in CLASSIFIER_WORDING {
        assert!(html.contains(want), "missing {want:?}");
    }
    for unwanted in SEGMENTATION_WORDING {
        assert!(
            !html.contains(unwanted),
            "a classifier report says {unwanted:?}"
        );
    }
    write_training_curves(&run).unwrap();
    let val_ap = std::fs::read_to_string(run.join("plots/val_ap.svg")).unwrap();
    assert!(val_ap.contains("Validation average precision per lesion"));
}
