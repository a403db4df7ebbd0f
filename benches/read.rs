//! Read throughput from logs in the page cache: `cargo bench --bench read`.
//!
//! Each log is prepared once, outside timing: 1M records of 100-byte values written into a
//! fresh directory (see `common::fresh_dir`) either one record per `append` call or with `append_batch` of 1000; the
//! partition is dropped (its `Drop` writes the buffered tail, no fsync) and reopened, so every
//! batch is read from the segment file (through its mapping) rather than the write buffer; then
//! the whole log is read once to warm the page cache. Every read validates each batch's CRC.

mod common;

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use topiclog::Partition;
use topiclog::record::Record;

/// Records in each prepared log.
const LOG_RECORDS: u64 = 1_000_000;
/// Random offsets drawn before timing, used in a cycle.
const RANDOM_OFFSETS: usize = 1 << 16;

/// How a prepared log was written.
#[derive(Clone, Copy)]
enum Layout {
    OnePerCall,
    Batch1000,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OnePerCall => "log=one_per_call",
            Layout::Batch1000 => "log=batch_1000",
        }
    }
}

/// A prepared, reopened, warmed log and the directory that holds it.
struct Prepared {
    log: Partition,
    _dir: TempDir,
}

fn prepare(layout: Layout) -> Prepared {
    let dir = common::fresh_dir();
    let values = common::values(8000, 100, 7);
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    {
        let log = common::open(dir.path());
        match layout {
            Layout::OnePerCall => {
                for record in records.iter().cycle().take(LOG_RECORDS as usize) {
                    log.append(*record).expect("append");
                }
            }
            Layout::Batch1000 => {
                for batch in records
                    .chunks(1000)
                    .cycle()
                    .take(LOG_RECORDS as usize / 1000)
                {
                    log.append_batch(batch).expect("append_batch");
                }
            }
        }
        assert_eq!(log.next_offset(), LOG_RECORDS as i64);
    } // dropped without close: the tail goes to the file, nothing is fsynced
    let log = common::open(dir.path());
    assert_eq!(log.next_offset(), LOG_RECORDS as i64);
    assert_eq!(scan_all(&log), (LOG_RECORDS, LOG_RECORDS * 100));
    Prepared { log, _dir: dir }
}

/// Reads the whole log from offset 0; returns the records read and the sum of value lengths.
fn scan_all(log: &Partition) -> (u64, u64) {
    let (mut count, mut value_bytes) = (0u64, 0u64);
    for record in log.read(0).expect("read") {
        let record = record.expect("record");
        value_bytes += record.value().map_or(0, <[u8]>::len) as u64;
        count += 1;
    }
    (count, value_bytes)
}

/// The same through `Reader::try_for_each_view`: the reader's own loop over borrowed records.
fn scan_all_for_each(log: &Partition) -> (u64, u64) {
    let (mut count, mut value_bytes) = (0u64, 0u64);
    let mut reader = log.read(0).expect("read");
    let flow = reader
        .try_for_each_view(|record| {
            value_bytes += record.value().map_or(0, <[u8]>::len) as u64;
            count += 1;
            ControlFlow::<()>::Continue(())
        })
        .expect("records");
    assert!(flow.is_continue());
    (count, value_bytes)
}

/// The same through `Reader::next_view`: records borrowed from the reader, no reference count
/// per record.
fn scan_all_views(log: &Partition) -> (u64, u64) {
    let (mut count, mut value_bytes) = (0u64, 0u64);
    let mut reader = log.read(0).expect("read");
    while let Some(record) = reader.next_view() {
        let record = record.expect("record");
        value_bytes += record.value().map_or(0, <[u8]>::len) as u64;
        count += 1;
    }
    (count, value_bytes)
}

fn read(c: &mut Criterion) {
    let logs = [
        (Layout::Batch1000, prepare(Layout::Batch1000)),
        (Layout::OnePerCall, prepare(Layout::OnePerCall)),
    ];

    let mut group = c.benchmark_group("read");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // 4. Sequential: one iteration reads the whole log from offset 0 (~50 ms at the target), so
    //    samples have equal iteration counts (flat) instead of criterion's linear ramp.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .throughput(Throughput::Elements(LOG_RECORDS));
    for (layout, prepared) in &logs {
        group.bench_function(format!("sequential_from_0/{}", layout.name()), |b| {
            b.iter(|| {
                let (count, value_bytes) = scan_all(&prepared.log);
                assert_eq!(count, LOG_RECORDS);
                black_box(value_bytes)
            })
        });
        group.bench_function(
            format!("sequential_for_each_from_0/{}", layout.name()),
            |b| {
                b.iter(|| {
                    let (count, value_bytes) = scan_all_for_each(&prepared.log);
                    assert_eq!(count, LOG_RECORDS);
                    black_box(value_bytes)
                })
            },
        );
        group.bench_function(format!("sequential_views_from_0/{}", layout.name()), |b| {
            b.iter(|| {
                let (count, value_bytes) = scan_all_views(&prepared.log);
                assert_eq!(count, LOG_RECORDS);
                black_box(value_bytes)
            })
        });
    }

    // 5. Random single-offset reads: `read(offset)?.next()`, one per iteration.
    let mut rng = common::SplitMix64::new(42);
    let offsets: Vec<i64> = (0..RANDOM_OFFSETS)
        .map(|_| rng.below(LOG_RECORDS) as i64)
        .collect();
    group
        .sampling_mode(SamplingMode::Linear)
        .sample_size(100)
        .throughput(Throughput::Elements(1));
    for (layout, prepared) in logs.iter().rev() {
        group.bench_function(format!("random_offset/{}", layout.name()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    let offset = offsets[i as usize % RANDOM_OFFSETS];
                    let record = prepared
                        .log
                        .read(black_box(offset))
                        .expect("read")
                        .next()
                        .expect("a record")
                        .expect("valid record");
                    assert_eq!(record.offset(), offset);
                    black_box(record.value().map_or(0, <[u8]>::len));
                }
                start.elapsed()
            })
        });
    }

    // The same with two reader threads sharing the partition, each reading half the offsets.
    for (layout, prepared) in logs.iter().rev() {
        group.bench_function(format!("random_offset_2_threads/{}", layout.name()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..2u64 {
                        let (log, offsets) = (&prepared.log, &offsets);
                        scope.spawn(move || {
                            for i in (t..iters).step_by(2) {
                                let offset = offsets[i as usize % RANDOM_OFFSETS];
                                let record = log
                                    .read(black_box(offset))
                                    .expect("read")
                                    .next()
                                    .expect("a record")
                                    .expect("valid record");
                                assert_eq!(record.offset(), offset);
                                black_box(record.value().map_or(0, <[u8]>::len));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }

    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
