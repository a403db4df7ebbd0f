//! A crash at every step of a compaction (feature `fault-injection`): the disk halts at the
//! k-th filesystem call of `compact` for every k until one compaction runs through, then the
//! process dies (its page cache kept) or the power fails (every unsynced byte and directory
//! entry may go, pages out of order). The reopened partition must hold, for every key, exactly
//! the latest value appended; every record it returns must be one that was appended, at its
//! own offset; nothing is torn; the log end stays. A second compaction then runs through and
//! the same holds. Recovery finishes a swap a crash left decided (`swaps_completed`) and undoes
//! the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use topiclog::config::{CleanupPolicy, LogConfig};
use topiclog::testing::{CrashMode, Fault, FaultDisk, FaultKind, FaultOp};
use topiclog::{Error, Partition, Record};

const DIR: &str = "/p0";
const RECORDS: u32 = 100;

fn config() -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1200)
        .segment_index_bytes(4096)
        .index_interval_bytes(128)
        .retention_ms(-1)
        .build()
        .unwrap()
}

/// A record as appended: key and value (None for a tombstone).
type Appended = (Vec<u8>, Option<Vec<u8>>);

/// Appends keyed records and tombstones, durably; returns them by offset.
fn fill(log: &Partition) -> BTreeMap<i64, Appended> {
    let mut all = BTreeMap::new();
    for i in 0..RECORDS {
        let key = format!("k{}", (i * 31) % 23).into_bytes();
        let offset = if i % 11 == 10 {
            log.append(Record::tombstone(&key)).unwrap();
            all.insert(log.next_offset() - 1, (key, None));
            continue;
        } else {
            let value = format!("v{i}-{}", "x".repeat((i % 7) as usize)).into_bytes();
            let o = log.append(Record::keyed(&key, &value)).unwrap();
            all.insert(o, (key, Some(value)));
            o
        };
        let _ = offset;
    }
    all
}

/// The latest value per key, as a consumer reading the whole log would end up with.
fn latest(
    records: impl IntoIterator<Item = (i64, Appended)>,
) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    records.into_iter().map(|(_, (k, v))| (k, v)).collect()
}

fn check(log: &Partition, appended: &BTreeMap<i64, Appended>, what: &str) {
    let mut read = Vec::new();
    for r in log.read(log.log_start_offset()).unwrap() {
        let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
        let key = r.key().expect("every record has a key").to_vec();
        read.push((r.offset(), (key, r.value().map(<[u8]>::to_vec))));
    }
    for (offset, record) in &read {
        assert_eq!(
            appended.get(offset),
            Some(record),
            "{what}: offset {offset}"
        );
    }
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "{what}: order");
    // Tombstones (within delete.retention.ms here) stay: the latest state is the same.
    assert_eq!(latest(read), latest(appended.clone()), "{what}");
    assert_eq!(log.next_offset(), i64::from(RECORDS), "{what}: log end");
}

fn run(power_loss: bool) {
    let mut finished = false;
    let mut swaps_completed = 0;
    let mut k = 0;
    while !finished {
        let disk = Arc::new(FaultDisk::new());
        let log = Partition::open_on_fault_disk(Arc::clone(&disk), DIR, config()).unwrap();
        let appended = fill(&log);
        assert!(log.segment_base_offsets().len() > 4);
        disk.inject(Fault::new(FaultOp::Any, FaultKind::CrashAfterBytes(0)).after(k));
        let result = log.compact();
        // A halt may also hit a best-effort call after the compaction succeeded (removing a
        // replaced segment's files): a crash point all the same.
        finished = !disk.is_halted();
        if finished {
            result.unwrap();
        } else if let Err(e) = result {
            assert!(matches!(e, Error::Io { .. }), "{k}: {e:?}");
        }
        drop(log);
        disk.clear_faults();
        if power_loss {
            disk.crash_with(
                k,
                if k % 2 == 0 {
                    CrashMode::Pages
                } else {
                    CrashMode::Prefix
                },
            );
        } else {
            disk.kill();
        }
        let what = format!("crash at call {k} (power loss: {power_loss})");
        let log = Partition::open_on_fault_disk(Arc::clone(&disk), DIR, config())
            .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
        swaps_completed += log.recovery().swaps_completed.len();
        for name in disk.file_names(DIR).unwrap() {
            assert!(
                !name.ends_with(".swap") && !name.ends_with(".cleaned"),
                "{what}: {name} left"
            );
        }
        check(&log, &appended, &what);
        let report = log.compact().unwrap();
        check(&log, &appended, &format!("{what}, compacted again"));
        if k == 0 {
            assert!(report.records_after < report.records_before, "{report:?}");
        }
        log.close().unwrap();
        drop(log);
        let log = Partition::open_on_fault_disk(Arc::clone(&disk), DIR, config()).unwrap();
        assert!(log.recovery().clean_shutdown, "{what}");
        check(&log, &appended, &format!("{what}, reopened"));
        k += 1;
    }
    eprintln!("{k} crash points, {swaps_completed} swaps finished by recovery");
    assert!(k > 20, "a compaction makes many calls: {k}");
    if !power_loss {
        assert!(swaps_completed > 0, "some crash left a decided swap");
    }
}

#[test]
fn a_process_crash_at_every_call_of_a_compaction_loses_no_latest_value() {
    run(false);
}

#[test]
fn a_power_loss_at_every_call_of_a_compaction_loses_no_latest_value() {
    run(true);
}

#[test]
fn a_damaged_or_empty_log_swap_fails_the_open_naming_it() {
    for contents in [b"not a batch".to_vec(), Vec::new()] {
        let dir = tempfile::tempdir().unwrap();
        let log = Partition::open(dir.path(), config()).unwrap();
        log.append(Record::keyed(b"k", b"v")).unwrap();
        log.close().unwrap();
        drop(log);
        let swap = dir.path().join(format!("{:020}.log.swap", 0));
        std::fs::write(&swap, &contents).unwrap();
        match Partition::open(dir.path(), config()) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, swap),
            other => panic!("expected Corrupt naming the swap, got {other:?}"),
        }
        assert!(swap.exists(), "left for the user to look at");
    }
}
