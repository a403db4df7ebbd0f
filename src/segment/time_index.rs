//! The time index (`.timeindex`): 12-byte entries of `i64 timestamp, i32 relative offset`.
//!
//! Entry (T, O) says the largest timestamp up to and including the batch ending at offset O is
//! T, so any record with a timestamp above T lies after O. Timestamps strictly increase. The
//! last entry of a sealed segment holds the segment's largest timestamp; Kafka derives a closed
//! segment's largest timestamp from it.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::ops::Range;

use super::index::{Entry, Index};
use super::index_fault::IndexFault;

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp so far.
    pub(crate) timestamp: i64,
    /// Offset (minus the segment's base) of the batch that first reached it.
    pub(crate) relative_offset: i32,
}

const _: () = assert!(TimeEntry::SIZE == 12);

impl Entry for TimeEntry {
    const SIZE: usize = 12;

    fn decode(b: &[u8]) -> Option<Self> {
        let (timestamp, rest) = b.split_first_chunk()?;
        Some(TimeEntry {
            timestamp: i64::from_be_bytes(*timestamp),
            relative_offset: i32::from_be_bytes(*rest.first_chunk()?),
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn key(&self) -> i64 {
        self.timestamp
    }
}

impl TimeEntry {
    /// The entry's absolute offset.
    pub(crate) fn offset(&self, base_offset: i64) -> i64 {
        base_offset + i64::from(self.relative_offset)
    }
}

/// Whether `(timestamp, offset)` may be appended: Kafka's `maybeAppend` adds an entry only when
/// the timestamp rises above the last entry's (an empty index counts as -1).
pub(crate) fn should_append(index: &Index<TimeEntry>, timestamp: i64) -> bool {
    timestamp > index.last().map_or(-1, |e| e.timestamp)
}

/// What is wrong with entry `e` on its own or after `previous` (the rules that need no log):
/// relative offsets are non-negative and never fall, timestamps strictly increase.
pub(crate) fn entry_fault(previous: Option<TimeEntry>, e: TimeEntry) -> Option<IndexFault> {
    if e.relative_offset < 0 {
        Some(IndexFault::OffsetBelowBase)
    } else if previous
        .is_some_and(|p| e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset)
    {
        Some(IndexFault::NotIncreasing)
    } else {
        None
    }
}

/// Whether entry `e` points at or past the next offset of its segment, whose offsets are
/// `offsets` (base offset to next offset).
pub(crate) fn past_end(e: TimeEntry, offsets: Range<i64>) -> Option<IndexFault> {
    let next_offset = offsets.end;
    (e.offset(offsets.start) >= next_offset).then_some(IndexFault::OffsetPastEnd { next_offset })
}

/// Checks a time index against its segment: [`entry_fault`] and [`past_end`] for every entry.
/// Returns the first fault and its entry's number.
pub(crate) fn validate(
    index: &Index<TimeEntry>,
    offsets: Range<i64>,
) -> Result<(), (usize, IndexFault)> {
    let mut previous = None;
    for (i, e) in index.iter().enumerate() {
        let fault = entry_fault(previous, e).or_else(|| past_end(e, offsets.clone()));
        if let Some(fault) = fault {
            return Err((i, fault));
        }
        previous = Some(e);
    }
    Ok(())
}

/// The offset to start a timestamp search from: the entry with the largest timestamp
/// `<= target`, or the segment's base offset.
pub(crate) fn lookup(index: &Index<TimeEntry>, base_offset: i64, target: i64) -> i64 {
    index
        .floor(target)
        .map_or(base_offset, |e| e.offset(base_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_example_and_lookup() {
        // kafka-log-format.md §3.3: ts 1700000000000, base 100, offset 150.
        let mut idx = Index::new();
        idx.push(TimeEntry {
            timestamp: 1_700_000_000_000,
            relative_offset: 50,
        });
        assert_eq!(
            idx.as_bytes(),
            [0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0, 0, 0, 0, 0x32]
        );
        idx.push(TimeEntry {
            timestamp: 1_700_000_000_500,
            relative_offset: 70,
        });
        // Kafka's TimeIndexTest.testLookUp: before first -> base; between -> lower; exact.
        assert_eq!(lookup(&idx, 100, 1), 100);
        assert_eq!(lookup(&idx, 100, 1_700_000_000_000), 150);
        assert_eq!(lookup(&idx, 100, 1_700_000_000_499), 150);
        assert_eq!(lookup(&idx, 100, 1_700_000_000_500), 170);
        assert!(should_append(&idx, 1_700_000_000_501));
        assert!(!should_append(&idx, 1_700_000_000_500));
        assert!(
            !should_append(&Index::new(), -1),
            "no entry for a missing timestamp"
        );
        assert_eq!(validate(&idx, 100..171), Ok(()));
        assert!(validate(&idx, 100..170).is_err());
    }

    #[test]
    fn zeroed_entries_fail_validation() {
        let idx = Index::<TimeEntry>::from_vec(vec![0; 36]);
        assert!(validate(&idx, 0..10).is_err());
    }
}
