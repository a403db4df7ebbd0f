//! What topiclog records about a segment to trust it later without reading it: its file
//! lengths and the offsets and timestamps a scan would find. The clean-shutdown marker holds
//! one record per segment; the recovery checkpoint holds one per flushed segment.
//!
//! A record is one line of space-separated integers:
//! `<base> <log bytes> <index bytes> <timeindex bytes> <next offset> <max timestamp> <offset of max timestamp> <txnindex bytes> <txnindex crc32c>`.
//! The last two (the `.txnindex`'s length, 0 without one, and the CRC-32C of its bytes) are
//! absent from records written before transactions: a `.txnindex` that no longer matches its
//! record is rebuilt from the log rather than trusted (a lost or altered entry would show an
//! aborted transaction's records to `read_committed` readers).

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::Path;

use crate::disk::{self, Disk};
use crate::error::Result;
use crate::segment::file_name::{self, FileKind};
use crate::segment::{Segment, SegmentState};

/// What is known of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentRecord {
    pub(crate) base_offset: i64,
    pub(crate) index_bytes: u64,
    pub(crate) time_index_bytes: u64,
    pub(crate) state: SegmentState,
    /// The `.txnindex` as recorded (`None` in records from before transactions).
    pub(crate) txn_index: Option<TxnIndexStamp>,
}

/// A `.txnindex` file's length (0 when there is none) and the CRC-32C of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnIndexStamp {
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

impl TxnIndexStamp {
    /// The stamp of the file at `path` (an absent file is empty).
    pub(crate) fn of_file(disk: &dyn Disk, path: &Path) -> Result<TxnIndexStamp> {
        let bytes = match disk::file_len(disk, path)? {
            Some(_) => {
                disk::File::open(disk, path.to_path_buf(), disk::OpenMode::Read)?.read_all()?
            }
            None => Vec::new(),
        };
        Ok(TxnIndexStamp::of(&bytes))
    }

    /// The stamp of a file holding `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> TxnIndexStamp {
        TxnIndexStamp {
            len: bytes.len() as u64,
            crc: crate::crc::crc32c(bytes),
        }
    }
}

impl SegmentRecord {
    /// The record of `segment` as it stands, with its index files' current lengths.
    pub(crate) fn of(disk: &dyn Disk, segment: &Segment) -> Result<SegmentRecord> {
        let len = |kind| disk::file_len(disk, &segment.path(kind)).map(Option::unwrap_or_default);
        Ok(SegmentRecord {
            base_offset: segment.base_offset(),
            index_bytes: len(FileKind::Index)?,
            time_index_bytes: len(FileKind::TimeIndex)?,
            state: segment.state(),
            txn_index: Some(TxnIndexStamp::of_file(
                disk,
                &segment.path(FileKind::TxnIndex),
            )?),
        })
    }

    /// The record as one line (no newline).
    pub(crate) fn to_line(self) -> String {
        let s = &self.state;
        let mut line = format!(
            "{} {} {} {} {} {} {}",
            self.base_offset,
            s.size,
            self.index_bytes,
            self.time_index_bytes,
            s.next_offset,
            s.max_timestamp,
            s.offset_of_max_timestamp
        );
        if let Some(t) = self.txn_index {
            line.push_str(&format!(" {} {}", t.len, t.crc));
        }
        line
    }

    /// Parses a record from its fields.
    pub(crate) fn parse<'a>(
        fields: impl IntoIterator<Item = &'a str>,
    ) -> std::result::Result<SegmentRecord, &'static str> {
        let f: Vec<i64> = fields
            .into_iter()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| "malformed segment record")?;
        let (fields, txn_index) = match f.as_slice() {
            [head @ .., len, crc] if f.len() == 9 => {
                let (Ok(len), Ok(crc)) = (u64::try_from(*len), u32::try_from(*crc)) else {
                    return Err("malformed txnindex fields in segment record");
                };
                (head, Some(TxnIndexStamp { len, crc }))
            }
            all => (all, None),
        };
        let &[
            base_offset,
            size,
            index_bytes,
            time_index_bytes,
            next_offset,
            max_timestamp,
            offset_of_max,
        ] = fields
        else {
            return Err("malformed segment record");
        };
        let unsigned = |v: i64| u64::try_from(v).map_err(|_| "negative length in segment record");
        if next_offset < base_offset {
            return Err("segment record ends before its base offset");
        }
        Ok(SegmentRecord {
            base_offset,
            index_bytes: unsigned(index_bytes)?,
            time_index_bytes: unsigned(time_index_bytes)?,
            state: SegmentState {
                size: unsigned(size)?,
                next_offset,
                max_timestamp,
                offset_of_max_timestamp: offset_of_max,
            },
            txn_index,
        })
    }

    /// Whether the segment's three files have the recorded lengths; `Err` says which does not.
    pub(crate) fn check_files(
        &self,
        disk: &dyn Disk,
        dir: &Path,
    ) -> std::result::Result<(), String> {
        let expected = [
            (FileKind::Log, self.state.size),
            (FileKind::Index, self.index_bytes),
            (FileKind::TimeIndex, self.time_index_bytes),
        ];
        for (kind, len) in expected {
            let path = file_name::file_path(dir, self.base_offset, kind);
            match disk::file_len(disk, &path) {
                Ok(Some(actual)) if actual == len => {}
                Ok(found) => {
                    return Err(format!(
                        "{} has {found:?} bytes, {len} recorded",
                        path.display()
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_reject_garbage() {
        let record = SegmentRecord {
            base_offset: 10,
            index_bytes: 16,
            time_index_bytes: 24,
            state: SegmentState {
                size: 4096,
                next_offset: 20,
                max_timestamp: -1,
                offset_of_max_timestamp: 10,
            },
            txn_index: None,
        };
        let line = record.to_line();
        assert_eq!(line, "10 4096 16 24 20 -1 10");
        assert_eq!(SegmentRecord::parse(line.split(' ')), Ok(record));
        let stamped = SegmentRecord {
            txn_index: Some(TxnIndexStamp::of(&[1; 34])),
            ..record
        };
        let line = stamped.to_line();
        assert!(line.starts_with("10 4096 16 24 20 -1 10 34 "), "{line}");
        assert_eq!(SegmentRecord::parse(line.split(' ')), Ok(stamped));
        for bad in [
            "",
            "1 2 3",
            "10 4096 16 24 20 -1 10 9",
            "10 4096 16 24 20 -1 10 -1 5",
            "10 4096 16 24 20 -1 10 34 -5",
            "10 4096 16 24 20 -1 10 34 5 6",
            "10 -1 16 24 20 -1 10",
            "10 0 0 0 9 -1 10",
            "a b c d e f g",
        ] {
            assert!(
                SegmentRecord::parse(bad.split_whitespace()).is_err(),
                "{bad:?}"
            );
        }
    }
}
