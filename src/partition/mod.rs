//! A partition: an ordered list of segments in one directory, with offsets, appends, reads,
//! rolling, flushing and recovery.
//!
//! Appends are serialized by one writer lock. An append encodes its batch straight into the
//! active segment's write buffer and publishes the new end with a release store; the buffer goes
//! to the file with one write when it fills, on [`flush`](Partition::flush), on roll and on
//! close. Readers read below the published end without taking the writer lock, except for bytes
//! still in the buffer, which they copy under it.
//!
//! A [`Partition`] opens on its own directory (outside a store) or comes from a store's
//! [`Topic`](crate::Topic). Besides the handle, this module holds what its methods return:
//! where an append landed ([`AppendInfo`]), a [`Reader`] of records from an offset, a
//! timestamp lookup's answer ([`TimestampOffset`]), what recovery found
//! ([`RecoveryReport`]) and retention deleted ([`RetentionReport`]), and idempotent producers'
//! stamps and state ([`ProducerStamp`], [`ProducerState`]).
//!
//! ```
//! use topiclog::config::LogConfig;
//! use topiclog::{Partition, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let config = LogConfig::builder().segment_bytes(1024).build()?; // small segments: rolls
//! let log = Partition::open(dir.path(), config)?;
//! for i in 0..100u32 {
//!     let info = log.append_batch(&[Record::new(&i.to_be_bytes()).with_timestamp(i64::from(i))])?;
//!     assert_eq!(info.base_offset, i64::from(i));
//! }
//! assert!(std::fs::read_dir(dir.path())?.count() > 3); // several segments' files
//! assert_eq!(log.offset_for_timestamp(42)?.map(|t| t.offset), Some(42));
//! let values: Vec<_> = log.read(98)?.map(|r| r.map(|r| r.value().map(<[u8]>::to_vec))).collect::<Result<_, _>>()?;
//! assert_eq!(values, [Some(98u32.to_be_bytes().to_vec()), Some(99u32.to_be_bytes().to_vec())]);
//! log.close()?;
//!
//! // A clean close: the next open scans nothing.
//! let log = Partition::open(dir.path(), LogConfig::default())?;
//! assert_eq!(log.recovery().segments_scanned, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod appender;
pub(crate) mod checkpoint;
mod commit;
mod compaction;
mod ledger;
mod manifest;
mod marker;
mod poison;
mod producer_state;
mod published;
mod reader;
pub(crate) mod recovery;
mod replica;
mod retention;
#[cfg(test)]
mod tests;
mod txn;
pub(crate) mod watch;
mod writer;

pub use crate::cleaner::{CompactionReport, Dirt};
pub use crate::consumer::config::IsolationLevel;
pub(crate) use producer_state::increment_sequence;
pub use producer_state::{ProducerStamp, ProducerState, ProducerStateRecovery};
pub(crate) use published::{PUBLISHED_FILE, check as check_published};
use reader::ReadPlan;
pub use reader::{LogRecord, OwnedHeader, OwnedRecord, ReadOptions, Reader};
pub(crate) use recovery::RecoveryOptions;
pub use recovery::{
    BatchAfterCut, LogStartRebuild, MAX_REPORTED_BATCHES_AFTER_CUT, RecoveryReport, RemovedSegment,
    Truncation,
};
pub(crate) use replica::REPLICA_FILE;
pub use replica::ReplicaOf;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::LogConfig;
use crate::disk::{Disk, OsDisk, ReadOnlyDisk};
use crate::error::{Error, Result};
use crate::record::{Compression, EndTxnMarker, Record};
use crate::segment::file_name;
pub use crate::segment::txn_index::AbortedTxn;
use crate::segment::{Chunk, READ_CHUNK, Segment};
use checkpoint::RecoveryPoint;
use writer::{AppendOptions, Appended, Resume, TxnMarker, Writer};

/// Base offsets of the segments in `dir`, ascending, as every open lists them.
pub(crate) fn list_segment_bases(disk: &dyn Disk, dir: &Path) -> Result<Vec<i64>> {
    recovery::list_segments(disk, dir)
}

/// Whether the partition directory `dir` holds any of topiclog's own files (its checkpoints or
/// clean-shutdown marker): topiclog wrote it, so its store has a topic registry.
pub(crate) fn has_topiclog_files(dir: &Path) -> bool {
    [
        marker::MARKER_FILE,
        checkpoint::RECOVERY_POINT_FILE,
        checkpoint::LOG_START_FILE,
        replica::REPLICA_FILE,
    ]
    .iter()
    .any(|name| dir.join(name).exists())
}

/// The offsets an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppendInfo {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

impl AppendInfo {
    /// All the offsets, first to last.
    pub fn offsets(&self) -> std::ops::RangeInclusive<i64> {
        self.base_offset..=self.last_offset
    }
}

/// What a retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Base offsets of the segments deleted, oldest first.
    pub deleted_segments: Vec<i64>,
    /// Bytes of segment data deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

/// A record's offset and timestamp, as a timestamp lookup answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimestampOffset {
    /// The record's offset.
    pub offset: i64,
    /// Its effective timestamp.
    pub timestamp: i64,
}

/// State shared by a partition's handle, its writer and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    /// Replaced whole by [`Partition::set_config`]; readers take the `Arc`.
    config: RwLock<Arc<LogConfig>>,
    disk: Arc<dyn Disk>,
    /// Ascending by base offset; the last is the active segment.
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    commit: commit::Commit,
    next_offset: AtomicI64,
    log_start_offset: AtomicI64,
    /// The last recovery checkpoint written: its snapshot number and contents. Writes take
    /// this lock; the writer lock, when held too, is taken first.
    checkpoint: Mutex<(u64, Option<RecoveryPoint>)>,
    /// Readers waiting for appends.
    watchers: watch::Watchers,
    /// A read-only partition's bound on what it returns: the writer's published durable end
    /// while a writer is alive under the durable policy (see [`published`]), else `i64::MAX`.
    visible_end: AtomicI64,
    /// The highest end a read-only partition has made visible (`-1`: none yet): the bound
    /// never goes below it.
    exposed: AtomicI64,
    /// A writable partition's probe for followers in other processes ([`crate::follow`]).
    followers: std::sync::OnceLock<Arc<crate::follow::FollowerProbe>>,
    /// A read-only partition's registration as a follower, to ask whether a writer is alive.
    following: std::sync::OnceLock<Arc<crate::follow::Following>>,
    /// Held by a cleaning pass: one at a time (on demand or in the store's background).
    cleaning: Mutex<()>,
    /// The store's `cleaner-offset-checkpoint`, when the partition belongs to a store.
    cleaner_checkpoint: std::sync::OnceLock<PathBuf>,
    /// A read-only partition's compaction epoch when its segments were listed (see
    /// [`compaction::COMPACTION_EPOCH_FILE`]).
    compaction_epoch: std::sync::atomic::AtomicU64,
    /// The aborted transactions, for `read_committed` reads. An entry goes in before the
    /// last stable offset moves past its transaction.
    aborted: RwLock<txn::AbortedTxns>,
    /// The first offset of the oldest open transaction (`i64::MAX`: none): `read_committed`
    /// reads stop there.
    first_unstable: AtomicI64,
    /// Set when the partition is a replica of a cluster topic (its marker, read at open or
    /// written by [`Partition::make_replica`]): only replicated appends write it.
    replica: std::sync::OnceLock<ReplicaOf>,
}

impl Shared {
    /// Sets the first offset of the oldest open transaction (the writer's, under its lock).
    fn publish_first_unstable(&self, first: Option<i64>) {
        self.first_unstable
            .store(first.unwrap_or(i64::MAX), Ordering::Release);
    }

    /// The last stable offset: `read_committed` reads return records below it only.
    fn last_stable_offset(&self) -> i64 {
        self.first_unstable
            .load(Ordering::Acquire)
            .min(self.next_offset())
    }

    /// The settings in force.
    fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read())
    }

    /// Writes a recovery-checkpoint snapshot unless a newer one was written, or the file
    /// already says the same.
    fn write_recovery_point(&self, seq: u64, point: &RecoveryPoint) -> Result<()> {
        let mut last = self.checkpoint.lock();
        if seq <= last.0 || last.1.as_ref() == Some(point) {
            return Ok(());
        }
        checkpoint::write_recovery_point(&*self.disk, &self.dir, point)?;
        *last = (seq, Some(point.clone()));
        Ok(())
    }

    /// The end readers read to: for a read-only partition, bounded by what its writer
    /// published as durable.
    fn next_offset(&self) -> i64 {
        self.next_offset
            .load(Ordering::Acquire)
            .min(self.visible_end.load(Ordering::Acquire))
    }

    /// Whether followers in other processes are present now (probing at most every
    /// [`crate::follow::PROBE_EVERY`]), and whether they just appeared.
    fn followers_present(&self) -> (bool, bool) {
        self.followers
            .get()
            .map_or((false, false), |probe| probe.present())
    }

    /// [`followers_present`](Self::followers_present) at `now_ms`, the wall-clock reading the
    /// caller already took.
    #[inline]
    fn followers_present_at(&self, now_ms: i64) -> bool {
        self.followers
            .get()
            .is_some_and(|probe| probe.present_at(now_ms).0)
    }

    /// For a read-only partition: bounds reads by the writer's published durable end while a
    /// writer is alive under the durable policy; lifts the bound otherwise. The bound never
    /// moves below what was visible before: records read while no writer was alive (the files
    /// were all there was) stay readable when a restarted writer has not published yet, so a
    /// consumer's position never lies beyond the end (which would reset it).
    fn update_visible_end(&self) {
        let scanned = self.next_offset.load(Ordering::Acquire);
        let before = self.exposed.load(Ordering::Acquire);
        if scanned <= before {
            // Everything scanned is visible already: no file to read (an idle poll's case).
            return;
        }
        let bound = if self.config().is_durable() {
            published::read(&*self.disk, &self.dir)
                .filter(|&end| end < scanned)
                .filter(|_| self.following.get().is_none_or(|f| f.writer_alive()))
        } else {
            None
        };
        let visible = bound.map_or(i64::MAX, |end| end.max(before));
        self.visible_end.store(visible, Ordering::Release);
        self.exposed
            .fetch_max(visible.min(scanned), Ordering::AcqRel);
    }

    fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// The segment that holds `offset` if any does: the last one whose base is `<= offset`.
    fn segment_for(&self, offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.base_offset() <= offset);
        i.checked_sub(1).and_then(|i| segments.get(i)).cloned()
    }

    /// The segment after the one based at `base_offset`.
    fn segment_after(&self, base_offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.base_offset() <= base_offset);
        segments.get(i).cloned()
    }

    fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    /// Published bytes of `segment` from `pos`: from its file (mapped or read), or copied from
    /// the write buffer under the writer lock. Empty when `pos` is at the published end.
    fn fetch(
        &self,
        segment: &Arc<Segment>,
        held: Option<&crate::disk::File>,
        pos: u64,
        min_len: usize,
    ) -> Result<Chunk> {
        let file_size = segment.file_size();
        if pos < file_size {
            return segment.read_file_with(held, pos..file_size, min_len);
        }
        let writer = self.writer.lock();
        let file_size = segment.file_size();
        if pos < file_size {
            drop(writer);
            return segment.read_file_with(held, pos..file_size, min_len);
        }
        let tail = writer.tail_of(segment);
        let from = usize::try_from(pos - file_size).unwrap_or(usize::MAX);
        let bytes = match tail.get(from..) {
            Some(rest) => rest[..rest.len().min(min_len.max(READ_CHUNK / 4))].to_vec(),
            None => Vec::new(),
        };
        Ok(Chunk::owned(bytes, pos))
    }
}

/// Refuses a negative producer id, epoch or sequence.
fn check_stamp(stamp: ProducerStamp) -> Result<()> {
    if stamp.producer_id < 0 || stamp.epoch < 0 || stamp.base_sequence < 0 {
        return Err(Error::InvalidProducerStamp {
            producer_id: stamp.producer_id,
            epoch: stamp.epoch,
            base_sequence: stamp.base_sequence,
        });
    }
    Ok(())
}

/// One partition log in a directory: Kafka's segment files, appended to and read from.
///
/// Appends take `&self` and may come from many threads; they are serialized inside. Readers
/// run concurrently with appends and see only whole batches. The handle is `Send + Sync`; share
/// it with an `Arc`.
///
/// ```
/// use topiclog::{Partition, record::Record};
/// use topiclog::config::LogConfig;
///
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path(), LogConfig::default())?;
/// let first = log.append(Record::keyed(b"user-1", b"signed up"))?;
/// log.append_batch(&[Record::new(b"a"), Record::new(b"b")])?;
///
/// let values: Vec<Vec<u8>> = log
///     .read(first)?
///     .map(|r| r.map(|r| r.value().unwrap_or_default().to_vec()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(values, [b"signed up".to_vec(), b"a".to_vec(), b"b".to_vec()]);
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Partition {
    shared: Arc<Shared>,
    recovery: RecoveryReport,
    read_only: bool,
    /// The writer lock of a partition opened on its own (a store holds its own), released at
    /// [`close`](Partition::close) or drop.
    lock: Mutex<Option<crate::lock::DirLock>>,
}

impl Partition {
    /// Opens the partition in `dir`, creating the directory if it is missing, and recovers it:
    /// after a clean [`close`](Partition::close) nothing is rescanned; otherwise every segment
    /// not known to be flushed is scanned and a torn tail is cut (see
    /// [`recovery`](Partition::recovery)).
    ///
    /// # Errors
    /// [`Error::Io`] for filesystem failures, [`Error::Corrupt`] when data recorded as flushed
    /// fails its checks.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Partition> {
        Partition::open_with(dir, config, RecoveryOptions::default())
    }

    /// [`open`](Partition::open), with what recovery may repair beyond a torn tail: cut
    /// damaged flushed data, rebuild a missing log-start checkpoint (see [`RecoveryOptions`]).
    ///
    /// # Errors
    /// As [`open`](Partition::open), except for what `options` allows to be repaired.
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: LogConfig,
        options: RecoveryOptions,
    ) -> Result<Partition> {
        let dir = dir.as_ref();
        let disk: Arc<dyn Disk> = Arc::new(OsDisk);
        crate::disk::create_dir_durably(&*disk, dir)?;
        let lock = crate::lock::DirLock::for_partition(dir, options.lock_wait())?;
        let partition = Partition::open_on(disk, dir, config, options)?;
        *partition.lock.lock() = Some(lock);
        partition.set_follower_probe(Arc::new(crate::follow::FollowerProbe::new(dir, false)));
        Ok(partition)
    }

    /// Opens the partition in `dir` for reading only, beside a process that may be writing it.
    /// Nothing is written or repaired and no file is mapped (the writer may shorten the active
    /// segment's files): segments the clean-shutdown marker vouches for are trusted, the others
    /// are scanned and only their valid prefix is served; a torn tail is reported in
    /// [`recovery`](Partition::recovery) and left alone. Appends, flushes and retention return
    /// [`Error::ReadOnly`]. Reads see the log as it was when opened.
    pub fn open_read_only(dir: impl AsRef<Path>, config: LogConfig) -> Result<Partition> {
        let dir = dir.as_ref();
        let following = Arc::new(crate::follow::Following::join(dir, false));
        Partition::open_following(dir, config, Some(following))
    }

    /// A read-only open as a follower registered by the caller (a store registers once).
    pub(crate) fn open_following(
        dir: &Path,
        config: LogConfig,
        following: Option<Arc<crate::follow::Following>>,
    ) -> Result<Partition> {
        let options = RecoveryOptions::default();
        let partition = Partition::open_on(Arc::new(ReadOnlyDisk), dir, config, options)?;
        if let Some(following) = following {
            let _ = partition.shared.following.set(following);
        }
        partition.shared.update_visible_end();
        Ok(partition)
    }

    /// Gives a writable partition the probe for followers of its store (or its own).
    pub(crate) fn set_follower_probe(&self, probe: Arc<crate::follow::FollowerProbe>) {
        let _ = self.shared.followers.set(probe);
    }

    /// Makes what was appended visible to followers in other processes that just appeared:
    /// writes lazily buffered batches to the file and publishes the durable end. A store's
    /// background thread calls it when its probe finds new followers.
    pub(crate) fn serve_followers(&self) {
        if self.read_only {
            return;
        }
        let mut writer = self.shared.writer.lock();
        writer.serve_followers(&self.shared);
    }

    /// Opens (and recovers) the partition in `dir` on a [`FaultDisk`](crate::testing::FaultDisk)
    /// instead of the real filesystem, as [`open`](Partition::open) does: for durability tests
    /// that inject I/O failures and power losses (feature `fault-injection`).
    ///
    /// # Errors
    /// As [`open`](Partition::open); the disk's injected failures are [`Error::Io`].
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn open_on_fault_disk(
        disk: Arc<crate::disk::fault::FaultDisk>,
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<Partition> {
        Partition::open_on(disk, dir.as_ref(), config, RecoveryOptions::default())
    }

    /// [`open_on_fault_disk`](Partition::open_on_fault_disk) with [`RecoveryOptions`].
    ///
    /// # Errors
    /// As [`open_with`](Partition::open_with).
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn open_on_fault_disk_with(
        disk: Arc<crate::disk::fault::FaultDisk>,
        dir: impl AsRef<Path>,
        config: LogConfig,
        options: RecoveryOptions,
    ) -> Result<Partition> {
        Partition::open_on(disk, dir.as_ref(), config, options)
    }

    pub(crate) fn open_on(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        options: RecoveryOptions,
    ) -> Result<Partition> {
        recovery::retry_read_only(&*disk, dir, || {
            Partition::open_once(Arc::clone(&disk), dir, config.clone(), options)
        })
    }

    /// One attempt of [`open_on`](Partition::open_on).
    fn open_once(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        options: RecoveryOptions,
    ) -> Result<Partition> {
        let read_only = disk.is_read_only();
        // Before the listing: a compaction after it raises the epoch, and a refresh lists again.
        let epoch = match read_only {
            true => compaction::settled_epoch(&*disk, dir),
            false => 0,
        };
        // Before anything is repaired: a replica's files are the cluster's.
        let replica_of = replica::read(&*disk, dir)?;
        let opened = recovery::open(&disk, dir, &config, options).inspect_err(|e| {
            if matches!(e, Error::Corrupt { .. }) {
                log::error!("cannot open partition {}: {e}", dir.display());
            }
        })?;
        let log_start = opened.log_start_offset;
        let active = opened
            .segments
            .last()
            .cloned()
            .ok_or(Error::Internal("recovery produced no segment"))?;
        let next_offset = active.next_offset();
        let resume = Resume {
            marker_present: opened.marker_present,
            flushed: opened.flushed,
            unsynced: opened.unsynced,
            checkpoint_stale: opened.checkpoint_stale,
            durable_active: opened.durable_active,
            log_start_checkpointed: opened.log_start_checkpointed,
        };
        let poison = Arc::new(poison::Poison::default());
        let config = Arc::new(config);
        let mut writer = Writer::new(&config, active, opened.active, resume, poison.clone());
        let mut report = opened.report;
        // A read-only partition loads it too (writing nothing): it follows its writer's
        // transactions, for `read_committed` reads in other processes.
        let bounds = producer_state::LogBounds {
            log_start,
            log_end: next_offset,
            clean: report.clean_shutdown,
            expiry: producer_state::Expiry::now(&config),
        };
        // After the writer mapped the active segment, so replaying it reads only headers.
        let loaded = producer_state::load(&*disk, dir, &opened.segments, bounds)?;
        report.producer_state = loaded.report;
        let first_unstable = loaded.map.first_unstable_offset();
        let mut aborted =
            txn::load_files(&*disk, dir, &opened.segments, &opened.txn_index_recorded)?;
        let replay = report
            .producer_state
            .replayed_from
            .map(|from| (from, loaded.aborted));
        writer.set_producers(loaded.map, next_offset);
        report.txn_indexes_damaged = aborted.damaged.clone();
        report.txn_indexes_rewritten =
            txn::reconcile(&*disk, &opened.segments, &mut aborted, replay)?;
        if !read_only {
            let bases: Vec<i64> = report
                .txn_indexes_rewritten
                .iter()
                .filter_map(|p| p.file_name()?.to_str().and_then(file_name::parse))
                .map(|p| p.base_offset)
                .collect();
            writer.txn_indexes_rewritten(&*disk, dir, &bases)?;
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            disk,
            segments: RwLock::new(opened.segments),
            writer: Mutex::new(writer),
            commit: commit::Commit::new(poison),
            next_offset: AtomicI64::new(next_offset),
            visible_end: AtomicI64::new(i64::MAX),
            exposed: AtomicI64::new(-1),
            followers: std::sync::OnceLock::new(),
            following: std::sync::OnceLock::new(),
            cleaning: Mutex::new(()),
            cleaner_checkpoint: std::sync::OnceLock::new(),
            compaction_epoch: std::sync::atomic::AtomicU64::new(epoch),
            aborted: RwLock::new(aborted.aborted),
            first_unstable: AtomicI64::new(first_unstable.unwrap_or(i64::MAX)),
            log_start_offset: AtomicI64::new(log_start),
            checkpoint: Mutex::new((0, opened.recovery_point)),
            watchers: watch::Watchers::default(),
            replica: std::sync::OnceLock::new(),
        });
        if let Some(of) = replica_of {
            let _ = shared.replica.set(of);
        }
        recovery::log_opened(dir, &report, read_only, log_start..next_offset);
        Ok(Partition {
            shared,
            recovery: report,
            read_only,
            lock: Mutex::new(None),
        })
    }

    /// Appends one record and returns its offset.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] (nothing is written), [`Error::Closed`], [`Error::Io`].
    pub fn append(&self, record: Record<'_>) -> Result<i64> {
        self.append_batch(std::slice::from_ref(&record))
            .map(|info| info.base_offset)
    }

    /// Appends records as one batch with contiguous offsets, all or nothing.
    ///
    /// Records without a timestamp take the clock's time; under LogAppendTime every record
    /// reads back with the append time. The append is in memory and the OS cache when this
    /// returns, not on disk: [`flush`](Partition::flush) makes it durable.
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] for no records; [`Error::RecordTooLarge`] when the batch
    /// exceeds `max.message.bytes` or `segment.bytes` (nothing is written); [`Error::Closed`];
    /// [`Error::Io`].
    #[inline]
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<AppendInfo> {
        self.append_with(records, None, Compression::None, false)
            .map(|(info, _)| info)
    }

    /// Appends records as one batch compressed with `codec`, in Kafka's framing (the batch
    /// header in clear, the CRC over the compressed records), when the topic's
    /// `compression.type` is `producer` (the default); any other `compression.type` wins over
    /// `codec`, as a broker recompresses to its topic's type.
    ///
    /// ```
    /// use topiclog::{Partition, record::{Compression, Record}};
    /// use topiclog::config::LogConfig;
    ///
    /// let dir = tempfile::tempdir()?;
    /// # // Builds without the codec's cargo feature skip the example.
    /// # if !topiclog::record::is_supported(Compression::Zstd) { return Ok(()); }
    /// let log = Partition::open(dir.path(), LogConfig::default())?;
    /// let json = br#"{"customer":"c-42","items":[1,2,3],"total":99.5}"#;
    /// log.append_batch_compressed(&[Record::new(json), Record::new(json)], Compression::Zstd)?;
    /// assert_eq!(log.read(0)?.count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`append_batch`](Partition::append_batch); [`Error::InvalidConfig`] when this build
    /// does not include the codec (its cargo feature is off).
    pub fn append_batch_compressed(
        &self,
        records: &[Record<'_>],
        codec: Compression,
    ) -> Result<AppendInfo> {
        self.append_with(records, None, codec, false)
            .map(|(info, _)| info)
    }

    /// Appends records as one batch of an idempotent producer (Kafka's `enable.idempotence`),
    /// stamped with its id, epoch and first sequence number, as a broker appends a producer's
    /// batch:
    ///
    /// * a retry of one of the producer's last 5 batches (same epoch, same first and last
    ///   sequence) writes nothing and returns the original offsets, once that batch is durable
    ///   (with `flush.messages` 1);
    /// * an epoch below the highest seen for the id is refused: [`Error::ProducerFenced`];
    /// * otherwise the first sequence must follow the producer's last (wrapping from
    ///   `i32::MAX` to 0), or be 0 for a new epoch: [`Error::OutOfOrderSequence`] says which
    ///   was expected. A producer the partition does not know (new, or expired after
    ///   `producer.id.expiration.ms`) may start at any sequence.
    ///
    /// The producer state survives reopening (see [`ProducerStateRecovery`]). A
    /// [`Producer`](crate::Producer) from a [`Store`](crate::Store) keeps ids, epochs and
    /// sequences for you.
    ///
    /// ```
    /// use topiclog::{Partition, record::Record};
    /// use topiclog::config::LogConfig;
    /// use topiclog::partition::ProducerStamp;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path(), LogConfig::default())?;
    /// let stamp = ProducerStamp { producer_id: 7, epoch: 0, base_sequence: 0 };
    /// let first = log.append_idempotent(stamp, &[Record::new(b"a"), Record::new(b"b")])?;
    /// // A retry (the acknowledgement was lost, say) writes nothing: same offsets.
    /// assert_eq!(log.append_idempotent(stamp, &[Record::new(b"a"), Record::new(b"b")])?, first);
    /// assert_eq!(log.next_offset(), 2);
    /// let next = ProducerStamp { base_sequence: 2, ..stamp };
    /// assert_eq!(log.append_idempotent(next, &[Record::new(b"c")])?.base_offset, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`append_batch`](Partition::append_batch), plus [`Error::ProducerFenced`] (with an
    /// empty producer name: a partition knows ids only), [`Error::OutOfOrderSequence`], and
    /// [`Error::InvalidProducerStamp`] for a negative id, epoch or sequence. After an error the
    /// same call may be retried: a batch that was written is recognized as a duplicate.
    pub fn append_idempotent(
        &self,
        stamp: ProducerStamp,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        self.append_stamped(stamp, records, Compression::None)
            .map(|(info, _)| info)
    }

    /// [`append_idempotent`](Partition::append_idempotent) compressed with `codec` (as
    /// [`append_batch_compressed`](Partition::append_batch_compressed) compresses), also saying
    /// whether the batch was a duplicate (nothing written).
    pub(crate) fn append_stamped(
        &self,
        stamp: ProducerStamp,
        records: &[Record<'_>],
        codec: Compression,
    ) -> Result<(AppendInfo, bool)> {
        check_stamp(stamp)?;
        self.append_with(records, Some(stamp), codec, false)
    }

    /// The idempotent producers this partition knows, by id (Kafka's `DescribeProducers`).
    /// A read-only partition knows them as of its last refresh.
    pub fn active_producers(&self) -> Vec<ProducerState> {
        self.shared.writer.lock().producers().producers()
    }

    /// The highest producer id this partition knows.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.shared.writer.lock().producers().max_producer_id()
    }

    /// The highest coordinator epoch of the markers its producers last wrote (-1 if none).
    pub(crate) fn max_coordinator_epoch(&self) -> i32 {
        self.shared
            .writer
            .lock()
            .producers()
            .max_coordinator_epoch()
    }

    /// Appends `records` as one batch, stamped if `stamp` is given (and a transaction's if
    /// `transactional`); says whether it was a duplicate of an idempotent batch already
    /// appended (nothing written).
    #[inline]
    fn append_with(
        &self,
        records: &[Record<'_>],
        stamp: Option<ProducerStamp>,
        requested: Compression,
        transactional: bool,
    ) -> Result<(AppendInfo, bool)> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.append_op(|writer, shared, wall_ms| {
            writer.append(
                shared,
                records,
                AppendOptions {
                    stamp,
                    codec: requested,
                    wall_ms,
                    transactional,
                },
            )
        })
    }

    /// Runs one append `op` on the writer and sees it through its group commit; says whether
    /// it was a duplicate of an idempotent batch already appended (nothing written).
    #[inline]
    fn append_op(
        &self,
        op: impl Fn(&mut Writer, &Shared, i64) -> Result<Appended>,
    ) -> Result<(AppendInfo, bool)> {
        self.check_owner_write()?;
        // The one clock reading of this append, outside the writer lock: the records' time
        // (with the default clock) and the follower probe's (see `config::wall_ms`).
        let wall_ms = crate::config::wall_ms();
        let shared = &*self.shared;
        loop {
            let appended = op(&mut shared.writer.lock(), shared, wall_ms);
            match appended? {
                Appended::Done(info) => return Ok((info, false)),
                Appended::Commit(info, seq) => {
                    shared.commit.accepted(seq);
                    shared.commit_through(seq)?;
                    return Ok((info, false));
                }
                Appended::CommitFirst(seq) => shared.commit_through(seq)?,
                Appended::Duplicate(info, seq) => {
                    shared.commit_through(seq)?;
                    return Ok((info, true));
                }
            }
        }
    }

    /// Appends a transactional producer's batch: as
    /// [`append_idempotent`](Partition::append_idempotent), with Kafka's transactional bit
    /// set. The producer's first transactional batch opens its transaction in this partition,
    /// which holds the [last stable offset](Partition::last_stable_offset) at its first offset
    /// until [`write_txn_marker`](Partition::write_txn_marker) closes it; `read_committed`
    /// readers see none of it before the COMMIT, and nothing of it after an ABORT.
    ///
    /// This is the partition's half of a transaction (what a Kafka broker does for a
    /// transactional produce request); a store's transactional producer drives it across
    /// partitions, with a coordinator that makes commits atomic and survives crashes.
    ///
    /// ```
    /// use topiclog::{Partition, Record};
    /// use topiclog::partition::ProducerStamp;
    /// use topiclog::config::LogConfig;
    /// use topiclog::partition::{IsolationLevel, ReadOptions};
    /// use topiclog::record::{EndTxnMarker, TxnResult};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path(), LogConfig::default())?;
    /// let stamp = ProducerStamp { producer_id: 7, epoch: 0, base_sequence: 0 };
    /// log.append_transactional(stamp, &[Record::new(b"a"), Record::new(b"b")])?;
    /// assert_eq!(log.last_stable_offset(), 0); // open: nothing is stable yet
    /// let abort = EndTxnMarker { result: TxnResult::Abort, coordinator_epoch: 0 };
    /// log.write_txn_marker(7, 0, abort)?;
    /// assert_eq!(log.last_stable_offset(), 3);
    /// let committed = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    /// assert_eq!(log.read_with(0, committed)?.count(), 0); // aborted
    /// assert_eq!(log.read(0)?.count(), 2); // read_uncommitted sees them
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`append_idempotent`](Partition::append_idempotent).
    pub fn append_transactional(
        &self,
        stamp: ProducerStamp,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        self.append_transactional_with(stamp, records, Compression::None)
            .map(|(info, _)| info)
    }

    /// [`append_transactional`](Partition::append_transactional) compressed with `codec`,
    /// also saying whether the batch was a duplicate (nothing written).
    pub(crate) fn append_transactional_with(
        &self,
        stamp: ProducerStamp,
        records: &[Record<'_>],
        codec: Compression,
    ) -> Result<(AppendInfo, bool)> {
        check_stamp(stamp)?;
        self.append_with(records, Some(stamp), codec, true)
    }

    /// Writes a COMMIT or ABORT marker closing `producer_id`'s transaction in this partition
    /// (Kafka's `WriteTxnMarkers`), and returns its offset. A marker at an epoch above the
    /// producer's raises it (a fencing abort); one at a lower epoch is refused with
    /// [`Error::ProducerFenced`], and one from a coordinator epoch below the last seen with
    /// [`Error::CoordinatorFenced`]. A marker for a producer with no open transaction here is
    /// written all the same, as Kafka does (an empty transaction).
    ///
    /// # Errors
    /// Those above, [`Error::InvalidProducerStamp`] for a negative id or epoch, and as
    /// [`append_batch`](Partition::append_batch).
    pub fn write_txn_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
    ) -> Result<i64> {
        check_stamp(ProducerStamp {
            producer_id,
            epoch,
            base_sequence: 0,
        })?;
        let marker = TxnMarker {
            producer_id,
            epoch,
            marker,
        };
        self.append_op(|writer, shared, wall_ms| writer.append_marker(shared, marker, wall_ms))
            .map(|(info, _)| info.base_offset)
    }

    /// The last stable offset (Kafka's LSO): the first offset of the oldest transaction still
    /// open in this partition, or the log end when none is. `read_committed` reads return
    /// records below it only.
    pub fn last_stable_offset(&self) -> i64 {
        self.shared.last_stable_offset()
    }

    /// The transactions open in this partition, as (producer id, first offset), oldest first.
    /// A read-only partition knows them as of its last refresh.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.shared.writer.lock().producers().open_transactions()
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.shared
            .writer
            .lock()
            .producers()
            .open_transactions()
            .iter()
            .any(|&(pid, _)| pid == producer_id)
    }

    /// What this partition knows of `producer_id` (`None` if nothing).
    pub fn producer(&self, producer_id: i64) -> Option<ProducerState> {
        self.active_producers()
            .into_iter()
            .find(|p| p.producer_id == producer_id)
    }

    /// The aborted transactions whose ABORT markers lie in `markers` (the `.txnindex`
    /// entries), in marker order.
    pub fn aborted_transactions(&self, markers: std::ops::Range<i64>) -> Vec<AbortedTxn> {
        self.shared.aborted.read().in_range(markers)
    }

    /// Makes every append accepted so far durable (a group commit; a no-op when nothing waits).
    fn commit_all(&self) -> Result<()> {
        let seq = self.shared.writer.lock().appended_seq();
        self.shared.commit_through(seq)
    }

    /// Runs `f` on the writer with no batch waiting for a commit, so nothing it does (a roll,
    /// a close) can seal a segment before its batches are published. A failure poisons the
    /// partition.
    fn with_committed_writer<R>(&self, f: impl Fn(&mut Writer, &Shared) -> Result<R>) -> Result<R> {
        loop {
            self.commit_all()?;
            let mut writer = self.shared.writer.lock();
            if writer.has_pending() {
                continue;
            }
            let result = f(&mut writer, &self.shared);
            if let Err(e @ (Error::Io { .. } | Error::Corrupt { .. })) = &result {
                writer.poison(e);
                drop(writer);
                self.shared.wake_committers();
            }
            return result;
        }
    }

    /// Reads records from offset `from` to the current end of the log, across segments.
    ///
    /// `from` may be any offset in `[log_start_offset, next_offset]`; an offset in a gap
    /// starts at the next record. Control records (transaction markers) are skipped.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] outside that range; the reader's items report damaged data.
    pub fn read(&self, from: i64) -> Result<Reader> {
        self.read_with(from, ReadOptions::new())
    }

    /// Like [`read`](Partition::read), but stops before the batch that would take the bytes
    /// read past `max_bytes`. The first batch is always returned whole, however large, so a
    /// reader always makes progress (Kafka's fetch rule).
    pub fn read_bounded(&self, from: i64, max_bytes: usize) -> Result<Reader> {
        self.read_with(from, ReadOptions::new().max_bytes(max_bytes))
    }

    /// Like [`read`](Partition::read), as `options` say: a byte bound (see
    /// [`read_bounded`](Partition::read_bounded)) and the isolation level. Under
    /// [`IsolationLevel::ReadCommitted`] the reader returns records below the
    /// [last stable offset](Partition::last_stable_offset) only (it waits there, as at the log
    /// end, while a transaction is open) and none of an aborted transaction.
    ///
    /// # Errors
    /// As [`read`](Partition::read).
    pub fn read_with(&self, from: i64, options: ReadOptions) -> Result<Reader> {
        let max_bytes = options.max_bytes_bound().map(|n| n as u64);
        let (log_start, log_end) = (self.log_start_offset(), self.next_offset());
        if from < log_start || from > log_end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                log_start,
                log_end,
            });
        }
        let segment = self
            .shared
            .segment_for(from)
            .ok_or(Error::OffsetOutOfRange {
                requested: from,
                log_start,
                log_end,
            })?;
        let floor = segment.next_offset();
        let plan = ReadPlan {
            seek: from,
            from,
            budget: max_bytes,
            min_timestamp: i64::MIN,
            include_control: false,
            committed: options.isolation_level_of() == IsolationLevel::ReadCommitted,
        };
        match Reader::new(Arc::clone(&self.shared), segment, plan) {
            // A writer in another process deleted the segment (retention) since it was listed.
            Err(Error::Io { source, .. })
                if self.read_only && source.kind() == std::io::ErrorKind::NotFound =>
            {
                let log_start = self.log_start_offset().max(floor);
                Err(Error::OffsetOutOfRange {
                    requested: from,
                    log_start,
                    log_end: self.next_offset().max(log_start),
                })
            }
            reader => reader,
        }
    }

    /// The first record whose timestamp is `>= timestamp`: Kafka's ListOffsets by time
    /// (`offsetsForTimes`). `None` when no record is that late. Use
    /// [`log_start_offset`](Partition::log_start_offset) and
    /// [`next_offset`](Partition::next_offset) for Kafka's EARLIEST and LATEST.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let log_start = self.log_start_offset();
        let segments = self.shared.segments();
        let Some(segment) = segments
            .into_iter()
            .find(|s| s.max_timestamp() >= timestamp)
        else {
            return Ok(None);
        };
        // The time index names the batch to start from; the record sought may come earlier in
        // that batch than the offset it names, so only records below the log start are skipped.
        let seek = segment.offset_for_time_lookup(timestamp)?.max(log_start);
        let plan = ReadPlan {
            seek,
            from: log_start,
            budget: None,
            min_timestamp: timestamp,
            include_control: true,
            committed: false,
        };
        let reader = Reader::new(Arc::clone(&self.shared), segment, plan)?;
        for record in reader {
            let record = record?;
            if record.timestamp() >= timestamp && record.offset() >= log_start {
                return Ok(Some(TimestampOffset {
                    offset: record.offset(),
                    timestamp: record.timestamp(),
                }));
            }
        }
        Ok(None)
    }

    /// Kafka's DeleteRecords: makes `before` the log start offset, so records below it can no
    /// longer be read, and deletes the segments wholly below it (a segment holding `before`
    /// stays, its earlier records hidden). The new start is persisted before any file goes and
    /// survives reopen. Returns the log start offset, which never moves back. A call that
    /// does not raise the start changes nothing: segments an earlier call left below it (it was
    /// then active) go with the next call that raises it, or with
    /// [`enforce_retention`](Partition::enforce_retention), as in Kafka.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when `before` is negative or past the log end offset.
    pub fn delete_records(&self, before: i64) -> Result<i64> {
        self.check_owner_write()?;
        self.shared
            .writer
            .lock()
            .delete_records(&self.shared, before)
    }

    /// Applies `retention.ms` and `retention.bytes` (and deletes segments wholly below the log
    /// start offset): whole segments only, oldest first. When every segment has expired, the
    /// active one is rolled first, so the log is empty but keeps its next offset. Readers inside
    /// a deleted segment read it to its end; its files go when the last of them lets go.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        self.check_owner_write()?;
        self.with_committed_writer(|w, shared| w.enforce_retention(shared))
    }

    /// The first offset of the log.
    pub fn log_start_offset(&self) -> i64 {
        self.shared.log_start_offset()
    }

    /// The offset the next append will get (Kafka's log end offset).
    pub fn next_offset(&self) -> i64 {
        self.shared.next_offset()
    }

    /// Writes buffered appends to the files and fsyncs every file written since the last flush
    /// (segment data, sealed segments' indexes, producer snapshots) and the directory entries
    /// of new segments. When it returns, every append that returned before it survives a crash
    /// or power loss. (The active segment's indexes are caches that an unclean open rebuilds
    /// from its data; [`close`](Partition::close) fsyncs them.)
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.with_committed_writer(|w, shared| w.flush(shared))
    }

    /// Replaces the partition's settings while it is open (Kafka's dynamic topic configs):
    /// retention, roll, size limits, compression, timestamps and flushing apply from the next
    /// append or retention run; `segment.index.bytes` and `index.interval.bytes` from the next
    /// index entry. Changing `flush.messages` between 1 (durable) and more flushes first, so
    /// nothing appended under one policy waits under the other. Nothing is persisted here:
    /// [`Store::alter_topic_config`](crate::Store::alter_topic_config) records a topic's
    /// settings in its registry.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a read-only partition; what [`flush`](Partition::flush) returns.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let config = Arc::new(config);
        self.with_committed_writer(|w, shared| {
            if w.is_durable() != config.is_durable() {
                w.flush(shared)?;
            }
            w.apply_config(&config);
            *shared.config.write() = Arc::clone(&config);
            Ok(())
        })
    }

    /// Flushes, finishes the active segment's indexes, and writes the clean-shutdown marker so
    /// the next open trusts the files without scanning them. Appends after this fail with
    /// [`Error::Closed`]; reads still work. Closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.with_committed_writer(|w, shared| w.close(shared))?;
        // Closed for writing: another writer may open the directory at once.
        self.lock.lock().take();
        Ok(())
    }

    /// Writes the recovery checkpoint (Kafka's `recovery-point-offset-checkpoint`) if the
    /// recovery point moved since it was last written: how much of the log fsyncs have made
    /// durable, so an unclean open scans only what lies above it and treats damage below it
    /// as corruption. Cheap when nothing changed; never on the append path. A
    /// [`Store`](crate::Store) calls it every `log.flush.offset.checkpoint.interval.ms`; it is
    /// also written at roll (once the sealed segment is fsynced) and at [`close`](Partition::close).
    pub fn checkpoint_recovery_point(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let snapshot = self
            .shared
            .writer
            .lock()
            .periodic_recovery_point(&self.shared);
        match snapshot {
            Some((seq, point)) => self.shared.write_recovery_point(seq, &point),
            None => Ok(()),
        }
    }

    /// Fires `signal` at every publish from now on (a consumer waiting in `poll`).
    pub(crate) fn watch(&self, signal: &Arc<watch::Signal>) {
        self.shared.watch(signal);
    }

    /// Stops firing `signal`.
    pub(crate) fn unwatch(&self, signal: &Arc<watch::Signal>) {
        self.shared.unwatch(signal);
    }

    /// What opening the partition found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// For a read-only partition, picks up what a writer appended since the open or the last
    /// refresh: new whole batches at the end of the active segment, and segments it rolled
    /// to. Returns whether anything new appeared. Readers at the end of the log see the new
    /// records on their next call. The log start offset is re-read too. A writable partition
    /// has nothing to pick up: `Ok(false)`.
    pub fn refresh(&self) -> Result<bool> {
        if !self.read_only {
            return Ok(false);
        }
        let resynced = self.shared.resync_if_compacted()?;
        // Refreshes exclude each other through the writer lock a read-only partition never
        // writes under.
        let mut serial = self.shared.writer.lock();
        let shared = &self.shared;
        let interval = shared.config().index_interval_bytes();
        let mut grew = resynced;
        // Segments that vanished between a listing and their open: deleted by the writer's
        // retention, so listed again; a bound keeps a strange directory from looping forever.
        let mut vanished = 0;
        loop {
            let Some(active) = shared.segments.read().last().cloned() else {
                return Ok(grew);
            };
            let later = || -> Result<Vec<i64>> {
                Ok(recovery::list_segments(&*shared.disk, &shared.dir)?
                    .into_iter()
                    .filter(|&b| b > active.base_offset())
                    .collect())
            };
            // List first: once a later segment exists, the writer has finished this one.
            let mut listed = later()?;
            if !listed.is_empty() {
                // A listing may miss a file created while it ran yet show one created after
                // (directories in hash order): a listing begun after seeing a later segment
                // shows every segment created before it, so no segment is skipped.
                listed = later()?;
            }
            grew |= recovery::grow_read_only(&active, interval)?;
            let Some(&next) = listed.first() else {
                break;
            };
            let segment = match recovery::scan_read_only(&shared.disk, &shared.dir, next, interval)
            {
                Ok((segment, _, _)) => segment,
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && vanished < 8 =>
                {
                    vanished += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            shared.segments.write().push(Arc::new(segment));
            active.seal();
            grew = true;
        }
        let next_offset = shared.segments.read().last().map_or(0, |s| s.next_offset());
        shared.next_offset.store(next_offset, Ordering::Release);
        self.follow_log_start()?;
        serial.follow_producers(shared, next_offset)?;
        shared.update_visible_end();
        Ok(grew)
    }

    /// For a read-only partition, takes up the log start its writer recorded (retention or
    /// `delete_records` in the writer's process) without listing the directory: one small
    /// file read. [`refresh`](Partition::refresh) does it too.
    pub(crate) fn follow_log_start(&self) -> Result<()> {
        let shared = &self.shared;
        if !self.read_only {
            return Ok(());
        }
        if let Some(start) = checkpoint::read_log_start(&*shared.disk, &shared.dir)? {
            let start = shared
                .log_start_offset
                .fetch_max(start, Ordering::AcqRel)
                .max(start);
            // Segments the writer's retention deleted: readers still inside one keep it (and
            // their open handle) and read it to its end.
            let mut segments = shared.segments.write();
            let gone = segments
                .iter()
                .take(segments.len().saturating_sub(1))
                .take_while(|s| s.next_offset() <= start)
                .count();
            segments.drain(..gone);
            drop(segments);
            shared.aborted.write().remove_range(i64::MIN..start);
        }
        Ok(())
    }

    /// Loads the idempotent producers' state as a writable open would (snapshots, then the
    /// batch headers after the newest), changing nothing: what `verify` checks.
    pub(crate) fn check_producer_state(&self) -> Result<ProducerStateRecovery> {
        let shared = &self.shared;
        let segments = shared.segments();
        let bounds = producer_state::LogBounds {
            log_start: shared.log_start_offset(),
            log_end: shared.next_offset(),
            clean: self.recovery.clean_shutdown,
            expiry: producer_state::Expiry::now(&shared.config()),
        };
        producer_state::load(&*shared.disk, &shared.dir, &segments, bounds).map(|l| l.report)
    }

    /// Refuses a write that is not the replicator's: [`Error::ReadOnly`] on a read-only
    /// partition, [`Error::Replica`] on a replica.
    #[inline]
    pub(crate) fn check_owner_write(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        match self.shared.replica.get() {
            None => Ok(()),
            Some(of) => Err(self.replica_error(of)),
        }
    }

    #[cold]
    fn replica_error(&self, of: &ReplicaOf) -> Error {
        Error::Replica {
            dir: self.shared.dir.clone(),
            cluster_topic: of.cluster_topic.clone(),
        }
    }

    /// The cluster topic this partition replicates, when it is a replica (see
    /// [`make_replica`](Partition::make_replica)).
    pub fn replica_of(&self) -> Option<&ReplicaOf> {
        self.shared.replica.get()
    }

    /// Whether the partition was opened with [`open_read_only`](Partition::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The partition's settings.
    pub fn config(&self) -> Arc<LogConfig> {
        self.shared.config()
    }

    /// Bytes of segment data (the `.log` files' published lengths), all segments together.
    pub fn size_bytes(&self) -> u64 {
        self.shared.segments.read().iter().map(|s| s.size()).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.shared
            .segments
            .read()
            .iter()
            .map(|s| s.base_offset())
            .collect()
    }
}

impl Drop for Partition {
    /// Without [`close`](Partition::close), buffered appends are still written to the OS and
    /// the active segment's preallocated zeros cut (no fsync, no marker): the next open
    /// recovers the active segment by scanning it.
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        let mut writer = self.shared.writer.lock();
        if !writer.is_closed() {
            let _ = writer.write_buffer();
            // Best effort: a file left with its zeros is cut by the next open's recovery.
            let _ = writer.trim_log();
        }
    }
}
