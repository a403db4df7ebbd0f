//! Model-based property test of a partition's transactions (feature `fault-injection`):
//! random transactional appends of several producers, commits, aborts, plain appends, clean
//! closes, process crashes and power losses, and appends or markers torn by a crash partway
//! through, on `topiclog::testing::FaultDisk` under the durable policy.
//!
//! The model holds, per producer, the offsets of its open transaction, and the offsets a
//! `read_committed` reader must return (committed transactions and plain records). After
//! every operation: a `read_committed` read returns exactly the model's offsets below the
//! last stable offset, which is the first offset of the oldest open transaction (or the log
//! end); a `read_uncommitted` read returns every record; the open transactions and the
//! aborted ones are as the model says. A torn operation may have happened or not: the
//! reopened partition says which (its log end, its open transactions), and the model follows.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use topiclog::config::LogConfig;
use topiclog::partition::{IsolationLevel, ProducerStamp, ReadOptions};
use topiclog::record::{EndTxnMarker, TxnResult};
use topiclog::testing::{CrashMode, FaultDisk};
use topiclog::{Partition, Record};

const DIR: &str = "/p0";
const PRODUCERS: i64 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A transactional batch of `n` records from producer `p`.
    Send {
        p: i64,
        n: u8,
    },
    /// A COMMIT (or ABORT) marker for producer `p`.
    End {
        p: i64,
        commit: bool,
    },
    /// A plain batch of `n` records.
    Plain {
        n: u8,
    },
    /// `Send` or `End`, with the disk halting after `bytes` bytes, then a power loss.
    Torn {
        send: bool,
        p: i64,
        commit: bool,
        bytes: u16,
        seed: u64,
    },
    Close,
    Crash,
    PowerLoss {
        seed: u64,
        pages: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 1..=PRODUCERS;
    prop_oneof![
        8 => (p.clone(), 1u8..4).prop_map(|(p, n)| Op::Send { p, n }),
        5 => (p.clone(), prop::bool::weighted(0.6)).prop_map(|(p, commit)| Op::End { p, commit }),
        2 => (1u8..3).prop_map(|n| Op::Plain { n }),
        2 => (any::<bool>(), p, any::<bool>(), 0u16..400, any::<u64>())
            .prop_map(|(send, p, commit, bytes, seed)| Op::Torn { send, p, commit, bytes, seed }),
        1 => Just(Op::Close),
        1 => Just(Op::Crash),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(seed, pages)| Op::PowerLoss { seed, pages }),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Offsets a read_committed reader returns (once below the LSO).
    visible: BTreeSet<i64>,
    /// Per producer: the offsets of its open transaction.
    open: BTreeMap<i64, Vec<i64>>,
    /// Per producer: the next sequence.
    sequence: BTreeMap<i64, i32>,
    /// Aborted transactions, as (producer, marker offset).
    aborted: BTreeSet<(i64, i64)>,
    end: i64,
}

impl Model {
    fn lso(&self) -> i64 {
        self.open
            .values()
            .filter_map(|o| o.first().copied())
            .min()
            .unwrap_or(self.end)
    }
}

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(500)
        .segment_index_bytes(4096)
        .index_interval_bytes(100)
        .retention_ms(-1)
        .build()
        .unwrap()
}

fn stamp(model: &Model, p: i64) -> ProducerStamp {
    ProducerStamp {
        producer_id: p,
        epoch: 0,
        base_sequence: model.sequence.get(&p).copied().unwrap_or(0),
    }
}

fn marker(commit: bool) -> EndTxnMarker {
    EndTxnMarker {
        result: if commit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        },
        coordinator_epoch: 0,
    }
}

fn records(n: u8) -> Vec<Record<'static>> {
    (0..n).map(|_| Record::new(b"v")).collect()
}

/// The model after producer `p` appended `n` records at `base`.
fn sent(model: &mut Model, p: i64, n: u8, base: i64) {
    model
        .open
        .entry(p)
        .or_default()
        .extend(base..base + i64::from(n));
    *model.sequence.entry(p).or_default() += i32::from(n);
    model.end = base + i64::from(n);
}

/// The model after `p`'s marker at `offset`.
fn ended(model: &mut Model, p: i64, commit: bool, offset: i64) {
    let offsets = model.open.remove(&p).unwrap_or_default();
    if commit {
        model.visible.extend(offsets);
    } else {
        model.aborted.insert((p, offset));
    }
    model.end = offset + 1;
}

fn check(log: &Partition, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_offset(), model.end, "log end");
    let lso = model.lso();
    prop_assert_eq!(log.last_stable_offset(), lso, "LSO");
    let committed = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let got: Vec<i64> = log
        .read_with(log.log_start_offset(), committed)
        .unwrap()
        .map(|r| r.map(|r| r.offset()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
    let want: Vec<i64> = model.visible.iter().copied().filter(|&o| o < lso).collect();
    prop_assert_eq!(got, want, "read_committed");
    let mut open: Vec<(i64, i64)> = model
        .open
        .iter()
        .filter_map(|(&p, o)| Some((p, *o.first()?)))
        .collect();
    open.sort_by_key(|&(p, first)| (first, p));
    prop_assert_eq!(log.open_transactions(), open, "open transactions");
    let aborted: BTreeSet<(i64, i64)> = log
        .aborted_transactions(0..i64::MAX)
        .iter()
        .map(|a| (a.producer_id, a.last_offset))
        .collect();
    prop_assert_eq!(&aborted, &model.aborted, "aborted transactions");
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let disk = Arc::new(FaultDisk::new());
    let open = |disk: &Arc<FaultDisk>| {
        Partition::open_on_fault_disk(Arc::clone(disk), DIR, config())
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))
    };
    let mut log = open(&disk)?;
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Send { p, n } => {
                let info = log
                    .append_transactional(stamp(&model, p), &records(n))
                    .map_err(|e| TestCaseError::fail(format!("send: {e}")))?;
                sent(&mut model, p, n, info.base_offset);
            }
            Op::End { p, commit } => {
                let offset = log
                    .write_txn_marker(p, 0, marker(commit))
                    .map_err(|e| TestCaseError::fail(format!("marker: {e}")))?;
                ended(&mut model, p, commit, offset);
            }
            Op::Plain { n } => {
                let info = log.append_batch(&records(n)).unwrap();
                model.visible.extend(info.offsets());
                model.end = info.last_offset + 1;
            }
            Op::Torn {
                send,
                p,
                commit,
                bytes,
                seed,
            } => {
                let before = model.end;
                disk.crash_after_bytes(u64::from(bytes));
                let _ = match send {
                    true => log
                        .append_transactional(stamp(&model, p), &records(2))
                        .map(|_| ()),
                    false => log.write_txn_marker(p, 0, marker(commit)).map(|_| ()),
                };
                drop(log);
                disk.crash_with(seed, CrashMode::Pages);
                disk.clear_faults();
                log = open(&disk)?;
                // What survived: the reopened log says.
                if log.next_offset() > before {
                    match send {
                        true => sent(&mut model, p, 2, before),
                        false => ended(&mut model, p, commit, before),
                    }
                }
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
    // 64 cases by default; `PROPTEST_CASES=N` for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn read_committed_returns_what_the_model_says(ops in prop::collection::vec(op(), 1..100)) {
        run(ops)?;
    }
}
