//! Data that does not compress (media, archives, random bytes) is stored in
//! zstd's own raw blocks instead of being searched for matches first. Every
//! zstd decoder reads the result; only the compressor's futile work is
//! saved. A small sample compressed at the fastest level decides.

use std::io;

/// Decides whether a piece of data is worth compressing.
pub struct Probe {
    fastest: zstd::bulk::Compressor<'static>,
}

impl Probe {
    /// Bytes sampled from the middle of a piece.
    const SAMPLE: usize = 32 << 10;
    /// Pieces shorter than this are not judged, only compressed.
    pub const SHORTEST: usize = 4 * Self::SAMPLE;

    /// Fails only if zstd cannot make a compression context.
    pub fn new() -> io::Result<Probe> {
        Ok(Probe {
            fastest: zstd::bulk::Compressor::new(1)?,
        })
    }

    /// Whether `data` is long enough to judge and its sample does not
    /// shrink by even 2% at level 1. Short pieces are always compressed.
    pub fn incompressible(&mut self, data: &[u8]) -> bool {
        if data.len() < Self::SHORTEST {
            return false;
        }
        let start = data.len() / 2 - Self::SAMPLE / 2;
        let sample = &data[start..start + Self::SAMPLE];
        self.fastest
            .compress(sample)
            .is_ok_and(|out| out.len() * 100 >= sample.len() * 98)
    }
}

/// `data` as one zstd frame of raw blocks: what zstd itself writes for
/// incompressible data. Frames can follow each other in one stream.
pub fn raw_frame(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    append_raw_frame(&mut frame, data);
    frame
}

/// Appends [`raw_frame`]`(data)` to `out`.
pub fn append_raw_frame(out: &mut Vec<u8>, data: &[u8]) {
    const BLOCK: usize = 128 << 10;
    out.reserve(data.len() + 12 + 3 * (data.len() / BLOCK + 1));
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Single segment, 8-byte content size, no checksum, no dictionary.
    out.push(0b1110_0000);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        let header = (block.len() as u32) << 3 | last;
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_are_zstd_frames_and_concatenate() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for len in [0, 1, 128 << 10, (128 << 10) + 1, 1_000_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let frame = raw_frame(&data);
            assert_eq!(zstd::bulk::decompress(&frame, len).unwrap(), data, "{len}");
            stream.extend_from_slice(&frame);
            stream.extend_from_slice(&zstd::encode_all(&data[..], 3).unwrap());
            expected.extend_from_slice(&data);
            expected.extend_from_slice(&data);
        }
        assert_eq!(zstd::decode_all(&stream[..]).unwrap(), expected);
    }

    #[test]
    fn text_is_compressed_and_noise_is_not() {
        let mut probe = Probe::new().unwrap();
        let text = "a line of a log file, much like the next one\n".repeat(10_000);
        assert!(!probe.incompressible(text.as_bytes()));
        let mut state = 1u64;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(probe.incompressible(&noise));
        assert!(!probe.incompressible(&noise[..1000]));
    }
}
