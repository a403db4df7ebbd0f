//! Group commit: how durable appends (`flush.messages` 1) share fsyncs.
//!
//! An append encodes its batch into the write buffer under the writer lock and takes a
//! sequence number; it is acknowledged once a commit covers that number. Committing is done by
//! one appender at a time, the leader: under the writer lock it writes the buffer out and
//! notes what must be synced; it then fsyncs *outside* the lock, so other appenders keep
//! encoding meanwhile; finally it publishes every batch it covered to readers and wakes the
//! waiters. Appenders that arrived during the fsync are covered by the next round.
//!
//! A plain leader/follower scheme alternates full and near-empty rounds. So before its round
//! the leader first lets the appenders already inside `append` reach the queue ("gathers the
//! waiters"): with N appenders one fsync acknowledges up to N appends.
//!
//! A failed fsync poisons the partition: the kernel may have dropped the dirty pages it could
//! not write, so nothing after it can be trusted until the partition is reopened and recovered.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::disk;
use crate::error::{Error, Result};

use super::Shared;
use super::writer::CommitPlan;

/// How many times a leader yields, at most, waiting for appenders to reach the queue.
const GATHER_ROUNDS: usize = 64;

#[derive(Debug, Default)]
struct State {
    /// Appends through this sequence number are durable and published.
    synced: u64,
    leading: bool,
    failed: Option<String>,
}

/// The commit state of one partition.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    state: Mutex<State>,
    done: Condvar,
    /// Appenders inside an append call.
    in_flight: AtomicUsize,
    /// Appenders waiting for (or leading) a commit.
    queued: AtomicUsize,
}

/// Counts an appender in a gauge for as long as it lives.
pub(crate) struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn enter(gauge: &'a AtomicUsize) -> Gauge<'a> {
        gauge.fetch_add(1, Ordering::AcqRel);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Commit {
    /// Marks an append call in progress until the returned guard drops.
    pub(crate) fn in_flight(&self) -> Gauge<'_> {
        Gauge::enter(&self.in_flight)
    }
}

impl Shared {
    /// Returns once every append through `seq` is durable and published, leading a commit
    /// round if none is running.
    pub(crate) fn commit_through(&self, seq: u64) -> Result<()> {
        let commit = &self.commit;
        let _queued = Gauge::enter(&commit.queued);
        let mut state = commit.state.lock();
        loop {
            if let Some(reason) = &state.failed {
                return Err(Error::Poisoned {
                    reason: reason.clone(),
                });
            }
            if state.synced >= seq {
                return Ok(());
            }
            if state.leading {
                commit.done.wait(&mut state);
                continue;
            }
            state.leading = true;
            drop(state);
            for _ in 0..GATHER_ROUNDS {
                if commit.queued.load(Ordering::Acquire) >= commit.in_flight.load(Ordering::Acquire)
                {
                    break;
                }
                std::thread::yield_now();
            }
            let round = self.commit_round();
            state = commit.state.lock();
            state.leading = false;
            match round {
                Ok(target) => state.synced = state.synced.max(target),
                Err(e) => {
                    state.failed.get_or_insert_with(|| e.to_string());
                }
            }
            commit.done.notify_all();
        }
    }

    /// One commit round; on failure the partition is poisoned.
    fn commit_round(&self) -> Result<u64> {
        let begun = self.writer.lock().begin_commit(self);
        let CommitPlan {
            seq: target,
            files,
            sealed,
            dir_dirty,
        } = match begun {
            Ok(plan) => plan,
            Err(e) => {
                self.writer.lock().poison(&e);
                return Err(e);
            }
        };
        let synced = files.iter().try_for_each(|f| f.sync_data()).and_then(|()| {
            if dir_dirty {
                disk::sync_dir(&*self.disk, &self.dir)
            } else {
                Ok(())
            }
        });
        let mut writer = self.writer.lock();
        let finished = synced.and_then(|()| writer.finish_commit(self, target, &sealed));
        if let Err(e) = &finished {
            writer.poison(e);
        }
        finished.map(|()| target)
    }

    /// Records a failure outside a commit round (an interval flush, `flush`, `close`), so
    /// waiting and later appenders see the partition as poisoned too.
    pub(crate) fn poison_commits(&self, error: &Error) {
        let mut state = self.commit.state.lock();
        state.failed.get_or_insert_with(|| error.to_string());
        self.commit.done.notify_all();
    }
}
