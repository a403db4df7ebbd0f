//! The Kafka cluster, through librdkafka (the `rdkafka` crate): metadata, topic creation,
//! watermarks, reading records back, an idempotent producer, and group offset commits. Every
//! failure becomes [`Error::Cluster`] with its [`ClusterErrorKind`]; calls that Kafka's clients
//! retry (timeouts, a broker not reachable yet, a leader moving) are retried here with
//! backoff until the run's timeout.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{ClusterErrorKind, Error, Result};
use crate::partition::OwnedRecord;

/// A connection to the cluster.
pub(crate) struct Cluster {
    config: ClientConfig,
    admin: AdminClient<DefaultClientContext>,
    reader: BaseConsumer,
    timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `error` as topiclog's, with what was being done.
pub(crate) fn error(op: &'static str, error: &KafkaError) -> Error {
    let kind = match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut,
        ) => ClusterErrorKind::Timeout,
        Some(
            RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::Resolve,
        ) => ClusterErrorKind::Connection,
        // Also librdkafka's local codes, while a new topic's metadata is on its way.
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition,
        ) => ClusterErrorKind::UnknownTopic,
        Some(code) if (code as i32) > 0 => ClusterErrorKind::Broker(code as i32),
        _ => ClusterErrorKind::Client,
    };
    Error::Cluster {
        op,
        kind,
        message: error.to_string(),
    }
}

/// Whether Kafka's clients would retry after `error`.
fn retriable(error: &Error) -> bool {
    matches!(
        error,
        Error::Cluster {
            kind: ClusterErrorKind::Timeout
                | ClusterErrorKind::Connection
                | ClusterErrorKind::UnknownTopic,
            ..
        }
    )
}

impl Cluster {
    /// Connects (lazily: librdkafka connects on the first call) with `properties` over the
    /// defaults.
    pub(crate) fn connect(
        bootstrap: &str,
        properties: &[(String, String)],
        timeout: Duration,
    ) -> Result<Cluster> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "topiclog-mirror")
            .set("socket.timeout.ms", timeout.as_millis().to_string());
        for (key, value) in properties {
            config.set(key, value);
        }
        let admin = config
            .create()
            .map_err(|e| error("creating the admin client", &e))?;
        let mut reader_config = config.clone();
        // librdkafka wants a group id even to assign; this one never joins.
        reader_config
            .set("group.id", "topiclog-mirror-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let reader = reader_config
            .create()
            .map_err(|e| error("creating the reader", &e))?;
        Ok(Cluster {
            config,
            admin,
            reader,
            timeout,
        })
    }

    /// Runs `op` until it succeeds, fails for good, or the timeout passes (backoff 100 ms,
    /// doubling to 2 s).
    fn retry<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            match op() {
                Err(e) if retriable(&e) && Instant::now() + backoff < deadline => {
                    log::debug!("retrying after {e}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                result => return result,
            }
        }
    }

    /// The partition count of `topic` in the cluster, or `None` if it has none.
    pub(crate) fn partition_count(&self, topic: &str) -> Result<Option<u32>> {
        self.retry(|| {
            let metadata = self
                .reader
                .fetch_metadata(Some(topic), self.timeout)
                .map_err(|e| error("reading metadata", &e))?;
            let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Ok(None);
            };
            match t.error() {
                None => Ok(Some(t.partitions().len() as u32)),
                Some(code) => match RDKafkaErrorCode::from(code) {
                    RDKafkaErrorCode::UnknownTopicOrPartition => Ok(None),
                    other => Err(error("reading metadata", &KafkaError::MetadataFetch(other))),
                },
            }
        })
    }

    /// Creates `topic` with `partitions` and `configs` (replication factor 1 unless the
    /// cluster's default applies).
    pub(crate) fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        configs: &[(&'static str, String)],
    ) -> Result<()> {
        let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        for (key, value) in configs {
            new = new.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = futures_executor::block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| error("creating a topic", &e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(error("creating a topic", &KafkaError::AdminOp(code)));
                }
            }
        }
        Ok(())
    }

    /// Raises `topic`'s partition count to `partitions`.
    pub(crate) fn add_partitions(&self, topic: &str, partitions: u32) -> Result<()> {
        let new = NewPartitions::new(topic, partitions as usize);
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = futures_executor::block_on(self.admin.create_partitions([&new], &options))
            .map_err(|e| error("adding partitions", &e))?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(error("adding partitions", &KafkaError::AdminOp(code)));
            }
        }
        Ok(())
    }

    /// The partition's low and high watermarks (log start and end offsets).
    pub(crate) fn watermarks(&self, topic: &str, partition: u32) -> Result<(i64, i64)> {
        self.retry(|| {
            self.reader
                .fetch_watermarks(topic, partition as i32, self.timeout)
                .map_err(|e| error("reading watermarks", &e))
        })
    }

    /// The cluster's records `from..to` of a partition.
    pub(crate) fn read(
        &self,
        topic: &str,
        partition: u32,
        from: i64,
        to: i64,
    ) -> Result<Vec<OwnedRecord>> {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition as i32, Offset::Offset(from))
            .map_err(|e| error("reading records", &e))?;
        self.reader
            .assign(&assignment)
            .map_err(|e| error("reading records", &e))?;
        let deadline = Instant::now() + self.timeout;
        let mut out = Vec::new();
        while out.len() < (to - from).max(0) as usize {
            if Instant::now() > deadline {
                return Err(Error::Cluster {
                    op: "reading records",
                    kind: ClusterErrorKind::Timeout,
                    message: format!(
                        "{topic}-{partition}: {} of {} records read back",
                        out.len(),
                        to - from
                    ),
                });
            }
            let Some(message) = self.reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.map_err(|e| error("reading records", &e))?;
            if message.offset() < from || message.offset() >= to {
                continue;
            }
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| crate::partition::OwnedHeader {
                            key: h.key.as_bytes().to_vec(),
                            value: h.value.map(<[u8]>::to_vec),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(OwnedRecord {
                offset: message.offset(),
                timestamp: message.timestamp().to_millis().unwrap_or(-1),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
        let _ = self.reader.unassign();
        Ok(out)
    }

    /// An idempotent producer writing with `compression` (`none`, `gzip`, ...).
    pub(crate) fn producer(&self, compression: &str) -> Result<Sender> {
        let mut config = self.config.clone();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", compression)
            .set("linger.ms", "5")
            .set("message.timeout.ms", self.timeout.as_millis().to_string());
        let producer = config
            .create_with_context(Acks::default())
            .map_err(|e| error("creating the producer", &e))?;
        Ok(Sender {
            producer,
            timeout: self.timeout,
        })
    }

    /// Commits `offsets` (topic, partition, offset) for `group` in the cluster, as an
    /// administrator does for a group without members.
    pub(crate) fn commit_group(&self, group: &str, offsets: &[(String, u32, i64)]) -> Result<()> {
        let consumer = self.group_client(group)?;
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            list.add_partition_offset(topic, *partition as i32, Offset::Offset(*offset))
                .map_err(|e| error("committing group offsets", &e))?;
        }
        self.retry(|| {
            consumer
                .commit(&list, CommitMode::Sync)
                .map_err(|e| error("committing group offsets", &e))
        })
    }
}

impl Cluster {
    /// A client of `group` that never joins it: for reading and committing its offsets, as an
    /// administrator does.
    fn group_client(&self, group: &str) -> Result<BaseConsumer> {
        let mut config = self.config.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        config
            .create()
            .map_err(|e| error("creating the group client", &e))
    }

    /// `group`'s committed offsets for partitions `0..partitions` of `topic`: (partition,
    /// offset) for each partition that has one.
    pub(crate) fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<Vec<(u32, i64)>> {
        let consumer = self.group_client(group)?;
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition as i32);
        }
        let found = self.retry(|| {
            let committed = consumer
                .committed_offsets(list.clone(), self.timeout)
                .map_err(|e| error("reading group offsets", &e))?;
            let mut offsets = Vec::new();
            for element in committed.elements() {
                if let Some(e) = element.error().err() {
                    return Err(error("reading group offsets", &e));
                }
                if let (Offset::Offset(offset), Ok(partition)) =
                    (element.offset(), u32::try_from(element.partition()))
                {
                    offsets.push((partition, offset));
                }
            }
            // Dropped before the consumer: a list that outlives it keeps it from closing.
            drop(committed);
            Ok(offsets)
        });
        drop(list);
        drop(consumer);
        found
    }
}

/// Delivery reports: for each record sent since the last [`Sender::flush`], its index and its
/// cluster offset or error.
#[derive(Default)]
pub(crate) struct Acks {
    reports: Mutex<Vec<(usize, std::result::Result<i64, KafkaError>)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let report = match result {
            Ok(message) => Ok(message.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        self.reports.lock().push((index, report));
    }
}

/// An idempotent producer and its delivery reports.
pub(crate) struct Sender {
    producer: ThreadedProducer<Acks>,
    timeout: Duration,
}

impl Sender {
    /// Queues `record` for `topic`'s `partition` as the `index`-th of this round.
    pub(crate) fn send(
        &self,
        topic: &str,
        partition: u32,
        record: &OwnedRecord,
        index: usize,
    ) -> Result<()> {
        if index == 0 {
            // A round that failed may have left reports behind.
            self.producer.context().reports.lock().clear();
        }
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            // Kafka's header keys are strings; the client takes nothing else, and a lossy
            // conversion would change the record.
            let key = std::str::from_utf8(&h.key).map_err(|_| Error::Cluster {
                op: "sending a record",
                kind: ClusterErrorKind::Client,
                message: format!(
                    "{topic}-{partition} offset {}: a header key is not UTF-8",
                    record.offset
                ),
            })?;
            headers = headers.insert(Header {
                key,
                value: h.value.as_deref(),
            });
        }
        let mut base: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, index)
            .partition(partition as i32)
            .timestamp(record.timestamp)
            .headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key);
        }
        if let Some(value) = &record.value {
            base = base.payload(value);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    base = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(error("sending a record", &e)),
            }
        }
    }

    /// Waits for every queued record's acknowledgement; returns each index's cluster offset,
    /// in index order, or the first failure.
    pub(crate) fn flush(&self, count: usize) -> Result<Vec<i64>> {
        self.producer
            .flush(self.timeout)
            .map_err(|e| error("waiting for acknowledgements", &e))?;
        // The polling thread may still be inside the last delivery callback.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.producer.context().reports.lock().len() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut reports = std::mem::take(&mut *self.producer.context().reports.lock());
        reports.sort_by_key(|(i, _)| *i);
        if reports.len() != count {
            return Err(Error::Cluster {
                op: "waiting for acknowledgements",
                kind: ClusterErrorKind::Timeout,
                message: format!("{} of {count} records acknowledged", reports.len()),
            });
        }
        reports
            .into_iter()
            .map(|(_, r)| r.map_err(|e| error("sending a record", &e)))
            .collect()
    }
}
