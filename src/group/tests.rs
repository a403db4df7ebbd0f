//! Coordinator tests: rebalances on join, leave and `max.poll.interval.ms` expiry (driven by a
//! manual clock), the release-before-handover rule, commits (rejected once a partition is
//! lost, durable across a reopen), offset resets, callbacks run without locks, threads, and a
//! proptest of random operation sequences over three groups checked against a model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::assignor::{Assignment, Subscriptions};
use super::coordinator::{JoinRequest, PartitionsFn, WakeFn};
use super::offsets::{GROUPS_FILE, file_name};
use super::{Assignor, Coordinator, MemberSync, TopicPartition};
use crate::config::Clock;
use crate::disk::OsDisk;
use crate::error::{Corruption, Error};

/// A clock the test sets.
#[derive(Debug, Default)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A default `max.poll.interval.ms` (Kafka's: 5 minutes).
const INTERVAL_MS: i64 = 300_000;

/// A coordinator over a temporary store directory, a manual clock and a table of topics.
struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    topics: Arc<Mutex<BTreeMap<String, u32>>>,
    coordinator: Coordinator,
}

impl Fixture {
    fn new(topics: &[(&str, u32)]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::default());
        let mut coordinator =
            Coordinator::open(Arc::new(OsDisk), dir.path(), clock.clone()).expect("opens");
        coordinator.heartbeats = false;
        Fixture {
            dir,
            clock,
            topics: Arc::new(Mutex::new(
                topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            )),
            coordinator,
        }
    }

    fn partitions(&self) -> PartitionsFn {
        let topics = Arc::clone(&self.topics);
        Arc::new(move |topic: &str| topics.lock().get(topic).copied())
    }

    fn set_partitions(&self, topic: &str, count: u32) {
        self.topics.lock().insert(topic.to_owned(), count);
    }

    /// Joins and returns the member's wake count.
    fn join(&self, group: &str, member: &str, topics: &[&str], assignor: Assignor) -> Wakes {
        self.join_with(group, member, topics, assignor, INTERVAL_MS)
            .expect("joins")
    }

    fn join_with(
        &self,
        group: &str,
        member: &str,
        topics: &[&str],
        assignor: Assignor,
        interval_ms: i64,
    ) -> Result<Wakes, Error> {
        let wakes = Wakes::default();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        self.coordinator.join(
            group,
            request(
                member,
                &topics,
                assignor,
                interval_ms,
                self.partitions(),
                wakes.wake_fn(),
            ),
        )?;
        Ok(wakes)
    }

    fn sync(&self, group: &str, member: &str) -> MemberSync {
        self.coordinator.sync(group, member).expect("syncs")
    }

    fn reopen(&mut self) {
        self.coordinator = Coordinator::open(Arc::new(OsDisk), self.dir.path(), self.clock.clone())
            .expect("reopens");
        self.coordinator.heartbeats = false;
    }
}

/// Counts a member's wakes.
#[derive(Debug, Clone, Default)]
struct Wakes(Arc<AtomicUsize>);

impl Wakes {
    fn wake_fn(&self) -> WakeFn {
        let count = Arc::clone(&self.0);
        Arc::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        })
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A join request with `max.poll.interval.ms` `interval_ms` and session timers too long to
/// matter (the heartbeat thread runs on real time; these tests move a manual clock).
fn request(
    member: &str,
    topics: &[String],
    assignor: Assignor,
    interval_ms: i64,
    partitions: PartitionsFn,
    wake: WakeFn,
) -> JoinRequest {
    JoinRequest {
        member: member.to_owned(),
        topics: topics.to_vec(),
        assignor,
        max_poll_interval_ms: interval_ms,
        session_timeout_ms: i64::MAX / 4,
        heartbeat_interval_ms: 3_600_000,
        client_id: String::new(),
        partitions,
        wake,
    }
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    (topic.to_owned(), partition)
}

fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
    list.iter().map(|(t, p)| tp(t, *p)).collect()
}

#[test]
fn coordinator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Coordinator>();
}

#[test]
fn a_lone_member_gets_every_partition_of_its_topics() {
    let f = Fixture::new(&[("t", 3), ("u", 2), ("v", 1)]);
    let wakes = f.join("g", "a", &["t", "u", "missing"], Assignor::Range);
    assert_eq!(wakes.count(), 1, "partitions wait for it");
    let sync = f.sync("g", "a");
    let all = tps(&[("t", 0), ("t", 1), ("t", 2), ("u", 0), ("u", 1)]);
    assert_eq!(
        sync,
        MemberSync {
            generation: 1,
            revoke: vec![],
            assign: all.clone(),
            owned: all.clone(),
        }
    );
    let again = f.sync("g", "a");
    assert_eq!((again.assign, again.owned), (vec![], all));
    assert_eq!(f.coordinator.live_members("g").expect("reads"), ["a"]);
    assert_eq!(f.coordinator.groups().expect("lists"), ["g"]);
}

/// Range: b joins while a owns all four partitions; a is told to revoke two, keeps them (and
/// may commit them) until it releases them, and only then does b get them.
#[test]
fn a_join_moves_partitions_only_after_the_old_owner_releases_them() {
    let f = Fixture::new(&[("t", 4)]);
    let a_wakes = f.join("g", "a", &["t"], Assignor::Range);
    f.sync("g", "a");
    let b_wakes = f.join("g", "b", &["t"], Assignor::Range);
    assert_eq!(a_wakes.count(), 2, "a has partitions to give up");
    assert_eq!(b_wakes.count(), 0, "nothing free for b yet");

    let b = f.sync("g", "b");
    assert_eq!((b.generation, b.assign, b.owned), (2, vec![], vec![]));
    let a = f.sync("g", "a");
    assert_eq!(a.revoke, tps(&[("t", 2), ("t", 3)]));
    assert_eq!(a.owned.len(), 4, "a still owns what it must give up");
    f.coordinator
        .commit("g", "a", &[(tp("t", 3), 30), (tp("t", 0), 5)])
        .expect("a may commit a partition it is giving up");
    assert!(matches!(
        f.coordinator.commit("g", "b", &[(tp("t", 2), 1)]),
        Err(Error::CommitRejected { ref member, partition: 2, .. }) if member == "b"
    ));
    assert_eq!(f.sync("g", "b").assign, vec![], "not before a releases");

    f.coordinator.release("g", "a", &tps(&[("t", 2), ("t", 3)]));
    assert_eq!(b_wakes.count(), 1, "b is woken for what a released");
    let b = f.sync("g", "b");
    assert_eq!(b.assign, tps(&[("t", 2), ("t", 3)]));
    assert_eq!(
        f.coordinator.committed("g", &tp("t", 3)).expect("reads"),
        Some(30)
    );
    let a = f.sync("g", "a");
    assert_eq!((a.revoke, a.owned), (vec![], tps(&[("t", 0), ("t", 1)])));
}

#[test]
fn a_commit_of_a_lost_partition_is_rejected_and_writes_nothing() {
    let f = Fixture::new(&[("t", 2)]);
    f.join("g", "a", &["t"], Assignor::RoundRobin);
    f.sync("g", "a");
    f.coordinator
        .commit("g", "a", &[(tp("t", 0), 10), (tp("t", 1), 20)])
        .expect("commits");
    f.join("g", "b", &["t"], Assignor::RoundRobin);
    let a = f.sync("g", "a");
    assert_eq!(a.revoke, tps(&[("t", 1)]));
    f.coordinator.release("g", "a", &a.revoke);
    assert_eq!(f.sync("g", "b").assign, tps(&[("t", 1)]));

    let file = f.dir.path().join(file_name("g"));
    let before = std::fs::read(&file).expect("file");
    // One owned and one lost partition: all of the commit is rejected.
    match f
        .coordinator
        .commit("g", "a", &[(tp("t", 0), 11), (tp("t", 1), 21)])
    {
        Err(Error::CommitRejected {
            group,
            member,
            topic,
            partition,
        }) => assert_eq!((&*group, &*member, &*topic, partition), ("g", "a", "t", 1)),
        other => panic!("expected CommitRejected, got {other:?}"),
    }
    assert_eq!(std::fs::read(&file).expect("file"), before);
    assert_eq!(
        f.coordinator.committed("g", &tp("t", 0)).expect("reads"),
        Some(10)
    );
    assert_eq!(
        f.coordinator.committed("g", &tp("t", 1)).expect("reads"),
        Some(20)
    );
    // Partitions of other topics, and of no topic at all, are not owned either.
    assert!(matches!(
        f.coordinator.commit("g", "a", &[(tp("zzz", 0), 1)]),
        Err(Error::CommitRejected { .. })
    ));
    assert!(matches!(
        f.coordinator.commit("g", "a", &[(tp("t", 0), -1)]),
        Err(Error::NegativeOffset { offset: -1 })
    ));
    f.coordinator
        .commit("g", "b", &[(tp("t", 1), 21)])
        .expect("the new owner commits");
    assert_eq!(
        f.coordinator.committed_offsets("g").expect("reads"),
        BTreeMap::from([(tp("t", 0), 10), (tp("t", 1), 21)])
    );
}

#[test]
fn a_leaving_member_frees_its_partitions_at_once() {
    let f = Fixture::new(&[("t", 3)]);
    let a_wakes = f.join("g", "a", &["t"], Assignor::RoundRobin);
    f.join("g", "b", &["t"], Assignor::RoundRobin);
    assert_eq!(f.sync("g", "a").owned, tps(&[("t", 0), ("t", 2)]));
    assert_eq!(f.sync("g", "b").owned, tps(&[("t", 1)]));
    let before = a_wakes.count();
    f.coordinator.leave("g", "b");
    assert_eq!(a_wakes.count(), before + 1, "a is woken for b's partition");
    let a = f.sync("g", "a");
    assert_eq!((a.generation, a.assign), (3, tps(&[("t", 1)])));
    assert!(matches!(
        f.coordinator.sync("g", "b"),
        Err(Error::UnknownMember { ref member, .. }) if member == "b"
    ));
    assert!(matches!(
        f.coordinator.commit("g", "b", &[(tp("t", 1), 1)]),
        Err(Error::UnknownMember { .. })
    ));
    f.coordinator.leave("g", "b");
    f.coordinator.leave("nope", "b");
    f.coordinator.release("nope", "b", &[]);
    assert!(matches!(
        f.coordinator.sync("nope", "b"),
        Err(Error::UnknownMember { .. })
    ));
    assert_eq!(f.coordinator.live_members("g").expect("reads"), ["a"]);
}

/// Kafka's `max.poll.interval.ms`: a member that does not sync for its interval is removed by
/// the next call touching the group, and its partitions go to the others.
#[test]
fn a_member_that_stops_polling_is_removed_after_max_poll_interval() {
    let f = Fixture::new(&[("t", 2)]);
    f.join_with("g", "a", &["t"], Assignor::Range, 1_000)
        .expect("joins");
    let b_wakes = f
        .join_with("g", "b", &["t"], Assignor::Range, 5_000)
        .expect("joins");
    assert_eq!(f.sync("g", "a").owned, tps(&[("t", 0)]));
    assert_eq!(f.sync("g", "b").owned, tps(&[("t", 1)]));

    f.clock.set(999);
    f.sync("g", "b");
    f.sync("g", "a");
    f.clock.set(1_998);
    assert_eq!(f.coordinator.live_members("g").expect("reads"), ["a", "b"]);
    let woken = b_wakes.count();
    f.clock.set(1_999);
    assert_eq!(
        f.coordinator.live_members("g").expect("reads"),
        ["b"],
        "a's interval ran out"
    );
    assert_eq!(b_wakes.count(), woken + 1);
    assert_eq!(f.sync("g", "b").assign, tps(&[("t", 0)]));
    assert!(matches!(
        f.coordinator.sync("g", "a"),
        Err(Error::UnknownMember { .. })
    ));
    assert!(matches!(
        f.coordinator.commit("g", "a", &[(tp("t", 0), 1)]),
        Err(Error::UnknownMember { .. })
    ));
    // An expired member rejoins as a new member.
    f.join_with("g", "a", &["t"], Assignor::Range, 1_000)
        .expect("rejoins");
    let b = f.sync("g", "b");
    assert_eq!(b.revoke, tps(&[("t", 0)]));
}

/// A member whose interval ran out before its own sync learns it at that sync.
#[test]
fn an_expired_member_learns_it_at_its_next_sync() {
    let f = Fixture::new(&[("t", 1)]);
    f.join_with("g", "a", &["t"], Assignor::CooperativeSticky, 100)
        .expect("joins");
    f.sync("g", "a");
    f.clock.advance(100);
    assert!(matches!(
        f.coordinator.sync("g", "a"),
        Err(Error::UnknownMember { .. })
    ));
    assert!(f.coordinator.live_members("g").expect("reads").is_empty());
    assert!(
        f.coordinator.groups().expect("lists").is_empty(),
        "no members, no offsets"
    );
}

#[test]
fn commits_survive_reopening_the_coordinator() {
    let mut f = Fixture::new(&[("t", 2), ("u", 1)]);
    f.join("g", "a", &["t", "u"], Assignor::Range);
    f.sync("g", "a");
    f.join("other group", "a", &["u"], Assignor::Range);
    f.sync("other group", "a");
    f.coordinator
        .commit("g", "a", &[(tp("t", 0), 7), (tp("u", 0), 3)])
        .expect("commits");
    f.coordinator
        .commit("g", "a", &[(tp("t", 1), 9), (tp("t", 0), 8)])
        .expect("commits");
    f.coordinator
        .commit("other group", "a", &[(tp("u", 0), 100)])
        .expect("commits");
    let text = std::fs::read_to_string(f.dir.path().join(file_name("g"))).expect("file");
    assert_eq!(
        text,
        crate::sealed::seal("1\ng\n3\nt 0 8\nt 1 9\nu 0 3\n".to_owned())
    );
    assert!(f.dir.path().join("topiclog-group-67.offsets").is_file());

    f.reopen();
    assert_eq!(
        f.coordinator.committed_offsets("g").expect("reads"),
        BTreeMap::from([(tp("t", 0), 8), (tp("t", 1), 9), (tp("u", 0), 3)])
    );
    assert_eq!(
        f.coordinator
            .committed("other group", &tp("u", 0))
            .expect("reads"),
        Some(100)
    );
    assert_eq!(
        f.coordinator.committed("g", &tp("u", 1)).expect("reads"),
        None
    );
    assert_eq!(f.coordinator.groups().expect("lists"), ["g", "other group"]);
    assert_eq!(
        f.coordinator.live_members("g").expect("reads"),
        ["a"],
        "membership is in the group's file, shared with other processes"
    );
}

#[test]
fn a_corrupt_offsets_file_fails_open_naming_it() {
    let f = Fixture::new(&[]);
    let path = f.dir.path().join(file_name("g"));
    std::fs::write(&path, "0\ng\n1\nt 0 x\n").expect("write");
    match Coordinator::open(Arc::new(OsDisk), f.dir.path(), f.clock.clone()) {
        Err(Error::Corrupt {
            path: p,
            position: 6,
            kind: Corruption::Metadata(_),
        }) => assert_eq!(p, path),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn reset_offsets_is_refused_while_the_group_has_live_members() {
    let f = Fixture::new(&[("t", 2)]);
    f.join("g", "a", &["t"], Assignor::Range);
    f.sync("g", "a");
    f.coordinator
        .commit("g", "a", &[(tp("t", 0), 5), (tp("t", 1), 6)])
        .expect("commits");
    assert!(matches!(
        f.coordinator.reset_offsets("g", &[(tp("t", 0), 0)]),
        Err(Error::GroupNotEmpty { .. })
    ));
    assert!(matches!(
        f.coordinator.delete_group("g"),
        Err(Error::GroupNotEmpty { .. })
    ));
    assert_eq!(
        f.coordinator.committed("g", &tp("t", 0)).expect("reads"),
        Some(5)
    );

    f.coordinator.leave("g", "a");
    f.coordinator
        .reset_offsets("g", &[(tp("t", 0), 0), (tp("new-topic", 4), 2)])
        .expect("resets an empty group");
    assert_eq!(
        f.coordinator.committed_offsets("g").expect("reads"),
        BTreeMap::from([(tp("new-topic", 4), 2), (tp("t", 0), 0), (tp("t", 1), 6)])
    );
    assert!(matches!(
        f.coordinator.reset_offsets("g", &[(tp("bad topic", 0), 0)]),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        f.coordinator.reset_offsets("g", &[(tp("t", 0), -1)]),
        Err(Error::NegativeOffset { offset: -1 })
    ));
    f.coordinator
        .reset_offsets("fresh", &[(tp("t", 1), 1)])
        .expect("a group that never had members");
    assert_eq!(f.coordinator.groups().expect("lists"), ["fresh", "g"]);

    f.coordinator.delete_group("g").expect("deletes");
    f.coordinator
        .delete_group("never")
        .expect("nothing to delete");
    assert!(!f.dir.path().join(file_name("g")).exists());
    assert!(
        f.coordinator
            .committed_offsets("g")
            .expect("reads")
            .is_empty()
    );
    assert_eq!(f.coordinator.groups().expect("lists"), ["fresh"]);
}

#[test]
fn groups_are_independent() {
    let f = Fixture::new(&[("t", 1)]);
    f.join("one", "m", &["t"], Assignor::Range);
    f.join("two", "m", &["t"], Assignor::RoundRobin);
    assert_eq!(f.sync("one", "m").owned, tps(&[("t", 0)]));
    assert_eq!(f.sync("two", "m").owned, tps(&[("t", 0)]));
    f.coordinator
        .commit("one", "m", &[(tp("t", 0), 1)])
        .expect("commits");
    f.coordinator
        .commit("two", "m", &[(tp("t", 0), 2)])
        .expect("commits");
    f.coordinator.leave("one", "m");
    assert_eq!(f.sync("two", "m").owned, tps(&[("t", 0)]));
    assert_eq!(
        f.coordinator.committed("one", &tp("t", 0)).expect("reads"),
        Some(1)
    );
    assert_eq!(
        f.coordinator.committed("two", &tp("t", 0)).expect("reads"),
        Some(2)
    );
}

#[test]
fn join_refuses_duplicates_other_assignors_and_bad_arguments() {
    let f = Fixture::new(&[("t", 1)]);
    f.join("g", "a", &["t"], Assignor::Range);
    assert!(matches!(
        f.join_with("g", "a", &["t"], Assignor::Range, 10),
        Err(Error::MemberExists { .. })
    ));
    assert!(matches!(
        f.join_with("g", "b", &["t"], Assignor::RoundRobin, 10),
        Err(Error::InconsistentAssignor {
            current: Assignor::Range,
            requested: Assignor::RoundRobin,
            ..
        })
    ));
    let invalid = |r: Result<Wakes, Error>, k: &str| matches!(r, Err(Error::InvalidConfig { key, .. }) if key == k);
    assert!(invalid(
        f.join_with("", "b", &["t"], Assignor::Range, 10),
        "group.id"
    ));
    assert!(invalid(
        f.join_with("g", "", &["t"], Assignor::Range, 10),
        "group.instance.id"
    ));
    assert!(invalid(
        f.join_with("g", "b", &["t"], Assignor::Range, 0),
        "max.poll.interval.ms"
    ));
    assert!(matches!(
        f.join_with("g", "b", &["no spaces"], Assignor::Range, 10),
        Err(Error::InvalidTopicName { .. })
    ));
    assert_eq!(f.coordinator.live_members("g").expect("reads"), ["a"]);
    // Once the group is empty, a new first member picks the assignor.
    f.coordinator.leave("g", "a");
    f.join("g", "b", &["t"], Assignor::RoundRobin);
}

#[test]
fn partitions_added_or_topics_created_are_assigned_after_metadata_changed() {
    let f = Fixture::new(&[("t", 1)]);
    f.join("g", "a", &["t", "later"], Assignor::Range);
    let b_wakes = f.join("g", "b", &["t", "later"], Assignor::Range);
    assert_eq!(f.sync("g", "a").owned, tps(&[("t", 0)]));
    assert_eq!(f.sync("g", "b").owned, vec![]);
    let generation = f.sync("g", "b").generation;

    f.coordinator.metadata_changed();
    assert_eq!(f.sync("g", "b").generation, generation, "nothing changed");

    f.set_partitions("t", 3);
    f.set_partitions("later", 2);
    f.coordinator.metadata_changed();
    assert_eq!(b_wakes.count(), 1);
    let b = f.sync("g", "b");
    assert_eq!(b.generation, generation + 1);
    assert_eq!(b.assign, tps(&[("later", 1), ("t", 2)]));
    let a = f.sync("g", "a");
    assert_eq!(a.assign, tps(&[("later", 0), ("t", 1)]));

    // A deleted topic's partitions are revoked.
    f.topics.lock().remove("later");
    f.coordinator.metadata_changed();
    assert_eq!(f.sync("g", "a").revoke, tps(&[("later", 0)]));
}

/// The callbacks may call back into the coordinator: `wake` and `partitions` run with no lock
/// held (a held lock would deadlock here, and the test would time out).
#[test]
fn callbacks_run_with_no_lock_held() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = Fixture::new(&[("t", 2)]);
        let coordinator = Arc::new(f.coordinator);
        let slot: Arc<OnceLock<Weak<Coordinator>>> = Arc::new(OnceLock::new());
        let _ = slot.set(Arc::downgrade(&coordinator));
        let seen = Arc::new(AtomicUsize::new(0));
        let (wake_slot, wake_seen) = (Arc::clone(&slot), Arc::clone(&seen));
        let wake: WakeFn = Arc::new(move || {
            if let Some(c) = wake_slot.get().and_then(Weak::upgrade) {
                wake_seen.fetch_add(c.live_members("g").expect("reads").len(), Ordering::SeqCst);
            }
        });
        let (count_slot, topics) = (Arc::clone(&slot), Arc::clone(&f.topics));
        let partitions: PartitionsFn = Arc::new(move |topic: &str| {
            if let Some(c) = count_slot.get().and_then(Weak::upgrade) {
                let _ = c.committed("g", &tp(topic, 0)).expect("reads");
                let _ = c.groups().expect("lists");
            }
            topics.lock().get(topic).copied()
        });
        let topics = ["t".to_owned()];
        for member in ["a", "b"] {
            coordinator
                .join(
                    "g",
                    request(
                        member,
                        &topics,
                        Assignor::Range,
                        INTERVAL_MS,
                        partitions.clone(),
                        wake.clone(),
                    ),
                )
                .expect("joins");
            coordinator.sync("g", member).expect("syncs");
        }
        coordinator.metadata_changed();
        coordinator.leave("g", "b");
        let _ = done.send(seen.load(Ordering::SeqCst));
    });
    let seen = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("no deadlock");
    assert!(seen > 0, "the wake callback ran");
}

/// Members on threads sync, take, commit, release, leave and rejoin while a shared table
/// checks that no partition is ever held by two of them.
#[test]
fn concurrent_members_never_share_a_partition() {
    const PARTITIONS: u32 = 6;
    let f = Arc::new(Fixture::new(&[("t", PARTITIONS)]));
    let holders: Arc<Vec<AtomicUsize>> =
        Arc::new((0..PARTITIONS).map(|_| AtomicUsize::new(0)).collect());
    let threads: Vec<_> = (1..=4usize)
        .map(|me| {
            let f = Arc::clone(&f);
            let holders = Arc::clone(&holders);
            std::thread::spawn(move || {
                let name = format!("m{me}");
                let assignor = Assignor::CooperativeSticky;
                let mut held: BTreeSet<u32> = BTreeSet::new();
                f.join("g", &name, &["t"], assignor);
                for round in 0..300usize {
                    let sync = f.sync("g", &name);
                    for (_, p) in &sync.assign {
                        let slot = holders.get(*p as usize).expect("partition");
                        let free = slot.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst);
                        assert_eq!(free, Ok(0), "partition {p} handed to m{me} while held");
                        held.insert(*p);
                    }
                    let offsets: Vec<(TopicPartition, i64)> =
                        held.iter().map(|p| (tp("t", *p), round as i64)).collect();
                    f.coordinator
                        .commit("g", &name, &offsets)
                        .expect("owned partitions commit");
                    for (_, p) in &sync.revoke {
                        holders
                            .get(*p as usize)
                            .expect("partition")
                            .store(0, Ordering::SeqCst);
                        held.remove(p);
                    }
                    f.coordinator.release("g", &name, &sync.revoke);
                    if round % (40 + me * 7) == 0 {
                        for p in std::mem::take(&mut held) {
                            holders
                                .get(p as usize)
                                .expect("partition")
                                .store(0, Ordering::SeqCst);
                        }
                        f.coordinator.leave("g", &name);
                        f.join("g", &name, &["t"], assignor);
                    }
                }
                for p in held {
                    holders
                        .get(p as usize)
                        .expect("partition")
                        .store(0, Ordering::SeqCst);
                }
                f.coordinator.leave("g", &name);
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("member thread");
    }
    assert!(f.coordinator.live_members("g").expect("reads").is_empty());
    f.coordinator.check_invariants("g").expect("consistent");
}

// ---------------------------------------------------------------------------------------------
// Model-based proptest.

const TOPICS: [&str; 3] = ["a", "b", "c"];
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const MEMBERS: usize = 4;
/// Partition counts at the start; `c` does not exist until a partition is added to it.
const START_COUNTS: [(&str, u32); 2] = [("a", 3), ("b", 2)];
const MAX_PARTITIONS: u32 = 6;

/// Each group has its assignor, so all three run.
fn assignor_of(group: usize) -> Assignor {
    [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ][group % 3]
}

fn interval_of(member: usize) -> i64 {
    1_000 + 500 * member as i64
}

fn member_name(member: usize) -> String {
    format!("m{member}")
}

#[derive(Debug, Clone)]
enum Op {
    Join {
        group: usize,
        member: usize,
        topics: u8,
    },
    Leave {
        group: usize,
        member: usize,
    },
    Sync {
        group: usize,
        member: usize,
    },
    ReleaseRevoked {
        group: usize,
        member: usize,
    },
    ReleaseAll {
        group: usize,
        member: usize,
    },
    Commit {
        group: usize,
        member: usize,
        topic: usize,
        partition: u32,
        offset: i64,
    },
    Advance {
        ms: i64,
    },
    AddPartition {
        topic: usize,
    },
    Quiesce,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let group = 0..GROUPS.len();
    let member = 0..MEMBERS;
    prop_oneof![
        4 => (group.clone(), member.clone(), 1u8..8).prop_map(|(group, member, topics)| Op::Join { group, member, topics }),
        1 => (group.clone(), member.clone()).prop_map(|(group, member)| Op::Leave { group, member }),
        6 => (group.clone(), member.clone()).prop_map(|(group, member)| Op::Sync { group, member }),
        3 => (group.clone(), member.clone()).prop_map(|(group, member)| Op::ReleaseRevoked { group, member }),
        1 => (group.clone(), member.clone()).prop_map(|(group, member)| Op::ReleaseAll { group, member }),
        4 => (group.clone(), member, 0..TOPICS.len(), 0..MAX_PARTITIONS, 0i64..1_000)
            .prop_map(|(group, member, topic, partition, offset)| Op::Commit { group, member, topic, partition, offset }),
        2 => (0i64..1_500).prop_map(|ms| Op::Advance { ms }),
        1 => (0..TOPICS.len()).prop_map(|topic| Op::AddPartition { topic }),
        1 => Just(Op::Quiesce),
        1 => Just(Op::Reopen),
    ]
}

/// What the test knows of a live member.
#[derive(Debug)]
struct ModelMember {
    topics: BTreeSet<String>,
    interval_ms: i64,
    last_sync_ms: i64,
    owned: BTreeSet<TopicPartition>,
    /// The revoke list of its last sync.
    revoke: Vec<TopicPartition>,
    /// Set by its wake callback; cleared when it syncs.
    woken: Arc<AtomicBool>,
}

/// The model: live members per group, committed offsets, the clock and partition counts.
struct Model {
    f: Fixture,
    members: Vec<BTreeMap<String, ModelMember>>,
    committed: Vec<BTreeMap<TopicPartition, i64>>,
    generations: Vec<u64>,
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}

impl Model {
    fn new() -> Model {
        Model {
            f: Fixture::new(&START_COUNTS),
            members: (0..GROUPS.len()).map(|_| BTreeMap::new()).collect(),
            committed: vec![BTreeMap::new(); GROUPS.len()],
            generations: vec![0; GROUPS.len()],
        }
    }

    fn now(&self) -> i64 {
        self.f.clock.now_ms()
    }

    /// Drops members whose interval ran out (the coordinator does so at its next call on the
    /// group, before anything else).
    fn expire(&mut self, group: usize) {
        let now = self.now();
        if let Some(members) = self.members.get_mut(group) {
            members.retain(|_, m| now < m.last_sync_ms + m.interval_ms);
        }
    }

    fn expire_all(&mut self) {
        for group in 0..GROUPS.len() {
            self.expire(group);
        }
    }

    fn member(&mut self, group: usize, member: &str) -> Option<&mut ModelMember> {
        self.members.get_mut(group)?.get_mut(member)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Join {
                group,
                member,
                topics,
            } => {
                self.expire(group);
                let name = member_name(member);
                let topics: BTreeSet<String> = (0..TOPICS.len())
                    .filter(|i| topics & (1 << i) != 0)
                    .map(|i| TOPICS[i].to_owned())
                    .collect();
                let woken = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&woken);
                let wake: WakeFn = Arc::new(move || flag.store(true, Ordering::SeqCst));
                let list: Vec<String> = topics.iter().cloned().collect();
                let result = self.f.coordinator.join(
                    GROUPS[group],
                    request(
                        &name,
                        &list,
                        assignor_of(group),
                        interval_of(member),
                        self.f.partitions(),
                        wake,
                    ),
                );
                if self.members[group].contains_key(&name) {
                    check(matches!(result, Err(Error::MemberExists { .. })), || {
                        format!("duplicate join: {result:?}")
                    })?;
                } else {
                    check(result.is_ok(), || format!("join: {result:?}"))?;
                    let now = self.now();
                    self.members[group].insert(
                        name,
                        ModelMember {
                            topics,
                            interval_ms: interval_of(member),
                            last_sync_ms: now,
                            owned: BTreeSet::new(),
                            revoke: Vec::new(),
                            woken,
                        },
                    );
                }
            }
            Op::Leave { group, member } => {
                self.expire(group);
                let name = member_name(member);
                self.f.coordinator.leave(GROUPS[group], &name);
                self.members[group].remove(&name);
            }
            Op::Sync { group, member } => {
                self.expire(group);
                self.sync(group, &member_name(member))?;
            }
            Op::ReleaseRevoked { group, member } | Op::ReleaseAll { group, member } => {
                self.expire(group);
                let name = member_name(member);
                let all = matches!(op, Op::ReleaseAll { .. });
                let released: Vec<TopicPartition> = match self.member(group, &name) {
                    Some(m) if all => m.owned.iter().cloned().collect(),
                    Some(m) => m.revoke.clone(),
                    None => vec![tp("a", 0)],
                };
                self.f.coordinator.release(GROUPS[group], &name, &released);
                if let Some(m) = self.member(group, &name) {
                    for p in &released {
                        m.owned.remove(p);
                    }
                    m.revoke.retain(|p| !released.contains(p));
                }
            }
            Op::Commit {
                group,
                member,
                topic,
                partition,
                offset,
            } => {
                self.expire(group);
                let name = member_name(member);
                let partition = tp(TOPICS[topic], partition);
                let result =
                    self.f
                        .coordinator
                        .commit(GROUPS[group], &name, &[(partition.clone(), offset)]);
                match self.member(group, &name) {
                    None => check(matches!(result, Err(Error::UnknownMember { .. })), || {
                        format!("commit by a non-member: {result:?}")
                    })?,
                    Some(m) if !m.owned.contains(&partition) => {
                        check(matches!(result, Err(Error::CommitRejected { .. })), || {
                            format!("commit of unowned {partition:?}: {result:?}")
                        })?
                    }
                    Some(_) => {
                        check(result.is_ok(), || format!("commit: {result:?}"))?;
                        self.committed[group].insert(partition.clone(), offset);
                    }
                }
                let got = self
                    .f
                    .coordinator
                    .committed(GROUPS[group], &partition)
                    .expect("reads");
                check(
                    got == self.committed[group].get(&partition).copied(),
                    || format!("committed {partition:?}: {got:?}"),
                )?;
            }
            Op::Advance { ms } => self.f.clock.advance(ms),
            Op::AddPartition { topic } => {
                let name = TOPICS[topic];
                let count = self.f.topics.lock().get(name).copied().unwrap_or(0);
                if count < MAX_PARTITIONS {
                    self.f.set_partitions(name, count + 1);
                }
                self.expire_all();
                self.f.coordinator.metadata_changed();
            }
            Op::Quiesce => self.quiesce()?,
            Op::Reopen => {
                // A store closing: its consumers leave first (membership is in the group's
                // file, so members that did not leave would stay until their session ends).
                for (group, members) in self.members.iter().enumerate() {
                    for name in members.keys() {
                        self.f.coordinator.leave(GROUPS[group], name);
                    }
                }
                self.f.reopen();
                for members in &mut self.members {
                    members.clear();
                }
                self.generations = vec![0; GROUPS.len()];
                for (group, committed) in self.committed.iter().enumerate() {
                    let got = self
                        .f
                        .coordinator
                        .committed_offsets(GROUPS[group])
                        .expect("reads");
                    check(&got == committed, || {
                        format!("{} after reopen: {got:?} != {committed:?}", GROUPS[group])
                    })?;
                }
            }
        }
        self.check_invariants()
    }

    /// A sync, checked against what the member knew.
    fn sync(&mut self, group: usize, name: &str) -> Result<(), TestCaseError> {
        let result = self.f.coordinator.sync(GROUPS[group], name);
        let others: BTreeSet<TopicPartition> = self.members[group]
            .iter()
            .filter(|(id, _)| id.as_str() != name)
            .flat_map(|(_, m)| m.owned.iter().cloned())
            .collect();
        let now = self.now();
        let last_generation = self.generations[group];
        let Some(m) = self.member(group, name) else {
            return check(matches!(result, Err(Error::UnknownMember { .. })), || {
                format!("sync of a non-member: {result:?}")
            });
        };
        let sync = result.map_err(|e| TestCaseError::fail(format!("sync: {e}")))?;
        check(sync.generation >= last_generation, || {
            format!("generation went back: {sync:?}")
        })?;
        for p in &sync.revoke {
            check(m.owned.contains(p), || format!("revoked unowned {p:?}"))?;
        }
        for p in &sync.assign {
            check(!m.owned.contains(p), || format!("assigned owned {p:?}"))?;
            check(!others.contains(p), || {
                format!("{p:?} assigned to {name} while another member owns it")
            })?;
        }
        m.owned.extend(sync.assign.iter().cloned());
        check(
            sync.owned == m.owned.iter().cloned().collect::<Vec<_>>(),
            || format!("owned {:?} != model {:?}", sync.owned, m.owned),
        )?;
        m.revoke = sync.revoke.clone();
        m.last_sync_ms = now;
        m.woken.store(false, Ordering::SeqCst);
        self.generations[group] = sync.generation;
        Ok(())
    }

    /// Every member syncs and releases what it is told to, for four rounds (two suffice: the
    /// first releases, the second takes what was released); then each group's ownership must
    /// cover every partition of its subscribed topics once and equal what its assignor
    /// computes.
    fn quiesce(&mut self) -> Result<(), TestCaseError> {
        self.expire_all();
        for _round in 0..4 {
            for (group, group_name) in GROUPS.iter().enumerate() {
                let names: Vec<String> = self.members[group].keys().cloned().collect();
                for name in names {
                    self.sync(group, &name)?;
                    let revoke = self.member(group, &name).map(|m| m.revoke.clone());
                    if let Some(revoke) = revoke.filter(|r| !r.is_empty()) {
                        self.f.coordinator.release(group_name, &name, &revoke);
                        if let Some(m) = self.member(group, &name) {
                            for p in &revoke {
                                m.owned.remove(p);
                            }
                            m.revoke.clear();
                        }
                    }
                }
            }
        }
        let counts: BTreeMap<String, u32> = self.f.topics.lock().clone();
        for (group, members) in self.members.iter().enumerate() {
            let owned: Assignment = members
                .iter()
                .map(|(id, m)| (id.clone(), m.owned.clone()))
                .collect();
            let subscriptions: Subscriptions = members
                .iter()
                .map(|(id, m)| (id.clone(), m.topics.clone()))
                .collect();
            let mut expected = BTreeSet::new();
            for topic in subscriptions.values().flatten() {
                for p in 0..counts.get(topic).copied().unwrap_or(0) {
                    expected.insert(tp(topic, p));
                }
            }
            let all: Vec<&TopicPartition> = owned.values().flatten().collect();
            let distinct: BTreeSet<TopicPartition> = all.iter().map(|p| (*p).clone()).collect();
            check(all.len() == distinct.len() && distinct == expected, || {
                format!(
                    "{}: owned {owned:?}, expected each of {expected:?} once",
                    GROUPS[group]
                )
            })?;
            let assigned = assignor_of(group).assign(&subscriptions, &counts, &owned);
            check(assigned == owned, || {
                format!(
                    "{}: owned {owned:?} but {} assigns {assigned:?}",
                    GROUPS[group],
                    assignor_of(group)
                )
            })?;
            if assignor_of(group) == Assignor::CooperativeSticky {
                check_balanced(&subscriptions, &owned)?;
            }
        }
        Ok(())
    }

    /// After every operation: the coordinator's own invariants, and its view of each live
    /// member (as the model knows it) matches the model's; members with partitions to take,
    /// or newly to give up, were woken.
    fn check_invariants(&self) -> Result<(), TestCaseError> {
        for (group, members) in self.members.iter().enumerate() {
            let name = GROUPS[group];
            self.f
                .coordinator
                .check_invariants(name)
                .map_err(TestCaseError::fail)?;
            let ownership = self.f.coordinator.ownership(name);
            let mut seen = BTreeSet::new();
            for (id, m) in members {
                let theirs = ownership.get(id).cloned().unwrap_or_default();
                check(theirs == m.owned, || {
                    format!("{name}/{id}: coordinator {theirs:?} != model {:?}", m.owned)
                })?;
                for p in &m.owned {
                    check(seen.insert(p.clone()), || {
                        format!("{name}: {p:?} owned twice")
                    })?;
                    check(m.topics.contains(&p.0), || {
                        format!("{name}/{id} owns {p:?} of a topic it does not subscribe")
                    })?;
                }
                if let Some((release, take)) = self.f.coordinator.pending(name, id) {
                    let new_release = release.iter().any(|p| !m.revoke.contains(p));
                    check(
                        m.woken.load(Ordering::SeqCst) || (take.is_empty() && !new_release),
                        || format!("{name}/{id} not woken: release {release:?}, take {take:?}"),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Kafka's balance: no member could take a partition from a member owning two more.
fn check_balanced(subscriptions: &Subscriptions, owned: &Assignment) -> Result<(), TestCaseError> {
    for (from, partitions) in owned {
        for (to, theirs) in owned {
            let could_take = partitions
                .iter()
                .any(|p| subscriptions.get(to).is_some_and(|t| t.contains(&p.0)));
            check(!could_take || partitions.len() < theirs.len() + 2, || {
                format!("unbalanced: {from} {partitions:?}, {to} {theirs:?}")
            })?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random joins, leaves, syncs, releases, commits, clock jumps, new partitions and
    /// reopens over three groups (one per assignor): no partition ever has two owners in a
    /// group, members own only partitions of their topics, commits succeed exactly for owned
    /// partitions of live members and survive reopens, and at quiescence every partition of
    /// the subscribed topics has one owner, as the assignor computes.
    #[test]
    fn random_operations_keep_ownership_exclusive(ops in proptest::collection::vec(op(), 1..80)) {
        let mut model = Model::new();
        for op in &ops {
            model.apply(op)?;
        }
        model.quiesce()?;
    }
}

#[test]
fn the_store_directory_stays_free_of_stray_files() {
    let f = Fixture::new(&[("t", 1)]);
    f.join("g", "a", &["t"], Assignor::Range);
    f.sync("g", "a");
    f.coordinator
        .commit("g", "a", &[(tp("t", 0), 1)])
        .expect("commits");
    let names: Vec<String> = std::fs::read_dir(f.dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    let members = crate::group::state::file_name("g");
    let lock = crate::layout::GROUPS_LOCK_FILE.to_owned();
    assert_eq!(
        names,
        [members, file_name("g"), GROUPS_FILE.to_owned(), lock]
    );
    assert!(Path::new(&f.dir.path().join(file_name("g"))).is_file());
}
