//! A local replica of a Kafka cluster's topic (feature `kafka`): the way in, kept as a Kafka
//! follower keeps its replica, so applications read it at local speed, keep reading while the
//! cluster is unreachable, and move their consumers from the cluster to it.
//!
//! [`Replicator`] makes a store topic of the same name an exact replica of the cluster topic:
//! the same partitions, the same offsets (gaps kept), and the fetched batches appended
//! verbatim (same CRC, producer fields, codec, control batches) through
//! [`Partition::append_replicated`], which validates them as a Kafka follower does and
//! rebuilds the producer state, the aborted-transaction index and the last stable offset from
//! them. Nothing above a partition's high watermark is written. The replica's log start
//! follows the cluster's. A replica topic takes no other writes ([`Error::Replica`]).
//!
//! **Resuming.** Each run resumes from the local log end. Before it appends anything it checks
//! that the cluster still continues the replica: the same topic (by id: a topic deleted and
//! created again under the same name is another topic), a log that still holds the replica's
//! last batch (same offset and CRC) and does not end below it, and a log start not beyond the
//! replica's end (records deleted before they were replicated). Any of these stops the run with
//! [`Error::ReplicationDiverged`] instead of appending.
//!
//! **Moving consumers in.** [`Replicator::copy_group`] copies a group's committed offsets from
//! the cluster; since offsets are identical, a consumer that switches from the cluster to the
//! replica with the same group id continues exactly where it stopped.
//!
//! Fetching raw batches needs Kafka's Fetch API itself (librdkafka hands out decoded
//! records), so the replicator speaks it over plain TCP with the `kafka-protocol` crate:
//! Metadata for leaders and the topic id, ListOffsets for the watermarks, Fetch as a consumer
//! (`read_uncommitted`, so aborted batches and markers come too), retried with backoff as
//! Kafka's clients retry. Only plaintext listeners are supported; group offsets are read
//! through librdkafka, whose properties (SASL, TLS) pass through but are untested here.

// It decodes bytes from the network: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod fetcher;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Store;
use crate::error::{Error, Result};
use crate::partition::{Partition, ReplicaOf};
use crate::record::BatchHeader;
use crate::topic::Topic;
use crate::{config::TopicConfig, mirror::cluster::Cluster};

use fetcher::{FetchOutcome, Fetcher};

/// The reserved consumer group that records each replica partition's last seen high
/// watermark (for its lag in `describe`), named `topiclog-replica.<topic>`.
pub fn status_group(topic: &str) -> String {
    format!("topiclog-replica.{topic}")
}

/// What a [`Replicator`] replicates, from where.
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    bootstrap_servers: String,
    topic: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
    fetch_bytes: i32,
    stop: Option<Arc<AtomicBool>>,
}

impl ReplicateOptions {
    /// Replicate cluster topic `topic` from the cluster at `bootstrap_servers` (comma-separated
    /// `host:port`, plaintext) into the store topic of the same name. Calls retry for 30 s.
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> Self {
        ReplicateOptions {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            properties: Vec::new(),
            timeout: Duration::from_secs(30),
            fetch_bytes: fetcher::PARTITION_FETCH_BYTES,
            stop: None,
        }
    }

    /// A flag that, once set (by a signal handler, say), makes [`Replicator::run_once`] and
    /// [`Replicator::follow_once`] return after the append under way: every append is whole,
    /// so the store closes cleanly and the next run resumes after it.
    pub fn stop_when(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Bytes each Fetch asks for (Kafka's `max.partition.fetch.bytes`, 1 MiB by default); a
    /// broker sends at least one whole batch however large.
    pub fn max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.fetch_bytes = bytes.max(1);
        self
    }

    /// A librdkafka property for reading group offsets ([`Replicator::copy_group`]), as
    /// Kafka's tools take them with `--command-config`.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// How long a call to the cluster is retried before it fails ([`Error::Cluster`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// One replica partition's position against its cluster partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The replica's log end offset.
    pub local_end: i64,
    /// The cluster partition's high watermark when last fetched.
    pub high_watermark: i64,
    /// The cluster partition's log start offset when last fetched.
    pub log_start: i64,
}

impl PartitionStatus {
    /// Offsets the replica is behind (0 when caught up).
    pub fn lag(&self) -> u64 {
        u64::try_from(self.high_watermark - self.local_end).unwrap_or(0)
    }
}

/// What a run did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Batches appended in this run.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Offsets they cover (records, control records and gaps alike).
    pub offsets: u64,
    /// Each partition's position.
    pub partitions: Vec<PartitionStatus>,
}

impl Progress {
    /// Offsets the replica is behind the cluster's high watermarks, over all partitions.
    pub fn lag(&self) -> u64 {
        self.partitions.iter().map(PartitionStatus::lag).sum()
    }
}

/// A local replica of one cluster topic. See the [module docs](self).
pub struct Replicator<'a> {
    store: &'a Store,
    options: ReplicateOptions,
    fetcher: Fetcher,
    of: ReplicaOf,
    topic: Arc<Topic>,
    progress: Progress,
}

impl std::fmt::Debug for Replicator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("of", &self.of)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl<'a> Replicator<'a> {
    /// Reads the cluster topic's metadata, creates the local replica topic (or checks the one
    /// there replicates this cluster topic), and checks each partition can resume.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when the cluster has no such topic (and the store no replica of
    /// it: then [`Error::ReplicationDiverged`]); [`Error::NotAReplica`] for
    /// a local topic of that name that is not a replica; [`Error::ReplicationDiverged`];
    /// [`Error::Cluster`]; the store's errors.
    pub fn new(store: &'a Store, options: ReplicateOptions) -> Result<Replicator<'a>> {
        let mut fetcher = Fetcher::new(
            &options.bootstrap_servers,
            options.timeout,
            options.fetch_bytes,
        );
        let name = options.topic.clone();
        let Some(metadata) = fetcher.metadata(&name)? else {
            // A replica whose cluster topic is gone is not a topic to look for elsewhere.
            return Err(match store.topic(&name).map(|t| t.replica_of()) {
                Ok(Some(_)) => Error::ReplicationDiverged {
                    topic: name,
                    partition: None,
                    reason: "the cluster topic was deleted".to_owned(),
                },
                _ => Error::UnknownTopic(name),
            });
        };
        let partitions = u32::try_from(metadata.leaders.len()).unwrap_or(0);
        let of = ReplicaOf {
            cluster_topic: name.clone(),
            topic_id: metadata.topic_id,
            bootstrap_servers: options.bootstrap_servers.clone(),
        };
        let topic = match store.topic(&name) {
            Ok(topic) => topic,
            Err(Error::UnknownTopic(_)) => {
                store.create_replica_topic(&name, TopicConfig::new(partitions.max(1)), &of)?
            }
            Err(e) => return Err(e),
        };
        let mut replicator = Replicator {
            store,
            options,
            fetcher,
            of,
            topic,
            progress: Progress::default(),
        };
        replicator.check_topic(partitions)?;
        for number in 0..replicator.topic.partition_count() {
            replicator.check_partition(number)?;
        }
        Ok(replicator)
    }

    /// The cluster topic this replicates.
    pub fn replica_of(&self) -> &ReplicaOf {
        &self.of
    }

    /// What the run did so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    fn diverged(&self, partition: Option<u32>, reason: String) -> Error {
        Error::ReplicationDiverged {
            topic: self.options.topic.clone(),
            partition,
            reason,
        }
    }

    /// The local topic replicates this very cluster topic, with as many partitions (grown to
    /// the cluster's count if the cluster grew).
    fn check_topic(&mut self, cluster_partitions: u32) -> Result<()> {
        let name = self.options.topic.clone();
        let local = self.topic.replica_of();
        match local {
            None => {
                let dir = self
                    .topic
                    .partitions()
                    .first()
                    .map(|p| p.dir().to_path_buf())
                    .unwrap_or_default();
                return Err(Error::NotAReplica { dir });
            }
            Some(local) if local.cluster_topic != name => {
                return Err(self.diverged(
                    None,
                    format!(
                        "the local topic replicates cluster topic {:?}",
                        local.cluster_topic
                    ),
                ));
            }
            Some(local) if local.topic_id != self.of.topic_id => {
                return Err(self.diverged(
                    None,
                    format!(
                        "the cluster topic was deleted and created again: its id is {}, the \
                         replica's {}",
                        self.of.topic_id_hex(),
                        local.topic_id_hex()
                    ),
                ));
            }
            Some(_) => {}
        }
        // Partitions made before a crash while the topic was grown, or marked only now.
        for partition in self.topic.partitions() {
            partition.make_replica(&self.of)?;
        }
        let local = self.topic.partition_count();
        if cluster_partitions < local {
            return Err(self.diverged(
                None,
                format!(
                    "the cluster topic has {cluster_partitions} partitions, the replica {local}: \
                     a topic never shrinks, so it was created again"
                ),
            ));
        }
        if cluster_partitions > local {
            self.store
                .add_replica_partitions(&name, cluster_partitions, &self.of)?;
            self.topic = self.store.topic(&name)?;
            log::info!("replica of {name}: grew to {cluster_partitions} partitions");
        }
        let known = self.progress.partitions.len() as u32;
        for partition in known..self.topic.partition_count() {
            let log = self.topic.partition(partition)?;
            self.progress.partitions.push(PartitionStatus {
                partition,
                local_end: log.next_offset(),
                high_watermark: log.next_offset(),
                log_start: log.log_start_offset(),
            });
        }
        Ok(())
    }

    /// The cluster partition still continues the replica partition (see the module docs).
    fn check_partition(&mut self, number: u32) -> Result<()> {
        let name = self.options.topic.clone();
        let log = self.topic.partition(number)?;
        let (start, end) = self.fetcher.watermarks(&name, number)?;
        self.note(number, &log, Some((start, end)));
        let Some(last) = log.last_batch()? else {
            // Nothing replicated yet (or everything deleted locally by the cluster's start).
            let local_end = log.next_offset();
            if local_end > 0 && start > local_end {
                return Err(self.diverged(
                    Some(number),
                    format!(
                        "the cluster's log starts at {start}, after the replica's end \
                         {local_end}: the records between were deleted before they were \
                         replicated"
                    ),
                ));
            }
            return Ok(());
        };
        let local_end = log.next_offset();
        if end < local_end {
            return Err(self.diverged(
                Some(number),
                format!(
                    "the cluster's log ends at {end}, below the replica's end {local_end}: it \
                     lost records the replica holds"
                ),
            ));
        }
        if start > local_end {
            return Err(self.diverged(
                Some(number),
                format!(
                    "the cluster's log starts at {start}, after the replica's end {local_end}: \
                     the records between were deleted before they were replicated"
                ),
            ));
        }
        if last.base_offset < start {
            // The cluster deleted the replica's last batch by its retention; nothing left to
            // compare it with, and its end matches.
            return Ok(());
        }
        let theirs = match self
            .fetcher
            .fetch(&name, number, last.base_offset, Duration::ZERO)?
        {
            FetchOutcome::Fetched(f) => first_batch(&f.records),
            FetchOutcome::OutOfRange | FetchOutcome::Nothing => None,
        };
        let same = theirs.is_some_and(|h| {
            h.base_offset == last.base_offset
                && h.last_offset() == last.last_offset()
                && h.crc == last.crc
        });
        if !same {
            return Err(self.diverged(
                Some(number),
                format!(
                    "the cluster's log no longer holds the replica's last batch (offsets {} to \
                     {}, CRC {:08x}): found {}",
                    last.base_offset,
                    last.last_offset(),
                    last.crc,
                    theirs.map_or("nothing there".to_owned(), |h| format!(
                        "offsets {} to {}, CRC {:08x}",
                        h.base_offset,
                        h.last_offset(),
                        h.crc
                    ))
                ),
            ));
        }
        Ok(())
    }

    /// Records partition `number`'s position (and the cluster's watermarks, when fetched).
    fn note(&mut self, number: u32, log: &Partition, cluster: Option<(i64, i64)>) {
        if let Some(status) = self.progress.partitions.get_mut(number as usize) {
            status.local_end = log.next_offset();
            if let Some((start, end)) = cluster {
                status.log_start = start;
                status.high_watermark = end;
            }
        }
    }

    /// Fetches every partition up to the high watermark it has when this run reaches it, then
    /// returns the batches appended. `progress` is called after each append.
    ///
    /// # Errors
    /// [`Error::ReplicationDiverged`]; [`Error::InvalidReplicatedBatch`] for batches the
    /// cluster sent that break the rules; [`Error::Cluster`]; the store's errors. What was
    /// appended before an error stays (the next run resumes after it).
    pub fn run_once(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<u64> {
        self.pick_up_partitions()?;
        let before = self.progress.batches;
        for number in 0..self.topic.partition_count() {
            self.catch_up(number, Duration::ZERO, progress)?;
        }
        self.save_status()?;
        Ok(self.progress.batches - before)
    }

    /// Waits up to `wait` for new batches in any partition (a long-polling Fetch, one
    /// partition after another, `wait` shared between them) and appends what came.
    ///
    /// # Errors
    /// As [`run_once`](Self::run_once).
    pub fn follow_once(
        &mut self,
        wait: Duration,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<u64> {
        self.pick_up_partitions()?;
        let before = self.progress.batches;
        let count = self.topic.partition_count().max(1);
        let share = wait / count;
        for number in 0..self.topic.partition_count() {
            self.catch_up(number, share, progress)?;
        }
        self.save_status()?;
        Ok(self.progress.batches - before)
    }

    /// Partitions added to the cluster topic since the last look; a topic re-created since.
    fn pick_up_partitions(&mut self) -> Result<()> {
        let name = self.options.topic.clone();
        let metadata = self
            .fetcher
            .metadata(&name)?
            .ok_or_else(|| self.diverged(None, "the cluster topic was deleted".to_owned()))?;
        if metadata.topic_id != self.of.topic_id {
            return Err(self.diverged(
                None,
                format!(
                    "the cluster topic was deleted and created again (id {})",
                    ReplicaOf {
                        topic_id: metadata.topic_id,
                        ..self.of.clone()
                    }
                    .topic_id_hex()
                ),
            ));
        }
        let before = self.topic.partition_count();
        self.check_topic(u32::try_from(metadata.leaders.len()).unwrap_or(0))?;
        for number in before..self.topic.partition_count() {
            self.check_partition(number)?;
        }
        Ok(())
    }

    /// Fetches partition `number` until a fetch brings nothing below the high watermark
    /// (the first fetch waiting up to `wait` for data).
    fn catch_up(
        &mut self,
        number: u32,
        mut wait: Duration,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let name = self.options.topic.clone();
        let log = self.topic.partition(number)?;
        loop {
            if self.stopping() {
                return Ok(());
            }
            let local_end = log.next_offset();
            // A fresh replica starts where the cluster's log starts.
            let from = match self.progress.partitions.get(number as usize) {
                Some(s) if local_end == 0 => s.log_start.max(0),
                _ => local_end,
            };
            let fetched = match self.fetcher.fetch(&name, number, from, wait)? {
                FetchOutcome::Fetched(f) => f,
                FetchOutcome::Nothing => return Ok(()),
                FetchOutcome::OutOfRange => {
                    // Find out why, as a resume would.
                    self.check_partition(number)?;
                    return Err(self.diverged(
                        Some(number),
                        format!("the cluster has no offset {from} any more"),
                    ));
                }
            };
            wait = Duration::ZERO;
            let whole = whole_batches(&fetched.records, fetched.high_watermark);
            let bytes = fetched.records.get(..whole.bytes).unwrap_or_default();
            if let Some(first) = whole.first
                && first.base_offset < local_end
            {
                return Err(self.diverged(
                    Some(number),
                    format!(
                        "fetching from {from}, the cluster sent a batch of offsets {} to {}, \
                         which the replica's end {local_end} falls inside",
                        first.base_offset,
                        first.last_offset()
                    ),
                ));
            }
            if !bytes.is_empty() {
                log.append_replicated(bytes)?;
                self.progress.batches += whole.batches;
                self.progress.bytes += bytes.len() as u64;
                self.progress.offsets += u64::try_from(log.next_offset() - local_end).unwrap_or(0);
            }
            let start = fetched.log_start_offset;
            if start > log.log_start_offset() && start <= log.next_offset() {
                log.replicated_log_start(start)?;
            }
            self.note(number, &log, Some((start, fetched.high_watermark)));
            progress(&self.progress);
            if bytes.is_empty() || log.next_offset() >= fetched.high_watermark {
                return Ok(());
            }
        }
    }

    /// Whether the stop flag ([`ReplicateOptions::stop_when`]) is set.
    fn stopping(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Records each partition's last seen high watermark in the status group, for `describe`.
    fn save_status(&self) -> Result<()> {
        let name = &self.options.topic;
        let offsets: Vec<((String, u32), i64)> = self
            .progress
            .partitions
            .iter()
            .map(|s| ((name.clone(), s.partition), s.high_watermark.max(0)))
            .collect();
        let group = status_group(name);
        let stored = self.store.committed_offsets(&group)?;
        if offsets.iter().any(|(tp, o)| stored.get(tp) != Some(o)) {
            self.store.reset_offsets(&group, &offsets)?;
        }
        Ok(())
    }

    /// Copies `group`'s committed offsets for this topic from the cluster into the store (the
    /// same offsets: a replica's are the cluster's). Partitions without a committed offset in
    /// the cluster are left as they are. Returns how many offsets were copied.
    ///
    /// # Errors
    /// [`Error::Cluster`]; the store's errors ([`Error::GroupNotEmpty`] while members of the
    /// group consume the replica).
    pub fn copy_group(&self, group: &str) -> Result<usize> {
        let cluster = Cluster::connect(
            &self.options.bootstrap_servers,
            &self.options.properties,
            self.options.timeout,
        )?;
        let name = &self.options.topic;
        let committed = cluster.committed(group, name, self.topic.partition_count())?;
        let offsets: Vec<((String, u32), i64)> = committed
            .into_iter()
            .map(|(partition, offset)| ((name.clone(), partition), offset))
            .collect();
        if !offsets.is_empty() {
            self.store.reset_offsets(group, &offsets)?;
        }
        Ok(offsets.len())
    }
}

/// The header of the first batch of `records`, when whole enough to read.
fn first_batch(records: &[u8]) -> Option<BatchHeader> {
    BatchHeader::parse(records).ok()
}

/// The prefix of a Fetch response's records to append.
#[derive(Debug, Default)]
struct Whole {
    bytes: usize,
    batches: u64,
    first: Option<BatchHeader>,
}

/// The whole batches at the start of `records` that end below `high_watermark` (a broker may
/// end a response inside a batch; nothing above the high watermark is written locally).
fn whole_batches(records: &[u8], high_watermark: i64) -> Whole {
    let mut whole = Whole::default();
    while let Some(rest) = records.get(whole.bytes..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let size = header.size();
        if rest.len() < size || header.last_offset() >= high_watermark {
            break;
        }
        whole.first.get_or_insert(header);
        whole.bytes += size;
        whole.batches += 1;
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchParams, Record, encode_batch};

    fn batch(base_offset: i64, records: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let params = BatchParams {
            base_offset,
            ..BatchParams::default()
        };
        let values: Vec<Record<'_>> = (0..records).map(|_| Record::new(b"v")).collect();
        encode_batch(&mut out, &params, &values, 0).unwrap();
        out
    }

    #[test]
    fn only_whole_batches_below_the_high_watermark_are_taken() {
        let bytes = [batch(0, 2), batch(2, 3), batch(5, 1)].concat();
        let all = whole_batches(&bytes, 6);
        assert_eq!((all.bytes, all.batches), (bytes.len(), 3));
        assert_eq!(all.first.map(|h| h.base_offset), Some(0));
        // The last batch reaches the high watermark: left for later.
        let below = whole_batches(&bytes, 5);
        assert_eq!(below.batches, 2);
        // A partial batch at the end is cut.
        let cut = whole_batches(&bytes[..bytes.len() - 1], 100);
        assert_eq!(cut.batches, 2);
        assert_eq!(whole_batches(&[], 100).batches, 0);
        assert_eq!(whole_batches(&[0xff; 80], 100).batches, 0);
    }
}
