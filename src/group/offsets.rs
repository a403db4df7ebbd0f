//! Committed offsets: one file per consumer group in the store directory, holding all of the
//! group's offsets and replaced atomically and durably ([`disk::write_atomic`]) on every
//! commit, so it never grows beyond one line per partition and a crash leaves either the old
//! or the new file.
//!
//! The file is named `topiclog-group-<id>.offsets`, `<id>` being the group id's UTF-8 bytes in
//! lowercase hex (group ids are arbitrary strings; hex keeps any of them a safe, case-distinct
//! file name). Ids longer than [`MAX_PLAIN_ID_BYTES`] bytes are named by the hex of their first
//! 64 bytes, `-`, and a 64-bit FNV-1a hash of the whole id, which keeps names short. It is a
//! regular file, never a directory (a Kafka broker takes every directory of its log directory
//! for a partition), and cannot be mistaken for a partition directory (`<topic>-<n>`) or clash
//! with `__consumer_offsets-<n>`, `topiclog-topics` or `.lock`.
//!
//! Format: Kafka's text checkpoint (`CheckpointFile`) with the group id after the version:
//!
//! ```text
//! 0                 version
//! my%20group        the group id, percent-encoded: bytes outside `!`..=`~`, and `%`, as %XX
//! 2                 entry count
//! orders 0 42       <topic> <partition> <offset>, one line per partition
//! orders 1 17
//! ```
//!
//! A file that breaks the format, or whose id does not give its file name, is
//! [`Error::Corrupt`] naming the file and the line's byte position. A leftover
//! `topiclog-group-*.offsets.tmp` (a crash during a commit, before the rename) is removed when
//! the store opens; the file it was to replace is intact.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};
use crate::error::{Corruption, Error, Result};

use super::TopicPartition;

/// Start of every group offsets file name.
pub(crate) const FILE_PREFIX: &str = "topiclog-group-";
/// End of every group offsets file name.
pub(crate) const FILE_SUFFIX: &str = ".offsets";
/// End of the temporary file [`disk::write_atomic`] writes before renaming.
const TMP_SUFFIX: &str = ".offsets.tmp";
/// Format version, the first line: 1 ends with a checksum line (see [`crate::sealed`]); 0,
/// written before, has none (Kafka's checkpoint files start at 0 too).
const VERSION: &str = "1";
const VERSION_UNSEALED: &str = "0";
/// The store's list of groups with an offsets file, one percent-encoded id a line after a
/// header, sealed: a group file deleted or renamed is then missed, not silently forgotten.
pub(crate) const GROUPS_FILE: &str = "topiclog-groups";
const GROUPS_HEADER: &str = "topiclog-groups 1";
/// Group ids up to this many bytes are spelled out in hex in the file name (up to 223 bytes
/// with the prefix, suffix and `.tmp`, within the usual 255-byte limit); longer ones are
/// shortened with a hash.
pub(crate) const MAX_PLAIN_ID_BYTES: usize = 100;
/// How many leading bytes of a long group id its file name spells out.
const LONG_ID_PREFIX_BYTES: usize = 64;

/// The offsets a group has committed.
pub(crate) type Offsets = BTreeMap<TopicPartition, i64>;

/// The file name of `group`'s offsets.
pub(crate) fn file_name(group: &str) -> String {
    let bytes = group.as_bytes();
    let mut name = String::from(FILE_PREFIX);
    if bytes.len() <= MAX_PLAIN_ID_BYTES {
        push_hex(&mut name, bytes);
    } else {
        push_hex(
            &mut name,
            bytes.get(..LONG_ID_PREFIX_BYTES).unwrap_or(bytes),
        );
        let _ = write!(name, "-{:016x}", fnv1a_64(bytes));
    }
    name.push_str(FILE_SUFFIX);
    name
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// FNV-1a, 64 bits: fixed forever (unlike std's hasher), since file names depend on it.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The file's text for `group` holding `offsets`.
pub(crate) fn encode(group: &str, offsets: &Offsets) -> String {
    let mut text = format!(
        "{VERSION}\n{}\n{}\n",
        crate::percent::encode(group),
        offsets.len()
    );
    for ((topic, partition), offset) in offsets {
        let _ = writeln!(text, "{topic} {partition} {offset}");
    }
    text
}

/// Parses a file's text: the group id and its offsets, or the byte position of the first bad
/// line and what is wrong with it.
pub(crate) fn decode(text: &str) -> std::result::Result<(String, Offsets), (u64, &'static str)> {
    let mut lines = crate::sealed::lines(text);
    let end = text.len() as u64;
    let mut next = |missing: &'static str| lines.next().ok_or((end, missing));
    let (at, version) = next("empty file")?;
    if version != VERSION && version != VERSION_UNSEALED {
        return Err((at, "unknown group offsets version"));
    }
    let (at, id) = next("no group id")?;
    let group = crate::percent::decode(id)
        .filter(|g| !g.is_empty())
        .ok_or((at, "malformed group id"))?;
    let (at, count) = next("no entry count")?;
    let count: usize = count.parse().map_err(|_| (at, "bad entry count"))?;
    let mut offsets = Offsets::new();
    for (at, line) in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let [topic, partition, offset] = fields.as_slice() else {
            return Err((at, "an entry is not `<topic> <partition> <offset>`"));
        };
        crate::layout::validate_topic_name(topic).map_err(|_| (at, "invalid topic name"))?;
        let partition: u32 = partition
            .parse()
            .map_err(|_| (at, "partition is not a number"))?;
        let offset: i64 = offset
            .parse()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or((at, "offset is not a non-negative number"))?;
        if offsets
            .insert(((*topic).to_owned(), partition), offset)
            .is_some()
        {
            return Err((at, "partition listed twice"));
        }
    }
    if offsets.len() != count {
        return Err((end, "entry count does not match its entries"));
    }
    Ok((group, offsets))
}

/// Replaces `group`'s file with `offsets`, atomically and durably. A group's first file is
/// then listed in [`GROUPS_FILE`] (a crash in between leaves a file the next load lists).
pub(crate) fn write(disk: &dyn Disk, dir: &Path, group: &str, offsets: &Offsets) -> Result<()> {
    let path = dir.join(file_name(group));
    let new = disk::file_len(disk, &path)?.is_none();
    disk::write_atomic(
        disk,
        &path,
        crate::sealed::seal(encode(group, offsets)).as_bytes(),
    )?;
    if new {
        let mut listed = read_groups(disk, dir)?.unwrap_or_default();
        if listed.insert(group.to_owned()) {
            write_groups(disk, dir, &listed)?;
        }
    }
    Ok(())
}

/// Removes `group`'s file, durably; a missing file is no error. The group leaves
/// [`GROUPS_FILE`] first (a crash in between leaves a file the next load lists again).
pub(crate) fn remove(disk: &dyn Disk, dir: &Path, group: &str) -> Result<()> {
    if let Some(mut listed) = read_groups(disk, dir)?
        && listed.remove(group)
    {
        write_groups(disk, dir, &listed)?;
    }
    disk::remove_file(disk, &dir.join(file_name(group)))?;
    disk::sync_dir(disk, dir)
}

/// The groups [`GROUPS_FILE`] lists; `None` if there is no such file (a store from before
/// it, or without groups).
fn read_groups(disk: &dyn Disk, dir: &Path) -> Result<Option<std::collections::BTreeSet<String>>> {
    let path = dir.join(GROUPS_FILE);
    let bytes = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(file) => file.read_all()?,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let body = crate::sealed::open(&bytes, &path, crate::sealed::Required::Yes)?;
    let corrupt = |why| Error::corrupt(&path, 0, Corruption::Metadata(why));
    let text = std::str::from_utf8(body).map_err(|_| corrupt("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(GROUPS_HEADER) {
        return Err(corrupt("not a version 1 groups file"));
    }
    lines
        .map(|line| crate::percent::decode(line).ok_or_else(|| corrupt("malformed group id")))
        .collect::<Result<_>>()
        .map(Some)
}

fn write_groups(
    disk: &dyn Disk,
    dir: &Path,
    groups: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let mut text = format!("{GROUPS_HEADER}\n");
    for group in groups {
        let _ = writeln!(text, "{}", crate::percent::encode(group));
    }
    disk::write_atomic(
        disk,
        &dir.join(GROUPS_FILE),
        crate::sealed::seal(text).as_bytes(),
    )
}

/// Reads every group's offsets from the store directory, removing temporary files a crash
/// left behind. Files that do not look like group files are not touched.
pub(crate) fn load_all(disk: &dyn Disk, dir: &Path) -> Result<BTreeMap<String, Offsets>> {
    let mut groups = BTreeMap::new();
    for entry in disk::list_dir(disk, dir)? {
        let Some(name) = entry.name.to_str().filter(|_| entry.is_file) else {
            continue;
        };
        if !name.starts_with(FILE_PREFIX) {
            continue;
        }
        let path = dir.join(name);
        if name.ends_with(TMP_SUFFIX) {
            if !disk.is_read_only() {
                disk::remove_file(disk, &path)?;
            }
            continue;
        }
        if !name.ends_with(FILE_SUFFIX) {
            continue;
        }
        let bytes = File::open(disk, path.clone(), OpenMode::Read)?.read_all()?;
        let (group, offsets) = parse_file(&bytes, &path, name)?;
        groups.insert(group, offsets);
    }
    let listed = read_groups(disk, dir)?;
    if let Some(listed) = &listed
        && let Some(missing) = listed.iter().find(|g| !groups.contains_key(*g))
    {
        return Err(Error::corrupt(
            dir.join(file_name(missing)),
            0,
            Corruption::Metadata("a group listed in topiclog-groups has lost its offsets file"),
        ));
    }
    // Files the list lacks: a store from before the list, or a crash before a group's first
    // file was listed.
    let unlisted = listed
        .as_ref()
        .is_none_or(|listed| groups.keys().any(|g| !listed.contains(g)));
    if unlisted && !groups.is_empty() && !disk.is_read_only() {
        write_groups(disk, dir, &groups.keys().cloned().collect())?;
    }
    Ok(groups)
}

/// A group offsets file's group id and offsets, checked against its checksum and its file
/// name; [`Error::Corrupt`] naming `path` and the byte otherwise.
fn parse_file(bytes: &[u8], path: &Path, name: &str) -> Result<(String, Offsets)> {
    let required = if bytes.starts_with(b"0\n") {
        crate::sealed::Required::No
    } else {
        crate::sealed::Required::Yes
    };
    let bytes = crate::sealed::open(bytes, path, required)?;
    let corrupt = |position, why| Error::corrupt(path, position, Corruption::Metadata(why));
    let text =
        std::str::from_utf8(bytes).map_err(|e| corrupt(e.valid_up_to() as u64, "not UTF-8"))?;
    let (group, offsets) = decode(text).map_err(|(at, why)| corrupt(at, why))?;
    if file_name(&group) != name {
        return Err(corrupt(0, "group id does not match the file name"));
    }
    Ok((group, offsets))
}

/// `group`'s committed offsets as its file holds them now; `None` without a file. Needs no
/// lock: the file is only ever replaced whole.
pub(crate) fn read(disk: &dyn Disk, dir: &Path, group: &str) -> Result<Option<Offsets>> {
    let name = file_name(group);
    let path = dir.join(&name);
    let bytes = match File::open(disk, path.clone(), OpenMode::Read) {
        Ok(file) => file.read_all()?,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    parse_file(&bytes, &path, &name).map(|(_, offsets)| Some(offsets))
}

/// The groups with an offsets file, as [`GROUPS_FILE`] lists them.
pub(crate) fn list(disk: &dyn Disk, dir: &Path) -> Result<Vec<String>> {
    Ok(read_groups(disk, dir)?
        .map(|groups| groups.into_iter().collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OsDisk;

    fn offsets(entries: &[(&str, u32, i64)]) -> Offsets {
        entries
            .iter()
            .map(|(t, p, o)| (((*t).to_owned(), *p), *o))
            .collect()
    }

    #[test]
    fn file_names_are_hex_and_never_partition_directories() {
        assert_eq!(file_name("a"), "topiclog-group-61.offsets");
        assert_eq!(file_name("G/ü"), "topiclog-group-472fc3bc.offsets");
        assert_ne!(file_name("Group"), file_name("group"), "case-distinct");
        for group in ["a", "0", "orders-3", "__consumer_offsets"] {
            let name = file_name(group);
            assert!(
                crate::layout::parse_partition_dir(&name).is_none(),
                "{name}"
            );
        }
        let long = "x".repeat(MAX_PLAIN_ID_BYTES + 1);
        let long_name = file_name(&long);
        assert!(long_name.len() + ".tmp".len() <= 255, "{long_name}");
        assert_ne!(long_name, file_name(&"x".repeat(MAX_PLAIN_ID_BYTES + 2)));
        assert!(file_name(&"y".repeat(MAX_PLAIN_ID_BYTES)).len() + ".tmp".len() <= 255);
    }

    #[test]
    fn text_round_trips_any_group_id() {
        let entries = offsets(&[
            ("orders", 0, 42),
            ("orders", 1, 0),
            ("a.b_c-d", 7, i64::MAX),
        ]);
        for group in ["g", "my group", "100%", "line\nbreak", "ünï", " "] {
            let text = encode(group, &entries);
            assert_eq!(
                decode(&text),
                Ok((group.to_owned(), entries.clone())),
                "{text}"
            );
        }
        assert_eq!(
            encode("my group", &offsets(&[("orders", 1, 17)])),
            "1\nmy%20group\n1\norders 1 17\n"
        );
        assert_eq!(decode("0\ng\n0\n"), Ok(("g".to_owned(), Offsets::new())));
    }

    #[test]
    fn malformed_text_says_where_and_what() {
        for (text, at, says) in [
            ("", 0, "empty file"),
            ("2\ng\n0\n", 0, "version"),
            ("0\n", 2, "no group id"),
            ("0\n\n0\n", 2, "malformed group id"),
            ("0\na b\n0\n", 2, "malformed group id"),
            ("0\n%zz\n0\n", 2, "malformed group id"),
            ("0\n%ff\n0\n", 2, "malformed group id"),
            ("0\ng\n", 4, "no entry count"),
            ("0\ng\nx\n", 4, "bad entry count"),
            ("0\ng\n1\nt 0\n", 6, "not `<topic>"),
            ("0\ng\n1\nt  0 1\n", 6, "not `<topic>"),
            ("0\ng\n1\nt/x 0 1\n", 6, "invalid topic"),
            ("0\ng\n1\nt -1 1\n", 6, "partition"),
            ("0\ng\n1\nt 0 -1\n", 6, "offset"),
            ("0\ng\n2\nt 0 1\nt 0 2\n", 12, "twice"),
            ("0\ng\n2\nt 0 1\n", 12, "count does not match"),
            ("0\ng\n1\nt 0 1\n\n", 12, "not `<topic>"),
        ] {
            let (position, why) = decode(text).expect_err(text);
            assert_eq!(position, at, "{text:?}: {why}");
            assert!(why.contains(says), "{text:?}: {why}");
        }
    }

    #[test]
    fn write_then_load_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = OsDisk;
        assert!(load_all(&disk, dir.path()).expect("loads").is_empty());
        let first = offsets(&[("orders", 0, 5)]);
        let second = offsets(&[("orders", 0, 9), ("payments", 2, 1)]);
        write(&disk, dir.path(), "one", &first).expect("writes");
        write(&disk, dir.path(), "two words", &first).expect("writes");
        write(&disk, dir.path(), "one", &second).expect("replaces");
        // Files that are not group files are left alone.
        std::fs::write(dir.path().join("topiclog-topics"), "x").expect("write");
        std::fs::write(dir.path().join("topiclog-group-notes.txt"), "x").expect("write");
        std::fs::create_dir(dir.path().join("orders-0")).expect("mkdir");
        let loaded = load_all(&disk, dir.path()).expect("loads");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["one"], second);
        assert_eq!(loaded["two words"], first);
        remove(&disk, dir.path(), "one").expect("removes");
        remove(&disk, dir.path(), "never").expect("a missing file is fine");
        assert_eq!(
            load_all(&disk, dir.path())
                .expect("loads")
                .keys()
                .collect::<Vec<_>>(),
            ["two words"]
        );
    }

    #[test]
    fn a_leftover_temporary_file_is_removed_and_the_old_file_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = OsDisk;
        write(&disk, dir.path(), "g", &offsets(&[("t", 0, 3)])).expect("writes");
        let tmp = dir.path().join(format!("{}.tmp", file_name("g")));
        std::fs::write(&tmp, "0\ng\n1\nt 0 999").expect("a half-written replacement");
        let loaded = load_all(&disk, dir.path()).expect("loads");
        assert_eq!(loaded["g"], offsets(&[("t", 0, 3)]));
        assert!(!tmp.exists(), "temporary file removed");
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = OsDisk;
        let path = dir.path().join(file_name("g"));
        for (contents, position) in [
            (&b"0\ng\n2\nt 0 1\n"[..], 12),
            (b"0\ng\n1\nt 0 1\xff\n", 11),
            (b"0\nh\n0\n", 0),
        ] {
            std::fs::write(&path, contents).expect("write");
            match load_all(&disk, dir.path()) {
                Err(Error::Corrupt {
                    path: p,
                    position: at,
                    kind: Corruption::Metadata(_),
                }) => {
                    assert_eq!(p, path);
                    assert_eq!(at, position, "{contents:?}");
                }
                other => panic!("{contents:?}: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn a_power_loss_during_a_commit_keeps_the_old_or_the_new_offsets() {
        use crate::disk::fault::{FaultDisk, FaultKind, FaultOp};

        let dir = Path::new("/store");
        for calls in 0..12u64 {
            for op in [
                FaultOp::Write,
                FaultOp::Sync,
                FaultOp::Rename,
                FaultOp::SyncDir,
            ] {
                let disk = FaultDisk::new();
                disk::create_dir_all(&disk, dir).expect("mkdir");
                disk::sync_dir(&disk, Path::new("/")).expect("sync root");
                let old = offsets(&[("t", 0, 1)]);
                let new = offsets(&[("t", 0, 2), ("t", 1, 5)]);
                write(&disk, dir, "g", &old).expect("first commit");
                disk.fail_after(op, calls, FaultKind::CrashAfterBytes(3));
                let committed = write(&disk, dir, "g", &new).is_ok();
                disk.crash(calls);
                let loaded = load_all(&disk, dir).expect("loads after a crash");
                let got = loaded.get("g").expect("the group survives");
                if committed {
                    assert_eq!(got, &new, "{op:?} {calls}: a returned commit is durable");
                } else {
                    assert!(got == &old || got == &new, "{op:?} {calls}: {got:?}");
                }
                let names = disk.file_names(dir).expect("list");
                assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
            }
        }
    }
}
