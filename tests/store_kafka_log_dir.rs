//! A Kafka broker's log directory opens as a store: its `<topic>-<n>` partition folders become
//! topics with retention off (nothing is deleted behind the user's back), a missing log-start
//! checkpoint means the log starts at its first segment, records read back exactly, Kafka's
//! own files are left alone, and deleted/future folders are skipped. Folders added later are
//! adopted at the next open.

mod common;

use std::path::Path;

use topiclog::Store;

fn copy_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kafka-made")
        .join(name);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn a_broker_log_directory_opens_as_topics() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("plain-0", &dir.path().join("events-0"));
    copy_fixture("gaps-0", &dir.path().join("events-1"));
    std::fs::write(dir.path().join("meta.properties"), "version=1\n").unwrap();
    std::fs::write(
        dir.path().join("recovery-point-offset-checkpoint"),
        "0\n0\n",
    )
    .unwrap();
    copy_fixture(
        "plain-0",
        &dir.path()
            .join("events-2.0123456789abcdef0123456789abcdef-future"),
    );
    std::fs::create_dir(dir.path().join("not a partition")).unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.topics(), ["events"]);
    let events = store.topic("events").unwrap();
    assert_eq!(events.partition_count(), 2);
    assert_eq!(
        events.config().retention_ms(),
        -1,
        "adopted topics keep everything"
    );
    let p0 = events.partition(0).unwrap();
    assert_eq!((p0.log_start_offset(), p0.next_offset()), (0, 500));
    let p1 = events.partition(1).unwrap();
    assert_eq!((p1.log_start_offset(), p1.next_offset()), (1000, 1679));
    assert_eq!(p0.read(0).unwrap().count(), 500);
    assert!(
        store.enforce_retention().unwrap().is_empty(),
        "nothing expires"
    );
    assert!(dir.path().join("meta.properties").exists());
    assert!(
        dir.path()
            .join("events-2.0123456789abcdef0123456789abcdef-future")
            .exists()
    );
    drop(store);

    // A folder added later is adopted on the next open.
    copy_fixture("transactions-0", &dir.path().join("payments-0"));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.topics(), ["events", "payments"]);
    assert_eq!(
        store
            .topic("payments")
            .unwrap()
            .partition(0)
            .unwrap()
            .next_offset(),
        506
    );
}
