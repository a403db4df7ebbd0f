//! Segments roll at Kafka's thresholds: before `segment.bytes` would be exceeded, when the
//! records span more than `segment.ms` (by record time, or by the clock when the first batch has
//! no timestamp), when the offset index is full, and when the time index is full one slot
//! early. New segments start at the log end offset and are named after it.

mod common;

use common::*;
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

fn segment_sizes(dir: &std::path::Path) -> Vec<(i64, u64)> {
    let mut logs: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let base = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            (base, std::fs::metadata(&p).unwrap().len())
        })
        .collect();
    logs.sort();
    logs
}

#[test]
fn size_based_roll_happens_before_segment_bytes_is_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let value = [9u8; 100];
    // Each one-record batch is 61 + 1 + 7 + 100 bytes + one for the 2-byte value length.
    let batch = 170;
    let config = LogConfig::builder()
        .segment_bytes(batch * 3)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    for i in 0..10 {
        log.append(Record::new(&value).with_timestamp(i)).unwrap();
    }
    log.close().unwrap();
    let sizes = segment_sizes(dir.path());
    assert_eq!(
        sizes,
        [(0, 510), (3, 510), (6, 510), (9, 170)],
        "three batches fill a segment exactly; the fourth rolls"
    );
}

#[test]
fn time_based_roll_uses_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder().segment_ms(1_000).build().unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    for ts in [0, 500, 1_000, 1_001, 1_500, 2_001, 2_002] {
        log.append(Record::new(b"v").with_timestamp(ts)).unwrap();
    }
    // Rolls when max_ts - first_ts > segment.ms: at 1001 (first 0) and at 2002 (first 1001).
    assert_eq!(log.segment_base_offsets(), [0, 3, 6]);
}

#[test]
fn time_based_roll_falls_back_to_the_clock_without_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(10_000);
    let config = LogConfig::builder()
        .segment_ms(1_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    log.append(Record::new(b"a").with_timestamp(-1)).unwrap();
    clock.set(10_900);
    log.append(Record::new(b"b").with_timestamp(-1)).unwrap();
    assert_eq!(log.segment_base_offsets(), [0]);
    clock.set(11_001);
    log.append(Record::new(b"c").with_timestamp(-1)).unwrap();
    assert_eq!(log.segment_base_offsets(), [0, 2]);
}

#[test]
fn a_full_offset_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    // 64-byte index: 8 offset entries, 5 time entries (so the time index fills first, one
    // slot early); interval 0: every batch after the first adds entries.
    let config = LogConfig::builder()
        .segment_index_bytes(64)
        .index_interval_bytes(0)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    for i in 0..20 {
        log.append(Record::new(b"v").with_timestamp(i)).unwrap();
    }
    // Batch 0 adds no entry; batches 1..=4 add 4 time entries = max 5 - 1: full, so batch 5
    // starts a new segment.
    assert_eq!(log.segment_base_offsets(), [0, 5, 10, 15]);
    log.close().unwrap();
    let index = std::fs::metadata(dir.path().join("00000000000000000000.index"))
        .unwrap()
        .len();
    let time_index = std::fs::metadata(dir.path().join("00000000000000000000.timeindex"))
        .unwrap()
        .len();
    assert_eq!(
        (index, time_index),
        (4 * 8, 4 * 12),
        "trimmed to their entries"
    );
}

#[test]
fn a_full_offset_index_rolls_when_timestamps_do_not_rise() {
    let dir = tempfile::tempdir().unwrap();
    // Constant timestamps add only one time entry, so the offset index (3 entries) fills.
    let config = LogConfig::builder()
        .segment_index_bytes(24)
        .index_interval_bytes(0)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    for _ in 0..12 {
        log.append(Record::new(b"v").with_timestamp(7)).unwrap();
    }
    // Time index holds 2 entries, so it is full after 1: batch 0 none, batch 1 adds one.
    assert_eq!(log.segment_base_offsets(), [0, 2, 4, 6, 8, 10]);
}

#[test]
fn rolled_segments_are_named_after_their_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), small_config(1024)).unwrap();
    append_range(&log, 0, 100);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let on_disk: Vec<i64> = segment_sizes(dir.path()).iter().map(|(b, _)| *b).collect();
    assert_eq!(on_disk, bases);
    for (i, base) in bases.iter().enumerate() {
        let first = read_all(
            &Partition::open(dir.path(), small_config(1024)).unwrap(),
            *base,
        );
        assert_eq!(
            first[0].offset, *base,
            "segment {i} starts at its base offset"
        );
    }
}

#[test]
fn offsets_the_segment_cannot_express_roll_it() {
    use topiclog::record::{BatchParams, encode_batch};
    // A segment based at 0 whose batch sits just below base + i32::MAX, as compaction can leave.
    let dir = tempfile::tempdir().unwrap();
    let near = i64::from(i32::MAX) - 2;
    let mut bytes = Vec::new();
    let params = BatchParams {
        base_offset: near,
        ..BatchParams::default()
    };
    encode_batch(
        &mut bytes,
        &params,
        &[Record::new(b"old").with_timestamp(0)],
        0,
    )
    .unwrap();
    std::fs::write(dir.path().join("00000000000000000000.log"), bytes).unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.next_offset(), near + 1);
    // Offsets near+1 ..= near+2 still fit (relative i32::MAX); near+3 would not.
    log.append_batch(&[
        Record::new(b"a").with_timestamp(0),
        Record::new(b"b").with_timestamp(0),
    ])
    .unwrap();
    assert_eq!(log.segment_base_offsets(), [0]);
    assert_eq!(
        log.append(Record::new(b"c").with_timestamp(0)).unwrap(),
        near + 3
    );
    assert_eq!(log.segment_base_offsets(), [0, near + 3]);
    let offsets: Vec<i64> = log.read(0).unwrap().map(|r| r.unwrap().offset()).collect();
    assert_eq!(offsets, [near, near + 1, near + 2, near + 3]);
}
