//! Consumers with hand-made assignments: `poll` across partitions (fair turns, the
//! `max.poll.records` limit), waiting and waking on appends, positions and seeks,
//! `auto.offset.reset`, many consumers beside many writers, and a read-only store's consumer
//! following another writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
use topiclog::record::Record;
use topiclog::{Error, Store};

fn earliest(max_poll_records: usize) -> ConsumerConfig {
    ConsumerConfig::builder()
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_records(max_poll_records)
        .build()
        .expect("config")
}

fn value(p: u32, i: usize) -> Vec<u8> {
    format!("p{p}-{i}").into_bytes()
}

#[test]
fn poll_reads_every_partition_in_turn_within_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(3)).expect("topic");
    // Partition 0 is busy, 1 has a few records, 2 none.
    let busy: Vec<Vec<u8>> = (0..1000).map(|i| value(0, i)).collect();
    let records: Vec<Record<'_>> = busy.iter().map(|v| Record::new(v)).collect();
    topic
        .partition(0)
        .expect("p0")
        .append_batch(&records)
        .expect("append");
    for i in 0..5 {
        topic
            .append_to(1, Record::new(&value(1, i)))
            .expect("append");
    }
    let mut consumer = store.consumer(earliest(100)).expect("consumer");
    consumer
        .assign(&[("t", 0), ("t", 1), ("t", 2)])
        .expect("assign");
    let first = consumer.poll(Duration::ZERO).expect("poll");
    assert_eq!(first.len(), 100, "the limit");
    let from_1: Vec<i64> = first
        .iter()
        .filter(|r| r.partition() == 1)
        .map(|r| r.offset())
        .collect();
    assert_eq!(
        from_1,
        [0, 1, 2, 3, 4],
        "the busy partition does not starve the other"
    );
    let mut seen: Vec<(u32, i64)> = first.iter().map(|r| (r.partition(), r.offset())).collect();
    loop {
        let batch = consumer.poll(Duration::ZERO).expect("poll");
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 100);
        seen.extend(batch.iter().map(|r| (r.partition(), r.offset())));
    }
    let of_0: Vec<i64> = seen.iter().filter(|s| s.0 == 0).map(|s| s.1).collect();
    assert_eq!(of_0, (0..1000).collect::<Vec<_>>(), "in order, each once");
    assert_eq!(consumer.position("t", 0).expect("position"), 1000);
    assert_eq!(consumer.position("t", 1).expect("position"), 5);
    assert_eq!(consumer.position("t", 2).expect("position"), 0);
    let values: Vec<&[u8]> = first
        .iter()
        .filter(|r| r.partition() == 1)
        .filter_map(|r| r.value())
        .collect();
    assert_eq!(values[0], b"p1-0");
}

#[test]
fn poll_waits_for_an_append_and_wakes_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(2)).expect("topic");
    let mut consumer = store.consumer(earliest(10)).expect("consumer");
    consumer.assign(&[("t", 0), ("t", 1)]).expect("assign");

    // Nothing there: the timeout passes, empty.
    let start = Instant::now();
    assert!(
        consumer
            .poll(Duration::from_millis(50))
            .expect("poll")
            .is_empty()
    );
    assert!(start.elapsed() >= Duration::from_millis(50));

    for round in 0..20 {
        let writer = {
            let topic = Arc::clone(&topic);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                topic
                    .append_to(round % 2, Record::new(b"wake"))
                    .expect("append")
            })
        };
        let start = Instant::now();
        let got = consumer.poll(Duration::from_secs(30)).expect("poll");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "woken by the append, not the timeout"
        );
        let offset = writer.join().expect("writer");
        assert_eq!(got.len(), 1, "round {round}");
        assert_eq!((got[0].partition(), got[0].offset()), (round % 2, offset));
    }
}

#[test]
fn positions_and_seeks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(1)).expect("topic");
    for i in 0..10 {
        topic
            .append_to(
                0,
                Record::new(&value(0, i)).with_timestamp(1_000 + i as i64 * 10),
            )
            .expect("append");
    }
    let mut consumer = store.consumer(ConsumerConfig::default()).expect("consumer");
    assert!(matches!(
        consumer.position("t", 0),
        Err(Error::PartitionNotAssigned { .. })
    ));
    assert!(matches!(
        consumer.assign(&[("nope", 0)]),
        Err(Error::UnknownTopic(_))
    ));
    assert!(matches!(
        consumer.assign(&[("t", 1)]),
        Err(Error::UnknownPartition { .. })
    ));
    consumer.assign(&[("t", 0)]).expect("assign");
    assert_eq!(consumer.assignment(), [("t".to_owned(), 0)]);
    // auto.offset.reset latest (Kafka's default): the end.
    assert_eq!(consumer.position("t", 0).expect("position"), 10);
    assert!(consumer.poll(Duration::ZERO).expect("poll").is_empty());

    consumer.seek("t", 0, 7).expect("seek");
    let got: Vec<i64> = consumer
        .poll(Duration::ZERO)
        .expect("poll")
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(got, [7, 8, 9]);
    consumer.seek_to_beginning(&[("t", 0)]).expect("seek");
    assert_eq!(consumer.position("t", 0).expect("position"), 0);
    consumer
        .seek_to_timestamp(&[("t", 0)], 1_045)
        .expect("seek");
    assert_eq!(consumer.position("t", 0).expect("position"), 5);
    consumer
        .seek_to_timestamp(&[("t", 0)], 9_999)
        .expect("seek");
    assert_eq!(
        consumer.position("t", 0).expect("position"),
        10,
        "none that late: the end"
    );
    consumer.seek_to_end(&[("t", 0)]).expect("seek");
    assert_eq!(consumer.position("t", 0).expect("position"), 10);
    assert!(matches!(
        consumer.seek("t", 0, -1),
        Err(Error::NegativeOffset { offset: -1 })
    ));
    assert!(matches!(
        consumer.seek_to_end(&[("t", 3)]),
        Err(Error::PartitionNotAssigned { .. })
    ));
    // A seek past the end is reset when read, by the policy (latest here).
    consumer.seek("t", 0, 50).expect("seek");
    assert!(consumer.poll(Duration::ZERO).expect("poll").is_empty());
    assert_eq!(consumer.position("t", 0).expect("position"), 10);
}

#[test]
fn auto_offset_reset_applies_when_the_position_leaves_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(1)).expect("topic");
    for i in 0..10 {
        topic
            .append_to(0, Record::new(&value(0, i)))
            .expect("append");
    }
    let none = ConsumerConfig::builder()
        .auto_offset_reset(OffsetReset::None)
        .build()
        .expect("config");
    let mut strict = store.consumer(none).expect("consumer");
    strict.assign(&[("t", 0)]).expect("assign");
    assert!(matches!(
        strict.poll(Duration::ZERO),
        Err(Error::NoOffsetForPartition { partition: 0, .. })
    ));
    strict.seek("t", 0, 2).expect("seek");
    assert_eq!(strict.poll(Duration::ZERO).expect("poll").len(), 8);

    let mut reader = store.consumer(earliest(3)).expect("consumer");
    reader.assign(&[("t", 0)]).expect("assign");
    assert_eq!(reader.poll(Duration::ZERO).expect("poll").len(), 3);
    // Records below 6 go: the position (3) is out of range, earliest restarts at 6.
    topic
        .partition(0)
        .expect("p")
        .delete_records(6)
        .expect("delete");
    let got: Vec<i64> = reader
        .poll(Duration::ZERO)
        .expect("poll")
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(got, [6, 7, 8]);
}

#[test]
fn many_consumers_beside_many_writers_see_every_record_once_in_order() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 300;
    const CONSUMERS: usize = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(2)).expect("topic");
    let total = WRITERS * PER_WRITER;
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        for _ in 0..CONSUMERS {
            let mut consumer = store.consumer(earliest(64)).expect("consumer");
            consumer.assign(&[("t", 0), ("t", 1)]).expect("assign");
            readers.push(s.spawn(move || {
                let mut seen = vec![Vec::new(), Vec::new()];
                let deadline = Instant::now() + Duration::from_secs(60);
                while seen[0].len() + seen[1].len() < total && Instant::now() < deadline {
                    for r in consumer.poll(Duration::from_secs(5)).expect("poll") {
                        seen[r.partition() as usize].push(r.offset());
                    }
                }
                seen
            }));
        }
        for w in 0..WRITERS {
            let topic = Arc::clone(&topic);
            s.spawn(move || {
                for i in 0..PER_WRITER {
                    topic
                        .append_to((w % 2) as u32, Record::new(&value(w as u32, i)))
                        .expect("append");
                }
            });
        }
        for reader in readers {
            let seen = reader.join().expect("reader");
            for (p, offsets) in seen.iter().enumerate() {
                let want: Vec<i64> = (0..(total / 2) as i64).collect();
                assert_eq!(offsets, &want, "partition {p}: every record once, in order");
            }
        }
    });
}

#[test]
fn a_read_only_stores_consumer_follows_another_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(1)).expect("topic");
    topic.append_to(0, Record::new(b"before")).expect("append");
    let follower = Store::open_read_only(dir.path()).expect("read-only");
    let mut consumer = follower.consumer(earliest(10)).expect("consumer");
    consumer.assign(&[("t", 0)]).expect("assign");
    assert_eq!(consumer.poll(Duration::ZERO).expect("poll").len(), 1);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        topic.append_to(0, Record::new(b"after")).expect("append");
        topic
    });
    let got = consumer.poll(Duration::from_secs(10)).expect("poll");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value(), Some(&b"after"[..]));
    drop(writer.join().expect("writer"));
}

#[test]
fn handles_can_move_between_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<topiclog::Consumer>();
    send::<topiclog::ConsumerRecord>();
    send_sync::<topiclog::Producer>();
    send_sync::<Store>();
}

/// CPU time of the calling thread, in clock ticks (Linux).
#[cfg(target_os = "linux")]
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[cfg(target_os = "linux")]
#[test]
fn a_waiting_poll_sleeps_instead_of_spinning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store.create_topic("t", TopicConfig::new(4)).expect("topic");
    let mut consumer = store.consumer(earliest(10)).expect("consumer");
    consumer
        .assign(&[("t", 0), ("t", 1), ("t", 2), ("t", 3)])
        .expect("assign");
    let before = thread_cpu_ticks();
    let start = Instant::now();
    assert!(
        consumer
            .poll(Duration::from_millis(500))
            .expect("poll")
            .is_empty()
    );
    assert!(start.elapsed() >= Duration::from_millis(500));
    // A busy loop would burn about 50 ticks (10 ms each) in 500 ms.
    let used = thread_cpu_ticks() - before;
    assert!(used <= 5, "poll used {used} ticks of CPU while waiting");
}
