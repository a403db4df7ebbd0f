//! The published durable end, `.topiclog_published`: the offset below which a partition's
//! records are durable, written by its writer for followers in other processes.
//!
//! Under the durable flush policy a follower must not return a record before it is durable,
//! yet it reads the segment files, where a batch lands before its fsync. So the writer
//! publishes its durable end here: at open, after each group commit while someone follows
//! (see [`crate::follow`]), and at close. A follower reads it while a writer is alive and
//! returns only records below it; with no live writer, the files are all there is.
//!
//! Format: 16 bytes, rewritten in place with one positioned write: `TLP1`, the next offset
//! (big-endian `i64`), and the CRC-32C of those 12 bytes. A follower that reads a torn write
//! (the CRC fails) reads again; a file that stays unreadable is treated as absent (logged),
//! since it only bounds what is returned early and never widens it: with no bound, the
//! follower reads the files as a read-only open always has.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::Path;

use crate::disk::{Disk, File, OpenMode};
use crate::error::Result;

/// File name of the published end in a partition directory.
pub(crate) const PUBLISHED_FILE: &str = ".topiclog_published";
const MAGIC: &[u8; 4] = b"TLP1";
const LEN: usize = 16;

fn encode(next_offset: i64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    let (head, crc) = bytes.split_at_mut(12);
    let (magic, offset) = head.split_at_mut(4);
    magic.copy_from_slice(MAGIC);
    offset.copy_from_slice(&next_offset.to_be_bytes());
    crc.copy_from_slice(&crate::crc::crc32c(head).to_be_bytes());
    bytes
}

fn decode(bytes: &[u8; LEN]) -> Option<i64> {
    let (head, crc) = bytes.split_first_chunk::<12>()?;
    let (magic, offset) = head.split_first_chunk::<4>()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    if magic != MAGIC || u32::from_be_bytes(crc) != crate::crc::crc32c(head) {
        return None;
    }
    let offset: [u8; 8] = offset.try_into().ok()?;
    Some(i64::from_be_bytes(offset)).filter(|o| *o >= 0)
}

/// The writer's handle on the file.
#[derive(Debug)]
pub(crate) struct Publisher {
    file: File,
    /// The last offset written.
    last: Option<i64>,
}

impl Publisher {
    /// Opens (creating) the partition's file.
    pub(crate) fn open(disk: &dyn Disk, dir: &Path) -> Result<Publisher> {
        let file = File::open(disk, dir.join(PUBLISHED_FILE), OpenMode::Create)?;
        Ok(Publisher { file, last: None })
    }

    /// Publishes `next_offset` as the durable end (nothing if it is already published).
    pub(crate) fn publish(&mut self, next_offset: i64) -> Result<()> {
        if self.last == Some(next_offset) {
            return Ok(());
        }
        self.file.write_all_at(&encode(next_offset), 0)?;
        self.last = Some(next_offset);
        Ok(())
    }
}

/// The published durable end of the partition in `dir`; `None` if there is none (no file, or
/// one that does not read whole after a few tries).
pub(crate) fn read(disk: &dyn Disk, dir: &Path) -> Option<i64> {
    let path = dir.join(PUBLISHED_FILE);
    let file = File::open(disk, path.clone(), OpenMode::Read).ok()?;
    for _ in 0..3 {
        let mut bytes = [0u8; LEN];
        match file.read_at(&mut bytes, 0) {
            Ok(LEN) => {
                if let Some(offset) = decode(&bytes) {
                    return Some(offset);
                }
            }
            Ok(0) => return None,
            _ => {}
        }
        // A write in progress: read it again.
        std::thread::yield_now();
    }
    log::warn!(
        "{}: unreadable, ignored (reads are not bounded by it)",
        path.display()
    );
    None
}

/// What is wrong with the partition's file, if it exists and does not read (for `verify`).
pub(crate) fn check(disk: &dyn Disk, dir: &Path) -> Option<String> {
    let file = File::open(disk, dir.join(PUBLISHED_FILE), OpenMode::Read).ok()?;
    let mut bytes = [0u8; LEN];
    match file.read_at(&mut bytes, 0) {
        Ok(LEN) if decode(&bytes).is_some() => None,
        Ok(LEN) => Some("the published durable end fails its check".to_owned()),
        Ok(n) => Some(format!("the published durable end is {n} bytes, not {LEN}")),
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OsDisk;

    #[test]
    fn published_end_round_trips_and_damage_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(&OsDisk, dir.path()), None);
        let mut publisher = Publisher::open(&OsDisk, dir.path()).expect("opens");
        publisher.publish(42).expect("publishes");
        assert_eq!(read(&OsDisk, dir.path()), Some(42));
        publisher.publish(7_000_000_000).expect("publishes");
        assert_eq!(read(&OsDisk, dir.path()), Some(7_000_000_000));
        let path = dir.path().join(PUBLISHED_FILE);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes[6] ^= 1;
        std::fs::write(&path, &bytes).expect("writes");
        assert_eq!(read(&OsDisk, dir.path()), None);
        std::fs::write(&path, b"short").expect("writes");
        assert_eq!(read(&OsDisk, dir.path()), None);
    }
}
