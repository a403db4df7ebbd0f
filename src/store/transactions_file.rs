//! The transaction coordinator's state, `topiclog-transactions` in the store directory (Kafka
//! keeps it in the `__transaction_state` topic; a file here, since a broker adopting the store
//! would take a directory for a partition). It records, per transactional id, the producer id
//! and epoch, the state of its current transaction, the partitions it wrote to and the
//! consumer offsets it is to commit; and the coordinator epoch, raised at every writable open
//! of the store and stamped into every marker.
//!
//! Format (UTF-8 text, sealed by a checksum line, replaced atomically):
//!
//! ```text
//! topiclog-transactions 1
//! coordinator-epoch 4
//! txn <id> <producer id> <epoch> <state> <timeout ms> <started ms>
//! partition <topic> <partition>                    (one per partition in the transaction)
//! group <group>                                    (at most one: the offsets' group)
//! offset <topic> <partition> <offset>              (one per offset to commit)
//! crc32c <checksum>
//! ```
//!
//! Names are percent-encoded. `<state>` is Kafka's: `Empty`, `Ongoing`, `PrepareCommit`,
//! `PrepareAbort`, `CompleteCommit`, `CompleteAbort`; `<started ms>` is -1 with no
//! transaction under way.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::group::TopicPartition;
use crate::layout::TRANSACTIONS_FILE;
use crate::percent;

const HEADER: &str = "topiclog-transactions 1";

/// Where a transactional id's transaction stands (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxnState {
    /// No transaction under way.
    Empty,
    /// A transaction is under way: it has written to the partitions listed.
    Ongoing,
    /// The producer asked to commit: the decision is made and survives a crash, the markers
    /// may not all be written yet.
    PrepareCommit,
    /// The producer (or a timeout, or a fencing producer) asked to abort.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn parse(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether a transaction is under way or being completed (its markers may be missing).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One transactional id's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnEntry {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) state: TxnState,
    /// `transaction.timeout.ms`.
    pub(crate) timeout_ms: i64,
    /// When the transaction under way began (its first partition), or -1.
    pub(crate) started_ms: i64,
    pub(crate) partitions: BTreeSet<TopicPartition>,
    /// The group whose offsets commit with the transaction, and those offsets.
    pub(crate) offsets: Option<(String, BTreeMap<TopicPartition, i64>)>,
}

impl TxnEntry {
    /// A new id's record: no transaction.
    pub(crate) fn new(producer_id: i64, epoch: i16, timeout_ms: i64) -> TxnEntry {
        TxnEntry {
            producer_id,
            epoch,
            state: TxnState::Empty,
            timeout_ms,
            started_ms: -1,
            partitions: BTreeSet::new(),
            offsets: None,
        }
    }

    /// The record after its transaction completed as `state`: nothing under way.
    pub(crate) fn completed(&self, state: TxnState) -> TxnEntry {
        TxnEntry {
            state,
            started_ms: -1,
            partitions: BTreeSet::new(),
            offsets: None,
            ..self.clone()
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TxnRegistry {
    pub(crate) coordinator_epoch: i32,
    pub(crate) txns: BTreeMap<String, TxnEntry>,
}

/// Encodes the registry (without its checksum line).
pub(crate) fn encode(registry: &TxnRegistry) -> String {
    let mut text = format!(
        "{HEADER}\ncoordinator-epoch {}\n",
        registry.coordinator_epoch
    );
    for (id, e) in &registry.txns {
        let _ = writeln!(
            text,
            "txn {} {} {} {} {} {}",
            percent::encode(id),
            e.producer_id,
            e.epoch,
            e.state,
            e.timeout_ms,
            e.started_ms
        );
        for (topic, partition) in &e.partitions {
            let _ = writeln!(text, "partition {} {partition}", percent::encode(topic));
        }
        if let Some((group, offsets)) = &e.offsets {
            let _ = writeln!(text, "group {}", percent::encode(group));
            for ((topic, partition), offset) in offsets {
                let _ = writeln!(
                    text,
                    "offset {} {partition} {offset}",
                    percent::encode(topic)
                );
            }
        }
    }
    text
}

/// Decodes the registry; `Err` says where (the line's byte position) and what is wrong.
pub(crate) fn decode(text: &str) -> std::result::Result<TxnRegistry, (u64, &'static str)> {
    let mut lines = crate::sealed::lines(text).filter(|(_, l)| !l.trim().is_empty());
    if !matches!(lines.next(), Some((_, HEADER))) {
        return Err((0, "not a version 1 transactions file"));
    }
    let (at, line) = lines.next().unwrap_or((text.len() as u64, ""));
    let coordinator_epoch = line
        .strip_prefix("coordinator-epoch ")
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|&n| n >= 0)
        .ok_or((at, "malformed coordinator-epoch line"))?;
    let mut registry = TxnRegistry {
        coordinator_epoch,
        txns: BTreeMap::new(),
    };
    let mut current: Option<(String, TxnEntry)> = None;
    for (at, line) in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["txn", id, pid, epoch, state, timeout, started] => {
                if let Some((id, entry)) = current.take() {
                    insert(&mut registry, id, entry, at)?;
                }
                let id = percent::decode(id)
                    .filter(|i| !i.is_empty())
                    .ok_or((at, "malformed transactional id"))?;
                let (Ok(pid), Ok(epoch), Some(state), Ok(timeout), Ok(started)) = (
                    pid.parse::<i64>(),
                    epoch.parse::<i16>(),
                    TxnState::parse(state),
                    timeout.parse::<i64>(),
                    started.parse::<i64>(),
                ) else {
                    return Err((at, "malformed transaction line"));
                };
                if pid < 0 || epoch < 0 || timeout <= 0 || started < -1 {
                    return Err((at, "transaction fields out of range"));
                }
                current = Some((
                    id,
                    TxnEntry {
                        started_ms: started,
                        state,
                        ..TxnEntry::new(pid, epoch, timeout)
                    },
                ));
            }
            ["partition", topic, partition] => {
                let (Some((_, entry)), Some(topic), Ok(partition)) = (
                    current.as_mut(),
                    percent::decode(topic),
                    partition.parse::<u32>(),
                ) else {
                    return Err((at, "malformed partition line"));
                };
                entry.partitions.insert((topic, partition));
            }
            ["group", group] => {
                let (Some((_, entry)), Some(group)) = (current.as_mut(), percent::decode(group))
                else {
                    return Err((at, "malformed group line"));
                };
                if entry.offsets.is_some() {
                    return Err((at, "a transaction lists two groups"));
                }
                entry.offsets = Some((group, BTreeMap::new()));
            }
            ["offset", topic, partition, offset] => {
                let Some((
                    _,
                    TxnEntry {
                        offsets: Some((_, offsets)),
                        ..
                    },
                )) = current.as_mut()
                else {
                    return Err((at, "an offset line outside a group"));
                };
                let (Some(topic), Ok(partition), Ok(offset)) = (
                    percent::decode(topic),
                    partition.parse::<u32>(),
                    offset.parse::<i64>(),
                ) else {
                    return Err((at, "malformed offset line"));
                };
                if offset < 0 {
                    return Err((at, "negative offset"));
                }
                offsets.insert((topic, partition), offset);
            }
            _ => return Err((at, "unknown line")),
        }
    }
    if let Some((id, entry)) = current.take() {
        insert(&mut registry, id, entry, text.len() as u64)?;
    }
    Ok(registry)
}

fn insert(
    registry: &mut TxnRegistry,
    id: String,
    entry: TxnEntry,
    at: u64,
) -> std::result::Result<(), (u64, &'static str)> {
    match registry.txns.insert(id, entry) {
        None => Ok(()),
        Some(_) => Err((at, "a transactional id is listed twice")),
    }
}

/// Reads the registry; an absent file is an empty one.
pub(crate) fn read(disk: &dyn Disk, dir: &Path) -> Result<TxnRegistry> {
    let path = dir.join(TRANSACTIONS_FILE);
    let bytes = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(f) => f.read_all()?,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TxnRegistry::default());
        }
        Err(e) => return Err(e),
    };
    let bytes = crate::sealed::open(&bytes, &path, crate::sealed::Required::Yes)?;
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Error::corrupt(
            &path,
            0,
            Corruption::Metadata("transactions file is not UTF-8"),
        )
    })?;
    decode(text).map_err(|(at, why)| Error::corrupt(&path, at, Corruption::Metadata(why)))
}

/// Writes the registry atomically; durably unless `durable` is false (a state a crash may
/// lose without harm: recovery redoes what it says is done).
pub(crate) fn write(
    disk: &dyn Disk,
    dir: &Path,
    registry: &TxnRegistry,
    durable: bool,
) -> Result<()> {
    let text = crate::sealed::seal(encode(registry));
    let path = dir.join(TRANSACTIONS_FILE);
    match durable {
        true => disk::write_atomic(disk, &path, text.as_bytes()),
        false => disk::write_atomic_unsynced(disk, &path, text.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnRegistry {
        let mut ongoing = TxnEntry::new(7, 3, 60_000);
        ongoing.state = TxnState::Ongoing;
        ongoing.started_ms = 1_700_000_000_000;
        ongoing.partitions.insert(("out put".into(), 2));
        ongoing.partitions.insert(("audit".into(), 0));
        ongoing.offsets = Some((
            "exactly once".into(),
            BTreeMap::from([(("input".into(), 1), 42), (("input".into(), 3), 0)]),
        ));
        TxnRegistry {
            coordinator_epoch: 4,
            txns: BTreeMap::from([
                ("worker-1".into(), ongoing),
                ("idle%".into(), TxnEntry::new(8, 0, 1_000)),
            ]),
        }
    }

    #[test]
    fn round_trips_with_odd_names() {
        let registry = sample();
        let text = encode(&registry);
        assert_eq!(
            text,
            "topiclog-transactions 1\ncoordinator-epoch 4\n\
             txn idle%25 8 0 Empty 1000 -1\n\
             txn worker-1 7 3 Ongoing 60000 1700000000000\n\
             partition audit 0\npartition out%20put 2\n\
             group exactly%20once\noffset input 1 42\noffset input 3 0\n"
        );
        assert_eq!(decode(&text), Ok(registry));
        assert_eq!(
            decode("topiclog-transactions 1\ncoordinator-epoch 0\n"),
            Ok(TxnRegistry::default())
        );
    }

    #[test]
    fn malformed_files_are_refused_where_they_break() {
        for text in [
            "",
            "topiclog-transactions 2\ncoordinator-epoch 0\n",
            "topiclog-transactions 1\n",
            "topiclog-transactions 1\ncoordinator-epoch -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\npartition t 0\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Sideways 10 -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a -1 0 Empty 10 -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Empty 0 -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Empty 10 -1\ntxn a 2 0 Empty 10 -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Ongoing 10 5\noffset t 0 1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Ongoing 10 5\ngroup g\noffset t 0 -1\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Ongoing 10 5\ngroup g\ngroup h\n",
            "topiclog-transactions 1\ncoordinator-epoch 0\nsomething else\n",
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
        let text = "topiclog-transactions 1\ncoordinator-epoch 0\ntxn a 1 0 Empty x -1\n";
        assert_eq!(decode(text).map_err(|(at, _)| at), Err(44));
    }
}
