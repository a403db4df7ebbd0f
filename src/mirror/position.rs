//! Where a mirror stands: for each partition, the pair (source offset, cluster offset) that
//! says "the records of the source below this offset are the cluster's records below that
//! one". It is kept as the committed offsets of a reserved consumer group per topic,
//! `topiclog-mirror.<topic>`, through the groups' commit path (atomic and durable, one file
//! per group): the partition's source offset under the name `source`, its cluster offset
//! under `cluster`. Both change in one commit, so a crash leaves the old pair or the new.
//!
//! The pair is a hint: the cluster is the truth. At start, the records the cluster holds
//! beyond the pair (sent, but their pair not committed before a crash) are compared with the
//! next source records and skipped (see [`super::Mirror`]).

use std::collections::BTreeMap;

use crate::Store;
use crate::error::Result;

/// The reserved group's name prefix.
pub const GROUP_PREFIX: &str = "topiclog-mirror.";
const SOURCE: &str = "source";
const CLUSTER: &str = "cluster";

/// The reserved group holding `topic`'s mirror positions.
pub fn group_of(topic: &str) -> String {
    format!("{GROUP_PREFIX}{topic}")
}

/// A partition's mirror position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The next source offset to mirror: every record below it is in the cluster.
    pub source: i64,
    /// The cluster offset the record at `source` will get (the cluster's end when it was
    /// stored).
    pub cluster: i64,
}

/// The stored positions of `topic`'s partitions.
///
/// # Errors
/// [`Error::Corrupt`](crate::Error::Corrupt) for a damaged group file; [`Error::Io`](crate::Error::Io).
pub fn load(store: &Store, topic: &str) -> Result<BTreeMap<u32, Position>> {
    let offsets = store.committed_offsets(&group_of(topic))?;
    let mut out = BTreeMap::new();
    for ((name, partition), offset) in &offsets {
        if name != SOURCE {
            continue;
        }
        if let Some(&cluster) = offsets.get(&(CLUSTER.to_owned(), *partition)) {
            out.insert(
                *partition,
                Position {
                    source: *offset,
                    cluster,
                },
            );
        }
    }
    Ok(out)
}

/// Stores `partition`'s position (one atomic commit of both offsets).
///
/// # Errors
/// As [`Store::reset_offsets`].
pub fn store(store: &Store, topic: &str, partition: u32, position: Position) -> Result<()> {
    store.reset_offsets(
        &group_of(topic),
        &[
            ((SOURCE.to_owned(), partition), position.source),
            ((CLUSTER.to_owned(), partition), position.cluster),
        ],
    )
}
