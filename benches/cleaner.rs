//! Log-cleaning throughput and memory: 1 GiB of keyed updates (16-byte keys drawn uniformly
//! from 10 k, 1 M or 10 M distinct keys, 100-byte values, 64 MiB segments: a sixteenth of
//! the log) compacted with the
//! default cleaner settings (128 MiB key map: the 10 M case needs two passes).
//!
//! Each case runs in its own process (the bench re-runs itself), three times, interleaved.
//! The child writes the log, then resets its peak-RSS counter (`/proc/self/clear_refs`) and
//! times `Partition::compact`. Reported per case: median MB/s of dirty log cleaned (bytes of
//! the sealed segments before cleaning, in 10^6 bytes, over the compaction's wall time) and the
//! median peak RSS during the compaction (`VmHWM`, mapped pages included); beside them, the
//! disk's sequential write speed measured in the same run (1 GiB in 1 MiB writes, then
//! `fdatasync`), since cleaning reads and rewrites the log.
//!
//! `cargo bench --bench cleaner` (about 3 minutes); `TOPICLOG_BENCH_GIB` scales the log
//! (default 1). Linux only (peak RSS from `/proc`). Not part of the test suite.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use topiclog::Partition;
use topiclog::config::{CleanupPolicy, LogConfig};
use topiclog::record::Record;

const CHILD_ARG: &str = "--cleaner-child";
const RUNS: usize = 3;
const CASES: [u64; 3] = [10_000, 1_000_000, 10_000_000];

fn gib() -> f64 {
    std::env::var("TOPICLOG_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// The log's size in bytes.
fn log_bytes() -> u64 {
    (gib() * (1u64 << 30) as f64) as u64
}

/// The process's peak resident set (`VmHWM`) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One case in this process: prints `<dirty bytes> <seconds> <peak rss bytes> <records before>
/// <records after>`.
fn child(keys: u64, dir: &str) {
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes((log_bytes() / 16).clamp(1 << 20, 64 << 20) as i32)
        .flush_messages(i64::MAX)
        .retention_ms(-1)
        .build()
        .expect("config");
    let log = Partition::open(dir, config).expect("open");
    let target = log_bytes();
    let value = [0x5au8; 100];
    let mut state = keys;
    let mut batch_keys = vec![[0u8; 16]; 100];
    while log.size_bytes() < target {
        for key in &mut batch_keys {
            let k = next(&mut state) % keys;
            key[..8].copy_from_slice(&k.to_be_bytes());
            key[8..].copy_from_slice(&(!k).to_be_bytes());
        }
        let records: Vec<Record<'_>> = batch_keys
            .iter()
            .map(|k| Record::keyed(k, &value))
            .collect();
        log.append_batch(&records).expect("append");
    }
    log.flush().expect("flush");
    let dirty = log.dirt().expect("dirt");
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS");
    let start = Instant::now();
    let report = log.compact().expect("compact");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} {seconds} {} {} {}",
        dirty.cleanable_bytes,
        peak_rss(),
        report.records_before,
        report.records_after
    );
}

/// The disk's sequential write speed, MB/s: `bytes` in 1 MiB writes, then fdatasync.
fn disk_write_speed(dir: &std::path::Path, bytes: u64) -> f64 {
    let path = dir.join("sequential");
    let mut file = std::fs::File::create(&path).expect("create");
    let block = vec![0xa5u8; 1 << 20];
    let start = Instant::now();
    let mut written = 0;
    while written < bytes {
        file.write_all(&block).expect("write");
        written += block.len() as u64;
    }
    file.sync_data().expect("fdatasync");
    let speed = written as f64 / 1e6 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path).expect("remove");
    speed
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == CHILD_ARG) {
        child(args[i + 1].parse().expect("keys"), &args[i + 2]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    let exe = std::env::current_exe().expect("exe");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<Vec<(f64, f64, u64, u64)>> = vec![Vec::new(); CASES.len()];
    let mut disk = Vec::new();
    for run in 0..RUNS {
        disk.push(disk_write_speed(scratch.path(), log_bytes()));
        for (c, keys) in CASES.iter().enumerate() {
            let dir = scratch.path().join(format!("run{run}-keys{keys}"));
            let out = Command::new(&exe)
                .args([CHILD_ARG, &keys.to_string(), dir.to_str().expect("utf-8")])
                .output()
                .expect("child");
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8(out.stdout).expect("utf-8");
            let f: Vec<f64> = text
                .split_whitespace()
                .map(|x| x.parse().expect("number"))
                .collect();
            let (dirty, seconds, rss) = (f[0], f[1], f[2]);
            results[c].push((dirty / 1e6 / seconds, rss, f[3] as u64, f[4] as u64));
            std::fs::remove_dir_all(&dir).expect("remove");
        }
    }
    println!(
        "log cleaning, {} GiB of keyed updates, 100 B values, default cleaner settings; medians of {RUNS} runs",
        gib()
    );
    println!(
        "disk sequential write (1 MiB writes + fdatasync): {:.0} MB/s (runs: {:?})",
        median(disk.clone()),
        disk.iter().map(|d| d.round()).collect::<Vec<_>>()
    );
    println!(
        "| distinct keys | cleaned MB/s | ÷ disk write | peak RSS while cleaning | records before → after |"
    );
    println!("|---|---|---|---|---|");
    for (keys, runs) in CASES.iter().zip(&results) {
        let speed = median(runs.iter().map(|r| r.0).collect());
        let rss = median(runs.iter().map(|r| r.1).collect());
        let (before, after) = (runs[0].2, runs[0].3);
        println!(
            "| {keys} | {speed:.0} (runs: {:?}) | {:.2} | {:.0} MiB | {before} → {after} |",
            runs.iter().map(|r| r.0.round()).collect::<Vec<_>>(),
            speed / median(disk.clone()),
            rss / (1 << 20) as f64
        );
    }
}
