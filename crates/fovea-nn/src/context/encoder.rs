//! The whole-image encoder (a ResNet-18 trunk or Swin-T, [`GlobalEncoder`]), the square
//! frame of a photograph it sees ([`Frame`], [`global_input`], [`token_mask`]), and the
//! context of a batch of patches that the fused heads read ([`BatchContext`]).

use fovea_data::fov::FovGrid;
use image::{imageops, RgbImage};
use tch::{nn, Kind, Tensor};

use super::spec::EncoderKind;
use crate::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::models::resnet::ResNet18;
use crate::models::swin::SwinT;

/// The square of the photograph the encoder sees, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub x0: f32,
    pub y0: f32,
    pub side: f32,
}

impl Frame {
    /// The square centred on the field of view's bounding box (the whole photograph's
    /// when no retina was found).
    pub fn of_fov(fov: &FovGrid) -> Frame {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        for r in 0..fov.rows {
            for c in 0..fov.cols {
                if fov.cells[r * fov.cols + c] != 0 {
                    (x0, y0) = (x0.min(c), y0.min(r));
                    (x1, y1) = (x1.max(c + 1), y1.max(r + 1));
                }
            }
        }
        let b = fov.block as f32;
        let (bx0, by0, bx1, by1) = if x0 == usize::MAX {
            (0.0, 0.0, fov.width as f32, fov.height as f32)
        } else {
            (
                x0 as f32 * b,
                y0 as f32 * b,
                (x1 as f32 * b).min(fov.width as f32),
                (y1 as f32 * b).min(fov.height as f32),
            )
        };
        let side = (bx1 - bx0).max(by1 - by0).max(1.0);
        Frame {
            x0: (bx0 + bx1) / 2.0 - side / 2.0,
            y0: (by0 + by1) / 2.0 - side / 2.0,
            side,
        }
    }

    /// A point of the photograph in the frame, `[0, 1]^2` inside it.
    pub fn position(&self, x: f32, y: f32) -> [f32; 2] {
        [(x - self.x0) / self.side, (y - self.y0) / self.side]
    }
}

/// The frame of `rgb` downscaled to `size` x `size`, normalised, `[3, size, size]`.
pub fn global_input(rgb: &RgbImage, frame: &Frame, size: u32) -> Vec<f32> {
    let scale = size as f32 / frame.side;
    // The part of the frame inside the photograph, downscaled alone, pasted on black.
    let ix0 = frame.x0.max(0.0).floor() as u32;
    let iy0 = frame.y0.max(0.0).floor() as u32;
    let ix1 = ((frame.x0 + frame.side).min(rgb.width() as f32)).ceil() as u32;
    let iy1 = ((frame.y0 + frame.side).min(rgb.height() as f32)).ceil() as u32;
    let mut canvas = RgbImage::new(size, size);
    if ix1 > ix0 && iy1 > iy0 {
        let view = imageops::crop_imm(rgb, ix0, iy0, ix1 - ix0, iy1 - iy0);
        let tw = (((ix1 - ix0) as f32 * scale).round() as u32).clamp(1, size);
        let th = (((iy1 - iy0) as f32 * scale).round() as u32).clamp(1, size);
        let small = imageops::thumbnail(&*view, tw, th);
        let ox = (((ix0 as f32 - frame.x0) * scale).round() as i64).clamp(0, (size - tw) as i64);
        let oy = (((iy0 as f32 - frame.y0) * scale).round() as i64).clamp(0, (size - th) as i64);
        imageops::replace(&mut canvas, &small, ox, oy);
    }
    let n = (size * size) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in canvas.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

/// Which of the `g` x `g` token cells of the frame hold retina: `[g*g]`, row-major.
pub fn token_mask(fov: &FovGrid, frame: &Frame, g: i64) -> Vec<bool> {
    let cell = frame.side / g as f32;
    let mut out = Vec::with_capacity((g * g) as usize);
    for r in 0..g {
        for c in 0..g {
            let x0 = frame.x0 + c as f32 * cell;
            let y0 = frame.y0 + r as f32 * cell;
            let (cx0, cy0) = (x0.max(0.0), y0.max(0.0));
            let (cx1, cy1) = ((x0 + cell).max(0.0), (y0 + cell).max(0.0));
            let n = fov.count_in_rect(
                cx0 as u32,
                cy0 as u32,
                (cx1 - cx0).ceil() as u32,
                (cy1 - cy0).ceil() as u32,
            );
            out.push(n > 0);
        }
    }
    out
}

/// The global encoder's network (torchvision names under `global.`).
#[derive(Debug)]
enum EncoderNet {
    Resnet18(ResNet18),
    SwinT(SwinT),
}

/// The global encoder: a ResNet-18 trunk or Swin-T, both of total stride 32.
#[derive(Debug)]
pub struct GlobalEncoder {
    pub kind: EncoderKind,
    net: EncoderNet,
}

impl GlobalEncoder {
    pub fn new(vs: &nn::Path, kind: EncoderKind) -> GlobalEncoder {
        let net = match kind {
            EncoderKind::Resnet18 => EncoderNet::Resnet18(ResNet18::new(vs, 1)),
            EncoderKind::SwinT => EncoderNet::SwinT(SwinT::new(vs)),
        };
        GlobalEncoder { kind, net }
    }

    /// Width of a token and of the pooled vector.
    pub fn dim(&self) -> i64 {
        self.kind.dim()
    }

    /// `[U, 3, S, S]` -> pooled `[U, G]` and tokens `[U, (S/32)^2, G]` (row-major cells).
    pub fn encode(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let fm = match &self.net {
            EncoderNet::Resnet18(n) => n.feature_map(xs, train),
            EncoderNet::SwinT(n) => n.feature_map(xs, train),
        }; // [U, G, h, w]
        let pooled = fm.mean_dim([2, 3].as_slice(), false, Kind::Float);
        let tokens = fm.flatten(2, -1).transpose(1, 2).contiguous();
        (pooled, tokens)
    }
}

/// The context of a batch of patches: features of the `U` photographs they come from and,
/// per patch, which photograph and where in it.
#[derive(Debug)]
pub struct BatchContext {
    /// `[U, G]`.
    pub pooled: Tensor,
    /// `[U, T, G]`.
    pub tokens: Tensor,
    /// `[U, T]` bool: the token's cell holds retina.
    pub mask: Tensor,
    /// `[T, 2]` token cell centres in the frame.
    pub token_pos: Tensor,
    /// `[B]` int64 into `U`.
    pub which: Tensor,
    /// `[B, 2]` patch centres in their photograph's frame.
    pub pos: Tensor,
}
