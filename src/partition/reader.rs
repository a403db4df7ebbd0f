//! Reading records back: [`Reader`] walks batches across segments and yields [`LogRecord`]s
//! that borrow their bytes from a shared chunk of the segment (its mapping, or one buffer read
//! per chunk), so reading allocates nothing per record.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::consumer::config::IsolationLevel;
use crate::record::BatchHeader;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Corruption, Error, Result};
use crate::record::DebugBytes;
use crate::record::{
    BATCH_HEADER_LEN, Batch, Compression, DecodeError, DecodeErrorKind, FRAME_LEN, Headers,
    PlainBatch, RecordCursor, RecordFields, RecordView, RecordsMeta, peek_frame, plain_batch,
};
use crate::segment::file_name::FileKind;
use crate::segment::verified::{self, BatchTable};
use crate::segment::{Chunk, OffsetBounds, Segment, offsets_problem, offsets_problem_of, warm};

use super::Shared;

/// A record read from a partition. It shares the bytes it was read from (no copy); keep
/// [`to_owned_record`](LogRecord::to_owned_record) for long-lived storage, since a `LogRecord`
/// keeps its whole chunk alive.
#[derive(Clone)]
pub struct LogRecord {
    chunk: Arc<Chunk>,
    raw: Raw,
}

/// Where a field lies in its chunk; [`Span::NULL`] for a null field. Chunks are at most
/// `u32::MAX` bytes long (see [`Chunk`]), so `u32` positions keep a record small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NULL: Span = Span {
        start: 0,
        len: u32::MAX,
    };

    /// Where `part` lies inside `whole` (`part` is a subslice of it).
    #[inline]
    fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        Span::at(start, part.len())
    }

    /// `len` bytes at `start` of a chunk.
    #[inline(always)]
    fn at(start: usize, len: usize) -> Span {
        match (u32::try_from(start), u32::try_from(len)) {
            (Ok(start), Ok(len)) if len != u32::MAX => Span { start, len },
            // Unreachable for chunks of at most u32::MAX bytes.
            _ => Span::NULL,
        }
    }

    #[inline]
    fn of_option(whole: &[u8], part: Option<&[u8]>) -> Span {
        part.map_or(Span::NULL, |p| Span::of(whole, p))
    }

    #[inline]
    fn get<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        if *self == Span::NULL {
            return None;
        }
        let start = self.start as usize;
        Some(bytes.get(start..start + self.len as usize).unwrap_or(&[]))
    }
}

impl LogRecord {
    /// The record's offset.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.raw.offset
    }

    /// The effective timestamp (the batch's append time for LogAppendTime).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.raw.timestamp
    }

    /// The key, or `None` for null.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.raw.key.get(self.chunk.bytes())
    }

    /// The value, or `None` for null (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.raw.value.get(self.chunk.bytes())
    }

    /// The headers in stored order, repeated keys included.
    #[inline]
    pub fn headers(&self) -> Headers<'_> {
        self.raw.headers(self.chunk.bytes())
    }

    /// A copy that owns its bytes.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.raw.offset,
            timestamp: self.raw.timestamp,
            key: self.key().map(<[u8]>::to_vec),
            value: self.value().map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|h| OwnedHeader {
                    key: h.key.to_vec(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

impl fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecord")
            .field("offset", &self.raw.offset)
            .field("timestamp", &self.raw.timestamp)
            .field("key", &DebugBytes(self.key()))
            .field("value", &DebugBytes(self.value()))
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

/// A record that owns its key, value and headers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnedRecord {
    /// The record's offset.
    pub offset: i64,
    /// Its effective timestamp.
    pub timestamp: i64,
    /// Key, or `None` for null.
    pub key: Option<Vec<u8>>,
    /// Value, or `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers in stored order.
    pub headers: Vec<OwnedHeader>,
}

/// A header that owns its bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnedHeader {
    /// Header key.
    pub key: Vec<u8>,
    /// Header value, or `None` for null.
    pub value: Option<Vec<u8>>,
}

impl fmt::Debug for OwnedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRecord")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &DebugBytes(self.key.as_deref()))
            .field("value", &DebugBytes(self.value.as_deref()))
            .field("headers", &self.headers)
            .finish()
    }
}

impl fmt::Debug for OwnedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedHeader")
            .field("key", &DebugBytes(Some(&self.key)))
            .field("value", &DebugBytes(self.value.as_deref()))
            .finish()
    }
}

/// The batch being walked: where its records lie, and how far into them we are.
#[derive(Debug, Clone)]
struct Current {
    /// Where the records section lies in the bytes records borrow from: the chunk's, or
    /// `inflated`'s (all of it).
    records_start: usize,
    records_end: usize,
    meta: RecordsMeta,
    cursor: RecordCursor,
    /// Segment position of the batch.
    position: u64,
    /// A compressed batch's records section, decompressed once; records borrow from it.
    inflated: Option<Arc<Chunk>>,
}

/// An iterator over a partition's records from an offset to the end of the log.
///
/// It returns `None` at the current end of the log; calling [`next`](Iterator::next) again
/// later returns records appended since. After an `Err` for damaged data the reader is
/// finished; after [`Error::UnsupportedCompression`] (a codec whose cargo feature is off) it
/// moves on past that batch. A compressed batch is decompressed once, into one buffer its
/// records share.
pub struct Reader {
    shared: Arc<Shared>,
    segment: Arc<Segment>,
    /// Segment position of the next batch to parse.
    pos: u64,
    chunk: Option<Arc<Chunk>>,
    current: Option<Current>,
    /// Records below this offset are skipped.
    min_offset: i64,
    /// Batches whose max timestamp is below this are skipped (timestamp searches).
    min_timestamp: i64,
    /// Bytes left under `read_bounded`'s budget.
    budget: Option<u64>,
    started: bool,
    include_control: bool,
    /// `read_committed`: stop at the last stable offset, skip aborted transactions.
    committed: bool,
    /// `pos` came from an index lookup: a bad batch there points at the index first.
    index_hint: bool,
    /// The batch an index lookup landed on lay wholly before the target and was passed by its
    /// framing: until a batch after it passes its CRC, a bad batch still points at the index.
    vouching: bool,
    done: bool,
    /// A read-only reader's handle on its segment's `.log`, opened on first read: a writer in
    /// another process may delete the file (retention), and the open handle reads it to its end.
    held: Option<crate::disk::File>,
    /// The offset the next batch of the segment must start at or above.
    at_least: i64,
    /// While `index_hint`: the segment position up to which the walk from the index entry
    /// probably reads (see [`warm_end`]).
    warm_to: u64,
    /// Segment position below which this reader let its mapped pages go (see
    /// [`RELEASE_EVERY`]).
    released: u64,
}

/// What the fast paths check the next batch against: the segment's bounds and the reader's
/// settings, as they stood when the fast path started (the published size and the visible end
/// only grow, so a stale value stops a fast path early, never late).
#[derive(Debug, Clone, Copy)]
struct PlainBounds {
    /// The segment's published size.
    published: u64,
    segment_base: i64,
    /// The segment's next offset.
    next_offset: i64,
    /// Records at or above this offset are not visible yet.
    visible: i64,
    /// Batches whose max timestamp is below this are the long way's to skip.
    min_timestamp: i64,
    /// `read_committed`: a transactional batch may belong to an aborted transaction, which
    /// the long way asks about.
    committed: bool,
}

/// The batch at `rel` of `bytes` (segment position `pos`, to start at or above offset
/// `at_least`, the reader wanting offsets from `min_offset`) when a fast path may take it as
/// it is: whole in `bytes` and published, an uncompressed data batch (`plain_batch`) the
/// reader does not skip and does not start inside, its offsets in order and in the segment's
/// bounds, its CRC right, the next batch's framing (where `bytes` holds it) starting at or
/// above its next offset, and its first record decoding and visible. Returns the batch and
/// that record with the cursor after it. `None` for anything else: the long way
/// ([`Reader::next_batch`]) then takes the batch and says what is wrong with it, if anything.
/// The one rule both fast paths ([`Reader::next_batch_fast`], [`Reader::scan_plain`]) follow.
#[inline(always)]
fn plain_step(
    bytes: &[u8],
    at: Step,
    b: &PlainBounds,
) -> Option<(PlainBatch, RecordFields, RecordCursor)> {
    let Step {
        rel,
        pos,
        at_least,
        min_offset,
    } = at;
    let batch = plain_batch(bytes.get(rel..)?)?;
    let size = batch.size;
    let end = pos + size as u64;
    let next_offset = batch.next_offset();
    let bounds = OffsetBounds {
        segment_base: b.segment_base,
        at_least,
        end: Some(b.next_offset),
    };
    if end > b.published
        || offsets_problem_of(bounds, batch.meta.base_offset(), next_offset - 1).is_some()
        || (b.committed && batch.transactional)
        || batch.max_timestamp() < b.min_timestamp
        || min_offset > batch.meta.base_offset()
    {
        return None;
    }
    let whole = bytes.get(rel..rel + size)?;
    if !batch.crc_matches(whole) {
        return None;
    }
    // `next_batch_problem`'s check, where the chunk holds the next framing.
    let follows = end >= b.published
        || bytes
            .get(rel + size..)
            .and_then(|b| b.first_chunk::<FRAME_LEN>())
            .and_then(|b| b.first_chunk())
            .is_some_and(|b| i64::from_be_bytes(*b) >= next_offset);
    if !follows {
        return None;
    }
    let mut cursor = RecordCursor::START;
    let first = batch
        .meta
        .next_fields(whole.get(BATCH_HEADER_LEN..)?, &mut cursor)?;
    if first.offset >= b.visible {
        return None;
    }
    Some((batch, first, cursor))
}

/// Where [`plain_step`] looks: a position in the chunk's bytes and in the segment, and the
/// offsets the batch there must start at or above (`at_least`) and may not start below
/// (`min_offset`, else the read starts inside it).
#[derive(Debug, Clone, Copy)]
struct Step {
    rel: usize,
    pos: u64,
    at_least: i64,
    min_offset: i64,
}

/// The most bytes an index seek warms ahead of the walk to the batch it looks for: twice
/// Kafka's default `index.interval.bytes`. Entries further apart than this mean large
/// batches, where the walk reads a few headers and the batch sought is read through anyway.
const WARM_MAX: u64 = 8 << 10;

/// Where warming ahead of the walk from `sought` ends: past the batch the index puts the
/// target in, and the next batch's framing that the walk checks too; `sought.position` (no
/// warming) when the entries lie more than [`WARM_MAX`] apart.
fn warm_end(sought: &crate::segment::offset_index::Seek) -> u64 {
    if sought.next_position - sought.position > WARM_MAX {
        return sought.position;
    }
    sought.reach.saturating_add(FRAME_LEN as u64)
}

/// How far a reader goes before it lets the mapped pages it passed leave the process's
/// resident set: a sequential scan of any log then keeps about this much of it resident
/// (Kafka reads with `read`/`sendfile` and so has no such growth; a mapping does, unless told).
const RELEASE_EVERY: u64 = 1 << 20;

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("segment", &self.segment.base_offset())
            .field("position", &self.pos)
            .field("min_offset", &self.min_offset)
            .finish_non_exhaustive()
    }
}

/// Whether a `read_committed` reader skips the batch `h`: a data batch of a transaction its
/// producer aborted. (A batch of an open transaction is not: it lies at or past the last
/// stable offset, where the reader stops.)
///
/// Retention forgets the aborted transactions below the log start. A reader still inside a
/// segment retention deleted cannot tell for a transactional batch there, so it stops with
/// [`Error::OffsetOutOfRange`] (where it would stop at that segment's end anyway).
fn aborted_batch(shared: &Shared, h: &BatchHeader) -> Result<bool> {
    if !h.is_transactional() || h.is_control() {
        return Ok(false);
    }
    if shared.aborted.read().covers(h.producer_id, h.base_offset) {
        return Ok(true);
    }
    // Read after the lookup: retention raises the log start before it forgets.
    let log_start = shared.log_start_offset();
    if h.base_offset < log_start {
        return Err(Error::OffsetOutOfRange {
            requested: h.base_offset,
            log_start,
            log_end: shared.next_offset(),
        });
    }
    Ok(false)
}

/// The offset records must lie below to be returned now: what a read-only partition's writer
/// published, and under `read_committed` the last stable offset.
#[inline(always)]
fn end_of(shared: &Shared, committed: bool) -> i64 {
    let visible = shared.visible_end.load(Ordering::Acquire);
    if committed {
        visible.min(shared.first_unstable.load(Ordering::Acquire))
    } else {
        visible
    }
}

/// How [`Partition::read_with`](super::Partition::read_with) reads: a fetch's settings for
/// one partition.
///
/// ```
/// use topiclog::partition::{IsolationLevel, ReadOptions};
/// let options = ReadOptions::new()
///     .isolation_level(IsolationLevel::ReadCommitted)
///     .max_bytes(1 << 20);
/// assert_eq!(options.max_bytes_bound(), Some(1 << 20));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    isolation_level: IsolationLevel,
    max_bytes: Option<usize>,
}

impl ReadOptions {
    /// `read_uncommitted`, no byte bound: what [`Partition::read`](super::Partition::read)
    /// does.
    pub fn new() -> ReadOptions {
        ReadOptions::default()
    }

    /// Reads at `level` (Kafka's `isolation.level`).
    #[must_use]
    pub fn isolation_level(mut self, level: IsolationLevel) -> ReadOptions {
        self.isolation_level = level;
        self
    }

    /// Stops before the batch that would take the bytes read past `max_bytes` (the first
    /// batch is returned whole).
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> ReadOptions {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// The isolation level.
    pub fn isolation_level_of(&self) -> IsolationLevel {
        self.isolation_level
    }

    /// The byte bound, if any.
    pub fn max_bytes_bound(&self) -> Option<usize> {
        self.max_bytes
    }
}

/// Where a [`Reader`] starts and what it skips: named, because three of these are `i64`
/// offsets or timestamps that positional arguments would let a caller swap.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadPlan {
    /// The offset looked up in the offset index: reading starts at the batch holding it.
    pub(super) seek: i64,
    /// Records below this offset are skipped.
    pub(super) from: i64,
    /// Bytes of batches to return (`read_bounded`), or `None` for no bound.
    pub(super) budget: Option<u64>,
    /// Batches whose max timestamp is below this are skipped (timestamp searches).
    pub(super) min_timestamp: i64,
    /// Whether control batches (transaction markers) are returned.
    pub(super) include_control: bool,
    /// `read_committed`: records below the last stable offset only, none of an aborted
    /// transaction.
    pub(super) committed: bool,
}

impl Reader {
    /// A reader of `segment` as `plan` says: from the batch holding `plan.seek` (found
    /// through the offset index), returning records at or after `plan.from`.
    pub(super) fn new(
        shared: Arc<Shared>,
        segment: Arc<Segment>,
        plan: ReadPlan,
    ) -> Result<Reader> {
        let ReadPlan {
            seek,
            from,
            budget,
            min_timestamp,
            include_control,
            committed,
        } = plan;
        let sought = segment.seek_for(seek)?;
        let pos = sought.position;
        Ok(Reader {
            shared,
            segment,
            pos,
            chunk: None,
            current: None,
            min_offset: from,
            min_timestamp,
            budget,
            started: false,
            include_control,
            committed,
            index_hint: pos > 0,
            vouching: false,
            done: false,
            held: None,
            at_least: sought.at_least,
            warm_to: warm_end(&sought),
            released: pos,
        })
    }

    /// The offset of the next record this reader would return, at least.
    pub fn position(&self) -> i64 {
        self.min_offset
    }

    /// The next record, unless the reader is finished: what both ways of reading share.
    #[inline]
    fn advance(&mut self) -> Option<Result<Raw>> {
        if let Some(raw) = self.next_in_batch() {
            return Some(Ok(raw));
        }
        if let Some((records_start, fields)) = self.next_batch_fast() {
            return Some(Ok(Raw::at(records_start, &fields)));
        }
        self.advance_slow()
    }

    /// Makes the batch at `pos` the current one when it is the plain next batch of a
    /// sequential read: the current batch ended cleanly, no index seek, byte budget or page
    /// release is due, and [`plain_step`] takes the batch. Returns its first record as
    /// [`fields_in_batch`](Self::fields_in_batch) does. `None` for anything else, with nothing
    /// moved, and [`next_batch`](Self::next_batch) then does it in full and reports what is
    /// wrong.
    #[inline]
    fn next_batch_fast(&mut self) -> Option<(usize, RecordFields)> {
        let (chunk, rel, bounds) = self.fast_start()?;
        let at = Step {
            rel,
            pos: self.pos,
            at_least: self.at_least,
            min_offset: self.min_offset,
        };
        let (batch, first, cursor) = plain_step(chunk.bytes(), at, &bounds)?;
        Some((self.take_up(rel, batch, &first, cursor), first))
    }

    /// Whether a fast path may start at `pos`: the current batch ended cleanly (read to its
    /// end, not decompressed), no index seek, byte budget or page release is due. Returns the
    /// chunk, `pos` in it, and the bounds to check batches against.
    #[inline(always)]
    fn fast_start(&self) -> Option<(&Arc<Chunk>, usize, PlainBounds)> {
        let cur = self.current.as_ref()?;
        if self.done
            || cur.inflated.is_some()
            || !cur
                .meta
                .finished(cur.records_end - cur.records_start, &cur.cursor)
            || self.index_hint
            || self.budget.is_some()
            || self.pos >= self.released + RELEASE_EVERY
        {
            return None;
        }
        let chunk = self.chunk.as_ref()?;
        let rel = usize::try_from(self.pos.checked_sub(chunk.start())?).ok()?;
        let bounds = PlainBounds {
            published: self.segment.size(),
            segment_base: self.segment.base_offset(),
            next_offset: self.segment.next_offset(),
            visible: end_of(&self.shared, self.committed),
            min_timestamp: self.min_timestamp,
            committed: self.committed,
        };
        Some((chunk, rel, bounds))
    }

    /// Makes the batch [`plain_step`] took at `rel` of the chunk the current one, its first
    /// record (`first`) read, `cursor` after it: the finished batch's state becomes the new
    /// one's, in place. Returns where its records start in the chunk.
    #[inline(always)]
    fn take_up(
        &mut self,
        rel: usize,
        batch: PlainBatch,
        first: &RecordFields,
        cursor: RecordCursor,
    ) -> usize {
        let records_start = rel + BATCH_HEADER_LEN;
        if let Some(cur) = self.current.as_mut() {
            cur.records_start = records_start;
            cur.records_end = rel + batch.size;
            cur.meta = batch.meta;
            cur.cursor = cursor;
            cur.position = self.pos;
        }
        self.at_least = batch.next_offset();
        self.pos += batch.size as u64;
        self.started = true;
        self.min_offset = first.offset + 1;
        records_start
    }

    /// [`advance`](Self::advance) where the fast path cannot go on: at a batch's end, at the
    /// first batch, the visible end, or a fault. It starts again from where that stopped.
    #[inline(never)]
    fn advance_slow(&mut self) -> Option<Result<Raw>> {
        if self.done {
            return None;
        }
        match self.next_raw() {
            Err(e) if self.went_on_after_compaction(&e) => self.next_raw().transpose(),
            other => other.transpose(),
        }
    }

    /// A read-only partition's reader whose segment a compaction in the writer's process
    /// replaced (its file gone, or holding the new segment's bytes): after the partition lists
    /// its segments again, it goes on from the next offset it wants in what replaced it.
    /// Returns whether it did; otherwise `e` stands.
    #[cold]
    fn went_on_after_compaction(&mut self, e: &Error) -> bool {
        if self.segment.is_writable()
            || !matches!(
                e,
                Error::Corrupt { .. } | Error::OffsetOutOfRange { .. } | Error::Io { .. }
            )
        {
            return false;
        }
        let resynced = self.shared.resync_after_fault().unwrap_or(false);
        if !resynced && !self.segment.is_replaced() {
            return false;
        }
        let Some(segment) = self.shared.segment_for(self.min_offset) else {
            return false;
        };
        let Ok(sought) = segment.seek_for(self.min_offset) else {
            return false;
        };
        self.segment = segment;
        let pos = sought.position;
        (self.pos, self.at_least, self.chunk, self.current, self.held) =
            (pos, sought.at_least, None, None, None);
        self.warm_to = warm_end(&sought);
        (self.index_hint, self.vouching, self.done) = (pos > 0, false, false);
        self.released = pos;
        true
    }

    /// The next record of the current, CRC-checked batch when nothing stands in the way: it
    /// decodes well, is wanted and is visible. Otherwise `None`, with nothing moved, and
    /// [`next_raw`](Self::next_raw) takes the same record the long way (reporting faults,
    /// moving to the next batch). A sequential read spends most of its records here.
    #[inline(always)]
    fn next_in_batch(&mut self) -> Option<Raw> {
        let (records_start, fields) = self.fields_in_batch()?;
        Some(Raw::at(records_start, &fields))
    }

    /// [`next_in_batch`](Self::next_in_batch)'s record as the decoder found it: where the
    /// records section starts in the chunk, and the fields' positions inside it.
    #[inline(always)]
    fn fields_in_batch(&mut self) -> Option<(usize, RecordFields)> {
        let cur = self
            .current
            .as_mut()
            .filter(|c| c.meta.has_more(&c.cursor))?;
        let bytes = match &cur.inflated {
            None => self.chunk.as_ref()?.bytes(),
            Some(inflated) => inflated.bytes(),
        };
        let records = bytes.get(cur.records_start..cur.records_end)?;
        let before = cur.cursor;
        let fields = cur.meta.next_fields(records, &mut cur.cursor)?;
        if fields.offset < self.min_offset || fields.offset >= end_of(&self.shared, self.committed)
        {
            cur.cursor = before;
            return None;
        }
        self.min_offset = fields.offset + 1;
        Some((cur.records_start, fields))
    }

    /// The next record as positions in the current chunk.
    fn next_raw(&mut self) -> Result<Option<Raw>> {
        loop {
            if let Some(raw) = self.next_in_batch() {
                return Ok(Some(raw));
            }
            if let Some(cur) = self.current.as_mut() {
                let bytes = match &cur.inflated {
                    None => match self.chunk.as_ref() {
                        Some(chunk) => chunk.bytes(),
                        None => {
                            self.current = None;
                            continue;
                        }
                    },
                    Some(inflated) => inflated.bytes(),
                };
                let records = bytes.get(cur.records_start..cur.records_end).unwrap_or(&[]);
                let before = cur.cursor;
                match cur.meta.step(records, &mut cur.cursor) {
                    Some(Ok(view)) => {
                        if view.offset() < self.min_offset {
                            continue;
                        }
                        // A follower in another process stops at what its writer published as
                        // durable, and goes on from this record once more is published.
                        if view.offset() >= end_of(&self.shared, self.committed) {
                            cur.cursor = before;
                            return Ok(None);
                        }
                        self.min_offset = view.offset() + 1;
                        return Ok(Some(Raw::of(bytes, &view)));
                    }
                    Some(Err(mut e)) => {
                        let position = cur.position;
                        if cur.inflated.is_some() {
                            // A position in decompressed bytes means nothing in the file:
                            // point at the compressed records section.
                            e.position = BATCH_HEADER_LEN;
                        }
                        self.current = None;
                        return Err(self.corrupt(position, e));
                    }
                    None => self.current = None,
                }
            }
            if !self.next_batch()? {
                return Ok(None);
            }
        }
    }

    /// The next record, borrowed from the reader: no reference count per record, as the
    /// [`Iterator`]'s owned records have (use those for records that outlive the next call).
    /// To scan many records, [`try_for_each_view`](Self::try_for_each_view) is faster.
    ///
    /// ```
    /// # use topiclog::{Partition, config::LogConfig, record::Record};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Partition::open(dir.path(), LogConfig::default())?;
    /// # log.append_batch(&[Record::new(b"a"), Record::new(b"bc")])?;
    /// let mut reader = log.read(0)?;
    /// let mut bytes = 0;
    /// while let Some(record) = reader.next_view() {
    ///     bytes += record?.value().map_or(0, <[u8]>::len);
    /// }
    /// assert_eq!(bytes, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn next_view(&mut self) -> Option<Result<RecordView<'_>>> {
        // `advance`'s fast paths, the record sliced straight from its fields' positions.
        let fast = match self.fields_in_batch() {
            None => self.next_batch_fast(),
            found => found,
        };
        if let Some((records_start, fields)) = fast {
            let records = self.record_chunk()?.bytes().get(records_start..)?;
            return Some(Ok(view_at(records, &fields)));
        }
        let raw = match self.advance_slow()? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let bytes = self.record_chunk()?.bytes();
        Some(Ok(RecordView {
            offset: raw.offset,
            timestamp: raw.timestamp,
            key: raw.key.get(bytes),
            value: raw.value.get(bytes),
            headers: raw.headers(bytes),
        }))
    }

    /// Calls `f` with each record from the reader's position to the end of what is readable
    /// now, borrowed as [`next_view`](Self::next_view) lends them, until `f` returns
    /// [`ControlFlow::Break`]. The fastest way to scan a log: the reader walks each stretch of
    /// plain batches in one loop, checking and decoding them as it goes, instead of taking
    /// them up one call at a time. It returns exactly the records, and the errors, that
    /// calling `next_view` until `None` (or until `f` breaks) would; the reader then goes on
    /// after the last record `f` was given.
    ///
    /// # Errors
    /// As [`next_view`](Self::next_view): the first error ends the scan (the records before
    /// it were given to `f`).
    ///
    /// ```
    /// # use topiclog::{Partition, config::LogConfig, record::Record};
    /// use std::ops::ControlFlow;
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Partition::open(dir.path(), LogConfig::default())?;
    /// # log.append_batch(&[Record::new(b"a"), Record::new(b"bc"), Record::new(b"def")])?;
    /// let mut reader = log.read(0)?;
    /// let mut bytes = 0;
    /// // Up to offset 1, then the rest.
    /// reader.try_for_each_view(|record| {
    ///     bytes += record.value().map_or(0, <[u8]>::len);
    ///     if record.offset() == 1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    /// })?;
    /// assert_eq!((bytes, reader.position()), (3, 2));
    /// reader.try_for_each_view(|record| {
    ///     bytes += record.value().map_or(0, <[u8]>::len);
    ///     ControlFlow::<()>::Continue(())
    /// })?;
    /// assert_eq!(bytes, 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_for_each_view<B>(
        &mut self,
        mut f: impl FnMut(RecordView<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        loop {
            if let ControlFlow::Break(b) = self.scan_plain(&mut f) {
                return Ok(ControlFlow::Break(b));
            }
            // Where the loop stops (a batch end it cannot pass, the visible end, a fault): one
            // record the long way, which moves on or says what is wrong.
            match self.next_view() {
                None => return Ok(ControlFlow::Continue(())),
                Some(Err(e)) => return Err(e),
                Some(Ok(view)) => {
                    if let ControlFlow::Break(b) = f(view) {
                        return Ok(ControlFlow::Break(b));
                    }
                }
            }
        }
    }

    /// [`try_for_each_view`](Self::try_for_each_view)'s loop: the rest of the current batch,
    /// then the batches after it in the chunk for as long as [`plain_step`] takes each (as
    /// [`next_batch_fast`](Self::next_batch_fast) would, one call at a time) and no page
    /// release is due. Returns `Continue` where it stops, with the reader where `next_view`
    /// would have left it, for the long way to go on from.
    #[inline(never)]
    fn scan_plain<B>(
        &mut self,
        f: &mut impl FnMut(RecordView<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        // The records left in the current batch, whatever its kind.
        while let Some((records_start, fields)) = self.fields_in_batch() {
            let Some(records) = self
                .record_chunk()
                .and_then(|c| c.bytes().get(records_start..))
            else {
                return ControlFlow::Continue(()); // unreachable: the record came from there
            };
            f(view_at(records, &fields))?;
        }
        let Some((chunk, mut rel, bounds)) = self.fast_start() else {
            return ControlFlow::Continue(());
        };
        // Held here, so the reader's state can move while records borrow the bytes.
        let chunk = Arc::clone(chunk);
        let bytes = chunk.bytes();
        let release_at = self.released + RELEASE_EVERY;
        while self.pos < release_at {
            let at = Step {
                rel,
                pos: self.pos,
                at_least: self.at_least,
                min_offset: self.min_offset,
            };
            let Some((batch, first, cursor)) = plain_step(bytes, at, &bounds) else {
                break;
            };
            let size = batch.size;
            let records_start = self.take_up(rel, batch, &first, cursor);
            let Some(records) = bytes.get(records_start..rel + size) else {
                break; // unreachable: `plain_step` read the batch there
            };
            f(view_at(records, &first))?;
            if batch.meta.finished(records.len(), &cursor) {
                // Its only record: nothing to read back from the state `take_up` stored.
                rel += size;
                continue;
            }
            // The rest of its records, each as `fields_in_batch` takes it.
            let Some(cur) = self.current.as_mut() else {
                break; // unreachable: `take_up` kept it
            };
            loop {
                let before = cur.cursor;
                let Some(fields) = cur.meta.next_fields(records, &mut cur.cursor) else {
                    break;
                };
                if fields.offset >= bounds.visible {
                    cur.cursor = before;
                    return ControlFlow::Continue(());
                }
                self.min_offset = fields.offset + 1;
                f(view_at(records, &fields))?;
            }
            if !cur.meta.finished(records.len(), &cur.cursor) {
                return ControlFlow::Continue(()); // a record that does not decode: the long way
            }
            rel += size;
        }
        ControlFlow::Continue(())
    }

    /// The chunk the last record returned lies in: the decompressed records of a compressed
    /// batch, or else the segment chunk.
    #[inline]
    fn record_chunk(&self) -> Option<&Arc<Chunk>> {
        match self.current.as_ref().and_then(|c| c.inflated.as_ref()) {
            Some(inflated) => Some(inflated),
            None => self.chunk.as_ref(),
        }
    }

    fn corrupt(&mut self, batch_position: u64, e: DecodeError) -> Error {
        self.done = true;
        Error::corrupt(
            self.segment.path(FileKind::Log),
            batch_position + e.position as u64,
            Corruption::Batch(e),
        )
    }

    /// Moves to the next batch worth returning; `false` at the end (for now).
    fn next_batch(&mut self) -> Result<bool> {
        loop {
            if self.budget == Some(0) && self.started {
                return Ok(false);
            }
            if self.pos >= self.released + RELEASE_EVERY {
                self.release_behind(self.pos);
            }
            if self.pos >= self.segment.size() {
                if !self.segment.is_sealed() {
                    return Ok(false);
                }
                if self.pos < self.segment.size() {
                    continue; // it grew before it was sealed
                }
                // A segment compaction replaced holds records that now lie in the segment
                // that took its place: go on from there (at the next offset wanted).
                let replaced = self.segment.is_replaced();
                let next = match replaced {
                    true => self
                        .shared
                        .segment_for(self.min_offset)
                        .filter(|s| !Arc::ptr_eq(s, &self.segment))
                        .or_else(|| self.shared.segment_after(self.segment.base_offset())),
                    false => self.shared.segment_after(self.segment.base_offset()),
                };
                let Some(next) = next else {
                    return Ok(false);
                };
                // Records were deleted under this reader: it read its segment to the end, but
                // what comes next starts past the log start. Say so rather than skip them.
                let log_start = self.shared.log_start_offset();
                if self.min_offset < log_start {
                    self.done = true;
                    return Err(Error::OffsetOutOfRange {
                        requested: self.min_offset,
                        log_start,
                        log_end: self.shared.next_offset(),
                    });
                }
                self.release_behind(self.pos);
                self.segment = next;
                (self.pos, self.chunk, self.index_hint, self.held) = (0, None, false, None);
                self.at_least = self.segment.base_offset();
                if replaced && self.min_offset > self.at_least {
                    let sought = self.segment.seek_for(self.min_offset)?;
                    (self.pos, self.at_least) = (sought.position, sought.at_least);
                    self.index_hint = self.pos > 0;
                    self.warm_to = warm_end(&sought);
                }
                self.vouching = false;
                self.released = self.pos;
                continue;
            }
            // The chunk is borrowed, not cloned, for the batch: no reference count per batch.
            self.chunk_at(BATCH_HEADER_LEN)?;
            // Batches wholly before the target are passed over by their framing alone: their
            // records are not returned, so their CRCs need not be computed. That includes the
            // batch an index seek lands on; the index is trusted once the first batch served
            // after it passes its CRC (`vouching`).
            // (A batch starts at `at_least` or above and holds a record, so none can lie wholly
            // below `min_offset` unless that is above `at_least`: a sequential read never looks.)
            if !self.index_hint && self.min_offset > self.at_least && self.pass_by_framing() {
                continue;
            }
            let Some(mut chunk) = self.chunk.as_ref() else {
                return Ok(false); // unreachable: `chunk_at` leaves a chunk or fails
            };
            if self.index_hint {
                // The batch sought lies a few batches ahead. Load what the walk to it will
                // read at once rather than one header at a time, as the index estimates it.
                let rel = usize::try_from(self.pos - chunk.start()).unwrap_or(usize::MAX);
                let span = usize::try_from(self.warm_to.saturating_sub(self.pos)).unwrap_or(0);
                let bytes = chunk.bytes().get(rel..).unwrap_or(&[]);
                warm(bytes.get(..span).unwrap_or(bytes));
            }
            let mut parsed = parse_at(chunk, self.pos);
            if let Err(DecodeError {
                kind: DecodeErrorKind::Truncated { needed, .. },
                ..
            }) = parsed
            {
                let end = self.pos + needed as u64;
                if end <= self.segment.size() && chunk.end() < end {
                    // The batch is published whole but this chunk stops short: widen it once,
                    // to the next batch's framing too (see `next_batch_problem`).
                    self.chunk = None;
                    self.chunk_at(needed + FRAME_LEN)?;
                    let Some(wider) = self.chunk.as_ref() else {
                        return Ok(false); // unreachable, as above
                    };
                    chunk = wider;
                    parsed = parse_at(chunk, self.pos);
                }
            }
            let checked = match parsed {
                Ok(batch) => {
                    let h = batch.header();
                    let bounds = OffsetBounds {
                        segment_base: self.segment.base_offset(),
                        at_least: self.at_least,
                        end: Some(self.segment.next_offset()),
                    };
                    if let Some(kind) = offsets_problem(bounds, h) {
                        if self.index_hint || self.vouching {
                            // The index's bound, or the batch's offsets: the index first.
                            self.distrust_index()?;
                            continue;
                        }
                        self.done = true;
                        return Err(Error::corrupt(
                            self.segment.path(FileKind::Log),
                            self.pos,
                            kind,
                        ));
                    }
                    let aborted = match self.committed {
                        true => aborted_batch(&self.shared, h).inspect_err(|_| self.done = true)?,
                        false => false,
                    };
                    let skip = h.next_offset() <= self.min_offset
                        || (h.is_control() && !self.include_control)
                        || h.max_timestamp < self.min_timestamp
                        || aborted;
                    if skip {
                        // Framing alone: its offsets fit, and the next batch must follow on.
                        self.vouching |= self.index_hint;
                        self.index_hint = false;
                        self.at_least = h.next_offset();
                        self.pos += batch.size() as u64;
                        continue;
                    }
                    // A batch a read starts inside: a large one's table, if it was checked
                    // whole before, vouches for its CRC and records (and is kept now, if not).
                    let tabled = self.min_offset > h.base_offset
                        && h.records_count >= verified::MIN_RECORDS
                        && h.compression_id() == Compression::None.id();
                    let table = if tabled {
                        self.segment.batch_table(self.pos)
                    } else {
                        None
                    };
                    match table {
                        Some(table) => Ok((batch, Tabled::Kept(table))),
                        None => batch.verify_crc().map(|()| {
                            let tabled = if tabled { Tabled::Build } else { Tabled::No };
                            (batch, tabled)
                        }),
                    }
                }
                Err(e) => Err(e),
            };
            let (batch, tabled) = match checked {
                Ok(checked) => checked,
                Err(_) if self.index_hint || self.vouching => {
                    self.distrust_index()?;
                    continue;
                }
                Err(e) => return Err(self.corrupt(self.pos, e)),
            };
            let header = *batch.header();
            let size = batch.size();
            let position = self.pos;
            self.at_least = header.next_offset();
            self.pos += size as u64;
            (self.index_hint, self.vouching) = (false, false);
            if let Some(kind) = self.next_batch_problem(chunk, self.pos, header.next_offset())? {
                self.done = true;
                return Err(Error::corrupt(
                    self.segment.path(FileKind::Log),
                    self.pos,
                    kind,
                ));
            }
            if let Some(budget) = self.budget {
                if self.started && size as u64 > budget {
                    self.pos = position;
                    self.budget = Some(0);
                    return Ok(false);
                }
                self.budget = Some(budget.saturating_sub(size as u64));
            }
            self.started = true;
            let inflated = if header.compression_id() == Compression::None.id() {
                None
            } else {
                let mut buf = Vec::new();
                let max = self.shared.config().max_decompressed_batch_bytes();
                if let Err(e) = batch.decompress_into(&mut buf, max) {
                    return Err(match e.kind {
                        DecodeErrorKind::UnsupportedCompression(codec) => {
                            Error::UnsupportedCompression {
                                codec,
                                path: self.segment.path(FileKind::Log),
                                position,
                            }
                        }
                        _ => self.corrupt(position, e),
                    });
                }
                Some(Arc::new(Chunk::owned(buf, position)))
            };
            let start = (position - chunk.start()) as usize;
            let meta = RecordsMeta::of(&header);
            let table = match tabled {
                Tabled::No => None,
                Tabled::Kept(table) => Some(table),
                Tabled::Build => self.table_of(chunk, start, size, &meta, position),
            };
            let cursor = table
                .and_then(|t| t.cursor_for(&meta, self.min_offset))
                .unwrap_or(RecordCursor::START);
            let (records_start, records_end) = match &inflated {
                None => (start + BATCH_HEADER_LEN, start + size),
                Some(inflated) => (0, inflated.bytes().len()),
            };
            self.current = Some(Current {
                records_start,
                records_end,
                meta,
                cursor,
                position,
                inflated,
            });
            return Ok(true);
        }
    }

    /// Passes over the batches from `pos` in the chunk held that lie wholly below `min_offset`,
    /// by their framing alone (their records are not returned, so their CRCs need not be
    /// computed): each must start at `at_least` or above and end within what is published.
    /// Whether it passed any. Anything else is left to [`next_batch`](Self::next_batch).
    #[inline(never)]
    fn pass_by_framing(&mut self) -> bool {
        let Some(chunk) = &self.chunk else {
            return false;
        };
        let (bytes, published) = (chunk.bytes(), self.segment.size());
        let Some(mut rel) = self
            .pos
            .checked_sub(chunk.start())
            .and_then(|rel| usize::try_from(rel).ok())
        else {
            return false;
        };
        let (mut pos, mut at_least) = (self.pos, self.at_least);
        while let Some(frame) = peek_frame(bytes.get(rel..).unwrap_or_default()) {
            let end = pos + frame.size as u64;
            if frame.next_offset > self.min_offset
                || end > published
                || frame.base_offset < at_least
            {
                break;
            }
            (pos, at_least) = (end, frame.next_offset);
            rel += frame.size;
        }
        let passed = pos != self.pos;
        (self.pos, self.at_least) = (pos, at_least);
        passed
    }

    /// Lets the mapped pages between the last release and `to` go (records already returned
    /// from them still read the same bytes: they fault back in).
    fn release_behind(&mut self, to: u64) {
        // Only behind: the stretch ahead is left to page faults, which map the pages around
        // each fault in one go and cost less per page than populating a range in advance
        // (`MADV_POPULATE_READ`, measured with `cargo bench --bench read`).
        if let Some(chunk) = &self.chunk {
            chunk.release(self.released..to);
        }
        self.released = to;
    }

    /// Walks the CRC-checked batch at `start..start + size` of `chunk` into a table, and keeps
    /// it. A batch whose records do not all decode gets none: reading it meets the damage.
    fn table_of(
        &self,
        chunk: &Chunk,
        start: usize,
        size: usize,
        meta: &RecordsMeta,
        position: u64,
    ) -> Option<Arc<BatchTable>> {
        let records = chunk.bytes().get(start + BATCH_HEADER_LEN..start + size)?;
        let table = Arc::new(BatchTable::build(meta, records)?);
        self.segment.keep_batch_table(position, Arc::clone(&table));
        Some(table)
    }

    /// Rebuilds the segment's indexes from its log and seeks again: the batch an index seek
    /// found did not fit, and an index is a cache, to distrust before the data. Reading then
    /// goes on without a hint, so a fault in the log itself is met again and reported.
    fn distrust_index(&mut self) -> Result<()> {
        self.segment.rebuild_indexes()?;
        let sought = self.segment.seek_for(self.min_offset)?;
        (self.pos, self.at_least) = (sought.position, sought.at_least);
        (self.chunk, self.index_hint, self.vouching) = (None, false, false);
        Ok(())
    }

    /// What is wrong with the batch at segment position `next_pos`, after a batch about to be
    /// served that ends before `expected_at_least`: whether it starts below that offset.
    ///
    /// A base offset lies outside the CRC, and [`offsets_problem`] bounds a batch from below
    /// (the batch before it) and by the segment's end only, so a base offset raised into the
    /// next batch's offsets would pass and its records be served at offsets that hold others.
    /// The overlap shows at the next batch, so look at its framing before serving any record:
    /// the error is the one reading on would meet there, only sooner. The last batch of a
    /// segment is bounded by the segment's end instead.
    #[inline]
    fn next_batch_problem(
        &self,
        chunk: &Chunk,
        next_pos: u64,
        expected_at_least: i64,
    ) -> Result<Option<Corruption>> {
        if next_pos >= self.segment.size() {
            return Ok(None);
        }
        let rel = usize::try_from(next_pos.saturating_sub(chunk.start())).unwrap_or(usize::MAX);
        let frame = match chunk.bytes().get(rel..).filter(|b| b.len() >= FRAME_LEN) {
            // Offsets in order, the common case, show in the base offset alone.
            Some(bytes)
                if bytes
                    .first_chunk()
                    .is_some_and(|b| i64::from_be_bytes(*b) >= expected_at_least) =>
            {
                return Ok(None);
            }
            Some(bytes) => peek_frame(bytes),
            // Rare: the chunk ends inside that framing (a widened chunk holds it).
            None => {
                let more =
                    self.shared
                        .fetch(&self.segment, self.held.as_ref(), next_pos, FRAME_LEN)?;
                peek_frame(more.bytes())
            }
        };
        // A framing that does not even peek is met as an error when reading gets there.
        Ok(frame
            .filter(|f| f.base_offset < expected_at_least)
            .map(|f| Corruption::OffsetOutOfOrder {
                base_offset: f.base_offset,
                last_offset: f.next_offset - 1,
                expected_at_least,
            }))
    }

    /// Makes `self.chunk` a chunk holding the bytes at `pos`, at least `min_len` of them
    /// where published.
    #[inline]
    fn chunk_at(&mut self, min_len: usize) -> Result<()> {
        if let Some(chunk) = &self.chunk {
            let covered = self.pos >= chunk.start() && self.pos + min_len as u64 <= chunk.end();
            if covered
                || (self.pos >= chunk.start()
                    && chunk.end() >= self.segment.size()
                    && self.pos < chunk.end())
            {
                return Ok(());
            }
        }
        self.fetch_chunk(min_len)
    }

    /// [`chunk_at`](Self::chunk_at) when the chunk held does not do: a new one.
    #[inline(never)]
    fn fetch_chunk(&mut self, min_len: usize) -> Result<()> {
        if self.held.is_none() && !self.segment.is_writable() {
            match self.segment.log() {
                Ok(log) => self.held = Some(log),
                Err(e) if is_not_found(&e) => return Err(self.deleted_under_reader()),
                Err(e) => return Err(e),
            }
        }
        let fetched = self
            .shared
            .fetch(&self.segment, self.held.as_ref(), self.pos, min_len);
        let chunk = match fetched {
            Ok(chunk) => Arc::new(chunk),
            Err(e) if is_not_found(&e) => return Err(self.deleted_under_reader()),
            Err(e) => return Err(e),
        };
        self.chunk = Some(chunk);
        Ok(())
    }
}

/// Whether `e` says a file is not there.
fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl Reader {
    /// The error for a segment whose file another process deleted (retention) before this
    /// reader opened it: its records are below the log start now.
    fn deleted_under_reader(&mut self) -> Error {
        self.done = true;
        let log_start = self
            .shared
            .log_start_offset()
            .max(self.segment.next_offset());
        Error::OffsetOutOfRange {
            requested: self.min_offset,
            log_start,
            log_end: self.shared.next_offset().max(log_start),
        }
    }
}

/// The record `fields` describes, inside `records` (the records section its positions are
/// relative to; `next_fields` checked them against it).
#[inline(always)]
fn view_at<'a>(records: &'a [u8], fields: &RecordFields) -> RecordView<'a> {
    let field = |(start, len): (usize, usize)| records.get(start..start + len);
    RecordView {
        offset: fields.offset,
        timestamp: fields.timestamp,
        key: fields.key.and_then(field),
        value: fields.value.and_then(field),
        headers: Headers::from_raw(
            field(fields.headers).unwrap_or_default(),
            fields.header_count,
        ),
    }
}

/// The batch at segment position `pos` of `chunk`.
fn parse_at(chunk: &Chunk, pos: u64) -> std::result::Result<Batch<'_>, DecodeError> {
    let rel = usize::try_from(pos.saturating_sub(chunk.start())).unwrap_or(usize::MAX);
    Batch::parse(chunk.bytes().get(rel..).unwrap_or(&[]))
}

impl Iterator for Reader {
    type Item = Result<LogRecord>;

    #[inline]
    fn next(&mut self) -> Option<Result<LogRecord>> {
        let raw = match self.advance()? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(LogRecord {
            chunk: Arc::clone(self.record_chunk()?),
            raw,
        }))
    }
}

/// What a batch about to be read has to do with [`verified`] tables.
enum Tabled {
    /// Nothing: read from its first record.
    No,
    /// Checked whole before: start at the record sought.
    Kept(Arc<BatchTable>),
    /// Its CRC was just checked: walk it once into a table, and start at the record sought.
    Build,
}

/// A record's fields as positions in its chunk.
#[derive(Debug, Clone, Copy)]
struct Raw {
    offset: i64,
    timestamp: i64,
    key: Span,
    value: Span,
    headers: Span,
    header_count: u32,
}

impl Raw {
    /// The fields of `view`, a record inside `bytes`, as positions there.
    #[inline]
    fn of(bytes: &[u8], view: &RecordView<'_>) -> Raw {
        let (headers, header_count) = view.headers().raw();
        Raw {
            offset: view.offset(),
            timestamp: view.timestamp(),
            key: Span::of_option(bytes, view.key()),
            value: Span::of_option(bytes, view.value()),
            headers: Span::of(bytes, headers),
            header_count,
        }
    }

    /// The fields a decoder found in a records area that starts at `records_start`.
    #[inline(always)]
    fn at(records_start: usize, f: &RecordFields) -> Raw {
        let span = |(start, len): (usize, usize)| Span::at(records_start + start, len);
        Raw {
            offset: f.offset,
            timestamp: f.timestamp,
            key: f.key.map_or(Span::NULL, span),
            value: f.value.map_or(Span::NULL, span),
            headers: span(f.headers),
            header_count: f.header_count,
        }
    }

    #[inline]
    fn headers<'a>(&self, chunk: &'a [u8]) -> Headers<'a> {
        Headers::from_raw(
            self.headers.get(chunk).unwrap_or_default(),
            self.header_count,
        )
    }
}
