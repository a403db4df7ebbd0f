//! Java `.properties` text, as Kafka's `server.properties`, topic configs and client configs are
//! written: one `key=value` (or `key: value`, or `key value`) per logical line; `#` and `!`
//! start comments; a line ending in an odd number of backslashes continues on the next; `\t`,
//! `\n`, `\r`, `\f`, `\uXXXX` and `\<any>` escapes. The settings themselves are checked by the
//! config builders, each against its own keys.

// It parses files users edit: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::Path;

use crate::error::{Error, IoOp, Result};

/// The `(key, value)` pairs of `text` in order, or the 1-based line and why it is malformed.
pub(crate) fn parse(text: &str) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut pairs = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let start_line = index + 1;
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines (their leading whitespace is dropped).
        let mut logical = String::from(trimmed);
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        let key = unescape(key).map_err(|reason| (start_line, reason))?;
        let value = unescape(value).map_err(|reason| (start_line, reason))?;
        if key.is_empty() {
            return Err((start_line, "a value without a key".to_owned()));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Reads and parses a properties file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(IoOp::Read, path, e))?;
    parse(&text).map_err(|(line, reason)| Error::ConfigFile {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

fn ends_in_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace (whitespace around the
/// separator is part of it).
fn split(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let key_end = i.min(bytes.len());
    let rest = line.get(key_end..).unwrap_or("");
    let rest = rest.trim_start_matches([' ', '\t', '\x0c']);
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))
        .unwrap_or(rest);
    (
        line.get(..key_end).unwrap_or(""),
        rest.trim_start_matches([' ', '\t', '\x0c']),
    )
}

fn unescape(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\u escape \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).expect("parses")
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# a comment\n! another\n\nsegment.bytes=1024\nretention.ms : 60000\n\
                    flush.ms   5\n  compression.type=zstd  \nempty=\nbare\n";
        assert_eq!(
            pairs(text),
            vec![
                kv("segment.bytes", "1024"),
                kv("retention.ms", "60000"),
                kv("flush.ms", "5"),
                kv("compression.type", "zstd  "),
                kv("empty", ""),
                kv("bare", ""),
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "a=one \\\n    two\nb=x\\\\\nc\\=d=e\\u0041\\t\nkey\\ with\\ spaces=v\n";
        assert_eq!(
            pairs(text),
            vec![
                kv("a", "one two"),
                kv("b", "x\\"),
                kv("c=d", "eA\t"),
                kv("key with spaces", "v"),
            ]
        );
        // A continuation on the last line ends there.
        assert_eq!(pairs("a=b\\"), vec![kv("a", "b")]);
    }

    #[test]
    fn malformed_lines_name_their_line() {
        assert_eq!(parse("a=1\nb=\\u12\n").map_err(|e| e.0), Err(2));
        assert_eq!(parse("a=1\n\n=value\n").map_err(|e| e.0), Err(3));
    }
}
