//! A Kafka-protocol broker for the tests that need one (features `kafka` and `cli`): the one
//! `.ci/run` starts (`TOPICLOG_TEST_BROKER=HOST:PORT`), or, when that is unset, a `nisshi`
//! broker started here on a free loopback port and stopped when the test binary exits.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
