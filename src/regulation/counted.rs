//! A `DashMap` that keeps its own size. `DashMap::len` read-locks every shard, and the limiter
//! asks "is this table full?" on every attempt from an untracked key: under a flood of distinct
//! addresses that was a lock on all shards per attempt, on every thread. Here the size is one
//! atomic read; inserts and removals go through this type so it stays exact.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::mapref::one::{Ref, RefMut};
use dashmap::DashMap;

pub(super) struct CountedMap<K, V> {
    map: DashMap<K, V>,
    len: AtomicUsize,
}

impl<K: Hash + Eq, V> Default for CountedMap<K, V> {
    fn default() -> Self {
        CountedMap {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
        }
    }
}

impl<K: Hash + Eq, V> CountedMap<K, V> {
    /// The number of entries, without taking any lock.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    pub fn get_mut<Q>(&self, key: &Q) -> Option<RefMut<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    /// The entry for `key`, inserting `V::default()` if there is none.
    pub fn get_or_default(&self, key: K) -> RefMut<'_, K, V>
    where
        V: Default,
    {
        match self.map.entry(key) {
            Entry::Occupied(e) => e.into_ref(),
            Entry::Vacant(e) => {
                self.len.fetch_add(1, Ordering::Relaxed);
                e.insert(V::default())
            }
        }
    }

    pub fn remove<Q>(&self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.map.remove(key);
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Keeps the entries `keep` says yes to (it may change them).
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut removed = 0;
        self.map.retain(|k, v| {
            let kept = keep(k, v);
            removed += usize::from(!kept);
            kept
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Keeps the entries `keep` says yes to, then gives the freed capacity back.
    pub fn retain_and_shrink(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.retain(keep);
        self.map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::CountedMap;

    #[test]
    fn the_count_follows_inserts_removals_and_retain() {
        let m: CountedMap<u32, u32> = CountedMap::default();
        for k in 0..10 {
            *m.get_or_default(k) += 1;
        }
        *m.get_or_default(3) += 1; // an existing key is not counted again
        assert_eq!(m.len(), 10);
        assert!(m.remove(&3).is_some());
        assert!(m.remove(&3).is_none());
        assert_eq!(m.len(), 9);
        m.retain_and_shrink(|k, _| k % 2 == 0);
        assert_eq!(m.len(), 5); // 0, 2, 4, 6, 8
        assert_eq!(m.map.len(), m.len());
    }

    #[test]
    fn the_count_is_exact_under_concurrent_inserts() {
        let m: CountedMap<u32, u32> = CountedMap::default();
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let m = &m;
                s.spawn(move || {
                    for k in 0..2_000 {
                        *m.get_or_default(k) += t; // the same keys from every thread
                    }
                });
            }
        });
        assert_eq!(m.len(), 2_000);
        assert_eq!(m.map.len(), 2_000);
    }
}
