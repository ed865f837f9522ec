//! The `tar.zst` stream of a directory backup, written in one pass that
//! hashes every file for the manifest and the whole artifact for its
//! checksum.
//!
//! The work is a pipeline, like `tar | zstd` but in one process, so every
//! core stays busy: this thread walks, reads and hashes files and frames
//! them as tar; a compressor thread feeds zstd, whose workers compress; a
//! writer thread hashes the compressed stream and writes it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use ops_shared::atomic::AtomicFile;
use ops_shared::entry::warn;
use sha2::{Digest, Sha256};

use crate::hashing::hex;
use crate::manifest::{Entry, Kind};

const CHUNK: usize = 1 << 20;
/// Chunks queued between two stages: bounds memory, smooths out stalls.
const IN_FLIGHT: usize = 4;

/// Why an object could not be added.
pub enum AddError {
    /// It could not be opened or read before anything was written: the
    /// archive is still whole and the object can be skipped.
    Unreadable(io::Error),
    /// Writing failed, or reading failed midway: the archive is broken.
    Write(io::Error),
}

pub struct TarWriter {
    file: AtomicFile,
    tar: tar::Builder<Pipe<Compressor>>,
    buffer: Vec<u8>,
    hard_links: HashMap<(u64, u64), PathBuf>,
}

impl TarWriter {
    /// Starts the archive in `file` (a reserved temporary file).
    ///
    /// Fails if zstd rejects the level or thread count.
    pub fn new(mut file: AtomicFile, level: i32, threads: u32) -> io::Result<Self> {
        let written = Pipe::start(HashedFile {
            file: file.file().try_clone()?,
            hasher: Sha256::new(),
            bytes: 0,
        });
        let mut encoder = zstd::stream::write::Encoder::new(written, level)?;
        encoder.include_checksum(true)?;
        if threads > 1 {
            encoder.multithread(threads)?;
            // zstd's default job size at level 3 (8 MiB) makes its buffers
            // alone exceed 100 MiB; 4 MiB halves that at no cost in speed.
            encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(4 << 20))?;
        }
        Ok(TarWriter {
            file,
            tar: tar::Builder::new(Pipe::start(Compressor { encoder })),
            buffer: vec![0; CHUNK],
            hard_links: HashMap::new(),
        })
    }

    /// Appends one filesystem object; `None` for what tar should not hold
    /// (sockets, FIFOs, devices: skipped with a warning).
    pub fn add(
        &mut self,
        path: &Path,
        relative: &Path,
        meta: &fs::Metadata,
    ) -> Result<Option<Entry>, AddError> {
        let file_type = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_mtime(mtime);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_size(0);
        let mut entry = Entry {
            path: relative.to_owned(),
            kind: Kind::Dir,
            size: 0,
            mode,
            mtime,
            sha256: None,
            target: None,
            changed: false,
        };
        let written = if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            self.tar.append_data(&mut header, relative, io::empty())
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(AddError::Unreadable)?;
            header.set_entry_type(tar::EntryType::Symlink);
            entry.kind = Kind::Symlink;
            entry.target = Some(target.clone());
            self.tar.append_link(&mut header, relative, &target)
        } else if file_type.is_file() {
            let inode = (meta.dev(), meta.ino());
            if let Some(first) = self.hard_links.get(&inode).filter(|_| meta.nlink() > 1) {
                header.set_entry_type(tar::EntryType::Link);
                entry.kind = Kind::Hardlink;
                entry.target = Some(first.clone());
                self.tar.append_link(&mut header, relative, first)
            } else {
                let file = File::open(path).map_err(AddError::Unreadable)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                self.tar
                    .append_data(&mut header, relative, io::empty())
                    .map_err(AddError::Write)?;
                let (sha256, short, after) =
                    self.copy_content(file, meta.len()).map_err(|err| {
                        AddError::Write(io::Error::new(
                            err.kind(),
                            format!("while archiving {}: {err}", path.display()),
                        ))
                    })?;
                entry.changed = short
                    || after.is_none_or(|after| {
                        after.len() != meta.len()
                            || after.mtime() != meta.mtime()
                            || after.ctime() != meta.ctime()
                    });
                entry.kind = Kind::File;
                entry.size = meta.len();
                entry.sha256 = Some(sha256);
                if meta.nlink() > 1 {
                    self.hard_links.insert(inode, relative.to_owned());
                }
                Ok(())
            }
        } else {
            let what = if file_type.is_socket() {
                "socket"
            } else if file_type.is_fifo() {
                "FIFO"
            } else {
                "device file"
            };
            warn(format!("skipping {what} {}", path.display()));
            return Ok(None);
        };
        written.map_err(AddError::Write)?;
        Ok(Some(entry))
    }

    /// Writes exactly `len` bytes of `file` after its header, hashing them,
    /// then the padding to the next 512-byte block. A file that shrank
    /// while being read is padded with zeros (`short`).
    /// Also returns the file's metadata after reading, to notice changes.
    fn copy_content(
        &mut self,
        mut file: File,
        len: u64,
    ) -> io::Result<(String, bool, Option<fs::Metadata>)> {
        let out = self.tar.get_mut();
        let mut hasher = Sha256::new();
        let mut remaining = len;
        let mut short = false;
        while remaining > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let mut got = 0;
            if !short {
                got = loop {
                    match file.read(&mut self.buffer[..want]) {
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
            }
            if got == 0 {
                short = true;
                self.buffer[..want].fill(0);
                got = want;
            }
            hasher.update(&self.buffer[..got]);
            out.write_all(&self.buffer[..got])?;
            remaining -= got as u64;
        }
        let padding = (512 - (len % 512) as usize) % 512;
        out.write_all(&[0; 512][..padding])?;
        Ok((hex(hasher), short, file.metadata().ok()))
    }

    /// Ends the stream; returns the artifact (to commit), its SHA-256 and
    /// size.
    pub fn finish(self) -> io::Result<(AtomicFile, String, u64)> {
        let (sha256, bytes) = self.tar.into_inner()?.finish()?;
        Ok((self.file, sha256, bytes))
    }
}

/// The far end of a [`Pipe`]: consumes chunks on the pipe's thread.
trait Stage: Send + 'static {
    type Output: Send + 'static;
    fn consume(&mut self, chunk: &[u8]) -> io::Result<()>;
    fn end(self) -> io::Result<Self::Output>;
}

/// Compresses what reaches it.
struct Compressor {
    encoder: zstd::stream::write::Encoder<'static, Pipe<HashedFile>>,
}

impl Stage for Compressor {
    type Output = (String, u64);

    fn consume(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.encoder.write_all(chunk)
    }

    fn end(self) -> io::Result<(String, u64)> {
        self.encoder.finish()?.finish()
    }
}

/// Hashes and writes what reaches it; ends with the SHA-256 and size.
struct HashedFile {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Stage for HashedFile {
    type Output = (String, u64);

    fn consume(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    fn end(self) -> io::Result<(String, u64)> {
        Ok((hex(self.hasher), self.bytes))
    }
}

/// A writer whose bytes are handed, 1 MiB at a time, to a [`Stage`]
/// running on a thread of its own.
struct Pipe<S: Stage> {
    buffer: Vec<u8>,
    chunks: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<S::Output>>>,
}

impl<S: Stage> Pipe<S> {
    fn start(mut stage: S) -> Self {
        let (chunks, incoming) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (recycle, spare) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let thread = thread::spawn(move || {
            for chunk in incoming {
                stage.consume(&chunk)?;
                let _ = recycle.try_send(chunk);
            }
            stage.end()
        });
        Pipe {
            buffer: Vec::with_capacity(CHUNK),
            chunks: Some(chunks),
            spare,
            thread: Some(thread),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let mut next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let full = std::mem::replace(&mut self.buffer, next);
        let sent = self.chunks.as_ref().map(|chunks| chunks.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the pipeline stopped"))),
        }
    }

    fn join(&mut self) -> io::Result<S::Output> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("a pipeline thread failed")),
        }
    }

    /// Hands over what is buffered and waits for the stage to end.
    fn finish(mut self) -> io::Result<S::Output> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl<S: Stage> Write for Pipe<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let taken = data.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
