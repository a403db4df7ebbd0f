//! Proves that topiclog reads partition directories written by another implementation of
//! Kafka's on-disk format exactly as Kafka would. The fixtures in `tests/fixtures/kafka-made/`
//! were built with kafka-python's `DefaultRecordBatchBuilder`; each directory's `manifest.json`
//! lists every batch and every record a correct reader returns. For each directory the tests
//! check that (a) `record::Batches` parses every batch of the raw `.log` files with the
//! manifest's position, size, offsets, record count, CRC, timestamps, flags and producer fields;
//! (b) `Partition::open` on the bare `.log` files is an unclean open that scans every segment
//! and cuts nothing, and leaves the `.log` bytes untouched through `close`; (c) `read` returns
//! every non-control record in offset order with exact offset, effective timestamp, key, value
//! and headers (repeated keys and null values in order), from the log start, from every offset
//! up to the log end (gaps and control offsets start at the next present record) and after a
//! clean reopen, and the manifest's SHA-256 digests recomputed over those records (plus the
//! control records decoded from the raw batches) match; (d) `offset_for_timestamp` answers the
//! smallest offset, control records included, whose timestamp is at least the target; and (e)
//! the compressed directories (gzip, xerial snappy, lz4 frame, zstd) pass every one of those
//! checks when the build has the codec; in a build without it, every compressed batch is kept
//! by recovery and reads as `Error::UnsupportedCompression` with its codec and position, while
//! the uncompressed batch among them reads exactly.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use topiclog::config::LogConfig;
use topiclog::partition::TimestampOffset;
use topiclog::record::{
    Batch, Batches, Compression, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES, DecodeErrorKind, RecordView,
    TimestampType, is_supported,
};
use topiclog::{Error, OwnedHeader, OwnedRecord, Partition};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-made");

// ---------------------------------------------------------------------------------------------
// The manifest
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct SegmentInfo {
    file: String,
    base_offset: i64,
    bytes: u64,
    batches: usize,
    records: usize,
    sha256: String,
}

#[derive(Debug, Clone)]
struct BatchInfo {
    file: String,
    position: u64,
    size: usize,
    base_offset: i64,
    last_offset_delta: i32,
    records: i32,
    compression: String,
    crc: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    timestamp_type: String,
    transactional: bool,
    control: bool,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchInfo {
    fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    fn holds(&self, offset: i64) -> bool {
        (self.base_offset..=self.last_offset()).contains(&offset)
    }
}

#[derive(Debug, Clone)]
struct ManifestRecord {
    record: OwnedRecord,
    control: bool,
}

#[derive(Debug)]
struct Manifest {
    summary: Value,
    segments: Vec<SegmentInfo>,
    batches: Vec<BatchInfo>,
    records: Vec<ManifestRecord>,
}

impl Manifest {
    fn load(dir: &Path) -> Manifest {
        let path = dir.join("manifest.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("manifest parses");
        assert_eq!(json["format"], "kafka-made-fixture/1", "manifest format");
        let segments = array(&json["segments"])
            .iter()
            .map(|s| SegmentInfo {
                file: string(&s["file"]),
                base_offset: int(&s["base_offset"]),
                bytes: int(&s["bytes"]) as u64,
                batches: int(&s["batches"]) as usize,
                records: int(&s["records"]) as usize,
                sha256: string(&s["sha256"]),
            })
            .collect();
        let batches = array(&json["batches"])
            .iter()
            .map(|b| BatchInfo {
                file: string(&b["file"]),
                position: int(&b["position"]) as u64,
                size: int(&b["size"]) as usize,
                base_offset: int(&b["base_offset"]),
                last_offset_delta: int(&b["last_offset_delta"]) as i32,
                records: int(&b["records"]) as i32,
                compression: string(&b["compression"]),
                crc: int(&b["crc"]) as u32,
                first_timestamp: int(&b["first_timestamp"]),
                max_timestamp: int(&b["max_timestamp"]),
                timestamp_type: string(&b["timestamp_type"]),
                transactional: boolean(&b["transactional"]),
                control: boolean(&b["control"]),
                producer_id: int(&b["producer_id"]),
                producer_epoch: int(&b["producer_epoch"]) as i16,
                base_sequence: int(&b["base_sequence"]) as i32,
            })
            .collect();
        let records = array(&json["records"])
            .iter()
            .map(|r| ManifestRecord {
                record: OwnedRecord {
                    offset: int(&r["offset"]),
                    timestamp: int(&r["timestamp"]),
                    key: bytes(&r["key"]),
                    value: bytes(&r["value"]),
                    headers: array(&r["headers"])
                        .iter()
                        .map(|h| {
                            let pair = array(h);
                            assert_eq!(pair.len(), 2, "header is [key, value]");
                            OwnedHeader {
                                key: string(&pair[0]).into_bytes(),
                                value: bytes(&pair[1]),
                            }
                        })
                        .collect(),
                },
                control: r.get("control").is_some_and(boolean),
            })
            .collect();
        Manifest {
            summary: json["summary"].clone(),
            segments,
            batches,
            records,
        }
    }

    fn summary_int(&self, key: &str) -> i64 {
        int(&self.summary[key])
    }

    fn summary_str(&self, key: &str) -> String {
        string(&self.summary[key])
    }

    /// Every record, control records included, in offset order.
    fn all_records(&self) -> Vec<OwnedRecord> {
        self.records.iter().map(|r| r.record.clone()).collect()
    }

    /// The records `read` must return: the non-control ones.
    fn data_records(&self) -> Vec<OwnedRecord> {
        self.records
            .iter()
            .filter(|r| !r.control)
            .map(|r| r.record.clone())
            .collect()
    }

    fn batch_of(&self, offset: i64) -> &BatchInfo {
        self.batches
            .iter()
            .find(|b| b.holds(offset))
            .unwrap_or_else(|| panic!("no manifest batch holds offset {offset}"))
    }

    fn is_compressed(&self) -> bool {
        self.batches.iter().any(|b| b.compression != "none")
    }
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer: {v}"))
}

fn string(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string: {v}"))
        .to_owned()
}

fn boolean(v: &Value) -> bool {
    v.as_bool()
        .unwrap_or_else(|| panic!("expected a boolean: {v}"))
}

/// Base64 or null.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(BASE64.decode(s).expect("valid base64")),
        other => panic!("expected base64 or null: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

struct Fixture {
    name: &'static str,
    src: PathBuf,
    manifest: Manifest,
}

impl Fixture {
    fn load(name: &'static str) -> Fixture {
        let src = Path::new(FIXTURES).join(name);
        let manifest = Manifest::load(&src);
        Fixture {
            name,
            src,
            manifest,
        }
    }

    /// A writable copy of the partition directory as Kafka left it: its `.log` files only.
    fn copy(&self) -> (TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join(self.name);
        fs::create_dir(&dir).expect("create partition dir");
        for segment in &self.manifest.segments {
            fs::copy(self.src.join(&segment.file), dir.join(&segment.file)).expect("copy .log");
        }
        (tmp, dir)
    }

    fn open(&self, dir: &Path) -> Partition {
        Partition::open(dir, LogConfig::default())
            .unwrap_or_else(|e| panic!("{}: open failed: {e}", self.name))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The README's digest: per record `i64be(offset) [‖ i64be(timestamp)] ‖ bytes(key) ‖
/// bytes(value) ‖ i32be(header count) ‖ per header i32be(len(key)) ‖ key ‖ bytes(value)`.
fn records_digest<'a>(records: impl IntoIterator<Item = &'a OwnedRecord>, with_ts: bool) -> String {
    fn put(h: &mut Sha256, b: Option<&[u8]>) {
        match b {
            None => h.update((-1i32).to_be_bytes()),
            Some(b) => {
                h.update((b.len() as i32).to_be_bytes());
                h.update(b);
            }
        }
    }
    let mut h = Sha256::new();
    for r in records {
        h.update(r.offset.to_be_bytes());
        if with_ts {
            h.update(r.timestamp.to_be_bytes());
        }
        put(&mut h, r.key.as_deref());
        put(&mut h, r.value.as_deref());
        h.update((r.headers.len() as i32).to_be_bytes());
        for header in &r.headers {
            h.update((header.key.len() as i32).to_be_bytes());
            h.update(&header.key);
            put(&mut h, header.value.as_deref());
        }
    }
    hex(&h.finalize())
}

fn owned(view: &RecordView<'_>) -> OwnedRecord {
    OwnedRecord {
        offset: view.offset(),
        timestamp: view.timestamp(),
        key: view.key().map(<[u8]>::to_vec),
        value: view.value().map(<[u8]>::to_vec),
        headers: view
            .headers()
            .map(|h| OwnedHeader {
                key: h.key.to_vec(),
                value: h.value.map(<[u8]>::to_vec),
            })
            .collect(),
    }
}

/// Every batch of a `.log` file's bytes, with its position, checked for framing and CRC.
fn raw_batches(bytes: &[u8]) -> Vec<(u64, Batch<'_>)> {
    let mut batches = Batches::new(bytes);
    let mut out = Vec::new();
    loop {
        let position = batches.position() as u64;
        let Some(batch) = batches.next() else { break };
        let batch = batch.unwrap_or_else(|e| panic!("batch at byte {position}: {e}"));
        batch
            .verify_crc()
            .unwrap_or_else(|e| panic!("batch at byte {position}: {e}"));
        out.push((position, batch));
    }
    out
}

/// The control records of a partition directory, decoded from its raw batches.
fn raw_control_records(dir: &Path, manifest: &Manifest) -> Vec<OwnedRecord> {
    let mut out = Vec::new();
    for segment in &manifest.segments {
        let bytes = fs::read(dir.join(&segment.file)).expect("read .log");
        for (position, batch) in raw_batches(&bytes) {
            if !batch.header().is_control() {
                continue;
            }
            let records = batch
                .records()
                .unwrap_or_else(|e| panic!("control batch at {position}: {e}"));
            for record in records {
                out.push(owned(&record.expect("control record decodes")));
            }
        }
    }
    out
}

/// All records from `from` to the end of the log, owned; panics on any error.
fn read_all(log: &Partition, from: i64) -> Vec<OwnedRecord> {
    log.read(from)
        .unwrap_or_else(|e| panic!("read({from}): {e}"))
        .map(|r| {
            r.unwrap_or_else(|e| panic!("read({from}): {e}"))
                .to_owned_record()
        })
        .collect()
}

/// Asserts two record lists are equal, naming the first difference instead of dumping both.
fn assert_records_eq(got: &[OwnedRecord], want: &[OwnedRecord], context: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, w.offset, "{context}: offset of record #{i}");
        assert_eq!(
            g.timestamp, w.timestamp,
            "{context}: timestamp of offset {}",
            w.offset
        );
        assert_eq!(g.key, w.key, "{context}: key of offset {}", w.offset);
        assert!(
            g.value == w.value,
            "{context}: value of offset {} differs (got {:?} bytes, want {:?} bytes)",
            w.offset,
            g.value.as_ref().map(Vec::len),
            w.value.as_ref().map(Vec::len)
        );
        assert_eq!(
            g.headers, w.headers,
            "{context}: headers of offset {}",
            w.offset
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{context}: record count (last got {:?}, last wanted {:?})",
        got.last().map(|r| r.offset),
        want.last().map(|r| r.offset)
    );
}

/// Merges data records read through the partition with control records, by offset.
fn merge(data: &[OwnedRecord], control: &[OwnedRecord]) -> Vec<OwnedRecord> {
    let mut all: Vec<OwnedRecord> = data.iter().chain(control).cloned().collect();
    all.sort_by_key(|r| r.offset);
    all
}

// ---------------------------------------------------------------------------------------------
// Checks shared by every directory
// ---------------------------------------------------------------------------------------------

/// The fixture files are intact and `Batches` parses them as the manifest describes.
fn check_raw_batches(name: &'static str) {
    let fx = Fixture::load(name);
    let m = &fx.manifest;
    assert_eq!(m.summary_int("files") as usize, m.segments.len(), "files");
    assert_eq!(
        m.summary_int("batches") as usize,
        m.batches.len(),
        "batches"
    );
    assert_eq!(
        m.summary_int("records") as usize,
        m.records.len(),
        "records"
    );

    let mut parsed: Vec<BatchInfo> = Vec::new();
    let mut decoded: Vec<OwnedRecord> = Vec::new();
    let mut total_bytes = 0u64;
    for segment in &m.segments {
        let bytes = fs::read(fx.src.join(&segment.file)).expect("read .log");
        assert_eq!(bytes.len() as u64, segment.bytes, "{}: size", segment.file);
        assert_eq!(
            sha256_hex(&bytes),
            segment.sha256,
            "{}: sha256",
            segment.file
        );
        assert_eq!(
            segment.file,
            format!("{:020}.log", segment.base_offset),
            "segment file name"
        );
        total_bytes += segment.bytes;
        let batches = raw_batches(&bytes);
        assert_eq!(batches.len(), segment.batches, "{}: batches", segment.file);
        assert_eq!(
            batches.first().map(|(_, b)| b.header().base_offset),
            Some(segment.base_offset),
            "{}: first batch starts at the segment's base offset",
            segment.file
        );
        let mut segment_records = 0usize;
        for (position, batch) in batches {
            let h = *batch.header();
            assert_eq!(h.magic, 2);
            assert_eq!(h.size(), batch.size());
            assert_eq!(batch.compute_crc(), h.crc);
            assert!(!h.has_delete_horizon());
            let compression = h.compression().expect("known codec");
            parsed.push(BatchInfo {
                file: segment.file.clone(),
                position,
                size: batch.size(),
                base_offset: h.base_offset,
                last_offset_delta: h.last_offset_delta,
                records: h.records_count,
                compression: compression.name().to_owned(),
                crc: h.crc,
                first_timestamp: h.base_timestamp,
                max_timestamp: h.max_timestamp,
                timestamp_type: match h.timestamp_type() {
                    TimestampType::CreateTime => "create_time",
                    TimestampType::LogAppendTime => "log_append_time",
                }
                .to_owned(),
                transactional: h.is_transactional(),
                control: h.is_control(),
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
            });
            segment_records += h.records_count as usize;
            // Record-level decoding: a batch must decode fully when this build has its codec,
            // and be `UnsupportedCompression` when it does not.
            let mut buf = Vec::new();
            match batch.records_in(&mut buf, DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES) {
                Ok(records) => {
                    let records: Vec<OwnedRecord> = records
                        .map(|r| owned(&r.expect("record decodes")))
                        .collect();
                    assert_eq!(records.len() as i32, h.records_count, "batch at {position}");
                    decoded.extend(records);
                }
                Err(e) => {
                    assert_ne!(compression.name(), "none", "batch at {position}: {e}");
                    assert!(!is_supported(compression), "batch at {position}: {e}");
                    assert_eq!(
                        e.kind,
                        DecodeErrorKind::UnsupportedCompression(compression),
                        "batch at {position}"
                    );
                    let want = m
                        .records
                        .iter()
                        .filter(|r| (h.base_offset..=h.last_offset()).contains(&r.record.offset));
                    decoded.extend(want.map(|r| r.record.clone()));
                }
            }
        }
        assert_eq!(
            segment_records, segment.records,
            "{}: records",
            segment.file
        );
    }
    assert_eq!(total_bytes as i64, m.summary_int("bytes"), "summary bytes");

    assert_eq!(parsed.len(), m.batches.len(), "batch count");
    for (got, want) in parsed.iter().zip(&m.batches) {
        let at = format!("{name} {} @{}", want.file, want.position);
        assert_eq!(got.file, want.file, "{at}: file");
        assert_eq!(got.position, want.position, "{at}: position");
        assert_eq!(got.size, want.size, "{at}: size");
        assert_eq!(got.base_offset, want.base_offset, "{at}: base offset");
        assert_eq!(
            got.last_offset_delta, want.last_offset_delta,
            "{at}: last delta"
        );
        assert_eq!(got.records, want.records, "{at}: record count");
        assert_eq!(got.compression, want.compression, "{at}: compression");
        assert_eq!(got.crc, want.crc, "{at}: crc");
        assert_eq!(got.first_timestamp, want.first_timestamp, "{at}: first ts");
        assert_eq!(got.max_timestamp, want.max_timestamp, "{at}: max ts");
        assert_eq!(got.timestamp_type, want.timestamp_type, "{at}: ts type");
        assert_eq!(got.transactional, want.transactional, "{at}: transactional");
        assert_eq!(got.control, want.control, "{at}: control");
        assert_eq!(got.producer_id, want.producer_id, "{at}: producer id");
        assert_eq!(
            got.producer_epoch, want.producer_epoch,
            "{at}: producer epoch"
        );
        assert_eq!(got.base_sequence, want.base_sequence, "{at}: base sequence");
    }

    // Summary counts against the batches.
    let control_batches = m.batches.iter().filter(|b| b.control).count();
    assert_eq!(control_batches as i64, m.summary_int("control_batches"));
    let codecs = m.summary["compression"].as_object().expect("codec counts");
    for (codec, count) in codecs {
        let n = m.batches.iter().filter(|b| &b.compression == codec).count();
        assert_eq!(n as i64, int(count), "batches with codec {codec}");
    }
    assert_eq!(
        codecs.values().map(int).sum::<i64>() as usize,
        m.batches.len()
    );

    // The records as the raw batches decode them (the manifest's for batches this build cannot
    // decompress) are the manifest's records, and the manifest's records give its digests (so
    // the digest code here is the README's).
    assert_records_eq(&decoded, &m.all_records(), &format!("{name}: raw records"));
    assert_eq!(
        records_digest(&m.all_records(), false),
        m.summary_str("records_sha256"),
        "manifest records vs records_sha256"
    );
    assert_eq!(
        records_digest(&m.all_records(), true),
        m.summary_str("records_ts_sha256"),
        "manifest records vs records_ts_sha256"
    );
    let control = m.records.iter().filter(|r| r.control).count();
    assert_eq!(
        control,
        m.batches
            .iter()
            .filter(|b| b.control)
            .map(|b| b.records as usize)
            .sum::<usize>(),
        "control records are exactly the records of control batches"
    );
    for r in &m.records {
        assert_eq!(r.control, m.batch_of(r.record.offset).control);
    }
}

/// What the first open of a directory holding only Kafka's `.log` files must report.
fn check_first_open_report(fx: &Fixture, log: &Partition) {
    let report = log.recovery();
    let name = fx.name;
    assert!(!report.clean_shutdown, "{name}: no marker, so not clean");
    assert!(report.unclean_reason.is_some(), "{name}: unclean reason");
    assert_eq!(report.recovery_point, 0, "{name}: recovery point");
    assert_eq!(
        report.segments_scanned,
        fx.manifest.segments.len(),
        "{name}: every segment is scanned"
    );
    assert!(
        report.truncations.is_empty(),
        "{name}: {:?}",
        report.truncations
    );
    assert!(
        report.removed_segments.is_empty(),
        "{name}: {:?}",
        report.removed_segments
    );
    assert_eq!(report.bytes_lost(), 0, "{name}: bytes lost");
    assert!(
        report.removed_files.is_empty(),
        "{name}: {:?}",
        report.removed_files
    );
    assert!(
        report.ignored_files.is_empty(),
        "{name}: {:?}",
        report.ignored_files
    );
    check_offsets(fx, log);
}

fn check_offsets(fx: &Fixture, log: &Partition) {
    let m = &fx.manifest;
    let bases: Vec<i64> = m.segments.iter().map(|s| s.base_offset).collect();
    assert_eq!(log.segment_base_offsets(), bases, "{}: segments", fx.name);
    assert_eq!(log.log_start_offset(), bases[0], "{}: log start", fx.name);
    assert_eq!(
        log.next_offset(),
        m.summary_int("next_offset"),
        "{}: next offset",
        fx.name
    );
}

/// The `.log` files are byte for byte what Kafka wrote.
fn check_logs_untouched(fx: &Fixture, dir: &Path) {
    for segment in &fx.manifest.segments {
        let bytes = fs::read(dir.join(&segment.file)).expect("read .log");
        assert_eq!(
            sha256_hex(&bytes),
            segment.sha256,
            "{}: {} was modified",
            fx.name,
            segment.file
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Uncompressed directories
// ---------------------------------------------------------------------------------------------

/// Reads from the start: exact records, and the manifest's digests over them plus the control
/// records of the raw batches.
fn check_read_all(fx: &Fixture, log: &Partition, dir: &Path) -> Vec<OwnedRecord> {
    let m = &fx.manifest;
    let got = read_all(log, log.log_start_offset());
    assert_records_eq(&got, &m.data_records(), &format!("{}: read all", fx.name));

    let all = merge(&got, &raw_control_records(dir, m));
    assert_eq!(all.len() as i64, m.summary_int("records"));
    assert_eq!(
        records_digest(&all, false),
        m.summary_str("records_sha256"),
        "{}: records_sha256",
        fx.name
    );
    assert_eq!(
        records_digest(&all, true),
        m.summary_str("records_ts_sha256"),
        "{}: records_ts_sha256",
        fx.name
    );
    assert_eq!(
        all.first().map(|r| r.offset),
        Some(m.summary_int("first_offset"))
    );
    assert_eq!(
        all.last().map(|r| r.offset),
        Some(m.summary_int("last_offset"))
    );
    let (min_ts, max_ts) = all.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.timestamp), hi.max(r.timestamp))
    });
    assert_eq!(
        min_ts,
        m.summary_int("min_timestamp"),
        "{}: min ts",
        fx.name
    );
    assert_eq!(
        max_ts,
        m.summary_int("max_timestamp"),
        "{}: max ts",
        fx.name
    );
    got
}

/// `read(o)` for every `o` in `[log start, log end]` starts at the first data record at or after
/// `o` (so a gap or a control offset starts at the next present record); from a few offsets the
/// whole rest of the log is compared. Offsets outside the range are refused.
fn check_read_from_every_offset(fx: &Fixture, log: &Partition) {
    let name = fx.name;
    let m = &fx.manifest;
    let data = m.data_records();
    let (start, end) = (log.log_start_offset(), log.next_offset());
    for from in start..=end {
        let i = data.partition_point(|r| r.offset < from);
        let got: Vec<OwnedRecord> = log
            .read(from)
            .unwrap_or_else(|e| panic!("{name}: read({from}): {e}"))
            .take(2)
            .map(|r| {
                r.unwrap_or_else(|e| panic!("{name}: read({from}): {e}"))
                    .to_owned_record()
            })
            .collect();
        let want = &data[i..(i + 2).min(data.len())];
        assert_records_eq(&got, want, &format!("{name}: read({from}).take(2)"));
    }

    // Whole suffixes from each segment's and batch's base, the offset after it, and the middle.
    let mut froms: BTreeSet<i64> = BTreeSet::new();
    froms.extend(m.segments.iter().map(|s| s.base_offset));
    for b in &m.batches {
        froms.extend([b.base_offset, b.base_offset + 1, b.last_offset()]);
    }
    froms.insert(data[data.len() / 2].offset);
    froms.insert(end);
    for from in froms.into_iter().filter(|&o| o <= end) {
        let i = data.partition_point(|r| r.offset < from);
        assert_records_eq(
            &read_all(log, from),
            &data[i..],
            &format!("{name}: read({from})"),
        );
    }

    for bad in [start - 1, end + 1, i64::MIN, i64::MAX] {
        match log.read(bad) {
            Err(Error::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            }) => assert_eq!((requested, log_start, log_end), (bad, start, end)),
            other => panic!("{name}: read({bad}) should be out of range, got {other:?}"),
        }
    }
}

/// `offset_for_timestamp(t)` is the smallest offset whose timestamp is `>= t`, control records
/// included (Kafka's ListOffsets by time), with that record's timestamp.
fn expected_for_timestamp(all: &[OwnedRecord], target: i64) -> Option<TimestampOffset> {
    all.iter()
        .filter(|r| r.timestamp >= target)
        .min_by_key(|r| r.offset)
        .map(|r| TimestampOffset {
            offset: r.offset,
            timestamp: r.timestamp,
        })
}

fn timestamp_targets(all: &[OwnedRecord]) -> BTreeSet<i64> {
    let mut targets = BTreeSet::from([0, i64::MAX]);
    for r in all {
        targets.extend([r.timestamp - 1, r.timestamp, r.timestamp + 1]);
    }
    targets
}

fn check_offset_for_timestamp(fx: &Fixture, log: &Partition) {
    let all = fx.manifest.all_records();
    for target in timestamp_targets(&all) {
        let got = log
            .offset_for_timestamp(target)
            .unwrap_or_else(|e| panic!("{}: offset_for_timestamp({target}): {e}", fx.name));
        assert_eq!(
            got,
            expected_for_timestamp(&all, target),
            "{}: offset_for_timestamp({target})",
            fx.name
        );
    }
}

/// Open (unclean, nothing cut), read everything every way, close, check the `.log` files are
/// untouched, reopen (clean) and read again.
fn check_uncompressed(name: &'static str) {
    let fx = Fixture::load(name);
    assert!(!fx.manifest.is_compressed());
    check_reads_exactly(fx);
}

/// Every read the manifest pins down, for a directory whose batches this build can all decode.
fn check_reads_exactly(fx: Fixture) {
    let name = fx.name;
    let (_tmp, dir) = fx.copy();

    let log = fx.open(&dir);
    check_first_open_report(&fx, &log);
    let first = check_read_all(&fx, &log, &dir);
    check_read_from_every_offset(&fx, &log);
    check_offset_for_timestamp(&fx, &log);
    log.close().expect("close");
    drop(log);
    check_logs_untouched(&fx, &dir);

    let log = fx.open(&dir);
    let report = log.recovery();
    assert!(
        report.clean_shutdown,
        "{name}: reopen after close is clean: {report:?}"
    );
    assert_eq!(report.unclean_reason, None);
    assert_eq!(report.segments_scanned, 0, "{name}: nothing rescanned");
    assert!(report.truncations.is_empty() && report.removed_segments.is_empty());
    assert_eq!(report.bytes_lost(), 0);
    check_offsets(&fx, &log);
    assert_records_eq(
        &read_all(&log, log.log_start_offset()),
        &first,
        &format!("{name}: after reopen"),
    );
    check_read_from_every_offset(&fx, &log);
    check_offset_for_timestamp(&fx, &log);
    log.close().expect("close");
    drop(log);
    check_logs_untouched(&fx, &dir);
}

// ---------------------------------------------------------------------------------------------
// Compressed directories
// ---------------------------------------------------------------------------------------------

/// Reads from `from` to the end. Each non-control batch holding offsets `>= from` must either
/// yield its records (exactly the manifest's) or, for a compressed batch, one
/// `UnsupportedCompression` naming its codec, file and position, after which the reader goes
/// on with the next batch. Returns how many batches were refused.
fn check_compressed_read(fx: &Fixture, log: &Partition, dir: &Path, from: i64) -> usize {
    let name = fx.name;
    let m = &fx.manifest;
    let mut reader = log
        .read(from)
        .unwrap_or_else(|e| panic!("{name}: read({from}): {e}"));
    let mut refused = 0;
    let batches = m
        .batches
        .iter()
        .filter(|b| !b.control && b.last_offset() >= from);
    for batch in batches {
        let want: Vec<OwnedRecord> = m
            .records
            .iter()
            .filter(|r| batch.holds(r.record.offset) && r.record.offset >= from)
            .map(|r| r.record.clone())
            .collect();
        if want.is_empty() {
            continue;
        }
        let at = format!(
            "{name}: read({from}) at batch {}@{}",
            batch.file, batch.position
        );
        let mut got = Vec::new();
        while got.len() < want.len() {
            match reader.next() {
                Some(Ok(record)) => got.push(record.to_owned_record()),
                Some(Err(Error::UnsupportedCompression {
                    codec,
                    path,
                    position,
                })) => {
                    assert!(got.is_empty(), "{at}: error after {} records", got.len());
                    assert_ne!(
                        batch.compression, "none",
                        "{at}: uncompressed batch refused"
                    );
                    assert_eq!(codec.name(), batch.compression, "{at}: codec");
                    assert_eq!(position, batch.position, "{at}: position");
                    assert_eq!(path, dir.join(&batch.file), "{at}: path");
                    refused += 1;
                    break;
                }
                Some(Err(e)) => panic!("{at}: {e}"),
                None => panic!("{at}: the log ended early"),
            }
        }
        if !got.is_empty() {
            assert_records_eq(&got, &want, &at);
        }
    }
    if let Some(extra) = reader.next() {
        panic!("{name}: read({from}) returned more than the manifest holds: {extra:?}");
    }
    refused
}

fn check_compressed_offset_for_timestamp(fx: &Fixture, log: &Partition) {
    let m = &fx.manifest;
    let all = m.all_records();
    for target in timestamp_targets(&all) {
        let want = expected_for_timestamp(&all, target);
        match log.offset_for_timestamp(target) {
            Ok(got) => assert_eq!(got, want, "{}: offset_for_timestamp({target})", fx.name),
            // The search may have to look inside a compressed batch on its way.
            Err(Error::UnsupportedCompression { .. }) => {
                let want = want.expect("a refusal means a batch was searched");
                let earlier_compressed = m.batches.iter().any(|b| {
                    b.compression != "none"
                        && b.base_offset <= want.offset
                        && b.max_timestamp >= target
                });
                assert!(
                    earlier_compressed,
                    "{}: offset_for_timestamp({target}) refused but the answer {want:?} \
                     needs no compressed batch",
                    fx.name
                );
            }
            Err(e) => panic!("{}: offset_for_timestamp({target}): {e}", fx.name),
        }
    }
}

fn check_compressed(name: &'static str, codec: &str) {
    let fx = Fixture::load(name);
    let m = &fx.manifest;
    assert!(m.batches.iter().any(|b| b.compression == codec));
    let uncompressed: Vec<&BatchInfo> = m
        .batches
        .iter()
        .filter(|b| b.compression == "none" && !b.control)
        .collect();
    assert!(
        !uncompressed.is_empty(),
        "{name}: holds an uncompressed batch"
    );
    let (_tmp, dir) = fx.copy();

    let log = fx.open(&dir);
    check_first_open_report(&fx, &log);

    let refused = check_compressed_read(&fx, &log, &dir, log.log_start_offset());
    let compressed = m.batches.iter().filter(|b| b.compression != "none").count();
    assert_eq!(
        refused, compressed,
        "{name}: every compressed batch is refused in a build without {codec}"
    );
    // From inside the uncompressed batch, and from inside each compressed one.
    let mut froms: BTreeSet<i64> = BTreeSet::new();
    for b in &m.batches {
        froms.extend([b.base_offset, b.base_offset + 1, b.last_offset()]);
    }
    froms.insert(log.next_offset());
    for from in froms.into_iter().filter(|&o| o <= log.next_offset()) {
        check_compressed_read(&fx, &log, &dir, from);
    }
    for b in &uncompressed {
        let got: Vec<OwnedRecord> = log
            .read(b.base_offset)
            .expect("read")
            .take(b.records as usize)
            .map(|r| r.expect("uncompressed batch reads").to_owned_record())
            .collect();
        let want: Vec<OwnedRecord> = m
            .data_records()
            .into_iter()
            .filter(|r| b.holds(r.offset))
            .collect();
        assert_records_eq(&got, &want, &format!("{name}: uncompressed batch"));
    }
    check_compressed_offset_for_timestamp(&fx, &log);

    log.close().expect("close");
    drop(log);
    check_logs_untouched(&fx, &dir);
    let log = fx.open(&dir);
    assert!(log.recovery().clean_shutdown, "{name}: reopen is clean");
    assert_eq!(log.recovery().bytes_lost(), 0);
    check_offsets(&fx, &log);
    assert_eq!(
        check_compressed_read(&fx, &log, &dir, log.log_start_offset()),
        refused
    );
}

/// A compressed directory reads exactly as its manifest says when this build has its codec
/// (every check of the uncompressed directories), and otherwise keeps every batch and refuses
/// each compressed one with `UnsupportedCompression`.
fn check_compressed_dir(name: &'static str, codec: Compression) {
    if is_supported(codec) {
        let fx = Fixture::load(name);
        assert!(fx.manifest.is_compressed());
        check_reads_exactly(fx);
    } else {
        check_compressed(name, codec.name());
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

macro_rules! raw_batch_tests {
    ($($test:ident => $dir:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check_raw_batches($dir);
        }
    )*};
}

raw_batch_tests! {
    raw_batches_plain => "plain-0",
    raw_batches_gaps => "gaps-0",
    raw_batches_transactions => "transactions-0",
    raw_batches_idempotent => "idempotent-0",
    raw_batches_logappendtime => "logappendtime-0",
    raw_batches_dupheaders => "dupheaders-0",
    raw_batches_gzip => "gzip-0",
    raw_batches_snappy => "snappy-0",
    raw_batches_lz4 => "lz4-0",
    raw_batches_zstd => "zstd-0",
}

#[test]
fn plain_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("plain-0");
}

/// The exact-equality checks above cover every edge case the README promises for `plain-0`:
/// this pins that the fixture really holds them.
#[test]
fn plain_fixture_holds_the_edge_cases() {
    let fx = Fixture::load("plain-0");
    let data = fx.manifest.data_records();
    let count = |f: &dyn Fn(&OwnedRecord) -> bool| data.iter().filter(|r| f(r)).count();
    let headers = || data.iter().flat_map(|r| &r.headers);
    assert!(count(&|r| r.key.is_none()) > 0, "null keys");
    assert!(count(&|r| r.key.as_deref() == Some(&[])) > 0, "empty keys");
    assert!(count(&|r| r.value.is_none()) > 0, "null values");
    assert!(
        count(&|r| r.value.as_deref() == Some(&[])) > 0,
        "empty values"
    );
    assert!(
        count(&|r| r.headers.is_empty()) > 0,
        "records without headers"
    );
    assert!(headers().any(|h| h.value.is_none()), "null header values");
    assert!(
        headers().any(|h| h.value.as_deref() == Some(&[])),
        "empty header values"
    );
    assert!(headers().any(|h| h.key.is_empty()), "empty header keys");
    assert!(
        headers().any(|h| !h.key.is_ascii()),
        "non-ASCII header keys"
    );
    let largest = data
        .iter()
        .filter_map(|r| r.value.as_ref().map(Vec::len))
        .max();
    assert_eq!(largest, Some(64 * 1024), "values up to exactly 64 KiB");
    assert!(fx.manifest.segments.len() > 10, "many segments");
}

#[test]
fn gaps_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("gaps-0");
}

/// Missing offsets (compaction gaps, inside and between batches) start a read at the next
/// present record.
#[test]
fn gaps_reading_at_a_missing_offset_starts_at_the_next_record() {
    let fx = Fixture::load("gaps-0");
    let data = fx.manifest.data_records();
    let present: BTreeSet<i64> = data.iter().map(|r| r.offset).collect();
    let missing: Vec<i64> = (1000..fx.manifest.summary_int("next_offset"))
        .filter(|o| !present.contains(o))
        .collect();
    assert!(missing.len() > 100, "the fixture has gaps");
    let between_batches = fx
        .manifest
        .batches
        .windows(2)
        .filter(|w| w[1].base_offset > w[0].last_offset() + 1)
        .count();
    assert!(between_batches > 0, "some gaps fall between batches");
    let (_tmp, dir) = fx.copy();
    let log = fx.open(&dir);
    for &o in &missing {
        let next = *present.range(o..).next().expect("a later record");
        let first = log.read(o).expect("read").next().expect("a record");
        assert_eq!(first.expect("record").offset(), next, "read({o})");
    }
}

#[test]
fn transactions_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("transactions-0");
}

/// Control records are never data, and a read at a marker's offset starts after it.
#[test]
fn transactions_control_records_are_never_returned() {
    let fx = Fixture::load("transactions-0");
    let control: Vec<i64> = fx
        .manifest
        .records
        .iter()
        .filter(|r| r.control)
        .map(|r| r.record.offset)
        .collect();
    assert_eq!(control.len(), 6);
    let (_tmp, dir) = fx.copy();
    let log = fx.open(&dir);
    let offsets: BTreeSet<i64> = read_all(&log, 0).iter().map(|r| r.offset).collect();
    assert_eq!(offsets.len(), 500);
    for &o in &control {
        assert!(!offsets.contains(&o), "control offset {o} returned as data");
        let first = log.read(o).expect("read").next();
        match first {
            Some(r) => assert_eq!(r.expect("record").offset(), o + 1),
            None => assert_eq!(
                o + 1,
                log.next_offset(),
                "only the last marker ends the log"
            ),
        }
    }
    // The raw control records are transaction markers: key = version 0, type 0 (ABORT) or 1
    // (COMMIT); value = version 0 and a coordinator epoch.
    for r in raw_control_records(&dir, &fx.manifest) {
        let key = r.key.expect("marker key");
        assert_eq!(key.len(), 4);
        assert_eq!(&key[..2], &[0, 0]);
        assert!(matches!(key[2..], [0, 0] | [0, 1]), "marker type {key:?}");
        assert_eq!(r.value.expect("marker value").len(), 6);
    }
}

#[test]
fn idempotent_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("idempotent-0");
}

#[test]
fn logappendtime_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("logappendtime-0");
}

#[test]
fn dupheaders_partition_reads_as_kafka_wrote_it() {
    check_uncompressed("dupheaders-0");
}

/// The fixture really repeats header keys, and `headers()` on the borrowed record (not only the
/// owned copy) keeps them in order.
#[test]
fn dupheaders_repeated_keys_keep_their_order() {
    let fx = Fixture::load("dupheaders-0");
    let data = fx.manifest.data_records();
    let repeated = data
        .iter()
        .filter(|r| {
            let keys: BTreeSet<&[u8]> = r.headers.iter().map(|h| &h.key[..]).collect();
            keys.len() < r.headers.len()
        })
        .count();
    assert!(
        repeated >= 16,
        "the fixture repeats header keys ({repeated})"
    );
    let (_tmp, dir) = fx.copy();
    let log = fx.open(&dir);
    let mut n = 0;
    for (record, want) in log.read(0).expect("read").zip(&data) {
        let record = record.expect("record");
        let got: Vec<(&[u8], Option<&[u8]>)> = record.headers().map(|h| (h.key, h.value)).collect();
        let want: Vec<(&[u8], Option<&[u8]>)> = want
            .headers
            .iter()
            .map(|h| (&h.key[..], h.value.as_deref()))
            .collect();
        assert_eq!(got, want, "offset {}", record.offset());
        n += 1;
    }
    assert_eq!(n, data.len());
}

#[test]
fn gzip_partition_reads_as_kafka_wrote_it() {
    check_compressed_dir("gzip-0", Compression::Gzip);
}

#[test]
fn snappy_partition_reads_as_kafka_wrote_it() {
    check_compressed_dir("snappy-0", Compression::Snappy);
}

#[test]
fn lz4_partition_reads_as_kafka_wrote_it() {
    check_compressed_dir("lz4-0", Compression::Lz4);
}

#[test]
fn zstd_partition_reads_as_kafka_wrote_it() {
    check_compressed_dir("zstd-0", Compression::Zstd);
}
