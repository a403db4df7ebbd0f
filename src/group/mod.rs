//! Consumer groups: which member of a group owns which partition, and the offsets a group has
//! committed.
//!
//! * [`assignor`]: Kafka's partition assignors (`range`, `roundrobin`, `cooperative-sticky`),
//!   pure functions from members, subscriptions and partition counts to a target assignment.
//! * [`offsets`]: committed offsets, one Kafka-style checkpoint file per group in the store
//!   directory, replaced atomically and durably on every commit.
//! * [`coordinator`]: the in-process group coordinator. Membership lives in memory only (as
//!   Kafka's members rejoin after a broker restart); committed offsets are durable.
//!
//! The invariant everything here serves: within a group, a partition has at most one owner at
//! any time, rebalances included. A partition the target assignment moves stays with its old
//! owner until that owner releases it, leaves or is removed for not polling within
//! `max.poll.interval.ms`; only then can the new owner take it.

pub(crate) mod assignor;
pub(crate) mod coordinator;
pub(crate) mod offsets;
pub(crate) mod state;

#[cfg(test)]
mod tests;

pub use assignor::Assignor;
pub(crate) use coordinator::Coordinator;
#[cfg(test)]
use coordinator::MemberSync;

/// A partition of a topic: `(topic, partition)`. Ordered by topic, then partition, which is the
/// order Kafka's assignors lay partitions out in.
pub(crate) type TopicPartition = (String, u32);

/// A live member of a consumer group, as [`Store::describe_group`](crate::Store::describe_group)
/// lists it (Kafka's `MemberDescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The member id (`group.instance.id`, or generated).
    pub member_id: String,
    /// The consumer's `client.id` (empty if not set).
    pub client_id: String,
    /// The member's process id.
    pub pid: u32,
    /// The member's host name.
    pub host: String,
    /// The partitions it owns now.
    pub partitions: Vec<(String, u32)>,
}
