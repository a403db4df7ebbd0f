//! Append throughput, no fsync: `cargo bench --bench append`.
//!
//! One criterion iteration is one `append` / `append_batch` call. Every sample writes into
//! brand-new partition directories (a new one after every `DIR_PAYLOAD_BYTES` of values, so the
//! page cache holds at most a few tens of MiB of dirty data and nothing reaches writeback),
//! deleted after timing. Timed: the appends, and dropping the partition (its `Drop` writes the
//! last buffered bytes with one pwrite, no fsync), so every record reaches the OS inside the
//! timed region. Not timed: creating, seeding and opening the directory, deleting it.
//! Records carry no key and no timestamp, so each call stamps them with the log's clock.
//! Throughput is records/s and value bytes/s (every bench in a criterion group must report the
//! same kind of throughput, hence `ElementsAndBytes` throughout).
//!
//! After the criterion groups (unless a filter that does not match `latency` is given), the
//! latency of single appends: 1,000,000 one-record appends of 100 bytes, no fsync, each timed
//! with `Instant` (which adds its own ~2 clock reads to every sample), in fresh directories of
//! 200,000 appends each (opening and dropping the partition not timed); printed as p50, p99,
//! p99.9, p99.99 and the maximum.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use topiclog::Partition;
use topiclog::record::Record;

/// Value bytes written into one directory before the next sample part gets a fresh one.
const DIR_PAYLOAD_BYTES: u64 = 32 << 20;

/// Times `iters` calls of `call(&partition, i)`, `calls_per_dir` per fresh directory.
fn run_in_fresh_dirs(
    iters: u64,
    calls_per_dir: u64,
    mut call: impl FnMut(&Partition, u64),
) -> Duration {
    let mut timed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(calls_per_dir);
        let dir = common::fresh_dir();
        let log = common::open(dir.path());
        let start = Instant::now();
        for i in done..done + n {
            call(&log, i);
        }
        drop(log);
        timed += start.elapsed();
        drop(dir);
        done += n;
    }
    timed
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // 1. One 100-byte record per `append` call.
    let values = common::values(4096, 100, 1);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let per_dir = DIR_PAYLOAD_BYTES / 100;
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: 100,
    });
    group.bench_function("flush=none/one_per_call/100B", |b| {
        b.iter_custom(|iters| {
            run_in_fresh_dirs(iters, per_dir, |log, i| {
                let record = records[i as usize % records.len()];
                black_box(log.append(black_box(record)).expect("append"));
            })
        })
    });

    // 2. `append_batch` of 1000 records of 100 bytes (batches cut from 8000 distinct values).
    let values = common::values(8000, 100, 2);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let batches: Vec<&[Record<'_>]> = records.chunks(1000).collect();
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1000,
        bytes: 1000 * 100,
    });
    group.bench_function("flush=none/batch_1000x100B", |b| {
        b.iter_custom(|iters| {
            run_in_fresh_dirs(iters, per_dir / 1000, |log, i| {
                let batch = batches[i as usize % batches.len()];
                black_box(log.append_batch(black_box(batch)).expect("append_batch"));
            })
        })
    });

    // 3. `append_batch` of 100 records of 1000 bytes.
    let values = common::values(1000, 1000, 3);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let batches: Vec<&[Record<'_>]> = records.chunks(100).collect();
    group.throughput(Throughput::ElementsAndBytes {
        elements: 100,
        bytes: 100 * 1000,
    });
    group.bench_function("flush=none/batch_100x1000B", |b| {
        b.iter_custom(|iters| {
            run_in_fresh_dirs(iters, DIR_PAYLOAD_BYTES / (100 * 1000), |log, i| {
                let batch = batches[i as usize % batches.len()];
                black_box(log.append_batch(black_box(batch)).expect("append_batch"));
            })
        })
    });

    group.finish();
}

/// Appends timed one by one for the latency percentiles.
const LATENCY_SAMPLES: usize = 1_000_000;

/// Prints percentiles of the time single appends take (see the module docs).
fn latency() {
    let values = common::values(4096, 100, 4);
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    while samples.len() < LATENCY_SAMPLES {
        let dir = common::fresh_dir();
        let log = common::open(dir.path());
        for i in 0..200_000usize.min(LATENCY_SAMPLES - samples.len()) {
            let record = Record::new(&values[i % values.len()]);
            let start = Instant::now();
            black_box(log.append(black_box(record)).expect("append"));
            samples.push(start.elapsed());
        }
        drop(log);
        drop(dir);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "append/flush=none/one_per_call/100B latency over {} appends: p50 {:?}, p99 {:?}, \
         p99.9 {:?}, p99.99 {:?}, max {:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        at(0.9999),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, append);

fn main() {
    benches();
    // The first argument that is not a flag is criterion's filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "append/latency".contains(f.as_str())) {
        latency();
    }
    Criterion::default().configure_from_args().final_summary();
}
