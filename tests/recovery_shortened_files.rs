//! A segment file cut short behind an open partition's back never crashes the process (a
//! mapping of the missing pages would raise SIGBUS): reading it is a typed error naming the
//! file, the segments before it still read, and a reopen recovers.

mod common;

use common::*;
use topiclog::{Error, Partition};

#[test]
fn a_sealed_segment_cut_short_while_open_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy_config(16 * 1024)).unwrap();
    append_range(&log, 0, 1000);
    log.close().unwrap();
    drop(log);
    let log = Partition::open(dir.path(), lazy_config(16 * 1024)).unwrap();
    assert!(log.recovery().clean_shutdown);
    let bases = log.segment_base_offsets();
    // Cut the third segment to a quarter of its size (whole pages go) before anything maps it.
    let victim = dir.path().join(format!("{:020}.log", bases[2]));
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len / 4)
        .unwrap();

    let mut reader = log.read(0).unwrap();
    let mut good = Vec::new();
    let error = loop {
        match reader.next() {
            Some(Ok(record)) => good.push(record.to_owned_record()),
            Some(Err(e)) => break e,
            None => panic!("the cut segment must not read as complete"),
        }
    };
    assert!(good.len() as i64 >= bases[2], "the segments before it read");
    assert_range(&good, 0, good.len() as i64);
    match error {
        Error::Corrupt { path, .. } | Error::Io { path, .. } => assert_eq!(path, victim),
        other => panic!("expected a typed error naming the file, got {other:?}"),
    }
    drop(reader);
    drop(log);
    // Its length no longer matches the checkpoint: the reopen scans it. It was flushed, so the
    // loss is corruption, reported with the file.
    match Partition::open(dir.path(), lazy_config(16 * 1024)) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, victim),
        Ok(log) => panic!("flushed data went missing silently: {:?}", log.recovery()),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
    }
}
