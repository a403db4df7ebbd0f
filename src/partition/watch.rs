//! Wake-ups for readers waiting at the end of a log (consumers' `poll`).
//!
//! A waiting reader owns a [`Signal`] and registers it with every partition it reads. A
//! partition fires its signals each time it publishes new batches (an append in the lazy
//! modes, a group commit in the durable one, so a reader is woken only for records it may
//! read). Registration and firing both happen under the partition's writer lock, so an append
//! never misses a reader registered before it, and a reader that checks the log after
//! registering sees every append that did not fire its signal.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::Shared;

/// A one-bit mailbox a waiting reader sleeps on: fired by appends, re-armed by the reader.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    pub(crate) fn new() -> Arc<Signal> {
        Arc::new(Signal::default())
    }

    /// Wakes the reader (or makes its next wait return at once).
    pub(crate) fn fire(&self) {
        let mut fired = self.fired.lock();
        if !*fired {
            *fired = true;
            self.wake.notify_all();
        }
    }

    /// Re-arms the signal before the reader checks its partitions: a fire from then on ends
    /// the next wait.
    pub(crate) fn arm(&self) {
        *self.fired.lock() = false;
    }

    /// Sleeps until fired since the last [`arm`](Signal::arm), or until `deadline`. Returns
    /// whether it was fired.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut fired = self.fired.lock();
        while !*fired {
            if self.wake.wait_until(&mut fired, deadline).timed_out() {
                break;
            }
        }
        *fired
    }
}

/// The signals registered with one partition.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    signals: Mutex<Vec<Weak<Signal>>>,
    /// How many are registered: appends read it (under the writer lock) to skip the list.
    count: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Registers `signal` to be fired by every publish from now on.
    pub(crate) fn watch(&self, signal: &Arc<Signal>) {
        let _writer = self.writer.lock();
        let mut signals = self.watchers.signals.lock();
        signals.retain(|s| s.strong_count() > 0);
        if !signals.iter().any(|s| s.as_ptr() == Arc::as_ptr(signal)) {
            signals.push(Arc::downgrade(signal));
        }
        self.watchers.count.store(signals.len(), Ordering::Relaxed);
    }

    /// Stops firing `signal` (and forgets signals whose readers are gone).
    pub(crate) fn unwatch(&self, signal: &Arc<Signal>) {
        let _writer = self.writer.lock();
        let mut signals = self.watchers.signals.lock();
        signals.retain(|s| s.strong_count() > 0 && s.as_ptr() != Arc::as_ptr(signal));
        self.watchers.count.store(signals.len(), Ordering::Relaxed);
    }

    /// Fires every registered signal. Called under the writer lock after a publish; costs one
    /// relaxed load when no reader waits.
    #[inline]
    pub(crate) fn fire_watchers(&self) {
        if self.watchers.count.load(Ordering::Relaxed) != 0 {
            self.fire_registered();
        }
    }

    #[cold]
    fn fire_registered(&self) {
        for signal in self.watchers.signals.lock().iter() {
            if let Some(signal) = signal.upgrade() {
                signal.fire();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fire_before_the_wait_is_not_lost_and_arm_clears_it() {
        let signal = Signal::new();
        signal.fire();
        assert!(signal.wait_until(Instant::now()));
        signal.arm();
        assert!(!signal.wait_until(Instant::now() + Duration::from_millis(10)));
        let other = Arc::clone(&signal);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.fire();
        });
        assert!(signal.wait_until(Instant::now() + Duration::from_secs(10)));
        t.join().expect("thread");
    }
}
