//! Reading chunks back: index → pack → decompress → check against the id.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_shared::lock::{Access, DirLock};

use crate::error::RepoError;
use crate::id::Id;
use crate::index::{Index, Location};
use crate::pack;
use crate::repo::Repo;

/// Opens a repository for reading chunks: its lock shared, its index.
pub fn open_reader(
    root: &Path,
    wait: Duration,
    tool: &str,
) -> Result<(ChunkReader, DirLock), RepoError> {
    let repo = Arc::new(Repo::open(root)?);
    let lock = repo.lock(Access::Shared, wait, tool)?;
    let index = Arc::new(Index::open(&repo, wait, tool)?);
    Ok((ChunkReader::new(repo, index), lock))
}

/// Reads chunks of one repository; shared by threads.
pub struct ChunkReader {
    pub repo: Arc<Repo>,
    locations: Locations,
    open: Mutex<HashMap<Id, Arc<File>>>,
}

/// Where the reader looks chunks up: the index, or (for gc, which must not
/// hold the index while it plans) a map built from the packs' tables.
enum Locations {
    Index(Arc<Index>),
    Map(HashMap<Id, Location>),
}

/// Open pack files kept at once.
const OPEN_PACKS: usize = 64;

impl ChunkReader {
    pub fn new(repo: Arc<Repo>, index: Arc<Index>) -> ChunkReader {
        ChunkReader {
            repo,
            locations: Locations::Index(index),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A reader that finds chunks in `map` (every location in it exists).
    pub fn with_map(repo: Arc<Repo>, map: HashMap<Id, Location>) -> ChunkReader {
        ChunkReader {
            repo,
            locations: Locations::Map(map),
            open: Mutex::new(HashMap::new()),
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
    pub fn read(&self, id: &Id) -> Result<Vec<u8>, RepoError> {
        let at = self.locate(id)?;
        let file = self.pack_file(&at.pack)?;
        let damaged = |why: String| {
            RepoError::Damaged(format!(
                "chunk {} in pack {} at offset {}: {why}",
                id.short(),
                at.pack,
                at.offset
            ))
        };
        let stored = pack::read_stored(&file, at.offset, at.stored)
            .map_err(|err| damaged(err.to_string()))?;
        let data = pack::decode(id, &stored, at.raw).map_err(|err| damaged(err.to_string()))?;
        ops_shared::progress::add_bytes(data.len() as u64);
        Ok(data)
    }

    fn pack_file(&self, pack: &Id) -> Result<Arc<File>, RepoError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| RepoError::Index("poisoned".into()))?;
        if let Some(file) = open.get(pack) {
            return Ok(Arc::clone(file));
        }
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        let path = self.repo.pack_path(pack);
        let file = Arc::new(File::open(&path).map_err(|err| RepoError::io(path, err))?);
        open.insert(*pack, Arc::clone(&file));
        Ok(file)
    }
}
