//! The four lesion types Fovea detects, always in the order MA, HE, EX, SE.

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
    pub fn code(self) -> &'static str {
        match self {
            Lesion::MA => "MA",
            Lesion::HE => "HE",
            Lesion::EX => "EX",
            Lesion::SE => "SE",
        }
    }

    /// Lower-case column name used in CSV files: `ma`, `he`, `ex`, `se`.
    pub fn column(self) -> &'static str {
        match self {
            Lesion::MA => "ma",
            Lesion::HE => "he",
            Lesion::EX => "ex",
            Lesion::SE => "se",
        }
    }

    /// Position in the label vector (0..4).
    pub fn index(self) -> usize {
        self as usize
    }

    /// English name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Lesion::MA => "microaneurysms",
            Lesion::HE => "haemorrhages",
            Lesion::EX => "hard exudates",
            Lesion::SE => "soft exudates",
        }
    }
}

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
        }
    }
}
