//! A snapshot's file list: one JSON line per entry in walk order (paths
//! sorted component by component), stored as content-defined chunks like
//! file data, so the unchanged stretches of a big tree are stored once.
//!
//! Walk order is what lets create, diff and restore stream: two trees are
//! compared by merging, never by holding either in memory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chunker::{self, Params};
use crate::error::RepoError;
use crate::id::Id;
use crate::reader::{ChunkReader, LastPack};
use crate::store::Putter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Another name of a file earlier in the list (`target`).
    Hardlink,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Relative to the snapshot's source.
    #[serde(with = "ops_shared::path_text")]
    pub path: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Nanoseconds since the epoch.
    pub mtime: i64,
    pub ctime: i64,
    pub ino: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Id>,
    /// A symlink's target, or the earlier path of a hard link.
    #[serde(
        default,
        with = "ops_shared::path_text",
        skip_serializing_if = "is_empty_path"
    )]
    pub target: PathBuf,
    /// The file changed while it was read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

impl Node {
    /// Whether `self` has the same content as `other`.
    pub fn same_content(&self, other: &Node) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.chunks == other.chunks
            && self.target == other.target
    }
}

/// Writes a tree into a store as it is produced.
pub struct TreeWriter<'a> {
    store: Putter<'a>,
    params: Params,
    masks: [u64; 4],
    buffer: Vec<u8>,
    pub chunks: Vec<Id>,
}

impl<'a> TreeWriter<'a> {
    pub fn new(store: Putter<'a>, params: Params) -> TreeWriter<'a> {
        TreeWriter {
            store,
            params,
            masks: chunker::masks(params),
            buffer: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Appends `node`.
    pub fn push(&mut self, node: &Node) -> Result<(), RepoError> {
        serde_json::to_writer(&mut self.buffer, node)
            .map_err(|err| RepoError::Index(format!("cannot encode {:?}: {err}", node.path)))?;
        self.buffer.push(b'\n');
        // Cutting only with a full window ahead gives the same boundaries
        // as cutting the whole stream at once.
        while self.buffer.len() >= self.params.max as usize {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), RepoError> {
        let length = chunker::cut_point(&self.buffer, self.params, self.masks);
        let id = self.store.id_of(&self.buffer[..length]);
        self.store.put(id, &self.buffer[..length])?;
        self.chunks.push(id);
        self.buffer.drain(..length);
        Ok(())
    }

    /// Stores what is left; returns the tree's chunk ids.
    pub fn finish(mut self) -> Result<Vec<Id>, RepoError> {
        while !self.buffer.is_empty() {
            self.cut()?;
        }
        Ok(self.chunks)
    }
}

/// Reads a tree back, entry by entry.
pub struct TreeReader<'a> {
    reader: &'a ChunkReader,
    last: LastPack,
    chunks: std::slice::Iter<'a, Id>,
    buffer: Vec<u8>,
    at: usize,
}

impl<'a> TreeReader<'a> {
    pub fn new(reader: &'a ChunkReader, chunks: &'a [Id]) -> TreeReader<'a> {
        TreeReader {
            reader,
            last: LastPack::default(),
            chunks: chunks.iter(),
            buffer: Vec::new(),
            at: 0,
        }
    }

    fn next_node(&mut self) -> Result<Option<Node>, RepoError> {
        loop {
            if let Some(end) = self.buffer[self.at..].iter().position(|&b| b == b'\n') {
                let line = &self.buffer[self.at..self.at + end];
                self.at += end + 1;
                let node = serde_json::from_slice(line).map_err(|err| {
                    RepoError::Damaged(format!("a snapshot's file list is unreadable: {err}"))
                })?;
                return Ok(Some(node));
            }
            let Some(id) = self.chunks.next() else {
                if self.at < self.buffer.len() {
                    return Err(RepoError::Damaged(
                        "a snapshot's file list ends in the middle of an entry".into(),
                    ));
                }
                return Ok(None);
            };
            self.buffer.drain(..self.at);
            self.at = 0;
            let chunk = self.reader.read(id, &mut self.last)?;
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

impl Iterator for TreeReader<'_> {
    type Item = Result<Node, RepoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_node().transpose()
    }
}
