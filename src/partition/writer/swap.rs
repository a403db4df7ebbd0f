//! Swapping a cleaned segment in for the segments it replaces: Kafka's `replaceSegments`
//! protocol, with a directory fsync after each step so that a crash or power loss leaves one
//! of the states recovery knows how to finish or undo:
//!
//! 0. the new segment's files are written as `.cleaned` and fsynced (by the cleaner); the
//!    recovery checkpoint stops listing the old segments, so whichever set a crash leaves is
//!    scanned, not trusted on its recorded lengths;
//! 1. `.cleaned` → `.swap` (indexes first, the `.log` last: a `.log.swap` means all are);
//! 2. the old segments' files → `.deleted` (readers inside them read on);
//! 3. `.swap` → final names (indexes first, the `.log` last).
//!
//! Recovery deletes `.cleaned` files and a `.swap` without its `.log.swap` (undo), and for a
//! `.log.swap` removes the segments it covers and renames it into place (finish).

use std::sync::Arc;

use crate::cleaner::rewrite::Cleaned;
use crate::disk;
use crate::error::{Error, Result};
use crate::segment::file_name::{self, FileKind, TempSuffix};
use crate::segment::{Access, Segment};

use super::super::Shared;
use super::super::manifest::SegmentRecord;
use super::Writer;

/// How a swap ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Swapped {
    /// The cleaned segment is in the log.
    Done,
    /// The log changed under the cleaner (retention removed a source, or a replaced segment
    /// at the same base is still held by a reader): nothing changed, the `.cleaned` files are
    /// gone, and the next pass tries again.
    Deferred,
}

impl Writer {
    /// Replaces `cleaned.sources`, sealed segments still in the log, with the segment written
    /// as `.cleaned` files.
    pub(crate) fn swap_cleaned(&mut self, shared: &Shared, cleaned: Cleaned) -> Result<Swapped> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        let disk = &*shared.disk;
        let dir = &shared.dir;
        let base = cleaned.base_offset;
        let segments = shared.segments();
        let start = cleaned
            .sources
            .first()
            .and_then(|first| segments.iter().position(|s| Arc::ptr_eq(s, first)));
        let n = cleaned.sources.len();
        let in_place = start.is_some_and(|start| {
            // The active segment stays after them.
            start + n < segments.len()
                && segments[start..start + n]
                    .iter()
                    .zip(&cleaned.sources)
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        });
        let deleted_held = disk::file_len(
            disk,
            &file_name::temp_path(dir, base, FileKind::Log, TempSuffix::Deleted),
        )?
        .is_some();
        let (Some(start), true, false) = (start, in_place, deleted_held) else {
            for kind in file_name::SEGMENT_FILES {
                let path = file_name::temp_path(dir, base, kind, TempSuffix::Cleaned);
                disk::remove_file(disk, &path)?;
            }
            return Ok(Swapped::Deferred);
        };
        self.prepare(shared)?;
        // Written out first: nothing unflushed may precede the directory syncs below.
        self.flush(shared)?;
        let bases: Vec<i64> = cleaned.sources.iter().map(|s| s.base_offset()).collect();
        self.ledger.removed(shared, &self.appender, &bases)?;
        // A segment without aborted transactions has no `.txnindex`.
        let kinds: Vec<FileKind> = file_name::SEGMENT_FILES
            .into_iter()
            .filter(|&kind| {
                kind != FileKind::TxnIndex
                    || disk::file_len(
                        disk,
                        &file_name::temp_path(dir, base, kind, TempSuffix::Cleaned),
                    )
                    .is_ok_and(|len| len.is_some())
            })
            .collect();
        for &kind in &kinds {
            let from = file_name::temp_path(dir, base, kind, TempSuffix::Cleaned);
            let to = file_name::temp_path(dir, base, kind, TempSuffix::Swap);
            disk::rename(disk, &from, &to)?;
        }
        disk::sync_dir(disk, dir)?;
        for source in &cleaned.sources {
            source.mark_deleted()?;
        }
        disk::sync_dir(disk, dir)?;
        for &kind in &kinds {
            let from = file_name::temp_path(dir, base, kind, TempSuffix::Swap);
            disk::rename(disk, &from, &file_name::file_path(dir, base, kind))?;
        }
        disk::sync_dir(disk, dir)?;
        let segment = Segment::open(
            &shared.disk,
            dir,
            base,
            cleaned.state,
            Some(cleaned.indexes),
            self.config.index_interval_bytes(),
            Access::Writable,
        )?;
        segment.seal();
        let segment = Arc::new(segment);
        shared
            .segments
            .write()
            .splice(start..start + n, [Arc::clone(&segment)]);
        let record = SegmentRecord::of(disk, &segment)?;
        self.ledger.added(shared, &self.appender, record)?;
        Ok(Swapped::Done)
    }
}
