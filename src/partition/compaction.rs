//! [`Partition::compact`]: runs the cleaner's passes over a compacted partition (see
//! [`crate::cleaner`]) and swaps the cleaned segments in.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cleaner::checkpoint::{self as cleaner_checkpoint, CLEANER_CHECKPOINT_FILE};
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::rewrite::{self, Outcome, PassInput};
use crate::cleaner::{CleanerConfig, CompactionReport, Dirt};
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Error, IoOp, Result};
use crate::record::{BATCH_HEADER_LEN, BatchHeader};
use crate::segment::Segment;

use super::recovery::{self, RecoveryOptions};
use super::writer::Swapped;
use super::{Partition, Shared};

/// The compaction epoch file: a counter the writer raises to an odd value before it swaps
/// cleaned segments in and to the next even value once they are all in. A read-only partition
/// (a consumer in another process) that sees it at a new even value lists its segments again;
/// an odd value means a swap is under way, and the old listing stays until it ends.
pub(crate) const COMPACTION_EPOCH_FILE: &str = ".topiclog_compaction_epoch";

/// How long a read-only open waits for a swap under way to end before listing anyway.
const SWAP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The compaction epoch, 0 if the file is missing or unreadable.
pub(crate) fn read_epoch(disk: &dyn Disk, dir: &Path) -> u64 {
    File::open(disk, dir.join(COMPACTION_EPOCH_FILE), OpenMode::Read)
        .and_then(|f| f.read_all())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the compaction epoch durably.
pub(crate) fn write_epoch(disk: &dyn Disk, dir: &Path, epoch: u64) -> Result<()> {
    disk::write_atomic(
        disk,
        &dir.join(COMPACTION_EPOCH_FILE),
        format!("{epoch}\n").as_bytes(),
    )
}

/// For a read-only open: the compaction epoch once no swap is under way (waiting up to
/// [`SWAP_WAIT`] for one to end).
pub(crate) fn settled_epoch(disk: &dyn Disk, dir: &Path) -> u64 {
    let deadline = std::time::Instant::now() + SWAP_WAIT;
    loop {
        let epoch = read_epoch(disk, dir);
        if epoch.is_multiple_of(2) || std::time::Instant::now() >= deadline {
            return epoch;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl Shared {
    /// [`resync_if_compacted`](Self::resync_if_compacted) for a reader that met a fault: waits
    /// (up to [`SWAP_WAIT`]) for a swap under way to end, so that a compaction explains the
    /// fault. Returns whether the segments were listed again.
    pub(crate) fn resync_after_fault(&self) -> Result<bool> {
        let deadline = std::time::Instant::now() + SWAP_WAIT;
        loop {
            if self.resync_if_compacted()? {
                return Ok(true);
            }
            let epoch = read_epoch(&*self.disk, &self.dir);
            let settled =
                epoch.is_multiple_of(2) && epoch == self.compaction_epoch.load(Ordering::Acquire);
            if settled || std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// For a read-only partition: if its writer compacted since the segments were listed (and
    /// no swap is under way), lists them again as an open does. The segments replaced are
    /// sealed and marked so, and readers inside them go on in what replaced them. Returns
    /// whether the listing changed.
    pub(crate) fn resync_if_compacted(&self) -> Result<bool> {
        let epoch = read_epoch(&*self.disk, &self.dir);
        if epoch % 2 == 1 || epoch == self.compaction_epoch.load(Ordering::Acquire) {
            return Ok(false);
        }
        let _serial = self.writer.lock();
        if epoch == self.compaction_epoch.load(Ordering::Acquire) {
            return Ok(false);
        }
        let config = self.config();
        let opened = recovery::open(&self.disk, &self.dir, &config, RecoveryOptions::default())?;
        if read_epoch(&*self.disk, &self.dir) != epoch {
            // Another compaction began meanwhile: the listing may be mid-swap.
            return Ok(false);
        }
        let old = std::mem::replace(&mut *self.segments.write(), opened.segments);
        for segment in old {
            segment.mark_replaced();
        }
        self.log_start_offset
            .fetch_max(opened.log_start_offset, Ordering::AcqRel);
        let next = self.segments.read().last().map(|s| s.next_offset());
        if let Some(next) = next {
            self.next_offset.fetch_max(next, Ordering::AcqRel);
        }
        self.compaction_epoch.store(epoch, Ordering::Release);
        log::debug!(
            "{}: segments listed again after compaction (epoch {epoch})",
            self.dir.display()
        );
        Ok(true)
    }
    /// Where this partition's first dirty offset is kept: the store's
    /// `cleaner-offset-checkpoint`, or one in the partition's own directory.
    fn cleaner_checkpoint_path(&self) -> PathBuf {
        self.cleaner_checkpoint
            .get()
            .cloned()
            .unwrap_or_else(|| self.dir.join(CLEANER_CHECKPOINT_FILE))
    }

    /// The topic and partition the cleaner checkpoint names this partition by.
    fn cleaner_name(&self) -> (String, u32) {
        super::writer::topic_partition(self)
    }

    /// The first dirty offset recorded, within the log (the log start if none, or if the
    /// recorded one lies outside it, as Kafka resets it).
    fn first_dirty_offset(&self) -> i64 {
        let (topic, partition) = self.cleaner_name();
        let recorded = cleaner_checkpoint::read(
            &*self.disk,
            &self.cleaner_checkpoint_path(),
            &topic,
            partition,
        );
        let log_start = self.log_start_offset();
        match recorded {
            Some(o) if o >= log_start && o <= self.next_offset() => o,
            _ => log_start,
        }
    }

    /// How dirty the partition is now, as of `now_ms`.
    fn dirt(&self, now_ms: i64) -> Result<Dirt> {
        let config = self.config();
        let segments = self.segments();
        let first_dirty = self.first_dirty_offset();
        let sealed = segments.split_last().map_or(&[][..], |(_, sealed)| sealed);
        let active_base = segments.last().map_or(first_dirty, |s| s.base_offset());
        let mut uncleanable = active_base;
        let lag = config.min_compaction_lag_ms();
        if lag > 0 {
            // The first dirty segment holding a record younger than the lag.
            if let Some(young) = sealed.iter().find(|s| {
                s.next_offset() > first_dirty && s.max_timestamp() > now_ms.saturating_sub(lag)
            }) {
                uncleanable = young.base_offset();
            }
        }
        // Nothing from the segment holding the last stable offset on: an open transaction may
        // still abort, and its records must not pass for the latest values (Kafka's rule).
        let lso = self.last_stable_offset();
        if let Some(unstable) = sealed
            .iter()
            .find(|s| s.next_offset() > lso)
            .map(|s| s.base_offset())
        {
            uncleanable = uncleanable.min(unstable);
        }
        let uncleanable = uncleanable.max(first_dirty);
        let mut dirt = Dirt {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: uncleanable,
            ..Dirt::default()
        };
        let mut first_dirty_segment = None;
        for s in sealed {
            if s.next_offset() <= first_dirty {
                dirt.clean_bytes += s.size();
            } else if s.base_offset() < uncleanable {
                dirt.cleanable_bytes += s.size();
                first_dirty_segment.get_or_insert(s);
            }
        }
        let max_lag = config.max_compaction_lag_ms();
        if let Some(s) = first_dirty_segment
            && max_lag < i64::MAX
            && dirt.cleanable_bytes > 0
        {
            let began = first_batch_timestamp(s)?.unwrap_or(s.max_timestamp());
            dirt.overdue = began >= 0 && now_ms.saturating_sub(began) > max_lag;
        }
        Ok(dirt)
    }
}

/// The first batch's max timestamp (Kafka's measure of when a segment began), if it has a
/// batch.
fn first_batch_timestamp(segment: &Segment) -> Result<Option<i64>> {
    if segment.size() < BATCH_HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut header = [0u8; BATCH_HEADER_LEN];
    let read = segment.log()?.read_at(&mut header, 0)?;
    Ok(header
        .get(..read)
        .and_then(|h| BatchHeader::parse(h).ok())
        .map(|h| h.max_timestamp))
}

impl Partition {
    /// Keeps the first dirty offset in `path` (a store's `cleaner-offset-checkpoint`) rather
    /// than in the partition's directory.
    pub(crate) fn set_cleaner_checkpoint(&self, path: PathBuf) {
        let _ = self.shared.cleaner_checkpoint.set(path);
    }

    /// Compacts the partition now (`cleanup.policy` `compact` or `compact,delete`), whatever
    /// its dirty ratio: every sealed segment is cleaned of records whose key has a later
    /// record, and of tombstones past their delete horizon, with the default
    /// [`CleanerConfig`]. The active segment is never cleaned; roll it first
    /// (`segment.bytes`/`segment.ms`) to clean everything.
    ///
    /// A record is kept while it has a key and no later record of its key was cleaned past it;
    /// a tombstone (null value) is kept `delete.retention.ms` after the cleaning that first kept
    /// it. Offsets never change (reads of an offset compacted away start at the next one).
    /// Batches keep their offsets, producer fields and codec; a batch left empty is dropped
    /// unless it is an active idempotent producer's last batch or the last one before the
    /// active segment, which stay as header-only batches (Kafka's rule), so producer state and
    /// the log end survive. Adjacent small segments merge up to `segment.bytes`. Producer
    /// snapshots are left as they are: each still describes its offset, and the batches a
    /// replay from it needs (each producer's last) are kept. Where the pass ended is kept in
    /// `cleaner-offset-checkpoint`, and the next pass starts there.
    ///
    /// ```
    /// use topiclog::config::{CleanupPolicy, LogConfig};
    /// use topiclog::{Partition, Record};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig::builder().cleanup_policy(CleanupPolicy::Compact).segment_bytes(200).build()?;
    /// let log = Partition::open(dir.path(), config)?;
    /// for i in 0..20u32 {
    ///     log.append(Record::keyed(format!("k{}", i % 2).as_bytes(), &i.to_be_bytes()))?;
    /// }
    /// let report = log.compact()?;
    /// assert!(report.records_after < report.records_before);
    /// let keys: Vec<_> = log.read(0)?.map(|r| r.map(|r| r.offset())).collect::<Result<_, _>>()?;
    /// assert!(keys.len() < 20); // older versions of k0 and k1 are gone; offsets are unchanged
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Replica`], [`Error::Closed`], [`Error::Corrupt`] for a
    /// damaged batch met while cleaning (nothing is swapped in), [`Error::Io`]. A policy that does not compact is not
    /// an error: the report says it was skipped, and why.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.compact_with(&CleanerConfig::default())
    }

    /// [`compact`](Partition::compact) with the cleaner's settings (key-map memory, I/O rate).
    ///
    /// # Errors
    /// As [`compact`](Partition::compact); [`Error::InvalidConfig`] for a bad setting, or a
    /// `log.cleaner.dedupe.buffer.size` too small for a single batch's keys.
    pub fn compact_with(&self, cleaner: &CleanerConfig) -> Result<CompactionReport> {
        self.clean(cleaner, None)
    }

    /// How dirty the partition is: the share of its sealed bytes written since the last
    /// cleaning (what `min.cleanable.dirty.ratio` is compared with).
    ///
    /// # Errors
    /// [`Error::Io`] reading a segment's first batch (for `max.compaction.lag.ms`).
    pub fn dirt(&self) -> Result<Dirt> {
        self.shared.dirt(self.shared.config().clock().now_ms())
    }

    /// Runs cleaning passes until the cleanable section is clean. With `threshold` (the
    /// background cleaner), only when the partition is dirtier than it or overdue.
    pub(crate) fn clean(
        &self,
        cleaner: &CleanerConfig,
        threshold: Option<f64>,
    ) -> Result<CompactionReport> {
        cleaner.validate()?;
        self.check_owner_write()?;
        let shared = &*self.shared;
        let _one_cleaner = shared.cleaning.lock();
        let mut report = CompactionReport {
            first_dirty_offset: shared.first_dirty_offset(),
            ..CompactionReport::default()
        };
        let config = shared.config();
        if !config.cleanup_policy().compacts() {
            report.skipped = Some(format!(
                "cleanup.policy is {}, not compact",
                config.cleanup_policy()
            ));
            return Ok(report);
        }
        // One map for all passes, as Kafka's cleaner thread keeps one: a pass after one that
        // filled it starts at the whole budget.
        let mut map: Option<OffsetMap> = None;
        loop {
            let now_ms = config.clock().now_ms();
            let (sealed, producers) = {
                let writer = shared.writer.lock();
                if writer.is_closed() {
                    return Err(Error::Closed);
                }
                let segments = shared.segments();
                let sealed: Vec<Arc<Segment>> = segments
                    .split_last()
                    .map_or(Vec::new(), |(_, s)| s.to_vec());
                let producers: HashMap<i64, i64> = writer
                    .producers()
                    .producers()
                    .into_iter()
                    .map(|p| (p.producer_id, p.last_offset))
                    .collect();
                (sealed, producers)
            };
            let dirt = shared.dirt(now_ms)?;
            if dirt.first_dirty_offset >= dirt.first_uncleanable_offset {
                break;
            }
            if let Some(threshold) = threshold
                && report.passes == 0
                && dirt.ratio() <= threshold
                && !dirt.overdue
            {
                break;
            }
            let input = PassInput {
                sealed,
                dirt,
                config: &config,
                cleaner,
                now_ms,
                producer_last_offsets: producers,
                aborted: shared.aborted.read().in_range(i64::MIN..i64::MAX),
            };
            let map = match &mut map {
                Some(map) => {
                    map.clear()
                        .map_err(|e| Error::io(IoOp::Map, &shared.dir, e))?;
                    map
                }
                None => map.insert(
                    OffsetMap::new(cleaner.dedupe_buffer())
                        .map_err(|e| Error::io(IoOp::Map, &shared.dir, e))?,
                ),
            };
            let Outcome { groups, end_offset } = match rewrite::run(&input, map) {
                Ok(outcome) => outcome,
                // Retention deleted a source segment's files under the pass: as after a
                // deferred swap, the next pass tries again on what is left.
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && sources_gone(shared, &input.sealed) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut deferred = false;
            let epoch = read_epoch(&*shared.disk, &shared.dir);
            let swapping = epoch + 1 + epoch % 2;
            write_epoch(&*shared.disk, &shared.dir, swapping)?;
            let mut groups = groups.into_iter();
            for group in groups.by_ref() {
                let stats = (
                    group.sources.len(),
                    group.bytes_before,
                    group.state.size,
                    group.records_before,
                    group.records_after,
                );
                let slot = Cell::new(Some(group));
                let swapped = self.with_committed_writer(|w, shared| match slot.take() {
                    Some(group) => w.swap_cleaned(shared, group),
                    None => Err(Error::Internal("a cleaned segment swapped twice")),
                })?;
                if swapped == Swapped::Deferred {
                    deferred = true;
                    break;
                }
                report.segments_before += stats.0;
                report.segments_after += 1;
                report.bytes_before += stats.1;
                report.bytes_after += stats.2;
                report.records_before += stats.3;
                report.records_after += stats.4;
            }
            // Later groups wait for the next pass: a tombstone's group must never be swapped
            // in before the groups holding its key's older records.
            for rest in groups {
                rewrite::remove_cleaned(Some(&shared.dir), rest.base_offset, &input);
            }
            write_epoch(&*shared.disk, &shared.dir, swapping + 1)?;
            report.passes += 1;
            if deferred {
                break;
            }
            let (topic, partition) = shared.cleaner_name();
            cleaner_checkpoint::write(
                &*shared.disk,
                &shared.cleaner_checkpoint_path(),
                &topic,
                partition,
                Some(end_offset),
            )?;
            report.first_dirty_offset = end_offset;
            log::info!(
                "{}: compacted to offset {end_offset}: {} segments, {} -> {} bytes",
                shared.dir.display(),
                report.segments_before,
                report.bytes_before,
                report.bytes_after
            );
            if end_offset >= dirt.first_uncleanable_offset {
                break;
            }
        }
        Ok(report)
    }
}

/// Whether any of `sources` is no longer in the partition's segment list (retention removed it).
fn sources_gone(shared: &Shared, sources: &[Arc<Segment>]) -> bool {
    let current = shared.segments();
    sources
        .iter()
        .any(|s| !current.iter().any(|c| Arc::ptr_eq(c, s)))
}
