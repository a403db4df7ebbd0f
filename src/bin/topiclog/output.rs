//! Standard output and the ways a command can end.

use std::fmt;
use std::io::{self, BufWriter, StdoutLock, Write};

/// Why a command stopped before finishing normally.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad arguments that the parser could not catch (exit 2).
    Usage(String),
    /// The library failed: lock, data, I/O (exit 2).
    Store(topiclog::Error),
    /// Reading stdin or writing stdout failed for another reason than a closed pipe (exit 2).
    Io {
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// Stdout was closed by its reader (`| head`): the command ends quietly (exit 0).
    StdoutClosed,
    /// `verify` found problems, or `dump` met bytes it cannot read, and printed them (exit 1).
    ProblemsFound,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) => f.write_str(message),
            Failure::Store(e) => write!(f, "{e}"),
            Failure::Io { what, source } => write!(f, "{what}: {source}"),
            Failure::StdoutClosed => f.write_str("standard output closed"),
            Failure::ProblemsFound => f.write_str("problems found"),
        }
    }
}

impl From<topiclog::Error> for Failure {
    fn from(e: topiclog::Error) -> Self {
        Failure::Store(e)
    }
}

/// Buffered stdout. A write to a closed pipe is [`Failure::StdoutClosed`].
pub(crate) struct Out {
    writer: BufWriter<StdoutLock<'static>>,
}

impl Out {
    pub(crate) fn stdout() -> Out {
        Out {
            writer: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        }
    }

    /// Writes bytes as they are.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.writer.write_all(bytes).map_err(stdout_failure)
    }

    /// Writes formatted text.
    pub(crate) fn text(&mut self, args: fmt::Arguments<'_>) -> Result<(), Failure> {
        self.writer.write_fmt(args).map_err(stdout_failure)
    }

    /// Writes formatted text and a newline.
    pub(crate) fn line(&mut self, args: fmt::Arguments<'_>) -> Result<(), Failure> {
        self.text(args)?;
        self.bytes(b"\n")
    }

    /// The buffered writer, for encoders that write into an [`io::Write`]; map its errors with
    /// [`stdout_failure`].
    pub(crate) fn writer(&mut self) -> &mut BufWriter<StdoutLock<'static>> {
        &mut self.writer
    }

    /// Sends what is buffered to stdout now.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        self.writer.flush().map_err(stdout_failure)
    }
}

/// A failed write to stdout: a closed pipe ends the command quietly, anything else is an error.
pub(crate) fn stdout_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Io {
            what: "write to standard output",
            source: e,
        }
    }
}
