//! The `exactly_once` example killed with SIGKILL at random moments: run again after every
//! kill, it must in the end have turned every input record into exactly one output record a
//! `read_committed` reader sees (the example checks that itself and exits 1 otherwise; this
//! test checks it again from outside), and no transaction may be left open.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::Store;
use topiclog::partition::{IsolationLevel, ReadOptions};

const KILLS: u64 = 20;

/// The example's binary, built by `cargo test` beside the test binaries (built here if not).
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = debug
        .join("examples")
        .join(format!("exactly_once{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", "exactly_once"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// A seeded xorshift: the kill delays, reproducible from the seed printed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs the example on `dir`, killing it after a random delay, until a run ends by itself
/// (at most `max_kills` kills, then one run to the end). Returns how many runs were killed.
fn run_with_kills(bin: &PathBuf, dir: &std::path::Path, state: &mut u64, max_kills: u64) -> u64 {
    let mut kills = 0;
    loop {
        let mut child = Command::new(bin)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A first run fills and processes for about a second; a run after a kill first waits
        // up to a session timeout (1 s) for the killed run's member to expire: kill anywhere
        // in the work.
        let wait = if kills == 0 { 20 } else { 900 };
        let delay = Duration::from_millis(wait + next(state) % 1_000);
        let start = Instant::now();
        let mut exited = None;
        while kills < max_kills && start.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if exited.is_none() && kills < max_kills {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{} after {kills} kills: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        return kills;
    }
}

/// From outside: each input record's key exactly once in `output` under `read_committed`,
/// and no transaction left open.
fn check_exactly_once(dir: &std::path::Path) {
    let store = Store::open(dir).unwrap();
    assert!(store.transactions().unwrap().is_empty());
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let options = ReadOptions::new().isolation_level(IsolationLevel::ReadCommitted);
    for log in store.topic("output").unwrap().partitions() {
        assert_eq!(log.last_stable_offset(), log.next_offset());
        for r in log.read_with(0, options).unwrap() {
            let r = r.unwrap();
            *seen
                .entry(String::from_utf8(r.key().unwrap().to_vec()).unwrap())
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 10_000, "{}", dir.display());
    assert!(seen.values().all(|&n| n == 1));
    for p in 0..4 {
        for o in 0..2_500 {
            assert!(seen.contains_key(&format!("{p}:{o}")), "{p}:{o} missing");
        }
    }
}

#[test]
fn killed_at_any_moment_every_input_record_is_output_exactly_once() {
    let bin = example();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut state = seed;
    let mut kills = 0;
    let mut stores = 0;
    while kills < KILLS {
        let dir = tempfile::tempdir().unwrap();
        kills += run_with_kills(&bin, dir.path(), &mut state, 8);
        check_exactly_once(dir.path());
        stores += 1;
    }
    println!("{kills} kills over {stores} stores");
}
