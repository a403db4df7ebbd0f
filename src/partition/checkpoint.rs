//! Kafka's text checkpoint format (`CheckpointFile`): a version line (0), an entry-count line,
//! then one entry per line with fields separated by spaces. Written atomically and durably
//! (temp file, fsync, rename, directory fsync).
//!
//! topiclog keeps its recovery checkpoint, `.topiclog_recovery_point`, in this format: one entry
//! per segment that has been fsynced since it was sealed (a [`SegmentRecord`] line), oldest
//! first. The recovery point is the offset after the last of them. An unclean open trusts those
//! segments as recorded, without reading them, when their files still have the recorded
//! lengths; it scans every other segment.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};

use super::manifest::SegmentRecord;

/// Version 1 files end with a checksum line (see [`crate::sealed`]); version 0, Kafka's
/// and topiclog's before it, has none.
const VERSION: &str = "1";
const VERSION_UNSEALED: &str = "0";

/// File name of a partition's log-start checkpoint: Kafka's format, one entry holding the log
/// start offset. Absent means the log starts at its first segment.
pub(crate) const LOG_START_FILE: &str = ".topiclog_log_start_offset";

/// File name of the note a failed fsync leaves: the active segment's base offset and the length
/// the last successful fsync made durable. The next open cuts the segment back to it.
pub(crate) const POISON_FILE: &str = ".topiclog_failed_fsync";

/// Records where durable data ended when an fsync failed (best effort: the disk is failing).
pub(crate) fn write_poison(
    disk: &dyn Disk,
    dir: &Path,
    base_offset: i64,
    synced: u64,
) -> Result<()> {
    write(
        disk,
        &dir.join(POISON_FILE),
        &[format!("{base_offset} {synced}")],
    )
}

/// Reads the failed-fsync note, if any: `(base offset, durable length)`.
pub(crate) fn read_poison(disk: &dyn Disk, dir: &Path) -> Result<Option<(i64, u64)>> {
    let path = dir.join(POISON_FILE);
    let Some(entries) = read(disk, &path)? else {
        return Ok(None);
    };
    match entries.as_slice() {
        [entry] => match entry.as_slice() {
            [base, synced] => match (base.parse(), synced.parse()) {
                (Ok(base), Ok(synced)) => Ok(Some((base, synced))),
                _ => Err(Error::corrupt(
                    &path,
                    0,
                    Corruption::Metadata("malformed failed-fsync note"),
                )),
            },
            _ => Err(Error::corrupt(
                &path,
                0,
                Corruption::Metadata("malformed failed-fsync note"),
            )),
        },
        _ => Err(Error::corrupt(
            &path,
            0,
            Corruption::Metadata("malformed failed-fsync note"),
        )),
    }
}

/// File name of a partition's recovery-point checkpoint.
pub(crate) const RECOVERY_POINT_FILE: &str = ".topiclog_recovery_point";

/// Writes `entries` (each a line of space-separated fields) as a checkpoint file.
pub(crate) fn write(disk: &dyn Disk, path: &Path, entries: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    disk::write_atomic(disk, path, crate::sealed::seal(text).as_bytes())
}

/// [`write`] in Kafka's own version 0, with no checksum line: for the files a Kafka broker
/// reads too (`cleaner-offset-checkpoint`).
pub(crate) fn write_kafka(disk: &dyn Disk, path: &Path, entries: &[String]) -> Result<()> {
    let mut text = format!("{VERSION_UNSEALED}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    disk::write_atomic(disk, path, text.as_bytes())
}

/// Reads a checkpoint's entries, each split into fields. `Ok(None)` if the file does not exist;
/// an empty file has no entries. A wrong version or count is [`Error::Corrupt`].
pub(crate) fn read(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<Vec<String>>>> {
    let entries = read_entries(disk, path)?;
    Ok(entries.map(|entries| entries.into_iter().map(|e| e.fields).collect()))
}

/// One entry of a checkpoint file: its fields, and the byte position of its line (what an
/// error about it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) position: u64,
    pub(crate) fields: Vec<String>,
}

/// [`read`], each entry with its line's byte position.
pub(crate) fn read_entries(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<Entry>>> {
    let file = match File::open(disk, path.to_path_buf(), OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    let required = if bytes.starts_with(b"0\n") {
        crate::sealed::Required::No
    } else {
        crate::sealed::Required::Yes
    };
    let bytes = if bytes.is_empty() {
        &bytes[..]
    } else {
        crate::sealed::open(&bytes, path, required)?
    };
    let corrupt = |at, why| Error::corrupt(path, at, Corruption::Metadata(why));
    let text = std::str::from_utf8(bytes)
        .map_err(|e| corrupt(e.valid_up_to() as u64, "checkpoint is not UTF-8"))?;
    let mut lines = crate::sealed::lines(text);
    let Some((at, version)) = lines.next() else {
        return Ok(Some(Vec::new()));
    };
    if version.trim() != VERSION && version.trim() != VERSION_UNSEALED {
        return Err(corrupt(at, "unknown checkpoint version"));
    }
    let end = text.len() as u64;
    let (at, count) = lines.next().unwrap_or((end, ""));
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| corrupt(at, "bad checkpoint entry count"))?;
    let entries: Vec<Entry> = lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(position, l)| Entry {
            position,
            fields: l.split_whitespace().map(str::to_owned).collect(),
        })
        .collect();
    if entries.len() != count {
        return Err(corrupt(
            end,
            "checkpoint entry count does not match its entries",
        ));
    }
    Ok(Some(entries))
}

/// Reads the log start offset; `Ok(None)` when none was recorded.
pub(crate) fn read_log_start(disk: &dyn Disk, dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(LOG_START_FILE);
    let Some(entries) = read(disk, &path)? else {
        return Ok(None);
    };
    match entries.as_slice() {
        [] => Ok(None),
        [entry] => match entry.as_slice() {
            [offset] => offset.parse().map(Some).map_err(|_| {
                Error::corrupt(&path, 0, Corruption::Metadata("log start is not an offset"))
            }),
            _ => Err(Error::corrupt(
                &path,
                0,
                Corruption::Metadata("malformed log start entry"),
            )),
        },
        _ => Err(Error::corrupt(
            &path,
            0,
            Corruption::Metadata("log start needs one entry"),
        )),
    }
}

/// Writes the log start offset durably.
pub(crate) fn write_log_start(disk: &dyn Disk, dir: &Path, offset: i64) -> Result<()> {
    write(disk, &dir.join(LOG_START_FILE), &[offset.to_string()])
}

/// The durable prefix of a segment not recorded as flushed (the active one): its first `size`
/// bytes, ending before offset `next_offset`, were fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurablePrefix {
    pub(crate) base_offset: i64,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
}

/// The recovery checkpoint's contents: what fsyncs have made durable, and whether the log
/// start has been checkpointed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecoveryPoint {
    /// Sealed segments fsynced since they were sealed, oldest first.
    pub(crate) flushed: Vec<SegmentRecord>,
    /// How much of the active segment was fsynced when the checkpoint was written.
    pub(crate) active: Option<DurablePrefix>,
    /// The log start offset when the checkpoint was written, once it has been checkpointed
    /// (in [`LOG_START_FILE`]): from then on that file must exist.
    pub(crate) log_start: Option<i64>,
}

impl RecoveryPoint {
    /// The recovery point: the offset below which everything was fsynced.
    pub(crate) fn offset(&self) -> i64 {
        let sealed = self.flushed.last().map_or(0, |r| r.state.next_offset);
        self.active.map_or(sealed, |a| a.next_offset.max(sealed))
    }

    /// What a clean close made durable, as its marker lists it: every segment but the last
    /// fsynced whole, the last up to its recorded length. The log start stays this
    /// checkpoint's.
    pub(crate) fn as_of_clean_close(&self, marker: &[SegmentRecord]) -> RecoveryPoint {
        let Some((last, sealed)) = marker.split_last() else {
            return self.clone();
        };
        RecoveryPoint {
            flushed: sealed.to_vec(),
            active: (last.state.size > 0).then_some(DurablePrefix {
                base_offset: last.base_offset,
                size: last.state.size,
                next_offset: last.state.next_offset,
            }),
            log_start: self.log_start,
        }
    }
}

const ACTIVE_TAG: &str = "active";
const LOG_START_TAG: &str = "log-start";

/// Reads the recovery checkpoint; an absent file means nothing is known to be durable.
///
/// Lines are segment records (see [`SegmentRecord`]), then optionally
/// `active <base> <size> <next offset>` and `log-start <offset>`.
pub(crate) fn read_recovery_point(disk: &dyn Disk, dir: &Path) -> Result<RecoveryPoint> {
    let path = dir.join(RECOVERY_POINT_FILE);
    let Some(entries) = read_entries(disk, &path)? else {
        return Ok(RecoveryPoint::default());
    };
    let mut point = RecoveryPoint::default();
    for entry in &entries {
        let corrupt = |why| Error::corrupt(&path, entry.position, Corruption::Metadata(why));
        let fields: Vec<&str> = entry.fields.iter().map(String::as_str).collect();
        match fields.as_slice() {
            [ACTIVE_TAG, base, size, next] => {
                let (Ok(base_offset), Ok(size), Ok(next_offset)) =
                    (base.parse(), size.parse(), next.parse())
                else {
                    return Err(corrupt("malformed active segment entry"));
                };
                if next_offset < base_offset || point.active.is_some() {
                    return Err(corrupt("malformed active segment entry"));
                }
                point.active = Some(DurablePrefix {
                    base_offset,
                    size,
                    next_offset,
                });
            }
            [LOG_START_TAG, offset] => {
                let offset = offset
                    .parse()
                    .map_err(|_| corrupt("malformed log start entry"))?;
                point.log_start = Some(offset);
            }
            _ => {
                let record = SegmentRecord::parse(fields).map_err(corrupt)?;
                if point
                    .flushed
                    .last()
                    .is_some_and(|prev: &SegmentRecord| prev.state.next_offset > record.base_offset)
                {
                    return Err(corrupt("segments overlap or out of order"));
                }
                point.flushed.push(record);
            }
        }
    }
    Ok(point)
}

/// Writes the recovery checkpoint durably.
pub(crate) fn write_recovery_point(
    disk: &dyn Disk,
    dir: &Path,
    point: &RecoveryPoint,
) -> Result<()> {
    let mut lines: Vec<String> = point.flushed.iter().map(|r| r.to_line()).collect();
    if let Some(a) = point.active {
        lines.push(format!(
            "{ACTIVE_TAG} {} {} {}",
            a.base_offset, a.size, a.next_offset
        ));
    }
    if let Some(offset) = point.log_start {
        lines.push(format!("{LOG_START_TAG} {offset}"));
    }
    write(disk, &dir.join(RECOVERY_POINT_FILE), &lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OsDisk;

    #[test]
    fn round_trip_and_malformed_files() {
        use crate::segment::SegmentState;
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = OsDisk;
        let flushed = |disk: &OsDisk| read_recovery_point(disk, dir.path()).map(|p| p.flushed);
        assert_eq!(flushed(&disk).expect("reads"), vec![]);
        let record = |base, next| SegmentRecord {
            base_offset: base,
            index_bytes: 8,
            time_index_bytes: 12,
            state: SegmentState {
                size: 100,
                next_offset: next,
                max_timestamp: 5,
                offset_of_max_timestamp: base,
            },
            txn_index: None,
        };
        let records = vec![record(0, 10), record(10, 25)];
        let mut point = RecoveryPoint {
            flushed: records.clone(),
            active: None,
            log_start: None,
        };
        write_recovery_point(&disk, dir.path(), &point).expect("writes");
        let text = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).expect("text");
        assert_eq!(
            text,
            crate::sealed::seal("1\n2\n0 100 8 12 10 5 0\n10 100 8 12 25 5 10\n".to_owned())
        );
        assert_eq!(flushed(&disk).expect("reads"), records);
        assert_eq!(point.offset(), 25);
        point.active = Some(DurablePrefix {
            base_offset: 25,
            size: 4096,
            next_offset: 40,
        });
        point.log_start = Some(3);
        write_recovery_point(&disk, dir.path(), &point).expect("writes");
        let text = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).expect("text");
        assert!(
            text.contains("active 25 4096 40\nlog-start 3\ncrc32c "),
            "{text}"
        );
        assert_eq!(
            read_recovery_point(&disk, dir.path()).expect("reads"),
            point
        );
        assert_eq!(point.offset(), 40);
        for bad in [
            "1\n0\n",
            "0\n2\n0 100 8 12 10 5 0\n",
            "0\nx\n",
            "0\n1\nfive\n",
            "0\n2\n0 100 8 12 10 5 0\n5 100 8 12 25 5 10\n",
            "\u{ff}\u{fe}",
            "0\n1\nactive 5 x 7\n",
            "0\n1\nactive 9 0 7\n",
            "0\n2\nactive 5 0 7\nactive 5 0 7\n",
            "0\n1\nlog-start many\n",
        ] {
            std::fs::write(dir.path().join(RECOVERY_POINT_FILE), bad).expect("write");
            match flushed(&disk) {
                Err(Error::Corrupt {
                    kind: Corruption::Metadata(_),
                    ..
                }) => {}
                other => panic!("{bad:?}: expected Corrupt, got {other:?}"),
            }
        }
        // Errors name the line, by its byte position.
        std::fs::write(
            dir.path().join(RECOVERY_POINT_FILE),
            "0\n2\n0 100 8 12 10 5 0\nactive 5 x 7\n",
        )
        .expect("write");
        match flushed(&disk) {
            Err(Error::Corrupt { position, .. }) => assert_eq!(position, 22),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "").expect("write");
        assert_eq!(
            flushed(&disk).expect("an empty file has no entries"),
            vec![]
        );
    }
}
