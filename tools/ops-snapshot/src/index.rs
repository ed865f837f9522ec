//! The chunk index: where each chunk is stored, kept in a sled database.
//! A damaged one is deleted and rebuilt on open, with a warning.
//!
//! The index is a cache of the packs' own tables. Opening it compares the
//! packs it knows with the packs on disk and reads the tables of any it does
//! not know (a crashed run's, a repack's), so it never needs to be right
//! after a crash; delete it and it is rebuilt from the packs. A pack it
//! lists that is gone from disk stays listed, so verify can name it; a chunk
//! there counts as not stored, so the next snapshot stores it again.
//!
//! Keys: `c` + chunk id → pack id, offset, stored and raw length;
//! `p` + pack id → its number of chunks. One process at a time opens the
//! index (sled allows no more); `.ops-lock` in its directory (see
//! [`Repo::index_dir`]) makes the others wait.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use ops_shared::lock::{Access, DirLock};

use crate::error::RepoError;
use crate::id::Id;
use crate::pack::{self, PackEntry};
use crate::repo::{make_dir, Repo};

/// Where one chunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: Id,
    pub offset: u32,
    pub stored: u32,
    pub raw: u32,
}

impl Location {
    fn encode(&self) -> [u8; 44] {
        let mut value = [0; 44];
        value[..32].copy_from_slice(&self.pack.0);
        value[32..36].copy_from_slice(&self.offset.to_le_bytes());
        value[36..40].copy_from_slice(&self.stored.to_le_bytes());
        value[40..].copy_from_slice(&self.raw.to_le_bytes());
        value
    }

    fn decode(value: &[u8]) -> Option<Location> {
        if value.len() != 44 {
            return None;
        }
        let word = |at: usize| {
            u32::from_le_bytes([value[at], value[at + 1], value[at + 2], value[at + 3]])
        };
        let mut pack = [0; 32];
        pack.copy_from_slice(&value[..32]);
        Some(Location {
            pack: Id(pack),
            offset: word(32),
            stored: word(36),
            raw: word(40),
        })
    }

    pub fn of(pack: Id, entry: &PackEntry) -> Location {
        Location {
            pack,
            offset: entry.offset,
            stored: entry.stored,
            raw: entry.raw,
        }
    }
}

/// The open index.
pub struct Index {
    db: sled::Db,
    /// Packs present on disk (as of opening, plus those added since).
    on_disk: std::sync::RwLock<HashSet<Id>>,
    /// Packs the index lists that are not on disk.
    pub missing: HashSet<Id>,
    _lock: DirLock,
}

fn key(prefix: u8, id: &Id) -> [u8; 33] {
    let mut key = [0; 33];
    key[0] = prefix;
    key[1..].copy_from_slice(&id.0);
    key
}

fn index_error(err: sled::Error) -> RepoError {
    RepoError::Index(err.to_string())
}

impl Index {
    /// Opens (or creates) the index of `repo` and brings it up to date with
    /// the packs on disk, waiting up to `wait` for another process using it.
    /// A damaged index (a crash during sled's recovery can leave one) is
    /// deleted and rebuilt from the packs, with a warning: it is a cache.
    ///
    /// Fails when the index is held past `wait`, or cannot be rebuilt.
    pub fn open(repo: &Repo, wait: Duration, tool: &str) -> Result<Index, RepoError> {
        let (dir, lock) = lock_dir(repo, wait, tool)?;
        match Index::load(repo, &dir, lock) {
            Ok(index) => Ok(index),
            Err((RepoError::Index(why), lock)) => {
                ops_shared::entry::warn(format!(
                    "the chunk index {} is damaged ({why}); it is a cache: rebuilding it from the packs",
                    dir.display()
                ));
                let db_dir = dir.join("db");
                fs::remove_dir_all(&db_dir).map_err(|err| RepoError::io(db_dir, err))?;
                Index::load(repo, &dir, lock).map_err(|(err, _)| err)
            }
            Err((err, _)) => Err(err),
        }
    }

    /// Like [`Index::open`], but a damaged index is an error, not rebuilt
    /// (for ops-health, which reports it).
    pub fn open_unrepaired(repo: &Repo, wait: Duration, tool: &str) -> Result<Index, RepoError> {
        let (dir, lock) = lock_dir(repo, wait, tool)?;
        Index::load(repo, &dir, lock).map_err(|(err, _)| err)
    }

    /// Opens the database in `dir` and syncs it; on failure, the lock back.
    fn load(repo: &Repo, dir: &Path, lock: DirLock) -> Result<Index, (RepoError, DirLock)> {
        let db = match open_db(dir.join("db")) {
            Ok(db) => db,
            Err(err) => return Err((err, lock)),
        };
        let mut index = Index {
            db,
            on_disk: std::sync::RwLock::new(HashSet::new()),
            missing: HashSet::new(),
            _lock: lock,
        };
        match index.sync(repo) {
            Ok(()) => Ok(index),
            Err(err) => {
                let Index { db, _lock, .. } = index;
                drop(db);
                Err((err, _lock))
            }
        }
    }

    /// Deletes the index and builds it anew from the packs' tables.
    pub fn rebuild(repo: &Repo, wait: Duration, tool: &str) -> Result<Index, RepoError> {
        let (dir, lock) = lock_dir(repo, wait, tool)?;
        let db_dir = dir.join("db");
        if db_dir.symlink_metadata().is_ok() {
            fs::remove_dir_all(&db_dir).map_err(|err| RepoError::io(db_dir.clone(), err))?;
        }
        drop(lock);
        Index::open(repo, wait, tool)
    }

    fn sync(&mut self, repo: &Repo) -> Result<(), RepoError> {
        let on_disk = repo.packs()?;
        let mut known = HashSet::new();
        for item in self.db.scan_prefix([b'p']) {
            let (key, _) = item.map_err(index_error)?;
            if key.len() == 33 {
                let mut id = [0; 32];
                id.copy_from_slice(&key[1..]);
                known.insert(Id(id));
            }
        }
        self.missing = known.difference(&on_disk).copied().collect();
        *self.on_disk.write().map_err(|_| poisoned())? = on_disk.clone();
        for pack in on_disk.difference(&known) {
            let path = repo.pack_path(pack);
            let entries = match pack::read_table(&path, repo.codec()?) {
                Ok(entries) => entries,
                Err(err) => {
                    // Only what is in this pack is affected; verify names it.
                    ops_shared::entry::warn(format!(
                        "pack {pack}: {err}; its chunks are not used (ops-verify --repo {} --read-data tells more)",
                        repo.root.display()
                    ));
                    continue;
                }
            };
            self.add_pack(*pack, &entries)?;
        }
        Ok(())
    }

    /// Records a durable pack and its chunks. A chunk already stored in a
    /// pack on disk keeps its location.
    pub fn add_pack(&self, pack: Id, entries: &[PackEntry]) -> Result<(), RepoError> {
        self.on_disk.write().map_err(|_| poisoned())?.insert(pack);
        let mut batch = sled::Batch::default();
        for entry in entries {
            if self.stored(&entry.id)?.is_none() {
                batch.insert(
                    &key(b'c', &entry.id)[..],
                    &Location::of(pack, entry).encode()[..],
                );
            }
        }
        batch.insert(
            &key(b'p', &pack)[..],
            &(entries.len() as u32).to_le_bytes()[..],
        );
        self.db.apply_batch(batch).map_err(index_error)
    }

    /// Points `entries` at `pack`, whatever their location was: for a pack
    /// of chunks just found not stored (no lookup needed), and for the
    /// copies gc makes before it deletes the old packs.
    pub fn point_at(&self, pack: Id, entries: &[PackEntry]) -> Result<(), RepoError> {
        self.on_disk.write().map_err(|_| poisoned())?.insert(pack);
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(
                &key(b'c', &entry.id)[..],
                &Location::of(pack, entry).encode()[..],
            );
        }
        batch.insert(
            &key(b'p', &pack)[..],
            &(entries.len() as u32).to_le_bytes()[..],
        );
        self.db.apply_batch(batch).map_err(index_error)
    }

    /// Forgets a pack that gc deletes: its record, and every chunk whose
    /// location is in it.
    pub fn remove_pack(&self, pack: Id, entries: &[PackEntry]) -> Result<(), RepoError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            if self.location(&entry.id)?.is_some_and(|at| at.pack == pack) {
                batch.remove(&key(b'c', &entry.id)[..]);
            }
        }
        batch.remove(&key(b'p', &pack)[..]);
        self.db.apply_batch(batch).map_err(index_error)?;
        self.on_disk.write().map_err(|_| poisoned())?.remove(&pack);
        Ok(())
    }

    /// Where the index says `id` is, whether or not that pack still exists.
    pub fn location(&self, id: &Id) -> Result<Option<Location>, RepoError> {
        let value = self.db.get(key(b'c', id)).map_err(index_error)?;
        Ok(value.and_then(|v| Location::decode(&v)))
    }

    /// Where `id` is, if it is in a pack on disk.
    pub fn stored(&self, id: &Id) -> Result<Option<Location>, RepoError> {
        let Some(location) = self.location(id)? else {
            return Ok(None);
        };
        let present = self
            .on_disk
            .read()
            .map_err(|_| poisoned())?
            .contains(&location.pack);
        Ok(present.then_some(location))
    }

    /// Whether `pack` is on disk.
    pub fn has_pack(&self, pack: &Id) -> bool {
        self.on_disk.read().is_ok_and(|packs| packs.contains(pack))
    }

    /// Number of chunks the index knows.
    pub fn chunks(&self) -> usize {
        self.db.scan_prefix([b'c']).count()
    }

    /// Makes everything recorded so far durable.
    pub fn flush(&self) -> Result<(), RepoError> {
        self.db.flush().map(|_| ()).map_err(index_error)
    }
}

/// The index's directory, made if missing and locked. A directory that is
/// a symlink (`REPO/index` may be written by someone else) is refused, so
/// nothing outside it is opened or deleted.
fn lock_dir(repo: &Repo, wait: Duration, tool: &str) -> Result<(PathBuf, DirLock), RepoError> {
    let dir = repo.index_dir();
    if ops_storage::is_remote(&dir) {
        return Err(RepoError::Index(format!(
            "{} is in a bucket, and its chunk index needs a local cache directory: set \
             OPS_CACHE_DIR, XDG_CACHE_HOME or HOME",
            repo.root.display()
        )));
    }
    make_dir(&dir).map_err(|err| RepoError::io(dir.clone(), err))?;
    let real = |path: &std::path::Path| {
        fs::symlink_metadata(path).map_or(true, |meta| meta.file_type().is_dir())
    };
    if !real(&dir) || !real(&dir.join("db")) {
        return Err(RepoError::io(
            dir,
            std::io::Error::other("the chunk index (or its db) is a symlink, not a directory; nothing was done: remove it"),
        ));
    }
    let lock = DirLock::acquire(&dir, Access::Exclusive, wait, tool).map_err(RepoError::Lock)?;
    Ok((dir, lock))
}

fn poisoned() -> RepoError {
    RepoError::Index("a thread using the index panicked".into())
}

/// Opens sled, waiting briefly for this process's own earlier handle: sled
/// releases its file lock only after deferred cleanup.
fn open_db(path: PathBuf) -> Result<sled::Db, RepoError> {
    let started = Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(&path)
            .cache_capacity(32 << 20)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(err))
                if err.kind() == std::io::ErrorKind::WouldBlock
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            Err(sled::Error::Io(err)) if err.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(RepoError::io(path, err))
            }
            Err(err) => {
                return Err(RepoError::Index(format!(
                    "cannot open {}: {err}; the index is a cache: run ops-snapshot rebuild-index",
                    path.display()
                )))
            }
        }
    }
}
