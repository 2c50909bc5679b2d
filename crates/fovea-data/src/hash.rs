//! A stable content hash for cache keys (BLAKE3): the same inputs give the same key on
//! every machine, Rust release and run, unlike std's `DefaultHasher`, whose algorithm may
//! change between releases. Every value is fed with its length or fixed width, so
//! `("ab", "c")` and `("a", "bc")` differ.

/// Feeds values into a BLAKE3 hash; [`ContentHash::hex`] gives the key.
#[derive(Clone, Debug, Default)]
pub struct ContentHash {
    hasher: blake3::Hasher,
}

impl ContentHash {
    /// An empty hash.
    pub fn new() -> ContentHash {
        ContentHash::default()
    }

    /// Feeds raw bytes, length first.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.hasher.update(b);
        self
    }

    /// Feeds a string (its UTF-8 bytes, length first).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Feeds an integer (8 bytes, little-endian).
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.hasher.update(&v.to_le_bytes());
        self
    }

    /// Feeds a float by its bit pattern (so `-0.0` differs from `0.0`, NaNs by payload).
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.hasher.update(&v.to_bits().to_le_bytes());
        self
    }

    /// Feeds a slice of floats (count first, then each by its bit pattern).
    pub fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.u64(v.len() as u64);
        for &x in v {
            self.f32(x);
        }
        self
    }

    /// The first `chars` hexadecimal digits of the hash (at most 64).
    pub fn hex(&self, chars: usize) -> String {
        let mut s = self.hasher.finalize().to_hex().to_string();
        s.truncate(chars);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_framed() {
        // BLAKE3 of nothing fed: the published empty-input digest.
        assert_eq!(
            ContentHash::new().hex(64),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let key = |a: &str, b: &str| ContentHash::new().str(a).str(b).hex(16);
        assert_eq!(key("ab", "c"), key("ab", "c"));
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(key("ab", "c").len(), 16);
        let f = |v: f32| ContentHash::new().f32(v).hex(16);
        assert_ne!(f(0.0), f(-0.0));
        assert_ne!(
            ContentHash::new().f32s(&[1.0]).f32s(&[]).hex(16),
            ContentHash::new().f32s(&[]).f32s(&[1.0]).hex(16)
        );
    }
}
