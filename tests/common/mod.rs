//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use topiclog::record::{Header, Record};
use topiclog::{LogConfig, OwnedRecord, Partition};

/// A config with small segments and indexes, so tests roll often.
pub fn small_config(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .index_interval_bytes(256)
        .build()
        .expect("valid config")
}

/// Value of record `i` in the generated workloads.
pub fn value(i: i64) -> Vec<u8> {
    format!("value-{i:08}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// Key of record `i`.
pub fn key(i: i64) -> Vec<u8> {
    format!("key-{}", i % 17).into_bytes()
}

/// Appends records `from..to` one call each, with timestamps `1_000 * i`.
pub fn append_range(log: &Partition, from: i64, to: i64) {
    for i in from..to {
        let (k, v) = (key(i), value(i));
        let headers = [Header::new(b"i", Some(&v[6..14]))];
        let offset = log
            .append(
                Record::keyed(&k, &v)
                    .with_headers(&headers)
                    .with_timestamp(1_000 * i),
            )
            .expect("append");
        assert_eq!(offset, i);
    }
}

/// Every record from `from` to the end, owned.
pub fn read_all(log: &Partition, from: i64) -> Vec<OwnedRecord> {
    log.read(from)
        .expect("reader")
        .map(|r| r.expect("record").to_owned_record())
        .collect()
}

/// Checks that `records` are exactly the generated records `from..to`.
pub fn assert_range(records: &[OwnedRecord], from: i64, to: i64) {
    assert_eq!(records.len() as i64, to - from, "record count");
    for (r, i) in records.iter().zip(from..to) {
        assert_eq!(r.offset, i);
        assert_eq!(r.timestamp, 1_000 * i);
        assert_eq!(r.key.as_deref(), Some(&key(i)[..]));
        assert_eq!(r.value.as_deref(), Some(&value(i)[..]));
        assert_eq!(r.headers.len(), 1);
    }
}

/// Names of the files in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(pub std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> std::sync::Arc<ManualClock> {
        std::sync::Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl topiclog::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
