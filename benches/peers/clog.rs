//! commitlog 0.2, driven as issue 14 says: `append_msg` per record (one `write(2)` each),
//! `append` of one reused `MessageBuf` per batch; durable = its `flush` (which syncs the index
//! mapping; its segment `flush` is a no-op) plus an `fdatasync` of every segment file that grew
//! since the last one; sequential reads by `read(offset, 1 MiB limit)` (a `pread` and a CRC
//! check per message); a random read is `read(offset, limit)` with a limit of one message plus
//! a byte (a smaller one is refused at a segment's last message).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};

use super::records::{Pool, Rec, value_of};
use super::{Append, Peer, Policy, Tally};

/// commitlog's per-message header: offset, size, CRC, reserved, metadata size.
const MESSAGE_HEADER: usize = 20;

pub struct Clog;

pub struct ClogLog {
    log: CommitLog,
    dir: PathBuf,
    durable: bool,
    buf: MessageBuf,
    scratch: Vec<u8>,
    /// Segment files and their lengths at the last `fdatasync`.
    synced: HashMap<PathBuf, (File, u64)>,
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

impl ClogLog {
    /// commitlog's `flush`, then an `fdatasync` of each segment that grew.
    fn sync(&mut self) {
        self.log.flush().expect("flush");
        for path in segments(&self.dir) {
            let len = std::fs::metadata(&path).expect("stat").len();
            let entry = self
                .synced
                .entry(path)
                .or_insert_with_key(|p| (File::open(p).expect("open"), 0));
            if entry.1 != len {
                entry.0.sync_data().expect("fdatasync");
                entry.1 = len;
            }
        }
    }
}

impl Append for &mut ClogLog {
    fn append(&mut self, rec: &Rec<'_>) {
        self.log
            .append_msg(rec.payload(&mut self.scratch))
            .expect("append_msg");
        if self.durable {
            self.sync();
        }
    }

    fn append_batch(&mut self, recs: &[Rec<'_>]) {
        self.buf.clear();
        for rec in recs {
            self.buf.push(rec.payload(&mut self.scratch)).expect("push");
        }
        self.log.append(&mut self.buf).expect("append");
        if self.durable {
            self.sync();
        }
    }

    fn hand_off(&mut self) {
        // Every append already reached the file with its own write(2).
    }
}

pub struct ClogReader {
    log: CommitLog,
    keyed: bool,
    /// A random read's limit: one message plus a byte.
    one: ReadLimit,
}

fn options(dir: &Path) -> LogOptions {
    LogOptions::new(dir)
}

impl Peer for Clog {
    const NAME: &'static str = "commitlog";
    type Log = ClogLog;
    type Writer<'a> = &'a mut ClogLog;
    type Reader = ClogReader;

    fn create(dir: &Path, policy: Policy) -> ClogLog {
        ClogLog {
            log: CommitLog::new(options(dir)).expect("open"),
            dir: dir.to_path_buf(),
            durable: policy == Policy::Durable,
            buf: MessageBuf::default(),
            scratch: Vec::new(),
            synced: HashMap::new(),
        }
    }

    fn writer(log: &mut ClogLog) -> &mut ClogLog {
        log
    }

    fn data_bytes(dir: &Path) -> u64 {
        segments(dir)
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum()
    }

    fn open_reader(dir: &Path, keyed: bool, _random: bool) -> ClogReader {
        let log = CommitLog::new(options(dir)).expect("open");
        // Every message of a log has the same size here; read the first to learn it.
        let first = log
            .read(0, ReadLimit::max_bytes(1 << 20))
            .expect("read")
            .iter()
            .next()
            .map(|m| m.payload().len())
            .expect("a message");
        ClogReader {
            log,
            keyed,
            one: ReadLimit::max_bytes(MESSAGE_HEADER + first + 1),
        }
    }

    fn scan(reader: &mut ClogReader) -> Tally {
        let mut tally = Tally::default();
        let mut offset = 0;
        loop {
            let buf = reader
                .log
                .read(offset, ReadLimit::max_bytes(1 << 20))
                .expect("read");
            let mut last = None;
            for message in buf.iter() {
                tally.add(value_of(message.payload(), reader.keyed).expect("payload"));
                last = Some(message.offset());
            }
            match last {
                Some(last) => offset = last + 1,
                None => return tally,
            }
        }
    }

    fn read_one(reader: &mut ClogReader, offset: u64) -> usize {
        let buf = reader.log.read(offset, reader.one).expect("read");
        let message = buf.iter().next().expect("a message");
        assert_eq!(message.offset(), offset);
        value_of(message.payload(), reader.keyed)
            .expect("payload")
            .len()
    }

    fn append_threads(dir: &Path, pool: &Pool, threads: u64, per_thread: u64) -> Duration {
        let log = Mutex::new(Clog::create(dir, Policy::NoFsync));
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let log = &log;
                scope.spawn(move || {
                    let mut scratch = Vec::new();
                    for i in 0..per_thread {
                        let rec = pool.get(t * per_thread + i);
                        let payload = rec.payload(&mut scratch);
                        log.lock()
                            .expect("lock")
                            .log
                            .append_msg(payload)
                            .expect("append_msg");
                    }
                });
            }
        });
        start.elapsed()
    }
}
