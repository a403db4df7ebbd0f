//! Named idempotent producers of a store (Kafka's idempotent producer, with the store in the
//! role of the broker that hands out producer ids and epochs).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::partition::{AppendInfo, ProducerStamp, increment_sequence};
use crate::record::{Compression, Record};

use super::Inner;

/// A producer handle's id and epoch: named, rather than an `(i64, i16)` tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdEpoch {
    /// Kafka's producer id, kept by the name.
    pub(crate) id: i64,
    /// The epoch, raised each time the name is opened again.
    pub(crate) epoch: i16,
}

/// A name's current producer id and epoch, shared by the store and every handle for the name,
/// so a handle notices at once when a newer one fences it.
#[derive(Debug)]
pub(crate) struct ProducerSlot {
    current: Mutex<IdEpoch>,
}

impl ProducerSlot {
    /// A name's slot, at its first handle's id and epoch.
    pub(crate) fn new(current: IdEpoch) -> ProducerSlot {
        ProducerSlot {
            current: Mutex::new(current),
        }
    }

    /// A newer handle took over: older handles are fenced from now on.
    pub(crate) fn set(&self, current: IdEpoch) {
        *self.current.lock() = current;
    }

    /// The id and epoch of the newest handle.
    pub(crate) fn get(&self) -> IdEpoch {
        *self.current.lock()
    }
}

/// An idempotent producer of a [`Store`](super::Store), from
/// [`Store::producer`](super::Store::producer): Kafka's `enable.idempotence` for an embedded log.
///
/// The store gives each producer name an id, persisted in the store directory, and an epoch
/// that rises each time the name is opened again. Appends stamp Kafka's producer id, epoch and
/// per-partition sequence numbers into the batches, so a partition recognizes a retry:
///
/// * when an append fails in a way that may or may not have written (an I/O error), the
///   sequence does not move on, and calling the same append again either writes the batch or,
///   if it was written, returns its original offsets without writing it twice;
/// * opening the name again (after a restart, or from another part of the program) fences this
///   handle: its appends fail with [`Error::ProducerFenced`], and partitions refuse its epoch
///   once the newer handle has written to them.
///
/// `Send + Sync`: share it between threads. Appends of one handle to one partition are
/// serialized (each waits for the one before it), which keeps its sequence numbers in order;
/// other producers append alongside. The handle does not keep the store open: once the store
/// is dropped, appends fail with [`Error::Closed`].
///
/// ```
/// use topiclog::{Error, Store, record::Record};
/// use topiclog::config::TopicConfig;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("orders", TopicConfig::new(2))?;
///
/// let producer = store.producer("checkout")?;
/// let paid = producer.append("orders", 0, &[Record::keyed(b"order-7", b"paid")])?;
/// // Say the acknowledgement was lost and the application retries with the same sequence:
/// let retry = producer.append_with_sequence("orders", 0, 0, &[Record::keyed(b"order-7", b"paid")])?;
/// assert_eq!(retry, paid); // nothing written twice
///
/// // Opening the name again (a restarted instance) fences the old handle.
/// let newer = store.producer("checkout")?;
/// assert_eq!((newer.id(), newer.epoch()), (producer.id(), producer.epoch() + 1));
/// assert!(matches!(
///     producer.append("orders", 0, &[Record::new(b"late")]),
///     Err(Error::ProducerFenced { .. })
/// ));
/// newer.append("orders", 0, &[Record::new(b"shipped")])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Producer {
    store: Weak<Inner>,
    name: String,
    id: i64,
    epoch: i16,
    slot: Arc<ProducerSlot>,
    /// The codec its batches ask for (Kafka's producer `compression.type`).
    compression: Compression,
    /// The next sequence number per topic-partition, each behind a lock held across the append
    /// that uses it.
    sequences: Mutex<HashMap<(String, u32), Arc<NextSequence>>>,
}

/// The next sequence number of one topic-partition; locked for the whole append using it.
type NextSequence = Mutex<i32>;

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Producer>();
};

impl Producer {
    /// A handle for `name` at `current`, fenced once `slot` moves on.
    pub(super) fn new(
        store: Weak<Inner>,
        name: String,
        current: IdEpoch,
        slot: Arc<ProducerSlot>,
    ) -> Producer {
        let IdEpoch { id, epoch } = current;
        Producer {
            store,
            name,
            id,
            epoch,
            slot,
            compression: Compression::None,
            sequences: Mutex::new(HashMap::new()),
        }
    }

    /// This handle with its batches compressed with `codec`: the producer's
    /// `compression.type` in Kafka. A topic whose own `compression.type` is not `producer` (the
    /// default) stores its codec instead, as a broker recompresses.
    ///
    /// ```
    /// use topiclog::{Store, record::{Compression, Record}};
    /// use topiclog::config::TopicConfig;
    ///
    /// # // Builds without the codec's cargo feature skip the example.
    /// # if !topiclog::record::is_supported(Compression::Zstd) { return Ok(()); }
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::new(1))?;
    /// let producer = store.producer("ingest")?.with_compression(Compression::Zstd);
    /// let json = br#"{"event":"page_view","path":"/items/42","user":"u-7"}"#;
    /// producer.append("events", 0, &[Record::new(json), Record::new(json)])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_compression(mut self, codec: Compression) -> Producer {
        self.compression = codec;
        self
    }

    /// The codec this handle's batches ask for.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The producer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The producer id the store gave the name (stamped into every batch).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// This handle's epoch: one more than the last handle's for the same name.
    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The sequence number the next append to `topic`-`partition` will carry.
    pub fn next_sequence(&self, topic: &str, partition: u32) -> i32 {
        *self.sequence(topic, partition).lock()
    }

    /// Appends `records` as one batch to partition `partition` of `topic`, stamped with this
    /// producer's id, epoch and next sequence number there. Returns the batch's offsets (the
    /// original ones for a retry of a batch already written).
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] once a newer handle for the name exists;
    /// [`Error::OutOfOrderSequence`] if the partition expected another sequence (for example
    /// after [`append_with_sequence`](Producer::append_with_sequence) skipped one);
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; [`Error::Closed`] once the store is
    /// gone; and every error of [`Partition::append_batch`](crate::Partition::append_batch).
    /// After an error the sequence stays where it was, so the same call is a safe retry.
    pub fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        self.append_at(topic, partition, None, records)
    }

    /// Appends one record where the topic's [`Partitioner`](crate::partitioner::Partitioner)
    /// routes it, as [`Topic::append`](crate::Topic::append) does (a keyed record by murmur2 of
    /// its key). Returns `(partition, offset)`. Retrying a keyed record is safe as with
    /// [`append`](Producer::append); a keyless record may be routed elsewhere on the retry (the
    /// sticky partitioner moves on), so retry those with `append` to the partition first
    /// chosen.
    ///
    /// # Errors
    /// As [`append`](Producer::append).
    pub fn send(&self, topic: &str, record: Record<'_>) -> Result<(u32, i64)> {
        let store = self.store.upgrade().ok_or(Error::Closed)?;
        let topic_handle = store.topic(topic)?;
        let partition = topic_handle.route(&record)?;
        drop(store);
        let info = self.append_at(topic, partition, None, std::slice::from_ref(&record))?;
        topic_handle.on_append(partition, &record);
        Ok((partition, info.base_offset))
    }

    /// Appends with an explicit first sequence number instead of the tracked one: a retry of a
    /// batch appended earlier (its original offsets come back and nothing is written), or a
    /// test of the partition's sequence checks. A batch it writes moves the tracked sequence to
    /// the one after it.
    ///
    /// # Errors
    /// As [`append`](Producer::append).
    pub fn append_with_sequence(
        &self,
        topic: &str,
        partition: u32,
        base_sequence: i32,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        self.append_at(topic, partition, Some(base_sequence), records)
    }

    /// The next-sequence cell of a topic-partition (0 for one not appended to yet).
    fn sequence(&self, topic: &str, partition: u32) -> Arc<NextSequence> {
        let mut sequences = self.sequences.lock();
        Arc::clone(
            sequences
                .entry((topic.to_owned(), partition))
                .or_insert_with(|| Arc::new(Mutex::new(0))),
        )
    }

    /// The error for appends through this handle once a newer one exists.
    fn fenced(&self) -> Error {
        Error::ProducerFenced {
            producer: self.name.clone(),
            producer_id: self.id,
            epoch: self.epoch,
        }
    }

    /// Appends with `sequence`, or the tracked next one, moving the tracked one past the batch
    /// only when the append succeeded (and, for an explicit sequence, wrote).
    fn append_at(
        &self,
        topic: &str,
        partition: u32,
        sequence: Option<i32>,
        records: &[Record<'_>],
    ) -> Result<AppendInfo> {
        let store = self.store.upgrade().ok_or(Error::Closed)?;
        let log = store.topic(topic)?.partition(partition)?;
        drop(store);
        let slot = self.sequence(topic, partition);
        let mut next = slot.lock();
        // Checked under the lock, so no append of a fenced handle starts after the check.
        let mine = IdEpoch {
            id: self.id,
            epoch: self.epoch,
        };
        if self.slot.get() != mine {
            return Err(self.fenced());
        }
        let base_sequence = sequence.unwrap_or(*next);
        let stamp = ProducerStamp {
            producer_id: self.id,
            epoch: self.epoch,
            base_sequence,
        };
        match log.append_stamped(stamp, records, self.compression) {
            Ok((info, duplicate)) => {
                if sequence.is_none() || !duplicate {
                    let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
                    *next = increment_sequence(base_sequence, count);
                }
                Ok(info)
            }
            Err(Error::ProducerFenced { .. }) => Err(self.fenced()),
            Err(Error::OutOfOrderSequence {
                producer_id,
                expected,
                received,
                ..
            }) => Err(Error::OutOfOrderSequence {
                topic: topic.to_owned(),
                partition,
                producer_id,
                expected,
                received,
            }),
            Err(e) => Err(e),
        }
    }
}
