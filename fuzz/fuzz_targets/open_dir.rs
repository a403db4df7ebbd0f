//! `open_dir`: whole partition directories with arbitrary damage, through the read-only open,
//! `inspect::check_partition` (verify) and the writable open, which must agree. The harness
//! and what it checks: `tests/common/open_dir.rs`, shared with a proptest run on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/open_dir.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
