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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ops_shared::atomic::{self, TEMP_SUFFIX};

use crate::id::Id;
use crate::repo::{make_dir, Repo};

/// A pack is closed once it holds this much.
pub const TARGET_BYTES: u64 = 16 << 20;
const MAGIC: &[u8; 8] = b"OPSPACK1";
const ENTRY_BYTES: usize = 40;

/// One chunk in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Id,
    pub offset: u32,
    pub stored: u32,
    pub raw: u32,
}

/// A pack being written under a temporary name.
pub struct PackWriter {
    out: BufWriter<File>,
    temp: PathBuf,
    entries: Vec<PackEntry>,
    len: u64,
}

impl PackWriter {
    /// Starts a pack in `repo`.
    pub fn new(repo: &Repo) -> io::Result<PackWriter> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "pack-{}-{}-{}{TEMP_SUFFIX}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            jiff::Timestamp::now().as_nanosecond()
        );
        let temp = repo.packs_dir().join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(PackWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            temp,
            entries: Vec::new(),
            len: 0,
        })
    }

    /// Appends one compressed chunk.
    pub fn add(&mut self, id: Id, stored: &[u8], raw: u32) -> io::Result<()> {
        let too_big = || io::Error::other("pack grew past 4 GiB");
        self.entries.push(PackEntry {
            id,
            offset: u32::try_from(self.len).map_err(|_| too_big())?,
            stored: u32::try_from(stored.len()).map_err(|_| too_big())?,
            raw,
        });
        self.write(stored)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes the table, makes the pack durable under its final name, and
    /// returns its id and chunks.
    pub fn finish(mut self, repo: &Repo) -> io::Result<(Id, Vec<PackEntry>)> {
        let mut table = Vec::with_capacity(self.entries.len() * ENTRY_BYTES + 12);
        for entry in &self.entries {
            table.extend_from_slice(&entry.id.0);
            table.extend_from_slice(&entry.stored.to_le_bytes());
            table.extend_from_slice(&entry.raw.to_le_bytes());
        }
        let count = u32::try_from(self.entries.len()).map_err(io::Error::other)?;
        table.extend_from_slice(&count.to_le_bytes());
        table.extend_from_slice(MAGIC);
        self.write(&table)?;
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        let id = Id::of(&table[..table.len() - 12]);
        let target = repo.pack_path(&id);
        if let Some(dir) = target.parent() {
            if !dir.is_dir() {
                make_dir(dir)?;
                atomic::sync_dir(dir)?;
            }
        }
        fs::rename(&self.temp, &target)?;
        atomic::sync_dir(&target)?;
        self.temp = PathBuf::new();
        Ok((id, std::mem::take(&mut self.entries)))
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
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

/// Reads the chunk table at the end of the pack at `path`.
pub fn read_table(path: &Path) -> Result<Vec<PackEntry>, PackError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < 12 {
        return Err(PackError::BadTable);
    }
    let mut tail = [0; 12];
    file.seek(SeekFrom::Start(len - 12))?;
    file.read_exact(&mut tail)?;
    if &tail[4..] != MAGIC {
        return Err(PackError::BadTable);
    }
    let count = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let table_len = count * ENTRY_BYTES as u64;
    if table_len + 12 > len {
        return Err(PackError::BadTable);
    }
    let data_len = len - 12 - table_len;
    let mut table = vec![0; table_len as usize];
    file.seek(SeekFrom::Start(data_len))?;
    file.read_exact(&mut table)?;
    parse_table(&table, data_len)
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

/// Reads the stored bytes of `entry` from an open pack.
pub fn read_stored(pack: &File, offset: u32, stored: u32) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; stored as usize];
    pack.read_exact_at(&mut bytes, u64::from(offset))?;
    Ok(bytes)
}

/// Decompresses stored bytes and checks them against the chunk's id.
pub fn decode(id: &Id, stored: &[u8], raw: u32) -> Result<Vec<u8>, ChunkError> {
    let data = zstd::bulk::decompress(stored, raw as usize)
        .map_err(|err| ChunkError::Undecodable(err.to_string()))?;
    if data.len() != raw as usize || Id::of(&data) != *id {
        return Err(ChunkError::Mismatch);
    }
    Ok(data)
}

/// Reads a whole pack and checks it: the file against its name, the table,
/// and every chunk against its id. Returns the damaged chunks.
///
/// Fails only when the file cannot be read or its table is unusable.
pub fn check_pack(path: &Path, id: &Id) -> Result<PackCheck, PackError> {
    let bytes = fs::read(path)?;
    let len = bytes.len() as u64;
    if len < 12 || &bytes[bytes.len() - 8..] != MAGIC {
        return Err(PackError::BadTable);
    }
    let tail = &bytes[bytes.len() - 12..];
    let count = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let table_len = count * ENTRY_BYTES as u64;
    if table_len + 12 > len {
        return Err(PackError::BadTable);
    }
    let data_len = len - 12 - table_len;
    let table = &bytes[data_len as usize..(len - 12) as usize];
    let whole_ok = Id::of(table) == *id;
    let entries = parse_table(table, data_len)?;
    let mut damaged = Vec::new();
    for entry in &entries {
        let start = entry.offset as usize;
        let stored = &bytes[start..start + entry.stored as usize];
        if let Err(err) = decode(&entry.id, stored, entry.raw) {
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
