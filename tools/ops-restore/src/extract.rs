//! Writing checked entries to disk, never outside the target.
//!
//! Every entry path must be relative and free of `..`. Symlinks are created
//! only after every other entry, so no entry can be written through a link
//! the archive just made; each symlink's own parent is checked to be a real
//! directory. Directory permissions and times are applied last, deepest
//! first, so a read-only directory can still be filled.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use ops_backup::archive::EntrySink;
use ops_backup::manifest::{Entry, Kind};

/// Extracts into `root`, which must be a new, empty directory.
pub struct Extractor {
    root: PathBuf,
    known_dirs: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, u32, u64)>,
    symlinks: Vec<(PathBuf, PathBuf, u64)>,
    buffer: Vec<u8>,
    pub entries: u64,
    pub bytes: u64,
}

impl Extractor {
    pub fn new(root: &Path) -> Self {
        Extractor {
            root: root.to_owned(),
            known_dirs: HashSet::new(),
            dirs: Vec::new(),
            symlinks: Vec::new(),
            buffer: vec![0; 1 << 20],
            entries: 0,
            bytes: 0,
        }
    }

    /// Creates the deferred symlinks and applies directory metadata.
    ///
    /// Fails if a symlink would be created through another symlink.
    pub fn finish(&mut self) -> io::Result<()> {
        for (path, target, mtime) in std::mem::take(&mut self.symlinks) {
            self.check_parents(&path)?;
            let dest = self.root.join(&path);
            std::os::unix::fs::symlink(&target, &dest)?;
            let time = FileTime::from_unix_time(mtime as i64, 0);
            filetime::set_symlink_file_times(&dest, time, time)?;
        }
        for (path, mode, mtime) in std::mem::take(&mut self.dirs).into_iter().rev() {
            let dest = self.root.join(&path);
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
            let time = FileTime::from_unix_time(mtime as i64, 0);
            filetime::set_file_times(&dest, time, time)?;
        }
        Ok(())
    }

    fn check_parents(&self, relative: &Path) -> io::Result<()> {
        let mut dir = self.root.clone();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            dir.push(component);
            if !fs::symlink_metadata(&dir)?.is_dir() {
                return Err(escape(relative, "passes through a symlink or file"));
            }
        }
        Ok(())
    }

    fn write_file(&mut self, dest: &Path, entry: &Entry, content: &mut dyn Read) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)?;
        loop {
            let n = match content.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            file.write_all(&self.buffer[..n])?;
            self.bytes += n as u64;
        }
        file.set_permissions(fs::Permissions::from_mode(entry.mode))?;
        set_mtime(&file, entry.mtime)
    }
}

impl EntrySink for Extractor {
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> io::Result<()> {
        let relative = safe_relative(&entry.path)?;
        let dest = self.root.join(&relative);
        if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !self.known_dirs.contains(parent) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(self.root.join(parent))?;
                self.known_dirs.insert(parent.to_owned());
            }
        }
        self.entries += 1;
        match entry.kind {
            Kind::Dir => {
                match fs::DirBuilder::new().mode(0o700).create(&dest) {
                    Err(err) if err.kind() != io::ErrorKind::AlreadyExists || !dest.is_dir() => {
                        return Err(err)
                    }
                    _ => {}
                }
                self.known_dirs.insert(relative.clone());
                self.dirs.push((relative, entry.mode, entry.mtime));
            }
            Kind::File => self.write_file(&dest, entry, content)?,
            Kind::Symlink => {
                let target = entry.target.clone().unwrap_or_default();
                self.symlinks.push((relative, target, entry.mtime));
            }
            Kind::Hardlink => {
                let target = safe_relative(entry.target.as_deref().unwrap_or(Path::new("")))?;
                fs::hard_link(self.root.join(target), &dest)?;
            }
        }
        Ok(())
    }
}

/// `path` if it stays inside the target: relative, no `..`, not empty.
fn safe_relative(path: &Path) -> io::Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape(path, "is absolute or contains .."))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(escape(path, "is empty"));
    }
    Ok(clean)
}

fn escape(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "archive entry {} {why}; refusing to write outside the target",
            path.display()
        ),
    )
}

fn set_mtime(file: &File, mtime: u64) -> io::Result<()> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    file.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))
}
