//! The raw loop: one append-only file of `[u32 length][u32 CRC-32C][payload]` frames behind a
//! 256 KiB `BufWriter`; durable = flush the buffer, then `fdatasync`. Reads check every
//! frame's CRC; random reads use an in-memory table of frame positions built when the reader
//! opens (a raw file has no index) and read one frame with one `pread`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::records::{Pool, Rec, value_of};
use super::{Append, Peer, Policy, Tally};

const FRAME_HEADER: usize = 8;
const BUFFER_BYTES: usize = 256 << 10;

fn path(dir: &Path) -> PathBuf {
    dir.join("raw.log")
}

fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER] {
    let mut header = [0; FRAME_HEADER];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&super::crc32c(payload).to_le_bytes());
    header
}

pub struct Raw;

pub struct RawWriter {
    file: BufWriter<File>,
    durable: bool,
    scratch: Vec<u8>,
}

impl RawWriter {
    fn write(&mut self, rec: &Rec<'_>) {
        let payload = rec.payload(&mut self.scratch);
        let header = frame_header(payload);
        self.file.write_all(&header).expect("write");
        self.file.write_all(payload).expect("write");
    }

    fn sync(&mut self) {
        self.file.flush().expect("flush");
        self.file.get_ref().sync_data().expect("fdatasync");
    }
}

impl Append for &mut RawWriter {
    fn append(&mut self, rec: &Rec<'_>) {
        self.write(rec);
        if self.durable {
            self.sync();
        }
    }

    fn append_batch(&mut self, recs: &[Rec<'_>]) {
        for rec in recs {
            self.write(rec);
        }
        if self.durable {
            self.sync();
        }
    }

    fn hand_off(&mut self) {
        self.file.flush().expect("flush");
    }
}

pub struct RawReader {
    file: File,
    keyed: bool,
    /// Frame start positions, then the file length.
    positions: Vec<u64>,
    buf: Vec<u8>,
}

impl Peer for Raw {
    const NAME: &'static str = "raw";
    type Log = RawWriter;
    type Writer<'a> = &'a mut RawWriter;
    type Reader = RawReader;

    fn create(dir: &Path, policy: Policy) -> RawWriter {
        let file = File::create(path(dir)).expect("create");
        RawWriter {
            file: BufWriter::with_capacity(BUFFER_BYTES, file),
            durable: policy == Policy::Durable,
            scratch: Vec::new(),
        }
    }

    fn writer(log: &mut RawWriter) -> &mut RawWriter {
        log
    }

    fn data_bytes(dir: &Path) -> u64 {
        std::fs::metadata(path(dir)).expect("stat").len()
    }

    fn open_reader(dir: &Path, keyed: bool, random: bool) -> RawReader {
        let file = File::open(path(dir)).expect("open");
        let mut reader = RawReader {
            file,
            keyed,
            positions: Vec::new(),
            buf: Vec::new(),
        };
        if random {
            let mut positions = Vec::new();
            reader.walk(|position, _| positions.push(position));
            positions.push(reader.file.metadata().expect("stat").len());
            reader.positions = positions;
        }
        reader
    }

    fn scan(reader: &mut RawReader) -> Tally {
        let keyed = reader.keyed;
        let mut tally = Tally::default();
        reader.walk(|_, payload| tally.add(value_of(payload, keyed).expect("payload")));
        tally
    }

    fn read_one(reader: &mut RawReader, offset: u64) -> usize {
        let start = reader.positions[offset as usize];
        let end = reader.positions[offset as usize + 1];
        reader.buf.resize((end - start) as usize, 0);
        reader
            .file
            .read_exact_at(&mut reader.buf, start)
            .expect("pread");
        let (header, payload) = reader.buf.split_at(FRAME_HEADER);
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        assert_eq!(super::crc32c(payload), crc, "raw frame CRC at {start}");
        value_of(payload, reader.keyed).expect("payload").len()
    }

    fn append_threads(dir: &Path, pool: &Pool, threads: u64, per_thread: u64) -> Duration {
        let writer = Mutex::new(Raw::create(dir, Policy::NoFsync));
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let writer = &writer;
                scope.spawn(move || {
                    let mut scratch = Vec::new();
                    for i in 0..per_thread {
                        let rec = pool.get(t * per_thread + i);
                        // Frame and CRC outside the lock, one write under it.
                        let payload = rec.payload(&mut scratch);
                        let header = frame_header(payload);
                        let mut w = writer.lock().expect("lock");
                        w.file.write_all(&header).expect("write");
                        w.file.write_all(payload).expect("write");
                    }
                });
            }
        });
        writer
            .into_inner()
            .expect("lock")
            .file
            .flush()
            .expect("flush");
        start.elapsed()
    }
}

impl RawReader {
    /// Reads the file from the start in 1 MiB reads, checking each frame's CRC, and calls
    /// `each(position, payload)` for every frame.
    fn walk(&mut self, mut each: impl FnMut(u64, &[u8])) {
        let mut file = &self.file;
        let mut buf = vec![0u8; 1 << 20];
        let (mut filled, mut consumed, mut base) = (0usize, 0usize, 0u64);
        loop {
            // Parse the whole frames in buf[consumed..filled].
            loop {
                let rest = &buf[consumed..filled];
                if rest.len() < FRAME_HEADER {
                    break;
                }
                let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                if rest.len() < FRAME_HEADER + len {
                    if FRAME_HEADER + len > buf.len() {
                        buf.resize(FRAME_HEADER + len, 0);
                    }
                    break;
                }
                let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
                let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
                assert_eq!(super::crc32c(payload), crc, "raw frame CRC");
                each(base + consumed as u64, payload);
                consumed += FRAME_HEADER + len;
            }
            buf.copy_within(consumed..filled, 0);
            base += consumed as u64;
            filled -= consumed;
            consumed = 0;
            let n = file.read(&mut buf[filled..]).expect("read");
            if n == 0 {
                assert_eq!(filled, 0, "raw log ends inside a frame");
                return;
            }
            filled += n;
        }
    }
}
