//! One segment: `<base>.log` with its `.index` and `.timeindex`.
//!
//! A segment's bytes below its published [`size`](Segment::size) are whole, valid batches and
//! never change; the active segment's size grows as the partition appends. Readers take what
//! lies below the published size and nothing else.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub(crate) mod chunk;
pub(crate) mod file_name;
mod index;
mod index_fault;
pub(crate) mod offset_index;
mod scan;
pub(crate) mod time_index;
pub(crate) mod txn_index;
pub(crate) mod verified;
pub(crate) mod walk;

pub(crate) use chunk::{Chunk, warm};
pub(crate) use index::{Entry, Index};
pub use index_fault::IndexFault;
pub(crate) use offset_index::OffsetEntry;
pub(crate) use scan::{
    FoundBatch, IndexBuilder, IndexedBatch, OffsetBounds, ScanOutcome, find_batches,
    offsets_problem, offsets_problem_of, scan, scan_marked,
};
pub(crate) use time_index::TimeEntry;
pub(crate) use time_index::should_append as should_append_time;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

use crate::disk::{self, Disk, File, Mapping, OpenMode};
use crate::error::Result;
use file_name::FileKind;

/// Bytes read per `pread` when a segment cannot be mapped.
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// A segment's two indexes.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub(crate) offsets: Index<OffsetEntry>,
    pub(crate) times: Index<TimeEntry>,
}

/// What is known of a segment's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentState {
    /// Bytes of whole batches.
    pub(crate) size: u64,
    /// The offset after the last batch (the base offset when empty).
    pub(crate) next_offset: i64,
    /// The largest batch max timestamp, or -1.
    pub(crate) max_timestamp: i64,
    /// The last offset of the batch that first reached it.
    pub(crate) offset_of_max_timestamp: i64,
}

/// A new segment's index settings: named, because both are `i32` byte counts that positional
/// arguments would let a caller swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexSizing {
    /// `segment.index.bytes`: each index file is preallocated to this, in whole entries.
    pub(crate) file_bytes: i32,
    /// `index.interval.bytes`: bytes of batches between offset-index entries.
    pub(crate) interval_bytes: i32,
}

/// Whether a segment's files may be written through it: an enum, so call sites say which
/// rather than passing a bare `true` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Opened read-only (a read-only partition beside a writer in another process).
    ReadOnly,
    /// Opened for writing (the partition's writer).
    Writable,
}

impl Access {
    /// What `disk` allows: a read-only disk refuses every write.
    pub(crate) fn of(disk: &dyn Disk) -> Access {
        if disk.is_read_only() {
            Access::ReadOnly
        } else {
            Access::Writable
        }
    }
}

/// One segment of a partition.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    dir: PathBuf,
    disk: Arc<dyn Disk>,
    /// The `.log` handle, held while the segment is active. A sealed segment holds none (a
    /// partition may have tens of thousands of them): it opens its file when it must read,
    /// map or sync it, and a mapping needs no handle once made.
    log: Mutex<Option<File>>,
    access: Access,
    /// The mapping readers use once decided (`None`: reads use pread). Undecided until the
    /// active segment is mapped for growth or a sealed one is first read; set once, so the
    /// readers' hot path reads it without a lock.
    map: OnceLock<Option<Arc<Mapping>>>,
    /// Published bytes: readers may read `[0, size)`.
    size: AtomicU64,
    /// Bytes in the file; `[file_size, size)` still sit in the partition's write buffer.
    file_size: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    offset_of_max_timestamp: AtomicI64,
    sealed: AtomicBool,
    /// Renamed to `*.deleted` by retention; the files go when the last holder drops it.
    deleted: AtomicBool,
    /// A read-only partition listed its segments again after its writer compacted them: this
    /// one was replaced (its files may now hold another segment's bytes, or be gone).
    replaced: AtomicBool,
    /// `None` until first used (sealed segments load lazily).
    indexes: RwLock<Option<Indexes>>,
    index_interval_bytes: i32,
    /// Process-unique: keys this segment's verified batch tables (see [`verified`]).
    id: u64,
    /// Whether a verified batch table was kept for it, to forget at drop.
    tabled: AtomicBool,
}

impl Segment {
    /// Creates the files of a new, empty segment, replacing any left at that base offset.
    /// Index files are preallocated to `segment.index.bytes`, rounded down to whole entries.
    pub(crate) fn create(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        base_offset: i64,
        sizing: IndexSizing,
    ) -> Result<Segment> {
        let index_bytes = u64::try_from(sizing.file_bytes).unwrap_or(0);
        for (kind, entry_size) in [
            (FileKind::Index, OffsetEntry::SIZE),
            (FileKind::TimeIndex, TimeEntry::SIZE),
        ] {
            let path = file_name::file_path(dir, base_offset, kind);
            let file = File::open(&**disk, path, OpenMode::Create)?;
            empty(&file)?;
            file.set_len(index_bytes / entry_size as u64 * entry_size as u64)?;
        }
        let log_path = file_name::file_path(dir, base_offset, FileKind::Log);
        let log = File::open(&**disk, log_path, OpenMode::Create)?;
        empty(&log)?;
        let segment = Segment::empty(
            disk,
            dir,
            base_offset,
            sizing.interval_bytes,
            Access::Writable,
        );
        *segment.log.lock() = Some(log);
        Ok(segment)
    }

    /// An empty segment at `base_offset` whose files may not exist yet: what a read-only
    /// open serves for a partition a writer has not given a segment yet (or whose log restarts
    /// at its log start). Reading it opens no file.
    pub(crate) fn empty(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: i32,
        access: Access,
    ) -> Segment {
        let state = SegmentState {
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
        };
        let indexes = Indexes {
            offsets: Index::new(),
            times: Index::new(),
        };
        Segment::with_state(
            disk,
            dir,
            base_offset,
            state,
            Some(indexes),
            index_interval_bytes,
            access,
        )
    }

    /// Opens an existing segment whose state is known (from a scan or a clean-shutdown marker).
    pub(crate) fn open(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        base_offset: i64,
        state: SegmentState,
        indexes: Option<Indexes>,
        index_interval_bytes: i32,
        access: Access,
    ) -> Result<Segment> {
        let log_path = file_name::file_path(dir, base_offset, FileKind::Log);
        if disk::file_len(&**disk, &log_path)?.is_none() {
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "segment file missing");
            return Err(crate::error::Error::io(
                crate::error::IoOp::Open,
                log_path,
                missing,
            ));
        }
        Ok(Segment::with_state(
            disk,
            dir,
            base_offset,
            state,
            indexes,
            index_interval_bytes,
            access,
        ))
    }

    fn with_state(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        base_offset: i64,
        state: SegmentState,
        indexes: Option<Indexes>,
        index_interval_bytes: i32,
        access: Access,
    ) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            disk: Arc::clone(disk),
            log: Mutex::new(None),
            access,
            map: OnceLock::new(),
            size: AtomicU64::new(state.size),
            file_size: AtomicU64::new(state.size),
            next_offset: AtomicI64::new(state.next_offset),
            max_timestamp: AtomicI64::new(state.max_timestamp),
            offset_of_max_timestamp: AtomicI64::new(state.offset_of_max_timestamp),
            sealed: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            indexes: RwLock::new(indexes),
            index_interval_bytes,
            id: verified::next_segment_id(),
            tabled: AtomicBool::new(false),
        }
    }

    /// The verified table of the batch at `position`, if one was kept.
    pub(crate) fn batch_table(&self, position: u64) -> Option<Arc<verified::BatchTable>> {
        if !self.tabled.load(Ordering::Relaxed) {
            return None;
        }
        verified::get(self.id, position)
    }

    /// Keeps the table of the batch at `position`, checked whole.
    pub(crate) fn keep_batch_table(&self, position: u64, table: Arc<verified::BatchTable>) {
        self.tabled.store(true, Ordering::Relaxed);
        verified::insert(self.id, position, table);
    }

    /// The segment's base offset.
    #[inline]
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Path of one of the segment's files (with `.deleted` once retention removed it).
    pub(crate) fn path(&self, kind: FileKind) -> PathBuf {
        let path = file_name::file_path(&self.dir, self.base_offset, kind);
        if self.deleted.load(Ordering::Acquire) {
            let mut name = path.into_os_string();
            name.push(".deleted");
            PathBuf::from(name)
        } else {
            path
        }
    }

    /// Takes the segment out of the log: renames its files to `*.deleted` (so a restart
    /// removes them), and removes them when the last holder of the segment, such as a reader
    /// still inside it, drops it. Open handles and mappings keep reading meanwhile.
    pub(crate) fn mark_deleted(&self) -> Result<()> {
        // Under the handle lock: `log()` must not open by a name that is being renamed.
        let _held = self.log.lock();
        if self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        for kind in file_name::SEGMENT_FILES {
            let from = file_name::file_path(&self.dir, self.base_offset, kind);
            let mut to = from.clone().into_os_string();
            to.push(".deleted");
            if disk::file_len(&*self.disk, &from)?.is_some() {
                disk::rename(&*self.disk, &from, &PathBuf::from(to))?;
            }
        }
        self.deleted.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the segment was taken out of the log (retention, or replaced by compaction).
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks a read-only partition's segment as replaced by a new listing: sealed (it grows
    /// no more), and readers inside it go on in what replaced it.
    pub(crate) fn mark_replaced(&self) {
        self.replaced.store(true, Ordering::Release);
        self.seal();
    }

    /// Whether [`mark_replaced`](Self::mark_replaced) or compaction took it out of the log.
    pub(crate) fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire) || self.is_deleted()
    }

    /// A handle on the `.log` file: the held one while the segment is active, a new one
    /// otherwise (dropped by the caller when done).
    pub(crate) fn log(&self) -> Result<File> {
        let mut held = self.log.lock();
        if let Some(file) = held.as_ref() {
            return Ok(file.clone());
        }
        let mode = match self.access {
            Access::Writable => OpenMode::Write,
            Access::ReadOnly => OpenMode::Read,
        };
        let file = File::open(&*self.disk, self.path(FileKind::Log), mode)?;
        if !self.is_sealed() {
            *held = Some(file.clone());
        }
        Ok(file)
    }

    /// Published bytes.
    #[inline]
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Bytes that have reached the file.
    #[inline]
    pub(crate) fn file_size(&self) -> u64 {
        self.file_size.load(Ordering::Acquire)
    }

    pub(crate) fn set_file_size(&self, size: u64) {
        self.file_size.store(size, Ordering::Release);
    }

    /// The offset after the last published batch.
    #[inline]
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// The segment's state as published.
    pub(crate) fn state(&self) -> SegmentState {
        SegmentState {
            size: self.size(),
            next_offset: self.next_offset(),
            max_timestamp: self.max_timestamp.load(Ordering::Acquire),
            offset_of_max_timestamp: self.offset_of_max_timestamp.load(Ordering::Acquire),
        }
    }

    /// The largest timestamp in the segment, or -1.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Makes a batch visible to readers: the segment now holds `state.size` bytes, ending
    /// before `state.next_offset`. The max timestamp (with its offset) is taken only if it
    /// is larger than the one published. Takes a [`SegmentState`] because its three offsets
    /// and timestamps are all `i64`s that positional arguments would let a caller swap.
    pub(crate) fn publish(&self, state: SegmentState) {
        if state.max_timestamp > self.max_timestamp.load(Ordering::Relaxed) {
            self.offset_of_max_timestamp
                .store(state.offset_of_max_timestamp, Ordering::Release);
            self.max_timestamp
                .store(state.max_timestamp, Ordering::Release);
        }
        self.next_offset.store(state.next_offset, Ordering::Release);
        self.size.store(state.size, Ordering::Release);
    }

    #[inline]
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Makes the segment's data and index files durable, opening each file only for its
    /// fsync (a partition may have thousands of sealed segments to sync).
    pub(crate) fn sync_files(&self) -> Result<()> {
        self.log()?.sync_data()?;
        for kind in [FileKind::Index, FileKind::TimeIndex, FileKind::TxnIndex] {
            if let Some(path) = Some(self.path(kind))
                .filter(|p| disk::file_len(&*self.disk, p).ok().flatten().is_some())
            {
                File::open(&*self.disk, path, OpenMode::Write)?.sync_data()?;
            }
        }
        Ok(())
    }

    /// Marks the segment as no longer written to. Its size is final, and it lets go of its
    /// file handle.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
        *self.log.lock() = None;
    }

    /// Whether the segment's files may be written through this handle.
    pub(crate) fn is_writable(&self) -> bool {
        self.access == Access::Writable
    }

    /// Maps the active segment with room to grow to `capacity` bytes, where the disk allows a
    /// mapping past the end of a file. Reads then need no system call.
    pub(crate) fn map_for_growth(&self, capacity: u64) {
        // Set once: an appender made again for the same segment keeps the first mapping
        // rather than map the file again only to drop it.
        if self.map.get().is_some() {
            return;
        }
        let Ok(log) = self.log() else { return };
        if !log.can_map_past_end() {
            return;
        }
        let len = capacity.max(self.size());
        if let Ok(Some(map)) = log.map(len) {
            // Decided meanwhile by another caller: theirs stands (reads past its length use
            // pread), and this one is unmapped.
            let _ = self.map.set(Some(Arc::new(map)));
        }
    }

    /// The mapping readers use, mapping a sealed segment on first use. `None`: read with pread.
    fn mapping(&self) -> Option<Arc<Mapping>> {
        if let Some(decided) = self.map.get() {
            return decided.clone();
        }
        if !self.is_sealed() {
            return None;
        }
        self.map
            .get_or_init(|| {
                // A file shorter than the segment's size (cut behind our back) is never
                // mapped: touching the missing pages would kill the process with SIGBUS. Reads
                // of it go through pread, which reports the short file as an error instead.
                // Mapping is an optimisation: without it, reads use pread.
                let log = self.log().ok()?;
                if log.len().ok()? < self.size() {
                    return None;
                }
                log.map(self.size()).ok().flatten().map(Arc::new)
            })
            .clone()
    }

    /// Bytes `range` from the file (ending at most at `file_size`), at least `min_len` of them
    /// if the range holds that many: the mapping's if there is one, else up to a chunk read
    /// with pread.
    pub(crate) fn read_file(&self, range: std::ops::Range<u64>, min_len: usize) -> Result<Chunk> {
        self.read_file_with(None, range, min_len)
    }

    /// [`read_file`](Segment::read_file) through `held`, a handle the caller keeps open on this
    /// segment's `.log` (a read-only reader keeps one, so a file another process deletes under
    /// it still reads to its end).
    pub(crate) fn read_file_with(
        &self,
        held: Option<&File>,
        range: std::ops::Range<u64>,
        min_len: usize,
    ) -> Result<Chunk> {
        let std::ops::Range { start: pos, end } = range;
        let available = end.saturating_sub(pos);
        if let Some(map) = self.mapping()
            && let Some(chunk) = usize::try_from(available)
                .ok()
                .and_then(|len| Chunk::mapped(map, pos, len))
        {
            return Ok(chunk);
        }
        let len = (READ_CHUNK.max(min_len) as u64).min(available) as usize;
        let mut buf = vec![0u8; len];
        let n = match held {
            Some(log) => log.read_at(&mut buf, pos)?,
            None => self.log()?.read_at(&mut buf, pos)?,
        };
        buf.truncate(n);
        Ok(Chunk::owned(buf, pos))
    }

    /// Runs `f` on the indexes, loading them first if needed.
    pub(crate) fn with_indexes<R>(&self, f: impl FnOnce(&Indexes) -> R) -> Result<R> {
        {
            let guard = self.indexes.read();
            if let Some(ix) = guard.as_ref() {
                return Ok(f(ix));
            }
        }
        let mut guard = self.indexes.write();
        if guard.is_none() {
            *guard = Some(self.load_indexes()?);
        }
        match guard.as_ref() {
            Some(ix) => Ok(f(ix)),
            None => unreachable_indexes(),
        }
    }

    /// Runs `f` on the indexes for writing (the active segment's are always in memory).
    pub(crate) fn with_indexes_mut<R>(&self, f: impl FnOnce(&mut Indexes) -> R) -> Result<R> {
        let mut guard = self.indexes.write();
        if guard.is_none() {
            *guard = Some(self.load_indexes()?);
        }
        match guard.as_mut() {
            Some(ix) => Ok(f(ix)),
            None => unreachable_indexes(),
        }
    }

    /// Replaces the indexes with ones rebuilt from the log, and writes them out.
    pub(crate) fn rebuild_indexes(&self) -> Result<()> {
        let rebuilt = self.rebuild()?;
        *self.indexes.write() = Some(rebuilt);
        Ok(())
    }

    /// Byte position to scan from for `offset` (0 if no index entry is at or below it).
    pub(crate) fn position_for(&self, offset: i64) -> Result<u64> {
        Ok(self.seek_for(offset)?.position)
    }

    /// Where a read of `offset` starts (see [`offset_index::Seek`]): from the start when the
    /// index points at or past the published end.
    pub(crate) fn seek_for(&self, offset: i64) -> Result<offset_index::Seek> {
        let (size, next_offset) = (self.size(), self.next_offset());
        let seek = self.with_indexes(|ix| {
            offset_index::seek(&ix.offsets, self.base_offset, offset, (size, next_offset))
        })?;
        Ok(if seek.position < size {
            seek
        } else {
            offset_index::Seek::from_start(self.base_offset)
        })
    }

    /// Offset to start a search for `timestamp` from (the time index's largest entry <= it).
    pub(crate) fn offset_for_time_lookup(&self, timestamp: i64) -> Result<i64> {
        self.with_indexes(|ix| time_index::lookup(&ix.times, self.base_offset, timestamp))
    }

    /// Loads both index files and checks them; rebuilds both from the log if either fails.
    fn load_indexes(&self) -> Result<Indexes> {
        let state = self.state();
        let offsets = self
            .load_index::<OffsetEntry>(FileKind::Index)
            .filter(|ix| {
                offset_index::validate(ix, self.base_offset..state.next_offset, state.size).is_ok()
            });
        let times = self
            .load_index::<TimeEntry>(FileKind::TimeIndex)
            .filter(|ix| time_index::validate(ix, self.base_offset..state.next_offset).is_ok());
        match (offsets, times) {
            (Some(offsets), Some(times)) => Ok(Indexes { offsets, times }),
            _ => self.rebuild(),
        }
    }

    /// An index file's entries, or `None` if it is missing, unreadable or of a length that is
    /// not a whole number of entries.
    fn load_index<E: Entry>(&self, kind: FileKind) -> Option<Index<E>> {
        let file = File::open(self.log_disk(), self.path(kind), OpenMode::Read).ok()?;
        let len = file.len().ok()?;
        if len % E::SIZE as u64 != 0 {
            return None;
        }
        if len == 0 {
            return Some(Index::new());
        }
        match file.map(len) {
            Ok(Some(map)) => Some(Index::mapped(Arc::new(map), len as usize)),
            _ => file.read_all().ok().map(Index::from_vec),
        }
    }

    fn log_disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// The partition directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The disk the segment's files live on.
    pub(crate) fn disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// Scans the published bytes and writes fresh index files (temp file, then rename), trimmed
    /// to their entries. Failing to write them is not an error: they are rebuilt again later.
    fn rebuild(&self) -> Result<Indexes> {
        let size = self.size();
        let map = self.mapping();
        let log = self.log()?;
        let outcome = scan(
            &log,
            map.as_deref(),
            self.base_offset,
            0..size,
            self.index_interval_bytes,
        )?;
        let indexes = outcome.indexes;
        if self.is_sealed() {
            let _ = self.write_index_files(&indexes);
        }
        Ok(indexes)
    }

    /// Writes both index files whole, trimmed to their entries, through a temp file and rename.
    pub(crate) fn write_index_files(&self, indexes: &Indexes) -> Result<()> {
        let disk = self.log_disk();
        disk::write_atomic_unsynced(
            disk,
            &self.path(FileKind::Index),
            indexes.offsets.as_bytes(),
        )?;
        disk::write_atomic_unsynced(
            disk,
            &self.path(FileKind::TimeIndex),
            indexes.times.as_bytes(),
        )
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.tabled.load(Ordering::Relaxed) {
            verified::forget_segment(self.id);
        }
        if self.deleted.load(Ordering::Acquire) {
            for kind in file_name::SEGMENT_FILES {
                // Best effort: a file left behind is removed by the next open's sweep.
                let _ = disk::remove_file(&*self.disk, &self.path(kind));
            }
        }
    }
}

/// Empties a file left at a new segment's name. A file that is already empty is not truncated:
/// on ext4 a truncation to zero makes the file's last close write all its data out.
fn empty(file: &File) -> Result<()> {
    if file.len()? > 0 {
        file.set_len(0)?;
    }
    Ok(())
}

#[cold]
fn unreachable_indexes<R>() -> Result<R> {
    // with_indexes sets the Option to Some under the same write guard before reading it.
    Err(crate::error::Error::Internal(
        "segment indexes vanished while locked",
    ))
}
