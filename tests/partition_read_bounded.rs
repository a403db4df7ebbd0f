//! `read_bounded` returns whole batches up to a byte budget, and always at least the first
//! batch even when it alone exceeds the budget (Kafka's fetch rule), so a reader always moves.

mod common;

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

#[test]
fn bounded_reads_stop_at_batch_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let value = [1u8; 100];
    // 10 batches of 5 records each.
    for _ in 0..10 {
        let records = [Record::new(&value).with_timestamp(0); 5];
        log.append_batch(&records).unwrap();
    }
    let batch_size = {
        log.close().unwrap();
        std::fs::metadata(dir.path().join("00000000000000000000.log"))
            .unwrap()
            .len() as usize
            / 10
    };
    let count = |from: i64, max: usize| log.read_bounded(from, max).unwrap().count();
    assert_eq!(count(0, 0), 5, "the first batch always comes whole");
    assert_eq!(count(0, batch_size - 1), 5);
    assert_eq!(count(0, batch_size), 5);
    assert_eq!(count(0, 2 * batch_size), 10);
    assert_eq!(count(0, 3 * batch_size - 1), 10);
    assert_eq!(count(0, usize::MAX), 50);
    // From the middle of a batch: that batch counts whole, its earlier records are skipped.
    assert_eq!(count(7, batch_size), 3);
    assert_eq!(count(7, 2 * batch_size), 8);
    assert_eq!(count(50, 10), 0, "nothing at the end");
}
