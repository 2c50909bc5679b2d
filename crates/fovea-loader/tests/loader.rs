//! The loader over a real (synthetic) patch store: determinism whatever the number of
//! threads, resumption, black patches, labels, balancing, errors.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use fovea_data::Split;
use fovea_loader::augment::to_tensor_layout;
use fovea_loader::{Batch, Loader, LoaderSettings, Order, Sampler, Selection};
use fovea_store::balance::{weighted_policy, write_subset, Subset};
use fovea_store::Store;

fn settings(workers: usize, batch_size: usize) -> LoaderSettings {
    LoaderSettings {
        batch_size,
        workers,
        seed: 11,
        ..Default::default()
    }
}

fn train_loader(store: &Arc<Store>, workers: usize, batch_size: usize) -> Loader {
    let sampler = Sampler::new(
        &store.rows,
        Split::Train,
        Selection::All,
        Order::Shuffled,
        5,
    )
    .unwrap();
    Loader::new(store.clone(), sampler, settings(workers, batch_size)).unwrap()
}

fn collect(loader: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
    loader
        .epoch(epoch, start)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn bits(batches: &[Batch]) -> Vec<Vec<u32>> {
    batches
        .iter()
        .map(|b| b.images.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn batches_are_identical_whatever_the_number_of_threads() {
    let store = common::small_store();
    for epoch in [0, 3] {
        let one = collect(&train_loader(&store, 1, 5), epoch, 0);
        let three = collect(&train_loader(&store, 3, 5), epoch, 0);
        let inline = collect(&train_loader(&store, 0, 5), epoch, 0);
        assert_eq!(one.len(), 5); // 24 samples, batches of 5: 4 full + 4
        assert_eq!(bits(&one), bits(&three));
        assert_eq!(bits(&one), bits(&inline));
        assert_eq!(one, three);
        for (i, b) in one.iter().enumerate() {
            assert_eq!(b.index, i);
            assert_eq!(b.patch_size, 32);
            assert_eq!(b.images.len(), b.size * 3 * 32 * 32);
            assert_eq!(b.labels.len(), b.size * 4);
            assert_eq!(b.patches.len(), b.size);
        }
        assert_eq!(one.last().unwrap().size, 4);
    }
    // Orders and augmentations differ between epochs; augmentation changes the pixels.
    let l = train_loader(&store, 2, 24);
    let (a, b) = (collect(&l, 0, 0), collect(&l, 1, 0));
    assert_ne!(a[0].patches, b[0].patches);
    let one = 3 * 32 * 32;
    let image = |batch: &Batch, id: u64| {
        let i = batch.patches.iter().position(|&k| k == id).unwrap();
        batch.images[i * one..(i + 1) * one].to_vec()
    };
    let mut plain = vec![0.0; one];
    let mut changed = 0;
    for &id in &a[0].patches {
        to_tensor_layout(store.patches.patch(id as usize).unwrap(), 32, &mut plain);
        assert_ne!(image(&a[0], id), image(&b[0], id));
        changed += usize::from(image(&a[0], id) != plain);
    }
    assert_eq!(changed, 24);
}

#[test]
fn resuming_at_batch_k_gives_the_tail_of_the_epoch() {
    let store = common::small_store();
    let loader = train_loader(&store, 2, 5);
    let full = collect(&loader, 2, 0);
    for k in 0..=full.len() {
        let tail = collect(&loader, 2, k);
        assert_eq!(tail, full[k..], "start {k}");
    }
    let inline = train_loader(&store, 0, 5);
    assert_eq!(collect(&inline, 2, 3), full[3..]);
    let e = loader.epoch(2, full.len() + 1).err().unwrap().to_string();
    assert!(e.contains("only 5 batches"), "{e}");
}

#[test]
fn black_patches_never_appear_and_labels_match_rows() {
    let store = common::small_store();
    let loader = train_loader(&store, 2, 7);
    let mut seen = Vec::new();
    for epoch in 0..4 {
        for b in collect(&loader, epoch, 0) {
            for (i, &id) in b.patches.iter().enumerate() {
                let row = &store.rows[id as usize];
                assert!(!row.black, "black patch {id}");
                assert_eq!(row.split, Split::Train);
                let want: Vec<f32> = row.labels.iter().map(|&l| l as f32).collect();
                assert_eq!(b.labels[i * 4..i * 4 + 4], want[..]);
                seen.push(id);
            }
        }
    }
    // Each epoch visits every usable train patch exactly once.
    let usable: Vec<u64> = store
        .rows
        .iter()
        .filter(|r| r.split == Split::Train && !r.black)
        .map(|r| r.patch)
        .collect();
    for epoch in seen.chunks(usable.len()) {
        let mut e = epoch.to_vec();
        e.sort();
        assert_eq!(e, usable);
    }
    assert!(store
        .rows
        .iter()
        .any(|r| r.split == Split::Train && r.black));
}

#[test]
fn eval_mode_is_index_order_without_augmentation() {
    let store = common::small_store();
    let loader = Loader::eval(store.clone(), Split::Val, 10, 2).unwrap();
    let batches = collect(&loader, 0, 0);
    assert_eq!(batches, collect(&loader, 7, 0), "the same every epoch");
    let ids: Vec<u64> = batches.iter().flat_map(|b| b.patches.clone()).collect();
    let want: Vec<u64> = store
        .rows
        .iter()
        .filter(|r| r.split == Split::Val && !r.black)
        .map(|r| r.patch)
        .collect();
    assert_eq!(ids, want);
    let p = 32;
    let mut plain = vec![0.0; 3 * p * p];
    for b in &batches {
        for (i, &id) in b.patches.iter().enumerate() {
            to_tensor_layout(store.patches.patch(id as usize).unwrap(), p, &mut plain);
            assert_eq!(b.images[i * 3 * p * p..(i + 1) * 3 * p * p], plain[..]);
        }
    }
}

#[test]
fn drop_last_drops_only_the_short_batch() {
    let store = common::small_store();
    let sampler = Sampler::new(
        &store.rows,
        Split::Train,
        Selection::All,
        Order::Shuffled,
        5,
    )
    .unwrap();
    let mut s = settings(2, 5);
    s.drop_last = true;
    let loader = Loader::new(store.clone(), sampler, s).unwrap();
    assert_eq!(loader.batches_per_epoch(), 4);
    assert_eq!(loader.samples_per_epoch(), 20);
    let batches = collect(&loader, 0, 0);
    assert_eq!(batches.len(), 4);
    assert!(batches.iter().all(|b| b.size == 5));
    // The same batches as without drop_last.
    let keep = collect(&train_loader(&store, 2, 5), 0, 0);
    assert_eq!(batches, keep[..4]);
}

#[test]
fn a_subset_file_restricts_every_epoch() {
    let store = common::small_store();
    let usable: Vec<u64> = store
        .rows
        .iter()
        .filter(|r| r.split == Split::Train && !r.black)
        .map(|r| r.patch)
        .collect();
    let picked: Vec<u64> = usable.iter().copied().step_by(3).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subset.csv");
    write_subset(
        &path,
        &Subset {
            patches: picked.clone(),
            weights: vec![1.0; picked.len()],
        },
    )
    .unwrap();
    let sel = Selection::subset_file(&path, store.rows.len()).unwrap();
    let sampler = Sampler::new(&store.rows, Split::Train, sel, Order::Shuffled, 1).unwrap();
    let loader = Loader::new(store.clone(), sampler, settings(2, 3)).unwrap();
    for epoch in 0..3 {
        let mut ids: Vec<u64> = collect(&loader, epoch, 0)
            .iter()
            .flat_map(|b| b.patches.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, picked);
    }
    // A black id or one of another split is an error naming it and the file.
    let black = store.rows.iter().find(|r| r.black).unwrap().patch;
    let val = store
        .rows
        .iter()
        .find(|r| r.split == Split::Val && !r.black)
        .unwrap()
        .patch;
    for bad in [black, val] {
        write_subset(
            &path,
            &Subset {
                patches: vec![picked[0], bad],
                weights: vec![1.0, 1.0],
            },
        )
        .unwrap();
        let sel = Selection::subset_file(&path, store.rows.len()).unwrap();
        let e = Sampler::new(&store.rows, Split::Train, sel, Order::Shuffled, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("patch {bad} ")) && e.contains("subset.csv"),
            "{e}"
        );
    }
}

#[test]
fn weighted_sampling_draws_rare_patches_more_often() {
    let store = common::small_store();
    let subset = weighted_policy(&store.rows, Split::Train);
    let weight: HashMap<u64, f64> = subset
        .patches
        .iter()
        .copied()
        .zip(subset.weights.iter().copied())
        .collect();
    let heavy = *subset
        .patches
        .iter()
        .max_by(|a, b| weight[a].total_cmp(&weight[b]))
        .unwrap();
    let light = *subset
        .patches
        .iter()
        .min_by(|a, b| weight[a].total_cmp(&weight[b]))
        .unwrap();
    assert!(weight[&heavy] > 2.0 * weight[&light], "{weight:?}");
    let total: f64 = subset.weights.iter().sum();
    let sel = Selection::Weighted {
        subset,
        epoch_size: Some(200),
        origin: None,
    };
    let sampler = Sampler::new(&store.rows, Split::Train, sel, Order::Shuffled, 3).unwrap();
    let loader = Loader::new(store.clone(), sampler, settings(2, 50)).unwrap();
    assert_eq!(loader.batches_per_epoch(), 4);
    let mut counts: HashMap<u64, f64> = HashMap::new();
    let epochs = 25;
    for epoch in 0..epochs {
        for b in collect(&loader, epoch, 0) {
            for id in b.patches {
                assert!(!store.rows[id as usize].black);
                *counts.entry(id).or_default() += 1.0;
            }
        }
    }
    let draws = 200.0 * epochs as f64;
    let expect = |k: u64| draws * weight[&k] / total;
    let got = |k: u64| counts.get(&k).copied().unwrap_or(0.0);
    assert!(
        got(heavy) > 2.0 * got(light),
        "{} vs {}",
        got(heavy),
        got(light)
    );
    for k in [heavy, light] {
        let sd = expect(k).sqrt();
        assert!(
            (got(k) - expect(k)).abs() < 5.0 * sd + 1.0,
            "{k}: {} vs {}",
            got(k),
            expect(k)
        );
    }
}

#[test]
fn a_missing_patch_is_an_error_not_a_panic() {
    let base = common::small_store();
    // A copy of the store whose index lists one more (train, non-black) patch than the
    // array holds.
    let mut store = Store::open(&base.dir).unwrap();
    let mut extra = store
        .rows
        .iter()
        .find(|r| r.split == Split::Train && !r.black)
        .unwrap()
        .clone();
    extra.patch = store.rows.len() as u64;
    store.rows.push(extra.clone());
    let store = Arc::new(store);
    let sel = Selection::Subset {
        subset: Subset {
            patches: vec![extra.patch],
            weights: vec![1.0],
        },
        origin: None,
    };
    for workers in [0, 2] {
        let sampler =
            Sampler::new(&store.rows, Split::Train, sel.clone(), Order::Shuffled, 0).unwrap();
        let loader = Loader::new(store.clone(), sampler, settings(workers, 4)).unwrap();
        let mut it = loader.epoch(0, 0).unwrap();
        let e = it.next().unwrap().unwrap_err().to_string();
        assert!(e.contains(&format!("patch {}", extra.patch)), "{e}");
        assert!(it.next().is_none(), "iteration stops after an error");
    }
}

#[test]
fn dropping_an_epoch_early_stops_its_workers() {
    let store = common::small_store();
    let loader = train_loader(&store, 3, 2);
    for round in 0..20 {
        let mut it = loader.epoch(0, 0).unwrap();
        it.next().unwrap().unwrap();
        // Dropping joins the workers: it must return, not hang, whatever they were doing.
        // It runs on another thread so that a worker that never stops fails the test
        // after a bounded wait instead of hanging it.
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(it);
            let _ = done_tx.send(());
        });
        done.recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("round {round}: the epoch's workers did not stop within 30 s")
            });
    }
    assert_eq!(collect(&loader, 0, 0).len(), 12);
}

#[test]
fn settings_are_strict() {
    let s: LoaderSettings =
        serde_json::from_str(r#"{"batch_size": 8, "augment": {"rotation_deg": 90.0, "hue": 0.0}}"#)
            .unwrap();
    assert_eq!(s.batch_size, 8);
    assert_eq!(s.workers, 2);
    assert_eq!(s.augment.rotation_deg, 90.0);
    assert!(s.augment.hflip);
    assert!(serde_json::from_str::<LoaderSettings>(r#"{"batch": 8}"#).is_err());
    assert!(serde_json::from_str::<LoaderSettings>(r#"{"augment": {"flip": true}}"#).is_err());
    let store = common::small_store();
    let sampler = Sampler::in_order(&store.rows, Split::Train).unwrap();
    let e = Loader::new(store, sampler, settings(2, 0)).err().unwrap();
    assert!(e.to_string().contains("batch_size"), "{e}");
}
