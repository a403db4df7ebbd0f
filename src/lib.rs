//! # topiclog
//!
//! Kafka-style commit-log storage embedded in your process: a partition is an append-only log
//! of segments, records are appended in batches and read back from any offset or found by
//! timestamp. The files are Apache Kafka's own on-disk format — RecordBatch v2 in
//! `<20-digit base offset>.log` segments with `.index` and `.timeindex` — so Kafka's tools read
//! what topiclog writes, and topiclog opens what Kafka writes.
//!
//! ```
//! use topiclog::record::{Header, Record};
//! use topiclog::Partition;
//! use topiclog::config::LogConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let log = Partition::open(dir.path(), LogConfig::default())?;
//!
//! // Append one record, or many as one batch; offsets are contiguous.
//! let headers = [Header::new(b"source", Some(b"web"))];
//! let first = log.append(Record::keyed(b"user-7", b"clicked").with_headers(&headers).with_timestamp(500))?;
//! log.append_batch(&[Record::new(b"a").with_timestamp(1_000), Record::new(b"b")])?; // b: now
//!
//! // Read from any offset; records borrow their bytes, no copy per record.
//! for record in log.read(first)? {
//!     let record = record?;
//!     println!("{} {:?}", record.offset(), record.value());
//! }
//!
//! // Find the first record at or after a timestamp (Kafka's offsetsForTimes).
//! assert_eq!(log.offset_for_timestamp(1_000)?.map(|t| t.offset), Some(1));
//!
//! log.flush()?; // durable: fsync of data, indexes and new directory entries
//! log.close()?; // clean shutdown: the next open scans nothing
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is durable when
//!
//! By default ([`LogConfig::flush_messages`](config::LogConfig::flush_messages) 1) an append returns once its records are fsynced,
//! and concurrent appends share fsyncs (group commit); readers in the process see a record only
//! once it is durable. Kafka's own default never fsyncs (it relies on replication); the same
//! policy is `flush_messages(i64::MAX)`, where an append returns with its batch in the write
//! buffer, it reaches the operating system when the buffer fills, on [`Partition::flush`], on a
//! roll, on [`Partition::close`] or on drop, and it is on disk once `flush` or `close` returns.
//! After a failed fsync the partition refuses writes ([`Error::Poisoned`]) until reopened.
//!
//! ## Recovery
//!
//! Opening after [`Partition::close`] trusts the files as the clean-shutdown marker describes
//! them and reads no segment. After any other stop, what lies above the recovery point (the
//! offset below which fsyncs made everything durable, checkpointed periodically, at roll and at
//! close) is scanned batch by batch (CRC, framing, offsets): a torn or zero-filled tail is cut
//! at the last valid batch and indexes are rebuilt. Damage at or below the recovery point, or a
//! missing log-start checkpoint, is [`Error::Corrupt`] unless [`RecoveryOptions`](config::RecoveryOptions) allow the
//! repair. [`Partition::recovery`] reports what was found and cut.
//!
//! ## Consumers and groups
//!
//! [`Store::consumer`] gives a [`Consumer`] that reads assigned partitions with
//! [`Consumer::poll`], waking as soon as an append lands (only once it is durable under the
//! default policy). With a `group.id`, [`Consumer::subscribe`] shares a topic's partitions
//! among the group's members in the process (Kafka's range, round-robin or cooperative-sticky
//! assignors), rebalancing as members join, leave or stop polling; committed offsets are
//! stored durably in the store directory. Delivery is at least once.
//!
//! ## Compression
//!
//! gzip, snappy, lz4 and zstd batches are read and written in Kafka's framing, each codec
//! behind its own cargo feature (all on by default); a topic's `compression.type` or
//! [`Partition::append_batch_compressed`] chooses the codec.
//!
//! ## Idempotent producers
//!
//! [`Store::producer`] gives a name a persisted producer id and a new epoch (fencing older
//! handles); its [`Producer`] stamps Kafka's producer id, epoch and sequence numbers into each
//! batch, so a retried append that was already written returns its original offsets instead
//! of writing twice. [`Partition::append_idempotent`] does the same for a bare partition. The
//! partitions' producer state survives reopening (Kafka's `.snapshot` files, rebuilt from the
//! batches after a crash).
//!
//! ## Errors
//!
//! Nothing panics on bad input: damaged files, bad arguments and I/O failures are [`Error`]
//! variants carrying the file, byte position and offsets involved. The pure codec in
//! [`record`] reports [`record::DecodeError`]s with the byte position in its input.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Library code returns errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod inspect;
pub mod partitioner;
pub mod record;

/// Durability testing (feature `fault-injection`, off by default):
/// [`FaultDisk`](testing::FaultDisk), an in-memory disk that keeps live and durable bytes
/// apart, fails chosen calls (short writes, `ENOSPC`, `EIO`, a halt after N bytes) and loses
/// power on request (every byte and directory entry not yet synced may go, pages out of order).
/// Open a partition on it with [`Partition::open_on_fault_disk`], arm faults, crash, reopen and
/// check what survived.
///
/// ```
/// use std::sync::Arc;
/// use topiclog::config::LogConfig;
/// use topiclog::testing::{Fault, FaultDisk, FaultKind, FaultOp};
/// use topiclog::{Error, Partition, Record};
///
/// let disk = Arc::new(FaultDisk::new());
/// let config = LogConfig::builder().segment_index_bytes(4096).build()?;
/// let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p0", config.clone())?;
/// log.append(Record::new(b"durable"))?;
///
/// // The next fsync fails: the append errs and the partition refuses writes until reopened,
/// // since the kernel may have dropped the dirty pages (Linux does).
/// disk.inject(Fault::new(FaultOp::Sync, FaultKind::Io));
/// assert!(log.append(Record::new(b"lost")).is_err());
/// assert!(matches!(log.append(Record::new(b"refused")), Err(Error::Poisoned { .. })));
/// drop(log);
///
/// let log = Partition::open_on_fault_disk(disk, "/p0", config)?;
/// assert_eq!(log.next_offset(), 1); // the failed append never happened
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "fault-injection")]
#[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
pub mod testing {
    pub use crate::disk::fault::{CrashMode, Fault, FaultDisk, FaultKind, FaultOp, MAX_FILE_BYTES};
}

mod cleaner;
pub mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
mod config_serde;
pub mod consumer;
mod crc;
mod disk;
pub mod error;
mod follow;
mod group;
pub mod layout;
mod lock;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod mirror;
pub mod partition;
mod percent;
mod properties;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod replicate;
mod sealed;
mod segment;
mod store;
mod topic;

pub use consumer::{Consumer, ConsumerGroupMetadata, ConsumerRecord};

/// The README's code, compiled with the doctests so that the tour stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use error::{Error, Result};
pub use partition::{LogRecord, OwnedHeader, OwnedRecord, Partition};
pub use record::{Header, Record};
pub use store::{OpenTransaction, Producer, Store, TransactionalProducer, TxnState};
pub use topic::Topic;
