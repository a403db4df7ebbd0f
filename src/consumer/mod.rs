//! Consumers: Kafka's consuming side, inside the process.
//!
//! A [`Consumer`] reads partitions assigned to it by hand ([`Consumer::assign`]) and keeps a
//! position in each, the offset of the next record to return. [`Consumer::poll`] returns what
//! is available across its partitions, taking turns so one busy partition cannot starve the
//! others, and otherwise sleeps until an append wakes it or the timeout passes: no busy loop,
//! no sleep-polling (a read-only store, where another process appends, is the exception: it
//! re-reads the files every 50 ms while waiting). Under the durable flush policy a record is
//! published, and so returned, only once it is durable.

mod config;

pub use config::{
    ConsumerConfig, ConsumerConfigBuilder, DEFAULT_AUTO_COMMIT_INTERVAL_MS,
    DEFAULT_MAX_POLL_INTERVAL_MS, DEFAULT_MAX_POLL_RECORDS, OffsetReset,
};

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::partition::watch::Signal;
use crate::partition::{LogRecord, Partition};
use crate::store::Inner;

/// How often a consumer of a read-only store re-reads the files while it waits: the writer is
/// another process, whose appends cannot wake it.
const READ_ONLY_REFRESH: Duration = Duration::from_millis(50);

/// A topic and a partition number.
pub type TopicPartition = (String, u32);

/// A record a consumer returned, with where it came from.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    topic: Arc<str>,
    partition: u32,
    record: LogRecord,
}

impl ConsumerRecord {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record (offset, timestamp, key, value, headers).
    pub fn record(&self) -> &LogRecord {
        &self.record
    }

    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.record.offset()
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }

    /// The record's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key()
    }

    /// The record's value (`None` for a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.record.value()
    }
}

/// One assigned partition.
#[derive(Debug)]
struct Assigned {
    topic: Arc<str>,
    number: u32,
    partition: Arc<Partition>,
    /// The next offset to return; `None` until first needed (then the reset policy decides).
    position: Option<i64>,
}

/// Reads records from partitions of a [`Store`](crate::Store), by hand-made assignment.
/// `Send`; one thread polls it at a time, as with Kafka's consumer.
///
/// ```
/// use std::time::Duration;
/// use topiclog::{ConsumerConfig, OffsetReset, Store, TopicConfig, record::Record};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let events = store.create_topic("events", TopicConfig::new(2))?;
/// events.append_to(1, Record::new(b"hello"))?;
///
/// let config = ConsumerConfig::builder().auto_offset_reset(OffsetReset::Earliest).build()?;
/// let mut consumer = store.consumer(config)?;
/// consumer.assign(&[("events", 0), ("events", 1)])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].value(), Some(&b"hello"[..]));
/// assert_eq!(consumer.position("events", 1)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    store: Weak<Inner>,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    signal: Arc<Signal>,
    /// Which partition the next poll starts with (turns, for fairness).
    next_turn: usize,
    read_only: bool,
}

impl Consumer {
    pub(crate) fn new(store: Weak<Inner>, config: ConsumerConfig, read_only: bool) -> Consumer {
        Consumer {
            store,
            config,
            assigned: Vec::new(),
            signal: Signal::new(),
            next_turn: 0,
            read_only,
        }
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions from now on (Kafka's `assign`). Partitions kept keep
    /// their positions; new ones start where `auto.offset.reset` says.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::Closed`] once the store
    /// is gone.
    pub fn assign(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        let store = self.store.upgrade().ok_or(Error::Closed)?;
        let mut next = Vec::with_capacity(partitions.len());
        for &(topic, number) in partitions {
            if next
                .iter()
                .any(|a: &Assigned| &*a.topic == topic && a.number == number)
            {
                continue;
            }
            let kept = self
                .assigned
                .iter()
                .position(|a| &*a.topic == topic && a.number == number);
            let assigned = match kept {
                Some(i) => self.assigned.swap_remove(i),
                None => Assigned {
                    topic: Arc::from(topic),
                    number,
                    partition: store.topic(topic)?.partition(number)?,
                    position: None,
                },
            };
            next.push(assigned);
        }
        for dropped in self.assigned.drain(..) {
            dropped.partition.unwatch(&self.signal);
        }
        for a in &next {
            a.partition.watch(&self.signal);
        }
        self.assigned = next;
        Ok(())
    }

    /// The partitions assigned, in assignment order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .map(|a| (a.topic.to_string(), a.number))
            .collect()
    }

    /// Returns up to `max.poll.records` records from the assigned partitions, advancing the
    /// positions past them. Each partition gets its turn: partitions with records share the
    /// limit, and the first partition read changes from one poll to the next. When nothing is
    /// available it waits up to `timeout` for an append to any of them, and returns as soon as
    /// one arrives (an empty `Vec` after the timeout).
    ///
    /// # Errors
    /// [`Error::NoOffsetForPartition`] when a position must be reset and `auto.offset.reset`
    /// is `none`; [`Error::Corrupt`] when the next record of a partition is damaged and
    /// nothing was read before it in this poll (the position stays on it).
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            // Armed before looking: an append from here on ends the wait below at once.
            self.signal.arm();
            if self.read_only {
                for a in &self.assigned {
                    a.partition.refresh()?;
                }
            }
            let records = self.fetch()?;
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(records);
            }
            let until = if self.read_only {
                deadline.min(now + READ_ONLY_REFRESH)
            } else {
                deadline
            };
            self.signal.wait_until(until);
        }
    }

    /// Reads what is available, each partition in turn.
    fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        let n = self.assigned.len();
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        let first = self.next_turn % n;
        self.next_turn = self.next_turn.wrapping_add(1);
        let share = (max / n).max(1);
        // A first round gives every partition its share; a second fills what is left.
        for round in 0..2 {
            for i in 0..n {
                if out.len() >= max {
                    return Ok(out);
                }
                let quota = if round == 0 { share } else { max - out.len() };
                let read = self.read_partition((first + i) % n, quota.min(max - out.len()));
                match read {
                    Ok(records) => out.extend(records),
                    // Returned next time, once the records already read are delivered.
                    Err(_) if !out.is_empty() => return Ok(out),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Up to `quota` records of the `i`th assigned partition, from its position.
    fn read_partition(&mut self, i: usize, quota: usize) -> Result<Vec<ConsumerRecord>> {
        let position = self.position_of(i)?;
        let a = &mut self.assigned[i];
        if position == a.partition.next_offset() {
            return Ok(Vec::new());
        }
        let reader = match a.partition.read(position) {
            Ok(reader) => reader,
            Err(Error::OffsetOutOfRange { .. }) => {
                // Retention deleted the records at the position: start again per the policy.
                let reset = reset_position(
                    &a.topic,
                    a.number,
                    &a.partition,
                    self.config.auto_offset_reset,
                )?;
                a.position = Some(reset);
                a.partition.read(reset)?
            }
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        for record in reader {
            let record = match record {
                Ok(record) => record,
                Err(e) if records.is_empty() => return Err(e),
                Err(_) => break,
            };
            a.position = Some(record.offset() + 1);
            records.push(ConsumerRecord {
                topic: Arc::clone(&a.topic),
                partition: a.number,
                record,
            });
            if records.len() >= quota {
                break;
            }
        }
        Ok(records)
    }

    /// The position of the `i`th assigned partition, set by the reset policy if it has none.
    fn position_of(&mut self, i: usize) -> Result<i64> {
        let a = &mut self.assigned[i];
        if let Some(position) = a.position {
            return Ok(position);
        }
        let position = reset_position(
            &a.topic,
            a.number,
            &a.partition,
            self.config.auto_offset_reset,
        )?;
        a.position = Some(position);
        Ok(position)
    }

    fn index(&self, topic: &str, partition: u32) -> Result<usize> {
        self.assigned
            .iter()
            .position(|a| &*a.topic == topic && a.number == partition)
            .ok_or_else(|| Error::PartitionNotAssigned {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// The offset of the next record `poll` returns from the partition (set by
    /// `auto.offset.reset` if nothing was read or sought yet).
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; [`Error::NoOffsetForPartition`] as for `poll`.
    pub fn position(&mut self, topic: &str, partition: u32) -> Result<i64> {
        let i = self.index(topic, partition)?;
        self.position_of(i)
    }

    /// Makes `offset` the partition's position: the next poll returns records from there. An
    /// offset outside the log is reset by `auto.offset.reset` when read, as in Kafka.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; [`Error::InvalidArgument`] for a negative offset.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::InvalidArgument("a seek offset must not be negative"));
        }
        let i = self.index(topic, partition)?;
        self.assigned[i].position = Some(offset);
        Ok(())
    }

    /// Seeks each partition to its log start offset.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`].
    pub fn seek_to_beginning(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.seek_each(partitions, |p| Ok(p.log_start_offset()))
    }

    /// Seeks each partition to its log end offset: only records appended from now on.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`].
    pub fn seek_to_end(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.seek_each(partitions, |p| Ok(p.next_offset()))
    }

    /// Seeks each partition to its first record with a timestamp at or after `timestamp`
    /// (Kafka's `offsetsForTimes`), or to its end when there is none.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`]; read errors of the lookup.
    pub fn seek_to_timestamp(&mut self, partitions: &[(&str, u32)], timestamp: i64) -> Result<()> {
        self.seek_each(partitions, |p| {
            Ok(p.offset_for_timestamp(timestamp)?
                .map_or(p.next_offset(), |t| t.offset))
        })
    }

    fn seek_each(
        &mut self,
        partitions: &[(&str, u32)],
        to: impl Fn(&Partition) -> Result<i64>,
    ) -> Result<()> {
        let indexes = partitions
            .iter()
            .map(|&(t, p)| self.index(t, p))
            .collect::<Result<Vec<_>>>()?;
        for i in indexes {
            let offset = to(&self.assigned[i].partition)?;
            self.assigned[i].position = Some(offset);
        }
        Ok(())
    }

    /// The consumed positions of every partition that has one.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.assigned
            .iter()
            .filter_map(|a| a.position.map(|p| ((a.topic.to_string(), a.number), p)))
            .collect()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for a in &self.assigned {
            a.partition.unwatch(&self.signal);
        }
    }
}

/// Where `policy` puts a partition's position.
fn reset_position(
    topic: &str,
    number: u32,
    partition: &Partition,
    policy: OffsetReset,
) -> Result<i64> {
    match policy {
        OffsetReset::Earliest => Ok(partition.log_start_offset()),
        OffsetReset::Latest => Ok(partition.next_offset()),
        OffsetReset::None => Err(Error::NoOffsetForPartition {
            topic: topic.to_owned(),
            partition: number,
        }),
    }
}
