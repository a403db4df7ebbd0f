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
//! the bound costs capacity in the first pass: at its largest the table takes between half and
//! two thirds of the budget (about 3 M keys for 128 MiB), while a cleaning of few keys takes
//! little memory. A map that filled starts the next pass at the whole budget, as Kafka's (5 M
//! keys for 128 MiB).

use std::hash::{BuildHasher, Hasher};
use std::io;

/// Bytes one slot takes: a 16-byte hash and an 8-byte offset, as Kafka's.
pub(crate) const SLOT_BYTES: usize = 24;

/// Share of the slots that may be used (Kafka's `log.cleaner.io.buffer.load.factor`).
const LOAD_FACTOR: f64 = 0.9;

/// Slots of a new map, before it grows.
const INITIAL_SLOTS: usize = 1 << 10;

/// The slots, in an anonymous mapping: it comes zeroed (every slot empty) without being
/// touched, and goes back to the system when dropped, where a heap block of this size might
/// stay with the allocator and in the process's resident set after the pass.
///
/// A slot is a key's 128-bit hash and its latest offset plus one (0: empty), as three
/// native-endian `u64`s.
#[derive(Debug)]
struct Table {
    mem: memmap2::MmapMut,
    len: usize,
}

impl Table {
    fn new(len: usize) -> io::Result<Table> {
        Ok(Table {
            mem: memmap2::MmapMut::map_anon(len.max(1) * SLOT_BYTES)?,
            len,
        })
    }

    fn word(&self, at: usize) -> u64 {
        self.mem
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    }

    /// Slot `i`'s hash and stored offset (offset + 1; 0 when empty).
    fn get(&self, i: usize) -> ([u64; 2], u64) {
        let at = i * SLOT_BYTES;
        ([self.word(at), self.word(at + 8)], self.word(at + 16))
    }

    fn set(&mut self, i: usize, hash: [u64; 2], stored: u64) {
        let at = i * SLOT_BYTES;
        if let Some(slot) = self.mem.get_mut(at..at + SLOT_BYTES) {
            slot[..8].copy_from_slice(&hash[0].to_ne_bytes());
            slot[8..16].copy_from_slice(&hash[1].to_ne_bytes());
            slot[16..].copy_from_slice(&stored.to_ne_bytes());
        }
    }

    /// Where `hash` is, or the empty slot where it would go. The table is never full (growth
    /// and `lacks_room_for` keep it at most 90% used), so the probe ends.
    fn find(&self, hash: [u64; 2]) -> usize {
        let len = self.len;
        // The high half of a 64x64-bit product maps the hash onto any table length evenly.
        let mut i = ((u128::from(hash[0]) * len as u128) >> 64) as usize;
        loop {
            let (at, stored) = self.get(i);
            if stored == 0 || at == hash {
                return i;
            }
            i = if i + 1 == len { 0 } else { i + 1 };
        }
    }
}

/// Key hash → latest offset, bounded in memory.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    table: Table,
    used: usize,
    max_slots: usize,
    seed: u64,
    /// Whether a key was refused for want of room: the next pass starts at the full budget.
    filled: bool,
    /// The largest offset put.
    latest: i64,
}

fn fresh_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl OffsetMap {
    /// An empty map that may grow to `max_bytes` (at least room for a few slots).
    pub(crate) fn new(max_bytes: usize) -> io::Result<OffsetMap> {
        let max_slots = (max_bytes / SLOT_BYTES).max(16);
        Ok(OffsetMap {
            table: Table::new(INITIAL_SLOTS.min(max_slots))?,
            used: 0,
            max_slots,
            seed: fresh_seed(),
            filled: false,
            latest: -1,
        })
    }

    /// Empties the map for another pass. A map that filled up is given the whole budget at
    /// once, as Kafka allocates it: the pass before showed the keys need it, and with no old
    /// table to copy from, all of the budget can be slots.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        let len = if self.filled {
            self.max_slots
        } else {
            self.table.len
        };
        // The old mapping goes first, so the two never count together.
        self.table = Table::new(0)?;
        self.table = Table::new(len)?;
        self.used = 0;
        self.seed = fresh_seed();
        self.filled = false;
        self.latest = -1;
        Ok(())
    }

    /// Keys the map can hold at its largest.
    pub(crate) fn capacity(&self) -> usize {
        let mut len = self.table.len;
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

    /// Whether `more` more keys might not fit; a map that says so is full for this pass.
    pub(crate) fn lacks_room_for(&mut self, more: usize) -> bool {
        let lacks = self.used.saturating_add(more) > self.capacity();
        self.filled |= lacks;
        lacks
    }

    /// The largest offset put, or -1.
    #[cfg(test)]
    pub(crate) fn latest_offset(&self) -> i64 {
        self.latest
    }

    /// Bytes the map's slots take now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.table.len * SLOT_BYTES
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(key, self.seed);
        [h as u64, (h >> 64) as u64]
    }

    /// Records `offset` (never negative) as the latest of `key`. Returns `Ok(false)`,
    /// changing nothing, if the map is full (the caller should have asked
    /// [`lacks_room_for`](Self::lacks_room_for)).
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> io::Result<bool> {
        let hash = self.hash(key);
        let stored = u64::try_from(offset).map_or(0, |o| o + 1);
        let mut i = self.table.find(hash);
        if self.table.get(i).1 == 0 {
            if self.used + 1 > (self.table.len as f64 * LOAD_FACTOR) as usize {
                let Some(next) = Self::next_len(self.table.len, self.max_slots) else {
                    self.filled = true;
                    return Ok(false);
                };
                self.grow(next)?;
                i = self.table.find(hash);
            }
            self.used += 1;
        }
        self.table.set(i, hash, stored);
        self.latest = self.latest.max(offset);
        Ok(true)
    }

    /// The latest offset recorded for `key`, or -1.
    pub(crate) fn get(&self, key: &[u8]) -> i64 {
        let hash = self.hash(key);
        let (_, stored) = self.table.get(self.table.find(hash));
        i64::try_from(stored).map_or(-1, |s| s - 1)
    }

    fn grow(&mut self, bigger: usize) -> io::Result<()> {
        let old = std::mem::replace(&mut self.table, Table::new(bigger)?);
        for i in 0..old.len {
            let (hash, stored) = old.get(i);
            if stored != 0 {
                let j = self.table.find(hash);
                self.table.set(j, hash, stored);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_per_key_wins_and_misses_are_minus_one() {
        let mut map = OffsetMap::new(1 << 20).unwrap();
        assert_eq!(map.get(b"a"), -1);
        assert!(map.put(b"a", 1).unwrap());
        assert!(map.put(b"b", 2).unwrap());
        assert!(map.put(b"a", 3).unwrap());
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (3, 2, -1));
        assert_eq!((map.len(), map.latest_offset()), (2, 3));
        assert!(map.put(b"", 4).unwrap(), "an empty key is a key");
        assert_eq!(map.get(b""), 4);
    }

    #[test]
    fn grows_to_its_budget_then_reports_full() {
        let budget = 64 * 1024;
        let mut map = OffsetMap::new(budget).unwrap();
        let capacity = map.capacity();
        assert!(
            capacity > 800 && capacity * SLOT_BYTES <= budget,
            "{capacity}"
        );
        for i in 0..capacity {
            assert!(!map.lacks_room_for(1));
            assert!(
                map.put(format!("k{i}").as_bytes(), i as i64).unwrap(),
                "{i}"
            );
        }
        assert!(map.lacks_room_for(1));
        assert!(!map.put(b"one more", 1).unwrap(), "full");
        assert!(
            map.put(b"k7", 99_999).unwrap(),
            "an existing key still updates"
        );
        assert!(map.bytes() * 3 / 2 <= budget, "{} of {budget}", map.bytes());
        for i in 0..capacity {
            let want = if i == 7 { 99_999 } else { i as i64 };
            assert_eq!(map.get(format!("k{i}").as_bytes()), want);
        }
    }

    #[test]
    fn a_tiny_budget_still_holds_a_few_keys() {
        let mut map = OffsetMap::new(0).unwrap();
        assert!(map.capacity() >= 8);
        assert!(map.put(b"x", 0).unwrap());
    }

    #[test]
    fn a_map_that_filled_holds_the_whole_budget_after_clear() {
        let budget = 64 * 1024;
        let mut map = OffsetMap::new(budget).unwrap();
        let first = map.capacity();
        map.put(b"a", 1).unwrap();
        map.clear().unwrap();
        assert_eq!(map.capacity(), first, "not filled: same growth as before");
        assert_eq!((map.get(b"a"), map.latest_offset()), (-1, -1));
        let mut i = 0;
        while !map.lacks_room_for(1) {
            assert!(map.put(format!("k{i}").as_bytes(), i).unwrap());
            i += 1;
        }
        map.clear().unwrap();
        let whole = map.capacity();
        assert_eq!(whole, ((budget / SLOT_BYTES) as f64 * LOAD_FACTOR) as usize);
        assert!(whole > first * 3 / 2, "{whole} vs {first}");
        assert_eq!(map.bytes(), budget / SLOT_BYTES * SLOT_BYTES);
        for i in 0..whole as i64 {
            assert!(map.put(format!("k{i}").as_bytes(), i).unwrap());
        }
        assert!(map.lacks_room_for(1));
        assert_eq!(map.get(b"k5"), 5);
        assert_eq!(map.len(), whole);
    }
}
