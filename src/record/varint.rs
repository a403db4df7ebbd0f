//! Zig-zag varints (i32) and varlongs (i64) as Kafka writes them in record bodies
//! (`ByteUtils.writeVarint` / `writeVarlong`): zig-zag, then unsigned LEB128, least significant
//! group first. Kafka rejects a varint longer than 5 bytes and a varlong longer than 10.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than 5 (varint) or 10 (varlong) bytes with the continuation bit set.
    TooLong,
}

/// Longest varint Kafka accepts, in bytes.
pub(crate) const MAX_VARINT_LEN: usize = 5;
/// Longest varlong Kafka accepts, in bytes.
pub(crate) const MAX_VARLONG_LEN: usize = 10;

#[inline]
fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline]
fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Bytes `put_varint(n)` writes.
#[inline]
pub(crate) fn varint_len(n: i32) -> usize {
    unsigned_len(u64::from(zigzag32(n)))
}

/// Bytes `put_varlong(n)` writes.
#[inline]
pub(crate) fn varlong_len(n: i64) -> usize {
    unsigned_len(zigzag64(n))
}

#[inline]
fn unsigned_len(u: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    let bits = 64 - (u | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `n` as a zig-zag varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, n: i32) {
    put_unsigned(out, u64::from(zigzag32(n)));
}

/// Appends `n` as a zig-zag varlong.
#[inline]
pub(crate) fn put_varlong(out: &mut Vec<u8>, n: i64) {
    put_unsigned(out, zigzag64(n));
}

#[inline]
fn put_unsigned(out: &mut Vec<u8>, mut u: u64) {
    // Byte pushes: a copy from a stack buffer costs a memcpy call per varint.
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Reads a zig-zag varint at `*pos`, advancing `*pos` past it.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let u = read_unsigned(buf, pos, MAX_VARINT_LEN)? as u32;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Reads a zig-zag varlong at `*pos`, advancing `*pos` past it.
#[inline(always)]
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let u = read_unsigned(buf, pos, MAX_VARLONG_LEN)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[inline(always)]
fn read_unsigned(buf: &[u8], pos: &mut usize, max_len: usize) -> Result<u64, VarintError> {
    // A record's fields (deltas, lengths, header counts) mostly take one or two bytes: those
    // inline, longer ones (and every fault) in the loop, out of line. `max_len` is at least 5.
    if let Some(&b0) = buf.get(*pos) {
        if b0 & 0x80 == 0 {
            *pos += 1;
            return Ok(u64::from(b0));
        }
        if let Some(&b1) = buf.get(*pos + 1)
            && b1 & 0x80 == 0
        {
            *pos += 2;
            return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
        }
    }
    // The new position comes back by value: a `&mut` into an out-of-line call would keep the
    // caller's position in memory rather than in a register.
    let (value, len) = read_unsigned_long(buf, *pos, max_len)?;
    *pos += len;
    Ok(value)
}

/// The varint at `pos` and its length in bytes.
#[inline(never)]
fn read_unsigned_long(buf: &[u8], pos: usize, max_len: usize) -> Result<(u64, usize), VarintError> {
    let mut result: u64 = 0;
    for i in 0..max_len {
        let Some(&b) = buf.get(pos + i) else {
            return Err(VarintError::Truncated);
        };
        // Bits beyond the target width are dropped, as Java's shifts drop them.
        result |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b & 0x80 == 0 {
            return Ok((result, i + 1));
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc32(n: i32) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint(&mut v, n);
        v
    }

    #[test]
    fn kafka_reference_table() {
        // kafka-log-format.md §2.5
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(-2), [0x03]);
        assert_eq!(enc32(2), [0x04]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(300), [0xd8, 0x04]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut v = Vec::new();
        put_varlong(&mut v, i64::MAX);
        assert_eq!(
            v,
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn lengths_match_encodings() {
        for n in [0, 1, -1, 63, -64, 64, -65, 8191, 8192, i32::MAX, i32::MIN] {
            assert_eq!(varint_len(n), enc32(n).len(), "{n}");
        }
        for n in [0i64, -1, 1 << 40, i64::MAX, i64::MIN] {
            let mut v = Vec::new();
            put_varlong(&mut v, n);
            assert_eq!(varlong_len(n), v.len(), "{n}");
        }
    }

    #[test]
    fn round_trip_and_errors() {
        for n in [0, 1, -1, 300, -300, i32::MAX, i32::MIN] {
            let v = enc32(n);
            let mut pos = 0;
            assert_eq!(read_varint(&v, &mut pos), Ok(n));
            assert_eq!(pos, v.len());
        }
        for n in [0i64, -5, i64::MAX, i64::MIN] {
            let mut v = Vec::new();
            put_varlong(&mut v, n);
            let mut pos = 0;
            assert_eq!(read_varlong(&v, &mut pos), Ok(n));
            assert_eq!(pos, v.len());
        }
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(VarintError::Truncated)
        );
        assert_eq!(pos, 0, "position untouched on error");
        assert_eq!(read_varint(&[0xff; 6], &mut pos), Err(VarintError::TooLong));
        assert_eq!(
            read_varlong(&[0xff; 11], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(read_varint(&[], &mut pos), Err(VarintError::Truncated));
    }
}
