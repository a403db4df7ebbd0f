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

/// A batch ending 10 bytes before the end of a 256 KiB read chunk: the framing of the batch
/// after it, which a reader looks at before serving the batch's record, lies partly past the
/// chunk and is read on its own. Reads pass through; a base offset raised into that batch's
/// offsets is refused there.
#[test]
fn the_next_batch_framing_past_a_read_chunk_is_checked_without_mappings() {
    let open = |dir: &std::path::Path| {
        Partition::open_on(
            Arc::new(NoMapDisk),
            dir,
            LogConfig::default(),
            Default::default(),
        )
        .expect("open")
    };
    // A batch's bytes beside its value, for values of this order of size.
    let probe = tempfile::tempdir().expect("tempdir");
    let log = open(probe.path());
    log.append(Record::new(&vec![0u8; 200_000]))
        .expect("append");
    let overhead = usize::try_from(log.size_bytes()).expect("size") - 200_000;
    drop(log);

    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let first = vec![1u8; crate::segment::READ_CHUNK - 10 - overhead];
    log.append(Record::new(&first)).expect("append");
    assert_eq!(log.size_bytes(), crate::segment::READ_CHUNK as u64 - 10);
    log.append_batch(&[Record::new(b"a"), Record::new(b"b")])
        .expect("append");
    log.close().expect("close");
    drop(log);
    let lens = |log: &Partition| -> Vec<crate::error::Result<usize>> {
        log.read(0)
            .expect("reader")
            .map(|r| r.map(|r| r.value().map_or(0, <[u8]>::len)))
            .collect()
    };
    let log = open(dir.path());
    let read: Vec<usize> = lens(&log).into_iter().map(|r| r.expect("record")).collect();
    assert_eq!(read, [first.len(), 1, 1]);
    drop(log);

    let path = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&path).expect("read log");
    bytes[7] = 1; // the first batch's base offset 0 -> 1, the second batch's first offset
    std::fs::write(&path, &bytes).expect("write log");
    let log = open(dir.path());
    match lens(&log).as_slice() {
        [Err(crate::error::Error::Corrupt { position, .. })] => {
            assert_eq!(*position, crate::segment::READ_CHUNK as u64 - 10);
        }
        other => panic!("expected the overlap as Corrupt, got {other:?}"),
    }
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
    let appended = shared.writer.lock().append(
        shared,
        records,
        AppendOptions {
            stamp: Some(STAMP),
            codec: crate::record::Compression::None,
            wall_ms: crate::config::wall_ms(),
            transactional: false,
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
    // Past the data, the active segment's preallocated zeros.
    let (bytes, preallocated) = bytes.split_at(log.size_bytes() as usize);
    assert!(preallocated.iter().all(|&b| b == 0));
    assert_eq!(
        crate::record::Batches::new(bytes).count(),
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
