//! A sequential read keeps the process's resident memory flat, whatever the log's size: the
//! reader lets the mapped pages it passed go (`Reader` releases them every MiB), so scanning a
//! log of 160 MiB grows the resident set by a few MiB, not by the log, and not at all once the
//! scan is under way (a page left behind at each release would add 4 KiB a MiB). Linux only (it reads
//! `VmRSS` from `/proc/self/status`).
#![cfg(target_os = "linux")]

use topiclog::Partition;
use topiclog::config::LogConfig;
use topiclog::record::Record;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_sequential_read_keeps_resident_memory_flat() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .unwrap();
    let value = vec![b'v'; 1024];
    let batch: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&value)).collect();
    {
        let log = Partition::open(dir.path(), config.clone()).unwrap();
        for _ in 0..160 {
            log.append_batch(&batch).unwrap();
        }
        log.close().unwrap();
    }
    let log = Partition::open(dir.path(), config).unwrap();
    let before = rss_kib();
    let (mut records, mut peak, mut under_way, mut late_peak) = (0u64, before, 0, 0);
    for record in log.read(0).unwrap() {
        assert_eq!(record.unwrap().value().map(<[u8]>::len), Some(1024));
        records += 1;
        if records % 1000 == 0 {
            let now = rss_kib();
            peak = peak.max(now);
            if records == 16_000 {
                under_way = now;
            }
            if records >= 16_000 {
                late_peak = late_peak.max(now);
            }
        }
    }
    assert_eq!(records, 160_000);
    // A page left behind at each release (one every MiB or so) would show here as 200 KiB or
    // more; measured without it, under 30 KiB.
    assert!(
        late_peak < under_way + 128,
        "the resident set kept growing during the scan: {under_way} KiB after 16 MiB, then up to {late_peak} KiB"
    );
    let grown = (peak - before) * 1024;
    assert!(
        grown < 16 * MIB,
        "reading 160 MiB grew the resident set by {} MiB",
        grown / MIB
    );
}
