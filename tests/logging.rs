//! Log lines through the `log` facade: what an application's logger sees when a partition is
//! recovered, cut, refused as corrupt, trimmed by retention or `delete_records`, waits for a
//! lock, and when a consumer group rebalances. One logger serves the whole test binary, so each
//! test looks only at the lines that name its own temporary directory or group.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record as LogLine};
use tempfile::TempDir;
use topiclog::config::{
    ConsumerConfig, LogConfig, OffsetReset, RecoveryOptions, StoreOptions, TopicConfig,
};
use topiclog::record::Record;
use topiclog::{Partition, Store};

struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &LogLine<'_>) {
        let line = record.args().to_string();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((record.level(), line));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn install() {
    // Every test calls this; the first installs the logger.
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(LevelFilter::Trace);
}

/// The lines so far that contain `needle`.
fn lines(needle: &str) -> Vec<(Level, String)> {
    CAPTURE
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, line)| line.contains(needle))
        .cloned()
        .collect()
}

fn small() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1024)
        .build()
        .expect("valid config")
}

fn fill(log: &Partition, n: usize) {
    for i in 0..n {
        log.append(Record::new(
            format!("record {i:04} with some padding").as_bytes(),
        ))
        .expect("append");
    }
}

#[test]
fn opens_log_a_summary_and_cuts_log_a_warning() {
    install();
    let dir = TempDir::new().expect("tempdir");
    let needle = dir.path().display().to_string();
    {
        let log = Partition::open(dir.path(), small()).expect("open");
        fill(&log, 5);
        log.close().expect("close");
    }
    {
        let log = Partition::open(dir.path(), small()).expect("reopen");
        fill(&log, 1);
        // Dropped without close: a crash.
    }
    let active = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .expect("a segment");
    let mut f = OpenOptions::new().append(true).open(&active).expect("log");
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 40, 1, 2])
        .expect("torn tail");
    drop(f);
    let log = Partition::open(dir.path(), small()).expect("recover");
    assert_eq!(log.recovery().truncations.len(), 1);

    let seen = lines(&needle);
    let infos: Vec<_> = seen
        .iter()
        .filter(|(l, s)| *l == Level::Info && s.starts_with("opened partition"))
        .collect();
    assert_eq!(infos.len(), 3, "one summary per open: {seen:?}");
    assert!(infos[0].1.contains("after an unclean stop"), "{seen:?}");
    assert!(infos[1].1.contains("after a clean shutdown"), "{seen:?}");
    assert!(infos[2].1.contains("offsets 0..6"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|(l, s)| *l == Level::Warn && s.starts_with("cut ") && s.contains("14 bytes")),
        "the cut is a warning: {seen:?}"
    );

    // A read-only open logs its summary at debug, so tailing processes stay quiet at info.
    drop(log);
    let ro = Partition::open_read_only(dir.path(), small()).expect("read-only");
    drop(ro);
    assert!(
        lines(&needle)
            .iter()
            .any(|(l, s)| *l == Level::Debug && s.contains("read-only")),
    );
}

#[test]
fn a_corrupt_partition_is_an_error_line() {
    install();
    let dir = TempDir::new().expect("tempdir");
    let needle = dir.path().display().to_string();
    {
        let log = Partition::open(dir.path(), small()).expect("open");
        fill(&log, 40);
        log.close().expect("close");
    }
    // The first segment goes missing behind the marker's back.
    let first = dir.path().join(format!("{:020}.log", 0));
    std::fs::remove_file(first).expect("delete");
    let err =
        Partition::open_with(dir.path(), small(), RecoveryOptions::default()).expect_err("corrupt");
    assert!(matches!(err, topiclog::Error::Corrupt { .. }), "{err}");
    assert!(
        lines(&needle)
            .iter()
            .any(|(l, s)| *l == Level::Error && s.starts_with("cannot open partition")),
        "{:?}",
        lines(&needle)
    );
}

#[test]
fn retention_and_delete_records_log_what_they_deleted() {
    install();
    let dir = TempDir::new().expect("tempdir");
    let needle = dir.path().display().to_string();
    let config = LogConfig::builder()
        .segment_bytes(1024)
        .retention_bytes(2048)
        .build()
        .expect("valid config");
    let log = Partition::open(dir.path(), config).expect("open");
    fill(&log, 200);
    let report = log.enforce_retention().expect("retention");
    assert!(!report.deleted_segments.is_empty());
    let deleted = log.delete_records(log.next_offset() - 1).expect("delete");
    let seen = lines(&needle);
    assert!(
        seen.iter()
            .any(|(l, s)| *l == Level::Info && s.contains("retention deleted segments")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(
            |(l, s)| *l == Level::Info && s.contains(&format!("log start raised to {deleted}"))
        ),
        "{seen:?}"
    );
}

#[test]
fn a_lock_wait_is_logged() {
    install();
    let dir = TempDir::new().expect("tempdir");
    let needle = dir.path().display().to_string();
    let first = Partition::open(dir.path(), small()).expect("open");
    let options = RecoveryOptions::new().lock_timeout(Duration::from_millis(30));
    let err = Partition::open_with(dir.path(), small(), options).expect_err("locked");
    assert!(matches!(err, topiclog::Error::Locked { .. }), "{err}");
    drop(first);
    assert!(
        lines(&needle)
            .iter()
            .any(|(l, s)| *l == Level::Info && s.contains("locked by another writer")),
        "{:?}",
        lines(&needle)
    );
}

#[test]
fn rebalances_are_logged_with_the_group() {
    install();
    let dir = TempDir::new().expect("tempdir");
    let store = Store::open_with(dir.path(), StoreOptions::builder().build()).expect("store");
    store.create_topic("t", TopicConfig::new(2)).expect("topic");
    let group = "logging-test-group";
    let mut consumer = store
        .consumer(
            ConsumerConfig::builder()
                .group_id(group)
                .auto_offset_reset(OffsetReset::Earliest)
                .build()
                .expect("config"),
        )
        .expect("consumer");
    consumer.subscribe(&["t"]).expect("subscribe");
    consumer.poll(Duration::from_millis(10)).expect("poll");
    let seen = lines(&format!("group {group}"));
    assert!(
        seen.iter()
            .any(|(l, s)| *l == Level::Info && s.contains("rebalancing to generation")),
        "{seen:?}"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn poisoning_is_an_error_line() {
    use std::sync::Arc;
    use topiclog::testing::{Fault, FaultDisk, FaultKind, FaultOp};

    install();
    let disk = Arc::new(FaultDisk::new());
    // A directory name no other test's lines contain.
    let dir = std::path::Path::new("/logging-poison-test");
    let log = Partition::open_on_fault_disk(Arc::clone(&disk), dir, small()).expect("open");
    fill(&log, 3);
    disk.inject(Fault::new(FaultOp::Sync, FaultKind::Io).on_path_ending(".log"));
    log.append(Record::new(b"x")).expect_err("the fsync fails");
    let seen = lines("logging-poison-test");
    assert!(
        seen.iter().any(|(l, s)| *l == Level::Error
            && s.contains("poisoned")
            && s.contains("writes are refused until it is reopened")),
        "{seen:?}"
    );
}
