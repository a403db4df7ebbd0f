//! The clean-shutdown marker, `.topiclog_cleanshutdown`: written last by a clean close, it
//! records what is needed to trust the segment files as they are, so a clean reopen reads no
//! segment. It is removed before the first write after open, so a crash always finds it gone.
//!
//! Format (UTF-8 text; every line ends in `\n`):
//!
//! ```text
//! topiclog-clean-shutdown 1
//! segments <N>
//! <base> <log bytes> <index bytes> <timeindex bytes> <next offset> <max timestamp> <offset of max timestamp>
//! ... (N lines, ascending base offset)
//! crc32c <8 hex digits: CRC-32C of every byte before this line>
//! ```
//!
//! Any file that disagrees with the marker (a segment more or less, a length that differs)
//! makes the open unclean.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt::Write as _;
use std::path::Path;

use super::manifest::SegmentRecord;
use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Error, Result};

/// File name of the marker in a partition directory.
pub(crate) const MARKER_FILE: &str = ".topiclog_cleanshutdown";
const HEADER: &str = "topiclog-clean-shutdown 1";

/// Encodes the marker's contents.
pub(crate) fn encode(segments: &[SegmentRecord]) -> String {
    let mut text = format!("{HEADER}\nsegments {}\n", segments.len());
    for s in segments {
        text.push_str(&s.to_line());
        text.push('\n');
    }
    let crc = crate::crc::crc32c(text.as_bytes());
    let _ = writeln!(text, "crc32c {crc:08x}");
    text
}

/// Decodes a marker; `Err` says why it cannot be trusted.
pub(crate) fn decode(text: &str) -> std::result::Result<Vec<SegmentRecord>, &'static str> {
    let body_end = text.rfind("crc32c ").ok_or("no checksum line")?;
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line
        .trim_end()
        .strip_prefix("crc32c ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("malformed checksum line")?;
    if stored != crate::crc::crc32c(body.as_bytes()) {
        return Err("checksum mismatch");
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err("unknown marker version");
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.strip_prefix("segments "))
        .and_then(|n| n.parse().ok())
        .ok_or("malformed segment count")?;
    let segments: Vec<SegmentRecord> = lines
        .map(|line| SegmentRecord::parse(line.split(' ')))
        .collect::<std::result::Result<_, _>>()?;
    if segments.len() != count {
        return Err("segment count does not match");
    }
    Ok(segments)
}

/// Reads the marker: `Ok(None)` if absent, `Ok(Some(Err(why)))` if present but unusable.
pub(crate) fn read(
    disk: &dyn Disk,
    dir: &Path,
) -> Result<Option<std::result::Result<Vec<SegmentRecord>, &'static str>>> {
    let path = dir.join(MARKER_FILE);
    let file = match File::open(disk, path, OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    Ok(Some(match std::str::from_utf8(&bytes) {
        Ok(text) => decode(text),
        Err(_) => Err("not UTF-8"),
    }))
}

/// Writes the marker durably.
pub(crate) fn write(disk: &dyn Disk, dir: &Path, segments: &[SegmentRecord]) -> Result<()> {
    disk::write_atomic(disk, &dir.join(MARKER_FILE), encode(segments).as_bytes())
}

/// Removes the marker durably (before the first write after open).
pub(crate) fn remove(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk::remove_file(disk, &dir.join(MARKER_FILE))?;
    disk::sync_dir(disk, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::segment::SegmentState;

    fn record(base: i64) -> SegmentRecord {
        SegmentRecord {
            base_offset: base,
            index_bytes: 16,
            time_index_bytes: 24,
            state: SegmentState {
                size: 4096,
                next_offset: base + 10,
                max_timestamp: 1_700_000_000_000,
                offset_of_max_timestamp: base + 9,
            },
            txn_index: None,
        }
    }

    #[test]
    fn round_trip() {
        let segments = vec![record(0), record(10)];
        let text = encode(&segments);
        assert!(text.starts_with("topiclog-clean-shutdown 1\nsegments 2\n0 4096 16 24 10 "));
        assert_eq!(decode(&text), Ok(segments));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
    }

    #[test]
    fn damage_is_detected() {
        let text = encode(&[record(0)]);
        let flipped = text.replacen("4096", "4097", 1);
        assert_eq!(decode(&flipped), Err("checksum mismatch"));
        assert!(decode(&text[..text.len() - 3]).is_err());
        assert!(decode("").is_err());
        assert!(decode("crc32c zz\n").is_err());
    }
}
