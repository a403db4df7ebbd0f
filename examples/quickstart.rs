//! Quickstart: write a few thousand records to a partition, read them back, find records by
//! timestamp, and close cleanly.
//!
//! ```sh
//! cargo run --example quickstart -- /tmp/topiclog-quickstart
//! ```
//!
//! The directory then holds Kafka's own segment files (`00000000000000000000.log`, `.index`,
//! `.timeindex`); run it again and it reopens them and appends more.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::{Header, Record};

/// Records appended per run.
pub const RECORDS: i64 = 5_000;

/// What one run did.
#[derive(Debug)]
pub struct Summary {
    /// Offset of the first record this run wrote.
    pub first_offset: i64,
    /// The log's next offset after the run.
    pub next_offset: i64,
    /// Records read back and checked.
    pub records_read: usize,
    /// Segment files of the partition.
    pub segments: usize,
}

/// Runs the quickstart in `dir`, printing what it does.
pub fn run(dir: &Path) -> Result<Summary, Box<dyn Error>> {
    // Small segments so the run shows a few of them; the default is 1 GiB, as in Kafka.
    let config = LogConfig::builder().segment_bytes(256 * 1024).build()?;
    let log = Partition::open(dir, config)?;
    let report = log.recovery();
    println!(
        "opened {} (clean shutdown: {}, next offset {})",
        dir.display(),
        report.clean_shutdown,
        log.next_offset()
    );
    if report.bytes_lost() > 0 {
        println!("recovery cut {} bytes of torn writes", report.bytes_lost());
    }

    // Appends: the first half one record per call, the second half in batches of 50 (one
    // Kafka batch each). Every record has headers; every 100th is a tombstone (null value).
    let first_offset = log.next_offset();
    let base_time = 1_700_000_000_000 + first_offset * 10;
    let started = Instant::now();
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("user-{}", i % 97)).collect();
    let values: Vec<String> = (0..RECORDS)
        .map(|i| format!(r#"{{"event":"click","seq":{i},"page":"/item/{}"}}"#, i % 13))
        .collect();
    let traces: Vec<String> = (0..RECORDS).map(|i| format!("{i:08x}")).collect();
    let headers: Vec<[Header<'_>; 2]> = traces
        .iter()
        .map(|t| {
            [
                Header::new(b"trace-id", Some(t.as_bytes())),
                Header::new(b"source", None),
            ]
        })
        .collect();
    let records: Vec<Record<'_>> = (0..RECORDS as usize)
        .map(|i| {
            let record = if i % 100 == 0 {
                Record::tombstone(keys[i].as_bytes())
            } else {
                Record::keyed(keys[i].as_bytes(), values[i].as_bytes())
            };
            record
                .with_headers(&headers[i])
                .with_timestamp(base_time + i as i64 * 10)
        })
        .collect();
    let (singles, batched) = records.split_at(records.len() / 2);
    for record in singles {
        log.append(*record)?;
    }
    for batch in batched.chunks(50) {
        log.append_batch(batch)?;
    }
    println!(
        "appended {RECORDS} records at offsets {first_offset}..{} in {:?}",
        log.next_offset(),
        started.elapsed()
    );

    // Reads: everything this run wrote, checking order and content.
    let mut records_read = 0;
    for (record, i) in log.read(first_offset)?.zip(0..) {
        let record = record?;
        assert_eq!(record.offset(), first_offset + i, "offsets are contiguous");
        assert_eq!(record.timestamp(), base_time + i * 10);
        assert_eq!(record.key(), Some(format!("user-{}", i % 97).as_bytes()));
        assert_eq!(
            record.value().is_none(),
            i % 100 == 0,
            "tombstones read back as null"
        );
        assert_eq!(record.headers().count(), 2);
        records_read += 1;
    }
    println!("read back {records_read} records from offset {first_offset}");

    // Seek by time: the first record at or after a timestamp (Kafka's offsetsForTimes).
    let target = base_time + 2_500 * 10 + 5;
    if let Some(found) = log.offset_for_timestamp(target)? {
        println!(
            "first record at or after t={target}: offset {} (t={})",
            found.offset, found.timestamp
        );
        let record = log.read(found.offset)?.next().ok_or("record vanished")??;
        println!(
            "  key {:?}",
            String::from_utf8_lossy(record.key().unwrap_or_default())
        );
    }

    let segments = log.segment_base_offsets().len();
    let next_offset = log.next_offset();
    log.close()?;
    println!("closed cleanly: {segments} segments, next offset {next_offset}");
    Ok(Summary {
        first_offset,
        next_offset,
        records_read,
        segments,
    })
}

#[allow(dead_code)] // tests include this file as a module and call `run`
fn main() -> Result<(), Box<dyn Error>> {
    let dir: PathBuf = match std::env::args_os().nth(1) {
        Some(dir) => dir.into(),
        None => {
            eprintln!("usage: cargo run --example quickstart -- DIR");
            std::process::exit(2);
        }
    };
    run(&dir)?;
    Ok(())
}
