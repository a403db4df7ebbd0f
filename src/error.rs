//! The crate's one error type, [`Error`], and the details some variants carry: what is wrong
//! with damaged data ([`Corruption`]) and which I/O operation failed ([`IoOp`]).
//!
//! Every failure a caller can act on is its own variant, with the file, byte position, offsets
//! or setting involved, so code matches on it instead of parsing messages. Nothing in topiclog
//! panics on bad input: damaged files, bad arguments and failed system calls all come back as
//! an `Error`. New failures get their own variants; the enums are `#[non_exhaustive]`.
//!
//! ```
//! use topiclog::config::LogConfig;
//! use topiclog::{Error, Partition, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Partition::open(dir.path(), LogConfig::default())?;
//! log.append(Record::new(b"only"))?;
//! match log.read(5) {
//!     Err(Error::OffsetOutOfRange { requested, log_start, log_end }) => {
//!         assert_eq!((requested, log_start, log_end), (5, 0, 1));
//!     }
//!     other => panic!("expected OffsetOutOfRange, got {other:?}"),
//! }
//! match LogConfig::from_pairs([("segment.byte", "1024")]) {
//!     Err(Error::UnknownConfig { key, .. }) => assert_eq!(key, "segment.byte"),
//!     other => panic!("expected UnknownConfig, got {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::record::{Compression, DecodeError};

/// Result with topiclog's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in topiclog. Each variant carries what a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Stored data breaks the format where it must be intact.
    #[error("corrupt data in {} at byte {position}: {kind}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage in that file.
        position: u64,
        /// What is wrong.
        kind: Corruption,
    },
    /// A batch's records are compressed with a codec this build cannot decompress. The batch
    /// itself is valid: its framing and CRC were checked.
    #[error("batch in {} at byte {position} is compressed with {codec}, which this build does not support", path.display())]
    UnsupportedCompression {
        /// The codec.
        codec: Compression,
        /// The segment file.
        path: PathBuf,
        /// Byte position of the batch in the file.
        position: u64,
    },
    /// An append was larger than a limit; nothing was written.
    #[error("record batch of {}{size} bytes exceeds {setting} ({limit})", if *at_least { "at least " } else { "" })]
    RecordTooLarge {
        /// Encoded size of the batch, or a lower bound of it (`at_least`).
        size: usize,
        /// `size` is a lower bound (the records' bytes, counted before encoding).
        at_least: bool,
        /// The limit.
        limit: usize,
        /// What sets the limit: `max.message.bytes`, `segment.bytes`,
        /// `max_decompressed_batch_bytes` (compressed batches), or the format's 32-bit batch
        /// length.
        setting: &'static str,
    },
    /// A read asked for an offset outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// The log start offset at the time.
        log_start: i64,
        /// The log end offset (next offset) at the time.
        log_end: i64,
    },
    /// A setting has a value outside its range.
    #[error("invalid value {value} for {key}: {reason}")]
    InvalidConfig {
        /// The setting's Kafka name, such as `segment.bytes`.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// Why it is rejected: the accepted range, or the setting that bounds it.
        reason: std::borrow::Cow<'static, str>,
    },
    /// A setting's name is not one topiclog knows for that kind of config (Kafka broker-only
    /// and network-client keys are accepted and ignored instead, with a log line).
    #[error("unknown setting {key:?} for {kind}")]
    UnknownConfig {
        /// The key as given.
        key: String,
        /// Which config it was given to: `topic`, `consumer` or `store`.
        kind: &'static str,
    },
    /// A `.properties` file is malformed.
    #[error("{}: line {line}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: std::path::PathBuf,
        /// The 1-based line where the malformed entry starts.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An append with no records.
    #[error("an append needs at least one record")]
    EmptyBatch,
    /// The log reached the largest offset Kafka's format can hold.
    #[error("the log has run out of offsets")]
    OffsetsExhausted,
    /// A negative offset where an offset is needed (a seek, a commit, an offset reset).
    #[error("offset {offset} is negative")]
    NegativeOffset {
        /// The offset given.
        offset: i64,
    },
    /// The operation needs the consumer's `group.id`, and it has none.
    #[error("{operation} needs a group.id")]
    NoGroupId {
        /// What was asked: `subscribing`, `committing`, ...
        operation: &'static str,
    },
    /// `assign` on a subscribed consumer: its group assigns its partitions (Kafka's
    /// `IllegalStateException`).
    #[error("the consumer is subscribed: its group assigns its partitions")]
    Subscribed,
    /// A member id already in the group joined again.
    #[error("member {member:?} is already in group {group:?}")]
    MemberExists {
        /// The group.
        group: String,
        /// The member id.
        member: String,
    },
    /// A member asked for another assignor than the group's members use (Kafka's
    /// `INCONSISTENT_GROUP_PROTOCOL`).
    #[error("group {group:?}'s members use the {current} assignor, not {requested}")]
    InconsistentAssignor {
        /// The group.
        group: String,
        /// The assignor its members use.
        current: crate::group::Assignor,
        /// The one asked for.
        requested: crate::group::Assignor,
    },
    /// An operation that needs an empty group met live members (Kafka's `NON_EMPTY_GROUP`).
    #[error("group {group:?} has live members: {operation} only while it is empty")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// What was asked: `resetting offsets`, `deleting it`.
        operation: &'static str,
    },
    /// A file name that is not `<20-digit base offset>.log` (or `.index`, `.timeindex`) where
    /// the base offset must come from the name.
    #[error("{}: not a segment file name (<20-digit base offset>.log); pass the base offset", path.display())]
    NotASegmentFile {
        /// The file.
        path: PathBuf,
    },
    /// A producer stamp with a negative producer id, epoch or sequence.
    #[error(
        "invalid producer stamp (id {producer_id}, epoch {epoch}, sequence {base_sequence}): none may be negative"
    )]
    InvalidProducerStamp {
        /// The producer id.
        producer_id: i64,
        /// The epoch.
        epoch: i16,
        /// The first sequence number.
        base_sequence: i32,
    },
    /// An empty producer name.
    #[error("a producer name must not be empty")]
    EmptyProducerName,
    /// A broken internal invariant: a bug in topiclog. Please report it with the message.
    #[error("internal error (a topiclog bug, please report it): {0}")]
    Internal(&'static str),
    /// The partition was closed; open it again to write.
    #[error("the partition is closed")]
    Closed,
    /// [`Waker::wakeup`](crate::consumer::Waker::wakeup) interrupted a consumer's `poll`
    /// (Kafka's `WakeupException`): nothing was consumed by that call.
    #[error("the consumer's poll was woken up")]
    Wakeup,
    /// An fsync failed: the kernel may have dropped the data it could not write, so the
    /// partition refuses writes until it is reopened (and recovered).
    #[error(
        "the partition refuses writes since a write or fsync failed ({reason}); reopen it to recover"
    )]
    Poisoned {
        /// What failed.
        reason: String,
    },
    /// The partition or store was opened read-only.
    #[error("opened read-only")]
    ReadOnly,
    /// The partition is a replica of a cluster topic (it holds a replica marker): only its
    /// replicator writes it. Appends, producers, record deletion, retention, compaction,
    /// transaction aborts and added partitions are refused; reads and group commits work.
    #[error("{} is a replica of cluster topic {cluster_topic:?}: only its replicator writes it", dir.display())]
    Replica {
        /// The partition directory.
        dir: PathBuf,
        /// The cluster topic it replicates.
        cluster_topic: String,
    },
    /// A replicated write (see `Partition::append_replicated`) to a partition that is not a
    /// replica.
    #[error("{} is not a replica: it takes no replicated writes", dir.display())]
    NotAReplica {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A partition that holds or held records cannot become a replica: a replica's offsets
    /// are the cluster's.
    #[error("{} cannot become a replica: its log end offset is {log_end}, not 0", dir.display())]
    ReplicaTargetNotEmpty {
        /// The partition directory.
        dir: PathBuf,
        /// Its log end offset.
        log_end: i64,
    },
    /// A batch handed to a replica's replicated append breaks Kafka's rules for replicated
    /// data (framing, CRC-32C, offsets that do not follow the log); nothing of the append was
    /// written.
    #[error("replicated data for {} at byte {position} of the append: {kind}", dir.display())]
    InvalidReplicatedBatch {
        /// The partition directory.
        dir: PathBuf,
        /// Byte position of the batch in the bytes handed to the append.
        position: usize,
        /// What is wrong.
        kind: Corruption,
    },
    /// Another store handle, in this process or another, holds the directory's lock.
    #[error("store directory {} is locked by another open store", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A topic name breaks Kafka's rules (1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or
    /// `..`).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No topic has this name.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// A topic with this name exists already.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// A partition number outside the topic's partitions.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A consumer asked about (seek, position, commit) a partition it is not assigned.
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    PartitionNotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A group member committed an offset for a partition it no longer owns (a rebalance gave
    /// it to another member): Kafka's `CommitFailedException`. Nothing was committed.
    #[error(
        "member {member:?} of group {group:?} does not own {topic}-{partition}: commit rejected"
    )]
    CommitRejected {
        /// The group.
        group: String,
        /// The member that tried.
        member: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The member is not (or no longer) part of its group: it left, or was removed for not
    /// polling within `max.poll.interval.ms`.
    #[error("member {member:?} is not in group {group:?}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// `auto.offset.reset` is `none` and the group has no committed offset for the partition
    /// (or it is out of range): Kafka's `NoOffsetForPartitionException`.
    #[error("no committed offset for {topic}-{partition} and auto.offset.reset is none")]
    NoOffsetForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A newer handle of the same producer name was opened: this one is fenced and its appends
    /// fail (Kafka's `ProducerFencedException`).
    #[error("producer {producer:?} (id {producer_id}, epoch {epoch}) is fenced by a newer epoch")]
    ProducerFenced {
        /// The producer's name.
        producer: String,
        /// Its producer id.
        producer_id: i64,
        /// The fenced handle's epoch.
        epoch: i16,
    },
    /// An idempotent append's sequence number is not the next one the partition expects (a
    /// gap: an earlier append was lost or is still to come): Kafka's `OutOfOrderSequence`.
    #[error(
        "out-of-order sequence for producer {producer_id} on {topic}-{partition}: expected {expected}, got {received}"
    )]
    OutOfOrderSequence {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The producer id.
        producer_id: i64,
        /// The sequence number the partition expected next.
        expected: i32,
        /// The sequence number the append carried.
        received: i32,
    },
    /// An append to a compacted topic (`cleanup.policy` `compact` or `compact,delete`) holds a
    /// record without a key, which compaction could never replace or delete: Kafka refuses it
    /// the same way (`InvalidRecordException`). Nothing of the append was written.
    #[error(
        "compacted topic {topic}-{partition} cannot accept a record without a key (record {index} of the append)"
    )]
    KeyRequired {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The position of the first keyless record in the append, from 0.
        index: usize,
    },
    /// A producer appended outside its transaction while one is open in the partition, or a
    /// transaction operation came in the wrong state (Kafka's `InvalidTxnStateException`).
    #[error(
        "invalid transaction state for producer {producer_id} on {topic}-{partition}: {reason}"
    )]
    InvalidTxnState {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The producer id.
        producer_id: i64,
        /// What was wrong.
        reason: String,
    },
    /// A transaction marker came from a coordinator older than one whose marker the partition
    /// already holds (Kafka's `TransactionCoordinatorFencedException`).
    #[error(
        "transaction marker for producer {producer_id} on {topic}-{partition} has coordinator epoch {coordinator_epoch}, below {known}"
    )]
    CoordinatorFenced {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The producer id.
        producer_id: i64,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The highest coordinator epoch the partition has seen for this producer.
        known: i32,
    },
    /// A Kafka cluster call failed (feature `kafka`): after the retries Kafka's clients make
    /// for timeouts and unreachable brokers.
    #[error("Kafka cluster: {op}: {kind}: {message}")]
    Cluster {
        /// What was being done.
        op: &'static str,
        /// What kind of failure.
        kind: ClusterErrorKind,
        /// The client's message.
        message: String,
    },
    /// A topic has another partition count in the cluster than in the store: a mirror would
    /// not keep records in their partitions.
    #[error("topic {topic:?} has {local} partitions in the store but {cluster} in the cluster")]
    PartitionCountMismatch {
        /// The topic.
        topic: String,
        /// Its partitions in the store.
        local: u32,
        /// Its partitions in the cluster.
        cluster: u32,
    },
    /// The cluster no longer continues a replica (see `topiclog::replicate`): the topic was
    /// created again, its log lost records the replica holds or no longer holds the replica's
    /// last batch, or its log start is past the replica's end. Nothing was appended.
    #[error("replica of {topic}{}: {reason}", partition.map(|p| format!("-{p}")).unwrap_or_default())]
    ReplicationDiverged {
        /// The topic.
        topic: String,
        /// The partition, when one partition diverged.
        partition: Option<u32>,
        /// What does not match.
        reason: String,
    },
    /// A cluster partition does not continue what the mirror sent to it: another writer, a
    /// re-created topic, another source store, or records lost.
    #[error("mirror of {topic}-{partition}: {reason}")]
    MirrorDiverged {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What does not match.
        reason: String,
    },
}

/// The kinds of [`Error::Cluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterErrorKind {
    /// No answer in time.
    Timeout,
    /// No broker could be reached.
    Connection,
    /// The cluster does not know the topic or partition.
    UnknownTopic,
    /// The broker answered with this Kafka error code.
    Broker(i32),
    /// The client refused (a bad property, a local failure).
    Client,
}

impl fmt::Display for ClusterErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterErrorKind::Timeout => f.write_str("timed out"),
            ClusterErrorKind::Connection => f.write_str("no broker reachable"),
            ClusterErrorKind::UnknownTopic => f.write_str("unknown topic or partition"),
            ClusterErrorKind::Broker(code) => write!(f, "broker error {code}"),
            ClusterErrorKind::Client => f.write_str("client error"),
        }
    }
}

impl Error {
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, position: u64, kind: Corruption) -> Self {
        Error::Corrupt {
            path: path.into(),
            position,
            kind,
        }
    }
}

/// What is wrong with data found corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A batch fails to decode or its CRC does not match. The error's own position is relative
    /// to the batch; [`Error::Corrupt`] carries the position in the file.
    #[error("{0}")]
    Batch(DecodeError),
    /// A batch's offsets do not follow the previous batch's or fall outside its segment.
    #[error(
        "batch offsets {base_offset}..={last_offset} out of order (expected at least {expected_at_least})"
    )]
    OffsetOutOfOrder {
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
        /// The smallest base offset it could have.
        expected_at_least: i64,
    },
    /// A batch's offsets reach past what its segment holds (a base offset field changed: it is
    /// outside the CRC).
    #[error(
        "batch offsets {base_offset}..={last_offset} reach past the segment's end at {next_offset}"
    )]
    OffsetBeyondSegment {
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
        /// The segment's next offset.
        next_offset: i64,
    },
    /// A batch's offsets cannot be expressed relative to its segment's base (more than
    /// `i32::MAX` apart).
    #[error("batch last offset {last_offset} overflows segment base {segment_base}")]
    RelativeOffsetOverflow {
        /// The segment's base offset.
        segment_base: i64,
        /// The batch's last offset.
        last_offset: i64,
    },
    /// A segment recorded as fsynced ends before its recorded length or offsets.
    #[error("flushed data missing: the segment was fsynced at {flushed_size} bytes")]
    FlushedDataMissing {
        /// The segment's length when it was fsynced.
        flushed_size: u64,
    },
    /// A segment no longer matches what an fsync made durable: no valid batch ends at the
    /// recorded durable length before the recorded offset.
    #[error(
        "durable data changed: a batch ending at byte {flushed_size} before offset {next_offset} was fsynced"
    )]
    FlushedDataChanged {
        /// The segment's durable length when it was recorded.
        flushed_size: u64,
        /// The offset after the last durable batch.
        next_offset: i64,
    },
    /// The log-start checkpoint is missing, though topiclog wrote one before: records below
    /// the log start it held would come back if the log started at its first segment.
    #[error("log start checkpoint missing; the log started at or above {last_known}")]
    LogStartMissing {
        /// The log start offset the recovery checkpoint last recorded.
        last_known: i64,
    },
    /// A segment the recovery checkpoint or the clean-shutdown marker records as fsynced,
    /// holding records above the log start, is gone (deleted or renamed).
    #[error("segment {base_offset} missing: it was fsynced holding offsets below {next_offset}")]
    SegmentMissing {
        /// Its base offset.
        base_offset: i64,
        /// The offset after its last record, as recorded.
        next_offset: i64,
    },
    /// The log-start checkpoint lies outside the log: below its first segment (records it
    /// says exist are gone) or above its end (it would hide every record).
    #[error(
        "log start {log_start} outside the log: its first segment starts at {first_base}, it ends at {log_end}"
    )]
    LogStartOutOfRange {
        /// The checkpointed log start offset.
        log_start: i64,
        /// The first segment's base offset.
        first_base: i64,
        /// The log end offset.
        log_end: i64,
    },
    /// Bytes after the end a segment had when it was fsynced (cut on recovery).
    #[error("bytes past the segment's flushed end at {flushed_size}")]
    BeyondFlushedEnd {
        /// The segment's length when it was fsynced.
        flushed_size: u64,
    },
    /// The store's topic registry does not parse; the text says which line and why.
    #[error("malformed topics file: {0}")]
    Topics(String),
    /// Bytes written after the last successful fsync before one failed: the kernel may have
    /// dropped them, so recovery cuts them.
    #[error("bytes after {synced} were never made durable: a write or fsync failed")]
    UnsyncedAfterFailedFsync {
        /// The segment's durable length.
        synced: u64,
    },
    /// A metadata file (marker or checkpoint) does not parse.
    #[error("malformed metadata: {0}")]
    Metadata(&'static str),
}

/// The filesystem operation an [`Error::Io`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Opening or creating a file.
    Open,
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// fsync / fdatasync.
    Sync,
    /// Changing a file's length.
    SetLen,
    /// Renaming.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing or creating a directory.
    Directory,
    /// Mapping a file into memory.
    Map,
    /// Setting a file's modification time.
    SetTimes,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Open => "open",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Sync => "sync",
            IoOp::SetLen => "set length of",
            IoOp::Rename => "rename",
            IoOp::Remove => "remove",
            IoOp::Directory => "directory",
            IoOp::Map => "map",
            IoOp::SetTimes => "set the modification time of",
        })
    }
}
