//! The damaged-file matrix: every kind of file a store writes × (deleted, emptied, cut short, one
//! bit flipped, garbage, renamed) × (after a clean close, after a crash). Each case must end in
//! a typed error naming a file of the store, a documented repair, or correct data; never a
//! panic, a hang, or a silent loss. For each case:
//!
//! * the read-only open, `verify` and the writable open agree: `verify` passes only if the
//!   writable open succeeds and serves everything; a writable open that refuses is a failed
//!   `verify`; a read-only open never serves what the writable open refuses (for the files both
//!   read);
//! * whatever an open serves is the acknowledged data: from the recorded log start, every
//!   offset in order with its value, up to the end or up to a `Corrupt` error naming a file;
//!   never a record that differs, never deleted records back, never a silent gap;
//! * committed group offsets come back as committed, or the open fails;
//! * where the default open refuses, the repair options either open a consistent prefix of the
//!   data or refuse too.
//!
//! Later issues add their files to `FILES`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use topiclog::config::{LogConfig, RecoveryOptions, StoreOptions, TopicConfig};
use topiclog::consumer::TopicPartition;
use topiclog::inspect;
use topiclog::partition::{IsolationLevel, ReadOptions};
use topiclog::record::Record;
use topiclog::{Error, Store};

const TOPIC: &str = "t";
const PARTITIONS: u32 = 2;
const RECORDS: i64 = 120;
const DELETED_BELOW: i64 = 15;
const GROUP: &str = "g";
/// A topic written by a transactional producer: commits and aborts over several segments.
const TXN_TOPIC: &str = "x";

/// A compacted topic whose keys are all distinct: compaction rewrites and merges its segments
/// (and writes the cleaner checkpoint and the compaction epoch) but drops no record.
fn config() -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(topiclog::config::CleanupPolicy::Compact)
        .segment_bytes(1024)
        .index_interval_bytes(128)
        .segment_index_bytes(4096)
        .build()
        .expect("config")
}

fn value(partition: u32, offset: i64) -> Vec<u8> {
    format!(
        "p{partition}-o{offset:05}-{}",
        "x".repeat((offset % 23) as usize)
    )
    .into_bytes()
}

/// What the store acknowledged.
#[derive(Debug, Clone)]
struct Expected {
    log_start: BTreeMap<u32, i64>,
    end: BTreeMap<u32, i64>,
    committed: BTreeMap<TopicPartition, i64>,
    /// The offsets of `x`'s committed records: what `read_committed` returns.
    txn_committed: Vec<i64>,
}

fn txn_value(offset: i64) -> Vec<u8> {
    format!("x-o{offset:05}").into_bytes()
}

/// A store with several segments per partition, an idempotent producer (snapshots and a
/// producer registry), a log start moved by `delete_records`, and a group's offsets. Closed
/// cleanly or dropped as a crash leaves it.
fn build(dir: &Path, close: bool) -> Expected {
    let store = Store::open(dir).expect("open");
    let topic = store
        .create_topic(TOPIC, TopicConfig::new(PARTITIONS).with_log(config()))
        .expect("topic");
    let producer = store.producer("writer").expect("producer");
    // A follower in another process (here, another store handle) makes the writer publish its
    // durable end; a member that joined and left leaves the group's membership file.
    let follower = Store::open_read_only(dir).expect("follower");
    std::thread::sleep(Duration::from_millis(120));
    {
        let config = topiclog::config::ConsumerConfig::builder()
            .group_id(GROUP)
            .build()
            .expect("config");
        let mut member = store.consumer(config).expect("consumer");
        member.subscribe(&[TOPIC]).expect("subscribe");
        member.poll(Duration::from_millis(10)).expect("poll");
        member.unsubscribe();
    }
    let mut expected = Expected {
        log_start: BTreeMap::new(),
        end: BTreeMap::new(),
        committed: BTreeMap::new(),
        txn_committed: Vec::new(),
    };
    // Transactions, some aborted, over several segments (each with its `.txnindex`), and
    // the coordinator's file.
    let txn_config = LogConfig::builder()
        .segment_bytes(600)
        .build()
        .expect("config");
    let txn_topic = store
        .create_topic(TXN_TOPIC, TopicConfig::new(1).with_log(txn_config))
        .expect("txn topic");
    let txn_log = txn_topic.partition(0).expect("partition");
    let transactional = store.transactional_producer("matrix").expect("producer");
    transactional.init_transactions().expect("init");
    for round in 0..16 {
        transactional.begin_transaction().expect("begin");
        let mut offsets = Vec::new();
        for _ in 0..1 + round % 3 {
            let next = txn_log.next_offset();
            let info = transactional
                .append(TXN_TOPIC, 0, &[Record::new(&txn_value(next))])
                .expect("append");
            assert_eq!(info.base_offset, next);
            offsets.push(next);
        }
        if round % 3 == 1 {
            transactional.abort_transaction().expect("abort");
        } else {
            transactional.commit_transaction().expect("commit");
            expected.txn_committed.extend(offsets);
        }
    }
    assert!(
        txn_log.segment_base_offsets().len() >= 4,
        "several segments"
    );
    drop((txn_log, txn_topic, transactional));
    for p in 0..PARTITIONS {
        for offset in 0..RECORDS {
            let v = value(p, offset);
            let k = offset.to_be_bytes();
            let got = if offset % 3 == 0 {
                producer
                    .append(TOPIC, p, &[Record::keyed(&k, &v)])
                    .expect("idempotent append")
                    .base_offset
            } else {
                topic.append_to(p, Record::keyed(&k, &v)).expect("append")
            };
            assert_eq!(got, offset);
            if offset == RECORDS / 2 {
                store.compact(TOPIC).expect("compact");
            }
        }
        let partition = topic.partition(p).expect("partition");
        partition
            .delete_records(DELETED_BELOW)
            .expect("delete records");
        expected.log_start.insert(p, partition.log_start_offset());
        expected.end.insert(p, RECORDS);
        assert!(
            partition.segment_base_offsets().len() >= 4,
            "several segments"
        );
    }
    let committed = [((TOPIC.to_owned(), 0), 40), ((TOPIC.to_owned(), 1), 77)];
    store.reset_offsets(GROUP, &committed).expect("commit");
    expected.committed = committed.into_iter().collect();
    if close {
        store.close().expect("close");
    }
    drop((topic, producer, store, follower));
    expected
}

/// Finds the instances of one kind of file in a store directory.
type Find = fn(&Path) -> Vec<PathBuf>;

/// The kinds of file a store writes.
const FILES: &[(&str, Find)] = &[
    ("sealed .log", |d| segment_files(d, "log", Some(false))),
    ("active .log", |d| segment_files(d, "log", Some(true))),
    ("sealed .index", |d| segment_files(d, "index", Some(false))),
    ("active .index", |d| segment_files(d, "index", Some(true))),
    ("sealed .timeindex", |d| {
        segment_files(d, "timeindex", Some(false))
    }),
    ("active .timeindex", |d| {
        segment_files(d, "timeindex", Some(true))
    }),
    ("producer .snapshot", |d| segment_files(d, "snapshot", None)),
    ("clean-shutdown marker", |d| {
        in_partition(d, ".topiclog_cleanshutdown")
    }),
    ("recovery checkpoint", |d| {
        in_partition(d, ".topiclog_recovery_point")
    }),
    ("log-start checkpoint", |d| {
        in_partition(d, ".topiclog_log_start_offset")
    }),
    ("topic registry", |d| in_store(d, "topiclog-topics")),
    ("producer registry", |d| in_store(d, "topiclog-producers")),
    ("group offsets", |d| {
        fs::read_dir(d)
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".offsets"))
            .collect()
    }),
    ("group list", |d| in_store(d, "topiclog-groups")),
    ("store lock file", |d| in_store(d, ".lock")),
    ("group membership", |d| {
        fs::read_dir(d)
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".members"))
            .collect()
    }),
    ("groups lock file", |d| in_store(d, "topiclog-groups.lock")),
    ("followers file", |d| in_store(d, "topiclog-followers")),
    ("writer file", |d| in_store(d, "topiclog-writer")),
    ("published durable end", |d| {
        in_partition(d, ".topiclog_published")
    }),
    ("cleaner checkpoint", |d| {
        in_store(d, "cleaner-offset-checkpoint")
    }),
    ("compaction epoch", |d| {
        in_partition(d, ".topiclog_compaction_epoch")
    }),
    ("sealed .txnindex", |d| txn_files(d, Some(false))),
    ("last .txnindex", |d| txn_files(d, Some(true))),
    ("transaction coordinator state", |d| {
        in_store(d, "topiclog-transactions")
    }),
];

/// The `.txnindex` files of the transactional topic, ascending; `Some(true)` the last,
/// `Some(false)` a middle one.
fn txn_files(store: &Path, last: Option<bool>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(store.join(format!("{TXN_TOPIC}-0")))
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect();
    files.sort();
    match last {
        None => files,
        Some(true) => files.pop().into_iter().collect(),
        Some(false) if files.len() >= 3 => vec![files[files.len() / 2].clone()],
        Some(false) => files.into_iter().take(1).collect(),
    }
}

fn partition_dir(store: &Path) -> PathBuf {
    store.join(format!("{TOPIC}-1"))
}

fn in_partition(store: &Path, name: &str) -> Vec<PathBuf> {
    let path = partition_dir(store).join(name);
    if path.exists() { vec![path] } else { vec![] }
}

fn in_store(store: &Path, name: &str) -> Vec<PathBuf> {
    let path = store.join(name);
    if path.exists() { vec![path] } else { vec![] }
}

/// Files of partition 1 with extension `ext`, ascending; `Some(true)` the last (active)
/// segment's, `Some(false)` a middle one's, `None` all.
fn segment_files(store: &Path, ext: &str, active: Option<bool>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(partition_dir(store))
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    match active {
        None => files,
        Some(true) => files.pop().into_iter().collect(),
        Some(false) if files.len() >= 3 => vec![files[files.len() / 2].clone()],
        Some(false) => vec![],
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Deleted,
    Emptied,
    CutShort,
    BitFlipped,
    Garbage,
    Renamed,
}

const DAMAGES: [Damage; 6] = [
    Damage::Deleted,
    Damage::Emptied,
    Damage::CutShort,
    Damage::BitFlipped,
    Damage::Garbage,
    Damage::Renamed,
];

fn apply(damage: Damage, path: &Path) {
    let bytes = fs::read(path).expect("read");
    match damage {
        Damage::Deleted => fs::remove_file(path).expect("remove"),
        Damage::Emptied => fs::write(path, b"").expect("empty"),
        Damage::CutShort => fs::write(path, &bytes[..bytes.len() / 2]).expect("cut"),
        Damage::BitFlipped => {
            let mut bytes = bytes;
            if !bytes.is_empty() {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x10;
            }
            fs::write(path, bytes).expect("flip");
        }
        Damage::Garbage => {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let garbage: Vec<u8> = (0..bytes.len().max(64))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fs::write(path, garbage).expect("garbage");
        }
        Damage::Renamed => {
            // A segment file to another base offset; anything else to a name nobody reads.
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let to = match name.split_once('.') {
                Some((digits, ext)) if digits.len() == 20 => {
                    let base: i64 = digits.parse().expect("base");
                    path.with_file_name(format!("{:020}.{ext}", base + 7))
                }
                _ => path.with_file_name(format!("{name}.bak")),
            };
            fs::rename(path, to).expect("rename");
        }
    }
}

/// What one open served, checked against what was acknowledged. `Err` says what was wrong.
fn check_served(store: &Store, dir: &Path, expected: &Expected) -> Result<(), String> {
    let topic = store.topic(TOPIC).map_err(|e| format!("topic: {e}"))?;
    if topic.partition_count() != PARTITIONS {
        return Err(format!("{} partitions", topic.partition_count()));
    }
    for p in 0..PARTITIONS {
        let partition = topic.partition(p).map_err(|e| e.to_string())?;
        let start = partition.log_start_offset();
        if start != expected.log_start[&p] {
            return Err(format!("partition {p}: log start {start}"));
        }
        let mut at = start;
        let reader = partition.read(start).map_err(|e| format!("read: {e}"))?;
        for record in reader {
            match record {
                Ok(record) => {
                    if record.offset() != at {
                        return Err(format!(
                            "partition {p}: offset {} where {at}",
                            record.offset()
                        ));
                    }
                    if record.value() != Some(&value(p, at)[..]) {
                        return Err(format!("partition {p}: offset {at} has another value"));
                    }
                    at += 1;
                }
                Err(Error::Corrupt { path, .. }) if path.starts_with(dir) => return Ok(()),
                Err(e) => return Err(format!("partition {p} at {at}: {e}")),
            }
        }
        if at != expected.end[&p] {
            return Err(format!("partition {p}: ends at {at}, silently"));
        }
    }
    // The transactional topic under read_committed: exactly the committed records.
    let log = store
        .topic(TXN_TOPIC)
        .and_then(|t| t.partition(0))
        .map_err(|e| format!("txn topic: {e}"))?;
    let options = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let mut want = expected.txn_committed.iter();
    for record in log
        .read_with(0, options)
        .map_err(|e| format!("read x: {e}"))?
    {
        match record {
            Ok(record) => {
                if want.next() != Some(&record.offset()) {
                    return Err(format!("x: read_committed returned {}", record.offset()));
                }
                if record.value() != Some(&txn_value(record.offset())[..]) {
                    return Err(format!("x: offset {} has another value", record.offset()));
                }
            }
            Err(Error::Corrupt { path, .. }) if path.starts_with(dir) => return Ok(()),
            Err(e) => return Err(format!("x: {e}")),
        }
    }
    if let Some(missing) = want.next() {
        return Err(format!(
            "x: committed offset {missing} not returned, silently"
        ));
    }
    Ok(())
}

/// Whether `e` is a typed error naming a file in the store.
fn names_a_store_file(e: &Error, dir: &Path) -> bool {
    matches!(e, Error::Corrupt { path, .. } if path.starts_with(dir))
}

fn run_case(
    template: &Path,
    expected: &Expected,
    file: &Path,
    damage: Damage,
) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = work.path().join("store");
    copy_tree(template, &dir);
    let target = dir.join(file.strip_prefix(template).map_err(|e| e.to_string())?);
    apply(damage, &target);

    let verified = inspect::verify_store(&dir, None).map_err(|e| format!("verify: {e}"))?;
    // Soft state an open repairs by itself: verify passes and names it as repairable.
    let name = target.to_string_lossy();
    let soft = name.ends_with(".members") || name.ends_with(".topiclog_published");
    let content = !matches!(damage, Damage::Deleted | Damage::Renamed);
    if soft && content {
        if !verified.is_ok() {
            return Err(format!("verify failed on soft state: {verified:?}"));
        }
        if !verified.repairable.iter().any(|p| p.path == target) {
            return Err("verify did not name the damaged soft-state file".to_owned());
        }
    }
    let read_only = Store::open_read_only(&dir);
    let read_only_served = match &read_only {
        Ok(store) => check_served(store, &dir, expected).map(|()| true),
        Err(e) if names_a_store_file(e, &dir) => Ok(false),
        Err(e) => Err(format!("read-only open: {e}")),
    }?;
    drop(read_only);

    let writable = Store::open(&dir);
    match &writable {
        Ok(store) => {
            check_served(store, &dir, expected)
                .map_err(|e| format!("writable open served: {e}"))?;
            let committed = store.committed_offsets(GROUP).map_err(|e| e.to_string())?;
            if committed != expected.committed {
                return Err(format!("committed offsets {committed:?}"));
            }
        }
        Err(e) if names_a_store_file(e, &dir) => {
            if verified.is_ok() {
                return Err(format!("verify passed, but the writable open says {e}"));
            }
            // A read-only store reads producer, group and transaction coordinator files only
            // when asked for them.
            let reads_it = !target.to_string_lossy().contains("topiclog-producers")
                && !target.to_string_lossy().contains("topiclog-transactions")
                && !target.to_string_lossy().contains("topiclog-group")
                && !target.to_string_lossy().ends_with(".offsets")
                && !target.to_string_lossy().ends_with(".snapshot");
            if read_only_served && reads_it {
                return Err(format!(
                    "read-only open served what the writable open refuses: {e}"
                ));
            }
            // The documented repairs: a consistent prefix, or a refusal too.
            drop(writable);
            let options = StoreOptions::builder()
                .recovery(
                    RecoveryOptions::new()
                        .truncate_corrupt(true)
                        .rebuild_log_start(true),
                )
                .build();
            if let Ok(store) = Store::open_with(&dir, options) {
                let topic = store.topic(TOPIC).map_err(|e| e.to_string())?;
                for p in 0..PARTITIONS {
                    let partition = topic.partition(p).map_err(|e| e.to_string())?;
                    let reader = partition.read(partition.log_start_offset());
                    for record in reader.into_iter().flatten() {
                        let Ok(record) = record else { break };
                        if record.value() != Some(&value(p, record.offset())[..]) {
                            return Err(format!(
                                "repair served a wrong record at {}",
                                record.offset()
                            ));
                        }
                    }
                }
            }
            return Ok(());
        }
        Err(e) => return Err(format!("writable open: untyped or unnamed error {e:?}")),
    }
    drop(writable);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn every_file_every_damage_after_a_clean_close() {
    run_matrix(true);
}

#[test]
fn every_file_every_damage_after_a_crash() {
    run_matrix(false);
}

fn run_matrix(close: bool) {
    let mut failures = Vec::new();
    let mut cases = 0;
    {
        let template = tempfile::tempdir().expect("tempdir");
        let expected = build(template.path(), close);
        for (kind, find) in FILES {
            let files = find(template.path());
            if files.is_empty() {
                // A crash leaves no marker; everything else must be there.
                assert!(
                    !close && *kind == "clean-shutdown marker",
                    "no {kind} after close={close}"
                );
                continue;
            }
            for damage in DAMAGES {
                for file in &files {
                    cases += 1;
                    let case = format!("{kind} ({}) {damage:?}, close={close}", file.display());
                    let (template, expected, file) = (
                        template.path().to_path_buf(),
                        expected.clone(),
                        file.clone(),
                    );
                    let (send, receive) = std::sync::mpsc::channel();
                    std::thread::spawn(move || {
                        let result = std::panic::catch_unwind(|| {
                            run_case(&template, &expected, &file, damage)
                        });
                        let _ = send.send(result);
                    });
                    let started = std::time::Instant::now();
                    let got = receive.recv_timeout(Duration::from_secs(60));
                    if std::env::var_os("TOPICLOG_MATRIX_TIMES").is_some() {
                        eprintln!("{:>6} ms {case}", started.elapsed().as_millis());
                    }
                    match got {
                        Ok(Ok(Ok(()))) => {}
                        Ok(Ok(Err(why))) => failures.push(format!("{case}: {why}")),
                        Ok(Err(_)) => failures.push(format!("{case}: panicked")),
                        Err(_) => failures.push(format!("{case}: hung")),
                    }
                }
            }
        }
    }
    assert!(cases > 80, "{cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
