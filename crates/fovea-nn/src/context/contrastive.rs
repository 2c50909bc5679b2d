//! The supervised contrastive term on patch embeddings within a batch (Khosla et al., 2020,
//! the `L_out` form): patches with the same [MA, HE, EX, SE] label vector are pulled
//! together, the others pushed apart.

use tch::{Kind, Tensor};

/// `z` `[B, D]` L2-normalised embeddings, `labels` `[B, 4]` 0/1: the mean over anchors
/// with at least one positive of
/// `-1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t))`,
/// where `P(i)` are the other samples with the same label vector. Zero (with a gradient
/// path) when no sample has a positive.
pub fn supervised_contrastive(z: &Tensor, labels: &Tensor, temperature: f64) -> Tensor {
    let b = z.size()[0];
    let dev = z.device();
    let z = z.to_kind(Kind::Float);
    let sim = z.matmul(&z.tr()) / temperature;
    // Subtracting each row's maximum changes no ratio and keeps exp finite.
    let sim = &sim - sim.amax([1], true).detach();
    let not_self = Tensor::eye(b, (Kind::Bool, dev)).logical_not();
    let l = labels.to_kind(Kind::Float);
    let same = (l.unsqueeze(1) - l.unsqueeze(0))
        .abs()
        .sum_dim_intlist(-1, false, Kind::Float)
        .eq(0.0);
    let pos = same.logical_and(&not_self).to_kind(Kind::Float);
    let denom = (sim.exp() * not_self.to_kind(Kind::Float))
        .sum_dim_intlist(1, true, Kind::Float)
        .log();
    let log_prob = &sim - denom;
    let n_pos = pos.sum_dim_intlist(1, false, Kind::Float);
    let has = n_pos.gt(0.0).to_kind(Kind::Float);
    let per_anchor = (pos * log_prob).sum_dim_intlist(1, false, Kind::Float) / n_pos.clamp_min(1.0);
    let anchors = has.sum(Kind::Float);
    -(per_anchor * &has).sum(Kind::Float) / anchors.clamp_min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (Tensor, Tensor) {
        let raw = Tensor::from_slice(&[
            0.3f32, -1.2, 0.5, 0.1, 0.4, -0.7, 1.5, 0.2, 0.2, -0.6, -0.3, 0.9, 0.2, 0.8, 0.1, -1.0,
            0.5, 0.4,
        ])
        .view([6, 3]);
        let z = &raw / raw.norm_scalaropt_dim(2, [1], true);
        let labels = Tensor::from_slice(&[
            1f32, 0., 0., 0., 0., 0., 1., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 0., 0.,
            1., 0., 1.,
        ])
        .view([6, 4]);
        (z, labels)
    }

    /// The value printed by `bench/reference/supcon.py` (NumPy, the paper's formula
    /// written out loop by loop) for the same six embeddings and labels at t = 0.5.
    #[test]
    fn matches_the_numpy_reference() {
        let (z, labels) = example();
        let got = supervised_contrastive(&z, &labels, 0.5).double_value(&[]);
        assert!((got - 1.093_533_751_5).abs() < 1e-5, "{got}");
    }

    #[test]
    fn no_positive_gives_zero_and_aligned_positives_lower_the_loss() {
        let (z, _) = example();
        // Four distinct label vectors and one healthy patch: nobody has a positive.
        let distinct = Tensor::cat(
            &[
                Tensor::eye(4, (Kind::Float, tch::Device::Cpu)),
                Tensor::zeros([1, 4], (Kind::Float, tch::Device::Cpu)),
            ],
            0,
        );
        let got = supervised_contrastive(&z.narrow(0, 0, 5), &distinct, 0.1).double_value(&[]);
        assert_eq!(got, 0.0);
        // Two identical embeddings with the same label, two opposite with the other.
        let a = Tensor::from_slice(&[1f32, 0., 1., 0., 0., 1., 0., 1.]).view([4, 2]);
        let good = Tensor::from_slice(&[
            1f32, 0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.,
        ])
        .view([4, 4]);
        let bad = Tensor::from_slice(&[
            1f32, 0., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0.,
        ])
        .view([4, 4]);
        let lg = supervised_contrastive(&a, &good, 0.1).double_value(&[]);
        let lb = supervised_contrastive(&a, &bad, 0.1).double_value(&[]);
        assert!(lg < lb, "{lg} !< {lb}");
    }
}
