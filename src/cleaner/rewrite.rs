//! The file work of a cleaning pass: mapping the dirty section's keys and writing the cleaned
//! segments as `.cleaned` files. Nothing here changes a partition: the swap does that.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LogConfig;
use crate::disk::{self, File, OpenMode};
use crate::error::{Corruption, Error, IoOp, Result};
use crate::record::{Batch, BatchHeader, EndTxnMarker, RecordView, TxnResult, encode_cleaned};
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::txn_index::{self, AbortedTxn};
use crate::segment::walk::{Step, Walker, Window};
use crate::segment::{Index, IndexBuilder, IndexedBatch, Indexes, Segment, SegmentState};

use super::offset_map::OffsetMap;
use super::{CleanerConfig, Dirt};

/// Bytes of output gathered before each write.
const WRITE_BUFFER: usize = 1 << 20;

/// What a pass needs to know of its partition, taken under the writer lock and then used
/// without it (sealed segments do not change).
#[derive(Debug)]
pub(crate) struct PassInput<'a> {
    /// The sealed segments, ascending (never the active one).
    pub(crate) sealed: Vec<Arc<Segment>>,
    /// Where the pass starts and must stop.
    pub(crate) dirt: Dirt,
    pub(crate) config: &'a LogConfig,
    pub(crate) cleaner: &'a CleanerConfig,
    /// The time of the pass, for delete horizons.
    pub(crate) now_ms: i64,
    /// Each active idempotent producer's last offset: its last batch is never dropped.
    pub(crate) producer_last_offsets: HashMap<i64, i64>,
    /// The partition's aborted transactions (its `.txnindex` entries), by marker offset.
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// What a walk knows of transactions (Kafka's `CleanedTransactionMetadata`): the aborted ones
/// whose first offset it has passed, and the committed ones under way. A batch of an aborted
/// transaction is discarded; a marker may go once no batch of its transaction is left (a
/// COMMIT whose batches this walk did not meet, an ABORT whose batches are all gone), after
/// `delete.retention.ms` like a tombstone; an ABORT marker still covering batches keeps its
/// `.txnindex` entry, written into the new segment's.
#[derive(Debug, Default)]
struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset (the next last).
    upcoming: Vec<AbortedTxn>,
    /// Aborted transactions under way: the entry, and whether a batch of it was met.
    aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a committed (or not aborted) transaction under way whose batch was met.
    committed: std::collections::HashSet<i64>,
    /// Entries for the new segment's `.txnindex`.
    index: Vec<AbortedTxn>,
}

impl TxnTracker {
    /// A tracker for a walk of `[start, end)`: the aborted transactions whose markers lie at or
    /// after `start` and that began before `end`.
    fn new(all: &[AbortedTxn], start: i64, end: i64) -> TxnTracker {
        let mut upcoming: Vec<AbortedTxn> = all
            .iter()
            .filter(|t| t.last_offset >= start && t.first_offset < end)
            .copied()
            .collect();
        upcoming.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
        TxnTracker {
            upcoming,
            ..TxnTracker::default()
        }
    }

    fn reach(&mut self, offset: i64) {
        while self
            .upcoming
            .last()
            .is_some_and(|t| t.first_offset <= offset)
        {
            if let Some(t) = self.upcoming.pop() {
                self.aborted.insert(t.producer_id, (t, false));
            }
        }
    }

    /// A data batch: whether it belongs to an aborted transaction (discard its records).
    fn on_data(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.aborted.get_mut(&h.producer_id) {
            Some((_, met)) => {
                *met = true;
                true
            }
            None => {
                self.committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch with its marker: whether the marker may go (no batch of its
    /// transaction is left).
    fn on_control(&mut self, h: &BatchHeader, marker: Option<EndTxnMarker>) -> bool {
        self.reach(h.last_offset());
        match marker.map(|m| m.result) {
            Some(TxnResult::Abort) => match self.aborted.remove(&h.producer_id) {
                // Kept until a pass meets none of its batches.
                Some((entry, true)) => {
                    self.index.push(entry);
                    false
                }
                _ => true,
            },
            Some(TxnResult::Commit) => !self.committed.remove(&h.producer_id),
            // Another control record: never data, never removed.
            None => false,
        }
    }
}

/// One group of old segments and the new segment written to replace them.
#[derive(Debug)]
pub(crate) struct Cleaned {
    pub(crate) sources: Vec<Arc<Segment>>,
    pub(crate) base_offset: i64,
    pub(crate) state: SegmentState,
    pub(crate) indexes: Indexes,
    pub(crate) bytes_before: u64,
    pub(crate) records_before: u64,
    pub(crate) records_after: u64,
}

/// What a pass produced: new segments, ascending, in `.cleaned` files; everything below
/// `end_offset` is clean once they are swapped in.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) groups: Vec<Cleaned>,
    pub(crate) end_offset: i64,
}

/// Keeps the cleaner's I/O under `log.cleaner.io.max.bytes.per.second`.
#[derive(Debug)]
struct Throttle {
    rate: f64,
    start: Instant,
    bytes: f64,
}

impl Throttle {
    fn new(rate: f64) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
            bytes: 0.0,
        }
    }

    fn account(&mut self, bytes: usize) {
        if !self.rate.is_finite() {
            return;
        }
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64(self.bytes / self.rate);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Walks the batches of `segment` from its start, each CRC-checked, calling `f` with each
/// batch's position and the batch. A batch that fails its checks is [`Error::Corrupt`].
fn walk_segment(
    segment: &Segment,
    throttle: &mut Throttle,
    mut f: impl FnMut(u64, &Batch<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let log = segment.log()?;
    let path = segment.path(FileKind::Log);
    let mut walker = Walker::new(Window::new(log, None, segment.size()), 0);
    loop {
        match walker.next()? {
            Step::Batch { position, batch } => {
                if let Err(e) = batch.verify_crc() {
                    return Err(Error::corrupt(path, position, Corruption::Batch(e)));
                }
                throttle.account(batch.size());
                if f(position, &batch)?.is_break() {
                    return Ok(());
                }
            }
            Step::Stop { position, error } => {
                return Err(Error::corrupt(path, position, Corruption::Batch(error)));
            }
            Step::End => return Ok(()),
        }
    }
}

/// The records of `batch`, decompressed into `buf` if need be.
fn records_of<'b>(
    batch: &Batch<'b>,
    buf: &'b mut Vec<u8>,
    config: &LogConfig,
    path: &std::path::Path,
    position: u64,
) -> Result<Vec<RecordView<'b>>> {
    let corrupt = |e| Error::corrupt(path.to_path_buf(), position, Corruption::Batch(e));
    batch
        .records_in(buf, config.max_decompressed_batch_bytes())
        .map_err(corrupt)?
        .map(|r| r.map_err(corrupt))
        .collect()
}

/// Runs one pass's file work: maps the dirty section and writes the cleaned segments.
pub(crate) fn run(input: &PassInput<'_>, map: &mut OffsetMap) -> Result<Outcome> {
    let mut throttle = Throttle::new(input.cleaner.io_rate());
    let Dirt {
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: uncleanable,
        ..
    } = input.dirt;
    // 1. The map of the dirty section, without the records of aborted transactions.
    let mut end_offset = uncleanable;
    let mut buf = Vec::new();
    let walk_start = input
        .sealed
        .iter()
        .find(|s| s.next_offset() > first_dirty)
        .map_or(first_dirty, |s| s.base_offset());
    let mut txns = TxnTracker::new(&input.aborted, walk_start, uncleanable);
    'segments: for segment in &input.sealed {
        if segment.next_offset() <= first_dirty {
            continue;
        }
        if segment.base_offset() >= uncleanable {
            break;
        }
        let path = segment.path(FileKind::Log);
        let mut full = None;
        walk_segment(segment, &mut throttle, |position, batch| {
            let header = batch.header();
            if header.is_control() {
                txns.on_control(header, EndTxnMarker::of_batch(batch));
                return Ok(ControlFlow::Continue(()));
            }
            if txns.on_data(header) || header.last_offset() < first_dirty {
                return Ok(ControlFlow::Continue(()));
            }
            let count = usize::try_from(header.records_count).unwrap_or(usize::MAX);
            if map.lacks_room_for(count) {
                full = Some(header.base_offset);
                return Ok(ControlFlow::Break(()));
            }
            for record in records_of(batch, &mut buf, input.config, &path, position)? {
                if let Some(key) = record.key()
                    && record.offset() >= first_dirty
                {
                    map.put(key, record.offset())
                        .map_err(|e| Error::io(IoOp::Map, segment.dir(), e))?;
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(at) = full {
            end_offset = at.max(first_dirty);
            break 'segments;
        }
    }
    if end_offset <= first_dirty {
        return Err(Error::InvalidConfig {
            key: "log.cleaner.dedupe.buffer.size",
            value: input.cleaner.dedupe_buffer().to_string(),
            reason: format!(
                "too small for the batch at offset {first_dirty}: it holds only {} keys",
                map.capacity()
            )
            .into(),
        });
    }
    // 2. The segments to rewrite, in groups.
    let sources: Vec<&Arc<Segment>> = input
        .sealed
        .iter()
        .take_while(|s| s.base_offset() < end_offset)
        .collect();
    let mut groups = Vec::new();
    let mut rest = &sources[..];
    while !rest.is_empty() {
        let n = group_len(rest, input.config)?;
        let (group, after) = rest.split_at(n);
        rest = after;
        let cleaner = GroupCleaner {
            input,
            map,
            end_offset,
        };
        match cleaner.clean(group, &mut throttle) {
            Ok(cleaned) => groups.push(cleaned),
            Err(e) => {
                for g in &groups {
                    remove_cleaned(g.sources.first().map(|s| s.dir()), g.base_offset, input);
                }
                return Err(e);
            }
        }
    }
    Ok(Outcome { groups, end_offset })
}

/// How many of `segments` go into one new segment (Kafka's `groupSegmentsBySize`): at least
/// one, then more while the total `.log` bytes stay within `segment.bytes`, each index's
/// within `segment.index.bytes`, and the offsets within an `i32` of the first base.
fn group_len(segments: &[&Arc<Segment>], config: &LogConfig) -> Result<usize> {
    let max_log = u64::try_from(config.segment_bytes()).unwrap_or(0);
    let max_index = u64::try_from(config.segment_index_bytes()).unwrap_or(0);
    let Some(first) = segments.first() else {
        return Ok(0);
    };
    let index_len = |s: &Segment, kind| -> Result<u64> {
        Ok(disk::file_len(s.disk(), &s.path(kind))?.unwrap_or(0))
    };
    let (mut log, mut offsets, mut times) = (
        first.size(),
        index_len(first, FileKind::Index)?,
        index_len(first, FileKind::TimeIndex)?,
    );
    let mut n = 1;
    for s in &segments[1..] {
        let (o, t) = (
            index_len(s, FileKind::Index)?,
            index_len(s, FileKind::TimeIndex)?,
        );
        let span_fits = s.next_offset() - 1 - first.base_offset() <= i64::from(i32::MAX);
        let fits = s.size() == 0
            || (log + s.size() <= max_log
                && offsets + o <= max_index
                && times + t <= max_index
                && span_fits);
        if !fits || !span_fits {
            break;
        }
        (log, offsets, times) = (log + s.size(), offsets + o, times + t);
        n += 1;
    }
    Ok(n)
}

/// Removes the `.cleaned` files of a new segment (a pass given up).
pub(crate) fn remove_cleaned(dir: Option<&std::path::Path>, base: i64, input: &PassInput<'_>) {
    let (Some(dir), Some(segment)) = (dir, input.sealed.first()) else {
        return;
    };
    for kind in file_name::SEGMENT_FILES {
        let path = file_name::temp_path(dir, base, kind, TempSuffix::Cleaned);
        // Best effort: the next open's sweep removes what is left.
        let _ = disk::remove_file(segment.disk(), &path);
    }
}

/// Cleans one group of segments into one new segment.
struct GroupCleaner<'a, 'p> {
    input: &'a PassInput<'p>,
    map: &'a OffsetMap,
    end_offset: i64,
}

/// The new segment being written.
struct Output {
    file: File,
    path: PathBuf,
    base_offset: i64,
    pending: Vec<u8>,
    written: u64,
    next_offset: i64,
    builder: IndexBuilder,
    indexes: Indexes,
}

impl Output {
    fn push(&mut self, bytes: &[u8], header: &BatchHeader, max_timestamp: i64) -> Result<()> {
        let position = self.written + self.pending.len() as u64;
        self.pending.extend_from_slice(bytes);
        self.builder.on_batch(
            &mut self.indexes,
            self.base_offset,
            IndexedBatch {
                position,
                size: bytes.len() as u64,
                last_offset: header.last_offset(),
                max_timestamp,
            },
        );
        self.next_offset = header.next_offset();
        if self.pending.len() >= WRITE_BUFFER {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        self.file.write_all_at(&self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

impl GroupCleaner<'_, '_> {
    /// Writes the group's new segment as `.cleaned` files, fsynced.
    fn clean(&self, group: &[&Arc<Segment>], throttle: &mut Throttle) -> Result<Cleaned> {
        let Some(first) = group.first() else {
            return Err(Error::Internal("an empty group of segments to clean"));
        };
        let base_offset = first.base_offset();
        let dir = first.dir().to_path_buf();
        let disk = first.disk();
        let path = file_name::temp_path(&dir, base_offset, FileKind::Log, TempSuffix::Cleaned);
        let file = File::open(disk, path.clone(), OpenMode::Create)?;
        file.set_len(0)?;
        let mut out = Output {
            file,
            path,
            base_offset,
            pending: Vec::with_capacity(WRITE_BUFFER + (64 << 10)),
            written: 0,
            next_offset: base_offset,
            builder: IndexBuilder::new(self.input.config.index_interval_bytes(), base_offset),
            indexes: Indexes {
                offsets: Index::new(),
                times: Index::new(),
            },
        };
        let (mut bytes_before, mut records_before, mut records_after) = (0, 0, 0);
        let mut buf = Vec::new();
        let mut rebuilt = Vec::new();
        let mut last: Option<BatchHeader> = None;
        let group_end = group.last().map_or(base_offset, |s| s.next_offset());
        let mut txns = TxnTracker::new(&self.input.aborted, base_offset, group_end);
        for segment in group {
            bytes_before += segment.size();
            let seg_path = segment.path(FileKind::Log);
            walk_segment(segment, throttle, |position, batch| {
                let header = batch.header();
                last = Some(*header);
                if header.is_control() {
                    let marker = EndTxnMarker::of_batch(batch);
                    let discardable = txns.on_control(header, marker) && marker.is_some();
                    records_before += 1;
                    let existing = self.existing_horizon(header);
                    let expired = existing.is_some_and(|h| self.input.now_ms >= h);
                    if discardable && expired && !self.keeps_empty(header) {
                        return Ok(ControlFlow::Continue(())); // its transaction is gone
                    }
                    records_after += 1;
                    if discardable && existing.is_none() {
                        // Goes `delete.retention.ms` after this cleaning, as a tombstone.
                        let records =
                            records_of(batch, &mut buf, self.input.config, &seg_path, position)?;
                        let horizon = self
                            .input
                            .now_ms
                            .saturating_add(self.input.config.delete_retention_ms());
                        rebuilt.clear();
                        let encoded = encode_cleaned(
                            &mut rebuilt,
                            header,
                            &records,
                            Some(horizon),
                            self.input.config.compression_levels(),
                        )
                        .map_err(|e| rebuild_error(&seg_path, position, e))?;
                        out.push(&rebuilt, header, encoded.max_timestamp)?;
                    } else {
                        out.push(batch.bytes(), header, header.max_timestamp)?;
                    }
                    return Ok(ControlFlow::Continue(()));
                }
                let aborted = txns.on_data(header);
                let records = records_of(batch, &mut buf, self.input.config, &seg_path, position)?;
                records_before += records.len() as u64;
                let (kept, horizon) = match aborted {
                    // An aborted transaction's records go, whatever their keys.
                    true => (Vec::new(), None),
                    false => self.kept(header, &records),
                };
                records_after += kept.len() as u64;
                if kept.len() == records.len() && horizon == self.existing_horizon(header) {
                    out.push(batch.bytes(), header, header.max_timestamp)?;
                } else if !kept.is_empty() || self.keeps_empty(header) {
                    rebuilt.clear();
                    let encoded = encode_cleaned(
                        &mut rebuilt,
                        header,
                        &kept,
                        horizon,
                        self.input.config.compression_levels(),
                    )
                    .map_err(|e| rebuild_error(&seg_path, position, e))?;
                    out.push(&rebuilt, header, encoded.max_timestamp)?;
                }
                Ok(ControlFlow::Continue(()))
            })?;
        }
        if let (0, Some(header)) = (out.written + out.pending.len() as u64, last) {
            // Never an empty segment: a swap's `.log` then always says which offsets it
            // covers, and recovery can tell a real swap from a stray empty file.
            rebuilt.clear();
            encode_cleaned(
                &mut rebuilt,
                &header,
                &[],
                None,
                self.input.config.compression_levels(),
            )
            .map_err(|e| rebuild_error(&out.path, 0, e))?;
            out.push(&rebuilt, &header, header.max_timestamp)?;
        }
        out.drain()?;
        // As Kafka: the merged segment keeps its last source's mtime, which time retention
        // reads for a segment without timestamps.
        if let Some(last) = group.last() {
            let last_path = last.path(FileKind::Log);
            let modified = disk
                .modified_ms(&last_path)
                .map_err(|e| Error::io(IoOp::Read, last_path, e))?;
            out.file.set_modified_ms(modified)?;
        }
        out.file.sync_data()?;
        out.builder.finish(&mut out.indexes, base_offset);
        // The aborted transactions whose batches the new segment still holds.
        let txn_index = txn_index::encode_all(&txns.index);
        for (kind, bytes) in [
            (FileKind::Index, out.indexes.offsets.as_bytes()),
            (FileKind::TimeIndex, out.indexes.times.as_bytes()),
            (FileKind::TxnIndex, &txn_index[..]),
        ] {
            if kind == FileKind::TxnIndex && bytes.is_empty() {
                continue;
            }
            let path = file_name::temp_path(&dir, base_offset, kind, TempSuffix::Cleaned);
            let file = File::open(disk, path, OpenMode::Create)?;
            file.set_len(0)?;
            file.write_all_at(bytes, 0)?;
            file.sync_data()?;
        }
        throttle.account(usize::try_from(out.written).unwrap_or(usize::MAX));
        let state = SegmentState {
            size: out.written,
            next_offset: out.next_offset,
            max_timestamp: out.builder.max_timestamp(),
            offset_of_max_timestamp: out.builder.offset_of_max_timestamp(),
        };
        log::debug!(
            "cleaned {} segments from {base_offset} into {}: {bytes_before} -> {} bytes",
            group.len(),
            out.path.display(),
            out.written
        );
        Ok(Cleaned {
            sources: group.iter().map(|s| Arc::clone(s)).collect(),
            base_offset,
            state,
            indexes: out.indexes,
            bytes_before,
            records_before,
            records_after,
        })
    }

    /// The batch's delete horizon as it stands.
    fn existing_horizon(&self, header: &BatchHeader) -> Option<i64> {
        header.has_delete_horizon().then_some(header.base_timestamp)
    }

    /// The records of a batch to keep, and the delete horizon its rewrite carries.
    fn kept<'r>(
        &self,
        header: &BatchHeader,
        records: &[RecordView<'r>],
    ) -> (Vec<RecordView<'r>>, Option<i64>) {
        let existing = self.existing_horizon(header);
        let mut tombstone_kept = false;
        let kept: Vec<RecordView<'r>> = records
            .iter()
            .filter(|r| {
                if r.offset() >= self.end_offset {
                    // Beyond what was mapped: the next pass decides.
                    tombstone_kept |= r.key().is_some() && r.value().is_none();
                    return true;
                }
                let Some(key) = r.key() else {
                    // Compaction cannot place a keyless record: Kafka drops it too.
                    return false;
                };
                if self.map.get(key) > r.offset() {
                    return false;
                }
                if r.value().is_none() {
                    if existing.is_some_and(|h| self.input.now_ms >= h) {
                        return false;
                    }
                    tombstone_kept = true;
                }
                true
            })
            .copied()
            .collect();
        let horizon = match existing {
            Some(h) => Some(h),
            None if tombstone_kept => Some(
                self.input
                    .now_ms
                    .saturating_add(self.input.config.delete_retention_ms()),
            ),
            None => None,
        };
        let horizon = horizon.filter(|_| !kept.is_empty());
        (kept, horizon)
    }

    /// Whether a batch left empty stays as a header-only batch: it is an active producer's
    /// last batch, or the last batch before the uncleanable section.
    fn keeps_empty(&self, header: &BatchHeader) -> bool {
        let producers_last = header.producer_id >= 0
            && self
                .input
                .producer_last_offsets
                .get(&header.producer_id)
                .is_some_and(|&last| last == header.last_offset());
        producers_last || header.next_offset() == self.input.dirt.first_uncleanable_offset
    }
}

fn rebuild_error(path: &std::path::Path, position: u64, e: crate::record::EncodeError) -> Error {
    match e {
        crate::record::EncodeError::UnsupportedCompression(codec) => {
            Error::UnsupportedCompression {
                path: path.to_path_buf(),
                position,
                codec,
            }
        }
        _ => Error::Internal("a cleaned batch could not be encoded"),
    }
}
