//! Storing chunks: deduplicate against the index, compress on every core,
//! append to packs, and record each pack in the index once it is durable.
//!
//! `put` returns as soon as a chunk is known or queued, so readers never
//! wait for compression; `finish` waits until every queued chunk is in a
//! durable, indexed pack. A chunk is stored at most once per run even when
//! several threads meet it at the same time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::id::Id;
use crate::index::Index;
use ops_shared::zstd_raw::{raw_frame, Probe};

use crate::pack::{PackWriter, TARGET_BYTES};
use crate::repo::Repo;
use crate::RepoError;

/// What a store added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Added {
    pub chunks: u64,
    /// Uncompressed bytes of new chunks.
    pub raw_bytes: u64,
    /// Bytes written to packs (compressed chunks and tables).
    pub stored_bytes: u64,
    pub packs: u64,
}

pub struct ChunkStore {
    index: Arc<Index>,
    claimed: Mutex<HashSet<Id>>,
    to_compress: Option<Sender<(Id, Vec<u8>)>>,
    compressors: Vec<JoinHandle<Result<(), RepoError>>>,
    packer: Option<JoinHandle<Result<Added, RepoError>>>,
}

impl ChunkStore {
    /// Starts `threads` compressors and a pack writer for `repo`.
    pub fn start(repo: Arc<Repo>, index: Arc<Index>, threads: usize) -> ChunkStore {
        let threads = threads.max(1);
        // A queue that is often empty or full costs more in thread
        // switches than compressing many small chunks.
        let (to_compress, compress_rx) = bounded::<(Id, Vec<u8>)>(threads * 8);
        let (to_pack, pack_rx) = bounded::<(Id, Vec<u8>, u32)>(threads * 2);
        let level = repo.config.level;
        let compressors = (0..threads)
            .map(|_| {
                let rx = compress_rx.clone();
                let tx = to_pack.clone();
                thread::spawn(move || compress(&rx, &tx, level))
            })
            .collect();
        let packer_index = Arc::clone(&index);
        let packer = thread::spawn(move || write_packs(&repo, &packer_index, &pack_rx));
        ChunkStore {
            index,
            claimed: Mutex::new(HashSet::new()),
            to_compress: Some(to_compress),
            compressors,
            packer: Some(packer),
        }
    }

    /// Stores `data` under its id `id` unless the repository has it.
    /// Returns whether it was new.
    ///
    /// Fails when the index cannot be read or the pack writer has stopped
    /// (its error is returned by [`ChunkStore::finish`]).
    pub fn put(&self, id: Id, data: &[u8]) -> Result<bool, RepoError> {
        if self.index.stored(&id)?.is_some() {
            return Ok(false);
        }
        if !self.claimed.lock().map_err(|_| stopped())?.insert(id) {
            return Ok(false);
        }
        let sender = self.to_compress.as_ref().ok_or_else(stopped)?;
        sender.send((id, data.to_vec())).map_err(|_| stopped())?;
        Ok(true)
    }

    /// Waits until every chunk is durable and indexed, then flushes the index.
    ///
    /// Fails with the pack writer's error (a full disk, say).
    pub fn finish(mut self) -> Result<Added, RepoError> {
        drop(self.to_compress.take());
        let mut compressed = Ok(());
        for compressor in self.compressors.drain(..) {
            let result = compressor.join().unwrap_or_else(|_| Err(stopped()));
            compressed = compressed.and(result);
        }
        let added = match self.packer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            _ => return Err(stopped()),
        };
        compressed?;
        self.index.flush()?;
        Ok(added)
    }
}

impl Drop for ChunkStore {
    fn drop(&mut self) {
        drop(self.to_compress.take());
        for compressor in self.compressors.drain(..) {
            let _ = compressor.join();
        }
        if let Some(packer) = self.packer.take() {
            let _ = packer.join();
        }
    }
}

fn stopped() -> RepoError {
    RepoError::Index("storing chunks stopped".into())
}

/// Compresses until the queue closes; an error here must fail the run,
/// or a snapshot could name a chunk that was never stored.
fn compress(
    rx: &Receiver<(Id, Vec<u8>)>,
    tx: &Sender<(Id, Vec<u8>, u32)>,
    level: i32,
) -> Result<(), RepoError> {
    let failed = |err: std::io::Error| RepoError::Index(format!("cannot compress a chunk: {err}"));
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(failed)?;
    let mut probe = Probe::new().map_err(failed)?;
    for (id, data) in rx {
        let stored = if probe.incompressible(&data) {
            raw_frame(&data)
        } else {
            compressor.compress(&data).map_err(failed)?
        };
        let raw = data.len() as u32;
        tx.send((id, stored, raw)).map_err(|_| stopped())?;
    }
    Ok(())
}

fn write_packs(
    repo: &Repo,
    index: &Index,
    rx: &Receiver<(Id, Vec<u8>, u32)>,
) -> Result<Added, RepoError> {
    let io_error = |err| RepoError::io(repo.packs_dir(), err);
    let mut added = Added::default();
    let mut pack: Option<PackWriter> = None;
    for (id, stored, raw) in rx {
        let writer = match pack.as_mut() {
            Some(writer) => writer,
            None => pack.insert(PackWriter::new(repo).map_err(io_error)?),
        };
        writer.add(id, &stored, raw).map_err(io_error)?;
        added.chunks += 1;
        added.raw_bytes += u64::from(raw);
        if writer.len() >= TARGET_BYTES {
            if let Some(full) = pack.take() {
                seal(repo, index, full, &mut added)?;
            }
        }
    }
    if let Some(last) = pack.take().filter(|p| !p.is_empty()) {
        seal(repo, index, last, &mut added)?;
    }
    Ok(added)
}

fn seal(repo: &Repo, index: &Index, pack: PackWriter, added: &mut Added) -> Result<(), RepoError> {
    let (id, entries) = pack
        .finish(repo)
        .map_err(|err| RepoError::io(repo.packs_dir(), err))?;
    added.stored_bytes += std::fs::metadata(repo.pack_path(&id)).map_or(0, |m| m.len());
    added.packs += 1;
    // Every chunk in it was checked as not stored before it was queued.
    index.point_at(id, &entries)
}
