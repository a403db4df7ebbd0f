//! Empty batches (header only, no records, as Kafka's cleaner leaves them to keep a producer's
//! last offset) are valid data: recovery keeps them, reads pass over them, and the offsets they
//! cover are taken, so the next append goes after them.

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::{BATCH_HEADER_LEN, Batch, BatchHeader, BatchParams, Record, encode_batch};

fn batch(base_offset: i64, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record::new(v).with_timestamp(100))
        .collect();
    let mut out = Vec::new();
    encode_batch(
        &mut out,
        &BatchParams {
            base_offset,
            ..BatchParams::default()
        },
        &records,
        0,
    )
    .unwrap();
    out
}

/// A header-only batch covering `base_offset..=base_offset + last_offset_delta`.
fn empty_batch(base_offset: i64, last_offset_delta: i32) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        batch_length: (BATCH_HEADER_LEN - 12) as i32,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp: -1,
        max_timestamp: 100,
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 40,
        records_count: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    let crc = Batch::parse(&bytes).unwrap().compute_crc();
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn empty_batches_are_kept_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log_bytes = batch(0, &[b"a", b"b", b"c"]);
    log_bytes.extend(empty_batch(3, 4)); // offsets 3..=7, all compacted away
    log_bytes.extend(batch(8, &[b"i", b"j"]));
    log_bytes.extend(empty_batch(10, 0)); // the log's last batch is empty
    std::fs::write(dir.path().join("00000000000000000000.log"), &log_bytes).unwrap();

    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.recovery().bytes_lost(), 0, "{:?}", log.recovery());
    assert_eq!(log.next_offset(), 11);
    let offsets = |from| {
        log.read(from)
            .unwrap()
            .map(|r| r.unwrap().offset())
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(0), [0, 1, 2, 8, 9]);
    assert_eq!(offsets(3), [8, 9]);
    assert_eq!(offsets(7), [8, 9]);
    assert_eq!(offsets(10), Vec::<i64>::new());
    assert_eq!(log.append(Record::new(b"k")).unwrap(), 11);
    log.close().unwrap();
    drop(log);
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    assert!(log.recovery().clean_shutdown);
    assert_eq!(
        log.read(0)
            .unwrap()
            .map(|r| r.unwrap().offset())
            .collect::<Vec<_>>(),
        [0, 1, 2, 8, 9, 11]
    );
}
