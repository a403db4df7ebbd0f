//! A partition's half of transactions: transactional appends, COMMIT and ABORT markers, the
//! last stable offset, `read_committed` reads, the `.txnindex`, across reopens and crashes,
//! and Kafka-made transactional directories.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use topiclog::config::LogConfig;
use topiclog::partition::ProducerStamp;
use topiclog::partition::{AbortedTxn, IsolationLevel, ReadOptions};
use topiclog::record::{Batch, EndTxnMarker, TxnResult};
use topiclog::{Error, Partition, Record};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-made");

fn committed() -> ReadOptions {
    ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted)
}

/// The offsets a read from the log start returns; `Reader::try_for_each_view` (scanning
/// whole, and breaking every few records to take one with `next_view`) must return the same.
fn offsets(log: &Partition, options: ReadOptions) -> Vec<i64> {
    let iterated: Vec<i64> = log
        .read_with(log.log_start_offset(), options)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    for pause in [None, Some(0), Some(2)] {
        let mut reader = log.read_with(log.log_start_offset(), options).unwrap();
        let (scanned, err) = common::drain_for_each(&mut reader, pause);
        assert!(err.is_none(), "scanned with pause {pause:?}: {err:?}");
        let scanned: Vec<i64> = scanned.iter().map(|r| r.offset).collect();
        assert_eq!(scanned, iterated, "scanned with pause {pause:?}");
    }
    iterated
}

fn marker(result: TxnResult) -> EndTxnMarker {
    EndTxnMarker {
        result,
        coordinator_epoch: 0,
    }
}

/// A producer writing transactions: its stamp's sequence moves on with each batch.
struct TxnProducer {
    id: i64,
    epoch: i16,
    sequence: i32,
}

impl TxnProducer {
    fn new(id: i64) -> TxnProducer {
        TxnProducer {
            id,
            epoch: 0,
            sequence: 0,
        }
    }

    /// Appends `count` records in one transactional batch; returns their offsets.
    fn send(&mut self, log: &Partition, count: usize) -> Vec<i64> {
        let records: Vec<Record<'_>> = (0..count).map(|_| Record::new(b"v")).collect();
        let stamp = ProducerStamp {
            producer_id: self.id,
            epoch: self.epoch,
            base_sequence: self.sequence,
        };
        let info = log.append_transactional(stamp, &records).unwrap();
        self.sequence += count as i32;
        info.offsets().collect()
    }

    fn end(&self, log: &Partition, result: TxnResult) -> i64 {
        log.write_txn_marker(self.id, self.epoch, marker(result))
            .unwrap()
    }
}

fn lazy() -> LogConfig {
    LogConfig::builder()
        .flush_messages(i64::MAX)
        .segment_bytes(600)
        .build()
        .unwrap()
}

#[test]
fn read_committed_hides_aborted_and_open_transactions_and_stops_at_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy()).unwrap();
    let (mut a, mut b) = (TxnProducer::new(1), TxnProducer::new(2));
    let mut visible = Vec::new();
    // Interleaved: a commits, b aborts, a plain record between.
    let a1 = a.send(&log, 3);
    let b1 = b.send(&log, 2);
    assert_eq!(log.last_stable_offset(), 0);
    let plain = log.append(Record::new(b"plain")).unwrap();
    let a2 = a.send(&log, 1);
    assert_eq!(
        offsets(&log, committed()),
        [] as [i64; 0],
        "held at the LSO"
    );
    let a_commit = a.end(&log, TxnResult::Commit);
    assert_eq!(log.last_stable_offset(), b1[0], "b is still open");
    let b_abort = b.end(&log, TxnResult::Abort);
    assert_eq!(log.last_stable_offset(), log.next_offset());
    visible.extend(&a1);
    visible.push(plain);
    visible.extend(&a2);
    assert_eq!(offsets(&log, committed()), visible);
    // read_uncommitted returns every data record.
    let mut all: Vec<i64> = a1.iter().chain(&b1).chain(&a2).copied().collect();
    all.push(plain);
    all.sort();
    assert_eq!(offsets(&log, ReadOptions::new()), all);
    assert!(!offsets(&log, ReadOptions::new()).contains(&a_commit));
    assert_eq!(
        log.aborted_transactions(0..i64::MAX),
        [AbortedTxn {
            producer_id: 2,
            first_offset: b1[0],
            last_offset: b_abort,
            last_stable_offset: b_abort + 1,
        }]
    );
    // A reader waiting at the LSO goes on once the transaction ends.
    let mut reader = log.read_with(log.next_offset(), committed()).unwrap();
    let c1 = b.send(&log, 2);
    assert!(reader.next().is_none());
    b.end(&log, TxnResult::Commit);
    let got: Vec<i64> = reader.map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, c1);
    log.close().unwrap();
}

#[test]
fn the_index_and_lso_survive_reopens_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy()).unwrap();
    let (mut a, mut b) = (TxnProducer::new(10), TxnProducer::new(11));
    let mut expected = Vec::new();
    for round in 0..20 {
        let x = a.send(&log, 1 + round % 3);
        let y = b.send(&log, 2);
        if round % 3 == 0 {
            a.end(&log, TxnResult::Abort);
        } else {
            a.end(&log, TxnResult::Commit);
            expected.extend(x);
        }
        if round % 2 == 0 {
            b.end(&log, TxnResult::Commit);
            expected.extend(y);
        } else {
            b.end(&log, TxnResult::Abort);
        }
    }
    // One left open: it holds the LSO.
    let open = a.send(&log, 2);
    expected.sort();
    assert_eq!(offsets(&log, committed()), expected);
    assert_eq!(log.last_stable_offset(), open[0]);
    let aborted = log.aborted_transactions(0..i64::MAX);
    assert_eq!(aborted.len(), 7 + 10);
    log.close().unwrap();
    // Each segment's aborts are in its .txnindex, in Kafka's bytes.
    let on_disk = txnindex_entries(dir.path());
    assert_eq!(on_disk, aborted);
    let reopened = |why: &str| {
        let log = Partition::open(dir.path(), lazy()).unwrap();
        assert_eq!(offsets(&log, committed()), expected, "{why}");
        assert_eq!(log.last_stable_offset(), open[0], "{why}");
        assert_eq!(log.open_transactions(), [(10, open[0])], "{why}");
        assert_eq!(log.aborted_transactions(0..i64::MAX), aborted, "{why}");
        log
    };
    drop(reopened("clean reopen"));
    // A crash: no clean-shutdown marker, so the producer state is replayed.
    std::fs::remove_file(dir.path().join(".topiclog_cleanshutdown")).ok();
    drop(reopened("unclean reopen"));
    // Every .txnindex lost: the replay from the oldest snapshot rebuilds what it covers, and
    // a damaged one is rebuilt from the log.
    for path in files_with(dir.path(), "txnindex") {
        std::fs::write(&path, b"garbage, not 34-byte entries").unwrap();
    }
    std::fs::remove_file(dir.path().join(".topiclog_cleanshutdown")).ok();
    let log = reopened("damaged txnindex files");
    assert!(!log.recovery().txn_indexes_damaged.is_empty());
    log.close().unwrap();
    assert_eq!(txnindex_entries(dir.path()), aborted, "rewritten");
    // After a clean close, where nothing is replayed: files deleted, or altered in a way that
    // still decodes (a first offset moved up would show aborted records), are found by their
    // recorded length and CRC and rebuilt from the log.
    let files = files_with(dir.path(), "txnindex");
    assert!(files.len() >= 2);
    std::fs::remove_file(&files[0]).unwrap();
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[17] = bytes[17].wrapping_add(1); // the first offset's low byte
    std::fs::write(&files[1], &bytes).unwrap();
    let log = reopened("deleted and altered txnindex files after a clean close");
    assert!(log.recovery().clean_shutdown);
    assert_eq!(log.recovery().txn_indexes_damaged.len(), 2);
    log.close().unwrap();
    assert_eq!(txnindex_entries(dir.path()), aborted, "rewritten");
    let log = reopened("after the rewrite");
    assert!(log.recovery().txn_indexes_damaged.is_empty());
}

fn files_with(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// Every `.txnindex` entry in the directory, decoded by the format reference's layout.
fn txnindex_entries(dir: &Path) -> Vec<AbortedTxn> {
    let mut entries = Vec::new();
    for path in files_with(dir, "txnindex") {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() % 34, 0, "{}", path.display());
        let base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        for e in bytes.chunks(34) {
            let i64_at = |at: usize| i64::from_be_bytes(e[at..at + 8].try_into().unwrap());
            assert_eq!(&e[..2], &[0, 0], "version 0");
            let entry = AbortedTxn {
                producer_id: i64_at(2),
                first_offset: i64_at(10),
                last_offset: i64_at(18),
                last_stable_offset: i64_at(26),
            };
            assert!(entry.last_offset >= base, "marker in its segment");
            entries.push(entry);
        }
    }
    entries
}

#[test]
fn fencing_coordinator_epochs_and_state_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy()).unwrap();
    let mut p = TxnProducer::new(5);
    p.epoch = 3;
    p.send(&log, 1);
    // Outside its transaction: refused.
    let stamp = ProducerStamp {
        producer_id: 5,
        epoch: 3,
        base_sequence: 1,
    };
    match log.append_idempotent(stamp, &[Record::new(b"x")]) {
        Err(Error::InvalidTxnState { producer_id: 5, .. }) => {}
        other => panic!("expected InvalidTxnState, got {other:?}"),
    }
    // A marker at an older epoch is fenced; a newer coordinator epoch wins.
    assert!(matches!(
        log.write_txn_marker(5, 2, marker(TxnResult::Commit)),
        Err(Error::ProducerFenced { .. })
    ));
    let newer = EndTxnMarker {
        result: TxnResult::Abort,
        coordinator_epoch: 4,
    };
    // A fencing abort at a raised epoch (a new handle took over).
    log.write_txn_marker(5, 4, newer).unwrap();
    assert_eq!(log.last_stable_offset(), log.next_offset());
    match log.write_txn_marker(5, 4, marker(TxnResult::Commit)) {
        Err(Error::CoordinatorFenced {
            coordinator_epoch: 0,
            known: 4,
            ..
        }) => {}
        other => panic!("expected CoordinatorFenced, got {other:?}"),
    }
    // The old epoch's appends are fenced now.
    let old = ProducerStamp {
        producer_id: 5,
        epoch: 3,
        base_sequence: 1,
    };
    assert!(matches!(
        log.append_transactional(old, &[Record::new(b"late")]),
        Err(Error::ProducerFenced { .. })
    ));
    assert_eq!(offsets(&log, committed()), [] as [i64; 0]);
}

#[test]
fn markers_and_transactional_batches_are_kafkas_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy()).unwrap();
    let mut p = TxnProducer::new(77);
    let data = p.send(&log, 2);
    let abort = p.end(&log, TxnResult::Abort);
    log.close().unwrap();
    let mut seen = 0;
    for path in files_with(dir.path(), "log") {
        let bytes = std::fs::read(&path).unwrap();
        let mut pos = 0;
        while pos < bytes.len() {
            let batch = Batch::parse(&bytes[pos..]).unwrap();
            batch.verify_crc().unwrap();
            let h = batch.header();
            assert!(h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (77, 0));
            if h.base_offset == abort {
                assert!(h.is_control());
                assert_eq!(h.base_sequence, -1);
                let record = batch.records().unwrap().next().unwrap().unwrap();
                // Key: version 0, type 0 (ABORT); value: version 0, coordinator epoch 0.
                assert_eq!(record.key(), Some(&[0u8, 0, 0, 0][..]));
                assert_eq!(record.value(), Some(&[0u8, 0, 0, 0, 0, 0][..]));
            } else {
                assert_eq!(h.base_offset, data[0]);
                assert!(!h.is_control());
            }
            seen += 1;
            pos += batch.size();
        }
    }
    assert_eq!(seen, 2);
}

/// Offsets of the data records of a Kafka-made directory a `read_committed` reader returns.
fn read_committed_offsets(name: &str) -> (tempfile::TempDir, Vec<i64>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for path in files_with(&Path::new(FIXTURES).join(name), "log") {
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let log = Partition::open(&dir, LogConfig::default()).unwrap();
    let got = offsets(&log, committed());
    log.close().unwrap();
    (tmp, got)
}

#[test]
fn the_kafka_made_aborts_fixture_reads_as_its_read_committed_manifest() {
    let manifest =
        std::fs::read_to_string(Path::new(FIXTURES).join("aborts-0/read_committed.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let want: Vec<i64> = want["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let (tmp, got) = read_committed_offsets("aborts-0");
    assert_eq!(got, want);
    // The open wrote the .txnindex files Kafka would have; a second open reads them.
    let dir = tmp.path().join("aborts-0");
    assert!(!files_with(&dir, "txnindex").is_empty());
    let log = Partition::open(&dir, LogConfig::default()).unwrap();
    assert!(log.recovery().clean_shutdown);
    assert_eq!(offsets(&log, committed()), want);
}

#[test]
fn the_kafka_made_transactions_fixture_matches_a_model_of_markers() {
    // The model: walk the batches; a producer's transactional data is held until its marker,
    // then kept (COMMIT) or dropped (ABORT); what is still open at the end is not returned.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("transactions-0/manifest.json")).unwrap(),
    )
    .unwrap();
    let records = manifest["records"].as_array().unwrap();
    let control: BTreeSet<i64> = records
        .iter()
        .filter(|r| r["control"].as_bool() == Some(true))
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    let mut pending = Vec::new();
    let mut want = Vec::new();
    for r in records {
        let offset = r["offset"].as_i64().unwrap();
        if control.contains(&offset) {
            // Key bytes: version 0, then the type (0 ABORT, 1 COMMIT), base64.
            let key = r["key"].as_str().unwrap();
            if key == "AAAAAQ==" {
                want.append(&mut pending);
            } else {
                assert_eq!(key, "AAAAAA==");
                pending.clear();
            }
        } else {
            pending.push(offset);
        }
    }
    want.sort();
    let (_tmp, got) = read_committed_offsets("transactions-0");
    assert_eq!(got, want);
}

#[test]
fn a_read_only_partition_follows_its_writers_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), lazy()).unwrap();
    let mut p = TxnProducer::new(3);
    let first = p.send(&log, 2);
    log.flush().unwrap();
    let follower = Partition::open_read_only(dir.path(), lazy()).unwrap();
    assert_eq!(follower.last_stable_offset(), first[0], "open at open");
    assert_eq!(offsets(&follower, committed()), [] as [i64; 0]);
    p.end(&log, TxnResult::Commit);
    let aborted = p.send(&log, 3);
    p.end(&log, TxnResult::Abort);
    let open = p.send(&log, 1);
    log.flush().unwrap();
    follower.refresh().unwrap();
    assert_eq!(follower.last_stable_offset(), open[0]);
    assert_eq!(offsets(&follower, committed()), first);
    assert_eq!(
        follower.aborted_transactions(0..i64::MAX).len(),
        1,
        "{aborted:?} aborted"
    );
    p.end(&log, TxnResult::Commit);
    log.flush().unwrap();
    follower.refresh().unwrap();
    assert_eq!(follower.last_stable_offset(), follower.next_offset());
    let mut want = first.clone();
    want.extend(&open);
    assert_eq!(offsets(&follower, committed()), want);
    // A reader that waited at the LSO goes on after a refresh.
    let mut reader = follower
        .read_with(follower.next_offset(), committed())
        .unwrap();
    let more = p.send(&log, 2);
    log.flush().unwrap();
    follower.refresh().unwrap();
    assert!(reader.next().is_none(), "open: held");
    p.end(&log, TxnResult::Commit);
    log.flush().unwrap();
    follower.refresh().unwrap();
    let got: Vec<i64> = reader.map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, more);
}
