//! The one-record encoder against the general one.

use super::*;
use proptest::prelude::*;

/// The general encoder's bytes and report for one record.
fn general(params: &BatchParams, record: &Record<'_>, now_ms: i64) -> (Vec<u8>, EncodedBatch) {
    let mut out = vec![7u8; 3];
    let encoded =
        encode_into(&mut out, params, std::slice::from_ref(record), now_ms, None).expect("encodes");
    (out, encoded)
}

proptest! {
    /// The one-record path writes exactly the general encoder's bytes.
    #[test]
    fn single_record_bytes_match_the_general_encoder(
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        header_values in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        timestamp in proptest::option::of(any::<i64>()),
        now_ms in any::<i64>(),
        base_offset in 0..i64::MAX,
        log_append_time in any::<bool>(),
        transactional in any::<bool>(),
        producer_id in -1..i64::MAX,
    ) {
        let headers: Vec<Header<'_>> = header_values
            .iter()
            .map(|v| Header::new(b"h", v.as_deref()))
            .collect();
        let record = Record {
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &headers,
            timestamp,
        };
        let params = BatchParams {
            base_offset,
            partition_leader_epoch: 3,
            timestamp_type: if log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            producer_id,
            producer_epoch: 2,
            base_sequence: 9,
            transactional,
            control: false,
        };
        let (want, want_encoded) = general(&params, &record, now_ms);
        let mut out = vec![7u8; 3];
        let encoded = encode_single(&mut out, &params, &record, now_ms).expect("encodes");
        prop_assert_eq!(encoded, want_encoded);
        prop_assert_eq!(out, want);
    }
}

#[test]
fn single_record_refuses_a_negative_base_offset_and_writes_nothing() {
    let params = BatchParams {
        base_offset: -1,
        ..BatchParams::default()
    };
    let mut out = vec![1u8];
    assert_eq!(
        encode_batch(&mut out, &params, &[Record::new(b"v")], 0),
        Err(EncodeError::OffsetOutOfRange)
    );
    assert_eq!(out, [1]);
}
