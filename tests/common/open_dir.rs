#![allow(dead_code)]
//! Whole partition directories with arbitrary damage, through the read-only open,
//! `inspect::check_partition` (verify) and the writable open, which must agree.
//!
//! Shared by the `open_dir` fuzz target (`fuzz/`) and `tests/open_dir_prop.rs`, which runs it
//! on stable under proptest. The input's first byte sets up a real partition written by
//! topiclog: how many records (0 to 63, in batches of one to four), small or default segments
//! (so one or several segments),
//! and whether it was closed cleanly or dropped as a crash leaves it. The rest is a list of
//! edits, each an op byte then arguments, applied to the directory's files: the first three
//! segments' `.log`, `.index` and `.timeindex`, the recovery checkpoint, the log-start
//! checkpoint, the clean-shutdown marker and the first producer snapshot. An edit replaces a
//! file's bytes, cuts it, overwrites bytes at a position, appends bytes, or deletes it.
//!
//! What must hold, whatever the bytes:
//!
//! * nothing panics or hangs;
//! * the read-only and the writable open agree: both open or both refuse with
//!   `Error::Corrupt` (or a typed I/O error naming a file), except that damage only the
//!   writable open's replay of producer state reads is, for the read-only open, a typed error
//!   at the first read of those bytes; when both open they serve the same
//!   log start, next offset and records, and every record they serve is one topiclog wrote at
//!   that offset (above the recovery point, where a base offset changed outside the CRC looks
//!   like one of the offset gaps Kafka's format allows: one topiclog wrote), or a read ends in a
//!   typed error;
//! * a writable open that refuses is a problem `check_partition` reports;
//! * when `check_partition` finds no problem, the writable open succeeds and reads every
//!   offset from the log start to the end without an error, unless neither the recovery
//!   checkpoint nor the clean-shutdown marker is left intact to say which segments existed
//!   (then a deleted segment leaves a gap Kafka's format allows).

use std::path::{Path, PathBuf};

use topiclog::config::LogConfig;
use topiclog::inspect;
use topiclog::record::Record;
use topiclog::{Error, Partition};

fn value(offset: i64) -> Vec<u8> {
    format!("value-{offset}").into_bytes()
}

fn config(small: bool) -> LogConfig {
    let mut builder = LogConfig::builder()
        .index_interval_bytes(64)
        .segment_index_bytes(1024);
    if small {
        builder = builder.segment_bytes(300);
    }
    builder.build().expect("config")
}

/// The files an edit can target, by number.
fn target(dir: &Path, which: u8) -> Option<PathBuf> {
    let mut bases: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".log").map(str::to_owned))
        .collect();
    bases.sort();
    let segment = |i: usize, ext: &str| bases.get(i).map(|b| dir.join(format!("{b}.{ext}")));
    match which % 13 {
        0 => segment(0, "log"),
        1 => segment(0, "index"),
        2 => segment(0, "timeindex"),
        3 => segment(1, "log"),
        4 => segment(1, "index"),
        5 => segment(1, "timeindex"),
        6 => segment(2, "log"),
        7 => segment(2, "index"),
        8 => segment(2, "timeindex"),
        9 => Some(dir.join(".topiclog_recovery_point")),
        10 => Some(dir.join(".topiclog_log_start_offset")),
        11 => Some(dir.join(".topiclog_cleanshutdown")),
        _ => {
            let mut snapshots: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
                .collect();
            snapshots.sort();
            snapshots.into_iter().next()
        }
    }
}

/// Applies the next edit, noting its target's number in `touched`; `false` once the input
/// is spent.
fn edit(dir: &Path, data: &mut &[u8], touched: &mut Vec<u8>) -> bool {
    let Some((&op, rest)) = data.split_first() else {
        return false;
    };
    *data = rest;
    let Some(path) = target(dir, op) else {
        return true;
    };
    touched.push(op % 13);
    let mut take = |n: usize| -> Vec<u8> {
        let n = n.min(data.len());
        let (head, tail) = data.split_at(n);
        *data = tail;
        head.to_vec()
    };
    let arg = take(2);
    let number = usize::from(arg.first().copied().unwrap_or(0)) << 8
        | usize::from(arg.get(1).copied().unwrap_or(0));
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    match (op / 13) % 5 {
        0 => bytes = take(number % 512),
        1 => bytes.truncate(number % (bytes.len() + 1)),
        2 => {
            let patch = take(1 + number % 16);
            let at = if bytes.is_empty() {
                0
            } else {
                (number >> 4) % bytes.len()
            };
            for (i, b) in patch.into_iter().enumerate() {
                match bytes.get_mut(at + i) {
                    Some(slot) => *slot = b,
                    None => bytes.push(b),
                }
            }
        }
        3 => bytes.extend(take(number % 256)),
        _ => {
            let _ = std::fs::remove_file(&path);
            return true;
        }
    }
    let _ = std::fs::write(&path, bytes);
    true
}

/// What an open served: its log start and next offset, the records read from the log start
/// as `(offset, value)`, and the error that ended the read, if one did.
type Served = (i64, i64, Vec<(i64, Vec<u8>)>, Option<String>);

fn served(log: &Partition) -> Served {
    let (start, end) = (log.log_start_offset(), log.next_offset());
    let mut records = Vec::new();
    let mut error = None;
    match log.read(start) {
        Ok(reader) => {
            for record in reader {
                match record {
                    Ok(r) => records.push((r.offset(), r.value().unwrap_or_default().to_vec())),
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => error = Some(e.to_string()),
    }
    (start, end, records, error)
}

fn typed(e: &Error, dir: &Path) -> bool {
    match e {
        Error::Corrupt { path, .. } | Error::Io { path, .. } => path.starts_with(dir),
        Error::UnsupportedCompression { .. } => true,
        _ => false,
    }
}

/// Runs one input: see the module docs.
pub fn run(data: &[u8]) {
    let Some((&setup, mut data)) = data.split_first() else {
        return;
    };
    // On a memory file system where there is one: the setup's fsyncs cost nothing there.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    let Ok(tmp) = tmp else { return };
    let dir = tmp.path().join("p-0");
    let small = setup & 0x40 != 0;
    {
        let log = Partition::open(&dir, config(small)).expect("open a new partition");
        let mut offset = 0;
        while offset < i64::from(setup & 0x3f) {
            let n = 1 + offset % 4;
            let values: Vec<Vec<u8>> = (offset..offset + n).map(value).collect();
            let records: Vec<Record> = values.iter().map(|v| Record::new(v)).collect();
            log.append_batch(&records).expect("append");
            offset += n;
        }
        if setup & 0x80 != 0 {
            log.close().expect("close");
        }
    }
    let mut touched = Vec::new();
    for _ in 0..16 {
        if !edit(&dir, &mut data, &mut touched) {
            break;
        }
    }

    // Whether an intact checkpoint or marker is left to say which segments existed.
    let intact = |n: u8, name: &str| !touched.contains(&n) && dir.join(name).exists();
    let knows_segments =
        intact(9, ".topiclog_recovery_point") || intact(11, ".topiclog_cleanshutdown");
    let verified = inspect::check_partition(&dir);
    let read_only = Partition::open_read_only(&dir, config(small)).map(|log| served(&log));
    let writable = Partition::open(&dir, config(small));
    let writable_served = writable.as_ref().ok().map(served);

    match (&read_only, &writable) {
        (Ok(ro), Ok(_)) => {
            let w = writable_served.as_ref().expect("served");
            assert_eq!((ro.0, ro.1), (w.0, w.1), "read-only and writable bounds");
            assert_eq!(ro.2, w.2, "read-only and writable records");
        }
        (Err(ro), Err(w)) => {
            assert!(typed(ro, &dir), "read-only: {ro:?}");
            assert!(typed(w, &dir), "writable: {w:?}");
        }
        // The writable open also replays the idempotent producers' batch headers, which a
        // read-only one (appending nothing) skips: damage there is then met at the first read
        // of those bytes, as a typed error, never served.
        (Ok((_, _, _, Some(error))), Err(w)) if typed(w, &dir) && error.contains("corrupt") => {}
        (ro, w) => panic!("the opens disagree: read-only {ro:?}, writable {w:?}"),
    }
    let recovery_point = writable
        .as_ref()
        .map_or(0, |log| log.recovery().recovery_point);
    if let Some((_, _, records, _)) = &writable_served {
        for (offset, v) in records {
            // A batch's base offset lies outside its CRC, and Kafka's format allows offset
            // gaps: above the recovery point (nothing records what was there) a changed one
            // cannot be told from a gap, so there only the CRC-checked value must be one
            // topiclog wrote.
            if *offset >= recovery_point {
                assert!(
                    v.starts_with(b"value-"),
                    "offset {offset} serves bytes never written"
                );
                continue;
            }
            assert_eq!(v, &value(*offset), "offset {offset} serves another value");
        }
    }
    if let Ok(report) = &verified {
        if writable.is_err() {
            assert!(
                !report.is_ok(),
                "verify passed, writable open refused: {writable:?}"
            );
        }
        if report.is_ok() {
            let (start, end, records, error) = writable_served.expect("writable opened");
            assert!(error.is_none(), "verify passed, read failed: {error:?}");
            if knows_segments {
                assert_eq!(
                    records.len() as i64,
                    end - start,
                    "every offset from {start} to {end}"
                );
            }
        }
    }
    if let Ok(log) = writable {
        let next = log.next_offset();
        if let Ok(offset) = log.append(Record::new(&value(next))) {
            assert_eq!(offset, next);
        }
    }
}
