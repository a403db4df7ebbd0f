//! The group coordinator: members of consumer groups, which partition each owns, rebalances,
//! heartbeats and committed offsets, shared by every process that opens the store.
//!
//! There is no coordinator process: each process's `Coordinator` reads and replaces the
//! group's files under the store's groups lock ([`GROUPS_LOCK_FILE`], an OS file lock held
//! for the few microseconds of one step, so a process that dies releases it at once). A group
//! has two files beside the partitions:
//!
//! * `topiclog-group-<id>.members` ([`super::state`]): generation, assignor, partition
//!   counts, and per member its process, timers, subscription, target and owned partitions.
//!   Soft state, replaced atomically without fsync: a power loss kills every member anyway.
//! * `topiclog-group-<id>.offsets` ([`super::offsets`]): committed offsets, replaced atomically
//!   and durably.
//!
//! Every step (join, sync, release, leave, heartbeat, commit) is: take the lock, read the
//! members file, remove expired members, change the state, write the file if it changed,
//! release the lock. A step is one atomic file replacement (a commit: one durable replacement
//! of the offsets file, checked against the members file under the same lock), so a process
//! that dies at any moment leaves the files as they were before or after its step, never in
//! between; its members stay listed until their session timeout, then lose their partitions.
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
//! ## Liveness
//!
//! A member is removed, and its partitions freed, when its process has not heartbeaten within
//! its `session.timeout.ms` (each process heartbeats its members every
//! `heartbeat.interval.ms` from a background thread, so a process that dies, even by SIGKILL,
//! or is paused, stops), or when it has not polled within its `max.poll.interval.ms` (Kafka's
//! consumer leaves the group when its poll timer expires). Times are the store's [`Clock`].
//! Removal happens at the next step of any process that touches the group, so a removed
//! member learns it at its own next step ([`Error::UnknownMember`]) and its commits are
//! refused from that moment: a paused process that resumes cannot commit for partitions it
//! lost.
//!
//! Wakes: a member blocked in poll is woken (its `wake` callback, never called with a lock
//! held) when a step of this process gives it partitions to take or release; members of other
//! processes learn it at their next heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Clock;
use crate::disk::Disk;
use crate::error::{Error, Result};
use crate::layout::GROUPS_LOCK_FILE;

use super::assignor::{Assignment, Assignor, Subscriptions};
use super::offsets::{self, Offsets};
use super::state::{self, GroupState, MemberState};
use super::{GroupMember, TopicPartition};

/// A topic's current partition count, `None` for no such topic. Given at
/// [`Coordinator::join`]; the coordinator keeps the latest joiner's and calls it again from
/// [`Coordinator::metadata_changed`], so it should hold the store weakly (a strong reference
/// from the store's coordinator back to the store is a cycle).
pub(crate) type PartitionsFn = Arc<dyn Fn(&str) -> Option<u32> + Send + Sync>;

/// Wakes a member blocked in poll: called when it has partitions to release or to take.
pub(crate) type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// How long a step waits for the groups lock before giving up ([`Error::Locked`]): far longer
/// than any step holds it, unless its holder is stopped (`SIGSTOP`, a debugger).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A member's request to join a group: its consumer's settings and callbacks.
#[derive(Clone)]
pub(crate) struct JoinRequest {
    /// The member id (`group.instance.id`, or one made up per consumer).
    pub member: String,
    pub topics: Vec<String>,
    pub assignor: Assignor,
    pub max_poll_interval_ms: i64,
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
    /// The consumer's `client.id`, shown by `describe-group`.
    pub client_id: String,
    /// Partition counts by the joining process's view of the store.
    pub partitions: PartitionsFn,
    pub wake: WakeFn,
}

/// The coordinator of a store's consumer groups, one per open store that may write group
/// files. `Send + Sync`.
pub(crate) struct Coordinator {
    shared: Arc<Shared>,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
    /// Tests that move a manual clock turn the heartbeat thread off: it would expire members
    /// at moments the test does not choose.
    #[cfg(test)]
    pub(crate) heartbeats: bool,
}

struct Shared {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    /// This process's members, per group.
    local: Mutex<BTreeMap<String, LocalGroup>>,
    /// Serializes this process's steps before they take the file lock.
    serial: Mutex<()>,
    /// Bumped by every [`Coordinator::metadata_changed`]: partition counts computed before a
    /// bump may be stale.
    metadata_epoch: AtomicU64,
    /// Set when the store closes: nothing is written any more.
    closed: AtomicBool,
    /// Stops the heartbeat thread.
    stop: (Mutex<bool>, Condvar),
    pid: u32,
    host: String,
}

/// A group's members in this process.
#[derive(Default)]
struct LocalGroup {
    members: BTreeMap<String, LocalMember>,
    /// The latest joiner's partition counts.
    partitions: Option<PartitionsFn>,
}

struct LocalMember {
    wake: WakeFn,
    /// Woken since its last sync: one wake is enough until it syncs.
    woken: bool,
    heartbeat_interval_ms: i64,
}

impl Coordinator {
    /// Opens the coordinator of the store in `store_dir`, checking every group's committed
    /// offsets (and removing temporary files a crash left, under the groups lock).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a group offsets file that does not parse; [`Error::Io`].
    pub(crate) fn open(
        disk: Arc<dyn Disk>,
        store_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Coordinator> {
        {
            let _lock = GroupsLock::acquire(store_dir)?;
            offsets::load_all(&*disk, store_dir)?;
        }
        Ok(Coordinator {
            shared: Arc::new(Shared {
                disk,
                dir: store_dir.to_path_buf(),
                clock,
                local: Mutex::new(BTreeMap::new()),
                serial: Mutex::new(()),
                metadata_epoch: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                stop: (Mutex::new(false), Condvar::new()),
                pid: std::process::id(),
                host: host_name(),
            }),
            heartbeat: Mutex::new(None),
            #[cfg(test)]
            heartbeats: true,
        })
    }

    /// Adds a member to `group` and rebalances. The first member of a group chooses its
    /// assignor; later members must use the same one (Kafka's `INCONSISTENT_GROUP_PROTOCOL`).
    /// Topics without a partition count are ignored until
    /// [`metadata_changed`](Self::metadata_changed) finds them. The join counts as the
    /// member's first sync and heartbeat. A member id listed by another process (or an
    /// earlier life of this one) replaces that member, fencing it (Kafka's static
    /// membership).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty group or member id or a timer below 1;
    /// [`Error::MemberExists`] for a member id already in the group in this process;
    /// [`Error::InconsistentAssignor`]; [`Error::InvalidTopicName`]; [`Error::Io`].
    pub(crate) fn join(&self, group: &str, request: JoinRequest) -> Result<()> {
        if group.is_empty() {
            return Err(empty("group.id"));
        }
        if request.member.is_empty() {
            return Err(empty("group.instance.id"));
        }
        for (key, value) in [
            ("max.poll.interval.ms", request.max_poll_interval_ms),
            ("session.timeout.ms", request.session_timeout_ms),
            ("heartbeat.interval.ms", request.heartbeat_interval_ms),
        ] {
            if value < 1 {
                return Err(Error::InvalidConfig {
                    key,
                    value: value.to_string(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        for topic in &request.topics {
            crate::layout::validate_topic_name(topic)?;
        }
        let s = &self.shared;
        // Counts are computed with no lock held (the callback may call back in).
        let counts: Vec<(String, Option<u32>)> = request
            .topics
            .iter()
            .map(|t| (t.clone(), (request.partitions)(t)))
            .collect();
        let member = request.member.clone();
        let (result, wakes) = s.step(group, None, |g, now| {
            let here = s
                .local
                .lock()
                .get(group)
                .is_some_and(|l| l.members.contains_key(&member));
            if g.members.contains_key(&member) {
                if here {
                    return Err(Error::MemberExists {
                        group: group.to_owned(),
                        member: member.clone(),
                    });
                }
                g.members.remove(&member);
                log::info!("group {group}: member {member} joins again, replacing its old self");
            }
            if g.members.is_empty() {
                g.assignor = request.assignor;
            } else if g.assignor != request.assignor {
                return Err(Error::InconsistentAssignor {
                    group: group.to_owned(),
                    current: g.assignor,
                    requested: request.assignor,
                });
            }
            for (topic, count) in counts {
                if let Some(n) = count {
                    // Another process may know more partitions than this one's view.
                    let known = g.partition_counts.entry(topic).or_insert(n);
                    *known = (*known).max(n);
                }
            }
            g.members.insert(
                member.clone(),
                MemberState {
                    client_id: request.client_id.clone(),
                    pid: s.pid,
                    host: s.host.clone(),
                    topics: request.topics.iter().cloned().collect(),
                    session_timeout_ms: request.session_timeout_ms,
                    max_poll_interval_ms: request.max_poll_interval_ms,
                    last_heartbeat_ms: now,
                    last_sync_ms: now,
                    target: BTreeSet::new(),
                    owned: BTreeSet::new(),
                },
            );
            // Registered before the wakes are computed: the joiner may have partitions to take.
            let mut local = s.local.lock();
            let entry = local.entry(group.to_owned()).or_default();
            entry.partitions = Some(request.partitions.clone());
            entry.members.insert(
                member.clone(),
                LocalMember {
                    wake: request.wake.clone(),
                    woken: false,
                    heartbeat_interval_ms: request.heartbeat_interval_ms,
                },
            );
            drop(local);
            rebalance(group, g);
            Ok(())
        })?;
        call(wakes);
        if result.is_ok() {
            self.start_heartbeats();
        }
        result
    }

    /// Removes `member` from `group` (nothing if it is not a member) and rebalances: its
    /// partitions are free at once. Kafka's `LeaveGroup`.
    pub(crate) fn leave(&self, group: &str, member: &str) {
        let s = &self.shared;
        s.forget(group, member);
        match s.step(group, None, |g, _| {
            if g.members.remove(member).is_some() {
                rebalance(group, g);
            }
        }) {
            Ok(((), wakes)) => call(wakes),
            Err(e) => log::warn!("group {group}: member {member} could not leave: {e}"),
        }
    }

    /// The member's poll: removes expired members of the group (rebalancing), restarts this
    /// member's `max.poll.interval.ms`, hands it the partitions of its target that no one
    /// owns, and says what it must release.
    ///
    /// # Errors
    /// [`Error::UnknownMember`] if it left or expired: it must join again; [`Error::Io`].
    pub(crate) fn sync(&self, group: &str, member: &str) -> Result<MemberSync> {
        let s = &self.shared;
        let (result, wakes) = s.step(group, Some(member), |g, now| {
            let generation = g.generation;
            let owners = g.owners();
            let m = g
                .members
                .get_mut(member)
                .ok_or_else(|| unknown_member(group, member))?;
            m.last_sync_ms = now;
            m.last_heartbeat_ms = now;
            let revoke = m.owned.difference(&m.target).cloned().collect();
            let assign: Vec<TopicPartition> = m
                .target
                .iter()
                .filter(|tp| !m.owned.contains(*tp) && !owners.contains_key(*tp))
                .cloned()
                .collect();
            m.owned.extend(assign.iter().cloned());
            Ok(MemberSync {
                generation,
                revoke,
                assign,
                owned: m.owned.iter().cloned().collect(),
            })
        })?;
        call(wakes);
        result
    }

    /// Gives up `partitions` the member owns (others are ignored), so their new owners can
    /// take them at their next sync.
    pub(crate) fn release(&self, group: &str, member: &str, partitions: &[TopicPartition]) {
        match self.shared.step(group, None, |g, _| {
            if let Some(m) = g.members.get_mut(member) {
                for tp in partitions {
                    m.owned.remove(tp);
                }
            }
        }) {
            Ok(((), wakes)) => call(wakes),
            Err(e) => log::warn!("group {group}: member {member} could not release: {e}"),
        }
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
        let s = &self.shared;
        let (result, wakes) = s.step(group, None, |g, _| {
            match not_owner(g, group, member, offsets) {
                Some(e) => Err(e),
                None => s.write_offsets(group, offsets),
            }
        })?;
        call(wakes);
        result
    }

    /// Checks that `member` of `group` exists and owns every partition of `offsets` (what a
    /// commit checks), changing nothing: a transactional producer's
    /// `send_offsets_to_transaction` (KIP-447: a member that lost a partition cannot commit
    /// for it).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub(crate) fn check_owner(
        &self,
        group: &str,
        member: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let (result, wakes) = self.shared.step(group, None, |g, _| {
            match not_owner(g, group, member, offsets) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })?;
        call(wakes);
        result
    }

    /// A transaction's commit of `offsets` for `member` of `group`, in one step under the
    /// groups lock: checks the member owns every partition (as [`commit`](Self::commit)),
    /// runs `decide` (which makes the transaction's commit durable), then writes the offsets.
    /// Nothing is written if the check or `decide` fails. No rebalance can slip between the
    /// check and the offsets: a new owner reads them once it gets the partition.
    ///
    /// # Errors
    /// As [`commit`](Self::commit), and `decide`'s.
    pub(crate) fn commit_transactional(
        &self,
        group: &str,
        member: &str,
        offsets: &[(TopicPartition, i64)],
        decide: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let s = &self.shared;
        let (result, wakes) = s.step(group, None, |g, _| {
            match not_owner(g, group, member, offsets) {
                Some(e) => Err(e),
                None => decide().and_then(|()| s.write_offsets(group, offsets)),
            }
        })?;
        call(wakes);
        result
    }

    /// Writes `offsets` for `group` with no member check: a transaction that decided to
    /// commit before a crash, completed by the next open.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn commit_recovered(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let s = &self.shared;
        let (result, wakes) = s.step(group, None, |_, _| s.write_offsets(group, offsets))?;
        call(wakes);
        result
    }

    /// The group's committed offset of a partition.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the offsets file is damaged; [`Error::Io`].
    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<i64>> {
        Ok(self.committed_offsets(group)?.get(tp).copied())
    }

    /// All of the group's committed offsets (read from its file: other processes commit too).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the offsets file is damaged; [`Error::Io`].
    pub(crate) fn committed_offsets(&self, group: &str) -> Result<Offsets> {
        let s = &self.shared;
        Ok(offsets::read(&*s.disk, &s.dir, group)?.unwrap_or_default())
    }

    /// Groups with committed offsets or live members, sorted.
    ///
    /// # Errors
    /// [`Error::Io`] listing the store directory.
    pub(crate) fn groups(&self) -> Result<Vec<String>> {
        let s = &self.shared;
        let mut names = BTreeSet::new();
        for group in offsets::list(&*s.disk, &s.dir)? {
            names.insert(group);
        }
        for group in state::list(&*s.disk, &s.dir)? {
            if !self.live_members(&group)?.is_empty() {
                names.insert(group);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The group's live members, sorted (expired members are removed first).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn live_members(&self, group: &str) -> Result<Vec<String>> {
        Ok(self
            .describe(group)?
            .into_iter()
            .map(|m| m.member_id)
            .collect())
    }

    /// The group's live members with their processes and partitions, sorted by member id.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn describe(&self, group: &str) -> Result<Vec<GroupMember>> {
        let (members, wakes) = self.shared.step(group, None, |g, _| describe(g))?;
        call(wakes);
        Ok(members)
    }

    /// Sets committed offsets of a group that has no live members (Kafka's
    /// `kafka-consumer-groups --reset-offsets`, which refuses active groups too); partitions
    /// not named keep their offsets.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members, [`Error::InvalidConfig`] for an
    /// empty group id, [`Error::NegativeOffset`] for a negative offset;
    /// [`Error::InvalidTopicName`]; [`Error::Io`] (nothing changed).
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
        let s = &self.shared;
        let (result, wakes) = s.step(group, None, |g, _| {
            if g.members.is_empty() {
                s.write_offsets(group, offsets)
            } else {
                Err(Error::GroupNotEmpty {
                    group: group.to_owned(),
                    operation: "resetting offsets",
                })
            }
        })?;
        call(wakes);
        result
    }

    /// Deletes a group's committed offsets (its file) when it has no live members: Kafka's
    /// `kafka-consumer-groups --delete`. A group without offsets is no error.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members; [`Error::Io`].
    pub(crate) fn delete_group(&self, group: &str) -> Result<()> {
        let s = &self.shared;
        let (result, wakes) = s.step(group, None, |g, _| {
            if !g.members.is_empty() {
                return Err(Error::GroupNotEmpty {
                    group: group.to_owned(),
                    operation: "deleting it",
                });
            }
            s.not_closed()?;
            match offsets::read(&*s.disk, &s.dir, group)? {
                Some(_) => offsets::remove(&*s.disk, &s.dir, group),
                None => Ok(()),
            }
        })?;
        call(wakes);
        result
    }

    /// Refuses every later write and stops heartbeating: the store closed.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.stop_heartbeats();
    }

    /// Asks this process's latest `partitions` callback of each group for its topics'
    /// partition counts again and rebalances the groups where a count changed: call it after a
    /// topic is created, deleted or grows.
    pub(crate) fn metadata_changed(&self) {
        let s = &self.shared;
        let epoch = s.metadata_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let groups: Vec<(String, Option<PartitionsFn>)> = s
            .local
            .lock()
            .iter()
            .map(|(name, g)| (name.clone(), g.partitions.clone()))
            .collect();
        for (group, partitions) in groups {
            let Some(partitions) = partitions else {
                continue;
            };
            // The topics come from the file: members of other processes subscribe too.
            let topics: BTreeSet<String> = match s.step(&group, None, |g, _| {
                g.members
                    .values()
                    .flat_map(|m| m.topics.iter().cloned())
                    .collect()
            }) {
                Ok((topics, wakes)) => {
                    call(wakes);
                    topics
                }
                Err(e) => {
                    log::warn!("group {group}: could not read its members: {e}");
                    continue;
                }
            };
            let counts: Vec<(String, Option<u32>)> = topics
                .into_iter()
                .map(|t| {
                    let n = partitions(&t);
                    (t, n)
                })
                .collect();
            if s.metadata_epoch.load(Ordering::SeqCst) != epoch {
                // A later call applies fresher counts.
                continue;
            }
            match s.step(&group, None, |g, _| {
                let mut changed = false;
                for (topic, count) in counts {
                    let before = match count {
                        Some(n) => g.partition_counts.insert(topic, n),
                        None => g.partition_counts.remove(&topic),
                    };
                    changed |= before != count;
                }
                if changed && !g.members.is_empty() {
                    rebalance(&group, g);
                }
            }) {
                Ok(((), wakes)) => call(wakes),
                Err(e) => log::warn!("group {group}: could not apply new partition counts: {e}"),
            }
        }
    }

    /// Starts the heartbeat thread if it is not running, or has it look at the members again.
    fn start_heartbeats(&self) {
        #[cfg(test)]
        if !self.heartbeats {
            return;
        }
        let mut slot = self.heartbeat.lock();
        let (stopped, wake) = &self.shared.stop;
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            wake.notify_all();
            return;
        }
        *stopped.lock() = false;
        let shared = Arc::downgrade(&self.shared);
        match std::thread::Builder::new()
            .name("topiclog-heartbeat".to_owned())
            .spawn(move || heartbeat_loop(&shared))
        {
            Ok(handle) => *slot = Some(handle),
            Err(e) => log::error!("could not start the group heartbeat thread: {e}"),
        }
    }

    fn stop_heartbeats(&self) {
        let handle = self.heartbeat.lock().take();
        {
            let (stopped, wake) = &self.shared.stop;
            *stopped.lock() = true;
            wake.notify_all();
        }
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// Who owns what in `group`, per live member (test inspection).
    #[cfg(test)]
    pub(crate) fn ownership(&self, group: &str) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        state::load(&*self.shared.disk, &self.shared.dir, group)
            .map(|g| {
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
        let g = state::load(&*self.shared.disk, &self.shared.dir, group).ok()?;
        let owners = g.owners();
        let m = g.members.get(member)?;
        let release = m.owned.difference(&m.target).cloned().collect();
        let take = m
            .target
            .iter()
            .filter(|tp| !m.owned.contains(*tp) && !owners.contains_key(*tp))
            .cloned()
            .collect();
        Some((release, take))
    }

    /// Checks the group's invariants (tests): no partition has two owners, members own and
    /// target only partitions of their topics, and targets are disjoint.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self, group: &str) -> std::result::Result<(), String> {
        let g =
            state::load(&*self.shared.disk, &self.shared.dir, group).map_err(|e| e.to_string())?;
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
        Ok(())
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("dir", &self.shared.dir)
            .field(
                "local_groups",
                &self.shared.local.lock().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// One step on `group`'s shared state: under the process's and the file's lock, loads the
    /// members file, removes expired members (rebalancing), runs `op`, and writes the file if
    /// the state changed. Returns `op`'s result and the wakes to call, with no lock held, for
    /// this process's members that now have partitions to take or release.
    ///
    /// `syncing` names a member in its poll now: it is not woken, and may be woken again from
    /// now on.
    fn step<R>(
        &self,
        group: &str,
        syncing: Option<&str>,
        op: impl FnOnce(&mut GroupState, i64) -> R,
    ) -> Result<(R, Vec<WakeFn>)> {
        let _serial = self.serial.lock();
        let _lock = GroupsLock::acquire(&self.dir)?;
        let mut g = state::load(&*self.disk, &self.dir, group)?;
        let before = g.clone();
        let now = self.clock.now_ms();
        expire(group, &mut g, now);
        let result = op(&mut g, now);
        if g != before {
            self.not_closed()?;
            state::save(&*self.disk, &self.dir, group, &g)?;
        }
        Ok((result, self.wakes(group, &g, syncing)))
    }

    /// The wakes of this process's members of `group` that have partitions to release or to
    /// take (or that are gone, to learn it) and were not woken since their last sync.
    fn wakes(&self, group: &str, g: &GroupState, syncing: Option<&str>) -> Vec<WakeFn> {
        let mut local = self.local.lock();
        let Some(lg) = local.get_mut(group) else {
            return Vec::new();
        };
        if let Some(m) = syncing.and_then(|id| lg.members.get_mut(id)) {
            m.woken = false;
        }
        let owners = g.owners();
        lg.members
            .iter_mut()
            .filter(|(id, m)| {
                let due = g.members.get(*id).is_none_or(|s| {
                    s.owned.iter().any(|tp| !s.target.contains(tp))
                        || s.target
                            .iter()
                            .any(|tp| !s.owned.contains(tp) && !owners.contains_key(tp))
                });
                !m.woken && due && Some(id.as_str()) != syncing
            })
            .map(|(_, m)| {
                m.woken = true;
                Arc::clone(&m.wake)
            })
            .collect()
    }

    /// Drops a member from this process's list.
    fn forget(&self, group: &str, member: &str) {
        let mut local = self.local.lock();
        if let Some(g) = local.get_mut(group) {
            g.members.remove(member);
            if g.members.is_empty() {
                local.remove(group);
            }
        }
    }

    /// Merges `offsets` into the group's committed offsets and writes them all, durably.
    fn write_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if let Some(&(_, offset)) = offsets.iter().find(|(_, offset)| *offset < 0) {
            return Err(Error::NegativeOffset { offset });
        }
        let committed = offsets::read(&*self.disk, &self.dir, group)?.unwrap_or_default();
        let mut updated = committed.clone();
        updated.extend(offsets.iter().cloned());
        if updated == committed {
            return Ok(());
        }
        self.not_closed()?;
        offsets::write(&*self.disk, &self.dir, group, &updated)
    }

    /// [`Error::Closed`] once the store closed.
    fn not_closed(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Heartbeats this process's members of every group.
    fn heartbeat_all(&self) -> Beat {
        let groups: Vec<(String, Vec<String>, i64)> = self
            .local
            .lock()
            .iter()
            .map(|(name, g)| {
                let interval = g
                    .members
                    .values()
                    .map(|m| m.heartbeat_interval_ms)
                    .min()
                    .unwrap_or(i64::MAX);
                (name.clone(), g.members.keys().cloned().collect(), interval)
            })
            .collect();
        if groups.is_empty() {
            return Beat::Idle;
        }
        let mut next = i64::MAX;
        for (group, members, interval) in groups {
            next = next.min(interval);
            match self.step(&group, None, |g, now| {
                for id in &members {
                    if let Some(m) = g.members.get_mut(id) {
                        m.last_heartbeat_ms = now;
                    }
                }
            }) {
                Ok(((), wakes)) => call(wakes),
                Err(Error::Closed) => return Beat::Closed,
                Err(e) => log::warn!("group {group}: heartbeat failed: {e}"),
            }
        }
        Beat::Next(Duration::from_millis(
            u64::try_from(next).unwrap_or(u64::MAX),
        ))
    }
}

/// What a heartbeat round found.
enum Beat {
    /// The store closed.
    Closed,
    /// No member in this process: wait for a join.
    Idle,
    /// The next round is due after this long.
    Next(Duration),
}

/// How long the heartbeat thread waits with no member to heartbeat (a join wakes it sooner).
const IDLE_PAUSE: Duration = Duration::from_secs(60);

/// The heartbeat thread: heartbeats this process's members until the store closes or the
/// coordinator is dropped; with no member here, it waits for a join.
fn heartbeat_loop(shared: &Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let pause = match s.heartbeat_all() {
            Beat::Closed => return,
            Beat::Idle => IDLE_PAUSE,
            Beat::Next(pause) => pause,
        };
        let deadline = Instant::now() + pause;
        let (stopped, wake) = &s.stop;
        let mut guard = stopped.lock();
        if !*guard {
            wake.wait_until(&mut guard, deadline);
        }
        if *guard {
            return;
        }
    }
}

/// The group's members as `describe-group` shows them.
/// Why `member` may not commit `offsets` now: it is gone ([`Error::UnknownMember`]) or does
/// not own one of the partitions ([`Error::CommitRejected`]).
fn not_owner(
    g: &GroupState,
    group: &str,
    member: &str,
    offsets: &[(TopicPartition, i64)],
) -> Option<Error> {
    let Some(m) = g.members.get(member) else {
        return Some(unknown_member(group, member));
    };
    let ((topic, partition), _) = offsets.iter().find(|(tp, _)| !m.owned.contains(tp))?;
    Some(Error::CommitRejected {
        group: group.to_owned(),
        member: member.to_owned(),
        topic: topic.clone(),
        partition: *partition,
    })
}

pub(crate) fn describe(g: &GroupState) -> Vec<GroupMember> {
    g.members
        .iter()
        .map(|(id, m)| GroupMember {
            member_id: id.clone(),
            client_id: m.client_id.clone(),
            pid: m.pid,
            host: m.host.clone(),
            partitions: m.owned.iter().cloned().collect(),
        })
        .collect()
}

/// Removes members whose session or poll timer ran out by `now_ms`, then rebalances if any
/// went.
pub(crate) fn expire(group: &str, g: &mut GroupState, now_ms: i64) {
    let expired: Vec<(String, &'static str)> = g
        .members
        .iter()
        .filter_map(|(id, m)| m.expired(now_ms).map(|why| (id.clone(), why)))
        .collect();
    if expired.is_empty() {
        return;
    }
    for (id, why) in &expired {
        g.members.remove(id);
        log::info!("group {group}: member {id} removed ({why})");
    }
    rebalance(group, g);
}

/// Recomputes every member's target and starts a new generation.
fn rebalance(group: &str, g: &mut GroupState) {
    g.generation += 1;
    log::info!(
        "group {group}: rebalancing to generation {} with {} members",
        g.generation,
        g.members.len()
    );
    if g.members.is_empty() {
        return;
    }
    let owners = g.owners();
    let subscriptions: Subscriptions = g
        .members
        .iter()
        .map(|(id, m)| (id.clone(), m.topics.clone()))
        .collect();
    // What each member has: what it owns, plus its targets no one owns yet (it may be about
    // to take them).
    let current: Assignment = g
        .members
        .iter()
        .map(|(id, m)| {
            let mut has = m.owned.clone();
            has.extend(
                m.target
                    .iter()
                    .filter(|tp| !owners.contains_key(*tp))
                    .cloned(),
            );
            (id.clone(), has)
        })
        .collect();
    let mut target = g
        .assignor
        .assign(&subscriptions, &g.partition_counts, &current);
    for (id, m) in &mut g.members {
        m.target = target.remove(id).unwrap_or_default();
    }
}

/// The store's groups lock, held for one step.
struct GroupsLock {
    _file: File,
}

impl GroupsLock {
    fn acquire(dir: &Path) -> Result<GroupsLock> {
        let path = dir.join(GROUPS_LOCK_FILE);
        let wait = crate::lock::Wait {
            timeout: LOCK_TIMEOUT,
            first_pause: Duration::from_micros(50),
            max_pause: Duration::from_millis(5),
        };
        let file = crate::lock::lock_file(&path, &path, wait, |_| {})?;
        Ok(GroupsLock { _file: file })
    }
}

/// This machine's name, for `describe-group`; empty where it cannot be read.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
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
