//! Percent-encoding of names kept in topiclog's text files (group ids, producer names): any
//! string becomes one space-free token of printable ASCII, and back.

// It decodes bytes read from files: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt::Write as _;

/// Printable ASCII stays (except `%`); every other byte becomes `%XX`.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Reverses [`encode`]; `None` for a malformed escape, a byte [`encode`] never leaves as it
/// is, or bytes that are not UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else if (b'!'..=b'~').contains(&b) {
            bytes.push(b);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_round_trips_as_one_printable_token() {
        for name in ["orders", "a b", "100%", "naïve/ünïcode\n", ""] {
            let encoded = encode(name);
            assert!(
                encoded.bytes().all(|b| (b'!'..=b'~').contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode(&encoded).as_deref(), Some(name));
        }
        for bad in ["%", "%4", "%zz", "a b", "%FF"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
