//! Topics in a store: create (Kafka's name rules), list, look up, grow (never shrink), delete
//! (files removed, name reusable); configs persist across reopen in the store's registry, and
//! a malformed registry is a typed error naming the file.

mod common;

use topiclog::config::{LogConfig, TopicConfig};
use topiclog::error::Corruption;
use topiclog::record::Record;
use topiclog::{Error, Store};

#[test]
fn create_list_grow_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.topics().is_empty());
    let log = LogConfig::builder()
        .segment_bytes(4096)
        .retention_ms(60_000)
        .build()
        .unwrap();
    let orders = store
        .create_topic("orders", TopicConfig::new(3).with_log(log))
        .unwrap();
    store.create_topic("audit.v2", TopicConfig::new(1)).unwrap();
    assert_eq!(store.topics(), ["audit.v2", "orders"]);
    assert_eq!(orders.partition_count(), 3);
    for p in 0..3 {
        assert!(
            dir.path().join(format!("orders-{p}")).is_dir(),
            "Kafka's directory names"
        );
    }
    assert!(matches!(
        store.create_topic("orders", TopicConfig::new(1)),
        Err(Error::TopicExists(_))
    ));
    assert!(matches!(
        store.create_topic("bad name", TopicConfig::new(1)),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        store.create_topic("..", TopicConfig::new(1)),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        store.create_topic("zero", TopicConfig::new(0)),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(store.topic("nope"), Err(Error::UnknownTopic(_))));
    assert!(matches!(
        orders.partition(3),
        Err(Error::UnknownPartition {
            partition: 3,
            partitions: 3,
            ..
        })
    ));

    orders.append_to(2, Record::new(b"x")).unwrap();
    store.add_partitions("orders", 5).unwrap();
    assert_eq!(orders.partition_count(), 5);
    assert!(
        matches!(
            store.add_partitions("orders", 4),
            Err(Error::InvalidConfig { .. })
        ),
        "never shrinks"
    );
    store.close().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let orders = store.topic("orders").unwrap();
    assert_eq!(orders.partition_count(), 5);
    assert_eq!(orders.config().segment_bytes(), 4096, "settings persist");
    assert_eq!(orders.config().retention_ms(), 60_000);
    assert_eq!(orders.partition(2).unwrap().next_offset(), 1);

    store.delete_topic("orders").unwrap();
    assert_eq!(store.topics(), ["audit.v2"]);
    assert!(!dir.path().join("orders-0").exists());
    assert!(matches!(
        store.delete_topic("orders"),
        Err(Error::UnknownTopic(_))
    ));
    let again = store.create_topic("orders", TopicConfig::new(1)).unwrap();
    assert_eq!(
        again.partition(0).unwrap().next_offset(),
        0,
        "a recreated topic starts empty"
    );
    drop(store);
    assert_eq!(
        Store::open(dir.path()).unwrap().topics(),
        ["audit.v2", "orders"]
    );
}

#[test]
fn a_topic_with_100_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("wide", TopicConfig::new(100)).unwrap();
    for i in 0..1000u32 {
        topic
            .append(Record::keyed(format!("key-{i}").as_bytes(), b"v"))
            .unwrap();
    }
    let used = topic
        .partitions()
        .iter()
        .filter(|p| p.next_offset() > 0)
        .count();
    assert!(used > 90, "keys spread over the partitions: {used}");
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let total: i64 = store
        .topic("wide")
        .unwrap()
        .partitions()
        .iter()
        .map(|p| p.next_offset())
        .sum();
    assert_eq!(total, 1000);
}

#[test]
fn a_malformed_registry_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let registry = dir.path().join(topiclog::layout::TOPICS_FILE);
    for text in [
        "topiclog-topics 9\n",
        "topiclog-topics 1\norders partitions=x\n",
        "garbage",
    ] {
        std::fs::write(&registry, text).unwrap();
        match Store::open(dir.path()) {
            Err(Error::Corrupt {
                path,
                kind: Corruption::Topics(_) | Corruption::Metadata(_),
                ..
            }) => {
                assert_eq!(path, registry)
            }
            other => panic!("{text:?}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_missing_directory_is_created_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("store");
    let options = topiclog::config::StoreOptions::builder()
        .create_if_missing(false)
        .build();
    assert!(matches!(
        Store::open_with(&missing, options),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists());
    Store::open(&missing).unwrap();
    assert!(missing.is_dir());
}
