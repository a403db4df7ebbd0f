//! Unit tests (compiled only under `#[cfg(test)]`, see `mod.rs`).
//!
//! Tests of the RecordBatch v2 codec against kafka-log-format.md §2.1-2.11: the worked vectors
//! of §2.11 byte for byte, every decode error the format defines, record semantics (null vs
//! empty, headers, timestamps, empty and flagged batches), and property tests that decoding
//! never panics or hangs and that encode/decode round-trips.

use super::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Bytes of a hex dump; whitespace and `0000:`-style address columns are ignored.
fn hex(dump: &str) -> Vec<u8> {
    let digits: String = dump
        .lines()
        .map(|line| line.split_once(':').map_or(line, |(_, rest)| rest))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// kafka-log-format.md §2.11, first vector (partitionLeaderEpoch 0).
fn vector1() -> Vec<u8> {
    hex("
        0000: 00 00 00 00 00 00 00 00 00 00 00 3a 00 00 00 00
        0010: 02 fe 91 7c ab 00 00 00 00 00 00 00 00 00 00 00
        0020: 00 00 00 00 00 00 00 00 00 00 00 ff ff ff ff ff
        0030: ff ff ff ff ff ff ff ff ff 00 00 00 01 10 00 00
        0040: 00 02 6b 02 76 00
    ")
}

/// kafka-log-format.md §2.11, second vector (idempotent, two records, tombstone with header).
fn vector2() -> Vec<u8> {
    hex("
        000000000000000500000046000000000223ce41c30000000000010000018bcfe568
        000000018bcfe5680500000000000003e80000000000000000000210000000026102
        310016000a020262010202680278
    ")
}

/// Zig-zag varint/varlong, written independently of `super::varint`.
fn v(n: i64) -> Vec<u8> {
    let mut u = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
    out
}

/// A record: the length prefix followed by the concatenated body parts.
fn rec(parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    let mut out = v(body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// Body of a record with key "k", value "v", no headers, timestamp delta 0.
fn kv_body(offset_delta: i64) -> Vec<u8> {
    [
        &[0u8, 0][..],
        &v(offset_delta),
        &[0x02, b'k', 0x02, b'v', 0x00],
    ]
    .concat()
}

/// A plain header for hand-built batches (CreateTime, uncompressed, no producer).
fn raw_header(records_count: i32, last_offset_delta: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
        records_count,
    }
}

/// A batch with this header and records area; `batchLength` and the CRC are made valid.
fn build(header: BatchHeader, records: &[u8]) -> Vec<u8> {
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(records);
    seal(&mut bytes);
    bytes
}

/// Sets `batchLength` to the slice's length and recomputes the CRC.
fn seal(bytes: &mut [u8]) {
    let len = (bytes.len() - LOG_OVERHEAD) as i32;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    recrc(bytes);
}

/// Recomputes the CRC of a batch (bytes 21..end), independently of `Batch::compute_crc`.
fn recrc(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

type OwnedHeaders = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A decoded record, copied out of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

fn own(r: &RecordView<'_>) -> Decoded {
    let headers = r.headers();
    let n = headers.count_remaining();
    let headers: OwnedHeaders = headers
        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        headers.len(),
        n,
        "header iteration yields count_remaining() headers"
    );
    Decoded {
        offset: r.offset(),
        timestamp: r.timestamp(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        headers,
    }
}

/// Parses a valid batch, checks its CRC and decodes all its records.
fn decode_ok(bytes: &[u8]) -> (BatchHeader, Vec<Decoded>) {
    let batch = Batch::parse(bytes).unwrap();
    batch.verify_crc().unwrap();
    let records = batch.records().unwrap().map(|r| own(&r.unwrap())).collect();
    (*batch.header(), records)
}

/// Parses a batch with a valid header and CRC, then returns the records decoded before the first
/// error, and that error. Also checks the iterator stays finished after the error.
fn decode_err(bytes: &[u8]) -> (Vec<Decoded>, DecodeError) {
    let batch = Batch::parse(bytes).unwrap();
    batch.verify_crc().unwrap();
    let mut records = batch.records().unwrap();
    let mut ok = Vec::new();
    loop {
        match records.next() {
            Some(Ok(r)) => ok.push(own(&r)),
            Some(Err(e)) => {
                assert!(records.next().is_none(), "iterator ends after an error");
                return (ok, e);
            }
            None => panic!("expected a decode error, got {} records", ok.len()),
        }
    }
}

fn err(kind: DecodeErrorKind, position: usize) -> DecodeError {
    DecodeError { kind, position }
}

fn dec(offset: i64, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Decoded {
    Decoded {
        offset,
        timestamp,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
    }
}

const ALL_CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

// ---------------------------------------------------------------------------------------------
// §2.11 worked vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn vector1_encodes_byte_for_byte() {
    let params = BatchParams {
        base_offset: 0,
        partition_leader_epoch: 0,
        ..Default::default()
    };
    let records = [Record::keyed(b"k", b"v").with_timestamp(0)];
    let mut out = Vec::new();
    let encoded = encode_batch(&mut out, &params, &records, 123_456).unwrap();
    assert_eq!(out, vector1());
    assert_eq!(out.len(), 70);
    assert_eq!(
        &out[61..],
        hex("10 00 00 00 02 6b 02 76 00"),
        "record bytes of §2.11"
    );
    assert_eq!(
        encoded,
        EncodedBatch {
            size: 70,
            last_offset: 0,
            max_timestamp: 0,
            first_timestamp: 0
        }
    );
}

#[test]
fn vector1_with_epoch_minus_one_keeps_the_crc() {
    let params = BatchParams {
        partition_leader_epoch: -1,
        ..Default::default()
    };
    let records = [Record::keyed(b"k", b"v").with_timestamp(0)];
    let mut out = Vec::new();
    encode_batch(&mut out, &params, &records, 0).unwrap();
    let mut expected = vector1();
    expected[12..16].copy_from_slice(&[0xff; 4]);
    assert_eq!(out, expected, "only bytes 12..16 differ");
    let batch = Batch::parse(&out).unwrap();
    assert_eq!(batch.header().crc, 0xFE91_7CAB);
    assert_eq!(batch.compute_crc(), 0xFE91_7CAB);
    assert_eq!(
        batch.header().partition_leader_epoch,
        NO_PARTITION_LEADER_EPOCH
    );
    batch.verify_crc().unwrap();
}

#[test]
fn vector2_encodes_byte_for_byte() {
    let params = BatchParams {
        base_offset: 5,
        partition_leader_epoch: 0,
        producer_id: 1000,
        producer_epoch: 0,
        base_sequence: 0,
        ..Default::default()
    };
    let headers = [Header::new(b"h", Some(b"x"))];
    let records = [
        Record::keyed(b"a", b"1").with_timestamp(1_700_000_000_000),
        Record::tombstone(b"b")
            .with_headers(&headers)
            .with_timestamp(1_700_000_000_005),
    ];
    let mut out = Vec::new();
    let encoded = encode_batch(&mut out, &params, &records, -7).unwrap();
    assert_eq!(out, vector2());
    assert_eq!(
        &out[70..],
        hex("16 00 0a 02 02 62 01 02 02 68 02 78"),
        "record 1 of §2.11"
    );
    assert_eq!(
        encoded,
        EncodedBatch {
            size: 82,
            last_offset: 6,
            max_timestamp: 1_700_000_000_005,
            first_timestamp: 1_700_000_000_000,
        }
    );
}

#[test]
fn vector1_decodes() {
    let bytes = vector1();
    let batch = Batch::parse(&bytes).unwrap();
    assert_eq!(
        *batch.header(),
        BatchHeader {
            base_offset: 0,
            batch_length: 58,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0xFE91_7CAB,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        }
    );
    let h = batch.header();
    assert_eq!(h.crc, 4_270_947_499);
    assert_eq!((h.size(), batch.size(), batch.bytes().len()), (70, 70, 70));
    assert_eq!((h.last_offset(), h.next_offset()), (0, 1));
    assert_eq!(
        (h.compression_id(), h.compression()),
        (0, Some(Compression::None))
    );
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert!(!h.is_transactional() && !h.is_control() && !h.has_delete_horizon());
    assert_eq!(batch.compute_crc(), 0xFE91_7CAB);
    batch.verify_crc().unwrap();

    let (_, records) = decode_ok(&bytes);
    assert_eq!(records, [dec(0, 0, Some(b"k"), Some(b"v"))]);

    // The header re-encodes to the same 61 bytes.
    assert_eq!(h.to_bytes()[..], bytes[..BATCH_HEADER_LEN]);
}

#[test]
fn vector2_decodes() {
    let bytes = vector2();
    let batch = Batch::parse(&bytes).unwrap();
    assert_eq!(
        *batch.header(),
        BatchHeader {
            base_offset: 5,
            batch_length: 70,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0x23CE_41C3,
            attributes: 0,
            last_offset_delta: 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_005,
            producer_id: 1000,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 2,
        }
    );
    let h = batch.header();
    assert_eq!((h.size(), h.last_offset(), h.next_offset()), (82, 6, 7));
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(batch.compute_crc(), 0x23CE_41C3);
    batch.verify_crc().unwrap();

    let (_, records) = decode_ok(&bytes);
    let mut second = dec(6, 1_700_000_000_005, Some(b"b"), None);
    second.headers = vec![(b"h".to_vec(), Some(b"x".to_vec()))];
    assert_eq!(
        records,
        [dec(5, 1_700_000_000_000, Some(b"a"), Some(b"1")), second]
    );
}

#[test]
fn batches_iterates_a_concatenation() {
    let empty = build(raw_header(0, 3), &[]);
    let mut log = vector1();
    log.extend_from_slice(&vector2());
    log.extend_from_slice(&empty);
    let mut batches = Batches::new(&log);
    assert_eq!(batches.position(), 0);
    let sizes: Vec<usize> = batches.by_ref().map(|b| b.unwrap().size()).collect();
    assert_eq!(sizes, [70, 82, 61]);
    assert_eq!(batches.position(), log.len());

    // A torn tail: the third batch cut short reports Truncated at its own start.
    let torn = &log[..log.len() - 1];
    let items: Vec<_> = Batches::new(torn).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert_eq!(
        items[2].clone().unwrap_err(),
        err(
            DecodeErrorKind::Truncated {
                needed: 61,
                available: 60
            },
            152
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed batches: framing and header
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_at_every_length() {
    for bytes in [vector1(), vector2(), build(raw_header(0, 0), &[])] {
        for len in 0..bytes.len() {
            let needed = if len < BATCH_HEADER_LEN {
                BATCH_HEADER_LEN
            } else {
                bytes.len()
            };
            let expected = err(
                DecodeErrorKind::Truncated {
                    needed,
                    available: len,
                },
                0,
            );
            assert_eq!(
                Batch::parse(&bytes[..len]).unwrap_err(),
                expected,
                "len {len}"
            );
            let items: Vec<_> = Batches::new(&bytes[..len]).collect();
            if len == 0 {
                assert!(items.is_empty(), "an empty log has no batches");
            } else {
                assert_eq!(items, [Err(expected)], "len {len}");
            }
        }
        // One byte more than needed is fine: parse takes only the batch.
        let mut longer = bytes.clone();
        longer.push(0xAA);
        assert_eq!(Batch::parse(&longer).unwrap().bytes(), &bytes[..]);
    }
}

#[test]
fn batch_length_below_49() {
    for len in [48, 14, 0, -1, i32::MIN] {
        let mut bytes = vector1();
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            Batch::parse(&bytes).unwrap_err(),
            err(DecodeErrorKind::BatchLengthTooSmall(len), 8),
            "batchLength {len}"
        );
    }
    // 49 itself is a valid (empty) batch.
    let empty = build(raw_header(0, 0), &[]);
    assert_eq!(Batch::parse(&empty).unwrap().header().batch_length, 49);
}

#[test]
fn bad_magic() {
    for magic in [0i8, 1, 3, -1, i8::MIN] {
        let mut bytes = vector1();
        bytes[16] = magic as u8;
        let expected = err(DecodeErrorKind::UnsupportedMagic(magic), 16);
        assert_eq!(Batch::parse(&bytes).unwrap_err(), expected);
        // Magic is checked first: 17 bytes are enough to tell.
        assert_eq!(Batch::parse(&bytes[..17]).unwrap_err(), expected);
        assert_eq!(BatchHeader::parse(&bytes[..40]).unwrap_err(), expected);
    }
}

#[test]
fn crc_mismatch_for_every_covered_byte() {
    for original in [vector1(), vector2()] {
        let stored = Batch::parse(&original).unwrap().header().crc;
        // Bytes 17..21 are the CRC itself; 21.. are covered. XOR 0x01 never flips a sign bit, so
        // the header stays parseable and only the CRC can catch it.
        for i in 17..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            let batch = Batch::parse(&bytes).unwrap();
            let got = batch.verify_crc().unwrap_err();
            let (stored_now, computed) = match got.kind {
                DecodeErrorKind::CrcMismatch { stored, computed } => (stored, computed),
                ref other => panic!("byte {i}: expected CrcMismatch, got {other:?}"),
            };
            assert_eq!(got.position, 17, "byte {i}");
            assert_eq!(stored_now, batch.header().crc);
            assert_eq!(computed, crc32c::crc32c(&bytes[21..]));
            assert_ne!(stored_now, computed);
            if i >= 21 {
                assert_eq!(stored_now, stored, "the stored CRC is untouched");
            }
        }
    }
}

#[test]
fn base_offset_and_leader_epoch_are_outside_the_crc() {
    for original in [vector1(), vector2()] {
        for i in (0..8).chain(12..16) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bytes = original.clone();
                bytes[i] ^= flip;
                let batch = Batch::parse(&bytes).unwrap();
                batch.verify_crc().unwrap();
                assert_eq!(
                    batch.compute_crc(),
                    Batch::parse(&original).unwrap().compute_crc()
                );
                // Records still decode, with the new base offset.
                let (header, records) = decode_ok(&bytes);
                for (k, r) in records.iter().enumerate() {
                    assert_eq!(r.offset, header.base_offset.wrapping_add(k as i64));
                }
            }
        }
    }
}

#[test]
fn negative_record_count() {
    for count in [-1, i32::MIN] {
        let mut bytes = vector1();
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        recrc(&mut bytes);
        assert_eq!(
            Batch::parse(&bytes).unwrap_err(),
            err(DecodeErrorKind::NegativeRecordCount(count), 57)
        );
    }
}

#[test]
fn negative_last_offset_delta() {
    let mut bytes = vector1();
    bytes[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    recrc(&mut bytes);
    assert_eq!(
        Batch::parse(&bytes).unwrap_err(),
        err(DecodeErrorKind::NegativeLastOffsetDelta(-1), 23)
    );
}

/// The `decode_batch` fuzz finding: a batch at base offset `i64::MAX` with four record slots.
/// Its record offsets wrapped to negative (`base + delta`) while `last_offset()` saturated, so
/// records lay outside `[baseOffset, lastOffset]`. Offsets past `i64::MAX` cannot exist: the
/// header is refused, at its base offset, wherever the sum overflows.
#[test]
fn last_offset_past_i64_max() {
    let records: Vec<u8> = (0..4).flat_map(|d| rec(&[&kv_body(d)])).collect();
    for (base_offset, last_offset_delta) in [
        (i64::MAX, 3),
        (i64::MAX, 1),
        (i64::MAX - 2, 3),
        (i64::MAX - i64::from(i32::MAX) + 1, i32::MAX),
    ] {
        let header = BatchHeader {
            base_offset,
            ..raw_header(4, last_offset_delta)
        };
        let bytes = build(header, &records);
        let expected = err(
            DecodeErrorKind::LastOffsetOverflow {
                base_offset,
                last_offset_delta,
            },
            0,
        );
        assert_eq!(BatchHeader::parse(&bytes).unwrap_err(), expected);
        assert_eq!(Batch::parse(&bytes).unwrap_err(), expected);
        let mut batches = Batches::new(&bytes);
        assert_eq!(batches.next(), Some(Err(expected)));
        assert_eq!(batches.next(), None);
    }
    // The last offset may be i64::MAX itself; its records keep their offsets.
    let header = BatchHeader {
        base_offset: i64::MAX - 3,
        ..raw_header(4, 3)
    };
    let (header, decoded) = decode_ok(&build(header, &records));
    assert_eq!(header.last_offset(), i64::MAX);
    let offsets: Vec<i64> = decoded.iter().map(|d| d.offset).collect();
    assert_eq!(
        offsets,
        [i64::MAX - 3, i64::MAX - 2, i64::MAX - 1, i64::MAX]
    );
}

#[test]
fn compressed_batches_are_unsupported_but_valid() {
    for codec in ALL_CODECS {
        let mut bytes = vector1();
        bytes[22] = codec.id();
        recrc(&mut bytes);
        let batch = Batch::parse(&bytes).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.header().compression(), Some(codec));
        assert_eq!(batch.header().compression_id(), codec.id());
        assert_eq!(Compression::from_id(codec.id()), Some(codec));
        assert_eq!(
            batch.records().unwrap_err(),
            err(DecodeErrorKind::UnsupportedCompression(codec), 21)
        );
    }
    assert_eq!(
        ALL_CODECS.map(Compression::name),
        ["gzip", "snappy", "lz4", "zstd"],
        "Kafka's compression.type names"
    );
}

#[test]
fn unknown_codec_ids() {
    for id in 5u8..=7 {
        let mut bytes = vector1();
        bytes[22] = id | 0x08; // with LogAppendTime too, to show only bits 0-2 are the codec
        recrc(&mut bytes);
        let batch = Batch::parse(&bytes).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.header().compression(), None);
        assert_eq!(batch.header().compression_id(), id);
        assert_eq!(Compression::from_id(id), None);
        assert_eq!(
            batch.records().unwrap_err(),
            err(DecodeErrorKind::UnknownCompression(id), 21)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed records
// ---------------------------------------------------------------------------------------------

#[test]
fn record_length_mismatch() {
    // Declares 9 body bytes, but the fields end after 8.
    let records = rec(&[&kv_body(0), &[0xAA]]);
    let (ok, e) = decode_err(&build(raw_header(1, 0), &records));
    assert!(ok.is_empty());
    assert_eq!(
        e,
        err(
            DecodeErrorKind::RecordLengthMismatch {
                declared: 9,
                consumed: 8
            },
            61
        )
    );
}

#[test]
fn record_length_out_of_bounds() {
    // Length 9 with only 8 bytes after it.
    let mut records = v(9);
    records.extend_from_slice(&kv_body(0));
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidRecordLength(9), 61));

    // Negative length.
    let mut records = v(-1);
    records.extend_from_slice(&kv_body(0));
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidRecordLength(-1), 61));

    // Length 7: the header count would lie past the record's end.
    let mut records = v(7);
    records.extend_from_slice(&kv_body(0));
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 69));
}

#[test]
fn trailing_bytes_after_declared_records() {
    let one = rec(&[&kv_body(0)]);
    for extra in [vec![0u8], rec(&[&kv_body(1)]), vec![0xff; 20]] {
        let records = [one.clone(), extra.clone()].concat();
        let (ok, e) = decode_err(&build(raw_header(1, 5), &records));
        assert_eq!(ok, [dec(0, 0, Some(b"k"), Some(b"v"))]);
        assert_eq!(e, err(DecodeErrorKind::TrailingBytes(extra.len()), 70));
    }
    // An empty batch with bytes after its header.
    let (ok, e) = decode_err(&build(raw_header(0, 0), &[0, 0, 0]));
    assert!(ok.is_empty());
    assert_eq!(e, err(DecodeErrorKind::TrailingBytes(3), 61));
}

#[test]
fn fewer_records_than_declared() {
    let one = rec(&[&kv_body(0)]);
    let (ok, e) = decode_err(&build(raw_header(2, 1), &one));
    assert_eq!(ok.len(), 1);
    assert_eq!(
        e,
        err(
            DecodeErrorKind::MissingRecords {
                declared: 2,
                found: 1
            },
            70
        )
    );

    let (ok, e) = decode_err(&build(raw_header(1, 0), &[]));
    assert!(ok.is_empty());
    assert_eq!(
        e,
        err(
            DecodeErrorKind::MissingRecords {
                declared: 1,
                found: 0
            },
            61
        )
    );

    let (ok, e) = decode_err(&build(raw_header(i32::MAX, i32::MAX), &one));
    assert_eq!(ok.len(), 1);
    assert_eq!(
        e,
        err(
            DecodeErrorKind::MissingRecords {
                declared: i32::MAX,
                found: 1
            },
            70
        )
    );
}

#[test]
fn invalid_header_counts() {
    // Header count at byte 69 (after "k" and "v").
    let prefix = [0u8, 0, 0, 0x02, b'k', 0x02, b'v'];
    for count in [-1i64, -2, i32::MIN as i64, 1, 1000, i32::MAX as i64] {
        let records = rec(&[&prefix, &v(count)]);
        let (_, e) = decode_err(&build(raw_header(1, 0), &records));
        assert_eq!(
            e,
            err(DecodeErrorKind::InvalidHeaderCount(count as i32), 69),
            "{count}"
        );
    }
    // Count 3 with 6 bytes after it passes the size check, but the third header is missing.
    let headers = [0x02, b'h', 0x01, 0x02, b'i', 0x01];
    let records = rec(&[&prefix, &v(3), &headers]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 76));
}

#[test]
fn invalid_field_lengths() {
    let with = |key_len: i64, rest: &[u8]| {
        let records = rec(&[&[0, 0, 0], &v(key_len), rest]);
        decode_err(&build(raw_header(1, 0), &records)).1
    };
    // Key length at byte 65.
    assert_eq!(
        with(-2, &[0x02, 0x76, 0]),
        err(DecodeErrorKind::InvalidFieldLength(-2), 65)
    );
    assert_eq!(
        with(-100, &[]),
        err(DecodeErrorKind::InvalidFieldLength(-100), 65)
    );
    assert_eq!(
        with(50, b"abc"),
        err(DecodeErrorKind::InvalidFieldLength(50), 65)
    );
    assert_eq!(
        with(i32::MIN as i64, &[]),
        err(DecodeErrorKind::InvalidFieldLength(i32::MIN), 65)
    );
    // Value length at byte 67 (after a 1-byte key).
    let records = rec(&[&[0, 0, 0, 0x02, b'k'], &v(-2), &[0]]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidFieldLength(-2), 67));
    let records = rec(&[&[0, 0, 0, 0x02, b'k'], &v(2), b"x"]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidFieldLength(2), 67));

    // Header key may not be null: null key/value record, 1 header, key length -1 at byte 68.
    let records = rec(&[&[0, 0, 0, 0x01, 0x01, 0x02], &v(-1), &[0x01]]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidFieldLength(-1), 68));
    // Header value length -2 at byte 70.
    let records = rec(&[&[0, 0, 0, 0x01, 0x01, 0x02, 0x02, b'h'], &v(-2)]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidFieldLength(-2), 70));
    // Header value longer than the record.
    let records = rec(&[&[0, 0, 0, 0x01, 0x01, 0x02, 0x02, b'h'], &v(5), b"ab"]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidFieldLength(5), 70));
}

#[test]
fn varints_too_long() {
    // Record length: 6 bytes with the continuation bit (Kafka allows at most 5).
    let records = [&[0xff; 5][..], &[0x01], &kv_body(0)].concat();
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 61));

    // Timestamp delta: an 11-byte varlong at byte 63.
    let records = rec(&[&[0], &[0x80; 10], &[0x00], &kv_body(0)[2..]]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 63));

    // A 10-byte varlong is fine (here: delta 0 padded to 10 bytes).
    let records = rec(&[&[0], &[0x80; 9], &[0x00], &kv_body(0)[2..]]);
    let (_, records) = decode_ok(&build(raw_header(1, 0), &records));
    assert_eq!(records, [dec(0, 0, Some(b"k"), Some(b"v"))]);

    // Offset delta: a 6-byte varint at byte 64.
    let records = rec(&[&[0, 0], &[0x80; 5], &[0x00], &[0x02, b'k', 0x02, b'v', 0]]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 64));

    // Key length: a 6-byte varint at byte 65.
    let records = rec(&[&[0, 0, 0], &[0x80; 5], &[0x00], &[0x02, b'v', 0]]);
    let (_, e) = decode_err(&build(raw_header(1, 0), &records));
    assert_eq!(e, err(DecodeErrorKind::InvalidVarint, 65));
}

#[test]
fn offset_deltas_out_of_range_or_not_increasing() {
    let out_of_range = |delta: i32, last: i32| DecodeErrorKind::OffsetDeltaOutOfRange {
        delta,
        last_offset_delta: last,
    };
    // Beyond lastOffsetDelta, and negative: the delta sits at byte 64.
    let (_, e) = decode_err(&build(raw_header(1, 0), &rec(&[&kv_body(1)])));
    assert_eq!(e, err(out_of_range(1, 0), 64));
    let (_, e) = decode_err(&build(raw_header(1, 3), &rec(&[&kv_body(-1)])));
    assert_eq!(e, err(out_of_range(-1, 3), 64));
    // Repeated and decreasing deltas: the second record's delta sits at byte 73.
    for (first, second) in [(1, 1), (2, 1), (3, 0)] {
        let records = [rec(&[&kv_body(first)]), rec(&[&kv_body(second)])].concat();
        let (ok, e) = decode_err(&build(raw_header(2, 5), &records));
        assert_eq!(ok.len(), 1);
        assert_eq!(
            e,
            err(out_of_range(second as i32, 5), 73),
            "{first} then {second}"
        );
    }
    // Gaps (as compaction leaves them) are fine.
    let records = [rec(&[&kv_body(0)]), rec(&[&kv_body(3)])].concat();
    let mut header = raw_header(2, 3);
    header.base_offset = 100;
    let (_, records) = decode_ok(&build(header, &records));
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [100, 103]);
}

// ---------------------------------------------------------------------------------------------
// Record semantics
// ---------------------------------------------------------------------------------------------

fn encode(params: &BatchParams, records: &[Record<'_>], now_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&mut out, params, records, now_ms).unwrap();
    out
}

#[test]
fn null_and_empty_keys_and_values_differ() {
    let records = [
        Record {
            key: None,
            value: None,
            headers: &[],
            timestamp: Some(0),
        },
        Record {
            key: Some(b""),
            value: Some(b""),
            headers: &[],
            timestamp: Some(0),
        },
        Record {
            key: None,
            value: Some(b""),
            headers: &[],
            timestamp: Some(0),
        },
        Record {
            key: Some(b""),
            value: None,
            headers: &[],
            timestamp: Some(0),
        },
    ];
    let bytes = encode(&BatchParams::default(), &records, 0);
    // null is length -1 (0x01), empty is length 0 (0x00).
    let expected_records = [
        rec(&[&[0, 0, 0x00, 0x01, 0x01, 0]]),
        rec(&[&[0, 0, 0x02, 0x00, 0x00, 0]]),
        rec(&[&[0, 0, 0x04, 0x01, 0x00, 0]]),
        rec(&[&[0, 0, 0x06, 0x00, 0x01, 0]]),
    ]
    .concat();
    assert_eq!(bytes[61..], expected_records[..]);
    let (_, decoded) = decode_ok(&bytes);
    let got: Vec<_> = decoded
        .iter()
        .map(|r| (r.key.as_deref(), r.value.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (None, None),
            (Some(&b""[..]), Some(&b""[..])),
            (None, Some(&b""[..])),
            (Some(&b""[..]), None)
        ]
    );
}

#[test]
fn headers_keep_nulls_empties_repeats_and_order() {
    let headers = [
        Header::new(b"a", None),
        Header::new(b"", Some(b"x")),
        Header::new(b"a", Some(b"1")),
        Header::new(b"a", Some(b"")),
        Header::new(b"b", Some(b"2")),
        Header::new(b"", None),
    ];
    let records = [Record::new(b"v").with_headers(&headers).with_timestamp(9)];
    let bytes = encode(&BatchParams::default(), &records, 0);
    let batch = Batch::parse(&bytes).unwrap();
    let record = batch.records().unwrap().next().unwrap().unwrap();
    let h = record.headers();
    assert_eq!(h.count_remaining(), 6);
    assert_eq!(h.size_hint(), (6, Some(6)));
    assert_eq!(h.collect::<Vec<_>>(), headers);
    // The raw bytes of the first two headers: key "a" + null value, empty key + "x".
    let at = 61 + 1 + 1 + 1 + 1 + 1 + 2 + 1; // len, attrs, ts, od, null key, value "v", count
    assert_eq!(bytes[at..at + 6], [0x02, b'a', 0x01, 0x00, 0x02, b'x']);
    assert_eq!(Headers::EMPTY.count(), 0);
}

#[test]
fn log_append_time_uses_max_timestamp_for_every_record() {
    // Encoded: maxTimestamp is now_ms, deltas keep the CreateTime values.
    let params = BatchParams {
        timestamp_type: TimestampType::LogAppendTime,
        ..Default::default()
    };
    let records = [
        Record::new(b"a").with_timestamp(100),
        Record::new(b"b").with_timestamp(-50),
        Record::new(b"c"),
        Record::new(b"d").with_timestamp(1_000_000),
    ];
    let mut bytes = Vec::new();
    let encoded = encode_batch(&mut bytes, &params, &records, 5_000).unwrap();
    assert_eq!(encoded.max_timestamp, 5_000);
    assert_eq!(encoded.first_timestamp, 100);
    let (header, decoded) = decode_ok(&bytes);
    assert_eq!(header.attributes, 0x08);
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!((header.base_timestamp, header.max_timestamp), (100, 5_000));
    assert!(decoded.iter().all(|r| r.timestamp == 5_000), "{decoded:?}");

    // Hand-built: the per-record deltas are ignored entirely.
    let mut header = raw_header(3, 2);
    header.attributes = 0x08;
    header.base_timestamp = 100;
    header.max_timestamp = 9_999;
    let body = |ts: i64, od: i64| rec(&[&[0], &v(ts), &v(od), &[0x01, 0x01, 0x00]]);
    let records = [body(0, 0), body(12_345, 1), body(-3, 2)].concat();
    let (_, decoded) = decode_ok(&build(header, &records));
    let ts: Vec<i64> = decoded.iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, [9_999; 3]);
}

#[test]
fn negative_timestamp_deltas_and_defaults() {
    let records = [
        Record::new(b"a").with_timestamp(1_000),
        Record::new(b"b").with_timestamp(10),
        Record::new(b"c").with_timestamp(-5),
        Record::new(b"d"),
        Record::new(b"e").with_timestamp(999),
    ];
    let mut bytes = Vec::new();
    let encoded = encode_batch(&mut bytes, &BatchParams::default(), &records, 700).unwrap();
    assert_eq!(
        (encoded.first_timestamp, encoded.max_timestamp),
        (1_000, 1_000)
    );
    let (header, decoded) = decode_ok(&bytes);
    assert_eq!(
        (header.base_timestamp, header.max_timestamp),
        (1_000, 1_000)
    );
    let ts: Vec<i64> = decoded.iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, [1_000, 10, -5, 700, 999]);
    // The second record (at byte 69, after an 8-byte first record) has delta -990 on the wire.
    assert_eq!(bytes[69 + 2..69 + 4], v(-990)[..]);

    // A first record without a timestamp makes now_ms the base.
    let records = [
        Record::new(b"a"),
        Record::new(b"b").with_timestamp(5),
        Record::new(b"c"),
    ];
    let mut bytes = Vec::new();
    let encoded = encode_batch(&mut bytes, &BatchParams::default(), &records, 77).unwrap();
    assert_eq!((encoded.first_timestamp, encoded.max_timestamp), (77, 77));
    let ts: Vec<i64> = decode_ok(&bytes).1.iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, [77, 5, 77]);
}

#[test]
fn empty_batch_is_valid() {
    let header = BatchHeader {
        base_offset: 100,
        partition_leader_epoch: 4,
        base_timestamp: NO_TIMESTAMP,
        max_timestamp: 1_234,
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 17,
        ..raw_header(0, 5)
    };
    let bytes = build(header, &[]);
    assert_eq!(bytes.len(), BATCH_HEADER_LEN);
    let batch = Batch::parse(&bytes).unwrap();
    batch.verify_crc().unwrap();
    let h = batch.header();
    assert_eq!(h.batch_length, 49);
    assert_eq!(h.records_count, 0);
    assert_eq!((h.last_offset(), h.next_offset()), (105, 106));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (42, 3, 17)
    );
    assert_eq!((h.base_timestamp, h.max_timestamp), (-1, 1_234));
    let mut records = batch.records().unwrap();
    assert!(records.next().is_none());
    assert!(records.next().is_none());
}

#[test]
fn transactional_control_and_delete_horizon_bits() {
    let params = BatchParams {
        producer_id: 7,
        producer_epoch: 2,
        base_sequence: 0,
        transactional: true,
        control: true,
        ..Default::default()
    };
    let key = [0u8, 0, 0, 1]; // control record key: version 0, type COMMIT
    let value = [0u8, 0, 0, 0, 0, 9]; // end-txn marker: version 0, coordinator epoch 9
    let bytes = encode(&params, &[Record::keyed(&key, &value).with_timestamp(1)], 0);
    let (h, decoded) = decode_ok(&bytes);
    assert_eq!(h.attributes, 0x30);
    assert!(h.is_transactional() && h.is_control() && !h.has_delete_horizon());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 2, 0)
    );
    assert_eq!(decoded, [dec(0, 1, Some(&key), Some(&value))]);

    let only_txn = BatchParams {
        transactional: true,
        ..Default::default()
    };
    let (h, _) = decode_ok(&encode(&only_txn, &[Record::new(b"x")], 0));
    assert!(h.is_transactional() && !h.is_control());
    assert_eq!(h.attributes, 0x10);

    let lat = BatchParams {
        timestamp_type: TimestampType::LogAppendTime,
        ..params
    };
    let (h, _) = decode_ok(&encode(&lat, &[Record::new(b"x")], 0));
    assert_eq!(h.attributes, 0x38);

    // Delete horizon (set by the cleaner; the encoder never sets it).
    let mut header = raw_header(1, 0);
    header.attributes = 0x40 | 0x10;
    header.base_timestamp = 86_400_000;
    let (h, decoded) = decode_ok(&build(header, &rec(&[&kv_body(0)])));
    assert!(h.has_delete_horizon() && h.is_transactional() && !h.is_control());
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(
        decoded[0].timestamp, 86_400_000,
        "record timestamps stay relative to the base"
    );
}

#[test]
fn encode_appends_and_rejects_empty_batches() {
    let mut out = vec![1, 2, 3];
    assert_eq!(
        encode_batch(&mut out, &BatchParams::default(), &[], 0),
        Err(EncodeError::Empty)
    );
    assert_eq!(out, [1, 2, 3], "output untouched on error");

    let params = BatchParams {
        base_offset: 0,
        partition_leader_epoch: 0,
        ..Default::default()
    };
    let encoded = encode_batch(
        &mut out,
        &params,
        &[Record::keyed(b"k", b"v").with_timestamp(0)],
        0,
    )
    .unwrap();
    assert_eq!(encoded.size, 70);
    assert_eq!(out[..3], [1, 2, 3]);
    assert_eq!(
        out[3..],
        vector1()[..],
        "the batch is appended, its CRC over its own bytes"
    );
}

#[test]
fn public_constants() {
    assert_eq!((LOG_OVERHEAD, BATCH_HEADER_LEN, MAGIC), (12, 61, 2));
    assert_eq!(
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
        (-1, -1, -1)
    );
    assert_eq!((NO_PARTITION_LEADER_EPOCH, NO_TIMESTAMP), (-1, -1));
    let d = BatchParams::default();
    assert_eq!(
        (
            d.base_offset,
            d.partition_leader_epoch,
            d.producer_id,
            d.producer_epoch,
            d.base_sequence
        ),
        (0, -1, -1, -1, -1)
    );
    assert_eq!(d.timestamp_type, TimestampType::CreateTime);
    assert!(!d.transactional && !d.control);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Feeds `bytes` to every decoding entry point and walks everything they yield, checking that
/// nothing panics, every iterator ends within a bound, and errors point inside the input.
fn exercise(bytes: &[u8]) {
    let _ = BatchHeader::parse(bytes);
    let mut n = 0;
    let mut batches = Batches::new(bytes);
    for item in batches.by_ref() {
        n += 1;
        assert!(
            n <= bytes.len() / BATCH_HEADER_LEN + 1,
            "Batches does not end"
        );
        match item {
            Ok(batch) => walk(&batch),
            Err(e) => assert!(e.position < bytes.len()),
        }
    }
    assert!(batches.next().is_none());
    if let Ok(batch) = Batch::parse(bytes) {
        walk(&batch);
    }
    plain_batch_agrees(bytes);
}

/// `plain_batch` takes exactly the uncompressed data batches `Batch::parse` takes, with the
/// same fields, size, CRC verdict and next offset.
fn plain_batch_agrees(bytes: &[u8]) {
    let parsed = Batch::parse(bytes)
        .ok()
        .filter(|b| b.header().compression_id() == 0 && !b.header().is_control());
    let plain = batch::plain_batch(bytes);
    assert_eq!(plain.is_some(), parsed.is_some(), "{bytes:?}");
    let (Some(plain), Some(parsed)) = (plain, parsed) else {
        return;
    };
    let h = parsed.header();
    assert_eq!(plain.meta, RecordsMeta::of(h));
    assert_eq!((plain.size, plain.crc), (parsed.size(), h.crc));
    assert_eq!(plain.transactional, h.is_transactional());
    assert_eq!(plain.next_offset(), h.next_offset());
    assert_eq!(plain.max_timestamp(), h.max_timestamp);
    assert_eq!(
        plain.crc_matches(parsed.bytes()),
        parsed.verify_crc().is_ok()
    );
}

fn walk(batch: &Batch<'_>) {
    let h = *batch.header();
    assert!(batch.size() >= BATCH_HEADER_LEN);
    assert_eq!(batch.size(), h.size());
    let _ = (
        h.last_offset(),
        h.next_offset(),
        h.compression(),
        h.timestamp_type(),
    );
    let _ = (h.is_transactional(), h.is_control(), h.has_delete_horizon());
    match batch.verify_crc() {
        Ok(()) => assert_eq!(batch.compute_crc(), h.crc),
        Err(e) => assert!(matches!(e.kind, DecodeErrorKind::CrcMismatch { .. })),
    }
    let Ok(mut records) = batch.records() else {
        return;
    };
    let cap = batch.size() + 2;
    let mut items = 0;
    let mut oks = 0;
    let mut last_offset = None;
    for item in records.by_ref() {
        items += 1;
        assert!(items <= cap, "Records does not end");
        match item {
            Ok(record) => {
                oks += 1;
                let delta = record.offset().wrapping_sub(h.base_offset);
                assert!((0..=i64::from(h.last_offset_delta)).contains(&delta));
                assert!(last_offset.is_none_or(|prev| record.offset() != prev));
                last_offset = Some(record.offset());
                if h.timestamp_type() == TimestampType::LogAppendTime {
                    assert_eq!(record.timestamp(), h.max_timestamp);
                }
                let _ = (record.key(), record.value());
                let headers = record.headers();
                let expected = headers.count_remaining();
                assert!(expected <= batch.size() / 2);
                assert_eq!(headers.take(expected + 1).count(), expected);
            }
            Err(e) => assert!(e.position <= batch.size(), "{e:?} beyond {}", batch.size()),
        }
    }
    assert!(oks <= h.records_count);
    assert!(records.next().is_none(), "Records stays finished");
}

#[derive(Debug, Clone)]
struct OwnedRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
    timestamp: Option<i64>,
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn timestamp_strategy() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        2 => Just(None),
        2 => (-1_000i64..1_000).prop_map(Some),
        3 => (1_600_000_000_000i64..1_800_000_000_000).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0]).prop_map(Some),
    ]
}

fn record_strategy() -> impl Strategy<Value = OwnedRecord> {
    let header = (bytes_strategy(4), prop::option::of(bytes_strategy(6)));
    (
        prop::option::of(bytes_strategy(8)),
        prop::option::of(bytes_strategy(40)),
        prop::collection::vec(header, 0..5),
        timestamp_strategy(),
    )
        .prop_map(|(key, value, headers, timestamp)| OwnedRecord {
            key,
            value,
            headers,
            timestamp,
        })
}

fn params_strategy() -> impl Strategy<Value = BatchParams> {
    (
        // Any valid base offset whose last offset still fits in an i64 (encode_batch refuses
        // the others: see offsets_outside_zero_to_i64_max_are_refused).
        prop_oneof![0i64..1_000_000, (0..=i64::MAX - 64)],
        any::<i32>(),
        any::<bool>(),
        (any::<i64>(), any::<i16>(), any::<i32>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(base_offset, epoch, lat, (pid, pepoch, seq), transactional, control)| BatchParams {
                base_offset,
                partition_leader_epoch: epoch,
                timestamp_type: if lat {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                producer_id: pid,
                producer_epoch: pepoch,
                base_sequence: seq,
                transactional,
                control,
            },
        )
}

fn now_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![1_600_000_000_000i64..1_800_000_000_000, any::<i64>()]
}

/// Encodes owned records (borrowing them as `Record`s).
fn encode_owned(
    out: &mut Vec<u8>,
    params: &BatchParams,
    owned: &[OwnedRecord],
    now_ms: i64,
) -> EncodedBatch {
    let headers: Vec<Vec<Header<'_>>> = owned
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| Header::new(k, v.as_deref()))
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
            timestamp: r.timestamp,
        })
        .collect();
    encode_batch(out, params, &records, now_ms).unwrap()
}

/// One byte-level change to a batch.
#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![0u8, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff])
    ];
    prop_oneof![
        4 => (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

/// A valid batch with random mutations, an optional truncation, and optionally its
/// `batchLength` and CRC repaired so decoding reaches the records.
fn mutated_batch_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(record_strategy(), 1..6),
        params_strategy(),
        now_strategy(),
        prop::collection::vec(mutation_strategy(), 0..6),
        prop::option::of(any::<prop::sample::Index>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(records, params, now, mutations, truncate, fix_len, fix_crc)| {
                let mut bytes = Vec::new();
                encode_owned(&mut bytes, &params, &records, now);
                for m in mutations {
                    match m {
                        Mutation::Set(i, b) => {
                            let i = i.index(bytes.len());
                            bytes[i] = b;
                        }
                        Mutation::Insert(i, b) => {
                            let i = i.index(bytes.len() + 1);
                            bytes.insert(i, b);
                        }
                        Mutation::Remove(i) => {
                            if !bytes.is_empty() {
                                let i = i.index(bytes.len());
                                bytes.remove(i);
                            }
                        }
                    }
                }
                if let Some(t) = truncate {
                    bytes.truncate(t.index(bytes.len() + 1));
                }
                if fix_len && bytes.len() >= 12 {
                    let len = (bytes.len() - 12) as i32;
                    bytes[8..12].copy_from_slice(&len.to_be_bytes());
                }
                if fix_crc && bytes.len() >= 21 {
                    recrc(&mut bytes);
                }
                bytes
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in bytes_strategy(300)) {
        exercise(&bytes);
    }

    #[test]
    fn prop_arbitrary_bytes_under_a_valid_header_never_panic(
        tail in bytes_strategy(200),
        attributes in prop_oneof![Just(0i16), any::<i16>()],
        records_count in prop_oneof![0i32..8, any::<i32>()],
        last_offset_delta in prop_oneof![0i32..8, any::<i32>()],
    ) {
        // A sealed header over random record bytes, so the record decoder sees garbage.
        let header = BatchHeader { attributes, ..raw_header(records_count, last_offset_delta) };
        let bytes = build(header, &tail);
        exercise(&bytes);
    }

    #[test]
    fn prop_mutated_batches_never_panic(bytes in mutated_batch_strategy()) {
        exercise(&bytes);
    }

    #[test]
    fn prop_round_trip(
        owned in prop::collection::vec(record_strategy(), 1..12),
        params in params_strategy(),
        now_ms in now_strategy(),
        prefix in bytes_strategy(3),
    ) {
        let mut out = prefix.clone();
        let encoded = encode_owned(&mut out, &params, &owned, now_ms);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let bytes = &out[prefix.len()..];
        prop_assert_eq!(encoded.size, bytes.len());

        let (h, decoded) = decode_ok(bytes);
        let n = owned.len();
        let timestamps: Vec<i64> = owned.iter().map(|r| r.timestamp.unwrap_or(now_ms)).collect();
        let lat = params.timestamp_type == TimestampType::LogAppendTime;
        let max_ts = if lat { now_ms } else { *timestamps.iter().max().unwrap() };

        // Header fields.
        prop_assert_eq!(h.base_offset, params.base_offset);
        prop_assert_eq!(h.batch_length as usize, bytes.len() - LOG_OVERHEAD);
        prop_assert_eq!(h.partition_leader_epoch, params.partition_leader_epoch);
        prop_assert_eq!(h.magic, MAGIC);
        prop_assert_eq!(h.crc, crc32c::crc32c(&bytes[21..]));
        prop_assert_eq!(h.last_offset_delta as usize, n - 1);
        prop_assert_eq!(h.records_count as usize, n);
        prop_assert_eq!(h.base_timestamp, timestamps[0]);
        prop_assert_eq!(h.max_timestamp, max_ts);
        prop_assert_eq!(h.producer_id, params.producer_id);
        prop_assert_eq!(h.producer_epoch, params.producer_epoch);
        prop_assert_eq!(h.base_sequence, params.base_sequence);
        prop_assert_eq!(h.timestamp_type(), params.timestamp_type);
        prop_assert_eq!(h.is_transactional(), params.transactional);
        prop_assert_eq!(h.is_control(), params.control);
        prop_assert!(!h.has_delete_horizon());
        prop_assert_eq!(h.compression(), Some(Compression::None));
        prop_assert_eq!(h.attributes & !0x38, 0, "only bits 3-5 may be set");

        // What encode_batch reported.
        prop_assert_eq!(
            encoded,
            EncodedBatch {
                size: bytes.len(),
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                first_timestamp: h.base_timestamp,
            }
        );
        prop_assert_eq!(h.last_offset(), params.base_offset.saturating_add(n as i64 - 1));

        // The records.
        let expected: Vec<Decoded> = owned
            .iter()
            .zip(&timestamps)
            .enumerate()
            .map(|(i, (r, &ts))| Decoded {
                offset: params.base_offset.wrapping_add(i as i64),
                timestamp: if lat { now_ms } else { ts },
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            })
            .collect();
        prop_assert_eq!(decoded, expected);

        // The encoded record sizes are what Kafka's reader expects: exercise() is clean.
        exercise(bytes);
    }

    #[test]
    fn prop_concatenated_batches_iterate(
        batches in prop::collection::vec(
            (prop::collection::vec(record_strategy(), 1..4), params_strategy()), 1..5),
        now_ms in now_strategy(),
    ) {
        let mut log = Vec::new();
        let mut starts = Vec::new();
        for (records, params) in &batches {
            starts.push(log.len());
            encode_owned(&mut log, params, records, now_ms);
        }
        let mut it = Batches::new(&log);
        for (k, (records, params)) in batches.iter().enumerate() {
            prop_assert_eq!(it.position(), starts[k]);
            let batch = it.next().unwrap().unwrap();
            batch.verify_crc().unwrap();
            prop_assert_eq!(batch.header().base_offset, params.base_offset);
            prop_assert_eq!(batch.records().unwrap().count(), records.len());
        }
        prop_assert!(it.next().is_none());
        prop_assert_eq!(it.position(), log.len());
    }
}

#[test]
fn offsets_outside_zero_to_i64_max_are_refused() {
    let records = [Record::new(b"a"), Record::new(b"b")];
    for base_offset in [-1, i64::MIN, i64::MAX] {
        let mut out = vec![7];
        let params = BatchParams {
            base_offset,
            ..BatchParams::default()
        };
        assert_eq!(
            encode_batch(&mut out, &params, &records, 0),
            Err(EncodeError::OffsetOutOfRange)
        );
        assert_eq!(out, [7], "nothing written");
    }
    let params = BatchParams {
        base_offset: i64::MAX - 1,
        ..BatchParams::default()
    };
    let encoded = encode_batch(&mut Vec::new(), &params, &records, 0).expect("fits exactly");
    assert_eq!(encoded.last_offset, i64::MAX);
}

#[test]
fn debug_shows_bytes_as_escaped_strings() {
    let headers = [Header::new(b"source", Some(b"web\x00"))];
    let record = Record::keyed(b"user-7", b"clicked \xff").with_headers(&headers);
    let shown = format!("{record:?}");
    assert!(shown.contains(r#"key: b"user-7""#), "{shown}");
    assert!(shown.contains(r#"value: b"clicked \xff""#), "{shown}");
    assert!(
        shown.contains(r#"Header { key: b"source", value: b"web\x00" }"#),
        "{shown}"
    );
    let tombstone = format!("{:?}", Record::tombstone(b"k"));
    assert!(tombstone.contains("value: None"), "{tombstone}");
}
