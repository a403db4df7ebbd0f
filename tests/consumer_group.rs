//! Consumer groups through `Consumer::subscribe`: both assignors spread partitions over the
//! members; a member joining, leaving (close or drop) or not polling within
//! `max.poll.interval.ms` rebalances the group, and the members learn what was revoked and
//! assigned; a commit for a partition the member lost is rejected; committed offsets survive a
//! restart and win over `auto.offset.reset`, which applies only without one; groups are
//! independent; a member blocked in `poll` wakes for a rebalance.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::ManualClock;
use topiclog::config::{
    Assignor, ConsumerConfig, LogConfig, OffsetReset, StoreOptions, TopicConfig,
};
use topiclog::consumer::{RebalanceEvent, TopicPartition};
use topiclog::record::Record;
use topiclog::{Consumer, Error, Store};

fn config(group: &str, member: &str) -> topiclog::config::ConsumerConfigBuilder {
    ConsumerConfig::builder()
        .group_id(group)
        .member_id(member)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
}

fn member(store: &Store, group: &str, name: &str, topics: &[&str]) -> Consumer {
    let mut c = store
        .consumer(config(group, name).build().expect("config"))
        .expect("consumer");
    c.subscribe(topics).expect("subscribe");
    c
}

/// Polls every consumer until the group is quiet (two rounds in a row with nothing revoked or
/// assigned: a release shows at its new owner's next poll). Returns how many records each
/// consumer read meanwhile.
fn settle(consumers: &mut [&mut Consumer]) -> Vec<usize> {
    let mut read = vec![0; consumers.len()];
    let mut quiet = 0;
    for _ in 0..40 {
        let mut changed = false;
        for (i, c) in consumers.iter_mut().enumerate() {
            read[i] += c.poll(Duration::ZERO).expect("poll").len();
            changed |= !c.rebalance_events().is_empty();
        }
        quiet = if changed { 0 } else { quiet + 1 };
        if quiet == 2 {
            return read;
        }
    }
    panic!("the group did not settle");
}

fn owned(c: &Consumer) -> BTreeSet<TopicPartition> {
    c.assignment().into_iter().collect()
}

fn store_with(topic: &str, partitions: u32, records_each: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let t = store
        .create_topic(topic, TopicConfig::new(partitions))
        .expect("topic");
    for p in 0..partitions {
        for i in 0..records_each {
            t.append_to(p, Record::new(format!("{p}-{i}").as_bytes()))
                .expect("append");
        }
    }
    (dir, store)
}

#[test]
fn range_and_round_robin_spread_partitions_without_overlap() {
    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        let (_dir, store) = store_with("t", 6, 0);
        store.create_topic("u", TopicConfig::new(3)).expect("topic");
        let make = |name: &str| {
            let mut c = store
                .consumer(
                    config("g", name)
                        .assignor(assignor)
                        .build()
                        .expect("config"),
                )
                .expect("consumer");
            c.subscribe(&["t", "u"]).expect("subscribe");
            c
        };
        let (mut a, mut b, mut c) = (make("a"), make("b"), make("c"));
        settle(&mut [&mut a, &mut b, &mut c]);
        let sets = [owned(&a), owned(&b), owned(&c)];
        let all: BTreeSet<TopicPartition> = sets.iter().flatten().cloned().collect();
        assert_eq!(all.len(), 9, "{assignor:?}: every partition owned");
        assert_eq!(
            sets.iter().map(BTreeSet::len).sum::<usize>(),
            9,
            "{assignor:?}: no partition twice"
        );
        if assignor == Assignor::Range {
            // Kafka's range: per topic, consecutive runs in member order.
            let t = |ps: &[u32]| ps.iter().map(|&p| ("t".to_owned(), p)).collect::<Vec<_>>();
            let u = |p: u32| ("u".to_owned(), p);
            let want_a: BTreeSet<TopicPartition> = t(&[0, 1]).into_iter().chain([u(0)]).collect();
            assert_eq!(sets[0], want_a);
        } else {
            // Round robin over t-0..t-5, u-0..u-2: a gets t-0, t-3, u-0.
            let want_a: BTreeSet<TopicPartition> = [
                ("t".to_owned(), 0),
                ("t".to_owned(), 3),
                ("u".to_owned(), 0),
            ]
            .into_iter()
            .collect();
            assert_eq!(sets[0], want_a);
        }
    }
}

#[test]
fn join_and_leave_rebalance_and_members_learn_what_moved() {
    let (_dir, store) = store_with("t", 4, 3);
    let mut a = member(&store, "g", "a", &["t"]);
    let read = settle(&mut [&mut a]);
    assert_eq!(owned(&a).len(), 4);
    assert_eq!(read, [12], "everything read");
    a.commit().expect("commit");

    let mut b = member(&store, "g", "b", &["t"]);
    // a's next poll sees the revocation and returns at once, owning the partitions still.
    let returned = a.poll(Duration::from_secs(5)).expect("poll");
    assert!(returned.is_empty());
    let events = a.rebalance_events();
    let revoked: Vec<TopicPartition> = match events.as_slice() {
        [RebalanceEvent::Revoked(r)] => r.clone(),
        other => panic!("expected one revocation, got {other:?}"),
    };
    assert_eq!(revoked.len(), 2, "range gives b half");
    a.commit().expect("a may still commit what it is giving up");
    settle(&mut [&mut a, &mut b]);
    assert_eq!(owned(&a).len(), 2);
    assert_eq!(owned(&b), revoked.iter().cloned().collect());
    // b starts at the committed offsets: nothing to read.
    assert!(b.poll(Duration::ZERO).expect("poll").is_empty());

    // b leaves (close): a gets everything back.
    b.close().expect("close");
    settle(&mut [&mut a]);
    assert_eq!(owned(&a).len(), 4);
    // Dropping a member leaves too.
    let mut c = member(&store, "g", "c", &["t"]);
    settle(&mut [&mut a, &mut c]);
    assert_eq!(owned(&c).len(), 2);
    drop(c);
    settle(&mut [&mut a]);
    assert_eq!(owned(&a).len(), 4);
}

#[test]
fn a_commit_for_a_lost_partition_is_rejected() {
    let (_dir, store) = store_with("t", 2, 5);
    let mut a = member(&store, "g", "a", &["t"]);
    assert_eq!(settle(&mut [&mut a]), [10]);
    let mut b = member(&store, "g", "b", &["t"]);
    settle(&mut [&mut a, &mut b]);
    let lost: TopicPartition = owned(&b).into_iter().next().expect("b owns one");
    let stale: BTreeMap<TopicPartition, i64> = [(lost.clone(), 5)].into_iter().collect();
    match a.commit_offsets(&stale) {
        Err(Error::CommitRejected {
            group,
            member,
            topic,
            partition,
        }) => {
            assert_eq!((group.as_str(), member.as_str()), ("g", "a"));
            assert_eq!((topic, partition), lost);
        }
        other => panic!("expected CommitRejected, got {other:?}"),
    }
    let committed = b.committed(&lost.0, lost.1).expect("committed");
    assert_eq!(committed, None, "nothing was committed");
}

#[test]
fn a_member_that_stops_polling_is_removed_and_rejoins() {
    let clock = ManualClock::new(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogConfig::builder()
        .clock(clock.clone())
        .build()
        .expect("log");
    let options = StoreOptions::builder().log_config(log).build();
    let store = Store::open_with(dir.path(), options).expect("store");
    store.create_topic("t", TopicConfig::new(2)).expect("topic");
    let slow_config = config("g", "slow")
        .max_poll_interval_ms(60_000)
        .build()
        .expect("config");
    let mut slow = store.consumer(slow_config).expect("consumer");
    slow.subscribe(&["t"]).expect("subscribe");
    let mut quick = member(&store, "g", "quick", &["t"]);
    settle(&mut [&mut slow, &mut quick]);
    assert_eq!(owned(&slow).len(), 1);
    // The slow member does not poll for longer than its interval; the other one does.
    clock.set(1_000_000 + 61_000);
    settle(&mut [&mut quick]);
    assert_eq!(
        owned(&quick).len(),
        2,
        "the expired member's partition moved"
    );
    assert!(matches!(
        slow.commit(),
        Err(Error::UnknownMember { .. }) | Err(Error::CommitRejected { .. })
    ));
    // Its next poll learns it lost its partitions, and it joins again.
    slow.poll(Duration::ZERO).expect("poll");
    let events = slow.rebalance_events();
    assert!(
        matches!(events.first(), Some(RebalanceEvent::Lost(l)) if l.len() == 1),
        "{events:?}"
    );
    settle(&mut [&mut slow, &mut quick]);
    assert_eq!(owned(&slow).len() + owned(&quick).len(), 2);
    assert_eq!(owned(&slow).len(), 1, "rebalanced again");
}

#[test]
fn committed_offsets_survive_a_restart_and_win_over_the_reset_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("store");
        let t = store.create_topic("t", TopicConfig::new(1)).expect("topic");
        for i in 0..10 {
            t.append_to(0, Record::new(format!("{i}").as_bytes()))
                .expect("append");
        }
        let mut c = member(&store, "g", "a", &["t"]);
        assert_eq!(settle(&mut [&mut c]), [10]);
        // Processed the first four only: commit those.
        c.commit_offsets(&[(("t".to_owned(), 0), 4)].into_iter().collect())
            .expect("commit");
        c.close().expect("close");
        store.close().expect("close");
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.groups().expect("groups"), ["g"]);
    assert_eq!(
        store.committed_offsets("g").expect("offsets"),
        [(("t".to_owned(), 0), 4)].into_iter().collect()
    );
    // latest would start at 10; the committed offset wins.
    let latest = ConsumerConfig::builder()
        .group_id("g")
        .auto_offset_reset(OffsetReset::Latest)
        .build()
        .expect("config");
    let mut c = store.consumer(latest).expect("consumer");
    c.subscribe(&["t"]).expect("subscribe");
    let first: Vec<i64> = c
        .poll(Duration::from_secs(1))
        .expect("poll")
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(first.first(), Some(&4));
    drop(c);
    // Another group has no offsets: each policy applies.
    for (reset, want) in [
        (OffsetReset::Earliest, Some(0)),
        (OffsetReset::Latest, None),
    ] {
        let config = ConsumerConfig::builder()
            .group_id(format!("fresh-{}", reset.name()))
            .auto_offset_reset(reset)
            .build()
            .expect("config");
        let mut c = store.consumer(config).expect("consumer");
        c.subscribe(&["t"]).expect("subscribe");
        let got = c.poll(Duration::from_millis(200)).expect("poll");
        assert_eq!(got.first().map(|r| r.offset()), want, "{reset:?}");
    }
    let none = ConsumerConfig::builder()
        .group_id("fresh-none")
        .auto_offset_reset(OffsetReset::None)
        .build()
        .expect("config");
    let mut c = store.consumer(none).expect("consumer");
    c.subscribe(&["t"]).expect("subscribe");
    let mut result = Ok(Vec::new());
    for _ in 0..5 {
        result = c.poll(Duration::from_millis(50));
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(Error::NoOffsetForPartition { .. })),
        "{result:?}"
    );
}

#[test]
fn groups_are_independent_and_auto_commit_commits_on_close() {
    let (_dir, store) = store_with("t", 1, 6);
    let auto = |group: &str| {
        let config = ConsumerConfig::builder()
            .group_id(group)
            .auto_offset_reset(OffsetReset::Earliest)
            .auto_commit_interval_ms(1)
            .build()
            .expect("config");
        let mut c = store.consumer(config).expect("consumer");
        c.subscribe(&["t"]).expect("subscribe");
        c
    };
    let mut one = auto("one");
    let mut two = auto("two");
    assert_eq!(
        settle(&mut [&mut one, &mut two]),
        [6, 6],
        "each group reads everything"
    );
    one.close().expect("close");
    two.close().expect("close");
    for group in ["one", "two"] {
        assert_eq!(
            store.committed_offsets(group).expect("offsets"),
            [(("t".to_owned(), 0), 6)].into_iter().collect(),
            "{group}"
        );
    }
}

#[test]
fn a_member_blocked_in_poll_wakes_for_a_rebalance() {
    let (_dir, store) = store_with("t", 2, 0);
    let mut a = member(&store, "g", "a", &["t"]);
    settle(&mut [&mut a]);
    std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let start = Instant::now();
            let got = a.poll(Duration::from_secs(30)).expect("poll");
            (start.elapsed(), got.len(), a.rebalance_events())
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut b = member(&store, "g", "b", &["t"]);
        let (waited, records, events) = waiter.join().expect("waiter");
        assert!(waited < Duration::from_secs(10), "woken, not timed out");
        assert_eq!(records, 0);
        assert!(
            matches!(events.as_slice(), [RebalanceEvent::Revoked(_)]),
            "{events:?}"
        );
        b.poll(Duration::ZERO).expect("poll");
    });
}

#[test]
fn subscriptions_need_a_group_and_a_writable_store() {
    let (dir, store) = store_with("t", 1, 0);
    let mut plain = store.consumer(ConsumerConfig::default()).expect("consumer");
    assert!(matches!(
        plain.subscribe(&["t"]),
        Err(Error::NoGroupId { .. })
    ));
    assert!(matches!(plain.commit(), Err(Error::NoGroupId { .. })));
    let mut a = member(&store, "g", "a", &["t"]);
    assert!(matches!(a.assign(&[("t", 0)]), Err(Error::Subscribed)));
    let mut dup = store
        .consumer(config("g", "a").build().expect("config"))
        .expect("consumer");
    assert!(matches!(
        dup.subscribe(&["t"]),
        Err(Error::MemberExists { .. })
    ));
    let read_only = Store::open_read_only(dir.path()).expect("read-only");
    let mut ro = read_only
        .consumer(config("g", "r").build().expect("config"))
        .expect("consumer");
    assert!(matches!(ro.subscribe(&["t"]), Err(Error::ReadOnly)));
    a.poll(Duration::ZERO).expect("poll");
}
