//! [`Partition::compact`]: runs the cleaner's passes over a compacted partition (see
//! [`crate::cleaner`]) and swaps the cleaned segments in.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cleaner::checkpoint::{self as cleaner_checkpoint, CLEANER_CHECKPOINT_FILE};
use crate::cleaner::rewrite::{self, Outcome, PassInput};
use crate::cleaner::{CleanerConfig, CompactionReport, Dirt};
use crate::error::{Error, Result};
use crate::record::{BATCH_HEADER_LEN, BatchHeader};
use crate::segment::Segment;

use super::writer::Swapped;
use super::{Partition, Shared};

impl Shared {
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
    /// (`segment.bytes`/`segment.ms`) to clean everything. See [`crate::cleaner`] for the rules.
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
    /// [`Error::ReadOnly`], [`Error::Closed`], [`Error::Corrupt`] for a damaged batch met while
    /// cleaning (nothing is swapped in), [`Error::Io`]. A policy that does not compact, or a
    /// partition holding transactional batches, is not an error: the report says it was
    /// skipped, and why.
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
        if self.read_only {
            return Err(Error::ReadOnly);
        }
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
            };
            let (groups, end_offset) = match rewrite::run(&input)? {
                Outcome::Skipped(reason) => {
                    log::info!("{}: not compacted: {reason}", shared.dir.display());
                    report.skipped = Some(reason);
                    return Ok(report);
                }
                Outcome::Cleaned { groups, end_offset } => (groups, end_offset),
            };
            let mut deferred = false;
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
