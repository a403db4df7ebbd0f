//! The durability ledger: what is durable, what must be fsynced next, and what the recovery
//! checkpoint and the published durable end say.
//!
//! One function, [`Ledger::sync_set`], decides which files an fsync pass covers; a flush (under
//! the writer lock) and a group-commit round (outside it, see [`super::commit`]) both run the
//! set it returns and both record the outcome with [`Ledger::synced`]. The set is: sealed
//! segments not fsynced yet (data and indexes), the active segment's data, producer snapshots
//! written without fsync, and the directory when entries were created or renamed. The active
//! segment's index files are not in it: they are caches that an unclean open rebuilds from the
//! data, and a clean close fsyncs them itself.
//!
//! The ledger also holds the partition's one poison flag ([`Poison`]), shared with the group
//! commit, and the batches that wait for a commit before readers may see them.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::disk::{self, File, OpenMode};
use crate::error::Result;
use crate::segment::Segment;

use super::Shared;
use super::appender::{Appender, BatchEnd};
use super::checkpoint::RecoveryPoint;
use super::manifest::SegmentRecord;
use super::poison::Poison;
use super::producer_state::ProducerStateMap;
use super::published::Publisher;

/// What recovery hands the ledger.
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

/// What an fsync pass makes durable of the active segment, as it stood when the pass was
/// planned: named, because its two offsets are `i64`s a positional tuple would let a caller
/// swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synced {
    /// The active segment's base offset.
    pub(crate) active_base: i64,
    /// Its bytes in the file.
    pub(crate) synced_end: u64,
    /// The offset after the last batch in those bytes.
    pub(crate) synced_next: i64,
}

/// The files one fsync pass must sync to make every append through `seq` durable, as
/// [`Ledger::sync_set`] decides them.
#[derive(Debug)]
pub(crate) struct SyncSet {
    /// What the pass makes durable of the active segment.
    pub(crate) synced: Synced,
    /// Appends through this sequence number are covered.
    pub(crate) seq: u64,
    /// Sealed segments to sync (one at a time, see [`Segment::sync_files`]), recorded as
    /// flushed once the pass succeeds.
    pub(crate) sealed: Vec<Arc<Segment>>,
    /// The active segment's data, then snapshots written without fsync.
    files: Vec<File>,
    /// Directory entries were created or renamed since the last directory sync.
    dir_dirty: bool,
}

impl SyncSet {
    /// Runs the fsyncs: sealed segments one at a time (each opens its files only for the
    /// fsync), then the active segment and snapshots, then the directory, so no directory
    /// entry is made durable before the data it names.
    pub(crate) fn run(&self, shared: &Shared) -> Result<()> {
        for segment in &self.sealed {
            segment.sync_files()?;
        }
        for file in &self.files {
            file.sync_data()?;
        }
        if self.dir_dirty {
            disk::sync_dir(&*shared.disk, &shared.dir)?;
        }
        Ok(())
    }
}

/// A batch appended under the durable policy, published once a commit covers `seq`.
#[derive(Debug)]
struct Pending {
    seq: u64,
    segment: Arc<Segment>,
    batch: BatchEnd,
}

/// The durability state of a writable partition.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Set by a failed write or fsync: every write is refused until the partition is reopened.
    /// Shared with the group commit.
    poison: Arc<Poison>,
    /// Durable appends accepted so far; a commit covers them up to a sequence number.
    appended_seq: u64,
    pending: VecDeque<Pending>,
    /// Bytes of the active segment a successful fsync made durable.
    synced_end: u64,
    /// What the recovery checkpoint may call durable of the active segment: `(bytes, next
    /// offset)` as of the last successful fsync (after an unclean open, only what the
    /// checkpoint recorded: what a crash left in the page cache is not known durable).
    durable_active: Option<(u64, i64)>,
    /// Sealed segments not fsynced yet.
    unsynced: Vec<Arc<Segment>>,
    /// Snapshots written without fsync (while sealed segments awaited theirs).
    unsynced_snapshots: Vec<i64>,
    /// Records of the sealed segments fsynced so far: the recovery checkpoint's contents.
    flushed: Vec<SegmentRecord>,
    /// The checkpoint on disk lists a segment `flushed` does not; rewrite it before writing.
    checkpoint_stale: bool,
    /// Counts recovery-checkpoint snapshots, so an older one never overwrites a newer one.
    checkpoint_seq: u64,
    /// The log-start checkpoint exists; the recovery checkpoint records its value too.
    log_start_checkpointed: bool,
    /// Directory entries created since the last directory sync.
    dir_dirty: bool,
    /// The published durable end, for followers in other processes; opened at the first
    /// publication.
    publisher: Option<Publisher>,
}

impl Ledger {
    pub(crate) fn new(resume: Resume, active_size: u64, poison: Arc<Poison>) -> Ledger {
        Ledger {
            poison,
            appended_seq: 0,
            pending: VecDeque::new(),
            synced_end: active_size,
            durable_active: resume.durable_active,
            unsynced: resume.unsynced,
            unsynced_snapshots: Vec::new(),
            flushed: resume.flushed,
            checkpoint_stale: resume.checkpoint_stale,
            checkpoint_seq: 0,
            log_start_checkpointed: resume.log_start_checkpointed,
            dir_dirty: false,
            publisher: None,
        }
    }

    pub(crate) fn poison_flag(&self) -> &Poison {
        &self.poison
    }

    /// Bytes of the active segment known durable.
    pub(crate) fn synced_end(&self) -> u64 {
        self.synced_end
    }

    /// Whether a sealed segment still awaits its fsync.
    pub(crate) fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    pub(crate) fn checkpoint_stale(&self) -> bool {
        self.checkpoint_stale
    }

    /// The `.txnindex` files of the segments based at `bases` were rewritten (an open
    /// rebuilt them): their records take the files as they are now, and the checkpoint is
    /// written again before the first write.
    pub(crate) fn txn_indexes_rewritten(
        &mut self,
        disk: &dyn crate::disk::Disk,
        dir: &std::path::Path,
        bases: &[i64],
    ) -> crate::error::Result<()> {
        for record in self
            .flushed
            .iter_mut()
            .filter(|r| bases.contains(&r.base_offset))
        {
            let path = crate::segment::file_name::file_path(
                dir,
                record.base_offset,
                crate::segment::file_name::FileKind::TxnIndex,
            );
            record.txn_index = Some(super::manifest::TxnIndexStamp::of_file(disk, &path)?);
            self.checkpoint_stale = true;
        }
        Ok(())
    }

    /// Notes a producer snapshot written without fsync: the next pass syncs it before the
    /// directory.
    pub(crate) fn snapshot_unsynced(&mut self, offset: i64) {
        self.unsynced_snapshots.push(offset);
        self.dir_dirty = true;
    }

    /// Notes a roll: `old` is sealed and awaits its fsync; nothing of the new active segment
    /// is durable yet.
    pub(crate) fn rolled(&mut self, old: Arc<Segment>) {
        self.unsynced.push(old);
        self.dir_dirty = true;
        self.synced_end = 0;
        self.durable_active = None;
    }

    /// Queues a durable append's batch until a commit covers it; returns its sequence number.
    pub(crate) fn push_pending(&mut self, segment: &Arc<Segment>, batch: BatchEnd) -> u64 {
        self.appended_seq += 1;
        self.pending.push_back(Pending {
            seq: self.appended_seq,
            segment: Arc::clone(segment),
            batch,
        });
        self.appended_seq
    }

    /// The sequence number the next durable append will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.appended_seq + 1
    }

    /// Whether batches wait for a group commit.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The sequence number of the last durable append accepted.
    pub(crate) fn appended_seq(&self) -> u64 {
        self.appended_seq
    }

    /// Drops the batches waiting for a commit (a poisoned partition never acknowledges them).
    pub(crate) fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// The one decision of what an fsync pass must sync now (see the module docs). The
    /// appender's buffer must have been written out first.
    pub(crate) fn sync_set(
        &mut self,
        appender: &Appender,
        producers: &ProducerStateMap,
    ) -> Result<SyncSet> {
        let active = appender.active();
        let mut files = vec![active.log()?];
        for offset in std::mem::take(&mut self.unsynced_snapshots) {
            if producers.has_snapshot(offset) {
                let path = super::producer_state::snapshot_path(active.dir(), offset);
                files.push(File::open(active.disk(), path, OpenMode::Write)?);
            }
        }
        Ok(SyncSet {
            synced: Synced {
                active_base: active.base_offset(),
                synced_end: active.file_size(),
                synced_next: appender.next_offset(),
            },
            seq: self.appended_seq,
            files,
            sealed: self.unsynced.clone(),
            dir_dirty: std::mem::take(&mut self.dir_dirty),
        })
    }

    /// Records what a successful pass over `set` made durable: the active segment's prefix,
    /// every batch through `set.seq` (published to readers), and the sealed segments (recorded
    /// as flushed in the recovery checkpoint, so an unclean open trusts them unread).
    pub(crate) fn synced(
        &mut self,
        shared: &Shared,
        appender: &Appender,
        set: &SyncSet,
    ) -> Result<()> {
        let Synced {
            active_base,
            synced_end,
            synced_next,
        } = set.synced;
        if active_base == appender.active().base_offset() {
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
            if p.seq > set.seq {
                break;
            }
            p.batch.publish(&p.segment, shared);
            self.pending.pop_front();
            published = true;
        }
        if published {
            shared.fire_watchers();
        }
        if !set.sealed.is_empty() {
            let mut flushed = self.flushed.clone();
            for segment in &set.sealed {
                flushed.push(SegmentRecord::of(&*shared.disk, segment)?);
            }
            flushed.sort_by_key(|r| r.base_offset);
            self.save_checkpoint(shared, appender, flushed.clone())?;
            self.flushed = flushed;
            self.unsynced
                .retain(|s| !set.sealed.iter().any(|d| Arc::ptr_eq(d, s)));
        }
        self.publish_if_followed(shared, appender);
        Ok(())
    }

    /// The offset below which every record is durable: up to the first sealed segment not
    /// fsynced yet, else what the last fsync covered of the active segment.
    fn durable_end(&self, appender: &Appender) -> i64 {
        match (self.unsynced.first(), self.durable_active) {
            (Some(first), _) => first.base_offset(),
            (None, Some((_, next))) => next,
            (None, None) => appender.active().base_offset(),
        }
    }

    /// Publishes the durable end for followers in other processes, if there are any (see
    /// [`super::published`]). A failure is logged, not returned: the file only bounds what
    /// followers return early, and the next publication tries again.
    pub(crate) fn publish_if_followed(&mut self, shared: &Shared, appender: &Appender) {
        if !shared.followers_present().0 {
            return;
        }
        let end = self.durable_end(appender);
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

    /// Segments `bases` left the log (retention): forgets them, rewriting the checkpoint if it
    /// listed any.
    pub(crate) fn removed(
        &mut self,
        shared: &Shared,
        appender: &Appender,
        bases: &[i64],
    ) -> Result<()> {
        self.unsynced.retain(|s| !bases.contains(&s.base_offset()));
        let flushed_before = self.flushed.len();
        self.flushed.retain(|r| !bases.contains(&r.base_offset));
        if self.flushed.len() != flushed_before {
            self.save_checkpoint(shared, appender, self.flushed.clone())?;
        }
        self.dir_dirty = true;
        Ok(())
    }

    /// A segment compaction wrote (fsynced before it was swapped in) joined the log: recorded
    /// as flushed, so an unclean open trusts it unread.
    pub(crate) fn added(
        &mut self,
        shared: &Shared,
        appender: &Appender,
        record: SegmentRecord,
    ) -> Result<()> {
        let mut flushed = self.flushed.clone();
        flushed.push(record);
        flushed.sort_by_key(|r| r.base_offset);
        self.save_checkpoint(shared, appender, flushed.clone())?;
        self.flushed = flushed;
        Ok(())
    }

    /// The log-start checkpoint now exists: from now on the recovery checkpoint records it, so
    /// an open that finds it missing fails instead of bringing back deleted records.
    pub(crate) fn log_start_checkpointed(
        &mut self,
        shared: &Shared,
        appender: &Appender,
    ) -> Result<()> {
        if !self.log_start_checkpointed {
            self.log_start_checkpointed = true;
            self.save_checkpoint(shared, appender, self.flushed.clone())?;
        }
        Ok(())
    }

    /// Rewrites the stale recovery checkpoint (before the first write after open).
    pub(crate) fn refresh_checkpoint(
        &mut self,
        shared: &Shared,
        appender: &Appender,
    ) -> Result<()> {
        self.save_checkpoint(shared, appender, self.flushed.clone())?;
        self.checkpoint_stale = false;
        Ok(())
    }

    /// A snapshot of the recovery checkpoint with `flushed` as the flushed segments, numbered
    /// so that [`Shared::write_recovery_point`] never lets an older one overwrite it.
    fn recovery_point(
        &mut self,
        shared: &Shared,
        appender: &Appender,
        flushed: Vec<SegmentRecord>,
    ) -> (u64, RecoveryPoint) {
        self.checkpoint_seq += 1;
        let active = super::recovery::durable_prefix(
            std::slice::from_ref(appender.active()),
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

    /// The recovery checkpoint as it stands, for the periodic write; `None` once poisoned
    /// (nothing more may be recorded as durable), and while a sealed segment waits for its
    /// fsync: the write syncs the directory, which could make a newer segment durable before
    /// the older one's data, leaving a gap after a power loss. The next flush or commit round
    /// syncs it (and writes the checkpoint itself).
    pub(crate) fn periodic_recovery_point(
        &mut self,
        shared: &Shared,
        appender: &Appender,
    ) -> Option<(u64, RecoveryPoint)> {
        if self.poison.is_set() || !self.unsynced.is_empty() {
            return None;
        }
        Some(self.recovery_point(shared, appender, self.flushed.clone()))
    }

    /// Writes the recovery checkpoint with `flushed` as the flushed segments, now.
    fn save_checkpoint(
        &mut self,
        shared: &Shared,
        appender: &Appender,
        flushed: Vec<SegmentRecord>,
    ) -> Result<()> {
        let (seq, point) = self.recovery_point(shared, appender, flushed);
        shared.write_recovery_point(seq, &point)
    }

    /// Writes the recovery checkpoint as it stands (at close).
    pub(crate) fn checkpoint(&mut self, shared: &Shared, appender: &Appender) -> Result<()> {
        self.save_checkpoint(shared, appender, self.flushed.clone())
    }
}
