//! Writing a file the restores create so that its holes stay holes.
//!
//! Backups store a sparse file's holes as zeros; writing them back would
//! allocate every byte (2 GiB of holes restored as 2 GiB on disk). A
//! [`SparseWriter`] skips every aligned block that is all zeros and sets
//! the length at the end, so a new, empty file gets holes where the zeros
//! were. Blocks are 4 KiB, the page and usual filesystem block size.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

const BLOCK: u64 = 4096;

/// Writes into a new, empty file at increasing offsets from 0.
pub struct SparseWriter<'a> {
    file: &'a File,
    pos: u64,
    /// Where the last write ended: the length is set only when a hole ends the file.
    written: u64,
}

impl<'a> SparseWriter<'a> {
    pub fn new(file: &'a File) -> Self {
        SparseWriter {
            file,
            pos: 0,
            written: 0,
        }
    }

    /// Sets the file's length to what was written, which extends a file
    /// that ends in a hole; returns that length.
    pub fn finish(self) -> io::Result<u64> {
        if self.written < self.pos {
            self.file.set_len(self.pos)?;
        }
        Ok(self.pos)
    }
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        let mut run_start: Option<(u64, usize)> = None;
        let mut offset = 0usize;
        while !rest.is_empty() {
            let to_boundary = (BLOCK - self.pos % BLOCK) as usize;
            let (piece, tail) = rest.split_at(to_boundary.min(rest.len()));
            let zeros = piece.iter().all(|b| *b == 0);
            match (&run_start, zeros) {
                (None, false) => run_start = Some((self.pos, offset)),
                (Some((at, from)), true) => {
                    self.file.write_all_at(&buf[*from..offset], *at)?;
                    self.written = *at + (offset - *from) as u64;
                    run_start = None;
                }
                _ => {}
            }
            self.pos += piece.len() as u64;
            offset += piece.len();
            rest = tail;
        }
        if let Some((at, from)) = run_start {
            self.file.write_all_at(&buf[from..], at)?;
            self.written = self.pos;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_content_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut expected = vec![0u8; 8 << 20];
        expected[5000..5003].copy_from_slice(b"abc");
        expected[(4 << 20) + 1] = 9;
        let mut writer = SparseWriter::new(&file);
        for piece in expected.chunks(1000) {
            writer.write_all(piece).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), expected.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        let allocated = file.metadata().unwrap().blocks() * 512;
        assert!(allocated < 1 << 20, "{allocated} bytes allocated");
    }

    #[test]
    fn files_ending_in_data_or_in_a_hole_get_their_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        for (name, expected) in [
            ("data_last", [vec![0u8; 10_000], vec![7u8; 10]].concat()),
            ("hole_last", [vec![7u8; 10], vec![0u8; 10_000]].concat()),
            ("empty", Vec::new()),
        ] {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            let mut writer = SparseWriter::new(&file);
            writer.write_all(&expected).unwrap();
            assert_eq!(writer.finish().unwrap(), expected.len() as u64);
            assert_eq!(std::fs::read(&path).unwrap(), expected, "{name}");
        }
    }
}
