//! `delete_records` (Kafka's DeleteRecords) advances the log start offset: records below it
//! can no longer be read, segments wholly below it are deleted, a segment holding it stays with
//! its earlier records hidden, the start never moves back, survives reopen after a clean close
//! and after a crash, and offsets past the log end are refused.

mod common;

use common::*;
use topiclog::{Error, Partition};

#[test]
fn delete_records_hides_and_deletes_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&log, 0, 100);
    let bases = log.segment_base_offsets();
    let target = bases[3] + 2; // inside the fourth segment
    assert_eq!(log.delete_records(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(
        log.segment_base_offsets(),
        bases[3..].to_vec(),
        "segments wholly below are deleted"
    );
    assert!(matches!(
        log.read(target - 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_range(&read_all(&log, target), target, 100);
    assert_eq!(
        log.delete_records(5).unwrap(),
        target,
        "the start never moves back"
    );
    match log.delete_records(101) {
        Err(Error::OffsetOutOfRange {
            requested: 101,
            log_end: 100,
            ..
        }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert!(matches!(
        log.delete_records(-1),
        Err(Error::OffsetOutOfRange { .. })
    ));

    // Crash, then reopen: the start is persisted.
    drop(log);
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert!(matches!(
        log.read(target - 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_range(&read_all(&log, target), target, 100);

    // Up to the end: everything below the active segment goes; the log stays at 100.
    assert_eq!(log.delete_records(100).unwrap(), 100);
    assert_eq!(log.read(100).unwrap().count(), 0);
    log.close().unwrap();
    drop(log);
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    assert!(log.recovery().clean_shutdown);
    assert_eq!((log.log_start_offset(), log.next_offset()), (100, 100));
    append_range(&log, 100, 105);
    assert_range(&read_all(&log, 100), 100, 105);
}

#[test]
fn a_log_that_ends_below_its_start_restarts_there() {
    // Kafka's LogLoaderTest.testLogEndLessThanStartAfterReopen.
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&log, 0, 50);
    log.delete_records(50).unwrap();
    log.close().unwrap();
    drop(log);
    // The active segment loses its data behind our back.
    for f in files(dir.path()).iter().filter(|f| f.ends_with(".log")) {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (50, 50));
    assert_eq!(log.segment_base_offsets(), [50]);
    append_range(&log, 50, 53);
    assert_range(&read_all(&log, 50), 50, 53);
}
