//! `cleaner-offset-checkpoint`: where each partition's last cleaning ended (its first dirty
//! offset), in Kafka's checkpoint format version 0, one `topic partition offset` line per
//! partition, as a broker keeps it. A store keeps one in its directory for all its partitions;
//! a partition opened alone keeps one in its own directory.
//!
//! The file only saves work: cleaning from the log start is always correct. So a damaged or
//! unreadable file is set aside with a warning and cleaning starts again from the log start.

use std::path::Path;

use parking_lot::Mutex;

use crate::disk::Disk;
use crate::error::Result;
use crate::partition::checkpoint;

/// The file's name, as Kafka's.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Serializes read-modify-writes of the store-wide file by this process's partitions.
static UPDATE: Mutex<()> = Mutex::new(());

/// A partition's name in the file: the topic (no whitespace) and partition number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) offset: i64,
}

fn read_all(disk: &dyn Disk, path: &Path) -> Vec<Entry> {
    let entries = match checkpoint::read(disk, path) {
        Ok(Some(entries)) => entries,
        Ok(None) => return Vec::new(),
        Err(e) => {
            log::warn!(
                "{}: set aside, cleaning restarts from the log start: {e}",
                path.display()
            );
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for fields in entries {
        match fields.as_slice() {
            [topic, partition, offset] => match (partition.parse(), offset.parse()) {
                (Ok(partition), Ok(offset)) => out.push(Entry {
                    topic: topic.clone(),
                    partition,
                    offset,
                }),
                _ => log::warn!("{}: malformed entry {fields:?} ignored", path.display()),
            },
            _ => log::warn!("{}: malformed entry {fields:?} ignored", path.display()),
        }
    }
    out
}

/// The first dirty offset recorded for `topic`-`partition`, if any.
pub(crate) fn read(disk: &dyn Disk, path: &Path, topic: &str, partition: u32) -> Option<i64> {
    read_all(disk, path)
        .into_iter()
        .find(|e| e.topic == name(topic) && e.partition == partition)
        .map(|e| e.offset)
}

/// Records `offset` as the first dirty offset of `topic`-`partition`, durably; `None` removes
/// its entry.
pub(crate) fn write(
    disk: &dyn Disk,
    path: &Path,
    topic: &str,
    partition: u32,
    offset: Option<i64>,
) -> Result<()> {
    let _serial = UPDATE.lock();
    let topic = name(topic);
    let mut entries = read_all(disk, path);
    entries.retain(|e| !(e.topic == topic && e.partition == partition));
    if let Some(offset) = offset {
        entries.push(Entry {
            topic,
            partition,
            offset,
        });
    }
    entries.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {} {}", e.topic, e.partition, e.offset))
        .collect();
    checkpoint::write_kafka(disk, path, &lines)
}

/// A topic as the file names it: Kafka's names have no whitespace; a standalone partition's
/// directory name might.
fn name(topic: &str) -> String {
    topic.replace(char::is_whitespace, "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OsDisk;

    #[test]
    fn entries_round_trip_and_update_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CLEANER_CHECKPOINT_FILE);
        let disk = OsDisk;
        assert_eq!(read(&disk, &path, "t", 0), None);
        write(&disk, &path, "t", 0, Some(10)).unwrap();
        write(&disk, &path, "t", 1, Some(20)).unwrap();
        write(&disk, &path, "u", 0, Some(30)).unwrap();
        write(&disk, &path, "t", 0, Some(15)).unwrap();
        assert_eq!(read(&disk, &path, "t", 0), Some(15));
        assert_eq!(read(&disk, &path, "t", 1), Some(20));
        assert_eq!(read(&disk, &path, "u", 0), Some(30));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n3\nt 0 15\nt 1 20\nu 0 30\n", "Kafka's format");
        write(&disk, &path, "t", 1, None).unwrap();
        assert_eq!(read(&disk, &path, "t", 1), None);
    }

    #[test]
    fn a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CLEANER_CHECKPOINT_FILE);
        std::fs::write(&path, "0\n2\nt 0 5\n").unwrap();
        assert_eq!(read(&OsDisk, &path, "t", 0), None, "count mismatch");
        std::fs::write(&path, "0\n1\nt x 5\n").unwrap();
        assert_eq!(read(&OsDisk, &path, "t", 0), None);
        write(&OsDisk, &path, "t", 0, Some(7)).unwrap();
        assert_eq!(read(&OsDisk, &path, "t", 0), Some(7), "rewritten whole");
    }
}
