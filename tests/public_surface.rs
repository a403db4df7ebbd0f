//! The public surface a user meets: what the root exports, where settings live, and how public
//! enums and records print.

use topiclog::config::{Assignor, CompressionType, LogConfig, OffsetReset, TopicConfig};
use topiclog::consumer::RebalanceEvent;
use topiclog::error::IoOp;
use topiclog::record::{Compression, TimestampType};
use topiclog::{Error, Header, Partition, Record, Store};

#[test]
fn a_store_round_trip_needs_only_the_root_and_config() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path())?;
    let topic = store.create_topic("t", TopicConfig::new(1))?;
    let headers = [Header::new(b"h", Some(b"v"))];
    topic
        .partition(0)?
        .append(Record::keyed(b"k", b"v").with_headers(&headers))?;
    let records: Vec<_> = topic.partition(0)?.read(0)?.collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key(), Some(&b"k"[..]));
    store.close()?;

    let log = Partition::open(dir.path().join("p-0"), LogConfig::default())?;
    assert_eq!(log.next_offset(), 0);
    Ok(())
}

#[test]
fn public_enums_print_kafka_names() {
    assert_eq!(CompressionType::Producer.to_string(), "producer");
    assert_eq!(Compression::Lz4.to_string(), "lz4");
    assert_eq!(TimestampType::LogAppendTime.to_string(), "LogAppendTime");
    assert_eq!(OffsetReset::Earliest.to_string(), "earliest");
    assert_eq!(
        Assignor::CooperativeSticky.to_string(),
        "cooperative-sticky"
    );
    assert_eq!(IoOp::Sync.to_string(), "sync");
    let event = RebalanceEvent::Assigned(vec![("t".into(), 0), ("t".into(), 1)]);
    assert_eq!(event.to_string(), "assigned t-0, t-1");
}

#[test]
fn records_debug_as_escaped_bytes() {
    let record = Record::keyed(b"user-7", b"\x00clicked");
    let debug = format!("{record:?}");
    assert!(debug.contains(r#"b"user-7""#), "{debug}");
    assert!(debug.contains(r#"b"\x00clicked""#), "{debug}");
}

#[cfg(feature = "fault-injection")]
#[test]
fn fault_injection_enums_print_what_they_do() {
    use topiclog::testing::{CrashMode, FaultKind, FaultOp};
    assert_eq!(FaultOp::Sync.to_string(), "fdatasync");
    assert_eq!(
        FaultKind::CrashAfterBytes(7).to_string(),
        "crash after 7 bytes"
    );
    assert_eq!(CrashMode::Pages.to_string(), "pages");
}
