//! Opening a partition directory, as named passes (Kafka's `LogLoader`):
//!
//! 1. **sweep**: delete leftovers of interrupted work (`*.deleted`, `*.cleaned`, `*.tmp`) and
//!    index files without a `.log`; list the segments.
//! 2. **trust the marker**: after a clean close, the clean-shutdown marker lists every segment
//!    with its file lengths and offsets. If every file agrees, the segments open as they are,
//!    without reading them.
//! 3. **recover** otherwise: segments wholly below the recovery point were fsynced and are
//!    trusted (their indexes checked, their last batches read to find the end); every later
//!    segment is scanned batch by batch. At the first invalid batch the log is cut, later
//!    segments are removed, and everything removed is reported. Indexes are rebuilt for every
//!    scanned segment. Damage in a segment below the recovery point is [`Error::Corrupt`]:
//!    flushed data is never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::record::BatchHeader;
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::{
    Entry, Index, IndexBuilder, Indexes, OffsetEntry, Segment, SegmentState, TimeEntry, scan,
};

use super::checkpoint::{self, RECOVERY_POINT_FILE};
use super::marker::{self, MARKER_FILE, SegmentRecord};
use super::writer::ActiveInit;

/// What opening a partition found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The clean-shutdown marker matched the files: nothing was scanned.
    pub clean_shutdown: bool,
    /// Why the open was not clean (no marker, or which file disagreed with it).
    pub unclean_reason: Option<String>,
    /// The recovery point the open started from (segments below it were trusted).
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
    pub(crate) recovery_point: i64,
}

/// Which files each segment has.
#[derive(Debug, Default, Clone, Copy)]
struct Present {
    log: bool,
    index: bool,
    time_index: bool,
}

pub(crate) fn open(disk: &Arc<dyn Disk>, dir: &Path, config: &LogConfig) -> Result<Opened> {
    let created = disk::file_len(&**disk, dir)?.is_none();
    disk::create_dir_all(&**disk, dir)?;
    if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        disk::sync_dir(&**disk, parent)?;
    }
    let mut report = RecoveryReport::default();
    let bases = sweep(&**disk, dir, &mut report)?;
    let recovery_point = match checkpoint::read_recovery_point(&**disk, dir) {
        Ok(point) => point.unwrap_or(0),
        // A damaged checkpoint only costs a longer scan: recover from the start.
        Err(_) => 0,
    };
    report.recovery_point = recovery_point;
    let marker = marker::read(&**disk, dir)?;
    let clean = match marker {
        None => Err("no clean-shutdown marker".to_owned()),
        Some(Err(why)) => Err(format!("clean-shutdown marker unusable: {why}")),
        Some(Ok(records)) => check_marker(&**disk, dir, &bases, &records).map(|()| records),
    };
    let mut opened = match clean {
        Ok(records) => {
            report.clean_shutdown = true;
            open_clean(disk, dir, config, &records, report)?
        }
        Err(reason) => {
            report.unclean_reason = Some(reason);
            recover(disk, dir, config, &bases, recovery_point, report)?
        }
    };
    opened.marker_present = opened.report.clean_shutdown;
    opened.recovery_point = recovery_point;
    Ok(opened)
}

/// Pass 1: removes leftovers and orphans, returns the segments' base offsets in order.
fn sweep(
    disk: &dyn Disk,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<BTreeMap<i64, Present>> {
    let mut segments: BTreeMap<i64, Present> = BTreeMap::new();
    let mut names = disk::list_dir(disk, dir)?;
    names.sort();
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".tmp") {
            disk::remove_file(disk, &path)?;
            report.removed_files.push(path);
            continue;
        }
        let Some(parsed) = file_name::parse(name) else {
            let known = [
                MARKER_FILE,
                RECOVERY_POINT_FILE,
                "leader-epoch-checkpoint",
                "partition.metadata",
            ];
            if !known.contains(&name.as_str()) {
                report.ignored_files.push(path);
            }
            continue;
        };
        match parsed.suffix {
            Some(TempSuffix::Deleted | TempSuffix::Cleaned) => {
                disk::remove_file(disk, &path)?;
                report.removed_files.push(path);
                continue;
            }
            Some(TempSuffix::Swap) => {
                // Swaps come from compaction, which this version does not run: leave them.
                report.ignored_files.push(path);
                continue;
            }
            None => {}
        }
        let present = segments.entry(parsed.base_offset).or_default();
        match parsed.kind {
            FileKind::Log => present.log = true,
            FileKind::Index => present.index = true,
            FileKind::TimeIndex => present.time_index = true,
            FileKind::TxnIndex | FileKind::Snapshot => {}
        }
    }
    let orphans: Vec<i64> = segments
        .iter()
        .filter(|(_, p)| !p.log)
        .map(|(b, _)| *b)
        .collect();
    for base in orphans {
        segments.remove(&base);
        for kind in [FileKind::Index, FileKind::TimeIndex] {
            let path = file_name::file_path(dir, base, kind);
            if disk::file_len(disk, &path)?.is_some() {
                disk::remove_file(disk, &path)?;
                report.removed_files.push(path);
            }
        }
    }
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
        let expected = [
            (FileKind::Log, record.state.size),
            (FileKind::Index, record.index_bytes),
            (FileKind::TimeIndex, record.time_index_bytes),
        ];
        for (kind, len) in expected {
            let path = file_name::file_path(dir, *base, kind);
            match disk::file_len(disk, &path) {
                Ok(Some(actual)) if actual == len => {}
                Ok(found) => {
                    return Err(format!(
                        "{} has {found:?} bytes, marker says {len}",
                        path.display()
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

fn open_clean(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    records: &[SegmentRecord],
    report: RecoveryReport,
) -> Result<Opened> {
    let interval = config.index_interval_bytes();
    let mut segments = Vec::with_capacity(records.len());
    let last = records.len() - 1;
    for (i, record) in records.iter().enumerate() {
        let writable = i == last;
        let segment = Segment::open(
            disk,
            dir,
            record.base_offset,
            record.state,
            None,
            interval,
            writable,
        )?;
        if !writable {
            segment.seal();
        }
        segments.push(Arc::new(segment));
    }
    let active = Arc::clone(&segments[last]);
    let init = active_init(&active, config)?;
    Ok(Opened {
        segments,
        active: init,
        report,
        marker_present: true,
        recovery_point: 0,
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
        let offsets = std::mem::replace(&mut ix.offsets, Index::new());
        let times = std::mem::replace(&mut ix.times, Index::new());
        ix.offsets = Index::from_vec(offsets.as_bytes().to_vec());
        ix.times = Index::from_vec(times.as_bytes().to_vec());
    })?;
    let first_batch_timestamp = first_batch_max_timestamp(active.log(), state.size)?;
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

/// Pass 3: recovery after an unclean stop.
fn recover(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    bases: &BTreeMap<i64, Present>,
    recovery_point: i64,
    mut report: RecoveryReport,
) -> Result<Opened> {
    let interval = config.index_interval_bytes();
    let bases: Vec<i64> = bases.keys().copied().collect();
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut scanned: Vec<bool> = Vec::new();
    let mut active_builder = None;
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
        let next_base = bases.get(i + 1).copied();
        let flushed = next_base.is_some_and(|next| next <= recovery_point);
        if flushed
            && let Some(segment) = open_flushed(disk, dir, base, log_len, next_base, interval)?
        {
            segments.push(Arc::new(segment));
            scanned.push(false);
            continue;
        }
        let log = File::open(&**disk, log_path.clone(), OpenMode::Write)?;
        let map = log.map(log_len).ok().flatten();
        let outcome = scan(&log, map.as_ref(), base, 0, log_len, interval)?;
        drop(map);
        report.segments_scanned += 1;
        if let Some(stop) = &outcome.stop {
            if flushed {
                return Err(Error::corrupt(log_path, stop.position, stop.kind.clone()));
            }
            log.set_len(outcome.valid_size)?;
            report.truncations.push(Truncation {
                path: log_path.clone(),
                position: stop.position,
                bytes_removed: log_len - outcome.valid_size,
                reason: stop.kind.clone(),
            });
            cut = true;
        }
        if let Some(next) = next_base.filter(|&next| !cut && outcome.next_offset > next) {
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
        let state = SegmentState {
            size: outcome.valid_size,
            next_offset: outcome.next_offset,
            max_timestamp: outcome.builder.max_timestamp(),
            offset_of_max_timestamp: outcome.builder.offset_of_max_timestamp(),
        };
        let segment = Segment::open(
            disk,
            dir,
            base,
            state,
            Some(outcome.indexes),
            interval,
            true,
        )?;
        active_builder = Some(outcome.builder);
        segments.push(Arc::new(segment));
        scanned.push(true);
    }
    if segments.is_empty() {
        let segment = Segment::create(disk, dir, 0, config.segment_index_bytes(), interval)?;
        disk::sync_dir(&**disk, dir)?;
        segments.push(Arc::new(segment));
        scanned.push(true);
        active_builder = None;
    }
    let last = segments.len() - 1;
    for (segment, was_scanned) in segments.iter().zip(&scanned).take(last) {
        segment.seal();
        if *was_scanned {
            // Cache files: a failure to write them only means another rebuild later.
            let _ = segment.with_indexes(|ix| segment.write_index_files(ix));
        }
    }
    let active = Arc::clone(&segments[last]);
    let mut init = active_init(&active, config)?;
    if let (true, Some(builder)) = (scanned[last], active_builder) {
        init.builder = builder;
    }
    Ok(Opened {
        segments,
        active: init,
        report,
        marker_present: false,
        recovery_point,
    })
}

/// A segment below the recovery point: its indexes must pass their checks, and the batches
/// after its last offset-index entry must read to the end of the file. `None` if anything
/// fails, so the caller scans the whole segment instead.
fn open_flushed(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    base: i64,
    log_len: u64,
    next_base: Option<i64>,
    interval: i32,
) -> Result<Option<Segment>> {
    let upper = next_base.unwrap_or(i64::MAX);
    let Some(offsets) = load_index::<OffsetEntry>(&**disk, dir, base, FileKind::Index) else {
        return Ok(None);
    };
    let Some(times) = load_index::<TimeEntry>(&**disk, dir, base, FileKind::TimeIndex) else {
        return Ok(None);
    };
    if crate::segment::validate_offsets(&offsets, base, upper, log_len).is_err()
        || crate::segment::validate_times(&times, base, upper).is_err()
    {
        return Ok(None);
    }
    let start = offsets.last().map_or(0, |e| e.position.max(0) as u64);
    let log = File::open(
        &**disk,
        file_name::file_path(dir, base, FileKind::Log),
        OpenMode::Read,
    )?;
    let tail = scan(&log, None, base, start, log_len, interval)?;
    if tail.stop.is_some() || (tail.batches == 0 && log_len > 0) {
        return Ok(None);
    }
    let mut max_timestamp = tail.builder.max_timestamp();
    let mut offset_of_max = tail.builder.offset_of_max_timestamp();
    if let Some(last) = times.last()
        && last.timestamp >= max_timestamp
    {
        max_timestamp = last.timestamp;
        offset_of_max = last.offset(base);
    }
    let state = SegmentState {
        size: log_len,
        next_offset: tail.next_offset,
        max_timestamp,
        offset_of_max_timestamp: offset_of_max,
    };
    let indexes = Indexes { offsets, times };
    Segment::open(disk, dir, base, state, Some(indexes), interval, true).map(Some)
}

fn load_index<E: Entry>(
    disk: &dyn Disk,
    dir: &Path,
    base: i64,
    kind: FileKind,
) -> Option<Index<E>> {
    let file = File::open(disk, file_name::file_path(dir, base, kind), OpenMode::Read).ok()?;
    let bytes = file.read_all().ok()?;
    (bytes.len() % E::SIZE == 0).then(|| Index::from_vec(bytes))
}
