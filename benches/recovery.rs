//! How long opening a large partition takes, warm cache: 10 GiB after a clean shutdown with
//! 64 MiB and with 1 MiB segments (nothing is read: the clean-shutdown marker vouches for the
//! files), and after a crash with the last 1 GiB above the recovery point (only that is
//! scanned). Each case's data is written once, before timing (about 30 GiB of writes in all;
//! set `TOPICLOG_BENCH_GIB` to change the 10). Every iteration opens and drops the partition.

mod common;

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

const GIB: u64 = 1 << 30;

fn config(segment_bytes: i32) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .flush_messages(i64::MAX)
        .build()
        .expect("valid config")
}

/// Writes `total` bytes of 1000-byte records in batches of 100, flushing after `flushed`
/// bytes; closes cleanly if `clean`, else drops (a crash after the flush).
fn write(dir: &Path, segment_bytes: i32, total: u64, flushed: u64, clean: bool) {
    let log = Partition::open(dir, config(segment_bytes)).expect("open");
    let values = common::values(100, 1000, 11);
    let batch: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let per_batch = 100 * 1000;
    let mut written = 0u64;
    while written < total {
        log.append_batch(&batch).expect("append");
        written += per_batch;
        if written >= flushed && written - per_batch < flushed {
            log.flush().expect("flush");
        }
    }
    if clean {
        log.close().expect("close");
    }
}

fn bench(c: &mut Criterion) {
    let gib: u64 = std::env::var("TOPICLOG_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let total = gib * GIB;
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let cases: [(&str, i32, u64, bool); 3] = [
        ("open/clean/segment=64MiB", 64 << 20, total, true),
        ("open/clean/segment=1MiB", 1 << 20, total, true),
        (
            "open/crash/segment=64MiB/unflushed=1GiB",
            64 << 20,
            total - GIB,
            false,
        ),
    ];
    let only = std::env::var("TOPICLOG_BENCH_CASE").ok();
    let reuse = std::env::var("TOPICLOG_BENCH_DIR").ok();
    for (name, segment_bytes, flushed, clean) in cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let kept;
        let fresh;
        let dir: &Path = match &reuse {
            Some(root) => {
                kept = Path::new(root).join(name.replace('/', "_"));
                if !kept.exists() {
                    write(&kept, segment_bytes, total, flushed, clean);
                }
                &kept
            }
            None => {
                fresh = common::fresh_dir();
                write(fresh.path(), segment_bytes, total, flushed, clean);
                fresh.path()
            }
        };
        group.bench_function(format!("{name}/size={gib}GiB"), |b| {
            b.iter(|| {
                let log = Partition::open(dir, config(segment_bytes)).expect("open");
                assert!(log.next_offset() > 0);
                log
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
