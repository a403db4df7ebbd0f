//! `decompress`: the compressed records section of a batch, for every codec, on arbitrary bytes.
//!
//! Input: a codec byte (id mod 5), a level byte, a records-count byte, then the rest.
//!
//! * **Hostile sections.** The rest, as is, becomes the records section of a batch with that
//!   codec and count (CRC recomputed, so decoding is reached). `records_in` under a 64 KiB cap
//!   either fails with a typed error or yields records that each decode or fail; the buffer
//!   never grows far past the cap, whatever the section claims.
//! * **Round trips.** The rest, cut into records at every `0xff` byte, is compressed with the
//!   codec at a level from the level byte (Kafka's range for the codec) and decoded again: the
//!   values come back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use topiclog::record::{
    BATCH_HEADER_LEN, Batch, BatchParams, Compression, CompressionLevels, Record,
    encode_compressed_batch,
};

/// The decompression cap for hostile sections.
const CAP: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let [codec, level, count, rest @ ..] = data else {
        return;
    };
    let Some(codec) = Compression::from_id(codec % 5) else {
        return;
    };
    hostile(codec, i32::from(*count), rest);
    round_trip(codec, *level, rest);
});

/// A batch whose records section is `section`, compressed with `codec` (or so it says).
fn hostile(codec: Compression, count: i32, section: &[u8]) {
    let mut bytes = Vec::new();
    encode_compressed_batch(
        &mut bytes,
        &BatchParams::default(),
        &[Record::new(b"x")],
        0,
        Compression::None,
        &CompressionLevels::default(),
    )
    .expect("one small record encodes");
    bytes.truncate(BATCH_HEADER_LEN);
    bytes.extend_from_slice(section);
    let length = i32::try_from(bytes.len() - 12).expect("fuzz inputs are small");
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (i16::from_be_bytes([bytes[21], bytes[22]]) & !7) | i16::from(codec.id());
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    // lastOffsetDelta and recordsCount agree, so the header parses whatever the count.
    bytes[23..27].copy_from_slice(&(count.max(1) - 1).to_be_bytes());
    bytes[57..61].copy_from_slice(&count.to_be_bytes());
    let Ok(batch) = Batch::parse(&bytes) else {
        return;
    };
    let crc = batch.compute_crc();
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::parse(&bytes).expect("parsed before the CRC was set");
    batch.verify_crc().expect("CRC just set");
    let mut buf = Vec::new();
    match batch.records_in(&mut buf, CAP) {
        Ok(records) => {
            let mut items = 0usize;
            for item in records {
                items += 1;
                assert!(items <= count as usize + 1, "records past the count");
                if let Ok(record) = item {
                    let _ = (record.key(), record.value(), record.headers().count());
                }
            }
        }
        Err(e) => {
            assert!(e.position <= bytes.len(), "{e:?}");
            let _ = e.to_string();
        }
    }
    // The readers grow the buffer as they must, and stop one byte past the cap.
    assert!(
        buf.capacity() <= 4 * CAP,
        "{codec}: {} bytes allocated under a {CAP}-byte cap",
        buf.capacity()
    );
}

/// `rest` cut at `0xff` into values, compressed with `codec` and decoded back.
fn round_trip(codec: Compression, level: u8, rest: &[u8]) {
    if rest.is_empty() {
        return;
    }
    let values: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let levels = match codec {
        Compression::Gzip => CompressionLevels {
            gzip: Some(1 + u32::from(level % 9)),
            ..CompressionLevels::default()
        },
        Compression::Lz4 => CompressionLevels {
            lz4: Some(1 + u32::from(level % 17)),
            ..CompressionLevels::default()
        },
        Compression::Zstd => CompressionLevels {
            zstd: Some(i32::from(level % 30) - 7),
            ..CompressionLevels::default()
        },
        _ => CompressionLevels::default(),
    };
    let mut bytes = Vec::new();
    encode_compressed_batch(
        &mut bytes,
        &BatchParams::default(),
        &records,
        0,
        codec,
        &levels,
    )
    .expect("encodes");
    let batch = Batch::parse(&bytes).expect("our batch parses");
    batch.verify_crc().expect("our batch's CRC is valid");
    assert_eq!(batch.header().compression(), Some(codec));
    let mut buf = Vec::new();
    let got: Vec<Vec<u8>> = batch
        .records_in(&mut buf, usize::MAX)
        .expect("our batch decompresses")
        .map(|r| {
            r.expect("our record decodes")
                .value()
                .expect("a value")
                .to_vec()
        })
        .collect();
    assert_eq!(got, values, "{codec} {levels:?} round trip");
}
