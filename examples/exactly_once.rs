//! Exactly-once processing with a transactional producer: consume, transform, produce, and
//! commit the consumed offsets in the same transaction.
//!
//! ```sh
//! cargo run --example exactly_once -- /tmp/eos     # kill it (SIGKILL) and run it again, as often as you like
//! ```
//!
//! The first run creates topics `input` (4 partitions, filled with 10,000 records) and
//! `output` in the store directory. The worker consumes `input` in group `exactly-once`
//! (`read_committed`, no auto-commit) and, for each input record, appends one record to
//! `output` whose key is `P:O` (the input record's partition and offset) and whose value is
//! the input value upper-cased; every poll's records (at most 100) go out in one transaction,
//! with the input offsets they advance to. It exits 0 once every input record is processed.
//!
//! At its end it reads `output` as a `read_committed` consumer would and checks that every
//! input record appears exactly once: it exits with status 1 on a duplicate or a gap. A kill
//! at any moment loses nothing and duplicates nothing: the transaction under way is aborted
//! (its output hidden, its offsets not committed), and the next run starts from the offsets
//! the last committed transaction wrote.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, IsolationLevel, OffsetReset, TopicConfig};
use topiclog::partition::ReadOptions;
use topiclog::{Error as LogError, Record, Store};

const INPUT: &str = "input";
const OUTPUT: &str = "output";
const GROUP: &str = "exactly-once";
const PARTITIONS: u32 = 4;
const RECORDS: i64 = 10_000;
const PER_TRANSACTION: usize = 100;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let Some(dir) = std::env::args().nth(1) else {
        return Err("usage: exactly_once DIR".into());
    };
    let store = Store::open(&dir)?;
    fill_input(&store)?;
    process(&store)?;
    let (records, problems) = check(&store)?;
    store.close()?;
    if problems.is_empty() {
        println!(
            "{records} input records, each exactly once in {OUTPUT} ({})",
            Path::new(&dir).display()
        );
        Ok(())
    } else {
        for problem in problems.iter().take(20) {
            eprintln!("{problem}");
        }
        eprintln!("{} problems", problems.len());
        std::process::exit(1);
    }
}

/// Creates the topics (if missing) and fills each input partition to its share of
/// [`RECORDS`], so a run killed while filling finishes the fill.
fn fill_input(store: &Store) -> Result<(), Error> {
    for (name, partitions) in [(INPUT, PARTITIONS), (OUTPUT, PARTITIONS)] {
        match store.create_topic(name, TopicConfig::new(partitions)) {
            Ok(_) | Err(LogError::TopicExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let input = store.topic(INPUT)?;
    let share = RECORDS / i64::from(PARTITIONS);
    for (p, log) in (0u32..).zip(input.partitions()) {
        while log.next_offset() < share {
            let from = log.next_offset();
            let values: Vec<String> = (from..share.min(from + 500))
                .map(|o| format!("record {o} of partition {p}"))
                .collect();
            let records: Vec<Record<'_>> =
                values.iter().map(|v| Record::new(v.as_bytes())).collect();
            log.append_batch(&records)?;
        }
    }
    Ok(())
}

/// Consumes `input` and produces `output` in transactions until every input record is done.
fn process(store: &Store) -> Result<(), Error> {
    let producer = store.transactional_producer("exactly-once-worker")?;
    // Fences the handle of a run that was killed, aborting its transaction.
    producer.init_transactions()?;
    let config = ConsumerConfig::builder()
        .group_id(GROUP)
        .enable_auto_commit(false)
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(IsolationLevel::ReadCommitted)
        .max_poll_records(PER_TRANSACTION)
        // A killed run's member holds its partitions until its session times out.
        .session_timeout_ms(1_000)
        .heartbeat_interval_ms(250)
        .build()?;
    let mut consumer = store.consumer(config)?;
    consumer.subscribe(&[INPUT])?;
    let share = RECORDS / i64::from(PARTITIONS);
    let started = Instant::now();
    loop {
        let committed = store.committed_offsets(GROUP)?;
        if (0..PARTITIONS).all(|p| committed.get(&(INPUT.to_owned(), p)) == Some(&share)) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("not done after 5 minutes".into());
        }
        let records = consumer.poll(Duration::from_millis(200))?;
        if records.is_empty() {
            continue;
        }
        producer.begin_transaction()?;
        let mut next: BTreeMap<(String, u32), i64> = BTreeMap::new();
        let mut by_partition: BTreeMap<u32, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        for r in &records {
            let key = format!("{}:{}", r.partition(), r.offset());
            let value = r.value().unwrap_or_default().to_ascii_uppercase();
            by_partition
                .entry(r.partition())
                .or_default()
                .push((key, value));
            next.insert((INPUT.to_owned(), r.partition()), r.offset() + 1);
        }
        for (p, out) in &by_partition {
            let batch: Vec<Record<'_>> = out
                .iter()
                .map(|(k, v)| Record::keyed(k.as_bytes(), v))
                .collect();
            producer.append(OUTPUT, *p, &batch)?;
        }
        let offsets: Vec<_> = next.into_iter().collect();
        let group = consumer.group_metadata().ok_or("not in the group")?;
        producer.send_offsets_to_transaction(&offsets, &group)?;
        match producer.commit_transaction() {
            Ok(()) => {}
            // The group moved a partition away meanwhile: the transaction was aborted; read
            // again from what the group committed.
            Err(LogError::CommitRejected { .. } | LogError::UnknownMember { .. }) => {
                for ((topic, p), offset) in store.committed_offsets(GROUP)? {
                    if consumer.assignment().contains(&(topic.clone(), p)) {
                        consumer.seek(&topic, p, offset)?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads `output` under `read_committed` and checks that every input record appears exactly
/// once. Returns how many input records there are, and what is wrong.
fn check(store: &Store) -> Result<(i64, Vec<String>), Error> {
    let mut seen: BTreeMap<(u32, i64), u32> = BTreeMap::new();
    let mut problems = Vec::new();
    let options = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    for log in store.topic(OUTPUT)?.partitions() {
        for record in log.read_with(log.log_start_offset(), options)? {
            let record = record?;
            let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
            let parsed = key
                .split_once(':')
                .and_then(|(p, o)| Some((p.parse::<u32>().ok()?, o.parse::<i64>().ok()?)));
            match parsed {
                Some(key) => *seen.entry(key).or_default() += 1,
                None => problems.push(format!("output record {} has key {key:?}", record.offset())),
            }
        }
    }
    let share = RECORDS / i64::from(PARTITIONS);
    for p in 0..PARTITIONS {
        for o in 0..share {
            match seen.get(&(p, o)).copied().unwrap_or(0) {
                1 => {}
                0 => problems.push(format!("input {p}:{o} has no output record")),
                n => problems.push(format!("input {p}:{o} has {n} output records")),
            }
        }
    }
    for &(p, o) in seen.keys() {
        if p >= PARTITIONS || !(0..share).contains(&o) {
            problems.push(format!("output for {p}:{o}, which is no input record"));
        }
    }
    Ok((RECORDS, problems))
}
