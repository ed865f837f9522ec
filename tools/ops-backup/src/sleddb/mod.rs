//! sled databases: this module owns the `.sled.zst` format. It writes it
//! ([`backup`]), reads it back ([`stream`]) for ops-verify and ops-restore,
//! and copies databases tree by tree for ops-compact.
//!
//! A database is opened through [`open`], which turns sled's lock error
//! into a clear "in use" error: the files of a live database are never
//! copied. Trees are walked with sled's own iterators rather than
//! `Db::export`/`Db::import`, which panic on I/O errors; the content is
//! the same, and `Db::checksum` anchors it on both sides.

pub mod backup;
pub mod stream;

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
    open_dir(path)
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
/// (which some damaged files cause) into an error that says so.
///
/// Fails with whatever `work` fails with, or with the panic as an error.
pub fn guarded<T>(path: &Path, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => bail!(
            "sled failed reading {} (is it damaged?): {}",
            path.display(),
            ops_shared::entry::panic_text(payload.as_ref())
        ),
    }
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

/// Copies every tree of `from` into `to`, which must be empty; the number
/// of keys and bytes of keys and values copied.
///
/// Fails on any read or write error.
pub fn copy(from: &sled::Db, to: &sled::Db) -> anyhow::Result<(u64, u64)> {
    let (mut keys, mut bytes) = (0, 0);
    for name in from.tree_names() {
        let source = from.open_tree(&name)?;
        let target = to.open_tree(&name)?;
        for item in source.iter() {
            let (key, value) =
                item.with_context(|| format!("reading tree {}", tree_label(&name)))?;
            keys += 1;
            bytes += (key.len() + value.len()) as u64;
            if target.insert(key, value)?.is_some() {
                bail!("the target database is not empty");
            }
        }
    }
    to.flush()?;
    Ok((keys, bytes))
}
