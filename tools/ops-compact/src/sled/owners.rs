//! Owner, group and mode of a database's directory and files, carried over
//! to its rebuilt copy. The application that owns the database must be able
//! to open it after root's maintenance, and nobody else newly able to read
//! it: sled itself creates its files with the umask of whoever runs it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use walkdir::WalkDir;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Access {
    dir: bool,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Access {
    fn of(meta: &fs::Metadata) -> Access {
        Access {
            dir: meta.is_dir(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        }
    }
}

/// What every entry of a database looked like, by path inside it.
#[derive(Clone)]
pub struct Owners {
    by_path: HashMap<PathBuf, Access>,
    /// For directories and files the original does not have (sled names
    /// some files by log position): its top directory and its `db` file.
    dir: Access,
    file: Access,
}

impl Owners {
    /// Reads them from the database at `db`.
    ///
    /// Fails when an entry cannot be read.
    pub fn read(db: &Path) -> anyhow::Result<Owners> {
        let mut by_path = HashMap::new();
        for entry in WalkDir::new(db) {
            let entry = entry.with_context(|| format!("cannot read {}", db.display()))?;
            if entry.file_type().is_symlink() {
                continue;
            }
            let meta = entry
                .metadata()
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            let inside = entry.path().strip_prefix(db).unwrap_or(entry.path());
            by_path.insert(inside.to_owned(), Access::of(&meta));
        }
        let top = by_path.get(Path::new("")).copied();
        let dir = top.with_context(|| format!("cannot read {}", db.display()))?;
        let file = by_path
            .get(Path::new("db"))
            .copied()
            .filter(|a| !a.dir)
            .unwrap_or(Access {
                dir: false,
                mode: dir.mode & 0o666,
                ..dir
            });
        Ok(Owners { by_path, dir, file })
    }

    /// Gives back to the application a database this process opened, once
    /// sled has closed it (it writes files as it closes): [`Self::apply`].
    ///
    /// Fails as that does.
    pub fn restore(&self, db: &Path) -> anyhow::Result<()> {
        wait_closed(db);
        self.apply(db)
    }

    /// Gives every entry of the copy at `copy` the owner, group and mode of
    /// its counterpart; the top directory last, so the copy stays closed
    /// to others until it is complete. Owner before mode: chown clears
    /// set-id bits.
    ///
    /// Fails on the first entry that cannot be changed.
    pub fn apply(&self, copy: &Path) -> anyhow::Result<()> {
        for entry in WalkDir::new(copy).contents_first(true) {
            let entry = entry.with_context(|| format!("cannot read {}", copy.display()))?;
            let kind = entry.file_type();
            if kind.is_symlink() {
                continue;
            }
            let inside = entry.path().strip_prefix(copy).unwrap_or(entry.path());
            let wanted = match self.by_path.get(inside) {
                Some(access) if access.dir == kind.is_dir() => *access,
                _ if kind.is_dir() => self.dir,
                _ => self.file,
            };
            let path = entry.path();
            let failed = |what: &str| format!("cannot {what} {}", path.display());
            let meta = entry.metadata().with_context(|| failed("read"))?;
            if (meta.uid(), meta.gid()) != (wanted.uid, wanted.gid) {
                std::os::unix::fs::lchown(path, Some(wanted.uid), Some(wanted.gid))
                    .with_context(|| failed("give the owner of the original to"))?;
            }
            fs::set_permissions(path, fs::Permissions::from_mode(wanted.mode))
                .with_context(|| failed("give the mode of the original to"))?;
        }
        Ok(())
    }
}

/// Waits, a few seconds at most, until nobody holds sled's lock on the
/// database at `db`: this process's last handle has closed its files.
fn wait_closed(db: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(db.join("db"))
    else {
        return;
    };
    for _ in 0..500 {
        if file.try_lock().is_ok() {
            let _ = file.unlock();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
