//! Transactions through a store: a transactional producer's appends across topics and
//! partitions and its consumer offsets become visible together or not at all; fencing,
//! timeouts, reopens, and open transactions the coordinator does not know.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, IsolationLevel, OffsetReset, StoreOptions, TopicConfig};
use topiclog::partition::{IsolationLevel as Level, ProducerStamp, ReadOptions};
use topiclog::{Error, Record, Store, TxnState};

fn committed_values(store: &Store, topic: &str) -> Vec<(u32, i64)> {
    let t = store.topic(topic).unwrap();
    let mut out = Vec::new();
    for (n, p) in (0u32..).zip(t.partitions()) {
        let options = ReadOptions::new().isolation_level(Level::ReadCommitted);
        for r in p.read_with(p.log_start_offset(), options).unwrap() {
            out.push((n, r.unwrap().offset()));
        }
    }
    out
}

fn lso_at_end(store: &Store, topic: &str) -> bool {
    store
        .topic(topic)
        .unwrap()
        .partitions()
        .iter()
        .all(|p| p.last_stable_offset() == p.next_offset())
}

fn setup(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).unwrap();
    store.create_topic("a", TopicConfig::new(2)).unwrap();
    store.create_topic("b", TopicConfig::new(2)).unwrap();
    store
}

#[test]
fn a_commit_shows_every_partition_and_an_abort_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let p = store.transactional_producer("t1").unwrap();
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::InvalidTxnState { .. })
    ));
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    for (topic, n) in [("a", 0), ("a", 1), ("b", 0), ("b", 1)] {
        p.append(topic, n, &[Record::new(b"x"), Record::new(b"y")])
            .unwrap();
    }
    assert!(
        committed_values(&store, "a").is_empty(),
        "open: not visible"
    );
    assert_eq!(store.transactions().unwrap().len(), 1);
    p.commit_transaction().unwrap();
    assert_eq!(committed_values(&store, "a").len(), 4);
    assert_eq!(committed_values(&store, "b").len(), 4);
    assert!(lso_at_end(&store, "a") && lso_at_end(&store, "b"));
    p.begin_transaction().unwrap();
    p.append("a", 0, &[Record::new(b"gone")]).unwrap();
    p.append("b", 1, &[Record::new(b"gone")]).unwrap();
    p.abort_transaction().unwrap();
    assert_eq!(committed_values(&store, "a").len(), 4);
    assert_eq!(committed_values(&store, "b").len(), 4);
    assert!(store.transactions().unwrap().is_empty());
    // Outside a transaction: refused.
    assert!(matches!(
        p.append("a", 0, &[Record::new(b"no")]),
        Err(Error::InvalidTxnState { .. })
    ));
    store.close().unwrap();
    // The same after a reopen.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(committed_values(&store, "a").len(), 4);
    assert_eq!(committed_values(&store, "b").len(), 4);
}

#[test]
fn a_transaction_left_open_by_a_close_is_aborted_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let p = store.transactional_producer("t").unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.append("a", 1, &[Record::new(b"x")]).unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(lso_at_end(&store, "a"));
    assert!(committed_values(&store, "a").is_empty());
    assert!(store.transactions().unwrap().is_empty());
    // A new handle carries on with the next epoch.
    let p = store.transactional_producer("t").unwrap();
    p.init_transactions().unwrap();
    let (_, epoch) = p.producer_id_and_epoch().unwrap();
    assert_eq!(epoch, 1);
    p.begin_transaction().unwrap();
    p.append("a", 1, &[Record::new(b"y")]).unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(committed_values(&store, "a"), [(1, 2)]);
}

#[test]
fn a_new_handle_fences_the_old_one_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let old = store.transactional_producer("w").unwrap();
    old.init_transactions().unwrap();
    old.begin_transaction().unwrap();
    old.append("a", 0, &[Record::new(b"zombie")]).unwrap();
    let new = store.transactional_producer("w").unwrap();
    new.init_transactions().unwrap();
    assert!(lso_at_end(&store, "a"), "the old transaction was aborted");
    for result in [
        old.append("a", 0, &[Record::new(b"late")]).map(|_| ()),
        old.commit_transaction(),
    ] {
        assert!(
            matches!(result, Err(Error::ProducerFenced { .. })),
            "{result:?}"
        );
    }
    new.begin_transaction().unwrap();
    new.append("a", 0, &[Record::new(b"fresh")]).unwrap();
    new.commit_transaction().unwrap();
    let values: Vec<Vec<u8>> = {
        let log = store.topic("a").unwrap().partition(0).unwrap();
        let options = ReadOptions::new().isolation_level(Level::ReadCommitted);
        log.read_with(0, options)
            .unwrap()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect()
    };
    assert_eq!(values, [b"fresh".to_vec()]);
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let p = store
        .transactional_producer("slow")
        .unwrap()
        .with_transaction_timeout(Duration::from_millis(200));
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.append("b", 0, &[Record::new(b"x")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lso_at_end(&store, "b") {
        assert!(Instant::now() < deadline, "not aborted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(committed_values(&store, "b").is_empty());
}

#[test]
fn offsets_commit_with_the_transaction_and_only_for_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let input = store.topic("a").unwrap();
    input.append_to(0, Record::new(b"in-0")).unwrap();
    input.append_to(0, Record::new(b"in-1")).unwrap();
    let config = || {
        ConsumerConfig::builder()
            .group_id("g")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .build()
            .unwrap()
    };
    let mut consumer = store.consumer(config()).unwrap();
    consumer.subscribe(&["a"]).unwrap();
    let got = consumer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 2);
    let meta = consumer.group_metadata().unwrap();
    assert_eq!(meta.group_id(), "g");
    let p = store.transactional_producer("eos").unwrap();
    p.init_transactions().unwrap();
    // Aborted: no offsets.
    p.begin_transaction().unwrap();
    p.append("b", 0, &[Record::new(b"out")]).unwrap();
    p.send_offsets_to_transaction(&[(("a".to_owned(), 0), 2)], &meta)
        .unwrap();
    p.abort_transaction().unwrap();
    assert!(store.committed_offsets("g").unwrap().is_empty());
    // Committed: offsets and output together.
    p.begin_transaction().unwrap();
    p.append("b", 0, &[Record::new(b"out")]).unwrap();
    p.send_offsets_to_transaction(&[(("a".to_owned(), 0), 2)], &meta)
        .unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(
        store.committed_offsets("g").unwrap(),
        BTreeMap::from([(("a".to_owned(), 0), 2)])
    );
    assert_eq!(committed_values(&store, "b"), [(0, 2)]);
    // A partition the member does not own is refused at once.
    let owned: Vec<_> = consumer.assignment();
    let foreign = ("b".to_owned(), 1);
    assert!(!owned.contains(&foreign));
    p.begin_transaction().unwrap();
    assert!(matches!(
        p.send_offsets_to_transaction(&[(foreign, 1)], &meta),
        Err(Error::CommitRejected { .. })
    ));
    // A member removed from the group (its consumer closed) cannot commit: the transaction
    // is aborted instead.
    p.append("b", 0, &[Record::new(b"zombie output")]).unwrap();
    p.send_offsets_to_transaction(&[(("a".to_owned(), 0), 2)], &meta)
        .unwrap();
    consumer.close().unwrap();
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::UnknownMember { .. } | Error::CommitRejected { .. })
    ));
    assert_eq!(
        committed_values(&store, "b"),
        [(0, 2)],
        "aborted output hidden"
    );
    assert!(lso_at_end(&store, "b"));
}

#[test]
fn an_open_transaction_the_coordinator_does_not_know_holds_the_lso_until_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let log = store.topic("a").unwrap().partition(0).unwrap();
    // Written straight to the partition, as Kafka would have left it.
    let stamp = ProducerStamp {
        producer_id: 9_000,
        epoch: 2,
        base_sequence: 0,
    };
    log.append_transactional(stamp, &[Record::new(b"orphan")])
        .unwrap();
    log.append(Record::new(b"after")).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    let open = store.transactions().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].producer_id, open[0].epoch), (9_000, 2));
    assert_eq!(open[0].state, TxnState::Ongoing);
    assert_eq!(open[0].transactional_id, None);
    assert!(store.abort_transaction("9000").unwrap());
    assert_eq!(log.last_stable_offset(), log.next_offset());
    let options = ReadOptions::new().isolation_level(Level::ReadCommitted);
    let offsets: Vec<i64> = log
        .read_with(0, options)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(offsets, [1]);
    assert!(!store.abort_transaction("9000").unwrap());
    assert!(store.transactions().unwrap().is_empty());
    drop(log);
    store.close().unwrap();
    // One older than the timeout is aborted at open.
    let store = Store::open_with(dir.path(), StoreOptions::default()).unwrap();
    let log = store.topic("a").unwrap().partition(1).unwrap();
    let old = ProducerStamp {
        producer_id: 9_001,
        epoch: 0,
        base_sequence: 0,
    };
    let record = Record::new(b"old").with_timestamp(1_000);
    log.append_transactional(old, &[record]).unwrap();
    drop(log);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(lso_at_end(&store, "a"));
    assert!(store.transactions().unwrap().is_empty());
}

#[test]
fn an_epoch_that_would_overflow_moves_to_a_new_producer_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = setup(dir.path());
    let p = store.transactional_producer("old-timer").unwrap();
    p.init_transactions().unwrap();
    let (id, _) = p.producer_id_and_epoch().unwrap();
    store.close().unwrap();
    // The coordinator's file as after 32,766 restarts of this id: sealed by its checksum line.
    let text = format!(
        "topiclog-transactions 1\ncoordinator-epoch 3\ntxn old-timer {id} {} Empty 60000 -1\n",
        i16::MAX - 1
    );
    let sealed = format!("{text}crc32c {:08x}\n", crc32c::crc32c(text.as_bytes()));
    std::fs::write(dir.path().join("topiclog-transactions"), sealed).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = store.transactional_producer("old-timer").unwrap();
    p.init_transactions().unwrap();
    let (new_id, epoch) = p.producer_id_and_epoch().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(epoch, 0);
    p.begin_transaction().unwrap();
    p.append("a", 0, &[Record::new(b"x")]).unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(committed_values(&store, "a").len(), 1);
}
