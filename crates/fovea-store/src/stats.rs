//! Dataset composition of a patch store: what `stats.json` holds and `fovea stats` prints
//! (in the report's words: "Healthy patches: N | of those 'black': M", "Label sums").

use std::collections::BTreeMap;
use std::fmt::Write as _;

use fovea_data::{Split, LESIONS, NUM_LESIONS};
use serde::{Deserialize, Serialize};

use crate::index::PatchRow;
use crate::settings::ExtractSettings;

/// Counts over a set of patches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    /// All patches, black ones included.
    pub patches: u64,
    /// Photographs.
    pub images: u64,
    /// Patches with no lesion label, black ones included (as the report counted them).
    pub healthy: u64,
    /// Black patches (all of them healthy).
    pub black: u64,
    /// Patches with at least one lesion label.
    pub lesion: u64,
    /// Labels per lesion [MA, HE, EX, SE] over non-black patches.
    pub label_sums: [u64; NUM_LESIONS],
    /// `cooccurrence[i][j]`: non-black patches labelled with both lesion i and lesion j
    /// (the diagonal repeats `label_sums`).
    pub cooccurrence: [[u64; NUM_LESIONS]; NUM_LESIONS],
    /// Non-black patches by number of lesion labels (0..=4).
    pub by_label_count: [u64; NUM_LESIONS + 1],
}

impl Composition {
    /// Composition of `rows`.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a PatchRow>) -> Composition {
        let mut c = Composition::default();
        let mut images = std::collections::HashSet::new();
        for r in rows {
            c.patches += 1;
            images.insert(r.image_id.as_str());
            if r.is_lesion() {
                c.lesion += 1;
            } else {
                c.healthy += 1;
            }
            if r.black {
                c.black += 1;
                continue;
            }
            let n = r.labels.iter().filter(|&&l| l != 0).count();
            c.by_label_count[n] += 1;
            for i in 0..NUM_LESIONS {
                if r.labels[i] == 0 {
                    continue;
                }
                c.label_sums[i] += 1;
                for j in 0..NUM_LESIONS {
                    if r.labels[j] != 0 {
                        c.cooccurrence[i][j] += 1;
                    }
                }
            }
        }
        c.images = images.len() as u64;
        c
    }

    /// Non-black patches.
    pub fn usable(&self) -> u64 {
        self.patches - self.black
    }

    /// The report's lines, indented by `indent`.
    pub fn describe(&self, indent: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{indent}Images: {} | Patches: {} (usable: {})",
            self.images,
            self.patches,
            self.usable()
        );
        let _ = writeln!(
            s,
            "{indent}Healthy patches: {} | of those 'black': {}",
            self.healthy, self.black
        );
        let _ = writeln!(s, "{indent}Lesion patches: {}", self.lesion);
        let _ = writeln!(
            s,
            "{indent}Label sums: {:?}  [MA, HE, EX, SE]",
            self.label_sums
        );
        let _ = writeln!(
            s,
            "{indent}Patches by number of labels (0-4, non-black): {:?}",
            self.by_label_count
        );
        let _ = writeln!(s, "{indent}Co-occurrence (non-black):");
        let _ = writeln!(
            s,
            "{indent}      {:>7}{:>7}{:>7}{:>7}",
            "MA", "HE", "EX", "SE"
        );
        for (i, l) in LESIONS.iter().enumerate() {
            let r = self.cooccurrence[i];
            let _ = writeln!(
                s,
                "{indent}  {:<4}{:>7}{:>7}{:>7}{:>7}",
                l.code(),
                r[0],
                r[1],
                r[2],
                r[3]
            );
        }
        s
    }
}

/// `stats.json`: the store's counts (CONTRACTS 2: `patches`, `images`, `healthy`,
/// `black`, `lesion`, `label_sums`), per split, and the resolved settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    #[serde(flatten)]
    pub all: Composition,
    pub splits: BTreeMap<Split, Composition>,
    pub settings: ExtractSettings,
}

impl StoreStats {
    /// Statistics of a store's rows; `images` counts every photograph extracted (also those
    /// that gave no patch).
    pub fn from_rows(rows: &[PatchRow], images: usize, settings: &ExtractSettings) -> StoreStats {
        let mut all = Composition::of(rows);
        all.images = images as u64;
        let splits = Split::ALL
            .iter()
            .map(|&s| (s, Composition::of(rows.iter().filter(|r| r.split == s))))
            .filter(|(_, c)| c.patches > 0)
            .collect();
        StoreStats {
            all,
            splits,
            settings: settings.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human-readable composition: all patches, then each split.
    pub fn describe(&self) -> String {
        let mut s = String::from("All splits\n");
        s += &self.all.describe("  ");
        for (split, c) in &self.splits {
            let _ = writeln!(s, "Split '{split}'");
            s += &c.describe("  ");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::PatchKind;

    pub(crate) fn row(k: u64, img: &str, split: Split, labels: [u8; 4], black: bool) -> PatchRow {
        PatchRow {
            patch: k,
            image_id: img.into(),
            split,
            x: 0,
            y: 0,
            size: 8,
            kind: PatchKind::Grid,
            labels,
            px: labels.map(u32::from),
            fov_frac: if black { 0.0 } else { 1.0 },
            black,
            centred_on: None,
        }
    }

    #[test]
    fn composition_counts_by_hand() {
        let rows = vec![
            row(0, "a", Split::Train, [0, 0, 0, 0], true),
            row(1, "a", Split::Train, [0, 0, 0, 0], false),
            row(2, "a", Split::Train, [1, 1, 0, 0], false),
            row(3, "b", Split::Test, [1, 0, 0, 1], false),
            row(4, "b", Split::Test, [0, 0, 1, 0], false),
        ];
        let c = Composition::of(&rows);
        assert_eq!(
            (c.patches, c.images, c.healthy, c.black, c.lesion),
            (5, 2, 2, 1, 3)
        );
        assert_eq!(c.label_sums, [2, 1, 1, 1]);
        assert_eq!(c.cooccurrence[0], [2, 1, 0, 1]);
        assert_eq!(c.cooccurrence[3][0], 1);
        assert_eq!(c.by_label_count, [1, 1, 2, 0, 0]);
        let st = StoreStats::from_rows(&rows, 2, &ExtractSettings::default());
        assert_eq!(st.splits[&Split::Train].patches, 3);
        assert!(!st.splits.contains_key(&Split::Val));
        let json: serde_json::Value = serde_json::from_str(&st.to_json()).unwrap();
        for key in [
            "patches",
            "images",
            "healthy",
            "black",
            "lesion",
            "label_sums",
            "settings",
        ] {
            assert!(json.get(key).is_some(), "stats.json lacks {key}");
        }
        assert_eq!(json["label_sums"], serde_json::json!([2, 1, 1, 1]));
        assert!(st
            .describe()
            .contains("Healthy patches: 2 | of those 'black': 1"));
    }
}
