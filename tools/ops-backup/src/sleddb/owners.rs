//! Owner, group and mode of a database's directory and files, given back
//! after we opened it (sled writes files whenever a database is opened or
//! closed) and carried over to a rebuilt copy. The application that owns
//! the database must be able to open it after root's backup, health check
//! or maintenance, and nobody else newly able to read it: sled creates its
//! files with the owner and umask of whoever runs it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
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
    /// set-id bits. Entries are reached through directories opened without
    /// following links, so a name swapped for a link meanwhile changes
    /// nothing outside the copy; links themselves are left alone.
    ///
    /// Fails on the first entry that cannot be changed.
    pub fn apply(&self, copy: &Path) -> anyhow::Result<()> {
        let top = ops_shared::owner::open_dir(copy)
            .with_context(|| format!("cannot open {}", copy.display()))?;
        self.apply_inside(&top, copy, Path::new(""))?;
        self.give(&top, Path::new(""), true).with_context(|| {
            format!(
                "cannot give the owner and mode of the original to {}",
                copy.display()
            )
        })
    }

    fn apply_inside(&self, dir: &File, copy: &Path, inside: &Path) -> anyhow::Result<()> {
        use rustix::fs::{Dir, FileType, Mode, OFlags};
        let failed = |name: &Path| {
            format!(
                "cannot give the owner and mode of the original to {}",
                copy.join(name).display()
            )
        };
        let entries = Dir::read_from(dir).with_context(|| failed(inside))?;
        for entry in entries {
            let entry = entry.with_context(|| failed(inside))?;
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let path = inside.join(name);
            let is_dir = match entry.file_type() {
                FileType::Directory => true,
                FileType::RegularFile => false,
                _ => continue,
            };
            let base = if is_dir {
                OFlags::DIRECTORY
            } else {
                OFlags::NONBLOCK
            };
            let flags = base | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let opened = rustix::fs::openat(dir, name, flags, Mode::empty());
            let Ok(opened) = opened else {
                // Gone, or no longer what it was: nothing of ours to change.
                continue;
            };
            let opened = File::from(opened);
            if opened.metadata().with_context(|| failed(&path))?.is_dir() != is_dir {
                continue;
            }
            if is_dir {
                self.apply_inside(&opened, copy, &path)?;
            }
            self.give(&opened, &path, is_dir)
                .with_context(|| failed(&path))?;
        }
        Ok(())
    }

    /// Sets the owner and mode the original had at `inside` on `file`.
    fn give(&self, file: &File, inside: &Path, is_dir: bool) -> std::io::Result<()> {
        let wanted = match self.by_path.get(inside) {
            Some(access) if access.dir == is_dir => *access,
            _ if is_dir => self.dir,
            _ => self.file,
        };
        let meta = file.metadata()?;
        let chowned = (meta.uid(), meta.gid()) != (wanted.uid, wanted.gid);
        if chowned {
            std::os::unix::fs::fchown(file, Some(wanted.uid), Some(wanted.gid))?;
        }
        if chowned || meta.mode() & 0o7777 != wanted.mode {
            file.set_permissions(fs::Permissions::from_mode(wanted.mode))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_swapped_for_a_link_meanwhile_changes_nothing_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let (original, copy) = (tmp.path().join("original"), tmp.path().join("copy"));
        for dir in [&original, &copy] {
            fs::create_dir(dir).unwrap();
            fs::write(dir.join("db"), b"x").unwrap();
        }
        fs::set_permissions(original.join("db"), fs::Permissions::from_mode(0o640)).unwrap();
        let owners = Owners::read(&original).unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"secret").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let (name, spare) = (copy.join("db"), copy.join("spare"));
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs::remove_file(&spare);
                    std::os::unix::fs::symlink(&outside, &spare).unwrap();
                    let _ = fs::rename(&spare, &name);
                    fs::write(&spare, b"x").unwrap();
                    let _ = fs::rename(&spare, &name);
                }
            });
            for _ in 0..2000 {
                owners.apply(&copy).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mode = fs::metadata(&outside).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600, "a file outside the copy was changed");
    }
}
