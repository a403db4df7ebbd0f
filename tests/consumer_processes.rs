//! Consumer groups across real processes: a writer (this test process) and worker processes
//! that open the store with `Store::open_consumer` and share a group.
//!
//! The test binary re-runs itself as each worker (`current_exe()` with `--exact
//! worker_child`, the store directory and the worker's name in environment variables; in a
//! normal run that test does nothing). A worker subscribes to `jobs` in group `workers`
//! (`session.timeout.ms` 1000, `heartbeat.interval.ms` 100, auto-commit off) and loops: poll,
//! print `@GOT <partition> <offset>` for each record, commit, print `@COMMITTED <partition>
//! <next offset>` for each owned partition once the commit returned. It stops (closing its
//! consumer, which leaves the group) when the file `stop` appears in the store directory, and
//! exits non-zero on any error but a rejected commit.
//!
//! What is checked: every appended record reaches some worker; with no process killed, each
//! exactly once (partitions change hands only after their owner committed and let go); with a
//! worker killed by SIGKILL, the records delivered twice are only ones the killed worker got
//! but had not committed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, OffsetReset, TopicConfig};
use topiclog::{Error, Record, Store};

const DIR_ENV: &str = "TOPICLOG_CP_DIR";
const NAME_ENV: &str = "TOPICLOG_CP_NAME";
/// Milliseconds a worker "works" between a poll that returned records and its commit.
const PAUSE_ENV: &str = "TOPICLOG_CP_WORK_MS";
const CHILD_TEST: &str = "worker_child";
const PARTITIONS: u32 = 6;

/// A worker process (or, named `writer`, the soak's writer); runs only when started by a test
/// below.
/// One multi-process test at a time: their worker processes time sessions and pauses, which a
/// machine busy with the others' processes would stretch.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn worker_child() {
    let (Ok(dir), Ok(name)) = (std::env::var(DIR_ENV), std::env::var(NAME_ENV)) else {
        return;
    };
    let result = if name == "writer" {
        write(Path::new(&dir))
    } else {
        work(Path::new(&dir), &name)
    };
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(2);
    }
}

/// The soak's writer: appends a record every few hundred microseconds, printing `@ACK
/// <partition> <offset>` once each append returned (durable).
fn write(dir: &Path) -> Result<(), Error> {
    let options = topiclog::config::StoreOptions::builder()
        .lock_timeout(Duration::from_secs(10))
        .build();
    let store = Store::open_with(dir, options)?;
    let topic = store.topic("jobs")?;
    let mut i = 0u64;
    loop {
        let p = (i % u64::from(PARTITIONS)) as u32;
        let offset = topic.append_to(p, Record::new(format!("soak {i}").as_bytes()))?;
        emit(&format!("@ACK {p} {offset}\n"));
        i += 1;
        thread::sleep(Duration::from_micros(300));
    }
}

fn work(dir: &Path, name: &str) -> Result<(), Error> {
    let store = Store::open_consumer(dir)?;
    let config = ConsumerConfig::builder()
        .group_id("workers")
        .client_id(name)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .session_timeout_ms(1_000)
        .heartbeat_interval_ms(100)
        .build()?;
    let mut consumer = store.consumer(config)?;
    consumer.subscribe(&["jobs"])?;
    let stop = dir.join("stop");
    let pause: u64 = std::env::var(PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while !stop.exists() {
        let records = consumer.poll(Duration::from_millis(50))?;
        let mut lines = String::new();
        for r in &records {
            lines.push_str(&format!("@GOT {} {}\n", r.partition(), r.offset()));
        }
        for event in consumer.rebalance_events() {
            if let topiclog::consumer::RebalanceEvent::Lost(_) = event {
                lines.push_str("@LOST\n");
            }
        }
        emit(&lines);
        if pause > 0 && !records.is_empty() {
            // Work that takes a while: the window the test stops the process in.
            thread::sleep(Duration::from_millis(pause));
        }
        match consumer.commit() {
            Ok(()) => {
                let mut lines = String::new();
                for ((_, p), next) in consumer.positions() {
                    lines.push_str(&format!("@COMMITTED {p} {next}\n"));
                }
                emit(&lines);
            }
            Err(Error::CommitRejected { .. } | Error::UnknownMember { .. }) => {
                emit("@REJECTED\n");
            }
            Err(e) => return Err(e),
        }
    }
    consumer.close()
}

fn emit(text: &str) {
    use std::io::Write;
    if text.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// What the parent learned from one worker's output.
#[derive(Debug, Default)]
struct Seen {
    got: Vec<(u32, i64)>,
    /// Appends the soak's writer acknowledged.
    acked: Vec<(u32, i64)>,
    /// Commits refused (the member was removed or lost the partition).
    rejected: usize,
    /// `Lost` rebalance events.
    lost: usize,
    /// Highest committed next offset per partition.
    committed: BTreeMap<u32, i64>,
}

struct Worker {
    name: String,
    child: Child,
    seen: Arc<Mutex<Seen>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Worker {
    fn start(dir: &Path, name: &str) -> Worker {
        Worker::start_working(dir, name, 0)
    }

    /// A worker that works `work_ms` between a poll that returned records and its commit.
    fn start_working(dir: &Path, name: &str, work_ms: u64) -> Worker {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                CHILD_TEST,
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(DIR_ENV, dir)
            .env(NAME_ENV, name)
            .env(PAUSE_ENV, work_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().expect("piped");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let into = Arc::clone(&seen);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let fields: Vec<&str> = line.split(' ').collect();
                let mut seen = into.lock().expect("lock");
                match fields.as_slice() {
                    ["@GOT", p, o] => seen
                        .got
                        .push((p.parse().expect("p"), o.parse().expect("o"))),
                    ["@ACK", p, o] => seen
                        .acked
                        .push((p.parse().expect("p"), o.parse().expect("o"))),
                    ["@REJECTED"] => seen.rejected += 1,
                    ["@LOST"] => seen.lost += 1,
                    ["@COMMITTED", p, o] => {
                        let (p, o): (u32, i64) = (p.parse().expect("p"), o.parse().expect("o"));
                        let c = seen.committed.entry(p).or_insert(o);
                        *c = (*c).max(o);
                    }
                    _ => {}
                }
            }
        });
        Worker {
            name: name.to_owned(),
            child,
            seen,
            reader: Some(reader),
        }
    }

    fn got(&self) -> Vec<(u32, i64)> {
        self.seen.lock().expect("lock").got.clone()
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
    }

    fn finish(&mut self) {
        let status = self.child.wait().expect("wait");
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
        assert!(status.success(), "worker {} failed: {status}", self.name);
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    writer: Store,
    appended: BTreeMap<u32, i64>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Store::open(dir.path()).expect("opens");
        writer
            .create_topic("jobs", TopicConfig::new(PARTITIONS))
            .expect("creates");
        Fixture {
            dir,
            writer,
            appended: BTreeMap::new(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn append(&mut self, n: usize, pause: Duration) {
        let topic = self.writer.topic("jobs").expect("topic");
        for i in 0..n {
            let p = (i as u32) % PARTITIONS;
            let offset = topic
                .append_to(p, Record::new(format!("job {i}").as_bytes()))
                .expect("appends");
            self.appended.insert(p, offset + 1);
            if !pause.is_zero() {
                thread::sleep(pause);
            }
        }
    }

    fn total(&self) -> usize {
        self.appended.values().map(|&n| n as usize).sum()
    }

    /// Waits until the workers together got every appended record.
    fn wait_for_all(&self, workers: &[&Worker]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got: BTreeSet<(u32, i64)> = workers.iter().flat_map(|w| w.got()).collect();
            if got.len() >= self.total() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {} records delivered",
                got.len(),
                self.total()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&self) {
        std::fs::write(self.dir.path().join("stop"), b"").expect("stop file");
    }

    /// Every appended offset delivered at least once, nothing else.
    fn check_complete(&self, all: &[(u32, i64)]) {
        let got: BTreeSet<(u32, i64)> = all.iter().copied().collect();
        let expected: BTreeSet<(u32, i64)> = self
            .appended
            .iter()
            .flat_map(|(&p, &n)| (0..n).map(move |o| (p, o)))
            .collect();
        assert_eq!(got, expected, "delivered records");
    }
}

fn duplicates(all: &[(u32, i64)]) -> BTreeSet<(u32, i64)> {
    let mut seen = BTreeSet::new();
    all.iter().filter(|r| !seen.insert(**r)).copied().collect()
}

#[test]
fn three_worker_processes_share_a_topic_and_process_each_job_once() {
    let _serial = serial();
    let mut f = Fixture::new();
    f.append(120, Duration::ZERO);
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&f.path(), &format!("w{i}")))
        .collect();
    f.append(480, Duration::from_micros(500));
    f.wait_for_all(&workers.iter().collect::<Vec<_>>());
    f.stop();
    for w in &mut workers {
        w.finish();
    }
    let all: Vec<(u32, i64)> = workers.iter().flat_map(Worker::got).collect();
    f.check_complete(&all);
    assert!(duplicates(&all).is_empty(), "twice: {:?}", duplicates(&all));
    for w in &workers {
        assert!(!w.got().is_empty(), "{} took part", w.name);
    }
    let committed = f.writer.committed_offsets("workers").expect("reads");
    for (&p, &n) in &f.appended {
        assert_eq!(
            committed.get(&("jobs".to_owned(), p)),
            Some(&n),
            "partition {p}"
        );
    }
    assert!(
        f.writer
            .groups()
            .expect("lists")
            .contains(&"workers".to_owned()),
        "the group is listed"
    );
}

#[test]
fn a_killed_worker_loses_nothing_and_only_its_uncommitted_records_come_again() {
    let _serial = serial();
    let mut f = Fixture::new();
    f.append(300, Duration::ZERO);
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&f.path(), &format!("w{i}")))
        .collect();
    // Kill, mid-run, the worker that got the most so far (the others may have joined after
    // it had taken everything).
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        let (i, most) = (0..workers.len())
            .map(|i| (i, workers[i].got().len()))
            .max_by_key(|&(_, n)| n)
            .expect("workers");
        if most >= 20 {
            break i;
        }
        assert!(Instant::now() < deadline, "no worker got work");
        thread::sleep(Duration::from_millis(2));
    };
    workers[victim].kill();
    let victim_got = workers[victim].got();
    let victim_committed = workers[victim].seen.lock().expect("lock").committed.clone();
    f.append(300, Duration::from_micros(300));
    f.wait_for_all(&workers.iter().collect::<Vec<_>>());
    f.stop();
    for (i, w) in workers.iter_mut().enumerate() {
        if i != victim {
            w.finish();
        }
    }
    let all: Vec<(u32, i64)> = workers.iter().flat_map(Worker::got).collect();
    f.check_complete(&all);
    for (p, o) in duplicates(&all) {
        let committed = victim_committed.get(&p).copied().unwrap_or(0);
        assert!(
            victim_got.contains(&(p, o)) && o >= committed,
            "{p}:{o} came twice but the killed worker had committed up to {committed}"
        );
    }
}

/// A worker stopped (SIGSTOP) between a poll and its commit for longer than its session
/// timeout is removed from the group; its partitions go to the other worker; resumed, its
/// commit is refused, it learns it lost its partitions, and nothing it had not committed is
/// lost: the other worker delivers it.
#[test]
fn a_worker_paused_past_its_session_cannot_commit_what_it_lost() {
    let _serial = serial();
    let mut f = Fixture::new();
    f.append(60, Duration::ZERO);
    let mut slow = Worker::start_working(&f.path(), "slow", 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.got().is_empty() {
        assert!(Instant::now() < deadline, "the slow worker got nothing");
        thread::sleep(Duration::from_millis(1));
    }
    // Inside its 400 ms of work: stop it for 2.5 s, past its 1 s session.
    signal(&slow.child, "-STOP");
    // Its last lines (a commit just before the stop, say) may still sit in the pipe: let the
    // reader thread take them in before reading what it got and committed.
    thread::sleep(Duration::from_millis(300));
    let got_before = slow.got();
    let mut committed_before = slow.seen.lock().expect("lock").committed.clone();
    // A commit the stop caught between its write and its line is on disk all the same.
    for ((_, p), offset) in f.writer.committed_offsets("workers").expect("reads") {
        let known = committed_before.entry(p).or_insert(offset);
        *known = (*known).max(offset);
    }
    let mut other = Worker::start(&f.path(), "other");
    f.append(60, Duration::ZERO);
    thread::sleep(Duration::from_millis(2_500));
    signal(&slow.child, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = slow.seen.lock().expect("lock");
        if seen.rejected > 0 && seen.lost > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resumed: rejected {} lost {}",
            seen.rejected,
            seen.lost
        );
        drop(seen);
        thread::sleep(Duration::from_millis(10));
    }
    f.wait_for_all(&[&slow, &other]);
    f.stop();
    slow.finish();
    other.finish();
    // What the paused worker had got but not committed was delivered again by the other.
    let other_got: BTreeSet<(u32, i64)> = other.got().into_iter().collect();
    for &(p, o) in &got_before {
        let committed = committed_before.get(&p).copied().unwrap_or(0);
        if o >= committed {
            assert!(
                other_got.contains(&(p, o)),
                "{p}:{o}: got by the paused worker, not committed, not delivered again"
            );
        }
    }
    let all: Vec<(u32, i64)> = slow.got().into_iter().chain(other.got()).collect();
    f.check_complete(&all);
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

#[test]
fn workers_wait_through_a_writer_restart() {
    let _serial = serial();
    let mut f = Fixture::new();
    let mut workers: Vec<Worker> = (0..2)
        .map(|i| Worker::start(&f.path(), &format!("w{i}")))
        .collect();
    f.append(60, Duration::ZERO);
    f.wait_for_all(&workers.iter().collect::<Vec<_>>());
    f.writer.close().expect("closes");
    let appended = std::mem::take(&mut f.appended);
    f.writer = Store::open(f.dir.path()).expect("reopens while the workers wait");
    f.appended = appended;
    f.append(60, Duration::ZERO);
    f.wait_for_all(&workers.iter().collect::<Vec<_>>());
    f.stop();
    for w in &mut workers {
        w.finish();
    }
    let all: Vec<(u32, i64)> = workers.iter().flat_map(Worker::got).collect();
    f.check_complete(&all);
    assert!(duplicates(&all).is_empty(), "twice: {:?}", duplicates(&all));
}

#[test]
fn members_joining_and_leaving_while_commits_flow_keep_each_job_once() {
    let _serial = serial();
    let mut f = Fixture::new();
    let mut first: Vec<Worker> = (0..2)
        .map(|i| Worker::start(&f.path(), &format!("a{i}")))
        .collect();
    f.append(200, Duration::from_micros(500));
    // Two more join while the first two commit after every poll.
    let mut second: Vec<Worker> = (0..2)
        .map(|i| Worker::start(&f.path(), &format!("b{i}")))
        .collect();
    f.append(200, Duration::from_micros(500));
    // The in-process consumer of the writer's store joins too, reads a few polls, leaves.
    let config = ConsumerConfig::builder()
        .group_id("workers")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .session_timeout_ms(1_000)
        .heartbeat_interval_ms(100)
        .build()
        .expect("valid");
    let mut local = f.writer.consumer(config).expect("consumer");
    local.subscribe(&["jobs"]).expect("subscribes");
    let mut local_got = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        for r in local.poll(Duration::from_millis(20)).expect("polls") {
            local_got.push((r.partition(), r.offset()));
        }
        local.commit().expect("commits what it owns");
    }
    local.close().expect("leaves");
    f.append(200, Duration::from_micros(500));
    let everyone: Vec<&Worker> = first.iter().chain(second.iter()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(u32, i64)> = everyone
            .iter()
            .flat_map(|w| w.got())
            .chain(local_got.iter().copied())
            .collect();
        if got.len() >= f.total() {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {}", got.len(), f.total());
        thread::sleep(Duration::from_millis(20));
    }
    f.stop();
    for w in first.iter_mut().chain(second.iter_mut()) {
        w.finish();
    }
    let all: Vec<(u32, i64)> = first
        .iter()
        .chain(second.iter())
        .flat_map(Worker::got)
        .chain(local_got)
        .collect();
    f.check_complete(&all);
    assert!(duplicates(&all).is_empty(), "twice: {:?}", duplicates(&all));
}

/// The soak: a writer process and three worker processes, any of them SIGKILLed at random
/// moments and restarted, for `TOPICLOG_QUEUE_SOAK_SECS` seconds (default 60). Then every
/// acknowledged record must have been delivered to some worker; duplicates (records a killed
/// worker got but had not committed) are counted and printed.
///
/// ```sh
/// cargo test --release --test consumer_processes -- --ignored --nocapture
/// TOPICLOG_QUEUE_SOAK_SECS=600 cargo test --release --test consumer_processes -- --ignored --nocapture
/// ```
#[test]
#[ignore = "a soak: minutes of random kills"]
fn soak_random_kills_of_any_process() {
    let secs: u64 = std::env::var("TOPICLOG_QUEUE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let f = Fixture::new();
    let dir = f.path();
    f.writer
        .close()
        .expect("the writer is a child process from now on");
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut writer = Worker::start(&dir, "writer");
    let mut retired: Vec<Worker> = Vec::new();
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&dir, &format!("w{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut kills = 0;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200 + rand(800)));
        let victim = rand(4) as usize;
        if victim == 3 {
            writer.kill();
            retired.push(std::mem::replace(
                &mut writer,
                Worker::start(&dir, "writer"),
            ));
        } else {
            workers[victim].kill();
            let name = format!("w{victim}-{kills}");
            retired.push(std::mem::replace(
                &mut workers[victim],
                Worker::start(&dir, &name),
            ));
        }
        kills += 1;
    }
    writer.kill();
    retired.push(writer);
    let acked: BTreeSet<(u32, i64)> = retired
        .iter()
        .flat_map(|w| w.seen.lock().expect("lock").acked.clone())
        .collect();
    // The live workers drain what is left (killed ones' sessions time out first).
    let drain = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(u32, i64)> = workers
            .iter()
            .chain(retired.iter())
            .flat_map(Worker::got)
            .collect();
        let missing: Vec<_> = acked.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < drain,
            "{} acknowledged records never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        thread::sleep(Duration::from_millis(50));
    }
    f.stop();
    for w in &mut workers {
        w.finish();
    }
    let all: Vec<(u32, i64)> = workers
        .iter()
        .chain(retired.iter())
        .flat_map(Worker::got)
        .collect();
    let (rejected, lost) = workers
        .iter()
        .chain(retired.iter())
        .map(|w| {
            let seen = w.seen.lock().expect("lock");
            (seen.rejected, seen.lost)
        })
        .fold((0, 0), |(r, l), (a, b)| (r + a, l + b));
    println!(
        "soak: {secs} s, {kills} kills, {} records acknowledged, {} deliveries, {} records \
         delivered more than once; {rejected} commits refused, {lost} memberships lost",
        acked.len(),
        all.len(),
        duplicates(&all).len()
    );
}
