//! Idempotent and transactional producers on one partition: Kafka's `ProducerStateManager`.
//!
//! Each producer id maps to its epoch and the metadata of its last
//! [`BATCHES_TO_RETAIN`] batches (first and last sequence, first and last offset, max
//! timestamp). An idempotent append is checked against it under the writer lock before its batch
//! is encoded (Kafka's `ProducerAppendInfo` rules for a client append):
//!
//! 1. **duplicate**: same epoch and one of the remembered batches has the same first and last
//!    sequence: nothing is written, the original offsets are returned;
//! 2. **fenced**: an epoch below the known one;
//! 3. **sequence**: a new epoch must start at 0 (anything goes for a producer the partition does
//!    not know); the same epoch must continue at last sequence + 1, wrapping from `i32::MAX` to
//!    0. Otherwise `OutOfOrderSequence`.
//!
//! The state changes only when a batch is accepted.
//!
//! **Transactions.** A producer's first transactional batch opens its transaction in the
//! partition (its offset is the transaction's first offset); a non-transactional batch from a
//! producer with an open transaction is refused (Kafka's `InvalidTxnState`). A COMMIT or ABORT
//! marker closes it; a marker is refused for an epoch below the producer's (fenced) or a
//! coordinator epoch below the last one seen. The partition's last stable offset is the first
//! offset of its oldest open transaction (or the log end when none is open).
//!
//! **Snapshots** (`<offset:020>.snapshot`, Kafka's `ProducerSnapshot` version 1, big-endian):
//!
//! | position | size   | field                                              |
//! |----------|--------|----------------------------------------------------|
//! | 0        | 2      | version, 1                                         |
//! | 2        | 4      | CRC-32C of bytes 6 to the end                      |
//! | 6        | 4      | entry count                                        |
//! | 10       | 46 × n | entries, ascending producer id                     |
//!
//! An entry: producer id i64, epoch i16, last sequence i32, last offset i64, offset delta i32
//! (last minus first offset of the last batch), timestamp i64 (of the last batch),
//! coordinator epoch i32, current transaction's first offset i64 (-1: none). A last offset below
//! 0 means no batch is remembered. Only the last batch of each producer is kept, as in Kafka.
//! The file's offset is exclusive: the state reflects every batch below it. Snapshots are taken
//! at each roll (at the new segment's base), at a clean close (at the log end) and at the first
//! write after an open that had to replay batches; the newest two are kept, and those below the
//! log start go when it rises.
//!
//! **Opening** loads the newest snapshot at or below the log end that decodes (a corrupt one is
//! deleted and reported), deletes those above the log end (what they describe was cut) or below
//! the log start, then replays the headers of the batches after it. After a clean close with no
//! snapshot at all (files from before producers existed, or Kafka's), nothing is replayed, as
//! Kafka does on upgrade.
//!
//! **Expiry**: a producer idle for `producer.id.expiration.ms` is dropped when a snapshot is
//! taken, on open, by retention, and by appends every [`EXPIRATION_CHECK_INTERVAL_MS`], so the
//! map stays bounded. Idle counts from its last batch's max timestamp, or from the append's
//! time if later (Kafka uses the former only), so old CreateTime timestamps (a backfill) do not
//! expire a busy producer.
//!
//! Snapshots written while sealed segments await their fsync (`flush.messages` above 1) are
//! not synced by the append that rolls: the next flush syncs them (see
//! [`ProducerStateMap::take_snapshot`]).

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::record::{
    BATCH_HEADER_LEN, Batch, BatchHeader, EndTxnMarker, NO_PRODUCER_EPOCH, NO_SEQUENCE, TxnResult,
};
use crate::segment::file_name::{self, FileKind};
use crate::segment::txn_index::AbortedTxn;
use crate::segment::{Chunk, Segment};

use super::AppendInfo;

/// Batches remembered per producer for duplicate detection: Kafka's `NUM_BATCHES_TO_RETAIN`,
/// matching a producer's `max.in.flight.requests.per.connection` limit of 5.
pub(crate) const BATCHES_TO_RETAIN: usize = 5;

/// When producers expire: named, because both are `i64` milliseconds that positional
/// arguments would let a caller swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// The time now, in ms since the epoch.
    pub(crate) now_ms: i64,
    /// `producer.id.expiration.ms`: how long a producer may stay idle.
    pub(crate) expiration_ms: i64,
}

impl Expiry {
    /// As of now by `config`'s clock, with its `producer.id.expiration.ms`.
    pub(crate) fn now(config: &LogConfig) -> Expiry {
        Expiry {
            now_ms: config.clock().now_ms(),
            expiration_ms: config.producer_id_expiration_ms(),
        }
    }
}

/// How often appends look for expired producers: Kafka's
/// `producer.id.expiration.check.interval.ms` default, 10 minutes.
pub(crate) const EXPIRATION_CHECK_INTERVAL_MS: i64 = 600_000;

/// Snapshot files kept: the newest two, so a corrupt newest one still leaves one to start from.
const SNAPSHOTS_KEPT: usize = 2;

const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_HEADER_LEN: usize = 10;
const SNAPSHOT_CRC_START: usize = 6;
const SNAPSHOT_ENTRY_LEN: usize = 46;
const _: () = assert!(SNAPSHOT_ENTRY_LEN == 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8);

/// What an idempotent append stamps into its batch: Kafka's `producerId`, `producerEpoch` and
/// `baseSequence` header fields. The records get sequences `base_sequence`,
/// `base_sequence + 1`, ... (wrapping from `i32::MAX` to 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    /// The producer id, at least 0.
    pub producer_id: i64,
    /// The producer epoch, at least 0. A partition refuses epochs below the highest it has
    /// seen for this id.
    pub epoch: i16,
    /// The sequence number of the batch's first record, at least 0.
    pub base_sequence: i32,
}

/// An idempotent producer a partition knows (Kafka's `DescribeProducers` answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// The sequence of its last record appended, or -1 if no batch is remembered.
    pub last_sequence: i32,
    /// The offset of its last record appended, or -1 if no batch is remembered.
    pub last_offset: i64,
    /// When it last wrote: its last batch's max timestamp, or the time of that append if later
    /// (replayed batches have only the former). `producer.id.expiration.ms` counts from it.
    pub last_timestamp: i64,
    /// The coordinator epoch of its last transaction marker, or -1.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here, if one is open.
    pub current_txn_first_offset: Option<i64>,
}

/// How opening rebuilt the producer state (part of the
/// [`RecoveryReport`](super::RecoveryReport)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStateRecovery {
    /// The snapshot the state started from (its offset), if any.
    pub snapshot_offset: Option<i64>,
    /// Batch headers were replayed from this offset to the log end; `None` when the snapshot
    /// was at the log end, or after a clean close with no snapshot at all.
    pub replayed_from: Option<i64>,
    /// Batches with a producer id among those replayed.
    pub batches_replayed: u64,
    /// Snapshots that did not decode, with why; they were deleted and an older one used.
    pub corrupt_snapshots: Vec<(PathBuf, String)>,
    /// Snapshots deleted because they lie above the log end (what they describe was cut) or
    /// below the log start.
    pub removed_snapshots: Vec<PathBuf>,
    /// Producers dropped as expired (`producer.id.expiration.ms`).
    pub expired_producers: usize,
}

/// One remembered batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    last_seq: i32,
    last_offset: i64,
    /// Last offset minus first offset.
    offset_delta: i32,
    timestamp: i64,
    /// The group-commit sequence number the batch was appended under (0 for batches loaded at
    /// open, which are on disk): a duplicate waits for that commit before it is acknowledged.
    commit_seq: u64,
}

impl BatchMetadata {
    /// The sequence of the batch's first record.
    fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    /// The offset of the batch's first record.
    fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// What is known of one producer id (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_TO_RETAIN`].
    batches: VecDeque<BatchMetadata>,
    last_timestamp: i64,
    /// The coordinator epoch of the last marker, or -1.
    coordinator_epoch: i32,
    /// First offset of its open transaction, or -1.
    current_txn_first_offset: i64,
}

impl ProducerEntry {
    /// A producer not seen before: no epoch, no batch (Kafka's `ProducerStateEntry.empty`).
    fn new() -> ProducerEntry {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: -1,
        }
    }

    /// The sequence of the last record remembered, or -1.
    fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// A new epoch forgets the batches of the old one.
    fn update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    /// Remembers a batch; `last_timestamp` is what expiry counts from.
    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata, last_timestamp: i64) {
        self.update_epoch(epoch);
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = last_timestamp;
    }

    /// Idle for `expiry.expiration_ms` and in no open transaction (Kafka's
    /// `isProducerExpired`).
    fn is_expired(&self, expiry: Expiry) -> bool {
        self.current_txn_first_offset < 0
            && expiry.now_ms.saturating_sub(self.last_timestamp) >= expiry.expiration_ms
    }
}

/// Why an idempotent append is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The batch's epoch is below the known one.
    Fenced,
    /// The batch's first sequence is not the one expected next.
    OutOfOrder {
        /// The sequence expected.
        expected: i32,
    },
    /// A non-transactional batch from a producer whose transaction is open.
    InvalidTxnState,
}

/// Why a transaction marker is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerRejection {
    /// The marker's producer epoch is below the known one.
    Fenced,
    /// The marker's coordinator epoch is below the last one seen (Kafka's
    /// `TransactionCoordinatorFenced`).
    CoordinatorFenced {
        /// The last coordinator epoch seen.
        known: i32,
    },
}

/// A transaction a marker closed (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub(crate) producer_id: i64,
    /// Its first batch's offset; the marker's own when it had no batch in this partition.
    pub(crate) first_offset: i64,
    /// The marker's offset.
    pub(crate) last_offset: i64,
    pub(crate) result: TxnResult,
}

/// What the check of an idempotent append decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Append it; its last record gets this sequence.
    Append { last_seq: i32 },
    /// A retry of a remembered batch: acknowledge it with the original offsets once the commit
    /// it was appended under is done.
    Duplicate(AppendInfo, u64),
}

/// A batch accepted for appending, as the state records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) stamp: ProducerStamp,
    pub(crate) last_seq: i32,
    pub(crate) info: AppendInfo,
    pub(crate) max_timestamp: i64,
    /// The clock's time at the append.
    pub(crate) now_ms: i64,
    pub(crate) commit_seq: u64,
    /// A transactional batch: it opens the producer's transaction if none is open.
    pub(crate) transactional: bool,
}

/// The producer state of one partition, with the snapshot files it knows of.
#[derive(Debug, Default)]
pub(crate) struct ProducerStateMap {
    producers: BTreeMap<i64, ProducerEntry>,
    /// The open transactions, as (first offset, producer id): the first is the oldest.
    ongoing: BTreeSet<(i64, i64)>,
    /// Offsets of the snapshot files in the directory.
    snapshots: BTreeSet<i64>,
    /// When appends last looked for expired producers.
    last_expiry_check_ms: i64,
}

impl ProducerStateMap {
    /// Checks an idempotent append of `count` records (at least 1), transactional or not,
    /// against the state.
    pub(crate) fn check(
        &self,
        stamp: ProducerStamp,
        count: usize,
        transactional: bool,
    ) -> Result<Check, Rejection> {
        let delta = i32::try_from(count.saturating_sub(1)).unwrap_or(i32::MAX);
        let first_seq = stamp.base_sequence;
        let last_seq = increment_sequence(first_seq, delta);
        let Some(entry) = self.producers.get(&stamp.producer_id) else {
            // Unknown (new, expired, or its data deleted): any sequence is accepted.
            return Ok(Check::Append { last_seq });
        };
        if entry.epoch == stamp.epoch
            && let Some(b) = entry
                .batches
                .iter()
                .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
        {
            let info = AppendInfo {
                base_offset: b.first_offset(),
                last_offset: b.last_offset,
            };
            return Ok(Check::Duplicate(info, b.commit_seq));
        }
        if stamp.epoch < entry.epoch {
            return Err(Rejection::Fenced);
        }
        if !transactional && entry.current_txn_first_offset >= 0 {
            return Err(Rejection::InvalidTxnState);
        }
        if stamp.epoch != entry.epoch {
            if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
                return Err(Rejection::OutOfOrder { expected: 0 });
            }
        } else {
            let last = entry.last_seq();
            if !in_sequence(last, first_seq) {
                return Err(Rejection::OutOfOrder {
                    expected: next_sequence(last),
                });
            }
        }
        Ok(Check::Append { last_seq })
    }

    /// Records an accepted idempotent batch.
    pub(crate) fn accept(&mut self, batch: Accepted) {
        let entry = self
            .producers
            .entry(batch.stamp.producer_id)
            .or_insert_with(ProducerEntry::new);
        let delta = batch.info.last_offset - batch.info.base_offset;
        // Kafka counts expiry from the batch's max timestamp; the append time too here, so a
        // producer writing records with old CreateTime timestamps (a backfill) is not forgotten
        // while it is busy.
        entry.add_batch(
            batch.stamp.epoch,
            BatchMetadata {
                last_seq: batch.last_seq,
                last_offset: batch.info.last_offset,
                offset_delta: i32::try_from(delta).unwrap_or(i32::MAX),
                timestamp: batch.max_timestamp,
                commit_seq: batch.commit_seq,
            },
            batch.max_timestamp.max(batch.now_ms),
        );
        if batch.transactional && entry.current_txn_first_offset < 0 {
            entry.current_txn_first_offset = batch.info.base_offset;
            self.ongoing
                .insert((batch.info.base_offset, batch.stamp.producer_id));
        }
    }

    /// Checks a COMMIT or ABORT marker of `producer_id` at `epoch` from a coordinator at
    /// `coordinator_epoch` (Kafka's `checkProducerEpoch` and coordinator-epoch check).
    pub(crate) fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerRejection> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if epoch < entry.epoch {
            return Err(MarkerRejection::Fenced);
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(MarkerRejection::CoordinatorFenced {
                known: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker at `offset` (checked with [`check_marker`](Self::check_marker)):
    /// closes the producer's transaction, if open, and raises its epoch to the marker's.
    pub(crate) fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
        timestamp: i64,
    ) -> CompletedTxn {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(ProducerEntry::new);
        entry.update_epoch(epoch);
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        let first_offset = match entry.current_txn_first_offset {
            first if first >= 0 => {
                self.ongoing.remove(&(first, producer_id));
                first
            }
            _ => offset,
        };
        entry.current_txn_first_offset = -1;
        CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            result: marker.result,
        }
    }

    /// The first offset of the oldest open transaction, if any: the last stable offset.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|&(first, _)| first)
    }

    /// The `.txnindex` entry of an aborted transaction just completed: the last stable offset
    /// it records is the oldest other open transaction's first offset, or the offset after its
    /// marker (Kafka's `lastStableOffset(completedTxn)`).
    pub(crate) fn aborted_entry(&self, txn: &CompletedTxn) -> AbortedTxn {
        AbortedTxn {
            producer_id: txn.producer_id,
            first_offset: txn.first_offset,
            last_offset: txn.last_offset,
            last_stable_offset: self
                .ongoing
                .iter()
                .find(|&&(_, pid)| pid != txn.producer_id)
                .map_or(txn.last_offset + 1, |&(first, _)| first),
        }
    }

    /// The open transactions, as (producer id, first offset), oldest first.
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing
            .iter()
            .map(|&(first, pid)| (pid, first))
            .collect()
    }

    /// Replays a batch read back from the log (Kafka's replication origin: no checks); `marker`
    /// is a control batch's COMMIT or ABORT. Batches without a producer id are ignored.
    /// Returns the transaction a marker completed.
    pub(crate) fn replay(
        &mut self,
        h: &BatchHeader,
        marker: Option<EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        if h.is_control() {
            // A transaction marker: ends the transaction, may bump the epoch. Another control
            // record (not a marker) changes nothing.
            let marker = marker?;
            return Some(self.complete_txn(
                h.producer_id,
                h.producer_epoch,
                marker,
                h.base_offset,
                h.max_timestamp,
            ));
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(ProducerEntry::new);
        entry.add_batch(
            h.producer_epoch,
            BatchMetadata {
                last_seq: increment_sequence(h.base_sequence, h.last_offset_delta),
                last_offset: h.last_offset(),
                offset_delta: h.last_offset_delta,
                timestamp: h.max_timestamp,
                commit_seq: 0,
            },
            h.max_timestamp,
        );
        if h.is_transactional() && entry.current_txn_first_offset < 0 {
            entry.current_txn_first_offset = h.base_offset;
            self.ongoing.insert((h.base_offset, h.producer_id));
        }
        None
    }

    /// Drops producers idle for `expiry.expiration_ms`; returns how many.
    pub(crate) fn expire(&mut self, expiry: Expiry) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| !e.is_expired(expiry));
        self.last_expiry_check_ms = expiry.now_ms;
        before - self.producers.len()
    }

    /// [`expire`](Self::expire), at most every [`EXPIRATION_CHECK_INTERVAL_MS`] (or every
    /// `expiry.expiration_ms` if shorter): cheap enough for every idempotent append.
    pub(crate) fn expire_if_due(&mut self, expiry: Expiry) {
        let interval = EXPIRATION_CHECK_INTERVAL_MS.min(expiry.expiration_ms);
        let now_ms = expiry.now_ms;
        if now_ms.saturating_sub(self.last_expiry_check_ms) >= interval
            || now_ms < self.last_expiry_check_ms
        {
            self.expire(expiry);
        }
    }

    /// The producers known, ascending by id.
    pub(crate) fn producers(&self) -> Vec<ProducerState> {
        self.producers
            .iter()
            .map(|(&producer_id, e)| ProducerState {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_offset: e.batches.back().map_or(-1, |b| b.last_offset),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_first_offset: (e.current_txn_first_offset >= 0)
                    .then_some(e.current_txn_first_offset),
            })
            .collect()
    }

    /// The highest producer id known.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().next_back().copied()
    }

    /// The highest coordinator epoch of any producer's last marker (-1 if none).
    pub(crate) fn max_coordinator_epoch(&self) -> i32 {
        self.producers
            .values()
            .map(|e| e.coordinator_epoch)
            .max()
            .unwrap_or(-1)
    }

    /// Whether the snapshot file at `offset` is still kept.
    pub(crate) fn has_snapshot(&self, offset: i64) -> bool {
        self.snapshots.contains(&offset)
    }

    /// Whether a snapshot at `offset` would say something no snapshot file says yet.
    pub(crate) fn snapshot_due(&self, offset: i64) -> bool {
        self.snapshots.last().is_none_or(|&last| last < offset)
    }

    /// Writes the state (after expiring idle producers) as the snapshot at `offset` (temporary
    /// file, then rename) and deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots.
    ///
    /// With `durable` the file and the directory are fsynced (Kafka's snapshot at roll). The
    /// caller passes `false` while a sealed segment's data is not yet fsynced (Kafka's policy,
    /// `flush.messages` above 1): a directory sync would make the next segment's entry durable
    /// before that data, and a power loss could then leave a gap between them; and an append
    /// under that policy does not wait for fsyncs. The caller then fsyncs the snapshot before
    /// its next directory sync (a flush or commit round). Until then a power loss may lose the
    /// snapshot or leave it empty (found corrupt and skipped on open): a longer replay, nothing
    /// worse.
    pub(crate) fn take_snapshot(
        &mut self,
        disk: &dyn Disk,
        dir: &Path,
        offset: i64,
        expiry: Expiry,
        durable: bool,
    ) -> Result<()> {
        self.expire(expiry);
        let path = snapshot_path(dir, offset);
        if durable {
            disk::write_atomic(disk, &path, &self.encode_snapshot())?;
        } else {
            disk::write_atomic_unsynced(disk, &path, &self.encode_snapshot())?;
        }
        self.snapshots.insert(offset);
        while self.snapshots.len() > SNAPSHOTS_KEPT {
            let Some(oldest) = self.snapshots.pop_first() else {
                break;
            };
            // An older snapshot that survives a crash is still true of its offset: no
            // directory sync is needed.
            disk::remove_file(disk, &snapshot_path(dir, oldest))?;
        }
        Ok(())
    }

    /// Deletes the snapshots below `offset` (the new log start).
    pub(crate) fn delete_snapshots_below(
        &mut self,
        disk: &dyn Disk,
        dir: &Path,
        offset: i64,
    ) -> Result<()> {
        while let Some(&oldest) = self.snapshots.first().filter(|&&o| o < offset) {
            disk::remove_file(disk, &snapshot_path(dir, oldest))?;
            self.snapshots.remove(&oldest);
        }
        Ok(())
    }

    /// The state in Kafka's snapshot layout.
    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        // The count and the entries first: the header's CRC covers them.
        let mut body = Vec::with_capacity(
            SNAPSHOT_HEADER_LEN - SNAPSHOT_CRC_START + SNAPSHOT_ENTRY_LEN * self.len(),
        );
        let count = i32::try_from(self.len()).unwrap_or(i32::MAX);
        body.extend_from_slice(&count.to_be_bytes());
        for (&producer_id, e) in self.producers.iter().take(count as usize) {
            let last = e.batches.back();
            body.extend_from_slice(&producer_id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_seq().to_be_bytes());
            body.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
            body.extend_from_slice(&last.map_or(0i32, |b| b.offset_delta).to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
        }
        let crc = crate::crc::crc32c(&body);
        [
            &SNAPSHOT_VERSION.to_be_bytes()[..],
            &crc.to_be_bytes(),
            &body,
        ]
        .concat()
    }

    /// The state a snapshot file holds; `Err` says why it does not decode.
    fn decode_snapshot(bytes: &[u8]) -> std::result::Result<ProducerStateMap, String> {
        let (header, body) = bytes
            .split_first_chunk::<SNAPSHOT_HEADER_LEN>()
            .ok_or_else(|| format!("{} bytes: shorter than the header", bytes.len()))?;
        let version = i16::from_be_bytes([header[0], header[1]]);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown version {version}"));
        }
        let stored = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let computed = crate::crc::crc32c_of(&[&header[SNAPSHOT_CRC_START..], body]);
        if stored != computed {
            return Err(format!(
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        let count = i32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        if usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(SNAPSHOT_ENTRY_LEN))
            != Some(body.len())
        {
            return Err(format!(
                "{count} entries do not fill the {} bytes after the header",
                body.len()
            ));
        }
        let mut map = ProducerStateMap::default();
        for e in body.chunks_exact(SNAPSHOT_ENTRY_LEN) {
            let mut r = Fields(e);
            let producer_id = r.i64();
            let epoch = r.i16();
            let last_seq = r.i32();
            let last_offset = r.i64();
            let offset_delta = r.i32();
            let timestamp = r.i64();
            let coordinator_epoch = r.i32();
            let current_txn_first_offset = r.i64();
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
                coordinator_epoch,
                current_txn_first_offset: current_txn_first_offset.max(-1),
            };
            if last_offset >= 0 {
                entry.batches.push_back(BatchMetadata {
                    last_seq,
                    last_offset,
                    offset_delta,
                    timestamp,
                    commit_seq: 0,
                });
            }
            if entry.current_txn_first_offset >= 0 {
                map.ongoing
                    .insert((entry.current_txn_first_offset, producer_id));
            }
            map.producers.insert(producer_id, entry);
        }
        Ok(map)
    }

    /// How many producers are known.
    fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// Reads big-endian fields from the front of a slice whose length the caller checked.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    /// The next `N` bytes (zeros past the end, which the caller's length check rules out).
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some((head, rest)) = self.0.split_at_checked(N) {
            out.copy_from_slice(head);
            self.0 = rest;
        }
        out
    }

    /// The next big-endian i16.
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }

    /// The next big-endian i32.
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }

    /// The next big-endian i64.
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

/// `sequence + delta`, wrapping from `i32::MAX` to 0 (Kafka's `incrementSequence`).
pub(crate) fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

/// `sequence - delta`, wrapping from 0 back to `i32::MAX` (Kafka's `decrementSequence`).
fn decrement_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence < delta {
        // (sequence - delta) + i32::MAX + 1, computed without overflow.
        i32::MAX - (delta - sequence) + 1
    } else {
        sequence - delta
    }
}

/// Whether `next` follows `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The sequence after `last`.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// The path of the snapshot at `offset`.
pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    file_name::file_path(dir, offset, FileKind::Snapshot)
}

/// Offsets of the snapshot files in `dir`.
fn list_snapshots(disk: &dyn Disk, dir: &Path) -> Result<BTreeSet<i64>> {
    file_name::bases_of(disk, dir, FileKind::Snapshot)
}

/// What [`load`] needs to know of the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogBounds {
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    /// The open trusted a clean-shutdown marker.
    pub(crate) clean: bool,
    /// Producers idle for longer are dropped.
    pub(crate) expiry: Expiry,
}

/// Rebuilds the producer state on open: the newest usable snapshot, then the batches after it
/// (see the module docs).
pub(crate) fn load(
    disk: &dyn Disk,
    dir: &Path,
    segments: &[Arc<Segment>],
    bounds: LogBounds,
) -> Result<Loaded> {
    let mut report = ProducerStateRecovery::default();
    let listed = list_snapshots(disk, dir)?;
    let mut kept = BTreeSet::new();
    for &offset in &listed {
        if offset > bounds.log_end || offset < bounds.log_start {
            let path = snapshot_path(dir, offset);
            if !disk.is_read_only() {
                disk::remove_file(disk, &path)?;
            }
            report.removed_snapshots.push(path);
        } else {
            kept.insert(offset);
        }
    }
    if !report.removed_snapshots.is_empty() && !disk.is_read_only() {
        // Durably gone before the log can grow past them again with other batches.
        disk::sync_dir(disk, dir)?;
    }
    let mut map = ProducerStateMap::default();
    let mut from = bounds.log_start;
    let mut corrupt = Vec::new();
    for &offset in kept.iter().rev() {
        let path = snapshot_path(dir, offset);
        let bytes = File::open(disk, path.clone(), OpenMode::Read)?.read_all()?;
        match ProducerStateMap::decode_snapshot(&bytes) {
            Ok(loaded) => {
                map = loaded;
                from = offset;
                report.snapshot_offset = Some(offset);
                break;
            }
            Err(why) => {
                // A cache: the log still holds what it described.
                if !disk.is_read_only() {
                    disk::remove_file(disk, &path)?;
                }
                report.corrupt_snapshots.push((path, why));
                corrupt.push(offset);
            }
        }
    }
    for offset in corrupt {
        kept.remove(&offset);
    }
    map.snapshots = kept;
    let upgrade = bounds.clean && listed.is_empty();
    let mut aborted = Vec::new();
    if !upgrade && from < bounds.log_end {
        report.replayed_from = Some(from);
        report.batches_replayed = replay(&mut map, segments, from..bounds.log_end, &mut aborted)?;
    }
    report.expired_producers = map.expire(bounds.expiry);
    Ok(Loaded {
        map,
        report,
        aborted,
    })
}

/// What [`load`] rebuilt.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) map: ProducerStateMap,
    pub(crate) report: ProducerStateRecovery,
    /// The transactions aborted by the markers replayed (from `report.replayed_from`), as
    /// their `.txnindex` entries: what the segments' files must hold from there on.
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// Replays the headers of the batches in `offsets` (and the markers of control batches),
/// collecting the aborted transactions' entries; returns how many had a producer id.
pub(crate) fn replay(
    map: &mut ProducerStateMap,
    segments: &[Arc<Segment>],
    offsets: Range<i64>,
    aborted: &mut Vec<AbortedTxn>,
) -> Result<u64> {
    let (from, end) = (offsets.start, offsets.end);
    let first = segments
        .partition_point(|s| s.base_offset() <= from)
        .saturating_sub(1);
    let mut replayed = 0;
    for segment in segments.get(first..).unwrap_or(&[]) {
        if segment.base_offset() >= end {
            break;
        }
        replayed += replay_segment(map, segment, offsets.clone(), aborted)?;
    }
    Ok(replayed)
}

/// Walks one segment's batch headers in `offsets` from the indexed position for its start,
/// reading only what holds the headers (a mapping, or a chunk at a time).
fn replay_segment(
    map: &mut ProducerStateMap,
    segment: &Segment,
    offsets: Range<i64>,
    aborted: &mut Vec<AbortedTxn>,
) -> Result<u64> {
    let Range { start: from, end } = offsets;
    let pos = if from > segment.base_offset() {
        segment.position_for(from)?
    } else {
        0
    };
    let mut replayed = 0;
    walk_headers(segment, pos, |_, header, marker| {
        if header.base_offset >= end {
            return ControlFlow::Break(());
        }
        if header.last_offset() >= from {
            if header.producer_id >= 0 {
                replayed += 1;
            }
            if let Some(done) = map.replay(header, marker)
                && done.result == TxnResult::Abort
            {
                aborted.push(map.aborted_entry(&done));
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(replayed)
}

/// A segment's bytes a chunk at a time (the mapping's slice when mapped).
struct ChunkReader<'s> {
    segment: &'s Segment,
    size: u64,
    chunk: Option<Chunk>,
}

impl ChunkReader<'_> {
    /// The bytes from `pos`: at least `len` of them if the segment has them.
    fn bytes(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let end = pos + len as u64;
        if !self
            .chunk
            .as_ref()
            .is_some_and(|c| c.start() <= pos && end <= c.end())
        {
            self.chunk = Some(self.segment.read_file(pos..self.size, len)?);
        }
        Ok(self
            .chunk
            .as_ref()
            .and_then(|c| c.bytes().get(usize::try_from(pos - c.start()).ok()?..))
            .unwrap_or(&[]))
    }
}

/// Calls `f` with the position and header of each batch of `segment` from position `pos`,
/// and for a control batch with a producer id its COMMIT or ABORT marker (the batch read
/// whole and its CRC checked; `None` for another control record), until `f` breaks. Reads
/// only what holds the headers otherwise (a mapping, or a chunk at a time).
pub(crate) fn walk_headers(
    segment: &Segment,
    mut pos: u64,
    mut f: impl FnMut(u64, &BatchHeader, Option<EndTxnMarker>) -> ControlFlow<()>,
) -> Result<()> {
    let mut reader = ChunkReader {
        segment,
        size: segment.size(),
        chunk: None,
    };
    while pos < reader.size {
        let corrupt = |e| Error::corrupt(segment.path(FileKind::Log), pos, Corruption::Batch(e));
        let header = BatchHeader::parse(reader.bytes(pos, BATCH_HEADER_LEN)?).map_err(corrupt)?;
        let marker = if header.is_control() && header.producer_id >= 0 {
            let batch = Batch::parse(reader.bytes(pos, header.size())?).map_err(corrupt)?;
            batch.verify_crc().map_err(corrupt)?;
            EndTxnMarker::of_batch(&batch)
        } else {
            None
        };
        if f(pos, &header, marker).is_break() {
            break;
        }
        pos += header.size() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(producer_id: i64, epoch: i16, base_sequence: i32) -> ProducerStamp {
        ProducerStamp {
            producer_id,
            epoch,
            base_sequence,
        }
    }

    /// Checks and accepts a batch of `count` records at `offset`; returns the check.
    fn append(
        map: &mut ProducerStateMap,
        s: ProducerStamp,
        count: usize,
        offset: i64,
    ) -> Result<Check, Rejection> {
        let check = map.check(s, count, false)?;
        if let Check::Append { last_seq } = check {
            map.accept(Accepted {
                stamp: s,
                last_seq,
                info: AppendInfo {
                    base_offset: offset,
                    last_offset: offset + count as i64 - 1,
                },
                max_timestamp: offset * 10,
                now_ms: 0,
                commit_seq: 0,
                transactional: false,
            });
        }
        Ok(check)
    }

    #[test]
    fn sequences_wrap_as_kafkas() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(0, 1), i32::MAX);
        assert_eq!(decrement_sequence(8, 3), 5);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(NO_SEQUENCE, 0));
        assert!(!in_sequence(3, 5));
    }

    #[test]
    fn duplicates_fences_and_gaps() {
        let mut map = ProducerStateMap::default();
        let dup = |base, last| {
            Check::Duplicate(
                AppendInfo {
                    base_offset: base,
                    last_offset: last,
                },
                0,
            )
        };
        // An unknown producer may start anywhere.
        assert_eq!(
            append(&mut map, stamp(7, 0, 10), 2, 0),
            Ok(Check::Append { last_seq: 11 })
        );
        assert_eq!(append(&mut map, stamp(7, 0, 10), 2, 99), Ok(dup(0, 1)));
        assert_eq!(
            append(&mut map, stamp(7, 0, 13), 1, 2),
            Err(Rejection::OutOfOrder { expected: 12 })
        );
        for i in 0..5 {
            append(&mut map, stamp(7, 0, 12 + i), 1, 2 + i as i64).expect("in sequence");
        }
        // Five batches remembered: 12..=16; the one with 10..=11 fell out and is out of order.
        assert_eq!(append(&mut map, stamp(7, 0, 12), 1, 99), Ok(dup(2, 2)));
        assert_eq!(
            append(&mut map, stamp(7, 0, 10), 2, 99),
            Err(Rejection::OutOfOrder { expected: 17 })
        );
        // A new epoch starts at 0 and fences the old one.
        assert_eq!(
            append(&mut map, stamp(7, 1, 17), 1, 7),
            Err(Rejection::OutOfOrder { expected: 0 })
        );
        assert_eq!(
            append(&mut map, stamp(7, 1, 0), 1, 7),
            Ok(Check::Append { last_seq: 0 })
        );
        assert_eq!(
            append(&mut map, stamp(7, 0, 17), 1, 8),
            Err(Rejection::Fenced)
        );
        assert_eq!(map.producers()[0].epoch, 1);
    }

    #[test]
    fn sequence_wraps_from_max_to_zero() {
        let mut map = ProducerStateMap::default();
        append(&mut map, stamp(1, 0, i32::MAX - 1), 2, 0).expect("accepted");
        assert_eq!(map.producers()[0].last_sequence, i32::MAX);
        assert_eq!(
            append(&mut map, stamp(1, 0, 0), 3, 2),
            Ok(Check::Append { last_seq: 2 })
        );
        // A batch straddling the wrap is a duplicate by its own first and last sequence.
        let mut map = ProducerStateMap::default();
        append(&mut map, stamp(1, 0, i32::MAX), 3, 0).expect("accepted");
        assert_eq!(
            map.check(stamp(1, 0, i32::MAX), 3, false),
            Ok(Check::Duplicate(
                AppendInfo {
                    base_offset: 0,
                    last_offset: 2
                },
                0
            ))
        );
        assert_eq!(
            map.check(stamp(1, 0, 2), 1, false),
            Ok(Check::Append { last_seq: 2 })
        );
    }

    #[test]
    fn kafka_snapshot_examples() {
        // kafka-log-format.md §8.4.
        let empty = ProducerStateMap::default().encode_snapshot();
        assert_eq!(empty, [0x00, 0x01, 0x48, 0x67, 0x4b, 0xc7, 0, 0, 0, 0]);
        let mut map = ProducerStateMap::default();
        map.accept(Accepted {
            stamp: stamp(1000, 0, 0),
            last_seq: 4,
            info: AppendInfo {
                base_offset: 0,
                last_offset: 4,
            },
            max_timestamp: 0,
            now_ms: 0,
            commit_seq: 3,
            transactional: false,
        });
        let bytes = map.encode_snapshot();
        let expected = "00017994c2cd00000001\
                        00000000000003e8000000000004000000000000000400000004\
                        0000000000000000ffffffffffffffffffffffff";
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        let back = ProducerStateMap::decode_snapshot(&bytes).expect("decodes");
        assert_eq!(back.producers(), map.producers());
        assert_eq!(
            back.check(stamp(1000, 0, 0), 5, false),
            Ok(Check::Duplicate(
                AppendInfo {
                    base_offset: 0,
                    last_offset: 4
                },
                0
            )),
            "the last batch is remembered across a snapshot"
        );
    }

    #[test]
    fn bad_snapshots_say_why() {
        let mut map = ProducerStateMap::default();
        append(&mut map, stamp(3, 2, 0), 1, 0).expect("accepted");
        let good = map.encode_snapshot();
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        let mut version = good.clone();
        version[1] = 2;
        let mut count = good.clone();
        count[9] = 2;
        for (bytes, says) in [
            (&good[..5], "shorter"),
            (&flipped[..], "CRC"),
            (&version[..], "version"),
            (&count[..], "CRC"),
            (&good[..good.len() - 1], "CRC"),
        ] {
            let err = ProducerStateMap::decode_snapshot(bytes).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
        // A count that disagrees with the length, under a valid CRC.
        let mut short = good[..SNAPSHOT_HEADER_LEN].to_vec();
        short[9] = 1;
        let crc = crate::crc::crc32c(&short[SNAPSHOT_CRC_START..]);
        short[2..6].copy_from_slice(&crc.to_be_bytes());
        let err = ProducerStateMap::decode_snapshot(&short).expect_err("count");
        assert!(err.contains("entries"), "{err}");
    }

    #[test]
    fn idle_producers_expire() {
        let mut map = ProducerStateMap::default();
        append(&mut map, stamp(1, 0, 0), 1, 0).expect("accepted"); // timestamp 0
        append(&mut map, stamp(2, 0, 0), 1, 100).expect("accepted"); // timestamp 1000
        let at = |now_ms| Expiry {
            now_ms,
            expiration_ms: 1_000,
        };
        assert_eq!(map.expire(at(1_500)), 1);
        assert_eq!(map.producers()[0].producer_id, 2);
        map.expire_if_due(at(1_600)); // not due yet: checked at 1_500
        assert_eq!(map.producers().len(), 1);
        map.expire_if_due(at(2_500));
        assert!(map.producers().is_empty());
    }
}
