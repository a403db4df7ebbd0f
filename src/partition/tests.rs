//! Unit tests (compiled only under `#[cfg(test)]`, see `mod.rs`) that need the crate's internals: the `pread` read path (no mappings), which
//! read-only opens and platforms without mapping past the end of a file take; and idempotent
//! appends caught between their append and their group commit, which only the writer lock can
//! hold still.

use std::sync::Arc;

use super::writer::{AppendOptions, Appended};
use super::{AppendInfo, Partition, ProducerStamp};
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

const STAMP: ProducerStamp = ProducerStamp {
    producer_id: 3,
    epoch: 0,
    base_sequence: 0,
};

/// Appends `records` with `STAMP` under the writer lock, as an appender does, but does not
/// commit: the batch is accepted and waits for a group commit. Returns its offsets and commit
/// sequence number.
fn append_uncommitted(log: &Partition, records: &[Record<'_>]) -> (AppendInfo, u64) {
    let shared = &*log.shared;
    let now = shared.config().clock().now_ms();
    let appended = shared.writer.lock().append(
        shared,
        records,
        now,
        AppendOptions {
            stamp: Some(STAMP),
            codec: crate::record::Compression::None,
        },
    );
    match appended.expect("append") {
        Appended::Commit(info, seq) => {
            shared.commit.accepted(seq);
            (info, seq)
        }
        other => panic!("expected a batch waiting for its commit, got {other:?}"),
    }
}

#[test]
fn a_duplicate_of_a_batch_awaiting_its_commit_returns_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    let records = [Record::new(b"a"), Record::new(b"b")];
    let (info, _) = append_uncommitted(&log, &records);
    assert_eq!(log.next_offset(), 0, "not published before its commit");
    // The retry is a duplicate: nothing more is written, and it returns only once the batch
    // is durable and published (here it leads the commit round itself).
    assert_eq!(log.append_idempotent(STAMP, &records).expect("retry"), info);
    assert_eq!(log.next_offset(), 2);
    assert_eq!(log.read(0).expect("reader").count(), 2);
    let bytes = std::fs::read(dir.path().join(format!("{:020}.log", 0))).expect("read log");
    assert_eq!(bytes.len() as u64, log.size_bytes());
    assert_eq!(
        crate::record::Batches::new(&bytes).count(),
        1,
        "written once"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_duplicate_of_a_batch_whose_commit_fails_is_never_acknowledged() {
    use crate::disk::fault::{Fault, FaultDisk, FaultKind, FaultOp};
    use crate::error::Error;

    let disk = Arc::new(FaultDisk::new());
    let config = LogConfig::builder()
        .segment_index_bytes(4096)
        .build()
        .expect("config");
    let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config.clone()).expect("open");
    let records = [Record::new(b"a")];
    append_uncommitted(&log, &records);
    disk.inject(Fault::new(FaultOp::Sync, FaultKind::Io).on_path_ending(".log"));
    // The retry leads the commit round that fails: it reports the failure, not the offsets.
    match log.append_idempotent(STAMP, &records) {
        Err(Error::Io { .. }) => {}
        other => panic!("expected the fsync's error, got {other:?}"),
    }
    match log.append_idempotent(STAMP, &records) {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert_eq!(log.next_offset(), 0, "never published");
    disk.clear_faults();
    disk.kill();
    drop(log);
    // The batch was never durable: after reopening, the same retry writes it.
    let log = Partition::open_on_fault_disk(disk, "/p", config).expect("reopen");
    assert_eq!(log.next_offset(), 0);
    let info = log
        .append_idempotent(STAMP, &records)
        .expect("retry after reopen");
    assert_eq!((info.base_offset, log.next_offset()), (0, 1));
}
