//! Patch scores from pixel probabilities: a segmentation model's full-resolution output
//! `[4, H, W]` (MA, HE, EX, SE) pooled over each patch of a store (CONTRACTS 2: top-left
//! corner `x, y`, side `size`), so that the patch classifier and the segmentation model are
//! scored on the same patches with the same patch-level metrics (issue 16, point 6).
//!
//! Poolings ([`Pooling`]), per lesion over the pixels of the patch:
//! - [`Pooling::Max`] (the default): the largest probability. A patch is labelled positive
//!   for a lesion when at least one of its pixels is lesion (CONTRACTS 2's labelling rule,
//!   `min_lesion_px = 1`), so the score that matches that label is "how likely is the most
//!   lesion-like pixel of the patch": one confident microaneurysm pixel makes a positive
//!   patch, as one marked pixel makes a positive label. A mean would dilute a 3-pixel
//!   microaneurysm over 16,384 pixels of a 128-pixel patch.
//! - [`Pooling::TopKMean`]`(k)`: the mean of the `k` largest probabilities (all pixels when
//!   the patch has fewer): less sensitive to one noisy pixel, closer to a rule with
//!   `min_lesion_px = k`.
//! - [`Pooling::Quantile`]`(q)`: the `q`-quantile of the patch's probabilities, nearest
//!   rank: sorted ascending `v[0..n]`, the value `v[round(q * (n - 1))]` (`q = 1` is the
//!   maximum, `q = 0` the minimum).
//!
//! A store extracted with a centred label region (`label.region` C < P) labels a patch by
//! the pixels of that region only: pass the region's square
//! ([`PatchRect::label_region`]) rather than the patch's.

use ndarray::{Array2, ArrayView3};
use serde::{Deserialize, Serialize};

use crate::error::{MapsError, Result};
use crate::heatmap::NUM_LESIONS;

/// A square of the photograph: top-left corner `(x, y)` and side `size`, in pixels
/// (a patch store's `x, y, size` columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PatchRect {
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

impl PatchRect {
    /// The centred square of side `region` inside this one (the store's label region:
    /// offset `(size - region) / 2`; `region` 0 or >= `size` is the whole patch).
    pub fn label_region(self, region: u32) -> PatchRect {
        if region == 0 || region >= self.size {
            return self;
        }
        let off = (self.size - region) / 2;
        PatchRect {
            x: self.x + off,
            y: self.y + off,
            size: region,
        }
    }
}

/// How a patch's pixel probabilities become its score (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    #[default]
    Max,
    /// Mean of the `k` largest, `k >= 1`.
    TopKMean(usize),
    /// Nearest-rank quantile, `q` in [0, 1].
    Quantile(f64),
}

impl Pooling {
    /// Checks the pooling's parameter.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Pooling::Max => Ok(()),
            Pooling::TopKMean(0) => Err(MapsError::setting(
                "patch pooling",
                "top-k mean needs k >= 1",
            )),
            Pooling::TopKMean(_) => Ok(()),
            Pooling::Quantile(q) if (0.0..=1.0).contains(&q) => Ok(()),
            Pooling::Quantile(q) => Err(MapsError::setting(
                "patch pooling",
                format!("quantile {q} is not in [0, 1]"),
            )),
        }
    }

    /// The pooled value of `v` (not empty; reordered in place for the top-k and quantile
    /// poolings).
    fn pool(&self, v: &mut [f32]) -> f32 {
        match *self {
            Pooling::Max => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Pooling::TopKMean(k) => {
                let k = k.min(v.len());
                let n = v.len();
                // The k largest at the end, in any order.
                if k < n {
                    v.select_nth_unstable_by(n - k, f32::total_cmp);
                }
                let top = &v[n - k..];
                (top.iter().map(|&p| f64::from(p)).sum::<f64>() / k as f64) as f32
            }
            Pooling::Quantile(q) => {
                let r = ((v.len() - 1) as f64 * q).round() as usize;
                *v.select_nth_unstable_by(r, f32::total_cmp).1
            }
        }
    }
}

/// Scores `[patches.len(), 4]` (MA, HE, EX, SE) of `patches` from the pixel probabilities
/// `probs` `[4, H, W]`, each patch's pixels pooled by `pooling`. A patch that does not lie
/// wholly inside the map, a side of 0, a map without four channels, or a probability that
/// is not a finite number inside a patch is an error naming the patch (its position in
/// `patches`).
pub fn patch_scores(
    probs: ArrayView3<f32>,
    patches: &[PatchRect],
    pooling: Pooling,
) -> Result<Array2<f32>> {
    pooling.validate()?;
    let (c, h, w) = probs.dim();
    if c != NUM_LESIONS {
        return Err(MapsError::setting(
            "probability map",
            format!("{c} channels, expected {NUM_LESIONS} (MA, HE, EX, SE)"),
        ));
    }
    let mut out = Array2::<f32>::zeros((patches.len(), NUM_LESIONS));
    let mut buf: Vec<f32> = Vec::new();
    for (i, r) in patches.iter().enumerate() {
        let (x, y, s) = (r.x as usize, r.y as usize, r.size as usize);
        if s == 0 || x + s > w || y + s > h {
            return Err(MapsError::setting(
                "patch",
                format!(
                    "patch {i} at ({}, {}) of side {} does not lie inside the {w}x{h} probability map",
                    r.x, r.y, r.size
                ),
            ));
        }
        for l in 0..NUM_LESIONS {
            let window = probs.slice(ndarray::s![l, y..y + s, x..x + s]);
            buf.clear();
            buf.extend(window.iter().copied());
            if let Some(bad) = buf.iter().find(|p| !p.is_finite()) {
                return Err(MapsError::setting(
                    "probability map",
                    format!(
                        "patch {i} at ({}, {}): {} probability {bad} is not a finite number",
                        r.x,
                        r.y,
                        fovea_data::LESIONS[l].code()
                    ),
                ));
            }
            out[[i, l]] = pooling.pool(&mut buf);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use proptest::prelude::*;

    fn rect(x: u32, y: u32, size: u32) -> PatchRect {
        PatchRect { x, y, size }
    }

    /// A 4x6x8 map where lesion l at (y, x) is `(l * 100 + y * 8 + x) / 1000`.
    fn ramp() -> Array3<f32> {
        Array3::from_shape_fn((4, 6, 8), |(l, y, x)| (l * 100 + y * 8 + x) as f32 / 1000.0)
    }

    #[test]
    fn max_by_hand() {
        let m = ramp();
        let s = patch_scores(m.view(), &[rect(0, 0, 2), rect(5, 3, 3)], Pooling::Max).unwrap();
        // Patch 0: bottom-right pixel (1, 1) = 9; patch 1: (5, 7) = 47.
        for l in 0..4 {
            assert_eq!(s[[0, l]], (l * 100 + 9) as f32 / 1000.0);
            assert_eq!(s[[1, l]], (l * 100 + 47) as f32 / 1000.0);
        }
    }

    #[test]
    fn one_lesion_pixel_makes_the_max_score() {
        let mut m = Array3::<f32>::from_elem((4, 64, 64), 0.01);
        m[[0, 40, 10]] = 0.9; // one MA pixel in the second patch of the first column
        let patches = [rect(0, 0, 32), rect(0, 32, 32), rect(32, 32, 32)];
        let s = patch_scores(m.view(), &patches, Pooling::Max).unwrap();
        assert_eq!(s.column(0).to_vec(), vec![0.01, 0.9, 0.01]);
        assert!(s.column(1).iter().all(|&v| v == 0.01));
        // A mean-like pooling dilutes it; the top-2 mean halves the gap.
        let t = patch_scores(m.view(), &patches, Pooling::TopKMean(2)).unwrap();
        assert!((t[[1, 0]] - (0.9 + 0.01) / 2.0).abs() < 1e-6);
        let median = patch_scores(m.view(), &patches, Pooling::Quantile(0.5)).unwrap();
        assert_eq!(median[[1, 0]], 0.01);
    }

    #[test]
    fn quantile_and_top_k_by_hand() {
        let m = ramp();
        let p = [rect(0, 0, 2)]; // lesion 0 pixels 0, 1, 8, 9 (/1000)
        let q = |q| patch_scores(m.view(), &p, Pooling::Quantile(q)).unwrap()[[0, 0]];
        assert_eq!(q(0.0), 0.0);
        assert_eq!(q(1.0), 0.009);
        assert_eq!(q(0.5), 0.008); // rank round(1.5) = 2
        let k = |k| patch_scores(m.view(), &p, Pooling::TopKMean(k)).unwrap()[[0, 0]];
        assert!((k(2) - 0.0085).abs() < 1e-7);
        assert!((k(100) - 0.0045).abs() < 1e-7); // all four pixels
        assert_eq!(k(1), 0.009);
    }

    #[test]
    fn label_region_is_centred() {
        assert_eq!(rect(10, 20, 8).label_region(4), rect(12, 22, 4));
        assert_eq!(rect(10, 20, 8).label_region(0), rect(10, 20, 8));
        assert_eq!(rect(10, 20, 8).label_region(9), rect(10, 20, 8));
    }

    #[test]
    fn bad_input_is_an_error_naming_the_patch() {
        let m = ramp();
        let err = patch_scores(m.view(), &[rect(0, 0, 2), rect(6, 0, 3)], Pooling::Max)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("patch 1 at (6, 0)") && err.contains("8x6"),
            "{err}"
        );
        assert!(patch_scores(m.view(), &[rect(0, 0, 0)], Pooling::Max).is_err());
        assert!(patch_scores(m.view(), &[], Pooling::TopKMean(0)).is_err());
        assert!(patch_scores(m.view(), &[], Pooling::Quantile(1.5)).is_err());
        let three = Array3::<f32>::zeros((3, 4, 4));
        assert!(patch_scores(three.view(), &[], Pooling::Max).is_err());
        let mut nan = ramp();
        nan[[2, 1, 1]] = f32::NAN;
        let err = patch_scores(nan.view(), &[rect(0, 0, 2)], Pooling::Max)
            .unwrap_err()
            .to_string();
        assert!(err.contains("patch 0") && err.contains("EX"), "{err}");
        // No patch: an empty [0, 4] table.
        assert_eq!(
            patch_scores(m.view(), &[], Pooling::Max).unwrap().dim(),
            (0, 4)
        );
    }

    /// A random map and random patches inside it.
    fn map_and_patches() -> impl Strategy<Value = (Array3<f32>, Vec<PatchRect>)> {
        (1usize..12, 1usize..12).prop_flat_map(|(h, w)| {
            let pixels = proptest::collection::vec(0.0f32..=1.0, 4 * h * w);
            let patch = (1..=h.min(w)).prop_flat_map(move |s| {
                (0..=w - s, 0..=h - s).prop_map(move |(x, y)| rect(x as u32, y as u32, s as u32))
            });
            (
                pixels.prop_map(move |v| Array3::from_shape_vec((4, h, w), v).unwrap()),
                proptest::collection::vec(patch, 0..8),
            )
        })
    }

    fn pooling() -> impl Strategy<Value = Pooling> {
        prop_oneof![
            Just(Pooling::Max),
            (1usize..200).prop_map(Pooling::TopKMean),
            (0.0f64..=1.0).prop_map(Pooling::Quantile),
        ]
    }

    proptest! {
        /// Every pooling's score lies within [min, max] of the patch's pixels, and max
        /// pooling equals the brute-force maximum.
        #[test]
        fn scores_lie_within_the_pixels((m, patches) in map_and_patches(), pool in pooling()) {
            let s = patch_scores(m.view(), &patches, pool).unwrap();
            let max = patch_scores(m.view(), &patches, Pooling::Max).unwrap();
            for (i, r) in patches.iter().enumerate() {
                for l in 0..4 {
                    let mut lo = f32::INFINITY;
                    let mut hi = f32::NEG_INFINITY;
                    for y in r.y..r.y + r.size {
                        for x in r.x..r.x + r.size {
                            let v = m[[l, y as usize, x as usize]];
                            lo = lo.min(v);
                            hi = hi.max(v);
                        }
                    }
                    // The top-k mean is computed in f64 and rounded once.
                    prop_assert!(s[[i, l]] >= lo - 1e-6 && s[[i, l]] <= hi + 1e-6,
                        "{pool:?} patch {i} lesion {l}: {} not in [{lo}, {hi}]", s[[i, l]]);
                    prop_assert_eq!(max[[i, l]], hi);
                }
            }
        }
    }
}
