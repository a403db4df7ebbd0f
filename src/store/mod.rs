//! A store: a directory of topics, each topic a set of Kafka partition directories
//! (`<topic>-<partition>`), held under an exclusive OS lock.

mod producer;
mod producers_file;
mod topics_file;
mod transactions;
mod transactions_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::cleaner::{CleanerConfig, CompactionReport, DEFAULT_CLEANER_BACKOFF_MS};
use crate::config::LogConfig;
use crate::consumer::{Consumer, ConsumerConfig, Source, TopicPartition};
use crate::disk::{self, Disk, OsDisk, ReadOnlyDisk};
use crate::error::{Corruption, Error, IoOp, Result};
use crate::group::Coordinator;
use crate::layout;
use crate::partition::{Partition, RecoveryOptions, ReplicaOf, RetentionReport};
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::topic::{Topic, TopicConfig};
use producer::{IdEpoch, ProducerSlot};
use topics_file::TopicEntry;

use crate::layout::{LOCK_FILE, PRODUCERS_FILE, TOPICS_FILE};
pub(crate) use crate::lock::DirLock;
pub use producer::Producer;
pub use transactions::{DEFAULT_TRANSACTION_TIMEOUT_MS, OpenTransaction, TransactionalProducer};
pub use transactions_file::TxnState;

/// `log.retention.check.interval.ms` default: 5 minutes.
pub const DEFAULT_RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;
/// The default bound on a topic's partition count ([`StoreOptionsBuilder::max_partitions`]).
pub const DEFAULT_MAX_PARTITIONS: u32 = 1024;
/// `log.flush.offset.checkpoint.interval.ms` default: 1 minute.
pub const DEFAULT_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS: u64 = 60_000;

/// How to open a [`Store`]. Build with [`StoreOptions::builder`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    create_if_missing: bool,
    log: LogConfig,
    retention_check_interval_ms: Option<u64>,
    checkpoint_interval_ms: u64,
    recovery: RecoveryOptions,
    partitioner: Arc<dyn Partitioner>,
    lock_timeout: Duration,
    max_partitions: u32,
    cleaner_enable: bool,
    cleaner: CleanerConfig,
    cleaner_backoff_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            create_if_missing: true,
            log: LogConfig::default(),
            retention_check_interval_ms: None,
            checkpoint_interval_ms: DEFAULT_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS,
            recovery: RecoveryOptions::default(),
            partitioner: Arc::new(DefaultPartitioner::default()),
            lock_timeout: Duration::ZERO,
            max_partitions: DEFAULT_MAX_PARTITIONS,
            cleaner_enable: true,
            cleaner: CleanerConfig::default(),
            cleaner_backoff_ms: DEFAULT_CLEANER_BACKOFF_MS as u64,
        }
    }
}

impl StoreOptions {
    /// A builder starting from the defaults: create a missing directory, Kafka's default log
    /// settings, no background retention, Kafka's default partitioner.
    pub fn builder() -> StoreOptionsBuilder {
        StoreOptionsBuilder {
            options: StoreOptions::default(),
            retention_unit: 0,
            roll_unit: 0,
        }
    }
}

/// Builds [`StoreOptions`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreOptionsBuilder {
    options: StoreOptions,
    /// Precision of the unit the retention and roll times were last set in (hours 1, minutes
    /// 2, milliseconds 3): as in Kafka, a coarser key never overrides a finer one.
    retention_unit: u8,
    roll_unit: u8,
}

/// Kafka broker settings that set the default of a topic setting: `(broker key, topic key,
/// multiplier to milliseconds or 1, precision)`.
const BROKER_TOPIC_DEFAULTS: &[(&str, &str, i64, u8)] = &[
    ("log.segment.bytes", "segment.bytes", 1, 0),
    ("log.roll.ms", "segment.ms", 1, 3),
    ("log.roll.hours", "segment.ms", 3_600_000, 1),
    ("log.index.size.max.bytes", "segment.index.bytes", 1, 0),
    ("log.index.interval.bytes", "index.interval.bytes", 1, 0),
    ("message.max.bytes", "max.message.bytes", 1, 0),
    ("log.message.timestamp.type", "message.timestamp.type", 1, 0),
    ("log.retention.ms", "retention.ms", 1, 3),
    ("log.retention.minutes", "retention.ms", 60_000, 2),
    ("log.retention.hours", "retention.ms", 3_600_000, 1),
    ("log.retention.bytes", "retention.bytes", 1, 0),
    ("log.flush.interval.messages", "flush.messages", 1, 0),
    ("log.flush.interval.ms", "flush.ms", 1, 0),
    (
        "producer.id.expiration.ms",
        "producer.id.expiration.ms",
        1,
        0,
    ),
    ("compression.type", "compression.type", 1, 0),
    ("compression.gzip.level", "compression.gzip.level", 1, 0),
    ("compression.lz4.level", "compression.lz4.level", 1, 0),
    ("compression.zstd.level", "compression.zstd.level", 1, 0),
    ("log.cleanup.policy", "cleanup.policy", 1, 0),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
        1,
        0,
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "min.compaction.lag.ms",
        1,
        0,
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        "max.compaction.lag.ms",
        1,
        0,
    ),
    (
        "log.cleaner.delete.retention.ms",
        "delete.retention.ms",
        1,
        0,
    ),
];

/// Kafka broker settings that mean nothing to an embedded store (identity, listeners,
/// threads, replication, internal topics, controllers). Accepted and ignored with a log line,
/// so a broker's `server.properties` opens a store as it is.
pub const IGNORED_STORE_KEYS: &[&str] = &[
    "advertised.listeners",
    "auto.create.topics.enable",
    "broker.id",
    "broker.rack",
    "controller.listener.names",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "default.replication.factor",
    "delete.topic.enable",
    "group.initial.rebalance.delay.ms",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.threads",
    "log.dir",
    "log.dirs",
    "log.preallocate",
    "log.segment.delete.delay.ms",
    "min.insync.replicas",
    "node.id",
    "num.io.threads",
    "num.network.threads",
    "num.partitions",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "process.roles",
    "socket.receive.buffer.bytes",
    "socket.request.max.bytes",
    "socket.send.buffer.bytes",
    "transaction.state.log.min.isr",
    "transaction.state.log.replication.factor",
    "unclean.leader.election.enable",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
];

impl StoreOptions {
    /// Options from Kafka-style `(key, value)` pairs over the defaults, as
    /// [`StoreOptionsBuilder::set`] takes them one by one: a broker's `server.properties`
    /// works as it is.
    ///
    /// ```
    /// use topiclog::config::StoreOptions;
    /// let options = StoreOptions::from_pairs([
    ///     ("log.retention.hours", "168"),
    ///     ("log.segment.bytes", "1073741824"),
    ///     ("broker.id", "0"), // a broker's identity: ignored
    /// ])?;
    /// assert_eq!(options.log_config().retention_ms(), 168 * 3_600_000);
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] naming an unknown key, [`Error::InvalidConfig`] naming a key
    /// whose value does not parse or lies out of range.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<StoreOptions>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Ok(StoreOptions::builder().set_all(pairs)?.build())
    }

    /// Options from a Java `.properties` file, such as a Kafka broker's `server.properties`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::ConfigFile`] naming the line of a
    /// malformed entry, and the errors of [`from_pairs`](StoreOptions::from_pairs).
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<StoreOptions> {
        StoreOptions::from_pairs(crate::properties::read_file(path.as_ref())?)
    }

    /// The log settings of topics created without their own and of adopted Kafka topics.
    pub fn log_config(&self) -> &LogConfig {
        &self.log
    }
}

impl StoreOptionsBuilder {
    /// Sets an option by its Kafka broker name, from text:
    ///
    /// - the broker defaults of topic settings: `log.segment.bytes`, `log.roll.ms`,
    ///   `log.roll.hours`, `log.index.size.max.bytes`, `log.index.interval.bytes`,
    ///   `message.max.bytes`, `log.message.timestamp.type`, `log.retention.ms`,
    ///   `log.retention.minutes`, `log.retention.hours` (the finest unit set wins, as in
    ///   Kafka), `log.retention.bytes`, `log.flush.interval.messages`, `log.flush.interval.ms`,
    ///   `producer.id.expiration.ms`, `compression.type` and its levels, `log.cleanup.policy`;
    /// - `log.retention.check.interval.ms` (turns background retention on) and
    ///   `log.flush.offset.checkpoint.interval.ms`;
    /// - the cleaner: `log.cleaner.enable`, `log.cleaner.dedupe.buffer.size`,
    ///   `log.cleaner.io.max.bytes.per.second`, `log.cleaner.backoff.ms`, and the topic
    ///   defaults `log.cleaner.min.cleanable.ratio`, `log.cleaner.min.compaction.lag.ms`,
    ///   `log.cleaner.max.compaction.lag.ms`, `log.cleaner.delete.retention.ms`;
    /// - topiclog's own: `topiclog.create.if.missing` (`true`/`false`),
    ///   `topiclog.lock.timeout.ms`, `topiclog.max.partitions`.
    ///
    /// The keys in [`IGNORED_STORE_KEYS`] are accepted and ignored with a log line.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] for an unknown key, [`Error::InvalidConfig`] for a value that
    /// does not parse or lies out of range.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        fn num<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T> {
            value.trim().parse().map_err(|_| Error::InvalidConfig {
                key,
                value: value.to_owned(),
                reason: "not a number in range".into(),
            })
        }
        if let Some(&(_, topic_key, scale, unit)) =
            BROKER_TOPIC_DEFAULTS.iter().find(|(k, ..)| *k == key)
        {
            let (current, slot) = match topic_key {
                "retention.ms" => (self.retention_unit, Some(&mut self.retention_unit)),
                "segment.ms" => (self.roll_unit, Some(&mut self.roll_unit)),
                _ => (0, None),
            };
            if unit < current {
                return Ok(self); // a finer unit was set already
            }
            if let Some(slot) = slot {
                *slot = unit;
            }
            let value = if scale == 1 {
                value.to_owned()
            } else {
                let n: i64 = num(topic_key, value)?;
                // -1 (forever) stays -1 whatever the unit.
                if n < 0 { n } else { n.saturating_mul(scale) }.to_string()
            };
            self.options.log = self
                .options
                .log
                .to_builder()
                .set(topic_key, &value)?
                .build()?;
            return Ok(self);
        }
        Ok(match key {
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms(num("log.retention.check.interval.ms", value)?)
            }
            "log.cleaner.enable" => match value.trim() {
                "true" => self.log_cleaner_enable(true),
                "false" => self.log_cleaner_enable(false),
                _ => {
                    return Err(Error::InvalidConfig {
                        key: "log.cleaner.enable",
                        value: value.to_owned(),
                        reason: "must be true or false".into(),
                    });
                }
            },
            "log.cleaner.dedupe.buffer.size" => {
                let bytes: usize = num("log.cleaner.dedupe.buffer.size", value)?;
                let cleaner = self.options.cleaner.dedupe_buffer_size(bytes);
                self.cleaner(cleaner)?
            }
            "log.cleaner.io.max.bytes.per.second" => {
                let rate: f64 = num("log.cleaner.io.max.bytes.per.second", value)?;
                let cleaner = self.options.cleaner.io_max_bytes_per_second(rate);
                self.cleaner(cleaner)?
            }
            "log.cleaner.backoff.ms" => {
                self.cleaner_backoff_ms(num("log.cleaner.backoff.ms", value)?)
            }
            "log.flush.offset.checkpoint.interval.ms" => self.flush_offset_checkpoint_interval_ms(
                num("log.flush.offset.checkpoint.interval.ms", value)?,
            ),
            "topiclog.create.if.missing" => match value.trim() {
                "true" => self.create_if_missing(true),
                "false" => self.create_if_missing(false),
                _ => {
                    return Err(Error::InvalidConfig {
                        key: "topiclog.create.if.missing",
                        value: value.to_owned(),
                        reason: "must be true or false".into(),
                    });
                }
            },
            "topiclog.lock.timeout.ms" => self.lock_timeout(Duration::from_millis(num(
                "topiclog.lock.timeout.ms",
                value,
            )?)),
            "topiclog.max.partitions" => {
                let max: u32 = num("topiclog.max.partitions", value)?;
                if max == 0 {
                    return Err(Error::InvalidConfig {
                        key: "topiclog.max.partitions",
                        value: value.to_owned(),
                        reason: "must be at least 1".into(),
                    });
                }
                self.max_partitions(max)
            }
            _ if IGNORED_STORE_KEYS.contains(&key) => {
                log::info!("ignoring store setting {key}={value}: no effect in topiclog");
                self
            }
            _ => {
                return Err(Error::UnknownConfig {
                    key: key.to_owned(),
                    kind: "store",
                });
            }
        })
    }

    /// [`set`](StoreOptionsBuilder::set) for each pair, in order.
    ///
    /// # Errors
    /// The first error of [`set`](StoreOptionsBuilder::set).
    pub fn set_all<K, V>(self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        pairs
            .into_iter()
            .try_fold(self, |b, (k, v)| b.set(k.as_ref(), v.as_ref()))
    }

    /// Whether a missing store directory is created (default `true`); otherwise opening it is
    /// an [`Error::Io`].
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.options.create_if_missing = create;
        self
    }

    /// Log settings for topics found on disk without a topiclog config (a Kafka broker's
    /// partitions), and the clock and write buffer of every topic. Adopted topics keep records
    /// forever (`retention.ms` -1) whatever this says, until configured.
    pub fn log_config(mut self, log: LogConfig) -> Self {
        self.options.log = log;
        self
    }

    /// Runs retention on a background thread every `interval_ms` (Kafka's
    /// `log.retention.check.interval.ms`, default [`DEFAULT_RETENTION_CHECK_INTERVAL_MS`] when
    /// enabled with [`background_retention`](Self::background_retention)). The thread stops
    /// within a second of the store being closed or dropped.
    pub fn retention_check_interval_ms(mut self, interval_ms: u64) -> Self {
        self.options.retention_check_interval_ms = Some(interval_ms.max(1));
        self
    }

    /// Turns background retention on (every 5 minutes) or off (the default).
    pub fn background_retention(mut self, on: bool) -> Self {
        self.options.retention_check_interval_ms =
            on.then_some(DEFAULT_RETENTION_CHECK_INTERVAL_MS);
        self
    }

    /// How often a background thread writes each partition's recovery checkpoint when its
    /// recovery point moved (Kafka's `log.flush.offset.checkpoint.interval.ms`, default
    /// [`DEFAULT_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS`]); see
    /// [`Partition::checkpoint_recovery_point`]. It is also written at roll and at close.
    pub fn flush_offset_checkpoint_interval_ms(mut self, interval_ms: u64) -> Self {
        self.options.checkpoint_interval_ms = interval_ms.max(1);
        self
    }

    /// What opening the store's partitions may repair beyond torn tails (default: nothing;
    /// damage to fsynced data fails the open). See [`RecoveryOptions`].
    pub fn recovery(mut self, options: RecoveryOptions) -> Self {
        self.options.recovery = options;
        self
    }

    /// How keyless and keyed records are routed (default: Kafka's, [`DefaultPartitioner`]).
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.options.partitioner = partitioner;
        self
    }

    /// How long [`Store::open_with`] waits for another process (or handle) to release the
    /// store's lock before failing with [`Error::Locked`] (default: not at all).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.options.lock_timeout = timeout;
        self
    }

    /// The most partitions a topic may have (default [`DEFAULT_MAX_PARTITIONS`]): a larger
    /// `create_topic` or `add_partitions` fails with [`Error::InvalidConfig`] before anything
    /// is written. Each open partition holds a few file descriptors and mappings.
    pub fn max_partitions(mut self, max: u32) -> Self {
        self.options.max_partitions = max.max(1);
        self
    }

    /// `log.cleaner.enable` (default true): the store's background thread compacts the
    /// partitions of compacted topics whose dirty ratio passes `min.cleanable.dirty.ratio`, or
    /// whose oldest dirty segment passed `max.compaction.lag.ms`, dirtiest first, every
    /// `log.cleaner.backoff.ms`.
    pub fn log_cleaner_enable(mut self, on: bool) -> Self {
        self.options.cleaner_enable = on;
        self
    }

    /// The cleaner's memory and I/O bounds (`log.cleaner.dedupe.buffer.size`,
    /// `log.cleaner.io.max.bytes.per.second`), for background and on-demand compaction.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an I/O rate that is not positive.
    pub fn cleaner(mut self, cleaner: CleanerConfig) -> Result<Self> {
        cleaner.validate()?;
        self.options.cleaner = cleaner;
        Ok(self)
    }

    /// `log.cleaner.backoff.ms`: how long the background cleaner sleeps between looks for
    /// dirty partitions (default [`DEFAULT_CLEANER_BACKOFF_MS`], 15 s).
    pub fn cleaner_backoff_ms(mut self, ms: u64) -> Self {
        self.options.cleaner_backoff_ms = ms.max(1);
        self
    }

    /// The options.
    pub fn build(self) -> StoreOptions {
        self.options
    }
}

/// A directory of topics. One writable `Store` per directory at a time: opening holds an OS
/// lock, and a second open, in this process or another, fails with [`Error::Locked`]. Tools
/// use [`Store::open_read_only`] beside a running application. `Send + Sync`.
///
/// ```
/// use topiclog::{Store, record::Record};
/// use topiclog::config::TopicConfig;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let orders = store.create_topic("orders", TopicConfig::new(3))?;
/// let (partition, offset) = orders.append(Record::keyed(b"customer-42", b"paid"))?;
/// assert_eq!(offset, 0);
/// // The same key always lands in the same partition, as with a Java producer.
/// assert_eq!(orders.append(Record::keyed(b"customer-42", b"shipped"))?.0, partition);
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Store {
    inner: Arc<Inner>,
    background: Option<Background>,
}

/// What a store's handles share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    disk: Arc<dyn Disk>,
    options: StoreOptions,
    read_only: bool,
    /// The writer lock, released by [`Store::close`]; `None` afterwards (and for read-only
    /// stores), when every write is refused.
    lock: Mutex<Option<DirLock>>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// The persisted registry (configured topics), under its own lock so updates serialize.
    registry: Mutex<BTreeMap<String, TopicEntry>>,
    /// A writable store's probe for followers in other processes, shared by its partitions.
    followers: Option<Arc<crate::follow::FollowerProbe>>,
    /// A read-only store's registration as a follower of the store.
    following: Option<Arc<crate::follow::Following>>,
    /// Consumer groups: membership and committed offsets (writable and consumer stores).
    pub(crate) coordinator: Option<Arc<Coordinator>>,
    /// The registry file as a read-only store last read it, to notice a writer's changes.
    registry_stamp: Mutex<Option<FileStamp>>,
    /// Named idempotent producers: the persisted registry, and each name's current id and
    /// epoch as its handles see it.
    producers: Mutex<(
        producers_file::Registry,
        BTreeMap<String, Arc<ProducerSlot>>,
    )>,
    /// The transaction coordinator (a writable store's only).
    transactions: std::sync::OnceLock<transactions::TxnCoordinator>,
}

/// How often the background thread looks for transactions open past their timeout (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` is 10 s; a shorter interval
/// keeps a short `transaction.timeout.ms` close to what it says).
const TXN_TIMEOUT_CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if missing) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens the store in `dir` for writing: takes the directory's lock, reads the topic
    /// registry, and opens (recovering) every partition. Partition directories without a
    /// topiclog config (a Kafka broker's) become topics with retention off.
    ///
    /// # Errors
    /// [`Error::Locked`] if another store holds the directory; [`Error::Corrupt`] for a
    /// malformed registry; partition recovery errors.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_on(dir.as_ref().to_path_buf(), Arc::new(OsDisk), options, true)
    }

    /// Opens a store whose files live on a [`FaultDisk`](crate::testing::FaultDisk), for
    /// durability tests of what spans the store's files: transactions across partitions and
    /// their consumer offsets (feature `fault-injection`).
    ///
    /// `dir` is a real directory, which holds only the store's lock files (file locks are the
    /// operating system's); every other file is on the fault disk under the same path. No
    /// background thread runs, so nothing writes between the test's calls: retention,
    /// checkpoints and cleaning run when called, and transaction timeouts are checked at open.
    /// Topic deletion is not supported on it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use topiclog::config::{StoreOptions, TopicConfig};
    /// use topiclog::testing::FaultDisk;
    /// use topiclog::{Record, Store};
    ///
    /// let locks = tempfile::tempdir()?;
    /// let disk = Arc::new(FaultDisk::new());
    /// let store = Store::open_on_fault_disk(Arc::clone(&disk), locks.path(), StoreOptions::default())?;
    /// store.create_topic("t", TopicConfig::new(1))?.append_to(0, Record::new(b"kept"))?;
    /// disk.crash(1); // a power loss: appends are durable by default
    /// drop(store);
    /// let store = Store::open_on_fault_disk(disk, locks.path(), StoreOptions::default())?;
    /// assert_eq!(store.topic("t")?.partition(0)?.next_offset(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`open_with`](Store::open_with); the disk's injected failures are [`Error::Io`].
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn open_on_fault_disk(
        disk: Arc<crate::disk::fault::FaultDisk>,
        dir: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store> {
        Store::open_on(dir.as_ref().to_path_buf(), disk, options, false)
    }

    /// Opens the store in `dir` on `disk` for writing, with the background thread or not.
    fn open_on(
        dir: PathBuf,
        disk: Arc<dyn Disk>,
        options: StoreOptions,
        background: bool,
    ) -> Result<Store> {
        if disk::file_len(&*disk, &dir)?.is_none() {
            if !options.create_if_missing {
                let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such store");
                return Err(Error::io(IoOp::Directory, &dir, missing));
            }
            disk::create_dir_durably(&*disk, &dir)?;
        }
        let lock = DirLock::acquire(&dir, options.lock_timeout)?;
        let intervals = Intervals {
            retention_ms: options.retention_check_interval_ms,
            checkpoint_ms: options.checkpoint_interval_ms,
            cleaner_ms: options.cleaner_enable.then_some(options.cleaner_backoff_ms),
        };
        let inner = Arc::new(Store::load(dir, disk, options, Some(lock))?);
        let background = background.then(|| Background::start(Arc::downgrade(&inner), intervals));
        Ok(Store { inner, background })
    }

    /// Opens the store in `dir` for reading only, beside a process that may hold it for
    /// writing: no lock is taken, nothing is written or repaired, and no file another process
    /// may shorten is mapped (see [`Partition::open_read_only`]).
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let inner = Store::load(dir, Arc::new(OsDisk), StoreOptions::default(), None)?;
        Ok(Store {
            inner: Arc::new(inner),
            background: None,
        })
    }

    /// Opens the store in `dir` for consuming, beside the process that writes it (or none):
    /// partitions are read as [`open_read_only`](Store::open_read_only) reads them (no writer
    /// lock, nothing repaired), while consumers of this store can join groups, commit and read
    /// committed offsets, with the same group semantics as the writer's own consumers (the
    /// group files are shared through the store's groups lock; see the `group` docs in the
    /// README). Topics and partitions created after the open appear by themselves (see
    /// [`refresh`](Store::refresh)).
    ///
    /// ```
    /// use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
    /// use topiclog::{Record, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let writer = Store::open(dir.path())?; // the application, usually another process
    /// writer.create_topic("jobs", TopicConfig::new(1))?.append_to(0, Record::new(b"a"))?;
    ///
    /// let store = Store::open_consumer(dir.path())?; // no writer lock taken
    /// let config = ConsumerConfig::builder()
    ///     .group_id("workers")
    ///     .auto_offset_reset(OffsetReset::Earliest)
    ///     .build()?;
    /// let mut worker = store.consumer(config)?;
    /// worker.subscribe(&["jobs"])?;
    /// let records = worker.poll(std::time::Duration::from_secs(5))?;
    /// assert_eq!(records.len(), 1);
    /// worker.commit()?;
    /// assert_eq!(writer.committed_offsets("workers")?[&("jobs".to_owned(), 0)], 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`open_read_only`](Store::open_read_only); [`Error::Corrupt`] naming a damaged
    /// group offsets file; [`Error::Io`] if the group lock file cannot be created.
    pub fn open_consumer(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_consumer_with(dir, StoreOptions::default())
    }

    /// [`open_consumer`](Store::open_consumer) with options (the clock, recovery options;
    /// settings that only a writer uses are ignored).
    ///
    /// # Errors
    /// As [`open_consumer`](Store::open_consumer).
    pub fn open_consumer_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let mut inner = Store::load(dir, Arc::new(OsDisk), options, None)?;
        let clock = inner.options.log.clock().clone();
        let coordinator = Coordinator::open(Arc::new(OsDisk), &inner.dir, clock)?;
        inner.coordinator = Some(Arc::new(coordinator));
        Ok(Store {
            inner: Arc::new(inner),
            background: None,
        })
    }

    /// Loads the store in `dir`: for writing under `lock`, or read-only without one.
    fn load(
        dir: PathBuf,
        disk: Arc<dyn Disk>,
        options: StoreOptions,
        lock: Option<DirLock>,
    ) -> Result<Inner> {
        if lock.is_some() {
            return Store::load_once(dir, disk, options, lock);
        }
        // Beside a live writer, the directory may change between two reads of it (a topic
        // being created or deleted, a segment rolled): a state that fails a check is read
        // again a few times before the failure is reported.
        let mut attempt = 0u32;
        loop {
            let before = disk::fingerprint(&*disk, &dir);
            let result = Store::load_once(dir.clone(), Arc::clone(&disk), options.clone(), None);
            // Partition opens read again by themselves; these come from the store's files, and
            // are read again only if the directory changed meanwhile.
            let transient = match &result {
                Err(Error::Corrupt {
                    kind: Corruption::Topics(_),
                    ..
                }) => true,
                Err(Error::Io { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
                _ => false,
            };
            if !transient || attempt >= 4 || disk::fingerprint(&*disk, &dir) == before {
                return result;
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(1 << attempt));
        }
    }

    fn load_once(
        dir: PathBuf,
        disk: Arc<dyn Disk>,
        options: StoreOptions,
        lock: Option<DirLock>,
    ) -> Result<Inner> {
        let read_only = lock.is_none();
        // The directories first, then the registry: a topic change writes its intent to the
        // registry before it creates a directory, so every directory listed here is accounted
        // for by the registry read after.
        let leftovers = if read_only {
            Leftovers::Keep
        } else {
            Leftovers::Remove
        };
        let mut listing = StoreListing::read(&*disk, &dir, leftovers)?;
        if let Some(lock) = &lock {
            // The listing sees the file this open created.
            listing.has_lock_file = lock.existed;
        }
        let stamp = registry_stamp(&dir);
        let registry_file = dir.join(TOPICS_FILE);
        let had_registry = disk::file_len(&*disk, &registry_file)?.is_some();
        if !had_registry && listing.was_a_store() {
            return Err(Error::corrupt(
                registry_file,
                0,
                Corruption::Topics(
                    "missing, but the store holds topiclog's files (partition checkpoints, \
                     producers or group offsets): its topics and their settings are unknown"
                        .to_owned(),
                ),
            ));
        }
        let mut registry = topics_file::read(&*disk, &dir, &options.log)?;
        let mut found = listing.partitions;
        let mut changed = !had_registry;
        // Topic changes a crash interrupted: roll them back.
        for (name, entry) in registry.iter_mut() {
            let Some(target) = entry.creating.take() else {
                continue;
            };
            let present = found.entry(name.clone()).or_default();
            for partition in entry.partitions..target {
                if present.remove(&partition) && !read_only {
                    let path = layout::partition_dir(&dir, name, partition);
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| Error::io(IoOp::Remove, &path, e))?;
                }
            }
            changed = true;
        }
        registry.retain(|_, entry| entry.partitions > 0);
        // The registry and the directories must agree.
        for (name, entry) in &registry {
            let present = found.remove(name).unwrap_or_default();
            if let Some(missing) = (0..entry.partitions).find(|p| !present.contains(p)) {
                return Err(Error::corrupt(
                    layout::partition_dir(&dir, name, missing),
                    0,
                    Corruption::Topics(format!(
                        "topic {name:?} is registered with {} partitions, but partition {missing} has no directory",
                        entry.partitions
                    )),
                ));
            }
            if let Some(extra) = present.range(entry.partitions..).next() {
                return Err(Error::corrupt(
                    layout::partition_dir(&dir, name, *extra),
                    0,
                    Corruption::Topics(format!(
                        "topic {name:?} is registered with {} partitions, but partition {extra} has a directory",
                        entry.partitions
                    )),
                ));
            }
        }
        // Kafka's partitions without a registration: adopted, retention off.
        let adopted = adopted_config(&options)?;
        for (name, present) in found {
            let Some(&last) = present.last() else {
                continue;
            };
            let mut entry = TopicEntry::new(last + 1, adopted.clone());
            entry.adopted = true;
            registry.insert(name, entry);
            changed = true;
        }
        for entry in registry.values_mut().filter(|e| e.adopted) {
            entry.config = adopted.clone();
        }
        if changed && !read_only {
            topics_file::write(&*disk, &dir, &registry)?;
        }
        let producers = if read_only {
            producers_file::Registry::default()
        } else {
            producers_file::read(&*disk, &dir)?
        };
        let followers =
            (!read_only).then(|| Arc::new(crate::follow::FollowerProbe::new(&dir, true)));
        let following = read_only.then(|| Arc::new(crate::follow::Following::join(&dir, true)));
        let mut inner = Inner {
            dir,
            disk,
            options,
            read_only,
            lock: Mutex::new(lock),
            topics: RwLock::new(BTreeMap::new()),
            registry: Mutex::new(registry.clone()),
            followers,
            following,
            coordinator: None,
            registry_stamp: Mutex::new(stamp),
            producers: Mutex::new((producers, BTreeMap::new())),
            transactions: std::sync::OnceLock::new(),
        };
        if !read_only {
            let clock = inner.options.log.clock().clone();
            let coordinator = Coordinator::open(Arc::clone(&inner.disk), &inner.dir, clock)?;
            inner.coordinator = Some(Arc::new(coordinator));
        }
        let mut topics = BTreeMap::new();
        for (name, entry) in &registry {
            let opened = match inner.open_partitions(
                name,
                0..entry.partitions,
                &entry.config,
                entry.replica,
            ) {
                // A writer deleted the topic since the listing.
                Err(Error::Io { source, .. })
                    if read_only && source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                opened => opened?,
            };
            let topic = Topic::new(
                name.clone(),
                entry.config.clone(),
                opened,
                Arc::clone(&inner.options.partitioner),
            );
            topics.insert(name.clone(), Arc::new(topic));
        }
        *inner.topics.write() = topics;
        if inner.lock.lock().is_some() {
            // With the partitions open: what a crash left of a transaction is completed now.
            let coordinator = transactions::TxnCoordinator::open(&inner)?;
            coordinator.abort_timed_out(&inner)?;
            let _ = inner.transactions.set(coordinator);
        }
        Ok(inner)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// For a store opened read-only or for consuming: reads the topic registry again, opening
    /// topics and partitions created since (a writer in another process made them) and
    /// dropping deleted topics, and rebalances groups whose topics changed. Returns whether
    /// anything changed. Consumers call it by themselves when the registry file changes, and
    /// [`topic`](Store::topic) when asked for a topic it does not know; a writable store has
    /// nothing to pick up (`Ok(false)`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged registry; errors opening a new partition.
    pub fn refresh(&self) -> Result<bool> {
        self.inner.refresh()
    }

    /// Whether the store was opened with [`open_read_only`](Store::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Creates a topic, all or nothing: validates the name (Kafka's rules) and the partition
    /// count (1 to [`StoreOptionsBuilder::max_partitions`]), records the change in the registry,
    /// creates the partitions, then records the topic as created. A failure (out of file
    /// descriptors, out of space) removes what was made and leaves the store as it was; a crash
    /// part way is rolled back at the next open. A read-only open meanwhile sees no topic.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::TopicExists`] (also when a directory of the new
    /// topic exists already), [`Error::InvalidConfig`] for a partition count out of range,
    /// [`Error::ReadOnly`], [`Error::Closed`], [`Error::Io`].
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        self.create_topic_with(name, config, None)
    }

    /// [`create_topic`](Store::create_topic); with `replica`, each partition made a replica of
    /// it before the topic is recorded as created.
    fn create_topic_with(
        &self,
        name: &str,
        config: TopicConfig,
        replica: Option<&ReplicaOf>,
    ) -> Result<Arc<Topic>> {
        self.writable()?;
        layout::validate_topic_name(name)?;
        self.inner.check_partition_count(config.partitions())?;
        let mut registry = self.inner.registry.lock();
        self.writable()?;
        if self.inner.topics.read().contains_key(name) || registry.contains_key(name) {
            return Err(Error::TopicExists(name.to_owned()));
        }
        let partitions = config.partitions();
        if (0..partitions).any(|p| layout::partition_dir(&self.inner.dir, name, p).exists()) {
            return Err(Error::TopicExists(name.to_owned()));
        }
        let log = self.inner.with_store_runtime(config.log());
        let mut entry = TopicEntry::new(partitions, log.clone());
        entry.partitions = 0;
        entry.creating = Some(partitions);
        entry.replica = replica.is_some();
        let opened = self
            .inner
            .change_topic(&mut registry, name, entry, 0, replica)?;
        let topic = Arc::new(Topic::new(
            name.to_owned(),
            log,
            opened,
            Arc::clone(&self.inner.options.partitioner),
        ));
        self.inner
            .topics
            .write()
            .insert(name.to_owned(), Arc::clone(&topic));
        drop(registry);
        self.inner.metadata_changed();
        Ok(topic)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        match self.inner.topic(name) {
            Err(Error::UnknownTopic(_)) if self.inner.refresh_if_changed()? => {
                self.inner.topic(name)
            }
            found => found,
        }
    }

    /// The consumer groups with committed offsets or live members, sorted.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a group offsets file that does not parse (read-only stores read
    /// the files).
    pub fn groups(&self) -> Result<Vec<String>> {
        match &self.inner.coordinator {
            Some(c) => c.groups(),
            None => {
                let dir = &self.inner.dir;
                let mut groups: std::collections::BTreeSet<String> =
                    crate::group::offsets::load_all(&ReadOnlyDisk, dir)?
                        .into_keys()
                        .collect();
                for group in crate::group::state::list(&ReadOnlyDisk, dir)? {
                    if !self.describe_group(&group)?.is_empty() {
                        groups.insert(group);
                    }
                }
                Ok(groups.into_iter().collect())
            }
        }
    }

    /// A group's live members: their client ids, processes and partitions (Kafka's
    /// `describeConsumerGroups`), sorted by member id. Members whose session or poll timer
    /// ran out are not listed. Works on every kind of store (a read-only store reads the
    /// group's file and changes nothing).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn describe_group(&self, group: &str) -> Result<Vec<crate::consumer::GroupMember>> {
        match &self.inner.coordinator {
            Some(c) => c.describe(group),
            None => {
                let mut g = crate::group::state::load(&ReadOnlyDisk, &self.inner.dir, group)?;
                let now = self.inner.options.log.clock().now_ms();
                crate::group::coordinator::expire(group, &mut g, now);
                Ok(crate::group::coordinator::describe(&g))
            }
        }
    }

    /// A group's committed offsets: the next offset to consume of each partition.
    ///
    /// # Errors
    /// As [`groups`](Store::groups).
    pub fn committed_offsets(&self, group: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        Ok(
            crate::group::offsets::read(&*self.inner.disk, &self.inner.dir, group)?
                .unwrap_or_default(),
        )
    }

    /// Sets a group's committed offsets while it has no live members (Kafka's
    /// `kafka-consumer-groups --reset-offsets`); partitions not named keep theirs.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members, [`Error::NegativeOffset`] if an offset is negative;
    /// [`Error::ReadOnly`]; [`Error::Io`].
    pub fn reset_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.coordinator()?.reset_offsets(group, offsets)
    }

    /// Deletes a group's committed offsets while it has no live members (Kafka's
    /// `kafka-consumer-groups --delete`). A group without offsets is no error.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] if the group has live members; [`Error::ReadOnly`];
    /// [`Error::Io`].
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.coordinator()?.delete_group(group)
    }

    fn coordinator(&self) -> Result<&Arc<Coordinator>> {
        self.inner.coordinator.as_ref().ok_or(Error::ReadOnly)
    }

    /// A consumer of this store's topics (see [`Consumer`]). A read-only store's consumers
    /// pick up what another process appends by re-reading the files while they wait.
    ///
    /// # Errors
    /// None: joining a group happens at [`Consumer::subscribe`].
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let source: Weak<dyn Source> = inner;
        Ok(Consumer::new(source, config, self.inner.read_only))
    }

    /// An idempotent producer for `name` (see [`Producer`]): the name keeps its producer id
    /// (the store allocates one for a new name, above every id its partitions know), and gets
    /// the next epoch, which fences every older handle for the name. Both are persisted in the
    /// store directory ([`PRODUCERS_FILE`]) before this returns, so they survive reopening.
    ///
    /// # Errors
    /// [`Error::EmptyProducerName`] for an empty name, [`Error::ReadOnly`], [`Error::Io`] when the
    /// registry cannot be written.
    pub fn producer(&self, name: &str) -> Result<Producer> {
        self.writable()?;
        if name.is_empty() {
            return Err(Error::EmptyProducerName);
        }
        let mut producers = self.inner.producers.lock();
        let (registry, slots) = &mut *producers;
        let known = match registry.producers.get(name) {
            Some(_) => 0,
            // A new id: above those in the data, such as a Kafka broker's producers.
            None => self
                .inner
                .max_producer_id()
                .map_or(0, |id| id.saturating_add(1)),
        };
        let (updated, id, epoch) = registry.next_handle(name, known);
        producers_file::write(&*self.inner.disk, &self.inner.dir, &updated)?;
        *registry = updated;
        let current = IdEpoch { id, epoch };
        let slot = slots
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(ProducerSlot::new(current)));
        slot.set(current);
        Ok(Producer::new(
            Arc::downgrade(&self.inner),
            name.to_owned(),
            current,
            Arc::clone(slot),
        ))
    }

    /// A transactional producer for `transactional_id` (Kafka's producer with
    /// `transactional.id`): call [`init_transactions`](TransactionalProducer::init_transactions)
    /// before its first transaction, which fences every older handle of the same id (in this
    /// process, or from before a restart).
    ///
    /// # Errors
    /// [`Error::EmptyProducerName`] for an empty id, [`Error::ReadOnly`].
    pub fn transactional_producer(&self, transactional_id: &str) -> Result<TransactionalProducer> {
        self.writable()?;
        if transactional_id.is_empty() {
            return Err(Error::EmptyProducerName);
        }
        Ok(TransactionalProducer::new(
            Arc::downgrade(&self.inner),
            transactional_id.to_owned(),
        ))
    }

    /// The open transactions (Kafka's `kafka-transactions.sh list`): the coordinator's, with
    /// their transactional ids, then those found open in partition logs that the coordinator
    /// does not know (written by Kafka, or their record lost), which hold the last stable
    /// offset until they time out or are aborted.
    ///
    /// A read-only store reads the coordinator's file as the writer last wrote it, and the
    /// partitions as of their last refresh.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged coordinator file; [`Error::Io`].
    pub fn transactions(&self) -> Result<Vec<OpenTransaction>> {
        match self.inner.transactions.get() {
            Some(coordinator) => coordinator.list_open(&self.inner),
            None => {
                let registry = transactions_file::read(&*self.inner.disk, &self.inner.dir)?;
                transactions::list_open(&registry, &self.inner)
            }
        }
    }

    /// Aborts an open transaction now (Kafka's `kafka-transactions.sh abort`): `id` is a
    /// transactional id (its producer is fenced), or the producer id of a transaction found
    /// only in logs. A transaction that had decided to commit is committed instead. Returns
    /// whether there was one.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Io`].
    pub fn abort_transaction(&self, id: &str) -> Result<bool> {
        self.inner.txn_coordinator()?.abort_now(&self.inner, id)
    }

    /// Aborts now what the store's background thread aborts once a second: transactions open
    /// longer than their `transaction.timeout.ms` (their producers are fenced), and
    /// transactions found only in logs whose first batch is older than the default timeout.
    /// For a store without that thread ([`open_on_fault_disk`](Store::open_on_fault_disk)), or
    /// to not wait for it. Returns how many it aborted.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Io`].
    pub fn abort_timed_out_transactions(&self) -> Result<usize> {
        self.inner.txn_coordinator()?.abort_timed_out(&self.inner)
    }

    /// The names of all topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.inner.topics.read().keys().cloned().collect()
    }

    /// Changes a topic's settings (Kafka's `kafka-configs --alter --add-config`): `pairs` are
    /// Kafka topic keys over the topic's current settings. The registry records them durably
    /// first, then every open partition takes them up (see [`Partition::set_config`]), and
    /// they hold after reopening. A Kafka broker's adopted topic becomes configured.
    ///
    /// ```
    /// use topiclog::Store;
    /// use topiclog::config::TopicConfig;
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::new(2))?;
    /// store.alter_topic_config("events", [("retention.ms", "3600000")])?;
    /// assert_eq!(store.topic("events")?.config().retention_ms(), 3_600_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::UnknownConfig`] or [`Error::InvalidConfig`] naming a
    /// bad key or value (nothing is changed then); [`Error::ReadOnly`]; [`Error::Io`] if the
    /// registry cannot be written (nothing is changed then either).
    pub fn alter_topic_config<K, V>(
        &self,
        name: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.writable()?;
        let mut registry = self.inner.registry.lock();
        self.writable()?;
        let topic = self.topic(name)?;
        let entry = registry.get(name).cloned().unwrap_or_else(|| {
            TopicEntry::new(topic.partition_count(), LogConfig::clone(&topic.config()))
        });
        let config = entry.config.to_builder().set_all(pairs)?.build()?;
        let config = self.inner.with_store_runtime(&config);
        let mut updated = registry.clone();
        updated.insert(
            name.to_owned(),
            TopicEntry {
                adopted: false,
                config: config.clone(),
                ..entry
            },
        );
        topics_file::write(&*self.inner.disk, &self.inner.dir, &updated)?;
        *registry = updated;
        topic.set_config(Arc::new(config.clone()));
        for partition in topic.partitions() {
            partition.set_config(config.clone())?;
        }
        log::info!("topic {name}: settings changed");
        Ok(())
    }

    /// Deletes a topic and its files. Its registration goes first (durably); each partition
    /// directory is then renamed `<topic>-<n>.<id>-delete`, as Kafka names it, and removed, so
    /// a crash in between finishes the deletion at the next open. Readers still holding the
    /// topic's partitions read on from their open files.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.writable()?;
        let mut registry = self.inner.registry.lock();
        let topic = self.topic(name)?;
        if registry.contains_key(name) {
            let mut updated = registry.clone();
            updated.remove(name);
            topics_file::write(&*self.inner.disk, &self.inner.dir, &updated)?;
            *registry = updated;
        }
        self.inner.topics.write().remove(name);
        self.inner.metadata_changed();
        static DELETIONS: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "{:016x}{:016x}",
            self.inner.options.log.clock().now_ms() as u64,
            DELETIONS.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id())
        );
        for (n, partition) in topic.partitions().iter().enumerate() {
            partition.close()?;
            let from = layout::partition_dir(&self.inner.dir, name, n as u32);
            let to = self.inner.dir.join(format!("{name}-{n}.{id}-delete"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(IoOp::Rename, &from, e))?;
            std::fs::remove_dir_all(&to).map_err(|e| Error::io(IoOp::Remove, &to, e))?;
        }
        disk::sync_dir(&*self.inner.disk, &self.inner.dir)
    }

    /// Grows a topic to `partitions` partitions (never shrinks it: Kafka's rule, since keys
    /// would move), all or nothing as [`create_topic`](Store::create_topic) is. Keyed records
    /// route by the new count from then on.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::InvalidConfig`] for a count that does not grow or is
    /// above the bound, [`Error::ReadOnly`], [`Error::Closed`], [`Error::Io`].
    pub fn add_partitions(&self, name: &str, partitions: u32) -> Result<()> {
        if let Some(first) = self.topic(name)?.partitions().first() {
            // A replica grows with its cluster topic only, through its replicator.
            first.check_owner_write()?;
        }
        self.grow_topic(name, partitions, None)
    }

    /// Creates topic `name` as a replica of the cluster topic `of`: a topic as
    /// [`create_topic`](Store::create_topic) makes it, each partition then made a replica
    /// ([`Partition::make_replica`]), so that only its replicator writes it.
    ///
    /// # Errors
    /// As [`create_topic`](Store::create_topic) and [`Partition::make_replica`].
    pub fn create_replica_topic(
        &self,
        name: &str,
        config: TopicConfig,
        of: &ReplicaOf,
    ) -> Result<Arc<Topic>> {
        self.create_topic_with(name, config, Some(of))
    }

    /// Grows replica topic `name` to `partitions` partitions, as its cluster topic grew, each
    /// new partition a replica of `of` (the replicator's [`add_partitions`](Store::add_partitions)).
    ///
    /// # Errors
    /// As [`add_partitions`](Store::add_partitions), and [`Error::NotAReplica`] for a topic
    /// that is not a replica.
    pub fn add_replica_partitions(
        &self,
        name: &str,
        partitions: u32,
        of: &ReplicaOf,
    ) -> Result<()> {
        let topic = self.topic(name)?;
        if let Some(first) = topic.partitions().first()
            && first.replica_of().is_none()
        {
            return Err(Error::NotAReplica {
                dir: first.dir().to_path_buf(),
            });
        }
        self.grow_topic(name, partitions, Some(of))
    }

    /// [`add_partitions`](Store::add_partitions) without the replica check; with `replica`,
    /// the new partitions are made replicas of it.
    fn grow_topic(&self, name: &str, partitions: u32, replica: Option<&ReplicaOf>) -> Result<()> {
        self.writable()?;
        let mut registry = self.inner.registry.lock();
        self.writable()?;
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if partitions <= current {
            return Err(Error::InvalidConfig {
                key: "partitions",
                value: partitions.to_string(),
                reason: "a topic's partition count can only grow".into(),
            });
        }
        self.inner.check_partition_count(partitions)?;
        let mut entry = registry
            .get(name)
            .cloned()
            .unwrap_or_else(|| TopicEntry::new(current, LogConfig::clone(&topic.config())));
        entry.partitions = current;
        entry.creating = Some(partitions);
        let added = self
            .inner
            .change_topic(&mut registry, name, entry, current, replica)?;
        topic.push_partitions(added);
        drop(registry);
        self.inner.metadata_changed();
        Ok(())
    }

    /// Compacts every partition of `topic` now (see [`Partition::compact`]), with the store's
    /// cleaner settings, whatever their dirty ratio. Returns each partition's report; a topic
    /// whose `cleanup.policy` does not compact reports every partition skipped.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::ReadOnly`], and the errors of
    /// [`Partition::compact`].
    pub fn compact(&self, topic: &str) -> Result<Vec<(u32, CompactionReport)>> {
        self.writable()?;
        let topic = self.topic(topic)?;
        let mut reports = Vec::new();
        for (n, partition) in topic.partitions().iter().enumerate() {
            reports.push((
                n as u32,
                partition.clean(&self.inner.options.cleaner, None)?,
            ));
        }
        Ok(reports)
    }

    /// Runs retention on every partition of every topic now. Returns what each deleted, for
    /// partitions that deleted something.
    pub fn enforce_retention(&self) -> Result<Vec<(String, u32, RetentionReport)>> {
        self.writable()?;
        self.inner.enforce_retention()
    }

    /// Stops background work, closes every partition cleanly (see [`Partition::close`]) and
    /// releases the store's lock, so another open, in this process or another, succeeds at
    /// once. Every later write through this store or its handles fails with
    /// [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        if let Some(background) = &self.background {
            background.stop();
        }
        // Under the registry lock, so no topic change runs across the release.
        let _registry = self.inner.registry.lock();
        let topics: Vec<Arc<Topic>> = self.inner.topics.read().values().cloned().collect();
        for topic in topics {
            for partition in topic.partitions() {
                partition.close()?;
            }
        }
        if let Some(c) = &self.inner.coordinator {
            c.close();
        }
        self.inner.lock.lock().take();
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        self.inner.writable()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            background.stop();
        }
    }
}

/// What consumers read through: the store's coordinator and partitions.
impl Source for Inner {
    fn coordinator(&self) -> Option<&Arc<Coordinator>> {
        self.coordinator.as_ref()
    }

    fn partition(&self, topic: &str, number: u32) -> Result<Arc<Partition>> {
        match self.topic(topic)?.partition(number) {
            Err(Error::UnknownPartition { .. }) if self.refresh_if_changed()? => {
                self.topic(topic)?.partition(number)
            }
            found => found,
        }
    }

    fn partition_count(&self, topic: &str) -> Option<u32> {
        if self.topic(topic).is_err() {
            let _ = self.refresh_if_changed();
        }
        self.topic(topic).ok().map(|t| t.partition_count())
    }

    fn refresh_if_changed(&self) -> Result<bool> {
        Inner::refresh_if_changed(self)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn committed_offsets(&self, group: &str) -> Result<crate::group::offsets::Offsets> {
        Ok(crate::group::offsets::read(&*self.disk, &self.dir, group)?.unwrap_or_default())
    }
}

impl Inner {
    /// The transaction coordinator; [`Error::ReadOnly`] for a store without one.
    pub(crate) fn txn_coordinator(&self) -> Result<&transactions::TxnCoordinator> {
        self.writable()?;
        self.transactions.get().ok_or(Error::ReadOnly)
    }

    /// [`Error::ReadOnly`] for a read-only store, [`Error::Closed`] once closed.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else if self.lock.lock().is_none() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// [`refresh`](Self::refresh) if the registry file was replaced since the last look (one
    /// `stat`); `Ok(false)` otherwise and for writable stores.
    pub(crate) fn refresh_if_changed(&self) -> Result<bool> {
        if !self.read_only {
            return Ok(false);
        }
        let stamp = registry_stamp(&self.dir);
        if *self.registry_stamp.lock() == stamp {
            return Ok(false);
        }
        self.refresh()
    }

    /// See [`Store::refresh`].
    pub(crate) fn refresh(&self) -> Result<bool> {
        if !self.read_only {
            return Ok(false);
        }
        let mut registry = self.registry.lock();
        // The stamp first: a change after it is seen by the next look.
        let stamp = registry_stamp(&self.dir);
        let read = topics_file::read(&*self.disk, &self.dir, &self.options.log)?;
        let current: BTreeMap<String, Arc<Topic>> = self.topics.read().clone();
        let mut next = BTreeMap::new();
        let mut changed = false;
        for (name, entry) in &read {
            // `partitions` counts what the writer finished creating; `creating` is intent.
            if entry.partitions == 0 {
                continue;
            }
            let topic = match current.get(name) {
                Some(topic) => {
                    let have = topic.partition_count();
                    if have < entry.partitions {
                        match self.open_partitions(
                            name,
                            have..entry.partitions,
                            &entry.config,
                            entry.replica,
                        ) {
                            Ok(added) => {
                                topic.push_partitions(added);
                                changed = true;
                            }
                            // Being deleted meanwhile: the next refresh sees it gone.
                            Err(Error::Io { source, .. })
                                if source.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Arc::clone(topic)
                }
                None => {
                    let opened = match self.open_partitions(
                        name,
                        0..entry.partitions,
                        &entry.config,
                        entry.replica,
                    ) {
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            continue;
                        }
                        opened => opened?,
                    };
                    changed = true;
                    Arc::new(Topic::new(
                        name.clone(),
                        entry.config.clone(),
                        opened,
                        Arc::clone(&self.options.partitioner),
                    ))
                }
            };
            next.insert(name.clone(), topic);
        }
        // Topics adopted from a broker's directories are not in the registry of a store
        // opened read-only before its writer registered them: keep what is open.
        for (name, topic) in &current {
            if !next.contains_key(name) {
                if registry.get(name).is_some_and(|e| e.adopted) && !read.contains_key(name) {
                    next.insert(name.clone(), Arc::clone(topic));
                } else {
                    changed = true;
                }
            }
        }
        if changed {
            log::debug!("{}: topics refreshed from the registry", self.dir.display());
            *self.topics.write() = next;
        }
        *registry = read;
        *self.registry_stamp.lock() = stamp;
        drop(registry);
        if changed {
            self.metadata_changed();
        }
        Ok(changed)
    }

    /// Probes for followers in other processes; when some just appeared, every partition
    /// makes what it holds visible to them.
    fn serve_new_followers(&self) {
        let Some(probe) = &self.followers else {
            return;
        };
        if !probe.present().1 {
            return;
        }
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for partition in topics.iter().flat_map(|t| t.partitions()) {
            partition.serve_followers();
        }
    }

    /// Tells the group coordinator that topics or partition counts changed (rebalance).
    fn metadata_changed(&self) {
        if let Some(c) = &self.coordinator {
            c.metadata_changed();
        }
    }

    /// The topic named `name`.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// The highest coordinator epoch of any marker the partitions' producers last wrote.
    fn max_coordinator_epoch(&self) -> i32 {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        topics
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.max_coordinator_epoch())
            .max()
            .unwrap_or(-1)
    }

    /// The highest producer id any partition knows.
    fn max_producer_id(&self) -> Option<i64> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        topics
            .iter()
            .flat_map(|t| t.partitions())
            .filter_map(|p| p.max_producer_id())
            .max()
    }

    /// Opens partitions `range` of `name`; on a failure, none stays open.
    /// Opens partitions `range` of topic `name`; with `replica`, each must hold a replica
    /// marker (the registry lists the topic as a replica).
    fn open_partitions(
        &self,
        name: &str,
        range: std::ops::Range<u32>,
        config: &LogConfig,
        replica: bool,
    ) -> Result<Vec<Arc<Partition>>> {
        range
            .map(|p| {
                let partition = self.open_partition(name, p, config.clone())?;
                if replica && partition.replica_of().is_none() {
                    return Err(Error::corrupt(
                        partition.dir().join(crate::partition::REPLICA_FILE),
                        0,
                        Corruption::Metadata(
                            "replica marker missing: the topic registry lists the topic as a \
                             replica",
                        ),
                    ));
                }
                Ok(partition)
            })
            .collect()
    }

    /// The partition count bound, checked before anything is written.
    fn check_partition_count(&self, partitions: u32) -> Result<()> {
        let max = self.options.max_partitions;
        if partitions == 0 || partitions > max {
            return Err(Error::InvalidConfig {
                key: "partitions",
                value: partitions.to_string(),
                reason: format!("must be 1 to {max} (the store's max_partitions)").into(),
            });
        }
        Ok(())
    }

    /// Creates partitions `from..` of a topic as `entry` (with `creating` set) describes:
    /// records the intent, creates them, records them as created. On a failure, removes what
    /// it made and restores the registry (or, if even that fails, leaves the intent for the
    /// next open to roll back).
    fn change_topic(
        &self,
        registry: &mut BTreeMap<String, TopicEntry>,
        name: &str,
        entry: TopicEntry,
        from: u32,
        replica: Option<&ReplicaOf>,
    ) -> Result<Vec<Arc<Partition>>> {
        let Some(target) = entry.creating else {
            return Err(Error::Internal("a topic change needs a target count"));
        };
        let mut intent = registry.clone();
        intent.insert(name.to_owned(), entry.clone());
        topics_file::write(&*self.disk, &self.dir, &intent)?;
        let mut done = registry.clone();
        let mut finished = entry.clone();
        finished.partitions = target;
        finished.creating = None;
        done.insert(name.to_owned(), finished);
        let created = self
            .open_partitions(name, from..target, &entry.config, false)
            .and_then(|opened| {
                // Marked before the topic is recorded as created: a crash before leaves the
                // intent, which the next open rolls back.
                if let Some(of) = replica {
                    for partition in &opened {
                        partition.make_replica(of)?;
                    }
                }
                topics_file::write(&*self.disk, &self.dir, &done)?;
                Ok(opened)
            });
        match created {
            Ok(opened) => {
                *registry = done;
                Ok(opened)
            }
            Err(e) => {
                for partition in from..target {
                    let path = layout::partition_dir(&self.dir, name, partition);
                    let _ = std::fs::remove_dir_all(path);
                }
                let _ = topics_file::write(&*self.disk, &self.dir, registry);
                Err(e)
            }
        }
    }

    fn open_partition(
        &self,
        name: &str,
        partition: u32,
        config: LogConfig,
    ) -> Result<Arc<Partition>> {
        let dir = layout::partition_dir(&self.dir, name, partition);
        let opened = if self.read_only {
            Partition::open_following(&dir, config, self.following.clone())?
        } else {
            Partition::open_on(Arc::clone(&self.disk), &dir, config, self.options.recovery)?
        };
        if let Some(probe) = &self.followers {
            opened.set_follower_probe(Arc::clone(probe));
        }
        opened.set_cleaner_checkpoint(
            self.dir
                .join(crate::cleaner::checkpoint::CLEANER_CHECKPOINT_FILE),
        );
        Ok(Arc::new(opened))
    }

    /// `config` with the store's clock and write buffer (which are not persisted).
    fn with_store_runtime(&self, config: &LogConfig) -> LogConfig {
        let mut builder = LogConfig::builder()
            .clock(self.options.log.clock().clone())
            .write_buffer_bytes(self.options.log.write_buffer_bytes());
        for (key, value) in config.to_pairs() {
            // Values read back from a valid config always apply.
            builder = builder.clone().set(key, &value).unwrap_or(builder);
        }
        builder.build().unwrap_or_else(|_| config.clone())
    }

    /// Writes every partition's recovery checkpoint whose recovery point moved.
    fn checkpoint_recovery_points(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in topics {
            for partition in topic.partitions() {
                partition.checkpoint_recovery_point()?;
            }
        }
        Ok(())
    }

    /// One round of the background cleaner (Kafka's `grabFilthiestCompactedLog`): the
    /// partition of a compacted topic dirtier than its `min.cleanable.dirty.ratio` (or
    /// overdue by `max.compaction.lag.ms`) with the highest ratio is cleaned, then the next,
    /// each at most once a round.
    fn clean_dirtiest(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut candidates = Vec::new();
        for topic in topics {
            let config = topic.config();
            if !config.cleanup_policy().compacts() {
                continue;
            }
            for partition in topic.partitions() {
                if partition.replica_of().is_some() {
                    // Compacted by its cluster; the replica takes the cleaned batches' gaps.
                    continue;
                }
                let dirt = match partition.dirt() {
                    Ok(dirt) => dirt,
                    Err(e) => {
                        log::warn!("{}: dirt unknown: {e}", partition.dir().display());
                        continue;
                    }
                };
                if dirt.overdue || dirt.ratio() > config.min_cleanable_dirty_ratio() {
                    let rank = if dirt.overdue {
                        f64::INFINITY
                    } else {
                        dirt.ratio()
                    };
                    candidates.push((rank, config.min_cleanable_dirty_ratio(), partition));
                }
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        // One partition's failure (a damaged batch, a full disk) does not keep the others
        // from being cleaned; the next round meets it again.
        for (_, threshold, partition) in candidates {
            if let Err(e) = partition.clean(&self.options.cleaner, Some(threshold)) {
                log::warn!(
                    "{}: background cleaning failed: {e}",
                    partition.dir().display()
                );
            }
        }
    }

    fn enforce_retention(&self) -> Result<Vec<(String, u32, RetentionReport)>> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut reports = Vec::new();
        for topic in topics {
            for (n, partition) in topic.partitions().iter().enumerate() {
                if partition.replica_of().is_some() {
                    // A replica's retention is its cluster's (see `replicated_log_start`).
                    continue;
                }
                let report = partition.enforce_retention()?;
                if !report.deleted_segments.is_empty() {
                    reports.push((topic.name().to_owned(), n as u32, report));
                }
            }
        }
        Ok(reports)
    }
}

/// Reads every store-level file a writable open reads, changing nothing: the topic registry,
/// the producer registry and every group's offsets. The first damaged one is the error.
pub(crate) fn check_store_files(disk: &dyn Disk, dir: &Path) -> Result<()> {
    topics_file::read(disk, dir, &LogConfig::default())?;
    producers_file::read(disk, dir)?;
    transactions_file::read(disk, dir)?;
    crate::group::offsets::load_all(disk, dir)?;
    Ok(())
}

/// The settings of a topic found on disk without a config: the store's, retention off.
fn adopted_config(options: &StoreOptions) -> Result<LogConfig> {
    let config = &options.log;
    LogConfig::builder()
        .segment_bytes(config.segment_bytes())
        .segment_ms(config.segment_ms())
        .segment_index_bytes(config.segment_index_bytes())
        .index_interval_bytes(config.index_interval_bytes())
        .max_message_bytes(config.max_message_bytes())
        .message_timestamp_type(config.message_timestamp_type())
        .retention_ms(-1)
        .retention_bytes(config.retention_bytes())
        .producer_id_expiration_ms(config.producer_id_expiration_ms())
        .write_buffer_bytes(config.write_buffer_bytes())
        .clock(config.clock().clone())
        .build()
}

/// What identifies one version of a file: it is replaced whole (a new inode) at each change.
type FileStamp = (u64, std::time::SystemTime, u64);

/// The registry file's stamp, `None` if it cannot be read.
fn registry_stamp(dir: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(dir.join(TOPICS_FILE)).ok()?;
    #[cfg(unix)]
    let id = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let id = 0;
    Some((id, meta.modified().ok()?, meta.len()))
}

/// What a store directory holds, listed once: partition directories by topic, and which of
/// topiclog's own files are there.
/// The partition directories of the store at `dir` (`<topic>-<partition>`, the one rule a
/// store lists them by), as `(topic, directory)` in name order; changes nothing.
pub(crate) fn list_partition_dirs(disk: &dyn Disk, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let listing = StoreListing::read(disk, dir, Leftovers::Keep)?;
    Ok(listing
        .partitions
        .into_iter()
        .flat_map(|(topic, partitions)| {
            partitions
                .into_iter()
                .map(move |p| (topic.clone(), layout::partition_dir(dir, &topic, p)))
        })
        .collect())
}

/// What [`StoreListing::read`] does with work a crash interrupted (temporary files, topic
/// directories being deleted): an enum, so call sites say which rather than pass a bare bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    /// Finish it: a writable open.
    Remove,
    /// Leave it to the writer: a read-only listing changes nothing.
    Keep,
}

#[derive(Debug, Default)]
struct StoreListing {
    partitions: BTreeMap<String, std::collections::BTreeSet<u32>>,
    /// The producer registry or a group's offsets.
    has_store_files: bool,
    /// A store's (or a broker's) lock file.
    has_lock_file: bool,
    /// A partition directory with topiclog's checkpoints or marker.
    has_partition_files: bool,
}

impl StoreListing {
    /// Whether a store opened here before: it wrote its registry then, so a missing one was
    /// lost. Partition directories topiclog wrote on their own (`Partition::open`, no lock
    /// file beside them) and a broker's untouched log directory are not stores yet.
    fn was_a_store(&self) -> bool {
        self.has_store_files || (self.has_lock_file && self.has_partition_files)
    }

    fn read(disk: &dyn Disk, dir: &Path, leftovers: Leftovers) -> Result<StoreListing> {
        let remove = leftovers == Leftovers::Remove;
        let mut listing = StoreListing::default();
        for entry in disk::list_dir(disk, dir)? {
            let Some(name) = entry.name.to_str() else {
                continue;
            };
            if entry.is_file && name.starts_with("topiclog-") && name.ends_with(".tmp") {
                // A replacement a crash interrupted before its rename: the file it was to
                // replace is intact. Group files are replaced by consumer processes too, under
                // the groups lock: the coordinator removes theirs holding it.
                if remove && !name.starts_with("topiclog-group") {
                    disk::remove_file(disk, &dir.join(name))?;
                }
                continue;
            }
            if entry.is_file {
                listing.has_store_files |= name == PRODUCERS_FILE
                    || name == crate::layout::TRANSACTIONS_FILE
                    || name == crate::group::offsets::GROUPS_FILE
                    || name.starts_with(crate::group::offsets::FILE_PREFIX);
                listing.has_lock_file |= name == LOCK_FILE;
                continue;
            }
            if name.ends_with("-delete") {
                if remove {
                    // A topic deletion that a crash interrupted: finish it.
                    let path = dir.join(name);
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| Error::io(IoOp::Remove, &path, e))?;
                }
                continue;
            }
            if let Some((topic, partition)) = layout::parse_partition_dir(name) {
                listing.has_partition_files |=
                    crate::partition::has_topiclog_files(&dir.join(name));
                listing
                    .partitions
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(partition);
            }
        }
        Ok(listing)
    }
}

/// How often [`Background`] works: named, rather than an `(Option<u64>, u64)` tuple.
#[derive(Debug, Clone, Copy)]
struct Intervals {
    /// Milliseconds between retention runs; `None` for none.
    retention_ms: Option<u64>,
    /// Milliseconds between recovery-checkpoint writes.
    checkpoint_ms: u64,
    /// Milliseconds between background cleaner rounds; `None` for none.
    cleaner_ms: Option<u64>,
}

impl Background {
    /// Runs retention every `intervals.retention_ms` (when set) and writes recovery
    /// checkpoints every `intervals.checkpoint_ms`, on one thread.
    fn start(store: Weak<Inner>, intervals: Intervals) -> Background {
        let Intervals {
            retention_ms,
            checkpoint_ms,
            cleaner_ms,
        } = intervals;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let every = |ms: u64| Duration::from_millis(ms);
        let handle = std::thread::Builder::new()
            .name("topiclog-background".to_owned())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let start = Instant::now();
                let mut next_retention = retention_ms.map(|ms| start + every(ms));
                let mut next_checkpoint = start + every(checkpoint_ms);
                let mut next_probe = start;
                let mut next_txn_check = start + TXN_TIMEOUT_CHECK_EVERY;
                let mut next_clean = cleaner_ms.map(|ms| start + every(ms));
                loop {
                    let due = next_retention
                        .map_or(next_checkpoint, |r| r.min(next_checkpoint))
                        .min(next_probe)
                        .min(next_txn_check);
                    let due = next_clean.map_or(due, |c| c.min(due));
                    let mut guard = stopped.lock();
                    if !*guard {
                        wake.wait_until(&mut guard, due);
                    }
                    if *guard {
                        return;
                    }
                    drop(guard);
                    let Some(inner) = store.upgrade() else { return };
                    let now = Instant::now();
                    if now >= next_probe {
                        // Followers that appeared while nothing was appended see what was.
                        inner.serve_new_followers();
                        next_probe = now + crate::follow::PROBE_EVERY;
                    }
                    if now >= next_txn_check {
                        if let Some(coordinator) = inner.transactions.get()
                            && let Err(e) = coordinator.abort_timed_out(&inner)
                        {
                            // The next round, or the next open, tries again.
                            log::warn!(
                                "{}: aborting timed-out transactions: {e}",
                                inner.dir.display()
                            );
                        }
                        next_txn_check = now + TXN_TIMEOUT_CHECK_EVERY;
                    }
                    // Errors are met again by the next run, or by a direct call (a flush, a
                    // close, `Store::enforce_retention`), which returns them.
                    if now >= next_checkpoint {
                        let _ = inner.checkpoint_recovery_points();
                        next_checkpoint = now + every(checkpoint_ms);
                    }
                    if let (Some(at), Some(ms)) = (next_retention, retention_ms)
                        && now >= at
                    {
                        let _ = inner.enforce_retention();
                        next_retention = Some(now + every(ms));
                    }
                    if let (Some(at), Some(ms)) = (next_clean, cleaner_ms)
                        && now >= at
                    {
                        inner.clean_dirtiest();
                        next_clean = Some(Instant::now() + every(ms));
                    }
                }
            })
            .ok();
        Background {
            stop,
            handle: Mutex::new(handle),
        }
    }

    /// Stops the thread and waits for it, so no background write outlives the store's lock.
    fn stop(&self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        if let Some(handle) = self.handle.lock().take() {
            let _ = handle.join();
        }
    }
}
