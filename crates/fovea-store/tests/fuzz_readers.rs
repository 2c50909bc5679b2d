//! Property tests of the patch-store readers: a whole store (`index.csv`, `stats.json`,
//! `extract.toml`, `patches.npy`) with one file replaced by random bytes or by a mutation of
//! the valid file, and the settings, split and subset files alone, give an `Err` (or a
//! valid result), never a panic. A small store and a few hundred cases per file.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::Dataset;
use fovea_store::balance::read_subset;
use fovea_store::extract::NoProgress;
use fovea_store::index::read_index;
use fovea_store::npy::NpyPatches;
use fovea_store::split::read_split_file;
use fovea_store::{extract, ExtractSettings, Store};
use proptest::prelude::*;

const FILES: [&str; 4] = ["index.csv", "stats.json", "extract.toml", "patches.npy"];

/// A valid store of two 64x64 photographs, built once: the files' bytes.
fn valid_store() -> &'static Vec<(&'static str, Vec<u8>)> {
    static STORE: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    STORE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let settings = SynthSettings {
            images: 2,
            seed: 1,
            width: 64,
            height: 64,
        };
        generate(&data, &settings).unwrap();
        let ds = Dataset::open(&data).unwrap();
        let s = ExtractSettings {
            patch_size: 16,
            stride: 32,
            ..Default::default()
        };
        let out = tmp.path().join("store");
        extract(&ds, &s, &out, false, &NoProgress, &AtomicBool::new(false)).unwrap();
        FILES
            .iter()
            .map(|f| (*f, std::fs::read(out.join(f)).unwrap()))
            .collect()
    })
}

/// The valid store in a fresh folder, with `file` replaced by `bytes`.
fn store_with(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    for (name, valid) in valid_store() {
        std::fs::write(store.join(name), if *name == file { bytes } else { valid }).unwrap();
    }
    store
}

fn mutate(bytes: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

/// Every reader of one file, and the whole store.
fn read_all(store: &Path, file: &str) {
    let path = store.join(file);
    match file {
        "index.csv" => drop(read_index(&path)),
        "extract.toml" => drop(ExtractSettings::from_toml_file(&path)),
        "patches.npy" => {
            if let Ok(p) = NpyPatches::open(&path) {
                for k in 0..p.len().min(4) {
                    let _ = p.patch(k);
                }
            }
        }
        _ => {}
    }
    if let Ok(s) = Store::open(store) {
        // A store that opens is whole: every listed patch can be read.
        for k in 0..s.rows.len() {
            assert!(s.patches.patch(k).is_some());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_store_files_never_panic(
        which in 0usize..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        npy_magic in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = FILES[which];
        let mut b = if npy_magic { b"\x93NUMPY\x01\x00".to_vec() } else { Vec::new() };
        b.extend_from_slice(&bytes);
        let store = store_with(dir.path(), file, &b);
        read_all(&store, file);
    }

    #[test]
    fn mutated_store_files_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
        in_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = FILES[which];
        let valid = &valid_store()[which].1;
        // Edits in the first 128 bytes reach the npy header and the CSV header.
        let edits: Vec<(usize, u8)> = edits
            .into_iter()
            .map(|(at, v)| (if in_header { at % 128 } else { at }, v))
            .collect();
        let store = store_with(dir.path(), file, &mutate(valid, &edits, cut));
        read_all(&store, file);
    }

    #[test]
    fn random_and_mutated_split_and_subset_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        random in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("split.csv");
        let subset = dir.path().join("subset.csv");
        let (s, b) = if random {
            (bytes.clone(), bytes)
        } else {
            (
                mutate(b"id,split\nIDRiD_01,train\nIDRiD_02,test\n", &edits, cut),
                mutate(b"patch,weight\n0,1\n3,0.5\n", &edits, cut),
            )
        };
        std::fs::write(&split, s).unwrap();
        std::fs::write(&subset, b).unwrap();
        let _ = read_split_file(&split);
        let _ = read_subset(&subset, 4);
    }
}

#[test]
fn the_valid_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), "", b"");
    let s = Store::open(&store).unwrap();
    assert!(!s.rows.is_empty());
}
