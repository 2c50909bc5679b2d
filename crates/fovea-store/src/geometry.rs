//! Patch geometry: where grid patches and lesion-centred patches go, and the centred label
//! region. Coordinates are pixels of the original photograph (x right, y down); a patch is
//! given by its top-left corner and its side P.

/// Top-left corners of grid patches: x = 0, S, 2S, ... while x + P <= width, likewise y,
/// in row-major order (CONTRACTS 2). Empty when the photograph is smaller than P.
pub fn grid_positions(width: u32, height: u32, patch: u32, stride: u32) -> Vec<(u32, u32)> {
    let xs = axis_positions(width, patch, stride);
    let ys = axis_positions(height, patch, stride);
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
        .collect()
}

/// Number of grid patches: `floor((W - P) / S) + 1` per axis (0 when W < P).
pub fn grid_count(width: u32, height: u32, patch: u32, stride: u32) -> usize {
    axis_positions(width, patch, stride).len() * axis_positions(height, patch, stride).len()
}

fn axis_positions(len: u32, patch: u32, stride: u32) -> Vec<u32> {
    if patch == 0 || stride == 0 || len < patch {
        return Vec::new();
    }
    (0..=(len - patch) / stride).map(|i| i * stride).collect()
}

/// An axis-aligned box of pixels, inclusive bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// Top-left corner of a lesion-centred patch of side `patch` for a component with bounding
/// box `bbox` and centre pixel `centre`, shifted by `shift` (the seeded jitter), inside a
/// `width` x `height` photograph.
///
/// Guarantees (tested by property): the patch lies inside the photograph; it contains the
/// whole component box when the box fits in a patch, and the centre pixel otherwise.
/// Returns `None` when the photograph is smaller than the patch.
pub fn centred_position(
    width: u32,
    height: u32,
    patch: u32,
    bbox: PixelBox,
    centre: (u32, u32),
    shift: (i64, i64),
) -> Option<(u32, u32)> {
    if width < patch || height < patch {
        return None;
    }
    let x = axis_centred(width, patch, bbox.x0, bbox.x1, centre.0, shift.0);
    let y = axis_centred(height, patch, bbox.y0, bbox.y1, centre.1, shift.1);
    Some((x, y))
}

fn axis_centred(len: u32, patch: u32, b0: u32, b1: u32, c: u32, shift: i64) -> u32 {
    let (len, patch, b0, b1, c) = (len as i64, patch as i64, b0 as i64, b1 as i64, c as i64);
    // Range of top-left positions that keep what must be kept inside the patch.
    let (keep0, keep1) = if b1 - b0 < patch { (b0, b1) } else { (c, c) };
    let lo = (keep1 - patch + 1).max(0);
    let hi = keep0.min(len - patch);
    let desired = c - patch / 2 + shift;
    desired.clamp(lo, hi.max(lo)) as u32
}

/// The centred label region of a patch at `(x, y)` of side `patch`: its top-left corner
/// and side `region` (`region` <= `patch`; the offset is `(patch - region) / 2`).
pub fn label_region(x: u32, y: u32, patch: u32, region: u32) -> (u32, u32, u32) {
    let off = (patch - region.min(patch)) / 2;
    (x + off, y + off, region.min(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grid_on_a_hand_checked_case() {
        // 10 x 7 photograph, P = 4, S = 3: x in {0, 3, 6}, y in {0, 3}.
        let pos = grid_positions(10, 7, 4, 3);
        assert_eq!(pos, vec![(0, 0), (3, 0), (6, 0), (0, 3), (3, 3), (6, 3)]);
        assert_eq!(grid_count(10, 7, 4, 3), 6);
        assert!(grid_positions(3, 10, 4, 1).is_empty());
        assert_eq!(grid_positions(4, 4, 4, 100), vec![(0, 0)]);
    }

    #[test]
    fn idrid_grid_count() {
        // 4288 x 2848 with P = S = 128: 33 x 22 patches.
        assert_eq!(grid_count(4288, 2848, 128, 128), 726);
    }

    #[test]
    fn label_region_is_centred() {
        assert_eq!(label_region(10, 20, 8, 4), (12, 22, 4));
        assert_eq!(label_region(10, 20, 8, 8), (10, 20, 8));
    }

    #[test]
    fn centred_on_hand_checked_cases() {
        let b = PixelBox {
            x0: 10,
            y0: 10,
            x1: 12,
            y1: 12,
        };
        // Centre 11, P = 8: 11 - 4 = 7.
        assert_eq!(
            centred_position(100, 100, 8, b, (11, 11), (0, 0)),
            Some((7, 7))
        );
        // A big shift is clamped so the box stays inside: x <= 10 and x + 8 > 12.
        assert_eq!(
            centred_position(100, 100, 8, b, (11, 11), (50, -50)),
            Some((10, 5))
        );
        // Near the border the patch is clamped into the photograph.
        let edge = PixelBox {
            x0: 0,
            y0: 98,
            x1: 1,
            y1: 99,
        };
        assert_eq!(
            centred_position(100, 100, 8, edge, (0, 99), (0, 0)),
            Some((0, 92))
        );
        assert_eq!(centred_position(4, 100, 8, b, (1, 1), (0, 0)), None);
    }

    proptest! {
        #[test]
        fn grid_patches_in_bounds_and_counted(w in 1u32..300, h in 1u32..300, p in 1u32..64, s in 1u32..64) {
            let pos = grid_positions(w, h, p, s);
            let expect = if w < p || h < p { 0 } else { (((w - p) / s + 1) * ((h - p) / s + 1)) as usize };
            prop_assert_eq!(pos.len(), expect);
            for &(x, y) in &pos {
                prop_assert!(x + p <= w && y + p <= h);
                prop_assert!(x % s == 0 && y % s == 0);
            }
            // Row-major order.
            prop_assert!(pos.windows(2).all(|a| (a[0].1, a[0].0) < (a[1].1, a[1].0)));
        }

        #[test]
        fn centred_patch_contains_its_component(
            w in 16u32..400, h in 16u32..400, p in 4u32..16,
            bx in 0u32..400, by in 0u32..400, bw in 0u32..40, bh in 0u32..40,
            sx in -100i64..100, sy in -100i64..100,
        ) {
            let (x0, y0) = (bx % w, by % h);
            let (x1, y1) = ((x0 + bw).min(w - 1), (y0 + bh).min(h - 1));
            let c = ((x0 + x1) / 2, (y0 + y1) / 2);
            let b = PixelBox { x0, y0, x1, y1 };
            let (x, y) = centred_position(w, h, p, b, c, (sx, sy)).unwrap();
            prop_assert!(x + p <= w && y + p <= h);
            let inside = |px: u32, py: u32| px >= x && px < x + p && py >= y && py < y + p;
            if x1 - x0 < p && y1 - y0 < p {
                prop_assert!(inside(x0, y0) && inside(x1, y1));
            }
            prop_assert!(inside(c.0, c.1));
        }
    }
}
