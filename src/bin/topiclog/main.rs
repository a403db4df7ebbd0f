//! `topiclog`: the command-line tool of the topiclog crate (built with `--features cli`).
//!
//! Commands that only read (`topics`, `describe`, `consume` without `--group`, `dump`,
//! `verify`, `groups`, `describe-group`) open the store with [`Store::open_read_only`] and take
//! no lock, so they run beside a live application; `consume --group` and `reset-offsets` open
//! it with [`Store::open_consumer`], beside the writer too (they write only group files); the
//! others open it with [`Store::open`] and fail with the lock error while another process
//! holds it. Exit codes: 0 success, 1 `verify` found a problem, 2 a usage, lock, data or I/O error,
//! reported as one `topiclog: <message>` line on stderr. A closed stdout (`| head`) ends a
//! command quietly with 0.

mod consume;
mod dump;
mod logger;
#[cfg(feature = "kafka")]
mod mirror;
mod output;
mod produce;
#[cfg(feature = "kafka")]
mod replicate;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use topiclog::Store;
use topiclog::config::{LogConfig, RecoveryOptions, StoreOptions, TopicConfig};
use topiclog::partition::RecoveryReport;

use output::{Failure, Out};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "topiclog",
    version,
    about = "Inspect and operate a topiclog store: a directory of topics in Kafka's on-disk format",
    after_help = "Exit status: 0 success, 1 verify found a problem, 2 usage, lock or I/O error.\n\
                  Read-only commands (topics, describe, consume without --group, dump, verify, groups, \
                  describe-group) take no lock and run beside a live writer."
)]
struct Cli {
    /// The store directory (accepted before or after the command)
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// How long a writing command waits for another process to release the store's lock, in
    /// milliseconds (default 0: fail at once)
    #[arg(long, global = true, value_name = "MS", default_value_t = 0)]
    lock_timeout: u64,

    /// Log more on stderr: -v what recovery, retention and groups do, -vv details (default:
    /// warnings and errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Log nothing on stderr (errors that end the command are still printed)
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create a topic (opens the store for writing)
    CreateTopic(CreateTopicArgs),
    /// List topics, one `NAME<TAB>PARTITIONS` line each (read-only)
    Topics,
    /// Describe a topic's partitions (read-only)
    ///
    /// One line per partition:
    /// `PARTITION<TAB>LOG_START<TAB>NEXT_OFFSET<TAB>SEGMENTS<TAB>LOG_BYTES<TAB>DIRTY_RATIO<TAB>LAST_STABLE_OFFSET`;
    /// the dirty ratio (what `min.cleanable.dirty.ratio` is compared with) is `-` unless the
    /// topic is compacted; the last stable offset is where `read_committed` reads stop (the
    /// first offset of the oldest open transaction, or the next offset). A topic mirrored to a
    /// Kafka cluster (`mirror`, feature `kafka`) adds one line per partition:
    /// `mirror<TAB>PARTITION<TAB>SOURCE_POSITION<TAB>CLUSTER_POSITION<TAB>LAG`, the next source
    /// offset to send, the cluster offset it will get, and the offsets not yet sent below the
    /// last stable offset. A replica of a cluster topic (`replicate`) adds
    /// `replica-of<TAB>CLUSTER_TOPIC<TAB>TOPIC_ID<TAB>BOOTSTRAP_SERVERS` and, with feature
    /// `kafka`, one `replica<TAB>PARTITION<TAB>LOCAL_END<TAB>CLUSTER_HIGH_WATERMARK<TAB>LAG`
    /// line per partition (the high watermark as last fetched).
    Describe {
        /// The topic
        topic: String,
    },
    /// Append each line of stdin as a record (opens the store for writing)
    Produce(produce::ProduceArgs),
    /// Print a topic's records (read-only)
    Consume(consume::ConsumeArgs),
    /// Print a segment's batches and records, or an index's entries (read-only)
    ///
    /// Like Kafka's kafka-dump-log: one line per batch (position, offsets, count, size, CRC and
    /// whether it is valid, codec, timestamp type and max timestamp, producer id/epoch/sequence,
    /// transactional and control flags), then one line per record. Compressed batches are
    /// decompressed; a codec left out of the build shows the batch header only.
    Dump(dump::DumpArgs),
    /// Check every partition's batches, offsets and indexes (read-only); exit 1 on a problem
    ///
    /// Checks every batch's framing and CRC, offsets within and across segments, and both
    /// indexes against the data. Prints one line per problem (file and byte position) and a
    /// summary line. A torn tail at the end of a partition's active segment (what a crash or a
    /// running writer leaves) is reported but is not a failure.
    Verify {
        /// Only this topic's partitions (default: every topic)
        topic: Option<String>,
    },
    /// Delete a partition's records below an offset (opens the store for writing)
    ///
    /// Kafka's DeleteRecords: the offset becomes the log start offset; segments wholly below it
    /// are deleted.
    DeleteRecords(DeleteRecordsArgs),
    /// Change a topic's settings (opens the store for writing); prints every setting after,
    /// one `KEY=VALUE` line each
    AlterConfig(AlterConfigArgs),
    /// Compact a topic now and print, per partition, what was rewritten (opens the store for
    /// writing)
    ///
    /// Runs the log cleaner on every partition of a topic whose cleanup.policy is compact or
    /// compact,delete, whatever its dirty ratio, up to its active segment. One line per
    /// partition: the segments, bytes and records of what was rewritten, before and after, or
    /// why it was skipped.
    Compact {
        /// The topic
        topic: String,
    },
    /// Apply retention now and print what was deleted (opens the store for writing)
    ///
    /// Applies each topic's retention.ms and retention.bytes to every partition, whole segments
    /// only, oldest first.
    EnforceRetention,
    /// Open every partition, recovering it, and print what recovery did (opens the store for
    /// writing)
    ///
    /// Any open recovers a partition after a crash: a torn tail above the recovery point is cut
    /// and reported. Damage to data that was fsynced, or a missing log-start checkpoint, fails
    /// the open instead; the flags allow repairing them, losing what they must (reported).
    Recover(RecoverArgs),
    /// List consumer groups with committed offsets or live members, one per line (read-only)
    Groups,
    /// A group's partitions, offsets, lag and members (read-only)
    ///
    /// One line per partition the group committed or a member owns:
    /// `TOPIC<TAB>PARTITION<TAB>COMMITTED<TAB>END<TAB>LAG<TAB>MEMBER<TAB>CLIENT<TAB>PID<TAB>HOST`,
    /// `-` where there is none; then one line per live member owning nothing, with `-` for
    /// its partition columns. Members are processes consuming the store now, in any process.
    DescribeGroup {
        /// The group
        group: String,
    },
    /// Move a group's committed offsets for a topic (runs beside a live writer)
    ///
    /// Sets every partition of the topic to its earliest or latest offset, or to OFFSET
    /// (clamped to the partition's range). Refused while the group has live members, in any
    /// process, as Kafka's tool refuses an active group.
    ResetOffsets(ResetOffsetsArgs),
    /// List open transactions, or abort one (`abort` opens the store for writing), as Kafka's
    /// kafka-transactions.sh
    ///
    /// Without a subcommand (read-only, beside a live writer): one line per open transaction,
    /// `TRANSACTIONAL_ID<TAB>PRODUCER_ID<TAB>EPOCH<TAB>STATE<TAB>PARTITIONS<TAB>AGE_MS`, with `-` for
    /// the id of a transaction found open in a partition's log that the coordinator does not
    /// know (written by Kafka, or its record lost) and PARTITIONS as `topic-partition[@first
    /// offset]` joined by commas. AGE_MS is `-` where the start is unknown.
    Transactions {
        #[command(subcommand)]
        action: Option<TransactionsAction>,
    },
    /// Send topics to a Kafka cluster, and move consumer groups there (feature `kafka`; runs
    /// beside a live writer)
    ///
    /// Every record of the chosen topics goes to the cluster topic of the same name: same
    /// partition, order, key, value, headers and timestamp (read_committed: aborted records
    /// never go out). A missing cluster topic is created like the source; one with another
    /// partition count is refused. Killed and run again, each record is in the cluster once.
    /// Prints a summary line; a progress line on a terminal.
    #[cfg(feature = "kafka")]
    Mirror(mirror::MirrorArgs),
    /// Keep a local replica of a Kafka cluster's topic (feature `kafka`; opens the store for
    /// writing)
    ///
    /// The store topic of the same name becomes an exact replica: same partitions, same
    /// offsets, the cluster's batches stored verbatim, nothing above the high watermark. Killed
    /// and run again, it resumes from the local end; a cluster that no longer continues the
    /// replica (topic created again, history lost) is refused. Other writes to a replica are
    /// refused. Prints a summary line; a progress bar on a terminal.
    #[cfg(feature = "kafka")]
    Replicate(replicate::ReplicateArgs),
}

/// `transactions` subcommands.
#[derive(Debug, clap::Subcommand)]
enum TransactionsAction {
    /// Abort an open transaction now: ID is a transactional id (its producer is fenced), or
    /// the producer id of a transaction found only in logs
    Abort {
        /// Transactional id or producer id
        id: String,
    },
}

/// `reset-offsets`.
#[derive(Debug, Args)]
struct ResetOffsetsArgs {
    /// The group
    group: String,
    /// The topic whose partitions move
    #[arg(long)]
    topic: String,
    /// earliest, latest or an offset
    #[arg(long, value_name = "earliest|latest|OFFSET")]
    to: String,
}

/// `recover`.
#[derive(Debug, Args)]
struct RecoverArgs {
    /// Cut a partition at damaged fsynced data instead of failing (everything after it is lost)
    #[arg(long)]
    truncate_corrupt: bool,
    /// Rebuild a missing or damaged log-start checkpoint (deleted records may come back)
    #[arg(long)]
    rebuild_log_start: bool,
}

/// `create-topic`.
#[derive(Debug, Args)]
struct CreateTopicArgs {
    /// The topic's name: 1 to 249 of [a-zA-Z0-9._-]
    name: String,
    /// Number of partitions
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,
    /// A Kafka topic setting such as retention.ms=60000 or segment.bytes=1048576 (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
}

/// `alter-config`.
#[derive(Debug, Args)]
struct AlterConfigArgs {
    /// The topic
    topic: String,
    /// A Kafka topic setting such as retention.ms=60000 (repeatable, at least one)
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, required = true)]
    config: Vec<(String, String)>,
}

/// `delete-records`.
#[derive(Debug, Args)]
struct DeleteRecordsArgs {
    /// The topic
    topic: String,
    /// The partition
    #[arg(long, value_name = "P")]
    partition: u32,
    /// The new log start offset: records below it are deleted
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    before: i64,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // `recover` prints every repair on stdout already: its warnings would repeat them.
    let quiet = cli.quiet || (matches!(cli.command, Command::Recover(_)) && cli.verbose == 0);
    logger::install(logger::level(cli.verbose, quiet));
    let mut out = Out::stdout();
    let result = run(&cli, &mut out).and_then(|()| out.flush());
    match result {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::ProblemsFound) => {
            // The problems and the summary are on stdout already.
            let _ = out.flush();
            ExitCode::from(1)
        }
        Err(failure) => {
            let _ = out.flush();
            logger::say(format_args!("{failure}"));
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout (exit 0); a usage error is one line on stderr (exit 2).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let message = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "no command given".to_owned(),
        _ => one_line(&e.render().to_string()),
    };
    logger::say(format_args!("{message} (see 'topiclog --help')"));
    ExitCode::from(2)
}

/// A parser error on one line: its message, the arguments listed under it, and its tips;
/// without the usage and the pointer to `--help`.
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for raw in rendered.lines() {
        let part = raw.trim();
        if part.is_empty() || part.starts_with("Usage:") || part.starts_with("For more information")
        {
            continue;
        }
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if !line.is_empty() {
            // Indented lines list the arguments the line before introduced.
            let listed = raw.starts_with(' ') && !part.starts_with("tip:");
            line.push_str(match (line.ends_with(':'), listed) {
                (true, _) => " ",
                (false, true) => ", ",
                (false, false) => "; ",
            });
        }
        line.push_str(part);
    }
    if line.is_empty() {
        line.push_str("invalid usage");
    }
    line
}

/// `--lock-timeout`, for every writable open of this run.
static LOCK_TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// Options for opening a store for writing: waits `--lock-timeout` for the lock.
pub(crate) fn writer_options() -> topiclog::config::StoreOptionsBuilder {
    let timeout = LOCK_TIMEOUT.get().copied().unwrap_or_default();
    StoreOptions::builder().lock_timeout(timeout)
}

fn run(cli: &Cli, out: &mut Out) -> Result<(), Failure> {
    let _ = LOCK_TIMEOUT.set(std::time::Duration::from_millis(cli.lock_timeout));
    match &cli.command {
        Command::CreateTopic(args) => create_topic(store_dir(cli)?, args, out),
        Command::Topics => topics(store_dir(cli)?, out),
        Command::Describe { topic } => describe(store_dir(cli)?, topic, out),
        Command::Produce(args) => produce::run(store_dir(cli)?, args, out),
        Command::Consume(args) => consume::run(store_dir(cli)?, args, out),
        Command::Dump(args) => dump::run(cli.dir.as_deref(), args, out),
        Command::Verify { topic } => verify::run(store_dir(cli)?, topic.as_deref(), out),
        Command::DeleteRecords(args) => delete_records(store_dir(cli)?, args, out),
        Command::AlterConfig(args) => alter_config(store_dir(cli)?, args, out),
        Command::EnforceRetention => enforce_retention(store_dir(cli)?, out),
        Command::Compact { topic } => compact(store_dir(cli)?, topic, out),
        Command::Recover(args) => recover(store_dir(cli)?, args, out),
        Command::Groups => groups(store_dir(cli)?, out),
        Command::DescribeGroup { group } => describe_group(store_dir(cli)?, group, out),
        Command::ResetOffsets(args) => reset_offsets(store_dir(cli)?, args, out),
        Command::Transactions { action } => transactions(store_dir(cli)?, action.as_ref(), out),
        #[cfg(feature = "kafka")]
        Command::Mirror(args) => mirror::run(store_dir(cli)?, args, out),
        #[cfg(feature = "kafka")]
        Command::Replicate(args) => replicate::run(store_dir(cli)?, args, out),
    }
}

fn store_dir(cli: &Cli) -> Result<&Path, Failure> {
    cli.dir.as_deref().ok_or_else(|| {
        Failure::Usage("--dir DIR is required for this command (see 'topiclog --help')".into())
    })
}

/// Opens an existing store for writing: takes its lock.
fn open_for_writing(dir: &Path) -> Result<Store, Failure> {
    let options = writer_options().create_if_missing(false).build();
    Ok(Store::open_with(dir, options)?)
}

/// Runs `work` on a store opened for writing, then closes the store cleanly even if `work`
/// failed; the first failure wins.
fn with_writable_store(
    store: Store,
    work: impl FnOnce(&Store) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let result = work(&store);
    let closed = store.close();
    result?;
    Ok(closed?)
}

fn create_topic(dir: &Path, args: &CreateTopicArgs, out: &mut Out) -> Result<(), Failure> {
    let mut log = LogConfig::builder();
    for (key, value) in &args.config {
        log = log.set(key, value)?;
    }
    let config = TopicConfig::new(args.partitions).with_log(log.build()?);
    // The one command that may create the store directory.
    let store = Store::open_with(dir, writer_options().build())?;
    with_writable_store(store, |store| {
        store.create_topic(&args.name, config)?;
        out.line(format_args!(
            "created topic {} with {} partition{}",
            args.name,
            args.partitions,
            if args.partitions == 1 { "" } else { "s" }
        ))
    })
}

fn topics(dir: &Path, out: &mut Out) -> Result<(), Failure> {
    let store = Store::open_read_only(dir)?;
    for name in store.topics() {
        let topic = store.topic(&name)?;
        out.line(format_args!("{name}\t{}", topic.partition_count()))?;
    }
    Ok(())
}

fn describe(dir: &Path, topic: &str, out: &mut Out) -> Result<(), Failure> {
    let store = Store::open_read_only(dir)?;
    let topic = store.topic(topic)?;
    let compacted = topic.config().cleanup_policy().compacts();
    for (n, partition) in topic.partitions().iter().enumerate() {
        let dirty = match compacted {
            true => format!("{:.3}", partition.dirt()?.ratio()),
            false => "-".to_owned(),
        };
        out.line(format_args!(
            "{n}\t{}\t{}\t{}\t{}\t{dirty}\t{}",
            partition.log_start_offset(),
            partition.next_offset(),
            partition.segment_base_offsets().len(),
            partition.size_bytes(),
            partition.last_stable_offset()
        ))?;
    }
    if let Some(of) = topic.replica_of() {
        out.line(format_args!(
            "replica-of\t{}\t{}\t{}",
            of.cluster_topic,
            of.topic_id_hex(),
            of.bootstrap_servers
        ))?;
        #[cfg(feature = "kafka")]
        {
            let seen = store.committed_offsets(&topiclog::replicate::status_group(topic.name()))?;
            for (n, partition) in (0u32..).zip(topic.partitions()) {
                let end = partition.next_offset();
                let high_watermark = seen
                    .get(&(topic.name().to_owned(), n))
                    .copied()
                    .unwrap_or(end)
                    .max(end);
                out.line(format_args!(
                    "replica\t{n}\t{end}\t{high_watermark}\t{}",
                    high_watermark - end
                ))?;
            }
        }
    }
    #[cfg(feature = "kafka")]
    for (n, at) in topiclog::mirror::position::load(&store, topic.name())? {
        let lag = topic
            .partition(n)
            .map_or(0, |p| (p.last_stable_offset() - at.source).max(0));
        out.line(format_args!(
            "mirror\t{n}\t{}\t{}\t{lag}",
            at.source, at.cluster
        ))?;
    }
    Ok(())
}

fn transactions(
    dir: &Path,
    action: Option<&TransactionsAction>,
    out: &mut Out,
) -> Result<(), Failure> {
    if let Some(TransactionsAction::Abort { id }) = action {
        let store = open_for_writing(dir)?;
        return with_writable_store(store, |store| {
            if !store.abort_transaction(id)? {
                return Err(Failure::Usage(format!("no open transaction {id:?}")));
            }
            out.line(format_args!("aborted {id}"))?;
            Ok(())
        });
    }
    let store = Store::open_read_only(dir)?;
    {
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            for t in store.transactions()? {
                let partitions: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|((topic, p), first)| match first {
                        Some(first) => format!("{topic}-{p}@{first}"),
                        None => format!("{topic}-{p}"),
                    })
                    .collect();
                let age = t
                    .started_ms
                    .filter(|&s| s >= 0 && s <= now)
                    .map_or("-".to_owned(), |s| (now - s).to_string());
                out.line(format_args!(
                    "{}\t{}\t{}\t{}\t{}\t{age}",
                    t.transactional_id.as_deref().unwrap_or("-"),
                    t.producer_id,
                    t.epoch,
                    t.state,
                    partitions.join(",")
                ))?;
            }
            Ok(())
        }
    }
}

fn compact(dir: &Path, topic: &str, out: &mut Out) -> Result<(), Failure> {
    let store = open_for_writing(dir)?;
    with_writable_store(store, |store| {
        for (partition, report) in store.compact(topic)? {
            match &report.skipped {
                Some(why) => out.line(format_args!("{topic}-{partition}: skipped: {why}"))?,
                None if report.passes == 0 => {
                    out.line(format_args!("{topic}-{partition}: nothing to clean"))?;
                }
                None => out.line(format_args!(
                    "{topic}-{partition}: {} -> {} segments, {} -> {} bytes, {} -> {} records; \
                     clean up to offset {}",
                    report.segments_before,
                    report.segments_after,
                    report.bytes_before,
                    report.bytes_after,
                    report.records_before,
                    report.records_after,
                    report.first_dirty_offset
                ))?,
            }
        }
        Ok(())
    })
}

fn alter_config(dir: &Path, args: &AlterConfigArgs, out: &mut Out) -> Result<(), Failure> {
    let store = open_for_writing(dir)?;
    with_writable_store(store, |store| {
        store.alter_topic_config(&args.topic, args.config.iter().map(|(k, v)| (k, v)))?;
        for (key, value) in store.topic(&args.topic)?.config().to_pairs() {
            out.line(format_args!("{key}={value}"))?;
        }
        Ok(())
    })
}

fn delete_records(dir: &Path, args: &DeleteRecordsArgs, out: &mut Out) -> Result<(), Failure> {
    let store = open_for_writing(dir)?;
    with_writable_store(store, |store| {
        let partition = store.topic(&args.topic)?.partition(args.partition)?;
        let log_start = partition.delete_records(args.before)?;
        out.line(format_args!(
            "{}-{}: log start offset {log_start}",
            args.topic, args.partition
        ))
    })
}

fn enforce_retention(dir: &Path, out: &mut Out) -> Result<(), Failure> {
    let store = open_for_writing(dir)?;
    with_writable_store(store, |store| {
        let reports = store.enforce_retention()?;
        if reports.is_empty() {
            return out.line(format_args!("nothing to delete"));
        }
        for (topic, partition, report) in reports {
            let count = report.deleted_segments.len();
            let bases: Vec<String> = report.deleted_segments.iter().map(i64::to_string).collect();
            out.line(format_args!(
                "{topic}-{partition}: deleted {count} segment{} (base offsets {}), {} bytes; \
                 log start offset {}",
                if count == 1 { "" } else { "s" },
                bases.join(", "),
                report.bytes_deleted,
                report.log_start_offset
            ))?;
        }
        Ok(())
    })
}

fn groups(dir: &Path, out: &mut Out) -> Result<(), Failure> {
    let store = Store::open_read_only(dir)?;
    for group in store.groups()? {
        out.line(format_args!("{group}"))?;
    }
    Ok(())
}

fn describe_group(dir: &Path, group: &str, out: &mut Out) -> Result<(), Failure> {
    let store = Store::open_read_only(dir)?;
    let committed = store.committed_offsets(group)?;
    let members = store.describe_group(group)?;
    if committed.is_empty() && members.is_empty() {
        return Err(Failure::Usage(format!(
            "no committed offsets or live members for group {group:?}"
        )));
    }
    let mut owners = std::collections::BTreeMap::new();
    for m in &members {
        for tp in &m.partitions {
            owners.insert(tp.clone(), m);
        }
    }
    let partitions: std::collections::BTreeSet<&(String, u32)> =
        committed.keys().chain(owners.keys()).collect();
    let dash = || "-".to_owned();
    for tp in partitions {
        let (topic, partition) = tp;
        // A deleted topic or partition has no end: shown as -.
        let end = store
            .topic(topic)
            .and_then(|t| t.partition(*partition))
            .map(|p| p.next_offset())
            .ok();
        let offset = committed.get(tp);
        let lag = match (offset, end) {
            (Some(o), Some(e)) => (e - o).max(0).to_string(),
            _ => dash(),
        };
        let owner = owners
            .get(tp)
            .map_or_else(|| "-\t-\t-\t-".to_owned(), |m| member_columns(m));
        out.line(format_args!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{owner}",
            offset.map_or_else(dash, i64::to_string),
            end.map_or_else(dash, |e| e.to_string()),
        ))?;
    }
    for m in members.iter().filter(|m| m.partitions.is_empty()) {
        out.line(format_args!("-\t-\t-\t-\t-\t{}", member_columns(m)))?;
    }
    Ok(())
}

/// `MEMBER<TAB>CLIENT<TAB>PID<TAB>HOST`, `-` for an empty client id or host.
fn member_columns(m: &topiclog::consumer::GroupMember) -> String {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    format!(
        "{}\t{}\t{}\t{}",
        m.member_id,
        or_dash(&m.client_id),
        m.pid,
        or_dash(&m.host)
    )
}

fn reset_offsets(dir: &Path, args: &ResetOffsetsArgs, out: &mut Out) -> Result<(), Failure> {
    let to = match args.to.as_str() {
        "earliest" | "latest" => None,
        text => match text.parse::<i64>() {
            Ok(offset) if offset >= 0 => Some(offset),
            _ => {
                return Err(Failure::Usage(format!(
                    "--to expects earliest, latest or an offset of at least 0, got {text:?}"
                )));
            }
        },
    };
    let store = Store::open_consumer(dir)?;
    {
        let topic = store.topic(&args.topic)?;
        let mut offsets = Vec::new();
        for (n, partition) in topic.partitions().iter().enumerate() {
            let (start, end) = (partition.log_start_offset(), partition.next_offset());
            let offset = match (args.to.as_str(), to) {
                ("earliest", _) => start,
                (_, Some(offset)) => offset.clamp(start, end),
                _ => end,
            };
            offsets.push(((args.topic.clone(), n as u32), offset));
        }
        store.reset_offsets(&args.group, &offsets)?;
        for ((topic, partition), offset) in &offsets {
            out.line(format_args!(
                "{}\t{topic}\t{partition}\t{offset}",
                args.group
            ))?;
        }
    }
    Ok(store.close()?)
}

fn recover(dir: &Path, args: &RecoverArgs, out: &mut Out) -> Result<(), Failure> {
    let recovery = RecoveryOptions::new()
        .truncate_corrupt(args.truncate_corrupt)
        .rebuild_log_start(args.rebuild_log_start);
    let options = writer_options()
        .create_if_missing(false)
        .recovery(recovery)
        .build();
    let store = Store::open_with(dir, options)?;
    with_writable_store(store, |store| {
        for name in store.topics() {
            for (n, partition) in store.topic(&name)?.partitions().iter().enumerate() {
                print_recovery(&format!("{name}-{n}"), partition.recovery(), out)?;
            }
        }
        Ok(())
    })
}

/// One line for a partition's open, then one per thing recovery removed or rebuilt.
fn print_recovery(name: &str, report: &RecoveryReport, out: &mut Out) -> Result<(), Failure> {
    if report.clean_shutdown {
        out.line(format_args!("{name}: clean"))?;
    } else {
        print_unclean(name, report, out)?;
    }
    if let Some(rebuilt) = &report.log_start_rebuilt {
        out.line(format_args!(
            "  log start rebuilt at {}: {}",
            rebuilt.offset, rebuilt.reason
        ))?;
    }
    for (path, why) in &report.producer_state.corrupt_snapshots {
        out.line(format_args!(
            "  producer snapshot {} unusable, deleted: {why}",
            path.display()
        ))?;
    }
    Ok(())
}

/// What an unclean open scanned, cut and removed.
fn print_unclean(name: &str, report: &RecoveryReport, out: &mut Out) -> Result<(), Failure> {
    out.line(format_args!(
        "{name}: recovered ({}): {} segment{} scanned, recovery point {}, {} bytes lost",
        report.unclean_reason.as_deref().unwrap_or("unclean"),
        report.segments_scanned,
        if report.segments_scanned == 1 {
            ""
        } else {
            "s"
        },
        report.recovery_point,
        report.bytes_lost()
    ))?;
    if let Some(why) = &report.recovery_checkpoint_unusable {
        out.line(format_args!("  recovery checkpoint unusable: {why}"))?;
    }
    for cut in &report.truncations {
        out.line(format_args!(
            "  cut {} at byte {}: {} bytes removed ({}): {}",
            cut.path.display(),
            cut.position,
            cut.bytes_removed,
            if cut.flushed {
                "flushed data lost"
            } else {
                "not flushed"
            },
            cut.reason
        ))?;
    }
    for removed in &report.removed_segments {
        out.line(format_args!(
            "  removed segment {} ({} bytes)",
            removed.base_offset, removed.bytes
        ))?;
    }
    for batch in &report.batches_after_cut {
        out.line(format_args!(
            "  lost whole batch at {} byte {}: offsets {}..={}",
            batch.path.display(),
            batch.position,
            batch.base_offset,
            batch.last_offset
        ))?;
    }
    if report.batches_after_cut_unlisted > 0 {
        out.line(format_args!(
            "  and {} more whole batches lost",
            report.batches_after_cut_unlisted
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_errors_fit_on_one_line() {
        let missing = "error: the following required arguments were not provided:\n  \
                       --partitions <N>\n  <NAME>\n\nUsage: topiclog create-topic --partitions \
                       <N> <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "the following required arguments were not provided: --partitions <N>, <NAME>"
        );
        let tip = "error: unexpected argument '--maxx' found\n\n  tip: a similar argument \
                   exists: '--max'\n\nUsage: topiclog consume <TOPIC>\n";
        assert_eq!(
            one_line(tip),
            "unexpected argument '--maxx' found; tip: a similar argument exists: '--max'"
        );
        assert_eq!(one_line("\n"), "invalid usage");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn settings_are_key_value_pairs() {
        assert_eq!(
            parse_key_value("retention.ms=-1"),
            Ok(("retention.ms".to_owned(), "-1".to_owned()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("=1").is_err());
        assert!(parse_key_value("nonsense").is_err());
    }
}
