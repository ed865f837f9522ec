//! `ops-backup create` for a directory or a file: a tar archive compressed
//! with zstd, written in one pass that also hashes every file for the
//! manifest and the whole artifact for its checksum.
//!
//! Nothing appears under a final name until everything is durable: the
//! artifact and manifest are written under temporary names (which also
//! reserve the id against a second backup in the same second), then the
//! artifact, its checksum file and finally the manifest are renamed into
//! place. A failure or kill leaves only temporary files.
//!
//! A backup never reads itself: our temporaries and lock files in the source
//! are left out, and a backup directory inside the source is refused unless
//! --exclude leaves it out.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ops_shared::exclude::Excludes;
use ops_shared::keys::Encryption;
use ops_shared::{entry::warn, Backup, Source};
use walkdir::WalkDir;

use crate::catalog;
use crate::manifest::{Kind, ManifestWriter, Summary};
use crate::pending::{PendingBackup, Plan};
use crate::tar_writer::{AddError, TarWriter};

/// The artifact format this module writes.
pub const FORMAT: &str = "tar.zst";

/// What to back up and how.
#[derive(Clone, Debug)]
pub struct Request {
    pub source: PathBuf,
    pub to: PathBuf,
    pub name: Option<String>,
    pub level: i32,
    pub threads: u32,
    pub excludes: Vec<String>,
    pub skip_unreadable: bool,
    pub encryption: Option<Encryption>,
}

/// Backs up `request.source` into `request.to`; returns its record.
///
/// Fails if the source or target cannot be used, if any file cannot be read
/// (unless `skip_unreadable`), or on any write error such as a full disk; in
/// every failure no artifact or manifest is left under a final name.
pub fn create(request: &Request) -> anyhow::Result<Backup> {
    let source = fs::canonicalize(&request.source)
        .with_context(|| format!("cannot back up {}", shown(&request.source)))?;
    let meta =
        fs::metadata(&source).with_context(|| format!("cannot back up {}", shown(&source)))?;
    let kind = if meta.is_dir() {
        "dir"
    } else if meta.is_file() {
        "file"
    } else {
        bail!(
            "{} is neither a directory nor a regular file",
            source.display()
        )
    };
    let excludes = Excludes::new(&request.excludes)?;
    if kind == "dir" {
        refuse_target_inside(&source, &request.to, &excludes)?;
    }
    let name = match &request.name {
        Some(name) => name.clone(),
        None => catalog::series_name(
            &source
                .file_name()
                .map_or("root".into(), |n| n.to_string_lossy()),
        ),
    };
    let (mut pending, artifact) = PendingBackup::start(Plan {
        to: &request.to,
        name: &name,
        format: FORMAT,
        source: Source {
            kind: kind.into(),
            location: ops_shared::redact::redact(&source.to_string_lossy()),
        },
        level: request.level,
        database: None,
        sled: None,
        root: meta
            .is_dir()
            .then(|| ops_shared::owner::Recorded::of(&meta)),
        encryption: request.encryption.as_ref(),
    })?;
    let mut archive = TarWriter::new(
        artifact,
        request.level,
        request.threads,
        pending.encryption(),
    )
    .map_err(|err| pending.write_error(err))?;
    let tally = archive_tree(
        &mut archive,
        &source,
        &excludes,
        &mut pending.manifest,
        request.skip_unreadable,
    )
    .map_err(|err| match err.downcast::<std::io::Error>() {
        Ok(io) => pending.write_error(io),
        Err(other) => other,
    })?;
    if tally.unreadable > 0 {
        bail!(
            "{} file(s) could not be read (see above); no backup was written. \
             Fix their permissions, run as a user who can read them, or pass --skip-unreadable",
            tally.unreadable
        );
    }
    let (artifact, sha256, bytes) = archive.finish().map_err(|e| pending.write_error(e))?;
    let summary = Summary {
        entries: tally.entries,
        raw_bytes: tally.raw_bytes,
        bytes,
        sha256,
        changed: tally.changed,
        skipped: tally.skipped,
        content_checksum: None,
    };
    pending.commit(artifact, summary)
}

/// Refuses a backup directory inside the source unless it is excluded:
/// the backup would archive itself (and every earlier backup there).
fn refuse_target_inside(source: &Path, to: &Path, excludes: &Excludes) -> anyhow::Result<()> {
    let resolved = fs::canonicalize(to).or_else(|_| {
        let parent = match to.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::canonicalize(parent).map(|p| p.join(to.file_name().unwrap_or_default()))
    });
    let Ok(resolved) = resolved else {
        return Ok(());
    };
    let Ok(inside) = resolved.strip_prefix(source) else {
        return Ok(());
    };
    let excluded = inside
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .any(|a| excludes.matches(a));
    if inside.as_os_str().is_empty() || !excluded {
        return Err(ops_shared::UsageError(format!(
            "--to {} is inside the source {}: the backup would archive itself; \
             pass --exclude '{}' or choose a --to outside it",
            to.display(),
            shown(source),
            inside.display()
        ))
        .into());
    }
    Ok(())
}

/// Our own files in a source: temporaries of other runs (growing
/// artifacts) and lock files. Never archived.
fn is_ours(name: &std::ffi::OsStr) -> bool {
    ops_shared::atomic::is_temp(name) || name == ".ops-lock"
}

/// A source for a message: a mistyped connection string must not show its
/// password.
fn shown(source: &Path) -> String {
    ops_shared::redact::redact(&source.to_string_lossy())
}

#[derive(Default)]
struct Tally {
    entries: u64,
    raw_bytes: u64,
    changed: u64,
    skipped: u64,
    unreadable: u64,
}

/// Walks the source and appends everything to the archive and manifest.
fn archive_tree(
    archive: &mut TarWriter,
    source: &Path,
    excludes: &Excludes,
    manifest: &mut ManifestWriter,
    skip_unreadable: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let root_is_file = source.is_file();
    let base = if root_is_file {
        source.parent().unwrap_or(Path::new("/"))
    } else {
        source
    };
    let walk = WalkDir::new(source)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(is_ours(e.file_name())
                    || excludes.matches(e.path().strip_prefix(base).unwrap_or(e.path())))
        });
    for item in walk {
        let item = match item {
            Ok(item) => item,
            Err(err) => {
                unreadable(&mut tally, skip_unreadable, &err.to_string());
                continue;
            }
        };
        if item.depth() == 0 && !root_is_file {
            continue;
        }
        let relative = item
            .path()
            .strip_prefix(base)
            .unwrap_or(item.path())
            .to_owned();
        let meta = match item.metadata() {
            Ok(meta) => meta,
            Err(err) => {
                unreadable(&mut tally, skip_unreadable, &err.to_string());
                continue;
            }
        };
        let entry = match archive.add(item.path(), &relative, &meta) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(AddError::Unreadable(err)) => {
                let message = format!("cannot read {}: {err}", item.path().display());
                unreadable(&mut tally, skip_unreadable, &message);
                continue;
            }
            Err(AddError::Write(err)) => return Err(err.into()),
        };
        if entry.changed {
            warn(format!(
                "{} changed while it was being read; stored as read, marked in the manifest",
                item.path().display()
            ));
            tally.changed += 1;
        }
        tally.entries += 1;
        if matches!(entry.kind, Kind::File | Kind::Hardlink) {
            ops_shared::progress::add_files(1);
        }
        tally.raw_bytes += if entry.kind == Kind::File {
            entry.size
        } else {
            0
        };
        manifest.entry(&entry)?;
    }
    Ok(tally)
}

impl From<AddError> for anyhow::Error {
    fn from(err: AddError) -> Self {
        match err {
            AddError::Unreadable(err) | AddError::Write(err) => err.into(),
        }
    }
}

fn unreadable(tally: &mut Tally, skip: bool, message: &str) {
    if skip {
        warn(format!("{message}; skipped (--skip-unreadable)"));
        tally.skipped += 1;
    } else {
        ops_shared::entry::error(message);
        tally.unreadable += 1;
    }
}
