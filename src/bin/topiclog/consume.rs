//! `consume`: a topic's records on stdout, plain or as JSON lines; `--follow` tails them.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use std::collections::BTreeMap;

use topiclog::config::{ConsumerConfig, OffsetReset};
use topiclog::consumer::TopicPartition;
use topiclog::partition::Reader;
use topiclog::{Error, LogRecord, Partition, Store};

use crate::output::{Failure, Out, stdout_failure};

/// How long one `--follow` poll waits (it returns as soon as records arrive).
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// `consume`.
#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// The topic
    topic: String,
    /// Only this partition (default: every partition, in ascending order)
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Where each partition starts: `beginning` (its log start offset), `end` (its next offset)
    /// or an offset (past a partition's end: nothing from it until the log reaches it)
    #[arg(long, value_name = "beginning|end|OFFSET", default_value = "beginning")]
    from: StartAt,
    /// Start each partition at its first record with a timestamp >= MS (epoch milliseconds;
    /// nothing if there is none). Wins over --from
    #[arg(long, value_name = "MS")]
    from_time: Option<i64>,
    /// Print at most N records in all
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// One JSON object per record: partition, offset, timestamp, key, value, headers
    #[arg(long)]
    json: bool,
    /// Print keys and values (and header values) as base64
    #[arg(long)]
    base64: bool,
    /// At the end of the log, wait for new records (until interrupted) instead of exiting
    #[arg(long)]
    follow: bool,
    /// Consume as group G: start at its committed offsets (--from and --from-time apply only
    /// to partitions without one) and commit what was printed, at exit and every 1000 records
    /// (opens the store for writing)
    #[arg(long, value_name = "G")]
    group: Option<String>,
}

/// How often `consume --group` commits what it printed, at least.
const GROUP_COMMIT_EVERY: u64 = 1000;

/// `--from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    Beginning,
    End,
    Offset(i64),
}

impl FromStr for StartAt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            _ => match text.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(StartAt::Offset(offset)),
                _ => Err(format!(
                    "expected beginning, end or an offset of at least 0, got {text:?}"
                )),
            },
        }
    }
}

/// One partition being read.
struct Source {
    number: u32,
    reader: Reader,
    /// Records below this offset are skipped: an `--from OFFSET` past the partition's end
    /// reads from the end, and waits there with `--follow`, until the offset is reached.
    from: i64,
    /// The offset after the last record read.
    next: i64,
}

pub(crate) fn run(dir: &Path, args: &ConsumeArgs, out: &mut Out) -> Result<(), Failure> {
    if let Some(group) = &args.group {
        let options = crate::writer_options().create_if_missing(false).build();
        let store = Store::open_with(dir, options)?;
        let result = run_group(&store, group, args, out);
        let closed = store.close();
        result?;
        return Ok(closed?);
    }
    let store = Store::open_read_only(dir)?;
    let topic = store.topic(&args.topic)?;
    let partitions: Vec<(u32, Arc<Partition>)> = match args.partition {
        Some(n) => vec![(n, topic.partition(n)?)],
        None => (0..).zip(topic.partitions()).collect(),
    };
    let mut sources = Vec::with_capacity(partitions.len());
    for (number, partition) in partitions {
        let from = start_offset(&partition, args)?;
        let next = from.min(partition.next_offset());
        let reader = partition.read(next)?;
        sources.push(Source {
            from,
            next,
            number,
            reader,
        });
    }
    let mut left = args.max.unwrap_or(u64::MAX);
    for source in &mut sources {
        while left > 0 {
            let Some(record) = source.reader.next() else {
                break;
            };
            let record = match record {
                // A writer's retention deleted the records ahead of the reader.
                Err(Error::OffsetOutOfRange { log_start, .. }) => {
                    say_skipped(&args.topic, source.number, source.next, log_start);
                    source.next = log_start;
                    source.reader = topic.partition(source.number)?.read(log_start)?;
                    continue;
                }
                record => record?,
            };
            source.next = record.offset() + 1;
            if record.offset() < source.from {
                continue;
            }
            print_record(source.number, &record, args, out)?;
            left -= 1;
        }
    }
    if left == 0 || !args.follow {
        return Ok(());
    }
    follow(&store, &sources, left, args, out)
}

/// `--follow`: a consumer from where each partition's first pass stopped, printing records
/// as its polls return them. The writer is another process, so the consumer re-reads the
/// files while it waits (see `Consumer::poll`).
fn follow(
    store: &Store,
    sources: &[Source],
    mut left: u64,
    args: &ConsumeArgs,
    out: &mut Out,
) -> Result<(), Failure> {
    // `none`: a position retention deleted comes back as an error, so the skip can be said.
    let config = ConsumerConfig::builder()
        .auto_offset_reset(OffsetReset::None)
        .build()?;
    let mut consumer = store.consumer(config)?;
    let assignment: Vec<(&str, u32)> = sources
        .iter()
        .map(|s| (args.topic.as_str(), s.number))
        .collect();
    consumer.assign(&assignment)?;
    for source in sources {
        consumer.seek(&args.topic, source.number, source.next)?;
    }
    loop {
        out.flush()?;
        let polled = match consumer.poll(FOLLOW_POLL) {
            Err(Error::NoOffsetForPartition { partition, .. }) => {
                // The writer's retention deleted records before they were read: continue from
                // the new log start, and say how many were skipped.
                let position = consumer.position(&args.topic, partition);
                let log_start = store.topic(&args.topic)?.partition(partition)?;
                let log_start = log_start.log_start_offset();
                if let Ok(position) = position {
                    say_skipped(&args.topic, partition, position, log_start);
                }
                consumer.seek(&args.topic, partition, log_start)?;
                continue;
            }
            polled => polled?,
        };
        for record in polled {
            let from = sources
                .iter()
                .find(|s| s.number == record.partition())
                .map_or(0, |s| s.from);
            if record.offset() < from {
                continue;
            }
            print_record(record.partition(), record.record(), args, out)?;
            left -= 1;
            if left == 0 {
                return Ok(());
            }
        }
    }
}

/// Tells stderr that records `from..to` of a partition were deleted (by the writer's
/// retention) before they could be read.
fn say_skipped(topic: &str, partition: u32, from: i64, to: i64) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "topiclog: {topic}-{partition}: skipped {} offsets ({from}..{to}), deleted by retention before they were read; continuing from the log start {to}",
        to.saturating_sub(from)
    );
}

/// `consume --group`: a consumer of the group reading the topic's partitions (assigned by
/// hand: the store's lock keeps every other member out), from the committed offsets.
fn run_group(store: &Store, group: &str, args: &ConsumeArgs, out: &mut Out) -> Result<(), Failure> {
    let topic = store.topic(&args.topic)?;
    let numbers: Vec<u32> = match args.partition {
        Some(n) => vec![topic.partition(n)?; 1].iter().map(|_| n).collect(),
        None => (0..topic.partition_count()).collect(),
    };
    let config = ConsumerConfig::builder()
        .group_id(group)
        .enable_auto_commit(false)
        .auto_offset_reset(OffsetReset::Earliest)
        .build()?;
    let mut consumer = store.consumer(config)?;
    let assignment: Vec<(&str, u32)> = numbers.iter().map(|&n| (args.topic.as_str(), n)).collect();
    consumer.assign(&assignment)?;
    // Printed so far: the offset after the last printed record of each partition.
    let mut printed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for &n in &numbers {
        if consumer.committed(&args.topic, n)?.is_none() {
            let partition = topic.partition(n)?;
            let from = start_offset(&partition, args)?;
            consumer.seek(&args.topic, n, from.min(partition.next_offset()))?;
        }
    }
    let mut left = args.max.unwrap_or(u64::MAX);
    let mut since_commit = 0;
    let wait = if args.follow {
        FOLLOW_POLL
    } else {
        Duration::ZERO
    };
    while left > 0 {
        out.flush()?;
        let records = consumer.poll(wait)?;
        if records.is_empty() && !args.follow {
            break;
        }
        for record in records {
            print_record(record.partition(), record.record(), args, out)?;
            printed.insert(
                (args.topic.clone(), record.partition()),
                record.offset() + 1,
            );
            left -= 1;
            since_commit += 1;
            if since_commit >= GROUP_COMMIT_EVERY {
                out.flush()?;
                consumer.commit_offsets(&printed)?;
                since_commit = 0;
            }
            if left == 0 {
                break;
            }
        }
    }
    out.flush()?;
    Ok(consumer.commit_offsets(&printed)?)
}

/// The offset a partition starts at.
fn start_offset(partition: &Partition, args: &ConsumeArgs) -> Result<i64, Failure> {
    if let Some(ms) = args.from_time {
        let found = partition.offset_for_timestamp(ms)?;
        // Nothing that late: start at the end.
        return Ok(found.map_or_else(|| partition.next_offset(), |t| t.offset));
    }
    Ok(match args.from {
        StartAt::Beginning => partition.log_start_offset(),
        StartAt::End => partition.next_offset(),
        StartAt::Offset(offset) => offset,
    })
}

fn print_record(
    partition: u32,
    record: &LogRecord,
    args: &ConsumeArgs,
    out: &mut Out,
) -> Result<(), Failure> {
    if !args.json {
        match (record.value(), args.base64) {
            (Some(value), false) => out.bytes(value)?,
            (Some(value), true) => out.bytes(BASE64.encode(value).as_bytes())?,
            (None, _) => {}
        }
        return out.bytes(b"\n");
    }
    out.text(format_args!(
        "{{\"partition\":{partition},\"offset\":{},\"timestamp\":{},\"key\":",
        record.offset(),
        record.timestamp()
    ))?;
    json_bytes(record.key(), args.base64, out)?;
    out.bytes(b",\"value\":")?;
    json_bytes(record.value(), args.base64, out)?;
    out.bytes(b",\"headers\":[")?;
    for (i, header) in record.headers().enumerate() {
        out.bytes(if i == 0 { b"[" } else { b",[" })?;
        // Header keys are text in Kafka; header values are bytes like keys and values.
        json_bytes(Some(header.key), false, out)?;
        out.bytes(b",")?;
        json_bytes(header.value, args.base64, out)?;
        out.bytes(b"]")?;
    }
    out.bytes(b"]}\n")
}

/// A JSON string of the bytes (lossy UTF-8, or base64), or `null`.
fn json_bytes(bytes: Option<&[u8]>, base64: bool, out: &mut Out) -> Result<(), Failure> {
    let Some(bytes) = bytes else {
        return out.bytes(b"null");
    };
    let text = if base64 {
        BASE64.encode(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    serde_json::to_writer(out.writer(), &text).map_err(|e| stdout_failure(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!("beginning".parse(), Ok(StartAt::Beginning));
        assert_eq!("end".parse(), Ok(StartAt::End));
        assert_eq!("42".parse(), Ok(StartAt::Offset(42)));
        assert!("-1".parse::<StartAt>().is_err());
        assert!("latest".parse::<StartAt>().is_err());
    }
}
