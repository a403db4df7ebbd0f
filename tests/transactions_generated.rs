//! Transactional partitions written by another encoder, as a Kafka broker leaves them: random
//! interleavings of several producers' transactions (committed, aborted, some still open at
//! the end), plain and idempotent batches, spread over segments, encoded by `kafka-protocol`
//! (an independent implementation of RecordBatch v2), with each `.txnindex` written from the
//! format reference (§3.4: an entry per ABORT, in the marker's segment, with the last stable
//! offset right after it) or left out for recovery to rebuild.
//!
//! A model of the reference's §3.4 and §8 says what a reader must see; the partition, opened
//! writable and read-only, must agree: `read_uncommitted` returns every data record,
//! `read_committed` the plain and committed ones below the last stable offset (the first
//! offset of the oldest open transaction), and the open and aborted transactions are the
//! model's; a rebuilt `.txnindex` is byte for byte the reference's. Adopted by a store, the
//! open transactions hold the LSO until `abort_transaction` or the timeout after their first
//! batch writes ABORT markers, with a coordinator epoch above any in the log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::ManualClock;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use topiclog::config::{LogConfig, StoreOptions};
use topiclog::partition::{AbortedTxn, IsolationLevel, ReadOptions};
use topiclog::{Partition, Store};

const PRODUCERS: i64 = 3;
const FIRST_PID: i64 = 4000;
/// A non-transactional idempotent producer beside the transactional ones.
const IDEMPOTENT_PID: i64 = 9000;
const BASE_TS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Event {
    /// A transactional batch of `n` records from producer `p`.
    Txn { p: i64, n: u8 },
    /// Producer `p`'s COMMIT or ABORT marker (if it has a transaction open).
    End { p: i64, commit: bool },
    /// A batch without a producer.
    Plain { n: u8 },
    /// An idempotent, non-transactional batch.
    Idempotent { n: u8 },
    /// The next batch starts a new segment.
    Roll,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0..PRODUCERS, 1u8..4).prop_map(|(p, n)| Event::Txn { p, n }),
        4 => (0..PRODUCERS, any::<bool>()).prop_map(|(p, commit)| Event::End { p, commit }),
        2 => (1u8..3).prop_map(|n| Event::Plain { n }),
        1 => (1u8..3).prop_map(|n| Event::Idempotent { n }),
        1 => Just(Event::Roll),
    ]
}

/// What the model knows of the log.
#[derive(Debug, Default)]
struct Model {
    /// Segment base offsets and their bytes.
    segments: Vec<(i64, Vec<u8>)>,
    /// Each segment's `.txnindex` bytes (by base offset), per the reference.
    txn_indexes: BTreeMap<i64, Vec<u8>>,
    /// Every data record: offset, value, producer id (-1 for none), and whether it is in a
    /// transaction that aborted.
    data: Vec<(i64, Vec<u8>, i64, bool)>,
    /// Transactions still open: producer id, first offset, offsets of their records.
    open: BTreeMap<i64, (i64, Vec<i64>)>,
    aborted: Vec<AbortedTxn>,
    next_offset: i64,
    sequences: BTreeMap<i64, i32>,
    /// The highest coordinator epoch of any marker.
    max_coordinator_epoch: i32,
    /// The first batch timestamp of each open transaction.
    started: BTreeMap<i64, i64>,
}

impl Model {
    fn ts(&self) -> i64 {
        BASE_TS + self.next_offset * 10
    }

    fn encode(&mut self, records: &[KRecord]) {
        let mut out = Vec::new();
        RecordBatchEncoder::encode(
            &mut out,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        if self.segments.is_empty() {
            self.segments.push((self.next_offset, Vec::new()));
        }
        self.segments
            .last_mut()
            .expect("one")
            .1
            .extend_from_slice(&out);
        self.next_offset += records.len() as i64;
    }

    fn record(&self, i: i64, pid: i64, epoch: i16, sequence: i32, txn: bool) -> KRecord {
        let offset = self.next_offset + i;
        KRecord {
            transactional: txn,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: if sequence < 0 {
                -1
            } else {
                sequence + i as i32
            },
            timestamp: self.ts() + i,
            key: None,
            value: Some(format!("pid{pid}-o{offset}").into_bytes().into()),
            headers: IndexMap::new(),
        }
    }

    fn data_batch(&mut self, pid: i64, n: u8, txn: bool) {
        let (epoch, sequence) = if pid < 0 {
            (-1, -1)
        } else {
            (0, *self.sequences.entry(pid).or_default())
        };
        let records: Vec<KRecord> = (0..i64::from(n))
            .map(|i| self.record(i, pid, epoch, sequence, txn))
            .collect();
        if pid >= 0 {
            *self.sequences.get_mut(&pid).expect("entry") += i32::from(n);
        }
        for r in &records {
            let value = r.value.clone().expect("a value").to_vec();
            self.data.push((r.offset, value, pid, false));
        }
        if txn {
            let first = self.next_offset;
            if !self.open.contains_key(&pid) {
                self.started.insert(pid, self.ts());
            }
            let open = self.open.entry(pid).or_insert((first, Vec::new()));
            open.1.extend(records.iter().map(|r| r.offset));
        }
        self.encode(&records);
    }

    fn marker(&mut self, pid: i64, commit: bool) {
        let Some((first, offsets)) = self.open.remove(&pid) else {
            return;
        };
        self.started.remove(&pid);
        let offset = self.next_offset;
        let coordinator_epoch = (offset % 7) as i32;
        self.max_coordinator_epoch = self.max_coordinator_epoch.max(coordinator_epoch);
        let mut key = Vec::new();
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&i16::from(commit).to_be_bytes());
        let mut value = Vec::new();
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let control = KRecord {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: self.ts(),
            key: Some(key.into()),
            value: Some(value.into()),
            headers: IndexMap::new(),
        };
        self.encode(&[control]);
        if commit {
            return;
        }
        for d in self.data.iter_mut().filter(|d| offsets.contains(&d.0)) {
            d.3 = true;
        }
        // §3.4 / ProducerStateManager.lastStableOffset: the oldest other open transaction's
        // first offset, or just past the marker.
        let lso = self
            .open
            .values()
            .map(|(f, _)| *f)
            .min()
            .unwrap_or(offset + 1);
        let entry = AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: offset,
            last_stable_offset: lso,
        };
        let base = self.segments.last().expect("a segment").0;
        let bytes = self.txn_indexes.entry(base).or_default();
        bytes.extend_from_slice(&0i16.to_be_bytes());
        for v in [pid, first, offset, lso] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        self.aborted.push(entry);
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::Txn { p, n } => self.data_batch(FIRST_PID + p, n, true),
            Event::End { p, commit } => self.marker(FIRST_PID + p, commit),
            Event::Plain { n } => self.data_batch(-1, n, false),
            Event::Idempotent { n } => self.data_batch(IDEMPOTENT_PID, n, false),
            Event::Roll => {
                if self.segments.last().is_some_and(|(_, b)| !b.is_empty()) {
                    self.segments.push((self.next_offset, Vec::new()));
                }
            }
        }
    }

    fn lso(&self) -> i64 {
        self.open
            .values()
            .map(|(f, _)| *f)
            .min()
            .unwrap_or(self.next_offset)
    }

    fn read_committed(&self) -> Vec<i64> {
        let lso = self.lso();
        self.data
            .iter()
            .filter(|d| d.0 < lso && !d.3 && !self.open.values().any(|o| o.1.contains(&d.0)))
            .map(|d| d.0)
            .collect()
    }

    /// Writes the partition directory: every segment's log, and its `.txnindex` if asked.
    fn write(&self, dir: &Path, txn_indexes: bool) {
        std::fs::create_dir_all(dir).unwrap();
        for (base, bytes) in &self.segments {
            std::fs::write(dir.join(format!("{base:020}.log")), bytes).unwrap();
            if txn_indexes && let Some(index) = self.txn_indexes.get(base) {
                std::fs::write(dir.join(format!("{base:020}.txnindex")), index).unwrap();
            }
        }
    }
}

fn config() -> LogConfig {
    LogConfig::builder().retention_ms(-1).build().unwrap()
}

fn read(log: &Partition, level: IsolationLevel) -> Vec<(i64, Vec<u8>)> {
    let options = ReadOptions::new().isolation_level(level);
    log.read_with(log.log_start_offset(), options)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), r.value().unwrap().to_vec())
        })
        .collect()
}

fn check(log: &Partition, model: &Model, what: &str) -> Result<(), TestCaseError> {
    let all: Vec<(i64, Vec<u8>)> = model.data.iter().map(|d| (d.0, d.1.clone())).collect();
    prop_assert_eq!(
        read(log, IsolationLevel::ReadUncommitted),
        all,
        "{}: all",
        what
    );
    let committed: Vec<i64> = read(log, IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    prop_assert_eq!(
        committed,
        model.read_committed(),
        "{}: read_committed",
        what
    );
    prop_assert_eq!(log.last_stable_offset(), model.lso(), "{}: LSO", what);
    prop_assert_eq!(log.next_offset(), model.next_offset, "{}: log end", what);
    let open: Vec<(i64, i64)> = {
        let mut v: Vec<(i64, i64)> = model.open.iter().map(|(p, (f, _))| (*p, *f)).collect();
        v.sort_by_key(|&(_, f)| f);
        v
    };
    let mut got_open = log.open_transactions();
    got_open.sort_by_key(|&(_, f)| f);
    prop_assert_eq!(got_open, open, "{}: open transactions", what);
    prop_assert_eq!(
        log.aborted_transactions(0..i64::MAX),
        model.aborted.clone(),
        "{}: aborted",
        what
    );
    Ok(())
}

/// The coordinator epochs of the control records in the partition's logs, in offset order.
fn marker_epochs(dir: &Path) -> Vec<(i64, i64, bool, i32)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        // The active segment may end in preallocated zeros: the batches end at the first
        // zero length.
        let mut end = 0;
        while end + 12 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().unwrap());
            if len <= 0 {
                break;
            }
            end += 12 + len as usize;
        }
        let mut buf = &bytes[..end];
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        for set in sets {
            for r in set.records.iter().filter(|r| r.control) {
                let key = r.key.as_ref().expect("a control key");
                let value = r.value.as_ref().expect("a control value");
                let commit = i16::from_be_bytes([key[2], key[3]]) == 1;
                let epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
                out.push((r.offset, r.producer_id, commit, epoch));
            }
        }
    }
    out
}

fn run(events: Vec<Event>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for e in &events {
        model.apply(e);
    }
    if model.segments.is_empty() {
        return Ok(());
    }
    for txn_indexes in [true, false] {
        let what = if txn_indexes {
            "with .txnindex"
        } else {
            "without .txnindex"
        };
        // Read-only first: it changes nothing.
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("t-0");
        model.write(&part, txn_indexes);
        let log = Partition::open_read_only(&part, config()).unwrap();
        check(&log, &model, &format!("read-only, {what}"))?;
        drop(log);
        let log = Partition::open(&part, config()).unwrap();
        check(&log, &model, &format!("writable, {what}"))?;
        log.close().unwrap();
        drop(log);
        for (base, _) in &model.segments {
            let path = part.join(format!("{base:020}.txnindex"));
            let got = std::fs::read(&path).unwrap_or_default();
            let want = model.txn_indexes.get(base).cloned().unwrap_or_default();
            prop_assert_eq!(got, want, "{}: {}", what, path.display());
        }
        let log = Partition::open(&part, config()).unwrap();
        check(&log, &model, &format!("reopened, {what}"))?;
        drop(log);
    }
    // Adopted by a store: the open transactions are unknown to its coordinator. The oldest
    // is aborted by hand, the others by their timeout.
    if model.open.is_empty() {
        return Ok(());
    }
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("t-0");
    model.write(&part, true);
    let clock = ManualClock::new(model.ts());
    let log_config = LogConfig::builder().clock(clock.clone()).build().unwrap();
    let options = StoreOptions::builder().log_config(log_config).build();
    let store = Store::open_with(dir.path(), options).unwrap();
    let listed: Vec<(i64, i64)> = store
        .transactions()
        .unwrap()
        .iter()
        .map(|t| (t.producer_id, t.partitions[0].1.expect("a first offset")))
        .collect();
    let mut want: Vec<(i64, i64)> = model.open.iter().map(|(p, (f, _))| (*p, *f)).collect();
    want.sort();
    let mut got = listed.clone();
    got.sort();
    prop_assert_eq!(got, want, "listed open");
    let log = store.topic("t").unwrap().partition(0).unwrap();
    prop_assert_eq!(log.last_stable_offset(), model.lso());
    let oldest = model
        .open
        .iter()
        .min_by_key(|(_, (f, _))| *f)
        .map(|(p, _)| *p)
        .expect("one");
    prop_assert!(store.abort_transaction(&oldest.to_string()).unwrap());
    let marker_at = log.next_offset() - 1;
    model.marker(oldest, false);
    // The model's marker epoch is its own; topiclog's must be above any in the log.
    let epochs = marker_epochs(&part);
    let (offset, pid, commit, epoch) = *epochs.last().expect("the abort");
    prop_assert_eq!((offset, pid, commit), (marker_at, oldest, false));
    let before = epochs[..epochs.len() - 1]
        .iter()
        .map(|e| e.3)
        .max()
        .unwrap_or(-1);
    prop_assert!(
        epoch > before,
        "coordinator epoch {} not above {}",
        epoch,
        before
    );
    // Not yet timed out; then timed out.
    prop_assert_eq!(store.abort_timed_out_transactions().unwrap(), 0);
    let latest_start = model.started.values().copied().max();
    if let Some(start) = latest_start {
        clock.set(start + 60_000);
        prop_assert_eq!(
            store.abort_timed_out_transactions().unwrap(),
            model.open.len()
        );
    }
    prop_assert!(store.transactions().unwrap().is_empty());
    prop_assert_eq!(log.last_stable_offset(), log.next_offset());
    let aborted_now: Vec<i64> = model.open.keys().copied().collect();
    for pid in aborted_now {
        model.marker(pid, false);
    }
    let committed: Vec<i64> = read(&log, IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    prop_assert_eq!(committed, model.read_committed(), "after the aborts");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_transactional_logs_read_as_the_model_says(
        events in prop::collection::vec(event(), 1..60)
    ) {
        run(events)?;
    }
}

/// One fixed case of every shape: interleaved transactions across a roll, an abort whose
/// LSO is held by an older open transaction, and two transactions open at the end.
#[test]
fn a_fixed_interleaving_reads_as_the_model_says() {
    use Event::*;
    let events = vec![
        Txn { p: 0, n: 2 },
        Plain { n: 1 },
        Txn { p: 1, n: 1 },
        Txn { p: 0, n: 1 },
        End {
            p: 1,
            commit: false,
        },
        Roll,
        Idempotent { n: 2 },
        Txn { p: 2, n: 3 },
        End { p: 0, commit: true },
        Txn { p: 1, n: 2 },
        Roll,
        End {
            p: 2,
            commit: false,
        },
        Txn { p: 0, n: 1 },
        Plain { n: 2 },
    ];
    run(events).unwrap();
}
