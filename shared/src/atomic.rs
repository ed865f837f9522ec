//! Nothing half-written ever looks finished.
//!
//! A file is written under a temporary name in its target directory (always
//! ending in [`TEMP_SUFFIX`], owner-only), fsynced, renamed into place, and
//! the directory fsynced. If the writer fails or is dropped the temporary
//! file is removed; after a crash or `kill -9` only the temporary file is
//! left, which `ops-backup list` and ops-health recognise by its suffix.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Every temporary name ends with this.
pub const TEMP_SUFFIX: &str = ".ops-tmp";

/// Whether a file name is one of our temporary names.
pub fn is_temp(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().ends_with(TEMP_SUFFIX.as_bytes())
}

/// A file being written that appears under its final name only on commit.
pub struct AtomicFile {
    file: File,
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
        if target.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "target exists",
            ));
        }
        let temp = with_suffix(target, TEMP_SUFFIX);
        Self::open(target, temp, true)
    }

    /// Writes `target`, replacing it on commit if it exists.
    pub fn replace(target: &Path) -> io::Result<Self> {
        let temp = with_suffix(target, &format!(".{}{TEMP_SUFFIX}", std::process::id()));
        let _ = fs::remove_file(&temp);
        Self::open(target, temp, false)
    }

    fn open(target: &Path, temp: PathBuf, exclusive: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(AtomicFile {
            file,
            _interrupt: crate::interrupt::remove_on_interrupt(&temp),
            temp,
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

    /// Makes the file durable under its final name.
    ///
    /// Fails on I/O errors (a full disk shows up here at the latest), and for
    /// a reserved file with `AlreadyExists` if something took its name.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        if self.exclusive {
            fs::hard_link(&self.temp, &self.target)?;
            fs::remove_file(&self.temp)?;
        } else {
            fs::rename(&self.temp, &self.target)?;
        }
        self.committed = true;
        sync_dir(&self.target)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `target` atomically, replacing it.
pub fn write_replace(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::replace(target)?;
    io::Write::write_all(file.file(), bytes)?;
    file.commit()
}

/// Fsyncs the directory that holds `path`, so a rename in it is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
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
}
