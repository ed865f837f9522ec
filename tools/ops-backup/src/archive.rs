//! Reading a `tar.zst` backup back, checked against its manifest in one
//! read of the artifact. ops-verify and ops-restore both use this reader.
//!
//! Two threads share the work: one reads the artifact, hashes it and
//! decompresses it; the other walks the tar stream in lockstep with the
//! manifest, hashes every file's content and hands each checked entry to an
//! [`EntrySink`] (nothing for verify, the filesystem for restore).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use crate::catalog;
use sha2::{Digest, Sha256};

use crate::hashing::{hex, HashingReader};
use crate::manifest::{Entry, Kind, ManifestReader, Summary};

const CHUNK: usize = 1 << 20;
const MAX_REPORTED: usize = 20;

/// How much to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The artifact's checksum and the manifest's seal.
    Quick,
    /// Also decompress everything and check every entry against the manifest.
    Full,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Quick => "quick",
            Level::Full => "full",
        }
    }
}

/// Receives each entry that matched the manifest, in archive order.
pub trait EntrySink {
    /// `content` yields a file's bytes (empty for other kinds); whatever the
    /// sink leaves unread is read and hashed after it returns.
    ///
    /// An error ends the whole read (restore: a write failed).
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> io::Result<()>;
}

/// A sink that keeps nothing: verification only.
pub struct Discard;

impl EntrySink for Discard {
    fn entry(&mut self, _entry: &Entry, _content: &mut dyn Read) -> io::Result<()> {
        Ok(())
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// What is wrong, one line each; empty when the backup is good.
    pub errors: Vec<String>,
    hidden: usize,
    pub entries: u64,
    pub raw_bytes: u64,
    /// The SHA-256 of the artifact as read, when it could be read and
    /// was hashed.
    pub artifact_sha256: Option<String>,
    /// The SHA-256 the manifest records for the artifact.
    pub recorded_sha256: Option<String>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn fail(&mut self, message: String) {
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(message);
        } else {
            self.hidden += 1;
        }
    }

    pub(crate) fn close(mut self) -> Self {
        if self.hidden > 0 {
            self.errors
                .push(format!("... and {} more problems", self.hidden));
        }
        self
    }
}

/// Checks `artifact` against its manifest at `level`, handing entries to
/// `sink` (full level only).
///
/// Problems with the backup are findings, not errors; an error means the
/// sink failed.
pub fn check(artifact: &Path, level: Level, sink: &mut dyn EntrySink) -> io::Result<Findings> {
    check_artifact(artifact, level, true, sink)
}

/// Hands every entry of `artifact` to `sink`, each checked against the
/// manifest as at the full level, but without the artifact's own checksum:
/// restoring checks every byte it writes, and proving the artifact whole is
/// ops-verify's work. `recorded_sha256` says which artifact the manifest
/// describes.
pub fn extract(artifact: &Path, sink: &mut dyn EntrySink) -> io::Result<Findings> {
    check_artifact(artifact, Level::Full, false, sink)
}

fn check_artifact(
    artifact: &Path,
    level: Level,
    hash: bool,
    sink: &mut dyn EntrySink,
) -> io::Result<Findings> {
    let mut findings = Findings::default();
    let manifest_path = match catalog::manifest_of(artifact) {
        Ok(path) => path,
        Err(err) => {
            findings.fail(err.to_string());
            return Ok(findings.close());
        }
    };
    let manifest = match ManifestReader::open(&manifest_path) {
        Ok(manifest) => manifest,
        Err(err) => {
            findings.fail(err.to_string());
            return Ok(findings.close());
        }
    };
    let file = match File::open(artifact) {
        Ok(file) => file,
        Err(err) => {
            findings.fail(format!(
                "cannot read artifact {}: {err}",
                artifact.display()
            ));
            return Ok(findings.close());
        }
    };
    let (summary, read) = match level {
        Level::Quick => {
            let summary = manifest.finish();
            let mut input = ArtifactReader::new(file, hash);
            let error = io::copy(&mut input, &mut io::sink()).err();
            (summary, input.finish(error.map(|e| e.to_string())))
        }
        Level::Full => check_stream(
            ArtifactReader::new(file, hash),
            manifest,
            sink,
            &mut findings,
        )?,
    };
    let from_stream = findings.errors.len();
    match summary {
        Ok(summary) => compare_summary(artifact, &summary, &read, level, &mut findings),
        Err(err) => findings.fail(err.to_string()),
    }
    let whole_artifact = findings.errors.len() - from_stream;
    findings.errors.rotate_right(whole_artifact);
    Ok(findings.close())
}

/// Reads the artifact, counting (and, unless told not to, hashing) it.
struct ArtifactReader {
    file: File,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl ArtifactReader {
    fn new(file: File, hash: bool) -> Self {
        ArtifactReader {
            file,
            hasher: hash.then(Sha256::new),
            bytes: 0,
        }
    }

    fn finish(self, error: Option<String>) -> ArtifactRead {
        ArtifactRead {
            sha256: self.hasher.map(hex),
            bytes: Some(self.bytes),
            error,
        }
    }
}

impl Read for ArtifactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What reading the artifact to its end found.
struct ArtifactRead {
    sha256: Option<String>,
    /// `None` when reading stopped short.
    bytes: Option<u64>,
    error: Option<String>,
}

fn compare_summary(
    artifact: &Path,
    summary: &Summary,
    read: &ArtifactRead,
    level: Level,
    findings: &mut Findings,
) {
    if let Some(error) = &read.error {
        findings.fail(format!(
            "artifact {} cannot be read to the end: {error}",
            artifact.display()
        ));
    }
    findings.recorded_sha256 = Some(summary.sha256.clone());
    match (&read.sha256, read.bytes) {
        (Some(sha256), Some(bytes)) => {
            findings.artifact_sha256 = Some(sha256.clone());
            compare_artifact(artifact, summary, sha256, bytes, findings);
        }
        (None, Some(bytes)) => compare_size(summary, bytes, findings),
        (_, None) => {}
    }
    if level == Level::Full {
        if findings.entries != summary.entries {
            findings.fail(format!(
                "archive holds {} entries, the manifest says {}",
                findings.entries, summary.entries
            ));
        }
        if findings.raw_bytes != summary.raw_bytes {
            findings.fail(format!(
                "archive holds {} bytes of content, the manifest says {}",
                findings.raw_bytes, summary.raw_bytes
            ));
        }
    }
}

/// The artifact as read against the manifest's size and checksum, and the
/// `sha256sum` checksum file beside it, if any.
pub(crate) fn compare_artifact(
    artifact: &Path,
    summary: &Summary,
    sha256: &str,
    bytes: u64,
    findings: &mut Findings,
) {
    compare_size(summary, bytes, findings);
    if sha256 != summary.sha256 {
        findings.fail(format!(
            "artifact checksum mismatch: manifest says {}, artifact is {sha256}",
            summary.sha256
        ));
    }
    let checksum_file = catalog::checksum_path(artifact);
    if let Ok(text) = std::fs::read_to_string(&checksum_file) {
        if text.split_whitespace().next() != Some(summary.sha256.as_str()) {
            findings.fail(format!(
                "checksum file {} disagrees with the manifest",
                checksum_file.display()
            ));
        }
    }
}

fn compare_size(summary: &Summary, bytes: u64, findings: &mut Findings) {
    if bytes != summary.bytes {
        findings.fail(format!(
            "artifact is {bytes} bytes, the manifest says {} (truncated or appended to)",
            summary.bytes
        ));
    }
}

fn check_stream(
    input: ArtifactReader,
    mut manifest: ManifestReader,
    sink: &mut dyn EntrySink,
    findings: &mut Findings,
) -> io::Result<(
    Result<Summary, crate::manifest::ManifestError>,
    ArtifactRead,
)> {
    let (sender, receiver) = sync_channel::<Vec<u8>>(4);
    let (recycle, spare) = sync_channel::<Vec<u8>>(4);
    let decoder = thread::spawn(move || {
        let mut input = BufReader::with_capacity(CHUNK, input);
        let mut error = None;
        match zstd::stream::read::Decoder::with_buffer(&mut input) {
            Ok(mut decoder) => loop {
                let mut chunk = spare.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                match read_full(&mut decoder, &mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        if sender.send(chunk).is_err() {
                            break;
                        }
                    }
                    Err(err) => {
                        error = Some(format!("decompression failed: {err}"));
                        break;
                    }
                }
            },
            Err(err) => error = Some(format!("decompression failed: {err}")),
        }
        drop(sender);
        let mut input = input.into_inner();
        if let Err(err) = io::copy(&mut input, &mut io::sink()) {
            error.get_or_insert(err.to_string());
        }
        input.finish(error)
    });
    let walked = walk_tar(
        ChannelReader {
            receiver,
            recycle,
            chunk: Vec::new(),
            pos: 0,
        },
        &mut manifest,
        sink,
        findings,
    );
    let read = decoder.join().unwrap_or(ArtifactRead {
        sha256: None,
        bytes: None,
        error: Some("reader thread failed".into()),
    });
    walked?;
    Ok((manifest.finish(), read))
}

fn walk_tar(
    reader: ChannelReader,
    manifest: &mut ManifestReader,
    sink: &mut dyn EntrySink,
    findings: &mut Findings,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut manifest_done = false;
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(err) => {
            findings.fail(format!("not a tar archive: {err}"));
            return Ok(());
        }
    };
    for item in entries {
        let mut item = match item {
            Ok(item) => item,
            Err(err) => {
                findings.fail(format!(
                    "archive damaged after {} entries: {err}",
                    findings.entries
                ));
                break;
            }
        };
        let path = item.path().map(|p| p.into_owned()).unwrap_or_default();
        let expected = if manifest_done {
            None
        } else {
            next_entry(manifest, findings)
        };
        let Some(expected) = expected else {
            manifest_done = true;
            findings.fail(format!(
                "archive holds {} which the manifest does not list",
                path.display()
            ));
            continue;
        };
        findings.entries += 1;
        let mismatches = compare_header(&expected, &path, &item);
        let mut hashing = HashingReader::new(&mut item);
        if mismatches.is_empty() {
            sink.entry(&expected, &mut hashing)?;
        }
        if let Err(err) = io::copy(&mut hashing, &mut io::sink()) {
            findings.fail(format!("{}: content cannot be read: {err}", path.display()));
            break;
        }
        let (sha256, size) = hashing.finish();
        findings.raw_bytes += size;
        for mismatch in mismatches {
            findings.fail(format!("{}: {mismatch}", expected.path.display()));
        }
        if expected.kind == Kind::File && expected.sha256.as_deref() != Some(sha256.as_str()) {
            findings.fail(format!(
                "{}: content does not match its checksum",
                expected.path.display()
            ));
        }
    }
    let mut rest = archive.into_inner();
    if !manifest_done {
        while let Some(missing) = next_entry(manifest, findings) {
            findings.fail(format!(
                "{}: listed in the manifest but missing from the archive",
                missing.path.display()
            ));
        }
    }
    if !rest.only_zeros()? {
        findings.fail("archive has data after its end".into());
    }
    Ok(())
}

fn next_entry(manifest: &mut ManifestReader, findings: &mut Findings) -> Option<Entry> {
    manifest.next_entry().unwrap_or_else(|err| {
        findings.fail(err.to_string());
        None
    })
}

fn compare_header<R: Read>(expected: &Entry, path: &Path, item: &tar::Entry<R>) -> Vec<String> {
    let header = item.header();
    let mut mismatches = Vec::new();
    let stored = PathBuf::from(path.to_string_lossy().trim_end_matches('/'));
    if path != expected.path && stored != expected.path {
        mismatches.push(format!("archive has {} in its place", path.display()));
        return mismatches;
    }
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Some(Kind::File),
        tar::EntryType::Directory => Some(Kind::Dir),
        tar::EntryType::Symlink => Some(Kind::Symlink),
        tar::EntryType::Link => Some(Kind::Hardlink),
        _ => None,
    };
    if kind != Some(expected.kind) {
        mismatches.push(format!(
            "is a {:?} in the archive, the manifest says {:?}",
            header.entry_type(),
            expected.kind
        ));
    }
    let size = header.size().unwrap_or(u64::MAX);
    if size != expected.size {
        mismatches.push(format!(
            "archive says {size} bytes, the manifest says {}",
            expected.size
        ));
    }
    if header.mode().ok().map(|m| m & 0o7777) != Some(expected.mode) {
        mismatches.push("permissions differ from the manifest".into());
    }
    if header.mtime().ok() != Some(expected.mtime) {
        mismatches.push("modification time differs from the manifest".into());
    }
    if matches!(expected.kind, Kind::Symlink | Kind::Hardlink) {
        let target = item.link_name().ok().flatten().map(|t| t.into_owned());
        if target != expected.target {
            mismatches.push("link target differs from the manifest".into());
        }
    }
    mismatches
}

/// The decompressed stream, chunk by chunk, from the reader thread.
struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    recycle: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// Reads to the end; whether everything left is zero padding.
    fn only_zeros(&mut self) -> io::Result<bool> {
        let mut buf = vec![0; CHUNK];
        let mut zeros = true;
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(zeros);
            }
            zeros &= buf[..n].iter().all(|b| *b == 0);
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    let _ = self.recycle.try_send(used);
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
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
