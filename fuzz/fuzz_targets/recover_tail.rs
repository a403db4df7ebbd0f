//! `recover_tail`: opening a partition whose last segment ends in a torn or garbage tail.
//!
//! The input's first bytes describe a valid prefix: a base offset, up to seven uncompressed
//! batches (records with keys, values, headers and timestamps from the input; CreateTime or
//! LogAppendTime; transactional and control bits), optionally split over two segments, and
//! optionally garbage `.index`/`.timeindex` files beside the last `.log`. The batches are
//! written with `topiclog::record::encode_batch`, with no clean-shutdown marker and no recovery
//! checkpoint, as a crash leaves them. Then a tail goes after the last segment's batches:
//!
//! * `Raw`: the rest of the input;
//! * `Torn`: one more valid batch cut short, then the rest of the input;
//! * `Zeros`: a run of zeros (preallocated space), then the rest of the input;
//! * `Copy`: a byte copy of one prefix batch with a new base offset and leader epoch (fields
//!   outside the CRC, so the copy stays CRC-valid: it may continue the log, with a gap, or go
//!   backwards), then the rest of the input.
//!
//! What must hold (the durability contract of `Partition::open`: a torn tail of unflushed data
//! is cut, never an error):
//!
//! * `Partition::open_read_only` and `Partition::open` both succeed and agree on the next
//!   offset and on every record read.
//! * The next offset is at least the prefix's; it is more only if the tail kept a whole,
//!   CRC-valid batch, and then the last segment is longer than its prefix. Otherwise the file
//!   is cut exactly at the end of the prefix, and `RecoveryReport::bytes_lost` is the tail.
//! * Reading from the log start never errors; the records read are the prefix's non-control
//!   records, exactly (offset, timestamp, key, value, headers), then records at rising offsets
//!   below the next offset. They equal what the pure codec decodes from the recovered files.
//! * Reading from every offset in `[log start, next offset]` starts at the first record at or
//!   after it; `offset_for_timestamp(t)` for every record timestamp `t` is the first record
//!   (control records included) with a timestamp `>= t`.
//! * `inspect::verify_partition` reports no problem and no torn tail.
//! * An append after recovery gets the next offset and reads back; after `close`, a reopen is
//!   clean, keeps every record, and still verifies.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use topiclog::inspect;
use topiclog::record::{
    BATCH_HEADER_LEN, BatchParams, Batches, Header, Record, TimestampType, encode_batch,
};
use topiclog::Partition;
use topiclog::config::LogConfig;

/// Batches in the prefix, at most.
const MAX_BATCHES: u8 = 7;
/// Records per batch, at most.
const MAX_RECORDS: u8 = 4;
/// `now_ms` given to the encoder: the append time of LogAppendTime batches.
const APPEND_TIME_MS: i64 = 1_700_000_000_000;

/// A record as read back: everything a reader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A record decoded from the files, with its batch's control bit.
#[derive(Debug, Clone)]
struct OnDisk {
    seen: Seen,
    control: bool,
}

/// Takes bytes from the front of the input; zeros once it is spent.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        i64::from_be_bytes(b)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// One record's owned parts, from the input.
#[derive(Debug, Clone)]
struct OwnedRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// Optional bytes: length `b % modulus`, null when the length byte is `0xff`.
fn field(input: &mut Input<'_>, modulus: u8) -> Option<Vec<u8>> {
    let b = input.byte();
    if b == 0xff {
        return None;
    }
    Some(input.bytes(usize::from(b % modulus)).to_vec())
}

fn gen_record(input: &mut Input<'_>, index: i64) -> OwnedRecord {
    let key = field(input, 8);
    let value = field(input, 32);
    let header_count = input.byte() % 3;
    let headers = (0..header_count)
        .map(|_| {
            let key = field(input, 6).unwrap_or_default();
            (key, field(input, 6))
        })
        .collect();
    let timestamp = match input.byte() % 4 {
        0 => input.i64(),
        1 => APPEND_TIME_MS - 1_000 + index,
        2 => 1_000 - index,
        _ => 1_000 + i64::from(input.byte()),
    };
    OwnedRecord {
        key,
        value,
        headers,
        timestamp,
    }
}

/// Encodes a batch of `records` at `base_offset`, returning its bytes.
fn encode(records: &[OwnedRecord], params: &BatchParams) -> Vec<u8> {
    let headers: Vec<Vec<Header<'_>>> = records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| Header::new(k, v.as_deref()))
                .collect()
        })
        .collect();
    let borrowed: Vec<Record<'_>> = records
        .iter()
        .zip(&headers)
        .map(|(r, h)| Record {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: h,
            timestamp: Some(r.timestamp),
        })
        .collect();
    let mut out = Vec::new();
    encode_batch(&mut out, params, &borrowed, APPEND_TIME_MS).expect("small batch encodes");
    out
}

/// Batch parameters from one input byte.
fn gen_params(input: &mut Input<'_>, base_offset: i64) -> (BatchParams, u8) {
    let b = input.byte();
    let params = BatchParams {
        base_offset,
        timestamp_type: if b & 0x10 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        transactional: b & 0x20 != 0,
        // Control batches are rare: a reader skips them, recovery must keep them.
        control: b & 0xc0 == 0xc0,
        ..BatchParams::default()
    };
    (params, 1 + b % MAX_RECORDS)
}

fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn seen(offset: i64, timestamp: i64, r: &OwnedRecord) -> Seen {
    Seen {
        offset,
        timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    }
}

fn read_all(log: &Partition, from: i64) -> Vec<Seen> {
    let reader = log
        .read(from)
        .unwrap_or_else(|e| panic!("read({from}) failed: {e}"));
    reader
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("reading from {from} failed: {e}"));
            Seen {
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            }
        })
        .collect()
}

/// Every record in the partition's `.log` files, decoded with the pure codec: every batch must
/// frame, pass its CRC and decode, with nothing after the last batch.
fn decode_files(dir: &Path) -> Vec<OnDisk> {
    let mut out = Vec::new();
    for segment in inspect::list_segments(dir).expect("list segments") {
        let bytes = std::fs::read(&segment.log).expect("read .log");
        for batch in Batches::new(&bytes) {
            let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", segment.log.display()));
            batch.verify_crc().expect("recovered batch has a valid CRC");
            let control = batch.header().is_control();
            for record in batch.records().expect("uncompressed") {
                let r = record.expect("recovered record decodes");
                out.push(OnDisk {
                    control,
                    seen: Seen {
                        offset: r.offset(),
                        timestamp: r.timestamp(),
                        key: r.key().map(<[u8]>::to_vec),
                        value: r.value().map(<[u8]>::to_vec),
                        headers: r
                            .headers()
                            .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                            .collect(),
                    },
                });
            }
        }
    }
    out
}

fn total_log_bytes(dir: &Path) -> u64 {
    inspect::list_segments(dir)
        .expect("list segments")
        .iter()
        .map(|s| std::fs::metadata(&s.log).map_or(0, |m| m.len()))
        .sum()
}

/// Known finding (fuzz/README.md, `regressions/recover_tail-stale-active-index.bin`): an open
/// that recovers leaves the active segment's `.index`/`.timeindex` files as they were on disk
/// (it rebuilds them in memory only) until the first append or `close`, so `verify_partition`
/// reports their old entries meanwhile. Unless `TOPICLOG_FUZZ_STRICT` is set, problems in those
/// two files are not asserted on right after recovery (they are after the append and `close`),
/// so fuzzing goes on past it. Drop the tolerance once the library rewrites them on open.
fn tolerate_stale_active_index() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    !*STRICT.get_or_init(|| std::env::var_os("TOPICLOG_FUZZ_STRICT").is_some())
}

/// `verify_partition` finds nothing wrong; `stale_ok` names index files allowed to be stale.
fn assert_verifies(dir: &Path, when: &str, stale_ok: &[PathBuf]) {
    let report = inspect::verify_partition(dir).expect("verify_partition");
    let problems: Vec<_> = report
        .problems
        .iter()
        .filter(|p| !stale_ok.contains(&p.path))
        .collect();
    assert!(
        problems.is_empty() && report.torn_tail.is_none(),
        "verify_partition {when}: problems {problems:?}, torn tail {:?}",
        report.torn_tail
    );
}

/// Checks a partition opened on the recovered files against what they hold.
fn check_reads(log: &Partition, on_disk: &[OnDisk]) -> Vec<Seen> {
    let start = log.log_start_offset();
    let next = log.next_offset();
    let records = read_all(log, start);
    let data: Vec<Seen> = on_disk
        .iter()
        .filter(|r| !r.control)
        .map(|r| r.seen.clone())
        .collect();
    assert_eq!(
        records, data,
        "reader and codec disagree on the recovered files"
    );
    for pair in records.windows(2) {
        assert!(pair[0].offset < pair[1].offset, "offsets do not rise");
    }
    if let Some(last) = on_disk.last() {
        assert!(
            last.seen.offset < next,
            "a record at or past the next offset"
        );
    }
    // Reading from any offset starts at the first record at or after it: every offset of a
    // short log, else the ends and each record's neighbours (a copied tail batch may jump far).
    let froms: Vec<i64> = if next - start <= 512 {
        (start..=next).collect()
    } else {
        let mut v: Vec<i64> = records
            .iter()
            .flat_map(|r| [r.offset - 1, r.offset, r.offset + 1])
            .filter(|&o| o >= start && o <= next)
            .collect();
        v.extend([start, next]);
        v
    };
    for from in froms {
        let got = log
            .read(from)
            .unwrap_or_else(|e| panic!("read({from}) failed: {e}"))
            .next()
            .map(|r| {
                r.unwrap_or_else(|e| panic!("read({from}) failed: {e}"))
                    .offset()
            });
        let want = records.iter().find(|r| r.offset >= from).map(|r| r.offset);
        assert_eq!(got, want, "read({from}) started at the wrong record");
    }
    // offset_for_timestamp: the first record (control records included) at or after `t`.
    let mut probes: Vec<i64> = on_disk.iter().map(|r| r.seen.timestamp).collect();
    probes.extend([i64::MIN, i64::MAX]);
    probes.extend(probes.clone().iter().map(|t| t.saturating_add(1)));
    for t in probes {
        let got = log
            .offset_for_timestamp(t)
            .unwrap_or_else(|e| panic!("offset_for_timestamp({t}) failed: {e}"))
            .map(|x| (x.offset, x.timestamp));
        let want = on_disk
            .iter()
            .find(|r| r.seen.timestamp >= t)
            .map(|r| (r.seen.offset, r.seen.timestamp));
        assert_eq!(got, want, "offset_for_timestamp({t})");
    }
    records
}

fn tmp_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    let flags = input.byte();
    let batch_count = (flags & 0x07).min(MAX_BATCHES);
    let split = flags & 0x08 != 0;
    let small_interval = flags & 0x10 != 0;
    let garbage_indexes = flags & 0x20 != 0;
    let tail_kind = flags >> 6;
    let base = match input.byte() % 4 {
        0 => 0,
        1 => i64::from(input.u16()),
        2 => i64::from(i32::MAX) - 2,
        _ => i64::from(u32::MAX) + i64::from(input.byte()),
    };
    let interval = if small_interval {
        i32::from(input.byte())
    } else {
        topiclog::config::DEFAULT_INDEX_INTERVAL_BYTES
    };

    // The valid prefix.
    let mut batches: Vec<(i64, Vec<u8>)> = Vec::new(); // (first offset, bytes)
    let mut model: Vec<Seen> = Vec::new(); // non-control records, as a reader returns them
    let mut next = base;
    for _ in 0..batch_count {
        let (params, count) = gen_params(&mut input, next);
        let records: Vec<OwnedRecord> = (0..i64::from(count))
            .map(|i| gen_record(&mut input, next + i))
            .collect();
        let bytes = encode(&records, &params);
        if !params.control {
            for (i, r) in records.iter().enumerate() {
                let ts = match params.timestamp_type {
                    TimestampType::CreateTime => r.timestamp,
                    TimestampType::LogAppendTime => APPEND_TIME_MS,
                };
                model.push(seen(next + i as i64, ts, r));
            }
        }
        batches.push((next, bytes));
        next += i64::from(count);
    }
    let prefix_next = next;

    // Segments: all batches in one, or split at a batch boundary into two.
    let cut_at = if split && batches.len() >= 2 {
        1 + usize::from(input.byte()) % (batches.len() - 1)
    } else {
        0
    };
    let mut segments: Vec<(i64, Vec<u8>)> = Vec::new();
    if cut_at > 0 {
        let first: Vec<u8> = batches[..cut_at].iter().flat_map(|b| b.1.clone()).collect();
        segments.push((base, first));
        let second: Vec<u8> = batches[cut_at..].iter().flat_map(|b| b.1.clone()).collect();
        segments.push((batches[cut_at].0, second));
    } else {
        segments.push((base, batches.iter().flat_map(|b| b.1.clone()).collect()));
    }
    let (last_base, last_prefix) = segments.last().cloned().expect("one segment");
    let prefix_len = last_prefix.len() as u64;

    // Garbage index files beside the last segment.
    let index_bytes = garbage_indexes.then(|| {
        let n = usize::from(input.byte() % 64);
        let offsets = input.bytes(n).to_vec();
        let n = usize::from(input.byte() % 64);
        (offsets, input.bytes(n).to_vec())
    });

    // The tail.
    let mut tail = Vec::new();
    match tail_kind {
        0 => {}
        1 => {
            let (params, count) = gen_params(&mut input, prefix_next);
            let records: Vec<OwnedRecord> = (0..i64::from(count))
                .map(|i| gen_record(&mut input, prefix_next + i))
                .collect();
            let bytes = encode(&records, &params);
            let keep = usize::from(input.u16()) % bytes.len(); // always short of whole
            tail.extend_from_slice(&bytes[..keep]);
        }
        2 => tail.resize(usize::from(input.u16() % 8192), 0),
        _ => {
            if !batches.is_empty() {
                let which = usize::from(input.byte()) % batches.len();
                let mut copy = batches[which].1.clone();
                let new_base = match input.byte() % 4 {
                    0 => prefix_next,
                    1 => prefix_next + i64::from(input.byte()),
                    2 => prefix_next - 1 - i64::from(input.byte()),
                    _ => input.i64(),
                };
                copy[..8].copy_from_slice(&new_base.to_be_bytes());
                copy[12..16].copy_from_slice(&input.i64().to_be_bytes()[..4]);
                debug_assert!(copy.len() >= BATCH_HEADER_LEN);
                tail.extend_from_slice(&copy);
            }
        }
    }
    tail.extend_from_slice(input.rest());

    let dir = tempfile::Builder::new()
        .prefix("topiclog-fuzz-")
        .tempdir_in(tmp_root())
        .expect("tempdir");
    let dir = dir.path();
    for (i, (seg_base, bytes)) in segments.iter().enumerate() {
        let mut bytes = bytes.clone();
        if i + 1 == segments.len() {
            bytes.extend_from_slice(&tail);
        }
        std::fs::write(log_path(dir, *seg_base), &bytes).expect("write .log");
    }
    if let Some((offsets, times)) = &index_bytes {
        std::fs::write(dir.join(format!("{last_base:020}.index")), offsets).expect("write");
        std::fs::write(dir.join(format!("{last_base:020}.timeindex")), times).expect("write");
    }
    let bytes_before = total_log_bytes(dir);
    let config = LogConfig::builder()
        .index_interval_bytes(interval)
        .build()
        .expect("valid config");

    // Read-only first: it changes nothing.
    let (ro_next, ro_records) = {
        let log = Partition::open_read_only(dir, config.clone())
            .unwrap_or_else(|e| panic!("open_read_only failed: {e}"));
        let records = read_all(&log, log.log_start_offset());
        (log.next_offset(), records)
    };
    assert_eq!(
        total_log_bytes(dir),
        bytes_before,
        "a read-only open changed a file"
    );

    let log = Partition::open(dir, config.clone()).unwrap_or_else(|e| panic!("open failed: {e}"));
    assert_eq!(log.log_start_offset(), base);
    let next = log.next_offset();
    assert_eq!(
        next, ro_next,
        "read-only and writable opens disagree on the next offset"
    );
    assert!(
        next >= prefix_next,
        "recovery lost valid batches: next {next} < {prefix_next}"
    );
    let last_len = std::fs::metadata(log_path(dir, last_base))
        .expect("last .log")
        .len();
    if next == prefix_next {
        assert_eq!(
            last_len, prefix_len,
            "the tail was not cut at the end of the prefix"
        );
    } else {
        assert!(
            last_len > prefix_len,
            "offsets grew but no tail batch was kept"
        );
    }
    let bytes_after = total_log_bytes(dir);
    assert_eq!(log.recovery().bytes_lost(), bytes_before - bytes_after);

    let on_disk = decode_files(dir);
    let records = check_reads(&log, &on_disk);
    assert_eq!(
        records, ro_records,
        "read-only and writable opens read different records"
    );
    assert_eq!(
        &records[..model.len().min(records.len())],
        &model[..],
        "prefix records changed"
    );
    for r in &records[model.len()..] {
        assert!(
            r.offset >= prefix_next,
            "a tail record below the prefix's end"
        );
    }
    let stale_ok: Vec<PathBuf> = if tolerate_stale_active_index() {
        let last = log
            .segment_base_offsets()
            .last()
            .copied()
            .unwrap_or(last_base);
        ["index", "timeindex"]
            .iter()
            .map(|ext| dir.join(format!("{last:020}.{ext}")))
            .collect()
    } else {
        Vec::new()
    };
    assert_verifies(dir, "after recovery", &stale_ok);

    // The recovered log takes appends where it ended.
    let offset = log
        .append(Record::keyed(b"after", b"recovery").with_timestamp(APPEND_TIME_MS))
        .unwrap_or_else(|e| panic!("append after recovery failed: {e}"));
    assert_eq!(offset, next);
    let got = read_all(&log, offset);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_deref(), Some(&b"recovery"[..]));
    log.close().unwrap_or_else(|e| panic!("close failed: {e}"));
    drop(log);

    let log = Partition::open(dir, config).unwrap_or_else(|e| panic!("reopen failed: {e}"));
    assert!(
        log.recovery().clean_shutdown,
        "{:?}",
        log.recovery().unclean_reason
    );
    assert_eq!(log.next_offset(), next + 1);
    let again = read_all(&log, log.log_start_offset());
    assert_eq!(&again[..records.len()], &records[..]);
    assert_eq!(again.len(), records.len() + 1);
    drop(log);
    assert_verifies(dir, "after close", &[]);
});
