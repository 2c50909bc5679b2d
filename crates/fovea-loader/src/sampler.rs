//! Which patches an epoch visits, and in what order.
//!
//! The pool is the non-black patches of one split (black patches are never used,
//! CONTRACTS 2), optionally restricted to a subset's ids (the report's balancing: each once
//! per epoch) or drawn by the subset's weights with replacement (weighted balancing:
//! `epoch_size` draws per epoch). A subset id that is black or belongs to another split is
//! an error naming it.
//!
//! The order of epoch e depends only on (seed, e) (see [`crate::rng`]), so a resumed run
//! visits the same patches in the same order.

use std::path::{Path, PathBuf};

use fovea_data::Split;
use fovea_store::balance::{read_subset, Subset};
use fovea_store::PatchRow;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::{LoaderError, Result};
use crate::rng::epoch_rng;

/// Which patches of the split form the pool.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// Every non-black patch of the split, each once per epoch.
    All,
    /// The subset's patches, each once per epoch (report balancing); weights are ignored.
    Subset {
        subset: Subset,
        /// The subset file, named in error messages.
        origin: Option<PathBuf>,
    },
    /// `epoch_size` draws with replacement, probability proportional to the subset's
    /// weights (weighted balancing); `None` = as many draws as the subset has patches.
    Weighted {
        subset: Subset,
        epoch_size: Option<usize>,
        origin: Option<PathBuf>,
    },
}

impl Selection {
    /// The subset in `path` (CSV `patch[,weight]`), each patch once per epoch.
    pub fn subset_file(path: &Path, n_patches: usize) -> Result<Selection> {
        Ok(Selection::Subset {
            subset: read_subset(path, n_patches)?,
            origin: Some(path.to_path_buf()),
        })
    }

    /// The subset in `path`, drawn by weight with replacement.
    pub fn weighted_file(
        path: &Path,
        n_patches: usize,
        epoch_size: Option<usize>,
    ) -> Result<Selection> {
        Ok(Selection::Weighted {
            subset: read_subset(path, n_patches)?,
            epoch_size,
            origin: Some(path.to_path_buf()),
        })
    }
}

/// The order within an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// A fresh seeded permutation (or weighted draws) each epoch: training.
    Shuffled,
    /// The pool's order (index order for [`Selection::All`], the subset's order otherwise),
    /// the same every epoch: evaluation. Not allowed with weighted draws.
    Index,
}

/// How to draw an epoch.
#[derive(Clone, Debug)]
enum Draw {
    /// Each pool patch once.
    Each(Order),
    /// `size` draws with replacement; `cumulative[i]` = sum of weights 0..=i.
    Weighted { cumulative: Vec<f64>, size: usize },
}

/// Draws each epoch's list of patch ids.
#[derive(Clone, Debug)]
pub struct Sampler {
    split: Split,
    pool: Vec<u64>,
    draw: Draw,
    seed: u64,
    /// At most this many samples per epoch (shuffled order only): each epoch visits a
    /// different seeded part of the pool.
    limit: Option<usize>,
}

impl Sampler {
    /// The sampler of `split` over a store's `rows`.
    pub fn new(
        rows: &[PatchRow],
        split: Split,
        selection: Selection,
        order: Order,
        seed: u64,
    ) -> Result<Sampler> {
        let check = |ids: &[u64], origin: &Option<PathBuf>| -> Result<()> {
            for &id in ids {
                let err = |reason: String| LoaderError::Subset {
                    patch: id,
                    reason,
                    origin: origin.clone(),
                };
                let row = rows
                    .get(id as usize)
                    .ok_or_else(|| err(format!("is not in the store ({} patches)", rows.len())))?;
                if row.black {
                    return Err(err(
                        "is black (uninformative background): black patches are never used".into(),
                    ));
                }
                if row.split != split {
                    return Err(err(format!(
                        "belongs to split '{}', not '{split}'",
                        row.split
                    )));
                }
            }
            Ok(())
        };
        let (pool, draw) = match selection {
            Selection::All => (
                rows.iter()
                    .filter(|r| r.split == split && !r.black)
                    .map(|r| r.patch)
                    .collect::<Vec<u64>>(),
                Draw::Each(order),
            ),
            Selection::Subset { subset, origin } => {
                check(&subset.patches, &origin)?;
                (subset.patches, Draw::Each(order))
            }
            Selection::Weighted {
                subset,
                epoch_size,
                origin,
            } => {
                if order == Order::Index {
                    return Err(LoaderError::setting(
                        "order",
                        "weighted draws are random: they have no index order",
                    ));
                }
                if subset.weights.len() != subset.patches.len() {
                    return Err(LoaderError::setting(
                        "subset",
                        format!(
                            "{} weights for {} patches",
                            subset.weights.len(),
                            subset.patches.len()
                        ),
                    ));
                }
                check(&subset.patches, &origin)?;
                let mut cumulative = Vec::with_capacity(subset.weights.len());
                let mut total = 0.0f64;
                for &w in &subset.weights {
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(LoaderError::setting(
                            "subset",
                            format!("weight {w} must be finite and >= 0"),
                        ));
                    }
                    total += w;
                    cumulative.push(total);
                }
                if !subset.patches.is_empty() && total <= 0.0 {
                    return Err(LoaderError::Empty {
                        split,
                        reason: "every weight of the subset is 0".into(),
                    });
                }
                let size = epoch_size.unwrap_or(subset.patches.len());
                if size == 0 && !subset.patches.is_empty() {
                    return Err(LoaderError::setting("epoch_size", "must be at least 1"));
                }
                (subset.patches, Draw::Weighted { cumulative, size })
            }
        };
        if pool.is_empty() {
            return Err(LoaderError::Empty {
                split,
                reason: "the selection holds no non-black patch of this split".into(),
            });
        }
        // The invariant every caller relies on: nothing black, nothing of another split.
        assert!(pool.iter().all(|&k| {
            let r = &rows[k as usize];
            !r.black && r.split == split
        }));
        Ok(Sampler {
            split,
            pool,
            draw,
            seed,
            limit: None,
        })
    }

    /// Caps a shuffled epoch at `limit` samples (each epoch a different seeded part of the
    /// pool; consecutive epochs walk through the whole pool). No effect on index order or
    /// weighted draws, whose size is set at construction.
    pub fn with_epoch_limit(mut self, limit: Option<usize>) -> Sampler {
        self.limit = limit.filter(|&l| l > 0);
        self
    }

    /// Evaluation: every non-black patch of `split`, in index order, every epoch.
    pub fn in_order(rows: &[PatchRow], split: Split) -> Result<Sampler> {
        Sampler::new(rows, split, Selection::All, Order::Index, 0)
    }

    /// The split sampled.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The patches that may be visited (each at most once per epoch unless weighted).
    pub fn pool(&self) -> &[u64] {
        &self.pool
    }

    /// Samples per epoch.
    pub fn len(&self) -> usize {
        match &self.draw {
            Draw::Each(Order::Shuffled) => self
                .limit
                .map_or(self.pool.len(), |l| l.min(self.pool.len())),
            Draw::Each(_) => self.pool.len(),
            Draw::Weighted { size, .. } => *size,
        }
    }

    /// Never true for a constructed sampler (an empty pool is an error).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the order is the same every epoch.
    pub fn is_fixed_order(&self) -> bool {
        matches!(self.draw, Draw::Each(Order::Index))
    }

    /// The patch ids epoch `epoch` visits, in order; a function of (seed, epoch) only.
    pub fn epoch(&self, epoch: u64) -> Vec<u64> {
        match &self.draw {
            Draw::Each(Order::Index) => self.pool.clone(),
            Draw::Each(Order::Shuffled) => match self.limit {
                Some(l) if l < self.pool.len() => {
                    // Pass k over the pool (a seeded permutation per pass) is cut into
                    // epochs of l samples, so every patch is seen before any is repeated.
                    let n = self.pool.len() as u64;
                    let start = epoch * l as u64;
                    let mut out = Vec::with_capacity(l);
                    let mut perm: Option<(u64, Vec<u64>)> = None;
                    for i in start..start + l as u64 {
                        let (pass, at) = (i / n, (i % n) as usize);
                        if perm.as_ref().is_none_or(|(p, _)| *p != pass) {
                            let mut ids = self.pool.clone();
                            ids.shuffle(&mut epoch_rng(self.seed, u64::MAX - pass));
                            perm = Some((pass, ids));
                        }
                        out.push(perm.as_ref().expect("set above").1[at]);
                    }
                    out
                }
                _ => {
                    let mut ids = self.pool.clone();
                    ids.shuffle(&mut epoch_rng(self.seed, epoch));
                    ids
                }
            },
            Draw::Weighted { cumulative, size } => {
                let mut rng = epoch_rng(self.seed, epoch);
                let total = *cumulative.last().expect("non-empty pool");
                // The last patch of positive weight, for a draw that rounds up to `total`.
                let last = cumulative.partition_point(|&c| c < total);
                (0..*size)
                    .map(|_| {
                        let u = rng.random::<f64>() * total;
                        let i = cumulative.partition_point(|&c| c <= u).min(last);
                        self.pool[i]
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fovea_store::index::PatchKind;

    fn row(k: u64, split: Split, black: bool) -> PatchRow {
        PatchRow {
            patch: k,
            image_id: "a".into(),
            split,
            x: 0,
            y: 0,
            size: 8,
            kind: PatchKind::Grid,
            labels: [0; 4],
            px: [0; 4],
            fov_frac: 1.0,
            black,
            centred_on: None,
        }
    }

    #[test]
    fn epoch_limit_walks_through_the_pool() {
        let rows = rows();
        let s = Sampler::new(&rows, Split::Train, Selection::All, Order::Shuffled, 3)
            .unwrap()
            .with_epoch_limit(Some(3));
        assert_eq!(s.len(), 3);
        // 8 usable patches, 3 per epoch: epochs 0..2 cover 6 distinct, epoch 2 wraps.
        let seen: Vec<u64> = (0..2).flat_map(|e| s.epoch(e)).collect();
        let mut uniq = seen.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), 6, "{seen:?}");
        assert_eq!(s.epoch(1), s.epoch(1));
        let all: Vec<u64> = (0..8).flat_map(|e| s.epoch(e)).collect();
        assert_eq!(all.len(), 24);
        for id in [0u64, 1, 2, 4, 5, 6, 8, 9] {
            assert_eq!(
                all.iter().filter(|&&x| x == id).count(),
                3,
                "each patch 3 times in 3 passes"
            );
        }
    }

    /// 0..10 train (3 and 7 black), 10..13 val.
    fn rows() -> Vec<PatchRow> {
        (0..13)
            .map(|k| {
                let split = if k < 10 { Split::Train } else { Split::Val };
                row(k, split, k == 3 || k == 7)
            })
            .collect()
    }

    fn subset(ids: &[u64]) -> Subset {
        Subset {
            patches: ids.to_vec(),
            weights: vec![1.0; ids.len()],
        }
    }

    #[test]
    fn all_is_the_non_black_patches_of_the_split() {
        let s = Sampler::in_order(&rows(), Split::Train).unwrap();
        assert_eq!(s.epoch(0), vec![0, 1, 2, 4, 5, 6, 8, 9]);
        assert_eq!(s.epoch(5), s.epoch(0));
        let s = Sampler::in_order(&rows(), Split::Val).unwrap();
        assert_eq!(s.epoch(0), vec![10, 11, 12]);
        let e = Sampler::in_order(&rows(), Split::Test).unwrap_err();
        assert!(e.to_string().contains("test"), "{e}");
    }

    #[test]
    fn shuffled_order_is_a_function_of_seed_and_epoch() {
        let s = Sampler::new(&rows(), Split::Train, Selection::All, Order::Shuffled, 7).unwrap();
        let e0 = s.epoch(0);
        assert_eq!(e0, s.epoch(0));
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 4, 5, 6, 8, 9]);
        assert!((1..10).any(|e| s.epoch(e) != e0));
        let again = Sampler::new(&rows(), Split::Train, Selection::All, Order::Shuffled, 7)
            .unwrap()
            .epoch(3);
        assert_eq!(again, s.epoch(3));
        let other =
            Sampler::new(&rows(), Split::Train, Selection::All, Order::Shuffled, 8).unwrap();
        assert!((0..10).any(|e| other.epoch(e) != s.epoch(e)));
    }

    #[test]
    fn subset_restricts_and_names_bad_ids() {
        let sel = |ids: &[u64]| Selection::Subset {
            subset: subset(ids),
            origin: Some("subset.csv".into()),
        };
        let s = Sampler::new(&rows(), Split::Train, sel(&[1, 5, 9]), Order::Index, 0).unwrap();
        assert_eq!(s.epoch(0), vec![1, 5, 9]);
        let e = Sampler::new(&rows(), Split::Train, sel(&[1, 7]), Order::Shuffled, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("subset.csv") && e.contains("patch 7") && e.contains("black"),
            "{e}"
        );
        let e = Sampler::new(&rows(), Split::Train, sel(&[11]), Order::Shuffled, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patch 11") && e.contains("'val'"), "{e}");
        let e = Sampler::new(&rows(), Split::Train, sel(&[40]), Order::Shuffled, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patch 40"), "{e}");
    }

    #[test]
    fn weighted_draws_favour_heavy_patches() {
        let mut w = subset(&[0, 1, 2, 4]);
        w.weights = vec![1.0, 1.0, 0.0, 8.0];
        let sel = Selection::Weighted {
            subset: w,
            epoch_size: Some(10_000),
            origin: None,
        };
        let s = Sampler::new(&rows(), Split::Train, sel, Order::Shuffled, 1).unwrap();
        assert_eq!(s.len(), 10_000);
        let ids = s.epoch(0);
        assert_eq!(ids, s.epoch(0));
        let count = |k| ids.iter().filter(|&&i| i == k).count() as f64;
        assert_eq!(count(2), 0.0, "a zero weight is never drawn");
        // Expected 1000, 1000, 8000; binomial sd ~ 30 and 40.
        assert!((count(0) - 1000.0).abs() < 150.0, "{}", count(0));
        assert!((count(1) - 1000.0).abs() < 150.0, "{}", count(1));
        assert!((count(4) - 8000.0).abs() < 200.0, "{}", count(4));
    }

    #[test]
    fn weighted_rejects_bad_settings() {
        let mut w = subset(&[0, 1]);
        w.weights = vec![0.0, 0.0];
        let sel = |subset: Subset, order| {
            Sampler::new(
                &rows(),
                Split::Train,
                Selection::Weighted {
                    subset,
                    epoch_size: None,
                    origin: None,
                },
                order,
                0,
            )
        };
        assert!(sel(w, Order::Shuffled).is_err());
        assert!(sel(subset(&[0, 1]), Order::Index).is_err());
        assert!(sel(subset(&[0, 3]), Order::Shuffled).is_err());
        assert_eq!(sel(subset(&[0, 1]), Order::Shuffled).unwrap().len(), 2);
    }
}
