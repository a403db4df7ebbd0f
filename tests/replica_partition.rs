//! A replica partition (issue 18, items 2 and 3, without a cluster): batches written by another
//! implementation of Kafka's format (the Kafka-made fixtures) appended verbatim through
//! `Partition::append_replicated`, as a follower appends what it fetched, read back exactly as
//! the fixture reads (transactions included), byte for byte in the files; replicated data that
//! breaks the rules refused whole; and every write that is not the replicator's refused, on a
//! bare partition, after reopen, and through a store.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use topiclog::config::{LogConfig, TopicConfig};
use topiclog::partition::{IsolationLevel, ProducerStamp, ReadOptions, ReplicaOf};
use topiclog::record::{Compression, EndTxnMarker, Record, TxnResult};
use topiclog::{Error, OwnedRecord, Partition, Store};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-made");

fn replica_of(topic: &str) -> ReplicaOf {
    ReplicaOf {
        cluster_topic: topic.to_owned(),
        topic_id: [7; 16],
        bootstrap_servers: "127.0.0.1:9092".to_owned(),
    }
}

/// The fixture's `.log` files, ascending by base offset.
fn fixture_logs(name: &str) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(Path::new(FIXTURES).join(name))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Every batch of the fixture, in order, as `(base offset, bytes)`.
fn fixture_batches(name: &str) -> Vec<(i64, Vec<u8>)> {
    let mut batches = Vec::new();
    for log in fixture_logs(name) {
        let bytes = fs::read(&log).expect("read log");
        let mut pos = 0;
        while pos < bytes.len() {
            let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
            batches.push((base, bytes[pos..pos + 12 + len].to_vec()));
            pos += 12 + len;
        }
    }
    batches
}

fn read(log: &Partition, level: IsolationLevel) -> Vec<OwnedRecord> {
    let options = ReadOptions::new().isolation_level(level);
    log.read_with(log.log_start_offset(), options)
        .expect("read")
        .map(|r| r.expect("record").to_owned_record())
        .collect()
}

/// The fixture opened as topiclog opens a Kafka partition directory (a copy: opening writes).
fn fixture_partition(name: &str, scratch: &Path) -> Partition {
    let dir = scratch.join(format!("fixture-{name}"));
    common::copy_dir(&Path::new(FIXTURES).join(name), &dir);
    Partition::open(&dir, LogConfig::default()).expect("open the fixture")
}

fn new_replica(dir: &Path, config: LogConfig) -> Partition {
    let log = Partition::open(dir, config).expect("open");
    log.make_replica(&replica_of("t")).expect("make replica");
    log
}

/// The replica's `.log` files concatenated.
fn log_bytes(dir: &Path) -> Vec<u8> {
    common::segment_logs(dir)
        .iter()
        .flat_map(|p| fs::read(p).expect("read"))
        .collect()
}

#[test]
fn fixtures_replicate_verbatim_and_read_back_as_the_fixture() {
    let scratch = TempDir::new().unwrap();
    for name in [
        "plain-0",
        "gzip-0",
        "snappy-0",
        "lz4-0",
        "zstd-0",
        "idempotent-0",
        "logappendtime-0",
        "dupheaders-0",
        "gaps-0",
        "transactions-0",
        "aborts-0",
    ] {
        let batches = fixture_batches(name);
        let dir = scratch.path().join(format!("replica-{name}"));
        // Small segments, so replicated batches roll segments too.
        let log = new_replica(&dir, common::small_config(64 << 10));
        // Fetches of 1, 2, 3, ... batches.
        let mut at = 0;
        let mut size = 1;
        while at < batches.len() {
            let end = (at + size).min(batches.len());
            let bytes: Vec<u8> = batches[at..end].iter().flat_map(|b| b.1.clone()).collect();
            let info = log.append_replicated(&bytes).expect("append_replicated");
            let info = info.expect("batches appended");
            assert_eq!(info.base_offset, batches[at].0, "{name}: first offset");
            at = end;
            size += 1;
        }
        let fixture = fixture_partition(name, scratch.path());
        assert_eq!(log.next_offset(), fixture.next_offset(), "{name}: log end");
        for level in [
            IsolationLevel::ReadUncommitted,
            IsolationLevel::ReadCommitted,
        ] {
            assert_eq!(
                read(&log, level),
                read(&fixture, level),
                "{name}: {level:?}"
            );
            assert_eq!(
                log.last_stable_offset(),
                fixture.last_stable_offset(),
                "{name}"
            );
        }
        assert_eq!(
            log.aborted_transactions(0..i64::MAX),
            fixture.aborted_transactions(0..i64::MAX)
        );
        log.close().expect("close");
        let want: Vec<u8> = batches.iter().flat_map(|b| b.1.clone()).collect();
        assert!(
            log_bytes(&dir) == want,
            "{name}: the files hold the fetched bytes verbatim"
        );
        // Reopened (the replica marker, the producer state and the .txnindex files with it).
        let log = Partition::open(&dir, LogConfig::default()).expect("reopen");
        assert_eq!(log.replica_of(), Some(&replica_of("t")));
        for level in [
            IsolationLevel::ReadUncommitted,
            IsolationLevel::ReadCommitted,
        ] {
            assert_eq!(read(&log, level), read(&fixture, level), "{name} reopened");
        }
        assert_eq!(log.active_producers(), fixture.active_producers(), "{name}");
    }
}

#[test]
fn read_committed_offsets_match_the_fixture_manifest() {
    let scratch = TempDir::new().unwrap();
    let log = new_replica(scratch.path(), LogConfig::default());
    let all: Vec<u8> = fixture_batches("aborts-0")
        .into_iter()
        .flat_map(|b| b.1)
        .collect();
    log.append_replicated(&all).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(FIXTURES).join("aborts-0/read_committed.json")).unwrap(),
    )
    .unwrap();
    let want: Vec<i64> = manifest["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let got: Vec<i64> = read(&log, IsolationLevel::ReadCommitted)
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_transaction_left_open_by_the_fetch_holds_the_last_stable_offset_until_its_marker() {
    let scratch = TempDir::new().unwrap();
    let log = new_replica(scratch.path(), LogConfig::default());
    let batches = fixture_batches("aborts-0");
    // Up to (not including) the first control batch: its transaction is open.
    let marker_at = batches
        .iter()
        .position(|(_, b)| b[22] & 0x20 != 0) // attributes: bytes 21..23, control bit 0x20
        .expect("a control batch");
    let before: Vec<u8> = batches[..marker_at]
        .iter()
        .flat_map(|b| b.1.clone())
        .collect();
    log.append_replicated(&before).unwrap();
    assert_eq!(log.last_stable_offset(), batches[0].0);
    assert_eq!(log.open_transactions().len(), 1);
    assert!(read(&log, IsolationLevel::ReadCommitted).is_empty());
    log.append_replicated(&batches[marker_at].1).unwrap();
    assert_eq!(log.last_stable_offset(), log.next_offset());
    assert!(log.open_transactions().is_empty());
}

#[test]
fn replicated_data_that_breaks_the_rules_is_refused_whole() {
    let scratch = TempDir::new().unwrap();
    let log = new_replica(scratch.path(), LogConfig::default());
    let batches = fixture_batches("plain-0");
    let two: Vec<u8> = [batches[0].1.clone(), batches[1].1.clone()].concat();
    let second_at = batches[0].1.len();

    // A flipped byte in the second batch: nothing of the append is written.
    let mut flipped = two.clone();
    flipped[second_at + 70] ^= 1;
    match log.append_replicated(&flipped) {
        Err(Error::InvalidReplicatedBatch { position, .. }) => assert_eq!(position, second_at),
        other => panic!("expected InvalidReplicatedBatch, got {other:?}"),
    }
    // A trailing partial batch.
    match log.append_replicated(&two[..two.len() - 1]) {
        Err(Error::InvalidReplicatedBatch { position, .. }) => assert_eq!(position, second_at),
        other => panic!("expected InvalidReplicatedBatch, got {other:?}"),
    }
    // Batches out of order within one append.
    let swapped = [batches[1].1.clone(), batches[0].1.clone()].concat();
    assert!(matches!(
        log.append_replicated(&swapped),
        Err(Error::InvalidReplicatedBatch { .. })
    ));
    // Arbitrary bytes.
    assert!(matches!(
        log.append_replicated(&[0xff; 100]),
        Err(Error::InvalidReplicatedBatch { position: 0, .. })
    ));
    assert_eq!(log.next_offset(), 0, "nothing was written");
    assert_eq!(log.append_replicated(&[]).unwrap(), None);

    log.append_replicated(&two).unwrap();
    // The same batches again (a fetch below the log end): refused, nothing written.
    assert!(matches!(
        log.append_replicated(&batches[1].1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let end = log.next_offset();
    assert_eq!(end, batches[2].0);
    // A gap is kept: the next batch's offsets moved up by 1000.
    let mut moved = batches[2].1.clone();
    let base = batches[2].0 + 1000;
    moved[..8].copy_from_slice(&base.to_be_bytes());
    log.append_replicated(&moved).unwrap();
    let offsets: Vec<i64> = read(&log, IsolationLevel::ReadUncommitted)
        .iter()
        .map(|r| r.offset)
        .collect();
    assert!(offsets.contains(&base) && !offsets.contains(&end));
    assert_eq!(
        log.read(end).unwrap().next().unwrap().unwrap().offset(),
        base
    );
}

#[test]
fn the_log_start_follows_the_cluster() {
    let scratch = TempDir::new().unwrap();
    let log = new_replica(scratch.path(), common::small_config(4096));
    let all: Vec<u8> = fixture_batches("plain-0")
        .into_iter()
        .flat_map(|b| b.1)
        .collect();
    log.append_replicated(&all).unwrap();
    let segments = log.segment_base_offsets().len();
    let start = log.segment_base_offsets()[segments / 2];
    assert_eq!(log.replicated_log_start(start).unwrap(), start);
    assert_eq!(log.log_start_offset(), start);
    assert!(log.segment_base_offsets().len() < segments);
    assert!(matches!(
        log.replicated_log_start(log.next_offset() + 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    // A replica that starts where the cluster's log starts, not at 0: its first segment is
    // based there.
    let dir = scratch.path().join("late");
    let late = new_replica(&dir, LogConfig::default());
    let batches = fixture_batches("gaps-0");
    late.append_replicated(&batches[0].1).unwrap();
    assert_eq!(late.segment_base_offsets().last(), Some(&batches[0].0));
    late.replicated_log_start(batches[0].0).unwrap();
    assert_eq!(late.segment_base_offsets(), vec![batches[0].0]);
}

/// Every write that is not the replicator's, on `log`: each refused with `Error::Replica`.
fn assert_writes_refused(log: &Partition) {
    let stamp = ProducerStamp {
        producer_id: 1,
        epoch: 0,
        base_sequence: 0,
    };
    let marker = EndTxnMarker {
        result: TxnResult::Abort,
        coordinator_epoch: 0,
    };
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("append", log.append(Record::new(b"x")).map(drop)),
        (
            "append_batch",
            log.append_batch(&[Record::new(b"x")]).map(drop),
        ),
        (
            "append_batch_compressed",
            log.append_batch_compressed(&[Record::new(b"x")], Compression::None)
                .map(drop),
        ),
        (
            "append_idempotent",
            log.append_idempotent(stamp, &[Record::new(b"x")]).map(drop),
        ),
        (
            "append_transactional",
            log.append_transactional(stamp, &[Record::new(b"x")])
                .map(drop),
        ),
        (
            "write_txn_marker",
            log.write_txn_marker(1, 0, marker).map(drop),
        ),
        ("delete_records", log.delete_records(0).map(drop)),
        ("enforce_retention", log.enforce_retention().map(drop)),
        ("compact", log.compact().map(drop)),
    ];
    for (what, result) in results {
        match result {
            Err(Error::Replica { cluster_topic, .. }) => assert_eq!(cluster_topic, "t", "{what}"),
            other => panic!("{what}: expected Error::Replica, got {other:?}"),
        }
    }
}

#[test]
fn a_replica_partition_refuses_every_other_write_also_after_reopen() {
    let scratch = TempDir::new().unwrap();
    let log = new_replica(scratch.path(), LogConfig::default());
    let all: Vec<u8> = fixture_batches("plain-0")
        .into_iter()
        .flat_map(|b| b.1)
        .collect();
    log.append_replicated(&all).unwrap();
    let end = log.next_offset();
    assert_writes_refused(&log);
    log.close().unwrap();
    let log = Partition::open(scratch.path(), LogConfig::default()).unwrap();
    assert_writes_refused(&log);
    assert_eq!(log.next_offset(), end, "nothing was written");
    // Reads work as on any partition, read-only opens too.
    assert_eq!(log.read(0).unwrap().count() as i64, end);
    drop(log);
    let reader = Partition::open_read_only(scratch.path(), LogConfig::default()).unwrap();
    assert_eq!(reader.replica_of(), Some(&replica_of("t")));
    assert_eq!(reader.read(0).unwrap().count() as i64, end);
}

#[test]
fn only_an_empty_partition_becomes_a_replica_and_only_of_one_topic() {
    let scratch = TempDir::new().unwrap();
    let log = Partition::open(scratch.path(), LogConfig::default()).unwrap();
    assert!(matches!(
        log.append_replicated(&fixture_batches("plain-0")[0].1),
        Err(Error::NotAReplica { .. })
    ));
    assert!(matches!(
        log.replicated_log_start(0),
        Err(Error::NotAReplica { .. })
    ));
    log.append(Record::new(b"mine")).unwrap();
    match log.make_replica(&replica_of("t")) {
        Err(Error::ReplicaTargetNotEmpty { log_end, .. }) => assert_eq!(log_end, 1),
        other => panic!("expected ReplicaTargetNotEmpty, got {other:?}"),
    }
    let empty = scratch.path().join("empty");
    let log = new_replica(&empty, LogConfig::default());
    log.make_replica(&replica_of("t"))
        .expect("the same topic again");
    assert!(matches!(
        log.make_replica(&replica_of("other")),
        Err(Error::Replica { .. })
    ));
    let recreated = ReplicaOf {
        topic_id: [8; 16],
        ..replica_of("t")
    };
    assert!(matches!(
        log.make_replica(&recreated),
        Err(Error::Replica { .. })
    ));
}

#[test]
fn a_damaged_replica_marker_fails_the_open_naming_it() {
    let scratch = TempDir::new().unwrap();
    drop(new_replica(scratch.path(), LogConfig::default()));
    let marker = scratch.path().join(".topiclog_replica");
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(&marker, text.replace("topic t", "topic u")).unwrap();
    for open in [
        Partition::open(scratch.path(), LogConfig::default()),
        Partition::open_read_only(scratch.path(), LogConfig::default()),
    ] {
        match open {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, marker),
            other => panic!("expected Corrupt naming the marker, got {other:?}"),
        }
    }
}

#[test]
fn a_replica_topic_of_a_store_refuses_every_other_write() {
    let scratch = TempDir::new().unwrap();
    let store = Store::open(scratch.path()).unwrap();
    let topic = store
        .create_replica_topic("t", TopicConfig::new(2), &replica_of("t"))
        .unwrap();
    assert_eq!(topic.replica_of(), Some(replica_of("t")));
    let all: Vec<u8> = fixture_batches("plain-0")
        .into_iter()
        .flat_map(|b| b.1)
        .collect();
    topic.partition(0).unwrap().append_replicated(&all).unwrap();
    let end = topic.partition(0).unwrap().next_offset();

    assert!(matches!(
        topic.append(Record::new(b"x")),
        Err(Error::Replica { .. })
    ));
    let producer = store.producer("p").unwrap();
    assert!(matches!(
        producer.send("t", Record::new(b"x")),
        Err(Error::Replica { .. })
    ));
    let txn = store.transactional_producer("tx").unwrap();
    txn.init_transactions().unwrap();
    txn.begin_transaction().unwrap();
    assert!(matches!(
        txn.send("t", Record::new(b"x")),
        Err(Error::Replica { .. })
    ));
    // The refused send left nothing to finish: the transaction aborts cleanly.
    txn.abort_transaction().unwrap();
    assert!(matches!(
        store.add_partitions("t", 3),
        Err(Error::Replica { .. })
    ));
    assert!(matches!(store.compact("t"), Err(Error::Replica { .. })));
    // Store-wide retention and transaction timeouts pass a replica by.
    store.enforce_retention().unwrap();
    assert_eq!(store.abort_timed_out_transactions().unwrap(), 0);
    // The replicator grows it with its cluster topic.
    store
        .add_replica_partitions("t", 3, &replica_of("t"))
        .unwrap();
    let grown = store.topic("t").unwrap();
    assert_eq!(grown.partition_count(), 3);
    assert!(grown.partitions().iter().all(|p| p.replica_of().is_some()));
    store.close().unwrap();

    // Reopened, and each partition opened alone, outside the store.
    let store = Store::open(scratch.path()).unwrap();
    assert!(matches!(
        store.topic("t").unwrap().append(Record::new(b"x")),
        Err(Error::Replica { .. })
    ));
    // Consumers and group commits work as on any topic.
    let config = topiclog::config::ConsumerConfig::builder()
        .group_id("g")
        .set("auto.offset.reset", "earliest")
        .unwrap()
        .build()
        .unwrap();
    let mut consumer = store.consumer(config).unwrap();
    consumer.assign(&[("t", 0)]).unwrap();
    let mut seen = 0;
    while seen < end {
        let polled = consumer.poll(std::time::Duration::from_secs(5)).unwrap();
        assert!(!polled.is_empty(), "the replica's records are read");
        seen += polled.len() as i64;
    }
    consumer.commit().unwrap();
    assert_eq!(
        store
            .committed_offsets("g")
            .unwrap()
            .get(&("t".to_owned(), 0))
            .copied(),
        Some(end)
    );
    store.close().unwrap();
    for n in 0..3 {
        let dir = scratch.path().join(format!("t-{n}"));
        let log = Partition::open(&dir, LogConfig::default()).unwrap();
        assert_writes_refused(&log);
    }
}

/// Every damage to one partition's replica marker in a store: the open fails naming the
/// marker (never a partition that silently takes writes), and `verify` names it too.
#[test]
fn every_damage_to_a_replica_marker_in_a_store_is_named() {
    let scratch = TempDir::new().unwrap();
    let template = scratch.path().join("template");
    {
        let store = Store::open(&template).unwrap();
        let topic = store
            .create_replica_topic("t", TopicConfig::new(2), &replica_of("t"))
            .unwrap();
        let all: Vec<u8> = fixture_batches("plain-0")
            .into_iter()
            .flat_map(|b| b.1)
            .collect();
        topic.partition(1).unwrap().append_replicated(&all).unwrap();
        store.close().unwrap();
    }
    let marker = |store: &Path| store.join("t-1").join(".topiclog_replica");
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 6] = [
        ("deleted", |p| fs::remove_file(p).unwrap()),
        ("emptied", |p| fs::write(p, b"").unwrap()),
        ("cut short", |p| {
            let bytes = fs::read(p).unwrap();
            fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("bit flipped", |p| {
            let mut bytes = fs::read(p).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x10;
            fs::write(p, bytes).unwrap();
        }),
        ("garbage", |p| fs::write(p, [0xa5u8; 97]).unwrap()),
        ("renamed", |p| {
            fs::rename(p, p.with_extension("bak")).unwrap()
        }),
    ];
    for (what, damage) in damages {
        let dir = scratch.path().join(what.replace(' ', "-"));
        copy_tree(&template, &dir);
        damage(&marker(&dir));
        for open in [Store::open(&dir), Store::open_read_only(&dir)] {
            match open {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, marker(&dir), "{what}"),
                Err(other) => panic!("{what}: expected Corrupt naming the marker, got {other:?}"),
                Ok(_) => panic!("{what}: the store opened with a damaged replica marker"),
            }
        }
        let verified = topiclog::inspect::verify_store(&dir, None).unwrap();
        assert!(!verified.is_ok(), "{what}: verify passed");
        assert!(
            verified.problems.iter().any(|p| p.path == marker(&dir)),
            "{what}: verify did not name the marker: {verified:?}"
        );
        // Partition 1 opened alone: refused too when the marker is damaged; without the marker
        // it is an ordinary partition (the store's registry is what knows better).
        let alone = Partition::open(dir.join("t-1"), LogConfig::default());
        if matches!(what, "deleted" | "renamed") {
            alone.expect("opens without a marker");
        } else {
            assert!(matches!(alone, Err(Error::Corrupt { .. })), "{what}");
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            fs::copy(&path, target).unwrap();
        }
    }
}

/// A transaction the cluster has not finished yet, in a replica: the store's coordinator
/// neither lists it, nor aborts it on request, on timeout or at the next open (its marker is
/// the cluster's to write), and the replica's last stable offset stays at it.
#[test]
fn the_store_never_aborts_a_replicas_open_transaction() {
    let scratch = TempDir::new().unwrap();
    let batches = fixture_batches("aborts-0");
    let marker_at = batches
        .iter()
        .position(|(_, b)| b[22] & 0x20 != 0) // attributes: bytes 21..23, control bit 0x20
        .unwrap();
    let open: Vec<u8> = batches[..marker_at]
        .iter()
        .flat_map(|b| b.1.clone())
        .collect();
    {
        let store = Store::open(scratch.path()).unwrap();
        let topic = store
            .create_replica_topic("t", TopicConfig::new(1), &replica_of("t"))
            .unwrap();
        let log = topic.partition(0).unwrap();
        log.append_replicated(&open).unwrap();
        assert_eq!(log.open_transactions().len(), 1);
        // The fixture's transaction began in 2023: long past any timeout.
        assert_eq!(store.abort_timed_out_transactions().unwrap(), 0);
        assert!(store.transactions().unwrap().is_empty());
        let producer_id = log.open_transactions()[0].0;
        assert!(matches!(
            store.abort_transaction(&producer_id.to_string()),
            Ok(false) | Err(Error::Replica { .. })
        ));
        assert_eq!(log.open_transactions().len(), 1);
        store.close().unwrap();
    }
    let store = Store::open(scratch.path()).unwrap();
    let log = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(
        log.open_transactions().len(),
        1,
        "still open after a reopen"
    );
    assert_eq!(log.last_stable_offset(), batches[0].0);
    // The cluster's marker, replicated, ends it.
    log.append_replicated(&batches[marker_at].1).unwrap();
    assert!(log.open_transactions().is_empty());
}

/// Gaps between replicated batches (a compacted cluster log) where segments roll: each new
/// segment is based at its first batch, as on a Kafka follower, and the log reopens (after a
/// clean close and after a crash) and verifies with every offset where the cluster had it.
#[test]
fn gaps_across_segment_rolls_survive_reopen_and_verify() {
    let scratch = TempDir::new().unwrap();
    let batches = fixture_batches("plain-0");
    // Base offsets moved up by 100 more for each batch: gaps everywhere (outside the CRC).
    let mut want = Vec::new();
    let mut bytes = Vec::new();
    for (i, (base, batch)) in batches.iter().enumerate() {
        let mut batch = batch.clone();
        let moved = base + 100 * i as i64;
        batch[..8].copy_from_slice(&moved.to_be_bytes());
        let count = i32::from_be_bytes(batch[57..61].try_into().unwrap()) as i64;
        want.extend(moved..moved + count);
        bytes.extend(batch);
    }
    for crash in [false, true] {
        let dir = scratch.path().join(format!("crash-{crash}"));
        let log = new_replica(&dir, common::small_config(4096));
        log.append_replicated(&bytes).unwrap();
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3, "rolled: {bases:?}");
        assert!(
            bases.iter().all(|b| want.contains(b)),
            "each segment starts at its first batch: {bases:?}"
        );
        if crash {
            drop(log);
        } else {
            log.close().unwrap();
        }
        let log = Partition::open(&dir, LogConfig::default()).unwrap();
        let got: Vec<i64> = read(&log, IsolationLevel::ReadUncommitted)
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(got, want, "crash={crash}");
        drop(log);
        let checked = topiclog::inspect::check_partition(&dir).unwrap();
        assert!(checked.is_ok(), "crash={crash}: {checked:?}");
    }
}
