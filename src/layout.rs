//! The names of files and directories in a store, Kafka's and topiclog's, and the rule for
//! topic names. One owner for each name, below the modules that use them (partitions, stores,
//! topics, the lock), so none of those depends on another for a name.
//!
//! A store directory is a Kafka log directory with a few files of topiclog's beside the
//! partitions:
//!
//! ```text
//! store/
//!   .lock                          LOCK_FILE: held by the one writing process
//!   topiclog-topics                TOPICS_FILE: topics, partition counts, settings
//!   topiclog-producers             PRODUCERS_FILE: producer names, ids and epochs
//!   topiclog-transactions          TRANSACTIONS_FILE: the transaction coordinator's state
//!   topiclog-group-<hex>.offsets   committed offsets of a consumer group (hex of its name)
//!   orders-0/                      a partition: Kafka's <topic>-<partition>
//!     00000000000000000000.log     segments, named by base offset (RecordBatch v2)
//!     00000000000000000000.index   offset index
//!     00000000000000000000.timeindex
//!     00000000000000000000.txnindex  aborted transactions (Kafka's format), if any
//!     00000000000000000042.snapshot  producer state (Kafka's format)
//!     .topiclog_recovery_point     checkpoints Kafka ignores
//! ```
//!
//! ```
//! use topiclog::config::TopicConfig;
//! use topiclog::{layout, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("orders", TopicConfig::new(2))?;
//! assert!(dir.path().join(layout::TOPICS_FILE).is_file());
//! assert!(dir.path().join("orders-1").is_dir());
//! assert!(layout::validate_topic_name("orders/..").is_err()); // names become directories
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name of the registry in a store directory.
pub const TOPICS_FILE: &str = "topiclog-topics";

/// File name of the producer registry in a store directory (producer names, ids and epochs).
pub const PRODUCERS_FILE: &str = "topiclog-producers";

/// File name of the transaction coordinator's state in a store directory (transactional ids,
/// their producer ids and epochs, and each one's transaction under way).
pub const TRANSACTIONS_FILE: &str = "topiclog-transactions";

/// The store's groups lock: every process that changes a consumer group's files holds it for
/// that one step.
pub const GROUPS_LOCK_FILE: &str = "topiclog-groups.lock";

/// Name of the lock file in a store directory.
pub const LOCK_FILE: &str = ".lock";

/// The followers file of a store: every process reading the store beside its writer holds a
/// shared lock on it, so the writer knows someone outside follows (see the README, "Between
/// processes").
pub const FOLLOWERS_FILE: &str = "topiclog-followers";

/// The writer's liveness file of a store: its writer holds an exclusive lock on it while the
/// store is open for writing, so followers know whether a writer is alive.
pub const WRITER_FILE: &str = "topiclog-writer";

/// [`FOLLOWERS_FILE`] of a partition opened on its own (outside a store).
pub const PARTITION_FOLLOWERS_FILE: &str = ".topiclog_followers";

/// [`WRITER_FILE`] of a partition opened on its own (outside a store).
pub const PARTITION_WRITER_FILE: &str = ".topiclog_writer";

/// Name of the lock file a partition opened on its own takes in its directory (outside a
/// store). Kafka ignores it.
pub const PARTITION_LOCK_FILE: &str = ".topiclog_lock";

/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules (`Topic.validate`): 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`. Names become directory names, so the rule matters.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not allowed")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        }),
    }
}

/// Kafka's partition directory name: `<topic>-<partition>`.
pub(crate) fn partition_dir(store: &Path, topic: &str, partition: u32) -> PathBuf {
    store.join(format!("{topic}-{partition}"))
}

/// Splits a partition directory name at its last `-`: `("orders", 3)` for `orders-3`. Kafka's
/// deleted, future and stray folders (`<topic>-<n>.<id>-delete`, ...) do not parse.
pub(crate) fn parse_partition_dir(name: &str) -> Option<(&str, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty()
        || !partition.bytes().all(|b| b.is_ascii_digit())
        || (partition.len() > 1 && partition.starts_with('0'))
    {
        return None;
    }
    validate_topic_name(topic).ok()?;
    Some((topic, partition.parse().ok()?))
}

/// Whose lock covers a partition directory: its store's, when it lies in a store directory
/// (one with a topic registry or a lock file), else its own. Followers and the writer's
/// liveness live in the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Domain {
    Store(PathBuf),
    Partition(PathBuf),
}

impl Domain {
    pub(crate) fn of(partition_dir: &Path) -> Domain {
        let store = partition_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .filter(|p| p.join(TOPICS_FILE).exists() || p.join(LOCK_FILE).exists());
        match store {
            Some(store) => Domain::Store(store.to_path_buf()),
            None => Domain::Partition(partition_dir.to_path_buf()),
        }
    }

    /// The file followers hold a shared lock on.
    pub(crate) fn followers_file(&self) -> PathBuf {
        match self {
            Domain::Store(d) => d.join(FOLLOWERS_FILE),
            Domain::Partition(d) => d.join(PARTITION_FOLLOWERS_FILE),
        }
    }

    /// The file the live writer holds an exclusive lock on.
    pub(crate) fn writer_file(&self) -> PathBuf {
        match self {
            Domain::Store(d) => d.join(WRITER_FILE),
            Domain::Partition(d) => d.join(PARTITION_WRITER_FILE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_directories_parse_at_the_last_dash() {
        assert_eq!(parse_partition_dir("orders-0"), Some(("orders", 0)));
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic", 12)));
        for skipped in [
            "orders",
            "orders-",
            "orders-01",
            "-3",
            "orders-0.0123456789abcdef0123456789abcdef-delete",
            "orders-0.0123456789abcdef0123456789abcdef-future",
            "orders-x",
        ] {
            assert_eq!(parse_partition_dir(skipped), None, "{skipped}");
        }
        assert_eq!(
            partition_dir(Path::new("/s"), "orders", 3),
            Path::new("/s/orders-3")
        );
    }
}
