//! Balancing the training set, as the report did or by weighted sampling. A subset is a
//! list of patch ids (with a sampling weight each); patches are never copied.
//!
//! Report policy: black patches dropped; lesion patches undersampled toward the rarest
//! lesion's count (every patch of the rarest lesion is kept, and a patch of a commoner
//! lesion is kept while that lesion has fewer than `target_factor` x the rarest count);
//! then `healthy_ratio` x as many healthy patches as lesion patches, sampled.
//!
//! Weighted policy: every non-black patch, weighted by the inverse frequency of its rarest
//! label (healthy counted as a class of its own), weights normalised to mean 1, for a
//! sampler that draws with replacement without dropping data.

use std::path::Path;

use fovea_data::{Split, NUM_LESIONS};
use rand::seq::index::sample as sample_indices;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, StoreError};
use crate::index::PatchRow;
use crate::store::write_atomic;

/// A subset of a store's patches: ids ascending, with a sampling weight each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subset {
    pub patches: Vec<u64>,
    pub weights: Vec<f64>,
}

/// The report's rework of the training set (see the module doc).
pub fn report_policy(
    rows: &[PatchRow],
    split: Split,
    healthy_ratio: f64,
    target_factor: f64,
    seed: u64,
) -> Result<Subset> {
    if !(healthy_ratio.is_finite() && healthy_ratio >= 0.0) {
        return Err(StoreError::setting(
            "healthy_ratio",
            format!("{healthy_ratio} must be >= 0"),
        ));
    }
    if !(target_factor.is_finite() && target_factor >= 1.0) {
        return Err(StoreError::setting(
            "target_factor",
            format!("{target_factor} must be >= 1 (every patch of the rarest lesion is kept)"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let usable: Vec<&PatchRow> = rows
        .iter()
        .filter(|r| r.split == split && !r.black)
        .collect();
    let mut lesion: Vec<&PatchRow> = usable.iter().copied().filter(|r| r.is_lesion()).collect();
    let healthy: Vec<&PatchRow> = usable.iter().copied().filter(|r| !r.is_lesion()).collect();
    let mut counts = [0u64; NUM_LESIONS];
    for r in &lesion {
        for (c, &l) in counts.iter_mut().zip(&r.labels) {
            *c += l as u64;
        }
    }
    let rarest = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
    let target = (target_factor * rarest as f64).ceil() as u64;
    // Patches holding rarer lesions first; seeded order among equals.
    lesion.shuffle(&mut rng);
    let rarity = |r: &PatchRow| {
        (0..NUM_LESIONS)
            .filter(|&i| r.labels[i] != 0)
            .map(|i| counts[i])
            .min()
            .unwrap_or(u64::MAX)
    };
    lesion.sort_by_key(|r| rarity(r));
    let mut kept_counts = [0u64; NUM_LESIONS];
    let mut kept: Vec<u64> = Vec::new();
    for r in lesion {
        let wanted = (0..NUM_LESIONS)
            .any(|i| r.labels[i] != 0 && (kept_counts[i] < target || counts[i] == rarest));
        if wanted {
            kept.push(r.patch);
            for (c, &l) in kept_counts.iter_mut().zip(&r.labels) {
                *c += l as u64;
            }
        }
    }
    let want_healthy = ((healthy_ratio * kept.len() as f64).round() as usize).min(healthy.len());
    if want_healthy < (healthy_ratio * kept.len() as f64).round() as usize {
        tracing::warn!(
            "only {} healthy patches in split '{split}', fewer than {healthy_ratio} x {} lesion patches",
            healthy.len(),
            kept.len()
        );
    }
    for i in sample_indices(&mut rng, healthy.len(), want_healthy) {
        kept.push(healthy[i].patch);
    }
    kept.sort_unstable();
    let weights = vec![1.0; kept.len()];
    Ok(Subset {
        patches: kept,
        weights,
    })
}

/// Every non-black patch of `split`, weighted by inverse label frequency (module doc).
pub fn weighted_policy(rows: &[PatchRow], split: Split) -> Subset {
    let usable: Vec<&PatchRow> = rows
        .iter()
        .filter(|r| r.split == split && !r.black)
        .collect();
    // Class 0..4 = lesions, 4 = healthy.
    let mut counts = [0u64; NUM_LESIONS + 1];
    for r in &usable {
        if r.is_lesion() {
            for (c, &l) in counts.iter_mut().zip(&r.labels) {
                *c += l as u64;
            }
        } else {
            counts[NUM_LESIONS] += 1;
        }
    }
    let inv = |c: usize| {
        if counts[c] > 0 {
            1.0 / counts[c] as f64
        } else {
            0.0
        }
    };
    let mut weights: Vec<f64> = usable
        .iter()
        .map(|r| {
            if r.is_lesion() {
                (0..NUM_LESIONS)
                    .filter(|&i| r.labels[i] != 0)
                    .map(inv)
                    .fold(0.0, f64::max)
            } else {
                inv(NUM_LESIONS)
            }
        })
        .collect();
    let mean = weights.iter().sum::<f64>() / weights.len().max(1) as f64;
    if mean > 0.0 {
        weights.iter_mut().for_each(|w| *w /= mean);
    }
    Subset {
        patches: usable.iter().map(|r| r.patch).collect(),
        weights,
    }
}

/// Writes a subset as CSV `patch,weight` (atomically).
pub fn write_subset(path: &Path, subset: &Subset) -> Result<()> {
    let mut s = String::from("patch,weight\n");
    for (p, w) in subset.patches.iter().zip(&subset.weights) {
        s += &format!("{p},{w}\n");
    }
    write_atomic(path, s.as_bytes())
}

/// Reads a subset CSV (`patch` column, optional `weight`); ids must be < `n_patches`.
pub fn read_subset(path: &Path, n_patches: usize) -> Result<Subset> {
    let mut rdr = crate::store::csv_reader(&mut csv::ReaderBuilder::new(), path)?;
    let headers = rdr
        .headers()
        .map_err(|e| StoreError::corrupt(path, e))?
        .clone();
    let pc = headers
        .iter()
        .position(|h| h == "patch")
        .ok_or_else(|| StoreError::corrupt(path, "missing column 'patch'"))?;
    let wc = headers.iter().position(|h| h == "weight");
    let mut out = Subset::default();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| StoreError::corrupt(path, e))?;
        let line = i + 2;
        let p: u64 = rec
            .get(pc)
            .unwrap_or("")
            .parse()
            .map_err(|_| StoreError::corrupt(path, format!("line {line}: bad patch id")))?;
        if p as usize >= n_patches {
            return Err(StoreError::corrupt(
                path,
                format!("line {line}: patch {p} is not in the store ({n_patches} patches)"),
            ));
        }
        let w: f64 = match wc {
            Some(c) => rec
                .get(c)
                .unwrap_or("")
                .parse()
                .map_err(|_| StoreError::corrupt(path, format!("line {line}: bad weight")))?,
            None => 1.0,
        };
        if !(w.is_finite() && w >= 0.0) {
            return Err(StoreError::corrupt(
                path,
                format!("line {line}: weight {w} must be finite and >= 0"),
            ));
        }
        out.patches.push(p);
        out.weights.push(w);
    }
    Ok(out)
}

/// A seeded sample of about `size` non-black patches of `split`, stratified by label
/// combination (each of the 16 combinations keeps its share, and at least one patch when
/// it has any), in index order: a cheaper validation set with the split's prevalences.
/// `size` 0, or at least the split's size, gives every non-black patch.
pub fn stratified_sample(rows: &[PatchRow], split: Split, size: usize, seed: u64) -> Vec<u64> {
    let usable: Vec<&PatchRow> = rows
        .iter()
        .filter(|r| r.split == split && !r.black)
        .collect();
    if size == 0 || size >= usable.len() {
        return usable.iter().map(|r| r.patch).collect();
    }
    let mut groups: Vec<Vec<u64>> = vec![Vec::new(); 1 << NUM_LESIONS];
    for r in &usable {
        let key = (0..NUM_LESIONS).fold(0, |k, i| k | (usize::from(r.labels[i] != 0) << i));
        groups[key].push(r.patch);
    }
    let frac = size as f64 / usable.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(size + groups.len());
    for g in groups.iter().filter(|g| !g.is_empty()) {
        let k = ((g.len() as f64 * frac).round() as usize).clamp(1, g.len());
        out.extend(
            sample_indices(&mut rng, g.len(), k)
                .into_iter()
                .map(|i| g[i]),
        );
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::PatchKind;

    fn row(k: u64, labels: [u8; 4], black: bool, split: Split) -> PatchRow {
        PatchRow {
            patch: k,
            image_id: "a".into(),
            split,
            x: 0,
            y: 0,
            size: 8,
            kind: PatchKind::Grid,
            labels,
            px: labels.map(u32::from),
            fov_frac: 1.0,
            black,
            centred_on: None,
        }
    }

    /// 10 MA-only, 6 HE-only, 2 SE (one with MA), 40 healthy, 5 black, 3 in val.
    fn store() -> Vec<PatchRow> {
        let mut rows = Vec::new();
        let mut push = |labels, black, split| {
            let k = rows.len() as u64;
            rows.push(row(k, labels, black, split));
        };
        (0..10).for_each(|_| push([1, 0, 0, 0], false, Split::Train));
        (0..6).for_each(|_| push([0, 1, 0, 0], false, Split::Train));
        push([0, 0, 0, 1], false, Split::Train);
        push([1, 0, 0, 1], false, Split::Train);
        (0..40).for_each(|_| push([0, 0, 0, 0], false, Split::Train));
        (0..5).for_each(|_| push([0, 0, 0, 0], true, Split::Train));
        (0..3).for_each(|_| push([1, 0, 0, 0], false, Split::Val));
        rows
    }

    #[test]
    fn report_policy_by_hand() {
        let rows = store();
        let s = report_policy(&rows, Split::Train, 2.0, 1.0, 3).unwrap();
        let picked: Vec<&PatchRow> = s.patches.iter().map(|&p| &rows[p as usize]).collect();
        assert!(picked.iter().all(|r| r.split == Split::Train && !r.black));
        // Rarest: SE with 2 -> both SE patches kept; MA capped at 2 (the SE+MA patch + 1),
        // HE capped at 2: 2 + 1 + 2 = 5 lesion patches, 10 healthy.
        let lesion: Vec<_> = picked.iter().filter(|r| r.is_lesion()).collect();
        assert_eq!(lesion.len(), 5);
        assert!(rows[16].patch == 16 && s.patches.contains(&16) && s.patches.contains(&17));
        let sums: Vec<u64> = (0..4)
            .map(|i| lesion.iter().map(|r| r.labels[i] as u64).sum())
            .collect();
        assert_eq!(sums, vec![2, 2, 0, 2]);
        assert_eq!(picked.len() - lesion.len(), 10);
        assert!(s.patches.windows(2).all(|w| w[0] < w[1]));
        // Seeded.
        assert_eq!(s, report_policy(&rows, Split::Train, 2.0, 1.0, 3).unwrap());
        assert_ne!(s, report_policy(&rows, Split::Train, 2.0, 1.0, 4).unwrap());
        // A larger factor keeps more of the common lesions.
        let s3 = report_policy(&rows, Split::Train, 0.0, 3.0, 3).unwrap();
        // Target 6: both SE patches (one has MA), 5 more MA, all 6 HE.
        assert_eq!(s3.patches.len(), 2 + 5 + 6);
        assert!(report_policy(&rows, Split::Train, 2.0, 0.5, 3).is_err());
    }

    #[test]
    fn weighted_policy_favours_rare_labels() {
        let rows = store();
        let s = weighted_policy(&rows, Split::Train);
        assert_eq!(s.patches.len(), 58);
        let mean = s.weights.iter().sum::<f64>() / s.weights.len() as f64;
        assert!((mean - 1.0).abs() < 1e-9);
        let w = |p: u64| s.weights[s.patches.iter().position(|&x| x == p).unwrap()];
        // SE (2) > HE (6) > MA (11) > healthy (40).
        assert!(w(16) > w(10) && w(10) > w(0) && w(0) > w(20));
        assert_eq!(w(17), w(16), "a patch takes its rarest label's weight");
    }

    #[test]
    fn subset_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("subset.csv");
        let s = Subset {
            patches: vec![1, 5],
            weights: vec![0.5, 2.0],
        };
        write_subset(&p, &s).unwrap();
        assert_eq!(read_subset(&p, 6).unwrap(), s);
        let e = read_subset(&p, 5).unwrap_err().to_string();
        assert!(e.contains("subset.csv") && e.contains("patch 5"), "{e}");
        std::fs::write(&p, "patch\nx\n").unwrap();
        assert!(read_subset(&p, 5)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }

    #[test]
    fn stratified_sample_keeps_prevalence_and_is_seeded() {
        let rows: Vec<PatchRow> = (0..1000u64)
            .map(|i| {
                let labels = [u8::from(i % 10 == 0), u8::from(i % 100 == 1), 0, 0];
                row(i, labels, i % 7 == 3, Split::Val)
            })
            .collect();
        let s = stratified_sample(&rows, Split::Val, 200, 5);
        assert_eq!(s, stratified_sample(&rows, Split::Val, 200, 5));
        assert_ne!(s, stratified_sample(&rows, Split::Val, 200, 6));
        assert!((195..=205).contains(&s.len()), "{}", s.len());
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| !rows[i as usize].black));
        let ma = s
            .iter()
            .filter(|&&i| rows[i as usize].labels[0] != 0)
            .count();
        assert!((17..=23).contains(&ma), "{ma}");
        // The rare combination (HE only) keeps at least one patch.
        assert!(s.iter().any(|&i| rows[i as usize].labels[1] != 0));
        assert_eq!(
            stratified_sample(&rows, Split::Val, 0, 5).len(),
            rows.iter().filter(|r| !r.black).count()
        );
    }
}
