//! Configs from Kafka-style key/value pairs and `.properties` files: every config kind, the
//! keys topiclog ignores, typed errors that name the key, and round trips.

use std::io::Write as _;

use topiclog::Error;
use topiclog::config::CompressionType;
use topiclog::config::{
    ConsumerConfig, IGNORED_CONSUMER_KEYS, IGNORED_STORE_KEYS, IGNORED_TOPIC_KEYS, LogConfig,
    OffsetReset, StoreOptions, TopicConfig,
};

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn topic_settings_round_trip_through_pairs() {
    let config = LogConfig::builder()
        .segment_bytes(1 << 20)
        .retention_ms(-1)
        .compression_type(CompressionType::Zstd)
        .compression_zstd_level(7)
        .build()
        .expect("valid");
    let pairs = config.to_pairs();
    let back = LogConfig::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).expect("back");
    assert_eq!(back.to_pairs(), pairs);
    assert_eq!(back.compression_type(), CompressionType::Zstd);
    // Equal settings and the same clock: equal configs.
    assert_eq!(
        LogConfig::from_pairs([("segment.bytes", "1048576")]).expect("a"),
        LogConfig::builder()
            .segment_bytes(1 << 20)
            .build()
            .expect("b")
    );
    assert_ne!(LogConfig::default(), back);
    let topic = TopicConfig::from_pairs(4, [("retention.bytes", "1000")]).expect("topic");
    assert_eq!(
        topic,
        TopicConfig::from_pairs(4, [("retention.bytes", "1000")]).expect("same")
    );
    assert_eq!(topic.log().retention_bytes(), 1000);
}

#[test]
fn an_unknown_key_is_a_typed_error_naming_it() {
    for (err, kind) in [
        (
            LogConfig::from_pairs([("segment.byte", "1")]).expect_err("typo"),
            "topic",
        ),
        (
            ConsumerConfig::from_pairs([("group.idd", "g")]).expect_err("typo"),
            "consumer",
        ),
        (
            StoreOptions::from_pairs([("log.segments.bytes", "1")]).expect_err("typo"),
            "store",
        ),
    ] {
        match &err {
            Error::UnknownConfig { key, kind: k } => {
                assert!(key.ends_with('1') || key.contains('.'), "{key}");
                assert_eq!(*k, kind);
            }
            other => panic!("expected UnknownConfig, got {other:?}"),
        }
        assert!(err.to_string().contains("unknown setting"), "{err}");
    }
}

#[test]
fn values_out_of_range_name_the_key_the_value_and_the_range() {
    let err = LogConfig::from_pairs([("segment.bytes", "1")]).expect_err("too small");
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
    let text = err.to_string();
    assert!(text.contains("segment.bytes") && text.contains(" 1 ") && text.contains("at least"));
    let err = LogConfig::from_pairs([("retention.ms", "soon")]).expect_err("not a number");
    assert!(err.to_string().contains("soon"), "{err}");
    let err = StoreOptions::from_pairs([("topiclog.max.partitions", "0")]).expect_err("zero");
    assert!(err.to_string().contains("topiclog.max.partitions"), "{err}");
}

#[test]
fn cleanup_policy_and_the_compaction_settings_take_kafkas_names_and_defaults() {
    use topiclog::config::CleanupPolicy;
    let config = LogConfig::from_pairs([("cleanup.policy", "delete")]).expect("delete");
    assert_eq!(config, LogConfig::default());
    let d = LogConfig::default();
    assert_eq!(d.cleanup_policy(), CleanupPolicy::Delete);
    assert_eq!(d.min_cleanable_dirty_ratio(), 0.5);
    assert_eq!(d.min_compaction_lag_ms(), 0);
    assert_eq!(d.max_compaction_lag_ms(), i64::MAX);
    assert_eq!(d.delete_retention_ms(), 86_400_000);
    for (text, policy) in [
        ("compact", CleanupPolicy::Compact),
        ("compact,delete", CleanupPolicy::CompactDelete),
        ("delete,compact", CleanupPolicy::CompactDelete),
        (" compact , delete ", CleanupPolicy::CompactDelete),
    ] {
        let config = LogConfig::from_pairs([("cleanup.policy", text)]).expect(text);
        assert_eq!(config.cleanup_policy(), policy, "{text}");
        // What `to_pairs` writes reads back the same.
        assert_eq!(LogConfig::from_pairs(config.to_pairs()).unwrap(), config);
    }
    let config = LogConfig::from_pairs([
        ("min.cleanable.dirty.ratio", "0.25"),
        ("min.compaction.lag.ms", "1000"),
        ("max.compaction.lag.ms", "60000"),
        ("delete.retention.ms", "0"),
    ])
    .unwrap();
    assert_eq!(config.min_cleanable_dirty_ratio(), 0.25);
    assert_eq!(
        (
            config.min_compaction_lag_ms(),
            config.max_compaction_lag_ms(),
            config.delete_retention_ms()
        ),
        (1000, 60_000, 0)
    );
    assert_eq!(LogConfig::from_pairs(config.to_pairs()).unwrap(), config);
    for (key, value) in [
        ("cleanup.policy", "shred"),
        ("cleanup.policy", ""),
        ("cleanup.policy", "compact,shred"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("min.cleanable.dirty.ratio", "half"),
        ("min.compaction.lag.ms", "-1"),
        ("max.compaction.lag.ms", "0"),
        ("delete.retention.ms", "-1"),
    ] {
        match LogConfig::from_pairs([(key, value)]) {
            Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key, "{value}"),
            other => panic!("{key}={value}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn kafka_settings_without_meaning_here_are_accepted_and_ignored() {
    let topic = LogConfig::from_pairs(IGNORED_TOPIC_KEYS.iter().map(|k| (*k, "1")))
        .expect("ignored topic keys");
    assert_eq!(topic, LogConfig::default());
    let consumer = ConsumerConfig::from_pairs(
        IGNORED_CONSUMER_KEYS
            .iter()
            .map(|k| (*k, "x"))
            .chain([("group.id", "g")]),
    )
    .expect("ignored consumer keys");
    assert_eq!(consumer.group_id(), Some("g"));
    StoreOptions::from_pairs(IGNORED_STORE_KEYS.iter().map(|k| (*k, "x")))
        .expect("ignored store keys");
}

#[test]
fn a_broker_server_properties_file_opens_a_store() {
    let f = file(
        "# A Kafka broker's server.properties\n\
         broker.id=0\n\
         listeners=PLAINTEXT://:9092\n\
         log.dirs=/var/lib/kafka\n\
         num.partitions=1\n\
         log.retention.hours=168\n\
         log.retention.minutes=60\n\
         log.segment.bytes=1073741824\n\
         log.retention.check.interval.ms=300000\n\
         topiclog.max.partitions=64\n",
    );
    let options = StoreOptions::from_properties_file(f.path()).expect("server.properties");
    // The finest unit wins, whatever the order (Kafka: ms over minutes over hours).
    assert_eq!(options.log_config().retention_ms(), 60 * 60_000);
    let later_hours =
        StoreOptions::from_pairs([("log.retention.ms", "5000"), ("log.retention.hours", "1")])
            .expect("pairs");
    assert_eq!(later_hours.log_config().retention_ms(), 5000);
    let forever = StoreOptions::from_pairs([("log.retention.hours", "-1")]).expect("forever");
    assert_eq!(forever.log_config().retention_ms(), -1);

    let dir = tempfile::tempdir().expect("dir");
    let store = topiclog::Store::open_with(dir.path(), options).expect("store");
    let topic = store
        .create_topic("t", TopicConfig::new(65))
        .expect_err("above topiclog.max.partitions");
    assert!(topic.to_string().contains("64"), "{topic}");
}

#[test]
fn consumer_and_topic_properties_files() {
    let f = file(
        "bootstrap.servers=localhost:9092\n\
         group.id = billing\n\
         auto.offset.reset: earliest\n\
         key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
         max.poll.records 50\n",
    );
    let consumer = ConsumerConfig::from_properties_file(f.path()).expect("consumer");
    assert_eq!(consumer.group_id(), Some("billing"));
    assert_eq!(consumer.auto_offset_reset(), OffsetReset::Earliest);
    assert_eq!(consumer.max_poll_records(), 50);

    let f = file("retention.ms=60000\nsegment.bytes=\\\n  4096\n");
    let topic = LogConfig::from_properties_file(f.path()).expect("topic");
    assert_eq!(
        (topic.retention_ms(), topic.segment_bytes()),
        (60_000, 4096)
    );
}

#[test]
fn a_malformed_or_missing_file_names_the_file_and_line() {
    let f = file("retention.ms=1\n\n=orphan value\n");
    match LogConfig::from_properties_file(f.path()).expect_err("malformed") {
        Error::ConfigFile { path, line, .. } => {
            assert_eq!(path, f.path());
            assert_eq!(line, 3);
        }
        other => panic!("expected ConfigFile, got {other:?}"),
    }
    let err =
        LogConfig::from_properties_file("/nonexistent/topic.properties").expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/topic.properties"),
        "{err}"
    );
}

#[test]
fn setting_enums_display_their_kafka_names() {
    use topiclog::consumer::RebalanceEvent;
    use topiclog::record::TimestampType;
    assert_eq!(OffsetReset::Earliest.to_string(), "earliest");
    assert_eq!(CompressionType::Zstd.to_string(), "zstd");
    assert_eq!(TimestampType::LogAppendTime.to_string(), "LogAppendTime");
    assert_eq!(
        RebalanceEvent::Assigned(vec![("t".to_owned(), 0), ("t".to_owned(), 3)]).to_string(),
        "assigned t-0, t-3"
    );
    assert_eq!(RebalanceEvent::Lost(vec![]).to_string(), "lost");
}
