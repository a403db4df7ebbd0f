//! Segment file names: `{base offset:020}.{log,index,timeindex}`, as Kafka's `LogFileUtils`
//! writes them, plus the temporary suffixes Kafka appends (`.deleted`, `.cleaned`, `.swap`).

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::{Path, PathBuf};

/// The files of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    /// `.log`: record batches.
    Log,
    /// `.index`: offset index.
    Index,
    /// `.timeindex`: time index.
    TimeIndex,
    /// `.txnindex`: Kafka's aborted-transaction index.
    TxnIndex,
    /// `.snapshot`: Kafka's producer-state snapshot.
    Snapshot,
}

/// The files of a segment, in the order they are renamed into place: the indexes first and
/// the `.log` last, so that a `.log` under a name means its indexes are there too.
pub(crate) const SEGMENT_FILES: [FileKind; 4] = [
    FileKind::Index,
    FileKind::TimeIndex,
    FileKind::TxnIndex,
    FileKind::Log,
];

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            FileKind::Log => "log",
            FileKind::Index => "index",
            FileKind::TimeIndex => "timeindex",
            FileKind::TxnIndex => "txnindex",
            FileKind::Snapshot => "snapshot",
        }
    }
}

/// A suffix Kafka appends to a file name while the file is in transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TempSuffix {
    /// `.deleted`: scheduled for deletion.
    Deleted,
    /// `.cleaned`: a replacement being written.
    Cleaned,
    /// `.swap`: a replacement about to be swapped in.
    Swap,
}

/// A parsed segment file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentFileName {
    pub(crate) base_offset: i64,
    pub(crate) kind: FileKind,
    pub(crate) suffix: Option<TempSuffix>,
}

/// The file name of a segment file: the base offset as 20 zero-padded digits, then the extension.
pub(crate) fn file_name(base_offset: i64, kind: FileKind) -> String {
    format!("{base_offset:020}.{}", kind.extension())
}

/// The path of a segment file in `dir`.
pub(crate) fn file_path(dir: &Path, base_offset: i64, kind: FileKind) -> PathBuf {
    dir.join(file_name(base_offset, kind))
}

impl TempSuffix {
    /// The suffix as it ends a file name, dot included.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            TempSuffix::Deleted => ".deleted",
            TempSuffix::Cleaned => ".cleaned",
            TempSuffix::Swap => ".swap",
        }
    }
}

/// The path of a segment file in transit: [`file_path`] with `suffix` appended.
pub(crate) fn temp_path(
    dir: &Path,
    base_offset: i64,
    kind: FileKind,
    suffix: TempSuffix,
) -> PathBuf {
    let mut name = file_path(dir, base_offset, kind).into_os_string();
    name.push(suffix.extension());
    PathBuf::from(name)
}

/// Parses a segment file name; `None` for anything else (such files are left alone).
pub(crate) fn parse(name: &str) -> Option<SegmentFileName> {
    let (digits, rest) = name.split_once('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base_offset: i64 = digits.parse().ok()?;
    let (extension, suffix) = match rest.split_once('.') {
        None => (rest, None),
        Some((ext, "deleted")) => (ext, Some(TempSuffix::Deleted)),
        Some((ext, "cleaned")) => (ext, Some(TempSuffix::Cleaned)),
        Some((ext, "swap")) => (ext, Some(TempSuffix::Swap)),
        Some(_) => return None,
    };
    let kind = match extension {
        "log" => FileKind::Log,
        "index" => FileKind::Index,
        "timeindex" => FileKind::TimeIndex,
        "txnindex" => FileKind::TxnIndex,
        "snapshot" => FileKind::Snapshot,
        _ => return None,
    };
    Some(SegmentFileName {
        base_offset,
        kind,
        suffix,
    })
}

/// The base offsets of the files of `kind` (without a temporary suffix) in `dir`.
pub(crate) fn bases_of(
    disk: &dyn crate::disk::Disk,
    dir: &Path,
    kind: FileKind,
) -> crate::error::Result<std::collections::BTreeSet<i64>> {
    let mut bases = std::collections::BTreeSet::new();
    for entry in crate::disk::list_dir(disk, dir)? {
        let parsed = entry
            .name
            .to_str()
            .filter(|_| entry.is_file)
            .and_then(parse);
        if let Some(p) = parsed.filter(|p| p.kind == kind && p.suffix.is_none()) {
            bases.insert(p.base_offset);
        }
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(1234, FileKind::Log), "00000000000000001234.log");
        assert_eq!(
            file_name(0, FileKind::TimeIndex),
            "00000000000000000000.timeindex"
        );
        assert_eq!(
            file_name(i64::MAX, FileKind::Index),
            "09223372036854775807.index"
        );
        for kind in [
            FileKind::Log,
            FileKind::Index,
            FileKind::TimeIndex,
            FileKind::TxnIndex,
            FileKind::Snapshot,
        ] {
            for base in [0, 1, 1234, i64::MAX] {
                let parsed = parse(&file_name(base, kind)).expect("parses");
                assert_eq!(
                    parsed,
                    SegmentFileName {
                        base_offset: base,
                        kind,
                        suffix: None
                    }
                );
            }
        }
    }

    #[test]
    fn suffixes_and_strangers() {
        let p = parse("00000000000000000042.index.swap").expect("parses");
        assert_eq!(
            (p.base_offset, p.kind, p.suffix),
            (42, FileKind::Index, Some(TempSuffix::Swap))
        );
        assert_eq!(
            parse("00000000000000000042.log.deleted").map(|p| p.suffix),
            Some(Some(TempSuffix::Deleted))
        );
        for name in [
            "leader-epoch-checkpoint",
            "partition.metadata",
            "42.log",
            "0000000000000000004x.log",
            "00000000000000000042.log.bak",
            "00000000000000000042.txt",
            "99999999999999999999.log", // beyond i64
            ".DS_Store",
            "",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }
}
