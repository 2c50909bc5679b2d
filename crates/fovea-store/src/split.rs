//! Image-level splits: every patch of a photograph lands in its photograph's split, so no
//! split leaks into another. The dataset's own split is kept when it has one (IDRiD's set
//! folders, a manifest `split` column, or a split file); otherwise a seeded split by image.
//! A validation split is carved out of the training images when none is given. Allocation
//! is stratified by which lesion masks each image has, so a rare lesion is not left out of
//! a split by chance.
//!
//! The same photograph under two ids (byte-identical files, found by size, then SHA-256)
//! would let a split see another split's photograph: such photographs are kept together,
//! in the split of the first of their ids (in id order), with a warning
//! ([`keep_identical_together`]).

use std::collections::HashMap;
use std::path::Path;

use fovea_data::{ImageRecord, Split};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, StoreError};
use crate::settings::SplitSettings;

/// Reads a split file: CSV with an `id` column and a `split` (or `official_split`) column.
pub fn read_split_file(path: &Path) -> Result<HashMap<String, Split>> {
    let mut rdr = crate::store::csv_reader(csv::ReaderBuilder::new().trim(csv::Trim::All), path)?;
    let headers = rdr
        .headers()
        .map_err(|e| StoreError::corrupt(path, e))?
        .clone();
    let find = |n: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == n)
    };
    let id_col = find("id").ok_or_else(|| StoreError::corrupt(path, "missing column 'id'"))?;
    let split_col = find("split")
        .or_else(|| find("official_split"))
        .ok_or_else(|| StoreError::corrupt(path, "missing column 'split' (or 'official_split')"))?;
    let mut map = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| StoreError::corrupt(path, e))?;
        let id = rec.get(id_col).unwrap_or("").to_string();
        let s = rec.get(split_col).unwrap_or("");
        let split = Split::parse(s).ok_or_else(|| {
            StoreError::corrupt(
                path,
                format!("line {}: split '{s}' is not train, val or test", i + 2),
            )
        })?;
        if map.insert(id.clone(), split).is_some() {
            return Err(StoreError::corrupt(
                path,
                format!("line {}: duplicate id '{id}'", i + 2),
            ));
        }
    }
    Ok(map)
}

/// Groups of records whose photographs are byte-identical files: same size, then same
/// SHA-256. Only groups of two or more, each in record order, groups in order of their
/// first record. Only files of equal size are read.
pub fn identical_photographs(records: &[ImageRecord]) -> Result<Vec<Vec<usize>>> {
    use sha2::{Digest, Sha256};
    let mut by_size: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        let len = std::fs::metadata(&r.image)
            .map_err(|e| StoreError::io(&r.image, e))?
            .len();
        by_size.entry(len).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for same_size in by_size.into_values().filter(|v| v.len() > 1) {
        let mut by_hash: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for i in same_size {
            let path = &records[i].image;
            let mut file = fovea_data::io::open_regular(path)?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher).map_err(|e| StoreError::io(path, e))?;
            by_hash
                .entry(hasher.finalize().to_vec())
                .or_default()
                .push(i);
        }
        groups.extend(by_hash.into_values().filter(|v| v.len() > 1));
    }
    groups.sort();
    Ok(groups)
}

/// Puts every group of identical photographs ([`identical_photographs`]) in one split, the
/// split of its first record, and warns about each group.
pub fn keep_identical_together(records: &[ImageRecord], splits: &mut [Split]) -> Result<()> {
    for group in identical_photographs(records)? {
        let split = splits[group[0]];
        let moved: Vec<&str> = group
            .iter()
            .filter(|&&i| splits[i] != split)
            .map(|&i| records[i].id.as_str())
            .collect();
        let ids: Vec<&str> = group.iter().map(|&i| records[i].id.as_str()).collect();
        tracing::warn!(
            "images {} are the same photograph (identical files, e.g. {}): kept together in \
             split '{split}'{}",
            ids.join(", "),
            records[group[0]].image.display(),
            if moved.is_empty() {
                String::new()
            } else {
                format!(" (moved {} there)", moved.join(", "))
            }
        );
        for i in group {
            splits[i] = split;
        }
    }
    Ok(())
}

/// Which lesion masks an image has, as a 4-bit key (the stratum).
fn stratum(r: &ImageRecord) -> u8 {
    r.masks
        .iter()
        .enumerate()
        .fold(0, |k, (i, m)| k | (u8::from(m.is_some()) << i))
}

/// Target counts per split for `n` items: largest remainder, and at least one item for each
/// split with a positive fraction when there are enough items.
fn targets(n: usize, fracs: &[f64]) -> Vec<usize> {
    let raw: Vec<f64> = fracs.iter().map(|f| f * n as f64).collect();
    let mut t: Vec<usize> = raw.iter().map(|r| r.floor() as usize).collect();
    let mut order: Vec<usize> = (0..fracs.len()).collect();
    order.sort_by(|&a, &b| (raw[b] - raw[b].floor()).total_cmp(&(raw[a] - raw[a].floor())));
    let mut left = n - t.iter().sum::<usize>();
    for &i in order.iter().cycle().take(fracs.len() * 2) {
        if left == 0 {
            break;
        }
        if fracs[i] > 0.0 {
            t[i] += 1;
            left -= 1;
        }
    }
    let positive = fracs.iter().filter(|&&f| f > 0.0).count();
    if n >= positive {
        for i in 0..fracs.len() {
            if fracs[i] > 0.0 && t[i] == 0 {
                let big = (0..t.len()).max_by_key(|&j| t[j]).unwrap_or(0);
                t[big] -= 1;
                t[i] += 1;
            }
        }
    }
    t
}

/// Deals `items` (already grouped by stratum, shuffled within) to splits so that every
/// prefix, and so every stratum, is split close to the target proportions.
fn deal(items: &[usize], splits: &[Split], fracs: &[f64]) -> Vec<(usize, Split)> {
    let n = items.len();
    let t = targets(n, fracs);
    let mut counts = vec![0usize; splits.len()];
    let mut out = Vec::with_capacity(n);
    for (i, &item) in items.iter().enumerate() {
        let pick = (0..splits.len())
            .filter(|&s| counts[s] < t[s])
            .max_by(|&a, &b| {
                let da = t[a] as f64 / n as f64 * (i + 1) as f64 - counts[a] as f64;
                let db = t[b] as f64 / n as f64 * (i + 1) as f64 - counts[b] as f64;
                da.total_cmp(&db).then(b.cmp(&a))
            })
            .unwrap_or(0);
        counts[pick] += 1;
        out.push((item, splits[pick]));
    }
    out
}

/// Orders `idx` by stratum, shuffled (seeded) within each stratum.
fn stratified_order(records: &[ImageRecord], idx: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by: std::collections::BTreeMap<u8, Vec<usize>> = Default::default();
    for &i in idx {
        by.entry(stratum(&records[i])).or_default().push(i);
    }
    let mut out = Vec::with_capacity(idx.len());
    for (_, mut v) in by {
        v.shuffle(&mut rng);
        out.extend(v);
    }
    out
}

/// The split of every record, in record order.
///
/// - `fixed` (from a split file) or the records' own splits are kept when present;
///   `val` is then carved out of `train` when no image is `val`: a fraction
///   `val / (train + val)` of the training images.
/// - otherwise a seeded, stratified split with the fractions of `settings`.
pub fn assign_splits(
    records: &[ImageRecord],
    settings: &SplitSettings,
    seed: u64,
    fixed: Option<(&Path, &HashMap<String, Split>)>,
) -> Result<Vec<Split>> {
    let given: Option<Vec<Split>> = if let Some((path, map)) = fixed {
        let mut v = Vec::with_capacity(records.len());
        for r in records {
            let s = map.get(&r.id).ok_or_else(|| {
                StoreError::corrupt(path, format!("no split for image '{}'", r.id))
            })?;
            v.push(*s);
        }
        Some(v)
    } else if records.iter().all(|r| r.split.is_some()) && !records.is_empty() {
        Some(records.iter().filter_map(|r| r.split).collect())
    } else if records.iter().any(|r| r.split.is_some()) {
        let r = records
            .iter()
            .find(|r| r.split.is_none())
            .map(|r| r.id.clone());
        return Err(StoreError::setting(
            "split",
            format!(
                "the dataset gives a split for some images but not for '{}'",
                r.unwrap_or_default()
            ),
        ));
    } else {
        None
    };
    match given {
        Some(mut splits) => {
            if !splits.contains(&Split::Val) && settings.val > 0.0 {
                let train: Vec<usize> = (0..records.len())
                    .filter(|&i| splits[i] == Split::Train)
                    .collect();
                let f = settings.val / (settings.train + settings.val);
                let order = stratified_order(records, &train, seed);
                for (i, s) in deal(&order, &[Split::Train, Split::Val], &[1.0 - f, f]) {
                    splits[i] = s;
                }
            }
            Ok(splits)
        }
        None => {
            let all: Vec<usize> = (0..records.len()).collect();
            let order = stratified_order(records, &all, seed);
            let mut splits = vec![Split::Train; records.len()];
            let fracs = [settings.train, settings.val, settings.test];
            for (i, s) in deal(&order, &Split::ALL, &fracs) {
                splits[i] = s;
            }
            Ok(splits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rec(i: usize, se: bool, split: Option<Split>) -> ImageRecord {
        let m = Some(PathBuf::from("m.png"));
        ImageRecord {
            id: format!("IMG_{i:03}"),
            image: PathBuf::from("x.jpg"),
            masks: [m.clone(), m.clone(), m.clone(), if se { m } else { None }],
            split,
        }
    }

    fn count(s: &[Split], which: Split) -> usize {
        s.iter().filter(|&&x| x == which).count()
    }

    #[test]
    fn seeded_split_has_the_fractions_and_is_stratified() {
        let recs: Vec<_> = (0..100).map(|i| rec(i, i % 5 == 0, None)).collect();
        let s = assign_splits(&recs, &SplitSettings::default(), 7, None).unwrap();
        assert_eq!(
            (
                count(&s, Split::Train),
                count(&s, Split::Val),
                count(&s, Split::Test)
            ),
            (70, 15, 15)
        );
        // 20 images with SE: 14 / 3 / 3.
        let se: Vec<Split> = (0..100).filter(|i| i % 5 == 0).map(|i| s[i]).collect();
        assert_eq!(count(&se, Split::Train), 14);
        assert_eq!(count(&se, Split::Val), 3);
        assert_eq!(count(&se, Split::Test), 3);
        // Seeded: same seed, same split; another seed, another split.
        assert_eq!(
            s,
            assign_splits(&recs, &SplitSettings::default(), 7, None).unwrap()
        );
        assert_ne!(
            s,
            assign_splits(&recs, &SplitSettings::default(), 8, None).unwrap()
        );
    }

    #[test]
    fn tiny_datasets_get_every_split() {
        let recs: Vec<_> = (0..4).map(|i| rec(i, false, None)).collect();
        let s = assign_splits(&recs, &SplitSettings::default(), 0, None).unwrap();
        assert_eq!(
            (
                count(&s, Split::Train),
                count(&s, Split::Val),
                count(&s, Split::Test)
            ),
            (2, 1, 1)
        );
        assert_eq!(targets(3, &[0.7, 0.15, 0.15]), vec![1, 1, 1]);
        assert_eq!(targets(1, &[0.7, 0.15, 0.15]), vec![1, 0, 0]);
    }

    #[test]
    fn official_split_is_kept_and_val_carved_from_train() {
        let recs: Vec<_> = (0..81)
            .map(|i| {
                rec(
                    i,
                    i % 2 == 0,
                    Some(if i < 54 { Split::Train } else { Split::Test }),
                )
            })
            .collect();
        let s = assign_splits(&recs, &SplitSettings::default(), 0, None).unwrap();
        assert!(s[54..].iter().all(|&x| x == Split::Test));
        // 54 * 0.15 / 0.85 = 9.5 -> 10 (largest remainder).
        assert_eq!(count(&s[..54], Split::Val), 10);
        assert_eq!(count(&s[..54], Split::Train), 44);
    }

    #[test]
    fn split_file_wins_and_names_missing_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "id,official_split\nIMG_000,train\nIMG_001,test\nIMG_002,train\n",
        )
        .unwrap();
        let map = read_split_file(&p).unwrap();
        let recs: Vec<_> = (0..3).map(|i| rec(i, false, None)).collect();
        let settings = SplitSettings {
            val: 0.5,
            train: 0.5,
            test: 0.0,
            ..Default::default()
        };
        let s = assign_splits(&recs, &settings, 0, Some((&p, &map))).unwrap();
        assert_eq!(s[1], Split::Test);
        assert_eq!(count(&s, Split::Val), 1);
        let recs4: Vec<_> = (0..4).map(|i| rec(i, false, None)).collect();
        let e = assign_splits(&recs4, &settings, 0, Some((&p, &map)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.csv") && e.contains("IMG_003"), "{e}");
        std::fs::write(&p, "id,split\nA,holdout\n").unwrap();
        let e = read_split_file(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv") && e.contains("holdout"), "{e}");
    }
}
