//! A partition with thousands of segments holds a bounded number of file descriptors: a sealed
//! segment keeps no handle (it opens its file when it must read, map or sync it), so appending,
//! reopening and reading the whole log never runs into the process's descriptor limit (often
//! 1024). Regression: every segment used to keep its `.log` open, and a 10 GiB partition of
//! 1 MiB segments failed with "Too many open files".

mod common;

use common::*;
use topiclog::Partition;

#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[cfg(target_os = "linux")]
#[test]
fn thousands_of_segments_hold_few_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let before = open_fds();
    let log = Partition::open(dir.path(), lazy_config(200)).unwrap();
    append_range(&log, 0, 2_000); // one batch per segment
    assert!(log.segment_base_offsets().len() >= 1_900);
    log.flush().unwrap();
    assert!(
        open_fds() < before + 32,
        "appending: {} descriptors open",
        open_fds() - before
    );
    log.close().unwrap();
    drop(log);

    let log = Partition::open(dir.path(), lazy_config(200)).unwrap();
    assert_range(&read_all(&log, 0), 0, 2_000);
    assert_range(&read_all(&log, 1_234), 1_234, 2_000);
    assert!(
        open_fds() < before + 32,
        "after reading: {} descriptors open",
        open_fds() - before
    );
    drop(log);
    let log = Partition::open_read_only(dir.path(), lazy_config(200)).unwrap();
    assert_range(&read_all(&log, 0), 0, 2_000);
    assert!(
        open_fds() < before + 32,
        "read-only: {} descriptors open",
        open_fds() - before
    );
}
