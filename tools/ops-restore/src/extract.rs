//! Writing checked entries to disk, never outside the target.
//!
//! Entry paths keep the archive reader's rules ([`ops_backup::restorable_path`],
//! checked there for every entry before it reaches this sink). Symlinks are
//! created only after every other entry, so no entry can be written through
//! a link the archive just made; each symlink's own parent is checked to be
//! a real directory. Directory owners, permissions and times are applied
//! last, deepest first, so a read-only directory can still be filled.
//! Owners are restored as recorded when root, before modes, and no setuid
//! or setgid bit survives on a file whose owner is not the recorded one
//! ([`ops_shared::owner`]); files keep their holes ([`SparseWriter`]).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use ops_backup::manifest::{Entry, Kind};
use ops_backup::{restorable_path, EntrySink, Restorer};
use ops_shared::owner;
use ops_shared::sparse::SparseWriter;

/// A directory's metadata, applied at the end.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Extracts into `root`, which must be a new, empty directory.
pub struct Extractor {
    root: PathBuf,
    known_dirs: HashSet<PathBuf>,
    dirs: Vec<DirMeta>,
    symlinks: Vec<(PathBuf, Entry)>,
    buffer: Vec<u8>,
    as_root: bool,
    entries: u64,
    bytes: u64,
}

impl Extractor {
    pub fn new(root: &Path) -> Self {
        Extractor {
            root: root.to_owned(),
            known_dirs: HashSet::new(),
            dirs: Vec::new(),
            symlinks: Vec::new(),
            buffer: vec![0; 1 << 20],
            as_root: owner::as_root(),
            entries: 0,
            bytes: 0,
        }
    }

    /// Creates the deferred symlinks and applies directory metadata.
    ///
    /// Fails if a symlink would be created through another symlink.
    fn finish_links_and_dirs(&mut self) -> io::Result<()> {
        for (path, entry) in std::mem::take(&mut self.symlinks) {
            self.check_parents(&path)?;
            let dest = self.root.join(&path);
            let target = entry.target.clone().unwrap_or_default();
            std::os::unix::fs::symlink(&target, &dest)?;
            owner::restore_symlink(&dest, entry.uid, entry.gid, self.as_root)?;
            let time = FileTime::from_unix_time(entry.mtime as i64, 0);
            filetime::set_symlink_file_times(&dest, time, time)?;
        }
        for dir in std::mem::take(&mut self.dirs).into_iter().rev() {
            let handle = owner::open_dir(&self.root.join(&dir.path))?;
            owner::restore(&handle, dir.uid, dir.gid, dir.mode, self.as_root)?;
            set_mtime(&handle, dir.mtime)?;
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
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)?;
        let mut sparse = SparseWriter::new(&file);
        loop {
            let n = match content.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            sparse.write_all(&self.buffer[..n])?;
            self.bytes += n as u64;
        }
        sparse.finish()?;
        owner::restore(&file, entry.uid, entry.gid, entry.mode, self.as_root)?;
        set_mtime(&file, entry.mtime)
    }
}

impl Restorer for Extractor {
    fn finish(&mut self) -> io::Result<(u64, u64)> {
        self.finish_links_and_dirs()?;
        Ok((self.entries, self.bytes))
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
                self.dirs.push(DirMeta {
                    path: relative,
                    mode: entry.mode,
                    mtime: entry.mtime,
                    uid: entry.uid,
                    gid: entry.gid,
                });
            }
            Kind::File => self.write_file(&dest, entry, content)?,
            Kind::Symlink => self.symlinks.push((relative, entry.clone())),
            Kind::Hardlink => {
                let target = safe_relative(entry.target.as_deref().unwrap_or(Path::new("")))?;
                fs::hard_link(self.root.join(target), &dest)?;
            }
        }
        Ok(())
    }
}

/// `path` under the target, by the archive reader's own rules.
fn safe_relative(path: &Path) -> io::Result<PathBuf> {
    restorable_path(path).map_err(|why| escape(path, &why))
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
