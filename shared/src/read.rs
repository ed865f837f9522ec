//! Reading that the standard library leaves to each caller: filling a whole
//! buffer when the source may return less per call (pipes, decoders) yet an
//! early end is not an error.

use std::io::{self, Read};

/// Reads until `buf` is full or the input ends; returns how much was read.
pub fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields one byte per call.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((byte, rest)), Some(slot)) => {
                    *slot = *byte;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn fills_the_buffer_from_short_reads_and_stops_at_the_end() {
        let mut buf = [0u8; 4];
        assert_eq!(read_full(&mut Trickle(b"abcdef"), &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut Trickle(b"xyz"), &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"xyz");
    }
}
