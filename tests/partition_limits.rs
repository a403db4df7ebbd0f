//! Size limits: a batch over `max.message.bytes` or `segment.bytes` is a typed error and
//! nothing is written; a batch exactly at the limit is accepted; a huge value is refused
//! before it is encoded.

mod common;

use topiclog::config::LogConfig;
use topiclog::record::Record;
use topiclog::{Error, Partition};

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn batches_over_max_message_bytes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .max_message_bytes(1000)
        .write_buffer_bytes(0)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    log.append(Record::new(b"ok")).unwrap();
    let before = log_bytes(dir.path());
    // One record of 1000 value bytes: the payload alone reaches the limit, the batch exceeds it.
    let big = vec![7u8; 1000];
    match log.append(Record::new(&big)) {
        Err(Error::RecordTooLarge {
            size,
            limit: 1000,
            setting: "max.message.bytes",
            ..
        }) => assert!(size > 1000),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // Many small records that only exceed the limit once encoded.
    let small = vec![Record::new(b"0123456789"); 60];
    assert!(matches!(
        log.append_batch(&small),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(log.next_offset(), 1, "no offset was taken");
    assert_eq!(log_bytes(dir.path()), before, "no byte was written");
    assert_eq!(log.append(Record::new(b"next")).unwrap(), 1);
}

#[test]
fn a_batch_exactly_at_the_limit_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // A one-record batch with no key and a v-byte value is 61 + 1 (length varint, for small
    // bodies) + 7 + v bytes: attributes, timestamp delta, offset delta, key length, value length
    // (2 bytes for v >= 64), header count.
    let value = vec![1u8; 900];
    let batch_size = 61 + 2 + (1 + 1 + 1 + 1 + 2 + 900 + 1);
    let config = LogConfig::builder()
        .max_message_bytes(batch_size)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    log.append(Record::new(&value).with_timestamp(0))
        .expect("exactly at the limit");
    let one_more = vec![1u8; 901];
    assert!(matches!(
        log.append(Record::new(&one_more).with_timestamp(0)),
        Err(Error::RecordTooLarge { .. })
    ));
}

#[test]
fn batches_larger_than_a_segment_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder().segment_bytes(500).build().unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    let value = vec![0u8; 600];
    match log.append(Record::new(&value)) {
        Err(Error::RecordTooLarge {
            limit: 500,
            setting: "segment.bytes",
            ..
        }) => {}
        other => panic!("expected RecordTooLarge for segment.bytes, got {other:?}"),
    }
    assert_eq!(log.next_offset(), 0);
}

#[test]
fn huge_values_are_refused_before_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let huge = vec![0u8; 64 << 20];
    match log.append(Record::new(&huge)) {
        Err(Error::RecordTooLarge {
            size,
            at_least,
            limit: 1_048_588,
            ..
        }) => {
            // Refused before encoding: the records' bytes, a lower bound, said as one.
            assert_eq!(size, 64 << 20);
            assert!(at_least);
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
}
