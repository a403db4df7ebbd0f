//! What can be wrong with a batch's bytes, and where.

use super::Compression;

/// A batch or record that could not be decoded: what is wrong and at which byte.
///
/// `position` counts from the first byte of the input the decoder was given (for a batch, its
/// `baseOffset` field). In a compressed batch, a fault in the records themselves counts 61 plus
/// its position in the decompressed records section. The segment layer adds the file and the batch's position in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {position}")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Byte position of the fault, relative to the start of the decoded input.
    pub position: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, position: usize) -> Self {
        DecodeError { kind, position }
    }
}

/// The reasons a batch can fail to decode. Each names the rule of Kafka's format it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ends before the field or batch that starts here is complete.
    #[error("input ends early: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the structure needs from this position.
        needed: usize,
        /// Bytes the input has from this position.
        available: usize,
    },
    /// `batchLength` is below the 49 bytes every v2 batch has after the length field.
    #[error("batch length {0} is below the minimum of 49")]
    BatchLengthTooSmall(i32),
    /// The magic byte is not 2 (only RecordBatch v2 is supported).
    #[error("unsupported magic byte {0} (only 2 is supported)")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes it covers.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over attributes..end of batch.
        computed: u32,
    },
    /// `recordsCount` is negative.
    #[error("negative record count {0}")]
    NegativeRecordCount(i32),
    /// `lastOffsetDelta` is negative.
    #[error("negative last offset delta {0}")]
    NegativeLastOffsetDelta(i32),
    /// A varint runs past the end of its record or past the length Kafka allows.
    #[error("malformed varint")]
    InvalidVarint,
    /// A record's length prefix is negative or runs past the end of the batch.
    #[error("record length {0} is negative or exceeds the batch")]
    InvalidRecordLength(i32),
    /// A key, value or header length is below -1 (or -1 where null is not allowed), or runs past
    /// the end of its record.
    #[error("invalid length {0} for a key, value or header field")]
    InvalidFieldLength(i32),
    /// A header count is negative or larger than the bytes left in the record.
    #[error("invalid header count {0}")]
    InvalidHeaderCount(i32),
    /// The fields of a record do not add up to its length prefix.
    #[error("record length prefix says {declared} bytes but its fields take {consumed}")]
    RecordLengthMismatch {
        /// The record's length prefix.
        declared: usize,
        /// Bytes its fields actually took.
        consumed: usize,
    },
    /// The batch ends before `recordsCount` records were read.
    #[error("batch declares {declared} records but holds {found}")]
    MissingRecords {
        /// `recordsCount` from the header.
        declared: i32,
        /// Records found before the bytes ran out.
        found: i32,
    },
    /// Bytes are left in the batch after its last declared record.
    #[error("{0} bytes left after the last declared record")]
    TrailingBytes(usize),
    /// A record's offset delta lies outside `0..=lastOffsetDelta`.
    #[error("record offset delta {delta} outside 0..={last_offset_delta}")]
    OffsetDeltaOutOfRange {
        /// The record's offset delta.
        delta: i32,
        /// The batch's `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// `baseOffset + lastOffsetDelta` passes `i64::MAX`: the batch's last offsets cannot
    /// exist, and its records' offsets would wrap.
    #[error("base offset {base_offset} plus last offset delta {last_offset_delta} passes i64::MAX")]
    LastOffsetOverflow {
        /// The batch's `baseOffset`.
        base_offset: i64,
        /// The batch's `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// The batch is compressed with a codec this build cannot decompress.
    #[error("batch is compressed with {0}, which this build does not support")]
    UnsupportedCompression(Compression),
    /// A compressed records section does not decode with its codec, in Kafka's framing.
    #[error("records section does not decode as {codec}: {reason}")]
    InvalidCompressedData {
        /// The batch's codec.
        codec: Compression,
        /// What the decoder found wrong.
        reason: &'static str,
    },
    /// A compressed records section decompresses to more than the configured cap.
    #[error("{codec} records section decompresses past the cap of {limit} bytes")]
    DecompressedTooLarge {
        /// The batch's codec.
        codec: Compression,
        /// The cap in bytes.
        limit: usize,
    },
    /// `recordsCount` claims more records than the decompressed records section can hold
    /// (every record takes at least 7 bytes).
    #[error("batch declares {declared} records but decompresses to only {decompressed} bytes")]
    RecordCountExceedsData {
        /// `recordsCount` from the header.
        declared: i32,
        /// Size of the decompressed records section.
        decompressed: usize,
    },
    /// The codec bits hold a value (5..=7) that names no codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
}
