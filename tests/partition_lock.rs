//! One writer per partition, always. A partition opened on its own locks a file in its
//! directory (`.topiclog_lock`); one inside a store's directory takes the store's lock. A second
//! writer, in this process or another, gets `Error::Locked` at once, or after waiting up to the
//! lock timeout; closing (or the holder dying) releases the lock at once. Read-only opens never
//! take it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::{LogConfig, RecoveryOptions, StoreOptions, TopicConfig};
use topiclog::layout::PARTITION_LOCK_FILE;
use topiclog::record::Record;
use topiclog::{Error, Partition, Store};

const CHILD_ENV: &str = "TOPICLOG_TEST_PARTITION_LOCK_CHILD";
const HOLD_MS_ENV: &str = "TOPICLOG_TEST_PARTITION_LOCK_HOLD_MS";

/// Serializes this file's tests: a child forked by one test holds copies of the others' open
/// descriptors until it execs, and so, for an instant, their locks.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run as a child process: opens the partition in `$CHILD_ENV`, appends 300 records, says
/// `locked`, then holds it for `$HOLD_MS_ENV` milliseconds (or until killed) and closes it.
/// In a normal test run it does nothing.
#[test]
fn child_appends_and_holds_a_partition() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    match Partition::open(&dir, LogConfig::default()) {
        Ok(log) => {
            for i in 0..300 {
                log.append(Record::new(format!("child-{i}").as_bytes()))
                    .expect("append");
            }
            println!("locked");
            let hold = std::env::var(HOLD_MS_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(60_000);
            std::thread::sleep(Duration::from_millis(hold));
            log.close().expect("close");
        }
        Err(Error::Locked { .. }) => println!("refused"),
        Err(e) => println!("error {e}"),
    }
}

fn spawn_holder(dir: &std::path::Path, hold_ms: u64) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_appends_and_holds_a_partition",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(HOLD_MS_ENV, hold_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines
        .find_map(|l| {
            // The harness may print `test NAME ... ` on the same line first.
            let l = l.ok()?;
            let said = l.rsplit("... ").next().unwrap_or(&l).to_owned();
            (said == "locked" || said == "refused" || said.starts_with("error")).then_some(said)
        })
        .unwrap_or_default();
    // Keep draining, so the child's later output never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, first)
}

fn count(dir: &std::path::Path) -> usize {
    let log = Partition::open_read_only(dir, LogConfig::default()).expect("read-only");
    log.read(0).expect("read").count()
}

#[test]
fn a_second_process_cannot_write_a_partition_another_holds() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut holder, said) = spawn_holder(dir.path(), 60_000);
    assert_eq!(said, "locked");

    // This process: refused at once, and nothing it could append is lost.
    let started = Instant::now();
    match Partition::open(dir.path(), LogConfig::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1), "at once");
    // A second child process: refused too.
    let (mut second, said) = spawn_holder(dir.path(), 0);
    assert_eq!(said, "refused");
    let _ = second.wait();
    // A read-only open runs beside the writer.
    assert_eq!(count(dir.path()), 300);

    holder.kill().expect("kill");
    holder.wait().expect("reap");
    // The kernel released the dead holder's lock: the next writer gets in and keeps everything.
    let log = Partition::open(dir.path(), LogConfig::default()).expect("after the holder died");
    assert_eq!(log.next_offset(), 300);
    log.append(Record::new(b"after")).expect("append");
    log.close().expect("close");
    assert_eq!(count(dir.path()), 301);
}

#[test]
fn the_readme_example_run_twice_at_once_keeps_every_acknowledged_record() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    // The winner holds the lock long enough for the other child to start and try.
    let children: Vec<_> = (0..2).map(|_| spawn_holder(dir.path(), 3000)).collect();
    let mut appended = 0;
    for (mut child, said) in children {
        appended += match said.as_str() {
            "locked" => 300,
            "refused" => 0,
            other => panic!("child said {other:?}"),
        };
        assert!(child.wait().expect("reap").success());
    }
    assert_eq!(appended, 300, "exactly one writer won");
    assert_eq!(count(dir.path()), appended);
}

#[test]
fn a_lock_timeout_waits_for_the_holder_to_let_go() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut holder, said) = spawn_holder(dir.path(), 300);
    assert_eq!(said, "locked");
    let options = RecoveryOptions::new().lock_timeout(Duration::from_secs(20));
    let log = Partition::open_with(dir.path(), LogConfig::default(), options).expect("waited");
    assert_eq!(log.next_offset(), 300, "the holder closed before we got in");
    holder.wait().expect("reap");

    // Too short a wait still fails, after about the timeout.
    let options = RecoveryOptions::new().lock_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let second = Partition::open_with(dir.path(), LogConfig::default(), options);
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn close_releases_the_lock_at_once_in_this_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Partition::open(dir.path(), LogConfig::default()).expect("open");
    first.append(Record::new(b"a")).expect("append");
    assert!(matches!(
        Partition::open(dir.path(), LogConfig::default()),
        Err(Error::Locked { .. })
    ));
    first.close().expect("close");
    // Still alive, but closed: the directory can be opened again.
    let second = Partition::open(dir.path(), LogConfig::default()).expect("reopen");
    assert!(matches!(
        first.append(Record::new(b"b")),
        Err(Error::Closed)
    ));
    assert_eq!(second.append(Record::new(b"c")).expect("append"), 1);
    drop(second);

    // The same for a store, whose handles outlive the close.
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(store_dir.path()).expect("store");
    let topic = store.create_topic("t", TopicConfig::new(2)).expect("topic");
    store.close().expect("close");
    let again = Store::open(store_dir.path()).expect("reopen at once");
    assert!(matches!(
        topic.append_to(0, Record::new(b"x")),
        Err(Error::Closed)
    ));
    assert!(matches!(
        store.create_topic("u", TopicConfig::new(1)),
        Err(Error::Closed)
    ));
    assert!(matches!(store.producer("p"), Err(Error::Closed)));
    again
        .topic("t")
        .expect("topic")
        .append_to(1, Record::new(b"y"))
        .expect("append");
    again.close().expect("close");

    // And a waiting store open gets in once the holder closes.
    let holder = Store::open(store_dir.path()).expect("store");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let options = StoreOptions::builder()
                .lock_timeout(Duration::from_secs(20))
                .build();
            Store::open_with(store_dir.path(), options).map(|s| s.topics())
        });
        std::thread::sleep(Duration::from_millis(100));
        holder.close().expect("close");
        assert_eq!(waiter.join().expect("join").expect("waited"), ["t"]);
    });
}

#[test]
fn a_partition_inside_a_store_takes_the_store_lock() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store.create_topic("t", TopicConfig::new(1)).expect("topic");
    let partition_dir = dir.path().join("t-0");
    match Partition::open(&partition_dir, LogConfig::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected the store's lock, got {other:?}"),
    }
    assert!(!partition_dir.join(PARTITION_LOCK_FILE).exists());
    store.close().expect("close");
    drop(store);
    // With the store closed, the partition opens on its own, under the store's lock, which a
    // store open then waits for.
    let alone = Partition::open(&partition_dir, LogConfig::default()).expect("alone");
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    drop(alone);
    Store::open(dir.path()).expect("store again");
}

#[test]
fn read_only_opens_take_no_lock() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = Partition::open_read_only(dir.path(), LogConfig::default()).expect("reader");
    assert!(
        !dir.path().join(PARTITION_LOCK_FILE).exists(),
        "no lock file made"
    );
    let writer = Partition::open(dir.path(), LogConfig::default()).expect("writer beside it");
    writer.append(Record::new(b"a")).expect("append");
    let second_reader =
        Partition::open_read_only(dir.path(), LogConfig::default()).expect("reader 2");
    assert_eq!(second_reader.next_offset(), 1);
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.next_offset(), 1);
}
