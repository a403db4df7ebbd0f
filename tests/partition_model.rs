//! Model-based property test: random sequences of appends, batch appends, reads from random
//! offsets, timestamp lookups, `delete_records`, flushes, clean closes and crash-style reopens
//! (drop without close), under the durable and the lazy flush policies,
//! run against a partition and against a plain `Vec` of records; after every step the two agree.
//! Small segments, indexes and write buffers make rolls, index entries and buffer writes happen
//! often. On failure proptest prints the shrunk operation sequence and its seed.

mod common;

use proptest::prelude::*;
use topiclog::config::LogConfig;
use topiclog::record::Record;
use topiclog::{OwnedRecord, Partition};

#[derive(Debug, Clone)]
enum Op {
    Append { len: usize, ts: i64, keyed: bool },
    Batch { lens: Vec<usize>, ts: i64 },
    Read { from: u8 },
    Lookup { ts: i64 },
    DeleteRecords { to: u8 },
    Flush,
    Close,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300, 0i64..10_000, any::<bool>()).prop_map(|(len, ts, keyed)| Op::Append { len, ts, keyed }),
        3 => (prop::collection::vec(0usize..100, 1..15), 0i64..10_000).prop_map(|(lens, ts)| Op::Batch { lens, ts }),
        3 => any::<u8>().prop_map(|from| Op::Read { from }),
        2 => (-5i64..10_100).prop_map(|ts| Op::Lookup { ts }),
        1 => any::<u8>().prop_map(|to| Op::DeleteRecords { to }),
        1 => Just(Op::Flush),
        1 => Just(Op::Close),
        1 => Just(Op::Crash),
    ]
}

fn config(durable: bool) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(2_000)
        .segment_index_bytes(96)
        .index_interval_bytes(150)
        .write_buffer_bytes(700)
        .flush_messages(if durable { 1 } else { i64::MAX })
        .build()
        .expect("config")
}

fn value(offset: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (offset * 31 + i) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn partition_matches_a_vec(ops in prop::collection::vec(op(), 1..60), durable in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Partition::open(dir.path(), config(durable)).expect("open");
        let mut model: Vec<OwnedRecord> = Vec::new();
        let mut log_start = 0usize;
        for op in ops {
            match op {
                Op::Append { len, ts, keyed } => {
                    let offset = model.len();
                    let v = value(offset, len);
                    let key = offset.to_string().into_bytes();
                    let record = if keyed { Record::keyed(&key, &v) } else { Record::new(&v) };
                    prop_assert_eq!(log.append(record.with_timestamp(ts)).expect("append"), offset as i64);
                    model.push(OwnedRecord {
                        offset: offset as i64,
                        timestamp: ts,
                        key: keyed.then_some(key.clone()),
                        value: Some(v),
                        headers: vec![],
                    });
                }
                Op::Batch { lens, ts } => {
                    let base = model.len();
                    let values: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| value(base + i, l)).collect();
                    let records: Vec<Record<'_>> =
                        values.iter().enumerate().map(|(i, v)| Record::new(v).with_timestamp(ts + i as i64)).collect();
                    let info = log.append_batch(&records).expect("append_batch");
                    prop_assert_eq!(info.base_offset, base as i64);
                    for (i, v) in values.into_iter().enumerate() {
                        model.push(OwnedRecord {
                            offset: (base + i) as i64,
                            timestamp: ts + i as i64,
                            key: None,
                            value: Some(v),
                            headers: vec![],
                        });
                    }
                }
                Op::Read { from } => {
                    let from = if model.is_empty() { 0 } else { usize::from(from) % (model.len() + 1) };
                    if from < log_start {
                        prop_assert!(
                            matches!(log.read(from as i64), Err(topiclog::Error::OffsetOutOfRange { .. })),
                            "a read below the log start is out of range"
                        );
                        continue;
                    }
                    let got: Vec<OwnedRecord> = log
                        .read(from as i64)
                        .expect("reader")
                        .map(|r| r.expect("record").to_owned_record())
                        .collect();
                    prop_assert_eq!(&got[..], &model[from..]);
                }
                Op::DeleteRecords { to } => {
                    let to = usize::from(to) % (model.len() + 1);
                    let start = log.delete_records(to as i64).expect("delete_records");
                    log_start = log_start.max(to);
                    prop_assert_eq!(start, log_start as i64);
                    prop_assert_eq!(log.log_start_offset(), log_start as i64);
                }
                Op::Lookup { ts } => {
                    let want = model[log_start..].iter().find(|r| r.timestamp >= ts).map(|r| r.offset);
                    let got = log.offset_for_timestamp(ts).expect("lookup").map(|t| t.offset);
                    prop_assert_eq!(got, want, "timestamp {}", ts);
                }
                Op::Flush => log.flush().expect("flush"),
                Op::Close => {
                    log.close().expect("close");
                    drop(log);
                    log = Partition::open(dir.path(), config(durable)).expect("reopen");
                    prop_assert!(log.recovery().clean_shutdown);
                }
                Op::Crash => {
                    drop(log);
                    log = Partition::open(dir.path(), config(durable)).expect("reopen");
                    prop_assert_eq!(log.recovery().bytes_lost(), 0, "a process crash loses nothing written");
                }
            }
            prop_assert_eq!(log.next_offset(), model.len() as i64);
            prop_assert_eq!(log.log_start_offset(), log_start as i64, "the log start survives reopens");
        }
        let all: Vec<OwnedRecord> = log
            .read(log_start as i64)
            .expect("reader")
            .map(|r| r.expect("record").to_owned_record())
            .collect();
        prop_assert_eq!(&all[..], &model[log_start..]);
    }
}
