//! The transaction index (`.txnindex`): Kafka's `TransactionIndex`, one 34-byte entry per
//! aborted transaction whose ABORT marker lies in the segment, in marker order:
//!
//! | position | size | field                                                     |
//! |----------|------|-----------------------------------------------------------|
//! | 0        | 2    | version, 0                                                |
//! | 2        | 8    | producer id                                               |
//! | 10       | 8    | first offset of the transaction                           |
//! | 18       | 8    | last offset: the ABORT marker's                           |
//! | 26       | 8    | last stable offset when the transaction was aborted       |
//!
//! Big-endian, plain appends, no preallocation; a segment without aborts has no file (an
//! absent file is an empty index). A `read_committed` read skips the batches of a producer
//! from an entry's first offset to its marker. The index is derived from the log, so a
//! damaged one is rebuilt from it.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt;

/// Bytes of one entry.
pub(crate) const ENTRY_BYTES: usize = 34;

/// The only entry version Kafka writes.
const VERSION: i16 = 0;

/// An aborted transaction: what a `.txnindex` entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer that aborted it.
    pub producer_id: i64,
    /// The offset of its first batch in this partition.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset right after the abort.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Appends the entry's 34 bytes to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }
}

/// What makes a `.txnindex` unusable: the first bad entry and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnIndexFault {
    /// Byte position of the entry.
    pub(crate) position: u64,
    pub(crate) kind: TxnIndexFaultKind,
}

/// Why an entry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnIndexFaultKind {
    /// The file ends inside an entry.
    Partial,
    /// An entry version other than 0.
    Version(i16),
    /// A marker offset below the segment's base or at or past its next offset.
    OutsideSegment,
    /// A marker offset not above the previous entry's.
    OutOfOrder,
    /// A first offset above the marker's, or a negative producer id or offset.
    Invalid,
}

impl fmt::Display for TxnIndexFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            TxnIndexFaultKind::Partial => "a partial entry".to_string(),
            TxnIndexFaultKind::Version(v) => format!("unknown entry version {v}"),
            TxnIndexFaultKind::OutsideSegment => "an abort marker outside the segment".into(),
            TxnIndexFaultKind::OutOfOrder => "abort markers out of order".into(),
            TxnIndexFaultKind::Invalid => "an entry whose offsets cannot be".into(),
        };
        write!(f, "{why} at byte {}", self.position)
    }
}

/// Decodes a segment's `.txnindex` (`bytes`), checking every entry against the segment's
/// offsets `[base_offset, next_offset)`.
pub(crate) fn decode(
    bytes: &[u8],
    base_offset: i64,
    next_offset: i64,
) -> Result<Vec<AbortedTxn>, TxnIndexFault> {
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    let mut chunks = bytes.chunks_exact(ENTRY_BYTES);
    let mut position = 0u64;
    for chunk in chunks.by_ref() {
        let fault = |kind| TxnIndexFault { position, kind };
        let word = |at: usize| {
            chunk
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(-1, i64::from_be_bytes)
        };
        let version = chunk
            .first_chunk::<2>()
            .map_or(-1, |b| i16::from_be_bytes(*b));
        if version != VERSION {
            return Err(fault(TxnIndexFaultKind::Version(version)));
        }
        let entry = AbortedTxn {
            producer_id: word(2),
            first_offset: word(10),
            last_offset: word(18),
            last_stable_offset: word(26),
        };
        if entry.producer_id < 0
            || entry.first_offset < 0
            || entry.first_offset > entry.last_offset
            || entry.last_stable_offset < 0
        {
            return Err(fault(TxnIndexFaultKind::Invalid));
        }
        if entry.last_offset < base_offset || entry.last_offset >= next_offset {
            return Err(fault(TxnIndexFaultKind::OutsideSegment));
        }
        if entries
            .last()
            .is_some_and(|p: &AbortedTxn| p.last_offset >= entry.last_offset)
        {
            return Err(fault(TxnIndexFaultKind::OutOfOrder));
        }
        entries.push(entry);
        position += ENTRY_BYTES as u64;
    }
    if !chunks.remainder().is_empty() {
        return Err(TxnIndexFault {
            position,
            kind: TxnIndexFaultKind::Partial,
        });
    }
    Ok(entries)
}

/// Encodes entries as a whole `.txnindex`.
pub(crate) fn encode_all(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        entry.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_round_trip() {
        let entries = [txn(7, 100, 104), txn(9, 90, 110)];
        let bytes = encode_all(&entries);
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        // Version 0, then producer id 7, first offset 100, marker 104, LSO 105.
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &100i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &104i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &105i64.to_be_bytes());
        assert_eq!(decode(&bytes, 100, 200).unwrap(), entries);
        assert_eq!(decode(&[], 0, 0).unwrap(), []);
    }

    #[test]
    fn bad_entries_are_refused_with_their_position() {
        let good = encode_all(&[txn(7, 100, 104)]);
        let kind = |bytes: &[u8], base, next| decode(bytes, base, next).unwrap_err().kind;
        assert_eq!(kind(&good[..33], 100, 200), TxnIndexFaultKind::Partial);
        let mut partial_after = good.clone();
        partial_after.push(0);
        let fault = decode(&partial_after, 100, 200).unwrap_err();
        assert_eq!(
            (fault.position, fault.kind),
            (34, TxnIndexFaultKind::Partial)
        );
        let mut version = good.clone();
        version[1] = 1;
        assert_eq!(kind(&version, 100, 200), TxnIndexFaultKind::Version(1));
        assert_eq!(kind(&good, 105, 200), TxnIndexFaultKind::OutsideSegment);
        assert_eq!(kind(&good, 0, 104), TxnIndexFaultKind::OutsideSegment);
        let twice = encode_all(&[txn(7, 100, 104), txn(8, 100, 104)]);
        let fault = decode(&twice, 100, 200).unwrap_err();
        assert_eq!(
            (fault.position, fault.kind),
            (34, TxnIndexFaultKind::OutOfOrder)
        );
        let inverted = encode_all(&[txn(7, 105, 104)]);
        assert_eq!(kind(&inverted, 100, 200), TxnIndexFaultKind::Invalid);
        let zeros = [0u8; ENTRY_BYTES];
        // An all-zero entry is well formed: producer 0 aborted at offset 0.
        assert_eq!(
            decode(&zeros, 0, 1).unwrap(),
            [txn(0, 0, 0)].map(|t| AbortedTxn {
                last_stable_offset: 0,
                ..t
            })
        );
        assert!(decode(&[0xff; ENTRY_BYTES], 0, 1).is_err());
    }
}
