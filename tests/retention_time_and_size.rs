//! Retention by time (`retention.ms`, by each segment's largest timestamp) and by size
//! (`retention.bytes`): whole segments only, oldest first; when every segment has expired the
//! active one is rolled first, so the log is empty but keeps its next offset; the deleted files
//! are gone and reads below the new log start are `OffsetOutOfRange`.

mod common;

use common::*;
use topiclog::config::LogConfig;
use topiclog::record::Record;
use topiclog::{Error, Partition};

fn logs(dir: &std::path::Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".log"))
        .collect()
}

#[test]
fn time_retention_deletes_expired_segments_and_rolls_when_all_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_ms(10_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config.clone()).unwrap();
    // Record i has timestamp 1000 * i: segments hold rising time ranges.
    append_range(&log, 0, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5, "{bases:?}");
    clock.set(0);
    assert_eq!(
        log.enforce_retention().unwrap().deleted_segments,
        Vec::<i64>::new()
    );

    // At t = 40_000 + 10_000 + 1, every segment whose records are all older than 40_000 goes.
    clock.set(50_001);
    let report = log.enforce_retention().unwrap();
    let expected: Vec<i64> = bases
        .windows(2)
        .filter(|w| (w[1] - 1) * 1000 < 40_001)
        .map(|w| w[0])
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(report.deleted_segments, expected);
    assert_eq!(log.log_start_offset(), bases[expected.len()]);
    assert_eq!(report.log_start_offset, log.log_start_offset());
    assert!(report.bytes_deleted > 0);
    let start = log.log_start_offset();
    assert_range(&read_all(&log, start), start, 60);
    match log.read(start - 1) {
        Err(Error::OffsetOutOfRange {
            requested,
            log_start,
            log_end: 60,
        }) => {
            assert_eq!((requested, log_start), (start - 1, start));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(
        logs(dir.path()).len(),
        bases.len() - expected.len(),
        "deleted files are gone"
    );

    // Everything expires: the active segment is rolled, the log is empty at offset 60.
    clock.set(1_000_000);
    let report = log.enforce_retention().unwrap();
    assert!(!report.deleted_segments.is_empty());
    assert_eq!((log.log_start_offset(), log.next_offset()), (60, 60));
    assert_eq!(log.segment_base_offsets(), [60]);
    assert_eq!(logs(dir.path()), ["00000000000000000060.log"]);
    assert_eq!(log.read(60).unwrap().count(), 0);
    assert_eq!(
        log.append(Record::new(b"after").with_timestamp(1_000_000))
            .unwrap(),
        60
    );
    // Running again deletes nothing: an empty or fresh active segment stays.
    clock.set(1_000_000);
    assert!(log.enforce_retention().unwrap().deleted_segments.is_empty());

    // The start survives a reopen, clean or not.
    drop(log);
    let log = Partition::open(dir.path(), config).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (60, 61));
}

#[test]
fn forever_means_forever() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(i64::MAX / 2);
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_ms(-1)
        .clock(clock)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    append_range(&log, 0, 60);
    assert!(log.enforce_retention().unwrap().deleted_segments.is_empty());
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn size_retention_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_ms(-1)
        .retention_bytes(3000)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    append_range(&log, 0, 100);
    log.close().unwrap();
    let size = |dir: &std::path::Path| -> u64 {
        logs(dir)
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
            .sum()
    };
    let before = size(dir.path());
    assert!(before > 6000);
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_ms(-1)
        .retention_bytes(3000)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    let report = log.enforce_retention().unwrap();
    let after = size(dir.path());
    assert!(after >= 3000, "at least retention.bytes kept: {after}");
    assert!(
        after < 3000 + 1024,
        "no more than one segment over: {after}"
    );
    assert_eq!(before - after, report.bytes_deleted);
    let start = log.log_start_offset();
    assert_range(&read_all(&log, start), start, 100);
}
