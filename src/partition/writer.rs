//! The writer: appends, rolls, flushes, retention's deletions and the clean close, under the
//! partition's writer lock.
//!
//! It composes the active segment's [`Appender`] (encoding, index entries, the write buffer)
//! with the durability [`Ledger`] (what is fsynced, the recovery point, the poison flag), and
//! decides when batches become visible to readers: at once under the lazy policies, once a
//! group commit made them durable under the durable one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::LogConfig;
use crate::disk;
use crate::error::{Error, Result};
use crate::record::{
    BatchParams, Compression, EncodedBatch, EndTxnMarker, Record, TimestampType, TxnResult,
};
use crate::segment::file_name::FileKind;
use crate::segment::{IndexSizing, Segment};

pub(crate) use super::appender::ActiveInit;
use super::appender::{Appender, BatchEnd};
pub(crate) use super::ledger::Resume;
use super::ledger::{Ledger, SyncSet};
use super::manifest::SegmentRecord;
use super::marker;
use super::poison::Poison;
use super::producer_state::{
    Accepted, Check, Expiry, MarkerRejection, ProducerStamp, ProducerStateMap, Rejection,
};
use super::retention::{self, Limits, SegmentInfo};
use super::{AppendInfo, RetentionReport, Shared, checkpoint, txn};

mod replicated;
mod swap;
pub(crate) use swap::Swapped;

/// Leader epoch stamped on every batch, so a Kafka broker adopting the files builds a
/// leader-epoch cache from them.
const PARTITION_LEADER_EPOCH: i32 = 0;

/// How [`Writer::append`] writes a batch: named, rather than a `(stamp, codec)` tuple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendOptions {
    /// An idempotent producer's stamp, checked against the producer state; `None` for a plain
    /// batch.
    pub(crate) stamp: Option<ProducerStamp>,
    /// The codec the caller asks for (the topic's `compression.type` may override it).
    pub(crate) codec: Compression,
    /// The wall clock when the append began ([`crate::config::wall_ms`]): the records' time
    /// under the default clock, and the follower probe's.
    pub(crate) wall_ms: i64,
    /// A transactional producer's batch (with a stamp): it opens the producer's transaction.
    pub(crate) transactional: bool,
}

/// A COMMIT or ABORT marker to append, and whose transaction it closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnMarker {
    pub(crate) producer_id: i64,
    /// The producer's epoch (the marker may raise it, as after a fencing abort).
    pub(crate) epoch: i16,
    pub(crate) marker: EndTxnMarker,
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

/// Interval flushing (`flush.messages` above 1, `flush.ms`): records appended since the last
/// fsync, and when the first of them was.
#[derive(Debug, Default)]
struct Unflushed {
    records: i64,
    since_ms: i64,
}

/// The writer's state, under the partition's writer lock.
#[derive(Debug)]
pub(crate) struct Writer {
    appender: Appender,
    ledger: Ledger,
    /// The settings in force: the same `Arc` as `Shared::config`, replaced with it under this
    /// lock, so the append path reads them without taking the shared lock.
    config: Arc<LogConfig>,
    /// Every append durable when it returns (`flush.messages` 1).
    durable: bool,
    unflushed: Unflushed,
    /// The clean-shutdown marker is on disk (removed before the first write).
    marker_present: bool,
    /// The one-time work before the first write after open is done.
    prepared: bool,
    closed: bool,
    /// Idempotent producers: checked and updated under this lock, snapshotted at roll and close.
    producers: ProducerStateMap,
    /// The state open rebuilt is still to be snapshotted (at the first write).
    snapshot_after_open: bool,
    /// A read-only partition's: the offset up to which `producers` reflects the log (see
    /// [`follow_producers`](Self::follow_producers)).
    followed_end: i64,
}

impl Writer {
    pub(crate) fn new(
        config: &Arc<LogConfig>,
        active: Arc<Segment>,
        init: ActiveInit,
        resume: Resume,
        poison: Arc<Poison>,
    ) -> Writer {
        let marker_present = resume.marker_present;
        let ledger = Ledger::new(resume, active.size(), poison);
        Writer {
            appender: Appender::new(config, active, init),
            ledger,
            config: Arc::clone(config),
            durable: config.is_durable(),
            unflushed: Unflushed::default(),
            marker_present,
            prepared: false,
            closed: false,
            producers: ProducerStateMap::default(),
            snapshot_after_open: true,
            followed_end: 0,
        }
    }

    /// Followers just appeared: buffered batches go to the file, the durable end is published.
    pub(crate) fn serve_followers(&mut self, shared: &Shared) {
        if self.closed || self.check_poison().is_err() {
            return;
        }
        if let Err(e) = self.appender.write_buffer() {
            log::warn!(
                "{}: cannot write buffered batches: {e}",
                shared.dir.display()
            );
            return;
        }
        self.ledger.publish_if_followed(shared, &self.appender);
    }

    /// Takes up changed settings (see `Partition::set_config`); the caller flushed first if
    /// the durability policy changes.
    pub(crate) fn apply_config(&mut self, config: &Arc<LogConfig>) {
        self.config = Arc::clone(config);
        self.durable = config.is_durable();
        self.appender.apply_config(config);
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.durable
    }

    /// Starts from the producer state open rebuilt (as of the log end).
    /// `.txnindex` files an open rewrote: see [`Ledger::txn_indexes_rewritten`].
    pub(crate) fn txn_indexes_rewritten(
        &mut self,
        disk: &dyn crate::disk::Disk,
        dir: &std::path::Path,
        bases: &[i64],
    ) -> Result<()> {
        self.ledger.txn_indexes_rewritten(disk, dir, bases)
    }

    /// Sets the producer state open rebuilt, which reflects the log up to `end`.
    pub(crate) fn set_producers(&mut self, producers: ProducerStateMap, end: i64) {
        self.producers = producers;
        self.followed_end = end;
    }

    /// A read-only partition's catch-up with its writer: replays the batches from where the
    /// producer state stopped to `end` (what a refresh found), so that its transactions, last
    /// stable offset and aborted transactions follow the writer's.
    pub(crate) fn follow_producers(&mut self, shared: &Shared, end: i64) -> Result<()> {
        let from = self.followed_end.max(shared.log_start_offset());
        if end <= from {
            return Ok(());
        }
        let segments = shared.segments();
        let mut aborted = Vec::new();
        let replayed =
            super::producer_state::replay(&mut self.producers, &segments, from..end, &mut aborted);
        match replayed {
            Ok(_) => {}
            // The writer's retention deleted a segment since the listing: what it held lies
            // below the new log start, which the next refresh reads.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        {
            let mut index = shared.aborted.write();
            for entry in aborted {
                index.insert(entry);
            }
        }
        shared.publish_first_unstable(self.producers.first_unstable_offset());
        self.followed_end = end;
        Ok(())
    }

    /// The idempotent producers the partition knows.
    pub(crate) fn producers(&self) -> &ProducerStateMap {
        &self.producers
    }

    /// Writes a producer snapshot at the log end offset if none says as much yet.
    fn snapshot_producers_if_due(&mut self, shared: &Shared) -> Result<()> {
        let next_offset = self.appender.next_offset();
        // An empty log and no producer: nothing a snapshot would spare the next open.
        let nothing = next_offset == shared.log_start_offset() && self.producers.is_empty();
        if !nothing && self.producers.snapshot_due(next_offset) {
            self.snapshot_producers(shared, next_offset)?;
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
        let durable = !self.ledger.has_unsynced();
        self.producers
            .take_snapshot(&*shared.disk, &shared.dir, offset, expiry, durable)?;
        if !durable {
            self.ledger.snapshot_unsynced(offset);
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The buffered bytes of `segment` if it is the active one (empty otherwise).
    pub(crate) fn tail_of(&self, segment: &Arc<Segment>) -> &[u8] {
        self.appender.tail_of(segment)
    }

    /// Before a write: once after open, remove the clean-shutdown marker (so a crash from here
    /// on is seen as unclean); and give the active indexes room to grow (again after a trim).
    /// Nothing to do on almost every append: two flags say so.
    #[inline]
    fn prepare(&mut self, shared: &Shared) -> Result<()> {
        if self.prepared && self.appender.indexes_grown() {
            return Ok(());
        }
        self.prepare_slow(shared)
    }

    #[cold]
    fn prepare_slow(&mut self, shared: &Shared) -> Result<()> {
        if !self.prepared {
            if self.snapshot_after_open {
                // The state open rebuilt, so the next open need not replay the same batches.
                self.snapshot_producers_if_due(shared)?;
                self.snapshot_after_open = false;
            }
            if self.marker_present {
                marker::remove(&*shared.disk, &shared.dir)?;
                self.marker_present = false;
            }
            if self.ledger.checkpoint_stale() {
                // A segment listed as flushed may be the active one again, or a durable prefix
                // may have been cut: appends must not later read as damage to durable data.
                // Segments recovery scanned go to disk first, as the write syncs the directory.
                if self.ledger.has_unsynced() {
                    self.flush(shared)?;
                }
                self.ledger.refresh_checkpoint(shared, &self.appender)?;
            }
            self.prepared = true;
        }
        self.appender.grow_indexes(&self.config)
    }

    /// Appends `records` as one batch compressed with `options.codec`; with a stamp, as an
    /// idempotent producer's batch, checked against the producer state first (see
    /// [`super::producer_state`]).
    ///
    /// Inlined into the partition's append, with [`place`](Self::place), [`finish`](Self::finish)
    /// and [`Appender::encode`]: LLVM left them as calls, which cost about 130 instructions per
    /// one-record append (callgrind), 1-9% of its time depending on the CPU.
    #[inline(always)]
    pub(crate) fn append(
        &mut self,
        shared: &Shared,
        records: &[Record<'_>],
        options: AppendOptions,
    ) -> Result<Appended> {
        let AppendOptions {
            stamp,
            codec,
            wall_ms,
            transactional,
        } = options;
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        let codec = self.config.compression_type().codec_for(codec);
        check_payload(&self.config, records, codec)?;
        if self.config.cleanup_policy().compacts() {
            check_keys(shared, records)?;
        }
        let now = self.now(records, stamp, wall_ms);
        self.prepare(shared)?;
        let base_offset = self.appender.next_offset();
        let mut params = BatchParams {
            base_offset,
            partition_leader_epoch: PARTITION_LEADER_EPOCH,
            timestamp_type: self.config.message_timestamp_type(),
            ..BatchParams::default()
        };
        let mut last_seq = None;
        if let Some(stamp) = stamp {
            self.producers.expire_if_due(Expiry {
                now_ms: now,
                expiration_ms: self.config.producer_id_expiration_ms(),
            });
            match self.producers.check(stamp, records.len(), transactional) {
                Ok(Check::Duplicate(info, seq)) => return Ok(Appended::Duplicate(info, seq)),
                Ok(Check::Append { last_seq: last }) => last_seq = Some(last),
                Err(rejection) => return Err(rejected(shared, stamp, rejection)),
            }
            params.producer_id = stamp.producer_id;
            params.producer_epoch = stamp.epoch;
            params.base_sequence = stamp.base_sequence;
            params.transactional = transactional;
        }
        let encoded = self
            .appender
            .encode(&self.config, &params, records, now, codec)?;
        let batch = match self.place(shared, &encoded, wall_ms, None)? {
            Ok(batch) => batch,
            Err(commit_first) => return Ok(commit_first),
        };
        let info = AppendInfo {
            base_offset,
            last_offset: encoded.last_offset,
        };
        if let (Some(stamp), Some(last_seq)) = (stamp, last_seq) {
            self.producers.accept(Accepted {
                stamp,
                last_seq,
                info,
                max_timestamp: encoded.max_timestamp,
                now_ms: now,
                // The commit that acknowledges it; a lazy append's is the last one.
                commit_seq: if self.durable {
                    self.ledger.next_seq()
                } else {
                    self.ledger.appended_seq()
                },
                transactional,
            });
            if transactional {
                shared.publish_first_unstable(self.producers.first_unstable_offset());
            }
        }
        self.finish(shared, batch, info, records.len())
    }

    /// Puts an encoded batch in the log: rolls first if it must (to `roll_to` when given, else
    /// at the log end offset when [`Appender::should_roll`] says so), and writes the buffer out
    /// if full. `Err(Appended::CommitFirst)` when batches waiting for a commit must reach the old
    /// segment before the roll (nothing appended then).
    #[inline(always)]
    fn place(
        &mut self,
        shared: &Shared,
        encoded: &EncodedBatch,
        wall_ms: i64,
        roll_to: Option<i64>,
    ) -> Result<std::result::Result<BatchEnd, Appended>> {
        let roll_to = roll_to.or_else(|| {
            self.appender
                .should_roll(&self.config, encoded)
                .then(|| self.appender.next_offset())
        });
        if let Some(base) = roll_to {
            if self.ledger.has_pending() {
                // The old segment's batches must be published before it reads as sealed.
                self.appender.discard(encoded);
                return Ok(Err(Appended::CommitFirst(self.ledger.appended_seq())));
            }
            let batch = self.appender.take_encoded(encoded);
            self.roll_at(shared, base)?;
            self.appender.restore_encoded(&batch);
        }
        if !self.durable {
            // With followers in other processes, lazily flushed batches go to the file at once.
            let limit = if shared.followers_present_at(wall_ms) {
                0
            } else {
                self.config.write_buffer_bytes()
            };
            self.appender.write_if_full(encoded, limit)?;
        }
        self.appender.accept(encoded).map(Ok)
    }

    /// Publishes a placed batch of `records` records, or queues it for the next commit round
    /// when appends are durable.
    #[inline(always)]
    fn finish(
        &mut self,
        shared: &Shared,
        batch: BatchEnd,
        info: AppendInfo,
        records: usize,
    ) -> Result<Appended> {
        if self.durable {
            // Only durable appends wait for a commit round.
            let seq = self.ledger.push_pending(self.appender.active(), batch);
            return Ok(Appended::Commit(info, seq));
        }
        batch.publish(self.appender.active(), shared);
        shared.fire_watchers();
        self.flush_if_due(shared, records as i64)?;
        Ok(Appended::Done(info))
    }

    /// Appends a COMMIT or ABORT marker closing `producer_id`'s transaction (Kafka's
    /// `appendEndTxnMarker`): a control batch at the producer's (possibly raised) epoch, never
    /// compressed. An ABORT also goes into the aborted-transaction index (the segment's
    /// `.txnindex`, fsynced with durable appends) before the last stable offset moves past it.
    pub(crate) fn append_marker(
        &mut self,
        shared: &Shared,
        marker: TxnMarker,
        wall_ms: i64,
    ) -> Result<Appended> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        let TxnMarker {
            producer_id,
            epoch,
            marker,
        } = marker;
        if let Err(rejection) =
            self.producers
                .check_marker(producer_id, epoch, marker.coordinator_epoch)
        {
            let (topic, partition) = topic_partition(shared);
            return Err(match rejection {
                MarkerRejection::Fenced => Error::ProducerFenced {
                    producer: String::new(),
                    producer_id,
                    epoch,
                },
                MarkerRejection::CoordinatorFenced { known } => Error::CoordinatorFenced {
                    topic,
                    partition,
                    producer_id,
                    coordinator_epoch: marker.coordinator_epoch,
                    known,
                },
            });
        }
        let now = match self.config.has_system_clock() {
            true => wall_ms,
            false => self.config.clock().now_ms(),
        };
        self.prepare(shared)?;
        let base_offset = self.appender.next_offset();
        let params = BatchParams {
            base_offset,
            partition_leader_epoch: PARTITION_LEADER_EPOCH,
            timestamp_type: self.config.message_timestamp_type(),
            producer_id,
            producer_epoch: epoch,
            transactional: true,
            control: true,
            ..BatchParams::default()
        };
        let (key, value) = (marker.key(), marker.value());
        let record = Record::keyed(&key, &value).with_timestamp(now);
        let encoded =
            self.appender
                .encode(&self.config, &params, &[record], now, Compression::None)?;
        let batch = match self.place(shared, &encoded, wall_ms, None)? {
            Ok(batch) => batch,
            Err(commit_first) => return Ok(commit_first),
        };
        let info = AppendInfo {
            base_offset,
            last_offset: encoded.last_offset,
        };
        let done = self.producers.complete_txn(
            producer_id,
            epoch,
            marker,
            base_offset,
            encoded.max_timestamp,
        );
        if done.result == TxnResult::Abort {
            let entry = self.producers.aborted_entry(&done);
            shared.aborted.write().insert(entry);
            if let Err(e) =
                txn::append_entry(&*shared.disk, self.appender.active(), &entry, self.durable)
            {
                // The marker is in the log but its index entry may not be: only a reopen
                // (which rebuilds the entry) makes the two agree again.
                self.poison(&e);
                return Err(e);
            }
        }
        shared.publish_first_unstable(self.producers.first_unstable_offset());
        self.finish(shared, batch, info, 1)
    }

    /// The time an append stamps its records with: the wall-clock reading it took under the
    /// default clock; a configured clock is asked only when a record, the timestamp type or a
    /// producer's expiry needs the time.
    #[inline]
    fn now(&self, records: &[Record<'_>], stamp: Option<ProducerStamp>, wall_ms: i64) -> i64 {
        let config = &self.config;
        if config.has_system_clock() {
            return wall_ms;
        }
        let needs_clock = stamp.is_some()
            || config.message_timestamp_type() == TimestampType::LogAppendTime
            || records.iter().any(|r| r.timestamp.is_none());
        if needs_clock {
            config.clock().now_ms()
        } else {
            0
        }
    }

    /// Interval flushing (`flush.messages` above 1, `flush.ms`): fsyncs once enough records
    /// are unflushed or the oldest is old enough. A failure poisons the partition.
    #[inline]
    fn flush_if_due(&mut self, shared: &Shared, records: i64) -> Result<()> {
        // Without `flush.ms`, only the count makes a flush due: no clock to read.
        let counted = self.unflushed.records.saturating_add(records);
        if self.config.flush_ms() == i64::MAX && counted < self.config.flush_messages() {
            self.unflushed.records = counted;
            return Ok(());
        }
        self.flush_if_due_slow(shared, records)
    }

    #[cold]
    fn flush_if_due_slow(&mut self, shared: &Shared, records: i64) -> Result<()> {
        let config = &self.config;
        let unflushed = &mut self.unflushed;
        if unflushed.records == 0 && config.flush_ms() != i64::MAX {
            unflushed.since_ms = config.clock().now_ms();
        }
        unflushed.records = unflushed.records.saturating_add(records);
        let due = unflushed.records >= config.flush_messages()
            || (config.flush_ms() != i64::MAX
                && config.clock().now_ms().saturating_sub(unflushed.since_ms) >= config.flush_ms());
        if due && let Err(e) = self.flush(shared) {
            self.poison(&e);
            return Err(e);
        }
        Ok(())
    }

    fn check_poison(&self) -> Result<()> {
        self.ledger.poison_flag().check()
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
        if !self.ledger.poison_flag().set(error) {
            return;
        }
        let active = Arc::clone(self.appender.active());
        log::error!(
            "partition {} poisoned: {error}; writes are refused until it is reopened",
            active.dir().display()
        );
        self.ledger.drop_pending();
        let synced_end = self.ledger.synced_end();
        // Best effort: the disk is failing. The next open cuts back to the durable point.
        let base = active.base_offset();
        let _ = checkpoint::write_poison(active.disk(), active.dir(), base, synced_end);
        if self.durable {
            if let Ok(log) = active.log() {
                let _ = log.set_len(synced_end);
            }
            active.set_file_size(synced_end.min(active.file_size()));
            self.appender.discard_buffer();
        }
    }

    /// Whether batches wait for a group commit.
    pub(crate) fn has_pending(&self) -> bool {
        self.ledger.has_pending()
    }

    /// The sequence number of the last append accepted.
    pub(crate) fn appended_seq(&self) -> u64 {
        self.ledger.appended_seq()
    }

    /// First half of a group commit, under the writer lock: writes the buffer out and returns
    /// what the fsyncs must cover to make every append through the set's sequence number
    /// durable.
    pub(crate) fn begin_commit(&mut self) -> Result<SyncSet> {
        self.check_poison()?;
        self.appender.write_buffer()?;
        self.ledger.sync_set(&self.appender, &self.producers)
    }

    /// Second half of a group commit, once `set`'s fsyncs succeeded: records what they made
    /// durable and publishes the batches they covered.
    pub(crate) fn finish_commit(&mut self, shared: &Shared, set: &SyncSet) -> Result<()> {
        self.ledger.synced(shared, &self.appender, set)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    fn roll(&mut self, shared: &Shared) -> Result<()> {
        let base = self.appender.next_offset();
        self.roll_at(shared, base)
    }

    /// [`roll`](Self::roll) to a segment based at `base`, at or after the log end offset (a
    /// replicated batch after a gap starts its own segment, as on a Kafka follower).
    fn roll_at(&mut self, shared: &Shared, base: i64) -> Result<()> {
        self.appender.finish()?;
        let config = Arc::clone(&self.config);
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
        let old = self.appender.start(&config, segment);
        self.ledger.rolled(old);
        Ok(())
    }

    /// Writes the buffered bytes to the active segment's file (no fsync).
    pub(crate) fn write_buffer(&mut self) -> Result<()> {
        self.appender.write_buffer()
    }

    /// Cuts the active segment's preallocated zeros (see [`super::appender::PREALLOCATE_BYTES`]).
    pub(crate) fn trim_log(&mut self) -> Result<()> {
        self.appender.trim_log()
    }

    /// Writes the buffer out and fsyncs what the ledger's sync set holds (see
    /// [`super::ledger`]): when it returns, every append before it is durable.
    pub(crate) fn flush(&mut self, shared: &Shared) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.check_poison()?;
        self.appender.write_buffer()?;
        let set = self.ledger.sync_set(&self.appender, &self.producers)?;
        set.run(shared)?;
        self.ledger.synced(shared, &self.appender, &set)?;
        // Interval flushing counts from here again.
        self.unflushed = Unflushed::default();
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
        // Under `cleanup.policy=compact` alone, only the log start deletes segments.
        let deletes = config.cleanup_policy().deletes();
        let limits = Limits {
            log_start_offset: shared.log_start_offset(),
            retention_bytes: if deletes {
                config.retention_bytes()
            } else {
                -1
            },
            retention_ms: if deletes { config.retention_ms() } else { -1 },
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
            // After the log start moved: a reader checks it after a lookup that found nothing.
            shared.aborted.write().remove_range(i64::MIN..offset);
            self.producers
                .delete_snapshots_below(&*shared.disk, &shared.dir, offset)?;
            self.ledger.log_start_checkpointed(shared, &self.appender)?;
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
        self.ledger.removed(shared, &self.appender, &bases)?;
        let mut deleted = Vec::with_capacity(removed.len());
        for segment in removed {
            segment.mark_deleted()?;
            deleted.push((segment.base_offset(), segment.size()));
        }
        Ok(deleted)
    }

    /// The recovery checkpoint as it stands, for the periodic write; `None` once closed or
    /// poisoned, or while a sealed segment waits for its fsync (see
    /// [`Ledger::periodic_recovery_point`]).
    pub(crate) fn periodic_recovery_point(
        &mut self,
        shared: &Shared,
    ) -> Option<(u64, super::checkpoint::RecoveryPoint)> {
        if self.closed {
            return None;
        }
        self.ledger.periodic_recovery_point(shared, &self.appender)
    }

    pub(crate) fn close(&mut self, shared: &Shared) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.check_poison()?;
        self.appender.finish()?;
        self.flush(shared)?;
        self.appender.sync_indexes()?;
        // Kafka's snapshot at clean shutdown, at the log end: a clean open replays nothing.
        self.snapshot_producers_if_due(shared)?;
        // The recovery point at clean shutdown, as Kafka writes it: the marker goes with the
        // first write after the next open, the checkpoint stays.
        self.ledger.checkpoint(shared, &self.appender)?;
        let disk = &*shared.disk;
        // The active segment's aborted-transaction entries are durable before the marker
        // says everything is.
        let txn_index = self.appender.active().path(FileKind::TxnIndex);
        if disk::file_len(disk, &txn_index)?.is_some() {
            disk::File::open(disk, txn_index, disk::OpenMode::Write)?.sync_data()?;
        }
        let mut records = Vec::new();
        for segment in shared.segments.read().iter() {
            records.push(SegmentRecord::of(disk, segment)?);
        }
        marker::write(disk, &shared.dir, &records)?;
        self.marker_present = true;
        self.closed = true;
        Ok(())
    }
}

/// Refuses a batch whose records alone pass the limit, before encoding a huge value: the
/// batch's `max.message.bytes`, or for a compressed batch (which may hold far more than that
/// of records, the limit being on the compressed batch) what it may decompress to.
#[inline]
fn check_payload(config: &LogConfig, records: &[Record<'_>], codec: Compression) -> Result<()> {
    let (max, setting) = match codec {
        Compression::None => (
            usize::try_from(config.max_message_bytes()).unwrap_or(0),
            "max.message.bytes",
        ),
        _ => (
            config.max_decompressed_batch_bytes(),
            "max_decompressed_batch_bytes",
        ),
    };
    let payload = records.iter().fold(0usize, |sum, r| {
        let headers = r
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len));
        sum.saturating_add(r.key.map_or(0, <[u8]>::len))
            .saturating_add(r.value.map_or(0, <[u8]>::len))
            .saturating_add(headers.fold(0, usize::saturating_add))
    });
    if payload > max {
        return Err(Error::RecordTooLarge {
            size: payload,
            at_least: true,
            limit: max,
            setting,
        });
    }
    Ok(())
}

/// Refuses an append to a compacted log holding a record without a key, as Kafka does:
/// compaction could never replace or delete it.
#[cold]
fn check_keys(shared: &Shared, records: &[Record<'_>]) -> Result<()> {
    match records.iter().position(|r| r.key.is_none()) {
        None => Ok(()),
        Some(index) => {
            let (topic, partition) = topic_partition(shared);
            Err(Error::KeyRequired {
                topic,
                partition,
                index,
            })
        }
    }
}

/// The topic and partition an error names: from the directory's name (`<topic>-<partition>`),
/// or the directory's name and 0 for a partition outside a store.
pub(crate) fn topic_partition(shared: &Shared) -> (String, u32) {
    let name = shared
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match crate::layout::parse_partition_dir(&name) {
        Some((topic, partition)) => (topic.to_owned(), partition),
        None => (name, 0),
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
        Rejection::InvalidTxnState => {
            let (topic, partition) = topic_partition(shared);
            Error::InvalidTxnState {
                topic,
                partition,
                producer_id: stamp.producer_id,
                reason: "a non-transactional append while its transaction is open".into(),
            }
        }
        Rejection::OutOfOrder { expected } => {
            let (topic, partition) = topic_partition(shared);
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
