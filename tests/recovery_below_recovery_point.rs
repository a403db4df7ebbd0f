//! Flushed data is never dropped silently. A partition (with Kafka's lazy flush policy, so that
//! appends after a flush stay unflushed) is written across several segments,
//! `flush`ed (which records every sealed segment, with its file lengths and offsets, and the
//! active segment's durable length in the recovery checkpoint), given a few more appends, and
//! dropped without close (a crash). Then a segment is damaged (a record byte flipped, the CRC
//! field changed, the magic byte changed, the length field zeroed; bytes removed or added).
//!
//! Below the recovery point, segments are trusted as recorded without being read, which keeps
//! opening fast. Damage that keeps the file's length is caught by the CRC check on every read:
//! the records before it read back, then `Error::Corrupt` names the file and a byte inside the
//! damaged batch; nothing is cut. A flushed segment whose length changed is scanned: damage
//! within its flushed length, or bytes missing from it, fail the open with `Error::Corrupt` and
//! change no file; bytes added after its flushed end are cut and reported. Above the recovery
//! point (the active segment, or a segment sealed after the flush) damage is cut at the damaged
//! batch, the cut and any later segments removed are reported, and the log goes on from the last
//! good offset. Damage in the active segment below its recorded durable length fails the open.
//! With `RecoveryOptions::truncate_corrupt`, damage below the recovery point is cut instead,
//! and the cut is reported as flushed data lost.

mod common;

use std::fs;
use std::path::Path;

use common::{
    BatchSpan, append_range, assert_range, batch_spans, lazy_config, read_all, segment_path,
    snapshot,
};
use tempfile::TempDir;
use topiclog::config::RecoveryOptions;
use topiclog::error::Corruption;
use topiclog::{Error, Partition};

/// Records flushed, and the records appended after the flush.
const FLUSHED: i64 = 300;
const END: i64 = FLUSHED + 12;

/// A crashed partition: its segments, the recovery point its flush left (`FLUSHED`) and the
/// base of the segment that was active at the flush.
struct Crashed {
    dir: TempDir,
    segments: Vec<i64>,
    recovery_point: i64,
    active_at_flush: i64,
}

/// Writes `0..FLUSHED`, flushes, writes `FLUSHED..end` and crashes.
fn crashed(end: i64) -> Crashed {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), lazy_config(4096)).expect("open");
    append_range(&log, 0, FLUSHED);
    log.flush().expect("flush");
    let active_at_flush = *log.segment_base_offsets().last().expect("segments");
    assert!(
        active_at_flush < FLUSHED,
        "the active segment has flushed records"
    );
    let recovery_point = FLUSHED;
    append_range(&log, FLUSHED, end);
    let segments = log.segment_base_offsets();
    drop(log);
    assert!(
        segments.iter().filter(|&&b| b < recovery_point).count() >= 4,
        "several flushed segments: {segments:?}"
    );
    Crashed {
        dir,
        segments,
        recovery_point,
        active_at_flush,
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    RecordByte,
    Crc,
    Magic,
    LengthZeroed,
}

const DAMAGES: [Damage; 4] = [
    Damage::RecordByte,
    Damage::Crc,
    Damage::Magic,
    Damage::LengthZeroed,
];

/// Damages the batch `span` of `log_file` in place (same file length).
fn damage(log_file: &Path, span: BatchSpan, how: Damage) {
    let mut bytes = fs::read(log_file).expect("log");
    let at = span.start as usize;
    let size = (span.end - span.start) as usize;
    match how {
        Damage::RecordByte => bytes[at + 61 + (size - 61) / 2] ^= 0x10,
        Damage::Crc => bytes[at + 17] ^= 0xff,
        Damage::Magic => bytes[at + 16] = 1,
        Damage::LengthZeroed => bytes[at + 8..at + 12].fill(0),
    }
    fs::write(log_file, bytes).expect("write damaged log");
}

/// The batch holding the middle byte of `log_file`.
fn middle_batch(log_file: &Path) -> BatchSpan {
    let spans = batch_spans(log_file);
    let len = spans.last().expect("a batch").end;
    let span = *spans
        .iter()
        .find(|s| s.start <= len / 2 && len / 2 < s.end)
        .expect("a batch holds the middle byte");
    assert!(
        span.start > 0 && span.end < len,
        "not the first nor the last"
    );
    span
}

/// Opening must fail with `Error::Corrupt` inside `span` of `log_file`, changing no file.
fn assert_open_fails(c: &Crashed, log_file: &Path, span: BatchSpan, context: &str) {
    if let Err(why) = open_fails(c, log_file, span) {
        panic!("{context}: {why}");
    }
}

/// `Err` says how opening twice did not fail as [`assert_open_fails`] requires.
fn open_fails(c: &Crashed, log_file: &Path, span: BatchSpan) -> Result<(), String> {
    let before = snapshot(c.dir.path());
    for attempt in 0..2 {
        match Partition::open(c.dir.path(), lazy_config(4096)) {
            Err(Error::Corrupt { path, position, .. }) => {
                if path != log_file || !(span.start..span.end).contains(&position) {
                    return Err(format!(
                        "Corrupt names {} at {position}, not the batch {span:?}",
                        path.display()
                    ));
                }
            }
            Err(e) => return Err(format!("expected Corrupt, got {e}")),
            Ok(log) => {
                return Err(format!(
                    "attempt {attempt}: open succeeded: {:?}",
                    log.recovery()
                ));
            }
        }
        if snapshot(c.dir.path()) != before {
            return Err("a failed open changed files".into());
        }
    }
    Ok(())
}

#[test]
fn damage_within_the_flushed_length_of_a_resized_segment_fails_the_open() {
    for how in DAMAGES {
        let c = crashed(END);
        let victim = c.segments[1];
        let log_file = segment_path(c.dir.path(), victim, "log");
        let span = middle_batch(&log_file);
        damage(&log_file, span, how);
        // One more byte: the length no longer matches the checkpoint, so the segment is scanned.
        let mut bytes = fs::read(&log_file).expect("log");
        bytes.push(0);
        fs::write(&log_file, bytes).expect("write");
        assert_open_fails(&c, &log_file, span, &format!("{how:?} in the middle"));
    }
}

#[test]
fn a_flushed_segment_missing_bytes_fails_the_open() {
    // Cut inside its last batch, then exactly at the start of its last batch.
    for whole_batch in [false, true] {
        let c = crashed(END);
        let victim = c.segments[1];
        let log_file = segment_path(c.dir.path(), victim, "log");
        let last = *batch_spans(&log_file).last().expect("a batch");
        let cut = if whole_batch {
            last.start
        } else {
            last.start + 30
        };
        fs::OpenOptions::new()
            .write(true)
            .open(&log_file)
            .expect("open")
            .set_len(cut)
            .expect("cut");
        let before = snapshot(c.dir.path());
        match Partition::open(c.dir.path(), lazy_config(4096)) {
            Err(Error::Corrupt {
                path,
                position,
                kind,
            }) => {
                assert_eq!(path, log_file);
                assert_eq!(position, last.start, "whole_batch {whole_batch}: {kind}");
                if whole_batch {
                    assert!(
                        matches!(kind, Corruption::FlushedDataMissing { .. }),
                        "{kind}"
                    );
                }
            }
            other => panic!("whole_batch {whole_batch}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            snapshot(c.dir.path()),
            before,
            "a failed open changes no file"
        );
    }
}

#[test]
fn bytes_after_a_flushed_segments_end_are_cut_and_reported() {
    let c = crashed(END);
    let victim = c.segments[2];
    let log_file = segment_path(c.dir.path(), victim, "log");
    let len = fs::metadata(&log_file).expect("log").len();
    let mut bytes = fs::read(&log_file).expect("log");
    bytes.extend_from_slice(&[0xab; 100]);
    fs::write(&log_file, bytes).expect("write");
    let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("open");
    let report = log.recovery();
    assert_eq!(report.truncations.len(), 1, "{report:?}");
    let cut = &report.truncations[0];
    assert_eq!(
        (cut.path.as_path(), cut.position, cut.bytes_removed),
        (log_file.as_path(), len, 100)
    );
    assert_eq!(
        cut.reason,
        Corruption::BeyondFlushedEnd { flushed_size: len }
    );
    assert!(report.removed_segments.is_empty());
    assert_eq!(fs::metadata(&log_file).expect("log").len(), len);
    assert_eq!(log.next_offset(), END);
    assert_range(&read_all(&log, 0), 0, END);
}

#[test]
fn flushed_segments_are_not_read_at_open() {
    let c = crashed(END);
    let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("open");
    let report = log.recovery();
    assert_eq!(
        report.segments_scanned, 1,
        "only the active segment: {report:?}"
    );
    assert_eq!(report.recovery_point, c.recovery_point);
    assert_range(&read_all(&log, 0), 0, END);
}

/// Damage that keeps a flushed segment's length is never served as valid and never cut: the
/// open trusts the segment, and reading reaches the batch and fails there with
/// `Error::Corrupt`, after returning every record before it.
#[test]
fn damage_in_a_flushed_segment_is_never_read_as_valid() {
    for how in DAMAGES {
        let c = crashed(END);
        let victim = c.segments[2];
        let log_file = segment_path(c.dir.path(), victim, "log");
        let span = middle_batch(&log_file);
        damage(&log_file, span, how);
        let log = match Partition::open(c.dir.path(), lazy_config(4096)) {
            Err(Error::Corrupt { path, position, .. }) => {
                assert_eq!(path, log_file, "{how:?}");
                assert!((span.start..span.end).contains(&position), "{how:?}");
                continue;
            }
            Err(e) => panic!("{how:?}: {e}"),
            Ok(log) => log,
        };
        assert!(log.recovery().truncations.is_empty(), "{how:?}");
        assert!(log.recovery().removed_segments.is_empty(), "{how:?}");
        assert_eq!(log.next_offset(), END, "{how:?}: nothing dropped");
        let mut reader = log.read(0).expect("reader");
        let mut good = Vec::new();
        let failure = loop {
            match reader.next() {
                Some(Ok(record)) => good.push(record.to_owned_record()),
                Some(Err(e)) => break e,
                None => panic!("{how:?}: the damaged batch was read as valid"),
            }
        };
        assert_range(&good, 0, span.base_offset);
        match failure {
            Error::Corrupt { path, position, .. } => {
                assert_eq!(path, log_file, "{how:?}");
                assert!((span.start..span.end).contains(&position), "{how:?}");
            }
            other => panic!("{how:?}: expected Corrupt, got {other}"),
        }
        // The segments after it still read.
        let next = c.segments[3];
        assert_range(&read_all(&log, next), next, END);
    }
}

#[test]
fn damage_in_the_active_segment_above_the_recovery_point_is_cut() {
    for how in DAMAGES {
        let c = crashed(END);
        let active = *c.segments.last().expect("segments");
        assert_eq!(active, c.active_at_flush, "no roll after the flush");
        let log_file = segment_path(c.dir.path(), active, "log");
        let spans = batch_spans(&log_file);
        let above: Vec<_> = spans
            .iter()
            .filter(|s| s.base_offset >= c.recovery_point)
            .collect();
        assert!(above.len() >= 5, "batches after the flush");
        let span = *above[above.len() / 2];
        let len = spans.last().expect("a batch").end;
        damage(&log_file, span, how);

        let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("open");
        let report = log.recovery().clone();
        assert_eq!(report.recovery_point, c.recovery_point, "{how:?}");
        assert_eq!(report.segments_scanned, 1, "{how:?}: {report:?}");
        assert_eq!(report.truncations.len(), 1, "{how:?}: {report:?}");
        let cut = &report.truncations[0];
        assert_eq!(cut.path, log_file, "{how:?}");
        assert_eq!(cut.position, span.start, "{how:?}");
        assert_eq!(cut.bytes_removed, len - span.start, "{how:?}");
        assert!(matches!(cut.reason, Corruption::Batch(_)), "{how:?}");
        assert!(!cut.flushed, "{how:?}: above the recovery point");
        assert!(report.removed_segments.is_empty(), "{how:?}");
        // The whole batches after the damaged one (as a power loss leaves a hole) are listed.
        let after: Vec<(u64, i64)> = spans
            .iter()
            .filter(|s| s.start > span.start)
            .map(|s| (s.start, s.base_offset))
            .collect();
        let listed: Vec<(u64, i64)> = report
            .batches_after_cut
            .iter()
            .map(|b| (b.position, b.base_offset))
            .collect();
        assert_eq!(listed, after, "{how:?}");
        assert_eq!(fs::metadata(&log_file).expect("log").len(), span.start);
        assert_eq!(log.segment_base_offsets(), c.segments, "{how:?}");
        assert_eq!(log.next_offset(), span.base_offset, "{how:?}");
        assert_range(&read_all(&log, 0), 0, span.base_offset);
        append_range(&log, span.base_offset, span.base_offset + 5);
        assert_range(&read_all(&log, 0), 0, span.base_offset + 5);
    }
}

#[test]
fn damage_in_a_segment_sealed_after_the_flush_cuts_it_and_removes_later_segments() {
    for how in DAMAGES {
        let c = crashed(END + 250);
        let above: Vec<i64> = c
            .segments
            .iter()
            .copied()
            .filter(|&b| b > c.active_at_flush)
            .collect();
        assert!(
            above.len() >= 4,
            "segments rolled after the flush: {above:?}"
        );
        let victim = above[0];
        let log_file = segment_path(c.dir.path(), victim, "log");
        let span = middle_batch(&log_file);
        let len = fs::metadata(&log_file).expect("log").len();
        let later: Vec<(i64, u64)> = above[1..]
            .iter()
            .map(|&b| {
                let bytes = fs::metadata(segment_path(c.dir.path(), b, "log"))
                    .expect("log")
                    .len();
                (b, bytes)
            })
            .collect();
        damage(&log_file, span, how);

        let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("open");
        let report = log.recovery().clone();
        assert_eq!(report.recovery_point, c.recovery_point, "{how:?}");
        assert_eq!(report.truncations.len(), 1, "{how:?}: {report:?}");
        let cut = &report.truncations[0];
        assert_eq!(
            (cut.path.as_path(), cut.position, cut.bytes_removed),
            (log_file.as_path(), span.start, len - span.start),
            "{how:?}"
        );
        let removed: Vec<(i64, u64)> = report
            .removed_segments
            .iter()
            .map(|s| (s.base_offset, s.bytes))
            .collect();
        assert_eq!(removed, later, "{how:?}");
        let lost = len - span.start + later.iter().map(|l| l.1).sum::<u64>();
        assert_eq!(report.bytes_lost(), lost, "{how:?}");
        for &(base, _) in &later {
            for ext in ["log", "index", "timeindex"] {
                assert!(
                    !segment_path(c.dir.path(), base, ext).exists(),
                    "{how:?}: {base}.{ext} left behind"
                );
            }
        }
        let kept: Vec<i64> = c
            .segments
            .iter()
            .copied()
            .filter(|&b| b <= victim)
            .collect();
        assert_eq!(log.segment_base_offsets(), kept, "{how:?}");
        assert_eq!(log.next_offset(), span.base_offset, "{how:?}");
        assert_range(&read_all(&log, 0), 0, span.base_offset);
        append_range(&log, span.base_offset, span.base_offset + 5);
        assert_range(&read_all(&log, 0), 0, span.base_offset + 5);
    }
}

/// Regression: when the segments after a flushed one disappear, the flushed one is active again.
/// Appends to it, then a crash, must not be cut as "bytes past its flushed end".
#[test]
fn a_flushed_segment_that_becomes_active_again_keeps_new_appends() {
    let c = crashed(END);
    let active = *c.segments.last().expect("segments");
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(segment_path(c.dir.path(), active, ext)).expect("remove");
    }
    // Its first records were fsynced: losing them is not a torn write.
    match Partition::open(c.dir.path(), lazy_config(1 << 20)) {
        Err(Error::Corrupt {
            kind: Corruption::FlushedDataMissing { .. },
            path,
            ..
        }) => assert_eq!(path, segment_path(c.dir.path(), active, "log")),
        other => panic!("expected FlushedDataMissing, got {other:?}"),
    }
    let options = RecoveryOptions::new().truncate_corrupt(true);
    let log = Partition::open_with(c.dir.path(), lazy_config(1 << 20), options).expect("open");
    let lost = &log.recovery().truncations;
    assert!(
        lost.len() == 1 && lost[0].flushed,
        "the loss is reported: {lost:?}"
    );
    let next = log.next_offset();
    assert_eq!(
        next, active,
        "the active segment's records are gone with its file"
    );
    // Larger segments now: the appends land in the flushed segment that is active again.
    append_range(&log, next, next + 3);
    assert_eq!(
        log.segment_base_offsets().last(),
        c.segments.iter().rev().nth(1)
    );
    log.flush().expect("flush");
    drop(log);
    let log = Partition::open(c.dir.path(), lazy_config(1 << 20)).expect("reopen");
    assert!(
        log.recovery().truncations.is_empty(),
        "{:?}",
        log.recovery()
    );
    assert_range(&read_all(&log, 0), 0, next + 3);
}

#[test]
fn damage_in_the_active_segment_below_its_durable_length_fails_the_open() {
    for how in DAMAGES {
        let c = crashed(END);
        let log_file = segment_path(c.dir.path(), c.active_at_flush, "log");
        let spans = batch_spans(&log_file);
        let span = *spans
            .iter()
            .find(|s| s.base_offset < c.recovery_point && s.start > 0)
            .expect("a flushed batch in the active segment");
        damage(&log_file, span, how);
        assert_open_fails(
            &c,
            &log_file,
            span,
            &format!("{how:?} in the active segment"),
        );
    }
}

#[test]
fn truncate_corrupt_cuts_damage_below_the_recovery_point_and_reports_it() {
    let options = RecoveryOptions::new().truncate_corrupt(true);
    for how in DAMAGES {
        // A flushed sealed segment, resized so it is scanned.
        let c = crashed(END);
        let victim = c.segments[1];
        let log_file = segment_path(c.dir.path(), victim, "log");
        let span = middle_batch(&log_file);
        let len = fs::metadata(&log_file).expect("log").len();
        damage(&log_file, span, how);
        let mut bytes = fs::read(&log_file).expect("log");
        bytes.push(0);
        fs::write(&log_file, bytes).expect("write");
        let later: Vec<i64> = c.segments[2..].to_vec();
        let log = Partition::open_with(c.dir.path(), lazy_config(4096), options).expect("open");
        let report = log.recovery().clone();
        assert_eq!(report.truncations.len(), 1, "{how:?}: {report:?}");
        let cut = &report.truncations[0];
        assert!(cut.flushed, "{how:?}: reported as flushed data lost");
        assert_eq!(
            (cut.path.as_path(), cut.position, cut.bytes_removed),
            (log_file.as_path(), span.start, len + 1 - span.start),
            "{how:?}"
        );
        let removed: Vec<i64> = report
            .removed_segments
            .iter()
            .map(|s| s.base_offset)
            .collect();
        assert_eq!(removed, later, "{how:?}");
        // The batches after the damage, and every later segment's, were whole: all listed.
        assert!(
            report
                .batches_after_cut
                .iter()
                .any(|b| b.base_offset == span.base_offset + 1 && b.path == log_file),
            "{how:?}: {:?}",
            report.batches_after_cut
        );
        let last_listed = report.batches_after_cut.last().expect("listed");
        assert_eq!(last_listed.last_offset, END - 1, "{how:?}");
        assert_eq!(log.next_offset(), span.base_offset, "{how:?}");
        assert_range(&read_all(&log, 0), 0, span.base_offset);
        append_range(&log, span.base_offset, span.base_offset + 5);
        drop(log);
        // The next open (plain) finds nothing wrong.
        let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("reopen");
        assert!(
            log.recovery().truncations.is_empty(),
            "{:?}",
            log.recovery()
        );
        assert_range(&read_all(&log, 0), 0, span.base_offset + 5);
    }
    // The active segment, below its durable length.
    let c = crashed(END);
    let log_file = segment_path(c.dir.path(), c.active_at_flush, "log");
    let span = *batch_spans(&log_file)
        .iter()
        .find(|s| s.base_offset < c.recovery_point && s.start > 0)
        .expect("a flushed batch in the active segment");
    damage(&log_file, span, Damage::Crc);
    let log = Partition::open_with(c.dir.path(), lazy_config(4096), options).expect("open");
    let cut = &log.recovery().truncations;
    assert!(
        cut.len() == 1 && cut[0].flushed && cut[0].position == span.start,
        "{cut:?}"
    );
    drop(log);
    // The allowed cut is final: a plain open after it, with no write between, succeeds.
    let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("reopen after the cut");
    assert!(
        log.recovery().truncations.is_empty(),
        "{:?}",
        log.recovery()
    );
    assert_eq!(log.next_offset(), span.base_offset);
    append_range(&log, span.base_offset, span.base_offset + 5);
    drop(log);
    let log = Partition::open(c.dir.path(), lazy_config(4096)).expect("reopen");
    assert!(
        log.recovery().truncations.is_empty(),
        "{:?}",
        log.recovery()
    );
    assert_range(&read_all(&log, 0), 0, span.base_offset + 5);
}
