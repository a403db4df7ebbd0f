//! A read-only store beside a writing store reads what the writer has written and takes no
//! lock; background retention runs on its interval and its thread stops within a second when
//! the store is closed or dropped.

mod common;

use std::time::{Duration, Instant};

use common::ManualClock;
use topiclog::config::{LogConfig, StoreOptions, TopicConfig};
use topiclog::record::Record;
use topiclog::{Error, Store};

#[test]
fn a_read_only_store_reads_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::new(2)).unwrap();
    for i in 0..100u32 {
        topic
            .append_to(i % 2, Record::new(format!("{i}").as_bytes()))
            .unwrap();
    }
    for p in topic.partitions() {
        p.flush().unwrap();
    }
    let reader = Store::open_read_only(dir.path()).unwrap();
    let t = reader.topic("t").unwrap();
    assert_eq!(t.partition(0).unwrap().read(0).unwrap().count(), 50);
    assert_eq!(t.partition(1).unwrap().next_offset(), 50);
    assert!(matches!(
        reader.create_topic("u", TopicConfig::new(1)),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(t.append(Record::new(b"x")), Err(Error::ReadOnly)));
    assert!(matches!(reader.enforce_retention(), Err(Error::ReadOnly)));
}

#[test]
fn background_retention_runs_and_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = LogConfig::builder().clock(clock.clone()).build().unwrap();
    let options = StoreOptions::builder()
        .log_config(log)
        .retention_check_interval_ms(20)
        .build();
    let store = Store::open_with(dir.path(), options).unwrap();
    let config = LogConfig::builder()
        .segment_bytes(200)
        .retention_ms(1_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    let topic = store
        .create_topic("t", TopicConfig::new(1).with_log(config))
        .unwrap();
    for i in 0..20 {
        topic
            .append(Record::new(&[1u8; 100]).with_timestamp(i))
            .unwrap();
    }
    let partition = topic.partition(0).unwrap();
    assert_eq!(partition.log_start_offset(), 0);
    clock.set(1_000_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.log_start_offset() == 0 {
        assert!(Instant::now() < deadline, "background retention never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(partition.log_start_offset(), 20, "everything expired");
    let started = Instant::now();
    drop(partition);
    drop(topic);
    drop(store);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the thread stops within a second"
    );

    // A long interval still stops at once on close.
    let options = StoreOptions::builder().background_retention(true).build();
    let store = Store::open_with(dir.path(), options).unwrap();
    let started = Instant::now();
    store.close().unwrap();
    drop(store);
    assert!(started.elapsed() < Duration::from_secs(1));
}
