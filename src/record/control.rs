//! Control records (Kafka's `ControlRecordType` and `EndTransactionMarker`): the one record of
//! a control batch. Its key is `i16 version (0), i16 type`; an end-transaction marker's value
//! is `i16 version (0), i32 coordinator epoch`. Types 0 and 1 end a transaction (ABORT,
//! COMMIT); the others belong to KRaft's metadata log and never to a partition's data.

use super::batch::{BatchParams, EncodeError, EncodedBatch, encode_batch};
use super::{Batch, Record};

/// The length of a control record's key.
const KEY_LEN: usize = 4;
/// The length of an end-transaction marker's value.
const MARKER_VALUE_LEN: usize = 6;

/// What a control record says (its key's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlType {
    /// The transaction was aborted: its records are not to be read under `read_committed`.
    Abort,
    /// The transaction was committed.
    Commit,
    /// Another type (KRaft's `LEADER_CHANGE` and snapshot records, 2 to 6), or one this
    /// version does not know.
    Other(i16),
}

impl ControlType {
    /// The type's number in the record key.
    pub fn id(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(id) => id,
        }
    }

    fn from_id(id: i16) -> ControlType {
        match id {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        }
    }

    /// The type a control record's key names; `None` for a key that is not 4 bytes or has a
    /// version other than 0.
    pub fn of_key(key: &[u8]) -> Option<ControlType> {
        let key: &[u8; KEY_LEN] = key.try_into().ok()?;
        let [v0, v1, t0, t1] = *key;
        (i16::from_be_bytes([v0, v1]) == 0)
            .then(|| ControlType::from_id(i16::from_be_bytes([t0, t1])))
    }
}

/// How a transaction ended, as its marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    /// Every record of the transaction is to be read.
    Commit,
    /// No record of the transaction is to be read under `read_committed`.
    Abort,
}

impl TxnResult {
    fn control_type(self) -> ControlType {
        match self {
            TxnResult::Commit => ControlType::Commit,
            TxnResult::Abort => ControlType::Abort,
        }
    }
}

/// A COMMIT or ABORT marker: Kafka's `EndTransactionMarker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTxnMarker {
    /// How the transaction ended.
    pub result: TxnResult,
    /// The epoch of the coordinator that wrote it; a marker from an older coordinator than
    /// one already seen is refused.
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The marker a control record holds, or `None` if it is not a well-formed ABORT or
    /// COMMIT (another control type, a version other than 0, the wrong lengths).
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<EndTxnMarker> {
        let result = match ControlType::of_key(key?)? {
            ControlType::Abort => TxnResult::Abort,
            ControlType::Commit => TxnResult::Commit,
            ControlType::Other(_) => return None,
        };
        let value: &[u8; MARKER_VALUE_LEN] = value?.try_into().ok()?;
        let [v0, v1, e0, e1, e2, e3] = *value;
        (i16::from_be_bytes([v0, v1]) == 0).then_some(EndTxnMarker {
            result,
            coordinator_epoch: i32::from_be_bytes([e0, e1, e2, e3]),
        })
    }

    /// The marker of a control batch: its first record's, if the batch is a control batch
    /// holding a well-formed marker.
    pub fn of_batch(batch: &Batch<'_>) -> Option<EndTxnMarker> {
        if !batch.header().is_control() {
            return None;
        }
        let record = batch.records().ok()?.next()?.ok()?;
        EndTxnMarker::parse(record.key(), record.value())
    }

    /// The control record's key.
    pub fn key(&self) -> [u8; KEY_LEN] {
        let mut key = [0; KEY_LEN];
        key[2..].copy_from_slice(&self.result.control_type().id().to_be_bytes());
        key
    }

    /// The control record's value.
    pub fn value(&self) -> [u8; MARKER_VALUE_LEN] {
        let mut value = [0; MARKER_VALUE_LEN];
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    /// Appends the marker as a control batch at `base_offset` for a producer's id and epoch
    /// (transactional and control bits set, no sequence), timestamped `now_ms`, as a broker
    /// writes it.
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        base_offset: i64,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Result<EncodedBatch, EncodeError> {
        let params = BatchParams {
            base_offset,
            producer_id,
            producer_epoch,
            transactional: true,
            control: true,
            ..BatchParams::default()
        };
        let (key, value) = (self.key(), self.value());
        let record = Record::keyed(&key, &value).with_timestamp(now_ms);
        encode_batch(out, &params, &[record], now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_kafkas_bytes_and_round_trip() {
        let abort = EndTxnMarker {
            result: TxnResult::Abort,
            coordinator_epoch: 7,
        };
        assert_eq!(abort.key(), [0, 0, 0, 0]);
        assert_eq!(abort.value(), [0, 0, 0, 0, 0, 7]);
        let commit = EndTxnMarker {
            result: TxnResult::Commit,
            coordinator_epoch: 0,
        };
        // The `aborts-0` fixture's COMMIT record, as Kafka's clients decode it.
        assert_eq!(commit.key(), [0, 0, 0, 1]);
        let mut out = Vec::new();
        let encoded = abort.encode(&mut out, 42, 9, 3, 1_000).unwrap();
        assert_eq!((encoded.last_offset, encoded.size), (42, out.len()));
        let batch = Batch::parse(&out).unwrap();
        batch.verify_crc().unwrap();
        let h = batch.header();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 3, -1)
        );
        assert_eq!(EndTxnMarker::of_batch(&batch), Some(abort));
    }

    #[test]
    fn anything_else_is_not_a_marker() {
        let value = [0, 0, 0, 0, 0, 1];
        assert_eq!(EndTxnMarker::parse(Some(&[0, 0, 0, 2]), Some(&value)), None);
        assert_eq!(EndTxnMarker::parse(Some(&[0, 1, 0, 0]), Some(&value)), None);
        assert_eq!(EndTxnMarker::parse(Some(&[0, 0, 0]), Some(&value)), None);
        assert_eq!(EndTxnMarker::parse(None, Some(&value)), None);
        assert_eq!(
            EndTxnMarker::parse(Some(&[0, 0, 0, 1]), Some(&value[..5])),
            None
        );
        assert_eq!(EndTxnMarker::parse(Some(&[0, 0, 0, 1]), None), None);
        assert_eq!(
            ControlType::of_key(&[0, 0, 0, 5]),
            Some(ControlType::Other(5))
        );
        let mut out = Vec::new();
        crate::record::encode_batch(&mut out, &BatchParams::default(), &[Record::new(b"x")], 0)
            .unwrap();
        assert_eq!(EndTxnMarker::of_batch(&Batch::parse(&out).unwrap()), None);
    }
}
