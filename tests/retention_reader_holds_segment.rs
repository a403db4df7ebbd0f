//! Retention never pulls a file from under a reader: a reader inside a segment that retention
//! deletes reads it to its end (the segment is reference-counted; its files are renamed
//! `*.deleted` and removed when the last reader lets go), then gets `OffsetOutOfRange` rather
//! than silently skipping the deleted records after it. New reads below the log start are
//! `OffsetOutOfRange` with the current bounds.

mod common;

use common::*;
use topiclog::{Error, Partition};

#[test]
fn a_reader_finishes_a_deleted_segment_then_learns_it_fell_behind() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&log, 0, 100);
    let bases = log.segment_base_offsets();
    let mut reader = log.read(0).unwrap();
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.offset(), 0);

    // Delete the first three segments while the reader is inside the first.
    log.delete_records(bases[3]).unwrap();
    let deleted: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".deleted"))
        .collect();
    assert!(
        deleted.contains(&"00000000000000000000.log.deleted".to_owned()),
        "{deleted:?}"
    );

    // It reads its segment to the end...
    let mut seen = vec![first.to_owned_record()];
    let error = loop {
        match reader.next() {
            Some(Ok(record)) => seen.push(record.to_owned_record()),
            Some(Err(e)) => break e,
            None => panic!("the reader must learn it fell behind"),
        }
    };
    assert_range(&seen, 0, bases[1]);
    // ...then learns the next records are gone.
    match error {
        Error::OffsetOutOfRange {
            requested,
            log_start,
            log_end: 100,
        } => {
            assert_eq!((requested, log_start), (bases[1], bases[3]));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert!(reader.next().is_none());

    // The deleted files go when the last reader lets go (the record kept the chunk alive too).
    drop(first);
    drop(seen);
    drop(reader);
    let left: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".deleted"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    match log.read(0) {
        Err(Error::OffsetOutOfRange {
            requested: 0,
            log_start,
            log_end: 100,
        }) => assert_eq!(log_start, bases[3]),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn leftover_deleted_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&log, 0, 100);
    let bases = log.segment_base_offsets();
    let reader = log.read(0).unwrap();
    log.delete_records(bases[2]).unwrap();
    // A crash while a reader still holds deleted segments: their files stay behind.
    std::mem::forget(reader);
    drop(log);
    assert!(files(dir.path()).iter().any(|f| f.ends_with(".deleted")));
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    assert!(!files(dir.path()).iter().any(|f| f.ends_with(".deleted")));
    assert_eq!(log.log_start_offset(), bases[2]);
    assert_range(&read_all(&log, bases[2]), bases[2], 100);
}
