//! The cleaner's map from key to the latest offset seen for it (Kafka's `SkimpyOffsetMap`):
//! open addressing over fixed-size slots, keys never stored, only a 128-bit hash of each.
//!
//! Kafka keys its slots by the key's MD5. Here it is XXH3-128 with a seed drawn afresh for
//! every map: as good at telling keys apart, much cheaper, and a key crafted to collide with
//! another cannot be prepared in advance. Two keys with the same hash would merge (the older
//! one's records would be dropped); with 128 bits that takes about 2^64 keys.
//!
//! Memory is bounded: the map starts small and grows, the old and the new table together never
//! taking more than `max_bytes` (Kafka's `log.cleaner.dedupe.buffer.size`), and reports itself
//! full once its slots are 90% used at its largest (Kafka's `log.cleaner.io.buffer.load.factor`);
//! the cleaner then cleans what it mapped and leaves the rest for another pass. Growing within
//! the bound costs capacity: at its largest the table takes between half and two thirds of the
//! budget (about 3 M keys for 128 MiB, where Kafka, allocating the whole buffer up front, holds
//! 5 M), while a cleaning of few keys takes little memory.

use std::hash::{BuildHasher, Hasher};

/// Bytes one slot takes: a 16-byte hash and an 8-byte offset, as Kafka's.
pub(crate) const SLOT_BYTES: usize = 24;

/// Share of the slots that may be used (Kafka's `log.cleaner.io.buffer.load.factor`).
const LOAD_FACTOR: f64 = 0.9;

/// Slots of a new map, before it grows.
const INITIAL_SLOTS: usize = 1 << 10;

/// A key's hash (as two `u64`s: a `u128` would align the slot to 16 bytes and pad it to 32)
/// and its latest offset.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    /// -1 for an empty slot (offsets are never negative).
    offset: i64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);

const EMPTY: Slot = Slot {
    hash: [0; 2],
    offset: -1,
};

/// Key hash → latest offset, bounded in memory.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    slots: Vec<Slot>,
    used: usize,
    max_slots: usize,
    seed: u64,
    /// The largest offset put.
    latest: i64,
}

impl OffsetMap {
    /// An empty map that may grow to `max_bytes` (at least room for a few slots).
    pub(crate) fn new(max_bytes: usize) -> OffsetMap {
        let max_slots = (max_bytes / SLOT_BYTES).max(16);
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        OffsetMap {
            slots: vec![EMPTY; INITIAL_SLOTS.min(max_slots)],
            used: 0,
            max_slots,
            seed,
            latest: -1,
        }
    }

    /// Keys the map can hold at its largest.
    pub(crate) fn capacity(&self) -> usize {
        let mut len = self.slots.len();
        while let Some(next) = Self::next_len(len, self.max_slots) {
            len = next;
        }
        (len as f64 * LOAD_FACTOR) as usize
    }

    /// The table's next length when it grows from `len`: double, or as much as the budget
    /// leaves beside the old table while both exist; `None` when it cannot grow.
    fn next_len(len: usize, max_slots: usize) -> Option<usize> {
        let next = (len * 2).min(max_slots.saturating_sub(len));
        (next > len).then_some(next)
    }

    /// Keys in the map.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.used
    }

    /// Whether `more` more keys might not fit.
    pub(crate) fn lacks_room_for(&self, more: usize) -> bool {
        self.used.saturating_add(more) > self.capacity()
    }

    /// The largest offset put, or -1.
    #[cfg(test)]
    pub(crate) fn latest_offset(&self) -> i64 {
        self.latest
    }

    /// Bytes the map's slots take now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(key, self.seed);
        [h as u64, (h >> 64) as u64]
    }

    /// Where `hash` is, or the empty slot where it would go. The table is never full (growth
    /// and `lacks_room_for` keep it at most 90% used), so the probe ends.
    fn find(slots: &[Slot], hash: [u64; 2]) -> usize {
        let len = slots.len();
        // The high half of a 64x64-bit product maps the hash onto any table length evenly.
        let mut i = ((u128::from(hash[0]) * len as u128) >> 64) as usize;
        loop {
            match slots.get(i) {
                Some(s) if s.offset >= 0 && s.hash != hash => {
                    i = if i + 1 == len { 0 } else { i + 1 }
                }
                _ => return i,
            }
        }
    }

    /// Records `offset` as the latest of `key`. Returns `false`, changing nothing, if the map
    /// is full (the caller should have asked [`lacks_room_for`](Self::lacks_room_for)).
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let mut i = Self::find(&self.slots, hash);
        if self.slots.get(i).is_some_and(|s| s.offset < 0) {
            if self.used + 1 > (self.slots.len() as f64 * LOAD_FACTOR) as usize {
                let Some(next) = Self::next_len(self.slots.len(), self.max_slots) else {
                    return false;
                };
                self.grow(next);
                i = Self::find(&self.slots, hash);
            }
            self.used += 1;
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot { hash, offset };
        }
        self.latest = self.latest.max(offset);
        true
    }

    /// The latest offset recorded for `key`, or -1.
    pub(crate) fn get(&self, key: &[u8]) -> i64 {
        let hash = self.hash(key);
        self.slots
            .get(Self::find(&self.slots, hash))
            .map_or(-1, |s| s.offset)
    }

    fn grow(&mut self, bigger: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; bigger]);
        for slot in old.into_iter().filter(|s| s.offset >= 0) {
            let i = Self::find(&self.slots, slot.hash);
            if let Some(s) = self.slots.get_mut(i) {
                *s = slot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_per_key_wins_and_misses_are_minus_one() {
        let mut map = OffsetMap::new(1 << 20);
        assert_eq!(map.get(b"a"), -1);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"a", 3));
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (3, 2, -1));
        assert_eq!((map.len(), map.latest_offset()), (2, 3));
        assert!(map.put(b"", 4), "an empty key is a key");
        assert_eq!(map.get(b""), 4);
    }

    #[test]
    fn grows_to_its_budget_then_reports_full() {
        let budget = 64 * 1024;
        let mut map = OffsetMap::new(budget);
        let capacity = map.capacity();
        assert!(
            capacity > 800 && capacity * SLOT_BYTES <= budget,
            "{capacity}"
        );
        for i in 0..capacity {
            assert!(!map.lacks_room_for(1));
            assert!(map.put(format!("k{i}").as_bytes(), i as i64), "{i}");
        }
        assert!(map.lacks_room_for(1));
        assert!(!map.put(b"one more", 1), "full");
        assert!(map.put(b"k7", 99_999), "an existing key still updates");
        assert!(map.bytes() * 3 / 2 <= budget, "{} of {budget}", map.bytes());
        for i in 0..capacity {
            let want = if i == 7 { 99_999 } else { i as i64 };
            assert_eq!(map.get(format!("k{i}").as_bytes()), want);
        }
    }

    #[test]
    fn a_tiny_budget_still_holds_a_few_keys() {
        let mut map = OffsetMap::new(0);
        assert!(map.capacity() >= 8);
        assert!(map.put(b"x", 0));
    }
}
