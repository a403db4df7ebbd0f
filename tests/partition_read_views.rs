//! Borrowed reads (`Reader::next_view`, and `Reader::try_for_each_view` scanning with and
//! without breaks) return exactly what the owning iterator returns: the
//! same records with the same fields, from every start offset, across one-record batches,
//! large batches, compressed batches, keys, headers, null values and segment rolls, before and
//! after a reopen; and where a batch is damaged, the same records before it and the same error.

mod common;

use topiclog::config::LogConfig;
use topiclog::record::{Compression, Header, Record};
use topiclog::{Error, OwnedRecord, Partition};

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(16 * 1024)
        .index_interval_bytes(512)
        .build()
        .expect("config")
}

/// Everything `next_view` yields from `from`, owned, then the error that ended it (if any).
fn by_views(log: &Partition, from: i64) -> (Vec<OwnedRecord>, Option<Error>) {
    let mut reader = log.read(from).expect("reader");
    let mut out = Vec::new();
    while let Some(view) = reader.next_view() {
        match view {
            Ok(v) => out.push(common::own_view(&v)),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Everything `try_for_each_view` yields from `from`, scanning with breaks as `pause` says
/// (see [`common::drain_for_each`]).
fn by_for_each(
    log: &Partition,
    from: i64,
    pause: Option<usize>,
) -> (Vec<OwnedRecord>, Option<Error>) {
    common::drain_for_each(&mut log.read(from).expect("reader"), pause)
}

/// Everything the iterator yields from `from`, then the error that ended it (if any).
fn by_iterator(log: &Partition, from: i64) -> (Vec<OwnedRecord>, Option<Error>) {
    let mut out = Vec::new();
    for record in log.read(from).expect("reader") {
        match record {
            Ok(r) => out.push(r.to_owned_record()),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// A log of every shape of batch; returns its next offset.
fn fill(log: &Partition) -> i64 {
    let headers = [
        Header::new(b"trace", Some(b"42")),
        Header::new(b"empty", None),
        Header::new(b"trace", Some(b"")),
    ];
    let big = vec![0xa5u8; 3000];
    for round in 0..6i64 {
        // One record per call: plain, keyed with headers, a tombstone, an empty value.
        log.append(Record::new(format!("one {round}").as_bytes()))
            .expect("append");
        log.append(Record::keyed(b"k", b"v").with_headers(&headers))
            .expect("append");
        log.append(Record::tombstone(b"gone")).expect("append");
        log.append(Record::new(b"")).expect("append");
        // A large value, and batches of many small records.
        log.append(Record::new(&big).with_timestamp(1_000 + round))
            .expect("append");
        let values: Vec<Vec<u8>> = (0..150)
            .map(|i| format!("{round}/{i}").into_bytes())
            .collect();
        let records: Vec<Record<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| match i % 3 {
                0 => Record::new(v),
                1 => Record::keyed(b"key", v).with_headers(&headers[..1]),
                _ => Record::tombstone(v),
            })
            .collect();
        log.append_batch(&records).expect("batch");
        if cfg!(feature = "gzip") {
            log.append_batch_compressed(&records[..40], Compression::Gzip)
                .expect("compressed batch");
        }
        log.append_batch(&records[..2]).expect("small batch");
    }
    log.next_offset()
}

/// Starts at batch boundaries and inside batches, and at the end.
fn starts(end: i64) -> Vec<i64> {
    let mut starts: Vec<i64> = (0..end).step_by(7).collect();
    starts.extend([0, 1, end - 1, end]);
    starts
}

fn assert_agree(log: &Partition, end: i64) {
    for from in starts(end) {
        let (views, view_err) = by_views(log, from);
        let (iterated, iter_err) = by_iterator(log, from);
        assert!(view_err.is_none() && iter_err.is_none(), "from {from}");
        assert_eq!(views, iterated, "from {from}");
        for pause in [None, Some(0), Some(1), Some(149), Some(151)] {
            let (scanned, scan_err) = by_for_each(log, from, pause);
            assert!(scan_err.is_none(), "from {from}, pause {pause:?}");
            assert_eq!(scanned, views, "from {from}, pause {pause:?}");
        }
        let expected = (end - from.min(end)) as usize;
        assert_eq!(views.len(), expected, "from {from}");
        if let Some(first) = views.first() {
            assert_eq!(first.offset, from, "from {from}");
        }
    }
}

#[test]
fn views_return_what_the_iterator_returns_from_every_start() {
    let dir = tempfile::tempdir().expect("dir");
    let log = Partition::open(dir.path(), config()).expect("open");
    let end = fill(&log);
    assert!(log.segment_base_offsets().len() > 3, "several segments");
    assert_agree(&log, end);
    log.close().expect("close");
    drop(log);

    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_agree(&log, end);
}

#[test]
fn views_meet_a_damaged_batch_where_the_iterator_does() {
    let dir = tempfile::tempdir().expect("dir");
    let log = Partition::open(dir.path(), config()).expect("open");
    for b in 0..20i64 {
        let values: Vec<Vec<u8>> = (0..10).map(|i| format!("{b}:{i}").into_bytes()).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
        log.append_batch(&records).expect("batch");
    }
    log.close().expect("close");
    drop(log);

    // A value byte inside the 8th batch of the first segment: its CRC no longer holds.
    let path = common::segment_path(dir.path(), 0, "log");
    let spans = common::batch_spans(&path);
    let damaged = &spans[7];
    let mut bytes = std::fs::read(&path).expect("read");
    let at = (damaged.end - 3) as usize;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");

    let log = Partition::open_read_only(dir.path(), config()).expect("reopen");
    for from in [0, 35, 69, 70, 75] {
        let (views, view_err) = by_views(&log, from);
        let (iterated, iter_err) = by_iterator(&log, from);
        assert_eq!(views, iterated, "from {from}");
        assert_eq!(views.len() as i64, (70 - from).max(0), "from {from}");
        for pause in [None, Some(0), Some(3)] {
            let (scanned, scan_err) = by_for_each(&log, from, pause);
            assert_eq!(scanned, views, "from {from}, pause {pause:?}");
            assert_eq!(
                format!("{scan_err:?}"),
                format!("{view_err:?}"),
                "from {from}, pause {pause:?}"
            );
        }
        match (view_err, iter_err) {
            (
                Some(Error::Corrupt { path, position, .. }),
                Some(Error::Corrupt {
                    path: p2,
                    position: q,
                    ..
                }),
            ) => {
                assert_eq!((path, position), (p2, q), "from {from}");
                assert!(
                    (damaged.start..damaged.end).contains(&position),
                    "from {from}"
                );
            }
            other => panic!("from {from}: {other:?}"),
        }
    }
}

#[test]
fn a_scan_of_a_bounded_reader_stops_where_next_view_does() {
    let dir = tempfile::tempdir().expect("dir");
    let log = Partition::open(dir.path(), config()).expect("open");
    let end = fill(&log);
    for from in [0, 3, end / 2] {
        for max_bytes in [1, 200, 4096, 20_000] {
            let mut viewed = Vec::new();
            let mut reader = log.read_bounded(from, max_bytes).expect("reader");
            while let Some(view) = reader.next_view() {
                viewed.push(common::own_view(&view.expect("record")));
            }
            for pause in [None, Some(0), Some(5)] {
                let mut reader = log.read_bounded(from, max_bytes).expect("reader");
                let (scanned, err) = common::drain_for_each(&mut reader, pause);
                assert!(err.is_none(), "from {from}, {max_bytes} bytes");
                assert_eq!(
                    scanned, viewed,
                    "from {from}, {max_bytes} bytes, pause {pause:?}"
                );
            }
            assert!(!viewed.is_empty(), "a bounded read returns its first batch");
        }
    }
}
