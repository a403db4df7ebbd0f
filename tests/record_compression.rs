//! Compressed batches through the pure codec and a partition: every codec round-trips (one
//! record, many, and a batch of zero records), a compressed batch decodes to exactly what the
//! same records uncompressed decode to, plain snappy blocks are read as well as xerial frames,
//! and damaged or hostile compressed sections (flipped bytes with a recomputed CRC, a section
//! that expands past the cap, a record count the data cannot hold) are typed errors, never a
//! panic or an allocation of what the batch asks for. In a build without a codec, its batches
//! are `UnsupportedCompression` (through a partition: `tests/kafka_made_fixtures.rs`).

use topiclog::config::LogConfig;
use topiclog::record::{
    Batch, BatchParams, Compression, CompressionLevels, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES,
    DecodeErrorKind, EncodeError, Header, Record, encode_batch, encode_compressed_batch,
    is_supported,
};
use topiclog::{OwnedRecord, Partition};

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// JSON-like values of a few hundred bytes, so every codec shrinks them.
fn values(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"user":"user-{}","event":"page_view","path":"/items/{}","tags":["a","b","c"],"padding":"{}"}}"#,
                i % 17,
                i * 7,
                "x".repeat(100 + i % 50)
            )
            .into_bytes()
        })
        .collect()
}

fn owned(batch: &Batch<'_>) -> Vec<OwnedRecord> {
    let mut buf = Vec::new();
    batch
        .records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)
        .expect("records")
        .map(|r| {
            let r = r.expect("record decodes");
            OwnedRecord {
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| topiclog::OwnedHeader {
                        key: h.key.to_vec(),
                        value: h.value.map(<[u8]>::to_vec),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn encode(codec: Compression, records: &[Record<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = BatchParams {
        base_offset: 100,
        ..BatchParams::default()
    };
    encode_compressed_batch(
        &mut out,
        &params,
        records,
        1_000,
        codec,
        &CompressionLevels::default(),
    )
    .expect("encode");
    out
}

/// `batch` with its records section replaced by `section`, its codec bits set to `codec`, its
/// record count to `count`, and a correct CRC.
fn rebatch(batch: &[u8], codec: u8, section: &[u8], count: i32) -> Vec<u8> {
    let mut out = batch[..61].to_vec();
    out.extend_from_slice(section);
    let len = i32::try_from(out.len() - 12).unwrap();
    out[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = (i16::from_be_bytes([out[21], out[22]]) & !7) | i16::from(codec);
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = Batch::parse(&out).unwrap().compute_crc();
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn every_codec_round_trips_one_and_many_records() {
    let values = values(200);
    let headers = [Header::new(b"h", Some(b"v")), Header::new(b"n", None)];
    let many: Vec<Record<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let r = Record::new(v).with_timestamp(5_000 + i as i64);
            if i % 3 == 0 {
                r.with_headers(&headers)
            } else {
                r
            }
        })
        .collect();
    for records in [&many[..1], &many[..]] {
        let plain = encode(Compression::None, records);
        let want = owned(&Batch::parse(&plain).unwrap());
        for codec in CODECS.into_iter().filter(|c| is_supported(*c)) {
            let bytes = encode(codec, records);
            let batch = Batch::parse(&bytes).unwrap();
            batch.verify_crc().unwrap();
            assert_eq!(batch.size(), bytes.len());
            assert_eq!(batch.header().compression(), Some(codec));
            assert_eq!(batch.header().records_count as usize, records.len());
            if records.len() > 1 {
                assert!(bytes.len() < plain.len() / 2, "{codec}: {}", bytes.len());
            }
            // Everything but the codec bits, batchLength and CRC matches the plain header.
            let (h, p) = (batch.header(), Batch::parse(&plain).unwrap());
            let p = p.header();
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.base_timestamp),
                (p.base_offset, p.last_offset_delta, p.base_timestamp)
            );
            assert_eq!(h.max_timestamp, p.max_timestamp);
            assert_eq!(owned(&batch), want, "{codec}");
            let e = batch.records().unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::UnsupportedCompression(codec));
        }
    }
}

#[test]
fn a_compressed_batch_of_zero_records_reads_as_empty() {
    let one = encode(Compression::None, &[Record::new(b"x")]);
    for codec in CODECS.into_iter().filter(|c| is_supported(*c)) {
        let empty_section = compressed_empty(codec);
        let bytes = rebatch(&one, codec.id(), &empty_section, 0);
        let batch = Batch::parse(&bytes).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(owned(&batch), Vec::new(), "{codec}");
    }
}

/// The codec's framing around zero bytes, built by hand (the encoder refuses empty batches).
fn compressed_empty(codec: Compression) -> Vec<u8> {
    match codec {
        // gzip: header, an empty final stored block, CRC32 0, ISIZE 0.
        Compression::Gzip => vec![
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        // xerial header with no blocks.
        Compression::Snappy => {
            let mut v = b"\x82SNAPPY\0".to_vec();
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v
        }
        // LZ4 frame: magic, FLG (version 01, block independence), BD (64 KiB), header
        // checksum, end mark.
        Compression::Lz4 => vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0],
        // zstd frame: magic, descriptor (single segment, 1-byte size 0), one empty raw last block.
        Compression::Zstd => vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00],
        _ => Vec::new(),
    }
}

#[test]
fn plain_snappy_blocks_are_read_like_xerial_frames() {
    if !is_supported(Compression::Snappy) {
        return;
    }
    let values = values(20);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let plain = encode(Compression::None, &records);
    let want = owned(&Batch::parse(&plain).unwrap());
    // A raw snappy block made of one literal run: varint length, then literal tags.
    let section = &plain[61..];
    let mut block = Vec::new();
    let mut n = section.len();
    while n >= 0x80 {
        block.push((n as u8) | 0x80);
        n >>= 7;
    }
    block.push(n as u8);
    for chunk in section.chunks(60) {
        block.push(((chunk.len() - 1) as u8) << 2);
        block.extend_from_slice(chunk);
    }
    let count = i32::try_from(records.len()).unwrap();
    let bytes = rebatch(&plain, Compression::Snappy.id(), &block, count);
    assert_eq!(owned(&Batch::parse(&bytes).unwrap()), want);
}

#[test]
fn damaged_compressed_sections_are_typed_errors() {
    let values = values(50);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    for codec in CODECS.into_iter().filter(|c| is_supported(*c)) {
        let good = encode(codec, &records);
        let section = &good[61..];
        let count = records.len() as i32;
        let mut errors = 0;
        for at in (0..section.len()).step_by(3) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = section.to_vec();
                damaged[at] ^= flip;
                let bytes = rebatch(&good, codec.id(), &damaged, count);
                let batch = Batch::parse(&bytes).unwrap();
                let mut buf = Vec::new();
                match batch.records_in(&mut buf, 1 << 20) {
                    Ok(records) => {
                        // Some flips land in bytes no decoder checks; the records then still
                        // either decode or fail with a typed error.
                        if records.into_iter().any(|r| r.is_err()) {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                assert!(buf.capacity() <= 4 << 20, "{codec}: runaway allocation");
            }
        }
        assert!(errors > 0, "{codec}: no flip was noticed");
        // Cut short.
        let bytes = rebatch(&good, codec.id(), &section[..section.len() / 2], count);
        let batch = Batch::parse(&bytes).unwrap();
        let mut buf = Vec::new();
        let failed = match batch.records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES) {
            Ok(mut records) => records.any(|r| r.is_err()),
            Err(_) => true,
        };
        assert!(failed, "{codec}: a truncated section reads");
    }
}

#[test]
fn a_section_past_the_cap_is_refused() {
    let big = vec![b'a'; 1 << 20];
    let records = [Record::new(&big)];
    for codec in CODECS.into_iter().filter(|c| is_supported(*c)) {
        let bytes = encode(codec, &records);
        assert!(bytes.len() < 64 << 10, "{codec}: {}", bytes.len());
        let batch = Batch::parse(&bytes).unwrap();
        let mut buf = Vec::new();
        let e = batch
            .records_in(&mut buf, 256 << 10)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            e.kind,
            DecodeErrorKind::DecompressedTooLarge {
                codec,
                limit: 256 << 10
            },
            "{codec}"
        );
        assert!(buf.capacity() <= 1 << 20, "{codec}: {}", buf.capacity());
        let mut buf = Vec::new();
        assert!(batch.records_in(&mut buf, 2 << 20).is_ok(), "{codec}");
    }
}

#[test]
fn a_record_count_the_data_cannot_hold_is_refused() {
    let records = [Record::new(b"one")];
    for codec in CODECS.into_iter().filter(|c| is_supported(*c)) {
        let good = encode(codec, &records);
        let bytes = rebatch(&good, codec.id(), &good[61..], i32::MAX);
        let batch = Batch::parse(&bytes).unwrap();
        let mut buf = Vec::new();
        let e = batch
            .records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::RecordCountExceedsData {
                    declared: i32::MAX,
                    ..
                }
            ),
            "{codec}: {e}"
        );
    }
}

#[test]
fn a_partition_reads_compressed_segments_and_shares_each_batch_buffer() {
    let values = values(30);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let mut next = 0i64;
    let mut want = Vec::new();
    for codec in [Compression::None].into_iter().chain(CODECS) {
        let params = BatchParams {
            base_offset: next,
            ..BatchParams::default()
        };
        let at = log.len();
        let encoded = encode_compressed_batch(
            &mut log,
            &params,
            &records,
            7,
            codec,
            &CompressionLevels::default(),
        );
        if !is_supported(codec) {
            assert_eq!(encoded, Err(EncodeError::UnsupportedCompression(codec)));
            // Write it uncompressed, then mark it compressed: a batch this build cannot read.
            encode_batch(&mut log, &params, &records, 7).unwrap();
            let plain = log.split_off(at);
            let section = plain[61..].to_vec();
            log.extend(rebatch(&plain, codec.id(), &section, records.len() as i32));
        } else {
            want.extend(owned(&Batch::parse(&log[at..]).unwrap()));
        }
        next += records.len() as i64;
    }
    std::fs::write(dir.path().join("00000000000000000000.log"), &log).unwrap();
    let partition = Partition::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(partition.recovery().bytes_lost(), 0);
    assert_eq!(partition.next_offset(), next);
    let mut got = Vec::new();
    let mut refused = Vec::new();
    for record in partition.read(0).unwrap() {
        match record {
            Ok(r) => got.push(r.to_owned_record()),
            Err(topiclog::Error::UnsupportedCompression { codec, .. }) => refused.push(codec),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, want);
    let off: Vec<Compression> = CODECS.into_iter().filter(|c| !is_supported(*c)).collect();
    assert_eq!(refused, off);
    // Reading from inside a compressed batch starts at the offset asked for.
    if is_supported(Compression::Zstd) {
        let from = 4 * 30 + 7;
        let first = partition.read(from).unwrap().next().unwrap().unwrap();
        assert_eq!(first.offset(), from);
        assert_eq!(first.value(), Some(&values[7][..]));
    }
}

#[cfg(not(all(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
)))]
#[test]
fn codecs_left_out_of_the_build_are_unsupported() {
    let plain = encode(Compression::None, &[Record::new(b"x")]);
    let left_out: Vec<Compression> = CODECS.into_iter().filter(|c| !is_supported(*c)).collect();
    assert!(!left_out.is_empty(), "this build leaves a codec out");
    for codec in left_out {
        let bytes = rebatch(&plain, codec.id(), &plain[61..], 1);
        let batch = Batch::parse(&bytes).unwrap();
        let mut buf = Vec::new();
        let e = batch
            .records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedCompression(codec));
        let mut out = Vec::new();
        assert_eq!(
            encode_compressed_batch(
                &mut out,
                &BatchParams::default(),
                &[Record::new(b"x")],
                0,
                codec,
                &CompressionLevels::default()
            ),
            Err(EncodeError::UnsupportedCompression(codec))
        );
        assert!(out.is_empty());
    }
}

/// The blocks of an LZ4 frame Kafka's way (header, then `(len, block)` until the end mark):
/// each block's stored length and whether it is stored uncompressed.
#[cfg(feature = "lz4")]
fn lz4_blocks(section: &[u8]) -> Vec<(usize, bool)> {
    assert_eq!(
        section[..7],
        [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82],
        "Kafka's frame header"
    );
    let mut blocks = Vec::new();
    let mut at = 7;
    loop {
        let word = u32::from_le_bytes(section[at..at + 4].try_into().unwrap());
        at += 4;
        if word == 0 {
            assert_eq!(at, section.len(), "the end mark ends the section");
            return blocks;
        }
        let len = (word & 0x7fff_ffff) as usize;
        assert!(len <= 64 * 1024, "blocks of at most 64 KiB");
        blocks.push((len, word & 0x8000_0000 != 0));
        at += len;
    }
}

#[cfg(feature = "lz4")]
#[test]
fn lz4_levels_choose_kafkas_fast_or_high_compression_mode() {
    let values = values(2_000);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let encode_at = |level: Option<u32>| {
        let mut out = Vec::new();
        let levels = CompressionLevels {
            lz4: level,
            ..CompressionLevels::default()
        };
        let params = BatchParams::default();
        encode_compressed_batch(
            &mut out,
            &params,
            &records,
            1_000,
            Compression::Lz4,
            &levels,
        )
        .expect("encode");
        out
    };
    let default = encode_at(None);
    // Kafka's default level is its fast compressor: the same bytes as no level at all.
    assert_eq!(encode_at(Some(9)), default);
    let blocks = lz4_blocks(&default[61..]);
    assert!(blocks.len() > 1, "over 64 KiB of records: several blocks");
    assert!(blocks.iter().all(|&(_, raw)| !raw), "JSON compresses");
    let plain = owned(&Batch::parse(&encode(Compression::None, &records)).unwrap());
    let mut sizes = Vec::new();
    for level in [1, 3, 12, 17] {
        let bytes = encode_at(Some(level));
        lz4_blocks(&bytes[61..]);
        let batch = Batch::parse(&bytes).unwrap();
        assert!(batch.verify_crc().is_ok(), "level {level}");
        let got = owned(&batch);
        assert_eq!(got.len(), plain.len(), "level {level}");
        assert!(
            got.iter().zip(&plain).all(|(a, b)| a.value == b.value),
            "level {level} round-trips"
        );
        sizes.push((level, bytes.len()));
    }
    // Every other level is LZ4 HC, which finds more matches than the fast compressor.
    for &(level, size) in &sizes {
        assert!(
            size < default.len(),
            "level {level}: {size} bytes, not below the fast mode's {}",
            default.len()
        );
    }
    assert!(sizes[2].1 <= sizes[1].1, "level 12 is no larger than 3");
}

#[cfg(feature = "lz4")]
#[test]
fn lz4_stores_incompressible_blocks_as_they_are() {
    // xorshift bytes: nothing for LZ4 to find.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let bytes = encode(Compression::Lz4, &[Record::new(&noise)]);
    let blocks = lz4_blocks(&bytes[61..]);
    assert_eq!(blocks.len(), 2, "100 KB in 64 KiB blocks");
    assert!(blocks.iter().all(|&(_, raw)| raw), "{blocks:?}");
    let got = owned(&Batch::parse(&bytes).unwrap());
    assert_eq!(got[0].value.as_deref(), Some(&noise[..]));
}

#[cfg(feature = "lz4")]
#[test]
fn an_lz4_frame_without_its_end_mark_is_corrupt() {
    let values = values(20);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let good = encode(Compression::Lz4, &records);
    let section = &good[61..good.len() - 4];
    let bytes = rebatch(&good, Compression::Lz4.id(), section, records.len() as i32);
    let batch = Batch::parse(&bytes).unwrap();
    let mut buf = Vec::new();
    let result = batch.records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES);
    assert!(
        matches!(
            result,
            Err(ref e) if matches!(e.kind, DecodeErrorKind::InvalidCompressedData { codec: Compression::Lz4, .. })
        ),
        "{:?}",
        result.err()
    );
}
