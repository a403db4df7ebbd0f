//! Compression per codec on realistic records: JSON-like values of 200-1000 bytes (field names
//! repeat, numbers and ids vary), appended in batches of 100 with no fsync, then read back
//! sequentially (every batch decompressed and its CRC checked), at Kafka's default level for
//! each codec and at a higher lz4 and zstd level. Prints the bytes on disk per case before
//! timing. `cargo bench --bench compression`.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::{Compression, Record};

const BATCH: usize = 100;
/// Records written per directory for the read benchmark and the size figure.
const RECORDS: usize = 20_000;

/// A JSON-like order event of 200-1000 bytes.
fn event(rng: &mut common::SplitMix64, i: usize) -> Vec<u8> {
    let items = 1 + (rng.next_u64() % 12) as usize;
    let lines: Vec<String> = (0..items)
        .map(|_| {
            format!(
                r#"{{"sku":"SKU-{:06}","qty":{},"price":{}.{:02}}}"#,
                rng.next_u64() % 50_000,
                1 + rng.next_u64() % 5,
                rng.next_u64() % 500,
                rng.next_u64() % 100
            )
        })
        .collect();
    format!(
        r#"{{"event":"order_placed","order_id":"{:016x}","seq":{i},"customer":{{"id":"c-{}","tier":"{}","country":"{}"}},"items":[{}],"ts":{}}}"#,
        rng.next_u64(),
        rng.next_u64() % 100_000,
        ["gold", "silver", "bronze"][(rng.next_u64() % 3) as usize],
        ["DE", "FR", "US", "JP", "BR"][(rng.next_u64() % 5) as usize],
        lines.join(","),
        1_700_000_000_000u64 + rng.next_u64() % 86_400_000
    )
    .into_bytes()
}

/// Each case: codec, level (`compression.<codec>.level`, `None` for Kafka's default), name.
const CASES: [(Compression, Option<i32>, &str); 7] = [
    (Compression::None, None, "none"),
    (Compression::Gzip, None, "gzip"),
    (Compression::Snappy, None, "snappy"),
    (Compression::Lz4, None, "lz4"),
    (Compression::Lz4, Some(12), "lz4_level_12"),
    (Compression::Zstd, None, "zstd"),
    (Compression::Zstd, Some(9), "zstd_level_9"),
];

/// A partition without fsync (as `common::open`) at `level` for `codec`.
fn open(dir: &Path, codec: Compression, level: Option<i32>) -> Partition {
    let mut config = LogConfig::builder().flush_messages(i64::MAX);
    if let Some(level) = level {
        config = match codec {
            Compression::Gzip => config.compression_gzip_level(level as u32),
            Compression::Lz4 => config.compression_lz4_level(level as u32),
            _ => config.compression_zstd_level(level),
        };
    }
    Partition::open(dir, config.build().expect("valid config")).expect("open the partition")
}

fn compression(c: &mut Criterion) {
    let mut rng = common::SplitMix64::new(6);
    let values: Vec<Vec<u8>> = (0..RECORDS).map(|i| event(&mut rng, i)).collect();
    let raw: usize = values.iter().map(Vec::len).sum();
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v)).collect();
    let batches: Vec<&[Record<'_>]> = records.chunks(BATCH).collect();

    // One written directory per codec, for the size figure and the read benchmark.
    let mut written = Vec::new();
    for (codec, level, name) in CASES {
        let dir = common::fresh_dir();
        let log = open(dir.path(), codec, level);
        for batch in &batches {
            log.append_batch_compressed(batch, codec).expect("append");
        }
        log.close().expect("close");
        println!(
            "compression/{name}: {} bytes of values, {} bytes on disk ({:.2}x)",
            raw,
            log.size_bytes(),
            raw as f64 / log.size_bytes() as f64
        );
        drop(log);
        written.push((name, dir));
    }

    let mut group = c.benchmark_group("compression");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let batch_bytes = raw as u64 / batches.len() as u64;
    group.throughput(Throughput::ElementsAndBytes {
        elements: BATCH as u64,
        bytes: batch_bytes,
    });
    for (codec, level, name) in CASES {
        group.bench_function(format!("append/{name}/batch_100_json"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(batches.len() as u64);
                    let dir = common::fresh_dir();
                    let log = open(dir.path(), codec, level);
                    let start = std::time::Instant::now();
                    for i in 0..n {
                        let batch = batches[i as usize % batches.len()];
                        black_box(log.append_batch_compressed(batch, codec).expect("append"));
                    }
                    drop(log);
                    timed += start.elapsed();
                    done += n;
                }
                timed
            })
        });
    }
    group.throughput(Throughput::ElementsAndBytes {
        elements: RECORDS as u64,
        bytes: raw as u64,
    });
    for (name, dir) in &written {
        let log = common::open(dir.path());
        group.bench_function(format!("read/{name}/sequential_20000_json"), |b| {
            b.iter(|| {
                let mut reader = log.read(0).expect("reader");
                let mut n = 0usize;
                while let Some(view) = reader.next_view() {
                    n += view.expect("record").value().map_or(0, <[u8]>::len);
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compression);
criterion_main!(benches);
