//! Consumers: Kafka's consuming side, inside the process.
//!
//! A [`Consumer`] reads partitions assigned to it by hand ([`Consumer::assign`]) or by its
//! group ([`Consumer::subscribe`]) and keeps a position in each, the offset of the next record
//! to return. [`Consumer::poll`] returns what
//! is available across its partitions, taking turns so one busy partition cannot starve the
//! others, and otherwise sleeps until an append wakes it or the timeout passes: no busy loop,
//! no sleep-polling (a read-only store, where another process appends, is the exception: it
//! re-reads the files every 50 ms while waiting). Under the durable flush policy a record is
//! published, and so returned, only once it is durable.
//!
//! With a `group.id`, [`Consumer::subscribe`] joins the group: the topic's partitions are shared
//! among its members, [`Consumer::rebalance_events`] says what moved, and
//! [`Consumer::commit`] stores the positions durably in the store, where the next member to own
//! a partition starts. Delivery is at least once: commit after processing.
//!
//! ```
//! use std::time::Duration;
//! use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
//! use topiclog::consumer::RebalanceEvent;
//! use topiclog::{Record, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let jobs = store.create_topic("jobs", TopicConfig::new(2))?;
//! jobs.append_to(0, Record::new(b"resize a.png"))?;
//!
//! let config = ConsumerConfig::builder()
//!     .group_id("workers")
//!     .auto_offset_reset(OffsetReset::Earliest)
//!     .build()?;
//! let mut worker = store.consumer(config)?;
//! worker.subscribe(&["jobs"])?;
//! let records = worker.poll(Duration::from_secs(1))?; // joins, then reads
//! assert_eq!(records[0].value(), Some(&b"resize a.png"[..]));
//! let assigned = vec![("jobs".to_owned(), 0), ("jobs".to_owned(), 1)];
//! assert_eq!(worker.rebalance_events(), [RebalanceEvent::Assigned(assigned)]);
//! worker.commit()?; // processed: the group resumes after it
//! assert_eq!(store.committed_offsets("workers")?[&("jobs".to_owned(), 0)], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod config;
pub(crate) mod files;

pub(crate) use config::{ConsumerConfig, IsolationLevel, OffsetReset};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::group::Coordinator;
pub use crate::group::GroupMember;
use crate::group::coordinator::JoinRequest;
use crate::partition::watch::Signal;
use crate::partition::{LogRecord, Partition, ReadOptions, Reader};

/// How often a consumer of a read-only store re-reads the files while it waits, where no
/// file-change notification wakes it (the writer is another process).
const READ_ONLY_REFRESH: Duration = Duration::from_millis(50);

/// How often it re-reads them anyway with notification: a safety net for lost events.
const NOTIFIED_REFRESH: Duration = Duration::from_secs(1);

/// A topic and a partition number.
pub type TopicPartition = (String, u32);

/// What a consumer needs from the place it reads from (a store): its group coordinator and
/// its partitions. A trait, so this module does not depend on the store's, which depends on
/// this one to make consumers.
pub(crate) trait Source: Send + Sync {
    /// The group coordinator; `None` where groups are not kept (a read-only store).
    fn coordinator(&self) -> Option<&Arc<Coordinator>>;

    /// Partition `number` of `topic`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`].
    fn partition(&self, topic: &str, number: u32) -> Result<Arc<Partition>>;

    /// How many partitions `topic` has; `None` for an unknown topic.
    fn partition_count(&self, topic: &str) -> Option<u32>;

    /// Picks up topics and partitions another process created, if the registry changed
    /// (read-only and consumer stores); whether anything changed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged registry; errors opening a new partition.
    fn refresh_if_changed(&self) -> Result<bool>;

    /// The store's directory.
    fn dir(&self) -> &std::path::Path;

    /// A group's committed offsets, as its file holds them now.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged offsets file; [`Error::Io`].
    fn committed_offsets(&self, group: &str) -> Result<crate::group::offsets::Offsets>;
}

/// A change of a group member's partitions, as [`Consumer::rebalance_events`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceEvent {
    /// The group moved these partitions to other members. The consumer reads them no more but
    /// still owns them until its next `poll`: commit what was processed of them now (Kafka's
    /// `onPartitionsRevoked`). With auto-commit on, the next `poll` commits their positions
    /// before letting them go.
    Revoked(Vec<TopicPartition>),
    /// The consumer now owns these partitions; each starts at the group's committed offset, or
    /// where `auto.offset.reset` says (Kafka's `onPartitionsAssigned`).
    Assigned(Vec<TopicPartition>),
    /// The consumer was removed from the group (it did not poll within
    /// `max.poll.interval.ms`) and lost these partitions without a chance to commit; it has
    /// joined again (Kafka's `onPartitionsLost`).
    Lost(Vec<TopicPartition>),
}

impl fmt::Display for RebalanceEvent {
    /// `revoked t-0, t-1` (or `assigned`, `lost`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, partitions) = match self {
            RebalanceEvent::Revoked(p) => ("revoked", p),
            RebalanceEvent::Assigned(p) => ("assigned", p),
            RebalanceEvent::Lost(p) => ("lost", p),
        };
        f.write_str(what)?;
        for (i, tp) in partitions.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}-{}", tp.0, tp.1)?;
        }
        Ok(())
    }
}

/// A consumer's place in its group.
#[derive(Debug)]
struct Membership {
    coordinator: Arc<Coordinator>,
    group: String,
    member: String,
    /// The group's generation at the member's last sync.
    generation: u64,
    topics: Vec<String>,
    events: Vec<RebalanceEvent>,
}

/// A consumer's place in its group (Kafka's `ConsumerGroupMetadata`), from
/// [`Consumer::group_metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupMetadata {
    group_id: String,
    generation_id: u64,
    member_id: String,
}

impl ConsumerGroupMetadata {
    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The group's generation at the member's last sync.
    pub fn generation_id(&self) -> u64 {
        self.generation_id
    }

    /// The member id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
}

/// A record a consumer returned, with where it came from.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    topic: Arc<str>,
    partition: u32,
    record: LogRecord,
}

impl ConsumerRecord {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record (offset, timestamp, key, value, headers).
    pub fn record(&self) -> &LogRecord {
        &self.record
    }

    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.record.offset()
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }

    /// The record's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key()
    }

    /// The record's value (`None` for a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.record.value()
    }
}

/// One assigned partition.
#[derive(Debug)]
struct Assigned {
    topic: Arc<str>,
    number: u32,
    partition: Arc<Partition>,
    /// The next offset to return; `None` until first needed (then the reset policy decides).
    position: Option<i64>,
    /// Revoked by the group: not read any more, let go at the next poll.
    revoked: bool,
    /// Paused by the application: kept, but not fetched from until resumed.
    paused: bool,
    /// A read-only store's partition: when its files were last re-read, and whether the last
    /// read reached the end of what was known (see [`Consumer::refresh_due`]).
    refreshed: Option<Instant>,
    drained: bool,
    /// The reader the last poll left off with, kept while the position follows it: a
    /// consumer working through a partition reads on from the bytes it already holds instead
    /// of finding and reading them again each poll.
    reader: Option<Reader>,
}

/// Interrupts a consumer's blocking [`poll`](Consumer::poll) from another thread (or a signal
/// handler's thread): Kafka's `wakeup()`. `Send + Sync + Clone`; get one with
/// [`Consumer::waker`].
///
/// ```
/// use std::time::Duration;
/// use topiclog::config::{ConsumerConfig, TopicConfig};
/// use topiclog::{Error, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("t", TopicConfig::new(1))?;
/// let mut consumer = store.consumer(ConsumerConfig::default())?;
/// consumer.assign(&[("t", 0)])?;
/// let waker = consumer.waker();
/// std::thread::spawn(move || waker.wakeup());
/// // Returns at once when woken, instead of after an hour.
/// assert!(matches!(consumer.poll(Duration::from_secs(3600)), Err(Error::Wakeup)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Waker {
    signal: Arc<Signal>,
    woken: Arc<std::sync::atomic::AtomicBool>,
}

impl Waker {
    /// Makes the consumer's current `poll` return [`Error::Wakeup`] at once, or its next one
    /// if none is running. One wakeup ends one poll.
    pub fn wakeup(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.signal.fire();
    }
}

/// Reads records from partitions of a [`Store`](crate::Store), by hand-made assignment.
/// `Send`; one thread polls it at a time, as with Kafka's consumer.
///
/// ```
/// use std::time::Duration;
/// use topiclog::{Store, record::Record};
/// use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let events = store.create_topic("events", TopicConfig::new(2))?;
/// events.append_to(1, Record::new(b"hello"))?;
///
/// let config = ConsumerConfig::builder().auto_offset_reset(OffsetReset::Earliest).build()?;
/// let mut consumer = store.consumer(config)?;
/// consumer.assign(&[("events", 0), ("events", 1)])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].value(), Some(&b"hello"[..]));
/// assert_eq!(consumer.position("events", 1)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    /// The store it reads from; the consumer does not keep it open.
    source: Weak<dyn Source>,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    signal: Arc<Signal>,
    /// Which partition the next poll starts with (turns, for fairness).
    next_turn: usize,
    read_only: bool,
    membership: Option<Membership>,
    /// When auto-commit last committed.
    last_auto_commit: Instant,
    /// Set by a [`Waker`]; the next poll check clears it and returns [`Error::Wakeup`].
    woken: Arc<std::sync::atomic::AtomicBool>,
    /// A read-only store's consumer: file-change notification of its partitions' directories
    /// (`None` until first needed, or where the platform has none).
    files: Option<files::FileWatch>,
    /// Whether `files` watches every directory of the current assignment.
    files_complete: bool,
    /// Bumped whenever the assignment changes, and the value `files` was set for.
    assignment_version: (u64, u64),
}

impl Consumer {
    pub(crate) fn new(
        source: Weak<dyn Source>,
        config: ConsumerConfig,
        read_only: bool,
    ) -> Consumer {
        Consumer {
            source,
            config,
            assigned: Vec::new(),
            signal: Signal::new(),
            next_turn: 0,
            read_only,
            membership: None,
            last_auto_commit: Instant::now(),
            woken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            files: None,
            files_complete: false,
            assignment_version: (1, 0),
        }
    }

    /// The group coordinator, for a consumer with a `group.id` on a writable store.
    fn coordinator(&self) -> Result<(Arc<Coordinator>, String)> {
        let group = self.config.group_id.clone().ok_or(Error::NoGroupId {
            operation: "group membership",
        })?;
        let source = self.source.upgrade().ok_or(Error::Closed)?;
        let coordinator = source.coordinator().cloned().ok_or(Error::ReadOnly)?;
        Ok((coordinator, group))
    }

    /// Joins the consumer's group (`group.id`) subscribed to `topics`: from now on the group
    /// decides which of their partitions this consumer reads, and rebalances when members
    /// join, leave, or stop polling for `max.poll.interval.ms`. Partitions arrive at the next
    /// [`poll`](Consumer::poll); see [`rebalance_events`](Consumer::rebalance_events).
    /// Replaces a hand-made assignment or an earlier subscription.
    ///
    /// # Errors
    /// [`Error::NoGroupId`] without a `group.id`, [`Error::MemberExists`] for a member id already in the group
    /// or another assignor than the group's; [`Error::ReadOnly`] on a read-only store.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let (coordinator, group) = self.coordinator()?;
        self.unsubscribe();
        let _ = self.assign(&[]);
        static MEMBERS: AtomicU64 = AtomicU64::new(0);
        let member = self.config.member_id.clone().unwrap_or_else(|| {
            let n = MEMBERS.fetch_add(1, Ordering::Relaxed);
            format!("consumer-{}-{n}", std::process::id())
        });
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        join(
            &coordinator,
            &group,
            &member,
            &topics,
            &self.config,
            &self.source,
            &self.signal,
        )?;
        self.membership = Some(Membership {
            coordinator,
            group,
            member,
            generation: 0,
            topics,
            events: Vec::new(),
        });
        Ok(())
    }

    /// Leaves the group (its partitions go to the other members at once), committing the
    /// positions first when auto-commit is on. Nothing if not subscribed.
    pub fn unsubscribe(&mut self) {
        if self.membership.is_none() {
            return;
        }
        if self.config.enable_auto_commit {
            let _ = self.commit();
        }
        if let Some(m) = self.membership.take() {
            m.coordinator.leave(&m.group, &m.member);
        }
        self.assignment_version.0 += 1;
        for a in self.assigned.drain(..) {
            a.partition.unwatch(&self.signal);
        }
    }

    /// The member id, while subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member.as_str())
    }

    /// The consumer's group, generation and member id, while subscribed (Kafka's
    /// `groupMetadata()`): what a transactional producer's
    /// [`send_offsets_to_transaction`](crate::TransactionalProducer::send_offsets_to_transaction)
    /// checks, so that a member that lost a partition cannot commit for it.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.membership.as_ref().map(|m| ConsumerGroupMetadata {
            group_id: m.group.clone(),
            generation_id: m.generation,
            member_id: m.member.clone(),
        })
    }

    /// The rebalance events since the last call (oldest first). A `poll` that meets a
    /// revocation returns at once, so the caller can commit before the partitions go.
    pub fn rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        self.membership
            .as_mut()
            .map(|m| std::mem::take(&mut m.events))
            .unwrap_or_default()
    }

    /// Commits the consumed positions of every owned partition (Kafka's `commitSync`):
    /// durably, before it returns. Delivery is at least once: records returned but not yet
    /// processed when the consumer dies are read again by whoever takes the partition; commit
    /// after processing (and make processing idempotent, or store the offsets with the
    /// results) for effectively once.
    ///
    /// # Errors
    /// [`Error::CommitRejected`] (nothing committed) if the group moved one of the partitions
    /// to another member; [`Error::UnknownMember`] if the consumer was removed from the group;
    /// [`Error::NoGroupId`] without a `group.id`; [`Error::ReadOnly`]; [`Error::Io`].
    pub fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(TopicPartition, i64)> = self.positions().into_iter().collect();
        self.commit_list(&offsets)
    }

    /// Commits the given offsets (the next offset to consume of each partition).
    ///
    /// # Errors
    /// As [`commit`](Consumer::commit); [`Error::NegativeOffset`] for a negative offset.
    pub fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let offsets: Vec<(TopicPartition, i64)> =
            offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        self.commit_list(&offsets)
    }

    fn commit_list(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if self.config.group_id.is_none() {
            return Err(Error::NoGroupId {
                operation: "committing",
            });
        }
        if offsets.is_empty() {
            return Ok(());
        }
        match &self.membership {
            Some(m) => m.coordinator.commit(&m.group, &m.member, offsets),
            None => {
                // A hand-assigned consumer with a group: Kafka's standalone commit, allowed
                // while the group has no members.
                let (coordinator, group) = self.coordinator()?;
                coordinator
                    .reset_offsets(&group, offsets)
                    .map_err(|e| match e {
                        Error::GroupNotEmpty { .. } => {
                            let (topic, partition) = offsets[0].0.clone();
                            Error::CommitRejected {
                                group: group.clone(),
                                member: String::new(),
                                topic,
                                partition,
                            }
                        }
                        e => e,
                    })
            }
        }
    }

    /// The group's committed offset of a partition, if any (as the group's file holds it now:
    /// members in other processes commit too). Works on every kind of store.
    ///
    /// # Errors
    /// [`Error::NoGroupId`] without a `group.id`; [`Error::Corrupt`] for a damaged offsets
    /// file; [`Error::Closed`] once the store is gone.
    pub fn committed(&self, topic: &str, partition: u32) -> Result<Option<i64>> {
        let tp = (topic.to_owned(), partition);
        Ok(self
            .committed_offsets(&[(topic, partition)])?
            .get(&tp)
            .copied())
    }

    /// The group's committed offsets of these partitions (Kafka's `committed(Set)`): those
    /// with one, by partition.
    ///
    /// # Errors
    /// As [`committed`](Consumer::committed).
    pub fn committed_offsets(
        &self,
        partitions: &[(&str, u32)],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let group = self.config.group_id.as_deref().ok_or(Error::NoGroupId {
            operation: "reading committed offsets",
        })?;
        let source = self.source.upgrade().ok_or(Error::Closed)?;
        let all = source.committed_offsets(group)?;
        Ok(partitions
            .iter()
            .filter_map(|&(t, p)| {
                let tp = (t.to_owned(), p);
                all.get(&tp).map(|&o| (tp, o))
            })
            .collect())
    }

    /// Leaves the group after committing (with auto-commit on), and stops reading. Dropping
    /// the consumer does the same, ignoring errors.
    ///
    /// # Errors
    /// The commit's.
    pub fn close(mut self) -> Result<()> {
        let committed = if self.config.enable_auto_commit && self.membership.is_some() {
            self.commit()
        } else {
            Ok(())
        };
        if let Some(m) = self.membership.take() {
            m.coordinator.leave(&m.group, &m.member);
        }
        committed
    }

    /// The group's side of a poll: lets go of what was revoked at the previous poll, syncs,
    /// and takes newly assigned partitions. Returns whether partitions were revoked now.
    fn group_sync(&mut self) -> Result<bool> {
        let Some(m) = &self.membership else {
            return Ok(false);
        };
        let (coordinator, group, member) = (
            Arc::clone(&m.coordinator),
            m.group.clone(),
            m.member.clone(),
        );
        let going: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|a| a.revoked)
            .map(|a| (a.topic.to_string(), a.number))
            .collect();
        if !going.is_empty() {
            if self.config.enable_auto_commit {
                let positions: Vec<(TopicPartition, i64)> = self
                    .assigned
                    .iter()
                    .filter(|a| a.revoked)
                    .filter_map(|a| a.position.map(|p| ((a.topic.to_string(), a.number), p)))
                    .collect();
                let _ = coordinator.commit(&group, &member, &positions);
            }
            self.drop_partitions(|a| a.revoked);
            coordinator.release(&group, &member, &going);
        }
        let sync = match coordinator.sync(&group, &member) {
            Ok(sync) => sync,
            Err(Error::UnknownMember { .. }) => {
                // Removed for not polling: what it owned is gone already. Join again.
                let lost = self.assignment();
                self.drop_partitions(|_| true);
                let topics = self
                    .membership
                    .as_ref()
                    .map(|m| m.topics.clone())
                    .unwrap_or_default();
                join(
                    &coordinator,
                    &group,
                    &member,
                    &topics,
                    &self.config,
                    &self.source,
                    &self.signal,
                )?;
                if let Some(m) = &mut self.membership {
                    m.events.push(RebalanceEvent::Lost(lost));
                }
                coordinator.sync(&group, &member)?
            }
            Err(e) => return Err(e),
        };
        let mut revoked = Vec::new();
        for tp in &sync.revoke {
            if let Some(a) = self
                .assigned
                .iter_mut()
                .find(|a| !a.revoked && *a.topic == *tp.0 && a.number == tp.1)
            {
                a.revoked = true;
                revoked.push(tp.clone());
            }
        }
        let mut assigned = Vec::new();
        if !sync.assign.is_empty() {
            let source = self.source.upgrade().ok_or(Error::Closed)?;
            for tp in &sync.assign {
                let partition = source.partition(&tp.0, tp.1)?;
                partition.watch(&self.signal);
                self.assignment_version.0 += 1;
                self.assigned.push(Assigned {
                    topic: Arc::from(tp.0.as_str()),
                    number: tp.1,
                    partition,
                    position: coordinator.committed(&group, tp)?,
                    revoked: false,
                    paused: false,
                    refreshed: None,
                    drained: true,
                    reader: None,
                });
                assigned.push(tp.clone());
            }
        }
        let any_revoked = !revoked.is_empty();
        if let Some(m) = &mut self.membership {
            m.generation = sync.generation;
            if any_revoked {
                m.events.push(RebalanceEvent::Revoked(revoked));
            }
            if !assigned.is_empty() {
                m.events.push(RebalanceEvent::Assigned(assigned));
            }
        }
        Ok(any_revoked)
    }

    /// Stops reading the partitions `which` selects.
    fn drop_partitions(&mut self, which: impl Fn(&Assigned) -> bool) {
        self.assignment_version.0 += 1;
        let signal = &self.signal;
        self.assigned.retain(|a| {
            let drop = which(a);
            if drop {
                a.partition.unwatch(signal);
            }
            !drop
        });
    }

    /// Keeps the file watch on the store's directory and every assigned partition's.
    fn watch_files(&mut self) {
        let (version, watched) = self.assignment_version;
        if version == watched {
            return;
        }
        if self.files.is_none() {
            self.files = files::FileWatch::new(&self.signal);
        }
        let Some(files) = &mut self.files else {
            return;
        };
        let store = self.source.upgrade().map(|s| s.dir().to_path_buf());
        let dirs = self
            .assigned
            .iter()
            .map(|a| a.partition.dir().to_path_buf())
            .chain(store);
        self.files_complete = files.set(dirs);
        self.assignment_version.1 = version;
    }

    /// Commits the positions every `auto.commit.interval.ms`, at poll time.
    fn auto_commit(&mut self) {
        let interval =
            Duration::from_millis(u64::try_from(self.config.auto_commit_interval_ms).unwrap_or(0));
        if self.config.enable_auto_commit
            && self.membership.is_some()
            && self.last_auto_commit.elapsed() >= interval
        {
            // A failure (a rebalance under way) is met again by the next explicit commit.
            let _ = self.commit();
            self.last_auto_commit = Instant::now();
        }
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions from now on (Kafka's `assign`). Partitions kept keep
    /// their positions; new ones start where `auto.offset.reset` says.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::Closed`] once the store
    /// is gone.
    pub fn assign(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        if self.membership.is_some() {
            return Err(Error::Subscribed);
        }
        let source = self.source.upgrade().ok_or(Error::Closed)?;
        // Kafka's standalone consumers start at their group's committed offsets too.
        let committed = |topic: &str, number: u32| -> Result<Option<i64>> {
            let Some(group) = self.config.group_id.as_deref() else {
                return Ok(None);
            };
            let tp = (topic.to_owned(), number);
            Ok(source.committed_offsets(group)?.get(&tp).copied())
        };
        let mut next = Vec::with_capacity(partitions.len());
        for &(topic, number) in partitions {
            if next
                .iter()
                .any(|a: &Assigned| &*a.topic == topic && a.number == number)
            {
                continue;
            }
            let kept = self
                .assigned
                .iter()
                .position(|a| &*a.topic == topic && a.number == number);
            let assigned = match kept {
                Some(i) => self.assigned.swap_remove(i),
                None => Assigned {
                    topic: Arc::from(topic),
                    number,
                    partition: source.partition(topic, number)?,
                    position: committed(topic, number)?,
                    revoked: false,
                    paused: false,
                    refreshed: None,
                    drained: true,
                    reader: None,
                },
            };
            next.push(assigned);
        }
        for dropped in self.assigned.drain(..) {
            dropped.partition.unwatch(&self.signal);
        }
        for a in &next {
            a.partition.watch(&self.signal);
        }
        self.assigned = next;
        self.assignment_version.0 += 1;
        Ok(())
    }

    /// The partitions assigned, in assignment order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .map(|a| (a.topic.to_string(), a.number))
            .collect()
    }

    /// Returns up to `max.poll.records` records from the assigned partitions, advancing the
    /// positions past them. Each partition gets its turn: partitions with records share the
    /// limit, and the first partition read changes from one poll to the next. When nothing is
    /// available it waits up to `timeout` for an append to any of them, and returns as soon as
    /// one arrives (an empty `Vec` after the timeout).
    ///
    /// # Errors
    /// [`Error::NoOffsetForPartition`] when a position must be reset and `auto.offset.reset`
    /// is `none`; [`Error::Corrupt`] when the next record of a partition is damaged and
    /// nothing was read before it in this poll (the position stays on it).
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        // A member blocked here is polling: it syncs often enough to stay in its group.
        let keep_alive = Duration::from_millis(
            u64::try_from(self.config.max_poll_interval_ms / 3)
                .unwrap_or(0)
                .max(10),
        );
        loop {
            // Armed before looking: an append (or a rebalance, or a wakeup) from here on ends
            // the wait below at once.
            self.signal.arm();
            if self.woken.swap(false, Ordering::SeqCst) {
                return Err(Error::Wakeup);
            }
            if self.group_sync()? {
                return Ok(Vec::new());
            }
            self.auto_commit();
            if self.read_only {
                self.watch_files();
                let due: Vec<bool> = self.assigned.iter().map(Self::refresh_due).collect();
                // The store's topics too (a subscription may wait for one to appear).
                if (self.assigned.is_empty() || due.iter().any(|&d| d))
                    && let Some(source) = self.source.upgrade()
                {
                    source.refresh_if_changed()?;
                }
                for (a, due) in self.assigned.iter_mut().zip(due) {
                    if due {
                        a.partition.refresh()?;
                        a.refreshed = Some(Instant::now());
                    } else {
                        // Records the writer deleted are out of range at once, as in Kafka.
                        a.partition.follow_log_start()?;
                    }
                }
            }
            let records = self.fetch()?;
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(records);
            }
            let until = if self.read_only {
                let refresh = if self.files_complete {
                    NOTIFIED_REFRESH
                } else {
                    READ_ONLY_REFRESH
                };
                deadline.min(now + refresh)
            } else if self.membership.is_some() {
                deadline.min(now + keep_alive)
            } else {
                deadline
            };
            self.signal.wait_until(until);
        }
    }

    /// Whether a read-only store's partition must re-read its files before this poll reads it:
    /// when it has nothing known left to read (caught up, or positioned past what it knew),
    /// or once every [`READ_ONLY_REFRESH`] anyway (the writer's compaction). A consumer
    /// working through a backlog then lists no directory per poll; it only re-reads the log
    /// start the writer recorded.
    fn refresh_due(a: &Assigned) -> bool {
        a.drained
            || a.position.is_none_or(|p| p >= a.partition.next_offset())
            || a.refreshed
                .is_none_or(|at| at.elapsed() >= READ_ONLY_REFRESH)
    }

    /// Reads what is available, each partition in turn.
    fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        let n = self.assigned.len();
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        let first = self.next_turn % n;
        self.next_turn = self.next_turn.wrapping_add(1);
        let share = (max / n).max(1);
        // A first round gives every partition its share; a second fills what is left.
        for round in 0..2 {
            for i in 0..n {
                if out.len() >= max {
                    return Ok(out);
                }
                let quota = if round == 0 { share } else { max - out.len() };
                let index = (first + i) % n;
                if self.assigned[index].revoked || self.assigned[index].paused {
                    continue;
                }
                let quota = quota.min(max - out.len());
                let read = self.read_partition(index, quota);
                if let Ok(records) = &read {
                    self.assigned[index].drained = records.len() < quota;
                }
                match read {
                    Ok(records) => out.extend(records),
                    // Returned next time, once the records already read are delivered.
                    Err(_) if !out.is_empty() => return Ok(out),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Up to `quota` records of the `i`th assigned partition, from its position.
    fn read_partition(&mut self, i: usize, quota: usize) -> Result<Vec<ConsumerRecord>> {
        let position = self.position_of(i)?;
        let a = &mut self.assigned[i];
        if position == a.partition.next_offset() {
            return Ok(Vec::new());
        }
        let options = ReadOptions::new().isolation_level(self.config.isolation_level);
        // Kept while it follows the position and the position is still in the log (records
        // deleted below the log start are out of range for a consumer, as in Kafka, even if
        // the reader could still read them).
        let kept = a
            .reader
            .take()
            .filter(|r| r.position() == position && position >= a.partition.log_start_offset());
        let mut reader = match kept {
            Some(reader) => reader,
            _ => match a.partition.read_with(position, options) {
                Ok(reader) => reader,
                Err(Error::OffsetOutOfRange { log_start, .. }) => {
                    // Retention deleted the records at the position: start again per the
                    // policy.
                    let reset = reset_position(&a.topic, a.number, &a.partition, &self.config)?
                        .max(log_start.min(a.partition.next_offset()));
                    a.position = Some(reset);
                    a.partition.read_with(reset, options)?
                }
                Err(e) => return Err(e),
            },
        };
        let mut records = Vec::new();
        while records.len() < quota {
            let Some(record) = reader.next() else {
                // At the end of what it could see: a fresh reader sees what comes later.
                return Ok(records);
            };
            let record = match record {
                Ok(record) => record,
                // Deleted under the reader (a writer's retention, in another process): the
                // next poll starts again per the policy.
                Err(Error::OffsetOutOfRange { log_start, .. }) if records.is_empty() => {
                    let reset = reset_position(&a.topic, a.number, &a.partition, &self.config)?;
                    a.position = Some(reset.max(log_start));
                    return Ok(records);
                }
                Err(e) if records.is_empty() => return Err(e),
                Err(_) => return Ok(records),
            };
            a.position = Some(record.offset() + 1);
            records.push(ConsumerRecord {
                topic: Arc::clone(&a.topic),
                partition: a.number,
                record,
            });
        }
        a.reader = Some(reader);
        Ok(records)
    }

    /// The position of the `i`th assigned partition, set by the reset policy if it has none.
    fn position_of(&mut self, i: usize) -> Result<i64> {
        let a = &mut self.assigned[i];
        if let Some(position) = a.position {
            return Ok(position);
        }
        let position = reset_position(&a.topic, a.number, &a.partition, &self.config)?;
        a.position = Some(position);
        Ok(position)
    }

    fn index(&self, topic: &str, partition: u32) -> Result<usize> {
        self.assigned
            .iter()
            .position(|a| &*a.topic == topic && a.number == partition)
            .ok_or_else(|| Error::PartitionNotAssigned {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// The offset of the next record `poll` returns from the partition (set by
    /// `auto.offset.reset` if nothing was read or sought yet).
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; [`Error::NoOffsetForPartition`] as for `poll`.
    pub fn position(&mut self, topic: &str, partition: u32) -> Result<i64> {
        let i = self.index(topic, partition)?;
        self.position_of(i)
    }

    /// Makes `offset` the partition's position: the next poll returns records from there. An
    /// offset outside the log is reset by `auto.offset.reset` when read, as in Kafka.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; [`Error::NegativeOffset`] for a negative offset.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::NegativeOffset { offset });
        }
        let i = self.index(topic, partition)?;
        self.assigned[i].position = Some(offset);
        Ok(())
    }

    /// Seeks each partition to its log start offset.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`].
    pub fn seek_to_beginning(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.seek_each(partitions, |p| Ok(p.log_start_offset()))
    }

    /// Seeks each partition to its log end offset: only records appended from now on.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`].
    pub fn seek_to_end(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.seek_each(partitions, |p| Ok(p.next_offset()))
    }

    /// Seeks each partition to its first record with a timestamp at or after `timestamp`
    /// (Kafka's `offsetsForTimes`), or to its end when there is none.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; read errors of the lookup.
    pub fn seek_to_timestamp(&mut self, partitions: &[(&str, u32)], timestamp: i64) -> Result<()> {
        self.seek_each(partitions, |p| {
            Ok(p.offset_for_timestamp(timestamp)?
                .map_or(p.next_offset(), |t| t.offset))
        })
    }

    fn seek_each(
        &mut self,
        partitions: &[(&str, u32)],
        to: impl Fn(&Partition) -> Result<i64>,
    ) -> Result<()> {
        let indexes = partitions
            .iter()
            .map(|&(t, p)| self.index(t, p))
            .collect::<Result<Vec<_>>>()?;
        for i in indexes {
            let offset = to(&self.assigned[i].partition)?;
            self.assigned[i].position = Some(offset);
        }
        Ok(())
    }

    /// A handle that interrupts this consumer's `poll` from another thread.
    pub fn waker(&self) -> Waker {
        Waker {
            signal: Arc::clone(&self.signal),
            woken: Arc::clone(&self.woken),
        }
    }

    /// Stops fetching from these partitions (Kafka's `pause`): `poll` returns nothing of them,
    /// keeps their positions, and the consumer keeps them (a group does not move them for
    /// being paused). A rebalance that takes a partition away forgets its pause.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] (nothing paused).
    pub fn pause(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    /// Fetches from these paused partitions again (Kafka's `resume`).
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] (nothing resumed).
    pub fn resume(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    /// The paused partitions, in assignment order.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|a| a.paused)
            .map(|a| (a.topic.to_string(), a.number))
            .collect()
    }

    fn set_paused(&mut self, partitions: &[(&str, u32)], paused: bool) -> Result<()> {
        let indexes = partitions
            .iter()
            .map(|&(t, p)| self.index(t, p))
            .collect::<Result<Vec<_>>>()?;
        for i in indexes {
            self.assigned[i].paused = paused;
        }
        // A resumed partition may have records now.
        self.signal.fire();
        Ok(())
    }

    /// The log start offsets of these partitions (Kafka's `beginningOffsets`), assigned or
    /// not.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::Closed`].
    pub fn beginning_offsets(
        &self,
        partitions: &[(&str, u32)],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.offsets_of(partitions, |p| p.log_start_offset())
    }

    /// The end offsets (next offsets) of these partitions (Kafka's `endOffsets`), as a reader
    /// in this process may read them: up to the last durable record under the durable flush
    /// policy. Partitions of a store another process writes are read again first.
    ///
    /// # Errors
    /// As [`beginning_offsets`](Consumer::beginning_offsets).
    pub fn end_offsets(&self, partitions: &[(&str, u32)]) -> Result<BTreeMap<TopicPartition, i64>> {
        let level = self.config.isolation_level;
        self.offsets_of(partitions, |p| end_offset(p, level))
    }

    fn offsets_of(
        &self,
        partitions: &[(&str, u32)],
        offset: impl Fn(&Partition) -> i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let source = self.source.upgrade().ok_or(Error::Closed)?;
        let mut out = BTreeMap::new();
        for &(topic, number) in partitions {
            let partition = source.partition(topic, number)?;
            if self.read_only {
                partition.refresh()?;
            }
            out.insert((topic.to_owned(), number), offset(&partition));
        }
        Ok(out)
    }

    /// How many records of an assigned partition lie between the consumer's position and the
    /// end (Kafka's `currentLag`); `None` before the partition has a position.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`].
    pub fn current_lag(&self, topic: &str, partition: u32) -> Result<Option<i64>> {
        let a = &self.assigned[self.index(topic, partition)?];
        let end = end_offset(&a.partition, self.config.isolation_level);
        Ok(a.position.map(|position| (end - position).max(0)))
    }

    /// The consumed positions of every partition that has one.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.assigned
            .iter()
            .filter_map(|a| a.position.map(|p| ((a.topic.to_string(), a.number), p)))
            .collect()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.unsubscribe();
        for a in &self.assigned {
            a.partition.unwatch(&self.signal);
        }
    }
}

/// Joins `group` for a consumer: its partition counts come from the store, and the
/// coordinator wakes it through its signal.
fn join(
    coordinator: &Coordinator,
    group: &str,
    member: &str,
    topics: &[String],
    config: &ConsumerConfig,
    source: &Weak<dyn Source>,
    signal: &Arc<Signal>,
) -> Result<()> {
    let source = source.clone();
    let partitions = Arc::new(move |topic: &str| source.upgrade()?.partition_count(topic));
    let wake_signal = Arc::downgrade(signal);
    let wake = Arc::new(move || {
        if let Some(signal) = wake_signal.upgrade() {
            signal.fire();
        }
    });
    coordinator.join(
        group,
        JoinRequest {
            member: member.to_owned(),
            topics: topics.to_vec(),
            assignor: config.assignor,
            max_poll_interval_ms: config.max_poll_interval_ms,
            session_timeout_ms: config.session_timeout_ms,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            client_id: config.client_id.clone(),
            partitions,
            wake,
        },
    )
}

/// Where `policy` puts a partition's position.
/// The end of a partition as a consumer at `level` sees it: the log end, or under
/// `read_committed` the last stable offset (Kafka's `endOffsets`).
fn end_offset(partition: &Partition, level: IsolationLevel) -> i64 {
    match level {
        IsolationLevel::ReadCommitted => partition.last_stable_offset(),
        _ => partition.next_offset(),
    }
}

/// Where `auto.offset.reset` puts a consumer with `config` in a partition.
fn reset_position(
    topic: &str,
    number: u32,
    partition: &Partition,
    config: &ConsumerConfig,
) -> Result<i64> {
    match config.auto_offset_reset {
        OffsetReset::Earliest => Ok(partition.log_start_offset()),
        OffsetReset::Latest => Ok(end_offset(partition, config.isolation_level)),
        OffsetReset::None => Err(Error::NoOffsetForPartition {
            topic: topic.to_owned(),
            partition: number,
        }),
    }
}
