//! Replicated appends: batches fetched from a Kafka leader, appended verbatim as a follower
//! appends them (Kafka's `AppendOrigin.REPLICATION`). The batch keeps its offsets, CRC,
//! producer fields, codec and timestamps; the checks are the ones a follower makes (framing,
//! CRC-32C, offsets after the log end, gaps allowed) and no sequence or epoch check, and the
//! producer state, the aborted-transaction index and the last stable offset are rebuilt from
//! the batches as recovery rebuilds them.

use crate::error::{Error, Result};
use crate::record::{Batch, EndTxnMarker, TxnResult};

use super::super::{AppendInfo, Shared, txn};
use super::{Appended, Writer};

impl Writer {
    /// Appends one replicated `batch` (framing and CRC already checked by the caller, which
    /// reports the batch's position in what it was handed). Its offsets must start at or after
    /// the log end offset; a segment rolls where Kafka's follower rolls, at the batch's base
    /// offset, so a gap never has to fit a segment's relative offsets.
    pub(crate) fn append_replicated(
        &mut self,
        shared: &Shared,
        batch: &Batch<'_>,
        wall_ms: i64,
    ) -> Result<Appended> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        let header = *batch.header();
        let next = self.appender.next_offset();
        if header.base_offset < next {
            return Err(Error::OffsetOutOfRange {
                requested: header.base_offset,
                log_start: shared.log_start_offset(),
                log_end: next,
            });
        }
        self.prepare(shared)?;
        let encoded = self.appender.push_verbatim(batch.bytes(), &header);
        let active_base = self.appender.active().base_offset();
        let must_roll = self.appender.should_roll(&self.config, &encoded)
            || (self.appender.is_empty() && active_base != header.base_offset);
        let placed = self.place(
            shared,
            &encoded,
            wall_ms,
            must_roll.then_some(header.base_offset),
        )?;
        let end = match placed {
            Ok(end) => end,
            Err(commit_first) => return Ok(commit_first),
        };
        let info = AppendInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        };
        let marker = if header.is_control() {
            EndTxnMarker::of_batch(batch)
        } else {
            None
        };
        if let Some(done) = self.producers.replay(&header, marker)
            && done.result == TxnResult::Abort
        {
            let entry = self.producers.aborted_entry(&done);
            shared.aborted.write().insert(entry);
            let durable = self.durable;
            if let Err(e) =
                txn::append_entry(&*shared.disk, self.appender.active(), &entry, durable)
            {
                // As for a marker of our own: only a reopen makes log and index agree again.
                self.poison(&e);
                return Err(e);
            }
        }
        shared.publish_first_unstable(self.producers.first_unstable_offset());
        let records = usize::try_from(header.records_count).unwrap_or(0);
        self.finish(shared, end, info, records)
    }
}
