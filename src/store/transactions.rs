//! Transactions across partitions: Kafka's transaction coordinator, inside the store's
//! writing process, and its transactional producer handle.
//!
//! The coordinator keeps each transactional id's producer id, epoch and transaction in
//! [`transactions_file`](super::transactions_file), and drives a transaction as Kafka's does:
//!
//! 1. `init_transactions` raises the id's epoch (a new producer id once the epoch is spent),
//!    completing the previous handle's transaction first (committing it if it had decided to,
//!    aborting it otherwise), which fences that handle;
//! 2. the first append to a partition in a transaction records the partition before the
//!    batch is written (`AddPartitionsToTxn`), for other processes to list, but not durably
//!    (after a crash, the partitions themselves say which hold an open transaction of the
//!    id's producer id), except when the file on disk may still show an earlier commit's
//!    decision, which the next open would otherwise complete over the new transaction;
//! 3. `commit_transaction` flushes those partitions, then decides: `PrepareCommit`, with every
//!    partition of the transaction, is written durably, in the same step (under the groups
//!    lock) as the consumer offsets sent with the transaction, once the consumer is checked
//!    to still own their partitions. Then the COMMIT markers go to every partition, and
//!    `CompleteCommit` is recorded. A transaction of one partition without offsets needs no
//!    separate decision: its one COMMIT marker is all or nothing by itself;
//! 4. `abort_transaction`, a timeout (`transaction.timeout.ms`, checked by the store's
//!    background thread and at open) or a fencing `init_transactions` writes ABORT markers.
//!
//! At open, a transaction recorded as `PrepareCommit` is completed (markers, offsets), and any
//! other open one, recorded or found in a partition under a producer id the coordinator gave
//! out, is aborted: after a crash or power loss at any step, every partition and the group's
//! offsets show the whole transaction committed or none of it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::consumer::ConsumerGroupMetadata;
use crate::error::{Error, Result};
use crate::group::TopicPartition;
use crate::partition::{AppendInfo, Partition, ProducerStamp, increment_sequence};
use crate::record::{Compression, EndTxnMarker, Record, TxnResult};

use super::Inner;
use super::producer::{IdEpoch, ProducerSlot};
use super::producers_file;
use super::transactions_file::{self, TxnEntry, TxnRegistry, TxnState};

/// Kafka's `transaction.timeout.ms` default: a transaction open longer is aborted.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: i64 = 60_000;

/// The coordinator: the registry as on disk, and each id's current producer id and epoch as
/// its handles see it.
#[derive(Debug, Default)]
pub(crate) struct TxnCoordinator {
    registry: Mutex<TxnRegistry>,
    slots: Mutex<BTreeMap<String, Arc<ProducerSlot>>>,
    /// The file on disk may still show as `PrepareCommit` a transaction the registry has
    /// completed (completions are not synced). Until a durable write, no new transaction may
    /// put records in a partition: a crash would have the next open complete that commit
    /// again, and its COMMIT marker would commit the new transaction of the same producer.
    decision_on_disk: std::sync::atomic::AtomicBool,
}

/// An open transaction the coordinator does not know: found in a partition's log (written by
/// Kafka, or its record lost).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenTransaction {
    /// The transactional id, if the coordinator knows the transaction.
    pub transactional_id: Option<String>,
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Where it stands.
    pub state: TxnState,
    /// The partitions it has written to (for one found in a log: that partition), with the
    /// first offset of the transaction there when known.
    pub partitions: Vec<(TopicPartition, Option<i64>)>,
    /// When it began (ms since the epoch), if known.
    pub started_ms: Option<i64>,
}

impl TxnCoordinator {
    /// Loads the registry and completes what a crash left open: raises the coordinator epoch,
    /// commits every `PrepareCommit` (markers and offsets) and aborts every other open
    /// transaction.
    pub(crate) fn open(inner: &Inner) -> Result<TxnCoordinator> {
        let mut registry = transactions_file::read(&*inner.disk, &inner.dir)?;
        // Above every marker in the partitions too (written by Kafka, or by this store before
        // its file was lost): the markers this coordinator writes are never taken for an
        // older coordinator's.
        let seen = inner.max_coordinator_epoch();
        registry.coordinator_epoch = registry.coordinator_epoch.max(seen).saturating_add(1);
        transactions_file::write(&*inner.disk, &inner.dir, &registry, true)?;
        let coordinator = TxnCoordinator {
            registry: Mutex::new(registry),
            slots: Mutex::new(BTreeMap::new()),
            decision_on_disk: Default::default(),
        };
        let open: Vec<String> = coordinator
            .registry
            .lock()
            .txns
            .iter()
            .filter(|(_, e)| e.state.is_open())
            .map(|(id, _)| id.clone())
            .collect();
        for id in open {
            let mut registry = coordinator.registry.lock();
            let Some(entry) = registry.txns.get(&id).cloned() else {
                continue;
            };
            let result = match entry.state {
                TxnState::PrepareCommit => TxnResult::Commit,
                _ => TxnResult::Abort,
            };
            log::warn!(
                "{}: completing transaction of {id:?} (producer {}) a crash left {}",
                inner.dir.display(),
                entry.producer_id,
                entry.state
            );
            coordinator.complete(inner, &mut registry, &id, &entry, entry.epoch, result)?;
        }
        // Partitions whose records went in after the last durable record of the registry:
        // open under one of its producer ids, these never reached a decision.
        let ours: Vec<i64> = coordinator
            .registry
            .lock()
            .txns
            .values()
            .map(|e| e.producer_id)
            .collect();
        for found in coordinator.unknown_open(inner)? {
            if ours.contains(&found.producer_id) {
                log::warn!(
                    "{}: aborting the transaction of producer {} a crash left open",
                    inner.dir.display(),
                    found.producer_id
                );
                coordinator.abort_found(inner, &found)?;
            }
        }
        Ok(coordinator)
    }

    /// The current coordinator epoch, stamped into markers.
    fn epoch(&self) -> i32 {
        self.registry.lock().coordinator_epoch
    }

    /// `init_transactions` for `id`: completes the previous handle's transaction, raises the
    /// epoch (moving to a new producer id once it is spent), records it and fences older
    /// handles.
    fn init(
        &self,
        inner: &Inner,
        id: &str,
        timeout_ms: i64,
    ) -> Result<(IdEpoch, Arc<ProducerSlot>)> {
        let mut registry = self.registry.lock();
        let current = match registry.txns.get(id).cloned() {
            Some(entry) => {
                // The previous handle's transaction: its decision stands, or it is aborted at
                // a raised epoch, which fences that handle in every partition it wrote to.
                let fence = entry.epoch.saturating_add(1);
                if entry.state.is_open() {
                    let result = match entry.state {
                        TxnState::PrepareCommit => TxnResult::Commit,
                        _ => TxnResult::Abort,
                    };
                    self.complete(inner, &mut registry, id, &entry, fence, result)?;
                }
                if entry.epoch >= i16::MAX - 1 {
                    IdEpoch {
                        id: allocate_producer_id(inner)?,
                        epoch: 0,
                    }
                } else {
                    IdEpoch {
                        id: entry.producer_id,
                        epoch: fence,
                    }
                }
            }
            None => IdEpoch {
                id: allocate_producer_id(inner)?,
                epoch: 0,
            },
        };
        let mut updated = registry.clone();
        updated.txns.insert(
            id.to_owned(),
            TxnEntry::new(current.id, current.epoch, timeout_ms),
        );
        self.write(inner, &updated, true)?;
        *registry = updated;
        let mut slots = self.slots.lock();
        let slot = slots
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(ProducerSlot::new(current)));
        slot.set(current);
        Ok((current, Arc::clone(slot)))
    }

    /// The entry of `id` if `mine` is still its producer id and epoch; otherwise
    /// [`Error::ProducerFenced`].
    fn entry_of(registry: &TxnRegistry, id: &str, mine: IdEpoch) -> Result<TxnEntry> {
        match registry.txns.get(id) {
            Some(e) if e.producer_id == mine.id && e.epoch == mine.epoch => Ok(e.clone()),
            _ => Err(fenced(id, mine)),
        }
    }

    /// Records `tp` in `id`'s transaction (beginning it) unless it is there; durably only while
    /// a completed decision may be on disk (see the module docs).
    fn add_partition(
        &self,
        inner: &Inner,
        id: &str,
        mine: IdEpoch,
        tp: &TopicPartition,
    ) -> Result<()> {
        // A replica's transactions are its cluster's: none of ours may enter it (its markers
        // would be refused, leaving the transaction unfinishable).
        inner.topic(&tp.0)?.partition(tp.1)?.check_owner_write()?;
        let mut registry = self.registry.lock();
        let mut entry = Self::entry_of(&registry, id, mine)?;
        if entry.state == TxnState::Ongoing && entry.partitions.contains(tp) {
            return Ok(());
        }
        if entry.state != TxnState::Ongoing {
            entry = entry.completed(TxnState::Ongoing);
            entry.started_ms = inner.options.log_config().clock().now_ms();
        }
        entry.partitions.insert(tp.clone());
        let mut updated = registry.clone();
        updated.txns.insert(id.to_owned(), entry);
        let durable = self.decision_on_disk.load(Ordering::Acquire);
        self.write(inner, &updated, durable)?;
        *registry = updated;
        Ok(())
    }

    /// Writes the registry's file (see [`transactions_file::write`]).
    fn write(&self, inner: &Inner, registry: &TxnRegistry, durable: bool) -> Result<()> {
        transactions_file::write(&*inner.disk, &inner.dir, registry, durable)?;
        if durable {
            self.decision_on_disk.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Commits `id`'s transaction, with `offsets` for `group`'s member: see the module docs.
    fn commit(
        &self,
        inner: &Inner,
        id: &str,
        mine: IdEpoch,
        offsets: Option<(&ConsumerGroupMetadata, Vec<(TopicPartition, i64)>)>,
    ) -> Result<()> {
        let mut registry = self.registry.lock();
        let entry = Self::entry_of(&registry, id, mine)?;
        // A commit that failed after its decision is finished; a transaction of one partition
        // without offsets needs no decision of its own: its one marker is all or nothing.
        if entry.state == TxnState::PrepareCommit
            || (offsets.is_none() && entry.partitions.len() <= 1)
        {
            return self.complete(
                inner,
                &mut registry,
                id,
                &entry,
                entry.epoch,
                TxnResult::Commit,
            );
        }
        // What the transaction wrote is durable before the decision that exposes it.
        for (topic, partition) in &entry.partitions {
            inner.topic(topic)?.partition(*partition)?.flush()?;
        }
        let mut prepared = entry.clone();
        prepared.state = TxnState::PrepareCommit;
        if let Some((group, list)) = &offsets {
            prepared.offsets = Some((group.group_id().to_owned(), list.iter().cloned().collect()));
        }
        let mut updated = registry.clone();
        updated.txns.insert(id.to_owned(), prepared.clone());
        let decided = std::cell::Cell::new(false);
        let decide = || {
            self.write(inner, &updated, true)?;
            decided.set(true);
            Ok(())
        };
        let outcome = match &offsets {
            Some((group, list)) => {
                let coordinator = inner.coordinator.as_ref().ok_or(Error::ReadOnly)?;
                coordinator.commit_transactional(group.group_id(), group.member_id(), list, decide)
            }
            None => decide(),
        };
        if decided.get() {
            *registry = updated;
        }
        match outcome {
            Ok(()) => self.complete(
                inner,
                &mut registry,
                id,
                &prepared,
                prepared.epoch,
                TxnResult::Commit,
            ),
            Err(e) if decided.get() => {
                // Decided: the offsets are written when the commit is finished (a retry, or
                // the next open).
                Err(e)
            }
            Err(e) => {
                // Not decided (the member lost a partition, or the decision could not be
                // written): the transaction is aborted, so it cannot linger.
                self.complete(
                    inner,
                    &mut registry,
                    id,
                    &entry,
                    entry.epoch,
                    TxnResult::Abort,
                )?;
                Err(e)
            }
        }
    }

    /// Aborts `id`'s transaction.
    fn abort(&self, inner: &Inner, id: &str, mine: IdEpoch) -> Result<()> {
        let mut registry = self.registry.lock();
        let entry = Self::entry_of(&registry, id, mine)?;
        if entry.state == TxnState::PrepareCommit {
            return Err(Error::InvalidTxnState {
                topic: String::new(),
                partition: 0,
                producer_id: mine.id,
                reason: "the transaction is committing".into(),
            });
        }
        self.complete(
            inner,
            &mut registry,
            id,
            &entry,
            entry.epoch,
            TxnResult::Abort,
        )
    }

    /// Writes `result`'s marker, at `epoch`, to every partition of `entry`'s transaction that
    /// holds it open; on a commit, writes its offsets; then records the transaction complete
    /// (and the epoch, raised by a fencing abort). The completion's record need not be durable:
    /// if a crash loses it, the next open does this again, and finds the markers written.
    fn complete(
        &self,
        inner: &Inner,
        registry: &mut TxnRegistry,
        id: &str,
        entry: &TxnEntry,
        epoch: i16,
        result: TxnResult,
    ) -> Result<()> {
        let marker = EndTxnMarker {
            result,
            coordinator_epoch: registry.coordinator_epoch,
        };
        for (topic, partition) in &entry.partitions {
            let log = match inner.topic(topic).and_then(|t| t.partition(*partition)) {
                Ok(log) => log,
                // A topic deleted since: nothing of it to complete.
                Err(Error::UnknownTopic(_) | Error::UnknownPartition { .. }) => continue,
                Err(e) => return Err(e),
            };
            if log.has_open_transaction(entry.producer_id) {
                log.write_txn_marker(entry.producer_id, epoch, marker)?;
                // Durable before the completion is recorded: a marker lost to a crash after a
                // later write of the registry made the completion durable would leave the
                // transaction open in the log and unknown to the coordinator, and then
                // aborted by its timeout, a commit undone. (A no-op when appends sync.)
                log.flush()?;
            }
        }
        if let (TxnResult::Commit, Some((group, offsets))) = (result, &entry.offsets)
            && let Some(coordinator) = &inner.coordinator
        {
            let list: Vec<(TopicPartition, i64)> =
                offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
            coordinator.commit_recovered(group, &list)?;
        }
        let state = match result {
            TxnResult::Commit => TxnState::CompleteCommit,
            TxnResult::Abort => TxnState::CompleteAbort,
        };
        let mut done = entry.completed(state);
        done.epoch = epoch;
        let mut updated = registry.clone();
        updated.txns.insert(id.to_owned(), done);
        let durable = epoch != entry.epoch;
        self.write(inner, &updated, durable)?;
        if !durable && entry.state == TxnState::PrepareCommit {
            self.decision_on_disk.store(true, Ordering::Release);
        }
        *registry = updated;
        if epoch != entry.epoch
            && let Some(slot) = self.slots.lock().get(id)
        {
            slot.set(IdEpoch {
                id: entry.producer_id,
                epoch,
            });
        }
        Ok(())
    }

    /// Aborts, at a raised epoch (fencing their producers), the transactions open longer than
    /// their `transaction.timeout.ms`; and writes ABORT markers for transactions found open in
    /// a partition's log that the coordinator does not know, once `default_timeout_ms` has
    /// passed since their first batch. Returns how many it aborted.
    pub(crate) fn abort_timed_out(&self, inner: &Inner) -> Result<usize> {
        let now = inner.options.log_config().clock().now_ms();
        let mut aborted = 0;
        let due: Vec<(String, TxnEntry)> = self
            .registry
            .lock()
            .txns
            .iter()
            .filter(|(_, e)| {
                e.state == TxnState::Ongoing && now.saturating_sub(e.started_ms) >= e.timeout_ms
            })
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        for (id, entry) in due {
            let mut registry = self.registry.lock();
            // Still the same transaction?
            if registry.txns.get(&id) != Some(&entry) {
                continue;
            }
            log::warn!(
                "{}: aborting transaction of {id:?} (producer {}): open for more than {} ms",
                inner.dir.display(),
                entry.producer_id,
                entry.timeout_ms
            );
            let fence = entry.epoch.saturating_add(1);
            self.complete(inner, &mut registry, &id, &entry, fence, TxnResult::Abort)?;
            aborted += 1;
        }
        for found in self.unknown_open(inner)? {
            let Some(((topic, partition), Some(first))) = found.partitions.first().cloned() else {
                continue;
            };
            let log = inner.topic(&topic)?.partition(partition)?;
            let started = first_timestamp(&log, first)?;
            if now.saturating_sub(started) >= DEFAULT_TRANSACTION_TIMEOUT_MS {
                log::warn!(
                    "{}: aborting the transaction of producer {}, unknown to the coordinator \
                     and open for more than {DEFAULT_TRANSACTION_TIMEOUT_MS} ms",
                    log.dir().display(),
                    found.producer_id
                );
                self.abort_in_log(&log, found.producer_id)?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    /// Writes an ABORT marker for `producer_id`'s open transaction in `log`, at its epoch,
    /// from a coordinator epoch above any its markers there carried.
    fn abort_in_log(&self, log: &Partition, producer_id: i64) -> Result<()> {
        let Some(state) = log.producer(producer_id) else {
            return Ok(());
        };
        let marker = EndTxnMarker {
            result: TxnResult::Abort,
            coordinator_epoch: self.epoch().max(state.coordinator_epoch.saturating_add(1)),
        };
        log.write_txn_marker(producer_id, state.epoch, marker)?;
        Ok(())
    }

    /// Open transactions in the partitions' logs whose producers have no open transaction in
    /// the coordinator.
    fn unknown_open(&self, inner: &Inner) -> Result<Vec<OpenTransaction>> {
        let registry = self.registry.lock().clone();
        unknown_open(&registry, inner)
    }

    /// Every open transaction: the coordinator's, then those found only in logs.
    pub(crate) fn list_open(&self, inner: &Inner) -> Result<Vec<OpenTransaction>> {
        let registry = self.registry.lock().clone();
        list_open(&registry, inner)
    }

    /// Aborts an open transaction now (`topiclog transactions abort`): the coordinator's for
    /// a transactional id, at a raised epoch; or, by producer id, one found only in logs.
    /// Returns whether there was one.
    pub(crate) fn abort_now(&self, inner: &Inner, id: &str) -> Result<bool> {
        {
            let mut registry = self.registry.lock();
            if let Some(entry) = registry.txns.get(id).cloned()
                && entry.state.is_open()
            {
                let (epoch, result) = match entry.state {
                    TxnState::PrepareCommit => (entry.epoch, TxnResult::Commit),
                    _ => (entry.epoch.saturating_add(1), TxnResult::Abort),
                };
                self.complete(inner, &mut registry, id, &entry, epoch, result)?;
                return Ok(true);
            }
        }
        let Ok(producer_id) = id.parse::<i64>() else {
            return Ok(false);
        };
        let mut any = false;
        for found in self.unknown_open(inner)? {
            if found.producer_id == producer_id {
                self.abort_found(inner, &found)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// Writes ABORT markers for a transaction found open only in logs, in each of its
    /// partitions.
    fn abort_found(&self, inner: &Inner, found: &OpenTransaction) -> Result<()> {
        for ((topic, partition), _) in &found.partitions {
            let log = inner.topic(topic)?.partition(*partition)?;
            self.abort_in_log(&log, found.producer_id)?;
        }
        Ok(())
    }
}

/// Open transactions in the partitions' logs whose producers have no open transaction in
/// `registry`.
fn unknown_open(registry: &TxnRegistry, inner: &Inner) -> Result<Vec<OpenTransaction>> {
    let known: Vec<i64> = registry
        .txns
        .values()
        .filter(|e| e.state.is_open())
        .map(|e| e.producer_id)
        .collect();
    let mut found = Vec::new();
    let topics: Vec<_> = inner.topics.read().values().cloned().collect();
    for topic in topics {
        for (number, log) in (0u32..).zip(topic.partitions()) {
            if log.replica_of().is_some() {
                // Its open transactions are the cluster's, ended by the cluster's markers.
                continue;
            }
            for (producer_id, first) in log.open_transactions() {
                if known.contains(&producer_id) {
                    continue;
                }
                let epoch = log.producer(producer_id).map_or(-1, |p| p.epoch);
                found.push(OpenTransaction {
                    transactional_id: None,
                    producer_id,
                    epoch,
                    state: TxnState::Ongoing,
                    partitions: vec![((topic.name().to_owned(), number), Some(first))],
                    started_ms: first_timestamp(&log, first).ok(),
                });
            }
        }
    }
    Ok(found)
}

/// Every open transaction: `registry`'s, then those found only in the logs of `inner`.
pub(crate) fn list_open(registry: &TxnRegistry, inner: &Inner) -> Result<Vec<OpenTransaction>> {
    let mut open: Vec<OpenTransaction> = registry
        .txns
        .iter()
        .filter(|(_, e)| e.state.is_open())
        .map(|(id, e)| OpenTransaction {
            transactional_id: Some(id.clone()),
            producer_id: e.producer_id,
            epoch: e.epoch,
            state: e.state,
            partitions: e.partitions.iter().map(|tp| (tp.clone(), None)).collect(),
            started_ms: Some(e.started_ms),
        })
        .collect();
    open.extend(unknown_open(registry, inner)?);
    Ok(open)
}

/// The timestamp of the record at (or after) `offset` in `log`: when a transaction found in
/// the log began.
fn first_timestamp(log: &Partition, offset: i64) -> Result<i64> {
    match log.read(offset.max(log.log_start_offset()))?.next() {
        Some(record) => Ok(record?.timestamp()),
        None => Ok(i64::MAX),
    }
}

/// A new producer id from the store's registry (shared with idempotent producers), above
/// every id in the data.
fn allocate_producer_id(inner: &Inner) -> Result<i64> {
    let mut producers = inner.producers.lock();
    let (registry, _) = &mut *producers;
    let above_data = inner.max_producer_id().map_or(0, |id| id.saturating_add(1));
    let id = registry.next_id.max(above_data);
    let mut updated = registry.clone();
    updated.next_id = id.saturating_add(1);
    producers_file::write(&*inner.disk, &inner.dir, &updated)?;
    *registry = updated;
    Ok(id)
}

fn fenced(id: &str, mine: IdEpoch) -> Error {
    Error::ProducerFenced {
        producer: id.to_owned(),
        producer_id: mine.id,
        epoch: mine.epoch,
    }
}

/// A transactional producer of a [`Store`](super::Store), from
/// [`Store::transactional_producer`](super::Store::transactional_producer): Kafka's producer with
/// a `transactional.id`. Its appends to any partitions of any topics, and the consumer offsets
/// sent with them, become visible together when [`commit_transaction`] returns, or not at all.
///
/// ```
/// use std::time::Duration;
/// use topiclog::config::{ConsumerConfig, IsolationLevel, OffsetReset, TopicConfig};
/// use topiclog::{Record, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("in", TopicConfig::new(1))?;
/// store.create_topic("out", TopicConfig::new(1))?;
/// store.topic("in")?.append_to(0, Record::new(b"hello"))?;
///
/// let producer = store.transactional_producer("worker-1")?;
/// producer.init_transactions()?;
/// let mut consumer = store.consumer(
///     ConsumerConfig::builder()
///         .group_id("workers")
///         .enable_auto_commit(false)
///         .auto_offset_reset(OffsetReset::Earliest)
///         .build()?,
/// )?;
/// consumer.subscribe(&["in"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// producer.begin_transaction()?;
/// for r in &records {
///     producer.append("out", 0, &[Record::new(&r.value().unwrap_or_default().to_ascii_uppercase())])?;
/// }
/// let next = records.last().map_or(0, |r| r.offset() + 1);
/// producer.send_offsets_to_transaction(&[(("in".to_owned(), 0), next)], &consumer.group_metadata().unwrap())?;
/// producer.commit_transaction()?;
/// assert_eq!(store.committed_offsets("workers")?[&("in".to_owned(), 0)], 1);
///
/// let committed = store.consumer(
///     ConsumerConfig::builder()
///         .isolation_level(IsolationLevel::ReadCommitted)
///         .auto_offset_reset(OffsetReset::Earliest)
///         .build()?,
/// );
/// let mut reader = committed?;
/// reader.assign(&[("out", 0)])?;
/// let out = reader.poll(Duration::from_secs(1))?;
/// assert_eq!(out[0].value(), Some(&b"HELLO"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`commit_transaction`]: TransactionalProducer::commit_transaction
#[derive(Debug)]
pub struct TransactionalProducer {
    store: Weak<Inner>,
    transactional_id: String,
    timeout_ms: i64,
    compression: Compression,
    state: Mutex<ClientState>,
}

/// The handle's side of its transaction.
#[derive(Debug, Default)]
struct ClientState {
    /// Set by `init_transactions`.
    current: Option<(IdEpoch, Arc<ProducerSlot>)>,
    in_transaction: bool,
    /// Partitions the coordinator recorded in this transaction.
    added: std::collections::BTreeSet<TopicPartition>,
    /// The next sequence per partition, for this producer id and epoch.
    sequences: BTreeMap<TopicPartition, i32>,
    /// Offsets to commit with the transaction, and the consumer they are for.
    offsets: Option<(ConsumerGroupMetadata, BTreeMap<TopicPartition, i64>)>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<TransactionalProducer>();
};

impl TransactionalProducer {
    pub(super) fn new(store: Weak<Inner>, transactional_id: String) -> TransactionalProducer {
        TransactionalProducer {
            store,
            transactional_id,
            timeout_ms: DEFAULT_TRANSACTION_TIMEOUT_MS,
            compression: Compression::None,
            state: Mutex::new(ClientState::default()),
        }
    }

    /// This handle with `transaction.timeout.ms` set: a transaction open longer is aborted by
    /// the store (and this handle fenced). Set before
    /// [`init_transactions`](Self::init_transactions).
    #[must_use]
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> TransactionalProducer {
        self.timeout_ms = i64::try_from(timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        self
    }

    /// This handle with its batches compressed with `codec` (the producer's
    /// `compression.type`).
    #[must_use]
    pub fn with_compression(mut self, codec: Compression) -> TransactionalProducer {
        self.compression = codec;
        self
    }

    /// The transactional id.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// The producer id and epoch after [`init_transactions`](Self::init_transactions).
    pub fn producer_id_and_epoch(&self) -> Option<(i64, i16)> {
        self.state
            .lock()
            .current
            .as_ref()
            .map(|(c, _)| (c.id, c.epoch))
    }

    /// Registers the transactional id with the store (Kafka's `initTransactions`): completes
    /// the previous handle's transaction (committing it if it had decided to, aborting it
    /// otherwise) and raises the id's epoch, which fences every older handle
    /// ([`Error::ProducerFenced`] from then on).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Io`] writing the coordinator's state.
    pub fn init_transactions(&self) -> Result<()> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let coordinator = inner.txn_coordinator()?;
        let mut state = self.state.lock();
        let current = coordinator.init(&inner, &self.transactional_id, self.timeout_ms)?;
        *state = ClientState {
            current: Some(current),
            ..ClientState::default()
        };
        Ok(())
    }

    /// Starts a transaction (Kafka's `beginTransaction`).
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] before `init_transactions` or inside a transaction;
    /// [`Error::ProducerFenced`].
    pub fn begin_transaction(&self) -> Result<()> {
        let mut state = self.state.lock();
        let mine = self.current(&state)?;
        if state.in_transaction {
            return Err(self.invalid(mine, "a transaction is already under way"));
        }
        state.in_transaction = true;
        state.added.clear();
        state.offsets = None;
        Ok(())
    }

    /// Appends `records` as one batch to partition `partition` of `topic`, in the
    /// transaction. Returns its offsets.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] outside a transaction; [`Error::ProducerFenced`];
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; and those of
    /// [`Partition::append_transactional`].
    pub fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let log = inner.topic(topic)?.partition(partition)?;
        let mut state = self.state.lock();
        let mine = self.current(&state)?;
        if !state.in_transaction {
            return Err(self.invalid(mine, "append outside a transaction"));
        }
        let tp = (topic.to_owned(), partition);
        if !state.added.contains(&tp) {
            inner
                .txn_coordinator()?
                .add_partition(&inner, &self.transactional_id, mine, &tp)?;
            state.added.insert(tp.clone());
        }
        let base_sequence = state.sequences.get(&tp).copied().unwrap_or(0);
        let stamp = ProducerStamp {
            producer_id: mine.id,
            epoch: mine.epoch,
            base_sequence,
        };
        match log.append_transactional_with(stamp, records, self.compression) {
            Ok((info, _)) => {
                let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
                state
                    .sequences
                    .insert(tp, increment_sequence(base_sequence, count));
                Ok(info)
            }
            Err(Error::ProducerFenced { .. }) => Err(fenced(&self.transactional_id, mine)),
            Err(e) => Err(e),
        }
    }

    /// Appends one record where the topic's partitioner routes it, in the transaction.
    /// Returns `(partition, offset)`.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn send(&self, topic: &str, record: Record<'_>) -> Result<(u32, i64)> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let topic_handle = inner.topic(topic)?;
        drop(inner);
        let partition = topic_handle.route(&record)?;
        let info = self.append(topic, partition, std::slice::from_ref(&record))?;
        topic_handle.on_append(partition, &record);
        Ok((partition, info.base_offset))
    }

    /// Adds consumer offsets to the transaction (Kafka's `sendOffsetsToTransaction`): they
    /// are committed for `group`'s member when the transaction commits, and never otherwise.
    /// The member must own every partition now, and still own them at the commit (KIP-447): a
    /// worker that lost a partition to a rebalance, or was removed from the group while
    /// paused, cannot commit for it.
    ///
    /// # Errors
    /// [`Error::CommitRejected`] or [`Error::UnknownMember`] when the member does not own a
    /// partition (nothing added); [`Error::InvalidTxnState`] outside a transaction or for a
    /// second group in one transaction; [`Error::NegativeOffset`]; [`Error::ProducerFenced`].
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let mut state = self.state.lock();
        let mine = self.current(&state)?;
        if !state.in_transaction {
            return Err(self.invalid(mine, "offsets sent outside a transaction"));
        }
        if let Some(&(_, offset)) = offsets.iter().find(|(_, o)| *o < 0) {
            return Err(Error::NegativeOffset { offset });
        }
        if state
            .offsets
            .as_ref()
            .is_some_and(|(g, _)| g.group_id() != group.group_id())
        {
            return Err(self.invalid(mine, "offsets of a second group in one transaction"));
        }
        let coordinator = inner.coordinator.as_ref().ok_or(Error::ReadOnly)?;
        coordinator.check_owner(group.group_id(), group.member_id(), offsets)?;
        let (_, pending) = state
            .offsets
            .get_or_insert_with(|| (group.clone(), BTreeMap::new()));
        pending.extend(offsets.iter().cloned());
        Ok(())
    }

    /// Commits the transaction (Kafka's `commitTransaction`): everything appended in it, and
    /// the offsets sent with it, become visible to `read_committed` readers and to the group.
    /// Durable when it returns; a crash after the decision is completed by the next open.
    ///
    /// # Errors
    /// [`Error::CommitRejected`] / [`Error::UnknownMember`] if the consumer lost a partition of
    /// the offsets since they were sent: the transaction is aborted instead.
    /// [`Error::InvalidTxnState`] outside a transaction; [`Error::ProducerFenced`];
    /// [`Error::Io`]: if the decision was made before it, a retry (or the next open) finishes
    /// the commit.
    pub fn commit_transaction(&self) -> Result<()> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let mut state = self.state.lock();
        let mine = self.current(&state)?;
        if !state.in_transaction {
            return Err(self.invalid(mine, "commit outside a transaction"));
        }
        let offsets = state.offsets.as_ref().map(|(group, offsets)| {
            (
                group,
                offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
            )
        });
        let coordinator = inner.txn_coordinator()?;
        let result = coordinator.commit(&inner, &self.transactional_id, mine, offsets);
        match &result {
            // Decided or aborted: either way the transaction is over for this handle.
            Ok(()) | Err(Error::CommitRejected { .. } | Error::UnknownMember { .. }) => {
                state.in_transaction = false;
                state.offsets = None;
            }
            Err(_) => {}
        }
        result
    }

    /// Aborts the transaction (Kafka's `abortTransaction`): nothing appended in it is ever
    /// returned to `read_committed` readers, and its offsets are not committed.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] outside a transaction; [`Error::ProducerFenced`];
    /// [`Error::Io`].
    pub fn abort_transaction(&self) -> Result<()> {
        let inner = self.store.upgrade().ok_or(Error::Closed)?;
        let mut state = self.state.lock();
        let mine = self.current(&state)?;
        if !state.in_transaction {
            return Err(self.invalid(mine, "abort outside a transaction"));
        }
        inner
            .txn_coordinator()?
            .abort(&inner, &self.transactional_id, mine)?;
        state.in_transaction = false;
        state.offsets = None;
        Ok(())
    }

    /// The producer id and epoch, if initialized and not fenced.
    fn current(&self, state: &ClientState) -> Result<IdEpoch> {
        let Some((mine, slot)) = &state.current else {
            return Err(Error::InvalidTxnState {
                topic: String::new(),
                partition: 0,
                producer_id: -1,
                reason: "init_transactions was not called".into(),
            });
        };
        if slot.get() != *mine {
            return Err(fenced(&self.transactional_id, *mine));
        }
        Ok(*mine)
    }

    fn invalid(&self, mine: IdEpoch, reason: &str) -> Error {
        Error::InvalidTxnState {
            topic: String::new(),
            partition: 0,
            producer_id: mine.id,
            reason: format!("{}: {reason}", self.transactional_id),
        }
    }
}
