//! Reading chunks back: index → pack → decompress → check against the id.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ops_shared::lock::Access;
use ops_storage::PlaceLock;

use crate::error::RepoError;
use crate::id::Id;
use crate::index::{Index, Location};
use crate::pack::{self, PackSource};
use crate::repo::Repo;

/// Opens a repository for reading chunks: its lock shared, its index.
pub fn open_reader(
    root: &Path,
    wait: Duration,
    tool: &str,
) -> Result<(ChunkReader, PlaceLock), RepoError> {
    reader_for(Repo::open(root)?, wait, tool)
}

/// [`open_reader`] of a repository already open.
pub fn reader_for(
    repo: Repo,
    wait: Duration,
    tool: &str,
) -> Result<(ChunkReader, PlaceLock), RepoError> {
    let repo = Arc::new(repo);
    let lock = repo.lock(Access::Shared, wait, tool)?;
    let index = Arc::new(Index::open(&repo, wait, tool)?);
    Ok((ChunkReader::new(repo, index), lock))
}

/// Reads chunks of one repository; shared by threads.
pub struct ChunkReader {
    pub repo: Arc<Repo>,
    locations: Locations,
    open: Mutex<Open>,
    /// How many packs `open` keeps, most recently used first.
    keep: usize,
}

/// A pack being opened or open; threads wanting the same pack wait for
/// one fetch of it.
type Slot = OnceLock<Result<Arc<PackSource>, String>>;

/// The packs a reader knows: the most recently used first, those pushed
/// out of that list that a reader still holds or is fetching (found again
/// instead of fetched again), and those spilled to local disk.
#[derive(Default)]
struct Open {
    recent: Vec<(Id, Arc<Slot>)>,
    held: Vec<(Id, Weak<Slot>)>,
    spill: Option<Spill>,
}

/// Fetched packs pushed out of memory during a restore, kept in one
/// unlinked file beside it, so a bucket serves each pack once however the
/// restore's threads come back to it; the file goes when the restore does.
struct Spill {
    file: Arc<File>,
    end: u64,
    /// Where each pack is; `None` while it is being written.
    packs: HashMap<Id, Option<(u64, u64)>>,
}

/// A fetched pack to copy into the spill file at `start`.
struct ToSpill {
    id: Id,
    source: Arc<PackSource>,
    file: Arc<File>,
    start: u64,
}

impl Open {
    /// The slot of `pack`, now the most recent; at most `keep` stay recent.
    /// Also returns the fetched packs pushed out that should be spilled.
    fn slot(&mut self, pack: &Id, keep: usize) -> (Arc<Slot>, Vec<ToSpill>) {
        let held = || {
            let (_, held) = self.held.iter().find(|(id, _)| id == pack)?;
            held.upgrade()
                .filter(|slot| !matches!(slot.get(), Some(Err(_))))
        };
        let slot = match self.recent.iter().position(|(id, _)| id == pack) {
            Some(at) => self.recent.remove(at).1,
            None => held().or_else(|| self.spilled(pack)).unwrap_or_default(),
        };
        self.recent.insert(0, (*pack, Arc::clone(&slot)));
        let keep = keep.min(self.recent.len());
        let mut to_spill = Vec::new();
        for (id, pushed_out) in self.recent.drain(keep..).collect::<Vec<_>>() {
            to_spill.extend(self.reserve(id, &pushed_out));
            self.held.push((id, Arc::downgrade(&pushed_out)));
        }
        self.held
            .retain(|(id, held)| held.strong_count() > 0 && id != pack);
        (slot, to_spill)
    }

    /// A slot reading `pack` from the spill file, if it is there.
    fn spilled(&self, pack: &Id) -> Option<Arc<Slot>> {
        let spill = self.spill.as_ref()?;
        let (start, len) = (*spill.packs.get(pack)?)?;
        let source = PackSource::Spilled {
            file: Arc::clone(&spill.file),
            start,
            len,
        };
        Some(Arc::new(OnceLock::from(Ok(Arc::new(source)))))
    }

    /// Room in the spill file for a fetched pack not spilled yet.
    fn reserve(&mut self, id: Id, slot: &Slot) -> Option<ToSpill> {
        let spill = self.spill.as_mut()?;
        let source = slot.get()?.as_ref().ok()?;
        let PackSource::Fetched(bytes) = source.as_ref() else {
            return None;
        };
        if spill.packs.contains_key(&id) {
            return None;
        }
        spill.packs.insert(id, None);
        let start = spill.end;
        spill.end += bytes.len() as u64;
        Some(ToSpill {
            id,
            source: Arc::clone(source),
            file: Arc::clone(&spill.file),
            start,
        })
    }
}

/// The pack one reader of consecutive chunks (a file, a file list) used
/// last, kept while it reads on: other threads' reads may push it out of
/// the shared cache, but not away from the reader still using it, nor
/// from the others, which find it there.
#[derive(Default)]
pub struct LastPack(Option<(Id, Arc<Slot>)>);

/// Where the reader looks chunks up: the index, or (for gc, which must not
/// hold the index while it plans) a map built from the packs' tables.
enum Locations {
    Index(Arc<Index>),
    Map(HashMap<Id, Location>),
}

/// Local pack files kept open at once.
const OPEN_PACKS: usize = 64;
/// Remote packs kept in memory after their last reader moved on (each at
/// most 16 MiB; up to 24 MiB from older versions), besides those readers
/// hold. With two, a restore fetched some packs four times over.
const FETCHED_PACKS: usize = 4;

impl ChunkReader {
    pub fn new(repo: Arc<Repo>, index: Arc<Index>) -> ChunkReader {
        ChunkReader {
            locations: Locations::Index(index),
            keep: if repo.is_remote() {
                FETCHED_PACKS
            } else {
                OPEN_PACKS
            },
            repo,
            open: Mutex::default(),
        }
    }

    /// A reader that finds chunks in `map` (every location in it exists).
    pub fn with_map(repo: Arc<Repo>, map: HashMap<Id, Location>) -> ChunkReader {
        ChunkReader {
            locations: Locations::Map(map),
            keep: if repo.is_remote() {
                FETCHED_PACKS
            } else {
                OPEN_PACKS
            },
            repo,
            open: Mutex::default(),
        }
    }

    /// The index, if this reader uses it.
    pub fn index(&self) -> Option<&Index> {
        match &self.locations {
            Locations::Index(index) => Some(index),
            Locations::Map(_) => None,
        }
    }

    /// Where `id` is stored.
    ///
    /// Fails when no pack on disk holds it, naming the missing pack if the
    /// index knows it.
    pub fn locate(&self, id: &Id) -> Result<Location, RepoError> {
        let index = match &self.locations {
            Locations::Index(index) => index,
            Locations::Map(map) => {
                return map.get(id).copied().ok_or_else(|| {
                    RepoError::Damaged(format!(
                        "chunk {} is in no pack of the repository",
                        id.short()
                    ))
                })
            }
        };
        match index.location(id)? {
            Some(at) if index.has_pack(&at.pack) => Ok(at),
            Some(at) => Err(RepoError::Damaged(format!(
                "chunk {}: its pack {} is missing",
                id.short(),
                at.pack
            ))),
            None => Err(RepoError::Damaged(format!(
                "chunk {} is in no pack of the repository",
                id.short()
            ))),
        }
    }

    /// The content of chunk `id`, checked against its id.
    ///
    /// Fails when the chunk is missing, unreadable or damaged, saying where.
    /// `last` keeps the pack it read from, for the next chunk of the same
    /// reader.
    pub fn read(&self, id: &Id, last: &mut LastPack) -> Result<Vec<u8>, RepoError> {
        self.read_checked(id, last).map(|(_, data)| data)
    }

    /// Chunk `id` as stored (compressed) and its raw length, checked that
    /// it decodes to its id.
    pub fn read_stored(&self, id: &Id) -> Result<(Vec<u8>, u32), RepoError> {
        self.read_checked(id, &mut LastPack::default())
            .map(|(stored, data)| (stored, data.len() as u32))
    }

    fn read_checked(&self, id: &Id, last: &mut LastPack) -> Result<(Vec<u8>, Vec<u8>), RepoError> {
        let at = self.locate(id)?;
        let kept = match &last.0 {
            Some((pack, slot)) if *pack == at.pack => {
                slot.get().and_then(|got| got.as_ref().ok().cloned())
            }
            _ => None,
        };
        let source = if let Some(source) = kept {
            source
        } else {
            last.0 = None;
            let (slot, source) = self.pack(&at.pack)?;
            last.0 = Some((at.pack, slot));
            source
        };
        let damaged = |why: String| {
            RepoError::Damaged(format!(
                "chunk {} in pack {} at offset {}: {why}",
                id.short(),
                at.pack,
                at.offset
            ))
        };
        let stored = source
            .read_stored(at.offset, at.stored)
            .map_err(|err| damaged(err.to_string()))?;
        let codec = self.repo.codec()?;
        let data =
            pack::decode(codec, id, &stored, at.raw).map_err(|err| damaged(err.to_string()))?;
        ops_shared::progress::add_bytes(data.len() as u64);
        Ok((stored, data))
    }

    /// From now on, fetched packs pushed out of memory are kept in an
    /// unlinked file in the directory `beside` until [`Self::stop_spilling`].
    /// Where that directory cannot hold one, they are fetched again instead.
    pub fn spill_into(&self, beside: &Path) {
        if !self.repo.is_remote() {
            return;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(beside);
        if let (Ok(file), Ok(mut open)) = (file, self.open.lock()) {
            open.spill = Some(Spill {
                file: Arc::new(file),
                end: 0,
                packs: HashMap::new(),
            });
        }
    }

    /// Drops the spill file and what it holds.
    pub fn stop_spilling(&self) {
        if let Ok(mut open) = self.open.lock() {
            open.spill = None;
            open.recent.retain(|(_, slot)| !is_spilled(slot));
        }
    }

    /// The pack `pack`, fetched or opened once for all threads, and its slot.
    fn pack(&self, pack: &Id) -> Result<(Arc<Slot>, Arc<PackSource>), RepoError> {
        let poisoned = || RepoError::Index("poisoned".into());
        let (slot, to_spill) = self
            .open
            .lock()
            .map_err(|_| poisoned())?
            .slot(pack, self.keep);
        for spilling in to_spill {
            self.spill(spilling);
        }
        let path = self.repo.pack_path(pack);
        let opened = slot.get_or_init(|| {
            PackSource::open(&path)
                .map(Arc::new)
                .map_err(|err| err.to_string())
        });
        match opened {
            Ok(source) => Ok((Arc::clone(&slot), Arc::clone(source))),
            Err(why) => {
                if let Ok(mut open) = self.open.lock() {
                    open.recent.retain(|(_, kept)| !Arc::ptr_eq(kept, &slot));
                }
                Err(RepoError::io(path, std::io::Error::other(why.clone())))
            }
        }
    }

    /// Copies a fetched pack into the spill file; one that cannot be
    /// written (a full disk) is left to be fetched again.
    fn spill(&self, to: ToSpill) {
        let PackSource::Fetched(bytes) = to.source.as_ref() else {
            return;
        };
        let written = to.file.write_all_at(bytes, to.start).is_ok();
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        let Some(spill) = open
            .spill
            .as_mut()
            .filter(|spill| Arc::ptr_eq(&spill.file, &to.file))
        else {
            return;
        };
        if written {
            spill
                .packs
                .insert(to.id, Some((to.start, bytes.len() as u64)));
        } else {
            spill.packs.remove(&to.id);
        }
    }
}

fn is_spilled(slot: &Slot) -> bool {
    matches!(slot.get(), Some(Ok(source)) if matches!(source.as_ref(), PackSource::Spilled { .. }))
}
