//! `ops-backup create sled:PATH`: every tree of a sled database as one
//! zstd stream, with per-tree key counts and sled's own checksum in the
//! manifest; and the checks that read it back.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ops_shared::keys::Encryption;
use ops_shared::{Backup, Source};

use super::stream::{self, Contents, Discard};
use super::tree_label;
use crate::artifact::{ArtifactWriter, CHUNK};
use crate::catalog;
use crate::check::{Findings, Level};
use crate::hashing::HashingReader;
use crate::manifest::{ManifestReader, SledInfo, Summary, Table};
use crate::pending::{PendingBackup, Plan};

/// The artifact format, which is also its file extension.
pub const FORMAT: &str = "sled.zst";

/// What to back up and how.
pub struct Request {
    pub path: PathBuf,
    pub to: PathBuf,
    pub name: Option<String>,
    pub level: i32,
    pub threads: u32,
    pub encryption: Option<Encryption>,
}

/// Backs up the database at `request.path`; returns the backup record.
///
/// Fails if the database is in use by another process, cannot be read, or
/// the artifact cannot be written; no artifact is then left under a final
/// name.
pub fn backup(request: &Request) -> anyhow::Result<Backup> {
    let path = std::fs::canonicalize(&request.path).with_context(|| {
        format!(
            "cannot back up {}",
            ops_shared::redact::redact(&request.path.to_string_lossy())
        )
    })?;
    super::guarded(&path, || backup_from(&path, request))
}

fn backup_from(path: &Path, request: &Request) -> anyhow::Result<Backup> {
    let path = path.to_owned();
    let db = super::open(&path)?;
    let name = match &request.name {
        Some(name) => name.clone(),
        None => catalog::series_name(
            &path
                .file_name()
                .map_or("db".into(), |n| n.to_string_lossy()),
        ),
    };
    let (mut pending, artifact) = PendingBackup::start(Plan {
        to: &request.to,
        name: &name,
        format: FORMAT,
        source: Source {
            kind: "sled".into(),
            location: path.to_string_lossy().into_owned(),
        },
        level: request.level,
        database: None,
        sled: Some(SledInfo {
            size_on_disk: db.size_on_disk().unwrap_or(0),
            trees: db.tree_names().len() as u64,
            recovered: db.was_recovered(),
        }),
        root: None,
        encryption: request.encryption.as_ref(),
    })?;
    let mut out = Counting {
        inner: ArtifactWriter::compressed(
            artifact,
            request.level,
            request.threads,
            pending.encryption(),
        )
        .map_err(|err| pending.write_error(err))?,
        bytes: 0,
    };
    let (_db, contents) = stream::write(&path, db, &mut out)?;
    let raw_bytes = out.bytes;
    let (artifact, sha256, bytes) = out.inner.finish().map_err(|e| pending.write_error(e))?;
    for tree in &contents.trees {
        let line = Table {
            schema: String::new(),
            name: tree_label(&tree.name),
            kind: "tree".into(),
            rows: tree.keys,
        };
        pending
            .manifest
            .table(&line)
            .map_err(|e| pending.write_error(e))?;
    }
    let summary = Summary {
        entries: contents.keys(),
        raw_bytes,
        bytes,
        sha256,
        changed: 0,
        skipped: 0,
        content_checksum: Some(contents.checksum),
    };
    pending.commit(artifact, summary)
}

/// Counts what passes through to the artifact (the stream's raw size).
struct Counting {
    inner: ArtifactWriter,
    bytes: u64,
}

impl Write for Counting {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct SledManifest {
    /// sled's checksum of the content, from the summary.
    checksum: u32,
    trees: Vec<Table>,
    summary: Summary,
}

fn read_manifest(artifact: &Path) -> anyhow::Result<SledManifest> {
    let mut reader = ManifestReader::open(&catalog::manifest_of(artifact)?)?;
    let is_sled = reader.header.sled.is_some();
    let trees = reader.tables()?;
    let summary = reader.finish()?;
    let (true, Some(checksum)) = (is_sled, summary.content_checksum) else {
        bail!("{} is not a sled backup", artifact.display())
    };
    Ok(SledManifest {
        checksum,
        trees,
        summary,
    })
}

/// Verifies a sled backup: its checksum (quick); also the whole stream,
/// every tree's key count and sled's checksum of the content (full).
pub fn verify(artifact: &Path, level: Level) -> Findings {
    let mut findings = Findings::default();
    if let Err(err) = check(artifact, level, &mut findings, &mut Discard) {
        findings.fail(format!("{err:#}"));
    }
    findings.close()
}

fn check(
    artifact: &Path,
    level: Level,
    findings: &mut Findings,
    sink: &mut dyn stream::Sink,
) -> anyhow::Result<Option<Contents>> {
    let manifest = read_manifest(artifact)?;
    let file = ops_storage::open(artifact)
        .with_context(|| format!("cannot read artifact {}", artifact.display()))?;
    let mut hashing = HashingReader::new(ops_shared::progress::Counting(file));
    let mut contents = None;
    if level == Level::Full {
        let plain = crate::sealed::plaintext(artifact, &mut hashing);
        match plain
            .map_err(anyhow::Error::from)
            .and_then(|plain| decode(plain, sink))
        {
            Ok(read) => {
                compare_contents(&manifest, &read, findings);
                contents = Some(read);
            }
            Err(err) => findings.fail(format!("{err:#}")),
        }
    }
    io::copy(&mut hashing, &mut io::sink())?;
    let (sha256, bytes) = hashing.finish();
    findings.artifact_sha256 = Some(sha256.clone());
    crate::check::compare_artifact(artifact, &manifest.summary, &sha256, bytes, findings);
    findings.entries = manifest.summary.entries;
    Ok(contents)
}

fn decode(input: impl Read, sink: &mut dyn stream::Sink) -> anyhow::Result<Contents> {
    let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, input))?;
    let mut decoded = BufReader::with_capacity(CHUNK, decoder);
    stream::read(&mut decoded, sink)
}

fn compare_contents(manifest: &SledManifest, read: &Contents, findings: &mut Findings) {
    if read.checksum != manifest.checksum {
        findings.fail(format!(
            "content checksum {} does not match the manifest's {}",
            read.checksum, manifest.checksum
        ));
    }
    for (index, tree) in manifest.trees.iter().enumerate() {
        match read.trees.get(index) {
            Some(got) if tree_label(&got.name) == tree.name && got.keys == tree.rows => {}
            Some(got) => findings.fail(format!(
                "tree {}: {} keys in the manifest, the stream has {} with {} keys",
                tree.name,
                tree.rows,
                tree_label(&got.name),
                got.keys
            )),
            None => findings.fail(format!(
                "tree {}: in the manifest but not in the stream",
                tree.name
            )),
        }
    }
    if read.trees.len() > manifest.trees.len() {
        findings.fail("the stream has trees the manifest does not list".into());
    }
}

/// Restores into a new database at `target` (which must not exist),
/// flushes it and compares sled's checksum with the manifest's.
///
/// Fails on a damaged backup, a write error, or a checksum mismatch.
pub fn restore_into(artifact: &Path, target: &Path) -> anyhow::Result<(u64, u64)> {
    let manifest = read_manifest(artifact)?;
    let mut importer = super::Importer::create(target)?;
    let mut findings = Findings::default();
    let contents = check(artifact, Level::Full, &mut findings, &mut importer)?;
    let findings = findings.close();
    if !findings.ok() {
        bail!("{}", findings.errors.join("; "));
    }
    let checksum = importer.finish()?;
    if checksum != manifest.checksum {
        bail!(
            "restored database's checksum {checksum} differs from the manifest's {}",
            manifest.checksum
        );
    }
    Ok(contents.map(|c| (c.keys(), c.bytes())).unwrap_or_default())
}

/// Imports into a temporary database, compares sled's checksum with the
/// manifest's, and removes it again.
pub fn restore_test(artifact: &Path) -> Findings {
    let mut findings = Findings::default();
    let scratch = tempfile::Builder::new().prefix("ops-verify-sled").tempdir();
    match scratch {
        Ok(dir) => {
            if let Err(err) = restore_into(artifact, &dir.path().join("db")) {
                findings.fail(format!("restore test: {err:#}"));
            }
        }
        Err(err) => findings.fail(format!(
            "restore test: cannot create a scratch directory: {err}"
        )),
    }
    findings.close()
}
