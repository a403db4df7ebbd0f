//! Records route to partitions exactly as a Kafka producer routes them: keyed records by
//! murmur2 of the key (Kafka's test vectors), keyless ones to a sticky partition that moves on
//! after `batch.size` bytes, an explicit partition wins, and an application's own partitioner
//! is used when given. Batch appends route each record the same way.

use std::sync::Arc;

use topiclog::Store;
use topiclog::config::{StoreOptions, TopicConfig};
use topiclog::partitioner::{Partitioner, partition_for_key};
use topiclog::record::Record;

#[test]
fn keyed_records_land_where_a_java_producer_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::new(12)).unwrap();
    // kafka-log-format.md §10.1: partition of 12 for each of Kafka's murmur2 test keys.
    for (key, partition) in [
        ("21", 0),
        ("foobar", 6),
        ("a-little-bit-long-string", 8),
        ("a-little-bit-longer-string", 11),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 5),
        ("abc", 3),
    ] {
        let (p, _) = topic.append(Record::keyed(key.as_bytes(), b"v")).unwrap();
        assert_eq!(p, partition, "{key}");
    }
    let (p, _) = topic.append(Record::keyed(b"", b"v")).unwrap();
    assert_eq!(p, partition_for_key(b"", 12), "an empty key is hashed");
}

#[test]
fn keyless_records_stick_then_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::new(4)).unwrap();
    let value = [7u8; 1000];
    let partitions: Vec<u32> = (0..64)
        .map(|_| topic.append(Record::new(&value)).unwrap().0)
        .collect();
    // 16384 bytes per sticky run: 17 records of 1000 bytes, then a different partition.
    assert!(
        partitions[..17].iter().all(|&p| p == partitions[0]),
        "{partitions:?}"
    );
    assert_ne!(partitions[17], partitions[0], "{partitions:?}");
    let runs = partitions.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(runs, 3, "{partitions:?}");
}

#[test]
fn an_explicit_partition_wins_and_batches_route_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::new(12)).unwrap();
    assert_eq!(
        topic.append_to(7, Record::keyed(b"foobar", b"v")).unwrap(),
        0
    );
    assert_eq!(topic.partition(7).unwrap().next_offset(), 1);
    let records = [
        Record::keyed(b"foobar", b"1"),
        Record::keyed(b"abc", b"2"),
        Record::keyed(b"foobar", b"3"),
    ];
    let routed = topic.append_batch(&records).unwrap();
    assert_eq!(routed, [(6, 0), (3, 0), (6, 1)]);
    let values: Vec<Vec<u8>> = topic
        .partition(6)
        .unwrap()
        .read(0)
        .unwrap()
        .map(|r| r.unwrap().value().unwrap().to_vec())
        .collect();
    assert_eq!(values, [b"1".to_vec(), b"3".to_vec()]);
}

#[derive(Debug)]
struct Last;

impl Partitioner for Last {
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partitions: u32,
    ) -> u32 {
        partitions - 1
    }
}

#[derive(Debug)]
struct OutOfRange;

impl Partitioner for OutOfRange {
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partitions: u32,
    ) -> u32 {
        partitions
    }
}

#[test]
fn an_applications_partitioner_is_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::builder().partitioner(Arc::new(Last)).build();
    let store = Store::open_with(dir.path(), options).unwrap();
    let topic = store.create_topic("t", TopicConfig::new(5)).unwrap();
    assert_eq!(
        topic.append(Record::keyed(b"foobar", b"v")).unwrap(),
        (4, 0)
    );
    drop(store);
    let options = StoreOptions::builder()
        .partitioner(Arc::new(OutOfRange))
        .build();
    let store = Store::open_with(dir.path(), options).unwrap();
    let topic = store.topic("t").unwrap();
    assert!(matches!(
        topic.append(Record::new(b"v")),
        Err(topiclog::Error::UnknownPartition { partition: 5, .. })
    ));
}
