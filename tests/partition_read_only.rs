//! A read-only open changes nothing and serves what is complete: beside a live writer it reads
//! every record the writer has written out (batches still in the writer's buffer are not in
//! the file yet), a torn tail is reported and left in place, no file is created, removed,
//! truncated or rewritten, and writes are refused with `Error::ReadOnly`.

mod common;

use common::*;
use topiclog::record::Record;
use topiclog::{Error, Partition};

#[test]
fn beside_a_live_writer_it_reads_what_was_written_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&writer, 0, 80);
    writer.flush().unwrap(); // everything reaches the files
    let before = snapshot(dir.path());
    let reader = Partition::open_read_only(dir.path(), small_config(1024)).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.next_offset(), 80);
    assert_range(&read_all(&reader, 0), 0, 80);
    assert_range(&read_all(&reader, 33), 33, 80);
    assert_eq!(
        reader
            .offset_for_timestamp(40_000)
            .unwrap()
            .map(|t| t.offset),
        Some(40)
    );
    assert!(matches!(
        reader.append(Record::new(b"x")),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(reader.delete_records(5), Err(Error::ReadOnly)));
    assert!(matches!(reader.enforce_retention(), Err(Error::ReadOnly)));
    reader.close().unwrap();
    drop(reader);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only open changes no file"
    );
    // The writer goes on undisturbed.
    append_range(&writer, 80, 90);
    assert_range(&read_all(&writer, 0), 0, 90);
}

#[test]
fn a_torn_tail_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Partition::open(dir.path(), small_config(1 << 20)).unwrap();
    append_range(&writer, 0, 20);
    drop(writer);
    let log = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 1, 0, 0, 0]); // a torn batch header
    std::fs::write(&log, &bytes).unwrap();
    let before = snapshot(dir.path());
    let reader = Partition::open_read_only(dir.path(), small_config(1 << 20)).unwrap();
    assert_eq!(reader.next_offset(), 20);
    assert_range(&read_all(&reader, 0), 0, 20);
    let report = reader.recovery();
    assert_eq!(report.truncations.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.truncations[0].position,
            report.truncations[0].bytes_removed
        ),
        (whole as u64, 14)
    );
    drop(reader);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the torn tail is left for the writer to cut"
    );
}

#[test]
fn a_cleanly_closed_partition_opens_without_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&writer, 0, 50);
    writer.close().unwrap();
    drop(writer);
    let reader = Partition::open_read_only(dir.path(), small_config(1024)).unwrap();
    assert!(reader.recovery().clean_shutdown);
    assert_eq!(reader.recovery().segments_scanned, 0);
    assert_range(&read_all(&reader, 0), 0, 50);
    assert!(
        dir.path().join(".topiclog_cleanshutdown").exists(),
        "the marker stays"
    );
}

#[test]
fn a_missing_directory_is_an_error_not_a_creation() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope-0");
    assert!(matches!(
        Partition::open_read_only(&missing, small_config(1024)),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists());
}

#[test]
fn refresh_picks_up_appends_and_rolls_of_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&writer, 0, 10);
    writer.flush().unwrap();
    let reader = Partition::open_read_only(dir.path(), small_config(1024)).unwrap();
    let mut tail = reader.read(0).unwrap();
    let mut seen = Vec::new();
    seen.extend(tail.by_ref().map(|r| r.unwrap().to_owned_record()));
    assert_eq!(seen.len(), 10);
    assert!(!reader.refresh().unwrap(), "nothing new yet");

    // The writer appends past several rolls; only what reached the files is picked up.
    append_range(&writer, 10, 120);
    writer.flush().unwrap();
    assert!(writer.segment_base_offsets().len() > 3);
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.next_offset(), 120);
    assert_eq!(reader.segment_base_offsets(), writer.segment_base_offsets());
    seen.extend(tail.by_ref().map(|r| r.unwrap().to_owned_record()));
    assert_range(&seen, 0, 120);
    assert_eq!(
        reader
            .offset_for_timestamp(115_000)
            .unwrap()
            .map(|t| t.offset),
        Some(115)
    );
    assert_range(&read_all(&reader, 57), 57, 120);

    // Retention by the writer moves the reader's log start on refresh.
    writer.delete_records(50).unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.log_start_offset(), 50);
    assert!(matches!(
        reader.read(10),
        Err(Error::OffsetOutOfRange { .. })
    ));

    // A writable partition has nothing to refresh.
    assert!(!writer.refresh().unwrap());
}
