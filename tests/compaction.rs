//! Log compaction through the public API: what a compacted partition returns, across
//! reopens, with readers running, for tombstones, idempotent producers and keyless records.

use std::collections::BTreeMap;
use std::sync::Arc;

use topiclog::config::{CleanerConfig, CleanupPolicy, Clock, LogConfig};
use topiclog::{Error, Partition, Record};

#[derive(Debug)]
struct ManualClock(std::sync::atomic::AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Compacted, small segments; appends fsynced in batches (fast), flushed before each check.
fn compacted(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .flush_messages(i64::MAX)
        .segment_bytes(segment_bytes)
        .retention_ms(-1)
        .build()
        .unwrap()
}

/// A record as the tests compare it: offset, key, value.
type Kept = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record as (offset, key, value).
fn contents(log: &Partition) -> Vec<Kept> {
    log.read(log.log_start_offset())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            )
        })
        .collect()
}

/// The latest value per key a log returns.
fn latest(log: &Partition) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    contents(log)
        .into_iter()
        .filter_map(|(_, k, v)| k.map(|k| (k, v)))
        .collect()
}

#[test]
fn keeps_the_latest_record_per_key_and_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compacted(1024)).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..300u32 {
        let key = format!("key-{}", i % 17);
        let value = format!("value-{i}");
        log.append(Record::keyed(key.as_bytes(), value.as_bytes()))
            .unwrap();
        model.insert(key.into_bytes(), Some(value.into_bytes()));
    }
    let before = contents(&log);
    let active_base = *log.segment_base_offsets().last().unwrap();
    let report = log.compact().unwrap();
    assert_eq!(report.skipped, None);
    assert!(report.passes >= 1);
    assert!(report.records_after < report.records_before, "{report:?}");
    assert!(report.bytes_after < report.bytes_before);
    assert_eq!(report.first_dirty_offset, active_base);
    let after = contents(&log);
    // Offsets never change; a record survives as it was.
    for record in &after {
        assert!(before.contains(record), "{record:?} was not in the log");
    }
    assert_eq!(latest(&log), model);
    // Below the active segment, each key appears once.
    let mut seen = std::collections::HashSet::new();
    for (offset, key, _) in after.iter().filter(|(o, ..)| *o < active_base) {
        assert!(seen.insert(key.clone()), "{key:?} twice (at {offset})");
    }
    assert_eq!(log.next_offset(), 300);
    // Reads from an offset compacted away start at the next one present.
    let gone = (0..active_base)
        .find(|o| !after.iter().any(|(a, ..)| a == o))
        .unwrap();
    let first = log.read(gone).unwrap().next().unwrap().unwrap().offset();
    assert!(first > gone);
    assert_eq!(
        Some(first),
        after.iter().map(|(o, ..)| *o).find(|&o| o > gone)
    );
    // A second compaction with nothing new dirty changes nothing.
    let again = log.compact().unwrap();
    assert_eq!(again.passes, 0);
    assert_eq!(contents(&log), after);
    log.close().unwrap();
    let log = Partition::open(dir.path(), compacted(1024)).unwrap();
    assert!(log.recovery().clean_shutdown);
    assert_eq!(contents(&log), after);
    drop(log);
    // An unclean open scans the cleaned segments and finds them whole.
    std::fs::remove_file(dir.path().join(".topiclog_cleanshutdown")).unwrap();
    let log = Partition::open(dir.path(), compacted(1024)).unwrap();
    assert!(!log.recovery().clean_shutdown);
    assert_eq!(contents(&log), after);
    assert!(log.recovery().truncations.is_empty());
}

#[test]
fn keyless_appends_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compacted(1 << 20)).unwrap();
    match log.append(Record::new(b"no key")) {
        Err(Error::KeyRequired { index, .. }) => assert_eq!(index, 0),
        other => panic!("expected KeyRequired, got {other:?}"),
    }
    match log.append_batch(&[Record::keyed(b"k", b"v"), Record::new(b"no key")]) {
        Err(Error::KeyRequired { index, .. }) => assert_eq!(index, 1),
        other => panic!("expected KeyRequired, got {other:?}"),
    }
    assert_eq!(log.next_offset(), 0);
    log.append(Record::tombstone(b"k")).unwrap();
}

#[test]
fn a_delete_policy_is_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    log.append(Record::new(b"v")).unwrap();
    let report = log.compact().unwrap();
    assert!(report.skipped.unwrap().contains("delete"));
}

#[test]
fn tombstones_survive_delete_retention_ms_after_their_first_cleaning() {
    let clock = Arc::new(ManualClock(1_000_000.into()));
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(300)
        .delete_retention_ms(10_000)
        .retention_ms(-1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), config).unwrap();
    for i in 0..10u32 {
        log.append(Record::keyed(b"a", &i.to_be_bytes())).unwrap();
        log.append(Record::keyed(b"b", &i.to_be_bytes())).unwrap();
    }
    log.append(Record::tombstone(b"a")).unwrap();
    for i in 0..20u32 {
        log.append(Record::keyed(b"c", &i.to_be_bytes())).unwrap();
    }
    log.compact().unwrap();
    let map = latest(&log);
    assert_eq!(map.get(b"a".as_slice()), Some(&None), "tombstone kept");
    assert!(
        !contents(&log)
            .iter()
            .any(|(_, k, v)| k.as_deref() == Some(b"a") && v.is_some()),
        "older values of a are gone"
    );
    // Before the horizon, cleaning again keeps it.
    clock
        .0
        .store(1_009_999, std::sync::atomic::Ordering::SeqCst);
    for i in 0..20u32 {
        log.append(Record::keyed(b"c", &i.to_be_bytes())).unwrap();
    }
    log.compact().unwrap();
    assert_eq!(latest(&log).get(b"a".as_slice()), Some(&None));
    // At the horizon, the next cleaning drops it.
    clock
        .0
        .store(1_010_000, std::sync::atomic::Ordering::SeqCst);
    for i in 0..20u32 {
        log.append(Record::keyed(b"c", &i.to_be_bytes())).unwrap();
    }
    log.compact().unwrap();
    assert_eq!(
        latest(&log).get(b"a".as_slice()),
        None,
        "{:?}",
        contents(&log)
    );
    assert!(latest(&log).contains_key(b"b".as_slice()));
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compacted(4096)).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..3000u32 {
        let key = format!("k{}", (i * 7919) % 1000);
        log.append(Record::keyed(key.as_bytes(), &i.to_be_bytes()))
            .unwrap();
        model.insert(key.into_bytes(), Some(i.to_be_bytes().to_vec()));
    }
    // Room for about 170 keys: far fewer than the 1000 distinct ones.
    let cleaner = CleanerConfig::default().dedupe_buffer_size(4096);
    let report = log.compact_with(&cleaner).unwrap();
    assert!(report.passes > 1, "{report:?}");
    assert_eq!(latest(&log), model);
    let full = log.compact().unwrap();
    assert_eq!(latest(&log), model);
    assert_eq!(full.passes, 0, "already clean up to the active segment");
}

#[test]
fn readers_inside_replaced_segments_read_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compacted(512)).unwrap();
    for i in 0..400u32 {
        let key = format!("k{}", i % 5);
        log.append(Record::keyed(key.as_bytes(), &i.to_be_bytes()))
            .unwrap();
    }
    let before = contents(&log);
    for start in [0usize, 3, 50, 120] {
        let mut reader = log.read(before[start].0).unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(reader.next().unwrap().unwrap().offset());
        }
        log.compact().unwrap();
        for r in reader {
            got.push(r.unwrap().offset());
        }
        // What it read is in order and never repeats; every record present now from where
        // it stood is among what it read.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        let now: Vec<i64> = contents(&log)
            .iter()
            .map(|(o, ..)| *o)
            .filter(|&o| o > got[4])
            .collect();
        for o in now {
            assert!(got.contains(&o), "{o} missed by the reader from {start}");
        }
        for i in 0..40u32 {
            let key = format!("k{}", i % 5);
            log.append(Record::keyed(key.as_bytes(), &i.to_be_bytes()))
                .unwrap();
        }
    }
}

mod store {
    use super::*;
    use std::time::{Duration, Instant};
    use topiclog::Store;
    use topiclog::config::{StoreOptions, TopicConfig};

    fn topic_config() -> TopicConfig {
        TopicConfig::new(2).with_log(
            LogConfig::builder()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(400)
                .flush_messages(i64::MAX)
                .retention_ms(-1)
                .min_cleanable_dirty_ratio(0.2)
                .build()
                .unwrap(),
        )
    }

    fn fill(store: &Store, rounds: u32) {
        let topic = store.topic("state").unwrap();
        for i in 0..rounds {
            for p in 0..2 {
                let key = format!("k{}", i % 6);
                topic
                    .append_to(p, Record::keyed(key.as_bytes(), &i.to_be_bytes()))
                    .unwrap();
            }
        }
    }

    #[test]
    fn compact_cleans_every_partition_and_keeps_one_kafka_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::builder().log_cleaner_enable(false).build();
        let store = Store::open_with(dir.path(), options).unwrap();
        store.create_topic("state", topic_config()).unwrap();
        store.create_topic("plain", TopicConfig::new(1)).unwrap();
        fill(&store, 100);
        let reports = store.compact("state").unwrap();
        assert_eq!(reports.len(), 2);
        for (p, report) in &reports {
            assert!(
                report.records_after < report.records_before,
                "{p}: {report:?}"
            );
            let partition = store.topic("state").unwrap().partition(*p).unwrap();
            assert_eq!(partition.dirt().unwrap().ratio(), 0.0);
        }
        let text = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..2],
            ["0", "2"],
            "Kafka's version 0, two entries: {text}"
        );
        for (p, report) in &reports {
            let line = format!("state {p} {}", report.first_dirty_offset);
            assert!(lines.contains(&line.as_str()), "{line} in {text}");
        }
        let skipped = store.compact("plain").unwrap();
        assert!(skipped[0].1.skipped.is_some());
        assert!(matches!(store.compact("nope"), Err(Error::UnknownTopic(_))));
        store.close().unwrap();
        drop(store);
        // The checkpoint is where the next open's cleaning starts.
        let store = Store::open(dir.path()).unwrap();
        let partition = store.topic("state").unwrap().partition(0).unwrap();
        assert_eq!(
            partition.dirt().unwrap().first_dirty_offset,
            reports[0].1.first_dirty_offset
        );
    }

    #[test]
    fn the_background_cleaner_cleans_partitions_dirtier_than_their_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::from_pairs([
            ("log.cleaner.backoff.ms", "20"),
            ("log.cleaner.dedupe.buffer.size", "1048576"),
        ])
        .unwrap();
        let store = Store::open_with(dir.path(), options).unwrap();
        store.create_topic("state", topic_config()).unwrap();
        fill(&store, 120);
        let topic = store.topic("state").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let dirt: Vec<f64> = topic
                .partitions()
                .iter()
                .map(|p| p.dirt().unwrap().ratio())
                .collect();
            if dirt.iter().all(|&r| r <= 0.2) {
                break;
            }
            assert!(Instant::now() < deadline, "never cleaned: {dirt:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        for partition in topic.partitions() {
            let keys: std::collections::HashSet<Vec<u8>> = partition
                .read(partition.log_start_offset())
                .unwrap()
                .map(|r| r.unwrap().key().unwrap().to_vec())
                .collect();
            assert_eq!(keys.len(), 6);
        }
        store.close().unwrap();
    }

    #[test]
    fn cleaner_settings_take_kafkas_broker_names() {
        for (key, value) in [
            ("log.cleaner.enable", "maybe"),
            ("log.cleaner.io.max.bytes.per.second", "0"),
            ("log.cleaner.io.max.bytes.per.second", "fast"),
            ("log.cleaner.dedupe.buffer.size", "-1"),
            ("log.cleaner.min.cleanable.ratio", "2"),
        ] {
            assert!(
                matches!(
                    StoreOptions::from_pairs([(key, value)]),
                    Err(Error::InvalidConfig { .. })
                ),
                "{key}={value}"
            );
        }
        let options = StoreOptions::from_pairs([
            ("log.cleaner.enable", "false"),
            ("log.cleaner.min.cleanable.ratio", "0.1"),
            ("log.cleaner.delete.retention.ms", "5"),
            ("log.cleanup.policy", "compact"),
        ])
        .unwrap();
        let log = options.log_config();
        assert_eq!(log.min_cleanable_dirty_ratio(), 0.1);
        assert_eq!(log.delete_retention_ms(), 5);
        assert_eq!(log.cleanup_policy(), CleanupPolicy::Compact);
    }
}

/// A read-only partition (what a consumer in another process opens) beside a writer that
/// compacts: readers started before the compaction read on without an error, in order, never
/// a record that was not appended, and never miss a record still present; after a refresh,
/// new reads see exactly what the writer sees.
#[test]
fn read_only_partitions_follow_a_compaction_in_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(600);
    let log = Partition::open(dir.path(), config.clone()).unwrap();
    let mut appended = BTreeMap::new();
    for i in 0..500u32 {
        let key = format!("k{}", i % 9);
        let value = format!("v{i}");
        let o = log
            .append(Record::keyed(key.as_bytes(), value.as_bytes()))
            .unwrap();
        appended.insert(o, (key.into_bytes(), value.into_bytes()));
    }
    log.flush().unwrap();
    let follower = Partition::open_read_only(dir.path(), config).unwrap();
    // Readers at several points, some not yet started.
    let mut readers: Vec<(i64, topiclog::partition::Reader, Vec<i64>)> = [0i64, 5, 130, 333]
        .into_iter()
        .map(|from| (from, follower.read(from).unwrap(), Vec::new()))
        .collect();
    for (_, reader, got) in readers.iter_mut().skip(1) {
        for _ in 0..3 {
            got.push(reader.next().unwrap().unwrap().offset());
        }
    }
    log.compact().unwrap();
    let after: Vec<i64> = contents(&log).iter().map(|(o, ..)| *o).collect();
    follower.refresh().unwrap();
    for (from, reader, got) in &mut readers {
        for r in reader.by_ref() {
            let r = r.unwrap_or_else(|e| panic!("reader from {from}: {e}"));
            let (key, value) = &appended[&r.offset()];
            assert_eq!((r.key(), r.value()), (Some(&key[..]), Some(&value[..])));
            got.push(r.offset());
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{from}: {got:?}");
        let last_before = got.get(2).copied().unwrap_or(-1);
        for o in after.iter().filter(|&&o| o > last_before && o >= *from) {
            assert!(got.contains(o), "reader from {from} missed {o}");
        }
    }
    let fresh: Vec<i64> = follower
        .read(0)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(fresh, after);
    // More appends and another compaction: the follower keeps up.
    for i in 0..200u32 {
        let key = format!("k{}", i % 9);
        log.append(Record::keyed(key.as_bytes(), b"again")).unwrap();
    }
    log.flush().unwrap();
    log.compact().unwrap();
    follower.refresh().unwrap();
    let fresh: Vec<i64> = follower
        .read(0)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    let after: Vec<i64> = contents(&log).iter().map(|(o, ..)| *o).collect();
    assert_eq!(fresh, after);
}

/// Compaction racing appends, readers and retention (`compact,delete`): two threads append,
/// one compacts again and again, one applies retention by size, two read from the log start to
/// the end over and over. No call fails (but a reader whose records retention deleted, which
/// starts again), every record read is whole and in order, and in the end the log holds the
/// latest record of every key whose latest record retention has not deleted.
#[test]
fn compaction_races_appends_readers_and_retention() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::CompactDelete)
        .segment_bytes(2048)
        .retention_bytes(64 * 1024)
        .retention_ms(-1)
        .flush_messages(i64::MAX)
        .build()
        .unwrap();
    let log = Arc::new(Partition::open(dir.path(), config).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(parking_lot::Mutex::new(
        BTreeMap::<Vec<u8>, (i64, Vec<u8>)>::new(),
    ));
    let mut threads = Vec::new();
    for writer in 0..2u32 {
        let (log, stop, latest) = (log.clone(), stop.clone(), latest.clone());
        threads.push(std::thread::spawn(move || {
            let mut seq = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{}", seq % 23).into_bytes();
                let value = format!("{}|w{writer}|s{seq}", String::from_utf8_lossy(&key));
                let mut model = latest.lock();
                let offset = log.append(Record::keyed(&key, value.as_bytes())).unwrap();
                model.insert(key, (offset, value.into_bytes()));
                drop(model);
                seq += 1;
            }
        }));
    }
    {
        let (log, stop) = (log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                log.compact().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    {
        let (log, stop) = (log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                log.enforce_retention().unwrap();
                std::thread::sleep(Duration::from_millis(7));
            }
        }));
    }
    for _ in 0..2 {
        let (log, stop) = (log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut passes = 0;
            while !stop.load(Ordering::Relaxed) || passes == 0 {
                let mut last = -1;
                let Ok(reader) = log.read(log.log_start_offset()) else {
                    continue;
                };
                for r in reader {
                    match r {
                        Ok(r) => {
                            assert!(r.offset() > last);
                            last = r.offset();
                            let (key, value) = (r.key().unwrap(), r.value().unwrap());
                            assert!(value.starts_with(key) && value[key.len()] == b'|');
                        }
                        // Retention deleted what this reader had not read yet.
                        Err(topiclog::Error::OffsetOutOfRange { .. }) => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                passes += 1;
            }
        }));
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    log.compact().unwrap();
    let log_start = log.log_start_offset();
    let read = latest_with_offsets(&log);
    let mut checked = 0;
    for (key, (offset, value)) in latest.lock().iter() {
        if *offset >= log_start {
            assert_eq!(read.get(key), Some(&(*offset, value.clone())), "{key:?}");
            checked += 1;
        }
    }
    assert!(checked > 0);
}

fn latest_with_offsets(log: &Partition) -> BTreeMap<Vec<u8>, (i64, Vec<u8>)> {
    contents(log)
        .into_iter()
        .map(|(o, k, v)| (k.unwrap(), (o, v.unwrap())))
        .collect()
}

/// `log.cleaner.io.max.bytes.per.second` holds a cleaning's reads and writes under the rate: a
/// cleaning of about 150 kB at 300 kB/s takes at least half a second (and the same cleaning
/// unthrottled, far less).
#[test]
fn the_io_rate_bound_throttles_a_cleaning() {
    use std::time::Instant;
    let fill = |dir: &std::path::Path| {
        let log = Partition::open(dir, compacted(8 * 1024)).unwrap();
        for i in 0..1500u32 {
            let key = format!("k{}", i % 10);
            log.append(Record::keyed(key.as_bytes(), &[1u8; 80]))
                .unwrap();
        }
        log
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (free, slow) = (fill(a.path()), fill(b.path()));
    let dirty = slow.dirt().unwrap().cleanable_bytes;
    assert!(dirty > 100_000, "{dirty}");
    let start = Instant::now();
    free.compact().unwrap();
    let unthrottled = start.elapsed();
    let start = Instant::now();
    slow.compact_with(&CleanerConfig::default().io_max_bytes_per_second(300_000.0))
        .unwrap();
    let throttled = start.elapsed();
    // Reads alone are `dirty` bytes: at 300 kB/s, at least dirty / 300 kB seconds.
    let floor = std::time::Duration::from_secs_f64(dirty as f64 / 300_000.0);
    assert!(throttled >= floor, "{throttled:?} < {floor:?}");
    assert!(unthrottled < throttled, "{unthrottled:?} vs {throttled:?}");
    assert!(matches!(
        slow.compact_with(&CleanerConfig::default().io_max_bytes_per_second(0.0)),
        Err(Error::InvalidConfig { .. })
    ));
}

/// `verify` knows a compaction swap a crash interrupted: a directory left after the old
/// segments were renamed `.deleted` and before the new one took its name passes, with the swap
/// listed and checked in place of the segments it replaces; a writable open then finishes it
/// and serves the latest record of every key.
#[test]
fn verify_and_open_finish_a_directory_left_mid_swap() {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let (before, after, mid) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // Compacted once (small cleaned segments), then more updates: the next compaction
    // merges the small segments.
    let log = Partition::open(before.path(), compacted(2048)).unwrap();
    for round in 0..2 {
        for i in 0..300u32 {
            let key = format!("k{}", i % 7);
            log.append(Record::keyed(key.as_bytes(), &(i + round).to_be_bytes()))
                .unwrap();
        }
        if round == 0 {
            log.compact().unwrap();
        }
    }
    log.close().unwrap();
    drop(log);
    let old_bases = Partition::open(before.path(), compacted(2048))
        .unwrap()
        .segment_base_offsets();
    copy(before.path(), after.path());
    let log = Partition::open(after.path(), compacted(2048)).unwrap();
    log.compact().unwrap();
    let want = latest(&log);
    let new_bases = log.segment_base_offsets();
    log.close().unwrap();
    drop(log);
    // The first group: old segments from 0 up to the next new segment's base.
    let group_end = new_bases[1];
    assert!(
        old_bases.iter().filter(|&&b| b < group_end).count() > 1,
        "a merge"
    );
    // Mid-swap, as the swap leaves it after step 2: the old segments `.deleted`, the new one
    // as `.swap`, the marker and the recovery checkpoint already gone (the swap removes the
    // marker and the old segments from the checkpoint before renaming anything).
    copy(before.path(), mid.path());
    for name in [".topiclog_cleanshutdown", ".topiclog_recovery_point"] {
        let _ = std::fs::remove_file(mid.path().join(name));
    }
    for base in old_bases.iter().filter(|&&b| b < group_end) {
        for ext in ["log", "index", "timeindex"] {
            let name = format!("{base:020}.{ext}");
            std::fs::rename(
                mid.path().join(&name),
                mid.path().join(format!("{name}.deleted")),
            )
            .unwrap();
        }
    }
    for ext in ["log", "index", "timeindex"] {
        let name = format!("{:020}.{ext}", 0);
        std::fs::copy(
            after.path().join(&name),
            mid.path().join(format!("{name}.swap")),
        )
        .unwrap();
    }
    let verified = topiclog::inspect::verify_partition(mid.path()).unwrap();
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert_eq!(
        verified.swaps,
        [mid.path().join(format!("{:020}.log.swap", 0))]
    );
    let log = Partition::open(mid.path(), compacted(2048)).unwrap();
    assert_eq!(log.recovery().swaps_completed, [0]);
    assert_eq!(latest(&log), want);
    assert_eq!(log.segment_base_offsets()[..2], new_bases[..2]);
    log.close().unwrap();
    let verified = topiclog::inspect::verify_partition(mid.path()).unwrap();
    assert!(
        verified.is_ok() && verified.swaps.is_empty(),
        "{verified:?}"
    );
}

#[test]
fn a_merged_segment_keeps_its_last_sources_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compacted(1024)).unwrap();
    let append = |from: u32| {
        for i in from..from + 300 {
            let (key, value) = (format!("key-{}", i % 17), format!("v{i}"));
            log.append(Record::keyed(key.as_bytes(), value.as_bytes()))
                .unwrap();
        }
        log.flush().unwrap();
    };
    let segment_path = |base: i64| dir.path().join(format!("{base:020}.log"));
    let modified = |base: i64| {
        std::fs::metadata(segment_path(base))
            .unwrap()
            .modified()
            .unwrap()
    };
    // Distinct, old mtimes: what time retention reads for segments without timestamps.
    let age_all = |bases: &[i64]| {
        for &base in bases {
            let file = std::fs::File::options()
                .write(true)
                .open(segment_path(base))
                .unwrap();
            let time = 1_500_000_000_000 + 1_000 * base as u64;
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(time))
                .unwrap();
        }
    };
    append(0);
    // Kafka groups by the sizes before cleaning, so the first pass rewrites one by one and the
    // second merges what the first shrank.
    for round in 0..2 {
        if round == 1 {
            append(300);
        }
        let bases = log.segment_base_offsets();
        age_all(&bases);
        let before: BTreeMap<i64, _> = bases.iter().map(|&b| (b, modified(b))).collect();
        log.compact().unwrap();
        let after = log.segment_base_offsets();
        assert_eq!(after.last(), bases.last(), "the active segment stays");
        if round == 1 {
            assert!(after.len() < bases.len(), "no merge");
        }
        for pair in after.windows(2) {
            let last_source = *bases.iter().filter(|&&b| b < pair[1]).max().unwrap();
            assert_eq!(
                modified(pair[0]),
                before[&last_source],
                "segment {}",
                pair[0]
            );
        }
    }
}

/// Control batches (transaction markers) in the partition's `.log` files.
fn markers_on_disk(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for path in logs {
        let bytes = std::fs::read(&path).unwrap();
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let Ok(batch) = topiclog::record::Batch::parse(&bytes[pos..]) else {
                break;
            };
            count += usize::from(batch.header().is_control());
            pos += batch.size();
        }
    }
    count
}

#[test]
fn transactions_are_compacted_as_kafkas_cleaner_does() {
    use topiclog::partition::{IsolationLevel, ProducerStamp, ReadOptions};
    use topiclog::record::{EndTxnMarker, TxnResult};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(1_000_000)));
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .flush_messages(i64::MAX)
        .segment_bytes(700)
        .retention_ms(-1)
        .delete_retention_ms(1_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), config.clone()).unwrap();
    let committed = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let read = |log: &Partition, options: ReadOptions| -> Vec<Kept> {
        log.read_with(log.log_start_offset(), options)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.offset(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                )
            })
            .collect()
    };
    let mut sequences = [0i32; 3];
    let mut send = |log: &Partition, producer: usize, round: u32| {
        let records: Vec<(String, String)> = (0..3)
            .map(|i| {
                (
                    format!("key-{}", (round + i) % 5),
                    format!("p{producer}-r{round}-{i}"),
                )
            })
            .collect();
        let batch: Vec<Record<'_>> = records
            .iter()
            .map(|(k, v)| Record::keyed(k.as_bytes(), v.as_bytes()))
            .collect();
        let stamp = ProducerStamp {
            producer_id: producer as i64 + 10,
            epoch: 0,
            base_sequence: sequences[producer],
        };
        sequences[producer] += 3;
        log.append_transactional(stamp, &batch).unwrap();
    };
    let end = |log: &Partition, producer: usize, result: TxnResult| {
        let marker = EndTxnMarker {
            result,
            coordinator_epoch: 0,
        };
        log.write_txn_marker(producer as i64 + 10, 0, marker)
            .unwrap();
    };
    for round in 0..12 {
        send(&log, 0, round);
        send(&log, 1, round);
        end(&log, 0, TxnResult::Commit);
        // Producer 1 aborts every other transaction.
        let result = if round % 2 == 0 {
            TxnResult::Abort
        } else {
            TxnResult::Commit
        };
        end(&log, 1, result);
        log.append(Record::keyed(b"plain", format!("{round}").as_bytes()))
            .unwrap();
    }
    // Something after, so the last markers lie below the active segment.
    for i in 0..20u32 {
        log.append(Record::keyed(b"filler", &i.to_be_bytes()))
            .unwrap();
    }
    let before = read(&log, committed);
    let latest_before = latest_of(&before);
    let markers_before = markers_on_disk(dir.path());
    assert_eq!(markers_before, 24);
    let report = log.compact().unwrap();
    assert_eq!(report.skipped, None);
    let after = read(&log, ReadOptions::new());
    // No aborted record survives, and every key keeps its latest committed value.
    for record in &after {
        assert!(
            before.contains(record),
            "{record:?} was aborted or never there"
        );
    }
    assert_eq!(latest_of(&after), latest_before);
    assert_eq!(read(&log, committed), after);
    // Markers whose transactions' batches are gone go after delete.retention.ms.
    let kept_markers = markers_on_disk(dir.path());
    assert!(kept_markers > 0, "markers stay until their horizon");
    clock
        .0
        .store(1_000_000 + 5_000, std::sync::atomic::Ordering::SeqCst);
    for i in 0..20u32 {
        log.append(Record::keyed(b"filler", &(i + 100).to_be_bytes()))
            .unwrap();
    }
    log.compact().unwrap();
    log.compact().unwrap();
    let fewer = markers_on_disk(dir.path());
    assert!(
        fewer < kept_markers,
        "{fewer} markers of {kept_markers} remain"
    );
    assert_eq!(
        latest_of(&read(&log, committed)),
        latest_of(&read(&log, ReadOptions::new()))
    );
    assert_eq!(
        latest_of(&read(&log, committed)).get(&b"key-0"[..]),
        latest_before.get(&b"key-0"[..])
    );
    log.close().unwrap();
    // Reopened, as written.
    let log = Partition::open(dir.path(), config).unwrap();
    let reopened = read(&log, committed);
    assert_eq!(latest_of(&reopened).len(), latest_before.len());
    assert!(log.recovery().txn_indexes_damaged.is_empty());
}

/// The latest value per key of records read.
fn latest_of(records: &[Kept]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    records
        .iter()
        .filter_map(|(_, k, v)| Some((k.clone()?, v.clone())))
        .filter(|(k, _)| k != b"filler")
        .collect()
}
