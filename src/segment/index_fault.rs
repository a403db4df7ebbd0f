//! Why an index entry is wrong: the one list of index rules, used by segment loads (which
//! rebuild an index that breaks one) and by `inspect` (which reports each entry that does).

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt;

/// Why an index entry is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IndexFault {
    /// The relative offset is negative.
    OffsetBelowBase,
    /// The offset is at or past the segment's next offset: no batch holds it.
    OffsetPastEnd {
        /// The offset after the segment's last batch.
        next_offset: i64,
    },
    /// The position is negative.
    NegativePosition,
    /// The position is at or past the end of the log's readable batches.
    PositionPastEnd {
        /// Bytes of whole batches in the `.log` file.
        log_len: u64,
    },
    /// Offset index: the offset or the position is not above the previous entry's. Time
    /// index: the timestamp is not above the previous entry's, or the offset is below it.
    NotIncreasing,
    /// The position is not the start of a batch.
    NotBatchStart,
    /// The batch at the position starts after the entry's offset.
    BatchStartsAfterOffset {
        /// The base offset of the batch at the position.
        batch_base_offset: i64,
    },
    /// A batch before the position already reaches the entry's offset, so a lookup would
    /// start too late.
    EarlierBatchHoldsOffset {
        /// The largest last offset of the batches before the position.
        previous_last_offset: i64,
    },
    /// No batch holds the offset (it falls between batches).
    NotInBatch,
    /// The timestamp is not the largest timestamp of the batches up to and including the one
    /// holding the offset.
    TimestampMismatch {
        /// The largest batch timestamp up to that batch.
        expected: i64,
    },
}

impl fmt::Display for IndexFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexFault::OffsetBelowBase => f.write_str("offset below the segment's base offset"),
            IndexFault::OffsetPastEnd { next_offset } => write!(
                f,
                "offset at or past the segment's next offset {next_offset}"
            ),
            IndexFault::NegativePosition => f.write_str("negative position"),
            IndexFault::PositionPastEnd { log_len } => write!(
                f,
                "position at or past the end of the log's {log_len} bytes of batches"
            ),
            IndexFault::NotIncreasing => f.write_str("not above the previous entry"),
            IndexFault::NotBatchStart => f.write_str("position is not the start of a batch"),
            IndexFault::BatchStartsAfterOffset { batch_base_offset } => write!(
                f,
                "the batch at the position starts at offset {batch_base_offset}, after the \
                 entry's offset"
            ),
            IndexFault::EarlierBatchHoldsOffset {
                previous_last_offset,
            } => write!(
                f,
                "a batch before the position already reaches offset {previous_last_offset}"
            ),
            IndexFault::NotInBatch => f.write_str("no batch holds the offset"),
            IndexFault::TimestampMismatch { expected } => write!(
                f,
                "the largest timestamp up to the batch holding the offset is {expected}"
            ),
        }
    }
}
