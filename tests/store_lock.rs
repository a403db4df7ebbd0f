//! One writable store per directory: a second open, in this process or in another process,
//! fails at once with `Error::Locked` naming the directory; the lock goes with its holder
//! (closing it, or the holding process dying, even by SIGKILL); read-only opens take no lock.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use topiclog::config::TopicConfig;
use topiclog::{Error, Store};

const CHILD_ENV: &str = "TOPICLOG_TEST_LOCK_CHILD";

/// Serializes this file's tests: a child forked by one test holds copies of the other's open
/// descriptors until it execs, and so, for an instant, its lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run as a child process by `a_second_process_cannot_open_a_locked_store`: holds the store
/// until killed. In a normal test run it does nothing.
#[test]
fn child_holds_the_store() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir).expect("child opens the store");
    store
        .create_topic("held", TopicConfig::new(1))
        .expect("topic");
    println!("locked");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

const RACE_ENV: &str = "TOPICLOG_TEST_LOCK_RACER";

/// Run as a child process by `two_processes_racing_for_the_lock_one_wins`: tries to open the
/// store once the start file appears, says whether it won, and holds it briefly.
#[test]
fn child_races_for_the_store() {
    let Ok(dir) = std::env::var(RACE_ENV) else {
        return;
    };
    let start = std::path::Path::new(&dir).join("go");
    while !start.exists() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    match Store::open(&dir) {
        Ok(_store) => {
            println!("RESULT:won");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        Err(Error::Locked { .. }) => println!("RESULT:locked"),
        Err(e) => println!("RESULT:error {e}"),
    }
}

#[test]
fn two_processes_racing_for_the_lock_one_wins() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let racers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_races_for_the_store",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(RACE_ENV, dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let outcomes: Vec<String> = racers
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split("RESULT:")
                .nth(1)
                .map_or(text.clone(), |r| r.lines().next().unwrap_or("").to_owned())
        })
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["locked", "won"],
        "exactly one process wins: {outcomes:?}"
    );
}

#[test]
fn a_second_open_in_this_process_fails_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    let reader = Store::open_read_only(dir.path()).expect("read-only opens take no lock");
    assert!(reader.is_read_only());
    drop(reader);
    drop(store);
    Store::open(dir.path()).expect("the lock went with its holder");
}

#[test]
fn a_second_process_cannot_open_a_locked_store() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("locked") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child exited before locking"
        );
    }
    let started = std::time::Instant::now();
    match Store::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(started.elapsed().as_secs() < 1, "fails at once, no waiting");
    // A tool can still read beside the live writer.
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.topics(), ["held"]);
    drop(reader);
    child.kill().unwrap(); // SIGKILL: the OS releases the lock
    child.wait().unwrap();
    let store = Store::open(dir.path()).expect("opens once the holder died");
    assert_eq!(store.topics(), ["held"]);
}
