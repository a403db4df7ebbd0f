//! `produce`: each line of stdin becomes a record.

use std::io::{self, BufRead};
use std::path::Path;

use clap::Args;
use topiclog::Topic;
use topiclog::record::{Compression, Record};

use crate::output::{Failure, Out};

/// `produce`.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The topic
    topic: String,
    /// Append to this partition instead of routing like a Kafka producer (murmur2 of the key,
    /// sticky for null keys)
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Split each line at the first SEP: the part before is the key, the rest the value (a line
    /// without SEP has a null key). Without it the whole line is the value and the key is null
    #[arg(long, value_name = "SEP", value_parser = parse_separator)]
    key_separator: Option<String>,
    /// Append N lines per call, as one batch per partition (default: one line per call)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// Print `PARTITION OFFSET` for each record once its append call has returned
    #[arg(long)]
    print_offsets: bool,
    /// Compress each batch: none, gzip, snappy, lz4 or zstd (gzip when given without a value,
    /// as in Kafka's console producer). A topic whose compression.type is not `producer` uses
    /// its own codec instead
    #[arg(long, value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip",
          value_parser = parse_codec)]
    compression_codec: Option<Compression>,
    /// A line whose value equals STR gets a null value: a tombstone, which deletes its key
    /// from a compacted topic (Kafka's console-producer `null.marker`)
    #[arg(long, value_name = "STR")]
    null_marker: Option<String>,
}

fn parse_codec(name: &str) -> Result<Compression, String> {
    (0..=7)
        .filter_map(Compression::from_id)
        .find(|codec| codec.name() == name)
        .ok_or_else(|| "expected none, gzip, snappy, lz4 or zstd".to_owned())
}

fn parse_separator(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("the key separator must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

pub(crate) fn run(dir: &Path, args: &ProduceArgs, out: &mut Out) -> Result<(), Failure> {
    let store = crate::open_for_writing(dir)?;
    crate::with_writable_store(store, |store| {
        let topic = store.topic(&args.topic)?;
        if let Some(partition) = args.partition {
            // Fails early, before stdin is read, for a partition the topic lacks.
            topic.partition(partition)?;
        }
        let batch = args.batch.map_or(1, |n| n as usize);
        let mut stdin = io::stdin().lock();
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(batch);
        loop {
            let mut line = Vec::new();
            let read = stdin
                .read_until(b'\n', &mut line)
                .map_err(|source| Failure::Io {
                    what: "read standard input",
                    source,
                })?;
            if read > 0 {
                strip_line_end(&mut line);
                lines.push(line);
            }
            let at_end = read == 0;
            if lines.len() >= batch || (at_end && !lines.is_empty()) {
                append(&topic, args, &lines, out)?;
                lines.clear();
            }
            if at_end {
                return Ok(());
            }
        }
    })
}

/// Removes the line's `\n` or `\r\n`.
fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// The record a line makes; a value equal to `null_marker` is null.
fn record<'a>(line: &'a [u8], separator: Option<&[u8]>, null_marker: Option<&[u8]>) -> Record<'a> {
    let record = match separator {
        None => Record::new(line),
        Some(sep) => match line.windows(sep.len()).position(|w| w == sep) {
            Some(at) => Record::keyed(&line[..at], &line[at + sep.len()..]),
            None => Record::new(line),
        },
    };
    match null_marker {
        Some(marker) if record.value == Some(marker) => Record {
            value: None,
            ..record
        },
        _ => record,
    }
}

/// Appends `lines` with one call: one record, or a batch.
fn append(
    topic: &Topic,
    args: &ProduceArgs,
    lines: &[Vec<u8>],
    out: &mut Out,
) -> Result<(), Failure> {
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let null_marker = args.null_marker.as_deref().map(str::as_bytes);
    let records: Vec<Record<'_>> = lines
        .iter()
        .map(|l| record(l, separator, null_marker))
        .collect();
    let placed: Vec<(u32, i64)> = match (args.partition, args.compression_codec, &records[..]) {
        (Some(p), None, [one]) => vec![(p, topic.append_to(p, *one)?)],
        (Some(p), codec, many) => {
            let codec = codec.unwrap_or_default();
            let info = topic.partition(p)?.append_batch_compressed(many, codec)?;
            info.offsets().map(|offset| (p, offset)).collect()
        }
        (None, None, [one]) => vec![topic.append(*one)?],
        (None, codec, many) => topic.append_batch_compressed(many, codec.unwrap_or_default())?,
    };
    if args.print_offsets {
        for (partition, offset) in placed {
            out.line(format_args!("{partition} {offset}"))?;
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_by_kafkas_names() {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            assert_eq!(parse_codec(codec).map(Compression::name), Ok(codec));
        }
        assert!(parse_codec("brotli").is_err());
        assert!(parse_codec("GZIP").is_err());
    }

    #[test]
    fn lines_lose_their_line_end_only() {
        for (raw, want) in [
            (&b"a\n"[..], &b"a"[..]),
            (b"a\r\n", b"a"),
            (b"a\r", b"a\r"),
            (b"a", b"a"),
            (b"\n", b""),
            (b"\r\r\n", b"\r"),
        ] {
            let mut line = raw.to_vec();
            strip_line_end(&mut line);
            assert_eq!(line, want, "{raw:?}");
        }
    }

    #[test]
    fn the_first_separator_splits_key_and_value() {
        let r = record(b"k::v::w", Some(b"::"), None);
        assert_eq!((r.key, r.value), (Some(&b"k"[..]), Some(&b"v::w"[..])));
        let r = record(b"no separator", Some(b"::"), None);
        assert_eq!((r.key, r.value), (None, Some(&b"no separator"[..])));
        let r = record(b":v", Some(b":"), None);
        assert_eq!((r.key, r.value), (Some(&b""[..]), Some(&b"v"[..])));
        let r = record(b"k:v", None, None);
        assert_eq!((r.key, r.value), (None, Some(&b"k:v"[..])));
    }

    #[test]
    fn a_value_equal_to_the_null_marker_is_null() {
        let r = record(b"k:NULL", Some(b":"), Some(b"NULL"));
        assert_eq!((r.key, r.value), (Some(&b"k"[..]), None));
        let r = record(b"k:NULLx", Some(b":"), Some(b"NULL"));
        assert_eq!(r.value, Some(&b"NULLx"[..]));
        let r = record(b"NULL", None, Some(b"NULL"));
        assert_eq!((r.key, r.value), (None, None));
        let r = record(b"k:", Some(b":"), Some(b""));
        assert_eq!(r.value, None, "an empty marker makes empty values null");
    }
}
