//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use topiclog::config::LogConfig;
use topiclog::record::{Header, Record};
use topiclog::{OwnedRecord, Partition};

/// A config with small segments and indexes, so tests roll often.
pub fn small_config(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .index_interval_bytes(256)
        .build()
        .expect("valid config")
}

/// Like [`small_config`], but appends are not fsynced until `flush()` (Kafka's default policy,
/// `flush.messages` = `i64::MAX`), for tests about what an unflushed tail looks like.
pub fn lazy_config(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .index_interval_bytes(256)
        .flush_messages(i64::MAX)
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

impl topiclog::config::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Appends records `from..to` as ONE batch, generated like [`append_range`] (same keys, values,
/// headers and timestamps `1_000 * i`), so [`assert_range`] checks them too.
pub fn append_batch_range(log: &Partition, from: i64, to: i64) {
    let keys: Vec<Vec<u8>> = (from..to).map(key).collect();
    let values: Vec<Vec<u8>> = (from..to).map(value).collect();
    let headers: Vec<[Header<'_>; 1]> = values
        .iter()
        .map(|v| [Header::new(b"i", Some(&v[6..14]))])
        .collect();
    let records: Vec<Record<'_>> = (from..to)
        .zip(keys.iter().zip(&values).zip(&headers))
        .map(|(i, ((k, v), h))| {
            Record::keyed(k, v)
                .with_headers(h)
                .with_timestamp(1_000 * i)
        })
        .collect();
    let info = log.append_batch(&records).expect("append batch");
    assert_eq!((info.base_offset, info.last_offset), (from, to - 1));
}

/// Path of a segment file: `dir/<base offset, 20 digits>.<ext>`.
pub fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> std::path::PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Where the whole batches at the start of a segment's `bytes` end: each batch is its 12-byte
/// offset and length prefix plus the length; a zero length (preallocated space) or a batch
/// running past the end stops the walk.
pub fn end_of_batches(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(len) = bytes.get(pos + 8..pos + 12) {
        let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        if len <= 0 || pos + 12 + len as usize > bytes.len() {
            break;
        }
        pos += 12 + len as usize;
    }
    pos
}

/// Asserts the segment file at `path` ends at its last whole batch; returns its bytes.
pub fn assert_ends_at_last_batch(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    assert_eq!(end_of_batches(&bytes), bytes.len(), "{}", path.display());
    bytes
}

/// The `.log` segment files of the partition directory `dir`, in base-offset order.
pub fn segment_logs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Copies every file of the (flat) directory `from` into `to`, creating `to`: a fresh copy of a
/// partition directory to damage.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for name in files(from) {
        std::fs::copy(from.join(&name), to.join(&name)).expect("copy file");
    }
}

/// One batch of a `.log` file: its byte range and offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// Byte position of the batch in the file.
    pub start: u64,
    /// Byte position after it.
    pub end: u64,
    /// Its base offset.
    pub base_offset: i64,
    /// Its last offset.
    pub last_offset: i64,
}

/// The batches of a `.log` file, checked: every batch parses and passes its CRC, and together
/// they fill the file exactly (no partial batch, no zero tail).
pub fn batch_spans(log_file: &Path) -> Vec<BatchSpan> {
    let bytes = std::fs::read(log_file).expect("read log");
    let mut batches = topiclog::record::Batches::new(&bytes);
    let mut spans = Vec::new();
    loop {
        let start = batches.position() as u64;
        let Some(batch) = batches.next() else { break };
        let batch =
            batch.unwrap_or_else(|e| panic!("{}: bad batch at {start}: {e}", log_file.display()));
        batch
            .verify_crc()
            .unwrap_or_else(|e| panic!("{}: bad CRC at {start}: {e}", log_file.display()));
        spans.push(BatchSpan {
            start,
            end: start + batch.size() as u64,
            base_offset: batch.header().base_offset,
            last_offset: batch.header().last_offset(),
        });
    }
    assert_eq!(
        batches.position(),
        bytes.len(),
        "{}: batches do not fill the file",
        log_file.display()
    );
    spans
}

/// Every file in `dir` with its bytes, to check that something changed no file.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("read");
            (name, bytes)
        })
        .collect()
}

/// A borrowed record, owned.
pub fn own_view(v: &topiclog::record::RecordView<'_>) -> OwnedRecord {
    OwnedRecord {
        offset: v.offset(),
        timestamp: v.timestamp(),
        key: v.key().map(<[u8]>::to_vec),
        value: v.value().map(<[u8]>::to_vec),
        headers: v
            .headers()
            .map(|h| topiclog::OwnedHeader {
                key: h.key.to_vec(),
                value: h.value.map(<[u8]>::to_vec),
            })
            .collect(),
    }
}

/// Everything `reader` returns through `Reader::try_for_each_view`, owned, and the error that
/// ended it. With `pause` `Some(k)`, each scan breaks after `k` records and one record is then
/// taken with `next_view` before the next scan, so the reader's state after a break is
/// exercised both ways; `k` of 0 alternates one record each way.
pub fn drain_for_each(
    reader: &mut topiclog::partition::Reader,
    pause: Option<usize>,
) -> (Vec<OwnedRecord>, Option<topiclog::Error>) {
    use std::ops::ControlFlow;
    let mut out = Vec::new();
    loop {
        let mut taken = 0usize;
        let flow = reader.try_for_each_view(|v| {
            out.push(own_view(&v));
            taken += 1;
            match pause {
                Some(k) if taken > k => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        });
        match flow {
            Err(e) => return (out, Some(e)),
            Ok(ControlFlow::Continue(())) => return (out, None),
            Ok(ControlFlow::Break(())) => match reader.next_view() {
                None => return (out, None),
                Some(Err(e)) => return (out, Some(e)),
                Some(Ok(v)) => out.push(own_view(&v)),
            },
        }
    }
}
