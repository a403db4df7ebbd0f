//! Model-based property test of transactions through a store (feature `fault-injection`): two
//! transactional ids append to three partitions of two topics in random interleavings, beside
//! plain appends; they commit, abort, are fenced by a new handle of their id, aborted by an
//! administrator or by their timeout; the store is closed, its process crashes, its power
//! fails, or its disk halts in the middle of a commit before the power fails.
//!
//! The model holds every record of every partition with its fate: plain, committed, aborted,
//! or in an open transaction. After every operation, per partition: a `read_uncommitted` read
//! returns every record in order; a `read_committed` read returns the plain and committed
//! records before the first record of an open transaction, which is where the last stable
//! offset is; and the store lists open exactly the ids the model has open. A commit the disk
//! interrupted may have happened or not: the reopened store says which, and the check then
//! holds it to all of its partitions.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::ManualClock;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use topiclog::config::{LogConfig, StoreOptions, TopicConfig};
use topiclog::partition::{IsolationLevel, ReadOptions};
use topiclog::testing::{CrashMode, Fault, FaultDisk, FaultKind, FaultOp};
use topiclog::{Error, Record, Store, TransactionalProducer};

const PARTITIONS: [(&str, u32); 3] = [("a", 0), ("a", 1), ("b", 0)];
const IDS: [&str; 2] = ["x", "y"];
/// `transaction.timeout.ms` of every handle.
const TIMEOUT_MS: i64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    /// Begins a transaction of `id` (a new handle is made and initialized if it has none).
    Begin {
        id: usize,
    },
    /// Appends `n` records to `part` in `id`'s transaction.
    Send {
        id: usize,
        part: usize,
        n: u8,
    },
    Commit {
        id: usize,
    },
    Abort {
        id: usize,
    },
    /// A second handle of `id` initializes: the first is fenced, its transaction aborted.
    Fence {
        id: usize,
    },
    /// `Store::abort_transaction(id)`, as `topiclog transactions abort` does.
    AdminAbort {
        id: usize,
    },
    /// The clock moves past the timeout and the store aborts what is open.
    Timeout,
    /// A non-transactional append of `n` records.
    Plain {
        part: usize,
        n: u8,
    },
    Close,
    Crash,
    PowerLoss {
        seed: u64,
        pages: bool,
    },
    /// `id`'s commit with the disk halting at its `call`-th filesystem call, then a power
    /// loss.
    TornCommit {
        id: usize,
        call: u8,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS.len();
    let part = 0..PARTITIONS.len();
    prop_oneof![
        4 => id.clone().prop_map(|id| Op::Begin { id }),
        8 => (id.clone(), part.clone(), 1u8..4).prop_map(|(id, part, n)| Op::Send { id, part, n }),
        3 => id.clone().prop_map(|id| Op::Commit { id }),
        2 => id.clone().prop_map(|id| Op::Abort { id }),
        1 => id.clone().prop_map(|id| Op::Fence { id }),
        1 => id.clone().prop_map(|id| Op::AdminAbort { id }),
        1 => Just(Op::Timeout),
        3 => (part, 1u8..3).prop_map(|(part, n)| Op::Plain { part, n }),
        1 => Just(Op::Close),
        1 => Just(Op::Crash),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(seed, pages)| Op::PowerLoss { seed, pages }),
        2 => (id, 0u8..40, any::<u64>()).prop_map(|(id, call, seed)| Op::TornCommit { id, call, seed }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Plain,
    Committed,
    Aborted,
    /// In the open transaction with this number.
    Open(u64),
}

#[derive(Debug, Default)]
struct Model {
    /// Every record of each partition, in order: its value and fate.
    records: Vec<Vec<(Vec<u8>, Fate)>>,
    /// Each id's open transaction: its number and whether it appended anything.
    open: [Option<(u64, bool)>; 2],
    next_txn: u64,
    next_plain: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            records: vec![Vec::new(); PARTITIONS.len()],
            ..Model::default()
        }
    }

    fn end(&mut self, txn: u64, fate: Fate) {
        for part in &mut self.records {
            for (_, f) in part.iter_mut().filter(|(_, f)| *f == Fate::Open(txn)) {
                *f = fate;
            }
        }
        for open in &mut self.open {
            if open.is_some_and(|(t, _)| t == txn) {
                *open = None;
            }
        }
    }

    /// Every open transaction aborted (a reopen, a timeout).
    fn abort_all(&mut self) {
        for txn in self
            .open
            .iter()
            .flatten()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
        {
            self.end(txn, Fate::Aborted);
        }
    }
}

/// The system under test: the store and each id's handle.
struct Sut {
    disk: Arc<FaultDisk>,
    locks: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Option<Store>,
    handles: [Option<TransactionalProducer>; 2],
}

impl Sut {
    fn options(&self) -> StoreOptions {
        let log = LogConfig::builder()
            .clock(self.clock.clone())
            .build()
            .unwrap();
        StoreOptions::builder().log_config(log).build()
    }

    fn open(&mut self) {
        self.handles = [None, None];
        self.store = None;
        let store =
            Store::open_on_fault_disk(Arc::clone(&self.disk), self.locks.path(), self.options())
                .unwrap();
        self.store = Some(store);
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    fn handle(&mut self, id: usize) -> &TransactionalProducer {
        if self.handles[id].is_none() {
            let p = self
                .store()
                .transactional_producer(IDS[id])
                .unwrap()
                .with_transaction_timeout(std::time::Duration::from_millis(TIMEOUT_MS as u64));
            p.init_transactions().unwrap();
            self.handles[id] = Some(p);
        }
        self.handles[id].as_ref().expect("made")
    }
}

fn topic() -> TopicConfig {
    // Small index files: the fault disk holds every file in memory.
    let log = LogConfig::builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap();
    TopicConfig::new(2).with_log(log)
}

fn read(store: &Store, part: usize, level: IsolationLevel) -> Vec<(i64, Vec<u8>)> {
    let (topic, n) = PARTITIONS[part];
    let p = store.topic(topic).unwrap().partition(n).unwrap();
    let options = ReadOptions::new().isolation_level(level);
    p.read_with(p.log_start_offset(), options)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), r.value().unwrap().to_vec())
        })
        .collect()
}

fn check(sut: &Sut, model: &Model) -> Result<(), TestCaseError> {
    let store = sut.store();
    for (part, records) in model.records.iter().enumerate() {
        let all = read(store, part, IsolationLevel::ReadUncommitted);
        let values: Vec<&[u8]> = all.iter().map(|(_, v)| v.as_slice()).collect();
        let want: Vec<&[u8]> = records.iter().map(|(v, _)| v.as_slice()).collect();
        prop_assert_eq!(values, want, "read_uncommitted of {:?}", PARTITIONS[part]);
        let first_open = records.iter().position(|(_, f)| matches!(f, Fate::Open(_)));
        let (topic, n) = PARTITIONS[part];
        let p = store.topic(topic).unwrap().partition(n).unwrap();
        let lso = first_open.map_or(p.next_offset(), |i| all[i].0);
        prop_assert_eq!(p.last_stable_offset(), lso, "LSO of {:?}", PARTITIONS[part]);
        let committed: Vec<Vec<u8>> = read(store, part, IsolationLevel::ReadCommitted)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let want: Vec<Vec<u8>> = records[..first_open.unwrap_or(records.len())]
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Plain | Fate::Committed))
            .map(|(v, _)| v.clone())
            .collect();
        prop_assert_eq!(committed, want, "read_committed of {:?}", PARTITIONS[part]);
    }
    let listed: BTreeSet<String> = store
        .transactions()
        .unwrap()
        .into_iter()
        .map(|t| {
            t.transactional_id
                .expect("every transaction is the coordinator's")
        })
        .collect();
    let open: BTreeSet<String> = (0..IDS.len())
        .filter(|&id| model.open[id].is_some_and(|(_, sent)| sent))
        .map(|id| IDS[id].to_owned())
        .collect();
    prop_assert_eq!(listed, open, "open transactions");
    Ok(())
}

/// A handle of `id` that was fenced refuses its next call.
fn assert_fenced(old: Option<TransactionalProducer>) -> Result<(), TestCaseError> {
    if let Some(old) = old {
        let refused = old
            .begin_transaction()
            .and_then(|()| old.abort_transaction());
        prop_assert!(
            matches!(refused, Err(Error::ProducerFenced { .. })),
            "{:?}",
            refused
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut sut = Sut {
        disk: Arc::new(FaultDisk::new()),
        locks: tempfile::tempdir().unwrap(),
        clock: ManualClock::new(1_000_000),
        store: None,
        handles: [None, None],
    };
    sut.open();
    for (name, count) in [("a", 2), ("b", 1)] {
        let mut config = topic();
        if count == 1 {
            config = TopicConfig::new(1).with_log(config.log().clone());
        }
        sut.store().create_topic(name, config).unwrap();
    }
    let mut model = Model::new();
    for op in ops {
        sut.clock
            .set(sut.clock.0.load(std::sync::atomic::Ordering::SeqCst) + 10);
        match op {
            Op::Begin { id } => {
                if model.open[id].is_none() {
                    sut.handle(id).begin_transaction().unwrap();
                    model.open[id] = Some((model.next_txn, false));
                    model.next_txn += 1;
                }
            }
            Op::Send { id, part, n } => {
                let Some((txn, _)) = model.open[id] else {
                    continue;
                };
                let values: Vec<Vec<u8>> = (0..n)
                    .map(|i| {
                        format!(
                            "{}-t{txn}-{part}-{}",
                            IDS[id],
                            model.records[part].len() + usize::from(i)
                        )
                        .into_bytes()
                    })
                    .collect();
                let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
                let (topic, n) = PARTITIONS[part];
                sut.handle(id).append(topic, n, &records).unwrap();
                model.records[part].extend(values.into_iter().map(|v| (v, Fate::Open(txn))));
                model.open[id] = Some((txn, true));
            }
            Op::Commit { id } => {
                if let Some((txn, _)) = model.open[id] {
                    sut.handle(id).commit_transaction().unwrap();
                    model.end(txn, Fate::Committed);
                }
            }
            Op::Abort { id } => {
                if let Some((txn, _)) = model.open[id] {
                    sut.handle(id).abort_transaction().unwrap();
                    model.end(txn, Fate::Aborted);
                }
            }
            Op::Fence { id } => {
                let old = sut.handles[id].take();
                sut.handle(id);
                if let Some((txn, _)) = model.open[id] {
                    model.end(txn, Fate::Aborted);
                }
                assert_fenced(old)?;
            }
            Op::AdminAbort { id } => {
                let had = sut.store().abort_transaction(IDS[id]).unwrap();
                let sent = model.open[id].is_some_and(|(_, sent)| sent);
                prop_assert_eq!(had, sent, "admin abort of {}", IDS[id]);
                if sent {
                    let (txn, _) = model.open[id].expect("open");
                    model.end(txn, Fate::Aborted);
                    assert_fenced(sut.handles[id].take())?;
                }
            }
            Op::Timeout => {
                let now = sut.clock.0.load(std::sync::atomic::Ordering::SeqCst);
                sut.clock.set(now + TIMEOUT_MS + 1);
                let aborted = sut.store().abort_timed_out_transactions().unwrap();
                let sent: Vec<usize> = (0..IDS.len())
                    .filter(|&id| model.open[id].is_some_and(|(_, sent)| sent))
                    .collect();
                prop_assert_eq!(aborted, sent.len(), "timed out");
                for id in sent {
                    let (txn, _) = model.open[id].expect("open");
                    model.end(txn, Fate::Aborted);
                    assert_fenced(sut.handles[id].take())?;
                }
            }
            Op::Plain { part, n } => {
                let (topic, p) = PARTITIONS[part];
                let topic = sut.store().topic(topic).unwrap();
                for _ in 0..n {
                    let value = format!("plain-{}", model.next_plain).into_bytes();
                    model.next_plain += 1;
                    topic.append_to(p, Record::new(&value)).unwrap();
                    model.records[part].push((value, Fate::Plain));
                }
            }
            Op::Close => {
                sut.store().close().unwrap();
                sut.open();
                model.abort_all();
            }
            Op::Crash => {
                sut.disk.kill();
                sut.open();
                model.abort_all();
            }
            Op::PowerLoss { seed, pages } => {
                let mode = if pages {
                    CrashMode::Pages
                } else {
                    CrashMode::Prefix
                };
                sut.disk.crash_with(seed, mode);
                sut.open();
                model.abort_all();
            }
            Op::TornCommit { id, call, seed } => {
                let Some((txn, _)) = model.open[id] else {
                    continue;
                };
                sut.handle(id);
                sut.disk.inject(
                    Fault::new(FaultOp::Any, FaultKind::CrashAfterBytes(0)).after(u64::from(call)),
                );
                let result = sut.handles[id].as_ref().expect("made").commit_transaction();
                sut.disk.clear_faults();
                match result {
                    Ok(()) => model.end(txn, Fate::Committed),
                    Err(Error::Io { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("commit: {e:?}"))),
                }
                if sut.disk.is_halted() || model.open[id].is_some() {
                    sut.disk.crash_with(seed, CrashMode::Pages);
                    sut.open();
                    if let Some((txn, _)) = model.open[id] {
                        // In doubt: the store decides; the check holds it to every partition.
                        let committed = decided_commit(&sut, &model, txn);
                        model.end(
                            txn,
                            if committed {
                                Fate::Committed
                            } else {
                                Fate::Aborted
                            },
                        );
                    }
                    model.abort_all();
                }
            }
        }
        check(&sut, &model)?;
    }
    sut.store().close().unwrap();
    sut.open();
    model.abort_all();
    check(&sut, &model)
}

/// Whether the reopened store shows the first record of transaction `txn`.
fn decided_commit(sut: &Sut, model: &Model, txn: u64) -> bool {
    for (part, records) in model.records.iter().enumerate() {
        if let Some((value, _)) = records.iter().find(|(_, f)| *f == Fate::Open(txn)) {
            return read(sut.store(), part, IsolationLevel::ReadCommitted)
                .iter()
                .any(|(_, v)| v == value);
        }
    }
    false
}

proptest! {
    // 32 cases by default; `PROPTEST_CASES=N` for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(32),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn read_committed_across_partitions_is_what_the_model_says(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        run(ops)?;
    }
}
