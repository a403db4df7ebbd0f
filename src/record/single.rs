//! One-record batches, encoded from the previous one: a producer appending one record per call
//! mostly sends records of one shape (the same key, value and header lengths, the same batch
//! settings), whose batches differ only in base offset, sequence, timestamps, key, value and
//! header bytes and CRC. [`SingleEncoder`] keeps the last batch it wrote and, for a record of
//! the same shape, copies it and rewrites those fields instead of encoding every field again.
//! The bytes are the same as [`encode_batch`]'s, which any other record goes through.

// It writes at positions computed from lengths: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::batch::{BatchParams, CRC_POS, CRC_START, EncodeError, EncodedBatch, encode_batch};
use super::varint::varint_len;
use super::{BATCH_HEADER_LEN, Record, TimestampType};

/// The largest batch kept as a template: past a few KiB, encoding costs little beside copying
/// the record, and a template would copy it once more at every change of shape.
const TEMPLATE_MAX_BYTES: usize = 4096;

/// What must be equal for a batch to be the previous one with fields rewritten: every batch
/// setting but the base offset and sequence, and the key's and value's lengths (-1: null);
/// headers by their count and a digest of their lengths (a template compares the lengths
/// themselves, see [`Template::fits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    header_count: usize,
    header_lengths: u64,
    partition_leader_epoch: i32,
    timestamp_type: TimestampType,
    producer_id: i64,
    producer_epoch: i16,
    transactional: bool,
    control: bool,
    key_len: i32,
    value_len: i32,
}

impl Shape {
    /// The shape of `record` under `params`; `None` for lengths past the format's (left to
    /// [`encode_batch`]).
    #[inline]
    fn of(params: &BatchParams, record: &Record<'_>) -> Option<Shape> {
        let len = |field: Option<&[u8]>| match field {
            None => Some(-1),
            Some(bytes) => i32::try_from(bytes.len()).ok(),
        };
        let mut header_lengths = 0u64;
        for header in record.headers {
            let key = len(Some(header.key))?;
            let value = len(header.value)?;
            for n in [key, value] {
                header_lengths = header_lengths.wrapping_mul(31).wrapping_add(n as u64);
            }
        }
        Some(Shape {
            header_count: record.headers.len(),
            header_lengths,
            partition_leader_epoch: params.partition_leader_epoch,
            timestamp_type: params.timestamp_type,
            producer_id: params.producer_id,
            producer_epoch: params.producer_epoch,
            transactional: params.transactional,
            control: params.control,
            key_len: len(record.key)?,
            value_len: len(record.value)?,
        })
    }
}

/// The last one-record batch written, and where its key, value and headers lie.
#[derive(Debug)]
struct Template {
    shape: Shape,
    bytes: Vec<u8>,
    key_at: usize,
    value_at: usize,
    headers: Vec<HeaderAt>,
}

/// Where one header's key and value lie in a template, and their lengths (-1: a null value).
#[derive(Debug, Clone, Copy)]
struct HeaderAt {
    key_at: usize,
    key_len: usize,
    value_at: usize,
    value_len: i64,
}

/// Encodes one-record batches as [`encode_batch`] does, from the previous batch when the
/// record has its shape.
#[derive(Debug, Default)]
pub(crate) struct SingleEncoder {
    template: Option<Template>,
    /// The shape of the last record encoded without the template.
    last_shape: Option<Shape>,
}

impl SingleEncoder {
    /// Appends one batch holding `record` to `out`: [`encode_batch`] of `[record]`, byte for
    /// byte. On error `out` is left as it was.
    #[inline]
    pub(crate) fn encode(
        &mut self,
        out: &mut Vec<u8>,
        params: &BatchParams,
        record: &Record<'_>,
        now_ms: i64,
    ) -> Result<EncodedBatch, EncodeError> {
        if let Some(t) = &self.template
            && t.fits(params, record)
        {
            // `fits` compares field by field what `Shape::of` gathers: the two agree.
            debug_assert_eq!(Shape::of(params, record), Some(t.shape));
            return Ok(t.write(out, params, record, now_ms));
        }
        self.encode_anew(out, params, record, now_ms)
    }

    /// [`encode`](Self::encode) of a record the template does not fit: encoded in full, and
    /// kept as the template once its shape comes twice in a row (records whose lengths vary
    /// all the time would otherwise pay for a copy at every append). A template stays valid
    /// for its shape until then.
    #[inline(never)]
    fn encode_anew(
        &mut self,
        out: &mut Vec<u8>,
        params: &BatchParams,
        record: &Record<'_>,
        now_ms: i64,
    ) -> Result<EncodedBatch, EncodeError> {
        let start = out.len();
        let encoded = encode_batch(out, params, std::slice::from_ref(record), now_ms)?;
        let batch = out.get(start..).unwrap_or_default();
        let shape = Shape::of(params, record);
        let repeated = shape.is_some() && shape == self.last_shape;
        self.last_shape = shape;
        if let Some(shape) = shape.filter(|_| repeated && batch.len() <= TEMPLATE_MAX_BYTES) {
            // The previous template's buffers, reused: no allocation per shape.
            let buffers = self
                .template
                .take()
                .map(|t| (t.bytes, t.headers))
                .unwrap_or_default();
            self.template = Template::new(shape, record, batch, buffers);
        }
        Ok(encoded)
    }
}

impl Template {
    /// The template of `batch`, the one-record batch of `record` (of `shape`) just encoded,
    /// kept in `buffers`. Its fields are located from the lengths, and must end where the
    /// batch does.
    fn new(
        shape: Shape,
        record: &Record<'_>,
        batch: &[u8],
        (mut bytes, mut headers): (Vec<u8>, Vec<HeaderAt>),
    ) -> Option<Template> {
        let len = |n: i32| usize::try_from(n).unwrap_or(0);
        // The record's length, a varint: its last byte is the first below 0x80.
        let body_len = batch
            .get(BATCH_HEADER_LEN..)?
            .iter()
            .position(|b| b & 0x80 == 0)?
            + 1;
        // Attributes, timestamp delta and offset delta: one byte each.
        let mut at = BATCH_HEADER_LEN + body_len + 3 + varint_len(shape.key_len);
        let key_at = at;
        at += len(shape.key_len) + varint_len(shape.value_len);
        let value_at = at;
        at += len(shape.value_len) + varint_len(i32::try_from(shape.header_count).ok()?);
        headers.clear();
        for header in record.headers {
            let key_len = header.key.len();
            at += varint_len(i32::try_from(key_len).ok()?);
            let key_at = at;
            at += key_len;
            let value_len = header
                .value
                .map_or(Some(-1), |v| i64::try_from(v.len()).ok())?;
            at += varint_len(i32::try_from(value_len).ok()?);
            headers.push(HeaderAt {
                key_at,
                key_len,
                value_at: at,
                value_len,
            });
            at += usize::try_from(value_len).unwrap_or(0);
        }
        if at != batch.len() {
            return None;
        }
        bytes.clear();
        bytes.extend_from_slice(batch);
        Some(Template {
            shape,
            bytes,
            key_at,
            value_at,
            headers,
        })
    }

    /// Whether a batch of `record` under `params` is this template with fields rewritten
    /// (the lengths first: what changes most often).
    #[inline(always)]
    fn fits(&self, params: &BatchParams, record: &Record<'_>) -> bool {
        let len = |field: Option<&[u8]>| field.map_or(-1, |b| i64::try_from(b.len()).unwrap_or(-2));
        let shape = &self.shape;
        len(record.value) == i64::from(shape.value_len)
            && len(record.key) == i64::from(shape.key_len)
            && record.headers.len() == self.headers.len()
            && record
                .headers
                .iter()
                .zip(&self.headers)
                .all(|(h, at)| h.key.len() == at.key_len && len(h.value) == at.value_len)
            && params.base_offset >= 0
            && params.partition_leader_epoch == shape.partition_leader_epoch
            && params.timestamp_type == shape.timestamp_type
            && params.producer_id == shape.producer_id
            && params.producer_epoch == shape.producer_epoch
            && params.transactional == shape.transactional
            && params.control == shape.control
    }

    /// Appends the template with `record`'s fields to `out`.
    #[inline(always)]
    fn write(
        &self,
        out: &mut Vec<u8>,
        params: &BatchParams,
        record: &Record<'_>,
        now_ms: i64,
    ) -> EncodedBatch {
        let timestamp = record.timestamp.unwrap_or(now_ms);
        let max_timestamp = match params.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => timestamp,
        };
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let batch = out.get_mut(start..).unwrap_or_default();
        put(batch, 0, &params.base_offset.to_be_bytes());
        put(batch, 27, &timestamp.to_be_bytes());
        put(batch, 35, &max_timestamp.to_be_bytes());
        put(batch, 53, &params.base_sequence.to_be_bytes());
        put(batch, self.key_at, record.key.unwrap_or_default());
        put(batch, self.value_at, record.value.unwrap_or_default());
        for (header, at) in record.headers.iter().zip(&self.headers) {
            put(batch, at.key_at, header.key);
            put(batch, at.value_at, header.value.unwrap_or_default());
        }
        let crc = crate::crc::crc32c(batch.get(CRC_START..).unwrap_or_default());
        put(batch, CRC_POS, &crc.to_be_bytes());
        EncodedBatch {
            size: self.bytes.len(),
            last_offset: params.base_offset,
            max_timestamp,
            first_timestamp: timestamp,
        }
    }
}

/// Writes `bytes` at `at` of `batch` (within it: the template's positions are its own).
#[inline(always)]
fn put(batch: &mut [u8], at: usize, bytes: &[u8]) {
    // An empty key or value (a null one reads as empty) has nothing to copy: no call.
    if bytes.is_empty() {
        return;
    }
    if let Some(to) = batch.get_mut(at..at + bytes.len()) {
        to.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Header;

    fn params(base_offset: i64) -> BatchParams {
        BatchParams {
            base_offset,
            partition_leader_epoch: 0,
            ..BatchParams::default()
        }
    }

    /// Encodes `records` one per batch with one encoder, checking each batch against
    /// `encode_batch` of the same record.
    fn same_as_encode_batch(cases: &[(BatchParams, Record<'_>, i64)]) {
        let mut encoder = SingleEncoder::default();
        let mut ours = b"kept".to_vec();
        let mut theirs = b"kept".to_vec();
        for (params, record, now) in cases {
            let a = encoder.encode(&mut ours, params, record, *now);
            let b = encode_batch(&mut theirs, params, std::slice::from_ref(record), *now);
            assert_eq!(a, b, "{params:?} {record:?}");
            assert_eq!(ours, theirs, "{params:?} {record:?}");
        }
    }

    #[test]
    fn every_shape_and_field_encodes_as_encode_batch_does() {
        let long_key = vec![7u8; 200];
        let long_value = vec![9u8; 20_000];
        let headers = [Header::new(b"h", Some(b"v"))];
        let same_lengths = [Header::new(b"g", Some(b"w"))];
        let null_value = [Header::new(b"g", None)];
        let two = [
            Header::new(b"", Some(b"")),
            Header::new(&long_key, Some(&long_key)),
        ];
        let two_again = [
            Header::new(b"", Some(b"")),
            Header::new(&long_value[..200], Some(&long_value[..200])),
        ];
        let mut cases = Vec::new();
        for round in 0..3i64 {
            let at = |n: i64| params(round * 100 + n);
            cases.extend([
                (at(0), Record::new(b"first"), 1_000 + round),
                (at(1), Record::new(b"again"), 1_001),
                (at(2), Record::new(b"other length"), 1_002),
                (at(3), Record::new(b"other value!"), 1_003),
                (at(4), Record::keyed(b"k", b"other value!"), 1_004),
                (at(5), Record::keyed(b"q", b"other value?"), 1_005),
                (at(6), Record::tombstone(b"q"), 1_006),
                (at(7), Record::tombstone(b"z"), 1_007),
                (at(8), Record::keyed(&long_key, &long_value), 1_008),
                (at(9), Record::keyed(&long_key, &long_value), 1_009),
                (at(10), Record::new(b"").with_timestamp(-5), 1_010),
                (at(11), Record::new(b"x").with_timestamp(i64::MAX), 1_011),
                (at(12), Record::new(b"y").with_headers(&headers), 1_012),
                (at(13), Record::new(b"y").with_headers(&headers), 1_013),
                (at(14), Record::new(b"y"), 1_014),
                (at(21), Record::new(b"y").with_headers(&same_lengths), 1_021),
                (at(22), Record::new(b"z").with_headers(&same_lengths), 1_022),
                (at(23), Record::new(b"z").with_headers(&null_value), 1_023),
                (at(24), Record::new(b"z").with_headers(&null_value), 1_024),
                (at(25), Record::keyed(b"k", b"z").with_headers(&two), 1_025),
                (at(26), Record::keyed(b"q", b"z").with_headers(&two), 1_026),
                (
                    at(27),
                    Record::keyed(b"q", b"z").with_headers(&two_again),
                    1_027,
                ),
                (
                    at(28),
                    Record::keyed(b"q", b"z").with_headers(&headers),
                    1_028,
                ),
            ]);
            let log_append = BatchParams {
                timestamp_type: TimestampType::LogAppendTime,
                ..at(15)
            };
            cases.push((log_append, Record::new(b"y").with_timestamp(5), 1_015));
            cases.push((
                BatchParams {
                    base_offset: round * 100 + 16,
                    ..log_append
                },
                Record::new(b"z").with_timestamp(6),
                1_016,
            ));
            let producer = BatchParams {
                producer_id: 42,
                producer_epoch: 3,
                base_sequence: 10,
                ..at(17)
            };
            cases.push((producer, Record::new(b"p"), 1_017));
            cases.push((
                BatchParams {
                    base_offset: round * 100 + 18,
                    base_sequence: 11,
                    ..producer
                },
                Record::new(b"q"),
                1_018,
            ));
            cases.push((
                BatchParams {
                    base_offset: round * 100 + 19,
                    base_sequence: 12,
                    transactional: true,
                    ..producer
                },
                Record::new(b"r"),
                1_019,
            ));
            cases.push((
                BatchParams {
                    partition_leader_epoch: 5,
                    ..at(20)
                },
                Record::new(b"r"),
                1_020,
            ));
        }
        same_as_encode_batch(&cases);
    }

    proptest::proptest! {
        /// Any run of records of few shapes (so templates are reused and replaced), with any
        /// settings, timestamps and sequences: the same bytes as `encode_batch`.
        #[test]
        fn any_run_encodes_as_encode_batch_does(
            run in proptest::collection::vec(
                (
                    proptest::option::of(0usize..3),
                    proptest::option::of(proptest::sample::select(vec![0usize, 1, 63, 64, 200])),
                    proptest::option::of(proptest::num::i64::ANY),
                    0u8..4,
                    proptest::num::u8::ANY,
                    proptest::collection::vec(
                        (0usize..3, proptest::option::of(0usize..3)),
                        0..3,
                    ),
                ),
                1..40,
            ),
        ) {
            let bytes: Vec<u8> = (0..=255).collect();
            let values: Vec<Vec<u8>> = (0..40).map(|i| bytes.iter().cycle().skip(i).take(200).copied().collect()).collect();
            let mut cases = Vec::new();
            let run: Vec<_> = run
                .into_iter()
                .map(|(key_len, value_len, timestamp, settings, fill, headers)| {
                    let fill = usize::from(fill);
                    let headers: Vec<Header<'_>> = headers
                        .into_iter()
                        .map(|(k, v)| Header {
                            key: &values[(fill + 2) % 40][..k],
                            value: v.map(|n| &values[(fill + 3) % 40][..n]),
                        })
                        .collect();
                    (key_len, value_len, timestamp, settings, fill, headers)
                })
                .collect();
            for (i, (key_len, value_len, timestamp, settings, fill, headers)) in run.iter().enumerate() {
                let (key_len, value_len, timestamp, settings, fill) = (*key_len, *value_len, *timestamp, *settings, *fill);
                let value = value_len.map(|n| &values[fill % 40][..n]);
                let key = key_len.map(|n| &values[(fill + 1) % 40][..n]);
                let mut record = Record { key, value, ..Record::new(b"") }.with_headers(headers);
                if let Some(t) = timestamp {
                    record = record.with_timestamp(t);
                }
                let mut p = params(i as i64 * 3);
                if settings & 1 == 1 {
                    p.timestamp_type = TimestampType::LogAppendTime;
                }
                if settings & 2 == 2 {
                    (p.producer_id, p.producer_epoch, p.base_sequence) = (9, 1, i as i32);
                }
                cases.push((p, record, 1_700_000_000_000 + i as i64));
            }
            same_as_encode_batch(&cases);
        }
    }

    #[test]
    fn a_refused_record_leaves_the_output_and_template_as_they_were() {
        let mut encoder = SingleEncoder::default();
        let mut out = Vec::new();
        encoder
            .encode(&mut out, &params(0), &Record::new(b"a"), 1)
            .unwrap();
        let before = out.clone();
        assert_eq!(
            encoder.encode(&mut out, &params(-1), &Record::new(b"b"), 2),
            Err(EncodeError::OffsetOutOfRange)
        );
        assert_eq!(out, before);
        same_as_encode_batch(&[(params(1), Record::new(b"c"), 3)]);
        let next = encoder
            .encode(&mut out, &params(1), &Record::new(b"c"), 3)
            .unwrap();
        let mut expected = before.clone();
        encode_batch(&mut expected, &params(1), &[Record::new(b"c")], 3).unwrap();
        assert_eq!(out, expected);
        assert_eq!(next.size, expected.len() - before.len());
    }
}
