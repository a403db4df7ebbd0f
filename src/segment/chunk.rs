//! A run of a segment's bytes handed to readers: a slice of the segment's mapping, or bytes
//! read into memory (the write buffer's, or `pread` where there is no mapping). Shared by
//! reference count so records can borrow from it without copying.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::sync::Arc;

use crate::disk::Mapping;

#[derive(Debug)]
enum Backing {
    Mapped(Arc<Mapping>),
    Owned(Vec<u8>),
}

/// Bytes `[start, start + len)` of one segment's `.log`; never more than `u32::MAX` bytes, so
/// positions inside a chunk fit in a `u32`.
#[derive(Debug)]
pub(crate) struct Chunk {
    backing: Backing,
    /// Where the bytes start inside the backing.
    skip: usize,
    len: usize,
    /// Segment position of the first byte.
    start: u64,
}

impl Chunk {
    /// Bytes `[start, start + len)` of a mapping of the whole file (`len` checked by the caller
    /// against what the file holds).
    pub(crate) fn mapped(map: Arc<Mapping>, start: u64, len: usize) -> Option<Chunk> {
        let skip = usize::try_from(start).ok()?;
        let len = len.min(u32::MAX as usize);
        if skip.checked_add(len)? > map.len() {
            return None;
        }
        Some(Chunk {
            backing: Backing::Mapped(map),
            skip,
            len,
            start,
        })
    }

    /// Bytes read into memory, which start at segment position `start`.
    pub(crate) fn owned(bytes: Vec<u8>, start: u64) -> Chunk {
        let len = bytes.len().min(u32::MAX as usize);
        Chunk {
            backing: Backing::Owned(bytes),
            skip: 0,
            len,
            start,
        }
    }

    /// The bytes.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        let all: &[u8] = match &self.backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        };
        all.get(self.skip..self.skip + self.len).unwrap_or(&[])
    }

    /// Lets the mapped pages of segment positions `range` leave the process's resident set
    /// (see [`Mapping::release`]); nothing for bytes read into memory.
    pub(crate) fn release(&self, range: std::ops::Range<u64>) {
        if let Backing::Mapped(map) = &self.backing {
            let (Ok(start), Ok(end)) = (usize::try_from(range.start), usize::try_from(range.end))
            else {
                return;
            };
            map.release(start..end);
        }
    }

    /// Segment position of the first byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Segment position just past the last byte.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len as u64
    }
}

/// Touches one byte per cache line of `bytes`, so the lines load in parallel. A walk over batch
/// headers loads them one dependent miss at a time; after this it hits the cache.
#[inline]
pub(crate) fn warm(bytes: &[u8]) {
    let touched = bytes.iter().step_by(64).fold(0u8, |acc, b| acc ^ b);
    std::hint::black_box(touched);
}
