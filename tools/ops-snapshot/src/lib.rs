//! ops-snapshot: deduplicated, incremental-forever snapshots of data trees.
//!
//! This crate owns the repository format (see [`repo`]) and is the only
//! code that reads or writes it: ops-verify, ops-restore, ops-prune,
//! ops-health and ops-compact call the functions exported here.

mod chunker;
mod cli;
pub mod create;
pub mod diff;
mod export;
pub mod gc;
pub mod id;
pub mod index;
mod live;
pub mod pack;
pub mod place;
pub mod reader;
pub mod repo;
pub mod restore;
mod store;
pub mod tree;
pub mod verify;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use ops_shared::entry::{classify_as, Classify, ErrorKind, Tool, STANDARD};
use ops_shared::lock::{Access, DirLock, LockError};
use ops_shared::progress;
use ops_shared::record::{human_bytes, Compact, Snapshot};
use ops_shared::staging::Target;
use ops_shared::{read_records, Output, Record, Status, UsageError};
use serde::Serialize;

pub use cli::Cli;
use cli::Command;
use index::Index;
use reader::ChunkReader;
use repo::{Manifest, Repo, FORMAT_VERSION};

/// What can go wrong with a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: not an ops-snapshot repository (no readable config); `ops-snapshot create PATH --repo {}` makes one", .0.display(), .0.display())]
    NotARepo(PathBuf),
    #[error("{}: repository format version {version} is newer than this ops-snapshot reads (up to {FORMAT_VERSION}); upgrade ops", repo.display())]
    TooNew { repo: PathBuf, version: u32 },
    #[error("{}: repository id {id:?} is not 32 hex digits: the config was changed or damaged, and nothing was done; put back the config from a copy of the repository", repo.join("config").display())]
    BadId { repo: PathBuf, id: String },
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Lock(LockError),
    #[error("chunk index: {0}")]
    Index(String),
    #[error("{0}")]
    Damaged(String),
    #[error("no snapshot {wanted:?} in {}; `ops-snapshot list --repo {}` shows them", repo.display(), repo.display())]
    NoSnapshot { repo: PathBuf, wanted: String },
    #[error("{wanted:?} matches {count} snapshots; give more of the id")]
    Ambiguous { wanted: String, count: usize },
}

impl RepoError {
    pub fn io(path: PathBuf, error: io::Error) -> RepoError {
        RepoError::Io { path, error }
    }

    /// Whether the user asked for something that is not there (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RepoError::NotARepo(_)
                | RepoError::BadId { .. }
                | RepoError::TooNew { .. }
                | RepoError::NoSnapshot { .. }
                | RepoError::Ambiguous { .. }
                | RepoError::Lock(LockError::Refused { .. })
        )
    }
}

impl Classify for RepoError {
    fn kind(&self) -> ErrorKind {
        if self.is_usage() {
            ErrorKind::Usage
        } else {
            ErrorKind::Failed
        }
    }
}

/// ops-snapshot as a process: the standard exit statuses.
pub const TOOL: Tool = Tool {
    name: "ops-snapshot",
    classifiers: &[classify_as::<RepoError>],
    ..STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-snapshot with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    dispatch(cli)
}

fn dispatch(cli: Cli) -> anyhow::Result<Status> {
    let threads = |n: usize| {
        if n == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            n
        }
    };
    match cli.command {
        Command::Create(args) => {
            let request = create::Request {
                source: args.source,
                name: args.name,
                excludes: args.exclude,
                skip_unreadable: args.skip_unreadable,
                threads: threads(args.threads),
                level: args.level,
                lock_wait: args.repo.lock_wait,
            };
            progress::start(&format!("snapshotting {}", request.source.display()), None);
            let created = create::create(args.repo.path()?, &request)?;
            let mut snapshot = record(args.repo.path()?, &created.id, &created.manifest);
            progress::finish(format!(
                "snapshot {} of {}: {} files, {} ({} new) in {}",
                ops_shared::ids::short(&snapshot.id),
                snapshot.paths.first().map_or("", String::as_str),
                snapshot.files,
                human_bytes(snapshot.bytes),
                human_bytes(snapshot.added_bytes),
                snapshot.repo.display()
            ));
            snapshot.annotate("files_read", created.files_read);
            let churned = created.vanished + created.changed > 0;
            if churned {
                snapshot.annotate("vanished", created.vanished);
                snapshot.annotate("changed", created.changed);
            }
            let mut out = Output::stdout(args.output.mode());
            out.record(&snapshot)?;
            out.finish()?;
            if churned {
                ops_shared::entry::warn(format!(
                    "snapshot {} recorded, but {} path(s) vanished and {} file(s) changed while \
                     it was taken (above)",
                    &created.id[..8],
                    created.vanished,
                    created.changed
                ));
            }
            Ok(Status::Success)
        }
        Command::List(args) => {
            let mut out = Output::stdout(args.output.mode());
            for snapshot in list(args.repo.path()?)? {
                out.record(&snapshot)?;
            }
            out.finish()?;
            Ok(Status::Success)
        }
        Command::Restore(args) => {
            let mut out = Output::stdout(args.output.mode());
            let (repo_path, wanted) = match args.snapshot {
                Some(wanted) => (args.repo.path()?.to_owned(), wanted),
                None => {
                    let snapshot = one_snapshot_from_stdin(&mut out)?;
                    (snapshot.repo, snapshot.id)
                }
            };
            let target = Target::plan(&args.to, args.force)?;
            progress::start(
                &format!("restoring snapshot {}", ops_shared::ids::short(&wanted)),
                None,
            );
            let (mut snapshot, restored) = restore_snapshot(
                &repo_path,
                &wanted,
                &target,
                args.path.as_deref(),
                args.repo.lock_wait,
            )?;
            progress::finish(format!(
                "restored snapshot {}: {} entries, {} to {}",
                ops_shared::ids::short(&snapshot.id),
                restored.entries,
                human_bytes(restored.bytes),
                args.to.display()
            ));
            snapshot.annotate("restore", restored_note(&args.to, restored));
            out.record(&snapshot)?;
            out.finish()?;
            Ok(Status::Success)
        }
        Command::Diff(args) => diff::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Gc(args) => {
            let options = gc::Options {
                max_unused: args.max_unused,
                dry_run: args.dry_run,
                lock_wait: args.repo.lock_wait,
            };
            progress::start(
                &format!("collecting garbage in {}", args.repo.path()?.display()),
                None,
            );
            let compact: Compact = gc::gc(args.repo.path()?, &options)?;
            progress::finish(format!(
                "{} {}: {} -> {}",
                if args.dry_run {
                    "would collect garbage in"
                } else {
                    "collected garbage in"
                },
                compact.target,
                human_bytes(compact.before_bytes),
                human_bytes(compact.after_bytes)
            ));
            let mut out = Output::stdout(args.output.mode());
            out.record(&compact)?;
            out.finish()?;
            Ok(Status::Success)
        }
        Command::RebuildIndex(args) => {
            let repo = Repo::open(args.repo.path()?)?;
            // Held shared, so no gc deletes packs while their tables are read.
            let _lock = repo.lock(
                Access::Shared,
                args.repo.lock_wait,
                "ops-snapshot rebuild-index",
            )?;
            let index = Index::rebuild(&repo, args.repo.lock_wait, "ops-snapshot rebuild-index")?;
            index.flush()?;
            ops_shared::entry::note(format!(
                "rebuilt the index of {}: {} chunks in {} packs",
                repo.root.display(),
                index.chunks(),
                repo.packs()?.len()
            ));
            Ok(Status::Success)
        }
    }
}

/// The single snapshot record on stdin; other records are passed on.
fn one_snapshot_from_stdin(out: &mut Output) -> anyhow::Result<Snapshot> {
    if io::stdin().is_terminal() {
        return Err(UsageError(
            "give the snapshot to restore, or pipe one snapshot record in".into(),
        )
        .into());
    }
    let mut snapshots = Vec::new();
    for record in read_records(io::stdin().lock()) {
        let record = record?;
        if record.is::<Snapshot>() {
            snapshots.push(record.parse::<Snapshot>()?);
        } else {
            out.raw(record.raw())?;
        }
    }
    match snapshots.len() {
        1 => Ok(snapshots.remove(0)),
        0 => Err(UsageError("no snapshot record on stdin".into()).into()),
        n => Err(UsageError(format!(
            "{n} snapshot records on stdin; restore one at a time (for example with tail -n 1)"
        ))
        .into()),
    }
}

/// What a restore adds to the snapshot record.
#[derive(Serialize)]
pub struct RestoredNote {
    pub ok: bool,
    #[serde(with = "ops_shared::path_text")]
    pub to: PathBuf,
    pub entries: u64,
    pub bytes: u64,
}

pub fn restored_note(to: &Path, restored: restore::Restored) -> RestoredNote {
    RestoredNote {
        ok: true,
        to: to.to_owned(),
        entries: restored.entries,
        bytes: restored.bytes,
    }
}

/// The `snapshot` record of a manifest; `repo` becomes absolute, so the
/// record works from any directory.
pub fn record(repo: &Path, id: &str, manifest: &Manifest) -> Snapshot {
    let mut extra = serde_json::Map::new();
    extra.insert("host".into(), manifest.host.clone().into());
    Snapshot {
        id: id.to_owned(),
        name: manifest.name.clone(),
        time: manifest.time,
        repo: absolute(repo),
        paths: manifest.paths.clone(),
        parent: manifest.parent.clone(),
        files: manifest.files,
        bytes: manifest.bytes,
        added_bytes: manifest.added_bytes,
        extra,
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Every snapshot of the repository at `root`, oldest first.
///
/// Fails when `root` is not a repository or a manifest is damaged.
pub fn list(root: &Path) -> Result<Vec<Snapshot>, RepoError> {
    let repo = Repo::open(root)?;
    let root = absolute(root);
    Ok(repo
        .manifests()?
        .iter()
        .map(|(id, manifest)| record(&root, id, manifest))
        .collect())
}

/// Opens a repository for reading chunks: its lock shared, its index.
pub fn open_reader(
    root: &Path,
    wait: Duration,
    tool: &str,
) -> Result<(ChunkReader, DirLock), RepoError> {
    let repo = Arc::new(Repo::open(root)?);
    let lock = repo.lock(Access::Shared, wait, tool)?;
    let index = Arc::new(Index::open(&repo, wait, tool)?);
    Ok((ChunkReader::new(repo, index), lock))
}

/// Restores snapshot `wanted` of the repository at `root` into `target`.
///
/// Fails when the snapshot cannot be found or any of it cannot be restored;
/// the target is then left as it was.
pub fn restore_snapshot(
    root: &Path,
    wanted: &str,
    target: &Target,
    only: Option<&Path>,
    wait: Duration,
) -> anyhow::Result<(Snapshot, restore::Restored)> {
    let (reader, _lock) = open_reader(root, wait, "ops-snapshot restore")?;
    let (id, manifest) = reader.repo.resolve(wanted)?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let restored = target
        .fill(manifest.root.as_ref(), |staging| {
            restore::restore_into(&reader, &manifest, staging, only, threads)
        })
        .with_context(|| format!("restore of snapshot {} failed", &id[..8]))?;
    Ok((record(root, &id, &manifest), restored))
}

/// Removes snapshots (their data stays until gc), holding the repository
/// exclusively while it does.
///
/// Fails on the first snapshot that cannot be removed.
pub fn forget(root: &Path, ids: &[String], wait: Duration) -> Result<(), RepoError> {
    let repo = Repo::open(root)?;
    let _lock = repo.lock(Access::Exclusive, wait, "ops-prune")?;
    for id in ids {
        repo.remove_snapshot(id)?;
    }
    Ok(())
}
