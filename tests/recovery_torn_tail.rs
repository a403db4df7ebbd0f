//! Recovery of a torn tail in the active segment after a crash. A partition with several
//! segments is written and dropped without `close` (the crash: the write buffer reaches the
//! file, no clean-shutdown marker is written). Then, each time on a fresh copy of the directory,
//! the active segment's `.log` is damaged the way a crash or a bad disk leaves it: cut at every
//! byte position inside its last batch (and at its first byte, which loses the batch whole and
//! is no cut), extended with a zero-filled tail, extended with garbage (random bytes, a repeated
//! batch, a batch with a bad CRC, a header claiming a huge length), or damaged in a batch in its
//! middle. Each reopen must keep exactly the batches before the damage (every record read back
//! with its contents), cut the file there, report the cut in `recovery().truncations` (file,
//! position of the first bad batch, bytes removed), set `next_offset()` to the end of the kept
//! data, and take new appends at that offset; a second crash and reopen then cuts nothing.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::{
    BatchSpan, append_batch_range, append_range, assert_range, batch_spans, copy_dir, read_all,
    segment_path,
};
use tempfile::TempDir;
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::error::Corruption;
use topiclog::partition::RecoveryReport;

/// Records appended one per batch, then `LAST_BATCH` records in one final batch.
const SINGLES: i64 = 130;
const LAST_BATCH: i64 = 3;
const END: i64 = SINGLES + LAST_BATCH;

/// Small segments (several of them), and small index preallocation so that copying a crashed
/// directory (whose active indexes keep their preallocated length) stays cheap.
fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(4096)
        .index_interval_bytes(256)
        .segment_index_bytes(4096)
        .build()
        .expect("valid config")
}

/// A written partition directory and what it holds.
struct Written {
    dir: TempDir,
    segments: Vec<i64>,
    active: i64,
}

impl Written {
    fn active_log(&self) -> PathBuf {
        segment_path(self.dir.path(), self.active, "log")
    }
}

/// Writes records `0..END` (the last `LAST_BATCH` as one batch), then crashes (drop without
/// close) or closes cleanly. With `flush_sealed`, a `flush` before the last batch puts the
/// sealed segments below the recovery point, so a reopen trusts them and scans only the active
/// segment.
fn write_partition(close: bool, flush_sealed: bool) -> Written {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config()).expect("open");
    append_range(&log, 0, SINGLES);
    if flush_sealed {
        log.flush().expect("flush");
    }
    let before = log.segment_base_offsets();
    append_batch_range(&log, SINGLES, END);
    let segments = log.segment_base_offsets();
    assert_eq!(before, segments, "the last batch joins the active segment");
    if close {
        log.close().expect("close");
    }
    drop(log);
    assert!(segments.len() >= 4, "want several segments: {segments:?}");
    let active = *segments.last().expect("a segment");
    let written = Written {
        dir,
        segments,
        active,
    };
    let spans = batch_spans(&written.active_log());
    assert!(
        spans.len() >= 4,
        "want several batches in the active segment"
    );
    let last = spans.last().expect("a batch");
    assert_eq!((last.base_offset, last.last_offset), (SINGLES, END - 1));
    written
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for set_len")
        .set_len(len)
        .expect("set_len");
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append")
        .write_all(bytes)
        .expect("append bytes");
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Opens the damaged directory `dir` and checks that recovery cut `log_file` at `position`,
/// removing `removed` bytes, and that records `0..kept_end` (and only those) remain. Then
/// appends three records, reads everything back and, with `reopen_again`, crashes again and
/// checks that a second reopen cuts nothing. Returns the first reopen's report.
fn assert_recovered(
    dir: &Path,
    segments: &[i64],
    log_file: &Path,
    position: u64,
    removed: u64,
    kept_end: i64,
    reopen_again: bool,
) -> RecoveryReport {
    let log = Partition::open(dir, config()).expect("reopen after damage");
    let report = log.recovery().clone();
    let context = format!("cut at {position}, {removed} bytes removed: {report:?}");
    assert!(!report.clean_shutdown, "{context}");
    assert!(report.unclean_reason.is_some(), "{context}");
    assert_eq!(report.truncations.len(), 1, "{context}");
    let t = &report.truncations[0];
    assert_eq!(t.path, log_file, "{context}");
    assert_eq!(t.position, position, "{context}");
    assert_eq!(t.bytes_removed, removed, "{context}");
    assert!(report.removed_segments.is_empty(), "{context}");
    assert_eq!(report.bytes_lost(), removed, "{context}");
    assert_eq!(
        fs::metadata(log_file).expect("log").len(),
        position,
        "{context}: file cut"
    );
    assert_eq!(log.segment_base_offsets(), segments, "{context}");
    assert_eq!(log.log_start_offset(), 0, "{context}");
    assert_eq!(log.next_offset(), kept_end, "{context}");
    assert_range(&read_all(&log, 0), 0, kept_end);
    assert_range(&read_all(&log, kept_end - 1), kept_end - 1, kept_end);

    append_range(&log, kept_end, kept_end + 3);
    assert_eq!(log.next_offset(), kept_end + 3, "{context}");
    assert_range(&read_all(&log, 0), 0, kept_end + 3);
    drop(log); // crash again
    if !reopen_again {
        return report;
    }

    let log = Partition::open(dir, config()).expect("second reopen");
    let again = log.recovery();
    assert!(again.truncations.is_empty(), "{context}: {again:?}");
    assert!(again.removed_segments.is_empty(), "{context}: {again:?}");
    assert_eq!(log.next_offset(), kept_end + 3, "{context}");
    assert_range(&read_all(&log, 0), 0, kept_end + 3);
    report
}

/// Why the single cut of `report` was made.
fn reason(report: &RecoveryReport) -> &Corruption {
    &report.truncations[0].reason
}

/// The sealed segments are flushed first (see [`write_partition`]): each of the hundreds of
/// reopens then scans only the active segment, which keeps the test fast.
#[test]
fn every_cut_inside_the_last_batch_is_recovered() {
    let written = write_partition(false, true);
    let spans = batch_spans(&written.active_log());
    let last: BatchSpan = *spans.last().expect("a batch");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut cuts = 0;
    for cut in last.start + 1..last.end {
        let dir = scratch.path().join(format!("cut-{cut}"));
        copy_dir(written.dir.path(), &dir);
        let log_file = segment_path(&dir, written.active, "log");
        set_len(&log_file, cut);
        let report = assert_recovered(
            &dir,
            &written.segments,
            &log_file,
            last.start,
            cut - last.start,
            SINGLES,
            cuts % 16 == 0 || cut + 1 == last.end,
        );
        assert!(
            matches!(reason(&report), Corruption::Batch(_)),
            "cut at {cut}: {report:?}"
        );
        // Durable appends move the recovery point in memory; the checkpoint last recorded it
        // when the active segment began (the roll's commit).
        assert!(
            (written.active..=SINGLES).contains(&report.recovery_point),
            "sealed segments flushed: {report:?}"
        );
        assert_eq!(
            report.segments_scanned, 1,
            "only the active segment is scanned"
        );
        fs::remove_dir_all(&dir).expect("remove copy");
        cuts += 1;
    }
    assert!(cuts > 120, "a three-record batch spans well over 120 bytes");

    // Cut exactly at the batch's first byte: the batch is lost whole, nothing is torn.
    let dir = scratch.path().join("cut-at-start");
    copy_dir(written.dir.path(), &dir);
    set_len(&segment_path(&dir, written.active, "log"), last.start);
    let log = Partition::open(&dir, config()).expect("reopen");
    assert!(
        log.recovery().truncations.is_empty(),
        "{:?}",
        log.recovery()
    );
    assert_eq!(log.next_offset(), SINGLES);
    assert_range(&read_all(&log, 0), 0, SINGLES);
    append_range(&log, SINGLES, SINGLES + 3);
    assert_range(&read_all(&log, 0), 0, SINGLES + 3);
}

#[test]
fn zero_filled_tail_is_cut_and_reported() {
    for close in [false, true] {
        let written = write_partition(close, false);
        let log_file = written.active_log();
        let len = fs::metadata(&log_file).expect("log").len();
        append_bytes(&log_file, &[0u8; 4096]);
        let report = assert_recovered(
            written.dir.path(),
            &written.segments,
            &log_file,
            len,
            4096,
            END,
            true,
        );
        assert!(
            matches!(reason(&report), Corruption::Batch(_)),
            "{report:?}"
        );
    }
}

#[test]
fn garbage_after_valid_data_is_cut_and_reported() {
    let written = write_partition(false, false);
    let spans = batch_spans(&written.active_log());
    let last = *spans.last().expect("a batch");
    let last_bytes = fs::read(written.active_log()).expect("log")
        [last.start as usize..last.end as usize]
        .to_vec();

    // The last batch again: valid CRC, but its offsets repeat.
    let repeated = last_bytes.clone();
    // The last batch moved to the right offsets (the base offset is outside the CRC), with one
    // record byte flipped: it frames like a batch but fails its CRC.
    let mut bad_crc = last_bytes.clone();
    bad_crc[..8].copy_from_slice(&END.to_be_bytes());
    let middle = bad_crc.len() / 2 + 20;
    bad_crc[middle] ^= 0x5a;
    // A header claiming a batch of about 1 GiB that the file does not hold.
    let mut huge = last_bytes[..61].to_vec();
    huge[..8].copy_from_slice(&END.to_be_bytes());
    huge[8..12].copy_from_slice(&0x3fff_ffffi32.to_be_bytes());

    let cases: [(&str, Vec<u8>); 5] = [
        ("7 random bytes", noise(7, 7)),
        ("1000 random bytes", noise(1000, 1000)),
        ("repeated batch", repeated),
        ("batch with a bad CRC", bad_crc),
        ("header claiming 1 GiB", huge),
    ];
    let scratch = tempfile::tempdir().expect("tempdir");
    for (i, (name, garbage)) in cases.iter().enumerate() {
        let dir = scratch.path().join(format!("case-{i}"));
        copy_dir(written.dir.path(), &dir);
        let log_file = segment_path(&dir, written.active, "log");
        append_bytes(&log_file, garbage);
        let report = assert_recovered(
            &dir,
            &written.segments,
            &log_file,
            last.end,
            garbage.len() as u64,
            END,
            true,
        );
        if *name == "repeated batch" {
            assert!(
                matches!(reason(&report), Corruption::OffsetOutOfOrder { .. }),
                "{name}: {report:?}"
            );
        } else {
            assert!(
                matches!(reason(&report), Corruption::Batch(_)),
                "{name}: {report:?}"
            );
        }
    }
}

#[test]
fn damaged_batch_in_the_middle_of_the_active_segment_cuts_everything_after_it() {
    let written = write_partition(false, false);
    let spans = batch_spans(&written.active_log());
    let len = fs::metadata(written.active_log()).expect("log").len();
    let victim = spans[spans.len() / 2];
    assert!(
        victim.start > 0 && victim.end < len,
        "a batch in the middle"
    );
    let at = victim.start as usize;
    let size = (victim.end - victim.start) as usize;

    type Damage = fn(&mut [u8], usize, usize);
    let cases: [(&str, Damage); 4] = [
        ("record byte flipped", |b, at, size| {
            b[at + 61 + (size - 61) / 2] ^= 0x01;
        }),
        ("length zeroed", |b, at, _| {
            b[at + 8..at + 12].fill(0);
        }),
        ("length past the end", |b, at, _| {
            b[at + 8..at + 12].copy_from_slice(&0x00ff_ffffi32.to_be_bytes());
        }),
        ("a stretch never written", |b, at, size| {
            b[at + size / 2..at + size / 2 + 20].fill(0);
        }),
    ];
    let scratch = tempfile::tempdir().expect("tempdir");
    for (i, (name, damage)) in cases.iter().enumerate() {
        let dir = scratch.path().join(format!("case-{i}"));
        copy_dir(written.dir.path(), &dir);
        let log_file = segment_path(&dir, written.active, "log");
        let mut bytes = fs::read(&log_file).expect("log");
        damage(&mut bytes, at, size);
        fs::write(&log_file, &bytes).expect("write damaged log");
        let report = assert_recovered(
            &dir,
            &written.segments,
            &log_file,
            victim.start,
            len - victim.start,
            victim.base_offset,
            true,
        );
        assert!(
            matches!(reason(&report), Corruption::Batch(_)),
            "{name}: {report:?}"
        );
    }
}
