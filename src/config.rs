//! Every setting, with Kafka's names and defaults: a topic's [`LogConfig`], a
//! [`ConsumerConfig`], a store's [`StoreOptions`], and the constants of their defaults.
//!
//! Each config is built with its builder's typed methods, or from Kafka-style `(key, value)`
//! pairs (`from_pairs`, the builders' `set` and `set_all`) or a Java `.properties` file
//! (`from_properties_file`), with Kafka's names: a topic's `--config` settings, a consumer's
//! properties, a broker's `server.properties`. An unknown key is [`Error::UnknownConfig`]
//! naming it; a value out of range is [`Error::InvalidConfig`] naming the key, the value and
//! the accepted range. Kafka's settings that mean nothing to an embedded log are accepted and
//! ignored with a log line ([`IGNORED_TOPIC_KEYS`], [`IGNORED_CONSUMER_KEYS`],
//! [`IGNORED_STORE_KEYS`]).
//!
//! ```
//! use topiclog::config::{ConsumerConfig, LogConfig, StoreOptions};
//!
//! let topic = LogConfig::from_pairs([("retention.ms", "86400000"), ("cleanup.policy", "delete")])?;
//! let consumer = ConsumerConfig::from_pairs([("group.id", "billing")])?;
//! let store = StoreOptions::from_pairs([("log.retention.hours", "24")])?;
//! assert_eq!(store.log_config().retention_ms(), topic.retention_ms());
//! assert!(LogConfig::from_pairs([("segment.byte", "1")]).is_err()); // a typo is an error
//! # let _ = consumer;
//! # Ok::<(), topiclog::Error>(())
//! ```
//!
//! With the `serde` feature, every config (de)serializes as a map of its Kafka settings, so a
//! TOML, YAML or JSON file uses Kafka's names too (values may be strings, numbers or booleans;
//! a bad key or value is an error naming it):
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use topiclog::config::LogConfig;
//! let json = r#"{ "retention.ms": 3600000, "cleanup.policy": "delete" }"#;
//! let config: LogConfig = serde_json::from_str(json).expect("valid");
//! assert_eq!(config.retention_ms(), 3_600_000);
//! # }
//! ```
//!
//! New settings go here, with their Kafka names in their docs.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::cleaner::{CleanerConfig, DEFAULT_CLEANER_BACKOFF_MS, DEFAULT_DEDUPE_BUFFER_SIZE};
pub use crate::consumer::config::{
    ConsumerConfig, ConsumerConfigBuilder, DEFAULT_AUTO_COMMIT_INTERVAL_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_POLL_INTERVAL_MS, DEFAULT_MAX_POLL_RECORDS,
    DEFAULT_SESSION_TIMEOUT_MS, IGNORED_CONSUMER_KEYS, IsolationLevel, OffsetReset,
};
pub use crate::group::Assignor;
pub use crate::partition::recovery::RecoveryOptions;
pub use crate::store::{
    DEFAULT_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS, DEFAULT_MAX_PARTITIONS,
    DEFAULT_RETENTION_CHECK_INTERVAL_MS, DEFAULT_TRANSACTION_TIMEOUT_MS, IGNORED_STORE_KEYS,
    StoreOptions, StoreOptionsBuilder,
};
pub use crate::topic::TopicConfig;

use crate::error::{Error, Result};
use crate::record::{
    Compression, CompressionLevels, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES, TimestampType,
};

/// `segment.bytes` default: 1 GiB.
pub const DEFAULT_SEGMENT_BYTES: i32 = 1 << 30;
/// `segment.ms` default: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `segment.index.bytes` default: 10 MiB.
pub const DEFAULT_SEGMENT_INDEX_BYTES: i32 = 10 * 1024 * 1024;
/// `index.interval.bytes` default: 4096.
pub const DEFAULT_INDEX_INTERVAL_BYTES: i32 = 4096;
/// `max.message.bytes` default: 1 MiB + 12 (Kafka's 1048588).
pub const DEFAULT_MAX_MESSAGE_BYTES: i32 = 1024 * 1024 + 12;
/// `retention.ms` default: 7 days. -1 keeps records forever.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `retention.bytes` default: -1, no size limit.
pub const DEFAULT_RETENTION_BYTES: i64 = -1;
/// `flush.messages` default in topiclog: 1, every append durable when it returns. (Kafka's is
/// `i64::MAX`, never: it relies on replication, which an embedded log does not have.)
pub const DEFAULT_FLUSH_MESSAGES: i64 = 1;
/// `flush.ms` default: `i64::MAX`, no time-based flush (Kafka's default).
pub const DEFAULT_FLUSH_MS: i64 = i64::MAX;
/// `producer.id.expiration.ms` default: 1 day (Kafka's 86400000). An idempotent producer idle
/// this long is forgotten by a partition, so producer state stays bounded.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// `min.cleanable.dirty.ratio` default: 0.5. A compacted log is cleaned once more than this
/// share of it is dirty (written since the last cleaning).
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// `min.compaction.lag.ms` default: 0, records may be compacted as soon as they are sealed.
pub const DEFAULT_MIN_COMPACTION_LAG_MS: i64 = 0;
/// `max.compaction.lag.ms` default: `i64::MAX`, no deadline.
pub const DEFAULT_MAX_COMPACTION_LAG_MS: i64 = i64::MAX;
/// `delete.retention.ms` default: 1 day. A tombstone survives this long after the cleaning that
/// first kept it as the latest value of its key.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Default size of a partition's user-space write buffer: 256 KiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Kafka's smallest `segment.bytes` (its legacy record overhead).
const MIN_SEGMENT_BYTES: i32 = 14;
/// Kafka's smallest `segment.index.bytes`.
const MIN_SEGMENT_INDEX_BYTES: i32 = 4;

/// Where a log gets the current time. Tests use their own to move time by hand.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// Milliseconds since the Unix epoch from the system's wall clock (`CLOCK_REALTIME`), read
/// afresh: never a cached or coarse reading, because it stamps Kafka `CreateTime`s. (Linux's
/// coarse clocks tick every jiffy, 4 ms at the common `HZ=250`: too stale for a timestamp.)
/// An append reads it once and uses the one reading for its records and for the follower
/// probe.
#[inline]
pub(crate) fn wall_ms() -> i64 {
    #[cfg(unix)]
    if let Ok(now) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME) {
        // Nanoseconds are in 0..1e9 also before 1970, so this is the millisecond the clock is
        // in, without the `Duration` arithmetic of `SystemTime`: it is on the path of every
        // append, and costs about what the clock read does. (`time_t` and `c_long` are 32
        // bits on some targets, hence the conversions.)
        #[allow(clippy::useless_conversion)]
        return i64::from(now.tv_sec())
            .saturating_mul(1000)
            .saturating_add(i64::from(now.tv_nsec()) / 1_000_000);
    }
    system_time_ms()
}

/// [`wall_ms`] through `SystemTime`, where `clock_gettime` is not at hand.
#[cold]
fn system_time_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock set before 1970: negative milliseconds.
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Settings of one partition log. Build one with [`LogConfig::builder`]; each setter names the
/// Kafka key it mirrors and its default.
///
/// ```
/// use topiclog::config::LogConfig;
/// let config = LogConfig::builder().segment_bytes(64 << 20).build()?;
/// assert_eq!(config.segment_bytes(), 64 << 20);
/// assert_eq!(config.index_interval_bytes(), 4096);
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogConfig {
    segment_bytes: i32,
    segment_ms: i64,
    segment_index_bytes: i32,
    index_interval_bytes: i32,
    max_message_bytes: i32,
    message_timestamp_type: TimestampType,
    retention_ms: i64,
    retention_bytes: i64,
    flush_messages: i64,
    flush_ms: i64,
    producer_id_expiration_ms: i64,
    write_buffer_bytes: usize,
    max_decompressed_batch_bytes: usize,
    compression_type: CompressionType,
    compression_levels: CompressionLevels,
    cleanup_policy: CleanupPolicy,
    min_cleanable_dirty_ratio: f64,
    min_compaction_lag_ms: i64,
    max_compaction_lag_ms: i64,
    delete_retention_ms: i64,
    clock: Arc<dyn Clock>,
}

/// The clock of every config that sets none: one, so that such configs compare equal.
static SYSTEM_CLOCK: std::sync::LazyLock<Arc<dyn Clock>> =
    std::sync::LazyLock::new(|| Arc::new(SystemClock));

/// Equal when every setting is, and both use the same clock (the same `Arc`).
impl PartialEq for LogConfig {
    fn eq(&self, other: &Self) -> bool {
        self.to_pairs() == other.to_pairs()
            && self.write_buffer_bytes == other.write_buffer_bytes
            && self.max_decompressed_batch_bytes == other.max_decompressed_batch_bytes
            && std::ptr::addr_eq(Arc::as_ptr(&self.clock), Arc::as_ptr(&other.clock))
    }
}

impl Eq for LogConfig {}

/// Topic settings of a Kafka broker that mean nothing to an embedded log (replication,
/// tiered storage, message-format conversion, preallocation, jitter, deletion delays). They are
/// accepted and ignored, with a log line, as a broker ignores client settings.
pub const IGNORED_TOPIC_KEYS: &[&str] = &[
    "confluent.placement.constraints",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

/// `cleanup.policy`: what keeps a topic's partitions bounded, with Kafka's names.
///
/// ```
/// use topiclog::config::{CleanupPolicy, LogConfig};
/// let config = LogConfig::from_pairs([("cleanup.policy", "compact")])?;
/// assert_eq!(config.cleanup_policy(), CleanupPolicy::Compact);
/// assert!(config.cleanup_policy().compacts() && !config.cleanup_policy().deletes());
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// `delete` (Kafka's default): retention deletes whole segments by age and size.
    #[default]
    Delete,
    /// `compact`: the cleaner keeps the latest record of every key and drops the rest;
    /// retention by age and size does not apply. Keyless appends are refused.
    Compact,
    /// `compact,delete`: both; retention then also deletes old segments of the compacted log.
    CompactDelete,
}

impl CleanupPolicy {
    /// Kafka's name of the value.
    pub fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Whether retention by age and size applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

impl fmt::Display for CleanupPolicy {
    /// Kafka's name (see [`CleanupPolicy::name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = Error;

    /// A comma-separated list, as Kafka takes it: `delete`, `compact`, or both in either order.
    fn from_str(value: &str) -> Result<CleanupPolicy> {
        let (mut compact, mut delete) = (false, false);
        for part in value.split(',').map(str::trim) {
            match part {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => {
                    return Err(Error::InvalidConfig {
                        key: "cleanup.policy",
                        value: value.to_owned(),
                        reason: "must be delete, compact, or compact,delete".into(),
                    });
                }
            }
        }
        Ok(match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        })
    }
}

/// `compression.type`: how a topic's batches are compressed, with Kafka's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompressionType {
    /// `producer` (Kafka's default): each append is stored as it asks (see
    /// [`Partition::append_batch_compressed`](crate::Partition::append_batch_compressed));
    /// uncompressed unless it asks.
    #[default]
    Producer,
    /// `uncompressed`: every batch is written uncompressed, whatever the append asks.
    Uncompressed,
    /// `gzip`, for every batch.
    Gzip,
    /// `snappy`, for every batch.
    Snappy,
    /// `lz4`, for every batch.
    Lz4,
    /// `zstd`, for every batch.
    Zstd,
}

impl fmt::Display for CompressionType {
    /// Kafka's name (see [`CompressionType::name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl CompressionType {
    /// Kafka's name of the setting's value.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    /// The codec a batch is written with when the append asks for `requested`.
    pub fn codec_for(self, requested: Compression) -> Compression {
        match self {
            CompressionType::Producer => requested,
            CompressionType::Uncompressed => Compression::None,
            CompressionType::Gzip => Compression::Gzip,
            CompressionType::Snappy => Compression::Snappy,
            CompressionType::Lz4 => Compression::Lz4,
            CompressionType::Zstd => Compression::Zstd,
        }
    }
}

impl std::str::FromStr for CompressionType {
    type Err = Error;

    fn from_str(value: &str) -> Result<CompressionType> {
        [
            CompressionType::Producer,
            CompressionType::Uncompressed,
            CompressionType::Gzip,
            CompressionType::Snappy,
            CompressionType::Lz4,
            CompressionType::Zstd,
        ]
        .into_iter()
        .find(|t| t.name() == value)
        .ok_or_else(|| Error::InvalidConfig {
            key: "compression.type",
            value: value.to_owned(),
            reason: "must be producer, uncompressed, gzip, snappy, lz4 or zstd".into(),
        })
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: DEFAULT_SEGMENT_MS,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            message_timestamp_type: TimestampType::CreateTime,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: DEFAULT_RETENTION_BYTES,
            flush_messages: DEFAULT_FLUSH_MESSAGES,
            flush_ms: DEFAULT_FLUSH_MS,
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            max_decompressed_batch_bytes: DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES,
            compression_type: CompressionType::default(),
            compression_levels: CompressionLevels::default(),
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            min_compaction_lag_ms: DEFAULT_MIN_COMPACTION_LAG_MS,
            max_compaction_lag_ms: DEFAULT_MAX_COMPACTION_LAG_MS,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            clock: Arc::clone(&SYSTEM_CLOCK),
        }
    }
}

impl LogConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> LogConfigBuilder {
        LogConfigBuilder {
            config: LogConfig::default(),
        }
    }

    /// A builder starting from this config's settings.
    pub fn to_builder(&self) -> LogConfigBuilder {
        LogConfigBuilder {
            config: self.clone(),
        }
    }

    /// A config from Kafka-style `(key, value)` pairs over the defaults, as
    /// [`LogConfigBuilder::set`] takes them one by one.
    ///
    /// ```
    /// use topiclog::config::LogConfig;
    /// let config = LogConfig::from_pairs([("segment.bytes", "1048576"), ("retention.ms", "-1")])?;
    /// assert_eq!((config.segment_bytes(), config.retention_ms()), (1 << 20, -1));
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] naming an unknown key, [`Error::InvalidConfig`] naming a key
    /// whose value does not parse or lies out of range.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<LogConfig>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        LogConfig::builder().set_all(pairs)?.build()
    }

    /// A config from a Java `.properties` file of topic settings (Kafka's names, as
    /// `kafka-configs --add-config` or a topic's `--config` take them).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::ConfigFile`] naming the line of a
    /// malformed entry, and the errors of [`from_pairs`](LogConfig::from_pairs).
    pub fn from_properties_file(path: impl AsRef<std::path::Path>) -> Result<LogConfig> {
        LogConfig::from_pairs(crate::properties::read_file(path.as_ref())?)
    }

    /// The settings as Kafka `(key, value)` pairs, in a fixed order: what
    /// [`from_pairs`](LogConfig::from_pairs) reads back into an equal config (the clock, the
    /// write buffer and the decompression limit are not Kafka settings and are left out).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let timestamp_type = match self.message_timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        let mut pairs = vec![
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("segment.index.bytes", self.segment_index_bytes.to_string()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("message.timestamp.type", timestamp_type.to_owned()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("flush.messages", self.flush_messages.to_string()),
            ("flush.ms", self.flush_ms.to_string()),
            (
                "producer.id.expiration.ms",
                self.producer_id_expiration_ms.to_string(),
            ),
            ("compression.type", self.compression_type.name().to_owned()),
            ("cleanup.policy", self.cleanup_policy.name().to_owned()),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
            (
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms.to_string(),
            ),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
        ];
        let levels = &self.compression_levels;
        if let Some(level) = levels.gzip {
            pairs.push(("compression.gzip.level", level.to_string()));
        }
        if let Some(level) = levels.lz4 {
            pairs.push(("compression.lz4.level", level.to_string()));
        }
        if let Some(level) = levels.zstd {
            pairs.push(("compression.zstd.level", level.to_string()));
        }
        pairs
    }

    /// `segment.bytes`: a segment rolls before it would grow past this size.
    pub fn segment_bytes(&self) -> i32 {
        self.segment_bytes
    }

    /// `segment.ms`: a segment rolls once its records span this long.
    pub fn segment_ms(&self) -> i64 {
        self.segment_ms
    }

    /// `segment.index.bytes`: the size each index file is preallocated to.
    pub fn segment_index_bytes(&self) -> i32 {
        self.segment_index_bytes
    }

    /// `index.interval.bytes`: bytes of batches between index entries.
    pub fn index_interval_bytes(&self) -> i32 {
        self.index_interval_bytes
    }

    /// `max.message.bytes`: the largest batch an append may write.
    pub fn max_message_bytes(&self) -> i32 {
        self.max_message_bytes
    }

    /// `message.timestamp.type`: CreateTime or LogAppendTime.
    pub fn message_timestamp_type(&self) -> TimestampType {
        self.message_timestamp_type
    }

    /// `retention.ms`: a segment is deleted once its newest record is older than this; -1
    /// keeps records forever.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// `retention.bytes`: oldest segments are deleted while the partition is larger than this;
    /// -1 for no limit.
    pub fn retention_bytes(&self) -> i64 {
        self.retention_bytes
    }

    /// `flush.messages`: records appended between fsyncs. 1 (the default) makes every append
    /// durable when it returns, with concurrent appends sharing fsyncs (group commit), and
    /// readers see a record only once it is durable. Larger values fsync once that many
    /// records are unflushed; appends return before they are durable.
    pub fn flush_messages(&self) -> i64 {
        self.flush_messages
    }

    /// `flush.ms`: with `flush.messages` above 1, an append also fsyncs once the oldest
    /// unflushed record is this old. `i64::MAX` (the default) never.
    pub fn flush_ms(&self) -> i64 {
        self.flush_ms
    }

    /// `producer.id.expiration.ms`: an idempotent producer whose last batch is this old (by the
    /// batch's max timestamp) is forgotten when producer state is next snapshotted, checked or
    /// loaded; its next append starts afresh (any sequence number is accepted, no duplicate is
    /// recognized), as in Kafka.
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.producer_id_expiration_ms
    }

    /// `cleanup.policy`: `delete` (default), `compact` or `compact,delete`.
    pub fn cleanup_policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }

    /// `min.cleanable.dirty.ratio`: the cleaner takes a compacted partition once the dirty part
    /// of its sealed segments is more than this share of them. Default 0.5.
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.min_cleanable_dirty_ratio
    }

    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long after its
    /// timestamp (the cleaner stops at the first segment holding a younger one). Default 0.
    pub fn min_compaction_lag_ms(&self) -> i64 {
        self.min_compaction_lag_ms
    }

    /// `max.compaction.lag.ms`: a partition whose oldest dirty segment began this long ago is
    /// cleaned whatever its dirty ratio. Default `i64::MAX` (never).
    pub fn max_compaction_lag_ms(&self) -> i64 {
        self.max_compaction_lag_ms
    }

    /// `delete.retention.ms`: how long a tombstone (a keyed record with a null value) survives
    /// after the cleaning that first kept it, so that a consumer reading from the start sees it
    /// if it finishes within this time. Default 1 day.
    pub fn delete_retention_ms(&self) -> i64 {
        self.delete_retention_ms
    }

    /// Whether every append is durable when it returns (`flush.messages` 1).
    pub fn is_durable(&self) -> bool {
        self.flush_messages <= 1
    }

    /// Bytes an active segment buffers in memory before writing them to its file.
    pub fn write_buffer_bytes(&self) -> usize {
        self.write_buffer_bytes
    }

    /// The most bytes one compressed batch's records may decompress to when read; a batch
    /// that expands past it is an error rather than an allocation.
    pub fn max_decompressed_batch_bytes(&self) -> usize {
        self.max_decompressed_batch_bytes
    }

    /// `compression.type`: how batches are compressed (default `producer`: as each append asks).
    pub fn compression_type(&self) -> CompressionType {
        self.compression_type
    }

    /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level` (`None`:
    /// the codec's default, as Kafka's).
    pub fn compression_levels(&self) -> &CompressionLevels {
        &self.compression_levels
    }

    /// The clock used for timestamps and time-based rolls.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether the clock is the default system clock, whose reading [`wall_ms`] gives without
    /// a call through the trait object.
    pub(crate) fn has_system_clock(&self) -> bool {
        Arc::ptr_eq(&self.clock, &SYSTEM_CLOCK)
    }
}

/// Builds a [`LogConfig`], validating each value in [`build`](LogConfigBuilder::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct LogConfigBuilder {
    config: LogConfig,
}

impl LogConfigBuilder {
    /// `segment.bytes`, at least 14. Default [`DEFAULT_SEGMENT_BYTES`] (1 GiB).
    pub fn segment_bytes(mut self, bytes: i32) -> Self {
        self.config.segment_bytes = bytes;
        self
    }

    /// `segment.ms`, at least 1. Default [`DEFAULT_SEGMENT_MS`] (7 days).
    pub fn segment_ms(mut self, ms: i64) -> Self {
        self.config.segment_ms = ms;
        self
    }

    /// `segment.index.bytes`, at least 4. Default [`DEFAULT_SEGMENT_INDEX_BYTES`] (10 MiB).
    pub fn segment_index_bytes(mut self, bytes: i32) -> Self {
        self.config.segment_index_bytes = bytes;
        self
    }

    /// `index.interval.bytes`, at least 0. Default [`DEFAULT_INDEX_INTERVAL_BYTES`] (4096).
    pub fn index_interval_bytes(mut self, bytes: i32) -> Self {
        self.config.index_interval_bytes = bytes;
        self
    }

    /// `max.message.bytes`, at least 0. Default [`DEFAULT_MAX_MESSAGE_BYTES`] (1048588).
    pub fn max_message_bytes(mut self, bytes: i32) -> Self {
        self.config.max_message_bytes = bytes;
        self
    }

    /// `message.timestamp.type`. Default CreateTime.
    pub fn message_timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.config.message_timestamp_type = timestamp_type;
        self
    }

    /// `retention.ms`, at least -1 (forever). Default [`DEFAULT_RETENTION_MS`] (7 days).
    pub fn retention_ms(mut self, ms: i64) -> Self {
        self.config.retention_ms = ms;
        self
    }

    /// `retention.bytes` per partition, at least -1 (unlimited). Default
    /// [`DEFAULT_RETENTION_BYTES`] (-1).
    pub fn retention_bytes(mut self, bytes: i64) -> Self {
        self.config.retention_bytes = bytes;
        self
    }

    /// `flush.messages`, at least 1. Default [`DEFAULT_FLUSH_MESSAGES`] (1: every append durable
    /// when it returns). Kafka's own default, never, is `i64::MAX`.
    pub fn flush_messages(mut self, messages: i64) -> Self {
        self.config.flush_messages = messages;
        self
    }

    /// `flush.ms`, at least 0. Default [`DEFAULT_FLUSH_MS`] (never).
    pub fn flush_ms(mut self, ms: i64) -> Self {
        self.config.flush_ms = ms;
        self
    }

    /// `producer.id.expiration.ms`, at least 1. Default [`DEFAULT_PRODUCER_ID_EXPIRATION_MS`]
    /// (1 day).
    pub fn producer_id_expiration_ms(mut self, ms: i64) -> Self {
        self.config.producer_id_expiration_ms = ms;
        self
    }

    /// Bytes buffered in memory before a write to the segment file; 0 writes every append
    /// through at once. Default [`DEFAULT_WRITE_BUFFER_BYTES`] (256 KiB). Not a Kafka setting.
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.write_buffer_bytes = bytes;
        self
    }

    /// The most bytes one compressed batch's records section may decompress to on reads.
    /// Default [`DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES`] (256 MiB): generous, since compressed
    /// data legitimately expands many times over `max.message.bytes`. Not a Kafka setting.
    pub fn max_decompressed_batch_bytes(mut self, bytes: usize) -> Self {
        self.config.max_decompressed_batch_bytes = bytes;
        self
    }

    /// `compression.type` (default `producer`).
    pub fn compression_type(mut self, compression: CompressionType) -> Self {
        self.config.compression_type = compression;
        self
    }

    /// `compression.gzip.level`: 1 (fastest) to 9 (smallest); default 6, zlib's.
    pub fn compression_gzip_level(mut self, level: u32) -> Self {
        self.config.compression_levels.gzip = Some(level);
        self
    }

    /// `compression.lz4.level`: 1 to 17; default 9. As in Kafka, level 9 uses LZ4's fast
    /// compressor and every other level its high-compression mode (LZ4 HC, which compresses no
    /// further past 12).
    pub fn compression_lz4_level(mut self, level: u32) -> Self {
        self.config.compression_levels.lz4 = Some(level);
        self
    }

    /// `compression.zstd.level`: -131072 to 22; default 3.
    pub fn compression_zstd_level(mut self, level: i32) -> Self {
        self.config.compression_levels.zstd = Some(level);
        self
    }

    /// `cleanup.policy`. Default [`CleanupPolicy::Delete`].
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> Self {
        self.config.cleanup_policy = policy;
        self
    }

    /// `min.cleanable.dirty.ratio`, 0 to 1. Default [`DEFAULT_MIN_CLEANABLE_DIRTY_RATIO`] (0.5).
    pub fn min_cleanable_dirty_ratio(mut self, ratio: f64) -> Self {
        self.config.min_cleanable_dirty_ratio = ratio;
        self
    }

    /// `min.compaction.lag.ms`, at least 0. Default [`DEFAULT_MIN_COMPACTION_LAG_MS`] (0).
    pub fn min_compaction_lag_ms(mut self, ms: i64) -> Self {
        self.config.min_compaction_lag_ms = ms;
        self
    }

    /// `max.compaction.lag.ms`, at least 1. Default [`DEFAULT_MAX_COMPACTION_LAG_MS`] (never).
    pub fn max_compaction_lag_ms(mut self, ms: i64) -> Self {
        self.config.max_compaction_lag_ms = ms;
        self
    }

    /// `delete.retention.ms`, at least 0. Default [`DEFAULT_DELETE_RETENTION_MS`] (1 day).
    pub fn delete_retention_ms(mut self, ms: i64) -> Self {
        self.config.delete_retention_ms = ms;
        self
    }

    /// The clock for record timestamps and time-based rolls. Default [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }

    /// Sets a setting by its Kafka name from text, as `--config key=value` gives it:
    /// `segment.bytes`, `segment.ms`, `segment.index.bytes`, `index.interval.bytes`,
    /// `max.message.bytes`, `message.timestamp.type` (`CreateTime` or `LogAppendTime`),
    /// `retention.ms`, `retention.bytes`, `flush.messages`, `flush.ms`,
    /// `producer.id.expiration.ms`, `compression.type`, `compression.gzip.level`,
    /// `compression.lz4.level`, `compression.zstd.level`.
    ///
    /// `cleanup.policy` (`delete`, `compact`, `compact,delete`), `min.cleanable.dirty.ratio`,
    /// `min.compaction.lag.ms`, `max.compaction.lag.ms` and `delete.retention.ms` set log
    /// compaction. The keys in [`IGNORED_TOPIC_KEYS`] are accepted and ignored with a log line.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] for an unknown key, [`Error::InvalidConfig`] for a value that
    /// does not parse (ranges are checked by [`build`](LogConfigBuilder::build)).
    pub fn set(self, key: &str, value: &str) -> Result<Self> {
        fn num<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T> {
            value.parse().map_err(|_| Error::InvalidConfig {
                key,
                value: value.to_owned(),
                reason: "not a number".into(),
            })
        }
        Ok(match key {
            "segment.bytes" => self.segment_bytes(num("segment.bytes", value)?),
            "segment.ms" => self.segment_ms(num("segment.ms", value)?),
            "segment.index.bytes" => self.segment_index_bytes(num("segment.index.bytes", value)?),
            "index.interval.bytes" => {
                self.index_interval_bytes(num("index.interval.bytes", value)?)
            }
            "max.message.bytes" => self.max_message_bytes(num("max.message.bytes", value)?),
            "retention.ms" => self.retention_ms(num("retention.ms", value)?),
            "retention.bytes" => self.retention_bytes(num("retention.bytes", value)?),
            "flush.messages" => self.flush_messages(num("flush.messages", value)?),
            "flush.ms" => self.flush_ms(num("flush.ms", value)?),
            "producer.id.expiration.ms" => {
                self.producer_id_expiration_ms(num("producer.id.expiration.ms", value)?)
            }
            "compression.type" => self.compression_type(value.parse()?),
            "compression.gzip.level" => {
                self.compression_gzip_level(num("compression.gzip.level", value)?)
            }
            "compression.lz4.level" => {
                self.compression_lz4_level(num("compression.lz4.level", value)?)
            }
            "compression.zstd.level" => {
                self.compression_zstd_level(num("compression.zstd.level", value)?)
            }
            "message.timestamp.type" => self.message_timestamp_type(match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => {
                    return Err(Error::InvalidConfig {
                        key: "message.timestamp.type",
                        value: value.to_owned(),
                        reason: "must be CreateTime or LogAppendTime".into(),
                    });
                }
            }),
            "cleanup.policy" => self.cleanup_policy(value.parse()?),
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio(value.trim().parse::<f64>().map_err(|_| {
                    Error::InvalidConfig {
                        key: "min.cleanable.dirty.ratio",
                        value: value.to_owned(),
                        reason: "not a number".into(),
                    }
                })?)
            }
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms(num("min.compaction.lag.ms", value)?)
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms(num("max.compaction.lag.ms", value)?)
            }
            "delete.retention.ms" => self.delete_retention_ms(num("delete.retention.ms", value)?),
            _ if IGNORED_TOPIC_KEYS.contains(&key) => {
                log::info!("ignoring topic setting {key}={value}: no effect in topiclog");
                self
            }
            _ => {
                return Err(Error::UnknownConfig {
                    key: key.to_owned(),
                    kind: "topic",
                });
            }
        })
    }

    /// [`set`](LogConfigBuilder::set) for each pair, in order.
    ///
    /// # Errors
    /// The first error of [`set`](LogConfigBuilder::set).
    pub fn set_all<K, V>(self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        pairs
            .into_iter()
            .try_fold(self, |b, (k, v)| b.set(k.as_ref(), v.as_ref()))
    }

    /// The config, or [`Error::InvalidConfig`] naming the first value out of range.
    pub fn build(self) -> Result<LogConfig> {
        let c = &self.config;
        check(
            "segment.bytes",
            c.segment_bytes,
            c.segment_bytes >= MIN_SEGMENT_BYTES,
            "must be at least 14",
        )?;
        check(
            "segment.ms",
            c.segment_ms,
            c.segment_ms >= 1,
            "must be at least 1",
        )?;
        check(
            "segment.index.bytes",
            c.segment_index_bytes,
            c.segment_index_bytes >= MIN_SEGMENT_INDEX_BYTES,
            "must be at least 4",
        )?;
        check(
            "index.interval.bytes",
            c.index_interval_bytes,
            c.index_interval_bytes >= 0,
            "must not be negative",
        )?;
        check(
            "max.message.bytes",
            c.max_message_bytes,
            c.max_message_bytes >= 0,
            "must not be negative",
        )?;
        check(
            "retention.ms",
            c.retention_ms,
            c.retention_ms >= -1,
            "must be -1 (forever) or more",
        )?;
        check(
            "flush.messages",
            c.flush_messages,
            c.flush_messages >= 1,
            "must be at least 1",
        )?;
        check(
            "flush.ms",
            c.flush_ms,
            c.flush_ms >= 0,
            "must not be negative",
        )?;
        check(
            "retention.bytes",
            c.retention_bytes,
            c.retention_bytes >= -1,
            "must be -1 (unlimited) or more",
        )?;
        check(
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms,
            c.producer_id_expiration_ms >= 1,
            "must be at least 1",
        )?;
        check(
            "min.cleanable.dirty.ratio",
            c.min_cleanable_dirty_ratio,
            (0.0..=1.0).contains(&c.min_cleanable_dirty_ratio),
            "must be 0 to 1",
        )?;
        check(
            "min.compaction.lag.ms",
            c.min_compaction_lag_ms,
            c.min_compaction_lag_ms >= 0,
            "must not be negative",
        )?;
        check(
            "max.compaction.lag.ms",
            c.max_compaction_lag_ms,
            c.max_compaction_lag_ms >= 1,
            "must be at least 1",
        )?;
        check(
            "delete.retention.ms",
            c.delete_retention_ms,
            c.delete_retention_ms >= 0,
            "must not be negative",
        )?;
        let levels = &c.compression_levels;
        if let Some(level) = levels.gzip {
            check(
                "compression.gzip.level",
                level,
                (1..=9).contains(&level),
                "must be 1 to 9",
            )?;
        }
        if let Some(level) = levels.lz4 {
            check(
                "compression.lz4.level",
                level,
                (1..=17).contains(&level),
                "must be 1 to 17",
            )?;
        }
        if let Some(level) = levels.zstd {
            let ok = (-131_072..=22).contains(&level);
            check("compression.zstd.level", level, ok, "must be -131072 to 22")?;
        }
        Ok(self.config)
    }
}

fn check(key: &'static str, value: impl ToString, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            key,
            value: value.to_string(),
            reason: reason.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_reads_as_system_time_does() {
        // Read between two `SystemTime` readings, it falls between them.
        for _ in 0..1000 {
            let before = system_time_ms();
            let now = wall_ms();
            let after = system_time_ms();
            assert!(
                (before..=after).contains(&now),
                "{before} <= {now} <= {after}"
            );
        }
        assert!(wall_ms() > 1_700_000_000_000, "milliseconds since 1970");
    }

    #[test]
    fn settings_by_kafka_name() {
        let c = LogConfig::builder()
            .set("segment.bytes", "4096")
            .and_then(|b| b.set("retention.ms", "-1"))
            .and_then(|b| b.set("message.timestamp.type", "LogAppendTime"))
            .and_then(|b| b.set("producer.id.expiration.ms", "60000"))
            .and_then(LogConfigBuilder::build)
            .expect("valid");
        assert_eq!(c.producer_id_expiration_ms(), 60_000);
        assert_eq!((c.segment_bytes(), c.retention_ms()), (4096, -1));
        assert_eq!(c.message_timestamp_type(), TimestampType::LogAppendTime);
        for (key, value) in [
            ("segment.bytes", "big"),
            ("colour", "blue"),
            ("message.timestamp.type", "x"),
        ] {
            assert!(
                matches!(
                    LogConfig::builder().set(key, value),
                    Err(Error::InvalidConfig { .. } | Error::UnknownConfig { .. })
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes(), 1_073_741_824);
        assert_eq!(c.segment_ms(), 604_800_000);
        assert_eq!(c.segment_index_bytes(), 10_485_760);
        assert_eq!(c.index_interval_bytes(), 4096);
        assert_eq!(c.max_message_bytes(), 1_048_588);
        assert_eq!(c.message_timestamp_type(), TimestampType::CreateTime);
        assert_eq!(c.retention_ms(), 604_800_000);
        assert_eq!(c.retention_bytes(), -1);
        assert_eq!((c.flush_messages(), c.flush_ms()), (1, i64::MAX));
        assert_eq!(c.producer_id_expiration_ms(), 86_400_000);
        assert!(
            c.is_durable(),
            "topiclog is durable by default; Kafka is not"
        );
    }

    #[test]
    fn out_of_range_values_are_typed_errors() {
        let cases: [(LogConfigBuilder, &str); 8] = [
            (
                LogConfig::builder().producer_id_expiration_ms(0),
                "producer.id.expiration.ms",
            ),
            (LogConfig::builder().retention_ms(-2), "retention.ms"),
            (LogConfig::builder().retention_bytes(-2), "retention.bytes"),
            (LogConfig::builder().segment_bytes(13), "segment.bytes"),
            (LogConfig::builder().segment_ms(0), "segment.ms"),
            (
                LogConfig::builder().segment_index_bytes(3),
                "segment.index.bytes",
            ),
            (
                LogConfig::builder().index_interval_bytes(-1),
                "index.interval.bytes",
            ),
            (
                LogConfig::builder().max_message_bytes(-1),
                "max.message.bytes",
            ),
        ];
        for (builder, key) in cases {
            match builder.build() {
                Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: expected InvalidConfig, got {other:?}"),
            }
        }
        assert!(
            LogConfig::builder()
                .segment_bytes(14)
                .segment_index_bytes(4)
                .build()
                .is_ok()
        );
    }
}
