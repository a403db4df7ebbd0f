//! Three consumers share a 6-partition topic as one group; one of them leaves half way and
//! the other two take over its partitions. Every record must be processed exactly once by the
//! group: each member commits after processing what a poll returned, and commits again when
//! the group revokes partitions, before they move. Exits non-zero if any record was processed
//! twice or never.
//!
//! `cargo run --example consumer_group -- DIR`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use topiclog::Store;
use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
use topiclog::consumer::RebalanceEvent;
use topiclog::record::Record;

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 6;
const RECORDS: usize = 6_000;
const GROUP: &str = "billing";

/// What the group processed: how many times each (partition, offset).
type Processed = Arc<Mutex<BTreeMap<(u32, i64), u32>>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: consumer_group DIR")?;
    let store = Arc::new(Store::open(&dir)?);
    if store.topic(TOPIC).is_ok() {
        // A fresh start on every run: the group's offsets go with a new topic too.
        store.delete_topic(TOPIC)?;
        store.delete_group(GROUP)?;
    }
    let topic = store.create_topic(TOPIC, TopicConfig::new(PARTITIONS))?;
    let values: Vec<(String, String)> = (0..RECORDS)
        .map(|i| (format!("customer-{}", i % 97), format!("order {i}")))
        .collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|(k, v)| Record::keyed(k.as_bytes(), v.as_bytes()))
        .collect();
    for chunk in records.chunks(500) {
        topic.append_batch(chunk)?;
    }
    println!("appended {RECORDS} records to {TOPIC} ({PARTITIONS} partitions)");

    let processed: Processed = Arc::new(Mutex::new(BTreeMap::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let leaver_left = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for name in ["member-1", "member-2", "member-3"] {
        let store = Arc::clone(&store);
        let processed = Arc::clone(&processed);
        let done = Arc::clone(&done);
        let leaver_left = Arc::clone(&leaver_left);
        members.push(std::thread::spawn(move || {
            run_member(&store, name, &processed, &done, &leaver_left)
        }));
    }
    let mut per_member = Vec::new();
    for (member, handle) in members.into_iter().enumerate() {
        let count = handle.join().map_err(|_| "a member thread panicked")??;
        per_member.push(format!("member-{}: {count}", member + 1));
    }
    println!("processed per member: {}", per_member.join(", "));

    let processed = processed.lock().map_err(|_| "poisoned")?;
    let twice = processed.values().filter(|&&n| n > 1).count();
    let total: usize = (0..PARTITIONS)
        .map(|p| topic.partition(p).map(|p| p.next_offset() as usize))
        .sum::<Result<usize, _>>()?;
    let missing = total - processed.len();
    let committed = store.committed_offsets(GROUP)?;
    println!(
        "group {GROUP}: {} records processed once, {twice} more than once, {missing} never; committed {:?}",
        processed.len() - twice,
        committed.values().collect::<Vec<_>>()
    );
    store.close()?;
    if twice > 0 || missing > 0 {
        eprintln!("FAILED: every record must be processed exactly once");
        std::process::exit(1);
    }
    println!("ok: every record was processed exactly once by the group");
    Ok(())
}

/// One member: polls, processes, commits; `member-3` leaves once half the records are done.
fn run_member(
    store: &Store,
    name: &str,
    processed: &Processed,
    done: &AtomicUsize,
    leaver_left: &AtomicBool,
) -> Result<usize, topiclog::Error> {
    let config = ConsumerConfig::builder()
        .group_id(GROUP)
        .member_id(name)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(200)
        .build()?;
    let mut consumer = store.consumer(config)?;
    consumer.subscribe(&[TOPIC])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mine = 0;
    while done.load(Ordering::SeqCst) < RECORDS && Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(100))?;
        for record in &records {
            // "Processing": count it.
            let mut seen = processed.lock().map_err(|_| topiclog::Error::Closed)?;
            let n = seen
                .entry((record.partition(), record.offset()))
                .or_insert(0);
            *n += 1;
            if *n == 1 {
                done.fetch_add(1, Ordering::SeqCst);
            }
            mine += 1;
        }
        // Commit what was processed; on a revocation, commit before the partitions move.
        consumer.commit()?;
        for event in consumer.rebalance_events() {
            match event {
                RebalanceEvent::Revoked(tps) => {
                    println!("{name}: partitions revoked {tps:?}");
                    consumer.commit()?;
                }
                RebalanceEvent::Assigned(tps) => println!("{name}: partitions assigned {tps:?}"),
                other => println!("{name}: {other:?}"),
            }
        }
        if name == "member-3"
            && !leaver_left.load(Ordering::SeqCst)
            && done.load(Ordering::SeqCst) >= RECORDS / 2
        {
            leaver_left.store(true, Ordering::SeqCst);
            consumer.commit()?;
            println!("{name}: leaving the group after {mine} records");
            consumer.close()?;
            return Ok(mine);
        }
    }
    consumer.commit()?;
    consumer.close()?;
    Ok(mine)
}
