//! Kafka's text checkpoint format (`CheckpointFile`): a version line (0), an entry-count line,
//! then one entry per line with fields separated by spaces. Written atomically and durably
//! (temp file, fsync, rename, directory fsync).
//!
//! topiclog keeps the partition's recovery point in `.topiclog_recovery_point` in this format,
//! with one entry holding one field: the offset below which every segment has been fsynced.

use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};

const VERSION: &str = "0";

/// File name of a partition's recovery-point checkpoint.
pub(crate) const RECOVERY_POINT_FILE: &str = ".topiclog_recovery_point";

/// Writes `entries` (each a line of space-separated fields) as a checkpoint file.
pub(crate) fn write(disk: &dyn Disk, path: &Path, entries: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    disk::write_atomic(disk, path, text.as_bytes())
}

/// Reads a checkpoint's entries, each split into fields. `Ok(None)` if the file does not exist;
/// an empty file has no entries. A wrong version or count is [`Error::Corrupt`].
pub(crate) fn read(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<Vec<String>>>> {
    let file = match File::open(disk, path.to_path_buf(), OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    let corrupt = |why| Error::corrupt(path, 0, Corruption::Metadata(why));
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt("checkpoint is not UTF-8"))?;
    let mut lines = text.lines();
    let Some(version) = lines.next() else {
        return Ok(Some(Vec::new()));
    };
    if version.trim() != VERSION {
        return Err(corrupt("unknown checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("bad checkpoint entry count"))?;
    let entries: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    if entries.len() != count {
        return Err(corrupt("checkpoint entry count does not match its entries"));
    }
    Ok(Some(entries))
}

/// Reads the recovery point: `Ok(None)` when there is none.
pub(crate) fn read_recovery_point(disk: &dyn Disk, dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(RECOVERY_POINT_FILE);
    let Some(entries) = read(disk, &path)? else {
        return Ok(None);
    };
    match entries.as_slice() {
        [entry] => match entry.as_slice() {
            [offset] => offset.parse().map(Some).map_err(|_| {
                Error::corrupt(
                    &path,
                    0,
                    Corruption::Metadata("recovery point is not an offset"),
                )
            }),
            _ => Err(Error::corrupt(
                &path,
                0,
                Corruption::Metadata("recovery point entry malformed"),
            )),
        },
        _ => Err(Error::corrupt(
            &path,
            0,
            Corruption::Metadata("recovery point needs one entry"),
        )),
    }
}

/// Writes the recovery point durably.
pub(crate) fn write_recovery_point(disk: &dyn Disk, dir: &Path, offset: i64) -> Result<()> {
    write(disk, &dir.join(RECOVERY_POINT_FILE), &[offset.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OsDisk;

    #[test]
    fn round_trip_and_malformed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = OsDisk;
        assert_eq!(read_recovery_point(&disk, dir.path()).expect("reads"), None);
        write_recovery_point(&disk, dir.path(), 1234).expect("writes");
        let text = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).expect("text");
        assert_eq!(text, "0\n1\n1234\n");
        assert_eq!(
            read_recovery_point(&disk, dir.path()).expect("reads"),
            Some(1234)
        );
        for bad in [
            "1\n1\n5\n",
            "0\n2\n5\n",
            "0\nx\n",
            "0\n1\nfive\n",
            "\u{ff}\u{fe}",
        ] {
            std::fs::write(dir.path().join(RECOVERY_POINT_FILE), bad).expect("write");
            match read_recovery_point(&disk, dir.path()) {
                Err(Error::Corrupt {
                    kind: Corruption::Metadata(_),
                    ..
                }) => {}
                other => panic!("{bad:?}: expected Corrupt, got {other:?}"),
            }
        }
        std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "").expect("write");
        assert!(
            read_recovery_point(&disk, dir.path()).is_err(),
            "an empty file has no entry"
        );
    }
}
