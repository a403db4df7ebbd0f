//! Append-to-poll latency across processes: how long after `append` returns in the writer
//! process a consumer in another process (a store opened with `Store::open_read_only`, woken
//! by file-change notification) returns the record from `poll`.
//!
//! The bench re-runs itself as the consumer process. Each sample appends one record (its
//! sequence number), takes the wall-clock time when `append` returns, and waits for the
//! consumer to report the wall-clock time its `poll` returned that record; so every sample is
//! a separate wake-up from a parked consumer, and the latency excludes the append itself
//! (under the durable policy, its fsync). Both processes read the same system clock.
//!
//! Cases: the durable default (`flush.messages` 1: the follower may return a record only once
//! the writer published it as durable) and the lazy policy (`flush.messages` = `i64::MAX`:
//! the writer writes through while someone follows). Prints p50, p99, p99.9 and max per case.
//! `cargo bench --bench wakeup_processes`; `TOPICLOG_WAKEUP_SAMPLES` sets the samples per case
//! (default 10,000).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use topiclog::config::{ConsumerConfig, LogConfig, OffsetReset, TopicConfig};
use topiclog::{Record, Store};

const CHILD_ENV: &str = "TOPICLOG_WAKEUP_CHILD_DIR";

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// The consumer process: prints `<seq> <ns>` for every record as soon as `poll` returns it.
fn child(dir: &str) {
    let store = Store::open_read_only(dir).expect("opens");
    let config = ConsumerConfig::builder()
        .auto_offset_reset(OffsetReset::Earliest)
        .build()
        .expect("config");
    let mut consumer = store.consumer(config).expect("consumer");
    consumer.assign(&[("t", 0)]).expect("assign");
    let mut out = std::io::stdout().lock();
    // Settles its file watch before the writer starts.
    consumer.poll(Duration::from_millis(200)).expect("poll");
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    loop {
        let records = consumer.poll(Duration::from_secs(60)).expect("poll");
        let at = now_ns();
        for r in &records {
            let seq = r
                .value()
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map(u64::from_be_bytes)
                .expect("a sequence number");
            if seq == u64::MAX {
                return;
            }
            writeln!(out, "{seq} {at}").expect("stdout");
        }
        out.flush().expect("stdout");
    }
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(durable: bool, samples: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let log = LogConfig::builder()
        .flush_messages(if durable { 1 } else { i64::MAX })
        .build()
        .expect("config");
    let topic = store
        .create_topic("t", TopicConfig::new(1).with_log(log))
        .expect("topic");
    let partition = topic.partition(0).expect("partition");
    let mut consumer = Command::new(std::env::current_exe().expect("bench binary"))
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("consumer process");
    let mut lines = BufReader::new(consumer.stdout.take().expect("piped")).lines();
    assert_eq!(lines.next().expect("a line").expect("text"), "ready");
    // Past the writer's follower probe: from here on it serves the follower.
    std::thread::sleep(Duration::from_millis(200));
    let mut latencies = Vec::with_capacity(samples as usize);
    let mut appends = Vec::with_capacity(samples as usize);
    for seq in 0..samples {
        let started = now_ns();
        partition
            .append(Record::new(&seq.to_be_bytes()))
            .expect("append");
        let returned = now_ns();
        appends.push(returned - started);
        let line = lines.next().expect("a line").expect("text");
        let (got, at) = line.split_once(' ').expect("seq ns");
        assert_eq!(got.parse::<u64>().expect("seq"), seq);
        latencies.push(at.parse::<u128>().expect("ns").saturating_sub(returned));
    }
    partition
        .append(Record::new(&u64::MAX.to_be_bytes()))
        .expect("append");
    consumer.wait().expect("consumer exits");
    latencies.sort_unstable();
    appends.sort_unstable();
    let us = |ns: u128| ns as f64 / 1000.0;
    println!(
        "{:<8} {samples} samples: append-return to poll-return p50 {:.0} us, p99 {:.0} us, \
         p99.9 {:.0} us, max {:.0} us (the append itself, fsync included: p50 {:.0} us)",
        if durable { "durable" } else { "lazy" },
        us(percentile(&latencies, 0.5)),
        us(percentile(&latencies, 0.99)),
        us(percentile(&latencies, 0.999)),
        us(*latencies.last().expect("samples")),
        us(percentile(&appends, 0.5)),
    );
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, briefly.
    let testing = std::env::args().all(|a| a != "--bench");
    let samples = std::env::var("TOPICLOG_WAKEUP_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if testing { 20 } else { 10_000 });
    run(true, samples);
    run(false, samples);
}
