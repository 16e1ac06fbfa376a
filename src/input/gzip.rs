//! Reading gzip files as gzip(1) reads them: each member in turn, and zero bytes
//! after the last one ignored (a `.tar.gz` padded out to a block size ends so, and
//! `gzip -t` passes it); anything else after the last member is damage.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;

/// The decompressed bytes of every member of a gzip stream.
pub struct Gzip<R: Read> {
    /// The member being read; None once the stream has ended.
    member: Option<GzDecoder<BufReader<R>>>,
    /// The reader, kept when the stream ends.
    ended: Option<BufReader<R>>,
}

/// Reads the gzip stream of `inner`.
pub fn decoder<R: Read>(inner: R) -> Gzip<R> {
    Gzip {
        member: Some(GzDecoder::new(BufReader::with_capacity(1 << 16, inner))),
        ended: None,
    }
}

impl<R: Read> Gzip<R> {
    /// The reader under the stream, past what has been decompressed.
    pub fn into_inner(self) -> R {
        match (self.member, self.ended) {
            (Some(member), _) => member.into_inner().into_inner(),
            (None, Some(reader)) => reader.into_inner(),
            (None, None) => unreachable!("a gzip stream keeps its reader"),
        }
    }
}

impl<R: Read> Read for Gzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while let Some(member) = self.member.as_mut() {
            let n = member.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            // The member ended: another follows, or the stream ends here.
            let mut reader = self
                .member
                .take()
                .map(GzDecoder::into_inner)
                .expect("a member");
            match another_member(&mut reader) {
                Ok(true) => self.member = Some(GzDecoder::new(reader)),
                Ok(false) => self.ended = Some(reader),
                Err(e) => {
                    // Kept for `into_inner` (the archive walk asks for it after damage).
                    self.ended = Some(reader);
                    return Err(e);
                }
            }
        }
        Ok(0)
    }
}

/// After a member: true where another begins; false at the end of the input, past
/// any zero bytes; an error for anything else.
fn another_member(reader: &mut impl BufRead) -> io::Result<bool> {
    if reader.fill_buf()?.first() == Some(&0x1f) {
        return Ok(true);
    }
    loop {
        let rest = reader.fill_buf()?;
        if rest.is_empty() {
            return Ok(false);
        }
        if rest.iter().any(|&b| b != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "trailing garbage after the gzip stream",
            ));
        }
        let n = rest.len();
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzipped(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_in_turn_zeros_after_them_and_nothing_else() {
        let mut two = gzipped(b"one ");
        two.extend(gzipped(b"two"));
        assert_eq!(read(&two).unwrap(), b"one two");
        // Padded with zeros, as gzip -t accepts.
        let mut padded = two.clone();
        padded.extend([0u8; 512]);
        assert_eq!(read(&padded).unwrap(), b"one two");
        // Garbage after the stream, and a cut stream, are damage.
        let mut garbage = two.clone();
        garbage.extend(b"garbage");
        assert!(read(&garbage).is_err());
        // The reader underneath is still there after the damage.
        let mut damaged = decoder(&garbage[..]);
        assert!(damaged.read_to_end(&mut Vec::new()).is_err());
        let _ = damaged.into_inner();
        assert!(read(&two[..two.len() - 3]).is_err());
        assert!(read(&gzipped(b"")).unwrap().is_empty());
    }
}
