//! The local backend: today's files, written the way `ops_shared::atomic`
//! writes them (temporary name, fsync, rename, directory fsync).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::Path;

use jiff::Timestamp;
use ops_shared::atomic::AtomicFile;

use crate::{Mode, Object, Upload};

pub fn list(dir: &Path) -> io::Result<Vec<Object>> {
    let mut objects = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // A run beside us may rename or remove its file meanwhile.
        let meta = match entry.metadata() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            meta => meta?,
        };
        objects.push(object(name, &meta));
    }
    Ok(objects)
}

pub fn list_deep(dir: &Path) -> io::Result<Vec<Object>> {
    let mut objects = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = match entry {
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                continue
            }
            entry => entry.map_err(io::Error::from)?,
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let Some(name) = entry.path().strip_prefix(dir).ok().and_then(Path::to_str) else {
            continue;
        };
        let meta = match entry.metadata() {
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                continue
            }
            meta => meta.map_err(io::Error::from)?,
        };
        objects.push(object(name.to_owned(), &meta));
    }
    Ok(objects)
}

pub fn stat(path: &Path) -> io::Result<Option<Object>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Some(object(name, &meta)))
}

fn object(name: String, meta: &fs::Metadata) -> Object {
    Object {
        name,
        size: meta.len(),
        modified: meta
            .modified()
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok()),
        regular: meta.is_file(),
    }
}

pub fn read_ends(path: &Path, head: u64, tail: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut file = ops_shared::open::regular_file(path)?;
    let mut first = Vec::new();
    (&mut file).take(head).read_to_end(&mut first)?;
    let len = file.metadata()?.len();
    let tail = tail.min(len);
    file.seek(SeekFrom::Start(len - tail))?;
    let mut last = Vec::new();
    file.take(tail).read_to_end(&mut last)?;
    Ok((first, last))
}

pub fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    let file = ops_shared::open::regular_file(path)?;
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], offset + read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    bytes.truncate(read);
    Ok(bytes)
}

pub fn create(path: &Path, mode: Mode) -> io::Result<Box<dyn Upload>> {
    let file = match mode {
        Mode::New => AtomicFile::create_new(path)?,
        Mode::Replace => AtomicFile::replace(path)?,
    };
    Ok(Box::new(LocalUpload(file)))
}

/// Creates the directory if missing; a run that creates it at the same
/// moment is no failure.
pub fn prepare(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(err) => Err(err),
    }
}

struct LocalUpload(AtomicFile);

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.file().flush()
    }
}

impl Upload for LocalUpload {
    fn commit(self: Box<Self>) -> io::Result<()> {
        self.0.commit()
    }
}
