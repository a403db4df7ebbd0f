//! A follower beside a live writer (what `topiclog consume --from end --follow` does: a first
//! pass with a `Reader` per partition, then a consumer of a read-only store seeking to where
//! that pass stopped) returns each offset once, in order, with the record written there: across
//! rolls between its polls, batches split between polls (the reader re-created inside a batch),
//! segments the writer deletes behind it or ahead of it, a batch still being written at the end
//! of the file, and writer restarts. The last test runs a writer thread and a follower for a few
//! seconds with the interleavings left to the scheduler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, LogConfig, OffsetReset, TopicConfig};
use topiclog::record::{Compression, Record};
use topiclog::{Consumer, Error, Partition, Store};

/// Small segments (a roll every few batches), index entries every batch or two, and appends
/// that reach the files only when the buffer fills or on flush.
fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(600)
        .index_interval_bytes(64)
        .write_buffer_bytes(256)
        .flush_messages(i64::MAX)
        .build()
        .expect("config")
}

/// The value written at `offset`: it names its offset, so a record read back is checked whole.
fn value(offset: i64) -> Vec<u8> {
    format!("{offset:08}|{}", "v".repeat((offset % 37) as usize)).into_bytes()
}

/// Appends `n` records as one batch (gzip when `compressed`) at the partition's end.
fn append(p: &Partition, n: usize, compressed: bool) {
    let next = p.next_offset();
    let values: Vec<Vec<u8>> = (0..n as i64).map(|i| value(next + i)).collect();
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let codec = if compressed {
        Compression::Gzip
    } else {
        Compression::None
    };
    let info = p.append_batch_compressed(&records, codec).expect("append");
    assert_eq!(info.base_offset, next);
}

/// A consumer as `consume --follow` makes it: no reset policy, so a deleted position comes back
/// as `NoOffsetForPartition`; `max` records per poll.
fn follower(store: &Store, partitions: &[u32], max: usize) -> Consumer {
    let config = ConsumerConfig::builder()
        .auto_offset_reset(OffsetReset::None)
        .max_poll_records(max)
        .build()
        .expect("consumer config");
    let mut consumer = store.consumer(config).expect("consumer");
    let assignment: Vec<(&str, u32)> = partitions.iter().map(|&p| ("t", p)).collect();
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// What a follower returned, per partition, checked as it comes: offsets only go up, each
/// record holds the value written at its offset, and every gap is one the follower was told of
/// (`NoOffsetForPartition` and a log start past its position).
#[derive(Debug, Default)]
struct Seen {
    next: BTreeMap<u32, i64>,
    count: usize,
    skipped: i64,
}

impl Seen {
    fn starting_at(partition: u32, offset: i64) -> Seen {
        let mut seen = Seen::default();
        seen.next.insert(partition, offset);
        seen
    }

    /// One poll as `consume --follow` handles it; returns how many records came.
    fn poll(&mut self, store: &Store, consumer: &mut Consumer, timeout: Duration) -> usize {
        match consumer.poll(timeout) {
            Ok(records) => {
                for r in &records {
                    let next = self.next.entry(r.partition()).or_insert(r.offset());
                    assert_eq!(
                        r.offset(),
                        *next,
                        "partition {}: offset {} after {} (repeated or skipped)",
                        r.partition(),
                        r.offset(),
                        *next - 1
                    );
                    assert_eq!(r.value(), Some(&value(r.offset())[..]), "at {}", r.offset());
                    *next += 1;
                }
                self.count += records.len();
                records.len()
            }
            Err(Error::NoOffsetForPartition { partition, .. }) => {
                let position = consumer.position("t", partition).expect("position");
                let log_start = store
                    .topic("t")
                    .and_then(|t| t.partition(partition))
                    .expect("partition")
                    .log_start_offset();
                // Never back: a log start read before the deletion was seen may lie below the
                // position; the next poll's refresh raises it.
                let to = log_start.max(position);
                self.skipped += to - position;
                self.next.insert(partition, to);
                consumer.seek("t", partition, to).expect("seek");
                0
            }
            Err(e) => panic!("poll: {e}"),
        }
    }

    /// Polls until every partition reached `ends` (or fails the test after 20 s).
    fn drain(&mut self, store: &Store, consumer: &mut Consumer, ends: &BTreeMap<u32, i64>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while ends
            .iter()
            .any(|(p, end)| self.next.get(p).copied().unwrap_or(0) < *end)
        {
            assert!(
                Instant::now() < deadline,
                "stuck at {:?}, ends {ends:?}",
                self.next
            );
            self.poll(store, consumer, Duration::from_millis(20));
        }
        for (p, end) in ends {
            assert_eq!(self.next[p], *end, "partition {p}: nothing past the end");
        }
    }
}

/// A writer store with topic `t` of `partitions` partitions on the small-segment config.
fn writer_store(dir: &std::path::Path, partitions: u32) -> Store {
    let store = Store::open(dir).expect("open");
    store
        .create_topic("t", TopicConfig::new(partitions).with_log(config()))
        .expect("topic");
    store
}

#[test]
fn batches_split_between_polls_across_rolls_come_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = writer_store(dir.path(), 1);
    let p = writer.topic("t").and_then(|t| t.partition(0)).expect("p");
    append(&p, 3, false);
    p.flush().expect("flush");

    let store = Store::open_read_only(dir.path()).expect("read-only");
    // `--from end`: the first pass starts at the end and finds nothing.
    let end = store
        .topic("t")
        .and_then(|t| t.partition(0))
        .expect("p")
        .next_offset();
    let mut first_pass = store
        .topic("t")
        .and_then(|t| t.partition(0))
        .and_then(|p| p.read(end))
        .expect("reader");
    assert!(first_pass.next().is_none());
    let mut consumer = follower(&store, &[0], 2);
    consumer.seek("t", 0, end).expect("seek");
    let mut seen = Seen::starting_at(0, end);

    for round in 0..60usize {
        // Batches of up to 7 records, some compressed: a poll of 2 stops inside them, and the
        // next one starts a new reader there, sometimes in a segment rolled since.
        append(&p, 1 + round % 7, round % 3 == 0);
        if round % 4 != 1 {
            p.flush().expect("flush");
        }
        for _ in 0..(round % 3) {
            seen.poll(&store, &mut consumer, Duration::ZERO);
        }
    }
    p.flush().expect("flush");
    assert!(p.segment_base_offsets().len() > 5, "rolled");
    // The first pass's reader, made before any refresh, would go on exactly where the
    // consumer started (the CLI uses one or the other, never both for the same records).
    let resumed = first_pass.next().expect("a record").expect("record");
    assert_eq!(resumed.offset(), end);
    let ends = BTreeMap::from([(0, p.next_offset())]);
    seen.drain(&store, &mut consumer, &ends);
    assert_eq!(seen.skipped, 0);
    drop(consumer);
    writer.close().expect("close");
}

#[test]
fn the_follower_goes_on_from_where_the_first_pass_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = writer_store(dir.path(), 1);
    let p = writer.topic("t").and_then(|t| t.partition(0)).expect("p");
    for i in 0..8 {
        append(&p, 1 + i % 4, i % 2 == 0);
    }
    p.flush().expect("flush");

    // `--from beginning`: the first pass reads what the open saw, while the writer rolls on.
    let store = Store::open_read_only(dir.path()).expect("read-only");
    let partition = store.topic("t").and_then(|t| t.partition(0)).expect("p");
    let mut next = 0;
    for record in partition.read(0).expect("reader") {
        let record = record.expect("record");
        assert_eq!(record.offset(), next);
        next += 1;
        if next % 3 == 0 {
            append(&p, 4, next % 2 == 0);
            p.flush().expect("flush");
        }
    }
    assert_eq!(next, 20, "what the open saw, nothing appended since");
    let mut consumer = follower(&store, &[0], 5);
    consumer.seek("t", 0, next).expect("seek");
    let mut seen = Seen::starting_at(0, next);
    for i in 0..10 {
        append(&p, 2, i % 2 == 1);
        p.flush().expect("flush");
        seen.poll(&store, &mut consumer, Duration::ZERO);
    }
    let ends = BTreeMap::from([(0, p.next_offset())]);
    seen.drain(&store, &mut consumer, &ends);
    assert_eq!(seen.skipped, 0);
    drop(consumer);
    writer.close().expect("close");
}

#[test]
fn segments_deleted_behind_or_ahead_of_the_follower_never_bring_an_offset_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = writer_store(dir.path(), 1);
    let p = writer.topic("t").and_then(|t| t.partition(0)).expect("p");
    append(&p, 5, false);
    p.flush().expect("flush");
    let store = Store::open_read_only(dir.path()).expect("read-only");
    let mut consumer = follower(&store, &[0], 3);
    consumer.seek("t", 0, 0).expect("seek");
    let mut seen = Seen::starting_at(0, 0);

    // Behind: the segments the follower read go while it is inside a later one.
    for round in 0..20 {
        append(&p, 1 + round % 5, round % 4 == 0);
        p.flush().expect("flush");
        seen.poll(&store, &mut consumer, Duration::ZERO);
        let position = consumer.position("t", 0).expect("position");
        assert!(p.delete_records(position).expect("delete") <= position);
        p.enforce_retention().expect("retention");
    }
    let ends = BTreeMap::from([(0, p.next_offset())]);
    seen.drain(&store, &mut consumer, &ends);
    assert_eq!(seen.skipped, 0);

    // Ahead: half a batch read, then the writer rolls on and deletes past the position.
    append(&p, 6, true);
    p.flush().expect("flush");
    assert_eq!(seen.poll(&store, &mut consumer, Duration::ZERO), 3);
    let position = consumer.position("t", 0).expect("position");
    for i in 0..12 {
        append(&p, 3, i % 2 == 0);
    }
    p.flush().expect("flush");
    let start = position + 20;
    p.delete_records(start).expect("delete");
    assert!(
        p.segment_base_offsets()[0] > position,
        "the follower's segment is gone"
    );
    let ends = BTreeMap::from([(0, p.next_offset())]);
    seen.drain(&store, &mut consumer, &ends);
    assert_eq!(seen.skipped, start - position);
    drop(consumer);
    writer.close().expect("close");
}

#[test]
fn a_batch_still_being_written_at_the_end_of_the_file_comes_once_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One big segment; the writer is dropped without a close, as a live writer leaves it.
    let log_config = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("config");
    let writer = Partition::open(dir.path(), log_config.clone()).expect("open");
    for i in 0..4 {
        append(&writer, 3, i == 3);
    }
    drop(writer);
    let log = dir.path().join(format!("{:020}.log", 0));
    let whole = std::fs::read(&log).expect("read");
    // The last batch (offsets 9..12) is being written: only part of it is in the file.
    let cut = whole.len() - 11;
    std::fs::write(&log, &whole[..cut]).expect("cut");

    let follower = Partition::open_read_only(dir.path(), log_config).expect("read-only");
    assert_eq!(follower.next_offset(), 9);
    let mut offsets: Vec<i64> = follower
        .read(0)
        .expect("read")
        .map(|r| r.expect("record").offset())
        .collect();
    // More of it arrives, still not whole: nothing new.
    std::fs::write(&log, &whole[..whole.len() - 1]).expect("grow");
    assert!(!follower.refresh().expect("refresh"));
    assert_eq!(follower.next_offset(), 9);
    // Then the rest: the batch comes whole, once, from where the follower stood.
    std::fs::write(&log, &whole).expect("grow");
    assert!(follower.refresh().expect("refresh"));
    for record in follower.read(9).expect("read") {
        let record = record.expect("record");
        assert_eq!(record.value(), Some(&value(record.offset())[..]));
        offsets.push(record.offset());
    }
    assert_eq!(offsets, (0..12).collect::<Vec<_>>());
}

/// A writer thread appends to two partitions (batches of 1 to 6 records, some compressed,
/// rolls every few batches), flushes now and then, deletes the records the follower has read,
/// and closes or drops its store and opens it again; a follower polls a read-only store at the
/// same time, 4 records a poll. Every offset from the follower's start to the end comes once.
#[test]
fn a_follower_beside_a_rolling_restarting_writer_returns_each_offset_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = writer_store(dir.path(), 2);
        for p in 0..2 {
            let p = store.topic("t").and_then(|t| t.partition(p)).expect("p");
            append(&p, 2, false);
        }
        store.close().expect("close");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let read_to: Arc<[AtomicI64; 2]> = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let writer = {
        let (dir, stop, read_to) = (dir.path().to_path_buf(), stop.clone(), read_to.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            let mut ends = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let store = Store::open(&dir).expect("writer open");
                let topic = store.topic("t").expect("topic");
                for _ in 0..(20 + i % 60) {
                    let n = (i % 2) as u32;
                    let p = topic.partition(n).expect("p");
                    append(&p, 1 + (i % 6) as usize, i.is_multiple_of(5));
                    if i.is_multiple_of(3) {
                        p.flush().expect("flush");
                    }
                    if i.is_multiple_of(29) {
                        let read = read_to[n as usize].load(Ordering::Acquire);
                        p.delete_records(read.min(p.next_offset()))
                            .expect("delete behind the follower");
                    }
                    i += 1;
                }
                for n in 0..2 {
                    ends.insert(n, topic.partition(n).expect("p").next_offset());
                }
                if i.is_multiple_of(2) {
                    store.close().expect("close");
                } else {
                    drop(store); // buffered appends reach the files; the next open recovers
                }
            }
            ends
        })
    };

    let store = Store::open_read_only(dir.path()).expect("read-only");
    let mut consumer = follower(&store, &[0, 1], 4);
    let mut seen = Seen::default();
    for n in 0..2 {
        let end = store
            .topic("t")
            .and_then(|t| t.partition(n))
            .expect("p")
            .next_offset();
        consumer.seek("t", n, end).expect("seek");
        seen.next.insert(n, end);
    }
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        seen.poll(&store, &mut consumer, Duration::from_millis(20));
        for n in 0..2u32 {
            read_to[n as usize].store(seen.next[&n], Ordering::Release);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let ends = writer.join().expect("writer");
    seen.drain(&store, &mut consumer, &ends);
    assert_eq!(seen.skipped, 0, "only records already read were deleted");
    assert!(seen.count > 0);
}

/// A follower refreshing while the writer rolls and its retention deletes segments as fast as
/// it can: a segment deleted between the follower's listing and its open is listed again, not
/// an error, and the follower never skips a segment it has not seen.
#[test]
fn refresh_beside_rolls_and_deletions_neither_fails_nor_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = writer_store(dir.path(), 1);
    let writer = store
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("partition");
    append(&writer, 3, false);
    writer.flush().expect("flush");
    let reader = Partition::open_read_only(writer.dir(), config()).expect("follows");
    let stop = Arc::new(AtomicBool::new(false));
    let deleting = {
        let (stop, writer) = (Arc::clone(&stop), Arc::clone(&writer));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                append(&writer, 2, false);
                writer.flush().expect("flush");
                // Keep only the last few offsets: deletes segments behind the follower.
                let keep_from = (writer.next_offset() - 2).max(writer.log_start_offset());
                writer.delete_records(keep_from).expect("delete records");
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut refreshes = 0;
    while Instant::now() < deadline {
        reader
            .refresh()
            .expect("a refresh never fails for a deleted segment");
        // Falls behind now and then, so segments ahead of it are deleted while it lists them.
        if refreshes % 4 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
        // Whatever it serves is contiguous from its log start.
        let start = reader.log_start_offset();
        if let Ok(records) = reader.read(start) {
            for (at, record) in (start..).zip(records) {
                let Ok(record) = record else { break };
                assert_eq!(record.offset(), at, "no offset skipped");
            }
        }
        refreshes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    deleting.join().expect("writer");
    assert!(refreshes > 10);
}
