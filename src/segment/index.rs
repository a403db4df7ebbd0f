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
    ///
    /// A read at a random offset starts here, and a binary search over a large index is a
    /// chain of dependent cache misses. An offset index's keys are nearly evenly spaced (an
    /// entry every `index.interval.bytes` of log), so the search first guesses the entry from
    /// the first and last keys, then gallops from the guess to bracket the answer and finishes
    /// with a binary search inside the bracket: a couple of probes in one or two cache lines
    /// when the keys are even, at most about twice the binary search's probes when they are
    /// not. Keys that do not increase (an index not yet validated) give some entry, as the
    /// binary search does; the reader checks the batch it finds.
    pub(crate) fn floor_index(&self, target: i64) -> Option<usize> {
        let bytes = self.as_bytes();
        // `i < len`, so `i * SIZE` stays within `bytes.len()`; an entry that does not decode
        // counts as above the target.
        let above = |i: usize| {
            bytes
                .get(i * E::SIZE..)
                .and_then(E::decode)
                .is_none_or(|e| e.key() > target)
        };
        let len = bytes.len() / E::SIZE;
        // The answer is the number of entries with key <= target, within `lo..=hi`.
        let (mut lo, mut hi) = (0usize, len);
        if let Some(guess) = self.interpolate(target, len) {
            (lo, hi) = gallop(guess, len, above);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if above(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo.checked_sub(1)
    }

    /// Where `target` would fall among `len` entries if the keys were evenly spaced between
    /// the first and the last: an entry number below `len`. `None` for a small index (the
    /// binary search is as quick) or keys that do not give a span.
    fn interpolate(&self, target: i64, len: usize) -> Option<usize> {
        const MIN_ENTRIES: usize = 64;
        if len < MIN_ENTRIES {
            return None;
        }
        let (first, last) = (self.get(0)?.key(), self.get(len - 1)?.key());
        if last <= first {
            return None;
        }
        let span = i128::from(last) - i128::from(first);
        let at = (i128::from(target) - i128::from(first)).clamp(0, span);
        // `at <= span`, so the quotient is at most `len - 1`.
        usize::try_from(at * (len as i128 - 1) / span).ok()
    }
}

/// Brackets the number of entries not [`above`](Index::floor_index) the target, starting from
/// entry `guess` (below `len`) and doubling the step away from it: `(lo, hi)` with the answer in
/// `lo..=hi`, for keys that increase.
fn gallop(guess: usize, len: usize, above: impl Fn(usize) -> bool) -> (usize, usize) {
    let (mut lo, mut hi) = (0usize, len);
    let mut step = 1usize;
    if above(guess) {
        hi = guess;
        // Down: the answer is below `hi`; find an entry at or below the target.
        while let Some(probe) = hi.checked_sub(step).filter(|&p| p >= lo) {
            if !above(probe) {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step = step.saturating_mul(2);
        }
    } else {
        lo = guess + 1;
        // Up: the answer is at least `lo`; find an entry above the target.
        while let Some(probe) = lo.checked_add(step - 1).filter(|&p| p < hi) {
            if above(probe) {
                hi = probe;
                break;
            }
            lo = probe + 1;
            step = step.saturating_mul(2);
        }
    }
    (lo, hi)
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

    /// A seeded xorshift generator, for reproducible random cases.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
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
    fn large_indexes_of_any_spacing_match_a_linear_scan() {
        // Past the size where the search starts from an interpolated guess: keys evenly
        // spaced, growing quadratically, bunched at either end, and repeated (a time index
        // can repeat a timestamp), so the gallop runs both ways from guesses near and far.
        type Spacing = (&'static str, fn(i64) -> i64);
        let spacings: [Spacing; 5] = [
            ("even", |i| 7 + 24 * i),
            ("quadratic", |i| i * i),
            ("bunched low", |i| if i < 150 { i } else { 1_000_000 + i }),
            ("bunched high", |i| {
                if i < 50 { i * 10_000 } else { 500_000 + i }
            }),
            ("repeated", |i| i / 7 * 3),
        ];
        for (name, key) in spacings {
            for n in [63i64, 64, 65, 100, 200, 257] {
                let keys: Vec<i64> = (0..n).map(key).collect();
                let entries: Vec<(i32, i32)> =
                    keys.iter().map(|&k| (k as i32, k as i32 * 2)).collect();
                let idx = index(&entries);
                let mut targets: Vec<i64> = keys.iter().flat_map(|&k| [k - 1, k, k + 1]).collect();
                targets.extend([i64::MIN, -1, i64::MAX, keys[n as usize - 1] + 1_000]);
                for target in targets {
                    let expected = keys.iter().rposition(|&k| k <= target);
                    assert_eq!(
                        idx.floor_index(target),
                        expected,
                        "{name}, {n} entries, target {target}"
                    );
                }
            }
        }
    }

    #[test]
    fn keys_out_of_order_give_an_entry_without_panicking() {
        // An index is searched only after its checks pass, but the search itself must not
        // fail on any bytes.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for n in [64usize, 65, 300] {
            let entries: Vec<(i32, i32)> = (0..n).map(|_| (next() as i32, 0)).collect();
            let idx = index(&entries);
            for target in (0..200)
                .map(|_| next() as i32 as i64)
                .chain([i64::MIN, i64::MAX])
            {
                assert!(idx.floor_index(target).is_none_or(|i| i < n));
            }
        }
    }

    #[test]
    fn random_lookups_match_a_linear_scan() {
        // Kafka's OffsetIndexTest.randomLookupTest, with a seeded generator.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
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
