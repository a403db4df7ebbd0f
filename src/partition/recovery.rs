//! Opening a partition directory, as named passes (Kafka's `LogLoader`):
//!
//! 1. **sweep**: delete leftovers of interrupted work (`*.deleted`, `*.cleaned`, `*.tmp`) and
//!    index files without a `.log`; list the segments.
//! 2. **trust the marker**: after a clean close, the clean-shutdown marker lists every segment
//!    with its file lengths and offsets. If every file agrees, the segments open as they are,
//!    without reading them.
//! 3. **recover** otherwise: segments the recovery checkpoint lists as fsynced are trusted as
//!    recorded when their files still have the recorded lengths, without reading them. Every
//!    other segment is scanned batch by batch. At the first invalid batch of an unflushed
//!    segment the log is cut, later segments are removed, and everything removed is reported.
//!    Indexes are rebuilt for every scanned segment. A flushed segment whose files disagree
//!    with the checkpoint is scanned too, and damage within its flushed length is
//!    [`Error::Corrupt`]: flushed data is never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::record::BatchHeader;
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::{Index, IndexBuilder, Segment, scan};

use super::checkpoint::{self, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::manifest::SegmentRecord;
use super::marker::{self, MARKER_FILE};
use super::writer::ActiveInit;

/// What opening a partition found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The clean-shutdown marker matched the files: nothing was scanned.
    pub clean_shutdown: bool,
    /// Why the open was not clean (no marker, or which file disagreed with it).
    pub unclean_reason: Option<String>,
    /// The recovery point the open started from: the offset after the last segment recorded
    /// as fsynced (segments below it are trusted without reading them).
    pub recovery_point: i64,
    /// Segments read batch by batch.
    pub segments_scanned: usize,
    /// Cuts made at the first invalid batch.
    pub truncations: Vec<Truncation>,
    /// Segments removed because they came after a cut.
    pub removed_segments: Vec<RemovedSegment>,
    /// Leftover and orphaned files deleted (temporary files, indexes without a log).
    pub removed_files: Vec<PathBuf>,
    /// Files in the directory that topiclog does not know and left alone.
    pub ignored_files: Vec<PathBuf>,
}

impl RecoveryReport {
    /// Bytes of segment data cut or removed.
    pub fn bytes_lost(&self) -> u64 {
        let cut: u64 = self.truncations.iter().map(|t| t.bytes_removed).sum();
        cut + self.removed_segments.iter().map(|s| s.bytes).sum::<u64>()
    }
}

/// A segment cut at its first invalid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// The `.log` file.
    pub path: PathBuf,
    /// Where it was cut: the byte position of the first invalid batch.
    pub position: u64,
    /// Bytes removed from there to the old end of the file.
    pub bytes_removed: u64,
    /// Why the batch there is invalid (for a torn write, a batch running past the end).
    pub reason: Corruption,
}

/// A segment removed because an earlier one was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedSegment {
    /// Its base offset.
    pub base_offset: i64,
    /// Bytes its `.log` held.
    pub bytes: u64,
}

/// The result of opening: segments ready to serve, and the writer's starting state.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) active: ActiveInit,
    pub(crate) report: RecoveryReport,
    pub(crate) marker_present: bool,
    /// Records of the sealed segments known to be fsynced, oldest first.
    pub(crate) flushed: Vec<SegmentRecord>,
    /// Sealed segments not known to be fsynced (the next flush syncs them).
    pub(crate) unsynced: Vec<Arc<Segment>>,
    /// The checkpoint on disk lists segments `flushed` does not (removed ones, or the one that
    /// is active again): it must be rewritten before the first write.
    pub(crate) checkpoint_stale: bool,
    /// The log start offset: the checkpointed one, or the first segment's base offset.
    pub(crate) log_start_offset: i64,
}

/// Which files each segment has.
#[derive(Debug, Default, Clone, Copy)]
struct Present {
    log: bool,
}

pub(crate) fn open(disk: &Arc<dyn Disk>, dir: &Path, config: &LogConfig) -> Result<Opened> {
    create_dir_durably(&**disk, dir)?;
    let mut report = RecoveryReport::default();
    cut_after_failed_fsync(&**disk, dir, &mut report)?;
    let bases = sweep(&**disk, dir, &mut report)?;
    // A damaged checkpoint only costs a longer scan: every segment is scanned.
    let flushed = checkpoint::read_flushed(&**disk, dir).unwrap_or_default();
    report.recovery_point = flushed.last().map_or(0, |r| r.state.next_offset);
    let clean = match marker::read(&**disk, dir)? {
        None => Err("no clean-shutdown marker".to_owned()),
        Some(Err(why)) => Err(format!("clean-shutdown marker unusable: {why}")),
        Some(Ok(records)) => check_marker(&**disk, dir, &bases, &records).map(|()| records),
    };
    let (segments, scanned, report) = match clean {
        Ok(records) => {
            report.clean_shutdown = true;
            let segments = open_recorded(disk, dir, config, &records)?;
            let scanned = vec![None; segments.len()];
            (segments, scanned, report)
        }
        Err(reason) => {
            report.unclean_reason = Some(reason);
            recover(disk, dir, config, &bases, &flushed, report)?
        }
    };
    let recorded_start = checkpoint::read_log_start(&**disk, dir)?;
    let (segments, scanned, report) = match recorded_start {
        Some(start) if segments.last().is_some_and(|s| s.next_offset() < start) => {
            restart_at(disk, dir, config, segments, start, report)?
        }
        _ => (segments, scanned, report),
    };
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let mut opened = finish(config, segments, scanned, &flushed, report)?;
    opened.log_start_offset = recorded_start.unwrap_or(first_base).max(first_base);
    Ok(opened)
}

/// A log whose end lies below its recorded start (everything was deleted, then the segments
/// lost data) is emptied and restarts at the recorded start, as Kafka's loader does.
#[allow(clippy::type_complexity)]
fn restart_at(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    segments: Vec<Arc<Segment>>,
    start: i64,
    mut report: RecoveryReport,
) -> Result<(Vec<Arc<Segment>>, Vec<Option<IndexBuilder>>, RecoveryReport)> {
    for segment in &segments {
        report.removed_segments.push(RemovedSegment {
            base_offset: segment.base_offset(),
            bytes: segment.size(),
        });
        segment.mark_deleted()?;
    }
    drop(segments);
    let interval = config.index_interval_bytes();
    let segment = Segment::create(disk, dir, start, config.segment_index_bytes(), interval)?;
    disk::sync_dir(&**disk, dir)?;
    report
        .unclean_reason
        .get_or_insert_with(|| "log ends below its start".to_owned());
    report.clean_shutdown = false;
    Ok((
        vec![Arc::new(segment)],
        vec![Some(IndexBuilder::new(interval, start))],
        report,
    ))
}

/// Opens for reading only, changing nothing: no sweep, no cut, no index file written, no
/// marker removed. Segments the clean-shutdown marker vouches for are trusted; every other one
/// is scanned, and only its valid prefix is served (a torn tail a live writer is still
/// finishing, or damage, is left where it is and reported).
pub(crate) fn open_read_only(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
) -> Result<Opened> {
    let mut report = RecoveryReport::default();
    let bases = list_segments(&**disk, dir)?;
    let interval = config.index_interval_bytes();
    let records = match marker::read(&**disk, dir)? {
        Some(Ok(records)) => {
            let present: BTreeMap<i64, Present> =
                bases.iter().map(|&b| (b, Present { log: true })).collect();
            match check_marker(&**disk, dir, &present, &records) {
                Ok(()) => Some(records),
                Err(reason) => {
                    report.unclean_reason = Some(reason);
                    None
                }
            }
        }
        Some(Err(why)) => {
            report.unclean_reason = Some(format!("clean-shutdown marker unusable: {why}"));
            None
        }
        None => {
            report.unclean_reason = Some("no clean-shutdown marker".to_owned());
            None
        }
    };
    let (segments, scanned) = if let Some(records) = records {
        report.clean_shutdown = true;
        let segments = records
            .iter()
            .map(|r| {
                Segment::open(disk, dir, r.base_offset, r.state, None, interval, false)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        let scanned = vec![None; segments.len()];
        (segments, scanned)
    } else {
        let mut segments = Vec::new();
        let mut scanned = Vec::new();
        for base in bases {
            let (segment, builder, stop) = scan_read_only(disk, dir, base, interval)?;
            report.segments_scanned += 1;
            report.truncations.extend(stop);
            segments.push(Arc::new(segment));
            scanned.push(Some(builder));
        }
        (segments, scanned)
    };
    if segments.is_empty() {
        return Err(Error::io(
            crate::error::IoOp::Read,
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no segment to read"),
        ));
    }
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let recorded_start = checkpoint::read_log_start(&**disk, dir)?;
    let mut opened = finish(config, segments, scanned, &[], report)?;
    opened.log_start_offset = recorded_start.unwrap_or(first_base).max(first_base);
    Ok(opened)
}

/// Opens one segment read-only by scanning it: only its valid prefix is served. Returns the
/// segment, its index state, and the torn or damaged tail left in place, if any.
pub(crate) fn scan_read_only(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    base: i64,
    interval: i32,
) -> Result<(Segment, IndexBuilder, Option<Truncation>)> {
    let log_path = file_name::file_path(dir, base, FileKind::Log);
    let log_len = disk::file_len(&**disk, &log_path)?.unwrap_or(0);
    let log = File::open(&**disk, log_path.clone(), OpenMode::Read)?;
    let outcome = scan(&log, None, base, 0, log_len, interval)?;
    let stop = outcome.stop.as_ref().map(|stop| Truncation {
        path: log_path,
        position: stop.position,
        bytes_removed: log_len - outcome.valid_size,
        reason: stop.kind.clone(),
    });
    let state = outcome.state();
    let segment = Segment::open(
        disk,
        dir,
        base,
        state,
        Some(outcome.indexes),
        interval,
        false,
    )?;
    Ok((segment, outcome.builder, stop))
}

/// Extends a read-only segment over whole batches a writer added to its file since it was
/// last scanned. Returns whether it grew.
pub(crate) fn grow_read_only(segment: &Segment, interval: i32) -> Result<bool> {
    let start = segment.size();
    let log = segment.log()?;
    let file_len = log.len()?;
    if file_len <= start {
        return Ok(false);
    }
    let base = segment.base_offset();
    let outcome = scan(&log, None, base, start, file_len, interval)?;
    if outcome.valid_size <= start {
        return Ok(false);
    }
    let before = segment.state();
    segment.with_indexes_mut(|ix| {
        let last_offset = ix.offsets.last().map(|e| e.relative_offset);
        for entry in outcome.indexes.offsets.iter() {
            if last_offset.is_none_or(|last| entry.relative_offset > last) {
                ix.offsets.push(entry);
            }
        }
        for entry in outcome.indexes.times.iter() {
            if crate::segment::should_append_time(&ix.times, entry.timestamp) {
                ix.times.push(entry);
            }
        }
    })?;
    let (max_timestamp, offset_of_max) = if outcome.builder.max_timestamp() > before.max_timestamp {
        (
            outcome.builder.max_timestamp(),
            outcome.builder.offset_of_max_timestamp(),
        )
    } else {
        (before.max_timestamp, before.offset_of_max_timestamp)
    };
    segment.set_file_size(outcome.valid_size);
    segment.publish(
        outcome.valid_size,
        outcome.next_offset,
        max_timestamp,
        offset_of_max,
    );
    Ok(true)
}

/// Base offsets of the `.log` files in `dir`, ascending.
pub(crate) fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in disk::list_dir(disk, dir)? {
        let parsed = entry
            .name
            .to_str()
            .filter(|_| entry.is_file)
            .and_then(file_name::parse);
        match parsed {
            Some(p) if p.kind == FileKind::Log && p.suffix.is_none() => bases.push(p.base_offset),
            _ => {}
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// After a failed fsync the kernel may have dropped pages it still serves from its cache, so a
/// restart must not trust them: cut the segment back to what the last successful fsync made
/// durable (nothing after it was acknowledged as durable), then forget the note.
fn cut_after_failed_fsync(disk: &dyn Disk, dir: &Path, report: &mut RecoveryReport) -> Result<()> {
    let Some((base, synced)) = checkpoint::read_poison(disk, dir)? else {
        return Ok(());
    };
    let path = file_name::file_path(dir, base, FileKind::Log);
    if let Some(len) = disk::file_len(disk, &path)?.filter(|&len| len > synced) {
        File::open(disk, path.clone(), OpenMode::Write)?.set_len(synced)?;
        report.truncations.push(Truncation {
            path,
            position: synced,
            bytes_removed: len - synced,
            reason: Corruption::UnsyncedAfterFailedFsync { synced },
        });
    }
    disk::remove_file(disk, &dir.join(checkpoint::POISON_FILE))?;
    disk::sync_dir(disk, dir)
}

/// Creates `dir` and any missing parents, making each new directory's entry durable (a
/// partition directory lost to a power loss would take its flushed records with it).
fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if disk::file_len(disk, path)?.is_some() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    disk::create_dir_all(disk, dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        disk::sync_dir(disk, parent)?;
    }
    Ok(())
}

/// Pass 1: removes leftovers and orphans, returns the segments' base offsets in order.
fn sweep(
    disk: &dyn Disk,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<BTreeMap<i64, Present>> {
    let mut segments: BTreeMap<i64, Present> = BTreeMap::new();
    let mut orphans: Vec<PathBuf> = Vec::new();
    let mut entries = disk::list_dir(disk, dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let path = dir.join(&entry.name);
        let Some(name) = entry.name.to_str().filter(|_| entry.is_file) else {
            report.ignored_files.push(path);
            continue;
        };
        if name.ends_with(".tmp") {
            disk::remove_file(disk, &path)?;
            report.removed_files.push(path);
            continue;
        }
        let Some(parsed) = file_name::parse(name) else {
            let known = [
                MARKER_FILE,
                RECOVERY_POINT_FILE,
                LOG_START_FILE,
                checkpoint::POISON_FILE,
                "leader-epoch-checkpoint",
                "partition.metadata",
            ];
            if !known.contains(&name) {
                report.ignored_files.push(path);
            }
            continue;
        };
        match (parsed.suffix, parsed.kind) {
            (Some(TempSuffix::Deleted | TempSuffix::Cleaned), _) => {
                disk::remove_file(disk, &path)?;
                report.removed_files.push(path);
            }
            // Swaps come from compaction, which this version does not run: leave them.
            (Some(TempSuffix::Swap), _) => report.ignored_files.push(path),
            (None, FileKind::Log) => segments.entry(parsed.base_offset).or_default().log = true,
            (None, FileKind::Index | FileKind::TimeIndex) => {
                segments.entry(parsed.base_offset).or_default();
                orphans.push(path);
            }
            (None, FileKind::TxnIndex | FileKind::Snapshot) => {}
        }
    }
    for path in orphans {
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_name::parse)
            .map(|p| p.base_offset);
        if base.is_some_and(|b| segments.get(&b).is_some_and(|p| !p.log)) {
            disk::remove_file(disk, &path)?;
            report.removed_files.push(path);
        }
    }
    segments.retain(|_, p| p.log);
    Ok(segments)
}

/// Pass 2: the marker must list exactly the segments present, with the same file lengths.
fn check_marker(
    disk: &dyn Disk,
    dir: &Path,
    bases: &BTreeMap<i64, Present>,
    records: &[SegmentRecord],
) -> std::result::Result<(), String> {
    if records.is_empty() || records.len() != bases.len() {
        return Err(format!(
            "marker lists {} segments, directory has {}",
            records.len(),
            bases.len()
        ));
    }
    for (record, base) in records.iter().zip(bases.keys()) {
        if record.base_offset != *base {
            return Err(format!(
                "marker lists segment {}, directory has {base}",
                record.base_offset
            ));
        }
        record.check_files(disk, dir)?;
    }
    Ok(())
}

/// Opens segments exactly as their records describe them.
fn open_recorded(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    records: &[SegmentRecord],
) -> Result<Vec<Arc<Segment>>> {
    let interval = config.index_interval_bytes();
    records
        .iter()
        .map(|r| {
            Segment::open(disk, dir, r.base_offset, r.state, None, interval, true).map(Arc::new)
        })
        .collect()
}

/// Pass 3: recovery after an unclean stop. Returns the segments, and for each one that was
/// scanned, the index state to append with.
#[allow(clippy::type_complexity)]
fn recover(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    bases: &BTreeMap<i64, Present>,
    flushed: &[SegmentRecord],
    mut report: RecoveryReport,
) -> Result<(Vec<Arc<Segment>>, Vec<Option<IndexBuilder>>, RecoveryReport)> {
    let interval = config.index_interval_bytes();
    let bases: Vec<i64> = bases.keys().copied().collect();
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut scanned: Vec<Option<IndexBuilder>> = Vec::new();
    let mut cut = false;
    for (i, &base) in bases.iter().enumerate() {
        let log_path = file_name::file_path(dir, base, FileKind::Log);
        let log_len = disk::file_len(&**disk, &log_path)?.unwrap_or(0);
        if cut {
            for kind in [FileKind::Log, FileKind::Index, FileKind::TimeIndex] {
                disk::remove_file(&**disk, &file_name::file_path(dir, base, kind))?;
            }
            report.removed_segments.push(RemovedSegment {
                base_offset: base,
                bytes: log_len,
            });
            continue;
        }
        let record = flushed.iter().find(|r| r.base_offset == base);
        if let Some(record) = record.filter(|r| r.check_files(&**disk, dir).is_ok()) {
            let segment = Segment::open(disk, dir, base, record.state, None, interval, true)?;
            segments.push(Arc::new(segment));
            scanned.push(None);
            continue;
        }
        let log = File::open(&**disk, log_path.clone(), OpenMode::Write)?;
        // A flushed segment is scanned only up to its flushed length; what lies beyond was
        // never part of it.
        let end = record.map_or(log_len, |r| r.state.size.min(log_len));
        let map = log.map(end).ok().flatten();
        let outcome = scan(&log, map.as_ref(), base, 0, end, interval)?;
        drop(map);
        report.segments_scanned += 1;
        if let Some(record) = record {
            if let Some(stop) = &outcome.stop {
                return Err(Error::corrupt(log_path, stop.position, stop.kind.clone()));
            }
            if outcome.next_offset != record.state.next_offset || log_len < record.state.size {
                let kind = Corruption::FlushedDataMissing {
                    flushed_size: record.state.size,
                };
                return Err(Error::corrupt(log_path, outcome.valid_size, kind));
            }
            if log_len > end {
                log.set_len(end)?;
                report.truncations.push(Truncation {
                    path: log_path.clone(),
                    position: end,
                    bytes_removed: log_len - end,
                    reason: Corruption::BeyondFlushedEnd { flushed_size: end },
                });
            }
        } else if let Some(stop) = &outcome.stop {
            log.set_len(outcome.valid_size)?;
            report.truncations.push(Truncation {
                path: log_path.clone(),
                position: stop.position,
                bytes_removed: log_len - outcome.valid_size,
                reason: stop.kind.clone(),
            });
            cut = true;
        }
        if let Some(next) = bases
            .get(i + 1)
            .copied()
            .filter(|&next| !cut && outcome.next_offset > next)
        {
            let kind = Corruption::OffsetOutOfOrder {
                base_offset: next,
                last_offset: next,
                expected_at_least: outcome.next_offset,
            };
            return Err(Error::corrupt(
                file_name::file_path(dir, next, FileKind::Log),
                0,
                kind,
            ));
        }
        let state = outcome.state();
        let segment = Segment::open(
            disk,
            dir,
            base,
            state,
            Some(outcome.indexes),
            interval,
            true,
        )?;
        segments.push(Arc::new(segment));
        scanned.push(Some(outcome.builder));
    }
    if segments.is_empty() {
        let segment = Segment::create(disk, dir, 0, config.segment_index_bytes(), interval)?;
        disk::sync_dir(&**disk, dir)?;
        segments.push(Arc::new(segment));
        scanned.push(Some(IndexBuilder::new(interval, 0)));
    }
    Ok((segments, scanned, report))
}

/// Seals all but the last segment, writes the indexes of scanned sealed segments, and works out
/// the writer's starting state.
fn finish(
    config: &LogConfig,
    segments: Vec<Arc<Segment>>,
    scanned: Vec<Option<IndexBuilder>>,
    flushed: &[SegmentRecord],
    report: RecoveryReport,
) -> Result<Opened> {
    let last = segments.len() - 1;
    let mut kept_flushed = Vec::new();
    let mut unsynced = Vec::new();
    for (segment, builder) in segments.iter().zip(&scanned).take(last) {
        segment.seal();
        if builder.is_some() {
            // Cache files: a failure to write them (or a read-only open) only means another
            // rebuild later.
            let _ = segment.with_indexes(|ix| segment.write_index_files(ix));
        }
        match flushed
            .iter()
            .find(|r| r.base_offset == segment.base_offset() && r.state == segment.state())
        {
            Some(record) if builder.is_none() => kept_flushed.push(*record),
            // Scanned segments may sit in the page cache only (a process crash): sync them.
            _ => unsynced.push(Arc::clone(segment)),
        }
    }
    let active = Arc::clone(&segments[last]);
    if scanned.last().is_some_and(Option::is_some) {
        // The active segment's files too, as Kafka's recovery rewrites them: until its first
        // append, anyone reading the directory (`topiclog verify`, Kafka's tools) would see
        // the stale entries of before the crash.
        let _ = active.with_indexes(|ix| active.write_index_files(ix));
    }
    let mut init = active_init(&active, config)?;
    if let Some(Some(builder)) = scanned.last() {
        init.builder = builder.clone();
    }
    Ok(Opened {
        marker_present: report.clean_shutdown,
        segments,
        active: init,
        report,
        checkpoint_stale: kept_flushed.as_slice() != flushed,
        flushed: kept_flushed,
        unsynced,
        log_start_offset: 0,
    })
}

/// The writer's state for the active segment: its indexes in memory (they grow), checked, and
/// rebuilt from the log if they fail.
///
/// The index files are rewritten from memory before the first append (the writer starts with
/// no entry counted as written), so what they held before never matters.
fn active_init(active: &Segment, config: &LogConfig) -> Result<ActiveInit> {
    let state = active.state();
    // Own the entries in memory: appends extend them.
    active.with_indexes_mut(|ix| {
        ix.offsets = Index::from_vec(ix.offsets.as_bytes().to_vec());
        ix.times = Index::from_vec(ix.times.as_bytes().to_vec());
    })?;
    let first_batch_timestamp = first_batch_max_timestamp(&active.log()?, state.size)?;
    Ok(ActiveInit {
        builder: IndexBuilder::resume(
            config.index_interval_bytes(),
            state.max_timestamp,
            state.offset_of_max_timestamp,
        ),
        first_batch_timestamp,
        offsets_written: 0,
        times_written: 0,
    })
}

/// The first batch's max timestamp (what time-based rolling measures from), if any.
fn first_batch_max_timestamp(log: &File, size: u64) -> Result<Option<i64>> {
    if size == 0 {
        return Ok(None);
    }
    let mut header = [0u8; crate::record::BATCH_HEADER_LEN];
    let n = log.read_at(&mut header, 0)?;
    Ok(BatchHeader::parse(&header[..n])
        .ok()
        .map(|h| h.max_timestamp))
}
