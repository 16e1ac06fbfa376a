//! SQL text from stdin and files, bounded: `cxr sql - < /dev/zero` or a shell fed
//! an endless line must stop with an error, not grow until the machine runs out of
//! memory.

use std::io::{BufRead, Read};

/// The most SQL cxr reads at once (all of stdin for `cxr sql -`, a file run with
/// `\i`, one statement or line of a shell script): far beyond any hand-written or
/// generated query.
pub const MAX_SQL_BYTES: u64 = 16 << 20;

/// Why text could not be read.
#[derive(Debug)]
pub enum TextError {
    /// More than the cap.
    TooLarge(u64),
    /// Not UTF-8; the 1-based line of the first bad byte.
    NotUtf8(u64),
    /// The read failed.
    Io(std::io::Error),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::TooLarge(cap) => write!(f, "longer than {} MiB", cap >> 20),
            TextError::NotUtf8(line) => write!(f, "not UTF-8 text (line {line})"),
            TextError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// Reads all of `reader`, at most `cap` bytes of UTF-8.
pub fn read_all(reader: impl Read, cap: u64) -> Result<String, TextError> {
    let mut bytes = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(TextError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(TextError::TooLarge(cap));
    }
    utf8(bytes, 1)
}

/// Reads one line (its end of line left out) of at most `cap` bytes; None at the
/// end of the input. `line` is the line's number, for errors.
pub fn read_line(
    reader: &mut impl BufRead,
    cap: u64,
    line: u64,
) -> Result<Option<String>, TextError> {
    let mut bytes = Vec::new();
    let n = reader
        .take(cap + 1)
        .read_until(b'\n', &mut bytes)
        .map_err(TextError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.len() as u64 > cap {
        return Err(TextError::TooLarge(cap));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    utf8(bytes, line).map(Some)
}

fn utf8(bytes: Vec<u8>, first_line: u64) -> Result<String, TextError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        TextError::NotUtf8(first_line + valid.iter().filter(|&&b| b == b'\n').count() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_lines() {
        assert_eq!(read_all(&b"SELECT 1"[..], 8).unwrap(), "SELECT 1");
        assert!(matches!(
            read_all(&b"SELECT 12"[..], 8),
            Err(TextError::TooLarge(8))
        ));
        assert!(matches!(
            read_all(&b"a\nb\n\xff"[..], 100),
            Err(TextError::NotUtf8(3))
        ));
        let mut r = &b"one\r\ntwo\nthree"[..];
        let lines: Vec<String> = std::iter::from_fn(|| read_line(&mut r, 10, 1).unwrap()).collect();
        assert_eq!(lines, ["one", "two", "three"]);
        let mut endless = std::io::repeat(b'x');
        let mut endless = std::io::BufReader::new(&mut endless);
        assert!(matches!(
            read_line(&mut endless, 1000, 1),
            Err(TextError::TooLarge(1000))
        ));
    }
}
