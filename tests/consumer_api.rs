//! The consumer calls Kafka users reach for: pause and resume, wakeup, beginning and end
//! offsets, lag, committed offsets of a set of partitions.

use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, LogConfig, OffsetReset, TopicConfig};
use topiclog::{Error, Record, Store};

fn store_with(records: &[(u32, usize)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("opens");
    let topic = store
        .create_topic("t", TopicConfig::new(2))
        .expect("creates");
    for &(p, n) in records {
        for i in 0..n {
            topic
                .append_to(p, Record::new(format!("{p}-{i}").as_bytes()))
                .expect("appends");
        }
    }
    (dir, store)
}

fn config() -> ConsumerConfig {
    ConsumerConfig::builder()
        .group_id("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .build()
        .expect("valid")
}

#[test]
fn paused_partitions_return_nothing_until_resumed() {
    let (_dir, store) = store_with(&[(0, 3), (1, 3)]);
    let mut consumer = store.consumer(config()).expect("consumer");
    consumer.assign(&[("t", 0), ("t", 1)]).expect("assigns");
    consumer.pause(&[("t", 1)]).expect("pauses");
    assert_eq!(consumer.paused(), [("t".to_owned(), 1)]);
    let got = consumer.poll(Duration::from_millis(50)).expect("polls");
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.partition() == 0),
        "nothing of the paused one"
    );
    assert!(
        consumer
            .poll(Duration::from_millis(20))
            .expect("polls")
            .is_empty()
    );
    assert_eq!(
        consumer.position("t", 1).expect("position"),
        0,
        "position kept"
    );
    consumer.resume(&[("t", 1)]).expect("resumes");
    assert!(consumer.paused().is_empty());
    let got = consumer.poll(Duration::from_millis(50)).expect("polls");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.partition() == 1));
    assert!(matches!(
        consumer.pause(&[("t", 9)]),
        Err(Error::PartitionNotAssigned { .. })
    ));
}

#[test]
fn wakeup_interrupts_a_blocking_poll_from_another_thread() {
    let (_dir, store) = store_with(&[]);
    let mut consumer = store.consumer(config()).expect("consumer");
    consumer.assign(&[("t", 0)]).expect("assigns");
    let waker = consumer.waker();
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wakeup();
    });
    assert!(matches!(
        consumer.poll(Duration::from_secs(60)),
        Err(Error::Wakeup)
    ));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "returned at once"
    );
    thread.join().expect("joins");
    // One wakeup ends one poll.
    assert!(
        consumer
            .poll(Duration::from_millis(10))
            .expect("polls")
            .is_empty()
    );
    // A wakeup before a poll ends the next one.
    consumer.waker().wakeup();
    assert!(matches!(
        consumer.poll(Duration::from_secs(60)),
        Err(Error::Wakeup)
    ));
}

#[test]
fn offsets_lag_and_committed_offsets_of_a_set() {
    let (_dir, store) = store_with(&[(0, 10), (1, 4)]);
    let partition = store.topic("t").unwrap().partition(0).unwrap();
    partition.delete_records(3).expect("deletes");
    let mut consumer = store.consumer(config()).expect("consumer");
    let both = [("t", 0), ("t", 1)];
    let key = |p: u32| ("t".to_owned(), p);
    let beginning = consumer.beginning_offsets(&both).expect("offsets");
    assert_eq!((beginning[&key(0)], beginning[&key(1)]), (3, 0));
    let end = consumer.end_offsets(&both).expect("offsets");
    assert_eq!((end[&key(0)], end[&key(1)]), (10, 4));
    assert!(matches!(
        consumer.end_offsets(&[("nope", 0)]),
        Err(Error::UnknownTopic(_))
    ));

    consumer.assign(&both).expect("assigns");
    assert_eq!(
        consumer.current_lag("t", 0).expect("lag"),
        None,
        "no position yet"
    );
    let got = consumer.poll(Duration::from_millis(50)).expect("polls");
    assert!(!got.is_empty());
    consumer.seek("t", 0, 6).expect("seeks");
    assert_eq!(consumer.current_lag("t", 0).expect("lag"), Some(4));
    consumer.commit().expect("commits");
    let committed = consumer.committed_offsets(&both).expect("committed");
    assert_eq!(committed[&key(0)], 6);
    assert_eq!(consumer.committed_offsets(&[]).expect("committed").len(), 0);

    let no_group = store.consumer(ConsumerConfig::default()).expect("consumer");
    assert!(matches!(
        no_group.committed_offsets(&both),
        Err(Error::NoGroupId { .. })
    ));
}

#[test]
fn end_offsets_of_a_follower_are_what_it_may_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let lazy = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("valid");
    let topic = writer
        .create_topic("t", TopicConfig::new(1).with_log(lazy))
        .expect("creates");
    let follower = Store::open_read_only(dir.path()).expect("follows");
    let consumer = follower.consumer(config()).expect("consumer");
    std::thread::sleep(Duration::from_millis(120)); // the writer's probe finds the follower
    topic.append_to(0, Record::new(b"x")).expect("appends");
    assert_eq!(
        consumer.end_offsets(&[("t", 0)]).expect("offsets")[&("t".to_owned(), 0)],
        1,
        "read again from the files"
    );
}
