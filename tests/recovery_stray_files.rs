//! Files topiclog did not write, or left behind mid-operation, never break an open. A partition
//! with several segments is written and closed (or dropped without close: a crash), then its
//! directory is salted with: files nobody knows (`.DS_Store`, `notes.txt`, names that look like
//! segment files but are not, a subdirectory); files Kafka keeps beside the
//! segments (`leader-epoch-checkpoint`, `partition.metadata`, a producer `.snapshot`); leftovers
//! of interrupted work (`*.deleted`, `*.cleaned`, `*.tmp`, a `.swap` index without its
//! `.log.swap`); and orphan `.index`/`.timeindex`
//! files without a `.log`. The reopen must succeed with every record intact; delete exactly the
//! leftovers and orphans and list them in `removed_files`; leave the unknown files untouched and
//! list exactly them in `ignored_files`; leave Kafka's files untouched and unlisted; not rescan
//! after a clean close because of them; and keep working (appends, close, a quiet second open).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{append_range, assert_range, read_all, segment_path, small_config};
use topiclog::Partition;

const END: i64 = 200;

/// Files placed in the partition directory, by what the open must do with them.
struct Strays {
    /// Unknown: left alone, listed in `ignored_files`.
    unknown: Vec<PathBuf>,
    /// Kafka's own metadata: left alone, listed nowhere.
    kafka: Vec<PathBuf>,
    /// Leftovers and orphans: deleted, listed in `removed_files`.
    leftovers: Vec<PathBuf>,
}

/// Salts `dir` (whose segments are `segments`) with stray files; each holds its own name.
fn salt(dir: &Path, segments: &[i64]) -> Strays {
    let put = |name: &str| {
        let path = dir.join(name);
        fs::write(&path, name).expect("write stray file");
        path
    };
    let subdir = dir.join("backup");
    fs::create_dir(&subdir).expect("subdirectory");
    fs::write(subdir.join(format!("{:020}.log", 0)), b"not a segment").expect("file in subdir");

    let unknown = vec![
        put(".DS_Store"),
        put("notes.txt"),
        put("README"),
        put(&format!("{:020}.log.bak", segments[0])),
        put(&format!("{:020}.txt", segments[1])),
        put(&format!("{:019}.log", 12)),
        subdir,
    ];
    let kafka = vec![
        put("leader-epoch-checkpoint"),
        put("partition.metadata"),
        put(&format!("{:020}.snapshot", segments[1])),
    ];
    let orphan = 77_777;
    let leftovers = vec![
        put(&format!("{:020}.log.deleted", segments[0])),
        put(&format!("{:020}.index.deleted", segments[1])),
        put(&format!("{:020}.timeindex.deleted", 12_345)),
        put(&format!("{:020}.log.cleaned", segments[0])),
        put(&format!("{:020}.index.cleaned", segments[2])),
        // A swap's index without its `.log.swap`: an undone swap.
        put(&format!("{:020}.index.swap", segments[2])),
        put(&format!("{:020}.index.tmp", segments[1])),
        put(".topiclog_cleanshutdown.tmp"),
        put(".topiclog_recovery_point.tmp"),
        // Orphans: indexes whose `.log` is gone.
        put(&format!("{:020}.index", segments[1] + 3)),
        put(&format!("{orphan:020}.index")),
        put(&format!("{orphan:020}.timeindex")),
        put(&format!("{:020}.timeindex", 88_888)),
    ];
    Strays {
        unknown,
        kafka,
        leftovers,
    }
}

fn set(paths: &[PathBuf]) -> BTreeSet<PathBuf> {
    paths.iter().cloned().collect()
}

fn run(clean: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(4096)).expect("open");
    append_range(&log, 0, END);
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 4, "several segments: {segments:?}");
    if clean {
        log.close().expect("close");
    }
    drop(log);
    let strays = salt(dir.path(), &segments);

    let log = Partition::open(dir.path(), small_config(4096)).expect("open with strays");
    let report = log.recovery().clone();
    assert_eq!(
        report.clean_shutdown, clean,
        "stray files do not force a rescan: {report:?}"
    );
    assert!(report.truncations.is_empty(), "{report:?}");
    assert!(report.removed_segments.is_empty(), "{report:?}");
    assert_eq!(
        set(&report.removed_files),
        set(&strays.leftovers),
        "removed files"
    );
    assert_eq!(
        report.removed_files.len(),
        strays.leftovers.len(),
        "each listed once"
    );
    assert_eq!(
        set(&report.ignored_files),
        set(&strays.unknown),
        "ignored files"
    );
    for path in &strays.leftovers {
        assert!(!path.exists(), "{} not removed", path.display());
    }
    for path in strays.unknown.iter().chain(&strays.kafka) {
        assert!(path.exists(), "{} removed", path.display());
        if path.is_file() {
            let name = path.file_name().expect("name").to_str().expect("utf-8");
            assert_eq!(
                fs::read(path).expect("read"),
                name.as_bytes(),
                "{name} changed"
            );
        }
    }
    assert!(
        dir.path()
            .join("backup")
            .join(format!("{:020}.log", 0))
            .exists()
    );
    for &base in &segments {
        for ext in ["log", "index", "timeindex"] {
            assert!(segment_path(dir.path(), base, ext).exists(), "{base}.{ext}");
        }
    }
    assert_eq!(log.segment_base_offsets(), segments);
    assert_eq!(log.next_offset(), END);
    assert_range(&read_all(&log, 0), 0, END);

    // The partition works, and the next open finds nothing to remove.
    append_range(&log, END, END + 10);
    log.close().expect("close");
    drop(log);
    let log = Partition::open(dir.path(), small_config(4096)).expect("second open");
    let report = log.recovery();
    assert!(report.clean_shutdown, "{report:?}");
    assert!(report.removed_files.is_empty(), "{report:?}");
    assert_eq!(set(&report.ignored_files), set(&strays.unknown));
    assert_range(&read_all(&log, 0), 0, END + 10);
}

#[test]
fn stray_files_after_a_clean_close() {
    run(true);
}

#[test]
fn stray_files_after_a_crash() {
    run(false);
}

#[test]
fn directory_with_only_stray_files_opens_as_an_empty_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let put = |name: &str| {
        let path = dir.path().join(name);
        fs::write(&path, name).expect("write");
        path
    };
    let unknown = vec![put(".DS_Store"), put("notes.txt")];
    let kafka = put("leader-epoch-checkpoint");
    let leftovers = vec![
        put(&format!("{:020}.log.deleted", 0)),
        put(&format!("{:020}.log.cleaned", 40)),
        put(&format!("{:020}.log.tmp", 0)),
        // Orphans at base 0, where the new segment goes, and elsewhere.
        put(&format!("{:020}.index", 0)),
        put(&format!("{:020}.timeindex", 0)),
        put(&format!("{:020}.index", 40)),
    ];

    let log = Partition::open(dir.path(), small_config(4096)).expect("open");
    let report = log.recovery().clone();
    assert_eq!(set(&report.removed_files), set(&leftovers), "{report:?}");
    assert_eq!(set(&report.ignored_files), set(&unknown), "{report:?}");
    assert!(kafka.exists());
    assert_eq!(log.segment_base_offsets(), [0]);
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.read(0).expect("reader").count(), 0);
    append_range(&log, 0, 30);
    assert_range(&read_all(&log, 0), 0, 30);
    drop(log);

    let log = Partition::open(dir.path(), small_config(4096)).expect("reopen");
    assert!(log.recovery().removed_files.is_empty());
    assert_range(&read_all(&log, 0), 0, 30);
}

/// Kafka sweeps only regular files (`listFiles` filtered by `isFile`): a subdirectory whose name
/// ends like a leftover is somebody else's, and must not stop the open.
#[test]
fn subdirectories_named_like_leftovers_do_not_break_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Partition::open(dir.path(), small_config(4096)).expect("open");
    append_range(&log, 0, 50);
    log.close().expect("close");
    drop(log);
    let names = [
        "scratch.tmp".to_owned(),
        format!("{:020}.log.deleted", 0),
        format!("{:020}.index.cleaned", 0),
    ];
    let subdirs: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    for subdir in &subdirs {
        fs::create_dir(subdir).expect("subdirectory");
        fs::write(subdir.join("keep"), b"keep").expect("file in subdirectory");
    }

    let log = Partition::open(dir.path(), small_config(4096)).expect("open with subdirectories");
    assert!(
        log.recovery().removed_files.is_empty(),
        "{:?}",
        log.recovery()
    );
    assert_eq!(set(&log.recovery().ignored_files), set(&subdirs));
    for subdir in &subdirs {
        assert!(subdir.join("keep").exists(), "{} touched", subdir.display());
    }
    assert_range(&read_all(&log, 0), 0, 50);
}

/// A file whose name is not UTF-8 is unknown like any other: left alone, and listed.
#[cfg(unix)]
#[test]
fn non_utf8_file_names_are_listed_as_ignored() {
    use std::os::unix::ffi::OsStrExt as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&odd, b"latin-1").expect("write");
    let log = Partition::open(dir.path(), small_config(4096)).expect("open");
    append_range(&log, 0, 5);
    assert!(odd.exists());
    assert_eq!(log.recovery().ignored_files, [odd]);
}
