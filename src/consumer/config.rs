//! Consumer settings, with Kafka's names and defaults.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::group::Assignor;

/// `max.poll.records` default: 500.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// `auto.commit.interval.ms` default: 5 seconds.
pub const DEFAULT_AUTO_COMMIT_INTERVAL_MS: i64 = 5_000;
/// `max.poll.interval.ms` default: 5 minutes.
pub const DEFAULT_MAX_POLL_INTERVAL_MS: i64 = 300_000;
/// `session.timeout.ms` default: 45 seconds.
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 45_000;
/// `heartbeat.interval.ms` default: 3 seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: i64 = 3_000;

/// Settings of Kafka's network consumer that mean nothing in-process (connections, wire
/// formats, fetch sizing, heartbeats, security). They are accepted and ignored, with a log line.
pub const IGNORED_CONSUMER_KEYS: &[&str] = &[
    "allow.auto.create.topics",
    "bootstrap.servers",
    "check.crcs",
    "client.dns.lookup",
    "client.rack",
    "connections.max.idle.ms",
    "default.api.timeout.ms",
    "exclude.internal.topics",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "interceptor.classes",
    "key.deserializer",
    "max.partition.fetch.bytes",
    "metadata.max.age.ms",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "receive.buffer.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "sasl.jaas.config",
    "sasl.mechanism",
    "security.protocol",
    "send.buffer.bytes",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "ssl.endpoint.identification.algorithm",
    "value.deserializer",
];

/// `auto.offset.reset`: where a consumer starts in a partition its group has no committed
/// offset for, or whose position fell out of the log (retention deleted it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on (Kafka's default).
    #[default]
    Latest,
    /// No reset: [`Error::NoOffsetForPartition`].
    None,
}

impl fmt::Display for OffsetReset {
    /// Kafka's name (see [`OffsetReset::name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl OffsetReset {
    /// Kafka's name: `earliest`, `latest` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "none",
        }
    }
}

impl FromStr for OffsetReset {
    type Err = Error;

    fn from_str(s: &str) -> Result<OffsetReset> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            _ => Err(Error::InvalidConfig {
                key: "auto.offset.reset",
                value: s.to_owned(),
                reason: "must be earliest, latest or none".into(),
            }),
        }
    }
}

/// `isolation.level`: which records of transactions a reader returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Every record, whatever became of its transaction (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Only records below the last stable offset, and none of an aborted transaction.
    ReadCommitted,
}

impl IsolationLevel {
    /// Kafka's name: `read_uncommitted` or `read_committed`.
    pub fn name(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }
}

impl fmt::Display for IsolationLevel {
    /// Kafka's name (see [`IsolationLevel::name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IsolationLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<IsolationLevel> {
        match s {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            _ => Err(Error::InvalidConfig {
                key: "isolation.level",
                value: s.to_owned(),
                reason: "must be read_uncommitted or read_committed".into(),
            }),
        }
    }
}

/// How a [`Consumer`](super::Consumer) reads. Build with [`ConsumerConfig::builder`].
///
/// ```
/// use topiclog::config::{ConsumerConfig, OffsetReset};
/// let config = ConsumerConfig::builder()
///     .group_id("billing")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .build()?;
/// assert_eq!(config.max_poll_records(), 500);
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub(crate) group_id: Option<String>,
    pub(crate) member_id: Option<String>,
    pub(crate) auto_offset_reset: OffsetReset,
    pub(crate) isolation_level: IsolationLevel,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval_ms: i64,
    pub(crate) max_poll_records: usize,
    pub(crate) max_poll_interval_ms: i64,
    pub(crate) session_timeout_ms: i64,
    pub(crate) heartbeat_interval_ms: i64,
    pub(crate) client_id: String,
    pub(crate) assignor: Assignor,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            member_id: None,
            auto_offset_reset: OffsetReset::default(),
            isolation_level: IsolationLevel::default(),
            enable_auto_commit: true,
            auto_commit_interval_ms: DEFAULT_AUTO_COMMIT_INTERVAL_MS,
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            max_poll_interval_ms: DEFAULT_MAX_POLL_INTERVAL_MS,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            client_id: String::new(),
            assignor: Assignor::default(),
        }
    }
}

impl ConsumerConfig {
    /// A builder starting from Kafka's defaults: no group, `auto.offset.reset` latest,
    /// auto-commit on every 5 s, 500 records per poll, `max.poll.interval.ms` 5 minutes.
    pub fn builder() -> ConsumerConfigBuilder {
        ConsumerConfigBuilder {
            config: ConsumerConfig::default(),
        }
    }

    /// A config from Kafka-style `(key, value)` pairs over the defaults, as
    /// [`ConsumerConfigBuilder::set`] takes them one by one.
    ///
    /// ```
    /// use topiclog::config::ConsumerConfig;
    /// let config = ConsumerConfig::from_pairs([
    ///     ("group.id", "billing"),
    ///     ("auto.offset.reset", "earliest"),
    ///     ("bootstrap.servers", "localhost:9092"), // a network setting: ignored
    /// ])?;
    /// assert_eq!(config.group_id(), Some("billing"));
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] naming an unknown key, [`Error::InvalidConfig`] naming a key
    /// whose value does not parse or lies out of range.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<ConsumerConfig>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ConsumerConfig::builder().set_all(pairs)?.build()
    }

    /// A config from a Java `.properties` file of consumer settings (a Kafka consumer's
    /// properties file works: its network settings are ignored).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::ConfigFile`] naming the line of a
    /// malformed entry, and the errors of [`from_pairs`](ConsumerConfig::from_pairs).
    pub fn from_properties_file(path: impl AsRef<std::path::Path>) -> Result<ConsumerConfig> {
        ConsumerConfig::from_pairs(crate::properties::read_file(path.as_ref())?)
    }

    /// The settings as Kafka `(key, value)` pairs, in a fixed order: what
    /// [`from_pairs`](ConsumerConfig::from_pairs) reads back into an equal config.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(group) = &self.group_id {
            pairs.push(("group.id", group.clone()));
        }
        if let Some(member) = &self.member_id {
            pairs.push(("group.instance.id", member.clone()));
        }
        pairs.extend([
            (
                "auto.offset.reset",
                self.auto_offset_reset.name().to_owned(),
            ),
            ("isolation.level", self.isolation_level.name().to_owned()),
            ("enable.auto.commit", self.enable_auto_commit.to_string()),
            (
                "auto.commit.interval.ms",
                self.auto_commit_interval_ms.to_string(),
            ),
            ("max.poll.records", self.max_poll_records.to_string()),
            (
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            ),
            ("session.timeout.ms", self.session_timeout_ms.to_string()),
            (
                "heartbeat.interval.ms",
                self.heartbeat_interval_ms.to_string(),
            ),
            (
                "partition.assignment.strategy",
                self.assignor.name().to_owned(),
            ),
        ]);
        if !self.client_id.is_empty() {
            pairs.push(("client.id", self.client_id.clone()));
        }
        pairs
    }

    /// `group.id`: the consumer group, needed for subscriptions and committed offsets.
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// The member id within the group (generated when not set).
    pub fn member_id(&self) -> Option<&str> {
        self.member_id.as_deref()
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(&self) -> OffsetReset {
        self.auto_offset_reset
    }

    /// `isolation.level`.
    pub fn isolation_level(&self) -> IsolationLevel {
        self.isolation_level
    }

    /// `enable.auto.commit`.
    pub fn enable_auto_commit(&self) -> bool {
        self.enable_auto_commit
    }

    /// `auto.commit.interval.ms`.
    pub fn auto_commit_interval_ms(&self) -> i64 {
        self.auto_commit_interval_ms
    }

    /// `max.poll.records`: the most records one `poll` returns.
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }

    /// `max.poll.interval.ms`: a group member that does not poll for this long is removed
    /// from its group.
    pub fn max_poll_interval_ms(&self) -> i64 {
        self.max_poll_interval_ms
    }

    /// `session.timeout.ms`: a group member whose process has not heartbeaten for this long
    /// (it died, or is paused) is removed from its group.
    pub fn session_timeout_ms(&self) -> i64 {
        self.session_timeout_ms
    }

    /// `heartbeat.interval.ms`: how often a member's process tells its group it is alive.
    pub fn heartbeat_interval_ms(&self) -> i64 {
        self.heartbeat_interval_ms
    }

    /// `client.id`: a name for the consumer in `describe-group` and logs (empty: none).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `partition.assignment.strategy`: how a group spreads partitions over its members.
    pub fn assignor(&self) -> Assignor {
        self.assignor
    }
}

/// Builds a [`ConsumerConfig`]; each setter names the Kafka key it mirrors.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConsumerConfigBuilder {
    config: ConsumerConfig,
}

impl ConsumerConfigBuilder {
    /// `group.id`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.config.group_id = Some(group.into());
        self
    }

    /// The member id to join the group with (like Kafka's `group.instance.id`); unique in its
    /// group. Default: generated.
    pub fn member_id(mut self, member: impl Into<String>) -> Self {
        self.config.member_id = Some(member.into());
        self
    }

    /// `auto.offset.reset` (default latest).
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.config.auto_offset_reset = reset;
        self
    }

    /// `isolation.level` (default `read_uncommitted`): under `read_committed` the consumer
    /// returns records below each partition's last stable offset only, and none of an
    /// aborted transaction.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.config.isolation_level = level;
        self
    }

    /// `enable.auto.commit` (default true): a subscribed consumer commits its consumed
    /// positions every `auto.commit.interval.ms` (checked at each poll), before letting revoked
    /// partitions go, and on close. A hand-assigned consumer commits only when told.
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.config.enable_auto_commit = on;
        self
    }

    /// `auto.commit.interval.ms` (default 5000).
    pub fn auto_commit_interval_ms(mut self, ms: i64) -> Self {
        self.config.auto_commit_interval_ms = ms;
        self
    }

    /// `max.poll.records` (default 500).
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.config.max_poll_records = records;
        self
    }

    /// `max.poll.interval.ms` (default 300000).
    pub fn max_poll_interval_ms(mut self, ms: i64) -> Self {
        self.config.max_poll_interval_ms = ms;
        self
    }

    /// `session.timeout.ms` (default 45000): how long a member's process may go without a
    /// heartbeat before the group removes the member and gives its partitions to others.
    pub fn session_timeout_ms(mut self, ms: i64) -> Self {
        self.config.session_timeout_ms = ms;
        self
    }

    /// `heartbeat.interval.ms` (default 3000): how often the member's process heartbeats, from
    /// a background thread, whether or not the application polls. Below `session.timeout.ms`.
    pub fn heartbeat_interval_ms(mut self, ms: i64) -> Self {
        self.config.heartbeat_interval_ms = ms;
        self
    }

    /// `client.id` (default empty): a name shown by `describe-group`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }

    /// `partition.assignment.strategy` (default range). Every member of a group must use the
    /// same one.
    pub fn assignor(mut self, assignor: Assignor) -> Self {
        self.config.assignor = assignor;
        self
    }

    /// Sets a setting by its Kafka name, from text (as a properties file or CLI gives it).
    ///
    /// Kafka's network-client keys in [`IGNORED_CONSUMER_KEYS`] (`bootstrap.servers`,
    /// deserializers, timeouts, ...) are accepted and ignored with a log line, so a Kafka
    /// consumer's properties file works as it is.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] for an unknown key, [`Error::InvalidConfig`] for a bad value.
    pub fn set(self, key: &str, value: &str) -> Result<Self> {
        let int = |key: &'static str| {
            value.parse::<i64>().map_err(|_| Error::InvalidConfig {
                key,
                value: value.to_owned(),
                reason: "not an integer".into(),
            })
        };
        let bool_value = |key: &'static str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::InvalidConfig {
                key,
                value: value.to_owned(),
                reason: "must be true or false".into(),
            }),
        };
        Ok(match key {
            "group.id" => self.group_id(value),
            "group.instance.id" => self.member_id(value),
            "auto.offset.reset" => self.auto_offset_reset(value.parse()?),
            "isolation.level" => self.isolation_level(value.parse()?),
            "enable.auto.commit" => self.enable_auto_commit(bool_value("enable.auto.commit")?),
            "auto.commit.interval.ms" => {
                self.auto_commit_interval_ms(int("auto.commit.interval.ms")?)
            }
            "max.poll.records" => {
                let n = int("max.poll.records")?;
                self.max_poll_records(usize::try_from(n).unwrap_or(0))
            }
            "max.poll.interval.ms" => self.max_poll_interval_ms(int("max.poll.interval.ms")?),
            "session.timeout.ms" => self.session_timeout_ms(int("session.timeout.ms")?),
            "heartbeat.interval.ms" => self.heartbeat_interval_ms(int("heartbeat.interval.ms")?),
            "client.id" => self.client_id(value),
            "partition.assignment.strategy" => self.assignor(value.parse()?),
            _ if IGNORED_CONSUMER_KEYS.contains(&key) => {
                log::info!("ignoring consumer setting {key}={value}: no effect in topiclog");
                self
            }
            _ => {
                return Err(Error::UnknownConfig {
                    key: key.to_owned(),
                    kind: "consumer",
                });
            }
        })
    }

    /// [`set`](ConsumerConfigBuilder::set) for each pair, in order.
    ///
    /// # Errors
    /// The first error of [`set`](ConsumerConfigBuilder::set).
    pub fn set_all<K, V>(self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        pairs
            .into_iter()
            .try_fold(self, |b, (k, v)| b.set(k.as_ref(), v.as_ref()))
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for `max.poll.records` 0, a non-positive interval or timeout,
    /// a heartbeat interval not below the session timeout, or an empty group or member id.
    pub fn build(self) -> Result<ConsumerConfig> {
        let c = self.config;
        let invalid = |key: &'static str, value: String, reason: &'static str| {
            Err(Error::InvalidConfig {
                key,
                value,
                reason: reason.into(),
            })
        };
        if c.max_poll_records == 0 {
            return invalid("max.poll.records", "0".into(), "must be at least 1");
        }
        if c.auto_commit_interval_ms <= 0 {
            let v = c.auto_commit_interval_ms.to_string();
            return invalid("auto.commit.interval.ms", v, "must be positive");
        }
        if c.max_poll_interval_ms <= 0 {
            let v = c.max_poll_interval_ms.to_string();
            return invalid("max.poll.interval.ms", v, "must be positive");
        }
        if c.session_timeout_ms <= 0 {
            let v = c.session_timeout_ms.to_string();
            return invalid("session.timeout.ms", v, "must be positive");
        }
        if c.heartbeat_interval_ms <= 0 || c.heartbeat_interval_ms >= c.session_timeout_ms {
            let v = c.heartbeat_interval_ms.to_string();
            return invalid(
                "heartbeat.interval.ms",
                v,
                "must be positive and below session.timeout.ms",
            );
        }
        if c.group_id.as_deref() == Some("") {
            return invalid("group.id", String::new(), "must not be empty");
        }
        if c.member_id.as_deref() == Some("") {
            return invalid("group.instance.id", String::new(), "must not be empty");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_checks() {
        let c = ConsumerConfig::builder()
            .set("group.id", "g")
            .and_then(|b| b.set("auto.offset.reset", "earliest"))
            .and_then(|b| b.set("enable.auto.commit", "false"))
            .and_then(|b| b.set("max.poll.records", "7"))
            .and_then(ConsumerConfigBuilder::build)
            .expect("valid");
        assert_eq!(c.group_id(), Some("g"));
        assert_eq!(c.auto_offset_reset(), OffsetReset::Earliest);
        assert!(!c.enable_auto_commit());
        assert_eq!(c.max_poll_records(), 7);
        for (key, value) in [
            ("auto.offset.reset", "smallest"),
            ("enable.auto.commit", "yes"),
            ("max.poll.records", "0"),
            ("max.poll.interval.ms", "-1"),
            ("group.id", ""),
            ("fetch.min.byte", "1"),
        ] {
            let built = ConsumerConfig::builder()
                .set(key, value)
                .and_then(ConsumerConfigBuilder::build);
            assert!(
                matches!(
                    built,
                    Err(Error::InvalidConfig { .. } | Error::UnknownConfig { .. })
                ),
                "{key}={value}"
            );
        }
    }
}
