//! A checksum line closing each of topiclog's own text files (topic and producer registries,
//! group offsets, checkpoints): `crc32c <8 hex digits>`, the CRC-32C of every byte before it.
//! Without it, one flipped bit can turn a digit into another digit, and a committed offset, a
//! log start or a retention setting would change silently.
//!
//! Files written before the line existed have none, and are read as they are; their own
//! structure (entry counts, versions) is all that checks them. A format that requires the line
//! says so through [`Required`].

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::Path;

use crate::error::{Corruption, Error, Result};

const TAG: &str = "crc32c ";

/// Whether a file must end with the checksum line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    /// It must (the format's version has always written it).
    Yes,
    /// Files of older versions may lack it.
    No,
}

/// The lines of one of these files' text, each with the byte position it starts at (for
/// errors that say where), without its newline.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    let mut position = 0u64;
    text.split_inclusive('\n').map(move |line| {
        let at = position;
        position += line.len() as u64;
        (at, line.strip_suffix('\n').unwrap_or(line))
    })
}

/// `text` (ending with a newline) followed by its checksum line.
pub(crate) fn seal(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let crc = crate::crc::crc32c(text.as_bytes());
    text.push_str(&format!("{TAG}{crc:08x}\n"));
    text
}

/// The bytes of a sealed file before its checksum line, checked against it. A mismatch, or a
/// required line missing, is [`Error::Corrupt`] naming `path` and the checksum line's byte.
pub(crate) fn open<'a>(bytes: &'a [u8], path: &Path, required: Required) -> Result<&'a [u8]> {
    let body_end = match bytes.strip_suffix(b"\n") {
        Some(rest) => rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
        None => bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
    };
    let (body, last) = bytes.split_at(body_end);
    let last = std::str::from_utf8(last)
        .unwrap_or("")
        .trim_end_matches('\n');
    let Some(hex) = last.strip_prefix(TAG) else {
        return match required {
            Required::No => Ok(bytes),
            Required::Yes => Err(Error::corrupt(
                path,
                bytes.len() as u64,
                Corruption::Metadata("checksum line missing: the file was cut short"),
            )),
        };
    };
    if hex != format!("{:08x}", crate::crc::crc32c(body)) {
        return Err(Error::corrupt(
            path,
            body_end as u64,
            Corruption::Metadata("checksum mismatch: the file was changed or damaged"),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_and_any_change_is_caught() -> Result<()> {
        let path = Path::new("f");
        let text = seal("0\n1\nabc 12\n".to_owned());
        assert_eq!(
            open(text.as_bytes(), path, Required::Yes)?,
            b"0\n1\nabc 12\n"
        );
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                match open(&bytes, path, Required::Yes) {
                    Err(Error::Corrupt { .. }) => {}
                    other => panic!("byte {i} bit {bit}: {other:?}"),
                }
            }
        }
        // Cut short: the checksum line goes first.
        for len in 0..text.len() - 1 {
            assert!(
                open(&text.as_bytes()[..len], path, Required::Yes).is_err(),
                "{len}"
            );
        }
        // An old file without the line reads as it is, where allowed.
        assert_eq!(open(b"0\n0\n", path, Required::No)?, b"0\n0\n");
        assert!(open(b"0\n0\n", path, Required::Yes).is_err());
        assert_eq!(
            seal(String::new()),
            format!("{TAG}{:08x}\n", crate::crc::crc32c(b""))
        );
        Ok(())
    }
}
