//! Unit tests (compiled only under `#[cfg(test)]`, see `mod.rs`) that need the crate's internals: the `pread` read path (no mappings), which
//! read-only opens and platforms without mapping past the end of a file take.

use std::sync::Arc;

use super::Partition;
use crate::config::LogConfig;
use crate::disk::NoMapDisk;
use crate::record::Record;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(64 * 1024)
        .index_interval_bytes(300)
        .write_buffer_bytes(3000)
        .build()
        .expect("config")
}

fn value(i: i64) -> Vec<u8> {
    // Values up to ~1.5 KiB, so batches straddle the 256 KiB read chunks now and then.
    format!("{i:010}")
        .repeat(1 + (i % 150) as usize)
        .into_bytes()
}

#[test]
fn reads_without_mappings_match_reads_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open_on(
        Arc::new(NoMapDisk),
        dir.path(),
        config(),
        Default::default(),
    )
    .expect("open");
    for i in 0..2_000i64 {
        log.append(Record::new(&value(i)).with_timestamp(i))
            .expect("append");
    }
    let check = |log: &Partition, from: i64| {
        let mut n = from;
        for record in log.read(from).expect("reader") {
            let record = record.expect("record");
            assert_eq!(record.offset(), n);
            assert_eq!(record.value(), Some(&value(n)[..]));
            n += 1;
        }
        assert_eq!(n, 2_000);
    };
    for from in [0, 1, 777, 1_999, 2_000] {
        check(&log, from);
    }
    assert_eq!(
        log.offset_for_timestamp(1_234)
            .expect("lookup")
            .map(|t| t.offset),
        Some(1_234)
    );
    drop(log); // crash-style: recovery scans through pread windows too
    let log = Partition::open_on(
        Arc::new(NoMapDisk),
        dir.path(),
        config(),
        Default::default(),
    )
    .expect("reopen");
    assert!(log.recovery().segments_scanned > 0);
    check(&log, 0);
    log.close().expect("close");
    drop(log);
    let log = Partition::open_on(
        Arc::new(NoMapDisk),
        dir.path(),
        config(),
        Default::default(),
    )
    .expect("reopen");
    assert!(log.recovery().clean_shutdown);
    check(&log, 500);
}

#[test]
fn batches_larger_than_a_read_chunk_read_back_without_mappings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::builder()
        .max_message_bytes(2 << 20)
        .build()
        .expect("config");
    let log = Partition::open_on(
        Arc::new(NoMapDisk),
        dir.path(),
        config.clone(),
        Default::default(),
    )
    .expect("open");
    let big = vec![42u8; 600 * 1024];
    log.append(Record::new(b"small")).expect("append");
    log.append(Record::new(&big)).expect("append");
    log.append(Record::new(b"after")).expect("append");
    log.close().expect("close");
    let values: Vec<usize> = log
        .read(0)
        .expect("reader")
        .map(|r| r.expect("record").value().map_or(0, <[u8]>::len))
        .collect();
    assert_eq!(values, [5, 600 * 1024, 5]);
    drop(log);
    let log = Partition::open_on(Arc::new(NoMapDisk), dir.path(), config, Default::default())
        .expect("reopen");
    let values: Vec<usize> = log
        .read(1)
        .expect("reader")
        .map(|r| r.expect("record").value().map_or(0, <[u8]>::len))
        .collect();
    assert_eq!(values, [600 * 1024, 5]);
}
