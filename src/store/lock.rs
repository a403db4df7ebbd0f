//! The store directory's lock: an OS advisory lock on `<dir>/.lock` (the file Kafka's brokers
//! lock too), taken without waiting. The operating system releases it when the process dies,
//! so a crash never leaves a stale lock; a second open, in this process or another, fails at
//! once.
//!
//! The lock belongs to the open file, so a child process forked while the store is open shares
//! it until the child execs (std's `Command` execs at once; the descriptor is close-on-exec).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoOp, Result};

/// Name of the lock file in a store directory.
pub const LOCK_FILE: &str = ".lock";

/// The held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir`, or fails with [`Error::Locked`] naming the directory.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path: PathBuf = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(IoOp::Open, &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io(IoOp::Open, path, e)),
        }
    }
}
