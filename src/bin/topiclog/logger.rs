//! The CLI's logger: topiclog's log lines on stderr. By default only warnings (what recovery
//! cut, what it could not trust); the library's error lines are about errors it also returns,
//! which the command prints as its own one-line error, so they show only with `-v` (info and
//! errors), `-vv` (debug) or `-vvv` (trace). `-q` shows none.

use std::sync::atomic::{AtomicBool, Ordering};

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    errors: AtomicBool,
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && (metadata.level() != Level::Error || self.errors.load(Ordering::Relaxed))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        say(format_args!("{level}: {}", record.args()));
    }

    fn flush(&self) {}
}

/// Writes `topiclog: {line}` and a newline to stderr in one write: stderr is unbuffered, and a
/// line formatted piece by piece goes out in several, which a kill (or another process
/// writing to the same stream) can split. A closed stderr leaves nowhere to report to.
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    let line = format!("topiclog: {line}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The level for `-v` given `verbose` times, or `-q`.
pub(crate) fn level(verbose: u8, quiet: bool) -> LevelFilter {
    match (quiet, verbose) {
        (true, _) => LevelFilter::Off,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        (false, 2) => LevelFilter::Debug,
        (false, _) => LevelFilter::Trace,
    }
}

static LOGGER: Stderr = Stderr {
    errors: AtomicBool::new(false),
};

/// Installs the logger at `level`.
pub(crate) fn install(level: LevelFilter) {
    LOGGER
        .errors
        .store(level >= LevelFilter::Info, Ordering::Relaxed);
    // Fails only if a logger is installed already, which nothing else here does.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
