//! `consume`: a topic's records on stdout, plain or as JSON lines; `--follow` tails them.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use std::collections::BTreeMap;

use topiclog::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use topiclog::consumer::{TopicPartition, Waker};
use topiclog::partition::{ReadOptions, Reader};
use topiclog::{Consumer, Error, LogRecord, Partition, Store};

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
    /// Consume as a member of group G, beside the writer and other members in any process:
    /// the group shares the topic's partitions among its members (with --partition, this one
    /// partition is read by hand, as Kafka's assign). Each partition starts at the group's
    /// committed offset (--from and --from-time apply only to partitions without one); what
    /// was printed is committed after each batch, before a partition moves to another
    /// member, and at exit, including on SIGINT or SIGTERM (then exit 0)
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// read_uncommitted (every record) or read_committed (records below each partition's last
    /// stable offset only, none of an aborted transaction), as Kafka's isolation.level
    #[arg(long, value_name = "LEVEL", default_value = "read_uncommitted")]
    isolation_level: IsolationLevel,
}

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

/// How the first pass reads each partition.
fn read_options(args: &ConsumeArgs) -> ReadOptions {
    ReadOptions::new().isolation_level(args.isolation_level)
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
        let store = Store::open_consumer(dir)?;
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
        let reader = partition.read_with(next, read_options(args))?;
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
                    // Never back over what was read: a start below it is stale.
                    let to = log_start.max(source.next);
                    if to > source.next {
                        say_skipped(&args.topic, source.number, source.next, to);
                    }
                    source.next = to;
                    source.reader = topic
                        .partition(source.number)?
                        .read_with(to, read_options(args))?;
                    continue;
                }
                record => record?,
            };
            if record.offset() < source.next {
                say_again(&args.topic, source.number, record.offset());
                continue;
            }
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
        .isolation_level(args.isolation_level)
        .build()?;
    let mut consumer = store.consumer(config)?;
    let assignment: Vec<(&str, u32)> = sources
        .iter()
        .map(|s| (args.topic.as_str(), s.number))
        .collect();
    consumer.assign(&assignment)?;
    // Per partition, the offset after the last record read: the one line of defence that
    // makes a printed offset never come out again, whatever moved a position back.
    let mut read_to: BTreeMap<u32, i64> = BTreeMap::new();
    for source in sources {
        consumer.seek(&args.topic, source.number, source.next)?;
        read_to.insert(source.number, source.next);
    }
    loop {
        out.flush()?;
        let polled = match consumer.poll(FOLLOW_POLL) {
            Err(Error::NoOffsetForPartition { partition, .. }) => {
                // The writer's retention deleted records before they were read: continue from
                // the new log start, and say how many were skipped.
                let position = consumer.position(&args.topic, partition).ok();
                let log_start = store.topic(&args.topic)?.partition(partition)?;
                let log_start = log_start.log_start_offset();
                match resume_after_deletion(position, log_start) {
                    Some(to) => {
                        if let Some(position) = position {
                            say_skipped(&args.topic, partition, position, to);
                        }
                        consumer.seek(&args.topic, partition, to)?;
                    }
                    // The next poll reads the new start; a pause in case it never comes (a file
                    // removed by hand).
                    None => std::thread::sleep(Duration::from_millis(10)),
                }
                continue;
            }
            polled => polled?,
        };
        for record in polled {
            let from = sources
                .iter()
                .find(|s| s.number == record.partition())
                .map_or(0, |s| s.from);
            let read = read_to.entry(record.partition()).or_insert(0);
            if record.offset() < *read {
                say_again(&args.topic, record.partition(), record.offset());
                continue;
            }
            *read = record.offset() + 1;
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

/// Where `--follow` goes on after its position in a partition was deleted: the log start, or
/// nothing yet when that start is not past the position. The poll that failed refreshed the
/// log start before it read, so a deletion between the two leaves a start below the position:
/// seeking there would move back over printed records (and misstate the skip); the next poll
/// reads the new start.
fn resume_after_deletion(position: Option<i64>, log_start: i64) -> Option<i64> {
    match position {
        Some(position) if log_start <= position => None,
        _ => Some(log_start),
    }
}

/// Tells stderr that a record already read came again (a position moved back) and was not
/// printed twice.
fn say_again(topic: &str, partition: u32, offset: i64) {
    crate::logger::say(format_args!(
        "{topic}-{partition}: offset {offset} came again after it was read; not printed twice"
    ));
}

/// Tells stderr that records `from..to` of a partition were deleted (by the writer's
/// retention) before they could be read.
fn say_skipped(topic: &str, partition: u32, from: i64, to: i64) {
    crate::logger::say(format_args!(
        "{topic}-{partition}: skipped {} offsets ({from}..{to}), deleted by retention before they were read; continuing from the log start {to}",
        to.saturating_sub(from)
    ));
}

/// `consume --group`: a member of the group (or, with `--partition`, a hand-assigned
/// consumer of that partition), printing what its polls return and committing what it printed.
fn run_group(store: &Store, group: &str, args: &ConsumeArgs, out: &mut Out) -> Result<(), Failure> {
    let topic = store.topic(&args.topic)?;
    // Where a partition without a committed offset starts: `none` makes poll say which one,
    // so that --from OFFSET and --from-time can place it.
    let reset = match (args.from_time, args.from) {
        (None, StartAt::Beginning) => OffsetReset::Earliest,
        (None, StartAt::End) => OffsetReset::Latest,
        _ => OffsetReset::None,
    };
    let config = ConsumerConfig::builder()
        .group_id(group)
        .client_id("topiclog-cli")
        .enable_auto_commit(false)
        .auto_offset_reset(reset)
        .isolation_level(args.isolation_level)
        .build()?;
    let mut consumer = store.consumer(config)?;
    match args.partition {
        Some(n) => {
            topic.partition(n)?;
            consumer.assign(&[(args.topic.as_str(), n)])?;
        }
        None => consumer.subscribe(&[args.topic.as_str()])?,
    }
    let stop = stop_on_signals(consumer.waker());
    // Printed since the last commit: the offset after the last printed record of each
    // partition.
    let mut printed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut left = args.max.unwrap_or(u64::MAX);
    let wait = if args.follow {
        FOLLOW_POLL
    } else {
        Duration::from_millis(200)
    };
    while left > 0 && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        out.flush()?;
        let records = match consumer.poll(wait) {
            Err(Error::Wakeup) => break,
            Err(Error::NoOffsetForPartition { partition, .. }) => {
                let from = start_offset(&*topic.partition(partition)?, args)?;
                consumer.seek(&args.topic, partition, from)?;
                continue;
            }
            polled => polled?,
        };
        let got = records.len();
        for record in records {
            if left == 0 {
                break;
            }
            print_record(record.partition(), record.record(), args, out)?;
            printed.insert(
                (args.topic.clone(), record.partition()),
                record.offset() + 1,
            );
            left -= 1;
        }
        out.flush()?;
        commit_printed(&mut consumer, &mut printed)?;
        let moved = !consumer.rebalance_events().is_empty();
        if got == 0 && !moved && !args.follow && caught_up(&mut consumer)? {
            break;
        }
    }
    out.flush()?;
    commit_printed(&mut consumer, &mut printed)?;
    Ok(consumer.close()?)
}

/// Commits what was printed of the partitions the consumer still owns (a partition lost to
/// the group was committed before it went, or is the new owner's now).
fn commit_printed(
    consumer: &mut Consumer,
    printed: &mut BTreeMap<TopicPartition, i64>,
) -> Result<(), Failure> {
    let owned: std::collections::BTreeSet<TopicPartition> =
        consumer.assignment().into_iter().collect();
    printed.retain(|tp, _| owned.contains(tp));
    if printed.is_empty() {
        return Ok(());
    }
    consumer.commit_offsets(printed)?;
    printed.clear();
    Ok(())
}

/// Whether every assigned partition is read to its end (what `consume` without `--follow`
/// stops at). A member that owns nothing yet is not caught up: it waits for its share.
fn caught_up(consumer: &mut Consumer) -> Result<bool, Failure> {
    let assignment = consumer.assignment();
    if assignment.is_empty() {
        return Ok(false);
    }
    for (topic, partition) in &assignment {
        if consumer
            .current_lag(topic, *partition)?
            .is_none_or(|lag| lag > 0)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A flag set, and the consumer woken, on SIGINT or SIGTERM: the consume loop then commits
/// what it printed and exits 0.
fn stop_on_signals(waker: Waker) -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(mut signals) => {
                let flag = Arc::clone(&stop);
                std::thread::spawn(move || {
                    if signals.forever().next().is_some() {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        waker.wakeup();
                    }
                });
            }
            Err(e) => log::warn!("cannot handle SIGINT/SIGTERM: {e}"),
        }
    }
    #[cfg(not(unix))]
    let _ = waker;
    stop
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
    fn a_deleted_position_never_moves_the_follower_back() {
        // The log start as the poll's refresh read it, before the deletion: stay.
        assert_eq!(resume_after_deletion(Some(2137), 2132), None);
        assert_eq!(resume_after_deletion(Some(2137), 2137), None);
        // The new start: skip forward to it.
        assert_eq!(resume_after_deletion(Some(2137), 2160), Some(2160));
        assert_eq!(resume_after_deletion(None, 2160), Some(2160));
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!("beginning".parse(), Ok(StartAt::Beginning));
        assert_eq!("end".parse(), Ok(StartAt::End));
        assert_eq!("42".parse(), Ok(StartAt::Offset(42)));
        assert!("-1".parse::<StartAt>().is_err());
        assert!("latest".parse::<StartAt>().is_err());
    }
}
