//! Transactional appends beside plain idempotent ones, through a store with its default,
//! durable settings (`flush.messages` 1: every append and marker is fsynced before it
//! returns). Transactions of 1, 10 and 100 records over 1 and 4 partitions: each writes one
//! batch per partition (a 1-record transaction over 4 partitions writes to one), then commits (the coordinator's decision and the COMMIT markers are
//! fsynced too; a one-partition transaction's COMMIT marker is its decision). The idempotent rows append the same batches with no transaction.
//!
//! `cargo bench --bench transactions` (about a minute). Reported per case: median records/s
//! and transactions (or batch groups)/s over 3 runs, with the runs in brackets.

use std::time::{Duration, Instant};

use topiclog::config::TopicConfig;
use topiclog::{Record, Store};

const RUNS: usize = 3;
const RUN_TIME: Duration = Duration::from_millis(1500);

/// One run: groups of `records` records over `partitions` partitions for about [`RUN_TIME`];
/// returns groups per second.
fn run(transactional: bool, records: usize, partitions: u32) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("t", TopicConfig::new(partitions))
        .expect("topic");
    let value = [0x5au8; 100];
    let per = records / partitions as usize;
    let extra = records % partitions as usize;
    let batches: Vec<Vec<Record<'_>>> = (0..partitions as usize)
        .map(|p| vec![Record::new(&value); per + usize::from(p < extra)])
        .filter(|b| !b.is_empty())
        .collect();
    let txn = store.transactional_producer("bench").expect("producer");
    txn.init_transactions().expect("init");
    let idempotent = store.producer("bench-idempotent").expect("producer");
    let start = Instant::now();
    let mut groups = 0u64;
    while start.elapsed() < RUN_TIME {
        if transactional {
            txn.begin_transaction().expect("begin");
            for (p, batch) in (0u32..).zip(&batches) {
                txn.append("t", p, batch).expect("append");
            }
            txn.commit_transaction().expect("commit");
        } else {
            for (p, batch) in (0u32..).zip(&batches) {
                idempotent.append("t", p, batch).expect("append");
            }
        }
        groups += 1;
    }
    let rate = groups as f64 / start.elapsed().as_secs_f64();
    store.close().expect("close");
    rate
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("transactional vs idempotent appends, durable store; medians of {RUNS} runs");
    println!("| records per group | partitions | kind | records/s | groups/s |");
    println!("|---|---|---|---|---|");
    for partitions in [1u32, 4] {
        for records in [1usize, 10, 100] {
            for transactional in [true, false] {
                let runs: Vec<f64> = (0..RUNS)
                    .map(|_| run(transactional, records, partitions))
                    .collect();
                let groups = median(runs.clone());
                let kind = if transactional {
                    "transactional"
                } else {
                    "idempotent"
                };
                println!(
                    "| {records} | {partitions} | {kind} | {:.0} | {groups:.1} (runs: {:?}) |",
                    groups * records as f64,
                    runs.iter()
                        .map(|r| (r * 10.0).round() / 10.0)
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}
