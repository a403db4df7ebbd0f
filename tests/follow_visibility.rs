//! What a follower (a store opened read-only or for consuming, beside its writer) may return,
//! per flush policy:
//!
//! * durable (`flush.messages` 1): only records below the durable end the live writer
//!   published; with no live writer, everything in the files;
//! * lazy: records reach the file within the follower probe's bound once someone follows, and
//!   at once for appends after that; with no follower, they stay in the writer's buffer.

use std::path::Path;
use std::time::{Duration, Instant};

use topiclog::config::{LogConfig, TopicConfig};
use topiclog::{Partition, Record, Store};

const PUBLISHED: &str = ".topiclog_published";

fn publish(partition_dir: &Path, next_offset: i64) {
    let mut bytes = Vec::from(*b"TLP1");
    bytes.extend_from_slice(&next_offset.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    std::fs::write(partition_dir.join(PUBLISHED), bytes).expect("write");
}

fn values(partition: &Partition) -> Vec<i64> {
    partition
        .read(partition.log_start_offset())
        .expect("reader")
        .map(|r| r.expect("record").offset())
        .collect()
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_follower_returns_only_what_the_live_writer_published_as_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let topic = writer
        .create_topic("t", TopicConfig::new(1))
        .expect("creates");
    for i in 0..10u8 {
        topic.append_to(0, Record::new(&[i])).expect("appends");
    }
    let pdir = dir.path().join("t-0");
    // The writer's published end says 5 are durable (as between a write and its fsync): the
    // follower returns 5, though the file holds 10.
    publish(&pdir, 5);
    let follower = Store::open_read_only(dir.path()).expect("follows");
    let p = follower
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("partition");
    assert_eq!(p.next_offset(), 5);
    assert_eq!(values(&p), (0..5).collect::<Vec<_>>());
    // The writer notices the follower and publishes after its next commit.
    until("the writer to see its follower", || {
        topic.append_to(0, Record::new(b"more")).expect("appends");
        p.refresh().expect("refreshes");
        p.next_offset() > 10
    });
    let end = topic.partition(0).expect("partition").next_offset();
    assert_eq!(p.next_offset(), end, "everything durable is visible");
    assert_eq!(values(&p).len() as i64, end);
    // A stale published end with no live writer bounds nothing: the files are all there is.
    writer.close().expect("closes");
    publish(&pdir, 3);
    p.refresh().expect("refreshes");
    assert_eq!(p.next_offset(), end);
}

#[test]
fn a_lazy_writer_writes_through_once_someone_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Store::open(dir.path()).expect("opens");
    let lazy = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("valid");
    let topic = writer
        .create_topic("t", TopicConfig::new(1).with_log(lazy))
        .expect("creates");
    let log_file = dir.path().join("t-0").join("00000000000000000000.log");
    topic
        .append_to(0, Record::new(b"buffered"))
        .expect("appends");
    assert_eq!(
        std::fs::metadata(&log_file).expect("log").len(),
        0,
        "nobody follows: the batch waits in the write buffer"
    );
    let follower = Store::open_read_only(dir.path()).expect("follows");
    let p = follower
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("partition");
    // The writer's background probe finds the follower and writes its buffer out.
    until("the buffered batch to reach the file", || {
        p.refresh().expect("refreshes");
        p.next_offset() == 1
    });
    // From now on every append reaches the file before it returns.
    for i in 1..20 {
        topic
            .append_to(0, Record::new(b"through"))
            .expect("appends");
        p.refresh().expect("refreshes");
        assert_eq!(p.next_offset(), i + 1, "append {i} visible at once");
    }
    assert_eq!(values(&p).len(), 20);
}

#[test]
fn a_lone_partition_and_its_read_only_follower_do_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Partition::open(dir.path(), LogConfig::default()).expect("opens");
    for i in 0..4u8 {
        writer.append(Record::new(&[i])).expect("appends");
    }
    publish(dir.path(), 2);
    let follower = Partition::open_read_only(dir.path(), LogConfig::default()).expect("follows");
    assert_eq!(follower.next_offset(), 2, "bounded by the published end");
    until("the writer to publish", || {
        writer.append(Record::new(b"x")).expect("appends");
        follower.refresh().expect("refreshes");
        follower.next_offset() == writer.next_offset()
    });
    writer.close().expect("closes");
    drop(writer);
    publish(dir.path(), 1);
    follower.refresh().expect("refreshes");
    assert!(follower.next_offset() > 4, "no writer: not bounded");
}

/// Records a follower read while no writer was alive stay visible when a writer comes back
/// and has not published past them yet: the visible end never moves back, so a consumer's
/// position never lies beyond it (which would reset it, re-reading from the start).
#[test]
fn the_visible_end_never_moves_back_when_a_writer_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = dir.path().join("t-0");
    {
        let writer = Store::open(dir.path()).expect("opens");
        let topic = writer
            .create_topic("t", TopicConfig::new(1))
            .expect("creates");
        for i in 0..10u8 {
            topic.append_to(0, Record::new(&[i])).expect("appends");
        }
        writer.close().expect("closes");
    }
    let follower = Store::open_read_only(dir.path()).expect("follows");
    let p = follower
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("partition");
    publish(&pdir, 4); // stale, from an earlier life
    p.refresh().expect("refreshes");
    assert_eq!(
        p.next_offset(),
        10,
        "no live writer: everything in the files"
    );
    let writer = Store::open(dir.path()).expect("the writer returns");
    publish(&pdir, 4);
    p.refresh().expect("refreshes");
    assert_eq!(p.next_offset(), 10, "what was visible stays visible");
    drop(writer);
}

/// Both ways of reading stop at the published durable end, and a reader that stopped there goes
/// on from the same record once more is published (it is not finished). A lone partition
/// publishes only at its appends, so the test alone moves the end here.
#[test]
fn views_stop_at_the_published_end_too_and_a_reader_goes_on_past_it_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = Partition::open(dir.path(), LogConfig::default()).expect("opens");
    // One batch of 10 and single records: the end may fall inside a batch.
    let batch: Vec<Record<'_>> = (0..10u8).map(|_| Record::new(b"b")).collect();
    writer.append_batch(&batch).expect("appends");
    for i in 0..5u8 {
        writer.append(Record::new(&[i])).expect("appends");
    }
    publish(dir.path(), 7);
    let p = Partition::open_read_only(dir.path(), LogConfig::default()).expect("follows");
    let mut reader = p.read(0).expect("reader");
    let mut seen = Vec::new();
    while let Some(view) = reader.next_view() {
        seen.push(view.expect("record").offset());
    }
    assert_eq!(
        seen,
        (0..7).collect::<Vec<_>>(),
        "views stop at the published end"
    );
    publish(dir.path(), 12);
    p.refresh().expect("refreshes");
    for record in reader.by_ref() {
        seen.push(record.expect("record").offset());
    }
    assert_eq!(seen, (0..12).collect::<Vec<_>>(), "the same reader goes on");
    drop(reader);

    // A scan (`try_for_each_view`) stops there too, and goes on from there.
    let mut reader = p.read(0).expect("reader");
    let mut scanned = Vec::new();
    let scan = |reader: &mut topiclog::partition::Reader, scanned: &mut Vec<i64>| {
        let flow = reader
            .try_for_each_view(|v| {
                scanned.push(v.offset());
                std::ops::ControlFlow::<()>::Continue(())
            })
            .expect("scans");
        assert!(flow.is_continue());
    };
    scan(&mut reader, &mut scanned);
    assert_eq!(scanned, (0..12).collect::<Vec<_>>(), "a scan stops at 12");
    publish(dir.path(), 13);
    p.refresh().expect("refreshes");
    scan(&mut reader, &mut scanned);
    assert_eq!(scanned, (0..13).collect::<Vec<_>>(), "the scan goes on");
    let mut from_7 = Vec::new();
    scan(&mut p.read(7).expect("reader"), &mut from_7);
    assert_eq!(
        from_7,
        (7..13).collect::<Vec<_>>(),
        "a scan from inside the batch"
    );
    writer.close().expect("closes");
}
