//! A local replica of a cluster topic (issue 18), against a real Kafka-protocol broker
//! (features `kafka` and `cli`; see `tests/kafka/broker.rs`). The cluster's topics are produced
//! by an independent client, kafka-python (`tests/kafka/produce_cluster.py`: keys, null
//! values, headers, every codec, idempotent producers), read back with it
//! (`tests/kafka/read_cluster.py`), and compared offset by offset and record by record with
//! the replica. Neither side runs retention or compaction here. Transactional replication is
//! tested from the Kafka-made fixtures in `tests/replica_partition.rs` (the test broker's
//! transactions are unverified).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::ConsumerConfig;
use topiclog::partition::{IsolationLevel, OwnedRecord};
use topiclog::replicate::{ReplicateOptions, Replicator};
use topiclog::{Error, Record, Store};

#[path = "kafka/broker.rs"]
mod broker;
use broker::{Code, Script, broker, cluster_read_from, kafka_python, own_broker, signal, unique};

/// Creates `topic` with `partitions` in the cluster at `address` (unless `create` is false)
/// and produces `rounds` rounds of records with kafka-python; returns how many.
fn produce_at(address: &str, topic: &str, partitions: u32, rounds: u32, create: bool) -> u64 {
    let (partitions, rounds) = (partitions.to_string(), rounds.to_string());
    let mut args = vec![address, topic, partitions.as_str(), rounds.as_str()];
    if !create {
        args.push("--no-create");
    }
    let out = kafka_python(Script("produce_cluster.py"), &args);
    String::from_utf8(out).unwrap().trim().parse().unwrap()
}

fn produce(topic: &str, partitions: u32, rounds: u32, create: bool) -> u64 {
    produce_at(broker(), topic, partitions, rounds, create)
}

/// The cluster's records of `topic`, by partition, as kafka-python reads them.
fn cluster_records_at(
    address: &str,
    topic: &str,
    partitions: u32,
) -> BTreeMap<u32, Vec<OwnedRecord>> {
    cluster_read_from(address, topic, partitions, None).0
}

/// The replica's records of `topic`, by partition.
fn replica_records(store: &Store, topic: &str) -> BTreeMap<u32, Vec<OwnedRecord>> {
    broker::store_records(store, topic, IsolationLevel::ReadUncommitted)
}

/// The replica holds exactly the cluster's records, at the same offsets.
fn assert_replicated_at(address: &str, store: &Store, topic: &str, partitions: u32) {
    let cluster = cluster_records_at(address, topic, partitions);
    let local = replica_records(store, topic);
    assert_eq!(
        cluster.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    for (partition, want) in &cluster {
        let got = &local[partition];
        assert_eq!(got.len(), want.len(), "partition {partition}: record count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "partition {partition}, offset {}", w.offset);
        }
    }
}

fn assert_replicated(store: &Store, topic: &str, partitions: u32) {
    assert_replicated_at(broker(), store, topic, partitions);
}

fn options(topic: &str) -> ReplicateOptions {
    ReplicateOptions::new(broker(), topic).timeout(Duration::from_secs(20))
}

/// A cluster topic of `partitions` produced for `rounds` rounds, replicated into a new store.
fn replicated(name: &str, partitions: u32, rounds: u32) -> (String, tempfile::TempDir, Store) {
    let topic = unique(name);
    produce(&topic, partitions, rounds, true);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    replicate(&store, &topic);
    (topic, dir, store)
}

/// The log end offset of the replica's partition 0.
fn end_of(store: &Store, topic: &str) -> i64 {
    store
        .topic(topic)
        .unwrap()
        .partition(0)
        .unwrap()
        .next_offset()
}

fn replicate(store: &Store, topic: &str) -> u64 {
    let mut replicator = Replicator::new(store, options(topic)).expect("replicator");
    replicator.run_once(&mut |_| {}).expect("run")
}

/// The codec ids of the batches in `dir`'s `.log` files.
fn local_codecs(dir: &Path) -> BTreeSet<i16> {
    let mut codecs = BTreeSet::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let bytes = std::fs::read(&log).unwrap();
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
            let attributes = i16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().unwrap());
            codecs.insert(attributes & 7);
            pos += 12 + len;
        }
    }
    codecs
}

#[test]
fn every_codec_keys_null_values_and_headers_replicate_offset_for_offset() {
    let topic = unique("replicated");
    let sent = produce(&topic, 3, 2, true);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut replicator = Replicator::new(&store, options(&topic)).unwrap();
    replicator.run_once(&mut |_| {}).unwrap();
    let progress = replicator.progress().clone();
    assert_eq!(progress.offsets, sent);
    assert_eq!(progress.lag(), 0);
    assert_replicated(&store, &topic, 3);
    let local = store.topic(&topic).unwrap();
    assert_eq!(local.partition_count(), 3);
    let of = local.replica_of().expect("a replica");
    assert_eq!(&of, replicator.replica_of());
    assert_eq!(of.cluster_topic, topic);
    for (n, p) in (0u32..).zip(local.partitions()) {
        assert_eq!(
            progress.partitions[n as usize].high_watermark,
            p.next_offset()
        );
        // Every codec the producers used is stored as it came (the batches are the cluster's).
        assert_eq!(
            local_codecs(p.dir()),
            BTreeSet::from([0, 1, 2, 3, 4]),
            "partition {n}"
        );
        // Idempotent producers' state rebuilt from the batches.
        assert!(!p.active_producers().is_empty());
    }
}

#[test]
fn a_second_run_resumes_from_the_local_end_and_a_reopened_store_continues() {
    let (topic, dir, store) = replicated("resumed", 2, 1);
    let more = produce(&topic, 2, 1, false);
    let mut replicator = Replicator::new(&store, options(&topic)).unwrap();
    replicator.run_once(&mut |_| {}).unwrap();
    assert_eq!(replicator.progress().offsets, more, "only what is new");
    drop(replicator);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    produce(&topic, 2, 1, false);
    replicate(&store, &topic);
    assert_replicated(&store, &topic, 2);
    // Caught up: a run appends nothing.
    assert_eq!(replicate(&store, &topic), 0);
}

#[test]
fn a_recreated_cluster_topic_is_refused_before_anything_is_appended() {
    let (topic, _dir, store) = replicated("recreated", 1, 1);
    let end = end_of(&store, &topic);
    delete_cluster_topic(&topic);
    match Replicator::new(&store, options(&topic)) {
        Err(Error::ReplicationDiverged { reason, .. }) => {
            assert!(reason.contains("deleted"), "{reason}")
        }
        other => panic!("expected ReplicationDiverged, got {other:?}"),
    }
    // Created again under the same name, with more records than before.
    produce(&topic, 1, 2, true);
    match Replicator::new(&store, options(&topic)) {
        Err(Error::ReplicationDiverged { reason, .. }) => {
            assert!(reason.contains("created again"), "{reason}")
        }
        other => panic!("expected ReplicationDiverged, got {other:?}"),
    }
    assert_eq!(end_of(&store, &topic), end, "nothing appended");
}

fn delete_cluster_topic(topic: &str) {
    kafka_python(
        Code(
            "import sys, time\n\
             from kafka.admin import KafkaAdminClient\n\
             a = KafkaAdminClient(bootstrap_servers=sys.argv[1])\n\
             a.delete_topics([sys.argv[2]])\n\
             time.sleep(0.5)\n",
        ),
        &[broker(), topic],
    );
}

#[test]
fn a_cluster_log_that_no_longer_holds_the_replicas_last_batch_is_refused() {
    // A cluster that lost the replica's history but kept the topic's id (as an unclean leader
    // election can): the topic is created again and the replica's marker edited to its new id,
    // so only the last-batch check stands between the replica and a wrong history.
    let topic = unique("rewritten");
    produce(&topic, 1, 1, true);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        replicate(&store, &topic);
        store.close().unwrap();
    }
    delete_cluster_topic(&topic);
    produce(&topic, 1, 2, true);
    let scratch = tempfile::tempdir().unwrap();
    let probe = Store::open(scratch.path()).unwrap();
    let new_id = Replicator::new(&probe, options(&topic))
        .unwrap()
        .replica_of()
        .topic_id_hex();
    let marker = dir.path().join(format!("{topic}-0/.topiclog_replica"));
    let text = std::fs::read_to_string(&marker).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("crc32c "))
        .map(|l| match l.strip_prefix("topic-id ") {
            Some(_) => format!("topic-id {new_id}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    let crc = crc32c::crc32c(body.as_bytes());
    std::fs::write(&marker, format!("{body}crc32c {crc:08x}\n")).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let end = end_of(&store, &topic);
    match Replicator::new(&store, options(&topic)) {
        Err(Error::ReplicationDiverged {
            reason, partition, ..
        }) => {
            assert_eq!(partition, Some(0));
            assert!(reason.contains("last batch"), "{reason}");
        }
        other => panic!("expected ReplicationDiverged, got {other:?}"),
    }
    assert_eq!(end_of(&store, &topic), end, "nothing appended");
}

#[test]
fn a_local_topic_that_is_not_a_replica_is_never_written() {
    let topic = unique("mine");
    produce(&topic, 1, 1, true);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(&topic, topiclog::config::TopicConfig::new(1))
        .unwrap();
    store
        .topic(&topic)
        .unwrap()
        .append(Record::new(b"local"))
        .unwrap();
    assert!(matches!(
        Replicator::new(&store, options(&topic)),
        Err(Error::NotAReplica { .. })
    ));
    assert!(matches!(
        Replicator::new(&store, options(&unique("absent"))),
        Err(Error::UnknownTopic(_))
    ));
}

#[test]
fn an_unreachable_cluster_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let options =
        ReplicateOptions::new(format!("127.0.0.1:{port}"), "t").timeout(Duration::from_millis(500));
    let started = Instant::now();
    match Replicator::new(&store, options) {
        Err(Error::Cluster { kind, .. }) => {
            assert_eq!(kind, topiclog::error::ClusterErrorKind::Connection)
        }
        other => panic!("expected Error::Cluster, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retried within the timeout"
    );
    assert!(store.topics().is_empty(), "nothing created");
}

/// Commits `offsets` (partition → offset) for `group` in the cluster with kafka-python.
fn commit_in_cluster(topic: &str, group: &str, offsets: &[(u32, i64)]) {
    let spec: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    let mut args = vec![broker(), topic, group];
    args.extend(spec.iter().map(String::as_str));
    kafka_python(
        Code(
            "import sys\n\
             from kafka import KafkaConsumer, TopicPartition\n\
             from kafka.structs import OffsetAndMetadata\n\
             bootstrap, topic, group = sys.argv[1:4]\n\
             c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)\n\
             offsets = {}\n\
             for spec in sys.argv[4:]:\n\
             \x20   p, o = spec.split(':')\n\
             \x20   offsets[TopicPartition(topic, int(p))] = OffsetAndMetadata(int(o), '', -1)\n\
             c.assign(list(offsets))\n\
             c.commit(offsets)\n\
             c.close()\n",
        ),
        &args,
    );
}

#[test]
fn a_group_moves_from_the_cluster_to_the_replica_and_continues_where_it_stopped() {
    let topic = unique("moved");
    produce(&topic, 2, 1, true);
    let group = unique("group");
    commit_in_cluster(&topic, &group, &[(0, 9), (1, 3)]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut replicator = Replicator::new(&store, options(&topic)).unwrap();
    replicator.run_once(&mut |_| {}).unwrap();
    assert_eq!(replicator.copy_group(&group).unwrap(), 2);
    let committed = store.committed_offsets(&group).unwrap();
    assert_eq!(committed.get(&(topic.clone(), 0)), Some(&9));
    assert_eq!(committed.get(&(topic.clone(), 1)), Some(&3));
    // A consumer of the replica with the same group id starts exactly there.
    let config = ConsumerConfig::builder().group_id(&group).build().unwrap();
    let mut consumer = store.consumer(config).unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let cluster = cluster_records_at(broker(), &topic, 2);
    let mut first: BTreeMap<u32, i64> = BTreeMap::new();
    let mut seen = 0;
    let want: usize = cluster[&0].len() - 9 + cluster[&1].len() - 3;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen < want && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).unwrap() {
            first.entry(record.partition()).or_insert(record.offset());
            seen += 1;
        }
    }
    assert_eq!(seen, want, "no duplicates, no gaps");
    assert_eq!(first, BTreeMap::from([(0, 9), (1, 3)]));
}

/// `topiclog replicate` for `topic` of the store at `dir`, following.
fn replicate_command(address: &str, dir: &Path, topic: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_topiclog"));
    command
        .arg("replicate")
        .arg("--dir")
        .arg(dir)
        .args([
            "--bootstrap-server",
            address,
            "--topic",
            topic,
            "--timeout-ms",
            "5000",
        ])
        // One batch a fetch: many appends for a kill to fall between (or inside).
        .args(["--max-partition-fetch-bytes", "1"]);
    command
}

#[test]
fn replication_killed_at_random_moments_resumes_exactly() {
    let topic = unique("killed");
    let mut total = produce(&topic, 2, 30, true);
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut cut_short = 0;
    for round in 0..8 {
        if round % 2 == 1 {
            total += produce(&topic, 2, 2, false);
        }
        let mut child = replicate_command(broker(), dir.path(), &topic)
            .arg("--follow")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 150));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the kill left is a prefix of the cluster's partitions (checked at the
        // end); count the kills that came before the replica caught up.
        if let Ok(store) = Store::open_read_only(dir.path())
            && let Ok(t) = store.topic(&topic)
        {
            let local: i64 = t.partitions().iter().map(|p| p.next_offset()).sum();
            if (local as u64) < total {
                cut_short += 1;
            }
        }
    }
    let out = replicate_command(broker(), dir.path(), &topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(dir.path()).unwrap();
    assert_replicated(&store, &topic, 2);
    assert!(cut_short > 0, "no kill fell before the replica caught up");
}

#[test]
fn a_broker_that_stops_answering_mid_run_is_a_typed_error_and_the_next_run_resumes() {
    let own = own_broker();
    let pid = own.pid().expect("own broker");
    let topic = unique("paused");
    produce_at(&own.address, &topic, 1, 20, true);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Small fetches: many of them, so the pause falls between two.
    let opts = ReplicateOptions::new(own.address.clone(), topic.clone())
        .timeout(Duration::from_millis(1500))
        .max_partition_fetch_bytes(2048);
    let mut replicator = Replicator::new(&store, opts.clone()).unwrap();
    // Paused once the first append is in: the rest of the run meets a broker that does not
    // answer.
    let mut paused = false;
    let result = replicator.run_once(&mut |_| {
        if !paused {
            signal(pid, "STOP");
            paused = true;
        }
    });
    signal(pid, "CONT");
    match result {
        Err(Error::Cluster { kind, .. }) => assert!(
            matches!(
                kind,
                topiclog::error::ClusterErrorKind::Timeout
                    | topiclog::error::ClusterErrorKind::Connection
            ),
            "{kind:?}"
        ),
        other => panic!("expected Error::Cluster, got {other:?}"),
    }
    let partial = end_of(&store, &topic);
    assert!(partial > 0, "the first fetches were appended");
    drop(replicator);
    let mut replicator = Replicator::new(&store, opts).unwrap();
    replicator.run_once(&mut |_| {}).unwrap();
    assert_replicated_at(&own.address, &store, &topic, 1);
}

#[test]
fn the_cli_replicates_describes_the_replica_and_refuses_produce() {
    let topic = unique("cli");
    produce(&topic, 2, 1, true);
    let dir = tempfile::tempdir().unwrap();
    let out = replicate_command(broker(), dir.path(), &topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("replicated"), "{summary}");

    let describe = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(["describe", "--dir"])
        .arg(dir.path())
        .arg(&topic)
        .output()
        .unwrap();
    assert!(
        describe.status.success(),
        "{}",
        String::from_utf8_lossy(&describe.stderr)
    );
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(text.contains(&format!("replica-of\t{topic}")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("replica\t0\t")),
        "{text}"
    );

    let mut produce = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(["produce", "--dir"])
        .arg(dir.path())
        .arg(&topic)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    produce
        .stdin
        .take()
        .unwrap()
        .write_all(b"refused\n")
        .unwrap();
    let out = produce.wait_with_output().unwrap();
    assert!(!out.status.success(), "produce to a replica succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replica"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(dir.path()).unwrap();
    assert_replicated(&store, &topic, 2);
}

/// Kafka's DeleteRecords on the cluster, with kafka-python: the log start of `topic`'s
/// `partition` raised to `offset`.
fn delete_records_in_cluster(topic: &str, partition: u32, offset: i64) {
    kafka_python(
        Code(
            "import sys\n\
             from kafka import TopicPartition\n\
             from kafka.admin import KafkaAdminClient\n\
             a = KafkaAdminClient(bootstrap_servers=sys.argv[1])\n\
             r = a.delete_records({TopicPartition(sys.argv[2], int(sys.argv[3])): int(sys.argv[4])})\n\
             assert all(v['error_code'] == 0 for v in r.values()), r\n",
        ),
        &[broker(), topic, &partition.to_string(), &offset.to_string()],
    );
}

#[test]
fn the_replicas_log_start_follows_the_clusters() {
    let (topic, _dir, store) = replicated("start", 1, 4);
    delete_records_in_cluster(&topic, 0, 40);
    produce(&topic, 1, 1, false);
    replicate(&store, &topic);
    let log = store.topic(&topic).unwrap().partition(0).unwrap();
    assert_eq!(log.log_start_offset(), 40);
    assert!(matches!(log.read(39), Err(Error::OffsetOutOfRange { .. })));
    assert_replicated(&store, &topic, 1);

    // A new replica starts at the cluster's log start (inside a batch: the records below it
    // are kept with their batch but never read).
    let fresh = tempfile::tempdir().unwrap();
    let store = Store::open(fresh.path()).unwrap();
    replicate(&store, &topic);
    let log = store.topic(&topic).unwrap().partition(0).unwrap();
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(log.read(40).unwrap().next().unwrap().unwrap().offset(), 40);
    assert_replicated(&store, &topic, 1);
}

#[test]
fn a_cluster_log_start_past_the_replicas_end_is_refused() {
    let (topic, _dir, store) = replicated("deleted-ahead", 1, 1);
    let end = end_of(&store, &topic);
    produce(&topic, 1, 2, false);
    delete_records_in_cluster(&topic, 0, end + 10);
    match Replicator::new(&store, options(&topic)) {
        Err(Error::ReplicationDiverged {
            reason, partition, ..
        }) => {
            assert_eq!(partition, Some(0));
            assert!(
                reason.contains("deleted before they were replicated"),
                "{reason}"
            );
        }
        other => panic!("expected ReplicationDiverged, got {other:?}"),
    }
    assert_eq!(end_of(&store, &topic), end);
}

#[test]
fn a_following_replicator_is_read_by_a_consumer_process_and_stops_cleanly() {
    let topic = unique("followed");
    produce(&topic, 2, 1, true);
    let group = unique("moved-group");
    commit_in_cluster(&topic, &group, &[(0, 5), (1, 7)]);
    let dir = tempfile::tempdir().unwrap();
    let child = replicate_command(broker(), dir.path(), &topic)
        .args(["--follow", "--groups", &group])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = scopeguard_child(child);
    // A consumer process's view of the store (the replicator is its writer).
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        if let Ok(store) = Store::open_consumer(dir.path())
            && store.topic(&topic).is_ok()
        {
            break store;
        }
        assert!(Instant::now() < deadline, "the replica did not appear");
        std::thread::sleep(Duration::from_millis(50));
    };
    let config = ConsumerConfig::builder()
        .group_id("reader")
        .set("auto.offset.reset", "earliest")
        .unwrap()
        .build()
        .unwrap();
    let mut consumer = store.consumer(config).unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    // Appended to the cluster while the replicator follows.
    let total = 70 + produce(&topic, 2, 1, false) as usize;
    let mut seen: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut count = 0;
    while count < total {
        assert!(Instant::now() < deadline, "saw {count} of {total}");
        for record in consumer.poll(Duration::from_millis(200)).unwrap() {
            seen.entry(record.partition())
                .or_default()
                .push(record.offset());
            count += 1;
        }
    }
    for offsets in seen.values() {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    consumer.commit().unwrap();
    drop(consumer);
    let pid = child.0.as_ref().unwrap().id();
    signal(pid, "TERM");
    let out = child.into_inner().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("group {group}: offsets of 2 partitions")),
        "{summary}"
    );
    let store = Store::open(dir.path()).unwrap();
    let committed = store.committed_offsets(&group).unwrap();
    assert_eq!(committed.get(&(topic.clone(), 0)), Some(&5));
    assert_eq!(committed.get(&(topic.clone(), 1)), Some(&7));
    // The consumer process's own group commit, beside the replicator, is there too.
    assert_eq!(
        store
            .committed_offsets("reader")
            .unwrap()
            .values()
            .sum::<i64>(),
        total as i64
    );
    assert_replicated(&store, &topic, 2);
}

/// A child killed when dropped, unless taken back.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn into_inner(mut self) -> std::process::Child {
        self.0.take().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn scopeguard_child(child: std::process::Child) -> KillOnDrop {
    KillOnDrop(Some(child))
}

#[test]
fn sigterm_stops_replication_after_a_whole_append_and_closes_the_store_cleanly() {
    let topic = unique("terminated");
    produce(&topic, 2, 30, true);
    let dir = tempfile::tempdir().unwrap();
    let mut stopped = 0;
    for wait_ms in [50, 120, 400] {
        let child = replicate_command(broker(), dir.path(), &topic)
            .arg("--follow")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child = scopeguard_child(child);
        std::thread::sleep(Duration::from_millis(wait_ms));
        signal(child.0.as_ref().unwrap().id(), "TERM");
        let out = child.into_inner().wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        if out.status.signal() == Some(15) {
            // Before the handlers were in place (a loaded machine): a plain kill, which
            // recovery covers (see the SIGKILL test).
            continue;
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stopped += 1;
        let store = Store::open(dir.path()).unwrap();
        if let Ok(t) = store.topic(&topic) {
            for p in t.partitions() {
                assert!(
                    p.recovery().clean_shutdown,
                    "closed cleanly after {wait_ms} ms"
                );
            }
        }
    }
    assert!(
        stopped > 0,
        "no run was stopped by SIGTERM with its handler in place"
    );
    let out = replicate_command(broker(), dir.path(), &topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(dir.path()).unwrap();
    assert_replicated(&store, &topic, 2);
}
