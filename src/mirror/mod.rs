//! Mirroring a store's topics to a Kafka cluster (feature `kafka`): the way out for a user who
//! outgrows one machine.
//!
//! [`Mirror`] sends every record of the chosen topics to the cluster's topics of the same
//! name: same partition, same order, same key, value, headers and CreateTime timestamp, with
//! the source topic's compression (batch boundaries may differ). A missing cluster topic is
//! created with the same partition count and the source's `cleanup.policy`, `retention.ms`,
//! `retention.bytes`, `message.timestamp.type`, `max.message.bytes` and `compression.type`; a
//! cluster topic with another partition count is refused
//! ([`Error::PartitionCountMismatch`]) before anything is sent. Transactional topics are read
//! `read_committed`: aborted records and control batches never go out. Each
//! [`Mirror::run_once`] picks up topics and partitions created since (in this process or by a
//! writer in another): partitions added to a store topic are added to its cluster topic, and
//! partitions added on the cluster's side to the store topic (through a short writing open of
//! the store when the mirror's store is opened for consuming; refused with
//! [`Error::PartitionCountMismatch`] while another process holds it for writing). A topic
//! counts as grown, rather than as another topic, once the mirror has a position for it.
//!
//! **Exactly once across kills.** The mirror must be the only writer of its cluster
//! partitions. Its position (see [`position`]) is stored after the cluster acknowledged what
//! it covers; at start, the records the cluster holds beyond the stored position (sent before
//! a kill, not yet recorded) are read back and compared with the next source records, then
//! skipped; a cluster partition that does not continue the source that way is refused
//! ([`Error::MirrorDiverged`]). Within a run, an idempotent producer (`acks=all`) keeps order
//! and removes retried duplicates.
//!
//! **Consumer groups.** [`Mirror::move_groups`] commits a group's offsets to the cluster,
//! translated to the cluster offsets of the same records, so a consumer that switches to the
//! cluster with the same group id continues where it stopped. The translation counts the
//! records (under `read_committed`) between the group's offset and the mirror's position, so
//! gaps from compaction and transactions are accounted for, then checks the cluster's record
//! at the counted offset is the one the group reads next; records compacted away in the
//! source since they were mirrored make the count fall short, and the record is then found
//! further back in the cluster.
//!
//! Only plaintext `bootstrap.servers` is tested; SASL and TLS settings pass through as
//! librdkafka properties ([`MirrorOptions::property`]).

pub(crate) mod cluster;
pub mod position;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Store;
use crate::config::{CompressionType, IsolationLevel, LogConfig};
use crate::consumer::files::FileWatch;
use crate::error::{Error, Result};
use crate::partition::watch::Signal;
use crate::partition::{OwnedRecord, Partition, ReadOptions};

use cluster::Cluster;
pub use position::Position;

/// How many records a round sends to one partition before waiting for their
/// acknowledgements and storing the position.
const ROUND_RECORDS: usize = 10_000;

/// The topic settings a created cluster topic takes from its source.
const CARRIED_SETTINGS: [&str; 6] = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "message.timestamp.type",
    "max.message.bytes",
    "compression.type",
];

/// What to mirror where.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    bootstrap_servers: String,
    topics: Vec<String>,
    properties: Vec<(String, String)>,
    timeout: Duration,
}

impl MirrorOptions {
    /// Mirrors every topic to the cluster at `bootstrap_servers` (`HOST:PORT[,...]`).
    pub fn new(bootstrap_servers: impl Into<String>) -> MirrorOptions {
        MirrorOptions {
            bootstrap_servers: bootstrap_servers.into(),
            topics: Vec::new(),
            properties: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Mirrors only `topic` (may be given several times).
    pub fn topic(mut self, topic: impl Into<String>) -> MirrorOptions {
        self.topics.push(topic.into());
        self
    }

    /// A librdkafka client property (`security.protocol`, `sasl.mechanism`, ...), over
    /// topiclog's defaults.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> MirrorOptions {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// How long a call to the cluster is retried before it fails (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> MirrorOptions {
        self.timeout = timeout;
        self
    }
}

/// What a partition's round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Records sent (and acknowledged) so far in this run.
    pub records: u64,
    /// Their key, value and header bytes.
    pub bytes: u64,
    /// Records the cluster already had at start (sent by a run that was killed) and were
    /// skipped.
    pub skipped: u64,
    /// Records of the mirrored topics not yet in the cluster (below their last stable offset).
    pub lag: u64,
}

/// A mirror of a store's topics to a cluster. See the [module docs](self).
pub struct Mirror<'a> {
    store: &'a Store,
    cluster: Cluster,
    options: MirrorOptions,
    /// Per topic: its producer (with the topic's compression) and each partition's position.
    topics: BTreeMap<String, MirroredTopic>,
    progress: Progress,
    /// Fired by appends to the mirrored partitions (this process) and, through `files`, by
    /// changes of their files (a writer in another process): what [`Mirror::wait`] sleeps on.
    signal: Arc<Signal>,
    files: Option<FileWatch>,
}

impl std::fmt::Debug for Mirror<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("options", &self.options)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

struct MirroredTopic {
    sender: cluster::Sender,
    positions: BTreeMap<u32, Position>,
}

impl<'a> Mirror<'a> {
    /// Connects to the cluster, creates or checks the cluster topics, and reconciles each
    /// partition's stored position with the cluster.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] for a chosen topic the store lacks;
    /// [`Error::PartitionCountMismatch`]; [`Error::MirrorDiverged`]; [`Error::Cluster`].
    pub fn new(store: &'a Store, options: MirrorOptions) -> Result<Mirror<'a>> {
        let cluster = Cluster::connect(
            &options.bootstrap_servers,
            &options.properties,
            options.timeout,
        )?;
        let mut mirror = Mirror {
            store,
            cluster,
            options,
            topics: BTreeMap::new(),
            progress: Progress::default(),
            signal: Signal::new(),
            files: None,
        };
        mirror.files = FileWatch::new(&mirror.signal);
        mirror.pick_up_topics()?;
        Ok(mirror)
    }

    /// The chosen topics (every topic of the store when none was chosen), without the
    /// mirror's own.
    fn chosen(&self) -> Result<Vec<String>> {
        if self.options.topics.is_empty() {
            return Ok(self.store.topics());
        }
        for topic in &self.options.topics {
            self.store.topic(topic)?;
        }
        Ok(self.options.topics.clone())
    }

    /// Sets up topics and partitions not mirrored yet (new in the store, or new here).
    fn pick_up_topics(&mut self) -> Result<()> {
        for name in self.chosen()? {
            let mut topic = self.store.topic(&name)?;
            let local = topic.partition_count();
            let config = topic.config();
            // Mirrored before (in this run, or a stored position): a count that differs now
            // is a topic grown on one side since, not another topic.
            let counted = self.cluster.partition_count(&name)?;
            let mirrored = counted.is_some_and(|c| c != local)
                && (self.topics.contains_key(&name)
                    || !position::load(self.store, &name)?.is_empty());
            match counted {
                None => {
                    let settings = carried_settings(&config);
                    self.cluster.create_topic(&name, local, &settings)?;
                }
                Some(cluster) if cluster == local => {}
                Some(cluster) if mirrored && cluster < local => {
                    // Partitions added to the store: the cluster gets them.
                    self.cluster.add_partitions(&name, local)?;
                }
                Some(cluster) if mirrored => {
                    // Partitions added on the cluster's side: the store topic grows to match.
                    self.grow_store(&name, local, cluster)?;
                    topic = self.store.topic(&name)?;
                }
                Some(cluster) => {
                    return Err(Error::PartitionCountMismatch {
                        topic: name,
                        local,
                        cluster,
                    });
                }
            }
            let count = usize::try_from(topic.partition_count()).unwrap_or(usize::MAX);
            if self
                .topics
                .get(&name)
                .is_some_and(|t| t.positions.len() < count)
            {
                // Partitions added since the topic was set up (on either side, or both), or
                // one left to reconcile after an error: set up again with a new producer,
                // which learns the partitions (a running one refuses partitions it has not
                // seen until its metadata refresh, minutes away).
                self.topics.remove(&name);
            }
            if !self.topics.contains_key(&name) {
                let sender = self.cluster.producer(codec_name(&config, &topic))?;
                self.topics.insert(
                    name.clone(),
                    MirroredTopic {
                        sender,
                        positions: BTreeMap::new(),
                    },
                );
            }
            let stored = position::load(self.store, &name)?;
            for (number, log) in (0u32..).zip(topic.partitions()) {
                let known = self
                    .topics
                    .get(&name)
                    .is_some_and(|t| t.positions.contains_key(&number));
                if known {
                    continue;
                }
                let at = self.reconcile(&name, number, &log, stored.get(&number).copied())?;
                if let Some(t) = self.topics.get_mut(&name) {
                    t.positions.insert(number, at);
                }
            }
        }
        Ok(())
    }

    /// Grows store topic `name` from `local` to `cluster` partitions, as its cluster topic
    /// grew. Each new partition's position starts at its cluster partition's end (records
    /// produced there directly stay before the mirrored ones), stored before the store grows
    /// so that a kill in between never reads them as records the mirror sent. A store opened
    /// for writing grows through itself; one opened for consuming (the CLI's) through a short
    /// writing open of its directory, which only succeeds while no other process holds it for
    /// writing: otherwise [`Error::PartitionCountMismatch`], and the writer must add the
    /// partitions ([`Store::add_partitions`]).
    fn grow_store(&mut self, name: &str, local: u32, cluster: u32) -> Result<()> {
        for number in local..cluster {
            let (_, high) = self.cluster.watermarks(name, number)?;
            let start = Position {
                source: 0,
                cluster: high,
            };
            position::store(self.store, name, number, start)?;
        }
        let mismatch = || Error::PartitionCountMismatch {
            topic: name.to_owned(),
            local,
            cluster,
        };
        if !self.store.is_read_only() {
            self.store.add_partitions(name, cluster)?;
        } else {
            let options = crate::config::StoreOptions::builder()
                .create_if_missing(false)
                .build();
            let writer = match Store::open_with(self.store.dir(), options) {
                Ok(writer) => writer,
                Err(Error::Locked { .. }) => {
                    log::warn!(
                        "{name}: the cluster topic has {cluster} partitions, the store's {local}; \
                         another process holds the store for writing: add the partitions there"
                    );
                    return Err(mismatch());
                }
                Err(e) => return Err(e),
            };
            // Another writer may have grown it between our look and the open.
            if writer.topic(name)?.partition_count() < cluster {
                writer.add_partitions(name, cluster)?;
            }
            writer.close()?;
            self.store.refresh()?;
        }
        let grown = self.store.topic(name)?.partition_count();
        if grown != cluster {
            return Err(mismatch());
        }
        log::info!("{name}: grew from {local} to {cluster} partitions, as the cluster topic did");
        Ok(())
    }

    /// Where partition `number` of `topic` resumes: the stored position, moved past the
    /// records the cluster already holds beyond it, once they are checked to be the next
    /// source records.
    fn reconcile(
        &mut self,
        topic: &str,
        number: u32,
        log: &Partition,
        stored: Option<Position>,
    ) -> Result<Position> {
        let (low, high) = self.cluster.watermarks(topic, number)?;
        let mut at = stored.unwrap_or(Position {
            source: log.log_start_offset(),
            cluster: low,
        });
        let diverged = |reason: String| Error::MirrorDiverged {
            topic: topic.to_owned(),
            partition: number,
            reason,
        };
        if high < at.cluster {
            return Err(diverged(format!(
                "the cluster partition ends at offset {high}, below the {} the mirror recorded",
                at.cluster
            )));
        }
        if high == at.cluster {
            return Ok(at);
        }
        if at.cluster < low {
            return Err(diverged(format!(
                "the cluster's records {}..{low} beyond the mirror's position are gone \
                 (retention?): they cannot be checked",
                at.cluster
            )));
        }
        let theirs = self.cluster.read(topic, number, at.cluster, high)?;
        let ours = read_committed(log, at.source, theirs.len())?;
        for (i, cluster) in theirs.iter().enumerate() {
            let Some(source) = ours.get(i) else {
                return Err(diverged(format!(
                    "the cluster holds {} records beyond offset {}, more than the source has \
                     after offset {}",
                    theirs.len(),
                    at.cluster,
                    at.source
                )));
            };
            if !same_record(source, cluster) {
                return Err(diverged(format!(
                    "cluster offset {} is not source offset {} (another writer, or another \
                     source)",
                    cluster.offset, source.offset
                )));
            }
        }
        let last = ours
            .get(theirs.len() - 1)
            .map_or(at.source, |r| r.offset + 1);
        self.progress.skipped += theirs.len() as u64;
        at = Position {
            source: last,
            cluster: high,
        };
        position::store(self.store, topic, number, at)?;
        Ok(at)
    }

    /// Mirrors everything the chosen topics hold now (below each partition's last stable
    /// offset), calling `progress` after each acknowledged round. Returns the records sent.
    ///
    /// # Errors
    /// [`Error::Cluster`] (nothing unacknowledged is recorded: the next run resumes);
    /// [`Error::MirrorDiverged`] if the cluster's offsets show another writer.
    pub fn run_once(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<u64> {
        self.store.refresh()?;
        self.pick_up_topics()?;
        let mut sent = 0;
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let topic = self.store.topic(&name)?;
            for (number, log) in (0u32..).zip(topic.partitions()) {
                let _ = log.refresh();
                loop {
                    let n = self.round(&name, number, &log)?;
                    sent += n;
                    self.progress.lag = self.lag()?;
                    progress(&self.progress);
                    if n < ROUND_RECORDS as u64 {
                        break;
                    }
                }
            }
        }
        Ok(sent)
    }

    /// Sends up to [`ROUND_RECORDS`] records of one partition, waits for their
    /// acknowledgements and stores the position.
    fn round(&mut self, topic: &str, number: u32, log: &Arc<Partition>) -> Result<u64> {
        let Some(t) = self.topics.get(topic) else {
            return Ok(0);
        };
        let Some(&(mut at)) = t.positions.get(&number) else {
            return Ok(0);
        };
        if at.source < log.log_start_offset() {
            log::warn!(
                "{topic}-{number}: offsets {}..{} were deleted (retention, delete-records) before \
                 they were mirrored",
                at.source,
                log.log_start_offset()
            );
            at.source = log.log_start_offset();
            if let Some(t) = self.topics.get_mut(topic) {
                t.positions.insert(number, at);
            }
        }
        let Some(t) = self.topics.get(topic) else {
            return Ok(0);
        };
        // Taken before reading: nothing a read_committed reader can see lies below it unread.
        let stable = log.last_stable_offset();
        let records = read_committed(log, at.source, ROUND_RECORDS)?;
        if records.is_empty() {
            if stable > at.source {
                // Only aborted records and markers: step over them.
                let next = Position {
                    source: stable,
                    cluster: at.cluster,
                };
                position::store(self.store, topic, number, next)?;
                if let Some(t) = self.topics.get_mut(topic) {
                    t.positions.insert(number, next);
                }
            }
            return Ok(0);
        }
        let mut bytes = 0u64;
        let sent = records
            .iter()
            .enumerate()
            .try_for_each(|(i, record)| {
                bytes += record_bytes(record);
                t.sender.send(topic, number, record, i)
            })
            .and_then(|()| t.sender.flush(records.len()));
        let offsets = match sent {
            Ok(offsets) => offsets,
            Err(e) => {
                // Some of the round may have reached the cluster: the next run reconciles
                // this partition with the cluster again before sending.
                if let Some(t) = self.topics.get_mut(topic) {
                    t.positions.remove(&number);
                }
                return Err(e);
            }
        };
        for (i, offset) in offsets.iter().enumerate() {
            if *offset != at.cluster + i as i64 {
                return Err(Error::MirrorDiverged {
                    topic: topic.to_owned(),
                    partition: number,
                    reason: format!(
                        "the cluster gave offset {offset} where {} was due: another writer",
                        at.cluster + i as i64
                    ),
                });
            }
        }
        let last = records.last().map_or(at.source, |r| r.offset + 1);
        let next = Position {
            source: last,
            cluster: at.cluster + records.len() as i64,
        };
        position::store(self.store, topic, number, next)?;
        if let Some(t) = self.topics.get_mut(topic) {
            t.positions.insert(number, next);
        }
        self.progress.records += records.len() as u64;
        self.progress.bytes += bytes;
        Ok(records.len() as u64)
    }

    /// Records of the mirrored topics below their last stable offsets not yet sent (offsets,
    /// so gaps count).
    fn lag(&self) -> Result<u64> {
        let mut lag = 0u64;
        for (name, t) in &self.topics {
            let topic = self.store.topic(name)?;
            for (number, log) in (0u32..).zip(topic.partitions()) {
                let at = t.positions.get(&number).map_or(0, |p| p.source);
                lag += (log.last_stable_offset() - at).max(0) as u64;
            }
        }
        Ok(lag)
    }

    /// Waits up to `timeout` for something to mirror: returns at once if a mirrored partition
    /// holds records not sent yet, else when one is appended to (in this process, or by a
    /// writer in another, through the OS's file-change notification, as consumers of another
    /// process's store wait) or the store's topics change. Call
    /// [`run_once`](Mirror::run_once) after.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corrupt`] re-reading the store's files.
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        // Armed before looking: an append from here on ends the wait at once.
        self.signal.arm();
        let mut dirs = vec![self.store.dir().to_path_buf()];
        let mut pending = false;
        for (name, t) in &self.topics {
            let topic = self.store.topic(name)?;
            for (number, log) in (0u32..).zip(topic.partitions()) {
                log.watch(&self.signal);
                dirs.push(log.dir().to_path_buf());
                let _ = log.refresh();
                let at = t.positions.get(&number).map_or(0, |p| p.source);
                pending |= log.last_stable_offset() > at;
            }
        }
        if pending {
            return Ok(());
        }
        let notified = self.files.as_mut().is_some_and(|f| f.set(dirs));
        // Without notifications, the files are looked at again on a short timer.
        let step = if notified {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(50)
        };
        self.signal.wait_until(deadline.min(Instant::now() + step));
        Ok(())
    }

    /// The positions of every mirrored partition.
    pub fn positions(&self) -> BTreeMap<(String, u32), Position> {
        let mut out = BTreeMap::new();
        for (name, t) in &self.topics {
            for (number, at) in &t.positions {
                out.insert((name.clone(), *number), *at);
            }
        }
        out
    }

    /// Commits `group`'s offsets of the mirrored topics to the cluster, translated to the
    /// cluster offsets of the same records. Run it after [`run_once`](Mirror::run_once) has
    /// caught up, with no member of the group running on either side. Returns how many
    /// partitions' offsets it committed.
    ///
    /// # Errors
    /// [`Error::MirrorDiverged`] for an offset not mirrored yet or below the source's log
    /// start; [`Error::Cluster`].
    pub fn move_groups(&mut self, group: &str) -> Result<usize> {
        let committed = self.store.committed_offsets(group)?;
        let mut translated = Vec::new();
        for ((topic, number), offset) in committed {
            let Some(at) = self
                .topics
                .get(&topic)
                .and_then(|t| t.positions.get(&number).copied())
            else {
                continue;
            };
            let log = self.store.topic(&topic)?.partition(number)?;
            let diverged = |reason: String| Error::MirrorDiverged {
                topic: topic.clone(),
                partition: number,
                reason: format!("group {group:?}: {reason}"),
            };
            let counted = translate(&log, at, offset).map_err(diverged)?;
            let cluster = self
                .confirm(&topic, number, &log, offset, counted, at)?
                .ok_or_else(|| {
                    diverged(format!(
                        "the record at source offset {offset} is not found in the cluster at or \
                         below offset {counted}"
                    ))
                })?;
            translated.push((topic, number, cluster));
        }
        if !translated.is_empty() {
            self.cluster.commit_group(group, &translated)?;
        }
        Ok(translated.len())
    }

    /// Checks a translation against the cluster: the record a consumer at source `offset`
    /// reads next must be the cluster's record at `counted`. Records compacted away in the
    /// source since they were mirrored make the count fall short: the record is then found
    /// further back in the cluster (by key, value, headers and timestamp). `None` if it is
    /// not there.
    fn confirm(
        &self,
        topic: &str,
        number: u32,
        log: &Partition,
        offset: i64,
        counted: i64,
        at: Position,
    ) -> Result<Option<i64>> {
        let Some(next) = read_committed(log, offset, 1)?.into_iter().next() else {
            return Ok(Some(counted));
        };
        if next.offset >= at.source {
            // Not mirrored yet: the consumer continues at the cluster's end of the mirror.
            return Ok(Some(counted));
        }
        let (low, _) = self.cluster.watermarks(topic, number)?;
        let mut to = counted + 1;
        while to > low {
            let from = (to - 1000).max(low);
            let chunk = self.cluster.read(topic, number, from, to)?;
            if let Some(found) = chunk.iter().rev().find(|r| same_record(&next, r)) {
                return Ok(Some(found.offset));
            }
            to = from;
        }
        Ok(None)
    }

    /// The run's progress so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

/// The cluster offset of the record at source offset `offset`, given the position `at`: the
/// records (under `read_committed`) between them are counted.
fn translate(log: &Partition, at: Position, offset: i64) -> std::result::Result<i64, String> {
    if offset < log.log_start_offset() {
        return Err(format!(
            "offset {offset} is below the source's log start {}",
            log.log_start_offset()
        ));
    }
    if offset >= at.source {
        // Nothing mirrored at or past `offset`: only gaps may lie between.
        let beyond = read_committed(log, at.source, 1).map_err(|e| e.to_string())?;
        return match beyond.first() {
            Some(r) if r.offset < offset => Err(format!(
                "offset {offset} is beyond what was mirrored (source offset {})",
                at.source
            )),
            _ => Ok(at.cluster),
        };
    }
    let between = count_committed(log, offset, at.source).map_err(|e| e.to_string())?;
    Ok(at.cluster - between as i64)
}

/// Up to `max` records from `from`, as a `read_committed` reader sees them.
fn read_committed(log: &Partition, from: i64, max: usize) -> Result<Vec<OwnedRecord>> {
    let from = from.max(log.log_start_offset());
    let options = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let mut out = Vec::new();
    let mut reader = log.read_with(from, options)?;
    while out.len() < max {
        match reader.next() {
            Some(record) => out.push(record?.to_owned_record()),
            None => break,
        }
    }
    Ok(out)
}

/// How many records a `read_committed` reader sees in `from..to`.
fn count_committed(log: &Partition, from: i64, to: i64) -> Result<u64> {
    let options = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let mut n = 0;
    for record in log.read_with(from, options)? {
        if record?.offset() >= to {
            break;
        }
        n += 1;
    }
    Ok(n)
}

fn same_record(source: &OwnedRecord, cluster: &OwnedRecord) -> bool {
    source.key == cluster.key
        && source.value == cluster.value
        && source.headers == cluster.headers
        && source.timestamp == cluster.timestamp
}

fn record_bytes(record: &OwnedRecord) -> u64 {
    let len = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len) as u64;
    len(&record.key)
        + len(&record.value)
        + record
            .headers
            .iter()
            .map(|h| h.key.len() as u64 + len(&h.value))
            .sum::<u64>()
}

/// The settings a created cluster topic takes from its source.
fn carried_settings(config: &LogConfig) -> Vec<(&'static str, String)> {
    config
        .to_pairs()
        .into_iter()
        .filter(|(key, _)| CARRIED_SETTINGS.contains(key))
        .collect()
}

/// The codec records go out with: the topic's `compression.type`, or, for `producer`, the
/// codec of its first batch (`none` for an empty topic).
fn codec_name(config: &LogConfig, topic: &crate::Topic) -> &'static str {
    match config.compression_type() {
        CompressionType::Producer => topic
            .partitions()
            .iter()
            .find_map(|p| first_codec(p))
            .map_or("none", crate::record::Compression::name),
        CompressionType::Uncompressed => "none",
        CompressionType::Gzip => "gzip",
        CompressionType::Snappy => "snappy",
        CompressionType::Lz4 => "lz4",
        CompressionType::Zstd => "zstd",
    }
}

/// The codec of a partition's first batch, if it has one.
fn first_codec(log: &Partition) -> Option<crate::record::Compression> {
    let segments = crate::inspect::list_segments(log.dir()).ok()?;
    let first = segments.first()?;
    let mut reader = crate::inspect::LogFileReader::open(&first.log).ok()?;
    let scanned = reader.next_batch().ok()??;
    scanned.batch().header().compression()
}
