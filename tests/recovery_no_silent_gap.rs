//! No silent gap: every offset a partition once acknowledged stays readable, was removed by
//! retention or `delete_records`, or is reported as `Error::Corrupt` naming the file. Where the
//! recovery checkpoint or the clean-shutdown marker records what existed, a segment deleted,
//! renamed or shortened is corruption, for the writable and the read-only open alike; the
//! repair option (`truncate_corrupt`) chooses a reported cut instead. The log-start checkpoint
//! must lie within the log.
//!
//! Also: a read-only open of a partition its writer has not given a segment yet (a crash, or a
//! writer still creating it) serves an empty log instead of failing.

mod common;

use std::fs;
use std::path::Path;

use common::{append_range, assert_range, read_all, segment_path, small_config};
use topiclog::config::RecoveryOptions;
use topiclog::error::Corruption;
use topiclog::{Error, Partition};

const LOG_START: &str = ".topiclog_log_start_offset";

/// A partition of several segments, closed cleanly (`close`) or dropped as a crash leaves it.
/// Returns its directory and segment base offsets.
fn partition(close: bool) -> (tempfile::TempDir, Vec<i64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(2048)).expect("open");
    append_range(&log, 0, 200);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "several segments: {bases:?}");
    if close {
        log.close().expect("close");
    }
    drop(log);
    (dir, bases)
}

fn move_segment(dir: &Path, from: i64, to: Option<i64>) {
    for ext in ["log", "index", "timeindex"] {
        let path = segment_path(dir, from, ext);
        match to {
            Some(to) => fs::rename(&path, segment_path(dir, to, ext)).expect("rename"),
            None => fs::remove_file(&path).expect("remove"),
        }
    }
}

/// Both opens must fail with `Corrupt` naming `file`, with a kind `expected` accepts.
fn assert_corrupt_both_ways(dir: &Path, file: &Path, expected: fn(&Corruption) -> bool) {
    for read_only in [true, false] {
        let opened = if read_only {
            Partition::open_read_only(dir, small_config(2048))
        } else {
            Partition::open(dir, small_config(2048))
        };
        match opened {
            Err(Error::Corrupt { path, kind, .. }) => {
                assert_eq!(path, file, "read_only={read_only}: {kind}");
                assert!(
                    expected(&kind),
                    "read_only={read_only}: unexpected {kind:?}"
                );
            }
            other => panic!("read_only={read_only}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_deleted_middle_segment_is_corrupt_after_a_crash_and_after_a_close() {
    for close in [false, true] {
        let (dir, bases) = partition(close);
        let gone = bases[1];
        move_segment(dir.path(), gone, None);
        let file = segment_path(dir.path(), gone, "log");
        assert_corrupt_both_ways(dir.path(), &file, |k| {
            matches!(k, Corruption::SegmentMissing { .. })
        });

        // The repair cuts the log at the missing segment, and says so.
        let options = RecoveryOptions::new().truncate_corrupt(true);
        let log = Partition::open_with(dir.path(), small_config(2048), options).expect("repair");
        assert_eq!(log.next_offset(), gone, "close={close}");
        assert_range(&read_all(&log, 0), 0, gone);
        let report = log.recovery();
        assert!(
            report
                .truncations
                .iter()
                .any(|t| t.flushed && t.path == file),
            "close={close}: {report:?}"
        );
        assert!(!report.removed_segments.is_empty(), "close={close}");
        drop(log);
        // The repaired partition opens again without the option.
        let log = Partition::open(dir.path(), small_config(2048)).expect("reopen");
        assert_eq!(log.next_offset(), gone);
    }
}

#[test]
fn a_deleted_first_segment_is_corrupt_and_the_repair_starts_the_log_later() {
    let (dir, bases) = partition(false);
    move_segment(dir.path(), bases[0], None);
    let file = segment_path(dir.path(), bases[0], "log");
    assert_corrupt_both_ways(dir.path(), &file, |k| {
        matches!(k, Corruption::SegmentMissing { .. })
    });
    let options = RecoveryOptions::new().truncate_corrupt(true);
    let log = Partition::open_with(dir.path(), small_config(2048), options).expect("repair");
    assert_eq!(log.log_start_offset(), bases[1]);
    assert_eq!(log.next_offset(), 200);
    assert_range(&read_all(&log, bases[1]), bases[1], 200);
}

#[test]
fn a_segment_renamed_to_another_base_offset_is_corrupt() {
    for close in [false, true] {
        // Renamed higher: its first batch lies below the name's base offset.
        let (dir, bases) = partition(close);
        let last = *bases.last().expect("segments");
        move_segment(dir.path(), last, Some(last + 3));
        let opened = Partition::open(dir.path(), small_config(2048));
        assert!(
            matches!(opened, Err(Error::Corrupt { .. })),
            "close={close}: {opened:?}"
        );
        let read_only = Partition::open_read_only(dir.path(), small_config(2048));
        assert!(
            matches!(read_only, Err(Error::Corrupt { .. })),
            "{read_only:?}"
        );

        // Renamed lower: the recorded segment is missing.
        let (dir, bases) = partition(close);
        move_segment(dir.path(), bases[2], Some(bases[2] - 1));
        let file = segment_path(dir.path(), bases[2], "log");
        assert_corrupt_both_ways(dir.path(), &file, |k| {
            matches!(k, Corruption::SegmentMissing { .. })
        });
    }
}

#[test]
fn a_first_batch_below_the_segment_base_is_corrupt_even_above_the_recovery_point() {
    // No checkpoint knows the segment: a lone segment renamed higher.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(1 << 20)).expect("open");
    append_range(&log, 0, 10);
    drop(log);
    for name in [".topiclog_recovery_point", ".topiclog_cleanshutdown"] {
        let _ = fs::remove_file(dir.path().join(name));
    }
    move_segment(dir.path(), 0, Some(5));
    let file = segment_path(dir.path(), 5, "log");
    assert_corrupt_both_ways(dir.path(), &file, |k| {
        matches!(k, Corruption::OffsetOutOfOrder { .. })
    });
}

#[test]
fn a_log_start_outside_the_log_is_corrupt() {
    for close in [false, true] {
        let (dir, bases) = partition(close);
        let log = Partition::open(dir.path(), small_config(2048)).expect("open");
        log.delete_records(bases[2] + 1).expect("delete records");
        let first = log.segment_base_offsets()[0];
        if close {
            log.close().expect("close");
        }
        drop(log);
        let path = dir.path().join(LOG_START);
        for bad in [first - 1, 201, i64::MAX] {
            fs::write(&path, format!("0\n1\n{bad}\n")).expect("write log start");
            assert_corrupt_both_ways(dir.path(), &path, |k| {
                matches!(k, Corruption::LogStartOutOfRange { .. })
            });
        }
        // Above the first segment (retention had not finished deleting) is fine.
        fs::write(&path, format!("0\n1\n{}\n", bases[2] + 5)).expect("write log start");
        let log = Partition::open(dir.path(), small_config(2048)).expect("in range");
        assert_eq!(log.log_start_offset(), bases[2] + 5);
        assert_range(&read_all(&log, bases[2] + 5), bases[2] + 5, 200);
        drop(log);
        // The repair falls back to a start within the log.
        fs::write(&path, "0\n1\n100000\n").expect("write log start");
        let options = RecoveryOptions::new().rebuild_log_start(true);
        let log = Partition::open_with(dir.path(), small_config(2048), options).expect("rebuild");
        assert!(log.recovery().log_start_rebuilt.is_some());
        assert!(log.log_start_offset() <= bases[2] + 5);
        assert_eq!(log.next_offset(), 200);
    }
}

#[test]
fn a_segment_cut_short_after_a_clean_close_is_corrupt_for_both_opens() {
    let (dir, bases) = partition(true);
    for base in [bases[1], *bases.last().expect("segments")] {
        let (dir, file) = {
            let copy = tempfile::tempdir().expect("tempdir");
            common::copy_dir(dir.path(), copy.path());
            let file = segment_path(copy.path(), base, "log");
            (copy, file)
        };
        let len = fs::metadata(&file).expect("log").len();
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(len - 1))
            .expect("cut");
        assert_corrupt_both_ways(dir.path(), &file, |_| true);
    }
}

#[test]
fn a_partition_without_a_segment_yet_opens_read_only_as_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = Partition::open_read_only(dir.path(), small_config(2048)).expect("read-only");
    assert_eq!((reader.log_start_offset(), reader.next_offset()), (0, 0));
    assert!(read_all(&reader, 0).is_empty());
    assert!(
        fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "nothing written"
    );

    // The writer comes, creates the segment and appends: a refresh picks the records up.
    let writer = Partition::open(dir.path(), small_config(2048)).expect("writer");
    append_range(&writer, 0, 60);
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.next_offset(), 60);
    assert_range(&read_all(&reader, 0), 0, 60);

    // A directory that does not exist is an error, not an empty log.
    let missing = dir.path().join("nope");
    assert!(Partition::open_read_only(&missing, small_config(2048)).is_err());
}

#[test]
fn a_changed_base_offset_is_corrupt_at_the_first_read_never_other_offsets() {
    // The base offset lies outside the CRC: after a clean close nothing is scanned, so the
    // reader itself must notice a batch whose offsets do not fit where it stands.
    for (delta, from) in [(1i64 << 40, 0), (-3, 0), (1 << 40, 50), (-3, 50)] {
        let (dir, bases) = partition(true);
        let log_path = segment_path(dir.path(), bases[1], "log");
        let mut bytes = fs::read(&log_path).expect("log");
        // The second batch of the segment.
        let first_len = u32::from_be_bytes(bytes[8..12].try_into().expect("len")) as usize + 12;
        let at = first_len;
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("base"));
        bytes[at..at + 8].copy_from_slice(&(base + delta).to_be_bytes());
        fs::write(&log_path, &bytes).expect("write");
        let log =
            Partition::open(dir.path(), small_config(2048)).expect("a clean open reads nothing");
        let mut expected = from;
        let mut failed = false;
        for record in log.read(from).expect("reader") {
            match record {
                Ok(record) => {
                    assert_eq!(
                        record.offset(),
                        expected,
                        "delta {delta}: never another offset"
                    );
                    expected += 1;
                }
                Err(Error::Corrupt { path, .. }) => {
                    assert_eq!(path, log_path);
                    failed = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            failed || expected > base,
            "delta {delta} from {from}: the damage was read"
        );
        // verify says so too.
        let report = topiclog::inspect::check_partition(dir.path()).expect("check");
        assert!(!report.is_ok(), "delta {delta}");
    }
}

#[test]
fn a_damaged_recovery_checkpoint_after_a_crash_is_corrupt_unless_repair_is_asked() {
    let (dir, bases) = partition(false);
    let checkpoint = dir.path().join(".topiclog_recovery_point");
    let mut bytes = fs::read(&checkpoint).expect("checkpoint");
    bytes.truncate(bytes.len() / 2);
    fs::write(&checkpoint, &bytes).expect("cut");
    // With it, a deleted segment would otherwise pass as one of the gaps Kafka's format allows.
    move_segment(dir.path(), bases[1], None);
    assert_corrupt_both_ways(dir.path(), &checkpoint, |_| true);
    let options = RecoveryOptions::new().truncate_corrupt(true);
    let log = Partition::open_with(dir.path(), small_config(2048), options).expect("repair");
    assert!(log.recovery().recovery_checkpoint_unusable.is_some());
    assert_eq!(log.recovery().segments_scanned, bases.len() - 1);
}

#[test]
fn after_a_failed_fsync_both_opens_serve_only_what_was_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(1 << 20)).expect("open");
    append_range(&log, 0, 10);
    drop(log);
    let spans = common::batch_spans(&segment_path(dir.path(), 0, "log"));
    // The note a failed fsync leaves: the sixth batch on were never made durable.
    let synced = spans[5].start;
    fs::write(
        dir.path().join(".topiclog_failed_fsync"),
        format!("0\n1\n0 {synced}\n"),
    )
    .expect("note");
    let reader = Partition::open_read_only(dir.path(), small_config(1 << 20)).expect("read-only");
    assert_eq!(reader.next_offset(), 5);
    assert_range(&read_all(&reader, 0), 0, 5);
    let log = Partition::open(dir.path(), small_config(1 << 20)).expect("writable");
    assert_eq!(log.next_offset(), 5);
    assert_range(&read_all(&log, 0), 0, 5);
    // A note that does not parse fails both.
    drop((reader, log));
    fs::write(
        dir.path().join(".topiclog_failed_fsync"),
        "0\n1\nnonsense\n",
    )
    .expect("note");
    assert!(Partition::open_read_only(dir.path(), small_config(1 << 20)).is_err());
    assert!(Partition::open(dir.path(), small_config(1 << 20)).is_err());
}
