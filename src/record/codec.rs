//! The records section of a compressed batch, in Kafka's framing for each codec
//! (kafka-log-format.md §2.6): gzip is one gzip stream, snappy is xerial-framed (plain snappy
//! blocks are accepted too), lz4 is the LZ4 frame format, zstd one or more zstd frames.
//!
//! Decompression is bounded: output past the caller's cap is an error, never an allocation of
//! whatever the input claims. Each codec sits behind its own cargo feature; without it the
//! codec is [`DecodeErrorKind::UnsupportedCompression`].

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
use std::io::Read;

use super::Compression;
use super::error::DecodeErrorKind;

/// Default cap on the decompressed size of one batch's records section: 256 MiB. Generous on
/// purpose: a batch within `max.message.bytes` (1 MiB by default) legitimately expands many
/// times over, and the cap exists to stop a hostile or damaged batch, not a real one.
pub const DEFAULT_MAX_DECOMPRESSED_BATCH_BYTES: usize = 256 << 20;

/// The smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
pub(crate) const MIN_RECORD_LEN: usize = 7;

/// The xerial `SnappyOutputStream` magic, then its version and compatible-version ints.
#[cfg(feature = "snappy")]
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
#[cfg(feature = "snappy")]
const XERIAL_HEADER_LEN: usize = 16;
/// Block size the Java client's `SnappyOutputStream` uses by default (32 KiB).
#[cfg(feature = "snappy")]
const XERIAL_BLOCK_LEN: usize = 32 * 1024;

/// The LZ4 frame header Kafka's `Lz4BlockOutputStream` writes: magic, FLG (version 01,
/// independent blocks, no checksums, no content size), BD (64 KiB blocks), and the header
/// checksum (the second byte of the xxHash32 of FLG and BD).
#[cfg(feature = "lz4")]
const LZ4_FRAME_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
#[cfg(feature = "lz4")]
const LZ4_BLOCK_LEN: usize = 64 * 1024;
/// Set in a block's length when the block is stored uncompressed.
#[cfg(feature = "lz4")]
const LZ4_UNCOMPRESSED_BLOCK: u32 = 0x8000_0000;
/// Kafka's default `compression.lz4.level`; at it Kafka uses LZ4's fast compressor, at any
/// other level the high-compression one.
#[cfg(feature = "lz4")]
const LZ4_DEFAULT_LEVEL: u32 = 9;

/// Whether this build can decompress (and compress) `codec`.
pub const fn is_supported(codec: Compression) -> bool {
    match codec {
        Compression::None => true,
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Snappy => cfg!(feature = "snappy"),
        Compression::Lz4 => cfg!(feature = "lz4"),
        Compression::Zstd => cfg!(feature = "zstd"),
    }
}

/// Appends the decompression of `input` (a records section compressed with `codec`) to `out`,
/// writing at most `max_len` bytes. On error `out` may hold a partial result.
pub(crate) fn decompress(
    codec: Compression,
    input: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeErrorKind> {
    // A first guess at the size, bounded by the cap; the readers grow it as they must.
    out.reserve(input.len().saturating_mul(4).min(max_len));
    match codec {
        Compression::None => {
            if input.len() > max_len {
                return Err(too_large(codec, max_len));
            }
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            max_len,
            out,
        ),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy_decompress(input, max_len, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(input)
                .map_err(|_| corrupt(codec, "lz4 decoder could not start"))?;
            read_bounded(codec, &mut decoder, max_len, out)?;
            // A frame cut short reads as a short stream: only the decoder knows it has not
            // seen the end mark.
            decoder
                .finish()
                .1
                .map_err(|_| corrupt(codec, "lz4 frame ends before its end mark"))
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|_| corrupt(codec, "zstd decoder could not start"))?;
            read_bounded(codec, decoder, max_len, out)
        }
        #[allow(unreachable_patterns, reason = "reached when a codec feature is off")]
        _ => Err(DecodeErrorKind::UnsupportedCompression(codec)),
    }
}

fn too_large(codec: Compression, limit: usize) -> DecodeErrorKind {
    DecodeErrorKind::DecompressedTooLarge { codec, limit }
}

#[cfg(any(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
fn corrupt(codec: Compression, reason: &'static str) -> DecodeErrorKind {
    DecodeErrorKind::InvalidCompressedData { codec, reason }
}

/// Reads a decoder to its end, one byte past `max_len` at most (to tell "exactly the cap"
/// from "more").
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_bounded(
    codec: Compression,
    decoder: impl Read,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeErrorKind> {
    let start = out.len();
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(out)
        .map_err(|_| corrupt(codec, "the compressed stream does not decode"))?;
    if out.len() - start > max_len {
        return Err(too_large(codec, max_len));
    }
    Ok(())
}

/// Snappy as Kafka stores it: xerial-framed (magic, version, compatible version, then
/// big-endian `i32` length + raw block, repeated), or one plain snappy block.
#[cfg(feature = "snappy")]
fn snappy_decompress(
    input: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeErrorKind> {
    let start = out.len();
    if !input.starts_with(XERIAL_MAGIC) {
        return snappy_block(input, start, max_len, out);
    }
    let mut rest = input.get(XERIAL_HEADER_LEN..).ok_or(corrupt(
        Compression::Snappy,
        "xerial header is shorter than 16 bytes",
    ))?;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt(
                Compression::Snappy,
                "xerial block length is cut short",
            ));
        };
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| corrupt(Compression::Snappy, "xerial block length is negative"))?;
        let (block, tail) = tail.split_at_checked(len).ok_or(corrupt(
            Compression::Snappy,
            "xerial block runs past the end of the batch",
        ))?;
        snappy_block(block, start, max_len, out)?;
        rest = tail;
    }
    Ok(())
}

/// Appends one raw snappy block, checking its claimed length against the cap first.
#[cfg(feature = "snappy")]
fn snappy_block(
    block: &[u8],
    start: usize,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeErrorKind> {
    let claimed = snap::raw::decompress_len(block)
        .map_err(|_| corrupt(Compression::Snappy, "snappy block header is malformed"))?;
    let at = out.len();
    if (at - start).saturating_add(claimed) > max_len {
        return Err(too_large(Compression::Snappy, max_len));
    }
    out.resize(at + claimed, 0);
    // Cannot panic: `out` was just resized to `at + claimed` bytes.
    #[allow(clippy::indexing_slicing)]
    let dst = &mut out[at..];
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|_| corrupt(Compression::Snappy, "snappy block does not decode"))?;
    out.truncate(at + written);
    Ok(())
}

/// An LZ4 frame as Kafka's `Lz4BlockOutputStream` writes it: [`LZ4_FRAME_HEADER`], then each
/// 64 KiB of input as one independent block (stored as is when it does not shrink), then the
/// end mark.
#[cfg(feature = "lz4")]
fn lz4_compress(input: &[u8], level: Option<u32>, out: &mut Vec<u8>) -> std::io::Result<()> {
    use lz4::block::CompressionMode;
    let mode = match level {
        None | Some(LZ4_DEFAULT_LEVEL) => CompressionMode::DEFAULT,
        Some(level) => CompressionMode::HIGHCOMPRESSION(i32::try_from(level).unwrap_or(i32::MAX)),
    };
    let bound = lz4::block::compress_bound(LZ4_BLOCK_LEN)?;
    out.extend_from_slice(&LZ4_FRAME_HEADER);
    for block in input.chunks(LZ4_BLOCK_LEN) {
        let at = out.len();
        out.resize(at + 4 + bound, 0);
        // Cannot panic: `out` was just resized to `at + 4 + bound` bytes.
        #[allow(clippy::indexing_slicing)]
        let (len_field, dst) = out[at..].split_at_mut(4);
        let n = lz4::block::compress_to_buffer(block, Some(mode), false, dst)?;
        // A block is at most 64 KiB, so its length fits the 31 bits the format gives it.
        if n < block.len() {
            len_field.copy_from_slice(&(n as u32).to_le_bytes());
            out.truncate(at + 4 + n);
        } else {
            let len = block.len() as u32 | LZ4_UNCOMPRESSED_BLOCK;
            len_field.copy_from_slice(&len.to_le_bytes());
            out.truncate(at + 4);
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

/// Compression levels where Kafka has them (`compression.gzip.level`, `compression.lz4.level`,
/// `compression.zstd.level`); `None` takes the codec's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CompressionLevels {
    /// gzip level 1-9 (Kafka's default: 6, zlib's default).
    pub gzip: Option<u32>,
    /// lz4 level 1-17 (Kafka's default: 9). As in Kafka, the default level uses LZ4's fast
    /// compressor and any other level its high-compression mode (LZ4 HC, which tops out at 12).
    pub lz4: Option<u32>,
    /// zstd level -131072..=22 (Kafka's default: 3).
    pub zstd: Option<i32>,
}

/// Appends the compression of `input` with `codec`, in Kafka's framing, to `out`.
pub(crate) fn compress(
    codec: Compression,
    input: &[u8],
    levels: &CompressionLevels,
    out: &mut Vec<u8>,
) -> Result<(), Compression> {
    let _ = levels;
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => {
            use std::io::Write;
            let level = flate2::Compression::new(levels.gzip.unwrap_or(6).min(9));
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(input).map_err(|_| codec)?;
            encoder.finish().map(|_| ()).map_err(|_| codec)
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK_LEN) {
                let at = out.len();
                out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
                // Cannot panic: `out` was just resized to `at + 4 + max_compress_len(..)` bytes.
                #[allow(clippy::indexing_slicing)]
                let (len_field, dst) = out[at..].split_at_mut(4);
                let n = encoder.compress(block, dst).map_err(|_| codec)?;
                let len = i32::try_from(n).map_err(|_| codec)?;
                len_field.copy_from_slice(&len.to_be_bytes());
                out.truncate(at + 4 + n);
            }
            Ok(())
        }
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4_compress(input, levels.lz4, out).map_err(|_| codec),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let level = levels.zstd.unwrap_or(3);
            let mut encoder = zstd::stream::write::Encoder::new(out, level).map_err(|_| codec)?;
            std::io::Write::write_all(&mut encoder, input).map_err(|_| codec)?;
            encoder.finish().map(|_| ()).map_err(|_| codec)
        }
        #[allow(unreachable_patterns, reason = "reached when a codec feature is off")]
        _ => Err(codec),
    }
}
