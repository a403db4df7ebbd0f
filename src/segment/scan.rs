//! Checking a segment's batches from its first byte: recovery and index rebuilds both use it.
//! The scan checks every batch (framing, CRC, offsets rising and fitting the segment) and stops
//! at the first that fails, saying where and why; it builds the indexes as it goes, with the
//! same rule the append path uses, so a rebuilt index equals the one appends wrote.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::disk::{File, Mapping};
use crate::error::{Corruption, Result};
use std::ops::Range;

use crate::record::{BATCH_HEADER_LEN, Batch, BatchHeader, NO_TIMESTAMP};

use super::index::Index;
use super::offset_index::OffsetEntry;
use super::time_index::{self, TimeEntry};
use super::walk::{Step, Walker, Window};
use super::{Indexes, SegmentState};

/// A batch as [`IndexBuilder`] records it: named, because its position, size, last offset
/// and max timestamp are four integers that positional arguments would let a caller swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexedBatch {
    /// Its byte position in the segment.
    pub(crate) position: u64,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its last offset.
    pub(crate) last_offset: i64,
    /// Its max timestamp.
    pub(crate) max_timestamp: i64,
}

/// Adds index entries as batches are appended or scanned (Kafka's `LogSegment.append` rule):
/// an offset entry, and a time entry if the running maximum timestamp rose, once more than
/// `index.interval.bytes` were written since the last entry.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval: u64,
    bytes_since_last_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl IndexBuilder {
    pub(crate) fn new(index_interval_bytes: i32, base_offset: i64) -> Self {
        IndexBuilder {
            interval: u64::try_from(index_interval_bytes).unwrap_or(0),
            bytes_since_last_entry: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
        }
    }

    /// Resumes from the maximum timestamp of `state` (a segment reopened for appends).
    pub(crate) fn resume(index_interval_bytes: i32, state: SegmentState) -> Self {
        IndexBuilder {
            max_timestamp: state.max_timestamp,
            offset_of_max_timestamp: state.offset_of_max_timestamp,
            ..IndexBuilder::new(index_interval_bytes, state.offset_of_max_timestamp)
        }
    }

    /// Records `batch`, in the segment starting at `base_offset`.
    pub(crate) fn on_batch(
        &mut self,
        indexes: &mut Indexes,
        base_offset: i64,
        batch: IndexedBatch,
    ) {
        self.observe(&batch);
        if self.entry_due() {
            self.add_entry(indexes, base_offset, &batch);
        }
        self.count(batch.size);
    }

    /// First step for a batch: track the running maximum timestamp.
    pub(crate) fn observe(&mut self, batch: &IndexedBatch) {
        if batch.max_timestamp > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp;
            self.offset_of_max_timestamp = batch.last_offset;
        }
    }

    /// Second step: whether this batch gets index entries (the appender locks the indexes only
    /// then).
    pub(crate) fn entry_due(&self) -> bool {
        self.bytes_since_last_entry > self.interval
    }

    /// Adds the entries for `batch`, in the segment starting at `base_offset`.
    pub(crate) fn add_entry(
        &mut self,
        indexes: &mut Indexes,
        base_offset: i64,
        batch: &IndexedBatch,
    ) {
        let relative = i32::try_from(batch.last_offset - base_offset);
        let position = i32::try_from(batch.position);
        // Both fit for any segment topiclog writes or accepts; an entry that would not is
        // simply not written (the index is a cache).
        if let (Ok(relative_offset), Ok(position)) = (relative, position) {
            indexes.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            self.maybe_append_time(&mut indexes.times, base_offset);
        }
        self.bytes_since_last_entry = 0;
    }

    /// Last step: count the batch's bytes.
    pub(crate) fn count(&mut self, size: u64) {
        self.bytes_since_last_entry += size;
    }

    /// The final time entry, holding the segment's largest timestamp (on roll, close and at
    /// the end of recovery).
    pub(crate) fn finish(&self, indexes: &mut Indexes, base_offset: i64) {
        self.maybe_append_time(&mut indexes.times, base_offset);
    }

    fn maybe_append_time(&self, times: &mut Index<TimeEntry>, base_offset: i64) {
        if time_index::should_append(times, self.max_timestamp)
            && let Ok(relative_offset) = i32::try_from(self.offset_of_max_timestamp - base_offset)
        {
            times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanStop {
    /// Byte position of the first batch that failed.
    pub(crate) position: u64,
    /// What is wrong with it.
    pub(crate) kind: Corruption,
}

/// What a scan found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of whole, valid batches from the start.
    pub(crate) valid_size: u64,
    /// The offset after the last valid batch (the base offset if none).
    pub(crate) next_offset: i64,
    /// Indexes over the valid batches, final time entry included.
    pub(crate) indexes: Indexes,
    /// Index state to continue appending with.
    pub(crate) builder: IndexBuilder,
    /// Why the scan stopped early, if it did.
    pub(crate) stop: Option<ScanStop>,
    /// With a mark: the end of the last valid batch at or before it, and the next offset
    /// there (the start and the base offset if no batch ends by then).
    pub(crate) at_mark: (u64, i64),
}

impl ScanOutcome {
    /// The segment's state as the scan found it.
    pub(crate) fn state(&self) -> super::SegmentState {
        super::SegmentState {
            size: self.valid_size,
            next_offset: self.next_offset,
            max_timestamp: self.builder.max_timestamp(),
            offset_of_max_timestamp: self.builder.offset_of_max_timestamp(),
        }
    }
}

/// Where a batch's offsets must lie, for [`offsets_problem`]: named, because these and the
/// batch's own offsets are all `i64`s that positional arguments would let a caller swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffsetBounds {
    /// The segment's base offset.
    pub(crate) segment_base: i64,
    /// The offset after the batch before it, or the segment's base offset.
    pub(crate) at_least: i64,
    /// The segment's next offset, when known.
    pub(crate) end: Option<i64>,
}

/// What is wrong with the offsets of the batch `header` heads where it stands: below
/// `bounds.at_least`, more than `i32::MAX` above the segment's base, or (given `bounds.end`)
/// past the segment's end. The base offset lies outside the CRC, so only these checks catch a
/// changed one. Every reader of a segment (recovery's scan, a partition's readers) applies
/// them.
pub(crate) fn offsets_problem(bounds: OffsetBounds, header: &BatchHeader) -> Option<Corruption> {
    offsets_problem_of(bounds, header.base_offset, header.last_offset())
}

/// [`offsets_problem`] for a batch of offsets `base_offset..=last_offset`.
#[inline(always)]
pub(crate) fn offsets_problem_of(
    bounds: OffsetBounds,
    base_offset: i64,
    last_offset: i64,
) -> Option<Corruption> {
    let OffsetBounds {
        segment_base,
        at_least,
        end,
    } = bounds;
    if base_offset < at_least {
        return Some(Corruption::OffsetOutOfOrder {
            base_offset,
            last_offset,
            expected_at_least: at_least,
        });
    }
    if last_offset - segment_base > i64::from(i32::MAX) {
        return Some(Corruption::RelativeOffsetOverflow {
            segment_base,
            last_offset,
        });
    }
    match end {
        Some(next_offset) if last_offset >= next_offset => Some(Corruption::OffsetBeyondSegment {
            base_offset,
            last_offset,
            next_offset,
        }),
        _ => None,
    }
}

/// Scans the bytes `range` of a segment's log (it starts at a batch boundary and ends at most
/// at the file's end), through `map` when given. Index entries are built for what it scans.
pub(crate) fn scan(
    log: &File,
    map: Option<&Mapping>,
    base_offset: i64,
    range: Range<u64>,
    index_interval_bytes: i32,
) -> Result<ScanOutcome> {
    let mark = range.start;
    scan_marked(log, map, base_offset, range, index_interval_bytes, mark)
}

/// [`scan`], noting where the batches stand at byte `mark` (what recovery checks against a
/// recorded durable length).
pub(crate) fn scan_marked(
    log: &File,
    map: Option<&Mapping>,
    base_offset: i64,
    range: Range<u64>,
    index_interval_bytes: i32,
    mark: u64,
) -> Result<ScanOutcome> {
    let Range {
        start,
        end: file_size,
    } = range;
    let mut walker = Walker::new(Window::new(log.clone(), map, file_size), start);
    let mut indexes = Indexes {
        offsets: Index::new(),
        times: Index::new(),
    };
    let mut builder = IndexBuilder::new(index_interval_bytes, base_offset);
    let mut next_offset = base_offset;
    let mut stop = None;
    let mut at_mark = (start, base_offset);
    loop {
        let (pos, batch) = match walker.next()? {
            Step::End => break,
            Step::Stop { position, error } => {
                stop = Some(ScanStop {
                    position,
                    kind: Corruption::Batch(error),
                });
                break;
            }
            Step::Batch { position, batch } => (position, batch),
        };
        if let Err(e) = batch.verify_crc() {
            stop = Some(ScanStop {
                position: pos,
                kind: Corruption::Batch(e),
            });
            break;
        }
        let h = *batch.header();
        let bounds = OffsetBounds {
            segment_base: base_offset,
            at_least: next_offset,
            end: None,
        };
        if let Some(kind) = offsets_problem(bounds, &h) {
            stop = Some(ScanStop {
                position: pos,
                kind,
            });
            break;
        }
        let size = batch.size() as u64;
        let indexed = IndexedBatch {
            position: pos,
            size,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        };
        builder.on_batch(&mut indexes, base_offset, indexed);
        next_offset = h.next_offset();
        if pos + size <= mark {
            at_mark = (pos + size, next_offset);
        }
    }
    // Where the walk stopped: after the last valid batch.
    let pos = stop.as_ref().map_or(walker.position(), |s| s.position);
    builder.finish(&mut indexes, base_offset);
    Ok(ScanOutcome {
        valid_size: pos,
        next_offset,
        indexes,
        builder,
        stop,
        at_mark,
    })
}

/// A whole batch with a valid CRC, found by [`find_batches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FoundBatch {
    pub(crate) position: u64,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

/// Looks for whole batches with valid CRCs anywhere in bytes `range` of `log`, at every byte
/// position: after a power loss, pages written later than the first torn one may have reached
/// the disk, and what they hold is lost with the cut. Returns up to `limit` of them, and how
/// many more were found. Batches larger than `max_batch` bytes are not looked for, so garbage
/// claiming a huge length costs no huge read.
pub(crate) fn find_batches(
    log: &File,
    range: Range<u64>,
    max_batch: u64,
    limit: usize,
) -> Result<(Vec<FoundBatch>, u64)> {
    let Range { start: from, end } = range;
    let mut window = Window::new(log.clone(), None, end);
    let mut found = Vec::new();
    let mut more = 0u64;
    let mut pos = from;
    while pos + BATCH_HEADER_LEN as u64 <= end {
        let header = window.get(pos, BATCH_HEADER_LEN)?;
        // Cheap filters first: the magic byte and a length that fits.
        let length = header
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_be_bytes)
            .and_then(|l| u64::try_from(l).ok());
        let size = match (header.get(16), length) {
            (Some(2), Some(length)) if pos + 12 + length <= end && 12 + length <= max_batch => {
                12 + length
            }
            _ => {
                pos += 1;
                continue;
            }
        };
        let bytes = window.get(pos, usize::try_from(size).unwrap_or(usize::MAX))?;
        let batch = bytes
            .get(..usize::try_from(size).unwrap_or(usize::MAX))
            .and_then(|b| Batch::parse(b).ok())
            .filter(|b| b.verify_crc().is_ok());
        match batch {
            Some(batch) => {
                let h = batch.header();
                if found.len() < limit {
                    found.push(FoundBatch {
                        position: pos,
                        base_offset: h.base_offset,
                        last_offset: h.last_offset(),
                    });
                } else {
                    more += 1;
                }
                pos += size;
            }
            None => pos += 1,
        }
    }
    Ok((found, more))
}
