//! Group commit: how durable appends (`flush.messages` 1) share fsyncs.
//!
//! An append encodes its batch into the write buffer under the writer lock and takes a
//! sequence number; it is acknowledged once a commit covers that number. Committing is done by
//! one appender at a time, the leader: under the writer lock it writes the buffer out and
//! notes what must be synced; it then fsyncs *outside* the lock, so other appenders keep
//! encoding meanwhile; finally it publishes every batch it covered to readers and wakes the
//! waiters. Appenders that arrived during the fsync are covered by the next round.
//!
//! A plain leader/follower scheme alternates full and near-empty rounds: the appenders a round
//! wakes come back while the next leader is already syncing. So before its round the leader
//! waits for as many appenders as the last round covered ("gathers the waiters"), for at most
//! a quarter of the last fsync's duration (counting appends accepted but not yet synced, not
//! threads, which a finished round may still hold): with N appenders one fsync acknowledges up
//! to N appends, and a lone appender never waits.
//!
//! A failed write or fsync poisons the partition (see `poison`): the failing round's leader
//! reports the error, every other appender gets `Error::Poisoned`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::Result;

use super::Shared;
use super::poison::Poison;

/// The longest a leader waits for appenders to gather, whatever the fsync costs.
const MAX_GATHER: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
struct State {
    /// Appends through this sequence number are durable and published.
    synced: u64,
    leading: bool,
    /// Appenders the last round covered, and how long its fsyncs took.
    last_round: usize,
    last_sync: Duration,
}

/// The commit state of one partition.
#[derive(Debug)]
pub(crate) struct Commit {
    state: Mutex<State>,
    /// The writer's poison flag: a commit never waits on a poisoned partition.
    poison: Arc<Poison>,
    done: Condvar,
    /// The highest sequence number an append has been given.
    appended: AtomicU64,
    /// `State::synced`, readable without the lock by appenders spinning for their commit.
    synced: AtomicU64,
}

impl Commit {
    pub(crate) fn new(poison: Arc<Poison>) -> Self {
        Commit {
            state: Mutex::default(),
            poison,
            done: Condvar::new(),
            appended: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        }
    }

    /// Notes that appends through `seq` were accepted and wait for a commit.
    pub(crate) fn accepted(&self, seq: u64) {
        self.appended.fetch_max(seq, Ordering::AcqRel);
    }
}

impl Shared {
    /// Returns once every append through `seq` is durable and published, leading a commit
    /// round if none is running.
    pub(crate) fn commit_through(&self, seq: u64) -> Result<()> {
        let commit = &self.commit;
        let mut state = commit.state.lock();
        loop {
            commit.poison.check()?;
            if state.synced >= seq {
                return Ok(());
            }
            if state.leading {
                // Waking from a park costs more than the gather can wait for, so spin (yielding
                // the CPU) for about as long as an fsync before parking.
                let spin = (state.last_sync * 2).min(MAX_GATHER * 2);
                drop(state);
                let started = Instant::now();
                while commit.synced.load(Ordering::Acquire) < seq && started.elapsed() < spin {
                    std::thread::yield_now();
                }
                state = commit.state.lock();
                if state.leading && state.synced < seq && !commit.poison.is_set() {
                    commit.done.wait(&mut state);
                }
                continue;
            }
            state.leading = true;
            let (expected, last_sync, synced) = (state.last_round, state.last_sync, state.synced);
            drop(state);
            let started = Instant::now();
            let patience = (last_sync / 4).min(MAX_GATHER);
            let waiting = || {
                commit
                    .appended
                    .load(Ordering::Acquire)
                    .saturating_sub(synced)
            };
            while waiting() < expected as u64 && started.elapsed() < patience {
                std::thread::yield_now();
            }
            let synced_at = Instant::now();
            let round = self.commit_round();
            let sync_took = synced_at.elapsed();
            state = commit.state.lock();
            state.leading = false;
            state.last_sync = sync_took;
            match round {
                Ok(target) => {
                    state.last_round =
                        usize::try_from(target.saturating_sub(synced)).unwrap_or(usize::MAX);
                    state.synced = state.synced.max(target);
                    commit.synced.store(state.synced, Ordering::Release);
                }
                Err(e) => {
                    // The round poisoned the writer; the leader reports the failure itself,
                    // every other caller, now and until the partition is reopened, gets
                    // `Error::Poisoned`.
                    commit.done.notify_all();
                    return Err(e);
                }
            }
            commit.done.notify_all();
        }
    }

    /// One commit round; on failure the partition is poisoned. The fsyncs run outside the
    /// writer lock, on the set the ledger decided (see [`super::ledger`]).
    fn commit_round(&self) -> Result<u64> {
        let begun = self.writer.lock().begin_commit();
        let set = match begun {
            Ok(set) => set,
            Err(e) => {
                self.writer.lock().poison(&e);
                return Err(e);
            }
        };
        let fsynced = set.run(self);
        let mut writer = self.writer.lock();
        let finished = fsynced.and_then(|()| writer.finish_commit(self, &set));
        if let Err(e) = &finished {
            writer.poison(e);
        }
        finished.map(|()| set.seq)
    }

    /// Wakes appenders waiting for a commit after the writer was poisoned outside a round (a
    /// flush, a roll, `close`), so they see it at once. Taking the state lock orders this after
    /// any waiter's check of the flag.
    pub(crate) fn wake_committers(&self) {
        let _state = self.commit.state.lock();
        self.commit.done.notify_all();
    }
}
