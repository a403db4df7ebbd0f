//! topiclog beside other embedded logs (issue 14): `cargo bench --bench peers`.
//!
//! One run of one harness measures the same workloads on four logs: the raw loop (one file
//! of CRC-framed records behind a `BufWriter`), commitlog 0.2, okaywal 0.3 and topiclog, each
//! driven as its module says (`peers/raw.rs`, `clog.rs`, `wal.rs`, `tlog.rs`), plus the format
//! floor (`peers/floor.rs`: the CRC check and the header and record walk of topiclog's bytes
//! already in memory, and the least that writing one-record batches costs), so every read row
//! and the one-record append row can be judged against what Kafka's format itself costs. Repetitions are interleaved (each repetition runs every workload on every peer, in
//! a seeded random order per workload and repetition); the table shows the median and, in
//! parentheses, the range, with topiclog's ratios to each column and issue 14's targets.
//!
//! Records are 100-byte values with no key and no headers unless a row says otherwise (the
//! byte-oriented peers store a key and headers as a small length-prefixed payload). "No
//! fsync" appends are timed until every record was handed to the OS; durable appends are on
//! disk when the call returns. Reads are from the page cache (every log is read once before
//! timing, and its files read through again before each timed read of it; the floor's bytes
//! and the record pools are read through before each timed use too, as a host may take back
//! memory left idle). Appends write into a fresh directory each time, deleted afterwards.
//!
//! Peak RSS is read from `VmHWM` in a child process that only opens and scans one log; item 6
//! of the issue adds topiclog's rows through a consumer in another process (`Store::
//! open_read_only`, `poll`) and with such a follower attached while appending (see
//! `peers/child.rs`).
//!
//! Sizes: `TOPICLOG_PEERS_RECORDS` records per log (default 1,000,000; 1 KiB rows use an
//! eighth), `TOPICLOG_PEERS_DURABLE` durable appends (2,000), `TOPICLOG_PEERS_RANDOM` random
//! reads per repetition (20,000), `TOPICLOG_PEERS_REPS` repetitions (3).
//! `TOPICLOG_PEERS_RSS_GIB=10` also builds a topiclog log of that many GiB and reports the
//! peak RSS of scanning it (off by default). Run without `--bench` (as `cargo test --benches`
//! does) or with `--quick`, every size is small: a smoke test of the harness.

#[path = "common/mod.rs"]
mod common;

#[path = "peers/child.rs"]
mod child;
#[path = "peers/clog.rs"]
mod clog;
#[path = "peers/floor.rs"]
mod floor;
#[path = "peers/raw.rs"]
mod raw;
#[path = "peers/records.rs"]
mod records;
#[path = "peers/report.rs"]
mod report;
#[path = "peers/tlog.rs"]
mod tlog;
#[path = "peers/wal.rs"]
mod wal;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use records::{Pool, Rec, Shape};
use report::{Col, Table, Target, Unit};

/// CRC-32C with the implementation topiclog uses (crc-fast), for the raw loop and the format
/// floor: a floor checked with a slower CRC than topiclog's would not be a floor.
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// Whether an append is on disk when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Handed to the OS, no fsync.
    NoFsync,
    /// On disk (fsynced) when the call returns.
    Durable,
}

/// How a log was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One record per append call.
    OnePerCall,
    /// Batches of this many records per call.
    Batches(usize),
}

/// What a read saw: records and the sum of their value lengths.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub value_bytes: u64,
}

impl Tally {
    #[inline]
    pub fn add(&mut self, value: &[u8]) {
        self.records += 1;
        self.value_bytes += value.len() as u64;
    }
}

/// A writer of one peer's log.
pub trait Append {
    /// Appends one record (under the durable policy: on disk when this returns).
    fn append(&mut self, rec: &Rec<'_>);
    /// Appends records as one batch (one call).
    fn append_batch(&mut self, recs: &[Rec<'_>]);
    /// Hands every appended record to the OS, without an fsync; the end of a timed region.
    fn hand_off(&mut self);
    /// Bytes of log data written so far, for a peer whose file lengths do not say (okaywal
    /// preallocates); `None` to measure the files instead.
    fn written(&self) -> Option<u64> {
        None
    }
    /// Finishes the writer after timing.
    fn finish(self)
    where
        Self: Sized,
    {
    }
}

/// One log under test.
pub trait Peer {
    const NAME: &'static str;
    /// An open log.
    type Log;
    type Writer<'a>: Append
    where
        Self::Log: 'a;
    type Reader;

    /// Creates a log in the empty directory `dir`.
    fn create(dir: &Path, policy: Policy) -> Self::Log;
    fn writer(log: &mut Self::Log) -> Self::Writer<'_>;
    /// Bytes of log data in `dir` (segment files; not indexes), for a writer whose
    /// [`written`](Append::written) is `None`.
    fn data_bytes(dir: &Path) -> u64;

    /// Writes a log of `records` records for the read rows (no fsync); returns its bytes of
    /// log data.
    fn write_log(dir: &Path, pool: &Pool, layout: Layout, records: u64) -> u64 {
        let mut log = Self::create(dir, Policy::NoFsync);
        let mut writer = Self::writer(&mut log);
        append_layout(&mut writer, pool, layout, records);
        writer.hand_off();
        let counted = writer.written();
        writer.finish();
        drop(log);
        counted.unwrap_or_else(|| Self::data_bytes(dir))
    }

    /// Opens a log written by [`write_log`](Peer::write_log); `random` readers can
    /// [`read_one`](Peer::read_one).
    fn open_reader(dir: &Path, keyed: bool, random: bool) -> Self::Reader;
    /// Reads every record from the start.
    fn scan(reader: &mut Self::Reader) -> Tally;
    /// Reads the record at `offset`; returns its value's length.
    fn read_one(reader: &mut Self::Reader, offset: u64) -> usize;
    /// `threads` threads append `per_thread` records each, one per call, no fsync, into one
    /// log in `dir`; returns the time until all were handed to the OS.
    fn append_threads(dir: &Path, pool: &Pool, threads: u64, per_thread: u64) -> Duration;
}

/// Appends `records` records from `pool` as `layout` says.
pub fn append_layout(writer: &mut impl Append, pool: &Pool, layout: Layout, records: u64) {
    match layout {
        Layout::OnePerCall => {
            for i in 0..records {
                writer.append(&pool.get(i));
            }
        }
        Layout::Batches(n) => {
            for b in 0..records / n as u64 {
                writer.append_batch(&pool.batch(b * n as u64, n));
            }
        }
    }
}

/// Bytes of the `.log` files under `dir` (one level of subdirectories too).
pub fn log_file_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            total += log_file_bytes(&path);
        } else if path.extension().is_some_and(|e| e == "log") {
            total += std::fs::metadata(&path).expect("stat").len();
        }
    }
    total
}

/// `reads` offsets in `0..records`, seeded.
pub fn random_offsets(seed: u64, reads: u64, records: u64) -> Vec<u64> {
    let mut rng = common::SplitMix64::new(seed);
    (0..reads).map(|_| rng.below(records)).collect()
}

/// The peers, for dispatch by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Raw,
    Commitlog,
    Okaywal,
    Topiclog,
}

/// Runs `$body` with `$P` the peer type of `$which`.
macro_rules! with_peer {
    ($which:expr, $P:ident => $body:expr) => {
        match $which {
            Which::Raw => {
                type $P = raw::Raw;
                $body
            }
            Which::Commitlog => {
                type $P = clog::Clog;
                $body
            }
            Which::Okaywal => {
                type $P = wal::Wal;
                $body
            }
            Which::Topiclog => {
                type $P = tlog::Tlog;
                $body
            }
        }
    };
}

impl Which {
    const ALL: [Which; 4] = [
        Which::Raw,
        Which::Commitlog,
        Which::Okaywal,
        Which::Topiclog,
    ];

    pub fn name(self) -> &'static str {
        with_peer!(self, P => P::NAME)
    }

    pub fn from_name(name: &str) -> Which {
        Which::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .expect("a peer name")
    }

    fn col(self) -> Col {
        match self {
            Which::Raw => Col::Raw,
            Which::Commitlog => Col::Commitlog,
            Which::Okaywal => Col::Okaywal,
            Which::Topiclog => Col::Topiclog,
        }
    }

    /// Opens the log at `dir` and reads it once (a child's scan).
    pub fn scan_once(self, dir: &Path, keyed: bool) -> Tally {
        with_peer!(self, P => {
            let mut reader = P::open_reader(dir, keyed, false);
            P::scan(&mut reader)
        })
    }

    /// The peers in a seeded random order for workload `workload` of repetition `rep`, so
    /// that no peer always runs first, or always right after the same one (what one leaves
    /// behind, such as dirty pages or a busy journal, lands on the next).
    fn order(rep: usize, workload: u64) -> [Which; 4] {
        let mut order = Which::ALL;
        let mut rng = common::SplitMix64::new((rep as u64) << 32 | workload);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sizes of one run.
struct Settings {
    records: u64,
    durable: u64,
    random: u64,
    reps: usize,
    rss_gib: Option<u64>,
    quick: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let args: Vec<String> = std::env::args().collect();
        // `cargo bench` passes `--bench`; `cargo test --benches` does not.
        let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
        let var = |name: &str, default: u64, small: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if quick { small } else { default })
        };
        Settings {
            // Whole batches of 1000, and of 100 for the eighth with 1 KiB values.
            records: var("TOPICLOG_PEERS_RECORDS", 1_000_000, 8000).max(4000) / 4000 * 4000,
            durable: var("TOPICLOG_PEERS_DURABLE", 2000, 20),
            random: var("TOPICLOG_PEERS_RANDOM", 20_000, 200),
            reps: var("TOPICLOG_PEERS_REPS", 3, 3) as usize,
            rss_gib: std::env::var("TOPICLOG_PEERS_RSS_GIB")
                .ok()
                .and_then(|v| v.parse().ok()),
            quick,
        }
    }
}

/// A fresh scratch directory under `parent`, removed when dropped.
fn scratch(parent: &Path) -> tempfile::TempDir {
    tempfile::tempdir_in(parent).expect("scratch directory")
}

/// Times one-record appends of `n` records into a fresh log; returns (records/s, bytes of log
/// data written per second).
fn append_one<P: Peer>(parent: &Path, pool: &Pool, n: u64, policy: Policy) -> (f64, f64) {
    pool.touch();
    let dir = scratch(parent);
    let mut log = P::create(dir.path(), policy);
    let mut writer = P::writer(&mut log);
    let start = Instant::now();
    for i in 0..n {
        writer.append(&pool.get(i));
    }
    writer.hand_off();
    let secs = start.elapsed().as_secs_f64();
    let counted = writer.written();
    writer.finish();
    drop(log);
    let bytes = counted.unwrap_or_else(|| P::data_bytes(dir.path()));
    (n as f64 / secs, bytes as f64 / secs)
}

/// Times `n` records appended in batches of `batch` into a fresh log; returns records/s.
fn append_batches<P: Peer>(parent: &Path, pool: &Pool, n: u64, batch: usize) -> f64 {
    pool.touch();
    let batches: Vec<Vec<Rec<'_>>> = (0..8)
        .map(|b| pool.batch(b * batch as u64, batch))
        .collect();
    let dir = scratch(parent);
    let mut log = P::create(dir.path(), Policy::NoFsync);
    let mut writer = P::writer(&mut log);
    let count = n / batch as u64;
    let start = Instant::now();
    for b in 0..count {
        writer.append_batch(&batches[b as usize % batches.len()]);
    }
    writer.hand_off();
    let secs = start.elapsed().as_secs_f64();
    writer.finish();
    (count * batch as u64) as f64 / secs
}

/// One-record appends, each timed; returns p99, p99.9 and p99.99 in nanoseconds.
fn append_latency<P: Peer>(parent: &Path, pool: &Pool, n: u64) -> Vec<f64> {
    pool.touch();
    let dir = scratch(parent);
    let mut log = P::create(dir.path(), Policy::NoFsync);
    let mut writer = P::writer(&mut log);
    let mut nanos = Vec::with_capacity(n as usize);
    for i in 0..n {
        let rec = pool.get(i);
        let start = Instant::now();
        writer.append(&rec);
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    writer.hand_off();
    writer.finish();
    nanos.sort_unstable();
    [0.99, 0.999, 0.9999]
        .iter()
        .map(|&p| report::percentile(&nanos, p))
        .collect()
}

fn append_threads<P: Peer>(parent: &Path, pool: &Pool, n: u64) -> f64 {
    pool.touch();
    let dir = scratch(parent);
    let per_thread = n / 4;
    let elapsed = P::append_threads(dir.path(), pool, 4, per_thread);
    (4 * per_thread) as f64 / elapsed.as_secs_f64()
}

/// The logs the read rows use, written once per peer.
struct ReadLog {
    /// The directory per peer, in `Which::ALL` order.
    dirs: Vec<PathBuf>,
    keyed: bool,
    records: u64,
    /// Records per batch (1 for a log written one record per call).
    batch_records: u64,
    value_len: usize,
    floor: floor::Floor,
}

impl ReadLog {
    fn dir(&self, which: Which) -> &Path {
        &self.dirs[Which::ALL.iter().position(|&w| w == which).expect("a peer")]
    }

    /// [`dir`](Self::dir), with every file in it read through first (not timed), so the read
    /// that follows is from the page cache as the rows say: a host may page out file pages left
    /// idle for a while (a minute, on some), which would time the disk instead.
    fn cached_dir(&self, which: Which) -> &Path {
        let dir = self.dir(which);
        read_through(dir);
        dir
    }

    fn expected(&self) -> Tally {
        Tally {
            records: self.records,
            value_bytes: self.records * self.value_len as u64,
        }
    }
}

/// Reads every file under `dir` to its end, which brings it into the page cache.
fn read_through(dir: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir).expect("list a log directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_through(&path);
            continue;
        }
        let mut file = std::fs::File::open(&path).expect("open a log file");
        while file.read(&mut buf).expect("read a log file") > 0 {}
    }
}

fn write_read_log(
    parent: &Path,
    name: &str,
    pool: &Pool,
    layout: Layout,
    records: u64,
    sizes: &mut Vec<String>,
) -> ReadLog {
    let mut dirs = Vec::new();
    let mut line = format!("{name}:");
    for which in Which::ALL {
        let dir = parent.join(format!("{name}-{}", which.name()));
        std::fs::create_dir(&dir).expect("mkdir");
        with_peer!(which, P => {
            let bytes = P::write_log(&dir, pool, layout, records);
            line += &format!(" {} {:.0} B/record;", P::NAME, bytes as f64 / records as f64);
        });
        dirs.push(dir);
    }
    sizes.push(line.trim_end_matches(';').to_string());
    let log = ReadLog {
        floor: floor::Floor::load(&tlog::partition_dir(&dirs[3])),
        dirs,
        keyed: pool.shape().keyed,
        records,
        batch_records: match layout {
            Layout::OnePerCall => 1,
            Layout::Batches(n) => n as u64,
        },
        value_len: pool.shape().value_len,
    };
    // Warm the page cache and check every reader and the floor agree.
    for which in Which::ALL {
        assert_eq!(
            which.scan_once(log.dir(which), log.keyed),
            log.expected(),
            "{} reads back {name}",
            which.name()
        );
    }
    assert_eq!(log.floor.scan(), log.expected(), "the floor walks {name}");
    log
}

fn read_seq<P: Peer>(log: &ReadLog, which: Which) -> f64 {
    let mut reader = P::open_reader(log.cached_dir(which), log.keyed, false);
    let start = Instant::now();
    let tally = P::scan(&mut reader);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(tally, log.expected());
    log.records as f64 / secs
}

/// [`read_seq`] of topiclog's log with `Reader::next_view`, one call per record.
fn read_seq_views(log: &ReadLog) -> f64 {
    let mut reader = tlog::Tlog::open_reader(log.cached_dir(Which::Topiclog), log.keyed, false);
    let start = Instant::now();
    let tally = tlog::scan_views(&mut reader);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(tally, log.expected());
    log.records as f64 / secs
}

/// The random reads of one repetition on one log: offsets drawn uniformly over the whole log,
/// read in rounds, each round from a freshly opened reader. A round reads at most half as
/// many records as the log has batches, so most reads are the first touch of their batch (a
/// reader that caches what it validated gains little); at most 8 rounds.
#[derive(Debug, Clone, Copy)]
struct RandomPlan {
    seed: u64,
    round: u64,
    reads: u64,
}

impl RandomPlan {
    fn new(log: &ReadLog, seed: u64, reads: u64) -> RandomPlan {
        let round = reads.min((log.records / log.batch_records / 2).max(1));
        let rounds = (reads / round).clamp(1, 8);
        RandomPlan {
            seed,
            round,
            reads: round * rounds,
        }
    }

    fn offsets(&self, log: &ReadLog) -> Vec<u64> {
        random_offsets(self.seed, self.reads, log.records)
    }
}

/// Nanoseconds per random single-record read.
fn read_random<P: Peer>(log: &ReadLog, which: Which, plan: RandomPlan) -> f64 {
    let offsets = plan.offsets(log);
    let mut timed = Duration::ZERO;
    let mut value_bytes = 0;
    let dir = log.cached_dir(which);
    for round in offsets.chunks(plan.round as usize) {
        let mut reader = P::open_reader(dir, log.keyed, true);
        let start = Instant::now();
        for &offset in round {
            value_bytes += P::read_one(&mut reader, offset);
        }
        timed += start.elapsed();
    }
    assert_eq!(value_bytes, offsets.len() * log.value_len);
    timed.as_nanos() as f64 / offsets.len() as f64
}

/// Records per second of the floor's sequential `scan` of `log` ([`floor::Floor::scan`], or
/// [`floor::Floor::scan_mapped`] through a mapping of the files).
fn floor_seq_by(log: &ReadLog, scan: fn(&floor::Floor) -> Tally) -> f64 {
    log.floor.touch();
    let start = Instant::now();
    let tally = scan(&log.floor);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(tally, log.expected());
    log.records as f64 / secs
}

fn floor_seq(log: &ReadLog) -> f64 {
    floor_seq_by(log, floor::Floor::scan)
}

fn floor_random(log: &ReadLog, plan: RandomPlan) -> f64 {
    let offsets = plan.offsets(log);
    let located: Vec<(usize, u64)> = offsets.iter().map(|&o| (log.floor.locate(o), o)).collect();
    log.floor.touch();
    let start = Instant::now();
    let value_bytes: usize = located
        .iter()
        .map(|&(batch, o)| log.floor.read_one(batch, o))
        .sum();
    let nanos = start.elapsed().as_nanos() as f64;
    assert_eq!(value_bytes, offsets.len() * log.value_len);
    nanos / offsets.len() as f64
}

/// Peak RSS of a child process that opens and scans `which`'s log.
fn rss_scan(log: &ReadLog, which: Which) -> f64 {
    let out = child::output(
        "scan",
        log.cached_dir(which),
        &child::scan_vars(which, log.keyed),
    );
    assert_eq!(out[0].parse::<u64>().expect("records"), log.records);
    out[3].parse().expect("bytes")
}

/// A topiclog consumer process reads the whole log: (records/s, peak RSS bytes).
fn consume_seq(log: &ReadLog) -> (f64, f64) {
    let out = child::output(
        "consume",
        log.cached_dir(Which::Topiclog),
        &[child::records_var(log.records)],
    );
    assert_eq!(out[0].parse::<u64>().expect("records"), log.records);
    let secs: f64 = out[2].parse().expect("seconds");
    (log.records as f64 / secs, out[3].parse().expect("bytes"))
}

/// A topiclog consumer process reads single records at random offsets (a fresh consumer per
/// round of the plan): ns per read.
fn consume_random(log: &ReadLog, plan: RandomPlan) -> f64 {
    let out = child::output(
        "consume-random",
        log.cached_dir(Which::Topiclog),
        &child::random_vars(plan.seed, plan.reads, plan.round, log.records),
    );
    assert_eq!(
        out[1].parse::<u64>().expect("bytes"),
        plan.reads * log.value_len as u64
    );
    out[2].parse::<f64>().expect("seconds") * 1e9 / plan.reads as f64
}

/// How the follower rows append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowedAppend {
    OnePerCall,
    Batches,
    Durable,
}

/// topiclog appends through a store (topic of one partition), with or without a follower
/// process attached (a consumer in a store opened read-only, polling); returns records/s of
/// the appends, timed until the last returned (with a follower, every append is written
/// through to the file before it returns).
fn append_store(parent: &Path, pool: &Pool, n: u64, how: FollowedAppend, follow: bool) -> f64 {
    pool.touch();
    let dir = scratch(parent);
    let policy = if how == FollowedAppend::Durable {
        Policy::Durable
    } else {
        Policy::NoFsync
    };
    let (store, partition) = tlog::open_store(dir.path(), policy);
    let mut follower = follow.then(|| {
        let mut child = child::spawn("follow", dir.path(), &[child::records_var(n)]);
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        assert_eq!(lines.next().expect("a line").expect("text"), "ready");
        (child, lines)
    });
    // Past the writer's probe for followers (every 50 ms): from here on it serves them.
    if follow {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut log = tlog::TlogLog::new(partition);
    let mut writer = <tlog::Tlog as Peer>::writer(&mut log);
    let batches: Vec<Vec<Rec<'_>>> = (0..8).map(|b| pool.batch(b * 1000, 1000)).collect();
    let start = Instant::now();
    match how {
        FollowedAppend::OnePerCall | FollowedAppend::Durable => {
            for i in 0..n {
                writer.append(&pool.get(i));
            }
        }
        FollowedAppend::Batches => {
            for b in 0..n / 1000 {
                writer.append_batch(&batches[b as usize % batches.len()]);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writer.hand_off();
    if let Some((mut child, mut lines)) = follower.take() {
        let line = lines.next().expect("a line").expect("text");
        let got: u64 = line.split(' ').next().expect("records").parse().expect("n");
        assert_eq!(got, n, "the follower read every record");
        assert!(child.wait().expect("follower exits").success());
    }
    store.close().expect("close the store");
    n as f64 / secs
}

fn main() {
    if let Ok(mode) = std::env::var(child::CHILD) {
        child::run(&mode);
        return;
    }
    let settings = Settings::from_env();
    assert_eq!(Shape::KEYED.payload_len(), 174, "the notes say 174 B");
    let n = settings.records;
    let kib_n = n / 8;
    let base = common::fresh_dir();
    let parent = base.path();
    println!(
        "# topiclog beside other embedded logs{}",
        if settings.quick {
            " (quick: small sizes)"
        } else {
            ""
        }
    );
    println!();
    println!("* Machine: {}.", report::machine(parent));
    let load_before = report::load_average();
    let stalls_before = report::stalls(1.0);
    println!(
        "* Sizes: {} records per log ({} for 1 KiB values), {} durable appends; medians of {} \
         interleaved repetitions (min–max).",
        thousands(n),
        thousands(kib_n),
        thousands(settings.durable),
        settings.reps
    );

    let plain = Pool::new(Shape::PLAIN, 8000, 1);
    let keyed = Pool::new(Shape::KEYED, 8000, 2);
    let kib = Pool::new(Shape::KIB, 800, 3);

    let started = Instant::now();
    let mut sizes = Vec::new();
    let read_parent = parent.join("read");
    std::fs::create_dir(&read_parent).expect("mkdir");
    let one_log = write_read_log(
        &read_parent,
        "one-per-call",
        &plain,
        Layout::OnePerCall,
        n,
        &mut sizes,
    );
    let batch_log = write_read_log(
        &read_parent,
        "batch-1000",
        &plain,
        Layout::Batches(1000),
        n,
        &mut sizes,
    );
    let keyed_log = write_read_log(
        &read_parent,
        "keyed-batch-1000",
        &keyed,
        Layout::Batches(1000),
        n,
        &mut sizes,
    );
    let kib_log = write_read_log(
        &read_parent,
        "1KiB-batch-100",
        &kib,
        Layout::Batches(100),
        kib_n,
        &mut sizes,
    );
    let prepared = started.elapsed();

    let mut t = Table::default();
    use Target::{All, Max, Vs};
    let r_one = t.row(
        "append, one record per call, no fsync",
        Unit::MPerSec,
        Some((Vs(Col::Okaywal, 1.3), "≥ 1.3× okaywal")),
    );
    let r_one_bytes = t.row(
        "append, one record per call, no fsync: log bytes written",
        Unit::MBPerSec,
        Some((Vs(Col::Raw, 0.85), "≥ 0.85× raw's bytes written per second")),
    );
    let r_batch = t.row(
        "append, batches of 1000, no fsync (okaywal: an fdatasync per batch)",
        Unit::MPerSec,
        Some((Vs(Col::Commitlog, 1.2), "keep ≥ 1.2× commitlog")),
    );
    let r_seq_one = t.row(
        "sequential read, log written one record per call",
        Unit::MPerSec,
        Some((
            All(vec![Vs(Col::Commitlog, 0.7), Vs(Col::Floor, 0.8)]),
            "≥ 0.7× commitlog, and within 1.25× of the format floor",
        )),
    );
    let r_seq_batch = t.row(
        "sequential read, log written in batches of 1000",
        Unit::MPerSec,
        Some((Vs(Col::Commitlog, 1.2), "≥ 1.2× commitlog")),
    );
    let r_rand_one = t.row(
        "random single-record read, log written one per call",
        Unit::Time,
        Some((Vs(Col::Commitlog, 1.0), "≤ 1.0× commitlog")),
    );
    let r_rand_batch = t.row(
        "random single-record read, log written in batches of 1000 (fresh open)",
        Unit::Time,
        Some((
            Vs(Col::Commitlog, 1.0),
            "≤ 1.0× commitlog, first touch of every batch included",
        )),
    );
    let r_durable = t.row(
        "durable append (on disk when it returns), 1 thread",
        Unit::KPerSec,
        Some((Vs(Col::Okaywal, 1.0), "≥ 1.0× okaywal")),
    );
    let r_latency = t.row(
        "append latency, one record, no fsync",
        Unit::Latency,
        Some((
            Max(vec![250.0, 1000.0, 20_000.0]),
            "≤ 250 ns / ≤ 1 µs / ≤ 20 µs",
        )),
    );
    let r_rss_one = t.row(
        "peak RSS reading the one-per-call log sequentially (mapped pages included)",
        Unit::MiB,
        Some((
            Max(vec![32.0 * f64::from(1 << 20)]),
            "≤ 32 MiB, flat in log size",
        )),
    );
    let r_rss_batch = t.row(
        "peak RSS reading the batch-1000 log sequentially (mapped pages included)",
        Unit::MiB,
        Some((
            Max(vec![32.0 * f64::from(1 << 20)]),
            "≤ 32 MiB, flat in log size",
        )),
    );
    // Rows users care about (item 1).
    let r_keyed_one = t.row(
        "append, one record per call, no fsync; 16 B key + 2 headers",
        Unit::MPerSec,
        None,
    );
    let r_keyed_batch = t.row(
        "append, batches of 1000, no fsync; 16 B key + 2 headers",
        Unit::MPerSec,
        None,
    );
    let r_keyed_seq = t.row(
        "sequential read, batches of 1000; 16 B key + 2 headers",
        Unit::MPerSec,
        None,
    );
    let r_kib_one = t.row(
        "append, one record per call, no fsync; 1 KiB values",
        Unit::MPerSec,
        None,
    );
    let r_kib_batch = t.row(
        "append, batches of 100, no fsync; 1 KiB values",
        Unit::MPerSec,
        None,
    );
    let r_kib_seq = t.row(
        "sequential read, batches of 100; 1 KiB values",
        Unit::MPerSec,
        None,
    );
    let r_threads = t.row(
        "4 threads appending one record per call, no fsync, one shared log",
        Unit::MPerSec,
        None,
    );
    // Topiclog's other way to read borrowed records.
    let r_v_seq_one = t.variant(
        r_seq_one,
        "sequential read, one-per-call log: `next_view` per record",
        None,
    );
    let r_v_seq_batch = t.variant(
        r_seq_batch,
        "sequential read, batch-1000 log: `next_view` per record",
        None,
    );
    // Item 6: topiclog through a consumer process, and with a follower process attached.
    let r_c_seq_one = t.variant(
        r_seq_one,
        "sequential read, one-per-call log: consumer process",
        None,
    );
    let r_c_seq_batch = t.variant(
        r_seq_batch,
        "sequential read, batch-1000 log: consumer process",
        None,
    );
    let r_c_rand_one = t.variant(
        r_rand_one,
        "random single-record read, one-per-call log: consumer process (seek + poll)",
        None,
    );
    let r_c_rand_batch = t.variant(
        r_rand_batch,
        "random single-record read, batch-1000 log: consumer process (seek + poll)",
        None,
    );
    let r_c_rss = t.variant(
        r_rss_one,
        "peak RSS of a consumer process reading the one-per-call log",
        None,
    );
    let r_s_one = t.variant(
        r_one,
        "append, one record per call, no fsync: through a store, no follower",
        None,
    );
    let r_f_one = t.variant(
        r_one,
        "append, one record per call, no fsync: follower process attached",
        None,
    );
    let r_s_batch = t.variant(
        r_batch,
        "append, batches of 1000, no fsync: through a store, no follower",
        None,
    );
    let r_f_batch = t.variant(
        r_batch,
        "append, batches of 1000, no fsync: follower process attached",
        None,
    );
    let r_s_durable = t.variant(
        r_durable,
        "durable append, 1 thread: through a store, no follower",
        None,
    );
    let r_f_durable = t.variant(
        r_durable,
        "durable append, 1 thread: follower process attached",
        None,
    );

    // The floor through a mapping, per log (printed under the table).
    let mut mapped_floor: [Vec<f64>; 2] = Default::default();
    for rep in 0..settings.reps {
        let seed = 42 + rep as u64;
        let plan_one = RandomPlan::new(&one_log, seed, settings.random);
        let plan_batch = RandomPlan::new(&batch_log, seed, settings.random);
        for which in Which::order(rep, 1) {
            let col = which.col();
            with_peer!(which, P => {
                let (rate, bytes) = append_one::<P>(parent, &plain, n, Policy::NoFsync);
                t.add(r_one, col, rate);
                t.add(r_one_bytes, col, bytes);
            });
        }
        {
            // The append floor, after the peers.
            let dir = scratch(parent);
            let (rate, bytes) = floor::append_one(dir.path(), &plain, n);
            t.add(r_one, Col::Floor, rate);
            t.add(r_one_bytes, Col::Floor, bytes);
        }
        for which in Which::order(rep, 2) {
            with_peer!(which, P => t.add(r_batch, which.col(), append_batches::<P>(parent, &plain, n, 1000)));
        }
        for which in Which::order(rep, 3) {
            with_peer!(which, P => {
                let (rate, _) = append_one::<P>(parent, &plain, settings.durable, Policy::Durable);
                t.add(r_durable, which.col(), rate);
            });
        }
        {
            let dir = scratch(parent);
            let rate = floor::append_durable(dir.path(), &plain, settings.durable);
            t.add(r_durable, Col::Floor, rate);
        }
        for which in Which::order(rep, 4) {
            with_peer!(which, P => t.add_many(r_latency, which.col(), append_latency::<P>(parent, &plain, n)));
        }
        {
            let dir = scratch(parent);
            t.add_many(
                r_latency,
                Col::Floor,
                floor::append_latency(dir.path(), &plain, n),
            );
        }
        for which in Which::order(rep, 5) {
            with_peer!(which, P => t.add(r_threads, which.col(), append_threads::<P>(parent, &plain, n)));
        }
        for which in Which::order(rep, 6) {
            with_peer!(which, P => {
                let col = which.col();
                t.add(r_keyed_one, col, append_one::<P>(parent, &keyed, n, Policy::NoFsync).0);
                t.add(r_keyed_batch, col, append_batches::<P>(parent, &keyed, n, 1000));
                t.add(r_kib_one, col, append_one::<P>(parent, &kib, kib_n, Policy::NoFsync).0);
                t.add(r_kib_batch, col, append_batches::<P>(parent, &kib, kib_n, 100));
            });
        }
        // Reads, the floor taking its turn after the peers.
        for which in Which::order(rep, 7) {
            with_peer!(which, P => {
                let col = which.col();
                t.add(r_seq_one, col, read_seq::<P>(&one_log, which));
                t.add(r_seq_batch, col, read_seq::<P>(&batch_log, which));
                t.add(r_keyed_seq, col, read_seq::<P>(&keyed_log, which));
                t.add(r_kib_seq, col, read_seq::<P>(&kib_log, which));
                t.add(r_rand_one, col, read_random::<P>(&one_log, which, plan_one));
                t.add(r_rand_batch, col, read_random::<P>(&batch_log, which, plan_batch));
            });
        }
        t.add(r_v_seq_one, Col::Topiclog, read_seq_views(&one_log));
        t.add(r_v_seq_batch, Col::Topiclog, read_seq_views(&batch_log));
        t.add(r_seq_one, Col::Floor, floor_seq(&one_log));
        t.add(r_seq_batch, Col::Floor, floor_seq(&batch_log));
        one_log.cached_dir(Which::Topiclog);
        mapped_floor[0].push(floor_seq_by(&one_log, floor::Floor::scan_mapped));
        batch_log.cached_dir(Which::Topiclog);
        mapped_floor[1].push(floor_seq_by(&batch_log, floor::Floor::scan_mapped));
        t.add(r_keyed_seq, Col::Floor, floor_seq(&keyed_log));
        t.add(r_kib_seq, Col::Floor, floor_seq(&kib_log));
        t.add(r_rand_one, Col::Floor, floor_random(&one_log, plan_one));
        t.add(
            r_rand_batch,
            Col::Floor,
            floor_random(&batch_log, plan_batch),
        );
        for which in Which::order(rep, 8) {
            t.add(r_rss_one, which.col(), rss_scan(&one_log, which));
            t.add(r_rss_batch, which.col(), rss_scan(&batch_log, which));
        }
        // Item 6.
        let (rate, rss) = consume_seq(&one_log);
        t.add(r_c_seq_one, Col::Topiclog, rate);
        t.add(r_c_rss, Col::Topiclog, rss);
        t.add(r_c_seq_batch, Col::Topiclog, consume_seq(&batch_log).0);
        t.add(
            r_c_rand_one,
            Col::Topiclog,
            consume_random(&one_log, plan_one),
        );
        t.add(
            r_c_rand_batch,
            Col::Topiclog,
            consume_random(&batch_log, plan_batch),
        );
        for (store_row, follow_row, how, count) in [
            (r_s_one, r_f_one, FollowedAppend::OnePerCall, n),
            (r_s_batch, r_f_batch, FollowedAppend::Batches, n),
            (
                r_s_durable,
                r_f_durable,
                FollowedAppend::Durable,
                settings.durable,
            ),
        ] {
            t.add(
                store_row,
                Col::Topiclog,
                append_store(parent, &plain, count, how, false),
            );
            t.add(
                follow_row,
                Col::Topiclog,
                append_store(parent, &plain, count, how, true),
            );
        }
    }

    let mut big = None;
    if let Some(gib) = settings.rss_gib {
        let dir = scratch(parent);
        let records = (gib << 30) / 110 / 1000 * 1000;
        let log_bytes = tlog::Tlog::write_log(dir.path(), &plain, Layout::Batches(1000), records);
        let out = child::output(
            "scan",
            dir.path(),
            &child::scan_vars(Which::Topiclog, false),
        );
        assert_eq!(out[0].parse::<u64>().expect("records"), records);
        let rss: f64 = out[3].parse().expect("bytes");
        big = Some((log_bytes, rss));
    }

    println!(
        "* Bytes per record of the logs the read rows use (written in {:.1} s): {}.",
        prepared.as_secs_f64(),
        sizes.join("; ")
    );
    for (name, log) in [("one-per-call", &one_log), ("batch-1000", &batch_log)] {
        let plan = RandomPlan::new(log, 0, settings.random);
        println!(
            "* Random reads of the {name} log, per repetition: {} in {} round(s) of {}, each \
             from a freshly opened reader.",
            thousands(plan.reads),
            plan.reads / plan.round,
            thousands(plan.round)
        );
    }
    println!();
    print!("{}", t.markdown());
    println!();
    println!(
        "Format floor through a mapping (the floor's sequential scan over the segment files \
         mapped read-only, pages faulted in as the walk reaches them and each MiB let go once \
         passed, as topiclog's reader keeps its resident set flat): one-per-call log {}, batch-1000 log \
         {}.",
        report::rate_summary(&mapped_floor[0]),
        report::rate_summary(&mapped_floor[1])
    );
    println!();
    if let Some((log_bytes, rss)) = big {
        println!(
            "Peak RSS scanning a {:.1} GiB topiclog log (batches of 1000): {:.0} MiB.",
            log_bytes as f64 / f64::from(1 << 30),
            rss / f64::from(1 << 20)
        );
        println!();
    }
    println!("{}", NOTES.trim());
    println!();
    println!(
        "Whole run: {:.0} s; 1-minute load average {load_before} before it, {} after.",
        started.elapsed().as_secs_f64(),
        report::load_average()
    );
    println!(
        "A loop reading the clock on one thread, for a second before the run: {stalls_before}; \
         after it: {}.",
        report::stalls(1.0)
    );
}

const NOTES: &str = "
Notes:
* Cells: median (min–max) over the repetitions; ratios are topiclog's median ÷ the column's
  (↑ rows: above 1 is faster; ↓ rows: below 1 is faster or smaller). ″ repeats the row the
  variant belongs to. The format floor: CRC-32C of every batch plus the header and record walk
  of topiclog's own bytes, already in memory; for one-record appends, one-record batches
  behind a 256 KiB buffer as the raw loop writes (the file's blocks reserved ahead of each
  buffer write, as topiclog reserves its active segment's), each a clock read (for its
  timestamps, read as topiclog reads it), the value copied into otherwise fixed bytes, its
  offset, timestamps and CRC set: the format's own cost, with no lock, index or state (the
  latency row times each of these appends). Durable: the same batch, one `pwrite` into a
  file preallocated with synced zeros before timing and one `fdatasync` per record. The raw
  loop and the floor use topiclog's CRC-32C implementation (crc-fast).
* raw: `[u32 length][u32 CRC-32C][payload]` frames behind a 256 KiB `BufWriter`; durable =
  flush + fdatasync per append; reads check each CRC; random reads `pread` one frame at a
  position kept in memory (the file has no index).
* commitlog 0.2: `append_msg` per record (one write(2) each), one reused `MessageBuf` per
  batch; durable = its `flush` (an msync of its index) plus an fdatasync of each grown segment;
  reads by `read(offset, 1 MiB limit)`; a random read is `read(offset, one message + 1 B)`.
* okaywal 0.3 (checkpointing off, so nothing is recycled): \"no fsync\" appends write one chunk
  per record into one entry left open, committed after timing (at most its 16 KiB buffer is
  not yet written when timing stops); a batch is one committed entry, so that row fsyncs per
  batch; durable = one committed entry per record; sequential reads reopen the log (its
  recovery path); random reads by `read_at` of chunk positions collected on reopen. Its bytes
  written are counted from its format (its files are preallocated).
* topiclog: \"no fsync\" = `flush.messages` i64::MAX, timed until the bare partition is dropped
  (which writes its buffered tail, no fsync); durable = the default config. Sequential reads
  take borrowed records from `Partition::read(0)` with `Reader::try_for_each_view` (the
  `next_view` rows: one call per record), the partition opened before timing, as
  commitlog's `MessageBuf` and the raw loop hand out borrowed bytes (the `read` bench times
  the owning iterator too); random reads are `read(offset)` + the first record. 4 threads share one partition (the peers: a
  mutex around the raw writer and around commitlog; okaywal: one open entry behind a mutex).
* Keyed rows: the byte-oriented peers store key and headers in a length-prefixed payload
  (174 B instead of 100 B per record); topiclog stores them as Kafka record fields.
* Random reads (every column): uniform offsets, in rounds from a freshly opened reader
  (opening not timed); a round reads at most half as many records as the log has batches, so
  most reads are the first touch of their batch. The floor's random read checks the CRC of the
  whole batch holding the record and walks to it, the batch found before timing: what a reader
  that keeps nothing between reads pays for the format, beyond finding the batch.
* Latency: `Instant` read before and after each append (the pair costs tens of ns, in every
  column). The last line says how often the machine stops a thread that only reads the
  clock: an append lands on such a stop as often, so at more than about one stop per thousand
  appends (a few thousand per second) p99.9 times the stops, in every column.
* Item 6 rows are topiclog only: a consumer process opens the store read-only
  (`Store::open_read_only`, `assign`, `poll`; random reads `seek` + `poll` with
  `max.poll.records` 1), timed inside that process. Follower rows append through a store (one
  topic of one partition) while another process polls it; \"through a store, no follower\" is
  the same without it. Timed until the last append returns (with a follower every append is
  written through before it returns; the store is closed after timing).
";
