//! The store's topic registry, `topiclog-topics` in the store directory: each topic's partition
//! count and settings, with a format version. A file, not a directory: a Kafka broker reads
//! every directory of its log directory as a partition.
//!
//! Format (UTF-8 text, replaced atomically and durably on every change):
//!
//! ```text
//! topiclog-topics 2
//! <topic> partitions=<n> [creating=<m>] [replica=1] segment.bytes=<v> segment.ms=<v> segment.index.bytes=<v>
//!     index.interval.bytes=<v> max.message.bytes=<v> message.timestamp.type=<CreateTime|LogAppendTime>
//!     retention.ms=<v> retention.bytes=<v> flush.messages=<v> flush.ms=<v>
//!     producer.id.expiration.ms=<v> ...
//! <topic> partitions=<n> adopted=1
//! crc32c <8 hex digits>
//! ```
//!
//! (one line per topic; shown wrapped here), closed by a checksum line (see [`crate::sealed`];
//! version 1 files, written before it, have none). Keys are Kafka's; a missing key takes its
//! default. `creating=<m>` marks a topic change under way: partitions `n..m` are being created
//! (`n` is 0 for a new topic), and the next open rolls it back. `replica=1` marks a replica of
//! a cluster topic: each of its partitions holds a replica marker (a missing one fails the
//! open). `adopted=1` marks a Kafka
//! broker's topic found in the directory: it takes the store's settings, with retention off.
//! An unknown version, an unknown key or a malformed line is [`Error::Corrupt`] naming the file
//! and line.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::LogConfig;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};

use crate::layout::TOPICS_FILE;

const HEADER: &str = "topiclog-topics 2";
/// The version written before files ended with a checksum line.
const HEADER_V1: &str = "topiclog-topics 1";

/// What the registry records of a topic.
#[derive(Debug, Clone)]
pub(crate) struct TopicEntry {
    /// Partitions that exist for good.
    pub(crate) partitions: u32,
    /// While a create or grow is under way: the partition count it is creating.
    pub(crate) creating: Option<u32>,
    /// A Kafka broker's topic found in the directory: configured by the store's options.
    pub(crate) adopted: bool,
    /// A replica of a cluster topic: each partition holds a replica marker.
    pub(crate) replica: bool,
    pub(crate) config: LogConfig,
}

impl TopicEntry {
    /// A configured topic of `partitions` partitions, with no change under way.
    pub(crate) fn new(partitions: u32, config: LogConfig) -> TopicEntry {
        TopicEntry {
            partitions,
            creating: None,
            adopted: false,
            replica: false,
            config,
        }
    }
}

/// Encodes the registry.
pub(crate) fn encode(topics: &BTreeMap<String, TopicEntry>) -> String {
    let mut text = format!("{HEADER}\n");
    for (name, entry) in topics {
        text.push_str(name);
        text.push_str(&format!(" partitions={}", entry.partitions));
        if let Some(creating) = entry.creating {
            text.push_str(&format!(" creating={creating}"));
        }
        if entry.replica {
            text.push_str(" replica=1");
        }
        if entry.adopted {
            text.push_str(" adopted=1");
        } else {
            for (key, value) in entry.config.to_pairs() {
                text.push_str(&format!(" {key}={value}"));
            }
        }
        text.push('\n');
    }
    crate::sealed::seal(text)
}

/// Decodes the registry; `base` supplies what is not persisted (clock, write buffer).
pub(crate) fn decode(
    text: &str,
    base: &LogConfig,
) -> std::result::Result<BTreeMap<String, TopicEntry>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER | HEADER_V1) => {}
        Some(other) if other.starts_with("topiclog-topics ") => {
            return Err(format!("unknown format version in {other:?}"));
        }
        _ => return Err("not a topiclog topics file".to_owned()),
    }
    let mut topics = BTreeMap::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line_no = n + 2;
        let mut fields = line.split_whitespace();
        let name = fields
            .next()
            .ok_or_else(|| format!("line {line_no}: empty"))?;
        crate::layout::validate_topic_name(name).map_err(|e| format!("line {line_no}: {e}"))?;
        let mut partitions = None;
        let mut creating = None;
        let mut adopted = false;
        let mut replica = false;
        let mut builder = LogConfig::builder()
            .clock(base.clock().clone())
            .write_buffer_bytes(base.write_buffer_bytes());
        for field in fields {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("line {line_no}: {field:?} is not key=value"))?;
            let count = || {
                value.parse::<u32>().map_err(|_| {
                    format!("line {line_no}: {key} {value:?} is not a partition count")
                })
            };
            match key {
                "partitions" => partitions = Some(count()?),
                "creating" => creating = Some(count()?),
                "adopted" if value == "1" => adopted = true,
                "replica" if value == "1" => replica = true,
                _ => {
                    builder = builder
                        .set(key, value)
                        .map_err(|e| format!("line {line_no}: {e}"))?;
                }
            }
        }
        let config = builder
            .build()
            .map_err(|e| format!("line {line_no}: {e}"))?;
        let partitions = partitions.ok_or_else(|| format!("line {line_no}: no partitions"))?;
        match creating {
            None if partitions == 0 => {
                return Err(format!(
                    "line {line_no}: partitions \"0\" is not a positive number"
                ));
            }
            Some(target) if target <= partitions => {
                return Err(format!(
                    "line {line_no}: creating={target} is not above partitions={partitions}"
                ));
            }
            _ => {}
        }
        let entry = TopicEntry {
            partitions,
            creating,
            adopted,
            replica,
            config,
        };
        if topics.insert(name.to_owned(), entry).is_some() {
            return Err(format!("line {line_no}: topic {name:?} listed twice"));
        }
    }
    Ok(topics)
}

/// Reads the registry; an absent file is an empty registry.
pub(crate) fn read(
    disk: &dyn Disk,
    dir: &Path,
    base: &LogConfig,
) -> Result<BTreeMap<String, TopicEntry>> {
    let path = dir.join(TOPICS_FILE);
    let file = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    let required = if bytes.starts_with(HEADER_V1.as_bytes()) {
        crate::sealed::Required::No
    } else {
        crate::sealed::Required::Yes
    };
    let bytes = crate::sealed::open(&bytes, &path, required)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::corrupt(&path, 0, Corruption::Metadata("topics file is not UTF-8")))?;
    decode(text, base).map_err(|why| Error::corrupt(&path, 0, Corruption::Topics(why)))
}

/// Writes the registry atomically and durably.
pub(crate) fn write(
    disk: &dyn Disk,
    dir: &Path,
    topics: &BTreeMap<String, TopicEntry>,
) -> Result<()> {
    disk::write_atomic(disk, &dir.join(TOPICS_FILE), encode(topics).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut topics = BTreeMap::new();
        let config = LogConfig::builder()
            .segment_bytes(4096)
            .retention_ms(-1)
            .producer_id_expiration_ms(60_000)
            .build()
            .expect("config");
        topics.insert("orders".to_owned(), TopicEntry::new(3, config));
        let text = encode(&topics);
        assert!(text.starts_with("topiclog-topics 2\norders partitions=3 segment.bytes=4096 "));
        let body = crate::sealed::open(
            text.as_bytes(),
            Path::new("t"),
            crate::sealed::Required::Yes,
        )
        .expect("sealed");
        let back = decode(
            std::str::from_utf8(body).expect("utf-8"),
            &LogConfig::default(),
        )
        .expect("decodes");
        assert_eq!(back["orders"].partitions, 3);
        assert_eq!(back["orders"].config.segment_bytes(), 4096);
        assert_eq!(back["orders"].config.retention_ms(), -1);
        assert_eq!(back["orders"].config.producer_id_expiration_ms(), 60_000);
        let old = "topiclog-topics 1\norders partitions=1 retention.ms=-1\n";
        assert_eq!(
            decode(old, &LogConfig::default()).expect("decodes")["orders"]
                .config
                .producer_id_expiration_ms(),
            86_400_000,
            "a registry written before the setting existed takes Kafka's default"
        );
        assert_eq!(
            back["orders"].config.index_interval_bytes(),
            4096,
            "defaults fill the rest"
        );
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let base = LogConfig::default();
        for (text, says) in [
            ("", "not a topiclog topics file"),
            ("topiclog-topics 3\n", "unknown format version"),
            ("topiclog-topics 1\norders\n", "no partitions"),
            ("topiclog-topics 1\norders partitions=0\n", "positive"),
            (
                "topiclog-topics 1\norders partitions=1 colour=blue\n",
                "unknown setting",
            ),
            (
                "topiclog-topics 1\norders partitions=1 segment.bytes=big\n",
                "not a number",
            ),
            (
                "topiclog-topics 1\norders partitions=1 segment.bytes=3\n",
                "segment.bytes",
            ),
            (
                "topiclog-topics 1\nbad/name partitions=1\n",
                "invalid topic name",
            ),
            (
                "topiclog-topics 1\na partitions=1\na partitions=2\n",
                "twice",
            ),
            ("topiclog-topics 1\na partitions\n", "key=value"),
        ] {
            let err = decode(text, &base).expect_err(text);
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
