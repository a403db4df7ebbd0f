//! A durable work queue between processes: one producer process appends jobs, any number of
//! worker processes share them as one consumer group, and any of them can be stopped, killed
//! or restarted at any time.
//!
//! ```sh
//! cargo run --example work_queue -- producer /tmp/queue          # appends 20 jobs a second
//! cargo run --example work_queue -- worker /tmp/queue            # in two or three terminals
//! cargo run --features cli --bin topiclog -- --dir /tmp/queue describe-group workers
//! cargo run --example work_queue -- check /tmp/queue             # every job done?
//! ```
//!
//! The producer holds the store (`Store::open`) and appends `job <n>` records to the 4
//! partitions of topic `jobs`, numbering on from the jobs already there when it restarts.
//! Workers open the store for consuming (`Store::open_consumer`: no writer lock), join group
//! `workers`, and for each job "work" (a few milliseconds), append a line to their own file
//! `done-<pid>.txt` in the store directory, and commit after each poll. A worker checks that
//! every partition it owns continues exactly at the group's committed offset with no gap, and
//! exits with status 1 the moment a job went missing. `check` reads every worker's file and
//! exits with status 1 if a job in the topic was never done (jobs done twice are counted:
//! expected only for jobs a killed worker had done but not committed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
use topiclog::consumer::RebalanceEvent;
use topiclog::{Record, Store};

const TOPIC: &str = "jobs";
const GROUP: &str = "workers";
const PARTITIONS: u32 = 4;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: work_queue producer|worker|check DIR".into());
    };
    let dir = Path::new(dir);
    match mode.as_str() {
        "producer" => producer(dir),
        "worker" => worker(dir),
        "check" => check(dir),
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

/// Appends a job every 50 ms, forever (stop it with Ctrl-C; restart it any time).
fn producer(dir: &Path) -> Result<(), Error> {
    let store = Store::open(dir)?;
    let topic = match store.topic(TOPIC) {
        Ok(topic) => topic,
        Err(_) => store.create_topic(TOPIC, TopicConfig::new(PARTITIONS))?,
    };
    // Every job is one record: the jobs so far are the records so far.
    let mut next: u64 = topic
        .partitions()
        .iter()
        .map(|p| p.next_offset() as u64)
        .sum();
    println!("producer: appending from job {next}");
    loop {
        let job = format!("job {next}");
        // Durable when it returns (the default flush policy).
        let (partition, offset) = topic.append(Record::keyed(job.as_bytes(), job.as_bytes()))?;
        if next.is_multiple_of(20) {
            println!("producer: {job} at {TOPIC}-{partition}@{offset}");
        }
        next += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Works through the group's share of jobs, forever (stop, kill or restart it any time).
fn worker(dir: &Path) -> Result<(), Error> {
    let store = Store::open_consumer(dir)?;
    let config = ConsumerConfig::builder()
        .group_id(GROUP)
        .client_id(format!("work_queue-{}", std::process::id()))
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .build()?;
    let mut consumer = store.consumer(config)?;
    consumer.subscribe(&[TOPIC])?;
    let mut done = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("done-{}.txt", std::process::id())))?;
    // The offset each owned partition must continue at.
    let mut expected: BTreeMap<u32, i64> = BTreeMap::new();
    loop {
        let jobs = consumer.poll(Duration::from_secs(1))?;
        for event in consumer.rebalance_events() {
            println!("worker {}: {event}", std::process::id());
            if let RebalanceEvent::Revoked(gone) | RebalanceEvent::Lost(gone) = event {
                for (_, p) in gone {
                    expected.remove(&p);
                }
            }
        }
        for job in &jobs {
            let p = job.partition();
            let at = match expected.get(&p) {
                Some(&at) => at,
                None => consumer.committed(TOPIC, p)?.unwrap_or(0),
            };
            if job.offset() != at {
                eprintln!(
                    "worker {}: LOST jobs {TOPIC}-{p}@{at}..{}: the group skipped them",
                    std::process::id(),
                    job.offset()
                );
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(5)); // the work
            let value = String::from_utf8_lossy(job.value().unwrap_or_default());
            writeln!(done, "{p} {} {value}", job.offset())?;
            expected.insert(p, job.offset() + 1);
        }
        if !jobs.is_empty() {
            done.sync_data()?;
            println!(
                "worker {}: did {} jobs, up to {:?}",
                std::process::id(),
                jobs.len(),
                expected
            );
        }
        // After the work is recorded: at least once, never lost.
        match consumer.commit() {
            Ok(()) => {}
            // A partition moved while we worked: its new owner does the uncommitted jobs.
            Err(e @ topiclog::Error::CommitRejected { .. }) => println!("worker: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every job in the topic done by some worker? Exits 1 if not.
fn check(dir: &Path) -> Result<(), Error> {
    let store = Store::open_read_only(dir)?;
    let topic = store.topic(TOPIC)?;
    let mut done: BTreeMap<(u32, i64), u32> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("done-") && name.ends_with(".txt")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let mut fields = line.split(' ');
            let (Some(p), Some(o)) = (fields.next(), fields.next()) else {
                continue; // a line a killed worker did not finish
            };
            if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                *done.entry((p, o)).or_default() += 1;
            }
        }
    }
    let committed = store.committed_offsets(GROUP)?;
    let mut missing = BTreeSet::new();
    let mut total = 0;
    for (p, partition) in (0u32..).zip(topic.partitions()) {
        // Jobs below the committed offset must be done; above it they are still queued.
        let upto = committed.get(&(TOPIC.to_owned(), p)).copied().unwrap_or(0);
        for offset in 0..upto {
            total += 1;
            if !done.contains_key(&(p, offset)) {
                missing.insert((p, offset));
            }
        }
        let queued = partition.next_offset() - upto;
        println!("{TOPIC}-{p}: {upto} done and committed, {queued} queued");
    }
    let twice = done.values().filter(|&&n| n > 1).count();
    println!(
        "{total} jobs committed, {twice} done more than once, {} missing",
        missing.len()
    );
    if missing.is_empty() {
        Ok(())
    } else {
        eprintln!("LOST: {missing:?}");
        std::process::exit(1);
    }
}
