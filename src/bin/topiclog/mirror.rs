//! `topiclog mirror`: sends a store's topics to a Kafka cluster (feature `kafka`), and moves
//! consumer groups' offsets there. See `topiclog::mirror`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use topiclog::Store;
use topiclog::mirror::{Mirror, MirrorOptions, Progress};

use crate::output::{Failure, Out};

/// `mirror`.
#[derive(Debug, Args)]
pub(crate) struct MirrorArgs {
    /// The cluster, HOST:PORT[,HOST:PORT...] (plaintext; SASL/TLS through --command-config)
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: String,
    /// Mirror only this topic (repeatable; default: every topic)
    #[arg(long)]
    topic: Vec<String>,
    /// Keep mirroring new appends (from any process) until interrupted
    #[arg(long)]
    follow: bool,
    /// After mirroring, commit this group's offsets to the cluster, translated (repeatable)
    #[arg(long = "groups", value_name = "GROUP", num_args = 1..)]
    groups: Vec<String>,
    /// A file of librdkafka client properties, one KEY=VALUE a line (`#` comments), as
    /// Kafka's tools take --command-config
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// How long a cluster call is retried before the command fails, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
}

pub(crate) fn run(dir: &Path, args: &MirrorArgs, out: &mut Out) -> Result<(), Failure> {
    let mut options =
        MirrorOptions::new(&args.bootstrap_server).timeout(Duration::from_millis(args.timeout_ms));
    for topic in &args.topic {
        options = options.topic(topic);
    }
    if let Some(path) = &args.command_config {
        for (key, value) in properties(path)? {
            options = options.property(key, value);
        }
    }
    // Beside a live writer: only group files are written.
    let store = Store::open_consumer(dir)?;
    let mut mirror = Mirror::new(&store, options)?;
    // On a terminal: a bar of records sent out of records sent plus lag, with bytes, rate
    // and lag beside it.
    let bar = terminal_bar("{bar:30} {pos}/{len} records, {msg}");
    let started = Instant::now();
    let mut show = |p: &Progress| {
        if let Some(bar) = &bar {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_length(p.records + p.lag);
            bar.set_position(p.records);
            bar.set_message(format!(
                "{} bytes, {:.0} records/s, lag {}",
                p.bytes,
                p.records as f64 / secs,
                p.lag
            ));
        }
    };
    mirror.run_once(&mut show)?;
    if args.follow {
        // SIGINT/SIGTERM end the loop between rounds: what was acknowledged is recorded.
        let stop = stop_on_signals();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if mirror.run_once(&mut show)? == 0 {
                mirror.wait(Duration::from_millis(500))?;
            }
        }
    }
    let mut moved = Vec::new();
    for group in &args.groups {
        moved.push((group, mirror.move_groups(group)?));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let p = mirror.progress();
    out.line(format_args!(
        "mirrored {} records ({} bytes) in {:.1} s; {} already in the cluster skipped; lag {}",
        p.records,
        p.bytes,
        started.elapsed().as_secs_f64(),
        p.skipped,
        p.lag
    ))?;
    for (group, partitions) in moved {
        out.line(format_args!(
            "group {group}: offsets of {partitions} partitions committed to the cluster"
        ))?;
    }
    Ok(())
}

/// On a terminal, a progress bar on stderr drawn with `template` (indicatif's); `None`
/// otherwise (a summary line is printed at the end instead).
pub(crate) fn terminal_bar(template: &str) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar
    })
}

/// A flag SIGINT and SIGTERM set (on Unix), for a loop to end between whole steps.
pub(crate) fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, std::sync::Arc::clone(&stop)) {
            log::warn!("cannot handle signal {signal}: {e}");
        }
    }
    stop
}

/// `KEY=VALUE` lines of a `--command-config` file.
pub(crate) fn properties(path: &Path) -> Result<Vec<(String, String)>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--command-config {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::Usage(format!(
                "--command-config {} line {}: expected KEY=VALUE",
                path.display(),
                n + 1
            )));
        };
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}
