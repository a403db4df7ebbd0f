//! The bench's other processes: it runs itself again (`current_exe()`) with
//! [`CHILD`] set to a mode, so that peak RSS is one scan's alone and so that topiclog's
//! consumer and follower paths cross a process boundary (issue 9's path). Each child prints
//! one result line on stdout.
//!
//! * `scan`: opens one peer's log and reads it from the start; prints
//!   `<records> <value bytes> <seconds> <peak RSS bytes>`.
//! * `consume`: a topiclog consumer (`Store::open_read_only`, `assign`, `poll`) reads the
//!   store's topic from the start; prints as `scan`.
//! * `consume-random`: the same consumer with `max.poll.records` 1 reads single records at
//!   the seeded random offsets (`seek`, `poll`), a fresh store and consumer per round; prints
//!   `<reads> <value bytes> <seconds>`.
//! * `follow`: a consumer follows the topic while the parent appends: prints `ready` once
//!   it polled once, then `<records> <value bytes>` once it read the expected count.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::Store;
use topiclog::config::{ConsumerConfig, OffsetReset};

use super::tlog::TOPIC;
use super::{Tally, Which, random_offsets};

pub const CHILD: &str = "TOPICLOG_PEERS_CHILD";
const PEER: &str = "TOPICLOG_PEERS_CHILD_PEER";
const DIR: &str = "TOPICLOG_PEERS_CHILD_DIR";
const KEYED: &str = "TOPICLOG_PEERS_CHILD_KEYED";
const RECORDS: &str = "TOPICLOG_PEERS_CHILD_RECORDS";
const READS: &str = "TOPICLOG_PEERS_CHILD_READS";
const SEED: &str = "TOPICLOG_PEERS_CHILD_SEED";
const ROUND: &str = "TOPICLOG_PEERS_CHILD_ROUND";

/// The process's peak resident set (`VmHWM`), mapped file pages included, in bytes.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"))
}

fn num(name: &str) -> u64 {
    env(name).parse().expect("a number")
}

/// Runs the child mode `mode`.
pub fn run(mode: &str) {
    let dir = PathBuf::from(env(DIR));
    let line = match mode {
        "scan" => {
            let which = Which::from_name(&env(PEER));
            let keyed = env(KEYED) == "1";
            let start = Instant::now();
            let tally = which.scan_once(&dir, keyed);
            let secs = start.elapsed().as_secs_f64();
            format!(
                "{} {} {secs} {}",
                tally.records,
                tally.value_bytes,
                peak_rss()
            )
        }
        "consume" => {
            let records = num(RECORDS);
            let (mut consumer, _store) = consumer(&dir, None);
            let start = Instant::now();
            let mut tally = Tally::default();
            while tally.records < records {
                for record in consumer.poll(Duration::from_secs(10)).expect("poll") {
                    tally.add(record.value().expect("a value"));
                }
            }
            let secs = start.elapsed().as_secs_f64();
            format!(
                "{} {} {secs} {}",
                tally.records,
                tally.value_bytes,
                peak_rss()
            )
        }
        "consume-random" => {
            let offsets = random_offsets(num(SEED), num(READS), num(RECORDS));
            let (mut consumer, _store) = consumer(&dir, Some(1));
            let start = Instant::now();
            let mut value_bytes = 0;
            for &offset in &offsets {
                consumer.seek(TOPIC, 0, offset as i64).expect("seek");
                let records = consumer.poll(Duration::from_secs(10)).expect("poll");
                assert_eq!(records.len(), 1);
                assert_eq!(records[0].offset(), offset as i64);
                value_bytes += records[0].value().expect("a value").len() as u64;
            }
            let secs = start.elapsed().as_secs_f64();
            format!("{} {value_bytes} {secs}", offsets.len())
        }
        "follow" => {
            let records = num(RECORDS);
            let (mut consumer, _store) = consumer(&dir, None);
            consumer.poll(Duration::from_millis(100)).expect("poll");
            say("ready");
            let mut tally = Tally::default();
            while tally.records < records {
                for record in consumer.poll(Duration::from_secs(10)).expect("poll") {
                    tally.add(record.value().expect("a value"));
                }
            }
            format!("{} {}", tally.records, tally.value_bytes)
        }
        other => panic!("unknown child mode {other}"),
    };
    say(&line);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

/// A consumer of partition 0 of [`TOPIC`] from the earliest offset, in a store opened
/// read-only (no lock, beside a live writer if there is one).
fn consumer(dir: &Path, max_poll_records: Option<usize>) -> (topiclog::Consumer, Store) {
    let store = Store::open_read_only(dir).expect("open the store read-only");
    let mut config = ConsumerConfig::builder().auto_offset_reset(OffsetReset::Earliest);
    if let Some(max) = max_poll_records {
        config = config.max_poll_records(max);
    }
    let mut consumer = store
        .consumer(config.build().expect("valid config"))
        .expect("consumer");
    consumer.assign(&[(TOPIC, 0)]).expect("assign");
    (consumer, store)
}

/// Starts a child in `mode` on `dir` with the given extra variables, its stdout piped.
pub fn spawn(mode: &str, dir: &Path, vars: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the bench binary"));
    command
        .env(CHILD, mode)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.spawn().expect("start a child process")
}

/// Runs a child to its end; returns its last line split on spaces.
pub fn output(mode: &str, dir: &Path, vars: &[(&str, String)]) -> Vec<String> {
    let child = spawn(mode, dir, vars);
    let out = child.wait_with_output().expect("child output");
    assert!(out.status.success(), "child {mode} failed: {}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.lines()
        .last()
        .expect("a result line")
        .split(' ')
        .map(str::to_string)
        .collect()
}

/// The variables naming a peer's log for `scan`.
pub fn scan_vars(which: Which, keyed: bool) -> Vec<(&'static str, String)> {
    vec![
        (PEER, which.name().to_string()),
        (KEYED, if keyed { "1" } else { "0" }.to_string()),
    ]
}

pub fn records_var(records: u64) -> (&'static str, String) {
    (RECORDS, records.to_string())
}

pub fn random_vars(seed: u64, reads: u64, round: u64, records: u64) -> Vec<(&'static str, String)> {
    vec![
        (SEED, seed.to_string()),
        (READS, reads.to_string()),
        (ROUND, round.to_string()),
        (RECORDS, records.to_string()),
    ]
}
