//! RecordBatch v2: the 61-byte header, encoding, framing, CRC-32C and record iteration.
//!
//! Layout (big-endian; kafka-log-format.md §2.1):
//!
//! | pos | size | field                 | | pos | size | field          |
//! |-----|------|-----------------------|-|-----|------|----------------|
//! | 0   | 8    | baseOffset            | | 27  | 8    | baseTimestamp  |
//! | 8   | 4    | batchLength (size-12) | | 35  | 8    | maxTimestamp   |
//! | 12  | 4    | partitionLeaderEpoch  | | 43  | 8    | producerId     |
//! | 16  | 1    | magic (2)             | | 51  | 2    | producerEpoch  |
//! | 17  | 4    | crc (of 21..end)      | | 53  | 4    | baseSequence   |
//! | 21  | 2    | attributes            | | 57  | 4    | recordsCount   |
//! | 23  | 4    | lastOffsetDelta       | | 61  | ...  | records        |

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt;

use super::codec::{self, CompressionLevels, MIN_RECORD_LEN};
use super::error::{DecodeError, DecodeErrorKind};
use super::varint::{
    VarintError, put_varint, put_varlong, read_varint, read_varlong, varint_len, varlong_len,
};
use super::{Compression, Header, Record, TimestampType};

/// Bytes before a batch's `partitionLeaderEpoch`: `baseOffset` and `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header; a batch with no records is exactly this long.
pub const BATCH_HEADER_LEN: usize = 61;
/// The only magic byte supported: RecordBatch v2.
pub const MAGIC: i8 = 2;
/// `producerId` of a batch without an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch without an idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch without an idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` when no leader stamped the batch.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// A missing timestamp.
pub const NO_TIMESTAMP: i64 = -1;

const MAGIC_POS: usize = 16;
pub(super) const CRC_POS: usize = 17;
pub(super) const CRC_START: usize = 21;
const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

const _: () = assert!(BATCH_HEADER_LEN == 57 + 4 && CRC_START == CRC_POS + 4);

/// The decoded 61-byte header of a v2 batch, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record slot.
    pub base_offset: i64,
    /// Bytes after this field to the end of the batch (the batch's size minus 12).
    pub batch_length: i32,
    /// Leader epoch stamped by the writer; -1 for none. Not covered by the CRC.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// Stored CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Last offset minus base offset.
    pub last_offset_delta: i32,
    /// Timestamp the record deltas are relative to (the delete horizon if that bit is set).
    pub base_timestamp: i64,
    /// Largest record timestamp (CreateTime) or the append time (LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` and checks what the header alone can show:
    /// the magic byte, `batchLength >= 49`, non-negative counts, and a last offset
    /// (`baseOffset + lastOffsetDelta`) of at most `i64::MAX`. It does not check that the
    /// whole batch is present, nor its CRC (see [`Batch::parse`] and [`Batch::verify_crc`]).
    #[inline(always)]
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        // Magic first: a header of another version has another layout.
        if let Some(&magic) = buf.get(MAGIC_POS)
            && magic as i8 != MAGIC
        {
            return Err(DecodeError::new(
                DecodeErrorKind::UnsupportedMagic(magic as i8),
                MAGIC_POS,
            ));
        }
        let Some(header) = buf.get(..BATCH_HEADER_LEN).and_then(BatchHeader::fields) else {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: BATCH_HEADER_LEN,
                    available: buf.len(),
                },
                0,
            ));
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(DecodeError::new(
                DecodeErrorKind::BatchLengthTooSmall(header.batch_length),
                8,
            ));
        }
        if header.last_offset_delta < 0 {
            return Err(DecodeError::new(
                DecodeErrorKind::NegativeLastOffsetDelta(header.last_offset_delta),
                23,
            ));
        }
        if header.records_count < 0 {
            return Err(DecodeError::new(
                DecodeErrorKind::NegativeRecordCount(header.records_count),
                57,
            ));
        }
        // Offsets past i64::MAX cannot exist: refused here, record offsets (`base + delta`,
        // delta at most `lastOffsetDelta`) never wrap.
        if header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .is_none()
        {
            return Err(DecodeError::new(
                DecodeErrorKind::LastOffsetOverflow {
                    base_offset: header.base_offset,
                    last_offset_delta: header.last_offset_delta,
                },
                0,
            ));
        }
        Ok(header)
    }

    /// The header's fields, unchecked; `None` if `h` is shorter than a header. Given exactly
    /// 61 bytes, as [`parse`](Self::parse) does, the length checks fold away.
    #[inline(always)]
    fn fields(h: &[u8]) -> Option<Self> {
        Some(BatchHeader {
            base_offset: be_i64(h, 0)?,
            batch_length: be_i32(h, 8)?,
            partition_leader_epoch: be_i32(h, 12)?,
            magic: *h.get(MAGIC_POS)? as i8,
            crc: be_i32(h, CRC_POS)? as u32,
            attributes: be_i16(h, 21)?,
            last_offset_delta: be_i32(h, 23)?,
            base_timestamp: be_i64(h, 27)?,
            max_timestamp: be_i64(h, 35)?,
            producer_id: be_i64(h, 43)?,
            producer_epoch: be_i16(h, 51)?,
            base_sequence: be_i32(h, 53)?,
            records_count: be_i32(h, 57)?,
        })
    }

    /// The 61 header bytes, exactly as stored (the CRC field included).
    pub fn to_bytes(&self) -> [u8; BATCH_HEADER_LEN] {
        let mut bytes = [0u8; BATCH_HEADER_LEN];
        let h = &mut bytes;
        h[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[MAGIC_POS] = self.magic as u8;
        h[17..21].copy_from_slice(&self.crc.to_be_bytes());
        h[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        h[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.records_count.to_be_bytes());
        bytes
    }

    /// The batch's total size in bytes (`batchLength + 12`).
    pub fn size(&self) -> usize {
        // batch_length >= 49 once parsed; a negative value can only come from a hand-made header.
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record slot (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The raw codec id in attribute bits 0-2.
    pub fn compression_id(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// The codec, or `None` for an unassigned id (5-7).
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    /// CreateTime or LogAppendTime (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// A control batch, such as a transaction marker (attribute bit 5). Its records are never data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// `baseTimestamp` holds the compaction delete horizon (attribute bit 6).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
}

/// A batch's extent, read from its first 27 bytes without decoding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The batch's first offset.
    pub(crate) base_offset: i64,
    /// The offset after the batch.
    pub(crate) next_offset: i64,
    /// The batch's size in bytes.
    pub(crate) size: usize,
}

/// How many bytes [`peek_frame`] reads: through the last offset delta.
pub(crate) const FRAME_LEN: usize = 27;

/// The extent of the batch at the start of `buf`, if its framing fields are plausible (magic 2,
/// a length of at least 49, a non-negative last offset delta). Nothing else is checked: for
/// passing over batches whose contents are not wanted.
#[inline]
pub(crate) fn peek_frame(buf: &[u8]) -> Option<Frame> {
    let b = buf.get(..FRAME_LEN)?;
    let base_offset = be_i64(b, 0)?;
    let length = be_i32(b, 8)?;
    let last_offset_delta = be_i32(b, 23)?;
    if *b.get(MAGIC_POS)? as i8 != MAGIC || length < MIN_BATCH_LENGTH || last_offset_delta < 0 {
        return None;
    }
    Some(Frame {
        base_offset,
        next_offset: base_offset.checked_add(i64::from(last_offset_delta) + 1)?,
        size: usize::try_from(length).ok()? + LOG_OVERHEAD,
    })
}

/// An uncompressed data batch found by [`plain_batch`]: what reading its records needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlainBatch {
    /// What decoding its records needs.
    pub(crate) meta: RecordsMeta,
    /// The batch's size in bytes.
    pub(crate) size: usize,
    /// The stored CRC-32C of bytes 21 to the batch's end (not checked yet).
    pub(crate) crc: u32,
    /// The transactional bit.
    pub(crate) transactional: bool,
}

impl PlainBatch {
    /// The offset after the batch (`plain_batch` refused a last offset past `i64::MAX`).
    #[inline(always)]
    pub(crate) fn next_offset(&self) -> i64 {
        self.meta.base_offset + i64::from(self.meta.last_offset_delta) + 1
    }

    /// The largest record timestamp the header declares.
    #[inline(always)]
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.meta.max_timestamp
    }

    /// Whether the CRC-32C of `batch` (the batch's bytes, exactly `size` of them) is the
    /// stored one.
    #[inline(always)]
    pub(crate) fn crc_matches(&self, batch: &[u8]) -> bool {
        batch
            .get(CRC_START..)
            .is_some_and(|covered| crate::crc::crc32c(covered) == self.crc)
    }
}

/// The batch at the start of `buf` when it lies whole in `buf`, has a header
/// [`Batch::parse`] accepts and is an uncompressed data batch (not a control batch); `None`
/// for anything else, when the caller takes the long way and learns what is wrong. The CRC
/// is not checked ([`PlainBatch::crc_matches`]). A sequential read's per-batch path: it
/// decodes only the fields reading needs, so it stays small enough to inline. A test holds
/// it to agreement with [`Batch::parse`].
#[inline(always)]
pub(crate) fn plain_batch(buf: &[u8]) -> Option<PlainBatch> {
    let h: &[u8; BATCH_HEADER_LEN] = buf.first_chunk()?;
    let base_offset = i64::from_be_bytes(*h[0..].first_chunk()?);
    let batch_length = i32::from_be_bytes(*h[8..].first_chunk()?);
    let attributes = i16::from_be_bytes(*h[21..].first_chunk()?);
    let last_offset_delta = i32::from_be_bytes(*h[23..].first_chunk()?);
    let records_count = i32::from_be_bytes(*h[57..].first_chunk()?);
    if h[MAGIC_POS] as i8 != MAGIC
        || batch_length < MIN_BATCH_LENGTH
        || last_offset_delta < 0
        || records_count < 0
        || attributes & (COMPRESSION_MASK | CONTROL_BIT) != 0
    {
        return None;
    }
    base_offset.checked_add(i64::from(last_offset_delta))?;
    // `batch_length` is at least 49 here, so the cast keeps it.
    let size = batch_length as usize + LOG_OVERHEAD;
    if size > buf.len() {
        return None;
    }
    Some(PlainBatch {
        meta: RecordsMeta {
            base_offset,
            base_timestamp: i64::from_be_bytes(*h[27..].first_chunk()?),
            max_timestamp: i64::from_be_bytes(*h[35..].first_chunk()?),
            log_append_time: attributes & TIMESTAMP_TYPE_BIT != 0,
            records_count,
            last_offset_delta,
        },
        size,
        crc: u32::from_be_bytes(*h[CRC_POS..].first_chunk()?),
        transactional: attributes & TRANSACTIONAL_BIT != 0,
    })
}

/// One complete v2 batch inside a byte slice, its header decoded.
///
/// Parsing checks the framing; the CRC is checked separately by [`Batch::verify_crc`], so a
/// scan can tell a torn batch (too short) from a damaged one (bad CRC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The first batch in `buf`. Errors: [`DecodeErrorKind::Truncated`] when `buf` ends before
    /// the batch does, and the header errors of [`BatchHeader::parse`].
    #[inline(always)]
    pub fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let header = BatchHeader::parse(buf)?;
        let size = header.size();
        let Some(bytes) = buf.get(..size) else {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: size,
                    available: buf.len(),
                },
                0,
            ));
        };
        Ok(Batch { header, bytes })
    }

    /// The decoded header.
    #[inline]
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The batch's size in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// CRC-32C of bytes 21..end, as it should be stored.
    #[inline(always)]
    pub fn compute_crc(&self) -> u32 {
        // `parse` made the batch at least a header long: the fallback is never taken.
        crate::crc::crc32c(self.bytes.get(CRC_START..).unwrap_or_default())
    }

    /// The records section: the bytes after the header.
    fn records_section(&self) -> &'a [u8] {
        self.bytes.get(BATCH_HEADER_LEN..).unwrap_or_default()
    }

    /// Checks the stored CRC against the bytes.
    #[inline(always)]
    pub fn verify_crc(&self) -> Result<(), DecodeError> {
        let computed = self.compute_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(DecodeError::new(
                DecodeErrorKind::CrcMismatch {
                    stored: self.header.crc,
                    computed,
                },
                CRC_POS,
            ))
        }
    }

    /// The batch's records, decoded lazily and borrowing from its bytes.
    ///
    /// A compressed batch is [`DecodeErrorKind::UnsupportedCompression`] here (its framing and
    /// CRC are still valid data): read it with [`Batch::records_in`]. Codec ids 5-7 are
    /// [`DecodeErrorKind::UnknownCompression`].
    pub fn records(&self) -> Result<Records<'a>, DecodeError> {
        match self.codec()? {
            Compression::None => Ok(self.records_of(self.records_section())),
            codec => Err(DecodeError::new(
                DecodeErrorKind::UnsupportedCompression(codec),
                21,
            )),
        }
    }

    /// The batch's records, whatever its codec: an uncompressed batch's borrow from its bytes;
    /// a compressed batch's records section is decompressed into `buf` (cleared first), at most
    /// `max_decompressed` bytes of it (see
    /// [`DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES`](super::DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)),
    /// and its records borrow from there. Reuse `buf` across batches to allocate once.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::UnsupportedCompression`] for a codec this build leaves out,
    /// [`DecodeErrorKind::UnknownCompression`] for ids 5-7,
    /// [`DecodeErrorKind::InvalidCompressedData`], [`DecodeErrorKind::DecompressedTooLarge`] and
    /// [`DecodeErrorKind::RecordCountExceedsData`] for a compressed section that cannot be
    /// right. The iterator then reports faults in the records themselves.
    pub fn records_in<'b>(
        &self,
        buf: &'b mut Vec<u8>,
        max_decompressed: usize,
    ) -> Result<Records<'b>, DecodeError>
    where
        'a: 'b,
    {
        if self.codec()? == Compression::None {
            return Ok(self.records_of(self.records_section()));
        }
        buf.clear();
        self.decompress_into(buf, max_decompressed)?;
        Ok(self.records_of(buf))
    }

    /// Appends the records section in clear to `out`: decompressed for a compressed batch,
    /// copied for an uncompressed one. Checks the cap and that `recordsCount` fits the result.
    pub(crate) fn decompress_into(
        &self,
        out: &mut Vec<u8>,
        max_decompressed: usize,
    ) -> Result<(), DecodeError> {
        let codec = self.codec()?;
        let start = out.len();
        codec::decompress(codec, self.records_section(), max_decompressed, out)
            .map_err(|kind| DecodeError::new(kind, BATCH_HEADER_LEN))?;
        let len = out.len() - start;
        let declared = self.header.records_count;
        if usize::try_from(declared).unwrap_or(usize::MAX) > len / MIN_RECORD_LEN {
            return Err(DecodeError::new(
                DecodeErrorKind::RecordCountExceedsData {
                    declared,
                    decompressed: len,
                },
                57,
            ));
        }
        Ok(())
    }

    /// The codec, or [`DecodeErrorKind::UnknownCompression`].
    fn codec(&self) -> Result<Compression, DecodeError> {
        self.header.compression().ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::UnknownCompression(self.header.compression_id()),
                21,
            )
        })
    }

    fn records_of<'b>(&self, buf: &'b [u8]) -> Records<'b> {
        Records {
            buf,
            meta: RecordsMeta::of(&self.header),
            cursor: RecordCursor::START,
        }
    }
}

/// Iterates over the batches laid end to end in a byte slice (a `.log` file's contents),
/// checking framing but not CRCs. It stops after the first error.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    /// Batches of `buf`, from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Byte position of the next batch in the slice.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<Batch<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|rest| !rest.is_empty())?;
        match Batch::parse(rest) {
            Ok(batch) => {
                self.pos += batch.size();
                Some(Ok(batch))
            }
            Err(mut e) => {
                self.failed = true;
                e.position += self.pos;
                Some(Err(e))
            }
        }
    }
}

/// The records of an uncompressed batch, decoded one at a time. Each item borrows from the
/// batch's bytes. After the last declared record, leftover bytes are an error, as in Kafka.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    meta: RecordsMeta,
    cursor: RecordCursor,
}

/// What decoding a batch's records needs from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordsMeta {
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
    records_count: i32,
    last_offset_delta: i32,
}

/// Where a records iteration stands, so an owner of the batch bytes can go on later without
/// holding a borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordCursor {
    pos: usize,
    read: i32,
    prev_delta: i64,
    done: bool,
}

impl RecordCursor {
    /// Before the first record.
    pub(crate) const START: RecordCursor = RecordCursor {
        pos: 0,
        read: 0,
        prev_delta: -1,
        done: false,
    };

    /// Before the record that starts at `pos` of the records section, the `read`th, whose
    /// predecessor had offset delta `prev_delta` (-1 for the first).
    pub(crate) fn at(pos: usize, read: i32, prev_delta: i64) -> RecordCursor {
        RecordCursor {
            pos,
            read,
            prev_delta,
            done: false,
        }
    }

    /// Where the next record starts in the records section.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

impl RecordsMeta {
    pub(crate) fn of(header: &BatchHeader) -> RecordsMeta {
        RecordsMeta {
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            max_timestamp: header.max_timestamp,
            log_append_time: header.timestamp_type() == TimestampType::LogAppendTime,
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        }
    }

    /// The batch's base offset.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The records the header declares.
    pub(crate) fn records_count(&self) -> i32 {
        self.records_count
    }

    /// The next record of the records area `buf` (the batch's bytes after its header),
    /// advancing `cursor`. After an error or the last record, `None`.
    #[inline]
    pub(crate) fn step<'a>(
        &self,
        buf: &'a [u8],
        cursor: &mut RecordCursor,
    ) -> Option<Result<RecordView<'a>, DecodeError>> {
        if cursor.done {
            return None;
        }
        let failed = |cursor: &mut RecordCursor, kind, pos: usize| {
            cursor.done = true;
            Some(Err(DecodeError::new(kind, BATCH_HEADER_LEN + pos)))
        };
        if cursor.read == self.records_count {
            cursor.done = true;
            let left = buf.len().saturating_sub(cursor.pos);
            if left > 0 {
                return failed(cursor, DecodeErrorKind::TrailingBytes(left), cursor.pos);
            }
            return None;
        }
        if cursor.pos >= buf.len() {
            let kind = DecodeErrorKind::MissingRecords {
                declared: self.records_count,
                found: cursor.read,
            };
            return failed(cursor, kind, cursor.pos);
        }
        match self.decode(buf, cursor) {
            Ok(record) => {
                cursor.read += 1;
                Some(Ok(record))
            }
            Err((kind, pos)) => failed(cursor, kind, pos),
        }
    }

    /// Whether `cursor` stands after the last record of a records area `len` bytes long with
    /// nothing after it: where [`step`](Self::step) would end without an error.
    #[inline]
    pub(crate) fn finished(&self, len: usize, cursor: &RecordCursor) -> bool {
        !cursor.done && cursor.read == self.records_count && cursor.pos == len
    }

    /// Whether records are left to read after `cursor` (they may still fail to decode).
    #[inline]
    pub(crate) fn has_more(&self, cursor: &RecordCursor) -> bool {
        !cursor.done && cursor.read != self.records_count
    }

    /// The next record of `buf` if there is one and it decodes, as positions in `buf`;
    /// otherwise `None`, and `cursor` has not moved ([`step`](Self::step) then says why).
    ///
    /// The readers' fast path: it accepts exactly the records [`decode`](Self::decode) does,
    /// with the same fields, but builds no error, so it stays small enough to inline. A test
    /// holds the two to agreement on damaged bytes.
    #[inline(always)]
    pub(crate) fn next_fields(
        &self,
        buf: &[u8],
        cursor: &mut RecordCursor,
    ) -> Option<RecordFields> {
        if !self.has_more(cursor) {
            return None;
        }
        let mut p = cursor.pos;
        let len = read_varint(buf, &mut p).ok()?;
        let body_end = p.checked_add(usize::try_from(len).ok()?)?;
        let body = buf.get(..body_end)?;
        // attributes: one byte, unused.
        if body.len() <= p {
            return None;
        }
        p += 1;
        let ts_delta = read_varlong(body, &mut p).ok()?;
        let offset_delta = read_varint(body, &mut p).ok()?;
        if offset_delta < 0
            || offset_delta > self.last_offset_delta
            || i64::from(offset_delta) <= cursor.prev_delta
        {
            return None;
        }
        let key = field_at(body, &mut p)?;
        let value = field_at(body, &mut p)?;
        let count = read_varint(body, &mut p).ok()?;
        let headers_start = p;
        // Each header takes at least two bytes (as `decode` checks).
        if usize::try_from(count).ok()? > (body_end - p) / 2 {
            return None;
        }
        for _ in 0..count {
            // A header key may not be null.
            field_at(body, &mut p)??;
            field_at(body, &mut p)?;
        }
        if p != body_end {
            return None;
        }
        cursor.pos = p;
        cursor.prev_delta = i64::from(offset_delta);
        cursor.read += 1;
        Some(RecordFields {
            // Cannot wrap, as in `decode`.
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: if self.log_append_time {
                self.max_timestamp
            } else {
                self.base_timestamp.wrapping_add(ts_delta)
            },
            key,
            value,
            headers: (headers_start, body_end - headers_start),
            header_count: count as u32,
        })
    }

    #[inline]
    fn decode<'a>(
        &self,
        buf: &'a [u8],
        cursor: &mut RecordCursor,
    ) -> Result<RecordView<'a>, (DecodeErrorKind, usize)> {
        let start = cursor.pos;
        let mut p = start;
        let len = read_varint(buf, &mut p).map_err(|_| (DecodeErrorKind::InvalidVarint, start))?;
        let body_start = p;
        let body = usize::try_from(len)
            .ok()
            .and_then(|l| buf.get(..body_start + l))
            .ok_or((DecodeErrorKind::InvalidRecordLength(len), start))?;
        let body_len = body.len() - body_start;
        let bad_varint = |at: usize| move |_: VarintError| (DecodeErrorKind::InvalidVarint, at);

        // attributes: one byte, unused.
        if body.len() <= p {
            return Err((DecodeErrorKind::InvalidVarint, p));
        }
        p += 1;
        let ts_delta = read_varlong(body, &mut p).map_err(bad_varint(p))?;
        let at = p;
        let offset_delta = read_varint(body, &mut p).map_err(bad_varint(p))?;
        if offset_delta < 0
            || offset_delta > self.last_offset_delta
            || i64::from(offset_delta) <= cursor.prev_delta
        {
            return Err((
                DecodeErrorKind::OffsetDeltaOutOfRange {
                    delta: offset_delta,
                    last_offset_delta: self.last_offset_delta,
                },
                at,
            ));
        }
        let key = read_bytes(body, &mut p, Null::Allowed)?;
        let value = read_bytes(body, &mut p, Null::Allowed)?;
        let at = p;
        let count = read_varint(body, &mut p).map_err(bad_varint(p))?;
        // Each header takes at least two bytes, so a count beyond that is a lie.
        let headers = body
            .get(p..)
            .filter(|rest| usize::try_from(count).is_ok_and(|c| c <= rest.len() / 2))
            .ok_or((DecodeErrorKind::InvalidHeaderCount(count), at))?;
        for _ in 0..count {
            read_bytes(body, &mut p, Null::Invalid)?;
            read_bytes(body, &mut p, Null::Allowed)?;
        }
        // Once this holds, the headers run to the end of the record: they are all of `headers`.
        let consumed = p - body_start;
        if consumed != body_len {
            return Err((
                DecodeErrorKind::RecordLengthMismatch {
                    declared: body_len,
                    consumed,
                },
                start,
            ));
        }
        cursor.pos = p;
        cursor.prev_delta = i64::from(offset_delta);
        let timestamp = if self.log_append_time {
            self.max_timestamp
        } else {
            self.base_timestamp.wrapping_add(ts_delta)
        };
        Ok(RecordView {
            // Cannot wrap: `offset_delta <= last_offset_delta`, whose sum with the base
            // offset `BatchHeader::parse` checked.
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
            key,
            value,
            headers: Headers {
                buf: headers,
                remaining: count as u32,
            },
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.meta.step(self.buf, &mut self.cursor)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.cursor.done {
            return (0, Some(0));
        }
        let left = (self.meta.records_count - self.cursor.read).max(0) as usize;
        (0, Some(left + 1))
    }
}

/// A record's fields as `(start, len)` positions in its records area: what
/// [`RecordsMeta::next_fields`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    /// `None` for null.
    pub(crate) key: Option<(usize, usize)>,
    /// `None` for null.
    pub(crate) value: Option<(usize, usize)>,
    pub(crate) headers: (usize, usize),
    pub(crate) header_count: u32,
}

/// A length-prefixed byte field at `*p` of `body` as a position, `Some(None)` for null
/// (-1); `None` where [`read_bytes`] reports an error.
#[inline(always)]
fn field_at(body: &[u8], p: &mut usize) -> Option<Option<(usize, usize)>> {
    let len = read_varint(body, p).ok()?;
    if len == -1 {
        return Some(None);
    }
    let n = usize::try_from(len).ok()?;
    let start = *p;
    if n > body.len() - start {
        return None;
    }
    *p += n;
    Some(Some((start, n)))
}

/// Whether a byte field may be null (length -1): an enum, so call sites say which rather than
/// pass a bare bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Null {
    /// A key or a value: -1 is null.
    Allowed,
    /// A header key: -1 is an invalid length.
    Invalid,
}

/// Reads a length-prefixed byte field; -1 is null where `null` allows it.
#[inline(always)]
fn read_bytes<'a>(
    body: &'a [u8],
    p: &mut usize,
    null: Null,
) -> Result<Option<&'a [u8]>, (DecodeErrorKind, usize)> {
    let at = *p;
    let len = read_varint(body, p).map_err(|_| (DecodeErrorKind::InvalidVarint, at))?;
    if len == -1 && null == Null::Allowed {
        return Ok(None);
    }
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|n| body.get(*p..*p + n))
        .ok_or((DecodeErrorKind::InvalidFieldLength(len), at))?;
    *p += bytes.len();
    Ok(Some(bytes))
}

/// A record inside a batch, borrowing its key, value and headers from the batch's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    // Visible to the crate, so a view is built with its fields named: its two offsets and
    // timestamps, and its key and value, have the same types.
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Headers<'a>,
}

impl fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordView")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &super::DebugBytes(self.key))
            .field("value", &super::DebugBytes(self.value))
            .field("headers", &self.headers)
            .finish()
    }
}

impl<'a> RecordView<'a> {
    /// The record's offset.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The effective timestamp: the record's own (CreateTime) or the batch's append time
    /// (LogAppendTime).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, or `None` for null.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, or `None` for null (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The headers, in order.
    #[inline]
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }
}

/// The headers of one record, in stored order (repeated keys included).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    buf: &'a [u8],
    remaining: u32,
}

impl<'a> Headers<'a> {
    /// No headers.
    pub const EMPTY: Headers<'static> = Headers {
        buf: &[],
        remaining: 0,
    };

    #[inline]
    pub(crate) fn from_raw(buf: &'a [u8], count: u32) -> Self {
        Headers {
            buf,
            remaining: count,
        }
    }

    /// The number of headers left in this iterator.
    pub fn count_remaining(&self) -> usize {
        self.remaining as usize
    }

    /// The raw header bytes and count, as stored (for owners that re-create the view).
    pub(crate) fn raw(&self) -> (&'a [u8], u32) {
        (self.buf, self.remaining)
    }
}

/// The headers, as a list.
impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The record decoder validated these bytes; a failure here can only mean a hand-built
        // view, and ends the iteration instead of panicking.
        let mut p = 0;
        let key = read_bytes(self.buf, &mut p, Null::Invalid).ok().flatten();
        let value = read_bytes(self.buf, &mut p, Null::Allowed).ok();
        match (key, value, self.buf.get(p..)) {
            (Some(key), Some(value), Some(rest)) => {
                self.buf = rest;
                self.remaining -= 1;
                Some(Header { key, value })
            }
            _ => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// The header fields of a batch to encode; everything but the records and derived values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchParams {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Leader epoch to stamp (not covered by the CRC); -1 for none.
    pub partition_leader_epoch: i32,
    /// CreateTime or LogAppendTime.
    pub timestamp_type: TimestampType,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Set the transactional bit.
    pub transactional: bool,
    /// Set the control bit. Only for tools and tests: a log never accepts control batches as data.
    pub control: bool,
}

impl Default for BatchParams {
    fn default() -> Self {
        BatchParams {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            timestamp_type: TimestampType::CreateTime,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
        }
    }
}

/// What a batch's header takes from its records: the header fields [`BatchParams`] leaves out.
struct RecordsSummary {
    batch_length: i32,
    /// The codec's id, or 0.
    codec: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    /// The records' largest CreateTime (replaced by `now_ms` under LogAppendTime).
    max_timestamp: i64,
    now_ms: i64,
}

impl BatchParams {
    /// The header of a batch of these params over records summed up by `records`, CRC 0
    /// (written once the batch is complete).
    #[inline]
    fn header(&self, records: RecordsSummary) -> BatchHeader {
        let mut attributes = records.codec;
        let mut max_timestamp = records.max_timestamp;
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
            max_timestamp = records.now_ms;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        BatchHeader {
            base_offset: self.base_offset,
            batch_length: records.batch_length,
            partition_leader_epoch: self.partition_leader_epoch,
            magic: MAGIC,
            crc: 0,
            attributes,
            last_offset_delta: records.last_offset_delta,
            base_timestamp: records.base_timestamp,
            max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count: records.last_offset_delta + 1,
        }
    }
}

/// What [`encode_batch`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Bytes written.
    pub size: usize,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's `maxTimestamp`.
    pub max_timestamp: i64,
    /// The batch's `baseTimestamp` (its first record's timestamp).
    pub first_timestamp: i64,
}

/// Why a batch could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A batch needs at least one record.
    #[error("a batch needs at least one record")]
    Empty,
    /// A key, value, header or record is longer than Kafka's i32 length fields allow, or the
    /// batch holds more records than its i32 count allows.
    #[error("a field, record or batch exceeds Kafka's 2 GiB limits")]
    TooLarge,
    /// The base offset is negative, or the batch's last offset would pass `i64::MAX`.
    #[error("offsets must lie in 0..=i64::MAX")]
    OffsetOutOfRange,
    /// The codec is left out of this build (its cargo feature is off), or failed to compress.
    #[error("cannot compress with {0} in this build")]
    UnsupportedCompression(Compression),
}

/// Appends one uncompressed v2 batch holding `records` to `out` and returns what it wrote.
///
/// Records without a timestamp take `now_ms`. With [`TimestampType::LogAppendTime`] the batch's
/// `maxTimestamp` is `now_ms` (what every record then reads as), as a broker stamps it. On error
/// `out` is left as it was.
pub fn encode_batch(
    out: &mut Vec<u8>,
    params: &BatchParams,
    records: &[Record<'_>],
    now_ms: i64,
) -> Result<EncodedBatch, EncodeError> {
    if let [record] = records {
        // The common case, one record a call; nothing is written before every check passed.
        return encode_single(out, params, record, now_ms);
    }
    let start = out.len();
    let result = encode_into(out, params, records, now_ms, None);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// [`varint_len`], answered without bit arithmetic for the one-byte values (-64..64) most
/// length fields of a small record hold (a null key's -1, no headers' 0).
#[inline(always)]
fn small_varint_len(n: i32) -> usize {
    if (-64..64).contains(&n) {
        1
    } else {
        varint_len(n)
    }
}

/// A cursor writing fields into a slice sized for them in advance. Writes past the end are
/// left out (never a panic); `encode_single` sizes the slice exactly, which its debug check of
/// the batch size confirms in tests.
struct Place<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl Place<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        if let Some(to) = self.bytes.get_mut(self.at..self.at + bytes.len()) {
            to.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) {
        self.at += n;
    }

    /// `n` as a zig-zag varint, as [`put_varint`] writes it.
    #[inline(always)]
    fn varint(&mut self, n: i32) {
        let mut u = ((n << 1) ^ (n >> 31)) as u32;
        while u >= 0x80 {
            self.byte((u as u8) | 0x80);
            u >>= 7;
        }
        self.byte(u as u8);
    }

    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        if let Some(to) = self.bytes.get_mut(self.at) {
            *to = byte;
        }
        self.at += 1;
    }
}

/// A record's headers after their count; their lengths were checked in the size pass.
#[inline]
fn put_headers(out: &mut Vec<u8>, headers: &[Header<'_>]) {
    for header in headers {
        put_varint(out, header.key.len() as i32);
        out.extend_from_slice(header.key);
        match header.value {
            Some(v) => {
                put_varint(out, v.len() as i32);
                out.extend_from_slice(v);
            }
            None => put_varint(out, -1),
        }
    }
}

/// [`encode_batch`] of exactly one record, uncompressed: the same bytes, written with one
/// reservation and a few copies, and the CRC computed once over the finished batch. A lone
/// record's timestamp and offset deltas are both 0, so its size is known before a byte is
/// written, and the header goes out complete but for the CRC.
fn encode_single(
    out: &mut Vec<u8>,
    params: &BatchParams,
    record: &Record<'_>,
    now_ms: i64,
) -> Result<EncodedBatch, EncodeError> {
    if params.base_offset < 0 {
        return Err(EncodeError::OffsetOutOfRange);
    }
    let key = record.key.unwrap_or_default();
    let value = record.value.unwrap_or_default();
    let key_len = record.key.map_or(Ok(-1), |k| len_i32(k.len()))?;
    let value_len = record.value.map_or(Ok(-1), |v| len_i32(v.len()))?;
    let header_count = len_i32(record.headers.len())?;
    let mut headers_len = 0usize;
    for header in record.headers {
        let k = len_i32(header.key.len())?;
        let v = header.value.map_or(Ok(-1), |v| len_i32(v.len()))?;
        headers_len += varint_len(k) + header.key.len() + varint_len(v);
        headers_len += header.value.map_or(0, <[u8]>::len);
    }
    // Attributes, timestamp delta 0, offset delta 0: one byte each.
    let body = 3
        + small_varint_len(key_len)
        + key.len()
        + small_varint_len(value_len)
        + value.len()
        + small_varint_len(header_count)
        + headers_len;
    let body_len = len_i32(body)?;
    let size = BATCH_HEADER_LEN + small_varint_len(body_len) + body;
    let batch_length = len_i32(size - LOG_OVERHEAD)?;
    let timestamp = record.timestamp.unwrap_or(now_ms);
    let header = params.header(RecordsSummary {
        batch_length,
        codec: 0,
        last_offset_delta: 0,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        now_ms,
    });
    let start = out.len();
    // Zeroed room for the whole batch, then each field written in place: the three one-byte
    // record fields and a header-less record's count are already the zeros they must be.
    out.resize(start + size, 0);
    let batch = out.get_mut(start..).unwrap_or_default();
    let mut at = Place {
        bytes: batch,
        at: 0,
    };
    at.put(&header.to_bytes());
    at.varint(body_len);
    at.skip(3); // attributes, timestamp delta, offset delta
    at.varint(key_len);
    at.put(key);
    at.varint(value_len);
    at.put(value);
    if !record.headers.is_empty() {
        // Rare on this path: written after what is placed, the sizes already counted.
        let placed = at.at;
        out.truncate(start + placed);
        put_varint(out, header_count);
        put_headers(out, record.headers);
    }
    debug_assert_eq!(out.len() - start, size);
    // Cannot panic: `out[start..]` holds the whole batch just written.
    #[allow(clippy::indexing_slicing)]
    {
        let batch = &mut out[start..];
        let crc = crate::crc::crc32c(&batch[CRC_START..]);
        batch[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(EncodedBatch {
        size,
        last_offset: params.base_offset,
        max_timestamp: header.max_timestamp,
        first_timestamp: timestamp,
    })
}

/// Appends one v2 batch holding `records`, its records section compressed with `codec` in
/// Kafka's framing, to `out`. The header stays in clear; the CRC covers the compressed bytes.
/// With [`Compression::None`] this is [`encode_batch`]. On error `out` is left as it was.
///
/// # Errors
///
/// Those of [`encode_batch`], and [`EncodeError::UnsupportedCompression`] for a codec this
/// build leaves out.
pub fn encode_compressed_batch(
    out: &mut Vec<u8>,
    params: &BatchParams,
    records: &[Record<'_>],
    now_ms: i64,
    codec: Compression,
    levels: &CompressionLevels,
) -> Result<EncodedBatch, EncodeError> {
    if !codec::is_supported(codec) {
        return Err(EncodeError::UnsupportedCompression(codec));
    }
    let start = out.len();
    let result = encode_into(out, params, records, now_ms, Some((codec, levels)));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Replaces the clear records section at `out[records_at..]` with its compression.
fn compress_records(
    out: &mut Vec<u8>,
    records_at: usize,
    codec: Compression,
    levels: &CompressionLevels,
) -> Result<(), EncodeError> {
    // Cannot panic: `encode_into` pushed the 61 header bytes at `records_at - 61`.
    #[allow(clippy::indexing_slicing)]
    let clear = &out[records_at..];
    let mut compressed = Vec::with_capacity(clear.len() / 2 + 64);
    codec::compress(codec, clear, levels, &mut compressed)
        .map_err(EncodeError::UnsupportedCompression)?;
    out.truncate(records_at);
    out.extend_from_slice(&compressed);
    Ok(())
}

fn len_i32(len: usize) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooLarge)
}

/// Appends a batch of `records` to `out`, its records section compressed if `compression`
/// names a codec.
fn encode_into(
    out: &mut Vec<u8>,
    params: &BatchParams,
    records: &[Record<'_>],
    now_ms: i64,
    compression: Option<(Compression, &CompressionLevels)>,
) -> Result<EncodedBatch, EncodeError> {
    let Some(first) = records.first() else {
        return Err(EncodeError::Empty);
    };
    let last_offset_delta = len_i32(records.len() - 1)?;
    if params.base_offset < 0
        || params
            .base_offset
            .checked_add(i64::from(last_offset_delta))
            .is_none()
    {
        return Err(EncodeError::OffsetOutOfRange);
    }
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
    let base_timestamp = first.timestamp.unwrap_or(now_ms);
    let mut max_timestamp = i64::MIN;
    for (delta, record) in records.iter().enumerate() {
        let timestamp = record.timestamp.unwrap_or(now_ms);
        max_timestamp = max_timestamp.max(timestamp);
        let ts_delta = timestamp.wrapping_sub(base_timestamp);
        let offset_delta = delta as i32; // <= last_offset_delta, checked above
        let key_len = record.key.map_or(Ok(-1), |k| len_i32(k.len()))?;
        let value_len = record.value.map_or(Ok(-1), |v| len_i32(v.len()))?;
        let header_count = len_i32(record.headers.len())?;
        let mut body = 1
            + varlong_len(ts_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + record.key.map_or(0, <[u8]>::len)
            + varint_len(value_len)
            + record.value.map_or(0, <[u8]>::len)
            + varint_len(header_count);
        for header in record.headers {
            let k = len_i32(header.key.len())?;
            let v = header.value.map_or(Ok(-1), |v| len_i32(v.len()))?;
            body += varint_len(k) + header.key.len() + varint_len(v);
            body += header.value.map_or(0, <[u8]>::len);
        }
        put_varint(out, len_i32(body)?);
        out.push(0);
        put_varlong(out, ts_delta);
        put_varint(out, offset_delta);
        put_varint(out, key_len);
        if let Some(key) = record.key {
            out.extend_from_slice(key);
        }
        put_varint(out, value_len);
        if let Some(value) = record.value {
            out.extend_from_slice(value);
        }
        put_varint(out, header_count);
        put_headers(out, record.headers);
    }
    // Kafka's i32 length bounds the clear batch too.
    let mut batch_length = len_i32(out.len() - start - LOG_OVERHEAD)?;
    let mut codec_id = 0i16;
    if let Some((codec, levels)) = compression
        && codec != Compression::None
    {
        compress_records(out, start + BATCH_HEADER_LEN, codec, levels)?;
        batch_length = len_i32(out.len() - start - LOG_OVERHEAD)?;
        codec_id = i16::from(codec.id());
    }
    let size = out.len() - start;
    let header = params.header(RecordsSummary {
        batch_length,
        codec: codec_id,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        now_ms,
    });
    seal_batch(out, start, &header);
    Ok(EncodedBatch {
        size,
        last_offset: params
            .base_offset
            .wrapping_add(i64::from(last_offset_delta)),
        max_timestamp: header.max_timestamp,
        first_timestamp: base_timestamp,
    })
}

/// Writes `header` over the 61 bytes reserved at `out[start..]`, then the CRC of the batch
/// from there to the end of `out`. The caller pushed the header's room, then the records.
#[inline]
fn seal_batch(out: &mut [u8], start: usize, header: &BatchHeader) {
    let Some(batch) = out.get_mut(start..).filter(|b| b.len() >= BATCH_HEADER_LEN) else {
        return;
    };
    // Cannot panic: `batch` holds at least the 61 header bytes (checked above).
    #[allow(clippy::indexing_slicing)]
    {
        batch[..BATCH_HEADER_LEN].copy_from_slice(&header.to_bytes());
        let crc = crate::crc::crc32c(&batch[CRC_START..]);
        batch[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
    }
}

/// The `N` bytes at `at` in `b`, if it holds them.
#[inline]
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..)?.first_chunk().copied()
}

#[inline]
fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    bytes_at(b, at).map(i64::from_be_bytes)
}

#[inline]
fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    bytes_at(b, at).map(i32::from_be_bytes)
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    bytes_at(b, at).map(i16::from_be_bytes)
}

mod cleaned;
pub(crate) use cleaned::encode_cleaned;

#[cfg(test)]
mod encode_single_tests;

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use crate::record::Header;

    /// Every record `step` and `next_fields` take from `records`, in turn, must agree: the same
    /// fields where `step` returns a record, and `None` (the cursor unmoved) where it does not.
    fn agree(meta: &RecordsMeta, records: &[u8]) {
        let mut slow = RecordCursor::START;
        loop {
            let mut fast = slow;
            let before = slow;
            let got = meta.next_fields(records, &mut fast);
            match meta.step(records, &mut slow) {
                Some(Ok(view)) => {
                    let span = |s: Option<&[u8]>| {
                        s.map(|s| (s.as_ptr() as usize - records.as_ptr() as usize, s.len()))
                    };
                    let (headers, count) = view.headers().raw();
                    let want = RecordFields {
                        offset: view.offset(),
                        timestamp: view.timestamp(),
                        key: span(view.key()),
                        value: span(view.value()),
                        headers: span(Some(headers)).unwrap(),
                        header_count: count,
                    };
                    assert_eq!(got, Some(want));
                    assert_eq!(fast, slow);
                }
                _ => {
                    assert_eq!(got, None, "fast path took what decode refuses");
                    assert_eq!(fast, before, "fast path moved on a refusal");
                    return;
                }
            }
        }
    }

    #[test]
    fn next_fields_agrees_with_decode_on_every_single_byte_change() {
        let headers = [Header::new(b"trace", Some(b"42")), Header::new(b"k", None)];
        let big = vec![7u8; 300];
        let records = [
            Record::keyed(b"key", b"value").with_headers(&headers),
            Record::new(&big).with_timestamp(1_000_000),
            Record::tombstone(b"gone"),
            Record::new(b""),
        ];
        let mut bytes = Vec::new();
        encode_batch(&mut bytes, &BatchParams::default(), &records, 5).unwrap();
        let header = Batch::parse(&bytes).unwrap().header;
        let meta = RecordsMeta::of(&header);
        let section = bytes[BATCH_HEADER_LEN..].to_vec();
        agree(&meta, &section);
        for at in 0..section.len() {
            for value in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, section[at] ^ 0x01] {
                let mut damaged = section.clone();
                damaged[at] = value;
                agree(&meta, &damaged);
            }
            agree(&meta, &section[..at]);
        }
    }
}
