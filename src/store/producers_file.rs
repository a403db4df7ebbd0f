//! The store's producer registry, `topiclog-producers` in the store directory: the id and
//! current epoch of each named idempotent producer, and the next id to hand out. A file, not a
//! directory: a Kafka broker reads every directory of its log directory as a partition.
//!
//! Format (UTF-8 text, replaced atomically and durably on every change):
//!
//! ```text
//! topiclog-producers 1
//! next-id <id>
//! <name> <producer id> <epoch>
//! ```
//!
//! (one line per producer, ascending by name). Names are percent-encoded: every byte outside
//! `[A-Za-z0-9._-]` is written `%XX`, so any name fits on one line. An unknown version or a
//! malformed line is [`Error::Corrupt`] naming the file.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};

use crate::layout::PRODUCERS_FILE;

const HEADER: &str = "topiclog-producers 2";
/// The version written before files ended with a checksum line.
const HEADER_V1: &str = "topiclog-producers 1";
const NEXT_ID: &str = "next-id";

/// What the registry records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Registry {
    /// The id the next new name gets (at least).
    pub(crate) next_id: i64,
    /// Each name's producer id and current epoch.
    pub(crate) producers: BTreeMap<String, (i64, i16)>,
}

impl Registry {
    /// The registry after `name` opens a new handle: the same id with the next epoch, or a new
    /// id (at least `at_least`) with epoch 0 for a new name or once the epoch is exhausted
    /// (Kafka bumps the id then too). Returns it with the id and epoch.
    pub(crate) fn next_handle(&self, name: &str, at_least: i64) -> (Registry, i64, i16) {
        let mut updated = self.clone();
        let (id, epoch) = match self.producers.get(name) {
            Some(&(id, epoch)) if epoch < i16::MAX => (id, epoch + 1),
            _ => {
                let id = self.next_id.max(at_least);
                updated.next_id = id.saturating_add(1);
                (id, 0)
            }
        };
        updated.producers.insert(name.to_owned(), (id, epoch));
        (updated, id, epoch)
    }
}

/// Encodes the registry.
pub(crate) fn encode(registry: &Registry) -> String {
    let mut text = format!("{HEADER}\n{NEXT_ID} {}\n", registry.next_id);
    for (name, (id, epoch)) in &registry.producers {
        let _ = writeln!(text, "{} {id} {epoch}", crate::percent::encode(name));
    }
    text
}

/// Decodes the registry; `Err` says where (the byte position of the line) and what is wrong.
pub(crate) fn decode(text: &str) -> std::result::Result<Registry, (u64, &'static str)> {
    let mut lines = crate::sealed::lines(text);
    let end = text.len() as u64;
    if !matches!(lines.next(), Some((_, HEADER | HEADER_V1))) {
        return Err((0, "not a version 1 or 2 producers file"));
    }
    let (at, line) = lines.next().unwrap_or((end, ""));
    let next_id = line
        .strip_prefix(NEXT_ID)
        .and_then(|n| n.trim().parse::<i64>().ok())
        .filter(|&n| n >= 0)
        .ok_or((at, "malformed next-id line"))?;
    let mut registry = Registry {
        next_id,
        producers: BTreeMap::new(),
    };
    for (at, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let [name, id, epoch] = fields.as_slice() else {
            return Err((at, "a producer line needs a name, an id and an epoch"));
        };
        let name = crate::percent::decode(name)
            .filter(|n| !n.is_empty())
            .ok_or((at, "malformed producer name"))?;
        let (Ok(id), Ok(epoch)) = (id.parse::<i64>(), epoch.parse::<i16>()) else {
            return Err((at, "malformed producer id or epoch"));
        };
        if id < 0 || epoch < 0 || id >= next_id {
            return Err((at, "producer id or epoch out of range"));
        }
        if registry.producers.insert(name, (id, epoch)).is_some() {
            return Err((at, "a producer is listed twice"));
        }
    }
    Ok(registry)
}

/// Reads the registry; an absent file is an empty one.
pub(crate) fn read(disk: &dyn Disk, dir: &Path) -> Result<Registry> {
    let path = dir.join(PRODUCERS_FILE);
    let file = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Registry::default());
        }
        Err(e) => return Err(e),
    };
    let bytes = file.read_all()?;
    let required = if bytes.starts_with(HEADER_V1.as_bytes()) {
        crate::sealed::Required::No
    } else {
        crate::sealed::Required::Yes
    };
    let bytes = crate::sealed::open(&bytes, &path, required)?;
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Error::corrupt(
            &path,
            0,
            Corruption::Metadata("producers file is not UTF-8"),
        )
    })?;
    decode(text).map_err(|(at, why)| Error::corrupt(&path, at, Corruption::Metadata(why)))
}

/// Writes the registry atomically and durably.
pub(crate) fn write(disk: &dyn Disk, dir: &Path, registry: &Registry) -> Result<()> {
    let text = crate::sealed::seal(encode(registry));
    disk::write_atomic(disk, &dir.join(PRODUCERS_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_odd_names() {
        let registry = Registry::default();
        let (registry, id, epoch) = registry.next_handle("checkout", 0);
        assert_eq!((id, epoch), (0, 0));
        let (registry, id, epoch) = registry.next_handle("a b%c\nü", 10);
        assert_eq!(
            (id, epoch),
            (10, 0),
            "ids start above those partitions know"
        );
        let (registry, id, epoch) = registry.next_handle("checkout", 0);
        assert_eq!((id, epoch), (0, 1));
        let text = encode(&registry);
        assert_eq!(
            text,
            "topiclog-producers 2\nnext-id 11\na%20b%25c%0A%C3%BC 10 0\ncheckout 0 1\n"
        );
        assert_eq!(decode(&text), Ok(registry.clone()));
        // An exhausted epoch moves the name to a new id.
        let mut worn = registry;
        worn.producers.insert("checkout".into(), (0, i16::MAX));
        let (_, id, epoch) = worn.next_handle("checkout", 0);
        assert_eq!((id, epoch), (11, 0));
    }

    #[test]
    fn malformed_files_are_refused() {
        for text in [
            "",
            "topiclog-producers 3\nnext-id 0\n",
            "topiclog-producers 1\n",
            "topiclog-producers 1\nnext-id -1\n",
            "topiclog-producers 1\nnext-id 5\nname 1\n",
            "topiclog-producers 1\nnext-id 5\nname x 0\n",
            "topiclog-producers 1\nnext-id 5\nname 5 0\n",
            "topiclog-producers 1\nnext-id 5\nname 1 -1\n",
            "topiclog-producers 1\nnext-id 5\nna%2 1 0\n",
            "topiclog-producers 1\nnext-id 5\n%FF 1 0\n",
            "topiclog-producers 1\nnext-id 5\na 1 0\na 2 0\n",
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
        // Errors name the line, by its byte position.
        assert_eq!(
            decode("topiclog-producers 2\nnext-id 5\nname x 0\n").map_err(|(at, _)| at),
            Err(31)
        );
        assert_eq!(
            decode("topiclog-producers 2\nnext-id\n").map_err(|(at, _)| at),
            Err(21)
        );
    }
}
