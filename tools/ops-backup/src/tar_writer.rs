//! The `tar.zst` stream of a directory backup, written in one pass that
//! hashes every file for the manifest and the whole artifact for its
//! checksum.
//!
//! This thread walks, reads and hashes files and frames them as tar; the
//! [`ArtifactWriter`] compresses, hashes and writes on threads of its own,
//! like `tar | zstd` but in one process.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ops_shared::entry::warn;
use ops_shared::keys::Encryption;
use ops_storage::Upload;
use sha2::{Digest, Sha256};

use crate::artifact::{ArtifactWriter, CHUNK};
use crate::hashing::hex;
use crate::manifest::{Entry, Kind};

/// Why an object could not be added.
pub enum AddError {
    /// It could not be opened or read before anything was written: the
    /// archive is still whole and the object can be skipped.
    Unreadable(io::Error),
    /// Writing failed, or reading failed midway: the archive is broken.
    Write(io::Error),
}

pub struct TarWriter {
    tar: tar::Builder<ArtifactWriter>,
    hard_links: HashMap<(u64, u64), PathBuf>,
}

impl TarWriter {
    /// Starts the archive in `file` (a reserved upload), encrypted if
    /// `seal` says so.
    ///
    /// Fails if the encryption's header cannot be written.
    pub fn new(
        file: Box<dyn Upload>,
        level: i32,
        threads: u32,
        seal: Option<&Encryption>,
    ) -> std::io::Result<Self> {
        Ok(TarWriter {
            tar: tar::Builder::new(ArtifactWriter::compressed(file, level, threads, seal)?),
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
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
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
        const ZEROS: [u8; 512] = [0; 512];
        let out = self.tar.get_mut();
        let mut hasher = Sha256::new();
        let mut remaining = len;
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(CHUNK, |left| left.min(CHUNK));
            let read = out.read_from(&mut file, want)?;
            if read.is_empty() {
                break;
            }
            hasher.update(read);
            remaining -= read.len() as u64;
        }
        let short = remaining > 0;
        while remaining > 0 {
            let zeros = &ZEROS[..usize::try_from(remaining).map_or(512, |left| left.min(512))];
            hasher.update(zeros);
            out.write_all(zeros)?;
            remaining -= zeros.len() as u64;
        }
        let padding = (512 - (len % 512) as usize) % 512;
        out.write_all(&ZEROS[..padding])?;
        Ok((hex(hasher), short, file.metadata().ok()))
    }

    /// Ends the stream; returns the artifact (to commit), its SHA-256 and
    /// size.
    pub fn finish(self) -> io::Result<(Box<dyn Upload>, String, u64)> {
        self.tar.into_inner()?.finish()
    }
}
