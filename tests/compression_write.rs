//! Writing compressed batches: the topic's `compression.type` (Kafka's names; `producer`, the
//! default, stores each append as it asks) and the levels; the batch header stays in clear with
//! the codec in its attributes, and the batches read back, survive a crash and persist their
//! topic settings. A build without a codec refuses to write it with a typed error.

// Builds with only some codecs run none of the tests below but the codec-off one.
#![cfg_attr(
    not(all(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    )),
    allow(unused_imports, dead_code)
)]

use topiclog::config::{CompressionType, LogConfig};
use topiclog::record::{Compression, Record};
use topiclog::{Error, Partition};

/// The codec id in each batch's attributes, walking the `.log` files of `dir`.
fn codecs(dir: &std::path::Path) -> Vec<u8> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut out = Vec::new();
    for log in logs {
        let bytes = std::fs::read(log).expect("log");
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4"));
            let attributes = u16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().expect("2"));
            out.push((attributes & 7) as u8);
            pos += 12 + length as usize;
        }
    }
    out
}

/// JSON-like values of a few hundred bytes.
fn json(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order":{i},"customer":"customer-{}","items":[{}],"note":"{}"}}"#,
        i % 17,
        (0..i % 9)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "lorem ipsum dolor sit amet ".repeat(8)
    )
    .into_bytes()
}

fn config(compression: CompressionType) -> LogConfig {
    LogConfig::builder()
        .compression_type(compression)
        .flush_messages(i64::MAX)
        .build()
        .expect("config")
}

/// Every test but the codec-off one needs each codec.
#[cfg(all(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
mod every_codec {
    use super::*;

    #[test]
    fn the_topic_type_or_the_append_chooses_the_codec() {
        let values: Vec<Vec<u8>> = (0..50).map(json).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
        let cases = [
            (CompressionType::Producer, Compression::None, 0u8),
            (CompressionType::Producer, Compression::Gzip, 1),
            (CompressionType::Producer, Compression::Snappy, 2),
            (CompressionType::Producer, Compression::Lz4, 3),
            (CompressionType::Producer, Compression::Zstd, 4),
            (CompressionType::Uncompressed, Compression::Zstd, 0),
            (CompressionType::Gzip, Compression::None, 1),
            (CompressionType::Snappy, Compression::Lz4, 2),
            (CompressionType::Lz4, Compression::None, 3),
            (CompressionType::Zstd, Compression::Gzip, 4),
        ];
        for (topic_type, asked, want) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Partition::open(dir.path(), config(topic_type)).expect("open");
            log.append_batch_compressed(&records, asked)
                .expect("append");
            log.append_batch_compressed(&records[..1], asked)
                .expect("one record");
            log.append(Record::new(b"plain append")).expect("append");
            let got: Vec<Vec<u8>> = log
                .read(0)
                .expect("reader")
                .map(|r| r.expect("record").value().expect("value").to_vec())
                .collect();
            assert_eq!(got.len(), 52, "{topic_type:?}/{asked:?}");
            assert_eq!(&got[..50], &values[..], "{topic_type:?}/{asked:?}");
            log.flush().expect("flush");
            let found = codecs(dir.path());
            assert_eq!(found[0], want, "{topic_type:?}/{asked:?}");
            assert_eq!(found[1], want, "{topic_type:?}/{asked:?}");
            // A plain append is uncompressed unless the topic says otherwise.
            let plain = topic_type.codec_for(Compression::None) as u8;
            assert_eq!(found[2], plain, "{topic_type:?}");
            // Compressed batches are valid data to recovery: a crash keeps them.
            drop(log);
            let log = Partition::open(dir.path(), config(topic_type)).expect("reopen");
            assert!(
                log.recovery().truncations.is_empty(),
                "{:?}",
                log.recovery()
            );
            assert_eq!(log.read(0).expect("reader").count(), 52);
        }
    }

    #[test]
    fn compression_shrinks_the_files_and_the_limit_applies_to_the_compressed_batch() {
        let values: Vec<Vec<u8>> = (0..2_000).map(json).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
        let raw: usize = values.iter().map(Vec::len).sum();
        let small = LogConfig::builder()
            .max_message_bytes(raw as i32 / 4)
            .compression_type(CompressionType::Zstd)
            .build()
            .expect("config");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Partition::open(dir.path(), small).expect("open");
        // Four times max.message.bytes of records, compressed far below it: accepted.
        log.append_batch(&records)
            .expect("compressed below the limit");
        log.close().expect("close");
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().expect("meta").len())
            .sum();
        assert!(
            on_disk * 4 < raw as u64,
            "{on_disk} bytes on disk for {raw}"
        );
        // Uncompressed, the same batch is too large.
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = LogConfig::builder()
            .max_message_bytes(raw as i32 / 4)
            .build()
            .expect("config");
        let log = Partition::open(dir.path(), plain).expect("open");
        assert!(matches!(
            log.append_batch(&records),
            Err(Error::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn compression_settings_use_kafkas_names_and_persist_with_the_topic() {
        use topiclog::Store;
        use topiclog::config::TopicConfig;
        let built = LogConfig::builder()
            .set("compression.type", "gzip")
            .and_then(|b| b.set("compression.gzip.level", "9"))
            .and_then(|b| b.set("compression.zstd.level", "-5"))
            .and_then(|b| b.set("compression.lz4.level", "12"))
            .and_then(topiclog::config::LogConfigBuilder::build)
            .expect("valid");
        assert_eq!(built.compression_type(), CompressionType::Gzip);
        assert_eq!(built.compression_levels().gzip, Some(9));
        assert_eq!(built.compression_levels().zstd, Some(-5));
        for (key, value) in [
            ("compression.type", "brotli"),
            ("compression.gzip.level", "0"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
        ] {
            let result = LogConfig::builder()
                .set(key, value)
                .and_then(topiclog::config::LogConfigBuilder::build);
            assert!(
                matches!(result, Err(Error::InvalidConfig { .. })),
                "{key}={value}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("store");
            let topic = store
                .create_topic("t", TopicConfig::new(1).with_log(built))
                .expect("topic");
            topic.append(Record::new(&json(1))).expect("append");
            store.close().expect("close");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let topic = store.topic("t").expect("topic");
        assert_eq!(topic.config().compression_type(), CompressionType::Gzip);
        assert_eq!(topic.config().compression_levels().gzip, Some(9));
        assert_eq!(codecs(&dir.path().join("t-0")), [1]);
    }

    #[test]
    fn topic_and_producer_appends_ask_for_a_codec() {
        use topiclog::Store;
        use topiclog::config::TopicConfig;
        let values: Vec<Vec<u8>> = (0..40).map(json).collect();
        let keys: Vec<String> = (0..values.len()).map(|i| format!("key-{i}")).collect();
        let records: Vec<Record<'_>> = values
            .iter()
            .zip(&keys)
            .map(|(v, k)| Record::keyed(k.as_bytes(), v))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let routed = store
            .create_topic("routed", TopicConfig::new(2))
            .expect("topic");
        let placed = routed
            .append_batch_compressed(&records, Compression::Snappy)
            .expect("append");
        // Routed as an uncompressed append_batch would route them: by key, one batch per partition.
        let plain_placed = routed.append_batch(&records).expect("plain");
        for ((p, o), (q, _)) in placed.iter().zip(&plain_placed) {
            assert_eq!(p, q, "same partition for the same key");
            let got = routed
                .partition(*p)
                .expect("partition")
                .read(*o)
                .expect("reader")
                .next()
                .expect("a record")
                .expect("decodes");
            assert_eq!(got.offset(), *o);
        }
        let forced = store
            .create_topic(
                "forced",
                TopicConfig::new(1).with_log(config(CompressionType::Zstd)),
            )
            .expect("topic");
        forced
            .append_batch_compressed(&records, Compression::Gzip)
            .expect("append");

        store
            .create_topic("idempotent", TopicConfig::new(1))
            .expect("topic");
        let producer = store
            .producer("p")
            .expect("producer")
            .with_compression(Compression::Lz4);
        assert_eq!(producer.compression(), Compression::Lz4);
        let first = producer.append("idempotent", 0, &records).expect("append");
        // A retry of the compressed batch is still recognized: same offsets, nothing written.
        let retry = producer
            .append_with_sequence("idempotent", 0, 0, &records)
            .expect("retry");
        assert_eq!(retry, first);
        producer
            .send("idempotent", Record::new(b"one more"))
            .expect("send");
        let values_read: Vec<Vec<u8>> = store
            .topic("idempotent")
            .expect("topic")
            .partition(0)
            .expect("partition")
            .read(0)
            .expect("reader")
            .map(|r| r.expect("record").value().expect("value").to_vec())
            .collect();
        assert_eq!(values_read.len(), 41);
        assert_eq!(&values_read[..40], &values[..]);
        store.close().expect("close");

        // 40 keys reach both partitions: a snappy batch in each, then a plain one in each.
        let mut routed_codecs = codecs(&dir.path().join("routed-0"));
        routed_codecs.extend(codecs(&dir.path().join("routed-1")));
        routed_codecs.sort();
        assert_eq!(routed_codecs, [0, 0, 2, 2]);
        // The topic's compression.type wins over the append's.
        assert_eq!(codecs(&dir.path().join("forced-0")), [4]);
        // The producer's batches: lz4 (the retry wrote nothing), and the record it sent.
        assert_eq!(codecs(&dir.path().join("idempotent-0")), [3, 3]);
    }
}

#[cfg(not(feature = "gzip"))]
#[test]
fn a_codec_left_out_of_the_build_is_refused_on_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), LogConfig::default()).expect("open");
    let result = log.append_batch_compressed(&[Record::new(b"x")], Compression::Gzip);
    assert!(
        matches!(
            result,
            Err(Error::InvalidConfig {
                key: "compression.type",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(log.next_offset(), 0, "nothing written");
}
