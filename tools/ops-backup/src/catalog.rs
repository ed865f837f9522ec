//! The catalog: a backup directory read back into `backup` records.
//!
//! Everything is rebuilt from the directory alone. For one backup `<id>`:
//!
//! - `<id>.<format>`: the artifact (`data_20261121_120000.tar.zst`)
//! - `<id>.<format>.sha256`: its checksum in `sha256sum` format
//! - `<id>.manifest.jsonl`: the manifest; a backup exists once this exists
//! - `<id>.verify.json`: the last verification result, if any
//!
//! Deleting in the reverse order (manifest first) means nothing half-deleted
//! is ever listed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::Timestamp;
use ops_shared::atomic::{self, is_temp};
use ops_shared::{Backup, Verification};
use serde::{Deserialize, Serialize};

use crate::manifest::{self, Header, Summary};

/// The suffix of a persisted verification result.
pub const VERIFY_SUFFIX: &str = ".verify.json";

/// The suffix of the `sha256sum` checksum file beside an artifact.
pub const CHECKSUM_SUFFIX: &str = ".sha256";

/// The artifact id for a series at a time: `<name>_<YYYYMMDD_HHMMSS>`, with
/// `_2`, `_3`, ... for the second and later backups in the same second.
pub fn backup_id(name: &str, time: Timestamp, attempt: u32) -> String {
    let stamp = time.strftime("%Y%m%d_%H%M%S");
    if attempt <= 1 {
        format!("{name}_{stamp}")
    } else {
        format!("{name}_{stamp}_{attempt}")
    }
}

/// A series name made safe for a file name: letters, digits, `.`, `_`, `-`.
pub fn series_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        "backup".to_owned()
    } else {
        name.to_owned()
    }
}

/// The manifest path of the backup `id` in `dir`.
pub fn manifest_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{}", manifest::SUFFIX))
}

/// The checksum file of an artifact.
pub fn checksum_path(artifact: &Path) -> PathBuf {
    atomic::with_suffix(artifact, CHECKSUM_SUFFIX)
}

/// The manifest that describes an artifact: found by reading the manifests
/// of its directory whose id the artifact's name starts with.
///
/// Fails if the artifact has no manifest.
pub fn manifest_of(artifact: &Path) -> anyhow::Result<PathBuf> {
    let dir = parent_dir(artifact);
    let name = artifact
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    let mut id = name;
    while let Some((stem, _ext)) = id.rsplit_once('.') {
        let candidate = manifest_path(dir, stem);
        if candidate.is_file() {
            return Ok(candidate);
        }
        id = stem;
    }
    anyhow::bail!(
        "{} has no manifest ({}) beside it, so it cannot be checked; \
         if you trust it, extract it with standard tools (tar --zstd -xf)",
        artifact.display(),
        manifest_path(dir, id).display()
    )
}

/// The `backup` record a manifest describes.
pub fn record(dir: &Path, header: &Header, summary: &Summary) -> Backup {
    Backup {
        id: header.id.clone(),
        name: header.name.clone(),
        time: header.time,
        path: dir.join(&header.artifact),
        source: header.source.clone(),
        format: header.format.clone(),
        mode: header.mode.clone(),
        parent: header.parent.clone(),
        bytes: summary.bytes,
        sha256: summary.sha256.clone(),
        extra: serde_json::Map::new(),
    }
}

/// What `list` found besides backups: reported on stderr, never listed.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// One line per problem, for people.
    pub warnings: Vec<String>,
    /// Temporary files of interrupted runs.
    pub temp_files: Vec<PathBuf>,
    /// Artifacts without a manifest.
    pub orphans: Vec<PathBuf>,
}

/// The backups in `dir`, oldest first, each with its last verification.
///
/// Fails if `dir` cannot be read; damaged manifests and stray files are
/// reported in the returned leftovers.
pub fn list(dir: &Path) -> anyhow::Result<(Vec<Backup>, Leftovers)> {
    let mut leftovers = Leftovers::default();
    let mut backups = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read backup directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut claimed = HashSet::new();
    for path in &names {
        let name = path.file_name().unwrap_or_default();
        if is_temp(name) {
            leftovers.temp_files.push(path.clone());
            leftovers.warnings.push(format!(
                "{}: temporary file left by an interrupted run; not a backup, safe to delete",
                path.display()
            ));
            continue;
        }
        if !name.to_string_lossy().ends_with(manifest::SUFFIX) {
            continue;
        }
        match manifest::read_outline(path) {
            Ok((header, summary)) => {
                let mut backup = record(dir, &header, &summary);
                if !backup.path.exists() {
                    leftovers.warnings.push(format!(
                        "{}: manifest without its artifact {}",
                        path.display(),
                        backup.path.display()
                    ));
                }
                if let Some(verification) = last_verification(&backup) {
                    ops_shared::Record::annotate(&mut backup, "verify", verification);
                }
                claimed.insert(backup.path.clone());
                backups.push(backup);
            }
            Err(err) => leftovers.warnings.push(err.to_string()),
        }
    }
    for path in &names {
        let name = path.to_string_lossy();
        let looks_like_artifact = name.ends_with(".zst") || name.ends_with(".dump");
        if looks_like_artifact && !claimed.contains(path) && !is_temp(path.as_os_str()) {
            leftovers.orphans.push(path.clone());
            leftovers.warnings.push(format!(
                "{}: artifact without a manifest; not listed as a backup",
                path.display()
            ));
        }
    }
    backups.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    Ok((backups, leftovers))
}

#[derive(Serialize, Deserialize)]
struct StoredVerification {
    /// The artifact checksum that was verified.
    sha256: String,
    verify: Verification,
}

fn verification_path(backup: &Backup) -> PathBuf {
    parent_dir(&backup.path).join(format!("{}{VERIFY_SUFFIX}", backup.id))
}

/// Persists a verification result beside the artifact.
///
/// Fails if the directory cannot be written.
pub fn save_verification(backup: &Backup, verification: &Verification) -> io::Result<()> {
    let stored = StoredVerification {
        sha256: backup.sha256.clone(),
        verify: verification.clone(),
    };
    let json = serde_json::to_vec(&stored)?;
    atomic::write_replace(&verification_path(backup), &json)
}

/// The last persisted verification of this very artifact, if any.
pub fn last_verification(backup: &Backup) -> Option<Verification> {
    let bytes = fs::read(verification_path(backup)).ok()?;
    let stored: StoredVerification = serde_json::from_slice(&bytes).ok()?;
    (stored.sha256 == backup.sha256).then_some(stored.verify)
}

/// Deletes a backup: the manifest first, so from then on it is not listed,
/// then its artifact, checksum file and verification result. The caller
/// holds the directory's exclusive lock. Returns the bytes freed.
///
/// Deletes nothing, and fails, unless the manifest beside `backup.path`
/// still describes this very backup (same artifact, checksum and time): a
/// stale or edited record never deletes anything else. Fails on I/O errors;
/// if that happens after the manifest went, what is left is reported by
/// `list` as an artifact without a manifest.
pub fn remove(backup: &Backup) -> anyhow::Result<u64> {
    let dir = parent_dir(&backup.path);
    let manifest = manifest_path(dir, &backup.id);
    let (header, summary) = manifest::read_outline(&manifest)?;
    let named = backup.path.file_name() == Some(OsStr::new(&header.artifact));
    if !named || summary.sha256 != backup.sha256 || header.time != backup.time {
        anyhow::bail!(
            "{} does not describe {} any more (different artifact, checksum or time); not removed. \
             List the directory again (ops-backup list) and prune from that",
            manifest.display(),
            backup.path.display()
        );
    }
    let mut freed = 0;
    let mut delete = |path: &Path| -> anyhow::Result<()> {
        let size = fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(path) {
            Ok(()) => {
                freed += size;
                Ok(())
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
        }
    };
    delete(&manifest)?;
    atomic::sync_dir(&manifest).with_context(|| format!("cannot sync {}", dir.display()))?;
    delete(&backup.path)?;
    delete(&checksum_path(&backup.path))?;
    delete(&verification_path(backup))?;
    atomic::sync_dir(&manifest).with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(freed)
}

/// The directory a path is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_name_and_utc_second() {
        let time: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        assert_eq!(backup_id("data", time, 1), "data_20261121_120000");
        assert_eq!(backup_id("data", time, 2), "data_20261121_120000_2");
    }

    #[test]
    fn series_names_are_safe_file_names() {
        assert_eq!(series_name("my data/ü"), "my-data--");
        assert_eq!(series_name("..."), "backup");
        assert_eq!(series_name("reddit_cluster"), "reddit_cluster");
    }
}
