//! The mirror to a Kafka cluster, against a real Kafka-protocol broker (features `kafka` and
//! `cli`). The broker is the one `.ci/run` starts (`TOPICLOG_TEST_BROKER=HOST:PORT`), or, when
//! that is unset, a `nisshi` broker this test starts on a free loopback port and stops. What
//! reached the cluster is read back by an independent client, kafka-python
//! (`tests/kafka/read_cluster.py`), and compared record by record with what a
//! `read_committed` reader of the store returns.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::{CompressionType, LogConfig, TopicConfig};
use topiclog::mirror::{Mirror, MirrorOptions};
use topiclog::partition::{IsolationLevel, OwnedRecord};
use topiclog::{Error, Header, Record, Store};

#[path = "kafka/broker.rs"]
mod broker;
use broker::{Script, broker, cluster_read_from, kafka_python, own_broker, signal, unique};

/// The cluster's records of `topic`, by partition, as kafka-python reads them.
fn cluster_records(topic: &str, partitions: u32) -> BTreeMap<u32, Vec<OwnedRecord>> {
    let (records, _) = cluster_read_from(broker(), topic, partitions, None);
    records
}

fn cluster_read(
    topic: &str,
    partitions: u32,
    group: Option<&str>,
) -> (BTreeMap<u32, Vec<OwnedRecord>>, BTreeMap<u32, Option<i64>>) {
    cluster_read_from(broker(), topic, partitions, group)
}

/// What a `read_committed` reader of the store returns, by partition.
fn store_records(store: &Store, topic: &str) -> BTreeMap<u32, Vec<OwnedRecord>> {
    broker::store_records(store, topic, IsolationLevel::ReadCommitted)
}

/// The cluster holds the store's records, in order, field for field (offsets from 0).
fn assert_mirrored(store: &Store, topic: &str) {
    assert_mirrored_at(broker(), store, topic);
}

fn assert_mirrored_at(address: &str, store: &Store, topic: &str) {
    let partitions = store.topic(topic).unwrap().partition_count();
    let ours = store_records(store, topic);
    let (theirs, _) = cluster_read_from(address, topic, partitions, None);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{topic}: partitions with records"
    );
    for (p, records) in &ours {
        let cluster = &theirs[p];
        assert_eq!(cluster.len(), records.len(), "{topic}-{p}: record count");
        for (i, (a, b)) in records.iter().zip(cluster).enumerate() {
            assert_eq!(b.offset, i as i64, "{topic}-{p}: cluster offsets from 0");
            assert_eq!(
                (&a.key, &a.value, &a.headers, a.timestamp),
                (&b.key, &b.value, &b.headers, b.timestamp),
                "{topic}-{p}: record {i} (source offset {})",
                a.offset
            );
        }
    }
}

/// A new store with one topic of `partitions` (a name unique to this run).
fn store_with_topic(name: &str, partitions: u32) -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = unique(name);
    store
        .create_topic(&name, TopicConfig::new(partitions))
        .unwrap();
    (dir, store, name)
}

fn options() -> MirrorOptions {
    MirrorOptions::new(broker()).timeout(Duration::from_secs(20))
}

/// Records with keys, null keys and values, and headers (a repeated key, a null value).
fn fill(store: &Store, topic: &str, n: u32) {
    let t = store.topic(topic).unwrap();
    for i in 0..n {
        let key = format!("k{}", i % 7);
        let value = format!("value {i} {}", "x".repeat((i % 13) as usize));
        let headers = [
            Header::new(b"h", Some(b"one")),
            Header::new(b"h", Some(b"two")),
            Header::new(b"nil", None),
        ];
        let mut record = match i % 5 {
            0 => Record::new(value.as_bytes()),
            1 => Record::keyed(key.as_bytes(), value.as_bytes()),
            2 => Record::tombstone(key.as_bytes()),
            _ => Record::keyed(key.as_bytes(), value.as_bytes()).with_headers(&headers),
        };
        record = record.with_timestamp(1_700_000_000_000 + i64::from(i));
        t.append_to(i % t.partition_count(), record).unwrap();
    }
}

fn topic_with(partitions: u32, compression: CompressionType) -> TopicConfig {
    let log = LogConfig::builder()
        .compression_type(compression)
        .build()
        .unwrap();
    TopicConfig::new(partitions).with_log(log)
}

#[test]
fn every_codec_keys_null_values_and_headers_arrive_record_for_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut names = Vec::new();
    for codec in [
        CompressionType::Uncompressed,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        let name = unique(&format!("codec-{codec:?}").to_lowercase());
        store.create_topic(&name, topic_with(3, codec)).unwrap();
        fill(&store, &name, 200);
        names.push(name);
    }
    let mut options = options();
    for name in &names {
        options = options.topic(name);
    }
    let mut mirror = Mirror::new(&store, options).unwrap();
    let sent = mirror.run_once(&mut |_| {}).unwrap();
    assert_eq!(sent, 200 * names.len() as u64);
    assert_eq!(mirror.progress().lag, 0);
    for name in &names {
        assert_mirrored(&store, name);
    }
    // A second run finds everything there and sends nothing.
    drop(mirror);
    let mut again = Mirror::new(&store, MirrorOptions::new(broker()).topic(&names[0])).unwrap();
    assert_eq!(again.run_once(&mut |_| {}).unwrap(), 0);
    assert_eq!(again.progress().skipped, 0);
}

/// The codec ids (attribute bits 0-2) of the cluster partition's batches, from a raw Fetch
/// (v4, encoded with `kafka-protocol`): what the broker stores, which a consumer does not show.
fn cluster_codecs(topic: &str, partition: i32) -> Vec<i16> {
    use std::io::{Read, Write};

    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

    let version = 4;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(64 << 20),
                ]),
        ]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("topiclog-test")));
    let mut body = Vec::new();
    header
        .encode(&mut body, FetchRequest::header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut stream = TcpStream::connect(broker()).unwrap();
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut response = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut response).unwrap();
    let mut buf = response.as_slice();
    ResponseHeader::decode(&mut buf, FetchResponse::header_version(version)).unwrap();
    let fetched = FetchResponse::decode(&mut buf, version).unwrap();
    let records = fetched.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let mut codecs = Vec::new();
    let mut at = 0;
    while at + 61 <= records.len() {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap());
        let attributes = i16::from_be_bytes(records[at + 21..at + 23].try_into().unwrap());
        codecs.push(attributes & 7);
        at += 12 + length as usize;
    }
    codecs
}

#[test]
fn every_codec_reaches_the_cluster_as_the_topics_codec() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (codec, id) in [
        (CompressionType::Uncompressed, 0),
        (CompressionType::Gzip, 1),
        (CompressionType::Snappy, 2),
        (CompressionType::Lz4, 3),
        (CompressionType::Zstd, 4),
    ] {
        let name = unique("stored-codec");
        store.create_topic(&name, topic_with(1, codec)).unwrap();
        fill(&store, &name, 50);
        Mirror::new(&store, options().topic(&name))
            .unwrap()
            .run_once(&mut |_| {})
            .unwrap();
        let codecs = cluster_codecs(&name, 0);
        assert!(!codecs.is_empty(), "{codec:?}: batches fetched");
        assert!(codecs.iter().all(|&c| c == id), "{codec:?}: {codecs:?}");
    }
}

#[test]
fn aborted_transactions_never_go_out() {
    let (_dir, store, name) = store_with_topic("txn", 2);
    let p = store.transactional_producer("t").unwrap();
    p.init_transactions().unwrap();
    for round in 0..6 {
        p.begin_transaction().unwrap();
        for n in 0..2 {
            let value = format!("round {round} partition {n}");
            p.append(&name, n, &[Record::new(value.as_bytes())])
                .unwrap();
        }
        if round % 3 == 1 {
            p.abort_transaction().unwrap();
        } else {
            p.commit_transaction().unwrap();
        }
        store
            .topic(&name)
            .unwrap()
            .append_to(0, Record::new(b"plain"))
            .unwrap();
    }
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    mirror.run_once(&mut |_| {}).unwrap();
    assert_mirrored(&store, &name);
    let theirs = cluster_records(&name, 2);
    assert!(
        theirs.values().flatten().all(|r| {
            let v = r.value.as_deref().unwrap_or_default();
            !v.starts_with(b"round 1 ") && !v.starts_with(b"round 4 ")
        }),
        "aborted records went out"
    );
}

#[test]
fn a_lost_position_is_recovered_from_the_cluster_without_duplicates() {
    let (_dir, store, name) = store_with_topic("resume", 2);
    fill(&store, &name, 100);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    mirror.run_once(&mut |_| {}).unwrap();
    drop(mirror);
    // As if killed after the sends, before the positions were stored.
    store
        .delete_group(&topiclog::mirror::position::group_of(&name))
        .unwrap();
    fill(&store, &name, 50);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.progress().skipped, 100, "found in the cluster");
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 50);
    assert_mirrored(&store, &name);
}

#[test]
fn a_cluster_topic_that_does_not_continue_the_source_is_refused() {
    let name = unique("diverged");
    // One store mirrors first...
    let a = tempfile::tempdir().unwrap();
    let first = Store::open(a.path()).unwrap();
    first.create_topic(&name, TopicConfig::new(1)).unwrap();
    fill(&first, &name, 10);
    Mirror::new(&first, options().topic(&name))
        .unwrap()
        .run_once(&mut |_| {})
        .unwrap();
    // ...another store's topic of the same name has other records: refused, nothing sent.
    let b = tempfile::tempdir().unwrap();
    let second = Store::open(b.path()).unwrap();
    second.create_topic(&name, TopicConfig::new(1)).unwrap();
    second
        .topic(&name)
        .unwrap()
        .append_to(0, Record::new(b"other"))
        .unwrap();
    match Mirror::new(&second, options().topic(&name)) {
        Err(Error::MirrorDiverged {
            topic, partition, ..
        }) => {
            assert_eq!((topic.as_str(), partition), (name.as_str(), 0));
        }
        other => panic!("expected MirrorDiverged, got {other:?}"),
    }
    // A third with another partition count: refused before anything is sent.
    let c = tempfile::tempdir().unwrap();
    let third = Store::open(c.path()).unwrap();
    third.create_topic(&name, TopicConfig::new(3)).unwrap();
    match Mirror::new(&third, options().topic(&name)) {
        Err(Error::PartitionCountMismatch { local, cluster, .. }) => {
            assert_eq!((local, cluster), (3, 1));
        }
        other => panic!("expected PartitionCountMismatch, got {other:?}"),
    }
    assert_eq!(cluster_records(&name, 1)[&0].len(), 10);
}

#[test]
fn a_group_moves_to_the_cluster_and_continues_where_it_stopped() {
    let (_dir, store, name) = store_with_topic("groups", 2);
    fill(&store, &name, 40);
    // An aborted transaction leaves a gap in partition 0's offsets.
    let p = store.transactional_producer("gap").unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.append(&name, 0, &[Record::new(b"aborted")]).unwrap();
    p.abort_transaction().unwrap();
    fill(&store, &name, 40);
    let ours = store_records(&store, &name);
    // The group stopped at the 30th record of partition 0 (past the gap) and the 5th of 1.
    let stop = [ours[&0][29].offset, ours[&1][4].offset];
    assert!(stop[0] > 29, "the gap lies before the stop");
    store
        .reset_offsets(
            "workers",
            &[((name.clone(), 0), stop[0]), ((name.clone(), 1), stop[1])],
        )
        .unwrap();
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    mirror.run_once(&mut |_| {}).unwrap();
    assert_eq!(mirror.move_groups("workers").unwrap(), 2);
    let (theirs, committed) = cluster_read(&name, 2, Some("workers"));
    assert_eq!(committed[&0], Some(29));
    assert_eq!(committed[&1], Some(4));
    // A consumer of the cluster with the group continues with exactly the store's next records.
    for (p, from) in [(0u32, 29usize), (1, 4)] {
        let want: Vec<_> = ours[&p][from..].iter().map(|r| r.value.clone()).collect();
        let got: Vec<_> = theirs[&p].iter().map(|r| r.value.clone()).collect();
        assert_eq!(got, want, "partition {p}");
    }
}

#[test]
fn an_unreachable_cluster_is_a_typed_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let options = MirrorOptions::new(format!("127.0.0.1:{port}")).timeout(Duration::from_secs(2));
    match Mirror::new(&store, options) {
        Err(Error::Cluster { kind, .. }) => {
            assert!(
                matches!(
                    kind,
                    topiclog::error::ClusterErrorKind::Connection
                        | topiclog::error::ClusterErrorKind::Timeout
                ),
                "{kind:?}"
            );
        }
        other => panic!("expected a cluster error, got {other:?}"),
    }
}

#[test]
fn a_mirror_killed_at_random_moments_delivers_each_record_once() {
    let (dir, store, name) = store_with_topic("killed", 2);
    fill(&store, &name, 2000);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = std::thread::scope(|scope| {
        // The application keeps appending in this process while `topiclog mirror --follow`
        // runs in another, killed (SIGKILL) at random moments and started again.
        let appender = scope.spawn(|| {
            let t = store.topic(&name).unwrap();
            let mut i = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let value = format!("live {i}");
                t.append_to(i % 2, Record::new(value.as_bytes())).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        });
        let mut seed = std::process::id() as u64 | 1;
        let mut kills = 0;
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut child = mirror_command(dir.path(), &name)
                .arg("--follow")
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(100 + seed % 900));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let appended = appender.join().unwrap();
        (kills, appended)
    });
    assert!(writer.0 >= 4, "killed mid-run: {}", writer.0);
    // A last run to completion: every record of the store in the cluster, once, in order.
    let out = mirror_command(dir.path(), &name).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_mirrored(&store, &name);
    // `describe` shows where the mirror stands: caught up.
    let out = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .arg("--dir")
        .arg(dir.path())
        .args(["describe", &name])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mirror_lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("mirror\t"))
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(mirror_lines.len(), 2, "{text}");
    let t = store.topic(&name).unwrap();
    for fields in mirror_lines {
        let p = t.partition(fields[1].parse().unwrap()).unwrap();
        assert_eq!(fields[2], p.next_offset().to_string(), "{text}");
        assert_eq!(fields[4], "0", "lag: {text}");
    }
}

fn mirror_command(dir: &Path, topic: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_topiclog"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["mirror", "--bootstrap-server", broker(), "--topic", topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_broker_that_stops_answering_mid_run_is_a_typed_error_and_the_next_run_resumes() {
    // A broker of this test's own, paused (SIGSTOP) while a run sends and resumed after it
    // failed: records it took before the pause, or from its socket after, are in the cluster
    // without the mirror knowing; the next run must find and skip them.
    let own = own_broker();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = unique("paused");
    let lazy = LogConfig::builder()
        .flush_messages(i64::MAX)
        .flush_ms(i64::MAX)
        .build()
        .unwrap();
    store
        .create_topic(&name, TopicConfig::new(2).with_log(lazy))
        .unwrap();
    let topic = store.topic(&name).unwrap();
    for p in topic.partitions() {
        for b in 0..100 {
            let values: Vec<String> = (0..1000).map(|i| format!("batch {b} record {i}")).collect();
            let records: Vec<Record<'_>> =
                values.iter().map(|v| Record::new(v.as_bytes())).collect();
            p.append_batch(&records).unwrap();
        }
    }
    let pid = own.pid().expect("own broker");
    let options = || MirrorOptions::new(&own.address).timeout(Duration::from_secs(3));
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    // Paused once the first round was acknowledged: mid-run, whatever the machine's speed.
    let mut paused = false;
    let result = mirror.run_once(&mut |p| {
        if p.records > 0 && !paused {
            signal(pid, "STOP");
            paused = true;
        }
    });
    signal(pid, "CONT");
    assert!(paused, "the run sent a first round");
    match result {
        Err(Error::Cluster { .. }) => {}
        other => panic!("expected a cluster error, got {other:?}"),
    }
    drop(mirror);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    mirror.run_once(&mut |_| {}).unwrap();
    assert_eq!(mirror.progress().lag, 0);
    assert_mirrored_at(&own.address, &store, &name);
}

#[test]
fn a_following_mirror_wakes_for_a_writer_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("wake");
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic(&name, TopicConfig::new(1)).unwrap();
        store.close().unwrap();
    }
    // The mirror's store is opened for consuming, as `topiclog mirror` opens it; the writer
    // is `topiclog produce` in another process.
    let store = Store::open_consumer(dir.path()).unwrap();
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 0);
    let producer_dir = dir.path().to_path_buf();
    let topic = name.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut child = Command::new(env!("CARGO_BIN_EXE_topiclog"))
            .arg("--dir")
            .arg(&producer_dir)
            .args(["produce", &topic, "--lock-timeout", "5000"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"woken\n").unwrap();
        assert!(child.wait().unwrap().success());
    });
    let started = Instant::now();
    let mut sent = 0;
    while sent == 0 && started.elapsed() < Duration::from_secs(20) {
        mirror.wait(Duration::from_secs(10)).unwrap();
        sent += mirror.run_once(&mut |_| {}).unwrap();
    }
    writer.join().unwrap();
    assert_eq!(sent, 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken late: {:?}",
        started.elapsed()
    );
    assert_mirrored(&store, &name);
}

#[test]
fn topics_and_partitions_added_to_the_store_are_picked_up_by_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = unique("grows");
    store.create_topic(&first, TopicConfig::new(1)).unwrap();
    fill(&store, &first, 10);
    // Every topic of the store (no topic chosen).
    let mut mirror = Mirror::new(&store, options()).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 10);
    // A topic created since: mirrored by the next round.
    let second = unique("new");
    store.create_topic(&second, TopicConfig::new(2)).unwrap();
    fill(&store, &second, 20);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 20);
    assert_mirrored(&store, &second);
    // Partitions added: the cluster topic gets them (CreatePartitions). The test broker does
    // not implement that request: the round must then fail with a typed error, having sent
    // nothing, and a broker that has it mirrors them.
    store.add_partitions(&first, 3).unwrap();
    fill(&store, &first, 30);
    match mirror.run_once(&mut |_| {}) {
        Ok(sent) => {
            assert_eq!(sent, 30);
            assert_mirrored(&store, &first);
        }
        Err(Error::Cluster { op, .. }) => {
            assert_eq!(op, "adding partitions");
            assert_eq!(
                cluster_records(&first, 1)[&0].len(),
                10,
                "nothing more sent"
            );
        }
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn a_created_cluster_topic_takes_the_source_topics_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = unique("settings");
    let config = TopicConfig::from_pairs(
        2,
        [
            ("cleanup.policy", "compact"),
            ("retention.ms", "3600000"),
            ("retention.bytes", "1048576"),
            ("message.timestamp.type", "CreateTime"),
            ("max.message.bytes", "500000"),
            ("compression.type", "zstd"),
        ],
    )
    .unwrap();
    store.create_topic(&name, config).unwrap();
    store
        .topic(&name)
        .unwrap()
        .append_to(0, Record::keyed(b"k", b"v"))
        .unwrap();
    Mirror::new(&store, options().topic(&name))
        .unwrap()
        .run_once(&mut |_| {})
        .unwrap();
    let out = kafka_python(Script("topic_configs.py"), &[broker(), &name]);
    let cluster: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for (key, value) in [
        ("cleanup.policy", "compact"),
        ("retention.ms", "3600000"),
        ("retention.bytes", "1048576"),
        ("message.timestamp.type", "CreateTime"),
        ("max.message.bytes", "500000"),
        ("compression.type", "zstd"),
    ] {
        assert_eq!(cluster[key], value, "{key}: {cluster}");
    }
    let partitions = cluster_records(&name, 2);
    assert_eq!(partitions.values().map(Vec::len).sum::<usize>(), 1);
}

#[test]
fn a_group_moves_exactly_even_after_the_source_was_compacted_since_mirroring() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = unique("compacted");
    let config = TopicConfig::from_pairs(
        1,
        [("cleanup.policy", "compact"), ("segment.bytes", "1024")],
    )
    .unwrap();
    store.create_topic(&name, config).unwrap();
    let t = store.topic(&name).unwrap();
    for i in 0..300 {
        // Every third key is unique (kept by compaction), the others repeat (all but the
        // latest removed): holes between kept records.
        let key = match i % 3 {
            0 => format!("u{i}"),
            _ => format!("k{}", i % 5),
        };
        let value = format!("v{i}");
        t.append_to(0, Record::keyed(key.as_bytes(), value.as_bytes()))
            .unwrap();
    }
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 300);
    // The group stopped at offset 250; then the source is compacted: holes open between the
    // records after 250, so counting them now falls short of what was mirrored.
    store
        .reset_offsets("late", &[((name.clone(), 0), 250)])
        .unwrap();
    let log = t.partition(0).unwrap();
    log.compact().unwrap();
    let next = store_records(&store, &name)[&0]
        .iter()
        .find(|r| r.offset >= 250)
        .cloned()
        .unwrap();
    assert!(
        store_records(&store, &name)[&0].len() < 300,
        "compaction removed records"
    );
    assert_eq!(mirror.move_groups("late").unwrap(), 1);
    let (theirs, committed) = cluster_read(&name, 1, Some("late"));
    let at = committed[&0].expect("committed");
    // Mirrored one for one: the record at cluster offset N came from source offset N.
    assert_eq!(at, next.offset, "the group continues at the same record");
    assert_eq!(theirs[&0][0].value, next.value);
}

#[test]
fn a_damaged_position_file_is_an_error_naming_it_not_a_fresh_start() {
    let (dir, store, name) = store_with_topic("damaged", 1);
    fill(&store, &name, 5);
    Mirror::new(&store, options().topic(&name))
        .unwrap()
        .run_once(&mut |_| {})
        .unwrap();
    drop(store);
    // The mirror's positions are its reserved group's offsets file: the only one here.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".offsets"))
        .expect("the positions file");
    std::fs::write(&file, b"0\nnot a group\nx\n").unwrap();
    // The store's open reads every group file: it refuses, naming the file, before any
    // mirror could start over from a lost position.
    let result = Store::open(dir.path())
        .and_then(|store| Mirror::new(&store, options().topic(&name)).map(|_| ()));
    match result {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, file),
        other => panic!("expected Corrupt naming {}, got {other:?}", file.display()),
    }
}

/// Partitions added to cluster topic `topic` on the cluster's side, from `old` to `new`, each
/// added one holding `extra` records of the cluster's own (`tests/kafka/grow_cluster_topic.py`:
/// the test broker has no CreatePartitions, so the topic is created again with the same
/// records at the same offsets).
fn grow_cluster_topic(topic: &str, old: u32, new: u32, extra: u32) {
    let [old, new, extra] = [old, new, extra].map(|n| n.to_string());
    kafka_python(
        Script("grow_cluster_topic.py"),
        &[broker(), topic, &old, &new, &extra],
    );
}

/// `n` keyed records with CreateTime timestamps to partition `partition` of `topic` (no null
/// header values, which kafka-python cannot send again).
fn fill_partition(store: &Store, topic: &str, partition: u32, n: u32) {
    let t = store.topic(topic).unwrap();
    let headers = [Header::new(b"h", Some(b"1"))];
    for i in 0..n {
        let key = format!("p{partition}-k{i}");
        let value = format!("p{partition} value {i}");
        let record = Record::keyed(key.as_bytes(), value.as_bytes())
            .with_headers(&headers)
            .with_timestamp(1_700_000_000_000 + i64::from(i));
        t.append_to(partition, record).unwrap();
    }
}

/// Cluster partition `partition` holds `natives` records of the cluster's own, then exactly
/// the store partition's records.
fn assert_after_natives(store: &Store, topic: &str, partition: u32, natives: u32) {
    let partitions = store.topic(topic).unwrap().partition_count();
    let theirs = cluster_records(topic, partitions)
        .remove(&partition)
        .unwrap_or_default();
    let ours = store_records(store, topic)
        .remove(&partition)
        .unwrap_or_default();
    assert_eq!(
        theirs.len(),
        natives as usize + ours.len(),
        "{topic}-{partition}"
    );
    for (i, record) in theirs.iter().take(natives as usize).enumerate() {
        assert_eq!(
            record.value.as_deref(),
            Some(format!("native {i}").as_bytes())
        );
    }
    for (a, b) in ours.iter().zip(&theirs[natives as usize..]) {
        assert_eq!(
            (&a.key, &a.value, &a.headers, a.timestamp),
            (&b.key, &b.value, &b.headers, b.timestamp),
            "{topic}-{partition}: source offset {}",
            a.offset
        );
    }
}

#[test]
fn partitions_added_on_the_clusters_side_are_added_to_the_store() {
    let (_dir, store, name) = store_with_topic("cluster-grows", 2);
    fill_partition(&store, &name, 0, 6);
    fill_partition(&store, &name, 1, 4);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 10);
    drop(mirror);
    grow_cluster_topic(&name, 2, 3, 4);
    fill_partition(&store, &name, 1, 3);
    // At the next start, the stored positions say the topic was mirrored: the store grows
    // to three partitions, the new one starting after the cluster's own four records.
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(store.topic(&name).unwrap().partition_count(), 3);
    fill_partition(&store, &name, 2, 5);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 8);
    assert_mirrored_after(&store, &name, &[0, 0, 4]);
    let positions = topiclog::mirror::position::load(&store, &name).unwrap();
    assert_eq!(
        positions[&2],
        topiclog::mirror::Position {
            source: 5,
            cluster: 9
        }
    );
    // Resumes exactly after a restart.
    drop(mirror);
    fill_partition(&store, &name, 2, 2);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 2);
    assert_mirrored_after(&store, &name, &[0, 0, 4]);
    // Grown again while the mirror runs: its next round picks the partition up.
    grow_cluster_topic(&name, 3, 4, 2);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 0);
    assert_eq!(store.topic(&name).unwrap().partition_count(), 4);
    fill_partition(&store, &name, 3, 3);
    fill_partition(&store, &name, 0, 1);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 4);
    assert_mirrored_after(&store, &name, &[0, 0, 4, 2]);
}

/// Every partition of `topic` is mirrored, after `natives[p]` records of the cluster's own.
fn assert_mirrored_after(store: &Store, topic: &str, natives: &[u32]) {
    for (p, n) in (0u32..).zip(natives) {
        assert_after_natives(store, topic, p, *n);
    }
}

#[test]
fn a_store_opened_for_consuming_grows_with_its_cluster_topic_only_when_no_one_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    let name = unique("consumer-grows");
    writer.create_topic(&name, TopicConfig::new(1)).unwrap();
    fill_partition(&writer, &name, 0, 5);
    let store = Store::open_consumer(dir.path()).unwrap();
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 5);
    drop(mirror);
    grow_cluster_topic(&name, 1, 2, 3);
    // The application holds the store for writing: the mirror cannot grow it, and says so.
    match Mirror::new(&store, options().topic(&name)) {
        Err(Error::PartitionCountMismatch {
            topic,
            local,
            cluster,
        }) => assert_eq!((topic.as_str(), local, cluster), (name.as_str(), 1, 2)),
        other => panic!("expected PartitionCountMismatch, got {other:?}"),
    }
    assert_eq!(writer.topic(&name).unwrap().partition_count(), 1);
    // Once it has closed, the mirror grows the store through a short writing open.
    writer.close().unwrap();
    drop(writer);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(store.topic(&name).unwrap().partition_count(), 2);
    // The application, back, writes the new partition; the mirror follows it.
    let writer = Store::open(dir.path()).unwrap();
    assert_eq!(writer.topic(&name).unwrap().partition_count(), 2);
    fill_partition(&writer, &name, 1, 4);
    fill_partition(&writer, &name, 0, 2);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 6);
    assert_mirrored_after(&store, &name, &[0, 3]);
}

#[test]
fn partitions_added_on_both_sides_between_rounds_are_mirrored_by_the_next_round() {
    // The store topic grows while the mirror runs, and so does the cluster topic (as an
    // operator adds them there first): the counts agree again, but the mirror's producer has
    // not seen the new partitions.
    let (_dir, store, name) = store_with_topic("both-grow", 1);
    fill_partition(&store, &name, 0, 4);
    let mut mirror = Mirror::new(&store, options().topic(&name)).unwrap();
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 4);
    store.add_partitions(&name, 3).unwrap();
    grow_cluster_topic(&name, 1, 3, 0);
    fill_partition(&store, &name, 1, 3);
    fill_partition(&store, &name, 2, 2);
    fill_partition(&store, &name, 0, 1);
    assert_eq!(mirror.run_once(&mut |_| {}).unwrap(), 6);
    assert_mirrored(&store, &name);
}
