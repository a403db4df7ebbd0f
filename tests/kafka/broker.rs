//! A Kafka-protocol broker for the tests that need one (features `kafka` and `cli`): the one
//! `.ci/run` starts (`TOPICLOG_TEST_BROKER=HOST:PORT`), or, when that is unset, a `nisshi`
//! broker started here on a free loopback port and stopped when the test binary exits; and
//! the cluster read back by kafka-python, an independent client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use topiclog::partition::OwnedRecord;

/// A broker for this test binary: `.ci/run`'s, or one started here.
pub struct Broker {
    pub address: String,
    _child: Option<ChildGuard>,
}

impl Broker {
    /// The process id of a broker started here.
    pub fn pid(&self) -> Option<u32> {
        self._child.as_ref().map(|c| c.0.id())
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn broker() -> &'static str {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    &BROKER.get_or_init(start_broker).address
}

fn start_broker() -> Broker {
    if let Ok(address) = std::env::var("TOPICLOG_TEST_BROKER") {
        return Broker {
            address,
            _child: None,
        };
    }
    own_broker()
}

/// A broker of the caller's own, stopped when dropped.
pub fn own_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let scratch = tempfile::tempdir().unwrap().keep();
    let child = Command::new("nisshi")
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{address}"),
            "--advertised-listener-url",
            &format!("tcp://{address}"),
            "--storage-engine",
            "memory://nisshi/",
        ])
        .current_dir(&scratch)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need a Kafka-protocol broker: set TOPICLOG_TEST_BROKER, or install \
                 nisshi (see .ci/run): {e}"
            )
        });
    // A static broker is never dropped: a watcher stops it (and removes its scratch
    // directory) once this test process is gone, however it ended.
    let watcher = format!(
        "while kill -0 {test} 2>/dev/null && kill -0 {broker} 2>/dev/null; do sleep 0.5; done; \
         kill {broker} 2>/dev/null; sleep 1; rm -rf '{scratch}'",
        test = std::process::id(),
        broker = child.id(),
        scratch = scratch.display(),
    );
    // Never waited for: it outlives this process by design, and init reaps it then.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &watcher])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh runs");
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker not listening on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        address,
        _child: Some(guard),
    }
}

/// A topic name unique to this process and call (the broker outlives one test).
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What `python3` runs: a script of `tests/kafka`, or code given inline.
#[derive(Clone, Copy)]
pub enum Python<'a> {
    Script(&'a str),
    Code(&'a str),
}
pub use Python::{Code, Script};

/// Runs `program` (kafka-python and its codecs: an independent Kafka client) with `args`;
/// returns what it printed. Its failure fails the test, with what it said.
pub fn kafka_python(program: Python<'_>, args: &[&str]) -> Vec<u8> {
    let mut command = Command::new("python3");
    match program {
        Script(name) => command.arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/kafka")
                .join(name),
        ),
        Code(code) => command.arg("-c").arg(code),
    };
    let out = command.args(args).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "kafka-python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `topic`'s partitions `0..partitions` in the cluster at `address`, as kafka-python reads
/// them (`tests/kafka/read_cluster.py`, `read_committed`, CreateTime checked), by partition;
/// with `group`, read from the group's committed offsets, which come back too.
pub fn cluster_read_from(
    address: &str,
    topic: &str,
    partitions: u32,
    group: Option<&str>,
) -> (BTreeMap<u32, Vec<OwnedRecord>>, BTreeMap<u32, Option<i64>>) {
    let partitions = partitions.to_string();
    let mut args = vec![address, topic, partitions.as_str()];
    args.extend(group);
    let out = kafka_python(Script("read_cluster.py"), &args);
    let b64 = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s).unwrap())
    };
    let mut records: BTreeMap<u32, Vec<OwnedRecord>> = BTreeMap::new();
    let mut committed = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(c) = v.get("committed") {
            for (p, o) in c.as_object().unwrap() {
                committed.insert(p.parse().unwrap(), o.as_i64());
            }
            continue;
        }
        assert_eq!(v["timestamp_type"], 0, "CreateTime");
        let headers = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| topiclog::OwnedHeader {
                key: h[0].as_str().unwrap().as_bytes().to_vec(),
                value: b64(&h[1]),
            })
            .collect();
        let partition = v["partition"].as_u64().unwrap() as u32;
        records.entry(partition).or_default().push(OwnedRecord {
            offset: v["offset"].as_i64().unwrap(),
            timestamp: v["timestamp"].as_i64().unwrap(),
            key: b64(&v["key"]),
            value: b64(&v["value"]),
            headers,
        });
    }
    (records, committed)
}

/// What a reader of `store`'s `topic` at isolation `level` returns, by partition (partitions
/// without records left out).
pub fn store_records(
    store: &topiclog::Store,
    topic: &str,
    level: topiclog::partition::IsolationLevel,
) -> BTreeMap<u32, Vec<OwnedRecord>> {
    let t = store.topic(topic).unwrap();
    let mut out = BTreeMap::new();
    for (n, p) in (0u32..).zip(t.partitions()) {
        let options = topiclog::partition::ReadOptions::new().isolation_level(level);
        let records: Vec<OwnedRecord> = p
            .read_with(p.log_start_offset(), options)
            .unwrap()
            .map(|r| r.unwrap().to_owned_record())
            .collect();
        if !records.is_empty() {
            out.insert(n, records);
        }
    }
    out
}

/// Sends signal `name` (`STOP`, `CONT`, `TERM`, ...) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
