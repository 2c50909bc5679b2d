//! A least-recently-used cache bounded in bytes, shared by the tile workers: decoded
//! photographs and masks are tens of megabytes each, so the bound is on their size, not
//! their number.
//!
//! The bound holds for what the cache itself keeps: [`ByteLru::used`] never exceeds
//! [`ByteLru::capacity`]. A value larger than the whole capacity is not kept (its user
//! holds it while it works and drops it). Values are shared (`Arc`), so a value evicted
//! while a worker still reads it lives until that worker drops it: the process holds at
//! most the capacity plus one value per worker.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

/// A value's size in bytes, as the cache counts it.
pub trait Weigh {
    fn bytes(&self) -> u64;
}

/// Counters, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Values refused because they alone exceed the capacity.
    pub oversized: u64,
}

/// LRU map from `K` to shared values, at most `capacity` bytes of them.
#[derive(Debug)]
pub struct ByteLru<K, V> {
    capacity: u64,
    used: u64,
    /// Value and the tick of its last use.
    entries: HashMap<K, (Arc<V>, u64)>,
    /// Last-use tick -> key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    stats: CacheStats,
}

impl<K: Clone + Eq + Hash, V: Weigh> ByteLru<K, V> {
    pub fn new(capacity: u64) -> Self {
        ByteLru {
            capacity,
            used: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            stats: CacheStats::default(),
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes of the values held.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The value of `key`, marked as just used.
    pub fn get(&mut self, key: &K) -> Option<Arc<V>> {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(key) {
            Some((value, last)) => {
                self.order.remove(last);
                *last = tick;
                self.order.insert(tick, key.clone());
                self.stats.hits += 1;
                Some(value.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Keeps `value` under `key` (replacing an older one), evicting the least recently
    /// used values until it fits; a value larger than the capacity is not kept.
    pub fn insert(&mut self, key: K, value: Arc<V>) {
        self.remove(&key);
        let size = value.bytes();
        if size > self.capacity {
            self.stats.oversized += 1;
            return;
        }
        while self.used + size > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((v, _)) = self.entries.remove(&oldest) {
                self.used -= v.bytes();
                self.stats.evictions += 1;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick));
        self.used += size;
        debug_assert!(self.used <= self.capacity);
    }

    fn remove(&mut self, key: &K) {
        if let Some((v, last)) = self.entries.remove(key) {
            self.order.remove(&last);
            self.used -= v.bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug)]
    struct Blob(u64);
    impl Weigh for Blob {
        fn bytes(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut c = ByteLru::new(30);
        c.insert(1, Arc::new(Blob(10)));
        c.insert(2, Arc::new(Blob(10)));
        c.insert(3, Arc::new(Blob(10)));
        assert!(c.get(&1).is_some()); // 2 is now the oldest
        c.insert(4, Arc::new(Blob(10)));
        assert!(c.get(&2).is_none());
        assert!(c.get(&1).is_some() && c.get(&3).is_some() && c.get(&4).is_some());
        assert_eq!(c.used(), 30);
        // A larger value evicts as many as needed.
        c.insert(5, Arc::new(Blob(25)));
        assert_eq!((c.len(), c.used()), (1, 25));
        // Too large for the cache: not kept, nothing evicted.
        c.insert(6, Arc::new(Blob(31)));
        assert_eq!((c.len(), c.used()), (1, 25));
        assert_eq!(c.stats().oversized, 1);
        // Replacing a key counts its new size only.
        c.insert(5, Arc::new(Blob(5)));
        assert_eq!((c.len(), c.used()), (1, 5));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut c = ByteLru::new(0);
        c.insert(1, Arc::new(Blob(1)));
        assert!(c.is_empty() && c.get(&1).is_none());
        c.insert(2, Arc::new(Blob(0)));
        assert_eq!(c.used(), 0);
    }

    proptest! {
        /// Any sequence of inserts and lookups: the bytes held never exceed the capacity and
        /// always equal the sum of the held values' sizes.
        #[test]
        fn never_exceeds_its_bound(
            capacity in 0u64..200,
            ops in proptest::collection::vec((0u8..12, 0u64..80, any::<bool>()), 1..200),
        ) {
            let mut c = ByteLru::new(capacity);
            for (key, size, insert) in ops {
                if insert {
                    c.insert(key, Arc::new(Blob(size)));
                } else {
                    let _ = c.get(&key);
                }
                prop_assert!(c.used() <= capacity);
                let sum: u64 = (0u8..12).filter_map(|k| c.entries.get(&k)).map(|(v, _)| v.0).sum();
                prop_assert_eq!(sum, c.used());
                prop_assert_eq!(c.order.len(), c.entries.len());
            }
        }
    }
}
