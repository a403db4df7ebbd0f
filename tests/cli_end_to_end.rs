//! The `topiclog` command-line tool, run as a real process (`CARGO_BIN_EXE_topiclog`, so this
//! target needs the `cli` feature): topics are created and described, lines of stdin produced
//! (keys, batches, `\r\n` and non-UTF-8 lines) and consumed back (plain, JSON, base64, by
//! offset, by time, capped, one partition, following a live writer); keyed records land where
//! the library's partitioner puts them; `dump` prints segments and indexes; `verify` passes a
//! healthy store, fails (exit 1) on a flipped byte or a wrong index entry in a sealed segment
//! and only reports a torn tail of an active segment; `delete-records` and `enforce-retention`
//! delete; `recover` refuses damaged fsynced data and a missing log-start checkpoint unless
//! its flags allow the repair; read-only commands run beside a process holding the store's lock while writing
//! commands fail with exit 2 and one stderr line; usage errors exit 2; a closed stdout ends a
//! command quietly with 0.
//!
//! Tests run one at a time: a child process spawned by one test holds copies of the other
//! tests' descriptors (store locks among them) between its fork and its exec.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use topiclog::config::{LogConfig, TopicConfig};
use topiclog::inspect;
use topiclog::partitioner::partition_for_key;
use topiclog::record::{Header, Record};
use topiclog::{OwnedRecord, Store};

const BIN: &str = env!("CARGO_BIN_EXE_topiclog");

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a run of the tool did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("UTF-8 output")
    }

    fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    /// Asserts success and returns stdout as text.
    #[track_caller]
    fn ok(&self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        assert_eq!(self.stderr, "", "{self:?}");
        self.text()
    }

    /// Asserts a failure with `code` and one `topiclog: ` line on stderr; returns that line.
    #[track_caller]
    fn failed(&self, code: i32) -> String {
        assert_eq!(self.code, code, "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line: {self:?}");
        assert!(lines[0].starts_with("topiclog: "), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        lines[0].to_owned()
    }
}

/// Runs the tool with `args` and `stdin`.
fn run(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topiclog");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for topiclog");
    writer.join().expect("stdin writer");
    Run {
        code: output.status.code().expect("exit code, not a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `topiclog <args> --dir <dir>`: `--dir` after the command.
fn tl(dir: &Path, args: &[&str]) -> Run {
    tl_in(dir, args, b"")
}

/// The same with stdin.
fn tl_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let dir = dir.to_str().expect("UTF-8 temp path");
    let mut all = args.to_vec();
    all.extend(["--dir", dir]);
    run(&all, stdin)
}

/// Every record of a partition, read with the library.
fn records(dir: &Path, topic: &str, partition: u32) -> Vec<OwnedRecord> {
    let store = Store::open_read_only(dir).expect("open read-only");
    let partition = store
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .expect("partition");
    partition
        .read(partition.log_start_offset())
        .expect("reader")
        .map(|r| r.expect("record").to_owned_record())
        .collect()
}

fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join(format!("{topic}-{partition}"))
}

fn kv(record: &OwnedRecord) -> (Option<&[u8]>, Option<&[u8]>) {
    (record.key.as_deref(), record.value.as_deref())
}

/// A store with topic `t` of 2 partitions written by the library, closed:
/// partition 0 holds `a0..a4` at timestamps 1000, 2000, ..., partition 1 `b0..b2` at 1500,
/// 2500, 3500; record `a1` has headers, `a3` a null value, `b1` a null key.
fn library_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let topic = store
        .create_topic("t", TopicConfig::new(2))
        .expect("create");
    let headers = [
        Header::new(b"h", Some(b"1")),
        Header::new(b"h", Some(b"2")),
        Header::new(b"n", None),
    ];
    for i in 0..5i64 {
        let key = format!("ka{i}");
        let value = format!("a{i}");
        let mut record =
            Record::keyed(key.as_bytes(), value.as_bytes()).with_timestamp(1000 * (i + 1));
        if i == 1 {
            record = record.with_headers(&headers);
        }
        if i == 3 {
            record.value = None;
        }
        topic.append_to(0, record).expect("append");
    }
    for i in 0..3i64 {
        let key = format!("kb{i}");
        let value = format!("b{i}");
        let mut record =
            Record::keyed(key.as_bytes(), value.as_bytes()).with_timestamp(1500 + 1000 * i);
        if i == 1 {
            record.key = None;
        }
        topic.append_to(1, record).expect("append");
    }
    store.close().expect("close");
    dir
}

#[test]
fn create_topic_then_topics_and_describe() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // --dir before the command here, after it below.
    let created = run(
        &["--dir", d, "create-topic", "orders", "--partitions", "3"],
        b"",
    );
    assert!(created.ok().contains("orders"));
    tl(
        dir.path(),
        &[
            "create-topic",
            "audit",
            "--partitions",
            "1",
            "--config",
            "retention.ms=-1",
            "--config",
            "segment.bytes=4096",
        ],
    )
    .ok();

    assert_eq!(tl(dir.path(), &["topics"]).ok(), "audit\t1\norders\t3\n");
    assert_eq!(
        tl(dir.path(), &["describe", "orders"]).ok(),
        "0\t0\t0\t1\t0\t-\t0\n1\t0\t0\t1\t0\t-\t0\n2\t0\t0\t1\t0\t-\t0\n"
    );
    let store = Store::open_read_only(dir.path()).unwrap();
    let audit = store.topic("audit").unwrap();
    assert_eq!(audit.config().retention_ms(), -1);
    assert_eq!(audit.config().segment_bytes(), 4096);
    drop(store);

    tl_in(
        dir.path(),
        &["produce", "orders", "--partition", "1"],
        b"x\nyy\n",
    )
    .ok();
    let store = Store::open_read_only(dir.path()).unwrap();
    let p1 = store.topic("orders").unwrap().partition(1).unwrap();
    let expected = format!(
        "0\t0\t0\t1\t0\t-\t0\n1\t0\t2\t1\t{}\t-\t2\n2\t0\t0\t1\t0\t-\t0\n",
        p1.size_bytes()
    );
    assert!(p1.size_bytes() > 0);
    assert_eq!(tl(dir.path(), &["describe", "orders"]).ok(), expected);

    let exists = tl(dir.path(), &["create-topic", "orders", "--partitions", "1"]);
    assert!(exists.failed(2).contains("already exists"));
}

#[test]
fn produce_lines_plain_and_keyed_with_print_offsets() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "1"]).ok();

    // Plain: the whole line is the value, whatever it holds; the key is null.
    let plain = tl_in(
        dir.path(),
        &["produce", "t", "--print-offsets"],
        b"one\r\nk=v\n\n\xff\xfe bytes\nno newline at the end",
    );
    assert_eq!(plain.ok(), "0 0\n0 1\n0 2\n0 3\n0 4\n");

    // Keyed: split at the first separator; a line without it has a null key.
    let keyed = tl_in(
        dir.path(),
        &["produce", "t", "--key-separator", "::", "--print-offsets"],
        b"k1::v1\r\nk2::v::2\nno separator\n::empty key\n\xc3(::\xff\n",
    );
    assert_eq!(keyed.ok(), "0 5\n0 6\n0 7\n0 8\n0 9\n");

    let got = records(dir.path(), "t", 0);
    let pairs: Vec<_> = got.iter().map(kv).collect();
    assert_eq!(
        pairs,
        [
            (None, Some(&b"one"[..])),
            (None, Some(&b"k=v"[..])),
            (None, Some(&b""[..])),
            (None, Some(&b"\xff\xfe bytes"[..])),
            (None, Some(&b"no newline at the end"[..])),
            (Some(&b"k1"[..]), Some(&b"v1"[..])),
            (Some(&b"k2"[..]), Some(&b"v::2"[..])),
            (None, Some(&b"no separator"[..])),
            (Some(&b""[..]), Some(&b"empty key"[..])),
            (Some(&b"\xc3("[..]), Some(&b"\xff"[..])),
        ]
    );
    // One append call per line: one batch per record.
    let log = inspect::list_segments(partition_dir(dir.path(), "t", 0)).unwrap();
    assert_eq!(inspect::batches(&log[0].log).unwrap().batches.len(), 10);
}

#[test]
fn produce_batches_with_a_short_last_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "2"]).ok();
    let input: Vec<u8> = (0..7)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let out = tl_in(
        dir.path(),
        &[
            "produce",
            "t",
            "--partition",
            "1",
            "--batch",
            "3",
            "--print-offsets",
        ],
        &input,
    );
    let expected: String = (0..7).map(|i| format!("1 {i}\n")).collect();
    assert_eq!(out.ok(), expected);

    let segments = inspect::list_segments(partition_dir(dir.path(), "t", 1)).unwrap();
    let counts: Vec<i32> = inspect::batches(&segments[0].log)
        .unwrap()
        .batches
        .iter()
        .map(|b| b.header.records_count)
        .collect();
    assert_eq!(counts, [3, 3, 1]);
    let values: Vec<_> = records(dir.path(), "t", 1)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    let want: Vec<Vec<u8>> = (0..7).map(|i| format!("line {i}").into_bytes()).collect();
    assert_eq!(values, want);
    assert!(records(dir.path(), "t", 0).is_empty());
}

#[test]
fn produce_compresses_with_the_codec_asked_for() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "1"]).ok();
    let lines = |tag: &str| -> Vec<u8> {
        (0..4)
            .flat_map(|i| format!("{{\"{tag}\":{i},\"pad\":\"aaaaaaaaaaaaaaaa\"}}\n").into_bytes())
            .collect()
    };
    // One line per call, batches of 2 to an explicit partition, routed batches, and the bare
    // flag (gzip, as in Kafka's console producer).
    let runs: [(&[&str], &str, u8, usize); 5] = [
        (&["--compression-codec", "zstd"], "single", 4, 4),
        (
            &[
                "--compression-codec",
                "lz4",
                "--partition",
                "0",
                "--batch",
                "2",
            ],
            "pinned",
            3,
            2,
        ),
        (
            &["--compression-codec", "snappy", "--batch", "4"],
            "routed",
            2,
            1,
        ),
        (&["--batch", "4", "--compression-codec"], "bare", 1, 1),
        (&["--compression-codec", "none"], "none", 0, 4),
    ];
    let mut want_codecs = Vec::new();
    let mut want_values = Vec::new();
    for (flags, tag, codec, batches) in runs {
        let mut args = vec!["produce", "t"];
        args.extend_from_slice(flags);
        let input = lines(tag);
        tl_in(dir.path(), &args, &input).ok();
        want_codecs.extend(std::iter::repeat_n(codec, batches));
        want_values.extend(
            input
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    let segments = inspect::list_segments(partition_dir(dir.path(), "t", 0)).unwrap();
    let got_codecs: Vec<u8> = inspect::batches(&segments[0].log)
        .unwrap()
        .batches
        .iter()
        .map(|b| b.header.compression_id())
        .collect();
    assert_eq!(got_codecs, want_codecs);
    let values: Vec<Vec<u8>> = records(dir.path(), "t", 0)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, want_values);
    let bad = tl_in(
        dir.path(),
        &["produce", "t", "--compression-codec", "brotli"],
        b"x\n",
    );
    assert!(bad.failed(2).contains("brotli"), "{bad:?}");
}

#[test]
fn keyed_records_route_like_the_library() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "5"]).ok();
    let keys: Vec<String> = (0..40).map(|i| format!("customer-{i}")).collect();
    let input: String = keys.iter().map(|k| format!("{k}\t{k}-value\n")).collect();

    // One append call per line, then five lines per `Topic::append_batch` call.
    for batch in [None, Some("5")] {
        let mut args = vec!["produce", "t", "--key-separator", "\t", "--print-offsets"];
        if let Some(n) = batch {
            args.extend(["--batch", n]);
        }
        let out = tl_in(dir.path(), &args, input.as_bytes()).ok();
        let placed: Vec<u32> = out
            .lines()
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        let expected: Vec<u32> = keys
            .iter()
            .map(|k| partition_for_key(k.as_bytes(), 5))
            .collect();
        assert_eq!(placed, expected);
    }
    for p in 0..5 {
        for record in records(dir.path(), "t", p) {
            let key = record.key.unwrap();
            assert_eq!(partition_for_key(&key, 5), p);
            assert_eq!(record.value.unwrap(), [&key[..], b"-value"].concat());
        }
    }
}

#[test]
fn consume_plain_json_base64_and_positions() {
    let _serial = serial();
    let dir = library_store();
    let d = dir.path();

    // Plain: values, an empty line for null; partitions in ascending order.
    assert_eq!(
        tl(d, &["consume", "t"]).ok(),
        "a0\na1\na2\n\na4\nb0\nb1\nb2\n"
    );

    let json = tl(d, &["consume", "t", "--json"]).lines();
    assert_eq!(json.len(), 8);
    assert_eq!(
        json[1],
        r#"{"partition":0,"offset":1,"timestamp":2000,"key":"ka1","value":"a1","headers":[["h","1"],["h","2"],["n",null]]}"#
    );
    assert_eq!(
        json[3],
        r#"{"partition":0,"offset":3,"timestamp":4000,"key":"ka3","value":null,"headers":[]}"#
    );
    assert_eq!(
        json[6],
        r#"{"partition":1,"offset":1,"timestamp":2500,"key":null,"value":"b1","headers":[]}"#
    );
    for line in &json {
        let parsed: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        assert!(parsed["timestamp"].is_i64());
    }

    let b64 = tl(
        d,
        &[
            "consume",
            "t",
            "--json",
            "--base64",
            "--partition",
            "0",
            "--max",
            "2",
        ],
    )
    .lines();
    assert_eq!(b64.len(), 2);
    let second: serde_json::Value = serde_json::from_str(&b64[1]).unwrap();
    assert_eq!(second["key"], BASE64.encode("ka1"));
    assert_eq!(second["value"], BASE64.encode("a1"));
    assert_eq!(
        second["headers"][0],
        serde_json::json!(["h", BASE64.encode("1")])
    );
    assert_eq!(
        tl(d, &["consume", "t", "--base64", "--partition", "1"]).ok(),
        format!(
            "{}\n{}\n{}\n",
            BASE64.encode("b0"),
            BASE64.encode("b1"),
            BASE64.encode("b2")
        )
    );

    // --from applies to each partition; --max caps the total.
    assert_eq!(
        tl(d, &["consume", "t", "--from", "2"]).ok(),
        "a2\n\na4\nb2\n"
    );
    assert_eq!(tl(d, &["consume", "t", "--from", "4"]).ok(), "a4\n");
    assert_eq!(tl(d, &["consume", "t", "--from", "99"]).ok(), "");
    assert_eq!(tl(d, &["consume", "t", "--from", "end"]).ok(), "");
    assert_eq!(
        tl(d, &["consume", "t", "--from", "beginning", "--max", "6"]).ok(),
        "a0\na1\na2\n\na4\nb0\n"
    );
    assert_eq!(
        tl(d, &["consume", "t", "--partition", "1", "--from", "1"]).ok(),
        "b1\nb2\n"
    );

    // --from-time: each partition's first record at or after the time; wins over --from.
    assert_eq!(
        tl(d, &["consume", "t", "--from-time", "2500"]).ok(),
        "a2\n\na4\nb1\nb2\n"
    );
    assert_eq!(
        tl(d, &["consume", "t", "--from-time", "4500", "--from", "0"]).ok(),
        "a4\n"
    );
    assert_eq!(tl(d, &["consume", "t", "--from-time", "99999"]).ok(), "");

    let missing = tl(d, &["consume", "t", "--partition", "2"]);
    assert!(missing.failed(2).contains("no partition 2"));
    let unknown = tl(d, &["consume", "nope"]);
    assert!(unknown.failed(2).contains("unknown topic"));
}

#[test]
fn consume_json_base64_matches_kafka_made_manifests() {
    let _serial = serial();
    let store = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-made");
    // Kafka-made partition directories become topics of the store (adopted, read-only here).
    for name in ["plain", "dupheaders", "logappendtime", "gaps"] {
        let from = fixtures.join(format!("{name}-0"));
        let to = partition_dir(store.path(), name, 0);
        std::fs::create_dir(&to).unwrap();
        for segment in inspect::list_segments(&from).unwrap() {
            std::fs::copy(&segment.log, to.join(segment.log.file_name().unwrap())).unwrap();
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(from.join("manifest.json")).unwrap()).unwrap();
        let want = manifest["records"].as_array().unwrap();

        let out = tl(store.path(), &["consume", name, "--json", "--base64"]).ok();
        let got: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (got, want) in got.iter().zip(want) {
            assert_eq!(got["partition"], 0, "{name}");
            // The manifest's record layout is --json --base64's, partition aside.
            for field in ["offset", "timestamp", "key", "value", "headers"] {
                assert_eq!(got[field], want[field], "{name}: {field} of {want}");
            }
        }
    }
}

/// A closed store with topic `t`, one partition of several segments with an index entry per
/// batch: 30 records of about 100 bytes, one per call.
fn segmented_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tl(
        dir.path(),
        &[
            "create-topic",
            "t",
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1200",
            "--config",
            "index.interval.bytes=1",
            "--config",
            "retention.ms=-1",
        ],
    )
    .ok();
    let input: String = (0..30)
        .map(|i| format!("k{i}|value {i:03} {}\n", "x".repeat(80)))
        .collect();
    tl_in(
        dir.path(),
        &["produce", "t", "--key-separator", "|"],
        input.as_bytes(),
    )
    .ok();
    dir
}

#[test]
fn dump_prints_logs_indexes_and_partition_directories() {
    let _serial = serial();
    let dir = segmented_store();
    let pdir = partition_dir(dir.path(), "t", 0);
    let segments = inspect::list_segments(&pdir).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    let first = &segments[0];

    let log = run(&["dump", first.log.to_str().unwrap()], b"").ok();
    let listed = inspect::batches(&first.log).unwrap();
    let batch_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("baseOffset: "))
        .collect();
    assert_eq!(batch_lines.len(), listed.batches.len());
    for (line, batch) in batch_lines.iter().zip(&listed.batches) {
        for part in [
            format!("baseOffset: {} ", batch.header.base_offset),
            format!("lastOffset: {} ", batch.header.last_offset()),
            format!("count: {} ", batch.header.records_count),
            format!("position: {} ", batch.position),
            format!("size: {} ", batch.size()),
            format!("crc: {} isvalid: true", batch.header.crc),
            "compresscodec: none".to_owned(),
            "CreateTime: ".to_owned(),
            "producerId: -1 producerEpoch: -1".to_owned(),
            "isTransactional: false isControl: false".to_owned(),
        ] {
            assert!(line.contains(&part), "{part:?} in {line}");
        }
    }
    let first_record = log.lines().find(|l| l.starts_with("| offset: 0 ")).unwrap();
    assert!(
        first_record.contains(r#"key: "k0" payload: "value 000 xxxx"#),
        "{first_record}"
    );
    assert!(
        first_record.contains("keySize: 2 valueSize: 90"),
        "{first_record}"
    );

    let b64 = run(&["dump", "--base64", first.log.to_str().unwrap()], b"").ok();
    assert!(
        b64.contains(&format!("key: \"{}\"", BASE64.encode("k0"))),
        "{b64}"
    );

    let index_path = first.index.as_ref().unwrap();
    let entries = inspect::offset_index_entries(index_path, None)
        .unwrap()
        .entries;
    assert!(!entries.is_empty());
    let index = run(&["dump", index_path.to_str().unwrap()], b"").ok();
    let want: Vec<String> = entries
        .iter()
        .map(|e| format!("offset: {} position: {}", e.offset, e.position))
        .collect();
    assert_eq!(index.lines().skip(1).collect::<Vec<_>>(), want);

    let time_path = first.time_index.as_ref().unwrap();
    let entries = inspect::time_index_entries(time_path, None)
        .unwrap()
        .entries;
    assert!(!entries.is_empty());
    // Relative to --dir.
    let relative = format!("t-0/{}", time_path.file_name().unwrap().to_str().unwrap());
    let times = tl(dir.path(), &["dump", &relative]).ok();
    let want: Vec<String> = entries
        .iter()
        .map(|e| format!("timestamp: {} offset: {}", e.timestamp, e.offset))
        .collect();
    assert_eq!(times.lines().skip(1).collect::<Vec<_>>(), want);

    let all = run(&["dump", pdir.to_str().unwrap()], b"").ok();
    let dumped: Vec<&str> = all.lines().filter(|l| l.starts_with("Dumping ")).collect();
    assert_eq!(dumped.len(), 3 * segments.len(), "{dumped:?}");
    let records = all.lines().filter(|l| l.starts_with("| offset: ")).count();
    assert_eq!(records, 30);

    let not_a_segment = run(&["dump", dir.path().join("topics").to_str().unwrap()], b"");
    not_a_segment.failed(2);
}

#[test]
fn dump_shows_the_codec_and_records_of_compressed_batches() {
    let _serial = serial();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/kafka-made/{codec}-0"));
        let out = run(&["dump", fixture.to_str().unwrap()], b"").ok();
        let at = out
            .lines()
            .position(|l| l.contains(&format!("compresscodec: {codec}")))
            .expect("a compressed batch");
        let next = out.lines().nth(at + 1).unwrap();
        assert!(next.starts_with("| offset: "), "{codec}: {next}");
    }
}

#[test]
fn consume_reads_compressed_fixtures_as_their_manifests_say() {
    let _serial = serial();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/kafka-made/{codec}-0"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).unwrap()).unwrap();
        let data: Vec<&serde_json::Value> = manifest["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r.get("control").is_none())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let topic = dir.path().join("c-0");
        std::fs::create_dir(&topic).unwrap();
        for entry in std::fs::read_dir(&fixture).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                std::fs::copy(&path, topic.join(path.file_name().unwrap())).unwrap();
            }
        }
        let out = tl(dir.path(), &["consume", "c", "--json", "--base64"]).ok();
        let got: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), data.len(), "{codec}");
        for (got, want) in got.iter().zip(&data) {
            for field in ["offset", "timestamp", "key", "value"] {
                assert_eq!(got[field], want[field], "{codec}: {field} of {got}");
            }
        }
    }
}

#[test]
fn verify_passes_a_healthy_store() {
    let _serial = serial();
    let dir = segmented_store();
    let out = tl(dir.path(), &["verify"]).ok();
    assert!(out.lines().last().unwrap().starts_with("OK: "), "{out}");
    assert!(out.contains("30 records"), "{out}");
    assert!(tl(dir.path(), &["verify", "t"]).ok().starts_with("OK: "));
    tl(dir.path(), &["verify", "nope"]).failed(2);
}

#[test]
fn verify_fails_on_a_corrupt_byte_in_a_sealed_segment() {
    let _serial = serial();
    let dir = segmented_store();
    let segments = inspect::list_segments(partition_dir(dir.path(), "t", 0)).unwrap();
    let sealed = &segments[0].log;
    let second = inspect::batches(sealed).unwrap().batches[1];
    let mut bytes = std::fs::read(sealed).unwrap();
    let at = second.position as usize + 70; // inside the record, covered by the CRC
    bytes[at] ^= 0x20;
    std::fs::write(sealed, &bytes).unwrap();

    let out = tl(dir.path(), &["verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "");
    let text = out.text();
    let problem = text
        .lines()
        .find(|l| l.starts_with("problem: "))
        .expect("a problem line");
    assert!(problem.contains(sealed.to_str().unwrap()), "{problem}");
    assert!(
        problem.contains(&format!("at byte {}", second.position)),
        "{problem}"
    );
    assert!(problem.contains("CRC"), "{problem}");
    assert!(
        text.lines().last().unwrap().starts_with("FAILED: "),
        "{text}"
    );
}

#[test]
fn verify_fails_on_an_index_entry_that_disagrees_with_the_data() {
    let _serial = serial();
    let dir = segmented_store();
    let segments = inspect::list_segments(partition_dir(dir.path(), "t", 0)).unwrap();
    let index = segments[0].index.clone().unwrap();
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16);
    // The second entry's position now points inside a batch.
    bytes[12..16].copy_from_slice(&7i32.to_be_bytes());
    std::fs::write(&index, &bytes).unwrap();

    let out = tl(dir.path(), &["verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    let text = out.text();
    let problem = text
        .lines()
        .find(|l| l.starts_with("problem: "))
        .expect("a problem line");
    assert!(
        problem.contains(&format!("{} at byte 8", index.display())),
        "{problem}"
    );
}

#[test]
fn verify_reports_a_torn_tail_of_the_active_segment_without_failing() {
    let _serial = serial();
    let dir = segmented_store();
    let segments = inspect::list_segments(partition_dir(dir.path(), "t", 0)).unwrap();
    let active = &segments.last().unwrap().log;
    let len = std::fs::metadata(active).unwrap().len();
    let first = inspect::batches(active).unwrap().batches[0];
    let bytes = std::fs::read(active).unwrap();
    let torn = &bytes[..first.size() as usize / 2];
    std::fs::OpenOptions::new()
        .append(true)
        .open(active)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let text = tl(dir.path(), &["verify"]).ok();
    let tail = text
        .lines()
        .find(|l| l.starts_with("torn tail"))
        .expect("a torn tail line");
    assert!(
        tail.contains(&format!("{} at byte {len}", active.display())),
        "{tail}"
    );
    assert!(!text.contains("problem: "), "{text}");
    assert!(
        text.lines().last().unwrap().contains("1 torn tail"),
        "{text}"
    );
}

#[test]
fn delete_records_and_enforce_retention() {
    let _serial = serial();
    let dir = segmented_store();
    let d = dir.path();
    let segments_before = inspect::list_segments(partition_dir(d, "t", 0)).unwrap();

    assert_eq!(
        tl(
            d,
            &["delete-records", "t", "--partition", "0", "--before", "12"]
        )
        .ok(),
        "t-0: log start offset 12\n"
    );
    let describe = tl(d, &["describe", "t"]).ok();
    assert!(describe.starts_with("0\t12\t30\t"), "{describe}");
    let first = tl(d, &["consume", "t", "--max", "1"]).ok();
    assert!(first.starts_with("value 012 "), "{first}");

    let out_of_range = tl(
        d,
        &["delete-records", "t", "--partition", "0", "--before", "31"],
    );
    assert!(out_of_range.failed(2).contains("out of range"));

    // Segments wholly below the new log start are gone; retention (off here) finds nothing.
    let segments_after = inspect::list_segments(partition_dir(d, "t", 0)).unwrap();
    assert!(segments_after.len() < segments_before.len());
    assert!(segments_after[0].base_offset <= 12);
    assert_eq!(tl(d, &["enforce-retention"]).ok(), "nothing to delete\n");

    // retention.bytes: the oldest segments go until the partition fits.
    let dir2 = tempfile::tempdir().unwrap();
    let d2 = dir2.path();
    tl(
        d2,
        &[
            "create-topic",
            "r",
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1000",
            "--config",
            "retention.bytes=1500",
        ],
    )
    .ok();
    let input: String = (0..40)
        .map(|i| format!("{i:04} {}\n", "y".repeat(90)))
        .collect();
    tl_in(d2, &["produce", "r"], input.as_bytes()).ok();
    let out = tl(d2, &["enforce-retention"]).ok();
    assert!(out.starts_with("r-0: deleted "), "{out}");
    let store = Store::open_read_only(d2).unwrap();
    let partition = store.topic("r").unwrap().partition(0).unwrap();
    assert!(partition.size_bytes() <= 1500 + 1000);
    assert!(partition.log_start_offset() > 0);
}

#[test]
fn a_locked_store_allows_reads_and_refuses_writes() {
    let _serial = serial();
    let dir = library_store();
    let d = dir.path();
    let held = Store::open(d).expect("the test holds the store");
    let topic = held.topic("t").unwrap();
    topic
        .append_to(1, Record::new(b"b3").with_timestamp(9000))
        .unwrap();
    topic.partition(1).unwrap().flush().unwrap();

    assert_eq!(
        tl(d, &["consume", "t", "--partition", "1"]).ok(),
        "b0\nb1\nb2\nb3\n"
    );
    assert_eq!(tl(d, &["topics"]).ok(), "t\t2\n");
    tl(d, &["describe", "t"]).ok();
    tl(d, &["verify"]).ok();
    // The active segment's index is preallocated while the writer holds it: its unused
    // entries are counted, not listed.
    let active = inspect::list_segments(partition_dir(d, "t", 1))
        .unwrap()
        .pop()
        .unwrap();
    let index = active.index.unwrap();
    assert!(std::fs::metadata(&index).unwrap().len() > 1024);
    let dumped = run(&["dump", index.to_str().unwrap()], b"").ok();
    assert_eq!(dumped.lines().count(), 2, "{dumped}");
    assert!(
        dumped.contains("all-zero entries at the end not shown"),
        "{dumped}"
    );

    for args in [
        &["produce", "t"][..],
        &["create-topic", "u", "--partitions", "1"],
        &["delete-records", "t", "--partition", "0", "--before", "1"],
        &["enforce-retention"],
    ] {
        let refused = tl_in(d, args, b"never written\n");
        let line = refused.failed(2);
        assert!(line.contains("locked"), "{args:?}: {line}");
    }
    held.close().unwrap();
    drop(held);
    let values: Vec<_> = records(d, "t", 1).into_iter().map(|r| r.value).collect();
    assert_eq!(values.len(), 4, "nothing was produced while locked");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let _serial = serial();
    let dir = library_store();
    let d = dir.path().to_str().unwrap();
    for args in [
        &[][..],
        &["bogus"],
        &["consume", "t", "--dir", d, "--frobnicate"],
        &["consume", "t", "--dir", d, "--from", "yesterday"],
        &["consume", "t", "--dir", d, "--from", "-3"],
        &["consume", "t", "--dir", d, "--max", "many"],
        &["create-topic", "x", "--dir", d],
        &["create-topic", "x", "--dir", d, "--partitions", "0"],
        &[
            "create-topic",
            "x",
            "--dir",
            d,
            "--partitions",
            "1",
            "--config",
            "nonsense",
        ],
        &["produce", "t", "--dir", d, "--batch", "0"],
        &["produce", "t", "--dir", d, "--key-separator", ""],
        &["topics"],
    ] {
        let out = run(args, b"");
        out.failed(2);
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let missing = run(&["create-topic", "x", "--dir", d], b"");
    assert!(missing.failed(2).contains("--partitions"), "{missing:?}");

    // Errors the library finds in the arguments take the same way out.
    let bad_setting = run(
        &[
            "create-topic",
            "x",
            "--dir",
            d,
            "--partitions",
            "1",
            "--config",
            "no.such=1",
        ],
        b"",
    );
    assert!(bad_setting.failed(2).contains("no.such"));
    let bad_name = run(
        &["create-topic", "a/b", "--dir", d, "--partitions", "1"],
        b"",
    );
    assert!(bad_name.failed(2).contains("invalid topic name"));
    let missing_store = run(
        &["produce", "t", "--dir", "/nonexistent/topiclog-store"],
        b"x\n",
    );
    missing_store.failed(2);

    let help = run(&["--help"], b"");
    assert!(help.ok().contains("Usage: topiclog"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("big", TopicConfig::new(1)).unwrap();
    let value = [b'v'; 200];
    let records: Vec<Record<'_>> = (0..1_000).map(|_| Record::new(&value)).collect();
    for _ in 0..20 {
        topic.partition(0).unwrap().append_batch(&records).unwrap();
    }
    store.close().unwrap();
    drop(store);

    let mut child = Command::new(BIN)
        .args(["consume", "big", "--dir", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end().len(), 200);
    drop(stdout); // like `| head -1`: 4 MB were still to come
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// Kills the child when dropped, so a failed assertion leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child writes to `out`, as they come.
fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[test]
fn follow_picks_up_records_a_writer_appends() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder().segment_bytes(2000).build().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("live", TopicConfig::new(2).with_log(config))
        .unwrap();
    topic.append_to(0, Record::new(b"before")).unwrap();
    topic.partition(0).unwrap().flush().unwrap();

    let mut child = Killed(
        Command::new(BIN)
            .args([
                "consume",
                "live",
                "--json",
                "--follow",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(child.0.stdout.take().unwrap());
    let next = |what: &str| -> serde_json::Value {
        let line = lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next("the first record")["value"], "before");

    // Appended after the consumer reached the end: on both partitions, enough to roll
    // partition 0's segment.
    let big = [b'z'; 300];
    for _ in 0..8 {
        topic.append_to(0, Record::new(&big)).unwrap();
    }
    topic.append_to(1, Record::new(b"other partition")).unwrap();
    topic.append_to(0, Record::new(b"after")).unwrap();
    for p in topic.partitions() {
        p.flush().unwrap();
    }
    assert!(topic.partition(0).unwrap().segment_base_offsets().len() > 1);

    let mut seen = Vec::new();
    for i in 0..10 {
        let record = next(&format!("appended record {i}"));
        seen.push((
            record["partition"].as_u64().unwrap(),
            record["offset"].as_i64().unwrap(),
        ));
        let value = record["value"].as_str().unwrap();
        match (record["partition"].as_u64(), record["offset"].as_i64()) {
            (Some(0), Some(9)) => assert_eq!(value, "after"),
            (Some(0), _) => assert_eq!(value.len(), 300),
            _ => assert_eq!(value, "other partition"),
        }
    }
    seen.sort_unstable();
    let want: Vec<(u64, i64)> = (1..=9).map(|o| (0, o)).chain([(1, 0)]).collect();
    assert_eq!(seen, want);
    drop(child);
    store.close().unwrap();
}

#[test]
fn recover_repairs_only_what_its_flags_allow() {
    let _serial = serial();
    let dir = segmented_store();
    let d = dir.path();
    assert_eq!(tl(d, &["recover"]).ok(), "t-0: clean\n");
    let pdir = partition_dir(d, "t", 0);
    // Damage a batch of the active segment, which the clean close fsynced, and make the next
    // open unclean.
    let active = inspect::list_segments(&pdir)
        .unwrap()
        .last()
        .unwrap()
        .base_offset;
    let log_file = pdir.join(format!("{active:020}.log"));
    let mut bytes = std::fs::read(&log_file).unwrap();
    let last_batch_crc = bytes.len() - 100;
    bytes[last_batch_crc] ^= 0xff;
    std::fs::write(&log_file, bytes).unwrap();
    std::fs::remove_file(pdir.join(".topiclog_cleanshutdown")).unwrap();

    let refused = tl(d, &["recover"]).failed(2);
    assert!(refused.contains("corrupt data in"), "{refused}");
    let repaired = tl(d, &["recover", "--truncate-corrupt"]).ok();
    assert!(repaired.starts_with("t-0: recovered ("), "{repaired}");
    assert!(repaired.contains("(flushed data lost)"), "{repaired}");
    assert_eq!(tl(d, &["recover"]).ok(), "t-0: clean\n");

    // A log-start checkpoint that goes missing after delete-records.
    tl(
        d,
        &["delete-records", "t", "--partition", "0", "--before", "5"],
    )
    .ok();
    std::fs::remove_file(pdir.join(".topiclog_log_start_offset")).unwrap();
    let refused = tl(d, &["recover"]).failed(2);
    assert!(
        refused.contains("log start checkpoint missing"),
        "{refused}"
    );
    let rebuilt = tl(d, &["recover", "--rebuild-log-start"]).ok();
    assert!(rebuilt.contains("log start rebuilt at 5"), "{rebuilt}");
    let describe = tl(d, &["describe", "t"]).ok();
    assert!(describe.starts_with("0\t5\t"), "{describe}");
}

#[test]
fn consume_as_a_group_commits_what_it_printed() {
    let _serial = serial();
    let dir = segmented_store();
    let d = dir.path();
    let values = |text: String| -> Vec<String> {
        text.lines()
            .map(|l| l.split(' ').nth(1).unwrap_or("").to_owned())
            .collect()
    };
    let first = tl(d, &["consume", "t", "--group", "g", "--max", "10"]).ok();
    assert_eq!(
        values(first),
        (0..10).map(|i| format!("{i:03}")).collect::<Vec<_>>()
    );
    assert_eq!(tl(d, &["groups"]).ok(), "g\n");
    assert_eq!(
        tl(d, &["describe-group", "g"]).ok(),
        "t\t0\t10\t30\t20\t-\t-\t-\t-\n"
    );
    // A second run continues where the first stopped; --from does not apply (committed wins).
    let second = tl(
        d,
        &[
            "consume", "t", "--group", "g", "--max", "5", "--from", "end",
        ],
    )
    .ok();
    assert_eq!(values(second), ["010", "011", "012", "013", "014"]);
    assert_eq!(
        tl(d, &["describe-group", "g"]).ok(),
        "t\t0\t15\t30\t15\t-\t-\t-\t-\n"
    );

    assert_eq!(
        tl(
            d,
            &["reset-offsets", "g", "--topic", "t", "--to", "earliest"]
        )
        .ok(),
        "g\tt\t0\t0\n"
    );
    assert_eq!(
        tl(d, &["reset-offsets", "g", "--topic", "t", "--to", "25"]).ok(),
        "g\tt\t0\t25\n"
    );
    let rest = tl(d, &["consume", "t", "--group", "g"]).ok();
    assert_eq!(values(rest), ["025", "026", "027", "028", "029"]);
    assert_eq!(
        tl(d, &["describe-group", "g"]).ok(),
        "t\t0\t30\t30\t0\t-\t-\t-\t-\n"
    );
    assert_eq!(
        tl(d, &["reset-offsets", "g", "--topic", "t", "--to", "latest"]).ok(),
        "g\tt\t0\t30\n"
    );
    assert_eq!(tl(d, &["consume", "t", "--group", "g"]).ok(), "");
    // A group without offsets starts where --from says.
    let fresh = tl(d, &["consume", "t", "--group", "h", "--from", "28"]).ok();
    assert_eq!(values(fresh), ["028", "029"]);
    assert_eq!(tl(d, &["groups"]).ok(), "g\nh\n");
    assert!(
        tl(d, &["describe-group", "nope"])
            .failed(2)
            .contains("no committed offsets or live members")
    );
    assert!(
        tl(d, &["reset-offsets", "g", "--topic", "t", "--to", "soon"])
            .failed(2)
            .contains("--to expects")
    );
}

/// `consume --group` commits what it printed after each batch: killed while it follows, the
/// group has committed at least the first 2000 of the 2500 it printed, and never more than it
/// printed.
#[test]
fn consume_as_a_group_commits_every_thousand_records() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let topic = store.create_topic("t", TopicConfig::new(1)).unwrap();
        let values: Vec<Vec<u8>> = (0..2500).map(|i| format!("{i}").into_bytes()).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
        topic.partition(0).unwrap().append_batch(&records).unwrap();
        store.close().unwrap();
    }
    let mut child = Killed(
        Command::new(BIN)
            .args([
                "consume",
                "t",
                "--group",
                "g",
                "--follow",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    for i in 0..2500 {
        let line = lines.next().expect("a line").expect("text");
        assert_eq!(line, i.to_string());
    }
    // It waits at the end now: kill it (no commit at exit).
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let store = Store::open_read_only(dir.path()).unwrap();
    let committed = store.committed_offsets("g").unwrap();
    let offset = committed[&("t".to_owned(), 0)];
    assert!((2000..=2500).contains(&offset), "committed {offset}");
}

/// A follower whose records the writer's retention deletes before it reads them (it is stopped
/// with SIGSTOP meanwhile, so the deletion surely comes first) goes on from the new log start,
/// says on stderr how many offsets it skipped, and never prints an offset twice or backwards.
#[test]
fn follow_continues_past_records_retention_deleted_and_says_so() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder().segment_bytes(2000).build().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("gone", TopicConfig::new(1).with_log(config))
        .unwrap();
    let partition = topic.partition(0).unwrap();
    partition.append(Record::new(b"first")).unwrap();

    let mut child = Killed(
        Command::new(BIN)
            .args(["consume", "gone", "--json", "--follow"])
            .args(["--dir", dir.path().to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(child.0.stdout.take().unwrap());
    let err_lines = lines_of(child.0.stderr.take().unwrap());
    let offset_of = |line: String| -> i64 {
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        record["offset"].as_i64().unwrap()
    };
    let first = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(offset_of(first), 0);

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let big = [b'z'; 300];
    for _ in 0..40 {
        partition.append(Record::new(&big)).unwrap();
    }
    partition.delete_records(30).unwrap();
    assert!(partition.log_start_offset() >= 30);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    partition.append(Record::new(b"last")).unwrap();

    let mut offsets = Vec::new();
    while offsets.last() != Some(&41) {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("after {offsets:?}: {e}"));
        offsets.push(offset_of(line));
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(offsets[0] >= 1);
    let said = err_lines.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(said.contains("gone-0: skipped"), "{said}");
    let skipped: i64 = said
        .split("skipped ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Every offset is printed or counted as skipped, once.
    assert_eq!(offsets.len() as i64 + skipped, 41, "{offsets:?}; {said}");
    drop(child);
    store.close().unwrap();
}

/// `verify` exits 1, listing the problem with its file, for every store state a writable open
/// refuses: damaged group offsets or producer registry, a registry that disagrees with the
/// directories, a segment cut by one byte after a clean close, durable data damaged in the
/// active segment after a crash. And exactly then: a healthy store, and one whose indexes are
/// only missing (rebuilt at open), pass.
#[test]
fn verify_fails_on_every_state_a_writable_open_refuses() {
    let _serial = serial();
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 5] = [
        ("group offsets", |dir| {
            let file = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(".offsets"))
                .unwrap();
            let mut bytes = std::fs::read(&file).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
            std::fs::write(file, bytes).unwrap();
        }),
        ("producer registry", |dir| {
            std::fs::write(
                dir.join("topiclog-producers"),
                b"topiclog-producers 2\nnext-id x\n",
            )
            .unwrap();
        }),
        ("registry lowered", |dir| {
            std::fs::create_dir(dir.join("t-1")).unwrap();
        }),
        ("segment cut by one byte", |dir| {
            let log = inspect::list_segments(dir.join("t-0")).unwrap()[0]
                .log
                .clone();
            let len = std::fs::metadata(&log).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
            file.set_len(len - 1).unwrap();
        }),
        ("active segment damaged below the recovery point", |dir| {
            // As a crash leaves it: no marker, the checkpoint vouching for the active data.
            std::fs::remove_file(dir.join("t-0/.topiclog_cleanshutdown")).unwrap();
            let log = inspect::list_segments(dir.join("t-0"))
                .unwrap()
                .pop()
                .unwrap()
                .log;
            let mut bytes = std::fs::read(&log).unwrap();
            bytes[70] ^= 0x20;
            std::fs::write(log, bytes).unwrap();
        }),
    ];
    for (name, damage) in cases {
        let dir = segmented_store();
        tl(
            dir.path(),
            &["reset-offsets", "g", "--topic", "t", "--to", "3"],
        )
        .ok();
        tl_in(dir.path(), &["produce", "t"], b"one more\n").ok();
        assert!(
            tl(dir.path(), &["verify"]).ok().starts_with("OK: "),
            "{name}: healthy"
        );
        damage(dir.path());
        let out = tl(dir.path(), &["verify"]);
        assert_eq!(out.code, 1, "{name}: {out:?}");
        let text = out.text();
        assert!(
            text.lines()
                .any(|l| l.starts_with("problem: ") && l.contains(dir.path().to_str().unwrap())),
            "{name}: {text}"
        );
        // The writable open agrees.
        let opened = Store::open(dir.path()).and_then(|s| s.committed_offsets("g").map(|_| ()));
        assert!(opened.is_err(), "{name}: the writable open accepted it");
    }
    // Missing indexes are caches: verify passes, and so does the open.
    let dir = segmented_store();
    for segment in inspect::list_segments(dir.path().join("t-0")).unwrap() {
        if let Some(index) = segment.index {
            std::fs::remove_file(index).unwrap();
        }
    }
    assert!(tl(dir.path(), &["verify"]).ok().starts_with("OK: "));
}

/// `dump` exits 1 on what it cannot read: a directory with no segment, a batch whose CRC or
/// records are bad, bytes after the last whole batch.
#[test]
fn dump_exits_non_zero_on_what_it_cannot_read() {
    let _serial = serial();
    let dir = segmented_store();
    let partition = dir.path().join("t-0");
    assert_eq!(tl(dir.path(), &["dump", "t-0"]).code, 0);
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["dump", empty.path().to_str().unwrap()], b"");
    assert_eq!(out.code, 1, "{out:?}");
    let log = inspect::list_segments(&partition).unwrap()[0].log.clone();
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[70] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap();
    let out = run(&["dump", log.to_str().unwrap()], b"");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.text().contains("isvalid: false"));
    bytes[70] ^= 0x20;
    bytes.extend_from_slice(b"garbage after the batches");
    std::fs::write(&log, &bytes).unwrap();
    assert_eq!(run(&["dump", log.to_str().unwrap()], b"").code, 1);
    assert_eq!(tl(dir.path(), &["dump", "t-0"]).code, 1);
}

/// A partition count out of range is refused at once, before anything is written; a writing
/// command waits for the lock with --lock-timeout.
#[test]
fn create_topic_bounds_and_lock_timeout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = tl(
        dir.path(),
        &["create-topic", "x", "--partitions", "4294967295"],
    );
    let line = out.failed(2);
    assert!(line.contains("partitions"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!dir.path().join("x-0").exists());
    tl(dir.path(), &["create-topic", "x", "--partitions", "2"]).ok();
    assert_eq!(tl(dir.path(), &["topics"]).ok(), "x\t2\n");

    let store = Store::open(dir.path()).unwrap();
    let line = tl_in(dir.path(), &["produce", "x"], b"v\n").failed(2);
    assert!(line.contains("locked"), "{line}");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        store.close().unwrap();
    });
    let out = tl_in(
        dir.path(),
        &["produce", "x", "--lock-timeout", "20000"],
        b"v\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    releaser.join().unwrap();
}

#[test]
fn verbose_logs_what_the_library_does_and_quiet_logs_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "1"]).ok();
    // Default: warnings and errors only; a clean open has none.
    let plain = tl_in(dir.path(), &["produce", "t"], b"a\n");
    plain.ok();
    assert_eq!(plain.stderr, "", "{plain:?}");
    let verbose = tl_in(dir.path(), &["-v", "produce", "t"], b"b\n");
    assert_eq!(verbose.code, 0, "{verbose:?}");
    assert!(
        verbose
            .stderr
            .lines()
            .any(|l| l.starts_with("topiclog: info: opened partition") && l.contains("t-0")),
        "{verbose:?}"
    );
    let debug = tl(dir.path(), &["-vv", "describe", "t"]);
    assert_eq!(debug.code, 0, "{debug:?}");
    assert!(
        debug.stderr.contains("topiclog: debug: opened partition"),
        "{debug:?}"
    );
    let quiet = tl_in(dir.path(), &["-q", "-v", "produce", "t"], b"c\n");
    assert_eq!(quiet.code, 2, "-q and -v conflict: {quiet:?}");
    let quiet = tl_in(dir.path(), &["-q", "produce", "t"], b"c\n");
    quiet.ok();
    assert_eq!(quiet.stderr, "", "{quiet:?}");
}

#[test]
fn alter_config_changes_and_persists_a_topics_settings() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tl(dir.path(), &["create-topic", "t", "--partitions", "2"]).ok();
    let altered = tl(
        dir.path(),
        &[
            "alter-config",
            "t",
            "--config",
            "retention.ms=60000",
            "--config",
            "cleanup.policy=delete",
        ],
    );
    let text = altered.ok();
    assert!(text.lines().any(|l| l == "retention.ms=60000"), "{text}");
    assert!(
        text.lines().any(|l| l == "segment.bytes=1073741824"),
        "{text}"
    );
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(store.topic("t").unwrap().config().retention_ms(), 60_000);
    drop(store);
    let unknown = tl(
        dir.path(),
        &["alter-config", "t", "--config", "retention.msec=1"],
    );
    assert!(unknown.failed(2).contains("retention.msec"), "{unknown:?}");
    let compact = tl(
        dir.path(),
        &["alter-config", "t", "--config", "cleanup.policy=compact"],
    );
    assert!(compact.ok().lines().any(|l| l == "cleanup.policy=compact"));
    let store = Store::open_read_only(dir.path()).unwrap();
    let policy = store.topic("t").unwrap().config().cleanup_policy();
    assert_eq!(
        policy,
        topiclog::config::CleanupPolicy::Compact,
        "persisted"
    );
    drop(store);
    let bad = tl(
        dir.path(),
        &["alter-config", "t", "--config", "cleanup.policy=shred"],
    );
    assert!(bad.failed(2).contains("cleanup.policy"), "{bad:?}");
    let none = tl(dir.path(), &["alter-config", "t"]);
    assert_eq!(none.code, 2, "at least one --config: {none:?}");
}

/// `consume --from end --follow` beside writer processes that roll small segments, are killed
/// (SIGKILL) or stopped at random moments and restarted, while `delete-records` deletes behind
/// the followers: every follower prints each offset at most once, in order, and accounts for
/// every offset from where it started to the end as printed or said skipped.
#[test]
fn followers_from_end_print_each_offset_once_beside_restarting_writers() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    let tool = |args: &[&str]| {
        let mut all = vec!["--dir", dir_arg.as_str(), "-q", "--lock-timeout", "10000"];
        all.extend_from_slice(args);
        run(&all, b"")
    };
    tool(&[
        "create-topic",
        "q",
        "--partitions",
        "2",
        "--config",
        "segment.bytes=3000",
    ])
    .ok();
    // A first record, so "end" is not the log start.
    run(&["--dir", &dir_arg, "produce", "q"], b"seed\n").ok();

    let ends = || -> Vec<i64> {
        tool(&["describe", "q"])
            .ok()
            .lines()
            .map(|l| l.split('\t').nth(2).unwrap().parse().unwrap())
            .collect()
    };
    let starts = ends();
    let followers: Vec<(Killed, mpsc::Receiver<String>, mpsc::Receiver<String>)> = (0..3)
        .map(|_| {
            let mut child = Killed(
                Command::new(BIN)
                    .args(["--dir", &dir_arg, "consume", "q", "--from", "end"])
                    .args(["--follow", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let out = lines_of(child.0.stdout.take().unwrap());
            let err = lines_of(child.0.stderr.take().unwrap());
            (child, out, err)
        })
        .collect();
    // Followers at the end before anything else is written.
    std::thread::sleep(Duration::from_millis(300));

    let mut seed = 0x9e37_79b9_u32;
    let mut random = move |below: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % below
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut line = 0u64;
    let signal = |child: &Killed, signal: &str| {
        let pid = child.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    while std::time::Instant::now() < deadline {
        // Now and then a follower stops while records are appended and deleted past it.
        let stopped = (random(3) == 0).then(|| &followers[random(3) as usize].0);
        if let Some(child) = stopped {
            signal(child, "-STOP");
        }
        let batch = (1 + random(20)).to_string();
        let mut writer = Killed(
            Command::new(BIN)
                .args(["--dir", &dir_arg, "-q", "--lock-timeout", "10000"])
                .args(["produce", "q", "--batch", &batch])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut input = writer.0.stdin.take().unwrap();
        let text: String = (0..2000).map(|i| format!("line-{}\n", line + i)).collect();
        line += 2000;
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(text.as_bytes());
        });
        std::thread::sleep(Duration::from_millis(u64::from(20 + random(200))));
        // SIGKILL, or a clean end of input.
        if random(3) == 0 {
            drop(writer);
        } else {
            let _ = writer.0.wait();
        }
        let _ = feeder.join();
        if random(2) == 0 {
            let p = random(2);
            let end = ends()[p as usize];
            let before = (end - i64::from(random(400))).max(0).to_string();
            tool(&[
                "delete-records",
                "q",
                "--partition",
                &p.to_string(),
                "--before",
                &before,
            ]);
        }
        if let Some(child) = stopped {
            signal(child, "-CONT");
        }
    }
    // A last record on each partition: every follower must reach it, whatever was deleted.
    // Quiet: the last writer may have been killed mid-write, and this open cuts what it tore.
    for p in ["0", "1"] {
        run(
            &["--dir", &dir_arg, "-q", "produce", "q", "--partition", p],
            b"last\n",
        )
        .ok();
    }
    let ends = ends();

    for (i, (child, out, err)) in followers.into_iter().enumerate() {
        // Each partition's offsets as printed, until the follower reached both ends.
        let mut printed: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
        let reached = |printed: &[Vec<i64>; 2]| {
            (0..2).all(|p| printed[p].last().is_some_and(|&o| o + 1 == ends[p]))
        };
        let mut said = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !reached(&printed) && std::time::Instant::now() < until {
            while let Ok(line) = err.try_recv() {
                said.push(line);
            }
            if let Ok(line) = out.recv_timeout(Duration::from_millis(100)) {
                let record: serde_json::Value = serde_json::from_str(&line).unwrap();
                let p = record["partition"].as_u64().unwrap() as usize;
                printed[p].push(record["offset"].as_i64().unwrap());
            }
        }
        drop(child);
        while let Ok(line) = err.recv_timeout(Duration::from_millis(200)) {
            said.push(line);
        }
        assert!(
            said.iter().all(|l| !l.contains("came again")),
            "follower {i}: {said:?}"
        );
        for p in 0..2 {
            let offsets = &printed[p];
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "follower {i}, partition {p}: an offset twice or backwards: {offsets:?}"
            );
            assert_eq!(
                offsets.last().map(|o| o + 1),
                Some(ends[p]),
                "follower {i}, partition {p} did not reach the end: {said:?}"
            );
            // Every offset from the start to the end printed or said skipped, once.
            let skipped: i64 = said
                .iter()
                .filter_map(|l| l.split(&format!("q-{p}: skipped ")).nth(1))
                .map(|rest| rest.split(' ').next().unwrap().parse::<i64>().unwrap())
                .sum();
            eprintln!(
                "follower {i}, partition {p}: {} printed, {skipped} skipped",
                offsets.len()
            );
            assert_eq!(
                offsets.len() as i64 + skipped,
                ends[p] - starts[p],
                "follower {i}, partition {p}: {said:?}"
            );
        }
    }
}

/// `compact`: a compacted topic fed keyed lines and `--null-marker` tombstones; `describe`
/// shows its dirty ratio; `compact` rewrites every sealed segment and prints what it did per
/// partition; `consume` then shows the latest value per key (and the tombstone), offsets
/// unchanged. A topic with `cleanup.policy=delete` is reported skipped; keyless lines are
/// refused on a compacted topic.
#[test]
fn compact_rewrites_a_compacted_topic_and_reports_per_partition() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tl(
        d,
        &[
            "create-topic",
            "state",
            "--partitions",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=300",
        ],
    )
    .ok();
    tl(d, &["create-topic", "events", "--partitions", "1"]).ok();
    let mut input = String::new();
    for i in 0..60 {
        input.push_str(&format!("k{}:v{i}\n", i % 4));
    }
    input.push_str("k1:NULL\n");
    for i in 60..80 {
        input.push_str(&format!("k{}:v{i}\n", i % 2 * 2));
    }
    let produce = [
        "produce",
        "state",
        "--partition",
        "0",
        "--key-separator",
        ":",
    ];
    tl_in(d, &produce, input.as_bytes()).ok();
    let tombstone = [&produce[..], &["--null-marker", "NULL"]].concat();
    tl_in(d, &tombstone, b"k1:NULL\n").ok();
    let ratio = || -> f64 {
        let describe = tl(d, &["describe", "state"]).ok();
        // The sixth column: PARTITION LOG_START NEXT SEGMENTS BYTES DIRTY_RATIO LSO.
        describe
            .trim_end()
            .split('\t')
            .nth(5)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(ratio() > 0.9, "nothing cleaned yet");
    let report = tl(d, &["compact", "state"]).ok();
    assert!(report.starts_with("state-0: "), "{report}");
    assert!(report.contains(" records; clean up to offset "), "{report}");
    assert_eq!(ratio(), 0.0, "everything below the active segment is clean");
    let json = tl(d, &["consume", "state", "--json"]).lines();
    let mut latest = std::collections::BTreeMap::new();
    let mut offsets = Vec::new();
    for line in &json {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        offsets.push(v["offset"].as_i64().unwrap());
        latest.insert(v["key"].as_str().unwrap().to_owned(), v["value"].clone());
    }
    assert!(offsets.len() < 82 && offsets.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*offsets.last().unwrap(), 81, "the tombstone, last appended");
    assert_eq!(latest["k0"], "v78");
    assert_eq!(latest["k2"], "v79");
    assert_eq!(latest["k3"], "v59");
    assert!(latest["k1"].is_null(), "the tombstone: {json:?}");
    assert_eq!(
        tl(d, &["compact", "events"]).ok(),
        "events-0: skipped: cleanup.policy is delete, not compact\n"
    );
    assert_eq!(tl(d, &["describe", "events"]).ok(), "0\t0\t0\t1\t0\t-\t0\n");
    let keyless = tl_in(d, &["produce", "state", "--partition", "0"], b"no key\n");
    assert!(keyless.failed(2).contains("without a key"), "{keyless:?}");
    assert!(tl(d, &["compact", "missing"]).failed(2).contains("missing"));
}

/// Transactions through the CLI: `consume --isolation-level read_committed` hides aborted
/// and open transactions, `describe` shows the last stable offset, `dump` names the markers
/// and prints the `.txnindex`, `transactions` lists an open transaction and `transactions
/// abort` ends it.
#[test]
fn transactions_list_abort_and_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = Store::open(d).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let producer = store.transactional_producer("cli-test").unwrap();
    producer.init_transactions().unwrap();
    producer.begin_transaction().unwrap();
    producer
        .append("t", 0, &[Record::new(b"kept-0"), Record::new(b"kept-1")])
        .unwrap();
    producer.commit_transaction().unwrap();
    producer.begin_transaction().unwrap();
    producer.append("t", 0, &[Record::new(b"dropped")]).unwrap();
    producer.abort_transaction().unwrap();
    // Left open by a producer the coordinator does not know (as Kafka could leave it).
    let log = store.topic("t").unwrap().partition(0).unwrap();
    let stamp = topiclog::partition::ProducerStamp {
        producer_id: 7777,
        epoch: 0,
        base_sequence: 0,
    };
    let open_at = log
        .append_transactional(stamp, &[Record::new(b"open")])
        .unwrap()
        .base_offset;
    drop(log);
    drop(producer);
    store.close().unwrap();

    let values = |args: &[&str]| -> Vec<String> {
        tl(d, args)
            .ok()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["value"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let committed = [
        "consume",
        "t",
        "--json",
        "--isolation-level",
        "read_committed",
    ];
    assert_eq!(values(&committed), ["kept-0", "kept-1"]);
    assert_eq!(
        values(&["consume", "t", "--json"]),
        ["kept-0", "kept-1", "dropped", "open"]
    );
    let describe = tl(d, &["describe", "t"]).ok();
    assert_eq!(
        describe.trim_end().split('\t').nth(6),
        Some(&*open_at.to_string())
    );
    let list = tl(d, &["transactions"]).ok();
    let fields: Vec<&str> = list.trim_end().split('\t').collect();
    assert_eq!(
        &fields[..5],
        ["-", "7777", "0", "Ongoing", &*format!("t-0@{open_at}")]
    );
    let dump = tl(d, &["dump", "t-0"]).ok();
    assert!(
        dump.contains("endTxnMarker: COMMIT coordinatorEpoch: 1"),
        "{dump}"
    );
    assert!(
        dump.contains("endTxnMarker: ABORT coordinatorEpoch: 1"),
        "{dump}"
    );
    assert!(dump.contains(".txnindex"), "{dump}");
    assert!(dump.contains("version: 0 producerId: "), "{dump}");
    assert_eq!(
        tl(d, &["transactions", "abort", "7777"]).ok(),
        "aborted 7777\n"
    );
    assert_eq!(tl(d, &["transactions"]).ok(), "");
    assert!(
        tl(d, &["transactions", "abort", "7777"])
            .failed(2)
            .contains("no open transaction")
    );
    let describe = tl(d, &["describe", "t"]).ok();
    let fields: Vec<&str> = describe.trim_end().split('\t').collect();
    assert_eq!(fields[6], fields[2], "LSO at the log end");
    assert_eq!(values(&committed), ["kept-0", "kept-1"]);
    // An unknown level is refused as a usage error.
    tl(d, &["consume", "t", "--isolation-level", "sometimes"]).failed(2);
}
