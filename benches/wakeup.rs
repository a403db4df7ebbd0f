//! Append-to-wakeup latency: how long after an `append` call starts a consumer blocked in
//! `poll` returns the record. Criterion reports means, so this records every sample and prints
//! percentiles itself.
//!
//! Each sample appends one record and waits until every consumer has returned it before the
//! next, so each is a separate wake-up from a parked thread. Cases: the lazy policy
//! (`flush.messages` = `i64::MAX`: published at once) and the durable default (published once
//! the group commit's fsync returns, so the latency includes the fsync), each with 1 and 4
//! consumers (the latency of the last to wake). `cargo bench --bench wakeup`; set
//! `TOPICLOG_WAKEUP_SAMPLES` to change the 2000 samples per case.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use topiclog::Store;
use topiclog::config::{ConsumerConfig, LogConfig, OffsetReset, TopicConfig};
use topiclog::record::Record;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(durable: bool, consumers: usize, samples: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let log = LogConfig::builder()
        .flush_messages(if durable { 1 } else { i64::MAX })
        .build()
        .expect("config");
    let topic = store
        .create_topic("t", TopicConfig::new(1).with_log(log))
        .expect("topic");
    let base = Instant::now();
    let (tx, rx) = mpsc::channel::<Duration>();
    let mut threads = Vec::new();
    for _ in 0..consumers {
        let config = ConsumerConfig::builder()
            .auto_offset_reset(OffsetReset::Earliest)
            .build()
            .expect("config");
        let mut consumer = store.consumer(config).expect("consumer");
        consumer.assign(&[("t", 0)]).expect("assign");
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut got = 0;
            while got < samples {
                for record in consumer.poll(Duration::from_secs(30)).expect("poll") {
                    let now = base.elapsed();
                    let sent = record
                        .value()
                        .and_then(|v| <[u8; 16]>::try_from(v).ok())
                        .map(u128::from_be_bytes)
                        .expect("a timestamp value");
                    let sent = Duration::from_nanos(u64::try_from(sent).expect("fits"));
                    tx.send(now.saturating_sub(sent)).expect("send");
                    got += 1;
                }
            }
        }));
    }
    drop(tx);
    let topic = Arc::clone(&topic);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Let the consumers park again.
        std::thread::sleep(Duration::from_micros(200));
        let sent = base.elapsed().as_nanos().to_be_bytes();
        topic.append_to(0, Record::new(&sent)).expect("append");
        let mut last = Duration::ZERO;
        for _ in 0..consumers {
            last = last.max(rx.recv().expect("a consumer's sample"));
        }
        latencies.push(last);
    }
    for t in threads {
        t.join().expect("consumer");
    }
    latencies.sort();
    println!(
        "wakeup/{}/consumers={consumers}: samples {samples}, p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        if durable { "durable" } else { "lazy" },
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        percentile(&latencies, 0.999).as_secs_f64() * 1e6,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let samples = if quick {
        20
    } else {
        std::env::var("TOPICLOG_WAKEUP_SAMPLES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000)
    };
    for durable in [false, true] {
        for consumers in [1, 4] {
            run(durable, consumers, samples);
        }
    }
}
