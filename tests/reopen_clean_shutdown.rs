//! Reopening after a clean `close`. A partition with several segments is written (single-record
//! and multi-record batches, `small_config`, the default 10 MiB index preallocation), its answers
//! recorded (every record, the first record of `read(o)` for every offset, `offset_for_timestamp`
//! at, between, before and after the records' timestamps), and closed. The tests prove that:
//! a reopen trusts the files without scanning any segment (`clean_shutdown`, no segment scanned,
//! nothing cut) and answers exactly as before, without writing anything until the next append;
//! `close` leaves every `.index`/`.timeindex` trimmed to whole entries (not the preallocated
//! length) whose entries point at real batches and end with the segment's largest timestamp,
//! and `.log` files that parse as whole CRC-valid batches to their last byte; any file that
//! disagrees with the clean-shutdown marker (a `.log` appended to, an index shortened, an extra
//! segment, a removed segment, a damaged marker) makes the open unclean, with a reason, while
//! the data still reads correctly; the first append after a reopen removes the marker from disk,
//! so a crash after it reopens unclean; and closing twice, or many close/reopen cycles, work.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;

use common::{
    BatchSpan, append_batch_range, append_range, assert_range, batch_spans, read_all, segment_path,
    small_config, snapshot,
};
use tempfile::TempDir;
use topiclog::config::{DEFAULT_SEGMENT_INDEX_BYTES, RecoveryOptions};
use topiclog::error::Corruption;
use topiclog::partition::{RecoveryReport, TimestampOffset};
use topiclog::{Error, OwnedRecord, Partition};

const MARKER: &str = ".topiclog_cleanshutdown";
const END: i64 = 360;

fn config() -> topiclog::config::LogConfig {
    small_config(4096)
}

/// Records `0..END`: one per batch, except `300..310`, which is one batch.
fn write(log: &Partition) {
    append_range(log, 0, 300);
    append_batch_range(log, 300, 310);
    append_range(log, 310, END);
}

/// What a partition answers.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    segments: Vec<i64>,
    log_start: i64,
    next_offset: i64,
    all: Vec<OwnedRecord>,
    firsts: Vec<Option<OwnedRecord>>,
    times: Vec<(i64, Option<TimestampOffset>)>,
}

fn answers(log: &Partition) -> Answers {
    let (start, end) = (log.log_start_offset(), log.next_offset());
    let firsts = (start..=end)
        .map(|o| {
            log.read(o)
                .expect("reader")
                .next()
                .map(|r| r.expect("record").to_owned_record())
        })
        .collect();
    let mut targets = vec![i64::MIN, -1, 0, 1_000 * end, i64::MAX];
    targets.extend((start..end).flat_map(|i| [1_000 * i, 1_000 * i - 500]));
    let times = targets
        .into_iter()
        .map(|t| (t, log.offset_for_timestamp(t).expect("timestamp lookup")))
        .collect();
    Answers {
        segments: log.segment_base_offsets(),
        log_start: start,
        next_offset: end,
        all: read_all(log, start),
        firsts,
        times,
    }
}

/// The answers for records `start..end` of the generated workload.
fn assert_answers_for(a: &Answers, start: i64, end: i64) {
    assert_eq!((a.log_start, a.next_offset), (start, end));
    assert_range(&a.all, start, end);
    for (o, first) in (start..).zip(&a.firsts) {
        assert_eq!(first.as_ref().map(|r| r.offset), (o < end).then_some(o));
    }
    for (t, hit) in &a.times {
        let want = (start..end)
            .find(|i| 1_000 * i >= *t)
            .map(|i| TimestampOffset {
                offset: i,
                timestamp: 1_000 * i,
            });
        assert_eq!(*hit, want, "offset_for_timestamp({t})");
    }
}

/// A closed partition with records `0..END` and its answers.
fn closed() -> (TempDir, Answers) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config()).expect("open");
    write(&log);
    let answers = answers(&log);
    assert!(answers.segments.len() >= 5, "several segments");
    assert_answers_for(&answers, 0, END);
    log.close().expect("close");
    (dir, answers)
}

fn assert_clean(report: &RecoveryReport) {
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(report.unclean_reason, None, "{report:?}");
    assert_eq!(report.segments_scanned, 0, "{report:?}");
    assert!(report.truncations.is_empty(), "{report:?}");
    assert!(report.removed_segments.is_empty(), "{report:?}");
    assert!(report.removed_files.is_empty(), "{report:?}");
    assert_eq!(report.bytes_lost(), 0, "{report:?}");
}

/// Unclean, with a reason. (Scanning may still be skipped: segments the recovery checkpoint
/// lists as flushed are trusted when their files match it.)
fn assert_unclean(report: &RecoveryReport, context: &str) {
    assert!(!report.clean_shutdown, "{context}: {report:?}");
    assert!(report.unclean_reason.is_some(), "{context}: {report:?}");
}

#[test]
fn reopen_after_close_scans_nothing_and_answers_the_same() {
    let (dir, before) = closed();
    let files_after_close = snapshot(dir.path());
    assert!(files_after_close.contains_key(MARKER));

    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert_eq!(answers(&log), before);
    drop(log);
    assert_eq!(
        snapshot(dir.path()),
        files_after_close,
        "a clean reopen that only reads changes no file"
    );

    // Still clean, and the log goes on where it ended.
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    append_range(&log, END, END + 20);
    assert_range(&read_all(&log, 0), 0, END + 20);
    log.close().expect("close");
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert_answers_for(&answers(&log), 0, END + 20);
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes(b.try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b.try_into().expect("8 bytes"))
}

/// Checks a closed segment's three files: whole batches with contiguous offsets, index entries
/// that point at batch starts keyed by those batches' last offsets, and a time index whose last
/// entry is the segment's largest timestamp. Returns the segment's batches.
fn check_segment_files(dir: &Path, base: i64) -> Vec<BatchSpan> {
    let spans = batch_spans(&segment_path(dir, base, "log"));
    assert!(!spans.is_empty(), "segment {base} is empty");
    assert_eq!(spans[0].base_offset, base);
    for pair in spans.windows(2) {
        assert_eq!(
            pair[1].base_offset,
            pair[0].last_offset + 1,
            "segment {base}"
        );
    }

    let index = fs::read(segment_path(dir, base, "index")).expect("index");
    let times = fs::read(segment_path(dir, base, "timeindex")).expect("timeindex");
    assert_eq!(index.len() % 8, 0, "segment {base}: .index length");
    assert_eq!(times.len() % 12, 0, "segment {base}: .timeindex length");
    let preallocated = DEFAULT_SEGMENT_INDEX_BYTES as usize;
    assert!(index.len() < preallocated / 1024, "segment {base}: .index");
    assert!(
        times.len() < preallocated / 1024,
        "segment {base}: .timeindex"
    );

    let mut last_position = -1;
    for entry in index.chunks(8) {
        let (offset, position) = (base + i64::from(be_i32(&entry[..4])), be_i32(&entry[4..]));
        assert!(position > last_position, "segment {base}: positions rise");
        last_position = position;
        let span = spans
            .iter()
            .find(|s| s.start == position as u64)
            .unwrap_or_else(|| panic!("segment {base}: entry at {position} is not a batch start"));
        assert_eq!(span.last_offset, offset, "segment {base}: entry key");
    }
    assert!(
        !times.is_empty(),
        "segment {base}: the final time entry is always written"
    );
    let mut last_ts = i64::MIN;
    for entry in times.chunks(12) {
        let ts = be_i64(&entry[..8]);
        assert!(ts > last_ts, "segment {base}: timestamps rise");
        last_ts = ts;
    }
    let last_entry = &times[times.len() - 12..];
    let last_offset = spans.last().expect("a batch").last_offset;
    assert_eq!(
        (
            be_i64(&last_entry[..8]),
            base + i64::from(be_i32(&last_entry[8..]))
        ),
        (1_000 * last_offset, last_offset),
        "segment {base}: last time entry holds the largest timestamp"
    );
    spans
}

#[test]
fn close_trims_index_files_and_leaves_only_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config()).expect("open");
    write(&log);
    let segments = log.segment_base_offsets();
    let active = *segments.last().expect("segments");
    // While open, the active segment's indexes have their preallocated length.
    let index_bytes = DEFAULT_SEGMENT_INDEX_BYTES as u64;
    let len = |ext| {
        fs::metadata(segment_path(dir.path(), active, ext))
            .expect("file")
            .len()
    };
    assert_eq!(len("index"), index_bytes);
    assert_eq!(len("timeindex"), index_bytes / 12 * 12);
    log.close().expect("close");
    drop(log);

    let mut next = 0;
    let mut entries_in_active = 0;
    for &base in &segments {
        assert_eq!(base, next, "segments are contiguous");
        let spans = check_segment_files(dir.path(), base);
        next = spans.last().expect("a batch").last_offset + 1;
        if base == active {
            entries_in_active = len("index") / 8;
        }
    }
    assert_eq!(next, END);
    assert!(
        entries_in_active >= 3,
        "the active segment's index was trimmed, not emptied: {entries_in_active}"
    );
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}

fn shorten(path: &Path, by: u64) {
    let len = fs::metadata(path).expect("file").len();
    assert!(len >= by, "{} too short", path.display());
    set_len(path, len - by);
}

fn remove_segment(dir: &Path, base: i64) {
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(segment_path(dir, base, ext)).expect("remove segment file");
    }
}

#[test]
fn files_disagreeing_with_the_marker_make_the_open_unclean() {
    type Change = fn(&Path, &[i64]);
    let cases: [(&str, Change); 8] = [
        ("active .log appended to", |dir, segs| {
            let path = segment_path(dir, *segs.last().expect("active"), "log");
            let mut file = OpenOptions::new().append(true).open(path).expect("open");
            file.write_all(&[0u8; 100]).expect("append");
        }),
        ("active .index shortened", |dir, segs| {
            shorten(
                &segment_path(dir, *segs.last().expect("active"), "index"),
                8,
            );
        }),
        ("active .timeindex shortened", |dir, segs| {
            shorten(
                &segment_path(dir, *segs.last().expect("active"), "timeindex"),
                12,
            );
        }),
        ("sealed .index shortened", |dir, segs| {
            shorten(&segment_path(dir, segs[1], "index"), 8);
        }),
        ("extra segment after the end", |dir, _| {
            fs::write(segment_path(dir, END, "log"), b"").expect("extra segment");
        }),
        ("first segment removed", |dir, segs| {
            remove_segment(dir, segs[0]);
        }),
        ("active segment removed", |dir, segs| {
            remove_segment(dir, *segs.last().expect("active"));
        }),
        ("marker damaged", |dir, _| {
            let path = dir.join(MARKER);
            let mut bytes = fs::read(&path).expect("marker");
            let i = bytes.len() / 2;
            bytes[i] = if bytes[i] == b'7' { b'8' } else { b'7' };
            fs::write(&path, bytes).expect("write marker");
        }),
    ];
    for (name, change) in cases {
        let (dir, before) = closed();
        let segments = &before.segments;
        let active = *segments.last().expect("active");
        change(dir.path(), segments);

        let options = if name == "active segment removed" || name == "first segment removed" {
            // Its records were fsynced by the close: their loss is corruption, not a torn
            // write, and only an explicit opt-in opens without them.
            match Partition::open(dir.path(), config()) {
                Err(Error::Corrupt {
                    kind: Corruption::FlushedDataMissing { .. } | Corruption::SegmentMissing { .. },
                    ..
                }) => {}
                other => panic!("{name}: expected FlushedDataMissing, got {other:?}"),
            }
            RecoveryOptions::new().truncate_corrupt(true)
        } else {
            RecoveryOptions::new()
        };
        let log = Partition::open_with(dir.path(), config(), options).expect(name);
        assert_unclean(log.recovery(), name);
        let (start, end, segs) = match name {
            "first segment removed" => (segments[1], END, segments[1..].to_vec()),
            "active segment removed" => (0, active, segments[..segments.len() - 1].to_vec()),
            "extra segment after the end" => (0, END, [&segments[..], &[END]].concat()),
            _ => (0, END, segments.clone()),
        };
        let now = answers(&log);
        assert_eq!(now.segments, segs, "{name}");
        assert_answers_for(&now, start, end);
        if start == 0 && end == END {
            assert_eq!(now.all, before.all, "{name}");
            assert_eq!(now.firsts, before.firsts, "{name}");
            assert_eq!(now.times, before.times, "{name}");
        }
        if name == "active .log appended to" {
            let cut = &log.recovery().truncations;
            assert_eq!(cut.len(), 1, "{name}");
            assert_eq!(cut[0].bytes_removed, 100, "{name}");
        } else if name == "active segment removed" || name == "first segment removed" {
            let cut = &log.recovery().truncations;
            assert!(
                cut.len() == 1 && cut[0].flushed,
                "{name}: the loss is reported"
            );
        } else {
            assert!(log.recovery().truncations.is_empty(), "{name}");
        }

        // The log goes on, and the next close is trusted again.
        append_range(&log, end, end + 5);
        log.close().expect(name);
        drop(log);
        let log = Partition::open(dir.path(), config()).expect(name);
        assert_clean(log.recovery());
        assert_answers_for(&answers(&log), start, end + 5);
    }
}

#[test]
fn first_append_after_reopen_removes_the_marker() {
    let (dir, _) = closed();
    let marker = dir.path().join(MARKER);
    assert!(marker.exists());

    // A session that only reads keeps the marker valid.
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert_range(&read_all(&log, 0), 0, END);
    drop(log);
    assert!(marker.exists());

    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert!(marker.exists());
    assert_eq!(
        log.append(topiclog::record::Record::new(b"x")).ok(),
        Some(END)
    );
    assert!(
        !marker.exists(),
        "the marker is gone as soon as the log changes"
    );
    append_range(&log, END + 1, END + 10);
    drop(log); // crash

    let log = Partition::open(dir.path(), config()).expect("reopen after crash");
    assert_unclean(log.recovery(), "crash after appends");
    assert!(log.recovery().truncations.is_empty());
    assert_eq!(log.next_offset(), END + 10);
    let all = read_all(&log, 0);
    assert_range(&all[..END as usize], 0, END);
    assert_eq!(all[END as usize].value.as_deref(), Some(&b"x"[..]));
    assert_range(&all[END as usize + 1..], END + 1, END + 10);
}

#[test]
fn closing_twice_and_many_reopen_cycles_work() {
    let (dir, before) = closed();
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    log.close().expect("first close");
    log.close().expect("second close is a no-op");
    assert!(matches!(
        log.append(topiclog::record::Record::new(b"late")),
        Err(Error::Closed)
    ));
    assert_eq!(answers(&log), before, "a closed partition still reads");
    drop(log);

    let mut end = END;
    for cycle in 0..4 {
        let log = Partition::open(dir.path(), config()).expect("reopen");
        assert_clean(log.recovery());
        assert_eq!(log.next_offset(), end, "cycle {cycle}");
        assert_range(&read_all(&log, 0), 0, end);
        append_range(&log, end, end + 40);
        end += 40;
        log.close().expect("close");
        log.close().expect("close again");
    }
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert_answers_for(&answers(&log), 0, end);
    for base in log.segment_base_offsets() {
        check_segment_files(dir.path(), base);
    }
}

#[test]
fn empty_partition_closes_and_reopens_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config()).expect("open");
    log.close().expect("close");
    drop(log);
    let log = Partition::open(dir.path(), config()).expect("reopen");
    assert_clean(log.recovery());
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.read(0).expect("reader").count(), 0);
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), None);
    append_range(&log, 0, 3);
    assert_range(&read_all(&log, 0), 0, 3);
}
