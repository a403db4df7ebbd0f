//! The Kafka protocol where a replica needs it raw: Metadata (a topic's id, partitions and
//! leaders) and Fetch (record batches as the broker stores them, with the high watermark and
//! log start offset), encoded with the `kafka-protocol` crate over a plain TCP connection to
//! each broker, synchronously. librdkafka hands out decoded records only; a replica needs the
//! batches' bytes.
//!
//! As Kafka's clients do: the leader of each partition is found from Metadata; a connection
//! that fails, a request that times out, or a broker that says it no longer leads the
//! partition (or does not know the topic yet) drops the connection and refreshes the metadata,
//! retried with backoff until the run's timeout. Every failure is [`Error::Cluster`].

// It decodes bytes from the network: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::error::{ClusterErrorKind, Error, Result};

/// Metadata: topic ids from v10, topics named in requests up to v12.
const METADATA_VERSIONS: (i16, i16) = (10, 12);
/// Fetch: the log start offset from v5; topics named (not by id) up to v12.
const FETCH_VERSIONS: (i16, i16) = (5, 12);
/// ListOffsets: v1 is the first with one offset per partition.
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 7);
/// The largest response accepted (a Fetch is bounded by its `max_bytes` below).
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// The least a Fetch may wait for data.
const MIN_WAIT: Duration = Duration::from_millis(100);
/// Bytes a Fetch asks for per partition by default (Kafka's `max.partition.fetch.bytes`).
pub(crate) const PARTITION_FETCH_BYTES: i32 = 1 << 20;
const CLIENT_ID: &str = "topiclog-replicate";

// Kafka's error codes this client reacts to.
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const OFFSET_NOT_AVAILABLE: i16 = 78;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// What the cluster says of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMetadata {
    /// Kafka's topic id.
    pub(crate) topic_id: [u8; 16],
    /// The leader of each partition, by partition number (`-1`: none right now).
    pub(crate) leaders: Vec<i32>,
}

/// One partition's part of a Fetch response.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) high_watermark: i64,
    pub(crate) log_start_offset: i64,
    /// The batches' bytes (a trailing partial batch included, as brokers send it).
    pub(crate) records: Bytes,
}

/// What a Fetch from an offset found.
#[derive(Debug, Clone)]
pub(crate) enum FetchOutcome {
    /// Batches (possibly none) and the partition's watermarks.
    Fetched(Fetched),
    /// The offset is outside the leader's log (`OFFSET_OUT_OF_RANGE`).
    OutOfRange,
    /// The broker sent nothing for the partition within the wait.
    Nothing,
}

/// One broker connection.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    correlation_id: i32,
    /// The versions the broker answers, by API key (from ApiVersions at connect).
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    fn open(address: &str, timeout: Duration) -> Result<Connection> {
        let addresses = address
            .to_socket_addrs()
            .map_err(|e| cluster("resolving a broker", ClusterErrorKind::Connection, e))?;
        let mut last = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, timeout) {
                Ok(stream) => {
                    stream
                        .set_nodelay(true)
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .map_err(|e| cluster("connecting", ClusterErrorKind::Connection, e))?;
                    let mut connection = Connection {
                        stream,
                        correlation_id: 0,
                        versions: BTreeMap::new(),
                    };
                    // Version 0: every broker answers it.
                    let versions = connection.call(
                        "negotiating versions",
                        &ApiVersionsRequest::default(),
                        0,
                        timeout,
                    )?;
                    if versions.error_code != 0 {
                        return Err(broker_error(
                            "negotiating versions",
                            versions.error_code,
                            address.to_string().as_str(),
                        ));
                    }
                    connection.versions = versions
                        .api_keys
                        .iter()
                        .map(|k| (k.api_key, (k.min_version, k.max_version)))
                        .collect();
                    return Ok(connection);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => cluster("connecting", io_kind(&e), format!("{address}: {e}")),
            None => cluster(
                "connecting",
                ClusterErrorKind::Connection,
                format!("{address}: no address"),
            ),
        })
    }

    /// Sends `request` at `version` and reads its response, waiting at most `timeout`.
    fn call<R: Request>(
        &mut self,
        op: &'static str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        let encoded = header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version));
        encoded.map_err(|e| cluster(op, ClusterErrorKind::Client, e))?;
        let length = i32::try_from(body.len())
            .map_err(|_| cluster(op, ClusterErrorKind::Client, "request too large"))?;
        let io = |e: std::io::Error| cluster(op, io_kind(&e), e);
        self.stream.set_read_timeout(Some(timeout)).map_err(io)?;
        self.stream.write_all(&length.to_be_bytes()).map_err(io)?;
        self.stream.write_all(&body).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|&s| s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| cluster(op, ClusterErrorKind::Client, "response size out of range"))?;
        let mut response = vec![0u8; size];
        self.stream.read_exact(&mut response).map_err(io)?;
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(|e| cluster(op, ClusterErrorKind::Client, e))?;
        if header.correlation_id != self.correlation_id {
            return Err(cluster(
                op,
                ClusterErrorKind::Client,
                "response to another request",
            ));
        }
        R::Response::decode(&mut response, version)
            .map_err(|e| cluster(op, ClusterErrorKind::Client, e))
    }

    /// The version of API `key` to use: the highest both sides know, at most `wanted`; at
    /// least `needed`, or the broker is too old.
    fn version(&self, key: i16, needed: i16, wanted: i16) -> Result<i16> {
        match self.versions.get(&key) {
            Some(&(min, max)) if max >= needed && min <= wanted => Ok(max.min(wanted)),
            _ => Err(cluster(
                "negotiating versions",
                ClusterErrorKind::Client,
                format!("the broker does not answer API {key} at versions {needed} to {wanted}"),
            )),
        }
    }
}

fn io_kind(e: &std::io::Error) -> ClusterErrorKind {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ClusterErrorKind::Timeout,
        _ => ClusterErrorKind::Connection,
    }
}

fn cluster(op: &'static str, kind: ClusterErrorKind, message: impl std::fmt::Display) -> Error {
    Error::Cluster {
        op,
        kind,
        message: message.to_string(),
    }
}

/// A broker error code as [`Error::Cluster`].
fn broker_error(op: &'static str, code: i16, what: &str) -> Error {
    let kind = match code {
        UNKNOWN_TOPIC_OR_PARTITION | UNKNOWN_TOPIC_ID => ClusterErrorKind::UnknownTopic,
        REQUEST_TIMED_OUT => ClusterErrorKind::Timeout,
        code => ClusterErrorKind::Broker(i32::from(code)),
    };
    cluster(op, kind, format!("{what}: error code {code}"))
}

/// Whether Kafka's clients retry after `code` (with fresh metadata).
fn retriable_code(code: i16) -> bool {
    matches!(
        code,
        UNKNOWN_TOPIC_OR_PARTITION
            | LEADER_NOT_AVAILABLE
            | NOT_LEADER_OR_FOLLOWER
            | REQUEST_TIMED_OUT
            | NOT_ENOUGH_REPLICAS
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
            | OFFSET_NOT_AVAILABLE
            | UNKNOWN_TOPIC_ID
    )
}

/// Whether a failure is worth another try after a metadata refresh.
fn retriable(e: &Error) -> bool {
    matches!(
        e,
        Error::Cluster {
            kind: ClusterErrorKind::Timeout
                | ClusterErrorKind::Connection
                | ClusterErrorKind::UnknownTopic,
            ..
        }
    ) || matches!(e, Error::Cluster { kind: ClusterErrorKind::Broker(code), .. }
        if i16::try_from(*code).is_ok_and(retriable_code))
}

/// A cluster reached through its bootstrap servers, with a connection per broker.
#[derive(Debug)]
pub(crate) struct Fetcher {
    bootstrap: Vec<String>,
    /// Broker addresses by node id, from the last Metadata response.
    brokers: BTreeMap<i32, String>,
    connections: BTreeMap<i32, Connection>,
    /// The bootstrap connection (node id unknown), for Metadata.
    any: Option<Connection>,
    timeout: Duration,
    /// Bytes asked for per Fetch (a broker sends at least one whole batch, however large).
    fetch_bytes: i32,
}

impl Fetcher {
    /// A fetcher for the cluster at `bootstrap_servers` (comma-separated `host:port`); each
    /// call retries for at most `timeout`. Connects on first use.
    pub(crate) fn new(bootstrap_servers: &str, timeout: Duration, fetch_bytes: i32) -> Fetcher {
        Fetcher {
            bootstrap: bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            brokers: BTreeMap::new(),
            connections: BTreeMap::new(),
            any: None,
            timeout,
            fetch_bytes: fetch_bytes.max(1),
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the timeout passes (backoff 100 ms,
    /// doubling to 2 s); connections are dropped after a failure.
    fn retry<T>(&mut self, mut op: impl FnMut(&mut Fetcher) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            match op(self) {
                Err(e) if retriable(&e) && Instant::now() + backoff < deadline => {
                    log::debug!("retrying after {e}");
                    self.connections.clear();
                    self.any = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                result => return result,
            }
        }
    }

    /// A connection to any bootstrap server.
    fn bootstrap_connection(&mut self) -> Result<&mut Connection> {
        if self.any.is_none() {
            let mut last = None;
            for address in &self.bootstrap {
                match Connection::open(address, self.timeout) {
                    Ok(c) => {
                        self.any = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.any.is_none() {
                return Err(last.unwrap_or_else(|| {
                    cluster(
                        "connecting",
                        ClusterErrorKind::Client,
                        "no bootstrap server given",
                    )
                }));
            }
        }
        self.any
            .as_mut()
            .ok_or(Error::Internal("a bootstrap connection was just opened"))
    }

    /// The metadata of `topic`; `None` when the cluster does not have it.
    pub(crate) fn metadata(&mut self, topic: &str) -> Result<Option<TopicMetadata>> {
        self.retry(|f| f.metadata_once(topic))
    }

    fn metadata_once(&mut self, topic: &str) -> Result<Option<TopicMetadata>> {
        const OP: &str = "reading metadata";
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_owned())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let timeout = self.timeout;
        let connection = self.bootstrap_connection()?;
        let (needed, wanted) = METADATA_VERSIONS;
        let version = connection.version(MetadataRequest::KEY, needed, wanted)?;
        let response = connection.call(OP, &request, version, timeout)?;
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let Some(found) = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        else {
            return Ok(None);
        };
        match found.error_code {
            0 => {}
            UNKNOWN_TOPIC_OR_PARTITION => return Ok(None),
            code if retriable_code(code) => return Err(broker_error(OP, code, topic)),
            code => return Err(broker_error(OP, code, topic)),
        }
        let mut leaders = vec![-1; found.partitions.len()];
        for p in &found.partitions {
            let slot = usize::try_from(p.partition_index)
                .ok()
                .and_then(|i| leaders.get_mut(i))
                .ok_or_else(|| {
                    cluster(
                        OP,
                        ClusterErrorKind::Client,
                        format!("partition {} out of range", p.partition_index),
                    )
                })?;
            *slot = if p.error_code == 0 { p.leader_id.0 } else { -1 };
        }
        Ok(Some(TopicMetadata {
            topic_id: *found.topic_id.as_bytes(),
            leaders,
        }))
    }

    /// A connection to broker `node`.
    fn broker(&mut self, node: i32) -> Result<&mut Connection> {
        if !self.connections.contains_key(&node) {
            let address = self.brokers.get(&node).cloned().ok_or_else(|| {
                cluster(
                    "connecting",
                    ClusterErrorKind::Connection,
                    format!("broker {node} is not in the metadata"),
                )
            })?;
            let connection = Connection::open(&address, self.timeout)?;
            self.connections.insert(node, connection);
        }
        self.connections
            .get_mut(&node)
            .ok_or(Error::Internal("a broker connection was just opened"))
    }

    /// Fetches `topic`-`partition` from `offset` from its leader (found afresh after a
    /// failure), waiting up to `wait` for data to arrive (a long poll).
    pub(crate) fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: i64,
        wait: Duration,
    ) -> Result<FetchOutcome> {
        let mut leader = None;
        self.retry(|f| {
            let node = match leader {
                Some(node) => node,
                None => {
                    let node = f.leader(topic, partition)?;
                    leader = Some(node);
                    node
                }
            };
            let result = f.fetch_from(node, topic, partition, offset, wait);
            if result.is_err() {
                leader = None;
            }
            result
        })
    }

    fn fetch_from(
        &mut self,
        node: i32,
        topic: &str,
        partition: u32,
        offset: i64,
        wait: Duration,
    ) -> Result<FetchOutcome> {
        const OP: &str = "fetching";
        let index = i32::try_from(partition)
            .map_err(|_| cluster(OP, ClusterErrorKind::Client, "partition out of range"))?;
        // Not less than MIN_WAIT: some brokers answer a Fetch that may not wait with nothing
        // at all, even when data is there (Kafka answers as soon as it has `min_bytes`).
        let wait_ms = i32::try_from(wait.max(MIN_WAIT).as_millis()).unwrap_or(i32::MAX);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.fetch_bytes)
            // Everything below the high watermark: aborted records and markers included.
            .with_isolation_level(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(index)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(self.fetch_bytes),
                    ]),
            ]);
        let timeout = self.timeout + wait.max(MIN_WAIT);
        let connection = self.broker(node)?;
        let (needed, wanted) = FETCH_VERSIONS;
        let version = connection.version(FetchRequest::KEY, needed, wanted)?;
        let response = connection.call(OP, &request, version, timeout)?;
        if response.error_code != 0 {
            return Err(broker_error(OP, response.error_code, topic));
        }
        let data = response
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == index);
        // Some brokers leave a partition out of a response that found nothing to send.
        let Some(data) = data else {
            return Ok(FetchOutcome::Nothing);
        };
        match data.error_code {
            0 => Ok(FetchOutcome::Fetched(Fetched {
                high_watermark: data.high_watermark,
                log_start_offset: data.log_start_offset,
                records: data.records.clone().unwrap_or_default(),
            })),
            OFFSET_OUT_OF_RANGE => Ok(FetchOutcome::OutOfRange),
            code => Err(broker_error(OP, code, topic)),
        }
    }

    /// The partition's log start offset and high watermark, from its leader (ListOffsets
    /// for the earliest and the latest offset).
    pub(crate) fn watermarks(&mut self, topic: &str, partition: u32) -> Result<(i64, i64)> {
        let mut leader = None;
        self.retry(|f| {
            let node = match leader {
                Some(node) => node,
                None => {
                    let node = f.leader(topic, partition)?;
                    leader = Some(node);
                    node
                }
            };
            let result = f
                .list_offset(node, topic, partition, EARLIEST)
                .and_then(|start| Ok((start, f.list_offset(node, topic, partition, LATEST)?)));
            if result.is_err() {
                leader = None;
            }
            result
        })
    }

    /// The leader of `topic`-`partition`, from fresh metadata.
    fn leader(&mut self, topic: &str, partition: u32) -> Result<i32> {
        let metadata = self
            .metadata_once(topic)?
            .ok_or_else(|| cluster("finding a leader", ClusterErrorKind::UnknownTopic, topic))?;
        metadata
            .leaders
            .get(partition as usize)
            .copied()
            .filter(|&n| n >= 0)
            .ok_or_else(|| broker_error("finding a leader", LEADER_NOT_AVAILABLE, topic))
    }

    fn list_offset(&mut self, node: i32, topic: &str, partition: u32, which: i64) -> Result<i64> {
        const OP: &str = "listing offsets";
        let index = i32::try_from(partition)
            .map_err(|_| cluster(OP, ClusterErrorKind::Client, "partition out of range"))?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(index)
                            .with_timestamp(which),
                    ]),
            ]);
        let timeout = self.timeout;
        let connection = self.broker(node)?;
        let (needed, wanted) = LIST_OFFSETS_VERSIONS;
        let version = connection.version(ListOffsetsRequest::KEY, needed, wanted)?;
        let response = connection.call(OP, &request, version, timeout)?;
        let data = response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == index)
            .ok_or_else(|| cluster(OP, ClusterErrorKind::Client, "no data for the partition"))?;
        match data.error_code {
            0 => Ok(data.offset),
            code => Err(broker_error(OP, code, topic)),
        }
    }
}

/// ListOffsets' timestamps for the log start and the log end (the high watermark).
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
