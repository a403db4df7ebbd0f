//! Topics: a name, N partitions, their settings, and routing records to partitions exactly as
//! a Kafka producer does (see [`partitioner`](crate::partitioner)).

use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::partition::{AppendInfo, Partition};
use crate::partitioner::Partitioner;
use crate::record::{Compression, Record};

/// A topic's settings: its partition count and the log settings of each partition.
///
/// ```
/// use topiclog::config::{LogConfig, TopicConfig};
/// let config = TopicConfig::new(6).with_log(LogConfig::builder().retention_ms(-1).build()?);
/// assert_eq!(config.partitions(), 6);
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    partitions: u32,
    log: LogConfig,
}

impl TopicConfig {
    /// `partitions` partitions (at least 1) with Kafka's default log settings.
    pub fn new(partitions: u32) -> TopicConfig {
        TopicConfig {
            partitions,
            log: LogConfig::default(),
        }
    }

    /// `partitions` partitions with log settings from Kafka-style `(key, value)` pairs, as
    /// `kafka-topics --create --partitions N --config K=V` takes them.
    ///
    /// ```
    /// use topiclog::config::TopicConfig;
    /// let config = TopicConfig::from_pairs(3, [("retention.ms", "-1")])?;
    /// assert_eq!((config.partitions(), config.log().retention_ms()), (3, -1));
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LogConfig::from_pairs`].
    pub fn from_pairs<K, V>(
        partitions: u32,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TopicConfig>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Ok(TopicConfig::new(partitions).with_log(LogConfig::from_pairs(pairs)?))
    }

    /// The same with these log settings (`segment.bytes`, `retention.ms`, ...).
    pub fn with_log(mut self, log: LogConfig) -> TopicConfig {
        self.log = log;
        self
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The log settings of each partition.
    pub fn log(&self) -> &LogConfig {
        &self.log
    }
}

/// A topic of a [`Store`](crate::Store): its partitions and how records are routed to them.
/// `Send + Sync`; shared as `Arc<Topic>`.
#[derive(Debug)]
pub struct Topic {
    name: String,
    config: RwLock<Arc<LogConfig>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
    partitioner: Arc<dyn Partitioner>,
}

impl Topic {
    pub(crate) fn new(
        name: String,
        config: LogConfig,
        partitions: Vec<Arc<Partition>>,
        partitioner: Arc<dyn Partitioner>,
    ) -> Topic {
        Topic {
            name,
            config: RwLock::new(Arc::new(config)),
            partitions: RwLock::new(partitions),
            partitioner,
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log settings of its partitions (as of now: see
    /// [`Store::alter_topic_config`](crate::Store::alter_topic_config)).
    pub fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read())
    }

    pub(crate) fn set_config(&self, config: Arc<LogConfig>) {
        *self.config.write() = config;
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    /// Partition `partition`.
    pub fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.partitions
            .read()
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions: self.partition_count(),
            })
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// The cluster topic this topic replicates, when it is a replica (see
    /// [`Store::create_replica_topic`](crate::Store::create_replica_topic)): only its
    /// replicator writes it.
    pub fn replica_of(&self) -> Option<crate::partition::ReplicaOf> {
        self.partitions.read().first()?.replica_of().cloned()
    }

    /// Appends a record where a Kafka producer would put it: a keyed record by murmur2 of its
    /// key, a keyless one to the current sticky partition (or wherever the store's
    /// [`Partitioner`] says). Returns `(partition, offset)`.
    pub fn append(&self, record: Record<'_>) -> Result<(u32, i64)> {
        let partition = self.route(&record)?;
        let offset = self.partition(partition)?.append(record)?;
        self.partitioner
            .on_append(&self.name, partition, record_bytes(&record));
        Ok((partition, offset))
    }

    /// Appends a record to the partition given (an explicit partition wins over routing).
    pub fn append_to(&self, partition: u32, record: Record<'_>) -> Result<i64> {
        self.partition(partition)?.append(record)
    }

    /// Routes each record as [`append`](Topic::append) does and appends each partition's
    /// records as one batch. Atomic per partition, not across partitions: if an append fails,
    /// the batches of partitions appended before it stay. Returns `(partition, offset)` per
    /// record, in the order given.
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<Vec<(u32, i64)>> {
        self.append_batch_compressed(records, Compression::None)
    }

    /// [`append_batch`](Topic::append_batch) with each partition's batch compressed with
    /// `codec` when the topic's `compression.type` is `producer` (the default); any other
    /// `compression.type` wins, as in
    /// [`Partition::append_batch_compressed`](crate::Partition::append_batch_compressed).
    ///
    /// ```
    /// use topiclog::{Store, record::{Compression, Record}};
    /// use topiclog::config::TopicConfig;
    ///
    /// # // Builds without the codec's cargo feature skip the example.
    /// # if !topiclog::record::is_supported(Compression::Lz4) { return Ok(()); }
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let orders = store.create_topic("orders", TopicConfig::new(2))?;
    /// let json = br#"{"customer":"c-42","items":[1,2,3],"total":99.5}"#;
    /// let placed = orders.append_batch_compressed(
    ///     &[Record::keyed(b"c-42", json), Record::keyed(b"c-7", json)],
    ///     Compression::Lz4,
    /// )?;
    /// assert_eq!(placed.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`append_batch`](Topic::append_batch); [`Error::InvalidConfig`] when this build does
    /// not include the codec (its cargo feature is off).
    pub fn append_batch_compressed(
        &self,
        records: &[Record<'_>],
        codec: Compression,
    ) -> Result<Vec<(u32, i64)>> {
        let mut routes = Vec::with_capacity(records.len());
        for record in records {
            let partition = self.route(record)?;
            // Counted now, so a sticky partitioner moves on within one batch as it would across
            // single appends.
            self.partitioner
                .on_append(&self.name, partition, record_bytes(record));
            routes.push(partition);
        }
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| routes[i]);
        let mut result = vec![(0u32, 0i64); records.len()];
        for group in order.chunk_by(|&a, &b| routes[a] == routes[b]) {
            let partition = routes[group[0]];
            let batch: Vec<Record<'_>> = group.iter().map(|&i| records[i]).collect();
            let AppendInfo { base_offset, .. } = self
                .partition(partition)?
                .append_batch_compressed(&batch, codec)?;
            for (n, &i) in group.iter().enumerate() {
                result[i] = (partition, base_offset + n as i64);
            }
        }
        Ok(result)
    }

    /// The partition the partitioner picks for `record`.
    pub(crate) fn route(&self, record: &Record<'_>) -> Result<u32> {
        let partitions = self.partition_count();
        let partition =
            self.partitioner
                .partition(&self.name, record.key, record.value, partitions);
        if partition >= partitions {
            return Err(Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions,
            });
        }
        Ok(partition)
    }

    /// Tells the partitioner that `record` went to `partition` (sticky partitioning counts it).
    pub(crate) fn on_append(&self, partition: u32, record: &Record<'_>) {
        self.partitioner
            .on_append(&self.name, partition, record_bytes(record));
    }

    pub(crate) fn push_partitions(&self, added: Vec<Arc<Partition>>) {
        self.partitions.write().extend(added);
    }
}

/// The bytes a record adds to a batch, as the sticky partitioner counts them.
fn record_bytes(record: &Record<'_>) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
        .sum();
    record.key.map_or(0, <[u8]>::len) + record.value.map_or(0, <[u8]>::len) + headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rules() {
        for ok in [
            "a",
            "orders",
            "Orders.v2_x-1",
            "__consumer_offsets",
            &"x".repeat(249),
        ] {
            assert!(crate::layout::validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", "a:b", &"x".repeat(250)] {
            assert!(
                matches!(
                    crate::layout::validate_topic_name(bad),
                    Err(Error::InvalidTopicName { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
