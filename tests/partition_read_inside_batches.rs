//! Reads that start inside large batches (the verified batch tables of `segment::verified`):
//! every offset of every batch reads back its own record, in any order and again, from the
//! active segment and sealed ones, through the write buffer and after a reopen; a damaged batch
//! is reported on every read, never served, whether or not a neighbouring batch was read
//! before; small batches and compressed ones read as before.

mod common;

use common::{append_batch_range, assert_range, read_all, segment_path, small_config};
use topiclog::config::LogConfig;
use topiclog::{Error, Partition};

/// Reads the one record at `offset` and checks it is record `offset` of the workload.
fn check_one(log: &Partition, offset: i64) {
    let record = log
        .read(offset)
        .expect("reader")
        .next()
        .unwrap_or_else(|| panic!("nothing at {offset}"))
        .unwrap_or_else(|e| panic!("at {offset}: {e}"));
    assert_eq!(record.offset(), offset);
    assert_eq!(record.value(), Some(common::value(offset).as_slice()));
    assert_eq!(record.key(), Some(common::key(offset).as_slice()));
    assert_eq!(record.timestamp(), 1_000 * offset);
}

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(64 * 1024)
        .index_interval_bytes(4096)
        .build()
        .unwrap()
}

/// Batches of 100 records (above the table's threshold), a few segments.
fn fill(log: &Partition, batches: i64) {
    for b in 0..batches {
        append_batch_range(log, b * 100, (b + 1) * 100);
    }
}

#[test]
fn every_offset_inside_large_batches_reads_its_own_record_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), config()).unwrap();
    fill(&log, 30);
    assert!(log.segment_base_offsets().len() > 2);
    // A scrambled order, twice: the second pass reads through kept tables.
    let order: Vec<i64> = (0..3000).map(|i| (i * 7919) % 3000).collect();
    for _ in 0..2 {
        for &offset in &order {
            check_one(&log, offset);
        }
    }
    // Reading on from a seek inside a batch continues across batches and segments.
    assert_range(&read_all(&log, 1234), 1234, 3000);
    log.close().unwrap();

    let log = Partition::open(dir.path(), config()).unwrap();
    for &offset in order.iter().rev() {
        check_one(&log, offset);
    }
    assert_range(&read_all(&log, 2999), 2999, 3000);
}

#[test]
fn a_damaged_large_batch_is_reported_on_every_read_even_after_its_neighbours_were_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Partition::open(dir.path(), config()).unwrap();
        fill(&log, 12);
        log.close().unwrap();
    }
    // Damage the value bytes of the third batch of the first segment.
    let path = segment_path(dir.path(), 0, "log");
    let spans = common::batch_spans(&path);
    let victim = spans[2];
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (victim.start + (victim.end - victim.start) / 2) as usize;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let log = Partition::open(dir.path(), config()).unwrap();
    // Neighbours first, so tables exist around the damage.
    for offset in [150, 199, 99, 310, 350] {
        check_one(&log, offset);
    }
    for _ in 0..3 {
        for offset in [
            victim.base_offset,
            victim.base_offset + 1,
            victim.last_offset,
        ] {
            match log.read(offset).unwrap().next() {
                Some(Err(Error::Corrupt { .. })) => {}
                other => panic!("offset {offset}: expected Corrupt, got {other:?}"),
            }
        }
    }
    // The batches around it still read.
    check_one(&log, victim.base_offset - 1);
    check_one(&log, victim.last_offset + 1);
}

#[test]
fn reads_inside_batches_of_the_active_segment_and_the_write_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let lazy = LogConfig::builder()
        .flush_messages(i64::MAX)
        .index_interval_bytes(4096)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), lazy).unwrap();
    fill(&log, 5);
    for offset in (0..500).rev() {
        check_one(&log, offset);
    }
    fill_more(&log, 5, 8);
    for offset in (0..800).step_by(37) {
        check_one(&log, offset);
    }
    assert_range(&read_all(&log, 450), 450, 800);
}

fn fill_more(log: &Partition, from_batch: i64, to_batch: i64) {
    for b in from_batch..to_batch {
        append_batch_range(log, b * 100, (b + 1) * 100);
    }
}

#[test]
fn small_and_compressed_batches_read_inside_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1 << 20)).unwrap();
    // Batches of 10: under the table threshold.
    for b in 0..20 {
        append_batch_range(&log, b * 10, (b + 1) * 10);
    }
    for offset in (0..200).rev() {
        check_one(&log, offset);
    }
    #[cfg(feature = "lz4")]
    {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::builder()
            .compression_type(topiclog::config::CompressionType::Lz4)
            .build()
            .unwrap();
        let log = Partition::open(dir.path(), config).unwrap();
        fill(&log, 4);
        for offset in (0..400).rev().step_by(3) {
            check_one(&log, offset);
        }
    }
}
