//! The repository on disk: its layout, its format version, its lock, and its
//! snapshot manifests.
//!
//! ```text
//! REPO/config               {"format":"ops-snapshot","version":1,...}
//!                           (version 2 when encrypted: see `crypt`)
//! REPO/keys/<id>            an encrypted repository's key slots
//! REPO/.ops-lock            flock: create and gc's planning hold it shared,
//!                           gc's deletion and forget exclusive
//! REPO/snapshots/<id>       one JSON manifest per snapshot; id = its SHA-256
//! REPO/packs/<aa>/<id>      pack files of compressed chunks; id = the SHA-256
//!                           of their table
//! ```
//!
//! The chunk index is a cache, so it lives where caches live, as borg's
//! and restic's do: `$OPS_CACHE_DIR/<key>`, else
//! `$XDG_CACHE_HOME/ops-snapshot/<key>`, else `~/.cache/ops-snapshot/<key>`
//! (`REPO/index` when there is no home, or the config has no id). The key
//! is the repository id (32 hex digits, checked on open: the config may be
//! written by someone else) and a hash of the repository's canonical path,
//! so a copy (`cp -a`, same id) keeps an index of its own. Each host keeps
//! its own and brings it up to date from the packs.
//!
//! Everything is written under a temporary name, fsynced and renamed, and
//! the repository is owner-only: the directories are 0700, files 0600.
//!
//! A repository may also be an `s3://BUCKET/PREFIX` (see `ops_storage`):
//! the same names as keys, objects visible only once complete, and lock
//! objects in `REPO/.ops-lock/` instead of the flock.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use ops_shared::atomic;
use ops_shared::keys::Encryption as SlotKey;
use ops_shared::lock::{Access, DirLock};
use ops_shared::record::Snapshot;
use ops_storage::{Mode, PlaceLock};
use serde::{Deserialize, Serialize};

use crate::chunker::Params;
use crate::crypt::{self, Codec, Role};
use crate::error::RepoError;
use crate::id::Id;

/// The largest snapshot manifest read (the file list is in chunks; this
/// is a few hundred bytes plus the list's chunk ids).
const MAX_MANIFEST: u64 = 64 << 20;

/// The newest repository format this version reads: 1 in the clear, 2
/// encrypted (so that a version that cannot decrypt refuses it).
pub const FORMAT_VERSION: u32 = 2;
const CLEAR_VERSION: u32 = 1;
const FORMAT_NAME: &str = "ops-snapshot";

/// `REPO/config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub format: String,
    pub version: u32,
    /// Random; names the repository's index in the cache.
    #[serde(default)]
    pub id: String,
    pub created: Timestamp,
    /// Content-defined chunking of file data.
    pub data_chunks: Params,
    /// Content-defined chunking of the snapshots' file lists.
    pub tree_chunks: Params,
    /// zstd level of stored chunks.
    pub level: i32,
    /// How the repository is encrypted; absent in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crypt::Encryption>,
}

impl Config {
    fn new(level: i32, encryption: Option<crypt::Encryption>) -> Config {
        Config {
            format: FORMAT_NAME.into(),
            version: if encryption.is_some() {
                FORMAT_VERSION
            } else {
                CLEAR_VERSION
            },
            encryption,
            id: random_id(),
            created: Timestamp::now(),
            data_chunks: Params::DATA,
            tree_chunks: Params::TREE,
            level,
        }
    }
}

/// One snapshot's manifest, `REPO/snapshots/<id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub time: Timestamp,
    pub host: String,
    pub paths: Vec<String>,
    pub parent: Option<String>,
    pub excludes: Vec<String>,
    /// The chunks of the file list, in order.
    pub tree: Vec<Id>,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub added_bytes: u64,
    /// The source directory itself (absent for a file, and in snapshots
    /// of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<ops_shared::owner::Recorded>,
}

/// An open repository.
pub struct Repo {
    pub root: PathBuf,
    pub config: Config,
    /// How its contents are named and sealed; `None` for an encrypted
    /// repository opened without its key.
    codec: Option<Codec>,
    /// The key slot that opened it.
    pub slot: Option<String>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.root.display())
    }
}

/// An encrypted repository's master key, for new key slots.
pub struct MasterKey(pub Vec<u8>);

impl Repo {
    /// Opens the repository at `root`, with its key if it is encrypted.
    ///
    /// Fails when `root` is not a repository, is one of a newer format, or
    /// is encrypted and no key given opens it.
    pub fn open(root: &Path) -> Result<Repo, RepoError> {
        Repo::open_keyed(root).map(|(repo, _)| repo)
    }

    /// [`Repo::open`], with the master key of an encrypted repository.
    pub fn open_keyed(root: &Path) -> Result<(Repo, Option<MasterKey>), RepoError> {
        let (repo, master) = Repo::open_maybe_locked(root)?;
        if repo.codec.is_none() {
            return Err(RepoError::Locked(root.to_owned()));
        }
        Ok((repo, master))
    }

    /// Opens the repository at `root`; an encrypted one stays locked (only
    /// its stored bytes can be checked) when no key for it is at hand.
    ///
    /// Fails as [`Repo::open`], but for a missing key.
    pub fn open_without_key(root: &Path) -> Result<Repo, RepoError> {
        Repo::open_maybe_locked(root).map(|(repo, _)| repo)
    }

    /// Whether this is an encrypted repository opened without its key.
    pub fn is_locked(&self) -> bool {
        self.codec.is_none()
    }

    pub fn is_encrypted(&self) -> bool {
        self.config.encryption.is_some()
    }

    /// How chunks, tables and manifests are named and sealed.
    ///
    /// Fails on an encrypted repository opened without its key.
    pub fn codec(&self) -> Result<&Codec, RepoError> {
        self.codec
            .as_ref()
            .ok_or_else(|| RepoError::Locked(self.root.clone()))
    }

    fn open_maybe_locked(root: &Path) -> Result<(Repo, Option<MasterKey>), RepoError> {
        let config = Repo::read_config(root)?;
        crate::known::check(root, Some(&config))?;
        let Some(encryption) = &config.encryption else {
            let repo = Repo {
                root: root.to_owned(),
                config,
                codec: Some(Codec::clear()),
                slot: None,
            };
            return Ok((repo, None));
        };
        let unlocked = crate::slots::unlock(root, encryption)?;
        let (slot, codec, master) = match unlocked {
            Some((slot, sealer, master)) => (
                Some(slot),
                Some(Codec::sealed(sealer)),
                Some(MasterKey(master)),
            ),
            None => (None, None, None),
        };
        if codec.is_some() {
            remember(root, &config);
        }
        let repo = Repo {
            root: root.to_owned(),
            config,
            codec,
            slot,
        };
        Ok((repo, master))
    }

    /// The config of the repository at `root`, without opening it.
    ///
    /// Fails as [`Repo::open`], but for a missing key.
    pub fn read_config(root: &Path) -> Result<Config, RepoError> {
        let text = match ops_storage::read_small(&root.join("config"), 1 << 20) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(RepoError::NotARepo(root.to_owned()))
            }
            Err(err) => return Err(RepoError::io(root.join("config"), err)),
        };
        let config: Config =
            serde_json::from_slice(&text).map_err(|_| RepoError::NotARepo(root.to_owned()))?;
        if config.format != FORMAT_NAME {
            return Err(RepoError::NotARepo(root.to_owned()));
        }
        if config.version > FORMAT_VERSION {
            return Err(RepoError::TooNew {
                repo: root.to_owned(),
                version: config.version,
            });
        }
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        let shaped = config.id.len() == 32 && config.id.chars().all(hex);
        if !(config.id.is_empty() || shaped) {
            return Err(RepoError::BadId {
                repo: root.to_owned(),
                id: config.id,
            });
        }
        if config.encryption.is_some() != (config.version >= 2) {
            return Err(RepoError::Damaged(format!(
                "{}: the config says version {} but {}: it was changed or damaged",
                root.join("config").display(),
                config.version,
                if config.encryption.is_some() {
                    "names an encryption"
                } else {
                    "names no encryption"
                }
            )));
        }
        Ok(config)
    }

    /// Opens the repository at `root`, creating it first if `root` does not
    /// exist, is an empty directory, or holds only what an interrupted
    /// creation leaves (see [`Repo::init`]); a new one is encrypted with a
    /// first key slot for `encrypt`.
    ///
    /// Fails as [`Repo::open`], and when `encrypt` is asked of a repository
    /// that exists in the clear.
    pub fn open_or_init(
        root: &Path,
        level: i32,
        encrypt: Option<&SlotKey>,
        wait: Duration,
        tool: &str,
    ) -> Result<Repo, RepoError> {
        let repo = match Repo::open(root) {
            Err(RepoError::NotARepo(_)) => {
                crate::known::check(root, None)?;
                Repo::init(root, level, encrypt, wait, tool)?
            }
            other => other?,
        };
        if encrypt.is_some() && !repo.is_encrypted() {
            return Err(RepoError::ClearNotEncrypted(root.to_owned()));
        }
        Ok(repo)
    }

    /// Creates the repository at `root` while holding it exclusively, so a
    /// second creator waits and then opens the first one's. The config is
    /// written last and atomically: a kill before it leaves only the lock
    /// file, empty `snapshots` and `packs` and temporary files, which the
    /// next creation recognises as its own and finishes. Anything else in
    /// `root` makes it not a repository, and nothing there is touched.
    fn init(
        root: &Path,
        level: i32,
        encrypt: Option<&SlotKey>,
        wait: Duration,
        tool: &str,
    ) -> Result<Repo, RepoError> {
        if ops_storage::is_remote(root) {
            return Repo::init_remote(root, level, encrypt);
        }
        let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            if !parent.is_dir() {
                return Err(RepoError::io(
                    root.to_owned(),
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} does not exist", parent.display()),
                    ),
                ));
            }
        }
        match fs::DirBuilder::new().mode(0o700).create(root) {
            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                return Err(RepoError::io(root.to_owned(), err))
            }
            _ => {}
        }
        if !root.is_dir() {
            return Err(RepoError::NotARepo(root.to_owned()));
        }
        let _lock =
            DirLock::acquire(root, Access::Exclusive, wait, tool).map_err(RepoError::Lock)?;
        match Repo::open(root) {
            Err(RepoError::NotARepo(_)) => {}
            other => return other,
        }
        let leftovers =
            unfinished_init(root)?.ok_or_else(|| RepoError::NotARepo(root.to_owned()))?;
        for temp in leftovers {
            fs::remove_file(&temp).map_err(|err| RepoError::io(temp.clone(), err))?;
        }
        for dir in [root.join("snapshots"), root.join("packs")] {
            make_dir(&dir).map_err(|err| RepoError::io(dir.clone(), err))?;
        }
        let (encryption, master) = first_slot(root, encrypt)?;
        let config = Config::new(level, encryption);
        let text = serde_json::to_vec_pretty(&config).unwrap_or_default();
        let path = root.join("config");
        // Commit fsyncs `root`, which makes the two directories durable too.
        atomic::write_replace(&path, &text).map_err(|err| RepoError::io(path, err))?;
        Repo::created(root, master)
    }

    /// The repository just created at `root`, opened with the master key it
    /// was created with (its slot may be for a public key only).
    fn created(root: &Path, master: Option<Vec<u8>>) -> Result<Repo, RepoError> {
        let config = Repo::read_config(root)?;
        let codec = match (&config.encryption, master) {
            (None, _) => Codec::clear(),
            (Some(encryption), Some(master)) => match crypt::Sealer::new(&master, encryption) {
                Some(sealer) => Codec::sealed(sealer),
                None => return Repo::open(root),
            },
            (Some(_), None) => return Repo::open(root),
        };
        remember(root, &config);
        Ok(Repo {
            root: root.to_owned(),
            config,
            codec: Some(codec),
            slot: None,
        })
    }

    /// Creates a repository in a bucket: only where nothing is yet (an
    /// earlier creator's lock objects aside), the config alone. Two
    /// creators at once both succeed and share the repository; the config
    /// written last names it.
    fn init_remote(root: &Path, level: i32, encrypt: Option<&SlotKey>) -> Result<Repo, RepoError> {
        let io_error = |err| RepoError::io(root.to_owned(), err);
        ops_storage::prepare(root).map_err(io_error)?;
        // Objects, not prefixes: some servers keep a prefix whose objects
        // are all deleted as an empty directory.
        let present = ops_storage::list_deep(root).map_err(io_error)?;
        let lock = format!("{}/", ops_shared::lock::LOCK_FILE);
        let slots = format!("{}/", crate::slots::DIR);
        let foreign = |name: &str| !name.starts_with(&lock) && !name.starts_with(&slots);
        if present.iter().any(|object| foreign(&object.name)) {
            return Err(RepoError::NotARepo(root.to_owned()));
        }
        let (encryption, master) = first_slot(root, encrypt)?;
        let text = serde_json::to_vec_pretty(&Config::new(level, encryption)).unwrap_or_default();
        match ops_storage::write(&root.join("config"), Mode::New, text) {
            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(io_error(err)),
            // Another creator's config: its key, from its slot.
            Err(_) => Repo::open(root),
            Ok(()) => Repo::created(root, master),
        }
    }

    /// Locks the repository; see the module docs for who holds it how.
    pub fn lock(&self, access: Access, wait: Duration, tool: &str) -> Result<PlaceLock, RepoError> {
        ops_storage::lock(&self.root, access, wait, tool).map_err(RepoError::Lock)
    }

    pub fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Where snapshot `id`'s manifest is kept.
    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(id)
    }

    pub fn pack_path(&self, pack: &Id) -> PathBuf {
        let hex = pack.to_hex();
        self.packs_dir().join(&hex[..2]).join(hex)
    }

    /// Where this repository's chunk index is kept (see the module docs).
    pub fn index_dir(&self) -> PathBuf {
        match cache_base() {
            Some(cache) if self.is_remote() => {
                let place = Id::of(self.root.as_os_str().as_encoded_bytes()).to_hex();
                cache.join(format!("{}-{}", self.config.id, &place[..16]))
            }
            Some(cache) if !self.config.id.is_empty() => {
                let place = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
                let place = Id::of(place.as_os_str().as_encoded_bytes()).to_hex();
                cache.join(format!("{}-{}", self.config.id, &place[..16]))
            }
            _ => self.root.join("index"),
        }
    }

    /// Every pack file in the repository.
    pub fn packs(&self) -> Result<HashSet<Id>, RepoError> {
        Ok(self
            .pack_objects()?
            .iter()
            .filter_map(|object| pack_id(&object.name))
            .collect())
    }

    /// Everything below `packs`, names relative to it.
    fn pack_objects(&self) -> Result<Vec<ops_storage::Object>, RepoError> {
        let dir = self.packs_dir();
        match ops_storage::list_deep(&dir) {
            // An S3 prefix with no objects is not there at all.
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.is_remote() => Ok(Vec::new()),
            listed => listed.map_err(|err| RepoError::io(dir, err)),
        }
    }

    pub fn is_remote(&self) -> bool {
        ops_storage::is_remote(&self.root)
    }

    /// The ids of all snapshots, in no particular order.
    pub fn snapshot_ids(&self) -> Result<Vec<String>, RepoError> {
        let dir = self.snapshots_dir();
        let listing = ops_storage::list(&dir).map_err(|err| RepoError::io(dir.clone(), err))?;
        Ok(listing
            .into_iter()
            .filter(|object| Id::from_hex(&object.name).is_some())
            .map(|object| object.name)
            .collect())
    }

    /// Reads one snapshot's manifest, checking it against its id.
    pub fn manifest(&self, id: &str) -> Result<Manifest, RepoError> {
        let stored = self.manifest_bytes(id)?;
        let bytes = self
            .codec()?
            .open(Role::Manifest, &stored)
            .map_err(|err| RepoError::Damaged(format!("snapshot {id}: its manifest {err}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|err| RepoError::Damaged(format!("snapshot {id}: unreadable manifest: {err}")))
    }

    /// One snapshot's manifest as stored, checked against its id.
    pub fn manifest_bytes(&self, id: &str) -> Result<Vec<u8>, RepoError> {
        if Id::from_hex(id).is_none() {
            return Err(RepoError::NoSnapshot {
                repo: self.root.clone(),
                wanted: id.into(),
            });
        }
        let path = self.snapshot_path(id);
        let bytes = ops_storage::read_small(&path, MAX_MANIFEST)
            .map_err(|err| RepoError::io(path.clone(), err))?;
        if Id::of(&bytes).to_hex() != id {
            return Err(RepoError::Damaged(format!(
                "snapshot {id}: its manifest does not match its id (the file was changed or damaged)"
            )));
        }
        Ok(bytes)
    }

    /// Whether snapshot `id` is in the repository.
    pub fn has_snapshot(&self, id: &str) -> Result<bool, RepoError> {
        let path = self.snapshot_path(id);
        ops_storage::exists(&path).map_err(|err| RepoError::io(path, err))
    }

    /// All snapshots, oldest first.
    pub fn manifests(&self) -> Result<Vec<(String, Manifest)>, RepoError> {
        let mut all = Vec::new();
        for id in self.snapshot_ids()? {
            let manifest = self.manifest(&id)?;
            all.push((id, manifest));
        }
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
        Ok(all)
    }

    /// Finds a snapshot by id, unique id prefix, or `latest`.
    pub fn resolve(&self, wanted: &str) -> Result<(String, Manifest), RepoError> {
        let mut all = self.manifests()?;
        if wanted == "latest" {
            return all.pop().ok_or_else(|| RepoError::NoSnapshot {
                repo: self.root.clone(),
                wanted: wanted.into(),
            });
        }
        let mut matching: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.starts_with(wanted))
            .collect();
        match matching.len() {
            1 if !wanted.is_empty() => Ok(matching.remove(0)),
            0 | 1 => Err(RepoError::NoSnapshot {
                repo: self.root.clone(),
                wanted: wanted.into(),
            }),
            n => Err(RepoError::Ambiguous {
                wanted: wanted.into(),
                count: n,
            }),
        }
    }

    /// Stores a snapshot manifest durably; returns its id.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<String, RepoError> {
        let plain = serde_json::to_vec(manifest).unwrap_or_default();
        self.write_manifest_bytes(&self.codec()?.seal(Role::Manifest, &plain))
    }

    /// Stores a manifest as it was read from another repository; its id
    /// stays the same.
    pub fn write_manifest_bytes(&self, bytes: &[u8]) -> Result<String, RepoError> {
        let id = Id::of(bytes).to_hex();
        let path = self.snapshot_path(&id);
        ops_storage::write(&path, Mode::New, bytes.to_vec())
            .map_err(|err| RepoError::io(path, err))?;
        Ok(id)
    }

    /// Removes a snapshot's manifest (its data stays until gc).
    pub fn remove_snapshot(&self, id: &str) -> Result<(), RepoError> {
        if Id::from_hex(id).is_none() {
            return Err(RepoError::NoSnapshot {
                repo: self.root.clone(),
                wanted: id.into(),
            });
        }
        let path = self.snapshot_path(id);
        ops_storage::delete(&path).map_err(|err| RepoError::io(path, err))
    }

    /// Bytes of all pack files.
    pub fn packs_bytes(&self) -> u64 {
        self.pack_objects()
            .map_or(0, |objects| objects.iter().map(|o| o.size).sum())
    }

    /// The temporary files in `packs` (at any depth) and `snapshots`: left
    /// by crashed runs, or being written by running ones. gc removes them
    /// all while it holds the repository exclusively. A bucket has none:
    /// an object appears only once complete.
    pub fn leftovers(&self) -> Vec<Leftover> {
        let now = Timestamp::now();
        let packs = self.pack_objects().unwrap_or_default();
        let snapshots = ops_storage::list(&self.snapshots_dir()).unwrap_or_default();
        let in_packs = packs.into_iter().map(|o| (self.packs_dir(), o));
        let in_snapshots = snapshots.into_iter().map(|o| (self.snapshots_dir(), o));
        in_packs
            .chain(in_snapshots)
            .filter(|(_, object)| atomic::is_temp(object.name.as_ref()))
            .map(|(dir, object)| Leftover {
                path: dir.join(&object.name),
                is_file: object.regular,
                bytes: object.size,
                age: object
                    .modified
                    .and_then(|modified| now.duration_since(modified).try_into().ok())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// A temporary file in the repository (see [`Repo::leftovers`]).
#[derive(Clone, Debug)]
pub struct Leftover {
    pub path: PathBuf,
    /// A plain file (not a symlink or directory, and still there).
    pub is_file: bool,
    pub bytes: u64,
    /// Since it was last written; zero when unknown.
    pub age: Duration,
}

/// The `snapshot` record of a manifest; `repo` becomes absolute, so the
/// record works from any directory.
pub fn record(repo: &Path, id: &str, manifest: &Manifest) -> Snapshot {
    let mut extra = serde_json::Map::new();
    extra.insert("host".into(), manifest.host.clone().into());
    Snapshot {
        id: id.to_owned(),
        name: manifest.name.clone(),
        time: manifest.time,
        repo: absolute(repo),
        paths: manifest.paths.clone(),
        parent: manifest.parent.clone(),
        files: manifest.files,
        bytes: manifest.bytes,
        added_bytes: manifest.added_bytes,
        extra,
    }
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Every snapshot of the repository at `root`, oldest first.
///
/// Fails when `root` is not a repository or a manifest is damaged.
pub fn list(root: &Path) -> Result<Vec<Snapshot>, RepoError> {
    let repo = Repo::open(root)?;
    let root = absolute(root);
    Ok(repo
        .manifests()?
        .iter()
        .map(|(id, manifest)| record(&root, id, manifest))
        .collect())
}

/// Removes snapshots (their data stays until gc), holding the repository
/// exclusively for `tool` while it does.
///
/// Fails on the first snapshot that cannot be removed.
pub fn forget(root: &Path, ids: &[String], wait: Duration, tool: &str) -> Result<(), RepoError> {
    let repo = Repo::open(root)?;
    let _lock = repo.lock(Access::Exclusive, wait, tool)?;
    for id in ids {
        repo.remove_snapshot(id)?;
    }
    Ok(())
}

/// The id of the pack named `name` (`aa/<id>`) inside `packs`.
fn pack_id(name: &str) -> Option<Id> {
    let (sub, file) = name.split_once('/')?;
    let id = Id::from_hex(file)?;
    (sub.len() == 2 && file.starts_with(sub)).then_some(id)
}

/// A new master key with its first slot, for `encrypt`; the config's record
/// of it.
type FirstSlot = (Option<crypt::Encryption>, Option<Vec<u8>>);

fn first_slot(root: &Path, encrypt: Option<&SlotKey>) -> Result<FirstSlot, RepoError> {
    let Some(key) = encrypt else {
        return Ok((None, None));
    };
    let io_error = |err| RepoError::io(root.join(crate::slots::DIR), err);
    let (master, encryption) = crypt::new_master_key().map_err(io_error)?;
    crate::slots::add(root, key, &master).map_err(io_error)?;
    Ok((Some(encryption), Some(master)))
}

/// The temporary files to remove if `root` holds only what an unfinished
/// [`Repo::init`] leaves; `None` if it holds anything else.
fn unfinished_init(root: &Path) -> Result<Option<Vec<PathBuf>>, RepoError> {
    let listing = fs::read_dir(root).map_err(|err| RepoError::io(root.to_owned(), err))?;
    let mut temps = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|err| RepoError::io(root.to_owned(), err))?;
        let name = entry.file_name();
        let kind = entry
            .file_type()
            .map_err(|err| RepoError::io(entry.path(), err))?;
        let ours = if name == crate::slots::DIR && kind.is_dir() {
            // Slots of a key no config names yet.
            for slot in
                fs::read_dir(entry.path()).map_err(|err| RepoError::io(entry.path(), err))?
            {
                let slot = slot.map_err(|err| RepoError::io(entry.path(), err))?;
                if !slot.file_type().is_ok_and(|kind| kind.is_file()) {
                    return Ok(None);
                }
                temps.push(slot.path());
            }
            true
        } else if name == "snapshots" || name == "packs" {
            kind.is_dir()
                && fs::read_dir(entry.path())
                    .map_err(|err| RepoError::io(entry.path(), err))?
                    .next()
                    .is_none()
        } else if name == ops_shared::lock::LOCK_FILE {
            kind.is_file()
        } else if name.as_encoded_bytes().starts_with(b"config.") && atomic::is_temp(&name) {
            temps.push(entry.path());
            kind.is_file()
        } else {
            false
        };
        if !ours {
            return Ok(None);
        }
    }
    Ok(Some(temps))
}

/// Creates `dir` (and missing parents) owner-only.
pub fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// The cache directory of this user: OPS_CACHE_DIR, else under
/// XDG_CACHE_HOME or HOME.
pub(crate) fn cache_base() -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("OPS_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|dir| dir.join("ops-snapshot")))
        .or_else(|| env("HOME").map(|home| home.join(".cache/ops-snapshot")))
}

/// Keeps the record that `root` is this encrypted repository; a cache that
/// cannot be written costs only that protection, said on stderr.
fn remember(root: &Path, config: &Config) {
    if let Err(err) = crate::known::remember(root, config) {
        ops_shared::entry::warn(format!(
            "cannot record {} as a known encrypted repository in the cache: {err}",
            root.display()
        ));
    }
}

/// 128 random bits as hex.
pub fn random_id() -> String {
    let mut seed = [0u8; 16];
    let read =
        fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut seed));
    if read.is_err() {
        seed.copy_from_slice(&Timestamp::now().as_nanosecond().to_le_bytes());
    }
    let mut text = Id::of(&[&seed[..], &std::process::id().to_le_bytes()].concat()).to_hex();
    text.truncate(32);
    text
}
