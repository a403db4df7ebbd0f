//! Appends get contiguous offsets and read back exactly, from any offset, across segments:
//! null and empty keys and values, headers with repeated keys and null values, CreateTime
//! (the record's own or the clock's) and LogAppendTime, reads at the end and out of range, and a
//! reader that picks up records appended after it reached the end.

mod common;

use common::*;
use topiclog::config::LogConfig;
use topiclog::record::{Header, Record, TimestampType};
use topiclog::{Error, Partition};

fn open(dir: &std::path::Path) -> Partition {
    Partition::open(dir, small_config(2048)).expect("open")
}

#[test]
fn offsets_are_contiguous_across_calls_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.append(Record::new(b"a")).unwrap(), 0);
    let info = log
        .append_batch(&[Record::new(b"b"), Record::new(b"c"), Record::new(b"d")])
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (1, 3));
    assert_eq!(info.offsets().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(log.append(Record::new(b"e")).unwrap(), 4);
    assert_eq!(log.next_offset(), 5);
    let values: Vec<Vec<u8>> = read_all(&log, 0)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [b"a", b"b", b"c", b"d", b"e"].map(|v| v.to_vec()));
}

#[test]
fn read_from_every_offset_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append_range(&log, 0, 300);
    assert!(log.segment_base_offsets().len() > 5, "small segments roll");
    for from in 0..=300 {
        assert_range(&read_all(&log, from), from, 300);
    }
}

#[test]
fn null_empty_and_header_edge_cases_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let headers = [
        Header::new(b"dup", Some(b"1")),
        Header::new(b"", Some(b"")),
        Header::new(b"dup", None),
        Header::new("ключ".as_bytes(), Some(&[0, 255, 7])),
        Header::new(b"dup", Some(b"3")),
    ];
    let records = [
        Record::default(),
        Record {
            key: Some(b""),
            value: Some(b""),
            ..Record::default()
        },
        Record::tombstone(b"k"),
        Record::keyed(&[0xff, 0, 0xfe], &[0; 300]).with_headers(&headers),
    ];
    log.append_batch(&records).unwrap();
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 4);
    assert_eq!(
        (read[0].key.as_deref(), read[0].value.as_deref()),
        (None, None)
    );
    assert_eq!(
        (read[1].key.as_deref(), read[1].value.as_deref()),
        (Some(&b""[..]), Some(&b""[..]))
    );
    assert_eq!(
        (read[2].key.as_deref(), read[2].value.as_deref()),
        (Some(&b"k"[..]), None)
    );
    assert_eq!(read[3].key.as_deref(), Some(&[0xff, 0, 0xfe][..]));
    assert_eq!(read[3].value.as_deref(), Some(&[0; 300][..]));
    let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = read[3]
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = headers
        .iter()
        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(got, want, "repeated keys kept in order, null values kept");
}

#[test]
fn create_time_uses_the_records_or_the_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(5_000);
    let config = LogConfig::builder().clock(clock.clone()).build().unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    log.append_batch(&[
        Record::new(b"own").with_timestamp(42),
        Record::new(b"now"),
        Record::new(b"neg").with_timestamp(-7),
    ])
    .unwrap();
    clock.set(6_000);
    log.append(Record::new(b"later")).unwrap();
    let ts: Vec<i64> = read_all(&log, 0).iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, [42, 5_000, -7, 6_000]);
}

#[test]
fn log_append_time_stamps_every_record_with_the_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let config = LogConfig::builder()
        .message_timestamp_type(TimestampType::LogAppendTime)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config.clone()).unwrap();
    log.append_batch(&[
        Record::new(b"a").with_timestamp(1),
        Record::new(b"b").with_timestamp(99_999),
    ])
    .unwrap();
    clock.set(2_000);
    log.append(Record::new(b"c").with_timestamp(3)).unwrap();
    let ts: Vec<i64> = read_all(&log, 0).iter().map(|r| r.timestamp).collect();
    assert_eq!(ts, [1_000, 1_000, 2_000]);
    assert_eq!(
        log.offset_for_timestamp(1_500).unwrap().map(|t| t.offset),
        Some(2)
    );
    log.close().unwrap();
    drop(log);
    let log = Partition::open(dir.path(), config).unwrap();
    let ts: Vec<i64> = read_all(&log, 0).iter().map(|r| r.timestamp).collect();
    assert_eq!(
        ts,
        [1_000, 1_000, 2_000],
        "the batch header keeps the append time"
    );
}

#[test]
fn reads_at_the_end_and_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!(
        log.read(0).unwrap().count(),
        0,
        "an empty log reads nothing at 0"
    );
    append_range(&log, 0, 10);
    assert_eq!(
        log.read(10).unwrap().count(),
        0,
        "reading at the end is empty, not an error"
    );
    for bad in [-1, 11, i64::MAX, i64::MIN] {
        match log.read(bad) {
            Err(Error::OffsetOutOfRange {
                requested,
                log_start: 0,
                log_end: 10,
            }) => assert_eq!(requested, bad),
            other => panic!("{bad}: expected OffsetOutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn a_reader_at_the_end_sees_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append_range(&log, 0, 5);
    let mut reader = log.read(3).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().offset(), 3);
    assert_eq!(reader.next().unwrap().unwrap().offset(), 4);
    assert!(reader.next().is_none());
    append_range(&log, 5, 200); // rolls segments under the reader
    let rest: Vec<i64> = reader.map(|r| r.unwrap().offset()).collect();
    assert_eq!(rest, (5..200).collect::<Vec<_>>());
}

#[test]
fn empty_appends_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(matches!(log.append_batch(&[]), Err(Error::EmptyBatch)));
    assert_eq!(log.next_offset(), 0);
}

#[test]
fn closed_partitions_refuse_appends_but_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append_range(&log, 0, 3);
    log.close().unwrap();
    log.close().unwrap();
    assert!(matches!(log.append(Record::new(b"x")), Err(Error::Closed)));
    assert_range(&read_all(&log, 0), 0, 3);
}

#[test]
fn owned_records_outlive_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append_range(&log, 0, 3);
    let kept: Vec<_> = log.read(0).unwrap().map(Result::unwrap).collect();
    drop(log);
    assert_eq!(
        kept[2].value(),
        Some(&value(2)[..]),
        "a LogRecord keeps its bytes alive"
    );
    assert_eq!(kept[2].to_owned_record().offset, 2);
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Partition>();
    assert_send_sync::<topiclog::partition::Reader>();
    assert_send_sync::<topiclog::LogRecord>();
    assert_send_sync::<Error>();
}
