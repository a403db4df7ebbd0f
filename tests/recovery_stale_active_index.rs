//! After recovery the active segment's index files on disk match its data at once, not only
//! after the first append or close: a crash-style cut inside its log, or garbage index files,
//! leave nothing stale for a reader of the directory (`topiclog verify`, Kafka's tools).
//! Regression from the `recover_tail` fuzz target (`fuzz/regressions/`).

mod common;

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

fn config() -> LogConfig {
    LogConfig::builder()
        .index_interval_bytes(0)
        .flush_messages(i64::MAX)
        .build()
        .unwrap()
}

#[test]
fn a_cut_inside_the_active_log_leaves_no_stale_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), config()).unwrap();
    for i in 0..5 {
        log.append(Record::new(b"0123456789").with_timestamp(i))
            .unwrap();
    }
    log.close().unwrap();
    drop(log);
    let file = dir.path().join("00000000000000000000.log");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len * 2 / 3)
        .unwrap();
    std::fs::remove_file(dir.path().join(".topiclog_cleanshutdown")).unwrap();
    // Without the recovery checkpoint nothing is known fsynced, so the cut reads as a torn
    // tail (with it, the cut is flushed data missing: `recovery_below_recovery_point.rs`).
    std::fs::remove_file(dir.path().join(".topiclog_recovery_point")).unwrap();
    let log = Partition::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery().truncations.len(), 1);
    let report = topiclog::inspect::verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    drop(log);
}

#[test]
fn garbage_index_files_are_rewritten_at_open() {
    // The fuzzer's input: an empty log with a 1-byte index and an empty time index.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000000.log"), b"").unwrap();
    std::fs::write(dir.path().join("00000000000000000000.index"), [0x7e]).unwrap();
    std::fs::write(dir.path().join("00000000000000000000.timeindex"), b"").unwrap();
    let log = Partition::open(dir.path(), config()).unwrap();
    let report = topiclog::inspect::verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    drop(log);
}
