//! `decode_batch`: the pure RecordBatch v2 codec on arbitrary bytes.
//!
//! The input is read as a `.log` file's contents. Every call must return (no panic, no endless
//! loop, no allocation beyond the input's size) and every answer must agree with itself:
//!
//! * [`BatchHeader::parse`] either fails or returns a header whose `to_bytes` are the first 61
//!   input bytes and whose `size()` is at least 61.
//! * [`Batches`] yields batches laid end to end (each starts where the previous ended, its
//!   `bytes()` are the input at that position, `size()` agrees with its header), stops after
//!   its first error, and reports error positions inside the input. [`Batch::parse`] agrees with
//!   its first item.
//! * For every batch, whatever its CRC says: [`Batch::records`] iterates at most
//!   `recordsCount + 1` items, offsets rise strictly within `[baseOffset, lastOffset]`, every
//!   record's headers iterate to exactly the count announced, error positions lie inside the
//!   batch, and the iterator stays finished after `None` or an error.
//! * A batch whose records all decode (uncompressed) re-encodes with
//!   [`encode_batch`] and decodes back to the same keys, values, headers and timestamps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use topiclog::record::{
    BATCH_HEADER_LEN, Batch, BatchHeader, BatchParams, Batches, DecodeError, Header, Record,
    RecordView, encode_batch,
};

/// A record decoded into owned parts, for comparing a round trip.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fuzz_target!(|data: &[u8]| {
    check_header(data);

    let mut position = 0usize;
    let mut batches = Batches::new(data);
    let first = Batch::parse(data);
    let mut index = 0usize;
    // Each item consumes at least 61 bytes or ends the iteration: the bound is the input's size.
    let max_items = data.len() / BATCH_HEADER_LEN + 1;
    while let Some(item) = batches.next() {
        assert!(
            index < max_items,
            "Batches yielded more items than the input holds"
        );
        if index == 0 {
            assert_eq!(
                first.as_ref().ok(),
                item.as_ref().ok(),
                "Batch::parse disagrees"
            );
            assert_eq!(
                first.as_ref().err(),
                item.as_ref().err(),
                "Batch::parse disagrees"
            );
        }
        index += 1;
        match item {
            Ok(batch) => {
                assert_eq!(batch.bytes().as_ptr(), data[position..].as_ptr());
                assert_eq!(batch.size(), batch.header().size());
                assert!(batch.size() >= BATCH_HEADER_LEN);
                assert!(position + batch.size() <= data.len());
                position += batch.size();
                assert_eq!(batches.position(), position);
                check_batch(&batch);
            }
            Err(e) => {
                check_error(&e, data.len());
                assert!(
                    e.position >= position,
                    "error before the failing batch: {e:?}"
                );
                assert!(batches.next().is_none(), "Batches went on after an error");
                break;
            }
        }
    }
    if index == 0 {
        assert!(data.is_empty(), "no item for a non-empty input");
    }
});

/// `BatchHeader::parse` on the input: stored bytes round-trip, sizes are sane.
fn check_header(data: &[u8]) {
    match BatchHeader::parse(data) {
        Ok(header) => {
            assert_eq!(&header.to_bytes()[..], &data[..BATCH_HEADER_LEN]);
            assert!(header.size() >= BATCH_HEADER_LEN);
            assert!(header.last_offset() >= header.base_offset);
            assert!(header.records_count >= 0 && header.last_offset_delta >= 0);
            let _ = (
                header.compression(),
                header.timestamp_type(),
                header.next_offset(),
            );
        }
        Err(e) => check_error(&e, data.len()),
    }
}

/// A decode error points into the bytes it was decoded from and formats without panicking.
fn check_error(e: &DecodeError, len: usize) {
    assert!(
        e.position <= len,
        "error position {} past {len} bytes: {e:?}",
        e.position
    );
    let _ = e.to_string();
}

/// Everything a reader can ask of one framed batch.
fn check_batch(batch: &Batch<'_>) {
    let header = *batch.header();
    if let Err(e) = batch.verify_crc() {
        check_error(&e, batch.size());
    }
    let mut records = match batch.records() {
        Ok(records) => records,
        Err(e) => {
            check_error(&e, batch.size());
            return;
        }
    };
    let declared = usize::try_from(header.records_count).expect("parse checks the count");
    let mut decoded = Vec::new();
    let mut previous: Option<i64> = None;
    let mut items = 0usize;
    let mut failed = false;
    for item in records.by_ref() {
        items += 1;
        assert!(
            items <= declared + 1,
            "records iterated past the declared count"
        );
        match item {
            Ok(record) => {
                let offset = record.offset();
                assert!(offset >= header.base_offset && offset <= header.last_offset());
                if let Some(prev) = previous {
                    assert!(offset > prev, "offsets do not rise: {prev} then {offset}");
                }
                previous = Some(offset);
                decoded.push(decode_fully(&record));
            }
            Err(e) => {
                check_error(&e, batch.size());
                failed = true;
            }
        }
    }
    assert!(records.next().is_none(), "records went on after the end");
    if failed {
        assert!(decoded.len() <= declared);
        return;
    }
    assert_eq!(
        decoded.len(),
        declared,
        "records ended early without an error"
    );
    round_trip(&decoded);
}

/// Reads every field and header of a record; header count must match what is announced.
fn decode_fully(record: &RecordView<'_>) -> Decoded {
    let headers = record.headers();
    let announced = headers.count_remaining();
    let headers: Vec<_> = headers
        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        headers.len(),
        announced,
        "a validated record's headers ended early"
    );
    Decoded {
        timestamp: record.timestamp(),
        key: record.key().map(<[u8]>::to_vec),
        value: record.value().map(<[u8]>::to_vec),
        headers,
    }
}

/// Re-encodes decoded records (CreateTime, each with its effective timestamp) and decodes them
/// back: keys, values, headers and timestamps must survive.
fn round_trip(decoded: &[Decoded]) {
    if decoded.is_empty() {
        return;
    }
    let headers: Vec<Vec<Header<'_>>> = decoded
        .iter()
        .map(|d| {
            d.headers
                .iter()
                .map(|(k, v)| Header::new(k, v.as_deref()))
                .collect()
        })
        .collect();
    let records: Vec<Record<'_>> = decoded
        .iter()
        .zip(&headers)
        .map(|(d, h)| Record {
            key: d.key.as_deref(),
            value: d.value.as_deref(),
            headers: h,
            timestamp: Some(d.timestamp),
        })
        .collect();
    let mut bytes = Vec::new();
    let encoded = encode_batch(&mut bytes, &BatchParams::default(), &records, 0)
        .expect("records decoded from a batch fit in a batch");
    assert_eq!(encoded.size, bytes.len());
    let batch = Batch::parse(&bytes).expect("encoded batch parses");
    batch.verify_crc().expect("encoded batch has a valid CRC");
    let again: Vec<Decoded> = batch
        .records()
        .expect("encoded batch is uncompressed")
        .map(|r| decode_fully(&r.expect("encoded record decodes")))
        .collect();
    assert_eq!(
        again, decoded,
        "encode/decode round trip changed the records"
    );
    let offsets: Vec<i64> = batch
        .records()
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(offsets, (0..decoded.len() as i64).collect::<Vec<_>>());
}
