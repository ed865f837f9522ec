//! Pack files: many compressed chunks in one file, so a repository of a
//! million chunks is thousands of files, not a million.
//!
//! ```text
//! chunk 0 (one zstd frame) | chunk 1 | ... | table | count u32 | "OPSPACK1"
//! table: per chunk, its id (32 bytes), stored length u32, raw length u32
//! ```
//!
//! Chunk offsets follow from the stored lengths. A pack is named by the
//! SHA-256 of its table; each chunk is checked against its own id when it
//! is read, so every byte of a pack is covered without hashing it twice.
//! The table alone rebuilds the index.
//!
//! In an encrypted repository (see `crypt`) each chunk and the table are
//! sealed, the magic is "OPSPACKS", and a pack is named by the SHA-256 of
//! all its bytes, so that a check without the key still covers every byte.
//!
//! A pack's name is known only once it is complete, so it is built in
//! memory (a few tens of MiB at most) and stored in one write: a local
//! file renamed into place, or one object in a bucket, never half there.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ops_shared::atomic;
use ops_storage::Mode;

use crate::crypt::{Codec, Role};
use crate::id::Id;
use crate::repo::{make_dir, Repo};

/// A pack, table included, is at most this large (unless it holds one
/// chunk alone), so its buffer is allocated once and never grows.
const TARGET_BYTES: u64 = 16 << 20;
/// The largest pack read: what a pack may hold (its chunks, the table; a
/// larger pack from older versions held one more chunk of at most 8 MiB)
/// with room to spare; a larger object in `packs` is not one of ours, and
/// is not read into memory.
const MAX_BYTES: u64 = 64 << 20;
/// How much of a pack's end one read fetches, hoping the table fits.
const TAIL_GUESS: u64 = 256 << 10;
const MAGIC: &[u8; 8] = b"OPSPACK1";
const SEALED_MAGIC: &[u8; 8] = b"OPSPACKS";
const ENTRY_BYTES: usize = 40;

/// One chunk in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Id,
    pub offset: u32,
    pub stored: u32,
    pub raw: u32,
}

/// A pack being built.
pub struct PackWriter {
    out: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A stored pack.
pub struct Sealed {
    pub id: Id,
    pub entries: Vec<PackEntry>,
    /// Its size, table included.
    pub bytes: u64,
}

impl Default for PackWriter {
    fn default() -> PackWriter {
        PackWriter {
            out: Vec::with_capacity(TARGET_BYTES as usize),
            entries: Vec::new(),
        }
    }
}

impl PackWriter {
    /// Appends one compressed chunk.
    pub fn add(&mut self, id: Id, stored: &[u8], raw: u32) -> io::Result<()> {
        let too_big = || io::Error::other("pack grew past 4 GiB");
        self.entries.push(PackEntry {
            id,
            offset: u32::try_from(self.out.len()).map_err(|_| too_big())?,
            stored: u32::try_from(stored.len()).map_err(|_| too_big())?,
            raw,
        });
        self.out.extend_from_slice(stored);
        Ok(())
    }

    /// Whether a chunk of `stored` bytes still goes into this pack: an
    /// empty pack takes any chunk, others only while they and their table
    /// stay within the target.
    pub fn fits(&self, stored: usize) -> bool {
        let table = (self.entries.len() + 1) * ENTRY_BYTES + 12 + crate::crypt::OVERHEAD;
        self.entries.is_empty() || (self.out.len() + stored + table) as u64 <= TARGET_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the table and stores the pack durably under its name.
    pub fn finish(mut self, repo: &Repo) -> io::Result<Sealed> {
        let codec = repo.codec().map_err(io::Error::other)?;
        let start = self.out.len();
        self.out.resize(start + codec.head(), 0);
        for entry in &self.entries {
            self.out.extend_from_slice(&entry.id.0);
            self.out.extend_from_slice(&entry.stored.to_le_bytes());
            self.out.extend_from_slice(&entry.raw.to_le_bytes());
        }
        codec.seal_tail(Role::Table, &mut self.out, start);
        let count = u32::try_from(self.entries.len()).map_err(io::Error::other)?;
        self.out.extend_from_slice(&count.to_le_bytes());
        let id = if codec.is_sealed() {
            self.out.extend_from_slice(SEALED_MAGIC);
            Id::of(&self.out)
        } else {
            self.out.extend_from_slice(MAGIC);
            Id::of(&self.out[start..self.out.len() - 12])
        };
        let target = repo.pack_path(&id);
        match target.parent() {
            Some(dir) if !repo.is_remote() && !dir.is_dir() => {
                make_dir(dir)?;
                atomic::sync_dir(dir)?;
            }
            _ => {}
        }
        // The same name holds the same table, so the same chunks.
        let bytes = self.out.len() as u64;
        ops_storage::write(&target, Mode::Replace, self.out)?;
        Ok(Sealed {
            id,
            entries: self.entries,
            bytes,
        })
    }
}

/// Why a pack's table cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a pack file or its table is damaged")]
    BadTable,
}

/// Reads the chunk table at the end of the pack at `path`, in one read of
/// its end when the table is not large.
pub fn read_table(path: &Path, codec: &Codec) -> Result<Vec<PackEntry>, PackError> {
    let not_found = || io::Error::new(io::ErrorKind::NotFound, "no such pack");
    let len = ops_storage::stat(path)?.ok_or_else(not_found)?.size;
    if len < 12 {
        return Err(PackError::BadTable);
    }
    let guess = len.min(TAIL_GUESS);
    let mut tail = ops_storage::read_range(path, len - guess, guess)?;
    let table_len = table_len(&tail, len, codec)?;
    if table_len + 12 > guess {
        tail = ops_storage::read_range(path, len - 12 - table_len, table_len + 12)?;
    }
    let table = &tail[tail.len() - 12 - table_len as usize..tail.len() - 12];
    let table = codec
        .open(Role::Table, table)
        .map_err(|_| PackError::BadTable)?;
    parse_table(&table, len - 12 - table_len)
}

/// The stored length of the table of a pack of `len` bytes ending in `tail`.
fn table_len(tail: &[u8], len: u64, codec: &Codec) -> Result<u64, PackError> {
    let end = &tail[tail.len() - 12..];
    let magic = if codec.is_sealed() {
        SEALED_MAGIC
    } else {
        MAGIC
    };
    if &end[4..] != magic {
        return Err(PackError::BadTable);
    }
    let count = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    let table_len = count * ENTRY_BYTES as u64 + codec.overhead() as u64;
    if table_len + 12 > len {
        return Err(PackError::BadTable);
    }
    Ok(table_len)
}

fn parse_table(table: &[u8], data_len: u64) -> Result<Vec<PackEntry>, PackError> {
    let mut entries = Vec::with_capacity(table.len() / ENTRY_BYTES);
    let mut offset = 0u64;
    for raw in table.chunks_exact(ENTRY_BYTES) {
        let mut id = [0; 32];
        id.copy_from_slice(&raw[..32]);
        let stored = u32::from_le_bytes([raw[32], raw[33], raw[34], raw[35]]);
        let size = u32::from_le_bytes([raw[36], raw[37], raw[38], raw[39]]);
        entries.push(PackEntry {
            id: Id(id),
            offset: u32::try_from(offset).map_err(|_| PackError::BadTable)?,
            stored,
            raw: size,
        });
        offset += u64::from(stored);
    }
    if offset != data_len {
        return Err(PackError::BadTable);
    }
    Ok(entries)
}

/// What is wrong with one stored chunk.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("does not decompress ({0})")]
    Undecodable(String),
    #[error("content does not match its id")]
    Mismatch,
}

/// The whole pack at `path`, in memory of exactly its size.
fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let not_found = || io::Error::new(io::ErrorKind::NotFound, "no such pack");
    let size = ops_storage::stat(path)?.ok_or_else(not_found)?.size;
    if size > MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes: larger than any pack ops-snapshot writes"),
        ));
    }
    ops_storage::read_range(path, 0, size)
}

/// A pack opened to read chunks from: a local file is read in place, a
/// remote pack is fetched whole (one request instead of one per chunk),
/// and a fetched pack pushed out of memory may be kept as a stretch of a
/// local spill file.
pub enum PackSource {
    File(File),
    Fetched(Vec<u8>),
    Spilled {
        file: Arc<File>,
        start: u64,
        len: u64,
    },
}

impl PackSource {
    pub fn open(path: &Path) -> io::Result<PackSource> {
        if ops_storage::is_remote(path) {
            read_whole(path).map(PackSource::Fetched)
        } else {
            ops_shared::open::regular_file(path).map(PackSource::File)
        }
    }

    /// The stored bytes of the chunk at `offset`.
    pub fn read_stored(&self, offset: u32, stored: u32) -> io::Result<Vec<u8>> {
        let start = offset as usize;
        match self {
            PackSource::File(file) => {
                let mut bytes = vec![0; stored as usize];
                file.read_exact_at(&mut bytes, u64::from(offset))?;
                Ok(bytes)
            }
            PackSource::Fetched(all) => all
                .get(start..start + stored as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(past_the_end),
            PackSource::Spilled { file, start, len } => {
                if u64::from(offset) + u64::from(stored) > *len {
                    return Err(past_the_end());
                }
                let mut bytes = vec![0; stored as usize];
                file.read_exact_at(&mut bytes, start + u64::from(offset))?;
                Ok(bytes)
            }
        }
    }
}

fn past_the_end() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "past the pack's end")
}

/// Opens, decompresses and checks stored bytes against the chunk's id.
pub fn decode(codec: &Codec, id: &Id, stored: &[u8], raw: u32) -> Result<Vec<u8>, ChunkError> {
    thread_local! {
        /// Each reader thread's decrypted chunk: one buffer, not a fresh
        /// allocation (and its page faults) per chunk.
        static OPENED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let undecodable = |err: &dyn std::fmt::Display| ChunkError::Undecodable(err.to_string());
    let data = if codec.is_sealed() {
        OPENED.with_borrow_mut(|opened| {
            codec
                .open_into(Role::Chunk(id), stored, opened)
                .map_err(|err| undecodable(&err))?;
            zstd::bulk::decompress(opened, raw as usize).map_err(|err| undecodable(&err))
        })?
    } else {
        zstd::bulk::decompress(stored, raw as usize).map_err(|err| undecodable(&err))?
    };
    if data.len() != raw as usize || codec.id_of(&data) != *id {
        return Err(ChunkError::Mismatch);
    }
    Ok(data)
}

/// Reads a whole pack and checks it: the file against its name, the table,
/// and every chunk against its id. Returns the damaged chunks. Without the
/// `codec` of an encrypted repository, only the bytes against the name.
///
/// Fails only when the file cannot be read or its table is unusable.
pub fn check_pack(path: &Path, id: &Id, codec: Option<&Codec>) -> Result<PackCheck, PackError> {
    let bytes = read_whole(path)?;
    let len = bytes.len() as u64;
    if len < 12 {
        return Err(PackError::BadTable);
    }
    let Some(codec) = codec else {
        let whole_ok = &bytes[bytes.len() - 8..] == SEALED_MAGIC && Id::of(&bytes) == *id;
        return Ok(PackCheck {
            damaged: Vec::new(),
            whole_ok,
        });
    };
    let table_len = table_len(&bytes, len, codec)?;
    let data_len = len - 12 - table_len;
    let table = &bytes[data_len as usize..(len - 12) as usize];
    let whole_ok = if codec.is_sealed() {
        Id::of(&bytes) == *id
    } else {
        Id::of(table) == *id
    };
    let table = codec
        .open(Role::Table, table)
        .map_err(|_| PackError::BadTable)?;
    let entries = parse_table(&table, data_len)?;
    let mut damaged = Vec::new();
    for entry in &entries {
        let start = entry.offset as usize;
        let stored = &bytes[start..start + entry.stored as usize];
        if let Err(err) = decode(codec, &entry.id, stored, entry.raw) {
            damaged.push((*entry, err));
        }
    }
    Ok(PackCheck { damaged, whole_ok })
}

/// What [`check_pack`] found.
pub struct PackCheck {
    pub damaged: Vec<(PackEntry, ChunkError)>,
    /// Whether the table's SHA-256 matches the pack's name.
    pub whole_ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_and_its_table_stay_within_the_buffer_it_started_with() {
        for chunk in [100, 3 << 20, 5 << 20, 8 << 20] {
            let mut pack = PackWriter::default();
            let capacity = pack.out.capacity();
            let stored = vec![7; chunk];
            while pack.fits(chunk) {
                let id = Id::of(&pack.entries.len().to_le_bytes());
                pack.add(id, &stored, chunk as u32).unwrap();
            }
            let table = pack.entries.len() * ENTRY_BYTES + 12;
            assert!(pack.out.len() + table <= capacity, "{chunk}-byte chunks");
            assert_eq!(pack.out.capacity(), capacity, "{chunk}-byte chunks");
        }
    }

    #[test]
    fn an_empty_pack_takes_a_chunk_of_any_size() {
        assert!(PackWriter::default().fits(TARGET_BYTES as usize * 2));
    }
}
