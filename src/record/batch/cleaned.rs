//! Rewriting a batch that compaction thinned out (Kafka's `LogCleaner.buildRetainedRecordsInto`
//! and `DefaultRecordBatch.writeEmptyHeader`): the kept records under the original header's
//! identity, so offsets, producer state and the codec survive cleaning.

use super::*;

/// Appends to `out` the batch `original` heads, holding only `kept` (a subsequence of its
/// records, in order), and returns what it wrote:
///
/// * the same base offset, `lastOffsetDelta` (so the batch still ends at the same offset, and
///   an idempotent producer's last sequence survives), partition leader epoch, producer id,
///   epoch and base sequence, timestamp type, transactional and control bits and codec (the
///   records are compressed again with `levels`);
/// * each kept record at its own offset (gaps inside the batch are allowed) and timestamp;
/// * `baseTimestamp` the first kept record's timestamp, or `delete_horizon` when given, which
///   also sets attribute bit 6 (a tombstone's deadline, KIP-534); `maxTimestamp` the largest
///   kept timestamp under CreateTime, the original under LogAppendTime;
/// * with nothing kept, a header-only batch (`recordsCount` 0) whose timestamps are the
///   original `maxTimestamp`, as Kafka keeps an emptied batch whose offsets must be remembered.
///
/// # Errors
/// [`EncodeError::OffsetOutOfRange`] if a kept record lies outside the original's offsets,
/// [`EncodeError::TooLarge`] for lengths past Kafka's limits, and
/// [`EncodeError::UnsupportedCompression`] for a codec this build leaves out. On error `out` is
/// left as it was.
pub(crate) fn encode_cleaned(
    out: &mut Vec<u8>,
    original: &BatchHeader,
    kept: &[RecordView<'_>],
    delete_horizon: Option<i64>,
    levels: &CompressionLevels,
) -> Result<EncodedBatch, EncodeError> {
    let start = out.len();
    let result = encode_into_cleaned(out, original, kept, delete_horizon, levels);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_into_cleaned(
    out: &mut Vec<u8>,
    original: &BatchHeader,
    kept: &[RecordView<'_>],
    delete_horizon: Option<i64>,
    levels: &CompressionLevels,
) -> Result<EncodedBatch, EncodeError> {
    let codec = original
        .compression()
        .ok_or(EncodeError::UnsupportedCompression(Compression::None))?;
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
    let horizon = delete_horizon.filter(|_| !kept.is_empty());
    let base_timestamp = match (horizon, kept.first()) {
        (Some(h), _) => h,
        (None, Some(first)) => first.timestamp(),
        (None, None) => original.max_timestamp,
    };
    let mut max_timestamp = if kept.is_empty() {
        original.max_timestamp
    } else {
        i64::MIN
    };
    let last_offset = original.last_offset();
    for record in kept {
        let offset = record.offset();
        if offset < original.base_offset || offset > last_offset {
            return Err(EncodeError::OffsetOutOfRange);
        }
        let offset_delta = len_i32((offset - original.base_offset) as usize)?;
        let timestamp = record.timestamp();
        max_timestamp = max_timestamp.max(timestamp);
        let ts_delta = timestamp.wrapping_sub(base_timestamp);
        let (headers, header_count) = record.headers().raw();
        let header_count = i32::try_from(header_count).map_err(|_| EncodeError::TooLarge)?;
        let key_len = record.key().map_or(Ok(-1), |k| len_i32(k.len()))?;
        let value_len = record.value().map_or(Ok(-1), |v| len_i32(v.len()))?;
        let body = 1
            + varlong_len(ts_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + record.key().map_or(0, <[u8]>::len)
            + varint_len(value_len)
            + record.value().map_or(0, <[u8]>::len)
            + varint_len(header_count)
            + headers.len();
        put_varint(out, len_i32(body)?);
        out.push(0);
        put_varlong(out, ts_delta);
        put_varint(out, offset_delta);
        put_varint(out, key_len);
        if let Some(key) = record.key() {
            out.extend_from_slice(key);
        }
        put_varint(out, value_len);
        if let Some(value) = record.value() {
            out.extend_from_slice(value);
        }
        put_varint(out, header_count);
        out.extend_from_slice(headers);
    }
    let records_count = len_i32(kept.len())?;
    if codec != Compression::None && !kept.is_empty() {
        if !codec::is_supported(codec) {
            return Err(EncodeError::UnsupportedCompression(codec));
        }
        compress_records(out, start + BATCH_HEADER_LEN, codec, levels)?;
    }
    let batch_length = len_i32(out.len() - start - LOG_OVERHEAD)?;
    if original.timestamp_type() == TimestampType::LogAppendTime {
        max_timestamp = original.max_timestamp;
    }
    let mut attributes = original.attributes;
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    } else {
        attributes &= !DELETE_HORIZON_BIT;
    }
    if kept.is_empty() {
        // Kafka's empty header carries no codec: there are no records to compress.
        attributes &= !0x07;
    }
    let header = BatchHeader {
        base_offset: original.base_offset,
        batch_length,
        partition_leader_epoch: original.partition_leader_epoch,
        magic: MAGIC,
        crc: 0,
        attributes,
        last_offset_delta: original.last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id: original.producer_id,
        producer_epoch: original.producer_epoch,
        base_sequence: original.base_sequence,
        records_count,
    };
    let size = out.len() - start;
    seal_batch(out, start, &header);
    Ok(EncodedBatch {
        size,
        last_offset,
        max_timestamp,
        first_timestamp: base_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Header;

    /// A record as the tests compare it: offset, timestamp, key, value, header count.
    type Decoded = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

    fn decoded(bytes: &[u8]) -> Vec<Decoded> {
        let batch = Batch::parse(bytes).unwrap();
        batch.verify_crc().unwrap();
        let mut buf = Vec::new();
        batch
            .records_in(&mut buf, usize::MAX)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.offset(),
                    r.timestamp(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    r.headers().count(),
                )
            })
            .collect()
    }

    fn original(codec: Compression) -> Vec<u8> {
        let headers = [Header::new(b"h", Some(b"v"))];
        let records: Vec<Record<'_>> = (0..5)
            .map(|i| {
                let key: &[u8] = [b"a".as_slice(), b"b", b"a", b"c", b"b"][i];
                if i == 3 {
                    Record::tombstone(key).with_timestamp(1_000 + i as i64)
                } else {
                    Record::keyed(key, b"value")
                        .with_headers(&headers)
                        .with_timestamp(1_000 + i as i64)
                }
            })
            .collect();
        let params = BatchParams {
            base_offset: 100,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
            ..BatchParams::default()
        };
        let mut out = Vec::new();
        encode_compressed_batch(
            &mut out,
            &params,
            &records,
            0,
            codec,
            &CompressionLevels::default(),
        )
        .unwrap();
        out
    }

    fn clean(bytes: &[u8], keep: &[i64], horizon: Option<i64>) -> Vec<u8> {
        let batch = Batch::parse(bytes).unwrap();
        let mut buf = Vec::new();
        let views: Vec<RecordView<'_>> = batch
            .records_in(&mut buf, usize::MAX)
            .unwrap()
            .map(Result::unwrap)
            .filter(|r| keep.contains(&r.offset()))
            .collect();
        let mut out = Vec::new();
        encode_cleaned(
            &mut out,
            batch.header(),
            &views,
            horizon,
            &CompressionLevels::default(),
        )
        .unwrap();
        out
    }

    #[test]
    fn kept_records_keep_their_offsets_and_the_batch_its_identity() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            if !codec::is_supported(codec) {
                continue;
            }
            let bytes = original(codec);
            let all = decoded(&bytes);
            let out = clean(&bytes, &[101, 103], None);
            let h = Batch::parse(&out).unwrap().header;
            let o = Batch::parse(&bytes).unwrap().header;
            assert_eq!(h.base_offset, 100);
            assert_eq!(h.last_offset(), 104, "lastOffsetDelta kept");
            assert_eq!(h.records_count, 2);
            assert_eq!(h.compression(), Some(codec));
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (7, 2, 40)
            );
            assert_eq!(h.partition_leader_epoch, o.partition_leader_epoch);
            assert_eq!((h.base_timestamp, h.max_timestamp), (1_001, 1_003));
            assert!(!h.has_delete_horizon());
            assert_eq!(decoded(&out), vec![all[1].clone(), all[3].clone()]);
        }
    }

    #[test]
    fn a_delete_horizon_becomes_the_base_timestamp_and_sets_bit_6() {
        let bytes = original(Compression::None);
        let all = decoded(&bytes);
        let out = clean(&bytes, &[103, 104], Some(90_000));
        let h = Batch::parse(&out).unwrap().header;
        assert!(h.has_delete_horizon());
        assert_eq!((h.base_timestamp, h.max_timestamp), (90_000, 1_004));
        assert_eq!(
            decoded(&out),
            vec![all[3].clone(), all[4].clone()],
            "record timestamps survive deltas relative to the horizon"
        );
    }

    #[test]
    fn nothing_kept_is_a_header_only_batch() {
        let bytes = original(Compression::None);
        let out = clean(&bytes, &[], Some(5));
        assert_eq!(out.len(), BATCH_HEADER_LEN);
        let h = Batch::parse(&out).unwrap().header;
        assert_eq!((h.records_count, h.last_offset()), (0, 104));
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_004, 1_004));
        assert!(!h.has_delete_horizon());
        assert_eq!((h.producer_id, h.base_sequence), (7, 40));
        assert!(decoded(&out).is_empty());
    }

    #[test]
    fn everything_kept_uncompressed_gives_the_same_bytes() {
        let bytes = original(Compression::None);
        assert_eq!(clean(&bytes, &[100, 101, 102, 103, 104], None), bytes);
    }
}
