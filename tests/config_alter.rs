//! Changing a topic's settings while it is open: `Store::alter_topic_config` persists them in
//! the registry and every open partition takes them up at once; `Partition::set_config` does
//! the second half for a partition on its own.

use topiclog::config::{LogConfig, TopicConfig};
use topiclog::record::Record;
use topiclog::{Error, Partition, Store};

fn append_n(store: &Store, topic: &str, n: usize) {
    let t = store.topic(topic).expect("topic");
    for i in 0..n {
        t.append_to(
            0,
            Record::new(format!("value {i:06} padded to some length").as_bytes()),
        )
        .expect("append");
    }
}

#[test]
fn altered_settings_apply_at_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = Store::open(dir.path()).expect("store");
        store.create_topic("t", TopicConfig::new(2)).expect("topic");
        append_n(&store, "t", 20);
        let before = store
            .topic("t")
            .expect("t")
            .partition(0)
            .expect("p")
            .segment_base_offsets();
        assert_eq!(before.len(), 1);

        store
            .alter_topic_config("t", [("segment.bytes", "1024"), ("retention.ms", "-1")])
            .expect("alter");
        let topic = store.topic("t").expect("t");
        assert_eq!(topic.config().segment_bytes(), 1024);
        for p in topic.partitions() {
            assert_eq!(p.config().segment_bytes(), 1024);
            assert_eq!(p.config().retention_ms(), -1);
        }
        // The next appends roll at the new size.
        append_n(&store, "t", 40);
        let after = topic.partition(0).expect("p").segment_base_offsets();
        assert!(after.len() > 2, "rolled at 1 KiB: {after:?}");
        store.close().expect("close");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let topic = store.topic("t").expect("t");
    assert_eq!(topic.config().segment_bytes(), 1024);
    assert_eq!(topic.config().retention_ms(), -1);
    assert_eq!(topic.partition(0).expect("p").next_offset(), 60);
    let read_only = Store::open_read_only(dir.path());
    assert!(read_only.is_ok(), "read-only beside the writer");
}

#[test]
fn a_retention_change_is_enforced_by_the_next_run() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let config = TopicConfig::from_pairs(1, [("segment.bytes", "1024")]).expect("config");
    store.create_topic("t", config).expect("topic");
    append_n(&store, "t", 100);
    assert!(store.enforce_retention().expect("retention").is_empty());
    store
        .alter_topic_config("t", [("retention.bytes", "2048")])
        .expect("alter");
    let deleted = store.enforce_retention().expect("retention");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(
        store
            .topic("t")
            .expect("t")
            .partition(0)
            .expect("p")
            .log_start_offset()
            > 0
    );
}

#[test]
fn a_bad_setting_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = Store::open(dir.path()).expect("store");
        store.create_topic("t", TopicConfig::new(1)).expect("topic");
        let err = store
            .alter_topic_config("t", [("retention.ms", "5"), ("segment.bytes", "1")])
            .expect_err("out of range");
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    key: "segment.bytes",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = store
            .alter_topic_config("t", [("retention.msec", "5")])
            .expect_err("unknown");
        assert!(matches!(err, Error::UnknownConfig { .. }), "{err:?}");
        let err = store
            .alter_topic_config("nope", [("retention.ms", "5")])
            .expect_err("no topic");
        assert!(matches!(err, Error::UnknownTopic(_)), "{err:?}");
        assert_eq!(
            store.topic("t").expect("t").config().retention_ms(),
            LogConfig::default().retention_ms()
        );
        store.close().expect("close");
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.topic("t").expect("t").config().retention_ms(),
        LogConfig::default().retention_ms()
    );
    drop(store);
    let read_only = Store::open_read_only(dir.path()).expect("read-only");
    let err = read_only
        .alter_topic_config("t", [("retention.ms", "5")])
        .expect_err("read-only");
    assert!(matches!(err, Error::ReadOnly), "{err:?}");
}

#[test]
fn switching_the_flush_policy_keeps_every_record() {
    let dir = tempfile::tempdir().expect("dir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    log.append(Record::new(b"durable")).expect("append");
    let lazy = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("lazy");
    log.set_config(lazy).expect("lazy");
    assert!(!log.config().is_durable());
    for i in 0..10 {
        log.append(Record::new(format!("lazy {i}").as_bytes()))
            .expect("append");
    }
    log.set_config(LogConfig::default()).expect("durable again");
    assert!(log.config().is_durable());
    log.append(Record::new(b"durable again")).expect("append");
    // Dropped without close: everything acknowledged under the durable policy, and what the
    // switch flushed, is on disk.
    drop(log);
    let log = Partition::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.next_offset(), 12);
    let values: Vec<Vec<u8>> = log
        .read(0)
        .expect("read")
        .map(|r| r.expect("record").value().expect("value").to_vec())
        .collect();
    assert_eq!(values.first().map(Vec::as_slice), Some(&b"durable"[..]));
    assert_eq!(
        values.last().map(Vec::as_slice),
        Some(&b"durable again"[..])
    );

    let ro = Partition::open_read_only(dir.path(), LogConfig::default()).expect("read-only");
    assert!(matches!(
        ro.set_config(LogConfig::default()),
        Err(Error::ReadOnly)
    ));
}
