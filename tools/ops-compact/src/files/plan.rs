//! Which files `--files` would compress, and why the others are left
//! alone: the plan a dry run prints and a real run carries out.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ops_backup::sleddb;
use ops_shared::atomic::{is_temp, with_suffix};
use ops_shared::files_arg::FileRules;
use ops_shared::lock::LOCK_FILE;
use ops_shared::UsageError;

use super::writers::{FileId, OpenForWriting};

/// Suffixes of files never compressed: compressed already (archives,
/// images, audio and video), or columnar formats (parquet, ORC, Arrow,
/// Avro) that compress inside and whose query engines cannot read a
/// FILE.zst. Compressing them gains nothing and breaks their readers.
const PACKED: [&str; 44] = [
    ".zst", ".zstd", ".gz", ".tgz", ".xz", ".txz", ".bz2", ".tbz2", ".tbz", ".lz4", ".lz", ".lzma",
    ".lzo", ".br", ".sz", ".snappy", ".z", ".zip", ".jar", ".7z", ".rar", ".parquet", ".orc",
    ".arrow", ".feather", ".ipc", ".avro", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif",
    ".heic", ".mp3", ".mp4", ".mkv", ".webm", ".mov", ".ogg", ".opus", ".flac", ".pdf", ".docx",
];

/// One file found by --files, with what to do about it.
#[derive(Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub meta: fs::Metadata,
    /// `None` to compress; otherwise why not.
    pub skip: Option<String>,
}

impl Candidate {
    pub fn id(&self) -> FileId {
        (self.meta.dev(), self.meta.ino())
    }

    /// Where the compressed copy goes.
    pub fn output(&self) -> PathBuf {
        with_suffix(&self.path, ".zst")
    }
}

/// Finds the files the arguments name and decides about each.
///
/// Fails with a usage error for a path that does not exist, a bad glob, a
/// backup directory (whose artifacts must stay as ops-backup wrote them), or
/// a snapshot repository or anything inside one.
pub fn plan(args: &[String], older_than: Duration) -> anyhow::Result<Vec<Candidate>> {
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for arg in args {
        for path in expand(arg)? {
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if seen.insert((meta.dev(), meta.ino())) {
                candidates.push(Candidate {
                    path,
                    meta,
                    skip: None,
                });
            }
        }
    }
    let now = SystemTime::now();
    for candidate in &mut candidates {
        candidate.skip = static_reason(candidate, now, older_than);
    }
    let wanted: HashSet<FileId> = candidates
        .iter()
        .filter(|c| c.skip.is_none())
        .map(Candidate::id)
        .collect();
    let open = OpenForWriting::scan(&wanted);
    for candidate in candidates.iter_mut().filter(|c| c.skip.is_none()) {
        if let Some(holder) = open.holder(candidate.id()) {
            candidate.skip = Some(format!("open for writing by {holder}"));
        }
    }
    Ok(candidates)
}

/// Why a file is left alone, as far as its own metadata tells.
fn static_reason(candidate: &Candidate, now: SystemTime, older_than: Duration) -> Option<String> {
    let meta = &candidate.meta;
    if !meta.is_file() {
        return Some("not a plain file".into());
    }
    if meta.nlink() > 1 {
        return Some(format!(
            "has {} hard links; compressing one name would unlink it from the others",
            meta.nlink()
        ));
    }
    let modified = meta.modified().unwrap_or(now);
    let age = now.duration_since(modified).unwrap_or_default();
    if age < older_than {
        return Some(format!(
            "modified {} ago, within --older-than {}",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(older_than)
        ));
    }
    // One that looks like a copy of a run that died before removing the
    // original is checked, and the job finished, when compressing.
    let output = fs::symlink_metadata(candidate.output());
    if output.is_ok_and(|packed| !super::compress::made_from(&packed, meta)) {
        return Some(format!("{} exists", candidate.output().display()));
    }
    None
}

/// Whether a file is one we never touch: compressed already or columnar
/// ([`PACKED`]), or a lock or temporary file of a run in progress.
fn ignored(path: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return true;
    };
    let lower = name.to_string_lossy().to_ascii_lowercase();
    name == LOCK_FILE || is_temp(name) || PACKED.iter().any(|s| lower.ends_with(s))
}

/// The files an argument names: every file under a directory (symlinks not
/// followed), or what a glob matches, or the one file.
fn expand(arg: &str) -> anyhow::Result<Vec<PathBuf>> {
    ops_shared::files_arg::expand(arg, &mut Compressible(Outside::default()))
}

/// `--files`: files to compress, never a backup directory's, nor inside a
/// repository or a sled database.
struct Compressible(Outside);

impl FileRules for Compressible {
    const WHAT: &'static str = "file to compress";

    fn directory(&mut self, arg: &str, dir: &Path) -> anyhow::Result<()> {
        Ok(self.0.check(arg, dir)?)
    }

    fn walked(&mut self, arg: &str, entry: &walkdir::DirEntry) -> anyhow::Result<bool> {
        if is_backup_manifest(entry.path()) {
            return Err(backup_dir(arg, entry.path()).into());
        }
        if entry.file_type().is_dir() {
            if ops_snapshot::is_repository(entry.path()) {
                return Err(repository(arg, entry.path()).into());
            }
            if sleddb::is_sled_dir(entry.path()) {
                return Err(sled_db(arg, entry.path()).into());
            }
        }
        Ok(entry.file_type().is_file() && !ignored(entry.path()))
    }

    fn named(&mut self, arg: &str, path: &Path) -> anyhow::Result<bool> {
        self.0.check(arg, path)?;
        Ok(!ignored(path))
    }

    fn matched(&mut self, arg: &str, path: &Path) -> anyhow::Result<bool> {
        if is_backup_manifest(path) {
            return Err(backup_dir(arg, path).into());
        }
        self.0.check(arg, path)?;
        Ok(!path.is_dir() && !ignored(path))
    }
}

fn is_backup_manifest(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(ops_backup::manifest::SUFFIX))
}

fn backup_dir(arg: &str, manifest: &Path) -> UsageError {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    UsageError(format!(
        "--files {arg}: {} holds backups, whose artifacts must stay as ops-backup wrote them; \
         age them out with ops-prune instead",
        dir.display()
    ))
}

/// Directories known to be outside any snapshot repository.
#[derive(Default)]
struct Outside(HashSet<PathBuf>);

impl Outside {
    /// Fails with a usage error when `path` is a repository or a sled
    /// database, or inside one.
    fn check(&mut self, arg: &str, path: &Path) -> Result<(), UsageError> {
        let dir = path.parent().unwrap_or(path);
        if path.is_dir() || !self.0.contains(dir) {
            if let Some(repo) = ops_snapshot::repository_of(path) {
                return Err(repository(arg, &repo));
            }
            if let Some(db) = sled_of(path) {
                return Err(sled_db(arg, &db));
            }
            self.0.insert(dir.to_owned());
        }
        Ok(())
    }
}

/// The sled database `path` is, or is inside (symlinks resolved).
fn sled_of(path: &Path) -> Option<PathBuf> {
    let resolved = fs::canonicalize(path).ok()?;
    resolved
        .ancestors()
        .find(|dir| sleddb::is_sled_dir(dir))
        .map(Path::to_owned)
}

fn sled_db(arg: &str, db: &Path) -> UsageError {
    UsageError(format!(
        "--files {arg}: {} is a sled database, whose files are live data; nothing was \
         compressed. Compact it with ops-compact sled:{}",
        db.display(),
        db.display()
    ))
}

fn repository(arg: &str, repo: &Path) -> UsageError {
    UsageError(format!(
        "--files {arg}: {} is an ops-snapshot repository, whose packs and config must stay as          ops-snapshot wrote them (old packs are live data); nothing was compressed. Compact it          with ops-compact --repo {}",
        repo.display(),
        repo.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_lock_and_temporary_files_are_ignored() {
        for name in [
            "a.zst",
            "b.GZ",
            "c.tar.xz",
            ".ops-lock",
            "d.zst.ops-tmp",
            "e.parquet",
            "f.PNG",
        ] {
            assert!(ignored(Path::new(name)), "{name}");
        }
        for name in ["a.jsonl", "b.log", "zst", "parquet.csv"] {
            assert!(!ignored(Path::new(name)), "{name}");
        }
    }
}
