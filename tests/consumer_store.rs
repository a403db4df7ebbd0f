//! A store opened for consuming beside its writer (`Store::open_consumer`): its consumers join
//! the writer's groups, commit and read committed offsets, and it sees topics created after it
//! opened. The two stores live in one process here; `tests/consumer_processes.rs` runs them as
//! separate processes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
use topiclog::consumer::TopicPartition;
use topiclog::{Consumer, Error, Record, Store};

fn group_config(group: &str) -> ConsumerConfig {
    ConsumerConfig::builder()
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .session_timeout_ms(2_000)
        .heartbeat_interval_ms(100)
        .build()
        .expect("valid")
}

/// Polls `consumers` in turns until `wanted` distinct offsets arrived or 20 s passed.
fn drain(consumers: &mut [&mut Consumer], wanted: usize) -> BTreeMap<TopicPartition, Vec<i64>> {
    let mut seen: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.values().map(Vec::len).sum::<usize>() < wanted && Instant::now() < deadline {
        for consumer in consumers.iter_mut() {
            for r in consumer.poll(Duration::from_millis(20)).expect("polls") {
                seen.entry((r.topic().to_owned(), r.partition()))
                    .or_default()
                    .push(r.offset());
            }
            consumer.commit().expect("commits");
        }
    }
    seen
}

#[test]
fn a_consumer_store_shares_the_writers_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let topic = writer
        .create_topic("jobs", TopicConfig::new(4))
        .expect("creates");
    for p in 0..4 {
        for i in 0..5 {
            topic
                .append_to(p, Record::new(format!("{p}-{i}").as_bytes()))
                .expect("appends");
        }
    }
    let reader = Store::open_consumer(dir.path()).expect("opens beside the writer");
    assert!(reader.is_read_only());
    let mut a = writer.consumer(group_config("g")).expect("consumer");
    let mut b = reader.consumer(group_config("g")).expect("consumer");
    a.subscribe(&["jobs"]).expect("subscribes");
    b.subscribe(&["jobs"]).expect("subscribes");
    let seen = drain(&mut [&mut a, &mut b], 20);
    assert_eq!(seen.len(), 4, "every partition read: {seen:?}");
    for offsets in seen.values() {
        assert_eq!(
            offsets,
            &(0..5).collect::<Vec<_>>(),
            "each record once, in order"
        );
    }
    // Both members own a share, never the same partition.
    let (mine, theirs): (BTreeSet<_>, BTreeSet<_>) = (
        a.assignment().into_iter().collect(),
        b.assignment().into_iter().collect(),
    );
    assert!(mine.is_disjoint(&theirs), "{mine:?} / {theirs:?}");
    assert_eq!(mine.len() + theirs.len(), 4);
    assert!(
        !theirs.is_empty(),
        "the consumer store's member got partitions"
    );
    // Commits from either process land in the same file.
    let committed = writer.committed_offsets("g").expect("reads");
    assert_eq!(
        committed.values().copied().collect::<Vec<_>>(),
        [5, 5, 5, 5]
    );
    assert_eq!(reader.committed_offsets("g").expect("reads"), committed);
    assert_eq!(reader.groups().expect("lists"), ["g"]);
    // Reset is refused while the group has live members, whichever store asks.
    assert!(matches!(
        reader.reset_offsets("g", &[(("jobs".to_owned(), 0), 0)]),
        Err(Error::GroupNotEmpty { .. })
    ));
}

#[test]
fn a_consumer_store_sees_topics_created_after_it_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let reader = Store::open_consumer(dir.path()).expect("opens");
    assert!(matches!(reader.topic("late"), Err(Error::UnknownTopic(_))));
    writer
        .create_topic("late", TopicConfig::new(1))
        .expect("creates")
        .append_to(0, Record::new(b"hello"))
        .expect("appends");
    let topic = reader
        .topic("late")
        .expect("found after the writer made it");
    assert_eq!(topic.partition_count(), 1);
    writer.add_partitions("late", 3).expect("grows");
    assert!(reader.refresh().expect("refreshes"));
    assert_eq!(reader.topic("late").expect("topic").partition_count(), 3);
    assert!(!reader.refresh().expect("refreshes"), "nothing new");

    // A subscription to a topic that does not exist yet is served once it does.
    let mut consumer = reader.consumer(group_config("late-g")).expect("consumer");
    consumer.subscribe(&["later"]).expect("subscribes");
    assert!(
        consumer
            .poll(Duration::from_millis(50))
            .expect("polls")
            .is_empty()
    );
    writer
        .create_topic("later", TopicConfig::new(1))
        .expect("creates")
        .append_to(0, Record::new(b"x"))
        .expect("appends");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        got = consumer.poll(Duration::from_millis(50)).expect("polls");
    }
    assert_eq!(
        got.len(),
        1,
        "the new topic's partition was assigned and read"
    );
    writer.delete_topic("late").expect("deletes");
    assert!(reader.refresh().expect("refreshes"));
    assert!(matches!(reader.topic("late"), Err(Error::UnknownTopic(_))));
}

#[test]
fn a_hand_assigned_consumer_starts_at_its_groups_commits_on_any_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let topic = writer
        .create_topic("t", TopicConfig::new(1))
        .expect("creates");
    for i in 0..10 {
        topic.append_to(0, Record::new(&[i])).expect("appends");
    }
    writer
        .reset_offsets("g", &[(("t".to_owned(), 0), 7)])
        .expect("commits");
    for store in [
        Store::open_read_only(dir.path()).expect("opens"),
        Store::open_consumer(dir.path()).expect("opens"),
    ] {
        let mut consumer = store.consumer(group_config("g")).expect("consumer");
        consumer.assign(&[("t", 0)]).expect("assigns");
        assert_eq!(consumer.position("t", 0).expect("position"), 7);
        assert_eq!(consumer.committed("t", 0).expect("reads"), Some(7));
    }
}
