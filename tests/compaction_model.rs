//! Model-based property test of log compaction (feature `fault-injection`): random keyed
//! appends and batches, tombstones, compactions (some with a key map too small for one pass),
//! time passing (tombstone horizons), clean closes, process crashes and power losses, on a
//! compacted partition over `topiclog::testing::FaultDisk`, under the durable policy.
//!
//! The model holds every record appended, by offset. After every operation the partition must
//! return, from its log start: only records that were appended, each at its own offset and with
//! its own content, in offset order; for every key, the latest record appended (a tombstone
//! may be gone once `delete.retention.ms` has passed since a compaction kept it, and then the
//! key is gone with it); and the log end must equal the number of records appended. On failure
//! proptest prints the shrunk operations.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::ManualClock;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use topiclog::config::{CleanerConfig, CleanupPolicy, LogConfig};
use topiclog::testing::{CrashMode, FaultDisk};
use topiclog::{Partition, Record};

const DIR: &str = "/p0";
const KEYS: u8 = 8;
const DELETE_RETENTION_MS: i64 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    /// One record; `None` value: a tombstone.
    Append {
        key: u8,
        value: Option<u8>,
    },
    /// One batch of keyed records.
    Batch(Vec<(u8, Option<u8>)>),
    /// Compact; `small`: with a key map of a few keys, so it takes several passes.
    Compact {
        small: bool,
    },
    /// The clock moves this many milliseconds.
    Time(u16),
    Close,
    Crash,
    PowerLoss {
        seed: u64,
        pages: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0..KEYS, prop::option::weighted(0.85, any::<u8>()));
    prop_oneof![
        8 => record.clone().prop_map(|(key, value)| Op::Append { key, value }),
        3 => prop::collection::vec(record, 1..6).prop_map(Op::Batch),
        4 => any::<bool>().prop_map(|small| Op::Compact { small }),
        2 => (0u16..1500).prop_map(Op::Time),
        1 => Just(Op::Close),
        1 => Just(Op::Crash),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(seed, pages)| Op::PowerLoss { seed, pages }),
    ]
}

/// A record's content: key and value.
type Content = (Vec<u8>, Option<Vec<u8>>);

struct Model {
    /// Every record appended, by offset.
    appended: BTreeMap<i64, Content>,
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn value(v: u8) -> Vec<u8> {
    format!("value-{v}-{}", "x".repeat(usize::from(v % 40))).into_bytes()
}

fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(400)
        .segment_index_bytes(4096)
        .index_interval_bytes(100)
        .delete_retention_ms(DELETE_RETENTION_MS)
        .retention_ms(-1)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn check(log: &Partition, model: &Model) -> Result<(), TestCaseError> {
    let mut latest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    let mut last = -1;
    for r in log.read(log.log_start_offset()).unwrap() {
        let r = r.map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
        let content = (
            r.key().map(<[u8]>::to_vec).unwrap_or_default(),
            r.value().map(<[u8]>::to_vec),
        );
        prop_assert!(r.offset() > last, "order at {}", r.offset());
        last = r.offset();
        prop_assert_eq!(
            model.appended.get(&r.offset()),
            Some(&content),
            "offset {}",
            r.offset()
        );
        latest.insert(content.0, (r.offset(), content.1));
    }
    let mut want: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    for (&offset, (k, v)) in &model.appended {
        want.insert(k.clone(), (offset, v.clone()));
    }
    for (k, (offset, v)) in &want {
        match latest.get(k) {
            Some(got) => prop_assert_eq!(got, &(*offset, v.clone()), "key {:?}", k),
            // Only a tombstone may go, and then the key with it.
            None => prop_assert!(v.is_none(), "latest of {:?} (offset {}) lost", k, offset),
        }
    }
    prop_assert_eq!(log.next_offset(), model.appended.len() as i64);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let disk = Arc::new(FaultDisk::new());
    let clock = ManualClock::new(1_000_000);
    let open = |disk: &Arc<FaultDisk>| {
        Partition::open_on_fault_disk(Arc::clone(disk), DIR, config(&clock))
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))
    };
    let mut log = open(&disk)?;
    let mut model = Model {
        appended: BTreeMap::new(),
    };
    let mut now = 1_000_000;
    for op in ops {
        match op {
            Op::Append { key: k, value: v } => {
                let (k, v) = (key(k), v.map(value));
                let record = match &v {
                    Some(v) => Record::keyed(&k, v),
                    None => Record::tombstone(&k),
                };
                let offset = log.append(record).unwrap();
                model.appended.insert(offset, (k, v));
            }
            Op::Batch(records) => {
                let owned: Vec<Content> = records
                    .iter()
                    .map(|&(k, v)| (key(k), v.map(value)))
                    .collect();
                let batch: Vec<Record<'_>> = owned
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => Record::keyed(k, v),
                        None => Record::tombstone(k),
                    })
                    .collect();
                let info = log.append_batch(&batch).unwrap();
                for (offset, content) in info.offsets().zip(owned) {
                    model.appended.insert(offset, content);
                }
            }
            Op::Compact { small } => {
                let cleaner = match small {
                    true => CleanerConfig::default().dedupe_buffer_size(400),
                    false => CleanerConfig::default(),
                };
                log.compact_with(&cleaner)
                    .map_err(|e| TestCaseError::fail(format!("compact: {e}")))?;
            }
            Op::Time(ms) => {
                now += i64::from(ms);
                clock.set(now);
            }
            Op::Close => {
                log.close().unwrap();
                drop(log);
                log = open(&disk)?;
                prop_assert!(log.recovery().clean_shutdown);
            }
            Op::Crash => {
                drop(log);
                disk.kill();
                log = open(&disk)?;
            }
            Op::PowerLoss { seed, pages } => {
                drop(log);
                let mode = if pages {
                    CrashMode::Pages
                } else {
                    CrashMode::Prefix
                };
                disk.crash_with(seed, mode);
                log = open(&disk)?;
            }
        }
        check(&log, &model)?;
    }
    Ok(())
}

proptest! {
    // 48 cases by default; `PROPTEST_CASES=N` for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compaction_keeps_the_latest_record_of_every_key(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
