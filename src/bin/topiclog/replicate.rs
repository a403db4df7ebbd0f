//! `topiclog replicate`: keeps a local replica of a Kafka cluster's topic (feature `kafka`),
//! and copies consumer groups' offsets from the cluster. See `topiclog::replicate`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use topiclog::Store;
use topiclog::replicate::{Progress, ReplicateOptions, Replicator};

use crate::output::{Failure, Out};

/// `replicate`.
#[derive(Debug, Args)]
pub(crate) struct ReplicateArgs {
    /// The cluster, HOST:PORT[,HOST:PORT...] (plaintext listeners only)
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: String,
    /// The cluster topic to replicate (into the store topic of the same name)
    #[arg(long)]
    topic: String,
    /// Keep replicating what the cluster appends until interrupted
    #[arg(long)]
    follow: bool,
    /// After replicating, copy this group's committed offsets from the cluster (repeatable)
    #[arg(long = "groups", value_name = "GROUP", num_args = 1..)]
    groups: Vec<String>,
    /// A file of librdkafka client properties for reading group offsets, one KEY=VALUE a
    /// line (`#` comments), as Kafka's tools take --command-config
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// How long a cluster call is retried before the command fails, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
    /// Bytes each fetch asks for (Kafka's max.partition.fetch.bytes)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_partition_fetch_bytes: i32,
}

pub(crate) fn run(dir: &Path, args: &ReplicateArgs, out: &mut Out) -> Result<(), Failure> {
    let mut options = ReplicateOptions::new(&args.bootstrap_server, &args.topic)
        .timeout(Duration::from_millis(args.timeout_ms))
        .max_partition_fetch_bytes(args.max_partition_fetch_bytes);
    if let Some(path) = &args.command_config {
        for (key, value) in crate::mirror::properties(path)? {
            options = options.property(key, value);
        }
    }
    // SIGINT/SIGTERM stop the run after the append under way: every append is whole, and
    // the store is closed cleanly.
    let stop = crate::mirror::stop_on_signals();
    options = options.stop_when(std::sync::Arc::clone(&stop));
    // The replicator is the store's writer; consumers read it from other processes.
    let store = Store::open(dir)?;
    let mut replicator = Replicator::new(&store, options)?;
    // On a terminal: a bar of offsets replicated out of the cluster's high watermarks, with
    // bytes, rate and each partition's lag beside it.
    let bar = crate::mirror::terminal_bar("{bar:30} {pos}/{len} offsets, {msg}");
    let started = Instant::now();
    let mut show = |p: &Progress| {
        if let Some(bar) = &bar {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let end: i64 = p.partitions.iter().map(|s| s.local_end).sum();
            let lags: Vec<String> = p.partitions.iter().map(|s| s.lag().to_string()).collect();
            bar.set_length(u64::try_from(end).unwrap_or(0) + p.lag());
            bar.set_position(u64::try_from(end).unwrap_or(0));
            bar.set_message(format!(
                "{} bytes, {:.0} offsets/s, lag by partition [{}]",
                p.bytes,
                p.offsets as f64 / secs,
                lags.join(" ")
            ));
        }
    };
    replicator.run_once(&mut show)?;
    if args.follow {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            replicator.follow_once(Duration::from_millis(500), &mut show)?;
        }
    }
    let mut copied = Vec::new();
    for group in &args.groups {
        copied.push((group, replicator.copy_group(group)?));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let p = replicator.progress();
    out.line(format_args!(
        "replicated {} batches ({} bytes, {} offsets) of {} in {:.1} s; lag {}",
        p.batches,
        p.bytes,
        p.offsets,
        args.topic,
        started.elapsed().as_secs_f64(),
        p.lag()
    ))?;
    for (group, partitions) in copied {
        out.line(format_args!(
            "group {group}: offsets of {partitions} partitions copied from the cluster"
        ))?;
    }
    store.close()?;
    Ok(())
}
