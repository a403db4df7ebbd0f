//! Property tests for crash recovery of a torn tail: bytes after (or over) a valid prefix of the
//! active segment, and a reopen keeps exactly the valid prefix.
//!
//! Each case opens a partition with small random segments (so the log often spans several),
//! appends a random workload of batches, flushes or not, and crashes (drops it without `close`:
//! no clean-shutdown marker). Then the active segment's `.log` (the highest base offset in the
//! directory) is damaged with `std::fs`:
//!
//! * `garbage_after_the_valid_prefix_is_cut_exactly`: bytes are appended after its end:
//!   arbitrary bytes, zeros, or "near-valid" garbage made from a copy of the last batch (one byte
//!   flipped, cut short, a stretch zeroed, or intact).
//! * `overwritten_unflushed_tail_keeps_the_batches_before_it`: without any flush, the same kinds
//!   of garbage overwrite the file from a random position `p` inside its last batches.
//!
//! The reopen must keep exactly the batches before the damage: `next_offset()`, every record read
//! from offset 0 (offset, timestamp, value), the `.log` length on disk, and one truncation in
//! `recovery()` at the first byte of the damage's batch with the bytes removed after it (none
//! when the garbage is itself whole valid batches). Then an append takes the next offset and
//! reads back, and a second crash and reopen keep everything and cut nothing.
//!
//! What counts as valid is computed, not assumed: garbage can be a valid batch (an intact copy
//! renumbered to continue the log, or a copy whose flipped byte is one the CRC does not cover).
//! The expectation walks the damaged bytes batch by batch with the rules recovery applies (the
//! batch frames, its CRC matches, its base offset does not go back, its last offset fits the
//! segment), and the test also checks that walk against what the damage certainly did (a changed
//! CRC-covered byte invalidates a batch whose length field is intact). On failure proptest prints
//! the shrunk inputs.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use common::{BatchSpan, batch_spans, files, segment_path};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::{Batch, BatchParams, Record, encode_batch};

/// A record as it must read back: offset, timestamp, value.
type Expected = (i64, i64, Option<Vec<u8>>);

/// Position of the magic byte; from here on, a changed byte invalidates a batch whose length
/// field is intact (the magic, the CRC field and the bytes the CRC covers).
const MAGIC_POS: usize = 16;
/// The batch length field.
const LENGTH: std::ops::Range<usize> = 8..12;
/// The partition leader epoch: header bytes the CRC does not cover.
const EPOCH: std::ops::Range<usize> = 12..16;

/// What is appended before the crash.
#[derive(Debug, Clone)]
struct Workload {
    segment_bytes: i32,
    index_interval_bytes: i32,
    segment_index_bytes: i32,
    flush_messages: i64,
    /// Batches of `(value, timestamp)` records.
    batches: Vec<Vec<(Vec<u8>, i64)>>,
}

impl Workload {
    fn config(&self) -> LogConfig {
        LogConfig::builder()
            .segment_bytes(self.segment_bytes)
            .index_interval_bytes(self.index_interval_bytes)
            .segment_index_bytes(self.segment_index_bytes)
            .flush_messages(self.flush_messages)
            .build()
            .expect("valid config")
    }
}

/// Batches of one to three records of up to 256 bytes: at most about 860 bytes, below the
/// smallest segment.
fn batches(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Vec<(Vec<u8>, i64)>>> {
    let record = (prop::collection::vec(any::<u8>(), 0..=256), 0i64..1 << 41);
    prop::collection::vec(prop::collection::vec(record, 1..=3), count)
}

fn workload(
    count: std::ops::Range<usize>,
    flush_messages: BoxedStrategy<i64>,
) -> impl Strategy<Value = Workload> {
    (
        1_000i32..=4_000,
        prop_oneof![Just(0), 64i32..=1_024],
        prop_oneof![Just(4_096), 96i32..=1_024],
        flush_messages,
        batches(count),
    )
        .prop_map(
            |(
                segment_bytes,
                index_interval_bytes,
                segment_index_bytes,
                flush_messages,
                batches,
            )| {
                Workload {
                    segment_bytes,
                    index_interval_bytes,
                    segment_index_bytes,
                    flush_messages,
                    batches,
                }
            },
        )
}

/// Damage built from arbitrary bytes or from a template batch (the last batch written).
/// `renumber` gives the copy the offset that continues the log, so only the damage can make it
/// invalid; without it the copy repeats offsets already in the log.
#[derive(Debug, Clone)]
enum Garbage {
    /// Arbitrary bytes.
    Random(Vec<u8>),
    /// Zero-filled pages (or part of one): space the filesystem allocated but never got data.
    Zeros(usize),
    /// A copy with one byte xored with a nonzero mask.
    Flipped { renumber: bool, at: Index, mask: u8 },
    /// A copy cut short (a torn write of it).
    Truncated { renumber: bool, len: Index },
    /// A copy with a stretch of bytes zeroed.
    Zeroed {
        renumber: bool,
        from: Index,
        len: Index,
    },
    /// An intact copy.
    Copy { renumber: bool },
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..3000).prop_map(Garbage::Random),
        1 => prop_oneof![Just(4_096), Just(8_192), 1usize..=8_192].prop_map(Garbage::Zeros),
        3 => (any::<bool>(), any::<Index>(), 1u8..=255)
            .prop_map(|(renumber, at, mask)| Garbage::Flipped { renumber, at, mask }),
        2 => (any::<bool>(), any::<Index>())
            .prop_map(|(renumber, len)| Garbage::Truncated { renumber, len }),
        2 => (any::<bool>(), any::<Index>(), any::<Index>())
            .prop_map(|(renumber, from, len)| Garbage::Zeroed { renumber, from, len }),
        1 => any::<bool>().prop_map(|renumber| Garbage::Copy { renumber }),
    ]
}

impl Garbage {
    /// The bytes, from `template` (a whole batch) renumbered to `next_offset` when asked, and
    /// whether they certainly start with a valid batch (`Some(true)`), certainly do not
    /// (`Some(false)`), or that depends on where a flipped base offset lands (`None`).
    ///
    /// "Certainly" ignores coincidences of odds 2^-32 or less (arbitrary bytes that happen to
    /// frame a batch with a matching CRC).
    fn bytes(&self, template: &[u8], next_offset: i64) -> (Vec<u8>, Option<bool>) {
        let copy = |renumber: bool| {
            let mut copy = template.to_vec();
            if renumber {
                copy[..8].copy_from_slice(&next_offset.to_be_bytes());
            }
            // Whether the copy, undamaged, would continue the log (the template of an empty log
            // is based at 0, so it does without renumbering).
            let base = i64::from_be_bytes(copy[..8].try_into().expect("8 bytes"));
            (copy, base >= next_offset)
        };
        match self {
            Garbage::Random(bytes) => (bytes.clone(), Some(false)),
            Garbage::Zeros(len) => (vec![0; *len], Some(false)),
            Garbage::Flipped { renumber, at, mask } => {
                let (mut bytes, continues) = copy(*renumber);
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
                let verdict = if at < 8 {
                    None
                } else if EPOCH.contains(&at) {
                    Some(continues)
                } else {
                    Some(false)
                };
                (bytes, verdict)
            }
            Garbage::Truncated { renumber, len } => {
                let (mut bytes, _) = copy(*renumber);
                bytes.truncate(1 + len.index(bytes.len() - 1));
                (bytes, Some(false))
            }
            Garbage::Zeroed {
                renumber,
                from,
                len,
            } => {
                let (mut bytes, continues) = copy(*renumber);
                let from = from.index(bytes.len());
                let to = from + 1 + len.index(bytes.len() - from);
                let changed: Vec<usize> = (from..to).filter(|&i| bytes[i] != 0).collect();
                bytes[from..to].fill(0);
                // Zeroing base offset bytes can only lower it below the next offset.
                let valid = continues && changed.iter().all(|i| EPOCH.contains(i));
                (bytes, Some(valid))
            }
            Garbage::Copy { renumber } => {
                let (bytes, continues) = copy(*renumber);
                (bytes, Some(continues))
            }
        }
    }
}

/// The whole batches at the start of `bytes` that recovery must keep in a segment based at
/// `segment_base` whose earlier batches end at `next_offset`, by the checks its scan makes:
/// the batch frames, its CRC matches, its base offset does not go back, and its last offset is
/// within `i32::MAX` of the segment base. Pushes their records (control batches hold none to
/// read) and returns the bytes they take and the offset after them.
fn valid_batches(
    bytes: &[u8],
    segment_base: i64,
    mut next_offset: i64,
    records: &mut Vec<Expected>,
) -> (usize, i64) {
    let mut pos = 0;
    while pos < bytes.len() {
        let Ok(batch) = Batch::parse(&bytes[pos..]) else {
            break;
        };
        let h = *batch.header();
        if batch.verify_crc().is_err()
            || h.base_offset < next_offset
            || h.last_offset() - segment_base > i64::from(i32::MAX)
        {
            break;
        }
        if !h.is_control() {
            for r in batch
                .records()
                .expect("records of a batch with a valid CRC")
            {
                let r = r.expect("record of a batch with a valid CRC");
                records.push((r.offset(), r.timestamp(), r.value().map(<[u8]>::to_vec)));
            }
        }
        next_offset = h.next_offset();
        pos += batch.size();
    }
    (pos, next_offset)
}

/// Whether `bytes` start with a whole batch, CRC right, based at or above 0 but below
/// `segment_base`: what a segment file renamed to a higher name holds.
fn looks_renamed(bytes: &[u8], segment_base: i64) -> bool {
    Batch::parse(bytes).is_ok_and(|b| {
        b.verify_crc().is_ok() && (0..segment_base).contains(&b.header().base_offset)
    })
}

/// A crashed partition directory.
struct Crashed {
    dir: TempDir,
    config: LogConfig,
    segments: Vec<i64>,
    /// Records appended.
    records: Vec<Expected>,
    active_log: PathBuf,
    /// The active segment's batches.
    active_spans: Vec<BatchSpan>,
    /// The last batch written, to copy as garbage.
    last_batch: Vec<u8>,
}

impl Crashed {
    fn active(&self) -> i64 {
        *self.segments.last().expect("a segment")
    }
}

/// Opens a partition, appends `w`'s batches, flushes if asked and crashes.
fn write_and_crash(w: &Workload, flush: bool) -> Crashed {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = w.config();
    let log = Partition::open(dir.path(), config.clone()).expect("open");
    let mut records = Vec::new();
    for batch in &w.batches {
        let appending: Vec<Record<'_>> = batch
            .iter()
            .map(|(v, ts)| Record::new(v).with_timestamp(*ts))
            .collect();
        let info = log.append_batch(&appending).expect("append batch");
        assert_eq!(info.base_offset, records.len() as i64, "offsets are dense");
        for ((v, ts), offset) in batch.iter().zip(info.offsets()) {
            records.push((offset, *ts, Some(v.clone())));
        }
    }
    if flush {
        log.flush().expect("flush");
    }
    let segments = log.segment_base_offsets();
    drop(log); // the crash: no close, no clean-shutdown marker

    // The active segment is the `.log` with the highest base offset in the directory.
    let on_disk = files(dir.path())
        .iter()
        .filter_map(|name| name.strip_suffix(".log")?.parse::<i64>().ok())
        .max()
        .expect("a .log file");
    assert_eq!(Some(&on_disk), segments.last(), "active segment");
    let active_log = segment_path(dir.path(), on_disk, "log");
    let active_spans = batch_spans(&active_log);
    let last_batch = match active_spans.last() {
        Some(last) => fs::read(&active_log).expect("read log")
            [last.start as usize..last.end as usize]
            .to_vec(),
        None => {
            assert!(
                records.is_empty(),
                "only an empty log has an empty active segment"
            );
            let mut bytes = Vec::new();
            let template = [Record::new(b"template").with_timestamp(7)];
            encode_batch(&mut bytes, &BatchParams::default(), &template, 0).expect("encode");
            bytes
        }
    };
    Crashed {
        dir,
        config,
        segments,
        records,
        active_log,
        active_spans,
        last_batch,
    }
}

fn read_all(log: &Partition) -> Vec<Expected> {
    log.read(0)
        .expect("reader from 0")
        .map(|r| {
            let r = r.expect("record").to_owned_record();
            (r.offset, r.timestamp, r.value)
        })
        .collect()
}

/// What the reopen of a damaged directory must find.
struct Expectation {
    /// Records kept, in order.
    records: Vec<Expected>,
    /// The offset after them.
    next_offset: i64,
    /// The `.log` length after the cut.
    kept_len: u64,
    /// The `.log` length before it.
    damaged_len: u64,
}

/// Reopens the damaged directory and checks it against `expected`; then appends a record,
/// crashes again, and checks that a second reopen keeps everything and cuts nothing.
fn check_reopen(crashed: &Crashed, expected: &Expectation) -> Result<(), TestCaseError> {
    let dir = crashed.dir.path();
    let log = Partition::open(dir, crashed.config.clone()).expect("reopen after damage");
    let report = log.recovery().clone();
    let context = format!(
        "kept {} of {} bytes: {report:?}",
        expected.kept_len, expected.damaged_len
    );
    prop_assert!(!report.clean_shutdown, "{}", context);
    prop_assert!(report.removed_segments.is_empty(), "{}", context);
    if expected.kept_len == expected.damaged_len {
        prop_assert!(report.truncations.is_empty(), "{}", context);
    } else {
        prop_assert_eq!(report.truncations.len(), 1, "{}", context);
        let t = &report.truncations[0];
        prop_assert_eq!(&t.path, &crashed.active_log, "{}", context);
        prop_assert_eq!(t.position, expected.kept_len, "{}", context);
        prop_assert_eq!(
            t.bytes_removed,
            expected.damaged_len - expected.kept_len,
            "{}",
            context
        );
    }
    prop_assert_eq!(
        fs::metadata(&crashed.active_log).expect("log").len(),
        expected.kept_len,
        "{}: length on disk",
        context
    );
    prop_assert_eq!(log.segment_base_offsets(), crashed.segments.clone());
    prop_assert_eq!(log.next_offset(), expected.next_offset, "{}", context);
    prop_assert_eq!(read_all(&log), expected.records.clone(), "{}", context);

    let value = b"after recovery".to_vec();
    let offset = log
        .append(Record::new(&value).with_timestamp(42))
        .expect("append after recovery");
    prop_assert_eq!(offset, expected.next_offset, "{}", context);
    let mut all = expected.records.clone();
    all.push((offset, 42, Some(value)));
    prop_assert_eq!(read_all(&log), all.clone(), "{}", context);
    drop(log); // crash again

    let log = Partition::open(dir, crashed.config.clone()).expect("second reopen");
    let again = log.recovery();
    prop_assert!(again.truncations.is_empty(), "{}: {:?}", context, again);
    prop_assert!(
        again.removed_segments.is_empty(),
        "{}: {:?}",
        context,
        again
    );
    prop_assert_eq!(log.next_offset(), offset + 1, "{}", context);
    prop_assert_eq!(read_all(&log), all, "{}", context);
    Ok(())
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append")
        .write_all(bytes)
        .expect("append garbage");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Garbage appended after the active segment's last whole batch is cut at exactly the old
    /// end of the file, whatever the workload, flush policy and kind of garbage.
    #[test]
    fn garbage_after_the_valid_prefix_is_cut_exactly(
        w in workload(0..40, prop_oneof![Just(1i64), Just(i64::MAX), 2i64..=8].boxed()),
        flush in any::<bool>(),
        garbage in garbage(),
    ) {
        let crashed = write_and_crash(&w, flush);
        let count = crashed.records.len() as i64;
        let prefix_len = fs::metadata(&crashed.active_log).expect("log").len();
        prop_assert_eq!(prefix_len, crashed.active_spans.last().map_or(0, |s| s.end));

        let (bytes, verdict) = garbage.bytes(&crashed.last_batch, count);
        append_bytes(&crashed.active_log, &bytes);

        let mut records = crashed.records.clone();
        let (valid, next_offset) =
            valid_batches(&bytes, crashed.active(), count, &mut records);
        if let Some(starts_valid) = verdict {
            prop_assert_eq!(valid > 0, starts_valid, "garbage {:?}", garbage);
        }
        if matches!(garbage, Garbage::Copy { renumber: true }) {
            prop_assert_eq!(valid, bytes.len(), "a renumbered copy is a valid batch");
        }
        check_reopen(&crashed, &Expectation {
            records,
            next_offset,
            kept_len: prefix_len + valid as u64,
            damaged_len: prefix_len + bytes.len() as u64,
        })?;
    }

    /// Without any flush, garbage written over the active segment from a position `p` inside
    /// one of its last three batches (sometimes at its first byte), after cutting the file at
    /// `p` or over the bytes there, leaves exactly the batches that end at or before `p` (and
    /// any valid batch the garbage itself frames there, such as a copy of a batch).
    #[test]
    fn overwritten_unflushed_tail_keeps_the_batches_before_it(
        w in workload(1..40, Just(i64::MAX).boxed()),
        at in any::<Index>(),
        at_batch_start in prop::bool::weighted(0.2),
        cut_first in any::<bool>(),
        garbage in garbage(),
    ) {
        let crashed = write_and_crash(&w, false);
        let spans = &crashed.active_spans;
        let len = fs::metadata(&crashed.active_log).expect("log").len();
        let last_three = &spans[spans.len().saturating_sub(3)..];
        let p = if at_batch_start {
            at.get(last_three).start
        } else {
            let first = last_three[0].start;
            first + at.index((len - first) as usize) as u64
        };
        // The batch `p` falls in, and what comes before it.
        let hit = *spans.iter().find(|s| s.start <= p && p < s.end).expect("p in a batch");
        let kept_before: Vec<Expected> = crashed
            .records
            .iter()
            .filter(|r| r.0 < hit.base_offset)
            .cloned()
            .collect();
        let next_before = kept_before.last().map_or(crashed.active(), |r| r.0 + 1);

        let original = fs::read(&crashed.active_log).expect("read log");
        let (bytes, _) = garbage.bytes(&crashed.last_batch, next_before);
        let file = OpenOptions::new().write(true).open(&crashed.active_log).expect("open log");
        if cut_first {
            file.set_len(p).expect("cut at p");
        }
        file.write_all_at(&bytes, p).expect("overwrite from p");
        drop(file);
        let damaged = fs::read(&crashed.active_log).expect("read damaged log");

        let mut records = kept_before;
        let (valid, next_offset) = valid_batches(
            &damaged[hit.start as usize..],
            crashed.active(),
            next_before,
            &mut records,
        );
        // When `p` leaves the batch's length field as it was, a changed byte in its magic, CRC
        // or the bytes the CRC covers (or a byte cut off) always invalidates it: then exactly
        // the batches wholly before `p` remain. (From an earlier `p`, the garbage frames a batch
        // of its own, which may be valid: a copy of a batch written at `p`, say.)
        let (start, end) = (hit.start as usize, hit.end as usize);
        let invalidated = p as usize >= start + LENGTH.end
            && (start + MAGIC_POS..end).any(|i| damaged.get(i) != original.get(i));
        if invalidated {
            prop_assert_eq!(valid, 0, "p = {}, batch {:?}", p, hit);
        }
        // Garbage at the segment's first byte that frames a whole batch (CRC right) based at
        // or above 0 but below the segment's base looks like a renamed segment file: recovery
        // refuses it rather than cut (see `recovery_no_silent_gap`).
        if hit.start == 0 && valid == 0 && looks_renamed(&damaged, crashed.active()) {
            let open = Partition::open(crashed.dir.path(), crashed.config.clone());
            prop_assert!(
                matches!(open, Err(topiclog::Error::Corrupt { position: 0, .. })),
                "{:?}",
                open.map(|_| ())
            );
            return Ok(());
        }
        check_reopen(&crashed, &Expectation {
            records,
            next_offset,
            kept_len: hit.start + valid as u64,
            damaged_len: damaged.len() as u64,
        })?;
    }
}
