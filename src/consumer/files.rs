//! Wake-ups from another process: a consumer of a store that another process writes watches
//! the directories of its partitions (and the store's, for its topic registry) through the
//! OS's file-change notification, and an event that can mean new records wakes its `poll`.
//!
//! What wakes it: a write to a segment (`.log`: what the lazy flush policies make visible), a
//! new publication of the durable end (`.topiclog_published`: what the durable policy makes
//! visible), a new file (a segment rolled), and the topic registry being replaced (topics
//! created or grown). Index, checkpoint and group files are ignored: they change often and
//! never mean new records. Where the platform has no notification, or the watcher fails, the
//! consumer falls back to re-reading the files on a short timer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::layout::TOPICS_FILE;
use crate::partition::watch::Signal;

/// The consumer's watcher and what it watches.
pub(crate) struct FileWatch {
    watcher: RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

impl FileWatch {
    /// A watcher that fires `signal` on events that may mean new records; `None` (logged)
    /// if the platform's notification cannot be set up.
    pub(crate) fn new(signal: &Arc<Signal>) -> Option<FileWatch> {
        let target = Arc::downgrade(signal);
        let handler = move |event: notify::Result<Event>| {
            let wakes = match &event {
                Ok(event) => may_mean_records(event),
                // Events may have been lost (a queue overflow): look at the files.
                Err(_) => true,
            };
            if wakes && let Some(signal) = target.upgrade() {
                signal.fire();
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(FileWatch {
                watcher,
                watched: BTreeSet::new(),
            }),
            Err(e) => {
                log::warn!("no file-change notification ({e}): polling the files instead");
                None
            }
        }
    }

    /// Watches exactly `dirs` from now on. Returns false if a directory could not be watched
    /// (the consumer then also re-reads the files on a timer).
    pub(crate) fn set(&mut self, dirs: impl IntoIterator<Item = PathBuf>) -> bool {
        let wanted: BTreeSet<PathBuf> = dirs.into_iter().collect();
        for gone in self.watched.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        let mut all = true;
        let mut watched = BTreeSet::new();
        for dir in wanted {
            if self.watched.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => {
                    log::debug!("cannot watch {}: {e}", dir.display());
                    all = false;
                }
            }
        }
        self.watched = watched;
        all
    }
}

/// Whether `event` may mean records became visible, or topics changed.
fn may_mean_records(event: &Event) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|path| {
        let name = file_name(path);
        name.ends_with(".log")
            || name == crate::partition::PUBLISHED_FILE
            || name == TOPICS_FILE
            || (matches!(event.kind, EventKind::Create(_)) && !name.ends_with(".tmp"))
    })
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind};

    fn event(kind: EventKind, name: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from("/s/t-0").join(name))
    }

    #[test]
    fn only_events_that_may_mean_records_wake() {
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(may_mean_records(&event(modify, "00000000000000000000.log")));
        assert!(may_mean_records(&event(modify, ".topiclog_published")));
        assert!(may_mean_records(&event(modify, "topiclog-topics")));
        assert!(may_mean_records(&event(
            EventKind::Create(CreateKind::File),
            "00000000000000000100.index"
        )));
        assert!(!may_mean_records(&event(
            modify,
            "00000000000000000000.index"
        )));
        assert!(!may_mean_records(&event(
            modify,
            "topiclog-group-67.members"
        )));
        assert!(!may_mean_records(&event(
            EventKind::Create(CreateKind::File),
            "topiclog-group-67.members.tmp"
        )));
    }
}
