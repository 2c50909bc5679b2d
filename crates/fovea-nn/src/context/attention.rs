//! The fusion heads: late concatenation of the global vector, cross-attention of a patch
//! over the photograph's feature-map tokens, and gated-attention pooling (MIL) over the
//! patches of a photograph.
//!
//! Multi-head attention is written out with tensor operations (tch has no
//! `nn::MultiheadAttention`): `softmax(q k^T / sqrt(d_h) + mask) v` per head, as
//! `torch.nn.functional.scaled_dot_product_attention` with a boolean key mask.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Fourier features of positions in `[0, 1]^2`: `sin(2 pi f p)`, `cos(2 pi f p)` for
/// `f` in 1, 2, 4, 8 and both coordinates: `[N, 2]` -> `[N, 16]`.
pub const POS_FEATURES: i64 = 16;

pub fn fourier_features(pos: &Tensor) -> Tensor {
    let freqs = Tensor::from_slice(&[1f32, 2.0, 4.0, 8.0]).to_device(pos.device())
        * (2.0 * std::f64::consts::PI);
    // [N, 2, 1] * [4] -> [N, 2, 4]
    let a = pos.to_kind(Kind::Float).unsqueeze(-1) * freqs;
    Tensor::cat(&[a.sin(), a.cos()], -1).flatten(1, -1)
}

/// Centres of an `h` x `w` grid of cells in `[0, 1]^2` as `(x, y)`, row-major: `[h*w, 2]`.
pub fn grid_positions(h: i64, w: i64) -> Tensor {
    let mut v = Vec::with_capacity((h * w * 2) as usize);
    for r in 0..h {
        for c in 0..w {
            v.push((c as f32 + 0.5) / w as f32);
            v.push((r as f32 + 0.5) / h as f32);
        }
    }
    Tensor::from_slice(&v).view([h * w, 2])
}

/// Scaled dot-product attention of `q` `[B, H, Q, d]` over `k`, `v` `[B, H, T, d]`;
/// `mask` `[B, T]` (true = may be attended to). A row whose keys are all masked attends
/// to nothing and returns zeros (rather than NaN). Returns `(out [B, H, Q, d],
/// weights [B, H, Q, T])`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> (Tensor, Tensor) {
    let d = *q.size().last().unwrap_or(&1) as f64;
    let mut scores = q.matmul(&k.transpose(-2, -1)) / d.sqrt();
    if let Some(m) = mask {
        let keep = m.unsqueeze(1).unsqueeze(1); // [B, 1, 1, T]
        scores = scores.masked_fill(&keep.logical_not(), f64::NEG_INFINITY);
        let w = scores.softmax(-1, Kind::Float);
        // All keys masked: softmax of all -inf is NaN; such rows get zero weights.
        let w = w.nan_to_num(0.0, 0.0, 0.0);
        (w.matmul(v), w)
    } else {
        let w = scores.softmax(-1, Kind::Float);
        (w.matmul(v), w)
    }
}

/// Late fusion: `logits = fc(patch) + g([LN(global); pos])`, the same as one linear layer
/// over the concatenation `[patch; LN(global); pos]`, written as a sum so that lesion maps
/// can reuse the trunk's window logits and add the photograph's term.
#[derive(Debug)]
pub struct ConcatHead {
    norm: nn::LayerNorm,
    lin: nn::Linear,
}

impl ConcatHead {
    pub fn new(vs: &nn::Path, global_dim: i64, classes: i64) -> ConcatHead {
        ConcatHead {
            norm: nn::layer_norm(vs / "norm", vec![global_dim], Default::default()),
            lin: nn::linear(
                vs / "global_fc",
                global_dim + POS_FEATURES,
                classes,
                nn::LinearConfig {
                    bias: false,
                    ..Default::default()
                },
            ),
        }
    }

    /// `pooled` `[B, G]`, `pos` `[B, 2]` -> the added logits `[B, classes]`.
    pub fn forward(&self, pooled: &Tensor, pos: &Tensor) -> Tensor {
        let g = pooled.apply(&self.norm);
        Tensor::cat(&[g, fourier_features(pos)], 1).apply(&self.lin)
    }
}

/// Cross-attention: the patch feature plus an embedding of its position is the query over
/// the photograph's tokens (each with its own position embedding); the attended value is
/// added back to the patch feature (residual) before the classifier. The output projection
/// starts at zero, so an untrained fusion is the patch-only model.
#[derive(Debug)]
pub struct CrossAttention {
    heads: i64,
    dim: i64,
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    pos_q: nn::Linear,
    pos_k: nn::Linear,
    norm_tokens: nn::LayerNorm,
    norm_patch: nn::LayerNorm,
}

impl CrossAttention {
    pub fn new(
        vs: &nn::Path,
        patch_dim: i64,
        token_dim: i64,
        dim: i64,
        heads: i64,
    ) -> CrossAttention {
        let lin = |name: &str, i: i64, o: i64| nn::linear(vs / name, i, o, Default::default());
        CrossAttention {
            heads,
            dim,
            q: lin("q", patch_dim, dim),
            k: lin("k", token_dim, dim),
            v: lin("v", token_dim, dim),
            out: nn::linear(
                vs / "out",
                dim,
                patch_dim,
                nn::LinearConfig {
                    ws_init: nn::Init::Const(0.0),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            ),
            pos_q: lin("pos_q", POS_FEATURES, dim),
            pos_k: lin("pos_k", POS_FEATURES, dim),
            norm_tokens: nn::layer_norm(vs / "norm_tokens", vec![token_dim], Default::default()),
            norm_patch: nn::layer_norm(vs / "norm_patch", vec![patch_dim], Default::default()),
        }
    }

    /// Keys and values of each photograph's tokens: `tokens` `[U, T, G]`, `token_pos`
    /// `[T, 2]` -> `([U, H, T, d], [U, H, T, d])`.
    pub fn keys_values(&self, tokens: &Tensor, token_pos: &Tensor) -> (Tensor, Tensor) {
        let (u, t, _) = tokens.size3().expect("tokens [U, T, G]");
        let dh = self.dim / self.heads;
        let tn = tokens.apply(&self.norm_tokens);
        let pk = fourier_features(token_pos).apply(&self.pos_k); // [T, d]
        let k = (tn.apply(&self.k) + pk)
            .view([u, t, self.heads, dh])
            .transpose(1, 2);
        let v = tn
            .apply(&self.v)
            .view([u, t, self.heads, dh])
            .transpose(1, 2);
        (k, v)
    }

    /// The attended residual for patches `feat` `[B, C]` at `pos` `[B, 2]`, each over the
    /// keys/values of photograph `which[b]` (`[B]` int64 into the `U` of
    /// [`Self::keys_values`]), with `mask` `[U, T]`. Returns (`[B, C]`, weights `[B, H, T]`).
    pub fn forward(
        &self,
        feat: &Tensor,
        pos: &Tensor,
        kv: &(Tensor, Tensor),
        mask: &Tensor,
        which: &Tensor,
    ) -> (Tensor, Tensor) {
        let b = feat.size()[0];
        let dh = self.dim / self.heads;
        let q = (feat.apply(&self.norm_patch).apply(&self.q)
            + fourier_features(pos).apply(&self.pos_q))
        .view([b, self.heads, 1, dh]);
        if kv.0.size()[0] == 1 {
            // One photograph (lesion maps): its patches are the queries of one attention
            // call, rather than B copies of its keys.
            let q1 = q.permute([2, 1, 0, 3]); // [1, H, B, dh]
            let (o, w) = attend(&q1, &kv.0, &kv.1, Some(mask));
            let o = o
                .permute([2, 0, 1, 3])
                .reshape([b, self.dim])
                .apply(&self.out);
            return (o, w.squeeze_dim(0).transpose(0, 1));
        }
        let k = kv.0.index_select(0, which);
        let v = kv.1.index_select(0, which);
        let m = mask.index_select(0, which);
        let (o, w) = attend(&q, &k, &v, Some(&m)); // [B, H, 1, dh]
        let o = o.view([b, self.dim]).apply(&self.out);
        (o, w.squeeze_dim(2))
    }
}

/// Gated attention pooling over the instances of a bag (Ilse, Tomczak & Welling, 2018),
/// one attention branch per lesion: `a_ic = softmax_i(w_c^T (tanh(V h_i) * sigmoid(U h_i)))`,
/// `z_c = sum_i a_ic h_i`, `logit_c = cls_c(z_c)`.
#[derive(Debug)]
pub struct GatedAttentionMil {
    v: nn::Linear,
    u: nn::Linear,
    w: nn::Linear,
    cls_w: Tensor,
    cls_b: Tensor,
}

impl GatedAttentionMil {
    pub fn new(vs: &nn::Path, feat_dim: i64, hidden: i64, classes: i64) -> GatedAttentionMil {
        let bound = 1.0 / (feat_dim as f64).sqrt();
        GatedAttentionMil {
            v: nn::linear(vs / "attn_v", feat_dim, hidden, Default::default()),
            u: nn::linear(vs / "attn_u", feat_dim, hidden, Default::default()),
            w: nn::linear(vs / "attn_w", hidden, classes, Default::default()),
            cls_w: vs.var(
                "cls_weight",
                &[classes, feat_dim],
                nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            ),
            cls_b: vs.var("cls_bias", &[classes], nn::Init::Const(0.0)),
        }
    }

    /// Instances `h` `[N, C]` (optionally `mask` `[N]`, true = in the bag) -> bag logits
    /// `[classes]` and attention weights `[N, classes]` (each column sums to 1).
    pub fn forward(&self, h: &Tensor, mask: Option<&Tensor>) -> (Tensor, Tensor) {
        let gate = h.apply(&self.v).tanh() * h.apply(&self.u).sigmoid();
        let mut a = gate.apply(&self.w); // [N, classes]
        if let Some(m) = mask {
            a = a.masked_fill(&m.logical_not().unsqueeze(1), f64::NEG_INFINITY);
        }
        let a = a.softmax(0, Kind::Float);
        let z = a.transpose(0, 1).matmul(h); // [classes, C]
        let logits = (z * &self.cls_w).sum_dim_intlist(1, false, Kind::Float) + &self.cls_b;
        (logits, a)
    }
}

/// Projection head for the contrastive term: `Linear - ReLU - Linear`, L2-normalised.
#[derive(Debug)]
pub struct Projection {
    a: nn::Linear,
    b: nn::Linear,
}

impl Projection {
    pub fn new(vs: &nn::Path, feat_dim: i64, dim: i64) -> Projection {
        Projection {
            a: nn::linear(vs / "0", feat_dim, feat_dim, Default::default()),
            b: nn::linear(vs / "2", feat_dim, dim, Default::default()),
        }
    }

    pub fn forward(&self, h: &Tensor) -> Tensor {
        let z = h.apply(&self.a).relu().apply(&self.b);
        let n = z.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        z / n
    }
}

impl Module for Projection {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Projection::forward(self, xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn attention_shapes_and_masking() {
        tch::manual_seed(0);
        let (b, h, t, d) = (3, 2, 5, 4);
        let q = Tensor::randn([b, h, 1, d], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([b, h, t, d], (Kind::Float, Device::Cpu));
        let v = Tensor::randn([b, h, t, d], (Kind::Float, Device::Cpu));
        // Sample 0 sees keys 0..2 only, sample 1 all, sample 2 none.
        let mask = Tensor::from_slice(&[
            true, true, false, false, false, true, true, true, true, true, false, false, false,
            false, false,
        ])
        .view([b, t]);
        let (o, w) = attend(&q, &k, &v, Some(&mask));
        assert_eq!(o.size(), vec![b, h, 1, d]);
        assert_eq!(w.size(), vec![b, h, 1, t]);
        // Masked keys get no weight; rows with keys sum to 1; the empty row is zero.
        let masked = w
            .get(0)
            .narrow(-1, 2, 3)
            .abs()
            .sum(Kind::Float)
            .double_value(&[]);
        assert_eq!(masked, 0.0);
        let s0 = w.get(0).sum_dim_intlist(-1, false, Kind::Float);
        assert!((s0 - 1.0).abs().max().double_value(&[]) < 1e-6);
        assert_eq!(w.get(2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(o.get(2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // With keys 0..2, the output equals attention over those two keys alone.
        let (o2, _) = attend(
            &q.narrow(0, 0, 1),
            &k.narrow(0, 0, 1).narrow(2, 0, 2),
            &v.narrow(0, 0, 1).narrow(2, 0, 2),
            None,
        );
        let diff = (o.narrow(0, 0, 1) - o2).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // Against the definition for one head: softmax(q.k / sqrt(d)) v.
        let (qq, kk, vv) = (q.get(1).get(0), k.get(1).get(0), v.get(1).get(0));
        let s = (kk.matmul(&qq.get(0)) / (d as f64).sqrt()).softmax(0, Kind::Float);
        let want = s.unsqueeze(0).matmul(&vv);
        let diff = (o.get(1).get(0) - want).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn cross_attention_starts_as_the_identity_and_shapes_hold() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let ca = CrossAttention::new(&vs.root(), 8, 6, 4, 2);
        let tokens = Tensor::randn([2, 9, 6], (Kind::Float, Device::Cpu));
        let kv = ca.keys_values(&tokens, &grid_positions(3, 3));
        assert_eq!(kv.0.size(), vec![2, 2, 9, 2]);
        let feat = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
        let pos = Tensor::rand([5, 2], (Kind::Float, Device::Cpu));
        let mask = Tensor::ones([2, 9], (Kind::Bool, Device::Cpu));
        let which = Tensor::from_slice(&[0i64, 1, 1, 0, 1]);
        let (o, w) = ca.forward(&feat, &pos, &kv, &mask, &which);
        assert_eq!(o.size(), vec![5, 8]);
        assert_eq!(w.size(), vec![5, 2, 9]);
        // One photograph: the shared-keys path equals the per-patch path.
        let one = tokens.narrow(0, 1, 1);
        let kv1 = ca.keys_values(&one, &grid_positions(3, 3));
        let zeros = Tensor::zeros([5], (Kind::Int64, Device::Cpu));
        let m1 = Tensor::from_slice(&[true, true, false, true, true, true, false, true, true])
            .view([1, 9]);
        let (_, w1) = ca.forward(&feat, &pos, &kv1, &m1, &zeros);
        let kv2 = (kv1.0.repeat([2, 1, 1, 1]), kv1.1.repeat([2, 1, 1, 1]));
        let (_, w2) = ca.forward(&feat, &pos, &kv2, &m1.repeat([2, 1]), &zeros);
        assert_eq!(w1.size(), vec![5, 2, 9]);
        assert!((w1 - w2).abs().max().double_value(&[]) < 1e-6);
        // Zero-initialised output projection: no residual before training.
        assert_eq!(o.abs().sum(Kind::Float).double_value(&[]), 0.0);
        let sums = w.sum_dim_intlist(-1, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn attention_pooling_weights_sum_to_one_per_lesion() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let mil = GatedAttentionMil::new(&vs.root(), 8, 5, 4);
        let h = Tensor::randn([7, 8], (Kind::Float, Device::Cpu));
        let (logits, a) = mil.forward(&h, None);
        assert_eq!(logits.size(), vec![4]);
        assert_eq!(a.size(), vec![7, 4]);
        let sums = a.sum_dim_intlist(0, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-6);
        // Masked instances get no weight, and the rest still sum to 1.
        let mask = Tensor::from_slice(&[true, true, false, true, false, true, true]);
        let (_, a) = mil.forward(&h, Some(&mask));
        assert_eq!(a.get(2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let sums = a.sum_dim_intlist(0, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-6);
        // A bag of one identical instance repeated pools to that instance.
        let one = Tensor::randn([1, 8], (Kind::Float, Device::Cpu));
        let (l1, _) = mil.forward(&one, None);
        let (l3, _) = mil.forward(&one.repeat([3, 1]), None);
        assert!((l1 - l3).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn fourier_features_have_sixteen_columns_and_grid_positions_are_centres() {
        let f = fourier_features(&Tensor::from_slice(&[0.25f32, 0.5]).view([1, 2]));
        assert_eq!(f.size(), vec![1, POS_FEATURES]);
        let g = grid_positions(2, 4);
        let v: Vec<f32> = Vec::try_from(g.view([-1])).unwrap();
        assert_eq!(&v[..4], &[0.125, 0.25, 0.375, 0.25]);
        assert_eq!(&v[14..], &[0.875, 0.75]);
    }
}
