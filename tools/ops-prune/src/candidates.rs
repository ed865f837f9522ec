//! Where candidates come from: records on stdin, the catalogs of backup
//! directories, the snapshots of repositories (see [`crate::snapshots`]),
//! and plain files found by `--files`. The same item reached twice (a record
//! on stdin and the directory or repository it lives in) is one item, known
//! by its canonical path.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use ops_backup::catalog;
use ops_shared::entry::warn;
use ops_shared::files_arg::FileRules;
use ops_shared::record::{File, Snapshot};
use ops_shared::{Backup, InputRecord, UsageError};

use crate::cli::GroupBy;
use crate::item::{Candidate, Item, Subject};
use crate::snapshots;

/// One line of output, in input order.
#[derive(Debug)]
pub enum Line {
    Raw(String),
    Item(usize),
}

/// Everything read, checked, and merged.
#[derive(Debug, Default)]
pub struct Candidates {
    pub items: Vec<Item>,
    pub lines: Vec<Line>,
    by_key: HashMap<(PathBuf, Option<String>), usize>,
    canonical_dirs: HashMap<PathBuf, PathBuf>,
    backup_ids: HashMap<PathBuf, HashSet<String>>,
}

impl Candidates {
    /// Takes the records read from stdin: `backup`, `snapshot` and `file`
    /// records become candidates, the rest pass through. A file record whose
    /// file is gone is passed through with a warning; backup and snapshot
    /// records are checked later, under the lock
    /// ([`Self::check_stdin_backups`], [`snapshots::Repos::check`]).
    ///
    /// Fails (exit 2) on a record that does not parse.
    pub fn add_stdin(
        &mut self,
        records: impl Iterator<Item = Result<InputRecord, UsageError>>,
        group_by: GroupBy,
    ) -> Result<(), UsageError> {
        for record in records {
            let record = record?;
            let (line, raw) = (record.line, record.raw().to_owned());
            if record.is::<Backup>() {
                let backup: Backup = record.into_parsed()?;
                if backup.extra.contains_key("verify") && backup.verification().is_none() {
                    return Err(UsageError(format!(
                        "input line {line}: its \"verify\" is not a verification result \
                         ({{ok, level, time, errors}}); nothing was deleted"
                    )));
                }
                let failed_upstream = backup.verification().is_some_and(|v| !v.ok);
                catalog::check_record(&backup).map_err(|err| {
                    UsageError(format!("input line {line}: {err}; nothing was deleted"))
                })?;
                let path = self.canonical(&backup.path);
                if !failed_upstream {
                    check_manifest(&backup, &path)
                        .map_err(|err| UsageError(stale(line, &backup.id, &path, &err)))?;
                }
                let mut item = backup_item(backup, path, group_by);
                item.candidate.failed_upstream = failed_upstream;
                item.line = Some(line);
                self.push(item, true);
            } else if record.is::<File>() {
                let file: File = record.into_parsed()?;
                let path = self.canonical(&file.path);
                self.refuse_ours(&path, true)
                    .map_err(|err| UsageError(format!("input line {line}: {}", err.0)))?;
                let group = match group_by {
                    GroupBy::Name => format!("files in {}", catalog::parent_dir(&path).display()),
                    GroupBy::None => "files".to_owned(),
                };
                match file_item(file, &path, group) {
                    Ok(item) => self.push(item, true),
                    Err(err) => {
                        warn(format!("input line {line}: {err}; left alone"));
                        self.lines.push(Line::Raw(raw));
                    }
                }
            } else if record.is::<Snapshot>() {
                let snapshot: Snapshot = record.into_parsed()?;
                let verification = snapshots::verification(&snapshot).map_err(|_| {
                    UsageError(format!(
                        "input line {line}: its \"verify\" is not a verification result \
                         ({{ok, level, time, errors}}); nothing was deleted"
                    ))
                })?;
                let root = self.canonical_repo(&snapshot.repo);
                let mut item = snapshots::item(snapshot, &root, group_by);
                item.candidate.failed_upstream = verification.is_some_and(|v| !v.ok);
                item.line = Some(line);
                self.push(item, true);
            } else {
                self.lines.push(Line::Raw(raw));
            }
        }
        Ok(())
    }

    /// Adds the backups of a directory's catalog.
    ///
    /// Fails if the directory cannot be read.
    pub fn add_dir(&mut self, dir: &Path, group_by: GroupBy) -> anyhow::Result<()> {
        let (backups, leftovers) = catalog::list(dir)?;
        leftovers.warnings.iter().for_each(warn);
        if !leftovers.refused.is_empty() {
            return Err(UsageError(format!(
                "{}; ops-prune deleted nothing",
                leftovers.refused.join("\n")
            ))
            .into());
        }
        for backup in backups {
            let path = self.canonical(&backup.path);
            let item = backup_item(backup, path, group_by);
            self.push(item, false);
        }
        Ok(())
    }

    /// Adds the snapshots listed in a repository (canonical `root`).
    pub fn add_snapshots(&mut self, root: &Path, listed: Vec<Snapshot>, group_by: GroupBy) {
        for snapshot in listed {
            let item = snapshots::item(snapshot, root, group_by);
            self.push(item, false);
        }
    }

    /// The repositories the snapshot candidates are in (canonical).
    pub fn snapshot_repos(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = self
            .items
            .iter()
            .filter(|item| matches!(item.subject, Subject::Snapshot(_)))
            .map(|item| snapshots::root_of(item).to_owned())
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Checks every snapshot record from stdin against its repository's
    /// listing, before anything is deleted (a dry run too: its plan must be
    /// the one a real run would carry out).
    ///
    /// Fails (exit 2) naming the first record that does not match.
    pub fn check_stdin_snapshots(&self, repos: &snapshots::Repos) -> Result<(), UsageError> {
        for item in &self.items {
            if let (Subject::Snapshot(_), Some(line)) = (&item.subject, item.line) {
                if !item.candidate.failed_upstream {
                    repos.check(item, line)?;
                }
            }
        }
        Ok(())
    }

    /// A repository's root, canonical as the candidates know it.
    pub fn canonical_repo(&mut self, root: &Path) -> PathBuf {
        let root = root.components().as_path();
        let root = if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        };
        self.canonical_dir(root)
    }

    /// Adds the plain files a `--files` argument names: every regular file
    /// under a directory, or what a glob matches.
    ///
    /// Fails on a bad glob or a path that does not exist.
    pub fn add_files(&mut self, arg: &str, group_by: GroupBy) -> anyhow::Result<()> {
        let group = match group_by {
            GroupBy::Name => format!("files {arg}"),
            GroupBy::None => "files".to_owned(),
        };
        let explicit = !arg.contains(['*', '?', '[']) && !Path::new(arg).is_dir();
        for path in expand(arg)? {
            let file = File {
                path: path.clone(),
                time: Timestamp::UNIX_EPOCH,
                bytes: 0,
                extra: serde_json::Map::new(),
            };
            let canonical = self.canonical(&path);
            if !self.refuse_ours(&canonical, explicit)? {
                continue;
            }
            match file_item(file, &canonical, group.clone()) {
                Ok(item) => self.push(item, false),
                Err(err) => warn(format!("{err}; left alone")),
            }
        }
        Ok(())
    }

    fn push(&mut self, item: Item, from_stdin: bool) {
        let key = item.key();
        if let Some(&index) = self.by_key.get(&key) {
            let known = &mut self.items[index].candidate;
            if known.failed.is_none() {
                known.failed = item.candidate.failed;
            }
            known.failed_upstream |= item.candidate.failed_upstream;
            if from_stdin {
                self.lines.push(Line::Item(index));
            }
            return;
        }
        self.by_key.insert(key, self.items.len());
        if from_stdin {
            self.lines.push(Line::Item(self.items.len()));
        }
        self.items.push(item);
    }

    /// The items no stdin line stands for, in the order they were added.
    pub fn unlisted(&self) -> Vec<usize> {
        let listed: std::collections::HashSet<usize> = self
            .lines
            .iter()
            .filter_map(|line| match line {
                Line::Item(index) => Some(*index),
                Line::Raw(_) => None,
            })
            .collect();
        (0..self.items.len())
            .filter(|i| !listed.contains(i))
            .collect()
    }

    /// Whether a plain-file candidate may be one: never a file of a backup
    /// (those go whole, manifest first), a snapshot repository or a sled
    /// database, and never a lock or temporary file
    /// (skipped, or refused when named `strict`ly: on stdin or by path).
    ///
    /// Fails (exit 2) on a file that belongs to a backup or a repository, or a strictly named
    /// lock or temporary file.
    fn refuse_ours(&mut self, path: &Path, strict: bool) -> Result<bool, UsageError> {
        if let Some(repo) = ops_snapshot::repository_of(path) {
            return Err(repository(&path.display().to_string(), &repo));
        }
        let sled = path
            .ancestors()
            .find(|dir| ops_backup::sleddb::is_sled_dir(dir));
        if let Some(db) = sled {
            return Err(sled_db(&path.display().to_string(), db));
        }
        let name = path.file_name().unwrap_or_default();
        if is_ours(name) {
            if strict {
                return Err(UsageError(format!(
                    "{} is a lock or temporary file of ops, not a file to prune",
                    path.display()
                )));
            }
            return Ok(false);
        }
        let dir = catalog::parent_dir(path).to_owned();
        let ids = self
            .backup_ids
            .entry(dir.clone())
            .or_insert_with(|| manifest_ids(&dir));
        let name = name.to_string_lossy();
        let owner = name
            .match_indices('.')
            .map(|(at, _)| &name[..at])
            .find(|prefix| ids.contains(*prefix));
        if let Some(id) = owner {
            return Err(UsageError(format!(
                "{} is part of backup {id}; backups are pruned whole, manifest first, \
                 by naming their directory: ops-prune --keep-last 7 {}",
                path.display(),
                dir.display()
            )));
        }
        Ok(true)
    }

    /// Checks every backup record from stdin against its manifest, after
    /// the directories are locked and before anything is deleted: a record
    /// that is stale or was edited must not steer what goes.
    ///
    /// Fails (exit 2) naming the first record that does not match.
    pub fn check_stdin_backups(&self) -> Result<(), UsageError> {
        for item in &self.items {
            let (Subject::Backup(backup), Some(line)) = (&item.subject, item.line) else {
                continue;
            };
            if item.candidate.failed_upstream {
                continue;
            }
            check_manifest(backup, &item.path)
                .map_err(|err| UsageError(stale(line, &backup.id, &item.path, &err)))?;
        }
        Ok(())
    }

    /// `path` with its directory resolved (cached: there are few directories).
    fn canonical(&mut self, path: &Path) -> PathBuf {
        let canonical = self.canonical_dir(catalog::parent_dir(path));
        match path.file_name() {
            Some(name) => canonical.join(name),
            None => canonical,
        }
    }

    /// `dir` resolved (cached).
    fn canonical_dir(&mut self, dir: &Path) -> PathBuf {
        self.canonical_dirs
            .entry(dir.to_owned())
            .or_insert_with(|| fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()))
            .clone()
    }
}

/// Checks a backup record against the manifest in its directory (`path`
/// is its artifact, canonical): that it is there, is ours, and says the same.
///
/// Fails saying what differs.
fn check_manifest(backup: &Backup, path: &Path) -> Result<(), String> {
    let dir = catalog::parent_dir(path);
    let (header, summary) = catalog::read_manifest(&catalog::manifest_path(dir, &backup.id))
        .map_err(|err| format!("cannot be checked against its manifest ({err})"))?;
    let named = path
        .file_name()
        .is_some_and(|n| n == header.artifact.as_str());
    let differs = [
        ("id", header.id != backup.id),
        ("artifact", !named),
        ("name", header.name != backup.name),
        ("time", header.time != backup.time),
        ("parent", header.parent != backup.parent),
        ("sha256", summary.sha256 != backup.sha256),
    ];
    match differs.iter().find(|(_, differs)| *differs) {
        Some((field, _)) => Err(format!("does not match its manifest ({field} differs)")),
        None => Ok(()),
    }
}

fn stale(line: usize, id: &str, path: &Path, what: &str) -> String {
    let dir = catalog::parent_dir(path);
    format!(
        "input line {line}: backup {id} {what}; nothing was deleted. List the directory \
         again (ops-backup list {}) and prune from that",
        dir.display()
    )
}

fn backup_item(backup: Backup, path: PathBuf, group_by: GroupBy) -> Item {
    let dir = catalog::parent_dir(&path).display().to_string();
    let group = match group_by {
        GroupBy::Name => format!("series {} in {dir}", backup.name),
        GroupBy::None => format!("backups in {dir}"),
    };
    let size = if ops_storage::is_remote(&path) {
        ops_storage::stat(&path)
            .ok()
            .flatten()
            .map(|object| object.size)
    } else {
        fs::metadata(&path).ok().map(|meta| meta.len())
    };
    let failed = match size {
        None => Some(format!("its artifact {} is missing", path.display())),
        Some(size) if size != backup.bytes => Some(format!(
            "its artifact is {size} bytes, its record says {}",
            backup.bytes
        )),
        Some(_) => backup.verification().filter(|v| !v.ok).map(|v| {
            let first = v.errors.first().cloned().unwrap_or_default();
            format!("verification failed at {}: {first}", v.time)
        }),
    };
    let candidate = Candidate {
        group,
        id: backup.id.clone(),
        time: backup.time,
        parent: backup.parent.clone(),
        bytes: backup.bytes,
        failed,
        failed_upstream: false,
        guard_newest: true,
    };
    Item {
        candidate,
        subject: Subject::Backup(backup),
        path,
        line: None,
    }
}

/// A file item with its time and size read from the file itself, not
/// trusted from a record.
fn file_item(mut file: File, path: &Path, group: String) -> io::Result<Item> {
    let meta = fs::symlink_metadata(path)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a plain file",
            path.display()
        )));
    }
    file.time = mtime(&meta);
    file.bytes = meta.len();
    let candidate = Candidate {
        group,
        id: ops_shared::path_text::encode(&file.path),
        time: file.time,
        parent: None,
        bytes: file.bytes,
        failed: None,
        failed_upstream: false,
        guard_newest: false,
    };
    Ok(Item {
        candidate,
        subject: Subject::File(file),
        path: path.to_owned(),
        line: None,
    })
}

/// A file's modification time, to the nanosecond.
pub fn mtime(meta: &fs::Metadata) -> Timestamp {
    use std::os::unix::fs::MetadataExt;
    Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The plain files an argument names. Lock files and the temporary files
/// of runs in progress are never candidates, and a backup directory is
/// refused: its backups must go whole, manifest first.
fn expand(arg: &str) -> anyhow::Result<Vec<PathBuf>> {
    ops_shared::files_arg::expand(arg, &mut PlainFiles)
}

/// `--files`: plain files that are not ours, never inside a repository, a
/// sled database or a backup directory.
struct PlainFiles;

impl FileRules for PlainFiles {
    const WHAT: &'static str = "plain file";

    fn directory(&mut self, arg: &str, dir: &Path) -> anyhow::Result<()> {
        if let Some(repo) = ops_snapshot::repository_of(dir) {
            anyhow::bail!(repository(&format!("--files {arg}"), &repo));
        }
        Ok(())
    }

    fn walked(&mut self, arg: &str, entry: &walkdir::DirEntry) -> anyhow::Result<bool> {
        if entry.file_type().is_dir() {
            if ops_snapshot::is_repository(entry.path()) {
                anyhow::bail!(repository(&format!("--files {arg}"), entry.path()));
            }
            if ops_backup::sleddb::is_sled_dir(entry.path()) {
                anyhow::bail!(sled_db(&format!("--files {arg}"), entry.path()));
            }
        }
        let name = entry.file_name();
        if name
            .to_string_lossy()
            .ends_with(ops_backup::manifest::SUFFIX)
        {
            anyhow::bail!(UsageError(format!(
                "--files {arg}: {} holds backups; give it as a backup directory \
                 (ops-prune --keep-last 7 {}) so each backup is removed whole",
                catalog::parent_dir(entry.path()).display(),
                catalog::parent_dir(entry.path()).display()
            )));
        }
        Ok(entry.file_type().is_file() && !is_ours(name))
    }

    fn named(&mut self, _arg: &str, _path: &Path) -> anyhow::Result<bool> {
        Ok(true)
    }

    fn matched(&mut self, _arg: &str, path: &Path) -> anyhow::Result<bool> {
        let ours = path.file_name().is_some_and(is_ours);
        Ok(fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) && !ours)
    }
}

/// The refusal of `what`, a snapshot repository `repo` or inside one.
fn repository(what: &str, repo: &Path) -> UsageError {
    UsageError(format!(
        "{what}: {} is an ops-snapshot repository, whose packs are live data; nothing was \
         deleted. Prune its snapshots whole: ops-prune --repo {} --keep-last 7",
        repo.display(),
        repo.display()
    ))
}

/// The refusal of `what`, a sled database `db` or inside one.
fn sled_db(what: &str, db: &Path) -> UsageError {
    UsageError(format!(
        "{what}: {} is a sled database, whose files are live data; nothing was deleted. \
         Back it up with ops-backup create sled:{} and prune those backups",
        db.display(),
        db.display()
    ))
}

/// Lock files and temporary files of runs in progress.
fn is_ours(name: &std::ffi::OsStr) -> bool {
    name == ops_shared::lock::LOCK_FILE || ops_shared::atomic::is_temp(name)
}

/// The ids of the backups in `dir`: the names of its manifests.
fn manifest_ids(dir: &Path) -> HashSet<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(ops_backup::manifest::SUFFIX)
                .map(str::to_owned)
        })
        .collect()
}
