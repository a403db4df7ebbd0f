//! Reading records back: [`Reader`] walks batches across segments and yields [`LogRecord`]s
//! that borrow their bytes from a shared chunk of the segment (its mapping, or one buffer read
//! per chunk), so reading allocates nothing per record.

use std::fmt;
use std::sync::Arc;

use crate::error::{Corruption, Error, Result};
use crate::record::{
    BATCH_HEADER_LEN, Batch, BatchHeader, DecodeError, DecodeErrorKind, Headers, RecordCursor,
    Records,
};
use crate::segment::file_name::FileKind;
use crate::segment::{Chunk, Segment};

use super::Shared;

/// A record read from a partition. It shares the bytes it was read from (no copy); keep
/// [`to_owned_record`](LogRecord::to_owned_record) for long-lived storage, since a `LogRecord`
/// keeps its whole chunk alive.
#[derive(Clone)]
pub struct LogRecord {
    chunk: Arc<Chunk>,
    offset: i64,
    timestamp: i64,
    key: Option<Span>,
    value: Option<Span>,
    headers: Span,
    header_count: u32,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// Where `part` lies inside `whole` (`part` is a subslice of it).
    fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        Span {
            start,
            len: part.len(),
        }
    }

    fn get<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(self.start..self.start + self.len).unwrap_or(&[])
    }
}

impl LogRecord {
    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The effective timestamp (the batch's append time for LogAppendTime).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, or `None` for null.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.map(|s| s.get(self.chunk.bytes()))
    }

    /// The value, or `None` for null (a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.value.map(|s| s.get(self.chunk.bytes()))
    }

    /// The headers in stored order, repeated keys included.
    pub fn headers(&self) -> Headers<'_> {
        Headers::from_raw(self.headers.get(self.chunk.bytes()), self.header_count)
    }

    /// A copy that owns its bytes.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
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
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

/// A record that owns its key, value and headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedHeader {
    /// Header key.
    pub key: Vec<u8>,
    /// Header value, or `None` for null.
    pub value: Option<Vec<u8>>,
}

/// The batch being walked: where it sits in the chunk, and how far into it we are.
#[derive(Debug, Clone, Copy)]
struct Current {
    start: usize,
    size: usize,
    header: BatchHeader,
    cursor: RecordCursor,
    /// Segment position of the batch.
    position: u64,
}

/// An iterator over a partition's records from an offset to the end of the log.
///
/// It returns `None` at the current end of the log; calling [`next`](Iterator::next) again
/// later returns records appended since. After an `Err` for damaged data the reader is
/// finished; after [`Error::UnsupportedCompression`] it moves on past that batch.
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
    /// `pos` came from an index lookup: a bad batch there points at the index first.
    index_hint: bool,
    done: bool,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("segment", &self.segment.base_offset())
            .field("position", &self.pos)
            .field("min_offset", &self.min_offset)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of `segment` from the batch holding `seek` (found through the offset index),
    /// returning records at or after `from`.
    pub(super) fn new(
        shared: Arc<Shared>,
        segment: Arc<Segment>,
        seek: i64,
        from: i64,
        budget: Option<u64>,
        min_timestamp: i64,
        include_control: bool,
    ) -> Result<Reader> {
        let pos = segment.position_for(seek)?;
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
            index_hint: pos > 0,
            done: false,
        })
    }

    /// The offset of the next record this reader would return, at least.
    pub fn position(&self) -> i64 {
        self.min_offset
    }

    fn next_record(&mut self) -> Result<Option<LogRecord>> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                let Some(chunk) = self.chunk.as_ref() else {
                    self.current = None;
                    continue;
                };
                let bytes = chunk.bytes();
                let batch = bytes.get(cur.start..cur.start + cur.size).unwrap_or(&[]);
                let mut records = Records::resume(batch, cur.header, cur.cursor);
                let item = records.next();
                cur.cursor = records.cursor();
                match item {
                    Some(Ok(view)) => {
                        if view.offset() < self.min_offset {
                            continue;
                        }
                        self.min_offset = view.offset() + 1;
                        let (headers, header_count) = view.headers().raw();
                        return Ok(Some(LogRecord {
                            chunk: Arc::clone(chunk),
                            offset: view.offset(),
                            timestamp: view.timestamp(),
                            key: view.key().map(|k| Span::of(bytes, k)),
                            value: view.value().map(|v| Span::of(bytes, v)),
                            headers: Span::of(bytes, headers),
                            header_count,
                        }));
                    }
                    Some(Err(e)) => {
                        let position = cur.position;
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
            if self.pos >= self.segment.size() {
                if !self.segment.is_sealed() {
                    return Ok(false);
                }
                if self.pos < self.segment.size() {
                    continue; // it grew before it was sealed
                }
                let Some(next) = self.shared.segment_after(self.segment.base_offset()) else {
                    return Ok(false);
                };
                self.segment = next;
                (self.pos, self.chunk, self.index_hint) = (0, None, false);
                continue;
            }
            let mut chunk = self.chunk_at(BATCH_HEADER_LEN)?;
            let mut parsed = parse_at(&chunk, self.pos);
            if let Err(DecodeError {
                kind: DecodeErrorKind::Truncated { needed, .. },
                ..
            }) = parsed
            {
                let end = self.pos + needed as u64;
                if end <= self.segment.size() && chunk.end() < end {
                    // The batch is published whole but this chunk stops short: widen it once.
                    self.chunk = None;
                    chunk = self.chunk_at(needed)?;
                    parsed = parse_at(&chunk, self.pos);
                }
            }
            let checked = parsed.and_then(|b| b.verify_crc().map(|()| b));
            let batch = match checked {
                Ok(batch) => batch,
                Err(_) if self.index_hint => {
                    // An index is a cache: distrust it before the data.
                    self.segment.rebuild_indexes()?;
                    self.pos = self.segment.position_for(self.min_offset)?;
                    (self.chunk, self.index_hint) = (None, false);
                    continue;
                }
                Err(e) => return Err(self.corrupt(self.pos, e)),
            };
            let header = *batch.header();
            let size = batch.size();
            let position = self.pos;
            self.pos += size as u64;
            self.index_hint = false;
            if header.next_offset() <= self.min_offset
                || (header.is_control() && !self.include_control)
                || header.max_timestamp < self.min_timestamp
            {
                continue;
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
            if let Err(e) = batch.records() {
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
            let start = (position - chunk.start()) as usize;
            self.current = Some(Current {
                start,
                size,
                header,
                cursor: RecordCursor::START,
                position,
            });
            return Ok(true);
        }
    }

    /// A chunk holding the bytes at `pos`, at least `min_len` of them where published.
    fn chunk_at(&mut self, min_len: usize) -> Result<Arc<Chunk>> {
        if let Some(chunk) = &self.chunk {
            let covered = self.pos >= chunk.start() && self.pos + min_len as u64 <= chunk.end();
            if covered
                || (self.pos >= chunk.start()
                    && chunk.end() >= self.segment.size()
                    && self.pos < chunk.end())
            {
                return Ok(Arc::clone(chunk));
            }
        }
        let chunk = Arc::new(self.shared.fetch(&self.segment, self.pos, min_len)?);
        self.chunk = Some(Arc::clone(&chunk));
        Ok(chunk)
    }
}

/// The batch at segment position `pos` of `chunk`.
fn parse_at(chunk: &Chunk, pos: u64) -> std::result::Result<Batch<'_>, DecodeError> {
    let rel = usize::try_from(pos.saturating_sub(chunk.start())).unwrap_or(usize::MAX);
    Batch::parse(chunk.bytes().get(rel..).unwrap_or(&[]))
}

impl Iterator for Reader {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Result<LogRecord>> {
        if self.done {
            return None;
        }
        self.next_record().transpose()
    }
}
