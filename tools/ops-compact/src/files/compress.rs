//! Compressing one file to FILE.zst so that nothing half-written ever
//! looks finished and nothing is lost: the compressed copy is written under
//! a temporary name beside it (FILE.zst.ops-tmp, locked while this run
//! works on it, so a leftover of a run that died is recognised and
//! replaced), given the original's mode, owner and times, fsynced, read back,
//! decompressed and compared byte for byte, and only then renamed to its
//! name, never over an existing file; the directory is fsynced, and the
//! original is removed last, only if it is still the file that was
//! compressed.
//!
//! The removals of originals are made durable once per directory at the end
//! of a run ([`Codec::sync_dirs`]): if a crash loses one, or comes between
//! the rename and the removal, both the original and FILE.zst are there and
//! nothing is lost. The next run recognises such a FILE.zst (the original's
//! mode, owner and times) and finishes the job once it decompresses to the
//! original's bytes; any other FILE.zst is left alone, and so is FILE.

use std::collections::HashSet;
use std::fs::{self, File, FileTimes, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ops_shared::atomic::{sync_dir, with_suffix, TEMP_SUFFIX};
use ops_shared::read::read_full;

use super::plan::Candidate;
use crate::failpoint::failpoint;

/// Files up to this size are compressed and checked in memory; larger ones
/// are streamed, so memory stays bounded.
const IN_MEMORY: u64 = 16 << 20;
const CHUNK: usize = 1 << 20;

/// How one file ended.
#[derive(Debug)]
pub enum Outcome {
    /// FILE.zst is in place, the original gone; its size.
    Compressed { after_bytes: u64 },
    /// Left alone, and why (it changed, or FILE.zst appeared meanwhile).
    Skipped(String),
}

/// Why a file could not be compressed. The original is left in place.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("cannot {what} {path}: {error}")]
    Io {
        what: &'static str,
        path: String,
        error: io::Error,
    },
    #[error(
        "the compressed copy of {0} does not decompress to the same bytes; the original is kept"
    )]
    Mismatch(String),
    #[error("not compressed: zstd could not set up its compressor")]
    NotRun,
}

/// A zstd compressor and decompressor with their buffers, reused from file
/// to file by one worker.
pub struct Codec {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
    data: Vec<u8>,
    packed: Vec<u8>,
    unpacked: Vec<u8>,
    /// Directories whose removals are not yet durable.
    dirs: HashSet<PathBuf>,
}

/// The temporary file, removed unless it was renamed into place.
struct Temp<'a> {
    path: &'a Path,
    file: File,
    kept: bool,
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(self.path);
        }
    }
}

impl Codec {
    /// Fails only when zstd cannot allocate its contexts.
    pub fn new(level: i32) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        // Like the zstd CLI: a content checksum, so `zstd -t` checks the data.
        compressor.include_checksum(true)?;
        Ok(Codec {
            level,
            compressor,
            decompressor: zstd::bulk::Decompressor::new()?,
            data: Vec::new(),
            packed: Vec::new(),
            unpacked: Vec::new(),
            dirs: HashSet::new(),
        })
    }

    /// Compresses `candidate` in place (see the module docs).
    ///
    /// Fails, leaving the original untouched and no FILE.zst behind, on an
    /// I/O error or if the copy does not decompress to the original.
    pub fn compress(&mut self, candidate: &Candidate) -> Result<Outcome, CompressError> {
        let path = &candidate.path;
        let shown = path.display().to_string();
        let io = |what: &'static str| {
            let shown = shown.clone();
            move |error| CompressError::Io {
                what,
                path: shown,
                error,
            }
        };
        let mut source = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io("open"))?;
        let before = source.metadata().map_err(io("read"))?;
        if !same_file(&before, &candidate.meta) {
            return Ok(Outcome::Skipped("changed since it was looked at".into()));
        }
        let target = candidate.output();
        if fs::symlink_metadata(&target).is_ok() {
            return self.finish_leftover(candidate, &source, &before, &target);
        }
        let temp_path = with_suffix(&target, TEMP_SUFFIX);
        let file = match create_temp(&temp_path) {
            Ok(Some(file)) => file,
            Ok(None) => {
                return Ok(Outcome::Skipped(format!(
                    "another ops-compact is compressing it ({} is locked)",
                    temp_path.display()
                )));
            }
            Err(err) => return Err(io("create a temporary file beside")(err)),
        };
        failpoint("temp-created");
        let mut temp = Temp {
            path: &temp_path,
            file,
            kept: false,
        };
        let after_bytes = if before.len() <= IN_MEMORY {
            self.in_memory(&mut source, &mut temp.file, &before, &shown)?
        } else {
            self.streamed(&mut source, &mut temp.file, &before, &shown)?
        };
        failpoint("written");
        let after = source.metadata().map_err(io("read"))?;
        if !same_file(&after, &before) {
            return Ok(Outcome::Skipped("changed while it was compressed".into()));
        }
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, &temp_path, CWD, &target, RenameFlags::NOREPLACE) {
            Ok(()) => temp.kept = true,
            Err(rustix::io::Errno::EXIST) => {
                return Ok(Outcome::Skipped(format!("{} exists", target.display())));
            }
            Err(err) => return Err(io("rename into place")(err.into())),
        }
        sync_dir(&target).map_err(io("fsync the directory of"))?;
        failpoint("renamed");
        // The name may have been given to another file meanwhile; only the
        // file that was compressed is removed.
        let still = fs::symlink_metadata(path).map_err(io("read"))?;
        if !same_file(&still, &before) {
            let _ = fs::remove_file(&target);
            return Ok(Outcome::Skipped("replaced while it was compressed".into()));
        }
        fs::remove_file(path).map_err(io("remove"))?;
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_owned());
        }
        Ok(Outcome::Compressed { after_bytes })
    }

    /// Finishes what a run that died between renaming `target` into place
    /// and removing the original left: the original is removed if `target`
    /// is a copy this tool made of it, holding its bytes.
    fn finish_leftover(
        &mut self,
        candidate: &Candidate,
        source: &File,
        before: &fs::Metadata,
        target: &Path,
    ) -> Result<Outcome, CompressError> {
        let path = &candidate.path;
        let exists = || Outcome::Skipped(format!("{} exists", target.display()));
        let Ok(packed) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)
        else {
            return Ok(exists());
        };
        let Ok(packed_meta) = packed.metadata() else {
            return Ok(exists());
        };
        if !made_from(&packed_meta, before) {
            return Ok(exists());
        }
        let reader = io::BufReader::new(PositionedReader {
            file: &packed,
            at: 0,
        });
        let original = PositionedReader {
            file: source,
            at: 0,
        };
        let same = zstd::stream::read::Decoder::with_buffer(reader)
            .and_then(|decoder| same_stream(decoder, original))
            .unwrap_or(false);
        if !same {
            return Ok(Outcome::Skipped(format!(
                "{} exists and does not decompress to its bytes; both are kept",
                target.display()
            )));
        }
        let io = |what: &'static str| {
            move |error| CompressError::Io {
                what,
                path: path.display().to_string(),
                error,
            }
        };
        let still = fs::symlink_metadata(path).map_err(io("read"))?;
        let now = source.metadata().map_err(io("read"))?;
        if !same_file(&still, before) || !same_file(&now, before) {
            return Ok(Outcome::Skipped("changed while it was checked".into()));
        }
        fs::remove_file(path).map_err(io("remove"))?;
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_owned());
        }
        Ok(Outcome::Compressed {
            after_bytes: packed_meta.len(),
        })
    }

    /// Makes the removals of originals durable.
    ///
    /// Fails when a directory cannot be fsynced.
    pub fn sync_dirs(&mut self) -> io::Result<()> {
        for dir in self.dirs.drain() {
            sync_dir(&dir.join("."))?;
        }
        Ok(())
    }

    fn in_memory(
        &mut self,
        source: &mut File,
        out: &mut File,
        before: &fs::Metadata,
        shown: &str,
    ) -> Result<u64, CompressError> {
        let io = |what: &'static str| {
            move |error| CompressError::Io {
                what,
                path: shown.to_owned(),
                error,
            }
        };
        read_whole(source, &mut self.data, before.len()).map_err(io("read"))?;
        self.packed.clear();
        self.packed
            .reserve(zstd::zstd_safe::compress_bound(self.data.len()));
        self.compressor
            .compress_to_buffer(&self.data, &mut self.packed)
            .map_err(io("compress"))?;
        out.write_all(&self.packed).map_err(io("write"))?;
        finish(out, before).map_err(io("set mode and times of"))?;
        // Read back what reached the file, not what we meant to write.
        let written = self.packed.len();
        self.packed.clear();
        self.packed.resize(written, 0);
        out.read_exact_at(&mut self.packed, 0)
            .map_err(io("read back"))?;
        self.unpacked.clear();
        self.unpacked.reserve(self.data.len());
        let same = self
            .decompressor
            .decompress_to_buffer(&self.packed, &mut self.unpacked)
            .is_ok()
            && self.unpacked == self.data;
        if !same {
            return Err(CompressError::Mismatch(shown.to_owned()));
        }
        Ok(written as u64)
    }

    fn streamed(
        &mut self,
        source: &mut File,
        out: &mut File,
        before: &fs::Metadata,
        shown: &str,
    ) -> Result<u64, CompressError> {
        let io = |what: &'static str| {
            move |error| CompressError::Io {
                what,
                path: shown.to_owned(),
                error,
            }
        };
        let mut encoder =
            zstd::stream::write::Encoder::new(&mut *out, self.level).map_err(io("compress"))?;
        encoder.include_checksum(true).map_err(io("compress"))?;
        let copied = io::copy(source, &mut encoder).map_err(io("compress"))?;
        encoder
            .finish()
            .map_err(io("compress"))?
            .flush()
            .map_err(io("write"))?;
        if copied != before.len() {
            return Err(CompressError::Mismatch(shown.to_owned()));
        }
        finish(out, before).map_err(io("set mode and times of"))?;
        let written = out.metadata().map_err(io("read back"))?.len();
        let reader = io::BufReader::new(PositionedReader { file: out, at: 0 });
        let original = PositionedReader {
            file: source,
            at: 0,
        };
        let same = zstd::stream::read::Decoder::with_buffer(reader)
            .and_then(|decoder| same_stream(decoder, original))
            .unwrap_or(false);
        if !same {
            return Err(CompressError::Mismatch(shown.to_owned()));
        }
        Ok(written)
    }
}

/// Creates the temporary file and locks it (flock) for as long as this run
/// works on it; `None` if another run holds it.
///
/// A temporary file that exists but is not locked was left by a run that
/// died (the kernel dropped its lock): it is removed and made anew. A new
/// file is locked right after it is created; in the instant between, another
/// run could take it for a leftover and remove it, and then this run's
/// rename fails and the original stays: safe either way.
fn create_temp(path: &Path) -> io::Result<Option<File>> {
    let create = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let file = match create() {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let leftover = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            match leftover.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(err)) => return Err(err),
            }
            let (held, named) = (leftover.metadata()?, fs::symlink_metadata(path)?);
            if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
                return Ok(None);
            }
            fs::remove_file(path)?;
            create()?
        }
        Err(err) => return Err(err),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(err)) => Err(err),
    }
}

/// Reads `file` from an offset without moving its cursor.
struct PositionedReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Reads a file of `len` bytes into `buf`, and checks that it ends there.
fn read_whole(file: &mut File, buf: &mut Vec<u8>, len: u64) -> io::Result<()> {
    buf.clear();
    buf.resize(len as usize, 0);
    file.read_exact(buf)?;
    let mut probe = [0u8; 1];
    if file.read(&mut probe)? != 0 {
        return Err(io::Error::other("it grew while being read"));
    }
    Ok(())
}

/// Gives the copy the original's mode, owner (when we may) and times, as
/// gzip and zstd do, and makes it durable.
fn finish(file: &File, meta: &fs::Metadata) -> io::Result<()> {
    use rustix::fs::{fchown, Gid, Uid};
    let ours = file.metadata()?;
    // Changing the owner clears set-id bits, so it goes first; a user who
    // is not root cannot give files away, and keeps them.
    if (ours.uid(), ours.gid()) != (meta.uid(), meta.gid()) {
        let _ = fchown(
            file,
            Some(Uid::from_raw(meta.uid())),
            Some(Gid::from_raw(meta.gid())),
        );
    }
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let times = FileTimes::new()
        .set_accessed(meta.accessed()?)
        .set_modified(meta.modified()?);
    file.set_times(times)?;
    file.sync_all()
}

/// Whether `packed` looks like the copy [`finish`] made of `original`: a
/// plain file with its mode, owner and modification time.
pub fn made_from(packed: &fs::Metadata, original: &fs::Metadata) -> bool {
    packed.is_file()
        && packed.nlink() == 1
        && packed.mode() & 0o7777 == original.mode() & 0o7777
        && (packed.uid(), packed.gid()) == (original.uid(), original.gid())
        && (packed.mtime(), packed.mtime_nsec()) == (original.mtime(), original.mtime_nsec())
}

/// Same inode, size and modification time: nobody wrote to it.
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev()
        && a.ino() == b.ino()
        && a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

/// Whether two readers yield the same bytes to the end.
fn same_stream(mut a: impl Read, mut b: impl Read) -> io::Result<bool> {
    let mut left = vec![0u8; CHUNK];
    let mut right = vec![0u8; CHUNK];
    loop {
        let n = read_full(&mut a, &mut left)?;
        let m = read_full(&mut b, &mut right)?;
        if n != m || left[..n] != right[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}
