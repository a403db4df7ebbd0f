//! Log compaction (`cleanup.policy=compact`), as Kafka's `LogCleaner` does it: keep the latest
//! record of every key, drop the older ones, never change an offset.
//!
//! One pass over a partition:
//!
//! 1. **Range.** The dirty section runs from the first dirty offset (where the last pass ended;
//!    the log start at first) to the first uncleanable offset: the active segment's base, or
//!    the first sealed segment holding a record younger than `min.compaction.lag.ms`. The
//!    active segment is never cleaned.
//! 2. **Map** ([`offset_map`]): every keyed record of the dirty section puts `key → offset`,
//!    later offsets winning. If the map fills (`log.cleaner.dedupe.buffer.size`), the pass
//!    covers the dirty section only up to there and the rest waits for the next pass.
//! 3. **Rewrite** ([`rewrite`]): every segment from the log start up to the end of what was
//!    mapped is copied into new segments (adjacent small ones merged, up to `segment.bytes`,
//!    `segment.index.bytes` and an `i32` offset span), keeping a record when it has a key, no
//!    later offset of its key was mapped, and it is not a tombstone past its delete horizon.
//!    Batches keep their offsets, producer fields and codec; a batch left empty is dropped,
//!    unless it is an active producer's last batch or the last batch before the uncleanable
//!    section, which stay as header-only batches (Kafka's rule). New segments are written
//!    with the `.cleaned` suffix and fsynced.
//! 4. **Swap** (in the partition, under its writer lock): Kafka's protocol, `.cleaned` →
//!    `.swap` → old segments renamed `.deleted` → `.swap` to the final names, with a
//!    directory fsync after each step, so a crash or power loss at any point leaves either the
//!    old segments or the new ones, and recovery finishes or undoes the swap.
//!
//! Transactions, as Kafka's cleaner: nothing at or past the last stable offset's segment is
//! cleaned (an open transaction may still abort); the records of aborted transactions go and
//! never enter the key map; markers go once their transactions' batches are gone, after
//! `delete.retention.ms`.

pub(crate) mod checkpoint;
pub(crate) mod offset_map;
pub(crate) mod rewrite;

use crate::error::{Error, Result};

/// `log.cleaner.dedupe.buffer.size` default: 128 MiB for the key map of a cleaning.
pub const DEFAULT_DEDUPE_BUFFER_SIZE: usize = 128 << 20;
/// `log.cleaner.backoff.ms` default: 15 s between background passes that found nothing.
pub const DEFAULT_CLEANER_BACKOFF_MS: i64 = 15_000;

/// How the cleaner runs: the store-wide `log.cleaner.*` settings of a Kafka broker.
///
/// ```
/// use topiclog::config::CleanerConfig;
/// let cleaner = CleanerConfig::default().dedupe_buffer_size(16 << 20).io_max_bytes_per_second(50e6);
/// assert_eq!(cleaner.dedupe_buffer(), 16 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    dedupe_buffer_size: usize,
    io_max_bytes_per_second: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_size: DEFAULT_DEDUPE_BUFFER_SIZE,
            io_max_bytes_per_second: f64::INFINITY,
        }
    }
}

impl CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: the most memory a cleaning's key map takes (24 bytes
    /// per key); with more distinct keys in the dirty section, a pass cleans part of it and the
    /// next pass goes on. Default [`DEFAULT_DEDUPE_BUFFER_SIZE`] (128 MiB).
    #[must_use]
    pub fn dedupe_buffer_size(mut self, bytes: usize) -> Self {
        self.dedupe_buffer_size = bytes;
        self
    }

    /// `log.cleaner.io.max.bytes.per.second`: the cleaner's reads and writes together stay
    /// under this rate. Default unlimited.
    #[must_use]
    pub fn io_max_bytes_per_second(mut self, rate: f64) -> Self {
        self.io_max_bytes_per_second = rate;
        self
    }

    /// The key map's memory bound.
    pub fn dedupe_buffer(&self) -> usize {
        self.dedupe_buffer_size
    }

    /// The I/O rate bound, bytes per second.
    pub fn io_rate(&self) -> f64 {
        self.io_max_bytes_per_second
    }

    /// Checks the values: a positive I/O rate.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.io_max_bytes_per_second.is_nan() || self.io_max_bytes_per_second <= 0.0 {
            return Err(Error::InvalidConfig {
                key: "log.cleaner.io.max.bytes.per.second",
                value: self.io_max_bytes_per_second.to_string(),
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// What compacting a partition did ([`Partition::compact`](crate::Partition::compact)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Why nothing was cleaned, when nothing could be: the policy does not compact. `None` when
    /// the cleaner ran (even if it found nothing dirty).
    pub skipped: Option<String>,
    /// Passes run (more than one when the key map filled).
    pub passes: u32,
    /// Segments read and rewritten.
    pub segments_before: usize,
    /// Segments written in their place.
    pub segments_after: usize,
    /// Bytes of the segments rewritten.
    pub bytes_before: u64,
    /// Bytes of the segments written in their place.
    pub bytes_after: u64,
    /// Records in the segments rewritten.
    pub records_before: u64,
    /// Records kept.
    pub records_after: u64,
    /// The first dirty offset after the passes: everything below it is clean.
    pub first_dirty_offset: i64,
}

/// How dirty a compacted partition is (Kafka's `LogToClean`): bytes of sealed segments
/// below the first dirty offset (clean) and from it to the first uncleanable offset
/// (cleanable).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dirt {
    /// Bytes of segments wholly below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of segments from the first dirty offset to the first uncleanable one.
    pub cleanable_bytes: u64,
    /// Where cleaning would start.
    pub first_dirty_offset: i64,
    /// Where cleaning must stop: the active segment, or a segment younger than
    /// `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    /// Whether a dirty segment began longer ago than `max.compaction.lag.ms`, so the
    /// partition must be cleaned whatever its ratio.
    pub overdue: bool,
}

impl Dirt {
    /// `cleanable / (clean + cleanable)`, 0 for a partition with nothing sealed.
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }
}
