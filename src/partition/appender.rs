//! The active segment's appender: encodes batches into its write buffer, keeps its index
//! entries, writes buffer and entries to the files, and swaps in the next segment at a roll.
//!
//! It knows nothing of durability (the [`ledger`](super::ledger) decides what is fsynced) nor
//! of who may read what (the writer publishes batches): its state is the active segment's end,
//! as appended, and what of it is still in memory.
//!
//! Under the durable policy it also keeps the `.log` file preallocated ahead of the data with
//! fsynced zeros, and trims them when the segment is finished (see [`PREALLOCATE_BYTES`]).
//! Under the others it reserves the file's blocks ahead of the data instead, leaving its length
//! alone (see [`Appender::reserve`]).

use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::{File, OpenMode};
use crate::error::{Error, Result};
use crate::record::{
    BatchHeader, BatchParams, Compression, EncodeError, EncodedBatch, Record, SingleEncoder,
    encode_batch, encode_compressed_batch,
};
use crate::segment::file_name::FileKind;
use crate::segment::{
    Entry, IndexBuilder, IndexedBatch, OffsetEntry, Segment, SegmentState, TimeEntry,
};

use super::Shared;

/// What writing index entries does with the preallocated room past them: an enum, so call
/// sites say which rather than pass a bare bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexTail {
    /// Leave it, for the entries still to come.
    Keep,
    /// Cut the files to their entries (on roll and close).
    Trim,
}

/// What recovery hands the appender about the active segment.
#[derive(Debug)]
pub(crate) struct ActiveInit {
    pub(crate) builder: IndexBuilder,
    pub(crate) first_batch_timestamp: Option<i64>,
    /// Index entries already in the index files (0 when they must be rewritten).
    pub(crate) offsets_written: usize,
    pub(crate) times_written: usize,
}

/// A count per index: entries held, written or allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PerIndex {
    offsets: usize,
    times: usize,
}

impl PerIndex {
    /// How many entries of each kind `segment.index.bytes` allows.
    fn limits(config: &LogConfig) -> PerIndex {
        let bytes = usize::try_from(config.segment_index_bytes()).unwrap_or(0);
        PerIndex {
            offsets: bytes / OffsetEntry::SIZE,
            times: bytes / TimeEntry::SIZE,
        }
    }

    /// The entries `segment` holds in memory.
    fn held(segment: &Segment) -> Result<PerIndex> {
        segment.with_indexes(|ix| PerIndex {
            offsets: ix.offsets.len(),
            times: ix.times.len(),
        })
    }
}

/// The active segment's two index files, opened for writing.
#[derive(Debug, Clone)]
struct IndexFiles {
    offsets: File,
    times: File,
}

impl IndexFiles {
    fn open(segment: &Segment) -> Result<IndexFiles> {
        let disk = segment.disk();
        Ok(IndexFiles {
            offsets: File::open(disk, segment.path(FileKind::Index), OpenMode::Create)?,
            times: File::open(disk, segment.path(FileKind::TimeIndex), OpenMode::Create)?,
        })
    }

    fn sync_data(&self) -> Result<()> {
        self.offsets.sync_data()?;
        self.times.sync_data()
    }
}

/// Where an appended batch ends in its segment: what publishing it tells readers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchEnd {
    /// The segment's size with the batch.
    pub(crate) end: u64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
}

impl BatchEnd {
    /// Makes the batch (and every one before it in `segment`) visible to readers in this
    /// process: the one way a batch is published. Watchers are woken by the caller, once for
    /// all the batches it publishes.
    pub(crate) fn publish(&self, segment: &Segment, shared: &Shared) {
        segment.publish(SegmentState {
            size: self.end,
            next_offset: self.last_offset + 1,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.last_offset,
        });
        shared
            .next_offset
            .store(self.last_offset + 1, std::sync::atomic::Ordering::Release);
    }
}

/// The write side of the active segment.
#[derive(Debug)]
pub(crate) struct Appender {
    active: Arc<Segment>,
    /// End of the active segment as appended (ahead of its published size while batches wait
    /// for a commit).
    end: u64,
    /// The offset the next append gets.
    next_offset: i64,
    /// Appended bytes of the active segment not yet written to its file.
    tail: Vec<u8>,
    /// Encodes one-record batches from the previous one where it can.
    single: SingleEncoder,
    builder: IndexBuilder,
    first_batch_timestamp: Option<i64>,
    created_ms: i64,
    /// Entries in the in-memory indexes, in the files, and allowed by `segment.index.bytes`.
    entries: PerIndex,
    written: PerIndex,
    limits: PerIndex,
    /// Opened at the first write after open or roll.
    index_files: Option<IndexFiles>,
    /// The index files have room to grow (preallocated since the last trim).
    indexes_grown: bool,
    /// How the `.log` file grows ahead of the data, and how far it may.
    ahead: Ahead,
    /// The `.log` file's length: the data's end plus any zero-filled, fsynced tail.
    allocated: u64,
    /// How far the `.log` file's blocks are reserved (past its length, which stays the data's).
    reserved: u64,
    /// Blocks past the end may be reserved (by this appender, or before a crash): the next
    /// trim releases them.
    release_reserved: bool,
}

impl Appender {
    pub(crate) fn new(config: &LogConfig, active: Arc<Segment>, init: ActiveInit) -> Appender {
        let entries = PerIndex::held(&active).unwrap_or_default();
        active.map_for_growth(u64::try_from(config.segment_bytes()).unwrap_or(0));
        Appender {
            end: active.size(),
            next_offset: active.next_offset(),
            tail: Vec::with_capacity(config.write_buffer_bytes().min(64 << 20)),
            single: SingleEncoder::default(),
            builder: init.builder,
            first_batch_timestamp: init.first_batch_timestamp,
            created_ms: config.clock().now_ms(),
            entries,
            written: PerIndex {
                offsets: init.offsets_written,
                times: init.times_written,
            },
            limits: PerIndex::limits(config),
            index_files: None,
            indexes_grown: false,
            ahead: Ahead::of(config),
            // A writable open cut the file to its last whole batch.
            allocated: active.file_size(),
            reserved: active.file_size(),
            // A crash leaves what was reserved; the first trim lets it go.
            release_reserved: true,
            active,
        }
    }

    /// Takes up a changed `segment.index.bytes` and flush policy.
    pub(crate) fn apply_config(&mut self, config: &LogConfig) {
        self.limits = PerIndex::limits(config);
        self.ahead = Ahead::of(config);
    }

    pub(crate) fn active(&self) -> &Arc<Segment> {
        &self.active
    }

    /// The offset the next append gets.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The buffered bytes of `segment` if it is the active one (empty otherwise).
    pub(crate) fn tail_of(&self, segment: &Arc<Segment>) -> &[u8] {
        if Arc::ptr_eq(&self.active, segment) {
            &self.tail
        } else {
            &[]
        }
    }

    /// Drops the write buffer (a poisoned durable partition: nothing in it was acknowledged).
    pub(crate) fn discard_buffer(&mut self) {
        self.tail.clear();
    }

    /// Whether the index files have room to grow (see [`grow_indexes`](Self::grow_indexes)).
    #[inline]
    pub(crate) fn indexes_grown(&self) -> bool {
        self.indexes_grown
    }

    /// Gives the index files room to grow again after open or a trim. Bytes past the written
    /// entries are stale until overwritten; they are never read (the active segment's indexes
    /// live in memory, and a crash rebuilds them) and are trimmed away on roll and close.
    pub(crate) fn grow_indexes(&mut self, config: &LogConfig) -> Result<()> {
        if self.indexes_grown {
            return Ok(());
        }
        let files = self.index_files()?;
        let bytes = u64::try_from(config.segment_index_bytes()).unwrap_or(0);
        let preallocate = |file: &File, written: usize, size: usize| -> Result<()> {
            let full = (bytes / size as u64 * size as u64).max((written * size) as u64);
            if file.len()? < full {
                file.set_len(full)?;
            }
            Ok(())
        };
        preallocate(&files.offsets, self.written.offsets, OffsetEntry::SIZE)?;
        preallocate(&files.times, self.written.times, TimeEntry::SIZE)?;
        self.indexes_grown = true;
        Ok(())
    }

    /// The index files, opened on first use: the one place they are opened.
    fn index_files(&mut self) -> Result<IndexFiles> {
        if let Some(files) = &self.index_files {
            return Ok(files.clone());
        }
        let files = IndexFiles::open(&self.active)?;
        self.index_files = Some(files.clone());
        Ok(files)
    }

    /// Encodes `records` as one batch at the end of the write buffer and checks it against
    /// `max.message.bytes` and `segment.bytes`. Nothing is appended yet: the caller either
    /// [`accept`](Self::accept)s the batch or [`discard`](Self::discard)s it.
    #[inline(always)]
    pub(crate) fn encode(
        &mut self,
        config: &LogConfig,
        params: &BatchParams,
        records: &[Record<'_>],
        now: i64,
        codec: Compression,
    ) -> Result<EncodedBatch> {
        let encoded = match codec {
            Compression::None => match records {
                [record] => self.single.encode(&mut self.tail, params, record, now),
                _ => encode_batch(&mut self.tail, params, records, now),
            },
            codec => {
                let levels = config.compression_levels();
                encode_compressed_batch(&mut self.tail, params, records, now, codec, levels)
            }
        };
        let encoded = encoded.map_err(|e| match e {
            EncodeError::Empty => Error::EmptyBatch,
            EncodeError::OffsetOutOfRange => Error::OffsetsExhausted,
            EncodeError::UnsupportedCompression(codec) => Error::InvalidConfig {
                key: "compression.type",
                value: codec.name().to_owned(),
                reason: "this build does not include the codec (its cargo feature is off)".into(),
            },
            _ => Error::RecordTooLarge {
                size: i32::MAX as usize + 1,
                at_least: true,
                limit: i32::MAX as usize,
                setting: "the format's 32-bit batch length",
            },
        })?;
        let size = encoded.size as u64;
        for (limit, setting) in [
            (config.max_message_bytes(), "max.message.bytes"),
            (config.segment_bytes(), "segment.bytes"),
        ] {
            if size > u64::try_from(limit).unwrap_or(0) {
                return Err(self.refuse_too_large(&encoded, limit, setting));
            }
        }
        Ok(encoded)
    }

    /// Puts a batch fetched from a Kafka leader at the end of the write buffer, byte for byte
    /// (`header` is its own, decoded). As after [`encode`](Self::encode), the caller then
    /// accepts or discards it.
    pub(crate) fn push_verbatim(&mut self, bytes: &[u8], header: &BatchHeader) -> EncodedBatch {
        self.tail.extend_from_slice(bytes);
        EncodedBatch {
            size: bytes.len(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            first_timestamp: header.base_timestamp,
        }
    }

    /// Whether the active segment holds no batch (appended or buffered).
    pub(crate) fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Discards `encoded`, larger than `limit` of `setting` allows.
    #[cold]
    fn refuse_too_large(
        &mut self,
        encoded: &EncodedBatch,
        limit: i32,
        setting: &'static str,
    ) -> Error {
        self.discard(encoded);
        Error::RecordTooLarge {
            size: encoded.size,
            at_least: false,
            limit: limit as usize,
            setting,
        }
    }

    /// Removes the batch just encoded from the write buffer.
    pub(crate) fn discard(&mut self, batch: &EncodedBatch) {
        self.tail
            .truncate(self.tail.len().saturating_sub(batch.size));
    }

    /// Kafka's `LogSegment.shouldRoll` for appending `batch`: size, time, a full index, or
    /// offsets the segment cannot express. An empty segment never rolls.
    #[inline]
    pub(crate) fn should_roll(&self, config: &LogConfig, batch: &EncodedBatch) -> bool {
        let (size, max_timestamp, last_offset) =
            (batch.size as u64, batch.max_timestamp, batch.last_offset);
        let current = self.end;
        if current == 0 {
            return false;
        }
        let segment_bytes = u64::try_from(config.segment_bytes()).unwrap_or(0);
        let waited = match self.first_batch_timestamp {
            Some(first) if first >= 0 => max_timestamp.saturating_sub(first),
            _ => config.clock().now_ms().saturating_sub(self.created_ms),
        };
        current + size > segment_bytes
            || waited > config.segment_ms()
            || self.entries.offsets >= self.limits.offsets
            || self.entries.times + 1 >= self.limits.times
            || last_offset - self.active.base_offset() > i64::from(i32::MAX)
    }

    /// Writes the buffer to the file, keeping the batch just encoded buffered when the write
    /// fails (earlier batches are published; that one never was). With `limit`, only once the
    /// buffer holds that many bytes.
    #[inline]
    pub(crate) fn write_if_full(&mut self, batch: &EncodedBatch, limit: usize) -> Result<()> {
        if self.tail.len() < limit {
            return Ok(());
        }
        self.write_full(batch)
    }

    #[cold]
    fn write_full(&mut self, batch: &EncodedBatch) -> Result<()> {
        self.write_buffer().inspect_err(|_| self.discard(batch))
    }

    /// Appends the batch just encoded: its index entries, the new end. Returns where it ends.
    #[inline]
    pub(crate) fn accept(&mut self, batch: &EncodedBatch) -> Result<BatchEnd> {
        let segment = &self.active;
        let indexed = IndexedBatch {
            position: self.end,
            size: batch.size as u64,
            last_offset: batch.last_offset,
            max_timestamp: batch.max_timestamp,
        };
        self.builder.observe(&indexed);
        if self.builder.entry_due() {
            let base = segment.base_offset();
            let builder = &mut self.builder;
            self.entries = segment.with_indexes_mut(|ix| {
                builder.add_entry(ix, base, &indexed);
                PerIndex {
                    offsets: ix.offsets.len(),
                    times: ix.times.len(),
                }
            })?;
        }
        self.builder.count(indexed.size);
        self.first_batch_timestamp
            .get_or_insert(batch.max_timestamp);
        self.end = indexed.position + indexed.size;
        self.next_offset = batch.last_offset + 1;
        Ok(BatchEnd {
            end: self.end,
            last_offset: batch.last_offset,
            max_timestamp: batch.max_timestamp,
        })
    }

    /// Takes the batch just encoded out of the buffer, to carry it over a roll.
    pub(crate) fn take_encoded(&mut self, batch: &EncodedBatch) -> Vec<u8> {
        self.tail
            .split_off(self.tail.len().saturating_sub(batch.size))
    }

    /// Puts a batch taken by [`take_encoded`](Self::take_encoded) back, into the new segment's
    /// buffer.
    pub(crate) fn restore_encoded(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
    }

    /// Writes the buffered bytes to the active segment's file, then its new index entries.
    pub(crate) fn write_buffer(&mut self) -> Result<()> {
        // Index entries first: if they fail, the data is not in the file either, so the
        // append that failed leaves nothing a later append could land behind.
        self.write_index_entries(IndexTail::Keep)?;
        if !self.tail.is_empty() {
            let pos = self.active.file_size();
            let log = self.active.log()?;
            let end = pos + self.tail.len() as u64;
            match self.ahead {
                Ahead::Zeros { limit } if end > self.allocated => {
                    self.allocated = preallocate(&log, self.allocated.max(pos), end, limit)?;
                }
                Ahead::Reserve { limit } if end > self.reserved => {
                    self.reserve(&log, pos, end, limit);
                }
                _ => {}
            }
            let segment = &self.active;
            log.write_all_at(&self.tail, pos)?;
            segment.set_file_size(pos + self.tail.len() as u64);
            self.tail.clear();
        }
        Ok(())
    }

    /// Reserves the `.log` file's blocks from the data's end `pos` to cover `end`, a chunk at a
    /// time as [`preallocate`] grows a durable segment, but leaving the file's length (so
    /// readers in other processes and Kafka's tools see nothing new): a write into reserved
    /// blocks skips the filesystem's block allocation, about a quarter of the cost of handing
    /// bytes to the OS. Released by the next [`trim_log`](Self::trim_log). A hint only: when
    /// the filesystem refuses, the segment goes on without it.
    fn reserve(&mut self, log: &File, pos: u64, end: u64, limit: u64) {
        let from = self.reserved.max(pos);
        let target = next_allocation(from, end, limit);
        self.release_reserved = true;
        match log.reserve(from, target - from) {
            Ok(()) => self.reserved = target,
            Err(e) => {
                log::debug!(
                    "{}: blocks not reserved ahead of the data ({e}); writing without",
                    self.active.path(FileKind::Log).display()
                );
                // Not again for this segment.
                self.reserved = limit.max(end);
            }
        }
    }

    /// Writes index entries not yet in the files; with [`IndexTail::Trim`], cuts the files to
    /// their entries.
    fn write_index_entries(&mut self, tail: IndexTail) -> Result<()> {
        let trim = tail == IndexTail::Trim;
        if self.index_files.is_none() && !trim {
            // Not grown: nothing was appended since open or roll, and only a trim has work.
            return Ok(());
        }
        let files = self.index_files()?;
        let written = self.written;
        self.written = self.active.with_indexes(|ix| -> Result<PerIndex> {
            let offsets = ix.offsets.as_bytes();
            if let Some(new) = offsets
                .get(written.offsets * OffsetEntry::SIZE..)
                .filter(|b| !b.is_empty())
            {
                let at = (written.offsets * OffsetEntry::SIZE) as u64;
                files.offsets.write_all_at(new, at)?;
            }
            let stamps = ix.times.as_bytes();
            if let Some(new) = stamps
                .get(written.times * TimeEntry::SIZE..)
                .filter(|b| !b.is_empty())
            {
                files
                    .times
                    .write_all_at(new, (written.times * TimeEntry::SIZE) as u64)?;
            }
            if trim {
                files.offsets.set_len(offsets.len() as u64)?;
                files.times.set_len(stamps.len() as u64)?;
            }
            Ok(PerIndex {
                offsets: ix.offsets.len(),
                times: ix.times.len(),
            })
        })??;
        if trim {
            self.indexes_grown = false; // the files must grow again before the next append
        }
        Ok(())
    }

    /// Writes the buffer, the final time-index entry and the index files trimmed to their
    /// entries, fsynced: the active segment as a clean close leaves it.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.write_buffer()?;
        let base = self.active.base_offset();
        let builder = &self.builder;
        self.entries = self.active.with_indexes_mut(|ix| {
            builder.finish(ix, base);
            PerIndex {
                offsets: ix.offsets.len(),
                times: ix.times.len(),
            }
        })?;
        self.write_index_entries(IndexTail::Trim)?;
        self.trim_log()
    }

    /// Cuts the preallocated zeros off the `.log` file, so it ends at its last batch, and
    /// releases the blocks reserved past it (on roll, close, and when the partition is
    /// dropped).
    pub(crate) fn trim_log(&mut self) -> Result<()> {
        let data = self.active.file_size();
        if self.allocated > data || self.release_reserved {
            self.active.log()?.set_len(data)?;
        }
        self.allocated = data;
        self.reserved = data;
        self.release_reserved = false;
        Ok(())
    }

    /// Fsyncs the index files (after [`finish`](Self::finish), for a clean close).
    pub(crate) fn sync_indexes(&mut self) -> Result<()> {
        self.index_files()?.sync_data()
    }

    /// Seals the active segment (already [`finish`](Self::finish)ed) and makes `segment`, new
    /// and empty, the active one. Returns the old one.
    pub(crate) fn start(&mut self, config: &LogConfig, segment: Arc<Segment>) -> Arc<Segment> {
        let base = segment.base_offset();
        let old = std::mem::replace(&mut self.active, segment);
        old.seal();
        self.end = 0;
        self.builder = IndexBuilder::new(config.index_interval_bytes(), base);
        self.first_batch_timestamp = None;
        self.created_ms = config.clock().now_ms();
        self.entries = PerIndex::default();
        self.written = PerIndex::default();
        self.index_files = None;
        self.indexes_grown = false;
        self.allocated = 0;
        self.reserved = 0;
        self.release_reserved = false;
        old
    }
}

/// The most the active segment's `.log` grows by at a time under the durable policy, as
/// Kafka's `log.preallocate` grows a segment ahead of its data: zeros written and fsynced once
/// per chunk, so the fsync of each group commit writes data blocks into a file whose size and
/// blocks are already durable (an `fdatasync` with no metadata to commit). Chunks start at
/// [`FIRST_PREALLOCATION_BYTES`] and double up to this, never past `segment.bytes` (a batch
/// that does not fit gets exactly its room), so small partitions stay small. Written zeros,
/// not `fallocate`: an allocated but unwritten extent still costs a metadata commit at its
/// first write. The zeros are trimmed at roll, at close and when the partition is dropped;
/// after a crash, recovery cuts them as it cuts any torn tail (a zero-filled tail is space
/// never written). Readers never reach them: in this process they stop at the published size,
/// in other processes at the last whole batch (and the published durable end).
pub(crate) const PREALLOCATE_BYTES: u64 = 4 << 20;

/// The first chunk preallocated in a segment.
const FIRST_PREALLOCATION_BYTES: u64 = 64 << 10;

/// Zeros written in one call while preallocating.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// How the active segment's `.log` grows ahead of its data, up to `limit` (`segment.bytes`).
#[derive(Debug, Clone, Copy)]
enum Ahead {
    /// Durable: fsynced zeros, so a commit's fsync has no size change to commit (see
    /// [`PREALLOCATE_BYTES`]).
    Zeros { limit: u64 },
    /// Not durable: blocks reserved, the length left at the data's end (see
    /// [`Appender::reserve`]).
    Reserve { limit: u64 },
}

impl Ahead {
    fn of(config: &LogConfig) -> Ahead {
        let limit = u64::try_from(config.segment_bytes()).unwrap_or(0);
        if config.is_durable() {
            Ahead::Zeros { limit }
        } else {
            Ahead::Reserve { limit }
        }
    }
}

/// Where the next chunk of room grown from `allocated` to cover `end` ends: twice what is
/// allocated, between [`FIRST_PREALLOCATION_BYTES`] and [`PREALLOCATE_BYTES`] more, but no
/// further than `limit` unless `end` is past it.
fn next_allocation(allocated: u64, end: u64, limit: u64) -> u64 {
    let chunk = allocated.clamp(FIRST_PREALLOCATION_BYTES, PREALLOCATE_BYTES);
    (allocated + chunk).min(limit).max(end)
}

/// Extends `log` from `allocated` with fsynced zeros to cover `end`, to
/// [`next_allocation`]. Returns the new length.
fn preallocate(log: &File, allocated: u64, end: u64, limit: u64) -> Result<u64> {
    let target = next_allocation(allocated, end, limit);
    let mut pos = allocated;
    while pos < target {
        let n = (target - pos).min(ZEROS.len() as u64);
        // n <= ZEROS.len(), so the slice is in bounds.
        log.write_all_at(ZEROS.get(..n as usize).unwrap_or(&ZEROS[..]), pos)?;
        pos += n;
    }
    log.sync_data()?;
    Ok(target)
}
