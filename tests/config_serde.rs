//! Feature `serde`: configs as maps of their Kafka settings, in and out.

use topiclog::config::{ConsumerConfig, LogConfig, StoreOptions, TopicConfig};

#[test]
fn configs_round_trip_through_json_with_kafka_names() {
    let log = LogConfig::from_pairs([("segment.bytes", "4096"), ("compression.type", "lz4")])
        .expect("config");
    let json = serde_json::to_value(&log).expect("serialize");
    assert_eq!(json["segment.bytes"], "4096");
    assert_eq!(json["compression.type"], "lz4");
    let back: LogConfig = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, log);

    let consumer =
        ConsumerConfig::from_pairs([("group.id", "g"), ("max.poll.records", "7")]).expect("config");
    let back: ConsumerConfig =
        serde_json::from_str(&serde_json::to_string(&consumer).expect("serialize"))
            .expect("deserialize");
    assert_eq!(back, consumer);

    let topic = TopicConfig::from_pairs(3, [("retention.ms", "-1")]).expect("topic");
    let json = serde_json::to_value(&topic).expect("serialize");
    assert_eq!(json["partitions"], "3");
    let back: TopicConfig = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, topic);
}

#[test]
fn numbers_and_booleans_are_accepted_and_bad_settings_are_named() {
    let log: LogConfig =
        serde_json::from_str(r#"{"retention.ms": -1, "segment.bytes": 1048576}"#).expect("ok");
    assert_eq!((log.retention_ms(), log.segment_bytes()), (-1, 1 << 20));
    let consumer: ConsumerConfig =
        serde_json::from_str(r#"{"group.id": "g", "enable.auto.commit": false}"#).expect("ok");
    assert!(!consumer.enable_auto_commit());
    let store: StoreOptions =
        serde_json::from_str(r#"{"log.retention.hours": 2, "broker.id": 0}"#).expect("ok");
    assert_eq!(store.log_config().retention_ms(), 2 * 3_600_000);

    let err = serde_json::from_str::<LogConfig>(r#"{"segment.byte": 1}"#).expect_err("typo");
    assert!(err.to_string().contains("segment.byte"), "{err}");
    let err = serde_json::from_str::<LogConfig>(r#"{"segment.bytes": 1}"#).expect_err("range");
    assert!(err.to_string().contains("segment.bytes"), "{err}");
    let err = serde_json::from_str::<LogConfig>(r#"{"segment.bytes": [1]}"#).expect_err("type");
    assert!(
        err.to_string().contains("string, a number or a boolean"),
        "{err}"
    );
    let err = serde_json::from_str::<TopicConfig>(r#"{"retention.ms": 1}"#).expect_err("count");
    assert!(err.to_string().contains("partitions"), "{err}");
}
