//! Topic changes are atomic and bounded, and the registry agrees with the directories.
//!
//! `create_topic` and `add_partitions` happen whole or not at all: a failure part way (out of
//! file descriptors here, in a child process with a low limit) leaves the store as it was; a
//! kill at any moment (real child processes, killed at seeded random moments) is rolled back by
//! the next open; a read-only open beside a writer creating topics only ever sees whole topics.
//! The partition count is bounded before anything is written. A registry that disagrees with the
//! partition directories, or is missing from a store that had one, is `Error::Corrupt`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::{StoreOptions, TopicConfig};
use topiclog::error::Corruption;
use topiclog::layout::TOPICS_FILE;
use topiclog::record::Record;
use topiclog::{Error, Store};

const CHILD_ENV: &str = "TOPICLOG_TEST_TOPIC_CHANGES_CHILD";

/// The names in a store directory that look like partition directories.
fn partition_dirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.ends_with("-delete"))
        .collect()
}

/// Every topic of `store` has exactly its partitions' directories, and nothing else is there.
fn assert_consistent(store: &Store, dir: &Path) {
    let mut expected = BTreeSet::new();
    for name in store.topics() {
        let topic = store.topic(&name).expect("topic");
        for p in 0..topic.partition_count() {
            expected.insert(format!("{name}-{p}"));
        }
    }
    assert_eq!(partition_dirs(dir), expected);
}

#[test]
fn the_partition_count_is_bounded_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions::builder().max_partitions(8).build();
    let store = Store::open_with(dir.path(), options).expect("open");
    let registry = std::fs::read(dir.path().join(TOPICS_FILE)).expect("registry written at open");
    for count in [0, 9, u32::MAX] {
        let started = Instant::now();
        match store.create_topic("big", TopicConfig::new(count)) {
            Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "partitions"),
            other => panic!("{count}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    store
        .create_topic("t", TopicConfig::new(8))
        .expect("at the bound");
    let after_create = std::fs::read(dir.path().join(TOPICS_FILE)).expect("registry");
    assert_ne!(after_create, registry);
    assert!(matches!(
        store.add_partitions("t", 9),
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(
        std::fs::read(dir.path().join(TOPICS_FILE)).expect("registry"),
        after_create,
        "nothing written"
    );
    assert_consistent(&store, dir.path());
    // The default bound.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert!(matches!(
        store.create_topic(
            "x",
            TopicConfig::new(topiclog::config::DEFAULT_MAX_PARTITIONS + 1)
        ),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(partition_dirs(dir.path()).is_empty());
}

/// Run as a child process with a low open-file limit: creates a topic too large for it, and
/// grows a small one past it, reporting what happened. In a normal test run it does nothing.
#[test]
fn child_runs_out_of_file_descriptors() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir).expect("open");
    store
        .create_topic("small", TopicConfig::new(2))
        .expect("small");
    let big = store.create_topic("big", TopicConfig::new(200));
    println!("RESULT:create {}", matches!(big, Err(Error::Io { .. })));
    let grow = store.add_partitions("small", 200);
    println!("RESULT:grow {}", matches!(grow, Err(Error::Io { .. })));
    // The store is as it was: the small topic, whole, and it still works.
    assert_eq!(store.topics(), ["small"]);
    assert_eq!(store.topic("small").expect("small").partition_count(), 2);
    store
        .topic("small")
        .expect("small")
        .append_to(1, Record::new(b"v"))
        .expect("append");
    store.close().expect("close");
    println!("RESULT:done");
}

#[test]
fn a_failed_create_or_grow_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 96 && exec \"$0\" --exact child_runs_out_of_file_descriptors --nocapture --test-threads=1")
        .arg(&exe)
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in ["RESULT:create true", "RESULT:grow true", "RESULT:done"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.topics(), ["small"]);
    assert_eq!(store.topic("small").expect("small").partition_count(), 2);
    assert_consistent(&store, dir.path());
}

/// Run as a child process: creates and grows topics until killed.
#[test]
fn child_creates_topics_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir).expect("open");
    println!("started");
    for i in 0.. {
        let name = format!("t{i}");
        if store.topic(&name).is_ok() {
            continue;
        }
        store
            .create_topic(&name, TopicConfig::new(6))
            .expect("create");
        store.add_partitions(&name, 12).expect("grow");
    }
}

#[test]
fn kills_during_topic_changes_are_rolled_back_or_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let seed = std::env::var("TOPICLOG_TOPIC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for kill in 0..24 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_creates_topics_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        // Early kills land while the child opens the store; later ones inside changes.
        std::thread::sleep(Duration::from_micros(next() % 60_000));
        child.kill().expect("kill");
        child.wait().expect("reap");
        let what = format!("seed {seed}, kill {kill}");
        // Read-only first: it never fails and sees only whole topics.
        let reader = Store::open_read_only(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        for name in reader.topics() {
            let count = reader.topic(&name).expect("topic").partition_count();
            assert!(count == 6 || count == 12, "{what}: {name} has {count}");
        }
        drop(reader);
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_consistent(&store, dir.path());
        store.close().expect("close");
    }
}

#[test]
fn a_read_only_open_beside_a_writer_creating_topics_sees_whole_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..40 {
                let name = format!("t{i}");
                store
                    .create_topic(&name, TopicConfig::new(5))
                    .expect("create");
                store.add_partitions(&name, 10).expect("grow");
                if i % 3 == 0 {
                    store.delete_topic(&name).expect("delete");
                }
            }
        });
        while !writer.is_finished() {
            let reader = Store::open_read_only(dir.path()).expect("read-only open");
            for name in reader.topics() {
                if let Ok(topic) = reader.topic(&name) {
                    let count = topic.partition_count();
                    assert!(count == 5 || count == 10, "{name} has {count}");
                }
            }
        }
    });
}

#[test]
fn a_registry_disagreeing_with_the_directories_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("two", TopicConfig::new(2))
        .expect("create");
    store.close().expect("close");
    drop(store);
    let registry = dir.path().join(TOPICS_FILE);
    let text = std::fs::read_to_string(&registry).expect("registry");
    let line = text.lines().nth(1).expect("topic line");
    // Lowered by hand to one partition (a version 1 file has no checksum to recompute).
    let lowered = format!(
        "topiclog-topics 1\n{}\n",
        line.replace("partitions=2", "partitions=1")
    );
    std::fs::write(&registry, &lowered).expect("write");
    for read_only in [false, true] {
        let opened = if read_only {
            Store::open_read_only(dir.path())
        } else {
            Store::open(dir.path())
        };
        match opened {
            Err(Error::Corrupt {
                path,
                kind: Corruption::Topics(why),
                ..
            }) => {
                assert_eq!(path, dir.path().join("two-1"), "{why}");
            }
            other => panic!("read_only={read_only}: {other:?}"),
        }
    }
    // Raised: a registered partition without a directory.
    let raised = format!(
        "topiclog-topics 1\n{}\n",
        line.replace("partitions=2", "partitions=3")
    );
    std::fs::write(&registry, &raised).expect("write");
    match Store::open(dir.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, dir.path().join("two-2")),
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.path().join("two-2").exists(),
        "not created behind the registry's back"
    );
    // A flipped bit in the current format is caught by its checksum.
    let mut bytes = text.clone().into_bytes();
    let at = text.find("partitions=2").expect("count") + "partitions=".len();
    bytes[at] ^= 1;
    std::fs::write(&registry, &bytes).expect("write");
    assert!(matches!(
        Store::open(dir.path()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_lost_registry_is_corrupt_but_a_kafka_log_dir_is_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let topic = store
        .create_topic("kept", TopicConfig::new(1))
        .expect("create");
    topic.append_to(0, Record::new(b"v")).expect("append");
    store.close().expect("close");
    drop((topic, store));
    std::fs::remove_file(dir.path().join(TOPICS_FILE)).expect("remove");
    for read_only in [false, true] {
        let opened = if read_only {
            Store::open_read_only(dir.path())
        } else {
            Store::open(dir.path())
        };
        match opened {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, dir.path().join(TOPICS_FILE)),
            other => panic!("read_only={read_only}: {other:?}"),
        }
    }

    // Partition directories another Kafka implementation wrote, with no topiclog file: adopted
    // (and registered as adopted, so the next open agrees).
    let kafka = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-made/plain-0");
    if fixture.is_dir() {
        let to = kafka.path().join("plain-0");
        std::fs::create_dir_all(&to).expect("dir");
        for entry in std::fs::read_dir(&fixture).expect("fixture") {
            let entry = entry.expect("entry");
            if entry
                .path()
                .extension()
                .is_some_and(|e| e == "log" || e == "index" || e == "timeindex")
            {
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
            }
        }
        let store = Store::open(kafka.path()).expect("adopts");
        assert_eq!(store.topics(), ["plain"]);
        store.close().expect("close");
        drop(store);
        let store = Store::open(kafka.path()).expect("reopens");
        assert_eq!(store.topics(), ["plain"]);
        assert_eq!(
            store.topic("plain").expect("plain").config().retention_ms(),
            -1,
            "retention off"
        );
    }
}
