//! Index files are caches: damaged `.index` / `.timeindex` files never change what a partition
//! answers. A partition with several segments and an active segment with many index entries
//! (`index.interval.bytes` = 64, so nearly every batch gets entries) is written with batches of
//! one to three records whose timestamps jump back and forth, and the answers of every lookup
//! are recorded: the first record of `read(offset)` for every offset, `offset_for_timestamp` for
//! every record's timestamp, for timestamps just below and above them, before the first and after
//! the last (checked against a brute-force answer first). Then, each time on a fresh copy of the
//! directory, one damage (delete, truncate to 0, truncate to a length that is not a whole number
//! of entries, zero-fill, random garbage of the same length, drop the last entry) is applied to
//! the `.index`, the `.timeindex`, or both, of a sealed segment or of the active segment, after
//! a crash (drop without close, with the sealed segments flushed so their indexes are trusted
//! after a check rather than rebuilt) or after a clean close (so the clean-shutdown marker sees
//! the damage only when a length changed). Every reopen must give identical lookups and an
//! identical full read, take appends that read back and look up correctly, and, after a close,
//! reopen cleanly with the same answers: a damaged cache is rebuilt or ignored, never trusted.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::{copy_dir, segment_path};
use tempfile::TempDir;
use topiclog::config::LogConfig;
use topiclog::partition::TimestampOffset;
use topiclog::record::{Header, Record};
use topiclog::{OwnedRecord, Partition};

/// Records in the base partition.
const N: i64 = 420;
/// Records appended after each damaged reopen.
const MORE: i64 = 6;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(6 * 1024)
        .index_interval_bytes(64)
        .segment_index_bytes(4096)
        .build()
        .expect("valid config")
}

/// Timestamp of record `i`: rising overall, but jumping back by up to 3.5 s between records,
/// so the maximum of a batch is often not its last record.
fn ts(i: i64) -> i64 {
    1_000_000 + 1_000 * i + (i * 7_919) % 7_001 - 3_500
}

fn key(i: i64) -> Vec<u8> {
    format!("k{}", i % 13).into_bytes()
}

fn value(i: i64) -> Vec<u8> {
    format!("v{i:06}-{}", "y".repeat((i % 40) as usize)).into_bytes()
}

/// Appends records `from..to` in batches of 1, 3, 2, 1, 2, ... records.
fn append(log: &Partition, from: i64, to: i64) {
    let sizes = [1, 3, 2, 1, 2];
    let mut i = from;
    let mut n = 0;
    while i < to {
        let end = (i + sizes[n % sizes.len()]).min(to);
        n += 1;
        let keys: Vec<Vec<u8>> = (i..end).map(key).collect();
        let values: Vec<Vec<u8>> = (i..end).map(value).collect();
        let headers: Vec<[Header<'_>; 1]> = values
            .iter()
            .map(|v| [Header::new(b"h", Some(&v[..4]))])
            .collect();
        let records: Vec<Record<'_>> = (i..end)
            .zip(keys.iter().zip(&values).zip(&headers))
            .map(|(j, ((k, v), h))| Record::keyed(k, v).with_headers(h).with_timestamp(ts(j)))
            .collect();
        let info = log.append_batch(&records).expect("append");
        assert_eq!(info.base_offset, i);
        i = end;
    }
}

/// Timestamps to look up for records `0..end`.
fn targets(end: i64) -> Vec<i64> {
    let (min, max) = (0..end)
        .map(ts)
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let mut targets = vec![i64::MIN, -1, 0, min - 1, min, max, max + 1, i64::MAX];
    for i in 0..end {
        targets.push(ts(i));
        if i % 4 == 0 {
            targets.extend([ts(i) - 1, ts(i) + 1]);
        }
    }
    targets
}

/// Everything the partition answers.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    /// First record of `read(o)` for every offset `o` in `[0, next_offset]`.
    firsts: Vec<Option<OwnedRecord>>,
    /// `offset_for_timestamp` for each target.
    times: Vec<(i64, Option<TimestampOffset>)>,
    /// `read(0)` to the end.
    all: Vec<OwnedRecord>,
}

fn answers(log: &Partition, end: i64) -> Answers {
    assert_eq!(log.next_offset(), end);
    let firsts = (0..=end)
        .map(|o| {
            log.read(o)
                .expect("reader")
                .next()
                .map(|r| r.expect("record").to_owned_record())
        })
        .collect();
    let times = targets(end)
        .into_iter()
        .map(|t| (t, log.offset_for_timestamp(t).expect("timestamp lookup")))
        .collect();
    let all = log
        .read(0)
        .expect("reader")
        .map(|r| r.expect("record").to_owned_record())
        .collect();
    Answers { firsts, times, all }
}

/// The answers computed from the generator, without the partition.
fn brute_force(end: i64) -> Answers {
    let all: Vec<OwnedRecord> = (0..end)
        .map(|i| OwnedRecord {
            offset: i,
            timestamp: ts(i),
            key: Some(key(i)),
            value: Some(value(i)),
            headers: vec![topiclog::OwnedHeader {
                key: b"h".to_vec(),
                value: Some(value(i)[..4].to_vec()),
            }],
        })
        .collect();
    let firsts = (0..=end).map(|o| all.get(o as usize).cloned()).collect();
    let times = targets(end)
        .into_iter()
        .map(|t| {
            let hit = all
                .iter()
                .find(|r| r.timestamp >= t)
                .map(|r| TimestampOffset {
                    offset: r.offset,
                    timestamp: r.timestamp,
                });
            (t, hit)
        })
        .collect();
    Answers { firsts, times, all }
}

/// A written partition directory, its segments and its answers.
struct Base {
    dir: TempDir,
    segments: Vec<i64>,
    answers: Answers,
}

/// Writes records `0..N`. Crash: flush once the sealed segments exist (so they are below the
/// recovery point and their indexes are trusted after a check), append the last records, drop
/// without close. Clean: close.
fn base(clean: bool) -> Base {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), config()).expect("open");
    append(&log, 0, N - 20);
    if !clean {
        log.flush().expect("flush");
    }
    append(&log, N - 20, N);
    let segments = log.segment_base_offsets();
    let answers = answers(&log, N);
    if clean {
        log.close().expect("close");
    }
    drop(log);
    assert!(segments.len() >= 4, "several segments: {segments:?}");
    let active = *segments.last().expect("segments");
    let base = Base {
        dir,
        segments,
        answers,
    };
    // The active segment must hold many index entries for the damage to matter.
    let live_entries = if clean {
        fs::metadata(segment_path(base.dir.path(), active, "index"))
            .expect("index")
            .len()
            / 8
    } else {
        count_nonzero_entries(&segment_path(base.dir.path(), active, "index"), 8)
    };
    assert!(live_entries >= 15, "active offset index has {live_entries}");
    base
}

fn count_nonzero_entries(path: &Path, size: usize) -> u64 {
    let bytes = fs::read(path).expect("index");
    bytes
        .chunks(size)
        .take_while(|e| e.iter().any(|&b| b != 0))
        .count() as u64
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    TruncateToZero,
    OddLength,
    ZeroFill,
    Garbage,
    DropLastEntry,
}

const DAMAGES: [Damage; 6] = [
    Damage::Delete,
    Damage::TruncateToZero,
    Damage::OddLength,
    Damage::ZeroFill,
    Damage::Garbage,
    Damage::DropLastEntry,
];

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

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for set_len")
        .set_len(len)
        .expect("set_len");
}

fn apply(damage: Damage, path: &Path, entry_size: u64, seed: u64) {
    let len = fs::metadata(path).expect("index file").len();
    assert!(len >= entry_size, "{}: nothing to damage", path.display());
    match damage {
        Damage::Delete => fs::remove_file(path).expect("delete"),
        Damage::TruncateToZero => set_len(path, 0),
        Damage::OddLength => set_len(path, (len / 2) | 1),
        Damage::ZeroFill => fs::write(path, vec![0u8; len as usize]).expect("zero-fill"),
        Damage::Garbage => fs::write(path, noise(seed, len as usize)).expect("garbage"),
        Damage::DropLastEntry => set_len(path, len - entry_size),
    }
}

#[derive(Debug, Clone, Copy)]
enum Victim {
    Sealed,
    Active,
}

/// The index files a scenario damages.
type Kinds = &'static [&'static str];

const KINDS: [Kinds; 3] = [&["index"], &["timeindex"], &["index", "timeindex"]];

/// A time index shortened to whole entries (emptied, or its last entry dropped) while the
/// offset index is intact: it passes every check an index can get without reading the log.
fn shortened_time_index(damage: Damage, kinds: Kinds) -> bool {
    kinds == ["timeindex"] && matches!(damage, Damage::TruncateToZero | Damage::DropLastEntry)
}

/// Every damage on every index kind, except those `skip` selects.
fn scenarios(skip: fn(Damage, Kinds) -> bool) -> Vec<(Damage, Kinds)> {
    DAMAGES
        .iter()
        .flat_map(|&d| KINDS.iter().map(move |&k| (d, k)))
        .filter(|&(d, k)| !skip(d, k))
        .collect()
}

/// Runs each scenario on `victim`, each on a fresh copy of a base partition, and fails listing
/// every scenario that went wrong.
fn run(clean: bool, victim: Victim, scenarios: &[(Damage, Kinds)]) {
    let failures = failures(clean, victim, scenarios);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs each scenario on `victim`, each on a fresh copy of a base partition, and returns a line
/// for every scenario that went wrong.
fn failures(clean: bool, victim: Victim, scenarios: &[(Damage, Kinds)]) -> Vec<String> {
    let base = base(clean);
    assert_eq!(
        difference(&base.answers, &brute_force(N)),
        None,
        "the undamaged answers are right"
    );
    let segment = match victim {
        Victim::Sealed => base.segments[1],
        Victim::Active => *base.segments.last().expect("segments"),
    };
    let extended = brute_force(N + MORE);
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let mut failures = Vec::new();
    for &(damage, kinds) in scenarios {
        {
            let context = format!(
                "{} reopen, {victim:?} segment {segment}, {damage:?} on {kinds:?}",
                if clean { "clean" } else { "crash" }
            );
            let dir: PathBuf = scratch
                .path()
                .join(format!("{damage:?}-{}", kinds.join("-")));
            copy_dir(base.dir.path(), &dir);
            for kind in kinds {
                let size = if *kind == "index" { 8 } else { 12 };
                seed += 1;
                apply(damage, &segment_path(&dir, segment, kind), size, seed);
            }
            if let Err(why) = scenario(&dir, clean, &base, &extended) {
                failures.push(format!("{context}: {why}"));
            }
            fs::remove_dir_all(&dir).expect("remove copy");
        }
    }
    failures
}

/// Reopens a damaged copy and checks it, then appends, closes and reopens it cleanly.
fn scenario(dir: &Path, clean: bool, base: &Base, extended: &Answers) -> Result<(), String> {
    let log = Partition::open(dir, config()).map_err(|e| format!("open: {e}"))?;
    let report = log.recovery().clone();
    if !clean && report.clean_shutdown {
        return Err("a crash reopened as clean".into());
    }
    if !clean && report.recovery_point <= base.segments[1] {
        return Err(format!(
            "sealed segments not below the recovery point: {report:?}"
        ));
    }
    if !report.truncations.is_empty() || !report.removed_segments.is_empty() {
        return Err(format!("data cut for an index: {report:?}"));
    }
    if log.segment_base_offsets() != base.segments {
        return Err(format!("segments {:?}", log.segment_base_offsets()));
    }
    if let Some(d) = difference(&answers(&log, N), &base.answers) {
        return Err(format!("after reopen: {d}"));
    }

    // The partition goes on: appends land, read back, and are found by time.
    append(&log, N, N + MORE);
    if let Some(d) = difference(&answers(&log, N + MORE), extended) {
        return Err(format!("after appends: {d}"));
    }
    log.close().map_err(|e| format!("close: {e}"))?;
    drop(log);

    // The close left files a clean reopen can trust.
    let log = Partition::open(dir, config()).map_err(|e| format!("second open: {e}"))?;
    if !log.recovery().clean_shutdown {
        return Err(format!("unclean after close: {:?}", log.recovery()));
    }
    if let Some(d) = difference(&answers(&log, N + MORE), extended) {
        return Err(format!("after close and clean reopen: {d}"));
    }
    Ok(())
}

/// The first difference between two sets of answers, naming the lookup.
fn difference(got: &Answers, want: &Answers) -> Option<String> {
    if got.all != want.all {
        return Some(format!(
            "full read differs: {:?}",
            diff_at(&got.all, &want.all)
        ));
    }
    if let Some(o) = diff_at(&got.firsts, &want.firsts) {
        return Some(format!(
            "first record of read({o}): got {:?}, want {:?}",
            got.firsts.get(o),
            want.firsts.get(o)
        ));
    }
    if let Some(i) = diff_at(&got.times, &want.times) {
        return Some(format!(
            "offset_for_timestamp: got {:?}, want {:?}",
            got.times.get(i),
            want.times.get(i)
        ));
    }
    None
}

fn diff_at<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

#[test]
fn damaged_sealed_segment_indexes_after_a_crash() {
    run(false, Victim::Sealed, &scenarios(shortened_time_index));
}

#[test]
fn damaged_active_segment_indexes_after_a_crash() {
    run(false, Victim::Active, &scenarios(|_, _| false));
}

#[test]
fn damaged_sealed_segment_indexes_after_a_clean_close() {
    run(true, Victim::Sealed, &scenarios(shortened_time_index));
}

#[test]
fn damaged_active_segment_indexes_after_a_clean_close() {
    run(true, Victim::Active, &scenarios(|_, _| false));
}

/// A sealed segment below the recovery point whose `.timeindex` was emptied or lost its last
/// entry: the reopen takes the segment's largest timestamp from what is left, misses the
/// real one, and `offset_for_timestamp` skips the segment for timestamps it does hold.
#[test]
fn shortened_time_index_of_a_flushed_sealed_segment() {
    let only = scenarios(|d, k| !shortened_time_index(d, k));
    let mut all = failures(false, Victim::Sealed, &only);
    all.extend(failures(true, Victim::Sealed, &only));
    assert!(all.is_empty(), "{}", all.join("\n"));
}
