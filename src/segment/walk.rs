//! Reading a `.log` file batch by batch from a byte position: the one place that frames
//! batches out of a segment file. Recovery's scan (which stops at the first bad batch) and
//! `inspect`'s reader (which reports every batch and goes on past a bad CRC) both walk with it;
//! what they check in each batch is theirs.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::disk::{File, Mapping};
use crate::error::Result;
use crate::record::{BATCH_HEADER_LEN, Batch, DecodeError, DecodeErrorKind};

use super::READ_CHUNK;

/// Windows onto a file's bytes: slices of the mapping when there is one, else `pread`s into a
/// reused buffer of at least [`READ_CHUNK`] bytes (one batch if larger).
#[derive(Debug)]
pub(crate) struct Window<'a> {
    log: File,
    map: Option<&'a Mapping>,
    /// Readable end: as given, lowered if a read finds the file shorter.
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Window<'a> {
    /// A window onto `[0, end)` of `log`, read through `map` when given.
    pub(crate) fn new(log: File, map: Option<&'a Mapping>, end: u64) -> Self {
        Window {
            log,
            map,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The readable end.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Bytes from `pos`: at least `min` of them, or all that remain before the end.
    pub(crate) fn get(&mut self, pos: u64, min: usize) -> Result<&[u8]> {
        let end = self.end;
        if let Some(map) = self.map {
            let (Ok(from), Ok(to)) = (usize::try_from(pos), usize::try_from(end)) else {
                return Ok(&[]);
            };
            return Ok(map.get(from..to.min(map.len())).unwrap_or(&[]));
        }
        let available = end.saturating_sub(pos);
        let want = (min as u64).min(available);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + want > buf_end {
            // At most max(READ_CHUNK, min), so it fits a usize.
            let len = (READ_CHUNK.max(min) as u64).min(available) as usize;
            self.buf.clear();
            self.buf.resize(len, 0);
            let n = self.log.read_at(&mut self.buf, pos)?;
            self.buf.truncate(n);
            self.buf_start = pos;
            if n < len {
                // Shortened since the window was made: it ends here now.
                self.end = pos + n as u64;
            }
        }
        let from = usize::try_from(pos - self.buf_start).unwrap_or(usize::MAX);
        Ok(self.buf.get(from..).unwrap_or(&[]))
    }

    /// The `len` bytes from `pos` if the window holds them already.
    fn held(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let (from, bytes) = match self.map {
            Some(map) => (usize::try_from(pos).ok()?, map.get(..)?),
            None => (
                usize::try_from(pos.checked_sub(self.buf_start)?).ok()?,
                &self.buf[..],
            ),
        };
        bytes.get(from..from.checked_add(len)?)
    }

    /// Whether every byte from `pos` to the end is zero.
    pub(crate) fn all_zero_from(&mut self, pos: u64) -> Result<bool> {
        let mut p = pos;
        while p < self.end {
            let chunk = self.get(p, READ_CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            if chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            p += chunk.len() as u64;
        }
        Ok(true)
    }
}

/// One step of a [`Walker`].
#[derive(Debug)]
pub(crate) enum Step<'w> {
    /// A framed batch (its CRC not checked) at `position`.
    Batch { position: u64, batch: Batch<'w> },
    /// No batch can be framed at `position`: the walk ends there.
    Stop { position: u64, error: DecodeError },
    /// The end of the file, at a batch boundary.
    End,
}

/// A [`Step`] without the batch's bytes (see [`Walker::frame`]).
#[derive(Debug)]
pub(crate) enum Frame {
    Batch { position: u64, size: usize },
    Stop { position: u64, error: DecodeError },
    End,
}

/// Frames batches one after another from a start position (a batch boundary).
#[derive(Debug)]
pub(crate) struct Walker<'a> {
    window: Window<'a>,
    pos: u64,
}

impl<'a> Walker<'a> {
    /// Walks `window` from byte `start`.
    pub(crate) fn new(window: Window<'a>, start: u64) -> Self {
        Walker { window, pos: start }
    }

    /// Byte position of the next batch: after the last one framed.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// The window walked, e.g. to look at what follows a stop.
    pub(crate) fn window(&mut self) -> &mut Window<'a> {
        &mut self.window
    }

    /// The next batch: [`frame`](Walker::frame) and [`framed`](Walker::framed) in one.
    pub(crate) fn next(&mut self) -> Result<Step<'_>> {
        Ok(match self.frame()? {
            Frame::Batch { position, size } => match self.framed(position, size) {
                Some(batch) => Step::Batch { position, batch },
                None => Step::End, // unreachable: `frame` parsed these very bytes
            },
            Frame::Stop { position, error } => Step::Stop { position, error },
            Frame::End => Step::End,
        })
    }

    /// Frames the batch at the current position and moves past it, leaving its bytes in the
    /// window for [`framed`](Walker::framed). A batch is framed when its header parses and all
    /// the bytes its length announces lie in the file; after [`Frame::Stop`] or
    /// [`Frame::End`] the position stays where it is.
    pub(crate) fn frame(&mut self) -> Result<Frame> {
        let pos = self.pos;
        let end = self.window.end();
        if pos >= end {
            return Ok(Frame::End);
        }
        let needed = match Batch::parse(self.window.get(pos, BATCH_HEADER_LEN)?) {
            Ok(batch) => batch.size(),
            Err(e) => match e.kind {
                // Whole in the file, not yet in the window: widen it.
                DecodeErrorKind::Truncated { needed, .. }
                    if pos.saturating_add(needed as u64) <= end =>
                {
                    needed
                }
                _ => {
                    return Ok(Frame::Stop {
                        position: pos,
                        error: e,
                    });
                }
            },
        };
        // Parsed again over a window holding it whole (the file may have been shortened since).
        match Batch::parse(self.window.get(pos, needed)?) {
            Ok(batch) => {
                let size = batch.size();
                self.pos = pos + size as u64;
                Ok(Frame::Batch {
                    position: pos,
                    size,
                })
            }
            Err(error) => Ok(Frame::Stop {
                position: pos,
                error,
            }),
        }
    }

    /// The batch [`frame`](Walker::frame) just framed at `position`, `size` bytes long.
    pub(crate) fn framed(&self, position: u64, size: usize) -> Option<Batch<'_>> {
        Batch::parse(self.window.held(position, size)?).ok()
    }
}
