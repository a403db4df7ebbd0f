//! Which segments retention deletes: Kafka's three passes, oldest segment first, whole segments
//! only, stopping at the first segment a pass keeps.
//!
//! 1. **Log start**: a segment whose successor starts at or below the log start offset holds
//!    nothing readable.
//! 2. **Size** (`retention.bytes`, -1 for none): while the partition is at least that large,
//!    the oldest segments go as long as what remains is still at least that large.
//! 3. **Time** (`retention.ms`, -1 for none): a segment goes once its largest timestamp (its
//!    file's modification time when it has none) is more than `retention.ms` old.
//!
//! The active segment may expire too; the caller then rolls a new, empty one first so the log
//! keeps its next offset. An empty last segment is never deleted.

/// What retention needs to know of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) base_offset: i64,
    /// The next segment's base offset; `None` for the last (active) segment.
    pub(crate) next_base: Option<i64>,
    pub(crate) size: u64,
    /// The largest record timestamp, or the file's modification time if it has none.
    pub(crate) largest_timestamp: i64,
}

/// The limits retention applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) log_start_offset: i64,
    pub(crate) retention_bytes: i64,
    pub(crate) retention_ms: i64,
    pub(crate) now_ms: i64,
}

/// How many of the oldest `segments` are deleted.
pub(crate) fn deletable(segments: &[SegmentInfo], limits: Limits) -> usize {
    let breached = segments
        .iter()
        .take_while(|s| {
            s.next_base
                .is_some_and(|next| next <= limits.log_start_offset)
        })
        .count();
    let mut n = breached;
    if let Ok(limit) = u64::try_from(limits.retention_bytes) {
        let total: u64 = segments[n..].iter().map(|s| s.size).sum();
        if total >= limit {
            let mut diff = total - limit;
            for s in &segments[n..] {
                if diff < s.size {
                    break;
                }
                diff -= s.size;
                n += 1;
            }
        }
    }
    if limits.retention_ms >= 0 {
        n += segments[n..]
            .iter()
            .take_while(|s| limits.now_ms.saturating_sub(s.largest_timestamp) > limits.retention_ms)
            .count();
    }
    // An empty last segment stays: the log always keeps one segment at its next offset.
    if n == segments.len() && segments.last().is_some_and(|s| s.size == 0) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: Option<i64>, size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            next_base: next,
            size,
            largest_timestamp: ts,
        }
    }

    fn log() -> Vec<SegmentInfo> {
        vec![
            seg(0, Some(10), 100, 1_000),
            seg(10, Some(20), 100, 2_000),
            seg(20, Some(30), 100, 3_000),
            seg(30, None, 50, 4_000),
        ]
    }

    fn limits(log_start: i64, bytes: i64, ms: i64, now: i64) -> Limits {
        Limits {
            log_start_offset: log_start,
            retention_bytes: bytes,
            retention_ms: ms,
            now_ms: now,
        }
    }

    #[test]
    fn nothing_is_deleted_without_limits() {
        assert_eq!(deletable(&log(), limits(0, -1, -1, i64::MAX)), 0);
    }

    #[test]
    fn log_start_deletes_segments_wholly_below_it() {
        assert_eq!(deletable(&log(), limits(9, -1, -1, 0)), 0);
        assert_eq!(deletable(&log(), limits(10, -1, -1, 0)), 1);
        assert_eq!(deletable(&log(), limits(25, -1, -1, 0)), 2);
        // The active segment has no successor: the log start never deletes it.
        assert_eq!(deletable(&log(), limits(1_000, -1, -1, 0)), 3);
    }

    #[test]
    fn size_keeps_at_least_retention_bytes() {
        // 350 bytes in all.
        assert_eq!(deletable(&log(), limits(0, 351, -1, 0)), 0);
        assert_eq!(
            deletable(&log(), limits(0, 350, -1, 0)),
            0,
            "diff 0 deletes nothing"
        );
        assert_eq!(deletable(&log(), limits(0, 250, -1, 0)), 1);
        assert_eq!(
            deletable(&log(), limits(0, 249, -1, 0)),
            1,
            "deleting two would leave 150"
        );
        assert_eq!(
            deletable(&log(), limits(0, 0, -1, 0)),
            4,
            "everything, active included"
        );
    }

    #[test]
    fn time_deletes_expired_segments_oldest_first() {
        assert_eq!(
            deletable(&log(), limits(0, -1, 1_000, 2_000)),
            0,
            "exactly 1000 old is kept"
        );
        assert_eq!(deletable(&log(), limits(0, -1, 1_000, 2_001)), 1);
        assert_eq!(
            deletable(&log(), limits(0, -1, 1_000, 5_001)),
            4,
            "the active expires too"
        );
        // A far-future timestamp blocks its segment and every later one.
        let mut blocked = log();
        blocked[1].largest_timestamp = i64::MAX;
        assert_eq!(deletable(&blocked, limits(0, -1, 1_000, 10_000)), 1);
    }

    #[test]
    fn an_empty_active_segment_is_never_deleted() {
        let mut rolled = log();
        rolled[3].size = 0;
        assert_eq!(deletable(&rolled, limits(0, -1, 0, i64::MAX)), 3);
        assert_eq!(deletable(&rolled, limits(0, 0, -1, 0)), 3);
        assert_eq!(
            deletable(&[seg(0, None, 0, -1)], limits(0, 0, 0, i64::MAX)),
            0
        );
    }
}
