//! Compacted logs in Kafka's format: every segment the cleaner writes decodes with the
//! independent `kafka-protocol` crate to exactly what topiclog reads (header-only batches
//! included), `verify` passes on them, indexes and timestamp lookups handle the gaps, a
//! Kafka-made partition with transactions loses its aborted records and keeps the latest
//! committed value of every key, and keyless
//! records already in a log are discarded, as Kafka's cleaner does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::records::RecordBatchDecoder;
use topiclog::config::{CleanupPolicy, LogConfig};
use topiclog::partition::{IsolationLevel, ProducerStamp, ReadOptions};
use topiclog::{Partition, Record};

fn compact_config(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(segment_bytes)
        .index_interval_bytes(256)
        .flush_messages(i64::MAX)
        .retention_ms(-1)
        .build()
        .unwrap()
}

/// A record as both readers report it: offset, timestamp, key, value, header count.
type Seen = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

fn read_topiclog(log: &Partition) -> Vec<Seen> {
    log.read(log.log_start_offset())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.timestamp(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.headers().count(),
            )
        })
        .collect()
}

/// Every record of every `.log` in `dir`, decoded by `kafka-protocol` (CRCs checked), and the
/// number of batches holding none.
fn read_kafka(dir: &Path) -> (Vec<Seen>, usize) {
    let mut seen = Vec::new();
    let mut empty = 0;
    for log in common::segment_logs(dir) {
        let data = std::fs::read(&log).unwrap();
        let mut bytes = &data[..];
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap_or_else(|e| panic!("{}: {e:?}", log.display()));
        assert!(bytes.is_empty(), "{}: whole batches", log.display());
        for set in sets {
            if set.records.is_empty() {
                empty += 1;
            }
            for r in set.records {
                seen.push((
                    r.offset,
                    r.timestamp,
                    r.key.map(|k| k.to_vec()),
                    r.value.map(|v| v.to_vec()),
                    r.headers.len(),
                ));
            }
        }
    }
    (seen, empty)
}

#[test]
fn cleaned_segments_decode_with_kafka_protocol_as_topiclog_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compact_config(2048)).unwrap();
    let headers = [topiclog::Header::new(b"h", Some(b"v"))];
    let stamp = |seq| ProducerStamp {
        producer_id: 9,
        epoch: 0,
        base_sequence: seq,
    };
    let mut seq = 0;
    // Recent timestamps: a producer idle past producer.id.expiration.ms would be forgotten.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for i in 0..400i64 {
        let key = format!("key-{}", i % 13);
        let value = format!("value-{i}");
        let record = Record::keyed(key.as_bytes(), value.as_bytes())
            .with_headers(&headers)
            .with_timestamp(t0 + i);
        match i % 5 {
            // Batches of three, some of an idempotent producer.
            0 => {
                let records = [record, record.with_timestamp(t0 + i), record];
                if i % 2 == 0 {
                    log.append_idempotent(stamp(seq), &records).unwrap();
                    seq += 3;
                } else {
                    log.append_batch(&records).unwrap();
                }
            }
            1 => {
                log.append(Record::tombstone(key.as_bytes()).with_timestamp(t0 + i))
                    .unwrap();
            }
            _ => {
                log.append(record).unwrap();
            }
        }
    }
    let next = log.next_offset();
    let report = log.compact().unwrap();
    assert!(
        report.records_after < report.records_before / 3,
        "{report:?}"
    );
    log.flush().unwrap();
    let ours = read_topiclog(&log);
    let (theirs, empty_batches) = read_kafka(dir.path());
    assert_eq!(ours, theirs);
    assert!(
        empty_batches > 0,
        "the producer's last batch stays, emptied if need be"
    );
    assert_eq!(log.next_offset(), next);
    // The producer survives a reopen that rebuilds its state from the compacted log.
    log.close().unwrap();
    drop(log);
    std::fs::remove_file(dir.path().join(".topiclog_cleanshutdown")).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Partition::open(dir.path(), compact_config(2048)).unwrap();
    let producer = log
        .active_producers()
        .into_iter()
        .find(|p| p.producer_id == 9)
        .expect("producer 9 rebuilt from the compacted log");
    assert_eq!(producer.last_sequence, seq - 1);
    // A retry of the producer's last batch is recognized; the next sequence is accepted.
    let records = [Record::keyed(b"x", b"y"); 3];
    assert!(log.append_idempotent(stamp(seq - 3), &records).is_ok());
    assert_eq!(log.next_offset(), next, "the retry wrote nothing");
    log.append_idempotent(stamp(seq), &records).unwrap();
    // verify: every batch, index and offset in order.
    log.close().unwrap();
    let verified = topiclog::inspect::verify_partition(dir.path()).unwrap();
    assert!(verified.is_ok(), "{:?}", verified.problems);
}

#[test]
fn timestamp_lookups_and_index_seeks_land_on_records_present() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), compact_config(1024)).unwrap();
    for i in 0..600i64 {
        let key = format!("k{}", i % 40);
        log.append(Record::keyed(key.as_bytes(), &[7u8; 30]).with_timestamp(10_000 + i * 10))
            .unwrap();
    }
    log.compact().unwrap();
    let present: Vec<(i64, i64)> = read_topiclog(&log)
        .into_iter()
        .map(|(o, t, ..)| (o, t))
        .collect();
    for target in (0..600i64).step_by(7) {
        let ts = 10_000 + target * 10;
        let want = present.iter().find(|(_, t)| *t >= ts).map(|(o, _)| *o);
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap().map(|t| t.offset),
            want,
            "timestamp {ts}"
        );
        let first = log
            .read(target)
            .unwrap()
            .next()
            .map(|r| r.unwrap().offset());
        let want = present.iter().map(|(o, _)| *o).find(|&o| o >= target);
        assert_eq!(first, want, "read from {target}");
    }
}

#[test]
fn a_kafka_made_partition_with_transactions_loses_aborted_records_and_keeps_committed_latest() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-made/aborts-0"),
        dir.path(),
    );
    // Small segments: the next append rolls, and the fixture's segment becomes one the
    // cleaner takes.
    let log = Partition::open(dir.path(), tiny_config()).unwrap();
    log.append(Record::keyed(b"k", b"w")).unwrap();
    assert!(log.segment_base_offsets().len() >= 2, "rolled");
    let committed = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    let read = |options: ReadOptions| -> Vec<Kv> {
        log.read_with(0, options)
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
    let before = read(committed);
    let every_before = read(ReadOptions::new());
    assert!(
        before.len() < every_before.len(),
        "the fixture aborts some records"
    );
    let latest = |records: &[Kv]| {
        let mut latest = BTreeMap::new();
        for (offset, key, value) in records {
            if let Some(key) = key {
                latest.insert(key.clone(), (*offset, value.clone()));
            }
        }
        latest
    };
    let report = log.compact().unwrap();
    assert_eq!(report.skipped, None);
    assert!(report.passes >= 1);
    // No aborted record survives: what is left, read uncommitted, was committed.
    let after = read(ReadOptions::new());
    for record in &after {
        assert!(before.contains(record), "{record:?} was not committed");
    }
    assert_eq!(read(committed), after);
    // Every key keeps its latest committed value.
    assert_eq!(latest(&after), latest(&before));
    assert_eq!(log.last_stable_offset(), log.next_offset());
    // Every segment, markers included, decodes with kafka-protocol; and a reopen reads the
    // same (the aborted transactions' entries that survive are in the cleaned .txnindex).
    log.close().unwrap();
    drop(log);
    let (decoded, _) = read_kafka(dir.path());
    assert!(decoded.len() >= after.len());
    let log = Partition::open(dir.path(), tiny_config()).unwrap();
    let again: Vec<_> = log
        .read_with(0, committed)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            )
        })
        .collect();
    assert_eq!(again, after);
}

/// A record as offset, key and value.
type Kv = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn tiny_config() -> LogConfig {
    LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(100)
        .retention_ms(-1)
        .build()
        .unwrap()
}

#[test]
fn keyless_records_already_in_the_log_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let delete = LogConfig::builder()
        .segment_bytes(500)
        .flush_messages(i64::MAX)
        .build()
        .unwrap();
    let log = Partition::open(dir.path(), delete).unwrap();
    let mut keyed = BTreeMap::new();
    for i in 0..100u32 {
        if i % 3 == 0 {
            log.append(Record::new(&i.to_be_bytes())).unwrap();
        } else {
            let o = log.append(Record::keyed(&i.to_be_bytes(), b"v")).unwrap();
            keyed.insert(o, i);
        }
    }
    log.set_config(compact_config(500)).unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    log.compact().unwrap();
    for (offset, _, key, ..) in read_topiclog(&log) {
        if offset < active {
            assert!(key.is_some(), "keyless record at {offset} kept");
            assert!(keyed.contains_key(&offset));
        }
    }
    let kept = read_topiclog(&log).iter().filter(|r| r.0 < active).count();
    assert_eq!(kept, keyed.keys().filter(|&&o| o < active).count());
}
