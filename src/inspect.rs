//! Read-only inspection of partition files: batch headers, records, index entries, CRC results,
//! and a verifier that checks a partition directory the way Kafka's format promises it is.
//!
//! Nothing here writes, locks or memory-maps a file: everything is read through the crate's
//! I/O seam, read-only, `.log` files with positioned reads in bounded chunks, index files
//! whole. Directories are listed the one way partitions open them, and offsets are checked by
//! the rule recovery and readers share. Another process may be appending to (or shortening) the files meanwhile;
//! a file that ends earlier than it did reads as ending there. Arbitrary bytes never panic:
//! what is wrong with them is data in the answer, not an [`Error`].
//!
//! * **Batches** ([`LogFileReader`], [`batches`]): every batch of a `.log` file in order, with
//!   its byte [`position`](BatchInfo::position), decoded [`BatchHeader`] and CRC-32C result
//!   ([`BatchInfo`]), its records ([`ScannedBatch::records`] borrows them,
//!   [`ScannedBatch::owned_records`] copies them; compressed batches say which codec), and, if the
//!   file does not end on a batch boundary, what its tail holds ([`TailProblem`]). A batch whose
//!   CRC does not match is still listed (its framing is intact) and reading goes on after it.
//! * **Indexes** ([`offset_index_entries`], [`time_index_entries`]): the entries of a `.index`
//!   or `.timeindex` file with absolute offsets ([`IndexFile`]), and any bytes after the last
//!   whole entry.
//! * **Files** ([`list_segments`]): the segments of a partition directory, ascending.
//! * **Verification** ([`verify_partition`], [`verify_segment`]): read-only checks of every
//!   batch's framing, CRC and records, of offsets (rising from batch to batch and segment to
//!   segment, inside each segment's relative range), and of both indexes against the data. What
//!   is wrong is a list of [`Problem`]s, each with its file, byte position and
//!   [`ProblemKind`]. A torn tail at the end of the last segment (what a crash or a running
//!   writer leaves) is reported but is no problem; see [`verify_segment`] for the rules.
//!
//! ```
//! use topiclog::inspect::{self, BatchRecords};
//! use topiclog::record::Record;
//! use topiclog::Partition;
//! use topiclog::config::LogConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let log = Partition::open(dir.path(), LogConfig::default())?;
//! log.append(Record::keyed(b"k", b"v"))?;
//! log.append_batch(&[Record::new(b"a"), Record::new(b"b")])?;
//! log.close()?;
//!
//! // `verify`: every batch, offset and index entry checked, nothing written.
//! let report = inspect::verify_partition(dir.path())?;
//! assert!(report.is_ok(), "{:?}", report.problems);
//! assert_eq!((report.segments, report.batches, report.records), (1, 2, 3));
//!
//! // `dump`: batch headers, records and index entries, segment by segment.
//! for segment in inspect::list_segments(dir.path())? {
//!     let mut reader = inspect::LogFileReader::open(&segment.log)?;
//!     while let Some(batch) = reader.next_batch()? {
//!         let info = batch.info();
//!         println!(
//!             "baseOffset: {} lastOffset: {} position: {} crc valid: {}",
//!             info.header.base_offset,
//!             info.header.last_offset(),
//!             info.position,
//!             info.crc_valid
//!         );
//!         if let BatchRecords::Decoded(records) = batch.owned_records() {
//!             for record in records {
//!                 println!("| offset: {} value: {:?}", record.offset, record.value);
//!             }
//!         }
//!     }
//!     assert!(reader.tail().is_none());
//!     if let Some(path) = &segment.time_index {
//!         for entry in inspect::time_index_entries(path, None)?.entries {
//!             println!("timestamp: {} offset: {}", entry.timestamp, entry.offset);
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::disk::{File, OpenMode, ReadOnlyDisk};
use crate::error::{Error, IoOp, Result};
use crate::record::{
    Batch, BatchHeader, Compression, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES, DecodeError,
    DecodeErrorKind, NO_TIMESTAMP, Records,
};
pub use crate::segment::IndexFault;
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::walk::{Frame, Walker, Window};
use crate::segment::{Entry, OffsetEntry, TimeEntry, offset_index, time_index};
use crate::{OwnedHeader, OwnedRecord};

/// Position of the CRC field in a batch header.
const CRC_POS: usize = 17;

// ---------------------------------------------------------------------------------------------
// Segment files
// ---------------------------------------------------------------------------------------------

/// The files of one segment in a partition directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentFiles {
    /// The base offset, from the file name.
    pub base_offset: i64,
    /// The `<base>.log` file.
    pub log: PathBuf,
    /// The `<base>.index` file, if present.
    pub index: Option<PathBuf>,
    /// The `<base>.timeindex` file, if present.
    pub time_index: Option<PathBuf>,
    /// The `<base>.txnindex` file (aborted transactions), if present.
    pub txn_index: Option<PathBuf>,
}

/// The segments of a partition directory, ascending by base offset: one for each
/// `<20-digit base offset>.log` file.
///
/// Other files are left out: index files without a `.log` (Kafka deletes them at load), files
/// with a temporary suffix (`.deleted`, `.cleaned`, `.swap`), checkpoints, markers and
/// anything else.
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be listed.
pub fn list_segments(dir: impl AsRef<Path>) -> Result<Vec<SegmentFiles>> {
    let dir = dir.as_ref();
    // The one listing partitions open with, changing nothing.
    let bases = crate::partition::list_segment_bases(&crate::disk::ReadOnlyDisk, dir)?;
    let present = |base, kind| {
        let path = file_name::file_path(dir, base, kind);
        path.is_file().then_some(path)
    };
    Ok(bases
        .into_iter()
        .map(|base| SegmentFiles {
            base_offset: base,
            log: file_name::file_path(dir, base, FileKind::Log),
            index: present(base, FileKind::Index),
            time_index: present(base, FileKind::TimeIndex),
            txn_index: present(base, FileKind::TxnIndex),
        })
        .collect())
}

/// The entries of a `.txnindex` file (Kafka's transaction index: one per aborted
/// transaction whose ABORT marker is in the segment), as far as they decode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnIndexFile {
    /// The entries before the first that is refused.
    pub entries: Vec<crate::partition::AbortedTxn>,
    /// What is wrong with the file, if anything (a partial entry, an unknown version, markers
    /// out of order or below the base offset), with the byte position.
    pub problem: Option<String>,
}

/// Reads a `.txnindex` file; `base_offset` defaults to the one in its name. Entries are
/// checked against the base offset only (the segment's end is not known here).
///
/// # Errors
/// [`Error::NotASegmentFile`] without a base offset, [`Error::Io`].
pub fn txn_index_entries(path: impl AsRef<Path>, base_offset: Option<i64>) -> Result<TxnIndexFile> {
    let path = path.as_ref();
    let base = base_or_name(path, base_offset)?;
    let bytes = read_whole(path)?;
    Ok(
        match crate::segment::txn_index::decode(&bytes, base, i64::MAX) {
            Ok(entries) => TxnIndexFile {
                entries,
                problem: None,
            },
            Err(fault) => {
                let whole = usize::try_from(fault.position).unwrap_or(0);
                let entries = crate::segment::txn_index::decode(
                    bytes.get(..whole).unwrap_or_default(),
                    base,
                    i64::MAX,
                )
                .unwrap_or_default();
                TxnIndexFile {
                    entries,
                    problem: Some(fault.to_string()),
                }
            }
        },
    )
}

/// The base offset in a segment file's name.
fn base_offset_of(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    file_name::parse(name).map(|p| p.base_offset)
}

// ---------------------------------------------------------------------------------------------
// Index files
// ---------------------------------------------------------------------------------------------

/// One `.index` entry: `(relative offset, position)` as stored, and the absolute offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OffsetIndexEntry {
    /// The segment's base offset plus the relative offset.
    pub offset: i64,
    /// The stored relative offset (`offset - base offset`).
    pub relative_offset: i32,
    /// The stored byte position of a batch in the `.log` file (an `i32`, as Kafka stores it).
    pub position: i32,
}

/// One `.timeindex` entry: `(timestamp, relative offset)` as stored, and the absolute offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TimeIndexEntry {
    /// The largest timestamp up to and including the batch that holds `offset`.
    pub timestamp: i64,
    /// The segment's base offset plus the relative offset.
    pub offset: i64,
    /// The stored relative offset (`offset - base offset`).
    pub relative_offset: i32,
}

/// The entries of an index file, in stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexFile<E> {
    /// The file.
    pub path: PathBuf,
    /// The base offset the relative offsets were added to.
    pub base_offset: i64,
    /// The file's length in bytes.
    pub file_len: u64,
    /// Every whole entry, zero-filled ones included.
    pub entries: Vec<E>,
    /// Bytes after the last whole entry: non-zero when the length is not a multiple of the
    /// entry size (8 for `.index`, 12 for `.timeindex`), which Kafka calls corrupt.
    pub partial_bytes: u64,
}

/// The entries of a `.index` file.
///
/// `base_offset` is added to each relative offset; `None` takes it from the file name
/// (`<20-digit base offset>.index`).
///
/// # Errors
///
/// [`Error::NotASegmentFile`] if `base_offset` is `None` and the file name holds no base
/// offset; [`Error::Io`] if the file cannot be read.
pub fn offset_index_entries(
    path: impl AsRef<Path>,
    base_offset: Option<i64>,
) -> Result<IndexFile<OffsetIndexEntry>> {
    let path = path.as_ref();
    let base = base_or_name(path, base_offset)?;
    let bytes = read_whole(path)?;
    Ok(decode_index(path, base, &bytes, offset_entry))
}

/// The entries of a `.timeindex` file.
///
/// `base_offset` is added to each relative offset; `None` takes it from the file name
/// (`<20-digit base offset>.timeindex`).
///
/// # Errors
///
/// [`Error::NotASegmentFile`] if `base_offset` is `None` and the file name holds no base
/// offset; [`Error::Io`] if the file cannot be read.
pub fn time_index_entries(
    path: impl AsRef<Path>,
    base_offset: Option<i64>,
) -> Result<IndexFile<TimeIndexEntry>> {
    let path = path.as_ref();
    let base = base_or_name(path, base_offset)?;
    let bytes = read_whole(path)?;
    Ok(decode_index(path, base, &bytes, time_entry))
}

fn base_or_name(path: &Path, base_offset: Option<i64>) -> Result<i64> {
    match base_offset.or_else(|| base_offset_of(path)) {
        Some(base) => Ok(base),
        None => Err(Error::NotASegmentFile {
            path: path.to_path_buf(),
        }),
    }
}

fn offset_entry(e: OffsetEntry, base: i64) -> OffsetIndexEntry {
    OffsetIndexEntry {
        offset: base.saturating_add(i64::from(e.relative_offset)),
        relative_offset: e.relative_offset,
        position: e.position,
    }
}

impl OffsetIndexEntry {
    /// The entry as stored.
    fn stored(&self) -> OffsetEntry {
        OffsetEntry {
            relative_offset: self.relative_offset,
            position: self.position,
        }
    }
}

impl TimeIndexEntry {
    /// The entry as stored.
    fn stored(&self) -> TimeEntry {
        TimeEntry {
            timestamp: self.timestamp,
            relative_offset: self.relative_offset,
        }
    }
}

fn time_entry(e: TimeEntry, base: i64) -> TimeIndexEntry {
    TimeIndexEntry {
        timestamp: e.timestamp,
        offset: base.saturating_add(i64::from(e.relative_offset)),
        relative_offset: e.relative_offset,
    }
}

fn decode_index<E: Entry, T>(
    path: &Path,
    base: i64,
    bytes: &[u8],
    convert: impl Fn(E, i64) -> T,
) -> IndexFile<T> {
    let chunks = bytes.chunks_exact(E::SIZE);
    let partial_bytes = chunks.remainder().len() as u64;
    IndexFile {
        path: path.to_path_buf(),
        base_offset: base,
        file_len: bytes.len() as u64,
        // Every chunk holds a whole entry, so `decode` never ends the iteration early.
        entries: chunks
            .map_while(E::decode)
            .map(|e| convert(e, base))
            .collect(),
        partial_bytes,
    }
}

/// An index file's entries, or `None` if the file does not exist.
fn read_index_if_present<E: Entry, T>(
    path: &Path,
    base: i64,
    convert: impl Fn(E, i64) -> T,
) -> Result<Option<IndexFile<T>>> {
    match read_whole(path) {
        Ok(bytes) => Ok(Some(decode_index(path, base, &bytes, convert))),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A whole file, read through the I/O seam without changing anything.
fn read_whole(path: &Path) -> Result<Vec<u8>> {
    File::open(&ReadOnlyDisk, path.to_path_buf(), OpenMode::Read)?.read_all()
}

// ---------------------------------------------------------------------------------------------
// Batches of a .log file
// ---------------------------------------------------------------------------------------------

/// One batch of a `.log` file: where it is, its header, and whether its CRC matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// Byte position of the batch in the file.
    pub position: u64,
    /// The decoded 61-byte header (its `crc` field is the stored CRC).
    pub header: BatchHeader,
    /// CRC-32C computed over bytes 21..end of the batch.
    pub computed_crc: u32,
    /// Whether the stored CRC equals the computed one.
    pub crc_valid: bool,
}

impl BatchInfo {
    /// The batch's size in bytes (`batchLength + 12`).
    pub fn size(&self) -> u64 {
        self.header.size() as u64
    }

    /// The byte position after the batch.
    pub fn end(&self) -> u64 {
        self.position.saturating_add(self.size())
    }
}

/// What a `.log` file holds after its last whole batch, when it does not end on a batch
/// boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailProblem {
    /// Byte position where no batch could be read.
    pub position: u64,
    /// Bytes from `position` to the end of the file.
    pub len: u64,
    /// What the bytes look like.
    pub kind: TailKind,
    /// Why no batch could be read; its position is relative to `position`.
    pub error: DecodeError,
}

impl TailProblem {
    /// Whether this is what an interrupted append leaves: a last batch that runs past the end
    /// of the file, zeros, or an unfinished batch followed by zeros. Recovery cuts a torn tail; anywhere but at the end of a
    /// partition's last segment it means data was lost.
    pub fn is_torn(&self) -> bool {
        matches!(
            self.kind,
            TailKind::Truncated | TailKind::ZeroFilled | TailKind::Unfinished
        )
    }
}

impl fmt::Display for TailProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TailKind::Truncated => write!(
                f,
                "torn tail: a batch runs past the end of the file ({} bytes left: {})",
                self.len, self.error
            ),
            TailKind::ZeroFilled => write!(f, "torn tail: {} zero bytes", self.len),
            TailKind::Unfinished => write!(
                f,
                "torn tail: an unfinished batch followed by zeros ({} bytes: {})",
                self.len, self.error
            ),
            TailKind::Invalid => write!(
                f,
                "{} bytes that hold no valid batch: {}",
                self.len, self.error
            ),
        }
    }
}

/// The shape of a [`TailProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TailKind {
    /// A batch (or its header) starts but the file ends before it does: a torn append.
    Truncated,
    /// Every remaining byte is zero: space allocated but never written.
    ZeroFilled,
    /// A last batch whose CRC fails, followed only by zeros: an append torn inside
    /// preallocated space. Only the verifier reports this (a [`LogFileReader`] returns the
    /// batch, then a [`ZeroFilled`](TailKind::ZeroFilled) tail).
    Unfinished,
    /// Bytes that are no batch (a bad magic byte or length, say) and not all zero: damage.
    Invalid,
}

impl fmt::Display for TailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TailKind::Truncated => "truncated batch",
            TailKind::ZeroFilled => "zero-filled",
            TailKind::Unfinished => "unfinished append",
            TailKind::Invalid => "invalid bytes",
        })
    }
}

/// The records of one batch, copied out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchRecords {
    /// Every record of the batch (decompressed first if it is compressed).
    Decoded(Vec<OwnedRecord>),
    /// The batch is compressed with a codec this build does not decompress; its framing and
    /// CRC are still checked, and the header's `records_count` says how many records it holds.
    Compressed(Compression),
    /// The records do not decode: those before the fault, and the fault (its position is
    /// relative to the batch). An unassigned codec id (5-7) is such a fault.
    Invalid {
        /// Records decoded before the fault.
        records: Vec<OwnedRecord>,
        /// What is wrong, at which byte of the batch.
        error: DecodeError,
    },
}

impl fmt::Display for BatchRecords {
    /// `3 records`, `lz4-compressed, not decoded` or `2 records, then <the fault>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchRecords::Decoded(records) => write!(f, "{} records", records.len()),
            BatchRecords::Compressed(codec) => write!(f, "{codec}-compressed, not decoded"),
            BatchRecords::Invalid { records, error } => {
                write!(f, "{} records, then {error}", records.len())
            }
        }
    }
}

/// A batch just read by a [`LogFileReader`], borrowing the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch<'a> {
    info: BatchInfo,
    batch: Batch<'a>,
}

impl<'a> ScannedBatch<'a> {
    /// Position, header and CRC result.
    pub fn info(&self) -> &BatchInfo {
        &self.info
    }

    /// The batch's bytes, parsed.
    pub fn batch(&self) -> &Batch<'a> {
        &self.batch
    }

    /// The records, decoded lazily without copying (see [`Batch::records`]).
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::UnsupportedCompression`] for a compressed batch,
    /// [`DecodeErrorKind::UnknownCompression`] for codec ids 5-7; the iterator then reports
    /// faults in the records themselves.
    pub fn records(&self) -> Result<Records<'a>, DecodeError> {
        self.batch.records()
    }

    /// The records, copied; a compressed batch is decompressed (up to
    /// [`DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES`]), or says which codec it uses when this build
    /// leaves that codec out.
    pub fn owned_records(&self) -> BatchRecords {
        let mut buf = Vec::new();
        let records = match self
            .batch
            .records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)
        {
            Ok(records) => records,
            Err(e) => {
                return match e.kind {
                    DecodeErrorKind::UnsupportedCompression(codec) => {
                        BatchRecords::Compressed(codec)
                    }
                    _ => BatchRecords::Invalid {
                        records: Vec::new(),
                        error: e,
                    },
                };
            }
        };
        let mut out = Vec::new();
        for record in records {
            match record {
                Ok(r) => out.push(OwnedRecord {
                    offset: r.offset(),
                    timestamp: r.timestamp(),
                    key: r.key().map(<[u8]>::to_vec),
                    value: r.value().map(<[u8]>::to_vec),
                    headers: r
                        .headers()
                        .map(|h| OwnedHeader {
                            key: h.key.to_vec(),
                            value: h.value.map(<[u8]>::to_vec),
                        })
                        .collect(),
                }),
                Err(error) => {
                    return BatchRecords::Invalid {
                        records: out,
                        error,
                    };
                }
            }
        }
        BatchRecords::Decoded(out)
    }
}

/// Reads a `.log` file batch by batch with `pread`, in bounded memory (a 256 KiB window, or
/// one batch if larger).
///
/// Each batch's framing is checked and its CRC computed; a batch whose CRC does not match is
/// returned with [`BatchInfo::crc_valid`] false and reading goes on after it, since its length
/// still frames it. Reading stops at the first position where no batch can be framed; if that
/// is not the end of the file, [`tail`](LogFileReader::tail) says what is there.
#[derive(Debug)]
pub struct LogFileReader {
    path: PathBuf,
    file_len: u64,
    walker: Walker<'static>,
    tail: Option<TailProblem>,
    done: bool,
}

impl LogFileReader {
    /// Opens a `.log` file for reading (any name will do).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be opened or its length read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&ReadOnlyDisk, path.clone(), OpenMode::Read)?;
        let file_len = file.len()?;
        Ok(LogFileReader {
            path,
            file_len,
            walker: Walker::new(Window::new(file, None, file_len), 0),
            tail: None,
            done: false,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Byte position of the next batch: after the last one returned.
    pub fn position(&self) -> u64 {
        self.walker.position()
    }

    /// Once reading has stopped: what follows the last batch, if the file does not end there.
    pub fn tail(&self) -> Option<&TailProblem> {
        self.tail.as_ref()
    }

    /// The next batch, or `None` at the end of the file or where no batch can be framed (then
    /// see [`tail`](LogFileReader::tail)).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a read fails. Bad bytes are never an error.
    pub fn next_batch(&mut self) -> Result<Option<ScannedBatch<'_>>> {
        if self.done {
            return Ok(None);
        }
        let stop = match self.walker.frame()? {
            Frame::Batch { position, size } => {
                let Some(batch) = self.walker.framed(position, size) else {
                    self.done = true; // unreachable: `frame` parsed these very bytes
                    return Ok(None);
                };
                let computed_crc = batch.compute_crc();
                let info = BatchInfo {
                    position,
                    header: *batch.header(),
                    computed_crc,
                    crc_valid: computed_crc == batch.header().crc,
                };
                return Ok(Some(ScannedBatch { info, batch }));
            }
            Frame::End => None,
            Frame::Stop { position, error } => Some((position, error)),
        };
        self.done = true;
        if let Some((position, error)) = stop {
            self.stop(position, error)?;
        }
        Ok(None)
    }

    /// Records what lies at `pos`, where no batch could be framed.
    fn stop(&mut self, pos: u64, error: DecodeError) -> Result<()> {
        let window = self.walker.window();
        let zeros = window.all_zero_from(pos)?;
        let kind = if zeros {
            TailKind::ZeroFilled
        } else if matches!(error.kind, DecodeErrorKind::Truncated { .. }) {
            TailKind::Truncated
        } else {
            TailKind::Invalid
        };
        let len = window.end().saturating_sub(pos);
        if len > 0 {
            self.tail = Some(TailProblem {
                position: pos,
                len,
                kind,
                error,
            });
        }
        Ok(())
    }
}

/// Every batch of a `.log` file, without its records (see [`batches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogFileBatches {
    /// The file.
    pub path: PathBuf,
    /// The file's length when it was opened.
    pub file_len: u64,
    /// Every batch that could be framed, in file order, bad CRCs included.
    pub batches: Vec<BatchInfo>,
    /// What follows the last batch, if the file does not end there.
    pub tail: Option<TailProblem>,
}

/// Position, header and CRC result of every batch of a `.log` file, and its tail.
///
/// This collects one [`BatchInfo`] per batch; to see records, or to walk a large file in
/// bounded memory, use a [`LogFileReader`].
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or read. Bad bytes are never an error.
pub fn batches(path: impl AsRef<Path>) -> Result<LogFileBatches> {
    let mut reader = LogFileReader::open(path)?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch()? {
        batches.push(batch.info);
    }
    Ok(LogFileBatches {
        path: reader.path.clone(),
        file_len: reader.file_len,
        batches,
        tail: reader.tail.take(),
    })
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Where a segment sits in its partition, which decides what its files may hold.
///
/// Exhaustive on purpose: a partition has one active segment and sealed ones, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentRole {
    /// Not the last segment: complete, and its indexes trimmed to their entries.
    Sealed,
    /// The last (active) segment: a writer may be appending to it, or may have stopped
    /// mid-append. A torn tail of its `.log` and a zero-filled (preallocated) tail of its index
    /// files are allowed.
    Active,
}

impl fmt::Display for SegmentRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentRole::Sealed => "sealed",
            SegmentRole::Active => "active",
        })
    }
}

/// One thing wrong with a partition's files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte position in that file: of the batch for `.log` problems, of the entry for index
    /// problems, 0 for a segment as a whole.
    pub position: u64,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.path.display(),
            self.position,
            self.kind
        )
    }
}

/// What a [`Problem`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No batch can be framed here (a bad magic byte or length, say) and the bytes are not a
    /// torn tail: nothing after this position in the file can be read. The error's position is
    /// relative to the problem's.
    BadBatch(DecodeError),
    /// A torn tail (see [`TailProblem::is_torn`]). A problem everywhere but at the end of the
    /// last segment, where [`VerifyReport::torn_tail`] reports it instead.
    TornTail(TailProblem),
    /// The batch's stored CRC-32C does not match its bytes. Its offsets and timestamps are not
    /// trusted; reading goes on after it.
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over bytes 21..end of the batch.
        computed: u32,
    },
    /// The records of an uncompressed batch with a valid CRC do not decode (or the codec id is
    /// unassigned). The error's position is relative to the batch.
    BadRecords(DecodeError),
    /// A batch starts below its segment's base offset.
    BelowSegmentBase {
        /// The batch's base offset.
        base_offset: i64,
        /// The segment's base offset.
        segment_base: i64,
    },
    /// A batch's base offset is not above the previous batch's last offset.
    OffsetOutOfOrder {
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
        /// The smallest base offset it could have: the previous batch's last offset plus 1.
        expected_at_least: i64,
    },
    /// A batch's last offset is more than `i32::MAX` above its segment's base offset, so it
    /// cannot be indexed.
    RelativeOffsetOverflow {
        /// The segment's base offset.
        segment_base: i64,
        /// The batch's last offset.
        last_offset: i64,
    },
    /// A segment's base offset is not above every offset of the previous segment.
    SegmentOverlap {
        /// The segment's base offset.
        segment_base: i64,
        /// The previous segment's next offset (its last offset plus 1).
        previous_next_offset: i64,
    },
    /// An index file's length is not a whole number of entries.
    IndexLength {
        /// The file's length.
        len: u64,
        /// The entry size: 8 for `.index`, 12 for `.timeindex`.
        entry_size: u64,
    },
    /// An offset-index entry disagrees with the log or with the entry before it.
    OffsetIndexEntry {
        /// The entry.
        entry: OffsetIndexEntry,
        /// What is wrong with it.
        fault: IndexFault,
    },
    /// Opening the store or partition for writing would fail on this (the same checks, run
    /// read-only): the reason, as [`Error::Corrupt`] words it.
    Rejected {
        /// What the open says.
        reason: String,
    },
    /// A time-index entry disagrees with the log or with the entry before it.
    TimeIndexEntry {
        /// The entry.
        entry: TimeIndexEntry,
        /// What is wrong with it.
        fault: IndexFault,
    },
    /// Damage an open repairs by itself (see [`StoreVerifyReport::repairable`]): what the
    /// repair is.
    Repairable {
        /// What an open does about it.
        repair: String,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::BadBatch(e) => write!(f, "unreadable batch, nothing after it read: {e}"),
            ProblemKind::TornTail(tail) => write!(f, "{tail}"),
            ProblemKind::CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            ProblemKind::BadRecords(e) => write!(f, "records do not decode: {e}"),
            ProblemKind::BelowSegmentBase {
                base_offset,
                segment_base,
            } => write!(
                f,
                "batch base offset {base_offset} is below the segment's base offset {segment_base}"
            ),
            ProblemKind::OffsetOutOfOrder {
                base_offset,
                last_offset,
                expected_at_least,
            } => write!(
                f,
                "batch offsets {base_offset}..={last_offset} out of order \
                 (expected a base offset of at least {expected_at_least})"
            ),
            ProblemKind::RelativeOffsetOverflow {
                segment_base,
                last_offset,
            } => write!(
                f,
                "batch last offset {last_offset} is more than i32::MAX above the segment's \
                 base offset {segment_base}"
            ),
            ProblemKind::SegmentOverlap {
                segment_base,
                previous_next_offset,
            } => write!(
                f,
                "segment base offset {segment_base} is below the previous segment's next \
                 offset {previous_next_offset}"
            ),
            ProblemKind::IndexLength { len, entry_size } => write!(
                f,
                "index length {len} is not a multiple of the {entry_size}-byte entry size"
            ),
            ProblemKind::OffsetIndexEntry { entry, fault } => write!(
                f,
                "offset index entry (offset {}, position {}): {fault}",
                entry.offset, entry.position
            ),
            ProblemKind::Rejected { reason } => {
                write!(f, "a writable open would refuse this: {reason}")
            }
            ProblemKind::TimeIndexEntry { entry, fault } => write!(
                f,
                "time index entry (timestamp {}, offset {}): {fault}",
                entry.timestamp, entry.offset
            ),
            ProblemKind::Repairable { repair } => write!(f, "{repair}"),
        }
    }
}

/// What [`verify_segment`] found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentReport {
    /// The segment's base offset.
    pub base_offset: i64,
    /// The `.log` file.
    pub log_path: PathBuf,
    /// The role it was checked in.
    pub role: SegmentRole,
    /// The `.log` file's length.
    pub file_len: u64,
    /// Bytes of batches that could be framed, from the start of the file.
    pub valid_len: u64,
    /// Batches framed (bad CRCs included).
    pub batches: u64,
    /// Records in the batches with a valid CRC (control records included; for a compressed
    /// batch, its header's count).
    pub records: u64,
    /// The offset after the last batch with a valid CRC, or the base offset if there is none.
    pub next_offset: i64,
    /// The largest batch max timestamp among batches with a valid CRC, or -1.
    pub max_timestamp: i64,
    /// Offset-index entries checked (a missing file has none; a zero-filled tail of an active
    /// segment's index is not counted).
    pub offset_index_entries: usize,
    /// Time-index entries checked, counted the same way.
    pub time_index_entries: usize,
    /// Everything wrong, log problems first, then index problems by file position.
    pub problems: Vec<Problem>,
    /// A torn tail of an [`Active`](SegmentRole::Active) segment's `.log` (of a sealed one, it
    /// is in `problems`).
    pub torn_tail: Option<Problem>,
}

impl SegmentReport {
    /// No problems (a torn tail of an active segment is allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`verify_partition`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Batches framed in all segments (bad CRCs included).
    pub batches: u64,
    /// Records in batches with a valid CRC (see [`SegmentReport::records`]).
    pub records: u64,
    /// Everything wrong, segment by segment.
    pub problems: Vec<Problem>,
    /// A torn tail at the end of the last segment's `.log`: what a crash or a running writer
    /// leaves, cut by recovery. Not a problem.
    pub torn_tail: Option<Problem>,
    /// Compaction swaps under way, or interrupted by a crash (`<base>.log.swap` files), which
    /// a writable open finishes: each was checked in place of the segments it replaces, as the
    /// open will leave them. Not a problem.
    pub swaps: Vec<PathBuf>,
    /// Damage an open repairs by itself ([`ProblemKind::Repairable`]): `.txnindex` files that
    /// do not decode or no longer match what their segment's record says (an open rebuilds
    /// them from the log). Not a problem. Filled by [`check_partition`].
    pub repairable: Vec<Problem>,
}

impl VerifyReport {
    /// No problems (a torn tail at the end of the last segment is allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a partition directory, reading only: every segment in [`list_segments`] order, the
/// last as [`SegmentRole::Active`], the others as [`SegmentRole::Sealed`] (see
/// [`verify_segment`] for the checks), and across segments that each base offset lies above
/// every offset of the segment before ([`ProblemKind::SegmentOverlap`]).
///
/// Missing index files are fine (they are caches, rebuilt on load); so are files that are not
/// segment files. A segment whose `.log` vanishes while it is being checked (retention deleted
/// it) is skipped. A torn tail at the end of the last segment goes to
/// [`VerifyReport::torn_tail`]; anywhere else it is a problem.
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be listed or a file cannot be read.
pub fn verify_partition(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let mut segments = list_segments(dir)?;
    let mut report = VerifyReport {
        segments: 0,
        batches: 0,
        records: 0,
        problems: Vec::new(),
        torn_tail: None,
        swaps: Vec::new(),
        repairable: Vec::new(),
    };
    apply_swaps(dir, &mut segments, &mut report.swaps)?;
    let mut previous_next_offset: Option<i64> = None;
    let count = segments.len();
    for (i, files) in segments.iter().enumerate() {
        let role = if i + 1 == count {
            SegmentRole::Active
        } else {
            SegmentRole::Sealed
        };
        let Some(segment) = check_segment(files, role)? else {
            continue;
        };
        if let Some(prev) = previous_next_offset
            && files.base_offset < prev
        {
            report.problems.push(Problem {
                path: files.log.clone(),
                position: 0,
                kind: ProblemKind::SegmentOverlap {
                    segment_base: files.base_offset,
                    previous_next_offset: prev,
                },
            });
        }
        previous_next_offset = Some(segment.next_offset);
        report.segments += 1;
        report.batches += segment.batches;
        report.records += segment.records;
        report.problems.extend(segment.problems);
        if segment.torn_tail.is_some() {
            report.torn_tail = segment.torn_tail;
        }
    }
    Ok(report)
}

/// Puts each decided compaction swap (a `<base>.log.swap`, see the cleaner's swap protocol)
/// in place of the segments it replaces (those based within its offsets), as a writable open
/// finishes it, and lists it in `swaps`. A swap file that does not scan whole is left to the
/// segment check, which reports it.
fn apply_swaps(
    dir: &Path,
    segments: &mut Vec<SegmentFiles>,
    swaps: &mut Vec<PathBuf>,
) -> Result<()> {
    let entries = crate::disk::list_dir(&crate::disk::ReadOnlyDisk, dir)?;
    let mut bases: Vec<i64> = entries
        .iter()
        .filter_map(|e| e.name.to_str().and_then(file_name::parse))
        .filter(|p| p.suffix == Some(TempSuffix::Swap) && p.kind == FileKind::Log)
        .map(|p| p.base_offset)
        .collect();
    bases.sort_unstable();
    for base in bases {
        let swap = |kind| file_name::temp_path(dir, base, kind, TempSuffix::Swap);
        let files = SegmentFiles {
            base_offset: base,
            log: swap(FileKind::Log),
            index: Some(swap(FileKind::Index)).filter(|p| p.is_file()),
            time_index: Some(swap(FileKind::TimeIndex)).filter(|p| p.is_file()),
            txn_index: Some(swap(FileKind::TxnIndex)).filter(|p| p.is_file()),
        };
        let end = check_segment(&files, SegmentRole::Sealed)?
            .map_or(base + 1, |s| s.next_offset.max(base + 1));
        segments.retain(|s| !(base..end).contains(&s.base_offset));
        let at = segments.partition_point(|s| s.base_offset < base);
        swaps.push(files.log.clone());
        segments.insert(at, files);
    }
    Ok(())
}

/// What [`verify_store`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreVerifyReport {
    /// Topics checked.
    pub topics: usize,
    /// Problems with the store's own files (registry, producer registry, group offsets) or
    /// with the registry's agreement with the partition directories.
    pub problems: Vec<Problem>,
    /// Each partition's report, by directory.
    pub partitions: Vec<(PathBuf, VerifyReport)>,
    /// Damage an open repairs by itself, as documented, so not a failure: a consumer group's
    /// membership file (its members join again) or a partition's published durable end
    /// (followers read unbounded until the writer publishes again). Each problem's kind is
    /// [`ProblemKind::Repairable`].
    pub repairable: Vec<Problem>,
}

impl StoreVerifyReport {
    /// Whether nothing is wrong anywhere.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.partitions.iter().all(|(_, r)| r.is_ok())
    }

    /// Every problem, the store's first.
    pub fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .chain(self.partitions.iter().flat_map(|(_, r)| r.problems.iter()))
    }
}

/// Checks a whole store directory, reading only: everything a writable
/// [`Store::open`](crate::Store::open) checks, with the same code (the topic registry and its
/// agreement with the partition directories, the producer registry, every group's offsets,
/// each partition's checkpoints, marker, segments and durable data, its producer snapshots),
/// and beyond that every batch of every segment, CRCs included, and every index entry
/// ([`verify_partition`]). A store that passes opens for writing without losing or cutting
/// durable data; one a writable open would refuse has at least one problem. `topic` limits the
/// partition checks to one topic.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be read; [`Error::UnknownTopic`] for `topic`.
/// Damage is a [`Problem`], not an error.
pub fn verify_store(dir: impl AsRef<Path>, topic: Option<&str>) -> Result<StoreVerifyReport> {
    let dir = dir.as_ref();
    let mut report = StoreVerifyReport::default();
    let rejected = |e: Error, problems: &mut Vec<Problem>| -> Result<()> {
        match e {
            Error::Corrupt {
                path,
                position,
                kind,
            } => {
                problems.push(Problem {
                    path,
                    position,
                    kind: ProblemKind::Rejected {
                        reason: kind.to_string(),
                    },
                });
                Ok(())
            }
            other => Err(other),
        }
    };
    let disk = crate::disk::ReadOnlyDisk;
    if let Err(e) = crate::store::check_store_files(&disk, dir) {
        rejected(e, &mut report.problems)?;
    }
    // The partitions: the store's, or with a registry that does not open, every directory
    // that looks like one.
    let partitions: Vec<(String, PathBuf)> = match crate::Store::open_read_only(dir) {
        Ok(store) => {
            let names = match topic {
                Some(name) => vec![store.topic(name)?.name().to_owned()],
                None => store.topics(),
            };
            report.topics = names.len();
            let mut dirs = Vec::new();
            for name in names {
                let partitions = store.topic(&name)?.partitions();
                report.repairable.extend(replica_disagreement(&partitions));
                for partition in partitions {
                    dirs.push((name.clone(), partition.dir().to_path_buf()));
                }
            }
            dirs
        }
        Err(e) => {
            rejected(e, &mut report.problems)?;
            let mut dirs = crate::store::list_partition_dirs(&ReadOnlyDisk, dir)?;
            dirs.retain(|(t, _)| topic.is_none_or(|want| want == t));
            report.topics = dirs
                .iter()
                .map(|(t, _)| t)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            dirs
        }
    };
    for (_, partition_dir) in partitions {
        let published = partition_dir.join(crate::partition::PUBLISHED_FILE);
        if let Some(problem) = crate::partition::check_published(&disk, &partition_dir) {
            report.repairable.push(Problem {
                path: published,
                position: 0,
                kind: ProblemKind::Repairable {
                    repair: format!(
                        "{problem}; ignored: followers read unbounded until the writer \
                         publishes again"
                    ),
                },
            });
        }
        let checked = check_partition(&partition_dir)?;
        report.repairable.extend(checked.repairable.iter().cloned());
        report.partitions.push((partition_dir, checked));
    }
    for (path, problem) in crate::group::state::check_all(&disk, dir)? {
        report.repairable.push(Problem {
            path,
            position: 0,
            kind: ProblemKind::Repairable {
                repair: format!("{problem}; read as no members: every member joins again"),
            },
        });
    }
    Ok(report)
}

/// The partitions of a replica topic without the replica marker the others hold (a marker
/// removed by hand, or a crash while the topic was made or grown): such a partition takes
/// writes its cluster never made.
fn replica_disagreement(partitions: &[std::sync::Arc<crate::Partition>]) -> Vec<Problem> {
    let Some(of) = partitions.iter().find_map(|p| p.replica_of()) else {
        return Vec::new();
    };
    partitions
        .iter()
        .filter(|p| p.replica_of() != Some(of))
        .map(|p| Problem {
            path: p.dir().join(crate::partition::REPLICA_FILE),
            position: 0,
            kind: ProblemKind::Repairable {
                repair: format!(
                    "missing or different while the topic's other partitions replicate cluster \
                     topic {:?}; replicating again marks the partition if it is empty, otherwise \
                     delete the topic and replicate it again",
                    of.cluster_topic
                ),
            },
        })
        .collect()
}

/// [`verify_partition`], and what opening the partition for writing checks, run read-only with
/// the same code: its checkpoints and marker, its durable data, its producer snapshots. A
/// partition without problems opens for writing without losing or cutting durable data; one a
/// writable open would refuse has a [`ProblemKind::Rejected`] problem.
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be listed or a file cannot be read. Damage is a
/// [`Problem`], not an error.
pub fn check_partition(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let mut checked = verify_partition(dir)?;
    let problem = match crate::Partition::open_read_only(dir, crate::config::LogConfig::default()) {
        Ok(partition) => {
            for (path, why) in &partition.recovery().txn_indexes_damaged {
                checked.repairable.push(Problem {
                    path: path.clone(),
                    position: 0,
                    kind: ProblemKind::Repairable {
                        repair: format!("{why}; rebuilt from the log by the next open"),
                    },
                });
            }
            partition.check_producer_state().err()
        }
        Err(e) => Some(e),
    };
    match problem {
        Some(Error::Corrupt {
            path,
            position,
            kind,
        }) => checked.problems.push(Problem {
            path,
            position,
            kind: ProblemKind::Rejected {
                reason: kind.to_string(),
            },
        }),
        Some(other) => return Err(other),
        None => {}
    }
    Ok(checked)
}

/// Checks one segment, reading only: its `.log` and, if present, the `.index` and `.timeindex`
/// beside it.
///
/// The rules are those Kafka's format guarantees:
///
/// * **Batches**: each is framed (magic 2, a length of at least 49 bytes, whole in the file),
///   its CRC-32C matches, and an uncompressed batch's records decode exactly (compressed
///   batches: framing and CRC only). Offsets rise from batch to batch (gaps allowed), the first
///   is not below the segment's base offset, and every last offset is at most `i32::MAX` above
///   it. A batch with a bad CRC is reported and left out of these offset checks and of the
///   record count; index entries are still checked against its header, which still frames it.
/// * **Tail**: bytes after the last whole batch are a [`TailProblem`]. A torn one (a batch
///   running past the end of the file, zeros, or a last batch failing its CRC with only zeros
///   after it, as a torn append into preallocated space leaves) is
///   [`SegmentReport::torn_tail`] for an active segment and a problem for a sealed one;
///   anything else is a [`ProblemKind::BadBatch`].
/// * **Offset index**, entry `(O, P)`: offsets and positions strictly increase; `P` is the
///   start of a batch, that batch starts at or below `O`, every batch before `P` ends below
///   `O`, and `O` is below the segment's next offset. (Kafka indexes the last offset of the
///   appended message set at the position of its first batch, so `O` is normally the last
///   offset of the batch at `P`.)
/// * **Time index**, entry `(T, O)`: timestamps strictly increase and offsets do not
///   decrease; a batch holds `O`, and `T` is the largest batch max timestamp of the batches up
///   to and including it. So the last entry never exceeds the segment's max timestamp; it may
///   be below it when the writer did not close the segment.
/// * **Index length**: a whole number of entries. In an active segment a trailing run of
///   all-zero entries is unused preallocated space and is not checked.
///
/// The index files are read before the log, so entries a running writer adds meanwhile
/// always refer to batches the log scan sees.
///
/// # Errors
///
/// [`Error::NotASegmentFile`] if the file name is not `<20-digit base offset>.log`;
/// [`Error::Io`] if a file cannot be read.
pub fn verify_segment(log_path: impl AsRef<Path>, role: SegmentRole) -> Result<SegmentReport> {
    let log_path = log_path.as_ref();
    let parsed = log_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(file_name::parse)
        .filter(|p| p.kind == FileKind::Log && p.suffix.is_none());
    let Some(parsed) = parsed else {
        return Err(Error::NotASegmentFile {
            path: log_path.to_path_buf(),
        });
    };
    let dir = log_path.parent().unwrap_or(Path::new(""));
    let base = parsed.base_offset;
    let index = file_name::file_path(dir, base, FileKind::Index);
    let time_index = file_name::file_path(dir, base, FileKind::TimeIndex);
    let files = SegmentFiles {
        base_offset: base,
        log: log_path.to_path_buf(),
        index: Some(index),
        time_index: Some(time_index),
        txn_index: Some(file_name::file_path(dir, base, FileKind::TxnIndex))
            .filter(|p| p.is_file()),
    };
    match check_segment(&files, role)? {
        Some(report) => Ok(report),
        None => Err(Error::io(
            IoOp::Open,
            log_path,
            io::Error::from(io::ErrorKind::NotFound),
        )),
    }
}

/// A checked index entry waiting for the log scan: its number in the file and the entry.
type Pending<E> = (usize, E);

/// Checks one segment; `None` if its `.log` does not exist (any more).
fn check_segment(files: &SegmentFiles, role: SegmentRole) -> Result<Option<SegmentReport>> {
    let base = files.base_offset;
    let mut index_problems = Vec::new();

    // Indexes first: every entry a writer has written refers to log bytes already written.
    let offsets = match &files.index {
        Some(path) => read_index_if_present(path, base, offset_entry)?,
        None => None,
    };
    let times = match &files.time_index {
        Some(path) => read_index_if_present(path, base, time_entry)?,
        None => None,
    };
    let mut offset_check = offsets
        .as_ref()
        .map(|ix| OffsetIndexCheck::new(ix, role, &mut index_problems));
    let mut time_check = times
        .as_ref()
        .map(|ix| TimeIndexCheck::new(ix, role, &mut index_problems));

    let mut reader = match LogFileReader::open(&files.log) {
        Ok(reader) => reader,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut log = LogCheck::new(base);
    let mut last_batch: Option<BatchInfo> = None;
    while let Some(batch) = reader.next_batch()? {
        log.batch(&files.log, &batch);
        let info = batch.info;
        last_batch = Some(info);
        if let Some(check) = offset_check.as_mut() {
            check.on_batch(&info, log.max_last_before);
        }
        log.after_batch(&info);
        if let Some(check) = time_check.as_mut() {
            check.on_batch(&info, log.framed_max_timestamp);
        }
    }
    let mut valid_len = reader.position();
    let mut tail = reader.tail.take();
    // A last batch that fails its CRC and is followed only by zeros is an append torn inside
    // preallocated space: one torn tail from the batch's position, not a damaged batch.
    if let (Some(t), Some(last)) = (&tail, last_batch)
        && t.kind == TailKind::ZeroFilled
        && !last.crc_valid
        && last.end() == t.position
    {
        log.problems.pop(); // the batch's CRC mismatch, the last problem it added
        log.batches -= 1;
        valid_len = last.position;
        tail = Some(TailProblem {
            position: last.position,
            len: t.position - last.position + t.len,
            kind: TailKind::Unfinished,
            error: DecodeError {
                kind: DecodeErrorKind::CrcMismatch {
                    stored: last.header.crc,
                    computed: last.computed_crc,
                },
                position: CRC_POS,
            },
        });
    }
    let mut torn_tail = None;
    if let Some(tail) = tail {
        let problem = Problem {
            path: files.log.clone(),
            position: tail.position,
            kind: if tail.is_torn() {
                ProblemKind::TornTail(tail)
            } else {
                ProblemKind::BadBatch(tail.error)
            },
        };
        match (&problem.kind, role) {
            (ProblemKind::TornTail(_), SegmentRole::Active) => torn_tail = Some(problem),
            _ => log.problems.push(problem),
        }
    }
    let mut offset_entries = 0;
    if let (Some(check), Some(ix)) = (offset_check, &offsets) {
        offset_entries = check.checked;
        check.finish(ix, log.framed_next_offset, valid_len, &mut index_problems);
    }
    let mut time_entries = 0;
    if let (Some(check), Some(ix)) = (time_check, &times) {
        time_entries = check.checked;
        check.finish(ix, log.framed_next_offset, &mut index_problems);
    }
    index_problems.sort_by(|a, b| (&a.path, a.position).cmp(&(&b.path, b.position)));
    let mut problems = log.problems;
    problems.extend(index_problems);
    Ok(Some(SegmentReport {
        base_offset: base,
        log_path: files.log.clone(),
        role,
        file_len: reader.file_len,
        valid_len,
        batches: log.batches,
        records: log.records,
        next_offset: log.next_offset.unwrap_or(base),
        max_timestamp: log.max_timestamp,
        offset_index_entries: offset_entries,
        time_index_entries: time_entries,
        problems,
        torn_tail,
    }))
}

/// The running state of a segment's log scan.
struct LogCheck {
    base: i64,
    batches: u64,
    records: u64,
    /// The offset after the previous batch with a valid CRC.
    next_offset: Option<i64>,
    /// The largest next offset of any framed batch (for index checks).
    framed_next_offset: i64,
    /// The largest last offset of the framed batches before the current one.
    max_last_before: Option<i64>,
    /// The largest max timestamp of batches with a valid CRC.
    max_timestamp: i64,
    /// The largest max timestamp of any framed batch so far, the current one included (for
    /// index checks: damage in a batch's records should not make its index entries wrong too).
    framed_max_timestamp: i64,
    problems: Vec<Problem>,
}

impl LogCheck {
    fn new(base: i64) -> Self {
        LogCheck {
            base,
            batches: 0,
            records: 0,
            next_offset: None,
            framed_next_offset: base,
            max_last_before: None,
            max_timestamp: NO_TIMESTAMP,
            framed_max_timestamp: NO_TIMESTAMP,
            problems: Vec::new(),
        }
    }

    /// Checks a batch: CRC, records, offsets.
    fn batch(&mut self, path: &Path, batch: &ScannedBatch<'_>) {
        let info = batch.info;
        let h = info.header;
        let mut problem = |kind| {
            self.problems.push(Problem {
                path: path.to_path_buf(),
                position: info.position,
                kind,
            });
        };
        self.batches += 1;
        self.framed_max_timestamp = self.framed_max_timestamp.max(h.max_timestamp);
        if !info.crc_valid {
            problem(ProblemKind::CrcMismatch {
                stored: h.crc,
                computed: info.computed_crc,
            });
            return;
        }
        let mut buf = Vec::new();
        match batch
            .batch
            .records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)
        {
            Ok(records) => {
                let mut count = 0u64;
                for record in records {
                    match record {
                        Ok(_) => count += 1,
                        Err(e) => {
                            problem(ProblemKind::BadRecords(e));
                            break;
                        }
                    }
                }
                self.records += count;
            }
            Err(e) => match e.kind {
                DecodeErrorKind::UnsupportedCompression(_) => {
                    self.records += u64::try_from(h.records_count).unwrap_or(0);
                }
                _ => problem(ProblemKind::BadRecords(e)),
            },
        }
        let last = h.last_offset();
        if h.base_offset < self.base {
            problem(ProblemKind::BelowSegmentBase {
                base_offset: h.base_offset,
                segment_base: self.base,
            });
        } else if let Some(expected) = self.next_offset
            && h.base_offset < expected
        {
            problem(ProblemKind::OffsetOutOfOrder {
                base_offset: h.base_offset,
                last_offset: last,
                expected_at_least: expected,
            });
        }
        if last.saturating_sub(self.base) > i64::from(i32::MAX) {
            problem(ProblemKind::RelativeOffsetOverflow {
                segment_base: self.base,
                last_offset: last,
            });
        }
        // Always follow the batch just read, so one bad offset makes at most two problems.
        self.next_offset = Some(h.next_offset());
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
        }
    }

    /// Bookkeeping after the index checks that need the state before the batch.
    fn after_batch(&mut self, info: &BatchInfo) {
        let last = info.header.last_offset();
        self.max_last_before = Some(self.max_last_before.map_or(last, |m| m.max(last)));
        self.framed_next_offset = self.framed_next_offset.max(info.header.next_offset());
    }
}

/// Number of entries left once a trailing run of all-zero entries is dropped.
fn without_zero_tail<E>(entries: &[E], is_zero: impl Fn(&E) -> bool) -> usize {
    entries.len() - entries.iter().rev().take_while(|e| is_zero(e)).count()
}

fn index_length_problem<E>(ix: &IndexFile<E>, entry_size: usize) -> Option<Problem> {
    (ix.partial_bytes != 0).then(|| Problem {
        path: ix.path.clone(),
        position: ix.file_len - ix.partial_bytes,
        kind: ProblemKind::IndexLength {
            len: ix.file_len,
            entry_size: entry_size as u64,
        },
    })
}

/// Offset-index checks that follow the log scan.
struct OffsetIndexCheck {
    /// Entries that passed the checks needing no log, by position.
    pending: Vec<Pending<OffsetIndexEntry>>,
    next: usize,
    /// Entries at a batch start, to check against the segment's next offset at the end.
    at_batch: Vec<Pending<OffsetIndexEntry>>,
    faults: Vec<(usize, OffsetIndexEntry, IndexFault)>,
    checked: usize,
}

impl OffsetIndexCheck {
    fn new(ix: &IndexFile<OffsetIndexEntry>, role: SegmentRole, out: &mut Vec<Problem>) -> Self {
        out.extend(index_length_problem(ix, OffsetEntry::SIZE));
        let n = match role {
            SegmentRole::Active => {
                without_zero_tail(&ix.entries, |e| e.relative_offset == 0 && e.position == 0)
            }
            SegmentRole::Sealed => ix.entries.len(),
        };
        let mut check = OffsetIndexCheck {
            pending: Vec::with_capacity(n),
            next: 0,
            at_batch: Vec::new(),
            faults: Vec::new(),
            checked: n,
        };
        let mut previous = None;
        for (i, &e) in ix.entries.iter().take(n).enumerate() {
            let stored = e.stored();
            match offset_index::entry_fault(previous, stored) {
                Some(fault) => check.faults.push((i, e, fault)),
                None => check.pending.push((i, e)),
            }
            previous = Some(stored);
        }
        check.pending.sort_by_key(|&(i, e)| (e.position, i));
        check
    }

    /// Checks the entries positioned up to this batch. `max_last_before` is the largest last
    /// offset of the batches before it.
    fn on_batch(&mut self, info: &BatchInfo, max_last_before: Option<i64>) {
        while let Some(&(i, e)) = self.pending.get(self.next) {
            let position = u64::try_from(e.position).unwrap_or(0);
            if position > info.position {
                break;
            }
            self.next += 1;
            let h = &info.header;
            let fault = if position < info.position {
                Some(IndexFault::NotBatchStart)
            } else if h.base_offset > e.offset {
                Some(IndexFault::BatchStartsAfterOffset {
                    batch_base_offset: h.base_offset,
                })
            } else if let Some(previous_last_offset) = max_last_before
                && previous_last_offset >= e.offset
            {
                Some(IndexFault::EarlierBatchHoldsOffset {
                    previous_last_offset,
                })
            } else {
                None
            };
            match fault {
                Some(fault) => self.faults.push((i, e, fault)),
                None => self.at_batch.push((i, e)),
            }
        }
    }

    fn finish(
        mut self,
        ix: &IndexFile<OffsetIndexEntry>,
        next_offset: i64,
        log_len: u64,
        out: &mut Vec<Problem>,
    ) {
        for &(i, e) in self.pending.iter().skip(self.next) {
            let position = u64::try_from(e.position).unwrap_or(0);
            let fault = if position >= log_len {
                IndexFault::PositionPastEnd { log_len }
            } else {
                IndexFault::NotBatchStart
            };
            self.faults.push((i, e, fault));
        }
        for &(i, e) in &self.at_batch {
            let base = e.offset - i64::from(e.relative_offset);
            if let Some(fault) = offset_index::past_end(e.stored(), base..next_offset, log_len) {
                self.faults.push((i, e, fault));
            }
        }
        out.extend(self.faults.into_iter().map(|(i, entry, fault)| Problem {
            path: ix.path.clone(),
            position: (i * OffsetEntry::SIZE) as u64,
            kind: ProblemKind::OffsetIndexEntry { entry, fault },
        }));
    }
}

/// Time-index checks that follow the log scan.
struct TimeIndexCheck {
    /// Entries that passed the checks needing no log, by offset.
    pending: Vec<Pending<TimeIndexEntry>>,
    next: usize,
    faults: Vec<(usize, TimeIndexEntry, IndexFault)>,
    checked: usize,
}

impl TimeIndexCheck {
    fn new(ix: &IndexFile<TimeIndexEntry>, role: SegmentRole, out: &mut Vec<Problem>) -> Self {
        out.extend(index_length_problem(ix, TimeEntry::SIZE));
        let n = match role {
            SegmentRole::Active => {
                without_zero_tail(&ix.entries, |e| e.timestamp == 0 && e.relative_offset == 0)
            }
            SegmentRole::Sealed => ix.entries.len(),
        };
        let mut check = TimeIndexCheck {
            pending: Vec::with_capacity(n),
            next: 0,
            faults: Vec::new(),
            checked: n,
        };
        let mut previous = None;
        for (i, &e) in ix.entries.iter().take(n).enumerate() {
            let stored = e.stored();
            match time_index::entry_fault(previous, stored) {
                Some(fault) => check.faults.push((i, e, fault)),
                None => check.pending.push((i, e)),
            }
            previous = Some(stored);
        }
        check.pending.sort_by_key(|&(i, e)| (e.offset, i));
        check
    }

    /// Checks the entries whose offsets this batch reaches; `max_timestamp` includes it.
    fn on_batch(&mut self, info: &BatchInfo, max_timestamp: i64) {
        let h = &info.header;
        let last = h.last_offset();
        while let Some(&(i, e)) = self.pending.get(self.next) {
            if e.offset > last {
                break;
            }
            self.next += 1;
            if e.offset < h.base_offset {
                self.faults.push((i, e, IndexFault::NotInBatch));
            } else if e.timestamp != max_timestamp {
                self.faults.push((
                    i,
                    e,
                    IndexFault::TimestampMismatch {
                        expected: max_timestamp,
                    },
                ));
            }
        }
    }

    fn finish(mut self, ix: &IndexFile<TimeIndexEntry>, next_offset: i64, out: &mut Vec<Problem>) {
        for &(i, e) in self.pending.iter().skip(self.next) {
            // Past every batch of the log: past its end.
            let base = e.offset - i64::from(e.relative_offset);
            let fault = time_index::past_end(e.stored(), base..next_offset)
                .unwrap_or(IndexFault::NotInBatch);
            self.faults.push((i, e, fault));
        }
        out.extend(self.faults.into_iter().map(|(i, entry, fault)| Problem {
            path: ix.path.clone(),
            position: (i * TimeEntry::SIZE) as u64,
            kind: ProblemKind::TimeIndexEntry { entry, fault },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Partition;
    use crate::config::LogConfig;
    use crate::record::{BATCH_HEADER_LEN, BatchParams, Header, Record, encode_batch};
    use crate::segment::{Index, IndexBuilder, IndexedBatch, Indexes};
    use proptest::prelude::*;
    use std::fs::OpenOptions;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn config() -> LogConfig {
        LogConfig::builder()
            .segment_bytes(4096)
            .index_interval_bytes(256)
            .build()
            .expect("valid config")
    }

    /// Record `i`: keyed, with one header and a timestamp that jumps back and forth, so the
    /// time index sees maxima that are not the latest batch's.
    fn expected(i: i64) -> OwnedRecord {
        OwnedRecord {
            offset: i,
            timestamp: 1_000_000 + (i * 37 % 101) * 10,
            key: Some(format!("key-{}", i % 7).into_bytes()),
            value: Some(format!("value-{i}-{}", "x".repeat((i % 40) as usize)).into_bytes()),
            headers: vec![OwnedHeader {
                key: b"i".to_vec(),
                value: Some(i.to_be_bytes().to_vec()),
            }],
        }
    }

    /// Appends records `0..n` (every fourth append a batch of three) and closes the partition,
    /// or drops it without closing.
    fn write_partition(dir: &Path, n: i64, close: bool) -> Vec<OwnedRecord> {
        let log = Partition::open(dir, config()).expect("open");
        let all: Vec<OwnedRecord> = (0..n).map(expected).collect();
        let mut i = 0;
        while i < n {
            let take = if i % 4 == 0 { 3.min(n - i) } else { 1 };
            let owned = &all[i as usize..(i + take) as usize];
            let headers: Vec<Vec<Header<'_>>> = owned
                .iter()
                .map(|r| {
                    r.headers
                        .iter()
                        .map(|h| Header::new(&h.key, h.value.as_deref()))
                        .collect()
                })
                .collect();
            let records: Vec<Record<'_>> = owned
                .iter()
                .zip(&headers)
                .map(|(r, h)| Record {
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: h,
                    timestamp: Some(r.timestamp),
                })
                .collect();
            let info = log.append_batch(&records).expect("append");
            assert_eq!(info.base_offset, i);
            i += take;
        }
        if close {
            log.close().expect("close");
        }
        drop(log);
        all
    }

    fn segments_of(dir: &Path) -> Vec<SegmentFiles> {
        let segments = list_segments(dir).expect("list");
        assert!(
            segments.len() >= 4,
            "want several segments, got {}",
            segments.len()
        );
        segments
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut file = OpenOptions::new().append(true).open(path).expect("open");
        file.write_all(bytes).expect("append");
    }

    fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
        let mut all = std::fs::read(path).expect("read");
        let pos = pos as usize;
        all[pos..pos + bytes.len()].copy_from_slice(bytes);
        std::fs::write(path, all).expect("write");
    }

    fn extend_with_zeros(path: &Path, extra: u64) {
        let file = OpenOptions::new().write(true).open(path).expect("open");
        let len = file.metadata().expect("metadata").len();
        file.set_len(len + extra).expect("set_len");
    }

    #[test]
    fn batches_and_records_are_listed_exactly() -> TestResult {
        let dir = tempfile::tempdir()?;
        let expected = write_partition(dir.path(), 300, true);
        let mut records = Vec::new();
        let mut batch_count = 0;
        for segment in segments_of(dir.path()) {
            assert!(segment.index.is_some() && segment.time_index.is_some());
            let mut reader = LogFileReader::open(&segment.log)?;
            let mut position = 0;
            while let Some(batch) = reader.next_batch()? {
                let info = *batch.info();
                assert!(info.crc_valid, "{info:?}");
                assert_eq!(info.computed_crc, info.header.crc);
                assert_eq!(info.position, position);
                assert!(info.header.base_offset >= segment.base_offset);
                position = info.end();
                match batch.owned_records() {
                    BatchRecords::Decoded(mut decoded) => {
                        assert_eq!(decoded.len() as i32, info.header.records_count);
                        let from_view: Vec<i64> = batch
                            .records()?
                            .map(|r| r.map(|r| r.offset()))
                            .collect::<std::result::Result<_, _>>()?;
                        assert_eq!(
                            from_view,
                            decoded.iter().map(|r| r.offset).collect::<Vec<_>>()
                        );
                        records.append(&mut decoded);
                    }
                    other => panic!("uncompressed batch decoded as {other:?}"),
                }
                batch_count += 1;
            }
            assert_eq!(reader.tail(), None);
            assert_eq!(reader.position(), reader.file_len());

            let listed = batches(&segment.log)?;
            assert_eq!(listed.tail, None);
            assert_eq!(listed.file_len, reader.file_len());
            assert_eq!(
                listed.batches.last().map_or(0, BatchInfo::end),
                listed.file_len
            );
            assert!(
                listed
                    .batches
                    .windows(2)
                    .all(|w| w[0].end() == w[1].position)
            );
            assert!(listed.batches.iter().all(|b| b.crc_valid));
        }
        assert_eq!(records, expected);
        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.batches, batch_count);
        assert_eq!(report.records, 300);
        assert_eq!(report.segments, segments_of(dir.path()).len());
        assert_eq!(report.torn_tail, None);
        Ok(())
    }

    #[test]
    fn index_entries_match_the_batches() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let mut offset_entries = 0;
        for segment in segments_of(dir.path()) {
            let listed = batches(&segment.log)?;
            let index_path = segment.index.as_ref().expect("index");
            let index = offset_index_entries(index_path, None)?;
            assert_eq!(index.base_offset, segment.base_offset);
            assert_eq!(index.partial_bytes, 0);
            assert_eq!(
                index.file_len,
                index.entries.len() as u64 * 8,
                "trimmed on close"
            );
            for e in &index.entries {
                assert_eq!(e.offset, segment.base_offset + i64::from(e.relative_offset));
                // topiclog appends one batch at a time: the entry is that batch's last offset.
                let batch = listed
                    .batches
                    .iter()
                    .find(|b| b.position == e.position as u64)
                    .expect("entry at a batch start");
                assert_eq!(batch.header.last_offset(), e.offset);
            }
            offset_entries += index.entries.len();

            let times = time_index_entries(segment.time_index.as_ref().expect("time index"), None)?;
            assert_eq!(times.partial_bytes, 0);
            assert!(
                times
                    .entries
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp)
            );
            let max = listed.batches.iter().map(|b| b.header.max_timestamp).max();
            // Closed: the last entry holds the segment's largest timestamp.
            assert_eq!(times.entries.last().map(|e| e.timestamp), max);

            let report = verify_segment(&segment.log, SegmentRole::Sealed)?;
            assert!(report.is_ok(), "{:#?}", report.problems);
            assert_eq!(report.offset_index_entries, index.entries.len());
            assert_eq!(report.time_index_entries, times.entries.len());
            assert_eq!(report.max_timestamp, max.unwrap_or(-1));
            assert_eq!(
                report.next_offset,
                listed
                    .batches
                    .last()
                    .map_or(segment.base_offset, |b| b.header.next_offset())
            );
        }
        assert!(offset_entries > 4, "the test needs index entries");
        Ok(())
    }

    #[test]
    fn a_partition_dropped_without_close_verifies() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, false);
        let segments = segments_of(dir.path());
        let last = segments.last().expect("a segment");
        // The active segment's indexes are still preallocated: a zero tail.
        let index = offset_index_entries(last.index.as_ref().expect("index"), None)?;
        assert!(index.entries.len() > 8);
        assert_eq!(
            index
                .entries
                .last()
                .map(|e| (e.relative_offset, e.position)),
            Some((0, 0))
        );
        let times = time_index_entries(last.time_index.as_ref().expect("time index"), None)?;
        assert_eq!(
            times
                .entries
                .last()
                .map(|e| (e.timestamp, e.relative_offset)),
            Some((0, 0))
        );

        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.records, 300);
        assert_eq!(report.torn_tail, None);
        let active = verify_segment(&last.log, SegmentRole::Active)?;
        assert!(active.offset_index_entries < index.entries.len());
        // Checked as a sealed segment, the zero tail is wrong.
        let sealed = verify_segment(&last.log, SegmentRole::Sealed)?;
        assert!(!sealed.is_ok());
        Ok(())
    }

    #[test]
    fn a_flipped_byte_in_a_middle_segment_is_a_crc_mismatch() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let middle = &segments[segments.len() / 2];
        let listed = batches(&middle.log)?;
        let victim = listed.batches[listed.batches.len() / 2];
        let at = victim.position + BATCH_HEADER_LEN as u64 + 3;
        let original = std::fs::read(&middle.log)?[at as usize];
        write_at(&middle.log, at, &[original ^ 0x40]);

        let report = verify_partition(dir.path())?;
        assert!(!report.is_ok());
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        let problem = &report.problems[0];
        assert_eq!(problem.path, middle.log);
        assert_eq!(problem.position, victim.position);
        match problem.kind {
            ProblemKind::CrcMismatch { stored, computed } => {
                assert_eq!(stored, victim.header.crc);
                assert_ne!(computed, stored);
            }
            ref other => panic!("expected a CRC mismatch, got {other:?}"),
        }
        assert!(problem.to_string().contains("CRC mismatch"), "{problem}");
        // The batch is still listed, and the batches after it too.
        let after = batches(&middle.log)?;
        assert_eq!(after.batches.len(), listed.batches.len());
        assert_eq!(after.batches.iter().filter(|b| !b.crc_valid).count(), 1);
        assert_eq!(after.tail, None);
        Ok(())
    }

    #[test]
    fn an_index_entry_pointing_mid_batch_is_reported() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let segment = &segments[1];
        let index_path = segment.index.clone().expect("index");
        let index = offset_index_entries(&index_path, None)?;
        let n = index.entries.len() / 2;
        let entry = index.entries[n];
        write_at(
            &index_path,
            (n * 8 + 4) as u64,
            &(entry.position + 5).to_be_bytes(),
        );

        let report = verify_partition(dir.path())?;
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        let problem = &report.problems[0];
        assert_eq!(
            (&problem.path, problem.position),
            (&index_path, (n * 8) as u64)
        );
        match &problem.kind {
            ProblemKind::OffsetIndexEntry { entry: e, fault } => {
                assert_eq!((e.offset, e.position), (entry.offset, entry.position + 5));
                assert_eq!(*fault, IndexFault::NotBatchStart);
            }
            other => panic!("expected an index problem, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_wrong_time_index_timestamp_is_reported() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segment = &segments_of(dir.path())[0];
        let path = segment.time_index.clone().expect("time index");
        let times = time_index_entries(&path, None)?;
        let n = times.entries.len() - 1;
        let last = times.entries[n];
        write_at(&path, (n * 12) as u64, &(last.timestamp + 1).to_be_bytes());

        let report = verify_partition(dir.path())?;
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].path, path);
        assert_eq!(
            report.problems[0].kind,
            ProblemKind::TimeIndexEntry {
                entry: TimeIndexEntry {
                    timestamp: last.timestamp + 1,
                    ..last
                },
                fault: IndexFault::TimestampMismatch {
                    expected: last.timestamp
                },
            }
        );
        Ok(())
    }

    /// The first half of the segment's last batch, as an interrupted append leaves it.
    fn torn_copy_of_last_batch(log: &Path) -> Vec<u8> {
        let listed = batches(log).expect("batches");
        let last = listed.batches.last().expect("a batch");
        let bytes = std::fs::read(log).expect("read");
        let start = last.position as usize;
        bytes[start..start + last.size() as usize / 2].to_vec()
    }

    #[test]
    fn a_torn_tail_in_the_last_segment_is_allowed() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let last = segments.last().expect("a segment");
        let len = std::fs::metadata(&last.log)?.len();
        let torn = torn_copy_of_last_batch(&last.log);
        append_bytes(&last.log, &torn);

        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.records, 300);
        let torn_tail = report.torn_tail.expect("a torn tail");
        assert_eq!((&torn_tail.path, torn_tail.position), (&last.log, len));
        match &torn_tail.kind {
            ProblemKind::TornTail(tail) => {
                assert_eq!(tail.kind, TailKind::Truncated);
                assert_eq!(tail.len, torn.len() as u64);
                assert!(tail.is_torn());
            }
            other => panic!("expected a torn tail, got {other:?}"),
        }
        let listed = batches(&last.log)?;
        assert_eq!(listed.tail.as_ref().map(|t| t.position), Some(len));

        // Zeros after it (a torn append into a preallocated log): the half batch now fits in
        // the file and fails its CRC, and is still a torn tail.
        extend_with_zeros(&last.log, 4096);
        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.records, 300);
        let torn_tail = report.torn_tail.expect("a torn tail");
        assert_eq!(torn_tail.position, len);
        assert!(
            matches!(&torn_tail.kind, ProblemKind::TornTail(t)
                if t.kind == TailKind::Unfinished && t.len == torn.len() as u64 + 4096),
            "{torn_tail}"
        );
        // In an earlier segment, the same bytes are a problem.
        let sealed = verify_segment(&last.log, SegmentRole::Sealed)?;
        assert_eq!(sealed.problems.len(), 1, "{:#?}", sealed.problems);
        assert_eq!(sealed.problems[0].position, len);
        // Without only zeros after it, the failing CRC is damage.
        let full = batches(&last.log)?
            .batches
            .last()
            .map_or(0, BatchInfo::size);
        let file = OpenOptions::new().write(true).open(&last.log)?;
        file.set_len(len + full + 100)?;
        write_at(&last.log, len + full + 99, &[1]);
        let report = verify_partition(dir.path())?;
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.position == len && matches!(p.kind, ProblemKind::CrcMismatch { .. })),
            "{:#?}",
            report.problems
        );
        Ok(())
    }

    #[test]
    fn a_zero_filled_tail_in_the_last_segment_is_allowed() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let last = segments_of(dir.path()).pop().expect("a segment");
        let len = std::fs::metadata(&last.log)?.len();
        extend_with_zeros(&last.log, 1000);
        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);
        let torn = report.torn_tail.expect("torn tail");
        assert_eq!(torn.position, len);
        assert!(
            matches!(&torn.kind, ProblemKind::TornTail(t) if t.kind == TailKind::ZeroFilled && t.len == 1000)
        );
        Ok(())
    }

    #[test]
    fn a_torn_tail_in_an_earlier_segment_is_a_problem() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let first = &segments[0];
        let len = std::fs::metadata(&first.log)?.len();
        append_bytes(&first.log, &torn_copy_of_last_batch(&first.log));

        let report = verify_partition(dir.path())?;
        assert!(!report.is_ok());
        assert_eq!(report.torn_tail, None);
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        let problem = &report.problems[0];
        assert_eq!((&problem.path, problem.position), (&first.log, len));
        assert!(
            matches!(&problem.kind, ProblemKind::TornTail(t) if t.kind == TailKind::Truncated),
            "{problem}"
        );
        Ok(())
    }

    #[test]
    fn garbage_after_the_last_batch_is_a_problem_even_in_the_last_segment() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let last = segments_of(dir.path()).pop().expect("a segment");
        let len = std::fs::metadata(&last.log)?.len();
        append_bytes(&last.log, &[0xAB; 100]);
        let report = verify_partition(dir.path())?;
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].position, len);
        assert!(matches!(
            report.problems[0].kind,
            ProblemKind::BadBatch(DecodeError {
                kind: DecodeErrorKind::UnsupportedMagic(_),
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_preallocated_index_tail_is_fine_only_in_the_last_segment() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let last = segments.last().expect("a segment");
        extend_with_zeros(last.index.as_ref().expect("index"), 800);
        extend_with_zeros(last.time_index.as_ref().expect("time index"), 1200);
        let report = verify_partition(dir.path())?;
        assert!(report.is_ok(), "{:#?}", report.problems);

        let first = &segments[0];
        extend_with_zeros(first.index.as_ref().expect("index"), 800);
        extend_with_zeros(first.time_index.as_ref().expect("time index"), 1200);
        let report = verify_partition(dir.path())?;
        assert!(!report.is_ok());
        let index_files = [first.index.clone(), first.time_index.clone()];
        assert!(
            report
                .problems
                .iter()
                .all(|p| index_files.contains(&Some(p.path.clone()))),
            "{:#?}",
            report.problems
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path == *first.index.as_ref().expect("index"))
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path == *first.time_index.as_ref().expect("time"))
        );
        Ok(())
    }

    #[test]
    fn a_partial_index_entry_is_reported_not_a_panic() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segment = &segments_of(dir.path())[0];
        let path = segment.index.clone().expect("index");
        let before = offset_index_entries(&path, None)?;
        append_bytes(&path, &[1, 2, 3]);
        let after = offset_index_entries(&path, None)?;
        assert_eq!(after.entries, before.entries);
        assert_eq!(after.partial_bytes, 3);
        let report = verify_partition(dir.path())?;
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].position, before.file_len);
        assert_eq!(
            report.problems[0].kind,
            ProblemKind::IndexLength {
                len: before.file_len + 3,
                entry_size: 8
            }
        );
        Ok(())
    }

    #[test]
    fn offsets_that_do_not_rise_are_reported() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segment = &segments_of(dir.path())[1];
        let listed = batches(&segment.log)?;
        let second = listed.batches[1];
        // baseOffset is outside the CRC: only the offset checks can see this.
        write_at(
            &segment.log,
            second.position,
            &segment.base_offset.to_be_bytes(),
        );
        let report = verify_segment(&segment.log, SegmentRole::Sealed)?;
        assert!(
            report.problems.contains(&Problem {
                path: segment.log.clone(),
                position: second.position,
                kind: ProblemKind::OffsetOutOfOrder {
                    base_offset: segment.base_offset,
                    last_offset: segment.base_offset + i64::from(second.header.last_offset_delta),
                    expected_at_least: listed.batches[0].header.next_offset(),
                },
            }),
            "{:#?}",
            report.problems
        );
        Ok(())
    }

    #[test]
    fn overlapping_segments_are_reported() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_partition(dir.path(), 300, true);
        let segments = segments_of(dir.path());
        let second = &segments[1];
        // Name the second segment one offset lower: it now starts inside the first.
        let lower = second.base_offset - 1;
        for kind in [FileKind::Log, FileKind::Index, FileKind::TimeIndex] {
            std::fs::rename(
                file_name::file_path(dir.path(), second.base_offset, kind),
                file_name::file_path(dir.path(), lower, kind),
            )?;
        }
        let report = verify_partition(dir.path())?;
        assert!(
            report.problems.iter().any(|p| p.kind
                == ProblemKind::SegmentOverlap {
                    segment_base: lower,
                    previous_next_offset: second.base_offset,
                }),
            "{:#?}",
            report.problems
        );
        Ok(())
    }

    #[test]
    fn index_files_need_a_base_offset() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("copy.index");
        std::fs::write(&path, [0, 0, 0, 3, 0, 0, 1, 0])?;
        assert!(matches!(
            offset_index_entries(&path, None),
            Err(Error::NotASegmentFile { .. })
        ));
        let entries = offset_index_entries(&path, Some(100))?.entries;
        assert_eq!(
            entries,
            [OffsetIndexEntry {
                offset: 103,
                relative_offset: 3,
                position: 256
            }]
        );
        assert!(matches!(
            verify_segment(&path, SegmentRole::Active),
            Err(Error::NotASegmentFile { .. })
        ));
        assert!(matches!(
            verify_partition(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
        let empty = verify_partition(dir.path())?;
        assert_eq!((empty.segments, empty.batches, empty.is_ok()), (0, 0, true));
        Ok(())
    }

    #[test]
    fn kafka_made_fixtures_verify() -> TestResult {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-made");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::result::Result<_, _>>()?;
        dirs.retain(|d| d.is_dir());
        dirs.sort();
        assert!(dirs.len() >= 10, "fixtures: {dirs:?}");
        for dir in dirs {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)?;
            let summary = &manifest["summary"];
            let report = verify_partition(&dir)?;
            assert!(report.is_ok(), "{}: {:#?}", dir.display(), report.problems);
            assert_eq!(report.torn_tail, None, "{}", dir.display());
            assert_eq!(Some(report.segments as u64), summary["files"].as_u64());
            assert_eq!(Some(report.batches), summary["batches"].as_u64());
            assert_eq!(Some(report.records), summary["records"].as_u64());

            // Compressed batches decode when the build has their codec, and say which codec
            // they use when it does not.
            let (mut decoded, mut refused) = (0, 0);
            for segment in list_segments(&dir)? {
                assert_eq!((&segment.index, &segment.time_index), (&None, &None));
                let mut reader = LogFileReader::open(&segment.log)?;
                while let Some(batch) = reader.next_batch()? {
                    assert!(batch.info().crc_valid);
                    let codec = batch.info().header.compression();
                    match batch.owned_records() {
                        BatchRecords::Decoded(records) => {
                            assert_eq!(records.len() as i32, batch.info().header.records_count);
                            assert!(codec.is_some_and(crate::record::is_supported));
                            decoded += 1;
                        }
                        BatchRecords::Compressed(c) => {
                            assert_eq!(Some(c), codec);
                            assert!(!crate::record::is_supported(c));
                            refused += 1;
                        }
                        other => panic!("{}: {other:?}", dir.display()),
                    }
                }
            }
            assert_eq!(decoded + refused, report.batches, "{}", dir.display());
        }
        Ok(())
    }

    /// A segment made with the codec and the crate's own index builder: `sizes` records per
    /// batch, offsets starting at `base` with a gap of `gap` between batches.
    fn synthetic_segment(base: i64, sizes: &[usize], gap: i64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut log = Vec::new();
        let mut indexes = Indexes {
            offsets: Index::new(),
            times: Index::new(),
        };
        let mut builder = IndexBuilder::new(0, base);
        let mut offset = base;
        for (j, &n) in sizes.iter().enumerate() {
            let values: Vec<Vec<u8>> = (0..n).map(|k| vec![b'v'; j + k]).collect();
            let records: Vec<Record<'_>> = values
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    Record::keyed(b"k", v).with_timestamp(1_000 + ((j * 7 + k * 3) % 11) as i64)
                })
                .collect();
            let position = log.len() as u64;
            let params = BatchParams {
                base_offset: offset,
                ..BatchParams::default()
            };
            let encoded = encode_batch(&mut log, &params, &records, 0).expect("encode");
            let indexed = IndexedBatch {
                position,
                size: encoded.size as u64,
                last_offset: encoded.last_offset,
                max_timestamp: encoded.max_timestamp,
            };
            builder.on_batch(&mut indexes, base, indexed);
            offset = encoded.last_offset + 1 + gap;
        }
        builder.finish(&mut indexes, base);
        (
            log,
            indexes.offsets.as_bytes().to_vec(),
            indexes.times.as_bytes().to_vec(),
        )
    }

    fn write_segment(dir: &Path, base: i64, files: &(Vec<u8>, Vec<u8>, Vec<u8>)) -> PathBuf {
        let log = file_name::file_path(dir, base, FileKind::Log);
        std::fs::write(&log, &files.0).expect("write");
        std::fs::write(file_name::file_path(dir, base, FileKind::Index), &files.1).expect("write");
        std::fs::write(
            file_name::file_path(dir, base, FileKind::TimeIndex),
            &files.2,
        )
        .expect("write");
        log
    }

    /// Everything the module offers, over whatever is in `dir`; nothing may panic or fail.
    fn inspect_everything(dir: &Path) -> VerifyReport {
        for segment in list_segments(dir).expect("list") {
            let mut reader = LogFileReader::open(&segment.log).expect("open");
            while let Some(batch) = reader.next_batch().expect("read") {
                let _ = batch.owned_records();
                let _ = batch.info().to_owned();
            }
            if let Some(tail) = reader.tail() {
                let _ = tail.to_string();
            }
            batches(&segment.log).expect("batches");
            for role in [SegmentRole::Active, SegmentRole::Sealed] {
                let report = verify_segment(&segment.log, role).expect("verify");
                for p in &report.problems {
                    let _ = p.to_string();
                }
            }
            if let Some(path) = &segment.index {
                offset_index_entries(path, None).expect("index");
            }
            if let Some(path) = &segment.time_index {
                time_index_entries(path, None).expect("time index");
            }
        }
        let report = verify_partition(dir).expect("verify");
        for p in report.problems.iter().chain(&report.torn_tail) {
            let _ = p.to_string();
        }
        report
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_files_never_panic(
            log in proptest::collection::vec(any::<u8>(), 0..1500),
            index in proptest::collection::vec(any::<u8>(), 0..100),
            times in proptest::collection::vec(any::<u8>(), 0..100),
            second in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            write_segment(dir.path(), 7, &(log.clone(), index.clone(), times.clone()));
            if second {
                write_segment(dir.path(), 9, &(times, log, index));
            }
            inspect_everything(dir.path());
        }

        #[test]
        fn made_segments_verify_and_damaged_ones_never_panic(
            sizes in proptest::collection::vec(1usize..5, 1..10),
            gap in 0i64..3,
            damage in proptest::collection::vec((any::<u16>(), any::<u8>(), 0usize..3), 0..4),
            cut in proptest::option::of(any::<u16>()),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let base = 100;
            let mut files = synthetic_segment(base, &sizes, gap);
            write_segment(dir.path(), base, &files);
            let report = inspect_everything(dir.path());
            prop_assert!(report.is_ok(), "{:#?}", report.problems);
            prop_assert_eq!(report.records, sizes.iter().sum::<usize>() as u64);

            for &(at, xor, which) in &damage {
                let file = match which {
                    0 => &mut files.0,
                    1 => &mut files.1,
                    _ => &mut files.2,
                };
                if !file.is_empty() {
                    let at = at as usize % file.len();
                    file[at] ^= xor.max(1);
                }
            }
            if let Some(cut) = cut {
                let len = files.0.len();
                files.0.truncate(cut as usize % (len + 1));
            }
            write_segment(dir.path(), base, &files);
            inspect_everything(dir.path());
        }
    }
}
