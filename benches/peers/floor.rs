//! The format floor: what reading Kafka's RecordBatch v2 costs when the bytes are already in
//! memory. A partition's `.log` segments are read into one buffer (not timed); a scan then
//! checks each batch's CRC-32C (bytes 21 to the batch end), parses the 61-byte header and walks
//! every record's varints (length, attributes, timestamp delta, offset delta, key, value,
//! headers), touching each value's length. A random read checks the CRC of the whole batch
//! holding the record and walks to it; which batch that is, is looked up before timing. Written here from the format, not with topiclog's code: it is a floor to judge
//! topiclog's readers by, not a reader.

use std::path::Path;

use super::Tally;

const HEADER: usize = 61;
/// Where the CRC-covered bytes start (attributes).
const CRC_FROM: usize = 21;

/// Every batch of a partition, in memory.
pub struct Floor {
    bytes: Vec<u8>,
    /// `(base offset, position, size)` per batch.
    batches: Vec<(i64, usize, usize)>,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// An unsigned LEB128 varint at `*at`, zig-zag decoded.
#[inline]
fn varlong(b: &[u8], at: &mut usize) -> i64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        assert!(shift < 70, "varint too long");
    }
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A length field (-1 for null) and the bytes it covers.
#[inline]
fn bytes_field<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = varlong(b, at);
    if len < 0 {
        return None;
    }
    let field = &b[*at..*at + len as usize];
    *at += len as usize;
    Some(field)
}

impl Floor {
    /// Reads every `.log` segment of the partition at `dir` into memory, in base-offset order.
    pub fn load(dir: &Path) -> Floor {
        let mut segments: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let mut bytes = Vec::new();
        for segment in segments {
            bytes.extend_from_slice(&std::fs::read(segment).expect("read"));
        }
        let mut batches = Vec::new();
        let mut pos = 0;
        while pos + HEADER <= bytes.len() {
            let size = 12 + be_i32(&bytes, pos + 8) as usize;
            batches.push((be_i64(&bytes, pos), pos, size));
            pos += size;
        }
        assert_eq!(pos, bytes.len(), "segments end inside a batch");
        Floor { bytes, batches }
    }

    /// Checks one batch's magic and CRC; returns its records section and record count.
    #[inline]
    fn check(&self, pos: usize, size: usize) -> (&[u8], i32) {
        let batch = &self.bytes[pos..pos + size];
        assert_eq!(batch[16], 2, "magic");
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        assert_eq!(super::crc32c(&batch[CRC_FROM..]), crc, "batch CRC");
        assert_eq!(be_i32(batch, 21) & 0x07, 0, "uncompressed");
        (&batch[HEADER..], be_i32(batch, 57))
    }

    /// Walks one record at `*at`; returns its offset delta and value.
    #[inline]
    fn record<'a>(records: &'a [u8], at: &mut usize) -> (i64, Option<&'a [u8]>) {
        let len = varlong(records, at) as usize;
        let end = *at + len;
        *at += 1; // attributes
        let _timestamp_delta = varlong(records, at);
        let offset_delta = varlong(records, at);
        let _key = bytes_field(records, at);
        let value = bytes_field(records, at);
        let headers = varlong(records, at);
        for _ in 0..headers {
            let key_len = varlong(records, at);
            *at += key_len as usize;
            let _value = bytes_field(records, at);
        }
        assert_eq!(*at, end, "record length");
        (offset_delta, value)
    }

    /// Every record of every batch.
    pub fn scan(&self) -> Tally {
        let mut tally = Tally::default();
        for &(_, pos, size) in &self.batches {
            let (records, count) = self.check(pos, size);
            let mut at = 0;
            for _ in 0..count {
                let (_, value) = Self::record(records, &mut at);
                tally.add(value.expect("a value"));
            }
            assert_eq!(at, records.len(), "records fill the batch");
        }
        tally
    }

    /// The batch holding `offset` (found outside the timed region: locating a record is the
    /// index's work, not the format's).
    pub fn locate(&self, offset: u64) -> usize {
        self.batches.partition_point(|b| b.0 <= offset as i64) - 1
    }

    /// The value length of the record at `offset`, in batch `batch` (from [`locate`]):
    /// the whole batch's CRC, then the walk to the record.
    ///
    /// [`locate`]: Floor::locate
    pub fn read_one(&self, batch: usize, offset: u64) -> usize {
        let offset = offset as i64;
        let (base, pos, size) = self.batches[batch];
        let (records, count) = self.check(pos, size);
        let mut at = 0;
        for _ in 0..count {
            let (delta, value) = Self::record(records, &mut at);
            if base + delta == offset {
                return value.expect("a value").len();
            }
        }
        panic!("offset {offset} not in its batch");
    }
}
