//! Opening a partition directory, as named passes (Kafka's `LogLoader`):
//!
//! 1. **sweep**: delete leftovers of interrupted work (`*.deleted`, `*.cleaned`, `*.tmp`) and
//!    index files without a `.log`; list the segments.
//! 2. **trust the marker**: after a clean close, the clean-shutdown marker lists every segment
//!    with its file lengths and offsets. If every file agrees, the segments open as they are,
//!    without reading them.
//! 3. **recover** otherwise: segments the recovery checkpoint lists as fsynced are trusted as
//!    recorded when their files still have the recorded lengths, without reading them. Every
//!    other segment is scanned batch by batch. Above the recovery point, data may be torn by a
//!    crash or holed by a power loss: at the first invalid batch the log is cut, later
//!    segments are removed, and everything removed is reported, with any valid-looking batch
//!    found in what was cut. At or below it (a flushed segment whose files disagree with the
//!    checkpoint, or the active segment's recorded durable prefix) data was fsynced, so damage
//!    there is [`Error::Corrupt`], or with [`RecoveryOptions::truncate_corrupt`] a cut reported
//!    as such: flushed data is never dropped silently. Indexes are rebuilt for every scanned
//!    segment.
//! 4. **log start**: the log-start checkpoint, once written, must stay: a missing or damaged
//!    one is [`Error::Corrupt`] unless [`RecoveryOptions::rebuild_log_start`] allows a rebuild.
//!    A partition never checkpointed (a Kafka-made one) starts at its first segment.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::record::BatchHeader;
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::{
    Access, FoundBatch, Index, IndexBuilder, IndexSizing, ScanOutcome, Segment, SegmentState,
    find_batches, scan, scan_marked,
};

use super::appender::ActiveInit;
use super::checkpoint::{self, DurablePrefix, LOG_START_FILE, RECOVERY_POINT_FILE, RecoveryPoint};
use super::manifest::{SegmentRecord, TxnIndexStamp};
use super::marker::{self, MARKER_FILE};

/// The most valid-looking batches after cuts a [`RecoveryReport`] lists one by one.
pub const MAX_REPORTED_BATCHES_AFTER_CUT: usize = 1024;

/// What opening a partition may repair beyond a torn tail. Both default to off: damage to data
/// that was fsynced fails the open with a typed error, and the caller decides.
///
/// ```
/// use topiclog::Partition;
/// use topiclog::config::{LogConfig, RecoveryOptions};
///
/// let dir = tempfile::tempdir()?;
/// let options = RecoveryOptions::new().truncate_corrupt(true);
/// let log = Partition::open_with(dir.path(), LogConfig::default(), options)?;
/// assert!(log.recovery().truncations.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryOptions {
    truncate_corrupt: bool,
    rebuild_log_start: bool,
    lock_timeout: std::time::Duration,
}

impl RecoveryOptions {
    /// Nothing beyond torn tails is repaired.
    pub fn new() -> RecoveryOptions {
        RecoveryOptions::default()
    }

    /// Cut the partition at damaged data that had been fsynced (at or below the recovery
    /// point) instead of failing the open with [`Error::Corrupt`]. Everything from the damage
    /// on is lost, later segments included; the [`Truncation`] says so (`flushed` is set). A
    /// damaged recovery checkpoint is set aside too: every segment is then scanned.
    pub fn truncate_corrupt(mut self, on: bool) -> RecoveryOptions {
        self.truncate_corrupt = on;
        self
    }

    /// Rebuild a missing or damaged log-start checkpoint instead of failing the open: the log
    /// then starts at the last log start the recovery checkpoint recorded, or at its first
    /// segment. Records deleted since (by `delete_records` or retention) may come back; the
    /// rebuild is reported in [`RecoveryReport::log_start_rebuilt`].
    pub fn rebuild_log_start(mut self, on: bool) -> RecoveryOptions {
        self.rebuild_log_start = on;
        self
    }

    /// How long a writable open waits for another writer to release the partition's lock
    /// before failing with [`Error::Locked`] (default: not at all). A partition opened on its
    /// own locks a file in its directory, or its store's lock when it lies in a store's
    /// directory.
    pub fn lock_timeout(mut self, timeout: std::time::Duration) -> RecoveryOptions {
        self.lock_timeout = timeout;
        self
    }

    /// How long a writable open waits for the lock.
    pub fn lock_wait(&self) -> std::time::Duration {
        self.lock_timeout
    }

    /// Whether fsynced damage is cut instead of failing the open.
    pub fn truncates_corrupt(&self) -> bool {
        self.truncate_corrupt
    }

    /// Whether a missing or damaged log-start checkpoint is rebuilt.
    pub fn rebuilds_log_start(&self) -> bool {
        self.rebuild_log_start
    }
}

/// What opening a partition found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The clean-shutdown marker matched the files: nothing was scanned.
    pub clean_shutdown: bool,
    /// Why the open was not clean (no marker, or which file disagreed with it).
    pub unclean_reason: Option<String>,
    /// The recovery point the open started from: the offset below which the recovery
    /// checkpoint recorded everything as fsynced (flushed segments are trusted without reading
    /// them; damage below it is corruption, not a torn write).
    pub recovery_point: i64,
    /// The recovery checkpoint could not be read (why). Unless the clean-shutdown marker
    /// vouched for the files, the open failed with [`Error::Corrupt`], or with
    /// [`RecoveryOptions::truncate_corrupt`] scanned every segment, where damage could not be
    /// told apart from a torn write.
    pub recovery_checkpoint_unusable: Option<String>,
    /// Segments read batch by batch.
    pub segments_scanned: usize,
    /// Cuts made at the first invalid batch.
    pub truncations: Vec<Truncation>,
    /// Segments removed because they came after a cut.
    pub removed_segments: Vec<RemovedSegment>,
    /// Whole batches with valid CRCs found in what the cuts removed (a power loss can write a
    /// later page and lose an earlier one): lost with the cut, listed so the loss is visible.
    /// At most [`MAX_REPORTED_BATCHES_AFTER_CUT`]; the rest are counted in
    /// `batches_after_cut_unlisted`.
    pub batches_after_cut: Vec<BatchAfterCut>,
    /// Valid-looking batches after cuts beyond those listed.
    pub batches_after_cut_unlisted: u64,
    /// The log-start checkpoint was missing or damaged and was rebuilt (only with
    /// [`RecoveryOptions::rebuild_log_start`]).
    pub log_start_rebuilt: Option<LogStartRebuild>,
    /// Leftover and orphaned files deleted (temporary files, indexes without a log).
    pub removed_files: Vec<PathBuf>,
    /// Files in the directory that topiclog does not know and left alone.
    pub ignored_files: Vec<PathBuf>,
    /// How the producers' state was rebuilt (a read-only open writes nothing of it).
    pub producer_state: super::ProducerStateRecovery,
    /// Base offsets of cleaned segments a crash left in the middle of their swap, which the
    /// open finished: the old segments they replace were removed and they took their names.
    pub swaps_completed: Vec<i64>,
    /// `.txnindex` files that did not decode, with why: their entries were rebuilt from the
    /// log (and the files rewritten, unless read-only).
    pub txn_indexes_damaged: Vec<(PathBuf, String)>,
    /// `.txnindex` files written again because the log they describe changed (a recovery
    /// scan or cut, or a crash between a marker and its entry) or they were damaged.
    pub txn_indexes_rewritten: Vec<PathBuf>,
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
    /// The cut removed data that had been fsynced: damage, not a torn write (only with
    /// [`RecoveryOptions::truncate_corrupt`]).
    pub flushed: bool,
}

/// A whole batch with a valid CRC found after a cut, lost with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchAfterCut {
    /// The `.log` file it was in.
    pub path: PathBuf,
    /// Its byte position there.
    pub position: u64,
    /// Its first offset.
    pub base_offset: i64,
    /// Its last offset.
    pub last_offset: i64,
}

/// A log-start checkpoint rebuilt on open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStartRebuild {
    /// The log start offset the partition opened with (and wrote back).
    pub offset: i64,
    /// What was wrong with the checkpoint.
    pub reason: String,
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
    /// Whether the log-start checkpoint exists (the recovery checkpoint then says so).
    pub(crate) log_start_checkpointed: bool,
    /// How much of the active segment is known to be fsynced: `(bytes, next offset)`.
    pub(crate) durable_active: Option<(u64, i64)>,
    /// The recovery checkpoint as read (`None` if unusable).
    pub(crate) recovery_point: Option<RecoveryPoint>,
    /// The `.txnindex` of each segment as the record the open trusted says it was (the
    /// clean-shutdown marker's, or the recovery checkpoint's for flushed segments).
    pub(crate) txn_index_recorded: BTreeMap<i64, TxnIndexStamp>,
}

/// Which files each segment has.
#[derive(Debug, Default, Clone, Copy)]
struct Present {
    log: bool,
}

/// Opens the partition in `dir`. A writable open repairs what a crash left (see the module
/// docs); a read-only one (the disk refuses writes) runs the same listing and checks without
/// changing a file, serving what the writable open would keep. A read-only open runs beside a
/// live writer, which may change the directory between two of its reads (a roll, retention
/// deleting a segment, a checkpoint replaced): its caller runs it under [`retry_read_only`].
pub(crate) fn open(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    options: RecoveryOptions,
) -> Result<Opened> {
    open_once(disk, dir, config, options)
}

/// Runs `open` (a read-only open of the partition in `dir`, every file it reads included:
/// segments, indexes, producer snapshots, `.txnindex` files) again when it fails in a way a
/// live writer's concurrent change can cause and the directory changed meanwhile: damage that
/// stays put is reported at once. A writable open runs once.
pub(crate) fn retry_read_only<T>(
    disk: &dyn Disk,
    dir: &Path,
    mut open: impl FnMut() -> Result<T>,
) -> Result<T> {
    if !disk.is_read_only() {
        return open();
    }
    let mut attempt = 0u32;
    loop {
        let before = disk::fingerprint(disk, dir);
        match open() {
            Err(e)
                if attempt < READ_ONLY_RETRIES
                    && may_be_transient(&e)
                    && disk::fingerprint(disk, dir) != before =>
            {
                attempt += 1;
                let wait = (1u64 << attempt).min(READ_ONLY_MAX_WAIT_MS);
                std::thread::sleep(std::time::Duration::from_millis(wait));
            }
            result => return result,
        }
    }
}

/// Logs what an open found: one summary line (info for a writable open, debug for a read-only
/// one, which other processes may repeat often), and a warning for each loss a repair made.
pub(crate) fn log_opened(
    dir: &Path,
    report: &RecoveryReport,
    read_only: bool,
    offsets: std::ops::Range<i64>,
) {
    let level = if read_only {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    let how = match (&report.unclean_reason, report.clean_shutdown) {
        (_, true) => "after a clean shutdown".to_owned(),
        (Some(reason), false) => format!("after an unclean stop ({reason})"),
        (None, false) => "after an unclean stop".to_owned(),
    };
    log::log!(
        level,
        "opened partition {}{} {how}: offsets {}..{}, {} segments scanned, {} bytes cut",
        dir.display(),
        if read_only { " read-only" } else { "" },
        offsets.start,
        offsets.end,
        report.segments_scanned,
        report.bytes_lost(),
    );
    if let Some(reason) = &report.recovery_checkpoint_unusable {
        log::warn!("{}: recovery checkpoint unusable: {reason}", dir.display());
    }
    // A read-only open changes nothing: it leaves out what the writable open will cut.
    let (loss, cut, removed) = if read_only {
        (log::Level::Debug, "not serving", "not serving")
    } else {
        (log::Level::Warn, "cut", "removed")
    };
    for t in &report.truncations {
        let what = if t.flushed {
            "fsynced data"
        } else {
            "a torn write"
        };
        log::log!(
            loss,
            "{cut} {} from byte {} ({} bytes of {what}): {}",
            t.path.display(),
            t.position,
            t.bytes_removed,
            t.reason
        );
    }
    for r in &report.removed_segments {
        log::log!(
            loss,
            "{}: {removed} segment {} ({} bytes) after a cut",
            dir.display(),
            r.base_offset,
            r.bytes
        );
    }
    let after_cut = report.batches_after_cut.len() as u64 + report.batches_after_cut_unlisted;
    if after_cut > 0 {
        log::log!(
            loss,
            "{}: {after_cut} whole batches with valid CRCs lay after the cuts and were lost \
             with them (a power loss wrote a later page and lost an earlier one)",
            dir.display()
        );
    }
    if let Some(rebuild) = &report.log_start_rebuilt {
        log::warn!(
            "{}: log-start checkpoint rebuilt at offset {}: {}",
            dir.display(),
            rebuild.offset,
            rebuild.reason
        );
    }
    for f in &report.removed_files {
        log::debug!("removed leftover file {}", f.display());
    }
}

/// How many times a read-only open reads the directory again after a failed check (a writer
/// whose retention deletes a segment every few appends can change it under each attempt on a
/// busy machine), and the most it waits between two.
const READ_ONLY_RETRIES: u32 = 10;
const READ_ONLY_MAX_WAIT_MS: u64 = 20;

/// Errors a live writer's concurrent change can cause in a read-only open.
fn may_be_transient(e: &Error) -> bool {
    match e {
        Error::Corrupt { .. } => true,
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

fn open_once(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    options: RecoveryOptions,
) -> Result<Opened> {
    let writes = !disk.is_read_only();
    let mut report = RecoveryReport::default();
    // After a failed fsync, bytes past the last successful one were never acknowledged as
    // durable: a writable open cuts them, a read-only one serves only what lies before.
    let mut unsynced = None;
    if writes {
        disk::create_dir_durably(&**disk, dir)?;
        cut_after_failed_fsync(&**disk, dir, &mut report)?;
        finish_swaps(&**disk, dir, config, &mut report)?;
    } else {
        unsynced = checkpoint::read_poison(&**disk, dir)?;
    }
    let bases = sweep(&**disk, dir, Access::of(&**disk), &mut report)?;
    // A damaged recovery checkpoint: unless the marker vouches for every file, what was
    // durable is unknown, and a lost segment would go unnoticed. It fails the open, or with
    // `truncate_corrupt` costs a scan of every segment (the report says so).
    let mut damaged_point = None;
    let point = match checkpoint::read_recovery_point(&**disk, dir) {
        Ok(point) => Some(point),
        Err(e) => {
            report.recovery_checkpoint_unusable = Some(e.to_string());
            damaged_point = Some(e);
            None
        }
    };
    let mut known = point.clone().unwrap_or_default();
    let clean = match marker::read(&**disk, dir)? {
        None => Err("no clean-shutdown marker".to_owned()),
        Some(Err(why)) => Err(format!("clean-shutdown marker unusable: {why}")),
        Some(Ok(_)) if unsynced.is_some() => Err("an fsync failed after the close".to_owned()),
        Some(Ok(records)) => match check_marker(&**disk, dir, &bases, &records) {
            Ok(()) => Ok(records),
            Err(why) => {
                // The marker is newer than any checkpoint (it goes before the first write
                // after an open) and a clean close fsynced everything it lists: what it
                // records must still be there.
                known = known.as_of_clean_close(&records);
                Err(why)
            }
        },
    };
    report.recovery_point = known.offset();
    if let (Err(_), Some(e)) = (&clean, damaged_point)
        && !options.truncate_corrupt
    {
        return Err(e);
    }
    // Read after the listing: a writer's retention persists a new log start before it
    // deletes a file, so every segment missing from the listing lies below this start.
    let recorded_start = recorded_log_start(&**disk, dir, &known, options, &mut report)?;
    let trusted = match &clean {
        Ok(records) => records.as_slice(),
        Err(_) => known.flushed.as_slice(),
    };
    let txn_index_recorded: BTreeMap<i64, TxnIndexStamp> = trusted
        .iter()
        .filter_map(|r| Some((r.base_offset, r.txn_index?)))
        .collect();
    let mut recovered = match clean {
        Ok(records) => {
            report.clean_shutdown = true;
            let segments = open_recorded(disk, dir, config, &records)?;
            let scanned = vec![None; segments.len()];
            // A clean close fsynced everything.
            let durable_active = segments.last().map(|s| (s.size(), s.next_offset()));
            Recovered {
                segments,
                scanned,
                report,
                durable_active,
            }
        }
        Err(reason) => {
            report.unclean_reason = Some(reason);
            let floor = recorded_start.unwrap_or(i64::MIN);
            let known = Known {
                point: &known,
                log_start: floor,
                unsynced,
            };
            recover(disk, dir, config, &bases, known, options, report)?
        }
    };
    let head_lost = recovered
        .report
        .truncations
        .iter()
        .any(|t| matches!(t.reason, Corruption::SegmentMissing { .. }));
    let (start, restart) = check_log_start(
        dir,
        &recovered.segments,
        recorded_start,
        &known,
        options,
        head_lost,
    )?;
    if let Some(why) = restart.rebuilt {
        recovered.report.log_start_rebuilt = Some(LogStartRebuild {
            offset: start,
            reason: why,
        });
    }
    if restart.below_start {
        recovered = restart_at(disk, dir, config, recovered, start)?;
    }
    let Recovered {
        segments,
        scanned,
        report,
        durable_active,
    } = recovered;
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let log_start = start.max(first_base);
    let mut report = report;
    if let Some(rebuilt) = &mut report.log_start_rebuilt {
        if writes {
            checkpoint::write_log_start(&**disk, dir, log_start)?;
        }
        rebuilt.offset = log_start;
    }
    let mut opened = finish(config, segments, scanned, &known.flushed, report, writes)?;
    opened.log_start_offset = log_start;
    opened.log_start_checkpointed =
        recorded_start.is_some() || opened.report.log_start_rebuilt.is_some();
    opened.durable_active = durable_active;
    opened.txn_index_recorded = txn_index_recorded;
    let now = RecoveryPoint {
        flushed: opened.flushed.clone(),
        active: durable_prefix(&opened.segments, durable_active),
        log_start: opened.log_start_checkpointed.then_some(log_start),
    };
    // Rewritten before the first write when it no longer says what the files hold: a segment
    // listed as flushed may be the active one again, or a prefix may have been cut.
    opened.checkpoint_stale = point.as_ref() != Some(&now);
    opened.recovery_point = point;
    if writes && opened.checkpoint_stale && opened.report.truncations.iter().any(|t| t.flushed) {
        // A cut the caller allowed: at once, or the next open would fail on it again (the
        // marker, which records the files before the cut, goes too).
        checkpoint::write_recovery_point(&**disk, dir, &now)?;
        marker::remove(&**disk, dir)?;
        opened.checkpoint_stale = false;
        opened.recovery_point = Some(now);
    }
    Ok(opened)
}

/// What [`check_log_start`] decided beyond the offset.
#[derive(Debug, Default)]
struct LogStartDecision {
    /// The log ends below its start: it restarts there, empty.
    below_start: bool,
    /// The checkpoint was out of range and rebuilt (why).
    rebuilt: Option<String>,
}

/// The log start offset: the checkpointed one, which must lie in `[first segment's base, log
/// end]` (above the first base, it marks deletions retention had not finished). Below the first
/// base, records the checkpoint says exist are missing; above the end, it would hide every
/// record: both are [`Error::Corrupt`], or with [`RecoveryOptions::rebuild_log_start`] the log
/// starts at the recovery checkpoint's last recorded start if that is in range, else at the
/// first segment. One case is not damage: a log whose end lies below a start the recovery
/// checkpoint recorded too lost an unflushed tail after everything up to its end had been
/// deleted; it restarts, empty, at its start, as Kafka's loader does.
fn check_log_start(
    dir: &Path,
    segments: &[Arc<Segment>],
    recorded: Option<i64>,
    known: &RecoveryPoint,
    options: RecoveryOptions,
    head_lost: bool,
) -> Result<(i64, LogStartDecision)> {
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let log_end = segments.last().map_or(first_base, |s| s.next_offset());
    let Some(start) = recorded else {
        return Ok((first_base, LogStartDecision::default()));
    };
    if (first_base..=log_end).contains(&start) {
        return Ok((start, LogStartDecision::default()));
    }
    if start < first_base && options.truncate_corrupt && head_lost {
        // The segments at the log's head were missing, and the caller allowed the loss.
        return Ok((first_base, LogStartDecision::default()));
    }
    if start > log_end && known.log_start == Some(start) {
        let decision = LogStartDecision {
            below_start: true,
            rebuilt: None,
        };
        return Ok((start, decision));
    }
    let kind = Corruption::LogStartOutOfRange {
        log_start: start,
        first_base,
        log_end,
    };
    if !options.rebuild_log_start {
        return Err(Error::corrupt(dir.join(LOG_START_FILE), 0, kind));
    }
    let rebuilt = known
        .log_start
        .filter(|s| (first_base..=log_end).contains(s))
        .unwrap_or(first_base);
    let decision = LogStartDecision {
        below_start: false,
        rebuilt: Some(kind.to_string()),
    };
    Ok((rebuilt, decision))
}

/// The durable prefix of the last segment, as the recovery checkpoint records it.
pub(crate) fn durable_prefix(
    segments: &[Arc<Segment>],
    durable: Option<(u64, i64)>,
) -> Option<DurablePrefix> {
    let active = segments.last()?;
    durable
        .filter(|&(size, _)| size > 0)
        .map(|(size, next_offset)| DurablePrefix {
            base_offset: active.base_offset(),
            size,
            next_offset,
        })
}

/// The log start the log-start checkpoint holds: `None` when it was never written. Once
/// written (the recovery checkpoint then records it), a missing or damaged file is
/// [`Error::Corrupt`], or with [`RecoveryOptions::rebuild_log_start`] falls back to the last
/// log start the recovery checkpoint recorded (the rebuild is reported).
fn recorded_log_start(
    disk: &dyn Disk,
    dir: &Path,
    point: &RecoveryPoint,
    options: RecoveryOptions,
    report: &mut RecoveryReport,
) -> Result<Option<i64>> {
    let problem = match checkpoint::read_log_start(disk, dir) {
        Ok(Some(start)) => return Ok(Some(start)),
        Ok(None) => match point.log_start {
            None => return Ok(None),
            Some(last_known) => Error::corrupt(
                dir.join(LOG_START_FILE),
                0,
                Corruption::LogStartMissing { last_known },
            ),
        },
        Err(e) => e,
    };
    if !options.rebuild_log_start {
        return Err(problem);
    }
    report.log_start_rebuilt = Some(LogStartRebuild {
        offset: point.log_start.unwrap_or(0),
        reason: problem.to_string(),
    });
    Ok(point.log_start)
}

/// A log whose end lies below its recorded start (everything was deleted, then the segments
/// lost data) is emptied and restarts at the recorded start, as Kafka's loader does.
fn restart_at(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    recovered: Recovered,
    start: i64,
) -> Result<Recovered> {
    let Recovered {
        segments,
        mut report,
        ..
    } = recovered;
    for segment in &segments {
        report.removed_segments.push(RemovedSegment {
            base_offset: segment.base_offset(),
            bytes: segment.size(),
        });
        if !disk.is_read_only() {
            segment.mark_deleted()?;
        }
    }
    drop(segments);
    let interval = config.index_interval_bytes();
    let segment = new_segment(disk, dir, start, config)?;
    report
        .unclean_reason
        .get_or_insert_with(|| "log ends below its start".to_owned());
    report.clean_shutdown = false;
    Ok(Recovered {
        segments: vec![Arc::new(segment)],
        scanned: vec![Some(IndexBuilder::new(interval, start))],
        report,
        durable_active: None,
    })
}

/// A new, empty segment at `base`: created and made durable by a writable open, only in
/// memory for a read-only one (its writer creates the files).
fn new_segment(disk: &Arc<dyn Disk>, dir: &Path, base: i64, config: &LogConfig) -> Result<Segment> {
    let interval = config.index_interval_bytes();
    if disk.is_read_only() {
        return Ok(Segment::empty(disk, dir, base, interval, Access::ReadOnly));
    }
    let sizing = IndexSizing {
        file_bytes: config.segment_index_bytes(),
        interval_bytes: interval,
    };
    let segment = Segment::create(disk, dir, base, sizing)?;
    disk::sync_dir(&**disk, dir)?;
    Ok(segment)
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
    let outcome = scan(&log, None, base, 0..log_len, interval)?;
    let stop = outcome.stop.as_ref().map(|stop| Truncation {
        path: log_path,
        position: stop.position,
        bytes_removed: log_len - outcome.valid_size,
        reason: stop.kind.clone(),
        flushed: false,
    });
    let state = outcome.state();
    let segment = Segment::open(
        disk,
        dir,
        base,
        state,
        Some(outcome.indexes),
        interval,
        Access::ReadOnly,
    )?;
    Ok((segment, outcome.builder, stop))
}

/// Extends a read-only segment over whole batches a writer added to its file since it was
/// last scanned. Returns whether it grew.
pub(crate) fn grow_read_only(segment: &Segment, interval: i32) -> Result<bool> {
    let start = segment.size();
    let log = match segment.log() {
        Ok(log) => log,
        // Not created yet (a partition its writer has not given a segment), or deleted by the
        // writer's retention: nothing to grow.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let file_len = log.len()?;
    if file_len <= start {
        return Ok(false);
    }
    let base = segment.base_offset();
    let outcome = scan(&log, None, base, start..file_len, interval)?;
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
    segment.publish(SegmentState {
        size: outcome.valid_size,
        next_offset: outcome.next_offset,
        max_timestamp,
        offset_of_max_timestamp: offset_of_max,
    });
    Ok(true)
}

/// Finishes or undoes compaction swaps a crash interrupted (see the cleaner's swap protocol):
/// a `.log.swap` means every file of its segment was renamed to `.swap` and the swap was
/// decided, so the old segments it covers (every segment based within its offsets) go and it
/// takes its final names, the `.log` last; `.swap` files without their `.log.swap` are undone.
/// `.cleaned` and `.deleted` files are left to the sweep, which removes them.
fn finish_swaps(
    disk: &dyn Disk,
    dir: &Path,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<()> {
    let mut swaps: BTreeMap<i64, Vec<FileKind>> = BTreeMap::new();
    let mut plain: BTreeMap<i64, Vec<FileKind>> = BTreeMap::new();
    for entry in disk::list_dir(disk, dir)? {
        let Some(parsed) = entry.name.to_str().and_then(file_name::parse) else {
            continue;
        };
        match parsed.suffix {
            Some(TempSuffix::Swap) => swaps
                .entry(parsed.base_offset)
                .or_default()
                .push(parsed.kind),
            None => plain
                .entry(parsed.base_offset)
                .or_default()
                .push(parsed.kind),
            _ => {}
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    for (&base, kinds) in &swaps {
        let swap = |kind| file_name::temp_path(dir, base, kind, TempSuffix::Swap);
        if !kinds.contains(&FileKind::Log) {
            for &kind in kinds {
                disk::remove_file(disk, &swap(kind))?;
                report.removed_files.push(swap(kind));
            }
            continue;
        }
        // The new segment was fsynced before its rename: damage in it is damage to durable data.
        let log_path = swap(FileKind::Log);
        let log = File::open(disk, log_path.clone(), OpenMode::Read)?;
        let len = log.len()?;
        let outcome = scan(&log, None, base, 0..len, config.index_interval_bytes())?;
        // A real swap's segment is never empty (the cleaner keeps a header-only batch).
        if let Some(stop) = outcome.stop {
            return Err(Error::corrupt(log_path, stop.position, stop.kind));
        }
        if outcome.next_offset == base {
            return Err(Error::corrupt(
                log_path,
                0,
                Corruption::Metadata("an empty .log.swap: not a swap topiclog or Kafka wrote"),
            ));
        }
        drop(log);
        for (&old, old_kinds) in plain.range(base..outcome.next_offset.max(base + 1)) {
            for &kind in old_kinds {
                if old == base && kinds.contains(&kind) {
                    continue; // replaced by the rename below
                }
                let path = file_name::file_path(dir, old, kind);
                disk::remove_file(disk, &path)?;
                report.removed_files.push(path);
            }
        }
        disk::sync_dir(disk, dir)?;
        for kind in file_name::SEGMENT_FILES {
            if kinds.contains(&kind) {
                disk::rename(disk, &swap(kind), &file_name::file_path(dir, base, kind))?;
            }
        }
        disk::sync_dir(disk, dir)?;
        log::warn!(
            "{}: finished the compaction swap of segment {base} a crash interrupted",
            dir.display()
        );
        report.swaps_completed.push(base);
    }
    // The swap is over: readers in other processes may list the segments again.
    let epoch = super::compaction::read_epoch(disk, dir);
    if epoch % 2 == 1 {
        super::compaction::write_epoch(disk, dir, epoch + 1)?;
    }
    disk::sync_dir(disk, dir)
}

/// Base offsets of the `.log` files in `dir`, ascending, as [`sweep`] lists them, changing
/// nothing.
pub(crate) fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<i64>> {
    let listed = sweep(disk, dir, Access::ReadOnly, &mut RecoveryReport::default())?;
    Ok(listed.into_keys().collect())
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
            flushed: false,
        });
    }
    disk::remove_file(disk, &dir.join(checkpoint::POISON_FILE))?;
    disk::sync_dir(disk, dir)
}

/// Pass 1: lists the directory, the one way a partition's files are told apart. Returns the
/// segments' base offsets in order; when [`Access::Writable`], removes leftovers and orphans (a
/// read-only listing leaves them, as they are a live writer's business).
fn sweep(
    disk: &dyn Disk,
    dir: &Path,
    access: Access,
    report: &mut RecoveryReport,
) -> Result<BTreeMap<i64, Present>> {
    let remove = |path: PathBuf, report: &mut RecoveryReport| -> Result<()> {
        if access == Access::Writable {
            disk::remove_file(disk, &path)?;
            report.removed_files.push(path);
        }
        Ok(())
    };
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
            remove(path, report)?;
            continue;
        }
        let Some(parsed) = file_name::parse(name) else {
            let known = [
                MARKER_FILE,
                RECOVERY_POINT_FILE,
                LOG_START_FILE,
                checkpoint::POISON_FILE,
                crate::layout::PARTITION_LOCK_FILE,
                crate::layout::PARTITION_FOLLOWERS_FILE,
                crate::layout::PARTITION_WRITER_FILE,
                super::published::PUBLISHED_FILE,
                super::replica::REPLICA_FILE,
                "leader-epoch-checkpoint",
                crate::cleaner::checkpoint::CLEANER_CHECKPOINT_FILE,
                super::compaction::COMPACTION_EPOCH_FILE,
                "partition.metadata",
            ];
            if !known.contains(&name) {
                report.ignored_files.push(path);
            }
            continue;
        };
        match (parsed.suffix, parsed.kind) {
            (Some(TempSuffix::Deleted | TempSuffix::Cleaned), _) => remove(path, report)?,
            // A writable open finished or undid every swap before the sweep; a read-only one
            // leaves a live writer's swap alone.
            (Some(TempSuffix::Swap), _) => {}
            (None, FileKind::Log) => segments.entry(parsed.base_offset).or_default().log = true,
            (None, FileKind::Index | FileKind::TimeIndex | FileKind::TxnIndex) => {
                segments.entry(parsed.base_offset).or_default();
                orphans.push(path);
            }
            (None, FileKind::Snapshot) => {}
        }
    }
    for path in orphans {
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_name::parse)
            .map(|p| p.base_offset);
        if base.is_some_and(|b| segments.get(&b).is_some_and(|p| !p.log)) {
            remove(path, report)?;
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
    let access = Access::of(&**disk);
    records
        .iter()
        .map(|r| {
            Segment::open(disk, dir, r.base_offset, r.state, None, interval, access).map(Arc::new)
        })
        .collect()
}

/// What an unclean open knows besides the files.
#[derive(Debug, Clone, Copy)]
struct Known<'a> {
    /// What fsyncs made durable (the recovery checkpoint, or the marker's newer word).
    point: &'a RecoveryPoint,
    /// The recorded log start (`i64::MIN` if none): records below it were deleted.
    log_start: i64,
    /// A read-only open's bound from a failed-fsync note: `(segment base, synced length)`.
    unsynced: Option<(i64, u64)>,
}

/// What the segments were found to hold, by a clean open, a recovery or a restart: named,
/// so the passes after it cannot mix up its parts.
#[derive(Debug)]
struct Recovered {
    /// The segments to serve, oldest first.
    segments: Vec<Arc<Segment>>,
    /// For each segment, the index state to append with if it was scanned.
    scanned: Vec<Option<IndexBuilder>>,
    /// What was found and done.
    report: RecoveryReport,
    /// How much of the last segment is known durable: `(bytes, next offset)`.
    durable_active: Option<(u64, i64)>,
}

/// Pass 3: recovery after an unclean stop. Returns the segments, for each one that was
/// scanned the index state to append with, and how much of the last one is known durable.
///
/// A read-only open (the disk refuses writes) makes the same checks and the same cuts, but
/// only in what it serves: the files stay as they are.
fn recover(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    bases: &BTreeMap<i64, Present>,
    known: Known<'_>,
    options: RecoveryOptions,
    mut report: RecoveryReport,
) -> Result<Recovered> {
    let writes = !disk.is_read_only();
    let access = Access::of(&**disk);
    let (point, log_start) = (known.point, known.log_start);
    let interval = config.index_interval_bytes();
    let max_batch = u64::try_from(config.max_message_bytes())
        .unwrap_or(0)
        .max(crate::segment::READ_CHUNK as u64);
    let bases: Vec<i64> = bases.keys().copied().collect();
    // Segments the checkpoint records as fsynced, above the log start, whose files are gone:
    // the open fails, or with the repair option the log starts after those missing at its
    // head and is cut at the first one missing after a present segment.
    let mut first_missing = None;
    for missing in point
        .flushed
        .iter()
        .filter(|r| r.state.next_offset > log_start)
        .filter(|r| bases.binary_search(&r.base_offset).is_err())
    {
        let path = file_name::file_path(dir, missing.base_offset, FileKind::Log);
        let kind = Corruption::SegmentMissing {
            base_offset: missing.base_offset,
            next_offset: missing.state.next_offset,
        };
        if !options.truncate_corrupt {
            return Err(Error::corrupt(path, 0, kind));
        }
        report.truncations.push(Truncation {
            path,
            position: 0,
            bytes_removed: missing.state.size,
            reason: kind,
            flushed: true,
        });
        if bases
            .first()
            .is_some_and(|&first| missing.base_offset > first)
        {
            first_missing = Some(missing);
            break;
        }
    }
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut scanned: Vec<Option<IndexBuilder>> = Vec::new();
    let mut durable_last = None;
    let mut cut = false;
    for (i, &base) in bases.iter().enumerate() {
        let log_path = file_name::file_path(dir, base, FileKind::Log);
        let mut log_len = disk::file_len(&**disk, &log_path)?.unwrap_or(0);
        if let Some((_, synced)) = known.unsynced.filter(|&(b, _)| b == base) {
            log_len = log_len.min(synced);
        }
        cut |= first_missing.is_some_and(|m| base > m.base_offset);
        if cut {
            if let Ok(log) = File::open(&**disk, log_path.clone(), OpenMode::Read) {
                note_batches_after_cut(&mut report, &log, &log_path, 0..log_len, max_batch)?;
            }
            if writes {
                for kind in file_name::SEGMENT_FILES {
                    disk::remove_file(&**disk, &file_name::file_path(dir, base, kind))?;
                }
            }
            report.removed_segments.push(RemovedSegment {
                base_offset: base,
                bytes: log_len,
            });
            continue;
        }
        let record = point.flushed.iter().find(|r| r.base_offset == base);
        if let Some(record) = record.filter(|r| r.check_files(&**disk, dir).is_ok()) {
            let segment = Segment::open(disk, dir, base, record.state, None, interval, access)?;
            segments.push(Arc::new(segment));
            scanned.push(None);
            durable_last = Some((record.state.size, record.state.next_offset));
            continue;
        }
        // What an fsync made durable of this segment, if anything was recorded. Records
        // below the log start were deleted: losing them loses nothing.
        let prefix = match record {
            Some(r) => Some(DurablePrefix {
                base_offset: base,
                size: r.state.size,
                next_offset: r.state.next_offset,
            }),
            None => point.active.filter(|p| p.base_offset == base),
        }
        .filter(|p| p.next_offset > log_start);
        let mode = if writes {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        let log = File::open(&**disk, log_path.clone(), mode)?;
        // A flushed segment is scanned only up to its flushed length; what lies beyond was
        // never part of it.
        let end = record.map_or(log_len, |r| r.state.size.min(log_len));
        let map = log.map(end).ok().flatten();
        let mark = prefix.map_or(0, |p| p.size);
        let mut outcome = scan_marked(&log, map.as_ref(), base, 0..end, interval, mark)?;
        drop(map);
        report.segments_scanned += 1;
        // A first batch below the segment's base offset is no torn write: the file was
        // renamed or overwritten. (A negative base offset is no segment's: garbage, cut as a
        // torn write would be.)
        if let Some(stop) = outcome.stop.as_ref().filter(|s| s.position == 0)
            && matches!(stop.kind, Corruption::OffsetOutOfOrder { base_offset, .. } if base_offset >= 0)
            && !options.truncate_corrupt
        {
            return Err(Error::corrupt(log_path, 0, stop.kind.clone()));
        }
        let damage = prefix.and_then(|p| durable_damage(&outcome, p, log_len));
        let damaged = damage.is_some();
        if let Some((position, kind)) = damage {
            if !options.truncate_corrupt {
                return Err(Error::corrupt(log_path, position, kind));
            }
            // Keep the batches before the damage that still match what was fsynced.
            let keep = outcome.valid_size.min(outcome.at_mark.0);
            note_batches_after_cut(&mut report, &log, &log_path, keep..log_len, max_batch)?;
            if writes {
                log.set_len(keep)?;
            }
            report.truncations.push(Truncation {
                path: log_path.clone(),
                position: keep,
                bytes_removed: log_len - keep,
                reason: kind,
                flushed: true,
            });
            outcome = scan(&log, None, base, 0..keep, interval)?;
            cut = true;
        } else if record.is_some() {
            if log_len > end {
                if writes {
                    log.set_len(end)?;
                }
                report.truncations.push(Truncation {
                    path: log_path.clone(),
                    position: end,
                    bytes_removed: log_len - end,
                    reason: Corruption::BeyondFlushedEnd { flushed_size: end },
                    flushed: false,
                });
            }
        } else if let Some(stop) = &outcome.stop {
            let torn = outcome.valid_size..log_len;
            note_batches_after_cut(&mut report, &log, &log_path, torn, max_batch)?;
            if writes {
                log.set_len(outcome.valid_size)?;
            }
            report.truncations.push(Truncation {
                path: log_path.clone(),
                position: stop.position,
                bytes_removed: log_len - outcome.valid_size,
                reason: stop.kind.clone(),
                flushed: false,
            });
            cut = true;
        }
        durable_last = prefix.filter(|_| !damaged).map(|p| (p.size, p.next_offset));
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
            if !options.truncate_corrupt {
                return Err(Error::corrupt(
                    file_name::file_path(dir, next, FileKind::Log),
                    0,
                    kind,
                ));
            }
            // The later segments overlap this one: they go.
            cut = true;
        }
        let state = outcome.state();
        let segment = Segment::open(
            disk,
            dir,
            base,
            state,
            Some(outcome.indexes),
            interval,
            access,
        )?;
        segments.push(Arc::new(segment));
        scanned.push(Some(outcome.builder));
    }
    if segments.is_empty() {
        // A partition killed before its first segment existed, or whose every segment was
        // cut: it starts empty (at its log start, if one was recorded, further on).
        segments.push(Arc::new(new_segment(disk, dir, 0, config)?));
        scanned.push(Some(IndexBuilder::new(interval, 0)));
        durable_last = None;
    }
    let last_offset = segments.last().map_or(0, |s| s.next_offset());
    if let Some(missing) = point
        .active
        .filter(|p| p.next_offset > last_offset.max(log_start) && !cut)
        .filter(|p| bases.binary_search(&p.base_offset).is_err())
    {
        // The segment the durable prefix was in is gone, and the log ends before it.
        let path = file_name::file_path(dir, missing.base_offset, FileKind::Log);
        let kind = Corruption::FlushedDataMissing {
            flushed_size: missing.size,
        };
        if !options.truncate_corrupt {
            return Err(Error::corrupt(path, 0, kind));
        }
        report.truncations.push(Truncation {
            path,
            position: 0,
            bytes_removed: missing.size,
            reason: kind,
            flushed: true,
        });
    }
    Ok(Recovered {
        segments,
        scanned,
        report,
        durable_active: durable_last,
    })
}

/// Where and why a scanned segment fails what an fsync made durable of it (`prefix`): a bad
/// batch within the durable bytes, bytes missing, or different batches there.
fn durable_damage(
    outcome: &ScanOutcome,
    prefix: DurablePrefix,
    log_len: u64,
) -> Option<(u64, Corruption)> {
    let missing = Corruption::FlushedDataMissing {
        flushed_size: prefix.size,
    };
    if outcome.valid_size < prefix.size {
        return Some(match &outcome.stop {
            Some(stop) if log_len >= prefix.size => (stop.position, stop.kind.clone()),
            _ => (outcome.valid_size, missing),
        });
    }
    if outcome.at_mark != (prefix.size, prefix.next_offset) {
        let kind = Corruption::FlushedDataChanged {
            flushed_size: prefix.size,
            next_offset: prefix.next_offset,
        };
        return Some((outcome.at_mark.0, kind));
    }
    None
}

/// Lists the valid-looking batches in bytes `range` of a `.log` a cut removes (or removed).
fn note_batches_after_cut(
    report: &mut RecoveryReport,
    log: &File,
    path: &Path,
    range: std::ops::Range<u64>,
    max_batch: u64,
) -> Result<()> {
    let room = MAX_REPORTED_BATCHES_AFTER_CUT.saturating_sub(report.batches_after_cut.len());
    let (found, unlisted) = find_batches(log, range, max_batch, room)?;
    report.batches_after_cut_unlisted += unlisted;
    report
        .batches_after_cut
        .extend(found.into_iter().map(|b: FoundBatch| BatchAfterCut {
            path: path.to_path_buf(),
            position: b.position,
            base_offset: b.base_offset,
            last_offset: b.last_offset,
        }));
    Ok(())
}

/// Seals all but the last segment, writes the indexes of scanned sealed segments, and works out
/// the writer's starting state.
fn finish(
    config: &LogConfig,
    segments: Vec<Arc<Segment>>,
    scanned: Vec<Option<IndexBuilder>>,
    flushed: &[SegmentRecord],
    report: RecoveryReport,
    writes: bool,
) -> Result<Opened> {
    let Some((active, sealed)) = segments.split_last() else {
        return Err(Error::Internal("recovery produced no segment"));
    };
    let mut kept_flushed = Vec::new();
    let mut unsynced = Vec::new();
    for (segment, builder) in sealed.iter().zip(&scanned) {
        segment.seal();
        if builder.is_some() && writes {
            // Cache files: a failure to write them only means another rebuild later.
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
    let active = Arc::clone(active);
    if writes && scanned.last().is_some_and(Option::is_some) {
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
        checkpoint_stale: false,
        flushed: kept_flushed,
        unsynced,
        log_start_offset: 0,
        log_start_checkpointed: false,
        durable_active: None,
        recovery_point: None,
        txn_index_recorded: BTreeMap::new(),
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
    let first_batch_timestamp = match state.size {
        0 => None,
        size => first_batch_max_timestamp(&active.log()?, size)?,
    };
    Ok(ActiveInit {
        builder: IndexBuilder::resume(config.index_interval_bytes(), state),
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
    Ok(header
        .get(..n)
        .and_then(|h| BatchHeader::parse(h).ok())
        .map(|h| h.max_timestamp))
}
