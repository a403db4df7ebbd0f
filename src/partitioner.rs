//! Routing records to partitions as Kafka producers do.
//!
//! A topic is split into partitions; a producer decides, record by record, which partition a
//! record goes to. This module reproduces the decision Kafka's Java producer makes when the
//! record names no partition itself, so that a topic written by topiclog is laid out exactly as
//! a Kafka producer would have laid it out, and a consumer that relies on "all records of one
//! key are in one partition" finds them where Kafka would have put them.
//!
//! # Keyed records: murmur2
//!
//! A record with a key goes to
//! `toPositive(murmur2(key)) % partitions` ([`partition_for_key`]), where [`murmur2`] is
//! Kafka's `Utils.murmur2` (a 32-bit `MurmurHash2` variant: seed `0x9747b28c`, multiplier
//! `0x5bd1e995`, shift 24, little-endian 4-byte chunks) and `toPositive(x)` is `x & 0x7fffffff`.
//! `toPositive` is *not* `abs`: the two differ for every negative hash (and `abs(i32::MIN)`
//! overflows), so using `abs` would route keys to other partitions than Kafka does. The result
//! depends only on the key bytes and the partition count: the same key always lands in the same
//! partition as long as the partition count does not change (adding partitions moves keys, as it
//! does in Kafka).
//!
//! An **empty key is a key**: it is hashed like any other (to 275646681), as Kafka's default
//! partitioner does. Only a missing key (`None`, Kafka's `null`) counts as "no key".
//!
//! # Keyless records: the uniform sticky partitioner (KIP-794)
//!
//! Records without a key are spread with Kafka's built-in *uniform sticky* partitioner
//! (KIP-794, the default since Kafka 3.3): all keyless records of a topic go to one partition
//! until at least `batch.size` bytes ([`DEFAULT_BATCH_SIZE`], 16384) have been appended to it,
//! then the partitioner switches to another partition, chosen uniformly at random among the
//! others, and sticks to that one. Batches therefore fill up instead of every partition getting
//! one small batch per record, and over time every partition receives about the same number of
//! bytes. The choice is random, as in Kafka: two runs do not produce the same layout.
//!
//! Bytes are counted through [`Partitioner::on_append`], which the caller invokes after each
//! record routed by the partitioner has been appended. Differences from Kafka's
//! `BuiltInPartitioner`, all following from an embedded log having no network, no brokers and
//! no send queue:
//!
//! * Kafka switches at `batch.size` bytes only if the current batch is ready to send, and at
//!   `2 × batch.size` otherwise; here there is no sending, so the switch happens at `batch.size`.
//! * Kafka's adaptive partitioning (`partitioner.adaptive.partitioning.enable`) weights the next
//!   partition by inverse send-queue length, and `partitioner.availability.timeout.ms` skips slow
//!   brokers. Every partition here is local and equally available, which is Kafka's case of
//!   "all queues equal": the next partition is uniform.
//! * Kafka's draw may land on the partition it just left; here the next partition is always a
//!   different one when there is more than one (the rule of the older KIP-480 sticky
//!   partitioner), so a switch really moves the load.
//! * Kafka counts only the bytes of keyless records towards the sticky batch; here every append
//!   reported for the sticky partition counts, including keyed records that happen to land on
//!   it through the same partitioner, because [`Partitioner::on_append`] does not say whether a
//!   record had a key. Both fill the same batch, so the switch just comes a little earlier.
//!
//! # Custom routing
//!
//! An application that wants other routing implements [`Partitioner`], as a Kafka application
//! implements `org.apache.kafka.clients.producer.Partitioner`, and hands it to the caller
//! (typically as `Arc<dyn Partitioner>`). The caller checks that the returned partition is
//! below the partition count and reports an error otherwise.
//!
//! # Partition count 0
//!
//! A topic always has at least one partition, so callers never pass `partitions == 0`. Should it
//! happen anyway, every function here returns partition 0 instead of dividing by zero; the
//! caller's range check then rejects it.
//!
//! ```
//! use topiclog::partitioner::{DefaultPartitioner, Partitioner, partition_for_key};
//!
//! let partitioner = DefaultPartitioner::default();
//!
//! // Keyed: the same partition a Kafka producer picks.
//! assert_eq!(partitioner.partition("orders", Some(b"foobar"), Some(b"v"), 12), 6);
//! assert_eq!(partition_for_key(b"foobar", 12), 6);
//!
//! // Keyless: sticky until batch.size bytes were appended to the chosen partition.
//! let first = partitioner.partition("clicks", None, Some(b"v"), 4);
//! partitioner.on_append("clicks", first, 100);
//! assert_eq!(partitioner.partition("clicks", None, Some(b"v"), 4), first);
//! ```

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Default of Kafka's producer setting `batch.size`: 16384 bytes.
///
/// [`DefaultPartitioner`] sticks to one partition per topic for keyless records until this many
/// bytes have been appended to it.
pub const DEFAULT_BATCH_SIZE: usize = 16_384;

/// Seed of Kafka's `Utils.murmur2`.
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// Multiplier of Kafka's `Utils.murmur2`.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// Shift of Kafka's `Utils.murmur2`.
const MURMUR2_R: u32 = 24;

/// Kafka's `Utils.murmur2`: the 32-bit `MurmurHash2` variant the Java producer hashes keys with.
///
/// Seed `0x9747b28c`, multiplier `0x5bd1e995`, shift 24. The input is read as little-endian
/// 4-byte chunks, the 1 to 3 trailing bytes are mixed in as unsigned bytes, and the result is
/// finished with `h ^= h >>> 13; h *= m; h ^= h >>> 15`. All arithmetic wraps modulo 2³², and
/// the result is returned as Java's signed `int`, so it is negative for about half of all keys;
/// see [`partition_for_key`] for turning it into a partition.
///
/// The length mixed into the seed is the input length modulo 2³² (Java arrays never exceed
/// 2³¹ − 1 bytes, so this only matters for inputs Kafka cannot hash at all).
///
/// # Examples
///
/// Vectors from Kafka's `UtilsTest.testMurmur2`:
///
/// ```
/// use topiclog::partitioner::murmur2;
///
/// assert_eq!(murmur2(b"21"), -973_932_308);
/// assert_eq!(murmur2(b"foobar"), -790_332_482);
/// assert_eq!(murmur2(b"abc"), 479_470_107);
/// assert_eq!(murmur2(b""), 275_646_681); // an empty key is hashed too
/// ```
#[must_use]
pub fn murmur2(data: &[u8]) -> i32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "murmur2 mixes the length modulo 2^32, as Java's int arithmetic does"
    )]
    let len = data.len() as u32;
    let mut h = MURMUR2_SEED ^ len;

    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        if let &[b0, b1, b2, b3] = chunk {
            let mut k = u32::from_le_bytes([b0, b1, b2, b3]);
            k = k.wrapping_mul(MURMUR2_M);
            k ^= k >> MURMUR2_R;
            k = k.wrapping_mul(MURMUR2_M);
            h = h.wrapping_mul(MURMUR2_M);
            h ^= k;
        }
    }

    // Java's switch falls through: 3 mixes bytes 2, 1, 0; 2 mixes 1, 0; 1 mixes 0.
    let tail = chunks.remainder();
    if let Some(&b2) = tail.get(2) {
        h ^= u32::from(b2) << 16;
    }
    if let Some(&b1) = tail.get(1) {
        h ^= u32::from(b1) << 8;
    }
    if let Some(&b0) = tail.first() {
        h ^= u32::from(b0);
        h = h.wrapping_mul(MURMUR2_M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h.cast_signed()
}

/// Kafka's `Utils.toPositive`: clears the sign bit (`x & 0x7fffffff`). Not `abs`: for a negative
/// `x` the two differ, and `abs(i32::MIN)` overflows while this gives 0.
const fn to_positive(hash: i32) -> u32 {
    hash.cast_unsigned() & 0x7fff_ffff
}

/// The partition Kafka's producer picks for a record with this key:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// This is what Kafka's default partitioning does for a record with a non-null key and no
/// explicit partition (with `partitioner.ignore.keys=false`, the default). The sign bit is
/// cleared (Kafka's `toPositive`), not `abs` taken: `abs` would send about half of all keys to
/// other partitions than Kafka does.
///
/// An empty key is a key like any other and is hashed; Kafka's "no key" is a `null` key, which
/// [`DefaultPartitioner`] receives as `None` and routes with the sticky rule instead.
///
/// The result is below `partitions` and depends only on `key` and `partitions`. If
/// `partitions` is 0 (no topic has zero partitions), the result is 0 instead of a division by
/// zero.
///
/// # Examples
///
/// ```
/// use topiclog::partitioner::partition_for_key;
///
/// // Kafka's test vectors, with 12 partitions.
/// assert_eq!(partition_for_key(b"21", 12), 0);
/// assert_eq!(partition_for_key(b"foobar", 12), 6);
/// assert_eq!(partition_for_key(b"a-little-bit-long-string", 12), 8);
/// assert_eq!(partition_for_key(b"k", 3), 2);
/// ```
#[must_use]
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key))
        .checked_rem(partitions)
        .unwrap_or(0)
}

/// Decides which partition of a topic a record goes to; the seam through which an application
/// plugs in its own routing, like Kafka's `org.apache.kafka.clients.producer.Partitioner`.
///
/// The crate's own implementation is [`DefaultPartitioner`] (murmur2 for keys, uniform sticky
/// for keyless records). Implementations are shared between threads, usually as
/// `Arc<dyn Partitioner>`, so they must be `Send + Sync` and keep any state behind interior
/// mutability.
///
/// # Contract
///
/// * [`partition`](Partitioner::partition) must return a partition **below `partitions`**.
///   Callers check the result and fail the append with an error otherwise; they do not clamp
///   or wrap it.
/// * `partitions` is always at least 1.
/// * [`on_append`](Partitioner::on_append) is called after each record this partitioner routed
///   has been appended, with the partition it went to.
/// * Neither method should panic or block for long: both run on the append path.
///
/// # Examples
///
/// A partitioner that sends every record of a "priority" topic to partition 0 and everything
/// else where Kafka would:
///
/// ```
/// use std::sync::Arc;
/// use topiclog::partitioner::{DefaultPartitioner, Partitioner};
///
/// #[derive(Debug, Default)]
/// struct PriorityFirst {
///     fallback: DefaultPartitioner,
/// }
///
/// impl Partitioner for PriorityFirst {
///     fn partition(
///         &self,
///         topic: &str,
///         key: Option<&[u8]>,
///         value: Option<&[u8]>,
///         partitions: u32,
///     ) -> u32 {
///         if topic == "priority" {
///             0
///         } else {
///             self.fallback.partition(topic, key, value, partitions)
///         }
///     }
///
///     fn on_append(&self, topic: &str, partition: u32, bytes: usize) {
///         self.fallback.on_append(topic, partition, bytes);
///     }
/// }
///
/// let partitioner: Arc<dyn Partitioner> = Arc::new(PriorityFirst::default());
/// assert_eq!(partitioner.partition("priority", Some(b"foobar"), None, 12), 0);
/// assert_eq!(partitioner.partition("orders", Some(b"foobar"), None, 12), 6);
/// ```
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// The partition, below `partitions`, that a record of `topic` with this key and value goes
    /// to.
    ///
    /// `key` and `value` are `None` when the record has none (Kafka's `null`); `Some(&[])` is an
    /// empty key or value, which is not the same thing. `partitions` is the topic's current
    /// partition count, at least 1; it may differ from one call to the next if the topic is
    /// resized.
    ///
    /// A result of `partitions` or more is a bug in the implementation: the caller rejects the
    /// record with an error instead of appending it.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partitions: u32,
    ) -> u32;

    /// Called after a record routed by this partitioner was appended to `partition` of
    /// `topic`, with the record's size in `bytes`.
    ///
    /// A sticky partitioner counts bytes here to know when its batch is full; a caller that
    /// appends several records at once may report them one by one or as one sum. The default
    /// does nothing.
    fn on_append(&self, topic: &str, partition: u32, bytes: usize) {
        let _ = (topic, partition, bytes);
    }
}

/// Kafka's default producer partitioning: murmur2 for keyed records, the uniform sticky
/// partitioner (KIP-794) for keyless ones.
///
/// * A record with a key (including an empty one) goes to [`partition_for_key`], exactly as in
///   Kafka.
/// * Keyless records of a topic all go to one partition, chosen at random, until at least
///   [`batch_size`](DefaultPartitioner::batch_size) bytes (Kafka's `batch.size`, default
///   [`DEFAULT_BATCH_SIZE`]) have been reported for it through
///   [`on_append`](Partitioner::on_append). The next keyless record then goes to another
///   partition, chosen uniformly at random among the others (never the same one again when the
///   topic has more than one partition), and the count starts over. The module documentation
///   lists how this differs from Kafka's `BuiltInPartitioner`.
///
/// Each topic has its own sticky partition and byte count, kept behind one mutex, keyed by
/// topic name: one small entry per topic that ever received a keyless record. If a topic's
/// partition count drops to or below its sticky partition, a new one is picked among the
/// remaining partitions on the next keyless record; if it grows, the sticky partition stays and
/// the new partitions are candidates from the next switch on.
///
/// With one partition every record goes to 0. A `partitions` of 0 (which callers never pass)
/// also gives 0.
///
/// # Examples
///
/// ```
/// use topiclog::partitioner::{DefaultPartitioner, Partitioner};
///
/// let partitioner = DefaultPartitioner::with_batch_size(1_000);
/// let value: &[u8] = b"some event";
///
/// // Keyed records: Kafka's murmur2 routing.
/// assert_eq!(partitioner.partition("events", Some(b"abc"), Some(value), 12), 3);
///
/// // Keyless records stick to one partition until 1,000 bytes went there ...
/// let sticky = partitioner.partition("events", None, Some(value), 4);
/// for _ in 0..9 {
///     assert_eq!(partitioner.partition("events", None, Some(value), 4), sticky);
///     partitioner.on_append("events", sticky, 100);
/// }
/// assert_eq!(partitioner.partition("events", None, Some(value), 4), sticky);
/// partitioner.on_append("events", sticky, 100); // 1,000 bytes: switch
///
/// // ... then move to another partition.
/// assert_ne!(partitioner.partition("events", None, Some(value), 4), sticky);
/// ```
#[derive(Debug)]
pub struct DefaultPartitioner {
    /// Kafka's `batch.size`: bytes appended to the sticky partition before switching.
    batch_size: usize,
    /// Sticky state per topic name.
    topics: Mutex<HashMap<String, Sticky>>,
    /// Source of the random partition choices.
    rng: SplitMix64,
}

/// Where keyless records of one topic currently go.
#[derive(Debug, Clone, Copy)]
struct Sticky {
    /// The sticky partition; below `partitions`.
    partition: u32,
    /// The topic's partition count as last seen by `partition()`; candidates for the next switch.
    partitions: u32,
    /// Bytes reported through `on_append` for `partition` since it was chosen.
    appended_bytes: u64,
}

impl Default for DefaultPartitioner {
    /// A partitioner with Kafka's default `batch.size`, [`DEFAULT_BATCH_SIZE`] (16384 bytes).
    fn default() -> Self {
        Self::with_batch_size(DEFAULT_BATCH_SIZE)
    }
}

impl DefaultPartitioner {
    /// A partitioner that switches keyless records to another partition once `bytes` bytes
    /// (Kafka's `batch.size`) have been appended to the current one.
    ///
    /// `0` switches after every append (Kafka's `batch.size=0`, no batching).
    #[must_use]
    pub fn with_batch_size(bytes: usize) -> Self {
        Self {
            batch_size: bytes,
            topics: Mutex::new(HashMap::new()),
            rng: SplitMix64::from_entropy(),
        }
    }

    /// As [`with_batch_size`](Self::with_batch_size), with a fixed random seed so that tests
    /// replay the same choices.
    #[cfg(test)]
    fn with_seed(bytes: usize, seed: u64) -> Self {
        Self {
            batch_size: bytes,
            topics: Mutex::new(HashMap::new()),
            rng: SplitMix64::new(seed),
        }
    }

    /// Kafka's `batch.size`: the bytes appended to a topic's sticky partition after which keyless
    /// records move to another partition.
    #[must_use]
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The sticky partition for keyless records of `topic`, picking one if the topic has none
    /// yet or its partition count shrank below it. `partitions` >= 1.
    fn sticky_partition(&self, topic: &str, partitions: u32) -> u32 {
        let mut topics = self.topics.lock();
        if let Some(sticky) = topics.get_mut(topic) {
            sticky.partitions = partitions;
            if sticky.partition >= partitions {
                // The topic shrank below the sticky choice: start over among the remaining ones.
                sticky.partition = self.rng.below(partitions);
                sticky.appended_bytes = 0;
            }
            return sticky.partition;
        }
        let partition = self.rng.below(partitions);
        topics.insert(
            topic.to_owned(),
            Sticky {
                partition,
                partitions,
                appended_bytes: 0,
            },
        );
        partition
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partitions: u32,
    ) -> u32 {
        if partitions == 0 {
            return 0;
        }
        match key {
            Some(key) => partition_for_key(key, partitions),
            None => self.sticky_partition(topic, partitions),
        }
    }

    /// Counts `bytes` towards the topic's sticky partition if `partition` is that partition,
    /// and switches to another partition once [`batch_size`](DefaultPartitioner::batch_size)
    /// bytes have been counted. Appends to other partitions (keyed records, or records routed
    /// before the last switch) and topics with no sticky partition are ignored.
    fn on_append(&self, topic: &str, partition: u32, bytes: usize) {
        let mut topics = self.topics.lock();
        let Some(sticky) = topics.get_mut(topic) else {
            return;
        };
        if sticky.partition != partition {
            return;
        }
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        sticky.appended_bytes = sticky.appended_bytes.saturating_add(bytes);
        let batch_size = u64::try_from(self.batch_size).unwrap_or(u64::MAX);
        if sticky.appended_bytes >= batch_size {
            sticky.partition = self.rng.other_than(sticky.partition, sticky.partitions);
            sticky.appended_bytes = 0;
        }
    }
}

/// Golden-ratio increment of `SplitMix64`.
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Counts generators created in this process, so two created in the same clock tick differ.
static GENERATORS: AtomicU64 = AtomicU64::new(0);

/// `SplitMix64` (Steele, Lea and Flood, 2014) over an atomic counter: a small, lock-free,
/// non-cryptographic generator, good enough to spread partitions uniformly.
#[derive(Debug)]
struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    const fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the system clock, a process-wide counter and the standard
    /// library's per-process random hash keys.
    fn from_entropy() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let count = GENERATORS.fetch_add(1, Ordering::Relaxed);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(count);
        Self::new(mix64(hasher.finish() ^ count.wrapping_mul(SPLITMIX_GAMMA)))
    }

    /// The next 64 random bits.
    fn next_u64(&self) -> u64 {
        let state = self
            .state
            .fetch_add(SPLITMIX_GAMMA, Ordering::Relaxed)
            .wrapping_add(SPLITMIX_GAMMA);
        mix64(state)
    }

    /// A uniformly random number below `bound`, or 0 if `bound` is 0 (Lemire's multiply-shift;
    /// the bias, at most `bound / 2^64`, is far below anything observable).
    fn below(&self, bound: u32) -> u32 {
        let wide = (u128::from(self.next_u64()) * u128::from(bound)) >> 64;
        u32::try_from(wide).unwrap_or(0)
    }

    /// A partition below `partitions` other than `current`, uniformly at random; 0 if there is
    /// at most one partition.
    fn other_than(&self, current: u32, partitions: u32) -> u32 {
        if partitions <= 1 {
            return 0;
        }
        // Draw among the partitions - 1 others, then skip over `current`.
        let drawn = self.below(partitions - 1);
        if drawn >= current { drawn + 1 } else { drawn }
    }
}

/// The `SplitMix64` output function (a variant of `MurmurHash3`'s 64-bit finalizer).
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    /// `UtilsTest.testMurmur2` plus the partition of 12 from the format reference, §10.1.
    const KAFKA_VECTORS: [(&str, i32, u32, u32); 6] = [
        ("21", -973_932_308, 0xC5F2_F8EC, 0),
        ("foobar", -790_332_482, 0xD0E4_7BBE, 6),
        ("a-little-bit-long-string", -985_981_536, 0xC53B_1DA0, 8),
        (
            "a-little-bit-longer-string",
            -1_486_304_829,
            0xA768_C9C3,
            11,
        ),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
            0xFC7D_49CD,
            5,
        ),
        ("abc", 479_470_107, 0x1C94_221B, 3),
    ];

    /// A literal port of Kafka's Java `Utils.murmur2` (signed ints, wrapping, `>>>`), written
    /// independently of `murmur2` to cross-check it.
    fn java_murmur2(data: &[u8]) -> i32 {
        fn ushr(x: i32, n: u32) -> i32 {
            (x.cast_unsigned() >> n).cast_signed()
        }
        let length = i32::try_from(data.len()).expect("test input fits an int");
        let seed: i32 = 0x9747_b28c_u32.cast_signed();
        let m: i32 = 0x5bd1_e995;
        let r = 24;
        let mut h = seed ^ length;
        let length4 = data.len() / 4;
        for i in 0..length4 {
            let i4 = i * 4;
            let mut k = i32::from(data[i4])
                + (i32::from(data[i4 + 1]) << 8)
                + (i32::from(data[i4 + 2]) << 16)
                + (i32::from(data[i4 + 3]) << 24);
            k = k.wrapping_mul(m);
            k ^= ushr(k, r);
            k = k.wrapping_mul(m);
            h = h.wrapping_mul(m);
            h ^= k;
        }
        let base = data.len() & !3;
        let rem = data.len() % 4;
        if rem == 3 {
            h ^= i32::from(data[base + 2]) << 16;
        }
        if rem >= 2 {
            h ^= i32::from(data[base + 1]) << 8;
        }
        if rem >= 1 {
            h ^= i32::from(data[base]);
            h = h.wrapping_mul(m);
        }
        h ^= ushr(h, 13);
        h = h.wrapping_mul(m);
        h ^= ushr(h, 15);
        h
    }

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        for (key, hash, hex, _) in KAFKA_VECTORS {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(
                murmur2(key.as_bytes()).cast_unsigned(),
                hex,
                "hex of {key:?}"
            );
        }
    }

    #[test]
    fn partition_for_key_matches_kafka_with_twelve_partitions() {
        for (key, _, _, partition) in KAFKA_VECTORS {
            assert_eq!(partition_for_key(key.as_bytes(), 12), partition, "{key:?}");
        }
    }

    #[test]
    fn empty_key_is_hashed_like_any_other_key() {
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(partition_for_key(b"", 12), 275_646_681 % 12);
        let partitioner = DefaultPartitioner::default();
        for _ in 0..10 {
            assert_eq!(
                partitioner.partition("t", Some(b""), None, 12),
                275_646_681 % 12
            );
        }
    }

    #[test]
    fn single_byte_key_k_goes_to_partition_two_of_three() {
        assert_eq!(murmur2(b"k"), -1_567_496_736);
        assert_eq!(partition_for_key(b"k", 3), 2);
    }

    #[test]
    fn every_tail_length_matches_the_java_port() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..data.len() {
            assert_eq!(
                murmur2(&data[..len]),
                java_murmur2(&data[..len]),
                "len {len}"
            );
        }
        // High bytes must be mixed in unsigned, as Java's `& 0xff` does.
        for tail in [&[0xff][..], &[0x80, 0xff], &[0xfe, 0x80, 0xff]] {
            assert_eq!(murmur2(tail), java_murmur2(tail), "{tail:?}");
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit_instead_of_taking_abs() {
        let hash = murmur2(b"21");
        assert!(hash < 0);
        assert_eq!(to_positive(hash), 1_173_551_340);
        assert_ne!(to_positive(hash), hash.unsigned_abs());
        // With abs, Kafka's `21` would land on partition 8 of 12 instead of 0.
        assert_eq!(hash.unsigned_abs() % 12, 8);
        assert_eq!(partition_for_key(b"21", 12), 0);

        // i32::MIN has no absolute value in i32; toPositive gives 0.
        assert_eq!(i32::MIN.checked_abs(), None);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(i32::MAX), 0x7fff_ffff);
        assert_eq!(to_positive(0), 0);
    }

    #[test]
    fn zero_partitions_give_zero_instead_of_dividing_by_zero() {
        assert_eq!(partition_for_key(b"foobar", 0), 0);
        let partitioner = DefaultPartitioner::default();
        assert_eq!(partitioner.partition("t", Some(b"foobar"), None, 0), 0);
        assert_eq!(partitioner.partition("t", None, None, 0), 0);
        partitioner.on_append("t", 0, 1 << 20);
        assert_eq!(partitioner.partition("t", None, None, 0), 0);
    }

    #[test]
    fn default_batch_size_is_kafkas() {
        assert_eq!(DEFAULT_BATCH_SIZE, 16_384);
        assert_eq!(
            DefaultPartitioner::default().batch_size(),
            DEFAULT_BATCH_SIZE
        );
        assert_eq!(DefaultPartitioner::with_batch_size(7).batch_size(), 7);
    }

    #[test]
    fn keyed_records_ignore_the_sticky_state() {
        let partitioner = DefaultPartitioner::with_seed(10, 1);
        for _ in 0..50 {
            let keyless = partitioner.partition("t", None, None, 12);
            partitioner.on_append("t", keyless, 10);
            for (key, _, _, partition) in KAFKA_VECTORS {
                assert_eq!(
                    partitioner.partition("t", Some(key.as_bytes()), Some(b"v"), 12),
                    partition
                );
            }
        }
    }

    #[test]
    fn keyless_records_stick_until_batch_size_bytes_then_move() {
        for seed in 0..50 {
            let partitioner = DefaultPartitioner::with_seed(DEFAULT_BATCH_SIZE, seed);
            let first = partitioner.partition("t", None, Some(b"v"), 4);
            assert!(first < 4);
            // 16383 bytes in uneven steps: still sticky.
            let mut appended = 0;
            for step in [1, 1_000, 5_000, 10_000, 382] {
                assert_eq!(partitioner.partition("t", None, Some(b"v"), 4), first);
                partitioner.on_append("t", first, step);
                appended += step;
            }
            assert_eq!(appended, DEFAULT_BATCH_SIZE - 1);
            assert_eq!(partitioner.partition("t", None, Some(b"v"), 4), first);

            // The byte that reaches batch.size triggers the switch.
            partitioner.on_append("t", first, 1);
            let second = partitioner.partition("t", None, Some(b"v"), 4);
            assert_ne!(second, first, "seed {seed}");
            assert!(second < 4);

            // The count starts over on the new partition.
            partitioner.on_append("t", second, DEFAULT_BATCH_SIZE - 1);
            assert_eq!(partitioner.partition("t", None, None, 4), second);
        }
    }

    #[test]
    fn appends_to_other_partitions_do_not_count() {
        let partitioner = DefaultPartitioner::with_seed(100, 7);
        let sticky = partitioner.partition("t", None, None, 3);
        for other in (0..3).filter(|&p| p != sticky) {
            partitioner.on_append("t", other, 1_000);
        }
        partitioner.on_append("other-topic", sticky, 1_000);
        assert_eq!(partitioner.partition("t", None, None, 3), sticky);
    }

    #[test]
    fn on_append_for_an_unknown_topic_is_ignored() {
        let partitioner = DefaultPartitioner::with_seed(1, 3);
        partitioner.on_append("never-routed", 0, 1_000);
        assert!(partitioner.topics.lock().is_empty());
    }

    #[test]
    fn batch_size_zero_switches_after_every_append() {
        let partitioner = DefaultPartitioner::with_seed(0, 11);
        let mut previous = partitioner.partition("t", None, None, 5);
        for _ in 0..100 {
            partitioner.on_append("t", previous, 0);
            let next = partitioner.partition("t", None, None, 5);
            assert_ne!(next, previous);
            previous = next;
        }
    }

    #[test]
    fn many_switches_visit_every_partition_and_never_repeat() {
        for seed in 0..20 {
            let partitioner = DefaultPartitioner::with_seed(100, seed);
            let mut counts = [0_u32; 4];
            let mut previous = None;
            for _ in 0..400 {
                let partition = partitioner.partition("t", None, None, 4);
                assert_ne!(Some(partition), previous, "seed {seed}: switched to itself");
                counts[partition as usize] += 1;
                partitioner.on_append("t", partition, 100);
                previous = Some(partition);
            }
            // Uniform among the others: each partition gets about 100 of 400 switches.
            for (partition, count) in counts.iter().enumerate() {
                assert!(
                    (50..=150).contains(count),
                    "seed {seed}: partition {partition} chosen {count} times of 400: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn entropy_seeded_partitioners_visit_every_partition() {
        let partitioner = DefaultPartitioner::with_batch_size(1);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let partition = partitioner.partition("t", None, None, 4);
            seen.insert(partition);
            partitioner.on_append("t", partition, 1);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[test]
    fn one_partition_always_gives_zero() {
        let partitioner = DefaultPartitioner::with_seed(10, 5);
        for _ in 0..100 {
            assert_eq!(partitioner.partition("t", None, None, 1), 0);
            partitioner.on_append("t", 0, 25);
            assert_eq!(partitioner.partition("t", Some(b"foobar"), None, 1), 0);
        }
    }

    #[test]
    fn topics_stick_independently() {
        let partitioner = DefaultPartitioner::with_seed(100, 9);
        let a = partitioner.partition("a", None, None, 8);
        let b = partitioner.partition("b", None, None, 8);
        // Filling topic a's batch switches a, and leaves b where it was.
        partitioner.on_append("a", a, 100);
        let a2 = partitioner.partition("a", None, None, 8);
        assert_ne!(a2, a);
        assert_eq!(partitioner.partition("b", None, None, 8), b);
        // Half of b's batch, and a's new batch is untouched.
        partitioner.on_append("b", b, 50);
        partitioner.on_append("a", a2, 99);
        assert_eq!(partitioner.partition("a", None, None, 8), a2);
        assert_eq!(partitioner.partition("b", None, None, 8), b);
        // Topics with different partition counts coexist.
        for _ in 0..20 {
            let c = partitioner.partition("c", None, None, 2);
            assert!(c < 2);
            partitioner.on_append("c", c, 100);
        }
        assert_eq!(partitioner.partition("b", None, None, 8), b);
    }

    #[test]
    fn shrinking_below_the_sticky_partition_repicks() {
        for seed in 0..50 {
            let partitioner = DefaultPartitioner::with_seed(1_000, seed);
            // Find a state whose sticky partition is at least 2, then shrink to 2 partitions.
            let mut sticky = partitioner.partition("t", None, None, 8);
            while sticky < 2 {
                partitioner.on_append("t", sticky, 1_000);
                sticky = partitioner.partition("t", None, None, 8);
            }
            partitioner.on_append("t", sticky, 999);
            let repicked = partitioner.partition("t", None, None, 2);
            assert!(repicked < 2, "seed {seed}: {repicked}");
            // The new choice is sticky with a fresh count: 999 bytes do not switch it.
            partitioner.on_append("t", repicked, 999);
            assert_eq!(partitioner.partition("t", None, None, 2), repicked);
            // A stale append to the old, removed partition is ignored.
            partitioner.on_append("t", sticky, 1_000);
            assert_eq!(partitioner.partition("t", None, None, 2), repicked);
            // The next switch stays within the new count.
            partitioner.on_append("t", repicked, 1);
            let next = partitioner.partition("t", None, None, 2);
            assert_eq!(next, 1 - repicked);
        }
    }

    #[test]
    fn growing_keeps_the_sticky_partition_and_later_uses_new_ones() {
        let partitioner = DefaultPartitioner::with_seed(10, 13);
        let sticky = partitioner.partition("t", None, None, 2);
        assert_eq!(partitioner.partition("t", None, None, 6), sticky);
        let mut seen = HashSet::new();
        for _ in 0..300 {
            let partition = partitioner.partition("t", None, None, 6);
            seen.insert(partition);
            partitioner.on_append("t", partition, 10);
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn shared_between_threads() {
        let partitioner = Arc::new(DefaultPartitioner::with_batch_size(64));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let partitioner = Arc::clone(&partitioner);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        let partition = partitioner.partition("t", None, None, 3);
                        assert!(partition < 3);
                        partitioner.on_append("t", partition, 16);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread panicked");
        }
    }

    #[test]
    fn rng_below_and_other_than_stay_in_range() {
        let rng = SplitMix64::new(42);
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
        assert_eq!(rng.other_than(0, 0), 0);
        assert_eq!(rng.other_than(0, 1), 0);
        for _ in 0..1_000 {
            assert_eq!(rng.other_than(1, 2), 0);
            assert_eq!(rng.other_than(0, 2), 1);
            assert!(rng.below(u32::MAX) < u32::MAX);
            let other = rng.other_than(3, 7);
            assert!(other < 7 && other != 3);
        }
    }

    /// Routes by the first byte of the value; used to check the trait is usable as an object.
    #[derive(Debug)]
    struct ByFirstValueByte;

    impl Partitioner for ByFirstValueByte {
        fn partition(
            &self,
            _topic: &str,
            _key: Option<&[u8]>,
            value: Option<&[u8]>,
            partitions: u32,
        ) -> u32 {
            let byte = value.and_then(<[u8]>::first).copied().unwrap_or(0);
            u32::from(byte) % partitions
        }
    }

    #[test]
    fn custom_partitioner_is_object_safe() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Partitioner>();
        assert_send_sync::<DefaultPartitioner>();

        let boxed: Box<dyn Partitioner> = Box::new(ByFirstValueByte);
        assert_eq!(boxed.partition("t", None, Some(&[7]), 5), 2);
        boxed.on_append("t", 2, 10); // the default no-op

        let shared: Vec<Arc<dyn Partitioner>> = vec![
            Arc::new(ByFirstValueByte),
            Arc::new(DefaultPartitioner::default()),
        ];
        for partitioner in &shared {
            let partition = partitioner.partition("t", Some(b"abc"), Some(&[3]), 12);
            assert_eq!(partition, 3);
            partitioner.on_append("t", partition, 1);
        }
        assert!(format!("{shared:?}").contains("ByFirstValueByte"));
    }

    proptest! {
        #[test]
        fn partition_for_key_is_in_range_and_stable(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            partitions in 1..=u32::MAX,
        ) {
            let partition = partition_for_key(&key, partitions);
            prop_assert!(partition < partitions);
            prop_assert_eq!(partition, partition_for_key(&key, partitions));
            prop_assert_eq!(partition, to_positive(murmur2(&key)) % partitions);
            let partitioner = DefaultPartitioner::default();
            prop_assert_eq!(partitioner.partition("t", Some(&key), None, partitions), partition);
        }

        #[test]
        fn murmur2_matches_the_java_port(key in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(murmur2(&key), java_murmur2(&key));
        }

        #[test]
        fn keyless_partition_is_in_range(
            seed in any::<u64>(),
            steps in proptest::collection::vec((1..20_u32, 0..50_usize), 1..100),
        ) {
            let partitioner = DefaultPartitioner::with_seed(64, seed);
            for (partitions, bytes) in steps {
                let partition = partitioner.partition("t", None, None, partitions);
                prop_assert!(partition < partitions);
                partitioner.on_append("t", partition, bytes);
            }
        }
    }
}
