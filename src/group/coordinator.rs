//! The in-process group coordinator: members of consumer groups, which partition each owns,
//! rebalances, and committed offsets.
//!
//! Membership is in memory only; a reopened store starts with empty groups, as Kafka's members
//! rejoin a restarted coordinator. Committed offsets are durable ([`super::offsets`]).
//!
//! ## How a rebalance hands partitions over
//!
//! Every join, leave and expiry (and [`Coordinator::metadata_changed`] when partition counts
//! change) recomputes the group's *target* assignment with the group's [`Assignor`]. A member
//! *owns* a partition from the [`sync`](Coordinator::sync) that hands it over until it
//! [`release`](Coordinator::release)s it, leaves, or expires. A sync reports what the target
//! moved away from the member (`revoke`: still owned, still committable, until released) and
//! hands over what the target gives it that no one owns. So no partition ever has two owners in
//! a group, and the moment a moved partition changes hands is the old owner's release: the old
//! owner commits what it processed, releases, and the new owner then reads the committed
//! offset. Only partitions that move are revoked, whatever the assignor (Kafka's eager protocol
//! revokes all; this is the cooperative protocol's handover for every assignor).
//!
//! Expiry: a member that does not sync within its `max.poll.interval.ms` of its last sync (or
//! join), by the store's [`Clock`], is removed at the next call that touches its group, and
//! its partitions are free at once (Kafka's consumer leaves the group when its poll timer
//! expires).
//!
//! Locking: one mutex per group (different groups never wait for each other), held during a
//! commit's file write so that commits of a group reach the disk in order. Neither the `wake`
//! nor the `partitions` callbacks are ever called with a lock held.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::config::Clock;
use crate::disk::Disk;
use crate::error::{Error, Result};

use super::TopicPartition;
use super::assignor::{Assignment, Assignor, Subscriptions};
use super::offsets::{self, Offsets};

/// A topic's current partition count, `None` for no such topic. Given at
/// [`Coordinator::join`]; the coordinator keeps the latest joiner's and calls it again from
/// [`Coordinator::metadata_changed`], so it should hold the store weakly (a strong reference
/// from the store's coordinator back to the store is a cycle).
pub(crate) type PartitionsFn = Arc<dyn Fn(&str) -> Option<u32> + Send + Sync>;

/// Wakes a member blocked in poll: called when it has partitions to release or to take.
pub(crate) type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// How often [`Coordinator::join`] recomputes partition counts when metadata keeps changing
/// while it computes them, before it goes ahead with the last counts (a later
/// [`Coordinator::metadata_changed`] corrects them).
const MAX_COUNT_ATTEMPTS: u32 = 16;

/// What a member learns at each [`Coordinator::sync`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MemberSync {
    /// The group's generation: it grows by one at every rebalance.
    pub generation: u64,
    /// Partitions the member owns that the target assignment moved away: it should commit
    /// what it processed of them and [`release`](Coordinator::release) them. Reported at every
    /// sync until released.
    pub revoke: Vec<TopicPartition>,
    /// Partitions the member owns from this sync on (none of them owned before).
    pub assign: Vec<TopicPartition>,
    /// Everything the member owns now, `revoke` and `assign` included.
    pub owned: Vec<TopicPartition>,
}

/// The coordinator of a store's consumer groups: one per writable store. `Send + Sync`.
pub(crate) struct Coordinator {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    /// Every group seen since open. Entries are never removed (a group is a few bytes when it
    /// has no members and no offsets), so a handle taken from here is never orphaned.
    groups: Mutex<BTreeMap<String, Arc<Mutex<Group>>>>,
    /// Bumped by every [`Coordinator::metadata_changed`]: partition counts computed before a
    /// bump may be stale.
    metadata_epoch: AtomicU64,
    /// Set when the store closes: its lock is released, so nothing is written any more.
    closed: std::sync::atomic::AtomicBool,
}

/// One group's state.
#[derive(Default)]
struct Group {
    /// The group id, for log lines.
    name: String,
    members: BTreeMap<String, Member>,
    /// Who owns each owned partition; the same facts as the members' `owned` sets.
    owners: BTreeMap<TopicPartition, String>,
    generation: u64,
    /// The assignor of the current members (the first joiner's).
    assignor: Assignor,
    /// Partition counts of the topics members subscribe to (topics that exist).
    partition_counts: BTreeMap<String, u32>,
    /// The metadata epoch `partition_counts` were computed in.
    counts_epoch: u64,
    /// The latest joiner's partition counts; dropped when the last member goes.
    partitions: Option<PartitionsFn>,
    committed: Offsets,
}

/// One live member.
struct Member {
    topics: BTreeSet<String>,
    max_poll_interval_ms: i64,
    last_sync_ms: i64,
    /// What the assignor gives it.
    target: BTreeSet<TopicPartition>,
    /// What it owns.
    owned: BTreeSet<TopicPartition>,
    wake: WakeFn,
    /// Woken since its last sync: one wake is enough until it syncs.
    woken: bool,
}

impl Coordinator {
    /// Opens the coordinator of the store in `store_dir`, loading every group's committed
    /// offsets (and removing temporary files a crash left).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a group offsets file that does not parse; [`Error::Io`].
    pub(crate) fn open(
        disk: Arc<dyn Disk>,
        store_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Coordinator> {
        let loaded = offsets::load_all(&*disk, store_dir)?;
        let groups = loaded
            .into_iter()
            .map(|(name, committed)| {
                let group = Group {
                    name: name.clone(),
                    committed,
                    ..Group::default()
                };
                (name, Arc::new(Mutex::new(group)))
            })
            .collect();
        Ok(Coordinator {
            disk,
            dir: store_dir.to_path_buf(),
            clock,
            groups: Mutex::new(groups),
            metadata_epoch: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Adds `member` to `group`, subscribed to `topics`, and rebalances. The first member of a
    /// group chooses its assignor; later members must use the same one (Kafka's
    /// `INCONSISTENT_GROUP_PROTOCOL`). `partitions` gives a topic's partition count (topics
    /// without one are ignored until [`metadata_changed`](Self::metadata_changed) finds them);
    /// `wake` is called, with no lock held, when the member has partitions to release or to
    /// take, at most once between two of its syncs. The join counts as the member's first
    /// sync for `max.poll.interval.ms`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty group or member id, [`Error::MemberExists`] for a member id already in the
    /// group, another assignor than the group's, or `max_poll_interval_ms` below 1;
    /// [`Error::InvalidTopicName`] for a topic name Kafka would refuse.
    #[expect(
        clippy::too_many_arguments,
        reason = "the Consumer's join: each argument is one of its settings"
    )]
    pub(crate) fn join(
        &self,
        group: &str,
        member: &str,
        topics: &[String],
        assignor: Assignor,
        max_poll_interval_ms: i64,
        partitions: PartitionsFn,
        wake: WakeFn,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(empty("group.id"));
        }
        if member.is_empty() {
            return Err(empty("group.instance.id"));
        }
        if max_poll_interval_ms < 1 {
            return Err(Error::InvalidConfig {
                key: "max.poll.interval.ms",
                value: max_poll_interval_ms.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        for topic in topics {
            crate::layout::validate_topic_name(topic)?;
        }
        let handle = self.group(group);
        let mut attempts = 0;
        let (result, wakes) = loop {
            // Partition counts are computed with no lock held; if metadata changed meanwhile
            // they may be stale, so compute them again.
            let epoch = self.metadata_epoch.load(Ordering::SeqCst);
            let counts: Vec<(&String, Option<u32>)> =
                topics.iter().map(|t| (t, partitions(t))).collect();
            let mut g = handle.lock();
            attempts += 1;
            if epoch != self.metadata_epoch.load(Ordering::SeqCst) && attempts < MAX_COUNT_ATTEMPTS
            {
                continue;
            }
            let now = self.clock.now_ms();
            let mut wakes = g.expire(now);
            if g.members.contains_key(member) {
                break (
                    Err(Error::MemberExists {
                        group: group.to_owned(),
                        member: member.to_owned(),
                    }),
                    wakes,
                );
            }
            if g.members.is_empty() {
                g.assignor = assignor;
            } else if g.assignor != assignor {
                break (
                    Err(Error::InconsistentAssignor {
                        group: group.to_owned(),
                        current: g.assignor,
                        requested: assignor,
                    }),
                    wakes,
                );
            }
            for (topic, count) in counts {
                match count {
                    Some(n) => g.partition_counts.insert(topic.clone(), n),
                    None => g.partition_counts.remove(topic),
                };
            }
            g.counts_epoch = g.counts_epoch.max(epoch);
            g.partitions = Some(partitions.clone());
            g.members.insert(
                member.to_owned(),
                Member {
                    topics: topics.iter().cloned().collect(),
                    max_poll_interval_ms,
                    last_sync_ms: now,
                    target: BTreeSet::new(),
                    owned: BTreeSet::new(),
                    wake: wake.clone(),
                    woken: false,
                },
            );
            wakes.extend(g.rebalance());
            break (Ok(()), wakes);
        };
        call(wakes);
        result
    }

    /// Removes `member` from `group` (nothing if it is not a member) and rebalances: its
    /// partitions are free at once. Kafka's `LeaveGroup`.
    pub(crate) fn leave(&self, group: &str, member: &str) {
        let Some(handle) = self.existing(group) else {
            return;
        };
        let mut g = handle.lock();
        let mut wakes = g.expire(self.clock.now_ms());
        if g.remove_member(member) {
            wakes.extend(g.rebalance());
        }
        drop(g);
        call(wakes);
    }

    /// The member's poll: removes expired members of the group (rebalancing), restarts this
    /// member's `max.poll.interval.ms`, hands it the partitions of its target that no one
    /// owns, and says what it must release.
    ///
    /// # Errors
    /// [`Error::UnknownMember`] if it left or expired: it must join again.
    pub(crate) fn sync(&self, group: &str, member: &str) -> Result<MemberSync> {
        let handle = self
            .existing(group)
            .ok_or_else(|| unknown_member(group, member))?;
        let mut g = handle.lock();
        let now = self.clock.now_ms();
        let wakes = g.expire(now);
        let result = g
            .sync(member, now)
            .ok_or_else(|| unknown_member(group, member));
        drop(g);
        call(wakes);
        result
    }

    /// Gives up `partitions` the member owns (others are ignored), so their new owners can
    /// take them at their next sync.
    pub(crate) fn release(&self, group: &str, member: &str, partitions: &[TopicPartition]) {
        let Some(handle) = self.existing(group) else {
            return;
        };
        let mut g = handle.lock();
        let mut wakes = g.expire(self.clock.now_ms());
        let Group {
            members, owners, ..
        } = &mut *g;
        if let Some(m) = members.get_mut(member) {
            for tp in partitions {
                if m.owned.remove(tp) {
                    owners.remove(tp);
                }
            }
        }
        wakes.extend(g.wakes());
        drop(g);
        call(wakes);
    }

    /// Commits `offsets` (the next offset to read of each partition) for the group, durably:
    /// the group's file is replaced with all its offsets before this returns. A commit that
    /// changes nothing writes nothing.
    ///
    /// # Errors
    /// [`Error::UnknownMember`] if the member left or expired; [`Error::CommitRejected`]
    /// (nothing committed) if it does not own one of the partitions right now (Kafka's
    /// `CommitFailedException`); [`Error::NegativeOffset`] for a negative offset;
    /// [`Error::Io`] if the file cannot be written (nothing committed either).
    pub(crate) fn commit(
        &self,
        group: &str,
        member: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let handle = self
            .existing(group)
            .ok_or_else(|| unknown_member(group, member))?;
        let mut g = handle.lock();
        let wakes = g.expire(self.clock.now_ms());
        let result = match g.members.get(member) {
            None => Err(unknown_member(group, member)),
            Some(m) => match offsets.iter().find(|(tp, _)| !m.owned.contains(tp)) {
                Some(((topic, partition), _)) => Err(Error::CommitRejected {
                    group: group.to_owned(),
                    member: member.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                }),
                None => self.write_offsets(&mut g, group, offsets),
            },
        };
        drop(g);
        call(wakes);
        result
    }

    /// The group's committed offset of a partition.
    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Option<i64> {
        let handle = self.existing(group)?;
        handle.lock().committed.get(tp).copied()
    }

    /// All of the group's committed offsets.
    pub(crate) fn committed_offsets(&self, group: &str) -> BTreeMap<TopicPartition, i64> {
        self.existing(group)
            .map(|handle| handle.lock().committed.clone())
            .unwrap_or_default()
    }

    /// Groups with committed offsets or live members, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        let handles: Vec<(String, Arc<Mutex<Group>>)> = self
            .groups
            .lock()
            .iter()
            .map(|(name, g)| (name.clone(), Arc::clone(g)))
            .collect();
        let now = self.clock.now_ms();
        let mut names = Vec::new();
        for (name, handle) in handles {
            let mut g = handle.lock();
            let wakes = g.expire(now);
            let listed = !g.members.is_empty() || !g.committed.is_empty();
            drop(g);
            call(wakes);
            if listed {
                names.push(name);
            }
        }
        names
    }

    /// The group's live members, sorted (expired members are removed first).
    pub(crate) fn live_members(&self, group: &str) -> Vec<String> {
        let Some(handle) = self.existing(group) else {
            return Vec::new();
        };
        let mut g = handle.lock();
        let wakes = g.expire(self.clock.now_ms());
        let members = g.members.keys().cloned().collect();
        drop(g);
        call(wakes);
        members
    }

    /// Sets committed offsets of a group that has no live members (Kafka's
    /// `kafka-consumer-groups --reset-offsets`, which refuses active groups too); partitions
    /// not named keep their offsets.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members, [`Error::InvalidConfig`] for an empty group id, [`Error::NegativeOffset`] for a
    /// negative offset; [`Error::InvalidTopicName`]; [`Error::Io`] (nothing changed).
    pub(crate) fn reset_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        if group.is_empty() {
            return Err(empty("group.id"));
        }
        for ((topic, _), _) in offsets {
            crate::layout::validate_topic_name(topic)?;
        }
        let handle = self.group(group);
        let mut g = handle.lock();
        let wakes = g.expire(self.clock.now_ms());
        let result = if g.members.is_empty() {
            self.write_offsets(&mut g, group, offsets)
        } else {
            Err(Error::GroupNotEmpty {
                group: group.to_owned(),
                operation: "resetting offsets",
            })
        };
        drop(g);
        call(wakes);
        result
    }

    /// Deletes a group's committed offsets (its file) when it has no live members: Kafka's
    /// `kafka-consumer-groups --delete`. A group without offsets is no error.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members; [`Error::Io`].
    pub(crate) fn delete_group(&self, group: &str) -> Result<()> {
        let Some(handle) = self.existing(group) else {
            return Ok(());
        };
        let mut g = handle.lock();
        let wakes = g.expire(self.clock.now_ms());
        let result = if !g.members.is_empty() {
            Err(Error::GroupNotEmpty {
                group: group.to_owned(),
                operation: "deleting it",
            })
        } else if g.committed.is_empty() {
            Ok(())
        } else if let Err(e) = self.not_closed() {
            Err(e)
        } else {
            offsets::remove(&*self.disk, &self.dir, group).map(|()| g.committed.clear())
        };
        drop(g);
        call(wakes);
        result
    }

    /// Refuses every later write: the store closed and released its lock.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// [`Error::Closed`] once the store closed.
    fn not_closed(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Asks every group's latest `partitions` callback for its topics' partition counts again
    /// and rebalances the groups where a count changed: call it after a topic is created,
    /// deleted or grows.
    pub(crate) fn metadata_changed(&self) {
        let epoch = self.metadata_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let handles: Vec<Arc<Mutex<Group>>> = self.groups.lock().values().cloned().collect();
        for handle in handles {
            let (partitions, topics) = {
                let g = handle.lock();
                let topics: BTreeSet<String> =
                    g.members.values().flat_map(|m| m.topics.clone()).collect();
                (g.partitions.clone(), topics)
            };
            let Some(partitions) = partitions else {
                continue;
            };
            let counts: Vec<(String, Option<u32>)> = topics
                .into_iter()
                .map(|t| {
                    let n = partitions(&t);
                    (t, n)
                })
                .collect();
            let mut g = handle.lock();
            if g.counts_epoch > epoch {
                // A later call applied fresher counts.
                continue;
            }
            g.counts_epoch = epoch;
            let mut wakes = g.expire(self.clock.now_ms());
            let mut changed = false;
            for (topic, count) in counts {
                let before = match count {
                    Some(n) => g.partition_counts.insert(topic, n),
                    None => g.partition_counts.remove(&topic),
                };
                changed |= before != count;
            }
            if changed && !g.members.is_empty() {
                wakes.extend(g.rebalance());
            }
            drop(g);
            call(wakes);
        }
    }

    /// Merges `offsets` into the group's committed offsets and writes them all; memory changes
    /// only once the file is durable.
    fn write_offsets(
        &self,
        g: &mut Group,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        if let Some(&(_, offset)) = offsets.iter().find(|(_, offset)| *offset < 0) {
            return Err(Error::NegativeOffset { offset });
        }
        let mut updated = g.committed.clone();
        updated.extend(offsets.iter().cloned());
        if updated == g.committed {
            return Ok(());
        }
        self.not_closed()?;
        offsets::write(&*self.disk, &self.dir, group, &updated)?;
        g.committed = updated;
        Ok(())
    }

    /// The group's state, created if new.
    fn group(&self, name: &str) -> Arc<Mutex<Group>> {
        let mut groups = self.groups.lock();
        let group = groups.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Mutex::new(Group {
                name: name.to_owned(),
                ..Group::default()
            }))
        });
        Arc::clone(group)
    }

    /// The group's state if the group was seen.
    fn existing(&self, name: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(name).cloned()
    }

    /// Who owns what in `group`, per live member (test inspection).
    #[cfg(test)]
    pub(crate) fn ownership(&self, group: &str) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        self.existing(group)
            .map(|handle| {
                let g = handle.lock();
                g.members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.owned.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a member could do at a sync now (tests): partitions to release (owned, no longer
    /// targeted) and partitions to take (targeted, owned by no one). `None` for no member.
    #[cfg(test)]
    pub(crate) fn pending(
        &self,
        group: &str,
        member: &str,
    ) -> Option<(BTreeSet<TopicPartition>, BTreeSet<TopicPartition>)> {
        let handle = self.existing(group)?;
        let g = handle.lock();
        let m = g.members.get(member)?;
        let release = m.owned.difference(&m.target).cloned().collect();
        let take = m
            .target
            .iter()
            .filter(|tp| !m.owned.contains(*tp) && !g.owners.contains_key(*tp))
            .cloned()
            .collect();
        Some((release, take))
    }

    /// Checks the group's internal invariants (tests): owner map and owned sets agree, no
    /// partition has two owners, members own and target only partitions of their topics, and
    /// targets are disjoint.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self, group: &str) -> std::result::Result<(), String> {
        let Some(handle) = self.existing(group) else {
            return Ok(());
        };
        let g = handle.lock();
        let mut owners = BTreeMap::new();
        let mut targeted = BTreeSet::new();
        for (id, m) in &g.members {
            for tp in &m.owned {
                if let Some(other) = owners.insert(tp.clone(), id.clone()) {
                    return Err(format!("{tp:?} owned by {other} and {id}"));
                }
                if !m.topics.contains(&tp.0) {
                    return Err(format!("{id} owns {tp:?} of a topic it does not subscribe"));
                }
            }
            for tp in &m.target {
                if !targeted.insert(tp.clone()) {
                    return Err(format!("{tp:?} is in two targets"));
                }
                if !m.topics.contains(&tp.0) {
                    return Err(format!(
                        "{id} targets {tp:?} of a topic it does not subscribe"
                    ));
                }
            }
        }
        if owners != g.owners {
            return Err(format!("owner map {:?} != owned sets {owners:?}", g.owners));
        }
        Ok(())
    }
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("dir", &self.dir)
            .field("groups", &self.groups.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Group {
    /// Removes members whose `max.poll.interval.ms` ran out by `now_ms`, then rebalances if
    /// any went. Returns the wakes to call once the lock is released.
    fn expire(&mut self, now_ms: i64) -> Vec<WakeFn> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now_ms >= m.last_sync_ms.saturating_add(m.max_poll_interval_ms))
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        for id in &expired {
            self.remove_member(id);
        }
        log::info!(
            "group {}: members {expired:?} removed (no poll within max.poll.interval.ms)",
            self.name
        );
        self.rebalance()
    }

    /// Removes a member and frees its partitions; `false` if it was not a member.
    fn remove_member(&mut self, id: &str) -> bool {
        let Some(member) = self.members.remove(id) else {
            return false;
        };
        for tp in &member.owned {
            self.owners.remove(tp);
        }
        if self.members.is_empty() {
            // Nothing will use them, and they may hold the store.
            self.partitions = None;
        }
        true
    }

    /// Recomputes every member's target and starts a new generation.
    fn rebalance(&mut self) -> Vec<WakeFn> {
        self.generation += 1;
        log::info!(
            "group {}: rebalancing to generation {} with {} members",
            self.name,
            self.generation,
            self.members.len()
        );
        if self.members.is_empty() {
            return Vec::new();
        }
        let subscriptions: Subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        // What each member has: what it owns, plus its targets no one owns yet (it may be
        // about to take them).
        let current: Assignment = self
            .members
            .iter()
            .map(|(id, m)| {
                let mut has = m.owned.clone();
                has.extend(
                    m.target
                        .iter()
                        .filter(|tp| !self.owners.contains_key(*tp))
                        .cloned(),
                );
                (id.clone(), has)
            })
            .collect();
        let mut target = self
            .assignor
            .assign(&subscriptions, &self.partition_counts, &current);
        for (id, m) in &mut self.members {
            m.target = target.remove(id).unwrap_or_default();
        }
        self.wakes()
    }

    /// The wakes of members that have partitions to release or to take and were not woken
    /// since their last sync.
    fn wakes(&mut self) -> Vec<WakeFn> {
        let owners = &self.owners;
        self.members
            .values_mut()
            .filter(|m| {
                let releasable = m.owned.iter().any(|tp| !m.target.contains(tp));
                let takeable = m
                    .target
                    .iter()
                    .any(|tp| !m.owned.contains(tp) && !owners.contains_key(tp));
                !m.woken && (releasable || takeable)
            })
            .map(|m| {
                m.woken = true;
                Arc::clone(&m.wake)
            })
            .collect()
    }

    /// A member's sync; `None` if it is not a member.
    fn sync(&mut self, id: &str, now_ms: i64) -> Option<MemberSync> {
        let generation = self.generation;
        let m = self.members.get_mut(id)?;
        m.last_sync_ms = now_ms;
        m.woken = false;
        let revoke = m.owned.difference(&m.target).cloned().collect();
        let mut assign = Vec::new();
        for tp in &m.target {
            if !m.owned.contains(tp) && !self.owners.contains_key(tp) {
                self.owners.insert(tp.clone(), id.to_owned());
                assign.push(tp.clone());
            }
        }
        m.owned.extend(assign.iter().cloned());
        Some(MemberSync {
            generation,
            revoke,
            assign,
            owned: m.owned.iter().cloned().collect(),
        })
    }
}

fn unknown_member(group: &str, member: &str) -> Error {
    Error::UnknownMember {
        group: group.to_owned(),
        member: member.to_owned(),
    }
}

/// Calls wakes (with no lock held).
fn call(wakes: Vec<WakeFn>) {
    for wake in wakes {
        wake();
    }
}

/// The error for an empty group or member id.
fn empty(key: &'static str) -> Error {
    Error::InvalidConfig {
        key,
        value: String::new(),
        reason: "must not be empty".into(),
    }
}
