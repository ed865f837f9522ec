//! Where backups and snapshot repositories live: a local directory or a
//! prefix in an S3-compatible bucket, behind one small interface.
//!
//! Places are named by paths, and a path that starts with `s3://` names an
//! object: `s3://BUCKET/PREFIX/NAME`. That keeps records, manifests and
//! every caller's `Path` arithmetic (`join`, `parent`, `file_name`) as they
//! are, and lets each format's owner read and write through the same five
//! calls whatever the backend: [`list`], [`open`], [`create`] (visible only
//! once committed), [`delete`] and [`stat`]. The backends know no format.
//!
//! Local paths keep today's behaviour: reads follow no link and accept only
//! regular files (`ops_shared::open`), writes go to a temporary name and
//! are renamed into place after an fsync (`ops_shared::atomic`).

mod local;
mod lock;
mod place;
mod s3;
mod uploads;

use std::io::{self, Read, Write};
use std::path::Path;

use jiff::Timestamp;

pub use lock::{lock, PlaceLock, STALE_AFTER};
pub use place::{ObjectPath, Place};
pub use uploads::Unfinished;

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The name inside the listed place (no `/`).
    pub name: String,
    pub size: u64,
    pub modified: Option<Timestamp>,
    /// A regular file (local) or an object (S3); links, directories and
    /// special files are listed with `false` so callers can report them.
    pub regular: bool,
}

/// Whether a new object may take the place of an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Fails with `AlreadyExists` if the name is taken (locally; on S3 the
    /// check is made before the upload starts).
    New,
    /// Replaces what is there when committed.
    Replace,
}

/// An object being written: invisible under its name until
/// [`Upload::commit`]; dropped uncommitted, it is discarded.
pub trait Upload: Write + Send {
    /// Makes everything written durable and visible under the name.
    fn commit(self: Box<Self>) -> io::Result<()>;
}

/// Whether `path` names a place in object storage.
pub fn is_remote(path: &Path) -> bool {
    place::is_s3(path)
}

/// The objects directly in the place `dir`, sorted by name.
///
/// Fails if the place does not exist or cannot be read.
pub fn list(dir: &Path) -> io::Result<Vec<Object>> {
    let mut objects = match Place::of(dir)? {
        Place::Local(path) => local::list(&path)?,
        Place::S3(place) => s3::list(&place)?,
    };
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}

/// Every object below the place `dir`, at any depth, sorted by name; names
/// are relative to `dir` with `/` between segments. Locally, links are
/// listed (not followed) and directories are not listed.
///
/// Fails if the place does not exist or cannot be read.
pub fn list_deep(dir: &Path) -> io::Result<Vec<Object>> {
    let mut objects = match Place::of(dir)? {
        Place::Local(path) => local::list_deep(&path)?,
        Place::S3(place) => s3::list_deep(&place)?,
    };
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}

/// Reads the object or regular file at `path` as a stream.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    match Place::of(path)? {
        Place::Local(path) => Ok(Box::new(ops_shared::open::regular_file(&path)?)),
        Place::S3(place) => s3::open(&place),
    }
}

/// Reads a whole small object, refusing one larger than `max` bytes.
pub fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {max} bytes such a file may have"),
        ));
    }
    Ok(bytes)
}

/// The first `head` and the last `tail` bytes of the object at `path` (they
/// overlap when it is shorter than both), without reading what lies between.
pub fn read_ends(path: &Path, head: u64, tail: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
    match Place::of(path)? {
        Place::Local(path) => local::read_ends(&path, head, tail),
        Place::S3(place) => s3::read_ends(&place, head, tail),
    }
}

/// Exactly `len` bytes of the object at `path` from `offset`; fewer there
/// is an `UnexpectedEof` error.
pub fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let bytes = match Place::of(path)? {
        Place::Local(path) => local::read_range(&path, offset, len)?,
        Place::S3(place) => s3::read_range(&place, offset, len)?,
    };
    if bytes.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: {} of {len} bytes at offset {offset} (cut short)",
                path.display(),
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Starts writing `path`; nothing appears under its name before commit.
pub fn create(path: &Path, mode: Mode) -> io::Result<Box<dyn Upload>> {
    match Place::of(path)? {
        Place::Local(path) => local::create(&path, mode),
        Place::S3(place) => s3::create(&place, mode),
    }
}

/// Writes `bytes` to `path` and commits them: in a bucket, one request
/// (no multipart upload, no copy of the bytes).
pub fn write(path: &Path, mode: Mode, bytes: Vec<u8>) -> io::Result<()> {
    match Place::of(path)? {
        Place::Local(_) => {
            let mut upload = create(path, mode)?;
            upload.write_all(&bytes)?;
            upload.commit()
        }
        Place::S3(place) => s3::write(&place, mode, bytes),
    }
}

/// Removes the object or file at `path` (never a directory), durably;
/// nothing there is no failure.
pub fn delete(path: &Path) -> io::Result<()> {
    match Place::of(path)? {
        Place::Local(path) => match std::fs::remove_file(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
            Ok(()) => ops_shared::atomic::sync_dir(&path),
        },
        Place::S3(place) => s3::delete(&place),
    }
}

/// What is at `path`, without following a link; `None` if nothing is.
pub fn stat(path: &Path) -> io::Result<Option<Object>> {
    match Place::of(path)? {
        Place::Local(path) => local::stat(&path),
        Place::S3(place) => s3::stat(&place),
    }
}

/// Whether something (a file, directory or object) is at `path`; local
/// paths follow links, as `Path::exists` does.
///
/// Fails when the place cannot be asked (a bad `s3://` path, no server).
pub fn exists(path: &Path) -> io::Result<bool> {
    Ok(match Place::of(path)? {
        Place::Local(path) => path.exists(),
        Place::S3(place) => s3::stat(&place)?.is_some(),
    })
}

/// Whether a file (local paths follow links, as `Path::is_file` does) or an
/// object is at `path`.
pub fn is_object(path: &Path) -> io::Result<bool> {
    Ok(match Place::of(path)? {
        Place::Local(path) => path.is_file(),
        Place::S3(place) => s3::stat(&place)?.is_some_and(|object| object.regular),
    })
}

/// Whether `path` names a place that holds objects rather than one object:
/// a local directory, or an S3 key where no object is (a prefix).
pub fn is_place(path: &Path) -> io::Result<bool> {
    Ok(match Place::of(path)? {
        Place::Local(path) => path.is_dir(),
        Place::S3(place) => place.key.is_empty() || s3::stat(&place)?.is_none(),
    })
}

/// The uploads to objects directly in `dir` that were started and never
/// finished (a run killed mid-upload); a local directory has none (its
/// temporary files are listed by [`list`]).
pub fn unfinished(dir: &Path) -> io::Result<Vec<Unfinished>> {
    match Place::of(dir)? {
        Place::Local(_) => Ok(Vec::new()),
        Place::S3(place) => uploads::list(&place),
    }
}

/// Aborts an unfinished upload found by [`unfinished`] in `dir`.
pub fn abort(dir: &Path, upload: &Unfinished) -> io::Result<()> {
    match Place::of(dir)? {
        Place::Local(_) => Ok(()),
        Place::S3(place) => uploads::abort(&place, upload),
    }
}

/// Makes the place `dir` ready to be written: a local directory is created
/// (mode 0700) if missing; a bucket must exist already and is never created.
pub fn prepare(dir: &Path) -> io::Result<()> {
    match Place::of(dir)? {
        Place::Local(path) => local::prepare(&path),
        Place::S3(place) => s3::list(&place).map(drop),
    }
}
