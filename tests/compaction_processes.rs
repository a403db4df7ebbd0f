//! A consumer in another process reads a compacted partition while the writer appends and
//! compacts it again and again. The test binary re-runs itself as the child
//! (`child_reads_while_the_writer_compacts`, which does nothing in a normal run): it opens the
//! store read-only and reads the partition from its log start to its end over and over,
//! refreshing between passes, checking every record (in offset order, its value naming its key)
//! and printing each pass's size; at the end it prints the offsets of one last pass. The child
//! must never fail a read, and its last pass must return exactly what the writer reads.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topiclog::config::{CleanupPolicy, LogConfig, StoreOptions, TopicConfig};
use topiclog::{Record, Store};

const CHILD_ENV: &str = "TOPICLOG_COMPACTION_CHILD_DIR";

#[test]
fn child_reads_while_the_writer_compacts() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open_read_only(&dir).expect("read-only store");
    let partition = store
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("partition");
    let mut out = std::io::stdout().lock();
    let read_pass = |out: &mut std::io::StdoutLock<'_>| -> Vec<i64> {
        let mut offsets = Vec::new();
        for r in partition
            .read(partition.log_start_offset())
            .expect("reader")
        {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    writeln!(out, "@ERROR {e}").unwrap();
                    out.flush().unwrap();
                    std::process::exit(1);
                }
            };
            let (key, value) = (r.key().expect("key"), r.value().expect("value"));
            assert!(
                value.starts_with(key),
                "record {} names another key",
                r.offset()
            );
            if let Some(&last) = offsets.last() {
                assert!(r.offset() > last, "order");
            }
            offsets.push(r.offset());
        }
        offsets
    };
    writeln!(out, "@READY").unwrap();
    out.flush().unwrap();
    // Passes until the parent says stop (a line on stdin), then one last pass.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    let mut passes = 0;
    while rx.try_recv().is_err() {
        partition.refresh().expect("refresh");
        let offsets = read_pass(&mut out);
        passes += 1;
        writeln!(out, "@PASS {passes} {}", offsets.len()).unwrap();
        out.flush().unwrap();
    }
    partition.refresh().expect("refresh");
    let last = read_pass(&mut out);
    let text: Vec<String> = last.iter().map(i64::to_string).collect();
    writeln!(out, "@FINAL {}", text.join(",")).unwrap();
    out.flush().unwrap();
}

#[test]
fn a_consumer_process_reads_on_while_the_writer_compacts() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1000)
        .retention_ms(-1)
        .build()
        .unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions::builder().log_cleaner_enable(false).build(),
    )
    .unwrap();
    let topic = store
        .create_topic("t", TopicConfig::new(1).with_log(config))
        .unwrap();
    let mut seq = 0u64;
    let mut append = |n: u64| {
        for _ in 0..n {
            let key = format!("k{}", seq % 37);
            let value = format!("{key}-{seq}");
            topic
                .append_to(0, Record::keyed(key.as_bytes(), value.as_bytes()))
                .unwrap();
            seq += 1;
        }
    };
    append(400);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reads_while_the_writer_compacts",
            "--nocapture",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Every line the child prints, as it prints it (it must never wait on a full pipe).
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    // The test harness prints its own lines first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match line {
            Ok(l) if l.starts_with("@READY") => break,
            Ok(l) => assert!(!l.starts_with("@ERROR"), "{l}"),
            Err(e) => panic!("the child never started: {e}"),
        }
    }
    let partition = topic.partition(0).unwrap();
    let start = Instant::now();
    let mut compactions = 0;
    // At least 2.5 s and 6 compactions (a loaded machine takes longer), at most 30 s.
    while (start.elapsed() < Duration::from_millis(2500) || compactions <= 5)
        && start.elapsed() < Duration::from_secs(30)
    {
        append(60);
        let report = partition.compact().unwrap();
        compactions += usize::from(report.segments_before > 0);
    }
    // The child may have ended already (a failed read): what it printed says why.
    let _ = writeln!(child.stdin.as_mut().unwrap(), "stop");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let mut passes = 0;
    let mut last = None;
    for line in rx.try_iter() {
        assert!(
            !line.starts_with("@ERROR"),
            "the child failed a read: {line}"
        );
        if line.starts_with("@PASS") {
            passes += 1;
        }
        if let Some(rest) = line.strip_prefix("@FINAL ") {
            last = Some(rest.to_owned());
        }
    }
    assert!(status.success(), "{status:?}");
    let want: Vec<String> = partition
        .read(partition.log_start_offset())
        .unwrap()
        .map(|r| r.unwrap().offset().to_string())
        .collect();
    assert_eq!(last.as_deref(), Some(want.join(",").as_str()));
    assert!(
        compactions > 5 && passes > 5,
        "{compactions} compactions, {passes} passes"
    );
}
