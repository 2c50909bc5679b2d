//! Property test of the `thresholds.json` reader: random bytes and mutations of a valid
//! file give an `Err` or four finite thresholds, never a panic.

use fovea_metrics::thresholds_file::ThresholdsFile;
use proptest::prelude::*;

const VALID: &str = r#"{"MA": 0.25, "HE": 0.5, "EX": 0.75, "SE": 1}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_and_mutated_thresholds_json_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        random in any::<bool>(),
    ) {
        let mut b = if random { bytes } else { VALID.as_bytes().to_vec() };
        for (at, v) in edits {
            let i = at % b.len().max(1);
            if i < b.len() {
                b[i] = v;
            }
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        // `ThresholdsFile::read` is `read_to_string` (non-UTF-8 is an I/O error) then this.
        if let Ok(t) = ThresholdsFile::from_json_str(&String::from_utf8_lossy(&b)) {
            prop_assert!(t.to_array().iter().all(|v| v.is_finite()));
        }
    }
}
