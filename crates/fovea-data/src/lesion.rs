//! The four lesion types Fovea detects, always in the order MA, HE, EX, SE: the one lesion
//! list of the workspace. Each lesion has a code (`MA`), a CSV column suffix (`ma`), an
//! English name, an index in every label vector, and its colours. Every other crate takes
//! them from here: [`LESIONS`], [`LESION_CODES`], [`LESION_COLUMNS`], [`LESION_NAMES`],
//! [`OVERLAY_COLOURS`] and [`CHART_COLOURS`].
//!
//! Two colour sets, on purpose: an overlay is drawn over a dark-red photograph, where only
//! saturated neon hues stand out; a chart is drawn on white, where those hues are hard to
//! read and the Okabe-Ito colour-blind-safe hues are used instead. Both live in this one
//! table, in lesion order.

use serde::{Deserialize, Serialize};

/// Number of lesion types (the length of every label vector).
pub const NUM_LESIONS: usize = 4;

/// A lesion type of diabetic retinopathy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lesion {
    /// Microaneurysms: red dots a few pixels across.
    MA,
    /// Haemorrhages: dark red blots.
    HE,
    /// Hard exudates: bright yellow deposits.
    EX,
    /// Soft exudates (cotton-wool spots): pale fluffy patches.
    SE,
}

/// All lesions in Fovea's fixed order.
pub const LESIONS: [Lesion; NUM_LESIONS] = [Lesion::MA, Lesion::HE, Lesion::EX, Lesion::SE];

impl Lesion {
    /// Upper-case code: `MA`, `HE`, `EX`, `SE`.
    pub const fn code(self) -> &'static str {
        match self {
            Lesion::MA => "MA",
            Lesion::HE => "HE",
            Lesion::EX => "EX",
            Lesion::SE => "SE",
        }
    }

    /// Lower-case column name used in CSV files: `ma`, `he`, `ex`, `se`.
    pub const fn column(self) -> &'static str {
        match self {
            Lesion::MA => "ma",
            Lesion::HE => "he",
            Lesion::EX => "ex",
            Lesion::SE => "se",
        }
    }

    /// Position in the label vector (0..4).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// English name, for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Lesion::MA => "microaneurysms",
            Lesion::HE => "haemorrhages",
            Lesion::EX => "hard exudates",
            Lesion::SE => "soft exudates",
        }
    }

    /// RGB colour of the lesion on an overlay over a photograph: MA cyan, HE magenta,
    /// EX yellow, SE green.
    pub const fn overlay_colour(self) -> [u8; 3] {
        match self {
            Lesion::MA => [0, 229, 255],
            Lesion::HE => [255, 0, 200],
            Lesion::EX => [255, 230, 0],
            Lesion::SE => [57, 255, 20],
        }
    }

    /// RGB colour of the lesion in a chart on white (Okabe-Ito): MA vermilion, HE blue,
    /// EX orange, SE bluish green.
    pub const fn chart_colour(self) -> [u8; 3] {
        match self {
            Lesion::MA => [213, 94, 0],
            Lesion::HE => [0, 114, 178],
            Lesion::EX => [230, 159, 0],
            Lesion::SE => [0, 158, 115],
        }
    }
}

/// A per-lesion table built from a `const fn` of [`Lesion`], in lesion order.
macro_rules! per_lesion {
    ($f:ident) => {
        [
            Lesion::MA.$f(),
            Lesion::HE.$f(),
            Lesion::EX.$f(),
            Lesion::SE.$f(),
        ]
    };
}

/// Upper-case codes in lesion order: `["MA", "HE", "EX", "SE"]`.
pub const LESION_CODES: [&str; NUM_LESIONS] = per_lesion!(code);

/// Lower-case CSV column suffixes in lesion order: `["ma", "he", "ex", "se"]`.
pub const LESION_COLUMNS: [&str; NUM_LESIONS] = per_lesion!(column);

/// English names in lesion order.
pub const LESION_NAMES: [&str; NUM_LESIONS] = per_lesion!(name);

/// Overlay colours in lesion order ([`Lesion::overlay_colour`]).
pub const OVERLAY_COLOURS: [[u8; 3]; NUM_LESIONS] = per_lesion!(overlay_colour);

/// Chart colours in lesion order ([`Lesion::chart_colour`]).
pub const CHART_COLOURS: [[u8; 3]; NUM_LESIONS] = per_lesion!(chart_colour);

impl std::fmt::Display for Lesion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_ma_he_ex_se() {
        let codes: Vec<_> = LESIONS.iter().map(|l| l.code()).collect();
        assert_eq!(codes, ["MA", "HE", "EX", "SE"]);
        for (i, l) in LESIONS.iter().enumerate() {
            assert_eq!(l.index(), i);
            assert_eq!(LESION_CODES[i], l.code());
            assert_eq!(LESION_COLUMNS[i], l.code().to_lowercase());
            assert_eq!(OVERLAY_COLOURS[i], l.overlay_colour());
            assert_eq!(CHART_COLOURS[i], l.chart_colour());
        }
        assert_eq!(LESION_COLUMNS, ["ma", "he", "ex", "se"]);
        assert_eq!(LESION_NAMES[3], "soft exudates");
    }

    #[test]
    fn colours_of_a_set_are_distinct() {
        for set in [OVERLAY_COLOURS, CHART_COLOURS] {
            for a in 0..NUM_LESIONS {
                for b in a + 1..NUM_LESIONS {
                    assert_ne!(set[a], set[b]);
                }
            }
        }
    }
}
