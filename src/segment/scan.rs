//! Checking a segment's batches from its first byte: recovery and index rebuilds both use it.
//! The scan checks every batch (framing, CRC, offsets rising and fitting the segment) and stops
//! at the first that fails, saying where and why; it builds the indexes as it goes, with the
//! same rule the append path uses, so a rebuilt index equals the one appends wrote.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::disk::{File, Mapping};
use crate::error::{Corruption, Result};
use crate::record::{BATCH_HEADER_LEN, Batch, NO_TIMESTAMP};

use super::Indexes;
use super::index::Index;
use super::offset_index::OffsetEntry;
use super::time_index::{self, TimeEntry};
use super::walk::{Step, Walker, Window};

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

    /// Resumes from a known maximum timestamp (a segment reopened for appends).
    pub(crate) fn resume(
        index_interval_bytes: i32,
        max_timestamp: i64,
        offset_of_max: i64,
    ) -> Self {
        IndexBuilder {
            max_timestamp,
            offset_of_max_timestamp: offset_of_max,
            ..IndexBuilder::new(index_interval_bytes, offset_of_max)
        }
    }

    /// Records a batch of `size` bytes at `position` ending at `last_offset`.
    pub(crate) fn on_batch(
        &mut self,
        indexes: &mut Indexes,
        base_offset: i64,
        position: u64,
        last_offset: i64,
        max_timestamp: i64,
        size: u64,
    ) {
        self.observe(last_offset, max_timestamp);
        if self.entry_due() {
            self.add_entry(indexes, base_offset, position, last_offset);
        }
        self.count(size);
    }

    /// First step for a batch: track the running maximum timestamp.
    pub(crate) fn observe(&mut self, last_offset: i64, max_timestamp: i64) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
    }

    /// Second step: whether this batch gets index entries (the appender locks the indexes only
    /// then).
    pub(crate) fn entry_due(&self) -> bool {
        self.bytes_since_last_entry > self.interval
    }

    /// Adds the entries for the batch at `position` ending at `last_offset`.
    pub(crate) fn add_entry(
        &mut self,
        indexes: &mut Indexes,
        base_offset: i64,
        position: u64,
        last_offset: i64,
    ) {
        let relative = i32::try_from(last_offset - base_offset);
        let position = i32::try_from(position);
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

/// What is wrong with a batch's offsets where they stand: below `at_least` (the offset after
/// the batch before it, or the segment's base offset), more than `i32::MAX` above the
/// segment's base, or (given `end`, the segment's next offset) past its end. The base offset
/// lies outside the CRC, so only these checks catch a changed one. Every reader of a segment
/// (recovery's scan, a partition's readers) applies them.
pub(crate) fn offsets_problem(
    segment_base: i64,
    at_least: i64,
    end: Option<i64>,
    base_offset: i64,
    last_offset: i64,
) -> Option<Corruption> {
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

/// Scans a segment's log from byte `start` (a batch boundary) to `file_size`, through `map`
/// when given. Index entries are built for what it scans.
pub(crate) fn scan(
    log: &File,
    map: Option<&Mapping>,
    base_offset: i64,
    start: u64,
    file_size: u64,
    index_interval_bytes: i32,
) -> Result<ScanOutcome> {
    let range = (start, file_size);
    scan_marked(log, map, base_offset, range, index_interval_bytes, start)
}

/// [`scan`] over `(start, file_size)`, noting where the batches stand at byte `mark` (what
/// recovery checks against a recorded durable length).
pub(crate) fn scan_marked(
    log: &File,
    map: Option<&Mapping>,
    base_offset: i64,
    (start, file_size): (u64, u64),
    index_interval_bytes: i32,
    mark: u64,
) -> Result<ScanOutcome> {
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
        if let Some(kind) = offsets_problem(
            base_offset,
            next_offset,
            None,
            h.base_offset,
            h.last_offset(),
        ) {
            stop = Some(ScanStop {
                position: pos,
                kind,
            });
            break;
        }
        let size = batch.size() as u64;
        builder.on_batch(
            &mut indexes,
            base_offset,
            pos,
            h.last_offset(),
            h.max_timestamp,
            size,
        );
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

/// Looks for whole batches with valid CRCs anywhere in `[from, end)` of `log`, at every byte
/// position: after a power loss, pages written later than the first torn one may have reached
/// the disk, and what they hold is lost with the cut. Returns up to `limit` of them, and how
/// many more were found. Batches larger than `max_batch` bytes are not looked for, so garbage
/// claiming a huge length costs no huge read.
pub(crate) fn find_batches(
    log: &File,
    (from, end): (u64, u64),
    max_batch: u64,
    limit: usize,
) -> Result<(Vec<FoundBatch>, u64)> {
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
