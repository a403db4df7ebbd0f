//! The one module with `unsafe`: read-only memory mappings of segment and index files.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::ops::Deref;

/// A read-only view of the start of a file: a memory mapping from [`OsDisk`](super::OsDisk),
/// or an owned copy of the bytes from an in-memory disk (the fault-injecting one).
///
/// Invariants the crate keeps so that reading a mapping cannot fault (SIGBUS): a mapping is
/// only read below the length its file had when the bytes were read from it or written to it;
/// topiclog never shortens a file below bytes a reader may still read (recovery cuts a file
/// before it is mapped; a failed append cuts only bytes never published); the store's lock
/// keeps other topiclog writers out. Truncating the files by hand while a process holds them
/// is outside what any of this can protect.
#[derive(Debug)]
pub(crate) struct Mapping(View);

#[derive(Debug)]
enum View {
    Mapped(memmap2::Mmap),
    /// A copy of the bytes, taken when the "mapping" was made. Only read below lengths the
    /// file has kept since, so it reads what a real mapping would.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    Owned(Box<[u8]>),
}

impl Mapping {
    pub(super) fn map_file(file: &fs::File, len: usize) -> io::Result<Mapping> {
        // SAFETY: the mapping is read-only and private to this crate. Undefined behaviour would
        // need the file to change under it in a way Rust's `&[u8]` cannot describe: bytes that
        // are read are never rewritten (segments and indexes are append-only below their
        // published length) and never cut while readable (see the type's invariants).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Mapping(View::Mapped(map)))
    }

    /// Lets the pages of `range` (whole pages inside it) leave this process's resident set:
    /// a reader that went past them calls it, so a sequential scan keeps its memory flat
    /// instead of growing with every page of the file it touched. The pages stay in the page
    /// cache; reading them again faults them back in, with the same bytes. Best effort: an
    /// error only means the pages stay resident.
    pub(crate) fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let View::Mapped(map) = &self.0 {
            const PAGE: usize = 4096;
            // Whole pages: from the one holding `start` (a caller's last `end` rounded down,
            // so no page is ever skipped between calls) to the one holding `end`, exclusive.
            let start = range.start / PAGE * PAGE;
            let end = range.end.min(map.len()) / PAGE * PAGE;
            if start < end {
                // SAFETY: the mapping is a shared, read-only mapping of a file, never of
                // anonymous memory, so MADV_DONTNEED only drops this process's page-table
                // entries: the next access faults the page back in from the file, whose bytes
                // below the lengths readers use never change (see the type's invariants). Any
                // `&[u8]` borrowed from the range therefore reads the same bytes after this
                // as before, which is all Rust's model asks of it.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// A view of bytes copied out of an in-memory file.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub(super) fn owned(bytes: Vec<u8>) -> Mapping {
        Mapping(View::Owned(bytes.into_boxed_slice()))
    }
}

impl Deref for Mapping {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            View::Mapped(map) => map,
            View::Owned(bytes) => bytes,
        }
    }
}
