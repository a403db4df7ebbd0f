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
