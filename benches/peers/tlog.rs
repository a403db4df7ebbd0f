//! topiclog: "no fsync" = `flush.messages` `i64::MAX`, durable = the default config (every
//! append fsynced before it returns). Appends go to a bare `Partition` in the scratch
//! directory; timing ends once it is dropped (its `Drop` writes the buffered tail, no fsync).
//! The logs the read rows use are written through a `Store` (topic `t`, one partition) and
//! closed, so a consumer process can open them; the in-process reader opens the partition
//! directory `t-0` with `Partition::open`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use topiclog::config::{LogConfig, TopicConfig};
use topiclog::{Partition, Record, Store};

use super::records::{Pool, Rec};
use super::{Append, Layout, Peer, Policy, Tally};

/// The topic of the stores the read rows and the follower rows use.
pub const TOPIC: &str = "t";

pub fn config(policy: Policy) -> LogConfig {
    match policy {
        Policy::NoFsync => LogConfig::builder()
            .flush_messages(i64::MAX)
            .build()
            .expect("valid config"),
        Policy::Durable => LogConfig::default(),
    }
}

/// A store at `dir` with topic [`TOPIC`] of one partition under `policy`, and that partition.
pub fn open_store(dir: &Path, policy: Policy) -> (Store, Arc<Partition>) {
    let store = Store::open(dir).expect("open the store");
    let topic = store
        .create_topic(TOPIC, TopicConfig::new(1).with_log(config(policy)))
        .expect("create the topic");
    let partition = topic.partition(0).expect("partition 0");
    (store, partition)
}

/// The partition directory of a store written by [`open_store`].
pub fn partition_dir(store_dir: &Path) -> PathBuf {
    store_dir.join(format!("{TOPIC}-0"))
}

pub struct Tlog;

pub struct TlogLog {
    partition: Option<Arc<Partition>>,
}

impl TlogLog {
    pub fn new(partition: Arc<Partition>) -> TlogLog {
        TlogLog {
            partition: Some(partition),
        }
    }
}

pub struct TlogWriter<'a> {
    slot: &'a mut Option<Arc<Partition>>,
}

impl TlogWriter<'_> {
    fn partition(&self) -> &Partition {
        self.slot.as_deref().expect("not handed off")
    }
}

impl Append for TlogWriter<'_> {
    fn append(&mut self, rec: &Rec<'_>) {
        self.partition().append(rec.topiclog()).expect("append");
    }

    fn append_batch(&mut self, recs: &[Rec<'_>]) {
        // Building the `Record`s is a copy of 1000 small structs: about a nanosecond a record.
        let records: Vec<Record<'_>> = recs.iter().map(Rec::topiclog).collect();
        self.partition()
            .append_batch(&records)
            .expect("append_batch");
    }

    fn hand_off(&mut self) {
        // A bare partition's `Drop` writes its buffered tail (no fsync); a store's partition
        // lives on in its topic.
        self.slot.take();
    }
}

pub struct TlogReader {
    partition: Partition,
}

fn touch(tally: &mut Tally, value: Option<&[u8]>) {
    tally.add(value.expect("a value"));
}

/// [`Peer::scan`] with `Reader::next_view`, one call per record.
pub fn scan_views(reader: &mut TlogReader) -> Tally {
    let mut tally = Tally::default();
    let mut records = reader.partition.read(0).expect("read");
    while let Some(record) = records.next_view() {
        touch(&mut tally, record.expect("record").value());
    }
    tally
}

impl Peer for Tlog {
    const NAME: &'static str = "topiclog";
    type Log = TlogLog;
    type Writer<'a> = TlogWriter<'a>;
    type Reader = TlogReader;

    fn create(dir: &Path, policy: Policy) -> TlogLog {
        TlogLog::new(Arc::new(
            Partition::open(dir, config(policy)).expect("open the partition"),
        ))
    }

    fn writer(log: &mut TlogLog) -> TlogWriter<'_> {
        TlogWriter {
            slot: &mut log.partition,
        }
    }

    fn data_bytes(dir: &Path) -> u64 {
        super::log_file_bytes(dir)
    }

    fn write_log(dir: &Path, pool: &Pool, layout: Layout, records: u64) -> u64 {
        let (store, partition) = open_store(dir, Policy::NoFsync);
        let mut log = TlogLog::new(partition);
        super::append_layout(&mut Tlog::writer(&mut log), pool, layout, records);
        store.close().expect("close the store");
        super::log_file_bytes(&partition_dir(dir))
    }

    fn open_reader(dir: &Path, _keyed: bool, _random: bool) -> TlogReader {
        TlogReader {
            partition: Partition::open(partition_dir(dir), config(Policy::NoFsync))
                .expect("open the partition"),
        }
    }

    fn scan(reader: &mut TlogReader) -> Tally {
        // Borrowed records, as commitlog's `MessageBuf` and the raw loop hand out, through the
        // reader's own loop (`try_for_each_view`); `scan_views` takes them one call at a time.
        let mut tally = Tally::default();
        let flow = reader
            .partition
            .read(0)
            .expect("read")
            .try_for_each_view(|record| {
                touch(&mut tally, record.value());
                ControlFlow::<()>::Continue(())
            })
            .expect("records");
        assert!(flow.is_continue());
        tally
    }

    fn read_one(reader: &mut TlogReader, offset: u64) -> usize {
        let record = reader
            .partition
            .read(offset as i64)
            .expect("read")
            .next()
            .expect("a record")
            .expect("record");
        assert_eq!(record.offset(), offset as i64);
        record.value().expect("a value").len()
    }

    fn append_threads(dir: &Path, pool: &Pool, threads: u64, per_thread: u64) -> Duration {
        let partition = Partition::open(dir, config(Policy::NoFsync)).expect("open");
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let partition = &partition;
                scope.spawn(move || {
                    for i in 0..per_thread {
                        let rec = pool.get(t * per_thread + i);
                        partition.append(rec.topiclog()).expect("append");
                    }
                });
            }
        });
        drop(partition);
        start.elapsed()
    }
}
