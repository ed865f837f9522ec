//! Reading a `tar.zst` backup back, checked against its manifest in one
//! read of the artifact. ops-verify and ops-restore both use this reader.
//!
//! Two threads share the work: one reads the artifact, hashes it and
//! decompresses it; the other walks the tar stream in lockstep with the
//! manifest, hashes every file's content and hands each checked entry to an
//! [`EntrySink`] (nothing for verify, the filesystem for restore).
//!
//! "Verified" must mean "restorable": [`Names`] holds the one set of
//! entry rules (relative, no `..`, names of at most 255 bytes, no entry
//! twice or under a non-directory, hard links only to files before them).
//! An entry that breaks them fails verification and is never handed to a
//! sink; ops-restore also checks the whole manifest with them before it
//! writes anything.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use sha2::{Digest, Sha256};

use crate::catalog;
use crate::check::{compare_artifact, compare_size, EntrySink, Findings, Level};
use crate::hashing::{hex, HashingReader};
use crate::manifest::{Entry, Kind, ManifestReader, Summary};
use ops_shared::read::read_full;

const CHUNK: usize = 1 << 20;

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
    let file = match ops_storage::open(artifact) {
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
            let summary = check_names(manifest, &mut findings);
            let mut input = ArtifactReader::new(file, hash);
            let error = io::copy(&mut input, &mut io::sink()).err();
            (summary, input.finish(error.map(|e| e.to_string())))
        }
        Level::Full => check_stream(
            artifact,
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

/// Checks the manifest's entries against the rules of [`Names`] (the
/// archive's own are checked against the manifest at the full level), then
/// its seal.
fn check_names(
    mut manifest: ManifestReader,
    findings: &mut Findings,
) -> Result<Summary, crate::manifest::ManifestError> {
    let mut names = Names::default();
    while let Some(entry) = manifest.next_entry()? {
        if let Err(why) = names.check(&entry) {
            findings.unrestorable = true;
            findings.fail(unrestorable(&entry.path, &why));
        }
    }
    manifest.finish()
}

/// Reads the artifact, counting (and, unless told not to, hashing) it.
struct ArtifactReader {
    file: Box<dyn Read + Send>,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl ArtifactReader {
    fn new(file: Box<dyn Read + Send>, hash: bool) -> Self {
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
        ops_shared::progress::add_bytes(n as u64);
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

fn check_stream(
    artifact: &Path,
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
    let artifact = artifact.to_owned();
    let decoder = thread::spawn(move || {
        let mut input = input;
        let mut error = match crate::sealed::plaintext(&artifact, &mut input) {
            Ok(plain) => decompress(plain, &sender, &spare).err(),
            Err(err) => Some(err.to_string()),
        };
        drop(sender);
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

/// Decompresses `plain` into chunks for the tar walk.
fn decompress(
    plain: impl Read,
    sender: &SyncSender<Vec<u8>>,
    spare: &Receiver<Vec<u8>>,
) -> Result<(), String> {
    let mut input = BufReader::with_capacity(CHUNK, plain);
    let failed = |err: io::Error| format!("decompression failed: {err}");
    let mut decoder = zstd::stream::read::Decoder::with_buffer(&mut input).map_err(failed)?;
    loop {
        let mut chunk = spare.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        match read_full(&mut decoder, &mut chunk).map_err(failed)? {
            0 => return Ok(()),
            n => {
                chunk.truncate(n);
                if sender.send(chunk).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

fn walk_tar(
    reader: ChannelReader,
    manifest: &mut ManifestReader,
    sink: &mut dyn EntrySink,
    findings: &mut Findings,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut names = Names::default();
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
        let path = item
            .path()
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default();
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
        let mut expected = expected;
        let mismatches = compare_header(&mut expected, &path, &item);
        let restorable = names.check(&expected);
        if let Err(why) = &restorable {
            findings.unrestorable = true;
            findings.fail(unrestorable(&expected.path, why));
        }
        let mut hashing = HashingReader::new(&mut item);
        if mismatches.is_empty() && restorable.is_ok() {
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

/// What differs between the manifest's entry and the archive's header;
/// owners the manifest does not record are taken from the header.
fn compare_header<R: Read>(expected: &mut Entry, path: &Path, item: &tar::Entry<R>) -> Vec<String> {
    let header = item.header();
    let mut mismatches = Vec::new();
    let owner = |id: io::Result<u64>| id.ok().and_then(|id| u32::try_from(id).ok());
    let (uid, gid) = (owner(header.uid()), owner(header.gid()));
    if expected.uid.is_some_and(|recorded| Some(recorded) != uid)
        || expected.gid.is_some_and(|recorded| Some(recorded) != gid)
    {
        mismatches.push("owner or group differs from the manifest".into());
    }
    expected.uid = expected.uid.or(uid);
    expected.gid = expected.gid.or(gid);
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
        let target = item
            .link_name()
            .ok()
            .flatten()
            .map(std::borrow::Cow::into_owned);
        if target != expected.target {
            mismatches.push("link target differs from the manifest".into());
        }
    }
    mismatches
}

/// The longest file name (one path component) Linux takes, in bytes.
const NAME_MAX: usize = 255;
/// The longest path Linux takes, in bytes, with its terminating NUL.
const PATH_MAX: usize = 4096;

/// `path` as it is written under a target, if it stays inside it:
/// relative, no `..`, not empty, names of at most 255 bytes.
pub fn restorable_path(path: &Path) -> Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) if part.len() > NAME_MAX => {
                return Err(format!("has a name longer than {NAME_MAX} bytes"))
            }
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(
                    "is absolute or contains .., so it would land outside the target".into(),
                )
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("has an empty path".into());
    }
    if clean.as_os_str().len() >= PATH_MAX {
        return Err(format!("has a path of {PATH_MAX} bytes or more"));
    }
    Ok(clean)
}

/// The finding for an entry that breaks the rules.
pub fn unrestorable(path: &Path, why: &str) -> String {
    format!(
        "archive entry {} {why}; ops-restore refuses it",
        path.display()
    )
}

/// The entries seen so far, to check each new one against: one set of
/// rules for verify and restore.
///
/// Paths are kept as keyed 64-bit hashes so memory stays small for
/// millions of entries; a collision can only make a good archive look
/// bad (two names taken for one), never let a bad one through.
#[derive(Default)]
pub struct Names {
    seen: HashMap<u64, Seen>,
    keys: RandomState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A directory implied by an entry beneath it.
    Implied,
    Entry(Kind),
}

impl Names {
    /// Whether `entry` can be restored after the entries seen so far;
    /// records it.
    pub fn check(&mut self, entry: &Entry) -> Result<(), String> {
        let path = restorable_path(&entry.path)?;
        for parent in path.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            let key = self.key(parent);
            match self.seen.get(&key) {
                Some(Seen::Entry(kind)) if *kind != Kind::Dir => {
                    return Err(format!(
                        "lies under {}, which the archive holds as a {}, not a directory",
                        parent.display(),
                        kind_name(*kind)
                    ))
                }
                Some(_) => {}
                None => {
                    self.seen.insert(key, Seen::Implied);
                }
            }
        }
        match entry.kind {
            Kind::Hardlink => {
                let target = entry.target.as_deref().unwrap_or(Path::new(""));
                let target =
                    restorable_path(target).map_err(|why| format!("links to a path that {why}"))?;
                let key = self.key(&target);
                if !matches!(
                    self.seen.get(&key),
                    Some(Seen::Entry(Kind::File | Kind::Hardlink))
                ) {
                    return Err(format!(
                        "is a hard link to {}, which is not a file earlier in the archive",
                        target.display()
                    ));
                }
            }
            Kind::Symlink
                if entry
                    .target
                    .as_ref()
                    .is_none_or(|t| t.as_os_str().is_empty()) =>
            {
                return Err("is a symlink without a target".into())
            }
            Kind::Symlink
                if entry
                    .target
                    .as_ref()
                    .is_some_and(|t| t.as_os_str().len() >= PATH_MAX) =>
            {
                return Err(format!(
                    "is a symlink to a path of {PATH_MAX} bytes or more"
                ))
            }
            _ => {}
        }
        let key = self.key(&path);
        match self.seen.get(&key) {
            Some(Seen::Entry(_)) => return Err("appears twice in the archive".into()),
            Some(Seen::Implied) if entry.kind != Kind::Dir => {
                return Err(format!(
                    "is a {}, but entries before it lie under it",
                    kind_name(entry.kind)
                ))
            }
            _ => {}
        }
        self.seen.insert(key, Seen::Entry(entry.kind));
        Ok(())
    }

    fn key(&self, path: &Path) -> u64 {
        self.keys.hash_one(OsStr::as_bytes(path.as_os_str()))
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Hardlink => "hard link",
    }
}

/// Checks every entry `manifest` lists against the rules of [`Names`],
/// before anything is written; returns the findings for those that break
/// them (at most 20 and a count).
pub fn unrestorable_entries(
    manifest: &Path,
) -> Result<Vec<String>, crate::manifest::ManifestError> {
    let mut findings = Findings::default();
    check_names(ManifestReader::open(manifest)?, &mut findings)?;
    Ok(findings.close().errors)
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
