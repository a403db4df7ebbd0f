//! Kafka's partition assignors: given a group's members, the topics each subscribes to and the
//! partition count of each topic, which member should own which partition.
//!
//! `range` and `roundrobin` reproduce Kafka's `RangeAssignor` and `RoundRobinAssignor` exactly
//! (members ordered by id). `cooperative-sticky` follows the goals of Kafka's
//! `CooperativeStickyAssignor` (balanced, then sticky) with a simpler algorithm; its output is
//! balanced in Kafka's sense, and an assignment it produced is a fixed point of it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

use super::TopicPartition;

/// Member id -> topics it subscribes to.
pub(crate) type Subscriptions = BTreeMap<String, BTreeSet<String>>;

/// Member id -> partitions it owns (or should own).
pub(crate) type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// How a consumer group spreads partitions over its members: Kafka's
/// `partition.assignment.strategy`, by the protocol names Kafka's assignors report.
///
/// All members of a group use the same assignor. With [`Range`](Assignor::Range) and
/// [`RoundRobin`](Assignor::RoundRobin) a rebalance revokes only the partitions that move
/// (Kafka's eager protocol revokes everything; revoking less is safe because a moved partition
/// is handed over only after its old owner releases it).
///
/// ```
/// use topiclog::config::Assignor;
///
/// let assignor: Assignor = "cooperative-sticky".parse()?;
/// assert_eq!(assignor, Assignor::CooperativeSticky);
/// assert_eq!(Assignor::default().name(), "range");
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Kafka's `RangeAssignor` (`range`, Kafka's first default): per topic, the subscribed
    /// members in id order each take a contiguous range of `partitions / members` partitions,
    /// the first `partitions % members` of them one more. Members with the same index get the
    /// same partition numbers of co-partitioned topics.
    #[default]
    Range,
    /// Kafka's `RoundRobinAssignor` (`roundrobin`): all partitions, ordered by topic and
    /// partition, dealt to the members in id order, skipping members not subscribed to the
    /// partition's topic.
    RoundRobin,
    /// Kafka's `CooperativeStickyAssignor` (`cooperative-sticky`): as balanced as the
    /// subscriptions allow (no member can take a partition from a member owning two more), and
    /// moving as few partitions as possible from their current owners.
    CooperativeSticky,
}

impl Assignor {
    /// Kafka's name of the assignor (its protocol name): `range`, `roundrobin` or
    /// `cooperative-sticky`.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The target assignment: an entry for every member of `subscriptions` (possibly empty),
    /// holding partitions of topics it subscribes to, each partition of every subscribed topic
    /// with a count in `partition_counts` given to exactly one member. Topics without a count
    /// are left out. `current` (who owns what now) matters to the sticky assignor only; its
    /// entries for unknown members, unsubscribed topics or missing partitions are ignored.
    pub(crate) fn assign(
        self,
        subscriptions: &Subscriptions,
        partition_counts: &BTreeMap<String, u32>,
        current: &Assignment,
    ) -> Assignment {
        match self {
            Assignor::Range => range(subscriptions, partition_counts),
            Assignor::RoundRobin => round_robin(subscriptions, partition_counts),
            Assignor::CooperativeSticky => {
                cooperative_sticky(subscriptions, partition_counts, current)
            }
        }
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Assignor {
    type Err = Error;

    /// Parses Kafka's protocol name (`range`, `roundrobin`, `cooperative-sticky`).
    fn from_str(name: &str) -> Result<Assignor, Error> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| Error::InvalidConfig {
            key: "partition.assignment.strategy",
            value: name.to_owned(),
            reason: "expected range, roundrobin or cooperative-sticky".into(),
        })
    }
}

/// An empty assignment for every member.
fn empty(subscriptions: &Subscriptions) -> Assignment {
    subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect()
}

/// Topic -> subscribed members in id order, for topics with a partition count.
fn members_per_topic<'a>(
    subscriptions: &'a Subscriptions,
    partition_counts: &BTreeMap<String, u32>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut per_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for topic in topics {
            if partition_counts.contains_key(topic) {
                per_topic.entry(topic).or_default().push(member);
            }
        }
    }
    per_topic
}

/// Kafka's `RangeAssignor.assign`.
fn range(subscriptions: &Subscriptions, partition_counts: &BTreeMap<String, u32>) -> Assignment {
    let mut assignment = empty(subscriptions);
    for (topic, members) in members_per_topic(subscriptions, partition_counts) {
        let partitions = partition_counts.get(topic).copied().unwrap_or(0);
        let Ok(count) = u32::try_from(members.len()) else {
            continue;
        };
        if count == 0 {
            continue;
        }
        let (per_member, with_extra) = (partitions / count, partitions % count);
        for (i, member) in (0u32..).zip(members) {
            let start = per_member * i + i.min(with_extra);
            let len = per_member + u32::from(i < with_extra);
            if let Some(owned) = assignment.get_mut(member) {
                owned.extend((start..start + len).map(|p| (topic.to_owned(), p)));
            }
        }
    }
    assignment
}

/// Kafka's `RoundRobinAssignor.assign`.
fn round_robin(
    subscriptions: &Subscriptions,
    partition_counts: &BTreeMap<String, u32>,
) -> Assignment {
    let mut assignment = empty(subscriptions);
    let members: Vec<(&String, &BTreeSet<String>)> = subscriptions.iter().collect();
    // Kafka's CircularIterator: the cursor stays where the last partition was dealt.
    let mut cursor = 0usize;
    for topic in members_per_topic(subscriptions, partition_counts).keys() {
        let partitions = partition_counts.get(*topic).copied().unwrap_or(0);
        for partition in 0..partitions {
            // A member subscribes to the topic (members_per_topic says so), so this ends
            // within one turn.
            for _ in 0..members.len() {
                let Some((member, topics)) = members.get(cursor % members.len()) else {
                    break;
                };
                cursor = (cursor + 1) % members.len();
                if topics.contains(*topic) {
                    if let Some(owned) = assignment.get_mut(*member) {
                        owned.insert(((*topic).to_owned(), partition));
                    }
                    break;
                }
            }
        }
    }
    assignment
}

/// The cooperative sticky assignment, in three passes:
///
/// 1. every partition keeps its current owner where that owner is a member subscribed to its
///    topic;
/// 2. the remaining partitions, those with the fewest candidate members first (then by topic
///    and partition), go one by one to the candidate owning fewest (then lowest id): Kafka's
///    order, which gives its documented examples;
/// 3. while some member owns a partition that a candidate with at least two fewer could take,
///    the most loaded such member gives it (its highest such partition) to the least loaded
///    such candidate. Each move lowers the sum of squared counts, so this ends.
///
/// After pass 3 the assignment is balanced in Kafka's sense (no member can take a partition
/// from one owning two more), so members subscribed to the same topics own counts at most one
/// apart, and a balanced current assignment comes back unchanged.
fn cooperative_sticky(
    subscriptions: &Subscriptions,
    partition_counts: &BTreeMap<String, u32>,
    current: &Assignment,
) -> Assignment {
    let mut assignment = empty(subscriptions);
    let candidates = members_per_topic(subscriptions, partition_counts);
    let count = |topic: &str| partition_counts.get(topic).copied().unwrap_or(0);
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();

    // Pass 1: stickiness.
    for (member, partitions) in current {
        let Some(topics) = subscriptions.get(member) else {
            continue;
        };
        for tp in partitions {
            let valid = topics.contains(&tp.0) && tp.1 < count(&tp.0);
            if valid && !owner.contains_key(tp) {
                owner.insert(tp.clone(), member.clone());
                if let Some(owned) = assignment.get_mut(member) {
                    owned.insert(tp.clone());
                }
            }
        }
    }

    // Pass 2: the unowned partitions.
    let mut unowned: Vec<(usize, TopicPartition)> = Vec::new();
    for (topic, members) in &candidates {
        for partition in 0..count(topic) {
            let tp = ((*topic).to_owned(), partition);
            if !owner.contains_key(&tp) {
                unowned.push((members.len(), tp));
            }
        }
    }
    unowned.sort();
    for (_, tp) in unowned {
        let least = candidates.get(tp.0.as_str()).and_then(|members| {
            members
                .iter()
                .min_by_key(|m| (assignment.get(**m).map_or(0, BTreeSet::len), **m))
        });
        if let Some(owned) = least.and_then(|m| assignment.get_mut(*m)) {
            owned.insert(tp);
        }
    }

    // Pass 3: balance.
    while let Some((from, tp, to)) = next_move(&assignment, &candidates) {
        if let Some(owned) = assignment.get_mut(&from) {
            owned.remove(&tp);
        }
        if let Some(owned) = assignment.get_mut(&to) {
            owned.insert(tp);
        }
    }
    assignment
}

/// The next balancing move of [`cooperative_sticky`]: `(from, partition, to)`, or `None` when
/// no member can take a partition from one owning at least two more.
fn next_move(
    assignment: &Assignment,
    candidates: &BTreeMap<&str, Vec<&str>>,
) -> Option<(String, TopicPartition, String)> {
    let len = |m: &str| assignment.get(m).map_or(0, BTreeSet::len);
    let mut donors: Vec<(&String, &BTreeSet<TopicPartition>)> = assignment.iter().collect();
    donors.sort_by_key(|(m, owned)| (Reverse(owned.len()), *m));
    for (donor, owned) in donors {
        for tp in owned.iter().rev() {
            let least = candidates.get(tp.0.as_str()).and_then(|members| {
                members
                    .iter()
                    .filter(|m| **m != donor.as_str())
                    .min_by_key(|m| (len(m), **m))
            });
            if let Some(to) = least
                && len(to) + 2 <= owned.len()
            {
                return Some((donor.clone(), tp.clone(), (*to).to_owned()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t0p1`-style names of an assignment, per member, for readable comparisons.
    fn names(assignment: &Assignment) -> BTreeMap<String, Vec<String>> {
        assignment
            .iter()
            .map(|(m, tps)| {
                let mut names: Vec<String> = tps.iter().map(|(t, p)| format!("{t}p{p}")).collect();
                names.sort();
                (m.clone(), names)
            })
            .collect()
    }

    fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(m, tps)| {
                let mut names: Vec<String> = tps.iter().map(|s| (*s).to_owned()).collect();
                names.sort();
                ((*m).to_owned(), names)
            })
            .collect()
    }

    fn subs(pairs: &[(&str, &[&str])]) -> Subscriptions {
        pairs
            .iter()
            .map(|(m, topics)| {
                (
                    (*m).to_owned(),
                    topics.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    fn parse(assignment: &[(&str, &[&str])]) -> Assignment {
        assignment
            .iter()
            .map(|(m, tps)| {
                let set = tps
                    .iter()
                    .map(|s| {
                        // `t0p1` is t0's partition 1, `t3` is t's partition 3.
                        let topic = s.trim_end_matches(|c: char| c.is_ascii_digit());
                        let partition = s[topic.len()..].parse().expect("partition");
                        (
                            topic.strip_suffix('p').unwrap_or(topic).to_owned(),
                            partition,
                        )
                    })
                    .collect();
                ((*m).to_owned(), set)
            })
            .collect()
    }

    #[test]
    fn names_round_trip_and_default_is_range() {
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            assert_eq!(
                assignor.name().parse::<Assignor>().expect("parses"),
                assignor
            );
            assert_eq!(assignor.to_string(), assignor.name());
        }
        assert_eq!(Assignor::default(), Assignor::Range);
        assert!(matches!(
            "sticky".parse::<Assignor>(),
            Err(Error::InvalidConfig {
                key: "partition.assignment.strategy",
                ..
            })
        ));
    }

    /// `RangeAssignor`'s Javadoc example.
    #[test]
    fn range_kafka_example() {
        let s = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let c = counts(&[("t0", 3), ("t1", 3)]);
        let got = Assignor::Range.assign(&s, &c, &Assignment::new());
        assert_eq!(
            names(&got),
            expect(&[
                ("C0", &["t0p0", "t0p1", "t1p0", "t1p1"]),
                ("C1", &["t0p2", "t1p2"])
            ])
        );
    }

    /// `RangeAssignorTest`: more members than partitions, uneven ranges, members sorted by id
    /// (not by arrival), and topics only some members subscribe to.
    #[test]
    fn range_uneven_and_partial_subscriptions() {
        let s = subs(&[("c", &["t1", "t2"]), ("a", &["t1"]), ("b", &["t1", "t2"])]);
        let c = counts(&[("t1", 7), ("t2", 1), ("unused", 4)]);
        let got = Assignor::Range.assign(&s, &c, &Assignment::new());
        assert_eq!(
            names(&got),
            expect(&[
                ("a", &["t1p0", "t1p1", "t1p2"]),
                ("b", &["t1p3", "t1p4", "t2p0"]),
                ("c", &["t1p5", "t1p6"]),
            ])
        );
        // A topic with no partition count (not in the store) is skipped.
        let s = subs(&[("a", &["t1", "gone"]), ("b", &["gone"])]);
        let got = Assignor::Range.assign(&s, &counts(&[("t1", 2)]), &Assignment::new());
        assert_eq!(names(&got), expect(&[("a", &["t1p0", "t1p1"]), ("b", &[])]));
    }

    /// `RoundRobinAssignor`'s Javadoc examples.
    #[test]
    fn round_robin_kafka_examples() {
        let s = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let got =
            Assignor::RoundRobin.assign(&s, &counts(&[("t0", 3), ("t1", 3)]), &Assignment::new());
        assert_eq!(
            names(&got),
            expect(&[
                ("C0", &["t0p0", "t0p2", "t1p1"]),
                ("C1", &["t0p1", "t1p0", "t1p2"])
            ])
        );

        let s = subs(&[
            ("C0", &["t0"]),
            ("C1", &["t0", "t1"]),
            ("C2", &["t0", "t1", "t2"]),
        ]);
        let c = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let got = Assignor::RoundRobin.assign(&s, &c, &Assignment::new());
        assert_eq!(
            names(&got),
            expect(&[
                ("C0", &["t0p0"]),
                ("C1", &["t1p0"]),
                ("C2", &["t1p1", "t2p0", "t2p1", "t2p2"])
            ])
        );
    }

    /// `StickyAssignor`'s Javadoc example 1: the initial assignment, then C1 leaves and the
    /// five partitions C0 and C2 owned stay where they were.
    #[test]
    fn sticky_kafka_example_one() {
        let topics: &[&str] = &["t0", "t1", "t2", "t3"];
        let c = counts(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
        let s = subs(&[("C0", topics), ("C1", topics), ("C2", topics)]);
        let first = Assignor::CooperativeSticky.assign(&s, &c, &Assignment::new());
        assert_eq!(
            names(&first),
            expect(&[
                ("C0", &["t0p0", "t1p1", "t3p0"]),
                ("C1", &["t0p1", "t2p0", "t3p1"]),
                ("C2", &["t1p0", "t2p1"])
            ])
        );
        let s = subs(&[("C0", topics), ("C2", topics)]);
        let second = Assignor::CooperativeSticky.assign(&s, &c, &first);
        assert_eq!(
            names(&second),
            expect(&[
                ("C0", &["t0p0", "t1p1", "t3p0", "t2p0"]),
                ("C2", &["t1p0", "t2p1", "t0p1", "t3p1"])
            ])
        );
    }

    /// `StickyAssignor`'s Javadoc example 2: unequal subscriptions, then C0 leaves.
    #[test]
    fn sticky_kafka_example_two() {
        let c = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let s = subs(&[
            ("C0", &["t0"]),
            ("C1", &["t0", "t1"]),
            ("C2", &["t0", "t1", "t2"]),
        ]);
        let first = Assignor::CooperativeSticky.assign(&s, &c, &Assignment::new());
        assert_eq!(
            names(&first),
            expect(&[
                ("C0", &["t0p0"]),
                ("C1", &["t1p0", "t1p1"]),
                ("C2", &["t2p0", "t2p1", "t2p2"])
            ])
        );
        let s = subs(&[("C1", &["t0", "t1"]), ("C2", &["t0", "t1", "t2"])]);
        let second = Assignor::CooperativeSticky.assign(&s, &c, &first);
        assert_eq!(
            names(&second),
            expect(&[
                ("C1", &["t1p0", "t1p1", "t0p0"]),
                ("C2", &["t2p0", "t2p1", "t2p2"])
            ])
        );
    }

    /// A member joining a balanced group takes partitions only from the most loaded members,
    /// no more than balance needs; the rest stay put.
    #[test]
    fn sticky_join_moves_only_what_balance_needs() {
        let c = counts(&[("t", 7)]);
        let current = parse(&[("a", &["t0", "t2", "t4", "t6"]), ("b", &["t1", "t3", "t5"])]);
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let got = Assignor::CooperativeSticky.assign(&s, &c, &current);
        let mut sizes: Vec<usize> = got.values().map(BTreeSet::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2, 3]);
        let kept: usize = got
            .iter()
            .map(|(m, tps)| {
                current
                    .get(m)
                    .map_or(0, |cur| tps.intersection(cur).count())
            })
            .sum();
        assert_eq!(kept, 5, "two partitions move to c: {got:?}");
        // Balanced input is a fixed point.
        assert_eq!(Assignor::CooperativeSticky.assign(&s, &c, &got), got);
    }

    /// Current ownership that no longer fits (a member gone, a topic no longer subscribed,
    /// a partition past the count, a partition listed twice) is dropped, not kept.
    #[test]
    fn sticky_ignores_stale_current_ownership() {
        let c = counts(&[("t", 2), ("u", 1)]);
        let current = parse(&[
            ("a", &["t0", "t1", "t5", "u0"]),
            ("b", &["t0"]),
            ("gone", &["t1"]),
        ]);
        let s = subs(&[("a", &["t"]), ("b", &["t", "u"])]);
        let got = Assignor::CooperativeSticky.assign(&s, &c, &current);
        assert_eq!(
            names(&got),
            expect(&[("a", &["tp0", "tp1"]), ("b", &["up0"])])
        );
    }

    /// Every assignor gives each partition of every subscribed topic to exactly one
    /// subscribed member, and an entry to every member.
    #[test]
    fn every_assignor_covers_every_partition_once() {
        let s = subs(&[
            ("m1", &["a", "b"]),
            ("m2", &["b"]),
            ("m3", &["a", "c"]),
            ("m4", &["missing"]),
        ]);
        let c = counts(&[("a", 5), ("b", 3), ("c", 4), ("d", 9)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let got = assignor.assign(&s, &c, &Assignment::new());
            assert_eq!(got.len(), 4, "{assignor}");
            let mut seen = BTreeSet::new();
            for (member, tps) in &got {
                for tp in tps {
                    assert!(s[member].contains(&tp.0), "{assignor}: {member} got {tp:?}");
                    assert!(seen.insert(tp.clone()), "{assignor}: {tp:?} twice");
                }
            }
            assert_eq!(seen.len(), 12, "{assignor}");
        }
    }
}
