//! [`FaultDisk`]: an in-memory filesystem behind the I/O seam that fails on request and loses
//! power on request, for durability tests (compiled with the `fault-injection` feature only).
//!
//! The model keeps apart what a process sees from what survives a power loss (redb's
//! `crash_consistency.rs`, TigerBeetle's storage simulator):
//!
//! * Every file has a *live* image, which reads see, and a *durable* image, which survives a
//!   power loss. A write or length change reaches the live image at once and is also queued as
//!   *pending*; [`DiskFile::sync_data`] copies the live image (bytes and length) to the durable
//!   one and empties the queue.
//! * Every directory has a *live* and a *durable* namespace. Creates, renames and removes change
//!   the live namespace at once; [`Disk::sync_dir`] on the directory makes its live namespace
//!   durable. Files are inodes: a rename moves a name, an open handle keeps its file across a
//!   rename or remove (POSIX), and a file lives while a name, durable or live, or a handle
//!   refers to it.
//! * [`FaultDisk::crash`] is a power loss: every namespace reverts to its durable one (unsynced
//!   creates vanish, unsynced renames and removes are undone), and every surviving file to its
//!   durable image plus a seeded random part of its pending changes (see [`CrashMode`]).
//!   [`FaultDisk::kill`] is a process crash: nothing is lost, the page cache survives.
//!   After either, handles opened before it belong to the dead process and fail every call.
//! * Faults are armed with [`FaultDisk::inject`] (or [`FaultDisk::fail_after`]): the chosen call
//!   of an operation fails with `ENOSPC` or `EIO`, writes only part of its buffer, or halts the
//!   disk. [`FaultDisk::fail_writes_after_bytes`] models a full disk,
//!   [`FaultDisk::crash_after_bytes`] a machine that dies after so many bytes, and
//!   [`FaultDisk::drop_syncs_of`] a disk that lies about fsync (the canary a crash test must
//!   catch).
//!
//! Everything is deterministic: the same calls and the same seed give the same files. No real
//! file is touched. Paths are normalised (`/a/b`, `a/b` and `a/./b` name the same file; the root
//! always exists and is durable).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{DirEntry, Disk, DiskFile, Mapping, OpenMode};

/// The unit of [`CrashMode::Pages`]: what reaches the disk whole or not at all.
const PAGE_BYTES: u64 = 4096;

/// The largest file a [`FaultDisk`] holds (1 GiB): a longer write or length is refused with
/// [`io::ErrorKind::FileTooLarge`] rather than exhausting memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// An operation a fault can aim at; [`FaultDisk::ops`] counts calls of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultOp {
    /// `write_at` on a file (`pwrite`).
    Write,
    /// `sync_data` on a file (`fdatasync`).
    Sync,
    /// `set_len` on a file (`ftruncate`).
    SetLen,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// Syncing a directory's entries.
    SyncDir,
    /// Opening or creating a file.
    Open,
    /// Setting a file's modification time (`futimens`).
    SetTimes,
    /// Any of the operations above.
    Any,
}

impl FaultOp {
    fn counter(self) -> usize {
        match self {
            FaultOp::Write => 0,
            FaultOp::Sync => 1,
            FaultOp::SetLen => 2,
            FaultOp::Rename => 3,
            FaultOp::Remove => 4,
            FaultOp::SyncDir => 5,
            FaultOp::Open => 6,
            FaultOp::SetTimes => 7,
            FaultOp::Any => 8,
        }
    }

    fn matches(self, op: FaultOp) -> bool {
        self == FaultOp::Any || self == op
    }
}

impl fmt::Display for FaultOp {
    /// The system call's name: `write`, `fdatasync`, ... (`any` for [`FaultOp::Any`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultOp::Write => "write",
            FaultOp::Sync => "fdatasync",
            FaultOp::SetLen => "ftruncate",
            FaultOp::Rename => "rename",
            FaultOp::Remove => "unlink",
            FaultOp::SyncDir => "directory fsync",
            FaultOp::Open => "open",
            FaultOp::SetTimes => "futimens",
            FaultOp::Any => "any",
        })
    }
}

/// What an injected fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The call fails with `ENOSPC` ([`io::ErrorKind::StorageFull`]) and changes nothing,
    /// except that a failed sync drops the file's dirty pages, as for [`FaultKind::Io`].
    NoSpace,
    /// The call fails with `EIO` ([`io::ErrorKind::Other`]) and changes nothing. A failed sync
    /// does what Linux does after a writeback error: the file's dirty pages are marked clean
    /// without reaching the disk, so reads still see them but no later sync writes them (until
    /// they are written again); a power loss then loses them even after a later sync succeeds.
    Io,
    /// A write writes the first half of its buffer (at least one byte) and returns that count,
    /// as a `pwrite` may; the caller must write the rest. Other operations fail with `EIO`.
    ShortWrite,
    /// The machine dies during the call: a write writes at most this many bytes of its
    /// buffer, any other operation does nothing; then the disk halts. This and every later call
    /// fail with `EIO` until [`FaultDisk::crash`] (or [`FaultDisk::kill`]) starts the next life.
    CrashAfterBytes(u64),
}

impl fmt::Display for FaultKind {
    /// `ENOSPC`, `EIO`, `short write` or `crash after N bytes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::NoSpace => f.write_str("ENOSPC"),
            FaultKind::Io => f.write_str("EIO"),
            FaultKind::ShortWrite => f.write_str("short write"),
            FaultKind::CrashAfterBytes(n) => write!(f, "crash after {n} bytes"),
        }
    }
}

/// How [`FaultDisk::crash`] treats each file's changes since its last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CrashMode {
    /// The changes reached the disk in order, up to a random point: a random number of them
    /// whole, then possibly a random prefix of the next write (a torn write).
    Prefix,
    /// Each 4 KiB page the changes touched independently holds its new or its old bytes, so a
    /// later page may survive while an earlier one is lost; the length is the synced length or
    /// any length the file had since. Lost pages inside that length read as their old bytes,
    /// or zeros where the file had none. This is what a power loss may do.
    #[default]
    Pages,
}

impl fmt::Display for CrashMode {
    /// `prefix` or `pages`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrashMode::Prefix => "prefix",
            CrashMode::Pages => "pages",
        })
    }
}

/// A fault to arm with [`FaultDisk::inject`]: which calls it hits and what it does.
///
/// ```
/// use topiclog::testing::{Fault, FaultKind, FaultOp};
///
/// // The third write to any `.index` file fails with ENOSPC, and so does every one after it.
/// let fault = Fault::new(FaultOp::Write, FaultKind::NoSpace)
///     .after(2)
///     .on_path_ending(".index")
///     .sticky();
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    op: FaultOp,
    kind: FaultKind,
    skip: u64,
    sticky: bool,
    path_suffix: Option<String>,
}

impl Fault {
    /// A one-shot fault on the next matching call of `op`.
    pub fn new(op: FaultOp, kind: FaultKind) -> Fault {
        Fault {
            op,
            kind,
            skip: 0,
            sticky: false,
            path_suffix: None,
        }
    }

    /// Lets `calls` matching calls succeed first.
    pub fn after(mut self, calls: u64) -> Fault {
        self.skip = calls;
        self
    }

    /// Keeps failing every matching call from the first one it hits, until
    /// [`FaultDisk::clear_faults`].
    pub fn sticky(mut self) -> Fault {
        self.sticky = true;
        self
    }

    /// Hits only calls on a path that ends with `suffix` (as text): a file's path as it was
    /// opened, a directory's path, either side of a rename.
    pub fn on_path_ending(mut self, suffix: impl Into<String>) -> Fault {
        self.path_suffix = Some(suffix.into());
        self
    }

    fn hits(&self, op: FaultOp, paths: &[&Path]) -> bool {
        self.op.matches(op)
            && self
                .path_suffix
                .as_deref()
                .is_none_or(|suffix| paths.iter().any(|p| p.to_string_lossy().ends_with(suffix)))
    }
}

/// What happens when a byte budget runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exhausted {
    /// A full disk: writes fail with `ENOSPC`.
    NoSpace,
    /// A dead machine: the disk halts.
    Halt,
}

#[derive(Debug, Clone, Copy)]
struct ByteBudget {
    remaining: u64,
    then: Exhausted,
}

/// An in-memory filesystem that separates live from durable state, loses power on
/// [`crash`](FaultDisk::crash) and fails calls on request. See the module documentation of
/// [`testing`](crate::testing) for how tests use it.
///
/// Share it as `Arc<FaultDisk>`: a partition opened on it with
/// [`Partition::open_on_fault_disk`](crate::Partition::open_on_fault_disk) keeps one clone and
/// the test another, to arm faults and to crash.
///
/// ```
/// use std::sync::Arc;
/// use topiclog::record::Record;
/// use topiclog::testing::FaultDisk;
/// use topiclog::Partition;
/// use topiclog::config::LogConfig;
///
/// let disk = Arc::new(FaultDisk::new());
/// let config = LogConfig::builder().segment_index_bytes(4096).build()?;
/// let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p0", config.clone())?;
/// log.append(Record::new(b"kept"))?;
/// log.flush()?;
/// log.append(Record::new(b"maybe lost"))?;
/// disk.crash(7); // power loss: only what flush made durable is sure to survive
/// drop(log); // the dead process's handles fail; its drop writes nothing
///
/// let log = Partition::open_on_fault_disk(Arc::clone(&disk), "/p0", config)?;
/// let first = log.read(0)?.next().expect("a record")?;
/// assert_eq!(first.value(), Some(&b"kept"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FaultDisk {
    shared: Arc<Mutex<State>>,
}

impl FaultDisk {
    /// An empty disk: only the root directory exists. Crashes use [`CrashMode::Pages`] until
    /// [`set_crash_mode`](FaultDisk::set_crash_mode) says otherwise.
    pub fn new() -> FaultDisk {
        FaultDisk {
            shared: Arc::new(Mutex::new(State::new())),
        }
    }

    /// Arms a fault. Several may be armed; each counts its own matching calls, and the first
    /// armed that hits a call decides it.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Makes the call of `op` after the next `calls` ones fail with `kind`, once
    /// (`fail_after(op, 0, kind)` hits the very next call). Shorthand for
    /// `inject(Fault::new(op, kind).after(calls))`.
    pub fn fail_after(&self, op: FaultOp, calls: u64, kind: FaultKind) {
        self.inject(Fault::new(op, kind).after(calls));
    }

    /// A disk that fills up: once `bytes` more bytes have been written, writes fail with
    /// `ENOSPC`. The write that crosses the limit writes what fits and returns that short
    /// count, as `pwrite` does. Lasts until [`clear_faults`](FaultDisk::clear_faults).
    pub fn fail_writes_after_bytes(&self, bytes: u64) {
        self.shared.lock().budget = Some(ByteBudget {
            remaining: bytes,
            then: Exhausted::NoSpace,
        });
    }

    /// A machine that dies after writing `bytes` more bytes: the write that crosses the limit
    /// writes what fits and fails, and the disk halts (every later call fails with `EIO`) until
    /// [`crash`](FaultDisk::crash) or [`kill`](FaultDisk::kill).
    pub fn crash_after_bytes(&self, bytes: u64) {
        self.shared.lock().budget = Some(ByteBudget {
            remaining: bytes,
            then: Exhausted::Halt,
        });
    }

    /// Disarms every fault and byte limit (not a halt, and not
    /// [`drop_syncs_of`](FaultDisk::drop_syncs_of)).
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.faults.clear();
        state.budget = None;
    }

    /// The canary: from now on `sync_data` on a file whose path ends with `suffix` returns `Ok`
    /// and makes nothing durable, as a disk that ignores flushes does. A crash test that cannot
    /// see the difference cannot see a missing fsync either.
    pub fn drop_syncs_of(&self, suffix: impl Into<String>) {
        self.shared.lock().dropped_syncs.push(suffix.into());
    }

    /// Calls of `op` so far, failed ones included; [`FaultOp::Any`] counts them all. Calls
    /// through handles of a crashed process are not counted.
    pub fn ops(&self, op: FaultOp) -> u64 {
        self.shared.lock().counts[op.counter()]
    }

    /// Bytes written so far (by every write, all files together).
    pub fn bytes_written(&self) -> u64 {
        self.shared.lock().bytes_written
    }

    /// Whether a [`FaultKind::CrashAfterBytes`] fault or [`crash_after_bytes`] halted the disk.
    ///
    /// [`crash_after_bytes`]: FaultDisk::crash_after_bytes
    pub fn is_halted(&self) -> bool {
        self.shared.lock().halted
    }

    /// Chooses how [`crash`](FaultDisk::crash) treats unsynced changes.
    pub fn set_crash_mode(&self, mode: CrashMode) {
        self.shared.lock().crash_mode = mode;
    }

    /// A power loss, in the mode [`set_crash_mode`](FaultDisk::set_crash_mode) chose: see
    /// [`crash_with`](FaultDisk::crash_with).
    pub fn crash(&self, seed: u64) {
        let mode = self.shared.lock().crash_mode;
        self.crash_with(seed, mode);
    }

    /// A power loss. Each directory's namespace reverts to its durable one (unsynced creates
    /// vanish, unsynced renames and removes are undone; a directory whose own entry was never
    /// synced vanishes with its contents). Each file that still has a name becomes its durable
    /// image plus what `mode` and `seed` let through of its unsynced changes, and that is now
    /// both its live and durable image. Handles opened before fail every call from now on. A
    /// halt is lifted; armed faults stay armed.
    ///
    /// Calls on the disk itself (open, rename, remove) carry no life: drop the crashed
    /// process's partition before opening the next one on this disk.
    pub fn crash_with(&self, seed: u64, mode: CrashMode) {
        self.shared.lock().crash(seed, mode);
    }

    /// A process crash (SIGKILL): the files keep their live images (the operating system's
    /// cache survives) and nothing is lost but the dead process's handles, which fail every
    /// call from now on. A halt is lifted.
    pub fn kill(&self) {
        let mut state = self.shared.lock();
        state.new_life();
        state.collect_all();
    }

    /// Sets the logical clock that stamps modifications (each one advances it by 1 ms); it
    /// starts at 0. A file's modification time (which retention reads for segments without
    /// timestamps) is the stamp of its last change.
    pub fn set_clock_ms(&self, now_ms: i64) {
        self.shared.lock().clock_ms = now_ms;
    }

    /// The live contents of the file at `path` (what a read sees now).
    ///
    /// # Errors
    /// `NotFound` when there is no such file.
    pub fn read_file(&self, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        let state = self.shared.lock();
        let id = state.file_id(path.as_ref())?;
        Ok(state.inode(id)?.live.clone())
    }

    /// The names in the directory at `path` (live), sorted.
    ///
    /// # Errors
    /// `NotFound` when there is no such directory.
    pub fn file_names(&self, path: impl AsRef<Path>) -> io::Result<Vec<String>> {
        let state = self.shared.lock();
        let dir = state.dir(&normalize(path.as_ref()))?;
        Ok(dir
            .live
            .keys()
            .map(|name| name.to_string_lossy().into_owned())
            .collect())
    }
}

impl Default for FaultDisk {
    fn default() -> FaultDisk {
        FaultDisk::new()
    }
}

impl fmt::Debug for FaultDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("FaultDisk")
            .field("files", &state.inodes.len())
            .field("directories", &state.dirs.len())
            .field("life", &state.life)
            .field("halted", &state.halted)
            .field("armed_faults", &state.faults.len())
            .field("crash_mode", &state.crash_mode)
            .finish_non_exhaustive()
    }
}

/// A directory entry: a file (its inode) or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct Dir {
    live: BTreeMap<OsString, Node>,
    durable: BTreeMap<OsString, Node>,
    modified_ms: i64,
}

/// A change not yet synced.
#[derive(Debug, Clone)]
enum Pending {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    modified_ms: i64,
    /// Open handles of the current life.
    handles: usize,
    /// Pages a failed sync could not write: the cache holds them as clean, so reads see the
    /// new bytes but no later sync writes them (Linux after a writeback error), until a write
    /// dirties them again.
    stale: BTreeSet<u64>,
}

#[derive(Debug)]
struct State {
    /// Every directory that exists, by normalised path; the root is the empty path.
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Incremented by each crash and kill: handles of an earlier life are dead.
    life: u64,
    clock_ms: i64,
    counts: [u64; 9],
    faults: Vec<Fault>,
    budget: Option<ByteBudget>,
    halted: bool,
    dropped_syncs: Vec<String>,
    crash_mode: CrashMode,
    bytes_written: u64,
}

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (injected by FaultDisk)",
    )
}

fn eio() -> io::Error {
    io::Error::other("input/output error (injected by FaultDisk)")
}

fn halted() -> io::Error {
    io::Error::other("input/output error: the disk halted (FaultDisk crash point)")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "file would exceed FaultDisk's 1 GiB limit",
    )
}

/// The path's names, without root, `.` or `..` (which drops the name before it).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(p) => out.push(p.as_os_str()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// The normalised parent directory and the name of `path`.
fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let key = normalize(path);
    match (key.parent(), key.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_os_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )),
    }
}

/// SplitMix64: small, seedable, good enough to pick crash outcomes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max` (near enough).
    fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next() % n,
            None => self.next(),
        }
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// `bytes[pos..pos + data.len()] = data`, growing (zero-filled) as needed.
fn apply_write(bytes: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let (Ok(start), Some(end)) = (
        usize::try_from(pos),
        usize::try_from(pos)
            .ok()
            .and_then(|p| p.checked_add(data.len())),
    ) else {
        return; // refused before it was queued
    };
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    if let Some(target) = bytes.get_mut(start..end) {
        target.copy_from_slice(data);
    }
}

fn apply_len(bytes: &mut Vec<u8>, len: u64) {
    if let Ok(len) = usize::try_from(len) {
        bytes.resize(len, 0);
    }
}

impl Inode {
    /// Replays the pending changes over the durable length: every length the file had (the
    /// durable one first) and the pages the changes touched.
    fn replay(&self) -> (Vec<u64>, BTreeSet<u64>) {
        let mut len = self.durable.len() as u64;
        let mut lengths = vec![len];
        let mut touched = BTreeSet::new();
        for change in &self.pending {
            match change {
                Pending::Write { pos, data } => {
                    if let Some(last) = data.len().checked_sub(1) {
                        let end = pos.saturating_add(last as u64);
                        touched.extend(pos / PAGE_BYTES..=end / PAGE_BYTES);
                        len = len.max(end.saturating_add(1));
                    }
                }
                Pending::SetLen(new) => {
                    if *new < len {
                        touched.extend(new / PAGE_BYTES..=(len - 1) / PAGE_BYTES);
                    }
                    len = *new;
                }
            }
            lengths.push(len);
        }
        (lengths, touched)
    }

    /// Writes `data` at `pos` in the live image; the pages it covers are dirty again.
    fn write(&mut self, pos: u64, data: &[u8], now: i64) {
        apply_write(&mut self.live, pos, data);
        if let Some(last) = data.len().checked_sub(1) {
            let end = pos.saturating_add(last as u64) / PAGE_BYTES;
            let after = self.stale.split_off(&(pos / PAGE_BYTES));
            self.stale
                .extend(after.into_iter().filter(|&page| page > end));
        }
        self.pending.push(Pending::Write {
            pos,
            data: data.to_vec(),
        });
        self.modified_ms = now;
    }

    /// Sets the live length; the page holding the new end is dirty again (its tail is zeroed).
    fn set_len(&mut self, len: u64, now: i64) {
        apply_len(&mut self.live, len);
        self.stale.split_off(&(len / PAGE_BYTES));
        self.pending.push(Pending::SetLen(len));
        self.modified_ms = now;
    }

    /// A successful sync: the live image becomes durable, except pages a failed sync dropped.
    fn sync(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut durable = self.live.clone();
        for &page in &self.stale {
            let start = page.saturating_mul(PAGE_BYTES);
            let end = start.saturating_add(PAGE_BYTES);
            for i in start..end.min(durable.len() as u64) {
                let Ok(i) = usize::try_from(i) else { break };
                let old = self.durable.get(i).copied().unwrap_or(0);
                if let Some(byte) = durable.get_mut(i) {
                    *byte = old;
                }
            }
        }
        self.durable = durable;
        self.pending.clear();
    }

    /// A failed sync: the kernel gives up on the dirty pages and marks them clean. Reads still
    /// see them; the disk keeps its old bytes and length, and no later sync writes them.
    fn drop_dirty_pages(&mut self) {
        let (_, touched) = self.replay();
        self.stale.extend(touched);
        self.pending.clear();
    }

    /// The image a power loss leaves: the durable one plus some of the pending changes.
    fn after_power_loss(&self, rng: &mut Rng, mode: CrashMode) -> Vec<u8> {
        if self.pending.is_empty() {
            return self.durable.clone();
        }
        match mode {
            CrashMode::Prefix => {
                let mut image = self.durable.clone();
                let whole = usize::try_from(rng.up_to(self.pending.len() as u64)).unwrap_or(0);
                for change in self.pending.iter().take(whole) {
                    match change {
                        Pending::Write { pos, data } => apply_write(&mut image, *pos, data),
                        Pending::SetLen(len) => apply_len(&mut image, *len),
                    }
                }
                if let Some(Pending::Write { pos, data }) = self.pending.get(whole) {
                    let torn = usize::try_from(rng.up_to(data.len() as u64)).unwrap_or(0);
                    if torn > 0 {
                        apply_write(&mut image, *pos, data.get(..torn).unwrap_or_default());
                    }
                }
                image
            }
            CrashMode::Pages => {
                let (lengths, touched) = self.replay();
                let pick = usize::try_from(rng.up_to(lengths.len() as u64 - 1)).unwrap_or(0);
                let len = lengths.get(pick).copied().unwrap_or(0);
                let mut image = self.durable.clone();
                apply_len(&mut image, len);
                for page in touched {
                    if !rng.coin() {
                        continue; // this page never reached the disk
                    }
                    let start = page.saturating_mul(PAGE_BYTES).min(len);
                    let end = start.saturating_add(PAGE_BYTES).min(len);
                    for i in start..end {
                        let Ok(i) = usize::try_from(i) else { break };
                        let new = self.live.get(i).copied().unwrap_or(0);
                        if let Some(byte) = image.get_mut(i) {
                            *byte = new;
                        }
                    }
                }
                image
            }
        }
    }
}

impl State {
    fn new() -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::new(), Dir::default());
        State {
            dirs,
            inodes: BTreeMap::new(),
            next_inode: 1,
            life: 0,
            clock_ms: 0,
            counts: [0; 9],
            faults: Vec::new(),
            budget: None,
            halted: false,
            dropped_syncs: Vec::new(),
            crash_mode: CrashMode::default(),
            bytes_written: 0,
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock_ms = self.clock_ms.saturating_add(1);
        self.clock_ms
    }

    /// Counts a call, then fails it if the disk halted, or returns the fault that hits it.
    fn admit(&mut self, op: FaultOp, paths: &[&Path]) -> io::Result<Option<FaultKind>> {
        self.counts[op.counter()] = self.counts[op.counter()].saturating_add(1);
        self.counts[FaultOp::Any.counter()] = self.counts[FaultOp::Any.counter()].saturating_add(1);
        if self.halted {
            return Err(halted());
        }
        let mut fired = None;
        let mut spent = None;
        for (i, fault) in self.faults.iter_mut().enumerate() {
            if !fault.hits(op, paths) {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                continue;
            }
            if fired.is_none() {
                fired = Some(fault.kind);
                if !fault.sticky {
                    spent = Some(i);
                }
            }
        }
        if let Some(i) = spent {
            self.faults.remove(i);
        }
        Ok(fired)
    }

    /// The error a fault makes of a call that is not a write.
    fn fail(&mut self, kind: FaultKind) -> io::Error {
        match kind {
            FaultKind::NoSpace => no_space(),
            FaultKind::Io | FaultKind::ShortWrite => eio(),
            FaultKind::CrashAfterBytes(_) => {
                self.halted = true;
                halted()
            }
        }
    }

    /// Runs the fault check of a call that is not a write: `Err` if it must fail.
    fn check(&mut self, op: FaultOp, paths: &[&Path]) -> io::Result<()> {
        match self.admit(op, paths)? {
            Some(kind) => Err(self.fail(kind)),
            None => Ok(()),
        }
    }

    fn dir(&self, key: &Path) -> io::Result<&Dir> {
        match self.dirs.get(key) {
            Some(dir) => Ok(dir),
            None if self.node(key).is_some() => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", key.display()),
            )),
            None => Err(not_found(key)),
        }
    }

    fn dir_mut(&mut self, key: &Path) -> io::Result<&mut Dir> {
        self.dir(key)?;
        self.dirs.get_mut(key).ok_or_else(|| not_found(key))
    }

    /// The live entry at a normalised path (`None` for the root, which is no entry).
    fn node(&self, key: &Path) -> Option<Node> {
        let (parent, name) = (key.parent()?, key.file_name()?);
        self.dirs.get(parent)?.live.get(name).copied()
    }

    fn file_id(&self, path: &Path) -> io::Result<u64> {
        let key = normalize(path);
        match self.node(&key) {
            Some(Node::File(id)) => Ok(id),
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            )),
            None if self.dirs.contains_key(&key) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn inode(&self, id: u64) -> io::Result<&Inode> {
        self.inodes
            .get(&id)
            .ok_or_else(|| io::Error::other("FaultDisk lost a file it still refers to"))
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("FaultDisk lost a file it still refers to"))
    }

    /// Frees a file no name (live or durable) and no handle refers to.
    fn collect(&mut self, id: u64) {
        let named = self.dirs.values().any(|dir| {
            dir.live
                .values()
                .chain(dir.durable.values())
                .any(|n| *n == Node::File(id))
        });
        let open = self.inodes.get(&id).is_some_and(|inode| inode.handles > 0);
        if !named && !open {
            self.inodes.remove(&id);
        }
    }

    fn collect_all(&mut self) {
        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        for id in ids {
            self.collect(id);
        }
    }

    /// Starts the next life: handles of this one die, a halt is lifted.
    fn new_life(&mut self) {
        self.life += 1;
        self.halted = false;
        for inode in self.inodes.values_mut() {
            inode.handles = 0;
        }
    }

    fn crash(&mut self, seed: u64, mode: CrashMode) {
        self.new_life();
        for dir in self.dirs.values_mut() {
            dir.live = dir.durable.clone();
        }
        // Directories whose own entries never became durable are gone, with their contents.
        let mut reachable = BTreeSet::from([PathBuf::new()]);
        let mut queue = vec![PathBuf::new()];
        while let Some(key) = queue.pop() {
            let children: Vec<PathBuf> = self.dirs.get(&key).map_or_else(Vec::new, |dir| {
                dir.live
                    .iter()
                    .filter(|(_, node)| **node == Node::Dir)
                    .map(|(name, _)| key.join(name))
                    .collect()
            });
            for child in children {
                self.dirs.entry(child.clone()).or_default();
                if reachable.insert(child.clone()) {
                    queue.push(child);
                }
            }
        }
        self.dirs.retain(|key, _| reachable.contains(key));
        self.collect_all();
        let mut rng = Rng(seed);
        for inode in self.inodes.values_mut() {
            let image = inode.after_power_loss(&mut rng, mode);
            inode.live = image.clone();
            inode.durable = image;
            inode.pending.clear();
            inode.stale.clear();
        }
    }

    fn open(&mut self, path: &Path, mode: OpenMode) -> io::Result<u64> {
        self.check(FaultOp::Open, &[path])?;
        let (parent, name) = split(path)?;
        let existing = self.dir(&parent)?.live.get(&name).copied();
        let id = match (existing, mode) {
            (Some(Node::File(id)), _) => id,
            (Some(Node::Dir), _) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{}: is a directory", path.display()),
                ));
            }
            (None, OpenMode::Read | OpenMode::Write) => return Err(not_found(path)),
            (None, OpenMode::Create) => {
                let id = self.next_inode;
                self.next_inode += 1;
                let now = self.tick();
                self.inodes.insert(
                    id,
                    Inode {
                        modified_ms: now,
                        ..Inode::default()
                    },
                );
                let dir = self.dir_mut(&parent)?;
                dir.live.insert(name, Node::File(id));
                dir.modified_ms = now;
                id
            }
        };
        self.inode_mut(id)?.handles += 1;
        Ok(id)
    }

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let key = normalize(path);
        let mut at = PathBuf::new();
        for name in key.iter() {
            let child = at.join(name);
            match self.dir(&at)?.live.get(name).copied() {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: a file is in the way", child.display()),
                    ));
                }
                None => {
                    let now = self.tick();
                    let dir = self.dir_mut(&at)?;
                    dir.live.insert(name.to_os_string(), Node::Dir);
                    dir.modified_ms = now;
                    self.dirs.insert(
                        child.clone(),
                        Dir {
                            modified_ms: now,
                            ..Dir::default()
                        },
                    );
                }
            }
            at = child;
        }
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::Remove, &[path])?;
        let (parent, name) = split(path)?;
        let id = self.file_id(path)?;
        let now = self.tick();
        let dir = self.dir_mut(&parent)?;
        dir.live.remove(&name);
        dir.modified_ms = now;
        self.collect(id);
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename, &[from, to])?;
        let id = self.file_id(from)?;
        let (from_parent, from_name) = split(from)?;
        let (to_parent, to_name) = split(to)?;
        let replaced = match self.dir(&to_parent)?.live.get(&to_name).copied() {
            Some(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{}: is a directory", to.display()),
                ));
            }
            Some(Node::File(old)) => Some(old),
            None => None,
        };
        if replaced == Some(id) {
            return Ok(()); // the same file under both names: POSIX does nothing
        }
        let now = self.tick();
        let source = self.dir_mut(&from_parent)?;
        source.live.remove(&from_name);
        source.modified_ms = now;
        let target = self.dir_mut(&to_parent)?;
        target.live.insert(to_name, Node::File(id));
        target.modified_ms = now;
        if let Some(old) = replaced {
            self.collect(old);
        }
        Ok(())
    }

    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::SyncDir, &[path])?;
        let key = normalize(path);
        let dir = self.dir_mut(&key)?;
        dir.durable = dir.live.clone();
        // Names that only the old durable namespace kept may have been the last reference.
        self.collect_all();
        Ok(())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let key = normalize(path);
        if self.dirs.contains_key(&key) {
            return Ok(0);
        }
        let id = self.file_id(path)?;
        Ok(self.inode(id)?.live.len() as u64)
    }

    fn modified_ms(&self, path: &Path) -> io::Result<i64> {
        let key = normalize(path);
        if let Some(dir) = self.dirs.get(&key) {
            return Ok(dir.modified_ms);
        }
        let id = self.file_id(path)?;
        Ok(self.inode(id)?.modified_ms)
    }
}

/// An open file of a [`FaultDisk`].
struct FaultFile {
    shared: Arc<Mutex<State>>,
    id: u64,
    /// The path it was opened by (for path-aimed faults and messages).
    path: PathBuf,
    writable: bool,
    life: u64,
}

impl fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("path", &self.path)
            .field("inode", &self.id)
            .field("writable", &self.writable)
            .finish()
    }
}

impl FaultFile {
    /// The state, if this handle's process is still alive.
    fn state(&self) -> io::Result<parking_lot::MutexGuard<'_, State>> {
        let state = self.shared.lock();
        if state.life != self.life {
            return Err(io::Error::other(format!(
                "{}: handle of a process that crashed (FaultDisk)",
                self.path.display()
            )));
        }
        Ok(state)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: opened read-only", self.path.display()),
            ))
        }
    }
}

impl Drop for FaultFile {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.life != self.life {
            return;
        }
        if let Some(inode) = state.inodes.get_mut(&self.id) {
            inode.handles = inode.handles.saturating_sub(1);
        }
        state.collect(self.id);
    }
}

impl DiskFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let state = self.state()?;
        let live = &state.inode(self.id)?.live;
        let Some(available) = usize::try_from(pos).ok().and_then(|p| live.get(p..)) else {
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        let mut state = self.state()?;
        let fault = state.admit(FaultOp::Write, &[&self.path])?;
        self.check_writable()?;
        let mut n = buf.len();
        let mut halt_after = false;
        match fault {
            Some(FaultKind::NoSpace) => return Err(no_space()),
            Some(FaultKind::Io) => return Err(eio()),
            Some(FaultKind::ShortWrite) => n = (n / 2).max(1).min(n),
            Some(FaultKind::CrashAfterBytes(bytes)) => {
                n = usize::try_from(bytes).unwrap_or(usize::MAX).min(n);
                halt_after = true;
            }
            None => {}
        }
        if pos.saturating_add(n as u64) > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let mut fail_after = halt_after;
        if let Some(budget) = &mut state.budget {
            let fits = usize::try_from(budget.remaining).unwrap_or(usize::MAX);
            if n > 0 && fits == 0 {
                return Err(match budget.then {
                    Exhausted::NoSpace => no_space(),
                    Exhausted::Halt => {
                        state.halted = true;
                        halted()
                    }
                });
            }
            if n > fits {
                n = fits;
                fail_after |= budget.then == Exhausted::Halt;
            }
            budget.remaining -= n as u64;
            if budget.remaining == 0 && budget.then == Exhausted::Halt {
                halt_after = true;
            }
        }
        let data = &buf[..n];
        if !data.is_empty() {
            let now = state.tick();
            state.bytes_written = state.bytes_written.saturating_add(n as u64);
            state.inode_mut(self.id)?.write(pos, data, now);
        }
        if halt_after {
            state.halted = true;
        }
        if fail_after { Err(halted()) } else { Ok(n) }
    }

    fn len(&self) -> io::Result<u64> {
        let state = self.state()?;
        Ok(state.inode(self.id)?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        state.check(FaultOp::SetLen, &[&self.path])?;
        self.check_writable()?;
        if len > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let now = state.tick();
        state.inode_mut(self.id)?.set_len(len, now);
        Ok(())
    }

    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        let mut state = self.state()?;
        state.check(FaultOp::SetTimes, &[&self.path])?;
        self.check_writable()?;
        state.inode_mut(self.id)?.modified_ms = ms;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state()?;
        match state.admit(FaultOp::Sync, &[&self.path])? {
            None => {}
            Some(FaultKind::CrashAfterBytes(_)) => {
                state.halted = true;
                return Err(halted());
            }
            Some(kind) => {
                state.inode_mut(self.id)?.drop_dirty_pages();
                return Err(if kind == FaultKind::NoSpace {
                    no_space()
                } else {
                    eio()
                });
            }
        }
        let path = self.path.to_string_lossy();
        if state
            .dropped_syncs
            .iter()
            .any(|s| path.ends_with(s.as_str()))
        {
            return Ok(()); // the canary: a disk that lies about fsync
        }
        state.inode_mut(self.id)?.sync();
        Ok(())
    }

    fn map(&self, len: usize) -> io::Result<Option<Mapping>> {
        let state = self.state()?;
        let live = &state.inode(self.id)?.live;
        Ok(live.get(..len).map(|bytes| Mapping::owned(bytes.to_vec())))
    }

    fn can_map_past_end(&self) -> bool {
        false
    }
}

impl Disk for FaultDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut state = self.shared.lock();
        let id = state.open(path, mode)?;
        let life = state.life;
        drop(state);
        Ok(Arc::new(FaultFile {
            shared: Arc::clone(&self.shared),
            id,
            path: path.to_path_buf(),
            writable: mode != OpenMode::Read,
            life,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.shared.lock();
        if state.halted {
            return Err(halted());
        }
        state.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.shared.lock();
        let dir = state.dir(&normalize(path))?;
        Ok(dir
            .live
            .iter()
            .map(|(name, node)| DirEntry {
                name: name.clone(),
                is_file: matches!(node, Node::File(_)),
            })
            .collect())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.shared.lock().remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.shared.lock().rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.shared.lock().sync_dir(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.shared.lock().file_len(path)
    }

    fn modified_ms(&self, path: &Path) -> io::Result<i64> {
        self.shared.lock().modified_ms(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{OsDisk, write_atomic};

    /// The operations counted one by one.
    const COUNTED: [FaultOp; 7] = [
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::SetLen,
        FaultOp::Rename,
        FaultOp::Remove,
        FaultOp::SyncDir,
        FaultOp::Open,
    ];

    fn read(disk: &dyn Disk, path: &Path) -> Vec<u8> {
        let file = disk.open(path, OpenMode::Read).expect("open for reading");
        let len = usize::try_from(file.len().expect("len")).expect("fits");
        let mut buf = vec![0u8; len];
        let n = file.read_at(&mut buf, 0).expect("read");
        buf.truncate(n);
        buf
    }

    fn names(disk: &dyn Disk, dir: &Path) -> Vec<(String, bool)> {
        let mut names: Vec<(String, bool)> = disk
            .list_dir(dir)
            .expect("list")
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.is_file))
            .collect();
        names.sort();
        names
    }

    /// The contract of the seam, as every disk must keep it.
    fn conformance(disk: &dyn Disk, root: &Path) {
        let dir = root.join("d");
        disk.create_dir_all(&dir.join("sub")).expect("create dirs");
        disk.create_dir_all(&dir)
            .expect("create_dir_all of an existing dir");
        assert!(disk.file_len(&dir).is_ok(), "a directory has a length");
        let a = dir.join("a");
        assert_eq!(
            disk.open(&a, OpenMode::Read).expect_err("missing").kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            disk.open(&a, OpenMode::Write).expect_err("missing").kind(),
            io::ErrorKind::NotFound
        );
        let file = disk.open(&a, OpenMode::Create).expect("create");
        assert_eq!(file.len().expect("len"), 0);
        assert_eq!(file.write_at(b"hello", 0).expect("write"), 5);
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(&mut buf, 0).expect("read"), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(file.read_at(&mut buf, 5).expect("read at end"), 0);
        assert_eq!(file.read_at(&mut buf, 100).expect("read past end"), 0);
        // A write past the end leaves a zero-filled gap.
        file.write_at(b"xy", 8).expect("write past end");
        assert_eq!(file.len().expect("len"), 10);
        assert_eq!(read(disk, &a), b"hello\0\0\0xy");
        // Overwrite in place.
        file.write_at(b"J", 0).expect("overwrite");
        assert_eq!(read(disk, &a), b"Jello\0\0\0xy");
        // set_len shrinks, and growing again reads zeros.
        file.set_len(3).expect("shrink");
        assert_eq!(read(disk, &a), b"Jel");
        file.set_len(6).expect("grow");
        assert_eq!(read(disk, &a), b"Jel\0\0\0");
        assert_eq!(disk.file_len(&a).expect("file_len"), 6);
        file.sync_data().expect("sync");
        disk.sync_dir(&dir).expect("sync dir");
        assert!(disk.modified_ms(&a).is_ok());
        // A mapping shows the bytes; past the end only where the disk says so.
        let map = file.map(6).expect("map").expect("mapping offered");
        assert_eq!(&map[..], b"Jel\0\0\0");
        if !file.can_map_past_end() {
            assert!(file.map(7).expect("map past end").is_none());
        }
        // Opening with Create keeps an existing file's bytes.
        let again = disk.open(&a, OpenMode::Create).expect("reopen");
        assert_eq!(again.len().expect("len"), 6);
        // A read-only handle refuses writes.
        let ro = disk.open(&a, OpenMode::Read).expect("open read-only");
        assert!(ro.write_at(b"no", 0).is_err());
        assert_eq!(read(disk, &a), b"Jel\0\0\0");
        assert_eq!(
            names(disk, &dir),
            [("a".to_owned(), true), ("sub".to_owned(), false)]
        );
        // Rename to a fresh name; the open handle follows the file.
        let b = dir.join("b");
        disk.rename(&a, &b).expect("rename");
        assert_eq!(
            disk.file_len(&a).expect_err("renamed away").kind(),
            io::ErrorKind::NotFound
        );
        file.write_at(b"!", 0)
            .expect("write through the old handle");
        assert_eq!(read(disk, &b), b"!el\0\0\0");
        // Rename over an existing file replaces it, as POSIX rename does.
        let c = dir.join("c");
        let other = disk.open(&c, OpenMode::Create).expect("create c");
        other.write_at(b"old c", 0).expect("write c");
        disk.rename(&b, &c).expect("rename over");
        assert_eq!(read(disk, &c), b"!el\0\0\0");
        let mut buf = [0u8; 5];
        assert_eq!(other.read_at(&mut buf, 0).expect("replaced file"), 5);
        assert_eq!(&buf, b"old c", "a handle keeps the replaced file");
        assert_eq!(
            names(disk, &dir),
            [("c".to_owned(), true), ("sub".to_owned(), false)]
        );
        // The crate's atomic replacement, over an existing file and a fresh name.
        write_atomic(disk, &c, b"atomic").expect("write_atomic");
        assert_eq!(read(disk, &c), b"atomic");
        write_atomic(disk, &dir.join("e"), b"fresh").expect("write_atomic fresh");
        assert_eq!(read(disk, &dir.join("e")), b"fresh");
        // Remove; a missing file is NotFound.
        disk.remove_file(&c).expect("remove");
        assert_eq!(
            disk.remove_file(&c).expect_err("gone").kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            disk.rename(&c, &b).expect_err("gone").kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            names(disk, &dir),
            [("e".to_owned(), true), ("sub".to_owned(), false)]
        );
        assert_eq!(
            disk.list_dir(&dir.join("nope")).expect_err("no dir").kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            disk.file_len(&dir.join("nope"))
                .expect_err("no file")
                .kind(),
            io::ErrorKind::NotFound
        );
        disk.sync_dir(&dir).expect("sync dir");
    }

    #[test]
    fn os_disk_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance(&OsDisk, dir.path());
    }

    #[test]
    fn fault_disk_keeps_the_contract() {
        conformance(&FaultDisk::new(), Path::new("/root"));
        conformance(&FaultDisk::new(), Path::new("relative/dir"));
    }

    /// A synced file "a" holding `synced`, then `unsynced` written after it, in a durable dir.
    fn file_with_tail(disk: &FaultDisk, synced: &[u8], unsynced: &[u8]) -> Arc<dyn DiskFile> {
        disk.create_dir_all(Path::new("/d")).expect("dir");
        disk.sync_dir(Path::new("/")).expect("sync root");
        let file = disk
            .open(Path::new("/d/a"), OpenMode::Create)
            .expect("create");
        disk.sync_dir(Path::new("/d")).expect("sync dir");
        file.write_at(synced, 0).expect("write");
        file.sync_data().expect("sync");
        file.write_at(unsynced, synced.len() as u64)
            .expect("write tail");
        file
    }

    #[test]
    fn crash_keeps_synced_bytes_and_a_prefix_of_the_rest() {
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let disk = FaultDisk::new();
            let file = file_with_tail(&disk, b"synced|", b"unsynced");
            disk.crash_with(seed, CrashMode::Prefix);
            assert!(
                file.len().is_err(),
                "handles of the crashed process are dead"
            );
            let after = disk.read_file("/d/a").expect("the file survives");
            let full = b"synced|unsynced";
            assert!(after.len() >= 7 && full.starts_with(&after), "{after:?}");
            seen.insert(after.len());
        }
        assert!(seen.contains(&7), "some crash loses the whole tail");
        assert!(seen.contains(&15), "some crash keeps the whole tail");
        assert!(seen.len() > 3, "some crashes tear the write: {seen:?}");
    }

    #[test]
    fn crash_is_deterministic() {
        let run = |seed| {
            let disk = FaultDisk::new();
            let file = file_with_tail(&disk, &[1; 5000], &[2; 20_000]);
            file.set_len(9000).expect("cut");
            file.write_at(&[3; 3000], 12_000).expect("write");
            disk.crash(seed);
            disk.read_file("/d/a").expect("file")
        };
        for seed in 0..16 {
            assert_eq!(run(seed), run(seed));
        }
        assert!((0..16).any(|seed| run(seed) != run(0)));
    }

    #[test]
    fn unsynced_creates_renames_and_removes_are_undone() {
        let disk = FaultDisk::new();
        disk.create_dir_all(Path::new("/d")).expect("dir");
        disk.sync_dir(Path::new("/")).expect("sync root");
        for (name, text) in [("old", b"old"), ("gone", b"gon")] {
            let f = disk
                .open(&Path::new("/d").join(name), OpenMode::Create)
                .expect("create");
            f.write_at(text, 0).expect("write");
            f.sync_data().expect("sync");
        }
        disk.sync_dir(Path::new("/d")).expect("sync dir");
        // Unsynced: a create (data synced, entry not), a rename over, a remove.
        let new = disk
            .open(Path::new("/d/new"), OpenMode::Create)
            .expect("create");
        new.write_at(b"new", 0).expect("write");
        new.sync_data().expect("sync data only");
        disk.rename(Path::new("/d/new"), Path::new("/d/old"))
            .expect("rename over");
        disk.remove_file(Path::new("/d/gone")).expect("remove");
        disk.create_dir_all(Path::new("/d/sub")).expect("mkdir");
        let lost = disk
            .open(Path::new("/d/sub/f"), OpenMode::Create)
            .expect("create in new dir");
        lost.sync_data().expect("sync");
        disk.sync_dir(Path::new("/d/sub"))
            .expect("sync sub, not its entry");
        disk.crash(1);
        assert_eq!(disk.file_names("/d").expect("list"), ["gone", "old"]);
        assert_eq!(disk.read_file("/d/old").expect("old"), b"old");
        assert_eq!(disk.read_file("/d/gone").expect("gone"), b"gon");
        assert!(disk.list_dir(Path::new("/d/sub")).is_err());

        // The same, synced: everything stays.
        let new = disk
            .open(Path::new("/d/new"), OpenMode::Create)
            .expect("create");
        new.write_at(b"new", 0).expect("write");
        new.sync_data().expect("sync");
        disk.rename(Path::new("/d/new"), Path::new("/d/old"))
            .expect("rename over");
        disk.remove_file(Path::new("/d/gone")).expect("remove");
        disk.sync_dir(Path::new("/d")).expect("sync dir");
        disk.crash(2);
        assert_eq!(disk.file_names("/d").expect("list"), ["old"]);
        assert_eq!(disk.read_file("/d/old").expect("old"), b"new");
    }

    #[test]
    fn pages_mode_can_keep_a_later_page_and_lose_an_earlier_one() {
        let mut out_of_order = false;
        for seed in 0..64 {
            let disk = FaultDisk::new();
            let page = PAGE_BYTES as usize;
            let mut tail = vec![7u8; 2 * page];
            tail[page..].fill(9);
            let _file = file_with_tail(&disk, b"", &tail);
            disk.crash_with(seed, CrashMode::Pages);
            let after = disk.read_file("/d/a").expect("file");
            assert!(
                after.is_empty() || after.len() == 2 * page,
                "{}",
                after.len()
            );
            for chunk in after.chunks(page) {
                let first = chunk[0];
                assert!(chunk.iter().all(|&b| b == first), "pages are atomic");
            }
            if after.len() == 2 * page && after[0] == 0 && after[page] == 9 {
                out_of_order = true;
            }
        }
        assert!(out_of_order, "no seed kept page 2 and lost page 1");
    }

    #[test]
    fn kill_keeps_everything_and_kills_handles() {
        let disk = FaultDisk::new();
        let file = file_with_tail(&disk, b"a", b"b");
        disk.create_dir_all(Path::new("/unsynced")).expect("dir");
        disk.kill();
        assert_eq!(disk.read_file("/d/a").expect("file"), b"ab");
        assert!(disk.list_dir(Path::new("/unsynced")).is_ok());
        assert!(file.write_at(b"c", 2).is_err());
        assert!(file.sync_data().is_err());
        drop(file);
        assert_eq!(disk.read_file("/d/a").expect("file"), b"ab");
        // Still volatile: a power loss now loses the unsynced byte and directory.
        disk.crash_with(0, CrashMode::Prefix);
        assert!(disk.list_dir(Path::new("/unsynced")).is_err());
    }

    #[test]
    fn one_shot_and_sticky_faults() {
        let disk = FaultDisk::new();
        let file = disk
            .open(Path::new("/f"), OpenMode::Create)
            .expect("create");
        disk.fail_after(FaultOp::Write, 1, FaultKind::NoSpace);
        file.write_at(b"1", 0).expect("first write passes");
        let e = file.write_at(b"2", 1).expect_err("second fails");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        file.write_at(b"3", 1).expect("one-shot: third passes");
        assert_eq!(disk.read_file("/f").expect("file"), b"13");
        assert_eq!(disk.ops(FaultOp::Write), 3);

        disk.inject(Fault::new(FaultOp::Sync, FaultKind::Io).sticky());
        assert!(file.sync_data().is_err());
        assert!(file.sync_data().is_err());
        disk.clear_faults();
        file.sync_data().expect("cleared");
        assert_eq!(disk.ops(FaultOp::Sync), 3);

        // Aimed by path; Any counts everything.
        disk.inject(Fault::new(FaultOp::Any, FaultKind::Io).on_path_ending(".index"));
        let index = disk
            .open(Path::new("/x.timeindex"), OpenMode::Create)
            .expect("a .timeindex is not a .index");
        index.write_at(b"t", 0).expect("write");
        assert!(disk.open(Path::new("/x.index"), OpenMode::Create).is_err());
        assert!(disk.ops(FaultOp::Any) >= 8);
        for op in COUNTED {
            assert!(disk.ops(op) <= disk.ops(FaultOp::Any));
        }
    }

    #[test]
    fn short_writes_are_retried_by_write_all_at() {
        let fault = FaultDisk::new();
        fault.inject(Fault::new(FaultOp::Write, FaultKind::ShortWrite).sticky());
        let file = fault
            .open(Path::new("/f"), OpenMode::Create)
            .expect("create");
        assert_eq!(file.write_at(b"abcdef", 0).expect("short"), 3);
        let f =
            crate::disk::File::open(&fault, PathBuf::from("/g"), OpenMode::Create).expect("create");
        f.write_all_at(b"0123456789", 0).expect("write_all_at");
        assert_eq!(fault.read_file("/g").expect("g"), b"0123456789");
        assert!(fault.ops(FaultOp::Write) > 4);
    }

    #[test]
    fn a_full_disk_writes_what_fits_then_refuses() {
        let disk = FaultDisk::new();
        let file = disk
            .open(Path::new("/f"), OpenMode::Create)
            .expect("create");
        disk.fail_writes_after_bytes(4);
        assert_eq!(file.write_at(b"abcdef", 0).expect("partial"), 4);
        let e = file.write_at(b"ef", 4).expect_err("full");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        let f = crate::disk::File::open(&disk, PathBuf::from("/f"), OpenMode::Write).expect("open");
        match f.write_all_at(b"x", 9) {
            Err(crate::Error::Io { op, path, .. }) => {
                assert_eq!(op, crate::error::IoOp::Write);
                assert_eq!(path, Path::new("/f"));
            }
            other => panic!("expected a typed write error, got {other:?}"),
        }
        disk.clear_faults();
        file.write_at(b"ef", 4).expect("space again");
        assert_eq!(disk.read_file("/f").expect("f"), b"abcdef");
    }

    #[test]
    fn crash_after_bytes_halts_until_the_crash() {
        let disk = FaultDisk::new();
        let file = disk
            .open(Path::new("/f"), OpenMode::Create)
            .expect("create");
        disk.sync_dir(Path::new("/")).expect("sync root");
        file.write_at(b"ab", 0).expect("write");
        file.sync_data().expect("sync");
        disk.crash_after_bytes(3);
        assert!(
            file.write_at(b"cdef", 2).is_err(),
            "the crossing write fails"
        );
        assert!(disk.is_halted());
        assert_eq!(disk.read_file("/f").expect("f"), b"abcde");
        assert!(file.sync_data().is_err(), "halted");
        assert!(disk.open(Path::new("/g"), OpenMode::Create).is_err());
        disk.crash_with(3, CrashMode::Prefix);
        assert!(!disk.is_halted());
        let after = disk.read_file("/f").expect("f");
        assert!(after.starts_with(b"ab") && b"abcde".starts_with(&after));
        disk.clear_faults();

        disk.fail_after(FaultOp::Sync, 0, FaultKind::CrashAfterBytes(0));
        let file = disk.open(Path::new("/f"), OpenMode::Write).expect("open");
        file.write_at(b"z", 0).expect("write");
        assert!(file.sync_data().is_err());
        assert!(disk.is_halted());
        disk.kill();
        assert_eq!(disk.read_file("/f").expect("f")[0], b'z');
    }

    #[test]
    fn dropped_syncs_make_nothing_durable() {
        let mut lost = false;
        for seed in 0..16 {
            let disk = FaultDisk::new();
            disk.drop_syncs_of(".log");
            let file = file_with_tail(&disk, b"", b"");
            let log = disk
                .open(Path::new("/d/0.log"), OpenMode::Create)
                .expect("create");
            disk.sync_dir(Path::new("/d")).expect("sync dir");
            log.write_at(b"data", 0).expect("write");
            log.sync_data().expect("the canary lies");
            file.write_at(b"kept", 0).expect("write");
            file.sync_data().expect("sync");
            disk.crash_with(seed, CrashMode::Prefix);
            lost |= disk.read_file("/d/0.log").expect("log") != b"data";
            assert_eq!(disk.read_file("/d/a").expect("a"), b"kept");
        }
        assert!(lost, "the unsynced write survived every crash");
    }

    #[test]
    fn a_failed_sync_drops_the_dirty_pages() {
        let page = PAGE_BYTES as usize;
        let disk = FaultDisk::new();
        let file = file_with_tail(&disk, b"", b"");
        file.write_at(&[1; 10], 0).expect("write page 0");
        file.write_at(&[1; 10], page as u64).expect("write page 1");
        disk.fail_after(FaultOp::Sync, 0, FaultKind::Io);
        assert!(file.sync_data().is_err());
        assert_eq!(
            disk.read_file("/d/a").expect("a")[..10],
            [1; 10],
            "still cached"
        );
        file.write_at(&[3; 10], page as u64 + 5)
            .expect("dirty page 1 again");
        file.write_at(&[2; 10], 2 * page as u64)
            .expect("write page 2");
        file.sync_data().expect("a later sync succeeds");
        disk.crash(0);
        let after = disk.read_file("/d/a").expect("a");
        assert_eq!(after.len(), 2 * page + 10);
        assert_eq!(after[..10], [0; 10], "page 0 never reached the disk");
        assert_eq!(
            after[page..page + 15],
            [1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]
        );
        assert_eq!(after[2 * page..], [2; 10]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let disk = FaultDisk::new();
        let file = disk
            .open(Path::new("/f"), OpenMode::Create)
            .expect("create");
        assert!(file.write_at(b"x", u64::MAX).is_err());
        assert!(file.write_at(b"x", MAX_FILE_BYTES).is_err());
        assert!(file.set_len(u64::MAX).is_err());
        assert_eq!(file.read_at(&mut [0u8; 4], u64::MAX).expect("read"), 0);
        assert!(file.map(usize::MAX).expect("map").is_none());
        assert!(disk.open(Path::new("/"), OpenMode::Create).is_err());
        assert!(disk.open(Path::new(""), OpenMode::Create).is_err());
        assert!(disk.open(Path::new("/f/g"), OpenMode::Create).is_err());
        assert!(disk.create_dir_all(Path::new("/f/g")).is_err());
        assert!(disk.remove_file(Path::new("/")).is_err());
        assert!(disk.rename(Path::new("/f"), Path::new("/")).is_err());
        assert!(disk.list_dir(Path::new("/f")).is_err());
        disk.create_dir_all(Path::new("/dir")).expect("dir");
        assert!(disk.open(Path::new("/dir"), OpenMode::Create).is_err());
        assert!(disk.remove_file(Path::new("/dir")).is_err());
        assert!(disk.rename(Path::new("/dir"), Path::new("/x")).is_err());
        assert!(disk.rename(Path::new("/f"), Path::new("/dir")).is_err());
        disk.rename(Path::new("/f"), Path::new("/./f"))
            .expect("same file");
        assert_eq!(disk.file_names("/").expect("root"), ["dir", "f"]);
        assert!(disk.sync_dir(Path::new("/nope")).is_err());
        assert!(disk.modified_ms(Path::new("/nope")).is_err());
        assert!(disk.modified_ms(Path::new("/dir")).is_ok());
        assert!(format!("{disk:?}").contains("FaultDisk"));
    }
}
