//! Storing chunks: deduplicate against the index, compress on every core,
//! append to packs, and record each pack in the index once it is durable.
//!
//! Each thread that stores chunks does so through its own [`Putter`].
//! `put` returns as soon as a chunk is known or queued, so readers never
//! wait for compression. Chunks too short to probe (whole small files, the
//! ends of files, file lists) are compressed by the putting thread itself
//! and reach the pack writer in batches: handing each to another thread
//! cost more than compressing it. Longer chunks go to the compressors.
//! `finish` waits until every queued chunk is in a durable, indexed pack.
//! A chunk is stored at most once per run even when several threads meet
//! it at the same time.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::id::Id;
use crate::index::Index;
use ops_shared::zstd_raw::{raw_frame, Probe};

use crate::crypt::{Codec, Role};
use crate::error::RepoError;
use crate::pack::{PackWriter, Sealed};
use crate::repo::Repo;

/// Chunks shorter than this are compressed by the thread that puts them.
const PUTTER_COMPRESSES_BELOW: usize = Probe::SHORTEST;
/// A putter hands its batch to the pack writer once it holds this much.
const BATCH_BYTES: usize = 1 << 20;

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

/// Compressed chunks on their way to the pack writer: their bytes one after
/// another, and each one's id, stored and raw length.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    chunks: Vec<(Id, u32, u32)>,
}

pub struct ChunkStore {
    repo: Arc<Repo>,
    index: Arc<Index>,
    claimed: Mutex<HashSet<Id>>,
    level: i32,
    /// Chunks accepted for storing; the pack writer must account for each.
    queued: AtomicU64,
    to_compress: Option<Sender<(Id, Vec<u8>)>>,
    to_pack: Option<Sender<Batch>>,
    compressors: Vec<JoinHandle<Result<(), RepoError>>>,
    packer: Option<JoinHandle<Result<Added, RepoError>>>,
}

impl ChunkStore {
    /// Starts `threads` compressors and a pack writer for `repo`.
    ///
    /// Fails on an encrypted repository opened without its key.
    pub fn start(
        repo: Arc<Repo>,
        index: Arc<Index>,
        threads: usize,
    ) -> Result<ChunkStore, RepoError> {
        repo.codec()?;
        let threads = threads.max(1);
        // Only long chunks (up to 8 MiB each) wait here, so a short queue:
        // a longer one held 30 MiB more at its peak and was no faster.
        let (to_compress, compress_rx) = bounded::<(Id, Vec<u8>)>(threads * 2);
        let (to_pack, pack_rx) = bounded::<Batch>(threads * 2);
        let level = repo.config.level;
        let compressors = (0..threads)
            .map(|_| {
                let rx = compress_rx.clone();
                let tx = to_pack.clone();
                let repo = Arc::clone(&repo);
                thread::spawn(move || compress(&rx, &tx, level, repo.codec()?))
            })
            .collect();
        let packer_index = Arc::clone(&index);
        let packer_repo = Arc::clone(&repo);
        let packer = thread::spawn(move || write_packs(&packer_repo, &packer_index, &pack_rx));
        Ok(ChunkStore {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            level,
            queued: AtomicU64::new(0),
            to_compress: Some(to_compress),
            to_pack: Some(to_pack),
            compressors,
            packer: Some(packer),
        })
    }

    /// A handle for one thread to store chunks through.
    pub fn putter(&self) -> Result<Putter<'_>, RepoError> {
        let compressor = zstd::bulk::Compressor::new(self.level).map_err(compress_failed)?;
        Ok(Putter {
            store: self,
            codec: self.repo.codec()?,
            compressor,
            batch: Batch::default(),
        })
    }

    /// Whether `id` is to be stored by this run's caller: not in the
    /// repository, and not claimed by another thread already.
    fn claim(&self, id: Id) -> Result<bool, RepoError> {
        if self.index.stored(&id)?.is_some() {
            return Ok(false);
        }
        let claimed = self.claimed.lock().map_err(|_| stopped())?.insert(id);
        if claimed {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        Ok(claimed)
    }

    /// Waits until every chunk is durable and indexed, then flushes the index.
    ///
    /// Fails with the pack writer's error (a full disk, say).
    pub fn finish(mut self) -> Result<Added, RepoError> {
        drop(self.to_compress.take());
        drop(self.to_pack.take());
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
        if added.chunks != self.queued.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        self.index.flush()?;
        Ok(added)
    }
}

impl Drop for ChunkStore {
    fn drop(&mut self) {
        drop(self.to_compress.take());
        drop(self.to_pack.take());
        for compressor in self.compressors.drain(..) {
            let _ = compressor.join();
        }
        if let Some(packer) = self.packer.take() {
            let _ = packer.join();
        }
    }
}

/// One thread's way into a [`ChunkStore`]; hands over what it holds when
/// dropped.
pub struct Putter<'a> {
    store: &'a ChunkStore,
    codec: &'a Codec,
    compressor: zstd::bulk::Compressor<'static>,
    batch: Batch,
}

impl Putter<'_> {
    /// The id of a chunk of `data` in this repository.
    pub fn id_of(&self, data: &[u8]) -> Id {
        self.codec.id_of(data)
    }

    /// Stores `data` under its id `id` unless the repository has it.
    /// Returns whether it was new.
    ///
    /// Fails when the index cannot be read or the pack writer has stopped
    /// (its error is returned by [`ChunkStore::finish`]).
    pub fn put(&mut self, id: Id, data: &[u8]) -> Result<bool, RepoError> {
        if !self.store.claim(id)? {
            return Ok(false);
        }
        if data.len() >= PUTTER_COMPRESSES_BELOW {
            let sender = self.store.to_compress.as_ref().ok_or_else(stopped)?;
            sender.send((id, data.to_vec())).map_err(|_| stopped())?;
            return Ok(true);
        }
        let start = self.batch.bytes.len();
        let head = self.codec.head();
        self.batch.bytes.resize(
            start + head + zstd::zstd_safe::compress_bound(data.len()),
            0,
        );
        let compressed = self
            .compressor
            .compress_to_buffer(data, &mut self.batch.bytes[start + head..])
            .map_err(compress_failed)?;
        self.batch.bytes.truncate(start + head + compressed);
        self.codec
            .seal_tail(Role::Chunk(&id), &mut self.batch.bytes, start);
        let stored = self.batch.bytes.len() - start;
        self.batch
            .chunks
            .push((id, stored as u32, data.len() as u32));
        if self.batch.bytes.len() >= BATCH_BYTES {
            self.hand_over()?;
        }
        Ok(true)
    }

    fn hand_over(&mut self) -> Result<(), RepoError> {
        let batch = std::mem::take(&mut self.batch);
        let sender = self.store.to_pack.as_ref().ok_or_else(stopped)?;
        sender.send(batch).map_err(|_| stopped())
    }
}

impl Drop for Putter<'_> {
    fn drop(&mut self) {
        // A batch that cannot be handed over is missing from the pack
        // writer's count, which fails `finish`.
        if !self.batch.chunks.is_empty() {
            let _ = self.hand_over();
        }
    }
}

fn stopped() -> RepoError {
    RepoError::Index("storing chunks stopped".into())
}

fn compress_failed(err: std::io::Error) -> RepoError {
    RepoError::Index(format!("cannot compress a chunk: {err}"))
}

/// Compresses until the queue closes; an error here must fail the run,
/// or a snapshot could name a chunk that was never stored.
fn compress(
    rx: &Receiver<(Id, Vec<u8>)>,
    tx: &Sender<Batch>,
    level: i32,
    codec: &Codec,
) -> Result<(), RepoError> {
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(compress_failed)?;
    let mut probe = Probe::new().map_err(compress_failed)?;
    for (id, data) in rx {
        let compressed = if probe.incompressible(&data) {
            raw_frame(&data)
        } else {
            compressor.compress(&data).map_err(compress_failed)?
        };
        let bytes = if codec.is_sealed() {
            codec.seal(Role::Chunk(&id), &compressed)
        } else {
            compressed
        };
        let chunks = vec![(id, bytes.len() as u32, data.len() as u32)];
        tx.send(Batch { bytes, chunks }).map_err(|_| stopped())?;
    }
    Ok(())
}

/// Packs being stored at once behind the one being filled: the final write
/// and fsync (or upload) of a full pack overlaps with filling the next.
const SEALING: usize = 2;

fn write_packs(repo: &Repo, index: &Index, rx: &Receiver<Batch>) -> Result<Added, RepoError> {
    let io_error = |err| RepoError::io(repo.packs_dir(), err);
    let mut added = Added::default();
    let mut pack: Option<PackWriter> = None;
    thread::scope(|scope| {
        let mut sealing = VecDeque::new();
        let mut seal = |full: PackWriter, added: &mut Added| -> Result<(), RepoError> {
            if sealing.len() >= SEALING {
                sealed(sealing.pop_front(), repo, index, added)?;
            }
            sealing.push_back(scope.spawn(move || full.finish(repo)));
            Ok(())
        };
        for batch in rx {
            let mut at = 0;
            for (id, stored, raw) in batch.chunks {
                let bytes = &batch.bytes[at..at + stored as usize];
                at += stored as usize;
                if let Some(full) = pack.take_if(|pack| !pack.fits(bytes.len())) {
                    seal(full, &mut added)?;
                }
                let writer = pack.get_or_insert_with(PackWriter::default);
                writer.add(id, bytes, raw).map_err(io_error)?;
                added.chunks += 1;
                added.raw_bytes += u64::from(raw);
            }
        }
        if let Some(last) = pack.take().filter(|p| !p.is_empty()) {
            seal(last, &mut added)?;
        }
        while let Some(next) = sealing.pop_front() {
            sealed(Some(next), repo, index, &mut added)?;
        }
        Ok(added)
    })
}

/// Waits for a pack being stored and records it in the index.
fn sealed(
    sealing: Option<thread::ScopedJoinHandle<'_, std::io::Result<Sealed>>>,
    repo: &Repo,
    index: &Index,
    added: &mut Added,
) -> Result<(), RepoError> {
    let Some(sealing) = sealing else {
        return Ok(());
    };
    let sealed = sealing
        .join()
        .map_err(|_| stopped())?
        .map_err(|err| RepoError::io(repo.packs_dir(), err))?;
    added.stored_bytes += sealed.bytes;
    added.packs += 1;
    // Every chunk in it was checked as not stored before it was queued.
    index.point_at(sealed.id, &sealed.entries)
}
