//! The format floor: what reading Kafka's RecordBatch v2 costs when the bytes are already in
//! memory, and ([`append_one`]) what writing one-record batches costs at the least. A partition's `.log` segments are read into one buffer (not timed); a scan then
//! checks each batch's CRC-32C (bytes 21 to the batch end), parses the 61-byte header and walks
//! every record's varints (length, attributes, timestamp delta, offset delta, key, value,
//! headers), touching each value's length. A random read checks the CRC of the whole batch
//! holding the record and walks to it; which batch that is, is looked up before timing. Written here from the format, not with topiclog's code: it is a floor to judge
//! topiclog's readers by, not a reader.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use topiclog::config::{Clock, SystemClock};

use super::records::Pool;

use super::Tally;

const HEADER: usize = 61;
/// Where the CRC-covered bytes start (attributes).
const CRC_FROM: usize = 21;

/// Every batch of a partition, in memory.
pub struct Floor {
    /// The partition's `.log` segments, in base-offset order.
    segments: Vec<std::path::PathBuf>,
    bytes: Vec<u8>,
    /// `(base offset, position, size)` per batch.
    batches: Vec<(i64, usize, usize)>,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// An unsigned LEB128 varint at `*at`, zig-zag decoded.
#[inline]
fn varlong(b: &[u8], at: &mut usize) -> i64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        assert!(shift < 70, "varint too long");
    }
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A length field (-1 for null) and the bytes it covers.
#[inline]
fn bytes_field<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = varlong(b, at);
    if len < 0 {
        return None;
    }
    let field = &b[*at..*at + len as usize];
    *at += len as usize;
    Some(field)
}

impl Floor {
    /// Reads every `.log` segment of the partition at `dir` into memory, in base-offset order.
    pub fn load(dir: &Path) -> Floor {
        let mut segments: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let mut bytes = Vec::new();
        for segment in &segments {
            bytes.extend_from_slice(&std::fs::read(segment).expect("read"));
        }
        let mut batches = Vec::new();
        let mut pos = 0;
        while pos + HEADER <= bytes.len() {
            let size = 12 + be_i32(&bytes, pos + 8) as usize;
            batches.push((be_i64(&bytes, pos), pos, size));
            pos += size;
        }
        assert_eq!(pos, bytes.len(), "segments end inside a batch");
        Floor {
            segments,
            bytes,
            batches,
        }
    }

    /// Checks one batch's magic and CRC; returns its records section and record count.
    #[inline]
    fn check(&self, pos: usize, size: usize) -> (&[u8], i32) {
        Self::check_batch(&self.bytes[pos..pos + size])
    }

    /// [`check`](Self::check) of the batch `batch`.
    #[inline]
    fn check_batch(batch: &[u8]) -> (&[u8], i32) {
        assert_eq!(batch[16], 2, "magic");
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        assert_eq!(super::crc32c(&batch[CRC_FROM..]), crc, "batch CRC");
        assert_eq!(be_i32(batch, 21) & 0x07, 0, "uncompressed");
        (&batch[HEADER..], be_i32(batch, 57))
    }

    /// Walks one record at `*at`; returns its offset delta and value.
    #[inline]
    fn record<'a>(records: &'a [u8], at: &mut usize) -> (i64, Option<&'a [u8]>) {
        let len = varlong(records, at) as usize;
        let end = *at + len;
        *at += 1; // attributes
        let _timestamp_delta = varlong(records, at);
        let offset_delta = varlong(records, at);
        let _key = bytes_field(records, at);
        let value = bytes_field(records, at);
        let headers = varlong(records, at);
        for _ in 0..headers {
            let key_len = varlong(records, at);
            *at += key_len as usize;
            let _value = bytes_field(records, at);
        }
        assert_eq!(*at, end, "record length");
        (offset_delta, value)
    }

    /// Reads one byte of every 4 KiB of the bytes and batch table held in memory (not timed),
    /// so a timed walk finds them resident: a host may take back guest memory left idle for
    /// a while (half a minute, on some), and the walk would then time that.
    pub fn touch(&self) {
        let bytes = self.bytes.iter().step_by(4096).fold(0u8, |acc, b| acc ^ b);
        let per_page = 4096 / std::mem::size_of::<(i64, usize, usize)>();
        let batches = self
            .batches
            .iter()
            .step_by(per_page)
            .fold(0, |acc, b| acc ^ b.1);
        std::hint::black_box((bytes, batches));
    }

    /// Every record of every batch.
    pub fn scan(&self) -> Tally {
        let mut tally = Tally::default();
        for &(_, pos, size) in &self.batches {
            Self::walk(self.check(pos, size), &mut tally);
        }
        tally
    }

    /// Every record of a checked batch.
    #[inline]
    fn walk((records, count): (&[u8], i32), tally: &mut Tally) {
        let mut at = 0;
        for _ in 0..count {
            let (_, value) = Self::record(records, &mut at);
            tally.add(value.expect("a value"));
        }
        assert_eq!(at, records.len(), "records fill the batch");
    }

    /// [`scan`](Self::scan) of the segment files through read-only mappings instead of
    /// memory, with the resident set kept flat as topiclog's reader keeps it: pages fault in
    /// as the walk reaches them, and each MiB is let go once passed (`MADV_DONTNEED`).
    /// The mapping and the walk are timed: what bringing the pages into the address space adds
    /// to the format's own cost.
    pub fn scan_mapped(&self) -> Tally {
        const STEP: usize = 1 << 20;
        let mut tally = Tally::default();
        for path in &self.segments {
            let file = File::open(path).expect("open");
            // SAFETY: the benchmark's own closed log, which nothing writes while it is read.
            let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
            let mut released = 0;
            let mut pos = 0;
            while pos + HEADER <= map.len() {
                if pos >= released + STEP {
                    // SAFETY: a read-only file mapping: the pages fault back in from the file if
                    // touched again, with the same bytes.
                    unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            released,
                            pos / 4096 * 4096 - released,
                        )
                    }
                    .expect("let go");
                    released = pos / 4096 * 4096;
                }
                let size = 12 + be_i32(&map, pos + 8) as usize;
                Self::walk(Self::check_batch(&map[pos..pos + size]), &mut tally);
                pos += size;
            }
            assert_eq!(pos, map.len(), "the segment ends inside a batch");
        }
        tally
    }

    /// The batch holding `offset` (found outside the timed region: locating a record is the
    /// index's work, not the format's).
    pub fn locate(&self, offset: u64) -> usize {
        self.batches.partition_point(|b| b.0 <= offset as i64) - 1
    }

    /// The value length of the record at `offset`, in batch `batch` (from [`locate`]):
    /// the whole batch's CRC, then the walk to the record.
    ///
    /// [`locate`]: Floor::locate
    pub fn read_one(&self, batch: usize, offset: u64) -> usize {
        let offset = offset as i64;
        let (base, pos, size) = self.batches[batch];
        let (records, count) = self.check(pos, size);
        let mut at = 0;
        for _ in 0..count {
            let (delta, value) = Self::record(records, &mut at);
            if base + delta == offset {
                return value.expect("a value").len();
            }
        }
        panic!("offset {offset} not in its batch");
    }
}

/// The one-record append floor: one-record batches of `pool`'s plain records (no key, no
/// headers). Per record: a clock read (the batch's timestamps; the records carry none), the
/// value copied into a batch whose other bytes are fixed, its base offset and timestamps set,
/// its CRC-32C, and the write: into a 256 KiB buffer, as the raw loop writes its frames (the
/// file's blocks reserved ahead of each buffer write, as topiclog reserves its segment's),
/// or (durable) one `pwrite` into a file preallocated with synced zeros and one `fdatasync`,
/// so no sync ever commits a size change. No lock, no index, no state: what the format alone
/// costs.
pub struct AppendFloor {
    batch: Vec<u8>,
    value_at: usize,
    value_len: usize,
    sink: Sink,
    appended: u64,
}

enum Sink {
    /// A 256 KiB buffer written at `pos` when full, the file's blocks reserved to `reserved`.
    Buffered {
        file: File,
        buffer: Vec<u8>,
        pos: u64,
        reserved: u64,
    },
    Durable {
        file: File,
        pos: u64,
    },
}

/// The floor's write buffer.
const BUFFER: usize = 256 << 10;

impl Sink {
    /// Writes the buffer out, first reserving the file's blocks as topiclog does (a chunk
    /// twice what is reserved, 64 KiB to 4 MiB, the file's length kept).
    fn write_buffer(&mut self) {
        if let Sink::Buffered {
            file,
            buffer,
            pos,
            reserved,
        } = self
        {
            let end = *pos + buffer.len() as u64;
            if end > *reserved {
                let target = (*reserved + (*reserved).clamp(64 << 10, 4 << 20)).max(end);
                let keep = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                nix::fcntl::fallocate(&*file, keep, *reserved as i64, (target - *reserved) as i64)
                    .expect("reserve");
                *reserved = target;
            }
            file.write_all_at(buffer, *pos).expect("write");
            *pos = end;
            buffer.clear();
        }
    }
}

impl AppendFloor {
    /// A floor writing `dir/floor.log`; `durable`: room for that many records, preallocated
    /// with zeros and synced before anything is timed.
    pub fn create(dir: &Path, pool: &Pool, durable: Option<u64>) -> AppendFloor {
        let value_len = pool.get(0).value.len();
        assert!(pool.get(0).key.is_none(), "the plain shape");
        let varint = |out: &mut Vec<u8>, v: i64| {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            while z >= 0x80 {
                out.push(z as u8 | 0x80);
                z >>= 7;
            }
            out.push(z as u8);
        };
        // The record: attributes, timestamp delta 0, offset delta 0, key -1, value, no headers.
        let mut body = vec![0, 0, 0];
        varint(&mut body, -1);
        varint(&mut body, value_len as i64);
        let value_in_body = body.len();
        body.extend_from_slice(&vec![0; value_len]);
        varint(&mut body, 0);
        let mut batch = vec![0u8; HEADER];
        varint(&mut batch, body.len() as i64);
        let value_at = batch.len() + value_in_body;
        batch.extend_from_slice(&body);
        let size = batch.len();
        batch[8..12].copy_from_slice(&((size - 12) as i32).to_be_bytes());
        batch[16] = 2; // magic; leader epoch, attributes and last offset delta stay 0
        batch[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        batch[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        batch[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        batch[57..61].copy_from_slice(&1i32.to_be_bytes()); // one record

        let path = dir.join("floor.log");
        let sink = match durable {
            None => Sink::Buffered {
                file: File::create(&path).expect("create"),
                buffer: Vec::with_capacity(BUFFER),
                pos: 0,
                reserved: 0,
            },
            Some(records) => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .expect("create");
                let zeros = vec![0u8; 1 << 20];
                let mut left = records * size as u64;
                let mut at = 0;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    file.write_all_at(&zeros[..n], at).expect("preallocate");
                    (at, left) = (at + n as u64, left - n as u64);
                }
                file.sync_all().expect("sync the zeros");
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .expect("sync the directory");
                Sink::Durable { file, pos: 0 }
            }
        };
        AppendFloor {
            batch,
            value_at,
            value_len,
            sink,
            appended: 0,
        }
    }

    /// Appends record `value` as the next one-record batch.
    #[inline]
    pub fn append(&mut self, value: &[u8]) {
        // The clock read as topiclog reads it for its appends.
        let now = SystemClock.now_ms();
        let batch = &mut self.batch;
        batch[..8].copy_from_slice(&(self.appended as i64).to_be_bytes());
        batch[27..35].copy_from_slice(&now.to_be_bytes());
        batch[35..43].copy_from_slice(&now.to_be_bytes());
        batch[self.value_at..self.value_at + self.value_len].copy_from_slice(value);
        let crc = super::crc32c(&batch[CRC_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        match &mut self.sink {
            Sink::Buffered { buffer, .. } => {
                buffer.extend_from_slice(batch);
                if buffer.len() >= BUFFER {
                    self.sink.write_buffer();
                }
            }
            Sink::Durable { file, pos } => {
                file.write_all_at(batch, *pos).expect("write");
                file.sync_data().expect("fdatasync");
                *pos += batch.len() as u64;
            }
        }
        self.appended += 1;
    }

    /// Hands what is buffered to the OS (the end of a timed run).
    pub fn hand_off(&mut self) {
        self.sink.write_buffer();
    }

    /// The bytes of one batch.
    pub fn batch_size(&self) -> usize {
        self.batch.len()
    }

    /// Checks what was written is what topiclog writes for the same records, Kafka's bytes
    /// (the durable file is cut to its data first).
    pub fn finish(self, dir: &Path) {
        let n = self.appended;
        match self.sink {
            Sink::Buffered { file, pos, .. } => file.set_len(pos).expect("release"),
            Sink::Durable { file, pos } => file.set_len(pos).expect("trim"),
        }
        let loaded = Floor::load(dir);
        assert_eq!(loaded.batches.len() as u64, n, "one batch per record");
        assert_eq!(loaded.scan().records, n, "every batch checks and walks");
    }
}

/// [`AppendFloor`]'s one-record appends behind the buffer: (records/s, bytes/s) up to the last
/// byte handed to the OS.
pub fn append_one(dir: &Path, pool: &Pool, n: u64) -> (f64, f64) {
    pool.touch();
    let mut floor = AppendFloor::create(dir, pool, None);
    let start = Instant::now();
    for i in 0..n {
        floor.append(pool.get(i).value);
    }
    floor.hand_off();
    let secs = start.elapsed().as_secs_f64();
    let size = floor.batch_size() as u64;
    floor.finish(dir);
    (n as f64 / secs, (n * size) as f64 / secs)
}

/// [`AppendFloor`]'s durable appends (one `pwrite` and one `fdatasync` each, the file
/// preallocated before timing): records/s.
pub fn append_durable(dir: &Path, pool: &Pool, n: u64) -> f64 {
    pool.touch();
    let mut floor = AppendFloor::create(dir, pool, Some(n));
    let start = Instant::now();
    for i in 0..n {
        floor.append(pool.get(i).value);
    }
    let secs = start.elapsed().as_secs_f64();
    floor.finish(dir);
    n as f64 / secs
}

/// [`AppendFloor`]'s one-record appends behind the buffer, each timed: p99, p99.9 and p99.99
/// in nanoseconds, timed as the peers' are.
pub fn append_latency(dir: &Path, pool: &Pool, n: u64) -> Vec<f64> {
    pool.touch();
    let mut floor = AppendFloor::create(dir, pool, None);
    let mut nanos = Vec::with_capacity(n as usize);
    for i in 0..n {
        let value = pool.get(i).value;
        let start = Instant::now();
        floor.append(value);
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    floor.hand_off();
    floor.finish(dir);
    nanos.sort_unstable();
    [0.99, 0.999, 0.9999]
        .iter()
        .map(|&p| super::report::percentile(&nanos, p))
        .collect()
}
