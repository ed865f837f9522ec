//! Content-defined chunking (FastCDC 2020) over a stream, with one buffer
//! reused for every file: chunk boundaries follow the content, so an edit in
//! the middle of a file changes only the chunks around it.

use std::io::{self, Read};

use fastcdc::v2020::{cut, select_masks, Normalization};
use serde::{Deserialize, Serialize};

/// Minimum, average and maximum chunk sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Params {
    /// File data: 512 KiB / 1 MiB / 8 MiB, as restic.
    pub const DATA: Params = Params {
        min: 512 << 10,
        avg: 1 << 20,
        max: 8 << 20,
    };
    /// File lists: small chunks (about 35 entries), so the unchanged
    /// stretches of a tree are stored once even when changes are spread
    /// through it.
    pub const TREE: Params = Params {
        min: 2 << 10,
        avg: 8 << 10,
        max: 64 << 10,
    };
}

/// Cuts what a reader yields into chunks.
pub struct Chunker {
    params: Params,
    masks: [u64; 4],
    buffer: Vec<u8>,
    /// How much of `buffer` this stream uses: all of it (two maximum
    /// chunks) unless the stream is known to be shorter.
    window: usize,
    start: usize,
    end: usize,
    eof: bool,
}

impl Chunker {
    pub fn new(params: Params) -> Chunker {
        Chunker {
            params,
            masks: masks(params),
            buffer: Vec::new(),
            window: 0,
            start: 0,
            end: 0,
            eof: true,
        }
    }

    /// Starts on a new stream of about `size` bytes (a file's size: a
    /// small file then needs no big buffer). A stream longer than `size`
    /// is still read to its end.
    pub fn reset(&mut self, size: u64) {
        let full = 2 * self.params.max as usize;
        self.window = usize::try_from(size.saturating_add(1)).map_or(full, |size| full.min(size));
        if self.buffer.len() < self.window {
            self.buffer.resize(self.window, 0);
        }
        self.start = 0;
        self.end = 0;
        self.eof = false;
    }

    /// The next chunk of `source`, or `None` at its end.
    ///
    /// Fails when reading fails.
    pub fn next(&mut self, source: &mut impl Read) -> io::Result<Option<&[u8]>> {
        let max = self.params.max as usize;
        if !self.eof && self.end - self.start < max {
            if self.end == self.window {
                // Longer than announced: read on with the full window.
                self.window = 2 * max;
                if self.buffer.len() < self.window {
                    self.buffer.resize(self.window, 0);
                }
            }
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < self.window {
                match source.read(&mut self.buffer[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.end += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if self.start == self.end {
            return Ok(None);
        }
        let length = cut_point(&self.buffer[self.start..self.end], self.params, self.masks);
        let chunk = &self.buffer[self.start..self.start + length];
        self.start += length;
        Ok(Some(chunk))
    }
}

/// Where the first chunk of `data` ends (all of `data` when it is short).
pub fn cut_point(data: &[u8], params: Params, masks: [u64; 4]) -> usize {
    let [mask_s, mask_l, mask_s_ls, mask_l_ls] = masks;
    let (_, length) = cut(
        data,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
        mask_s,
        mask_l,
        mask_s_ls,
        mask_l_ls,
    );
    length.max(1).min(data.len())
}

/// The masks FastCDC uses for `params`.
pub fn masks(params: Params) -> [u64; 4] {
    let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
    [mask_s, mask_l, mask_s << 1, mask_l << 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], params: Params) -> Vec<Vec<u8>> {
        chunks_told(data, params, u64::MAX)
    }

    fn chunks_told(data: &[u8], params: Params, size: u64) -> Vec<Vec<u8>> {
        let mut chunker = Chunker::new(params);
        chunker.reset(size);
        let mut source = data;
        let mut out = Vec::new();
        while let Some(chunk) = chunker.next(&mut source).unwrap() {
            out.push(chunk.to_vec());
        }
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_stream_within_bounds() {
        let data = noise(3 << 20, 7);
        let all = chunks(&data, Params::TREE);
        assert_eq!(all.concat(), data);
        assert!(all.len() > 200, "{} chunks", all.len());
        for chunk in &all[..all.len() - 1] {
            assert!(
                (2 << 10..=64 << 10).contains(&chunk.len()),
                "{}",
                chunk.len()
            );
        }
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let data = noise(4 << 20, 9);
        let mut edited = data.clone();
        edited.splice(2_000_000..2_000_000, b"inserted".iter().copied());
        let before = chunks(&data, Params::TREE);
        let after = chunks(&edited, Params::TREE);
        let shared = after.iter().filter(|c| before.contains(c)).count();
        assert!(
            shared + 3 >= after.len(),
            "{shared} of {} shared",
            after.len()
        );
    }

    #[test]
    fn the_announced_size_changes_nothing_and_a_wrong_one_loses_nothing() {
        let data = noise(300_000, 3);
        let exact = chunks_told(&data, Params::TREE, data.len() as u64);
        assert_eq!(exact, chunks(&data, Params::TREE));
        for wrong in [0, 1000, 299_999] {
            assert_eq!(
                chunks_told(&data, Params::TREE, wrong).concat(),
                data,
                "{wrong}"
            );
        }
    }

    #[test]
    fn empty_and_short_streams() {
        assert!(chunks(b"", Params::DATA).is_empty());
        assert_eq!(chunks(b"hello", Params::DATA), vec![b"hello".to_vec()]);
    }
}
