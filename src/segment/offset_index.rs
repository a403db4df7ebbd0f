//! The offset index (`.index`): 8-byte entries of `i32 relative offset, i32 position`.
//!
//! Entry (O, P) says every batch before byte P ends before offset O, so a batch holding an
//! offset >= O starts at or after P. Kafka writes one entry per `index.interval.bytes` of log,
//! keyed by the last offset of the batch that starts at P. Relative offsets never leave this
//! module's callers: [`OffsetEntry::offset`] adds the base back.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::ops::Range;

use super::index::{Entry, Index};
use super::index_fault::IndexFault;

/// One offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Offset minus the segment's base offset.
    pub(crate) relative_offset: i32,
    /// Byte position of a batch in the `.log` file.
    pub(crate) position: i32,
}

const _: () = assert!(OffsetEntry::SIZE == 8);

impl Entry for OffsetEntry {
    const SIZE: usize = 8;

    fn decode(b: &[u8]) -> Option<Self> {
        let (relative_offset, rest) = b.split_first_chunk()?;
        Some(OffsetEntry {
            relative_offset: i32::from_be_bytes(*relative_offset),
            position: i32::from_be_bytes(*rest.first_chunk()?),
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
}

impl OffsetEntry {
    /// The entry's absolute offset.
    pub(crate) fn offset(&self, base_offset: i64) -> i64 {
        base_offset + i64::from(self.relative_offset)
    }
}

/// What is wrong with entry `e` on its own or after `previous` (the rules that need no log):
/// relative offsets and positions are non-negative and strictly increase.
pub(crate) fn entry_fault(previous: Option<OffsetEntry>, e: OffsetEntry) -> Option<IndexFault> {
    if e.relative_offset < 0 {
        Some(IndexFault::OffsetBelowBase)
    } else if e.position < 0 {
        Some(IndexFault::NegativePosition)
    } else if previous
        .is_some_and(|p| e.relative_offset <= p.relative_offset || e.position <= p.position)
    {
        Some(IndexFault::NotIncreasing)
    } else {
        None
    }
}

/// Whether entry `e` points past its segment, whose offsets are `offsets` (base offset to next
/// offset): at or past `log_size` bytes of whole batches, or at or past the next offset.
pub(crate) fn past_end(e: OffsetEntry, offsets: Range<i64>, log_size: u64) -> Option<IndexFault> {
    let Range {
        start: base_offset,
        end: next_offset,
    } = offsets;
    if u64::try_from(e.position).is_ok_and(|p| p >= log_size) {
        Some(IndexFault::PositionPastEnd { log_len: log_size })
    } else if e.offset(base_offset) >= next_offset {
        Some(IndexFault::OffsetPastEnd { next_offset })
    } else {
        None
    }
}

/// Checks an offset index against its segment: [`entry_fault`] and [`past_end`] for every
/// entry. Kafka's `sanityCheck` checks only the last entry; every entry is cheap enough to
/// check here. Returns the first fault and its entry's number.
pub(crate) fn validate(
    index: &Index<OffsetEntry>,
    offsets: Range<i64>,
    log_size: u64,
) -> Result<(), (usize, IndexFault)> {
    let mut previous = None;
    for (i, e) in index.iter().enumerate() {
        let fault = entry_fault(previous, e).or_else(|| past_end(e, offsets.clone(), log_size));
        if let Some(fault) = fault {
            return Err((i, fault));
        }
        previous = Some(e);
    }
    Ok(())
}

/// Where a read of one offset starts, from the offset index ([`seek`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seek {
    /// Byte position to start scanning from: the indexed position of the largest entry
    /// `<= target`, or 0.
    pub(crate) position: u64,
    /// The least base offset the batch there can have: one more than the entry before, whose
    /// offset is the last of what was appended at its position (one batch here; in older
    /// Kafka versions, every batch of one append), all of which lies before. The segment's
    /// base offset without an entry before. A reader seeking there checks the batch against
    /// it, as it checks a batch against the one it read before: a base offset lies outside
    /// the CRC.
    pub(crate) at_least: i64,
    /// Where the next entry's batch starts (the segment's end after the last entry): the
    /// bytes from `position` to here hold the offsets up to that entry's.
    pub(crate) next_position: u64,
    /// About where the batch holding `target` ends, were the bytes between the two entries
    /// spread evenly over their offsets: how far a walk from `position` reads. An estimate
    /// for warming the bytes ahead, never a bound; `position` without an entry.
    pub(crate) reach: u64,
}

impl Seek {
    /// A read from the segment's first byte, based at `base_offset`: nothing to estimate.
    pub(crate) fn from_start(base_offset: i64) -> Seek {
        Seek {
            position: 0,
            at_least: base_offset,
            next_position: 0,
            reach: 0,
        }
    }
}

/// Where to read `target` from in a segment based at `base_offset` whose published log ends
/// at byte `size` and offset `next_offset` (see [`Seek`]).
pub(crate) fn seek(
    index: &Index<OffsetEntry>,
    base_offset: i64,
    target: i64,
    (size, next_offset): (u64, i64),
) -> Seek {
    let relative = target.saturating_sub(base_offset);
    let entry = |i: usize| {
        index
            .get(i)
            .map(|e| (e.offset(base_offset), e.position.max(0) as u64))
    };
    let Some((i, (offset, position))) = index
        .floor_index(relative)
        .and_then(|i| Some((i, entry(i)?)))
    else {
        return Seek::from_start(base_offset);
    };
    let at_least = i
        .checked_sub(1)
        .and_then(entry)
        .map_or(base_offset, |(before, _)| before.saturating_add(1));
    // The entry's batch holds offsets up to its own; the next entry's, up to the next entry's.
    let (next_offset, next_position) = entry(i + 1).unwrap_or((next_offset, size));
    let reach = match (
        u64::try_from(target.saturating_sub(offset).saturating_add(1)),
        u64::try_from(next_offset.saturating_sub(offset)),
    ) {
        (Ok(wanted), Ok(spread)) if spread > 0 && next_position > position => wanted
            .checked_mul(next_position - position)
            .map_or(position, |bytes| position.saturating_add(bytes / spread)),
        _ => position,
    };
    Seek {
        position,
        at_least,
        next_position: next_position.max(position),
        reach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_example_bytes() {
        // kafka-log-format.md §3.2: base 100, entries (150 -> 4168), (230 -> 8400).
        let mut idx = Index::new();
        idx.push(OffsetEntry {
            relative_offset: 50,
            position: 4168,
        });
        idx.push(OffsetEntry {
            relative_offset: 130,
            position: 8400,
        });
        assert_eq!(
            idx.as_bytes(),
            [
                0, 0, 0, 0x32, 0, 0, 0x10, 0x48, 0, 0, 0, 0x82, 0, 0, 0x20, 0xd0
            ]
        );
        let at = |target| {
            let s = seek(&idx, 100, target, (9000, 231));
            (s.position, s.at_least)
        };
        assert_eq!(at(99), (0, 100));
        assert_eq!(at(150), (4168, 100));
        assert_eq!(at(229), (4168, 100));
        // The batch at 8400 comes after the one at 4168, whose last offset is 150.
        assert_eq!(at(500), (8400, 151));
        assert_eq!(validate(&idx, 100..231, 9000), Ok(()));
        assert!(
            validate(&idx, 100..230, 9000).is_err(),
            "offset past the end"
        );
        assert!(
            validate(&idx, 100..231, 8400).is_err(),
            "position past the log"
        );
    }

    #[test]
    fn zeroed_or_unordered_entries_fail_validation() {
        let idx = Index::<OffsetEntry>::from_vec(vec![0; 24]);
        assert!(validate(&idx, 0..10, 100).is_err());
        let one_zero = Index::<OffsetEntry>::from_vec(vec![0; 8]);
        // A single (0, 0) entry is true of any segment: harmless.
        assert_eq!(validate(&one_zero, 0..10, 100), Ok(()));
        // Kafka's testSanityLastOffsetEqualToBaseOffset.
        let mut base = Index::new();
        base.push(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
        assert_eq!(validate(&base, 20..21, 10), Ok(()));
    }

    #[test]
    fn reach_spreads_the_bytes_between_entries_over_their_offsets() {
        // One-record batches of 100 B from offset 1000 at byte 0; entries every 40 batches.
        let mut idx = Index::new();
        for k in 0..3 {
            idx.push(OffsetEntry {
                relative_offset: 40 * k,
                position: 4000 * k,
            });
        }
        // The segment ends after batch 100 (offset 1099, byte 10,000).
        let end = (10_000, 1100);
        let s = seek(&idx, 1000, 1000, end);
        assert_eq!((s.position, s.next_position, s.reach), (0, 4000, 100));
        // Offset 1045 is the batch at 4500..4600, after the entry at 4000 (offset 1040).
        let s = seek(&idx, 1000, 1045, end);
        assert_eq!((s.position, s.at_least), (4000, 1001));
        assert_eq!((s.next_position, s.reach), (8000, 4600));
        // After the last entry the segment's end stands in for the next one.
        let s = seek(&idx, 1000, 1099, end);
        assert_eq!(
            (s.position, s.next_position, s.reach),
            (8000, 10_000, 10_000)
        );
        // Without an entry at or below the target: from the start, nothing to estimate.
        let empty = Index::new();
        let s = seek(&empty, 1000, 1050, end);
        assert_eq!((s.position, s.at_least, s.reach), (0, 1000, 0));
        // Entries that do not make sense (an index not yet validated) give no reach past the
        // entry, and nothing overflows.
        let mut odd = Index::new();
        odd.push(OffsetEntry {
            relative_offset: 10,
            position: i32::MAX,
        });
        odd.push(OffsetEntry {
            relative_offset: 5,
            position: 7,
        });
        let s = seek(&odd, i64::MAX - 20, i64::MAX, (0, i64::MIN));
        assert_eq!(s.reach, s.position);
    }
}
