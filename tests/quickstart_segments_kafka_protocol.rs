//! Every segment the quickstart example writes is Kafka's format as an independent
//! implementation reads it: the `kafka-protocol` crate decodes each `.log` file whole (CRCs
//! checked) to exactly the records the example wrote, in offset order, and the index files are
//! trimmed to whole entries.

mod common;

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use kafka_protocol::records::RecordBatchDecoder;

#[test]
fn quickstart_segments_decode_with_kafka_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = quickstart::run(dir.path()).expect("quickstart runs");
    assert_eq!(summary.records_read as i64, quickstart::RECORDS);
    assert!(summary.segments > 1, "the example rolls segments");

    let logs = common::segment_logs(dir.path());
    assert_eq!(logs.len(), summary.segments);
    let mut next = 0i64;
    for log in &logs {
        let data = std::fs::read(log).expect("read segment");
        let mut bytes = &data[..];
        let batches = RecordBatchDecoder::decode_all(&mut bytes).expect("kafka-protocol decodes");
        assert!(bytes.is_empty(), "{}: whole batches only", log.display());
        let base: i64 = log
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .expect("name");
        assert_eq!(base, next, "segment named after its base offset");
        for batch in batches {
            for record in batch.records {
                assert_eq!(record.offset, next);
                let i = next;
                assert_eq!(record.timestamp, 1_700_000_000_000 + i * 10);
                assert_eq!(
                    record.key.as_deref(),
                    Some(format!("user-{}", i % 97).as_bytes())
                );
                assert_eq!(record.value.is_none(), i % 100 == 0);
                assert_eq!(record.headers.len(), 2);
                next += 1;
            }
        }
        for (ext, entry) in [("index", 8), ("timeindex", 12)] {
            let len = std::fs::metadata(log.with_extension(ext))
                .expect("index exists")
                .len();
            assert_eq!(len % entry, 0, "{ext} trimmed to whole entries");
            assert!(len < 10 * 1024 * 1024, "{ext} not left preallocated");
        }
    }
    assert_eq!(next, summary.next_offset);
}
