//! The recovery checkpoint and the log-start checkpoint.
//!
//! The recovery point follows completed fsyncs into the active segment and is written
//! periodically (a store's background thread, Kafka's `log.flush.offset.checkpoint.interval.ms`),
//! at roll and at close, never per append. Once written, damage below it in the active segment
//! fails the open instead of being cut as a torn write.
//!
//! The log-start checkpoint, once written, must stay: missing or damaged, it fails the open
//! with `Error::Corrupt`, unless `RecoveryOptions::rebuild_log_start` allows a rebuild (reported,
//! and it may bring back deleted records). A partition never checkpointed starts at its first
//! segment.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{append_range, assert_range, batch_spans, read_all, segment_path, small_config};
use topiclog::config::{RecoveryOptions, StoreOptions, TopicConfig};
use topiclog::error::Corruption;
use topiclog::{Error, Partition, Store};

const RECOVERY_POINT: &str = ".topiclog_recovery_point";
const LOG_START: &str = ".topiclog_log_start_offset";

/// The `active <base> <size> <next>` entry of a partition's recovery checkpoint, if any.
fn active_entry(dir: &Path) -> Option<(i64, u64, i64)> {
    let text = fs::read_to_string(dir.join(RECOVERY_POINT)).ok()?;
    let line = text.lines().find(|l| l.starts_with("active "))?;
    let f: Vec<&str> = line.split(' ').collect();
    Some((f[1].parse().ok()?, f[2].parse().ok()?, f[3].parse().ok()?))
}

/// Flips a byte inside the first record of the batch holding `offset` in `log_file`.
fn flip_record_byte(log_file: &Path, offset: i64) {
    let span = *batch_spans(log_file)
        .iter()
        .find(|s| s.base_offset <= offset && offset <= s.last_offset)
        .expect("the batch");
    let mut bytes = fs::read(log_file).expect("log");
    bytes[span.start as usize + 64] ^= 0x40;
    fs::write(log_file, bytes).expect("write");
}

/// Appends `n` durable records through a store whose background thread writes recovery
/// checkpoints every `interval_ms`, waits up to `wait` for one covering them, then drops the
/// store without closing it (a crash). Returns the partition directory and whether a
/// checkpoint covered every record.
fn crash_after_checkpoint(dir: &Path, interval_ms: u64, wait: Duration) -> bool {
    let options = StoreOptions::builder()
        .flush_offset_checkpoint_interval_ms(interval_ms)
        .build();
    let store = Store::open_with(dir, options).expect("store");
    let topic = store
        .create_topic("events", TopicConfig::new(1))
        .expect("topic");
    let partition = topic.partition(0).expect("partition");
    append_range(&partition, 0, 40);
    let pdir = dir.join("events-0");
    let deadline = Instant::now() + wait;
    let covered = loop {
        if active_entry(&pdir).is_some_and(|(_, _, next)| next == 40) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(partition);
    drop(topic);
    drop(store);
    covered
}

#[test]
fn the_background_thread_checkpoints_the_recovery_point_into_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        crash_after_checkpoint(dir.path(), 10, Duration::from_secs(10)),
        "a checkpoint covering every durable append within 10 s"
    );
    let pdir = dir.path().join("events-0");
    let log_file = segment_path(&pdir, 0, "log");
    // Below the recovery point, damage is corruption: the open fails and names the batch.
    let span = *batch_spans(&log_file)
        .iter()
        .find(|s| s.base_offset == 20)
        .expect("batch 20");
    flip_record_byte(&log_file, 20);
    match Partition::open(&pdir, small_config(1 << 20)) {
        Err(Error::Corrupt { path, position, .. }) => {
            assert_eq!(path, log_file);
            assert_eq!(position, span.start);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        matches!(Store::open(dir.path()), Err(Error::Corrupt { .. })),
        "a store refuses to open too"
    );
    // The caller may accept the loss: cut there, reported as flushed data lost.
    let options = StoreOptions::builder()
        .recovery(RecoveryOptions::new().truncate_corrupt(true))
        .build();
    let store = Store::open_with(dir.path(), options).expect("opt-in open");
    let partition = store
        .topic("events")
        .and_then(|t| t.partition(0))
        .expect("p");
    let cut = &partition.recovery().truncations;
    assert!(
        cut.len() == 1 && cut[0].flushed && cut[0].position == span.start,
        "{cut:?}"
    );
    assert_eq!(partition.next_offset(), 20);
    let listed: Vec<i64> = partition
        .recovery()
        .batches_after_cut
        .iter()
        .map(|b| b.base_offset)
        .collect();
    assert_eq!(
        listed,
        (21..40).collect::<Vec<_>>(),
        "the later batches were whole"
    );
}

#[test]
fn without_a_checkpoint_the_same_damage_is_a_torn_tail() {
    // The recovery point only covers what a checkpoint recorded: with no periodic write,
    // records after the last roll are above it, and damage there is cut, not refused.
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(!crash_after_checkpoint(
        dir.path(),
        3_600_000,
        Duration::ZERO
    ));
    let pdir = dir.path().join("events-0");
    assert_eq!(active_entry(&pdir), None);
    let log_file = segment_path(&pdir, 0, "log");
    flip_record_byte(&log_file, 20);
    let log = Partition::open(&pdir, small_config(1 << 20)).expect("open");
    let cut = &log.recovery().truncations;
    assert!(cut.len() == 1 && !cut[0].flushed, "{cut:?}");
    assert_eq!(log.next_offset(), 20);
}

#[cfg(feature = "fault-injection")]
#[test]
fn the_checkpoint_is_never_written_per_append() {
    use std::sync::Arc;
    use topiclog::testing::{FaultDisk, FaultOp};
    let disk = Arc::new(FaultDisk::new());
    let config = small_config(1 << 20);
    let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config.clone()).expect("open");
    append_range(&log, 0, 5);
    let renames = disk.ops(FaultOp::Rename);
    let syncs = disk.ops(FaultOp::Sync);
    append_range(&log, 5, 505);
    assert_eq!(
        disk.ops(FaultOp::Rename),
        renames,
        "no checkpoint written by 500 durable appends"
    );
    assert!(
        disk.ops(FaultOp::Sync) - syncs <= 500,
        "one fsync per append at most"
    );
    // An explicit checkpoint records the recovery point; a second one with nothing new
    // writes nothing.
    log.checkpoint_recovery_point().expect("checkpoint");
    let after = disk.ops(FaultOp::Rename);
    assert_eq!(after, renames + 1);
    log.checkpoint_recovery_point().expect("checkpoint");
    assert_eq!(disk.ops(FaultOp::Rename), after, "unchanged: not rewritten");
    let text = String::from_utf8(
        disk.read_file("/p/.topiclog_recovery_point")
            .expect("checkpoint"),
    )
    .expect("text");
    assert!(text.contains("active 0 "), "{text}");
    assert!(text.contains(" 505\ncrc32c "), "{text}");
    // After a power loss the checkpointed records are there, and the open reports the point.
    drop(log);
    disk.crash(3);
    let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p", config).expect("reopen");
    assert_eq!(log.recovery().recovery_point, 505);
    assert_eq!(log.next_offset(), 505);
}

/// A partition whose log start was raised by `delete_records`, closed.
fn with_log_start(dir: &Path) {
    let log = Partition::open(dir, small_config(2048)).expect("open");
    append_range(&log, 0, 200);
    assert_eq!(log.delete_records(120).expect("delete"), 120);
    log.close().expect("close");
}

#[test]
fn a_missing_log_start_checkpoint_fails_the_open_unless_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_log_start(dir.path());
    let first_segment = Partition::open(dir.path(), small_config(2048))
        .expect("open")
        .segment_base_offsets()[0];
    assert!(
        first_segment < 120,
        "records below the start remain on disk"
    );
    fs::remove_file(dir.path().join(LOG_START)).expect("remove");
    match Partition::open(dir.path(), small_config(2048)) {
        Err(Error::Corrupt {
            path,
            kind: Corruption::LogStartMissing { last_known },
            ..
        }) => {
            assert_eq!(path, dir.path().join(LOG_START));
            assert_eq!(last_known, 120);
        }
        other => panic!("expected LogStartMissing, got {other:?}"),
    }
    let options = RecoveryOptions::new().rebuild_log_start(true);
    let log = Partition::open_with(dir.path(), small_config(2048), options).expect("rebuild");
    let rebuilt = log.recovery().log_start_rebuilt.clone().expect("reported");
    assert_eq!(
        rebuilt.offset, 120,
        "the last log start the checkpoint recorded"
    );
    assert!(rebuilt.reason.contains("missing"), "{}", rebuilt.reason);
    assert_eq!(log.log_start_offset(), 120);
    drop(log);
    // Rebuilt for good: a plain open works again.
    let log = Partition::open(dir.path(), small_config(2048)).expect("reopen");
    assert_eq!(log.log_start_offset(), 120);
    assert_range(&read_all(&log, 120), 120, 200);
}

#[test]
fn a_damaged_log_start_checkpoint_fails_the_open_unless_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_log_start(dir.path());
    fs::write(dir.path().join(LOG_START), "0\n1\nnot-an-offset\n").expect("damage");
    match Partition::open(dir.path(), small_config(2048)) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, dir.path().join(LOG_START)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Without the recovery checkpoint's record of it either, the rebuild starts at the first
    // segment: deleted records come back, and the report says the start was rebuilt.
    fs::remove_file(dir.path().join(RECOVERY_POINT)).expect("remove");
    let options = RecoveryOptions::new().rebuild_log_start(true);
    let log = Partition::open_with(dir.path(), small_config(2048), options).expect("rebuild");
    let first = log.segment_base_offsets()[0];
    assert_eq!(log.log_start_offset(), first);
    assert_eq!(
        log.recovery().log_start_rebuilt.as_ref().map(|r| r.offset),
        Some(first)
    );
    assert_range(&read_all(&log, first), first, 200);
}

#[test]
fn a_partition_never_checkpointed_starts_at_its_first_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(2048)).expect("open");
    append_range(&log, 0, 50);
    log.close().expect("close");
    drop(log);
    assert!(!dir.path().join(LOG_START).exists());
    let log = Partition::open(dir.path(), small_config(2048)).expect("reopen");
    assert_eq!(log.log_start_offset(), 0);
    assert!(log.recovery().log_start_rebuilt.is_none());
}
