//! A batch whose offsets would pass `i64::MAX` (its base offset, outside the CRC, changed so
//! that `baseOffset + lastOffsetDelta` overflows) is a decode error
//! (`DecodeErrorKind::LastOffsetOverflow`), and every path over segment files treats it as the
//! damage it is: readers of a cleanly closed partition fail with `Error::Corrupt` naming the
//! `.log` and the batch, `inspect` reports it, and recovery after a crash cuts it as a bad tail
//! of unflushed data. Nothing panics and no record is served at a wrapped offset.

mod common;

use std::path::Path;

use common::{append_batch_range, append_range, assert_range, batch_spans, lazy_config};
use common::{read_all, segment_path};
use topiclog::error::Corruption;
use topiclog::record::{DecodeError, DecodeErrorKind};
use topiclog::{Error, Partition, inspect};

/// Records 0..4 one per batch, then 4..7 as one batch (last offset delta 2).
fn write(dir: &Path, close: bool) {
    let log = Partition::open(dir, lazy_config(1 << 20)).expect("open");
    append_range(&log, 0, 4);
    append_batch_range(&log, 4, 7);
    if close {
        log.close().expect("close");
    }
}

/// Sets the last batch's base offset to `i64::MAX - 1`, so its last offset would be
/// `i64::MAX + 1`; returns the batch's position.
fn overflow_last_batch(dir: &Path) -> u64 {
    let path = segment_path(dir, 0, "log");
    let last = *batch_spans(&path).last().expect("a batch");
    let mut bytes = std::fs::read(&path).expect("read");
    let at = usize::try_from(last.start).expect("position");
    bytes[at..at + 8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    std::fs::write(&path, &bytes).expect("write");
    last.start
}

fn overflow() -> DecodeError {
    DecodeError {
        kind: DecodeErrorKind::LastOffsetOverflow {
            base_offset: i64::MAX - 1,
            last_offset_delta: 2,
        },
        position: 0,
    }
}

#[test]
fn readers_of_a_closed_partition_fail_with_corrupt_at_the_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    write(&dir, true);
    let position = overflow_last_batch(&dir);
    let log_path = segment_path(&dir, 0, "log");

    let report = inspect::check_partition(&dir).expect("verify");
    assert!(!report.is_ok(), "{report:?}");

    for read_only in [true, false] {
        let log = if read_only {
            Partition::open_read_only(&dir, lazy_config(1 << 20))
        } else {
            Partition::open(&dir, lazy_config(1 << 20))
        }
        .expect("a clean open reads no segment");
        for from in [0, 4, 6] {
            let mut served = Vec::new();
            let mut error = None;
            for record in log.read(from).expect("reader") {
                match record {
                    Ok(r) => served.push(r.to_owned_record()),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            assert_range(&served, from.min(4), 4);
            match error {
                Some(Error::Corrupt {
                    path,
                    position: at,
                    kind: Corruption::Batch(e),
                }) => {
                    assert_eq!((path, at, e), (log_path.clone(), position, overflow()));
                }
                other => panic!("read({from}), read-only {read_only}: {other:?}"),
            }
        }
    }
}

#[test]
fn recovery_after_a_crash_cuts_the_batch_as_a_bad_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    write(&dir, false);
    let position = overflow_last_batch(&dir);
    let log_path = segment_path(&dir, 0, "log");

    let report = inspect::verify_partition(&dir).expect("verify");
    // Not what an interrupted append leaves: a problem, which recovery then cuts as unflushed.
    assert_eq!(report.torn_tail, None);
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.position, p.kind.clone()))
        .collect();
    assert_eq!(
        problems,
        [(
            log_path.clone(),
            position,
            inspect::ProblemKind::BadBatch(overflow())
        )]
    );

    let log = Partition::open(&dir, lazy_config(1 << 20)).expect("recovering open");
    let cut = &log.recovery().truncations;
    assert_eq!(cut.len(), 1, "{:?}", log.recovery());
    assert_eq!((&cut[0].path, cut[0].position), (&log_path, position));
    assert_eq!(cut[0].reason, Corruption::Batch(overflow()));
    assert_eq!(log.next_offset(), 4);
    assert_range(&read_all(&log, 0), 0, 4);
    assert_eq!(
        log.append(topiclog::Record::new(b"after")).expect("append"),
        4
    );
}
