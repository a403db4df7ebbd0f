//! A partition's aborted transactions: every `.txnindex` entry of its segments, held in
//! memory so that a `read_committed` reader tells an aborted batch from a committed one with
//! one lookup, and written to the `.txnindex` file of the segment holding each ABORT marker
//! (see [`crate::segment::txn_index`]).
//!
//! Opening loads the files, then replaces what lies in the replayed part of the log (from the
//! producer-state snapshot on, which covers whatever recovery scanned or cut) with the entries
//! the replay found, rewriting those files if they differ. A file that does not decode is
//! rebuilt from the log.

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::Arc;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::Result;
use crate::record::TxnResult;
use crate::segment::Segment;
use crate::segment::file_name::{self, FileKind};
use crate::segment::txn_index::{self, AbortedTxn};

use super::manifest::TxnIndexStamp;
use super::producer_state::{ProducerStateMap, walk_headers};

/// The aborted transactions of a partition, by marker and by producer.
#[derive(Debug, Default)]
pub(crate) struct AbortedTxns {
    /// Marker offset → entry.
    by_marker: BTreeMap<i64, AbortedTxn>,
    /// (producer id, marker offset) → first offset.
    by_producer: BTreeMap<(i64, i64), i64>,
}

impl AbortedTxns {
    /// Adds an entry (replacing one at the same marker offset).
    pub(crate) fn insert(&mut self, entry: AbortedTxn) {
        if let Some(old) = self.by_marker.insert(entry.last_offset, entry) {
            self.by_producer.remove(&(old.producer_id, old.last_offset));
        }
        self.by_producer
            .insert((entry.producer_id, entry.last_offset), entry.first_offset);
    }

    /// Whether a transactional batch of `producer_id` at `offset` belongs to an aborted
    /// transaction: the producer's first abort marker at or after `offset` covers it.
    pub(crate) fn covers(&self, producer_id: i64, offset: i64) -> bool {
        self.by_producer
            .range((producer_id, offset)..=(producer_id, i64::MAX))
            .next()
            .is_some_and(|(_, &first)| first <= offset)
    }

    /// The entries whose markers lie in `markers`, in marker order.
    pub(crate) fn in_range(&self, markers: Range<i64>) -> Vec<AbortedTxn> {
        if markers.start >= markers.end {
            return Vec::new();
        }
        self.by_marker.range(markers).map(|(_, &e)| e).collect()
    }

    /// Forgets the entries whose markers lie in `markers`.
    pub(crate) fn remove_range(&mut self, markers: Range<i64>) {
        for e in self.in_range(markers) {
            self.by_marker.remove(&e.last_offset);
            self.by_producer.remove(&(e.producer_id, e.last_offset));
        }
    }

    /// How many entries there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_marker.len()
    }
}

/// Appends `entry` to the `.txnindex` of `segment` (the one holding its marker), creating the
/// file if needed; fsynced with `durable`.
pub(crate) fn append_entry(
    disk: &dyn Disk,
    segment: &Segment,
    entry: &AbortedTxn,
    durable: bool,
) -> Result<()> {
    let path = segment.path(FileKind::TxnIndex);
    let file = File::open(disk, path, OpenMode::Create)?;
    let len = file.len()?;
    // Whole entries only: a torn tail left by a crash is overwritten.
    let at = len - len % txn_index::ENTRY_BYTES as u64;
    let mut bytes = Vec::with_capacity(txn_index::ENTRY_BYTES);
    entry.encode(&mut bytes);
    // A torn tail is shorter than an entry: this write covers it.
    file.write_all_at(&bytes, at)?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// What loading the segments' `.txnindex` files found.
#[derive(Debug, Default)]
pub(crate) struct LoadedIndexes {
    pub(crate) aborted: AbortedTxns,
    /// Files that did not decode, with why: their entries must be rebuilt from the log.
    pub(crate) damaged: Vec<(std::path::PathBuf, String)>,
}

/// Reads the `.txnindex` file of every segment that has one. A file that does not decode,
/// or differs from what the segment's record says it held (`recorded`: its length and CRC,
/// an absent file being empty), is listed as damaged.
pub(crate) fn load_files(
    disk: &dyn Disk,
    dir: &Path,
    segments: &[Arc<Segment>],
    recorded: &BTreeMap<i64, TxnIndexStamp>,
) -> Result<LoadedIndexes> {
    let with_file = file_name::bases_of(disk, dir, FileKind::TxnIndex)?;
    let mut loaded = LoadedIndexes::default();
    for segment in segments {
        let base = segment.base_offset();
        let path = segment.path(FileKind::TxnIndex);
        let bytes = match with_file.contains(&base) {
            true => File::open(disk, path.clone(), OpenMode::Read)?.read_all()?,
            false => Vec::new(),
        };
        if let Some(want) = recorded.get(&base)
            && TxnIndexStamp::of(&bytes) != *want
        {
            let why = format!(
                "holds {} bytes (CRC-32C {:#010x}), not the {} bytes (CRC-32C {:#010x}) recorded",
                bytes.len(),
                crate::crc::crc32c(&bytes),
                want.len,
                want.crc
            );
            loaded.damaged.push((path, why));
            continue;
        }
        if bytes.is_empty() {
            continue;
        }
        match txn_index::decode(&bytes, segment.base_offset(), segment.next_offset()) {
            Ok(entries) => entries.into_iter().for_each(|e| loaded.aborted.insert(e)),
            Err(fault) => loaded.damaged.push((path, fault.to_string())),
        }
    }
    Ok(loaded)
}

/// Rewrites the `.txnindex` of each segment overlapping `markers` to hold exactly the
/// entries `aborted` has for it (removing the file when it has none), where the file differs.
/// Returns the files rewritten.
pub(crate) fn write_files(
    disk: &dyn Disk,
    segments: &[Arc<Segment>],
    aborted: &AbortedTxns,
    markers: Range<i64>,
) -> Result<Vec<std::path::PathBuf>> {
    let mut rewritten = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let end = segments
            .get(i + 1)
            .map_or(i64::MAX, |next| next.base_offset());
        if end <= markers.start || segment.base_offset() >= markers.end {
            continue;
        }
        let wanted = txn_index::encode_all(&aborted.in_range(segment.base_offset()..end));
        let path = segment.path(FileKind::TxnIndex);
        let present = match disk::file_len(disk, &path)? {
            Some(_) => Some(File::open(disk, path.clone(), OpenMode::Read)?.read_all()?),
            None => None,
        };
        match (present, wanted.is_empty()) {
            (None, true) => {}
            (Some(bytes), false) if bytes == wanted => {}
            (Some(_), true) => {
                disk::remove_file(disk, &path)?;
                rewritten.push(path);
            }
            (_, false) => {
                disk::write_atomic(disk, &path, &wanted)?;
                rewritten.push(path);
            }
        }
    }
    Ok(rewritten)
}

/// Brings the entries loaded from the files in line with the log: a damaged file's segment is
/// rebuilt by walking the log; from `replay.0` (where the producer-state replay started,
/// covering whatever recovery scanned or cut) the entries are the replay's own (`replay.1`).
/// Files that no longer match are rewritten, unless the disk is read-only. Returns the files
/// rewritten, and logs the damaged ones.
pub(crate) fn reconcile(
    disk: &dyn Disk,
    segments: &[Arc<Segment>],
    loaded: &mut LoadedIndexes,
    replay: Option<(i64, Vec<AbortedTxn>)>,
) -> Result<Vec<std::path::PathBuf>> {
    let mut changed: Option<i64> = None;
    let bases: Vec<i64> = segments.iter().map(|s| s.base_offset()).collect();
    let damaged_bases: Vec<usize> = loaded
        .damaged
        .iter()
        .filter_map(|(path, _)| {
            let name = path.file_name()?.to_str()?;
            let base = file_name::parse(name)?.base_offset;
            bases.iter().position(|&b| b == base)
        })
        .collect();
    if let (Some(&lo), Some(&hi)) = (damaged_bases.iter().min(), damaged_bases.iter().max()) {
        for (path, why) in &loaded.damaged {
            log::warn!("{}: {why}; rebuilding it from the log", path.display());
        }
        let start = bases.get(lo).copied().unwrap_or(0);
        let end = bases.get(hi + 1).copied().unwrap_or(i64::MAX);
        loaded.aborted.remove_range(start..end);
        for entry in scan_aborted(segments, start..end)? {
            loaded.aborted.insert(entry);
        }
        changed = Some(start);
    }
    if let Some((from, entries)) = replay {
        loaded.aborted.remove_range(from..i64::MAX);
        for entry in entries {
            loaded.aborted.insert(entry);
        }
        changed = Some(changed.map_or(from, |c| c.min(from)));
    }
    match changed {
        Some(from) if !disk.is_read_only() => {
            write_files(disk, segments, &loaded.aborted, from..i64::MAX)
        }
        _ => Ok(Vec::new()),
    }
}

/// The aborted transactions whose markers lie in `markers`, found by walking the log from its
/// start (the first offsets of transactions begun before `markers` are needed too): what a
/// damaged `.txnindex` is rebuilt from.
pub(crate) fn scan_aborted(
    segments: &[Arc<Segment>],
    markers: Range<i64>,
) -> Result<Vec<AbortedTxn>> {
    let mut state = ProducerStateMap::default();
    let mut found = Vec::new();
    for segment in segments {
        if segment.base_offset() >= markers.end {
            break;
        }
        walk_headers(segment, 0, |_, header, marker| {
            if let Some(done) = state.replay(header, marker)
                && done.result == TxnResult::Abort
                && markers.contains(&done.last_offset)
            {
                found.push(state.aborted_entry(&done));
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn covers_the_batches_between_first_offset_and_marker_of_that_producer() {
        let mut a = AbortedTxns::default();
        a.insert(txn(1, 10, 20));
        a.insert(txn(1, 30, 31));
        a.insert(txn(2, 5, 40));
        assert!(a.covers(1, 10) && a.covers(1, 19) && a.covers(1, 30));
        assert!(!a.covers(1, 9) && !a.covers(1, 21) && !a.covers(1, 29) && !a.covers(1, 32));
        assert!(a.covers(2, 5) && a.covers(2, 25) && !a.covers(2, 41) && !a.covers(3, 10));
        assert_eq!(a.in_range(20..31), [txn(1, 10, 20)]);
        a.remove_range(0..31);
        assert_eq!(a.len(), 2);
        assert!(!a.covers(1, 15) && a.covers(1, 30));
        // The same marker offset again replaces the entry.
        a.insert(txn(3, 35, 40));
        assert_eq!(a.len(), 2);
        assert!(!a.covers(2, 25) && a.covers(3, 36));
    }
}
