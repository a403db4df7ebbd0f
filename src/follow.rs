//! Processes that follow a store (or a partition opened on its own) beside its writer: how
//! each side knows the other is there, through OS file locks only.
//!
//! * **Followers** (read-only and consumer opens) hold a shared lock on the domain's followers
//!   file ([`layout::FOLLOWERS_FILE`](crate::layout::FOLLOWERS_FILE) in a store,
//!   `.topiclog_followers` in a lone partition) for as long as they are open. The writer
//!   probes it with a non-blocking exclusive lock at most every [`PROBE_EVERY`]: when that
//!   fails, someone follows, and the writer starts making its records visible to other
//!   processes at once (it writes lazily buffered batches through to the file, and publishes
//!   its durable end after each group commit). With no follower it adds no system call per
//!   append.
//! * **The writer** holds an exclusive lock on the domain's writer file
//!   ([`layout::WRITER_FILE`](crate::layout::WRITER_FILE), `.topiclog_writer`) together with
//!   its writer lock. A follower probes it with a non-blocking shared lock: when that fails, a
//!   writer is alive, and its published durable end bounds what the follower returns under
//!   the durable flush policy; when it succeeds, no writer is running and the files are all
//!   there is.
//!
//! The OS drops a dead process's locks, so neither side can be misled by a crash. A probe
//! holds its lock for two system calls; the other side's blocking acquisition waits that long.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::layout::{Domain, LOCK_FILE, PARTITION_LOCK_FILE, PARTITION_WRITER_FILE, WRITER_FILE};

/// How often the writer looks for followers, at most: the bound on how long a new follower
/// waits for a lazily written record to reach the file, or for the durable end to be
/// published (a store's background thread also looks this often while the writer is idle).
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(50);

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Takes the writer's liveness lock beside the writer lock file `lock_path`; `None` (logged)
/// if the file cannot be opened or locked, in which case followers see no live writer and
/// read the files to their end.
pub(crate) fn hold_writer_file(lock_path: &Path) -> Option<File> {
    let dir = lock_path.parent()?;
    let name = match lock_path.file_name()?.to_str()? {
        LOCK_FILE => WRITER_FILE,
        PARTITION_LOCK_FILE => PARTITION_WRITER_FILE,
        _ => return None,
    };
    let path = dir.join(name);
    // Blocking: only a follower's probe (two system calls) can hold it meanwhile.
    match open_lock_file(&path).and_then(|f| f.lock().map(|()| f)) {
        Ok(file) => Some(file),
        Err(e) => {
            log::warn!(
                "cannot lock {}: followers will not see this writer as alive: {e}",
                path.display()
            );
            None
        }
    }
}

/// A follower's registration: a shared lock on the followers file, held while open.
///
/// A follower creates nothing (a read-only open writes nothing): the writer creates both
/// files when it opens, and a follower that found none registers at its next look, once a
/// writer made them.
#[derive(Debug)]
pub(crate) struct Following {
    domain: Domain,
    /// The followers file (locked shared) and the writer file, once both exist.
    files: Mutex<Option<(File, File)>>,
}

impl Following {
    /// A follower of the domain of `dir` (a partition directory, or a store directory when
    /// `store` is true), registered now if the writer's files exist.
    pub(crate) fn join(dir: &Path, store: bool) -> Following {
        let domain = if store {
            Domain::Store(dir.to_path_buf())
        } else {
            Domain::of(dir)
        };
        let following = Following {
            domain,
            files: Mutex::new(None),
        };
        following.register();
        following
    }

    /// Takes the shared lock if not registered yet and the files exist.
    fn register(&self) {
        let mut files = self.files.lock();
        if files.is_some() {
            return;
        }
        let open = |path: &Path| OpenOptions::new().read(true).open(path);
        let joined = open(&self.domain.followers_file())
            .and_then(|f| f.lock_shared().map(|()| f))
            .and_then(|f| open(&self.domain.writer_file()).map(|w| (f, w)));
        *files = joined.ok();
    }

    /// Whether a writer holds the domain now (registering first if not yet registered). With
    /// no writer files, none of this version has run: no writer is alive to publish.
    pub(crate) fn writer_alive(&self) -> bool {
        self.register();
        let files = self.files.lock();
        let Some((_, writer)) = &*files else {
            return false;
        };
        match writer.try_lock_shared() {
            Ok(()) => {
                let _ = writer.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            // Cannot tell: assume alive, the cautious answer (it bounds reads).
            Err(TryLockError::Error(_)) => true,
        }
    }
}

/// The writer's probe for followers, shared by the partitions of a store.
#[derive(Debug)]
pub(crate) struct FollowerProbe {
    file: Option<File>,
    /// When the last probe ran, in wall-clock milliseconds ([`crate::config::wall_ms`]): the
    /// append path passes the reading it took for its records, so an append reads the clock
    /// once. `i64::MIN`: never.
    checked_ms: AtomicI64,
    present: AtomicBool,
}

impl FollowerProbe {
    /// A probe of the domain of `dir` (a partition directory, or a store directory when
    /// `store` is true). A followers file that cannot be opened means no follower can
    /// register either.
    pub(crate) fn new(dir: &Path, store: bool) -> FollowerProbe {
        let domain = if store {
            Domain::Store(dir.to_path_buf())
        } else {
            Domain::of(dir)
        };
        FollowerProbe {
            file: open_lock_file(&domain.followers_file()).ok(),
            checked_ms: AtomicI64::new(i64::MIN),
            present: AtomicBool::new(false),
        }
    }

    /// Whether followers were present at the last probe, probing again if that was more than
    /// [`PROBE_EVERY`] ago. Returns `(present, newly)`: `newly` when they appeared since the
    /// previous probe (the writer then catches up on what it had not made visible).
    pub(crate) fn present(&self) -> (bool, bool) {
        self.present_at(crate::config::wall_ms())
    }

    /// [`present`](Self::present) at `now_ms`, a wall-clock reading the caller already took.
    /// A clock that moved back probes at once rather than wait for it to catch up.
    #[inline]
    pub(crate) fn present_at(&self, now_ms: i64) -> (bool, bool) {
        let every = PROBE_EVERY.as_millis() as i64;
        let checked = self.checked_ms.load(Ordering::Relaxed);
        let fresh = checked != i64::MIN && now_ms >= checked && now_ms - checked < every;
        // One caller probes; the others take the last answer.
        if fresh
            || self
                .checked_ms
                .compare_exchange(checked, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return (self.present.load(Ordering::Relaxed), false);
        }
        let present = self.file.as_ref().is_some_and(|f| match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                false
            }
            Err(_) => true,
        });
        let before = self.present.swap(present, Ordering::Relaxed);
        (present, present && !before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_followers_see_each_other_through_locks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let early = Following::join(dir.path(), true);
        assert!(!early.writer_alive(), "no writer files yet");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "creates nothing"
        );
        let probe = FollowerProbe::new(dir.path(), true);
        let writer = hold_writer_file(&dir.path().join(LOCK_FILE)).expect("locks");
        drop(writer);
        assert_eq!(probe.present(), (false, false));
        let follower = Following::join(dir.path(), true);
        assert!(!follower.writer_alive(), "no writer now");
        // Cached for PROBE_EVERY.
        assert_eq!(probe.present(), (false, false));
        std::thread::sleep(PROBE_EVERY);
        assert_eq!(probe.present(), (true, true));
        std::thread::sleep(PROBE_EVERY);
        assert_eq!(probe.present(), (true, false));

        let writer = hold_writer_file(&dir.path().join(LOCK_FILE)).expect("locks");
        assert!(follower.writer_alive());
        drop(writer);
        assert!(!follower.writer_alive());

        drop(follower);
        std::thread::sleep(PROBE_EVERY);
        assert_eq!(probe.present(), (false, false));
    }
}
