//! Integration tests of patch extraction and the patch store (CONTRACTS 2).
//!
//! - Real IDRiD photographs (`shared/data`, skipped with a message when absent): a grid
//!   extraction's `*_px` columns equal counts computed independently from the PNG masks,
//!   the patches equal crops of the independently decoded photograph, and the TIFF masks of
//!   IDRiD's download layout give the same labels as the PNG manifest.
//! - Synthetic datasets: lesion-centred patches hold their lesion, reruns are identical,
//!   selection, interruption, `--force`, damaged stores, and settings fuzzing.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::testdata::{idrid_original_layout, idrid_sample};
use fovea_data::{Dataset, Split};
use fovea_store::extract::{NoProgress, Progress};
use fovea_store::index::PatchKind;
use fovea_store::{extract, ExtractSettings, Store, StoreError};
use proptest::prelude::*;

fn run(
    ds: &Dataset,
    s: &ExtractSettings,
    out: &Path,
) -> fovea_store::Result<fovea_store::extract::ExtractOutcome> {
    extract(ds, s, out, false, &NoProgress, &AtomicBool::new(false))
}

fn synth(dir: &Path, images: usize, seed: u64) -> Dataset {
    generate(
        dir,
        &SynthSettings {
            images,
            seed,
            width: 320,
            height: 240,
        },
    )
    .unwrap();
    Dataset::open(dir).unwrap()
}

/// Lesion pixels of `mask` (decoded independently with the image crate) in a window.
fn window_count(mask: &image::GrayImage, x: u32, y: u32, p: u32) -> u32 {
    let mut n = 0;
    for yy in y..y + p {
        for xx in x..x + p {
            n += u32::from(mask.get_pixel(xx, yy).0[0] != 0);
        }
    }
    n
}

#[test]
fn idrid_grid_px_columns_match_independent_counts() {
    let Some(sample) = idrid_sample() else { return };
    let dataset = Dataset::open(&sample).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = ExtractSettings {
        patch_size: 128,
        stride: 160,
        ..Default::default()
    };
    s.select.ids = vec!["IDRiD_03".into(), "IDRiD_81".into()];
    let out = tmp.path().join("store");
    run(&dataset, &s, &out).unwrap();
    let store = Store::open(&out).unwrap();
    // 4288 x 2848, P = 128, S = 160: 27 x 18 per image.
    assert_eq!(store.rows.len(), 2 * 27 * 18);
    for id in ["IDRiD_03", "IDRiD_81"] {
        let rec = dataset.records.iter().find(|r| r.id == id).unwrap();
        let photo = image::open(&rec.image).unwrap().to_rgb8();
        let masks: Vec<Option<image::GrayImage>> = rec
            .masks
            .iter()
            .map(|m| m.as_ref().map(|p| image::open(p).unwrap().to_luma8()))
            .collect();
        let rows: Vec<_> = store.rows.iter().filter(|r| r.image_id == id).collect();
        for r in &rows {
            for (i, m) in masks.iter().enumerate() {
                let expect = m.as_ref().map_or(0, |m| window_count(m, r.x, r.y, 128));
                assert_eq!(
                    r.px[i], expect,
                    "{id} patch {} ({}, {}) lesion {i}",
                    r.patch, r.x, r.y
                );
                assert_eq!(r.labels[i], u8::from(expect >= 1));
            }
            if r.black {
                assert!(r.fov_frac < 0.5 && r.px.iter().all(|&v| v == 0));
            }
        }
        // Patches are crops of the photograph: spot-check every 50th.
        for r in rows.iter().step_by(50) {
            let bytes = store.patches.patch(r.patch as usize).unwrap();
            let crop = image::imageops::crop_imm(&photo, r.x, r.y, 128, 128).to_image();
            assert_eq!(bytes, crop.as_raw().as_slice(), "{id} patch {}", r.patch);
        }
        // The field of view: the corners are outside, the centre inside.
        let first = rows.first().unwrap();
        assert!(first.black && first.fov_frac == 0.0);
        let centre = rows
            .iter()
            .find(|r| r.x <= 2144 && r.x + 128 > 2144 && r.y <= 1500 && r.y + 128 > 1500)
            .unwrap();
        assert_eq!(centre.fov_frac, 1.0);
    }
}

#[test]
fn idrid_download_layout_gives_the_same_store_as_the_manifest() {
    let (Some(orig), Some(sample)) = (idrid_original_layout(), idrid_sample()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = ExtractSettings {
        patch_size: 256,
        stride: 256,
        ..Default::default()
    };
    let a = Dataset::open(&orig).unwrap();
    run(&a, &s, &tmp.path().join("a")).unwrap();
    let mut s2 = s.clone();
    s2.select.ids = vec!["IDRiD_03".into(), "IDRiD_43".into(), "IDRiD_81".into()];
    let b = Dataset::open(&sample).unwrap();
    run(&b, &s2, &tmp.path().join("b")).unwrap();
    let (a, b) = (
        Store::open(&tmp.path().join("a")).unwrap(),
        Store::open(&tmp.path().join("b")).unwrap(),
    );
    assert_eq!(a.rows.len(), b.rows.len());
    for (ra, rb) in a.rows.iter().zip(&b.rows) {
        assert_eq!(
            (&ra.image_id, ra.x, ra.y, ra.labels, ra.px, ra.black),
            (&rb.image_id, rb.x, rb.y, rb.labels, rb.px, rb.black)
        );
    }
    // IDRiD's own split: 03 and 43 train (or val, carved from train), 81 test.
    assert!(a
        .rows
        .iter()
        .filter(|r| r.image_id == "IDRiD_81")
        .all(|r| r.split == Split::Test));
    assert!(a
        .rows
        .iter()
        .filter(|r| r.image_id != "IDRiD_81")
        .all(|r| r.split != Split::Test));
    // Every lesion pixel of IDRiD_81's EX mask (RGBA TIFF) inside the grid is counted.
    let ex: u64 = a
        .rows
        .iter()
        .filter(|r| r.image_id == "IDRiD_81")
        .map(|r| r.px[2] as u64)
        .sum();
    assert!(ex > 250_000 && ex <= 312_918, "{ex}");
}

#[test]
fn lesion_centred_patches_hold_their_lesion() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 4, 3);
    let mut s = ExtractSettings {
        patch_size: 32,
        stride: 32,
        grid: false,
        ..Default::default()
    };
    s.lesion_centred.per_component = 2;
    s.lesion_centred.jitter = 8;
    s.lesion_centred.max_per_image = 10;
    let out = tmp.path().join("store");
    run(&ds, &s, &out).unwrap();
    let store = Store::open(&out).unwrap();
    assert!(!store.rows.is_empty());
    let mut per: std::collections::HashMap<(String, fovea_data::Lesion), usize> =
        Default::default();
    for r in &store.rows {
        assert_eq!(r.kind, PatchKind::Lesion);
        let l = r.centred_on.unwrap();
        assert_eq!(
            r.labels[l.index()],
            1,
            "patch {} centred on {l} lacks it",
            r.patch
        );
        assert!(!r.black);
        assert!(r.x + 32 <= 320 && r.y + 32 <= 240);
        *per.entry((r.image_id.clone(), l)).or_default() += 1;
    }
    assert!(per.values().all(|&n| n <= 10), "{per:?}");
}

#[test]
fn reruns_are_identical_and_seeds_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 3, 5);
    let mut s = ExtractSettings {
        patch_size: 32,
        stride: 48,
        ..Default::default()
    };
    s.lesion_centred.per_component = 1;
    for name in ["a", "b"] {
        run(&ds, &s, &tmp.path().join(name)).unwrap();
    }
    s.seed = 9;
    run(&ds, &s, &tmp.path().join("c")).unwrap();
    let read = |n: &str, f: &str| std::fs::read(tmp.path().join(n).join(f)).unwrap();
    for f in ["patches.npy", "index.csv", "stats.json", "extract.toml"] {
        assert_eq!(
            read("a", f),
            read("b", f),
            "{f} differs between identical runs"
        );
    }
    assert_ne!(read("a", "index.csv"), read("c", "index.csv"));
    // extract.toml alone re-runs the extraction bit for bit.
    let again = ExtractSettings::from_toml_file(&tmp.path().join("a/extract.toml")).unwrap();
    let ds2 = Dataset::open(again.dataset.as_ref().unwrap()).unwrap();
    run(&ds2, &again, &tmp.path().join("d")).unwrap();
    assert_eq!(read("a", "patches.npy"), read("d", "patches.npy"));
    assert_eq!(read("a", "index.csv"), read("d", "index.csv"));
}

#[test]
fn enhanced_stores_hold_crops_of_the_enhanced_photograph_with_the_same_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 2, 3);
    let plain = ExtractSettings {
        patch_size: 32,
        stride: 32,
        ..Default::default()
    };
    let enhanced = ExtractSettings {
        enhance: fovea_data::Enhance::LocalContrast,
        ..plain.clone()
    };
    run(&ds, &plain, &tmp.path().join("plain")).unwrap();
    run(&ds, &enhanced, &tmp.path().join("enh")).unwrap();
    let a = Store::open(&tmp.path().join("plain")).unwrap();
    let b = Store::open(&tmp.path().join("enh")).unwrap();
    // Same patches, same labels: only the pixels change.
    assert_eq!(a.rows, b.rows);
    let again = ExtractSettings::from_toml_file(&tmp.path().join("enh/extract.toml")).unwrap();
    assert_eq!(again.enhance, fovea_data::Enhance::LocalContrast);
    // Each patch is a crop of the photograph enhanced independently.
    let rec = &ds.records[0];
    let rgb = fovea_data::read_rgb(&rec.image).unwrap();
    let fov = fovea_data::fov_grid(&rgb, &enhanced.fov);
    let full = fovea_data::contrast::local_contrast(&rgb, &fov);
    let view = b.patches.view().unwrap();
    let plain_view = a.patches.view().unwrap();
    let mut differ = 0;
    for row in b.rows.iter().filter(|r| r.image_id == rec.id) {
        let patch = view.index_axis(ndarray::Axis(0), row.patch as usize);
        for y in 0..32u32 {
            for x in 0..32u32 {
                let px = full.get_pixel(row.x + x, row.y + y).0;
                for c in 0..3 {
                    assert_eq!(patch[[y as usize, x as usize, c]], px[c]);
                }
            }
        }
        let plain_patch = plain_view.index_axis(ndarray::Axis(0), row.patch as usize);
        differ += usize::from(plain_patch != patch);
    }
    assert!(differ > 0, "enhancement changed no patch");
}

#[test]
fn every_patch_of_an_image_shares_its_split() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 7, 2);
    let out = tmp.path().join("store");
    run(
        &ds,
        &ExtractSettings {
            patch_size: 64,
            stride: 64,
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    let store = Store::open(&out).unwrap();
    let mut seen: std::collections::HashMap<&str, Split> = Default::default();
    for r in &store.rows {
        assert_eq!(
            *seen.entry(&r.image_id).or_insert(r.split),
            r.split,
            "{} is in two splits",
            r.image_id
        );
    }
    let splits: std::collections::HashSet<Split> = seen.values().copied().collect();
    assert_eq!(splits.len(), 3, "7 images give train, val and test");
    // Selecting a split extracts only its images, with the same splits.
    let mut s = ExtractSettings {
        patch_size: 64,
        stride: 64,
        ..Default::default()
    };
    s.select.splits = vec![Split::Test];
    let out2 = tmp.path().join("test-only");
    run(&ds, &s, &out2).unwrap();
    let t = Store::open(&out2).unwrap();
    assert!(
        !t.rows.is_empty()
            && t.rows
                .iter()
                .all(|r| seen[r.image_id.as_str()] == Split::Test)
    );
}

struct CancelAfter<'a>(&'a AtomicBool);
impl Progress for CancelAfter<'_> {
    fn advance(&self, _n: u64) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn interrupted_runs_leave_no_store_and_restart_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 12, 1);
    let s = ExtractSettings {
        patch_size: 64,
        stride: 64,
        ..Default::default()
    };
    let out = tmp.path().join("store");
    let cancel = AtomicBool::new(false);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let e = pool
        .install(|| extract(&ds, &s, &out, false, &CancelAfter(&cancel), &cancel))
        .unwrap_err();
    assert!(matches!(e, StoreError::Interrupted), "{e}");
    assert!(!out.exists());
    assert!(!tmp.path().join(".store.partial").exists());
    // A stale partial folder (a killed run) is cleaned up by the next run.
    std::fs::create_dir_all(tmp.path().join(".store.partial")).unwrap();
    std::fs::write(tmp.path().join(".store.partial/patches.npy"), b"junk").unwrap();
    let err = Store::open(&out).err().unwrap().to_string();
    assert!(err.contains("interrupted"), "{err}");
    run(&ds, &s, &out).unwrap();
    assert!(!tmp.path().join(".store.partial").exists());
    Store::open(&out).unwrap();
    // An existing store is kept unless forced.
    let e = run(&ds, &s, &out).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Output(fovea_store::output::OutputError::Exists { .. })
        ) && e.to_string().contains("--force")
    );
    extract(&ds, &s, &out, true, &NoProgress, &AtomicBool::new(false)).unwrap();
    Store::open(&out).unwrap();
}

#[test]
fn damaged_stores_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synth(&tmp.path().join("data"), 2, 4);
    let s = ExtractSettings {
        patch_size: 32,
        stride: 64,
        ..Default::default()
    };
    let good = tmp.path().join("good");
    run(&ds, &s, &good).unwrap();
    let copy = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["patches.npy", "index.csv", "stats.json", "extract.toml"] {
            std::fs::copy(good.join(f), d.join(f)).unwrap();
        }
        d
    };
    let d = copy("truncated");
    let npy = std::fs::read(d.join("patches.npy")).unwrap();
    std::fs::write(d.join("patches.npy"), &npy[..npy.len() - 100]).unwrap();
    assert!(Store::open(&d)
        .err()
        .unwrap()
        .to_string()
        .contains("patches.npy"));
    let d = copy("short-index");
    let idx = std::fs::read_to_string(d.join("index.csv")).unwrap();
    let lines: Vec<&str> = idx.lines().collect();
    std::fs::write(d.join("index.csv"), lines[..lines.len() - 1].join("\n")).unwrap();
    let e = Store::open(&d).err().unwrap().to_string();
    assert!(e.contains("patches.npy") && e.contains("index.csv"), "{e}");
    let d = copy("missing");
    std::fs::remove_file(d.join("stats.json")).unwrap();
    assert!(Store::open(&d)
        .err()
        .unwrap()
        .to_string()
        .contains("stats.json is missing"));
    let d = copy("bad-toml");
    std::fs::write(d.join("extract.toml"), "patch_size = 'big'\n").unwrap();
    assert!(Store::open(&d)
        .err()
        .unwrap()
        .to_string()
        .contains("extract.toml"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// No settings file, however malformed, panics the parser or the validation.
    #[test]
    fn settings_toml_never_panics(text in "\\PC{0,200}", key in "(patch_size|stride|seed|grid|\\[label\\]|\\[split\\]|region|train|val)", v in "-?[0-9]{0,12}(\\.[0-9]{0,3})?|'[a-z]{0,5}'|true|\\[\\]") {
        let doc = format!("{text}\n{key} = {v}\n");
        if let Ok(s) = toml::from_str::<ExtractSettings>(&doc) {
            let _ = s.validate();
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(&p, &doc).unwrap();
        if let Err(e) = ExtractSettings::from_toml_file(&p) {
            prop_assert!(e.to_string().contains("x.toml"));
        }
    }
}
