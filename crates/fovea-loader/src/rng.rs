//! How every random stream of the loader is seeded, so that a run's randomness depends on
//! (seed, epoch, position) only: not on the number of threads, the order in which workers
//! finish, or where a resumed run started.
//!
//! A stream is a ChaCha8 generator whose 256-bit key holds the master seed, a purpose tag
//! and the epoch (distinct triples give distinct keys, no hashing involved), and whose
//! 64-bit stream number is the position within the epoch (0 for per-epoch streams).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Purpose tag of the epoch order stream (shuffling, weighted draws).
pub const ORDER: u64 = 0x006f_7264_6572; // "order"
/// Purpose tag of the per-sample augmentation streams.
pub const AUGMENT: u64 = 0x0061_7567_6d65_6e74; // "augment"

/// The generator for (`seed`, `purpose`, `epoch`, `stream`).
pub fn stream(seed: u64, purpose: u64, epoch: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&purpose.to_le_bytes());
    key[16..24].copy_from_slice(&epoch.to_le_bytes());
    key[24..].copy_from_slice(b"fovealdr");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

/// The augmentation generator of the sample at `position` in epoch `epoch`.
pub fn sample_rng(seed: u64, epoch: u64, position: u64) -> ChaCha8Rng {
    stream(seed, AUGMENT, epoch, position)
}

/// The generator of epoch `epoch`'s order.
pub fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    stream(seed, ORDER, epoch, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_distinct_and_repeatable() {
        let draw = |mut r: ChaCha8Rng| -> u64 { r.random() };
        let a = draw(sample_rng(1, 2, 3));
        assert_eq!(a, draw(sample_rng(1, 2, 3)));
        for other in [
            sample_rng(0, 2, 3),
            sample_rng(1, 3, 3),
            sample_rng(1, 2, 4),
            stream(1, ORDER, 2, 3),
        ] {
            assert_ne!(a, draw(other));
        }
    }
}
