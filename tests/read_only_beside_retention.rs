//! Read-only readers in this process beside a writer in a child process whose retention keeps
//! deleting segments: opening never fails on what the writer leaves at any instant (segments
//! deleted between listing and opening, a roll under way), a reader inside a deleted segment
//! reads it to its end, and a reader whose records are gone gets `OffsetOutOfRange` with the new
//! bounds, never garbage, a panic or a skipped offset.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::LogConfig;
use topiclog::record::Record;
use topiclog::{Error, Partition};

const CHILD_ENV: &str = "TOPICLOG_TEST_RETENTION_WRITER";

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(4096)
        .retention_bytes(16 * 1024)
        .flush_messages(i64::MAX)
        .build()
        .expect("config")
}

fn value(offset: i64) -> Vec<u8> {
    format!("{offset:012}-{}", "v".repeat((offset % 90) as usize)).into_bytes()
}

/// Run as a child process: appends records whose value names their offset, enforcing retention
/// every 20, for `$CHILD_ENV`'s second part of milliseconds. Does nothing in a normal run.
#[test]
fn child_appends_under_retention() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, ms) = spec.rsplit_once(':').expect("dir:ms");
    let log = Partition::open(dir, config()).expect("open");
    let until = Instant::now() + Duration::from_millis(ms.parse().expect("ms"));
    let mut offset = log.next_offset();
    while Instant::now() < until {
        assert_eq!(
            log.append(Record::new(&value(offset))).expect("append"),
            offset
        );
        offset += 1;
        if offset % 20 == 0 {
            log.flush().expect("flush");
            log.enforce_retention().expect("retention");
        }
    }
    log.close().expect("close");
}

#[test]
fn readers_beside_a_writer_whose_retention_deletes_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A first segment for the held reader below.
    let log = Partition::open(dir.path(), config()).expect("open");
    for offset in 0..30 {
        log.append(Record::new(&value(offset))).expect("append");
    }
    log.close().expect("close");
    drop(log);

    // A reader that has started on the first segment before the writer deletes it.
    let held = Partition::open_read_only(dir.path(), config()).expect("read-only");
    let mut held_reader = held.read(0).expect("reader");
    let first = held_reader.next().expect("a record").expect("record");
    assert_eq!(first.value(), Some(&value(0)[..]));

    let mut writer = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_appends_under_retention",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}:1500", dir.path().display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");

    let mut opens = 0;
    let mut out_of_range = 0;
    let mut read = 0u64;
    while writer.try_wait().expect("wait").is_none() {
        opens += 1;
        let reader = Partition::open_read_only(dir.path(), config())
            .unwrap_or_else(|e| panic!("read-only open {opens} beside the writer: {e}"));
        let mut at = reader.log_start_offset();
        let records = match reader.read(at) {
            Ok(records) => records,
            Err(Error::OffsetOutOfRange { .. }) => {
                out_of_range += 1;
                continue;
            }
            Err(e) => panic!("read: {e}"),
        };
        for record in records {
            match record {
                Ok(record) => {
                    assert_eq!(record.offset(), at, "no offset skipped");
                    assert_eq!(record.value(), Some(&value(at)[..]));
                    at += 1;
                    read += 1;
                }
                Err(Error::OffsetOutOfRange { log_start, .. }) => {
                    assert!(log_start > at, "the records at {at} are gone: {log_start}");
                    out_of_range += 1;
                    break;
                }
                Err(e) => panic!("offset {at}: {e}"),
            }
        }
    }
    assert!(writer.wait().expect("reap").success(), "the writer failed");
    assert!(opens > 0 && read > 0, "opens {opens}, read {read}");

    // The held reader reads its segment to its end although the writer deleted it, then gets
    // `OffsetOutOfRange` rather than skipping to the records that remain.
    assert!(
        !dir.path().join(format!("{:020}.log", 0)).exists(),
        "deleted"
    );
    let mut expected = 1;
    loop {
        match held_reader.next() {
            Some(Ok(record)) => {
                assert_eq!(record.offset(), expected);
                assert_eq!(record.value(), Some(&value(expected)[..]));
                expected += 1;
            }
            Some(Err(Error::OffsetOutOfRange { requested, .. })) => {
                assert_eq!(requested, expected);
                break;
            }
            None => {
                // Its view ends with what it listed: a refresh shows the log moved on.
                held.refresh().expect("refresh");
                assert!(held.log_start_offset() > expected);
                assert!(matches!(
                    held.read(expected),
                    Err(Error::OffsetOutOfRange { .. })
                ));
                break;
            }
            Some(Err(e)) => panic!("held reader at {expected}: {e}"),
        }
    }
    assert!(
        expected >= 30,
        "read the first segment to its end: {expected}"
    );
    eprintln!("opens {opens}, records read {read}, out of range {out_of_range}");
}
