//! The manifest: what a backup holds, stored beside the artifact.
//!
//! JSON lines, so it streams both ways and memory stays flat for trees of
//! millions of files:
//!
//! ```text
//! {"type":"manifest","v":1,"id":..,"name":..,"time":..,"artifact":..,"format":..,...}
//! {"type":"entry","path":"a.txt","kind":"file","size":3,"mode":"0644","mtime":..,"uid":..,"gid":..,"sha256":..}
//! ...one line per entry, in archive order...
//! {"type":"summary","entries":..,"raw_bytes":..,"bytes":..,"sha256":..,"changed":..,"skipped":..}
//! {"type":"seal","sha256":"<SHA-256 of every byte above this line>"}
//! ```
//!
//! The summary holds the artifact's size and SHA-256, so corruption of the
//! artifact is caught by the manifest; the seal makes any change to the
//! manifest itself detectable.
//!
//! An encrypted backup's manifest is this whole file encrypted with age
//! (`<id>.manifest.jsonl.age`), beside an outline under the usual name that
//! tools without a key read: the header, the sealed file's size and
//! SHA-256, the summary without the content's checksum, and a seal. The
//! outline names no file, table or tree.
//!
//! ```text
//! {"type":"manifest",...,"format":"tar.zst.age",...,"encryption":{"recipients":["age1..."]}}
//! {"type":"sealed","bytes":..,"sha256":..}
//! {"type":"summary",...}
//! {"type":"seal","sha256":..}
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use ops_shared::Source;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::HashedFile;
use crate::hashing::{hex, HashingReader};
use ops_shared::keys::Encryption;
use ops_storage::Upload;

/// The file name suffix of a manifest: `<id>.manifest.jsonl`.
pub const SUFFIX: &str = ".manifest.jsonl";

/// The encrypted full manifest beside an outline `manifest`.
pub fn sealed_path(manifest: &Path) -> PathBuf {
    ops_shared::atomic::with_suffix(manifest, crate::sealed::SUFFIX)
}

/// The first line: what the backup is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub v: u64,
    pub id: String,
    pub name: String,
    pub time: Timestamp,
    /// The artifact's file name, in the same directory as the manifest.
    pub artifact: String,
    pub format: String,
    pub mode: String,
    pub parent: Option<String>,
    pub source: Source,
    /// The program and version that wrote it.
    pub tool: String,
    pub zstd_level: i32,
    /// What the dump came from (database backups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseInfo>,
    /// What the sled database held (sled backups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sled: Option<SledInfo>,
    /// The source directory itself (directory backups; absent in those
    /// of older versions): a restore gives its top these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<ops_shared::owner::Recorded>,
    /// What the backup is encrypted to (encrypted backups only): this
    /// manifest is then an outline of the sealed one beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<ops_shared::keys::Sealing>,
}

/// A sled database when it was backed up (its checksum is in the summary).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SledInfo {
    pub size_on_disk: u64,
    pub trees: u64,
    /// Whether sled had to recover the database when it was opened.
    pub recovered: bool,
}

/// The server and dump a database backup came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub dbname: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// `pg_database_size` when the dump was taken.
    pub size_bytes: u64,
}

/// One table of a database backup and its row count in the dump's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// `table`, or `partitioned` for a parent whose rows live in partitions.
    pub kind: String,
    pub rows: u64,
}

impl Table {
    /// `schema.name`, as people write it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// What kind of thing an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
}

/// One archive entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "ops_shared::path_text")]
    pub path: PathBuf,
    pub kind: Kind,
    /// Content size (0 for all but files).
    pub size: u64,
    /// Permission bits, as octal text (`"0644"`).
    #[serde(with = "ops_shared::owner::octal")]
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Owner and group, as numbers (absent in manifests written before
    /// they were recorded; the tar header still has them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Content SHA-256 (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target (symlinks and hard links).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_path"
    )]
    pub target: Option<PathBuf>,
    /// The file changed while it was being read; its content may be torn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

/// The totals, written after the last entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub entries: u64,
    /// Bytes of file content before compression.
    pub raw_bytes: u64,
    /// The artifact's size.
    pub bytes: u64,
    /// The artifact's SHA-256.
    pub sha256: String,
    /// Entries that changed while being read.
    pub changed: u64,
    /// Files left out because they could not be read (`--skip-unreadable`).
    pub skipped: u64,
    /// The content's checksum in the source's own terms, where it has one:
    /// sled's `Db::checksum` (CRC32 of every tree name, key and value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_checksum: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Manifest(Box<Header>),
    Entry(Entry),
    Table(Table),
    Summary(Summary),
    Seal {
        sha256: String,
    },
    /// In an outline: the sealed manifest's size and SHA-256.
    Sealed {
        bytes: u64,
        sha256: String,
    },
}

/// Writes a manifest under a temporary name (or as an S3 upload);
/// [`ManifestWriter::finish`] hands back the uploads to commit.
pub struct ManifestWriter {
    lines: Lines<Out>,
}

/// Where the lines go: the manifest, or the sealed full manifest of an
/// encrypted backup with its outline still to write.
enum Out {
    Clear(Box<dyn Upload>),
    Sealed {
        full: Box<age::stream::StreamWriter<HashedFile>>,
        outline: Box<dyn Upload>,
        header: Box<Header>,
    },
}

impl Write for Out {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Out::Clear(file) => file.write(data),
            Out::Sealed { full, .. } => full.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ManifestWriter {
    /// Starts the manifest at `path` with its header; with `seal`, the
    /// full manifest is encrypted beside an outline at `path`.
    ///
    /// Fails if the path is taken or cannot be written.
    pub fn create(path: &Path, header: &Header, seal: Option<&Encryption>) -> io::Result<Self> {
        let outline = ops_storage::create(path, ops_storage::Mode::New)?;
        let out = match seal {
            None => Out::Clear(outline),
            Some(encryption) => {
                let full = ops_storage::create(&sealed_path(path), ops_storage::Mode::New)?;
                Out::Sealed {
                    full: Box::new(encryption.wrap(HashedFile::new(full))?),
                    outline,
                    header: Box::new(header.clone()),
                }
            }
        };
        let mut lines = Lines::new(out);
        lines.line(&Line::Manifest(Box::new(header.clone())))?;
        Ok(ManifestWriter { lines })
    }

    /// Appends one entry.
    pub fn entry(&mut self, entry: &Entry) -> io::Result<()> {
        self.lines.line(&Line::Entry(entry.clone()))
    }

    /// Appends one table (database backups).
    pub fn table(&mut self, table: &Table) -> io::Result<()> {
        self.lines.line(&Line::Table(table.clone()))
    }

    /// Writes the summary and the seal (of an encrypted backup: ends the
    /// sealed manifest and writes the outline); returns the files for the
    /// caller to commit, in that order.
    pub fn finish(mut self, summary: &Summary) -> io::Result<Vec<Box<dyn Upload>>> {
        self.lines.line(&Line::Summary(summary.clone()))?;
        match self.lines.seal()? {
            Out::Clear(file) => Ok(vec![file]),
            Out::Sealed {
                full,
                outline,
                header,
            } => {
                let (sha256, bytes, full) = full.finish()?.end();
                let mut lines = Lines::new(outline);
                lines.line(&Line::Manifest(header))?;
                lines.line(&Line::Sealed { bytes, sha256 })?;
                lines.line(&Line::Summary(Summary {
                    content_checksum: None,
                    ..summary.clone()
                }))?;
                Ok(vec![full, lines.seal()?])
            }
        }
    }
}

/// Manifest lines, buffered and hashed for the seal.
struct Lines<W> {
    out: W,
    buffer: Vec<u8>,
    hasher: Sha256,
}

impl<W: Write> Lines<W> {
    fn new(out: W) -> Self {
        Lines {
            out,
            buffer: Vec::with_capacity(1 << 16),
            hasher: Sha256::new(),
        }
    }

    fn line(&mut self, line: &Line) -> io::Result<()> {
        let start = self.buffer.len();
        serde_json::to_writer(&mut self.buffer, line)?;
        self.buffer.push(b'\n');
        self.hasher.update(&self.buffer[start..]);
        if self.buffer.len() >= 1 << 16 {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes the seal; returns where the lines went.
    fn seal(mut self) -> io::Result<W> {
        let seal = Line::Seal {
            sha256: hex(self.hasher.clone()),
        };
        serde_json::to_writer(&mut self.buffer, &seal)?;
        self.buffer.push(b'\n');
        self.out.write_all(&self.buffer)?;
        Ok(self.out)
    }
}

/// A problem with a manifest file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("manifest {path} is damaged at line {line}: {what}")]
    Damaged {
        path: String,
        line: u64,
        what: String,
    },
    /// An encrypted backup's sealed manifest that the keys at hand do not open.
    #[error("{0}")]
    Locked(String),
}

/// Reads a manifest front to back, checking its seal at the end.
pub struct ManifestReader {
    path: PathBuf,
    input: BufReader<Box<dyn Read + Send>>,
    hasher: Sha256,
    line: u64,
    pub header: Header,
    summary: Option<Summary>,
}

impl ManifestReader {
    /// Opens a manifest and reads its header; an encrypted backup's sealed
    /// manifest is opened (with this process's keys) in its outline's place.
    ///
    /// Fails if the file cannot be read or does not start with a header, or
    /// an encrypted backup's sealed manifest cannot be opened or belongs to
    /// another backup.
    pub fn open(path: &Path) -> Result<Self, ManifestError> {
        let outline = Self::open_stored(path)?;
        if outline.header.encryption.is_none() {
            return Ok(outline);
        }
        let sealed = sealed_path(path);
        let io_error = |source| ManifestError::Io {
            path: sealed.display().to_string(),
            source,
        };
        let file = ops_storage::open(&sealed).map_err(io_error)?;
        let plain = ops_shared::keys::decrypt(file, &sealed)
            .map_err(|err| ManifestError::Locked(err.to_string()))?;
        let reader = Self::over(&sealed, Box::new(plain))?;
        if reader.header != outline.header {
            return Err(reader.damaged("belongs to another backup than its outline".into()));
        }
        Ok(reader)
    }

    /// Opens the manifest file at `path` as it is stored.
    fn open_stored(path: &Path) -> Result<Self, ManifestError> {
        let file = ops_storage::open(path).map_err(|source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::over(path, file)
    }

    fn over(path: &Path, file: Box<dyn Read + Send>) -> Result<Self, ManifestError> {
        let mut reader = ManifestReader {
            path: path.to_owned(),
            input: BufReader::with_capacity(1 << 16, file),
            hasher: Sha256::new(),
            line: 0,
            header: placeholder_header(),
            summary: None,
        };
        match reader.next_line()? {
            Some(Line::Manifest(header)) if header.v == 1 => reader.header = *header,
            Some(Line::Manifest(header)) => {
                return Err(reader.damaged(format!(
                    "version {} is newer than this tool reads (1)",
                    header.v
                )))
            }
            _ => return Err(reader.damaged("does not start with a manifest header".into())),
        }
        Ok(reader)
    }

    /// The next entry, or `None` once the summary is reached.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ManifestError> {
        if self.summary.is_some() {
            return Ok(None);
        }
        match self.next_line()? {
            Some(Line::Entry(entry)) => Ok(Some(entry)),
            Some(Line::Summary(summary)) => {
                self.summary = Some(summary);
                Ok(None)
            }
            Some(_) => Err(self.damaged("unexpected line between entries".into())),
            None => Err(self.damaged("ends before its summary (truncated)".into())),
        }
    }

    /// The tables of a database backup, up to the summary.
    pub fn tables(&mut self) -> Result<Vec<Table>, ManifestError> {
        let mut tables = Vec::new();
        while self.summary.is_none() {
            match self.next_line()? {
                Some(Line::Table(table)) => tables.push(table),
                Some(Line::Summary(summary)) => self.summary = Some(summary),
                Some(_) => return Err(self.damaged("unexpected line between tables".into())),
                None => return Err(self.damaged("ends before its summary (truncated)".into())),
            }
        }
        Ok(tables)
    }

    /// Reads to the end and checks the seal; returns the summary.
    ///
    /// Fails if the manifest was changed, truncated or has trailing data.
    pub fn finish(mut self) -> Result<Summary, ManifestError> {
        while self.next_entry()?.is_some() {}
        let expected = hex(self.hasher.clone());
        let summary = self
            .summary
            .take()
            .ok_or_else(|| self.damaged("has no summary".into()))?;
        let mut raw = Vec::new();
        self.read_raw_line(&mut raw)?;
        let seal: Option<Line> = serde_json::from_slice(&raw).ok();
        match seal {
            Some(Line::Seal { sha256 }) if raw.ends_with(b"\n") && sha256 == expected => {}
            Some(Line::Seal { .. }) => {
                return Err(self.damaged("its content does not match its seal".into()))
            }
            _ => return Err(self.damaged("has no valid seal line (truncated or changed)".into())),
        }
        raw.clear();
        if self.read_raw_line(&mut raw)? > 0 {
            return Err(self.damaged("has data after its seal".into()));
        }
        Ok(summary)
    }

    fn next_line(&mut self) -> Result<Option<Line>, ManifestError> {
        let mut raw = Vec::new();
        if self.read_raw_line(&mut raw)? == 0 {
            return Ok(None);
        }
        self.hasher.update(&raw);
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|err| self.damaged(format!("not a manifest line: {err}")))
    }

    fn read_raw_line(&mut self, raw: &mut Vec<u8>) -> Result<usize, ManifestError> {
        self.line += 1;
        self.input
            .read_until(b'\n', raw)
            .map_err(|source| ManifestError::Io {
                path: self.path.display().to_string(),
                source,
            })
    }

    fn damaged(&self, what: String) -> ManifestError {
        ManifestError::Damaged {
            path: self.path.display().to_string(),
            line: self.line,
            what,
        }
    }
}

/// Checks a manifest as stored, with no key needed: its seal and, for an
/// encrypted backup's outline, the sealed manifest's size and SHA-256.
/// Returns its header and summary.
///
/// Fails if either file cannot be read, or is damaged or changed.
pub fn check_stored(path: &Path) -> Result<(Header, Summary), ManifestError> {
    let mut reader = ManifestReader::open_stored(path)?;
    let header = reader.header.clone();
    if header.encryption.is_none() {
        return Ok((header, reader.finish()?));
    }
    let Some(Line::Sealed { bytes, sha256 }) = reader.next_line()? else {
        return Err(reader.damaged("has no line for its sealed manifest".into()));
    };
    let summary = reader.finish()?;
    let sealed = sealed_path(path);
    let io_error = |source| ManifestError::Io {
        path: sealed.display().to_string(),
        source,
    };
    let mut stored = HashingReader::new(ops_storage::open(&sealed).map_err(io_error)?);
    io::copy(&mut stored, &mut io::sink()).map_err(io_error)?;
    if stored.finish() != (sha256, bytes) {
        return Err(ManifestError::Damaged {
            path: sealed.display().to_string(),
            line: 0,
            what: "is not the sealed manifest its outline records (changed or damaged)".into(),
        });
    }
    Ok((header, summary))
}

/// The longest header line read: real ones are a few hundred bytes.
const MAX_HEADER_LINE: u64 = 1 << 20;

/// The header and summary of a manifest, read from its first and last lines
/// only (the seal is not checked): fast enough to list thousands of backups.
///
/// Fails if the file cannot be read or its first or last lines are damaged.
pub fn read_outline(path: &Path) -> Result<(Header, Summary), ManifestError> {
    let fail = |line: u64, what: &str| ManifestError::Damaged {
        path: path.display().to_string(),
        line,
        what: what.to_owned(),
    };
    let io_err = |source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    };
    let (head, tail) = ops_storage::read_ends(path, MAX_HEADER_LINE, 4096).map_err(io_err)?;
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(Line::Manifest(header)) = serde_json::from_slice(first) else {
        return Err(fail(1, "does not start with a manifest header"));
    };
    let header = *header;
    let summary = tail
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Line>(line).ok())
        .find_map(|line| match line {
            Line::Summary(summary) => Some(summary),
            _ => None,
        });
    let summary =
        summary.ok_or_else(|| fail(0, "has no summary near its end (truncated or unfinished)"))?;
    Ok((header, summary))
}

fn placeholder_header() -> Header {
    Header {
        v: 0,
        id: String::new(),
        name: String::new(),
        time: Timestamp::UNIX_EPOCH,
        artifact: String::new(),
        format: String::new(),
        mode: String::new(),
        parent: None,
        source: Source {
            kind: String::new(),
            location: String::new(),
        },
        tool: String::new(),
        zstd_level: 0,
        database: None,
        sled: None,
        root: None,
        encryption: None,
    }
}

mod optional_path {
    use std::path::PathBuf;

    pub fn serialize<S: serde::Serializer>(
        path: &Option<PathBuf>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => ops_shared::path_text::serialize(path, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        ops_shared::path_text::deserialize(d).map(Some)
    }
}
