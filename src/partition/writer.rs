//! The append path: encoding into the active segment's write buffer, index entries, rolling,
//! flushing and the clean close.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::LogConfig;
use crate::disk::{self, File, OpenMode};
use crate::error::{Error, Result};
use crate::record::{
    BatchParams, Compression, EncodeError, EncodedBatch, Record, encode_batch,
    encode_compressed_batch,
};
use crate::segment::file_name::FileKind;
use crate::segment::{
    Entry, IndexBuilder, IndexSizing, IndexedBatch, OffsetEntry, Segment, SegmentState, TimeEntry,
};

use super::checkpoint::RecoveryPoint;
use super::manifest::SegmentRecord;
use super::marker;
use super::poison::Poison;
use super::producer_state::{Accepted, Check, Expiry, ProducerStamp, ProducerStateMap, Rejection};
use super::published::Publisher;
use super::retention::{self, Limits, SegmentInfo};
use super::{AppendInfo, RetentionReport, Shared, checkpoint};

/// Leader epoch stamped on every batch, so a Kafka broker adopting the files builds a
/// leader-epoch cache from them.
const PARTITION_LEADER_EPOCH: i32 = 0;

/// What writing index entries does with the preallocated room past them: an enum, so call
/// sites say which rather than pass a bare bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexTail {
    /// Leave it, for the entries still to come.
    Keep,
    /// Cut the files to their entries (on roll and close).
    Trim,
}

/// What recovery hands the writer about the active segment.
#[derive(Debug)]
pub(crate) struct ActiveInit {
    pub(crate) builder: IndexBuilder,
    pub(crate) first_batch_timestamp: Option<i64>,
    /// Index entries already in the index files (0 when they must be rewritten).
    pub(crate) offsets_written: usize,
    pub(crate) times_written: usize,
}

/// What recovery hands the writer about durability.
#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) marker_present: bool,
    /// Records of the sealed segments known to be fsynced.
    pub(crate) flushed: Vec<SegmentRecord>,
    /// Sealed segments not known to be fsynced.
    pub(crate) unsynced: Vec<Arc<Segment>>,
    /// The recovery checkpoint must be rewritten before the first write.
    pub(crate) checkpoint_stale: bool,
    /// How much of the active segment is known fsynced: `(bytes, next offset)`.
    pub(crate) durable_active: Option<(u64, i64)>,
    /// Whether the log-start checkpoint exists.
    pub(crate) log_start_checkpointed: bool,
}

/// A batch appended but not yet published to readers: in the durable mode, batches are
/// published once a group commit has made them durable.
#[derive(Debug)]
struct Pending {
    seq: u64,
    segment: Arc<Segment>,
    end: u64,
    last_offset: i64,
    max_timestamp: i64,
}

/// What a group-commit round's fsyncs make durable of the active segment, as it stood when
/// the round began: named, because its two offsets are `i64`s a positional tuple would let a
/// caller swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synced {
    /// The active segment's base offset.
    pub(crate) active_base: i64,
    /// Its bytes in the file.
    pub(crate) synced_end: u64,
    /// The offset after the last batch in those bytes.
    pub(crate) synced_next: i64,
}

/// How [`Writer::append`] writes a batch: named, rather than a `(stamp, codec)` tuple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendOptions {
    /// An idempotent producer's stamp, checked against the producer state; `None` for a plain
    /// batch.
    pub(crate) stamp: Option<ProducerStamp>,
    /// The codec the batch is compressed with.
    pub(crate) codec: Compression,
}

/// What one group-commit round must fsync to make every append through `seq` durable.
#[derive(Debug)]
pub(crate) struct CommitPlan {
    /// What the round makes durable of the active segment.
    pub(crate) synced: Synced,
    pub(crate) seq: u64,
    pub(crate) files: Vec<File>,
    /// Sealed segments the round syncs (one at a time, see [`Segment::sync_files`]), recorded
    /// as flushed when it succeeds.
    pub(crate) sealed: Vec<Arc<Segment>>,
    pub(crate) dir_dirty: bool,
}

/// What an append did.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Appended and published.
    Done(AppendInfo),
    /// Appended; published and acknowledged once a group commit covers `seq`.
    Commit(AppendInfo, u64),
    /// Nothing appended: the segment must roll, and batches still waiting for a commit must
    /// reach the old segment first. Commit through `seq`, then append again.
    CommitFirst(u64),
    /// Nothing appended: a retry of an idempotent batch already appended under commit `seq`
    /// (0 if it was on disk at open). Acknowledged with the original offsets once that commit
    /// is done, so a batch whose commit fails is never acknowledged.
    Duplicate(AppendInfo, u64),
}

/// The writer's state, under the partition's writer lock.
#[derive(Debug)]
pub(crate) struct Writer {
    active: Arc<Segment>,
    /// End of the active segment as appended (ahead of its published size while batches wait
    /// for a commit).
    end: u64,
    /// The offset the next append gets.
    next_offset: i64,
    /// Appends accepted so far; a group commit covers them up to a sequence number.
    appended_seq: u64,
    pending: std::collections::VecDeque<Pending>,
    /// Records published since the last fsync, and when the first of them was (interval
    /// flushing).
    unflushed: i64,
    unflushed_since: i64,
    /// Set by a failed write or fsync: every write is refused until the partition is reopened.
    /// Shared with the group commit.
    poison: Arc<Poison>,
    /// The settings in force: the same `Arc` as `Shared::config`, replaced with it under this
    /// lock, so the append path reads them without taking the shared lock.
    config: Arc<LogConfig>,
    /// Bytes of the active segment a successful commit made durable.
    synced_end: u64,
    /// What the recovery checkpoint may call durable of the active segment: `(bytes, next
    /// offset)` as of the last successful fsync (after an unclean open, only what the
    /// checkpoint recorded: what a crash left in the page cache is not known durable).
    durable_active: Option<(u64, i64)>,
    /// The log-start checkpoint exists; the recovery checkpoint records its value too.
    log_start_checkpointed: bool,
    /// Counts recovery-checkpoint snapshots, so an older one never overwrites a newer one.
    checkpoint_seq: u64,
    /// Every append durable when it returns (`flush.messages` 1).
    durable: bool,
    /// Published bytes of the active segment not yet written to its file.
    tail: Vec<u8>,
    builder: IndexBuilder,
    first_batch_timestamp: Option<i64>,
    created_ms: i64,
    offset_entries: usize,
    time_entries: usize,
    offsets_written: usize,
    times_written: usize,
    index_files: Option<(File, File)>,
    /// Sealed segments not fsynced yet.
    unsynced: Vec<Arc<Segment>>,
    /// Records of the sealed segments fsynced so far: the recovery checkpoint's contents.
    flushed: Vec<SegmentRecord>,
    /// The checkpoint on disk lists a segment `flushed` does not; rewrite it before writing.
    checkpoint_stale: bool,
    /// Directory entries created since the last directory sync.
    dir_dirty: bool,
    marker_present: bool,
    prepared: bool,
    max_offset_entries: usize,
    max_time_entries: usize,
    closed: bool,
    /// Idempotent producers: checked and updated under this lock, snapshotted at roll and close.
    producers: ProducerStateMap,
    /// The state open rebuilt is still to be snapshotted (at the first write).
    snapshot_after_open: bool,
    /// Snapshots written without fsync (while sealed segments awaited theirs): fsynced by the
    /// next flush or commit round, before its directory sync.
    unsynced_snapshots: Vec<i64>,
    /// The published durable end, for followers in other processes; opened at the first
    /// publication.
    publisher: Option<Publisher>,
}

impl Writer {
    pub(crate) fn new(
        config: &Arc<LogConfig>,
        active: Arc<Segment>,
        init: ActiveInit,
        resume: Resume,
        poison: Arc<Poison>,
    ) -> Writer {
        let (offset_entries, time_entries) = active
            .with_indexes(|ix| (ix.offsets.len(), ix.times.len()))
            .unwrap_or((0, 0));
        active.map_for_growth(u64::try_from(config.segment_bytes()).unwrap_or(0));
        let index_bytes = usize::try_from(config.segment_index_bytes()).unwrap_or(0);
        Writer {
            end: active.size(),
            next_offset: active.next_offset(),
            appended_seq: 0,
            pending: std::collections::VecDeque::new(),
            unflushed: 0,
            unflushed_since: 0,
            poison,
            config: Arc::clone(config),
            synced_end: active.size(),
            durable_active: resume.durable_active,
            log_start_checkpointed: resume.log_start_checkpointed,
            checkpoint_seq: 0,
            durable: config.is_durable(),
            active,
            tail: Vec::with_capacity(config.write_buffer_bytes().min(64 << 20)),
            builder: init.builder,
            first_batch_timestamp: init.first_batch_timestamp,
            created_ms: config.clock().now_ms(),
            offset_entries,
            time_entries,
            offsets_written: init.offsets_written,
            times_written: init.times_written,
            index_files: None,
            unsynced: resume.unsynced,
            flushed: resume.flushed,
            checkpoint_stale: resume.checkpoint_stale,
            dir_dirty: false,
            marker_present: resume.marker_present,
            prepared: false,
            max_offset_entries: index_bytes / OffsetEntry::SIZE,
            max_time_entries: index_bytes / TimeEntry::SIZE,
            closed: false,
            producers: ProducerStateMap::default(),
            snapshot_after_open: true,
            unsynced_snapshots: Vec::new(),
            publisher: None,
        }
    }

    /// The offset below which every record is durable: up to the first sealed segment not
    /// fsynced yet, else what the last fsync covered of the active segment.
    fn durable_end(&self) -> i64 {
        match (self.unsynced.first(), self.durable_active) {
            (Some(first), _) => first.base_offset(),
            (None, Some((_, next))) => next,
            (None, None) => self.active.base_offset(),
        }
    }

    /// Publishes the durable end for followers in other processes, if there are any (see
    /// [`super::published`]). A failure is logged, not returned: the file only bounds what
    /// followers return early, and the next publication tries again.
    fn publish_if_followed(&mut self, shared: &Shared) {
        if !shared.followers_present().0 {
            return;
        }
        let end = self.durable_end();
        let result = match &mut self.publisher {
            Some(p) => p.publish(end),
            None => Publisher::open(&*shared.disk, &shared.dir).and_then(|mut p| {
                let published = p.publish(end);
                self.publisher = Some(p);
                published
            }),
        };
        if let Err(e) = result {
            log::warn!(
                "{}: cannot publish the durable end: {e}",
                shared.dir.display()
            );
        }
    }

    /// Followers just appeared: buffered batches go to the file, the durable end is published.
    pub(crate) fn serve_followers(&mut self, shared: &Shared) {
        if self.closed || self.check_poison().is_err() {
            return;
        }
        if let Err(e) = self.write_buffer() {
            log::warn!(
                "{}: cannot write buffered batches: {e}",
                shared.dir.display()
            );
            return;
        }
        self.publish_if_followed(shared);
    }

    /// Takes up changed settings (see `Partition::set_config`); the caller flushed first if
    /// the durability policy changes.
    pub(crate) fn apply_config(&mut self, config: &Arc<LogConfig>) {
        self.config = Arc::clone(config);
        self.durable = config.is_durable();
        let index_bytes = usize::try_from(config.segment_index_bytes()).unwrap_or(0);
        self.max_offset_entries = index_bytes / OffsetEntry::SIZE;
        self.max_time_entries = index_bytes / TimeEntry::SIZE;
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.durable
    }

    /// Starts from the producer state open rebuilt (as of the log end).
    pub(crate) fn set_producers(&mut self, producers: ProducerStateMap) {
        self.producers = producers;
    }

    /// The idempotent producers the partition knows.
    pub(crate) fn producers(&self) -> &ProducerStateMap {
        &self.producers
    }

    /// Writes a producer snapshot at the log end offset if none says as much yet.
    fn snapshot_producers_if_due(&mut self, shared: &Shared) -> Result<()> {
        // An empty log and no producer: nothing a snapshot would spare the next open.
        let nothing = self.next_offset == shared.log_start_offset() && self.producers.is_empty();
        if !nothing && self.producers.snapshot_due(self.next_offset) {
            self.snapshot_producers(shared, self.next_offset)?;
        }
        Ok(())
    }

    /// Writes a producer snapshot at `offset` (the log end offset, every batch below it
    /// published).
    ///
    /// Durable at once unless a sealed segment awaits its fsync (see
    /// [`ProducerStateMap::take_snapshot`]); then the next flush or commit round syncs it, and
    /// the directory after that segment.
    fn snapshot_producers(&mut self, shared: &Shared, offset: i64) -> Result<()> {
        let expiry = Expiry::now(&self.config);
        let durable = self.unsynced.is_empty();
        self.producers
            .take_snapshot(&*shared.disk, &shared.dir, offset, expiry, durable)?;
        if !durable {
            self.unsynced_snapshots.push(offset);
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// The snapshot files written without fsync that are still kept, to fsync before the next
    /// directory sync.
    fn take_unsynced_snapshots(&mut self) -> Result<Vec<File>> {
        let mut files = Vec::new();
        for offset in std::mem::take(&mut self.unsynced_snapshots) {
            if self.producers.has_snapshot(offset) {
                let path = super::producer_state::snapshot_path(self.active.dir(), offset);
                files.push(File::open(self.active.disk(), path, OpenMode::Write)?);
            }
        }
        Ok(files)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The buffered bytes of `segment` if it is the active one (empty otherwise).
    pub(crate) fn tail_of(&self, segment: &Arc<Segment>) -> &[u8] {
        if Arc::ptr_eq(&self.active, segment) {
            &self.tail
        } else {
            &[]
        }
    }

    /// Before the first write after open: remove the clean-shutdown marker (so a crash from
    /// here on is seen as unclean) and give the active indexes room to grow again.
    fn prepare(&mut self, shared: &Shared) -> Result<()> {
        if self.prepared {
            return Ok(());
        }
        if self.snapshot_after_open {
            // The state open rebuilt, so the next open need not replay the same batches again.
            self.snapshot_producers_if_due(shared)?;
            self.snapshot_after_open = false;
        }
        if self.marker_present {
            marker::remove(&*shared.disk, &shared.dir)?;
            self.marker_present = false;
        }
        if self.checkpoint_stale {
            // A segment listed as flushed may be the active one again, or a durable prefix may
            // have been cut: appends must not later read as damage to durable data. Segments
            // recovery scanned go to disk first, as the write syncs the directory.
            if !self.unsynced.is_empty() {
                self.flush(shared)?;
            }
            self.save_checkpoint(shared, self.flushed.clone())?;
            self.checkpoint_stale = false;
        }
        let config = Arc::clone(&self.config);
        let (index, times) = self.index_files(shared)?;
        // Room to grow again after a trim. Bytes past the written entries are stale until
        // overwritten; they are never read (the active segment's indexes live in memory, and a
        // crash rebuilds them) and are trimmed away on roll and close.
        let preallocate = |file: &File, written: usize, size: usize| -> Result<()> {
            let bytes = u64::try_from(config.segment_index_bytes()).unwrap_or(0);
            let full = (bytes / size as u64 * size as u64).max((written * size) as u64);
            if file.len()? < full {
                file.set_len(full)?;
            }
            Ok(())
        };
        preallocate(&index, self.offsets_written, OffsetEntry::SIZE)?;
        preallocate(&times, self.times_written, TimeEntry::SIZE)?;
        self.prepared = true;
        Ok(())
    }

    fn index_files(&mut self, shared: &Shared) -> Result<(File, File)> {
        if let Some(files) = &self.index_files {
            return Ok(files.clone());
        }
        let disk = &*shared.disk;
        let index = File::open(disk, self.active.path(FileKind::Index), OpenMode::Create)?;
        let times = File::open(
            disk,
            self.active.path(FileKind::TimeIndex),
            OpenMode::Create,
        )?;
        self.index_files = Some((index.clone(), times.clone()));
        Ok((index, times))
    }

    /// Appends `records` as one batch compressed with `options.codec`; with a stamp, as an
    /// idempotent producer's batch, checked against the producer state first (see
    /// [`super::producer_state`]).
    pub(crate) fn append(
        &mut self,
        shared: &Shared,
        records: &[Record<'_>],
        now: i64,
        options: AppendOptions,
    ) -> Result<Appended> {
        let AppendOptions { stamp, codec } = options;
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        self.prepare(shared)?;
        let config = Arc::clone(&self.config);
        let durable = config.is_durable();
        let base_offset = self.next_offset;
        let mut params = BatchParams {
            base_offset,
            partition_leader_epoch: PARTITION_LEADER_EPOCH,
            timestamp_type: config.message_timestamp_type(),
            ..BatchParams::default()
        };
        let mut last_seq = None;
        if let Some(stamp) = stamp {
            self.producers.expire_if_due(Expiry {
                now_ms: now,
                expiration_ms: config.producer_id_expiration_ms(),
            });
            match self.producers.check(stamp, records.len()) {
                Ok(Check::Duplicate(info, seq)) => return Ok(Appended::Duplicate(info, seq)),
                Ok(Check::Append { last_seq: last }) => last_seq = Some(last),
                Err(rejection) => return Err(rejected(shared, stamp, rejection)),
            }
            params.producer_id = stamp.producer_id;
            params.producer_epoch = stamp.epoch;
            params.base_sequence = stamp.base_sequence;
        }
        let start = self.tail.len();
        let encoded = match codec {
            Compression::None => encode_batch(&mut self.tail, &params, records, now),
            codec => {
                let levels = config.compression_levels();
                encode_compressed_batch(&mut self.tail, &params, records, now, codec, levels)
            }
        };
        let encoded = encoded.map_err(|e| match e {
            EncodeError::Empty => Error::EmptyBatch,
            EncodeError::OffsetOutOfRange => Error::OffsetsExhausted,
            EncodeError::UnsupportedCompression(codec) => Error::InvalidConfig {
                key: "compression.type",
                value: codec.name().to_owned(),
                reason: "this build does not include the codec (its cargo feature is off)".into(),
            },
            _ => Error::RecordTooLarge {
                size: i32::MAX as usize + 1,
                at_least: true,
                limit: i32::MAX as usize,
                setting: "the format's 32-bit batch length",
            },
        })?;
        let size = encoded.size;
        let too_large = [
            (config.max_message_bytes(), "max.message.bytes"),
            (config.segment_bytes(), "segment.bytes"),
        ]
        .into_iter()
        .find(|(limit, _)| size > usize::try_from(*limit).unwrap_or(0));
        if let Some((limit, setting)) = too_large {
            self.tail.truncate(start);
            return Err(Error::RecordTooLarge {
                size,
                at_least: false,
                limit: limit as usize,
                setting,
            });
        }
        if self.should_roll(&config, &encoded) {
            if !self.pending.is_empty() {
                // The old segment's batches must be published before it reads as sealed.
                self.tail.truncate(start);
                return Ok(Appended::CommitFirst(self.appended_seq));
            }
            let batch = self.tail.split_off(start);
            self.roll(shared)?;
            self.tail.extend_from_slice(&batch);
        }
        let start = self.tail.len() - size;
        // With followers in other processes, lazily flushed batches go to the file at once.
        let buffer_limit = if !durable && shared.followers_present().0 {
            0
        } else {
            config.write_buffer_bytes()
        };
        if !durable
            && self.tail.len() >= buffer_limit
            && let Err(e) = self.write_buffer()
        {
            // Earlier batches stay buffered (they are published); this one never was.
            self.tail.truncate(start);
            return Err(e);
        }
        let segment = Arc::clone(&self.active);
        let position = self.end;
        let last_offset = encoded.last_offset;
        let indexed = IndexedBatch {
            position,
            size: size as u64,
            last_offset,
            max_timestamp: encoded.max_timestamp,
        };
        self.builder.observe(&indexed);
        if self.builder.entry_due() {
            let base = segment.base_offset();
            let builder = &mut self.builder;
            let counts = segment.with_indexes_mut(|ix| {
                builder.add_entry(ix, base, &indexed);
                (ix.offsets.len(), ix.times.len())
            })?;
            (self.offset_entries, self.time_entries) = counts;
        }
        self.builder.count(indexed.size);
        self.first_batch_timestamp
            .get_or_insert(encoded.max_timestamp);
        self.end = position + size as u64;
        self.next_offset = last_offset + 1;
        if durable {
            // Only durable appends wait for a commit round.
            self.appended_seq += 1;
        }
        let info = AppendInfo {
            base_offset,
            last_offset,
        };
        if let (Some(stamp), Some(last_seq)) = (stamp, last_seq) {
            self.producers.accept(Accepted {
                stamp,
                last_seq,
                info,
                max_timestamp: encoded.max_timestamp,
                now_ms: now,
                commit_seq: self.appended_seq,
            });
        }
        if durable {
            self.pending.push_back(Pending {
                seq: self.appended_seq,
                segment,
                end: self.end,
                last_offset,
                max_timestamp: encoded.max_timestamp,
            });
            return Ok(Appended::Commit(info, self.appended_seq));
        }
        segment.publish(SegmentState {
            size: self.end,
            next_offset: last_offset + 1,
            max_timestamp: encoded.max_timestamp,
            offset_of_max_timestamp: last_offset,
        });
        shared.next_offset.store(last_offset + 1, Ordering::Release);
        shared.fire_watchers();
        self.flush_if_due(shared, &config, records.len() as i64)?;
        Ok(Appended::Done(info))
    }

    /// Interval flushing (`flush.messages` above 1, `flush.ms`): fsyncs once enough records
    /// are unflushed or the oldest is old enough. A failure poisons the partition.
    fn flush_if_due(&mut self, shared: &Shared, config: &LogConfig, records: i64) -> Result<()> {
        if self.unflushed == 0 && config.flush_ms() != i64::MAX {
            self.unflushed_since = config.clock().now_ms();
        }
        self.unflushed = self.unflushed.saturating_add(records);
        let due = self.unflushed >= config.flush_messages()
            || (config.flush_ms() != i64::MAX
                && config.clock().now_ms().saturating_sub(self.unflushed_since)
                    >= config.flush_ms());
        if due && let Err(e) = self.flush(shared) {
            self.poison(&e);
            return Err(e);
        }
        Ok(())
    }

    fn check_poison(&self) -> Result<()> {
        self.poison.check()
    }

    /// Refuses writes from now on: an fsync failed, and the kernel may have dropped the pages
    /// it could not write. Batches waiting for a commit are dropped (never acknowledged).
    ///
    /// In the durable mode the active segment is also cut back to what the last successful
    /// commit made durable. Linux marks pages whose write-back failed as clean: a restart would
    /// read them from the page cache as if they were on disk, and lose them at the next power
    /// loss. Readers never see past that point (only durable batches are published), so the
    /// cut cannot pull bytes from under one.
    pub(crate) fn poison(&mut self, error: &Error) {
        if !self.poison.set(error) {
            return;
        }
        log::error!(
            "partition {} poisoned: {error}; writes are refused until it is reopened",
            self.dir().display()
        );
        self.pending.clear();
        // Best effort: the disk is failing. The next open cuts back to the durable point.
        let base = self.active.base_offset();
        let _ = checkpoint::write_poison(self.active.disk(), self.dir(), base, self.synced_end);
        if self.durable {
            if let Ok(log) = self.active.log() {
                let _ = log.set_len(self.synced_end);
            }
            self.active
                .set_file_size(self.synced_end.min(self.active.file_size()));
            self.tail.clear();
        }
    }

    fn dir(&self) -> &std::path::Path {
        self.active.dir()
    }

    /// Whether batches wait for a group commit.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The sequence number of the last append accepted.
    pub(crate) fn appended_seq(&self) -> u64 {
        self.appended_seq
    }

    /// First half of a group commit, under the writer lock: writes the buffer out and returns
    /// what an fsync must cover to make every append through the returned sequence number
    /// durable: the files, and whether the directory has new entries.
    pub(crate) fn begin_commit(&mut self) -> Result<CommitPlan> {
        self.check_poison()?;
        self.write_buffer()?;
        let mut files = vec![self.active.log()?];
        files.extend(self.take_unsynced_snapshots()?);
        let sealed = self.unsynced.clone();
        Ok(CommitPlan {
            synced: Synced {
                active_base: self.active.base_offset(),
                synced_end: self.active.file_size(),
                synced_next: self.next_offset,
            },
            seq: self.appended_seq,
            files,
            sealed,
            dir_dirty: std::mem::take(&mut self.dir_dirty),
        })
    }

    /// Second half of a group commit, once the fsyncs succeeded: notes what `synced` made
    /// durable, publishes every batch through `seq` and records the sealed segments synced as
    /// flushed.
    pub(crate) fn finish_commit(
        &mut self,
        shared: &Shared,
        seq: u64,
        synced: Synced,
        sealed: &[Arc<Segment>],
    ) -> Result<()> {
        let Synced {
            active_base,
            synced_end,
            synced_next,
        } = synced;
        if active_base == self.active.base_offset() {
            self.synced_end = self.synced_end.max(synced_end);
            if self
                .durable_active
                .is_none_or(|(size, _)| size < synced_end)
            {
                self.durable_active = Some((synced_end, synced_next));
            }
        }
        let mut published = false;
        while let Some(p) = self.pending.front() {
            if p.seq > seq {
                break;
            }
            p.segment.publish(SegmentState {
                size: p.end,
                next_offset: p.last_offset + 1,
                max_timestamp: p.max_timestamp,
                offset_of_max_timestamp: p.last_offset,
            });
            shared
                .next_offset
                .store(p.last_offset + 1, Ordering::Release);
            self.pending.pop_front();
            published = true;
        }
        if published {
            shared.fire_watchers();
        }
        if !sealed.is_empty() {
            let mut flushed = self.flushed.clone();
            for segment in sealed {
                flushed.push(SegmentRecord::of(&*shared.disk, segment)?);
            }
            flushed.sort_by_key(|r| r.base_offset);
            self.save_checkpoint(shared, flushed.clone())?;
            self.flushed = flushed;
            self.unsynced
                .retain(|s| !sealed.iter().any(|d| Arc::ptr_eq(d, s)));
        }
        self.publish_if_followed(shared);
        Ok(())
    }

    /// Kafka's `LogSegment.shouldRoll` for appending `batch`: size, time, a full index, or
    /// offsets the segment cannot express. An empty segment never rolls.
    fn should_roll(&self, config: &LogConfig, batch: &EncodedBatch) -> bool {
        let (size, max_timestamp, last_offset) =
            (batch.size as u64, batch.max_timestamp, batch.last_offset);
        let current = self.end;
        if current == 0 {
            return false;
        }
        let segment_bytes = u64::try_from(config.segment_bytes()).unwrap_or(0);
        let waited = match self.first_batch_timestamp {
            Some(first) if first >= 0 => max_timestamp.saturating_sub(first),
            _ => config.clock().now_ms().saturating_sub(self.created_ms),
        };
        current + size > segment_bytes
            || waited > config.segment_ms()
            || self.offset_entries >= self.max_offset_entries
            || self.time_entries + 1 >= self.max_time_entries
            || last_offset - self.active.base_offset() > i64::from(i32::MAX)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    fn roll(&mut self, shared: &Shared) -> Result<()> {
        self.write_buffer()?;
        self.finish_indexes()?;
        let config = Arc::clone(&self.config);
        let base = self.next_offset;
        // Kafka's snapshot at roll, named after the new base: an open replays at most the
        // batches after it.
        self.snapshot_producers(shared, base)?;
        let sizing = IndexSizing {
            file_bytes: config.segment_index_bytes(),
            interval_bytes: config.index_interval_bytes(),
        };
        let segment = Segment::create(&shared.disk, &shared.dir, base, sizing)?;
        segment.map_for_growth(u64::try_from(config.segment_bytes()).unwrap_or(0));
        let segment = Arc::new(segment);
        // The new segment is listed before the old one reads as sealed, so a reader that finds
        // the old one sealed always finds its successor.
        shared.segments.write().push(Arc::clone(&segment));
        let old = std::mem::replace(&mut self.active, segment);
        old.seal();
        self.unsynced.push(old);
        self.dir_dirty = true;
        self.end = 0;
        self.synced_end = 0;
        self.durable_active = None;
        self.builder = IndexBuilder::new(config.index_interval_bytes(), base);
        self.first_batch_timestamp = None;
        self.created_ms = config.clock().now_ms();
        (self.offset_entries, self.time_entries) = (0, 0);
        (self.offsets_written, self.times_written) = (0, 0);
        self.index_files = None;
        Ok(())
    }

    /// Writes the buffered bytes to the active segment's file, then its new index entries.
    pub(crate) fn write_buffer(&mut self) -> Result<()> {
        // Index entries first: if they fail, the data is not in the file either, so the
        // append that failed leaves nothing a later append could land behind.
        self.write_index_entries(IndexTail::Keep)?;
        if !self.tail.is_empty() {
            let segment = &self.active;
            let pos = segment.file_size();
            segment.log()?.write_all_at(&self.tail, pos)?;
            segment.set_file_size(pos + self.tail.len() as u64);
            self.tail.clear();
        }
        Ok(())
    }

    /// Writes index entries not yet in the files; with [`IndexTail::Trim`], cuts the files to
    /// their entries.
    fn write_index_entries(&mut self, tail: IndexTail) -> Result<()> {
        let trim = tail == IndexTail::Trim;
        let (index, times) = match self.index_files.clone() {
            Some(files) => files,
            // Not prepared: nothing was appended since open, and only a trim has work to do.
            None if !trim => return Ok(()),
            None => {
                let disk = self.active.disk();
                let index = File::open(disk, self.active.path(FileKind::Index), OpenMode::Create)?;
                let times = File::open(
                    disk,
                    self.active.path(FileKind::TimeIndex),
                    OpenMode::Create,
                )?;
                self.index_files = Some((index.clone(), times.clone()));
                (index, times)
            }
        };
        self.write_entries_to(&index, &times, tail)
    }

    fn write_entries_to(&mut self, index: &File, times: &File, tail: IndexTail) -> Result<()> {
        let trim = tail == IndexTail::Trim;
        let (ow, tw) = (self.offsets_written, self.times_written);
        let counts = self.active.with_indexes(|ix| -> Result<(usize, usize)> {
            let offsets = ix.offsets.as_bytes();
            if let Some(new) = offsets
                .get(ow * OffsetEntry::SIZE..)
                .filter(|b| !b.is_empty())
            {
                index.write_all_at(new, (ow * OffsetEntry::SIZE) as u64)?;
            }
            let stamps = ix.times.as_bytes();
            if let Some(new) = stamps.get(tw * TimeEntry::SIZE..).filter(|b| !b.is_empty()) {
                times.write_all_at(new, (tw * TimeEntry::SIZE) as u64)?;
            }
            if trim {
                index.set_len(offsets.len() as u64)?;
                times.set_len(stamps.len() as u64)?;
            }
            Ok((ix.offsets.len(), ix.times.len()))
        })??;
        (self.offsets_written, self.times_written) = counts;
        if trim {
            self.prepared = false; // the files must grow again before the next append
        }
        Ok(())
    }

    /// The final time-index entry and trimmed index files (on roll and close).
    fn finish_indexes(&mut self) -> Result<()> {
        let base = self.active.base_offset();
        let builder = &self.builder;
        let counts = self.active.with_indexes_mut(|ix| {
            builder.finish(ix, base);
            (ix.offsets.len(), ix.times.len())
        })?;
        (self.offset_entries, self.time_entries) = counts;
        self.write_index_entries(IndexTail::Trim)
    }

    pub(crate) fn flush(&mut self, shared: &Shared) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.check_poison()?;
        self.write_buffer()?;
        let disk = &*shared.disk;
        let newly_flushed = !self.unsynced.is_empty();
        for segment in &self.unsynced {
            segment.sync_files()?;
        }
        self.active.log()?.sync_data()?;
        self.synced_end = self.active.file_size();
        self.durable_active = Some((self.synced_end, self.next_offset));
        if let Some((index, times)) = &self.index_files {
            index.sync_data()?;
            times.sync_data()?;
        }
        for snapshot in self.take_unsynced_snapshots()? {
            snapshot.sync_data()?;
        }
        if self.dir_dirty {
            disk::sync_dir(disk, &shared.dir)?;
            self.dir_dirty = false;
        }
        if newly_flushed {
            // Every sealed segment is now durable: record them so an unclean open trusts them
            // without reading them. Written only when segments were sealed since the last flush.
            let mut flushed = self.flushed.clone();
            for segment in &self.unsynced {
                flushed.push(SegmentRecord::of(disk, segment)?);
            }
            flushed.sort_by_key(|r| r.base_offset);
            self.save_checkpoint(shared, flushed.clone())?;
            self.flushed = flushed;
            self.unsynced.clear();
        }
        self.publish_if_followed(shared);
        Ok(())
    }

    /// Kafka's DeleteRecords: raises the log start offset to `before` (durably, before any
    /// file goes) and deletes the segments wholly below it. Returns the log start offset.
    pub(crate) fn delete_records(&mut self, shared: &Shared, before: i64) -> Result<i64> {
        if self.closed {
            return Err(Error::Closed);
        }
        let (log_start, log_end) = (shared.log_start_offset(), shared.next_offset());
        if before < 0 || before > log_end {
            return Err(Error::OffsetOutOfRange {
                requested: before,
                log_start,
                log_end,
            });
        }
        if before <= log_start {
            return Ok(log_start);
        }
        self.prepare(shared)?;
        // Segments still unflushed go to disk first: the renames and checkpoint below sync the
        // directory, which would make a newer segment's entry durable before an older
        // segment's data, and a power loss could then leave a gap between them.
        self.flush(shared)?;
        self.raise_log_start(shared, before)?;
        let below = shared
            .segments()
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= before)
            .count();
        let deleted = self.remove_oldest(shared, below)?;
        log::info!(
            "{}: delete_records: log start raised to {before}, {} segments deleted",
            shared.dir.display(),
            deleted.len()
        );
        Ok(before)
    }

    /// Deletes the segments retention selects (see [`retention`]); rolls first when the active
    /// segment goes too, so the log keeps its next offset.
    pub(crate) fn enforce_retention(&mut self, shared: &Shared) -> Result<RetentionReport> {
        if self.closed {
            return Err(Error::Closed);
        }
        let config = Arc::clone(&self.config);
        self.producers.expire(Expiry::now(&config));
        let segments = shared.segments();
        let disk = &*shared.disk;
        let mut infos = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let mut largest_timestamp = segment.max_timestamp();
            if largest_timestamp < 0 {
                let path = segment.path(FileKind::Log);
                largest_timestamp = disk
                    .modified_ms(&path)
                    .map_err(|e| Error::io(crate::error::IoOp::Read, path, e))?;
            }
            infos.push(SegmentInfo {
                base_offset: segment.base_offset(),
                next_base: segments.get(i + 1).map(|s| s.base_offset()),
                size: segment.size(),
                largest_timestamp,
            });
        }
        let limits = Limits {
            log_start_offset: shared.log_start_offset(),
            retention_bytes: config.retention_bytes(),
            retention_ms: config.retention_ms(),
            now_ms: config.clock().now_ms(),
        };
        let count = retention::deletable(&infos, limits);
        let mut report = RetentionReport::default();
        if count > 0 {
            self.prepare(shared)?;
            // As in delete_records: nothing unflushed may precede a directory sync.
            self.flush(shared)?;
            if count == segments.len() {
                // Everything expired, the active segment too: start an empty one at the log
                // end offset first.
                self.roll(shared)?;
            }
            for (base_offset, bytes) in self.remove_oldest(shared, count)? {
                report.deleted_segments.push(base_offset);
                report.bytes_deleted += bytes;
            }
            log::info!(
                "{}: retention deleted segments {:?} ({} bytes); log start now {}",
                shared.dir.display(),
                report.deleted_segments,
                report.bytes_deleted,
                shared.log_start_offset()
            );
        }
        report.log_start_offset = shared.log_start_offset();
        Ok(report)
    }

    /// Raises the log start offset, durably first.
    fn raise_log_start(&mut self, shared: &Shared, offset: i64) -> Result<()> {
        if offset > shared.log_start_offset() {
            checkpoint::write_log_start(&*shared.disk, &shared.dir, offset)?;
            shared.log_start_offset.store(offset, Ordering::Release);
            self.producers
                .delete_snapshots_below(&*shared.disk, &shared.dir, offset)?;
            if !self.log_start_checkpointed {
                // From now on the file must exist: the recovery checkpoint says so, and an
                // open that finds it missing fails instead of bringing back deleted records.
                self.log_start_checkpointed = true;
                self.save_checkpoint(shared, self.flushed.clone())?;
            }
        }
        Ok(())
    }

    /// Takes the `count` oldest segments out of the log (never the active one). Readers inside
    /// them read on; their files go when the last reader lets go. Returns their base offsets
    /// and sizes.
    fn remove_oldest(&mut self, shared: &Shared, count: usize) -> Result<Vec<(i64, u64)>> {
        let count = count.min(shared.segments.read().len().saturating_sub(1));
        if count == 0 {
            return Ok(Vec::new());
        }
        let first_kept = shared.segments.read()[count].base_offset();
        self.raise_log_start(shared, first_kept)?;
        let removed: Vec<Arc<Segment>> = shared.segments.write().drain(..count).collect();
        let bases: Vec<i64> = removed.iter().map(|s| s.base_offset()).collect();
        self.unsynced.retain(|s| !bases.contains(&s.base_offset()));
        let flushed_before = self.flushed.len();
        self.flushed.retain(|r| !bases.contains(&r.base_offset));
        if self.flushed.len() != flushed_before {
            self.save_checkpoint(shared, self.flushed.clone())?;
        }
        let mut deleted = Vec::with_capacity(removed.len());
        for segment in removed {
            segment.mark_deleted()?;
            deleted.push((segment.base_offset(), segment.size()));
        }
        self.dir_dirty = true;
        Ok(deleted)
    }

    /// A snapshot of the recovery checkpoint with `flushed` as the flushed segments, numbered
    /// so that [`Shared::write_recovery_point`] never lets an older one overwrite it.
    pub(crate) fn recovery_point(
        &mut self,
        shared: &Shared,
        flushed: Vec<SegmentRecord>,
    ) -> (u64, RecoveryPoint) {
        self.checkpoint_seq += 1;
        let active = super::recovery::durable_prefix(
            std::slice::from_ref(&self.active),
            self.durable_active,
        );
        let point = RecoveryPoint {
            flushed,
            active,
            log_start: self
                .log_start_checkpointed
                .then(|| shared.log_start_offset()),
        };
        (self.checkpoint_seq, point)
    }

    /// The recovery checkpoint as it stands, for the periodic write; `None` once closed or
    /// poisoned (nothing more may be recorded as durable), and while a sealed segment waits for
    /// its fsync: the write syncs the directory, which could make a newer segment durable
    /// before the older one's data, leaving a gap after a power loss. The next flush or commit
    /// round syncs it (and writes the checkpoint itself).
    pub(crate) fn periodic_recovery_point(
        &mut self,
        shared: &Shared,
    ) -> Option<(u64, RecoveryPoint)> {
        if self.closed || self.poison.is_set() || !self.unsynced.is_empty() {
            return None;
        }
        Some(self.recovery_point(shared, self.flushed.clone()))
    }

    /// Writes the recovery checkpoint with `flushed` as the flushed segments, now.
    fn save_checkpoint(&mut self, shared: &Shared, flushed: Vec<SegmentRecord>) -> Result<()> {
        let (seq, point) = self.recovery_point(shared, flushed);
        shared.write_recovery_point(seq, &point)
    }

    pub(crate) fn close(&mut self, shared: &Shared) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.check_poison()?;
        self.write_buffer()?;
        self.finish_indexes()?;
        self.flush(shared)?;
        if let Some((index, times)) = &self.index_files {
            index.sync_data()?;
            times.sync_data()?;
        }
        // Kafka's snapshot at clean shutdown, at the log end: a clean open replays nothing.
        self.snapshot_producers_if_due(shared)?;
        // The recovery point at clean shutdown, as Kafka writes it: the marker goes with the
        // first write after the next open, the checkpoint stays.
        self.save_checkpoint(shared, self.flushed.clone())?;
        let disk = &*shared.disk;
        let mut records = Vec::new();
        for segment in shared.segments.read().iter() {
            let len =
                |kind| disk::file_len(disk, &segment.path(kind)).map(Option::unwrap_or_default);
            records.push(SegmentRecord {
                base_offset: segment.base_offset(),
                index_bytes: len(FileKind::Index)?,
                time_index_bytes: len(FileKind::TimeIndex)?,
                state: segment.state(),
            });
        }
        marker::write(disk, &shared.dir, &records)?;
        self.marker_present = true;
        self.closed = true;
        Ok(())
    }
}

/// The error for a refused idempotent append. A partition knows producers by id only, so a
/// fencing error carries no name; the topic and partition come from the directory's name
/// (`<topic>-<partition>`), or are the directory's name and 0 for a partition outside a store.
fn rejected(shared: &Shared, stamp: ProducerStamp, rejection: Rejection) -> Error {
    match rejection {
        Rejection::Fenced => Error::ProducerFenced {
            producer: String::new(),
            producer_id: stamp.producer_id,
            epoch: stamp.epoch,
        },
        Rejection::OutOfOrder { expected } => {
            let name = shared
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (topic, partition) = match crate::layout::parse_partition_dir(&name) {
                Some((topic, partition)) => (topic.to_owned(), partition),
                None => (name, 0),
            };
            Error::OutOfOrderSequence {
                topic,
                partition,
                producer_id: stamp.producer_id,
                expected,
                received: stamp.base_sequence,
            }
        }
    }
}
