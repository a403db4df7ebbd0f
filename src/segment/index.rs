//! Fixed-size-entry index files (Kafka's `AbstractIndex`): no header, no checksum, entries
//! back to back. The shared mechanics live here; [`OffsetEntry`](super::offset_index::OffsetEntry)
//! and [`TimeEntry`](super::time_index::TimeEntry) add only their layout and rules.
//!
//! An index is a cache of its `.log`: whatever its bytes say is checked before use, and an index
//! that fails a check is rebuilt from the log.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::disk::Mapping;

/// One fixed-size, big-endian index entry.
pub(crate) trait Entry: Copy + fmt::Debug + PartialEq {
    /// Bytes per entry.
    const SIZE: usize;
    /// Decodes an entry from the first `SIZE` bytes; `None` if there are fewer.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Appends the entry's `SIZE` bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// The value searches order entries by.
    fn key(&self) -> i64;
}

/// Where an index's bytes live.
#[derive(Debug)]
enum Bytes {
    /// In memory: the active segment's index, or one rebuilt from its log.
    Owned(Vec<u8>),
    /// A mapping of a sealed index file; only the first `len` bytes are entries.
    Mapped(Arc<Mapping>, usize),
}

/// The entries of one index, owned or mapped.
#[derive(Debug)]
pub(crate) struct Index<E> {
    bytes: Bytes,
    _entry: PhantomData<E>,
}

impl<E: Entry> Index<E> {
    /// An empty in-memory index.
    pub(crate) fn new() -> Self {
        Index {
            bytes: Bytes::Owned(Vec::new()),
            _entry: PhantomData,
        }
    }

    /// An in-memory index holding `bytes` (whole entries only; a partial tail is dropped).
    pub(crate) fn from_vec(mut bytes: Vec<u8>) -> Self {
        bytes.truncate(bytes.len() / E::SIZE * E::SIZE);
        Index {
            bytes: Bytes::Owned(bytes),
            _entry: PhantomData,
        }
    }

    /// An index over the first `len` bytes of a mapping (rounded down to whole entries).
    pub(crate) fn mapped(map: Arc<Mapping>, len: usize) -> Self {
        let len = len.min(map.len()) / E::SIZE * E::SIZE;
        Index {
            bytes: Bytes::Mapped(map, len),
            _entry: PhantomData,
        }
    }

    /// The entries' bytes, as stored.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Owned(v) => v,
            // `mapped` keeps `len` within the mapping; were it not, the index would only be
            // empty, which costs a scan of the log.
            Bytes::Mapped(m, len) => m.get(..*len).unwrap_or_default(),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len() / E::SIZE
    }

    /// Entry `i`, if there is one.
    pub(crate) fn get(&self, i: usize) -> Option<E> {
        let start = i.checked_mul(E::SIZE)?;
        self.as_bytes().get(start..).and_then(E::decode)
    }

    /// The last entry.
    pub(crate) fn last(&self) -> Option<E> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// All entries in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = E> + '_ {
        // Every chunk holds a whole entry, so `decode` never ends the iteration early.
        self.as_bytes().chunks_exact(E::SIZE).map_while(E::decode)
    }

    /// Appends an entry. A mapped index becomes an owned copy first (only a rebuilt or
    /// reopened active index is ever appended to).
    pub(crate) fn push(&mut self, entry: E) {
        if let Bytes::Mapped(..) = &self.bytes {
            self.bytes = Bytes::Owned(self.as_bytes().to_vec());
        }
        if let Bytes::Owned(v) = &mut self.bytes {
            entry.encode(v);
        }
    }

    /// The last entry whose key is `<= target`: Kafka's `largestLowerBound`, a binary search.
    pub(crate) fn floor(&self, target: i64) -> Option<E> {
        self.floor_index(target).and_then(|i| self.get(i))
    }

    /// The number of [`floor`](Self::floor)'s entry.
    pub(crate) fn floor_index(&self, target: i64) -> Option<usize> {
        let bytes = self.as_bytes();
        // `i < len`, so `i * SIZE` stays within `bytes.len()`.
        let entry = |i: usize| bytes.get(i * E::SIZE..).and_then(E::decode);
        // Number of entries with key <= target, for keys that increase.
        let (mut lo, mut hi) = (0usize, bytes.len() / E::SIZE);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match entry(mid) {
                Some(e) if e.key() <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::offset_index::OffsetEntry;
    use super::*;

    fn index(entries: &[(i32, i32)]) -> Index<OffsetEntry> {
        let mut idx = Index::new();
        for &(relative_offset, position) in entries {
            idx.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        idx
    }

    #[test]
    fn floor_finds_largest_lower_bound() {
        let idx = index(&[(10, 100), (20, 200), (30, 300)]);
        assert_eq!(idx.floor(9), None);
        assert_eq!(idx.floor(10).map(|e| e.position), Some(100));
        assert_eq!(idx.floor(19).map(|e| e.position), Some(100));
        assert_eq!(idx.floor(20).map(|e| e.position), Some(200));
        assert_eq!(idx.floor(i64::MAX).map(|e| e.position), Some(300));
        assert_eq!(index(&[]).floor(5), None);
    }

    #[test]
    fn every_size_and_target_match_a_linear_scan() {
        // The binary search at every small size (odd, even, powers of two) and every target
        // around each key: below the first, on each key, between keys, above the last.
        for n in 0..=40i32 {
            let entries: Vec<(i32, i32)> = (0..n).map(|i| (10 + 3 * i, i * 100)).collect();
            let idx = index(&entries);
            for target in 0..=(10 + 3 * i64::from(n) + 2) {
                let expected = entries.iter().rposition(|e| i64::from(e.0) <= target);
                assert_eq!(
                    idx.floor_index(target),
                    expected,
                    "{n} entries, target {target}"
                );
            }
            assert_eq!(idx.floor_index(i64::MIN), None);
            assert_eq!(idx.floor_index(i64::MAX), (n > 0).then(|| n as usize - 1));
        }
    }

    #[test]
    fn random_lookups_match_a_linear_scan() {
        // Kafka's OffsetIndexTest.randomLookupTest, with a seeded generator.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut entries = Vec::new();
        let mut key = 0i32;
        for i in 0..500 {
            key += 1 + (next() % 50) as i32;
            entries.push((key, i * 10));
        }
        let idx = index(&entries);
        for _ in 0..2000 {
            let target = (next() % (key as u64 + 100)) as i64;
            let expected = entries
                .iter()
                .rev()
                .find(|e| i64::from(e.0) <= target)
                .map(|e| e.1);
            assert_eq!(
                idx.floor(target).map(|e| e.position),
                expected,
                "target {target}"
            );
        }
    }

    #[test]
    fn partial_tail_is_dropped() {
        let idx: Index<OffsetEntry> = Index::from_vec(vec![0, 0, 0, 1, 0, 0, 0, 2, 9, 9]);
        assert_eq!(idx.len(), 1);
        assert_eq!(
            idx.last(),
            Some(OffsetEntry {
                relative_offset: 1,
                position: 2
            })
        );
    }
}
