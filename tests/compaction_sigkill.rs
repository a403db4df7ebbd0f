//! `topiclog compact` killed with SIGKILL at random moments (feature `cli`): a store's
//! compacted topic is given new updates, then `topiclog --dir D compact t` runs in a child
//! process and is killed at a random moment of its run (up to 1.5 times as long as a whole
//! run took, timed first), 40 times. After each kill the store opens
//! (recovery finishes or undoes any swap the kill interrupted) and every partition returns,
//! for every key, exactly the latest record appended, and only records that were appended, at
//! their own offsets. A child that ends by itself must have succeeded.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use topiclog::config::{CleanupPolicy, LogConfig, StoreOptions, TopicConfig};
use topiclog::{Record, Store};

const BIN: &str = env!("CARGO_BIN_EXE_topiclog");
const KILLS: u64 = 40;

/// Every record appended, by partition and offset: key and value.
type Appended = BTreeMap<(u32, i64), (Vec<u8>, Vec<u8>)>;

fn options() -> StoreOptions {
    StoreOptions::builder().log_cleaner_enable(false).build()
}

fn append_round(store: &Store, round: u64, appended: &mut Appended) {
    let topic = store.topic("t").unwrap();
    for i in 0..150u64 {
        let key = format!("k{}", (i * 7 + round) % 31).into_bytes();
        let value = format!("r{round}-i{i}-{}", "x".repeat((i % 13) as usize)).into_bytes();
        let partition = (i % 2) as u32;
        let offset = topic
            .append_to(partition, Record::keyed(&key, &value))
            .unwrap();
        appended.insert((partition, offset), (key, value));
    }
}

fn check(store: &Store, appended: &Appended, what: &str) {
    let topic = store.topic("t").unwrap();
    for (p, partition) in topic.partitions().iter().enumerate() {
        let p = p as u32;
        let mut latest = BTreeMap::new();
        let mut last = -1;
        for r in partition.read(partition.log_start_offset()).unwrap() {
            let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(r.offset() > last, "{what}: order");
            last = r.offset();
            let content = (r.key().unwrap().to_vec(), r.value().unwrap().to_vec());
            assert_eq!(
                appended.get(&(p, r.offset())),
                Some(&content),
                "{what}: {p}/{last}"
            );
            latest.insert(content.0, content.1);
        }
        let want: BTreeMap<Vec<u8>, Vec<u8>> = appended
            .range((p, i64::MIN)..=(p, i64::MAX))
            .map(|(_, (k, v))| (k.clone(), v.clone()))
            .collect();
        assert_eq!(latest, want, "{what}: partition {p}");
        let end = appended.range((p, i64::MIN)..=(p, i64::MAX)).count() as i64;
        assert_eq!(partition.next_offset(), end, "{what}: log end");
    }
}

#[test]
fn sigkill_of_topiclog_compact_loses_no_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1500)
        .retention_ms(-1)
        .build()
        .unwrap();
    let mut appended = Appended::new();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store
        .create_topic("t", TopicConfig::new(2).with_log(config))
        .unwrap();
    append_round(&store, 0, &mut appended);
    store.close().unwrap();
    drop(store);
    let mut seed = 0x5eed_u64;
    let mut finished = 0;
    let mut killed = 0;
    let (mut swaps_finished, mut cleaned) = (0, 0);
    // How long a whole run takes, process start included, as in the rounds below (a clean
    // section and a round of updates): kills land anywhere in it.
    let mut span = 0;
    for calibration in 0..2 {
        let timed = std::time::Instant::now();
        let run = Command::new(BIN)
            .args(["--dir", dir.path().to_str().unwrap(), "-q", "compact", "t"])
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        span = (timed.elapsed().as_micros() as u64 * 3 / 2).max(1);
        let store = Store::open_with(dir.path(), options()).unwrap();
        check(&store, &appended, "after a whole run");
        append_round(&store, 100 + calibration, &mut appended);
        store.close().unwrap();
    }
    for round in 1..=KILLS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % span);
        let mut child = Command::new(BIN)
            .args(["--dir", dir.path().to_str().unwrap(), "-q", "compact", "t"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        match output.status.signal() {
            Some(9) => killed += 1,
            _ => {
                assert!(
                    output.status.success(),
                    "round {round}: {:?} {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                finished += 1;
            }
        }
        let what = format!("round {round}, killed after {delay:?}");
        let store =
            Store::open_with(dir.path(), options()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        for partition in store.topic("t").unwrap().partitions() {
            swaps_finished += partition.recovery().swaps_completed.len();
            cleaned += usize::from(partition.dirt().unwrap().first_dirty_offset > 0);
        }
        check(&store, &appended, &what);
        append_round(&store, round, &mut appended);
        store.close().unwrap();
    }
    eprintln!(
        "{killed} kills, {finished} runs finished; {swaps_finished} swaps finished by \
         recovery; {cleaned} partition checks after some cleaning; a run takes {span} µs"
    );
    assert!(killed > 0, "some kill landed before the run ended");
}
