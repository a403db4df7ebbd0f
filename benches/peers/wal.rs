//! okaywal 0.3, driven as issue 14 says. It has no commit that skips the fsync, so the
//! "no fsync" appends write one chunk per record into one entry left open until the log is
//! finished (that last commit and its `fdatasync` are not timed; at most its 16 KiB write
//! buffer has not reached the file when timing stops), and a batch is one committed entry (an
//! `fdatasync` per batch, whatever the policy). Durable = one committed entry per record.
//! Checkpointing is off (`checkpoint_after_bytes` = `u64::MAX`): a checkpoint hands entries to
//! the application and recycles the file, so the log could not be read back. Sequential reads
//! reopen the log (its recovery path, which hands every entry to the `LogManager`; ours reads
//! each chunk and checks its CRC); random reads are `read_at` of a chunk position collected
//! during that recovery.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okaywal::{
    Configuration, Entry, EntryId, EntryWriter, LogManager, LogPosition, ReadChunkResult,
    SegmentReader, WriteAheadLog,
};

use super::records::{Pool, Rec, value_of};
use super::{Append, Peer, Policy, Tally};

/// okaywal's file header (magic, version, empty version info), entry header (kind, id), entry
/// end, chunk header (kind, length) plus chunk trailer (CRC).
const FILE_HEADER: u64 = 5;
const ENTRY_HEADER: u64 = 9;
const ENTRY_END: u64 = 1;
const CHUNK_FRAME: u64 = 5 + 4;

fn configuration(dir: &Path) -> Configuration {
    Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

/// What recovery found: the records (value bytes included) and, when asked, every chunk's
/// position.
#[derive(Default)]
struct Found {
    tally: Tally,
    positions: Option<Vec<LogPosition>>,
}

/// A `LogManager` that reads every recovered chunk, checks its CRC and counts it.
struct Scanner {
    keyed: bool,
    found: Arc<Mutex<Found>>,
    buf: Vec<u8>,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scanner")
    }
}

impl LogManager for Scanner {
    fn recover(&mut self, entry: &mut Entry<'_>) -> std::io::Result<()> {
        let mut found = self.found.lock().expect("lock");
        loop {
            let mut chunk = match entry.read_chunk()? {
                ReadChunkResult::Chunk(chunk) => chunk,
                ReadChunkResult::EndOfEntry => return Ok(()),
                ReadChunkResult::AbortedEntry => panic!("okaywal: an aborted entry"),
            };
            if let Some(positions) = found.positions.as_mut() {
                positions.push(chunk.log_position());
            }
            self.buf.resize(chunk.bytes_remaining() as usize, 0);
            chunk.read_exact(&mut self.buf)?;
            assert!(chunk.check_crc()?, "okaywal chunk CRC");
            found
                .tally
                .add(value_of(&self.buf, self.keyed).expect("payload"));
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> std::io::Result<()> {
        unreachable!("checkpointing is off")
    }
}

pub struct Wal;

pub struct WalLog {
    wal: WriteAheadLog,
    durable: bool,
}

pub struct WalWriter<'a> {
    wal: &'a WriteAheadLog,
    durable: bool,
    /// The entry left open by "no fsync" appends.
    open: Option<EntryWriter<'a>>,
    scratch: Vec<u8>,
    /// Bytes of log data written, counted from okaywal's format (its files are preallocated,
    /// so their lengths do not say).
    written: u64,
}

impl Append for WalWriter<'_> {
    fn append(&mut self, rec: &Rec<'_>) {
        let payload = rec.payload(&mut self.scratch);
        self.written += CHUNK_FRAME + payload.len() as u64;
        if self.durable {
            let mut entry = self.wal.begin_entry().expect("begin_entry");
            entry.write_chunk(payload).expect("write_chunk");
            entry.commit().expect("commit");
            self.written += ENTRY_HEADER + ENTRY_END;
        } else {
            let entry = match &mut self.open {
                Some(entry) => entry,
                None => {
                    self.written += ENTRY_HEADER;
                    self.open
                        .insert(self.wal.begin_entry().expect("begin_entry"))
                }
            };
            entry.write_chunk(payload).expect("write_chunk");
        }
    }

    fn append_batch(&mut self, recs: &[Rec<'_>]) {
        let mut entry = self.wal.begin_entry().expect("begin_entry");
        for rec in recs {
            let payload = rec.payload(&mut self.scratch);
            self.written += CHUNK_FRAME + payload.len() as u64;
            entry.write_chunk(payload).expect("write_chunk");
        }
        entry.commit().expect("commit");
        self.written += ENTRY_HEADER + ENTRY_END;
    }

    fn hand_off(&mut self) {
        // Nothing short of a commit (an fdatasync) ends the open entry.
    }

    fn written(&self) -> Option<u64> {
        Some(self.written)
    }

    fn finish(self) {
        if let Some(entry) = self.open {
            entry.commit().expect("commit");
        }
    }
}

pub struct WalReader {
    dir: std::path::PathBuf,
    keyed: bool,
    /// The log reopened with chunk positions collected, for random reads.
    random: Option<(WriteAheadLog, Vec<LogPosition>)>,
    buf: Vec<u8>,
}

/// Reopens the log at `dir` (recovery reads every chunk); returns it and what it found.
fn recover(dir: &Path, keyed: bool, positions: bool) -> (WriteAheadLog, Found) {
    let found = Arc::new(Mutex::new(Found {
        tally: Tally::default(),
        positions: positions.then(Vec::new),
    }));
    let scanner = Scanner {
        keyed,
        found: Arc::clone(&found),
        buf: Vec::new(),
    };
    let wal = configuration(dir).open(scanner).expect("recover");
    let found = std::mem::take(&mut *found.lock().expect("lock"));
    (wal, found)
}

impl Peer for Wal {
    const NAME: &'static str = "okaywal";
    type Log = WalLog;
    type Writer<'a> = WalWriter<'a>;
    type Reader = WalReader;

    fn create(dir: &Path, policy: Policy) -> WalLog {
        WalLog {
            wal: configuration(dir).open(okaywal::LogVoid).expect("open"),
            durable: policy == Policy::Durable,
        }
    }

    fn writer(log: &mut WalLog) -> WalWriter<'_> {
        WalWriter {
            wal: &log.wal,
            durable: log.durable,
            open: None,
            scratch: Vec::new(),
            written: FILE_HEADER,
        }
    }

    fn data_bytes(_dir: &Path) -> u64 {
        unreachable!("okaywal's writer counts its bytes (`Append::written`)")
    }

    fn open_reader(dir: &Path, keyed: bool, random: bool) -> WalReader {
        let random = random.then(|| {
            let (wal, found) = recover(dir, keyed, true);
            (wal, found.positions.expect("collected"))
        });
        WalReader {
            dir: dir.to_path_buf(),
            keyed,
            random,
            buf: Vec::new(),
        }
    }

    fn scan(reader: &mut WalReader) -> Tally {
        let (wal, found) = recover(&reader.dir, reader.keyed, false);
        drop(wal);
        found.tally
    }

    fn read_one(reader: &mut WalReader, offset: u64) -> usize {
        let (wal, positions) = reader.random.as_ref().expect("opened for random reads");
        let mut chunk = wal.read_at(positions[offset as usize]).expect("read_at");
        reader.buf.resize(chunk.chunk_length() as usize, 0);
        chunk.read_exact(&mut reader.buf).expect("read");
        assert!(chunk.crc_is_valid().expect("crc"), "okaywal chunk CRC");
        value_of(&reader.buf, reader.keyed).expect("payload").len()
    }

    fn append_threads(dir: &Path, pool: &Pool, threads: u64, per_thread: u64) -> Duration {
        let log = Wal::create(dir, Policy::NoFsync);
        // One entry left open, shared behind a mutex: only one entry can be open at a time,
        // and committing one per record would fsync.
        let entry = Mutex::new(log.wal.begin_entry().expect("begin_entry"));
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let entry = &entry;
                scope.spawn(move || {
                    let mut scratch = Vec::new();
                    for i in 0..per_thread {
                        let rec = pool.get(t * per_thread + i);
                        let payload = rec.payload(&mut scratch);
                        entry
                            .lock()
                            .expect("lock")
                            .write_chunk(payload)
                            .expect("write_chunk");
                    }
                });
            }
        });
        let elapsed = start.elapsed();
        entry.into_inner().expect("lock").commit().expect("commit");
        elapsed
    }
}
