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

const LOW_LIMIT_CHILD: &str = "TOPICLOG_TEST_LOW_FD_LIMIT";

/// Run by `flush_syncs_many_segments_under_a_low_descriptor_limit` under `ulimit -n 256`;
/// does nothing in a normal run.
#[test]
fn child_flushes_many_segments() {
    let Ok(dir) = std::env::var(LOW_LIMIT_CHILD) else {
        return;
    };
    let log = Partition::open(&dir, lazy_config(200)).expect("open");
    append_range(&log, 0, 400); // 400 unsynced segments: 1,200 files to sync
    log.flush().expect("flush with a 256-descriptor limit");
    println!("RESULT:ok");
}

/// Regression: a flush synced every unsynced segment's three files through one list of open
/// handles, so 400 segments needed 1,200 descriptors at once (a 10 GiB partition of 1 MiB
/// segments failed with "Too many open files" under a 20,000 limit).
#[cfg(unix)]
#[test]
fn flush_syncs_many_segments_under_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' --exact child_flushes_many_segments --nocapture",
            exe.display()
        ))
        .env(LOW_LIMIT_CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("RESULT:ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
