//! The subcommands of ops-snapshot as a process: each turns its arguments
//! into a call of the library, and its result into records and messages.

use std::io::{self, IsTerminal};

use ops_shared::keys::SealArgs;
use ops_shared::lock::Access;
use ops_shared::progress;
use ops_shared::record::{human_bytes, Compact, Snapshot};
use ops_shared::staging::Target;
use ops_shared::stream::one_record;
use ops_shared::{read_records, Output, Record, Status, UsageError};

use crate::cli::{Cli, Command, CopyArgs, CreateArgs, GcArgs, RepoArgs, RestoreArgs};
use crate::error::RepoError;
use crate::id::Id;
use crate::index::Index;
use crate::repo::{self, Repo};
use crate::{diff, export};

/// Runs the subcommand `cli` names.
pub fn dispatch(cli: Cli) -> anyhow::Result<Status> {
    cli.command.repo().keys.install()?;
    match cli.command {
        Command::Create(args) => create(args),
        Command::List(args) => list(&args),
        Command::Restore(args) => restore(args),
        Command::Diff(args) => diff::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Gc(args) => gc(&args),
        Command::RebuildIndex(args) => rebuild_index(&args),
        Command::Copy(args) => copy(&args),
        Command::Key(command) => crate::key::run(&command),
    }
}

/// `--threads`, where 0 means every core.
fn threads(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        n
    }
}

fn create(args: CreateArgs) -> anyhow::Result<Status> {
    let request = crate::create::Request {
        source: args.source,
        name: args.name,
        excludes: args.exclude,
        skip_unreadable: args.skip_unreadable,
        threads: threads(args.threads),
        level: args.level,
        lock_wait: args.repo.lock_wait,
        encrypt: if args.encrypt {
            let seal = SealArgs {
                passphrase: args.recipient.is_empty(),
                recipient: args.recipient,
                recipients_file: Vec::new(),
            };
            seal.encryption()?
        } else {
            None
        },
    };
    progress::start(&format!("snapshotting {}", request.source.display()), None);
    let created = crate::create::create(args.repo.path()?, &request)?;
    let mut snapshot = repo::record(args.repo.path()?, &created.id, &created.manifest);
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

fn list(args: &RepoArgs) -> anyhow::Result<Status> {
    let mut out = Output::stdout(args.output.mode());
    for snapshot in repo::list(args.repo.path()?)? {
        out.record(&snapshot)?;
    }
    out.finish()?;
    Ok(Status::Success)
}

fn restore(args: RestoreArgs) -> anyhow::Result<Status> {
    let mut out = Output::stdout(args.output.mode());
    let (repo_path, wanted) = if let Some(wanted) = args.snapshot {
        (args.repo.path()?.to_owned(), wanted)
    } else {
        let snapshot = one_snapshot_from_stdin(&mut out)?;
        (snapshot.repo, snapshot.id)
    };
    let target = Target::plan(&args.to, args.force)?;
    progress::start(
        &format!("restoring snapshot {}", ops_shared::ids::short(&wanted)),
        None,
    );
    let (mut snapshot, restored) = crate::restore::restore_snapshot(
        &repo_path,
        &wanted,
        &target,
        args.path.as_deref(),
        args.repo.lock_wait,
    )?;
    crate::restore::report_restored(&mut snapshot, &args.to, restored);
    out.record(&snapshot)?;
    out.finish()?;
    Ok(Status::Success)
}

/// The single snapshot record on stdin; other records are passed on.
fn one_snapshot_from_stdin(out: &mut Output) -> anyhow::Result<Snapshot> {
    if io::stdin().is_terminal() {
        return Err(UsageError(
            "give the snapshot to restore, or pipe one snapshot record in".into(),
        )
        .into());
    }
    let records = read_records(io::stdin().lock());
    let (snapshot, passed_on) = one_record(records, "snapshot", |record| {
        if record.is::<Snapshot>() {
            Ok(Some((record.parse::<Snapshot>()?, "snapshot")))
        } else {
            Ok(None)
        }
    })?;
    for line in &passed_on {
        out.raw(line)?;
    }
    Ok(snapshot)
}

fn gc(args: &GcArgs) -> anyhow::Result<Status> {
    let options = crate::gc::GcOptions {
        max_unused: args.max_unused,
        dry_run: args.dry_run,
        lock_wait: args.repo.lock_wait,
    };
    progress::start(
        &format!("collecting garbage in {}", args.repo.path()?.display()),
        None,
    );
    let compact: Compact = crate::gc::gc(args.repo.path()?, &options)?;
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

fn rebuild_index(args: &RepoArgs) -> anyhow::Result<Status> {
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

/// The snapshots named, or those on stdin grouped by their repository, in
/// the order given; other records are passed on.
fn copy(args: &CopyArgs) -> anyhow::Result<Status> {
    let mut out = Output::stdout(args.output.mode());
    let mut batches: Vec<(std::path::PathBuf, Vec<String>)> = Vec::new();
    if args.snapshots.is_empty() {
        if io::stdin().is_terminal() {
            return Err(UsageError(
                "give the snapshots to copy with --repo, or pipe snapshot records in".into(),
            )
            .into());
        }
        for record in read_records(io::stdin().lock()) {
            let record = record?;
            if !record.is::<Snapshot>() {
                out.raw(record.raw())?;
                continue;
            }
            let snapshot: Snapshot = record.parse()?;
            if Id::from_hex(&snapshot.id).is_none() {
                return Err(UsageError(format!(
                    "a snapshot record's id {:?} is not a full snapshot id; list the snapshots \
                     again (ops-snapshot list) and pipe those records",
                    snapshot.id
                ))
                .into());
            }
            match batches.last_mut() {
                Some((repo, ids)) if *repo == snapshot.repo => ids.push(snapshot.id),
                _ => batches.push((snapshot.repo, vec![snapshot.id])),
            }
        }
    } else {
        batches.push((args.repo.path()?.to_owned(), args.snapshots.clone()));
    }
    for (from, ids) in batches {
        let mut done = |copied: crate::copy::Outcome| -> Result<(), RepoError> {
            let mut snapshot = repo::record(&args.to, &copied.id, &copied.manifest);
            ops_shared::entry::note(if copied.copied {
                format!(
                    "copied snapshot {} from {} to {} ({} of chunks it lacked)",
                    ops_shared::ids::short(&copied.id),
                    from.display(),
                    snapshot.repo.display(),
                    human_bytes(copied.stored_bytes)
                )
            } else {
                format!(
                    "snapshot {} is in {} already; skipped",
                    ops_shared::ids::short(&copied.id),
                    snapshot.repo.display()
                )
            });
            snapshot.extra.insert("copied".into(), copied.copied.into());
            snapshot
                .extra
                .insert("copied_bytes".into(), copied.stored_bytes.into());
            out.record(&snapshot)
                .map_err(|err| RepoError::io("stdout".into(), err))
        };
        crate::copy::copy(&from, &ids, &args.to, args.repo.lock_wait, &mut done)?;
    }
    out.finish()?;
    Ok(Status::Success)
}
