//! ops-restore: bring a backup or a snapshot back, checked, all or nothing.
//!
//! The plan (which backup, where, whether anything is replaced) is settled
//! and validated before anything is written; then the backup is extracted
//! into a temporary directory beside the target and renamed into place. A
//! snapshot is restored the same way by ops-snapshot's own reader.

mod cli;
mod database;
mod extract;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::Path;

use anyhow::bail;
use clap::CommandFactory;
use ops_backup::{catalog, manifest, Destination, Format};
use ops_shared::progress;
use ops_shared::record::{human_bytes, Restored, Snapshot};
use ops_shared::staging::Target;
use ops_shared::stream::one_record;
use ops_shared::{read_records, Backup, Output, Record, Status, UsageError};

pub use cli::Cli;

/// ops-restore as a process: the standard exit statuses (0 ok, 1 a problem, 2 a
/// usage error).
pub const TOOL: ops_shared::entry::Tool = ops_shared::entry::Tool {
    name: "ops-restore",
    classifiers: &[
        ops_shared::entry::classify_as::<ops_backup::Error>,
        ops_shared::entry::classify_as::<ops_snapshot::RepoError>,
    ],
    ..ops_shared::entry::STANDARD
};

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs ops-restore with `args` (including the program name).
pub fn run(args: Vec<OsString>) -> anyhow::Result<Status> {
    let Some(cli) = ops_shared::entry::parse_args::<Cli>(args)? else {
        return Ok(Status::Success);
    };
    cli.keys.install()?;
    let mut out = Output::stdout(cli.output.mode());
    let (item, passed_through) = match &cli.artifact {
        Some(path) => (Item::Backup(backup_at(path)?), Vec::new()),
        None => item_from_stdin()?,
    };
    for line in &passed_through {
        out.raw(line)?;
    }
    let status = match item {
        Item::Snapshot(snapshot) => {
            progress::start(
                &format!(
                    "restoring snapshot {}",
                    ops_shared::ids::short(&snapshot.id)
                ),
                None,
            );
            out.record(&restore_snapshot(&snapshot, &cli)?)?;
            Status::Success
        }
        Item::Backup(mut backup) => {
            progress::start(&format!("restoring {}", backup.id), Some(backup.bytes));
            let status = if ops_backup::pg::is_postgres(&cli.to.to_string_lossy()) {
                restore_database(&mut backup, &cli)?
            } else {
                restore_directory(&mut backup, &cli)?
            };
            out.record(&backup)?;
            status
        }
    };
    out.finish()?;
    Ok(status)
}

/// The one backup or snapshot record on stdin, and the other records, which
/// pass through.
///
/// Fails (a usage error) on a terminal, a malformed or refused record, and
/// unless there is exactly one backup or snapshot record.
fn item_from_stdin() -> anyhow::Result<(Item, Vec<String>)> {
    if io::stdin().is_terminal() {
        return Err(UsageError(
            "give the artifact to restore, or pipe one backup or snapshot record in".into(),
        )
        .into());
    }
    let records = read_records(io::stdin().lock());
    Ok(one_record(records, "backup or snapshot", |record| {
        if record.is::<Backup>() {
            let backup = record.parse::<Backup>()?;
            catalog::check_record(&backup)
                .map_err(|err| UsageError(format!("input line {}: {err}", record.line)))?;
            Ok(Some((Item::Backup(backup), "backup")))
        } else if record.is::<Snapshot>() {
            Ok(Some((Item::Snapshot(record.parse()?), "snapshot")))
        } else {
            Ok(None)
        }
    })?)
}

/// Restores a database dump into the database `--to` names; annotates the
/// record with `"restore"`.
fn restore_database(backup: &mut Backup, cli: &Cli) -> anyhow::Result<Status> {
    let to = cli.to.to_string_lossy();
    if Format::of(&backup.format).map(Format::destination) != Some(Destination::Database) {
        bail!(
            "{} is a {} backup; restore it into a directory, not a database",
            backup.id,
            backup.format
        );
    }
    let choices = database::Choices {
        clean: cli.clean,
        yes: cli.yes,
        jobs: cli.jobs,
    };
    let restored = database::restore(&backup.path, &to, &choices)?;
    for mismatch in &restored.mismatches {
        ops_shared::entry::error(format!("{}: {mismatch}", backup.id));
    }
    let ok = restored.ok;
    progress::finish(format!(
        "restored {} into {}: {} tables, {}",
        backup.id,
        restored.to,
        restored.tables,
        match restored.mismatches.len() {
            0 => "row counts match the backup".to_owned(),
            n => format!("{n} with row counts that differ from the backup"),
        }
    ));
    backup.annotate("restore", restored);
    Ok(Status::problem_if(!ok))
}

/// Restores a tree or sled backup into the directory `--to`; annotates the
/// record with `"restore"`.
fn restore_directory(backup: &mut Backup, cli: &Cli) -> anyhow::Result<Status> {
    if Format::of(&backup.format).map(Format::destination) == Some(Destination::Database) {
        return Err(ops_backup::Error::NotADirectory {
            id: backup.id.clone(),
        }
        .into());
    }
    let target = Target::plan(&cli.to, cli.force)?;
    let (entries, bytes) = restore(backup, &target)?;
    progress::finish(format!(
        "restored {}: {entries} entries, {} to {}",
        backup.id,
        human_bytes(bytes),
        cli.to.display()
    ));
    backup.annotate(
        "restore",
        Restored {
            ok: true,
            to: cli.to.clone(),
            entries,
            bytes,
        },
    );
    Ok(Status::Success)
}

/// The one thing to restore.
enum Item {
    Backup(Backup),
    Snapshot(Snapshot),
}

/// Restores `snapshot` into `--to` with ops-snapshot's reader; returns the
/// record annotated with `"restore"`.
///
/// Fails (a usage error) when the target is a database or the snapshot or
/// its repository cannot be found; fails when any of it cannot be restored,
/// leaving the target as it was.
fn restore_snapshot(snapshot: &Snapshot, cli: &Cli) -> anyhow::Result<Snapshot> {
    if ops_backup::pg::is_postgres(&cli.to.to_string_lossy()) {
        return Err(UsageError(format!(
            "snapshot {} is a directory tree; restore it into a directory, not a database",
            snapshot.id
        ))
        .into());
    }
    let target = Target::plan(&cli.to, cli.force)?;
    let (_, restored) =
        ops_snapshot::restore_snapshot(&snapshot.repo, &snapshot.id, &target, None, cli.lock_wait)?;
    let mut snapshot = snapshot.clone();
    ops_snapshot::report_restored(&mut snapshot, &cli.to, restored);
    Ok(snapshot)
}

fn backup_at(path: &Path) -> anyhow::Result<Backup> {
    if !ops_storage::is_object(path)? {
        bail!("{}: no such artifact", path.display());
    }
    Ok(catalog::record_of(path)?)
}

/// Restores a tree or sled backup into `target`, all or nothing.
fn restore(backup: &Backup, target: &Target) -> anyhow::Result<(u64, u64)> {
    let Some(format) = Format::of(&backup.format) else {
        bail!(
            "{}: format {:?} is not one this version of ops-restore restores",
            backup.id,
            backup.format
        );
    };
    format.check_restorable(backup)?;
    let header = manifest::read_outline(&catalog::manifest_of(&backup.path)?)?.0;
    target.fill(header.root.as_ref(), |staging| {
        let mut files = extract::Extractor::new(staging);
        Ok(format.restore_into(backup, staging, &mut files)?)
    })
}
