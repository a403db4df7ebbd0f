//! The names of files and directories in a store, Kafka's and topiclog's: one owner for each,
//! below the modules that use them (partitions, stores, topics, the lock), so none of those
//! depends on another for a name.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name of the registry in a store directory.
pub const TOPICS_FILE: &str = "topiclog-topics";

/// Name of the lock file in a store directory.
pub const LOCK_FILE: &str = ".lock";

/// Name of the lock file a partition opened on its own takes in its directory (outside a
/// store). Kafka ignores it.
pub const PARTITION_LOCK_FILE: &str = ".topiclog_lock";

/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules (`Topic.validate`): 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`. Names become directory names, so the rule matters.
pub fn validate_name(name: &str) -> Result<()> {
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
    validate_name(topic).ok()?;
    Some((topic, partition.parse().ok()?))
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
