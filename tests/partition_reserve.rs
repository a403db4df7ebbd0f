//! Without fsync per append, the active segment reserves its `.log` file's blocks ahead of the
//! data (`fallocate` with `FALLOC_FL_KEEP_SIZE` on Linux) so that handing buffered bytes to the
//! OS skips block allocation. Nothing else may notice: the file's length is always the end of
//! its last written batch, and the reserved blocks are released when the segment rolls, when
//! the partition closes or is dropped, and (after a crash left them) at the first of those
//! after reopening.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use topiclog::Partition;
use topiclog::config::LogConfig;

fn lazy() -> LogConfig {
    LogConfig::builder()
        .flush_messages(i64::MAX)
        .segment_bytes(256 * 1024)
        .write_buffer_bytes(4096)
        .build()
        .expect("config")
}

/// Appends the generated records `from..to` and checks the log holds exactly `0..to`.
fn append_and_check(log: &Partition, from: i64, to: i64) {
    common::append_range(log, from, to);
    common::assert_range(&common::read_all(log, 0), 0, to);
}

/// Bytes of disk the file holds.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

/// Whether the filesystem under `dir` reserves blocks past a file's end.
fn reserves_blocks(dir: &Path) -> bool {
    let path = dir.join("probe");
    let file = std::fs::File::create(&path).expect("probe");
    let flags = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
    let reserved = nix::fcntl::fallocate(&file, flags, 0, 1 << 20).is_ok() && allocated(&path) > 0;
    std::fs::remove_file(&path).expect("remove the probe");
    reserved
}

/// The segment file at `path` ends at its last batch and holds no blocks past it (one block
/// of rounding).
fn assert_trimmed(path: &Path) {
    let len = common::assert_ends_at_last_batch(path).len() as u64;
    let held = allocated(path);
    assert!(
        held <= len.next_multiple_of(4096) + 4096,
        "{}: {held} bytes held for {len}",
        path.display()
    );
}

/// [`assert_trimmed`] for every segment file of `dir`.
fn assert_all_trimmed(dir: &Path) {
    for path in common::segment_logs(dir) {
        assert_trimmed(&path);
    }
}

#[test]
fn the_active_segment_reserves_blocks_but_its_length_is_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reserves = reserves_blocks(dir.path());
    let log = Partition::open(dir.path(), lazy()).expect("open");
    append_and_check(&log, 0, 6000); // about 120 bytes a batch: several 256 KiB segments
    let files = common::segment_logs(dir.path());
    assert!(files.len() >= 3, "rolled: {files:?}");
    let (active, sealed) = files.split_last().expect("segments");
    // Rolled segments gave their reservations back.
    for path in sealed {
        assert_trimmed(path);
    }
    // The active one ends at its last written batch; its blocks run ahead of it.
    let bytes = std::fs::read(active).expect("read");
    assert!(!bytes.is_empty(), "buffers were written");
    assert_eq!(
        common::end_of_batches(&bytes),
        bytes.len(),
        "no zeros past the data"
    );
    if reserves {
        assert!(
            allocated(active) >= bytes.len() as u64 + 8192,
            "reserved ahead: {} bytes held for {}",
            allocated(active),
            bytes.len()
        );
    }
    log.close().expect("close");
    assert_all_trimmed(dir.path());
    let log = Partition::open(dir.path(), lazy()).expect("reopen");
    assert!(log.recovery().clean_shutdown);
    common::assert_range(&common::read_all(&log, 0), 0, 6000);
}

#[test]
fn dropping_the_partition_releases_what_it_reserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), lazy()).expect("open");
    append_and_check(&log, 0, 300);
    drop(log);
    assert_all_trimmed(dir.path());
    let log = Partition::open(dir.path(), lazy()).expect("reopen");
    append_and_check(&log, 300, 400);
}

#[test]
fn blocks_a_crash_left_reserved_are_released_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reserves = reserves_blocks(dir.path());
    let log = Partition::open(dir.path(), lazy()).expect("open");
    append_and_check(&log, 0, 100);
    log.close().expect("close");
    // What a crash leaves: blocks reserved past the end of the active segment.
    let active = common::segment_logs(dir.path()).pop().expect("a segment");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open the segment");
    let len = file.metadata().expect("stat").len();
    let flags = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if reserves {
        nix::fcntl::fallocate(&file, flags, 0, 4 << 20).expect("reserve");
        assert!(allocated(&active) >= 4 << 20);
    }
    assert_eq!(
        file.metadata().expect("stat").len(),
        len,
        "the length is kept"
    );
    drop(file);

    let log = Partition::open(dir.path(), lazy()).expect("reopen");
    append_and_check(&log, 100, 110);
    log.close().expect("close");
    assert_all_trimmed(dir.path());
    let log = Partition::open(dir.path(), lazy()).expect("reopen");
    common::assert_range(&common::read_all(&log, 0), 0, 110);
}
