//! Durable appends (`flush.messages` 1, topiclog's default): every append is fsynced before it
//! returns, and concurrent appenders share fsyncs (group commit). Measured: single-record
//! appends per second with one thread and with four, and a plain `write` + `fdatasync` loop on
//! an ordinary file in the same run, the floor one thread should match.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

fn durable(dir: &std::path::Path) -> Partition {
    Partition::open(dir, LogConfig::default()).expect("open the partition")
}

fn bench(c: &mut Criterion) {
    let value = common::values(1, 100, 7).remove(0);
    let mut group = c.benchmark_group("durable");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10)
        .throughput(Throughput::Elements(1));

    group.bench_function("flush=every_append/threads=1", |b| {
        b.iter_custom(|iters| {
            let dir = common::fresh_dir();
            let log = durable(dir.path());
            let start = Instant::now();
            for _ in 0..iters {
                log.append(Record::new(&value)).expect("append");
            }
            start.elapsed()
        })
    });

    group.bench_function("flush=every_append/threads=4", |b| {
        b.iter_custom(|iters| {
            let dir = common::fresh_dir();
            let log = durable(dir.path());
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..4 {
                    let (log, value) = (&log, &value);
                    scope.spawn(move || {
                        for _ in (t..iters).step_by(4) {
                            log.append(Record::new(value)).expect("append");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });

    // The floor: what one thread can do with one write and one fdatasync per record.
    let record = vec![b'x'; 170];
    group.bench_function("baseline/write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let dir = common::fresh_dir();
            let mut file = std::fs::File::create(dir.path().join("plain.log")).expect("create");
            let start = Instant::now();
            for _ in 0..iters {
                file.write_all(&record).expect("write");
                file.sync_data().expect("fdatasync");
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
