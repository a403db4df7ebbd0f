//! The `open_dir` fuzz target's harness (`tests/common/open_dir.rs`) on stable, under proptest:
//! real partition directories with arbitrary edits to their segment, index, checkpoint, marker
//! and snapshot files, through the read-only open, `inspect::check_partition` and the writable
//! open, which must agree. A few hundred cases here; the fuzz target runs millions.

#[path = "common/open_dir.rs"]
mod open_dir;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn opens_verify_and_reads_agree_on_damaged_directories(
        data in proptest::collection::vec(any::<u8>(), 1..200)
    ) {
        open_dir::run(&data);
    }
}

/// The fuzz target's findings, each a fixed bug.
#[test]
fn fuzz_regressions_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(dir).expect("regressions") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("open_dir-"))
        {
            open_dir::run(&std::fs::read(&path).expect("input"));
            ran += 1;
        }
    }
    assert!(ran >= 4, "{ran} regressions");
}

/// The fuzz finding `open_dir-base-offset-raised-into-the-next-batch` (`8a c8 dd f9 dc 04`):
/// 11 records in batches of 1, 2, 4 and 4, closed cleanly, then byte 7 of the `.log` (the low
/// byte of the first batch's base offset, outside the CRC) set to 4. The first batch then
/// claims offset 4, inside the range of the batches after it. Reads served `value-0` at
/// offset 4 before meeting the next batch's offsets out of order; now the read fails first.
#[test]
fn fuzz_base_offset_raised_into_the_next_batch() {
    open_dir::run(&[0x8a, 0xc8, 0xdd, 0xf9, 0xdc, 0x04]);
}

/// The same damage, spelt out: a batch whose base offset was raised into the next batch's
/// offsets is never served; every read through it fails with `Error::Corrupt` naming the
/// `.log` and the next batch, which is where `inspect::check_partition` reports it.
#[test]
fn a_raised_base_offset_is_corrupt_before_any_record_is_served() {
    use topiclog::config::LogConfig;
    use topiclog::error::Corruption;
    use topiclog::inspect;
    use topiclog::record::Record;
    use topiclog::{Error, Partition};

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    let log = Partition::open(&dir, LogConfig::default()).expect("open");
    for values in [&["a"][..], &["b", "c"], &["d", "e", "f", "g"]] {
        let records: Vec<Record> = values.iter().map(|v| Record::new(v.as_bytes())).collect();
        log.append_batch(&records).expect("append");
    }
    log.close().expect("close");
    let path = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&path).expect("read");
    // The second batch starts after the first: 12 bytes of offset and length, then the length.
    let second = 12 + u64::from(u32::from_be_bytes(bytes[8..12].try_into().expect("length")));
    bytes[7] = 2; // base offset 0 -> 2: offsets 1..=2 belong to the second batch
    std::fs::write(&path, &bytes).expect("write");

    let report = inspect::check_partition(&dir).expect("verify");
    assert!(!report.is_ok(), "{report:?}");
    for read_only in [true, false] {
        let log = if read_only {
            Partition::open_read_only(&dir, LogConfig::default())
        } else {
            Partition::open(&dir, LogConfig::default())
        }
        .expect("open");
        for from in 0..=2 {
            let first = log.read(from).expect("read").next();
            match first {
                Some(Err(Error::Corrupt {
                    path: p,
                    position,
                    kind:
                        Corruption::OffsetOutOfOrder {
                            base_offset: 1,
                            last_offset: 2,
                            expected_at_least: 3,
                        },
                })) => {
                    assert_eq!((p.as_path(), position), (path.as_path(), second));
                }
                other => panic!("read({from}), read-only {read_only}: {other:?}"),
            }
        }
    }
}

/// A read that seeks through the offset index starts at a batch whose predecessor it does not
/// read, so the index's entry before bounds that batch's base offset instead: here the second
/// entry's offset is raised (6 to 4, so `read(4)` seeks to the third batch) and the third
/// batch's base offset lowered (3 to 2). That read served `value-5` at offset 4; now every read
/// that meets the batch fails, with the error a read from the start gives.
#[test]
fn a_lowered_base_offset_found_through_the_index_is_corrupt() {
    use topiclog::config::LogConfig;
    use topiclog::error::Corruption;
    use topiclog::record::Record;
    use topiclog::{Error, Partition};

    let config = || {
        LogConfig::builder()
            .index_interval_bytes(64)
            .build()
            .expect("config")
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    let log = Partition::open(&dir, config()).expect("open");
    let value = |o: i64| format!("value-{o}").into_bytes();
    for (from, to) in [(0, 1), (1, 3), (3, 7), (7, 11)] {
        let values: Vec<Vec<u8>> = (from..to).map(value).collect();
        let records: Vec<Record> = values.iter().map(|v| Record::new(v)).collect();
        log.append_batch(&records).expect("append");
    }
    log.close().expect("close");
    let index = dir.join("00000000000000000000.index");
    let mut entries = std::fs::read(&index).expect("index");
    // (relative offset, position) of the last three batches: 2 at 75, 6 at 164, 10 at 281.
    assert_eq!(entries.len(), 24);
    let third = u64::from(u32::from_be_bytes(entries[12..16].try_into().expect("4")));
    entries[8..12].copy_from_slice(&4i32.to_be_bytes());
    std::fs::write(&index, &entries).expect("write index");
    let path = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&path).expect("log");
    let at = usize::try_from(third).expect("position");
    bytes[at..at + 8].copy_from_slice(&2i64.to_be_bytes());
    std::fs::write(&path, &bytes).expect("write log");

    for read_only in [true, false] {
        let log = if read_only {
            Partition::open_read_only(&dir, config())
        } else {
            Partition::open(&dir, config())
        }
        .expect("a clean open");
        for from in 0..=10 {
            let mut error = None;
            for record in log.read(from).expect("read") {
                match record {
                    Ok(r) => assert_eq!(r.value(), Some(&value(r.offset())[..])),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            match error {
                // Past the damage: served, unless an earlier read rebuilt the index from the
                // log (which stops at the damage) and this one reads through it.
                None if from == 10 => {}
                Some(Error::Corrupt {
                    path: p,
                    position,
                    kind:
                        Corruption::OffsetOutOfOrder {
                            base_offset: 2,
                            last_offset: 5,
                            expected_at_least: 3,
                        },
                }) => assert_eq!((p, position), (path.clone(), third)),
                other => panic!("read({from}), read-only {read_only}: {other:?}"),
            }
        }
    }
}
