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
