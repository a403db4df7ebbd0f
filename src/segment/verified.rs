//! Verified batches: where each record of a large, uncompressed batch starts, kept after the
//! batch's CRC and every record's framing were checked once, so a random read inside the batch
//! decodes one record instead of checking and walking the whole batch again.
//!
//! Kafka's fetch returns whole batches and leaves the walk to the client; a single-record read
//! by offset inside a batch of 1000 would otherwise cost the CRC of ~110 KB and half a walk on
//! every call. The table is process-wide and bounded ([`BUDGET_BYTES`], 8 bytes per record);
//! the oldest tables go first. It holds only batches that were checked whole, so a hit never
//! returns an unverified byte: keys carry the segment's process-unique id, and a segment's
//! bytes below its published size never change while the segment object lives (recovery cuts
//! files before a segment is built; compaction replaces segment objects, and their ids).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::record::{RecordCursor, RecordsMeta};

/// Memory the tables may take in all, process-wide: 16 MiB, two million records' starts.
pub(crate) const BUDGET_BYTES: usize = 16 << 20;

/// Batches with fewer records are walked on every read: a table would save little.
pub(crate) const MIN_RECORDS: i32 = 32;

/// A process-unique id for a segment object, so tables of a replaced segment never match.
pub(crate) fn next_segment_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where each record of one checked batch starts in its records section.
#[derive(Debug)]
pub(crate) struct BatchTable {
    /// Per record: its start in the records section and its offset delta.
    records: Box<[(u32, i32)]>,
}

impl BatchTable {
    /// Walks every record of `records` (a batch's bytes after its header, CRC already
    /// checked): a table only if every record decodes and nothing trails them.
    pub(crate) fn build(meta: &RecordsMeta, records: &[u8]) -> Option<BatchTable> {
        let mut cursor = RecordCursor::START;
        let mut table = Vec::with_capacity(usize::try_from(meta.records_count()).ok()?);
        // `step` ends with `None` after the last record, or an error for trailing bytes or
        // missing records.
        loop {
            let start = u32::try_from(cursor.position()).ok()?;
            match meta.step(records, &mut cursor) {
                None => break,
                Some(Ok(view)) => {
                    let delta = i32::try_from(view.offset() - meta.base_offset()).ok()?;
                    table.push((start, delta));
                }
                Some(Err(_)) => return None,
            }
        }
        Some(BatchTable {
            records: table.into_boxed_slice(),
        })
    }

    /// The cursor before the first record at or after `offset`, or `None` when every record
    /// is below it.
    pub(crate) fn cursor_for(&self, meta: &RecordsMeta, offset: i64) -> Option<RecordCursor> {
        let delta = offset.saturating_sub(meta.base_offset()).max(0);
        // Deltas run 0, 1, 2, ... unless compaction left gaps: look there first (one cache
        // miss), and search only when it is not the record.
        let direct = usize::try_from(delta).ok().filter(|&i| {
            self.records
                .get(i)
                .is_some_and(|&(_, d)| i64::from(d) == delta)
        });
        let i =
            direct.unwrap_or_else(|| self.records.partition_point(|&(_, d)| i64::from(d) < delta));
        let &(start, _) = self.records.get(i)?;
        let prev_delta = match i.checked_sub(1) {
            Some(p) => self.records.get(p).map_or(-1, |&(_, d)| i64::from(d)),
            None => -1,
        };
        Some(RecordCursor::at(
            start as usize,
            i32::try_from(i).ok()?,
            prev_delta,
        ))
    }

    fn bytes(&self) -> usize {
        self.records.len() * std::mem::size_of::<(u32, i32)>() + std::mem::size_of::<Self>()
    }
}

/// Key: segment id and the batch's position in the segment.
type Key = (u64, u64);

/// Keys are two integers the process made: a multiply-and-fold hash is enough (no
/// attacker picks them), and much cheaper than SipHash on the read path.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let folded = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = folded ^ (folded >> 29);
    }
}

#[derive(Debug, Default)]
struct Tables {
    map: HashMap<Key, Arc<BatchTable>, BuildHasherDefault<KeyHasher>>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
}

fn tables() -> &'static Mutex<Tables> {
    static TABLES: OnceLock<Mutex<Tables>> = OnceLock::new();
    TABLES.get_or_init(Mutex::default)
}

/// The table of the batch at `position` of segment `segment_id`, if it was checked before.
pub(crate) fn get(segment_id: u64, position: u64) -> Option<Arc<BatchTable>> {
    tables().lock().map.get(&(segment_id, position)).cloned()
}

/// Keeps `table` for the batch at `position`, evicting the oldest tables past the budget.
pub(crate) fn insert(segment_id: u64, position: u64, table: Arc<BatchTable>) {
    let mut t = tables().lock();
    let key = (segment_id, position);
    let added = table.bytes();
    if let Some(old) = t.map.insert(key, table) {
        t.bytes -= old.bytes();
    } else {
        t.order.push_back(key);
    }
    t.bytes += added;
    while t.bytes > BUDGET_BYTES {
        let Some(oldest) = t.order.pop_front() else {
            break;
        };
        if let Some(old) = t.map.remove(&oldest) {
            t.bytes -= old.bytes();
        }
    }
}

/// Forgets every table of a segment (its object is going away).
pub(crate) fn forget_segment(segment_id: u64) {
    let mut t = tables().lock();
    if t.map.is_empty() {
        return;
    }
    let Tables { map, order, bytes } = &mut *t;
    order.retain(|key| {
        if key.0 != segment_id {
            return true;
        }
        if let Some(old) = map.remove(key) {
            *bytes -= old.bytes();
        }
        false
    });
}

/// Memory the tables take now (for tests and reports).
#[cfg(test)]
pub(crate) fn bytes_in_use() -> usize {
    tables().lock().bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(records: usize) -> Arc<BatchTable> {
        Arc::new(BatchTable {
            records: (0..records)
                .map(|i| (i as u32 * 10, i as i32))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        })
    }

    #[test]
    fn tables_stay_within_the_budget_and_the_oldest_go_first() {
        let segment = next_segment_id();
        let per = table(1000).bytes();
        let count = BUDGET_BYTES / per + 100;
        for i in 0..count {
            insert(segment, i as u64, table(1000));
            assert!(bytes_in_use() <= BUDGET_BYTES);
        }
        assert!(get(segment, 0).is_none(), "the oldest was evicted");
        assert!(
            get(segment, count as u64 - 1).is_some(),
            "the newest is kept"
        );
        forget_segment(segment);
        assert!(get(segment, count as u64 - 1).is_none());
    }

    #[test]
    fn a_cursor_lands_on_the_first_record_at_or_after_the_offset() {
        // Offset deltas with a gap (as compaction leaves): 0, 1, 5, 6.
        let table = BatchTable {
            records: vec![(0, 0), (10, 1), (20, 5), (30, 6)].into_boxed_slice(),
        };
        let header = crate::record::BatchHeader {
            base_offset: 100,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 6,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 4,
        };
        let meta = RecordsMeta::of(&header);
        assert_eq!(
            table.cursor_for(&meta, 100),
            Some(RecordCursor::at(0, 0, -1))
        );
        assert_eq!(
            table.cursor_for(&meta, 101),
            Some(RecordCursor::at(10, 1, 0))
        );
        assert_eq!(
            table.cursor_for(&meta, 103),
            Some(RecordCursor::at(20, 2, 1))
        );
        assert_eq!(
            table.cursor_for(&meta, 106),
            Some(RecordCursor::at(30, 3, 5))
        );
        assert_eq!(table.cursor_for(&meta, 107), None);
    }
}
