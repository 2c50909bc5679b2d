//! Swin-T (Liu et al., 2021) in torchvision's `swin_t` layout, as the whole-image encoder.
//!
//! Parameter names are torchvision's (`features.0.0.weight`, `features.1.0.attn.qkv.weight`,
//! `features.2.reduction.weight`, ..., `norm.weight`), so `torch.save(swin_t(weights=...)
//! .state_dict())` loads with [`load_swin_pretrained`] (the `head.*` classifier and the
//! `relative_position_index` buffers are not needed: the index is recomputed here).
//!
//! Stages: a 4x4 patch embedding to 96 channels, then 2, 2, 6, 2 blocks of 96, 192, 384,
//! 768 channels with 3, 6, 12, 24 heads, patch merging between stages, 7x7 windows, every
//! second block's windows shifted by 3 with the attention mask of the cyclic shift.
//!
//! Inputs of any size (not only 224): as torchvision does, each block pads its feature map
//! on the right and bottom to a multiple of the window (and skips the shift when the window
//! covers the whole map), and patch merging pads odd sides, so the output is
//! `ceil`-free `[B, H/32, W/32, 768]` for sides that are multiples of 32; the relative
//! position bias needs no interpolation because windows are always 7x7.
//!
//! Written with tch tensor operations because tch-rs has no Swin Transformer.

use std::path::Path;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::error::{NnError, Result};
use crate::pretrained::{load_named, read_state_dict};

pub const SWIN_T_DIM: i64 = 768;
const EMBED: i64 = 96;
const DEPTHS: [usize; 4] = [2, 2, 6, 2];
const HEADS: [i64; 4] = [3, 6, 12, 24];
const WINDOW: i64 = 7;
const STOCHASTIC_DEPTH: f64 = 0.2;

/// The additive attention mask of shifted windows: `[nW, ws*ws, ws*ws]`, 0 where two
/// tokens of a window come from the same region of the (padded, cyclically shifted) map
/// and -100 where they do not (torchvision's values), windows in row-major order.
pub fn shifted_window_mask(ph: i64, pw: i64, ws: i64, shift: [i64; 2]) -> Vec<f32> {
    let region = |i: i64, n: i64, s: i64| -> i64 {
        if i < n - ws {
            0
        } else if i < n - s {
            1
        } else {
            2
        }
    };
    let (nh, nw) = (ph / ws, pw / ws);
    let n = (ws * ws) as usize;
    let mut out = Vec::with_capacity((nh * nw) as usize * n * n);
    for wy in 0..nh {
        for wx in 0..nw {
            let labels: Vec<i64> = (0..ws * ws)
                .map(|t| {
                    let (y, x) = (wy * ws + t / ws, wx * ws + t % ws);
                    region(y, ph, shift[0]) * 3 + region(x, pw, shift[1])
                })
                .collect();
            for i in 0..n {
                for j in 0..n {
                    out.push(if labels[i] == labels[j] { 0.0 } else { -100.0 });
                }
            }
        }
    }
    out
}

/// torchvision's `relative_position_index` of a `ws` x `ws` window, `[ws^4]`.
pub fn relative_position_index(ws: i64) -> Vec<i64> {
    let n = ws * ws;
    let mut out = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let (ri, ci, rj, cj) = (i / ws, i % ws, j / ws, j % ws);
            out.push((ri - rj + ws - 1) * (2 * ws - 1) + (ci - cj + ws - 1));
        }
    }
    out
}

fn linear(vs: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    nn::linear(
        vs,
        i,
        o,
        nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias,
        },
    )
}

fn layer_norm(vs: nn::Path, c: i64) -> nn::LayerNorm {
    nn::layer_norm(vs, vec![c], Default::default())
}

/// `torchvision.ops.StochasticDepth(p, "row")`: in training, each sample's residual branch
/// is dropped with probability `p` and the kept ones scaled by `1/(1-p)`.
fn stochastic_depth(x: Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x;
    }
    let mut shape = vec![1i64; x.dim()];
    shape[0] = x.size()[0];
    let keep = Tensor::empty(shape.as_slice(), (x.kind(), x.device())).bernoulli_float_(1.0 - p);
    x * keep / (1.0 - p)
}

#[derive(Debug)]
struct ShiftedWindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    table: Tensor,
    index: Tensor,
    heads: i64,
    shift: i64,
}

impl ShiftedWindowAttention {
    fn new(vs: nn::Path, dim: i64, heads: i64, shift: i64) -> Self {
        let ws = WINDOW;
        ShiftedWindowAttention {
            qkv: linear(&vs / "qkv", dim, 3 * dim, true),
            proj: linear(&vs / "proj", dim, dim, true),
            table: vs.var(
                "relative_position_bias_table",
                &[(2 * ws - 1) * (2 * ws - 1), heads],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            index: Tensor::from_slice(&relative_position_index(ws)),
            heads,
            shift,
        }
    }

    /// `[B, H, W, C]` -> `[B, H, W, C]`.
    fn forward(&self, input: &Tensor) -> Tensor {
        let ws = WINDOW;
        let (b, h, w, c) = input.size4().expect("[B, H, W, C]");
        let pad_r = (ws - w % ws) % ws;
        let pad_b = (ws - h % ws) % ws;
        let mut x = input.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]);
        let (ph, pw) = (h + pad_b, w + pad_r);
        // No shift along a side the window already covers.
        let shift = [
            if ws >= ph { 0 } else { self.shift },
            if ws >= pw { 0 } else { self.shift },
        ];
        let shifted = shift[0] + shift[1] > 0;
        if shifted {
            x = x.roll([-shift[0], -shift[1]], [1, 2]);
        }
        let nw = (ph / ws) * (pw / ws);
        let n = ws * ws;
        let x = x
            .view([b, ph / ws, ws, pw / ws, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b * nw, n, c]);
        let dh = c / self.heads;
        let qkv = x
            .apply(&self.qkv)
            .reshape([b * nw, n, 3, self.heads, dh])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let q = q * (dh as f64).powf(-0.5);
        let bias = self
            .table
            .index_select(0, &self.index.to_device(self.table.device()))
            .view([n, n, -1])
            .permute([2, 0, 1])
            .unsqueeze(0);
        let mut attn = q.matmul(&k.transpose(-2, -1)) + bias;
        if shifted {
            let mask = Tensor::from_slice(&shifted_window_mask(ph, pw, ws, shift))
                .view([nw, n, n])
                .to_device(attn.device())
                .to_kind(attn.kind());
            attn = (attn.view([b, nw, self.heads, n, n]) + mask.unsqueeze(1).unsqueeze(0))
                .view([-1, self.heads, n, n]);
        }
        let attn = attn.softmax(-1, attn.kind());
        let x = attn
            .matmul(&v)
            .transpose(1, 2)
            .reshape([b * nw, n, c])
            .apply(&self.proj);
        let mut x = x
            .view([b, ph / ws, pw / ws, ws, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, ph, pw, c]);
        if shifted {
            x = x.roll([shift[0], shift[1]], [1, 2]);
        }
        x.narrow(1, 0, h).narrow(2, 0, w).contiguous()
    }
}

#[derive(Debug)]
struct SwinBlock {
    norm1: nn::LayerNorm,
    attn: ShiftedWindowAttention,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    drop: f64,
}

impl SwinBlock {
    fn new(vs: nn::Path, dim: i64, heads: i64, shift: i64, drop: f64) -> Self {
        SwinBlock {
            norm1: layer_norm(&vs / "norm1", dim),
            attn: ShiftedWindowAttention::new(&vs / "attn", dim, heads, shift),
            norm2: layer_norm(&vs / "norm2", dim),
            fc1: linear(&vs / "mlp" / "0", dim, 4 * dim, true),
            fc2: linear(&vs / "mlp" / "3", 4 * dim, dim, true),
            drop,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.attn.forward(&x.apply(&self.norm1));
        let x = x + stochastic_depth(y, self.drop, train);
        let y = x
            .apply(&self.norm2)
            .apply(&self.fc1)
            .gelu("none")
            .apply(&self.fc2);
        &x + stochastic_depth(y, self.drop, train)
    }
}

#[derive(Debug)]
struct PatchMerging {
    norm: nn::LayerNorm,
    reduction: nn::Linear,
}

impl PatchMerging {
    fn new(vs: nn::Path, dim: i64) -> Self {
        PatchMerging {
            norm: layer_norm(&vs / "norm", 4 * dim),
            reduction: linear(&vs / "reduction", 4 * dim, 2 * dim, false),
        }
    }

    /// `[B, H, W, C]` -> `[B, ceil(H/2), ceil(W/2), 2C]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        let (_, h, w, _) = x.size4().expect("[B, H, W, C]");
        let x = x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2]);
        let part = |r: i64, c: i64| x.slice(1, r, None, 2).slice(2, c, None, 2);
        Tensor::cat(&[part(0, 0), part(1, 0), part(0, 1), part(1, 1)], -1)
            .apply(&self.norm)
            .apply(&self.reduction)
    }
}

/// Swin-T without its classifier.
#[derive(Debug)]
pub struct SwinT {
    embed: nn::Conv2D,
    embed_norm: nn::LayerNorm,
    /// Per stage: patch merging before it (stages 2-4) and its blocks.
    stages: Vec<(Option<PatchMerging>, Vec<SwinBlock>)>,
    norm: nn::LayerNorm,
}

impl SwinT {
    pub fn new(vs: &nn::Path) -> SwinT {
        let f = vs / "features";
        let total: usize = DEPTHS.iter().sum();
        let mut k = 0usize;
        let mut stages = Vec::new();
        let mut dim = EMBED;
        for (s, (&depth, &heads)) in DEPTHS.iter().zip(&HEADS).enumerate() {
            let merge = (s > 0).then(|| {
                let m = PatchMerging::new(&f / (2 * s).to_string(), dim);
                dim *= 2;
                m
            });
            let blocks = (0..depth)
                .map(|i| {
                    let drop = STOCHASTIC_DEPTH * k as f64 / (total - 1) as f64;
                    k += 1;
                    let shift = if i % 2 == 0 { 0 } else { WINDOW / 2 };
                    SwinBlock::new(
                        &f / (2 * s + 1).to_string() / i.to_string(),
                        dim,
                        heads,
                        shift,
                        drop,
                    )
                })
                .collect();
            stages.push((merge, blocks));
        }
        SwinT {
            embed: nn::conv2d(
                &f / "0" / "0",
                3,
                EMBED,
                4,
                nn::ConvConfig {
                    stride: 4,
                    ..Default::default()
                },
            ),
            embed_norm: layer_norm(&f / "0" / "2", EMBED),
            stages,
            norm: layer_norm(vs / "norm", SWIN_T_DIM),
        }
    }

    /// The output of every stage, channels last: `[B, H/4, W/4, 96]`, ..., `[B, H/32,
    /// W/32, 768]` (the last after the final norm).
    pub fn stages_t(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        let mut x = xs
            .apply(&self.embed)
            .permute([0, 2, 3, 1])
            .apply(&self.embed_norm);
        let mut out = Vec::with_capacity(4);
        for (merge, blocks) in &self.stages {
            if let Some(m) = merge {
                x = m.forward(&x);
            }
            for b in blocks {
                x = b.forward_t(&x, train);
            }
            out.push(x.shallow_clone());
        }
        if let Some(last) = out.last_mut() {
            *last = last.apply(&self.norm);
        }
        out
    }

    /// `[B, 3, H, W]` -> feature map `[B, 768, H/32, W/32]` (as the ResNet trunk's).
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.stages_t(xs, train).pop().expect("four stages");
        last.permute([0, 3, 1, 2])
    }
}

impl Module for SwinT {
    /// Pooled features `[B, 768]` (torchvision's `avgpool(permute(norm(features(x))))`).
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.feature_map(xs, false)
            .mean_dim([2, 3].as_slice(), false, Kind::Float)
    }
}

/// Loads torchvision `swin_t` weights from `path` into the variables of `vs` named
/// `prefix` + torchvision's names. Every Swin-T tensor must be there with its shape; the
/// `head.*` classifier is not used; a `relative_position_index` buffer, when present, must
/// equal torchvision's (it is recomputed, not loaded). Returns the tensors loaded.
pub fn load_swin_pretrained(vs: &mut nn::VarStore, prefix: &str, path: &Path) -> Result<usize> {
    let named = read_state_dict(path)?;
    let want = Tensor::from_slice(&relative_position_index(WINDOW));
    for (k, v) in &named {
        if k.ends_with("relative_position_index")
            && (v.size() != want.size() || !v.to_kind(Kind::Int64).equal(&want))
        {
            return Err(NnError::weights(
                path,
                format!(
                    "'{k}' is not the relative position index of 7x7 windows: not swin_t weights"
                ),
            ));
        }
    }
    load_named(vs, prefix, path, &named, "swin_t", |r| {
        r.starts_with("features.") || r.starts_with("norm.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// 4x4 map, 2x2 windows, shift 1: regions by row are [0,2), [2,3), [3,4), likewise by
    /// column, so the region labels (row region * 3 + column region) are
    /// ```text
    /// 0 0 1 2
    /// 0 0 1 2
    /// 3 3 4 5
    /// 6 6 7 8
    /// ```
    /// Window 0 (top left) is one region; window 1 (top right) holds 1 2 / 1 2; window 2
    /// (bottom left) 3 3 / 6 6; window 3 (bottom right) four different regions.
    #[test]
    fn shifted_window_mask_by_hand() {
        let m = shifted_window_mask(4, 4, 2, [1, 1]);
        assert_eq!(m.len(), 4 * 4 * 4);
        let win = |w: usize| -> Vec<Vec<bool>> {
            (0..4)
                .map(|i| (0..4).map(|j| m[w * 16 + i * 4 + j] == 0.0).collect())
                .collect()
        };
        let all = vec![vec![true; 4]; 4];
        assert_eq!(win(0), all);
        // Window 1: tokens (0,2) (0,3) (1,2) (1,3) have labels 1 2 1 2.
        let t = true;
        let f = false;
        assert_eq!(
            win(1),
            vec![
                vec![t, f, t, f],
                vec![f, t, f, t],
                vec![t, f, t, f],
                vec![f, t, f, t]
            ]
        );
        // Window 2: labels 3 3 6 6.
        assert_eq!(
            win(2),
            vec![
                vec![t, t, f, f],
                vec![t, t, f, f],
                vec![f, f, t, t],
                vec![f, f, t, t]
            ]
        );
        // Window 3: only each token with itself.
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(win(3)[i][j], i == j);
            }
        }
        assert!(m.iter().all(|&v| v == 0.0 || v == -100.0));
    }

    #[test]
    fn relative_position_index_matches_torchvision() {
        // torchvision: coords (2, 49) -> (49, 49, 2) differences shifted by 6, row times 13.
        let idx = relative_position_index(7);
        assert_eq!(idx.len(), 49 * 49);
        assert_eq!(idx[0], 6 * 13 + 6); // a token with itself: the centre of the table
        assert_eq!(idx[1], 6 * 13 + 5); // (0,0) against (0,1)
        assert_eq!(idx[48], 0); // (0,0) against (6,6)
        assert_eq!(*idx.iter().max().unwrap(), 13 * 13 - 1);
    }

    #[test]
    fn shapes_through_every_stage() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = SwinT::new(&vs.root());
        for (h, w) in [(224, 224), (64, 96)] {
            let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
            let st = tch::no_grad(|| m.stages_t(&x, false));
            let want: Vec<Vec<i64>> = (0..4)
                .map(|s| vec![2, h / (4 << s), w / (4 << s), 96 << s])
                .collect();
            let got: Vec<Vec<i64>> = st.iter().map(|t| t.size()).collect();
            assert_eq!(got, want);
            assert_eq!(m.forward(&x).size(), vec![2, SWIN_T_DIM]);
        }
        // 28,288,354 parameters in torchvision's swin_t, of which 769,000 are the head.
        let n: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        assert_eq!(n, 28_288_354 - 769_000);
    }
}
