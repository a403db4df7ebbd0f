//! Index files follow Kafka's rules: an offset entry `(last offset of the batch, its position)`
//! once more than `index.interval.bytes` were written since the last, a time entry when the
//! running maximum timestamp rose, a final time entry holding the segment's largest timestamp,
//! and lookups by timestamp answer Kafka's ListOffsets: the first record whose timestamp is at
//! or after the target.

mod common;

use common::*;
use proptest::prelude::*;
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::{Batches, Record};

fn entries(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    bytes.chunks_exact(size).collect()
}

#[test]
fn offset_index_entries_point_at_batches_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let interval = 1000;
    let config = LogConfig::builder()
        .index_interval_bytes(interval)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    append_range(&log, 0, 300);
    log.close().unwrap();
    let data = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
    let index = std::fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    let time_index = std::fs::read(dir.path().join("00000000000000000000.timeindex")).unwrap();

    // Replay Kafka's rule over the batches and compare with the file.
    let mut expected = Vec::new();
    let mut since = 0usize;
    let mut pos = 0usize;
    for batch in Batches::new(&data) {
        let batch = batch.unwrap();
        if since > interval as usize {
            expected.extend_from_slice(&(batch.header().last_offset() as i32).to_be_bytes());
            expected.extend_from_slice(&(pos as i32).to_be_bytes());
            since = 0;
        }
        since += batch.size();
        pos += batch.size();
    }
    assert!(expected.len() >= 8 * 5, "several entries");
    assert_eq!(index, expected);

    // Time entries: strictly increasing, the last one the segment's largest timestamp.
    let times: Vec<(i64, i32)> = entries(&time_index, 12)
        .iter()
        .map(|e| {
            (
                i64::from_be_bytes(e[..8].try_into().unwrap()),
                i32::from_be_bytes(e[8..].try_into().unwrap()),
            )
        })
        .collect();
    assert!(
        times
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(
        times.last(),
        Some(&(299_000, 299)),
        "final entry holds the max timestamp"
    );
}

#[test]
fn timestamp_lookup_matches_kafkas_segment_test() {
    // LogSegmentTest.testFindOffsetByTimestamp: record i has timestamp 10 * i, offsets 40..49.
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(
        dir.path(),
        LogConfig::builder()
            .index_interval_bytes(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    for i in 0..40 {
        log.append(Record::new(b"filler").with_timestamp(i))
            .unwrap();
    }
    for i in 40..50 {
        log.append(Record::new(b"v").with_timestamp(10 * i))
            .unwrap();
    }
    let find = |t| log.offset_for_timestamp(t).unwrap().map(|x| x.offset);
    assert_eq!(find(420), Some(42));
    assert_eq!(find(421), Some(43));
    assert_eq!(find(401), Some(41));
    assert_eq!(find(399), Some(40));
    assert_eq!(find(491), None);
    assert_eq!(find(i64::MIN), Some(0));
    assert_eq!(
        log.offset_for_timestamp(490).unwrap().map(|x| x.timestamp),
        Some(490)
    );
}

/// The first offset whose timestamp is >= target, by brute force.
fn expected(timestamps: &[i64], target: i64) -> Option<i64> {
    timestamps
        .iter()
        .position(|&t| t >= target)
        .map(|i| i as i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Out-of-order CreateTime timestamps, batches, several segments, before and after reopen.
    #[test]
    fn timestamp_lookup_finds_the_first_record_at_or_after(
        batches in prop::collection::vec(prop::collection::vec(0i64..5_000, 1..8), 1..60),
        targets in prop::collection::vec(-10i64..5_100, 20),
        clean in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::builder().segment_bytes(1_500).index_interval_bytes(100).build().unwrap();
        let log = Partition::open(dir.path(), config.clone()).unwrap();
        let mut timestamps = Vec::new();
        for batch in &batches {
            let records: Vec<Record<'_>> = batch.iter().map(|&t| Record::new(b"0123456789").with_timestamp(t)).collect();
            log.append_batch(&records).unwrap();
            timestamps.extend_from_slice(batch);
        }
        for &t in &targets {
            let found = log.offset_for_timestamp(t).unwrap();
            prop_assert_eq!(found.map(|x| x.offset), expected(&timestamps, t), "target {}", t);
            if let Some(x) = found {
                prop_assert_eq!(x.timestamp, timestamps[x.offset as usize]);
            }
        }
        if clean { log.close().unwrap(); }
        drop(log);
        let log = Partition::open(dir.path(), config).unwrap();
        for &t in &targets {
            prop_assert_eq!(log.offset_for_timestamp(t).unwrap().map(|x| x.offset), expected(&timestamps, t));
        }
    }
}

/// Regression (found by the property test above): a time-index entry names the *last* offset
/// of the batch that reached its timestamp, and the record carrying that timestamp may come
/// earlier in the batch. The search must start at that batch, not skip to the named offset.
#[test]
fn timestamp_lookup_finds_a_record_earlier_in_the_indexed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .index_interval_bytes(100)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    let v = b"0123456789";
    log.append_batch(&[
        Record::new(v).with_timestamp(4160),
        Record::new(v).with_timestamp(0),
    ])
    .unwrap();
    log.append_batch(&[Record::new(v).with_timestamp(0)])
        .unwrap();
    // The time index now holds (4160, offset 1), the batch's last offset.
    for target in [1, 4160] {
        let found = log.offset_for_timestamp(target).unwrap();
        assert_eq!(
            found.map(|x| (x.offset, x.timestamp)),
            Some((0, 4160)),
            "target {target}"
        );
    }
}

/// A random read passes the batch its index seek lands on by framing alone when that batch lies
/// wholly before the target. Framing can be forged by a bad index entry pointing into record
/// bytes: until a batch after the seek passes its CRC, a bad batch must still send the read
/// back to a rebuilt index, not end it with `Corrupt`.
#[test]
fn an_index_entry_pointing_at_forged_framing_is_distrusted_until_a_batch_passes_its_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        LogConfig::builder()
            .segment_bytes(1 << 20)
            .index_interval_bytes(4096)
            .build()
            .unwrap()
    };
    {
        let log = Partition::open(dir.path(), config()).unwrap();
        for b in 0..12 {
            append_batch_range(&log, b * 100, (b + 1) * 100);
        }
        log.close().unwrap();
    }
    let log_path = segment_path(dir.path(), 0, "log");
    let index_path = segment_path(dir.path(), 0, "index");
    let spans = batch_spans(&log_path);
    let mut index = std::fs::read(&index_path).unwrap();
    let entry_at = |i: usize| {
        let e = &index[i * 8..i * 8 + 8];
        let rel = u32::from_be_bytes(e[..4].try_into().unwrap()) as i64;
        let pos = u32::from_be_bytes(e[4..].try_into().unwrap()) as u64;
        (rel, pos)
    };
    let count = index.len() / 8;
    // An entry (not the first) at batch `j`, with a later batch after it to read.
    let (i, j) = (1..count - 1)
        .find_map(|i| {
            let (rel, pos) = entry_at(i);
            let j = spans.iter().position(|s| s.start == pos)?;
            (j + 2 < spans.len() && spans[j].last_offset == rel).then_some((i, j))
        })
        .expect("an entry at a batch in the middle");
    let landing = spans[j];
    let target = spans[j + 1].base_offset;
    let at_least = entry_at(i - 1).0 + 1;

    // Forge a one-record batch header inside the landing batch's records, ending in the
    // middle of them, and point the entry at it.
    let fake = landing.start + 100;
    let mut header = Vec::new();
    header.extend_from_slice(&at_least.to_be_bytes()); // base offset
    header.extend_from_slice(&100i32.to_be_bytes()); // batch length
    header.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    header.push(2); // magic
    header.extend_from_slice(&0u32.to_be_bytes()); // crc (never checked: passed by framing)
    header.extend_from_slice(&0i16.to_be_bytes()); // attributes
    header.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    header.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    header.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    header.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    header.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    header.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    header.extend_from_slice(&1i32.to_be_bytes()); // records count
    assert_eq!(header.len(), 61);
    assert!(
        fake + 112 + 61 < landing.end,
        "the forged batch and what follows lie inside"
    );
    let mut log_bytes = std::fs::read(&log_path).unwrap();
    log_bytes[fake as usize..fake as usize + 61].copy_from_slice(&header);
    std::fs::write(&log_path, &log_bytes).unwrap();
    index[i * 8 + 4..i * 8 + 8].copy_from_slice(&(fake as u32).to_be_bytes());
    std::fs::write(&index_path, &index).unwrap();

    let log = Partition::open(dir.path(), config()).unwrap();
    let record = log
        .read(target)
        .unwrap()
        .next()
        .expect("a record")
        .expect("the index is rebuilt and the read goes on");
    assert_eq!(record.offset(), target);
    assert_eq!(record.value(), Some(value(target).as_slice()));
    // The landing batch's records were damaged by the forgery: reading them says so.
    assert!(matches!(
        log.read(landing.base_offset).unwrap().next(),
        Some(Err(topiclog::Error::Corrupt { .. }))
    ));
}
