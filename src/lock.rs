//! The writer lock: an OS advisory lock (`flock`) on a lock file. A store locks `<dir>/.lock`
//! (the file Kafka's brokers lock too); a partition opened on its own locks
//! `<dir>/.topiclog_lock` in its directory, or its store's `.lock` when it lies inside a store.
//! The operating system releases the lock when the process dies, so a crash never leaves a
//! stale lock; a second writer, in this process or another, fails at once or after waiting.
//!
//! The lock belongs to the open file, so a child process forked while the lock is held shares
//! it until the child execs (std's `Command` execs at once; the descriptor is close-on-exec).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoOp, Result};
use crate::layout::{Domain, LOCK_FILE, PARTITION_LOCK_FILE};

/// The held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    /// The writer's liveness lock, held with the writer lock (see [`crate::follow`]).
    _live: Option<File>,
    /// The lock file was there before this lock was taken (someone opened the directory
    /// for writing before).
    pub(crate) existed: bool,
}

impl DirLock {
    /// Takes the lock on `dir`'s [`LOCK_FILE`], waiting up to `timeout` for another holder to
    /// let go; [`Error::Locked`] naming the directory if it does not.
    pub(crate) fn acquire(dir: &Path, timeout: Duration) -> Result<DirLock> {
        DirLock::acquire_file(&dir.join(LOCK_FILE), dir, timeout)
    }

    /// Takes the lock on the file `path`, creating it if missing; `locked` is what the
    /// [`Error::Locked`] names.
    pub(crate) fn acquire_file(path: &Path, locked: &Path, timeout: Duration) -> Result<DirLock> {
        let existed = path.exists();
        let wait = Wait {
            timeout,
            first_pause: Duration::from_millis(1),
            max_pause: Duration::from_millis(50),
        };
        let file = lock_file(path, locked, wait, |timeout| {
            log::info!(
                "{} is locked by another writer; waiting up to {} ms",
                locked.display(),
                timeout.as_millis()
            );
        })?;
        let live = crate::follow::hold_writer_file(path);
        Ok(DirLock {
            _file: file,
            _live: live,
            existed,
        })
    }

    /// The writer lock for a partition directory opened on its own: its store's, when `dir`
    /// lies in a store directory (one with a topic registry or a lock file), else its own.
    pub(crate) fn for_partition(dir: &Path, timeout: Duration) -> Result<DirLock> {
        match Domain::of(dir) {
            Domain::Store(store) => DirLock::acquire(&store, timeout),
            Domain::Partition(dir) => {
                DirLock::acquire_file(&dir.join(PARTITION_LOCK_FILE), &dir, timeout)
            }
        }
    }
}

/// How long, and how, to wait for a file lock another holder has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) timeout: Duration,
    /// The first pause between tries; each next one doubles, up to `max_pause`.
    pub(crate) first_pause: Duration,
    pub(crate) max_pause: Duration,
}

/// Opens (creating) the lock file `path` and takes an exclusive lock on it, trying again as
/// `wait` says (`on_wait` is called once, before the first pause); [`Error::Locked`] naming
/// `locked` if it stays held.
pub(crate) fn lock_file(
    path: &Path,
    locked: &Path,
    wait: Wait,
    on_wait: impl FnOnce(Duration),
) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(IoOp::Open, path, e))?;
    let deadline = Instant::now() + wait.timeout;
    let mut pause = wait.first_pause;
    let mut on_wait = Some(on_wait);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                if let Some(said) = on_wait.take() {
                    said(wait.timeout);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(wait.max_pause);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: locked.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(IoOp::Open, path, e)),
        }
    }
}
