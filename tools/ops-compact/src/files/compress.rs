//! Compressing one file to FILE.zst so that nothing half-written ever
//! looks finished and nothing is lost: the compressed copy is written under
//! a temporary name beside it, given the original's mode, owner and times,
//! fsynced, read back and decompressed and compared byte for byte, and only
//! then given its name; the original is removed last, and only if it is
//! still the file that was compressed.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use ops_shared::atomic::{sync_dir, AtomicFile};

use super::plan::Candidate;

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

/// A zstd compressor and decompressor, reused from file to file.
pub struct Codec {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
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
        let mut temp = match AtomicFile::create_new(&target) {
            Ok(temp) => temp,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(Outcome::Skipped(format!("{} exists", target.display())));
            }
            Err(err) => return Err(io("create a temporary file beside")(err)),
        };
        if before.len() <= IN_MEMORY {
            let mut data = Vec::with_capacity(before.len() as usize);
            source.read_to_end(&mut data).map_err(io("read"))?;
            let packed = self.compressor.compress(&data).map_err(io("compress"))?;
            temp.file().write_all(&packed).map_err(io("write"))?;
            keep_metadata(temp.file(), &before).map_err(io("set mode and times of"))?;
            temp.file().sync_all().map_err(io("fsync"))?;
            let written = fs::read(temp.temp_path()).map_err(io("read back"))?;
            let unpacked = self
                .decompressor
                .decompress(&written, data.len())
                .map_err(|_| CompressError::Mismatch(shown.clone()))?;
            if unpacked != data {
                return Err(CompressError::Mismatch(shown));
            }
        } else {
            self.stream(&mut source, temp.file())
                .map_err(io("compress"))?;
            keep_metadata(temp.file(), &before).map_err(io("set mode and times of"))?;
            temp.file().sync_all().map_err(io("fsync"))?;
            source.rewind().map_err(io("read"))?;
            let written = File::open(temp.temp_path()).map_err(io("read back"))?;
            let same = zstd::stream::read::Decoder::new(written)
                .and_then(|decoder| same_stream(decoder, &mut source));
            if !same.map_err(|_| CompressError::Mismatch(shown.clone()))? {
                return Err(CompressError::Mismatch(shown));
            }
        }
        let after = source.metadata().map_err(io("read"))?;
        if !same_file(&after, &before) {
            return Ok(Outcome::Skipped("changed while it was compressed".into()));
        }
        let after_bytes = temp.file().metadata().map_err(io("read"))?.len();
        match temp.commit() {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(Outcome::Skipped(format!("{} exists", target.display())));
            }
            Err(err) => return Err(io("write")(err)),
        }
        // The name may have been given to another file meanwhile; only the
        // file that was compressed is removed.
        let still = fs::symlink_metadata(path).map_err(io("read"))?;
        if !same_file(&still, &before) {
            let _ = fs::remove_file(&target);
            return Ok(Outcome::Skipped("replaced while it was compressed".into()));
        }
        fs::remove_file(path).map_err(io("remove"))?;
        sync_dir(path).map_err(io("fsync the directory of"))?;
        Ok(Outcome::Compressed { after_bytes })
    }

    fn stream(&self, source: &mut File, out: &mut File) -> io::Result<()> {
        let mut encoder = zstd::stream::write::Encoder::new(out, self.level)?;
        encoder.include_checksum(true)?;
        io::copy(source, &mut encoder)?;
        encoder.finish()?.flush()
    }
}

/// Same inode, size and modification time: nobody wrote to it.
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev()
        && a.ino() == b.ino()
        && a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

/// Gives the copy the original's mode, owner (when we may) and times, as
/// gzip and zstd do.
fn keep_metadata(file: &File, original: &fs::Metadata) -> io::Result<()> {
    use rustix::fs::{fchown, Gid, Uid};
    // Changing the owner clears set-id bits, so it goes first; a user who
    // is not root cannot give files away, and keeps them.
    let _ = fchown(
        file,
        Some(Uid::from_raw(original.uid())),
        Some(Gid::from_raw(original.gid())),
    );
    file.set_permissions(fs::Permissions::from_mode(original.mode() & 0o7777))?;
    let times = FileTimes::new()
        .set_accessed(original.accessed()?)
        .set_modified(original.modified()?);
    file.set_times(times)
}

/// Whether two readers yield the same bytes to the end.
fn same_stream(mut a: impl Read, b: &mut impl Read) -> io::Result<bool> {
    let mut left = vec![0u8; CHUNK];
    let mut right = vec![0u8; CHUNK];
    loop {
        let n = read_full(&mut a, &mut left)?;
        let m = read_full(b, &mut right)?;
        if n != m || left[..n] != right[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}
