//! Consumer groups: which member of a group owns which partition, and the offsets a group has
//! committed.
//!
//! * [`assignor`]: Kafka's partition assignors (`range`, `roundrobin`, `cooperative-sticky`),
//!   pure functions from members, subscriptions and partition counts to a target assignment.
//! * [`offsets`]: committed offsets, one Kafka-style checkpoint file per group in the store
//!   directory, replaced atomically and durably on every commit.

pub(crate) mod assignor;
pub(crate) mod offsets;

pub use assignor::Assignor;

/// A partition of a topic: `(topic, partition)`. Ordered by topic, then partition, which is the
/// order Kafka's assignors lay partitions out in.
pub(crate) type TopicPartition = (String, u32);
