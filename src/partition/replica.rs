//! The replica marker, `.topiclog_replica`: a partition directory holding it is a local
//! replica of a Kafka cluster's partition, written only by its replicator (see
//! [`Partition::append_replicated`](super::Partition::append_replicated)). Every other write
//! path refuses it with [`Error::Replica`], also when the partition is opened alone, outside
//! its store: the marker lives beside the segments, not in the store's registry.
//!
//! Format (UTF-8 text; every line ends in `\n`):
//!
//! ```text
//! topiclog-replica 1
//! topic <the cluster topic's name>
//! topic-id <the cluster topic's id: 32 hex digits>
//! bootstrap <the bootstrap servers it was replicated from>
//! crc32c <8 hex digits: CRC-32C of every byte before this line>
//! ```
//!
//! A marker that fails its checks fails the open ([`Error::Corrupt`] naming the file): a
//! replica read as an ordinary partition would take writes the cluster never made.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt::Write as _;
use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};
use crate::record::{Batch, BatchHeader};
use crate::segment::{OffsetBounds, offsets_problem};

use super::producer_state::walk_headers;
use super::writer::Appended;
use super::{AppendInfo, Partition};

/// File name of the marker in a partition directory.
pub(crate) const REPLICA_FILE: &str = ".topiclog_replica";
const HEADER: &str = "topiclog-replica 1";

/// What a replica partition replicates: the cluster topic (by name and by id, so a topic
/// deleted and created again under the same name is told apart) and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaOf {
    /// The cluster topic's name.
    pub cluster_topic: String,
    /// The cluster topic's id (Kafka's `Uuid`, 16 bytes), as Metadata v10 and later return it.
    pub topic_id: [u8; 16],
    /// The bootstrap servers the replica was made from (informational: a replicator may be
    /// pointed at other brokers of the same cluster).
    pub bootstrap_servers: String,
}

impl ReplicaOf {
    /// The topic id as 32 lowercase hex digits (as the marker stores it).
    pub fn topic_id_hex(&self) -> String {
        self.topic_id
            .iter()
            .fold(String::with_capacity(32), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

/// Encodes the marker's contents, sealed with its checksum line (see [`crate::sealed`]).
fn encode(of: &ReplicaOf) -> String {
    crate::sealed::seal(format!(
        "{HEADER}\ntopic {}\ntopic-id {}\nbootstrap {}\n",
        of.cluster_topic,
        of.topic_id_hex(),
        of.bootstrap_servers
    ))
}

/// Decodes a marker's body (its checksum line already checked); `Err` says why it cannot be
/// trusted.
fn decode(body: &str) -> std::result::Result<ReplicaOf, &'static str> {
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err("unknown marker version");
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
    };
    let cluster_topic = field("topic").ok_or("malformed topic line")?.to_owned();
    let id = field("topic-id").ok_or("malformed topic-id line")?;
    let bootstrap_servers = field("bootstrap")
        .ok_or("malformed bootstrap line")?
        .to_owned();
    if lines.next().is_some() {
        return Err("unexpected lines");
    }
    if cluster_topic.is_empty() {
        return Err("empty topic name");
    }
    Ok(ReplicaOf {
        cluster_topic,
        topic_id: parse_hex_id(id).ok_or("malformed topic id")?,
        bootstrap_servers,
    })
}

/// 32 hex digits as 16 bytes.
fn parse_hex_id(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// Reads the marker of the partition in `dir`: `None` if there is none.
///
/// # Errors
/// [`Error::Corrupt`] for a marker that fails its checks; [`Error::Io`].
pub(crate) fn read(disk: &dyn Disk, dir: &Path) -> Result<Option<ReplicaOf>> {
    let path = dir.join(REPLICA_FILE);
    let file = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    let body = crate::sealed::open(&bytes, &path, crate::sealed::Required::Yes)?;
    let decoded = std::str::from_utf8(body)
        .map_err(|_| "not UTF-8")
        .and_then(decode);
    decoded
        .map(Some)
        .map_err(|why| Error::corrupt(path, 0, Corruption::Metadata(why)))
}

/// Writes the marker durably (the directory synced too).
pub(crate) fn write(disk: &dyn Disk, dir: &Path, of: &ReplicaOf) -> Result<()> {
    if of.cluster_topic.is_empty() || of.cluster_topic.contains(['\n', '\r']) {
        return Err(Error::InvalidTopicName {
            name: of.cluster_topic.clone(),
            reason: "a replica's cluster topic name must be one non-empty line",
        });
    }
    if of.bootstrap_servers.contains(['\n', '\r']) {
        return Err(Error::InvalidConfig {
            key: "bootstrap.servers",
            value: of.bootstrap_servers.clone(),
            reason: "must be one line".into(),
        });
    }
    disk::write_atomic(disk, &dir.join(REPLICA_FILE), encode(of).as_bytes())
}

impl Partition {
    /// Makes this partition a replica of `of`: writes the replica marker durably, after which
    /// only [`append_replicated`](Partition::append_replicated) and
    /// [`replicated_log_start`](Partition::replicated_log_start) write it; every other write
    /// is refused with [`Error::Replica`], in this process and in any later open. Meant for a
    /// new partition: it must hold no record and have never held one (log end offset 0), since
    /// a replica's offsets are the cluster's. Making a replica of the same cluster topic (name
    /// and id) again changes nothing.
    ///
    /// # Errors
    /// [`Error::ReplicaTargetNotEmpty`]; [`Error::Replica`] when it replicates another topic
    /// already; [`Error::ReadOnly`]; [`Error::Io`].
    pub fn make_replica(&self, of: &ReplicaOf) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let shared = &*self.shared;
        // Under the writer lock: no append lands between the check and the marker.
        let _writer = shared.writer.lock();
        if let Some(existing) = shared.replica.get() {
            if existing.cluster_topic == of.cluster_topic && existing.topic_id == of.topic_id {
                return Ok(());
            }
            return Err(self.replica_error(existing));
        }
        let log_end = shared.next_offset();
        if log_end != 0 {
            return Err(Error::ReplicaTargetNotEmpty {
                dir: shared.dir.clone(),
                log_end,
            });
        }
        write(&*shared.disk, &shared.dir, of)?;
        let _ = shared.replica.set(of.clone());
        Ok(())
    }

    /// Appends record batches fetched from a Kafka leader, verbatim, as a follower replica
    /// appends them (Kafka's replication origin): same offsets (gaps kept), CRC, producer
    /// fields, codec, timestamps and control batches. `batches` holds whole v2 batches, as a
    /// Fetch response's records carry them once a trailing partial batch is cut off.
    ///
    /// Each batch is checked as a follower checks it: its framing, its CRC-32C, and offsets
    /// that start at or after the log end offset and after the batch before it. No sequence or
    /// epoch check is made; the producer state, the aborted-transaction index (`.txnindex`)
    /// and the last stable offset are rebuilt from the batches, so `read_committed` reads and
    /// a later open see the cluster's transactions. The append is durable when it returns
    /// under the durable policy (one group commit for all of `batches`). Returns the offsets
    /// of the first and last record appended, `None` for no batch.
    ///
    /// Nothing is written when a check fails. An I/O error partway leaves the batches before
    /// it appended: a follower fetches again from the new [`next_offset`](Partition::next_offset).
    ///
    /// # Errors
    /// [`Error::NotAReplica`] without a replica marker; [`Error::InvalidReplicatedBatch`];
    /// [`Error::OffsetOutOfRange`] for a first batch below the log end offset;
    /// [`Error::ReadOnly`]; [`Error::Closed`]; [`Error::Io`].
    pub fn append_replicated(&self, batches: &[u8]) -> Result<Option<AppendInfo>> {
        self.check_replicator_write()?;
        let shared = &*self.shared;
        let parsed = self.check_replicated(batches)?;
        let wall_ms = crate::config::wall_ms();
        let (mut first, mut last, mut commit) = (None, None, None);
        let mut next = parsed.iter();
        let mut pending = next.next();
        while let Some(batch) = pending {
            let appended = shared
                .writer
                .lock()
                .append_replicated(shared, batch, wall_ms)?;
            let info = match appended {
                Appended::Done(info) => info,
                Appended::Commit(info, seq) => {
                    shared.commit.accepted(seq);
                    commit = Some(seq);
                    info
                }
                Appended::CommitFirst(seq) => {
                    shared.commit_through(seq)?;
                    continue;
                }
                Appended::Duplicate(..) => {
                    return Err(Error::Internal("a replicated append reported a duplicate"));
                }
            };
            first.get_or_insert(info.base_offset);
            last = Some(info.last_offset);
            pending = next.next();
        }
        if let Some(seq) = commit {
            shared.commit_through(seq)?;
        }
        Ok(first
            .zip(last)
            .map(|(base_offset, last_offset)| AppendInfo {
                base_offset,
                last_offset,
            }))
    }

    /// The header of the log's last batch (what a replicator compares with the cluster's batch
    /// at the same offset before it resumes), `None` for a log without batches.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged header; [`Error::Io`].
    pub fn last_batch(&self) -> Result<Option<BatchHeader>> {
        let segments = self.shared.segments();
        for segment in segments.iter().rev() {
            let next = segment.next_offset();
            if segment.size() == 0 || next <= segment.base_offset() {
                continue;
            }
            let from = segment.position_for(next - 1)?;
            let mut last = None;
            walk_headers(segment, from, |_, header, _| {
                last = Some(*header);
                std::ops::ControlFlow::Continue(())
            })?;
            if last.is_some() {
                return Ok(last);
            }
        }
        Ok(None)
    }

    /// Frames and checks every batch of `bytes` before any is appended: whole batches, valid
    /// CRCs, each starting after the one before.
    fn check_replicated<'a>(&self, bytes: &'a [u8]) -> Result<Vec<Batch<'a>>> {
        let invalid = |position: usize, kind: Corruption| Error::InvalidReplicatedBatch {
            dir: self.shared.dir.clone(),
            position,
            kind,
        };
        let mut batches = Vec::new();
        let mut position = 0;
        let mut at_least = i64::MIN;
        while position < bytes.len() {
            let rest = bytes.get(position..).unwrap_or_default();
            let batch = Batch::parse(rest).map_err(|e| invalid(position, Corruption::Batch(e)))?;
            batch
                .verify_crc()
                .map_err(|e| invalid(position, Corruption::Batch(e)))?;
            let header = batch.header();
            let bounds = OffsetBounds {
                segment_base: header.base_offset,
                at_least,
                end: None,
            };
            if let Some(kind) = offsets_problem(bounds, header) {
                return Err(invalid(position, kind));
            }
            at_least = header.next_offset();
            position += batch.size();
            batches.push(batch);
        }
        Ok(batches)
    }

    /// Follows the cluster's log start offset (Kafka's follower does it from each Fetch
    /// response): records below `log_start` can no longer be read and the segments wholly
    /// below it are deleted, as [`delete_records`](Partition::delete_records) does. A start
    /// at or below the current one changes nothing. Returns the log start offset.
    ///
    /// # Errors
    /// [`Error::NotAReplica`]; [`Error::OffsetOutOfRange`] for a start past the log end offset
    /// (the replicator must fetch up to it first); [`Error::ReadOnly`]; [`Error::Closed`];
    /// [`Error::Io`].
    pub fn replicated_log_start(&self, log_start: i64) -> Result<i64> {
        self.check_replicator_write()?;
        let shared = &*self.shared;
        shared.writer.lock().delete_records(shared, log_start)
    }

    /// Refuses a replicator's write to a partition that is read-only or not a replica.
    fn check_replicator_write(&self) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        match self.shared.replica.get() {
            Some(_) => Ok(()),
            None => Err(Error::NotAReplica {
                dir: self.shared.dir.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of() -> ReplicaOf {
        ReplicaOf {
            cluster_topic: "orders".into(),
            topic_id: [0xab; 16],
            bootstrap_servers: "127.0.0.1:9092".into(),
        }
    }

    /// Decodes sealed marker text as `read` does.
    fn decode_sealed(text: &str) -> std::result::Result<ReplicaOf, String> {
        let body = crate::sealed::open(
            text.as_bytes(),
            Path::new(REPLICA_FILE),
            crate::sealed::Required::Yes,
        )
        .map_err(|e| e.to_string())?;
        decode(std::str::from_utf8(body).map_err(|e| e.to_string())?).map_err(str::to_owned)
    }

    #[test]
    fn round_trip() {
        let text = encode(&of());
        assert!(text.starts_with("topiclog-replica 1\ntopic orders\ntopic-id abababab"));
        assert_eq!(decode_sealed(&text), Ok(of()));
        let empty_bootstrap = ReplicaOf {
            bootstrap_servers: String::new(),
            ..of()
        };
        assert_eq!(
            decode_sealed(&encode(&empty_bootstrap)),
            Ok(empty_bootstrap)
        );
    }

    #[test]
    fn damage_is_detected() {
        let text = encode(&of());
        assert!(decode_sealed(&text.replacen("orders", "orderz", 1)).is_err());
        // (Only the final newline gone leaves every byte the checksum covers: accepted.)
        for cut in 0..text.len() - 1 {
            assert!(decode_sealed(&text[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_sealed(&format!("{text}x")).is_err());
        assert_eq!(
            decode("topiclog-replica 2\n"),
            Err("unknown marker version")
        );
        assert_eq!(parse_hex_id(&"g".repeat(32)), None);
        assert_eq!(parse_hex_id("ab"), None);
    }
}
