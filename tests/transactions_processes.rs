//! A `read_committed` consumer in another process follows a writer's transactions. The test
//! binary re-runs itself as the child (`child_consumes_read_committed`, which does nothing in
//! a normal run): it opens the store for consuming (`Store::open_consumer`), assigns the
//! topic's partition at offset 0 under `read_committed` and prints every record's offset and
//! value as it polls them, until it reads `end`. The parent commits and aborts transactions,
//! holds one open while plain records follow it, then ends it. The child must print exactly
//! the committed and plain records, in offset order, never an aborted one, and none past an
//! open transaction before it ends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use topiclog::config::{ConsumerConfig, IsolationLevel, OffsetReset, TopicConfig};
use topiclog::{Record, Store};

const CHILD_ENV: &str = "TOPICLOG_TXN_CHILD_DIR";

#[test]
fn child_consumes_read_committed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open_consumer(&dir).expect("consumer store");
    let config = ConsumerConfig::builder()
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .build()
        .expect("config");
    let mut consumer = store.consumer(config).expect("consumer");
    consumer.assign(&[("t", 0)]).expect("assign");
    let mut out = std::io::stdout().lock();
    writeln!(out, "@READY").unwrap();
    out.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(50)).expect("poll") {
            let value = String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned();
            writeln!(out, "{} {value}", r.offset()).unwrap();
            out.flush().unwrap();
            if value == "end" {
                return;
            }
        }
    }
    writeln!(out, "@TIMEOUT").unwrap();
}

#[test]
fn a_consumer_process_reads_committed_records_only_and_waits_at_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_consumes_read_committed", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("@READY") => break,
            Ok(_) => {}
            Err(e) => panic!("the child never started: {e}"),
        }
    }
    let producer = store.transactional_producer("writer").unwrap();
    producer.init_transactions().unwrap();
    let log = store.topic("t").unwrap().partition(0).unwrap();
    let mut want = Vec::new();
    for i in 0..20 {
        producer.begin_transaction().unwrap();
        let values: Vec<String> = (0..3).map(|j| format!("t{i}-{j}")).collect();
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v.as_bytes())).collect();
        let info = producer.append("t", 0, &records).unwrap();
        if i % 3 == 0 {
            producer.abort_transaction().unwrap();
        } else {
            producer.commit_transaction().unwrap();
            want.extend(info.offsets().zip(values));
        }
    }
    // An open transaction, then plain records after it: none of them may come out yet.
    producer.begin_transaction().unwrap();
    let open = producer.append("t", 0, &[Record::new(b"open")]).unwrap();
    let plain = log.append(Record::new(b"plain")).unwrap();
    let mut got = Vec::new();
    let settle = Instant::now() + Duration::from_millis(800);
    while Instant::now() < settle {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            got.push(line);
        }
    }
    let printed: Vec<i64> = got
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        printed.iter().all(|&o| o < open.base_offset),
        "past the last stable offset: {got:?}"
    );
    producer.commit_transaction().unwrap();
    want.push((open.base_offset, "open".to_owned()));
    want.push((plain, "plain".to_owned()));
    let end = log.append(Record::new(b"end")).unwrap();
    want.push((end, "end".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !got.last().is_some_and(|l| l.ends_with(" end")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                assert!(
                    !line.starts_with("@TIMEOUT"),
                    "the child timed out: {got:?}"
                );
                got.push(line);
            }
            Err(e) => panic!("after {got:?}: {e}"),
        }
    }
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let want: Vec<String> = want.iter().map(|(o, v)| format!("{o} {v}")).collect();
    assert_eq!(got, want);
}
