//! A crash at every step of a transaction (feature `fault-injection`): the store's files are on
//! a fault disk that halts at the k-th filesystem call after the transaction begins, for every
//! k until one run goes through, then the process dies (its page cache kept) or the power
//! fails (unsynced bytes and directory entries may go, pages out of order). After reopening,
//! every partition and the group's offsets show the whole transaction or none of it; a commit
//! that returned is all there; an abort, or a fencing `init_transactions`, leaves none of it;
//! no transaction is left open, and the next transaction of the same id commits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::config::{
    ConsumerConfig, IsolationLevel, LogConfig, OffsetReset, StoreOptions, TopicConfig,
};
use topiclog::partition::{IsolationLevel as Level, ReadOptions};
use topiclog::testing::{CrashMode, Fault, FaultDisk, FaultKind, FaultOp};
use topiclog::{Error, Record, Store, TransactionalProducer};

/// The output partitions each transaction writes to (two topics, as a stream processor's
/// output and changelog would be).
const OUTPUTS: [(&str, u32); 4] = [("out", 0), ("out", 1), ("log", 0), ("log", 1)];
const GROUP: &str = "g";

/// Small index files (the fault disk holds every file in memory and copies it at each sync);
/// with `lazy`, Kafka's flush policy (the page cache decides) instead of topiclog's default of
/// a sync per append, so only the transaction's own syncs make its records durable.
fn topic(lazy: bool) -> TopicConfig {
    let mut log = LogConfig::builder().segment_index_bytes(4096);
    if lazy {
        log = log.flush_messages(i64::MAX).flush_ms(i64::MAX);
    }
    TopicConfig::new(2).with_log(log.build().unwrap())
}

fn open(disk: &Arc<FaultDisk>, locks: &Path) -> Store {
    Store::open_on_fault_disk(Arc::clone(disk), locks, StoreOptions::default()).unwrap()
}

/// The values `read_committed` returns from each output partition.
fn committed(store: &Store) -> BTreeMap<(&'static str, u32), Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (topic, n) in OUTPUTS {
        let p = store.topic(topic).unwrap().partition(n).unwrap();
        let options = ReadOptions::new().isolation_level(Level::ReadCommitted);
        let values = p
            .read_with(p.log_start_offset(), options)
            .unwrap()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect();
        out.insert((topic, n), values);
    }
    out
}

/// Values of transaction `txn`, two per output partition.
fn values(txn: u32, topic: &str, n: u32) -> Vec<Vec<u8>> {
    (0..2)
        .map(|i| format!("t{txn}-{topic}{n}-{i}").into_bytes())
        .collect()
}

/// What the store shows after transactions `0..=last` committed.
fn expected(last: Option<u32>) -> BTreeMap<(&'static str, u32), Vec<Vec<u8>>> {
    OUTPUTS
        .iter()
        .map(|&(topic, n)| {
            let all = (0..last.map_or(0, |l| l + 1))
                .flat_map(|t| values(t, topic, n))
                .collect();
            ((topic, n), all)
        })
        .collect()
}

/// The group's offsets after transaction `txn` committed: it consumed `txn + 1` input records
/// of each input partition.
fn offsets(txn: u32) -> Vec<((String, u32), i64)> {
    (0..2)
        .map(|n| (("in".to_owned(), n), i64::from(txn) + 1))
        .collect()
}

/// A new store with the inputs, and transaction 0 committed by the returned producer, with
/// the offsets of the returned consumer.
fn setup(
    disk: &Arc<FaultDisk>,
    locks: &Path,
    lazy: bool,
) -> (Store, topiclog::Consumer, TransactionalProducer) {
    let store = open(disk, locks);
    store.create_topic("in", topic(lazy)).unwrap();
    store.create_topic("out", topic(lazy)).unwrap();
    store.create_topic("log", topic(lazy)).unwrap();
    let input = store.topic("in").unwrap();
    for n in 0..2 {
        for i in 0..4 {
            input
                .append_to(n, Record::new(format!("in{n}-{i}").as_bytes()))
                .unwrap();
        }
    }
    let consumer = consumer(&store);
    let p = producer(&store);
    fill_transaction(&p, &consumer, 0).unwrap();
    p.commit_transaction().unwrap();
    (store, consumer, p)
}

fn consumer(store: &Store) -> topiclog::Consumer {
    let config = ConsumerConfig::builder()
        .group_id(GROUP)
        .enable_auto_commit(false)
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(IsolationLevel::ReadCommitted)
        .build()
        .unwrap();
    let mut consumer = store.consumer(config).unwrap();
    consumer.subscribe(&["in"]).unwrap();
    consumer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(
        consumer.assignment().len(),
        2,
        "the one member owns both inputs"
    );
    consumer
}

fn producer(store: &Store) -> TransactionalProducer {
    let p = store.transactional_producer("eos").unwrap();
    p.init_transactions().unwrap();
    p
}

/// Transaction `txn` up to its end: appends to every output, sends the offsets.
fn fill_transaction(
    p: &TransactionalProducer,
    consumer: &topiclog::Consumer,
    txn: u32,
) -> topiclog::Result<()> {
    p.begin_transaction()?;
    for (topic, n) in OUTPUTS {
        let batch: Vec<Vec<u8>> = values(txn, topic, n);
        let records: Vec<Record<'_>> = batch.iter().map(|v| Record::new(v)).collect();
        p.append(topic, n, &records)?;
    }
    p.send_offsets_to_transaction(&offsets(txn), &consumer.group_metadata().expect("a member"))
}

/// How transaction 1 ends in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Commit,
    Abort,
    /// A second handle of the same transactional id initializes while it is open.
    Fence,
}

/// Checks the reopened store: transaction 0 whole, transaction 1 whole or absent (present if
/// `must_commit`, absent if `must_not`), offsets agreeing, nothing open. Returns whether
/// transaction 1 committed.
fn check(store: &Store, must_commit: bool, must_not: bool, what: &str) -> bool {
    let seen = committed(store);
    let one = if seen == expected(Some(1)) {
        true
    } else if seen == expected(Some(0)) {
        false
    } else {
        panic!("{what}: a partial transaction: {seen:?}");
    };
    assert!(!must_commit || one, "{what}: a returned commit was lost");
    assert!(!must_not || !one, "{what}: an aborted transaction shows");
    let offsets_seen: Vec<_> = store
        .committed_offsets(GROUP)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        offsets_seen,
        offsets(u32::from(one)),
        "{what}: offsets disagree with the outputs"
    );
    assert!(
        store.transactions().unwrap().is_empty(),
        "{what}: left open"
    );
    for (topic, n) in OUTPUTS {
        let p = store.topic(topic).unwrap().partition(n).unwrap();
        assert_eq!(
            p.last_stable_offset(),
            p.next_offset(),
            "{what}: {topic}-{n}"
        );
    }
    one
}

fn run(ending: Ending, power_loss: bool, lazy: bool) {
    let locks = tempfile::tempdir().unwrap();
    let mut k = 0;
    let mut outcomes = [0u32; 2];
    loop {
        let disk = Arc::new(FaultDisk::new());
        let (store, consumer, p) = setup(&disk, locks.path(), lazy);
        disk.inject(Fault::new(FaultOp::Any, FaultKind::CrashAfterBytes(0)).after(k));
        let mut ending_returned = false;
        // Transaction 1 and its end, then the id's next transaction opens (its first append
        // records it durably in the coordinator's file): open at the crash, it must vanish.
        let result = fill_transaction(&p, &consumer, 1)
            .and_then(|()| match ending {
                Ending::Commit => p.commit_transaction().map(|()| p),
                Ending::Abort => p.abort_transaction().map(|()| p),
                Ending::Fence => {
                    let fencing = store.transactional_producer("eos")?;
                    fencing.init_transactions()?;
                    Ok(fencing)
                }
            })
            .and_then(|p| {
                ending_returned = true;
                p.begin_transaction()?;
                p.append("out", 0, &[Record::new(b"t2 never committed")])?;
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(Error::Io { .. }) => assert!(disk.is_halted(), "{k}: only the halt fails"),
            Err(e) => panic!("crash at call {k}: {e:?}"),
        }
        let finished = !disk.is_halted();
        drop(consumer);
        disk.clear_faults();
        if power_loss {
            let mode = if k % 2 == 0 {
                CrashMode::Pages
            } else {
                CrashMode::Prefix
            };
            disk.crash_with(k, mode);
        } else {
            disk.kill();
        }
        drop(store);
        let what =
            format!("{ending:?}, crash at call {k} (power loss: {power_loss}, lazy: {lazy})");
        let store = Store::open_on_fault_disk(Arc::clone(&disk), locks.path(), Default::default())
            .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
        let commit = ending == Ending::Commit;
        let one = check(&store, commit && ending_returned, !commit, &what);
        outcomes[usize::from(one)] += 1;
        // The id goes on: its next transaction commits, and a clean reopen keeps it all. (The
        // group's member from before the crash holds its partitions until its session times
        // out, so this one sends no offsets.)
        let p = producer(&store);
        let next = 3;
        p.begin_transaction().unwrap();
        for (topic, n) in OUTPUTS {
            let batch = values(next, topic, n);
            let records: Vec<Record<'_>> = batch.iter().map(|v| Record::new(v)).collect();
            p.append(topic, n, &records).unwrap();
        }
        p.commit_transaction().unwrap();
        let seen = committed(&store);
        for (topic, n) in OUTPUTS {
            let tail = &seen[&(topic, n)][seen[&(topic, n)].len() - 2..];
            assert_eq!(tail, values(next, topic, n), "{what}: next transaction");
        }
        drop(p);
        store.close().unwrap();
        drop(store);
        let store = open(&disk, locks.path());
        assert_eq!(committed(&store), seen, "{what}: clean reopen");
        drop(store);
        if finished {
            break;
        }
        k += 1;
    }
    eprintln!(
        "{ending:?}: {k} crash points; transaction 1 absent {0}, whole {1}",
        outcomes[0], outcomes[1]
    );
    assert!(k > 20, "a transaction makes many calls: {k}");
    if ending == Ending::Commit {
        assert!(
            outcomes[0] > 0 && outcomes[1] > 1,
            "both outcomes: {outcomes:?}"
        );
    }
}

#[test]
fn a_commit_crashed_at_any_call_shows_all_or_nothing() {
    run(Ending::Commit, false, false);
    run(Ending::Commit, false, true);
}

#[test]
fn a_commit_with_a_power_loss_at_any_call_shows_all_or_nothing() {
    run(Ending::Commit, true, false);
}

#[test]
fn a_commit_with_a_power_loss_at_any_call_under_lazy_flushing_shows_all_or_nothing() {
    run(Ending::Commit, true, true);
}

#[test]
fn an_abort_crashed_at_any_call_shows_nothing() {
    run(Ending::Abort, false, true);
    run(Ending::Abort, true, true);
}

#[test]
fn a_fencing_init_crashed_at_any_call_shows_nothing() {
    run(Ending::Fence, false, true);
    run(Ending::Fence, true, true);
}

#[test]
fn a_new_store_survives_a_power_loss() {
    let locks = tempfile::tempdir().unwrap();
    let disk = Arc::new(FaultDisk::new());
    let store = open(&disk, locks.path());
    store.create_topic("t", topic(false)).unwrap();
    store
        .topic("t")
        .unwrap()
        .append_to(1, Record::new(b"kept"))
        .unwrap();
    disk.crash(3);
    drop(store);
    let store = open(&disk, locks.path());
    let p = store.topic("t").unwrap().partition(1).unwrap();
    assert_eq!(
        p.next_offset(),
        1,
        "the store, its topic and its record survive"
    );
}
