//! The real filesystem.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{DirEntry, Disk, DiskFile, Mapping, OpenMode};

/// The operating system's filesystem, with `pread`/`pwrite` and read-only mappings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OsDisk;

#[derive(Debug)]
struct OsFile(fs::File);

impl Disk for OsDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut options = fs::OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::Write => options.read(true).write(true),
            OpenMode::Create => options.read(true).write(true).create(true),
        };
        Ok(Arc::new(OsFile(options.open(path)?)))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let is_file = entry.file_type()?.is_file();
            entries.push(DirEntry {
                name: entry.file_name(),
                is_file,
            });
        }
        Ok(entries)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn modified_ms(&self, path: &Path) -> io::Result<i64> {
        let modified = fs::metadata(path)?.modified()?;
        Ok(match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            fs::File::open(path)?.sync_all()
        }
        // Windows cannot open a directory as a file; NTFS journals its entries.
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }
}

impl DiskFile for OsFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.0, buf, pos)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.0, buf, pos)
        }
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_at(&self.0, buf, pos)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_write(&self.0, buf, pos)
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn reserve(&self, pos: u64, len: u64) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use nix::fcntl::{FallocateFlags, fallocate};
            let (Ok(pos), Ok(len)) = (i64::try_from(pos), i64::try_from(len)) else {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            };
            fallocate(&self.0, FallocateFlags::FALLOC_FL_KEEP_SIZE, pos, len)
                .map_err(io::Error::from)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (pos, len);
            Ok(())
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        let since_epoch = std::time::Duration::from_millis(ms.unsigned_abs());
        let time = if ms >= 0 {
            std::time::UNIX_EPOCH.checked_add(since_epoch)
        } else {
            std::time::UNIX_EPOCH.checked_sub(since_epoch)
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?;
        self.0.set_modified(time)
    }

    fn map(&self, len: usize) -> io::Result<Option<Mapping>> {
        if !self.can_map_past_end() && (len as u64) > self.len()? {
            return Ok(None);
        }
        Mapping::map_file(&self.0, len).map(Some)
    }

    fn can_map_past_end(&self) -> bool {
        // POSIX allows a mapping longer than the file: pages past the end are not touched. On
        // Windows a longer mapping would grow the file.
        cfg!(unix)
    }
}

/// The real filesystem, read-only and without mappings: what a reader beside another process's
/// writer uses. It never maps a file (the writer may shorten one) and refuses every change.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadOnlyDisk;

#[derive(Debug)]
struct ReadOnlyFile(Arc<dyn DiskFile>);

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "opened read-only")
}

impl Disk for ReadOnlyDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        match mode {
            OpenMode::Read => Ok(Arc::new(ReadOnlyFile(OsDisk.open(path, OpenMode::Read)?))),
            OpenMode::Write | OpenMode::Create => Err(refused()),
        }
    }
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Err(refused())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        OsDisk.list_dir(path)
    }
    fn remove_file(&self, _path: &Path) -> io::Result<()> {
        Err(refused())
    }
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(refused())
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        OsDisk.file_len(path)
    }
    fn modified_ms(&self, path: &Path) -> io::Result<i64> {
        OsDisk.modified_ms(path)
    }
    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn is_read_only(&self) -> bool {
        true
    }
}

impl DiskFile for ReadOnlyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, _buf: &[u8], _pos: u64) -> io::Result<usize> {
        Err(refused())
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(refused())
    }
    fn set_modified_ms(&self, _ms: i64) -> io::Result<()> {
        Err(refused())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn map(&self, _len: usize) -> io::Result<Option<Mapping>> {
        Ok(None)
    }
    fn can_map_past_end(&self) -> bool {
        false
    }
}

/// The real filesystem without mappings, so tests can drive the `pread` read paths.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoMapDisk;

#[cfg(test)]
#[derive(Debug)]
struct NoMapFile(Arc<dyn DiskFile>);

#[cfg(test)]
impl Disk for NoMapDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(NoMapFile(OsDisk.open(path, mode)?)))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsDisk.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        OsDisk.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsDisk.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsDisk.rename(from, to)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        OsDisk.file_len(path)
    }
    fn modified_ms(&self, path: &Path) -> io::Result<i64> {
        OsDisk.modified_ms(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        OsDisk.sync_dir(path)
    }
}

#[cfg(test)]
impl DiskFile for NoMapFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.0.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn reserve(&self, pos: u64, len: u64) -> io::Result<()> {
        self.0.reserve(pos, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        self.0.set_modified_ms(ms)
    }
    fn map(&self, _len: usize) -> io::Result<Option<Mapping>> {
        Ok(None)
    }
    fn can_map_past_end(&self) -> bool {
        false
    }
}
