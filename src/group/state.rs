//! A group's membership as every process of a store sees it: one file per group in the store
//! directory, `topiclog-group-<id>.members` (the same `<id>` as the group's offsets file),
//! read and replaced only under the store's groups lock ([`super::lock`]).
//!
//! The file is soft state, like a Kafka coordinator's memory: it is replaced atomically but
//! not synced, since after a power loss no member is alive to need it. A file that is missing,
//! cut short or damaged reads as a group with no members (logged at warn): every member then
//! finds itself unknown at its next call and joins again, which is the documented repair.
//! Committed offsets live in the offsets file, which is durable and checked strictly.
//!
//! Format (sealed with a checksum line, see [`crate::sealed`]):
//!
//! ```text
//! topiclog-group-members 1
//! group billing                         the group id, percent-encoded
//! generation 7
//! assignor range
//! count orders 6                        partition counts the assignment used, per topic
//! member <id> <client> <pid> <host> <session.timeout.ms> <max.poll.interval.ms> <heartbeat> <sync>
//! topics orders                         the member's subscription (follows its member line)
//! target orders:0 orders:1              what the assignor gives it
//! owned orders:0                        what it owns now
//! ```
//!
//! Ids, client ids and host names are percent-encoded; times are milliseconds since the Unix
//! epoch by the store's clock (every process of a store shares the machine's clock).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use crate::disk::{self, Disk, File, OpenMode};

use super::TopicPartition;
use super::assignor::Assignor;
use super::offsets;

const HEADER: &str = "topiclog-group-members 1";
/// End of every group membership file name.
pub(crate) const FILE_SUFFIX: &str = ".members";

/// One member as the file records it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MemberState {
    /// The consumer's `client.id`.
    pub client_id: String,
    /// The member's process.
    pub pid: u32,
    /// The member's host name.
    pub host: String,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: i64,
    pub max_poll_interval_ms: i64,
    /// When the member's process last said it is alive.
    pub last_heartbeat_ms: i64,
    /// When the member last polled (synced).
    pub last_sync_ms: i64,
    /// What the assignor gives it.
    pub target: BTreeSet<TopicPartition>,
    /// What it owns.
    pub owned: BTreeSet<TopicPartition>,
}

impl MemberState {
    /// Why the member is gone by `now_ms`, if it is: no heartbeat within its session timeout,
    /// or no poll within its poll interval.
    pub(crate) fn expired(&self, now_ms: i64) -> Option<&'static str> {
        if now_ms
            >= self
                .last_heartbeat_ms
                .saturating_add(self.session_timeout_ms)
        {
            Some("no heartbeat within session.timeout.ms")
        } else if now_ms >= self.last_sync_ms.saturating_add(self.max_poll_interval_ms) {
            Some("no poll within max.poll.interval.ms")
        } else {
            None
        }
    }
}

/// A group's shared state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GroupState {
    /// Grows by one at every rebalance.
    pub generation: u64,
    /// The assignor of the current members (the first joiner's).
    pub assignor: Assignor,
    /// Partition counts of the topics members subscribe to (topics that exist).
    pub partition_counts: BTreeMap<String, u32>,
    pub members: BTreeMap<String, MemberState>,
}

impl GroupState {
    /// Who owns each owned partition.
    pub(crate) fn owners(&self) -> BTreeMap<TopicPartition, String> {
        self.members
            .iter()
            .flat_map(|(id, m)| m.owned.iter().map(move |tp| (tp.clone(), id.clone())))
            .collect()
    }
}

/// The file name of `group`'s membership.
pub(crate) fn file_name(group: &str) -> String {
    let offsets = offsets::file_name(group);
    let stem = offsets
        .strip_suffix(offsets::FILE_SUFFIX)
        .unwrap_or(&offsets);
    format!("{stem}{FILE_SUFFIX}")
}

/// The file's text for `group` in `state`.
pub(crate) fn encode(group: &str, state: &GroupState) -> String {
    let pct = crate::percent::encode;
    let mut text = format!(
        "{HEADER}\ngroup {}\ngeneration {}\nassignor {}\n",
        pct(group),
        state.generation,
        state.assignor
    );
    for (topic, count) in &state.partition_counts {
        let _ = writeln!(text, "count {topic} {count}");
    }
    let partitions = |set: &BTreeSet<TopicPartition>| {
        set.iter()
            .map(|(t, p)| format!(" {t}:{p}"))
            .collect::<String>()
    };
    for (id, m) in &state.members {
        let _ = writeln!(
            text,
            "member {} {} {} {} {} {} {} {}",
            pct(id),
            pct(&m.client_id),
            m.pid,
            pct(&m.host),
            m.session_timeout_ms,
            m.max_poll_interval_ms,
            m.last_heartbeat_ms,
            m.last_sync_ms
        );
        let topics: String = m.topics.iter().map(|t| format!(" {t}")).collect();
        let _ = writeln!(text, "topics{topics}");
        let _ = writeln!(text, "target{}", partitions(&m.target));
        let _ = writeln!(text, "owned{}", partitions(&m.owned));
    }
    crate::sealed::seal(text)
}

/// Parses a file's text (checksum line already checked): the group id and its state, or the
/// byte position of the first bad line and what is wrong with it.
pub(crate) fn decode(text: &str) -> std::result::Result<(String, GroupState), (u64, &'static str)> {
    let mut lines = crate::sealed::lines(text);
    let end = text.len() as u64;
    let mut next = |missing: &'static str| lines.next().ok_or((end, missing));
    let (at, header) = next("empty file")?;
    if header != HEADER {
        return Err((at, "not a version 1 group membership file"));
    }
    let (at, line) = next("no group id")?;
    let group = line
        .strip_prefix("group ")
        .and_then(crate::percent::decode)
        .filter(|g| !g.is_empty())
        .ok_or((at, "malformed group id"))?;
    let (at, line) = next("no generation")?;
    let generation = line
        .strip_prefix("generation ")
        .and_then(|g| g.parse().ok())
        .ok_or((at, "malformed generation"))?;
    let (at, line) = next("no assignor")?;
    let assignor = line
        .strip_prefix("assignor ")
        .and_then(|a| a.parse().ok())
        .ok_or((at, "unknown assignor"))?;
    let mut state = GroupState {
        generation,
        assignor,
        ..GroupState::default()
    };
    let mut current: Option<String> = None;
    for (at, line) in lines {
        let mut fields = line.split(' ');
        let tag = fields.next().unwrap_or("");
        let fields: Vec<&str> = fields.collect();
        match tag {
            "count" => {
                let [topic, count] = fields.as_slice() else {
                    return Err((at, "a count is not `count <topic> <partitions>`"));
                };
                crate::layout::validate_topic_name(topic).map_err(|_| (at, "invalid topic"))?;
                let count = count.parse().map_err(|_| (at, "bad partition count"))?;
                state.partition_counts.insert((*topic).to_owned(), count);
            }
            "member" => {
                let (id, member) = decode_member(&fields).ok_or((at, "malformed member line"))?;
                if state.members.insert(id.clone(), member).is_some() {
                    return Err((at, "member listed twice"));
                }
                current = Some(id);
            }
            "topics" | "target" | "owned" => {
                let member = current
                    .as_ref()
                    .and_then(|id| state.members.get_mut(id))
                    .ok_or((at, "a member's list before any member"))?;
                match tag {
                    "topics" => {
                        for topic in &fields {
                            crate::layout::validate_topic_name(topic)
                                .map_err(|_| (at, "invalid topic"))?;
                            member.topics.insert((*topic).to_owned());
                        }
                    }
                    _ => {
                        let set: BTreeSet<TopicPartition> = fields
                            .iter()
                            .map(|f| parse_partition(f))
                            .collect::<Option<_>>()
                            .ok_or((at, "a partition is not `<topic>:<number>`"))?;
                        if tag == "target" {
                            member.target = set;
                        } else {
                            member.owned = set;
                        }
                    }
                }
            }
            _ => return Err((at, "unknown line")),
        }
    }
    let mut owners = BTreeSet::new();
    for member in state.members.values() {
        if member.owned.iter().any(|tp| !owners.insert(tp.clone())) {
            return Err((end, "a partition has two owners"));
        }
    }
    Ok((group, state))
}

fn decode_member(fields: &[&str]) -> Option<(String, MemberState)> {
    let [id, client, pid, host, session, poll, heartbeat, sync] = fields else {
        return None;
    };
    let id = crate::percent::decode(id).filter(|id| !id.is_empty())?;
    Some((
        id,
        MemberState {
            client_id: crate::percent::decode(client)?,
            pid: pid.parse().ok()?,
            host: crate::percent::decode(host)?,
            session_timeout_ms: session.parse().ok()?,
            max_poll_interval_ms: poll.parse().ok()?,
            last_heartbeat_ms: heartbeat.parse().ok()?,
            last_sync_ms: sync.parse().ok()?,
            ..MemberState::default()
        },
    ))
}

fn parse_partition(field: &str) -> Option<TopicPartition> {
    let (topic, number) = field.rsplit_once(':')?;
    crate::layout::validate_topic_name(topic).ok()?;
    Some((topic.to_owned(), number.parse().ok()?))
}

/// `group`'s state as its file holds it. A missing file is a group with no members; so is a
/// damaged one (the repair: members join again), logged at warn with the file and position.
pub(crate) fn load(disk: &dyn Disk, dir: &Path, group: &str) -> crate::error::Result<GroupState> {
    let path = dir.join(file_name(group));
    if disk::file_len(disk, &path)?.is_none() {
        return Ok(GroupState::default());
    }
    let bytes = File::open(disk, path.clone(), OpenMode::Read)?.read_all()?;
    match parse(&bytes, &path, group) {
        Ok(state) => Ok(state),
        Err(problem) => {
            log::warn!(
                "group {group}: membership file {} is damaged ({problem}); every member joins again",
                path.display()
            );
            Ok(GroupState::default())
        }
    }
}

/// Checks a membership file's bytes: its state, or what is wrong (for `verify` and [`load`]).
pub(crate) fn parse(bytes: &[u8], path: &Path, group: &str) -> Result<GroupState, String> {
    let body = crate::sealed::open(bytes, path, crate::sealed::Required::Yes)
        .map_err(|e| e.to_string())?;
    let text =
        std::str::from_utf8(body).map_err(|e| format!("not UTF-8 at byte {}", e.valid_up_to()))?;
    let (id, state) = decode(text).map_err(|(at, why)| format!("{why} at byte {at}"))?;
    if id != group {
        return Err(format!("it names group {id:?}"));
    }
    Ok(state)
}

/// Replaces `group`'s file with `state` (atomically, unsynced: soft state). A group without
/// members keeps its file, so that its generation only grows.
pub(crate) fn save(
    disk: &dyn Disk,
    dir: &Path,
    group: &str,
    state: &GroupState,
) -> crate::error::Result<()> {
    let path = dir.join(file_name(group));
    disk::write_atomic_unsynced(disk, &path, encode(group, state).as_bytes())
}

/// Every membership file in the store directory: its path, name and bytes (files removed
/// while listed are left out).
fn member_files(
    disk: &dyn Disk,
    dir: &Path,
) -> crate::error::Result<Vec<(std::path::PathBuf, String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in disk::list_dir(disk, dir)? {
        let Some(name) = entry.name.to_str().filter(|_| entry.is_file) else {
            continue;
        };
        if !(name.starts_with(offsets::FILE_PREFIX) && name.ends_with(FILE_SUFFIX)) {
            continue;
        }
        let path = dir.join(name);
        if let Ok(bytes) = File::open(disk, path.clone(), OpenMode::Read).and_then(|f| f.read_all())
        {
            files.push((path, name.to_owned(), bytes));
        }
    }
    Ok(files)
}

/// A membership file's group, checked against its checksum, format and name.
fn check_file(bytes: &[u8], path: &Path, name: &str) -> Result<String, String> {
    let body = crate::sealed::open(bytes, path, crate::sealed::Required::Yes)
        .map_err(|e| e.to_string())?;
    let text =
        std::str::from_utf8(body).map_err(|e| format!("not UTF-8 at byte {}", e.valid_up_to()))?;
    let (group, _) = decode(text).map_err(|(at, why)| format!("{why} at byte {at}"))?;
    if file_name(&group) != name {
        return Err("the group id does not match the file name".to_owned());
    }
    Ok(group)
}

/// The groups with a membership file (damaged ones are left out, and logged by [`load`] when
/// their group is used).
pub(crate) fn list(disk: &dyn Disk, dir: &Path) -> crate::error::Result<Vec<String>> {
    Ok(member_files(disk, dir)?
        .into_iter()
        .filter_map(|(path, name, bytes)| check_file(&bytes, &path, &name).ok())
        .collect())
}

/// Every membership file that does not read, with what is wrong (for `verify`: an open
/// repairs them by reading no members).
pub(crate) fn check_all(
    disk: &dyn Disk,
    dir: &Path,
) -> crate::error::Result<Vec<(std::path::PathBuf, String)>> {
    Ok(member_files(disk, dir)?
        .into_iter()
        .filter_map(|(path, name, bytes)| check_file(&bytes, &path, &name).err().map(|e| (path, e)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupState {
        let tp = |t: &str, p| (t.to_owned(), p);
        let mut state = GroupState {
            generation: 7,
            assignor: Assignor::CooperativeSticky,
            ..GroupState::default()
        };
        state.partition_counts.insert("orders".into(), 3);
        state.members.insert(
            "worker 1".into(),
            MemberState {
                client_id: "cli%ent".into(),
                pid: 42,
                host: "box".into(),
                topics: ["orders".to_owned()].into(),
                session_timeout_ms: 45_000,
                max_poll_interval_ms: 300_000,
                last_heartbeat_ms: 1_000,
                last_sync_ms: 900,
                target: [tp("orders", 0), tp("orders", 2)].into(),
                owned: [tp("orders", 0)].into(),
            },
        );
        state.members.insert(
            "w2".into(),
            MemberState {
                topics: ["orders".to_owned()].into(),
                target: [tp("orders", 1)].into(),
                ..MemberState::default()
            },
        );
        state
    }

    #[test]
    fn state_round_trips_through_its_text() {
        let state = sample();
        let text = encode("g 1", &state);
        let path = Path::new("x");
        assert_eq!(parse(text.as_bytes(), path, "g 1"), Ok(state));
        assert!(parse(text.as_bytes(), path, "other").is_err());
        assert!(text.contains("member worker%201 cli%25ent 42 box"));
    }

    #[test]
    fn damage_is_reported_with_where() {
        let text = encode("g", &sample());
        let path = Path::new("x");
        for cut in [0, 10, text.len() / 2, text.len() - 3] {
            assert!(
                parse(&text.as_bytes()[..cut], path, "g").is_err(),
                "cut {cut}"
            );
        }
        let flipped = text.replace("generation 7", "generation 8");
        assert!(parse(flipped.as_bytes(), path, "g").is_err());
        // Two owners of one partition is refused even with a valid checksum.
        let two = crate::sealed::seal(
            "topiclog-group-members 1\ngroup g\ngeneration 1\nassignor range\n\
             member a a 1 h 1 1 1 1\ntopics t\ntarget\nowned t:0\n\
             member b b 1 h 1 1 1 1\ntopics t\ntarget\nowned t:0\n"
                .to_owned(),
        );
        let err = parse(two.as_bytes(), path, "g").unwrap_err();
        assert!(err.contains("two owners"), "{err}");
    }

    #[test]
    fn membership_files_sit_beside_offsets_files() {
        assert_eq!(file_name("a"), "topiclog-group-61.members");
    }

    #[test]
    fn expiry_uses_both_timers() {
        let m = MemberState {
            session_timeout_ms: 10,
            max_poll_interval_ms: 100,
            last_heartbeat_ms: 50,
            last_sync_ms: 0,
            ..MemberState::default()
        };
        assert_eq!(m.expired(59), None);
        assert!(m.expired(60).is_some_and(|why| why.contains("session")));
        let m = MemberState {
            last_heartbeat_ms: 1_000,
            ..m
        };
        assert!(m.expired(100).is_some_and(|why| why.contains("poll")));
    }
}
