//! The RecordBatch v2 codec: pure functions over bytes, no I/O.
//!
//! [`encode_batch`] writes a batch in Kafka's byte layout; [`Batch::parse`] reads one back,
//! [`Batch::verify_crc`] checks it and [`Batch::records`] walks its records without copying
//! them. Decoding arbitrary bytes never panics: every fault is a [`DecodeError`] saying what is
//! wrong and at which byte.
//!
//! ```
//! use topiclog::record::{encode_batch, Batch, BatchParams, Header, Record};
//!
//! let headers = [Header::new(b"trace", Some(b"42"))];
//! let records = [Record::keyed(b"k", b"v").with_headers(&headers).with_timestamp(1_000)];
//! let mut bytes = Vec::new();
//! encode_batch(&mut bytes, &BatchParams::default(), &records, 0)?;
//!
//! let batch = Batch::parse(&bytes)?;
//! batch.verify_crc()?;
//! let record = batch.records()?.next().unwrap()?;
//! assert_eq!((record.offset(), record.timestamp()), (0, 1_000));
//! assert_eq!(record.value(), Some(&b"v"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod batch;
mod codec;
mod control;
mod error;
mod single;
#[cfg(test)]
mod tests;
mod varint;

pub use batch::{
    BATCH_HEADER_LEN, Batch, BatchHeader, BatchParams, Batches, EncodeError, EncodedBatch, Headers,
    LOG_OVERHEAD, MAGIC, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    NO_TIMESTAMP, RecordView, Records, encode_batch, encode_compressed_batch,
};
pub(crate) use batch::{
    FRAME_LEN, PlainBatch, RecordCursor, RecordFields, RecordsMeta, encode_cleaned, peek_frame,
    plain_batch,
};
pub use codec::{CompressionLevels, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES, is_supported};
pub use control::{ControlType, EndTxnMarker, TxnResult};
pub use error::{DecodeError, DecodeErrorKind};
pub(crate) use single::SingleEncoder;

use std::fmt;

/// One record header: a key (Kafka clients treat it as UTF-8) and an optional value.
///
/// Repeated keys are allowed and keep their order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// Header key.
    pub key: &'a [u8],
    /// Header value; `None` is Kafka's null.
    pub value: Option<&'a [u8]>,
}

/// Bytes as `Debug` shows them in records and headers: `b"text\x00"` (ASCII escaped, as a
/// byte-string literal), `None` for Kafka's null.
pub(crate) struct DebugBytes<'a>(pub(crate) Option<&'a [u8]>);

impl fmt::Debug for DebugBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => write!(f, "b\"{}\"", bytes.escape_ascii()),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("key", &DebugBytes(Some(self.key)))
            .field("value", &DebugBytes(self.value))
            .finish()
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &DebugBytes(self.key))
            .field("value", &DebugBytes(self.value))
            .field("headers", &self.headers)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl<'a> Header<'a> {
    /// A header with the given key and value.
    pub const fn new(key: &'a [u8], value: Option<&'a [u8]>) -> Self {
        Header { key, value }
    }
}

/// A record to append: borrowed key, value and headers, and an optional timestamp.
///
/// A `None` key or value is Kafka's null (a null value is a tombstone for compaction); an empty
/// slice is a present, empty value. A `None` timestamp means "now" at append time.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record key, or null.
    pub key: Option<&'a [u8]>,
    /// Record value, or null.
    pub value: Option<&'a [u8]>,
    /// Record headers, in order.
    pub headers: &'a [Header<'a>],
    /// CreateTime timestamp in milliseconds since the epoch; `None` takes the append time.
    pub timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    /// A record with a value and a null key.
    pub const fn new(value: &'a [u8]) -> Self {
        Record {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: None,
        }
    }

    /// A record with a key and a value.
    pub const fn keyed(key: &'a [u8], value: &'a [u8]) -> Self {
        Record {
            key: Some(key),
            value: Some(value),
            headers: &[],
            timestamp: None,
        }
    }

    /// A record with a key and a null value (a tombstone).
    pub const fn tombstone(key: &'a [u8]) -> Self {
        Record {
            key: Some(key),
            value: None,
            headers: &[],
            timestamp: None,
        }
    }

    /// The same record with these headers.
    pub const fn with_headers(mut self, headers: &'a [Header<'a>]) -> Self {
        self.headers = headers;
        self
    }

    /// The same record with this CreateTime timestamp (milliseconds since the epoch).
    pub const fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Which clock a batch's timestamps come from (`message.timestamp.type`).
///
/// Exhaustive on purpose: the batch format has one attribute bit for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The producer's timestamp on each record (Kafka's default).
    #[default]
    CreateTime,
    /// The time the log appended the batch; every record reads as the batch's max timestamp.
    LogAppendTime,
}

impl fmt::Display for TimestampType {
    /// Kafka's name: `CreateTime` or `LogAppendTime`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

/// A batch's compression codec (attribute bits 0-2). Each codec but `None` needs its cargo
/// feature (`gzip`, `snappy`, `lz4`, `zstd`; all on by default): see [`is_supported`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Uncompressed (codec 0).
    #[default]
    None,
    /// gzip (codec 1).
    Gzip,
    /// snappy, xerial-framed as the Java client writes it (codec 2).
    Snappy,
    /// LZ4 frame format (codec 3).
    Lz4,
    /// zstd (codec 4).
    Zstd,
}

impl Compression {
    /// The codec for attribute bits 0-2, or `None` for the unassigned ids 5-7.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec's id in attribute bits 0-2.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type`): `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
