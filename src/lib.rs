//! topiclog: Kafka-format commit-log storage embedded in your process.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod disk;
mod error;
mod partition;
pub mod record;
mod segment;

pub use config::{Clock, LogConfig, LogConfigBuilder, SystemClock};
pub use config::{
    DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SEGMENT_BYTES,
    DEFAULT_SEGMENT_INDEX_BYTES, DEFAULT_SEGMENT_MS, DEFAULT_WRITE_BUFFER_BYTES,
};
pub use error::{Corruption, Error, IoOp, Result};
pub use partition::{
    AppendInfo, LogRecord, OwnedHeader, OwnedRecord, Partition, Reader, RecoveryReport,
    RemovedSegment, TimestampOffset, Truncation,
};
