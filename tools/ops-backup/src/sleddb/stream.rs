//! The `.sled.zst` stream (inside zstd): every tree of a database, in the
//! order sled's own `Db::checksum` visits them (tree names sorted, keys in
//! order), so a reader recomputes that checksum while decoding.
//!
//! ```text
//! "OPS-SLED" 0x00 0x01                     magic and version
//! 0x01 name_len:u32 name                   a tree begins
//! 0x02 key_len:u32 key value_len:u32 value one entry
//! 0x03 keys:u64                            the tree ends
//! 0x04 trees:u64 keys:u64                  the stream ends
//! ```
//! Integers are little-endian.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};

const MAGIC: &[u8] = b"OPS-SLED\x00\x01";
const TREE: u8 = 1;
const ENTRY: u8 = 2;
const TREE_END: u8 = 3;
const END: u8 = 4;

/// One tree as written or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeStats {
    pub name: Vec<u8>,
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// What was written or read: the trees and sled's checksum of them.
#[derive(Clone, Debug)]
pub struct Contents {
    pub trees: Vec<TreeStats>,
    pub checksum: u32,
}

impl Contents {
    pub fn keys(&self) -> u64 {
        self.trees.iter().map(|t| t.keys).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.trees.iter().map(|t| t.bytes).sum()
    }
}

/// Writes every tree of the database at `path` (open as `db`) to `out`;
/// returns the database, open again, and what was written.
///
/// Fails on a read error in the database or a write error.
pub fn write(
    path: &Path,
    db: sled::Db,
    out: &mut impl Write,
) -> anyhow::Result<(sled::Db, Contents)> {
    out.write_all(MAGIC)?;
    let mut keys_in_tree: Option<u64> = None;
    let (db, contents) = super::walk(path, db, &mut |step| {
        match step {
            super::Visit::Tree(name) => {
                if let Some(keys) = keys_in_tree.replace(0) {
                    out.write_all(&[TREE_END])?;
                    out.write_all(&keys.to_le_bytes())?;
                }
                frame(out, TREE, &[name])?;
            }
            super::Visit::Entry(key, value) => {
                frame(out, ENTRY, &[key, value])?;
                if let Some(keys) = keys_in_tree.as_mut() {
                    *keys += 1;
                }
            }
        }
        Ok(())
    })?;
    if let Some(keys) = keys_in_tree {
        out.write_all(&[TREE_END])?;
        out.write_all(&keys.to_le_bytes())?;
    }
    out.write_all(&[END])?;
    out.write_all(&(contents.trees.len() as u64).to_le_bytes())?;
    out.write_all(&contents.keys().to_le_bytes())?;
    Ok((db, contents))
}

fn frame(out: &mut impl Write, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
    out.write_all(&[tag])?;
    for part in parts {
        let len =
            u32::try_from(part.len()).map_err(|_| io::Error::other("key or value over 4 GiB"))?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

/// Receives what a stream holds, in order.
pub trait Sink {
    fn tree(&mut self, name: &[u8]) -> anyhow::Result<()>;
    fn entry(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()>;
}

/// Keeps nothing: verification only.
pub struct Discard;

impl Sink for Discard {
    fn tree(&mut self, _name: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }

    fn entry(&mut self, _key: Vec<u8>, _value: Vec<u8>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Inserts everything into a new database.
impl Sink for super::Importer {
    fn tree(&mut self, name: &[u8]) -> anyhow::Result<()> {
        super::Importer::tree(self, name)
    }

    fn entry(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
        self.insert(&key, &value)
    }
}

/// Reads a whole stream into `sink`, checking its framing and totals.
///
/// Fails on a damaged or truncated stream, or when the sink fails.
pub fn read(input: &mut impl Read, sink: &mut dyn Sink) -> anyhow::Result<Contents> {
    let mut magic = [0; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .context("not a sled stream (too short)")?;
    if magic != MAGIC {
        bail!("not a sled stream of a version this tool reads");
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut trees: Vec<TreeStats> = Vec::new();
    loop {
        match byte(input)? {
            TREE => {
                let name = chunk(input)?;
                hasher.update(&name);
                sink.tree(&name)?;
                trees.push(TreeStats {
                    name,
                    keys: 0,
                    bytes: 0,
                });
            }
            ENTRY => {
                let Some(tree) = trees.last_mut() else {
                    bail!("stream damaged: entry before any tree")
                };
                let key = chunk(input)?;
                let value = chunk(input)?;
                hasher.update(&key);
                hasher.update(&value);
                tree.keys += 1;
                tree.bytes += (key.len() + value.len()) as u64;
                sink.entry(key, value)?;
            }
            TREE_END => {
                let keys = number(input)?;
                if trees.last().map(|t| t.keys) != Some(keys) {
                    bail!("stream damaged: a tree's key count does not match its entries");
                }
            }
            END => {
                let (tree_count, keys) = (number(input)?, number(input)?);
                let total: u64 = trees.iter().map(|t| t.keys).sum();
                if tree_count != trees.len() as u64 || keys != total {
                    bail!("stream damaged: totals do not match");
                }
                let mut rest = [0; 1];
                if input.read(&mut rest)? != 0 {
                    bail!("stream has data after its end");
                }
                return Ok(Contents {
                    trees,
                    checksum: hasher.finalize(),
                });
            }
            other => bail!("stream damaged: unknown tag {other}"),
        }
    }
}

fn byte(input: &mut impl Read) -> anyhow::Result<u8> {
    let mut b = [0; 1];
    input
        .read_exact(&mut b)
        .context("stream ends early (truncated)")?;
    Ok(b[0])
}

fn number(input: &mut impl Read) -> anyhow::Result<u64> {
    let mut b = [0; 8];
    input
        .read_exact(&mut b)
        .context("stream ends early (truncated)")?;
    Ok(u64::from_le_bytes(b))
}

fn chunk(input: &mut impl Read) -> anyhow::Result<Vec<u8>> {
    let mut len = [0; 4];
    input
        .read_exact(&mut len)
        .context("stream ends early (truncated)")?;
    let len = u64::from(u32::from_le_bytes(len));
    let mut data = Vec::new();
    input.take(len).read_to_end(&mut data)?;
    if data.len() as u64 != len {
        bail!("stream ends early (truncated)");
    }
    Ok(data)
}
