//! `dump`: batch headers and records of `.log` files and the entries of index files, in the
//! manner of Kafka's `kafka-dump-log`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use topiclog::OwnedRecord;
use topiclog::inspect::{self, BatchInfo, BatchRecords, LogFileReader};
use topiclog::record::{
    Compression, ControlType, EndTxnMarker, NO_SEQUENCE, TimestampType, TxnResult,
};

use crate::output::{Failure, Out, stdout_failure};

/// `dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// A segment `.log` file, an `.index`, `.timeindex` or `.txnindex` file, or a partition
    /// directory
    /// (relative to --dir if that is given)
    path: PathBuf,
    /// Print keys, values and header values as base64 instead of (escaped, lossy) UTF-8
    #[arg(long)]
    base64: bool,
}

pub(crate) fn run(dir: Option<&Path>, args: &DumpArgs, out: &mut Out) -> Result<(), Failure> {
    let path = match dir {
        Some(dir) if args.path.is_relative() => dir.join(&args.path),
        _ => args.path.clone(),
    };
    if path.is_dir() {
        let segments = inspect::list_segments(&path)?;
        if segments.is_empty() {
            out.line(format_args!(
                "no segments in {}: not a partition directory, or one without data yet",
                path.display()
            ))?;
            return Err(Failure::ProblemsFound);
        }
        let mut clean = true;
        for segment in segments {
            clean &= dump_log(&segment.log, args.base64, out)?;
            if let Some(index) = &segment.index {
                dump_offset_index(index, out)?;
            }
            if let Some(time_index) = &segment.time_index {
                dump_time_index(time_index, out)?;
            }
            if let Some(txn_index) = &segment.txn_index {
                clean &= dump_txn_index(txn_index, out)?;
            }
        }
        return if clean {
            Ok(())
        } else {
            Err(Failure::ProblemsFound)
        };
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("log") => match dump_log(&path, args.base64, out)? {
            true => Ok(()),
            false => Err(Failure::ProblemsFound),
        },
        Some("index") => dump_offset_index(&path, out),
        Some("timeindex") => dump_time_index(&path, out),
        Some("txnindex") => match dump_txn_index(&path, out)? {
            true => Ok(()),
            false => Err(Failure::ProblemsFound),
        },
        _ => Err(Failure::Usage(format!(
            "{}: not a .log, .index, .timeindex or .txnindex file, nor a directory",
            path.display()
        ))),
    }
}

/// Dumps one `.log`; `false` if some of it could not be read (a bad CRC, records that do not
/// decode or whose codec this build lacks, bytes after the last whole batch).
fn dump_log(path: &Path, base64: bool, out: &mut Out) -> Result<bool, Failure> {
    let mut clean = true;
    let mut reader = LogFileReader::open(path)?;
    out.line(format_args!("Dumping {}", path.display()))?;
    if let Some(base) = base_offset_of(path) {
        out.line(format_args!("Log starting offset: {base}"))?;
    }
    while let Some(batch) = reader.next_batch()? {
        let info = *batch.info();
        clean &= info.crc_valid;
        batch_line(&info, out)?;
        match batch.owned_records() {
            BatchRecords::Decoded(records) => {
                for record in &records {
                    record_line(&info, record, base64, out)?;
                }
            }
            BatchRecords::Compressed(codec) => {
                clean = false;
                out.line(format_args!(
                    "| {} records unavailable: compressed with {codec} (codec left out of this build)",
                    info.header.records_count
                ))?
            }
            BatchRecords::Invalid { records, error } => {
                clean = false;
                for record in &records {
                    record_line(&info, record, base64, out)?;
                }
                out.line(format_args!(
                    "| records do not decode at byte {} of the batch: {error}",
                    error.position
                ))?;
            }
            _ => {
                clean = false;
                out.line(format_args!("| records unavailable"))?
            }
        }
    }
    if let Some(tail) = reader.tail() {
        clean = false;
        out.line(format_args!("Tail at position {}: {tail}", tail.position))?;
    }
    Ok(clean)
}

/// One line per batch, with `kafka-dump-log`'s field names.
fn batch_line(info: &BatchInfo, out: &mut Out) -> Result<(), Failure> {
    let h = &info.header;
    let last_sequence = if h.base_sequence == NO_SEQUENCE {
        NO_SEQUENCE
    } else {
        // Sequences wrap at i32::MAX, as Kafka's DefaultRecordBatch.incrementSequence does.
        let next = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
        (next % (i64::from(i32::MAX) + 1)) as i32
    };
    let codec = h.compression().map_or_else(
        || format!("unknown({})", h.compression_id()),
        |c: Compression| c.name().to_owned(),
    );
    out.text(format_args!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} deleteHorizon: {} position: {} {}: {} size: {} magic: {} \
         compresscodec: {codec} crc: {} isvalid: {}",
        h.base_offset,
        h.last_offset(),
        h.records_count,
        h.base_sequence,
        last_sequence,
        h.producer_id,
        h.producer_epoch,
        h.partition_leader_epoch,
        h.is_transactional(),
        h.is_control(),
        h.has_delete_horizon(),
        info.position,
        timestamp_label(h.timestamp_type()),
        h.max_timestamp,
        info.size(),
        h.magic,
        h.crc,
        info.crc_valid,
    ))?;
    if !info.crc_valid {
        out.text(format_args!(" computedCrc: {}", info.computed_crc))?;
    }
    out.bytes(b"\n")
}

fn record_line(
    info: &BatchInfo,
    record: &OwnedRecord,
    base64: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let h = &info.header;
    let sequence = if h.base_sequence == NO_SEQUENCE {
        NO_SEQUENCE
    } else {
        let delta = record.offset.saturating_sub(h.base_offset);
        ((i64::from(h.base_sequence) + delta) % (i64::from(i32::MAX) + 1)) as i32
    };
    out.text(format_args!(
        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {sequence} headers: [",
        record.offset,
        timestamp_label(h.timestamp_type()),
        record.timestamp,
        record.key.as_ref().map_or(-1, |k| k.len() as i64),
        record.value.as_ref().map_or(-1, |v| v.len() as i64),
    ))?;
    for (i, header) in record.headers.iter().enumerate() {
        out.bytes(if i == 0 { b"[" } else { b",[" })?;
        shown(Some(&header.key), false, out)?;
        out.bytes(b",")?;
        shown(header.value.as_deref(), base64, out)?;
        out.bytes(b"]")?;
    }
    if h.is_control() {
        // Kafka's kafka-dump-log names a marker and its coordinator epoch.
        match EndTxnMarker::parse(record.key.as_deref(), record.value.as_deref()) {
            Some(marker) => out.text(format_args!(
                "] endTxnMarker: {} coordinatorEpoch: {}",
                match marker.result {
                    TxnResult::Commit => "COMMIT",
                    TxnResult::Abort => "ABORT",
                },
                marker.coordinator_epoch
            ))?,
            None => {
                let kind = record
                    .key
                    .as_deref()
                    .and_then(ControlType::of_key)
                    .map_or("unknown".to_owned(), |t| format!("type {}", t.id()));
                out.text(format_args!("] controlType: {kind}"))?;
            }
        }
        return out.bytes(b"\n");
    }
    out.bytes(b"] key: ")?;
    shown(record.key.as_deref(), base64, out)?;
    out.bytes(b" payload: ")?;
    shown(record.value.as_deref(), base64, out)?;
    out.bytes(b"\n")
}

/// Bytes as a JSON string (lossy UTF-8 with escapes, so a record stays on one line; or base64),
/// or `null`.
fn shown(bytes: Option<&[u8]>, base64: bool, out: &mut Out) -> Result<(), Failure> {
    let Some(bytes) = bytes else {
        return out.bytes(b"null");
    };
    if base64 {
        return out.text(format_args!("\"{}\"", BASE64.encode(bytes)));
    }
    let text = String::from_utf8_lossy(bytes);
    serde_json::to_writer(out.writer(), &text).map_err(|e| stdout_failure(e.into()))
}

fn timestamp_label(kind: TimestampType) -> &'static str {
    match kind {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// The base offset in a `<20-digit base offset>.<ext>` file name.
fn base_offset_of(path: &Path) -> Option<i64> {
    let stem = path.file_stem()?.to_str()?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Dumps a `.txnindex` as Kafka's `kafka-dump-log` does; `false` if part of it is refused.
fn dump_txn_index(path: &Path, out: &mut Out) -> Result<bool, Failure> {
    let index = inspect::txn_index_entries(path, None)?;
    out.line(format_args!("Dumping {}", path.display()))?;
    for e in &index.entries {
        out.line(format_args!(
            "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
        ))?;
    }
    if let Some(problem) = &index.problem {
        out.line(format_args!("({problem})"))?;
    }
    Ok(index.problem.is_none())
}

fn dump_offset_index(path: &Path, out: &mut Out) -> Result<(), Failure> {
    let index = inspect::offset_index_entries(path, None)?;
    out.line(format_args!("Dumping {}", path.display()))?;
    let shown = shown_entries(&index.entries, |e| {
        e.relative_offset == 0 && e.position == 0
    });
    for entry in &index.entries[..shown] {
        out.line(format_args!(
            "offset: {} position: {}",
            entry.offset, entry.position
        ))?;
    }
    index_tail(index.entries.len() - shown, index.partial_bytes, out)
}

fn dump_time_index(path: &Path, out: &mut Out) -> Result<(), Failure> {
    let index = inspect::time_index_entries(path, None)?;
    out.line(format_args!("Dumping {}", path.display()))?;
    let shown = shown_entries(&index.entries, |e| {
        e.relative_offset == 0 && e.timestamp == 0
    });
    for entry in &index.entries[..shown] {
        out.line(format_args!(
            "timestamp: {} offset: {}",
            entry.timestamp, entry.offset
        ))?;
    }
    index_tail(index.entries.len() - shown, index.partial_bytes, out)
}

/// How many entries to print: all but a trailing run of all-zero entries, the unused,
/// preallocated space of an active segment's index (Kafka's `DumpLogSegments` stops at the
/// same place). [`index_tail`] counts what is left out.
fn shown_entries<E>(entries: &[E], is_zero: impl Fn(&E) -> bool) -> usize {
    let trailing_zeros = entries.iter().rev().take_while(|e| is_zero(e)).count();
    entries.len() - trailing_zeros
}

fn index_tail(unused: usize, partial_bytes: u64, out: &mut Out) -> Result<(), Failure> {
    if unused > 0 {
        out.line(format_args!(
            "({unused} all-zero entries at the end not shown: unused preallocated space)"
        ))?;
    }
    if partial_bytes > 0 {
        out.line(format_args!(
            "({partial_bytes} bytes after the last whole entry)"
        ))?;
    }
    Ok(())
}
