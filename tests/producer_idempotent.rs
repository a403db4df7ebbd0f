//! Idempotent appends (Kafka's `enable.idempotence`): a retry of one of a producer's last five
//! batches writes nothing and returns the original offsets; a lower epoch is fenced; a gap in
//! the sequence is `OutOfOrderSequence`; sequences wrap from `i32::MAX` to 0. The producer state
//! survives a clean reopen through a `.snapshot` file in Kafka's layout (decoded here by an
//! independent reader), a crash by replaying batch headers (with and without snapshots), expires
//! after `producer.id.expiration.ms`, and its snapshots follow retention. At the store level,
//! producer ids and epochs persist, and a newer handle for a name fences the older one.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::ManualClock;
use topiclog::config::{LogConfig, TopicConfig};
use topiclog::partition::{AppendInfo, ProducerStamp};
use topiclog::record::{Batches, Record};
use topiclog::{Error, Partition, Store};

fn stamp(producer_id: i64, epoch: i16, base_sequence: i32) -> ProducerStamp {
    ProducerStamp {
        producer_id,
        epoch,
        base_sequence,
    }
}

/// `count` records whose values say which batch (`tag`) they belong to.
fn values(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect()
}

fn records(values: &[Vec<u8>]) -> Vec<Record<'_>> {
    values.iter().map(|v| Record::new(v)).collect()
}

/// Appends `count` records for `s`; panics on error.
fn append(log: &Partition, s: ProducerStamp, tag: &str, count: usize) -> AppendInfo {
    let v = values(tag, count);
    log.append_idempotent(s, &records(&v))
        .unwrap_or_else(|e| panic!("append {tag}: {e}"))
}

fn try_append(
    log: &Partition,
    s: ProducerStamp,
    tag: &str,
    count: usize,
) -> topiclog::Result<AppendInfo> {
    let v = values(tag, count);
    log.append_idempotent(s, &records(&v))
}

fn info(base_offset: i64, last_offset: i64) -> AppendInfo {
    AppendInfo {
        base_offset,
        last_offset,
    }
}

fn lazy() -> LogConfig {
    LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("config")
}

/// Segments of about 1 KiB, so a few appends roll.
fn small_segments() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1024)
        .build()
        .expect("config")
}

fn log_bytes(dir: &Path) -> u64 {
    common::files(dir)
        .iter()
        .filter(|n| n.ends_with(".log"))
        .map(|n| std::fs::metadata(dir.join(n)).expect("metadata").len())
        .sum()
}

fn snapshots(dir: &Path) -> Vec<i64> {
    common::files(dir)
        .iter()
        .filter_map(|n| n.strip_suffix(".snapshot").and_then(|d| d.parse().ok()))
        .collect()
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    common::segment_path(dir, offset, "snapshot")
}

fn expect_out_of_order(result: topiclog::Result<AppendInfo>, expected: i32, received: i32) {
    match result {
        Err(Error::OutOfOrderSequence {
            expected: e,
            received: r,
            ..
        }) if (e, r) == (expected, received) => {}
        other => panic!("expected out of order ({expected}, {received}), got {other:?}"),
    }
}

fn expect_fenced(result: topiclog::Result<AppendInfo>) {
    match result {
        Err(Error::ProducerFenced { .. }) => {}
        other => panic!("expected ProducerFenced, got {other:?}"),
    }
}

/// One entry of a producer snapshot, decoded by this test's own reader of Kafka's
/// `ProducerSnapshot` version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SnapshotEntry {
    producer_id: i64,
    epoch: i16,
    last_sequence: i32,
    last_offset: i64,
    offset_delta: i32,
    timestamp: i64,
    coordinator_epoch: i32,
    current_txn_first_offset: i64,
}

/// Decodes a snapshot file: i16 version 1, u32 CRC-32C of the rest, i32 count, 46-byte entries.
fn decode_snapshot(path: &Path) -> Vec<SnapshotEntry> {
    let bytes = std::fs::read(path).expect("read snapshot");
    let i16_at = |p: usize| i16::from_be_bytes(bytes[p..p + 2].try_into().expect("2"));
    let i32_at = |p: usize| i32::from_be_bytes(bytes[p..p + 4].try_into().expect("4"));
    let i64_at = |p: usize| i64::from_be_bytes(bytes[p..p + 8].try_into().expect("8"));
    assert_eq!(i16_at(0), 1, "version");
    assert_eq!(
        i32_at(2) as u32,
        crc32c::crc32c(&bytes[6..]),
        "CRC-32C of bytes 6.."
    );
    let count = i32_at(6) as usize;
    assert_eq!(bytes.len(), 10 + 46 * count, "entries fill the file");
    (0..count)
        .map(|i| {
            let p = 10 + 46 * i;
            SnapshotEntry {
                producer_id: i64_at(p),
                epoch: i16_at(p + 8),
                last_sequence: i32_at(p + 10),
                last_offset: i64_at(p + 14),
                offset_delta: i32_at(p + 22),
                timestamp: i64_at(p + 26),
                coordinator_epoch: i32_at(p + 34),
                current_txn_first_offset: i64_at(p + 38),
            }
        })
        .collect()
}

#[test]
fn duplicates_return_the_original_offsets_and_write_nothing() {
    for config in [LogConfig::default(), lazy()] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Partition::open(dir.path(), config).expect("open");
        let first = append(&log, stamp(1, 0, 0), "a", 3);
        let second = append(&log, stamp(1, 0, 3), "b", 2);
        assert_eq!((first, second), (info(0, 2), info(3, 4)));
        log.flush().expect("flush");
        let size = log_bytes(dir.path());
        // Retries, with the same records or others: nothing is written.
        assert_eq!(append(&log, stamp(1, 0, 0), "a", 3), first);
        assert_eq!(append(&log, stamp(1, 0, 3), "x", 2), second);
        log.flush().expect("flush");
        assert_eq!(log_bytes(dir.path()), size);
        assert_eq!(log.next_offset(), 5);
        // Another producer's sequences are its own.
        assert_eq!(append(&log, stamp(2, 0, 0), "c", 1), info(5, 5));
        let read: Vec<Vec<u8>> = log
            .read(0)
            .expect("reader")
            .map(|r| r.expect("record").value().expect("value").to_vec())
            .collect();
        let mut want = values("a", 3);
        want.extend(values("b", 2));
        want.extend(values("c", 1));
        assert_eq!(read, want);
    }
}

#[test]
fn batches_carry_kafkas_producer_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    append(&log, stamp(42, 3, 7), "a", 2);
    log.append(Record::new(b"plain")).expect("plain append");
    log.close().expect("close");
    let bytes = std::fs::read(common::segment_path(dir.path(), 0, "log")).expect("log");
    let headers: Vec<(i64, i16, i32)> = Batches::new(&bytes)
        .map(|b| {
            let h = *b.expect("batch").header();
            (h.producer_id, h.producer_epoch, h.base_sequence)
        })
        .collect();
    assert_eq!(headers, [(42, 3, 7), (-1, -1, -1)]);
}

#[test]
fn the_last_five_batches_are_remembered_and_older_retries_are_out_of_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    let infos: Vec<AppendInfo> = (0..6)
        .map(|i| append(&log, stamp(9, 0, 2 * i), &format!("b{i}"), 2))
        .collect();
    for i in 1..6 {
        assert_eq!(
            append(&log, stamp(9, 0, 2 * i), "retry", 2),
            infos[i as usize]
        );
    }
    // The sixth batch back fell out of the window: Kafka answers OutOfOrderSequence.
    expect_out_of_order(try_append(&log, stamp(9, 0, 0), "retry", 2), 12, 0);
    assert_eq!(log.next_offset(), 12);
}

#[test]
fn a_gap_is_out_of_order_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    append(&log, stamp(1, 0, 0), "a", 1);
    expect_out_of_order(try_append(&log, stamp(1, 0, 2), "gap", 1), 1, 2);
    // A batch overlapping the last one without matching it is no duplicate either.
    expect_out_of_order(try_append(&log, stamp(1, 0, 0), "overlap", 2), 1, 0);
    assert_eq!(log.next_offset(), 1);
    assert_eq!(append(&log, stamp(1, 0, 1), "b", 1), info(1, 1));
    match try_append(&log, stamp(1, 0, 5), "gap", 1) {
        Err(e @ Error::OutOfOrderSequence { .. }) => {
            let text = e.to_string();
            assert!(text.contains("expected 2, got 5"), "{text}");
        }
        other => panic!("expected out of order, got {other:?}"),
    }
    assert!(matches!(
        try_append(&log, stamp(-1, 0, 0), "bad", 1),
        Err(Error::InvalidProducerStamp {
            producer_id: -1,
            ..
        })
    ));
}

#[test]
fn sequences_wrap_from_max_to_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    // A new producer may start anywhere: its batch straddles the wrap (MAX-1, MAX, 0).
    let straddling = append(&log, stamp(5, 0, i32::MAX - 1), "a", 3);
    assert_eq!(
        append(&log, stamp(5, 0, i32::MAX - 1), "retry", 3),
        straddling
    );
    expect_out_of_order(try_append(&log, stamp(5, 0, 0), "b", 1), 1, 0);
    assert_eq!(append(&log, stamp(5, 0, 1), "b", 2), info(3, 4));
    let state = log.active_producers();
    assert_eq!((state[0].last_sequence, state[0].last_offset), (2, 4));

    // Exactly at the edge: a batch ending at MAX is followed by 0.
    append(&log, stamp(6, 0, i32::MAX - 1), "c", 2);
    expect_out_of_order(try_append(&log, stamp(6, 0, 1), "d", 1), 0, 1);
    assert_eq!(append(&log, stamp(6, 0, 0), "d", 1), info(7, 7));
}

#[test]
fn a_lower_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    append(&log, stamp(1, 0, 0), "a", 2);
    expect_out_of_order(try_append(&log, stamp(1, 1, 2), "b", 1), 0, 2);
    append(&log, stamp(1, 1, 0), "b", 1);
    expect_fenced(try_append(&log, stamp(1, 0, 2), "old", 1));
    // Even a retry of a batch the old epoch wrote: its epoch is gone.
    expect_fenced(try_append(&log, stamp(1, 0, 0), "old", 2));
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.active_producers()[0].epoch, 1);
}

#[test]
fn state_survives_a_clean_reopen_through_a_kafka_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let config = LogConfig::builder()
        .clock(clock.clone())
        .build()
        .expect("config");
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    append(&log, stamp(7, 2, 0), "a", 3);
    append(&log, stamp(8, 0, 10), "b", 1);
    clock.set(1_000_500);
    let last = append(&log, stamp(7, 2, 3), "c", 2);
    log.close().expect("close");
    drop(log);

    assert_eq!(snapshots(dir.path()), [6], "a snapshot at the log end");
    let entries = decode_snapshot(&snapshot_path(dir.path(), 6));
    assert_eq!(
        entries,
        [
            SnapshotEntry {
                producer_id: 7,
                epoch: 2,
                last_sequence: 4,
                last_offset: 5,
                offset_delta: 1,
                timestamp: 1_000_500,
                coordinator_epoch: -1,
                current_txn_first_offset: -1,
            },
            SnapshotEntry {
                producer_id: 8,
                epoch: 0,
                last_sequence: 10,
                last_offset: 3,
                offset_delta: 0,
                timestamp: 1_000_000,
                coordinator_epoch: -1,
                current_txn_first_offset: -1,
            },
        ]
    );

    let log = Partition::open(dir.path(), config).expect("reopen");
    let report = &log.recovery().producer_state;
    assert!(log.recovery().clean_shutdown);
    assert_eq!(
        (report.snapshot_offset, report.replayed_from),
        (Some(6), None)
    );
    // The last batch is remembered; sequences and epochs go on.
    assert_eq!(append(&log, stamp(7, 2, 3), "retry", 2), last);
    expect_fenced(try_append(&log, stamp(7, 1, 0), "old", 1));
    expect_out_of_order(try_append(&log, stamp(8, 0, 12), "gap", 1), 11, 12);
    assert_eq!(append(&log, stamp(7, 2, 5), "d", 1), info(6, 6));
    assert_eq!(log.next_offset(), 7);
}

#[test]
fn state_survives_a_crash_by_replaying_batches_with_or_without_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_segments()).expect("open");
    let mut infos = Vec::new();
    for i in 0..40 {
        infos.push(append(
            &log,
            stamp(3, 0, 3 * i),
            &format!("batch-{i:02}"),
            3,
        ));
        log.append(Record::new(b"interleaved, no producer"))
            .expect("plain append");
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() > 4, "{segments:?}");
    drop(log); // a crash: no close, no snapshot at the log end

    // Snapshots were taken at the last two rolls, named after the new segments.
    let snaps = snapshots(dir.path());
    assert_eq!(snaps, segments[segments.len() - 2..]);
    let log = Partition::open(dir.path(), small_segments()).expect("reopen");
    let report = log.recovery().producer_state.clone();
    let active = *segments.last().expect("segments");
    assert_eq!(report.snapshot_offset, Some(active));
    assert_eq!(report.replayed_from, Some(active));
    // Every batch after the snapshot was replayed: up to five are remembered.
    for i in 35..40 {
        assert_eq!(
            append(&log, stamp(3, 0, 3 * i), "retry", 3),
            infos[i as usize]
        );
    }
    drop(log);

    // Without any snapshot, the state is rebuilt from the first segment.
    for offset in snapshots(dir.path()) {
        std::fs::remove_file(snapshot_path(dir.path(), offset)).expect("remove snapshot");
    }
    let log = Partition::open(dir.path(), small_segments()).expect("reopen without snapshots");
    let report = log.recovery().producer_state.clone();
    assert_eq!(
        (report.snapshot_offset, report.replayed_from),
        (None, Some(0))
    );
    assert_eq!(report.batches_replayed, 40);
    for i in 35..40 {
        assert_eq!(
            append(&log, stamp(3, 0, 3 * i), "retry", 3),
            infos[i as usize]
        );
    }
    expect_out_of_order(
        try_append(&log, stamp(3, 0, 3 * 34), "too old", 3),
        120,
        102,
    );
    assert_eq!(append(&log, stamp(3, 0, 120), "next", 1).base_offset, 160);
    // The first append after a replay takes a snapshot, so the next open replays less.
    assert_eq!(snapshots(dir.path()), [160]);
}

#[test]
fn a_corrupt_snapshot_is_skipped_and_one_past_the_log_end_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_segments()).expect("open");
    let mut infos = Vec::new();
    for i in 0..30 {
        infos.push(append(&log, stamp(4, 0, i), &format!("batch-{i:02}"), 1));
    }
    log.close().expect("close");
    drop(log);
    let end = 30;
    let snaps = snapshots(dir.path());
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1], end);

    // The newest snapshot is damaged: the older one is used, and the rest replayed.
    let newest = snapshot_path(dir.path(), end);
    let mut bytes = std::fs::read(&newest).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    let log = Partition::open(dir.path(), small_segments()).expect("reopen");
    let report = log.recovery().producer_state.clone();
    assert_eq!(report.corrupt_snapshots.len(), 1, "{report:?}");
    assert_eq!(report.corrupt_snapshots[0].0, newest);
    assert!(report.corrupt_snapshots[0].1.contains("CRC"), "{report:?}");
    assert_eq!(report.snapshot_offset, Some(snaps[0]));
    assert_eq!(report.replayed_from, Some(snaps[0]));
    assert_eq!(append(&log, stamp(4, 0, 29), "retry", 1), infos[29]);
    log.close().expect("close");
    drop(log);
}

#[test]
fn a_cut_below_a_snapshot_removes_it_and_the_cut_batches_may_be_written_again() {
    // Kafka's policy (no fsync per append): after a crash, what was not flushed may be cut.
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .flush_messages(i64::MAX)
        .build()
        .expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    for i in 0..40 {
        append(&log, stamp(4, 0, i), &format!("batch-{i:02}"), 1);
    }
    drop(log); // a crash: the buffered batches reach the files, nothing is fsynced
    let snaps = snapshots(dir.path());
    assert_eq!(snaps.len(), 2);
    // Tear the segment the older snapshot starts: the cut removes the newer segment, whose
    // snapshot describes batches that are gone.
    let segment = common::segment_path(dir.path(), snaps[0], "log");
    let spans = common::batch_spans(&segment);
    let keep = spans[spans.len() / 2];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open log");
    file.set_len(keep.start + 10).expect("tear");
    drop(file);
    let log = Partition::open(dir.path(), config).expect("reopen after a cut");
    let report = log.recovery().producer_state.clone();
    assert_eq!(log.next_offset(), keep.base_offset);
    assert_eq!(
        report.removed_snapshots,
        [snapshot_path(dir.path(), snaps[1])]
    );
    assert_eq!(report.snapshot_offset, Some(snaps[0]));
    assert!(!snapshot_path(dir.path(), snaps[1]).exists());
    // The batches cut are no duplicates any more: the same sequence writes again.
    let cut = keep.base_offset as i32;
    expect_out_of_order(
        try_append(&log, stamp(4, 0, cut + 1), "gap", 1),
        cut,
        cut + 1,
    );
    assert_eq!(
        append(&log, stamp(4, 0, cut), "again", 1),
        info(keep.base_offset, keep.base_offset)
    );
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let config = LogConfig::builder()
        .clock(clock.clone())
        .producer_id_expiration_ms(60_000)
        .build()
        .expect("config");
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    append(&log, stamp(1, 0, 0), "old", 1);
    clock.set(50_000);
    append(&log, stamp(2, 0, 0), "young", 1);
    clock.set(61_000);
    log.close().expect("close"); // the snapshot leaves producer 1 out
    drop(log);
    let ids: Vec<i64> = decode_snapshot(&snapshot_path(dir.path(), 2))
        .iter()
        .map(|e| e.producer_id)
        .collect();
    assert_eq!(ids, [2]);

    clock.set(200_000);
    let log = Partition::open(dir.path(), config).expect("reopen");
    assert_eq!(log.recovery().producer_state.expired_producers, 1);
    assert!(log.active_producers().is_empty());
    // A forgotten producer starts anew: any sequence is accepted, no retry is recognized.
    assert_eq!(append(&log, stamp(2, 0, 0), "young", 1), info(2, 2));
    assert_eq!(append(&log, stamp(1, 0, 17), "back", 1), info(3, 3));

    // Appends drop idle producers too (checked every `producer.id.expiration.ms`, at most every
    // ten minutes).
    clock.set(200_000 + 600_000);
    append(&log, stamp(3, 0, 0), "third", 1);
    let ids: Vec<i64> = log
        .active_producers()
        .iter()
        .map(|p| p.producer_id)
        .collect();
    assert_eq!(ids, [3]);
}

#[test]
fn retention_and_delete_records_delete_old_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_bytes(1)
        .build()
        .expect("config");
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    for i in 0..40 {
        append(&log, stamp(1, 0, i), &format!("batch-{i:02}"), 1);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() > 2, "{segments:?}");
    assert_eq!(snapshots(dir.path()), segments[segments.len() - 2..]);
    let active = *segments.last().expect("segments");
    // Retention keeps the active segment only: the snapshot below it goes.
    let report = log.enforce_retention().expect("retention");
    assert_eq!(report.log_start_offset, active);
    assert_eq!(snapshots(dir.path()), [active]);
    // Into the active segment: both snapshots lie below the new log start.
    log.delete_records(active + 1).expect("delete records");
    assert!(snapshots(dir.path()).is_empty());
    assert_eq!(log.segment_base_offsets(), [active]);
    // The producer is still known in memory: its last batch is a duplicate.
    assert_eq!(append(&log, stamp(1, 0, 39), "retry", 1), info(39, 39));
    log.close().expect("close");
    drop(log);
    assert_eq!(snapshots(dir.path()), [40]);
    let log = Partition::open(dir.path(), config).expect("reopen");
    assert_eq!(append(&log, stamp(1, 0, 39), "retry", 1), info(39, 39));
}

#[test]
fn concurrent_producers_on_one_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(Partition::open(dir.path(), small_segments()).expect("open"));
    let threads: Vec<_> = (0..4i64)
        .map(|p| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..50i32 {
                    let s = stamp(p, 0, 2 * i);
                    let first = append(&log, s, &format!("p{p}-{i}"), 2);
                    // Every other batch is retried at once, as after a lost acknowledgement.
                    if i % 2 == 0 {
                        assert_eq!(append(&log, s, "retry", 2), first);
                    }
                    seen.push(first);
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("thread"));
    }
    assert_eq!(log.next_offset(), 4 * 50 * 2);
    all.sort_by_key(|i| i.base_offset);
    for (n, i) in all.iter().enumerate() {
        assert_eq!(
            *i,
            info(2 * n as i64, 2 * n as i64 + 1),
            "no gap, no overlap"
        );
    }
    // On disk, each producer's sequences rise by 2 with its offsets. Closed first: the open
    // active segment ends with preallocated zeros, which are no batch.
    log.close().expect("close");
    let mut next_seq = [0i32; 4];
    for name in common::files(dir.path())
        .iter()
        .filter(|n| n.ends_with(".log"))
    {
        let bytes = std::fs::read(dir.path().join(name)).expect("log");
        for batch in Batches::new(&bytes) {
            let h = *batch.expect("batch").header();
            let p = h.producer_id as usize;
            assert_eq!(h.base_sequence, next_seq[p], "producer {p}");
            next_seq[p] += 2;
        }
    }
    assert_eq!(next_seq, [100; 4]);
}

fn store_with_topic(dir: &Path, partitions: u32) -> Store {
    let store = Store::open(dir).expect("open store");
    store
        .create_topic("orders", TopicConfig::new(partitions))
        .expect("create topic");
    store
}

#[test]
fn producer_ids_and_epochs_are_persisted_and_a_newer_handle_fences_the_older() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_topic(dir.path(), 1);
    let a = store.producer("checkout").expect("producer");
    let b = store.producer("billing").expect("producer");
    assert_eq!((a.id(), a.epoch(), b.id(), b.epoch()), (0, 0, 1, 0));
    let first = a
        .append("orders", 0, &[Record::new(b"a0")])
        .expect("append");
    assert_eq!(a.next_sequence("orders", 0), 1);

    let a2 = store.producer("checkout").expect("producer again");
    assert_eq!((a2.id(), a2.epoch()), (0, 1));
    match a.append("orders", 0, &[Record::new(b"late")]) {
        Err(Error::ProducerFenced {
            producer,
            producer_id,
            epoch,
        }) => assert_eq!((producer.as_str(), producer_id, epoch), ("checkout", 0, 0)),
        other => panic!("expected ProducerFenced, got {other:?}"),
    }
    // The new epoch starts its sequences at 0; the partition then refuses the old epoch even
    // without the store's check (another process's handle, say).
    assert_eq!(
        a2.append("orders", 0, &[Record::new(b"a1")])
            .expect("append")
            .base_offset,
        1
    );
    let partition = store
        .topic("orders")
        .expect("topic")
        .partition(0)
        .expect("partition");
    expect_fenced(partition.append_idempotent(stamp(0, 0, 1), &[Record::new(b"old")]));
    assert_eq!(first, info(0, 0));
    assert!(
        b.append("orders", 0, &[Record::new(b"b0")]).is_ok(),
        "other names unaffected"
    );
    store.close().expect("close");
    drop(store);

    assert!(dir.path().join(topiclog::layout::PRODUCERS_FILE).is_file());
    let store = Store::open(dir.path()).expect("reopen");
    let a3 = store.producer("checkout").expect("producer after reopen");
    assert_eq!((a3.id(), a3.epoch()), (0, 2));
    let c = store.producer("audit").expect("new name");
    assert_eq!((c.id(), c.epoch()), (2, 0), "ids are never reused");
    assert_eq!(
        a3.append("orders", 0, &[Record::new(b"a2")])
            .expect("append")
            .base_offset,
        3
    );
    drop(store);
    assert!(matches!(
        a3.append("orders", 0, &[Record::new(b"x")]),
        Err(Error::Closed)
    ));
    let store = Store::open_read_only(dir.path()).expect("read-only");
    assert!(matches!(store.producer("checkout"), Err(Error::ReadOnly)));
}

#[test]
fn producer_retries_are_deduplicated_and_errors_keep_the_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_topic(dir.path(), 2);
    let p = store.producer("app").expect("producer");
    let first = p
        .append("orders", 1, &[Record::new(b"a"), Record::new(b"b")])
        .expect("append");
    let second = p.append("orders", 1, &[Record::new(b"c")]).expect("append");
    assert_eq!((first, second), (info(0, 1), info(2, 2)));
    assert_eq!(p.next_sequence("orders", 1), 3);
    assert_eq!(
        p.next_sequence("orders", 0),
        0,
        "sequences are per partition"
    );
    // Retries with the sequences used: the original offsets, nothing written, sequence kept.
    let retry = [Record::new(b"a"), Record::new(b"b")];
    assert_eq!(
        p.append_with_sequence("orders", 1, 0, &retry)
            .expect("retry"),
        first
    );
    assert_eq!(
        p.append_with_sequence("orders", 1, 2, &[Record::new(b"c")])
            .expect("retry"),
        second
    );
    assert_eq!(p.next_sequence("orders", 1), 3);
    let partition = store
        .topic("orders")
        .expect("topic")
        .partition(1)
        .expect("partition");
    assert_eq!(partition.next_offset(), 3);
    // A gap names the topic and partition.
    match p.append_with_sequence("orders", 1, 7, &[Record::new(b"gap")]) {
        Err(Error::OutOfOrderSequence {
            topic,
            partition,
            expected,
            received,
            ..
        }) => assert_eq!(
            (topic.as_str(), partition, expected, received),
            ("orders", 1, 3, 7)
        ),
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    // A failed append leaves the sequence where it was.
    let huge = vec![0u8; 2 << 20];
    assert!(matches!(
        p.append("orders", 1, &[Record::new(&huge)]),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(p.next_sequence("orders", 1), 3);
    assert_eq!(
        p.append("orders", 1, &[Record::new(b"d")]).expect("append"),
        info(3, 3)
    );
    assert!(matches!(
        p.append("nope", 0, &[Record::new(b"x")]),
        Err(Error::UnknownTopic(_))
    ));
    assert!(matches!(
        p.append("orders", 5, &[Record::new(b"x")]),
        Err(Error::UnknownPartition { .. })
    ));
}

#[test]
fn send_routes_as_the_topic_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_topic(dir.path(), 3);
    let topic = store.topic("orders").expect("topic");
    let p = store.producer("router").expect("producer");
    let mut sent = [0i32; 3];
    for key in [&b"customer-1"[..], b"customer-2", b"k", b"customer-1"] {
        let (partition, offset) = p.send("orders", Record::keyed(key, b"v")).expect("send");
        let (routed, next) = topic
            .append(Record::keyed(key, b"v"))
            .expect("topic append");
        assert_eq!((partition, offset + 1), (routed, next), "{key:?}");
        sent[partition as usize] += 1;
    }
    for partition in 0..3 {
        assert_eq!(
            p.next_sequence("orders", partition),
            sent[partition as usize]
        );
    }
}

#[test]
fn new_producer_ids_start_above_those_in_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A partition directory holding batches of producer 41, as a Kafka broker's might.
    let partition_dir = dir.path().join("events-0");
    let log = Partition::open(&partition_dir, LogConfig::default()).expect("open");
    append(&log, stamp(41, 3, 0), "kafka", 2);
    log.close().expect("close");
    drop(log);
    let store = Store::open(dir.path()).expect("open store");
    let p = store.producer("mine").expect("producer");
    assert_eq!((p.id(), p.epoch()), (42, 0));
    p.append("events", 0, &[Record::new(b"x")]).expect("append");
}

#[test]
fn concurrent_store_producers_on_one_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_topic(dir.path(), 1);
    let shared = Arc::new(store.producer("shared").expect("producer"));
    let mut threads = Vec::new();
    for t in 0..6 {
        // Two threads share one handle; the others have a name each.
        let producer = if t < 2 {
            Arc::clone(&shared)
        } else {
            Arc::new(store.producer(&format!("p{t}")).expect("producer"))
        };
        threads.push(std::thread::spawn(move || {
            for i in 0..30 {
                let v = format!("t{t}-{i}");
                producer
                    .append("orders", 0, &[Record::new(v.as_bytes())])
                    .expect("append");
            }
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(shared.next_sequence("orders", 0), 60);
    let partition = store
        .topic("orders")
        .expect("topic")
        .partition(0)
        .expect("partition");
    assert_eq!(partition.next_offset(), 180);
    let mut producers: Vec<(i64, i32)> = partition
        .active_producers()
        .iter()
        .map(|s| (s.producer_id, s.last_sequence))
        .collect();
    producers.sort_unstable();
    assert_eq!(producers, [(0, 59), (1, 29), (2, 29), (3, 29), (4, 29)]);
}

/// With `flush.messages` 1, an acknowledged batch is durable, so after a power loss its retry
/// is still a duplicate; a batch whose fsync failed was never acknowledged, its retry is
/// refused while the partition is poisoned and written after the reopen.
#[cfg(feature = "fault-injection")]
#[test]
fn after_a_power_loss_acknowledged_batches_stay_duplicates_and_failed_ones_are_written() {
    use topiclog::testing::{Fault, FaultDisk, FaultKind, FaultOp};

    let config = LogConfig::builder()
        .segment_bytes(1024)
        .segment_index_bytes(4096)
        .build()
        .expect("config");
    for seed in 0..8 {
        let disk = Arc::new(FaultDisk::new());
        let log =
            Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config.clone()).expect("open");
        let acked: Vec<AppendInfo> = (0..20)
            .map(|i| append(&log, stamp(1, 0, i), &format!("batch-{i:02}"), 1))
            .collect();
        disk.inject(Fault::new(FaultOp::Sync, FaultKind::Io).on_path_ending(".log"));
        assert!(matches!(
            try_append(&log, stamp(1, 0, 20), "lost", 1),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            try_append(&log, stamp(1, 0, 20), "lost", 1),
            Err(Error::Poisoned { .. })
        ));
        disk.crash(seed);
        drop(log);
        disk.clear_faults();
        let log =
            Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config.clone()).expect("reopen");
        assert_eq!(log.next_offset(), 20, "seed {seed}");
        for i in 15..20 {
            assert_eq!(
                append(&log, stamp(1, 0, i), "retry", 1),
                acked[i as usize],
                "seed {seed}"
            );
        }
        assert_eq!(append(&log, stamp(1, 0, 20), "lost", 1), info(20, 20));
    }
}

/// Under power losses, process kills and clean closes, with both flush policies and segments
/// small enough to roll every few appends: after every reopen each producer's state is exactly
/// what its batches in the recovered log say (snapshots never describe lost data), a retry of
/// each producer's last batch on disk is a duplicate, and (with `flush.messages` 1) no
/// acknowledged batch is lost.
#[cfg(feature = "fault-injection")]
#[test]
fn producer_state_matches_the_log_after_crashes() {
    use std::collections::BTreeMap;
    use topiclog::testing::{CrashMode, FaultDisk};

    /// A producer's last batch in the log: epoch, first sequence, record count, offsets.
    type LastBatch = (i16, i32, usize, AppendInfo);

    fn last_batches(disk: &FaultDisk) -> BTreeMap<i64, LastBatch> {
        let mut last = BTreeMap::new();
        let mut names = disk.file_names("/p").expect("list");
        names.retain(|n| n.ends_with(".log"));
        names.sort();
        for name in names {
            let bytes = disk.read_file(format!("/p/{name}")).expect("read");
            for batch in Batches::new(&bytes) {
                let h = *batch.expect("recovered logs hold whole batches").header();
                if h.producer_id >= 0 {
                    let count = h.last_offset_delta as usize + 1;
                    let offsets = info(h.base_offset, h.last_offset());
                    last.insert(
                        h.producer_id,
                        (h.producer_epoch, h.base_sequence, count, offsets),
                    );
                }
            }
        }
        last
    }

    let mut rng = 0x5eed_u64;
    let mut below = |n: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % n
    };
    for seed in 0..40u64 {
        let durable = seed % 2 == 0;
        let config = LogConfig::builder()
            .segment_bytes(600 + 200 * (seed % 4) as i32)
            .segment_index_bytes(4096)
            .flush_messages(if durable { 1 } else { i64::MAX })
            .write_buffer_bytes([0, 300, 1 << 16][(seed % 3) as usize])
            .build()
            .expect("config");
        let disk = Arc::new(FaultDisk::new());
        disk.set_crash_mode(if seed % 4 < 2 {
            CrashMode::Pages
        } else {
            CrashMode::Prefix
        });
        let mut acked: BTreeMap<i64, i32> = BTreeMap::new();
        for life in 0..4u64 {
            let context = format!("seed {seed} life {life}");
            let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config.clone())
                .unwrap_or_else(|e| panic!("{context}: open: {e}"));
            let on_disk = last_batches(&disk);
            let state: BTreeMap<i64, (i16, i32, i64)> = log
                .active_producers()
                .iter()
                .map(|p| (p.producer_id, (p.epoch, p.last_sequence, p.last_offset)))
                .collect();
            let expected: BTreeMap<i64, (i16, i32, i64)> = on_disk
                .iter()
                .map(|(&pid, &(epoch, first, count, offsets))| {
                    (pid, (epoch, first + count as i32 - 1, offsets.last_offset))
                })
                .collect();
            assert_eq!(
                state,
                expected,
                "{context}: {:?}",
                log.recovery().producer_state
            );
            if durable {
                for (pid, &seq) in &acked {
                    assert!(
                        state.get(pid).is_some_and(|s| s.1 >= seq),
                        "{context}: lost {pid}"
                    );
                }
            }
            let end = log.next_offset();
            for (&pid, &(epoch, first, count, offsets)) in &on_disk {
                let v = values("retry", count);
                let retried = log.append_idempotent(stamp(pid, epoch, first), &records(&v));
                assert_eq!(
                    retried.expect("retry"),
                    offsets,
                    "{context}: producer {pid}"
                );
            }
            assert_eq!(log.next_offset(), end, "{context}: a retry wrote");
            let mut next: BTreeMap<i64, i32> = (0..3)
                .map(|pid| (pid, expected.get(&pid).map_or(0, |s| s.1 + 1)))
                .collect();
            for step in 0..20 + below(40) {
                let pid = below(3) as i64;
                if !durable && below(8) == 0 {
                    log.flush().expect("flush");
                    continue;
                }
                let count = 1 + below(3) as usize;
                let seq = next[&pid];
                let v = values(&format!("s{seed}-l{life}-{step}"), count);
                log.append_idempotent(stamp(pid, 0, seq), &records(&v))
                    .unwrap_or_else(|e| panic!("{context}: append: {e}"));
                next.insert(pid, seq + count as i32);
                if durable {
                    acked.insert(pid, seq + count as i32 - 1);
                }
            }
            match below(4) {
                0 => disk.kill(),
                1 => {
                    log.close().expect("close");
                    disk.crash(seed ^ (life << 32));
                }
                _ => disk.crash(seed ^ (life << 32)),
            }
            drop(log);
        }
    }
}

/// Batches another implementation of Kafka's format wrote (kafka-python, see
/// `tests/fixtures/kafka-made/README.md`): producer 4242's sequences, and transaction markers,
/// rebuild the same state a broker would hold. The clock is set just after the fixtures'
/// timestamps (November 2023), which would otherwise have expired the producer long ago.
#[test]
fn state_rebuilt_from_kafka_made_batches() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-made");
    let clock = ManualClock::new(1_700_000_002_000);
    let config = LogConfig::builder()
        .clock(clock.clone())
        .build()
        .expect("config");
    let state = |log: &Partition| -> Vec<(i64, i16, i32, i64)> {
        log.active_producers()
            .iter()
            .map(|p| (p.producer_id, p.epoch, p.last_sequence, p.last_offset))
            .collect()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_dir(&fixtures.join("idempotent-0"), dir.path());
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    assert_eq!(log.recovery().producer_state.batches_replayed, 17);
    assert_eq!(state(&log), [(4242, 0, 499, 499)]);
    // The last batches Kafka's producer wrote are recognized as duplicates.
    assert_eq!(
        append(&log, stamp(4242, 0, 481), "retry", 19),
        info(481, 499)
    );
    assert_eq!(
        append(&log, stamp(4242, 0, 480), "retry", 1),
        info(480, 480)
    );
    expect_out_of_order(try_append(&log, stamp(4242, 0, 24), "old", 50), 500, 24);
    assert_eq!(append(&log, stamp(4242, 0, 500), "next", 2), info(500, 501));
    log.close().expect("close");
    drop(log);
    let entries = decode_snapshot(&snapshot_path(dir.path(), 502));
    assert_eq!(
        (
            entries[0].producer_id,
            entries[0].last_sequence,
            entries[0].last_offset
        ),
        (4242, 501, 501)
    );

    // A transactional producer: its last data batch (sequences 408..=499 at offsets
    // 413..=504) and the marker after it, which ends the transaction.
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_dir(&fixtures.join("transactions-0"), dir.path());
    let log = Partition::open(dir.path(), config).expect("open");
    assert_eq!(state(&log), [(4242, 0, 499, 504)]);
    assert_eq!(append(&log, stamp(4242, 0, 500), "next", 1), info(506, 506));
    log.close().expect("close");
    let entries = decode_snapshot(&snapshot_path(dir.path(), 507));
    assert_eq!(
        entries[0].current_txn_first_offset, -1,
        "no open transaction"
    );
}
