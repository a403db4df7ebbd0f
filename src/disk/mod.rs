//! The I/O seam: every file operation a test may want to break goes through [`Disk`] and
//! [`DiskFile`]. [`OsDisk`] is the real filesystem.
//!
//! Contracts: a write is in the operating system's cache when it returns and survives a process
//! crash, not a power loss; it is durable only after [`DiskFile::sync_data`]. A created,
//! renamed or removed directory entry is durable only after [`Disk::sync_dir`] on its parent.

#[cfg(feature = "fault-injection")]
pub(crate) mod fault;
mod mmap;
mod os;

pub(crate) use mmap::Mapping;
#[cfg(test)]
pub(crate) use os::NoMapDisk;
pub(crate) use os::{OsDisk, ReadOnlyDisk};

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoOp, Result};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirEntry {
    /// The entry's name.
    pub(crate) name: std::ffi::OsString,
    /// A regular file (not a directory, link or other).
    pub(crate) is_file: bool,
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    Write,
    /// Read and write, creating an empty file if there is none.
    Create,
}

/// A filesystem.
pub(crate) trait Disk: Send + Sync + fmt::Debug {
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The length of the file at `path`.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Whether this disk refuses every change (opens for reading beside another writer).
    fn is_read_only(&self) -> bool {
        false
    }
    /// When the file at `path` was last modified, in milliseconds since the Unix epoch.
    fn modified_ms(&self, path: &Path) -> io::Result<i64>;
}

/// An open file. Positions are absolute; there is no cursor, so one handle serves many threads.
pub(crate) trait DiskFile: Send + Sync + fmt::Debug {
    /// Reads into `buf` from `pos`; fewer bytes than asked only at the end of the file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes `buf` at `pos`; may write less than all of it (a short write).
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Sets the file's length; new bytes read as zero.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves the blocks of `[pos, pos + len)` without changing the file's length, so that
    /// writes there later need not allocate them (Linux's `fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`). A hint: where the platform or filesystem has no such call it
    /// does nothing. Blocks reserved past the end are released by [`set_len`](Self::set_len).
    fn reserve(&self, pos: u64, len: u64) -> io::Result<()> {
        let _ = (pos, len);
        Ok(())
    }
    /// Makes the file's data, and the metadata needed to read it, durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file's modification time, in milliseconds since the Unix epoch (`futimens`).
    fn set_modified_ms(&self, ms: i64) -> io::Result<()>;
    /// A read-only view of bytes `[0, len)`, or `None` where mapping is not offered. `len` may
    /// exceed the file's length only where [`DiskFile::can_map_past_end`] says so; the caller
    /// then reads only bytes the file holds.
    fn map(&self, len: usize) -> io::Result<Option<Mapping>>;
    /// Whether [`DiskFile::map`] accepts a length past the end of the file (for a file that
    /// grows while mapped).
    fn can_map_past_end(&self) -> bool;
}

/// A file handle plus its path, so every error names the file.
#[derive(Debug, Clone)]
pub(crate) struct File {
    path: PathBuf,
    inner: Arc<dyn DiskFile>,
}

impl File {
    pub(crate) fn open(disk: &dyn Disk, path: PathBuf, mode: OpenMode) -> Result<File> {
        match disk.open(&path, mode) {
            Ok(inner) => Ok(File { path, inner }),
            Err(e) => Err(Error::io(IoOp::Open, path, e)),
        }
    }

    fn err(&self, op: IoOp, e: io::Error) -> Error {
        Error::io(op, self.path.clone(), e)
    }

    /// Reads as many bytes as the file holds from `pos`, up to `buf.len()`; returns the count.
    pub(crate) fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(IoOp::Read, e)),
            }
        }
        Ok(done)
    }

    /// Writes all of `buf` at `pos`, retrying short writes.
    pub(crate) fn write_all_at(&self, buf: &[u8], pos: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.write_at(&buf[done..], pos + done as u64) {
                Ok(0) => {
                    return Err(self.err(IoOp::Write, io::Error::from(io::ErrorKind::WriteZero)));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(IoOp::Write, e)),
            }
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> Result<u64> {
        self.inner.len().map_err(|e| self.err(IoOp::Read, e))
    }

    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.inner
            .set_len(len)
            .map_err(|e| self.err(IoOp::SetLen, e))
    }

    /// [`DiskFile::reserve`]: a hint, so the caller may go on without it.
    pub(crate) fn reserve(&self, pos: u64, len: u64) -> std::io::Result<()> {
        self.inner.reserve(pos, len)
    }

    pub(crate) fn sync_data(&self) -> Result<()> {
        self.inner.sync_data().map_err(|e| self.err(IoOp::Sync, e))
    }

    pub(crate) fn set_modified_ms(&self, ms: i64) -> Result<()> {
        self.inner
            .set_modified_ms(ms)
            .map_err(|e| self.err(IoOp::SetTimes, e))
    }

    /// A view of `[0, len)`; `None` where mapping is not offered or `len` is 0.
    pub(crate) fn map(&self, len: u64) -> Result<Option<Mapping>> {
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(None);
        }
        self.inner.map(len).map_err(|e| self.err(IoOp::Map, e))
    }

    pub(crate) fn can_map_past_end(&self) -> bool {
        self.inner.can_map_past_end()
    }

    /// The whole file's contents.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(|_| {
            self.err(
                IoOp::Read,
                io::Error::new(io::ErrorKind::OutOfMemory, "file too large"),
            )
        })?;
        let mut buf = vec![0u8; len];
        let n = self.read_at(&mut buf, 0)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// Path-carrying wrappers of the directory operations.
pub(crate) fn list_dir(disk: &dyn Disk, dir: &Path) -> Result<Vec<DirEntry>> {
    disk.list_dir(dir)
        .map_err(|e| Error::io(IoOp::Directory, dir, e))
}

pub(crate) fn create_dir_all(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.create_dir_all(dir)
        .map_err(|e| Error::io(IoOp::Directory, dir, e))
}

/// Creates `dir` and any missing parents, making each new directory's entry durable (a
/// store or partition directory lost to a power loss would take its flushed files with it).
pub(crate) fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if file_len(disk, path)?.is_some() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    create_dir_all(disk, dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(disk, parent)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.sync_dir(dir)
        .map_err(|e| Error::io(IoOp::Sync, dir, e))
}

pub(crate) fn rename(disk: &dyn Disk, from: &Path, to: &Path) -> Result<()> {
    disk.rename(from, to)
        .map_err(|e| Error::io(IoOp::Rename, from, e))
}

/// The length of a file, or `None` if there is no such file.
pub(crate) fn file_len(disk: &dyn Disk, path: &Path) -> Result<Option<u64>> {
    match disk.file_len(path) {
        Ok(len) => Ok(Some(len)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(IoOp::Read, path, e)),
    }
}

/// A directory's entry names with their lengths (`None` for directories and unreadable
/// entries), sorted: what a writer's change to the directory alters. Empty if it cannot be
/// listed.
pub(crate) fn fingerprint(disk: &dyn Disk, dir: &Path) -> Vec<(std::ffi::OsString, Option<u64>)> {
    let mut entries: Vec<_> = disk
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let len = e
                .is_file
                .then(|| disk.file_len(&dir.join(&e.name)).ok())
                .flatten();
            (e.name, len)
        })
        .collect();
    entries.sort();
    entries
}

/// Removes a file; one that is already gone is not an error.
pub(crate) fn remove_file(disk: &dyn Disk, path: &Path) -> Result<()> {
    match disk.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(IoOp::Remove, path, e)),
    }
}

/// Replaces `path` with `contents` atomically and durably: a temporary file in the same
/// directory, written and synced, renamed over `path`, then the directory synced.
pub(crate) fn write_atomic(disk: &dyn Disk, path: &Path, contents: &[u8]) -> Result<()> {
    write_replacement(disk, path, contents, true)
}

/// Replaces `path` with `contents` atomically but without syncing: for caches (indexes), which
/// are checked on load and rebuilt when a crash left them short or empty.
pub(crate) fn write_atomic_unsynced(disk: &dyn Disk, path: &Path, contents: &[u8]) -> Result<()> {
    write_replacement(disk, path, contents, false)
}

fn write_replacement(disk: &dyn Disk, path: &Path, contents: &[u8], durable: bool) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::open(disk, tmp.clone(), OpenMode::Create)?;
    file.set_len(0)?;
    file.write_all_at(contents, 0)?;
    if durable {
        file.sync_data()?;
    }
    drop(file);
    rename(disk, &tmp, path)?;
    match path.parent() {
        Some(dir) if durable => sync_dir(disk, dir),
        _ => Ok(()),
    }
}
