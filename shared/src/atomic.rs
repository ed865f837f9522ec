//! Nothing half-written ever looks finished.
//!
//! A file is written under a temporary name in its target directory (always
//! ending in [`TEMP_SUFFIX`], owner-only), fsynced, renamed into place, and
//! the directory fsynced. If the writer fails or is dropped the temporary
//! file is removed; after a crash or `kill -9` only the temporary file is
//! left, which `ops-backup list` and ops-health recognise by its suffix.
//! Everything after the directory is opened happens relative to it, without
//! following links (see [`AtomicFile`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Every temporary name ends with this.
pub const TEMP_SUFFIX: &str = ".ops-tmp";

/// Whether a file name is one of our temporary names.
pub fn is_temp(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().ends_with(TEMP_SUFFIX.as_bytes())
}

/// A file being written that appears under its final name only on commit.
///
/// Its directory is opened once and every later step (create, rename, link,
/// unlink, fsync) is relative to that descriptor, without following links:
/// the directory may be writable by others, who could otherwise plant a
/// link or swap the directory while we write.
pub struct AtomicFile {
    file: File,
    dir: OwnedFd,
    temp_name: OsString,
    target_name: OsString,
    temp: PathBuf,
    target: PathBuf,
    exclusive: bool,
    committed: bool,
    _interrupt: crate::interrupt::Guard,
}

impl AtomicFile {
    /// Reserves `target`: its temporary name is `<target>.ops-tmp`, created
    /// exclusively, so two writers can never pick the same name.
    ///
    /// Fails with `AlreadyExists` if `target` or its temporary name exists.
    pub fn create_new(target: &Path) -> io::Result<Self> {
        let (dir, name) = open_parent(target)?;
        if rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "target exists",
            ));
        }
        Self::open(dir, target, TEMP_SUFFIX, true)
    }

    /// Writes `target`, replacing it on commit if it exists.
    pub fn replace(target: &Path) -> io::Result<Self> {
        let (dir, name) = open_parent(target)?;
        let suffix = format!(".{}{TEMP_SUFFIX}", std::process::id());
        let _ = rustix::fs::unlinkat(&dir, suffixed(name, &suffix), AtFlags::empty());
        Self::open(dir, target, &suffix, false)
    }

    fn open(dir: OwnedFd, target: &Path, suffix: &str, exclusive: bool) -> io::Result<Self> {
        let target_name = target
            .file_name()
            .ok_or_else(|| no_file_name(target))?
            .to_owned();
        let temp_name = suffixed(&target_name, suffix);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, &temp_name, flags, Mode::from_raw_mode(0o600))?;
        let (undo_dir, undo_name) = (dir.try_clone()?, temp_name.clone());
        let interrupt = crate::interrupt::on_interrupt(move || {
            let _ = rustix::fs::unlinkat(&undo_dir, &undo_name, AtFlags::empty());
            None
        });
        Ok(AtomicFile {
            file: File::from(fd),
            _interrupt: interrupt,
            dir,
            temp_name,
            target_name,
            temp: with_suffix(target, suffix),
            target: target.to_owned(),
            exclusive,
            committed: false,
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary name, for messages.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Gives the file the owner, group and permission bits of the file it
    /// will replace (setuid, setgid and sticky bits dropped), or `new_mode`
    /// if there is none: what we rewrite in place stays readable by whoever
    /// read it before. An owner we may not give (not running as root) stays
    /// ours, with a warning.
    ///
    /// Fails when the temporary file cannot be changed.
    pub fn keep_metadata(&mut self, new_mode: u32) -> io::Result<()> {
        let target = self.target_name.clone();
        self.take_metadata(&[&target], new_mode)
    }

    /// Gives the file the owner, group and mode of `sibling`, a regular file
    /// beside it (else those of the file it replaces, else `new_mode`): a
    /// result written beside a backup is readable by whoever reads the backup.
    ///
    /// Fails when the temporary file cannot be changed.
    pub fn take_metadata_of(&mut self, sibling: &OsStr, new_mode: u32) -> io::Result<()> {
        let target = self.target_name.clone();
        self.take_metadata(&[sibling, &target], new_mode)
    }

    fn take_metadata(&mut self, names: &[&OsStr], new_mode: u32) -> io::Result<()> {
        let old = names.iter().find_map(|name| {
            rustix::fs::statat(&self.dir, *name, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .filter(|old| FileType::from_raw_mode(old.st_mode) == FileType::RegularFile)
        });
        let Some(old) = old else {
            return Ok(rustix::fs::fchmod(
                &self.file,
                Mode::from_raw_mode(new_mode),
            )?);
        };
        let mine = rustix::fs::fstat(&self.file)?;
        if (mine.st_uid, mine.st_gid) != (old.st_uid, old.st_gid) {
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(old.st_uid),
                rustix::fs::Gid::from_raw(old.st_gid),
            );
            match rustix::fs::fchown(&self.file, Some(uid), Some(gid)) {
                Ok(()) => {}
                Err(rustix::io::Errno::PERM) => crate::entry::warn(format!(
                    "{} was owned by uid {} gid {}; only root can keep that, so it is now ours",
                    self.target.display(),
                    old.st_uid,
                    old.st_gid
                )),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(rustix::fs::fchmod(
            &self.file,
            Mode::from_raw_mode(old.st_mode & 0o777),
        )?)
    }

    /// Makes the file durable under its final name.
    ///
    /// Fails on I/O errors (a full disk shows up here at the latest), and for
    /// a reserved file with `AlreadyExists` if something took its name.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        if self.exclusive {
            rustix::fs::linkat(
                &self.dir,
                &self.temp_name,
                &self.dir,
                &self.target_name,
                AtFlags::empty(),
            )?;
            rustix::fs::unlinkat(&self.dir, &self.temp_name, AtFlags::empty())?;
        } else {
            rustix::fs::renameat(&self.dir, &self.temp_name, &self.dir, &self.target_name)?;
        }
        self.committed = true;
        Ok(rustix::fs::fsync(&self.dir)?)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.temp_name, AtFlags::empty());
        }
    }
}

/// Writes `bytes` to `target` atomically, replacing it.
pub fn write_replace(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::replace(target)?;
    io::Write::write_all(file.file(), bytes)?;
    file.commit()
}

/// Writes `bytes` to `target` atomically; a file it replaces keeps its
/// owner, group and mode, a new one gets `new_mode` (see
/// [`AtomicFile::keep_metadata`]).
pub fn write_replace_keeping(target: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    let mut file = AtomicFile::replace(target)?;
    io::Write::write_all(file.file(), bytes)?;
    file.keep_metadata(new_mode)?;
    file.commit()
}

/// Opens the directory `path` (following links: it is a place we were
/// given), for `openat`-style work inside it.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

/// Fsyncs the directory that holds `path`, so a rename in it is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::from(open_dir(parent(path))?).sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn open_parent(target: &Path) -> io::Result<(OwnedFd, &OsStr)> {
    let name = target.file_name().ok_or_else(|| no_file_name(target))?;
    Ok((open_dir(parent(target))?, name))
}

fn no_file_name(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} does not name a file", path.display()),
    )
}

fn suffixed(name: &OsStr, suffix: &str) -> OsString {
    let mut name = name.to_owned();
    name.push(suffix);
    name
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn nothing_appears_under_the_final_name_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar.zst");
        let mut file = AtomicFile::create_new(&target).unwrap();
        file.file().write_all(b"data").unwrap();
        assert!(!target.exists());
        assert!(is_temp(file.temp_path().file_name().unwrap()));
        file.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"data");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        drop(AtomicFile::create_new(&target).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_reserved_name_cannot_be_reserved_twice() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        let _first = AtomicFile::create_new(&target).unwrap();
        let second = AtomicFile::create_new(&target).err().unwrap();
        assert_eq!(second.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn replace_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("v.json");
        write_replace(&target, b"1").unwrap();
        write_replace(&target, b"2").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"2");
    }

    /// The directory is swapped for a link to another one while we write:
    /// commit and cleanup stay in the directory we opened.
    fn swap_dir(dir: &Path, other: &Path) -> PathBuf {
        let moved = dir.with_extension("moved");
        fs::rename(dir, &moved).unwrap();
        std::os::unix::fs::symlink(other, dir).unwrap();
        moved
    }

    #[test]
    fn a_commit_after_the_directory_was_swapped_lands_in_the_opened_one() {
        let root = tempfile::tempdir().unwrap();
        let (dir, other) = (root.path().join("dir"), root.path().join("other"));
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&other).unwrap();
        fs::write(other.join("a.ops-tmp"), "planted").unwrap();
        let mut file = AtomicFile::create_new(&dir.join("a")).unwrap();
        file.file().write_all(b"ours").unwrap();
        let moved = swap_dir(&dir, &other);
        file.commit().unwrap();
        assert_eq!(fs::read(moved.join("a")).unwrap(), b"ours");
        assert!(!other.join("a").exists());
        assert_eq!(fs::read(other.join("a.ops-tmp")).unwrap(), b"planted");
    }

    #[test]
    fn a_dropped_writer_removes_nothing_outside_its_directory() {
        let root = tempfile::tempdir().unwrap();
        let (dir, other) = (root.path().join("dir"), root.path().join("other"));
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&other).unwrap();
        let temp = format!("v.json.{}{TEMP_SUFFIX}", std::process::id());
        fs::write(other.join(&temp), "someone else's").unwrap();
        let file = AtomicFile::replace(&dir.join("v.json")).unwrap();
        let moved = swap_dir(&dir, &other);
        drop(file);
        assert!(other.join(&temp).exists());
        assert_eq!(fs::read_dir(&moved).unwrap().count(), 0);
    }

    #[test]
    fn a_planted_link_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let target = dir.path().join("a");
        std::os::unix::fs::symlink(&victim, with_suffix(&target, TEMP_SUFFIX)).unwrap();
        assert!(AtomicFile::create_new(&target).is_err());
        let temp = with_suffix(&target, &format!(".{}{TEMP_SUFFIX}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        write_replace(&target, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_replaced_file_keeps_its_owner_and_mode_and_a_new_one_gets_the_given_mode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ops.prom");
        write_replace_keeping(&target, b"1", 0o644).unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o644);
        fs::set_permissions(&target, fs::Permissions::from_mode(0o4640)).unwrap();
        let chowned = std::os::unix::fs::chown(&target, Some(54321), Some(54322)).is_ok();
        write_replace_keeping(&target, b"2", 0o644).unwrap();
        let meta = fs::metadata(&target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"2");
        assert_eq!(meta.mode() & 0o7777, 0o640, "setuid dropped, the rest kept");
        if chowned {
            assert_eq!((meta.uid(), meta.gid()), (54321, 54322));
        }
    }
}
