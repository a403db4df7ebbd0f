//! Helpers shared by the `append` and `read` benchmarks: scratch directories and deterministic,
//! printable record values.
#![allow(dead_code)] // each benchmark uses some of these

use std::path::Path;

use tempfile::TempDir;
use topiclog::Partition;
use topiclog::config::LogConfig;

/// A brand-new partition directory under the crate's target dir (`target/tmp`), removed when
/// the returned guard drops.
pub fn fresh_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("topiclog-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a scratch directory")
}

/// Opens a partition with the default settings (Kafka's: 1 GiB segments, an index entry every
/// 4096 bytes; 256 KiB write buffer) but no fsync (`flush.messages` = `i64::MAX`, Kafka's
/// default): the `flush=none` benchmarks measure the code, not the device.
pub fn open(dir: &Path) -> Partition {
    let config = LogConfig::builder()
        .flush_messages(i64::MAX)
        .build()
        .expect("valid config");
    Partition::open(dir, config).expect("open the partition")
}

/// SplitMix64: a small seeded PRNG, so every run uses the same values and offsets.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `[0, n)` for offsets (`n` much smaller than 2^64).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `count` values of `len` pseudo-random printable ASCII bytes (0x21..=0x7e, never zero).
pub fn values(count: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| (0..len).map(|_| b'!' + rng.below(94) as u8).collect())
        .collect()
}
