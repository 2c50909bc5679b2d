//! Per-sample augmentation and normalisation: a patch of P*P*3 bytes (HWC RGB, as stored)
//! becomes 3*P*P floats (CHW), ImageNet-normalised, ready to be one item of a
//! `[B, 3, P, P]` batch.
//!
//! Augmentation, in this order:
//! 1. geometry, in one resampling pass: random horizontal and vertical flips, then a
//!    rotation about the patch centre by an angle drawn uniformly in
//!    `[-rotation_deg, rotation_deg]` (counter-clockwise as displayed, y down), bilinear
//!    interpolation, the border filled by *reflection* (about the outermost pixel centres,
//!    OpenCV's `BORDER_REFLECT_101`), so a rotated patch has no black corners. This is
//!    hand-written: no maintained Rust crate rotates with a reflected border (`imageproc`
//!    fills the outside with a constant);
//! 2. colour jitter with torchvision `ColorJitter`'s factors and formulas (each result
//!    clamped to [0, 1]), applied in a fixed order: brightness (multiply by b in
//!    `[max(0, 1-B), 1+B]`), contrast (blend with the mean grey level of the patch by c in
//!    `[max(0, 1-C), 1+C]`), saturation (blend with the pixel's grey level by s in
//!    `[max(0, 1-S), 1+S]`), hue (shift the HSV hue by h in `[-H, H]` turns). torchvision
//!    draws a random order per image; the order here is fixed so that a sample depends
//!    only on its random stream;
//! 3. conversion to [0, 1] (`v / 255`) and normalisation `(x - mean) / std` with ImageNet's
//!    mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225], into CHW.
//!
//! Grey level: torchvision's `0.2989 R + 0.587 G + 0.114 B`.
//!
//! A step whose factor is neutral (no flip, angle 0, b = c = s = 1, h = 0) is skipped, so
//! augmentation with every factor at 0 is exactly [`to_tensor_layout`].

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{LoaderError, Result};

/// ImageNet channel means (RGB), on [0, 1] values.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), on [0, 1] values.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// torchvision's grey-level weights (RGB).
pub const GREY: [f32; 3] = [0.2989, 0.587, 0.114];

/// `v / 255` for every byte.
const UNIT: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// `1 / std`, per channel.
const INV_STD: [f32; 3] = [
    1.0 / IMAGENET_STD[0],
    1.0 / IMAGENET_STD[1],
    1.0 / IMAGENET_STD[2],
];

/// `(v / 255 - mean[c]) * (1 / std[c])` for every channel and byte: the same operations
/// as the general path's normalisation, so both agree bit for bit.
const NORMALISED: [[f32; 256]; 3] = {
    let mut t = [[0.0f32; 256]; 3];
    let mut c = 0;
    while c < 3 {
        let mut i = 0;
        while i < 256 {
            t[c][i] = (UNIT[i] - IMAGENET_MEAN[c]) * INV_STD[c];
            i += 1;
        }
        c += 1;
    }
    t
};

/// What augmentation may do (a `[augment]` table of the training settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentSettings {
    /// Whether to augment at all; off = normalisation only.
    pub enabled: bool,
    /// Random horizontal flip (probability 1/2).
    pub hflip: bool,
    /// Random vertical flip (probability 1/2).
    pub vflip: bool,
    /// Rotation by an angle drawn uniformly in [-r, r] degrees; 180 = any angle, 0 = none.
    pub rotation_deg: f32,
    /// torchvision `ColorJitter` brightness B: factor in [max(0, 1-B), 1+B].
    pub brightness: f32,
    /// Contrast C: factor in [max(0, 1-C), 1+C].
    pub contrast: f32,
    /// Saturation S: factor in [max(0, 1-S), 1+S].
    pub saturation: f32,
    /// Hue H (turns, at most 0.5): shift in [-H, H].
    pub hue: f32,
}

impl Default for AugmentSettings {
    fn default() -> Self {
        AugmentSettings {
            enabled: true,
            hflip: true,
            vflip: true,
            rotation_deg: 180.0,
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
            hue: 0.02,
        }
    }
}

impl AugmentSettings {
    /// No augmentation: normalisation only.
    pub fn off() -> Self {
        AugmentSettings {
            enabled: false,
            ..Default::default()
        }
    }

    /// Checks every factor's range.
    pub fn validate(&self) -> Result<()> {
        if !(self.rotation_deg.is_finite() && (0.0..=180.0).contains(&self.rotation_deg)) {
            return Err(LoaderError::setting(
                "augment.rotation_deg",
                format!("{} is not in 0..=180", self.rotation_deg),
            ));
        }
        for (name, v) in [
            ("augment.brightness", self.brightness),
            ("augment.contrast", self.contrast),
            ("augment.saturation", self.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(LoaderError::setting(name, format!("{v} must be >= 0")));
            }
        }
        if !(self.hue.is_finite() && (0.0..=0.5).contains(&self.hue)) {
            return Err(LoaderError::setting(
                "augment.hue",
                format!("{} is not in 0..=0.5", self.hue),
            ));
        }
        Ok(())
    }
}

/// One sample's drawn augmentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentParams {
    pub hflip: bool,
    pub vflip: bool,
    /// Counter-clockwise as displayed (y down), degrees.
    pub angle_deg: f32,
    /// Multiplicative factors; 1 = unchanged.
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Hue shift in turns; 0 = unchanged.
    pub hue: f32,
}

impl AugmentParams {
    /// Leaves a patch unchanged (normalisation only).
    pub const IDENTITY: AugmentParams = AugmentParams {
        hflip: false,
        vflip: false,
        angle_deg: 0.0,
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
    };

    /// Draws one sample's parameters, in a fixed order (hflip, vflip, angle, brightness,
    /// contrast, saturation, hue); a disabled or zero setting draws nothing.
    pub fn sample(rng: &mut impl Rng, settings: &AugmentSettings) -> AugmentParams {
        if !settings.enabled {
            return AugmentParams::IDENTITY;
        }
        let factor = |rng: &mut _, f: f32| {
            if f > 0.0 {
                let lo = (1.0 - f).max(0.0);
                uniform(rng, lo, 1.0 + f)
            } else {
                1.0
            }
        };
        let hflip = settings.hflip && rng.random_bool(0.5);
        let vflip = settings.vflip && rng.random_bool(0.5);
        let angle_deg = if settings.rotation_deg > 0.0 {
            uniform(rng, -settings.rotation_deg, settings.rotation_deg)
        } else {
            0.0
        };
        let brightness = factor(rng, settings.brightness);
        let contrast = factor(rng, settings.contrast);
        let saturation = factor(rng, settings.saturation);
        let hue = if settings.hue > 0.0 {
            uniform(rng, -settings.hue, settings.hue)
        } else {
            0.0
        };
        AugmentParams {
            hflip,
            vflip,
            angle_deg,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    fn has_colour(&self) -> bool {
        self.brightness != 1.0 || self.contrast != 1.0 || self.saturation != 1.0 || self.hue != 0.0
    }
}

fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Augments one patch: `src` is P*P*3 bytes (HWC RGB), `out` receives 3*P*P floats
/// (CHW), normalised. Draws its parameters from `rng` (see [`AugmentParams::sample`]).
pub fn augment(
    src: &[u8],
    p: usize,
    rng: &mut impl Rng,
    settings: &AugmentSettings,
    out: &mut [f32],
) {
    let params = AugmentParams::sample(rng, settings);
    apply(src, p, &params, out);
}

/// Evaluation layout: no augmentation, just `[P, P, 3]` bytes -> `[3, P, P]` normalised.
pub fn to_tensor_layout(src: &[u8], p: usize, out: &mut [f32]) {
    apply(src, p, &AugmentParams::IDENTITY, out);
}

/// Applies drawn parameters to one patch (`src` `[P, P, 3]` bytes, `out` `[3, P, P]`).
pub fn apply(src: &[u8], p: usize, params: &AugmentParams, out: &mut [f32]) {
    let pp = p * p;
    assert_eq!(src.len(), pp * 3, "source is not a {p}x{p}x3 patch");
    assert_eq!(out.len(), pp * 3, "output is not 3x{p}x{p}");
    if p == 0 {
        return;
    }
    if params.angle_deg == 0.0 && !params.has_colour() {
        flip_normalise(src, p, params.hflip, params.vflip, out);
        return;
    }
    // out: [3, P, P] values in [0, 1] after geometry.
    if params.angle_deg == 0.0 {
        flip_unit(src, p, params.hflip, params.vflip, out);
    } else {
        rotate_unit(src, p, params.hflip, params.vflip, params.angle_deg, out);
    }
    colour_normalise(out, p, params);
}

/// Flips only, straight to normalised values through a lookup table.
fn flip_normalise(src: &[u8], p: usize, hflip: bool, vflip: bool, out: &mut [f32]) {
    let pp = p * p;
    let (r, gb) = out.split_at_mut(pp);
    let (g, b) = gb.split_at_mut(pp);
    for i in 0..p {
        let si = if vflip { p - 1 - i } else { i };
        let row = &src[si * p * 3..(si + 1) * p * 3];
        let o = i * p;
        for j in 0..p {
            let sj = if hflip { p - 1 - j } else { j };
            let px = &row[sj * 3..sj * 3 + 3];
            r[o + j] = NORMALISED[0][px[0] as usize];
            g[o + j] = NORMALISED[1][px[1] as usize];
            b[o + j] = NORMALISED[2][px[2] as usize];
        }
    }
}

/// Flips only, to [0, 1] values (`out` `[3, P, P]`).
fn flip_unit(src: &[u8], p: usize, hflip: bool, vflip: bool, out: &mut [f32]) {
    let pp = p * p;
    let (r, gb) = out.split_at_mut(pp);
    let (g, b) = gb.split_at_mut(pp);
    for i in 0..p {
        let si = if vflip { p - 1 - i } else { i };
        let row = &src[si * p * 3..(si + 1) * p * 3];
        let o = i * p;
        for j in 0..p {
            let sj = if hflip { p - 1 - j } else { j };
            let px = &row[sj * 3..sj * 3 + 3];
            r[o + j] = UNIT[px[0] as usize];
            g[o + j] = UNIT[px[1] as usize];
            b[o + j] = UNIT[px[2] as usize];
        }
    }
}

/// Sub-pixel precision of the bilinear weights: 1/256 of a pixel (OpenCV's `warpAffine`
/// uses 1/32). Integer weights and coordinates keep the inner loop free of float
/// conversions but the three results.
const WEIGHT_BITS: u32 = 8;
const WEIGHT_ONE: u32 = 1 << WEIGHT_BITS;
/// Fractional bits of the fixed-point source coordinates.
const COORD_BITS: u32 = 16;
const COORD_ONE: i32 = 1 << COORD_BITS;
/// The low byte of each 16-bit lane of a packed pixel.
const LANE_BYTES: u64 = 0x0000_00ff_00ff_00ff;

/// A pixel packed in three 16-bit lanes of a u64, `0x0000_BBBB_GGGG_RRRR`: a lane holds a
/// byte times a weight of up to 256 without carrying into the next, so one multiply
/// weighs all three channels (SIMD within a register).
#[inline]
fn pack(px: &[u8]) -> u64 {
    px[0] as u64 | (px[1] as u64) << 16 | (px[2] as u64) << 32
}

thread_local! {
    /// Per-thread scratch for the packed, padded source of [`rotate_unit`].
    static PACKED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Flips then rotation by `angle_deg` about the centre, bilinear, reflected border, to
/// [0, 1] values (`out` `[3, P, P]`).
///
/// For an output pixel at (x, y) (column, row), with c = (P-1)/2 the centre, the source
/// point is the inverse rotation of (x - c, y - c), i.e. for a counter-clockwise angle t
/// as displayed with y down: sx = cos t dx - sin t dy, sy = sin t dx + cos t dy, then
/// negated by the flips (a flip about the centre), then reflected into the patch.
///
/// Interpolation is in integers on packed pixels: horizontal, rounded to a byte, then
/// vertical: within half a grey level of the exact float result, and exact wherever the
/// source point falls on a pixel centre or the patch is of one colour.
fn rotate_unit(src: &[u8], p: usize, hflip: bool, vflip: bool, angle_deg: f32, out: &mut [f32]) {
    PACKED.with(|packed| {
        let mut packed = packed.borrow_mut();
        rotate_packed(src, p, hflip, vflip, angle_deg, &mut packed, out)
    })
}

fn rotate_packed(
    src: &[u8],
    p: usize,
    hflip: bool,
    vflip: bool,
    angle_deg: f32,
    packed: &mut Vec<u64>,
    out: &mut [f32],
) {
    let pp = p * p;
    // The source packed, with one more column and row (copies of the last) so that the
    // right and lower neighbours of any pixel exist: [P+1, P+1].
    let stride = p + 1;
    packed.clear();
    packed.reserve(stride * stride);
    for row in src.chunks_exact(3 * p) {
        packed.extend(row.chunks_exact(3).map(pack));
        packed.push(pack(&row[3 * (p - 1)..]));
    }
    packed.extend_from_within((p - 1) * stride..p * stride);

    let (r, gb) = out.split_at_mut(pp);
    let (g, b) = gb.split_at_mut(pp);
    let (sin, cos) = (angle_deg as f64).to_radians().sin_cos();
    let fx = if hflip { -1.0 } else { 1.0 };
    let fy = if vflip { -1.0 } else { 1.0 };
    // sx = c + axx dx + axy dy, sy = c + ayx dx + ayy dy.
    let (axx, axy) = (fx * cos, -fx * sin);
    let (ayx, ayy) = (fy * sin, fy * cos);
    // Source coordinates in 16.16 fixed point, stepped along each output row: no float
    // conversion per pixel. Every coordinate lies within 2.5 P, below 2^31 for P <= 8192
    // (patch stores hold P <= 2048).
    assert!(p <= 8192, "patches of side {p} are too large to rotate");
    let fp = |v: f64| (v * COORD_ONE as f64).round() as i32;
    let c = (p as f64 - 1.0) / 2.0;
    let max = ((p - 1) << COORD_BITS) as i32;
    let (step_x, step_y) = (fp(axx), fp(ayx));
    // After both steps a lane of 255 * 256 is 1.0.
    let to_unit = 1.0 / (255.0 * WEIGHT_ONE as f32);
    let round = (WEIGHT_ONE as u64 / 2) * 0x0000_0001_0001_0001;
    let frac = COORD_BITS - WEIGHT_BITS;
    // One output row of packed results, `[P]`.
    let mut row = vec![0u64; p];
    for i in 0..p {
        let dy = i as f64 - c;
        // Source point of the row's first pixel (dx = -c).
        let mut sx = fp(c + axy * dy - axx * c);
        let mut sy = fp(c + ayy * dy - ayx * c);
        for v in row.iter_mut() {
            let x = reflect_fixed(sx, max);
            let y = reflect_fixed(sy, max);
            sx += step_x;
            sy += step_y;
            let (x0, wx) = ((x >> COORD_BITS) as usize, ((x >> frac) & 0xff) as u64);
            let (y0, wy) = ((y >> COORD_BITS) as usize, ((y >> frac) & 0xff) as u64);
            let k = y0 * stride + x0;
            let q = &packed[k..k + stride + 2];
            let (vx, vy) = (WEIGHT_ONE as u64 - wx, WEIGHT_ONE as u64 - wy);
            // Horizontal, rounded back to bytes, then vertical: lanes stay under 2^16.
            let top = ((q[0] * vx + q[1] * wx + round) >> WEIGHT_BITS) & LANE_BYTES;
            let bottom =
                ((q[stride] * vx + q[stride + 1] * wx + round) >> WEIGHT_BITS) & LANE_BYTES;
            *v = top * vy + bottom * wy;
        }
        // Unpacked into the three planes (a vectorised loop).
        let o = i * p;
        let lanes = r[o..o + p]
            .iter_mut()
            .zip(&mut g[o..o + p])
            .zip(&mut b[o..o + p])
            .zip(&row);
        for (((r, g), b), &v) in lanes {
            *r = (v & 0xffff) as i32 as f32 * to_unit;
            *g = ((v >> 16) & 0xffff) as i32 as f32 * to_unit;
            *b = ((v >> 32) & 0xffff) as i32 as f32 * to_unit;
        }
    }
}

/// Reflects a (16.16 fixed-point) coordinate into [0, max] about the outermost pixel
/// centres 0 and `max`: OpenCV's `BORDER_REFLECT_101` in continuous form, -d -> d and
/// max + d -> max - d. One reflection is enough: a rotated patch's source points lie
/// within 0.21 P of it (corners at sqrt(2) P/2 from the centre); anything further clamps.
#[inline]
fn reflect_fixed(v: i32, max: i32) -> i32 {
    let v = v.abs();
    let v = if v > max { 2 * max - v } else { v };
    v.clamp(0, max)
}

/// torchvision's `_blend`: `clamp(ratio * a + (1 - ratio) * b, 0, 1)`.
#[inline]
fn blend(a: f32, b: f32, ratio: f32) -> f32 {
    (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)
}

#[inline]
fn grey(r: f32, g: f32, b: f32) -> f32 {
    GREY[0] * r + GREY[1] * g + GREY[2] * b
}

/// Colour jitter (brightness, contrast, saturation, hue) then normalisation, in place on
/// `[3, P, P]` values in [0, 1].
pub(crate) fn colour_normalise(out: &mut [f32], p: usize, params: &AugmentParams) {
    let pp = p * p;
    let (r, gb) = out.split_at_mut(pp);
    let (g, b) = gb.split_at_mut(pp);
    let AugmentParams {
        brightness,
        contrast,
        saturation,
        hue,
        ..
    } = *params;
    // One simple (vectorisable) loop per step, each skipped when neutral.
    if brightness != 1.0 {
        for plane in [&mut *r, &mut *g, &mut *b] {
            for v in plane.iter_mut() {
                *v = (*v * brightness).clamp(0.0, 1.0);
            }
        }
    }
    if contrast != 1.0 {
        // The mean grey level after brightness, as torchvision computes it on the image it
        // is given; summed in f32 per row, rows in f64.
        let mut sum = 0.0f64;
        for ((x, y), z) in r.chunks(p).zip(g.chunks(p)).zip(b.chunks(p)) {
            let row: f32 = x
                .iter()
                .zip(y)
                .zip(z)
                .map(|((&x, &y), &z)| grey(x, y, z))
                .sum();
            sum += row as f64;
        }
        let mean = (sum / pp.max(1) as f64) as f32;
        for plane in [&mut *r, &mut *g, &mut *b] {
            for v in plane.iter_mut() {
                *v = blend(*v, mean, contrast);
            }
        }
    }
    if saturation != 1.0 {
        for ((x, y), z) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
            let l = grey(*x, *y, *z);
            *x = blend(*x, l, saturation);
            *y = blend(*y, l, saturation);
            *z = blend(*z, l, saturation);
        }
    }
    if hue != 0.0 {
        let (g, b) = (&mut g[..pp], &mut b[..pp]);
        for k in 0..pp {
            let (x, y, z) = shift_hue(r[k], g[k], b[k], hue);
            r[k] = x;
            g[k] = y;
            b[k] = z;
        }
    }
    for (plane, c) in [r, g, b].into_iter().zip(0..3) {
        let (m, inv) = (IMAGENET_MEAN[c], INV_STD[c]);
        for v in plane.iter_mut() {
            *v = (*v - m) * inv;
        }
    }
}

/// torchvision's `adjust_hue`: RGB -> HSV, the hue shifted by `shift` turns (|shift| <=
/// 0.5) modulo 1, HSV -> RGB. Written without branches (selects only) so the loop over a
/// patch vectorises; `tests::reference_shift_hue` is torchvision's formulation, and they
/// agree to float precision.
#[inline]
fn shift_hue(r: f32, g: f32, b: f32, shift: f32) -> (f32, f32, f32) {
    let v = r.max(g).max(b);
    let cr = v - r.min(g).min(b);
    // A grey pixel (cr = 0) has s = 0 and comes back unchanged whatever its hue.
    let s = cr / v.max(f32::MIN_POSITIVE);
    let inv = 1.0 / cr.max(f32::MIN_POSITIVE);
    // Hue in sixths of a turn, in [-1, 5): all three candidates computed, one selected.
    let (hr, hg, hb) = ((g - b) * inv, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv);
    let h = if v == r {
        hr
    } else if v == g {
        hg
    } else {
        hb
    };
    // Shifted, then wrapped into [0, 6).
    let h = h + 6.0 * shift;
    let h = if h < 0.0 { h + 6.0 } else { h };
    let h = if h >= 6.0 { h - 6.0 } else { h };
    // HSV -> RGB: channel n (R 5, G 3, B 1) is v - v s clamp(min(k, 4 - k), 0, 1) with
    // k = (n + h) mod 6.
    let channel = |n: f32| {
        let k = n + h;
        let k = if k >= 6.0 { k - 6.0 } else { k };
        v - v * s * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    (channel(5.0), channel(3.0), channel(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    // torchvision's `_rgb2hsv`, `_hsv2rgb` and `adjust_hue`, transcribed.
    /// RGB in [0, 1] -> HSV (h in [0, 1) turns), as torchvision's `_rgb2hsv`.
    fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        let cr = maxc - minc;
        if cr == 0.0 {
            return (0.0, 0.0, maxc);
        }
        let s = cr / maxc;
        let inv = 1.0 / cr;
        // In sixths of a turn, in [-1, 5).
        let h = if maxc == r {
            (g - b) * inv
        } else if maxc == g {
            2.0 + (b - r) * inv
        } else {
            4.0 + (r - g) * inv
        };
        (wrap_unit(h * (1.0 / 6.0)), s, maxc)
    }

    /// `x` modulo 1, into [0, 1), for `x` within a turn or two of it (cheaper than `%`).
    fn wrap_unit(mut x: f32) -> f32 {
        if !(0.0..1.0).contains(&x) {
            x -= x.floor();
            if x >= 1.0 {
                x = 0.0; // -tiny - floor(-tiny) rounds to 1.0
            }
        }
        x
    }

    /// HSV -> RGB in [0, 1], as torchvision's `_hsv2rgb`.
    fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
        let h6 = h * 6.0;
        let i = h6.floor();
        let f = h6 - i;
        let p = (v * (1.0 - s)).clamp(0.0, 1.0);
        let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
        let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
        match (i as i32).rem_euclid(6) {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        }
    }

    fn reference_shift_hue(r: f32, g: f32, b: f32, shift: f32) -> (f32, f32, f32) {
        let (h, s, v) = rgb_to_hsv(r, g, b);
        hsv_to_rgb(wrap_unit(h + shift), s, v)
    }

    #[test]
    fn branch_free_hue_matches_torchvision() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..20_000 {
            let q = |rng: &mut ChaCha8Rng| (rng.random_range(0..=255u8) as f32) / 255.0;
            let (r, g, b) = (q(&mut rng), q(&mut rng), q(&mut rng));
            let shift = rng.random_range(-0.5f32..=0.5);
            let a = shift_hue(r, g, b, shift);
            let want = reference_shift_hue(r, g, b, shift);
            for (x, y) in [(a.0, want.0), (a.1, want.1), (a.2, want.2)] {
                assert!(
                    (x - y).abs() < 1e-5,
                    "{r} {g} {b} {shift}: {a:?} vs {want:?}"
                );
            }
        }
        for grey in [0.0, 0.3, 1.0] {
            assert_eq!(shift_hue(grey, grey, grey, 0.25), (grey, grey, grey));
        }
    }

    /// A 4x4 patch whose every byte is distinct: pixel (y, x) channel c = 16y + 4x + c.
    fn patch4() -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..4u8 {
            for x in 0..4u8 {
                for c in 0..3u8 {
                    v.push(16 * y + 4 * x + c);
                }
            }
        }
        v
    }

    /// Unnormalises `out` back to 0..255 values at (c, y, x).
    fn byte_at(out: &[f32], p: usize, c: usize, y: usize, x: usize) -> f32 {
        (out[c * p * p + y * p + x] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0
    }

    fn run(src: &[u8], p: usize, params: AugmentParams) -> Vec<f32> {
        let mut out = vec![0.0; 3 * p * p];
        apply(src, p, &params, &mut out);
        out
    }

    fn params(hflip: bool, vflip: bool, angle_deg: f32) -> AugmentParams {
        AugmentParams {
            hflip,
            vflip,
            angle_deg,
            ..AugmentParams::IDENTITY
        }
    }

    #[test]
    fn normalisation_values_are_exact() {
        let src = [0u8, 128, 255];
        let mut out = [0.0f32; 3];
        to_tensor_layout(&src, 1, &mut out);
        let expect = [
            (0.0 - 0.485) / 0.229,
            (128.0 / 255.0 - 0.456) / 0.224,
            (1.0 - 0.406) / 0.225,
        ];
        for c in 0..3 {
            assert!((out[c] as f64 - expect[c]).abs() < 1e-6, "{out:?}");
        }
        // CHW layout.
        let src = patch4();
        let out = run(&src, 4, AugmentParams::IDENTITY);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let v = src[(y * 4 + x) * 3 + c] as f32 / 255.0;
                    let n = (v - IMAGENET_MEAN[c]) * INV_STD[c];
                    assert_eq!(out[c * 16 + y * 4 + x], n);
                }
            }
        }
    }

    #[test]
    fn flips_are_exact() {
        let src = patch4();
        let id = run(&src, 4, AugmentParams::IDENTITY);
        let h = run(&src, 4, params(true, false, 0.0));
        let v = run(&src, 4, params(false, true, 0.0));
        let hv = run(&src, 4, params(true, true, 0.0));
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let at = |o: &[f32], y: usize, x: usize| o[c * 16 + y * 4 + x];
                    assert_eq!(at(&h, y, x), at(&id, y, 3 - x));
                    assert_eq!(at(&v, y, x), at(&id, 3 - y, x));
                    assert_eq!(at(&hv, y, x), at(&id, 3 - y, 3 - x));
                }
            }
        }
    }

    #[test]
    fn rotation_by_zero_through_the_resampler_is_identity() {
        let src = patch4();
        let mut unit = vec![0.0; 48];
        rotate_unit(&src, 4, false, false, 0.0, &mut unit);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let want = src[(y * 4 + x) * 3 + c] as f32 / 255.0;
                    assert!((unit[c * 16 + y * 4 + x] - want).abs() < 1e-6);
                }
            }
        }
        // And with flips it matches the exact flip path.
        rotate_unit(&src, 4, true, true, 0.0, &mut unit);
        colour_normalise(&mut unit, 4, &AugmentParams::IDENTITY);
        let flipped = run(&src, 4, params(true, true, 0.0));
        for (a, b) in unit.iter().zip(&flipped) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn rotation_by_90_is_transpose_and_flip() {
        let src = patch4();
        let ccw = run(&src, 4, params(false, false, 90.0));
        let cw = run(&src, 4, params(false, false, -90.0));
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    // numpy rot90 (counter-clockwise): B[y, x] = A[x, P-1-y].
                    let want = src[(x * 4 + (3 - y)) * 3 + c] as f32;
                    assert!((byte_at(&ccw, 4, c, y, x) - want).abs() < 1e-3);
                    // clockwise: B[y, x] = A[P-1-x, y].
                    let want = src[((3 - x) * 4 + y) * 3 + c] as f32;
                    assert!((byte_at(&cw, 4, c, y, x) - want).abs() < 1e-3);
                }
            }
        }
        // 180 degrees = both flips.
        let half = run(&src, 4, params(false, false, 180.0));
        let both = run(&src, 4, params(true, true, 0.0));
        for (a, b) in half.iter().zip(&both) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn reflected_border_has_no_black_corners() {
        let p = 16;
        let src: Vec<u8> = (0..p * p).flat_map(|_| [200u8, 90, 30]).collect();
        for angle in [45.0f32, 30.0, -137.0, 179.0] {
            let out = run(&src, p, params(false, false, angle));
            for c in 0..3 {
                for k in 0..p * p {
                    let v = (out[c * p * p + k] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0;
                    assert!((v - src[c] as f32).abs() < 1e-3, "angle {angle}: {v}");
                }
            }
        }
        // The corners of a rotated gradient take mirrored values from inside the patch.
        let grad: Vec<u8> = (0..p * p)
            .flat_map(|k| {
                let v = (k % p * 10) as u8;
                [v, v, v]
            })
            .collect();
        let out = run(&grad, p, params(false, false, 45.0));
        assert!(byte_at(&out, p, 0, 0, 0) > 5.0);
    }

    #[test]
    fn reflect_is_symmetric_about_the_edge_pixels() {
        assert_eq!(reflect_fixed(-15, 70), 15);
        assert_eq!(reflect_fixed(85, 70), 55);
        assert_eq!(reflect_fixed(30, 70), 30);
        assert_eq!(reflect_fixed(70, 70), 70);
        assert_eq!(reflect_fixed(150, 70), 0, "beyond one period: clamped");
        assert_eq!(reflect_fixed(5, 0), 0);
    }

    #[test]
    fn jitter_at_factor_zero_is_identity() {
        let src: Vec<u8> = (0..32 * 32 * 3).map(|k| (k * 37 % 256) as u8).collect();
        let settings = AugmentSettings {
            hflip: false,
            vflip: false,
            rotation_deg: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut a = vec![0.0; 3 * 32 * 32];
        let mut b = vec![0.0; 3 * 32 * 32];
        augment(&src, 32, &mut rng, &settings, &mut a);
        to_tensor_layout(&src, 32, &mut b);
        assert_eq!(a, b);
        // Neutral factors through the colour path change nothing either.
        let mut unit = vec![0.0; 3 * 32 * 32];
        flip_unit(&src, 32, false, false, &mut unit);
        colour_normalise(&mut unit, 32, &AugmentParams::IDENTITY);
        assert_eq!(unit, b);
        // Disabled augmentation is the evaluation layout whatever the factors.
        augment(&src, 32, &mut rng, &AugmentSettings::off(), &mut a);
        assert_eq!(a, b);
    }

    #[test]
    fn colour_jitter_follows_torchvision() {
        // A 2x2 patch, four pixels k = 0..4.
        let src = [100u8, 50, 200, 10, 250, 30, 0, 0, 0, 255, 255, 255];
        let base = |c: usize, k: usize| src[k * 3 + c] as f32 / 255.0;
        let unnorm =
            |o: &[f32], c: usize, k: usize| o[c * 4 + k] * IMAGENET_STD[c] + IMAGENET_MEAN[c];
        let one = |params: AugmentParams| {
            let mut unit = vec![0.0; 12];
            flip_unit(&src, 2, false, false, &mut unit);
            colour_normalise(&mut unit, 2, &params);
            unit
        };
        let id = AugmentParams::IDENTITY;
        // Brightness multiplies and clamps.
        let o = one(AugmentParams {
            brightness: 1.5,
            ..id
        });
        for c in 0..3 {
            for k in 0..4 {
                let want = (base(c, k) * 1.5).min(1.0);
                assert!((unnorm(&o, c, k) - want).abs() < 1e-5);
            }
        }
        // Contrast blends with the mean grey level.
        let mean = (0..4)
            .map(|k| grey(base(0, k), base(1, k), base(2, k)))
            .sum::<f32>()
            / 4.0;
        let o = one(AugmentParams {
            contrast: 0.5,
            ..id
        });
        for c in 0..3 {
            for k in 0..4 {
                let want = 0.5 * base(c, k) + 0.5 * mean;
                assert!((unnorm(&o, c, k) - want).abs() < 1e-5);
            }
        }
        // Saturation 0 gives the grey image.
        let o = one(AugmentParams {
            saturation: 0.0,
            ..id
        });
        for k in 0..4 {
            let l = grey(base(0, k), base(1, k), base(2, k));
            for c in 0..3 {
                assert!((unnorm(&o, c, k) - l).abs() < 1e-5);
            }
        }
        // A hue shift of a third of a turn rotates pure channels: red -> green.
        let (r, g, b) = shift_hue(1.0, 0.0, 0.0, 1.0 / 3.0);
        assert!(r.abs() < 1e-5 && (g - 1.0).abs() < 1e-5 && b.abs() < 1e-5);
        let (r, g, b) = shift_hue(0.8, 0.3, 0.1, 1.0);
        assert!((r - 0.8).abs() < 1e-5 && (g - 0.3).abs() < 1e-5 && (b - 0.1).abs() < 1e-5);
    }

    #[test]
    fn hsv_round_trip() {
        for &(r, g, b) in &[
            (0.1f32, 0.5f32, 0.9f32),
            (0.9, 0.5, 0.1),
            (0.5, 0.9, 0.1),
            (0.3, 0.3, 0.3),
            (1.0, 0.0, 0.5),
            (0.0, 0.0, 0.0),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            assert!((0.0..1.0).contains(&h));
            let (x, y, z) = hsv_to_rgb(h, s, v);
            assert!((x - r).abs() < 1e-5 && (y - g).abs() < 1e-5 && (z - b).abs() < 1e-5);
        }
    }

    #[test]
    fn sampling_is_seeded_and_in_range() {
        let s = AugmentSettings::default();
        let draw = |seed| AugmentParams::sample(&mut ChaCha8Rng::seed_from_u64(seed), &s);
        assert_eq!(draw(3), draw(3));
        let mut flips = 0;
        for seed in 0..200 {
            let p = draw(seed);
            assert!(p.angle_deg.abs() <= 180.0);
            assert!((0.8..=1.2).contains(&p.brightness));
            assert!((0.8..=1.2).contains(&p.contrast));
            assert!((0.8..=1.2).contains(&p.saturation));
            assert!(p.hue.abs() <= 0.02);
            flips += p.hflip as u32;
        }
        assert!((60..140).contains(&flips), "{flips}");
    }

    #[test]
    fn settings_are_validated_and_strict() {
        assert!(AugmentSettings::default().validate().is_ok());
        let bad = AugmentSettings {
            hue: 0.7,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("augment.hue"));
        let bad = AugmentSettings {
            rotation_deg: 200.0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = AugmentSettings {
            brightness: -0.1,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn augmented_values_stay_in_the_normalised_range() {
        let p = 24;
        let src: Vec<u8> = (0..p * p * 3).map(|k| (k * 91 % 256) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut out = vec![0.0; 3 * p * p];
        let s = AugmentSettings {
            brightness: 0.9,
            contrast: 0.9,
            saturation: 0.9,
            hue: 0.5,
            ..Default::default()
        };
        for _ in 0..20 {
            augment(&src, p, &mut rng, &s, &mut out);
            for c in 0..3 {
                let lo = (0.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] - 1e-5;
                let hi = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] + 1e-5;
                assert!(out[c * p * p..(c + 1) * p * p]
                    .iter()
                    .all(|v| v.is_finite() && (lo..=hi).contains(v)));
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    proptest! {
        /// Any patch size and draw: finite values within the normalised range, and a
        /// constant patch stays constant (the reflected border adds nothing new).
        #[test]
        fn augmentation_is_bounded_and_keeps_constant_patches(
            p in 1usize..24,
            seed in any::<u64>(),
            colour in any::<[u8; 3]>(),
        ) {
            let settings = AugmentSettings { brightness: 0.0, contrast: 0.0, saturation: 0.0, hue: 0.0, ..Default::default() };
            let src: Vec<u8> = (0..p * p).flat_map(|_| colour).collect();
            let mut out = vec![0.0; 3 * p * p];
            augment(&src, p, &mut ChaCha8Rng::seed_from_u64(seed), &settings, &mut out);
            for c in 0..3 {
                let want = (colour[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                for v in &out[c * p * p..(c + 1) * p * p] {
                    prop_assert!((v - want).abs() < 1e-4);
                }
            }
            let src: Vec<u8> = (0..p * p * 3).map(|k| (k as u64 ^ seed) as u8).collect();
            augment(&src, p, &mut ChaCha8Rng::seed_from_u64(seed), &AugmentSettings::default(), &mut out);
            for c in 0..3 {
                let lo = -IMAGENET_MEAN[c] / IMAGENET_STD[c] - 1e-5;
                let hi = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] + 1e-5;
                prop_assert!(out[c * p * p..(c + 1) * p * p].iter().all(|v| (lo..=hi).contains(v)));
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    #[test]
    #[ignore]
    fn parts() {
        let p = 128;
        let src: Vec<u8> = (0..p * p * 3).map(|k| (k * 7919 % 251) as u8).collect();
        let mut out = vec![0.0; 3 * p * p];
        let id = AugmentParams::IDENTITY;
        for (name, params) in [
            ("identity", id),
            (
                "flips",
                AugmentParams {
                    hflip: true,
                    vflip: true,
                    ..id
                },
            ),
            (
                "rotate",
                AugmentParams {
                    angle_deg: 33.0,
                    ..id
                },
            ),
            (
                "rotate-only",
                AugmentParams {
                    angle_deg: 33.0,
                    ..id
                },
            ),
            (
                "brightness",
                AugmentParams {
                    brightness: 1.1,
                    ..id
                },
            ),
            (
                "contrast",
                AugmentParams {
                    contrast: 1.1,
                    ..id
                },
            ),
            (
                "saturation",
                AugmentParams {
                    saturation: 1.1,
                    ..id
                },
            ),
            ("hue", AugmentParams { hue: 0.01, ..id }),
            (
                "all",
                AugmentParams {
                    hflip: true,
                    vflip: false,
                    angle_deg: 33.0,
                    brightness: 1.1,
                    contrast: 0.9,
                    saturation: 1.1,
                    hue: 0.01,
                },
            ),
        ] {
            let n = if name == "rotate-only" { 3000 } else { 300 };
            let t = std::time::Instant::now();
            for _ in 0..n {
                if name == "rotate-only" {
                    rotate_unit(&src, p, false, false, 33.0, &mut out);
                } else {
                    apply(&src, p, &params, &mut out);
                }
            }
            println!(
                "{name}: {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
    }
}
