//! Real processes, real `SIGKILL`: nothing an append acknowledged in the default durable mode
//! (`flush.messages` = 1) is ever lost or damaged when the appending process dies at an
//! arbitrary instant, and recovery never hands back anything unreadable.
//!
//! How: the test binary re-runs itself as a child process (`current_exe()` with
//! `--exact crash_child_appends_durably` and an environment variable naming the directory; in a
//! normal run that test does nothing). The child opens `Partition::open(dir, ..)` with the
//! default durability, 16 KiB segments (so kills also land during rolls) and a small index
//! interval, and 1–3 threads append a mix of single records and 2–4 record batches. Right after
//! each `append`/`append_batch` returns, the thread prints `@ACK writer seq base last` and
//! flushes stdout: the parent sees an offset only once it was acknowledged. Every record
//! describes itself: key `c{cycle}-w{writer}-s{seq}`, value `w{writer}-s{seq}-` repeated a
//! number of times derived from the key, a `len` header and a timestamp derived from the key,
//! so the parent can check any record it reads, acknowledged or not.
//!
//! The parent, for each cycle: starts a child on the same directory (it persists across kills),
//! lets it run for a random short time (mostly 0–30 ms after it reported the partition open,
//! sometimes 0–10 ms after spawning so the kill lands while the child opens and recovers),
//! `SIGKILL`s it (`Child::kill`), reaps it, reads every acknowledgement that reached the pipe,
//! and reopens the directory itself (writable then `close`, writable then drop, or
//! read-only so the next child does the repair) and checks:
//!
//! * the log starts at 0 and its offsets are contiguous up to `next_offset`;
//! * every record decodes, passes its CRC (the reader checks it) and has exactly the content
//!   its key describes: no error, nothing torn, nothing unreadable;
//! * every acknowledged offset is present with exactly the record the child wrote there;
//! * every record an earlier check saw is still there, unchanged (a process crash loses no page
//!   cache, so what recovery once kept stays kept);
//! * each writer's records appear once each, in order, with no gaps: writer `w` appends `s + 1`
//!   only after `s` was acknowledged, so a later record present without an earlier one means a
//!   lost acknowledged write even when the acknowledgement never reached the parent.
//!
//! Records beyond the acknowledged ones (written, not yet acknowledged when the kill came) may
//! or may not be there, and must be intact if they are. A child that reports an error (an
//! append or open failing), writes to stderr or exits by itself fails the test too.
//!
//! What a kill can and cannot show: the page cache outlives the process, so this proves that an
//! append is in the kernel's hands before it returns and that recovery keeps every whole batch
//! and cuts only torn ones (a kill can stop a multi-page `write` at a page boundary, leaving a
//! real torn batch; the summary lists every cut). Whether the fsyncs really happen is a
//! power-loss question, which the `fault-injection` tests (`tests/fault_partition.rs`) answer.
//!
//! `sigkill_never_loses_an_acknowledged_append` makes 300 kills, or stops between 200 and 300
//! once 40 s have passed (`TOPICLOG_CRASH_KILLS=N` makes exactly N).
//! `the_checks_catch_a_mode_that_acknowledges_before_writing` runs the same loop on a child in
//! Kafka's no-fsync mode (appends acknowledged from the write buffer) and requires the checks to
//! report a lost acknowledged record. `sigkill_of_topiclog_produce_loses_no_printed_offset`
//! (feature `cli`: `cargo test --all-features --test crash_sigkill`) kills
//! `topiclog --dir D produce t --partition 0 --print-offsets` (sometimes with `--batch N`), fed
//! lines on stdin, 100 times, and makes the same checks through `Store::open`: the k-th printed
//! offset must hold the k-th line fed. The soak, `soak_sigkill_durable_appends`, runs 5,000
//! kills (`TOPICLOG_CRASH_SOAK_KILLS`) or for `TOPICLOG_CRASH_SOAK_SECS` seconds, on a fresh
//! directory every 500 kills:
//!
//! ```sh
//! cargo test --release --test crash_sigkill -- --ignored --nocapture
//! TOPICLOG_CRASH_SOAK_SECS=600 cargo test --test crash_sigkill -- --ignored --nocapture
//! ```
//!
//! The parent's choices (kill delays, thread counts, batch sizes, how it reopens) come from a
//! seeded generator; the seed is printed and in every failure message, and
//! `TOPICLOG_CRASH_SEED=<seed>` repeats those choices (the kernel's scheduling, and so the exact
//! instant each kill lands, cannot be repeated). A failing run keeps its directory and names it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use topiclog::config::{LogConfig, LogConfigBuilder};
use topiclog::partition::{Reader, RecoveryReport};
use topiclog::record::{Header, Record};
use topiclog::{LogRecord, Partition};

const CHILD_DIR_ENV: &str = "TOPICLOG_CRASH_CHILD_DIR";
const CHILD_CYCLE_ENV: &str = "TOPICLOG_CRASH_CHILD_CYCLE";
const CHILD_SEED_ENV: &str = "TOPICLOG_CRASH_CHILD_SEED";
const CHILD_BUFFERED_ENV: &str = "TOPICLOG_CRASH_CHILD_BUFFERED";
const CHILD_TEST: &str = "crash_child_appends_durably";
const SEED_ENV: &str = "TOPICLOG_CRASH_SEED";
const KILLS_ENV: &str = "TOPICLOG_CRASH_KILLS";
const SOAK_KILLS_ENV: &str = "TOPICLOG_CRASH_SOAK_KILLS";
const SOAK_SECS_ENV: &str = "TOPICLOG_CRASH_SOAK_SECS";

/// Kills made by the normal run: 300, or as many past 200 as fit in 40 s on a slow machine.
const DEFAULT_KILLS: u64 = 300;
const MIN_KILLS: u64 = 200;
const DEFAULT_BUDGET: Duration = Duration::from_secs(40);
/// Kills made by the soak unless told otherwise.
const DEFAULT_SOAK_KILLS: u64 = 5_000;
/// The soak starts a fresh directory this often, so each check rereads a bounded log.
const SOAK_KILLS_PER_DIR: u64 = 500;
/// A child never killed gives up after this long (the parent then fails the test).
const CHILD_LIFETIME: Duration = Duration::from_secs(20);
/// How long the parent waits for a child to report its partition open.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timestamps are this plus a value derived from the key.
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// Held while this process spawns a child, and by the CLI test while it has the store open: a
/// child forked by one test holds copies of this process's descriptors until it execs, and so,
/// for an instant, the store's lock (and the other child's pipe ends).
static SPAWN: Mutex<()> = Mutex::new(());

fn spawn(command: &mut Command) -> Child {
    let _serial = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    command.spawn().expect("spawn the child process")
}

/// The child's (and the parent's) settings: durable by default, 16 KiB segments so rolls are
/// frequent (one every 50 or so records, and kills land in them), an index entry every 512
/// bytes, nothing ever expires (the timestamps are old).
fn config() -> LogConfig {
    settings().build().expect("valid config")
}

fn settings() -> LogConfigBuilder {
    LogConfig::builder()
        .segment_bytes(16 * 1024)
        .index_interval_bytes(512)
        .segment_index_bytes(16 * 1024)
        .retention_ms(-1)
}

/// SplitMix64: small, seedable, good enough to pick delays and sizes.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(text) => text.parse().expect("TOPICLOG_CRASH_SEED is a u64"),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            mix(now.as_nanos() as u64 ^ u64::from(std::process::id()))
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|text| {
        text.parse()
            .unwrap_or_else(|_| panic!("{name} is a number"))
    })
}

// ---------------------------------------------------------------------------------------------
// Record content: every record names the writer and sequence number it came from, and
// everything else about it follows from that name.

/// Who wrote a record: the child's cycle, its writer thread (0 for `topiclog produce`) and the
/// writer's sequence number (for `produce`, the input line number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Origin {
    cycle: u64,
    writer: u64,
    seq: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}-w{}-s{}", self.cycle, self.writer, self.seq)
    }
}

impl Origin {
    fn hash(&self) -> u64 {
        mix(mix(mix(self.cycle) ^ self.writer) ^ self.seq)
    }

    /// The library child's key.
    fn key(&self) -> String {
        self.to_string()
    }

    /// The library child's value: its unit repeated 1–48 times, one record in 16 longer
    /// (50–249 times, up to about 3 KiB: a batch of 4 still fits a 16 KiB segment).
    fn value(&self) -> Vec<u8> {
        let h = self.hash();
        let reps = if h.is_multiple_of(16) {
            50 + (h >> 8) % 200
        } else {
            1 + (h >> 8) % 48
        };
        format!("w{}-s{}-", self.writer, self.seq)
            .repeat(reps as usize)
            .into_bytes()
    }

    fn timestamp(&self) -> i64 {
        BASE_TIMESTAMP + (self.hash() >> 40) as i64
    }

    /// The line `topiclog produce --key-separator :` reads: key `c{cycle}-n{line}`.
    fn cli_line(&self) -> String {
        let reps = 1 + (self.hash() >> 8) % 64;
        format!(
            "c{}-n{}:{}",
            self.cycle,
            self.seq,
            format!("n{}-", self.seq).repeat(reps as usize)
        )
    }
}

/// Parses `c{cycle}-w{writer}-s{seq}`.
fn parse_library_key(key: &[u8]) -> Option<Origin> {
    let text = std::str::from_utf8(key).ok()?;
    let rest = text.strip_prefix('c')?;
    let (cycle, rest) = rest.split_once("-w")?;
    let (writer, seq) = rest.split_once("-s")?;
    Some(Origin {
        cycle: cycle.parse().ok()?,
        writer: writer.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// The origin a record read back from the library child's log names, once every field of the
/// record was checked against it.
fn check_library_record(record: &LogRecord) -> Result<Origin, String> {
    let key = record.key().ok_or("null key")?;
    let origin = parse_library_key(key)
        .ok_or_else(|| format!("key {:?} names no writer", String::from_utf8_lossy(key)))?;
    let value = origin.value();
    if record.value() != Some(&value[..]) {
        return Err(format!(
            "{origin}: value differs: {} bytes read, {} expected",
            record.value().map_or(0, <[u8]>::len),
            value.len()
        ));
    }
    let len = value.len().to_string();
    let headers: Vec<Header<'_>> = record.headers().collect();
    if headers != [Header::new(b"len", Some(len.as_bytes()))] {
        return Err(format!("{origin}: headers differ: {headers:?}"));
    }
    if record.timestamp() != origin.timestamp() {
        return Err(format!(
            "{origin}: timestamp {} != {}",
            record.timestamp(),
            origin.timestamp()
        ));
    }
    Ok(origin)
}

/// The same for a record `topiclog produce` made from [`Origin::cli_line`].
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
fn check_cli_record(record: &LogRecord) -> Result<Origin, String> {
    let key = record.key().ok_or("null key")?;
    let text = std::str::from_utf8(key).map_err(|_| format!("key {key:?} is not UTF-8"))?;
    let parsed = text.strip_prefix('c').and_then(|rest| {
        let (cycle, line) = rest.split_once("-n")?;
        Some(Origin {
            cycle: cycle.parse().ok()?,
            writer: 0,
            seq: line.parse().ok()?,
        })
    });
    let origin = parsed.ok_or_else(|| format!("key {text:?} names no input line"))?;
    let line = origin.cli_line();
    let (_, value) = line.split_once(':').expect("the line has a key");
    if record.value() != Some(value.as_bytes()) {
        return Err(format!(
            "{text}: value differs: {:?}",
            record.value().map(String::from_utf8_lossy)
        ));
    }
    if record.headers().next().is_some() {
        return Err(format!("{text}: unexpected headers"));
    }
    Ok(origin)
}

// ---------------------------------------------------------------------------------------------
// The child.

/// Run as a child process by the kill loops: appends until killed, printing each acknowledged
/// offset range. In a normal test run it does nothing.
#[test]
fn crash_child_appends_durably() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let cycle = env_u64(CHILD_CYCLE_ENV).expect("cycle");
    let mut rng = Rng(env_u64(CHILD_SEED_ENV).expect("seed"));
    let deadline = Instant::now() + CHILD_LIFETIME;
    let config = if std::env::var_os(CHILD_BUFFERED_ENV).is_some() {
        let buffered = settings().flush_messages(i64::MAX);
        buffered.build().expect("valid config")
    } else {
        config()
    };
    let log = Partition::open(&dir, config).unwrap_or_else(|e| die(&format!("open: {e}")));
    let report = log.recovery();
    for cut in &report.truncations {
        emit(&format!(
            "@CUT {} at {}: {} bytes, {}\n",
            cut.path.display(),
            cut.position,
            cut.bytes_removed,
            cut.reason
        ));
    }
    emit(&format!(
        "@READY {} {} {} {}\n",
        log.next_offset(),
        report.truncations.len() + report.removed_segments.len(),
        report.bytes_lost(),
        report.removed_files.len()
    ));
    let writers = 1 + rng.below(3);
    thread::scope(|scope| {
        for writer in 0..writers {
            let (log, seed) = (&log, rng.next_u64());
            scope.spawn(move || append_until_killed(log, cycle, writer, Rng(seed), deadline));
        }
    });
}

/// One writer thread of the child: single appends and small batches, each acknowledged on
/// stdout as soon as the call returns.
fn append_until_killed(log: &Partition, cycle: u64, writer: u64, mut rng: Rng, deadline: Instant) {
    let mut seq = 0;
    while Instant::now() < deadline {
        let n = if rng.below(10) < 6 {
            1
        } else {
            2 + rng.below(3)
        };
        let origins: Vec<Origin> = (seq..seq + n)
            .map(|seq| Origin { cycle, writer, seq })
            .collect();
        let owned: Vec<(String, Vec<u8>, String)> = origins
            .iter()
            .map(|o| {
                let value = o.value();
                let len = value.len().to_string();
                (o.key(), value, len)
            })
            .collect();
        let headers: Vec<[Header<'_>; 1]> = owned
            .iter()
            .map(|(_, _, len)| [Header::new(b"len", Some(len.as_bytes()))])
            .collect();
        let records: Vec<Record<'_>> = owned
            .iter()
            .zip(&headers)
            .zip(&origins)
            .map(|(((key, value, _), headers), origin)| {
                Record::keyed(key.as_bytes(), value)
                    .with_headers(headers)
                    .with_timestamp(origin.timestamp())
            })
            .collect();
        let (base, last) = if n == 1 {
            match log.append(records[0]) {
                Ok(offset) => (offset, offset),
                Err(e) => die(&format!("writer {writer}: append of {}: {e}", origins[0])),
            }
        } else {
            match log.append_batch(&records) {
                Ok(info) => (info.base_offset, info.last_offset),
                Err(e) => die(&format!("writer {writer}: batch from {}: {e}", origins[0])),
            }
        };
        emit(&format!("@ACK {writer} {seq} {base} {last}\n"));
        seq += n;
    }
}

/// Reports a failure on stdout, where the parent looks whatever the moment of the kill, and
/// exits at once (a panicking thread would leave the others appending).
fn die(what: &str) -> ! {
    emit(&format!("@ERROR {what}\n"));
    std::process::exit(101);
}

/// Writes one whole line to stdout with one `write` and flushes it; exits if the parent has
/// gone.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: running and killing children.

/// A line of a child's stdout, with when it arrived.
struct Line {
    text: String,
    at: Instant,
}

/// Reads a child's stdout line by line into a channel; a last line without its `\n` (a write
/// the kill cut short) is dropped: only whole lines are acknowledgements.
fn read_lines(out: impl Read + Send + 'static) -> (Receiver<Line>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut out = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match out.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) if buf.last() != Some(&b'\n') => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                    if tx
                        .send(Line {
                            text,
                            at: Instant::now(),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    (rx, handle)
}

fn read_all(mut out: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    })
}

/// When to kill a child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after it was spawned, started or not (it may be opening and recovering).
    AfterSpawn(Duration),
    /// This long after its start line: `@READY` from the library child (its partition is
    /// open), the first printed offset from `topiclog produce`.
    AfterStart(Duration),
}

impl KillAt {
    fn pick(rng: &mut Rng) -> KillAt {
        if rng.below(100) < 15 {
            KillAt::AfterSpawn(Duration::from_micros(rng.below(10_000)))
        } else {
            KillAt::AfterStart(Duration::from_micros(rng.below(30_001)))
        }
    }
}

/// What one killed child left behind.
struct Killed {
    lines: Vec<Line>,
    /// From spawn to its start line, if it got that far before the kill.
    started: Option<Duration>,
    status: ExitStatus,
    stderr: String,
}

impl Killed {
    /// The child died of the kill, having reported no error (an `@ERROR` line, or anything on
    /// stderr but recovery's warning that it cut a torn tail).
    fn check(&self, who: &str) -> Result<(), String> {
        // An error the child reported comes first: it says why the child ended by itself.
        if let Some(error) = self.lines.iter().find(|l| l.text.starts_with("@ERROR ")) {
            return Err(format!("{who} failed ({}): {}", self.status, error.text));
        }
        if self.status.signal() != Some(9) {
            return Err(format!(
                "{who} was not killed but ended with {}; stderr:\n{}",
                self.status, self.stderr
            ));
        }
        // Recovery's report of a torn tail it cut (a kill can stop a write part way) is a
        // warning the tool prints by default, not a failure; anything else is.
        let unexpected = self
            .stderr
            .lines()
            .any(|l| !l.trim().is_empty() && !l.starts_with("topiclog: warning: cut "));
        if unexpected {
            return Err(format!("{who} wrote to stderr:\n{}", self.stderr));
        }
        Ok(())
    }
}

/// Lets `child` run until `at`, SIGKILLs it, reaps it, and returns every whole line it wrote.
/// `is_start` recognizes its start line.
fn kill_child(mut child: Child, at: KillAt, is_start: fn(&str) -> bool) -> Killed {
    let spawned = Instant::now();
    let (rx, stdout) = read_lines(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let mut lines = Vec::new();
    match at {
        KillAt::AfterSpawn(delay) => thread::sleep(delay.saturating_sub(spawned.elapsed())),
        KillAt::AfterStart(delay) => {
            let deadline = spawned + READY_TIMEOUT;
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                let (start, arrived) = (is_start(&line.text), line.at);
                lines.push(line);
                if start {
                    thread::sleep(delay.saturating_sub(arrived.elapsed()));
                    break;
                }
            }
        }
    }
    // SIGKILL on Unix. An error only means it already exited, which the status shows.
    let _ = child.kill();
    let status = child.wait().expect("reap the child");
    stdout.join().expect("stdout reader");
    lines.extend(rx.try_iter());
    let started = lines
        .iter()
        .find(|l| is_start(&l.text))
        .map(|l| l.at.saturating_duration_since(spawned));
    Killed {
        lines,
        started,
        status,
        stderr: stderr.join().expect("stderr reader"),
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: checking what survived.

/// How the parent opens the directory to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    /// Writable (recovering, cutting a torn tail), then `close()`: the next child opens clean.
    Close,
    /// Writable, then dropped without `close()`: the next child scans again.
    Drop,
    /// Read-only: nothing is repaired, so the next child does the recovery (and may be killed
    /// in the middle of it).
    ReadOnly,
}

impl Reopen {
    fn pick(rng: &mut Rng) -> Reopen {
        match rng.below(3) {
            0 => Reopen::Close,
            1 => Reopen::Drop,
            _ => Reopen::ReadOnly,
        }
    }
}

/// Everything known about a directory's log across kills.
#[derive(Default)]
struct Expected {
    /// Offset → the record the child acknowledged there.
    acked: BTreeMap<i64, Origin>,
    /// The records the last check read, by offset.
    seen: Vec<Origin>,
}

impl Expected {
    fn acknowledge(&mut self, offset: i64, origin: Origin) -> Result<(), String> {
        match self.acked.insert(offset, origin) {
            Some(before) if before != origin => Err(format!(
                "offset {offset} acknowledged twice: to {before} and to {origin}"
            )),
            _ => Ok(()),
        }
    }

    /// Checks a freshly opened log (`reader` from offset 0) against everything known, and
    /// remembers what it read.
    fn check(
        &mut self,
        log_start: i64,
        next_offset: i64,
        reader: Reader,
        check_record: fn(&LogRecord) -> Result<Origin, String>,
    ) -> Result<(), String> {
        if log_start != 0 {
            return Err(format!("log start offset {log_start}, expected 0"));
        }
        let mut read = Vec::with_capacity(self.seen.len() + 64);
        let mut next_seq: HashMap<(u64, u64), u64> = HashMap::new();
        for item in reader {
            let expected_offset = read.len() as i64;
            let record = item.map_err(|e| {
                format!("reading offset {expected_offset} of {next_offset} failed: {e}")
            })?;
            if record.offset() != expected_offset {
                return Err(format!(
                    "offsets not contiguous: {} follows {}",
                    record.offset(),
                    expected_offset - 1
                ));
            }
            let origin = check_record(&record)
                .map_err(|e| format!("record at offset {expected_offset} is damaged: {e}"))?;
            let want = next_seq.entry((origin.cycle, origin.writer)).or_insert(0);
            if origin.seq != *want {
                return Err(format!(
                    "offset {expected_offset} holds {origin}, but writer c{}-w{} is at sequence \
                     {want} there: {}",
                    origin.cycle,
                    origin.writer,
                    if origin.seq > *want {
                        "an earlier append, acknowledged before this one was made, is missing"
                    } else {
                        "a record appears twice"
                    }
                ));
            }
            *want += 1;
            read.push(origin);
        }
        if read.len() as i64 != next_offset {
            return Err(format!(
                "read {} records but next_offset is {next_offset}",
                read.len()
            ));
        }
        for (&offset, origin) in &self.acked {
            match read.get(offset as usize) {
                Some(found) if found == origin => {}
                Some(found) => {
                    return Err(format!(
                        "LOST ACKNOWLEDGED RECORD: offset {offset} was acknowledged as {origin} \
                         but holds {found}"
                    ));
                }
                None => {
                    return Err(format!(
                        "LOST ACKNOWLEDGED RECORD: offset {offset} ({origin}) was acknowledged \
                         but the log ends at {next_offset}"
                    ));
                }
            }
        }
        for (offset, before) in self.seen.iter().enumerate() {
            match read.get(offset) {
                Some(now) if now == before => {}
                now => {
                    return Err(format!(
                        "offset {offset} held {before} at the last check, now {now:?} \
                         (log ends at {next_offset})"
                    ));
                }
            }
        }
        self.seen = read;
        Ok(())
    }

    fn unacknowledged_present(&self) -> usize {
        self.seen.len() - self.acked.len()
    }
}

/// Counters for the summary line.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    /// Kills before the child's start line: while it was starting, opening or recovering.
    kills_before_start: u64,
    /// Total time from spawn to the start line over the children that got there, in ms.
    ms_to_start: u64,
    /// Kills after at least one acknowledgement reached the parent.
    kills_after_acks: u64,
    acknowledged: u64,
    /// Opens, the parent's or a child's, that cut a torn tail or removed a segment after one.
    torn_tails: u64,
    bytes_cut: u64,
    /// Leftover files (an interrupted checkpoint's `*.tmp`, say) removed by an open.
    leftovers_removed: u64,
    /// What each cut was, and which open made it.
    cuts: Vec<String>,
    unacknowledged_present: u64,
    records: u64,
    segments: u64,
    directories: u64,
}

impl Tally {
    /// Counts what the parent's open found.
    fn recovered(&mut self, report: &RecoveryReport, reopen: Reopen) {
        if !report.truncations.is_empty() || !report.removed_segments.is_empty() {
            self.torn_tails += 1;
            self.bytes_cut += report.bytes_lost();
        }
        self.leftovers_removed += report.removed_files.len() as u64;
        for cut in &report.truncations {
            self.cuts.push(format!(
                "parent {reopen:?} open: {} at {}: {} bytes, {}",
                cut.path.file_name().unwrap_or_default().to_string_lossy(),
                cut.position,
                cut.bytes_removed,
                cut.reason
            ));
        }
        for removed in &report.removed_segments {
            self.cuts.push(format!(
                "parent {reopen:?} open: removed segment {} ({} bytes)",
                removed.base_offset, removed.bytes
            ));
        }
    }

    fn count(&mut self, killed: &Killed) {
        self.kills += 1;
        match killed.started {
            Some(after) => self.ms_to_start += after.as_millis() as u64,
            None => self.kills_before_start += 1,
        }
    }
}

/// Keeps the directory of a failed run and panics with everything needed to look into it.
fn fail(dir: tempfile::TempDir, what: &str) -> ! {
    let kept = dir.keep();
    panic!("{what} (directory kept at {})", kept.display());
}

// ---------------------------------------------------------------------------------------------
// The library kill loop.

/// What the library child is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildMode {
    /// The default durable mode under test.
    Durable,
    /// Kafka's no-fsync mode, where an append returns with its batch in the write buffer: a
    /// kill loses acknowledged records, which the checks must notice.
    Buffered,
}

/// Kills `kills` children, or fewer once `budget` has passed but never fewer than `min_kills`,
/// each on a directory shared with the previous ones, starting a new directory every
/// `kills_per_dir` kills. A failure is the first check that failed, with the seed, cycle and
/// what happened, and the directory.
fn library_kill_loop(
    seed: u64,
    (min_kills, kills): (u64, u64),
    budget: Option<Duration>,
    kills_per_dir: u64,
    mode: ChildMode,
) -> Result<Tally, (tempfile::TempDir, String)> {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut cycle = 0;
    let go_on = |cycle: u64| {
        cycle < kills && (cycle < min_kills || budget.is_none_or(|b| started.elapsed() < b))
    };
    while go_on(cycle) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut expected = Expected::default();
        tally.directories += 1;
        let end = (cycle + kills_per_dir).min(kills);
        while cycle < end && go_on(cycle) {
            let checked =
                library_cycle(dir.path(), cycle, mode, &mut rng, &mut expected, &mut tally);
            if let Err(e) = checked {
                let what = format!(
                    "crash test failed (seed {seed}, rerun with {SEED_ENV}={seed}) at cycle \
                     {cycle} of {}: {e}",
                    dir.path().display()
                );
                return Err((dir, what));
            }
            cycle += 1;
        }
        tally.records += expected.seen.len() as u64;
        tally.unacknowledged_present += expected.unacknowledged_present() as u64;
        let log = Partition::open_read_only(dir.path(), config()).expect("final open");
        tally.segments += log.segment_base_offsets().len() as u64;
    }
    println!(
        "crash_sigkill library: seed {seed}: {:?} in {:.1} s",
        tally,
        started.elapsed().as_secs_f64()
    );
    Ok(tally)
}

/// Starts a child on `dir`, kills it, and checks what it left.
fn library_cycle(
    dir: &Path,
    cycle: u64,
    mode: ChildMode,
    rng: &mut Rng,
    expected: &mut Expected,
    tally: &mut Tally,
) -> Result<(), String> {
    let at = KillAt::pick(rng);
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .arg("-q")
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_CYCLE_ENV, cycle.to_string())
        .env(CHILD_SEED_ENV, rng.next_u64().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if mode == ChildMode::Buffered {
        command.env(CHILD_BUFFERED_ENV, "1");
    }
    let killed = kill_child(spawn(&mut command), at, |line| line.starts_with("@READY "));
    killed.check("the child")?;
    tally.count(&killed);
    let mut acks = 0;
    for line in &killed.lines {
        if let Some(rest) = line.text.strip_prefix("@ACK ") {
            let fields: Vec<u64> = rest.split(' ').filter_map(|f| f.parse().ok()).collect();
            let [writer, seq, base, last] = fields[..] else {
                return Err(format!("bad @ACK line {:?}", line.text));
            };
            for (i, offset) in (base..=last).enumerate() {
                let origin = Origin {
                    cycle,
                    writer,
                    seq: seq + i as u64,
                };
                expected.acknowledge(offset as i64, origin)?;
                acks += 1;
            }
        } else if let Some(cut) = line.text.strip_prefix("@CUT ") {
            tally.cuts.push(format!("child open: {cut}"));
        } else if let Some(ready) = line.text.strip_prefix("@READY ") {
            let fields: Vec<u64> = ready.split(' ').filter_map(|f| f.parse().ok()).collect();
            let [_, cuts, bytes_cut, leftovers] = fields[..] else {
                return Err(format!("bad @READY line {ready:?}"));
            };
            tally.torn_tails += u64::from(cuts > 0);
            tally.bytes_cut += bytes_cut;
            tally.leftovers_removed += leftovers;
        }
    }
    tally.kills_after_acks += u64::from(acks > 0);
    tally.acknowledged += acks;
    let reopen = Reopen::pick(rng);
    check_partition(dir, reopen, expected, tally)
        .map_err(|e| format!("{e} (kill {at:?}, reopened {reopen:?}, {acks} acks this cycle)"))
}

fn check_partition(
    dir: &Path,
    reopen: Reopen,
    expected: &mut Expected,
    tally: &mut Tally,
) -> Result<(), String> {
    let log = match reopen {
        Reopen::ReadOnly => Partition::open_read_only(dir, config()),
        Reopen::Close | Reopen::Drop => Partition::open(dir, config()),
    }
    .map_err(|e| format!("reopening after the kill failed: {e}"))?;
    tally.recovered(log.recovery(), reopen);
    let reader = log
        .read(0)
        .map_err(|e| format!("read(0) after the kill failed: {e}"))?;
    expected.check(
        log.log_start_offset(),
        log.next_offset(),
        reader,
        check_library_record,
    )?;
    if reopen == Reopen::Close {
        log.close().map_err(|e| format!("close failed: {e}"))?;
    }
    Ok(())
}

/// At least 200 SIGKILLs of a process appending durably; every acknowledged record survives.
#[test]
fn sigkill_never_loses_an_acknowledged_append() {
    let seed = seed();
    println!("crash_sigkill library: seed {seed} ({SEED_ENV}={seed} repeats it)");
    let (kills, budget) = match env_u64(KILLS_ENV) {
        Some(kills) => ((kills, kills), None),
        None => ((MIN_KILLS, DEFAULT_KILLS), Some(DEFAULT_BUDGET)),
    };
    let run = library_kill_loop(seed, kills, budget, kills.1, ChildMode::Durable);
    if let Err((dir, what)) = run {
        fail(dir, &what);
    }
}

/// The checks have teeth: with Kafka's no-fsync default, where an append returns with its
/// batch still in the process's write buffer, kills lose acknowledged records, and the very
/// checks above report it within a few kills.
#[test]
fn the_checks_catch_a_mode_that_acknowledges_before_writing() {
    let seed = seed();
    match library_kill_loop(seed, (50, 50), None, 50, ChildMode::Buffered) {
        Ok(tally) => panic!(
            "50 kills of buffered appends lost nothing acknowledged (seed {seed}): {tally:?}"
        ),
        Err((_, what)) => {
            println!("caught, as it should be: {what}");
            assert!(
                what.contains("LOST ACKNOWLEDGED RECORD") || what.contains("is missing"),
                "{what}"
            );
        }
    }
}

/// The soak: 5,000 kills, `TOPICLOG_CRASH_SOAK_KILLS`, or as many as fit in
/// `TOPICLOG_CRASH_SOAK_SECS`.
#[test]
#[ignore = "soak: cargo test --release --test crash_sigkill -- --ignored"]
fn soak_sigkill_durable_appends() {
    let seed = seed();
    println!("crash_sigkill soak: seed {seed} ({SEED_ENV}={seed} repeats it)");
    let (kills, budget) = match (env_u64(SOAK_KILLS_ENV), env_u64(SOAK_SECS_ENV)) {
        (kills, Some(secs)) => (kills.unwrap_or(u64::MAX), Some(Duration::from_secs(secs))),
        (kills, None) => (kills.unwrap_or(DEFAULT_SOAK_KILLS), None),
    };
    let kills = (1, kills);
    let soak = library_kill_loop(seed, kills, budget, SOAK_KILLS_PER_DIR, ChildMode::Durable);
    if let Err((dir, what)) = soak {
        fail(dir, &what);
    }
}

// ---------------------------------------------------------------------------------------------
// The command-line tool.

/// The `topiclog` binary cargo built beside this test (`target/<profile>/topiclog`).
#[cfg(feature = "cli")]
fn topiclog_binary() -> Option<std::path::PathBuf> {
    if let Some(path) = option_env!("CARGO_BIN_EXE_topiclog") {
        return Some(std::path::PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("topiclog");
    path.is_file().then_some(path)
}

#[cfg(feature = "cli")]
fn cli_failure(seed: u64, cycle: u64, what: &str) -> String {
    format!(
        "topiclog produce crash test failed (seed {seed}, rerun with {SEED_ENV}={seed}) at \
         cycle {cycle}: {what}"
    )
}

/// Kills for the command-line tool: each one starts a process, so fewer.
#[cfg(feature = "cli")]
const CLI_KILLS: u64 = 100;

/// `topiclog produce --print-offsets` killed at random moments: every printed offset holds the
/// line that was fed for it.
#[cfg(feature = "cli")]
#[test]
fn sigkill_of_topiclog_produce_loses_no_printed_offset() {
    use topiclog::Store;

    let Some(bin) = topiclog_binary() else {
        println!("skipped: no topiclog binary beside the test (build with --features cli)");
        return;
    };
    let seed = seed();
    println!("crash_sigkill cli: seed {seed} ({SEED_ENV}={seed} repeats it)");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("temporary directory");
    let created = Command::new(&bin)
        .arg("--dir")
        .arg(dir.path())
        .args(["create-topic", "t", "--partitions", "1"])
        .args(["--config", "segment.bytes=16384"])
        .args(["--config", "index.interval.bytes=512"])
        .args(["--config", "retention.ms=-1"])
        .output()
        .expect("run topiclog create-topic");
    assert!(created.status.success(), "create-topic: {created:?}");
    let mut expected = Expected::default();
    let mut tally = Tally {
        directories: 1,
        ..Tally::default()
    };
    for cycle in 0..CLI_KILLS {
        let at = KillAt::pick(&mut rng);
        let batch = match rng.below(3) {
            0 => Some(1 + rng.below(4)),
            _ => None,
        };
        let mut command = Command::new(&bin);
        command
            .arg("--dir")
            .arg(dir.path())
            .args(["produce", "t", "--partition", "0", "--print-offsets"])
            .args(["--key-separator", ":"]);
        if let Some(n) = batch {
            command.args(["--batch", &n.to_string()]);
        }
        let mut child = spawn(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        // Feeds lines until the pipe breaks (the kill).
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let feeder = thread::spawn(move || {
            for seq in 0.. {
                let line = Origin {
                    cycle,
                    writer: 0,
                    seq,
                }
                .cli_line();
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
            }
        });
        let killed = kill_child(child, at, |line| line.starts_with("0 "));
        feeder.join().expect("feeder");
        if let Err(e) = killed.check("topiclog produce") {
            fail(dir, &cli_failure(seed, cycle, &e));
        }
        tally.count(&killed);
        // The k-th printed offset is the k-th line's: each line is one record, appended in
        // order.
        let mut acks = 0;
        for (seq, line) in killed.lines.iter().enumerate() {
            let Some(("0", offset)) = line.text.split_once(' ') else {
                panic!("unexpected produce output {:?}", line.text);
            };
            let offset: i64 = offset.parse().expect("an offset");
            let origin = Origin {
                cycle,
                writer: 0,
                seq: seq as u64,
            };
            if let Err(e) = expected.acknowledge(offset, origin) {
                fail(dir, &cli_failure(seed, cycle, &e));
            }
            acks += 1;
        }
        tally.kills_after_acks += u64::from(acks > 0);
        tally.acknowledged += acks;
        let reopen = Reopen::pick(&mut rng);
        let checked = {
            let _serial = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            (|| -> Result<(), String> {
                let store = match reopen {
                    Reopen::ReadOnly => Store::open_read_only(dir.path()),
                    Reopen::Close | Reopen::Drop => Store::open(dir.path()),
                }
                .map_err(|e| format!("reopening the store failed: {e}"))?;
                let log = store
                    .topic("t")
                    .and_then(|t| t.partition(0))
                    .map_err(|e| format!("topic t partition 0: {e}"))?;
                tally.recovered(log.recovery(), reopen);
                let reader = log.read(0).map_err(|e| format!("read(0) failed: {e}"))?;
                expected.check(
                    log.log_start_offset(),
                    log.next_offset(),
                    reader,
                    check_cli_record,
                )?;
                tally.segments = log.segment_base_offsets().len() as u64;
                drop(log);
                if reopen == Reopen::Close {
                    store.close().map_err(|e| format!("close failed: {e}"))?;
                }
                Ok(())
            })()
        };
        if let Err(e) = checked {
            let e = format!("{e} (kill {at:?}, batch {batch:?}, reopened {reopen:?}, {acks} acks)");
            fail(dir, &cli_failure(seed, cycle, &e));
        }
    }
    tally.records = expected.seen.len() as u64;
    tally.unacknowledged_present = expected.unacknowledged_present() as u64;
    println!(
        "crash_sigkill cli: seed {seed}: {:?} in {:.1} s",
        tally,
        started.elapsed().as_secs_f64()
    );
}
