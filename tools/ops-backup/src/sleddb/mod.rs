//! sled databases: this module owns the `.sled.zst` format. It writes it
//! ([`backup`]) and reads it back ([`stream`]), behind [`crate::Format`];
//! and it is the sled access layer other tools share: opening a database
//! only when nobody else has it, checksums, and copies tree by tree for
//! ops-compact.
//!
//! A database is opened through [`open`], which turns sled's lock error
//! into a clear "in use" error: the files of a live database are never
//! copied. Trees are walked with sled's own iterators rather than
//! `Db::export`/`Db::import`, which panic on I/O errors; the content is
//! the same, and `Db::checksum` anchors it on both sides.

pub(crate) mod backup;
mod owners;
pub(crate) mod stream;

pub use owners::Owners;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Whether a location names a sled database: `sled:PATH`, or a directory
/// that holds sled's `conf` and `db` files.
pub fn sled_path(source: &str) -> Option<PathBuf> {
    if let Some(path) = source.strip_prefix("sled:") {
        return Some(PathBuf::from(path));
    }
    let path = Path::new(source);
    is_sled_dir(path).then(|| path.to_owned())
}

/// Whether `path` looks like a sled database directory.
pub fn is_sled_dir(path: &Path) -> bool {
    let conf = fs::read(path.join("conf")).unwrap_or_default();
    path.join("db").is_file() && conf.starts_with(b"segment_size:")
}

/// Why a sled database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SledError {
    #[error(
        "sled database {path} is in use by another process{holder}; stop the application \
         that holds it, or back up from a filesystem snapshot"
    )]
    InUse { path: String, holder: String },
    #[error("{path} is not a sled database (no conf and db files)")]
    NotSled { path: String },
    #[error("cannot open sled database {path}: {reason}")]
    Broken { path: String, reason: String },
}

/// The pid holding the lock on a database, from /proc/locks.
pub fn lock_holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = fs::metadata(path.join("db")).ok()?.ino();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pid, device) = (fields.get(4)?, fields.get(5)?);
        let lock_inode: u64 = device.rsplit(':').next()?.parse().ok()?;
        (lock_inode == inode).then(|| pid.parse().ok()).flatten()
    })
}

/// Opens again a database this process just closed. sled releases its
/// lock only once deferred cleanup has run, so a moment of "in use" is our
/// own handle going away: wait for it, up to a few seconds.
fn reopen(path: &Path) -> Result<sled::Db, SledError> {
    open_waiting(path, 5000)
}

fn open_waiting(path: &Path, patience_ms: u64) -> Result<sled::Db, SledError> {
    let mut waited = 0;
    loop {
        match open_dir(path) {
            Err(SledError::InUse { .. }) if waited < patience_ms => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                waited += 10;
            }
            other => return other,
        }
    }
}

/// Opens an existing database with a small cache, so memory stays bounded
/// however large it is.
///
/// Fails with [`SledError::InUse`] (naming the holder's pid where it can
/// be found) when another process holds it.
pub fn open(path: &Path) -> Result<sled::Db, SledError> {
    if !is_sled_dir(path) {
        return Err(SledError::NotSled {
            path: path.display().to_string(),
        });
    }
    // A second's patience covers this process's own handle closing just
    // before (ops-compact plans, then executes).
    open_waiting(path, 1000)
}

/// Creates a new database at `path` (for restore and compaction).
///
/// Fails if it cannot be created.
pub fn create(path: &Path) -> Result<sled::Db, SledError> {
    open_dir(path)
}

fn open_dir(path: &Path) -> Result<sled::Db, SledError> {
    let opened = sled::Config::new()
        .path(path)
        .cache_capacity(32 << 20)
        .open();
    opened.map_err(|err| {
        let reason = err.to_string();
        if reason.contains("could not acquire lock") {
            let holder = lock_holder(path)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            SledError::InUse {
                path: path.display().to_string(),
                holder,
            }
        } else {
            SledError::Broken {
                path: path.display().to_string(),
                reason,
            }
        }
    })
}

/// Runs `work` on the database at `path`, turning a panic inside sled
/// (which some damaged files cause) into an error that says so, and gives
/// the database's entries back their owners and modes afterwards
/// ([`Owners`]): every tool that opens an existing database does so here.
///
/// Fails with whatever `work` fails with, with the panic as an error, or
/// when the owners cannot be given back.
pub fn guarded<T>(path: &Path, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let ours_to_open = is_sled_dir(path) && lock_holder(path).is_none();
    let owners = ours_to_open.then(|| Owners::read(path).ok()).flatten();
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(anyhow::anyhow!(
            "sled failed reading {} (is it damaged?): {}",
            path.display(),
            ops_shared::entry::panic_text(payload.as_ref())
        )),
    };
    let given_back = owners.map_or(Ok(()), |owners| owners.restore(path));
    let value = result?;
    given_back?;
    Ok(value)
}

/// Bytes of every file in a database directory.
pub fn disk_usage(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

/// The name of a tree as text: itself when UTF-8, else `hex:` and its bytes.
pub fn tree_label(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) => text.to_owned(),
        Err(_) => format!(
            "hex:{}",
            name.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// How much data is read or written between reopenings of a database:
/// sled 0.34 keeps every page it has touched in memory until the database
/// is closed, whatever its cache capacity, so long walks reopen it.
const SLICE: u64 = 32 << 20;

/// One step of a walk.
pub enum Visit<'a> {
    Tree(&'a [u8]),
    Entry(&'a [u8], &'a [u8]),
}

/// Walks every tree of the database at `path` (open as `db`) in the order
/// sled's `Db::checksum` does (tree names sorted, keys in order), reopening
/// it every [`SLICE`] bytes; returns the database, open again, and what
/// was read, whose checksum equals `Db::checksum`.
///
/// Fails on a read error, when reopening fails (another process took the
/// database in between), or when `visit` fails.
pub fn walk(
    path: &Path,
    mut db: sled::Db,
    visit: &mut dyn FnMut(Visit) -> anyhow::Result<()>,
) -> anyhow::Result<(sled::Db, stream::Contents)> {
    use std::ops::Bound;
    let mut names: Vec<Vec<u8>> = db.tree_names().into_iter().map(|n| n.to_vec()).collect();
    names.sort();
    let mut hasher = crc32fast::Hasher::new();
    let mut trees = Vec::with_capacity(names.len());
    let mut since = 0;
    for name in names {
        hasher.update(&name);
        visit(Visit::Tree(&name))?;
        let mut stats = stream::TreeStats {
            name: name.clone(),
            keys: 0,
            bytes: 0,
        };
        let mut after: Option<Vec<u8>> = None;
        loop {
            let tree = db.open_tree(&name)?;
            let entries = match &after {
                Some(key) => {
                    tree.range::<&[u8], _>((Bound::Excluded(key.as_slice()), Bound::Unbounded))
                }
                None => tree.iter(),
            };
            let mut finished = true;
            for item in entries {
                let (key, value) =
                    item.with_context(|| format!("reading tree {}", tree_label(&name)))?;
                hasher.update(&key);
                hasher.update(&value);
                visit(Visit::Entry(&key, &value))?;
                let size = (key.len() + value.len()) as u64;
                stats.keys += 1;
                stats.bytes += size;
                since += size;
                if since >= SLICE {
                    since = 0;
                    after = Some(key.to_vec());
                    finished = false;
                    break;
                }
            }
            if finished {
                break;
            }
            drop(tree);
            drop(db);
            db = reopen(path)?;
        }
        trees.push(stats);
    }
    Ok((
        db,
        stream::Contents {
            trees,
            checksum: hasher.finalize(),
        },
    ))
}

/// sled's checksum of a database, read in bounded memory.
///
/// Fails as [`walk`] does.
pub fn checksum(path: &Path, db: sled::Db) -> anyhow::Result<(sled::Db, stream::Contents)> {
    walk(path, db, &mut |_| Ok(()))
}

/// Fills a new database, reopening it every [`SLICE`] bytes.
pub struct Importer {
    path: PathBuf,
    db: Option<sled::Db>,
    tree: Option<(Vec<u8>, sled::Tree)>,
    since: u64,
}

impl Importer {
    /// Creates the database at `path`.
    ///
    /// Fails if it cannot be created.
    pub fn create(path: &Path) -> Result<Self, SledError> {
        let db = create(path)?;
        Ok(Importer {
            path: path.to_owned(),
            db: Some(db),
            tree: None,
            since: 0,
        })
    }

    /// Starts filling tree `name`.
    pub fn tree(&mut self, name: &[u8]) -> anyhow::Result<()> {
        let db = self.db.as_ref().context("database closed")?;
        self.tree = Some((name.to_vec(), db.open_tree(name)?));
        Ok(())
    }

    /// Inserts one entry into the current tree.
    ///
    /// Fails on a write error, or if the key was already there.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let Some((name, tree)) = &self.tree else {
            bail!("entry outside a tree")
        };
        if tree.insert(key, value)?.is_some() {
            bail!("duplicate key in tree {}", tree_label(name));
        }
        self.since += (key.len() + value.len()) as u64;
        // Writing holds more per byte than reading: half a slice.
        if self.since >= SLICE / 2 {
            self.since = 0;
            let name = name.clone();
            self.tree = None;
            if let Some(db) = self.db.take() {
                db.flush()?;
            }
            let db = reopen(&self.path)?;
            self.tree = Some((name.clone(), db.open_tree(&name)?));
            self.db = Some(db);
        }
        Ok(())
    }

    /// Flushes and closes the database; its checksum, read back.
    ///
    /// Fails on a write or read error.
    pub fn finish(mut self) -> anyhow::Result<u32> {
        self.tree = None;
        let db = self.db.take().context("database closed")?;
        db.flush()?;
        let (db, contents) = checksum(&self.path, db)?;
        drop(db);
        Ok(contents.checksum)
    }
}

/// Copies every tree of the database at `from` (open as `db`) into a new
/// database at `to`; returns `from` open again, the source's contents and
/// the copy's checksum.
///
/// Fails on any read or write error.
pub fn copy(
    from: &Path,
    db: sled::Db,
    to: &Path,
) -> anyhow::Result<(sled::Db, stream::Contents, u32)> {
    let mut target = Importer::create(to)?;
    let (db, contents) = walk(from, db, &mut |step| match step {
        Visit::Tree(name) => target.tree(name),
        Visit::Entry(key, value) => target.insert(key, value),
    })?;
    let copied = target.finish()?;
    Ok((db, contents, copied))
}
