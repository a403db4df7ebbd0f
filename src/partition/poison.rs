//! The partition's one poison flag. A failed write or fsync sets it, once: the kernel may have
//! dropped the pages it could not write, so nothing after it can be trusted until the partition
//! is reopened and recovered. The writer (under its lock) and the group commit (without it)
//! read the same flag, so an appender waiting for a commit and one about to write agree.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Set once, by the first failure; never cleared.
#[derive(Debug, Default)]
pub(crate) struct Poison(OnceLock<String>);

impl Poison {
    /// Records `error` as the reason; `false` if the partition was already poisoned.
    pub(crate) fn set(&self, error: &Error) -> bool {
        self.0.set(error.to_string()).is_ok()
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.get().is_some()
    }

    /// `Error::Poisoned` with the first failure's reason, once set.
    pub(crate) fn check(&self) -> Result<()> {
        match self.0.get() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}
