//! The durable policy preallocates the active segment's `.log` with fsynced zeros (Kafka's
//! `log.preallocate`), and nothing else may see them: a rolled or closed segment ends exactly
//! at its last batch; a writer killed with the zeros in place (its files copied while it is
//! open, as the page cache holds them) reopens with every acknowledged record and the zeros
//! cut; a read-only follower beside the writer reads whole batches only, never an error.

mod common;

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

fn durable() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(64 * 1024)
        .build()
        .expect("config")
}

fn value(i: u32) -> Vec<u8> {
    format!("{i:08}-").repeat(30).into_bytes()
}

/// Appends `batches` batches of 10 records, offsets from `from`.
fn append(log: &Partition, from: u32, batches: u32) {
    for b in 0..batches {
        let values: Vec<Vec<u8>> = (0..10).map(|r| value(from + b * 10 + r)).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
        log.append_batch(&records).expect("append");
    }
}

fn check_records(log: &Partition, count: u32) {
    let mut n = 0;
    for record in log.read(0).expect("reader") {
        let record = record.expect("record");
        assert_eq!(record.offset(), i64::from(n));
        assert_eq!(record.value(), Some(&value(n)[..]));
        n += 1;
    }
    assert_eq!(n, count);
}

#[test]
fn rolled_and_closed_segments_end_at_their_last_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), durable()).expect("open");
    append(&log, 0, 60); // 600 records of 270 bytes: a few 64 KiB segments
    let files = common::segment_logs(dir.path());
    assert!(files.len() >= 3, "rolled: {files:?}");
    let (active, sealed) = files.split_last().expect("segments");
    for path in sealed {
        common::assert_ends_at_last_batch(path);
    }
    // The active segment is preallocated ahead of its data, with zeros.
    let bytes = std::fs::read(active).expect("read");
    let end = common::end_of_batches(&bytes);
    assert!(bytes.len() > end, "preallocated: {} bytes", bytes.len());
    assert!(bytes[end..].iter().all(|&b| b == 0), "a zero tail");
    check_records(&log, 600);
    log.close().expect("close");
    for path in common::segment_logs(dir.path()) {
        common::assert_ends_at_last_batch(&path);
    }
    let log = Partition::open(dir.path(), durable()).expect("reopen");
    assert!(log.recovery().clean_shutdown);
    assert_eq!(log.recovery().segments_scanned, 0);
    check_records(&log, 600);
}

#[test]
fn a_killed_writer_leaves_zeros_that_recovery_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), durable()).expect("open");
    append(&log, 0, 30);
    // What a SIGKILL leaves: the files as the page cache holds them, preallocated zeros too.
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_file() && !path.ends_with(".topiclog_lock") {
            std::fs::copy(&path, copy.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let active = common::segment_logs(copy.path()).pop().expect("a segment");
    let len = std::fs::metadata(&active).expect("stat").len();
    assert!(len >= 64 << 10, "the copy holds the zeros: {len}");
    drop(log);

    let log = Partition::open(copy.path(), durable()).expect("reopen the killed copy");
    check_records(&log, 300);
    let cut: u64 = log
        .recovery()
        .truncations
        .iter()
        .map(|t| t.bytes_removed)
        .sum();
    assert!(cut > 0, "the zeros were cut: {:?}", log.recovery());
    assert!(
        log.recovery().truncations.iter().all(|t| !t.flushed),
        "nothing fsynced was cut"
    );
    let bytes = std::fs::read(&active).expect("read");
    assert_eq!(
        common::end_of_batches(&bytes),
        bytes.len(),
        "cut at the last batch"
    );
    append(&log, 300, 5);
    check_records(&log, 350);
    log.close().expect("close");
}

#[test]
fn a_read_only_follower_beside_a_preallocating_writer_reads_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), durable()).expect("open");
    append(&log, 0, 3);
    let follower = Partition::open_read_only(dir.path(), durable()).expect("read-only open");
    let mut appended = 30;
    for _ in 0..20 {
        append(&log, appended, 3);
        appended += 30;
        follower.refresh().expect("refresh never fails on zeros");
        let mut n = 0;
        for record in follower.read(0).expect("reader") {
            let record = record.expect("whole batches only");
            assert_eq!(record.offset(), i64::from(n));
            assert_eq!(record.value(), Some(&value(n)[..]));
            n += 1;
        }
        assert!(n <= appended);
        assert_eq!(i64::from(n), follower.next_offset());
    }
    log.close().expect("close");
    follower.refresh().expect("refresh");
    check_records(&follower, appended);
}
