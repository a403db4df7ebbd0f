//! A sequential read takes plain batches on a fast path (`Reader::next_view` one batch per
//! call, `Reader::try_for_each_view` a stretch of them in one loop), each checked as it is
//! taken (framing, offsets, CRC, the next batch's framing). Damage anywhere among them is met
//! at the damaged batch: every record before it is returned, then `Error::Corrupt` inside
//! that batch, by every way of reading, from the start of the log and from starts nearby. A
//! property test holds the fast paths to the long way (a reader with a byte budget never
//! takes them) on random logs with a random bit flipped, scanning whole or breaking and
//! resuming.

mod common;

use proptest::prelude::*;
use topiclog::config::LogConfig;
use topiclog::record::Record;
use topiclog::{Error, Partition};

/// One-record batches of about 170 bytes each.
const BATCHES: i64 = 900;

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// A value byte flipped: the CRC no longer holds.
    Value,
    /// The CRC field itself changed.
    Crc,
    /// The base offset lowered onto the batch before (outside the CRC).
    BaseBelow,
    /// The base offset raised past the segment's end (outside the CRC).
    BaseBeyond,
    /// The magic byte changed.
    Magic,
    /// The attributes say a codec (inside the CRC).
    Attributes,
}

fn value(i: i64) -> Vec<u8> {
    format!("value {i:06} {}", "x".repeat(100)).into_bytes()
}

/// Offsets and values read from `from` with views, and the error that ended the read.
fn by_views(log: &Partition, from: i64) -> (Vec<(i64, Vec<u8>)>, Option<Error>) {
    let mut reader = log.read(from).expect("reader");
    let mut out = Vec::new();
    while let Some(view) = reader.next_view() {
        match view {
            Ok(v) => out.push((v.offset(), v.value().expect("value").to_vec())),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// The same with the iterator.
fn by_iterator(log: &Partition, from: i64) -> (Vec<(i64, Vec<u8>)>, Option<Error>) {
    let mut out = Vec::new();
    for record in log.read(from).expect("reader") {
        match record {
            Ok(r) => out.push((r.offset(), r.value().expect("value").to_vec())),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

#[test]
fn damage_inside_a_run_is_met_at_the_damaged_batch() {
    let written = tempfile::tempdir().expect("dir");
    let log = Partition::open(written.path(), LogConfig::default()).expect("open");
    for i in 0..BATCHES {
        log.append(Record::new(&value(i))).expect("append");
    }
    log.close().expect("close");
    drop(log);
    let path = common::segment_path(written.path(), 0, "log");
    let spans = common::batch_spans(&path);
    assert_eq!(spans.len() as i64, BATCHES);
    let clean = std::fs::read(&path).expect("read");

    let kinds = [
        Damage::Value,
        Damage::Crc,
        Damage::BaseBelow,
        Damage::BaseBeyond,
        Damage::Magic,
        Damage::Attributes,
    ];
    for damaged in [1i64, 2, 150, 384, 385, 386, 771, BATCHES - 1] {
        for kind in kinds {
            let span = &spans[damaged as usize];
            let (start, end) = (span.start as usize, span.end as usize);
            let mut bytes = clean.clone();
            match kind {
                Damage::Value => bytes[end - 3] ^= 0x01,
                Damage::Crc => bytes[start + 17] ^= 0x80,
                Damage::BaseBelow => {
                    bytes[start..start + 8].copy_from_slice(&(damaged - 1).to_be_bytes())
                }
                Damage::BaseBeyond => {
                    bytes[start..start + 8].copy_from_slice(&(damaged + 1_000_000).to_be_bytes())
                }
                Damage::Magic => bytes[start + 16] = 1,
                Damage::Attributes => bytes[start + 22] |= 0x01,
            }
            let dir = tempfile::tempdir().expect("dir");
            common::copy_dir(written.path(), dir.path());
            std::fs::write(common::segment_path(dir.path(), 0, "log"), &bytes).expect("damage");

            let log = Partition::open_read_only(dir.path(), LogConfig::default()).expect("open");
            for from in [0, (damaged - 200).max(0), damaged - 1, damaged] {
                let case = format!("{kind:?} at batch {damaged}, from {from}");
                let (views, view_err) = by_views(&log, from);
                let (iterated, iter_err) = by_iterator(&log, from);
                let offsets = |records: &[(i64, Vec<u8>)]| -> Vec<i64> {
                    records.iter().map(|r| r.0).collect()
                };
                assert_eq!(offsets(&views), offsets(&iterated), "{case}");
                assert!(views == iterated, "{case}: values differ");
                let (scanned, scan_err) =
                    common::drain_for_each(&mut log.read(from).expect("reader"), None);
                let scanned: Vec<(i64, Vec<u8>)> = scanned
                    .into_iter()
                    .map(|r| (r.offset, r.value.expect("value")))
                    .collect();
                assert_eq!(offsets(&scanned), offsets(&views), "{case}");
                assert!(scanned == views, "{case}: values differ");
                // An overlapping base offset is seen from the batch before, before any of its records
                // is served (the reader looks at the next batch's framing first).
                let served_to = match kind {
                    Damage::BaseBelow => damaged - 1,
                    _ => damaged,
                };
                let expected: Vec<(i64, Vec<u8>)> =
                    (from..served_to).map(|i| (i, value(i))).collect();
                assert_eq!(offsets(&views), offsets(&expected), "{case}");
                assert!(views == expected, "{case}: values differ");
                for err in [view_err, iter_err, scan_err] {
                    match err {
                        Some(Error::Corrupt { path, position, .. }) => {
                            assert_eq!(path.file_name(), Some("00000000000000000000.log".as_ref()));
                            assert!(
                                (span.start..span.end).contains(&position),
                                "{case}: position {position} outside {}..{}",
                                span.start,
                                span.end
                            );
                        }
                        other => panic!("{case}: {other:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn a_run_checked_ahead_still_ends_at_the_published_end() {
    // A reader that checked a run up to the published end, then more is appended: it reads the
    // new batches too, in order, with none twice.
    let dir = tempfile::tempdir().expect("dir");
    let log = Partition::open(
        dir.path(),
        LogConfig::builder()
            .flush_messages(i64::MAX)
            .build()
            .expect("config"),
    )
    .expect("open");
    let mut reader = log.read(0).expect("reader");
    let mut next = 0i64;
    for round in 0..50i64 {
        for i in 0..round * 7 {
            log.append(Record::new(&value(next + i))).expect("append");
        }
        let appended = next + round * 7;
        if round % 2 == 0 {
            while let Some(view) = reader.next_view() {
                let view = view.expect("record");
                assert_eq!(view.offset(), next);
                assert_eq!(view.value(), Some(&value(next)[..]));
                next += 1;
            }
        } else {
            // A scan stops at the end the same way, and the next round goes on after it.
            let flow = reader
                .try_for_each_view(|view| {
                    assert_eq!(view.offset(), next);
                    assert_eq!(view.value(), Some(&value(next)[..]));
                    next += 1;
                    std::ops::ControlFlow::<()>::Continue(())
                })
                .expect("records");
            assert!(flow.is_continue());
        }
        assert_eq!(next, appended, "round {round}");
    }
}

/// What a read returned: offsets and values, then how it ended (`None`: at the end).
type Outcome = (Vec<(i64, Vec<u8>)>, Option<String>);

/// Everything `reader` returns through `next_view`, and its error as text.
fn drain(mut reader: topiclog::partition::Reader) -> Outcome {
    let mut out = Vec::new();
    while let Some(view) = reader.next_view() {
        match view {
            Ok(v) => out.push((v.offset(), v.value().unwrap_or_default().to_vec())),
            Err(e) => return (out, Some(format!("{e:?}"))),
        }
    }
    (out, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_reads_what_the_long_way_reads(
        batches in prop::collection::vec((1usize..4, 0usize..300), 1..160),
        segment_bytes in prop::sample::select(vec![2048i32, 16 * 1024, 1 << 20]),
        index_interval in prop::sample::select(vec![128i32, 4096]),
        flip in prop::option::of((any::<prop::sample::Index>(), 0u8..8)),
        start in any::<prop::sample::Index>(),
        pause in prop::option::of(0usize..40),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let config = LogConfig::builder()
            .segment_bytes(segment_bytes)
            .index_interval_bytes(index_interval)
            .flush_messages(i64::MAX)
            .build()
            .expect("config");
        let log = Partition::open(dir.path(), config.clone()).expect("open");
        let mut next = 0i64;
        for &(count, len) in &batches {
            let values: Vec<Vec<u8>> = (0..count)
                .map(|i| vec![b'a' + ((next as usize + i) % 26) as u8; len])
                .collect();
            let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
            log.append_batch(&records).expect("append");
            next += count as i64;
        }
        log.close().expect("close");
        drop(log);
        if let Some((at, bit)) = flip {
            let logs = common::segment_logs(dir.path());
            let all: u64 = logs.iter().map(|p| std::fs::metadata(p).expect("len").len()).sum();
            let mut at = at.index(all as usize);
            for path in logs {
                let mut bytes = std::fs::read(&path).expect("read");
                if at < bytes.len() {
                    bytes[at] ^= 1 << bit;
                    std::fs::write(&path, &bytes).expect("write");
                    break;
                }
                at -= bytes.len();
            }
        }
        let Ok(log) = Partition::open_read_only(dir.path(), config) else {
            return Ok(()); // a refused open is the damage matrix's concern
        };
        let end = log.next_offset();
        for from in [0, start.index(end as usize + 1) as i64] {
            let (Ok(fast), Ok(long)) = (log.read(from), log.read_bounded(from, usize::MAX)) else {
                continue;
            };
            let (fast, long) = (drain(fast), drain(long));
            prop_assert_eq!(&fast.0, &long.0, "records from {}", from);
            prop_assert_eq!(&fast.1, &long.1, "how the read from {} ended", from);
            let Ok(mut scan) = log.read(from) else {
                continue;
            };
            let (scanned, scan_err) = common::drain_for_each(&mut scan, pause);
            let scanned: Vec<(i64, Vec<u8>)> = scanned
                .into_iter()
                .map(|r| (r.offset, r.value.unwrap_or_default()))
                .collect();
            prop_assert_eq!(&scanned, &long.0, "scanned records from {}", from);
            prop_assert_eq!(
                &scan_err.map(|e| format!("{e:?}")),
                &long.1,
                "how the scan from {} ended",
                from
            );
        }
    }
}
