//! `topiclog consume --group` beside a live writer: two consume processes split a topic's
//! partitions and rebalance when one leaves; SIGTERM and SIGINT commit what was printed and
//! exit 0; `describe-group` shows the members' processes; `reset-offsets` refuses a group with
//! live members.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::config::TopicConfig;
use topiclog::{Record, Store};

const BIN: &str = env!("CARGO_BIN_EXE_topiclog");

/// A `consume --group g --follow` process and the lines it printed.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn start(dir: &Path) -> Member {
        let mut child = Command::new(BIN)
            .arg("--dir")
            .arg(dir)
            .args(["consume", "t", "--group", "g", "--follow"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn consume");
        let stdout = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                into.lock().expect("lock").push(line);
            }
        });
        Member { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = wait_timeout(&mut self.child, Duration::from_secs(20));
        assert!(exit.success(), "{signal}: exits 0, got {exit}");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn tl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run topiclog")
}

/// The pids `describe-group g` lists as owning partitions.
fn owners(dir: &Path) -> BTreeSet<u32> {
    let out = tl(dir, &["describe-group", "g"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields.len() == 9 && fields[0] != "-").then(|| fields[7].parse().ok())?
        })
        .collect()
}

fn append(store: &Store, from: usize, to: usize) {
    let topic = store.topic("t").expect("topic");
    for i in from..to {
        topic
            .append_to((i % 4) as u32, Record::new(format!("v{i}").as_bytes()))
            .expect("appends");
    }
}

#[test]
fn consume_group_members_share_a_topic_beside_the_writer_and_commit_on_signals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let writer = Store::open(d).expect("the application holds the store");
    writer
        .create_topic("t", TopicConfig::new(4))
        .expect("creates");
    append(&writer, 0, 40);

    let mut a = Member::start(d);
    until("a to print the first 40", || a.lines().len() >= 40);
    let a_pid = a.child.id();
    assert_eq!(owners(d), BTreeSet::from([a_pid]), "a owns every partition");
    let describe = String::from_utf8_lossy(&tl(d, &["describe-group", "g"]).stdout).into_owned();
    assert!(
        describe.contains("topiclog-cli"),
        "client id shown: {describe}"
    );

    let refused = tl(
        d,
        &["reset-offsets", "g", "--topic", "t", "--to", "earliest"],
    );
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("live members"), "{message}");

    let mut b = Member::start(d);
    let b_pid = b.child.id();
    until("both members to own partitions", || {
        owners(d) == BTreeSet::from([a_pid, b_pid])
    });
    append(&writer, 40, 80);
    until("80 records printed between them", || {
        a.lines().len() + b.lines().len() >= 80
    });

    // SIGTERM: a commits what it printed, leaves, exits 0; b takes everything.
    a.signal("-TERM");
    until("b to own every partition", || {
        owners(d) == BTreeSet::from([b_pid])
    });
    append(&writer, 80, 100);
    until("b to print the last 20", || {
        b.lines()
            .iter()
            .filter(|l| *l == "v99" || l.starts_with("v9"))
            .count()
            >= 10
            && a.lines().len() + b.lines().len() >= 100
    });
    b.signal("-INT");

    let printed: Vec<String> = a.lines().into_iter().chain(b.lines()).collect();
    let unique: BTreeSet<&String> = printed.iter().collect();
    assert_eq!(unique.len(), 100, "every record printed");
    assert_eq!(printed.len(), 100, "none printed twice");
    let committed = writer.committed_offsets("g").expect("reads");
    let ends: Vec<i64> = (0..4)
        .map(|p| {
            writer
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .next_offset()
        })
        .collect();
    for (p, end) in ends.iter().enumerate() {
        assert_eq!(
            committed.get(&("t".to_owned(), p as u32)),
            Some(end),
            "partition {p}: what was printed is committed"
        );
    }
    assert!(owners(d).is_empty(), "no member left");
    let reset = tl(
        d,
        &["reset-offsets", "g", "--topic", "t", "--to", "earliest"],
    );
    assert!(reset.status.success(), "allowed once the group is empty");
}
